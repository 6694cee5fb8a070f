/*
 * notify.h: accepting a notification in the owning shard: expansion into
 * deliveries, records and queue entries. Owner thread only.
 */
#ifndef HD_NOTIFY_H
#define HD_NOTIFY_H

#include <jansson.h>

#include "store/store.h"

struct hd_notify_in {
    const char *user_id;
    const char *key_id;
    unsigned channels; /* bit per channel; 0: every channel with an address */
    json_t *content;   /* borrowed: {title, body} */
};

/* The error of a refused notification: HTTP status, code, field. */
struct hd_notify_err {
    int status;
    const char *code;
    const char *field;
    char message[256];
};

/* Stages the notification; *answer is the 202 body. HD_OK or HD_ERROR
 * with err filled (nothing staged). */
int hd_notify_accept(struct hd_shard *s, const struct hd_notify_in *in,
                     json_t **answer, struct hd_notify_err *err);
/* Notification with each delivery's status, or NULL when unknown. */
json_t *hd_notify_get(struct hd_shard *s, const char *id);
/* Appends {at, event[, detail]} to a delivery's timeline. */
void hd_timeline_add(json_t *delivery, const char *event, const char *detail);

#endif
