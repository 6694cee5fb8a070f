/*
 * dispatch.c: the dispatcher of one worker. Worker thread only.
 *
 * After every durable commit of one of its shards, and at the next due
 * time, it walks each channel queue (the committed snapshot, so only
 * durable deliveries are sent), skips what is already in flight and starts
 * jobs up to a cap; waiting deliveries stay in LMDB, not in memory. A walk
 * resumes where the last one stopped, so the entries in flight at the
 * front are not walked again each time, unless a commit put an entry
 * before that point. An outcome is staged as one change (queue entry
 * removed or moved, outcome record written) and the delivery leaves the
 * in-flight set only once that change is durable, so a crash can repeat
 * only what was in flight. It refills a queue once a quarter of its cap is
 * free. A small content rides in the queue entry (store/queue.h), so a
 * start reads the delivery's records and no notification. The outcome
 * is written to its own small record, never the whole delivery
 * (send/delivery.h), over the start's copy of the previous outcome,
 * unless the store reported a write to the delivery while the job was out
 * (on_delivery_write: an erase, a callback).
 *
 * Records are read and written as JSON text (core/jtext.h), never as
 * jansson trees: this is the path every push takes, and a tree of small
 * nodes per record cost more than the rest of the send.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/jtext.h"
#include "core/metrics.h"
#include "core/shard.h"
#include "core/sign.h"
#include "core/time.h"
#include "provider/provider.h"
#include "send/delivery.h"
#include "send/alert.h"
#include "send/dispatch.h"
#include "send/events.h"
#include "send/notify.h"
#include "send/users.h"
#include "store/queue.h"

#define SET_BUCKETS 4096     /* 4 channels x max_in_flight (1024): short */
#define HD_RECORD_MEMBERS 48 /* a stored record has about 20 */

struct job_ctx;

struct dshard {
    struct hd_shard *s;
    struct dispatcher *d;
    struct job_ctx *set[SET_BUCKETS]; /* in flight, by delivery id */
    int n[HD_CH_MAX];
    int total;
    /* per queue, where the next walk resumes (when resumable): the last
     * entry the previous walk passed. Entries before it are in flight or
     * gone, so they are not walked again, until a commit puts an entry
     * before it or nothing is in flight. */
    unsigned char resume[HD_CH_MAX][HD_QUEUE_KEY_LEN];
    int resumable[HD_CH_MAX];
};

/* A circuit breaker of one provider on one worker. */
enum { CB_CLOSED = 0, CB_OPEN, CB_HALF_OPEN };

struct breaker {
    unsigned epoch; /* of the provider it belongs to: see breaker_of */
    int state;
    int failures;       /* consecutive transient failures */
    uint64_t last_loss; /* the connection loss last counted (h2client) */
    int64_t open_until;
    int probing; /* half-open: the one probe is out */
};

struct dispatcher {
    struct hd_worker *w;
    struct event *kick_ev, *timer_ev, *purge_ev;
    int64_t timer_at;
    int64_t wake_at; /* earliest time a blocked delivery may go */
    struct dshard *shards;
    int nshards;
    struct breaker *breakers; /* HD_PROVIDER_SLOTS, by provider index */
    struct hd_freelist jobs;  /* of struct job_ctx blocks */
};

/* room for an email's signed unsubscribe token, at the block's end */
#define UNSUB_MAX 384

/* One delivery in flight. Its strings (the job's, read from the
 * delivery's records) live in arena, sized by the records: a decoded
 * string is never longer than its JSON text. A copy of the outcome record
 * (if any yet) and its members come first: unless the delivery was
 * written while the job was out (touched), the new outcome writes over
 * them, without reading it again. */
struct job_ctx {
    struct hd_job job;
    struct job_ctx *next; /* in the in-flight set */
    uint64_t hash;        /* of id: chains compare it first */
    struct dshard *ds;
    struct hd_provider *provider;
    json_t *content; /* what this channel says, for a provider of trees */
    json_t *device;
    int64_t due;
    uint64_t qseq;
    const char *category, *template_name; /* for events and stats */
    char id[HD_QUEUE_ID_MAX];
    char *rec; /* the outcome record as read at the start, after members */
    int nmembers;
    int touched; /* the delivery was written since the start */
    size_t arena_len, arena_size;
    char *arena;                 /* after rec */
    size_t size;                 /* of the block, for hd_fl_put */
    struct hd_jmember members[]; /* of rec */
};

/* ==== the in-flight set ==== */

/* The slot of the job whose id is key[0..klen) (hash h), or the empty
 * one at the end of its chain. */
static struct job_ctx **
set_slot(struct dshard *ds, const void *key, size_t klen, uint64_t h)
{
    struct job_ctx **pp = &ds->set[h % SET_BUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && klen < sizeof((*pp)->id) &&
            memcmp((*pp)->id, key, klen) == 0 && (*pp)->id[klen] == '\0')
            break;
    return pp;
}

static int
set_has(struct dshard *ds, const char *id)
{
    size_t n = strlen(id);
    return *set_slot(ds, id, n, hd_hash(id, n)) != NULL;
}

/* The store stages a write to a delivery record: if that delivery is in
 * flight here, its outcome must read the record again, not trust the copy
 * taken at the start. */
static void
on_delivery_write(struct hd_shard *s, const void *key, size_t klen, void *arg)
{
    struct dshard *ds = arg;
    struct job_ctx *jc;

    (void)s;
    jc = *set_slot(ds, key, klen, hd_hash(key, klen));
    if (jc != NULL)
        jc->touched = 1;
}

static void
set_add(struct dshard *ds, struct job_ctx *jc)
{
    size_t n = strlen(jc->id);
    struct job_ctx **pp;

    jc->hash = hd_hash(jc->id, n);
    pp = set_slot(ds, jc->id, n, jc->hash);
    if (*pp)
        return;
    jc->next = NULL;
    *pp = jc;
    HD_COUNT(hd_metrics_self()->in_flight, 1);
}

static void
set_del(struct dshard *ds, struct job_ctx *jc)
{
    struct job_ctx **pp = &ds->set[jc->hash % SET_BUCKETS];

    while (*pp != NULL && *pp != jc) /* by identity: no id to compare */
        pp = &(*pp)->next;
    if (*pp == jc) {
        *pp = jc->next;
        HD_COUNT(hd_metrics_self()->in_flight, -1);
    }
}

/* ==== circuit breakers ==== */

static const char *cb_names[] = {"closed", "open", "half-open"};

/* The breaker of p. A provider that keeps its name over a reload keeps
 * its breaker (the index and epoch stay); one a reload added starts
 * closed. NULL for the outcome of a job at a provider a reload replaced
 * by a newer one of the same index: it says nothing about the new one. */
static struct breaker *
breaker_of(struct dispatcher *d, struct hd_provider *p)
{
    struct breaker *b = &d->breakers[p->index];

    if (b->epoch == p->epoch)
        return b;
    if ((int)(p->epoch - b->epoch) < 0)
        return NULL;
    /* read by other threads (metrics): epoch last */
    __atomic_store_n(&b->state, CB_CLOSED, __ATOMIC_RELAXED);
    b->failures = 0;
    b->open_until = 0;
    b->probing = 0;
    b->last_loss = 0;
    __atomic_store_n(&b->epoch, p->epoch, __ATOMIC_RELEASE);
    return b;
}

static void
cb_set(struct dispatcher *d, struct hd_provider *p, int state)
{
    struct breaker *b = breaker_of(d, p);

    if (b == NULL || b->state == state)
        return;
    /* once per transition, at error level: an operator must hear of it */
    hd_log(state == CB_CLOSED ? HD_LOG_NOTICE : HD_LOG_ERR, &d->w->log, 0,
           "circuit breaker of provider \"%s\" %s -> %s after %d "
           "consecutive failures",
           p->name, cb_names[b->state], cb_names[state], b->failures);
    hd_alert_breaker(d->w, p->name, cb_names[b->state], cb_names[state],
                     b->failures);
    b->state = state;
    if (state == CB_OPEN)
        b->open_until = hd_now_ms() + p->policy.breaker_cooldown_ms;
    b->probing = 0;
}

/* hd_provider_pick's filter: may p take a delivery now? */
static int
cb_usable(struct hd_provider *p, void *arg)
{
    struct dispatcher *d = arg;
    struct breaker *b = breaker_of(d, p);
    int64_t now;

    if (b == NULL)
        return 1;
    switch (b->state) {
    case CB_CLOSED:
        return 1;
    case CB_OPEN:
        now = hd_now_ms();
        if (now < b->open_until) {
            if (d->wake_at == 0 || b->open_until < d->wake_at)
                d->wake_at = b->open_until;
            return 0;
        }
        cb_set(d, p, CB_HALF_OPEN);
        __attribute__((fallthrough)); /* this delivery is the probe */
    default:
        if (b->probing)
            return 0;
        b->probing = 1;
        return 1;
    }
}

static void
cb_outcome(struct dispatcher *d, struct hd_provider *p, int transient,
           uint64_t lost_with)
{
    struct breaker *b = breaker_of(d, p);

    if (b == NULL)
        return;
    if (transient && lost_with != 0) {
        /* a connection closed under many requests: one failure, counted
         * with the first of them (its state change, if any, is done) */
        if (lost_with == b->last_loss)
            return;
        b->last_loss = lost_with;
    }
    if (!transient) {
        /* answered, even if to refuse: the provider works */
        if (b->state != CB_CLOSED)
            cb_set(d, p, CB_CLOSED);
        b->failures = 0;
        return;
    }
    b->failures++;
    if (b->state == CB_HALF_OPEN ||
        (b->state == CB_CLOSED && b->failures >= p->policy.breaker_failures))
        cb_set(d, p, CB_OPEN);
    else
        b->probing = 0;
}

struct pick_arg {
    struct dispatcher *d;
    const char *avoid;
};

static int
usable_not_avoided(struct hd_provider *p, void *arg)
{
    struct pick_arg *pa = arg;
    return strcmp(p->name, pa->avoid) != 0 && cb_usable(p, pa->d);
}

/* cb_usable without its side effects: only looks */
static int
available_not_avoided(struct hd_provider *p, void *arg)
{
    struct pick_arg *pa = arg;
    struct breaker *b = breaker_of(pa->d, p);

    if (strcmp(p->name, pa->avoid) == 0)
        return 0;
    return b == NULL || b->state == CB_CLOSED ||
           (b->state == CB_OPEN && hd_now_ms() >= b->open_until) ||
           (b->state == CB_HALF_OPEN && !b->probing);
}

int
hd_dispatch_breaker_value(struct hd_worker *w, const struct hd_provider *p)
{
    /* read from another thread: two ints; a breaker of another epoch is
     * one w has not used since the provider came: closed */
    struct dispatcher *d = __atomic_load_n(
        (struct dispatcher **)&w->module[HD_MODULE_DISPATCH], __ATOMIC_ACQUIRE);
    struct breaker *b;

    if (d == NULL)
        return CB_CLOSED;
    b = &d->breakers[p->index];
    if (__atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE) != p->epoch)
        return CB_CLOSED;
    return __atomic_load_n(&b->state, __ATOMIC_RELAXED);
}

const char *
hd_dispatch_breaker_state(struct hd_worker *w, const struct hd_provider *p)
{
    return cb_names[hd_dispatch_breaker_value(w, p)];
}

/* ==== outcomes ==== */

static void
kick(struct dispatcher *d)
{
    event_active(d->kick_ev, EV_TIMEOUT, 0);
}

static void
on_outcome_durable(void *arg, int status)
{
    struct job_ctx *jc = arg;
    struct dshard *ds = jc->ds;

    set_del(ds, jc);
    ds->n[jc->job.channel]--;
    ds->total--;
    json_decref(jc->content);
    json_decref(jc->device);
    hd_fl_put(&ds->d->jobs, jc, jc->size);
    kick(ds->d);
}

/* exponential backoff with full jitter (protocols.md 6.2); a larger
 * Retry-After wins */
static int64_t
backoff_ms(const struct hd_provider_policy *pol, int attempt,
           int64_t retry_after_ms)
{
    int64_t cap = pol->base_ms;
    int64_t wait;

    for (int i = 1; i < attempt && cap < pol->max_ms; i++)
        cap *= 2;
    if (cap > pol->max_ms)
        cap = pol->max_ms;
    wait = (int64_t)(random() % (cap + 1));
    return wait > retry_after_ms ? wait : retry_after_ms;
}

/* Moves a delivery that will not be sent again to the dead letters. */
static void
dead_letter(struct hd_shard *s, json_t *d, const char *reason)
{
    const char *id = json_string_value(json_object_get(d, "id"));
    char now[32];
    json_t *dl;
    static const char *copy[] = {
        "notification_id", "user_id",  "channel",   "to",
        "provider",        "attempts", "last_error"};

    hd_time_iso(hd_now_ms(), now, sizeof(now));
    dl = json_pack("{s:s, s:s, s:s}", "id", id, "reason", reason, "at", now);
    for (size_t i = 0; i < HD_NELEMS(copy); i++)
        if (json_object_get(d, copy[i]))
            json_object_set(dl, copy[i], json_object_get(d, copy[i]));
    hd_store_put_json(s, HD_DB_DEAD_LETTERS, id, dl);
    json_decref(dl);
    {
        const char *ch = json_string_value(json_object_get(d, "channel"));
        int c = ch ? hd_channel_parse(ch, strlen(ch)) : -1;
        if (c >= 0)
            HD_COUNT(hd_metrics_self()->dead_lettered[c], 1);
    }
}

/* The members of the outcome that on_job_done writes over. */
struct outcome {
    const char *status, *reason, *detail_key, *detail, *provider, *avoid;
    int attempts;
    int64_t due; /* retrying: when, and the new queue seq */
    uint64_t qseq;
};

/* The members of a delivery record the send path reads or writes, found
 * in one pass over the record (rec_fields): a lookup a member costs a
 * pass of its own, and start and the outcome make more than a dozen. */
enum {
    F_STATUS,
    F_EXPIRES_AT,
    F_NOTIFICATION_ID,
    F_USER_ID,
    F_TO,
    F_ATTEMPTS,
    F_PLATFORM,
    F_DEVICE_ID,
    F_APP,
    F_SANDBOX,
    F_PRIORITY,
    F_CATEGORY,
    F_TEMPLATE,
    F_AVOID,
    F_DUE,
    F_QSEQ,
    F_TIMELINE,
    F_PROVIDER,
    F_REASON,
    F_PROVIDER_MESSAGE_ID,
    F_LAST_ERROR,
    F_MAX,
    F_OTHER = F_MAX
};

/* which of the fields above key is, or F_OTHER: by length, then by the
 * text (memcmp of a constant length compiles to a compare or two) */
static int
rec_field(const struct hd_jspan *key)
{
    const char *k = key->p;
#define IS(s) (memcmp(k, s, sizeof(s) - 1) == 0)

    switch (key->n) {
    case 2:
        return IS("to") ? F_TO : F_OTHER;
    case 3:
        return IS("app") ? F_APP : IS("due") ? F_DUE : F_OTHER;
    case 4:
        return IS("qseq") ? F_QSEQ : F_OTHER;
    case 5:
        return IS("avoid") ? F_AVOID : F_OTHER;
    case 6:
        return IS("status") ? F_STATUS : IS("reason") ? F_REASON : F_OTHER;
    case 7:
        return IS("user_id") ? F_USER_ID : IS("sandbox") ? F_SANDBOX : F_OTHER;
    case 8:
        return IS("attempts")   ? F_ATTEMPTS
               : IS("platform") ? F_PLATFORM
               : IS("priority") ? F_PRIORITY
               : IS("category") ? F_CATEGORY
               : IS("template") ? F_TEMPLATE
               : IS("timeline") ? F_TIMELINE
               : IS("provider") ? F_PROVIDER
                                : F_OTHER;
    case 9:
        return IS("device_id") ? F_DEVICE_ID : F_OTHER;
    case 10:
        return IS("expires_at")   ? F_EXPIRES_AT
               : IS("last_error") ? F_LAST_ERROR
                                  : F_OTHER;
    case 15:
        return IS("notification_id") ? F_NOTIFICATION_ID : F_OTHER;
    case 19:
        return IS("provider_message_id") ? F_PROVIDER_MESSAGE_ID : F_OTHER;
    }
    return F_OTHER;
#undef IS
}

/* each field's value in m[0..n) (NULL: absent); into the index of its
 * member when idx is set */
static void
rec_fields(const struct hd_jmember *m, int n, const struct hd_jspan *f[F_MAX],
           unsigned char *idx)
{
    memset(f, 0, F_MAX * sizeof(*f));
    for (int i = 0; i < n; i++) {
        int k = rec_field(&m[i].key);
        if (k != F_OTHER && f[k] == NULL)
            f[k] = &m[i].val;
        if (idx != NULL)
            idx[i] = (unsigned char)k;
    }
}

/* whether the outcome o writes the member of field k anew */
static int
replaced(int k, const struct outcome *o)
{
    switch (k) {
    case F_ATTEMPTS:
    case F_STATUS:
    case F_QSEQ:
    case F_AVOID:
    case F_TIMELINE:
        return 1;
    case F_PROVIDER:
        return o->provider != NULL;
    case F_REASON:
        return o->reason != NULL;
    case F_DUE:
        return o->avoid != NULL;
    case F_PROVIDER_MESSAGE_ID:
    case F_LAST_ERROR:
        return o->detail_key != NULL &&
               strcmp(o->detail_key, k == F_LAST_ERROR
                                         ? "last_error"
                                         : "provider_message_id") == 0;
    }
    return 0;
}

/* The outcome record m[0..n) (none yet: n = 0) with the outcome o
 * written over it and one more timeline entry, as a new outcome record in
 * b (delivery.h). Text in, text out: no tree is built (this runs once per
 * send). */
static void
write_outcome(struct hd_jbuf *b, const struct hd_jmember *m, int n,
              const struct outcome *o, int64_t at)
{
    const struct hd_jspan *f[F_MAX], *tl;
    unsigned char idx[HD_RECORD_MEMBERS];
    char now[32];

    rec_fields(m, n, f, idx);
    tl = f[F_TIMELINE];
    hd_jbuf_init(b, 256); /* an outcome is ~130 bytes */
    b->p[b->len++] = HD_STORE_FORMAT;
    hd_jbuf_raw(b, "{", 1);
    for (int i = 0, j; i < n; i = j + 1) {
        const char *from;
        if (replaced(idx[i], o)) {
            j = i;
            continue;
        }
        /* a run of members kept is one span of the record's text, from
         * the first key's quote to the last value's end */
        for (j = i; j + 1 < n && !replaced(idx[j + 1], o); j++)
            ;
        if (b->p[b->len - 1] != '{')
            hd_jbuf_raw(b, ",", 1);
        from = m[i].key.p - 1;
        hd_jbuf_raw(b, from, (size_t)(m[j].val.p + m[j].val.n - from));
    }
    hd_jbuf_key(b, "attempts");
    hd_jbuf_int(b, o->attempts);
    if (o->provider) {
        hd_jbuf_kv(b, "provider", o->provider);
    }
    if (o->detail) {
        hd_jbuf_kv(b, o->detail_key, o->detail);
    }
    if (o->avoid) {
        hd_jbuf_kv(b, "avoid", o->avoid);
        hd_jbuf_key(b, "due");
        hd_jbuf_int(b, o->due);
        hd_jbuf_key(b, "qseq");
        hd_jbuf_int(b, (int64_t)o->qseq);
    }
    if (o->reason) {
        hd_jbuf_kv(b, "reason", o->reason);
    }
    hd_jbuf_kv(b, "status", o->status);
    /* the timeline as it was, one entry longer (as hd_timeline_add) */
    hd_jbuf_key(b, "timeline");
    if (tl != NULL && tl->n > 2 && tl->p[0] == '[') {
        hd_jbuf_raw(b, tl->p, tl->n - 1);
        hd_jbuf_raw(b, ",", 1);
    } else {
        hd_jbuf_raw(b, "[", 1);
    }
    hd_time_iso(at, now, sizeof(now));
    hd_jbuf_raw(b, "{", 1);
    hd_jbuf_kv(b, "at", now);
    hd_jbuf_kv(b, "event", o->status);
    if (o->detail) {
        hd_jbuf_kv(b, "detail", o->detail);
    }
    hd_jbuf_raw(b, "}]}", 3);
}

static void
on_job_done(struct hd_job *j, int outcome, int64_t retry_after_ms,
            const char *detail)
{
    struct job_ctx *jc = (struct job_ctx *)j;
    struct dispatcher *disp = jc->ds->d;
    struct hd_shard *s = jc->ds->s;
    char fixed[512];
    const struct hd_provider_policy *pol =
        jc->provider ? &jc->provider->policy : NULL;
    struct hd_jmember mbuf[HD_RECORD_MEMBERS];
    const struct hd_jmember *m = mbuf;
    struct outcome o = {NULL};
    struct hd_jbuf b;
    MDB_val v;
    int64_t now = hd_now_ms(); /* one clock read stamps it all */
    int n;

    if (detail) {
        /* provider text (a header, a reply cut by snprintf) may not be
         * UTF-8: a reader would refuse the record */
        snprintf(fixed, sizeof(fixed), "%s", detail);
        detail = hd_utf8_fix(fixed);
    }
    if (jc->provider) {
        struct hd_metrics *mt = hd_metrics_self();
        cb_outcome(disp, jc->provider, outcome == HD_OUT_RETRY, j->lost_with);
        if (jc->provider->index < HD_METRICS_PROVIDERS)
            HD_COUNT(
                mt->results[jc->provider->index][j->channel]
                           [outcome == HD_OUT_DELIVERED ? HD_RES_DELIVERED
                            : outcome == HD_OUT_RETRY   ? HD_RES_RETRY
                            : outcome == HD_OUT_FAILED  ? HD_RES_FAILED
                                                        : HD_RES_DEAD_ADDRESS],
                1);
        if (outcome == HD_OUT_DELIVERED)
            hd_hist_observe(&mt->delivery_seconds[j->channel],
                            (double)(now - jc->due) / 1e3);
    }
    hd_queue_remove(s, j->channel, jc->due, jc->qseq);
    /* written while the provider worked (the user erased, a callback that
     * folded the outcome into the delivery): the outcome record is read
     * again, as it is now; else the start's copy is it */
    if (!jc->touched)
        n = jc->nmembers, m = jc->members;
    else if (hd_store_get(s, HD_DB_DELIVERIES, jc->id, strlen(jc->id), &v) !=
             HD_OK)
        n = HD_DECLINED;
    else if (hd_store_get(s, HD_DB_OUTCOMES, jc->id, strlen(jc->id), &v) !=
             HD_OK)
        n = 0;
    else if ((n = hd_record_members(&v, mbuf, HD_RECORD_MEMBERS)) < 0)
        hd_log(HD_LOG_ERR, &s->log, 0,
               "undecodable outcome record \"%s\": its outcome (%s) is not "
               "recorded",
               jc->id, outcome == HD_OUT_DELIVERED ? "delivered" : "failed");
    if (n < 0) {
        if (jc->provider)
            hd_provider_release(jc->provider, disp->w);
        hd_store_after_commit_lazy(s, on_outcome_durable, jc);
        return;
    }
    o.attempts = j->attempt;
    o.provider = jc->provider ? jc->provider->name : NULL;
    if (detail) {
        o.detail = detail;
        o.detail_key =
            outcome == HD_OUT_DELIVERED ? "provider_message_id" : "last_error";
    }

    if (outcome == HD_OUT_RETRY && pol && o.attempts < pol->attempts) {
        struct pick_arg pa = {disp, jc->provider->name};
        int declined = 0;

        o.due = now + backoff_ms(pol, o.attempts, retry_after_ms);
        o.qseq = hd_store_seq_at(s, now);
        /* failover: another provider of the channel takes it at once */
        o.avoid = jc->provider->name;
        if (hd_provider_pick(j->channel, j, available_not_avoided, &pa,
                             &declined) != NULL)
            o.due = now;
        o.status = "retrying";
        hd_queue_push(s, j->channel, o.due, o.qseq, jc->id, j->content_text,
                      j->content_len);
    } else if (outcome == HD_OUT_DELIVERED) {
        o.status = "delivered";
    } else {
        o.status = "failed";
        if (outcome == HD_OUT_DEAD_ADDRESS && j->device_id != NULL &&
            j->gone_ms &&
            hd_device_registered_after(s, j->user_id, j->device_id, j->gone_ms))
            outcome = HD_OUT_FAILED; /* a newer registration: keep it */
        if (outcome == HD_OUT_DEAD_ADDRESS) {
            o.reason = "invalid_address";
            if (j->device_id != NULL) {
                o.reason = "invalid_token";
                hd_device_remove(s, j->user_id, j->device_id);
            } else if (j->channel == HD_CH_SMS && detail &&
                       strstr(detail, "21610") != NULL) {
                /* the recipient texted STOP: respect it everywhere */
                o.reason = "unsubscribed";
                hd_prefs_set_channel(s, j->user_id, HD_CH_SMS, 0);
            } else {
                /* a bouncing address or a dead number: suppressed until
                 * the user's address changes */
                hd_user_flag_address(s, j->user_id, j->channel, j->to);
            }
        } else if (outcome == HD_OUT_RETRY) {
            o.reason = "attempts_exhausted";
        } else {
            o.reason = "rejected";
        }
    }
    if (o.reason) {
        int r = hd_fail_reason_of(o.reason);
        if (r >= 0)
            HD_COUNT(hd_metrics_self()->failed[j->channel][r], 1);
    }
    write_outcome(&b, m, n, &o, now);
    {
        struct hd_event_src src = {jc->id,
                                   j->notification_id,
                                   j->user_id,
                                   hd_channel_name(j->channel),
                                   o.provider,
                                   jc->category,
                                   jc->template_name,
                                   now};
        hd_event_put(s, &src, o.status, detail);
    }
    hd_store_put(s, HD_DB_OUTCOMES, jc->id, strlen(jc->id), b.p, b.len);
    free(b.p);
    if (o.reason && strcmp(o.reason, "attempts_exhausted") == 0) {
        /* rare: a tree will do; the store reads its staged writes */
        json_t *d = hd_delivery_get(s, jc->id);
        if (d != NULL)
            dead_letter(s, d, o.reason);
        json_decref(d);
    }
    /* the last read of the provider: a reload may retire it now */
    if (jc->provider)
        hd_provider_release(jc->provider, disp->w);
    /* no client waits: the batch may gather more outcomes (outcome_delay) */
    hd_store_after_commit_lazy(s, on_outcome_durable, jc);
}

/* ==== starting jobs ==== */

static int
terminal(const char *status)
{
    return status == NULL ||
           (strcmp(status, "queued") != 0 && strcmp(status, "scheduled") != 0 &&
            strcmp(status, "retrying") != 0);
}

/* A delivery past its ttl: recorded expired and dead-lettered, never
 * sent. */
static void
expire(struct hd_shard *s, int ch, int64_t due, uint64_t qseq, json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "id"));

    hd_queue_remove(s, ch, due, qseq);
    json_object_del(d, "qseq");
    json_object_set_new(d, "status", json_string("expired"));
    json_object_set_new(d, "reason", json_string("ttl"));
    hd_event_emit(s, d, "expired", NULL);
    HD_COUNT(hd_metrics_self()->expired[ch], 1);
    dead_letter(s, d, "expired");
    hd_delivery_put(s, id, d);
}

/* A delivery no provider can ever take: failed for good. */
static void
no_provider(struct hd_shard *s, int ch, int64_t due, uint64_t qseq, json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "id"));

    HD_COUNT(hd_metrics_self()->failed[ch][HD_REASON_NO_PROVIDER], 1);
    hd_queue_remove(s, ch, due, qseq);
    json_object_del(d, "qseq");
    json_object_set_new(d, "status", json_string("failed"));
    json_object_set_new(d, "reason", json_string("no_provider"));
    hd_event_emit(s, d, "failed",
                  "no provider of the channel takes this delivery");
    hd_delivery_put(s, id, d);
}

/* The string v copied into jc's arena; NULL when absent or not a
 * string. */
static const char *
take(struct job_ctx *jc, const struct hd_jspan *v)
{
    char *out = jc->arena + jc->arena_len;
    int len = hd_jtext_str(v, out, jc->arena_size - jc->arena_len);

    if (len < 0)
        return NULL;
    jc->arena_len += (size_t)len + 1;
    return out;
}

/* The text of the notification's content object, borrowed from the
 * store (valid until the next write): HD_DECLINED when the record is gone
 * or holds no object there. */
static int
content_span(struct hd_shard *s, const char *nid, struct hd_jspan *c)
{
    struct hd_jmember m[HD_RECORD_MEMBERS];
    const struct hd_jspan *v;
    MDB_val rec;
    int k;

    if (nid == NULL ||
        hd_store_get(s, HD_DB_NOTIFICATIONS, nid, strlen(nid), &rec) != HD_OK ||
        (k = hd_record_members(&rec, m, HD_RECORD_MEMBERS)) < 0 ||
        (v = hd_jtext_get(m, k, "content")) == NULL || v->p[0] != '{')
        return HD_DECLINED;
    *c = *v;
    return HD_OK;
}

/* What the notification says on channel ch (a new object), decoded from
 * its content's text (NULL: the notification is gone). */
static json_t *
content_of(const char *text, size_t len, int ch)
{
    json_t *content, *out;

    content = text ? json_loadb(text, len, 0, NULL) : NULL;
    /* push and web add nothing to the shorthand (email and sms fill
     * subject, text or body from it: hd_content_for) */
    if ((ch == HD_CH_PUSH || ch == HD_CH_WEB) &&
        json_object_size(content) > 0) {
        const char *key;
        json_t *val;
        int plain = 1;
        json_object_foreach(content, key, val)
        {
            if (strcmp(key, "title") != 0 && strcmp(key, "body") != 0 &&
                strcmp(key, "data") != 0)
                plain = 0;
        }
        if (plain)
            return content; /* what hd_content_for would copy, ours alone */
    }
    out = hd_content_for(content, ch);
    json_decref(content);
    return out;
}

/* Starts one delivery. HD_AGAIN when no provider may take it now (open
 * circuit breakers): it stays queued. The delivery record is read as
 * text: the job's strings are copied out of it, no tree is built. */
static int
start(struct dshard *ds, int ch, int64_t due, uint64_t qseq, const char *id,
      const char *qtext, size_t qlen, int64_t now)
{
    struct hd_shard *s = ds->s;
    struct hd_jmember m[HD_RECORD_MEMBERS], om[HD_RECORD_MEMBERS];
    const struct hd_jspan *f[F_MAX], *of[F_MAX];
    struct job_ctx *jc;
    struct hd_provider *p;
    const char *avoid, *prio;
    char status[16];
    int64_t expires;
    int n, on = 0, declined;
    size_t size, idlen = strlen(id);
    MDB_val v, ov;

    if (hd_store_get(s, HD_DB_DELIVERIES, id, idlen, &v) != HD_OK) {
        /* a queue entry left by an erase */
        hd_queue_remove(s, ch, due, qseq);
        return HD_OK;
    }
    /* a backlog's record is cold: all its lines asked for at once miss
     * together (and during the next read), not one by one as the parse
     * walks them */
    for (uintptr_t a = (uintptr_t)v.mv_data & ~(uintptr_t)63;
         a < (uintptr_t)v.mv_data + v.mv_size; a += 64)
        __builtin_prefetch((const void *)a);
    if (hd_store_get(s, HD_DB_OUTCOMES, id, idlen, &ov) != HD_OK)
        ov.mv_data = NULL, ov.mv_size = 0; /* not sent yet */
    if ((n = hd_record_members(&v, m, HD_RECORD_MEMBERS)) < 0 ||
        (ov.mv_data != NULL &&
         (on = hd_record_members(&ov, om, HD_RECORD_MEMBERS)) < 0)) {
        /* kept for inspection (mdb_dump), never sent */
        hd_log(HD_LOG_ERR, &s->log, 0,
               "undecodable %s record \"%s\": dropped from the queue",
               n < 0 ? "delivery" : "outcome", id);
        hd_queue_remove(s, ch, due, qseq);
        return HD_OK;
    }
    rec_fields(m, n, f, NULL);
    if (ov.mv_data != NULL) {
        /* the outcome's members over the base's (delivery.h) */
        rec_fields(om, on, of, NULL);
        f[F_QSEQ] = f[F_AVOID] = NULL;
        for (int k = 0; k < F_MAX; k++)
            if (of[k] != NULL)
                f[k] = of[k];
    }
    if (hd_jtext_str(f[F_STATUS], status, sizeof(status)) < 0 ||
        terminal(status)) {
        /* a queue entry left by a finished delivery */
        hd_queue_remove(s, ch, due, qseq);
        return HD_OK;
    }
    expires = hd_jtext_int(f[F_EXPIRES_AT]);
    if (expires && now > expires) {
        json_t *d = hd_delivery_get(s, id); /* rare: a tree will do */
        if (d != NULL)
            expire(s, ch, due, qseq, d);
        json_decref(d);
        return HD_OK;
    }

    if (qtext == NULL) {
        /* not carried by the queue entry: the notification's record */
        char nid[64];
        struct hd_jspan c;
        if (hd_jtext_str(f[F_NOTIFICATION_ID], nid, sizeof(nid)) >= 0 &&
            content_span(s, nid, &c) == HD_OK) {
            qtext = c.p;
            qlen = c.n;
        }
    }
    /* the outcome record and its members, the arena (for strings of
     * either record), the content's text, and an email's unsubscribe
     * token */
    size = sizeof(*jc) + (size_t)on * sizeof(*m) + 2 * ov.mv_size + v.mv_size +
           (qtext ? qlen + 1 : 0) + (ch == HD_CH_EMAIL ? UNSUB_MAX : 0);
    jc = hd_fl_get(&ds->d->jobs, size);
    memset(jc, 0, sizeof(*jc));
    jc->size = size;
    jc->nmembers = on;
    jc->rec = (char *)(jc->members + on);
    if (on > 0)
        memcpy(jc->rec, ov.mv_data, ov.mv_size);
    for (int i = 0; i < on; i++) {
        /* the same spans in the copy */
        const char *base = ov.mv_data;
        jc->members[i].key.p = jc->rec + (om[i].key.p - base);
        jc->members[i].key.n = om[i].key.n;
        jc->members[i].val.p = jc->rec + (om[i].val.p - base);
        jc->members[i].val.n = om[i].val.n;
    }
    jc->arena = jc->rec + ov.mv_size;
    jc->arena_size = v.mv_size + ov.mv_size;
    jc->ds = ds;
    jc->due = due;
    jc->qseq = qseq;
    memcpy(jc->id, id, strlen(id) + 1); /* < HD_QUEUE_ID_MAX (scan) */
    jc->job.delivery_id = jc->id;
    jc->job.notification_id = take(jc, f[F_NOTIFICATION_ID]);
    jc->job.user_id = take(jc, f[F_USER_ID]);
    jc->job.to = take(jc, f[F_TO]);
    jc->job.channel = ch;
    jc->job.attempt = (int)hd_jtext_int(f[F_ATTEMPTS]) + 1;
    jc->job.platform = take(jc, f[F_PLATFORM]);
    jc->job.device_id = take(jc, f[F_DEVICE_ID]);
    jc->job.app = take(jc, f[F_APP]);
    jc->job.sandbox = hd_jtext_true(f[F_SANDBOX]);
    prio = take(jc, f[F_PRIORITY]);
    jc->job.priority = prio ? hd_priority_parse(prio) : HD_PRIO_NORMAL;
    if (jc->job.priority < 0)
        jc->job.priority = HD_PRIO_NORMAL;
    jc->job.expires_at_ms = expires;
    jc->job.done = on_job_done;
    jc->category = take(jc, f[F_CATEGORY]);
    jc->template_name = take(jc, f[F_TEMPLATE]);

    /* failover: after a transient failure the next provider goes first;
     * the failed one only when no other may take it */
    avoid = take(jc, f[F_AVOID]);
    p = NULL;
    if (avoid != NULL) {
        struct pick_arg pa = {ds->d, avoid};
        p = hd_provider_pick(ch, &jc->job, usable_not_avoided, &pa, &declined);
    }
    if (p == NULL)
        p = hd_provider_pick(ch, &jc->job, cb_usable, ds->d, &declined);
    if (p == NULL) {
        hd_fl_put(&ds->d->jobs, jc, jc->size);
        if (declined)
            return HD_AGAIN; /* breakers open: wait in the queue */
        {
            json_t *d = hd_delivery_get(s, id);
            if (d != NULL)
                no_provider(s, ch, due, qseq, d);
            json_decref(d);
        }
        return HD_OK;
    }
    jc->provider = p;

    if (qtext != NULL) {
        /* after the arena: a retry's queue entry carries it again */
        char *copy = jc->arena + jc->arena_size;
        memcpy(copy, qtext, qlen);
        copy[qlen] = '\0';
        jc->job.content_text = copy;
        jc->job.content_len = qlen;
    } else {
        jc->job.content_text = "{}"; /* the notification is gone */
        jc->job.content_len = 2;
    }
    if (!p->type->text_content) {
        jc->content = content_of(qtext, qlen, ch);
        jc->job.content = jc->content;
    }
    if (ch == HD_CH_EMAIL && ds->d->w->conf->tracking_url &&
        json_is_string(json_object_get(jc->content, "html"))) {
        /* opens and clicks come back through signed links */
        char *html = hd_track_html(
            json_string_value(json_object_get(jc->content, "html")),
            ds->d->w->conf->tracking_url, jc->id);
        json_object_set_new(jc->content, "html", json_string(html));
        free(html);
    }
    if (jc->job.device_id != NULL && ch == HD_CH_WEB)
        /* the Web Push provider encrypts to the device's keys */
        jc->device = hd_device_get(s, jc->job.user_id, jc->job.device_id);
    jc->job.device = jc->device;
    if (ch == HD_CH_EMAIL) {
        char payload[256], *unsub = (char *)jc + jc->size - UNSUB_MAX;
        snprintf(payload, sizeof(payload), "unsub|%s|email|%lld|%s",
                 jc->job.user_id, (long long)(now / 1000), jc->id);
        if (hd_sign_token(payload, unsub, UNSUB_MAX) == HD_OK)
            jc->job.unsubscribe_token = unsub;
    }
    set_add(ds, jc);
    ds->n[ch]++;
    ds->total++;
    hd_provider_send(p, ds->d->w, &jc->job);
    return HD_OK;
}

static int64_t
scan(struct dshard *ds, int ch, int64_t now)
{
    struct hd_shard *s = ds->s;
    MDB_cursor *cur;
    MDB_val k, v;
    unsigned char low[HD_QUEUE_KEY_LEN];
    int64_t next = INT64_MAX;
    int rc, held = 0, cap = ds->d->w->conf->max_in_flight;

    if (hd_queue_low_take(s, ch, low) &&
        memcmp(low, ds->resume[ch], sizeof(low)) < 0)
        ds->resumable[ch] = 0; /* a new entry before the resume point */
    /* refill in batches: a pass per outcome would start one job a pass */
    if (ds->n[ch] > cap - cap / 4)
        return next;
    if (ds->n[ch] == 0)
        ds->resumable[ch] = 0; /* the front costs nothing more to walk */
    if (mdb_cursor_open(hd_store_snapshot(s), s->dbi[HD_DB_QUEUE + ch], &cur) !=
        0)
        return next;
    if (ds->resumable[ch]) {
        k.mv_data = ds->resume[ch];
        k.mv_size = HD_QUEUE_KEY_LEN;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int64_t due;
        uint64_t qseq;
        char id[HD_QUEUE_ID_MAX];
        const char *ctext;
        size_t clen;

        if (k.mv_size == HD_QUEUE_KEY_LEN &&
            hd_queue_entry(&v, id, &ctext, &clen) == HD_OK) {
            hd_queue_key_parse(k.mv_data, &due, &qseq);
            if (due > now) {
                next = due;
                break;
            }
            if (ds->n[ch] >= cap)
                break; /* an outcome's commit kicks us again */
            /* one left queued (open breakers) holds the resume point */
            if (!set_has(ds, id) &&
                start(ds, ch, due, qseq, id, ctext, clen, now) == HD_AGAIN)
                held = 1;
        }
        if (!held && k.mv_size == HD_QUEUE_KEY_LEN) {
            memcpy(ds->resume[ch], k.mv_data, HD_QUEUE_KEY_LEN);
            ds->resumable[ch] = 1;
        }
    }
    mdb_cursor_close(cur);
    return next;
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct dispatcher *d = arg;
    int64_t now = hd_now_ms(), next = INT64_MAX;

    if (d->w->stopping)
        return; /* finish what is in flight, start nothing */
    d->wake_at = 0;
    for (int i = 0; i < d->nshards; i++)
        for (int ch = 0; ch < HD_CH_MAX; ch++) {
            int64_t t = scan(&d->shards[i], ch, now);
            if (t < next)
                next = t;
        }
    hd_providers_flush(d->w);
    if (d->wake_at && d->wake_at < next)
        next = d->wake_at; /* a circuit breaker's cool-down ends */
    if (next != INT64_MAX && (d->timer_at == 0 || next < d->timer_at ||
                              !evtimer_pending(d->timer_ev, NULL))) {
        int64_t wait = next - hd_now_ms();
        struct timeval tv;
        if (wait < 1)
            wait = 1;
        /* look again at least every second: the wall clock may jump */
        if (wait > 1000)
            wait = 1000;
        tv.tv_sec = wait / 1000;
        tv.tv_usec = (wait % 1000) * 1000;
        d->timer_at = next;
        evtimer_add(d->timer_ev, &tv);
    }
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dispatcher *d = arg;
    d->timer_at = 0;
    on_kick(fd, what, arg);
}

static void
on_durable(struct hd_shard *s, void *arg)
{
    kick(arg);
}

static void
on_purge(evutil_socket_t fd, short what, void *arg)
{
    struct dispatcher *d = arg;
    for (int i = 0; i < d->nshards; i++) {
        hd_stats_flush(d->shards[i].s);
        hd_notify_purge_idempotency(d->shards[i].s, 1000);
        hd_events_trim(d->shards[i].s, d->w->conf->events_retention_ms, 1000);
    }
}

int
hd_dispatch_inflight(struct hd_shard *s, const char *id)
{
    struct dispatcher *d = hd_current_worker->module[HD_MODULE_DISPATCH];
    for (int i = 0; i < d->nshards; i++)
        if (d->shards[i].s == s)
            return set_has(&d->shards[i], id);
    return 0;
}

/* ==== module ==== */

static int
dispatch_init(struct hd_worker *w)
{
    struct dispatcher *d = hd_calloc(sizeof(*d));

    d->w = w;
    d->kick_ev = event_new(w->base, -1, 0, on_kick, d);
    d->timer_ev = evtimer_new(w->base, on_timer, d);
    d->purge_ev = event_new(w->base, -1, EV_PERSIST, on_purge, d);
    {
        struct timeval tv = {1, 0};
        event_add(d->purge_ev, &tv);
    }
    d->nshards = w->nshards;
    /* fixed size: other threads read it, and indexes outlive reloads */
    d->breakers = hd_calloc(HD_PROVIDER_SLOTS * sizeof(*d->breakers));
    /* a block holds a job with a record of up to about 1 KiB */
    hd_fl_init(&d->jobs, 3072, (unsigned)w->conf->max_in_flight);
    d->shards = hd_calloc((w->nshards ? w->nshards : 1) * sizeof(*d->shards));
    for (int i = 0; i < w->nshards; i++) {
        d->shards[i].s = w->shards[i];
        d->shards[i].d = d;
        w->shards[i]->on_durable = on_durable;
        w->shards[i]->on_durable_arg = d;
        w->shards[i]->on_delivery_write = on_delivery_write;
        w->shards[i]->on_delivery_write_arg = &d->shards[i];
    }
    w->module[HD_MODULE_DISPATCH] = d;
    kick(d); /* whatever a previous run left queued */
    return HD_OK;
}

/* stopping: the counts so far go into the drain's last commits */
static void
dispatch_stop(struct hd_worker *w)
{
    struct dispatcher *d = w->module[HD_MODULE_DISPATCH];
    for (int i = 0; i < d->nshards; i++)
        hd_stats_flush(d->shards[i].s);
}

static int
dispatch_busy(struct hd_worker *w)
{
    struct dispatcher *d = w->module[HD_MODULE_DISPATCH];
    for (int i = 0; i < d->nshards; i++)
        if (d->shards[i].total > 0)
            return 1;
    return 0;
}

static void
dispatch_exit(struct hd_worker *w)
{
    struct dispatcher *d = w->module[HD_MODULE_DISPATCH];

    if (d == NULL)
        return;

    /* the in-flight set holds jobs, freed by their outcomes */
    for (int i = 0; i < d->nshards; i++) {
        d->shards[i].s->on_durable = NULL;
        d->shards[i].s->on_delivery_write = NULL;
    }
    event_free(d->kick_ev);
    event_free(d->timer_ev);
    event_free(d->purge_ev);
    free(d->breakers);
    free(d->shards);
    hd_fl_drain(&d->jobs);
    free(d);
}

const struct hd_module hd_dispatch_module = {
    "dispatch",    dispatch_init, NULL,
    dispatch_stop, dispatch_busy, dispatch_exit,
};
