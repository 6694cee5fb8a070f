/*
 * codec.c: base64 and hex, written out because the OpenSSL BIO ones want
 * newlines and allocations. Any thread.
 */
#include <openssl/evp.h>

#include "core/herald.h"
#include "core/codec.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
value_of(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int
hd_base64_decode(const char *src, size_t srclen, unsigned char *dst, int url)
{
    unsigned acc = 0;
    int bits = 0, n = 0;
    size_t i;

    while (srclen > 0 && src[srclen - 1] == '=')
        srclen--;
    for (i = 0; i < srclen; i++) {
        int v = value_of(src[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (srclen % 4 == 1)
        return -1;
    /* canonical only: the bits past the last byte must be zero, or two
     * spellings would decode the same (a forged MAC would pass) */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return n;
}

size_t
hd_base64_encode(const unsigned char *src, size_t len, char *dst, int url)
{
    const char *t = url ? b64url : b64;
    size_t i, n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        unsigned v =
            (unsigned)src[i] << 16 | (unsigned)src[i + 1] << 8 | src[i + 2];
        dst[n++] = t[v >> 18];
        dst[n++] = t[(v >> 12) & 63];
        dst[n++] = t[(v >> 6) & 63];
        dst[n++] = t[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)src[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)src[i + 1] << 8;
        dst[n++] = t[v >> 18];
        dst[n++] = t[(v >> 12) & 63];
        if (i + 1 < len)
            dst[n++] = t[(v >> 6) & 63];
        else if (!url)
            dst[n++] = '=';
        if (!url)
            dst[n++] = '=';
    }
    dst[n] = '\0';
    return n;
}

int
hd_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void
hd_hex_encode(const unsigned char *src, size_t len, char *dst)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        dst[2 * i] = hex[src[i] >> 4];
        dst[2 * i + 1] = hex[src[i] & 15];
    }
    dst[2 * len] = '\0';
}

void
hd_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
            unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 32;

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    if (alen)
        EVP_DigestUpdate(ctx, a, alen);
    if (blen)
        EVP_DigestUpdate(ctx, b, blen);
    EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, surrogates or code points above U+10FFFF), or 0. */
static size_t
utf8_seq(const unsigned char *p)
{
    uint32_t cp;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* the NUL stops here too */
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

char *
hd_utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    return s;
}
