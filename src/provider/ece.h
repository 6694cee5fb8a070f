/*
 * ece.h: Web Push message encryption (RFC 8291) in the aes128gcm content
 * coding (RFC 8188): one record, keyid = the ephemeral public key. Pure
 * functions over OpenSSL; any thread. Knows nothing of HTTP, VAPID or the
 * push services.
 */
#ifndef HD_ECE_H
#define HD_ECE_H

#include <stddef.h>

#define HD_ECE_KEY_LEN 65  /* uncompressed P-256 point, 0x04 || x || y */
#define HD_ECE_AUTH_LEN 16 /* the subscription's auth secret */
#define HD_ECE_SALT_LEN 16
#define HD_ECE_RS 4096
/* salt(16) rs(4) idlen(1) keyid(65) */
#define HD_ECE_HEADER_LEN (16 + 4 + 1 + HD_ECE_KEY_LEN)
/* header, delimiter, GCM tag: body = plaintext + padding + this */
#define HD_ECE_OVERHEAD (HD_ECE_HEADER_LEN + 1 + 16)
/* push services need accept only 4096-byte bodies */
#define HD_ECE_MAX_PLAINTEXT (HD_ECE_RS - HD_ECE_OVERHEAD)

/* Encrypts len bytes of plain (and pad zero bytes of padding; len + pad
 * at most HD_ECE_MAX_PLAINTEXT) for the subscription (ua_public, auth)
 * with a fresh ephemeral key and salt. out holds len + pad +
 * HD_ECE_OVERHEAD bytes. Returns the body length, or HD_ERROR with *err a
 * static message ("p256dh is not a P-256 point", ...). */
int hd_ece_encrypt(const unsigned char *ua_public, const unsigned char *auth,
                   const void *plain, size_t len, size_t pad,
                   unsigned char *out, size_t outlen, const char **err);

/* The same with the only random inputs given: salt (16 bytes) and the
 * ephemeral private key as_private (32 bytes, big-endian scalar). For
 * tests (RFC 8291 Appendix A). */
int hd_ece_encrypt_with(const unsigned char *ua_public,
                        const unsigned char *auth, const unsigned char *salt,
                        const unsigned char *as_private, const void *plain,
                        size_t len, size_t pad, unsigned char *out,
                        size_t outlen, const char **err);

#endif
