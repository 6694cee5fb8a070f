/*
 * shard.h: the user-to-shard and shard-to-worker maps. Pure functions:
 * the same user always lands on the same shard for a given shard count.
 */
#ifndef HD_SHARD_H
#define HD_SHARD_H

#include <stdint.h>
#include <stddef.h>

uint64_t hd_hash(const void *data, size_t len); /* FNV-1a 64 */
int hd_shard_of(const char *user_id, size_t len, int nshards);
int hd_shard_owner(int shard, int nworkers);

#endif
