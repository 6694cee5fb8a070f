/*
 * webhook.h: the optional event webhook: each worker POSTs its shards'
 * new events in batches to the configured URL, in order, resuming from a
 * cursor stored in the shard, retrying with backoff; never in the way of
 * deliveries.
 */
#ifndef HD_WEBHOOK_H
#define HD_WEBHOOK_H

#include "core/conf.h"
#include "core/worker.h"

#define HD_MODULE_WEBHOOK 2

/* Main thread, at start: the TLS context for an https URL. */
int hd_webhook_init(const struct hd_conf *cf, char *err, size_t errlen);
void hd_webhook_free(void);
/* Main thread, on reload: as hd_alert_prepare, commit and abandon. */
int hd_webhook_prepare(const struct hd_conf *cf, char *err, size_t errlen);
void hd_webhook_commit(void);
void hd_webhook_abandon(void);

extern const struct hd_module hd_webhook_module;

#endif
