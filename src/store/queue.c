/*
 * queue.c: queue keys are 8 bytes of due time (ms, big-endian) and 8 of
 * sequence, so LMDB's byte order is due order; values are delivery ids.
 * Owner thread of the shard.
 */
#include "core/herald.h"
#include "store/queue.h"

void
hd_queue_key(unsigned char *key, int64_t due_ms, uint64_t seq)
{
    uint64_t due = (uint64_t)(due_ms < 0 ? 0 : due_ms);
    for (int i = 7; i >= 0; i--, due >>= 8)
        key[i] = (unsigned char)due;
    for (int i = 15; i >= 8; i--, seq >>= 8)
        key[i] = (unsigned char)seq;
}

void
hd_queue_key_parse(const unsigned char *key, int64_t *due_ms, uint64_t *seq)
{
    uint64_t d = 0, q = 0;
    for (int i = 0; i < 8; i++)
        d = (d << 8) | key[i];
    for (int i = 8; i < 16; i++)
        q = (q << 8) | key[i];
    *due_ms = (int64_t)d;
    *seq = q;
}

void
hd_queue_push(struct hd_shard *s, int channel, int64_t due_ms, uint64_t seq,
              const char *delivery_id)
{
    unsigned char key[HD_QUEUE_KEY_LEN];
    hd_queue_key(key, due_ms, seq);
    hd_store_put(s, HD_DB_QUEUE + channel, key, sizeof(key), delivery_id,
                 strlen(delivery_id));
}

void
hd_queue_remove(struct hd_shard *s, int channel, int64_t due_ms, uint64_t seq)
{
    unsigned char key[HD_QUEUE_KEY_LEN];
    hd_queue_key(key, due_ms, seq);
    hd_store_del(s, HD_DB_QUEUE + channel, key, sizeof(key));
}
