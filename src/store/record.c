/*
 * record.c: how values are laid out in the store. A record is one format
 * byte (HD_STORE_FORMAT) followed by compact JSON: self-describing, easy
 * to inspect with mdb_dump, and the format byte lets a later herald read
 * old records or refuse them. Owner thread of the shard.
 */
#include "core/herald.h"
#include "store/store.h"

struct encoder {
    char *buf;
    size_t len, size;
};

static int
on_dump(const char *chunk, size_t n, void *arg)
{
    struct encoder *e = arg;

    if (e->len + n > e->size) {
        while (e->len + n > e->size)
            e->size *= 2;
        e->buf = hd_realloc(e->buf, e->size);
    }
    memcpy(e->buf + e->len, chunk, n);
    e->len += n;
    return 0;
}

/* One pass of the encoder into a growing buffer (json_dumpb would need a
 * first pass to learn the size: twice the work on the hot path). */
char *
hd_record_encode(json_t *obj, size_t *len)
{
    /* under 1008 bytes: a "large" malloc would consolidate glibc's fast
     * bins on every record; most records fit */
    struct encoder e = {hd_alloc(960), 1, 960};

    e.buf[0] = HD_STORE_FORMAT;
    json_dump_callback(obj, on_dump, &e, JSON_COMPACT);
    *len = e.len;
    return e.buf;
}

json_t *
hd_record_decode(const MDB_val *val)
{
    const char *p = val->mv_data;

    if (val->mv_size < 2 || p[0] != HD_STORE_FORMAT)
        return NULL;
    return json_loadb(p + 1, val->mv_size - 1, 0, NULL);
}

int
hd_record_members(const MDB_val *val, struct hd_jmember *m, int max)
{
    const char *p = val->mv_data;

    if (val->mv_size < 2 || p[0] != HD_STORE_FORMAT)
        return HD_ERROR;
    return hd_jtext_members(p + 1, val->mv_size - 1, m, max);
}

/* get + decode; a miss goes into the cache when cache is set */
static json_t *
load(struct hd_shard *s, int db, const char *key, size_t klen, int cache,
     int *shared)
{
    MDB_val v;
    json_t *obj = hd_cache_get(s, db, key, klen);

    *shared = obj != NULL;
    if (obj != NULL)
        return obj;
    if (hd_store_get(s, db, key, klen, &v) != HD_OK)
        return NULL;
    obj = hd_record_decode(&v);
    if (obj == NULL)
        hd_log(HD_LOG_ERR, &s->log, 0, "undecodable record \"%s\"", key);
    else if (cache)
        hd_cache_set(s, db, key, klen, obj);
    return obj;
}

json_t *
hd_store_get_json_n(struct hd_shard *s, int db, const char *key, size_t klen)
{
    int shared;
    return load(s, db, key, klen, 1, &shared);
}

/* A read that leaves the cache as it is (a Web Push device, read for its
 * keys when a delivery to it starts): a miss is decoded for the caller
 * alone. Per-notification records are never cached anyway (cache.c). */
json_t *
hd_store_get_json_nc(struct hd_shard *s, int db, const char *key, size_t klen,
                     int *shared)
{
    return load(s, db, key, klen, 0, shared);
}

json_t *
hd_store_get_json(struct hd_shard *s, int db, const char *key)
{
    return hd_store_get_json_n(s, db, key, strlen(key));
}

void
hd_store_put_json_n(struct hd_shard *s, int db, const char *key, size_t klen,
                    json_t *obj)
{
    size_t len;
    char *buf = hd_record_encode(obj, &len);

    hd_store_put(s, db, key, klen, buf, len);
    free(buf);
    hd_cache_set(s, db, key, klen, obj);
}

void
hd_store_put_json(struct hd_shard *s, int db, const char *key, json_t *obj)
{
    hd_store_put_json_n(s, db, key, strlen(key), obj);
}
