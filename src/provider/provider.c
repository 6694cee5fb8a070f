/*
 * provider.c: the table of configured providers and the channel routes.
 * Built by the main thread at start; read-only for workers afterwards.
 */
#include <stdio.h>

#include "core/herald.h"
#include "provider/provider.h"

static const struct hd_provider_type *types[] = {&hd_log_provider};

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

int
hd_provider_check_settings(const struct hd_provider_conf *pc,
                           const struct hd_provider_setting *settings,
                           char *err, size_t errlen)
{
    const struct hd_provider_setting *st;

    for (int i = 0; i < pc->nkv; i++) {
        const struct hd_conf_kv *kv = &pc->kv[i];
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
    }
    return HD_OK;
}

int
hd_providers_create(const struct hd_conf *cf, char *err, size_t errlen)
{
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
}

struct hd_provider *
hd_provider_pick(int channel, const struct hd_job *j)
{
    for (int i = 0; i < nroutes[channel]; i++) {
        struct hd_provider *p = routes[channel][i];
        if (p->type->accepts == NULL || p->type->accepts(p, j))
            return p;
    }
    return NULL;
}

int
hd_providers_reopen(void)
{
    int rc = HD_OK;
    for (int i = 0; i < nproviders; i++)
        if (providers[i].type->reopen
            && providers[i].type->reopen(&providers[i]) != HD_OK)
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
