/*
 * commit.c: group commit and the read-your-writes overlay of one shard.
 *
 * The owner thread stages writes into a batch (and the overlay); at the
 * end of its loop turn the batch goes to the shard's commit thread, which
 * applies it in one LMDB write transaction with a durable sync and sends
 * it back through the shard's inbox. While one batch syncs, the next one
 * fills: at most one batch is at the commit thread at a time, so commits
 * stay in order and each carries everything that arrived during the last.
 * The commit thread touches only the batch's entry list and env; the
 * overlay, waiters and the read snapshot belong to the owner.
 */
#include <errno.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "core/time.h"
#include "event/inbox.h"
#include "store/queue.h"
#include "store/store.h"

struct hd_ov_entry {
    struct hd_ov_entry *_chain; /* overlay bucket (owner only) */
    struct hd_ov_entry *_bnext; /* batch order */
    uint64_t hash;
    unsigned char db;
    unsigned char linked;
    unsigned char del;
    uint32_t klen, vlen;
    unsigned char data[]; /* key, then value */
};

struct hd_waiter {
    hd_commit_fn fn;
    void *arg;
};

/* entries live exactly as long as their batch, so they come from chunks the
 * batch frees at once: no malloc and free per staged write */
#define HD_BATCH_CHUNK (64 * 1024)

struct hd_chunk {
    struct hd_chunk *next;
    unsigned char data[];
};

struct hd_batch {
    struct hd_msg msg; /* commit thread -> owner; first member */
    struct hd_shard *shard;
    struct hd_ov_entry *head, *tail;
    struct hd_chunk *chunks;
    unsigned char *free_at, *end; /* the room left in chunks */
    size_t nrecords;
    struct hd_waiter *waiters;
    size_t nwaiters, cwaiters;
    int64_t staged_ms;
    int urgent; /* a client waits on it: outcome_delay does not hold it */
    unsigned char qlow[HD_CH_MAX][HD_QUEUE_KEY_LEN]; /* lowest put */
    unsigned qlow_set;                               /* bit per channel */
    int rc;
    int64_t took_us;
};

/* ==== overlay ==== */

static uint64_t
ov_hash(int db, const void *key, size_t klen)
{
    unsigned char d = (unsigned char)db;
    return hd_hash(key, klen) ^ ((uint64_t)d * 0x9e3779b97f4a7c15ULL);
}

static struct hd_ov_entry **
ov_slot(struct hd_shard *s, uint64_t h, int db, const void *key, size_t klen)
{
    struct hd_ov_entry **pp = &s->_buckets[h & (s->_nbuckets - 1)];

    for (; *pp; pp = &(*pp)->_chain) {
        struct hd_ov_entry *e = *pp;
        if (e->hash == h && e->db == db && e->klen == klen &&
            memcmp(e->data, key, klen) == 0)
            break;
    }
    return pp;
}

/* The overlay's table has a bucket an entry or more, and never fewer than
 * OV_MIN_BUCKETS; it grows with a burst of staged writes and shrinks after
 * it. */
#define OV_MIN_BUCKETS 1024

/* Rehashes the overlay into n buckets (a power of two). */
static void
ov_resize(struct hd_shard *s, size_t n)
{
    struct hd_ov_entry **b = hd_calloc(n * sizeof(*b));

    for (size_t i = 0; i < s->_nbuckets; i++) {
        struct hd_ov_entry *e = s->_buckets[i], *next;
        for (; e; e = next) {
            next = e->_chain;
            e->_chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->_buckets);
    s->_buckets = b;
    s->_nbuckets = n;
}

/* After a commit took its entries away: a table left at a burst's size
 * would cost a cache miss on every lookup and put for the rest of the run.
 * Down to an eighth to a quarter full. */
static void
ov_shrink(struct hd_shard *s)
{
    size_t n = s->_nbuckets;

    if (n <= OV_MIN_BUCKETS || s->_nentries >= n / 8)
        return;
    while (n > OV_MIN_BUCKETS && s->_nentries < n / 8)
        n /= 2;
    ov_resize(s, n);
}

static void
ov_unlink(struct hd_shard *s, struct hd_ov_entry *e)
{
    struct hd_ov_entry **pp = &s->_buckets[e->hash & (s->_nbuckets - 1)];

    for (; *pp; pp = &(*pp)->_chain) {
        if (*pp == e) {
            *pp = e->_chain;
            e->linked = 0;
            s->_nentries--;
            s->_ov_count[e->db]--;
            return;
        }
    }
}

/* ==== staging ==== */

static void *
batch_alloc(struct hd_batch *b, size_t size)
{
    unsigned char *p;

    size = (size + 7) & ~(size_t)7;
    if ((size_t)(b->end - b->free_at) < size) {
        size_t room = size > HD_BATCH_CHUNK / 4 ? size : HD_BATCH_CHUNK;
        struct hd_chunk *c = hd_alloc(sizeof(*c) + room);
        c->next = b->chunks;
        b->chunks = c;
        if (room == HD_BATCH_CHUNK) {
            b->free_at = c->data;
            b->end = c->data + room;
        } else {
            return c->data; /* a large value keeps the current chunk's room */
        }
    }
    p = b->free_at;
    b->free_at += size;
    return p;
}

static void on_committed(struct hd_msg *m, void *ctx);

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct hd_shard *s = arg;
    struct hd_batch *b = s->_staging;
    int64_t delay;
    size_t cap;

    if (b == NULL)
        return;
    delay = s->commit_delay_ms;
    cap = (size_t)s->commit_records;
    if (!b->urgent && s->outcome_delay_ms > delay) {
        /* only the dispatcher waits: fewer, larger commits cost less a
         * write (pages, syncs, wakes); max_in_flight bounds the batch */
        delay = s->outcome_delay_ms;
        cap = SIZE_MAX;
    }
    if (delay > 0 && b->nrecords < cap) {
        int64_t wait = b->staged_ms + delay - hd_now_ms();
        if (wait > 0) {
            struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
            event_add(s->_flush_ev, &tv);
            return;
        }
    }
    hd_store_flush(s);
}

/* Keeps key in low[ch] when it is the lowest queue key seen there. */
static void
qlow_note(unsigned char (*low)[HD_QUEUE_KEY_LEN], unsigned *set, int ch,
          const void *key)
{
    if (!(*set & (1u << ch)) || memcmp(key, low[ch], HD_QUEUE_KEY_LEN) < 0) {
        memcpy(low[ch], key, HD_QUEUE_KEY_LEN);
        *set |= 1u << ch;
    }
}

static struct hd_batch *
staging(struct hd_shard *s)
{
    if (s->_staging == NULL) {
        s->_staging = hd_calloc(sizeof(struct hd_batch));
        s->_staging->shard = s;
        s->_staging->msg.kind = HD_MSG_COMMITTED;
        s->_staging->msg.fn = on_committed;
        s->_staging->staged_ms = hd_now_ms();
        /* runs after the I/O callbacks already active in this loop turn (one
         * priority: libevent starves lower ones while I/O keeps coming) */
        if (s->_flush_ev)
            event_active(s->_flush_ev, EV_TIMEOUT, 0);
    }
    return s->_staging;
}

static void
stage(struct hd_shard *s, int db, const void *key, size_t klen, const void *val,
      size_t vlen, int del)
{
    struct hd_batch *b = staging(s);
    struct hd_ov_entry *e, **pp;

    HD_ASSERT(klen > 0 && klen <= 511); /* LMDB's default key limit */
    hd_cache_drop(s, db, key, klen);
    if (db == HD_DB_DELIVERIES && s->on_delivery_write)
        s->on_delivery_write(s, key, klen, s->on_delivery_write_arg);
    e = batch_alloc(b, sizeof(*e) + klen + vlen);
    e->_chain = e->_bnext = NULL;
    e->hash = ov_hash(db, key, klen);
    e->db = (unsigned char)db;
    e->del = (unsigned char)del;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, val, vlen);

    if (s->_nentries >= s->_nbuckets)
        ov_resize(s, s->_nbuckets ? s->_nbuckets * 2 : OV_MIN_BUCKETS);
    pp = ov_slot(s, e->hash, db, key, klen);
    if (*pp) {
        /* the older entry stays in its batch until that batch completes */
        struct hd_ov_entry *old = *pp;
        e->_chain = old->_chain;
        old->linked = 0;
        *pp = e;
    } else {
        e->_chain = NULL;
        *pp = e;
        s->_nentries++;
        s->_ov_count[db]++;
    }
    e->linked = 1;

    if (!del && db >= HD_DB_QUEUE && klen == HD_QUEUE_KEY_LEN)
        qlow_note(b->qlow, &b->qlow_set, db - HD_DB_QUEUE, key);

    if (b->tail)
        b->tail->_bnext = e;
    else
        b->head = e;
    b->tail = e;
    b->nrecords++;
}

void
hd_store_put(struct hd_shard *s, int db, const void *key, size_t klen,
             const void *val, size_t vlen)
{
    stage(s, db, key, klen, val, vlen, 0);
}

void
hd_store_del(struct hd_shard *s, int db, const void *key, size_t klen)
{
    stage(s, db, key, klen, NULL, 0, 1);
}

int
hd_store_get(struct hd_shard *s, int db, const void *key, size_t klen,
             MDB_val *val)
{
    MDB_val k;
    int rc;

    /* a db with nothing staged (the deliveries while a backlog drains)
     * skips the hash and the bucket's cache miss */
    if (s->_nbuckets && s->_ov_count[db]) {
        struct hd_ov_entry *e =
            *ov_slot(s, ov_hash(db, key, klen), db, key, klen);
        if (e != NULL) {
            if (e->del)
                return HD_DECLINED;
            val->mv_data = e->data + e->klen;
            val->mv_size = e->vlen;
            return HD_OK;
        }
    }
    k.mv_data = (void *)key;
    k.mv_size = klen;
    if (s->_rcur[db] != NULL ||
        mdb_cursor_open(s->_rtxn, s->dbi[db], &s->_rcur[db]) == 0) {
        rc = mdb_cursor_get(s->_rcur[db], &k, val, MDB_SET_KEY);
        if (rc == MDB_NOTFOUND && !s->_rcur_placed[db]) {
            /* a miss leaves an unplaced cursor unplaced, so every read
             * searched from the root: the outcome looked up for each
             * first send. Placed on the last key, a read past it (an id
             * newer than any stored) is answered on that page. */
            MDB_val lk, lv;
            mdb_cursor_get(s->_rcur[db], &lk, &lv, MDB_LAST);
            s->_rcur_placed[db] = 1;
        } else if (rc == 0) {
            s->_rcur_placed[db] = 1;
        }
    } else
        rc = mdb_get(s->_rtxn, s->dbi[db], &k, val);
    if (rc == MDB_NOTFOUND)
        return HD_DECLINED;
    if (rc != 0) {
        hd_log(HD_LOG_ERR, &s->log, 0, "mdb_get: %s", mdb_strerror(rc));
        return HD_ERROR;
    }
    return HD_OK;
}

static void
add_waiter(struct hd_batch *b, hd_commit_fn fn, void *arg)
{
    if (b->nwaiters == b->cwaiters) {
        b->cwaiters = b->cwaiters ? b->cwaiters * 2 : 16;
        b->waiters = hd_realloc(b->waiters, b->cwaiters * sizeof(*b->waiters));
    }
    b->waiters[b->nwaiters].fn = fn;
    b->waiters[b->nwaiters].arg = arg;
    b->nwaiters++;
}

void
hd_store_after_commit(struct hd_shard *s, hd_commit_fn fn, void *arg)
{
    struct hd_batch *b = s->_staging;

    if (b != NULL && !b->urgent) {
        /* a batch held for outcome_delay commits at the end of this loop
         * turn now that a client waits on it */
        b->urgent = 1;
        if (s->_flush_ev)
            event_active(s->_flush_ev, EV_TIMEOUT, 0);
    }
    hd_store_after_commit_lazy(s, fn, arg);
}

void
hd_store_after_commit_lazy(struct hd_shard *s, hd_commit_fn fn, void *arg)
{
    if (s->_staging != NULL)
        add_waiter(s->_staging, fn, arg);
    else if (s->_committing != NULL)
        add_waiter(s->_committing, fn, arg); /* it read those writes */
    else
        fn(arg, HD_COMMIT_OK);
}

size_t
hd_store_pending(struct hd_shard *s)
{
    return (s->_staging ? s->_staging->nrecords : 0) +
           (s->_committing ? s->_committing->nrecords : 0);
}

/* ==== the commit thread ==== */

static int
apply(struct hd_shard *s, struct hd_batch *b)
{
    /* a cursor per db: one left on a leaf page puts the next key of that
     * page without a search from the root, and a batch's keys mostly come
     * in order (ids and queue keys rise) */
    MDB_cursor *cur[HD_DB_MAX] = {NULL};
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    for (struct hd_ov_entry *e = b->head; e; e = e->_bnext) {
        MDB_cursor **c = &cur[e->db];

        if (*c == NULL && (rc = mdb_cursor_open(txn, s->dbi[e->db], c)) != 0)
            break;
        k.mv_data = e->data;
        k.mv_size = e->klen;
        if (e->del) {
            rc = mdb_cursor_get(*c, &k, &v, MDB_SET);
            if (rc == 0)
                rc = mdb_cursor_del(*c, 0);
            else if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            v.mv_data = e->data + e->klen;
            v.mv_size = e->vlen;
            rc = mdb_cursor_put(*c, &k, &v, 0);
        }
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        mdb_txn_abort(txn); /* closes the cursors */
        return rc;
    }
    /* with sync on, this returns after the data and meta pages are on disk;
     * it closes the cursors */
    return mdb_txn_commit(txn);
}

static void *
commit_thread(void *arg)
{
    struct hd_shard *s = arg;

    for (;;) {
        struct hd_batch *b;
        int64_t t0;

        pthread_mutex_lock(&s->_lock);
        while (s->_todo == NULL && !s->_stop)
            pthread_cond_wait(&s->_cond, &s->_lock);
        b = s->_todo;
        s->_todo = NULL;
        pthread_mutex_unlock(&s->_lock);
        if (b == NULL)
            break;
        t0 = hd_now_us();
        b->rc = apply(s, b);
        b->took_us = hd_now_us() - t0;
        hd_inbox_send(s->_inbox, &b->msg);
    }
    return NULL;
}

static void
hand_over(struct hd_shard *s, struct hd_batch *b)
{
    s->_committing = b;
    pthread_mutex_lock(&s->_lock);
    s->_todo = b;
    pthread_cond_signal(&s->_cond);
    pthread_mutex_unlock(&s->_lock);
}

static void
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

void
hd_store_flush(struct hd_shard *s)
{
    struct hd_batch *b = s->_staging;
    unsigned char seq[8];

    if (b == NULL || s->_committing != NULL)
        return;
    /* the id clock rides along so ids stay unique across restarts */
    put_be64(seq, s->_last_seq);
    stage(s, HD_DB_META, "seq", 3, seq, 8, 0);
    s->_staging = NULL;
    hand_over(s, b);
}

static void
free_batch(struct hd_shard *s, struct hd_batch *b)
{
    struct hd_chunk *c, *next;

    for (struct hd_ov_entry *e = b->head; e; e = e->_bnext)
        if (e->linked)
            ov_unlink(s, e);
    for (c = b->chunks; c; c = next) {
        next = c->next;
        free(c);
    }
    free(b->waiters);
    free(b);
}

/* Renews the reset read snapshot and the point-read cursors on it. */
static void
snapshot_renew(struct hd_shard *s)
{
    int rc = mdb_txn_renew(s->_rtxn);

    if (rc != 0) {
        hd_log(HD_LOG_ALERT, &s->log, 0, "mdb_txn_renew: %s", mdb_strerror(rc));
        return;
    }
    memset(s->_rcur_placed, 0, sizeof(s->_rcur_placed));
    for (int db = 0; db < HD_DB_MAX; db++)
        if (s->_rcur[db] != NULL &&
            mdb_cursor_renew(s->_rtxn, s->_rcur[db]) != 0) {
            mdb_cursor_close(s->_rcur[db]);
            s->_rcur[db] = NULL; /* opened again at the next read */
        }
}

static void
on_committed(struct hd_msg *m, void *ctx)
{
    struct hd_batch *b = (struct hd_batch *)m;
    struct hd_shard *s = b->shard;
    int status, rc;

    s->_committing = NULL;

    if (b->rc == MDB_MAP_FULL && s->map_size < s->max_map_size) {
        int64_t size = s->map_size * 2;
        if (size > s->max_map_size)
            size = s->max_map_size;
        /* no txn of this process may be live while the map moves */
        mdb_txn_reset(s->_rtxn);
        rc = mdb_env_set_mapsize(s->env, (size_t)size);
        snapshot_renew(s);
        if (rc == 0) {
            hd_log(HD_LOG_NOTICE, &s->log, 0,
                   "store map grown from %lld to %lld bytes",
                   (long long)s->map_size, (long long)size);
            s->map_size = size;
            hand_over(s, b);
            return;
        }
        hd_log(HD_LOG_ERR, &s->log, 0, "mdb_env_set_mapsize: %s",
               mdb_strerror(rc));
    }

    /* the snapshot must cover the batch before its overlay entries go */
    mdb_txn_reset(s->_rtxn);
    snapshot_renew(s);

    if (b->rc == 0) {
        status = HD_COMMIT_OK;
        for (int ch = 0; ch < HD_CH_MAX; ch++)
            if (b->qlow_set & (1u << ch))
                qlow_note(s->_qlow, &s->_qlow_set, ch, b->qlow[ch]);
        s->commits++;
        s->records_committed += b->nrecords;
        s->commit_us_total += b->took_us;
        if (b->took_us > s->commit_us_max)
            s->commit_us_max = b->took_us;
    } else {
        status = b->rc == MDB_MAP_FULL ? HD_COMMIT_FULL : HD_COMMIT_FAILED;
        hd_cache_clear(s); /* it may hold what was just lost */
        hd_log(HD_LOG_ERR, &s->log, 0,
               "commit of %zu records failed: %s; nothing of it was stored",
               b->nrecords, mdb_strerror(b->rc));
    }
    {
        struct hd_waiter *w = b->waiters;
        size_t n = b->nwaiters;
        b->waiters = NULL;
        free_batch(s, b);
        ov_shrink(s);
        for (size_t i = 0; i < n; i++)
            w[i].fn(w[i].arg, status);
        free(w);
    }
    if (s->on_durable)
        s->on_durable(s, s->on_durable_arg);
    if (s->_staging != NULL)
        on_flush(-1, 0, s);
}

int
hd_queue_low_take(struct hd_shard *s, int ch, unsigned char *key)
{
    unsigned bit = 1u << ch;

    if (!(s->_qlow_set & bit))
        return 0;
    memcpy(key, s->_qlow[ch], sizeof(s->_qlow[ch]));
    s->_qlow_set &= ~bit;
    return 1;
}

int
hd_store_commit_init(struct hd_shard *s)
{
    pthread_mutex_init(&s->_lock, NULL);
    pthread_cond_init(&s->_cond, NULL);
    s->_inbox = hd_inbox_create(s->base, s);
    if (s->_inbox == NULL)
        return HD_ERROR;
    s->_flush_ev = event_new(s->base, -1, 0, on_flush, s);
    if (pthread_create(&s->_thread, NULL, commit_thread, s) != 0)
        return HD_ERROR;
    return HD_OK;
}

int
hd_store_attach(struct hd_shard *s, struct event_base *base, int worker)
{
    s->base = base;
    s->worker = worker;
    s->log.worker = worker;
    return hd_store_commit_init(s);
}

int
hd_store_commit_wait(struct hd_shard *s)
{
    int64_t deadline = hd_now_ms() + 30000;

    while ((s->_staging || s->_committing) && hd_now_ms() < deadline) {
        if (s->_committing == NULL)
            hd_store_flush(s);
        hd_inbox_wait(s->_inbox, 100);
    }
    return s->_staging || s->_committing ? HD_ERROR : HD_OK;
}

void
hd_store_commit_stop(struct hd_shard *s)
{
    if (s->_inbox == NULL)
        return;
    hd_store_commit_wait(s);
    pthread_mutex_lock(&s->_lock);
    s->_stop = 1;
    pthread_cond_signal(&s->_cond);
    pthread_mutex_unlock(&s->_lock);
    pthread_join(s->_thread, NULL);
    event_free(s->_flush_ev);
    hd_inbox_destroy(s->_inbox);
    s->_inbox = NULL;
}

/* ==== range reads: the committed snapshot merged with the overlay ==== */

static int
kcmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int
ov_sort(const void *x, const void *y, void *reverse)
{
    const struct hd_ov_entry *a = *(struct hd_ov_entry *const *)x;
    const struct hd_ov_entry *b = *(struct hd_ov_entry *const *)y;
    int c = kcmp(a->data, a->klen, b->data, b->klen);
    return *(int *)reverse ? -c : c;
}

static void
kv_add(struct hd_kv **out, int *n, int *cap, const void *k, size_t klen,
       const void *v, size_t vlen)
{
    struct hd_kv *kv;

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *out = hd_realloc(*out, *cap * sizeof(**out));
    }
    kv = &(*out)[(*n)++];
    kv->key = hd_strndup(k, klen);
    kv->klen = klen;
    kv->val = hd_strndup(v, vlen);
    kv->vlen = vlen;
}

void
hd_kv_free(struct hd_kv *kv, int n)
{
    for (int i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].val);
    }
    free(kv);
}

int
hd_store_range(struct hd_shard *s, int db, const void *prefix, size_t plen,
               const void *after, size_t alen, int reverse, int limit,
               struct hd_kv **out)
{
    struct hd_ov_entry **ov = NULL;
    size_t nov = 0, cov = 0, oi = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int n = 0, cap = 0, rc;
    unsigned char seek[512];

    *out = NULL;
    /* the staged side: latest entry per key under the prefix (the walk
     * over the table is skipped when nothing of db is staged) */
    for (size_t b = 0; s->_ov_count[db] && b < s->_nbuckets; b++)
        for (struct hd_ov_entry *e = s->_buckets[b]; e; e = e->_chain) {
            if (e->db != db || e->klen < plen ||
                memcmp(e->data, prefix, plen) != 0)
                continue;
            if (after != NULL) {
                int c = kcmp(e->data, e->klen, after, alen);
                if (reverse ? c >= 0 : c <= 0)
                    continue;
            }
            if (nov == cov) {
                cov = cov ? cov * 2 : 16;
                ov = hd_realloc(ov, cov * sizeof(*ov));
            }
            ov[nov++] = e;
        }
    if (nov > 1)
        qsort_r(ov, nov, sizeof(*ov), ov_sort, &reverse);

    /* the committed side: position the cursor on the first candidate */
    if (mdb_cursor_open(s->_rtxn, s->dbi[db], &cur) != 0)
        cur = NULL;
    rc = MDB_NOTFOUND;
    if (cur != NULL) {
        if (!reverse) {
            k.mv_data = (void *)(after ? after : prefix);
            k.mv_size = after ? alen : plen;
            /* LMDB refuses an empty key: the whole db starts at FIRST */
            rc = mdb_cursor_get(cur, &k, &v,
                                k.mv_size ? MDB_SET_RANGE : MDB_FIRST);
            if (rc == 0 && after &&
                kcmp(k.mv_data, k.mv_size, after, alen) == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        } else {
            size_t slen;
            if (after) {
                memcpy(seek, after, alen);
                slen = alen;
            } else {
                /* just past every key with the prefix */
                HD_ASSERT(plen + 1 <= sizeof(seek));
                memcpy(seek, prefix, plen);
                seek[plen] = 0xff;
                slen = plen + 1;
            }
            k.mv_data = seek;
            k.mv_size = slen;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
            while (rc == 0 && kcmp(k.mv_data, k.mv_size, seek, slen) >= 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        }
    }

    while (n < limit) {
        int have_c = rc == 0 && k.mv_size >= plen &&
                     memcmp(k.mv_data, prefix, plen) == 0;
        int have_o = oi < nov;
        int c;

        if (!have_c && !have_o)
            break;
        if (have_c && have_o) {
            c = kcmp(k.mv_data, k.mv_size, ov[oi]->data, ov[oi]->klen);
            if (reverse)
                c = -c;
        } else {
            c = have_c ? -1 : 1;
        }
        if (c < 0) {
            kv_add(out, &n, &cap, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
            rc = mdb_cursor_get(cur, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
            continue;
        }
        /* staged wins over committed for the same key */
        if (!ov[oi]->del)
            kv_add(out, &n, &cap, ov[oi]->data, ov[oi]->klen,
                   ov[oi]->data + ov[oi]->klen, ov[oi]->vlen);
        if (c == 0)
            rc = mdb_cursor_get(cur, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
        oi++;
    }
    if (cur)
        mdb_cursor_close(cur);
    free(ov);
    return n;
}
