/*
 * ratelimit.c: token buckets for frequency caps, kept in memory by the
 * owner of each shard (no lock: one thread per shard). Buckets are not
 * stored: a restart starts every user with full buckets, which errs on
 * the side of sending. Idle buckets are dropped when the table grows.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "send/ratelimit.h"

#define TABLE_BUCKETS 4096
#define TABLE_SWEEP_AT 200000

struct entry {
    struct entry *next;
    struct hd_bucket b;
    size_t klen;
    char key[]; /* user "\0" channel "\0" category */
};

struct table {
    struct entry *slots[TABLE_BUCKETS];
    size_t n;
};

/* one table per shard; each touched only by the shard's owner */
static struct table *tables[HD_MAX_SHARDS];

/* Brings b up to now_ms; returns its tokens. */
static double
refill(struct hd_bucket *b, const struct hd_rate *r, double scale,
       int64_t now_ms)
{
    double per_ms = r->per_ms / scale, burst = r->burst / scale;

    if (burst < 1)
        burst = 1;
    if (b->last_ms == 0) {
        b->tokens = burst;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * per_ms;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ms = now_ms;
    }
    return b->tokens;
}

int
hd_bucket_take(struct hd_bucket *b, const struct hd_rate *r, double scale,
               int64_t now_ms, int64_t *retry_ms)
{
    double per_ms = r->per_ms / scale;

    refill(b, r, scale, now_ms);
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 1;
    }
    if (retry_ms)
        *retry_ms = (int64_t)((1 - b->tokens) / per_ms) + 1;
    return 0;
}

static struct hd_bucket *
lookup(int shard, const char *key, size_t klen)
{
    struct table *t = tables[shard];
    struct entry **pp, *e;

    if (t == NULL)
        t = tables[shard] = hd_calloc(sizeof(*t));
    pp = &t->slots[hd_hash(key, klen) % TABLE_BUCKETS];
    for (e = *pp; e; e = e->next)
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return &e->b;
    e = hd_calloc(sizeof(*e) + klen);
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->next = *pp;
    *pp = e;
    t->n++;
    return &e->b;
}

/* Drops buckets that have been idle long enough to be full again:
 * dropping them changes nothing. */
static void
sweep(int shard, int64_t now_ms)
{
    struct table *t = tables[shard];

    for (size_t i = 0; i < TABLE_BUCKETS; i++) {
        struct entry **pp = &t->slots[i];
        while (*pp) {
            struct entry *e = *pp;
            if (now_ms - e->b.last_ms > 24LL * 3600 * 1000) {
                *pp = e->next;
                free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static struct hd_bucket *
bucket_of(int shard, const char *user_id, int channel, const char *category)
{
    char key[512];
    int n = snprintf(key, sizeof(key), "%s%c%d%c%s", user_id, 0, channel, 0,
                     category ? category : "");

    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    return lookup(shard, key, (size_t)n + 1);
}

int
hd_ratelimit_allow(int shard, const struct hd_conf *cf, const char *user_id,
                   int channel, const char *category, int64_t now_ms)
{
    const struct hd_category_conf *cat =
        category ? hd_conf_find_category(cf, category) : NULL;
    const struct hd_rate *rc =
        cat && cat->rate[channel].set ? &cat->rate[channel] : NULL;
    const struct hd_rate *rch =
        cf->rate[channel].set ? &cf->rate[channel] : NULL;
    struct hd_bucket *bc = NULL, *bch = NULL;

    if (rc == NULL && rch == NULL)
        return 1;
    if (tables[shard] && tables[shard]->n > TABLE_SWEEP_AT)
        sweep(shard, now_ms);
    if (rc)
        bc = bucket_of(shard, user_id, channel, category);
    if (rch)
        bch = bucket_of(shard, user_id, channel, NULL);
    /* both caps must have a token; only then is either taken */
    if ((bc && refill(bc, rc, 1, now_ms) < 1) ||
        (bch && refill(bch, rch, 1, now_ms) < 1))
        return 0;
    if (bc)
        bc->tokens -= 1;
    if (bch)
        bch->tokens -= 1;
    return 1;
}

void
hd_ratelimit_forget(int shard, const char *user_id)
{
    struct table *t = tables[shard];
    size_t ulen = strlen(user_id) + 1;

    if (t == NULL)
        return;
    for (size_t i = 0; i < TABLE_BUCKETS; i++) {
        struct entry **pp = &t->slots[i];
        while (*pp) {
            struct entry *e = *pp;
            if (memcmp(e->key, user_id, ulen) == 0) {
                *pp = e->next;
                free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}
