/*
 * events.h: what happens to deliveries, as a durable feed per shard
 * (GET /v1/events?since=cursor) and counters per category and template
 * (GET /v1/stats). Owner thread of the shard.
 */
#ifndef HD_EVENTS_H
#define HD_EVENTS_H

#include <jansson.h>

#include "store/store.h"

/* The fields of a delivery an event carries (NULL: absent). */
struct hd_event_src {
    const char *delivery_id, *notification_id, *user_id, *channel, *provider,
        *category, *template_name;
    int64_t at_ms; /* when it happened; 0: now */
};

/* Appends the event to the shard's feed and counters (staged with the
 * caller's other writes); the caller keeps the delivery's timeline. */
void hd_event_put(struct hd_shard *s, const struct hd_event_src *src,
                  const char *type, const char *detail);
/* Adds {at, event, detail} to the delivery's timeline and appends the
 * event to the shard's feed and counters (staged with the caller's other
 * writes). Use instead of hd_timeline_add wherever a shard is at hand. */
void hd_event_emit(struct hd_shard *s, json_t *delivery, const char *type,
                   const char *detail);
/* Up to limit events of the shard after seq `after` (0: from the start),
 * as [{id, seq, at, type, ...}]; *last is the last seq returned. */
json_t *hd_events_read(struct hd_shard *s, uint64_t after, int limit);
/* An email's html with its links going through base/t/c/TOKEN and an
 * open pixel base/t/o/TOKEN, both signed for delivery_id (malloc'd). */
char *hd_track_html(const char *html, const char *base,
                    const char *delivery_id);
/* Drops up to max events older than now - retention_ms. */
int hd_events_trim(struct hd_shard *s, int64_t retention_ms, int max);
/* Folds the counts made since the last flush into the store. */
void hd_stats_flush(struct hd_shard *s);
/* {key: {sent, delivered, opened, clicked, ...}} of the shard. */
json_t *hd_stats_read(struct hd_shard *s);

#endif
