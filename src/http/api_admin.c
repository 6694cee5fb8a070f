/*
 * api_admin.c: the admin scope: GET /v1/queues and the dead letters
 * (list, retry one, retry all of a channel, delete). Queue and dead-letter
 * questions go to every shard at once (a fan-out of calls, one per shard)
 * and the answers are merged on the accepting worker.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "core/time.h"
#include "http/api.h"
#include "provider/provider.h"
#include "send/delivery.h"
#include "send/dispatch.h"
#include "send/events.h"
#include "send/notify.h"
#include "store/queue.h"

/* channel=NAME from the query: -1 absent, -2 invalid (answered 400) */
static int
channel_arg(struct hd_req *r)
{
    char buf[32];
    const char *v = hd_api_query_arg(r->query, "channel", buf, sizeof(buf));
    int ch;

    if (v == NULL)
        return -1;
    ch = hd_channel_parse(v, strlen(v));
    if (ch < 0) {
        hd_http_error(r, 400, "invalid_field", "channel",
                      "\"channel\" must be push, sms, email or web");
        return -2;
    }
    return ch;
}

/* ==== GET /v1/queues ==== */

static void
exec_queues(struct hd_shard *s, json_t *args, json_t **out)
{
    int64_t now = hd_now_ms();
    json_t *chans = json_object();
    MDB_txn *txn = hd_store_snapshot(s);

    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        MDB_cursor *cur;
        MDB_val k, v;
        MDB_stat st;
        int64_t ready = 0, oldest = 0, inflight = 0;
        int rc;

        mdb_stat(txn, s->dbi[HD_DB_QUEUE + ch], &st);
        if (mdb_cursor_open(txn, s->dbi[HD_DB_QUEUE + ch], &cur) == 0) {
            for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                int64_t due;
                uint64_t seq;
                char id[HD_QUEUE_ID_MAX];
                if (k.mv_size != HD_QUEUE_KEY_LEN)
                    continue;
                hd_queue_key_parse(k.mv_data, &due, &seq);
                if (due > now)
                    break;
                if (ready == 0)
                    oldest = now - due;
                ready++;
                const char *ctext;
                size_t clen;
                if (hd_queue_entry(&v, id, &ctext, &clen) == HD_OK &&
                    hd_dispatch_inflight(s, id))
                    inflight++;
            }
            mdb_cursor_close(cur);
        }
        json_object_set_new(
            chans, hd_channel_name(ch),
            json_pack("{s:I, s:I, s:I, s:I}", "ready",
                      (json_int_t)(ready - inflight), "in_flight",
                      (json_int_t)inflight, "scheduled",
                      (json_int_t)((int64_t)st.ms_entries - ready),
                      "oldest_age_ms", (json_int_t)oldest));
    }
    {
        MDB_stat st;
        mdb_stat(txn, s->dbi[HD_DB_DEAD_LETTERS], &st);
        *out = json_pack("{s:i, s:i, s:o, s:I, s:I, s:I}", "shard", s->id,
                         "worker", s->worker, "channels", chans, "dead_letters",
                         (json_int_t)st.ms_entries, "commits",
                         (json_int_t)s->commits, "map_size",
                         (json_int_t)s->map_size);
    }
}

static void
finish_queues(struct hd_fanout *f)
{
    json_t *shards = json_array(), *total = json_object(), *providers;
    int64_t dead = 0;

    for (int ch = 0; ch < HD_CH_MAX; ch++)
        json_object_set_new(total, hd_channel_name(ch),
                            json_pack("{s:i, s:i, s:i, s:i}", "ready", 0,
                                      "in_flight", 0, "scheduled", 0,
                                      "oldest_age_ms", 0));
    for (int i = 0; i < hd_cycle.nshards; i++) {
        json_t *p = f->parts[i], *chans = json_object_get(p, "channels");
        const char *name;
        json_t *c;
        json_array_append(shards, p);
        dead += json_integer_value(json_object_get(p, "dead_letters"));
        json_object_foreach(chans, name, c)
        {
            json_t *t = json_object_get(total, name);
            static const char *sum[] = {"ready", "in_flight", "scheduled"};
            for (size_t k = 0; k < HD_NELEMS(sum); k++)
                json_object_set_new(
                    t, sum[k],
                    json_integer(
                        json_integer_value(json_object_get(t, sum[k])) +
                        json_integer_value(json_object_get(c, sum[k]))));
            if (json_integer_value(json_object_get(c, "oldest_age_ms")) >
                json_integer_value(json_object_get(t, "oldest_age_ms")))
                json_object_set(t, "oldest_age_ms",
                                json_object_get(c, "oldest_age_ms"));
        }
    }
    /* circuit breakers as this worker sees them (each worker has its own) */
    providers = json_object();
    for (int i = 0; i < hd_providers_count(); i++) {
        struct hd_provider *p = hd_provider_at(i);
        json_object_set_new(
            providers, p->name,
            json_pack("{s:s, s:s}", "type", p->type->name, "circuit_breaker",
                      hd_dispatch_breaker_state(hd_current_worker, p)));
    }
    hd_http_reply(f->req, 200,
                  json_pack("{s:o, s:I, s:o, s:o}", "channels", total,
                            "dead_letters", (json_int_t)dead, "providers",
                            providers, "shards", shards));
}

void
hd_api_queues(struct hd_req *r)
{
    hd_api_fanout(r, json_object(), exec_queues, finish_queues);
}

/* ==== dead letters ==== */

static void
exec_dead_list(struct hd_shard *s, json_t *args, json_t **out)
{
    const char *cursor = json_string_value(json_object_get(args, "cursor"));
    const char *chan = json_string_value(json_object_get(args, "channel"));
    int limit = (int)json_integer_value(json_object_get(args, "limit"));
    json_t *list = json_array();
    struct hd_kv *kv;
    int n, taken = 0;
    char after[64];
    size_t alen = 0;

    /* args is shared by the shards' threads: read it, never write it */
    if (cursor != NULL && strlen(cursor) < sizeof(after)) {
        alen = strlen(cursor);
        memcpy(after, cursor, alen);
    }

    /* pages of the range until limit entries of the channel are found */
    for (;;) {
        n = hd_store_range(s, HD_DB_DEAD_LETTERS, "", 0, alen ? after : NULL,
                           alen, 0, 256, &kv);
        for (int i = 0; i < n && taken < limit; i++) {
            MDB_val v = {kv[i].vlen, kv[i].val};
            json_t *dl = hd_record_decode(&v);
            if (dl == NULL)
                continue;
            if (chan == NULL ||
                strcmp(json_string_value(json_object_get(dl, "channel")),
                       chan) == 0) {
                json_array_append_new(list, dl);
                taken++;
            } else {
                json_decref(dl);
            }
        }
        if (n < 256 || taken >= limit) {
            hd_kv_free(kv, n);
            break;
        }
        /* continue after the last key of this page */
        alen = kv[n - 1].klen < sizeof(after) ? kv[n - 1].klen : 0;
        memcpy(after, kv[n - 1].key, alen);
        hd_kv_free(kv, n);
        if (alen == 0)
            break;
    }
    *out = list;
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(
        json_string_value(json_object_get(*(json_t *const *)a, "id")),
        json_string_value(json_object_get(*(json_t *const *)b, "id")));
}

static void
finish_dead_list(struct hd_fanout *f)
{
    int limit = (int)json_integer_value(json_object_get(f->args, "limit"));
    json_t **all = NULL, *page = json_array(), *out;
    size_t n = 0, i;
    json_t *v;

    for (int s = 0; s < hd_cycle.nshards; s++) {
        json_array_foreach(f->parts[s], i, v)
        {
            all = hd_realloc(all, (n + 1) * sizeof(*all));
            all[n++] = v;
        }
    }
    if (n > 1)
        qsort(all, n, sizeof(*all), cmp_id);
    for (i = 0; i < n && (int)i < limit; i++)
        json_array_append(page, all[i]);
    out = json_pack("{s:o}", "dead_letters", page);
    json_object_set_new(out, "next_cursor",
                        n > (size_t)limit
                            ? json_incref(json_object_get(all[limit - 1], "id"))
                            : json_null());
    free(all);
    hd_http_reply(f->req, 200, out);
}

void
hd_api_dead_letters(struct hd_req *r)
{
    char lbuf[16], cbuf[64];
    const char *l, *cur;
    int ch = channel_arg(r);
    long limit = 50;
    json_t *args;

    if (ch == -2)
        return;
    if ((l = hd_api_query_arg(r->query, "limit", lbuf, sizeof(lbuf))) != NULL) {
        char *end;
        limit = strtol(l, &end, 10);
        if (*end != '\0' || end == l || limit < 1 || limit > 1000) {
            hd_http_error(r, 400, "invalid_field", "limit",
                          "\"limit\" must be 1 to 1000");
            return;
        }
    }
    cur = hd_api_query_arg(r->query, "cursor", cbuf, sizeof(cbuf));
    args = json_pack("{s:i}", "limit", (int)limit);
    if (cur)
        json_object_set_new(args, "cursor", json_string(cur));
    if (ch >= 0)
        json_object_set_new(args, "channel", json_string(hd_channel_name(ch)));
    hd_api_fanout(r, args, exec_dead_list, finish_dead_list);
}

/* Puts a dead-lettered delivery back in its queue, due now. */
static int
requeue(struct hd_shard *s, const char *id)
{
    json_t *shared = hd_delivery_get(s, id), *d;
    const char *chn;
    uint64_t qseq;
    int64_t now = hd_now_ms();
    MDB_val v;

    if (hd_store_get(s, HD_DB_DEAD_LETTERS, id, strlen(id), &v) != HD_OK) {
        json_decref(shared);
        return HD_DECLINED;
    }
    hd_store_del(s, HD_DB_DEAD_LETTERS, id, strlen(id));
    if (shared == NULL)
        return HD_OK; /* its user was erased: only the letter goes */
    d = hd_delivery_thaw(shared);
    json_decref(shared);
    chn = json_string_value(json_object_get(d, "channel"));
    qseq = hd_store_next_seq(s);
    json_object_set_new(d, "status", json_string("queued"));
    json_object_set_new(d, "attempts", json_integer(0));
    json_object_set_new(d, "due", json_integer(now));
    json_object_set_new(d, "qseq", json_integer((json_int_t)qseq));
    json_object_del(d, "reason");
    json_object_del(d, "expires_at"); /* an operator's retry has no ttl */
    json_object_del(d, "avoid");
    hd_event_emit(s, d, "requeued", "dead letter retried");
    hd_queue_push(s, hd_channel_parse(chn, strlen(chn)), now, qseq, id, NULL,
                  0);
    hd_delivery_put(s, id, d);
    json_decref(d);
    return HD_OK;
}

static void
exec_dead_retry_all(struct hd_shard *s, json_t *args, json_t **out)
{
    const char *chan = json_string_value(json_object_get(args, "channel"));
    struct hd_kv *kv;
    int n, done = 0;

    n = hd_store_range(s, HD_DB_DEAD_LETTERS, "", 0, NULL, 0, 0, 100000, &kv);
    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *dl = hd_record_decode(&v);
        const char *c =
            dl ? json_string_value(json_object_get(dl, "channel")) : NULL;
        if (dl && (chan == NULL || (c && strcmp(c, chan) == 0)) &&
            requeue(s, json_string_value(json_object_get(dl, "id"))) == HD_OK)
            done++;
        json_decref(dl);
    }
    hd_kv_free(kv, n);
    *out = json_integer(done);
}

static void
finish_dead_retry_all(struct hd_fanout *f)
{
    json_int_t n = 0;
    for (int i = 0; i < hd_cycle.nshards; i++)
        n += json_integer_value(f->parts[i]);
    hd_http_reply(f->req, 200, json_pack("{s:I}", "retried", n));
}

void
hd_api_dead_letters_retry(struct hd_req *r)
{
    int ch = channel_arg(r);
    json_t *args = json_object();

    if (ch == -2) {
        json_decref(args);
        return;
    }
    if (ch >= 0)
        json_object_set_new(args, "channel", json_string(hd_channel_name(ch)));
    hd_api_fanout(r, args, exec_dead_retry_all, finish_dead_retry_all);
}

static struct hd_api_op *
dead_op(struct hd_req *r, hd_call_fn exec)
{
    const char *id = r->params[0];
    int shard = hd_store_id_shard(id, strlen(id));
    struct hd_api_op *op;

    if (shard < 0 || shard >= hd_cycle.nshards || strlen(id) > 32) {
        hd_http_error(r, 404, "not_found", "id", "no dead letter \"%s\"", id);
        return NULL;
    }
    op = hd_api_op_new(r, shard, exec);
    op->id = hd_strdup(id);
    return op;
}

static void
exec_dead_retry(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;

    if (requeue(hd_call_shard(c), op->id) != HD_OK) {
        hd_api_op_finish(
            op, 404,
            hd_api_error("not_found", "id", "no dead letter \"%s\"", op->id));
        return;
    }
    hd_api_op_finish_durable(
        op, 200, json_pack("{s:s, s:s}", "id", op->id, "status", "queued"));
}

void
hd_api_dead_letter_retry(struct hd_req *r)
{
    struct hd_api_op *op = dead_op(r, exec_dead_retry);
    if (op)
        hd_call_submit(&op->call);
}

static void
exec_dead_delete(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    MDB_val v;

    if (hd_store_get(s, HD_DB_DEAD_LETTERS, op->id, strlen(op->id), &v) !=
        HD_OK) {
        hd_api_op_finish(
            op, 404,
            hd_api_error("not_found", "id", "no dead letter \"%s\"", op->id));
        return;
    }
    hd_store_del(s, HD_DB_DEAD_LETTERS, op->id, strlen(op->id));
    hd_api_op_finish_durable(op, 200, json_pack("{s:b}", "deleted", 1));
}

void
hd_api_dead_letter_delete(struct hd_req *r)
{
    struct hd_api_op *op = dead_op(r, exec_dead_delete);
    if (op)
        hd_call_submit(&op->call);
}
