/*
 * webpush.c: the "webpush" provider: browser push subscriptions (RFC 8030)
 * over HTTP/1.1 to whatever push service the endpoint names, the payload
 * encrypted for the subscription (RFC 8291, ece.c), VAPID auth (RFC 8292).
 * create() runs on the main thread; send() on the worker that owns the
 * job, with that worker's pool and VAPID token per push-service origin.
 * Knows nothing of the store or of HTTP ingest: outcomes go back through
 * job->done (404/410: the dispatcher removes the subscription).
 */
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/codec.h"
#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/ece.h"
#include "provider/http1.h"
#include "provider/jwt.h"
#include "provider/provider.h"
#include "provider/rest.h"
#include "provider/tls.h"
#include "provider/webpush.h"

#define WP_DEFAULT_TTL_S (28 * 86400) /* 4 weeks, as web-push does */
#define WP_JWT_LIFETIME_S (12 * 3600) /* RFC 8292: at most 24 h */
#define WP_JWT_RENEW_S 3600           /* re-sign 1 h before expiry */
#define WP_MAX_ORIGINS 64             /* push services per worker */
#define WP_ORIGIN_IDLE_MS 60000       /* an idle origin may be dropped */
#define WP_MAX_TOPIC 32
#define WP_MAX_ORIGIN 300

struct webpush {
    char *name;
    SSL_CTX *ctx;
    EVP_PKEY *vapid; /* owned; signing takes sign_lock */
    pthread_mutex_t sign_lock;
    char vapid_public[HD_WEBPUSH_PUBLIC_LEN];
    char *subject; /* "mailto:..." or "https://..." */
    int nconns;    /* per origin and worker */
    int64_t timeout_ms;
    int64_t ttl_s;  /* when the job has no expiry */
    int metrics_id; /* provider index + 1 */
};

/* One push service as seen by one worker: its pool and VAPID token. */
struct wp_origin {
    struct wp_origin *next;
    char origin[WP_MAX_ORIGIN]; /* scheme://host[:port]: the JWT's aud */
    struct hd_http1_pool *pool;
    char *auth;       /* "Authorization: vapid t=..., k=...\r\n" */
    int64_t auth_exp; /* seconds */
    int inflight;
    int64_t last_used_ms;
};

struct wp_req;

struct wp_worker {
    struct wp_origin *origins;
    int norigins;
    struct wp_req *inflight; /* freed at exit if never answered */
};

struct wp_req {
    struct wp_req *next, *prev;
    struct wp_worker *ww;
    struct wp_origin *o;
    struct hd_job *j;
};

static const struct hd_provider_setting settings[] = {
    {"vapid_private_key", 1, 1},
    {"vapid_subject", 1, 1},
    {"ttl", 1, 0},
    {"connections", 1, 0},
    {"timeout", 1, 0},
    {"ca_file", 1, 0},
    {NULL, 0, 0},
};

/* ==== VAPID ==== */

static int
public_of(EVP_PKEY *k, char *out)
{
    unsigned char pub[HD_ECE_KEY_LEN];
    size_t n = 0;

    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                        sizeof(pub), &n) != 1 ||
        n != HD_ECE_KEY_LEN || pub[0] != 0x04) {
        ERR_clear_error();
        return HD_ERROR;
    }
    hd_b64url_encode(pub, n, out);
    return HD_OK;
}

int
hd_webpush_vapid_public(const char *path, char *out, char *err, size_t errlen)
{
    EVP_PKEY *k = hd_jwt_key_load(path, EVP_PKEY_EC, err, errlen);
    int rc;

    if (k == NULL)
        return HD_ERROR;
    rc = public_of(k, out);
    if (rc != HD_OK)
        snprintf(err, errlen, "cannot read the public key of \"%s\"", path);
    EVP_PKEY_free(k);
    return rc;
}

int
hd_webpush_vapid_new(char **pem, char *out, char *err, size_t errlen)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;

    if (k == NULL || b == NULL || public_of(k, out) != HD_OK ||
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(b, &data)) <= 0) {
        snprintf(err, errlen, "cannot make a P-256 key pair");
        ERR_clear_error();
        BIO_free(b);
        EVP_PKEY_free(k);
        return HD_ERROR;
    }
    *pem = hd_strndup(data, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(k);
    return HD_OK;
}

/* {"typ":"JWT","alg":"ES256"}.{"aud","exp","sub"} signed with key (raw
 * r||s, as JWS wants): malloc'd, or NULL. jwt.c signs only APNs claims;
 * this is its ES256 step for the VAPID claims. */
static char *
vapid_jwt(EVP_PKEY *key, const char *aud, const char *sub, int64_t exp)
{
    json_t *h = json_pack("{s:s, s:s}", "typ", "JWT", "alg", "ES256");
    json_t *c = json_pack("{s:s, s:I, s:s}", "aud", aud, "exp", (json_int_t)exp,
                          "sub", sub);
    char *hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *cs = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hl = strlen(hs), cl = strlen(cs), len, dlen;
    unsigned char der[128], raw[64];
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    EVP_MD_CTX *md;
    ECDSA_SIG *es;
    char *out;

    json_decref(h);
    json_decref(c);
    out = hd_alloc((hl + cl + sizeof(raw)) * 4 / 3 + 16);
    len = hd_b64url_encode(hs, hl, out);
    out[len++] = '.';
    len += hd_b64url_encode(cs, cl, out + len);
    free(hs);
    free(cs);

    md = EVP_MD_CTX_new();
    dlen = sizeof(der);
    if (md == NULL ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, der, &dlen, (const unsigned char *)out, len) != 1) {
        EVP_MD_CTX_free(md);
        goto fail_free_out;
    }
    EVP_MD_CTX_free(md);
    es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    if (es == NULL)
        goto fail_free_out;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32) {
        ECDSA_SIG_free(es);
        goto fail_free_out;
    }
    ECDSA_SIG_free(es);
    out[len++] = '.';
    hd_b64url_encode(raw, sizeof(raw), out + len);
    return out;

fail_free_out:
    ERR_clear_error();
    free(out);
    return NULL;
}

/* The origin of an endpoint (RFC 6454: lower-case scheme and host, the
 * port only when not the scheme's default), its host, port and request
 * target. HD_ERROR if endpoint is not an http(s) URL. */
static int
parse_endpoint(const char *endpoint, char *origin, size_t olen, int *tls,
               char *host, size_t hostlen, int *port, const char **path)
{
    int n;

    if (hd_http1_parse_url(endpoint, tls, host, hostlen, port, path) != HD_OK ||
        *host == '\0')
        return HD_ERROR;
    for (char *h = host; *h; h++)
        if (*h >= 'A' && *h <= 'Z')
            *h = (char)(*h - 'A' + 'a');
    n = snprintf(origin, olen, "%s://%s%s%s", *tls ? "https" : "http",
                 strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "");
    if (n > 0 && (size_t)n < olen && *port != (*tls ? 443 : 80))
        n += snprintf(origin + n, olen - (size_t)n, ":%d", *port);
    return n > 0 && (size_t)n < olen ? HD_OK : HD_ERROR;
}

/* The origin's Authorization header line, signed again when within
 * WP_JWT_RENEW_S of its expiry. NULL if signing fails. */
static const char *
vapid_auth(struct webpush *wp, struct wp_origin *o)
{
    int64_t now = hd_now_ms() / 1000, exp;
    char *jwt;
    size_t n;

    if (o->auth && now < o->auth_exp - WP_JWT_RENEW_S &&
        o->auth_exp - now <= WP_JWT_LIFETIME_S)
        return o->auth;
    exp = now + WP_JWT_LIFETIME_S;
    pthread_mutex_lock(&wp->sign_lock);
    jwt = vapid_jwt(wp->vapid, o->origin, wp->subject, exp);
    pthread_mutex_unlock(&wp->sign_lock);
    HD_COUNT(hd_metrics_provider(wp->metrics_id)->token_refreshes[!jwt], 1);
    if (jwt == NULL)
        return NULL;
    n = strlen(jwt) + strlen(wp->vapid_public) + 40;
    free(o->auth);
    o->auth = hd_alloc(n);
    snprintf(o->auth, n, "Authorization: vapid t=%s, k=%s\r\n", jwt,
             wp->vapid_public);
    o->auth_exp = exp;
    free(jwt);
    return o->auth;
}

/* ==== the message ==== */

/* What the service worker receives: {title, body, icon, url, data}. */
static json_t *
payload_of(json_t *content)
{
    static const char *keys[] = {"title", "body", "icon", "url", "data"};
    json_t *out = json_object(), *v;

    for (size_t i = 0; i < HD_NELEMS(keys); i++)
        if ((v = json_object_get(content, keys[i])) && !json_is_null(v))
            json_object_set(out, keys[i], v);
    return out;
}

/* The Topic of content's "topic" or "collapse_id": as given when it is
 * 1-32 characters of the base64url alphabet, else the first 24 bytes of
 * its SHA-256 in base64url (32 characters). "" when there is none. */
static void
topic_of(json_t *content, char *out)
{
    const char *t = json_string_value(json_object_get(content, "topic"));
    unsigned char md[32];
    size_t n;

    if (t == NULL)
        t = json_string_value(json_object_get(content, "collapse_id"));
    *out = '\0';
    if (t == NULL || *t == '\0')
        return;
    n = strlen(t);
    if (n <= WP_MAX_TOPIC &&
        strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_") == n) {
        memcpy(out, t, n + 1);
        return;
    }
    hd_sha256_2(t, n, NULL, 0, md);
    hd_b64url_encode(md, 24, out);
}

static const char *
urgency_of(int priority)
{
    switch (priority) {
    case HD_PRIO_LOW:
        return "low";
    case HD_PRIO_HIGH:
    case HD_PRIO_CRITICAL:
        return "high";
    default:
        return "normal";
    }
}

/* TTL in seconds: what is left of the job's life, or the default. */
static int64_t
ttl_of(const struct webpush *wp, const struct hd_job *j, int64_t now_ms)
{
    int64_t left;

    if (j->expires_at_ms <= 0)
        return wp->ttl_s;
    left = (j->expires_at_ms - now_ms) / 1000;
    return left < 0 ? 0 : left;
}

/* ==== settings ==== */

static const char *
arg_of(const struct hd_provider_conf *pc, const char *name)
{
    const struct hd_conf_kv *kv = hd_conf_kv_find(pc, name);
    return kv ? kv->args[0] : NULL;
}

static int
bad(char *err, size_t errlen, const struct hd_conf_kv *kv, const char *what)
{
    snprintf(err, errlen,
             "invalid value \"%s\" in \"%s\" directive, %s in %s:%d",
             kv->args[0], kv->name, what, kv->file, kv->line);
    return HD_ERROR;
}

static int
webpush_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;
    char kerr[256];
    EVP_PKEY *k;
    int64_t ms;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK)
        return HD_ERROR;
    kv = hd_conf_kv_find(pc, "vapid_subject");
    if (strncmp(kv->args[0], "mailto:", 7) != 0 &&
        strncmp(kv->args[0], "https://", 8) != 0)
        return bad(err, errlen, kv, "expected mailto:... or https://...");
    if ((kv = hd_conf_kv_find(pc, "ttl")) &&
        (hd_parse_time_ms(kv->args[0], &ms) != HD_OK ||
         ms > 365LL * 86400 * 1000))
        return bad(err, errlen, kv, "expected a time up to 365d");
    if ((kv = hd_conf_kv_find(pc, "connections"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || end == kv->args[0] || n < 1 || n > 64)
            return bad(err, errlen, kv, "expected 1..64");
    }
    if ((kv = hd_conf_kv_find(pc, "timeout")) &&
        (hd_parse_time_ms(kv->args[0], &ms) != HD_OK || ms < 1))
        return bad(err, errlen, kv, "expected a time");
    kv = hd_conf_kv_find(pc, "vapid_private_key");
    k = hd_jwt_key_load(kv->args[0], EVP_PKEY_EC, kerr, sizeof(kerr));
    if (k == NULL) {
        snprintf(err, errlen,
                 "vapid_private_key %s (a PEM EC P-256 key) in %s:%d", kerr,
                 kv->file, kv->line);
        return HD_ERROR;
    }
    EVP_PKEY_free(k);
    return HD_OK;
}

static int
webpush_create(struct hd_provider *p, const struct hd_provider_conf *pc,
               char *err, size_t errlen)
{
    struct hd_tls_conf tc = {NULL, NULL, NULL, NULL};
    struct webpush *wp;
    const char *s;
    int64_t ms;

    if (webpush_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    wp = hd_calloc(sizeof(*wp));
    wp->name = hd_strdup(pc->name);
    wp->subject = hd_strdup(arg_of(pc, "vapid_subject"));
    wp->nconns = (s = arg_of(pc, "connections")) ? atoi(s) : 4;
    wp->metrics_id = p->index + 1;
    wp->timeout_ms = 10000;
    if ((s = arg_of(pc, "timeout")))
        hd_parse_time_ms(s, &wp->timeout_ms);
    wp->ttl_s = WP_DEFAULT_TTL_S;
    if ((s = arg_of(pc, "ttl")) && hd_parse_time_ms(s, &ms) == HD_OK)
        wp->ttl_s = ms / 1000;

    wp->vapid = hd_jwt_key_load(arg_of(pc, "vapid_private_key"), EVP_PKEY_EC,
                                err, errlen);
    if (wp->vapid == NULL)
        goto fail_free_wp;
    if (public_of(wp->vapid, wp->vapid_public) != HD_OK) {
        snprintf(err, errlen, "provider \"%s\": no public key in %s", pc->name,
                 arg_of(pc, "vapid_private_key"));
        goto fail_free_key;
    }
    tc.ca_file = arg_of(pc, "ca_file");
    wp->ctx = hd_tls_ctx_new(&tc, err, errlen);
    if (wp->ctx == NULL)
        goto fail_free_key;
    pthread_mutex_init(&wp->sign_lock, NULL);
    p->data = wp;
    return HD_OK;

fail_free_key:
    EVP_PKEY_free(wp->vapid);
fail_free_wp:
    free(wp->name);
    free(wp->subject);
    free(wp);
    return HD_ERROR;
}

static void
webpush_destroy(struct hd_provider *p)
{
    struct webpush *wp = p->data;

    if (wp == NULL)
        return;
    pthread_mutex_destroy(&wp->sign_lock);
    EVP_PKEY_free(wp->vapid);
    hd_tls_ctx_free(wp->ctx);
    free(wp->name);
    free(wp->subject);
    free(wp);
}

/* ==== one worker's origins ==== */

static struct wp_worker *
worker_get(struct hd_provider *p, struct hd_worker *w)
{
    struct wp_worker *ww = p->worker_data[w->id];

    if (ww == NULL) {
        ww = hd_calloc(sizeof(*ww));
        p->worker_data[w->id] = ww;
    }
    return ww;
}

static void
origin_free(struct wp_origin *o)
{
    hd_http1_pool_free(o->pool);
    if (o->auth)
        OPENSSL_cleanse(o->auth, strlen(o->auth));
    free(o->auth);
    free(o);
}

/* The worker's origin for (origin, host, port), made on first use. Past
 * WP_MAX_ORIGINS one idle for a minute is dropped (never one that has a
 * request out, so never the pool of a callback that is running); NULL if
 * none is. */
static struct wp_origin *
origin_get(struct webpush *wp, struct wp_worker *ww, struct hd_worker *w,
           const char *origin, int tls, const char *host, int port)
{
    struct hd_http1_pool_conf c;
    struct wp_origin *o, **pp;
    int64_t now = hd_now_ms();

    for (o = ww->origins; o; o = o->next)
        if (strcmp(o->origin, origin) == 0) {
            o->last_used_ms = now;
            return o;
        }
    if (ww->norigins >= WP_MAX_ORIGINS) {
        for (pp = &ww->origins; *pp; pp = &(*pp)->next)
            if ((*pp)->inflight == 0 &&
                now - (*pp)->last_used_ms > WP_ORIGIN_IDLE_MS)
                break;
        if (*pp == NULL)
            return NULL;
        o = *pp;
        *pp = o->next;
        origin_free(o);
        ww->norigins--;
    }
    memset(&c, 0, sizeof(c));
    c.name = wp->name;
    c.host = host;
    c.port = port;
    c.ssl_ctx = tls ? wp->ctx : NULL;
    c.nconns = wp->nconns;
    c.metrics_id = wp->metrics_id;
    c.timeout_ms = wp->timeout_ms;
    o = hd_calloc(sizeof(*o));
    snprintf(o->origin, sizeof(o->origin), "%s", origin);
    o->pool = hd_http1_pool_new(w->base, &w->log, &c);
    if (o->pool == NULL) {
        free(o);
        return NULL;
    }
    o->last_used_ms = now;
    o->next = ww->origins;
    ww->origins = o;
    ww->norigins++;
    return o;
}

static void
req_free(struct wp_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->ww->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->o->inflight--;
    free(r);
}

/* ==== the request ==== */

static void
on_response(void *arg, const struct hd_http1_response *res, const char *error)
{
    struct wp_req *r = arg;
    struct hd_job *j = r->j;
    struct wp_origin *o = r->o;
    char detail[256];
    const char *v;
    int st;

    o->last_used_ms = hd_now_ms(); /* not dropped while we are in its pool */
    req_free(r);
    if (res == NULL) {
        /* connection lost or timed out: the outcome is unknown, retry */
        snprintf(detail, sizeof(detail), "web push: %s", error);
        j->done(j, HD_OUT_RETRY, 0, detail);
        return;
    }
    st = res->status;
    if (st == 201 || st == 200 || st == 202) {
        /* Location: the push message resource, our only receipt */
        v = hd_http1_header_find(res, "Location");
        snprintf(detail, sizeof(detail), "%s", v ? v : "accepted");
        j->done(j, HD_OUT_DELIVERED, 0, detail);
        return;
    }
    {
        /* a short reason from the body (autopush JSON, or text) */
        json_t *body = json_loadb(res->body, res->len, 0, NULL);
        const char *why = json_string_value(json_object_get(body, "message"));
        if (why == NULL)
            why = json_string_value(json_object_get(body, "reason"));
        if (why == NULL)
            why = json_string_value(json_object_get(body, "error"));
        if (why == NULL)
            why = json_string_value(
                json_object_get(json_object_get(body, "error"), "message"));
        snprintf(detail, sizeof(detail), "web push %d%s%.160s", st,
                 why ? " " : "", why ? why : "");
        json_decref(body);
    }
    if (st == 404 || st == 410) {
        /* the subscription expired or the user unsubscribed */
        j->done(j, HD_OUT_DEAD_ADDRESS, 0, detail);
    } else if (st == 429 || st >= 500) {
        j->done(j, HD_OUT_RETRY, hd_rest_retry_after(res), detail);
    } else {
        if (st == 401 || st == 403) {
            /* the token was refused: sign a new one next time */
            o->auth_exp = 0;
        }
        /* 413 too large, 400 bad headers or crypto: permanent */
        j->done(j, HD_OUT_FAILED, 0, detail);
    }
}

/* The subscription's p256dh and auth, decoded; HD_ERROR if absent or
 * malformed. */
static int
keys_of(const struct hd_job *j, unsigned char *p256dh, unsigned char *auth)
{
    json_t *keys =
        json_object_get(json_object_get(j->device, "subscription"), "keys");
    const char *pk = json_string_value(json_object_get(keys, "p256dh"));
    const char *au = json_string_value(json_object_get(keys, "auth"));

    if (pk == NULL || au == NULL ||
        hd_b64url_decode(pk, strlen(pk), p256dh, HD_ECE_KEY_LEN) !=
            HD_ECE_KEY_LEN ||
        hd_b64url_decode(au, strlen(au), auth, HD_ECE_AUTH_LEN) !=
            HD_ECE_AUTH_LEN)
        return HD_ERROR;
    return HD_OK;
}

static void
webpush_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct webpush *wp = p->data;
    struct wp_worker *ww = worker_get(p, w);
    unsigned char p256dh[HD_ECE_KEY_LEN], auth[HD_ECE_AUTH_LEN];
    unsigned char body[HD_ECE_RS];
    char origin[WP_MAX_ORIGIN], host[256], topic[WP_MAX_TOPIC + 8];
    char headers[2048], *plain, *target = NULL;
    const char *path, *vauth, *err;
    struct wp_origin *o;
    struct wp_req *r;
    size_t plen;
    json_t *payload;
    int tls, port, n, rc;

    if (j->to == NULL ||
        parse_endpoint(j->to, origin, sizeof(origin), &tls, host, sizeof(host),
                       &port, &path) != HD_OK ||
        !tls) {
        j->done(j, HD_OUT_DEAD_ADDRESS, 0,
                "the subscription endpoint is not an https URL");
        return;
    }
    if (keys_of(j, p256dh, auth) != HD_OK) {
        j->done(j, HD_OUT_DEAD_ADDRESS, 0,
                "the subscription has no valid p256dh and auth keys");
        return;
    }

    payload = payload_of(j->content);
    plain = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    plen = strlen(plain);
    n = hd_ece_encrypt(p256dh, auth, plain, plen, 0, body, sizeof(body), &err);
    OPENSSL_cleanse(plain, plen);
    free(plain);
    if (n < 0) {
        char detail[160];
        snprintf(detail, sizeof(detail), "web push: %s (%zu bytes)", err, plen);
        /* a p256dh off the curve can never be used */
        j->done(j, strstr(err, "p256dh") ? HD_OUT_DEAD_ADDRESS : HD_OUT_FAILED,
                0, detail);
        return;
    }

    o = origin_get(wp, ww, w, origin, tls, host, port);
    if (o == NULL) {
        j->done(j, HD_OUT_RETRY, 1000, "web push: no connection pool free");
        return;
    }
    vauth = vapid_auth(wp, o);
    if (vauth == NULL) {
        j->done(j, HD_OUT_RETRY, 60000,
                "web push: cannot sign the VAPID token");
        return;
    }
    topic_of(j->content, topic);
    rc =
        snprintf(headers, sizeof(headers),
                 "TTL: %lld\r\n"
                 "Urgency: %s\r\n"
                 "%s%s%s"
                 "Content-Type: application/octet-stream\r\n"
                 "Content-Encoding: aes128gcm\r\n"
                 "%s",
                 (long long)ttl_of(wp, j, hd_now_ms()), urgency_of(j->priority),
                 *topic ? "Topic: " : "", topic, *topic ? "\r\n" : "", vauth);
    if (rc < 0 || (size_t)rc >= sizeof(headers)) {
        j->done(j, HD_OUT_FAILED, 0, "web push: headers too long");
        return;
    }
    /* the request target: the endpoint's path and query, no fragment */
    if (*path != '/' || strchr(path, '#')) {
        size_t len = strcspn(path, "#");
        target = hd_alloc(len + 2);
        snprintf(target, len + 2, "%s%.*s", *path == '/' ? "" : "/", (int)len,
                 path);
        path = target;
    }

    r = hd_calloc(sizeof(*r));
    r->ww = ww;
    r->o = o;
    r->j = j;
    r->next = ww->inflight;
    if (ww->inflight)
        ww->inflight->prev = r;
    ww->inflight = r;
    o->inflight++;
    rc = hd_http1_request(o->pool, "POST", path, headers, body, (size_t)n,
                          on_response, r);
    free(target);
    if (rc != HD_OK) {
        req_free(r);
        if (rc == HD_AGAIN)
            j->done(j, HD_OUT_RETRY, 1000, "web push: request queue full");
        else
            j->done(j, HD_OUT_FAILED, 0,
                    "web push: the endpoint URL is too long to send");
    }
}

/* ==== the provider ==== */

static int
webpush_accepts(struct hd_provider *p, const struct hd_job *j)
{
    return j->platform && strcmp(j->platform, "web") == 0;
}

static void
webpush_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    struct wp_worker *ww = p->worker_data[w->id];

    if (ww == NULL)
        return;
    /* pools first: they drop their requests without callbacks */
    for (struct wp_origin *o = ww->origins; o; o = o->next) {
        hd_http1_pool_free(o->pool);
        o->pool = NULL;
    }
    while (ww->inflight)
        req_free(ww->inflight);
    while (ww->origins) {
        struct wp_origin *o = ww->origins;
        ww->origins = o->next;
        origin_free(o);
    }
    free(ww);
    p->worker_data[w->id] = NULL;
}

const struct hd_provider_type hd_webpush_provider = {
    "webpush",    webpush_accepts,     webpush_check,   webpush_create,
    webpush_send, webpush_exit_worker, webpush_destroy, NULL,
    NULL,
};
