/*
 * apns.c: the "apns" provider: Apple Push Notification service over
 * HTTP/2 (POST /3/device/<token>), token (ES256 JWT) or certificate auth.
 * create() runs on the main thread; send() on the worker that owns the
 * job, with that worker's connection pools (production and sandbox). The
 * provider token is shared by all workers (jwt.c); each worker keeps a copy
 * and renews it about every 50 minutes. Knows nothing of the store or of
 * HTTP ingest: outcomes go back through job->done.
 */
#include <pthread.h>
#include <stdio.h>
#include <openssl/evp.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/jtext.h"
#include "core/time.h"
#include "provider/apns.h"
#include "provider/h2client.h"
#include "provider/jwt.h"
#include "provider/provider.h"
#include "provider/tls.h"

#define APNS_MAX_PAYLOAD HD_APNS_MAX_PAYLOAD
#define APNS_MAX_COLLAPSE_ID 64
#define APNS_DEFAULT_URL "https://api.push.apple.com"
#define APNS_DEFAULT_SANDBOX_URL "https://api.sandbox.push.apple.com"

struct apns_endpoint {
    char host[256];
    int port;
};

struct apns {
    char *name;
    char *app;   /* devices register with this app name */
    int app_set; /* "app" given: devices without an app are not ours */
    char *topic; /* bundle id */
    struct apns_endpoint ep[2]; /* production, sandbox */
    SSL_CTX *ctx;
    int token_auth;
    struct hd_jwt_cache jwt; /* token auth only */
    int nconns;
    int64_t timeout_ms;
    int metrics_id; /* provider index + 1 */
};

struct apns_req;

/* One worker's side: touched by that worker only. */
struct apns_worker {
    struct hd_h2_pool *pool[2];
    EVP_MD_CTX *md; /* for the apns-ids */
    char *bearer;   /* "bearer <jwt>" */
    int64_t iat;
    struct apns_req *inflight; /* freed at exit if never answered */
    struct hd_freelist reqs;   /* of struct apns_req */
};

struct apns_req {
    struct apns_req *next, *prev;
    struct apns *a;
    struct apns_worker *aw;
    struct hd_worker *w;
    struct hd_job *j;
    int sandbox;
    int64_t iat; /* of the token sent */
    int replays; /* after ExpiredProviderToken */
};

static const struct hd_provider_setting settings[] = {
    {"url", 1, 0},
    {"sandbox_url", 1, 0},
    {"team_id", 1, 0},
    {"key_id", 1, 0},
    {"key_file", 1, 0},
    {"certificate", 1, 0},
    {"certificate_key", 1, 0},
    {"bundle_id", 1, 1},
    {"app", 1, 0},
    {"connections", 1, 0},
    {"ca_file", 1, 0},
    {"timeout", 1, 0},
    {NULL, 0, 0},
};

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
parse_endpoint(const struct hd_conf_kv *kv, struct apns_endpoint *ep, char *err,
               size_t errlen)
{
    const char *path;

    if (hd_h2_parse_url(kv->args[0], ep->host, sizeof(ep->host), &ep->port,
                        &path) != HD_OK ||
        (*path && strcmp(path, "/") != 0))
        return bad(err, errlen, kv, "expected https://host[:port]");
    return HD_OK;
}

static int
apns_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;
    struct apns_endpoint ep;
    int token;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "url")) &&
        parse_endpoint(kv, &ep, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "sandbox_url")) &&
        parse_endpoint(kv, &ep, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "connections"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || n < 1 || n > 64)
            return bad(err, errlen, kv, "expected 1..64");
    }
    if ((kv = hd_conf_kv_find(pc, "timeout"))) {
        int64_t ms;
        if (hd_parse_time_ms(kv->args[0], &ms) != HD_OK || ms < 1)
            return bad(err, errlen, kv, "expected a time");
    }

    token = hd_conf_kv_find(pc, "key_file") || hd_conf_kv_find(pc, "key_id") ||
            hd_conf_kv_find(pc, "team_id");
    if (token && hd_conf_kv_find(pc, "certificate")) {
        snprintf(err, errlen,
                 "provider \"%s\" has both token (key_file) and certificate "
                 "auth in %s:%d",
                 pc->name, pc->file, pc->line);
        return HD_ERROR;
    }
    if (token) {
        static const char *need[] = {"team_id", "key_id", "key_file"};
        EVP_PKEY *k;
        char kerr[256];
        for (size_t i = 0; i < HD_NELEMS(need); i++)
            if (hd_conf_kv_find(pc, need[i]) == NULL) {
                snprintf(err, errlen,
                         "provider \"%s\" of type apns has no \"%s\" "
                         "(token auth needs team_id, key_id and key_file) in "
                         "%s:%d",
                         pc->name, need[i], pc->file, pc->line);
                return HD_ERROR;
            }
        kv = hd_conf_kv_find(pc, "key_file");
        k = hd_jwt_key_load(kv->args[0], EVP_PKEY_EC, kerr, sizeof(kerr));
        if (k == NULL) {
            snprintf(err, errlen, "key_file %s (an APNs .p8 key) in %s:%d",
                     kerr, kv->file, kv->line);
            return HD_ERROR;
        }
        EVP_PKEY_free(k);
    } else if (hd_conf_kv_find(pc, "certificate") == NULL) {
        snprintf(err, errlen,
                 "provider \"%s\" of type apns needs \"key_file\" (token "
                 "auth) or \"certificate\" in %s:%d",
                 pc->name, pc->file, pc->line);
        return HD_ERROR;
    }
    return HD_OK;
}

static int
apns_create(struct hd_provider *p, const struct hd_provider_conf *pc, char *err,
            size_t errlen)
{
    struct apns *a;
    struct hd_tls_conf tc = {NULL, NULL, NULL, "h2"};
    const struct hd_conf_kv *kv;
    const char *s;

    if (apns_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    a = hd_calloc(sizeof(*a));
    a->name = hd_strdup(pc->name);
    a->topic = hd_strdup(arg_of(pc, "bundle_id"));
    a->app = hd_strdup((s = arg_of(pc, "app")) ? s : pc->name);
    a->app_set = s != NULL;
    a->nconns = (s = arg_of(pc, "connections")) ? atoi(s) : 1;
    a->timeout_ms = 10000;
    if ((s = arg_of(pc, "timeout")))
        hd_parse_time_ms(s, &a->timeout_ms);
    a->metrics_id = p->index + 1;

    /* sandbox_url defaults to url when url is set (a test or a proxy) */
    {
        struct hd_conf_kv def = {"url", NULL, 1, pc->file, pc->line};
        char *u = APNS_DEFAULT_URL, *su = APNS_DEFAULT_SANDBOX_URL;
        kv = hd_conf_kv_find(pc, "url");
        if (kv == NULL) {
            def.args = &u;
            kv = &def;
        }
        parse_endpoint(kv, &a->ep[0], err, errlen);
        if (hd_conf_kv_find(pc, "sandbox_url"))
            kv = hd_conf_kv_find(pc, "sandbox_url");
        else if (hd_conf_kv_find(pc, "url") == NULL) {
            def.args = &su;
            kv = &def;
        }
        parse_endpoint(kv, &a->ep[1], err, errlen);
    }

    tc.ca_file = arg_of(pc, "ca_file");
    tc.cert_file = arg_of(pc, "certificate");
    tc.key_file = arg_of(pc, "certificate_key");
    a->ctx = hd_tls_ctx_new(&tc, err, errlen);
    if (a->ctx == NULL)
        goto fail_free_a;

    if (hd_conf_kv_find(pc, "key_file")) {
        EVP_PKEY *k =
            hd_jwt_key_load(arg_of(pc, "key_file"), EVP_PKEY_EC, err, errlen);
        if (k == NULL)
            goto fail_free_ctx;
        a->token_auth = 1;
        hd_jwt_cache_init(&a->jwt, k, arg_of(pc, "key_id"),
                          arg_of(pc, "team_id"));
        a->jwt.metrics_id = a->metrics_id;
    }
    p->data = a;
    return HD_OK;

fail_free_ctx:
    hd_tls_ctx_free(a->ctx);
fail_free_a:
    free(a->name);
    free(a->topic);
    free(a->app);
    free(a);
    return HD_ERROR;
}

static void
apns_destroy(struct hd_provider *p)
{
    struct apns *a = p->data;

    if (a == NULL)
        return;
    if (a->token_auth)
        hd_jwt_cache_free(&a->jwt);
    hd_tls_ctx_free(a->ctx);
    free(a->name);
    free(a->topic);
    free(a->app);
    free(a);
}

/* ==== the request ==== */

/* apns-id: a UUID of the delivery id, so a retry of the same delivery
 * carries the same apns-id. out: 37 bytes. */
static const EVP_MD *sha1;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

/* fetched once: EVP_sha1() makes OpenSSL 3 fetch it again on every init */
static void
sha1_fetch(void)
{
    sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

/* 8-4-4-4-12 lower-case hex (snprintf of 16 fields cost more than
 * SHA-1) */
static void
uuid_text(const unsigned char *u, char *out)
{
    hd_hex_encode(u, 4, out);
    out[8] = '-';
    hd_hex_encode(u + 4, 2, out + 9);
    out[13] = '-';
    hd_hex_encode(u + 6, 2, out + 14);
    out[18] = '-';
    hd_hex_encode(u + 8, 2, out + 19);
    out[23] = '-';
    hd_hex_encode(u + 10, 6, out + 24);
    out[36] = '\0';
}

/* A delivery id herald made, "n" shard(2 hex) seq(16 hex) "-" index, laid
 * out as a version 8 UUID (RFC 9562): seq's 48 high bits, version, its next
 * 12 bits, variant, its low 4 bits, the shard, 50 bits of index. Unique
 * because the id is, and no digest: this runs for every push. HD_DECLINED
 * for any other shape. */
static int
uuid8(const char *id, unsigned char *u)
{
    uint64_t seq = 0, idx = 0, c;
    unsigned shard = 0;
    const char *p;
    int i;

    if (id[0] != 'n')
        return HD_DECLINED;
    for (i = 1; i < 19; i++) { /* the shape hd_store_make_id writes */
        int d = hd_hex_digit((unsigned char)id[i]);
        if (d < 0 || (id[i] >= 'A' && id[i] <= 'F')) /* lower-case only */
            return HD_DECLINED;
        if (i < 3)
            shard = shard << 4 | (unsigned)d;
        else
            seq = seq << 4 | (uint64_t)d;
    }
    if (id[19] != '-')
        return HD_DECLINED;
    /* up to 15 digits: below 2^50, so the index is kept whole */
    for (p = id + 20; *p >= '0' && *p <= '9' && p < id + 20 + 15; p++)
        idx = idx * 10 + (uint64_t)(*p - '0');
    if (p == id + 20 || *p != '\0')
        return HD_DECLINED;
    for (i = 0; i < 6; i++)
        u[i] = (unsigned char)(seq >> (56 - 8 * i));
    u[6] = (unsigned char)(0x80 | ((seq >> 12) & 0x0f));
    u[7] = (unsigned char)(seq >> 4);
    c = (uint64_t)2 << 62 | (seq & 0x0f) << 58 | (uint64_t)shard << 50 |
        (idx & (((uint64_t)1 << 50) - 1));
    for (i = 0; i < 8; i++)
        u[8 + i] = (unsigned char)(c >> (56 - 8 * i));
    return HD_OK;
}

/* hd_apns_id with the digest context c (for ids of another shape, a version
 * 5 UUID), reused by a worker's sends */
static void
apns_id(EVP_MD_CTX *c, const char *delivery_id, char *out)
{
    static const unsigned char ns[16] = {0x9b, 0x1f, 0x4a, 0x62, 0x6c, 0x0d,
                                         0x4e, 0x1a, 0x8e, 0x57, 0x2b, 0x3d,
                                         0x91, 0xc4, 0x70, 0x5e}; /* herald's */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (uuid8(delivery_id, md) == HD_OK) {
        uuid_text(md, out);
        return;
    }
    pthread_once(&sha1_once, sha1_fetch);
    EVP_DigestInit_ex(c, sha1 ? sha1 : EVP_sha1(), NULL);
    EVP_DigestUpdate(c, ns, sizeof(ns));
    EVP_DigestUpdate(c, delivery_id, strlen(delivery_id));
    EVP_DigestFinal_ex(c, md, &mdlen);
    md[6] = (md[6] & 0x0f) | 0x50; /* version 5 */
    md[8] = (md[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    uuid_text(md, out);
}

void
hd_apns_id(const char *delivery_id, char *out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    apns_id(c, delivery_id, out);
    EVP_MD_CTX_free(c);
}

/* A notification's content as APNs sees it, read from the text of its
 * content object: the "push" part's keys over the shorthand title, body
 * and data (the rule of hd_content_for). */
struct apns_content {
    struct hd_jmember c[32], p[32];
    int cn, pn;
};

static int
content_open(struct apns_content *ac, const char *text, size_t len)
{
    const struct hd_jspan *part;

    ac->pn = 0;
    ac->cn = hd_jtext_members(text, len, ac->c, HD_NELEMS(ac->c));
    if (ac->cn < 0)
        return HD_ERROR;
    part = hd_jtext_get(ac->c, ac->cn, "push");
    if (part != NULL && part->n > 0 && part->p[0] == '{') {
        ac->pn = hd_jtext_members(part->p, part->n, ac->p, HD_NELEMS(ac->p));
        if (ac->pn < 0)
            return HD_ERROR;
    }
    return HD_OK;
}

/* key's value, or NULL (also for null: nothing to send); shorthand: key
 * is one of title, body and data, which the content may also give
 * outside its push part */
static const struct hd_jspan *
content_get(const struct apns_content *ac, const char *key, int shorthand)
{
    const struct hd_jspan *v = NULL;

    if (ac->pn > 0)
        v = hd_jtext_get(ac->p, ac->pn, key);
    if (v == NULL && shorthand)
        v = hd_jtext_get(ac->c, ac->cn, key);
    if (v != NULL && v->n == 4 && memcmp(v->p, "null", 4) == 0)
        return NULL;
    return v;
}

/* The payload of the opened content ac (see hd_apns_payload). */
static char *
payload(const struct apns_content *ac, int *background, size_t *len)
{
    static const struct {
        const char *key, *aps_key;
        int shorthand;
    } alert_keys[] = {{"title", "title", 1},
                      {"subtitle", "subtitle", 0},
                      {"body", "body", 1}};
    static const char *aps_keys[][2] = {
        {"badge", "badge"},
        {"sound", "sound"},
        {"thread_id", "thread-id"},
        {"category", "category"},
        {"interruption_level", "interruption-level"},
        {"relevance_score", "relevance-score"},
        {"target_content_id", "target-content-id"}};
    struct hd_jmember *dm;
    const struct hd_jspan *v;
    struct hd_jbuf b;
    int alert = 0, dn;

    hd_jbuf_init(&b, 512);
    hd_jbuf_raw(&b, "{", 1);
    /* custom data at the top level, aps last; values copied as written */
    v = content_get(ac, "data", 1);
    if (v != NULL && v->p[0] == '{') {
        /* a member takes 5 bytes at least ("k":1,) */
        dm = hd_alloc((v->n / 5 + 1) * sizeof(*dm));
        dn = hd_jtext_members(v->p, v->n, dm, (int)(v->n / 5 + 1));
        for (int i = 0; i < dn; i++) {
            if (dm[i].key.n == 3 && memcmp(dm[i].key.p, "aps", 3) == 0)
                continue;
            if (b.len > 1)
                hd_jbuf_raw(&b, ",", 1);
            hd_jbuf_raw(&b, "\"", 1);
            hd_jbuf_raw(&b, dm[i].key.p, dm[i].key.n);
            hd_jbuf_raw(&b, "\":", 2);
            hd_jbuf_raw(&b, dm[i].val.p, dm[i].val.n);
        }
        free(dm);
    }
    hd_jbuf_key(&b, "aps");
    hd_jbuf_raw(&b, "{", 1);
    for (size_t i = 0; i < HD_NELEMS(alert_keys); i++)
        if ((v = content_get(ac, alert_keys[i].key, alert_keys[i].shorthand)) !=
            NULL) {
            if (!alert++) {
                hd_jbuf_key(&b, "alert");
                hd_jbuf_raw(&b, "{", 1);
            }
            hd_jbuf_key(&b, alert_keys[i].aps_key);
            hd_jbuf_raw(&b, v->p, v->n);
        }
    if (alert)
        hd_jbuf_raw(&b, "}", 1);
    *background = !alert;
    for (size_t i = 0; i < HD_NELEMS(aps_keys); i++)
        if ((v = content_get(ac, aps_keys[i][0], 0)) != NULL) {
            hd_jbuf_key(&b, aps_keys[i][1]);
            hd_jbuf_raw(&b, v->p, v->n);
        }
    if (hd_jtext_true(content_get(ac, "mutable_content", 0))) {
        hd_jbuf_key(&b, "mutable-content");
        hd_jbuf_int(&b, 1);
    }
    if (*background || hd_jtext_true(content_get(ac, "content_available", 0))) {
        hd_jbuf_key(&b, "content-available");
        hd_jbuf_int(&b, 1);
    }
    hd_jbuf_raw(&b, "}}", 3); /* with the NUL */
    *len = b.len - 1;
    return b.p;
}

char *
hd_apns_payload(const char *content, size_t clen, int *background, size_t *len)
{
    struct apns_content ac;

    if (content_open(&ac, content, clen) != HD_OK)
        return NULL;
    return payload(&ac, background, len);
}

static int
collapse_id(const struct apns_content *ac, char *buf, size_t size)
{
    return hd_jtext_str(content_get(ac, "collapse_id", 0), buf, size) < 0
               ? HD_DECLINED
               : HD_OK;
}

int
hd_apns_collapse_id(const char *content, size_t clen, char *buf, size_t size)
{
    struct apns_content ac;

    if (content_open(&ac, content, clen) != HD_OK)
        return HD_ERROR;
    return collapse_id(&ac, buf, size);
}

static void
req_free(struct apns_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->aw->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    hd_fl_put(&r->aw->reqs, r, sizeof(*r));
}

static struct apns_worker *
worker_get(struct hd_provider *p, struct hd_worker *w)
{
    struct apns_worker *aw = p->worker_data[w->id];
    if (aw == NULL) {
        aw = hd_calloc(sizeof(*aw));
        aw->md = EVP_MD_CTX_new();
        hd_fl_init(&aw->reqs, sizeof(struct apns_req), 1024);
        p->worker_data[w->id] = aw;
    }
    return aw;
}

static struct hd_h2_pool *
pool_get(struct apns *a, struct apns_worker *aw, struct hd_worker *w,
         int sandbox)
{
    struct hd_h2_pool_conf pc;

    if (aw->pool[sandbox])
        return aw->pool[sandbox];
    memset(&pc, 0, sizeof(pc));
    pc.name = a->name;
    pc.host = a->ep[sandbox].host;
    pc.port = a->ep[sandbox].port;
    pc.ssl_ctx = a->ctx;
    pc.nconns = a->nconns;
    pc.max_queue = 4096;
    pc.connect_timeout_ms = a->timeout_ms < 10000 ? a->timeout_ms : 10000;
    pc.request_timeout_ms = a->timeout_ms;
    pc.metrics_id = a->metrics_id;
    aw->pool[sandbox] = hd_h2_pool_new(w->base, &w->log, &pc);
    return aw->pool[sandbox];
}

/* The worker's bearer, renewed from the shared cache when due or when the
 * peer called the token of stale_iat expired. */
static const char *
bearer(struct apns *a, struct apns_worker *aw, int64_t stale_iat)
{
    int64_t now = hd_now_ms() / 1000;

    if (aw->bearer == NULL || now - aw->iat >= a->jwt.refresh_s ||
        now < aw->iat - 60 || (stale_iat && stale_iat == aw->iat)) {
        int64_t iat = 0;
        char *t = hd_jwt_cache_get(&a->jwt, now, stale_iat, &iat);
        if (t) {
            size_t n = strlen(t) + 8;
            free(aw->bearer);
            aw->bearer = hd_alloc(n);
            snprintf(aw->bearer, n, "bearer %s", t);
            aw->iat = iat;
            free(t);
        }
    }
    return aw->bearer;
}

static void on_response(void *arg, const struct hd_h2_response *res,
                        const char *error);

static int
submit(struct apns_req *r)
{
    struct apns *a = r->a;
    struct hd_job *j = r->j;
    struct hd_h2_header h[8];
    char path[300], id[37], exp[24];
    const char *auth;
    char collapse[256]; /* APNs allows 64 bytes */
    struct hd_h2_pool *pool;
    struct apns_content ac; /* read once for the payload and collapse id */
    int nh = 0, background, rc;
    char *body;
    size_t len;

    if (content_open(&ac, j->content_text, j->content_len) != HD_OK) {
        j->done(j, HD_OUT_FAILED, 0,
                "the notification's content is unreadable");
        return HD_ERROR;
    }
    body = payload(&ac, &background, &len);
    if (len > APNS_MAX_PAYLOAD) {
        char detail[80];
        free(body);
        snprintf(detail, sizeof(detail),
                 "payload of %zu bytes is over the APNs limit of %d", len,
                 APNS_MAX_PAYLOAD);
        j->done(j, HD_OUT_FAILED, 0, detail);
        return HD_ERROR;
    }
    {
        /* snprintf's parse of the format was ~0.6% of a push */
        static const char pre[] = "/3/device/";
        size_t tl = strnlen(j->to, sizeof(path) - sizeof(pre));
        memcpy(path, pre, sizeof(pre) - 1);
        memcpy(path + sizeof(pre) - 1, j->to, tl);
        path[sizeof(pre) - 1 + tl] = '\0';
    }
    apns_id(r->aw->md, j->delivery_id, id);

    h[nh++] = (struct hd_h2_header){"apns-topic", a->topic, 0};
    h[nh++] = (struct hd_h2_header){"apns-push-type",
                                    background ? "background" : "alert", 0};
    h[nh++] = (struct hd_h2_header){
        "apns-priority", background || j->priority == HD_PRIO_LOW ? "5" : "10",
        0};
    h[nh++] = (struct hd_h2_header){"apns-id", id, 1};
    if (j->expires_at_ms > 0) {
        snprintf(exp, sizeof(exp), "%lld",
                 (long long)(j->expires_at_ms / 1000));
        h[nh++] = (struct hd_h2_header){"apns-expiration", exp, 1};
    }
    if (collapse_id(&ac, collapse, sizeof(collapse)) == HD_OK)
        h[nh++] = (struct hd_h2_header){"apns-collapse-id", collapse, 1};
    if (a->token_auth) {
        auth = bearer(a, r->aw, 0);
        if (auth == NULL) {
            free(body);
            j->done(j, HD_OUT_RETRY, 60000, "cannot sign the APNs token");
            return HD_ERROR;
        }
        r->iat = r->aw->iat;
        h[nh++] = (struct hd_h2_header){"authorization", auth, 1};
    }

    pool = pool_get(a, r->aw, r->w, r->sandbox);
    rc = pool ? hd_h2_request(pool, "POST", path, h, nh, body, len, on_response,
                              r)
              : HD_ERROR;
    free(body);
    if (rc != HD_OK) {
        j->done(j, HD_OUT_RETRY, 1000,
                rc == HD_AGAIN ? "APNs queue full" : "no APNs connection");
        return HD_ERROR;
    }
    return HD_OK;
}

void
hd_apns_classify(int st, const char *body, size_t len, const char *retry_after,
                 int64_t now_ms, struct hd_apns_answer *a)
{
    char reason[64] = "";
    json_t *j, *ts;
    int64_t ra;

    memset(a, 0, sizeof(*a));
    if (st == 200) {
        a->outcome = HD_OUT_DELIVERED;
        return;
    }
    j = json_loadb(body, len, 0, NULL);
    if (json_string_value(json_object_get(j, "reason")))
        snprintf(reason, sizeof(reason), "%s",
                 json_string_value(json_object_get(j, "reason")));
    ts = json_object_get(j, "timestamp");
    if (st == 410 && json_is_integer(ts)) {
        a->has_gone_ms = 1;
        a->gone_ms = json_integer_value(ts);
    }
    json_decref(j);
    snprintf(a->detail, sizeof(a->detail), "APNs %d %s", st, reason);
    ra = hd_h2_retry_after_ms(retry_after, now_ms);
    a->expired_token = st == 403 && strcmp(reason, "ExpiredProviderToken") == 0;

    if (st == 410 ||
        (st == 400 && (strcmp(reason, "BadDeviceToken") == 0 ||
                       strcmp(reason, "DeviceTokenNotForTopic") == 0 ||
                       strcmp(reason, "Unregistered") == 0))) {
        a->outcome = HD_OUT_DEAD_ADDRESS;
    } else if (st == 429 || st >= 500 ||
               (st == 400 && strcmp(reason, "IdleTimeout") == 0) ||
               (st == 403 && (strcmp(reason, "ExpiredProviderToken") == 0 ||
                              strcmp(reason, "InvalidProviderToken") == 0))) {
        a->outcome = HD_OUT_RETRY;
        a->retry_after_ms = ra > 0 ? ra : 0;
    } else {
        a->outcome = HD_OUT_FAILED;
    }
}

static void
on_response(void *arg, const struct hd_h2_response *res, const char *error)
{
    struct apns_req *r = arg;
    struct hd_job *j = r->j;
    struct hd_apns_answer a;
    char detail[160];

    if (error) {
        /* connection lost or timed out: the outcome is unknown, retry */
        snprintf(detail, sizeof(detail), "APNs: %s", error);
        req_free(r);
        j->lost_with = hd_h2_lost_with();
        j->done(j, HD_OUT_RETRY, 0, detail);
        return;
    }
    if (res->status == 200) {
        req_free(r);
        j->done(j, HD_OUT_DELIVERED, 0, NULL);
        return;
    }
    hd_apns_classify(res->status, (const char *)res->body, res->len,
                     hd_h2_header_find(res, "retry-after"), hd_now_ms(), &a);
    if (a.expired_token && r->a->token_auth && r->replays == 0) {
        /* renew (at most every 20 minutes) and send once more */
        r->replays++;
        bearer(r->a, r->aw, r->iat);
        if (submit(r) != HD_OK)
            req_free(r);
        return;
    }
    req_free(r);
    /* 410 carries the time APNs learned the token was gone: the
     * dispatcher keeps a device that registered again after that */
    if (a.has_gone_ms)
        j->gone_ms = a.gone_ms;
    j->done(j, a.outcome, a.retry_after_ms, a.detail);
}

/* ==== the provider ==== */

static int
apns_accepts(struct hd_provider *p, const struct hd_job *j)
{
    struct apns *a = p->data;
    return j->platform && strcmp(j->platform, "ios") == 0 &&
           (j->app ? strcmp(j->app, a->app) == 0 : !a->app_set);
}

static void
apns_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct apns *a = p->data;
    struct apns_worker *aw = worker_get(p, w);
    struct apns_req *r;

    if (j->to == NULL || *j->to == '\0' || strlen(j->to) > 200 ||
        strspn(j->to, "0123456789abcdefABCDEF-_.") != strlen(j->to)) {
        j->done(j, HD_OUT_DEAD_ADDRESS, 0, "not an APNs device token");
        return;
    }
    r = hd_fl_get(&aw->reqs, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->a = a;
    r->aw = aw;
    r->w = w;
    r->j = j;
    r->sandbox = j->sandbox ? 1 : 0;
    r->next = aw->inflight;
    if (aw->inflight)
        aw->inflight->prev = r;
    aw->inflight = r;
    if (submit(r) != HD_OK)
        req_free(r);
}

static void
apns_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    struct apns_worker *aw = p->worker_data[w->id];

    if (aw == NULL)
        return;
    hd_h2_pool_free(aw->pool[0]);
    hd_h2_pool_free(aw->pool[1]);
    while (aw->inflight)
        req_free(aw->inflight);
    EVP_MD_CTX_free(aw->md);
    free(aw->bearer);
    hd_fl_drain(&aw->reqs);
    free(aw);
    p->worker_data[w->id] = NULL;
}

const struct hd_provider_type hd_apns_provider = {
    "apns",    apns_accepts,     apns_check,   apns_create,
    apns_send, apns_exit_worker, apns_destroy, .text_content = 1,
};
