/*
 * webpush.h: the "webpush" provider (RFC 8030 push to browser
 * subscriptions, RFC 8291 encryption, RFC 8292 VAPID) and the VAPID key
 * helpers `herald -g vapid` prints with. Main thread for the helpers.
 */
#ifndef HD_WEBPUSH_H
#define HD_WEBPUSH_H

#include <stddef.h>

/* base64url of a 65-byte point: 87 characters and the NUL */
#define HD_WEBPUSH_PUBLIC_LEN 88

/* The public key browsers need (applicationServerKey) of the VAPID
 * private key in the PEM file path: base64url of the uncompressed point,
 * into out (HD_WEBPUSH_PUBLIC_LEN bytes). HD_ERROR and a message in err
 * ("\"x.pem\" is not a PEM private key") on failure. */
int hd_webpush_vapid_public(const char *path, char *out, char *err,
                            size_t errlen);

/* A new VAPID key pair: *pem the private key (PKCS#8 PEM, malloc'd: the
 * caller frees it) and its public key in out as above. */
int hd_webpush_vapid_new(char **pem, char *out, char *err, size_t errlen);

#endif
