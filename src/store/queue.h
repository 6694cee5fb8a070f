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
/* Stages an entry; the value is the delivery id. */
void hd_queue_push(struct hd_shard *s, int channel, int64_t due_ms,
                   uint64_t seq, const char *delivery_id);
void hd_queue_remove(struct hd_shard *s, int channel, int64_t due_ms,
                     uint64_t seq);
/* 1 and the lowest key put on queue channel by the commits since the last
 * call, or 0 when none put any (commit.c). */
int hd_queue_low_take(struct hd_shard *s, int channel, unsigned char *key);

#endif
