/*
 * fcm.c: the "fcm" provider: Firebase Cloud Messaging HTTP v1 over HTTP/2
 * (POST /v1/projects/<id>/messages:send), authorized by an OAuth2 access
 * token obtained with a service account's RS256 JWT assertion. create()
 * runs on the main thread; send() on the job's worker, which keeps its own
 * connection pools and access token: one token request in flight per
 * worker, senders wait for it. Knows nothing of the store or of ingest.
 */
#include <stdio.h>
#include <openssl/evp.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/fcm.h"
#include "provider/h2client.h"
#include "provider/jwt.h"
#include "provider/provider.h"
#include "provider/tls.h"

#define FCM_DEFAULT_URL "https://fcm.googleapis.com"
#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_MAX_WAITING 4096
#define FCM_TOKEN_MARGIN_S 300 /* renew this long before expiry */
#define FCM_TOKEN_RETRY_MS 5000

struct fcm {
    char *name, *app, *project;
    int app_set; /* "app" given: devices without an app are not ours */
    char host[256];
    int port;
    char token_host[256];
    int token_port;
    char *token_path;
    char *client_email, *key_id, *token_uri; /* token_uri: the JWT aud */
    EVP_PKEY *key;
    SSL_CTX *ctx;
    int nconns;
    int64_t timeout_ms;
    int metrics_id; /* provider index + 1 */
};

struct fcm_req;

struct fcm_worker {
    struct hd_h2_pool *pool, *token_pool;
    char *bearer; /* "Bearer <access token>" */
    int64_t expires_ms;
    int fetching; /* a token request is out */
    int metrics_id;
    int64_t failed_at_ms;
    struct fcm_req *waiting, *waiting_tail;
    int nwaiting;
    struct fcm_req *inflight;
};

struct fcm_req {
    struct fcm_req *next, *prev; /* inflight list */
    struct fcm_req *wnext;       /* waiting for a token */
    struct fcm *f;
    struct fcm_worker *fw;
    struct hd_worker *w;
    struct hd_job *j;
    char *bearer_sent;
    int replays; /* after 401 */
};

static const struct hd_provider_setting settings[] = {
    {"project_id", 1, 0}, {"service_account", 1, 1},
    {"url", 1, 0},        {"token_url", 1, 0},
    {"app", 1, 0},        {"connections", 1, 0},
    {"ca_file", 1, 0},    {"timeout", 1, 0},
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

/* Reads the service account file; fills f when f is not NULL. */
static int
load_account(const struct hd_provider_conf *pc, struct fcm *f, char *err,
             size_t errlen)
{
    const struct hd_conf_kv *kv = hd_conf_kv_find(pc, "service_account");
    static const char *need[] = {"client_email", "private_key", "token_uri"};
    const char *pem, *uri;
    char kerr[256], host[256];
    json_error_t je;
    EVP_PKEY *k;
    json_t *sa;
    int port;

    sa = json_load_file(kv->args[0], 0, &je);
    if (sa == NULL || !json_is_object(sa)) {
        snprintf(err, errlen,
                 "service_account \"%s\" is not a JSON object (%s) in %s:%d",
                 kv->args[0], je.text, kv->file, kv->line);
        json_decref(sa);
        return HD_ERROR;
    }
    for (size_t i = 0; i < HD_NELEMS(need); i++)
        if (!json_is_string(json_object_get(sa, need[i]))) {
            snprintf(err, errlen,
                     "service_account \"%s\" has no \"%s\" in %s:%d",
                     kv->args[0], need[i], kv->file, kv->line);
            goto fail_free_sa;
        }
    uri = json_string_value(json_object_get(sa, "token_uri"));
    if (hd_h2_parse_url(uri, host, sizeof(host), &port, &pem) != HD_OK) {
        snprintf(err, errlen,
                 "service_account \"%s\": token_uri \"%s\" is not https in "
                 "%s:%d",
                 kv->args[0], uri, kv->file, kv->line);
        goto fail_free_sa;
    }
    if (arg_of(pc, "project_id") == NULL &&
        !json_is_string(json_object_get(sa, "project_id"))) {
        snprintf(err, errlen,
                 "provider \"%s\" has no \"project_id\", nor has its "
                 "service_account in %s:%d",
                 pc->name, pc->file, pc->line);
        goto fail_free_sa;
    }
    pem = json_string_value(json_object_get(sa, "private_key"));
    k = hd_jwt_key_parse(pem, strlen(pem), EVP_PKEY_RSA, kerr, sizeof(kerr));
    if (k == NULL) {
        snprintf(err, errlen, "service_account \"%s\": private_key %s in %s:%d",
                 kv->args[0], kerr, kv->file, kv->line);
        goto fail_free_sa;
    }
    if (f == NULL) {
        EVP_PKEY_free(k);
        json_decref(sa);
        return HD_OK;
    }
    f->key = k;
    f->client_email =
        hd_strdup(json_string_value(json_object_get(sa, "client_email")));
    f->token_uri = hd_strdup(uri);
    if (json_is_string(json_object_get(sa, "private_key_id")))
        f->key_id =
            hd_strdup(json_string_value(json_object_get(sa, "private_key_id")));
    f->project =
        hd_strdup(arg_of(pc, "project_id")
                      ? arg_of(pc, "project_id")
                      : json_string_value(json_object_get(sa, "project_id")));
    json_decref(sa);
    return HD_OK;

fail_free_sa:
    json_decref(sa);
    return HD_ERROR;
}

static int
fcm_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;
    const char *path;
    char host[256];
    int port;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "url")) &&
        (hd_h2_parse_url(kv->args[0], host, sizeof(host), &port, &path) !=
             HD_OK ||
         (*path && strcmp(path, "/") != 0)))
        return bad(err, errlen, kv, "expected https://host[:port]");
    if ((kv = hd_conf_kv_find(pc, "token_url")) &&
        hd_h2_parse_url(kv->args[0], host, sizeof(host), &port, &path) != HD_OK)
        return bad(err, errlen, kv, "expected https://host[:port]/path");
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
    return load_account(pc, NULL, err, errlen);
}

static void
fcm_free(struct fcm *f)
{
    EVP_PKEY_free(f->key);
    hd_tls_ctx_free(f->ctx);
    free(f->name);
    free(f->app);
    free(f->project);
    free(f->token_path);
    free(f->client_email);
    free(f->key_id);
    free(f->token_uri);
    free(f);
}

static int
fcm_create(struct hd_provider *p, const struct hd_provider_conf *pc, char *err,
           size_t errlen)
{
    struct hd_tls_conf tc = {NULL, NULL, NULL, "h2"};
    const char *s, *path;
    struct fcm *f;

    if (fcm_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    f = hd_calloc(sizeof(*f));
    f->name = hd_strdup(pc->name);
    f->app = hd_strdup((s = arg_of(pc, "app")) ? s : pc->name);
    f->app_set = s != NULL;
    f->nconns = (s = arg_of(pc, "connections")) ? atoi(s) : 1;
    f->timeout_ms = 10000;
    if ((s = arg_of(pc, "timeout")))
        hd_parse_time_ms(s, &f->timeout_ms);
    f->metrics_id = p->index + 1;
    if (load_account(pc, f, err, errlen) != HD_OK)
        goto fail_free_f;
    s = arg_of(pc, "url") ? arg_of(pc, "url") : FCM_DEFAULT_URL;
    hd_h2_parse_url(s, f->host, sizeof(f->host), &f->port, &path);
    s = arg_of(pc, "token_url") ? arg_of(pc, "token_url") : f->token_uri;
    hd_h2_parse_url(s, f->token_host, sizeof(f->token_host), &f->token_port,
                    &path);
    f->token_path = hd_strdup(*path ? path : "/");
    tc.ca_file = arg_of(pc, "ca_file");
    f->ctx = hd_tls_ctx_new(&tc, err, errlen);
    if (f->ctx == NULL)
        goto fail_free_f;
    p->data = f;
    return HD_OK;

fail_free_f:
    fcm_free(f);
    return HD_ERROR;
}

static void
fcm_destroy(struct hd_provider *p)
{
    if (p->data)
        fcm_free(p->data);
}

/* ==== the message ==== */

json_t *
hd_fcm_message(const char *token, json_t *content, int priority, int64_t ttl_s)
{
    json_t *msg = json_object(), *notif = json_object(), *android, *data, *v;
    static const char *nkeys[] = {"title", "body", "image"};
    const char *k;

    json_object_set_new(msg, "token", json_string(token));
    for (size_t i = 0; i < HD_NELEMS(nkeys); i++)
        if (json_is_string(v = json_object_get(content, nkeys[i])))
            json_object_set(notif, nkeys[i], v);
    if (json_object_size(notif))
        json_object_set_new(msg, "notification", notif);
    else
        json_decref(notif);

    data = json_object();
    json_object_foreach(json_object_get(content, "data"), k, v)
    {
        if (json_is_string(v)) {
            json_object_set(data, k, v);
        } else if (!json_is_null(v)) {
            /* FCM wants strings: 3 -> "3", {"a":1} -> "{\"a\":1}" */
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            json_object_set_new(data, k, json_string(s));
            free(s);
        }
    }
    if (json_object_size(data))
        json_object_set_new(msg, "data", data);
    else
        json_decref(data);

    android = json_pack("{s:s}", "priority",
                        priority == HD_PRIO_LOW ? "normal" : "high");
    if (ttl_s >= 0) {
        char ttl[32];
        snprintf(ttl, sizeof(ttl), "%llds", (long long)ttl_s);
        json_object_set_new(android, "ttl", json_string(ttl));
    }
    if (json_is_string(v = json_object_get(content, "collapse_id")))
        json_object_set(android, "collapse_key", v);
    json_object_set_new(msg, "android", android);
    for (size_t i = 0; i < 2; i++) {
        static const char *blocks[] = {"apns", "webpush"};
        if (json_is_object(v = json_object_get(content, blocks[i])))
            json_object_set(msg, blocks[i], v);
    }
    return json_pack("{s:o}", "message", msg);
}

/* The FCM error code of an error body: details[FcmError].errorCode, else
 * error.status; "" if none. *message: error.message or "". */
const char *
hd_fcm_error_code(json_t *body, const char **message)
{
    json_t *err = json_object_get(body, "error"), *d;
    const char *code = "";
    size_t i;

    *message = json_string_value(json_object_get(err, "message"));
    if (*message == NULL)
        *message = "";
    json_array_foreach(json_object_get(err, "details"), i, d)
    {
        const char *t = json_string_value(json_object_get(d, "@type"));
        if (t && strstr(t, "google.firebase.fcm.v1.FcmError") &&
            json_is_string(json_object_get(d, "errorCode")))
            return json_string_value(json_object_get(d, "errorCode"));
    }
    if (json_is_string(json_object_get(err, "status")))
        code = json_string_value(json_object_get(err, "status"));
    return code;
}

/* ==== requests ==== */

static void
req_free(struct fcm_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->fw->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->bearer_sent);
    free(r);
}

static struct hd_h2_pool *
pool_new(struct fcm *f, struct hd_worker *w, const char *host, int port,
         int nconns)
{
    struct hd_h2_pool_conf pc;

    memset(&pc, 0, sizeof(pc));
    pc.name = f->name;
    pc.host = host;
    pc.port = port;
    pc.ssl_ctx = f->ctx;
    pc.nconns = nconns;
    pc.max_queue = 4096;
    pc.connect_timeout_ms = f->timeout_ms < 10000 ? f->timeout_ms : 10000;
    pc.request_timeout_ms = f->timeout_ms;
    pc.metrics_id = f->metrics_id;
    return hd_h2_pool_new(w->base, &w->log, &pc);
}

static void on_send_response(void *arg, const struct hd_h2_response *res,
                             const char *error);
static void fetch_token(struct fcm *f, struct fcm_worker *fw,
                        struct hd_worker *w);

static void
submit(struct fcm_req *r)
{
    struct fcm *f = r->f;
    struct fcm_worker *fw = r->fw;
    struct hd_job *j = r->j;
    struct hd_h2_header h[2];
    char path[512];
    int64_t ttl = -1;
    json_t *m;
    char *body;
    int rc;

    if (fw->bearer == NULL || hd_now_ms() >= fw->expires_ms) {
        /* wait for a token */
        if (fw->nwaiting >= FCM_MAX_WAITING) {
            req_free(r);
            j->done(j, HD_OUT_RETRY, FCM_TOKEN_RETRY_MS,
                    "FCM: waiting for an access token");
            return;
        }
        r->wnext = NULL;
        if (fw->waiting_tail)
            fw->waiting_tail->wnext = r;
        else
            fw->waiting = r;
        fw->waiting_tail = r;
        fw->nwaiting++;
        fetch_token(f, fw, r->w);
        return;
    }
    if (j->expires_at_ms > 0) {
        ttl = (j->expires_at_ms - hd_now_ms()) / 1000;
        if (ttl < 0)
            ttl = 0;
    }
    m = hd_fcm_message(j->to, j->content, j->priority, ttl);
    body = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    snprintf(path, sizeof(path), "/v1/projects/%s/messages:send", f->project);
    h[0] = (struct hd_h2_header){"authorization", fw->bearer, 1};
    h[1] = (struct hd_h2_header){"content-type",
                                 "application/json; charset=UTF-8", 0};
    free(r->bearer_sent);
    r->bearer_sent = hd_strdup(fw->bearer);
    rc = hd_h2_request(fw->pool, "POST", path, h, 2, body, strlen(body),
                       on_send_response, r);
    free(body);
    if (rc != HD_OK) {
        req_free(r);
        j->done(j, HD_OUT_RETRY, 1000, "FCM queue full");
    }
}

static void
on_token_response(void *arg, const struct hd_h2_response *res,
                  const char *error)
{
    struct fcm_req *list, *r;
    struct fcm_worker *fw = arg;
    const char *tok = NULL;
    json_t *body = NULL;
    int64_t exp = 0;
    int fetched = fw->fetching; /* else: answered without a request */

    fw->fetching = 0;
    if (res && res->status == 200) {
        body = json_loadb((const char *)res->body, res->len, 0, NULL);
        tok = json_string_value(json_object_get(body, "access_token"));
        exp = json_integer_value(json_object_get(body, "expires_in"));
    }
    if (fetched)
        HD_COUNT(hd_metrics_provider(fw->metrics_id)
                     ->token_refreshes[!(tok && exp > 0)],
                 1);
    if (tok && exp > 0) {
        size_t n = strlen(tok) + 8;
        int64_t margin =
            exp > 2 * FCM_TOKEN_MARGIN_S ? FCM_TOKEN_MARGIN_S : exp / 2;
        free(fw->bearer);
        fw->bearer = hd_alloc(n);
        snprintf(fw->bearer, n, "Bearer %s", tok);
        fw->expires_ms = hd_now_ms() + (exp - margin) * 1000;
        fw->failed_at_ms = 0;
    } else {
        fw->failed_at_ms = hd_now_ms();
        if (fw->waiting && error)
            hd_log(HD_LOG_ERR, &fw->waiting->w->log, 0,
                   "FCM access token request failed: %s", error);
        else if (fw->waiting)
            hd_log(HD_LOG_ERR, &fw->waiting->w->log, 0,
                   "FCM access token request failed with status %d: %.*s",
                   res->status, (int)(res->len > 300 ? 300 : res->len),
                   (const char *)res->body);
    }
    json_decref(body);

    list = fw->waiting;
    fw->waiting = fw->waiting_tail = NULL;
    fw->nwaiting = 0;
    while ((r = list) != NULL) {
        list = r->wnext;
        if (fw->bearer && hd_now_ms() < fw->expires_ms) {
            submit(r);
        } else {
            struct hd_job *j = r->j;
            req_free(r);
            j->done(j, HD_OUT_RETRY, FCM_TOKEN_RETRY_MS,
                    "FCM: cannot get an access token");
        }
    }
}

static void
fetch_token(struct fcm *f, struct fcm_worker *fw, struct hd_worker *w)
{
    static const char grant[] =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        "&assertion=";
    struct hd_h2_header h[1] = {
        {"content-type", "application/x-www-form-urlencoded", 0}};
    int64_t now = hd_now_ms() / 1000;
    char *jwt, *body;
    size_t n;

    if (fw->fetching)
        return;
    if (fw->failed_at_ms && hd_now_ms() - fw->failed_at_ms < 1000) {
        on_token_response(fw, NULL, "recently failed");
        return;
    }
    jwt = hd_jwt_rs256(f->key, f->key_id, f->client_email, FCM_SCOPE,
                       f->token_uri, now, now + 3600);
    if (jwt == NULL) {
        HD_COUNT(hd_metrics_provider(fw->metrics_id)->token_refreshes[1], 1);
        on_token_response(fw, NULL, "cannot sign the assertion");
        return;
    }
    n = sizeof(grant) + strlen(jwt);
    body = hd_alloc(n);
    snprintf(body, n, "%s%s", grant, jwt);
    free(jwt);
    fw->fetching = 1;
    if (hd_h2_request(fw->token_pool, "POST", f->token_path, h, 1, body,
                      strlen(body), on_token_response, fw) != HD_OK) {
        fw->fetching = 0;
        free(body);
        on_token_response(fw, NULL, "queue full");
        return;
    }
    free(body);
}

void
hd_fcm_classify(int st, const char *body, size_t len, const char *retry_after,
                int64_t now_ms, struct hd_fcm_answer *a)
{
    const char *code, *message;
    json_t *j;
    int64_t ra;

    memset(a, 0, sizeof(*a));
    if (st == 200) {
        a->outcome = HD_OUT_DELIVERED;
        return;
    }
    j = json_loadb(body, len, 0, NULL);
    code = hd_fcm_error_code(j, &message);
    snprintf(a->detail, sizeof(a->detail), "FCM %d %s%s%s", st, code,
             *message ? ": " : "", message);
    ra = hd_h2_retry_after_ms(retry_after, now_ms);
    /* our access token, unless FCM's own with APNs or Web Push failed */
    a->renew_token = st == 401 && strcmp(code, "THIRD_PARTY_AUTH_ERROR") != 0;

    if (st == 404 || strcmp(code, "UNREGISTERED") == 0 ||
        strcmp(code, "SENDER_ID_MISMATCH") == 0 ||
        (st == 400 && strcmp(code, "INVALID_ARGUMENT") == 0 &&
         strstr(message, "token") != NULL)) {
        a->outcome = HD_OUT_DEAD_ADDRESS;
    } else if (st == 429 || strcmp(code, "QUOTA_EXCEEDED") == 0) {
        a->outcome = HD_OUT_RETRY;
        a->retry_after_ms = ra > 60000 ? ra : 60000;
    } else if (st >= 500 || st == 401 || strcmp(code, "UNAVAILABLE") == 0 ||
               strcmp(code, "INTERNAL") == 0 ||
               strcmp(code, "UNSPECIFIED_ERROR") == 0) {
        a->outcome = HD_OUT_RETRY;
        a->retry_after_ms = ra > 0 ? ra : 0;
    } else {
        a->outcome = HD_OUT_FAILED;
    }
    json_decref(j);
}

static void
on_send_response(void *arg, const struct hd_h2_response *res, const char *error)
{
    struct fcm_req *r = arg;
    struct fcm_worker *fw = r->fw;
    struct hd_job *j = r->j;
    struct hd_fcm_answer a;
    char detail[200];

    if (error) {
        snprintf(detail, sizeof(detail), "FCM: %s", error);
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
    hd_fcm_classify(res->status, (const char *)res->body, res->len,
                    hd_h2_header_find(res, "retry-after"), hd_now_ms(), &a);
    if (a.renew_token && r->replays == 0) {
        /* our access token: drop it (unless renewed already), send again */
        r->replays++;
        if (fw->bearer && strcmp(fw->bearer, r->bearer_sent) == 0) {
            free(fw->bearer);
            fw->bearer = NULL;
        }
        submit(r);
        return;
    }
    req_free(r);
    j->done(j, a.outcome, a.retry_after_ms, a.detail);
}

/* ==== the provider ==== */

static int
fcm_accepts(struct hd_provider *p, const struct hd_job *j)
{
    struct fcm *f = p->data;
    return j->platform && strcmp(j->platform, "android") == 0 &&
           (j->app ? strcmp(j->app, f->app) == 0 : !f->app_set);
}

static void
fcm_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct fcm *f = p->data;
    struct fcm_worker *fw = p->worker_data[w->id];
    struct fcm_req *r;

    if (j->to == NULL || *j->to == '\0' || strlen(j->to) > 4096) {
        j->done(j, HD_OUT_DEAD_ADDRESS, 0, "not an FCM registration token");
        return;
    }
    if (fw == NULL) {
        fw = hd_calloc(sizeof(*fw));
        fw->metrics_id = f->metrics_id;
        fw->pool = pool_new(f, w, f->host, f->port, f->nconns);
        fw->token_pool = pool_new(f, w, f->token_host, f->token_port, 1);
        p->worker_data[w->id] = fw;
    }
    if (fw->pool == NULL || fw->token_pool == NULL) {
        j->done(j, HD_OUT_RETRY, 5000, "FCM: no connection pool");
        return;
    }
    r = hd_calloc(sizeof(*r));
    r->f = f;
    r->fw = fw;
    r->w = w;
    r->j = j;
    r->next = fw->inflight;
    if (fw->inflight)
        fw->inflight->prev = r;
    fw->inflight = r;
    submit(r);
}

static void
fcm_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    struct fcm_worker *fw = p->worker_data[w->id];

    if (fw == NULL)
        return;
    hd_h2_pool_free(fw->pool);
    hd_h2_pool_free(fw->token_pool);
    while (fw->inflight)
        req_free(fw->inflight);
    free(fw->bearer);
    free(fw);
    p->worker_data[w->id] = NULL;
}

const struct hd_provider_type hd_fcm_provider = {
    "fcm",    fcm_accepts,     fcm_check,   fcm_create,
    fcm_send, fcm_exit_worker, fcm_destroy,
};
