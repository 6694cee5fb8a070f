/*
 * worker.c: worker threads and the call between them. The main thread
 * creates the workers and sends them configs and stop orders; everything
 * else happens on the workers, each in its own event loop. A call for a
 * shard runs inline when the caller owns the shard, else it travels
 * through the owner's inbox and comes back through the caller's.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/shard.h"
#include "core/time.h"
#include "core/worker.h"
#include "store/store.h"

struct hd_cycle hd_cycle;
__thread struct hd_worker *hd_current_worker;

struct hd_worker *
hd_shard_worker(int shard)
{
    return &hd_cycle.workers[hd_shard_owner(shard, hd_cycle.nworkers)];
}

struct hd_shard *
hd_call_shard(struct hd_call *c)
{
    return hd_cycle.shards[c->shard];
}

static void
on_call(struct hd_msg *m, void *ctx)
{
    struct hd_call *c = (struct hd_call *)m;
    c->exec(c);
}

static void
on_return(struct hd_msg *m, void *ctx)
{
    struct hd_call *c = (struct hd_call *)m;
    c->done(c);
}

void
hd_call_submit(struct hd_call *c)
{
    struct hd_worker *owner = hd_shard_worker(c->shard);

    c->origin = hd_current_worker;
    if (owner == c->origin) {
        c->exec(c);
        return;
    }
    c->msg.kind = HD_MSG_OP;
    c->msg.fn = on_call;
    hd_inbox_send(owner->inbox, &c->msg);
}

void
hd_call_return(struct hd_call *c)
{
    if (c->origin == hd_current_worker) {
        c->done(c);
        return;
    }
    c->msg.kind = HD_MSG_REPLY;
    c->msg.fn = on_return;
    hd_inbox_send(c->origin->inbox, &c->msg);
}

/* ==== control messages from the main thread ==== */

struct ctl_msg {
    struct hd_msg msg;
    struct hd_conf *conf;
    int fds[HD_MAX_LISTEN]; /* conf: new listeners, owned by the message */
    int how;
};

/* While stopping, a worker reports idle once no module has work left.
 * Modules start no new work after stop_worker, so idle stays idle and the
 * main thread can end all loops together (calls between workers finish). */
static void
on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct hd_worker *w = arg;
    struct timeval tv = {0, 10000};
    int busy = 0;

    for (int i = 0; i < hd_cycle.nmodules; i++)
        if (hd_cycle.modules[i]->busy_worker &&
            hd_cycle.modules[i]->busy_worker(w))
            busy = 1;
    for (int i = 0; i < w->nshards; i++)
        if (hd_store_pending(w->shards[i]))
            busy = 1;
    __atomic_store_n(&w->idle, !busy, __ATOMIC_RELEASE);
    event_base_once(w->base, -1, EV_TIMEOUT, on_drain_check, w, &tv);
}

static void
on_ctl(struct hd_msg *m, void *ctx)
{
    struct hd_worker *w = ctx;
    struct ctl_msg *c = (struct ctl_msg *)m;

    if (m->kind == HD_MSG_CONF) {
        struct hd_conf *old = w->conf;
        w->conf = c->conf; /* the message's reference is now ours */
        /* the sockets too: the http module adopts or closes them */
        w->nlisten = w->conf->nlisten;
        for (int l = 0; l < w->nlisten; l++)
            w->listen_fds[l] = c->fds[l];
        for (int i = 0; i < hd_cycle.nmodules; i++)
            if (hd_cycle.modules[i]->reconf_worker)
                hd_cycle.modules[i]->reconf_worker(w);
        hd_conf_unref(old);
    } else if (m->kind == HD_MSG_STOP && c->how == 3) {
        event_base_loopbreak(w->base);
    } else if (m->kind == HD_MSG_STOP) {
        int first = w->stopping == 0;
        if (c->how > w->stopping)
            w->stopping = c->how;
        if (first)
            for (int i = 0; i < hd_cycle.nmodules; i++)
                if (hd_cycle.modules[i]->stop_worker)
                    hd_cycle.modules[i]->stop_worker(w);
        if (first)
            on_drain_check(-1, 0, w);
    }
    free(c);
}

/* The worker's pulse, for /readyz: a stuck loop stops it. Every
 * HD_DECAY_TICKS it also gives back what a burst left in its free lists,
 * and the pages under them once that is a lot: glibc keeps freed pages in
 * the arena, so without malloc_trim the heap would stay at the peak of
 * the largest burst so far. */
#define HD_DECAY_TICKS 10
#define HD_TRIM_BYTES (1024 * 1024)

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    static __thread unsigned ticks;
    struct hd_worker *w = arg;

    __atomic_store_n(&hd_metrics[w->id].heartbeat_ms, (uint64_t)hd_now_ms(),
                     __ATOMIC_RELAXED);
    if (++ticks % HD_DECAY_TICKS == 0 && hd_fl_decay() >= HD_TRIM_BYTES)
        malloc_trim(0);
}

static void *
worker_main(void *arg)
{
    struct hd_worker *w = arg;
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    hd_current_worker = w;

    for (int i = 0; i < hd_cycle.nmodules; i++)
        if (hd_cycle.modules[i]->init_worker &&
            hd_cycle.modules[i]->init_worker(w) != HD_OK) {
            hd_log(HD_LOG_EMERG, &w->log, 0, "module %s failed to start",
                   hd_cycle.modules[i]->name);
            exit(1);
        }
    hd_log(HD_LOG_INFO, &w->log, 0, "worker started with %d shard(s)",
           w->nshards);

    {
        struct timeval tv = {1, 0};
        struct event *tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        on_tick(-1, 0, w);
        event_add(tick, &tv);
        event_base_dispatch(w->base);
        event_free(tick);
    }

    for (int i = 0; i < w->nshards; i++)
        hd_store_commit_stop(w->shards[i]);
    for (int i = hd_cycle.nmodules - 1; i >= 0; i--)
        if (hd_cycle.modules[i]->exit_worker)
            hd_cycle.modules[i]->exit_worker(w);
    hd_log(HD_LOG_INFO, &w->log, 0, "worker exited");
    return NULL;
}

int
hd_workers_start(struct hd_conf *cf, int nworkers, int nshards,
                 struct hd_shard **shards, int (*fds)[HD_MAX_LISTEN],
                 int nlisten)
{
    hd_cycle.nworkers = nworkers;
    hd_cycle.nshards = nshards;
    hd_cycle.shards = shards;
    hd_cycle.workers = hd_calloc(nworkers * sizeof(struct hd_worker));

    for (int i = 0; i < nworkers; i++) {
        struct hd_worker *w = &hd_cycle.workers[i];
        struct event_config *ec = event_config_new();

        w->id = i;
        w->log.worker = i;
        w->log.shard = -1;
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
        if (w->base == NULL)
            return HD_ERROR;
        w->inbox = hd_inbox_create(w->base, w);
        if (w->inbox == NULL)
            return HD_ERROR;
        hd_conf_ref(cf);
        w->conf = cf;
        w->nlisten = nlisten;
        for (int l = 0; l < nlisten; l++)
            w->listen_fds[l] = fds[i][l];
        w->shards = hd_calloc(nshards * sizeof(struct hd_shard *));
        for (int s = 0; s < nshards; s++) {
            if (hd_shard_worker(s) != w)
                continue;
            if (hd_store_attach(shards[s], w->base, i) != HD_OK)
                return HD_ERROR;
            w->shards[w->nshards++] = shards[s];
        }
    }
    for (int i = 0; i < nworkers; i++)
        if (pthread_create(&hd_cycle.workers[i].thread, NULL, worker_main,
                           &hd_cycle.workers[i]) != 0)
            return HD_ERROR;
    return HD_OK;
}

void
hd_workers_reconf(struct hd_conf *cf, int (*fds)[HD_MAX_LISTEN])
{
    for (int i = 0; i < hd_cycle.nworkers; i++) {
        struct ctl_msg *c = hd_calloc(sizeof(*c));
        c->msg.kind = HD_MSG_CONF;
        c->msg.fn = on_ctl;
        hd_conf_ref(cf);
        c->conf = cf;
        for (int l = 0; l < HD_MAX_LISTEN; l++)
            c->fds[l] = fds && l < cf->nlisten ? fds[i][l] : -1;
        hd_inbox_send(hd_cycle.workers[i].inbox, &c->msg);
    }
}

void
hd_workers_stop(int how)
{
    for (int i = 0; i < hd_cycle.nworkers; i++) {
        struct ctl_msg *c = hd_calloc(sizeof(*c));
        c->msg.kind = HD_MSG_STOP;
        c->msg.fn = on_ctl;
        c->how = how;
        hd_inbox_send(hd_cycle.workers[i].inbox, &c->msg);
    }
}

int
hd_workers_idle(void)
{
    for (int i = 0; i < hd_cycle.nworkers; i++)
        if (!__atomic_load_n(&hd_cycle.workers[i].idle, __ATOMIC_ACQUIRE))
            return 0;
    return 1;
}

void
hd_workers_join(void)
{
    for (int i = 0; i < hd_cycle.nworkers; i++) {
        struct hd_worker *w = &hd_cycle.workers[i];
        pthread_join(w->thread, NULL);
    }
    for (int i = 0; i < hd_cycle.nworkers; i++) {
        struct hd_worker *w = &hd_cycle.workers[i];
        hd_inbox_destroy(w->inbox);
        event_base_free(w->base);
        hd_conf_unref(w->conf);
        free(w->shards);
    }
    free(hd_cycle.workers);
    hd_cycle.workers = NULL;
}
