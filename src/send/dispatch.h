/*
 * dispatch.h: the per-worker dispatcher: takes due deliveries from the
 * queues of the worker's shards and hands them to providers.
 */
#ifndef HD_DISPATCH_H
#define HD_DISPATCH_H

#include "core/worker.h"

#define HD_MODULE_DISPATCH 0
/* deliveries in flight per (shard, channel); the rest wait in LMDB */
#define HD_DISPATCH_INFLIGHT 512
#define HD_DISPATCH_MAX_ATTEMPTS 5

extern const struct hd_module hd_dispatch_module;

struct hd_shard;
/* Whether delivery id is at a provider now (owner thread of s). */
int hd_dispatch_inflight(struct hd_shard *s, const char *id);

#endif
