/*
 * t/unit/provider/jwt.c: base64url, the ES256 APNs provider token (raw
 * r||s signature, verified here with OpenSSL after converting back to
 * DER), the RS256 service-account assertion, and the shared token cache's
 * renewal rules (50 minutes; a stale report honoured after 20 minutes).
 */
#include "provider/jwt.c"

#include <openssl/core_names.h>

#include "tap.h"

static char *
segment(const char *jwt, int n, size_t *len)
{
    const char *s = jwt, *e;
    for (int i = 0; i < n; i++)
        s = strchr(s, '.') + 1;
    e = strchr(s, '.');
    *len = e ? (size_t)(e - s) : strlen(s);
    return hd_strndup(s, *len);
}

static json_t *
decode_json(const char *seg)
{
    unsigned char buf[1024];
    int n = hd_b64url_decode(seg, strlen(seg), buf, sizeof(buf));
    return n < 0 ? NULL : json_loadb((char *)buf, (size_t)n, 0, NULL);
}

static int
verify(EVP_PKEY *k, const char *jwt, const unsigned char *sig, size_t slen)
{
    const char *dot2 = strrchr(jwt, '.');
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, slen, (const unsigned char *)jwt,
                              (size_t)(dot2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void
test_b64url(void)
{
    char out[64];
    unsigned char back[64];
    const char *v[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"",       "Zg",      "Zm8",     "Zm9v",
                          "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

    for (size_t i = 0; i < HD_NELEMS(v); i++) {
        hd_b64url_encode(v[i], strlen(v[i]), out);
        ok(strcmp(out, want[i]) == 0, "b64url(\"%s\") = \"%s\"", v[i], out);
    }
    hd_b64url_encode("\xfb\xff", 2, out);
    is_str(out, "-_8", "b64url uses - and _");
    is_int(hd_b64url_decode("-_8", 3, back, sizeof(back)), 2,
           "decodes 2 bytes");
    ok(back[0] == 0xfb && back[1] == 0xff, "decodes - and _");
    is_int(hd_b64url_decode("Zm9v!", 5, back, sizeof(back)), HD_ERROR,
           "rejects a bad character");
}

static void
test_es256(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    char *jwt = hd_jwt_es256(k, "ABC123DEFG", "DEF123GHIJ", 1437179036);
    unsigned char raw[64], der[80], *p = der;
    size_t len;
    char *h, *c, *s;
    json_t *claims;
    ECDSA_SIG *es;
    int dlen;

    ok(jwt != NULL, "ES256 token made");
    h = segment(jwt, 0, &len);
    is_str(h, "eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ",
           "header segment as in protocols.md 1.6");
    c = segment(jwt, 1, &len);
    claims = decode_json(c);
    is_str(json_string_value(json_object_get(claims, "iss")), "DEF123GHIJ",
           "iss = team id");
    ok(json_integer_value(json_object_get(claims, "iat")) == 1437179036, "iat");
    is_int((int)json_object_size(claims), 2, "no other claims");
    s = segment(jwt, 2, &len);
    is_int(hd_b64url_decode(s, len, raw, sizeof(raw)), 64,
           "signature is 64 raw bytes (r||s), not DER");
    es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    dlen = i2d_ECDSA_SIG(es, &p);
    ok(verify(k, jwt, der, (size_t)dlen), "OpenSSL verifies it");
    raw[5] ^= 1;
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    p = der;
    dlen = i2d_ECDSA_SIG(es, &p);
    ok(!verify(k, jwt, der, (size_t)dlen), "a flipped bit does not verify");
    ECDSA_SIG_free(es);
    json_decref(claims);
    free(h);
    free(c);
    free(s);
    free(jwt);
    EVP_PKEY_free(k);
}

static void
test_rs256(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    char *jwt = hd_jwt_rs256(k, "kid-1", "sa@x.iam.gserviceaccount.com",
                             "https://www.googleapis.com/auth/"
                             "firebase.messaging",
                             "https://oauth2.googleapis.com/token", 1000, 4600);
    unsigned char sig[512];
    json_t *hd, *cl;
    char *h, *c, *s;
    size_t len;
    int n;

    ok(jwt != NULL, "RS256 assertion made");
    h = segment(jwt, 0, &len);
    c = segment(jwt, 1, &len);
    hd = decode_json(h);
    cl = decode_json(c);
    is_str(json_string_value(json_object_get(hd, "alg")), "RS256", "alg");
    is_str(json_string_value(json_object_get(hd, "typ")), "JWT", "typ");
    is_str(json_string_value(json_object_get(hd, "kid")), "kid-1", "kid");
    is_str(json_string_value(json_object_get(cl, "aud")),
           "https://oauth2.googleapis.com/token", "aud");
    is_str(json_string_value(json_object_get(cl, "scope")),
           "https://www.googleapis.com/auth/firebase.messaging", "scope");
    ok(json_integer_value(json_object_get(cl, "exp")) -
               json_integer_value(json_object_get(cl, "iat")) ==
           3600,
       "exp = iat + 3600");
    s = segment(jwt, 2, &len);
    n = hd_b64url_decode(s, len, sig, sizeof(sig));
    is_int(n, 256, "signature is 256 bytes");
    ok(verify(k, jwt, sig, (size_t)n), "OpenSSL verifies it");
    json_decref(hd);
    json_decref(cl);
    free(h);
    free(c);
    free(s);
    free(jwt);
    EVP_PKEY_free(k);
}

static void
test_cache(void)
{
    struct hd_jwt_cache c;
    int64_t iat = 0, t0 = 1800000000;
    char *a, *b;

    hd_jwt_cache_init(&c, EVP_EC_gen("P-256"), "KEY", "TEAM");
    a = hd_jwt_cache_get(&c, t0, 0, &iat);
    ok(a && iat == t0, "first token at t0");
    b = hd_jwt_cache_get(&c, t0 + 600, 0, &iat);
    ok(b && strcmp(a, b) == 0 && iat == t0, "reused 10 minutes later");
    free(b);
    b = hd_jwt_cache_get(&c, t0 + 600, t0, &iat);
    ok(b && strcmp(a, b) == 0, "a stale report is not honoured within 20 min");
    free(b);
    b = hd_jwt_cache_get(&c, t0 + 1300, t0, &iat);
    ok(b && strcmp(a, b) != 0 && iat == t0 + 1300,
       "a stale report after 20 min renews it");
    free(a);
    a = b;
    b = hd_jwt_cache_get(&c, t0 + 1300 + 2999, 0, &iat);
    ok(b && strcmp(a, b) == 0, "kept until 50 minutes");
    free(b);
    b = hd_jwt_cache_get(&c, t0 + 1300 + 3000, 0, &iat);
    ok(b && strcmp(a, b) != 0, "renewed at 50 minutes");
    free(a);
    free(b);
    hd_jwt_cache_free(&c);
}

static void
test_keys(void)
{
    char err[256];
    EVP_PKEY *k;
    const char *notpem = "-----BEGIN PRIVATE KEY-----\nxx\n";

    k = hd_jwt_key_parse(notpem, strlen(notpem), EVP_PKEY_EC, err, sizeof(err));
    ok(k == NULL && strstr(err, "not a PEM private key"),
       "garbage is not a key: %s", err);
    k = hd_jwt_key_load("/nonexistent.p8", EVP_PKEY_EC, err, sizeof(err));
    ok(k == NULL && strstr(err, "cannot open"), "missing file: %s", err);
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"base64url", test_b64url}, {"ES256", test_es256},
        {"RS256", test_rs256},      {"cache", test_cache},
        {"keys", test_keys},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
