/*
 * auth.c: API key authentication (HTTP Basic KEY:SECRET). Worker thread.
 * The secret is compared as a SHA-256 digest with CRYPTO_memcmp, so the
 * time taken says nothing about how much of it matched, nor its length.
 */
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/herald.h"
#include "core/codec.h"
#include "http/auth.h"

const struct hd_api_key *
hd_auth_basic(const struct hd_conf *cf, const char *header)
{
    unsigned char decoded[512], digest[32];
    const struct hd_api_key *key;
    const char *colon;
    size_t len;
    int n;

    if (header == NULL || strncasecmp(header, "Basic ", 6) != 0)
        return NULL;
    header += 6;
    while (*header == ' ')
        header++;
    len = strlen(header);
    if (len == 0 || len > sizeof(decoded) * 4 / 3 - 4)
        return NULL;
    n = hd_base64_decode(header, len, decoded, 0);
    if (n <= 0)
        return NULL;
    colon = memchr(decoded, ':', (size_t)n);
    if (colon == NULL)
        return NULL;
    key = hd_conf_find_key(cf, (const char *)decoded,
                           (size_t)(colon - (const char *)decoded));
    /* hashed whether or not the key exists: the time says nothing */
    hd_sha256_2(key ? key->salt : NULL, key ? key->saltlen : 0, colon + 1,
                (size_t)n - (size_t)(colon + 1 - (const char *)decoded),
                digest);
    OPENSSL_cleanse(decoded, sizeof(decoded));
    if (key == NULL)
        return NULL;
    if (CRYPTO_memcmp(digest, key->secret_sha256, sizeof(digest)) != 0)
        return NULL;
    return key;
}
