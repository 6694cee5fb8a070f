/*
 * h2client.h: an outbound HTTP/2 client over TLS for the push providers.
 * A pool belongs to one worker (its event_base) and one provider: a few
 * connections, each carrying up to the peer's SETTINGS_MAX_CONCURRENT_
 * STREAMS requests, and a small bounded queue for requests beyond that.
 * Names are resolved by c-ares inside the loop. Worker thread only; knows
 * nothing of APNs, FCM or the dispatcher.
 */
#ifndef HD_H2CLIENT_H
#define HD_H2CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/log.h"

#define HD_H2_MAX_RESPONSE_HEADERS 16
#define HD_H2_MAX_RESPONSE_BODY 65536

/* A request or response header; names are lower-case (HTTP/2). A
 * request's names are string constants: nghttp2 sends them as they are,
 * from where they are, whenever the request's HEADERS go out. */
struct hd_h2_header {
    const char *name;
    const char *value;
    int no_index; /* request: never put it in the HPACK table */
};

struct hd_h2_response {
    int status;
    const struct hd_h2_header *headers;
    int nheaders;
    const unsigned char *body; /* NUL-terminated for convenience */
    size_t len;
};

/* Called once per request: with r on a response (any status) and error
 * NULL, or with r NULL and error a static message ("request timed out",
 * "connection closed", ...). r and what it points to are borrowed until
 * return. Called from the loop, never from within hd_h2_request. */
typedef void (*hd_h2_response_fn)(void *arg, const struct hd_h2_response *r,
                                  const char *error);

struct hd_h2_pool_conf {
    const char *name; /* for logs: the provider's name */
    const char *host; /* name or IP literal */
    int port;
    const char *authority;      /* NULL: host[:port] */
    SSL_CTX *ssl_ctx;           /* borrowed; outlives the pool */
    int nconns;                 /* connections (1 or more) */
    int max_queue;              /* requests waiting for a stream; 0: 4096 */
    int64_t connect_timeout_ms; /* TCP + TLS + first SETTINGS */
    int64_t request_timeout_ms; /* from hd_h2_request to the response */
    int64_t ping_interval_ms;   /* PING an idle connection; 0: 60 s */
    int metrics_id; /* provider index + 1 for herald_provider_*; 0: none */
};

struct hd_h2_pool;

/* A pool on base (the calling worker's). Connects lazily. NULL on error. */
struct hd_h2_pool *hd_h2_pool_new(struct event_base *base,
                                  const struct hd_log *log,
                                  const struct hd_h2_pool_conf *c);
/* Closes every connection. Pending requests are dropped with no callback:
 * call it only at worker exit, never from a callback. */
void hd_h2_pool_free(struct hd_h2_pool *p);

/* Queues a request. Copies method, path, header values and body (not
 * the header names: constants, see struct hd_h2_header). Returns HD_OK
 * (cb will be called exactly once) or HD_AGAIN when the queue is full (cb
 * will not be called). */
int hd_h2_request(struct hd_h2_pool *p, const char *method, const char *path,
                  const struct hd_h2_header *h, int nh, const void *body,
                  size_t len, hd_h2_response_fn cb, void *arg);

/* In a response callback with an error: the id of the connection loss
 * that took the request with others (it was sent, then its connection
 * closed), unique in the process; 0 for any other error. A circuit
 * breaker counts one loss once, not once per request. */
uint64_t hd_h2_lost_with(void);

struct hd_h2_stats {
    uint64_t connects; /* connections that reached READY */
    uint64_t requests; /* responses delivered */
    uint64_t retried;  /* refused or replayed on another connection */
    int queued;        /* waiting now */
    int active;        /* streams open now */
    int max_streams;   /* the largest peer limit seen */
};
void hd_h2_pool_stats(const struct hd_h2_pool *p, struct hd_h2_stats *st);

/* The value of header name in r, or NULL. */
const char *hd_h2_header_find(const struct hd_h2_response *r, const char *name);

/* "https://host[:port][/...]" -> host, port (default 443) and the path
 * part (points into url, "" if none). HD_ERROR on anything else. */
int hd_h2_parse_url(const char *url, char *host, size_t hostlen, int *port,
                    const char **path);

/* Retry-After (RFC 9110): delay-seconds or an HTTP-date, in ms clamped to
 * [0, 1 h]; -1 if v is NULL or not valid. */
int64_t hd_h2_retry_after_ms(const char *v, int64_t now_ms);

#endif
