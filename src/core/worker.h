/*
 * worker.h: the worker threads and the cross-thread call. Each worker owns
 * one event_base, its listeners and the shards mapped to it; the only way
 * to touch another worker's state is hd_call_submit (through its inbox).
 */
#ifndef HD_WORKER_H
#define HD_WORKER_H

#include <pthread.h>
#include <event2/event.h>

#include "core/herald.h"
#include "core/conf.h"
#include "core/log.h"
#include "event/inbox.h"

struct hd_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct hd_inbox *inbox;
    struct hd_conf *conf;     /* this worker's reference to the live config */
    struct hd_shard **shards; /* owned, ascending ids */
    int nshards;
    /* listening sockets handed over by the main thread, by index in
     * conf->listen, for the http module to adopt; -1: none new there */
    int listen_fds[HD_MAX_LISTEN];
    int nlisten;
    struct hd_log log;
    int stopping;    /* 1: quit (drain deliveries), 2: stop (requests only) */
    int idle;        /* atomic: stopping and nothing left to finish */
    void *module[4]; /* per-module state, indexed by module slot */
};

/* A module: one layer's per-worker life cycle, listed in main.c. */
struct hd_module {
    const char *name;
    int (*init_worker)(struct hd_worker *w);    /* worker thread */
    void (*reconf_worker)(struct hd_worker *w); /* after a conf swap */
    void (*stop_worker)(struct hd_worker *w);   /* stop accepting */
    int (*busy_worker)(struct hd_worker *w);    /* drain: anything left? */
    void (*exit_worker)(struct hd_worker *w);   /* free */
};

struct hd_cycle {
    struct hd_conf *conf; /* main thread's */
    int nworkers;
    struct hd_worker *workers;
    int nshards;
    struct hd_shard **shards; /* all shards by id */
    const struct hd_module **modules;
    int nmodules;
};

extern struct hd_cycle hd_cycle;
extern __thread struct hd_worker *hd_current_worker;

/* A call runs exec on the owner of a shard, then done on the origin.
 * Submitting transfers the call; the owner passes it back with
 * hd_call_return once it is finished (perhaps after a commit). */
struct hd_call;
typedef void (*hd_call_fn)(struct hd_call *c);

struct hd_call {
    struct hd_msg msg;
    int shard;
    struct hd_worker *origin;
    hd_call_fn exec; /* on the owner of shard */
    hd_call_fn done; /* on origin */
};

void hd_call_submit(struct hd_call *c);
void hd_call_return(struct hd_call *c);
struct hd_shard *hd_call_shard(struct hd_call *c);
struct hd_worker *hd_shard_worker(int shard);

int hd_workers_start(struct hd_conf *cf, int nworkers, int nshards,
                     struct hd_shard **shards, int (*fds)[HD_MAX_LISTEN],
                     int nlisten);
/* Sends cf to every worker; fds (NULL: none) are the new listening
 * sockets per worker by index in cf->listen, -1 where the worker keeps the
 * one it has: each worker takes its row. */
void hd_workers_reconf(struct hd_conf *cf, int (*fds)[HD_MAX_LISTEN]);
/* how: 1 graceful (drain), 2 fast, 3 end the loops now */
void hd_workers_stop(int how);
int hd_workers_idle(void);
void hd_workers_join(void);

#endif
