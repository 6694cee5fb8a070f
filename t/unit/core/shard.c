/*
 * t/unit/core/shard.c: the user -> shard -> worker maps. hd_hash must stay
 * FNV-1a 64 forever (a store's shard layout depends on it), shards must be
 * stable and spread evenly, and owners are shard mod workers.
 */
#include "core/shard.c"

#include <stdio.h>

#include "tap.h"

static void
test_fnv1a_vectors(void)
{
    is_u64(hd_hash("", 0), 0xcbf29ce484222325ULL, "hash(\"\") is the basis");
    is_u64(hd_hash("a", 1), 0xaf63dc4c8601ec8cULL, "hash(\"a\")");
    is_u64(hd_hash("foobar", 6), 0x85944171f73967e8ULL, "hash(\"foobar\")");
    is_u64(hd_hash("foobar", 3), hd_hash("foo", 3),
           "hash reads only len bytes");
    ok(hd_hash("a\0b", 3) != hd_hash("a", 1), "hash covers embedded NULs");
}

static void
test_shard_of_stable_and_in_range(void)
{
    static const int counts[] = {1, 2, 3, 4, 7, 16, 255, 256};
    char id[32];
    int bad_range = 0, unstable = 0, mismatch = 0;

    for (size_t c = 0; c < HD_NELEMS(counts); c++) {
        int n = counts[c];
        for (int i = 0; i < 5000; i++) {
            int len = snprintf(id, sizeof(id), "user-%d", i);
            int s = hd_shard_of(id, (size_t)len, n);
            if (s < 0 || s >= n)
                bad_range++;
            if (hd_shard_of(id, (size_t)len, n) != s)
                unstable++;
            if ((uint64_t)s != hd_hash(id, (size_t)len) % (uint64_t)n)
                mismatch++;
        }
    }
    is_int(bad_range, 0, "hd_shard_of is in [0, nshards) for 40000 ids");
    is_int(unstable, 0, "hd_shard_of is stable across calls");
    is_int(mismatch, 0, "hd_shard_of == hd_hash % nshards");
    is_int(hd_shard_of("anything", 8, 1), 0, "one shard: always shard 0");
    /* a pinned value: changing the hash would move existing users */
    is_int(hd_shard_of("foobar", 6, 256), 0xe8,
           "\"foobar\" is on shard 0xe8 "
           "of 256 (low byte of hash)");
}

static void
test_distribution(void)
{
    int hist[4] = {0, 0, 0, 0};
    char id[32];

    for (int i = 0; i < 10000; i++) {
        int len = snprintf(id, sizeof(id), "user-%d", i);
        hist[hd_shard_of(id, (size_t)len, 4)]++;
    }
    for (int s = 0; s < 4; s++)
        ok(hist[s] >= 2000 && hist[s] <= 3000,
           "shard %d of 4 gets %d of 10000 ids (2500 +- 20%%)", s, hist[s]);
}

static void
test_owner(void)
{
    int bad = 0;

    for (int n = 1; n <= HD_MAX_WORKERS; n++)
        for (int s = 0; s < HD_MAX_SHARDS; s++)
            if (hd_shard_owner(s, n) != s % n)
                bad++;
    is_int(bad, 0,
           "hd_shard_owner(s, n) == s % n for 256 shards, 1..64 "
           "workers");
    is_int(hd_shard_owner(3, 8), 3,
           "more workers than shards: shard 3 of 4 "
           "-> worker 3 of 8");
    is_int(hd_shard_owner(0, 8), 0, "more workers than shards: shard 0 -> 0");
    is_int(hd_shard_owner(7, 4), 3, "fewer workers: shard 7 -> worker 3 of 4");
    is_int(hd_shard_owner(4, 4), 0, "fewer workers: shard 4 -> worker 0 of 4");
    is_int(hd_shard_owner(5, 1), 0, "one worker owns every shard");
}

static const struct tap_case cases[] = {
    {"FNV-1a 64 vectors", test_fnv1a_vectors},
    {"hd_shard_of stable and in range", test_shard_of_stable_and_in_range},
    {"distribution over 4 shards", test_distribution},
    {"hd_shard_owner", test_owner},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
