/*
 * tls.h: client TLS contexts for the outbound provider connections. One
 * SSL_CTX per provider, made by the main thread at create() and shared
 * read-only by the workers (OpenSSL locks what it must inside SSL_CTX).
 * Knows nothing of HTTP/2 or of any provider's protocol.
 */
#ifndef HD_TLS_H
#define HD_TLS_H

#include <pthread.h>
#include <stddef.h>
#include <openssl/ssl.h>

struct hd_tls_conf {
    const char *ca_file;   /* NULL: the system trust store */
    const char *cert_file; /* client certificate (PEM), or NULL */
    const char *key_file;  /* its key (PEM); NULL: in cert_file */
    const char *alpn;      /* "h2", or NULL for none */
};

/* A context for TLS 1.2+ with peer verification. NULL and a message in err
 * ("cannot load ca_file \"x\": ...") on failure. */
SSL_CTX *hd_tls_ctx_new(const struct hd_tls_conf *c, char *err, size_t errlen);
void hd_tls_ctx_free(SSL_CTX *ctx);

/* One outbound URL's context when a reload may change its ca_file (the
 * event and alert webhooks): the main thread prepares a context, commits
 * it once the whole reload is accepted (or abandons it), and each worker
 * takes a reference when it rebuilds its pool after the conf message. A
 * worker asks for its conf's ca_file, so it never gets a context made for
 * another one. Define with HD_TLS_SLOT_INIT. */
struct hd_tls_slot {
    pthread_mutex_t _lock;
    SSL_CTX *_ctx;  /* published, under _lock */
    char *_ca_file; /* what _ctx trusts; NULL: the system store */
    SSL_CTX *_next; /* main thread: prepared, not yet published */
    char *_next_ca_file;
};

#define HD_TLS_SLOT_INIT                                                       \
    {                                                                          \
        PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, NULL                      \
    }

/* Main thread: a context for ca_file unless the published one already
 * trusts it. HD_ERROR and a message in err if it cannot be made. */
int hd_tls_slot_prepare(struct hd_tls_slot *s, const char *ca_file, char *err,
                        size_t errlen);
void hd_tls_slot_commit(struct hd_tls_slot *s);  /* publishes the prepared */
void hd_tls_slot_abandon(struct hd_tls_slot *s); /* frees the prepared */
void hd_tls_slot_free(struct hd_tls_slot *s);    /* at exit */
/* Any thread: a new reference to the published context if it trusts
 * ca_file (free it with hd_tls_ctx_free), else NULL. */
SSL_CTX *hd_tls_slot_take(struct hd_tls_slot *s, const char *ca_file);

/* A connection object for host: SNI (unless host is an IP literal) and
 * certificate name or IP check. NULL on failure. */
SSL *hd_tls_new(SSL_CTX *ctx, const char *host);

/* The last OpenSSL error as text, for logs ("" if none); clears the queue.
 */
const char *hd_tls_error(char *buf, size_t size);

#endif
