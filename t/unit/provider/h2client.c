/*
 * t/unit/provider/h2client.c: the pure helpers of the HTTP/2 client:
 * https URL parsing and Retry-After (delay-seconds and the three HTTP-date
 * forms of RFC 9110), clamped to an hour; the allocator nghttp2 gets
 * (size classes, realloc, calloc's overflow). The transport itself is
 * tested end to end against the fakes (t/40-apns.t, t/41-fcm.t).
 */
#include "provider/h2client.c"

#include "tap.h"

static void
url(const char *u, int want_ok, const char *host, int port, const char *path)
{
    char h[64] = "";
    const char *p = NULL;
    int pt = 0, rc = hd_h2_parse_url(u, h, sizeof(h), &pt, &p);

    if (!want_ok) {
        is_int(rc, HD_ERROR, u);
        return;
    }
    ok(rc == HD_OK && strcmp(h, host) == 0 && pt == port &&
           strcmp(p, path) == 0,
       "%s -> %s %d \"%s\"", u, h, pt, p ? p : "(null)");
}

static void
test_url(void)
{
    url("https://api.push.apple.com", 1, "api.push.apple.com", 443, "");
    url("https://api.push.apple.com:2197", 1, "api.push.apple.com", 2197, "");
    url("https://127.0.0.1:8443/", 1, "127.0.0.1", 8443, "/");
    url("https://oauth2.googleapis.com/token", 1, "oauth2.googleapis.com", 443,
        "/token");
    url("https://[::1]:9000/x", 1, "::1", 9000, "/x");
    url("HTTPS://Host", 1, "Host", 443, "");
    url("http://api.push.apple.com", 0, NULL, 0, NULL);
    url("https://", 0, NULL, 0, NULL);
    url("https://host:", 0, NULL, 0, NULL);
    url("https://host:0", 0, NULL, 0, NULL);
    url("https://host:70000", 0, NULL, 0, NULL);
    url("https://host:12a", 0, NULL, 0, NULL);
    url("https://[::1:9000", 0, NULL, 0, NULL);
}

static void
test_retry_after(void)
{
    int64_t now = 784111777000LL; /* Sun, 06 Nov 1994 08:49:37 GMT */

    is_int(hd_h2_retry_after_ms("120", now), 120000, "delay-seconds");
    is_int(hd_h2_retry_after_ms("0", now), 0, "zero");
    is_int(hd_h2_retry_after_ms(" 5 ", now), 5000, "spaces");
    is_int(hd_h2_retry_after_ms("99999999999999", now), 3600000,
           "clamped to an hour");
    is_int(hd_h2_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", now), 60000,
           "IMF-fixdate");
    is_int(hd_h2_retry_after_ms("Sunday, 06-Nov-94 08:51:37 GMT", now), 120000,
           "RFC 850 date");
    is_int(hd_h2_retry_after_ms("Sun Nov  6 08:52:37 1994", now), 180000,
           "asctime date");
    is_int(hd_h2_retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", now), 0,
           "a date in the past: now");
    is_int(hd_h2_retry_after_ms("soon", now), -1, "garbage: absent");
    is_int(hd_h2_retry_after_ms("12s", now), -1, "unit suffix: absent");
    is_int(hd_h2_retry_after_ms(NULL, now), -1, "none");
}

/* the block behind ptr: its size class from the header, as mem_free reads
 * it */
static int
class_of(const void *ptr)
{
    return ((const unsigned char *)ptr - MEM_HDR)[0];
}

static void
test_mem(void)
{
    struct hd_h2_pool p;
    unsigned char *a, *b, *c;
    const nghttp2_mem *m = &p.mem;

    memset(&p, 0, sizeof(p));
    mem_init(&p);

    a = m->malloc(0, m->mem_user_data);
    ok(a != NULL && class_of(a) == 0, "0 bytes: the first class");
    ok(((uintptr_t)a % 16) == 0, "blocks are 16-byte aligned");
    m->free(a, m->mem_user_data);
    a = m->malloc(MEM_STEP - MEM_HDR, m->mem_user_data);
    is_int(class_of(a), 0, "a class's whole room fits in it");
    m->free(a, m->mem_user_data);
    a = m->malloc(MEM_STEP - MEM_HDR + 1, m->mem_user_data);
    is_int(class_of(a), 1, "a byte more takes the next class");
    m->free(a, m->mem_user_data);
    a = m->malloc(MEM_CLASSES * MEM_STEP - MEM_HDR, m->mem_user_data);
    is_int(class_of(a), MEM_CLASSES - 1, "the largest class");
    b = m->malloc(MEM_CLASSES * MEM_STEP, m->mem_user_data);
    is_int(class_of(b), MEM_LARGE, "larger: from malloc");
    m->free(a, m->mem_user_data);
    m->free(b, m->mem_user_data);
    m->free(NULL, m->mem_user_data);
    ok(1, "free(NULL) is nothing");

    /* realloc: in place within the class, copied beyond it */
    a = m->malloc(10, m->mem_user_data);
    memcpy(a, "0123456789", 10);
    b = m->realloc(a, MEM_STEP - MEM_HDR, m->mem_user_data);
    ok(b == a, "realloc within the class keeps the block");
    c = m->realloc(b, 3 * MEM_STEP, m->mem_user_data);
    ok(c != NULL && class_of(c) == 3 && memcmp(c, "0123456789", 10) == 0,
       "realloc past the class copies into a larger one");
    b = m->realloc(c, 4096, m->mem_user_data);
    ok(b != NULL && class_of(b) == MEM_LARGE &&
           memcmp(b, "0123456789", 10) == 0,
       "and past the classes into a block from malloc");
    c = m->realloc(b, 8192, m->mem_user_data);
    ok(c != NULL && class_of(c) == MEM_LARGE &&
           memcmp(c, "0123456789", 10) == 0,
       "a block from malloc grows by realloc");
    m->free(c, m->mem_user_data);
    a = m->realloc(NULL, 100, m->mem_user_data);
    is_int(class_of(a), 1, "realloc(NULL) allocates");
    m->free(a, m->mem_user_data);

    a = m->calloc(10, 20, m->mem_user_data);
    ok(a != NULL && a[0] == 0 && a[199] == 0, "calloc zeroes");
    m->free(a, m->mem_user_data);
    ok(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data) == NULL,
       "calloc refuses a product that overflows");
    ok(m->malloc(SIZE_MAX - 4, m->mem_user_data) == NULL,
       "malloc refuses a size the header overflows");
    mem_drain(&p);
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"url", test_url},
        {"retry-after", test_retry_after},
        {"nghttp2's allocator", test_mem},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
