/*
 * provider.c: the tables of configured providers and their channel routes.
 * The main thread builds a table at start and at each reload that changes
 * providers, and destroys it; workers read it. A reload publishes a new
 * table through each worker's inbox; a worker lets go of its old one once
 * no job of its own is at an old provider (closing its connections there,
 * on its thread), and the main thread destroys it when every worker has.
 */
#include <stdio.h>

#include <event2/event.h>

#include "core/herald.h"
#include "provider/provider.h"

static const struct hd_provider_type *types[] = {
    &hd_log_provider,
    &hd_apns_provider,
    &hd_fcm_provider,
    /* SMS and email (issue 5) */
    &hd_twilio_provider,
    &hd_vonage_provider,
    &hd_smtp_provider,
    &hd_sendgrid_provider,
    /* Web Push (issue 5) */
    &hd_webpush_provider,
};

struct hd_provider_table {
    /* atomic: 1 for the main thread while the table is the one in use,
     * plus 1 per worker until that worker let go of it */
    int refs;
    struct hd_conf *conf; /* the providers point into it */
    struct hd_provider *p;
    int n; /* created ones: only those are destroyed */
    struct hd_provider *routes[HD_CH_MAX][HD_MAX_CHANNEL_PROVIDERS];
    int nroutes[HD_CH_MAX];
    int jobs[HD_MAX_WORKERS];       /* at its providers, by worker: its own */
    struct hd_provider_table *next; /* main thread: the retired list */
};

/* a table a worker switched away from, held until its jobs there end */
struct held {
    struct held *next;
    struct hd_provider_table *t;
};

/* one worker's view, touched by that worker only */
struct pworker {
    struct hd_provider_table *cur;
    struct held *old;
    struct event *sweep_ev;
};

struct switch_msg {
    struct hd_msg msg;
    struct hd_provider_table *t; /* carries one worker reference */
};

/* main thread */
static struct hd_provider_table *live, *retired;
static int nworkers;
/* the table of start-up: set before the workers start, never again */
static struct hd_provider_table *first;
static char *slot_name[HD_PROVIDER_SLOTS];
static unsigned slot_epoch[HD_PROVIDER_SLOTS];

static struct pworker per[HD_MAX_WORKERS];

static const struct hd_provider_type *
type_of(const char *name)
{
    for (size_t t = 0; t < HD_NELEMS(types); t++)
        if (strcmp(types[t]->name, name) == 0)
            return types[t];
    return NULL;
}

/* retry and circuit_breaker: "attempts 5 base 1s max 5m" style pairs */
static int
parse_policy(const struct hd_provider_conf *pc, struct hd_provider_policy *pol,
             char *err, size_t errlen)
{
    pol->attempts = 5;
    pol->base_ms = 1000;
    pol->max_ms = 300000;
    pol->breaker_failures = 10;
    pol->breaker_cooldown_ms = 30000;
    for (int i = 0; i < pc->nkv; i++) {
        const struct hd_conf_kv *kv = &pc->kv[i];
        int retry = strcmp(kv->name, "retry") == 0;
        if (!retry && strcmp(kv->name, "circuit_breaker") != 0)
            continue;
        if (kv->nargs == 0 || kv->nargs % 2 != 0)
            goto bad;
        for (int a = 0; a < kv->nargs; a += 2) {
            const char *k = kv->args[a], *v = kv->args[a + 1];
            char *end;
            long n;
            if ((retry && strcmp(k, "attempts") == 0) ||
                (!retry && strcmp(k, "failures") == 0)) {
                n = strtol(v, &end, 10);
                if (*end != '\0' || end == v || n < 1 || n > 1000)
                    goto bad;
                *(retry ? &pol->attempts : &pol->breaker_failures) = (int)n;
            } else if (retry && strcmp(k, "base") == 0) {
                if (hd_parse_time_ms(v, &pol->base_ms) != HD_OK ||
                    pol->base_ms < 1)
                    goto bad;
            } else if (retry && strcmp(k, "max") == 0) {
                if (hd_parse_time_ms(v, &pol->max_ms) != HD_OK ||
                    pol->max_ms < 1)
                    goto bad;
            } else if (!retry && strcmp(k, "cooldown") == 0) {
                if (hd_parse_time_ms(v, &pol->breaker_cooldown_ms) != HD_OK ||
                    pol->breaker_cooldown_ms < 1)
                    goto bad;
            } else {
                goto bad;
            }
        }
        continue;
    bad:
        snprintf(err, errlen, "invalid \"%s\" directive: expected %s in %s:%d",
                 kv->name,
                 retry ? "attempts N [base TIME] [max TIME]"
                       : "failures N [cooldown TIME]",
                 kv->file, kv->line);
        return HD_ERROR;
    }
    if (pol->max_ms < pol->base_ms)
        pol->max_ms = pol->base_ms;
    return HD_OK;
}

int
hd_provider_check_settings(const struct hd_provider_conf *pc,
                           const struct hd_provider_setting *settings,
                           char *err, size_t errlen)
{
    const struct hd_provider_setting *st;

    for (int i = 0; i < pc->nkv; i++) {
        const struct hd_conf_kv *kv = &pc->kv[i];
        if (strcmp(kv->name, "retry") == 0 ||
            strcmp(kv->name, "circuit_breaker") == 0)
            continue; /* every type's: parse_policy */
        for (st = settings; st->name; st++)
            if (strcmp(st->name, kv->name) == 0)
                break;
        if (st->name == NULL) {
            snprintf(err, errlen,
                     "unknown directive \"%s\" for provider type \"%s\" in "
                     "%s:%d",
                     kv->name, pc->type, kv->file, kv->line);
            return HD_ERROR;
        }
        if (st->nargs >= 0 ? kv->nargs != st->nargs : kv->nargs < 1) {
            snprintf(err, errlen,
                     "invalid number of arguments in \"%s\" directive in "
                     "%s:%d",
                     kv->name, kv->file, kv->line);
            return HD_ERROR;
        }
    }
    for (st = settings; st->name; st++)
        if (st->required && hd_conf_kv_find(pc, st->name) == NULL) {
            snprintf(err, errlen,
                     "provider \"%s\" of type %s has no \"%s\" in %s:%d",
                     pc->name, pc->type, st->name, pc->file, pc->line);
            return HD_ERROR;
        }
    return HD_OK;
}

int
hd_providers_check(const struct hd_conf *cf, char *err, size_t errlen)
{
    for (int i = 0; i < cf->nproviders; i++) {
        const struct hd_provider_conf *pc = &cf->providers[i];
        const struct hd_provider_type *type = type_of(pc->type);
        if (type == NULL) {
            snprintf(err, errlen, "unknown provider type \"%s\" in %s:%d",
                     pc->type, pc->file, pc->type_line);
            return HD_ERROR;
        }
        if (type->check && type->check(pc, err, errlen) != HD_OK)
            return HD_ERROR;
        {
            struct hd_provider_policy pol;
            if (parse_policy(pc, &pol, err, errlen) != HD_OK)
                return HD_ERROR;
        }
    }
    return HD_OK;
}

/* ==== indexes: one per provider name ==== */

static int
table_has(const struct hd_provider_table *t, const char *name)
{
    for (int i = 0; t && i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0)
            return 1;
    return 0;
}

/* Whether no table alive and none of cf's providers uses slot s. */
static int
slot_free(int s, const struct hd_conf *cf)
{
    if (slot_name[s] == NULL)
        return 1;
    if (table_has(live, slot_name[s]))
        return 0;
    for (struct hd_provider_table *t = retired; t; t = t->next)
        if (table_has(t, slot_name[s]))
            return 0;
    for (int i = 0; i < cf->nproviders; i++)
        if (strcmp(cf->providers[i].name, slot_name[s]) == 0)
            return 0;
    return 1;
}

/* A name keeps its index while any table has it, so in-flight jobs of an
 * old table count under the same index as the new provider of that name
 * (metrics, circuit breakers). A name the table in use lacks gets a new
 * epoch: its breakers start closed. */
static int
assign_slots(struct hd_provider_table *t, const struct hd_conf *cf, char *err,
             size_t errlen)
{
    for (int i = 0; i < cf->nproviders; i++) {
        const char *name = cf->providers[i].name;
        int s;
        t->p[i].index = -1;
        for (s = 0; s < HD_PROVIDER_SLOTS; s++)
            if (slot_name[s] && strcmp(slot_name[s], name) == 0)
                break;
        if (s == HD_PROVIDER_SLOTS)
            continue; /* a new name: second pass */
        t->p[i].index = s;
        if (!table_has(live, name))
            slot_epoch[s]++;
        t->p[i].epoch = slot_epoch[s];
    }
    for (int i = 0; i < cf->nproviders; i++) {
        int s;
        if (t->p[i].index >= 0)
            continue;
        for (s = 0; s < HD_PROVIDER_SLOTS; s++)
            if (slot_name[s] == NULL)
                break;
        for (int r = 0; s == HD_PROVIDER_SLOTS && r < HD_PROVIDER_SLOTS; r++)
            if (slot_free(r, cf))
                s = r;
        if (s == HD_PROVIDER_SLOTS) {
            snprintf(err, errlen,
                     "too many providers: at most %d, counting those of "
                     "earlier reloads still finishing deliveries, in %s:%d",
                     HD_PROVIDER_SLOTS, cf->providers[i].file,
                     cf->providers[i].line);
            return HD_ERROR;
        }
        if (slot_name[s] != NULL && s < HD_METRICS_PROVIDERS)
            /* the counters of a provider no table has any more: no
             * worker writes them, and the new name starts from zero */
            for (int w = 0; w < HD_MAX_WORKERS; w++)
                for (int ch = 0; ch < HD_CH_MAX; ch++)
                    for (int r = 0; r < HD_RES_MAX; r++)
                        __atomic_store_n(&hd_metrics[w].results[s][ch][r], 0,
                                         __ATOMIC_RELAXED);
        free(slot_name[s]);
        slot_name[s] = hd_strdup(cf->providers[i].name);
        t->p[i].index = s;
        t->p[i].epoch = ++slot_epoch[s];
    }
    return HD_OK;
}

/* ==== tables (main thread) ==== */

static void
table_free(struct hd_provider_table *t)
{
    for (int i = 0; i < t->n; i++) {
        if (t->p[i].type->destroy)
            t->p[i].type->destroy(&t->p[i]);
        free(t->p[i].name);
    }
    free(t->p);
    hd_conf_unref(t->conf);
    free(t);
}

struct hd_provider_table *
hd_providers_build(const struct hd_conf *cf, char *err, size_t errlen)
{
    struct hd_provider_table *t = hd_calloc(sizeof(*t));

    t->conf = (struct hd_conf *)cf;
    hd_conf_ref(t->conf);
    t->p = hd_calloc((cf->nproviders ? cf->nproviders : 1) * sizeof(*t->p));
    if (assign_slots(t, cf, err, errlen) != HD_OK)
        goto fail;
    for (int i = 0; i < cf->nproviders; i++) {
        const struct hd_provider_conf *pc = &cf->providers[i];
        struct hd_provider *p = &t->p[i];
        p->type = type_of(pc->type);
        if (p->type == NULL) {
            snprintf(err, errlen, "unknown provider type \"%s\" in %s:%d",
                     pc->type, pc->file, pc->type_line);
            goto fail;
        }
        p->conf = pc;
        p->_table = t;
        if (parse_policy(pc, &p->policy, err, errlen) != HD_OK)
            goto fail;
        if (p->type->create(p, pc, err, errlen) != HD_OK)
            goto fail;
        p->name = hd_strdup(pc->name);
        t->n = i + 1;
    }
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        t->nroutes[ch] = cf->channels[ch].nproviders;
        for (int i = 0; i < t->nroutes[ch]; i++)
            t->routes[ch][i] = &t->p[cf->channels[ch].providers[i]];
    }
    return t;

fail:
    table_free(t);
    return NULL;
}

void
hd_providers_drop(struct hd_provider_table *t)
{
    if (t != NULL)
        table_free(t);
}

int
hd_providers_create(const struct hd_conf *cf, int n, char *err, size_t errlen)
{
    live = hd_providers_build(cf, err, errlen);
    if (live == NULL)
        return HD_ERROR;
    nworkers = n;
    live->refs = 1 + n; /* each worker takes it at init */
    first = live;
    return HD_OK;
}

void
hd_providers_destroy(void)
{
    while (retired) {
        struct hd_provider_table *t = retired;
        retired = t->next;
        table_free(t);
    }
    if (live)
        table_free(live);
    live = NULL;
    for (int s = 0; s < HD_PROVIDER_SLOTS; s++) {
        free(slot_name[s]);
        slot_name[s] = NULL;
    }
}

int
hd_providers_changed(const struct hd_conf *b)
{
    const struct hd_conf *a = live->conf;

    if (a->nproviders != b->nproviders ||
        memcmp(a->channels, b->channels, sizeof(a->channels)) != 0)
        return 1;
    for (int i = 0; i < a->nproviders; i++) {
        const struct hd_provider_conf *x = &a->providers[i],
                                      *y = &b->providers[i];
        if (strcmp(x->name, y->name) || strcmp(x->type, y->type) ||
            x->nkv != y->nkv)
            return 1;
        for (int k = 0; k < x->nkv; k++) {
            if (strcmp(x->kv[k].name, y->kv[k].name) ||
                x->kv[k].nargs != y->kv[k].nargs)
                return 1;
            for (int j = 0; j < x->kv[k].nargs; j++)
                if (strcmp(x->kv[k].args[j], y->kv[k].args[j]))
                    return 1;
        }
    }
    return 0;
}

static void on_switch(struct hd_msg *m, void *ctx);

void
hd_providers_publish(struct hd_provider_table *t)
{
    struct hd_provider_table *old = live;

    /* every reference is counted before any worker can let go */
    t->refs = 1 + nworkers;
    live = t;
    for (int i = 0; i < nworkers; i++) {
        struct switch_msg *sm = hd_calloc(sizeof(*sm));
        sm->msg.kind = HD_MSG_CONF;
        sm->msg.fn = on_switch;
        sm->t = t;
        hd_inbox_send(hd_cycle.workers[i].inbox, &sm->msg);
    }
    old->next = retired;
    retired = old;
    __atomic_sub_fetch(&old->refs, 1, __ATOMIC_ACQ_REL);
}

int
hd_providers_collect(void)
{
    struct hd_provider_table **pp = &retired, *t;
    int n = 0;

    while ((t = *pp) != NULL) {
        /* acquire: the workers' exit_worker writes happened before */
        if (__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE) == 0) {
            *pp = t->next;
            table_free(t);
            continue;
        }
        n++;
        pp = &t->next;
    }
    return n;
}

/* ==== a worker's tables ==== */

static struct hd_provider_table *
mine(void)
{
    return hd_current_worker ? per[hd_current_worker->id].cur : live;
}

/* this worker's connections and state at every provider of t */
static void
exit_table(struct hd_provider_table *t, struct hd_worker *w)
{
    for (int i = 0; i < t->n; i++)
        if (t->p[i].type->exit_worker)
            t->p[i].type->exit_worker(&t->p[i], w);
}

/* Lets go of the old tables where no job of w is left. Runs from the
 * inbox or its own event, never inside a provider's callback: exit_worker
 * frees what such a callback may still be using. */
static void
sweep(struct hd_worker *w)
{
    struct pworker *pw = &per[w->id];
    struct held **pp = &pw->old, *h;

    while ((h = *pp) != NULL) {
        if (h->t->jobs[w->id] > 0) {
            pp = &h->next;
            continue;
        }
        exit_table(h->t, w);
        hd_log(HD_LOG_INFO, &w->log, 0,
               "the old providers have no delivery left: closed");
        *pp = h->next;
        __atomic_sub_fetch(&h->t->refs, 1, __ATOMIC_ACQ_REL);
        free(h);
    }
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    sweep(arg);
}

static void
on_switch(struct hd_msg *m, void *ctx)
{
    struct hd_worker *w = ctx;
    struct pworker *pw = &per[w->id];
    struct switch_msg *sm = (struct switch_msg *)m;
    struct held *h = hd_calloc(sizeof(*h));

    h->t = pw->cur;
    h->next = pw->old;
    pw->old = h;
    pw->cur = sm->t;
    free(sm);
    sweep(w);
}

void
hd_provider_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    p->_table->jobs[w->id]++;
    p->type->send(p, w, j);
}

void
hd_provider_release(struct hd_provider *p, struct hd_worker *w)
{
    struct hd_provider_table *t = p->_table;

    /* inside the provider's callback now: the sweep runs after it */
    if (--t->jobs[w->id] == 0 && t != per[w->id].cur)
        event_active(per[w->id].sweep_ev, EV_TIMEOUT, 0);
}

struct hd_provider *
hd_provider_pick(int channel, const struct hd_job *j,
                 int (*usable)(struct hd_provider *p, void *arg), void *arg,
                 int *declined)
{
    struct hd_provider_table *t = mine();

    *declined = 0;
    for (int i = 0; i < t->nroutes[channel]; i++) {
        struct hd_provider *p = t->routes[channel][i];
        if (p->type->accepts != NULL && !p->type->accepts(p, j))
            continue;
        if (usable != NULL && !usable(p, arg)) {
            (*declined)++;
            continue;
        }
        return p;
    }
    return NULL;
}

int
hd_providers_count(void)
{
    return mine()->n;
}

struct hd_provider *
hd_provider_at(int i)
{
    return &mine()->p[i];
}

static int
reopen_table(struct hd_provider_table *t)
{
    int rc = HD_OK;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].type->reopen && t->p[i].type->reopen(&t->p[i]) != HD_OK)
            rc = HD_ERROR;
    return rc;
}

int
hd_providers_reopen(void)
{
    int rc = reopen_table(live);
    for (struct hd_provider_table *t = retired; t; t = t->next)
        if (reopen_table(t) != HD_OK)
            rc = HD_ERROR;
    return rc;
}

void
hd_providers_flush(struct hd_worker *w)
{
    struct hd_provider_table *t = per[w->id].cur;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].type->flush)
            t->p[i].type->flush(&t->p[i], w);
}

/* ==== module ==== */

static int
provider_init_worker(struct hd_worker *w)
{
    struct pworker *pw = &per[w->id];

    /* the first table, counted for this worker by hd_providers_create:
     * any later one comes through the inbox, in order */
    pw->cur = first;
    pw->sweep_ev = event_new(w->base, -1, 0, on_sweep, w);
    return pw->sweep_ev ? HD_OK : HD_ERROR;
}

static void
provider_exit_worker(struct hd_worker *w)
{
    struct pworker *pw = &per[w->id];

    if (pw->cur)
        exit_table(pw->cur, w);
    while (pw->old) {
        struct held *h = pw->old;
        pw->old = h->next;
        exit_table(h->t, w);
        free(h);
    }
    if (pw->sweep_ev)
        event_free(pw->sweep_ev);
    memset(pw, 0, sizeof(*pw));
}

const struct hd_module hd_provider_module = {
    "provider", provider_init_worker, NULL, NULL, NULL, provider_exit_worker,
};
