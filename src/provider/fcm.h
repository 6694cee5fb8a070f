/*
 * fcm.h: what fcm.c exposes besides its provider type (declared in
 * provider.h): the pure message and error parsing, for the unit tests and
 * the fuzz target. Any thread.
 */
#ifndef HD_FCM_H
#define HD_FCM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* {"message":{token, notification, data (strings), android {priority,
 * ttl, collapse_key}, apns?, webpush?}} for content; ttl_s < 0: none.
 * New reference. */
json_t *hd_fcm_message(const char *token, json_t *content, int priority,
                       int64_t ttl_s);

/* The FCM error code of a google.rpc.Status body: the FcmError detail's
 * errorCode, else error.status, else "". *message: error.message or "".
 * Both borrowed from body. */
const char *hd_fcm_error_code(json_t *body, const char **message);

/* What an FCM send answer means (protocols.md 2.4), from its :status,
 * body, retry-after value (or NULL) and the time. */
struct hd_fcm_answer {
    int outcome;            /* enum hd_outcome */
    int64_t retry_after_ms; /* HD_OUT_RETRY: at least Retry-After */
    int renew_token;        /* 401 for our access token: renew, send again */
    char detail[200];       /* "FCM <status> <code>[: <message>]" */
};
void hd_fcm_classify(int status, const char *body, size_t len,
                     const char *retry_after, int64_t now_ms,
                     struct hd_fcm_answer *a);

#endif
