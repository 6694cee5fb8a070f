/*
 * t/unit/provider/webpush.c: the Web Push provider's pure parts: endpoint
 * origins (the VAPID aud), the VAPID JWT (header, claims, a raw r||s
 * signature that verifies with the public key `k` carries) and its reuse
 * per origin, the `herald -g vapid` helpers, Topic, Urgency, TTL and the
 * payload the service worker receives.
 */
#include "provider/webpush.c"

#include <stdlib.h>
#include <unistd.h>

#include <openssl/param_build.h>

#include "tap.h"

static EVP_PKEY *
key_from(const unsigned char *pub, void *unused)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM *params;
    EVP_PKEY *k = NULL;

    (void)unused;
    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                    0);
    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 65);
    params = OSSL_PARAM_BLD_to_param(b);
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        k = NULL;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    EVP_PKEY_CTX_free(ctx);
    return k;
}

static void
test_origin(void)
{
    static const struct {
        const char *url, *origin, *host, *path;
        int port;
    } v[] = {
        {"https://fcm.googleapis.com/fcm/send/abc",
         "https://fcm.googleapis.com", "fcm.googleapis.com", "/fcm/send/abc",
         443},
        {"https://Push.Example.NET:8443/p/x?y=1",
         "https://push.example.net:8443", "push.example.net", "/p/x?y=1", 8443},
        {"https://127.0.0.1:443/a", "https://127.0.0.1", "127.0.0.1", "/a",
         443},
        {"https://[::1]:9000/a", "https://[::1]:9000", "::1", "/a", 9000},
    };
    char origin[WP_MAX_ORIGIN], host[256];
    const char *path;
    int tls, port;

    for (size_t i = 0; i < HD_NELEMS(v); i++) {
        int rc = parse_endpoint(v[i].url, origin, sizeof(origin), &tls, host,
                                sizeof(host), &port, &path);
        ok(rc == HD_OK && strcmp(origin, v[i].origin) == 0 &&
               strcmp(host, v[i].host) == 0 && port == v[i].port &&
               strcmp(path, v[i].path) == 0 && tls,
           "origin of %s: %s (host %s port %d path %s)", v[i].url,
           rc == HD_OK ? origin : "error", host, port, path);
    }
    ok(parse_endpoint("ftp://x/y", origin, sizeof(origin), &tls, host,
                      sizeof(host), &port, &path) == HD_ERROR,
       "ftp:// is not an endpoint");
}

static json_t *
part(const char *jwt, int n)
{
    unsigned char buf[1024];
    const char *s = jwt, *e;
    int len;

    for (int i = 0; i < n; i++)
        s = strchr(s, '.') + 1;
    e = strchr(s, '.');
    len =
        hd_b64url_decode(s, e ? (size_t)(e - s) : strlen(s), buf, sizeof(buf));
    return len < 0 ? NULL : json_loadb((char *)buf, (size_t)len, 0, NULL);
}

/* Verifies jwt's raw r||s signature with the base64url public point k. */
static int
verify(const char *jwt, const char *k)
{
    unsigned char pub[80], raw[80], der[80], *dp = der;
    const char *dot2 = strrchr(jwt, '.');
    EVP_PKEY *key;
    ECDSA_SIG *sig;
    EVP_MD_CTX *md;
    int dlen, good;

    if (hd_b64url_decode(k, strlen(k), pub, sizeof(pub)) != 65 ||
        hd_b64url_decode(dot2 + 1, strlen(dot2 + 1), raw, sizeof(raw)) != 64)
        return 0;
    key = key_from(pub, NULL);
    sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL),
                   BN_bin2bn(raw + 32, 32, NULL));
    dlen = i2d_ECDSA_SIG(sig, &dp);
    ECDSA_SIG_free(sig);
    md = EVP_MD_CTX_new();
    good = key && dlen > 0 &&
           EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
           EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt,
                            (size_t)(dot2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return good;
}

static void
test_vapid(void)
{
    char path[] = "/tmp/herald-vapid-XXXXXX", pub[HD_WEBPUSH_PUBLIC_LEN],
         pub2[HD_WEBPUSH_PUBLIC_LEN], err[256];
    struct webpush wp;
    struct wp_origin o;
    char *pem = NULL, *jwt;
    const char *a1, *a2;
    json_t *h, *c;
    int fd;

    ok(hd_webpush_vapid_new(&pem, pub, err, sizeof(err)) == HD_OK,
       "a new VAPID key pair");
    is_int(strlen(pub), 87, "public key: 87 base64url characters");
    ok(pub[0] == 'B', "public key: an uncompressed point (0x04: 'B')");
    ok(pem && strstr(pem, "-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, pem, strlen(pem)) != (ssize_t)strlen(pem))
        diag("cannot write %s", path);
    close(fd);
    ok(hd_webpush_vapid_public(path, pub2, err, sizeof(err)) == HD_OK &&
           strcmp(pub, pub2) == 0,
       "hd_webpush_vapid_public reads the same public key back");
    ok(hd_webpush_vapid_public("/nonexistent", pub2, err, sizeof(err)) ==
               HD_ERROR &&
           strstr(err, "cannot open"),
       "a missing file: %s", err);

    memset(&wp, 0, sizeof(wp));
    wp.vapid = hd_jwt_key_load(path, EVP_PKEY_EC, err, sizeof(err));
    unlink(path);
    free(pem);
    snprintf(wp.vapid_public, sizeof(wp.vapid_public), "%s", pub);
    wp.subject = "mailto:ops@example.com";
    pthread_mutex_init(&wp.sign_lock, NULL);

    jwt =
        vapid_jwt(wp.vapid, "https://push.example.net", wp.subject, 1453523768);
    h = part(jwt, 0);
    c = part(jwt, 1);
    {
        json_t *want = json_pack("{s:s, s:s}", "typ", "JWT", "alg", "ES256");
        ok(json_equal(h, want), "JWT header {typ: JWT, alg: ES256}");
        json_decref(want);
    }
    ok(c &&
           strcmp(json_string_value(json_object_get(c, "aud")),
                  "https://push.example.net") == 0 &&
           json_integer_value(json_object_get(c, "exp")) == 1453523768 &&
           strcmp(json_string_value(json_object_get(c, "sub")),
                  "mailto:ops@example.com") == 0,
       "claims aud, exp, sub");
    ok(verify(jwt, pub), "the signature verifies with k");
    jwt[strlen(jwt) - 3] ^= 1;
    ok(!verify(jwt, pub), "a changed signature does not");
    json_decref(h);
    json_decref(c);
    free(jwt);

    memset(&o, 0, sizeof(o));
    snprintf(o.origin, sizeof(o.origin), "https://fcm.googleapis.com");
    a1 = vapid_auth(&wp, &o);
    {
        char t[1024], k[128];
        int64_t exp, now = hd_now_ms() / 1000;
        ok(a1 && sscanf(a1, "Authorization: vapid t=%1023[^,], k=%127[^\r]", t,
                        k) == 2,
           "Authorization: vapid t=JWT, k=KEY");
        is_str(k, pub, "k is the VAPID public key");
        c = part(t, 1);
        exp = json_integer_value(json_object_get(c, "exp"));
        ok(exp > now + 11 * 3600 && exp <= now + 12 * 3600 + 1,
           "exp is 12 h ahead (at most 24 h)");
        is_str(json_string_value(json_object_get(c, "aud")),
               "https://fcm.googleapis.com", "aud is the endpoint's origin");
        json_decref(c);
        ok(verify(t, pub), "the origin's token verifies");
    }
    a2 = vapid_auth(&wp, &o);
    ok(a1 == a2, "the token is reused for the origin");
    o.auth_exp = hd_now_ms() / 1000 + 3000; /* within an hour of expiry */
    a2 = vapid_auth(&wp, &o);
    ok(o.auth_exp > hd_now_ms() / 1000 + 11 * 3600, "renewed near expiry");
    o.auth_exp = 0; /* a 401/403 clears it */
    vapid_auth(&wp, &o);
    ok(o.auth_exp > hd_now_ms() / 1000 + 11 * 3600, "renewed after refusal");
    free(o.auth);
    EVP_PKEY_free(wp.vapid);
    pthread_mutex_destroy(&wp.sign_lock);
}

static void
test_headers(void)
{
    char topic[WP_MAX_TOPIC + 8];
    json_t *c;
    struct webpush wp = {.ttl_s = WP_DEFAULT_TTL_S};
    struct hd_job j;
    int64_t now = 1700000000000LL;

    c = json_pack("{s:s}", "collapse_id", "scores-42");
    topic_of(c, topic);
    is_str(topic, "scores-42", "Topic: a safe collapse id as is");
    json_decref(c);
    c = json_pack("{s:s, s:s}", "topic", "t1", "collapse_id", "c1");
    topic_of(c, topic);
    is_str(topic, "t1", "Topic: \"topic\" first");
    json_decref(c);
    c = json_pack("{s:s}", "collapse_id", "match/42 (live) and more than 32");
    topic_of(c, topic);
    ok(strlen(topic) == 32 && strspn(topic, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcde"
                                            "fghijklmnopqrstuvwxyz0123456789-"
                                            "_") == 32,
       "Topic: an unsafe id hashed to 32 base64url characters: %s", topic);
    json_decref(c);
    c = json_object();
    topic_of(c, topic);
    is_str(topic, "", "no Topic without an id");
    json_decref(c);

    is_str(urgency_of(HD_PRIO_LOW), "low", "Urgency: low");
    is_str(urgency_of(HD_PRIO_NORMAL), "normal", "Urgency: normal");
    is_str(urgency_of(HD_PRIO_HIGH), "high", "Urgency: high");
    is_str(urgency_of(HD_PRIO_CRITICAL), "high", "Urgency: critical is high");

    memset(&j, 0, sizeof(j));
    is_int(ttl_of(&wp, &j, now), 2419200, "TTL: 4 weeks by default");
    j.expires_at_ms = now + 3600500;
    is_int(ttl_of(&wp, &j, now), 3600, "TTL: what is left of the expiry");
    j.expires_at_ms = now - 1000;
    is_int(ttl_of(&wp, &j, now), 0, "TTL: 0 once expired");

    c = json_pack("{s:s, s:s, s:s, s:s, s:{s:i}, s:s, s:n}", "title", "T",
                  "body", "B", "icon", "/i.png", "url", "/u", "data", "n", 1,
                  "collapse_id", "x", "sound", NULL);
    {
        json_t *p = payload_of(c);
        char *s = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
        is_str(s,
               "{\"body\":\"B\",\"data\":{\"n\":1},\"icon\":\"/i.png\","
               "\"title\":\"T\",\"url\":\"/u\"}",
               "payload: title, body, icon, url, data only");
        free(s);
        json_decref(p);
    }
    json_decref(c);
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"origin", test_origin},
        {"vapid", test_vapid},
        {"headers", test_headers},
    };

    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
