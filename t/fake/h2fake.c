/*
 * h2fake.c: the server core of the C fake providers (see h2fake.h). One
 * thread, one event loop: TLS 1.2+ and ALPN h2 through bufferevent_openssl,
 * an nghttp2 server session per connection fed with nghttp2_session_mem_recv
 * and drained with nghttp2_session_mem_send, requests kept on a free list,
 * answers delayed on a per-connection queue (one timer each), the fault
 * control file, and the buffered JSON-lines log. Knows no provider rules.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "h2fake.h"

#define FK_BODY_KEEP (1024 * 1024)
#define FK_STREAM_WINDOW (1024 * 1024)
#define FK_CONN_WINDOW (16 * 1024 * 1024)
#define FK_LOG_FLUSH_MS 10
#define FK_FAULT_REREAD_MS 20

enum { FK_CLOSE_NONE, FK_CLOSE_FLUSH, FK_CLOSE_RESET };

static struct {
    struct event_base *base;
    SSL_CTX *ssl;
    const struct fk_conf *cf;
    const struct fk_program *prog;
    nghttp2_session_callbacks *cbs;
    int port, nconn;
    FILE *log;
    struct fk_buf line;
    struct fk_jw jw;
    struct event *log_timer;
    int log_dirty;
    char mode[64];
    int64_t mode_read_at;
    struct fk_req *free_reqs;
    struct fk_buf out;
} srv;

static void conn_free(struct fk_conn *c);
static int conn_settle(struct fk_conn *c);

static void
die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, errno ? strerror(errno) : "failed");
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* ==== buffers and the JSON writer ======================================= */

static void
buf_reserve(struct fk_buf *b, size_t n)
{
    size_t cap;

    if (b->len + n <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL)
        abort();
    b->cap = cap;
}

void
fk_buf_add(struct fk_buf *b, const void *p, size_t n)
{
    buf_reserve(b, n + 1);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
fk_buf_addc(struct fk_buf *b, char c)
{
    fk_buf_add(b, &c, 1);
}

void
fk_buf_adds(struct fk_buf *b, const char *s)
{
    fk_buf_add(b, s, strlen(s));
}

void
fk_buf_free(struct fk_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void
fk_jw_init(struct fk_jw *w, struct fk_buf *b)
{
    w->b = b;
    w->depth = 0;
    w->first[0] = 1;
}

static void jw_value(struct fk_jw *w);
static void jw_escape(struct fk_buf *b, const char *s, size_t n);

static void
jw_sep(struct fk_jw *w)
{
    if (!w->first[w->depth])
        fk_buf_addc(w->b, ',');
    w->first[w->depth] = 0;
}

void
fk_jw_open(struct fk_jw *w, char c)
{
    jw_value(w);
    fk_buf_addc(w->b, c);
    if (w->depth + 1 < (int)sizeof(w->first))
        w->depth++;
    w->first[w->depth] = 1;
}

void
fk_jw_close(struct fk_jw *w, char c)
{
    fk_buf_addc(w->b, c);
    if (w->depth > 0)
        w->depth--;
}

void
fk_jw_key(struct fk_jw *w, const char *k)
{
    jw_sep(w);
    fk_buf_addc(w->b, '"');
    jw_escape(w->b, k, strlen(k));
    fk_buf_add(w->b, "\":", 2);
    w->first[w->depth] = 2; /* a value follows: no separator */
}

/* values inside an array need the separator; after a key they do not */
static void
jw_value(struct fk_jw *w)
{
    if (w->first[w->depth] == 2)
        w->first[w->depth] = 0;
    else
        jw_sep(w);
}

static void
jw_escape(struct fk_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    unsigned char ch;

    buf_reserve(b, n + 2);
    for (i = 0; i < n; i++) {
        ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        fk_buf_add(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"':
            fk_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            fk_buf_add(b, "\\\\", 2);
            break;
        case '\n':
            fk_buf_add(b, "\\n", 2);
            break;
        case '\r':
            fk_buf_add(b, "\\r", 2);
            break;
        case '\t':
            fk_buf_add(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            fk_buf_add(b, u, 6);
        }
        }
    }
    fk_buf_add(b, s + run, n - run);
}

void
fk_jw_str(struct fk_jw *w, const char *s, size_t n)
{
    jw_value(w);
    fk_buf_addc(w->b, '"');
    jw_escape(w->b, s, n);
    fk_buf_addc(w->b, '"');
}

void
fk_jw_cstr(struct fk_jw *w, const char *s)
{
    if (s == NULL)
        fk_jw_null(w);
    else
        fk_jw_str(w, s, strlen(s));
}

void
fk_jw_int(struct fk_jw *w, long long v)
{
    char num[32];

    jw_value(w);
    fk_buf_add(w->b, num, (size_t)snprintf(num, sizeof(num), "%lld", v));
}

void
fk_jw_raw(struct fk_jw *w, const char *s, size_t n)
{
    jw_value(w);
    fk_buf_add(w->b, s, n);
}

void
fk_jw_null(struct fk_jw *w)
{
    fk_jw_raw(w, "null", 4);
}

/* ==== the hash table ==================================================== */

static uint64_t
hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h | 1;
}

static struct fk_map_ent *
map_find(struct fk_map *m, const char *k, size_t n, uint64_t h)
{
    size_t i, mask = m->cap - 1;
    struct fk_map_ent *e;

    for (i = h & mask;; i = (i + 1) & mask) {
        e = &m->ent[i];
        if (e->key == NULL)
            return e;
        if (e->hash == h && e->klen == n && memcmp(e->key, k, n) == 0)
            return e;
    }
}

static void
map_grow(struct fk_map *m)
{
    struct fk_map_ent *old = m->ent, *e;
    size_t i, ocap = m->cap;

    m->cap = ocap ? ocap * 2 : 64;
    m->ent = calloc(m->cap, sizeof(*m->ent));
    if (m->ent == NULL)
        abort();
    for (i = 0; i < ocap; i++) {
        if (old[i].key == NULL)
            continue;
        e = map_find(m, old[i].key, old[i].klen, old[i].hash);
        *e = old[i];
    }
    free(old);
}

struct fk_map_ent *
fk_map_get(struct fk_map *m, const char *k, size_t n)
{
    struct fk_map_ent *e;

    if (m->cap == 0)
        return NULL;
    e = map_find(m, k, n, hash(k, n));
    return e->key ? e : NULL;
}

struct fk_map_ent *
fk_map_put(struct fk_map *m, const char *k, size_t n)
{
    struct fk_map_ent *e;
    uint64_t h = hash(k, n);

    if ((m->used + 1) * 2 > m->cap)
        map_grow(m);
    e = map_find(m, k, n, h);
    if (e->key)
        return e;
    e->key = malloc(n + 1);
    if (e->key == NULL)
        abort();
    memcpy(e->key, k, n);
    e->key[n] = '\0';
    e->klen = n;
    e->hash = h;
    e->v.p = NULL;
    e->v.n = 0;
    m->used++;
    return e;
}

void
fk_map_clear(struct fk_map *m)
{
    size_t i;

    for (i = 0; i < m->cap; i++) {
        if (m->ent[i].key == NULL)
            continue;
        if (m->free_value)
            m->free_value(m->ent[i].v.p);
        free(m->ent[i].key);
    }
    if (m->cap)
        memset(m->ent, 0, m->cap * sizeof(*m->ent));
    m->used = 0;
}

/* ==== helpers =========================================================== */

int64_t
fk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ssize_t
fk_b64url_decode(const char *in, size_t n, unsigned char *out)
{
    static signed char tab[256];
    static int ready;
    const char *a =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint32_t acc = 0;
    size_t i, o = 0;
    int bits = 0, v;

    if (!ready) {
        memset(tab, -1, sizeof(tab));
        for (i = 0; i < 62; i++)
            tab[(unsigned char)a[i]] = (signed char)i;
        tab['-'] = tab['+'] = 62;
        tab['_'] = tab['/'] = 63;
        ready = 1;
    }
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        v = tab[(unsigned char)in[i]];
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

void
fk_uuid4(char out[37])
{
    static uint64_t s;
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, j;

    if (s == 0)
        s = (uint64_t)fk_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b9;
    for (i = 0; i < 16; i += 8) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t r = s * 2685821657736338717ULL;
        memcpy(b + i, &r, 8);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i = 0, j = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 15];
    }
    out[j] = '\0';
}

void *
fk_load_pubkey(const char *file)
{
    FILE *f = fopen(file, "r");
    EVP_PKEY *k;

    if (f == NULL)
        die(file);
    k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL)
        die(file);
    return k;
}

static int
verify(EVP_PKEY *k, const char *msg, size_t n, const unsigned char *sig,
       size_t siglen)
{
    static EVP_MD_CTX *md;
    int ok;

    if (md == NULL && (md = EVP_MD_CTX_new()) == NULL)
        abort();
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
         EVP_DigestVerify(md, sig, siglen, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_reset(md);
    ERR_clear_error();
    return ok;
}

int
fk_verify_es256(void *pkey, const char *msg, size_t n, const unsigned char *sig,
                size_t siglen)
{
    ECDSA_SIG *es;
    BIGNUM *r, *s;
    unsigned char der[80], *p = der;
    int len, ok;

    if (siglen != 64 || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return 0;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s))
        abort();
    len = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    if (len <= 0 || len > (int)sizeof(der))
        return 0;
    ok = verify(pkey, msg, n, der, (size_t)len);
    return ok;
}

int
fk_verify_rs256(void *pkey, const char *msg, size_t n, const unsigned char *sig,
                size_t siglen)
{
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
        return 0;
    return verify(pkey, msg, n, sig, siglen);
}

/* ==== the log =========================================================== */

static void
on_log_timer(evutil_socket_t fd, short what, void *arg)
{
    if (srv.log && srv.log_dirty)
        fflush(srv.log);
    srv.log_dirty = 0;
}

struct fk_jw *
fk_log_begin(void)
{
    srv.line.len = 0;
    fk_jw_init(&srv.jw, &srv.line);
    fk_jw_open(&srv.jw, '{');
    return &srv.jw;
}

void
fk_log_end(void)
{
    struct timeval tv = {0, FK_LOG_FLUSH_MS * 1000};

    fk_jw_close(&srv.jw, '}');
    fk_buf_addc(&srv.line, '\n');
    if (srv.log == NULL)
        return;
    fwrite(srv.line.p, 1, srv.line.len, srv.log);
    if (!srv.log_dirty) {
        srv.log_dirty = 1;
        evtimer_add(srv.log_timer, &tv);
    }
}

struct fk_jw *
fk_log_event(const char *event)
{
    struct fk_jw *w = fk_log_begin();

    fk_jw_key(w, "event");
    fk_jw_cstr(w, event);
    return w;
}

void
fk_log_end_at(void)
{
    fk_jw_key(&srv.jw, "at");
    fk_jw_int(&srv.jw, fk_now_ms());
    fk_log_end();
}

int
fk_logging(void)
{
    return srv.log != NULL;
}

/* ==== requests ========================================================== */

static struct fk_req *
req_new(struct fk_conn *c, int32_t stream_id)
{
    struct fk_req *r = srv.free_reqs;

    if (r) {
        srv.free_reqs = r->next;
    } else if ((r = calloc(1, sizeof(*r))) == NULL) {
        abort();
    }
    r->conn = c;
    r->stream_id = stream_id;
    r->hbuf.len = r->body.len = r->resp.len = 0;
    r->nhdr = 0;
    r->body_size = r->resp_off = 0;
    r->deferred = NULL;
    r->closed = r->complete = r->answered = r->too_many_hdrs = 0;
    r->qnext = NULL;
    r->prev = NULL;
    r->next = c->_reqs;
    if (c->_reqs)
        c->_reqs->prev = r;
    c->_reqs = r;
    return r;
}

static void
req_free(struct fk_req *r)
{
    struct fk_conn *c = r->conn;

    if (r->prev)
        r->prev->next = r->next;
    else
        c->_reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->conn = NULL;
    /* keep big buffers from piling up on the free list */
    if (r->body.cap > 64 * 1024)
        fk_buf_free(&r->body);
    r->next = srv.free_reqs;
    srv.free_reqs = r;
}

const char *
fk_hdr_get(struct fk_req *r, const char *name, size_t *len)
{
    int i;

    for (i = 0; i < r->nhdr; i++) {
        if (strcmp(r->hbuf.p + r->hdr[i].name, name) == 0) {
            if (len)
                *len = r->hdr[i].vlen;
            return r->hbuf.p + r->hdr[i].value;
        }
    }
    return NULL;
}

int
fk_hdr_count(struct fk_req *r, const char *name)
{
    int i, n = 0;

    for (i = 0; i < r->nhdr; i++)
        n += strcmp(r->hbuf.p + r->hdr[i].name, name) == 0;
    return n;
}

const char *
fk_hdr_name(struct fk_req *r, int i, size_t *len)
{
    *len = r->hdr[i].nlen;
    return r->hbuf.p + r->hdr[i].name;
}

const char *
fk_hdr_value(struct fk_req *r, int i, size_t *len)
{
    *len = r->hdr[i].vlen;
    return r->hbuf.p + r->hdr[i].value;
}

static ssize_t
on_data_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
             uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct fk_req *r = src->ptr;
    size_t n = r->resp.len - r->resp_off;

    if (n > length)
        n = length;
    memcpy(buf, r->resp.p + r->resp_off, n);
    r->resp_off += n;
    if (r->resp_off == r->resp.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

void
fk_respond(struct fk_req *r, int status, const nghttp2_nv *nv, size_t n,
           const char *body, size_t len)
{
    nghttp2_nv h[24];
    nghttp2_data_provider prd;
    char st[8];
    size_t i;

    if (r->closed || r->answered || r->conn->_closing)
        return;
    r->answered = 1;
    snprintf(st, sizeof(st), "%d", status);
    h[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st),
                        NGHTTP2_NV_FLAG_NONE};
    for (i = 0; i < n && i + 1 < FK_NELEMS(h); i++)
        h[i + 1] = nv[i];
    r->resp.len = r->resp_off = 0;
    if (len > 0) {
        fk_buf_add(&r->resp, body, len);
        prd.source.ptr = r;
        prd.read_callback = on_data_read;
    }
    nghttp2_submit_response(r->conn->_session, r->stream_id, h, i + 1,
                            len > 0 ? &prd : NULL);
}

void
fk_rst(struct fk_req *r, uint32_t error_code)
{
    if (r->closed || r->answered || r->conn->_closing)
        return;
    r->answered = 1;
    nghttp2_submit_rst_stream(r->conn->_session, NGHTTP2_FLAG_NONE,
                              r->stream_id, error_code);
}

static void
queue_arm(struct fk_conn *c)
{
    struct timeval tv;
    int64_t ms;

    if (c->_qhead == NULL) {
        evtimer_del(c->_qtimer);
        return;
    }
    ms = c->_qhead->due_ms - fk_now_ms();
    if (ms < 0)
        ms = 0;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(c->_qtimer, &tv);
}

void
fk_defer(struct fk_req *r, int ms, fk_req_fn fn)
{
    struct fk_conn *c = r->conn;
    struct fk_req **pp;

    r->due_ms = fk_now_ms() + ms;
    r->deferred = fn;
    r->qnext = NULL;
    if (c->_qtail == NULL || c->_qtail->due_ms <= r->due_ms) {
        /* the usual case: one latency for all, so due times only grow */
        if (c->_qtail)
            c->_qtail->qnext = r;
        else
            c->_qhead = r;
        c->_qtail = r;
    } else {
        for (pp = &c->_qhead; (*pp)->due_ms <= r->due_ms; pp = &(*pp)->qnext)
            ;
        r->qnext = *pp;
        *pp = r;
    }
    if (c->_qhead == r)
        queue_arm(c);
}

static void
on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fk_conn *c = arg;
    struct fk_req *r;
    int64_t now = fk_now_ms();
    fk_req_fn fn;

    while ((r = c->_qhead) != NULL && r->due_ms <= now && !c->_closing) {
        c->_qhead = r->qnext;
        if (c->_qhead == NULL)
            c->_qtail = NULL;
        fn = r->deferred;
        r->deferred = NULL;
        fn(r);
        if (r->closed)
            req_free(r);
    }
    if (!c->_closing)
        queue_arm(c);
    conn_settle(c);
}

/* ==== fault injection =================================================== */

static const char *
fault_mode(void)
{
    int64_t now = fk_now_ms();
    char buf[64];
    ssize_t n;
    int fd;
    char *s, *e;

    if (now - srv.mode_read_at < FK_FAULT_REREAD_MS)
        return srv.mode;
    srv.mode_read_at = now;
    strcpy(srv.mode, "ok");
    if ((fd = open(srv.cf->fault_ctl, O_RDONLY)) < 0)
        return srv.mode;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return srv.mode;
    buf[n] = '\0';
    for (s = buf; *s && isspace((unsigned char)*s); s++)
        ;
    for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
        ;
    *e = '\0';
    if (*s)
        snprintf(srv.mode, sizeof(srv.mode), "%s", s);
    return srv.mode;
}

/* Logs the "request" line; returns 1 if the fault took the request. */
static int
fault_apply(struct fk_conn *c, struct fk_req *r)
{
    const char *path, *token, *id, *md, *action;
    struct fk_jw *w;
    char p4[5];
    size_t plen, tlen, i;
    int retry_after = -1;

    path = fk_hdr_get(r, ":path", &plen);
    if (path == NULL)
        path = "", plen = 0;
    token = path, tlen = plen;
    if (plen >= 10 && memcmp(path, "/3/device/", 10) == 0)
        token = path + 10, tlen = plen - 10;
    for (i = 0; i < 4 && i < tlen; i++)
        p4[i] = (char)tolower((unsigned char)token[i]);
    p4[i] = '\0';
    md = fault_mode();
    if (strcmp(p4, "e500") == 0)
        md = "500";
    else if (strcmp(p4, "e429") == 0)
        md = "429:1";

    if (strcmp(md, "500") == 0) {
        action = "500";
    } else if (strncmp(md, "429:", 4) == 0 && md[4] &&
               strspn(md + 4, "0123456789") == strlen(md + 4)) {
        action = "429";
        retry_after = atoi(md + 4);
    } else if (strcmp(md, "blackhole") == 0) {
        action = "blackhole";
    } else if (strcmp(md, "reset") == 0) {
        action = "reset";
    } else {
        action = "pass";
    }

    w = fk_log_event("request");
    fk_jw_key(w, "fconn");
    fk_jw_int(w, c->id);
    fk_jw_key(w, "stream");
    fk_jw_int(w, r->stream_id);
    fk_jw_key(w, "token");
    fk_jw_str(w, token, tlen);
    if ((id = fk_hdr_get(r, "apns-id", NULL)) != NULL) {
        fk_jw_key(w, "id");
        fk_jw_cstr(w, id);
    }
    fk_jw_key(w, "mode");
    fk_jw_cstr(w, md);
    fk_jw_key(w, "at");
    fk_jw_int(w, fk_now_ms());
    fk_jw_key(w, "action");
    fk_jw_cstr(w, action);
    if (retry_after >= 0) {
        fk_jw_key(w, "retry_after");
        fk_jw_int(w, retry_after);
    }
    fk_log_end();

    switch (action[0]) {
    case 'p':
        return 0;
    case '5':
        srv.prog->fault_reply(r, 500, 0);
        return 1;
    case '4':
        srv.prog->fault_reply(r, 429, retry_after);
        return 1;
    case 'r':
        fk_reset(c);
        return 1;
    default: /* blackhole: the stream stays open, never answered */
        return 1;
    }
}

/* ==== nghttp2 callbacks ================================================= */

static int
on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct fk_conn *c = arg;
    struct fk_req *r;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    r = req_new(c, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r);
    c->active++;
    return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
          size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
          void *arg)
{
    struct fk_req *r;
    struct fk_hdr *h;

    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (r == NULL || r->complete)
        return 0;
    if (r->nhdr == (int)FK_NELEMS(r->hdr)) {
        r->too_many_hdrs = 1;
        return 0;
    }
    h = &r->hdr[r->nhdr++];
    h->name = r->hbuf.len;
    h->nlen = nlen;
    fk_buf_add(&r->hbuf, name, nlen);
    fk_buf_addc(&r->hbuf, '\0');
    h->value = r->hbuf.len;
    h->vlen = vlen;
    fk_buf_add(&r->hbuf, value, vlen);
    fk_buf_addc(&r->hbuf, '\0');
    return 0;
}

static int
on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
              const uint8_t *data, size_t len, void *arg)
{
    struct fk_req *r = nghttp2_session_get_stream_user_data(s, stream_id);
    size_t keep;

    if (r == NULL || r->complete)
        return 0;
    r->body_size += len;
    if (r->body.len < FK_BODY_KEEP) {
        keep = FK_BODY_KEEP - r->body.len;
        fk_buf_add(&r->body, data, len < keep ? len : keep);
    }
    return 0;
}

/* the client's SETTINGS as a log line, so tests can read what it asked
 * for: {"event":"settings","conn","settings":{"1":v,...}} by setting id */
static void
log_settings(struct fk_conn *c, const nghttp2_settings *st)
{
    struct fk_jw *w = fk_log_event("settings");
    char id[16];

    fk_jw_key(w, "conn");
    fk_jw_int(w, c->id);
    fk_jw_key(w, "settings");
    fk_jw_open(w, '{');
    for (size_t i = 0; i < st->niv; i++) {
        snprintf(id, sizeof(id), "%d", st->iv[i].settings_id);
        fk_jw_key(w, id);
        fk_jw_int(w, st->iv[i].value);
    }
    fk_jw_close(w, '}');
    fk_log_end_at();
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct fk_conn *c = arg;
    struct fk_req *r;

    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) &&
        fk_logging())
        log_settings(c, &f->settings);
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (r == NULL || r->complete)
        return 0;
    r->complete = 1;
    if (r->body.p == NULL)
        fk_buf_add(&r->body, "", 0);
    if (r->hbuf.p == NULL)
        fk_buf_add(&r->hbuf, "", 0);
    /* once a drop or reset is decided, nothing more is processed */
    if (c->_closing)
        return 0;
    if (srv.cf->fault_ctl && fault_apply(c, r))
        return 0;
    /* above our GOAWAY's last stream id: not processed, never answered */
    if (c->goaway_id && r->stream_id > c->goaway_id)
        return 0;
    srv.prog->on_request(r);
    return 0;
}

static int
on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
                void *arg)
{
    struct fk_conn *c = arg;
    struct fk_req *r = nghttp2_session_get_stream_user_data(s, stream_id);

    if (r == NULL)
        return 0;
    c->active--;
    r->closed = 1;
    if (r->deferred == NULL)
        req_free(r);
    return 0;
}

/* nghttp2 enforces our SETTINGS_MAX_CONCURRENT_STREAMS itself; a client
 * over it is logged and told as APNs does */
static int
on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int lib_error,
                 void *arg)
{
    static const char msg[] =
        "Maximum active streams violated for this endpoint.";
    struct fk_conn *c = arg;
    struct fk_jw *w;
    int32_t last;

    if (f->hd.type != NGHTTP2_HEADERS ||
        (lib_error != NGHTTP2_ERR_PROTO &&
         lib_error != NGHTTP2_ERR_REFUSED_STREAM) ||
        c->active < (int)c->limit)
        return 0;
    w = fk_log_event("violation");
    fk_jw_key(w, "conn");
    fk_jw_int(w, c->id);
    fk_jw_key(w, "active");
    fk_jw_int(w, c->active + 1);
    fk_jw_key(w, "limit");
    fk_jw_int(w, c->limit);
    fk_log_end_at();
    last = f->hd.stream_id - 2 > 0 ? f->hd.stream_id - 2 : 0;
    if (!c->goaway_id)
        fk_goaway(c, last, NGHTTP2_REFUSED_STREAM, msg);
    return 0;
}

/* ==== connections ======================================================= */

void
fk_set_max_streams(struct fk_conn *c, uint32_t n)
{
    nghttp2_settings_entry iv[1] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, n}};

    c->limit = n;
    nghttp2_submit_settings(c->_session, NGHTTP2_FLAG_NONE, iv, 1);
}

void
fk_goaway(struct fk_conn *c, int32_t last, uint32_t error_code,
          const char *debug)
{
    if (c->_closing)
        return;
    c->goaway_id = last > 0 ? last : -1;
    nghttp2_submit_goaway(c->_session, NGHTTP2_FLAG_NONE, last, error_code,
                          (const uint8_t *)debug, debug ? strlen(debug) : 0);
}

void
fk_drop(struct fk_conn *c)
{
    if (c->_closing == FK_CLOSE_NONE)
        c->_closing = FK_CLOSE_FLUSH;
}

static void
on_close_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fk_conn *c = arg;

    if (c->_closing == FK_CLOSE_FLUSH) {
        conn_free(c); /* the peer did not read what was left */
        return;
    }
    fk_drop(c);
    conn_settle(c);
}

void
fk_drop_after(struct fk_conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(c->_close_timer, &tv);
}

void
fk_reset(struct fk_conn *c)
{
    c->_closing = FK_CLOSE_RESET;
}

int
fk_closing(struct fk_conn *c)
{
    return c->_closing != FK_CLOSE_NONE;
}

static int
session_send(struct fk_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->_bev);
    const uint8_t *data;
    ssize_t n;

    srv.out.len = 0;
    for (;;) {
        n = nghttp2_session_mem_send(c->_session, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (srv.out.len + (size_t)n > 64 * 1024) {
            evbuffer_add(out, srv.out.p, srv.out.len);
            srv.out.len = 0;
        }
        if (n > 64 * 1024)
            evbuffer_add(out, data, (size_t)n);
        else
            fk_buf_add(&srv.out, data, (size_t)n);
    }
    if (srv.out.len)
        evbuffer_add(out, srv.out.p, srv.out.len);
    return 0;
}

static void
conn_free(struct fk_conn *c)
{
    struct linger lg = {1, 0};
    evutil_socket_t fd;

    if (c->_session && srv.prog->on_close)
        srv.prog->on_close(c);
    while (c->_reqs)
        req_free(c->_reqs);
    if (c->_session)
        nghttp2_session_del(c->_session);
    if (c->_closing == FK_CLOSE_RESET && (fd = bufferevent_getfd(c->_bev)) >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    bufferevent_free(c->_bev);
    event_free(c->_qtimer);
    event_free(c->_close_timer);
    free(c);
}

/* After each event of the connection: writes what nghttp2 has queued and
 * closes when asked to or when both sides are done. Returns -1 if c was
 * freed. */
static int
conn_settle(struct fk_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->_bev);
    struct timeval tv = {1, 0};

    if (c->_closing == FK_CLOSE_RESET || c->_session == NULL) {
        conn_free(c);
        return -1;
    }
    /* a line is in the log before the answer it records is on the wire */
    if (srv.log_dirty) {
        fflush(srv.log);
        srv.log_dirty = 0;
        evtimer_del(srv.log_timer);
    }
    if (session_send(c) != 0) {
        conn_free(c);
        return -1;
    }
    if (c->_closing == FK_CLOSE_FLUSH) {
        if (evbuffer_get_length(out) > 0) {
            if (!evtimer_pending(c->_close_timer, NULL))
                evtimer_add(c->_close_timer, &tv);
            return 0;
        }
        if (!c->_lingering) {
            /* a lingering close (nginx's): FIN after the answers, then
             * read and discard until the peer closes (or 1 s), so that
             * requests it sent meanwhile do not turn close() into a reset
             * that can destroy those answers before the peer reads them */
            c->_lingering = 1;
            shutdown(bufferevent_getfd(c->_bev), SHUT_WR);
            evtimer_del(c->_close_timer);
            evtimer_add(c->_close_timer, &tv);
        }
        return 0;
    }
    if (!nghttp2_session_want_read(c->_session) &&
        !nghttp2_session_want_write(c->_session) &&
        evbuffer_get_length(out) == 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static int
on_handshake(struct fk_conn *c)
{
    nghttp2_settings_entry iv[2] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv.cf->initial_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, FK_STREAM_WINDOW}};
    SSL *ssl = bufferevent_openssl_get_ssl(c->_bev);
    const unsigned char *alpn = NULL;
    unsigned alen = 0;

    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0)
        return -1;
    c->cert_auth = SSL_get0_peer_certificate(ssl) != NULL &&
                   SSL_get_verify_result(ssl) == X509_V_OK;
    if (nghttp2_session_server_new(&c->_session, srv.cbs, c) != 0)
        return -1;
    c->id = ++srv.nconn;
    c->limit = srv.cf->initial_streams;
    nghttp2_submit_settings(c->_session, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->_session, NGHTTP2_FLAG_NONE, 0,
                                          FK_CONN_WINDOW);
    if (srv.prog->on_connect)
        srv.prog->on_connect(c);
    return 0;
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct fk_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[32];
    ssize_t rv;
    size_t total;
    int i, n;

    if (c->_session == NULL && on_handshake(c) != 0) {
        conn_free(c);
        return;
    }
    while (evbuffer_get_length(in) > 0 && !c->_closing) {
        n = evbuffer_peek(in, -1, NULL, v, 32);
        if (n > 32)
            n = 32;
        total = 0;
        for (i = 0; i < n; i++) {
            rv = nghttp2_session_mem_recv(c->_session, v[i].iov_base,
                                          v[i].iov_len);
            if (rv < 0) {
                conn_free(c);
                return;
            }
            total += v[i].iov_len;
        }
        evbuffer_drain(in, total);
    }
    if (c->_closing)
        evbuffer_drain(in, evbuffer_get_length(in));
    conn_settle(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct fk_conn *c = arg;

    if (c->_session == NULL)
        return;
    conn_settle(c);
}

static void
on_event(struct bufferevent *bev, short events, void *arg)
{
    struct fk_conn *c = arg;

    if (events & BEV_EVENT_CONNECTED) {
        if (c->_session == NULL && on_handshake(c) != 0) {
            conn_free(c);
            return;
        }
        conn_settle(c);
        return;
    }
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(c);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct fk_conn *c;
    SSL *ssl;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((ssl = SSL_new(srv.ssl)) == NULL) {
        evutil_closesocket(fd);
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        abort();
    c->_bev = bufferevent_openssl_socket_new(
        srv.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->_bev == NULL)
        abort();
    bufferevent_openssl_set_allow_dirty_shutdown(c->_bev, 1);
    c->_qtimer = evtimer_new(srv.base, on_queue_timer, c);
    c->_close_timer = evtimer_new(srv.base, on_close_timer, c);
    bufferevent_setcb(c->_bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->_bev, EV_READ | EV_WRITE);
}

/* ==== set-up ============================================================ */

static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
        const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned int i;

    for (i = 0; i < inlen; i += 1 + in[i]) {
        if (in[i] == 2 && i + 3 <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* h2 only, as APNs */
}

/* a certificate the CA does not sign is not refused: the connection goes
 * on with token auth (cert_auth 0) */
static int
on_verify(int ok, X509_STORE_CTX *ctx)
{
    return 1;
}

static SSL_CTX *
make_ssl(const struct fk_conf *cf)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cf->cert) != 1)
        die(cf->cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, cf->key, SSL_FILETYPE_PEM) != 1)
        die(cf->key);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    if (cf->client_ca) {
        if (SSL_CTX_load_verify_locations(ctx, cf->client_ca, NULL) != 1)
            die(cf->client_ca);
        SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(cf->client_ca));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
    }
    return ctx;
}

static nghttp2_session_callbacks *
make_callbacks(void)
{
    nghttp2_session_callbacks *cb;

    if (nghttp2_session_callbacks_new(&cb) != 0)
        abort();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
        cb, on_invalid_frame);
    return cb;
}

int
fk_conf_arg(struct fk_conf *cf, int argc, char **argv, int i)
{
    static const struct {
        const char *flag;
        size_t off;
    } str[] = {
        {"--cert", offsetof(struct fk_conf, cert)},
        {"--key", offsetof(struct fk_conf, key)},
        {"--client-ca", offsetof(struct fk_conf, client_ca)},
        {"--log", offsetof(struct fk_conf, log)},
        {"--port-file", offsetof(struct fk_conf, port_file)},
        {"--fault-ctl", offsetof(struct fk_conf, fault_ctl)},
    };
    size_t k;

    for (k = 0; k < FK_NELEMS(str); k++) {
        if (strcmp(argv[i], str[k].flag) != 0)
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "%s needs a value\n", argv[i]);
            exit(2);
        }
        *(const char **)((char *)cf + str[k].off) = argv[i + 1];
        return 2;
    }
    if (strcmp(argv[i], "--port") == 0) {
        if (i + 1 >= argc) {
            fprintf(stderr, "--port needs a value\n");
            exit(2);
        }
        cf->port = atoi(argv[i + 1]);
        return 2;
    }
    return 0;
}

int
fk_port(void)
{
    return srv.port;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(srv.base);
}

static void
write_port_file(const char *file, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    if ((f = fopen(tmp, "w")) == NULL)
        die(tmp);
    fprintf(f, "%d", port);
    if (fclose(f) != 0 || rename(tmp, file) != 0)
        die(file);
}

int
fk_run(const struct fk_conf *cf, const struct fk_program *prog)
{
    struct evconnlistener *l;
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    struct event *sigterm, *sigint;

    if (cf->cert == NULL || cf->key == NULL) {
        fprintf(stderr, "%s: --cert and --key are required\n", prog->name);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    srv.cf = cf;
    srv.prog = prog;
    srv.ssl = make_ssl(cf);
    srv.cbs = make_callbacks();
    if ((srv.base = event_base_new()) == NULL)
        die("event_base_new");
    if (cf->log) {
        if ((srv.log = fopen(cf->log, "a")) == NULL)
            die(cf->log);
        setvbuf(srv.log, NULL, _IOFBF, 1 << 20);
    }
    srv.log_timer = evtimer_new(srv.base, on_log_timer, NULL);
    strcpy(srv.mode, "ok");

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)cf->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = evconnlistener_new_bind(srv.base, on_accept, NULL,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                (struct sockaddr *)&sin, sizeof(sin));
    if (l == NULL)
        die("listen");
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
    srv.port = ntohs(sin.sin_port);
    if (cf->port_file)
        write_port_file(cf->port_file, srv.port);
    printf("port=%d\n", srv.port);
    fflush(stdout);

    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(srv.base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    event_base_dispatch(srv.base);

    if (srv.log)
        fclose(srv.log);
    return 0;
}
