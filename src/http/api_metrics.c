/*
 * api_metrics.c: GET /metrics (Prometheus text) and GET /readyz. The
 * counters come from every worker's metric block; the store figures
 * (queue depth, commits, map use) from each shard's owner by fan-out, so
 * only owners touch their LMDB environments.
 */
#include <malloc.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "http/api.h"
#include "provider/provider.h"
#include "send/dispatch.h"
#include "store/queue.h"

static void
exec_store_stats(struct hd_shard *s, json_t *args, json_t **out)
{
    MDB_txn *txn = hd_store_snapshot(s);
    json_t *depth = json_array(), *oldest = json_array();
    int64_t now = hd_now_ms();
    MDB_stat st;

    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        MDB_cursor *cur;
        MDB_val k, v;
        int64_t age = 0;
        mdb_stat(txn, s->dbi[HD_DB_QUEUE + ch], &st);
        json_array_append_new(depth, json_integer((json_int_t)st.ms_entries));
        if (mdb_cursor_open(txn, s->dbi[HD_DB_QUEUE + ch], &cur) == 0) {
            if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
                k.mv_size == HD_QUEUE_KEY_LEN) {
                int64_t due;
                uint64_t seq;
                hd_queue_key_parse(k.mv_data, &due, &seq);
                age = due < now ? now - due : 0;
            }
            mdb_cursor_close(cur);
        }
        json_array_append_new(oldest, json_integer(age));
    }
    mdb_stat(txn, s->dbi[HD_DB_DEAD_LETTERS], &st);
    *out = json_pack(
        "{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "depth", depth,
        "oldest_ms", oldest, "dead_letters", (json_int_t)st.ms_entries,
        "commits", (json_int_t)s->commits, "records",
        (json_int_t)s->records_committed, "commit_us",
        (json_int_t)s->commit_us_total, "commit_us_max",
        (json_int_t)s->commit_us_max, "map_size", (json_int_t)s->map_size,
        "map_used", (json_int_t)hd_store_used(s));
}

/* herald_provider_*: each worker's gauges and counters of every provider,
 * summed (a worker's gauge moves on that worker only, so the sum of the
 * signed values is the figure, whatever the order of the loads). */
static void
provider_metrics(char **out, size_t *len, size_t *cap, int nw)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
        const char *result; /* NULL: no result label */
    } m[] = {
        {"herald_provider_connections", "gauge",
         "Open connections to the provider (set up and usable), all "
         "workers.",
         offsetof(struct hd_provider_metrics, connections), NULL},
        {"herald_provider_streams", "gauge",
         "Requests on the wire now: HTTP/2 streams open, HTTP/1.1 and SMTP "
         "connections busy.",
         offsetof(struct hd_provider_metrics, streams), NULL},
        {"herald_provider_stream_limit", "gauge",
         "HTTP/2: the peer's SETTINGS_MAX_CONCURRENT_STREAMS summed over "
         "open connections.",
         offsetof(struct hd_provider_metrics, stream_limit), NULL},
        {"herald_provider_connects_total", "counter",
         "Connection attempts: ok (set up) or error (failed or closed "
         "before).",
         offsetof(struct hd_provider_metrics, connects), "ok"},
        {"herald_provider_connects_total", NULL, NULL,
         offsetof(struct hd_provider_metrics, connects[1]), "error"},
        {"herald_provider_goaways_total", "counter",
         "HTTP/2 GOAWAY frames received from the provider.",
         offsetof(struct hd_provider_metrics, goaways), NULL},
        {"herald_provider_token_refreshes_total", "counter",
         "Provider tokens made: APNs JWTs signed, FCM OAuth2 access tokens "
         "fetched, VAPID JWTs signed.",
         offsetof(struct hd_provider_metrics, token_refreshes), "ok"},
        {"herald_provider_token_refreshes_total", NULL, NULL,
         offsetof(struct hd_provider_metrics, token_refreshes[1]), "error"},
    };
    int np = hd_providers_count();

    for (size_t i = 0; i < HD_NELEMS(m); i++) {
        if (m[i].type)
            hd_metrics_printf(out, len, cap, "# HELP %s %s\n# TYPE %s %s\n",
                              m[i].name, m[i].help, m[i].name, m[i].type);
        for (int p = 0; p < np; p++) {
            /* kept by provider index, which a name keeps across reloads */
            const struct hd_provider *pv = hd_provider_at(p);
            int64_t v = 0;
            if (pv->index >= HD_METRICS_PROVIDERS)
                continue;
            for (int w = 0; w < nw; w++)
                v += (int64_t)__atomic_load_n(
                    (uint64_t *)((char *)&hd_metrics[w].providers[pv->index] +
                                 m[i].off),
                    __ATOMIC_RELAXED);
            if (m[i].result)
                hd_metrics_printf(
                    out, len, cap, "%s{provider=\"%s\",result=\"%s\"} %lld\n",
                    m[i].name, pv->name, m[i].result, (long long)v);
            else
                hd_metrics_printf(out, len, cap, "%s{provider=\"%s\"} %lld\n",
                                  m[i].name, pv->name, (long long)v);
        }
    }
}

static void
finish_metrics(struct hd_fanout *f)
{
    size_t len = 0, cap = 16384;
    char *out = hd_alloc(cap);
    int nw = hd_cycle.nworkers;

    hd_metrics_format(&out, &len, &cap, nw);

#define P(...) hd_metrics_printf(&out, &len, &cap, __VA_ARGS__)
    P("# HELP herald_deliveries_total Provider outcomes of delivery "
      "attempts.\n# TYPE herald_deliveries_total counter\n");
    /* counters are kept by provider index, which a name keeps across
     * reloads: the labels are the providers of this worker's table */
    for (int i = 0; i < hd_providers_count(); i++) {
        const struct hd_provider *pv = hd_provider_at(i);
        if (pv->index >= HD_METRICS_PROVIDERS)
            continue;
        for (int ch = 0; ch < HD_CH_MAX; ch++)
            for (int res = 0; res < HD_RES_MAX; res++) {
                static const char *names[] = {"delivered", "retry", "failed",
                                              "dead_address"};
                uint64_t v = 0;
                for (int w = 0; w < nw; w++)
                    v += __atomic_load_n(
                        &hd_metrics[w].results[pv->index][ch][res],
                        __ATOMIC_RELAXED);
                if (v)
                    P("herald_deliveries_total{provider=\"%s\",channel=\"%s\","
                      "outcome=\"%s\"} %llu\n",
                      pv->name, hd_channel_name(ch), names[res],
                      (unsigned long long)v);
            }
    }
    P("# HELP herald_circuit_breaker_state 0 closed, 1 open, 2 half-open, "
      "per provider and worker.\n# TYPE herald_circuit_breaker_state "
      "gauge\n");
    for (int p = 0; p < hd_providers_count(); p++)
        for (int w = 0; w < nw; w++)
            P("herald_circuit_breaker_state{provider=\"%s\",worker=\"%d\"} "
              "%d\n",
              hd_provider_at(p)->name, w,
              hd_dispatch_breaker_value(&hd_cycle.workers[w],
                                        hd_provider_at(p)));
    provider_metrics(&out, &len, &cap, nw);

    P("# HELP herald_queue_depth Deliveries waiting in the store (due or "
      "scheduled), per channel.\n# TYPE herald_queue_depth gauge\n");
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        json_int_t d = 0;
        for (int s = 0; s < hd_cycle.nshards; s++)
            d += json_integer_value(json_array_get(
                json_object_get(f->parts[s], "depth"), (size_t)ch));
        P("herald_queue_depth{channel=\"%s\"} %lld\n", hd_channel_name(ch),
          (long long)d);
    }
    P("# HELP herald_queue_oldest_seconds Age of the oldest due delivery, "
      "per channel.\n# TYPE herald_queue_oldest_seconds gauge\n");
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        json_int_t a = 0;
        for (int s = 0; s < hd_cycle.nshards; s++) {
            json_int_t v = json_integer_value(json_array_get(
                json_object_get(f->parts[s], "oldest_ms"), (size_t)ch));
            if (v > a)
                a = v;
        }
        P("herald_queue_oldest_seconds{channel=\"%s\"} %.3f\n",
          hd_channel_name(ch), (double)a / 1000);
    }
    {
        static const struct {
            const char *key, *name, *type, *help;
            double scale;
        } store[] = {
            {"commits", "herald_store_commits_total", "counter",
             "Group commits (one LMDB write transaction, synced).", 1},
            {"records", "herald_store_committed_records_total", "counter",
             "Records written by group commits.", 1},
            {"commit_us", "herald_store_commit_seconds_total", "counter",
             "Time spent in group commits (sync included).", 1e-6},
            {"commit_us_max", "herald_store_commit_seconds_max", "gauge",
             "Longest group commit since start.", 1e-6},
            {"dead_letters", "herald_dead_letters", "gauge",
             "Deliveries in the dead letters.", 1},
            {"map_size", "herald_store_map_bytes", "gauge",
             "LMDB map size of the shard.", 1},
            {"map_used", "herald_store_used_bytes", "gauge",
             "Bytes of the map in use.", 1},
        };
        for (size_t i = 0; i < HD_NELEMS(store); i++) {
            P("# HELP %s %s\n# TYPE %s %s\n", store[i].name, store[i].help,
              store[i].name, store[i].type);
            for (int s = 0; s < hd_cycle.nshards; s++) {
                json_int_t v = json_integer_value(
                    json_object_get(f->parts[s], store[i].key));
                if (store[i].scale == 1)
                    P("%s{shard=\"%d\"} %lld\n", store[i].name, s,
                      (long long)v);
                else
                    P("%s{shard=\"%d\"} %.6f\n", store[i].name, s,
                      (double)v * store[i].scale);
            }
        }
    }
    {
        /* glibc's view of the heap over every thread's arena: what RSS
         * alone cannot tell, memory in use from memory malloc keeps for
         * reuse. mallinfo2 locks each arena in turn: once a scrape. */
        struct mallinfo2 mi = mallinfo2();
        P("# HELP herald_heap_bytes malloc's heap: in_use (handed out, "
          "mmapped blocks included), free (kept by malloc for reuse).\n"
          "# TYPE herald_heap_bytes gauge\n");
        P("herald_heap_bytes{state=\"in_use\"} %zu\n", mi.uordblks + mi.hblkhd);
        P("herald_heap_bytes{state=\"free\"} %zu\n", mi.fordblks);
    }
#undef P
    hd_http_reply_text(f->req, 200, "text/plain; version=0.0.4", out, len);
    free(out);
}

void
hd_api_metrics(struct hd_req *r)
{
    hd_api_fanout(r, json_object(), exec_store_stats, finish_metrics);
}

void
hd_api_readyz(struct hd_req *r)
{
    int64_t now = hd_now_ms();

    if (r->worker->stopping) {
        hd_http_reply(r, 503, json_pack("{s:s}", "status", "stopping"));
        return;
    }
    for (int w = 0; w < hd_cycle.nworkers; w++) {
        uint64_t hb =
            __atomic_load_n(&hd_metrics[w].heartbeat_ms, __ATOMIC_RELAXED);
        if (now - (int64_t)hb > 3000) {
            hd_http_reply(r, 503,
                          json_pack("{s:s, s:i}", "status", "worker stalled",
                                    "worker", w));
            return;
        }
    }
    hd_http_reply(r, 200,
                  json_pack("{s:s, s:i, s:i}", "status", "ready", "workers",
                            hd_cycle.nworkers, "shards", hd_cycle.nshards));
}
