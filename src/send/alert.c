/*
 * alert.c: the alert webhook (`alert_webhook URL;`): one POST per circuit
 * breaker transition, so that an operator hears of a provider outage and
 * of its end without reading logs. Worker thread: each worker queues its
 * own breakers' alerts in a bounded ring (full: the new alert is dropped
 * and counted) and sends them in order, one at a time, on its own HTTP/1.1
 * pool; a failed POST is retried with backoff ALERT_ATTEMPTS times in all.
 * Queuing copies and returns, sending is the loop's: nothing here waits,
 * so a dead receiver costs deliveries nothing. Optional
 * X-Herald-Signature as the event webhook's (alert_webhook_secret).
 */
#include <stdio.h>

#include <openssl/evp.h>
#include <jansson.h>
#include <openssl/hmac.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/http1.h"
#include "provider/tls.h"
#include "send/alert.h"

#define ALERT_QUEUE 64
#define ALERT_ATTEMPTS 5
#define ALERT_TIMEOUT_MS 5000
#define ALERT_BACKOFF_MS 500 /* doubling: 0.5, 1, 2, 4 s */

static SSL_CTX *ssl_ctx;

struct alerter {
    struct hd_worker *w;
    struct hd_http1_pool *pool;
    char path[1024];
    char host[256];
    struct event *ev;     /* sends the head: now, or at its retry time */
    char *q[ALERT_QUEUE]; /* bodies, a ring from head */
    int head, n;
    int attempts; /* of the head */
    int waiting;  /* the head is out, or waits for its retry */
};

int
hd_alert_init(const struct hd_conf *cf, char *err, size_t errlen)
{
    struct hd_tls_conf tc = {NULL, NULL, NULL, NULL};
    char host[256];
    const char *path;
    int tls, port;

    if (cf->alert_webhook == NULL)
        return HD_OK;
    if (hd_http1_parse_url(cf->alert_webhook, &tls, host, sizeof(host), &port,
                           &path) != HD_OK) {
        snprintf(err, errlen, "\"alert_webhook\" must be an http(s) URL");
        return HD_ERROR;
    }
    if (!tls)
        return HD_OK;
    tc.ca_file = cf->alert_webhook_ca_file;
    ssl_ctx = hd_tls_ctx_new(&tc, err, errlen);
    return ssl_ctx ? HD_OK : HD_ERROR;
}

void
hd_alert_free(void)
{
    hd_tls_ctx_free(ssl_ctx);
    ssl_ctx = NULL;
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
    if (hd_http1_request(a->pool, "POST", a->path, headers, body, len,
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

    if (a == NULL)
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

static int
alert_init_worker(struct hd_worker *w)
{
    const struct hd_conf *cf = w->conf;
    struct hd_http1_pool_conf pc;
    struct alerter *a;
    const char *path;
    int tls, port;

    if (cf->alert_webhook == NULL)
        return HD_OK;
    a = hd_calloc(sizeof(*a));
    a->w = w;
    if (hd_http1_parse_url(cf->alert_webhook, &tls, a->host, sizeof(a->host),
                           &port, &path) != HD_OK) {
        free(a);
        return HD_OK; /* hd_alert_init refused it first */
    }
    snprintf(a->path, sizeof(a->path), "%s", *path ? path : "/");
    memset(&pc, 0, sizeof(pc));
    pc.name = "alert_webhook";
    pc.host = a->host;
    pc.port = port;
    pc.ssl_ctx = tls ? ssl_ctx : NULL;
    pc.nconns = 1;
    pc.max_queue = 1;
    pc.timeout_ms = ALERT_TIMEOUT_MS;
    a->pool = hd_http1_pool_new(w->base, &w->log, &pc);
    a->ev = event_new(w->base, -1, 0, on_send, a);
    w->module[HD_MODULE_ALERT] = a;
    return HD_OK;
}

static void
alert_exit_worker(struct hd_worker *w)
{
    struct alerter *a = w->module[HD_MODULE_ALERT];

    if (a == NULL)
        return;
    event_free(a->ev);
    hd_http1_pool_free(a->pool);
    for (int i = 0; i < a->n; i++)
        free(a->q[(a->head + i) % ALERT_QUEUE]);
    free(a);
    w->module[HD_MODULE_ALERT] = NULL;
}

const struct hd_module hd_alert_module = {
    "alert", alert_init_worker, NULL, NULL, NULL, alert_exit_worker,
};
