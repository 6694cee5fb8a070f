/*
 * api.c: the plumbing every API handler shares: the op that travels to a
 * shard's owner and back, JSON bodies and error objects. The origin
 * worker makes and frees ops; the owner only fills status and out.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/metrics.h"
#include "http/api.h"

static void
on_op_done(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;

    if (op->retry_after > 0) {
        char h[48];
        snprintf(h, sizeof(h), "Retry-After: %d", op->retry_after);
        hd_http_header(op->req, h);
    }
    if (op->out_text.p != NULL) {
        hd_http_reply_text(op->req, op->status, "application/json",
                           op->out_text.p, op->out_text.len);
        free(op->out_text.p);
    } else {
        hd_http_reply(op->req, op->status, op->out);
    }
    json_decref(op->in);
    free(op->in_block);
    free(op->user_id);
    free(op->id);
    free(op);
}

struct hd_api_op *
hd_api_op_new(struct hd_req *r, int shard, hd_call_fn exec)
{
    struct hd_api_op *op = hd_calloc(sizeof(*op));

    op->req = r;
    op->call.shard = shard;
    op->call.exec = exec;
    op->call.done = on_op_done;
    if (r->key)
        snprintf(op->key_id, sizeof(op->key_id), "%s", r->key->id);
    return op;
}

int
hd_api_op_busy(struct hd_api_op *op)
{
    struct hd_shard *s = hd_call_shard(&op->call);

    if (!hd_store_pressure(s))
        return 0;
    HD_COUNT(hd_metrics_self()->rejected_busy, 1);
    op->retry_after = 30;
    hd_api_op_finish(op, 503,
                     hd_api_error("store_busy", NULL,
                                  "the store of shard %d is nearly full "
                                  "(high_water); try again later",
                                  s->id));
    return 1;
}

void
hd_api_op_finish(struct hd_api_op *op, int status, json_t *out)
{
    op->status = status;
    op->out = out;
    hd_call_return(&op->call);
}

static void
on_durable(void *arg, int status)
{
    struct hd_api_op *op = arg;

    if (status != HD_COMMIT_OK) {
        json_decref(op->out);
        free(op->out_text.p);
        op->out_text.p = NULL;
        if (status == HD_COMMIT_FULL) {
            op->status = 507;
            op->out = hd_api_error("store_full", NULL,
                                   "the store is full (max_map_size); "
                                   "nothing of this request was stored");
        } else {
            op->status = 500;
            op->out = hd_api_error("store_error", NULL,
                                   "the store failed to commit; nothing of "
                                   "this request was stored");
        }
    }
    hd_call_return(&op->call);
}

void
hd_api_op_finish_durable(struct hd_api_op *op, int status, json_t *out)
{
    op->status = status;
    op->out = out;
    hd_store_after_commit(hd_call_shard(&op->call), on_durable, op);
}

void
hd_api_op_finish_durable_text(struct hd_api_op *op, int status,
                              struct hd_jbuf *text)
{
    op->status = status;
    op->out = NULL;
    op->out_text = *text;
    text->p = NULL;
    hd_store_after_commit(hd_call_shard(&op->call), on_durable, op);
}

json_t *
hd_api_error(const char *code, const char *field, const char *fmt, ...)
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
    return json_pack("{s:o}", "error", err);
}

json_t *
hd_api_body(struct hd_req *r)
{
    json_error_t e;
    json_t *j;

    if (r->body_len == 0) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      "a JSON object body is required");
        return NULL;
    }
    j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      "invalid JSON at line %d column %d: %s", e.line, e.column,
                      e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        hd_http_error(r, 400, "invalid_json", NULL,
                      "the body must be a JSON object");
        return NULL;
    }
    return j;
}

int
hd_api_body_text(struct hd_req *r, char open)
{
    const char *p = r->body, *end = p + r->body_len;
    json_error_t e;
    json_t *j;
    int rc;

    if (r->body_len == 0) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      open == '{' ? "a JSON object body is required"
                                  : "a JSON array body is required");
        return HD_ERROR;
    }
    rc = hd_jtext_valid(r->body, r->body_len);
    if (rc == HD_DECLINED) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      "JSON nested deeper than %d levels", HD_JTEXT_DEPTH);
        return HD_ERROR;
    }
    if (rc != HD_OK) {
        /* rare: jansson says where and what */
        j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
        if (j != NULL) {
            /* jansson skips a NUL byte after a number; stored text may not
             * hold one (hd_jtext_valid) */
            json_decref(j);
            hd_http_error(r, 400, "invalid_json", NULL,
                          "invalid JSON: a NUL byte");
            return HD_ERROR;
        }
        hd_http_error(r, 400, "invalid_json", NULL,
                      "invalid JSON at line %d column %d: %s", e.line, e.column,
                      e.text);
        return HD_ERROR;
    }
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (*p != open) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      open == '{' ? "the body must be a JSON object"
                                  : "the body must be a non-empty JSON array "
                                    "of notifications");
        return HD_ERROR;
    }
    return HD_OK;
}

/* ==== fan-out: one call per shard, answered when the last is back ==== */

struct hd_fanout_call {
    struct hd_call call;
    struct hd_fanout *f;
    void (*exec)(struct hd_shard *s, json_t *args, json_t **out);
    json_t *out;
};

static void
on_fanout_durable(void *arg, int status)
{
    hd_call_return(arg);
}

static void
on_fanout_exec(struct hd_call *c)
{
    struct hd_fanout_call *fc = (struct hd_fanout_call *)c;
    struct hd_shard *s = hd_call_shard(c);

    fc->exec(s, fc->f->args, &fc->out);
    /* answers read what may still be committing */
    hd_store_after_commit(s, on_fanout_durable, c);
}

static void
on_fanout_done(struct hd_call *c)
{
    struct hd_fanout_call *fc = (struct hd_fanout_call *)c;
    struct hd_fanout *f = fc->f;

    f->parts[c->shard] = fc->out;
    free(fc);
    if (--f->pending == 0) {
        f->finish(f);
        for (int i = 0; i < hd_cycle.nshards; i++)
            json_decref(f->parts[i]);
        free(f->parts);
        json_decref(f->args);
        free(f);
    }
}

void
hd_api_fanout(struct hd_req *r, json_t *args,
              void (*exec)(struct hd_shard *s, json_t *args, json_t **out),
              hd_fanout_fn finish)
{
    struct hd_fanout *f = hd_calloc(sizeof(*f));

    f->req = r;
    f->args = args;
    f->finish = finish;
    f->parts = hd_calloc(hd_cycle.nshards * sizeof(json_t *));
    f->pending = hd_cycle.nshards;
    for (int i = 0; i < hd_cycle.nshards; i++) {
        struct hd_fanout_call *fc = hd_calloc(sizeof(*fc));
        fc->f = f;
        fc->exec = exec;
        fc->call.shard = i;
        fc->call.exec = on_fanout_exec;
        fc->call.done = on_fanout_done;
        hd_call_submit(&fc->call);
    }
}

const char *
hd_api_query_arg(const char *q, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);

    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
            len -= n + 1;
            if (len >= size)
                len = size - 1;
            memcpy(buf, q + n + 1, len);
            buf[len] = '\0';
            return buf;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

void
hd_api_healthz(struct hd_req *r)
{
    hd_http_reply(r, 200, json_pack("{s:s}", "status", "ok"));
}
