/*
 * h2client.c: outbound HTTP/2 over TLS (nghttp2 on an OpenSSL bufferevent)
 * for APNs, FCM and later Web Push. Worker thread only: a pool, its
 * connections, its requests and the worker's c-ares channel all live on
 * one event_base. Knows nothing of any provider's protocol.
 *
 * A request is owned by exactly one place at a time: the pool's queue, a
 * connection (its stream table), or the pool's done list, whose callbacks
 * run from a deferred event so that user code never runs inside nghttp2
 * callbacks or inside hd_h2_request.
 */
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ares.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/h2client.h"
#include "provider/http1.h"
#include "provider/tls.h"

#define LOCAL_WINDOW (16 * 1024 * 1024)
#define STREAM_BUCKETS 1024
#define MAX_ADDRS 8
#define MAX_TRIES 5              /* refused or replayed: then fail */
#define OUTPUT_HIGH (256 * 1024) /* stop serializing above this */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000

enum conn_state {
    C_IDLE = 0,   /* no socket; connects when work is queued */
    C_RESOLVING,  /* waiting for the pool's name lookup */
    C_CONNECTING, /* TCP, TLS, then the peer's first SETTINGS */
    C_READY,
    C_DRAINING, /* GOAWAY received or sent: no new streams */
    C_BACKOFF   /* failed: waiting before the next attempt */
};

struct conn;

struct req {
    struct req *next, *prev; /* queue, done list or a conn's list */
    struct req *hnext;       /* the conn's stream table */
    struct hd_h2_pool *pool;
    struct conn *conn;
    int32_t stream_id;
    int sent; /* HEADERS left: the peer may have processed it */
    int tries;
    nghttp2_nv *nva;
    size_t nnv;
    unsigned char *body;
    size_t len, off;
    /* the response */
    int status;
    struct hd_h2_header rh[HD_H2_MAX_RESPONSE_HEADERS];
    int nrh;
    size_t hused;
    char hbuf[256]; /* the response headers' bytes, while they fit */
    unsigned char *rbody;
    size_t rlen, rcap;
    const char *error;
    uint64_t lost_with; /* the connection loss that took it, or 0 */
    struct event timer;
    hd_h2_response_fn cb;
    void *arg;
    size_t size; /* of the block (hd_fl_put) */
};

struct conn {
    struct hd_h2_pool *pool;
    struct conn *next; /* draining list */
    int state;
    int slot; /* -1: draining, off the slot table */
    struct bufferevent *bev;
    nghttp2_session *session;
    struct req *reqs; /* attached, doubly linked */
    struct req *streams[STREAM_BUCKETS];
    int nactive;
    uint32_t max_streams;
    int got_settings;
    int ready_once; /* reached READY: next failure reconnects at once */
    int open;       /* counted in the provider's connections gauge */
    int64_t backoff_ms;
    int64_t last_read_ms;
    int ping_out;
    struct event *timer; /* connect timeout, backoff or ping */
    struct event *flush_ev;
};

struct dnsq {
    struct hd_h2_pool *pool; /* NULL: the pool went away */
};

struct resolver {
    ares_channel ch;
    struct event_base *base;
    struct event *timer;
    struct fdev *fds;
    int refs;
};

struct fdev {
    struct fdev *next;
    ares_socket_t fd;
    struct event *ev;
};

/* nghttp2's small blocks come from the pool's lists, a list per size
 * class of MEM_STEP bytes up to MEM_CLASSES steps (mem_malloc) */
#define MEM_STEP 64
#define MEM_CLASSES 16
#define MEM_KEEP (512 * 1024) /* bytes a class list keeps at most */

struct hd_h2_pool {
    struct event_base *base;
    struct hd_log log;
    char action[160];
    char *name, *host, *authority;
    int port;
    SSL_CTX *ctx;
    int literal;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addrlens[MAX_ADDRS];
    int naddrs, next_addr;
    int64_t addrs_expire_ms;
    struct dnsq *dnsq;
    struct resolver *resolver;
    struct conn **conns;
    int nconns;
    struct conn *draining;
    struct req *qhead, *qtail;
    int nqueued, max_queue;
    struct req *dhead, *dtail;
    struct event *done_ev;
    const struct timeval *req_tv;
    int64_t connect_timeout_ms, ping_interval_ms;
    struct hd_h2_stats st;
    struct hd_provider_metrics *pm; /* the creating worker's */
    struct hd_freelist reqs;        /* of request blocks */
    nghttp2_mem mem;                /* nghttp2's allocator: the lists below */
    struct hd_freelist blocks[MEM_CLASSES];
};

static __thread struct resolver *thread_resolver;

static void pump(struct hd_h2_pool *p);
static void conn_close(struct conn *c, const char *why);
static void conn_connect(struct conn *c);

static uint64_t loss_seq;              /* connection losses, process-wide */
static __thread uint64_t cb_lost_with; /* the request's, in its callback */

uint64_t
hd_h2_lost_with(void)
{
    return cb_lost_with;
}

/* ==== nghttp2's memory ==== */

/* nghttp2 takes and gives back several small blocks a request: the
 * stream, its outbound item, the copied header values, a buffer per
 * received header. With a thousand streams a connection glibc's small
 * caches overflow and each of them takes malloc's slow path, so the pool
 * keeps them on lists of its own, one per size class (hd_fl_decay gives
 * a burst's back). nghttp2's free passes no size: a header before each
 * block names its class, and keeps the block 16-byte aligned. */
#define MEM_HDR 16
#define MEM_LARGE 0xff /* the header's class of a block from malloc */

static void *
mem_malloc(size_t size, void *ud)
{
    struct hd_h2_pool *p = ud;
    unsigned char *b;

    if (size <= MEM_CLASSES * MEM_STEP - MEM_HDR) {
        size_t k = (size + MEM_HDR + MEM_STEP - 1) / MEM_STEP;
        b = hd_fl_get(&p->blocks[k - 1], k * MEM_STEP);
        b[0] = (unsigned char)(k - 1);
    } else {
        if (size > SIZE_MAX - MEM_HDR || (b = malloc(size + MEM_HDR)) == NULL)
            return NULL;
        b[0] = MEM_LARGE;
    }
    return b + MEM_HDR;
}

static void
mem_free(void *ptr, void *ud)
{
    struct hd_h2_pool *p = ud;
    unsigned char *b;

    if (ptr == NULL)
        return;
    b = (unsigned char *)ptr - MEM_HDR;
    if (b[0] == MEM_LARGE)
        free(b);
    else
        hd_fl_put(&p->blocks[b[0]], b, ((size_t)b[0] + 1) * MEM_STEP);
}

static void *
mem_calloc(size_t n, size_t size, void *ud)
{
    void *ptr;

    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    if ((ptr = mem_malloc(n * size, ud)) != NULL)
        memset(ptr, 0, n * size);
    return ptr;
}

static void *
mem_realloc(void *ptr, size_t size, void *ud)
{
    unsigned char *b;
    size_t have;
    void *n;

    if (ptr == NULL)
        return mem_malloc(size, ud);
    b = (unsigned char *)ptr - MEM_HDR;
    if (b[0] == MEM_LARGE) {
        if (size > SIZE_MAX - MEM_HDR ||
            (b = realloc(b, size + MEM_HDR)) == NULL)
            return NULL;
        return b + MEM_HDR;
    }
    have = ((size_t)b[0] + 1) * MEM_STEP - MEM_HDR;
    if (size <= have)
        return ptr;
    if ((n = mem_malloc(size, ud)) == NULL)
        return NULL;
    memcpy(n, ptr, have);
    mem_free(ptr, ud);
    return n;
}

/* The allocator nghttp2 gets, over p's lists; a class list keeps at most
 * MEM_KEEP bytes and 2048 blocks. */
static void
mem_init(struct hd_h2_pool *p)
{
    p->mem = (nghttp2_mem){p, mem_malloc, mem_free, mem_calloc, mem_realloc};
    for (int i = 0; i < MEM_CLASSES; i++) {
        size_t size = (size_t)(i + 1) * MEM_STEP, keep = MEM_KEEP / size;
        hd_fl_init(&p->blocks[i], size, (unsigned)(keep < 2048 ? keep : 2048));
    }
}

/* after the last session of p is gone */
static void
mem_drain(struct hd_h2_pool *p)
{
    for (int i = 0; i < MEM_CLASSES; i++)
        hd_fl_drain(&p->blocks[i]);
}

/* ==== small lists ==== */

static void
list_remove(struct req **head, struct req **tail, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else if (tail)
        *tail = r->prev;
    r->next = r->prev = NULL;
}

static void
queue_push(struct hd_h2_pool *p, struct req *r, int front)
{
    r->conn = NULL;
    if (front) {
        r->prev = NULL;
        r->next = p->qhead;
        if (p->qhead)
            p->qhead->prev = r;
        else
            p->qtail = r;
        p->qhead = r;
    } else {
        r->next = NULL;
        r->prev = p->qtail;
        if (p->qtail)
            p->qtail->next = r;
        else
            p->qhead = r;
        p->qtail = r;
    }
    p->nqueued++;
}

static void
kick(struct hd_h2_pool *p)
{
    event_active(p->done_ev, EV_TIMEOUT, 0);
}

/* Moves r (owned by nobody now) to the done list. */
static void
complete(struct req *r, const char *error)
{
    struct hd_h2_pool *p = r->pool;

    evtimer_del(&r->timer);
    r->conn = NULL;
    r->error = error;
    r->next = NULL;
    r->prev = p->dtail;
    if (p->dtail)
        p->dtail->next = r;
    else
        p->dhead = r;
    p->dtail = r;
    kick(p);
}

static int
in_hbuf(const struct req *r, const char *p)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->hbuf;
    return a >= b && a < b + sizeof(r->hbuf);
}

static char *
header_copy(struct req *r, const uint8_t *s, size_t n)
{
    char *p;

    if (sizeof(r->hbuf) - r->hused > n) {
        p = r->hbuf + r->hused;
        r->hused += n + 1;
    } else {
        p = hd_alloc(n + 1);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void
reset_response(struct req *r)
{
    for (int i = 0; i < r->nrh; i++) {
        if (!in_hbuf(r, r->rh[i].name))
            free((char *)r->rh[i].name);
        if (!in_hbuf(r, r->rh[i].value))
            free((char *)r->rh[i].value);
    }
    r->nrh = 0;
    r->hused = 0;
    r->status = 0;
    r->rlen = 0;
    r->off = 0;
    r->sent = 0;
    r->stream_id = 0;
}

static void
req_free(struct req *r)
{
    reset_response(r);
    free(r->rbody);
    hd_fl_put(&r->pool->reqs, r, r->size);
}

/* ==== the stream table of a connection ==== */

static struct req **
stream_slot(struct conn *c, int32_t id)
{
    struct req **pp = &c->streams[((uint32_t)id >> 1) % STREAM_BUCKETS];
    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->stream_id == id)
            break;
    return pp;
}

static struct req *
stream_find(struct conn *c, int32_t id)
{
    return *stream_slot(c, id);
}

static void
attach(struct conn *c, struct req *r, int32_t id)
{
    struct req **pp;

    r->conn = c;
    r->stream_id = id;
    pp = stream_slot(c, id);
    r->hnext = *pp;
    *pp = r;
    r->prev = NULL;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->nactive++;
    HD_COUNT(c->pool->pm->streams, 1);
}

static void
detach(struct conn *c, struct req *r)
{
    struct req **pp = stream_slot(c, r->stream_id);
    if (*pp == r)
        *pp = r->hnext;
    r->hnext = NULL;
    list_remove(&c->reqs, NULL, r);
    c->nactive--;
    HD_COUNT(c->pool->pm->streams, -1);
    r->conn = NULL;
}

/* Back to the queue's front (it was first in line), or failed when it
 * has been tried too often. */
static void
requeue(struct req *r, const char *error)
{
    struct hd_h2_pool *p = r->pool;

    if (++r->tries >= MAX_TRIES) {
        complete(r, error);
        return;
    }
    reset_response(r);
    p->st.retried++;
    queue_push(p, r, 1);
    kick(p);
}

/* ==== nghttp2 callbacks ==== */

static ssize_t
on_data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
             uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct conn *c = arg;
    struct req *r = stream_find(c, id);
    size_t n;

    if (r == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    n = r->len - r->off;
    if (n > length)
        n = length;
    memcpy(buf, r->body + r->off, n);
    r->off += n;
    if (r->off == r->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
          size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
          void *arg)
{
    struct conn *c = arg;
    struct req *r;

    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    r = stream_find(c, f->hd.stream_id);
    if (r == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        if (st >= 200) /* 1xx: wait for the final one */
            r->status = st;
        return 0;
    }
    if (name[0] == ':' || r->nrh == HD_H2_MAX_RESPONSE_HEADERS)
        return 0;
    r->rh[r->nrh].name = header_copy(r, name, namelen);
    r->rh[r->nrh].value = header_copy(r, value, valuelen);
    r->nrh++;
    return 0;
}

static int
on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id,
              const uint8_t *data, size_t len, void *arg)
{
    struct conn *c = arg;
    struct req *r = stream_find(c, id);

    if (r == NULL)
        return 0;
    if (r->rlen + len > HD_H2_MAX_RESPONSE_BODY)
        len = HD_H2_MAX_RESPONSE_BODY - r->rlen;
    if (r->rlen + len + 1 > r->rcap) {
        size_t cap = r->rcap ? r->rcap : 256;
        while (cap < r->rlen + len + 1)
            cap *= 2;
        r->rbody = hd_realloc(r->rbody, cap);
        r->rcap = cap;
    }
    memcpy(r->rbody + r->rlen, data, len);
    r->rlen += len;
    r->rbody[r->rlen] = '\0';
    return 0;
}

static int
on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *arg)
{
    struct conn *c = arg;
    struct req *r = stream_find(c, id);

    if (r == NULL)
        return 0;
    detach(c, r);
    kick(c->pool); /* a slot is free */
    if (r->status && code == NGHTTP2_NO_ERROR) {
        complete(r, NULL);
    } else if (code == NGHTTP2_REFUSED_STREAM && r->status == 0) {
        /* not processed (refused, or above a GOAWAY's last stream id) */
        requeue(r, "stream refused by the peer");
    } else if (r->status) {
        complete(r, NULL); /* a response, then a reset: keep the answer */
    } else {
        hd_log(HD_LOG_INFO, &c->pool->log, 0, "stream %d reset by the peer: %s",
               id, nghttp2_http2_strerror(code));
        complete(r, "stream reset by the peer");
    }
    return 0;
}

static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct conn *c = arg;
    struct req *r;

    if (f->hd.type == NGHTTP2_HEADERS &&
        (r = stream_find(c, f->hd.stream_id)) != NULL)
        r->sent = 1;
    return 0;
}

static int
on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int code,
                  void *arg)
{
    struct conn *c = arg;
    struct req *r;

    if (f->hd.type != NGHTTP2_HEADERS ||
        (r = stream_find(c, f->hd.stream_id)) == NULL)
        return 0;
    /* GOAWAY came first, or stream ids ran out: use another connection */
    detach(c, r);
    if (c->state == C_READY)
        c->state = C_DRAINING;
    requeue(r, "stream could not be opened");
    return 0;
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct conn *c = arg;
    struct hd_h2_pool *p = c->pool;

    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            break;
        HD_COUNT(p->pm->stream_limit, -(uint64_t)c->max_streams);
        c->max_streams = nghttp2_session_get_remote_settings(
            s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        HD_COUNT(p->pm->stream_limit, (uint64_t)c->max_streams);
        if ((int)c->max_streams > p->st.max_streams)
            p->st.max_streams = (int)c->max_streams;
        hd_log(HD_LOG_DEBUG, &p->log, 0, "peer allows %u concurrent streams",
               c->max_streams);
        if (!c->got_settings && c->state == C_CONNECTING) {
            c->got_settings = 1;
            c->state = C_READY;
            c->ready_once = 1;
            c->backoff_ms = 0;
            p->st.connects++;
            c->open = 1;
            HD_COUNT(p->pm->connections, 1);
            HD_COUNT(p->pm->connects[0], 1);
            evtimer_del(c->timer);
            if (p->ping_interval_ms > 0) {
                struct timeval tv = {p->ping_interval_ms / 1000,
                                     (p->ping_interval_ms % 1000) * 1000};
                evtimer_add(c->timer, &tv);
            }
        }
        kick(p); /* the limit may have been raised */
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            c->ping_out = 0;
        break;
    case NGHTTP2_GOAWAY:
        HD_COUNT(p->pm->goaways, 1);
        hd_log(HD_LOG_INFO, &p->log, 0,
               "GOAWAY from the peer: %s, last stream %d%s%.*s",
               nghttp2_http2_strerror(f->goaway.error_code),
               f->goaway.last_stream_id, f->goaway.opaque_data_len ? ": " : "",
               (int)(f->goaway.opaque_data_len > 200
                         ? 200
                         : f->goaway.opaque_data_len),
               (const char *)f->goaway.opaque_data);
        if (c->state == C_READY || c->state == C_CONNECTING)
            c->state = C_DRAINING;
        kick(p);
        break;
    default:
        break;
    }
    return 0;
}

static nghttp2_session_callbacks *callbacks;
static pthread_once_t callbacks_once = PTHREAD_ONCE_INIT;

static void
make_callbacks(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                           on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks,
                                                         on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks,
                                                         on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks,
                                                             on_frame_not_send);
    ares_library_init(ARES_LIB_INIT_ALL);
}

/* ==== connection I/O ==== */

/* Serializes frames into the bufferevent, up to OUTPUT_HIGH bytes queued;
 * the write callback asks for more. HD_ERROR: the connection is over. */
static int
conn_flush(struct conn *c)
{
    /* frames are gathered up to a full TLS record: bufferevent_openssl
     * writes what each evbuffer_add brings at once, so frames handed over
     * one by one went out as a TLS record and a write(2) each (in chains of
     * up to 4 KiB when the socket was full). It runs our write callback
     * deferred, so nothing re-enters here while frames wait in rec. */
    unsigned char rec[16384];
    size_t used = 0;
    struct evbuffer *out;

    if (c->session == NULL)
        return HD_OK;
    if (c->state == C_DRAINING && c->nactive == 0)
        return HD_ERROR; /* nothing left on it */
    out = bufferevent_get_output(c->bev);
    while (evbuffer_get_length(out) + used < OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            hd_log(HD_LOG_ERR, &c->pool->log, 0,
                   "nghttp2_session_mem_send() failed: %s",
                   nghttp2_strerror((int)n));
            return HD_ERROR;
        }
        if (n == 0)
            break;
        if (used + (size_t)n > sizeof(rec) && used > 0) {
            evbuffer_add(out, rec, used);
            used = 0;
        }
        if ((size_t)n > sizeof(rec)) {
            evbuffer_add(out, data, (size_t)n);
        } else {
            memcpy(rec + used, data, (size_t)n);
            used += (size_t)n;
        }
    }
    if (used > 0)
        evbuffer_add(out, rec, used);
    if (!nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session) &&
        evbuffer_get_length(out) == 0)
        return HD_ERROR; /* GOAWAY done, nothing left */
    return HD_OK;
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (conn_flush(c) != HD_OK)
        conn_close(c, NULL);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16];
    int n;

    c->last_read_ms = hd_now_ms();
    n = evbuffer_peek(in, -1, NULL, v, 16);
    if (n > 16)
        n = 16;
    for (int i = 0; i < n; i++) {
        ssize_t rv =
            nghttp2_session_mem_recv(c->session, v[i].iov_base, v[i].iov_len);
        if (rv < 0) {
            hd_log(HD_LOG_ERR, &c->pool->log, 0,
                   "HTTP/2 protocol error from the peer: %s",
                   nghttp2_strerror((int)rv));
            conn_close(c, "protocol error");
            return;
        }
        evbuffer_drain(in, v[i].iov_len);
    }
    if (evbuffer_get_length(in) > 0) /* more chains than we peeked */
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
    if (conn_flush(c) != HD_OK)
        conn_close(c, NULL);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->session && nghttp2_session_want_write(c->session) &&
        conn_flush(c) != HD_OK)
        conn_close(c, NULL);
}

static int
session_start(struct conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, LOCAL_WINDOW},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        /* RFC 9218: no priority tree; requests go out in order */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        /* no HPACK table for responses: their one long header (apns-id)
         * is new each time, and adding it to the table, evicting older
         * ones, was ~1.4% of herald's CPU in bench/push */
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
    };
    nghttp2_option *opt;
    int rv;

    nghttp2_option_new(&opt);
    /* until the peer's SETTINGS arrive we submit nothing anyway */
    nghttp2_option_set_peer_max_concurrent_streams(opt, 1);
    /* a closed stream is forgotten at once: with a thousand streams a
     * connection, keeping closed ones for the priority tree cost more
     * than the requests */
    nghttp2_option_set_no_closed_streams(opt, 1);
    rv = nghttp2_session_client_new3(&c->session, callbacks, c, opt,
                                     &c->pool->mem);
    nghttp2_option_del(opt);
    if (rv != 0)
        return HD_ERROR;
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, HD_NELEMS(iv));
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                          LOCAL_WINDOW);
    return conn_flush(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct hd_h2_pool *p = c->pool;
    char ebuf[256];

    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        int one = 1;

        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one));
        SSL_get0_alpn_selected(ssl, &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            hd_log(HD_LOG_ERR, &p->log, 0,
                   "the peer did not select ALPN \"h2\"");
            conn_close(c, "no HTTP/2 (ALPN)");
            return;
        }
        if (session_start(c) != HD_OK)
            conn_close(c, "cannot start HTTP/2 session");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        int err = EVUTIL_SOCKET_ERROR();

        if (vr != X509_V_OK)
            hd_log(HD_LOG_ERR, &p->log, 0, "certificate of %s not accepted: %s",
                   p->host, X509_verify_cert_error_string(vr));
        else if (e)
            hd_log(HD_LOG_ERR, &p->log, 0, "TLS error: %s",
                   (ERR_error_string_n(e, ebuf, sizeof(ebuf)), ebuf));
        else
            hd_log(HD_LOG_ERR, &p->log, err, "connection to %s:%d failed",
                   p->host, p->port);
        ERR_clear_error();
        conn_close(c, "connection failed");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        hd_log(HD_LOG_INFO, &p->log, 0, "connection closed by the peer");
        conn_close(c, "connection closed by the peer");
    }
}

/* ==== connection life cycle ==== */

static void
arm(struct conn *c, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void
on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct hd_h2_pool *p = c->pool;

    switch (c->state) {
    case C_BACKOFF:
        c->state = C_IDLE;
        kick(p);
        break;
    case C_RESOLVING:
    case C_CONNECTING:
        hd_log(HD_LOG_ERR, &p->log, 0, "connect to %s:%d timed out", p->host,
               p->port);
        conn_close(c, "connect timed out");
        break;
    case C_READY:
    case C_DRAINING:
        if (c->ping_out) {
            hd_log(HD_LOG_ERR, &p->log, 0, "PING not answered, closing");
            conn_close(c, "PING timed out");
            return;
        }
        if (hd_now_ms() - c->last_read_ms >= p->ping_interval_ms) {
            nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
            c->ping_out = 1;
            event_active(c->flush_ev, EV_TIMEOUT, 0);
        }
        arm(c, p->ping_interval_ms);
        break;
    default:
        break;
    }
}

static struct conn *
conn_new(struct hd_h2_pool *p, int slot)
{
    struct conn *c = hd_calloc(sizeof(*c));
    c->pool = p;
    c->slot = slot;
    c->timer = evtimer_new(p->base, on_conn_timer, c);
    c->flush_ev = event_new(p->base, -1, 0, on_flush, c);
    return c;
}

static void
conn_free(struct conn *c)
{
    event_free(c->timer);
    event_free(c->flush_ev);
    free(c);
}

/* Ends the socket and session. Requests the peer cannot have processed
 * go back to the queue; the others fail with why (their outcome is
 * unknown: the caller retries them). A slot connection stays, idle or in
 * backoff; a draining one is freed. */
static void
conn_close(struct conn *c, const char *why)
{
    struct hd_h2_pool *p = c->pool;
    struct req *r, *next;
    int was_ready = c->state == C_READY || c->state == C_DRAINING;
    uint64_t loss = 0;

    if (c->bev) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl)
            SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->session) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    for (r = c->reqs; r; r = next) {
        next = r->next;
        detach(c, r);
        if (!r->sent) {
            requeue(r, why ? why : "connection closed");
            continue;
        }
        /* the peer may have processed them: they fail, all with one loss */
        if (loss == 0)
            loss = __atomic_add_fetch(&loss_seq, 1, __ATOMIC_RELAXED);
        r->lost_with = loss;
        complete(r, why ? why : "connection closed");
    }
    evtimer_del(c->timer);
    event_del(c->flush_ev);
    c->got_settings = 0;
    c->ping_out = 0;
    HD_COUNT(p->pm->stream_limit, -(uint64_t)c->max_streams);
    c->max_streams = 0;
    if (c->open) {
        HD_COUNT(p->pm->connections, -1);
        c->open = 0;
    } else {
        HD_COUNT(p->pm->connects[1], 1); /* never reached READY */
    }

    if (c->slot < 0) {
        struct conn **pp;
        for (pp = &p->draining; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        conn_free(c);
        kick(p);
        return;
    }
    if (was_ready && c->ready_once) {
        c->state = C_IDLE; /* it worked: reconnect at once when needed */
    } else {
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        c->state = C_BACKOFF;
        arm(c, c->backoff_ms / 2 + random() % (c->backoff_ms / 2 + 1));
    }
    c->ready_once = 0;
    kick(p);
}

static void
conn_connect_addr(struct conn *c)
{
    struct hd_h2_pool *p = c->pool;
    int i = p->next_addr++ % p->naddrs;
    SSL *ssl = hd_tls_new(p->ctx, p->host);

    if (ssl == NULL) {
        hd_log(HD_LOG_ERR, &p->log, 0, "SSL_new() failed");
        conn_close(c, "TLS setup failed");
        return;
    }
    c->state = C_CONNECTING;
    c->bev = bufferevent_openssl_socket_new(
        p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        conn_close(c, "cannot make a bufferevent");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->last_read_ms = hd_now_ms();
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&p->addrs[i],
                                   (int)p->addrlens[i]) != 0) {
        hd_log(HD_LOG_ERR, &p->log, EVUTIL_SOCKET_ERROR(),
               "connect() to %s:%d failed", p->host, p->port);
        conn_close(c, "connect failed");
    }
}

/* ==== the resolver: one c-ares channel per worker ==== */

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
    if (--rs->refs > 0)
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

static void
on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct dnsq *q = arg;
    struct hd_h2_pool *p = q->pool;
    int ttl = 300;

    free(q);
    if (p == NULL) {
        if (ai)
            ares_freeaddrinfo(ai);
        return;
    }
    p->dnsq = NULL;
    p->naddrs = 0;
    if (status == ARES_SUCCESS && ai) {
        for (struct ares_addrinfo_node *n = ai->nodes;
             n && p->naddrs < MAX_ADDRS; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
                n->ai_addrlen > sizeof(p->addrs[0]))
                continue;
            memcpy(&p->addrs[p->naddrs], n->ai_addr, n->ai_addrlen);
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&p->addrs[p->naddrs])->sin_port =
                    htons((uint16_t)p->port);
            else
                ((struct sockaddr_in6 *)&p->addrs[p->naddrs])->sin6_port =
                    htons((uint16_t)p->port);
            p->addrlens[p->naddrs++] = n->ai_addrlen;
            if (n->ai_ttl < ttl)
                ttl = n->ai_ttl;
        }
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (ttl < 5)
        ttl = 5; /* hosts-file answers carry no TTL */
    if (p->naddrs == 0) {
        static __thread char why[300];
        hd_log(HD_LOG_ERR, &p->log, 0, "cannot resolve \"%s\": %s", p->host,
               ares_strerror(status));
        for (int i = 0; i < p->nconns; i++)
            if (p->conns[i]->state == C_RESOLVING)
                conn_close(p->conns[i], "name not resolved");
        /* what waits would only time out: fail it now, saying why */
        snprintf(why, sizeof(why), "cannot resolve \"%s\": %s", p->host,
                 ares_strerror(status));
        while (p->qhead != NULL) {
            struct req *r = p->qhead;
            list_remove(&p->qhead, &p->qtail, r);
            p->nqueued--;
            complete(r, why);
        }
        return;
    }
    p->addrs_expire_ms = hd_now_ms() + ttl * 1000LL;
    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i]->state == C_RESOLVING)
            conn_connect_addr(p->conns[i]);
}

static void
conn_connect(struct conn *c)
{
    struct hd_h2_pool *p = c->pool;

    arm(c, p->connect_timeout_ms);
    if (p->literal || (p->naddrs > 0 && hd_now_ms() < p->addrs_expire_ms)) {
        conn_connect_addr(c);
        return;
    }
    c->state = C_RESOLVING;
    if (p->dnsq == NULL) {
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        p->dnsq = hd_calloc(sizeof(*p->dnsq));
        p->dnsq->pool = p;
        ares_getaddrinfo(p->resolver->ch, p->host, NULL, &hints, on_addrinfo,
                         p->dnsq);
        resolver_timer(p->resolver);
    }
}

/* ==== the pool ==== */

static int
submit(struct conn *c, struct req *r)
{
    nghttp2_data_provider dp, *dpp = NULL;
    int32_t id;

    if (r->body) {
        dp.source.ptr = NULL;
        dp.read_callback = on_data_read;
        dpp = &dp;
    }
    id = nghttp2_submit_request(c->session, NULL, r->nva, r->nnv, dpp, NULL);
    if (id < 0) {
        hd_log(HD_LOG_WARN, &c->pool->log, 0,
               "nghttp2_submit_request() failed: %s", nghttp2_strerror(id));
        c->state = C_DRAINING;
        return HD_ERROR;
    }
    attach(c, r, id);
    return HD_OK;
}

/* A ready connection with a free stream, the one with the most free. */
static struct conn *
pick(struct hd_h2_pool *p)
{
    struct conn *best = NULL;
    int64_t best_free = 0;

    for (int i = 0; i < p->nconns; i++) {
        struct conn *c = p->conns[i];
        int64_t room;
        if (c->state != C_READY)
            continue;
        room = (int64_t)c->max_streams - c->nactive;
        if (room > best_free) {
            best = c;
            best_free = room;
        }
    }
    return best;
}

static void
pump(struct hd_h2_pool *p)
{
    struct conn *c;

    /* a draining connection leaves its slot to a fresh one */
    for (int i = 0; i < p->nconns; i++) {
        c = p->conns[i];
        if (c->state == C_DRAINING) {
            struct conn *fresh = conn_new(p, i);
            c->slot = -1;
            c->next = p->draining;
            p->draining = c;
            p->conns[i] = fresh;
            event_active(c->flush_ev, EV_TIMEOUT, 0);
        }
    }
    while (p->qhead && (c = pick(p)) != NULL) {
        struct req *r = p->qhead;
        list_remove(&p->qhead, &p->qtail, r);
        p->nqueued--;
        if (submit(c, r) != HD_OK) {
            queue_push(p, r, 1);
            continue; /* c is draining now: pick() skips it */
        }
        if (!event_pending(c->flush_ev, EV_TIMEOUT, NULL))
            event_active(c->flush_ev, EV_TIMEOUT, 0);
    }
    if (p->qhead == NULL)
        return;
    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i]->state == C_IDLE)
            conn_connect(p->conns[i]);
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
    struct hd_h2_pool *p = arg;
    struct req *list = p->dhead, *r;

    p->dhead = p->dtail = NULL;
    while ((r = list) != NULL) {
        list = r->next;
        if (r->error) {
            cb_lost_with = r->lost_with;
            r->cb(r->arg, NULL, r->error);
            cb_lost_with = 0;
        } else {
            struct hd_h2_response res;
            res.status = r->status;
            res.headers = r->rh;
            res.nheaders = r->nrh;
            res.body = r->rbody ? r->rbody : (const unsigned char *)"";
            res.len = r->rlen;
            p->st.requests++;
            r->cb(r->arg, &res, NULL);
        }
        req_free(r);
    }
    pump(p);
}

static void
on_req_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct req *r = arg;
    struct hd_h2_pool *p = r->pool;
    struct conn *c = r->conn;

    if (c == NULL) {
        list_remove(&p->qhead, &p->qtail, r);
        p->nqueued--;
    } else {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, r->stream_id,
                                  NGHTTP2_CANCEL);
        detach(c, r);
        event_active(c->flush_ev, EV_TIMEOUT, 0);
    }
    complete(r, "request timed out");
}

struct hd_h2_pool *
hd_h2_pool_new(struct event_base *base, const struct hd_log *log,
               const struct hd_h2_pool_conf *c)
{
    struct hd_h2_pool *p;
    unsigned char a[16];
    struct timeval tv;
    char auth[300];

    pthread_once(&callbacks_once, make_callbacks);
    p = hd_calloc(sizeof(*p));
    p->base = base;
    p->log = *log;
    snprintf(p->action, sizeof(p->action), "while talking to %s:%d for %s",
             c->host, c->port, c->name ? c->name : "?");
    p->log.action = p->action;
    p->name = hd_strdup(c->name ? c->name : "?");
    p->host = hd_strdup(c->host);
    p->port = c->port;
    p->pm = hd_metrics_provider(c->metrics_id);
    if (c->authority) {
        p->authority = hd_strdup(c->authority);
    } else {
        int v6 = strchr(c->host, ':') != NULL;
        if (c->port == 443)
            snprintf(auth, sizeof(auth), v6 ? "[%s]" : "%s", c->host);
        else
            snprintf(auth, sizeof(auth), v6 ? "[%s]:%d" : "%s:%d", c->host,
                     c->port);
        p->authority = hd_strdup(auth);
    }
    p->ctx = c->ssl_ctx;
    p->max_queue = c->max_queue > 0 ? c->max_queue : 4096;
    /* a block holds a request with its headers and a body of about 1 KiB */
    hd_fl_init(&p->reqs, 3072, 1024);
    mem_init(p);
    p->connect_timeout_ms =
        c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 10000;
    p->ping_interval_ms = c->ping_interval_ms > 0 ? c->ping_interval_ms : 60000;
    tv.tv_sec = c->request_timeout_ms > 0 ? c->request_timeout_ms / 1000 : 30;
    tv.tv_usec =
        c->request_timeout_ms > 0 ? (c->request_timeout_ms % 1000) * 1000 : 0;
    p->req_tv = event_base_init_common_timeout(base, &tv);

    if (inet_pton(AF_INET, c->host, a) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&p->addrs[0];
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)c->port);
        memcpy(&sin->sin_addr, a, 4);
        p->addrlens[0] = sizeof(*sin);
        p->naddrs = 1;
        p->literal = 1;
    } else if (inet_pton(AF_INET6, c->host, a) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->addrs[0];
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)c->port);
        memcpy(&sin6->sin6_addr, a, 16);
        p->addrlens[0] = sizeof(*sin6);
        p->naddrs = 1;
        p->literal = 1;
    } else {
        p->resolver = resolver_get(base);
        if (p->resolver == NULL) {
            hd_log(HD_LOG_ERR, &p->log, 0, "cannot start c-ares");
            free(p->name);
            free(p->host);
            free(p->authority);
            free(p);
            return NULL;
        }
    }
    p->nconns = c->nconns > 0 ? c->nconns : 1;
    p->conns = hd_calloc(p->nconns * sizeof(*p->conns));
    for (int i = 0; i < p->nconns; i++)
        p->conns[i] = conn_new(p, i);
    p->done_ev = event_new(base, -1, 0, on_done, p);
    return p;
}

static void
drop_list(struct req *r)
{
    while (r) {
        struct req *next = r->next;
        evtimer_del(&r->timer);
        req_free(r);
        r = next;
    }
}

static void
conn_drop(struct conn *c)
{
    struct hd_provider_metrics *pm = c->pool->pm;
    struct req *r, *next;

    for (r = c->reqs; r; r = next) {
        next = r->next;
        evtimer_del(&r->timer);
        req_free(r);
    }
    c->reqs = NULL;
    HD_COUNT(pm->streams, -(uint64_t)c->nactive);
    HD_COUNT(pm->stream_limit, -(uint64_t)c->max_streams);
    if (c->open)
        HD_COUNT(pm->connections, -1);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->session)
        nghttp2_session_del(c->session);
    conn_free(c);
}

void
hd_h2_pool_free(struct hd_h2_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->nconns; i++)
        conn_drop(p->conns[i]);
    while (p->draining) {
        struct conn *c = p->draining;
        p->draining = c->next;
        conn_drop(c);
    }
    drop_list(p->qhead);
    drop_list(p->dhead);
    if (p->dnsq)
        p->dnsq->pool = NULL;
    if (p->resolver)
        resolver_put(p->resolver);
    event_free(p->done_ev);
    free(p->conns);
    free(p->name);
    free(p->host);
    free(p->authority);
    hd_fl_drain(&p->reqs);
    mem_drain(p);
    free(p);
}

static void
nv_set(nghttp2_nv *nv, char **buf, const char *name, const char *value,
       int no_index)
{
    size_t vl = strlen(value);

    /* names are lower-case constants (h2client.h): nghttp2 may keep
     * pointing at them, neither copying nor lowering them */
    nv->name = (uint8_t *)name;
    nv->namelen = strlen(name);
    memcpy(*buf, value, vl);
    nv->value = (uint8_t *)*buf;
    nv->valuelen = vl;
    *buf += vl;
    /* values are copied by nghttp2: a cancelled request may be freed
     * before its HEADERS would have been serialized */
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME |
                (no_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
}

int
hd_h2_request(struct hd_h2_pool *p, const char *method, const char *path,
              const struct hd_h2_header *h, int nh, const void *body,
              size_t len, hd_h2_response_fn cb, void *arg)
{
    size_t need = 0, nnv = 4 + (size_t)nh, size;
    struct req *r;
    char *buf;

    if (p->nqueued >= p->max_queue)
        return HD_AGAIN;
    need = strlen(method) + strlen(path) + strlen(p->authority) + 64;
    for (int i = 0; i < nh; i++)
        need += strlen(h[i].value);

    /* one block: the request, the nv array, the header bytes, the body */
    size = sizeof(*r) + nnv * sizeof(nghttp2_nv) + need + len;
    r = hd_fl_get(&p->reqs, size);
    memset(r, 0, sizeof(*r));
    r->size = size;
    r->pool = p;
    r->cb = cb;
    r->arg = arg;
    r->nva = (nghttp2_nv *)(r + 1);
    buf = (char *)(r->nva + nnv);
    nv_set(&r->nva[0], &buf, ":method", method, 0);
    nv_set(&r->nva[1], &buf, ":scheme", "https", 0);
    nv_set(&r->nva[2], &buf, ":authority", p->authority, 0);
    nv_set(&r->nva[3], &buf, ":path", path, 1);
    for (int i = 0; i < nh; i++)
        nv_set(&r->nva[4 + i], &buf, h[i].name, h[i].value, h[i].no_index);
    r->nnv = nnv;
    if (body) {
        r->body = (unsigned char *)buf;
        memcpy(r->body, body, len);
        r->len = len;
    }
    event_assign(&r->timer, p->base, -1, 0, on_req_timeout, r);
    evtimer_add(&r->timer, p->req_tv);
    queue_push(p, r, 0);
    kick(p);
    return HD_OK;
}

void
hd_h2_pool_stats(const struct hd_h2_pool *p, struct hd_h2_stats *st)
{
    *st = p->st;
    st->queued = p->nqueued;
    st->active = 0;
    for (int i = 0; i < p->nconns; i++)
        st->active += p->conns[i]->nactive;
    for (struct conn *c = p->draining; c; c = c->next)
        st->active += c->nactive;
}

/* ==== helpers ==== */

const char *
hd_h2_header_find(const struct hd_h2_response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int
hd_h2_parse_url(const char *url, char *host, size_t hostlen, int *port,
                const char **path)
{
    int tls;

    /* the one URL parser (http1.c); HTTP/2 here is always over TLS */
    if (hd_http1_parse_url(url, &tls, host, hostlen, port, path) != HD_OK ||
        !tls)
        return HD_ERROR;
    return HD_OK;
}

int64_t
hd_h2_retry_after_ms(const char *v, int64_t now_ms)
{
    static const char *fmts[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime */
    };
    int64_t ms = -1;

    if (v == NULL)
        return -1;
    while (*v == ' ')
        v++;
    if (*v >= '0' && *v <= '9') {
        int64_t s = 0;
        for (; *v >= '0' && *v <= '9'; v++)
            if (s < 3600)
                s = s * 10 + (*v - '0');
        while (*v == ' ')
            v++;
        if (*v != '\0')
            return -1;
        ms = s * 1000;
    } else {
        for (size_t i = 0; i < HD_NELEMS(fmts) && ms < 0; i++) {
            struct tm tm;
            const char *end;
            memset(&tm, 0, sizeof(tm));
            end = strptime(v, fmts[i], &tm);
            if (end == NULL || *end != '\0')
                continue;
            ms = (int64_t)timegm(&tm) * 1000 - now_ms;
            if (ms < 0)
                ms = 0;
        }
        if (ms < 0)
            return -1;
    }
    return ms > 3600000 ? 3600000 : ms;
}
