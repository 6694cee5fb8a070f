/*
 * dispatch.h: the per-worker dispatcher: takes due deliveries from the
 * queues of the worker's shards and hands them to providers.
 */
#ifndef HD_DISPATCH_H
#define HD_DISPATCH_H

#include "core/worker.h"
#include "provider/provider.h"

#define HD_MODULE_DISPATCH 0
extern const struct hd_module hd_dispatch_module;

struct hd_shard;
/* The circuit breaker of provider p on worker w: closed, open or
 * half-open. */
const char *hd_dispatch_breaker_state(struct hd_worker *w,
                                      const struct hd_provider *p);
/* The same as 0/1/2, readable from any thread (metrics). */
int hd_dispatch_breaker_value(struct hd_worker *w, const struct hd_provider *p);
/* Whether delivery id is at a provider now (owner thread of s). */
int hd_dispatch_inflight(struct hd_shard *s, const char *id);

#endif
