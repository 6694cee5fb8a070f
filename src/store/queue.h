/*
 * queue.h: per-channel delivery queues of a shard, keyed by due time then
 * sequence, so scheduled sends and retries are the same structure: the
 * first key is always the next thing due. Owner thread only.
 */
#ifndef HD_QUEUE_H
#define HD_QUEUE_H

#include <stdint.h>

#include "store/store.h"

void hd_queue_key(unsigned char *key, int64_t due_ms, uint64_t seq);
void hd_queue_key_parse(const unsigned char *key, int64_t *due_ms,
                        uint64_t *seq);
/* A content up to this size rides in a push or web queue entry. */
#define HD_QUEUE_CONTENT_MAX 1024
#define HD_QUEUE_ID_MAX 40 /* a delivery id's bytes and NUL, at most */

/* Stages an entry. Its value is the delivery id, then, on the push and web
 * queues when content is given and small enough, a NUL byte and the
 * notification's content text: the dispatcher starts such a delivery
 * without reading the notification. An entry without content is read the
 * long way. */
void hd_queue_push(struct hd_shard *s, int channel, int64_t due_ms,
                   uint64_t seq, const char *delivery_id, const char *content,
                   size_t clen);
/* The parts of an entry's value v: the delivery id copied into id
 * (HD_QUEUE_ID_MAX bytes), and the content (borrowed from v) or NULL.
 * HD_ERROR for an id too long to be one. */
int hd_queue_entry(const MDB_val *v, char *id, const char **content,
                   size_t *clen);
void hd_queue_remove(struct hd_shard *s, int channel, int64_t due_ms,
                     uint64_t seq);
/* 1 and the lowest key put on queue channel by the commits since the last
 * call, or 0 when none put any (commit.c). */
int hd_queue_low_take(struct hd_shard *s, int channel, unsigned char *key);

#endif
