/*
 * http1.c: outbound HTTP/1.1 for the REST providers. Worker thread only:
 * a pool, its connections and its requests live on one event_base.
 * Knows nothing of any provider's protocol.
 *
 * A request is owned by one place at a time: the pool's queue or the
 * connection it was written on. One request per connection at a time (no
 * pipelining); a connection that answered is kept for the next request
 * until it idles out or the peer closes it. A request that meets a close
 * on a reused connection before any byte of its response came back is
 * written once more on a fresh one (the peer closed an idle connection
 * as we wrote: the usual keep-alive race).
 */
#include <stdio.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "provider/http1.h"
#include "provider/tcp.h"
#include "provider/tls.h"

enum conn_state { C_CONNECTING = 0, C_IDLE, C_BUSY };

enum parse_state {
    R_HEAD = 0,
    R_BODY,       /* Content-Length bytes left */
    R_CHUNK_SIZE, /* a chunk-size line */
    R_CHUNK_DATA,
    R_CHUNK_CRLF,
    R_TRAILERS,
    R_UNTIL_CLOSE
};

struct conn;

struct req {
    struct req *next;
    struct hd_http1_pool *pool;
    struct conn *conn;
    char *data; /* the whole request */
    size_t len;
    int tries;
    struct event *timer;
    hd_http1_response_fn cb;
    void *arg;
};

struct conn {
    struct conn *next;
    struct hd_http1_pool *pool;
    int state;
    struct bufferevent *bev;
    struct hd_tcp_connect *tc;
    struct req *req;
    int served; /* responses read on it */
    int open;   /* counted in the provider's connections gauge */
    /* the response being read */
    int pstate;
    int got_bytes;
    int status;
    int keepalive;
    int64_t left;
    char *head;
    struct hd_http1_header headers[HD_HTTP1_MAX_HEADERS];
    int nheaders;
    struct evbuffer *body;
};

struct hd_http1_pool {
    struct event_base *base;
    struct hd_log log;
    char action[160];
    char *name, *host, *hostport;
    int port;
    SSL_CTX *ctx;
    struct hd_tcp_peer *peer;
    int max_conns, max_queue;
    int64_t timeout_ms, idle_timeout_ms;
    struct conn *conns;
    int nconns;
    struct req *qhead, *qtail;
    int nqueued;
    struct event *pump_ev;
    struct hd_http1_stats st;
    struct hd_provider_metrics *pm; /* the creating worker's */
};

static void conn_close(struct conn *c);

/* ==== URL and headers ==== */

int
hd_http1_parse_url(const char *url, int *tls, char *host, size_t hostlen,
                   int *port, const char **path)
{
    const char *s, *e, *hs, *he;
    size_t n;

    if (strncasecmp(url, "https://", 8) == 0) {
        *tls = 1;
        *port = 443;
        s = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        *tls = 0;
        *port = 80;
        s = url + 7;
    } else {
        return HD_ERROR;
    }
    e = s + strcspn(s, "/?#");
    if (*s == '[') {
        hs = s + 1;
        he = memchr(hs, ']', (size_t)(e - hs));
        if (he == NULL)
            return HD_ERROR;
        s = he + 1;
    } else {
        hs = s;
        he = memchr(s, ':', (size_t)(e - s));
        if (he == NULL)
            he = e;
        s = he;
    }
    n = (size_t)(he - hs);
    if (n == 0 || n >= hostlen)
        return HD_ERROR;
    memcpy(host, hs, n);
    host[n] = '\0';
    if (s < e) {
        long v = 0;
        if (*s != ':' || s + 1 == e)
            return HD_ERROR;
        for (s++; s < e; s++) {
            if (*s < '0' || *s > '9')
                return HD_ERROR;
            v = v * 10 + (*s - '0');
            if (v > 65535)
                return HD_ERROR;
        }
        if (v == 0)
            return HD_ERROR;
        *port = (int)v;
    }
    *path = e;
    return HD_OK;
}

const char *
hd_http1_header_find(const struct hd_http1_response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ==== requests ==== */

static void
req_free(struct req *r)
{
    event_free(r->timer);
    free(r->data);
    free(r);
}

static void
queue_remove(struct hd_http1_pool *p, struct req *r)
{
    struct req **pp;

    for (pp = &p->qhead; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            if (p->qtail == r) {
                p->qtail = NULL;
                for (struct req *x = p->qhead; x; x = x->next)
                    p->qtail = x;
            }
            p->nqueued--;
            r->next = NULL;
            return;
        }
}

/* Calls r's callback and frees r; r is on no list and no connection. */
static void
finish(struct req *r, const struct hd_http1_response *resp, const char *error)
{
    r->cb(r->arg, resp, error);
    req_free(r);
}

static void
on_req_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct req *r = arg;
    struct hd_http1_pool *p = r->pool;

    if (r->conn) {
        struct conn *c = r->conn;
        hd_log(HD_LOG_WARN, &p->log, 0,
               "request to %s timed out, closing the connection", p->hostport);
        c->req = NULL;
        HD_COUNT(p->pm->streams, -1);
        r->conn = NULL;
        conn_close(c);
    } else {
        queue_remove(p, r);
    }
    finish(r, NULL, "request timed out");
    event_active(p->pump_ev, EV_TIMEOUT, 0);
}

int
hd_http1_request(struct hd_http1_pool *p, const char *method, const char *path,
                 const char *headers, const void *body, size_t len,
                 hd_http1_response_fn cb, void *arg)
{
    struct req *r;
    struct timeval tv;
    char head[1024];
    size_t hlen = headers ? strlen(headers) : 0;
    int n;

    if (p->nqueued >= p->max_queue)
        return HD_AGAIN;
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: herald/%s\r\n"
                 "Content-Length: %zu\r\n",
                 method, *path ? path : "/", p->hostport, HD_VERSION, len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return HD_ERROR;
    r = hd_calloc(sizeof(*r));
    r->pool = p;
    r->cb = cb;
    r->arg = arg;
    r->len = (size_t)n + hlen + 2 + len;
    r->data = hd_alloc(r->len);
    memcpy(r->data, head, (size_t)n);
    memcpy(r->data + n, headers, hlen);
    memcpy(r->data + n + hlen, "\r\n", 2);
    if (len)
        memcpy(r->data + n + hlen + 2, body, len);
    r->timer = evtimer_new(p->base, on_req_timeout, r);
    tv.tv_sec = p->timeout_ms / 1000;
    tv.tv_usec = (p->timeout_ms % 1000) * 1000;
    evtimer_add(r->timer, &tv);
    if (p->qtail)
        p->qtail->next = r;
    else
        p->qhead = r;
    p->qtail = r;
    p->nqueued++;
    event_active(p->pump_ev, EV_TIMEOUT, 0);
    return HD_OK;
}

/* ==== connections ==== */

static void
reset_response(struct conn *c)
{
    free(c->head);
    c->head = NULL;
    c->nheaders = 0;
    c->pstate = R_HEAD;
    c->got_bytes = 0;
    c->status = 0;
    c->left = 0;
    if (c->body)
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
}

static void
conn_close(struct conn *c)
{
    struct hd_http1_pool *p = c->pool;
    struct conn **pp;

    for (pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    p->nconns--;
    HD_ASSERT(c->req == NULL);
    if (c->open)
        HD_COUNT(p->pm->connections, -1);
    if (c->tc)
        hd_tcp_cancel(c->tc);
    if (c->bev)
        bufferevent_free(c->bev);
    reset_response(c);
    if (c->body)
        evbuffer_free(c->body);
    free(c);
}

/* The connection failed or closed while r was on it. */
static void
conn_fail(struct conn *c, const char *error)
{
    struct hd_http1_pool *p = c->pool;
    struct req *r = c->req;

    c->req = NULL;
    if (r) {
        HD_COUNT(p->pm->streams, -1);
        r->conn = NULL;
        if (c->served > 0 && !c->got_bytes && r->tries == 0) {
            /* a stale keep-alive connection: once more on a fresh one */
            r->tries++;
            p->st.replayed++;
            r->next = p->qhead;
            p->qhead = r;
            if (p->qtail == NULL)
                p->qtail = r;
            p->nqueued++;
            r = NULL;
        }
    }
    conn_close(c);
    if (r) {
        hd_log(HD_LOG_WARN, &p->log, 0, "request to %s failed: %s", p->hostport,
               error);
        finish(r, NULL, error);
    }
    event_active(p->pump_ev, EV_TIMEOUT, 0);
}

static void
set_idle(struct conn *c)
{
    struct timeval tv;

    c->state = C_IDLE;
    tv.tv_sec = c->pool->idle_timeout_ms / 1000;
    tv.tv_usec = (c->pool->idle_timeout_ms % 1000) * 1000;
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

/* The response read on c; borrows c's head and body until the next one. */
static void
response_of(struct conn *c, struct hd_http1_response *resp)
{
    size_t blen = evbuffer_get_length(c->body);

    evbuffer_add(c->body, "", 1); /* NUL */
    resp->status = c->status;
    resp->headers = c->headers;
    resp->nheaders = c->nheaders;
    resp->body = (char *)evbuffer_pullup(c->body, -1);
    resp->len = blen;
}

static void
response_done(struct conn *c)
{
    struct hd_http1_pool *p = c->pool;
    struct req *r = c->req;
    struct hd_http1_response resp;

    response_of(c, &resp);
    c->req = NULL;
    HD_COUNT(p->pm->streams, -1);
    r->conn = NULL;
    c->served++;
    p->st.requests++;
    evtimer_del(r->timer);
    r->cb(r->arg, &resp, NULL);
    req_free(r);
    if (c->keepalive) {
        reset_response(c);
        set_idle(c);
    } else {
        conn_close(c);
    }
    event_active(p->pump_ev, EV_TIMEOUT, 0);
}

/* Parses the status line and headers in c->head (NUL-terminated, CRLFs
 * kept). HD_ERROR on a malformed head. */
static int
parse_head(struct conn *c)
{
    char *s = c->head, *e, *colon;
    int minor, te_chunked = 0, has_len = 0, close_hdr = 0, ka_hdr = 0;

    if (strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' ||
        s[11] < '0' || s[11] > '9' || (s[12] != ' ' && s[12] != '\r'))
        return HD_ERROR;
    minor = s[7] - '0';
    c->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    s = strstr(s, "\r\n") + 2;
    c->nheaders = 0;
    for (; *s && *s != '\r'; s = e + 2) {
        char *v, *ve;
        e = strstr(s, "\r\n");
        if (e == NULL)
            return HD_ERROR;
        *e = '\0';
        colon = strchr(s, ':');
        if (colon == NULL || colon == s)
            return HD_ERROR;
        *colon = '\0';
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        *ve = '\0';
        if (c->nheaders < HD_HTTP1_MAX_HEADERS) {
            c->headers[c->nheaders].name = s;
            c->headers[c->nheaders].value = v;
            c->nheaders++;
        }
        if (strcasecmp(s, "content-length") == 0) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*v == '\0' || *end || n < 0)
                return HD_ERROR;
            c->left = n;
            has_len = 1;
        } else if (strcasecmp(s, "transfer-encoding") == 0) {
            if (strcasestr(v, "chunked"))
                te_chunked = 1;
        } else if (strcasecmp(s, "connection") == 0) {
            if (strcasestr(v, "close"))
                close_hdr = 1;
            else if (strcasestr(v, "keep-alive"))
                ka_hdr = 1;
        }
    }
    c->keepalive = minor == 1 ? !close_hdr : ka_hdr;
    if (c->status == 204 || c->status == 304) {
        c->left = 0;
        c->pstate = R_BODY;
    } else if (te_chunked) {
        c->pstate = R_CHUNK_SIZE;
    } else if (has_len) {
        if (c->left > HD_HTTP1_MAX_BODY)
            return HD_ERROR;
        c->pstate = R_BODY;
    } else {
        c->keepalive = 0;
        c->pstate = R_UNTIL_CLOSE;
    }
    return HD_OK;
}

/* Reads what is in in (c's input buffer). HD_OK: a response completed;
 * HD_AGAIN: more is needed; HD_ERROR: a bad response, *error says why. */
static int
parse_input(struct conn *c, struct evbuffer *in, const char **error)
{
    struct evbuffer_ptr ptr;
    size_t n;

    for (;;) {
        switch (c->pstate) {
        case R_HEAD:
            ptr = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (ptr.pos < 0) {
                if (evbuffer_get_length(in) > HD_HTTP1_MAX_HEAD) {
                    *error = "response head too large";
                    return HD_ERROR;
                }
                return HD_AGAIN;
            }
            c->head = hd_alloc((size_t)ptr.pos + 5);
            evbuffer_remove(in, c->head, (size_t)ptr.pos + 4);
            c->head[ptr.pos + 4] = '\0';
            /* a NUL would end the head early: strstr() found no CRLF */
            if (memchr(c->head, '\0', (size_t)ptr.pos + 4) != NULL ||
                parse_head(c) != HD_OK) {
                *error = "bad response head";
                return HD_ERROR;
            }
            if (c->status < 200) { /* 100 Continue and friends */
                reset_response(c);
                continue;
            }
            break;
        case R_BODY:
            n = evbuffer_get_length(in);
            if ((int64_t)n > c->left)
                n = (size_t)c->left;
            evbuffer_remove_buffer(in, c->body, n);
            c->left -= (int64_t)n;
            if (c->left > 0)
                return HD_AGAIN;
            return HD_OK;
        case R_CHUNK_SIZE: {
            char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            char *end;
            unsigned long long size;
            if (line == NULL) {
                if (evbuffer_get_length(in) > 1024) {
                    *error = "bad chunk size";
                    return HD_ERROR;
                }
                return HD_AGAIN;
            }
            size = strtoull(line, &end, 16);
            if (end == line || (*end && *end != ';' && *end != ' ')) {
                free(line);
                *error = "bad chunk size";
                return HD_ERROR;
            }
            free(line);
            if (size == 0) {
                c->pstate = R_TRAILERS;
                break;
            }
            if (size + evbuffer_get_length(c->body) > HD_HTTP1_MAX_BODY) {
                *error = "response body too large";
                return HD_ERROR;
            }
            c->left = (int64_t)size;
            c->pstate = R_CHUNK_DATA;
            break;
        }
        case R_CHUNK_DATA:
            n = evbuffer_get_length(in);
            if ((int64_t)n > c->left)
                n = (size_t)c->left;
            evbuffer_remove_buffer(in, c->body, n);
            c->left -= (int64_t)n;
            if (c->left > 0)
                return HD_AGAIN;
            c->pstate = R_CHUNK_CRLF;
            break;
        case R_CHUNK_CRLF: {
            char crlf[2];
            if (evbuffer_get_length(in) < 2)
                return HD_AGAIN;
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                *error = "bad chunk";
                return HD_ERROR;
            }
            c->pstate = R_CHUNK_SIZE;
            break;
        }
        case R_TRAILERS: {
            char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (line == NULL)
                return HD_AGAIN;
            free(line);
            if (n == 0)
                return HD_OK;
            break;
        }
        case R_UNTIL_CLOSE:
            n = evbuffer_get_length(in);
            if (evbuffer_get_length(c->body) + n > HD_HTTP1_MAX_BODY) {
                *error = "response body too large";
                return HD_ERROR;
            }
            evbuffer_remove_buffer(in, c->body, n);
            return HD_AGAIN; /* done at EOF */
        }
    }
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    const char *error = NULL;
    int rc;

    if (c->state != C_BUSY) {
        /* nothing was asked: a peer that talks out of turn */
        conn_close(c);
        return;
    }
    c->got_bytes = 1;
    rc = parse_input(c, bufferevent_get_input(bev), &error);
    if (rc == HD_OK)
        response_done(c);
    else if (rc == HD_ERROR)
        conn_fail(c, error);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char ebuf[200], msg[256];

    if (c->state != C_BUSY) {
        conn_close(c); /* idle: closed by the peer or timed out */
        return;
    }
    if ((what & BEV_EVENT_EOF) && c->pstate == R_UNTIL_CLOSE) {
        response_done(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        conn_fail(c, "connection closed");
        return;
    }
    if (c->pool->ctx)
        hd_tcp_tls_error(bev, ebuf, sizeof(ebuf));
    else
        snprintf(ebuf, sizeof(ebuf), "%s", strerror(EVUTIL_SOCKET_ERROR()));
    snprintf(msg, sizeof(msg), "connection error: %s", ebuf);
    conn_fail(c, msg);
}

static void
assign(struct conn *c, struct req *r)
{
    c->req = r;
    r->conn = c;
    c->state = C_BUSY;
    HD_COUNT(c->pool->pm->streams, 1);
    reset_response(c);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_write(c->bev, r->data, r->len);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
on_connected(void *arg, struct bufferevent *bev, const char *error)
{
    struct conn *c = arg;
    struct hd_http1_pool *p = c->pool;

    c->tc = NULL;
    if (bev == NULL) {
        HD_COUNT(p->pm->connects[1], 1);
        hd_log(HD_LOG_ERR, &p->log, 0, "%s", error);
        conn_close(c);
        /* nothing will answer soon: fail what waits, the caller retries */
        while (p->qhead && p->nconns == 0) {
            struct req *r = p->qhead;
            queue_remove(p, r);
            finish(r, NULL, error);
        }
        event_active(p->pump_ev, EV_TIMEOUT, 0);
        return;
    }
    p->st.connects++;
    c->open = 1;
    HD_COUNT(p->pm->connections, 1);
    HD_COUNT(p->pm->connects[0], 1);
    c->bev = bev;
    bufferevent_setcb(bev, on_read, NULL, on_event, c);
    set_idle(c);
    event_active(p->pump_ev, EV_TIMEOUT, 0);
}

static void
conn_new(struct hd_http1_pool *p)
{
    struct conn *c = hd_calloc(sizeof(*c));
    SSL *ssl = NULL;

    c->pool = p;
    c->state = C_CONNECTING;
    c->body = evbuffer_new();
    c->next = p->conns;
    p->conns = c;
    p->nconns++;
    if (p->ctx) {
        ssl = hd_tls_new(p->ctx, p->host);
        HD_ASSERT(ssl != NULL);
    }
    c->tc = hd_tcp_connect(p->peer, ssl, p->timeout_ms, on_connected, c);
}

static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
    struct hd_http1_pool *p = arg;
    int connecting = 0;

    for (struct conn *c = p->conns; c && p->qhead; c = c->next) {
        if (c->state == C_CONNECTING) {
            connecting++;
        } else if (c->state == C_IDLE) {
            struct req *r = p->qhead;
            queue_remove(p, r);
            assign(c, r);
        }
    }
    while (p->nqueued > connecting && p->nconns < p->max_conns) {
        conn_new(p);
        connecting++;
    }
}

/* ==== the pool ==== */

struct hd_http1_pool *
hd_http1_pool_new(struct event_base *base, const struct hd_log *log,
                  const struct hd_http1_pool_conf *c)
{
    struct hd_http1_pool *p = hd_calloc(sizeof(*p));
    int def = c->ssl_ctx ? 443 : 80;
    char buf[300];

    p->base = base;
    p->log = *log;
    snprintf(p->action, sizeof(p->action), "while talking to %s", c->name);
    p->log.action = p->action;
    p->name = hd_strdup(c->name);
    p->host = hd_strdup(c->host);
    p->port = c->port;
    if (strchr(c->host, ':')) /* IPv6 literal */
        snprintf(buf, sizeof(buf), c->port == def ? "[%s]" : "[%s]:%d", c->host,
                 c->port);
    else
        snprintf(buf, sizeof(buf), c->port == def ? "%s" : "%s:%d", c->host,
                 c->port);
    p->hostport = hd_strdup(buf);
    p->ctx = c->ssl_ctx;
    p->max_conns = c->nconns > 0 ? c->nconns : 1;
    p->pm = hd_metrics_provider(c->metrics_id);
    p->max_queue = c->max_queue > 0 ? c->max_queue : 4096;
    p->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 10000;
    p->idle_timeout_ms = c->idle_timeout_ms > 0 ? c->idle_timeout_ms : 30000;
    p->peer = hd_tcp_peer_new(base, c->host, c->port);
    if (p->peer == NULL) {
        free(p->name);
        free(p->host);
        free(p->hostport);
        free(p);
        return NULL;
    }
    p->pump_ev = event_new(base, -1, 0, on_pump, p);
    return p;
}

void
hd_http1_pool_free(struct hd_http1_pool *p)
{
    if (p == NULL)
        return;
    while (p->conns) {
        struct conn *c = p->conns;
        if (c->req) {
            req_free(c->req);
            c->req = NULL;
            HD_COUNT(p->pm->streams, -1);
        }
        conn_close(c);
    }
    while (p->qhead) {
        struct req *r = p->qhead;
        p->qhead = r->next;
        req_free(r);
    }
    event_free(p->pump_ev);
    hd_tcp_peer_free(p->peer);
    free(p->name);
    free(p->host);
    free(p->hostport);
    free(p);
}

void
hd_http1_pool_stats(const struct hd_http1_pool *p, struct hd_http1_stats *st)
{
    *st = p->st;
}
