/*
 * rest.h: what the HTTP/1.1 REST providers (twilio, vonage, sendgrid)
 * share: the url, connections, timeout and ca_file settings, one TLS
 * context per provider (main thread, at create) and one http1 pool per
 * worker (made on the worker's first send). Knows nothing of any one
 * provider's API.
 */
#ifndef HD_REST_H
#define HD_REST_H

#include "provider/http1.h"
#include "provider/provider.h"

/* For a provider's settings table: the four shared settings. */
#define HD_REST_SETTINGS                                                       \
    {"url", 1, 0}, {"connections", 1, 0}, {"timeout", 1, 0},                   \
    {                                                                          \
        "ca_file", 1, 0                                                        \
    }

struct hd_rest {
    char *name;
    char host[256];
    int port;
    int tls;
    char *prefix; /* the url's path, without a trailing '/' */
    SSL_CTX *ctx; /* NULL for http:// */
    int nconns;
    int64_t timeout_ms;
};

/* Checks url (http:// or https://host[:port][/prefix]), connections
 * (1..64), timeout; errors end "in FILE:LINE". */
int hd_rest_check(const struct hd_provider_conf *pc, char *err, size_t errlen);
/* Fills r from pc; default_url when pc has no url. */
int hd_rest_init(struct hd_rest *r, const struct hd_provider_conf *pc,
                 const char *default_url, char *err, size_t errlen);
void hd_rest_free(struct hd_rest *r);
/* One worker's side: its pool and the requests it has out, so that what
 * the pool drops at exit is freed too. */
struct hd_rest_req;
struct hd_rest_worker {
    struct hd_http1_pool *pool;
    struct hd_rest_req *inflight;
};

/* A request out for job j; providers embed it first in their own. */
struct hd_rest_req {
    struct hd_rest_req *next, *prev;
    struct hd_rest_worker *rw;
    struct hd_job *j;
};

/* Worker w's side for r, made on first use and kept in the provider's
 * worker_data[w->id]. NULL if the pool cannot be made. */
struct hd_rest_worker *hd_rest_worker(struct hd_rest *r, struct hd_provider *p,
                                      struct hd_worker *w);
/* Frees the pool, then every request still out (their jobs unanswered:
 * worker exit only). */
void hd_rest_exit_worker(void **slot);
/* size >= sizeof(struct hd_rest_req): zeroed, linked into rw. */
void *hd_rest_req_new(struct hd_rest_worker *rw, struct hd_job *j, size_t size);
void hd_rest_req_free(void *req);

/* A provider's reading of an answer: the outcome, *retry_after in ms,
 * detail (message id or error). */
typedef int (*hd_rest_classify_fn)(const struct hd_http1_response *r,
                                   int64_t *retry_after, char *detail,
                                   size_t len);
/* The end of request req: frees it, then reports its job's outcome, a
 * retry when the connection failed or timed out (r NULL, error says why,
 * prefixed with name), else what classify reads in r. */
void hd_rest_finish(void *req, const char *name,
                    const struct hd_http1_response *r, const char *error,
                    hd_rest_classify_fn classify);

/* The value of setting name, or NULL. */
const char *hd_rest_arg(const struct hd_provider_conf *pc, const char *name);
/* Retry-After of r in ms (delay-seconds or HTTP-date), or 0. */
int64_t hd_rest_retry_after(const struct hd_http1_response *r);

#endif
