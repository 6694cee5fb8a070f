/*
 * t/fake/apns.c: a fake Apple Push Notification service for herald's tests
 * and benchmark, in C on nghttp2's server API (core in h2fake.c). TLS +
 * ALPN h2 only, the request rules, JWT checks and error bodies of
 * protocols.md section 1 (checklist 1.10), and per-token fault injection.
 *
 *   objs/fake/apns --cert server.pem --key server.key \
 *       --jwt KEYID:TEAMID:pub.pem [--jwt ...] [--topic com.example.app ...] \
 *       [--client-ca ca.pem] [--log received.jsonl] [--port-file F] \
 *       [--port 0] [--initial-streams 1] [--max-streams 1000] \
 *       [--goaway-after N] [--drop-after N] [--latency-ms N] [--slow-ms N] \
 *       [--fault-ctl FILE]
 *
 * Prints "port=N" on stdout once listening (and writes N to --port-file).
 * Every accepted notification is one JSON line in --log:
 *   {"conn":C,"stream":S,"token":T,"kid":K,"attempt":N,"headers":{apns-*},
 *    "payload":{...},"concurrent":N,"limit":L,"at":ms}
 * Other events are lines with "event": "connect", "goaway", "drop",
 * "violation", "settings" (the client's, by setting id) (and "request"
 * with --fault-ctl, see h2fake.c).
 *
 * Token auth: a connection is tied to the key id of its first valid token
 * (403 UnrelatedKeyIdInToken otherwise); it starts at --initial-streams
 * concurrent streams and is raised to --max-streams by a new SETTINGS
 * after the first request with a valid token, like APNs. A client over the
 * limit gets GOAWAY(REFUSED_STREAM, "Maximum active streams violated for
 * this endpoint."). A verified JWT is cached (as APNs does), so signature
 * checks cost little in benchmarks. --latency-ms delays each 200 without
 * holding up other streams.
 *
 * Scripted device tokens (hex, like real ones), by prefix:
 *   0410 410 Unregistered (+timestamp)    0400 400 BadDeviceToken
 *   0401 400 DeviceTokenNotForTopic       0429 429 TooManyRequests once
 *   0500 500 InternalServerError once     0503 503 ServiceUnavailable once
 *   0403 403 ExpiredProviderToken once    0ef0 RST_STREAM REFUSED_STREAM once
 *   0ff0 never answered                   0413 413 PayloadTooLarge
 *   0de1 200 after --slow-ms (3000), other streams going on meanwhile
 *   0411 410 Unregistered with a timestamp an hour old (the token went
 *        away before the device registered it again)
 * "once" is per token: the next attempt gets 200. 429/503 carry
 * retry-after: 1.
 *
 * --fault-ctl FILE: a mode re-read every 20 ms (ok, 500, 429:S, blackhole,
 * reset) applied to every request before the rules above, and device
 * tokens "e500..."/"e429..." always answered 500 / 429 (retry-after 1);
 * each request is logged as {"event":"request","fconn","stream","token",
 * "id","mode","action","at"[,"retry_after"]}.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "h2fake.h"

#define MAX_KEYS 16
#define MAX_TOPICS 32

struct key {
    const char *kid, *team;
    void *pkey;
};

struct jwt {
    char kid[64];
    long long iat;
};

struct apns_conn {
    char kid[64];
    int raised;
};

static struct {
    struct fk_conf cf;
    struct key keys[MAX_KEYS];
    int nkeys;
    const char *topics[MAX_TOPICS];
    int ntopics;
    uint32_t max_streams;
    int goaway_after, drop_after, latency_ms, slow_ms;
    struct fk_map verified; /* JWT string -> struct jwt */
    struct fk_map attempts; /* device token -> count */
    struct fk_buf body;
} opt;

static const char *push_types[] = {
    "alert",        "background", "location",     "voip",       "complication",
    "fileprovider", "mdm",        "liveactivity", "pushtotalk", "widgets"};

/* ==== answers =========================================================== */

/* how long ago the next 410 says the token went away */
static int64_t gone_ago_ms;

static void
reply(struct fk_req *r, int status, const char *reason, const char *retry)
{
    nghttp2_nv nv[3];
    size_t n = 0;
    const char *id;
    char uuid[37];
    struct fk_jw w;

    if ((id = fk_hdr_get(r, "apns-id", NULL)) == NULL || *id == '\0') {
        fk_uuid4(uuid);
        id = uuid;
    }
    nv[n++] = (nghttp2_nv){(uint8_t *)"apns-id", (uint8_t *)id, 7, strlen(id),
                           NGHTTP2_NV_FLAG_NONE};
    if (retry)
        nv[n++] = (nghttp2_nv){(uint8_t *)"retry-after", (uint8_t *)retry, 11,
                               strlen(retry), NGHTTP2_NV_FLAG_NONE};
    if (reason == NULL) {
        fk_respond(r, status, nv, n, NULL, 0);
        return;
    }
    nv[n++] =
        (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)"application/json",
                     12, 16, NGHTTP2_NV_FLAG_NONE};
    opt.body.len = 0;
    fk_jw_init(&w, &opt.body);
    fk_jw_open(&w, '{');
    fk_jw_key(&w, "reason");
    fk_jw_cstr(&w, reason);
    if (status == 410) {
        fk_jw_key(&w, "timestamp");
        fk_jw_int(&w, fk_now_ms() - gone_ago_ms);
    }
    fk_jw_close(&w, '}');
    fk_respond(r, status, nv, n, opt.body.p, opt.body.len);
}

/* 410 whose timestamp says the token went away AGO ms before now */
static void
reply_gone_before(struct fk_req *r, int64_t ago)
{
    gone_ago_ms = ago;
    reply(r, 410, "Unregistered", NULL);
    gone_ago_ms = 0;
}

static void
fault_reply(struct fk_req *r, int status, int retry_after)
{
    nghttp2_nv nv[3];
    size_t n = 0;
    const char *id, *reason;
    char ra[16];

    nv[n++] =
        (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)"application/json",
                     12, 16, NGHTTP2_NV_FLAG_NONE};
    if ((id = fk_hdr_get(r, "apns-id", NULL)) != NULL)
        nv[n++] = (nghttp2_nv){(uint8_t *)"apns-id", (uint8_t *)id, 7,
                               strlen(id), NGHTTP2_NV_FLAG_NONE};
    if (status == 429) {
        snprintf(ra, sizeof(ra), "%d", retry_after);
        nv[n++] = (nghttp2_nv){(uint8_t *)"retry-after", (uint8_t *)ra, 11,
                               strlen(ra), NGHTTP2_NV_FLAG_NONE};
        reason = "{\"reason\":\"TooManyRequests\"}";
    } else {
        reason = "{\"reason\":\"InternalServerError\"}";
    }
    fk_respond(r, status, nv, n, reason, strlen(reason));
}

/* ==== the provider token ================================================ */

static json_t *
b64url_json(const char *s, size_t n)
{
    unsigned char buf[2048];
    ssize_t len;

    if (n > sizeof(buf) * 4 / 3 - 4)
        return NULL;
    if ((len = fk_b64url_decode(s, n, buf)) < 0)
        return NULL;
    return json_loadb((const char *)buf, (size_t)len, 0, NULL);
}

/* Verifies "bearer <JWT>": NULL and *out on success, else the reason. */
static const char *
check_jwt(const char *auth, const struct jwt **out)
{
    const char *tok, *d1, *d2, *kid;
    struct fk_map_ent *e;
    struct jwt *v;
    json_t *h = NULL, *c = NULL, *iat;
    unsigned char sig[128];
    ssize_t siglen;
    size_t n;
    int i, ok = 0;
    long long now;

    if (auth == NULL)
        return "MissingProviderToken";
    if (strncasecmp(auth, "bearer ", 7) != 0 || auth[7] == '\0')
        return "InvalidProviderToken";
    tok = auth + 7;
    n = strlen(tok);
    if ((e = fk_map_get(&opt.verified, tok, n)) != NULL) {
        v = e->v.p;
        goto check_time;
    }
    d1 = strchr(tok, '.');
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL)
        return "InvalidProviderToken";
    h = b64url_json(tok, (size_t)(d1 - tok));
    c = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!json_is_object(h) || !json_is_object(c))
        goto done;
    kid = json_string_value(json_object_get(h, "kid"));
    if (!json_is_string(json_object_get(h, "alg")) ||
        strcmp(json_string_value(json_object_get(h, "alg")), "ES256") != 0 ||
        kid == NULL || strlen(kid) >= sizeof(v->kid))
        goto done;
    for (i = 0; i < opt.nkeys; i++)
        if (strcmp(opt.keys[i].kid, kid) == 0)
            break;
    iat = json_object_get(c, "iat");
    if (i == opt.nkeys || !json_is_string(json_object_get(c, "iss")) ||
        strcmp(json_string_value(json_object_get(c, "iss")),
               opt.keys[i].team) != 0 ||
        !json_is_integer(iat))
        goto done;
    /* raw r||s, not DER */
    if (strlen(d2 + 1) > 100 ||
        (siglen = fk_b64url_decode(d2 + 1, strlen(d2 + 1), sig)) != 64)
        goto done;
    if (!fk_verify_es256(opt.keys[i].pkey, tok, (size_t)(d2 - tok), sig, 64))
        goto done;
    if ((v = calloc(1, sizeof(*v))) == NULL)
        abort();
    strcpy(v->kid, kid);
    v->iat = json_integer_value(iat);
    if (opt.verified.used > 100000)
        fk_map_clear(&opt.verified);
    fk_map_put(&opt.verified, tok, n)->v.p = v;
    ok = 1;
done:
    json_decref(h);
    json_decref(c);
    if (!ok)
        return "InvalidProviderToken";
check_time:
    now = fk_now_ms() / 1000;
    if (v->iat < now - 3600)
        return "ExpiredProviderToken";
    if (v->iat > now + 300)
        return "InvalidProviderToken";
    *out = v;
    return NULL;
}

/* ==== a request ========================================================= */

static int
is_uuid(const char *s)
{
    int i;

    if (strlen(s) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!(isdigit((unsigned char)s[i]) ||
                     (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void
done(struct fk_req *r)
{
    struct fk_conn *c = r->conn;
    struct fk_jw *w;

    reply(r, 200, NULL, NULL);
    if (opt.goaway_after && c->served == opt.goaway_after && !c->goaway_id) {
        w = fk_log_event("goaway");
        fk_jw_key(w, "conn");
        fk_jw_int(w, c->id);
        fk_jw_key(w, "last");
        fk_jw_int(w, r->stream_id);
        fk_log_end_at();
        fk_goaway(c, r->stream_id, NGHTTP2_NO_ERROR, NULL);
        fk_drop_after(c, 200);
    }
    /* >=: with --latency-ms more have come in by the time this answer goes,
     * and they are lost with the connection, as with a real reset */
    if (opt.drop_after && c->served >= opt.drop_after && !fk_closing(c)) {
        w = fk_log_event("drop");
        fk_jw_key(w, "conn");
        fk_jw_int(w, c->id);
        fk_log_end_at();
        fk_drop(c);
    }
}

static void
record(struct fk_req *r, const char *token, const char *kid, long long n,
       json_t *payload, int cert_auth)
{
    struct fk_jw *w = fk_log_begin();
    const char *name, *value;
    size_t nlen, vlen;
    char *dump;
    int i;

    fk_jw_key(w, "conn");
    fk_jw_int(w, r->conn->id);
    fk_jw_key(w, "stream");
    fk_jw_int(w, r->stream_id);
    fk_jw_key(w, "token");
    fk_jw_cstr(w, token);
    fk_jw_key(w, "kid");
    fk_jw_cstr(w, kid);
    fk_jw_key(w, "attempt");
    fk_jw_int(w, n);
    fk_jw_key(w, "headers");
    fk_jw_open(w, '{');
    for (i = 0; i < r->nhdr; i++) {
        name = fk_hdr_name(r, i, &nlen);
        if (nlen < 5 || memcmp(name, "apns-", 5) != 0)
            continue;
        value = fk_hdr_value(r, i, &vlen);
        fk_jw_key(w, name);
        fk_jw_str(w, value, vlen);
    }
    fk_jw_key(w, "authorization-kind");
    fk_jw_cstr(w, cert_auth ? "certificate" : "token");
    fk_jw_close(w, '}');
    fk_jw_key(w, "payload");
    /* the body as sent when it fits on one line, else re-encoded */
    if (memchr(r->body.p, '\n', r->body.len) == NULL &&
        memchr(r->body.p, '\r', r->body.len) == NULL) {
        fk_jw_raw(w, r->body.p, r->body.len);
    } else {
        dump = json_dumps(payload, JSON_COMPACT);
        fk_jw_raw(w, dump, strlen(dump));
        free(dump);
    }
    fk_jw_key(w, "concurrent");
    fk_jw_int(w, r->conn->active);
    fk_jw_key(w, "limit");
    fk_jw_int(w, r->conn->limit);
    fk_log_end_at();
}

static void
on_request(struct fk_req *r)
{
    static const char *once_hdrs[] = {
        "apns-id",       "apns-topic",      "apns-push-type",
        "apns-priority", "apns-expiration", "apns-collapse-id",
        "authorization", ":path",           ":method"};
    struct fk_conn *c = r->conn;
    struct apns_conn *ac = c->data;
    const char *method, *path, *token, *id, *topic, *type, *prio, *exp, *coll;
    const struct jwt *v = NULL;
    const char *why, *kid = NULL;
    struct fk_map_ent *e;
    json_t *payload, *aps, *ca;
    size_t i, tlen, clen;
    char p4[5];
    long long n;
    int cert_auth = c->cert_auth, ok;

    for (i = 0; i < FK_NELEMS(once_hdrs); i++)
        if (fk_hdr_count(r, once_hdrs[i]) > 1) {
            reply(r, 400, "DuplicateHeaders", NULL);
            return;
        }
    method = fk_hdr_get(r, ":method", NULL);
    if (method == NULL || strcmp(method, "POST") != 0) {
        reply(r, 405, "MethodNotAllowed", NULL);
        return;
    }
    path = fk_hdr_get(r, ":path", NULL);
    if (path == NULL || strncmp(path, "/3/device/", 10) != 0) {
        reply(r, 404, "BadPath", NULL);
        return;
    }
    token = path + 10;
    tlen = strlen(token);
    if (tlen == 0) {
        reply(r, 400, "MissingDeviceToken", NULL);
        return;
    }
    if (tlen < 16 || tlen > 200 ||
        strspn(token, "0123456789abcdefABCDEF") != tlen) {
        reply(r, 400, "BadDeviceToken", NULL);
        return;
    }
    id = fk_hdr_get(r, "apns-id", NULL);
    if (id != NULL && !is_uuid(id)) {
        reply(r, 400, "BadMessageId", NULL);
        return;
    }

    /* auth: a client certificate, or a provider token */
    if (!cert_auth) {
        if ((why = check_jwt(fk_hdr_get(r, "authorization", NULL), &v))) {
            reply(r, 403, why, NULL);
            return;
        }
        if (ac->kid[0] && strcmp(ac->kid, v->kid) != 0) {
            reply(r, 403, "UnrelatedKeyIdInToken", NULL);
            return;
        }
        strcpy(ac->kid, v->kid);
        kid = v->kid;
        if (!ac->raised) {
            /* APNs raises the stream limit once a valid token was seen */
            ac->raised = 1;
            fk_set_max_streams(c, opt.max_streams);
        }
    }

    topic = fk_hdr_get(r, "apns-topic", NULL);
    if (topic == NULL && !cert_auth) {
        reply(r, 400, "MissingTopic", NULL);
        return;
    }
    if (topic != NULL && opt.ntopics) {
        for (i = 0; i < (size_t)opt.ntopics; i++)
            if (strcmp(opt.topics[i], topic) == 0)
                break;
        if (i == (size_t)opt.ntopics) {
            reply(r, 400, "BadTopic", NULL);
            return;
        }
    }
    type = fk_hdr_get(r, "apns-push-type", NULL);
    if (type != NULL) {
        for (i = 0; i < FK_NELEMS(push_types); i++)
            if (strcmp(push_types[i], type) == 0)
                break;
        if (i == FK_NELEMS(push_types)) {
            reply(r, 400, "InvalidPushType", NULL);
            return;
        }
    }
    prio = fk_hdr_get(r, "apns-priority", NULL);
    if (prio != NULL && strcmp(prio, "1") != 0 && strcmp(prio, "5") != 0 &&
        strcmp(prio, "10") != 0) {
        reply(r, 400, "BadPriority", NULL);
        return;
    }
    if (type && strcmp(type, "background") == 0 && prio &&
        strcmp(prio, "10") == 0) {
        reply(r, 400, "BadPriority", NULL);
        return;
    }
    exp = fk_hdr_get(r, "apns-expiration", NULL);
    if (exp != NULL &&
        (*exp == '\0' || strspn(exp, "0123456789") != strlen(exp))) {
        reply(r, 400, "BadExpirationDate", NULL);
        return;
    }
    coll = fk_hdr_get(r, "apns-collapse-id", &clen);
    if (coll != NULL && clen > 64) {
        reply(r, 400, "BadCollapseId", NULL);
        return;
    }
    if (r->body_size == 0) {
        reply(r, 400, "PayloadEmpty", NULL);
        return;
    }
    if (r->body_size > (type && strcmp(type, "voip") == 0 ? 5120u : 4096u)) {
        reply(r, 413, "PayloadTooLarge", NULL);
        return;
    }
    payload = json_loadb(r->body.p, r->body.len, 0, NULL);
    if (!json_is_object(payload)) {
        json_decref(payload);
        /* not a documented reason: herald never sends it */
        {
            reply(r, 400, "BadPayload", NULL);
            return;
        }
    }
    if (type && strcmp(type, "background") == 0) {
        aps = json_object_get(payload, "aps");
        ca = json_object_get(aps, "content-available");
        ok = json_is_number(ca) && json_number_value(ca) == 1;
        if (!ok) {
            json_decref(payload);
            {
                reply(r, 400, "InvalidPushType", NULL);
                return;
            }
        }
    }

    /* scripted behaviours */
    e = fk_map_put(&opt.attempts, token, tlen);
    n = ++e->v.n;
    for (i = 0; i < 4; i++)
        p4[i] = (char)tolower((unsigned char)token[i]);
    p4[4] = '\0';
    why = NULL;
    if (strcmp(p4, "0410") == 0)
        reply(r, 410, "Unregistered", NULL);
    else if (strcmp(p4, "0411") == 0)
        reply_gone_before(r, 3600 * 1000);
    else if (strcmp(p4, "0400") == 0)
        reply(r, 400, "BadDeviceToken", NULL);
    else if (strcmp(p4, "0401") == 0)
        reply(r, 400, "DeviceTokenNotForTopic", NULL);
    else if (strcmp(p4, "0413") == 0)
        reply(r, 413, "PayloadTooLarge", NULL);
    else if (n == 1 && strcmp(p4, "0429") == 0)
        reply(r, 429, "TooManyRequests", "1");
    else if (n == 1 && strcmp(p4, "0500") == 0)
        reply(r, 500, "InternalServerError", NULL);
    else if (n == 1 && strcmp(p4, "0503") == 0)
        reply(r, 503, "ServiceUnavailable", "1");
    else if (n == 1 && strcmp(p4, "0403") == 0)
        reply(r, 403, "ExpiredProviderToken", NULL);
    else if (n == 1 && strcmp(p4, "0ef0") == 0)
        fk_rst(r, NGHTTP2_REFUSED_STREAM);
    else if (strcmp(p4, "0ff0") == 0)
        ; /* never answered */
    else
        why = "accept";
    if (why == NULL) {
        json_decref(payload);
        return;
    }

    record(r, token, kid, n, payload, cert_auth);
    json_decref(payload);
    c->served++;
    if (strcmp(p4, "0de1") == 0)
        fk_defer(r, opt.slow_ms, done);
    else if (opt.latency_ms)
        fk_defer(r, opt.latency_ms, done);
    else
        done(r);
}

static void
on_connect(struct fk_conn *c)
{
    struct fk_jw *w;

    if ((c->data = calloc(1, sizeof(struct apns_conn))) == NULL)
        abort();
    w = fk_log_event("connect");
    fk_jw_key(w, "conn");
    fk_jw_int(w, c->id);
    fk_log_end_at();
}

static void
on_close(struct fk_conn *c)
{
    free(c->data);
    c->data = NULL;
}

/* ==== main ============================================================== */

static long
num_arg(int argc, char **argv, int i)
{
    char *end;
    long v;

    if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", argv[i]);
        exit(2);
    }
    v = strtol(argv[i + 1], &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "%s: bad number \"%s\"\n", argv[i], argv[i + 1]);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct fk_program prog = {"apns", on_connect, on_close,
                                           on_request, fault_reply};
    char *spec, *c1, *c2;
    int i, used;

    opt.cf.initial_streams = 1;
    opt.max_streams = 1000;
    opt.slow_ms = 3000;
    opt.verified.free_value = free;
    for (i = 1; i < argc; i += used) {
        used = 2;
        if (fk_conf_arg(&opt.cf, argc, argv, i))
            continue;
        if (strcmp(argv[i], "--jwt") == 0 && i + 1 < argc) {
            /* KID:TEAM:FILE */
            spec = strdup(argv[i + 1]); /* argv stays as ps shows it */
            c1 = strchr(spec, ':');
            c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c2 == NULL || opt.nkeys == MAX_KEYS) {
                fprintf(stderr, "--jwt KID:TEAM:PUB.pem\n");
                return 2;
            }
            *c1 = *c2 = '\0';
            opt.keys[opt.nkeys].kid = spec;
            opt.keys[opt.nkeys].team = c1 + 1;
            opt.keys[opt.nkeys++].pkey = fk_load_pubkey(c2 + 1);
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc &&
                   opt.ntopics < MAX_TOPICS) {
            opt.topics[opt.ntopics++] = argv[i + 1];
        } else if (strcmp(argv[i], "--initial-streams") == 0) {
            opt.cf.initial_streams = (uint32_t)num_arg(argc, argv, i);
        } else if (strcmp(argv[i], "--max-streams") == 0) {
            opt.max_streams = (uint32_t)num_arg(argc, argv, i);
        } else if (strcmp(argv[i], "--goaway-after") == 0) {
            opt.goaway_after = (int)num_arg(argc, argv, i);
        } else if (strcmp(argv[i], "--drop-after") == 0) {
            opt.drop_after = (int)num_arg(argc, argv, i);
        } else if (strcmp(argv[i], "--latency-ms") == 0) {
            opt.latency_ms = (int)num_arg(argc, argv, i);
        } else if (strcmp(argv[i], "--slow-ms") == 0) {
            opt.slow_ms = (int)num_arg(argc, argv, i);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    return fk_run(&opt.cf, &prog);
}
