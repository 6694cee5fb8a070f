/*
 * tcp.h: outbound stream connections for the HTTP/1.1 and SMTP clients:
 * a name lookup through the worker's c-ares channel (never getaddrinfo on
 * the loop), a non-blocking connect to each address in turn, and TLS on a
 * bufferevent, at once (https) or later (SMTP STARTTLS). Worker thread
 * only; knows nothing of any protocol above TCP and TLS.
 */
#ifndef HD_TCP_H
#define HD_TCP_H

#include <stdint.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct hd_tcp_peer;
struct hd_tcp_connect;

/* A host and port to connect to, with its addresses cached for their TTL
 * (5 s to 5 min). Holds a reference on the worker's c-ares channel. */
struct hd_tcp_peer *hd_tcp_peer_new(struct event_base *base, const char *host,
                                    int port);
/* Cancel the peer's attempts first. */
void hd_tcp_peer_free(struct hd_tcp_peer *peer);

/* Called once: with bev (the callee takes it, callbacks unset, disabled)
 * and error NULL, or with bev NULL and error a message borrowed until
 * return ("connect() to 127.0.0.1:25 failed: Connection refused"). Never
 * called from within hd_tcp_connect or hd_tcp_starttls. */
typedef void (*hd_tcp_connect_fn)(void *arg, struct bufferevent *bev,
                                  const char *error);

/* Connects to host:port within timeout_ms; with ssl (taken, freed with the
 * connection) also completes a verified TLS handshake. Returns a handle for
 * hd_tcp_cancel, valid until cb runs. */
struct hd_tcp_connect *hd_tcp_connect(struct hd_tcp_peer *peer, SSL *ssl,
                                      int64_t timeout_ms, hd_tcp_connect_fn cb,
                                      void *arg);

/* Starts TLS on the connected plain bev (taken): bytes already received
 * are discarded first (RFC 3207 response injection). cb gets the TLS
 * bufferevent. */
struct hd_tcp_connect *hd_tcp_starttls(struct bufferevent *bev, SSL *ssl,
                                       int64_t timeout_ms, hd_tcp_connect_fn cb,
                                       void *arg);

/* Abandons an attempt: cb is not called, everything is freed. */
void hd_tcp_cancel(struct hd_tcp_connect *tc);

/* The text of the TLS failure on bev ("certificate verify failed: ..."),
 * or "" */
const char *hd_tcp_tls_error(struct bufferevent *bev, char *buf, size_t size);

#endif
