/*
 * alert.h: the optional alert webhook: a signed JSON POST for every
 * circuit breaker transition, queued per worker and sent in order with a
 * few retries; never in the way of deliveries.
 */
#ifndef HD_ALERT_H
#define HD_ALERT_H

#include "core/conf.h"
#include "core/worker.h"

#define HD_MODULE_ALERT 3

/* Main thread, at start: the TLS context for an https URL. */
int hd_alert_init(const struct hd_conf *cf, char *err, size_t errlen);
void hd_alert_free(void);
/* Main thread, on reload: checks cf's URL and makes the TLS context a new
 * ca_file needs (HD_ERROR and a message in err: the reload is refused);
 * then commit once the reload is accepted, before the workers get the
 * conf (they rebuild their pools with it), or abandon. */
int hd_alert_prepare(const struct hd_conf *cf, char *err, size_t errlen);
void hd_alert_commit(void);
void hd_alert_abandon(void);

/* Worker thread: queues the alert that provider's breaker on w went from
 * -> to after failures consecutive transient failures. Copies what it
 * needs and returns at once; with no alert_webhook it does nothing, with
 * the worker's queue full it drops the alert (counted). */
void hd_alert_breaker(struct hd_worker *w, const char *provider,
                      const char *from, const char *to, int failures);

extern const struct hd_module hd_alert_module;

#endif
