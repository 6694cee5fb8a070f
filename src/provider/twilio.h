/*
 * twilio.h: the "twilio" provider (Programmable Messaging, HTTP/1.1) and
 * the X-Twilio-Signature check that herald's status-callback endpoint
 * needs (protocols.md 4.1.5), and what an answer means. Both are pure and
 * thread-safe.
 */
#ifndef HD_TWILIO_H
#define HD_TWILIO_H

#include <stddef.h>
#include <stdint.h>

struct hd_http1_response;

/* One decoded form parameter of a callback. */
struct hd_twilio_param {
    const char *name;
    const char *value;
};

/* base64(HMAC-SHA1(auth_token, url + each name and value, sorted by name
 * then value in byte order)) into out (29 bytes with the NUL). params are
 * sorted in place. */
void hd_twilio_signature(const char *auth_token, const char *url,
                         struct hd_twilio_param *params, size_t n,
                         char out[29]);

/* 1 when signature (the X-Twilio-Signature header) matches url and the
 * form params, compared in constant time; 0 otherwise (NULL signature
 * too). url must be the exact URL Twilio requested: the configured
 * status_callback with the query herald added. params are sorted in
 * place. */
int hd_twilio_signature_valid(const char *auth_token, const char *url,
                              struct hd_twilio_param *params, size_t n,
                              const char *signature);

/* The outcome (enum hd_outcome) of a Twilio answer (protocols.md 4.1.3):
 * *retry_after in ms (0: the backoff's), detail the message SID or the
 * error. Pure but for the clock (an HTTP-date Retry-After). */
int hd_twilio_classify(const struct hd_http1_response *r, int64_t *retry_after,
                       char *detail, size_t len);

#endif
