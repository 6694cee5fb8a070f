/*
 * users.h: contacts of a user in the owning shard. Owner thread only.
 */
#ifndef HD_USERS_H
#define HD_USERS_H

#include <jansson.h>

#include "store/store.h"

#define HD_USER_ID_MAX 128

/* Checks a user id: 1-128 of [A-Za-z0-9._:@-]. */
int hd_user_id_valid(const char *id);
/* Creates or replaces the user with validated fields (email, phone,
 * locale, timezone; absent = unset). Stages the write; *out is the public
 * JSON of the user. Returns 1 if created, 0 if replaced. */
int hd_user_put(struct hd_shard *s, const char *user_id, json_t *fields,
                json_t **out);
/* The stored record (new reference), or NULL. */
json_t *hd_user_load(struct hd_shard *s, const char *user_id);
/* The public JSON of a stored user, or NULL when unknown. */
json_t *hd_user_get(struct hd_shard *s, const char *user_id);

#endif
