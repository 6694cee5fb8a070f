/*
 * endpoint.h: an outbound URL of herald's own (the event and the alert
 * webhooks) that a reload may change, with its ca_file. The main thread
 * checks a new URL and prepares its TLS context (hd_endpoint_prepare),
 * then commits or abandons it with the reload; each worker keeps its own
 * HTTP/1.1 pool for the URL of its conf and rebuilds it when the URL or
 * the ca_file changed (hd_endpoint_update). Knows nothing of what is sent.
 */
#ifndef HD_ENDPOINT_H
#define HD_ENDPOINT_H

#include "core/worker.h"
#include "provider/http1.h"
#include "provider/tls.h"

/* Shared by the workers; define with HD_ENDPOINT_INIT("directive"). */
struct hd_endpoint {
    const char *name; /* the directive, for messages */
    struct hd_tls_slot _slot;
};

#define HD_ENDPOINT_INIT(name)                                                 \
    {                                                                          \
        (name), HD_TLS_SLOT_INIT                                               \
    }

/* Main thread. url NULL: none (nothing to prepare). Errors name the
 * directive. */
int hd_endpoint_prepare(struct hd_endpoint *e, const char *url,
                        const char *ca_file, char *err, size_t errlen);
void hd_endpoint_commit(struct hd_endpoint *e);
void hd_endpoint_abandon(struct hd_endpoint *e);
void hd_endpoint_free(struct hd_endpoint *e);

/* One worker's pool for the endpoint. Zeroed: no URL. */
struct hd_endpoint_pool {
    char *url;                  /* what the pool was built for; NULL: none */
    char *ca_file;              /* idem */
    struct hd_http1_pool *pool; /* NULL: none, or it could not be built */
    SSL_CTX *ssl;               /* the pool's reference, or NULL */
    char path[1024];
    char host[256];
};

/* Worker thread: makes ep follow (url, ca_file), rebuilding its pool from
 * proto (name, host, port and ssl_ctx are filled in) when either changed;
 * a pool that cannot be built is logged and left NULL. Returns 1 when it
 * changed (the old pool's requests were dropped with no callback), else
 * 0. url NULL closes it. */
int hd_endpoint_update(struct hd_endpoint *e, struct hd_endpoint_pool *ep,
                       struct hd_worker *w, const char *url,
                       const char *ca_file,
                       const struct hd_http1_pool_conf *proto);

#endif
