/*
 * codec.h: base64 (RFC 4648 standard and url alphabets), hex and UTF-8
 * repair. Pure.
 */
#ifndef HD_CODEC_H
#define HD_CODEC_H

#include <stddef.h>

/* Decodes src into dst (room for srclen * 3 / 4 + 3 bytes); padding is
 * optional; url selects the '-' '_' alphabet. Returns the length or -1. */
int hd_base64_decode(const char *src, size_t srclen, unsigned char *dst,
                     int url);
/* Encodes into dst (room for (len + 2) / 3 * 4 + 1), NUL-terminated; url
 * omits padding. Returns the length. */
size_t hd_base64_encode(const unsigned char *src, size_t len, char *dst,
                        int url);
void hd_hex_encode(const unsigned char *src, size_t len, char *dst);
/* The value of one hex digit (either case), or -1. */
int hd_hex_digit(int c);
/* SHA-256 of a || b (either may be empty). */
void hd_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                 unsigned char out[32]);

/* Replaces with '?' each byte of s that is not part of well-formed UTF-8,
 * so that s can go into JSON (jansson refuses the string otherwise): a
 * message that snprintf cut inside a character, or bytes from a URL.
 * Returns s. */
char *hd_utf8_fix(char *s);

#endif
