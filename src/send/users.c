/*
 * users.c: users, their devices and preferences, in the owning shard.
 * Owner thread of the shard; input is validated by the caller (http).
 *
 * A device token belongs to one user. Within a shard the token index
 * moves it at once; across shards the registering shard asks every other
 * shard to release the token (hd_device_release, through hd_call), and
 * the later registration wins, so two racing registrations agree.
 */
#include <stdio.h>

#include <openssl/sha.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/time.h"
#include "core/worker.h"
#include "send/delivery.h"
#include "send/ratelimit.h"
#include "send/users.h"
#include "store/queue.h"

int
hd_user_id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > HD_USER_ID_MAX)
        return 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

/* "user\0rest" keys for per-user ranges */
static size_t
ukey(char *buf, size_t size, const char *user_id, const char *rest)
{
    size_t u = strlen(user_id), r = rest ? strlen(rest) : 0;
    HD_ASSERT(u + 1 + r <= size);
    memcpy(buf, user_id, u);
    buf[u] = '\0';
    if (r)
        memcpy(buf + u + 1, rest, r);
    return u + 1 + r;
}

json_t *
hd_user_load(struct hd_shard *s, const char *user_id)
{
    return hd_store_get_json(s, HD_DB_USERS, user_id);
}

/* the flag of an address that stopped working */
static const char *
flag_of(int ch)
{
    return ch == HD_CH_EMAIL ? "email_bouncing" : "phone_invalid";
}

/* ==== users ==== */

int
hd_user_put(struct hd_shard *s, const char *user_id, json_t *fields, int patch,
            json_t **out)
{
    static const char *keys[] = {"email", "phone", "locale", "timezone"};
    json_t *old = hd_user_load(s, user_id), *rec;
    char now[32];
    int created = old == NULL;

    if (patch && old == NULL)
        return HD_DECLINED;
    hd_time_iso(hd_now_ms(), now, sizeof(now));
    rec = json_pack("{s:s}", "id", user_id);
    for (size_t i = 0; i < HD_NELEMS(keys); i++) {
        json_t *v = json_object_get(fields, keys[i]);
        if (patch && v == NULL)
            v = json_object_get(old, keys[i]);
        if (v != NULL && !json_is_null(v))
            json_object_set(rec, keys[i], v);
    }
    /* a bouncing address stays flagged until it changes */
    for (int ch = HD_CH_SMS; ch <= HD_CH_EMAIL; ch++) {
        const char *k = ch == HD_CH_EMAIL ? "email" : "phone";
        if (old && hd_user_address_flagged(old, ch) &&
            json_equal(json_object_get(old, k), json_object_get(rec, k)))
            json_object_set_new(rec, flag_of(ch), json_true());
    }
    json_object_set_new(rec, "created_at",
                        old ? json_incref(json_object_get(old, "created_at"))
                            : json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    hd_store_put_json(s, HD_DB_USERS, user_id, rec);
    json_decref(rec);
    json_decref(old);
    *out = hd_user_get(s, user_id);
    return created;
}

json_t *
hd_user_get(struct hd_shard *s, const char *user_id)
{
    json_t *rec = hd_user_load(s, user_id), *out;

    if (rec == NULL)
        return NULL;
    out = json_copy(rec); /* rec is shared: add keys to a copy */
    json_decref(rec);
    json_object_set_new(out, "shard", json_integer(s->id));
    json_object_set_new(out, "devices", hd_devices_list(s, user_id));
    json_object_set_new(out, "preferences", hd_prefs_get(s, user_id));
    return out;
}

/* Stages the removal of every key of db under user's prefix. */
static int
erase_range(struct hd_shard *s, int db, const char *user_id,
            struct hd_kv **kept)
{
    char prefix[HD_USER_ID_MAX + 2];
    size_t plen = ukey(prefix, sizeof(prefix), user_id, NULL);
    struct hd_kv *kv;
    int n = hd_store_range(s, db, prefix, plen, NULL, 0, 0, 1 << 30, &kv);

    for (int i = 0; i < n; i++)
        hd_store_del(s, db, kv[i].key, kv[i].klen);
    if (kept) {
        *kept = kv;
        return n;
    }
    hd_kv_free(kv, n);
    return n;
}

static void token_key(char *buf, const char *platform, const char *token);

int
hd_user_erase(struct hd_shard *s, const char *user_id, json_t **out)
{
    json_t *user = hd_user_load(s, user_id);
    struct hd_kv *kv;
    int nn, cancelled = 0;

    if (user == NULL)
        return HD_DECLINED;
    json_decref(user);

    /* notifications, their deliveries and any queue entries left */
    nn = erase_range(s, HD_DB_USER_NOTIFICATIONS, user_id, &kv);
    for (int i = 0; i < nn; i++) {
        const char *nid = kv[i].key + strlen(user_id) + 1;
        json_t *n = hd_store_get_json(s, HD_DB_NOTIFICATIONS, nid), *v;
        size_t j;
        if (n == NULL)
            continue;
        json_array_foreach(json_object_get(n, "deliveries"), j, v)
        {
            const char *did = json_string_value(v);
            json_t *d = hd_delivery_get(s, did);
            if (d != NULL && json_object_get(d, "qseq") != NULL) {
                int ch = hd_channel_parse(
                    json_string_value(json_object_get(d, "channel")),
                    strlen(json_string_value(json_object_get(d, "channel"))));
                hd_queue_remove(
                    s, ch, json_integer_value(json_object_get(d, "due")),
                    (uint64_t)json_integer_value(json_object_get(d, "qseq")));
                cancelled++;
            }
            hd_delivery_del(s, did);
            json_decref(d);
        }
        hd_store_del(s, HD_DB_NOTIFICATIONS, nid, strlen(nid));
        json_decref(n);
    }
    hd_kv_free(kv, nn);

    /* devices and the token index entries that still point at them */
    {
        int nd = erase_range(s, HD_DB_DEVICES, user_id, &kv);
        for (int i = 0; i < nd; i++) {
            MDB_val v;
            json_t *d = json_loadb(kv[i].val + 1, kv[i].vlen - 1, 0, NULL);
            char tk[128];
            if (d == NULL)
                continue;
            token_key(tk, json_string_value(json_object_get(d, "platform")),
                      json_string_value(json_object_get(d, "token")));
            if (hd_store_get(s, HD_DB_TOKENS, tk, strlen(tk), &v) == HD_OK &&
                v.mv_size == kv[i].klen &&
                memcmp(v.mv_data, kv[i].key, kv[i].klen) == 0)
                hd_store_del(s, HD_DB_TOKENS, tk, strlen(tk));
            json_decref(d);
        }
        hd_kv_free(kv, nd);
    }
    erase_range(s, HD_DB_IDEMPOTENCY, user_id, NULL);
    hd_store_del(s, HD_DB_PREFS, user_id, strlen(user_id));
    hd_store_del(s, HD_DB_USERS, user_id, strlen(user_id));
    hd_ratelimit_forget(s->id, user_id);

    *out = json_pack("{s:b, s:s, s:i, s:i}", "deleted", 1, "user_id", user_id,
                     "notifications", nn, "deliveries_cancelled", cancelled);
    return HD_OK;
}

/* ==== devices ==== */

/* platform ":" sha256hex(token): fixed length whatever the token */
static void
token_key(char *buf, const char *platform, const char *token)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t n = strlen(platform);

    SHA256((const unsigned char *)token, strlen(token), md);
    memcpy(buf, platform, n);
    buf[n] = ':';
    hd_hex_encode(md, sizeof(md), buf + n + 1);
}

static void
device_id(char *buf, const char *platform, const char *token)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char in[4200];
    int n = snprintf(in, sizeof(in), "%s:%s", platform, token);

    SHA256((const unsigned char *)in, (size_t)n, md);
    buf[0] = 'd';
    hd_hex_encode(md, 10, buf + 1);
}

static json_t *
device_public(json_t *rec)
{
    json_t *d = json_deep_copy(rec);
    json_object_del(d, "user_id");
    json_object_del(d, "registered_ms");
    return d;
}

struct release_call {
    struct hd_call call;
    char token_key[128];
    char user_id[HD_USER_ID_MAX + 1];
    int64_t registered_ms;
};

static void
exec_release(struct hd_call *c)
{
    struct release_call *rc = (struct release_call *)c;
    hd_device_release(hd_call_shard(c), rc->token_key, rc->user_id,
                      rc->registered_ms);
    hd_call_return(c);
}

static void
done_release(struct hd_call *c)
{
    free(c);
}

int
hd_device_register(struct hd_shard *s, const char *user_id, json_t *in,
                   json_t **out)
{
    const char *platform = json_string_value(json_object_get(in, "platform"));
    const char *token = json_string_value(json_object_get(in, "token"));
    char did[32], tk[128], key[HD_USER_ID_MAX + 40], now[32];
    json_t *user, *old, *rec;
    size_t klen;
    int64_t now_ms = hd_now_ms();
    MDB_val v;
    int created;

    user = hd_user_load(s, user_id);
    if (user == NULL)
        return HD_DECLINED;
    json_decref(user);

    device_id(did, platform, token);
    token_key(tk, platform, token);
    klen = ukey(key, sizeof(key), user_id, did);
    hd_time_iso(now_ms, now, sizeof(now));

    /* the token's previous owner in this shard loses it */
    if (hd_store_get(s, HD_DB_TOKENS, tk, strlen(tk), &v) == HD_OK &&
        !(v.mv_size == klen && memcmp(v.mv_data, key, klen) == 0))
        hd_store_del(s, HD_DB_DEVICES, v.mv_data, v.mv_size);

    old = hd_store_get_json_n(s, HD_DB_DEVICES, key, klen);
    created = old == NULL;
    rec = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", did, "user_id", user_id,
                    "platform", platform, "token", token, "registered_ms",
                    (json_int_t)now_ms);
    if (json_object_get(in, "app"))
        json_object_set(rec, "app", json_object_get(in, "app"));
    if (json_object_get(in, "sandbox"))
        json_object_set(rec, "sandbox", json_object_get(in, "sandbox"));
    if (json_object_get(in, "subscription"))
        json_object_set(rec, "subscription",
                        json_object_get(in, "subscription"));
    json_object_set_new(rec, "created_at",
                        old ? json_incref(json_object_get(old, "created_at"))
                            : json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    hd_store_put_json_n(s, HD_DB_DEVICES, key, klen, rec);
    hd_store_put(s, HD_DB_TOKENS, tk, strlen(tk), key, klen);
    *out = device_public(rec);
    json_decref(rec);
    json_decref(old);

    /* other shards may hold the token for another user */
    if (created)
        for (int i = 0; i < s->nshards; i++) {
            struct release_call *rc;
            if (i == s->id)
                continue;
            rc = hd_calloc(sizeof(*rc));
            rc->call.shard = i;
            rc->call.exec = exec_release;
            rc->call.done = done_release;
            snprintf(rc->token_key, sizeof(rc->token_key), "%s", tk);
            snprintf(rc->user_id, sizeof(rc->user_id), "%s", user_id);
            rc->registered_ms = now_ms;
            hd_call_submit(&rc->call);
        }
    return created;
}

void
hd_device_release(struct hd_shard *s, const char *tk, const char *new_user,
                  int64_t registered_ms)
{
    MDB_val v;
    char key[HD_USER_ID_MAX + 40];

    if (hd_store_get(s, HD_DB_TOKENS, tk, strlen(tk), &v) != HD_OK ||
        v.mv_size >= sizeof(key))
        return;
    memcpy(key, v.mv_data, v.mv_size);
    key[v.mv_size] = '\0'; /* user "\0" device: the user part reads alone */
    if (strcmp(key, new_user) == 0)
        return;
    {
        MDB_val dv;
        size_t klen = v.mv_size;
        if (hd_store_get(s, HD_DB_DEVICES, key, klen, &dv) == HD_OK) {
            json_t *rec = hd_record_decode(&dv);
            int64_t mine =
                rec ? json_integer_value(json_object_get(rec, "registered_ms"))
                    : 0;
            json_decref(rec);
            if (mine > registered_ms)
                return; /* ours is the later registration: keep it */
            hd_store_del(s, HD_DB_DEVICES, key, klen);
        }
    }
    hd_store_del(s, HD_DB_TOKENS, tk, strlen(tk));
}

json_t *
hd_devices_list(struct hd_shard *s, const char *user_id)
{
    char prefix[HD_USER_ID_MAX + 2];
    size_t plen = ukey(prefix, sizeof(prefix), user_id, NULL);
    struct hd_kv *kv;
    int n =
        hd_store_range(s, HD_DB_DEVICES, prefix, plen, NULL, 0, 0, 1000, &kv);
    json_t *list = json_array();

    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *rec = hd_record_decode(&v);
        if (rec == NULL)
            continue;
        json_array_append_new(list, device_public(rec));
        json_decref(rec);
    }
    hd_kv_free(kv, n);
    return list;
}

int
hd_devices_raw(struct hd_shard *s, const char *user_id, struct hd_kv **kv)
{
    char prefix[HD_USER_ID_MAX + 2];
    size_t plen = ukey(prefix, sizeof(prefix), user_id, NULL);

    return hd_store_range(s, HD_DB_DEVICES, prefix, plen, NULL, 0, 0, 1000, kv);
}

json_t *
hd_device_get(struct hd_shard *s, const char *user_id, const char *device_id)
{
    char key[HD_USER_ID_MAX + 40];
    int shared;

    if (strlen(device_id) > 32)
        return NULL;
    return hd_store_get_json_nc(s, HD_DB_DEVICES, key,
                                ukey(key, sizeof(key), user_id, device_id),
                                &shared);
}

int
hd_device_registered_after(struct hd_shard *s, const char *user_id,
                           const char *device_id, int64_t ms)
{
    json_t *rec = hd_device_get(s, user_id, device_id);
    int after = json_integer_value(json_object_get(rec, "registered_ms")) > ms;

    json_decref(rec);
    return after;
}

int
hd_device_remove(struct hd_shard *s, const char *user_id,
                 const char *device_id_)
{
    char key[HD_USER_ID_MAX + 40], tk[128];
    size_t klen;
    MDB_val v, tv;
    json_t *rec;

    if (strlen(device_id_) > 32)
        return HD_DECLINED;
    klen = ukey(key, sizeof(key), user_id, device_id_);
    if (hd_store_get(s, HD_DB_DEVICES, key, klen, &v) != HD_OK)
        return HD_DECLINED;
    rec = hd_record_decode(&v);
    if (rec != NULL) {
        token_key(tk, json_string_value(json_object_get(rec, "platform")),
                  json_string_value(json_object_get(rec, "token")));
        if (hd_store_get(s, HD_DB_TOKENS, tk, strlen(tk), &tv) == HD_OK &&
            tv.mv_size == klen && memcmp(tv.mv_data, key, klen) == 0)
            hd_store_del(s, HD_DB_TOKENS, tk, strlen(tk));
        json_decref(rec);
    }
    hd_store_del(s, HD_DB_DEVICES, key, klen);
    return HD_OK;
}

/* ==== addresses that stopped working ==== */

void
hd_user_flag_address(struct hd_shard *s, const char *user_id, int ch,
                     const char *to)
{
    json_t *shared = hd_user_load(s, user_id), *rec;
    const char *addr;

    if (shared == NULL || (ch != HD_CH_EMAIL && ch != HD_CH_SMS)) {
        json_decref(shared);
        return;
    }
    addr = json_string_value(
        json_object_get(shared, ch == HD_CH_EMAIL ? "email" : "phone"));
    if (addr == NULL || to == NULL || strcmp(addr, to) != 0) {
        json_decref(shared); /* changed since: the new one is untried */
        return;
    }
    rec = json_copy(shared);
    json_decref(shared);
    json_object_set_new(rec, flag_of(ch), json_true());
    hd_store_put_json(s, HD_DB_USERS, user_id, rec);
    json_decref(rec);
}

const char *
hd_user_flag_name(int ch)
{
    return flag_of(ch);
}

int
hd_user_address_flagged(json_t *user, int ch)
{
    return json_is_true(json_object_get(user, flag_of(ch)));
}

/* ==== preferences ==== */

void
hd_prefs_set_channel(struct hd_shard *s, const char *user_id, int ch, int on)
{
    json_t *shared = hd_prefs_get(s, user_id), *p, *chans;

    p = json_deep_copy(shared);
    json_decref(shared);
    chans = json_object_get(p, "channels");
    if (!json_is_object(chans)) {
        chans = json_object();
        json_object_set_new(p, "channels", chans);
    }
    json_object_set_new(chans, hd_channel_name(ch), json_boolean(on));
    hd_prefs_put(s, user_id, p);
    json_decref(p);
}

void
hd_prefs_put(struct hd_shard *s, const char *user_id, json_t *prefs)
{
    hd_store_put_json(s, HD_DB_PREFS, user_id, prefs);
}

json_t *
hd_prefs_load(struct hd_shard *s, const char *user_id)
{
    return hd_store_get_json(s, HD_DB_PREFS, user_id);
}

json_t *
hd_prefs_get(struct hd_shard *s, const char *user_id)
{
    json_t *p = hd_prefs_load(s, user_id);
    if (p == NULL)
        p = json_pack("{s:{}, s:{}}", "channels", "categories");
    return p;
}

int
hd_prefs_allow(json_t *prefs, const struct hd_conf *cf, int channel,
               const char *category)
{
    const char *ch = hd_channel_name(channel);
    json_t *v = json_object_get(json_object_get(prefs, "channels"), ch);

    if (json_is_false(v))
        return 0;
    if (category != NULL) {
        const struct hd_category_conf *cat =
            hd_conf_find_category(cf, category);
        v = json_object_get(
            json_object_get(json_object_get(prefs, "categories"), category),
            ch);
        if (json_is_false(v))
            return 0;
        if (cat && (cat->opt_out & (1u << channel)) && !json_is_true(v))
            return 0;
    }
    return 1;
}
