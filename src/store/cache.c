/*
 * cache.c: decoded records of one shard, most recently written or read,
 * so the hot path (a user and its devices, read on every send) does not
 * parse the same JSON again. Per-notification records are not kept
 * (UNCACHED).
 * Owner thread only. Every staged write of a key drops or replaces its
 * entry and a failed commit clears it all. Cached objects are shared and
 * immutable: writers give up the object they stored (hd_store_put_json),
 * readers get a reference they must not change (json_copy it first);
 * jansson's reference counts are atomic, so a shared object may travel in
 * an answer to another worker.
 */
#include "core/herald.h"
#include "core/shard.h"
#include "store/store.h"

#define CACHE_SLOTS 8192 /* power of two */

/* Records of one notification (its deliveries, their dead letters) are
 * written once and read a few times, if ever; cached, they would only
 * fill the slots, evicting the users and devices read on every send, and
 * the heap grew with them in bench/soak (a dead letter or a callback's
 * delivery a slot). The cache keeps what a shard reads again and again. */
#define UNCACHED                                                               \
    ((1ULL << HD_DB_NOTIFICATIONS) | (1ULL << HD_DB_DELIVERIES) |              \
     (1ULL << HD_DB_IDEMPOTENCY) | (1ULL << HD_DB_USER_NOTIFICATIONS) |        \
     (1ULL << HD_DB_DEAD_LETTERS) | (1ULL << HD_DB_EVENTS) |                   \
     (1ULL << HD_DB_OUTCOMES))

struct hd_cache_entry {
    uint64_t hash;
    int db;
    size_t klen;
    char *key;
    json_t *obj;
};

struct hd_cache {
    struct hd_cache_entry slot[CACHE_SLOTS];
    /* the dbs anything was ever cached for: a write to another (queues,
     * events, indexes: most writes of the send path) has nothing to drop */
    uint64_t dbs;
};

_Static_assert(HD_DB_MAX <= 64, "one bit per db in hd_cache.dbs");

static uint64_t
chash(int db, const void *key, size_t klen)
{
    return hd_hash(key, klen) * 31 + (uint64_t)db;
}

static void
clear_slot(struct hd_cache_entry *e)
{
    json_decref(e->obj);
    free(e->key);
    e->obj = NULL;
    e->key = NULL;
}

/* direct-mapped: a key has one slot; a newer key takes it over */
static struct hd_cache_entry *
slot_of(struct hd_shard *s, uint64_t h)
{
    if (s->_cache == NULL)
        s->_cache = hd_calloc(sizeof(struct hd_cache));
    return &s->_cache->slot[h & (CACHE_SLOTS - 1)];
}

static int
matches(struct hd_cache_entry *e, uint64_t h, int db, const void *key,
        size_t klen)
{
    return e->obj != NULL && e->hash == h && e->db == db && e->klen == klen &&
           memcmp(e->key, key, klen) == 0;
}

json_t *
hd_cache_get(struct hd_shard *s, int db, const void *key, size_t klen)
{
    uint64_t h;
    struct hd_cache_entry *e;

    if (UNCACHED & (1ULL << db))
        return NULL;
    h = chash(db, key, klen);
    e = slot_of(s, h);
    if (!matches(e, h, db, key, klen))
        return NULL;
    return json_incref(e->obj);
}

void
hd_cache_set(struct hd_shard *s, int db, const void *key, size_t klen,
             json_t *obj)
{
    uint64_t h;
    struct hd_cache_entry *e;

    if (UNCACHED & (1ULL << db))
        return;
    h = chash(db, key, klen);
    e = slot_of(s, h);
    clear_slot(e);
    s->_cache->dbs |= 1ULL << db;
    e->hash = h;
    e->db = db;
    e->klen = klen;
    e->key = hd_strndup(key, klen);
    e->obj = json_incref(obj);
}

void
hd_cache_drop(struct hd_shard *s, int db, const void *key, size_t klen)
{
    uint64_t h;
    struct hd_cache_entry *e;

    if (s->_cache == NULL || !(s->_cache->dbs & (1ULL << db)))
        return;
    h = chash(db, key, klen);
    e = slot_of(s, h);
    if (matches(e, h, db, key, klen))
        clear_slot(e);
}

void
hd_cache_clear(struct hd_shard *s)
{
    if (s->_cache == NULL)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        clear_slot(&s->_cache->slot[i]);
    free(s->_cache);
    s->_cache = NULL;
}
