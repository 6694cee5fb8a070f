/*
 * provider.c: the table of configured providers and the channel routes.
 * Built by the main thread at start; read-only for workers afterwards.
 */
#include <stdio.h>

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

static struct hd_provider *providers;
static int nproviders;
static struct hd_provider *routes[HD_CH_MAX][HD_MAX_CHANNEL_PROVIDERS];
static int nroutes[HD_CH_MAX];

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

/* the config the providers were built from: they point into it */
static struct hd_conf *providers_conf;

int
hd_providers_create(const struct hd_conf *cf, char *err, size_t errlen)
{
    providers_conf = (struct hd_conf *)cf;
    hd_conf_ref(providers_conf);
    providers = hd_calloc(cf->nproviders * sizeof(*providers));
    for (int i = 0; i < cf->nproviders; i++) {
        const struct hd_provider_conf *pc = &cf->providers[i];
        struct hd_provider *p = &providers[i];
        p->type = type_of(pc->type);
        if (p->type == NULL) {
            snprintf(err, errlen, "unknown provider type \"%s\"", pc->type);
            return HD_ERROR;
        }
        p->conf = pc;
        p->index = i;
        if (parse_policy(pc, &p->policy, err, errlen) != HD_OK)
            return HD_ERROR;
        if (p->type->create(p, pc, err, errlen) != HD_OK)
            return HD_ERROR;
        p->name = hd_strdup(pc->name);
        nproviders = i + 1; /* only created ones are destroyed */
    }
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        nroutes[ch] = cf->channels[ch].nproviders;
        for (int i = 0; i < nroutes[ch]; i++)
            routes[ch][i] = &providers[cf->channels[ch].providers[i]];
    }
    return HD_OK;
}

void
hd_providers_destroy(void)
{
    for (int i = 0; i < nproviders; i++) {
        if (providers[i].type->destroy)
            providers[i].type->destroy(&providers[i]);
        free(providers[i].name);
    }
    free(providers);
    providers = NULL;
    nproviders = 0;
    hd_conf_unref(providers_conf);
    providers_conf = NULL;
}

struct hd_provider *
hd_provider_pick(int channel, const struct hd_job *j,
                 int (*usable)(struct hd_provider *p, void *arg), void *arg,
                 int *declined)
{
    *declined = 0;
    for (int i = 0; i < nroutes[channel]; i++) {
        struct hd_provider *p = routes[channel][i];
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
    return nproviders;
}

struct hd_provider *
hd_provider_at(int i)
{
    return &providers[i];
}

int
hd_providers_reopen(void)
{
    int rc = HD_OK;
    for (int i = 0; i < nproviders; i++)
        if (providers[i].type->reopen &&
            providers[i].type->reopen(&providers[i]) != HD_OK)
            rc = HD_ERROR;
    return rc;
}

void
hd_providers_flush(struct hd_worker *w)
{
    for (int i = 0; i < nproviders; i++)
        if (providers[i].type->flush)
            providers[i].type->flush(&providers[i], w);
}

static void
provider_exit_worker(struct hd_worker *w)
{
    for (int i = 0; i < nproviders; i++)
        if (providers[i].type->exit_worker)
            providers[i].type->exit_worker(&providers[i], w);
}

const struct hd_module hd_provider_module = {
    "provider", NULL, NULL, NULL, NULL, provider_exit_worker,
};
