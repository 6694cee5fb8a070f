/*
 * api_send.c: sending and tracking notifications: POST /v1/notifications
 * (also per user and in batches), GET/DELETE /v1/notifications/{id} and
 * GET /v1/users/{user_id}/notifications. The accepting worker validates;
 * the owner of the user's shard expands, stages and answers after the
 * group commit.
 */
#include <errno.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/jtext.h"
#include "core/shard.h"
#include "core/time.h"
#include "http/api.h"
#include "http/validate.h"
#include "provider/provider.h"
#include "send/notify.h"
#include "send/users.h"

#define HD_TITLE_MAX 1024
#define HD_TEXT_MAX 65536
#define HD_BATCH_MAX 1000
#define HD_IDEMPOTENCY_KEY_MAX 255

/* The validated send, as it travels to the owner (op->in). */
struct send_args {
    unsigned channels;
    int priority;
    int64_t send_at_ms, ttl_ms;
};

static void
exec_send(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_notify_in in;
    struct hd_notify_err err;
    struct hd_jbuf answer;
    json_t *a = op->in;
    int status;

    if (hd_api_op_busy(op))
        return;
    in.user_id = op->user_id;
    in.key_id = op->key_id;
    in.channels = (unsigned)json_integer_value(json_object_get(a, "ch"));
    in.category = json_string_value(json_object_get(a, "category"));
    in.priority = (int)json_integer_value(json_object_get(a, "priority"));
    in.send_at_ms = json_integer_value(json_object_get(a, "send_at"));
    in.ttl_ms = json_integer_value(json_object_get(a, "ttl"));
    in.idempotency_key = json_string_value(json_object_get(a, "idem"));
    in.content = json_object_get(a, "content");
    in.template_name = json_string_value(json_object_get(a, "template"));
    in.template_data = json_object_get(a, "tdata");
    if (hd_notify_accept(hd_call_shard(c), hd_current_worker->conf, &in,
                         &answer, &status, &err) != HD_OK) {
        hd_api_op_finish(op, err.status,
                         hd_api_error(err.code, err.field, "%s", err.message));
        return;
    }
    hd_api_op_finish_durable_text(op, status, &answer);
}

/* ==== validation ==== */

/* A validation error; the field name is copied: it may point into the
 * body, which is freed before the answer is sent. */
struct verr {
    const char *code;
    const char *field; /* NULL or _field */
    char _field[96];
    char msg[256];
};

static void
set_field(struct verr *e, const char *field)
{
    snprintf(e->_field, sizeof(e->_field), "%s", field);
    e->field = e->_field;
}

static int
bad(struct verr *e, const char *code, const char *field, const char *fmt,
    const char *arg)
{
    e->code = code;
    set_field(e, field);
    snprintf(e->msg, sizeof(e->msg), fmt, arg);
    return HD_ERROR;
}

/* A string field of at most max bytes, or absent. */
static int
check_str(json_t *obj, const char *key, const char *field, size_t max,
          struct verr *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return HD_OK;
    if (!json_is_string(v))
        return bad(e, "invalid_field", field, "\"%s\" must be a string", field);
    if (json_string_length(v) > max) {
        e->code = "invalid_field";
        set_field(e, field);
        snprintf(e->msg, sizeof(e->msg), "\"%s\" is longer than %zu bytes",
                 field, max);
        return HD_ERROR;
    }
    return HD_OK;
}

static int
check_data(json_t *v, const char *field, struct verr *e)
{
    const char *k;
    json_t *x;

    if (v == NULL)
        return HD_OK;
    if (!json_is_object(v))
        return bad(e, "invalid_field", field,
                   "\"%s\" must be an object of strings", field);
    json_object_foreach(v, k, x)
    {
        if (!json_is_string(x))
            return bad(e, "invalid_field", field,
                       "\"%s\" must be an object of strings", field);
    }
    return HD_OK;
}

/* Checks a channel part: allowed string keys and their limits. */
static int
check_part(json_t *body, const char *name, const char *const *keys,
           struct verr *e)
{
    json_t *part = json_object_get(body, name);
    const char *k;
    char field[64];

    if (part == NULL)
        return HD_OK;
    if (!json_is_object(part))
        return bad(e, "invalid_field", name, "\"%s\" must be an object", name);
    if ((k = hd_valid_keys(part, keys)) != NULL) {
        e->code = "invalid_field";
        snprintf(field, sizeof(field), "%s.%s", name, k);
        set_field(e, field);
        snprintf(e->msg, sizeof(e->msg), "unknown field \"%s.%s\"", name, k);
        return HD_ERROR;
    }
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(part, keys[i]);
        snprintf(field, sizeof(field), "%s.%s", name, keys[i]);
        if (v == NULL)
            continue;
        if (strcmp(keys[i], "badge") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                e->code = "invalid_field";
                set_field(e, field);
                snprintf(e->msg, sizeof(e->msg),
                         "\"%s\" must be a non-negative integer", field);
                return HD_ERROR;
            }
            continue;
        }
        if (strcmp(keys[i], "data") == 0) {
            if (!json_is_object(v)) {
                e->code = "invalid_field";
                set_field(e, field);
                snprintf(e->msg, sizeof(e->msg), "\"%s\" must be an object",
                         field);
                return HD_ERROR;
            }
            continue;
        }
        if (!json_is_string(v)) {
            e->code = "invalid_field";
            set_field(e, field);
            snprintf(e->msg, sizeof(e->msg), "\"%s\" must be a string", field);
            return HD_ERROR;
        }
        if (json_string_length(v) >
            (strcmp(keys[i], "html") == 0 || strcmp(keys[i], "text") == 0
                 ? HD_TEXT_MAX
                 : HD_TITLE_MAX * 4)) {
            e->code = "invalid_field";
            set_field(e, field);
            snprintf(e->msg, sizeof(e->msg), "\"%s\" is too long", field);
            return HD_ERROR;
        }
    }
    return HD_OK;
}

/* Checks a send body; on success *args is the owner's input (content,
 * channels, ...) and *user_id is set. */
static int
validate_send(json_t *in, const char *path_user, const char *header_key,
              json_t **args, const char **user_id, struct verr *e)
{
    static const char *const keys[] = {"user_id",
                                       "channels",
                                       "category",
                                       "priority",
                                       "ttl",
                                       "send_at",
                                       "idempotency_key",
                                       "title",
                                       "body",
                                       "data",
                                       "push",
                                       "sms",
                                       "email",
                                       "web",
                                       "template",
                                       NULL};
    static const char *const push_keys[] = {"title",     "body", "badge",
                                            "sound",     "data", "collapse_id",
                                            "thread_id", NULL};
    static const char *const sms_keys[] = {"body", NULL};
    static const char *const email_keys[] = {"subject", "text", "html", NULL};
    static const char *const web_keys[] = {"title", "body",  "icon",
                                           "url",   "topic", NULL};
    json_t *uid = json_object_get(in, "user_id"), *v, *content;
    unsigned channels = 0;
    int priority = HD_PRIO_NORMAL;
    int64_t send_at = 0, ttl = 0;
    const char *k, *idem = header_key;

    if ((k = hd_valid_keys(in, keys)) != NULL) {
        e->code = "invalid_field";
        set_field(e, k);
        snprintf(e->msg, sizeof(e->msg), "unknown field \"%s\"", k);
        return HD_ERROR;
    }
    if (path_user == NULL) {
        if (uid == NULL)
            return bad(e, "missing_field", "user_id",
                       "\"user_id\" is required%s", "");
        if (!json_is_string(uid) || !hd_user_id_valid(json_string_value(uid)))
            return bad(e, "invalid_field", "user_id",
                       "\"user_id\" must be 1-128 characters of A-Z a-z 0-9 "
                       ". _ : @ -%s",
                       "");
        *user_id = json_string_value(uid);
    } else {
        if (uid != NULL && (!json_is_string(uid) ||
                            strcmp(json_string_value(uid), path_user) != 0))
            return bad(e, "invalid_field", "user_id",
                       "\"user_id\" differs from the user in the path%s", "");
        *user_id = path_user;
    }

    v = json_object_get(in, "channels");
    if (v != NULL) {
        size_t i;
        json_t *ch;
        if (!json_is_array(v) || json_array_size(v) == 0)
            return bad(e, "invalid_field", "channels",
                       "\"channels\" must be a non-empty array of push, sms, "
                       "email, web%s",
                       "");
        json_array_foreach(v, i, ch)
        {
            int c = json_is_string(ch)
                        ? hd_channel_parse(json_string_value(ch),
                                           json_string_length(ch))
                        : -1;
            if (c < 0)
                return bad(e, "invalid_field", "channels",
                           "\"channels\" items must be push, sms, email or "
                           "web%s",
                           "");
            channels |= 1u << c;
        }
    }
    v = json_object_get(in, "category");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      json_string_length(v) > 64))
        return bad(e, "invalid_field", "category",
                   "\"category\" must be a string of 1-64 characters%s", "");
    v = json_object_get(in, "priority");
    if (v != NULL) {
        priority =
            json_is_string(v) ? hd_priority_parse(json_string_value(v)) : -1;
        if (priority < 0)
            return bad(e, "invalid_field", "priority",
                       "\"priority\" must be critical, high, normal or low%s",
                       "");
    }
    v = json_object_get(in, "ttl");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            json_integer_value(v) > 365LL * 86400)
            return bad(e, "invalid_field", "ttl",
                       "\"ttl\" must be a number of seconds from 1 to one "
                       "year%s",
                       "");
        ttl = json_integer_value(v) * 1000;
    }
    v = json_object_get(in, "send_at");
    if (v != NULL) {
        if (!json_is_string(v) ||
            hd_time_parse_iso(json_string_value(v), &send_at) != HD_OK)
            return bad(e, "invalid_field", "send_at",
                       "\"send_at\" must be an RFC 3339 time like "
                       "2026-11-23T07:40:00Z%s",
                       "");
        if (send_at <= 0)
            return bad(e, "invalid_field", "send_at",
                       "\"send_at\" is out of range%s", "");
    }
    v = json_object_get(in, "idempotency_key");
    if (v != NULL) {
        if (!json_is_string(v))
            return bad(e, "invalid_field", "idempotency_key",
                       "\"idempotency_key\" must be a string%s", "");
        idem = json_string_value(v);
    }
    if (idem != NULL &&
        (strlen(idem) == 0 || strlen(idem) > HD_IDEMPOTENCY_KEY_MAX))
        return bad(e, "invalid_field", "idempotency_key",
                   "the idempotency key must be 1-255 characters%s", "");

    v = json_object_get(in, "template");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      json_string_length(v) > 64))
        return bad(e, "invalid_field", "template",
                   "\"template\" must be a template name%s", "");
    if (v != NULL && json_object_get(in, "data") != NULL &&
        !json_is_object(json_object_get(in, "data")))
        return bad(e, "invalid_field", "data",
                   "\"data\" must be an object: the template's values%s", "");
    if (check_str(in, "title", "title", HD_TITLE_MAX, e) != HD_OK ||
        check_str(in, "body", "body", HD_TEXT_MAX, e) != HD_OK ||
        (v == NULL &&
         check_data(json_object_get(in, "data"), "data", e) != HD_OK) ||
        check_part(in, "push", push_keys, e) != HD_OK ||
        check_part(in, "sms", sms_keys, e) != HD_OK ||
        check_part(in, "email", email_keys, e) != HD_OK ||
        check_part(in, "web", web_keys, e) != HD_OK)
        return HD_ERROR;
    if (json_object_get(in, "body") == NULL &&
        json_object_get(in, "template") == NULL &&
        json_object_get(in, "push") == NULL &&
        json_object_get(in, "sms") == NULL &&
        json_object_get(in, "email") == NULL &&
        json_object_get(in, "web") == NULL)
        return bad(e, "missing_field", "body",
                   "content is required: \"body\" (and \"title\") or a "
                   "per-channel part%s",
                   "");

    content = json_object();
    {
        static const char *ck[] = {"title", "body",  "data", "push",
                                   "sms",   "email", "web"};
        for (size_t i = 0; i < HD_NELEMS(ck); i++)
            if ((v = json_object_get(in, ck[i])) != NULL)
                json_object_set(content, ck[i], v);
    }
    *args = json_pack("{s:o, s:i, s:i, s:I, s:I}", "content", content, "ch",
                      channels, "priority", priority, "send_at",
                      (json_int_t)send_at, "ttl", (json_int_t)ttl);
    if (json_object_get(in, "category"))
        json_object_set(*args, "category", json_object_get(in, "category"));
    if (json_object_get(in, "template")) {
        json_object_set(*args, "template", json_object_get(in, "template"));
        /* data is the template's, not a push payload */
        json_object_del(content, "data");
        json_object_set_new(*args, "tdata",
                            json_object_get(in, "data")
                                ? json_deep_copy(json_object_get(in, "data"))
                                : json_object());
    }
    if (idem)
        json_object_set_new(*args, "idem", json_string(idem));
    return HD_OK;
}

/* Makes the op for one validated item, or answers through e. */
static struct hd_api_op *
send_op(struct hd_req *r, json_t *in, const char *path_user, struct verr *e)
{
    struct hd_api_op *op;
    const char *user_id = NULL;
    json_t *args = NULL;

    if (validate_send(in, path_user, r->idempotency_key, &args, &user_id, e) !=
        HD_OK)
        return NULL;
    op = hd_api_op_new(
        r, hd_shard_of(user_id, strlen(user_id), hd_cycle.nshards), exec_send);
    op->user_id = hd_strdup(user_id);
    op->in = args;
    return op;
}

void
hd_api_send(struct hd_req *r)
{
    const char *path_user = r->nparams ? r->params[0] : NULL;
    struct hd_api_op *op;
    struct verr e;
    json_t *in;

    if (path_user && !hd_user_id_valid(path_user)) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    op = send_op(r, in, path_user, &e);
    json_decref(in);
    if (op == NULL) {
        hd_http_error(r, 400, e.code, e.field, "%s", e.msg);
        return;
    }
    hd_call_submit(&op->call);
}

/* ==== batch ==== */

/* The batch lives on the origin worker; each item is one call to its
 * user's shard, and the answer goes out when the last one is back. Each
 * item's result is kept as JSON text as soon as it is known: one tree of
 * a thousand results, dumped and freed at once, cost more than the items
 * themselves. */
struct batch {
    struct hd_req *req;
    struct hd_jbuf *results; /* by index */
    int n, pending;
};

struct batch_op {
    struct hd_api_op op; /* first member */
    struct batch *b;
    int index;
};

static void
batch_finish(struct batch *b)
{
    struct hd_jbuf out;

    hd_jbuf_init(&out, 64);
    hd_jbuf_raw(&out, "{\"results\":[", 12);
    for (int i = 0; i < b->n; i++) {
        if (i > 0)
            hd_jbuf_raw(&out, ",", 1);
        hd_jbuf_raw(&out, b->results[i].p, b->results[i].len);
        free(b->results[i].p);
    }
    hd_jbuf_raw(&out, "]}", 2);
    hd_http_reply_text(b->req, 200, "application/json", out.p, out.len);
    free(out.p);
    free(b->results);
    free(b);
}

/* {"index":i,"status":status, then the rest of one item's result */
static struct hd_jbuf *
result_start(struct batch *b, int i, int status)
{
    struct hd_jbuf *r = &b->results[i];

    hd_jbuf_init(r, 256);
    hd_jbuf_raw(r, "{", 1);
    hd_jbuf_key(r, "index");
    hd_jbuf_int(r, i);
    hd_jbuf_key(r, "status");
    hd_jbuf_int(r, status);
    return r;
}

static void
on_batch_item(struct hd_call *c)
{
    struct batch_op *bo = (struct batch_op *)c;
    struct batch *b = bo->b;
    struct hd_jbuf *res = result_start(b, bo->index, bo->op.status);
    json_t *v = bo->op.status >= 400 ? json_object_get(bo->op.out, "error")
                                     : bo->op.out;

    hd_jbuf_key(res, bo->op.status >= 400 ? "error" : "notification");
    if (bo->op.out_text.p != NULL)
        hd_jbuf_raw(res, bo->op.out_text.p, bo->op.out_text.len);
    else if (v != NULL)
        hd_jbuf_json(res, v);
    else
        hd_jbuf_raw(res, "null", 4);
    hd_jbuf_raw(res, "}", 1);
    free(bo->op.out_text.p);
    json_decref(bo->op.out);
    json_decref(bo->op.in);
    free(bo->op.user_id);
    free(bo);
    if (--b->pending == 0)
        batch_finish(b);
}

void
hd_api_send_batch(struct hd_req *r)
{
    json_error_t je;
    json_t *in, *item;
    struct batch *b;
    size_t i, n;

    in = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (in == NULL) {
        hd_http_error(r, 400, "invalid_json", NULL,
                      "invalid JSON at line %d column %d: %s", je.line,
                      je.column, je.text);
        return;
    }
    if (!json_is_array(in) || json_array_size(in) == 0) {
        json_decref(in);
        hd_http_error(r, 400, "invalid_json", NULL,
                      "the body must be a non-empty JSON array of "
                      "notifications");
        return;
    }
    n = json_array_size(in);
    if (n > HD_BATCH_MAX) {
        json_decref(in);
        hd_http_error(r, 413, "batch_too_large", NULL,
                      "a batch holds at most %d notifications, not %zu",
                      HD_BATCH_MAX, n);
        return;
    }
    b = hd_calloc(sizeof(*b));
    b->req = r;
    b->results = hd_calloc(n * sizeof(*b->results));
    b->n = (int)n;
    b->pending = (int)n + 1; /* +1: held until every item is submitted */
    json_array_foreach(in, i, item)
    {
        struct verr e;
        struct hd_api_op *op = NULL;
        struct batch_op *bo;

        if (!json_is_object(item)) {
            e.code = "invalid_json";
            e.field = NULL;
            e._field[0] = '\0';
            snprintf(e.msg, sizeof(e.msg), "item must be a JSON object");
        } else {
            /* each item's own key: the header would make them all one */
            const char *saved = r->idempotency_key;
            r->idempotency_key = NULL;
            op = send_op(r, item, NULL, &e);
            r->idempotency_key = saved;
        }
        if (op == NULL) {
            struct hd_jbuf *res = result_start(b, (int)i, 400);
            /* names from the request, maybe cut inside a character */
            hd_jbuf_key(res, "error");
            hd_jbuf_raw(res, "{", 1);
            hd_jbuf_kv(res, "code", e.code);
            hd_jbuf_kv(res, "message", hd_utf8_fix(e.msg));
            if (e.field) {
                hd_jbuf_kv(res, "field", hd_utf8_fix(e._field));
            }
            hd_jbuf_raw(res, "}}", 2);
            b->pending--;
            continue;
        }
        bo = hd_realloc(op, sizeof(*bo));
        bo->b = b;
        bo->index = (int)i;
        bo->op.call.done = on_batch_item;
        hd_call_submit(&bo->op.call);
    }
    json_decref(in);
    if (--b->pending == 0)
        batch_finish(b);
}

/* ==== status, cancel, list ==== */

static struct hd_api_op *
notification_op(struct hd_req *r, hd_call_fn exec)
{
    const char *id = r->params[0];
    int shard = hd_store_id_shard(id, strlen(id));
    struct hd_api_op *op;

    if (shard < 0 || shard >= hd_cycle.nshards || strlen(id) > 19) {
        hd_http_error(r, 404, "not_found", "id", "unknown notification \"%s\"",
                      id);
        return NULL;
    }
    op = hd_api_op_new(r, shard, exec);
    op->id = hd_strdup(id);
    return op;
}

static void
exec_status(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *n = hd_notify_get(hd_call_shard(c), op->id);

    if (n == NULL) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "id",
                                      "unknown notification \"%s\"", op->id));
        return;
    }
    hd_api_op_finish_durable(op, 200, n);
}

void
hd_api_status(struct hd_req *r)
{
    struct hd_api_op *op = notification_op(r, exec_status);
    if (op)
        hd_call_submit(&op->call);
}

static void
exec_cancel(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    int n = hd_notify_cancel(hd_call_shard(c), op->id);

    if (n < 0) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "id",
                                      "unknown notification \"%s\"", op->id));
        return;
    }
    hd_api_op_finish_durable(
        op, 200, json_pack("{s:s, s:i}", "id", op->id, "cancelled", n));
}

void
hd_api_cancel(struct hd_req *r)
{
    struct hd_api_op *op = notification_op(r, exec_cancel);
    if (op)
        hd_call_submit(&op->call);
}

static void
exec_list(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    json_t *u = hd_user_load(s, op->user_id);

    if (u == NULL) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "user_id",
                                      "unknown user \"%s\"", op->user_id));
        return;
    }
    json_decref(u);
    hd_api_op_finish_durable(
        op, 200,
        hd_notify_list(
            s, op->user_id, op->id,
            (int)json_integer_value(json_object_get(op->in, "limit"))));
}

void
hd_api_user_notifications(struct hd_req *r)
{
    const char *id = r->params[0];
    char lbuf[16], cbuf[64];
    const char *l, *cur;
    struct hd_api_op *op;
    long limit = 20;

    if (!hd_user_id_valid(id)) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return;
    }
    if ((l = hd_api_query_arg(r->query, "limit", lbuf, sizeof(lbuf))) != NULL) {
        char *end;
        errno = 0;
        limit = strtol(l, &end, 10);
        if (*end != '\0' || end == l || limit < 1 || limit > 100) {
            hd_http_error(r, 400, "invalid_field", "limit",
                          "\"limit\" must be 1 to 100");
            return;
        }
    }
    cur = hd_api_query_arg(r->query, "cursor", cbuf, sizeof(cbuf));
    if (cur != NULL && hd_store_id_shard(cur, strlen(cur)) < 0) {
        hd_http_error(r, 400, "invalid_field", "cursor",
                      "\"cursor\" must be a next_cursor value from a "
                      "previous page");
        return;
    }
    op = hd_api_op_new(r, hd_shard_of(id, strlen(id), hd_cycle.nshards),
                       exec_list);
    op->user_id = hd_strdup(id);
    op->id = cur ? hd_strdup(cur) : NULL;
    op->in = json_pack("{s:i}", "limit", (int)limit);
    hd_call_submit(&op->call);
}
