/*
 * notify.c: a notification becomes one delivery per (channel, address),
 * each with its record and a queue entry, all staged in the same group
 * commit as the notification. Owner thread of the shard.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/time.h"
#include "send/notify.h"
#include "send/users.h"
#include "store/queue.h"

void
hd_timeline_add(json_t *delivery, const char *event, const char *detail)
{
    json_t *tl = json_object_get(delivery, "timeline");
    char now[32];
    json_t *e;

    if (tl == NULL) {
        tl = json_array();
        json_object_set_new(delivery, "timeline", tl);
    }
    hd_time_iso(hd_now_ms(), now, sizeof(now));
    e = json_pack("{s:s, s:s}", "at", now, "event", event);
    if (detail)
        json_object_set_new(e, "detail", json_string(detail));
    json_array_append_new(tl, e);
}

/* The address of a user on a channel, or NULL. */
static const char *
address_of(json_t *user, int ch)
{
    json_t *v = NULL;
    switch (ch) {
    case HD_CH_EMAIL:
        v = json_object_get(user, "email");
        break;
    case HD_CH_SMS:
        v = json_object_get(user, "phone");
        break;
    default:
        break; /* push and web go to devices (the send API issue) */
    }
    return json_string_value(v);
}

int
hd_notify_accept(struct hd_shard *s, const struct hd_notify_in *in,
                 json_t **answer, struct hd_notify_err *err)
{
    json_t *user, *notif, *dels, *ans, *ans_dels;
    char id[24], did[40], now[32];
    uint64_t seq;
    int64_t now_ms = hd_now_ms();
    int n = 0;

    user = hd_user_load(s, in->user_id);
    if (user == NULL) {
        err->status = 404;
        err->code = "not_found";
        err->field = "user_id";
        snprintf(err->message, sizeof(err->message),
                 "unknown user \"%s\": create it with PUT /v1/users/%s",
                 in->user_id, in->user_id);
        return HD_ERROR;
    }
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        if ((in->channels & (1u << ch)) && address_of(user, ch) == NULL) {
            err->status = 422;
            err->code = "no_address";
            err->field = "channels";
            snprintf(err->message, sizeof(err->message),
                     "user \"%s\" has no address for channel \"%s\"",
                     in->user_id, hd_channel_name(ch));
            json_decref(user);
            return HD_ERROR;
        }
    }

    seq = hd_store_next_seq(s);
    hd_store_make_id(s, seq, id);
    hd_time_iso(now_ms, now, sizeof(now));
    dels = json_array();
    ans_dels = json_array();

    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        const char *to = address_of(user, ch);
        json_t *d;
        uint64_t qseq;

        if (to == NULL || (in->channels && !(in->channels & (1u << ch))))
            continue;
        snprintf(did, sizeof(did), "%s-%d", id, n++);
        qseq = hd_store_next_seq(s);
        d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "id",
                      did, "notification_id", id, "user_id", in->user_id,
                      "channel", hd_channel_name(ch), "to", to, "status",
                      "queued", "attempts", 0, "due", (json_int_t)now_ms,
                      "qseq", (json_int_t)qseq);
        hd_timeline_add(d, "accepted", NULL);
        hd_store_put_json(s, HD_DB_DELIVERIES, did, d);
        hd_queue_push(s, ch, now_ms, qseq, did);
        json_decref(d);
        json_array_append_new(dels, json_string(did));
        json_array_append_new(ans_dels,
                              json_pack("{s:s, s:s, s:s, s:s}", "id", did,
                                        "channel", hd_channel_name(ch), "to",
                                        to, "status", "queued"));
    }
    json_decref(user);
    if (n == 0) {
        json_decref(dels);
        json_decref(ans_dels);
        err->status = 422;
        err->code = "no_address";
        err->field = "user_id";
        snprintf(err->message, sizeof(err->message),
                 "user \"%s\" has no address on any channel", in->user_id);
        return HD_ERROR;
    }

    notif = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o}", "id", id, "user_id",
                      in->user_id, "key_id", in->key_id, "created_at", now,
                      "content", in->content, "deliveries", dels);
    hd_store_put_json(s, HD_DB_NOTIFICATIONS, id, notif);
    json_decref(notif);

    ans = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "user_id", in->user_id,
                    "status", "accepted", "deliveries", ans_dels);
    *answer = ans;
    return HD_OK;
}

json_t *
hd_notify_get(struct hd_shard *s, const char *id)
{
    json_t *notif = hd_store_get_json(s, HD_DB_NOTIFICATIONS, id), *out,
           *list;
    size_t i;
    json_t *v;
    int delivered = 0, failed = 0, total = 0;

    if (notif == NULL)
        return NULL;
    out = json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(notif, "id"),
                    "user_id", json_object_get(notif, "user_id"),
                    "created_at", json_object_get(notif, "created_at"),
                    "content", json_object_get(notif, "content"));
    list = json_array();
    json_array_foreach(json_object_get(notif, "deliveries"), i, v)
    {
        json_t *d = hd_store_get_json(s, HD_DB_DELIVERIES,
                                      json_string_value(v));
        const char *st;
        if (d == NULL)
            continue;
        json_object_del(d, "qseq");
        json_object_del(d, "due");
        st = json_string_value(json_object_get(d, "status"));
        total++;
        if (st && strcmp(st, "delivered") == 0)
            delivered++;
        else if (st && strcmp(st, "failed") == 0)
            failed++;
        json_array_append_new(list, d);
    }
    json_object_set_new(out, "status",
                        json_string(delivered == total ? "delivered"
                                    : failed == total  ? "failed"
                                    : delivered + failed == total
                                        ? "partially_delivered"
                                        : "pending"));
    json_object_set_new(out, "deliveries", list);
    json_decref(notif);
    return out;
}
