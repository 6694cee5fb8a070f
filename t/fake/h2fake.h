/*
 * h2fake.h: the server core the C fake providers (t/fake/apns.c,
 * t/fake/fcm.c) share: one libevent loop, TLS 1.2+ with ALPN h2 only, an
 * nghttp2 server session per connection, whole requests handed to the
 * program (headers and body), answers now or after a delay, GOAWAY, drop
 * and reset, fault injection from a control file, and the JSON-lines log
 * (buffered, flushed every 10 ms). Single-threaded; knows nothing of APNs
 * or FCM.
 */
#ifndef FK_H2FAKE_H
#define FK_H2FAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <nghttp2/nghttp2.h>

#define FK_NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ==== growable byte buffer ============================================== */

struct fk_buf {
    char *p;
    size_t len, cap;
};

void fk_buf_add(struct fk_buf *b, const void *p, size_t n);
void fk_buf_addc(struct fk_buf *b, char c);
void fk_buf_adds(struct fk_buf *b, const char *s);
void fk_buf_free(struct fk_buf *b);

/* ==== JSON writer (one log line or a response body) ===================== */

struct fk_jw {
    struct fk_buf *b;
    int depth;
    unsigned char first[16];
};

void fk_jw_init(struct fk_jw *w, struct fk_buf *b);
void fk_jw_open(struct fk_jw *w, char c); /* '{' or '[' */
void fk_jw_close(struct fk_jw *w, char c);
void fk_jw_key(struct fk_jw *w, const char *k);
void fk_jw_str(struct fk_jw *w, const char *s, size_t n);
void fk_jw_cstr(struct fk_jw *w, const char *s); /* NULL writes null */
void fk_jw_int(struct fk_jw *w, long long v);
void fk_jw_raw(struct fk_jw *w, const char *s, size_t n); /* a JSON value */
void fk_jw_null(struct fk_jw *w);

/* ==== string-keyed hash table ========================================== */

struct fk_map_ent {
    char *key; /* owned, NUL-terminated; NULL: empty slot */
    size_t klen;
    uint64_t hash;
    union {
        long long n;
        void *p;
    } v;
};

struct fk_map {
    struct fk_map_ent *ent;
    size_t cap, used;
    void (*free_value)(void *p); /* for v.p, or NULL */
};

struct fk_map_ent *fk_map_get(struct fk_map *m, const char *k, size_t n);
/* Returns the entry for k, inserted (v zeroed) if absent. */
struct fk_map_ent *fk_map_put(struct fk_map *m, const char *k, size_t n);
void fk_map_clear(struct fk_map *m);

/* ==== small helpers ===================================================== */

int64_t fk_now_ms(void);
/* base64url (or standard base64) without padding: bytes written, -1 on
 * a bad character. out needs 3 * n / 4 + 3 bytes. */
ssize_t fk_b64url_decode(const char *in, size_t n, unsigned char *out);
void fk_uuid4(char out[37]);
/* Loads a PEM public key (SubjectPublicKeyInfo); exits on failure. */
void *fk_load_pubkey(const char *file);
/* Verifies sig over msg with SHA-256: ES256 takes the 64-byte raw r||s of
 * JWS, RS256 the PKCS#1 v1.5 signature. 1 if it verifies. */
int fk_verify_es256(void *pkey, const char *msg, size_t n,
                    const unsigned char *sig, size_t siglen);
int fk_verify_rs256(void *pkey, const char *msg, size_t n,
                    const unsigned char *sig, size_t siglen);

/* ==== the server ======================================================== */

struct fk_conn;
struct fk_req;

typedef void (*fk_req_fn)(struct fk_req *r);

struct fk_hdr {
    size_t name, nlen, value, vlen; /* offsets into the request's hbuf */
};

struct fk_req {
    struct fk_conn *conn;
    int32_t stream_id;
    struct fk_buf hbuf, body, resp;
    struct fk_hdr hdr[32];
    int nhdr;
    size_t body_size; /* all DATA bytes, body keeps the first 1 MiB */
    size_t resp_off;
    int64_t due_ms;
    fk_req_fn deferred;
    unsigned closed : 1, complete : 1, answered : 1, too_many_hdrs : 1;
    struct fk_req *next, *prev; /* the connection's live requests */
    struct fk_req *qnext;       /* the connection's delay queue */
};

struct fk_conn {
    int id;
    int active;        /* streams open (incoming, not yet closed) */
    uint32_t limit;    /* SETTINGS_MAX_CONCURRENT_STREAMS in force */
    int served;        /* for the program: requests accepted */
    int32_t goaway_id; /* GOAWAY sent with this last stream id, or 0 */
    int cert_auth;     /* the client presented a certificate the CA signed */
    void *data;        /* the program's per-connection state */
    /* core-private */
    struct fk_server *_srv;
    struct bufferevent *_bev;
    nghttp2_session *_session;
    struct fk_req *_reqs;
    struct fk_req *_qhead, *_qtail;
    struct event *_qtimer, *_close_timer;
    int _closing;   /* FK_CLOSE_* */
    int _lingering; /* FIN sent, reading until the peer closes */
};

struct fk_program {
    const char *name;
    void (*on_connect)(struct fk_conn *c);
    void (*on_close)(struct fk_conn *c);
    /* a complete request (END_STREAM), faults already applied */
    void (*on_request)(struct fk_req *r);
    /* the fault injector answers STATUS (500, 429) */
    void (*fault_reply)(struct fk_req *r, int status, int retry_after);
};

struct fk_conf {
    const char *cert, *key, *client_ca, *log, *port_file, *fault_ctl;
    int port;
    uint32_t initial_streams;
};

/* Handles a flag the core knows (--cert, --key, --client-ca, --log,
 * --port-file, --port, --fault-ctl): returns the number of argv entries
 * used, 0 if not one of them. Exits on a missing value. */
int fk_conf_arg(struct fk_conf *cf, int argc, char **argv, int i);
/* Listens on 127.0.0.1, prints "port=N", writes --port-file, runs until
 * SIGTERM/SIGINT, flushes the log; returns the exit code. */
int fk_run(const struct fk_conf *cf, const struct fk_program *prog);
int fk_port(void);

/* requests */
const char *fk_hdr_get(struct fk_req *r, const char *name, size_t *len);
int fk_hdr_count(struct fk_req *r, const char *name);
const char *fk_hdr_name(struct fk_req *r, int i, size_t *len);
const char *fk_hdr_value(struct fk_req *r, int i, size_t *len);
/* Answers STATUS with headers NV (N entries, copied) and BODY (copied). */
void fk_respond(struct fk_req *r, int status, const nghttp2_nv *nv, size_t n,
                const char *body, size_t len);
void fk_rst(struct fk_req *r, uint32_t error_code);
/* Calls FN(r) MS from now; other streams go on meanwhile. r->closed is set
 * if the stream went away in between (answering then does nothing). */
void fk_defer(struct fk_req *r, int ms, fk_req_fn fn);

/* connections */
void fk_set_max_streams(struct fk_conn *c, uint32_t n);
void fk_goaway(struct fk_conn *c, int32_t last, uint32_t error_code,
               const char *debug);
/* Closes after what is queued has been written (a dropped connection);
 * the requests not answered yet are never answered. */
void fk_drop(struct fk_conn *c);
void fk_drop_after(struct fk_conn *c, int ms);
/* Closes at once with a TCP reset. */
void fk_reset(struct fk_conn *c);
int fk_closing(struct fk_conn *c);

/* the log: one line per call of fk_log_end() */
struct fk_jw *fk_log_begin(void);
void fk_log_end(void);
/* the same for an event line: {"event": event, ...}; ends with "at": now */
struct fk_jw *fk_log_event(const char *event);
void fk_log_end_at(void);
int fk_logging(void);

#endif
