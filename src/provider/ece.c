/*
 * ece.c: RFC 8291 Web Push encryption into one RFC 8188 aes128gcm record:
 * ECDH P-256 between an ephemeral key and the subscription's p256dh,
 * HKDF-SHA256 with the subscription's auth secret, AES-128-GCM. OpenSSL
 * only; pure, any thread. Knows nothing of HTTP or of VAPID.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "core/herald.h"
#include "provider/ece.h"

/* An EC P-256 key from the uncompressed point pub and, if priv (a BIGNUM)
 * is given, the private scalar. NULL if pub is not on the curve. */
static EVP_PKEY *
key_from(const unsigned char *pub, const BIGNUM *priv)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *k = NULL;

    if (b == NULL)
        return NULL;
    if (OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
                                        "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                         HD_ECE_KEY_LEN) != 1 ||
        (priv &&
         OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1))
        goto done;
    params = OSSL_PARAM_BLD_to_param(b);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k,
                          priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                          params) != 1)
        k = NULL;

done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    return k;
}

/* The key pair of scalar as_private (32 bytes), its public point in pub. */
static EVP_PKEY *
key_from_private(const unsigned char *as_private, unsigned char *pub)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *d = BN_bin2bn(as_private, 32, NULL);
    EC_POINT *q = g ? EC_POINT_new(g) : NULL;
    EVP_PKEY *k = NULL;

    if (g && d && q && !BN_is_zero(d) &&
        EC_POINT_mul(g, q, d, NULL, NULL, NULL) == 1 &&
        EC_POINT_point2oct(g, q, POINT_CONVERSION_UNCOMPRESSED, pub,
                           HD_ECE_KEY_LEN, NULL) == HD_ECE_KEY_LEN)
        k = key_from(pub, d);
    EC_POINT_free(q);
    BN_clear_free(d);
    EC_GROUP_free(g);
    return k;
}

static int
hmac(const unsigned char *key, size_t klen, const unsigned char *a, size_t alen,
     const unsigned char *b, size_t blen, unsigned char *out)
{
    unsigned char buf[256];
    unsigned int n = 0;

    HD_ASSERT(alen + blen <= sizeof(buf));
    memcpy(buf, a, alen);
    if (blen)
        memcpy(buf + alen, b, blen);
    return HMAC(EVP_sha256(), key, (int)klen, buf, alen + blen, out, &n) &&
                   n == 32
               ? HD_OK
               : HD_ERROR;
}

static int
encrypt(EVP_PKEY *ua, const unsigned char *ua_public, const unsigned char *auth,
        const unsigned char *salt, EVP_PKEY *as, const unsigned char *as_public,
        const void *plain, size_t len, size_t pad, unsigned char *out,
        size_t outlen, const char **err)
{
    static const unsigned char info_webpush[] = "WebPush: info"; /* + \0 */
    static const unsigned char info_cek[] = "Content-Encoding: aes128gcm";
    static const unsigned char info_nonce[] = "Content-Encoding: nonce";
    unsigned char secret[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32],
        info[14 + 2 * HD_ECE_KEY_LEN + 1];
    size_t slen = sizeof(secret), rlen = len + 1 + pad;
    unsigned char *rec = out + HD_ECE_HEADER_LEN;
    EVP_PKEY_CTX *dctx;
    EVP_CIPHER_CTX *c;
    int n, total, rc = HD_ERROR;

    if (len + pad > HD_ECE_MAX_PLAINTEXT) {
        *err = "the web push payload is over 3993 bytes";
        return HD_ERROR;
    }
    if (outlen < len + pad + HD_ECE_OVERHEAD) {
        *err = "no room for the encrypted body";
        return HD_ERROR;
    }

    /* ecdh_secret = ECDH(as_private, ua_public) */
    *err = "ECDH with the subscription key failed";
    dctx = EVP_PKEY_CTX_new(as, NULL);
    if (dctx == NULL || EVP_PKEY_derive_init(dctx) != 1 ||
        EVP_PKEY_derive_set_peer(dctx, ua) != 1 ||
        EVP_PKEY_derive(dctx, secret, &slen) != 1 || slen != 32) {
        EVP_PKEY_CTX_free(dctx);
        goto done;
    }
    EVP_PKEY_CTX_free(dctx);

    /* IKM = HKDF(salt = auth, ecdh_secret, "WebPush: info\0" ua as, 32) */
    memcpy(info, info_webpush, 14); /* with the NUL */
    memcpy(info + 14, ua_public, HD_ECE_KEY_LEN);
    memcpy(info + 14 + HD_ECE_KEY_LEN, as_public, HD_ECE_KEY_LEN);
    info[sizeof(info) - 1] = 0x01;
    *err = "HKDF failed";
    if (hmac(auth, HD_ECE_AUTH_LEN, secret, 32, NULL, 0, prk_key) != HD_OK ||
        hmac(prk_key, 32, info, sizeof(info), NULL, 0, ikm) != HD_OK ||
        /* PRK = HKDF-Extract(salt, IKM); CEK and NONCE: one Expand block */
        hmac(salt, HD_ECE_SALT_LEN, ikm, 32, NULL, 0, prk) != HD_OK ||
        hmac(prk, 32, info_cek, sizeof(info_cek), (const unsigned char *)"\1",
             1, cek) != HD_OK ||
        hmac(prk, 32, info_nonce, sizeof(info_nonce),
             (const unsigned char *)"\1", 1, nonce) != HD_OK)
        goto done;

    /* header: salt | rs | idlen | keyid */
    memcpy(out, salt, HD_ECE_SALT_LEN);
    out[16] = (HD_ECE_RS >> 24) & 0xff;
    out[17] = (HD_ECE_RS >> 16) & 0xff;
    out[18] = (HD_ECE_RS >> 8) & 0xff;
    out[19] = HD_ECE_RS & 0xff;
    out[20] = HD_ECE_KEY_LEN;
    memcpy(out + 21, as_public, HD_ECE_KEY_LEN);

    /* the one (last) record: plain || 0x02 || zeros, sealed in place */
    memmove(rec, plain, len);
    rec[len] = 0x02;
    memset(rec + len + 1, 0, pad);
    *err = "AES-128-GCM failed";
    c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        goto done;
    if (EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce) == 1 &&
        EVP_EncryptUpdate(c, rec, &n, rec, (int)rlen) == 1) {
        total = n;
        if (EVP_EncryptFinal_ex(c, rec + total, &n) == 1 &&
            (size_t)(total += n) == rlen &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, rec + rlen) == 1) {
            rc = (int)(HD_ECE_HEADER_LEN + rlen + 16);
            *err = NULL;
        }
    }
    EVP_CIPHER_CTX_free(c);

done:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(prk_key, sizeof(prk_key));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(cek, sizeof(cek));
    OPENSSL_cleanse(nonce, sizeof(nonce));
    ERR_clear_error();
    return rc;
}

int
hd_ece_encrypt_with(const unsigned char *ua_public, const unsigned char *auth,
                    const unsigned char *salt, const unsigned char *as_private,
                    const void *plain, size_t len, size_t pad,
                    unsigned char *out, size_t outlen, const char **err)
{
    unsigned char as_public[HD_ECE_KEY_LEN];
    EVP_PKEY *ua, *as;
    int rc;

    ua = ua_public[0] == 0x04 ? key_from(ua_public, NULL) : NULL;
    if (ua == NULL) {
        ERR_clear_error();
        *err = "p256dh is not an uncompressed P-256 point";
        return HD_ERROR;
    }
    as = key_from_private(as_private, as_public);
    if (as == NULL) {
        ERR_clear_error();
        EVP_PKEY_free(ua);
        *err = "not a P-256 private key";
        return HD_ERROR;
    }
    rc = encrypt(ua, ua_public, auth, salt, as, as_public, plain, len, pad, out,
                 outlen, err);
    EVP_PKEY_free(as);
    EVP_PKEY_free(ua);
    return rc;
}

int
hd_ece_encrypt(const unsigned char *ua_public, const unsigned char *auth,
               const void *plain, size_t len, size_t pad, unsigned char *out,
               size_t outlen, const char **err)
{
    unsigned char salt[HD_ECE_SALT_LEN], as_public[HD_ECE_KEY_LEN];
    size_t n = 0;
    EVP_PKEY *ua, *as;
    int rc;

    ua = ua_public[0] == 0x04 ? key_from(ua_public, NULL) : NULL;
    if (ua == NULL) {
        ERR_clear_error();
        *err = "p256dh is not an uncompressed P-256 point";
        return HD_ERROR;
    }
    as = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (as == NULL || RAND_bytes(salt, sizeof(salt)) != 1 ||
        EVP_PKEY_get_octet_string_param(as, OSSL_PKEY_PARAM_PUB_KEY, as_public,
                                        sizeof(as_public), &n) != 1 ||
        n != HD_ECE_KEY_LEN || as_public[0] != 0x04) {
        ERR_clear_error();
        EVP_PKEY_free(as);
        EVP_PKEY_free(ua);
        *err = "cannot make an ephemeral P-256 key";
        return HD_ERROR;
    }
    rc = encrypt(ua, ua_public, auth, salt, as, as_public, plain, len, pad, out,
                 outlen, err);
    EVP_PKEY_free(as);
    EVP_PKEY_free(ua);
    return rc;
}
