/*
 * tls.h: client TLS contexts for the outbound provider connections. One
 * SSL_CTX per provider, made by the main thread at create() and shared
 * read-only by the workers (OpenSSL locks what it must inside SSL_CTX).
 * Knows nothing of HTTP/2 or of any provider's protocol.
 */
#ifndef HD_TLS_H
#define HD_TLS_H

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

/* A connection object for host: SNI (unless host is an IP literal) and
 * certificate name or IP check. NULL on failure. */
SSL *hd_tls_new(SSL_CTX *ctx, const char *host);

/* The last OpenSSL error as text, for logs ("" if none); clears the queue.
 */
const char *hd_tls_error(char *buf, size_t size);

#endif
