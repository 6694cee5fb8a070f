/*
 * users.h: a user's contact points (email, phone, devices) and
 * preferences in the owning shard. Owner thread of the shard only; input
 * is validated by the caller.
 */
#ifndef HD_USERS_H
#define HD_USERS_H

#include <jansson.h>

#include "store/store.h"

#define HD_USER_ID_MAX 128

/* Checks a user id: 1-128 of [A-Za-z0-9._:@-]. */
int hd_user_id_valid(const char *id);

/* Creates or replaces (patch: merges; null removes) the user. Stages the
 * write; *out is the public JSON. Returns 1 if created, 0 if updated,
 * HD_DECLINED when patching an unknown user. */
int hd_user_put(struct hd_shard *s, const char *user_id, json_t *fields,
                int patch, json_t **out);
/* The stored record (new reference), or NULL. */
json_t *hd_user_load(struct hd_shard *s, const char *user_id);
/* Public JSON with devices and preferences, or NULL when unknown. */
json_t *hd_user_get(struct hd_shard *s, const char *user_id);
/* Erases the user and everything of theirs in one batch. *out gets
 * counts. HD_DECLINED when unknown. */
int hd_user_erase(struct hd_shard *s, const char *user_id, json_t **out);

/* Devices. The device id is derived from platform and token, so the
 * same token always has the same id. */
int hd_device_register(struct hd_shard *s, const char *user_id, json_t *device,
                       json_t **out);
json_t *hd_devices_list(struct hd_shard *s, const char *user_id);
/* The stored records of user_id's devices (at most 1000) as they are, in
 * *kv (free with hd_kv_free): for ingest, which reads a few fields of
 * each as text. Returns the count. */
int hd_devices_raw(struct hd_shard *s, const char *user_id, struct hd_kv **kv);
int hd_device_remove(struct hd_shard *s, const char *user_id,
                     const char *device_id);
/* The device's record for a delivery (a reference the caller drops; read
 * around the record cache: once per send), or NULL. */
json_t *hd_device_get(struct hd_shard *s, const char *user_id,
                      const char *device_id);
/* Whether the device was registered (again) after ms, the time a provider
 * says its token went away (APNs 410): then that answer is older than the
 * token in use, which stays. */
int hd_device_registered_after(struct hd_shard *s, const char *user_id,
                               const char *device_id, int64_t ms);
/* Drops platform:token from its user in this shard unless that user is
 * new_user or registered it later than registered_ms (a token belongs to
 * one user: the last to register it). */
void hd_device_release(struct hd_shard *s, const char *token_key,
                       const char *new_user, int64_t registered_ms);

/* Marks the user's address on channel (email, sms) as not working, if it
 * is still to; sends to it are suppressed until the address changes. */
void hd_user_flag_address(struct hd_shard *s, const char *user_id, int ch,
                          const char *to);
/* Whether the user's address on channel is flagged. */
int hd_user_address_flagged(json_t *user, int ch);
/* The member of a user record that flags the address of ch (email, sms)
 * as no longer working. */
const char *hd_user_flag_name(int ch);

/* Preferences: {channels: {ch: bool}, categories: {name: {ch: bool}}}. */
/* Sets one channel switch, keeping the rest. */
void hd_prefs_set_channel(struct hd_shard *s, const char *user_id, int ch,
                          int on);
void hd_prefs_put(struct hd_shard *s, const char *user_id, json_t *prefs);
json_t *hd_prefs_get(struct hd_shard *s, const char *user_id);
/* The stored preferences, or NULL when the user has none (ingest: no
 * default object built per notification). */
json_t *hd_prefs_load(struct hd_shard *s, const char *user_id);
/* Whether user_id may get category on channel: an explicit "false" for
 * the channel or for (category, channel) opts out; a category whose
 * config says opt_in off needs an explicit true. prefs NULL: none set. */
int hd_prefs_allow(json_t *prefs, const struct hd_conf *cf, int channel,
                   const char *category);

#endif
