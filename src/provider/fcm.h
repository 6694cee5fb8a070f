/*
 * fcm.h: what fcm.c exposes besides its provider type (declared in
 * provider.h): the pure message and error parsing, for the unit tests.
 * Any thread.
 */
#ifndef HD_FCM_H
#define HD_FCM_H

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

#endif
