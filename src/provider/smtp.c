/*
 * smtp.c: the "smtp" provider: email through one submission relay with an
 * asynchronous SMTP client (RFC 5321) in the worker's loop: EHLO,
 * STARTTLS (RFC 3207; on by default, required and verified), AUTH PLAIN
 * or LOGIN (RFC 4954; only over TLS), SIZE (RFC 1870), PIPELINING (RFC
 * 2920), and a pool of connections per worker reused for message after
 * message (RSET after a failed transaction). create() runs on the main
 * thread; everything else on the worker that owns the job. Knows nothing
 * of the store or of HTTP ingest: outcomes go back through job->done.
 *
 * A job is owned by the worker's queue or by the one connection sending
 * it. Connection set-up failures (refused, TLS, no STARTTLS, AUTH
 * refused) answer the queued jobs "retry" when no other connection is
 * left to send them.
 */
#include <stdio.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/codec.h"
#include "core/herald.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/mime.h"
#include "provider/provider.h"
#include "provider/smtp.h"
#include "provider/tcp.h"
#include "provider/tls.h"

#define SMTP_MAX_REPLY 8192 /* bytes of one (multi-line) reply */
#define SMTP_MAX_QUEUE 4096
#define SMTP_IDLE_MS 30000
#define SMTP_SETUP_RETRY_MS 30000

/* the connection's state: what the next reply answers */
enum {
    S_CONNECTING = 0,
    S_GREETING,
    S_EHLO,
    S_HELO,
    S_STARTTLS,
    S_TLS, /* handshake */
    S_AUTH_PLAIN,
    S_AUTH_LOGIN, /* sent AUTH LOGIN: 334 Username: */
    S_AUTH_USER,  /* sent the user: 334 Password: */
    S_AUTH_PASS,  /* sent the password: 235 */
    S_READY,      /* idle: no job */
    S_MAIL,       /* a transaction: MAIL, RCPT, DATA replies to come */
    S_BODY,       /* the message and its "." are out: the final reply */
    S_RSET,
    S_QUIT
};

struct smtp {
    char *name;
    char *host;
    int port;
    int starttls;
    char *user, *pass;
    char *from, *from_name;
    char *helo;
    char *unsubscribe_url; /* base; "/" and the token are appended */
    SSL_CTX *ctx;
    int nconns;
    int64_t timeout_ms;
    int metrics_id; /* provider index + 1 */
};

struct sjob {
    struct sjob *next;
    struct hd_job *j;
    struct evbuffer *data; /* dot-stuffed, ends CRLF "." CRLF */
    size_t size;           /* of the message before stuffing */
    char message_id[160];
};

struct sconn;

/* one worker's side */
struct smtp_worker {
    struct smtp *s;
    struct event_base *base;
    struct hd_log log;
    char action[160];
    struct hd_tcp_peer *peer;
    struct sconn *conns;
    int nconns;
    struct sjob *qhead, *qtail;
    int nqueued;
    struct event *pump_ev;
    struct hd_provider_metrics *pm; /* this worker's */
    int exiting;                    /* closes are no failed attempts */
};

struct sconn {
    struct sconn *next;
    struct smtp_worker *sw;
    int state;
    struct bufferevent *bev;
    struct hd_tcp_connect *tc;
    int tls;
    /* what EHLO said (forgotten at STARTTLS) */
    int pipelining, has_starttls, auth_plain, auth_login;
    int64_t size_max;
    /* the reply being read */
    struct evbuffer *reply;
    int code;
    /* the transaction */
    struct sjob *job;
    int step;    /* replies of MAIL (0), RCPT (1), DATA (2) read */
    int sent;    /* commands of the transaction written */
    int outcome; /* -1 while all went well */
    int64_t retry_after;
    char detail[256];
    int open; /* set up: counted in the provider's connections gauge */
};

static const struct hd_provider_setting settings[] = {
    {"host", 1, 1},        {"port", 1, 0},     {"starttls", 1, 0},
    {"username", 1, 0},    {"password", 1, 0}, {"from", 1, 1},
    {"from_name", 1, 0},   {"helo", 1, 0},     {"ca_file", 1, 0},
    {"connections", 1, 0}, {"timeout", 1, 0},  {"unsubscribe_url", 1, 0},
    {NULL, 0, 0},
};

static void conn_close(struct sconn *c);
static void conn_fail(struct sconn *c, const char *error);
static void pump(struct smtp_worker *sw);

/* ==== settings ==== */

static const char *
arg_of(const struct hd_provider_conf *pc, const char *name)
{
    const struct hd_conf_kv *kv = hd_conf_kv_find(pc, name);
    return kv ? kv->args[0] : NULL;
}

static int
bad(char *err, size_t errlen, const struct hd_conf_kv *kv, const char *what)
{
    snprintf(err, errlen,
             "invalid value \"%s\" in \"%s\" directive, %s in %s:%d",
             kv->args[0], kv->name, what, kv->file, kv->line);
    return HD_ERROR;
}

static int
addr_ok(const char *a)
{
    const char *at = strchr(a, '@');

    if (at == NULL || at == a || at[1] == '\0' || strlen(a) > 254)
        return 0;
    for (; *a; a++)
        if ((unsigned char)*a <= 0x20 || (unsigned char)*a >= 0x7f ||
            strchr("<>()[],;:\\\"", *a))
            return 0;
    return 1;
}

static int
smtp_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;
    int starttls = 1;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "port"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || end == kv->args[0] || n < 1 || n > 65535)
            return bad(err, errlen, kv, "expected a port");
    }
    if ((kv = hd_conf_kv_find(pc, "starttls"))) {
        if (strcmp(kv->args[0], "off") == 0)
            starttls = 0;
        else if (strcmp(kv->args[0], "on") != 0)
            return bad(err, errlen, kv, "expected on or off");
    }
    if ((kv = hd_conf_kv_find(pc, "connections"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || end == kv->args[0] || n < 1 || n > 64)
            return bad(err, errlen, kv, "expected 1..64");
    }
    if ((kv = hd_conf_kv_find(pc, "timeout"))) {
        int64_t ms;
        if (hd_parse_time_ms(kv->args[0], &ms) != HD_OK || ms < 1)
            return bad(err, errlen, kv, "expected a time");
    }
    if ((kv = hd_conf_kv_find(pc, "from")) && !addr_ok(kv->args[0]))
        return bad(err, errlen, kv, "expected an address");
    if ((kv = hd_conf_kv_find(pc, "unsubscribe_url")) &&
        (strncmp(kv->args[0], "https://", 8) != 0 ||
         strlen(kv->args[0]) > 800 || strpbrk(kv->args[0], "<> ")))
        return bad(err, errlen, kv, "expected an https URL");
    if ((kv = hd_conf_kv_find(pc, "helo")) &&
        (strlen(kv->args[0]) > 255 || strpbrk(kv->args[0], " \r\n")))
        return bad(err, errlen, kv, "expected a host name");
    if (!hd_conf_kv_find(pc, "username") != !hd_conf_kv_find(pc, "password")) {
        snprintf(err, errlen,
                 "provider \"%s\" of type smtp needs both \"username\" and "
                 "\"password\" in %s:%d",
                 pc->name, pc->file, pc->line);
        return HD_ERROR;
    }
    if (hd_conf_kv_find(pc, "username") && !starttls) {
        kv = hd_conf_kv_find(pc, "username");
        snprintf(err, errlen,
                 "\"username\" needs \"starttls on\": no AUTH in clear text "
                 "in %s:%d",
                 kv->file, kv->line);
        return HD_ERROR;
    }
    return HD_OK;
}

static void
smtp_destroy(struct hd_provider *p)
{
    struct smtp *s = p->data;

    if (s == NULL)
        return;
    if (s->ctx)
        hd_tls_ctx_free(s->ctx);
    if (s->pass)
        OPENSSL_cleanse(s->pass, strlen(s->pass));
    free(s->name);
    free(s->host);
    free(s->user);
    free(s->pass);
    free(s->from);
    free(s->from_name);
    free(s->helo);
    free(s->unsubscribe_url);
    free(s);
    p->data = NULL;
}

static int
smtp_create(struct hd_provider *p, const struct hd_provider_conf *pc, char *err,
            size_t errlen)
{
    struct smtp *s;
    const char *v;
    char host[256];

    if (smtp_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    s = hd_calloc(sizeof(*s));
    p->data = s;
    s->name = hd_strdup(pc->name);
    s->host = hd_strdup(arg_of(pc, "host"));
    s->port = (v = arg_of(pc, "port")) ? atoi(v) : 587;
    s->starttls = !((v = arg_of(pc, "starttls")) && strcmp(v, "off") == 0);
    if ((v = arg_of(pc, "username"))) {
        s->user = hd_strdup(v);
        s->pass = hd_strdup(arg_of(pc, "password"));
    }
    s->from = hd_strdup(arg_of(pc, "from"));
    if ((v = arg_of(pc, "from_name")))
        s->from_name = hd_strdup(v);
    if ((v = arg_of(pc, "helo")) == NULL) {
        if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        v = host;
    }
    s->helo = hd_strdup(v);
    if ((v = arg_of(pc, "unsubscribe_url"))) {
        size_t n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        s->unsubscribe_url = hd_strndup(v, n);
    }
    s->nconns = (v = arg_of(pc, "connections")) ? atoi(v) : 2;
    s->metrics_id = p->index + 1;
    s->timeout_ms = 30000;
    if ((v = arg_of(pc, "timeout")))
        hd_parse_time_ms(v, &s->timeout_ms);
    if (s->starttls) {
        struct hd_tls_conf tc = {arg_of(pc, "ca_file"), NULL, NULL, NULL};
        char terr[512];
        s->ctx = hd_tls_ctx_new(&tc, terr, sizeof(terr));
        if (s->ctx == NULL) {
            snprintf(err, errlen, "provider \"%s\": %s", pc->name, terr);
            smtp_destroy(p);
            return HD_ERROR;
        }
    }
    return HD_OK;
}

/* ==== jobs ==== */

static void
job_free(struct sjob *sj)
{
    evbuffer_free(sj->data);
    free(sj);
}

/* Answers the job and frees it. */
static void
job_done(struct sjob *sj, int outcome, int64_t retry_after, const char *detail)
{
    struct hd_job *j = sj->j;

    job_free(sj);
    j->done(j, outcome, retry_after, detail);
}

/* The outcome of a negative reply: 4xx retry, 5xx fail. */
static void
set_outcome(struct sconn *c, int code, const char *what)
{
    const char *text = (const char *)evbuffer_pullup(c->reply, -1);

    if (c->outcome >= 0)
        return; /* the first failure is the one that counts */
    if (code >= 500) {
        c->outcome = HD_OUT_FAILED;
        snprintf(c->detail, sizeof(c->detail), "%s", text);
        if (strcmp(what, "RCPT") == 0 &&
            (code == 550 || code == 551 || code == 553)) {
            /* the mailbox does not exist: the address bounces */
            c->outcome = HD_OUT_DEAD_ADDRESS;
            hd_log(HD_LOG_INFO, &c->sw->log, 0, "recipient refused with \"%s\"",
                   text);
            snprintf(c->detail, sizeof(c->detail), "%d bouncing", code);
        }
    } else {
        c->outcome = HD_OUT_RETRY;
        c->retry_after = 0;
        snprintf(c->detail, sizeof(c->detail), "%s", text);
    }
}

/* ==== writing ==== */

static void
cmd(struct sconn *c, const char *fmt, const char *a)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, fmt, a);
    evbuffer_add(out, "\r\n", 2);
}

static void
set_timeout(struct sconn *c, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
send_ehlo(struct sconn *c)
{
    c->pipelining = c->has_starttls = c->auth_plain = c->auth_login = 0;
    c->size_max = 0;
    cmd(c, "EHLO %s", c->sw->s->helo);
    c->state = S_EHLO;
}

/* MAIL, RCPT and DATA: all at once with PIPELINING, else one by one. */
static void
send_txn(struct sconn *c)
{
    struct sjob *sj = c->job;
    char mail[512];

    while (c->sent < 3 && (c->pipelining || c->sent == c->step)) {
        switch (c->sent) {
        case 0:
            if (c->size_max > 0)
                snprintf(mail, sizeof(mail), "MAIL FROM:<%s> SIZE=%zu",
                         c->sw->s->from, sj->size);
            else
                snprintf(mail, sizeof(mail), "MAIL FROM:<%s>", c->sw->s->from);
            cmd(c, "%s", mail);
            break;
        case 1:
            cmd(c, "RCPT TO:<%s>", sj->j->to);
            break;
        case 2:
            cmd(c, "%s", "DATA");
            break;
        }
        c->sent++;
    }
}

static void
set_ready(struct sconn *c)
{
    c->state = S_READY;
    c->job = NULL;
    if (!c->open) {
        c->open = 1;
        HD_COUNT(c->sw->pm->connections, 1);
        HD_COUNT(c->sw->pm->connects[0], 1);
    }
    set_timeout(c, SMTP_IDLE_MS);
    event_active(c->sw->pump_ev, EV_TIMEOUT, 0);
}

/* Takes sj from the queue onto c. */
static void
start_job(struct sconn *c, struct sjob *sj)
{
    if (c->size_max > 0 && (int64_t)sj->size > c->size_max) {
        char detail[128];
        snprintf(detail, sizeof(detail),
                 "552 message of %zu bytes exceeds the relay's SIZE %lld",
                 sj->size, (long long)c->size_max);
        job_done(sj, HD_OUT_FAILED, 0, detail);
        return;
    }
    c->job = sj;
    HD_COUNT(c->sw->pm->streams, 1);
    c->step = c->sent = 0;
    c->outcome = -1;
    c->detail[0] = '\0';
    c->state = S_MAIL;
    set_timeout(c, c->sw->s->timeout_ms);
    send_txn(c);
}

/* The transaction is over (outcome set, or delivered). */
static void
end_txn(struct sconn *c, int outcome)
{
    struct sjob *sj = c->job;

    c->job = NULL;
    HD_COUNT(c->sw->pm->streams, -1);
    if (outcome == HD_OUT_DELIVERED) {
        char detail[200];
        snprintf(detail, sizeof(detail), "<%s>", sj->message_id);
        job_done(sj, HD_OUT_DELIVERED, 0, detail);
        set_ready(c);
        return;
    }
    job_done(sj, outcome, c->retry_after, c->detail);
    cmd(c, "%s", "RSET");
    c->state = S_RSET;
}

/* ==== replies ==== */

static void
on_auth_step(struct sconn *c, const char *what)
{
    struct smtp *s = c->sw->s;
    char b64[1024];

    if (strcmp(what, "user") == 0) {
        hd_base64_encode((unsigned char *)s->user, strlen(s->user), b64, 0);
        cmd(c, "%s", b64);
        c->state = S_AUTH_USER;
    } else {
        hd_base64_encode((unsigned char *)s->pass, strlen(s->pass), b64, 0);
        cmd(c, "%s", b64);
        OPENSSL_cleanse(b64, sizeof(b64));
        c->state = S_AUTH_PASS;
    }
}

/* After EHLO (or HELO) on a connection fit for mail: AUTH or ready.
 * 1 when c failed (and is gone). */
static int
after_hello(struct sconn *c)
{
    struct smtp *s = c->sw->s;
    char plain[600], b64[1024];
    size_t n;

    if (s->user == NULL) {
        set_ready(c);
        return 0;
    }
    if (!c->tls) { /* smtp_check makes this unreachable */
        conn_fail(c, "AUTH refused without TLS");
        return 1;
    }
    if (c->auth_plain) {
        n = (size_t)snprintf(plain, sizeof(plain), "%c%s%c%s", 0, s->user, 0,
                             s->pass);
        if (n >= sizeof(plain)) {
            conn_fail(c, "username or password too long");
            return 1;
        }
        hd_base64_encode((unsigned char *)plain, n, b64, 0);
        OPENSSL_cleanse(plain, sizeof(plain));
        cmd(c, "AUTH PLAIN %s", b64);
        OPENSSL_cleanse(b64, sizeof(b64));
        c->state = S_AUTH_PLAIN;
    } else if (c->auth_login) {
        cmd(c, "%s", "AUTH LOGIN");
        c->state = S_AUTH_LOGIN;
    } else {
        conn_fail(c, "the relay offers neither AUTH PLAIN nor AUTH LOGIN");
        return 1;
    }
    return 0;
}

void
hd_smtp_ehlo(char *text, struct hd_smtp_ehlo *e)
{
    char *line, *save = NULL;
    int first = 1;

    memset(e, 0, sizeof(*e));
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), first = 0) {
        if (first)
            continue;
        if (strcasecmp(line, "PIPELINING") == 0)
            e->pipelining = 1;
        else if (strcasecmp(line, "STARTTLS") == 0)
            e->starttls = 1;
        else if (strncasecmp(line, "SIZE", 4) == 0 &&
                 (line[4] == ' ' || line[4] == '\0')) {
            e->has_size = 1;
            e->size_max = strtoll(line + 4, NULL, 10);
        } else if (strncasecmp(line, "AUTH", 4) == 0 &&
                   (line[4] == ' ' || line[4] == '=')) {
            char *m, *msave = NULL;
            for (m = strtok_r(line + 5, " ", &msave); m;
                 m = strtok_r(NULL, " ", &msave)) {
                if (strcasecmp(m, "PLAIN") == 0)
                    e->auth_plain = 1;
                else if (strcasecmp(m, "LOGIN") == 0)
                    e->auth_login = 1;
            }
        }
    }
}

/* EHLO's lines after the first: the extensions. */
static void
parse_ehlo(struct sconn *c)
{
    struct hd_smtp_ehlo e;

    hd_smtp_ehlo((char *)evbuffer_pullup(c->reply, -1), &e);
    c->pipelining |= e.pipelining;
    c->has_starttls |= e.starttls;
    c->auth_plain |= e.auth_plain;
    c->auth_login |= e.auth_login;
    if (e.has_size)
        c->size_max = e.size_max;
}

static void on_tls(void *arg, struct bufferevent *bev, const char *error);
static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

int
hd_smtp_reply_line(const char *line, size_t n, int *code, int *last)
{
    if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
        line[1] > '9' || line[2] < '0' || line[2] > '9' ||
        (n > 3 && line[3] != ' ' && line[3] != '-'))
        return HD_ERROR;
    *code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    *last = n == 3 || line[3] == ' ';
    return HD_OK;
}

/* Handles one complete reply (code in c->code, text lines in c->reply,
 * newline-separated, without codes). GONE or 0. */
#define GONE 1 /* on_reply: c is closed, or its bufferevent moved to TLS */

static int
on_reply(struct sconn *c)
{
    int code = c->code;
    const char *text = (const char *)evbuffer_pullup(c->reply, -1);
    char msg[300];

    if (code == 421 && c->state != S_QUIT) {
        snprintf(msg, sizeof(msg), "421 %s", text);
        conn_fail(c, msg); /* the server is closing the channel */
        return GONE;
    }
    switch (c->state) {
    case S_GREETING:
        if (code != 220) {
            snprintf(msg, sizeof(msg), "greeting %d %s", code, text);
            conn_fail(c, msg);
            return GONE;
        }
        send_ehlo(c);
        return 0;
    case S_EHLO:
        if (code / 100 != 2) {
            cmd(c, "HELO %s", c->sw->s->helo); /* no extensions */
            c->state = S_HELO;
            return 0;
        }
        parse_ehlo(c);
        /* fall through */
    case S_HELO:
        if (c->state == S_HELO && code / 100 != 2) {
            snprintf(msg, sizeof(msg), "HELO refused: %d %s", code, text);
            conn_fail(c, msg);
            return GONE;
        }
        if (c->sw->s->starttls && !c->tls) {
            if (!c->has_starttls) {
                conn_fail(c, "the relay does not offer STARTTLS "
                             "(\"starttls on\"): nothing sent");
                return GONE;
            }
            cmd(c, "%s", "STARTTLS");
            c->state = S_STARTTLS;
            return 0;
        }
        return after_hello(c) ? GONE : 0;
    case S_STARTTLS: {
        SSL *ssl;
        if (code != 220) {
            snprintf(msg, sizeof(msg), "STARTTLS refused: %d %s", code, text);
            conn_fail(c, msg);
            return GONE;
        }
        ssl = hd_tls_new(c->sw->s->ctx, c->sw->s->host);
        if (ssl == NULL) {
            conn_fail(c, "cannot make a TLS connection object");
            return GONE;
        }
        c->state = S_TLS;
        /* bytes after the 220 are dropped there (RFC 3207 injection) */
        c->tc = hd_tcp_starttls(c->bev, ssl, c->sw->s->timeout_ms, on_tls, c);
        c->bev = NULL;
        return GONE;
    }
    case S_AUTH_PLAIN:
    case S_AUTH_PASS:
        if (code != 235) {
            snprintf(msg, sizeof(msg), "AUTH refused: %d %s", code, text);
            conn_fail(c, msg);
            return GONE;
        }
        set_ready(c);
        return 0;
    case S_AUTH_LOGIN:
    case S_AUTH_USER:
        if (code != 334) {
            snprintf(msg, sizeof(msg), "AUTH refused: %d %s", code, text);
            conn_fail(c, msg);
            return GONE;
        }
        on_auth_step(c, c->state == S_AUTH_LOGIN ? "user" : "pass");
        return 0;
    case S_MAIL:
        if (c->step == 0) { /* MAIL */
            if (code / 100 != 2)
                set_outcome(c, code, "MAIL");
        } else if (c->step == 1) { /* RCPT */
            if (code / 100 != 2)
                set_outcome(c, code, "RCPT");
        } else { /* DATA */
            struct evbuffer *out = bufferevent_get_output(c->bev);
            c->step++;
            if (code == 354) {
                if (c->outcome < 0)
                    evbuffer_add_buffer_reference(out, c->job->data);
                else /* a refused recipient, yet go ahead: end it */
                    evbuffer_add(out, ".\r\n", 3);
                c->state = S_BODY;
                return 0;
            }
            set_outcome(c, code, "DATA");
            end_txn(c, c->outcome);
            return 0;
        }
        c->step++;
        if (!c->pipelining && c->outcome >= 0) {
            end_txn(c, c->outcome); /* nothing more was sent */
            return 0;
        }
        send_txn(c);
        return 0;
    case S_BODY:
        if (c->outcome < 0 && code / 100 != 2)
            set_outcome(c, code, "DATA");
        end_txn(c, c->outcome < 0 ? HD_OUT_DELIVERED : c->outcome);
        return 0;
    case S_RSET:
        if (code / 100 != 2) {
            conn_fail(c, "RSET refused");
            return GONE;
        }
        set_ready(c);
        return 0;
    case S_QUIT:
        conn_close(c);
        return GONE;
    default:
        conn_fail(c, "reply out of turn");
        return GONE;
    }
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct sconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t n;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        int code, last;
        if (hd_smtp_reply_line(line, n, &code, &last) != HD_OK) {
            free(line);
            conn_fail(c, "bad reply line");
            return;
        }
        if (c->state == S_READY || c->state == S_CONNECTING) {
            free(line);
            conn_close(c); /* talking out of turn, or 421 while idle */
            return;
        }
        c->code = code;
        if (evbuffer_get_length(c->reply))
            evbuffer_add(c->reply, "\n", 1);
        if (n > 4)
            evbuffer_add(c->reply, line + 4, n - 4);
        free(line);
        if (evbuffer_get_length(c->reply) > SMTP_MAX_REPLY) {
            conn_fail(c, "reply too long");
            return;
        }
        if (!last)
            continue;
        evbuffer_add(c->reply, "", 1);
        if (on_reply(c) == GONE)
            return;
        evbuffer_drain(c->reply, evbuffer_get_length(c->reply));
    }
    if (evbuffer_get_length(in) > SMTP_MAX_REPLY)
        conn_fail(c, "reply line too long");
}

/* ==== connections ==== */

static void
conn_close(struct sconn *c)
{
    struct smtp_worker *sw = c->sw;
    struct sconn **pp;

    for (pp = &sw->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    sw->nconns--;
    if (c->job) {
        HD_COUNT(sw->pm->streams, -1);
        job_done(c->job, HD_OUT_RETRY, 0, "smtp: connection closed");
        c->job = NULL;
    }
    if (c->open)
        HD_COUNT(sw->pm->connections, -1);
    else if (!sw->exiting)
        HD_COUNT(sw->pm->connects[1], 1); /* never got ready */
    if (c->tc)
        hd_tcp_cancel(c->tc);
    if (c->bev)
        bufferevent_free(c->bev);
    evbuffer_free(c->reply);
    free(c);
    event_active(sw->pump_ev, EV_TIMEOUT, 0);
}

/* The connection failed: its job (if any) and, when no connection is
 * left, every queued job are answered "retry" with the error. */
static void
conn_fail(struct sconn *c, const char *error)
{
    struct smtp_worker *sw = c->sw;
    char detail[300];
    int setup = c->job == NULL;

    hd_log(HD_LOG_ERR, &sw->log, 0, "%s", error);
    snprintf(detail, sizeof(detail), "smtp: %s", error);
    if (c->job) {
        struct sjob *sj = c->job;
        c->job = NULL;
        HD_COUNT(sw->pm->streams, -1);
        job_done(sj, HD_OUT_RETRY, 0, detail);
    }
    conn_close(c);
    if (setup) {
        while (sw->qhead && sw->nconns == 0) {
            struct sjob *sj = sw->qhead;
            sw->qhead = sj->next;
            if (sw->qhead == NULL)
                sw->qtail = NULL;
            sw->nqueued--;
            job_done(sj, HD_OUT_RETRY, SMTP_SETUP_RETRY_MS, detail);
        }
    }
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sconn *c = arg;
    char ebuf[200], msg[300];

    if (c->state == S_READY || c->state == S_QUIT) {
        if ((what & BEV_EVENT_TIMEOUT) && c->state == S_READY) {
            /* idle long enough: say goodbye */
            cmd(c, "%s", "QUIT");
            c->state = S_QUIT;
            set_timeout(c, 2000);
            bufferevent_enable(c->bev, EV_READ | EV_WRITE);
            return;
        }
        conn_close(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(msg, sizeof(msg), "timed out waiting for the relay");
    else if (what & BEV_EVENT_EOF)
        snprintf(msg, sizeof(msg), "connection closed by the relay");
    else
        snprintf(msg, sizeof(msg), "connection error: %s",
                 c->tls ? hd_tcp_tls_error(bev, ebuf, sizeof(ebuf))
                        : strerror(EVUTIL_SOCKET_ERROR()));
    conn_fail(c, msg);
}

static void
attach(struct sconn *c, struct bufferevent *bev)
{
    c->bev = bev;
    bufferevent_setcb(bev, on_read, NULL, on_event, c);
    set_timeout(c, c->sw->s->timeout_ms);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
on_tls(void *arg, struct bufferevent *bev, const char *error)
{
    struct sconn *c = arg;

    c->tc = NULL;
    if (bev == NULL) {
        conn_fail(c, error);
        return;
    }
    c->tls = 1;
    attach(c, bev);
    evbuffer_drain(c->reply, evbuffer_get_length(c->reply));
    send_ehlo(c); /* everything learned before TLS is forgotten */
}

static void
on_connected(void *arg, struct bufferevent *bev, const char *error)
{
    struct sconn *c = arg;

    c->tc = NULL;
    if (bev == NULL) {
        conn_fail(c, error);
        return;
    }
    c->state = S_GREETING;
    attach(c, bev);
}

static void
conn_new(struct smtp_worker *sw)
{
    struct sconn *c = hd_calloc(sizeof(*c));

    c->sw = sw;
    c->state = S_CONNECTING;
    c->reply = evbuffer_new();
    c->outcome = -1;
    c->next = sw->conns;
    sw->conns = c;
    sw->nconns++;
    c->tc = hd_tcp_connect(sw->peer, NULL, sw->s->timeout_ms, on_connected, c);
}

static void
pump(struct smtp_worker *sw)
{
    int setting_up = 0;

    for (struct sconn *c = sw->conns; c && sw->qhead; c = c->next) {
        if (c->state == S_READY) {
            struct sjob *sj = sw->qhead;
            sw->qhead = sj->next;
            if (sw->qhead == NULL)
                sw->qtail = NULL;
            sw->nqueued--;
            start_job(c, sj);
        } else if (c->state < S_READY) {
            setting_up++;
        }
    }
    while (sw->nqueued > setting_up && sw->nconns < sw->s->nconns) {
        conn_new(sw);
        setting_up++;
    }
}

static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

/* ==== the provider ==== */

static struct smtp_worker *
worker_get(struct hd_provider *p, struct hd_worker *w)
{
    struct smtp_worker *sw = p->worker_data[w->id];
    struct smtp *s = p->data;

    if (sw)
        return sw;
    sw = hd_calloc(sizeof(*sw));
    sw->s = s;
    sw->base = w->base;
    sw->log = w->log;
    snprintf(sw->action, sizeof(sw->action),
             "while talking to smtp relay %s:%d of provider \"%s\"", s->host,
             s->port, s->name);
    sw->log.action = sw->action;
    sw->peer = hd_tcp_peer_new(w->base, s->host, s->port);
    if (sw->peer == NULL) {
        free(sw);
        return NULL;
    }
    sw->pump_ev = event_new(w->base, -1, 0, on_pump, sw);
    sw->pm = hd_metrics_provider(s->metrics_id);
    p->worker_data[w->id] = sw;
    return sw;
}

static void
smtp_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct smtp *s = p->data;
    struct smtp_worker *sw;
    struct hd_mime_msg m;
    struct evbuffer *msg;
    struct sjob *sj;
    char unsub[1024];

    if (!addr_ok(j->to)) {
        j->done(j, HD_OUT_FAILED, 0, "invalid email address");
        return;
    }
    sw = worker_get(p, w);
    if (sw == NULL) {
        j->done(j, HD_OUT_RETRY, 1000, "smtp: no resolver");
        return;
    }
    if (sw->nqueued >= SMTP_MAX_QUEUE) {
        j->done(j, HD_OUT_RETRY, 1000, "smtp: queue full");
        return;
    }
    sj = hd_calloc(sizeof(*sj));
    sj->j = j;
    snprintf(sj->message_id, sizeof(sj->message_id), "%s@%s", j->delivery_id,
             s->helo);
    memset(&m, 0, sizeof(m));
    m.from = s->from;
    m.from_name = s->from_name;
    m.to = j->to;
    m.subject = json_string_value(json_object_get(j->content, "subject"));
    m.text = json_string_value(json_object_get(j->content, "text"));
    m.html = json_string_value(json_object_get(j->content, "html"));
    m.message_id = sj->message_id;
    m.date_ms = hd_now_ms();
    if (s->unsubscribe_url) {
        snprintf(unsub, sizeof(unsub), "%s/%s", s->unsubscribe_url,
                 j->unsubscribe_token ? j->unsubscribe_token : j->delivery_id);
        m.unsubscribe_url = unsub;
    }
    msg = evbuffer_new();
    hd_mime_build(msg, &m);
    sj->size = evbuffer_get_length(msg);
    sj->data = evbuffer_new();
    hd_mime_dot_stuff(sj->data, (const char *)evbuffer_pullup(msg, -1),
                      sj->size);
    evbuffer_free(msg);

    if (sw->qtail)
        sw->qtail->next = sj;
    else
        sw->qhead = sj;
    sw->qtail = sj;
    sw->nqueued++;
    event_active(sw->pump_ev, EV_TIMEOUT, 0);
}

static void
smtp_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    struct smtp_worker *sw = p->worker_data[w->id];

    if (sw == NULL)
        return;
    sw->exiting = 1;
    while (sw->conns) {
        struct sconn *c = sw->conns;
        if (c->job) { /* unanswered at exit, as every provider's */
            job_free(c->job);
            c->job = NULL;
            HD_COUNT(sw->pm->streams, -1);
        }
        conn_close(c);
    }
    while (sw->qhead) {
        struct sjob *sj = sw->qhead;
        sw->qhead = sj->next;
        job_free(sj);
    }
    event_free(sw->pump_ev);
    hd_tcp_peer_free(sw->peer);
    free(sw);
    p->worker_data[w->id] = NULL;
}

const struct hd_provider_type hd_smtp_provider = {
    "smtp",           NULL,         smtp_check, smtp_create, smtp_send,
    smtp_exit_worker, smtp_destroy, NULL,       NULL,
};
