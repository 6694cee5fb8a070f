/*
 * tls.c: client SSL_CTX for provider connections (TLS 1.2+, ALPN, peer
 * verification with a host name or IP check, optional client certificate
 * for APNs certificate auth). Contexts are made by the main thread; SSL
 * objects by the worker that owns the connection.
 */
#include <stdio.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/herald.h"
#include "provider/tls.h"

const char *
hd_tls_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();

    buf[0] = '\0';
    if (e)
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}

SSL_CTX *
hd_tls_ctx_new(const struct hd_tls_conf *c, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new() failed: %s",
                 hd_tls_error(ebuf, sizeof(ebuf)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    if (c->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
            snprintf(err, errlen, "cannot load ca_file \"%s\": %s", c->ca_file,
                     hd_tls_error(ebuf, sizeof(ebuf)));
            goto fail_free_ctx;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s",
                 hd_tls_error(ebuf, sizeof(ebuf)));
        goto fail_free_ctx;
    }

    if (c->cert_file) {
        const char *key = c->key_file ? c->key_file : c->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
            snprintf(err, errlen, "cannot load certificate \"%s\": %s",
                     c->cert_file, hd_tls_error(ebuf, sizeof(ebuf)));
            goto fail_free_ctx;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "cannot load certificate key \"%s\": %s", key,
                     hd_tls_error(ebuf, sizeof(ebuf)));
            goto fail_free_ctx;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen,
                     "certificate \"%s\" and key \"%s\" do not match",
                     c->cert_file, key);
            goto fail_free_ctx;
        }
    }

    if (c->alpn) {
        unsigned char proto[32];
        size_t n = strlen(c->alpn);
        if (n == 0 || n >= sizeof(proto)) {
            snprintf(err, errlen, "bad ALPN \"%s\"", c->alpn);
            goto fail_free_ctx;
        }
        proto[0] = (unsigned char)n;
        memcpy(proto + 1, c->alpn, n);
        /* returns 0 on success (sic) */
        if (SSL_CTX_set_alpn_protos(ctx, proto, (unsigned)n + 1) != 0) {
            snprintf(err, errlen, "cannot set ALPN");
            goto fail_free_ctx;
        }
    }
    return ctx;

fail_free_ctx:
    SSL_CTX_free(ctx);
    return NULL;
}

void
hd_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* ==== a context a reload may replace ==== */

static int
same_file(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
hd_tls_slot_prepare(struct hd_tls_slot *s, const char *ca_file, char *err,
                    size_t errlen)
{
    struct hd_tls_conf tc = {ca_file, NULL, NULL, NULL};
    int have;

    hd_tls_slot_abandon(s);
    /* only the main thread publishes: no reload can race this check */
    pthread_mutex_lock(&s->_lock);
    have = s->_ctx != NULL && same_file(s->_ca_file, ca_file);
    pthread_mutex_unlock(&s->_lock);
    if (have)
        return HD_OK;
    s->_next = hd_tls_ctx_new(&tc, err, errlen);
    if (s->_next == NULL)
        return HD_ERROR;
    s->_next_ca_file = ca_file ? hd_strdup(ca_file) : NULL;
    return HD_OK;
}

void
hd_tls_slot_commit(struct hd_tls_slot *s)
{
    SSL_CTX *old;
    char *old_ca;

    if (s->_next == NULL)
        return;
    pthread_mutex_lock(&s->_lock);
    old = s->_ctx;
    old_ca = s->_ca_file;
    s->_ctx = s->_next;
    s->_ca_file = s->_next_ca_file;
    pthread_mutex_unlock(&s->_lock);
    s->_next = NULL;
    s->_next_ca_file = NULL;
    /* workers' pools hold their own references */
    SSL_CTX_free(old);
    free(old_ca);
}

void
hd_tls_slot_abandon(struct hd_tls_slot *s)
{
    SSL_CTX_free(s->_next);
    free(s->_next_ca_file);
    s->_next = NULL;
    s->_next_ca_file = NULL;
}

void
hd_tls_slot_free(struct hd_tls_slot *s)
{
    hd_tls_slot_abandon(s);
    pthread_mutex_lock(&s->_lock);
    SSL_CTX_free(s->_ctx);
    free(s->_ca_file);
    s->_ctx = NULL;
    s->_ca_file = NULL;
    pthread_mutex_unlock(&s->_lock);
}

SSL_CTX *
hd_tls_slot_take(struct hd_tls_slot *s, const char *ca_file)
{
    SSL_CTX *ctx = NULL;

    pthread_mutex_lock(&s->_lock);
    if (s->_ctx != NULL && same_file(s->_ca_file, ca_file) &&
        SSL_CTX_up_ref(s->_ctx) == 1)
        ctx = s->_ctx;
    pthread_mutex_unlock(&s->_lock);
    return ctx;
}

SSL *
hd_tls_new(SSL_CTX *ctx, const char *host)
{
    unsigned char addr[16];
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL)
        return NULL;
    if (inet_pton(AF_INET, host, addr) == 1 ||
        inet_pton(AF_INET6, host, addr) == 1) {
        /* an IP literal: no SNI (RFC 6066), check the IP SAN */
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
            goto fail_free_ssl;
    } else {
        if (SSL_set_tlsext_host_name(ssl, host) != 1)
            goto fail_free_ssl;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1)
            goto fail_free_ssl;
    }
    return ssl;

fail_free_ssl:
    SSL_free(ssl);
    return NULL;
}
