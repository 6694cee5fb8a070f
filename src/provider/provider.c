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
static struct hd_provider *routes[HD_CH_MAX];

int
hd_providers_create(const struct hd_conf *cf, char *err, size_t errlen)
{
    providers = hd_calloc(cf->nproviders * sizeof(*providers));
    for (int i = 0; i < cf->nproviders; i++) {
        const struct hd_provider_conf *pc = &cf->providers[i];
        struct hd_provider *p = &providers[i];
        for (size_t t = 0; t < HD_NELEMS(types); t++)
            if (strcmp(types[t]->name, pc->type) == 0)
                p->type = types[t];
        if (p->type == NULL) {
            snprintf(err, errlen, "unknown provider type \"%s\"", pc->type);
            return HD_ERROR;
        }
        p->name = hd_strdup(pc->name);
        nproviders = i + 1;
        if (p->type->create(p, pc, err, errlen) != HD_OK)
            return HD_ERROR;
    }
    for (int ch = 0; ch < HD_CH_MAX; ch++)
        routes[ch] = &providers[cf->channels[ch].providers[0]];
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
hd_provider_for(int channel)
{
    return routes[channel];
}
