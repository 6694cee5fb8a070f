/*
 * templates.h: the named templates herald renders at ingest: from the
 * config (template blocks) and from the API (PUT /v1/templates/{name},
 * stored in shard 0). One immutable set shared by every worker, replaced
 * whole when a template changes.
 */
#ifndef HD_TEMPLATES_H
#define HD_TEMPLATES_H

#include <jansson.h>

#include "core/conf.h"
#include "store/store.h"

#define HD_TEMPLATE_NAME_MAX 64

/* Checks every template block of cf (herald -t, reload): "in FILE:LINE". */
int hd_templates_check(const struct hd_conf *cf, char *err, size_t errlen);
/* Builds the set from cf and the templates stored in shard 0 (main
 * thread, before the workers start). */
int hd_templates_init(const struct hd_conf *cf, struct hd_shard *shard0,
                      char *err, size_t errlen);
/* A reload: config templates anew, API templates kept. */
int hd_templates_reconf(const struct hd_conf *cf, char *err, size_t errlen);
void hd_templates_free(void);

/* Checks an API definition {parts: {ch: {field: src}}, locales: {tag:
 * {ch: ...}}}; on error *field names the part ("parts.email.html"). */
int hd_template_validate(json_t *def, char *err, size_t errlen, char *field,
                         size_t fieldlen);
/* Shard 0's owner: stores (def) or removes (NULL) an API template and
 * swaps the set. HD_DECLINED: the name belongs to the config. */
int hd_template_put(struct hd_shard *s, const char *name, json_t *def);
/* The definition (new reference) with "source": config|api, or NULL. */
json_t *hd_template_get(const char *name);
json_t *hd_template_list(void);

/* Renders template name for user (locale, and user.* in the data) with
 * data into *content ({push: {..}, sms: {..}, email: {..}, web: {..}}).
 * HD_OK; HD_DECLINED: unknown template; HD_ERROR: *missing names the
 * variable (copied into missing, size missinglen). */
int hd_template_render(const char *name, json_t *user, json_t *data,
                       json_t **content, char *missing, size_t missinglen);

#endif
