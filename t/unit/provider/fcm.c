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

int
main(void)
{
    static const struct tap_case cases[] = {
        {"message", test_message},
        {"errors", test_errors},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
