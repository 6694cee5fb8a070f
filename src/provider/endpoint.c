/*
 * endpoint.c: herald's own outbound URLs (event and alert webhooks) that
 * follow reloads: the URL check and TLS context on the main thread, one
 * HTTP/1.1 pool per worker rebuilt when the URL or ca_file changes.
 */
#include <stdio.h>

#include "core/herald.h"
#include "provider/endpoint.h"

int
hd_endpoint_prepare(struct hd_endpoint *e, const char *url, const char *ca_file,
                    char *err, size_t errlen)
{
    char host[256];
    const char *path;
    int tls, port;

    if (url == NULL)
        return HD_OK;
    if (hd_http1_parse_url(url, &tls, host, sizeof(host), &port, &path) !=
        HD_OK) {
        snprintf(err, errlen, "\"%s\" must be an http(s) URL", e->name);
        return HD_ERROR;
    }
    if (!tls)
        return HD_OK;
    return hd_tls_slot_prepare(&e->_slot, ca_file, err, errlen);
}

void
hd_endpoint_commit(struct hd_endpoint *e)
{
    hd_tls_slot_commit(&e->_slot);
}

void
hd_endpoint_abandon(struct hd_endpoint *e)
{
    hd_tls_slot_abandon(&e->_slot);
}

void
hd_endpoint_free(struct hd_endpoint *e)
{
    hd_tls_slot_free(&e->_slot);
}

static int
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
pool_close(struct hd_endpoint_pool *ep)
{
    hd_http1_pool_free(ep->pool);
    hd_tls_ctx_free(ep->ssl);
    free(ep->url);
    free(ep->ca_file);
    ep->pool = NULL;
    ep->ssl = NULL;
    ep->url = NULL;
    ep->ca_file = NULL;
}

/* prepare checked the URL and the context on the main thread, so the
 * failures here are not expected */
static void
pool_open(struct hd_endpoint *e, struct hd_endpoint_pool *ep,
          struct hd_worker *w, const char *url, const char *ca_file,
          const struct hd_http1_pool_conf *proto)
{
    struct hd_http1_pool_conf pc = *proto;
    const char *path;
    int tls, port;

    ep->url = hd_strdup(url);
    ep->ca_file = ca_file ? hd_strdup(ca_file) : NULL;
    if (hd_http1_parse_url(url, &tls, ep->host, sizeof(ep->host), &port,
                           &path) != HD_OK) {
        hd_log(HD_LOG_ERR, &w->log, 0, "%s \"%s\" is not a URL", e->name, url);
        return;
    }
    snprintf(ep->path, sizeof(ep->path), "%s", *path ? path : "/");
    if (tls && (ep->ssl = hd_tls_slot_take(&e->_slot, ca_file)) == NULL) {
        hd_log(HD_LOG_ERR, &w->log, 0, "%s has no TLS context for its ca_file",
               e->name);
        return;
    }
    pc.name = e->name;
    pc.host = ep->host;
    pc.port = port;
    pc.ssl_ctx = ep->ssl;
    ep->pool = hd_http1_pool_new(w->base, &w->log, &pc);
}

int
hd_endpoint_update(struct hd_endpoint *e, struct hd_endpoint_pool *ep,
                   struct hd_worker *w, const char *url, const char *ca_file,
                   const struct hd_http1_pool_conf *proto)
{
    if (same_str(ep->url, url) && same_str(ep->ca_file, ca_file))
        return 0;
    pool_close(ep);
    if (url != NULL)
        pool_open(e, ep, w, url, ca_file, proto);
    return 1;
}
