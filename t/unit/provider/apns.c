/*
 * t/unit/provider/apns.c: the apns-id of a delivery (a stable RFC 4122
 * version 5 UUID) and the payload built from a notification's content
 * (alert, badge, sound, thread-id, custom data at top level, background),
 * and what an answer means (hd_apns_classify, protocols.md 1.8).
 */
#include "provider/apns.c"

#include <regex.h>

#include "tap.h"

static json_t *
payload_of(const char *content, int *bg)
{
    json_t *p;
    size_t len = 0;
    char *text = hd_apns_payload(content, strlen(content), bg, &len);

    /* the text is the payload: jansson must read all of it back */
    p = text ? json_loadb(text, len, 0, NULL) : NULL;
    ok(p != NULL && strlen(text) == len, "payload text is JSON: %s",
       text ? text : "(null)");
    free(text);
    return p;
}

static void
check_payload(const char *content, const char *want, int want_bg,
              const char *desc)
{
    int bg = -1;
    json_t *p = payload_of(content, &bg), *w = json_loads(want, 0, NULL);
    char *got = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);

    ok(json_equal(p, w), "%s: %s", desc, got);
    is_int(bg, want_bg, "background flag");
    free(got);
    json_decref(p);
    json_decref(w);
}

static void
test_id(void)
{
    char a[37], b[37], c[37];
    regex_t re;

    hd_apns_id("n0101a207628be30000-0", a);
    hd_apns_id("n0101a207628be30000-0", b);
    hd_apns_id("n0101a207628be30000-1", c);
    regcomp(&re,
            "^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
            "[0-9a-f]{12}$",
            REG_EXTENDED | REG_NOSUB);
    ok(regexec(&re, a, 0, NULL, 0) == 0, "canonical lower-case UUIDv8: %s", a);
    regfree(&re);
    is_str(a, b, "stable for the same delivery (retries)");
    ok(strcmp(a, c) != 0, "differs between deliveries");
    /* seq 01a207628be30000: its 48 high bits, 8 and the next 12, then
     * variant 10, its low 4 bits (0), shard 01, index 0 */
    is_str(a, "01a20762-8be3-8000-8004-000000000000", "the layout of the id");
    hd_apns_id("n02ffffffffffffffff-999999999999999", a);
    is_str(a, "ffffffff-ffff-8fff-bc0b-8d7ea4c67fff",
           "all of seq, shard 2 and a 15-digit index");
    hd_apns_id("n0101a207628be30000-0", a);
    hd_apns_id("n0201a207628be30000-0", b);
    ok(strcmp(a, b) != 0, "differs between shards");

    /* any other shape: a version 5 UUID, SHA-1(ns || id) (t/40-apns.t has
     * the Perl) */
    hd_apns_id("x", a);
    is_str(a, "b4a06331-e903-56e7-8b0c-e1be5983b422", "other ids: UUIDv5");
    hd_apns_id("n0101a207628be30000-", b);
    ok(b[14] == '5', "no index: UUIDv5 (%s)", b);
    hd_apns_id("N0101a207628be30000-0", b);
    ok(b[14] == '5', "upper-case: UUIDv5 (%s)", b);
    hd_apns_id("n0101A207628BE30000-0", b);
    ok(b[14] == '5', "upper-case hex: UUIDv5 (%s)", b);
    hd_apns_id("n0101a207628be3000g-0", b);
    ok(b[14] == '5', "not hex: UUIDv5 (%s)", b);
    hd_apns_id("n0101a207628be30000-1000000000000000", b);
    ok(b[14] == '5', "a 16-digit index: UUIDv5 (%s)", b);
    hd_apns_id("n0101a207628be30000-0x", b);
    ok(b[14] == '5', "trailing text: UUIDv5 (%s)", b);
}

static void
test_payload(void)
{
    check_payload("{\"title\":\"T\",\"body\":\"B\"}",
                  "{\"aps\":{\"alert\":{\"title\":\"T\",\"body\":\"B\"}}}", 0,
                  "title and body");
    check_payload("{\"push\":{\"body\":\"B\",\"badge\":3,\"sound\":\"default\","
                  "\"thread_id\":\"t1\",\"collapse_id\":\"c\","
                  "\"data\":{\"k\":\"v\",\"aps\":\"no\"}}}",
                  "{\"aps\":{\"alert\":{\"body\":\"B\"},\"badge\":3,"
                  "\"sound\":\"default\",\"thread-id\":\"t1\"},\"k\":\"v\"}",
                  0, "badge, sound, thread-id, data; aps in data ignored");
    check_payload("{\"data\":{\"sync\":\"1\"}}",
                  "{\"aps\":{\"content-available\":1},\"sync\":\"1\"}", 1,
                  "no alert: background");
    check_payload("{\"title\":\"T\",\"body\":\"B\",\"data\":{\"k\":\"1\"},"
                  "\"push\":{\"body\":\"P\",\"data\":{\"j\":\"2\"},"
                  "\"badge\":1},\"email\":{\"subject\":\"no\"}}",
                  "{\"aps\":{\"alert\":{\"title\":\"T\",\"body\":\"P\"},"
                  "\"badge\":1},\"j\":\"2\"}",
                  0, "the push part wins over the shorthand, whole data too");
    check_payload("{\"title\":null,\"body\":\"B\",\"push\":{\"sound\":null}}",
                  "{\"aps\":{\"alert\":{\"body\":\"B\"}}}", 0,
                  "null values are left out");
    check_payload("{\"body\":\"q \\\" \\u00e9\"}",
                  "{\"aps\":{\"alert\":{\"body\":\"q \\\" \\u00e9\"}}}", 0,
                  "escapes copied as written");
    {
        /* more data members than any fixed table would hold */
        char content[4096], want[4096];
        size_t n = 0, w = 0;
        n += (size_t)sprintf(content + n, "{\"body\":\"B\",\"data\":{");
        w += (size_t)sprintf(want + w, "{");
        for (int i = 0; i < 200; i++) {
            n += (size_t)sprintf(content + n, "%s\"k%d\":\"%d\"", i ? "," : "",
                                 i, i);
            w += (size_t)sprintf(want + w, "\"k%d\":\"%d\",", i, i);
        }
        sprintf(content + n, "}}");
        sprintf(want + w, "\"aps\":{\"alert\":{\"body\":\"B\"}}}");
        check_payload(content, want, 0, "200 data members");
    }
    {
        char buf[64];
        const char *c = "{\"push\":{\"collapse_id\":\"c\\\"1\"}}";
        is_int(hd_apns_collapse_id(c, strlen(c), buf, sizeof(buf)), HD_OK,
               "collapse id from the push part");
        is_str(buf, "c\"1", "decoded");
        c = "{\"body\":\"B\"}";
        is_int(hd_apns_collapse_id(c, strlen(c), buf, sizeof(buf)), HD_DECLINED,
               "no collapse id");
        ok(hd_apns_payload("[]", 2, &(int){0}, &(size_t){0}) == NULL,
           "content that is no object: NULL");
    }
    check_payload("{\"push\":{\"title\":\"T\",\"mutable_content\":true,"
                  "\"interruption_level\":\"time-sensitive\"}}",
                  "{\"aps\":{\"alert\":{\"title\":\"T\"},\"mutable-content\":"
                  "1,\"interruption-level\":\"time-sensitive\"}}",
                  0, "mutable-content, interruption-level");
}

static void
answer(int st, const char *body, const char *ra, int outcome, int64_t ms,
       const char *desc)
{
    struct hd_apns_answer a;

    hd_apns_classify(st, body, body ? strlen(body) : 0, ra, 1000000, &a);
    ok(a.outcome == outcome, "%s: outcome %d", desc, a.outcome);
    ok(a.retry_after_ms == ms, "%s: retry after %lld ms", desc,
       (long long)a.retry_after_ms);
}

static void
test_classify(void)
{
    struct hd_apns_answer a;
    const char *gone = "{\"reason\":\"Unregistered\",\"timestamp\":12345}";
    const char *expired = "{\"reason\":\"ExpiredProviderToken\"}";

    answer(200, NULL, NULL, HD_OUT_DELIVERED, 0, "200");
    answer(400, "{\"reason\":\"BadDeviceToken\"}", NULL, HD_OUT_DEAD_ADDRESS, 0,
           "BadDeviceToken");
    answer(400, "{\"reason\":\"BadCollapseId\"}", NULL, HD_OUT_FAILED, 0,
           "BadCollapseId");
    answer(400, "{\"reason\":\"IdleTimeout\"}", NULL, HD_OUT_RETRY, 0,
           "IdleTimeout");
    answer(429, "{\"reason\":\"TooManyRequests\"}", "7", HD_OUT_RETRY, 7000,
           "429 with Retry-After");
    answer(503, "not json", NULL, HD_OUT_RETRY, 0, "503, not JSON");
    answer(403, "{\"reason\":\"Forbidden\"}", NULL, HD_OUT_FAILED, 0,
           "Forbidden");
    hd_apns_classify(403, expired, strlen(expired), NULL, 0, &a);
    ok(a.expired_token && a.outcome == HD_OUT_RETRY,
       "ExpiredProviderToken: renew, else retry");
    is_str(a.detail, "APNs 403 ExpiredProviderToken", "detail");
    hd_apns_classify(410, gone, strlen(gone), NULL, 0, &a);
    ok(a.outcome == HD_OUT_DEAD_ADDRESS && a.has_gone_ms && a.gone_ms == 12345,
       "410: dead address, gone at the timestamp");
    hd_apns_classify(400, gone, strlen(gone), NULL, 0, &a);
    ok(!a.has_gone_ms, "a timestamp counts with 410 only");
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"apns-id", test_id},
        {"payload", test_payload},
        {"classify", test_classify},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
