/*
 * http.h: HTTP/1.1 ingest. A request belongs to its connection's worker;
 * handlers either answer at once or hand a call to a shard's owner and
 * answer when it returns. Exactly one reply per request.
 */
#ifndef HD_HTTP_H
#define HD_HTTP_H

#include <jansson.h>
#include <openssl/ssl.h>

#include "core/herald.h"
#include "core/conf.h"
#include "core/worker.h"

enum hd_method {
    HD_M_GET = 1,
    HD_M_HEAD,
    HD_M_POST,
    HD_M_PUT,
    HD_M_PATCH,
    HD_M_DELETE,
    HD_M_OPTIONS
};

#define HD_MAX_PARAMS 4

struct hd_conn;

struct hd_req {
    struct hd_conn *conn;
    struct hd_worker *worker;
    struct hd_conf *conf; /* a reference held for the request's life */
    int method;
    const char *method_name;
    char *path;  /* NUL-terminated, undecoded, without the query */
    char *query; /* after '?', or NULL */
    char *body;  /* NUL-terminated; body_len bytes */
    size_t body_len;
    const char *authorization;
    const char *idempotency_key;
    const char *content_type;
    const char *twilio_signature;
    int keepalive;
    int expect_continue;
    const struct hd_api_key *key;
    char *params[HD_MAX_PARAMS]; /* decoded {} segments of the route */
    int nparams;
    int64_t start_us;
    int status;
    char *_hdr; /* the header block; the pointers above point into it */
};

extern const struct hd_module hd_http_module;

/* The server TLS context for "listen ... ssl" (main thread). At start:
 * init, HD_OK or HD_ERROR with err. At a reload: load (certificate files
 * read anew; NULL with err), then set once the reload is sure: workers
 * take it at their next config turn, connections keep the one they have. */
int hd_http_ssl_init(const struct hd_conf *cf, char *err, size_t errlen);
int hd_http_ssl_needed(const struct hd_conf *cf);
SSL_CTX *hd_http_ssl_load(const struct hd_conf *cf, char *err, size_t errlen);
void hd_http_ssl_set(SSL_CTX *ctx); /* takes ctx */
void hd_http_ssl_free(void);

/* Sends status and body (takes body; NULL for none) and finishes r. */
void hd_http_reply(struct hd_req *r, int status, json_t *body);
/* The same with a body of another type (/metrics). Borrows text. */
void hd_http_reply_text(struct hd_req *r, int status, const char *type,
                        const char *text, size_t len);
/* {"error": {"code", "message", "field"}}; field may be NULL. */
void hd_http_error(struct hd_req *r, int status, const char *code,
                   const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Adds a header line ("Retry-After: 3") to the next reply of r. */
void hd_http_header(struct hd_req *r, const char *line);

/* route.c */
void hd_http_route(struct hd_req *r);

#endif
