/*
 * store.h: one LMDB environment per shard, owned by one worker thread,
 * with a group-commit pipeline (commit.c) and a read-your-writes overlay.
 *
 * Writes are staged by the owner: hd_store_put/del copy the record into
 * the staging batch and into the overlay, so the owner's next read sees
 * it at once. At the end of the loop turn the batch goes to the shard's
 * commit thread, which applies it in ONE write transaction with a durable
 * sync while the reactor parses and stages the next batch. Callbacks
 * registered with hd_store_after_commit run on the owner after the batch
 * holding every write staged so far is durable.
 */
#ifndef HD_STORE_H
#define HD_STORE_H

#include <pthread.h>
#include <stdint.h>
#include <lmdb.h>
#include <event2/event.h>

#include "core/herald.h"
#include "core/conf.h"
#include "core/jtext.h"
#include "core/log.h"

enum hd_db {
    HD_DB_META = 0,
    HD_DB_USERS,
    HD_DB_DEVICES,
    HD_DB_TOKENS,
    HD_DB_PREFS,
    HD_DB_NOTIFICATIONS,
    HD_DB_DELIVERIES,
    HD_DB_IDEMPOTENCY,
    HD_DB_USER_NOTIFICATIONS,
    HD_DB_DEAD_LETTERS,
    HD_DB_TEMPLATES, /* shard 0 only holds any */
    HD_DB_EVENTS,
    HD_DB_STATS,
    HD_DB_OUTCOMES, /* a delivery's send results (send/delivery.h) */
    HD_DB_QUEUE,    /* + channel: one queue per channel */
    HD_DB_MAX = HD_DB_QUEUE + HD_CH_MAX
};

#define HD_STORE_FORMAT 1
#define HD_QUEUE_KEY_LEN 16 /* due time, then sequence (queue.c) */

struct hd_batch;
struct hd_ov_entry;
struct hd_inbox;

/* Result of a commit as seen by waiters. */
enum hd_commit_status {
    HD_COMMIT_OK = 0,
    HD_COMMIT_FULL,  /* map at max_map_size: answer 507 */
    HD_COMMIT_FAILED /* I/O or LMDB error */
};

typedef void (*hd_commit_fn)(void *arg, int status);

struct hd_shard {
    int id;
    int nshards;
    int worker; /* owner */
    char dir[4096];
    struct hd_log log;
    struct event_base *base;

    MDB_env *env;
    MDB_dbi dbi[HD_DB_MAX];
    MDB_txn *_rtxn; /* the owner's read snapshot, renewed per commit */
    /* point reads on _rtxn, a cursor per db: one left on a leaf page
     * finds a key on that page without searching from the root */
    MDB_cursor *_rcur[HD_DB_MAX];
    unsigned char _rcur_placed[HD_DB_MAX]; /* on a page since the renewal */

    struct hd_cache *_cache; /* decoded records (cache.c) */

    /* overlay: latest staged value per (db, key), until durable */
    struct hd_ov_entry **_buckets;
    size_t _nbuckets, _nentries;
    size_t _ov_count[HD_DB_MAX]; /* live overlay entries per db */

    struct hd_batch *_staging;    /* owner builds it */
    struct hd_batch *_committing; /* at the commit thread */
    struct event *_flush_ev;
    struct hd_inbox *_inbox; /* commit thread -> owner */
    int sync;
    int commit_records;
    int64_t commit_delay_ms;
    int64_t outcome_delay_ms;
    int64_t map_size, max_map_size;
    int high_water; /* percent of max_map_size */
    int64_t min_free_disk;
    int64_t _pressure_checked_ms;
    int _pressure;

    pthread_t _thread;
    pthread_mutex_t _lock;
    pthread_cond_t _cond;
    struct hd_batch *_todo; /* handed to the commit thread */
    int _stop;

    /* id clock: monotonic (ms << 16 | counter), persisted in meta */
    uint64_t _last_seq;

    /* per queue: the lowest key put by the commits since the dispatcher
     * last asked (hd_queue_low_take), so a walk that resumes past the
     * entries in flight knows when it must start from the front again */
    unsigned char _qlow[HD_CH_MAX][HD_QUEUE_KEY_LEN];
    unsigned _qlow_set; /* bit per channel */

    /* called on the owner after each durable commit (dispatch kick) */
    void (*on_durable)(struct hd_shard *s, void *arg);
    void *on_durable_arg;
    /* called on the owner when a write to the deliveries db is staged,
     * before it is: the dispatcher learns that a job's record changed
     * while the job was out */
    void (*on_delivery_write)(struct hd_shard *s, const void *key, size_t klen,
                              void *arg);
    void *on_delivery_write_arg;

    /* statistics, owner thread */
    uint64_t commits, records_committed;
    int64_t commit_us_total, commit_us_max;
};

/* ==== env.c ==== */

/* Checks or records the shard count of the store at path (main thread,
 * before workers start). *nshards in: wanted (0 = auto -> dflt);
 * out: the store's. Error text goes to err. */
int hd_store_prepare(const char *path, int wanted, int dflt, int *nshards,
                     char *err, size_t errlen);
/* Opens shard id (owner thread or main before start). */
struct hd_shard *hd_store_open(const struct hd_store_conf *sc, int id,
                               int nshards, char *err, size_t errlen);
/* Binds the shard to its owner's loop: commit thread, flush event. */
int hd_store_attach(struct hd_shard *s, struct event_base *base, int worker);
void hd_store_close(struct hd_shard *s);
/* Fills the shard's data file with zeros up to size (see env.c). */
int hd_store_preallocate(const char *dir, int64_t size);

/* Reads (db, key): the overlay first, then the committed snapshot. The
 * value is borrowed until the caller returns to the event loop.
 * HD_OK, HD_DECLINED (not found) or HD_ERROR. */
int hd_store_get(struct hd_shard *s, int db, const void *key, size_t klen,
                 MDB_val *val);
/* A copied key/value pair. */
struct hd_kv {
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
};

/* Up to limit pairs of db whose key starts with prefix, in key order (or
 * reverse), strictly after the key `after` when given, with staged writes
 * merged in: what hd_store_get would see, key by key. Returns the count
 * and a malloc'd array in *out (free with hd_kv_free). */
int hd_store_range(struct hd_shard *s, int db, const void *prefix, size_t plen,
                   const void *after, size_t alen, int reverse, int limit,
                   struct hd_kv **out);
void hd_kv_free(struct hd_kv *kv, int n);

/* Bytes of the map in use (pages up to the last one written). */
int64_t hd_store_used(struct hd_shard *s);
/* 1 when the shard is past its high-water mark (map use against
 * max_map_size, or free disk): ingest should refuse new work. */
int hd_store_pressure(struct hd_shard *s);

/* Committed snapshot only (cursors over queues). Borrowed likewise. */
MDB_txn *hd_store_snapshot(struct hd_shard *s);

/* Next monotonic sequence (ms << 16 | counter) and an id built from it:
 * "n" + 2 hex shard + 16 hex seq. buf must hold 24 bytes. */
uint64_t hd_store_next_seq(struct hd_shard *s);
/* The same with the clock already read (now_ms): one read stamps a send's
 * outcome and its event. */
uint64_t hd_store_seq_at(struct hd_shard *s, int64_t now_ms);
void hd_store_make_id(struct hd_shard *s, uint64_t seq, char *buf);
/* The shard named by an id made above, or -1. */
int hd_store_id_shard(const char *id, size_t len);

/* ==== commit.c ==== */

void hd_store_put(struct hd_shard *s, int db, const void *key, size_t klen,
                  const void *val, size_t vlen);
void hd_store_del(struct hd_shard *s, int db, const void *key, size_t klen);
/* Runs fn(arg, status) on the owner once every write staged so far is
 * durable; at once (synchronously) when nothing is pending. A client
 * waits: a batch held for outcome_delay commits at the end of this loop
 * turn. */
void hd_store_after_commit(struct hd_shard *s, hd_commit_fn fn, void *arg);
/* The same for a waiter no client waits on (the dispatcher's outcomes): the
 * batch may be held for outcome_delay to gather more writes. */
void hd_store_after_commit_lazy(struct hd_shard *s, hd_commit_fn fn, void *arg);
/* Hands the staging batch to the commit thread now if it is idle. */
void hd_store_flush(struct hd_shard *s);
int hd_store_commit_init(struct hd_shard *s);
void hd_store_commit_stop(struct hd_shard *s);
/* Sync commit of everything staged (shutdown, tests). */
int hd_store_commit_wait(struct hd_shard *s);
size_t hd_store_pending(struct hd_shard *s);

/* ==== cache.c: decoded records, owner thread ==== */
struct hd_cache;
#include <jansson.h>
json_t *hd_cache_get(struct hd_shard *s, int db, const void *key,
                     size_t klen); /* shared, read-only; or NULL */
void hd_cache_set(struct hd_shard *s, int db, const void *key, size_t klen,
                  json_t *obj);
void hd_cache_drop(struct hd_shard *s, int db, const void *key, size_t klen);
void hd_cache_clear(struct hd_shard *s);

/* ==== record.c: value encoding ==== */
#include <jansson.h>
/* A record is one format byte (HD_STORE_FORMAT) then compact JSON. The
 * returned buffer is malloc'd. */
char *hd_record_encode(json_t *obj, size_t *len);
json_t *hd_record_decode(const MDB_val *val);
/* The top-level members of a record read as text (core/jtext.h), at most
 * max: their count, or HD_ERROR for a record that is not an object. The
 * hot path's way to read a few fields without a tree; the spans borrow
 * val. */
int hd_record_members(const MDB_val *val, struct hd_jmember *m, int max);
/* get + decode; NULL when absent. The object is shared with the cache:
 * read it, or json_copy/json_deep_copy it before changing anything. */
json_t *hd_store_get_json(struct hd_shard *s, int db, const char *key);
/* Stages obj (borrowed); the cache keeps a reference, so obj must not
 * change after this call. */
void hd_store_put_json(struct hd_shard *s, int db, const char *key,
                       json_t *obj);
/* The same for keys that hold NUL bytes ("user\0device"). */
json_t *hd_store_get_json_n(struct hd_shard *s, int db, const char *key,
                            size_t klen);
void hd_store_put_json_n(struct hd_shard *s, int db, const char *key,
                         size_t klen, json_t *obj);
/* Without filling the cache, for a record read once: a hit is the
 * cache's shared object (*shared = 1: copy before changing), a miss is
 * decoded for the caller alone (*shared = 0: the caller owns it). */
json_t *hd_store_get_json_nc(struct hd_shard *s, int db, const char *key,
                             size_t klen, int *shared);

#endif
