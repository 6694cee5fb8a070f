/*
 * provider.h: what a delivery provider (log, APNs, FCM, ...) offers the
 * dispatcher. A provider takes a job and reports its outcome once through
 * job->done, on the same worker thread, now or later. Providers know
 * nothing of HTTP ingest or the store.
 */
#ifndef HD_PROVIDER_H
#define HD_PROVIDER_H

#include <stdint.h>
#include <jansson.h>

#include "core/conf.h"
#include "core/metrics.h"
#include "core/worker.h"

/* Index space of providers: an index is kept by a provider name across
 * reloads (per-worker arrays and metrics use it), a new name takes a free
 * one. Counted in /metrics below HD_METRICS_PROVIDERS. */
#define HD_PROVIDER_SLOTS 64

enum hd_outcome {
    HD_OUT_DELIVERED = 0,
    HD_OUT_RETRY,       /* transient: try again later */
    HD_OUT_FAILED,      /* permanent */
    HD_OUT_DEAD_ADDRESS /* token or address is gone: remove it */
};

struct hd_job;
typedef void (*hd_job_done_fn)(struct hd_job *j, int outcome,
                               int64_t retry_after_ms, const char *detail);

enum hd_priority {
    HD_PRIO_LOW = 0,
    HD_PRIO_NORMAL,
    HD_PRIO_HIGH,
    HD_PRIO_CRITICAL
};

/* One delivery handed to a provider. Everything it points to is borrowed
 * until done is called. */
struct hd_job {
    const char *delivery_id; /* stable: use it as apns-id, Message-ID... */
    const char *notification_id;
    const char *user_id;
    const char *to; /* address, phone, or device token */
    int channel;
    int attempt;     /* 1 for the first */
    json_t *content; /* {title, body, ...}: what to say */
    /* or, for a provider type with text_content, the notification's
     * content object as JSON text (push: its "push" part over the
     * shorthand), content_len bytes */
    const char *content_text;
    size_t content_len;
    /* push and web: the device */
    const char *platform; /* "ios", "android", "web", or NULL */
    const char *app;      /* the device's app, or NULL: the default */
    const char *device_id;
    int sandbox;
    json_t *device;        /* web only: the device record (its keys) */
    int priority;          /* enum hd_priority */
    int64_t expires_at_ms; /* 0: no expiry */
    /* email: the signed token of the one-click unsubscribe link */
    const char *unsubscribe_token;
    /* set by the provider with HD_OUT_DEAD_ADDRESS when it says since when
     * the address is gone (APNs 410 timestamp): the dispatcher keeps a
     * device registered again after that */
    int64_t gone_ms;
    /* set by the provider with HD_OUT_RETRY when the request was lost with
     * its connection (hd_h2_lost_with): the circuit breaker counts the
     * requests of one loss as one failure */
    uint64_t lost_with;
    hd_job_done_fn done;
};

struct hd_provider;

struct hd_provider_type {
    const char *name;
    /* Whether this provider takes j (platform, app); NULL: takes all. */
    int (*accepts)(struct hd_provider *p, const struct hd_job *j);
    /* Checks pc's settings without side effects (herald -t and reload). */
    int (*check)(const struct hd_provider_conf *pc, char *err, size_t errlen);
    int (*create)(struct hd_provider *p, const struct hd_provider_conf *pc,
                  char *err, size_t errlen);
    void (*send)(struct hd_provider *p, struct hd_worker *w, struct hd_job *j);
    /* worker thread, at its exit: close that worker's connections */
    void (*exit_worker)(struct hd_provider *p, struct hd_worker *w);
    void (*destroy)(struct hd_provider *p);
    /* worker thread, after a dispatch pass: send what send() gathered
     * (NULL: send() works alone) */
    void (*flush)(struct hd_provider *p, struct hd_worker *w);
    /* main thread, on SIGUSR1: reopen files (logrotate) */
    int (*reopen)(struct hd_provider *p);
    /* send() reads the content as text (j->content_text), never as a
     * tree: the dispatcher does not decode one (j->content is NULL) */
    int text_content;
};

/* Settings every provider block may carry, whatever its type:
 *   retry attempts N [base TIME] [max TIME];
 *   circuit_breaker failures N [cooldown TIME];            */
struct hd_provider_policy {
    int attempts;         /* sends before a delivery is dead-lettered */
    int64_t base_ms;      /* backoff: full jitter over base * 2^attempt */
    int64_t max_ms;       /* ... capped here */
    int breaker_failures; /* consecutive transient failures that open it */
    int64_t breaker_cooldown_ms;
};

struct hd_provider_table;

struct hd_provider {
    char *name;
    int index; /* < HD_PROVIDER_SLOTS, the same for a name across reloads */
    /* bumped when index is given to this name anew (a reload added the
     * provider): per-worker state kept by index starts over */
    unsigned epoch;
    struct hd_provider_table *_table; /* the table that owns it */
    const struct hd_provider_type *type;
    const struct hd_provider_conf *conf; /* valid while the provider lives */
    struct hd_provider_policy policy;
    void *data;                        /* shared, read-only after create */
    void *worker_data[HD_MAX_WORKERS]; /* each touched by its worker only */
};

/* Checks every provider block of cf: known type, known settings with the
 * right arguments. Errors end "in FILE:LINE". */
int hd_providers_check(const struct hd_conf *cf, char *err, size_t errlen);

/* For provider types: checks that pc has only the named directives, each
 * with nargs arguments (-1: one or more), and those in required. */
struct hd_provider_setting {
    const char *name;
    int nargs;
    int required;
};
int hd_provider_check_settings(const struct hd_provider_conf *pc,
                               const struct hd_provider_setting *settings,
                               char *err, size_t errlen);

/* Builds every provider of cf into the first table (main thread, at start,
 * before the nworkers workers start: each takes it at init). */
int hd_providers_create(const struct hd_conf *cf, int nworkers, char *err,
                        size_t errlen);
/* Main thread, at exit once the workers are joined: every table. */
void hd_providers_destroy(void);

/* Reload, main thread. Whether cf's provider blocks or channel routes
 * differ from those in use. */
int hd_providers_changed(const struct hd_conf *cf);
/* A new table from cf: create() for each provider. NULL with err (the
 * provider's reason, in FILE:LINE or with its name) if any fails; nothing
 * in use is touched either way. */
struct hd_provider_table *hd_providers_build(const struct hd_conf *cf,
                                             char *err, size_t errlen);
/* Frees a table that was built but not published (the reload failed). */
void hd_providers_drop(struct hd_provider_table *t);
/* Makes t the table new deliveries go to: each worker switches at its
 * next inbox turn; jobs already at a provider of the old table finish
 * there, then that worker closes its old connections (exit_worker). */
void hd_providers_publish(struct hd_provider_table *t);
/* Destroys the old tables every worker has let go of; returns how many
 * are still held (call again later). */
int hd_providers_collect(void);

/* Worker thread: hands j to p. p, and every provider of its table, stays
 * alive on w until the matching hd_provider_release, which the caller
 * makes once j's done has run and it no longer reads p. */
void hd_provider_send(struct hd_provider *p, struct hd_worker *w,
                      struct hd_job *j);
void hd_provider_release(struct hd_provider *p, struct hd_worker *w);

/* The calls below read the calling worker's table (the main thread's:
 * the one in use). */
/* The first provider of the channel's list that accepts j and for which
 * usable(p, arg) says yes (a closed circuit breaker), or NULL. *declined
 * counts those that would have taken j but were not usable. */
struct hd_provider *hd_provider_pick(int channel, const struct hd_job *j,
                                     int (*usable)(struct hd_provider *p,
                                                   void *arg),
                                     void *arg, int *declined);
int hd_providers_count(void);
struct hd_provider *hd_provider_at(int i);

extern const struct hd_module hd_provider_module;
/* SIGUSR1 (main thread): every provider that writes files, in every
 * table still alive, reopens them. */
int hd_providers_reopen(void);
/* Runs every provider's flush for worker w (end of a dispatch pass). */
void hd_providers_flush(struct hd_worker *w);

extern const struct hd_provider_type hd_log_provider;
extern const struct hd_provider_type hd_apns_provider;
extern const struct hd_provider_type hd_fcm_provider;
/* SMS and email (issue 5) */
extern const struct hd_provider_type hd_twilio_provider;
extern const struct hd_provider_type hd_vonage_provider;
extern const struct hd_provider_type hd_smtp_provider;
extern const struct hd_provider_type hd_sendgrid_provider;
/* Web Push (issue 5) */
extern const struct hd_provider_type hd_webpush_provider;

#endif
