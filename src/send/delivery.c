/*
 * delivery.c: a delivery's two records, merged for readers and folded
 * back into one by a whole rewrite (delivery.h). The split is for the
 * send path: an outcome of ~130 bytes is written where the whole record
 * (~500 bytes, longer with each timeline entry) was rewritten, and the
 * pages a group commit writes are what a push costs most (bench/README).
 */
#include <string.h>

#include "core/herald.h"
#include "send/delivery.h"

void
hd_delivery_merge(json_t *base, json_t *outcome)
{
    json_t *tl = json_object_get(base, "timeline"), *v;
    const char *key;

    if (json_object_get(outcome, "qseq") == NULL)
        json_object_del(base, "qseq");
    if (json_object_get(outcome, "avoid") == NULL)
        json_object_del(base, "avoid");
    json_object_foreach(outcome, key, v)
    {
        if (strcmp(key, "timeline") != 0)
            json_object_set(base, key, v);
        else if (json_is_array(v)) {
            if (!json_is_array(tl)) {
                tl = json_array();
                json_object_set_new(base, "timeline", tl);
            }
            json_array_extend(tl, v);
        }
    }
}

json_t *
hd_delivery_get(struct hd_shard *s, const char *id)
{
    /* neither db is cached (cache.c): both trees are ours */
    json_t *d = hd_store_get_json(s, HD_DB_DELIVERIES, id), *o;
    MDB_val v;

    if (d == NULL ||
        hd_store_get(s, HD_DB_OUTCOMES, id, strlen(id), &v) != HD_OK)
        return d;
    if ((o = hd_record_decode(&v)) == NULL) {
        hd_log(HD_LOG_ERR, &s->log, 0, "undecodable outcome record \"%s\"", id);
        json_decref(d);
        return NULL;
    }
    hd_delivery_merge(d, o);
    json_decref(o);
    return d;
}

void
hd_delivery_put(struct hd_shard *s, const char *id, json_t *d)
{
    hd_store_put_json(s, HD_DB_DELIVERIES, id, d);
    hd_store_del(s, HD_DB_OUTCOMES, id, strlen(id));
}

void
hd_delivery_del(struct hd_shard *s, const char *id)
{
    hd_store_del(s, HD_DB_DELIVERIES, id, strlen(id));
    hd_store_del(s, HD_DB_OUTCOMES, id, strlen(id));
}
