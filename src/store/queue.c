/*
 * queue.c: queue keys are 8 bytes of due time (ms, big-endian) and 8 of
 * sequence, so LMDB's byte order is due order; values are delivery ids,
 * with a small content after a NUL byte (queue.h).
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
              const char *delivery_id, const char *content, size_t clen)
{
    unsigned char key[HD_QUEUE_KEY_LEN];
    char val[HD_QUEUE_ID_MAX + 1 + HD_QUEUE_CONTENT_MAX];
    size_t n = strlen(delivery_id);

    hd_queue_key(key, due_ms, seq);
    /* push and web carry it: small, sent in volume; an email's (HTML) and
     * an SMS's are read from the notification when they go */
    if ((channel != HD_CH_PUSH && channel != HD_CH_WEB) || content == NULL ||
        clen > HD_QUEUE_CONTENT_MAX || n >= HD_QUEUE_ID_MAX) {
        hd_store_put(s, HD_DB_QUEUE + channel, key, sizeof(key), delivery_id,
                     n);
        return;
    }
    memcpy(val, delivery_id, n);
    val[n] = '\0';
    memcpy(val + n + 1, content, clen);
    hd_store_put(s, HD_DB_QUEUE + channel, key, sizeof(key), val, n + 1 + clen);
}

int
hd_queue_entry(const MDB_val *v, char *id, const char **content, size_t *clen)
{
    const char *p = v->mv_data, *nul = memchr(p, '\0', v->mv_size);
    size_t n = nul ? (size_t)(nul - p) : v->mv_size;

    if (n >= HD_QUEUE_ID_MAX)
        return HD_ERROR;
    memcpy(id, p, n);
    id[n] = '\0';
    *content = nul ? nul + 1 : NULL;
    *clen = nul ? v->mv_size - n - 1 : 0;
    return HD_OK;
}

void
hd_queue_remove(struct hd_shard *s, int channel, int64_t due_ms, uint64_t seq)
{
    unsigned char key[HD_QUEUE_KEY_LEN];
    hd_queue_key(key, due_ms, seq);
    hd_store_del(s, HD_DB_QUEUE + channel, key, sizeof(key));
}
