/*
 * api_events.c: event tracking. GET /v1/events (a resumable feed over
 * every shard: the cursor holds one position per shard), POST /v1/events
 * (apps report opens and clicks of pushes), GET /v1/stats (counters per
 * category and template), and the signed tracking links of emails:
 * GET /t/o/{token} (a 1x1 pixel) and GET /t/c/{token} (a redirect to the
 * signed URL only: no open redirect).
 */
#include <errno.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "core/sign.h"
#include "core/time.h"
#include "http/api.h"
#include "send/delivery.h"
#include "send/events.h"
#include "send/notify.h"

/* tracking links older than this are refused */
#define TRACKING_MAX_AGE_S (180LL * 86400)

/* ==== the feed ==== */

static void
exec_feed(struct hd_shard *s, json_t *args, json_t **out)
{
    json_t *pos = json_object_get(args, "pos");
    uint64_t after =
        (uint64_t)json_integer_value(json_array_get(pos, (size_t)s->id));

    *out = hd_events_read(
        s, after, (int)json_integer_value(json_object_get(args, "limit")));
}

static int
by_time(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(x, "at")),
                   json_string_value(json_object_get(y, "at")));
    if (c != 0)
        return c;
    c = (int)(json_integer_value(json_object_get(x, "shard")) -
              json_integer_value(json_object_get(y, "shard")));
    if (c != 0)
        return c;
    return json_integer_value(json_object_get(x, "seq")) <
                   json_integer_value(json_object_get(y, "seq"))
               ? -1
               : 1;
}

static void
finish_feed(struct hd_fanout *f)
{
    int limit = (int)json_integer_value(json_object_get(f->args, "limit"));
    json_t *pos = json_deep_copy(json_object_get(f->args, "pos"));
    json_t **all = NULL, *page = json_array(), *v;
    size_t n = 0, i;
    char cursor[HD_MAX_SHARDS * 21 + 1];
    size_t cl = 0;

    for (int s = 0; s < hd_cycle.nshards; s++)
        json_array_foreach(f->parts[s], i, v)
        {
            all = hd_realloc(all, (n + 1) * sizeof(*all));
            all[n++] = v;
        }
    if (n > 1)
        qsort(all, n, sizeof(*all), by_time);
    for (i = 0; i < n && (int)i < limit; i++) {
        int sh = (int)json_integer_value(json_object_get(all[i], "shard"));
        json_array_set(pos, (size_t)sh, json_object_get(all[i], "seq"));
        json_array_append(page, all[i]);
    }
    free(all);
    /* the cursor: where each shard's feed was read up to */
    cursor[0] = '\0';
    for (int s = 0; s < hd_cycle.nshards; s++)
        cl += (size_t)snprintf(cursor + cl, sizeof(cursor) - cl, "%s%llu",
                               s ? "." : "",
                               (unsigned long long)json_integer_value(
                                   json_array_get(pos, (size_t)s)));
    json_decref(pos);
    hd_http_reply(
        f->req, 200,
        json_pack("{s:o, s:s}", "events", page, "next_cursor", cursor));
}

void
hd_api_events_feed(struct hd_req *r)
{
    char cbuf[HD_MAX_SHARDS * 21 + 1], lbuf[16];
    const char *since = hd_api_query_arg(r->query, "since", cbuf, sizeof(cbuf));
    const char *l = hd_api_query_arg(r->query, "limit", lbuf, sizeof(lbuf));
    json_t *pos = json_array();
    long limit = 100;

    if (l != NULL) {
        char *end;
        limit = strtol(l, &end, 10);
        if (*end != '\0' || end == l || limit < 1 || limit > 1000) {
            json_decref(pos);
            hd_http_error(r, 400, "invalid_field", "limit",
                          "\"limit\" must be 1 to 1000");
            return;
        }
    }
    for (int s = 0; s < hd_cycle.nshards; s++) {
        unsigned long long v = 0;
        if (since != NULL) {
            char *end;
            errno = 0;
            v = strtoull(since, &end, 10);
            if (end == since || errno || (*end != '.' && *end != '\0') ||
                (*end == '\0' && s != hd_cycle.nshards - 1)) {
                json_decref(pos);
                hd_http_error(r, 400, "invalid_field", "since",
                              "\"since\" must be a next_cursor value");
                return;
            }
            since = *end ? end + 1 : end;
        }
        json_array_append_new(pos, json_integer((json_int_t)v));
    }
    hd_api_fanout(r, json_pack("{s:o, s:i}", "pos", pos, "limit", (int)limit),
                  exec_feed, finish_feed);
}

/* ==== stats ==== */

static void
exec_stats(struct hd_shard *s, json_t *args, json_t **out)
{
    *out = hd_stats_read(s);
}

static void
finish_stats(struct hd_fanout *f)
{
    json_t *sum = json_object(), *c, *v;
    const char *key, *name;

    for (int s = 0; s < hd_cycle.nshards; s++)
        json_object_foreach(f->parts[s], key, c)
        {
            json_t *t = json_object_get(sum, key);
            if (t == NULL) {
                t = json_object();
                json_object_set_new(sum, key, t);
            }
            json_object_foreach(c, name, v) json_object_set_new(
                t, name,
                json_integer(json_integer_value(json_object_get(t, name)) +
                             json_integer_value(v)));
        }
    json_object_foreach(sum, key, c)
    {
        double acc = (double)json_integer_value(json_object_get(c, "accepted"));
        double del =
            (double)json_integer_value(json_object_get(c, "delivered"));
        json_object_set_new(c, "delivery_rate",
                            json_real(acc > 0 ? del / acc : 0));
        json_object_set_new(c, "open_rate",
                            json_real(del > 0
                                          ? (double)json_integer_value(
                                                json_object_get(c, "opened")) /
                                                del
                                          : 0));
        json_object_set_new(c, "click_rate",
                            json_real(del > 0
                                          ? (double)json_integer_value(
                                                json_object_get(c, "clicked")) /
                                                del
                                          : 0));
    }
    hd_http_reply(f->req, 200, json_pack("{s:o}", "stats", sum));
}

void
hd_api_stats(struct hd_req *r)
{
    hd_api_fanout(r, json_object(), exec_stats, finish_stats);
}

/* ==== opened / clicked ==== */

static void
exec_engagement(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    const char *type = json_string_value(json_object_get(op->in, "type"));
    json_t *shared = hd_delivery_get(s, op->id), *d;

    if (shared == NULL) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "delivery_id",
                                      "unknown delivery \"%s\"", op->id));
        return;
    }
    d = hd_delivery_thaw(shared);
    json_decref(shared);
    hd_event_emit(s, d, type,
                  json_string_value(json_object_get(op->in, "url")));
    hd_delivery_put(s, op->id, d);
    json_decref(d);
    hd_api_op_finish_durable(op, op->status ? op->status : 202,
                             op->out ? json_incref(op->out)
                                     : json_pack("{s:s}", "recorded", type));
}

static struct hd_api_op *
engagement_op(struct hd_req *r, const char *delivery, const char *type)
{
    int shard = hd_store_id_shard(delivery, strlen(delivery));
    struct hd_api_op *op;

    if (shard < 0 || shard >= hd_cycle.nshards || strlen(delivery) > 32)
        return NULL;
    op = hd_api_op_new(r, shard, exec_engagement);
    op->id = hd_strdup(delivery);
    op->in = json_pack("{s:s}", "type", type);
    return op;
}

void
hd_api_events_post(struct hd_req *r)
{
    json_t *in = hd_api_body(r), *v;
    const char *did, *type;
    struct hd_api_op *op;

    if (in == NULL)
        return;
    did = json_string_value(json_object_get(in, "delivery_id"));
    type = json_string_value(json_object_get(in, "type"));
    if (did == NULL) {
        json_decref(in);
        hd_http_error(r, 400, "missing_field", "delivery_id",
                      "\"delivery_id\" is required");
        return;
    }
    if (type == NULL ||
        (strcmp(type, "opened") != 0 && strcmp(type, "clicked") != 0)) {
        json_decref(in);
        hd_http_error(r, 400, "invalid_field", "type",
                      "\"type\" must be opened or clicked");
        return;
    }
    op = engagement_op(r, did, type);
    if (op == NULL) {
        hd_http_error(r, 404, "not_found", "delivery_id",
                      "unknown delivery \"%s\"", did);
        json_decref(in);
        return;
    }
    v = json_object_get(in, "url");
    if (json_is_string(v))
        json_object_set(op->in, "url", v);
    json_decref(in);
    hd_call_submit(&op->call);
}

/* a transparent 1x1 GIF */
static const unsigned char pixel[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

static void
on_pixel_done(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    /* whatever happened, the mail client gets its pixel */
    hd_http_header(op->req, "Cache-Control: no-store");
    hd_http_reply_text(op->req, 200, "image/gif", (const char *)pixel,
                       sizeof(pixel));
    json_decref(op->in);
    json_decref(op->out);
    free(op->id);
    free(op);
}

static void
on_click_done(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    char h[2100];

    snprintf(h, sizeof(h), "Location: %s",
             json_string_value(json_object_get(op->in, "url")));
    hd_http_header(op->req, h);
    hd_http_reply(op->req, 302, NULL);
    json_decref(op->in);
    json_decref(op->out);
    free(op->id);
    free(op);
}

void
hd_api_track(struct hd_req *r)
{
    char payload[2300];
    int open = r->path[3] == 'o'; /* /t/o/ or /t/c/ */
    struct hd_api_op *op;
    char *bar, *url = NULL;

    if (hd_sign_verify(r->params[0], payload, sizeof(payload)) != HD_OK ||
        payload[0] != (open ? 'o' : 'c') || payload[1] != '|') {
        hd_http_error(r, 404, "not_found", "token",
                      "not a tracking link of this herald");
        return;
    }
    /* o|DELIVERY|ISSUED  or  c|DELIVERY|ISSUED|URL */
    bar = strchr(payload + 2, '|');
    if (bar == NULL ||
        hd_now_ms() / 1000 - atoll(bar + 1) > TRACKING_MAX_AGE_S) {
        hd_http_error(r, 404, "not_found", "token",
                      "this tracking link has expired");
        return;
    }
    *bar = '\0';
    if (!open) {
        url = strchr(bar + 1, '|');
        if (url == NULL ||
            (strncmp(url + 1, "https://", 8) != 0 &&
             strncmp(url + 1, "http://", 7) != 0) ||
            strpbrk(url + 1, "\r\n\t ") != NULL) {
            /* signed or not, nothing that could split a header line */
            hd_http_error(r, 404, "not_found", "token", "not a click link");
            return;
        }
        url++;
    }
    op = engagement_op(r, payload + 2, open ? "opened" : "clicked");
    if (op == NULL) {
        hd_http_error(r, 404, "not_found", "token", "unknown delivery");
        return;
    }
    if (url)
        json_object_set_new(op->in, "url", json_string(url));
    op->call.done = open ? on_pixel_done : on_click_done;
    hd_call_submit(&op->call);
}
