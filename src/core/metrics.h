/*
 * metrics.h: counters and histograms for /metrics. Each worker counts in
 * its own block (relaxed atomic adds, no sharing of cache lines between
 * writers); the exporter sums the blocks. Names follow Prometheus.
 */
#ifndef HD_METRICS_H
#define HD_METRICS_H

#include <stdint.h>

#include "core/conf.h"

#define HD_METRICS_PROVIDERS 32
#define HD_HIST_BUCKETS 14

enum hd_delivery_result {
    HD_RES_DELIVERED = 0,
    HD_RES_RETRY,
    HD_RES_FAILED,
    HD_RES_DEAD_ADDRESS,
    HD_RES_MAX
};

/* why a delivery failed for good (herald_deliveries_failed_total) */
enum hd_fail_reason {
    HD_REASON_REJECTED = 0,
    HD_REASON_INVALID_TOKEN,
    HD_REASON_INVALID_ADDRESS,
    HD_REASON_UNSUBSCRIBED,
    HD_REASON_ATTEMPTS_EXHAUSTED,
    HD_REASON_NO_PROVIDER,
    HD_REASON_MAX
};
extern const char *const hd_fail_reason_names[HD_REASON_MAX];
int hd_fail_reason_of(const char *name); /* -1 if unknown */

/* circuit breaker alerts (herald_alerts_total) */
enum hd_alert_result {
    HD_ALERT_SENT = 0,
    HD_ALERT_FAILED,  /* every attempt failed */
    HD_ALERT_DROPPED, /* the worker's queue was full */
    HD_ALERT_MAX
};

struct hd_histogram {
    uint64_t bucket[HD_HIST_BUCKETS + 1]; /* last: +Inf */
    uint64_t count;
    uint64_t sum_us;
};

/* One provider's connections as seen by one worker (herald_provider_*).
 * Gauges move +1/-1 on the worker that owns the connection or stream. */
struct hd_provider_metrics {
    uint64_t connections;  /* gauge: open and usable now */
    uint64_t streams;      /* gauge: requests on the wire now */
    uint64_t stream_limit; /* gauge: peer MAX_CONCURRENT_STREAMS, summed */
    uint64_t connects[2];  /* attempts: ok, error */
    uint64_t goaways;      /* GOAWAY frames received */
    uint64_t token_refreshes[2]; /* provider tokens made: ok, error */
};

struct hd_metrics {
    uint64_t http_status[6]; /* by status / 100 */
    struct hd_histogram http_seconds;
    uint64_t connections; /* gauge: open now */
    uint64_t notifications_accepted;
    uint64_t notifications_duplicate;
    uint64_t deliveries_created[HD_CH_MAX];
    uint64_t suppressed[HD_CH_MAX];
    uint64_t throttled[HD_CH_MAX];
    uint64_t expired[HD_CH_MAX];
    uint64_t dead_lettered[HD_CH_MAX];
    uint64_t failed[HD_CH_MAX][HD_REASON_MAX]; /* by reason */
    uint64_t results[HD_METRICS_PROVIDERS][HD_CH_MAX][HD_RES_MAX];
    struct hd_histogram delivery_seconds[HD_CH_MAX]; /* due -> delivered */
    uint64_t in_flight;                              /* gauge */
    uint64_t rejected_busy; /* 503: store nearly full */
    uint64_t heartbeat_ms;  /* last loop tick of the worker */
    /* by provider index; the last slot takes what is not counted */
    struct hd_provider_metrics providers[HD_METRICS_PROVIDERS + 1];
    uint64_t alerts[HD_ALERT_MAX];
    char _pad[64];
};

extern struct hd_metrics hd_metrics[HD_MAX_WORKERS];

/* the calling worker's block */
struct hd_metrics *hd_metrics_self(void);

/* The calling worker's counters of the provider whose metrics id (its
 * index + 1) is id; id 0 (not a provider's pool) or out of range: a slot
 * nobody reads. */
struct hd_provider_metrics *hd_metrics_provider(int id);

#define HD_COUNT(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)

void hd_hist_observe(struct hd_histogram *h, double seconds);
/* Appends the Prometheus text of every worker block to out (malloc'd,
 * grows); *len is its length. */
void hd_metrics_format(char **out, size_t *len, size_t *cap, int nworkers);
void hd_metrics_printf(char **out, size_t *len, size_t *cap, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

#endif
