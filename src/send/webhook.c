/*
 * webhook.c: the event webhook (`event_webhook URL;`). Worker thread: one
 * sender per owned shard, at most one batch in flight each. A batch is
 * the next events after the shard's webhook cursor (meta "webhook_seq");
 * a 2xx moves the cursor in the same group commit as anything else, so a
 * crash re-sends at most the batch that was in flight (receivers dedup
 * by event id). Failures back off exponentially up to a minute and are
 * logged once per run of failures. Optional X-Herald-Signature: hex
 * HMAC-SHA256 of the body with event_webhook_secret. A reload that
 * changes the URL or ca_file rebuilds the pool (see reconf).
 */
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/time.h"
#include "provider/endpoint.h"
#include "send/events.h"
#include "send/webhook.h"

#define BATCH 100

static struct hd_endpoint endpoint = HD_ENDPOINT_INIT("event_webhook");

struct sender {
    struct hook *h;
    struct hd_shard *s;
    uint64_t cursor;
    int busy; /* a batch is out, or its cursor waits for the commit */
    int out;  /* a batch is out: the pool owes a callback */
    int failures;
    int64_t next_ms;
};

struct hook {
    struct hd_worker *w;
    struct hd_endpoint_pool ep; /* url NULL: no event_webhook */
    struct event *tick;
    struct sender *senders;
    int nsenders;
};

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

int
hd_webhook_prepare(const struct hd_conf *cf, char *err, size_t errlen)
{
    return hd_endpoint_prepare(&endpoint, cf->event_webhook,
                               cf->event_webhook_ca_file, err, errlen);
}

void
hd_webhook_commit(void)
{
    hd_endpoint_commit(&endpoint);
}

void
hd_webhook_abandon(void)
{
    hd_endpoint_abandon(&endpoint);
}

int
hd_webhook_init(const struct hd_conf *cf, char *err, size_t errlen)
{
    if (hd_webhook_prepare(cf, err, errlen) != HD_OK)
        return HD_ERROR;
    hd_webhook_commit();
    return HD_OK;
}

void
hd_webhook_free(void)
{
    hd_endpoint_free(&endpoint);
}

static void send_batch(struct sender *sd);

static void
on_committed_cursor(void *arg, int status)
{
    struct sender *sd = arg;
    sd->busy = 0;
}

static void
on_response(void *arg, const struct hd_http1_response *r, const char *error)
{
    struct sender *sd = arg;
    struct hook *h = sd->h;

    sd->out = 0;
    if (r != NULL && r->status >= 200 && r->status < 300) {
        unsigned char key[8];
        if (sd->failures)
            hd_log(HD_LOG_NOTICE, &h->w->log, 0,
                   "event webhook delivers again after %d failures",
                   sd->failures);
        sd->failures = 0;
        sd->next_ms = 0;
        put_be64(key, sd->cursor);
        /* the cursor moves with the next group commit */
        hd_store_put(sd->s, HD_DB_META, "webhook_seq", 11, key, 8);
        hd_store_after_commit(sd->s, on_committed_cursor, sd);
        return;
    }
    /* the stored cursor stays: the same events go again */
    if (sd->failures++ == 0) {
        if (error)
            hd_log(HD_LOG_ERR, &h->w->log, 0,
                   "event webhook failed: %s; retrying with backoff", error);
        else
            hd_log(HD_LOG_ERR, &h->w->log, 0,
                   "event webhook failed: HTTP %d; retrying with backoff",
                   r ? r->status : 0);
    }
    {
        int64_t wait = 1000LL << (sd->failures < 6 ? sd->failures : 6);
        sd->next_ms = hd_now_ms() + (wait > 60000 ? 60000 : wait);
    }
    sd->busy = 0;
}

/* the cursor stored in the shard (0: from the start) */
static uint64_t
stored_cursor(struct hd_shard *s)
{
    MDB_val v;
    if (hd_store_get(s, HD_DB_META, "webhook_seq", 11, &v) == HD_OK &&
        v.mv_size == 8)
        return get_be64(v.mv_data);
    return 0;
}

static void
send_batch(struct sender *sd)
{
    struct hook *h = sd->h;
    const struct hd_conf *cf = h->w->conf;
    json_t *events;
    char *body, headers[256] = "Content-Type: application/json\r\n";
    size_t len;

    if (sd->busy || h->ep.pool == NULL || hd_now_ms() < sd->next_ms)
        return;
    events = hd_events_read(sd->s, stored_cursor(sd->s), BATCH);
    if (json_array_size(events) == 0) {
        json_decref(events);
        return;
    }
    sd->cursor = (uint64_t)json_integer_value(json_object_get(
        json_array_get(events, json_array_size(events) - 1), "seq"));
    {
        json_t *doc = json_pack("{s:o}", "events", events);
        body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
    }
    len = strlen(body);
    if (cf->event_webhook_secret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        HMAC(EVP_sha256(), cf->event_webhook_secret,
             (int)strlen(cf->event_webhook_secret), (unsigned char *)body, len,
             mac, &n);
        hd_hex_encode(mac, n, hex);
        snprintf(headers + strlen(headers), sizeof(headers) - strlen(headers),
                 "X-Herald-Signature: sha256=%s\r\n", hex);
    }
    sd->busy = 1;
    sd->out = 1;
    if (hd_http1_request(h->ep.pool, "POST", h->ep.path, headers, body, len,
                         on_response, sd) != HD_OK)
        sd->busy = sd->out = 0;
    free(body);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct hook *h = arg;
    if (h->w->stopping)
        return;
    for (int i = 0; i < h->nsenders; i++)
        send_batch(&h->senders[i]);
}

/* Follows w's conf. When the URL or ca_file changed, the batches that
 * were out are dropped with the old pool (no callback), so their senders
 * are free again and send the same events (the stored cursor has not
 * moved) to the next URL; a sender whose cursor waits for a commit stays
 * busy until it lands. The tick runs while there is a URL. */
static void
update(struct hook *h, struct hd_worker *w)
{
    struct hd_http1_pool_conf pc;
    struct timeval tv = {0, 500000};

    memset(&pc, 0, sizeof(pc));
    pc.nconns = 1;
    pc.timeout_ms = 10000;
    if (!hd_endpoint_update(&endpoint, &h->ep, w, w->conf->event_webhook,
                            w->conf->event_webhook_ca_file, &pc))
        return;
    event_del(h->tick);
    for (int i = 0; i < h->nsenders; i++) {
        struct sender *sd = &h->senders[i];
        if (sd->out)
            sd->busy = sd->out = 0;
        /* a new receiver owes nothing to the old one's backoff */
        sd->failures = 0;
        sd->next_ms = 0;
    }
    if (h->ep.url != NULL)
        event_add(h->tick, &tv);
}

static int
webhook_init_worker(struct hd_worker *w)
{
    struct hook *h;

    if (w->nshards == 0)
        return HD_OK; /* no events of its own to send, ever */
    /* always there: a reload may add event_webhook */
    h = hd_calloc(sizeof(*h));
    h->w = w;
    h->senders = hd_calloc(w->nshards * sizeof(*h->senders));
    h->nsenders = w->nshards;
    for (int i = 0; i < w->nshards; i++) {
        h->senders[i].h = h;
        h->senders[i].s = w->shards[i];
    }
    h->tick = event_new(w->base, -1, EV_PERSIST, on_tick, h);
    update(h, w);
    w->module[HD_MODULE_WEBHOOK] = h;
    return HD_OK;
}

/* After a conf swap. The secret is read at each send, so only a new URL
 * or ca_file needs a new pool; an unchanged one keeps its connection. The
 * new URL gets the events after the shards' cursors: what the old one
 * acknowledged is not sent again, the batch that was out is. The hook
 * and its senders stay (a cursor commit may still point at one). */
static void
webhook_reconf_worker(struct hd_worker *w)
{
    struct hook *h = w->module[HD_MODULE_WEBHOOK];

    if (h != NULL)
        update(h, w);
}

static int
webhook_busy(struct hd_worker *w)
{
    struct hook *h = w->module[HD_MODULE_WEBHOOK];
    for (int i = 0; h && i < h->nsenders; i++)
        if (h->senders[i].busy)
            return 1;
    return 0;
}

static void
webhook_exit_worker(struct hd_worker *w)
{
    struct hook *h = w->module[HD_MODULE_WEBHOOK];
    if (h == NULL)
        return;
    event_free(h->tick);
    hd_endpoint_update(&endpoint, &h->ep, w, NULL, NULL, NULL);
    free(h->senders);
    free(h);
    w->module[HD_MODULE_WEBHOOK] = NULL;
}

const struct hd_module hd_webhook_module = {
    "webhook", webhook_init_worker, webhook_reconf_worker,
    NULL,      webhook_busy,        webhook_exit_worker,
};
