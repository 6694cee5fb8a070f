/*
 * metrics.c: the per-worker metric blocks and their Prometheus text
 * exposition (format 0.0.4). Writers are the workers, each in its own
 * block; the exporter reads every block with relaxed loads, so a scrape
 * sees each counter whole, if not all counters at one instant.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/worker.h"

struct hd_metrics hd_metrics[HD_MAX_WORKERS];

const char *const hd_fail_reason_names[HD_REASON_MAX] = {
    "rejected",     "invalid_token",      "invalid_address",
    "unsubscribed", "attempts_exhausted", "no_provider"};

int
hd_fail_reason_of(const char *name)
{
    for (int i = 0; i < HD_REASON_MAX; i++)
        if (name && strcmp(name, hd_fail_reason_names[i]) == 0)
            return i;
    return -1;
}

static const double bounds[HD_HIST_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct hd_metrics *
hd_metrics_self(void)
{
    return &hd_metrics[hd_current_worker ? hd_current_worker->id : 0];
}

struct hd_provider_metrics *
hd_metrics_provider(int id)
{
    if (id < 1 || id > HD_METRICS_PROVIDERS)
        id = HD_METRICS_PROVIDERS + 1;
    return &hd_metrics_self()->providers[id - 1];
}

void
hd_hist_observe(struct hd_histogram *h, double seconds)
{
    int i = 0;
    while (i < HD_HIST_BUCKETS && seconds > bounds[i])
        i++;
    HD_COUNT(h->bucket[i], 1);
    HD_COUNT(h->count, 1);
    HD_COUNT(h->sum_us, (uint64_t)(seconds * 1e6));
}

void
hd_metrics_printf(char **out, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*out + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len)
            break;
        *cap = (*cap + (size_t)n + 1) * 2;
        *out = hd_realloc(*out, *cap);
    }
    *len += (size_t)n;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static void
hist(char **out, size_t *len, size_t *cap, const char *name, const char *labels,
     const struct hd_histogram *const *hs, int n)
{
    uint64_t cum = 0, count = 0;
    double sum = 0;

    for (int b = 0; b <= HD_HIST_BUCKETS; b++) {
        for (int i = 0; i < n; i++)
            cum += LOAD(hs[i]->bucket[b]);
        if (b < HD_HIST_BUCKETS)
            hd_metrics_printf(out, len, cap, "%s_bucket{%s%sle=\"%g\"} %llu\n",
                              name, labels, *labels ? "," : "", bounds[b],
                              (unsigned long long)cum);
        else
            hd_metrics_printf(out, len, cap,
                              "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                              *labels ? "," : "", (unsigned long long)cum);
    }
    for (int i = 0; i < n; i++) {
        count += LOAD(hs[i]->count);
        sum += (double)LOAD(hs[i]->sum_us) / 1e6;
    }
    hd_metrics_printf(out, len, cap, "%s_sum%s%s%s %.6f\n", name,
                      *labels ? "{" : "", labels, *labels ? "}" : "", sum);
    hd_metrics_printf(out, len, cap, "%s_count%s%s%s %llu\n", name,
                      *labels ? "{" : "", labels, *labels ? "}" : "",
                      (unsigned long long)count);
}

static uint64_t
sum_u64(int nworkers, size_t offset)
{
    uint64_t v = 0;
    for (int w = 0; w < nworkers; w++)
        v += __atomic_load_n((uint64_t *)((char *)&hd_metrics[w] + offset),
                             __ATOMIC_RELAXED);
    return v;
}

#define SUM(field) sum_u64(nworkers, offsetof(struct hd_metrics, field))

void
hd_metrics_format(char **out, size_t *len, size_t *cap, int nworkers)
{
    const struct hd_histogram *hs[HD_MAX_WORKERS] = {NULL};

#define P(...) hd_metrics_printf(out, len, cap, __VA_ARGS__)
    P("# HELP herald_http_requests_total HTTP requests answered, by status "
      "class.\n# TYPE herald_http_requests_total counter\n");
    for (int c = 1; c < 6; c++)
        P("herald_http_requests_total{code=\"%dxx\"} %llu\n", c,
          (unsigned long long)SUM(http_status[c]));
    P("# HELP herald_http_request_duration_seconds Time from a request's "
      "first byte parsed to its answer (ingest latency, group commit "
      "included).\n# TYPE herald_http_request_duration_seconds "
      "histogram\n");
    for (int w = 0; w < nworkers; w++)
        hs[w] = &hd_metrics[w].http_seconds;
    hist(out, len, cap, "herald_http_request_duration_seconds", "", hs,
         nworkers);
    P("# HELP herald_http_connections Open client connections.\n"
      "# TYPE herald_http_connections gauge\nherald_http_connections %llu\n",
      (unsigned long long)SUM(connections));
    P("# HELP herald_notifications_accepted_total Notifications accepted "
      "(202).\n# TYPE herald_notifications_accepted_total counter\n"
      "herald_notifications_accepted_total %llu\n",
      (unsigned long long)SUM(notifications_accepted));
    P("# HELP herald_notifications_duplicate_total Idempotent repeats "
      "answered with the original.\n# TYPE "
      "herald_notifications_duplicate_total counter\n"
      "herald_notifications_duplicate_total %llu\n",
      (unsigned long long)SUM(notifications_duplicate));
    P("# HELP herald_ingest_rejected_total Requests refused with 503: the "
      "store is nearly full.\n# TYPE herald_ingest_rejected_total counter\n"
      "herald_ingest_rejected_total %llu\n",
      (unsigned long long)SUM(rejected_busy));

    {
        static const struct {
            const char *name, *help;
            size_t off;
        } per_ch[] = {
            {"herald_deliveries_created_total", "Deliveries created.",
             offsetof(struct hd_metrics, deliveries_created)},
            {"herald_deliveries_suppressed_total",
             "Deliveries not sent: the user opted out.",
             offsetof(struct hd_metrics, suppressed)},
            {"herald_deliveries_throttled_total",
             "Deliveries not sent: over the user's frequency cap.",
             offsetof(struct hd_metrics, throttled)},
            {"herald_deliveries_expired_total",
             "Deliveries not sent in time (ttl).",
             offsetof(struct hd_metrics, expired)},
            {"herald_dead_letters_total",
             "Deliveries moved to the dead "
             "letters.",
             offsetof(struct hd_metrics, dead_lettered)},
        };
        for (size_t m = 0; m < HD_NELEMS(per_ch); m++) {
            P("# HELP %s %s\n# TYPE %s counter\n", per_ch[m].name,
              per_ch[m].help, per_ch[m].name);
            for (int ch = 0; ch < HD_CH_MAX; ch++)
                P("%s{channel=\"%s\"} %llu\n", per_ch[m].name,
                  hd_channel_name(ch),
                  (unsigned long long)sum_u64(
                      nworkers, per_ch[m].off + (size_t)ch * sizeof(uint64_t)));
        }
    }
    P("# HELP herald_deliveries_failed_total Deliveries that failed for "
      "good, by channel and reason.\n# TYPE herald_deliveries_failed_total "
      "counter\n");
    for (int ch = 0; ch < HD_CH_MAX; ch++)
        for (int r = 0; r < HD_REASON_MAX; r++)
            P("herald_deliveries_failed_total{channel=\"%s\",reason=\"%s\"} "
              "%llu\n",
              hd_channel_name(ch), hd_fail_reason_names[r],
              (unsigned long long)sum_u64(
                  nworkers, offsetof(struct hd_metrics, failed) +
                                ((size_t)ch * HD_REASON_MAX + (size_t)r) *
                                    sizeof(uint64_t)));
    {
        static const char *const result[HD_ALERT_MAX] = {"sent", "failed",
                                                         "dropped"};
        P("# HELP herald_alerts_total Circuit breaker alerts to the "
          "alert_webhook, by result.\n# TYPE herald_alerts_total counter\n");
        for (int r = 0; r < HD_ALERT_MAX; r++)
            P("herald_alerts_total{result=\"%s\"} %llu\n", result[r],
              (unsigned long long)sum_u64(nworkers,
                                          offsetof(struct hd_metrics, alerts) +
                                              (size_t)r * sizeof(uint64_t)));
    }
    P("# HELP herald_deliveries_in_flight Deliveries at a provider now.\n"
      "# TYPE herald_deliveries_in_flight gauge\n"
      "herald_deliveries_in_flight %llu\n",
      (unsigned long long)SUM(in_flight));
    P("# HELP herald_delivery_seconds Time from a delivery's due time to "
      "its delivery (end to end for immediate sends).\n# TYPE "
      "herald_delivery_seconds histogram\n");
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "channel=\"%s\"", hd_channel_name(ch));
        for (int w = 0; w < nworkers; w++)
            hs[w] = &hd_metrics[w].delivery_seconds[ch];
        hist(out, len, cap, "herald_delivery_seconds", labels, hs, nworkers);
    }
#undef P
}
