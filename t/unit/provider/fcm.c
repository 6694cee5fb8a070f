/*
 * t/unit/provider/fcm.c: the FCM v1 message built from a notification's
 * content (notification, data as strings, android priority/ttl/
 * collapse_key) and the error code read from google.rpc.Status bodies
 * (the FcmError detail first, then error.status).
 */
#include "provider/fcm.c"

#include "tap.h"

static void
check_message(const char *content, int prio, int64_t ttl, const char *want,
              const char *desc)
{
    json_t *c = json_loads(content, 0, NULL);
    json_t *m = hd_fcm_message("tok", c, prio, ttl);
    json_t *w = json_loads(want, 0, NULL);
    char *got = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);

    ok(json_equal(m, w), "%s: %s", desc, got);
    free(got);
    json_decref(c);
    json_decref(m);
    json_decref(w);
}

static void
test_message(void)
{
    check_message("{\"title\":\"T\",\"body\":\"B\",\"collapse_id\":\"c\","
                  "\"data\":{\"s\":\"x\",\"n\":3,\"o\":{\"a\":true}}}",
                  HD_PRIO_HIGH, 3600,
                  "{\"message\":{\"token\":\"tok\",\"notification\":{"
                  "\"title\":\"T\",\"body\":\"B\"},\"data\":{\"s\":\"x\","
                  "\"n\":\"3\",\"o\":\"{\\\"a\\\":true}\"},\"android\":{"
                  "\"priority\":\"high\",\"ttl\":\"3600s\","
                  "\"collapse_key\":\"c\"}}}",
                  "full message, data values as strings");
    check_message("{\"data\":{\"k\":\"v\"}}", HD_PRIO_LOW, -1,
                  "{\"message\":{\"token\":\"tok\",\"data\":{\"k\":\"v\"},"
                  "\"android\":{\"priority\":\"normal\"}}}",
                  "data only, low priority, no ttl");
}

static void
code(const char *body, const char *want_code, const char *want_msg)
{
    json_t *b = json_loads(body, 0, NULL);
    const char *msg = NULL, *c = hd_fcm_error_code(b, &msg);
    ok(strcmp(c, want_code) == 0 && strcmp(msg, want_msg) == 0,
       "error code \"%s\", message \"%s\"", c, msg);
    json_decref(b);
}

static void
test_errors(void)
{
    code("{\"error\":{\"code\":404,\"message\":\"Requested entity was not "
         "found.\",\"status\":\"NOT_FOUND\",\"details\":[{\"@type\":\"type."
         "googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":"
         "\"UNREGISTERED\"}]}}",
         "UNREGISTERED", "Requested entity was not found.");
    code("{\"error\":{\"code\":401,\"message\":\"m\",\"status\":"
         "\"UNAUTHENTICATED\"}}",
         "UNAUTHENTICATED", "m");
    code("{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"details\""
         ":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\"}]}}",
         "INVALID_ARGUMENT", "");
    code("not json", "", "");
}

static void
answer(int st, const char *body, const char *ra, int outcome, int64_t ms,
       int renew, const char *desc)
{
    struct hd_fcm_answer a;

    hd_fcm_classify(st, body, strlen(body), ra, 1000000, &a);
    ok(a.outcome == outcome, "%s: outcome %d", desc, a.outcome);
    ok(a.retry_after_ms == ms, "%s: retry after %lld ms", desc,
       (long long)a.retry_after_ms);
    ok(a.renew_token == renew, "%s: renew the token: %d", desc, renew);
}

static void
test_classify(void)
{
    const char *fcm =
        "{\"error\":{\"code\":%d,\"status\":\"%s\",\"details\":"
        "[{\"@type\":\"type.googleapis.com/"
        "google.firebase.fcm.v1.FcmError\",\"errorCode\":\"%s\"}]}}";
    char b[512];

    answer(200, "{}", NULL, HD_OUT_DELIVERED, 0, 0, "200");
    snprintf(b, sizeof(b), fcm, 404, "NOT_FOUND", "UNREGISTERED");
    answer(404, b, NULL, HD_OUT_DEAD_ADDRESS, 0, 0, "UNREGISTERED");
    snprintf(b, sizeof(b), fcm, 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED");
    answer(429, b, "5", HD_OUT_RETRY, 60000, 0,
           "QUOTA_EXCEEDED: 1 min at least");
    answer(429, b, "120", HD_OUT_RETRY, 120000, 0, "... or Retry-After");
    snprintf(b, sizeof(b), fcm, 401, "UNAUTHENTICATED",
             "THIRD_PARTY_AUTH_ERROR");
    answer(401, b, NULL, HD_OUT_RETRY, 0, 0, "THIRD_PARTY_AUTH_ERROR");
    answer(401, "{\"error\":{\"status\":\"UNAUTHENTICATED\"}}", NULL,
           HD_OUT_RETRY, 0, 1, "401 of our token");
    answer(400,
           "{\"error\":{\"status\":\"INVALID_ARGUMENT\",\"message\":"
           "\"The registration token is not a valid FCM registration "
           "token\"}}",
           NULL, HD_OUT_DEAD_ADDRESS, 0, 0, "INVALID_ARGUMENT on the token");
    answer(400, "<html>bad gateway</html>", NULL, HD_OUT_FAILED, 0, 0,
           "400, not JSON");
    answer(503, "", "3", HD_OUT_RETRY, 3000, 0, "503 with Retry-After");
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"message", test_message},
        {"errors", test_errors},
        {"classify", test_classify},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
