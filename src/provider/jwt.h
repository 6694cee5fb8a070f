/*
 * jwt.h: JSON Web Tokens signed by herald: ES256 provider tokens for APNs
 * (raw r||s signature) and RS256 assertions for the Google OAuth2
 * service-account flow. Pure functions plus one small locked cache; any
 * thread. Knows nothing of HTTP or of the providers that send the tokens.
 */
#ifndef HD_JWT_H
#define HD_JWT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* base64url without padding; returns the length written (out holds
 * 4 * ceil(len / 3) + 1 bytes at least) */
size_t hd_b64url_encode(const void *in, size_t len, char *out);
/* decodes base64url or base64 (padding optional); returns the length or
 * HD_ERROR */
int hd_b64url_decode(const char *in, size_t len, unsigned char *out,
                     size_t outlen);

/* A private key from a PEM file or string; want is EVP_PKEY_EC (P-256
 * only) or EVP_PKEY_RSA. NULL and a message in err on failure. */
EVP_PKEY *hd_jwt_key_load(const char *path, int want, char *err, size_t errlen);
EVP_PKEY *hd_jwt_key_parse(const char *pem, size_t len, int want, char *err,
                           size_t errlen);

/* {"alg":"ES256","kid":kid}.{"iss":iss,"iat":iat} signed with key:
 * malloc'd string, or NULL. */
char *hd_jwt_es256(EVP_PKEY *key, const char *kid, const char *iss,
                   int64_t iat);
/* {"alg":"RS256","typ":"JWT"[,"kid"]}.{"iss","scope","aud","iat","exp"}
 * signed with key: malloc'd string, or NULL. */
char *hd_jwt_rs256(EVP_PKEY *key, const char *kid, const char *iss,
                   const char *scope, const char *aud, int64_t iat,
                   int64_t exp);

/* The APNs provider token of one key, shared by every worker: regenerated
 * when older than refresh_s, or when a caller reports it stale (403
 * ExpiredProviderToken) and it is at least min_interval_s old; never more
 * often (Apple answers 429 TooManyProviderTokenUpdates). */
struct hd_jwt_cache {
    pthread_mutex_t lock;
    EVP_PKEY *key; /* owned */
    char *kid, *iss;
    char *token; /* NULL: none yet */
    int64_t iat; /* seconds */
    int64_t refresh_s, min_interval_s;
    int metrics_id; /* provider index + 1: signings are counted; 0: not */
};

void hd_jwt_cache_init(struct hd_jwt_cache *c, EVP_PKEY *key, const char *kid,
                       const char *iss);
void hd_jwt_cache_free(struct hd_jwt_cache *c);
/* The current token (malloc'd copy) and its iat; stale_iat is the iat of
 * a token the peer called expired, or 0. NULL if signing fails. */
char *hd_jwt_cache_get(struct hd_jwt_cache *c, int64_t now_s, int64_t stale_iat,
                       int64_t *iat);

#endif
