/*
 * server.c: HTTP/1.1 connections of one worker: accept, parse, answer,
 * keep-alive and pipelining, timeouts, access log. Worker thread only.
 *
 * A connection reads one request at a time: while a request waits for its
 * answer (perhaps from another worker, after a group commit) reading stops,
 * so pipelined requests wait in the input buffer and answers go out in
 * order. The header and body timeouts are totals per request, not per
 * read, so a client trickling bytes cannot hold a connection (slowloris).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time.h"
#include "core/worker.h"
#include "http/http.h"

#define HD_MAX_HEADER 16384
#define HD_MAX_HEADERS 64
#define HD_MODULE_HTTP 1

enum conn_state { C_IDLE, C_HEADER, C_BODY, C_WAITING, C_CLOSING };

struct hd_conn {
    TAILQ_ENTRY(hd_conn) link;
    struct http_worker *hw;
    struct bufferevent *bev;
    struct event *timer;
    uint64_t id;
    char peer[INET6_ADDRSTRLEN];
    enum conn_state state;
    size_t header_len;
    int nrequests;
    int eof; /* the client closed while its answer was being made */
    struct hd_req *req;
    char extra[256]; /* extra header lines for the current reply */
    size_t extra_len;
};

/* The newest server TLS context: the main thread replaces it at a reload,
 * each worker takes a reference of its own at its next config turn. */
static SSL_CTX *ssl_ctx;
static pthread_mutex_t ssl_lock = PTHREAD_MUTEX_INITIALIZER;

struct http_worker;

/* one worker's copy of a listen address (SO_REUSEPORT) */
struct http_listener {
    struct http_worker *hw;
    struct evconnlistener *l;
    int ssl;
    char *text; /* as in conf->listen: a reload matches on it */
};

struct http_worker {
    struct hd_worker *w;
    struct http_listener *ls[HD_MAX_LISTEN];
    int nlisteners;
    SSL_CTX *ssl_ctx; /* this worker's reference */
    TAILQ_HEAD(, hd_conn) conns;
    int nconns;
    uint64_t next_id;
    char *alog; /* access log lines of this loop turn */
    size_t alog_len, alog_cap;
    struct event *alog_ev;
    char date[64];
    time_t date_sec;
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void process(struct hd_conn *c);

/* ==== connections ==== */

static void
conn_free(struct hd_conn *c)
{
    struct http_worker *hw = c->hw;

    HD_ASSERT(c->state != C_WAITING);
    TAILQ_REMOVE(&hw->conns, c, link);
    hw->nconns--;
    HD_COUNT(hd_metrics_self()->connections, -1);
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

static void
arm(struct hd_conn *c, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct http_listener *hl = arg;
    struct http_worker *hw = hl->hw;
    struct hd_conn *c;
    struct timeval wtv;
    int one = 1;

    if (hd_current_worker->stopping || (hl->ssl && hw->ssl_ctx == NULL)) {
        close(fd);
        return;
    }
    c = hd_calloc(sizeof(*c));
    c->hw = hw;
    c->id = ++hw->next_id * HD_MAX_WORKERS + (uint64_t)hw->w->id;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer,
                  sizeof(c->peer));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
                  sizeof(c->peer));
    else
        strcpy(c->peer, "-");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (hl->ssl) {
        SSL *ssl = SSL_new(hw->ssl_ctx);
        c->bev = bufferevent_openssl_socket_new(hw->w->base, fd, ssl,
                                                BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        c->bev = bufferevent_socket_new(hw->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->timer = evtimer_new(hw->w->base, on_timer, c);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    wtv.tv_sec = hw->w->conf->send_timeout_ms / 1000;
    wtv.tv_usec = (hw->w->conf->send_timeout_ms % 1000) * 1000;
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    /* stop reading once a request and a header's worth wait unprocessed */
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             (size_t)hw->w->conf->client_max_body_size +
                                 2 * HD_MAX_HEADER);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&hw->conns, c, link);
    hw->nconns++;
    HD_COUNT(hd_metrics_self()->connections, 1);
    c->state = C_IDLE;
    arm(c, hw->w->conf->keepalive_timeout_ms);
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
    struct http_worker *hw = ((struct http_listener *)arg)->hw;
    hd_log(HD_LOG_ERR, &hw->w->log, errno, "accept() failed");
}

/* ==== replies ==== */

static const char *
reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

static void
on_alog_flush(evutil_socket_t fd, short what, void *arg)
{
    struct http_worker *hw = arg;
    if (hw->alog_len) {
        hd_access_log_write(hw->alog, hw->alog_len);
        hw->alog_len = 0;
    }
}

static void
access_log(struct hd_conn *c, struct hd_req *r, const char *method,
           const char *path, int status, size_t bytes)
{
    struct http_worker *hw = c->hw;
    char ts[32];
    int64_t us = r ? hd_now_us() - r->start_us : 0;
    size_t need;

    if (!hd_access_log_enabled())
        return;
    hd_time_iso(hd_now_ms(), ts, sizeof(ts));
    need = strlen(path) + strlen(ts) + strlen(c->peer) + 128 +
           (r && r->key ? strlen(r->key->id) : 1);
    if (hw->alog_len + need > hw->alog_cap) {
        hw->alog_cap = hw->alog_cap * 2 + need;
        hw->alog = hd_realloc(hw->alog, hw->alog_cap);
    }
    if (hw->alog_len == 0)
        event_active(hw->alog_ev, EV_TIMEOUT, 0);
    hw->alog_len +=
        (size_t)snprintf(hw->alog + hw->alog_len, hw->alog_cap - hw->alog_len,
                         "%s %s %s \"%s %s\" %d %zu %lld\n", ts, c->peer,
                         r && r->key ? r->key->id : "-", method, path, status,
                         bytes, (long long)us);
}

static const char *
http_date(struct http_worker *hw)
{
    time_t now = time(NULL);
    if (now != hw->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(hw->date, sizeof(hw->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        hw->date_sec = now;
    }
    return hw->date;
}

/* Writes status line, headers and body; r may be NULL for errors found
 * before a request existed. Closes after the write unless keep-alive. */
static void
send_response_type(struct hd_conn *c, struct hd_req *r, int status,
                   const char *type, const char *body, size_t len,
                   int keepalive)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct hd_metrics *m = hd_metrics_self();
    int n;

    HD_COUNT(m->http_status[status / 100 < 6 ? status / 100 : 5], 1);
    if (r != NULL)
        hd_hist_observe(&m->http_seconds,
                        (double)(hd_now_us() - r->start_us) / 1e6);
    if (status == 204) /* no body, and no headers that announce one */
        n = evbuffer_add_printf(out,
                                "HTTP/1.1 204 No Content\r\n"
                                "Server: herald\r\n"
                                "Date: %s\r\n"
                                "X-Herald-Worker: %d\r\n"
                                "%s%.*s\r\n",
                                http_date(c->hw), c->hw->w->id,
                                keepalive ? "" : "Connection: close\r\n",
                                (int)c->extra_len, c->extra);
    else
        n = evbuffer_add_printf(out,
                                "HTTP/1.1 %d %s\r\n"
                                "Server: herald\r\n"
                                "Date: %s\r\n"
                                "Content-Type: %s\r\n"
                                "Content-Length: %zu\r\n"
                                "X-Herald-Worker: %d\r\n"
                                "%s%.*s\r\n",
                                status, reason(status), http_date(c->hw), type,
                                len, c->hw->w->id,
                                keepalive ? "" : "Connection: close\r\n",
                                (int)c->extra_len, c->extra);
    c->extra_len = 0;
    if (len && !(r && r->method == HD_M_HEAD))
        evbuffer_add(out, body, len);
    access_log(c, r, r ? r->method_name : "-", r ? r->path : "-", status,
               (size_t)n + len);
    if (!keepalive) {
        c->state = C_CLOSING;
        bufferevent_disable(c->bev, EV_READ);
        arm(c, c->hw->w->conf->send_timeout_ms);
    }
}

static void
send_response(struct hd_conn *c, struct hd_req *r, int status, const char *body,
              size_t len, int keepalive)
{
    send_response_type(c, r, status, "application/json", body, len, keepalive);
}

static void
req_free(struct hd_req *r)
{
    hd_conf_unref(r->conf);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    free(r->body);
    free(r->_hdr);
    free(r);
}

/* An error before a request was parsed: answer and close. */
static void
early_error(struct hd_conn *c, int status, const char *code,
            const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    c->extra_len = 0;
    send_response(c, NULL, status, body, (size_t)n, 0);
}

void
hd_http_header(struct hd_req *r, const char *line)
{
    struct hd_conn *c = r->conn;
    size_t n = strlen(line);
    if (c->extra_len + n + 2 > sizeof(c->extra))
        return;
    memcpy(c->extra + c->extra_len, line, n);
    memcpy(c->extra + c->extra_len + n, "\r\n", 2);
    c->extra_len += n + 2;
}

static void reply_raw(struct hd_req *r, int status, const char *type,
                      const char *text, size_t len);

void
hd_http_reply(struct hd_req *r, int status, json_t *body)
{
    char *text = NULL;
    size_t len = 0;

    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        len = text ? strlen(text) : 0;
        json_decref(body);
    }
    reply_raw(r, status, "application/json", text ? text : "", len);
    free(text);
}

void
hd_http_reply_text(struct hd_req *r, int status, const char *type,
                   const char *text, size_t len)
{
    reply_raw(r, status, type, text, len);
}

static void
reply_raw(struct hd_req *r, int status, const char *type, const char *text,
          size_t len)
{
    struct hd_conn *c = r->conn;
    struct hd_worker *w = c->hw->w;
    int keepalive;

    HD_ASSERT(c->req == r);
    keepalive = r->keepalive && !w->stopping && !c->eof &&
                c->nrequests < w->conf->keepalive_requests;
    r->status = status;
    c->state = C_IDLE;
    c->req = NULL;
    send_response_type(c, r, status, type, text, len, keepalive);
    req_free(r);
    if (keepalive) {
        arm(c, w->conf->keepalive_timeout_ms);
        /* pipelined requests may already be buffered */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            process(c);
    }
}

void
hd_http_error(struct hd_req *r, int status, const char *code, const char *field,
              const char *fmt, ...)
{
    char msg[512], f[256];
    va_list ap;
    json_t *err;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* names and values from the request, maybe cut inside a character */
    err = json_pack("{s:s, s:s}", "code", code, "message", hd_utf8_fix(msg));
    if (field) {
        snprintf(f, sizeof(f), "%s", field);
        json_object_set_new(err, "field", json_string(hd_utf8_fix(f)));
    }
    if (status == 401)
        hd_http_header(r, "WWW-Authenticate: Basic realm=\"herald\"");
    hd_http_reply(r, status, json_pack("{s:o}", "error", err));
}

/* ==== parsing ==== */

static int
method_of(const char *m, size_t n, const char **name)
{
    static const struct {
        const char *name;
        int m;
    } methods[] = {{"GET", HD_M_GET},        {"HEAD", HD_M_HEAD},
                   {"POST", HD_M_POST},      {"PUT", HD_M_PUT},
                   {"PATCH", HD_M_PATCH},    {"DELETE", HD_M_DELETE},
                   {"OPTIONS", HD_M_OPTIONS}};
    for (size_t i = 0; i < HD_NELEMS(methods); i++)
        if (strlen(methods[i].name) == n &&
            memcmp(methods[i].name, m, n) == 0) {
            *name = methods[i].name;
            return methods[i].m;
        }
    return 0;
}

static char *
trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

/* Parses the header block in r->_hdr (len bytes, NUL-terminated, ends
 * with CRLF CRLF). Returns HD_OK, or an HTTP status with *err set. */
static int
parse_header(struct hd_req *r, size_t len, int64_t *content_length,
             const char **err)
{
    char *p = r->_hdr, *eol, *sp, *target;
    int nheaders = 0, http11;

    /* a NUL byte would end the string functions below early (found by
     * t/fuzz/http.c): refuse it before anything reads the block */
    if (memchr(p, '\0', len) != NULL)
        return *err = "NUL byte in the request header", 400;
    eol = strstr(p, "\r\n");
    *eol = '\0';
    sp = strchr(p, ' ');
    if (sp == NULL)
        return *err = "malformed request line", 400;
    r->method = method_of(p, (size_t)(sp - p), &r->method_name);
    if (r->method == 0)
        return *err = "unknown method", 501;
    target = sp + 1;
    sp = strchr(target, ' ');
    if (sp == NULL || target[0] != '/')
        return *err = "malformed request line", 400;
    *sp = '\0';
    if (strcmp(sp + 1, "HTTP/1.1") == 0)
        http11 = 1;
    else if (strcmp(sp + 1, "HTTP/1.0") == 0)
        http11 = 0;
    else
        return *err = "unsupported HTTP version", 505;
    for (char *t = target; *t; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f)
            return *err = "invalid character in request target", 400;
    r->path = target;
    r->query = strchr(target, '?');
    if (r->query)
        *r->query++ = '\0';
    r->keepalive = http11;
    *content_length = -1;

    for (p = eol + 2; *p != '\r'; p = eol + 2) {
        char *colon, *name, *value;
        eol = strstr(p, "\r\n");
        *eol = '\0';
        if (*p == ' ' || *p == '\t')
            return *err = "obsolete header line folding", 400;
        if (++nheaders > HD_MAX_HEADERS)
            return *err = "too many header fields", 431;
        colon = strchr(p, ':');
        if (colon == NULL || colon == p)
            return *err = "malformed header field", 400;
        *colon = '\0';
        name = p;
        for (char *q = name; *q; q++)
            if (*q == ' ' || *q == '\t')
                return *err = "malformed header field", 400;
        value = trim(colon + 1, eol);
        for (char *q = value; *q; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return *err = "invalid character in header field", 400;

        if (strcasecmp(name, "content-length") == 0) {
            char *end;
            long long v;
            if (!isdigit((unsigned char)value[0]))
                return *err = "invalid Content-Length", 400;
            errno = 0;
            v = strtoll(value, &end, 10);
            if (*end != '\0' || errno)
                return *err = "invalid Content-Length", 400;
            if (*content_length >= 0 && *content_length != v)
                return *err = "conflicting Content-Length", 400;
            *content_length = v;
        } else if (strcasecmp(name, "transfer-encoding") == 0) {
            return *err = "chunked request bodies are not supported: send "
                          "Content-Length",
                   411;
        } else if (strcasecmp(name, "authorization") == 0) {
            r->authorization = value;
        } else if (strcasecmp(name, "idempotency-key") == 0) {
            r->idempotency_key = value;
        } else if (strcasecmp(name, "x-twilio-signature") == 0) {
            r->twilio_signature = value;
        } else if (strcasecmp(name, "content-type") == 0) {
            r->content_type = value;
        } else if (strcasecmp(name, "connection") == 0) {
            if (strcasestr(value, "close"))
                r->keepalive = 0;
            else if (strcasestr(value, "keep-alive"))
                r->keepalive = 1;
        } else if (strcasecmp(name, "expect") == 0) {
            if (strcasecmp(value, "100-continue") != 0)
                return *err = "unsupported Expect", 417;
            r->expect_continue = http11;
        }
    }
    return HD_OK;
}

/* Runs the request state machine as far as the buffered input allows. */
static void
process(struct hd_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct hd_worker *w = c->hw->w;

    while (c->state == C_IDLE || c->state == C_HEADER || c->state == C_BODY) {
        size_t avail = evbuffer_get_length(in);

        if (c->state == C_IDLE) {
            if (avail == 0)
                return;
            c->state = C_HEADER;
            arm(c, w->conf->client_header_timeout_ms);
        }

        if (c->state == C_HEADER) {
            struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            struct hd_req *r;
            int64_t clen;
            const char *err = NULL;
            int status;

            if (pos.pos < 0) {
                if (avail > HD_MAX_HEADER) {
                    early_error(c, 431, "header_too_large",
                                "request header exceeds 16k");
                    return;
                }
                return;
            }
            if ((size_t)pos.pos + 4 > HD_MAX_HEADER) {
                early_error(c, 431, "header_too_large",
                            "request header exceeds 16k");
                return;
            }
            r = hd_calloc(sizeof(*r));
            r->conn = c;
            r->worker = w;
            /* the request keeps its config (and key) alive: a reload
             * may swap the worker's while the answer is on its way */
            r->conf = w->conf;
            hd_conf_ref(r->conf);
            r->start_us = hd_now_us();
            c->header_len = (size_t)pos.pos + 4;
            r->_hdr = hd_alloc(c->header_len + 1);
            evbuffer_remove(in, r->_hdr, c->header_len);
            r->_hdr[c->header_len] = '\0';
            c->req = r;
            c->nrequests++;

            status = parse_header(r, c->header_len, &clen, &err);
            if (status == HD_OK && clen > w->conf->client_max_body_size) {
                status = 413;
                err = "request body is larger than client_max_body_size";
            }
            if (status == HD_OK && clen < 0 &&
                (r->method == HD_M_POST || r->method == HD_M_PUT ||
                 r->method == HD_M_PATCH)) {
                status = 411;
                err = "Content-Length is required";
            }
            if (status != HD_OK) {
                static const struct {
                    int status;
                    const char *code;
                } codes[] = {{400, "bad_request"},
                             {411, "length_required"},
                             {413, "body_too_large"},
                             {417, "expectation_failed"},
                             {431, "header_too_large"},
                             {501, "not_implemented"},
                             {505, "http_version_not_supported"}};
                const char *code = "bad_request";
                for (size_t i = 0; i < HD_NELEMS(codes); i++)
                    if (codes[i].status == status)
                        code = codes[i].code;
                if (r->method_name == NULL)
                    r->method_name = "-";
                if (r->path == NULL)
                    r->path = "-";
                c->state = C_WAITING;
                r->keepalive = 0; /* the body, if any, is unread */
                hd_http_error(r, status, code, NULL, "%s", err);
                return;
            }
            r->body_len = clen > 0 ? (size_t)clen : 0;
            c->state = C_BODY;
            arm(c, w->conf->client_body_timeout_ms);
            if (r->expect_continue && r->body_len > 0 &&
                evbuffer_get_length(in) < r->body_len)
                evbuffer_add(bufferevent_get_output(c->bev),
                             "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }

        if (c->state == C_BODY) {
            struct hd_req *r = c->req;
            if (evbuffer_get_length(in) < r->body_len)
                return;
            r->body = hd_alloc(r->body_len + 1);
            evbuffer_remove(in, r->body, r->body_len);
            r->body[r->body_len] = '\0';
            /* reading goes on (no epoll change per request): pipelined
             * bytes wait in the input buffer, bounded by its watermark */
            c->state = C_WAITING;
            event_del(c->timer);
            hd_http_route(r);
            /* the route may have answered at once; loop for pipelining */
        }
    }
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct hd_conn *c = arg;
    if (c->state != C_WAITING && c->state != C_CLOSING)
        process(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct hd_conn *c = arg;
    if (c->state == C_CLOSING)
        conn_free(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hd_conn *c = arg;

    if (what & BEV_EVENT_CONNECTED)
        return; /* the TLS handshake is done */

    if (c->state == C_WAITING) {
        /* the answer is on its way; it frees the connection when it fails
         * to write (or the write timeout fires) */
        bufferevent_disable(bev, EV_READ);
        c->eof = 1;
        return;
    }
    if ((what & BEV_EVENT_ERROR) && errno != ECONNRESET && errno != EPIPE)
        hd_log(HD_LOG_INFO, &c->hw->w->log, errno, "client %s connection error",
               c->peer);
    conn_free(c);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hd_conn *c = arg;

    switch (c->state) {
    case C_IDLE:
        conn_free(c); /* keep-alive timeout: close quietly */
        return;
    case C_HEADER:
    case C_BODY:
        hd_log(HD_LOG_INFO, &c->hw->w->log, 0,
               "client %s timed out reading request", c->peer);
        if (c->req) {
            req_free(c->req);
            c->req = NULL;
        }
        early_error(c, 408, "request_timeout", "request not received in time");
        return;
    case C_CLOSING:
        conn_free(c);
        return;
    case C_WAITING:
        return;
    }
}

/* ==== module ==== */

/* Takes a reference to the newest TLS context, dropping the old one:
 * connections already made keep theirs (SSL holds a reference). */
static void
ssl_take(struct http_worker *hw)
{
    SSL_CTX *ctx;

    pthread_mutex_lock(&ssl_lock);
    ctx = ssl_ctx;
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&ssl_lock);
    SSL_CTX_free(hw->ssl_ctx);
    hw->ssl_ctx = ctx;
}

/* Starts accepting on fd (taken: closed on failure too). */
static struct http_listener *
listener_new(struct http_worker *hw, int fd, const struct hd_listen_conf *lc)
{
    struct http_listener *hl = hd_calloc(sizeof(*hl));

    hl->hw = hw;
    hl->ssl = lc->ssl;
    hl->l = evconnlistener_new(hw->w->base, on_accept, hl,
                               LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (hl->l == NULL) {
        hd_log(HD_LOG_ERR, &hw->w->log, errno, "cannot listen on %s", lc->text);
        close(fd);
        free(hl);
        return NULL;
    }
    evconnlistener_set_error_cb(hl->l, on_accept_error);
    hl->text = hd_strdup(lc->text);
    return hl;
}

/* Closes the listening socket; connections accepted on it go on. */
static void
listener_free(struct http_listener *hl)
{
    evconnlistener_free(hl->l);
    free(hl->text);
    free(hl);
}

static int
http_init(struct hd_worker *w)
{
    struct http_worker *hw = hd_calloc(sizeof(*hw));

    hw->w = w;
    TAILQ_INIT(&hw->conns);
    hw->alog_ev = event_new(w->base, -1, 0, on_alog_flush, hw);
    ssl_take(hw);
    w->module[HD_MODULE_HTTP] = hw;
    for (int i = 0; i < w->nlisten; i++) {
        hw->ls[i] = listener_new(hw, w->listen_fds[i], &w->conf->listen[i]);
        w->listen_fds[i] = -1;
        if (hw->ls[i] == NULL)
            return HD_ERROR;
        hw->nlisteners++;
    }
    return HD_OK;
}

/* After a config swap: adopt the listening sockets the main thread opened
 * for addresses that are new, keep those that stay (their accept queues
 * are never closed), close those the config no longer lists. */
static void
http_reconf(struct hd_worker *w)
{
    struct http_worker *hw = w->module[HD_MODULE_HTTP];
    struct http_listener *ls[HD_MAX_LISTEN];
    int n = 0;

    ssl_take(hw);
    for (int l = 0; l < w->nlisten; l++) {
        const struct hd_listen_conf *lc = &w->conf->listen[l];
        int fd = w->listen_fds[l];

        w->listen_fds[l] = -1;
        if (w->stopping) { /* accepting has ended for good */
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (fd >= 0) {
            if ((ls[n] = listener_new(hw, fd, lc)) != NULL) {
                hd_log(HD_LOG_INFO, &w->log, 0, "listening on %s", lc->text);
                n++;
            }
            continue;
        }
        for (int i = 0; i < hw->nlisteners; i++)
            if (hw->ls[i] && hw->ls[i]->ssl == lc->ssl &&
                strcmp(hw->ls[i]->text, lc->text) == 0) {
                ls[n++] = hw->ls[i];
                hw->ls[i] = NULL;
                break;
            }
    }
    for (int i = 0; i < hw->nlisteners; i++)
        if (hw->ls[i]) {
            hd_log(HD_LOG_INFO, &w->log, 0, "no longer listening on %s",
                   hw->ls[i]->text);
            listener_free(hw->ls[i]);
        }
    memcpy(hw->ls, ls, n * sizeof(ls[0]));
    hw->nlisteners = n;
}

static void
http_stop(struct hd_worker *w)
{
    struct http_worker *hw = w->module[HD_MODULE_HTTP];
    struct hd_conn *c, *next;

    for (int i = 0; i < hw->nlisteners; i++)
        listener_free(hw->ls[i]);
    hw->nlisteners = 0;
    /* idle and half-read connections go now; answers still coming close
     * their connection once written */
    for (c = TAILQ_FIRST(&hw->conns); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == C_IDLE || c->state == C_HEADER || c->state == C_BODY) {
            if (c->req) {
                req_free(c->req);
                c->req = NULL;
            }
            conn_free(c);
        }
    }
}

static int
http_busy(struct hd_worker *w)
{
    struct http_worker *hw = w->module[HD_MODULE_HTTP];
    return hw->nconns > 0;
}

static void
http_exit(struct hd_worker *w)
{
    struct http_worker *hw = w->module[HD_MODULE_HTTP];
    struct hd_conn *c;

    if (hw == NULL)
        return;
    for (int i = 0; i < hw->nlisteners; i++)
        listener_free(hw->ls[i]);
    while ((c = TAILQ_FIRST(&hw->conns)) != NULL) {
        if (c->req) {
            req_free(c->req);
            c->req = NULL;
        }
        c->state = C_IDLE;
        conn_free(c);
    }
    on_alog_flush(-1, 0, hw);
    event_free(hw->alog_ev);
    free(hw->alog);
    SSL_CTX_free(hw->ssl_ctx);
    free(hw);
}

SSL_CTX *
hd_http_ssl_load(const struct hd_conf *cf, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        goto fail;
    /* modern defaults: TLS 1.2+, the server's cipher order */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cf->ssl_certificate) != 1)
        goto fail;
    if (SSL_CTX_use_PrivateKey_file(ctx, cf->ssl_certificate_key,
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;
fail:
    snprintf(err, errlen, "cannot load \"%s\" / \"%s\": %s",
             cf->ssl_certificate, cf->ssl_certificate_key,
             ERR_reason_error_string(ERR_get_error()));
    SSL_CTX_free(ctx);
    return NULL;
}

void
hd_http_ssl_set(SSL_CTX *ctx)
{
    SSL_CTX *old;

    pthread_mutex_lock(&ssl_lock);
    old = ssl_ctx;
    ssl_ctx = ctx;
    pthread_mutex_unlock(&ssl_lock);
    SSL_CTX_free(old); /* workers hold references of their own */
}

int
hd_http_ssl_needed(const struct hd_conf *cf)
{
    for (int i = 0; i < cf->nlisten; i++)
        if (cf->listen[i].ssl)
            return 1;
    return 0;
}

int
hd_http_ssl_init(const struct hd_conf *cf, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    if (!hd_http_ssl_needed(cf))
        return HD_OK;
    if ((ctx = hd_http_ssl_load(cf, err, errlen)) == NULL)
        return HD_ERROR;
    hd_http_ssl_set(ctx);
    return HD_OK;
}

void
hd_http_ssl_free(void)
{
    hd_http_ssl_set(NULL);
}

const struct hd_module hd_http_module = {
    "http", http_init, http_reconf, http_stop, http_busy, http_exit,
};
