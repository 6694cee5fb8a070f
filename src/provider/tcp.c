/*
 * tcp.c: outbound TCP (and TLS) connections for http1.c and smtp.c, with
 * names resolved by one c-ares channel per worker thread. Worker thread
 * only. An attempt owns its bufferevent and SSL until it hands them to its
 * callback; callbacks always run from the loop, never from the call that
 * started the attempt. Knows nothing of HTTP or SMTP.
 *
 * The c-ares glue mirrors the one in h2client.c (private there); the two
 * channels of a worker are independent.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ares.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/herald.h"
#include "core/time.h"
#include "provider/tcp.h"

#define MAX_ADDRS 8

struct fdev {
    struct fdev *next;
    ares_socket_t fd;
    struct event *ev;
};

struct resolver {
    ares_channel ch;
    struct event_base *base;
    struct event *timer;
    struct fdev *fds;
    int refs;
};

struct hd_tcp_peer {
    struct event_base *base;
    struct resolver *rs;
    char *host;
    int port;
    int literal;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addrlens[MAX_ADDRS];
    int naddrs;
    int64_t expire_ms;
};

/* a lookup in flight; tc NULL once its attempt is gone */
struct dnsq {
    struct hd_tcp_connect *tc;
};

struct hd_tcp_connect {
    struct hd_tcp_peer *peer; /* NULL for STARTTLS */
    struct event_base *base;
    SSL *ssl; /* until a TLS bufferevent takes it */
    struct bufferevent *bev;
    struct event *timer;
    struct event *step_ev;
    struct dnsq *q;
    int next; /* the address tried now */
    hd_tcp_connect_fn cb;
    void *arg;
    char error[256];
};

static __thread struct resolver *thread_resolver;
static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void connect_next(struct hd_tcp_connect *tc);

/* ==== the resolver ==== */

static void
init_ares(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

static void
resolver_timer(struct resolver *rs)
{
    struct timeval tv, *tvp = ares_timeout(rs->ch, NULL, &tv);
    if (tvp)
        evtimer_add(rs->timer, tvp);
    else
        evtimer_del(rs->timer);
}

static void
on_ares_io(evutil_socket_t fd, short what, void *arg)
{
    struct resolver *rs = arg;
    ares_process_fd(rs->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    resolver_timer(rs);
}

static void
on_ares_timer(evutil_socket_t fd, short what, void *arg)
{
    struct resolver *rs = arg;
    ares_process_fd(rs->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    resolver_timer(rs);
}

static void
on_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
    struct resolver *rs = arg;
    struct fdev **pp, *f;

    for (pp = &rs->fds; *pp; pp = &(*pp)->next)
        if ((*pp)->fd == fd)
            break;
    f = *pp;
    if (!readable && !writable) {
        if (f) {
            *pp = f->next;
            event_free(f->ev);
            free(f);
        }
        return;
    }
    if (f == NULL) {
        f = hd_calloc(sizeof(*f));
        f->fd = fd;
        f->next = rs->fds;
        rs->fds = f;
    } else {
        event_free(f->ev);
    }
    f->ev = event_new(rs->base, fd,
                      (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) |
                          EV_PERSIST,
                      on_ares_io, rs);
    event_add(f->ev, NULL);
}

static struct resolver *
resolver_get(struct event_base *base)
{
    struct resolver *rs = thread_resolver;
    struct ares_options o;

    if (rs) {
        rs->refs++;
        return rs;
    }
    pthread_once(&ares_once, init_ares);
    rs = hd_calloc(sizeof(*rs));
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = rs;
    o.timeout = 2000;
    o.tries = 3;
    if (ares_init_options(&rs->ch, &o,
                          ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                              ARES_OPT_TRIES) != ARES_SUCCESS) {
        free(rs);
        return NULL;
    }
    rs->base = base;
    rs->timer = evtimer_new(base, on_ares_timer, rs);
    rs->refs = 1;
    thread_resolver = rs;
    return rs;
}

static void
resolver_put(struct resolver *rs)
{
    if (rs == NULL || --rs->refs > 0)
        return;
    ares_destroy(rs->ch); /* pending queries end with ARES_EDESTRUCTION */
    while (rs->fds) {
        struct fdev *f = rs->fds;
        rs->fds = f->next;
        event_free(f->ev);
        free(f);
    }
    event_free(rs->timer);
    free(rs);
    thread_resolver = NULL;
}

/* ==== peers ==== */

static int
set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        return HD_ERROR;
    return HD_OK;
}

struct hd_tcp_peer *
hd_tcp_peer_new(struct event_base *base, const char *host, int port)
{
    struct hd_tcp_peer *p = hd_calloc(sizeof(*p));
    struct sockaddr_in *sin = (struct sockaddr_in *)&p->addrs[0];
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->addrs[0];

    p->base = base;
    p->host = hd_strdup(host);
    p->port = port;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        p->addrlens[0] = sizeof(*sin);
        p->literal = 1;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        p->addrlens[0] = sizeof(*sin6);
        p->literal = 1;
    }
    if (p->literal) {
        set_port(&p->addrs[0], port);
        p->naddrs = 1;
        return p;
    }
    p->rs = resolver_get(base);
    if (p->rs == NULL) {
        free(p->host);
        free(p);
        return NULL;
    }
    return p;
}

void
hd_tcp_peer_free(struct hd_tcp_peer *p)
{
    if (p == NULL)
        return;
    resolver_put(p->rs);
    free(p->host);
    free(p);
}

/* ==== attempts ==== */

static void
tc_free(struct hd_tcp_connect *tc)
{
    if (tc->q)
        tc->q->tc = NULL;
    if (tc->bev)
        bufferevent_free(tc->bev);
    if (tc->ssl)
        SSL_free(tc->ssl);
    event_free(tc->timer);
    event_free(tc->step_ev);
    free(tc);
}

static void
fail(struct hd_tcp_connect *tc)
{
    tc->cb(tc->arg, NULL, tc->error);
    tc_free(tc);
}

static void
done(struct hd_tcp_connect *tc)
{
    struct bufferevent *bev = tc->bev;

    tc->bev = NULL;
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    tc->cb(tc->arg, bev, NULL);
    tc_free(tc);
}

const char *
hd_tcp_tls_error(struct bufferevent *bev, char *buf, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(bev);

    buf[0] = '\0';
    if (vr != X509_V_OK)
        snprintf(buf, size, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (e)
        ERR_error_string_n(e, buf, size);
    else if (errno)
        snprintf(buf, size, "%s", strerror(errno));
    ERR_clear_error();
    return buf;
}

static void
on_tls_event(struct bufferevent *bev, short what, void *arg)
{
    struct hd_tcp_connect *tc = arg;
    char ebuf[200];

    if (what & BEV_EVENT_CONNECTED) {
        done(tc);
        return;
    }
    hd_tcp_tls_error(bev, ebuf, sizeof(ebuf));
    if (tc->peer)
        snprintf(tc->error, sizeof(tc->error),
                 "TLS handshake with %s:%d failed: %s", tc->peer->host,
                 tc->peer->port, ebuf[0] ? ebuf : "connection closed");
    else
        snprintf(tc->error, sizeof(tc->error), "TLS handshake failed: %s",
                 ebuf[0] ? ebuf : "connection closed");
    fail(tc);
}

/* Wraps tc->bev (plain, connected) in TLS; the filter takes tc->ssl. */
static void
start_tls(struct hd_tcp_connect *tc)
{
    struct bufferevent *f;

    f = bufferevent_openssl_filter_new(tc->base, tc->bev, tc->ssl,
                                       BUFFEREVENT_SSL_CONNECTING,
                                       BEV_OPT_CLOSE_ON_FREE);
    if (f == NULL) {
        snprintf(tc->error, sizeof(tc->error), "cannot start TLS");
        fail(tc);
        return;
    }
    tc->bev = f;
    tc->ssl = NULL;
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    bufferevent_setcb(f, NULL, NULL, on_tls_event, tc);
    bufferevent_enable(f, EV_READ | EV_WRITE);
}

static void
on_connect_event(struct bufferevent *bev, short what, void *arg)
{
    struct hd_tcp_connect *tc = arg;
    struct hd_tcp_peer *p = tc->peer;
    int err = EVUTIL_SOCKET_ERROR();

    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one));
        if (tc->ssl)
            start_tls(tc);
        else
            done(tc);
        return;
    }
    snprintf(tc->error, sizeof(tc->error), "connect() to %s:%d failed: %s",
             p->host, p->port, err ? strerror(err) : "connection closed");
    bufferevent_free(tc->bev);
    tc->bev = NULL;
    tc->next++;
    connect_next(tc);
}

static void
connect_next(struct hd_tcp_connect *tc)
{
    struct hd_tcp_peer *p = tc->peer;

    for (; tc->next < p->naddrs; tc->next++) {
        tc->bev = bufferevent_socket_new(tc->base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(tc->bev, NULL, NULL, on_connect_event, tc);
        if (bufferevent_socket_connect(tc->bev,
                                       (struct sockaddr *)&p->addrs[tc->next],
                                       (int)p->addrlens[tc->next]) == 0)
            return; /* on_connect_event */
        snprintf(tc->error, sizeof(tc->error), "connect() to %s:%d failed: %s",
                 p->host, p->port, strerror(EVUTIL_SOCKET_ERROR()));
        bufferevent_free(tc->bev);
        tc->bev = NULL;
    }
    if (tc->error[0] == '\0')
        snprintf(tc->error, sizeof(tc->error), "no address for %s", p->host);
    fail(tc);
}

static void
on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct dnsq *q = arg;
    struct hd_tcp_connect *tc = q->tc;
    struct hd_tcp_peer *p;
    int ttl = 300;

    free(q);
    if (tc == NULL) {
        if (ai)
            ares_freeaddrinfo(ai);
        return;
    }
    tc->q = NULL;
    p = tc->peer;
    p->naddrs = 0;
    if (status == ARES_SUCCESS && ai) {
        for (struct ares_addrinfo_node *n = ai->nodes;
             n && p->naddrs < MAX_ADDRS; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
                n->ai_addrlen > sizeof(p->addrs[0]))
                continue;
            memcpy(&p->addrs[p->naddrs], n->ai_addr, n->ai_addrlen);
            set_port(&p->addrs[p->naddrs], p->port);
            p->addrlens[p->naddrs++] = n->ai_addrlen;
            if (n->ai_ttl < ttl)
                ttl = n->ai_ttl;
        }
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (p->naddrs == 0) {
        snprintf(tc->error, sizeof(tc->error), "cannot resolve \"%s\": %s",
                 p->host, ares_strerror(status));
        fail(tc);
        return;
    }
    if (ttl < 5)
        ttl = 5; /* hosts-file answers carry no TTL */
    p->expire_ms = hd_now_ms() + ttl * 1000LL;
    tc->next = 0;
    connect_next(tc);
}

/* First step of an attempt, from the loop. */
static void
on_step(evutil_socket_t fd, short what, void *arg)
{
    struct hd_tcp_connect *tc = arg;
    struct hd_tcp_peer *p = tc->peer;
    struct ares_addrinfo_hints hints;

    if (p->literal || (p->naddrs > 0 && hd_now_ms() < p->expire_ms)) {
        connect_next(tc);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    tc->q = hd_calloc(sizeof(*tc->q));
    tc->q->tc = tc;
    /* may answer at once (hosts file): on_addrinfo then runs here */
    ares_getaddrinfo(p->rs->ch, p->host, NULL, &hints, on_addrinfo, tc->q);
    resolver_timer(p->rs);
}

static void
on_tls_step(evutil_socket_t fd, short what, void *arg)
{
    struct hd_tcp_connect *tc = arg;
    struct evbuffer *in = bufferevent_get_input(tc->bev);

    evbuffer_drain(in, evbuffer_get_length(in));
    start_tls(tc);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct hd_tcp_connect *tc = arg;

    if (tc->peer)
        snprintf(tc->error, sizeof(tc->error), "connect to %s:%d timed out",
                 tc->peer->host, tc->peer->port);
    else
        snprintf(tc->error, sizeof(tc->error), "TLS handshake timed out");
    fail(tc);
}

static struct hd_tcp_connect *
tc_new(struct event_base *base, int64_t timeout_ms, hd_tcp_connect_fn cb,
       void *arg)
{
    struct hd_tcp_connect *tc = hd_calloc(sizeof(*tc));
    struct timeval tv;

    tc->base = base;
    tc->cb = cb;
    tc->arg = arg;
    tc->timer = evtimer_new(base, on_timeout, tc);
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(tc->timer, &tv);
    return tc;
}

struct hd_tcp_connect *
hd_tcp_connect(struct hd_tcp_peer *peer, SSL *ssl, int64_t timeout_ms,
               hd_tcp_connect_fn cb, void *arg)
{
    struct hd_tcp_connect *tc = tc_new(peer->base, timeout_ms, cb, arg);

    tc->peer = peer;
    tc->ssl = ssl;
    tc->step_ev = event_new(peer->base, -1, 0, on_step, tc);
    event_active(tc->step_ev, EV_TIMEOUT, 0);
    return tc;
}

struct hd_tcp_connect *
hd_tcp_starttls(struct bufferevent *bev, SSL *ssl, int64_t timeout_ms,
                hd_tcp_connect_fn cb, void *arg)
{
    struct hd_tcp_connect *tc =
        tc_new(bufferevent_get_base(bev), timeout_ms, cb, arg);
    struct evbuffer *in = bufferevent_get_input(bev);

    evbuffer_drain(in, evbuffer_get_length(in));
    tc->bev = bev;
    tc->ssl = ssl;
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_disable(bev, EV_READ);
    tc->step_ev = event_new(tc->base, -1, 0, on_tls_step, tc);
    event_active(tc->step_ev, EV_TIMEOUT, 0);
    return tc;
}

void
hd_tcp_cancel(struct hd_tcp_connect *tc)
{
    tc_free(tc);
}
