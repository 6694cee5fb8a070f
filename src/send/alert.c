/*
 * alert.c: the alert webhook (`alert_webhook URL;`): one POST per circuit
 * breaker transition, so that an operator hears of a provider outage and
 * of its end without reading logs. Worker thread: each worker queues its
 * own breakers' alerts in a bounded ring (full: the new alert is dropped
 * and counted) and sends them in order, one at a time, on its own HTTP/1.1
 * pool; a failed POST is retried with backoff ALERT_ATTEMPTS times in all.
 * Queuing copies and returns, sending is the loop's: nothing here waits,
 * so a dead receiver costs deliveries nothing. Optional
 * X-Herald-Signature as the event webhook's (alert_webhook_secret). A
 * reload that changes the URL or ca_file rebuilds the pool (see reconf).
 */
#include <stdio.h>

#include <openssl/evp.h>
#include <jansson.h>
#include <openssl/hmac.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/endpoint.h"
#include "send/alert.h"

#define ALERT_QUEUE 64
#define ALERT_ATTEMPTS 5
#define ALERT_TIMEOUT_MS 5000
#define ALERT_BACKOFF_MS 500 /* doubling: 0.5, 1, 2, 4 s */

static struct hd_endpoint endpoint = HD_ENDPOINT_INIT("alert_webhook");

struct alerter {
    struct hd_worker *w;
    struct hd_endpoint_pool ep; /* url NULL: no alert_webhook */
    struct event *ev;           /* sends the head: now, or at its retry time */
    char *q[ALERT_QUEUE];       /* bodies, a ring from head */
    int head, n;
    int attempts; /* of the head */
    int waiting;  /* the head is out, or waits for its retry */
};

int
hd_alert_prepare(const struct hd_conf *cf, char *err, size_t errlen)
{
    return hd_endpoint_prepare(&endpoint, cf->alert_webhook,
                               cf->alert_webhook_ca_file, err, errlen);
}

void
hd_alert_commit(void)
{
    hd_endpoint_commit(&endpoint);
}

void
hd_alert_abandon(void)
{
    hd_endpoint_abandon(&endpoint);
}

int
hd_alert_init(const struct hd_conf *cf, char *err, size_t errlen)
{
    if (hd_alert_prepare(cf, err, errlen) != HD_OK)
        return HD_ERROR;
    hd_alert_commit();
    return HD_OK;
}

void
hd_alert_free(void)
{
    hd_endpoint_free(&endpoint);
}

static void
pop(struct alerter *a)
{
    free(a->q[a->head]);
    a->q[a->head] = NULL;
    a->head = (a->head + 1) % ALERT_QUEUE;
    a->n--;
    a->attempts = 0;
    a->waiting = 0;
    if (a->n > 0)
        event_active(a->ev, EV_TIMEOUT, 0);
}

static void
on_response(void *arg, const struct hd_http1_response *r, const char *error)
{
    struct alerter *a = arg;
    struct hd_metrics *m = hd_metrics_self();
    struct timeval tv;
    int64_t wait;

    if (r != NULL && r->status >= 200 && r->status < 300) {
        HD_COUNT(m->alerts[HD_ALERT_SENT], 1);
        pop(a);
        return;
    }
    if (++a->attempts >= ALERT_ATTEMPTS) {
        if (error)
            hd_log(HD_LOG_ERR, &a->w->log, 0,
                   "alert webhook failed %d times, alert dropped: %s",
                   a->attempts, error);
        else
            hd_log(HD_LOG_ERR, &a->w->log, 0,
                   "alert webhook failed %d times, alert dropped: HTTP %d",
                   a->attempts, r ? r->status : 0);
        HD_COUNT(m->alerts[HD_ALERT_FAILED], 1);
        pop(a);
        return;
    }
    wait = (int64_t)ALERT_BACKOFF_MS << (a->attempts - 1);
    tv.tv_sec = wait / 1000;
    tv.tv_usec = (wait % 1000) * 1000;
    event_add(a->ev, &tv);
}

static void
on_send(evutil_socket_t fd, short what, void *arg)
{
    struct alerter *a = arg;
    const struct hd_conf *cf = a->w->conf;
    char headers[256] = "Content-Type: application/json\r\n";
    const char *body;
    size_t len;

    if (a->n == 0 || a->w->stopping)
        return;
    if (a->waiting && !(what & EV_TIMEOUT))
        return;
    body = a->q[a->head];
    len = strlen(body);
    if (cf->alert_webhook_secret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        HMAC(EVP_sha256(), cf->alert_webhook_secret,
             (int)strlen(cf->alert_webhook_secret), (const unsigned char *)body,
             len, mac, &n);
        hd_hex_encode(mac, n, hex);
        snprintf(headers + strlen(headers), sizeof(headers) - strlen(headers),
                 "X-Herald-Signature: sha256=%s\r\n", hex);
    }
    a->waiting = 1;
    if (a->ep.pool == NULL) { /* logged when it failed to build */
        on_response(a, NULL, "no connection pool");
        return;
    }
    if (hd_http1_request(a->ep.pool, "POST", a->ep.path, headers, body, len,
                         on_response, a) != HD_OK)
        on_response(a, NULL, "queue full");
}

void
hd_alert_breaker(struct hd_worker *w, const char *provider, const char *from,
                 const char *to, int failures)
{
    struct alerter *a = w->module[HD_MODULE_ALERT];
    char at[32];
    json_t *doc;

    if (a == NULL || a->ep.url == NULL)
        return;
    if (a->n == ALERT_QUEUE) {
        HD_COUNT(hd_metrics_self()->alerts[HD_ALERT_DROPPED], 1);
        return;
    }
    hd_time_iso(hd_now_ms(), at, sizeof(at));
    doc = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:s}", "type",
                    "circuit_breaker", "provider", provider, "worker", w->id,
                    "from", from, "to", to, "failures", failures, "at", at);
    a->q[(a->head + a->n) % ALERT_QUEUE] = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    a->n++;
    /* from the loop, never from inside the dispatcher's call */
    if (!a->waiting)
        event_active(a->ev, 0, 0);
}

/* ==== module ==== */

/* Follows w's conf; 1 when the URL or ca_file changed (the POST that was
 * out, if any, is dropped with the old pool: no callback). */
static int
update(struct alerter *a, struct hd_worker *w)
{
    struct hd_http1_pool_conf pc;

    memset(&pc, 0, sizeof(pc));
    pc.nconns = 1;
    pc.max_queue = 1;
    pc.timeout_ms = ALERT_TIMEOUT_MS;
    return hd_endpoint_update(&endpoint, &a->ep, w, w->conf->alert_webhook,
                              w->conf->alert_webhook_ca_file, &pc);
}

static int
alert_init_worker(struct hd_worker *w)
{
    struct alerter *a = hd_calloc(sizeof(*a));

    /* always there: a reload may add alert_webhook */
    a->w = w;
    a->ev = event_new(w->base, -1, 0, on_send, a);
    update(a, w);
    w->module[HD_MODULE_ALERT] = a;
    return HD_OK;
}

/* After a conf swap. The secret is read at each send, so only a new URL
 * or ca_file needs a new pool; an unchanged one keeps its connection. The
 * alerts queued (and the one out, whose POST the old pool drops) go to
 * the new URL with their attempts anew: they tell of this worker's
 * breakers, whoever now listens. With alert_webhook removed they are
 * dropped and counted as such. */
static void
alert_reconf_worker(struct hd_worker *w)
{
    struct alerter *a = w->module[HD_MODULE_ALERT];

    if (!update(a, w))
        return;
    event_del(a->ev);
    a->attempts = 0;
    a->waiting = 0;
    if (w->conf->alert_webhook == NULL) {
        if (a->n > 0)
            hd_log(HD_LOG_NOTICE, &w->log, 0,
                   "alert_webhook removed: %d queued alert(s) dropped", a->n);
        HD_COUNT(hd_metrics_self()->alerts[HD_ALERT_DROPPED], a->n);
        for (; a->n > 0; a->n--, a->head = (a->head + 1) % ALERT_QUEUE) {
            free(a->q[a->head]);
            a->q[a->head] = NULL;
        }
        return;
    }
    if (a->n > 0)
        event_active(a->ev, EV_TIMEOUT, 0);
}

static void
alert_exit_worker(struct hd_worker *w)
{
    struct alerter *a = w->module[HD_MODULE_ALERT];

    if (a == NULL)
        return;
    event_free(a->ev);
    hd_endpoint_update(&endpoint, &a->ep, w, NULL, NULL, NULL);
    for (int i = 0; i < a->n; i++)
        free(a->q[(a->head + i) % ALERT_QUEUE]);
    free(a);
    w->module[HD_MODULE_ALERT] = NULL;
}

const struct hd_module hd_alert_module = {
    "alert", alert_init_worker, alert_reconf_worker, NULL,
    NULL,    alert_exit_worker,
};
