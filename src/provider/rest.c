/*
 * rest.c: settings, TLS context and per-worker HTTP/1.1 pools shared by
 * the REST providers. Contexts are made by the main thread at create();
 * a pool by the worker that uses it, freed by that worker at exit.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/time.h"
#include "provider/h2client.h"
#include "provider/rest.h"
#include "provider/tls.h"

const char *
hd_rest_arg(const struct hd_provider_conf *pc, const char *name)
{
    const struct hd_conf_kv *kv = hd_conf_kv_find(pc, name);
    return kv ? kv->args[0] : NULL;
}

static int
bad(char *err, size_t errlen, const struct hd_conf_kv *kv, const char *what)
{
    snprintf(err, errlen,
             "invalid value \"%s\" in \"%s\" directive, %s in %s:%d",
             kv->args[0], kv->name, what, kv->file, kv->line);
    return HD_ERROR;
}

int
hd_rest_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;

    if ((kv = hd_conf_kv_find(pc, "url"))) {
        char host[256];
        const char *path;
        int tls, port;
        if (hd_http1_parse_url(kv->args[0], &tls, host, sizeof(host), &port,
                               &path) != HD_OK ||
            strpbrk(path, "?#"))
            return bad(err, errlen, kv, "expected https://host[:port][/path]");
    }
    if ((kv = hd_conf_kv_find(pc, "connections"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || end == kv->args[0] || n < 1 || n > 64)
            return bad(err, errlen, kv, "expected 1..64");
    }
    if ((kv = hd_conf_kv_find(pc, "timeout"))) {
        int64_t ms;
        if (hd_parse_time_ms(kv->args[0], &ms) != HD_OK || ms < 1)
            return bad(err, errlen, kv, "expected a time");
    }
    return HD_OK;
}

int
hd_rest_init(struct hd_rest *r, const struct hd_provider_conf *pc,
             const char *default_url, char *err, size_t errlen)
{
    const char *url = hd_rest_arg(pc, "url"), *path, *s;
    size_t n;

    if (hd_rest_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    memset(r, 0, sizeof(*r));
    if (url == NULL)
        url = default_url;
    if (hd_http1_parse_url(url, &r->tls, r->host, sizeof(r->host), &r->port,
                           &path) != HD_OK) {
        snprintf(err, errlen, "provider \"%s\": bad url \"%s\"", pc->name, url);
        return HD_ERROR;
    }
    n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        n--;
    r->prefix = hd_strndup(path, n);
    r->name = hd_strdup(pc->name);
    r->nconns = (s = hd_rest_arg(pc, "connections")) ? atoi(s) : 4;
    r->timeout_ms = 10000;
    if ((s = hd_rest_arg(pc, "timeout")))
        hd_parse_time_ms(s, &r->timeout_ms);
    if (r->tls) {
        struct hd_tls_conf tc = {hd_rest_arg(pc, "ca_file"), NULL, NULL, NULL};
        char terr[512];
        r->ctx = hd_tls_ctx_new(&tc, terr, sizeof(terr));
        if (r->ctx == NULL) {
            snprintf(err, errlen, "provider \"%s\": %s", pc->name, terr);
            hd_rest_free(r);
            return HD_ERROR;
        }
    }
    return HD_OK;
}

void
hd_rest_free(struct hd_rest *r)
{
    if (r->ctx)
        hd_tls_ctx_free(r->ctx);
    free(r->prefix);
    free(r->name);
    r->ctx = NULL;
    r->prefix = r->name = NULL;
}

struct hd_rest_worker *
hd_rest_worker(struct hd_rest *r, struct hd_provider *p, struct hd_worker *w)
{
    void **slot = &p->worker_data[w->id];
    struct hd_rest_worker *rw = *slot;
    struct hd_http1_pool_conf c;

    if (rw)
        return rw;
    memset(&c, 0, sizeof(c));
    c.name = r->name;
    c.host = r->host;
    c.port = r->port;
    c.ssl_ctx = r->ctx;
    c.nconns = r->nconns;
    c.timeout_ms = r->timeout_ms;
    c.metrics_id = p->index + 1;
    rw = hd_calloc(sizeof(*rw));
    rw->pool = hd_http1_pool_new(w->base, &w->log, &c);
    if (rw->pool == NULL) {
        free(rw);
        return NULL;
    }
    *slot = rw;
    return rw;
}

void
hd_rest_exit_worker(void **slot)
{
    struct hd_rest_worker *rw = *slot;

    if (rw == NULL)
        return;
    hd_http1_pool_free(rw->pool);
    while (rw->inflight)
        hd_rest_req_free(rw->inflight);
    free(rw);
    *slot = NULL;
}

void *
hd_rest_req_new(struct hd_rest_worker *rw, struct hd_job *j, size_t size)
{
    struct hd_rest_req *q = hd_calloc(size);

    q->rw = rw;
    q->j = j;
    q->next = rw->inflight;
    if (rw->inflight)
        rw->inflight->prev = q;
    rw->inflight = q;
    return q;
}

void
hd_rest_req_free(void *req)
{
    struct hd_rest_req *q = req;

    if (q->prev)
        q->prev->next = q->next;
    else
        q->rw->inflight = q->next;
    if (q->next)
        q->next->prev = q->prev;
    free(q);
}

void
hd_rest_finish(void *req, const char *name, const struct hd_http1_response *r,
               const char *error, hd_rest_classify_fn classify)
{
    struct hd_job *j = ((struct hd_rest_req *)req)->j;
    char detail[256];
    int64_t ra = 0;
    int outcome;

    hd_rest_req_free(req);
    if (r == NULL) {
        snprintf(detail, sizeof(detail), "%s: %s", name, error);
        j->done(j, HD_OUT_RETRY, 0, detail);
        return;
    }
    outcome = classify(r, &ra, detail, sizeof(detail));
    j->done(j, outcome, ra, detail);
}

int64_t
hd_rest_retry_after(const struct hd_http1_response *r)
{
    int64_t ms = hd_h2_retry_after_ms(hd_http1_header_find(r, "Retry-After"),
                                      hd_now_ms());
    return ms < 0 ? 0 : ms;
}
