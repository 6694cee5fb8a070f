/*
 * notify.h: accepting a notification in the owning shard: idempotency,
 * expansion into deliveries (opt-outs, frequency caps, schedule),
 * records and queue entries; status, listing and cancel. Owner thread.
 */
#ifndef HD_NOTIFY_H
#define HD_NOTIFY_H

#include <jansson.h>

#include "core/jtext.h"

#include "store/store.h"

struct hd_notify_in {
    const char *user_id;
    const char *key_id;
    unsigned channels; /* bit per channel; 0: every channel with an address */
    const char *category;        /* or NULL */
    int priority;                /* enum hd_priority (provider.h) */
    int64_t send_at_ms;          /* 0: now */
    int64_t ttl_ms;              /* 0: none */
    const char *idempotency_key; /* or NULL */
    /* borrowed, compact JSON object text (checked: it is stored as it
     * is): {title, body, data, push, sms, email, web} */
    const char *content;
    size_t content_len;
    const char *template_name; /* or NULL: rendered here, at ingest */
    const char *template_data; /* borrowed JSON object text: its values */
    size_t template_data_len;
};

/* The error of a refused notification: HTTP status, code, field. */
struct hd_notify_err {
    int status;
    const char *code;
    const char *field;
    char message[256];
};

/* Stages the notification; answer gets the body as JSON text (the
 * caller frees answer->p), *status 202 (or 200 for an idempotent repeat).
 * HD_OK, or HD_ERROR with err filled (nothing staged, answer untouched). */
int hd_notify_accept(struct hd_shard *s, const struct hd_conf *cf,
                     const struct hd_notify_in *in, struct hd_jbuf *answer,
                     int *status, struct hd_notify_err *err);
/* Notification with each delivery's status, or NULL when unknown. */
json_t *hd_notify_get(struct hd_shard *s, const char *id);
/* Newest first, after cursor (a notification id) if given. */
json_t *hd_notify_list(struct hd_shard *s, const char *user_id,
                       const char *cursor, int limit);
/* Cancels deliveries not yet sent; -1 when the notification is unknown. */
int hd_notify_cancel(struct hd_shard *s, const char *id);
/* Drops idempotency keys past their retention (at most max per call). */
int hd_notify_purge_idempotency(struct hd_shard *s, int max);

/* A delivery record read from the store, made changeable: a shallow copy
 * with its own timeline array (new reference). */
json_t *hd_delivery_thaw(json_t *shared);
/* Appends {at, event[, detail]} to a delivery's timeline. */
void hd_timeline_add(json_t *delivery, const char *event, const char *detail);
/* What a provider says on channel ch: the channel's part of content over
 * the shorthand title/body/data (new reference). */
json_t *hd_content_for(json_t *content, int ch);
const char *hd_priority_name(int priority);
int hd_priority_parse(const char *name);

#endif
