/*
 * t/unit/store/commit.c: one shard of the store on a real LMDB env in a
 * mkdtemp dir, driven from this thread's event_base like a worker would
 * (the shard's commit thread is real; no worker threads). Checks the
 * read-your-writes overlay, after-commit callbacks, persistence across a
 * reopen, map growth up to max_map_size and HD_COMMIT_FULL beyond it,
 * the id clock and queue key order.
 */
#include "store/commit.c"

#include <ftw.h>
#include <sys/stat.h>

#include "store/queue.h"
#include "tap.h"

#define MB (1024LL * 1024)

static char tdir[64];
static struct event_base *base;

/* ==== helpers ==== */

struct waiter {
    int fired, status, order;
    /* what the owner saw from inside the callback */
    struct hd_shard *s;
    const char *key;
    char got[64], snap[64];
};

static int fire_count;

static int snap_get(struct hd_shard *s, int db, const char *key, char *out,
                    size_t size);
static int get_str(struct hd_shard *s, int db, const char *key, char *out,
                   size_t size);

static void
on_commit(void *arg, int status)
{
    struct waiter *w = arg;

    w->fired++;
    w->status = status;
    w->order = ++fire_count;
    if (w->key != NULL) {
        get_str(w->s, HD_DB_USERS, w->key, w->got, sizeof(w->got));
        snap_get(w->s, HD_DB_USERS, w->key, w->snap, sizeof(w->snap));
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    /* only there so EVLOOP_ONCE returns now and then */
}

/* Runs the loop until *flag is set or ms pass; returns *flag. */
static int
run_until(int *flag, int ms)
{
    int64_t deadline = hd_now_ms() + ms;

    while (*flag == 0 && hd_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    return *flag;
}

/* hd_store_get, copied out as a string ("" when absent). */
static int
get_str(struct hd_shard *s, int db, const char *key, char *out, size_t size)
{
    MDB_val v;
    int rc = hd_store_get(s, db, key, strlen(key), &v);

    out[0] = '\0';
    if (rc == HD_OK)
        snprintf(out, size, "%.*s", (int)v.mv_size, (char *)v.mv_data);
    return rc;
}

/* The committed snapshot only, bypassing the overlay. */
static int
snap_get(struct hd_shard *s, int db, const char *key, char *out, size_t size)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(hd_store_snapshot(s), s->dbi[db], &k, &v);

    out[0] = '\0';
    if (rc == 0)
        snprintf(out, size, "%.*s", (int)v.mv_size, (char *)v.mv_data);
    return rc == 0 ? HD_OK : rc == MDB_NOTFOUND ? HD_DECLINED : HD_ERROR;
}

static void
put_str(struct hd_shard *s, const char *key, const char *val)
{
    hd_store_put(s, HD_DB_USERS, key, strlen(key), val, strlen(val));
}

static struct hd_shard *
open_store(const char *name, int64_t map_size, int64_t max_map_size)
{
    char path[128], err[512];
    struct hd_store_conf sc;
    struct hd_shard *s;
    int nshards = 0;

    snprintf(path, sizeof(path), "%s/%s", tdir, name);
    memset(&sc, 0, sizeof(sc));
    sc.path = path;
    sc.sync = 1;
    sc.map_size = map_size;
    sc.max_map_size = max_map_size;
    sc.commit_records = 256;
    sc.commit_delay_ms = 0;

    if (hd_store_prepare(path, 1, 1, &nshards, err, sizeof(err)) != HD_OK) {
        diag("hd_store_prepare: %s", err);
        return NULL;
    }
    s = hd_store_open(&sc, 0, nshards, err, sizeof(err));
    if (s == NULL) {
        diag("hd_store_open: %s", err);
        return NULL;
    }
    if (hd_store_attach(s, base, 0) != HD_OK) {
        diag("hd_store_attach failed");
        hd_store_close(s);
        return NULL;
    }
    return s;
}

/* A 4000-byte value that names its record, so mix-ups show. */
#define BIG 4000

static void
big_value(char *buf, const char *tag, int i)
{
    int n = snprintf(buf, BIG, "%s-%d:", tag, i);
    for (int j = n; j < BIG; j++)
        buf[j] = (char)('a' + (i + j) % 26);
}

static void
put_big(struct hd_shard *s, const char *tag, int i)
{
    char key[32], val[BIG];

    snprintf(key, sizeof(key), "%s-%05d", tag, i);
    big_value(val, tag, i);
    hd_store_put(s, HD_DB_NOTIFICATIONS, key, strlen(key), val, BIG);
}

/* HD_OK if the record is there with the right bytes, else its rc or
 * HD_ERROR for wrong bytes */
static int
check_big(struct hd_shard *s, const char *tag, int i)
{
    char key[32], val[BIG];
    MDB_val v;
    int rc;

    snprintf(key, sizeof(key), "%s-%05d", tag, i);
    rc = hd_store_get(s, HD_DB_NOTIFICATIONS, key, strlen(key), &v);
    if (rc != HD_OK)
        return rc;
    big_value(val, tag, i);
    return v.mv_size == BIG && memcmp(v.mv_data, val, BIG) == 0 ? HD_OK
                                                                : HD_ERROR;
}

/* ==== overlay, callbacks, delete, overwrite ==== */

static struct hd_shard *shard; /* "basic", shared by the next tests */

static void
test_put_get_commit(void)
{
    struct waiter w0 = {0}, w = {0};
    char buf[64];

    shard = open_store("basic", 1 * MB, 64 * MB);
    if (!ok(shard != NULL, "store opened and attached"))
        exit(1);

    hd_store_after_commit(shard, on_commit, &w0);
    ok(w0.fired == 1 && w0.status == HD_COMMIT_OK,
       "after_commit with nothing pending runs at once with HD_COMMIT_OK");

    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "get of a missing key is HD_DECLINED");
    put_str(shard, "u1", "v1");
    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_OK,
           "get right after put finds it");
    is_str(buf, "v1", "  with the staged value (overlay)");
    is_int(snap_get(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "  and it is not in LMDB yet");
    is_int(get_str(shard, HD_DB_DEVICES, "u1", buf, sizeof(buf)), HD_DECLINED,
           "the same key in another db is another record");
    is_int(hd_store_pending(shard), 1, "one record pending");

    hd_store_after_commit(shard, on_commit, &w);
    is_int(w.fired, 0, "after_commit does not run before the commit");
    ok(run_until(&w.fired, 10000), "after_commit runs once the loop turns");
    is_int(w.fired, 1, "  exactly once");
    is_int(w.status, HD_COMMIT_OK, "  with HD_COMMIT_OK");
    is_int(hd_store_pending(shard), 0, "nothing pending after the commit");
    is_int(shard->_nentries, 0, "the overlay is empty after the commit");
    is_int(snap_get(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_OK,
           "the value is in the LMDB snapshot");
    is_str(buf, "v1", "  with the value put");
    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_OK,
           "get still finds it, now from LMDB");
    is_str(buf, "v1", "  same value");
    ok(shard->commits >= 1, "the commit was counted");
}

static void
test_delete(void)
{
    struct waiter w = {0}, w2 = {0};
    char buf[64];

    hd_store_del(shard, HD_DB_USERS, "u1", 2);
    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "get right after del is HD_DECLINED");
    is_int(snap_get(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_OK,
           "  while LMDB still has it");
    hd_store_after_commit(shard, on_commit, &w);
    ok(run_until(&w.fired, 10000) && w.status == HD_COMMIT_OK,
       "the delete commits");
    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "get after the delete committed is HD_DECLINED");
    is_int(snap_get(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "  and LMDB no longer has it");

    hd_store_del(shard, HD_DB_USERS, "never-written", 13);
    hd_store_after_commit(shard, on_commit, &w2);
    ok(run_until(&w2.fired, 10000) && w2.status == HD_COMMIT_OK,
       "deleting a key that does not exist commits fine");

    put_str(shard, "u2", "first");
    hd_store_del(shard, HD_DB_USERS, "u2", 2);
    is_int(get_str(shard, HD_DB_USERS, "u2", buf, sizeof(buf)), HD_DECLINED,
           "put then del in one batch: gone at once");
    put_str(shard, "u2", "again");
    is_int(get_str(shard, HD_DB_USERS, "u2", buf, sizeof(buf)), HD_OK,
           "put, del, put in one batch: back");
    is_str(buf, "again", "  with the last value");
    ok(hd_store_commit_wait(shard) == HD_OK, "hd_store_commit_wait");
    snap_get(shard, HD_DB_USERS, "u2", buf, sizeof(buf));
    is_str(buf, "again", "LMDB applied the batch in order");
}

static void
test_overwrite_two_batches(void)
{
    struct waiter w1 = {0}, w2 = {0};
    char buf[64];

    put_str(shard, "k", "a");
    hd_store_flush(shard); /* batch 1 goes to the commit thread */
    ok(shard->_committing != NULL && shard->_staging == NULL,
       "flush hands the batch to the commit thread");
    w1.s = shard;
    w1.key = "k";
    hd_store_after_commit(shard, on_commit, &w1); /* waits for batch 1 */
    put_str(shard, "k", "b");                     /* batch 2 */
    w2.s = shard;
    w2.key = "k";
    hd_store_after_commit(shard, on_commit, &w2);
    is_int(get_str(shard, HD_DB_USERS, "k", buf, sizeof(buf)), HD_OK,
           "get during two batches");
    is_str(buf, "b", "  sees the newest value");

    ok(run_until(&w2.fired, 10000), "both batches commit");
    ok(w1.fired == 1 && w1.status == HD_COMMIT_OK, "batch 1 waiter: OK");
    ok(w2.fired == 1 && w2.status == HD_COMMIT_OK, "batch 2 waiter: OK");
    ok(w1.order < w2.order, "waiters run in commit order");
    is_str(w1.snap, "a", "after batch 1, LMDB has the first value");
    is_str(w1.got, "b", "  but get still sees the second (overlay kept)");
    is_str(w2.snap, "b", "after batch 2, LMDB has the second value");
    is_int(get_str(shard, HD_DB_USERS, "k", buf, sizeof(buf)), HD_OK,
           "get after both");
    is_str(buf, "b", "  keeps the last value");
    is_int(shard->_nentries, 0, "the overlay is empty again");
}

static void
test_many_keys(void)
{
    char key[32], val[32], buf[64];
    int bad = 0, bad_after = 0;

    /* more keys than the overlay's first 1024 buckets: it grows */
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        snprintf(val, sizeof(val), "value-%d", i);
        put_str(shard, key, val);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        snprintf(val, sizeof(val), "value-%d", i);
        if (get_str(shard, HD_DB_USERS, key, buf, sizeof(buf)) != HD_OK ||
            strcmp(buf, val) != 0)
            bad++;
    }
    is_int(bad, 0, "3000 staged keys readable from the overlay");
    ok(hd_store_commit_wait(shard) == HD_OK, "3000 keys commit");
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        snprintf(val, sizeof(val), "value-%d", i);
        if (snap_get(shard, HD_DB_USERS, key, buf, sizeof(buf)) != HD_OK ||
            strcmp(buf, val) != 0)
            bad_after++;
    }
    is_int(bad_after, 0, "3000 keys in LMDB after the commit");
}

/* The overlay's table grows with a burst and shrinks after it, keeping
 * the entries still staged. */
static void
test_overlay_shrinks(void)
{
    struct waiter w = {0};
    char key[32], val[32], buf[64];
    int bad = 0;

    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "burst-%d", i);
        put_str(shard, key, "x");
    }
    ok(shard->_nbuckets >= 16384, "20000 staged keys: %zu buckets",
       shard->_nbuckets);
    hd_store_flush(shard); /* the burst goes to the commit thread */
    hd_store_after_commit(shard, on_commit, &w); /* runs after the burst */
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "after-%d", i);
        snprintf(val, sizeof(val), "late-%d", i);
        put_str(shard, key, val);
    }
    ok(run_until(&w.fired, 20000) && w.status == HD_COMMIT_OK,
       "the burst commits");
    /* and the id clock's record, once the 300 went to the commit thread */
    ok(shard->_nentries == 300 || shard->_nentries == 301,
       "the 300 entries staged after it are in the overlay (%zu)",
       shard->_nentries);
    ok(shard->_nbuckets >= 1024 && shard->_nbuckets <= 4096,
       "the table shrank with them: %zu buckets", shard->_nbuckets);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "after-%d", i);
        snprintf(val, sizeof(val), "late-%d", i);
        if (get_str(shard, HD_DB_USERS, key, buf, sizeof(buf)) != HD_OK ||
            strcmp(buf, val) != 0)
            bad++;
    }
    is_int(bad, 0, "each staged entry still found in the smaller table");
    is_int(get_str(shard, HD_DB_USERS, "burst-19999", buf, sizeof(buf)), HD_OK,
           "the burst's last key, now from LMDB");
    ok(hd_store_commit_wait(shard) == HD_OK, "the rest commits");
    is_int((int)shard->_nbuckets, 1024, "an empty overlay: back to 1024");
}

static void
test_json_records(void)
{
    json_t *obj = json_pack("{s:s, s:i}", "id", "u9", "n", 42), *back;

    hd_store_put_json(shard, HD_DB_USERS, "u9", obj);
    json_decref(obj);
    back = hd_store_get_json(shard, HD_DB_USERS, "u9");
    ok(back != NULL && json_integer_value(json_object_get(back, "n")) == 42,
       "put_json then get_json (overlay)");
    json_decref(back);
    hd_store_commit_wait(shard);
    back = hd_store_get_json(shard, HD_DB_USERS, "u9");
    ok(back != NULL &&
           strcmp(json_string_value(json_object_get(back, "id")), "u9") == 0,
       "get_json after the commit");
    json_decref(back);
    ok(hd_store_get_json(shard, HD_DB_USERS, "nobody") == NULL,
       "get_json of a missing key is NULL");

    /* the decoded-record cache keeps users, not a delivery or a dead
     * letter: those are written once and would only fill it */
    back = hd_cache_get(shard, HD_DB_USERS, "u9", 2);
    ok(back != NULL, "a user read is cached");
    json_decref(back);
    obj = json_pack("{s:s, s:s}", "id", "d9", "status", "delivered");
    hd_store_put_json(shard, HD_DB_DELIVERIES, "d9", obj);
    hd_store_put_json(shard, HD_DB_DEAD_LETTERS, "d9", obj);
    json_decref(obj);
    back = hd_store_get_json(shard, HD_DB_DELIVERIES, "d9");
    ok(back != NULL &&
           strcmp(json_string_value(json_object_get(back, "status")),
                  "delivered") == 0,
       "a delivery put_json then get_json (overlay)");
    json_decref(back);
    ok(hd_cache_get(shard, HD_DB_DELIVERIES, "d9", 2) == NULL &&
           hd_cache_get(shard, HD_DB_DEAD_LETTERS, "d9", 2) == NULL,
       "deliveries and dead letters are not cached");
}

static void
test_reopen(void)
{
    char buf[64], key[32], val[32], err[512];
    uint64_t last;
    int bad = 0;

    last = hd_store_next_seq(shard);
    put_str(shard, "late", "staged before close");
    hd_store_close(shard); /* commits what is staged */
    shard = open_store("basic", 1 * MB, 64 * MB);
    if (!ok(shard != NULL, "store reopened"))
        exit(1);

    is_int(get_str(shard, HD_DB_USERS, "k", buf, sizeof(buf)), HD_OK,
           "overwritten key persisted");
    is_str(buf, "b", "  with its last value");
    is_int(get_str(shard, HD_DB_USERS, "u1", buf, sizeof(buf)), HD_DECLINED,
           "deleted key stays deleted");
    is_int(get_str(shard, HD_DB_USERS, "late", buf, sizeof(buf)), HD_OK,
           "a write staged just before close persisted");
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        snprintf(val, sizeof(val), "value-%d", i);
        if (get_str(shard, HD_DB_USERS, key, buf, sizeof(buf)) != HD_OK ||
            strcmp(buf, val) != 0)
            bad++;
    }
    is_int(bad, 0, "3000 keys persisted");
    ok(hd_store_next_seq(shard) > last,
       "the id clock continues past the last id before close");

    {
        struct hd_store_conf sc = {0};
        struct hd_shard *other;
        char path[128];
        int n = 0;

        snprintf(path, sizeof(path), "%s/basic", tdir);
        is_int(hd_store_prepare(path, 4, 1, &n, err, sizeof(err)), HD_ERROR,
               "prepare refuses another shard count");
        ok(strstr(err, "has 1 shards") != NULL, "  saying so: %s", err);
        is_int(hd_store_prepare(path, 0, 8, &n, err, sizeof(err)), HD_OK,
               "prepare with auto shards");
        is_int(n, 1, "  reads the store's count");
        sc.path = path;
        sc.sync = 1;
        sc.map_size = 1 * MB;
        sc.max_map_size = 64 * MB;
        sc.commit_records = 256;
        other = hd_store_open(&sc, 0, 2, err, sizeof(err));
        ok(other == NULL, "shard 0 opened as one of 2 shards is refused");
        ok(strstr(err, "belongs to a store of another shard count") != NULL,
           "  saying so: %s", err);
        hd_store_close(other);
    }
    hd_store_close(shard);
    shard = NULL;
}

/* ==== map growth and HD_COMMIT_FULL ==== */

static void
test_map_growth(void)
{
    struct hd_shard *s = open_store("grow", 1 * MB, 64 * MB);
    int fails = 0, bad = 0, notok = 0;

    if (!ok(s != NULL, "store with map_size 1m, max_map_size 64m"))
        return;
    /* 5 batches of 256 records of 4000 bytes: ~5 MB */
    for (int batch = 0; batch < 5; batch++) {
        struct waiter w = {0};
        for (int i = 0; i < 256; i++)
            put_big(s, "grow", batch * 256 + i);
        hd_store_after_commit(s, on_commit, &w);
        if (!run_until(&w.fired, 20000))
            fails++;
        else if (w.status != HD_COMMIT_OK)
            notok++;
    }
    is_int(fails, 0, "5 batches of 1 MB commit");
    is_int(notok, 0, "  all with HD_COMMIT_OK");
    ok(s->map_size > 1 * MB && s->map_size <= 64 * MB,
       "the map grew (now %lld bytes)", (long long)s->map_size);
    for (int i = 0; i < 5 * 256; i++)
        if (check_big(s, "grow", i) != HD_OK)
            bad++;
    is_int(bad, 0, "all 1280 records readable with their bytes");
    hd_store_close(s);

    s = open_store("grow", 1 * MB, 64 * MB);
    if (!ok(s != NULL, "reopen a grown store with map_size 1m"))
        return;
    ok(s->map_size > 1 * MB, "  the map is the file's size");
    bad = 0;
    for (int i = 0; i < 5 * 256; i++)
        if (check_big(s, "grow", i) != HD_OK)
            bad++;
    is_int(bad, 0, "  all 1280 records readable after reopen");
    hd_store_close(s);
}

static void
test_map_full(void)
{
    struct hd_shard *s = open_store("full", 1 * MB, 1 * MB);
    struct waiter w0 = {0}, w = {0}, w2 = {0};
    char key[32], val[32], buf[64];
    int bad = 0, present = 0;

    if (!ok(s != NULL, "store with map_size = max_map_size = 1m"))
        return;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "small-%d", i);
        snprintf(val, sizeof(val), "kept-%d", i);
        put_str(s, key, val);
    }
    hd_store_after_commit(s, on_commit, &w0);
    ok(run_until(&w0.fired, 10000) && w0.status == HD_COMMIT_OK,
       "10 small records commit");

    for (int i = 0; i < 512; i++) /* 2 MB */
        put_big(s, "full", i);
    put_str(s, "small-0", "overwritten in the failing batch");
    hd_store_after_commit(s, on_commit, &w);
    ok(run_until(&w.fired, 20000), "the 2 MB batch completes");
    is_int(w.status, HD_COMMIT_FULL, "  with HD_COMMIT_FULL to the waiter");
    is_int(s->map_size, 1 * MB, "  the map did not grow past max_map_size");
    is_int(hd_store_pending(s), 0, "  nothing left pending");

    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "small-%d", i);
        snprintf(val, sizeof(val), "kept-%d", i);
        if (get_str(s, HD_DB_USERS, key, buf, sizeof(buf)) != HD_OK ||
            strcmp(buf, val) != 0)
            bad++;
    }
    is_int(bad, 0, "records committed before are still readable, unchanged");
    for (int i = 0; i < 512; i++)
        if (check_big(s, "full", i) != HD_DECLINED)
            present++;
    is_int(present, 0, "none of the failed batch is visible");

    put_str(s, "after-full", "fits");
    hd_store_after_commit(s, on_commit, &w2);
    ok(run_until(&w2.fired, 10000) && w2.status == HD_COMMIT_OK,
       "a small write after HD_COMMIT_FULL commits");
    hd_store_close(s);

    s = open_store("full", 1 * MB, 1 * MB);
    ok(s != NULL &&
           get_str(s, HD_DB_USERS, "small-9", buf, sizeof(buf)) == HD_OK &&
           strcmp(buf, "kept-9") == 0 &&
           get_str(s, HD_DB_USERS, "after-full", buf, sizeof(buf)) == HD_OK,
       "after reopen: the earlier and later records are there");
    hd_store_close(s);
}

/* ==== ids and queue keys ==== */

static void
test_ids(void)
{
    struct hd_shard *s = open_store("ids", 1 * MB, 64 * MB);
    struct hd_shard fake;
    uint64_t prev, seq;
    int64_t now = hd_now_ms();
    char id[24], *end;
    int bad = 0;

    if (!ok(s != NULL, "store for ids"))
        return;
    prev = hd_store_next_seq(s);
    ok((int64_t)(prev >> 16) >= now - 1000 &&
           (int64_t)(prev >> 16) <= now + 1000,
       "seq is ms << 16 | counter");
    for (int i = 0; i < 100000; i++) {
        seq = hd_store_next_seq(s);
        if (seq <= prev)
            bad++;
        prev = seq;
    }
    is_int(bad, 0, "100000 seqs strictly increasing");

    /* as if the wall clock stepped back an hour since the last id */
    s->_last_seq = (uint64_t)(now + 3600 * 1000) << 16;
    seq = hd_store_next_seq(s);
    is_u64(seq, ((uint64_t)(now + 3600 * 1000) << 16) + 1,
           "seq keeps increasing when the wall clock is behind");

    seq = 0x0123456789abcdefULL;
    hd_store_make_id(s, seq, id);
    is_str(id, "n000123456789abcdef", "id is n + 2 hex shard + 16 hex seq");
    is_int(hd_store_id_shard(id, strlen(id)), 0, "id_shard of shard 0's id");
    ok(strtoull(id + 3, &end, 16) == seq && *end == '\0',
       "  the seq reads back from the id");

    memset(&fake, 0, sizeof(fake));
    for (int shard_id = 0; shard_id < HD_MAX_SHARDS; shard_id++) {
        fake.id = shard_id;
        hd_store_make_id(&fake, seq + (uint64_t)shard_id, id);
        if (strlen(id) != 19 || hd_store_id_shard(id, strlen(id)) != shard_id)
            bad++;
    }
    is_int(bad, 0, "make_id / id_shard round trip for shards 0..255");
    fake.id = 200;
    hd_store_make_id(&fake, seq, id);
    is_str(id, "nc80123456789abcdef", "shard 200 is c8");
    is_int(hd_store_id_shard("nc80123456789abcdef-3", 21), 200,
           "an id with a \"-suffix\" names its shard");
    is_int(hd_store_id_shard(id, 18), -1, "a short id is refused");
    is_int(hd_store_id_shard("xc80123456789abcdef", 19), -1,
           "an id not starting with n is refused");
    is_int(hd_store_id_shard("nC80123456789abcdef", 19), -1,
           "uppercase hex is refused");
    is_int(hd_store_id_shard("nc80123456789abcdeg", 19), -1,
           "a non-hex seq is refused");
    is_int(hd_store_id_shard("nc80123456789abcdefx", 20), -1,
           "junk after the id is refused");
    hd_store_close(s);
}

static int
cmp_tuple(int64_t d1, uint64_t s1, int64_t d2, uint64_t s2)
{
    if (d1 != d2)
        return d1 < d2 ? -1 : 1;
    if (s1 != s2)
        return s1 < s2 ? -1 : 1;
    return 0;
}

static int
sign(int v)
{
    return v < 0 ? -1 : v > 0 ? 1 : 0;
}

static void
test_queue_keys(void)
{
    static const int64_t dues[] = {
        0, 1, 255, 256, 65535, 65536, 1795419600000LL, 1LL << 40, INT64_MAX};
    static const uint64_t seqs[] = {0,          1,          255,       256,
                                    1ULL << 32, 1ULL << 63, UINT64_MAX};
    unsigned char a[HD_QUEUE_KEY_LEN], b[HD_QUEUE_KEY_LEN];
    size_t nd = HD_NELEMS(dues), ns = HD_NELEMS(seqs);
    int misorder = 0, bad_parse = 0;

    for (size_t i = 0; i < nd * ns; i++) {
        int64_t d;
        uint64_t q;

        hd_queue_key(a, dues[i / ns], seqs[i % ns]);
        hd_queue_key_parse(a, &d, &q);
        if (d != dues[i / ns] || q != seqs[i % ns])
            bad_parse++;
        for (size_t j = 0; j < nd * ns; j++) {
            hd_queue_key(b, dues[j / ns], seqs[j % ns]);
            if (sign(memcmp(a, b, sizeof(a))) !=
                cmp_tuple(dues[i / ns], seqs[i % ns], dues[j / ns],
                          seqs[j % ns]))
                misorder++;
        }
    }
    is_int(misorder, 0, "memcmp order of queue keys is (due, seq) order");
    is_int(bad_parse, 0, "hd_queue_key_parse round trip");

    hd_queue_key(a, 0x0102030405060708LL, 0x1112131415161718ULL);
    ok(a[0] == 0x01 && a[7] == 0x08 && a[8] == 0x11 && a[15] == 0x18,
       "due then seq, both big-endian");
    hd_queue_key(a, -5, 7);
    hd_queue_key(b, 0, 7);
    ok(memcmp(a, b, sizeof(a)) == 0, "a negative due is due now (0)");
}

static void
test_queue_in_store(void)
{
    struct hd_shard *s = open_store("queue", 1 * MB, 64 * MB);
    static const int64_t dues[] = {5000, 1000, 3000, 1000, 2000};
    static const char *ids[] = {"d-e", "d-a", "d-d", "d-b", "d-c"};
    MDB_cursor *cur;
    MDB_val k, v;
    char seen[64] = "";
    int n = 0, sorted = 1;
    int64_t last_due = -1;

    if (!ok(s != NULL, "store for queues"))
        return;
    for (int i = 0; i < 5; i++)
        hd_queue_push(s, HD_CH_SMS, dues[i], (uint64_t)(10 + (i == 3)), ids[i],
                      NULL, 0);
    hd_queue_push(s, HD_CH_PUSH, 1, 1, "other-channel", NULL, 0);
    hd_queue_remove(s, HD_CH_SMS, 3000, 10); /* d-d */
    ok(hd_store_commit_wait(s) == HD_OK, "queue entries commit");

    mdb_cursor_open(hd_store_snapshot(s), s->dbi[HD_DB_QUEUE + HD_CH_SMS],
                    &cur);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int64_t due;
        uint64_t seq;

        if (k.mv_size != HD_QUEUE_KEY_LEN)
            sorted = 0;
        hd_queue_key_parse(k.mv_data, &due, &seq);
        if (due < last_due)
            sorted = 0;
        last_due = due;
        snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s%.*s",
                 n++ ? "," : "", (int)v.mv_size, (char *)v.mv_data);
    }
    mdb_cursor_close(cur);
    ok(sorted, "an LMDB cursor walks the queue in due order");
    is_str(seen, "d-a,d-b,d-c,d-e",
           "due order, seq breaks ties, removed entry gone, one channel");
    hd_store_close(s);
}

/* a push or web entry carries a small content after its id; a commit
 * reports the lowest key put on each queue, once */
static void
test_queue_content_and_low(void)
{
    struct hd_shard *s = open_store("qcontent", 1 * MB, 64 * MB);
    static const char content[] = "{\"title\":\"t\",\"body\":\"b\"}";
    static char big[HD_QUEUE_CONTENT_MAX + 2];
    unsigned char key[HD_QUEUE_KEY_LEN], want[HD_QUEUE_KEY_LEN];
    char id[HD_QUEUE_ID_MAX];
    const char *ctext;
    size_t clen;
    MDB_val v;

    if (!ok(s != NULL, "store for queue contents"))
        return;
    memset(big, 'x', sizeof(big) - 1);
    hd_queue_push(s, HD_CH_WEB, 9000, 3, "d-small", content,
                  sizeof(content) - 1);
    hd_queue_push(s, HD_CH_WEB, 8000, 4, "d-big", big, strlen(big));
    hd_queue_push(s, HD_CH_WEB, 9000, 2, "d-none", NULL, 0);
    hd_queue_push(s, HD_CH_EMAIL, 9000, 5, "d-mail", content,
                  sizeof(content) - 1);
    ok(hd_queue_low_take(s, HD_CH_WEB, key) == 0, "nothing reported before "
                                                  "the commit");
    ok(hd_store_commit_wait(s) == HD_OK, "entries commit");

    hd_queue_key(key, 9000, 3);
    ok(hd_store_get(s, HD_DB_QUEUE + HD_CH_WEB, key, sizeof(key), &v) == HD_OK,
       "small entry stored");
    ok(hd_queue_entry(&v, id, &ctext, &clen) == HD_OK &&
           strcmp(id, "d-small") == 0,
       "its id");
    ok(ctext && clen == sizeof(content) - 1 &&
           memcmp(ctext, content, clen) == 0,
       "its content after the NUL");
    hd_queue_key(key, 8000, 4);
    hd_store_get(s, HD_DB_QUEUE + HD_CH_WEB, key, sizeof(key), &v);
    ok(hd_queue_entry(&v, id, &ctext, &clen) == HD_OK && ctext == NULL &&
           v.mv_size == 5,
       "a content over the limit is not carried");
    hd_queue_key(key, 9000, 2);
    hd_store_get(s, HD_DB_QUEUE + HD_CH_WEB, key, sizeof(key), &v);
    ok(hd_queue_entry(&v, id, &ctext, &clen) == HD_OK && ctext == NULL,
       "no content given, none carried");
    hd_queue_key(key, 9000, 5);
    hd_store_get(s, HD_DB_QUEUE + HD_CH_EMAIL, key, sizeof(key), &v);
    ok(hd_queue_entry(&v, id, &ctext, &clen) == HD_OK &&
           strcmp(id, "d-mail") == 0 && ctext == NULL,
       "an email entry does not carry it");
    v.mv_data = big;
    v.mv_size = HD_QUEUE_ID_MAX;
    ok(hd_queue_entry(&v, id, &ctext, &clen) == HD_ERROR,
       "an id too long to be one is refused");

    hd_queue_key(want, 8000, 4);
    ok(hd_queue_low_take(s, HD_CH_WEB, key) == 1 &&
           memcmp(key, want, sizeof(key)) == 0,
       "the commit reports the lowest key put");
    ok(hd_queue_low_take(s, HD_CH_WEB, key) == 0, "once");
    ok(hd_queue_low_take(s, HD_CH_SMS, key) == 0, "not for other queues");
    hd_queue_remove(s, HD_CH_WEB, 9000, 3);
    hd_store_commit_wait(s);
    ok(hd_queue_low_take(s, HD_CH_WEB, key) == 0, "a removal reports none");
    hd_store_close(s);
}

static const struct tap_case cases[] = {
    {"put, get, after_commit", test_put_get_commit},
    {"delete", test_delete},
    {"overwrite in two consecutive batches", test_overwrite_two_batches},
    {"many keys in one batch", test_many_keys},
    {"the overlay shrinks after a burst", test_overlay_shrinks},
    {"JSON records", test_json_records},
    {"close and reopen", test_reopen},
    {"map growth", test_map_growth},
    {"map full", test_map_full},
    {"ids", test_ids},
    {"queue keys", test_queue_keys},
    {"queues in the store", test_queue_in_store},
    {"queue contents and lowest key", test_queue_content_and_low},
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int
main(void)
{
    struct timeval tv = {0, 50 * 1000};
    struct event *tick;
    char log[128];
    int rc;

    snprintf(tdir, sizeof(tdir), "/tmp/herald-unit-store-XXXXXX");
    if (mkdtemp(tdir) == NULL) {
        printf("1..0 # SKIP mkdtemp failed\n");
        return 1;
    }
    /* the store logs commits, growth and failures: keep them off stdout */
    snprintf(log, sizeof(log), "%s/error.log", tdir);
    hd_log_open(log, HD_LOG_INFO);

    base = event_base_new();
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &tv);

    tap_run(cases, HD_NELEMS(cases));
    rc = done_testing();

    event_free(tick);
    event_base_free(base);
    hd_log_close();
    if (getenv("HERALD_TEST_LEAVE") == NULL)
        nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    else
        diag("left %s", tdir);
    return rc;
}
