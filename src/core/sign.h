/*
 * sign.h: signed tokens for links herald hands out (one-click unsubscribe,
 * tracking): "base64url(payload).base64url(HMAC-SHA256(key, payload)[:16])".
 * The key is made once per store (PATH/signing.key, 0600) so links keep
 * working across restarts.
 */
#ifndef HD_SIGN_H
#define HD_SIGN_H

#include <stddef.h>

/* Loads or creates the key (main thread, before workers). */
int hd_sign_init(const char *store_path, char *err, size_t errlen);
/* Writes the token for payload into out; HD_ERROR when out is too small. */
int hd_sign_token(const char *payload, char *out, size_t size);
/* Checks token (constant time) and copies its payload into out.
 * HD_OK or HD_DECLINED (forged, malformed). */
int hd_sign_verify(const char *token, char *out, size_t size);

#endif
