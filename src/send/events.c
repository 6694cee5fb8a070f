/*
 * events.c: the event feed and the stats counters of a shard.
 *
 * Feed: db "events", key = seq (u64 BE, the shard's id clock, so keys are
 * time-ordered and unique), value = {at, type, delivery_id, ...}. A
 * reader's cursor is one seq per shard. Old events are dropped after
 * events_retention (config) by the dispatcher's housekeeping.
 * Stats: db "stats", key "category:NAME" or "template:NAME" (and
 * "all"), value = counters. Counting happens in memory and is folded
 * into the store at most once a second (hd_stats_flush, from the
 * dispatcher's housekeeping): a crash may lose that second of counts,
 * never an event. Owner thread only.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/jtext.h"
#include "core/sign.h"
#include "core/time.h"
#include "send/events.h"
#include "send/notify.h"

static void
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t
get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* the counters an event may move, in the stored order */
static const char *counted[] = {
    "accepted", "delivered", "confirmed", "failed",  "suppressed",  "throttled",
    "expired",  "cancelled", "opened",    "clicked", "unsubscribed"};
#define NCOUNTERS HD_NELEMS(counted)

/* which counter an event moves, or -1 */
static int
counter_of(const char *type)
{
    for (size_t i = 0; i < NCOUNTERS; i++)
        if (strcmp(type, counted[i]) == 0)
            return (int)i;
    return -1;
}

/* Counts not yet in the store, per shard: one entry per stats key
 * ("all", "category:NAME", "template:NAME"), found by a linear walk (a
 * second holds few distinct keys). Plain integers, not JSON: this runs on
 * every event of the hot path. */
struct pending {
    struct pending *next;
    int64_t n[NCOUNTERS];
    char key[];
};

static struct pending *pending[HD_MAX_SHARDS];

static void
count(struct hd_shard *s, const char *key, int counter)
{
    struct pending *p;

    for (p = pending[s->id]; p != NULL; p = p->next)
        if (strcmp(p->key, key) == 0)
            break;
    if (p == NULL) {
        size_t len = strlen(key);
        p = hd_calloc(sizeof(*p) + len + 1);
        memcpy(p->key, key, len + 1);
        p->next = pending[s->id];
        pending[s->id] = p;
    }
    p->n[counter]++;
}

void
hd_stats_flush(struct hd_shard *s)
{
    struct pending *p, *next;

    for (p = pending[s->id]; p != NULL; p = next) {
        json_t *shared = hd_store_get_json(s, HD_DB_STATS, p->key), *c;
        next = p->next;
        c = shared ? json_copy(shared) : json_object();
        json_decref(shared);
        for (size_t i = 0; i < NCOUNTERS; i++)
            if (p->n[i])
                json_object_set_new(
                    c, counted[i],
                    json_integer(
                        json_integer_value(json_object_get(c, counted[i])) +
                        p->n[i]));
        hd_store_put_json(s, HD_DB_STATS, p->key, c);
        json_decref(c);
        free(p);
    }
    pending[s->id] = NULL;
}

/* whether delivery id did is nid "-" N, as notify.c makes them: a
 * reader finds nid again before did's last '-' */
static int
is_prefix_id(const char *nid, const char *did)
{
    size_t n = strlen(nid);
    return did != NULL && strncmp(did, nid, n) == 0 && did[n] == '-' &&
           did[n + 1] != '\0' &&
           strspn(did + n + 1, "0123456789") == strlen(did + n + 1);
}

void
hd_event_put(struct hd_shard *s, const struct hd_event_src *src,
             const char *type, const char *detail)
{
    /* the delivery's fields an event carries, in the stored order */
    const char *copy[][2] = {{"notification_id", src->notification_id},
                             {"user_id", src->user_id},
                             {"channel", src->channel},
                             {"provider", src->provider},
                             {"category", src->category},
                             {"template", src->template_name}};
    unsigned char key[8];
    int counter = counter_of(type);
    int64_t at = src->at_ms ? src->at_ms : hd_now_ms();
    struct hd_jbuf b;

    /* written as text: this runs for every outcome of the send path, and
     * for two or three events a push, so what a reader can work out is
     * left out (hd_events_read): the time as ms, not ISO 8601, and the
     * notification id when the delivery id begins with it */
    hd_jbuf_init(&b, 256);
    b.p[b.len++] = HD_STORE_FORMAT;
    hd_jbuf_raw(&b, "{", 1);
    hd_jbuf_key(&b, "at");
    hd_jbuf_int(&b, at);
    hd_jbuf_kv(&b, "type", type);
    hd_jbuf_kv(&b, "delivery_id", src->delivery_id ? src->delivery_id : "");
    if (src->notification_id != NULL &&
        !is_prefix_id(src->notification_id, src->delivery_id))
        hd_jbuf_kv(&b, "notification_id", src->notification_id);
    for (size_t i = 1; i < HD_NELEMS(copy); i++) /* 0 is above */
        if (copy[i][1] != NULL) {
            hd_jbuf_kv(&b, copy[i][0], copy[i][1]);
        }
    if (detail) {
        hd_jbuf_kv(&b, "detail", detail);
    }
    hd_jbuf_raw(&b, "}", 1);
    put_be64(key, hd_store_seq_at(s, at));
    hd_store_put(s, HD_DB_EVENTS, key, sizeof(key), b.p, b.len);
    free(b.p);

    if (counter >= 0) {
        char k[160];
        count(s, "all", counter);
        if (src->category) {
            snprintf(k, sizeof(k), "category:%s", src->category);
            count(s, k, counter);
        }
        if (src->template_name) {
            snprintf(k, sizeof(k), "template:%s", src->template_name);
            count(s, k, counter);
        }
    }
}

void
hd_event_emit(struct hd_shard *s, json_t *d, const char *type,
              const char *detail)
{
    struct hd_event_src src = {
        json_string_value(json_object_get(d, "id")),
        json_string_value(json_object_get(d, "notification_id")),
        json_string_value(json_object_get(d, "user_id")),
        json_string_value(json_object_get(d, "channel")),
        json_string_value(json_object_get(d, "provider")),
        json_string_value(json_object_get(d, "category")),
        json_string_value(json_object_get(d, "template"))};

    hd_timeline_add(d, type, detail);
    hd_event_put(s, &src, type, detail);
}

/* A stored event e as readers see it, whichever way it was stored
 * (hd_event_put): "at" in ISO 8601, and the notification id. */
static void
expand(json_t *e)
{
    json_t *at = json_object_get(e, "at");
    const char *did = json_string_value(json_object_get(e, "delivery_id"));
    const char *dash = did ? strrchr(did, '-') : NULL;
    char buf[32];

    if (json_is_integer(at)) {
        hd_time_iso(json_integer_value(at), buf, sizeof(buf));
        json_object_set_new(e, "at", json_string(buf)); /* in its place */
    }
    if (dash != NULL && dash > did &&
        json_object_get(e, "notification_id") == NULL)
        json_object_set_new(e, "notification_id",
                            json_stringn(did, (size_t)(dash - did)));
}

json_t *
hd_events_read(struct hd_shard *s, uint64_t after, int limit)
{
    unsigned char a[8];
    struct hd_kv *kv;
    json_t *list = json_array();
    int n;

    put_be64(a, after);
    n = hd_store_range(s, HD_DB_EVENTS, "", 0, after ? a : NULL, after ? 8 : 0,
                       0, limit, &kv);
    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *e = hd_record_decode(&v);
        uint64_t seq;
        char id[40];
        if (e == NULL || kv[i].klen != 8) {
            json_decref(e);
            continue;
        }
        expand(e);
        seq = get_be64((const unsigned char *)kv[i].key);
        snprintf(id, sizeof(id), "%d-%llu", s->id, (unsigned long long)seq);
        json_object_set_new(e, "id", json_string(id));
        json_object_set_new(e, "seq", json_integer((json_int_t)seq));
        json_object_set_new(e, "shard", json_integer(s->id));
        json_array_append_new(list, e);
    }
    hd_kv_free(kv, n);
    return list;
}

int
hd_events_trim(struct hd_shard *s, int64_t retention_ms, int max)
{
    /* seqs are (ms << 16 | counter): old ones come first */
    uint64_t cutoff = (uint64_t)(hd_now_ms() - retention_ms) << 16;
    struct hd_kv *kv;
    int n = hd_store_range(s, HD_DB_EVENTS, "", 0, NULL, 0, 0, max, &kv),
        dropped = 0;

    for (int i = 0; i < n; i++) {
        if (kv[i].klen != 8 ||
            get_be64((const unsigned char *)kv[i].key) >= cutoff)
            break;
        hd_store_del(s, HD_DB_EVENTS, kv[i].key, kv[i].klen);
        dropped++;
    }
    hd_kv_free(kv, n);
    return dropped;
}

json_t *
hd_stats_read(struct hd_shard *s)
{
    hd_stats_flush(s); /* a reader sees every count so far */
    struct hd_kv *kv;
    json_t *out = json_object();
    int n = hd_store_range(s, HD_DB_STATS, "", 0, NULL, 0, 0, 100000, &kv);

    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *c = hd_record_decode(&v);
        if (c != NULL)
            json_object_set_new(out, kv[i].key, c);
    }
    hd_kv_free(kv, n);
    return out;
}

/* ==== tracked html ==== */

static void
append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = hd_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

char *
hd_track_html(const char *html, const char *base, const char *delivery_id)
{
    char *out = NULL, payload[2200], token[3200], link[3400];
    size_t len = 0, cap = 0;
    const char *p = html, *body_end;

    /* every href="http..." goes through the click link */
    for (;;) {
        const char *h = strcasestr(p, "href=\""), *url, *q;
        if (h == NULL)
            break;
        url = h + 6;
        q = strchr(url, '"');
        if (q == NULL)
            break;
        append(&out, &len, &cap, p, (size_t)(url - p));
        if ((strncmp(url, "https://", 8) == 0 ||
             strncmp(url, "http://", 7) == 0) &&
            (size_t)(q - url) < 2000) {
            /* the URL as a browser would follow it: &amp; is & */
            char href[2048];
            size_t hl = 0;
            for (const char *x = url; x < q && hl < sizeof(href) - 1; x++) {
                if (strncmp(x, "&amp;", 5) == 0 && x + 5 <= q) {
                    href[hl++] = '&';
                    x += 4;
                } else {
                    href[hl++] = *x;
                }
            }
            href[hl] = '\0';
            snprintf(payload, sizeof(payload), "c|%s|%lld|%s", delivery_id,
                     (long long)(hd_now_ms() / 1000), href);
            if (hd_sign_token(payload, token, sizeof(token)) == HD_OK) {
                int n = snprintf(link, sizeof(link), "%s/t/c/%s", base, token);
                append(&out, &len, &cap, link, (size_t)n);
            } else {
                append(&out, &len, &cap, url, (size_t)(q - url));
            }
        } else {
            append(&out, &len, &cap, url, (size_t)(q - url));
        }
        p = q;
    }
    /* the pixel goes before </body>, or at the end */
    body_end = strcasestr(p, "</body>");
    append(&out, &len, &cap, p, body_end ? (size_t)(body_end - p) : strlen(p));
    snprintf(payload, sizeof(payload), "o|%s|%lld", delivery_id,
             (long long)(hd_now_ms() / 1000));
    if (hd_sign_token(payload, token, sizeof(token)) == HD_OK) {
        int n = snprintf(link, sizeof(link),
                         "<img src=\"%s/t/o/%s\" width=\"1\" height=\"1\" "
                         "alt=\"\">",
                         base, token);
        append(&out, &len, &cap, link, (size_t)n);
    }
    if (body_end)
        append(&out, &len, &cap, body_end, strlen(body_end));
    return out;
}
