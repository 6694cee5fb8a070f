/*
 * api_status.c: GET /status, one self-contained HTML page (inline CSS and
 * SVG, no script, no external asset) with per-channel throughput and
 * queue depth over the last five minutes, and the current totals.
 *
 * History: one ring of 60 samples, one every 5 s, kept here. Every worker
 * runs a 5 s timer (armed once per worker: at start when hd_status_module
 * is registered, else by the first /status, whose fan-out reaches every
 * shard owner). On it each owner stores its own shards' queue depths in
 * depth[][] (relaxed atomic stores: only owners touch their LMDB envs),
 * and the owner of shard 0 alone appends a sample: the counters summed
 * from every hd_metrics block (relaxed loads, as /metrics) and the depths
 * last stored by the owners (at most one period old; -1 until every shard
 * has reported once, and then not drawn). One writer, readers on any
 * worker: a mutex held while a sample is copied in or the ring copied out.
 * Current figures (depth, oldest age, commits, dead letters) come from a
 * fan-out per request, like /metrics. Must not know: the queue layout
 * beyond the first key, or how providers count their outcomes.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "http/api.h"
#include "provider/provider.h"
#include "send/dispatch.h"
#include "store/queue.h"

#define TICK_MS 5000
#define NSAMPLES 60 /* 5 minutes */
#define WINDOW_MS ((int64_t)TICK_MS * NSAMPLES)

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

struct sample {
    int64_t t_ms; /* monotonic */
    uint64_t accepted;
    uint64_t delivered[HD_CH_MAX];
    uint64_t failed[HD_CH_MAX]; /* failed + dead address */
    int64_t depth[HD_CH_MAX];   /* -1: not known yet */
};

static struct sample ring[NSAMPLES];
static int ring_next, ring_len;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;

/* stored by each shard's owner, loaded by the sampler */
static int64_t depth[HD_MAX_SHARDS][HD_CH_MAX] = {
    [0 ... HD_MAX_SHARDS - 1] = {[0 ... HD_CH_MAX - 1] = -1}};
static struct event *ticks[HD_MAX_WORKERS]; /* each touched by its worker */

static const char *colors[HD_CH_MAX] = {"#4e79a7", "#f28e2b", "#59a14f",
                                        "#e15759"};

/* ==== sampling (worker threads) ==== */

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
read_counters(struct sample *sp)
{
    /* every index: the counts of providers a reload removed stay in */
    int np = HD_METRICS_PROVIDERS;

    memset(sp, 0, sizeof(*sp));
    for (int w = 0; w < hd_cycle.nworkers; w++) {
        struct hd_metrics *m = &hd_metrics[w];
        sp->accepted += LOAD(m->notifications_accepted);
        for (int p = 0; p < np; p++)
            for (int ch = 0; ch < HD_CH_MAX; ch++) {
                sp->delivered[ch] += LOAD(m->results[p][ch][HD_RES_DELIVERED]);
                sp->failed[ch] += LOAD(m->results[p][ch][HD_RES_FAILED]) +
                                  LOAD(m->results[p][ch][HD_RES_DEAD_ADDRESS]);
            }
    }
}

/* Owner only: committed queue sizes of s, as /metrics counts them. */
static void
store_depth(struct hd_shard *s)
{
    MDB_txn *txn = hd_store_snapshot(s);
    MDB_stat st;

    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        mdb_stat(txn, s->dbi[HD_DB_QUEUE + ch], &st);
        __atomic_store_n(&depth[s->id][ch], (int64_t)st.ms_entries,
                         __ATOMIC_RELAXED);
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct hd_worker *w = arg;
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    struct sample sp;

    event_add(ticks[w->id], &tv);
    for (int i = 0; i < w->nshards; i++)
        store_depth(w->shards[i]);
    if (hd_shard_worker(0) != w)
        return;

    read_counters(&sp);
    for (int ch = 0; ch < HD_CH_MAX; ch++)
        for (int s = 0; s < hd_cycle.nshards; s++) {
            int64_t d = LOAD(depth[s][ch]);
            if (d < 0) {
                sp.depth[ch] = -1;
                break;
            }
            sp.depth[ch] += d;
        }
    sp.t_ms = mono_ms();

    pthread_mutex_lock(&ring_lock);
    ring[ring_next] = sp;
    ring_next = (ring_next + 1) % NSAMPLES;
    if (ring_len < NSAMPLES)
        ring_len++;
    pthread_mutex_unlock(&ring_lock);
}

/* Starts w's sampling timer, once; the first tick runs on the next loop
 * pass. Worker thread of w. */
static void
arm(struct hd_worker *w)
{
    struct timeval now = {0, 0};

    if (ticks[w->id] != NULL)
        return;
    ticks[w->id] = event_new(w->base, -1, 0, on_tick, w);
    event_add(ticks[w->id], &now);
}

static int
status_init(struct hd_worker *w)
{
    arm(w);
    return HD_OK;
}

static void
status_exit(struct hd_worker *w)
{
    if (ticks[w->id] != NULL) {
        event_free(ticks[w->id]);
        ticks[w->id] = NULL;
    }
}

/* Optional: registered in main.c, history starts with the workers rather
 * than at the first /status. */
const struct hd_module hd_status_module = {
    "status", status_init, NULL, NULL, NULL, status_exit,
};

/* ==== the page (origin worker) ==== */

struct page {
    char *buf;
    size_t len, cap;
};

#define P(...) hd_metrics_printf(&pg->buf, &pg->len, &pg->cap, __VA_ARGS__)

static void
put_esc(struct page *pg, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<':
            P("&lt;");
            break;
        case '>':
            P("&gt;");
            break;
        case '&':
            P("&amp;");
            break;
        case '"':
            P("&quot;");
            break;
        default:
            P("%c", *s);
        }
}

/* 1234 -> "1234", 12345 -> "12.3k", 0.25 -> "0.25" */
static const char *
num(char *buf, size_t size, double v)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.3gG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.3gM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, size, "%.3gk", v / 1e3);
    else
        snprintf(buf, size, "%.4g", v);
    return buf;
}

/* The top of a y axis with 4 gridlines: 4 steps of 1, 2, 2.5 or 5 times
 * a power of ten, at least v; whole steps for counts. */
static double
nice_max(double v, int whole)
{
    static const double steps[] = {1, 2, 2.5, 5, 10};
    double want = v / 4, p = 1;

    if (want <= (whole ? 1 : 0.25))
        return whole ? 4 : 1;
    while (p > want)
        p /= 10;
    while (p * 10 < want)
        p *= 10;
    for (size_t i = 0; i < HD_NELEMS(steps); i++) {
        double s = steps[i] * p;
        if (s >= want && (!whole || s == (double)(int64_t)s))
            return 4 * s;
    }
    return 40 * p;
}

struct series {
    const char *name, *color;
    double v[NSAMPLES];
    int64_t t[NSAMPLES]; /* monotonic ms */
    int ok[NSAMPLES];
};

/* One line chart over the last WINDOW_MS ending at now: y from 0 to a
 * round maximum, a tick each minute; a gap where a point is missing.
 * Earlier series are drawn wider, so equal values stay visible. */
static void
chart(struct page *pg, const char *title, const char *unit, int whole,
      const struct series *ss, int nseries, int n, int64_t now)
{
    const double W = 540, H = 190, L = 50, R = 14, T = 12, B = 26;
    const double pw = W - L - R, ph = H - T - B;
    double max = 0, ymax;
    int any = 0;
    char b[32];

    for (int k = 0; k < nseries; k++)
        for (int i = 0; i < n; i++)
            if (ss[k].ok[i]) {
                any = 1;
                if (ss[k].v[i] > max)
                    max = ss[k].v[i];
            }
    ymax = nice_max(max, whole);

    P("<figure class=\"chart\"><figcaption>");
    put_esc(pg, title);
    P(" <small>(%s)</small></figcaption>\n", unit);
    P("<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
      "role=\"img\" aria-label=\"",
      W, H, W, H);
    put_esc(pg, title);
    P("\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\">\n");
    P("<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
      "class=\"bg\"/>\n",
      L, T, pw, ph);
    for (int g = 0; g <= 4; g++) {
        double y = T + ph - ph * g / 4;
        P("<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
          "class=\"%s\"/>",
          L, y, L + pw, y, g ? "grid" : "axis");
        P("<text x=\"%.0f\" y=\"%.1f\" class=\"yl\">%s</text>\n", L - 6, y + 4,
          num(b, sizeof(b), ymax * g / 4));
    }
    for (int m = 0; m <= WINDOW_MS / 60000; m++) {
        double x = L + pw - pw * (double)m * 60000 / (double)WINDOW_MS;
        P("<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
          "class=\"%s\"/>",
          x, T, x, T + ph + 4, m ? "grid" : "axis");
        if (m)
            P("<text x=\"%.1f\" y=\"%.0f\" class=\"xl\">-%d min</text>\n", x,
              H - 8, m);
        else
            P("<text x=\"%.1f\" y=\"%.0f\" class=\"xl\">now</text>\n", x,
              H - 8);
    }
    for (int k = 0; k < nseries; k++) {
        int run = 0;
        double lx = 0, ly = 0;
        for (int i = 0; i <= n; i++) {
            double x, y;
            int64_t age;
            if (i == n || !ss[k].ok[i] || now - ss[k].t[i] > WINDOW_MS) {
                if (run == 1)
                    P("\"/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" "
                      "fill=\"%s\"/>\n",
                      lx, ly, ss[k].color);
                else if (run > 1)
                    P("\"/>\n");
                run = 0;
                continue;
            }
            age = now - ss[k].t[i];
            x = L + pw - pw * (double)(age < 0 ? 0 : age) / (double)WINDOW_MS;
            y = T + ph - ph * ss[k].v[i] / ymax;
            if (run++ == 0)
                P("<polyline class=\"line\" stroke=\"%s\" "
                  "stroke-width=\"%d\" points=\"",
                  ss[k].color, 2 + nseries - 1 - k);
            P("%.1f,%.1f ", x, y);
            lx = x;
            ly = y;
        }
    }
    if (!any)
        P("<text x=\"%.0f\" y=\"%.0f\" class=\"empty\">no data yet: one "
          "sample every %d s</text>\n",
          L + pw / 2, T + ph / 2, TICK_MS / 1000);
    P("</svg>\n<div class=\"legend\">");
    for (int k = 0; k < nseries; k++) {
        P("<span><i style=\"background:%s\"></i>", ss[k].color);
        put_esc(pg, ss[k].name);
        P("</span>");
    }
    P("</div></figure>\n");
}

static const char style[] =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:16px 24px;color:#222;background:#fafafa}"
    "h1{font-size:20px;margin:0 0 2px}h2{font-size:16px;margin:22px 0 8px}"
    ".sub{color:#666;margin-bottom:14px}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px}"
    ".card{background:#fff;border:1px solid #ddd;border-radius:6px;"
    "padding:8px 14px;min-width:110px}"
    ".card b{display:block;font-size:22px}.card span{color:#666}"
    ".card.bad b{color:#c0392b}"
    ".charts{display:flex;flex-wrap:wrap;gap:14px}"
    ".chart{background:#fff;border:1px solid #ddd;border-radius:6px;"
    "margin:0;padding:8px}"
    "figcaption{font-weight:600;margin-bottom:4px}"
    "figcaption small{font-weight:400;color:#666}"
    ".plot .bg{fill:#fff}.plot .axis{stroke:#888}"
    ".plot .grid{stroke:#e6e6e6}"
    ".plot text{font-size:11px;fill:#555}"
    ".plot .yl{text-anchor:end}.plot .xl{text-anchor:middle}"
    ".plot .empty{text-anchor:middle;font-size:13px;fill:#999}"
    ".plot .line{fill:none;stroke-linejoin:round;stroke-linecap:round}"
    ".legend span{margin-right:14px}"
    ".legend i{display:inline-block;width:10px;height:10px;"
    "margin-right:5px;border-radius:2px}"
    "table{border-collapse:collapse;background:#fff}"
    "th,td{border:1px solid #ddd;padding:3px 9px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    "th{background:#f0f0f0;font-weight:600}"
    ".ok{color:#27ae60}.warn{color:#d68910}.bad{color:#c0392b}"
    "details{margin-top:8px}";

static json_int_t
part_int(struct hd_fanout *f, int shard, const char *key)
{
    return json_integer_value(json_object_get(f->parts[shard], key));
}

static json_int_t
part_ch(struct hd_fanout *f, int shard, const char *key, int ch)
{
    return json_integer_value(
        json_array_get(json_object_get(f->parts[shard], key), (size_t)ch));
}

static uint64_t
sum_ch(const uint64_t *first, int ch)
{
    uint64_t v = 0;
    size_t off = (size_t)((const char *)first - (const char *)&hd_metrics[0]);

    for (int w = 0; w < hd_cycle.nworkers; w++)
        v += __atomic_load_n(
            (const uint64_t *)((const char *)&hd_metrics[w] + off) + ch,
            __ATOMIC_RELAXED);
    return v;
}

static void
card(struct page *pg, const char *label, double v, int bad)
{
    char b[32];
    P("<div class=\"card%s\"><b>%s</b><span>%s</span></div>\n",
      bad && v > 0 ? " bad" : "", num(b, sizeof(b), v), label);
}

static void
finish_page(struct hd_fanout *f)
{
    struct page page = {hd_alloc(65536), 0, 65536}, *pg = &page;
    struct series *s = hd_calloc((HD_CH_MAX + 2) * sizeof(*s));
    struct sample hist[NSAMPLES], cur;
    int nw = hd_cycle.nworkers, nsh = hd_cycle.nshards, n;
    int np = hd_providers_count();
    int64_t now = mono_ms(), queued = 0, dead = 0;
    uint64_t tot_delivered = 0, tot_failed = 0, http_count = 0, http_us = 0;
    char iso[32], b[32];

    pthread_mutex_lock(&ring_lock);
    n = ring_len;
    for (int i = 0; i < n; i++)
        hist[i] = ring[(ring_next - n + i + NSAMPLES) % NSAMPLES];
    pthread_mutex_unlock(&ring_lock);

    read_counters(&cur);
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        tot_delivered += cur.delivered[ch];
        tot_failed += cur.failed[ch];
    }
    for (int sh = 0; sh < nsh; sh++) {
        dead += part_int(f, sh, "dead_letters");
        for (int ch = 0; ch < HD_CH_MAX; ch++)
            queued += part_ch(f, sh, "depth", ch);
    }
    for (int w = 0; w < nw; w++) {
        http_count += LOAD(hd_metrics[w].http_seconds.count);
        http_us += LOAD(hd_metrics[w].http_seconds.sum_us);
    }

    hd_time_iso(hd_now_ms(), iso, sizeof(iso));
    P("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"%d\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<title>herald status</title><style>%s</style></head>\n<body>\n",
      TICK_MS / 1000, style);
    P("<h1>herald status</h1><div class=\"sub\">herald/%s &middot; %d "
      "worker(s), %d shard(s) &middot; %s &middot; refreshes every %d "
      "s</div>\n",
      HD_VERSION, nw, nsh, iso, TICK_MS / 1000);

    P("<div class=\"cards\">\n");
    card(pg, "accepted", (double)cur.accepted, 0);
    card(pg, "delivered", (double)tot_delivered, 0);
    card(pg, "failed", (double)tot_failed, 1);
    card(pg, "dead letters", (double)dead, 1);
    card(pg, "queued", (double)queued, 0);
    {
        uint64_t inflight = 0, conns = 0;
        for (int w = 0; w < nw; w++) {
            inflight += LOAD(hd_metrics[w].in_flight);
            conns += LOAD(hd_metrics[w].connections);
        }
        card(pg, "in flight", (double)inflight, 0);
        card(pg, "connections", (double)conns, 0);
    }
    P("</div>\n");

    /* ---- charts: rates between consecutive samples ---- */
    P("<h2>Last %d minutes</h2><div class=\"charts\">\n",
      (int)(WINDOW_MS / 60000));
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        s[ch].name = hd_channel_name(ch);
        s[ch].color = colors[ch];
        for (int i = 1; i < n; i++) {
            double dt = (double)(hist[i].t_ms - hist[i - 1].t_ms) / 1000;
            uint64_t a = hist[i - 1].delivered[ch], z = hist[i].delivered[ch];
            s[ch].t[i] = hist[i].t_ms;
            s[ch].ok[i] = dt > 0;
            s[ch].v[i] = dt > 0 && z > a ? (double)(z - a) / dt : 0;
        }
    }
    chart(pg, "Deliveries per second, by channel", "delivered/s", 0, s,
          HD_CH_MAX, n, now);
    for (int ch = 0; ch < HD_CH_MAX; ch++)
        for (int i = 0; i < n; i++) {
            s[ch].t[i] = hist[i].t_ms;
            s[ch].ok[i] = hist[i].depth[ch] >= 0;
            s[ch].v[i] = (double)hist[i].depth[ch];
        }
    chart(pg, "Queue depth, by channel", "deliveries waiting", 1, s, HD_CH_MAX,
          n, now);
    {
        struct series *io = &s[HD_CH_MAX];
        io[0].name = "accepted";
        io[0].color = "#4e79a7";
        io[1].name = "failed";
        io[1].color = "#e15759";
        for (int i = 1; i < n; i++) {
            double dt = (double)(hist[i].t_ms - hist[i - 1].t_ms) / 1000;
            uint64_t fa = 0, fz = 0;
            for (int ch = 0; ch < HD_CH_MAX; ch++) {
                fa += hist[i - 1].failed[ch];
                fz += hist[i].failed[ch];
            }
            io[0].t[i] = io[1].t[i] = hist[i].t_ms;
            io[0].ok[i] = io[1].ok[i] = dt > 0;
            io[0].v[i] =
                dt > 0 && hist[i].accepted > hist[i - 1].accepted
                    ? (double)(hist[i].accepted - hist[i - 1].accepted) / dt
                    : 0;
            io[1].v[i] = dt > 0 && fz > fa ? (double)(fz - fa) / dt : 0;
        }
        chart(pg, "Notifications accepted and deliveries failed", "per second",
              0, io, 2, n, now);
    }
    P("</div>\n");

    /* ---- per channel ---- */
    P("<h2>Channels</h2><table><tr><th>channel</th><th>queued</th>"
      "<th>oldest due</th><th>created</th><th>delivered</th>"
      "<th>retried</th><th>failed</th><th>suppressed</th>"
      "<th>throttled</th><th>expired</th><th>dead-lettered</th>"
      "<th>avg latency</th></tr>\n");
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        json_int_t q = 0, oldest = 0;
        uint64_t retried = 0, cnt = 0, us = 0;
        for (int sh = 0; sh < nsh; sh++) {
            json_int_t o = part_ch(f, sh, "oldest_ms", ch);
            q += part_ch(f, sh, "depth", ch);
            if (o > oldest)
                oldest = o;
        }
        for (int w = 0; w < nw; w++) {
            for (int p = 0; p < HD_METRICS_PROVIDERS; p++)
                retried += LOAD(hd_metrics[w].results[p][ch][HD_RES_RETRY]);
            cnt += LOAD(hd_metrics[w].delivery_seconds[ch].count);
            us += LOAD(hd_metrics[w].delivery_seconds[ch].sum_us);
        }
        P("<tr><td><i style=\"display:inline-block;width:10px;height:10px;"
          "margin-right:5px;background:%s\"></i>%s</td><td>%lld</td>"
          "<td>%.1f s</td><td>%llu</td><td>%llu</td><td>%llu</td>"
          "<td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td>"
          "<td>%llu</td>",
          colors[ch], hd_channel_name(ch), (long long)q, (double)oldest / 1000,
          (unsigned long long)sum_ch(hd_metrics[0].deliveries_created, ch),
          (unsigned long long)cur.delivered[ch], (unsigned long long)retried,
          (unsigned long long)cur.failed[ch],
          (unsigned long long)sum_ch(hd_metrics[0].suppressed, ch),
          (unsigned long long)sum_ch(hd_metrics[0].throttled, ch),
          (unsigned long long)sum_ch(hd_metrics[0].expired, ch),
          (unsigned long long)sum_ch(hd_metrics[0].dead_lettered, ch));
        if (cnt)
            P("<td>%.1f ms</td></tr>\n", (double)us / (double)cnt / 1000);
        else
            P("<td>&ndash;</td></tr>\n");
    }
    P("</table>\n");

    /* ---- per provider ---- */
    P("<h2>Providers</h2><table><tr><th>provider</th><th>type</th>"
      "<th>delivered</th><th>retried</th><th>failed</th>"
      "<th>dead address</th><th>circuit breaker</th></tr>\n");
    for (int p = 0; p < np; p++) {
        struct hd_provider *pv = hd_provider_at(p);
        uint64_t res[HD_RES_MAX] = {0};
        int open = 0, half = 0;
        for (int w = 0; w < nw; w++) {
            int st = hd_dispatch_breaker_value(&hd_cycle.workers[w], pv);
            open += st == 1;
            half += st == 2;
            for (int ch = 0; pv->index < HD_METRICS_PROVIDERS && ch < HD_CH_MAX;
                 ch++)
                for (int k = 0; k < HD_RES_MAX; k++)
                    res[k] += LOAD(hd_metrics[w].results[pv->index][ch][k]);
        }
        P("<tr><td>");
        put_esc(pg, pv->name);
        P("</td><td>");
        put_esc(pg, pv->type ? pv->type->name : "?");
        P("</td><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td>",
          (unsigned long long)res[HD_RES_DELIVERED],
          (unsigned long long)res[HD_RES_RETRY],
          (unsigned long long)res[HD_RES_FAILED],
          (unsigned long long)res[HD_RES_DEAD_ADDRESS]);
        if (open == 0 && half == 0)
            P("<td class=\"ok\">closed</td></tr>\n");
        else
            P("<td class=\"%s\">open on %d, half-open on %d of %d "
              "workers</td></tr>\n",
              open ? "bad" : "warn", open, half, nw);
    }
    if (np == 0)
        P("<tr><td colspan=\"7\">no providers</td></tr>\n");
    P("</table>\n");

    /* ---- store ---- */
    {
        json_int_t commits = 0, records = 0, us = 0, us_max = 0, used = 0,
                   size = 0;
        for (int sh = 0; sh < nsh; sh++) {
            commits += part_int(f, sh, "commits");
            records += part_int(f, sh, "records");
            us += part_int(f, sh, "commit_us");
            used += part_int(f, sh, "map_used");
            size += part_int(f, sh, "map_size");
            if (part_int(f, sh, "commit_us_max") > us_max)
                us_max = part_int(f, sh, "commit_us_max");
        }
        P("<h2>Store and HTTP</h2><table><tr><th></th><th>value</th></tr>\n");
        P("<tr><td>group commits</td><td>%lld</td></tr>\n", (long long)commits);
        P("<tr><td>records committed</td><td>%lld</td></tr>\n",
          (long long)records);
        P("<tr><td>records per commit</td><td>%.1f</td></tr>\n",
          commits ? (double)records / (double)commits : 0.0);
        P("<tr><td>avg commit (sync included)</td><td>%.2f ms</td></tr>\n",
          commits ? (double)us / (double)commits / 1000 : 0.0);
        P("<tr><td>longest commit</td><td>%.2f ms</td></tr>\n",
          (double)us_max / 1000);
        P("<tr><td>map in use</td><td>%s", num(b, sizeof(b), (double)used));
        P("B of %sB</td></tr>\n", num(b, sizeof(b), (double)size));
        P("<tr><td>dead letters (stored)</td><td>%lld</td></tr>\n",
          (long long)dead);
        P("<tr><td>HTTP 2xx / 4xx / 5xx</td><td>%llu / %llu / "
          "%llu</td></tr>\n",
          (unsigned long long)sum_ch(hd_metrics[0].http_status, 2),
          (unsigned long long)sum_ch(hd_metrics[0].http_status, 4),
          (unsigned long long)sum_ch(hd_metrics[0].http_status, 5));
        P("<tr><td>avg request time</td><td>%.2f ms</td></tr>\n",
          http_count ? (double)http_us / (double)http_count / 1000 : 0.0);
        {
            uint64_t dup = 0, busy = 0;
            for (int w = 0; w < nw; w++) {
                dup += LOAD(hd_metrics[w].notifications_duplicate);
                busy += LOAD(hd_metrics[w].rejected_busy);
            }
            P("<tr><td>idempotent repeats</td><td>%llu</td></tr>\n",
              (unsigned long long)dup);
            P("<tr><td>refused: store nearly full</td><td>%llu</td></tr>\n",
              (unsigned long long)busy);
        }
        P("</table>\n");
    }
    P("<details><summary>per shard</summary><table><tr><th>shard</th>"
      "<th>worker</th><th>queued</th><th>commits</th><th>records</th>"
      "<th>avg commit</th><th>longest</th><th>map in use</th>"
      "<th>dead letters</th></tr>\n");
    for (int sh = 0; sh < nsh; sh++) {
        json_int_t q = 0, c = part_int(f, sh, "commits");
        for (int ch = 0; ch < HD_CH_MAX; ch++)
            q += part_ch(f, sh, "depth", ch);
        P("<tr><td>%d</td><td>%d</td><td>%lld</td><td>%lld</td>"
          "<td>%lld</td><td>%.2f ms</td><td>%.2f ms</td><td>%sB</td>"
          "<td>%lld</td></tr>\n",
          sh, hd_shard_worker(sh)->id, (long long)q, (long long)c,
          (long long)part_int(f, sh, "records"),
          c ? (double)part_int(f, sh, "commit_us") / (double)c / 1000 : 0.0,
          (double)part_int(f, sh, "commit_us_max") / 1000,
          num(b, sizeof(b), (double)part_int(f, sh, "map_used")),
          (long long)part_int(f, sh, "dead_letters"));
    }
    P("</table></details>\n");
    P("<p class=\"sub\">Prometheus: <code>/metrics</code>. Charts: one "
      "sample every %d s, kept %d minutes, in memory.</p>\n</body></html>\n",
      TICK_MS / 1000, (int)(WINDOW_MS / 60000));

    hd_http_header(f->req, "Cache-Control: no-store");
    hd_http_header(f->req, "Content-Security-Policy: default-src 'none'; "
                           "style-src 'unsafe-inline'; img-src data:");
    hd_http_reply_text(f->req, 200, "text/html; charset=utf-8", page.buf,
                       page.len);
    free(page.buf);
    free(s);
}

#undef P

/* Owner side: this shard's current figures; also starts the owner's
 * sampling timer if the module did not. */
static void
exec_shard(struct hd_shard *s, json_t *args, json_t **out)
{
    MDB_txn *txn = hd_store_snapshot(s);
    json_t *dep = json_array(), *oldest = json_array();
    int64_t now = hd_now_ms();
    MDB_stat st;

    arm(hd_current_worker);
    store_depth(s);
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        MDB_cursor *cur;
        MDB_val k, v;
        int64_t age = 0;
        mdb_stat(txn, s->dbi[HD_DB_QUEUE + ch], &st);
        json_array_append_new(dep, json_integer((json_int_t)st.ms_entries));
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
        "{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "depth", dep,
        "oldest_ms", oldest, "dead_letters", (json_int_t)st.ms_entries,
        "commits", (json_int_t)s->commits, "records",
        (json_int_t)s->records_committed, "commit_us",
        (json_int_t)s->commit_us_total, "commit_us_max",
        (json_int_t)s->commit_us_max, "map_size", (json_int_t)s->map_size,
        "map_used", (json_int_t)hd_store_used(s));
}

void
hd_api_status_page(struct hd_req *r)
{
    hd_api_fanout(r, json_object(), exec_shard, finish_page);
}
