/*
 * shard.c: stable hash of a user id to a shard, and the fixed map of
 * shards to workers (shard s belongs to worker s mod N). Any thread.
 * FNV-1a is stable across builds and machines, so a store keeps its
 * meaning when the binary changes.
 */
#include "core/herald.h"
#include "core/shard.h"

uint64_t
hd_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;

    while (len--) {
        h ^= *p++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

int
hd_shard_of(const char *user_id, size_t len, int nshards)
{
    return (int)(hd_hash(user_id, len) % (uint64_t)nshards);
}

int
hd_shard_owner(int shard, int nworkers)
{
    return shard % nworkers;
}
