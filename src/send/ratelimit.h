/*
 * ratelimit.h: token buckets. The math is shared (per-key ingest limits in
 * http use it too); the per-(user, channel[, category]) tables belong to
 * the owner of each shard.
 */
#ifndef HD_RATELIMIT_H
#define HD_RATELIMIT_H

#include <stdint.h>

#include "core/conf.h"

struct hd_bucket {
    double tokens;
    int64_t last_ms;
};

/* Takes one token at now_ms if there is one: returns 1. Otherwise 0 and
 * *retry_ms says when the next token comes. scale divides the rate and
 * burst (a per-key limit shared by N workers). A new bucket (last_ms 0)
 * starts full. */
int hd_bucket_take(struct hd_bucket *b, const struct hd_rate *r, double scale,
                   int64_t now_ms, int64_t *retry_ms);

/* The frequency cap of user on channel for category (may be NULL): the
 * channel's rate_limit and the category's, both must have a token.
 * Owner thread of shard. Returns 1 when allowed. */
int hd_ratelimit_allow(int shard, const struct hd_conf *cf, const char *user_id,
                       int channel, const char *category, int64_t now_ms);
/* Forgets a user's buckets (erase). */
void hd_ratelimit_forget(int shard, const char *user_id);

#endif
