/*
 * t/unit/provider/classify.c: what an SMS or email API's answer means, for
 * the answers the fuzzer (t/fuzz/provider_response.c) found odd: an
 * accepted message always records a non-empty provider message id.
 */
#include <string.h>

#include "core/herald.h"
#include "provider/http1.h"
#include "provider/provider.h"
#include "provider/sendgrid.h"
#include "provider/twilio.h"
#include "provider/vonage.h"

#include "tap.h"

static int
answer(int (*classify)(const struct hd_http1_response *, int64_t *, char *,
                       size_t),
       int status, const char *body, char *detail, size_t len)
{
    struct hd_http1_response r = {status, NULL, 0, body, strlen(body)};
    int64_t retry_after = -1;
    int outcome = classify(&r, &retry_after, detail, len);

    ok(retry_after >= 0, "retry_after set (%lld)", (long long)retry_after);
    return outcome;
}

static void
test_twilio(void)
{
    char d[256];

    is_int(answer(hd_twilio_classify, 201, "{\"sid\":\"SM123\"}", d, sizeof(d)),
           HD_OUT_DELIVERED, "201: delivered");
    is_str(d, "SM123", "  the sid is the message id");
    is_int(answer(hd_twilio_classify, 201,
                  "{\"sid\":\"\",\"num_segments\":\"1\"}", d, sizeof(d)),
           HD_OUT_DELIVERED, "201 with an empty sid: delivered");
    is_str(d, "accepted", "  no empty message id (found by the fuzzer)");
    is_int(answer(hd_twilio_classify, 201, "not json", d, sizeof(d)),
           HD_OUT_DELIVERED, "201 with no JSON: delivered");
    is_str(d, "accepted", "  as accepted");
}

static void
test_vonage(void)
{
    char d[256];

    is_int(answer(hd_vonage_classify, 200,
                  "{\"messages\":[{\"status\":\"0\",\"message-id\":\"m1\"}]}",
                  d, sizeof(d)),
           HD_OUT_DELIVERED, "200, status 0: delivered");
    is_str(d, "m1", "  its message-id");
    is_int(answer(hd_vonage_classify, 200,
                  "{\"messages\":[{\"status\":\"0\",\"message-id\":\"\"},"
                  "{\"status\":\"0\",\"message-id\":\"m2\"}]}",
                  d, sizeof(d)),
           HD_OUT_DELIVERED, "two parts, the first with an empty id");
    is_str(d, "m2", "  the first non-empty message-id");
    is_int(answer(hd_vonage_classify, 200,
                  "{\"messages\":[{\"status\":\"0\",\"message-id\":\"\"}]}", d,
                  sizeof(d)),
           HD_OUT_DELIVERED, "one part with an empty id");
    ok(d[0] != '\0', "  no empty message id (%s)", d);
}

static void
test_sendgrid(void)
{
    char d[256];

    is_int(answer(hd_sendgrid_classify, 202, "", d, sizeof(d)),
           HD_OUT_DELIVERED, "202: delivered");
    ok(d[0] != '\0', "  a message id or \"accepted\" (%s)", d);
}

static const struct tap_case cases[] = {
    {"twilio", test_twilio},
    {"vonage", test_vonage},
    {"sendgrid", test_sendgrid},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
