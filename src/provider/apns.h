/*
 * apns.h: what apns.c exposes besides its provider type (declared in
 * provider.h): the pure parts, for the unit tests, the fuzz target and the
 * ingest check of the payload size. Any thread.
 */
#ifndef HD_APNS_H
#define HD_APNS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define HD_APNS_MAX_PAYLOAD 4096

/* apns-id of a delivery: a UUID of delivery_id (version 8, its fields laid
 * out; version 5 for an id of another shape), lower-case, stable across
 * retries. out: 37 bytes. */
void hd_apns_id(const char *delivery_id, char *out);

/* The APNs JSON payload of a notification's content, given as the JSON
 * text of its content object ({title, body, data, push: {...}, ...}), as
 * text (malloc'd, NUL-terminated, *len bytes), or NULL when the content
 * is not an object. *background is set when there is no alert (a silent
 * push). */
char *hd_apns_payload(const char *content, size_t clen, int *background,
                      size_t *len);
/* The collapse id content sets, into buf: HD_OK, HD_DECLINED when none. */
int hd_apns_collapse_id(const char *content, size_t clen, char *buf,
                        size_t size);

/* What an APNs answer other than a lost stream means (protocols.md 1.8),
 * from its :status, body, retry-after value (or NULL) and the time. */
struct hd_apns_answer {
    int outcome;            /* enum hd_outcome */
    int64_t retry_after_ms; /* HD_OUT_RETRY: Retry-After, else 0 */
    int expired_token;      /* 403 ExpiredProviderToken: renew, send again */
    int has_gone_ms;        /* 410 with a "timestamp": */
    int64_t gone_ms;        /* ... when APNs learned the token was gone */
    char detail[160];       /* "APNs <status> <reason>" */
};
void hd_apns_classify(int status, const char *body, size_t len,
                      const char *retry_after, int64_t now_ms,
                      struct hd_apns_answer *a);

#endif
