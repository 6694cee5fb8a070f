/*
 * users.c: user records (contacts) in the owning shard: create, replace,
 * read. Owner thread of the shard; input is validated by the caller.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/time.h"
#include "send/users.h"

int
hd_user_id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > HD_USER_ID_MAX)
        return 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
              || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

json_t *
hd_user_load(struct hd_shard *s, const char *user_id)
{
    return hd_store_get_json(s, HD_DB_USERS, user_id);
}

static json_t *
public_view(struct hd_shard *s, json_t *rec)
{
    json_t *out = json_deep_copy(rec);
    json_object_set_new(out, "shard", json_integer(s->id));
    return out;
}

int
hd_user_put(struct hd_shard *s, const char *user_id, json_t *fields,
            json_t **out)
{
    static const char *keys[] = {"email", "phone", "locale", "timezone"};
    json_t *old = hd_user_load(s, user_id), *rec;
    char now[32];
    int created = old == NULL;

    hd_time_iso(hd_now_ms(), now, sizeof(now));
    rec = json_pack("{s:s}", "id", user_id);
    for (size_t i = 0; i < HD_NELEMS(keys); i++) {
        json_t *v = json_object_get(fields, keys[i]);
        if (v != NULL && !json_is_null(v))
            json_object_set(rec, keys[i], v);
    }
    json_object_set_new(rec, "created_at",
                        old ? json_incref(json_object_get(old, "created_at"))
                            : json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    hd_store_put_json(s, HD_DB_USERS, user_id, rec);
    *out = public_view(s, rec);
    json_decref(rec);
    json_decref(old);
    return created;
}

json_t *
hd_user_get(struct hd_shard *s, const char *user_id)
{
    json_t *rec = hd_user_load(s, user_id), *out;

    if (rec == NULL)
        return NULL;
    out = public_view(s, rec);
    json_decref(rec);
    return out;
}
