/*
 * route.c: the route table: method + path pattern -> scope + handler.
 * Worker thread. Patterns are literal segments and "{}" for one path
 * parameter, percent-decoded before the handler sees it.
 */
#include <pthread.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "http/api.h"
#include "http/auth.h"
#include "http/http.h"
#include "core/shard.h"
#include "core/time.h"
#include "send/ratelimit.h"

struct route {
    int method;
    const char *pattern;
    unsigned scope; /* 0: no auth */
    void (*handler)(struct hd_req *r);
};

/* Every per-user path keeps the user id in the path, so a balancer can
 * route each user to one herald by hashing the path (README: scaling). */
static const struct route routes[] = {
    {HD_M_GET, "/healthz", 0, hd_api_healthz},
    {HD_M_GET, "/readyz", 0, hd_api_readyz},
    {HD_M_GET, "/metrics", HD_SCOPE_READ, hd_api_metrics},
    {HD_M_GET, "/status", HD_SCOPE_READ, hd_api_status_page},
    {HD_M_PUT, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_put},
    {HD_M_PATCH, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_patch},
    {HD_M_GET, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_get},
    {HD_M_DELETE, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_delete},
    {HD_M_POST, "/v1/users/{}/devices", HD_SCOPE_USERS, hd_api_device_post},
    {HD_M_GET, "/v1/users/{}/devices", HD_SCOPE_USERS, hd_api_devices_get},
    {HD_M_DELETE, "/v1/users/{}/devices/{}", HD_SCOPE_USERS,
     hd_api_device_delete},
    {HD_M_PUT, "/v1/users/{}/preferences", HD_SCOPE_USERS, hd_api_prefs_put},
    {HD_M_GET, "/v1/users/{}/preferences", HD_SCOPE_USERS, hd_api_prefs_get},
    {HD_M_POST, "/v1/users/{}/notifications", HD_SCOPE_SEND, hd_api_send},
    {HD_M_GET, "/v1/users/{}/notifications", HD_SCOPE_READ,
     hd_api_user_notifications},
    {HD_M_POST, "/v1/notifications", HD_SCOPE_SEND, hd_api_send},
    {HD_M_POST, "/v1/notifications/batch", HD_SCOPE_SEND, hd_api_send_batch},
    {HD_M_GET, "/v1/notifications/{}", HD_SCOPE_READ, hd_api_status},
    {HD_M_DELETE, "/v1/notifications/{}", HD_SCOPE_SEND, hd_api_cancel},
    {HD_M_GET, "/v1/queues", HD_SCOPE_ADMIN, hd_api_queues},
    {HD_M_GET, "/v1/events", HD_SCOPE_READ, hd_api_events_feed},
    {HD_M_POST, "/v1/events", HD_SCOPE_SEND, hd_api_events_post},
    {HD_M_GET, "/v1/stats", HD_SCOPE_READ, hd_api_stats},
    {HD_M_GET, "/t/o/{}", 0, hd_api_track},
    {HD_M_GET, "/t/c/{}", 0, hd_api_track},
    {HD_M_GET, "/v1/templates", HD_SCOPE_ADMIN, hd_api_templates_list},
    {HD_M_PUT, "/v1/templates/{}", HD_SCOPE_ADMIN, hd_api_template_put},
    {HD_M_GET, "/v1/templates/{}", HD_SCOPE_ADMIN, hd_api_template_get},
    {HD_M_DELETE, "/v1/templates/{}", HD_SCOPE_ADMIN, hd_api_template_delete},
    /* no API key: a signed token or a provider's signature instead */
    {HD_M_POST, "/v1/unsubscribe/{}", 0, hd_api_unsubscribe},
    {HD_M_GET, "/v1/unsubscribe/{}", 0, hd_api_unsubscribe},
    {HD_M_POST, "/v1/callbacks/twilio", 0, hd_api_twilio_callback},
    {HD_M_GET, "/v1/dead-letters", HD_SCOPE_ADMIN, hd_api_dead_letters},
    {HD_M_POST, "/v1/dead-letters/retry", HD_SCOPE_ADMIN,
     hd_api_dead_letters_retry},
    {HD_M_POST, "/v1/dead-letters/{}/retry", HD_SCOPE_ADMIN,
     hd_api_dead_letter_retry},
    {HD_M_DELETE, "/v1/dead-letters/{}", HD_SCOPE_ADMIN,
     hd_api_dead_letter_delete},
};

static const char *
method_name(int m)
{
    switch (m) {
    case HD_M_GET:
        return "GET";
    case HD_M_POST:
        return "POST";
    case HD_M_PUT:
        return "PUT";
    case HD_M_PATCH:
        return "PATCH";
    case HD_M_DELETE:
        return "DELETE";
    default:
        return "OPTIONS";
    }
}

/* Per-key ingest limits: one bucket per key shared by all workers, so
 * the limit means what it says whatever worker a connection lands on.
 * This is the one lock on the ingest path: held for a few arithmetic
 * operations, and only for keys that have a rate_limit. */
struct key_bucket {
    char id[64];
    struct hd_bucket b;
};
static struct key_bucket key_buckets[64];
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

static int
key_allow(const struct hd_api_key *k, int64_t *retry_ms)
{
    struct key_bucket *kb = NULL;
    int ok;

    if (!k->rate.set)
        return 1;
    pthread_mutex_lock(&key_lock);
    for (size_t i = 0; i < HD_NELEMS(key_buckets); i++) {
        if (strcmp(key_buckets[i].id, k->id) == 0) {
            kb = &key_buckets[i];
            break;
        }
        if (kb == NULL && key_buckets[i].id[0] == '\0')
            kb = &key_buckets[i];
    }
    if (kb == NULL)
        kb = &key_buckets[hd_hash(k->id, strlen(k->id)) %
                          HD_NELEMS(key_buckets)];
    if (strcmp(kb->id, k->id) != 0) {
        snprintf(kb->id, sizeof(kb->id), "%s", k->id);
        memset(&kb->b, 0, sizeof(kb->b));
    }
    ok = hd_bucket_take(&kb->b, &k->rate, 1, hd_now_ms(), retry_ms);
    pthread_mutex_unlock(&key_lock);
    return ok;
}

/* Decodes %XX in [s, s+n) into a new string; NULL on a bad escape or a
 * NUL byte. */
static char *
decode(const char *s, size_t n)
{
    char *out = hd_alloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            hi = hd_hex_digit(s[i + 1]);
            lo = hd_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Matches path against pattern; fills params on success. HD_OK,
 * HD_DECLINED (no match) or HD_ERROR (bad escape). */
static int
match(const char *pattern, const char *path, struct hd_req *r)
{
    const char *p = pattern, *s = path;

    r->nparams = 0;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(s, '/');
            size_t n = end ? (size_t)(end - s) : strlen(s);
            char *v;
            if (n == 0)
                return HD_DECLINED;
            v = decode(s, n);
            if (v == NULL)
                return HD_ERROR;
            r->params[r->nparams++] = v;
            p += 2;
            s += n;
            continue;
        }
        if (*p != *s)
            return HD_DECLINED;
        p++;
        s++;
    }
    return *p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'))
               ? HD_OK
               : HD_DECLINED;
}

static void
drop_params(struct hd_req *r)
{
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    r->nparams = 0;
}

void
hd_http_route(struct hd_req *r)
{
    const struct route *found = NULL;
    char allow[128] = "";
    size_t n = 0;

    for (size_t i = 0; i < HD_NELEMS(routes); i++) {
        int rc = match(routes[i].pattern, r->path, r);
        if (rc != HD_OK)
            drop_params(r); /* a prefix may have matched */
        if (rc == HD_ERROR) {
            hd_http_error(r, 400, "bad_request", NULL,
                          "invalid percent-encoding in path");
            return;
        }
        if (rc != HD_OK)
            continue;
        if (routes[i].method == r->method ||
            (r->method == HD_M_HEAD && routes[i].method == HD_M_GET)) {
            found = &routes[i];
            break;
        }
        drop_params(r);
        if (n < sizeof(allow) - 16)
            n += (size_t)snprintf(
                allow + n, sizeof(allow) - n, "%s%s",
                n ? ", " : "Allow: ", method_name(routes[i].method));
    }
    if (found == NULL) {
        if (n) {
            hd_http_header(r, allow);
            hd_http_error(r, 405, "method_not_allowed", NULL,
                          "method %s is not allowed on %s", r->method_name,
                          r->path);
        } else {
            hd_http_error(r, 404, "not_found", NULL, "no such endpoint: %s",
                          r->path);
        }
        return;
    }
    if (found->scope) {
        r->key = hd_auth_basic(r->conf, r->authorization);
        if (r->key == NULL) {
            hd_http_error(r, 401, "unauthorized", NULL,
                          r->authorization
                              ? "invalid API key or secret"
                              : "missing credentials: use HTTP Basic auth "
                                "with your API key and secret");
            return;
        }
        if (!(r->key->scopes & found->scope)) {
            hd_http_error(r, 403, "forbidden", NULL,
                          "API key \"%s\" lacks the scope this endpoint "
                          "needs",
                          r->key->id);
            return;
        }
        {
            int64_t retry_ms = 0;
            if (!key_allow(r->key, &retry_ms)) {
                char h[64];
                snprintf(h, sizeof(h), "Retry-After: %lld",
                         (long long)((retry_ms + 999) / 1000));
                hd_http_header(r, h);
                hd_http_error(r, 429, "rate_limited", NULL,
                              "API key \"%s\" is over its rate limit",
                              r->key->id);
                return;
            }
        }
    }
    found->handler(r);
}
