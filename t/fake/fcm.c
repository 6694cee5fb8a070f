/*
 * t/fake/fcm.c: a fake Firebase Cloud Messaging HTTP v1 service and its
 * Google OAuth2 token endpoint, for herald's tests, in C on nghttp2's
 * server API (core in h2fake.c). TLS + ALPN h2 (the token endpoint too,
 * on the same port: herald's FCM client reaches token_uri over HTTP/2);
 * the message rules, error bodies (google.rpc.Status with an FcmError
 * detail) and the RS256 assertion check of protocols.md section 2
 * (checklist 2.7), with per-token faults.
 *
 *   objs/fake/fcm --cert server.pem --key server.key \
 *       --account sa-pub.pem:client@example.iam.gserviceaccount.com \
 *       --project test-project [--account ...] [--log received.jsonl] \
 *       [--port-file F] [--port 0] [--token-path /token] \
 *       [--expires-in 3599] [--max-streams 100] [--slow-ms 3000] \
 *       [--fault-ctl FILE]
 *
 * --account PUB:EMAIL[:PROJECT] may be repeated (several service accounts);
 * an access token is good for the project(s) of its account only (403
 * PERMISSION_DENIED otherwise). The assertion's aud must be
 * https://<host>:<port><token-path> as the client was told in the
 * service-account file (token_uri), host 127.0.0.1 or localhost.
 *
 * Lines in --log: {"event":"token",...} per access token issued, and one
 * {"project","token","message","bearer","email","conn","attempt","at"} per
 * accepted message.
 *
 * Scripted registration tokens, by prefix:
 *   dead-    404 NOT_FOUND + FcmError UNREGISTERED
 *   bogus-   400 INVALID_ARGUMENT "The registration token is not a valid FCM
 *            registration token"
 *   flaky-   503 UNAVAILABLE, retry-after: 1, once
 *   quota-   429 RESOURCE_EXHAUSTED + QUOTA_EXCEEDED, retry-after: 1, once
 *   oops-    500 INTERNAL, once
 *   expire-  revokes every access token issued so far, then 401
 *            UNAUTHENTICATED, once (the client must fetch a new one)
 *   hang-    never answered
 *   slow-    200 after --slow-ms (3000), other streams going on meanwhile
 *
 * --fault-ctl FILE: the fault modes of apns.c (ok, 500, 429:S, blackhole,
 * reset), answered with FCM's INTERNAL / QUOTA_EXCEEDED bodies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "h2fake.h"

#define MAX_ACCOUNTS 16
#define MAX_VIOLATIONS 32

struct account {
    const char *email, *project;
    void *pkey;
};

struct grant {
    const struct account *acct;
    int64_t expires_ms;
};

struct violation {
    char field[128], desc[256];
};

static struct {
    struct fk_conf cf;
    struct account acct[MAX_ACCOUNTS];
    int naccts;
    const char *project, *token_path;
    int expires_in, slow_ms;
    struct fk_map issued;   /* access token -> struct grant */
    struct fk_map attempts; /* registration token -> count */
    int ntokens;
    struct fk_buf body;
} opt;

/* ==== answers =========================================================== */

static void
respond_json(struct fk_req *r, int status, const char *retry)
{
    nghttp2_nv nv[2];
    size_t n = 0;

    nv[n++] = (nghttp2_nv){(uint8_t *)"content-type",
                           (uint8_t *)"application/json; charset=UTF-8", 12, 31,
                           NGHTTP2_NV_FLAG_NONE};
    if (retry)
        nv[n++] = (nghttp2_nv){(uint8_t *)"retry-after", (uint8_t *)retry, 11,
                               strlen(retry), NGHTTP2_NV_FLAG_NONE};
    fk_respond(r, status, nv, n, opt.body.p, opt.body.len);
}

/* {"error":{"code","message","status","details":[...]}}: DETAILS (raw
 * JSON objects, comma-separated) first, then the FcmError if any */
static void
rpc_error(struct fk_req *r, int code, const char *status, const char *message,
          const char *fcm_code, const char *retry, const char *details)
{
    struct fk_jw w;

    opt.body.len = 0;
    fk_jw_init(&w, &opt.body);
    fk_jw_open(&w, '{');
    fk_jw_key(&w, "error");
    fk_jw_open(&w, '{');
    fk_jw_key(&w, "code");
    fk_jw_int(&w, code);
    fk_jw_key(&w, "message");
    fk_jw_cstr(&w, message);
    fk_jw_key(&w, "status");
    fk_jw_cstr(&w, status);
    if (details || fcm_code) {
        fk_jw_key(&w, "details");
        fk_jw_open(&w, '[');
        if (details)
            fk_jw_raw(&w, details, strlen(details));
        if (fcm_code) {
            fk_jw_open(&w, '{');
            fk_jw_key(&w, "@type");
            fk_jw_cstr(&w,
                       "type.googleapis.com/google.firebase.fcm.v1.FcmError");
            fk_jw_key(&w, "errorCode");
            fk_jw_cstr(&w, fcm_code);
            fk_jw_close(&w, '}');
        }
        fk_jw_close(&w, ']');
    }
    fk_jw_close(&w, '}');
    fk_jw_close(&w, '}');
    respond_json(r, code, retry);
}

/* the token endpoint's {"error":E[,"error_description":D]} */
static void
oauth_error(struct fk_req *r, int code, const char *error, const char *desc)
{
    struct fk_jw w;

    opt.body.len = 0;
    fk_jw_init(&w, &opt.body);
    fk_jw_open(&w, '{');
    fk_jw_key(&w, "error");
    fk_jw_cstr(&w, error);
    if (desc) {
        fk_jw_key(&w, "error_description");
        fk_jw_cstr(&w, desc);
    }
    fk_jw_close(&w, '}');
    respond_json(r, code, NULL);
}

static void
fault_reply(struct fk_req *r, int status, int retry_after)
{
    char ra[16];

    if (status == 429) {
        snprintf(ra, sizeof(ra), "%d", retry_after);
        rpc_error(r, 429, "RESOURCE_EXHAUSTED",
                  "Quota exceeded for quota metric 'Send requests'",
                  "QUOTA_EXCEEDED", ra, NULL);
    } else {
        rpc_error(r, 500, "INTERNAL", "Internal error encountered.", "INTERNAL",
                  NULL, NULL);
    }
}

/* ==== the token endpoint ================================================ */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The first value of NAME in an x-www-form-urlencoded BODY, decoded into
 * OUT (NUL-terminated, truncated to SIZE); -1 if absent. */
static int
form_get(const char *body, size_t len, const char *name, char *out, size_t size)
{
    const char *p = body, *end = body + len, *amp, *eq;
    size_t nlen = strlen(name), o;

    for (; p < end; p = amp + 1) {
        if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
            amp = end;
        eq = memchr(p, '=', (size_t)(amp - p));
        if (eq == NULL || (size_t)(eq - p) != nlen || memcmp(p, name, nlen))
            continue;
        for (p = eq + 1, o = 0; p < amp && o + 1 < size; p++) {
            if (*p == '+') {
                out[o++] = ' ';
            } else if (*p == '%' && amp - p > 2 && hexval(p[1]) >= 0 &&
                       hexval(p[2]) >= 0) {
                out[o++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                p += 2;
            } else {
                out[o++] = *p;
            }
        }
        out[o] = '\0';
        return 0;
    }
    return -1;
}

static json_t *
b64url_json(const char *s, size_t n)
{
    unsigned char *buf;
    ssize_t len;
    json_t *j;

    if ((buf = malloc(n * 3 / 4 + 4)) == NULL)
        abort();
    len = fk_b64url_decode(s, n, buf);
    j = len < 0 ? NULL : json_loadb((const char *)buf, (size_t)len, 0, NULL);
    free(buf);
    return j;
}

static int
has_scope(const char *scopes, const char *want)
{
    size_t n = strlen(want);
    const char *p;

    for (p = scopes; (p = strstr(p, want)) != NULL; p += n)
        if ((p == scopes || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return 1;
    return 0;
}

static void
token_endpoint(struct fk_req *r)
{
    static const char too_long[] =
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
        "a reasonable timeframe.";
    const char *method, *ct, *d1, *d2, *iss, *aud, *scope, *kid;
    char grant[128], *jwt = NULL, want[2][256], why[512], tok[64];
    unsigned char *sig = NULL;
    json_t *h = NULL, *c = NULL, *iat, *exp;
    const struct account *a = NULL;
    struct grant *g;
    struct fk_jw *w, bw;
    long long now, i_iat, i_exp;
    ssize_t siglen;
    int i;

    method = fk_hdr_get(r, ":method", NULL);
    if (method == NULL || strcmp(method, "POST") != 0) {
        oauth_error(r, 405, "invalid_request", NULL);
        return;
    }
    ct = fk_hdr_get(r, "content-type", NULL);
    if (ct == NULL || strncmp(ct, "application/x-www-form-urlencoded", 33)) {
        oauth_error(r, 400, "invalid_request", "bad content-type");
        return;
    }
    if (form_get(r->body.p, r->body.len, "grant_type", grant, sizeof(grant)) ||
        strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0) {
        oauth_error(r, 400, "unsupported_grant_type", NULL);
        return;
    }
    if ((jwt = malloc(r->body.len + 1)) == NULL)
        abort();
    if (form_get(r->body.p, r->body.len, "assertion", jwt, r->body.len + 1))
        jwt[0] = '\0';
    d1 = strchr(jwt, '.');
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL || strchr(d2 + 1, '.') != NULL) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT: malformed");
        goto done;
    }
    h = b64url_json(jwt, (size_t)(d1 - jwt));
    c = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!json_is_object(h) || !json_is_object(c)) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT: not JSON");
        goto done;
    }
    if (!json_is_string(json_object_get(h, "alg")) ||
        strcmp(json_string_value(json_object_get(h, "alg")), "RS256") != 0) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT: alg");
        goto done;
    }
    iss = json_string_value(json_object_get(c, "iss"));
    for (i = 0; iss && i < opt.naccts; i++)
        if (strcmp(opt.acct[i].email, iss) == 0)
            a = &opt.acct[i];
    if (a == NULL) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT: unknown iss");
        goto done;
    }
    if ((sig = malloc(strlen(d2 + 1) + 4)) == NULL)
        abort();
    siglen = fk_b64url_decode(d2 + 1, strlen(d2 + 1), sig);
    if (siglen <= 0 || !fk_verify_rs256(a->pkey, jwt, (size_t)(d2 - jwt), sig,
                                        (size_t)siglen)) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT Signature.");
        goto done;
    }
    aud = json_string_value(json_object_get(c, "aud"));
    snprintf(want[0], sizeof(want[0]), "https://127.0.0.1:%d%s", fk_port(),
             opt.token_path);
    snprintf(want[1], sizeof(want[1]), "https://localhost:%d%s", fk_port(),
             opt.token_path);
    if (aud == NULL || (strcmp(aud, want[0]) && strcmp(aud, want[1]))) {
        snprintf(why, sizeof(why), "Invalid JWT: aud %s",
                 aud ? aud : "undefined");
        oauth_error(r, 400, "invalid_grant", why);
        goto done;
    }
    scope = json_string_value(json_object_get(c, "scope"));
    if (scope == NULL ||
        !has_scope(scope,
                   "https://www.googleapis.com/auth/firebase.messaging")) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT: scope");
        goto done;
    }
    now = fk_now_ms() / 1000;
    iat = json_object_get(c, "iat");
    exp = json_object_get(c, "exp");
    i_iat = json_integer_value(iat);
    i_exp = json_integer_value(exp);
    if (!json_is_integer(iat) || !json_is_integer(exp) ||
        i_exp - i_iat > 3600 || i_iat > now + 300 || i_exp < now) {
        oauth_error(r, 400, "invalid_grant", too_long);
        goto done;
    }

    fk_uuid4(why);
    snprintf(tok, sizeof(tok), "ya29.fake-%d-%.8s%.4s%.4s", ++opt.ntokens, why,
             why + 9, why + 14);
    if ((g = calloc(1, sizeof(*g))) == NULL)
        abort();
    g->acct = a;
    g->expires_ms = fk_now_ms() + (int64_t)opt.expires_in * 1000;
    fk_map_put(&opt.issued, tok, strlen(tok))->v.p = g;

    kid = json_string_value(json_object_get(h, "kid"));
    w = fk_log_event("token");
    fk_jw_key(w, "n");
    fk_jw_int(w, opt.ntokens);
    fk_jw_key(w, "email");
    fk_jw_cstr(w, a->email);
    fk_jw_key(w, "kid");
    fk_jw_cstr(w, kid && *kid ? kid : NULL);
    fk_log_end_at();

    opt.body.len = 0;
    fk_jw_init(&bw, &opt.body);
    fk_jw_open(&bw, '{');
    fk_jw_key(&bw, "access_token");
    fk_jw_cstr(&bw, tok);
    fk_jw_key(&bw, "expires_in");
    fk_jw_int(&bw, opt.expires_in);
    fk_jw_key(&bw, "token_type");
    fk_jw_cstr(&bw, "Bearer");
    fk_jw_close(&bw, '}');
    respond_json(r, 200, NULL);
done:
    json_decref(h);
    json_decref(c);
    free(sig);
    free(jwt);
}

/* ==== messages:send ===================================================== */

static int
is_duration(const char *s)
{
    size_t d = strspn(s, "0123456789"), f;

    if (d == 0)
        return 0;
    s += d;
    if (*s == '.') {
        f = strspn(s + 1, "0123456789");
        if (f < 1 || f > 9)
            return 0;
        s += 1 + f;
    }
    return s[0] == 's' && s[1] == '\0';
}

static void
add_violation(struct violation *v, int *n, const char *field, const char *desc)
{
    if (*n == MAX_VIOLATIONS)
        return;
    snprintf(v[*n].field, sizeof(v[*n].field), "%s", field);
    snprintf(v[*n].desc, sizeof(v[*n].desc), "%s", desc);
    (*n)++;
}

static void
check_data(json_t *data, const char *where, struct violation *v, int *n)
{
    const char *k;
    json_t *val;
    char field[128], desc[256];
    int i = 0;

    if (data == NULL)
        return;
    if (!json_is_object(data)) {
        snprintf(desc, sizeof(desc), "Invalid value at '%s' (TYPE_MAP)", where);
        add_violation(v, n, where, desc);
        return;
    }
    json_object_foreach(data, k, val)
    {
        if (!json_is_string(val)) {
            snprintf(field, sizeof(field), "%s[%d].value", where, i);
            snprintf(desc, sizeof(desc), "Invalid value at '%s' (TYPE_STRING)",
                     field);
            add_violation(v, n, field, desc);
        }
        if (strcmp(k, "from") == 0 || strcmp(k, "gcm") == 0 ||
            strncmp(k, "google", 6) == 0) {
            snprintf(desc, sizeof(desc), "Invalid data key: %s", k);
            add_violation(v, n, where, desc);
        }
        i++;
    }
}

/* 200 {"name":"projects/<id>/messages/0:<number>"} */
static void
send_ok(struct fk_req *r)
{
    const char *path = fk_hdr_get(r, ":path", NULL);
    const char *p = path + strlen("/v1/projects/");
    char hex[37], name[512];
    struct fk_jw w;

    fk_uuid4(hex);
    snprintf(name, sizeof(name), "projects/%.*s/messages/0:%llu",
             (int)(strchr(p, '/') - p), p, strtoull(hex, NULL, 16));
    opt.body.len = 0;
    fk_jw_init(&w, &opt.body);
    fk_jw_open(&w, '{');
    fk_jw_key(&w, "name");
    fk_jw_cstr(&w, name);
    fk_jw_close(&w, '}');
    respond_json(r, 200, NULL);
}

static void
send_endpoint(struct fk_req *r, const char *project, size_t plen)
{
    static const char *targets[] = {"token", "topic", "condition"};
    char proj[256], buf[512], *dump, *token_key = NULL;
    const char *auth, *bearer, *prio, *ttl, *token = NULL;
    struct fk_map_ent *e;
    struct grant *g = NULL;
    struct violation viol[MAX_VIOLATIONS];
    json_t *req, *msg, *a, *data, *t;
    struct fk_buf det = {0};
    struct fk_jw w, *lw;
    size_t i;
    int nviol = 0, ntargets = 0;
    long long n = 0;

    snprintf(proj, sizeof(proj), "%.*s", (int)plen, project);
    auth = fk_hdr_get(r, "authorization", NULL);
    bearer =
        auth && strncmp(auth, "Bearer ", 7) == 0 && auth[7] ? auth + 7 : NULL;
    if (bearer && (e = fk_map_get(&opt.issued, bearer, strlen(bearer))))
        g = e->v.p;
    if (g == NULL || g->expires_ms < fk_now_ms()) {
        rpc_error(r, 401, "UNAUTHENTICATED",
                  "Request had invalid authentication credentials. Expected "
                  "OAuth 2 access token, login cookie or other valid "
                  "authentication credential.",
                  NULL, NULL, NULL);
        return;
    }
    if (strcmp(g->acct->project, proj) != 0) {
        snprintf(buf, sizeof(buf),
                 "Permission 'cloudmessaging.messages.create' denied on "
                 "resource '//cloudresourcemanager.googleapis.com/projects/"
                 "%s'",
                 proj);
        rpc_error(r, 403, "PERMISSION_DENIED", buf, NULL, NULL, NULL);
        return;
    }
    req = json_loadb(r->body.p, r->body.len, 0, NULL);
    msg = json_object_get(req, "message");
    if (!json_is_object(msg) && !json_is_array(msg)) {
        rpc_error(r, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.",
                  "INVALID_ARGUMENT", NULL, NULL);
        goto done;
    }
    for (i = 0; i < FK_NELEMS(targets); i++)
        ntargets += json_object_get(msg, targets[i]) != NULL;
    if (ntargets != 1) {
        rpc_error(r, 400, "INVALID_ARGUMENT",
                  "Exactly one of token, topic or condition must be "
                  "specified.",
                  "INVALID_ARGUMENT", NULL, NULL);
        goto done;
    }
    a = json_object_get(msg, "android");
    check_data(json_object_get(msg, "data"), "message.data", viol, &nviol);
    check_data(json_object_get(a, "data"), "message.android.data", viol,
               &nviol);
    if (json_is_object(a)) {
        if ((t = json_object_get(a, "priority")) != NULL) {
            prio = json_string_value(t);
            if (prio == NULL ||
                (strcmp(prio, "normal") && strcmp(prio, "high") &&
                 strcmp(prio, "NORMAL") && strcmp(prio, "HIGH")))
                add_violation(viol, &nviol, "message.android.priority",
                              "Invalid value");
        }
        if ((t = json_object_get(a, "ttl")) != NULL) {
            ttl = json_string_value(t);
            if (ttl == NULL || !is_duration(ttl))
                add_violation(viol, &nviol, "message.android.ttl",
                              "Invalid duration");
            else if (strtod(ttl, NULL) > 2419200)
                add_violation(viol, &nviol, "message.android.ttl",
                              "TTL too long");
        }
    }
    t = json_object_get(msg, "notification");
    if (t && !json_is_object(t) && !json_is_array(t) && !json_is_null(t))
        add_violation(viol, &nviol, "message.notification", "Invalid value");
    data = json_object_get(msg, "data");
    dump = data && !json_is_null(data) && !json_is_false(data)
               ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY)
               : NULL;
    i = dump ? strlen(dump) : 2;
    free(dump);
    if (i > 4096) {
        rpc_error(r, 400, "INVALID_ARGUMENT", "Message is too big",
                  "INVALID_ARGUMENT", NULL, NULL);
        goto done;
    }
    if (nviol) {
        fk_jw_init(&w, &det);
        fk_jw_open(&w, '{');
        fk_jw_key(&w, "@type");
        fk_jw_cstr(&w, "type.googleapis.com/google.rpc.BadRequest");
        fk_jw_key(&w, "fieldViolations");
        fk_jw_open(&w, '[');
        for (i = 0; i < (size_t)nviol; i++) {
            fk_jw_open(&w, '{');
            fk_jw_key(&w, "field");
            fk_jw_cstr(&w, viol[i].field);
            fk_jw_key(&w, "description");
            fk_jw_cstr(&w, viol[i].desc);
            fk_jw_close(&w, '}');
        }
        fk_jw_close(&w, ']');
        fk_jw_close(&w, '}');
        rpc_error(r, 400, "INVALID_ARGUMENT", viol[0].desc, "INVALID_ARGUMENT",
                  NULL, det.p);
        goto done;
    }

    t = json_object_get(msg, "token");
    if (t != NULL) {
        token_key = json_is_string(t)
                        ? strdup(json_string_value(t))
                        : json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
        token = token_key;
        e = fk_map_put(&opt.attempts, token, strlen(token));
        n = ++e->v.n;
        if (!json_is_string(t))
            token = "";
        if (strncmp(token, "dead-", 5) == 0) {
            rpc_error(r, 404, "NOT_FOUND", "Requested entity was not found.",
                      "UNREGISTERED", NULL, NULL);
            goto done;
        }
        if (strncmp(token, "bogus-", 6) == 0) {
            rpc_error(r, 400, "INVALID_ARGUMENT",
                      "The registration token is not a valid FCM "
                      "registration token",
                      "INVALID_ARGUMENT", NULL, NULL);
            goto done;
        }
        if (strncmp(token, "hang-", 5) == 0)
            goto done; /* never answered */
        if (n == 1 && strncmp(token, "flaky-", 6) == 0) {
            rpc_error(r, 503, "UNAVAILABLE",
                      "The service is currently unavailable.", "UNAVAILABLE",
                      "1", NULL);
            goto done;
        }
        if (n == 1 && strncmp(token, "quota-", 6) == 0) {
            rpc_error(r, 429, "RESOURCE_EXHAUSTED",
                      "Quota exceeded for quota metric 'Send requests'",
                      "QUOTA_EXCEEDED", "1", NULL);
            goto done;
        }
        if (n == 1 && strncmp(token, "oops-", 5) == 0) {
            rpc_error(r, 500, "INTERNAL", "Internal error encountered.",
                      "INTERNAL", NULL, NULL);
            goto done;
        }
        if (n == 1 && strncmp(token, "expire-", 7) == 0) {
            fk_map_clear(&opt.issued);
            rpc_error(r, 401, "UNAUTHENTICATED",
                      "Request had invalid authentication credentials.", NULL,
                      NULL, NULL);
            goto done;
        }
    }

    lw = fk_log_begin();
    fk_jw_key(lw, "project");
    fk_jw_cstr(lw, proj);
    if (t != NULL) {
        fk_jw_key(lw, "token");
        dump = json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
        fk_jw_raw(lw, dump, strlen(dump));
        free(dump);
    }
    fk_jw_key(lw, "message");
    dump = json_dumps(msg, JSON_COMPACT);
    fk_jw_raw(lw, dump, strlen(dump));
    free(dump);
    fk_jw_key(lw, "bearer");
    fk_jw_cstr(lw, bearer);
    if (t != NULL) {
        fk_jw_key(lw, "email");
        fk_jw_cstr(lw, g->acct->email);
    }
    fk_jw_key(lw, "conn");
    fk_jw_int(lw, r->conn->id);
    if (t != NULL) {
        fk_jw_key(lw, "attempt");
        fk_jw_int(lw, n);
    }
    fk_jw_key(lw, "at");
    fk_jw_int(lw, fk_now_ms());
    fk_log_end();
    r->conn->served++;

    if (strncmp(token ? token : "", "slow-", 5) == 0)
        fk_defer(r, opt.slow_ms, send_ok);
    else
        send_ok(r);
done:
    free(token_key);
    fk_buf_free(&det);
    json_decref(req);
}

static void
on_request(struct fk_req *r)
{
    static const char pre[] = "/v1/projects/", suf[] = "/messages:send";
    const char *path, *method, *project, *slash;
    char msg[512];
    size_t len;

    path = fk_hdr_get(r, ":path", &len);
    if (path == NULL)
        path = "", len = 0;
    if (strcmp(path, opt.token_path) == 0) {
        token_endpoint(r);
        return;
    }
    project = path + sizeof(pre) - 1;
    slash = len > sizeof(pre) - 1 ? strchr(project, '/') : NULL;
    if (strncmp(path, pre, sizeof(pre) - 1) != 0 || slash == NULL ||
        slash == project || strcmp(slash, suf) != 0) {
        snprintf(msg, sizeof(msg), "Not found: %s", path);
        rpc_error(r, 404, "NOT_FOUND", msg, NULL, NULL, NULL);
        return;
    }
    method = fk_hdr_get(r, ":method", NULL);
    if (method == NULL || strcmp(method, "POST") != 0) {
        rpc_error(r, 405, "INVALID_ARGUMENT", "Method not allowed", NULL, NULL,
                  NULL);
        return;
    }
    send_endpoint(r, project, (size_t)(slash - project));
}

/* ==== main ============================================================== */

int
main(int argc, char **argv)
{
    static const struct fk_program prog = {"fcm", NULL, NULL, on_request,
                                           fault_reply};
    char *spec, *c1, *c2;
    int i, used;

    opt.cf.initial_streams = 100;
    opt.token_path = "/token";
    opt.expires_in = 3599;
    opt.slow_ms = 3000;
    opt.issued.free_value = free;
    for (i = 1; i < argc; i += used) {
        used = 2;
        if (fk_conf_arg(&opt.cf, argc, argv, i))
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--account") == 0) {
            /* PUB:EMAIL[:PROJECT] */
            spec = strdup(argv[i + 1]); /* argv stays as ps shows it */
            c1 = strchr(spec, ':');
            if (c1 == NULL || opt.naccts == MAX_ACCOUNTS) {
                fprintf(stderr, "--account PUB.pem:EMAIL[:PROJECT]\n");
                return 2;
            }
            *c1 = '\0';
            if ((c2 = strchr(c1 + 1, ':')) != NULL)
                *c2 = '\0';
            opt.acct[opt.naccts].pkey = fk_load_pubkey(spec);
            opt.acct[opt.naccts].email = c1 + 1;
            opt.acct[opt.naccts++].project = c2 ? c2 + 1 : NULL;
        } else if (strcmp(argv[i], "--project") == 0) {
            opt.project = argv[i + 1];
        } else if (strcmp(argv[i], "--token-path") == 0) {
            opt.token_path = argv[i + 1];
        } else if (strcmp(argv[i], "--expires-in") == 0) {
            opt.expires_in = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--slow-ms") == 0) {
            opt.slow_ms = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--max-streams") == 0) {
            opt.cf.initial_streams = (uint32_t)atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    for (i = 0; i < opt.naccts; i++) {
        if (opt.acct[i].project == NULL)
            opt.acct[i].project = opt.project ? opt.project : "";
    }
    return fk_run(&opt.cf, &prog);
}
