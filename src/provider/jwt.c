/*
 * jwt.c: ES256 (APNs provider tokens) and RS256 (Google service-account
 * assertions) JWTs, base64url, PEM key loading and the shared APNs token
 * cache. Any thread; the cache takes its own lock, only when a worker's
 * copy of the token is due for renewal (about once per 50 minutes).
 */
#include <errno.h>
#include <stdio.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "provider/jwt.h"

/* ==== base64url ==== */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
hd_b64url_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t i, n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[n++] = b64url[v >> 18];
        out[n++] = b64url[(v >> 12) & 63];
        out[n++] = b64url[(v >> 6) & 63];
        out[n++] = b64url[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        out[n++] = b64url[v >> 18];
        out[n++] = b64url[(v >> 12) & 63];
        if (i + 1 < len)
            out[n++] = b64url[(v >> 6) & 63];
    }
    out[n] = '\0';
    return n;
}

int
hd_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else if (c == '=')
            break;
        else
            return HD_ERROR;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= outlen)
                return HD_ERROR;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)n;
}

/* ==== keys ==== */

static EVP_PKEY *
key_check(EVP_PKEY *k, int want, char *err, size_t errlen)
{
    if (EVP_PKEY_base_id(k) != want) {
        snprintf(err, errlen, "is not an %s private key",
                 want == EVP_PKEY_EC ? "EC" : "RSA");
        EVP_PKEY_free(k);
        return NULL;
    }
    if (want == EVP_PKEY_EC) {
        char curve[64];
        size_t n = 0;
        if (EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof(curve),
                                           &n) != 1 ||
            strcmp(curve, "prime256v1") != 0) {
            snprintf(err, errlen, "is not a P-256 key (ES256)");
            EVP_PKEY_free(k);
            return NULL;
        }
    }
    return k;
}

EVP_PKEY *
hd_jwt_key_parse(const char *pem, size_t len, int want, char *err,
                 size_t errlen)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k;

    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k == NULL) {
        unsigned long e = ERR_get_error();
        char ebuf[200];
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
        ERR_clear_error();
        snprintf(err, errlen, "is not a PEM private key (%s)", ebuf);
        return NULL;
    }
    return key_check(k, want, err, errlen);
}

EVP_PKEY *
hd_jwt_key_load(const char *path, int want, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL) {
        ERR_clear_error();
        snprintf(err, errlen, "\"%s\" is not a PEM private key", path);
        return NULL;
    }
    return key_check(k, want, err, errlen);
}

/* ==== signing ==== */

/* b64url(header) "." b64url(claims) "." b64url(sig): the first two parts
 * are written into a buffer with room for the signature. */
static char *
signing_input(json_t *header, json_t *claims, size_t sigmax, size_t *len)
{
    char *h = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *c = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hl = strlen(h), cl = strlen(c), n;
    char *out = hd_alloc((hl + cl + sigmax) * 4 / 3 + 16);

    n = hd_b64url_encode(h, hl, out);
    out[n++] = '.';
    n += hd_b64url_encode(c, cl, out + n);
    free(h);
    free(c);
    *len = n;
    return out;
}

static int
sign(EVP_PKEY *key, const char *in, size_t len, unsigned char *sig,
     size_t *siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = HD_ERROR;

    if (md == NULL)
        return HD_ERROR;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(md, sig, siglen, (const unsigned char *)in, len) == 1)
        rc = HD_OK;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rc;
}

char *
hd_jwt_es256(EVP_PKEY *key, const char *kid, const char *iss, int64_t iat)
{
    unsigned char der[128], raw[64];
    const unsigned char *p = der;
    size_t len, dlen = sizeof(der);
    const BIGNUM *r, *s;
    ECDSA_SIG *es;
    json_t *h, *c;
    char *out;

    h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", kid);
    c = json_pack("{s:s, s:I}", "iss", iss, "iat", (json_int_t)iat);
    out = signing_input(h, c, sizeof(raw), &len);
    json_decref(h);
    json_decref(c);

    if (sign(key, out, len, der, &dlen) != HD_OK)
        goto fail_free_out;
    /* JWS wants the raw 32-byte r and s, not the DER ECDSA-Sig-Value */
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

char *
hd_jwt_rs256(EVP_PKEY *key, const char *kid, const char *iss, const char *scope,
             const char *aud, int64_t iat, int64_t exp)
{
    size_t len, slen = (size_t)EVP_PKEY_get_size(key);
    unsigned char *sig;
    json_t *h, *c;
    char *out;

    if (slen == 0 || slen > 1024)
        return NULL;
    h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    if (kid)
        json_object_set_new(h, "kid", json_string(kid));
    c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", iss, "scope", scope,
                  "aud", aud, "iat", (json_int_t)iat, "exp", (json_int_t)exp);
    out = signing_input(h, c, slen, &len);
    json_decref(h);
    json_decref(c);

    sig = hd_alloc(slen);
    if (sign(key, out, len, sig, &slen) != HD_OK) {
        free(sig);
        free(out);
        return NULL;
    }
    out[len++] = '.';
    hd_b64url_encode(sig, slen, out + len);
    free(sig);
    return out;
}

/* ==== the shared APNs token ==== */

void
hd_jwt_cache_init(struct hd_jwt_cache *c, EVP_PKEY *key, const char *kid,
                  const char *iss)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->key = key;
    c->kid = hd_strdup(kid);
    c->iss = hd_strdup(iss);
    c->refresh_s = 50 * 60;
    c->min_interval_s = 20 * 60;
}

void
hd_jwt_cache_free(struct hd_jwt_cache *c)
{
    pthread_mutex_destroy(&c->lock);
    EVP_PKEY_free(c->key);
    free(c->kid);
    free(c->iss);
    free(c->token);
}

char *
hd_jwt_cache_get(struct hd_jwt_cache *c, int64_t now_s, int64_t stale_iat,
                 int64_t *iat)
{
    char *copy = NULL;
    int64_t age;

    pthread_mutex_lock(&c->lock);
    age = now_s - c->iat;
    if (c->token == NULL || age >= c->refresh_s || age < -60 ||
        (stale_iat == c->iat && age >= c->min_interval_s)) {
        char *t = hd_jwt_es256(c->key, c->kid, c->iss, now_s);
        HD_COUNT(hd_metrics_provider(c->metrics_id)->token_refreshes[!t], 1);
        if (t) {
            free(c->token);
            c->token = t;
            c->iat = now_s;
        }
    }
    if (c->token) {
        copy = hd_strdup(c->token);
        *iat = c->iat;
    }
    pthread_mutex_unlock(&c->lock);
    return copy;
}
