/*
 * http1.h: a small outbound HTTP/1.1 client for the REST providers
 * (Twilio, Vonage, SendGrid): a keep-alive pool per worker and provider,
 * one request per connection at a time, a bounded queue, one timeout per
 * request. TLS (verified) or, when a test configures an http:// URL,
 * plain TCP. Worker thread only; knows nothing of any provider.
 */
#ifndef HD_HTTP1_H
#define HD_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/log.h"

#define HD_HTTP1_MAX_HEADERS 32
#define HD_HTTP1_MAX_HEAD 16384
#define HD_HTTP1_MAX_BODY (1024 * 1024)

struct hd_http1_header {
    const char *name; /* as received; compare without case */
    const char *value;
};

struct hd_http1_response {
    int status;
    const struct hd_http1_header *headers;
    int nheaders;
    const char *body; /* NUL-terminated for convenience */
    size_t len;
};

/* Called once per request: with r (any status) and error NULL, or with r
 * NULL and error a message ("request timed out", "connect() to ...
 * failed: ..."). r, error and what they point to are borrowed until
 * return. Always called from the loop, never from hd_http1_request. */
typedef void (*hd_http1_response_fn)(void *arg,
                                     const struct hd_http1_response *r,
                                     const char *error);

struct hd_http1_pool_conf {
    const char *name; /* for logs: the provider's name */
    const char *host; /* name or IP literal */
    int port;
    SSL_CTX *ssl_ctx;        /* borrowed, outlives the pool; NULL: plain HTTP */
    int nconns;              /* connections at most (1 or more) */
    int max_queue;           /* requests waiting for a connection; 0: 4096 */
    int64_t timeout_ms;      /* from hd_http1_request to the response */
    int64_t idle_timeout_ms; /* an idle connection is closed; 0: 30 s */
    int metrics_id; /* provider index + 1 for herald_provider_*; 0: none */
};

struct hd_http1_pool;

/* A pool on base (the calling worker's); connects lazily. NULL on error. */
struct hd_http1_pool *hd_http1_pool_new(struct event_base *base,
                                        const struct hd_log *log,
                                        const struct hd_http1_pool_conf *c);
/* Closes every connection; pending requests are dropped with no callback:
 * at worker exit or when a reload replaces the pool, never from a
 * callback. */
void hd_http1_pool_free(struct hd_http1_pool *p);

/* Queues a request. headers: more header lines, each "Name: value\r\n"
 * (Host, Content-Length and User-Agent are added). Copies everything.
 * HD_OK: cb will be called once; HD_AGAIN: the queue is full, it will
 * not. */
int hd_http1_request(struct hd_http1_pool *p, const char *method,
                     const char *path, const char *headers, const void *body,
                     size_t len, hd_http1_response_fn cb, void *arg);

/* The value of header name in r (case-insensitive), or NULL. */
const char *hd_http1_header_find(const struct hd_http1_response *r,
                                 const char *name);

/* "https://host[:port][/path]" or "http://..." -> *tls, host, port
 * (default 443 or 80) and the path part (points into url, "" if none).
 * HD_ERROR on anything else. */
int hd_http1_parse_url(const char *url, int *tls, char *host, size_t hostlen,
                       int *port, const char **path);

struct hd_http1_stats {
    uint64_t connects; /* connections established */
    uint64_t requests; /* responses delivered */
    uint64_t replayed; /* sent again after a stale keep-alive close */
};
void hd_http1_pool_stats(const struct hd_http1_pool *p,
                         struct hd_http1_stats *st);

#endif
