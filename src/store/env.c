/*
 * env.c: the store on disk. Main thread prepares the directory and its
 * shard count; each shard's LMDB environment is then owned by one worker
 * (reads, id clock) and its commit thread (writes, commit.c).
 *
 * Layout: PATH/meta (text: format, shards), PATH/shard-NNN/{data,lock}.mdb.
 * Databases in every shard, keys and values (values are records: one
 * format byte, HD_STORE_FORMAT = 1, then compact JSON, see record.c):
 *   meta           "shard", "nshards", "format", "seq" (u64 id clock, BE)
 *   users          user_id -> {id, email, phone, locale, timezone, ...}
 *   devices        user_id "\0" device_id -> {id, platform, token, app, ...}
 *   tokens         platform ":" sha256hex(token) -> user_id "\0" device_id
 *   preferences    user_id -> {channels, categories}
 *   notifications  notification id -> {id, user_id, content, deliveries}
 *   deliveries     delivery id -> {id, channel, to, status, timeline, ...}
 *   idempotency    user_id "\0" key_id "\0" key -> {id, expires_at, answer}
 *   user_notifications  user_id "\0" notification id -> "" (newest last)
 *   dead_letters   delivery id -> {id, channel, reason, last_error, ...}
 *   templates      name -> {def, updated_at} (API templates; shard 0)
 *   events         seq (u64 BE) -> {at (ms), type, delivery_id, ...} (feed;
 *                  send/events.c fills in what it leaves out)
 *   stats          "all" | "category:NAME" | "template:NAME" -> counters
 *   outcomes       delivery id -> {status, attempts, timeline, ...}
 *                  (what sending changed since: send/delivery.h)
 *   queue.CHANNEL  due_ms (u64 BE) + seq (u64 BE) -> delivery id (raw)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/herald.h"
#include "core/time.h"
#include "store/store.h"

static const char *db_names[HD_DB_MAX] = {
    "meta",         "users",       "devices",
    "tokens",       "preferences", "notifications",
    "deliveries",   "idempotency", "user_notifications",
    "dead_letters", "templates",   "events",
    "stats",        "outcomes",    "queue.push",
    "queue.sms",    "queue.email", "queue.web",
};

static int
mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len >= sizeof(buf))
        return HD_ERROR;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return HD_ERROR;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return HD_ERROR;
    return HD_OK;
}

int
hd_store_prepare(const char *path, int wanted, int dflt, int *nshards,
                 char *err, size_t errlen)
{
    char file[4096], tmp[4100];
    FILE *f;
    int format = 0, have = 0;

    if (mkdir_p(path, 0700) != HD_OK) {
        snprintf(err, errlen, "cannot create store directory \"%s\": %s", path,
                 strerror(errno));
        return HD_ERROR;
    }
    snprintf(file, sizeof(file), "%s/meta", path);
    f = fopen(file, "r");
    if (f != NULL) {
        if (fscanf(f, "herald store\nformat %d\nshards %d", &format, &have) !=
                2 ||
            have < 1 || have > HD_MAX_SHARDS) {
            fclose(f);
            snprintf(err, errlen, "store meta file \"%s\" is corrupt", file);
            return HD_ERROR;
        }
        fclose(f);
        if (format != HD_STORE_FORMAT) {
            snprintf(err, errlen,
                     "store \"%s\" has format %d, this herald reads %d", path,
                     format, HD_STORE_FORMAT);
            return HD_ERROR;
        }
        if (wanted != 0 && wanted != have) {
            snprintf(err, errlen,
                     "store \"%s\" has %d shards, \"shards\" directive says "
                     "%d (the shard count is fixed when a store is created)",
                     path, have, wanted);
            return HD_ERROR;
        }
        *nshards = have;
        return HD_OK;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "cannot open \"%s\": %s", file, strerror(errno));
        return HD_ERROR;
    }

    /* a new store: record the shard count durably before any shard */
    have = wanted ? wanted : dflt;
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
    }
    if (f == NULL) {
        snprintf(err, errlen, "cannot create \"%s\": %s", tmp, strerror(errno));
        return HD_ERROR;
    }
    fprintf(f, "herald store\nformat %d\nshards %d\n", HD_STORE_FORMAT, have);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        snprintf(err, errlen, "cannot write \"%s\": %s", tmp, strerror(errno));
        return HD_ERROR;
    }
    fclose(f);
    if (rename(tmp, file) != 0) {
        snprintf(err, errlen, "cannot rename \"%s\": %s", tmp, strerror(errno));
        return HD_ERROR;
    }
    *nshards = have;
    return HD_OK;
}

/* Writes zeros from the end of the data file up to size, then syncs once.
 * A durable LMDB commit that appends to the file makes every fdatasync
 * journal the new file size as well; commits into blocks that already
 * exist flush only data (measured: bench/README). */
int
hd_store_preallocate(const char *dir, int64_t size)
{
    char file[4200];
    static const char zeros[1 << 16];
    struct stat st;
    int fd, rc = HD_OK;

    snprintf(file, sizeof(file), "%s/data.mdb", dir);
    fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return HD_ERROR;
    }
    for (off_t off = st.st_size; off < size; off += (off_t)sizeof(zeros)) {
        size_t n = sizeof(zeros);
        if (off + (off_t)n > size)
            n = (size_t)(size - off);
        if (pwrite(fd, zeros, n, off) != (ssize_t)n) {
            rc = HD_ERROR;
            break;
        }
    }
    if (rc == HD_OK && st.st_size < size && fdatasync(fd) != 0)
        rc = HD_ERROR;
    close(fd);
    return rc;
}

static uint64_t
get_be64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

struct hd_shard *
hd_store_open(const struct hd_store_conf *sc, int id, int nshards, char *err,
              size_t errlen)
{
    struct hd_shard *s = hd_calloc(sizeof(*s));
    char dir[4096];
    /* the kernel's readahead stays on (no MDB_NORDAHEAD): a backlog is
     * read in key order, and once its pages have left the page cache,
     * faults that each read one 4 KiB page made a drain dearer
     * (bench/README: 11.6 -> 10.9 us a push) */
    unsigned flags = MDB_NOTLS;
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    s->id = id;
    s->nshards = nshards;
    s->worker = -1;
    s->log.worker = -1;
    s->log.shard = id;
    s->sync = sc->sync;
    s->commit_records = sc->commit_records;
    s->commit_delay_ms = sc->commit_delay_ms;
    s->outcome_delay_ms = sc->outcome_delay_ms;
    s->map_size = sc->map_size;
    s->max_map_size = sc->max_map_size;
    s->high_water = sc->high_water;
    s->min_free_disk = sc->min_free_disk;

    snprintf(dir, sizeof(dir), "%s/shard-%03d", sc->path, id);
    if (mkdir_p(dir, 0700) != HD_OK) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(errno));
        goto fail_free;
    }
    /* sync off trades durability for speed; never the default */
    if (!s->sync)
        flags |= MDB_NOSYNC;

    if ((rc = mdb_env_create(&s->env)) != 0)
        goto fail_lmdb;
    mdb_env_set_maxdbs(s->env, HD_DB_MAX + 4);
    mdb_env_set_maxreaders(s->env, 16);
    mdb_env_set_mapsize(s->env, (size_t)s->map_size);
    if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0)
        goto fail_env;
    {
        /* the file may already be larger than map_size after growth */
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        if ((int64_t)info.me_mapsize > s->map_size)
            s->map_size = (int64_t)info.me_mapsize;
    }

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto fail_env;
    for (int i = 0; i < HD_DB_MAX; i++)
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i])) != 0)
            goto fail_txn;

    k.mv_data = "nshards";
    k.mv_size = 7;
    if (mdb_get(txn, s->dbi[HD_DB_META], &k, &v) == 0) {
        int have = -1;
        if (v.mv_size == sizeof(int))
            memcpy(&have, v.mv_data, sizeof(int)); /* values are unaligned */
        if (have != nshards) {
            snprintf(err, errlen,
                     "shard %d in \"%s\" belongs to a store of another "
                     "shard count",
                     id, dir);
            mdb_txn_abort(txn);
            goto fail_env_quiet;
        }
    } else {
        v.mv_data = &nshards;
        v.mv_size = sizeof(int);
        if ((rc = mdb_put(txn, s->dbi[HD_DB_META], &k, &v, 0)) != 0)
            goto fail_txn;
        k.mv_data = "shard";
        k.mv_size = 5;
        v.mv_data = &id;
        if ((rc = mdb_put(txn, s->dbi[HD_DB_META], &k, &v, 0)) != 0)
            goto fail_txn;
    }
    k.mv_data = "seq";
    k.mv_size = 3;
    if (mdb_get(txn, s->dbi[HD_DB_META], &k, &v) == 0 && v.mv_size == 8)
        s->_last_seq = get_be64(v.mv_data);
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail_env;

    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->_rtxn)) != 0)
        goto fail_env;
    if (s->sync && hd_store_preallocate(dir, s->map_size) != HD_OK)
        hd_log(HD_LOG_WARN, &s->log, errno,
               "cannot preallocate \"%s/data.mdb\"", dir);
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    return s;

fail_txn:
    mdb_txn_abort(txn);
fail_env:
    snprintf(err, errlen, "cannot open store shard \"%s\": %s", dir,
             mdb_strerror(rc));
fail_env_quiet:
    mdb_env_close(s->env);
    goto fail_free;
fail_lmdb:
    snprintf(err, errlen, "mdb_env_create: %s", mdb_strerror(rc));
fail_free:
    free(s);
    return NULL;
}

void
hd_store_close(struct hd_shard *s)
{
    if (s == NULL)
        return;
    hd_store_commit_stop(s);
    if (s->commits)
        hd_log(HD_LOG_NOTICE, &s->log, 0,
               "store closed: %llu commits, %.1f records per commit, "
               "%.0f us per commit (max %lld us)",
               (unsigned long long)s->commits,
               (double)s->records_committed / (double)s->commits,
               (double)s->commit_us_total / (double)s->commits,
               (long long)s->commit_us_max);
    for (int db = 0; db < HD_DB_MAX; db++)
        if (s->_rcur[db] != NULL)
            mdb_cursor_close(s->_rcur[db]);
    if (s->_rtxn)
        mdb_txn_abort(s->_rtxn);
    mdb_env_close(s->env);
    hd_cache_clear(s);
    free(s->_buckets);
    free(s);
}

int64_t
hd_store_used(struct hd_shard *s)
{
    MDB_envinfo info;
    MDB_stat st;

    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    return (int64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int
hd_store_pressure(struct hd_shard *s)
{
    int64_t now = hd_now_ms();
    struct statvfs vfs;

    /* looked at once a second at most: a syscall or two */
    if (now - s->_pressure_checked_ms < 1000)
        return s->_pressure;
    s->_pressure_checked_ms = now;
    s->_pressure =
        hd_store_used(s) * 100 > s->max_map_size * (int64_t)s->high_water;
    if (!s->_pressure && s->min_free_disk > 0 && statvfs(s->dir, &vfs) == 0 &&
        (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize < s->min_free_disk)
        s->_pressure = 1;
    return s->_pressure;
}

MDB_txn *
hd_store_snapshot(struct hd_shard *s)
{
    return s->_rtxn;
}

uint64_t
hd_store_next_seq(struct hd_shard *s)
{
    return hd_store_seq_at(s, hd_now_ms());
}

uint64_t
hd_store_seq_at(struct hd_shard *s, int64_t now_ms)
{
    uint64_t now = (uint64_t)now_ms << 16;

    /* monotonic even if the wall clock steps back: ids never repeat */
    s->_last_seq = now > s->_last_seq ? now : s->_last_seq + 1;
    return s->_last_seq;
}

void
hd_store_make_id(struct hd_shard *s, uint64_t seq, char *buf)
{
    snprintf(buf, 24, "n%02x%016llx", s->id, (unsigned long long)seq);
}

int
hd_store_id_shard(const char *id, size_t len)
{
    unsigned v = 0;

    if (len < 19 || id[0] != 'n')
        return -1;
    for (int i = 1; i < 19; i++) {
        char c = id[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        if (i <= 2)
            v = v * 16 + (unsigned)d;
    }
    if (len > 19 && id[19] != '-')
        return -1;
    return (int)v;
}
