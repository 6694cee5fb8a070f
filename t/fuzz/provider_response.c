/*
 * provider_response.c: libFuzzer target for what herald reads from the
 * providers. An input starting with a digit is an SMTP relay's talk: its
 * lines go through hd_smtp_reply_line as smtp.c reads them, and each
 * complete reply through hd_smtp_ehlo. Any other input is an HTTP/1.x
 * byte stream: http1.c's response parser reads it in two pieces (and
 * keep-alive responses one after another), and every response is then
 * classified as Twilio, Vonage, SendGrid, APNs and FCM would answer it,
 * with its Retry-After through hd_h2_retry_after_ms. A classification
 * must be one of the four outcomes with a bounded delay and a detail.
 */
#include "fuzz.h"
#include "provider/http1.c"

#include "provider/apns.h"
#include "provider/fcm.h"
#include "provider/h2client.h"
#include "provider/provider.h"
#include "provider/rest.h"
#include "provider/sendgrid.h"
#include "provider/smtp.h"
#include "provider/twilio.h"
#include "provider/vonage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS 1795420800000LL /* 2026-11-23 */

static void
check(int outcome, int64_t retry_after, const char *detail)
{
    CHECK(outcome >= HD_OUT_DELIVERED && outcome <= HD_OUT_DEAD_ADDRESS);
    CHECK(retry_after >= 0);
    CHECK(detail != NULL && *detail != '\0');
}

static void
classify(const struct hd_http1_response *r)
{
    const char *ra = hd_http1_header_find(r, "retry-after");
    struct hd_apns_answer a;
    struct hd_fcm_answer f;
    char detail[256];
    int64_t ms;

    ms = hd_h2_retry_after_ms(ra, NOW_MS);
    CHECK(ms >= -1 && ms <= 3600000);
    ms = hd_rest_retry_after(r);
    CHECK(ms >= 0 && ms <= 3600000);
    check(hd_twilio_classify(r, &ms, detail, sizeof(detail)), ms, detail);
    check(hd_vonage_classify(r, &ms, detail, sizeof(detail)), ms, detail);
    check(hd_sendgrid_classify(r, &ms, detail, sizeof(detail)), ms, detail);
    CHECK(ms <= 3600000);

    hd_apns_classify(r->status, r->body, r->len, ra, NOW_MS, &a);
    check(a.outcome, a.retry_after_ms, r->status == 200 ? "ok" : a.detail);
    CHECK(!a.has_gone_ms || r->status == 410);
    CHECK(a.outcome != HD_OUT_DELIVERED || r->status == 200);
    hd_fcm_classify(r->status, r->body, r->len, ra, NOW_MS, &f);
    check(f.outcome, f.retry_after_ms, r->status == 200 ? "ok" : f.detail);
    CHECK(f.outcome != HD_OUT_DELIVERED || r->status == 200);
}

static void
http1_stream(const uint8_t *data, size_t size)
{
    struct evbuffer *in = evbuffer_new();
    struct hd_http1_response resp;
    const char *error = NULL;
    struct conn c;
    size_t half = size / 2;
    int rc = HD_AGAIN;

    memset(&c, 0, sizeof(c));
    c.body = evbuffer_new();
    c.pstate = R_HEAD;
    for (int piece = 0; piece < 2; piece++) {
        if (piece == 0)
            evbuffer_add(in, data, half);
        else
            evbuffer_add(in, data + half, size - half);
        /* as on_read: responses one after another on a kept connection */
        while ((rc = parse_input(&c, in, &error)) == HD_OK) {
            response_of(&c, &resp);
            CHECK(resp.status >= 200 && resp.status <= 599);
            CHECK(resp.len <= HD_HTTP1_MAX_BODY);
            classify(&resp);
            if (!c.keepalive)
                break;
            reset_response(&c);
        }
        if (rc == HD_ERROR) {
            CHECK(error != NULL);
            break;
        }
        if (rc == HD_OK)
            break;
    }
    if (rc == HD_AGAIN && c.pstate == R_UNTIL_CLOSE) { /* as on_event: EOF */
        response_of(&c, &resp);
        classify(&resp);
    }
    reset_response(&c);
    evbuffer_free(c.body);
    evbuffer_free(in);
}

static void
smtp_stream(const uint8_t *data, size_t size)
{
    struct evbuffer *in = evbuffer_new(), *reply = evbuffer_new();
    struct hd_smtp_ehlo e;
    char *line;
    size_t n;

    evbuffer_add(in, data, size);
    /* as smtp.c's on_read */
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        int code, last;
        if (hd_smtp_reply_line(line, n, &code, &last) != HD_OK) {
            free(line);
            break;
        }
        CHECK(code >= 200 && code <= 599);
        if (evbuffer_get_length(reply))
            evbuffer_add(reply, "\n", 1);
        if (n > 4)
            evbuffer_add(reply, line + 4, n - 4);
        free(line);
        if (evbuffer_get_length(reply) > 8192) /* SMTP_MAX_REPLY */
            break;
        if (!last)
            continue;
        evbuffer_add(reply, "", 1);
        hd_smtp_ehlo((char *)evbuffer_pullup(reply, -1), &e);
        CHECK(e.has_size || e.size_max == 0);
        evbuffer_drain(reply, evbuffer_get_length(reply));
    }
    evbuffer_free(reply);
    evbuffer_free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ra[64];
    size_t n = 0;

    if (size == 0)
        return 0;
    /* the first line alone, as a Retry-After value */
    while (n < size && n < sizeof(ra) - 1 && data[n] != '\r' && data[n] != '\n')
        n++;
    memcpy(ra, data, n);
    ra[n] = '\0';
    CHECK(hd_h2_retry_after_ms(ra, NOW_MS) <= 3600000);
    if (data[0] >= '0' && data[0] <= '9')
        smtp_stream(data, size);
    else
        http1_stream(data, size);
    return 0;
}
