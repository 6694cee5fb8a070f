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

/* The validated send travels to the owner as one block (op->in_block):
 * the owner's input, user and key left out, then its strings and the
 * content's compact JSON text. */
static void
exec_send(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_notify_in in = *(const struct hd_notify_in *)op->in_block;
    struct hd_notify_err err;
    struct hd_jbuf answer;
    int status;

    if (hd_api_op_busy(op))
        return;
    in.user_id = op->user_id;
    in.key_id = op->key_id;
    if (hd_notify_accept(hd_call_shard(c), hd_current_worker->conf, &in,
                         &answer, &status, &err) != HD_OK) {
        hd_api_op_finish(op, err.status,
                         hd_api_error(err.code, err.field, "%s", err.message));
        return;
    }
    hd_api_op_finish_durable_text(op, status, &answer);
}

/* ==== validation ==== */

/* The body is read as text (src/core/jtext.c), checked whole with
 * hd_jtext_valid first, so every span below is well-formed JSON: no tree
 * is built for a send. A member's key is compared as it decodes ("a" and
 * "\u0061" are one key, as for jansson). */

#define SEND_MEMBERS 32 /* more than the 15 known keys: some are unknown */
#define SEND_CHANNELS 64

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

/* The key k (as written, without its quotes) as a string value. */
static struct hd_jspan
key_value(const struct hd_jspan *k)
{
    struct hd_jspan q = {k->p - 1, k->n + 2};
    return q;
}

/* Sorts the members m[0..n) by the allowed key they are (NULL-terminated
 * list): the value of allowed[j] goes to vals[j], which the caller
 * cleared. Refuses the first other key: "unknown field \"prefix.key\"". */
static int
find_members(const struct hd_jmember *m, int n, const char *const *allowed,
             const struct hd_jspan **vals, const char *prefix, struct verr *e)
{
    for (int i = 0; i < n; i++) {
        struct hd_jspan q = key_value(&m[i].key);
        const char *k = m[i].key.p;
        long klen = (long)m[i].key.n;
        char buf[72], *key;
        int j;

        if (memchr(k, '\\', m[i].key.n) != NULL) {
            /* compared as it decodes; a long one is no allowed key */
            klen = hd_jtext_str(&q, buf, sizeof(buf));
            k = buf;
        }
        for (j = 0; allowed[j]; j++)
            if ((long)strlen(allowed[j]) == klen &&
                memcmp(allowed[j], k, (size_t)klen) == 0)
                break;
        if (allowed[j] != NULL) {
            vals[j] = &m[i].val;
            continue;
        }
        key = hd_alloc(q.n);
        if (hd_jtext_str(&q, key, q.n) < 0)
            key[0] = '\0';
        e->code = "invalid_field";
        snprintf(e->_field, sizeof(e->_field), "%s%s%s", prefix,
                 prefix[0] ? "." : "", key);
        e->field = e->_field;
        snprintf(e->msg, sizeof(e->msg), "unknown field \"%s%s%s\"", prefix,
                 prefix[0] ? "." : "", key);
        free(key);
        return HD_ERROR;
    }
    return HD_OK;
}

static int
is_string(const struct hd_jspan *v)
{
    return v->p[0] == '"';
}

static int
is_object(const struct hd_jspan *v)
{
    return v->p[0] == '{';
}

static int
is_integer(const struct hd_jspan *v)
{
    return (v->p[0] == '-' || (v->p[0] >= '0' && v->p[0] <= '9')) &&
           memchr(v->p, '.', v->n) == NULL && memchr(v->p, 'e', v->n) == NULL &&
           memchr(v->p, 'E', v->n) == NULL;
}

/* An integer >= 0 ("-0" is 0, as jansson reads it). */
static int
is_nonneg_integer(const struct hd_jspan *v)
{
    if (!is_integer(v))
        return 0;
    if (v->p[0] != '-')
        return 1;
    for (size_t i = 1; i < v->n; i++)
        if (v->p[i] != '0')
            return 0;
    return 1;
}

/* The string v decoded into buf; HD_ERROR when not a string or longer
 * than size - 1 bytes. */
static int
str_of(const struct hd_jspan *v, char *buf, size_t size)
{
    return is_string(v) ? hd_jtext_str(v, buf, size) : HD_ERROR;
}

/* A string field of at most max bytes, or absent. */
static int
check_str(const struct hd_jspan *v, const char *field, size_t max,
          struct verr *e)
{
    if (v == NULL)
        return HD_OK;
    if (!is_string(v))
        return bad(e, "invalid_field", field, "\"%s\" must be a string", field);
    if ((size_t)hd_jtext_strlen(v) > max) {
        e->code = "invalid_field";
        set_field(e, field);
        snprintf(e->msg, sizeof(e->msg), "\"%s\" is longer than %zu bytes",
                 field, max);
        return HD_ERROR;
    }
    return HD_OK;
}

/* An object of strings, or absent. */
static int
check_data(const struct hd_jspan *v, const char *field, struct verr *e)
{
    if (v == NULL || hd_jtext_strings_only(v->p, v->n))
        return HD_OK;
    return bad(e, "invalid_field", field, "\"%s\" must be an object of strings",
               field);
}

/* Checks a channel part: allowed string keys and their limits. */
static int
check_part(const struct hd_jspan *part, const char *name,
           const char *const *keys, struct verr *e)
{
    struct hd_jmember m[SEND_MEMBERS];
    const struct hd_jspan *vals[SEND_MEMBERS] = {NULL};
    char field[64];
    int n;

    if (part == NULL)
        return HD_OK;
    if (!is_object(part))
        return bad(e, "invalid_field", name, "\"%s\" must be an object", name);
    /* too many members: the first SEND_MEMBERS hold an unknown one */
    n = hd_jtext_members(part->p, part->n, m, SEND_MEMBERS);
    if (find_members(m, n < 0 ? SEND_MEMBERS : n, keys, vals, name, e) != HD_OK)
        return HD_ERROR;
    for (int i = 0; keys[i]; i++) {
        const struct hd_jspan *v = vals[i];
        if (v == NULL)
            continue;
        snprintf(field, sizeof(field), "%s.%s", name, keys[i]);
        if (strcmp(keys[i], "badge") == 0) {
            if (!is_nonneg_integer(v))
                return bad(e, "invalid_field", field,
                           "\"%s\" must be a non-negative integer", field);
            continue;
        }
        if (strcmp(keys[i], "data") == 0) {
            if (!is_object(v))
                return bad(e, "invalid_field", field,
                           "\"%s\" must be an object", field);
            continue;
        }
        if (!is_string(v))
            return bad(e, "invalid_field", field, "\"%s\" must be a string",
                       field);
        if ((size_t)hd_jtext_strlen(v) >
            (strcmp(keys[i], "html") == 0 || strcmp(keys[i], "text") == 0
                 ? HD_TEXT_MAX
                 : HD_TITLE_MAX * 4))
            return bad(e, "invalid_field", field, "\"%s\" is too long", field);
    }
    return HD_OK;
}

/* "channels": a bit per channel named. */
static int
check_channels(const struct hd_jspan *v, unsigned *channels, struct verr *e)
{
    struct hd_jspan items[SEND_CHANNELS];
    char name[16];
    int n = v->p[0] == '[' ? hd_jtext_items(v->p, v->n, items, SEND_CHANNELS)
                           : HD_ERROR;

    if (n <= 0)
        return bad(e, "invalid_field", "channels",
                   "\"channels\" must be a non-empty array of push, sms, "
                   "email, web%s",
                   "");
    for (int i = 0; i < n; i++) {
        int len = str_of(&items[i], name, sizeof(name));
        int c = len >= 0 ? hd_channel_parse(name, (size_t)len) : -1;
        if (c < 0)
            return bad(e, "invalid_field", "channels",
                       "\"channels\" items must be push, sms, email or web%s",
                       "");
        *channels |= 1u << c;
    }
    return HD_OK;
}

/* Appends s and its NUL to the args block; its offset, or 0 for NULL. */
static size_t
put_str(struct hd_jbuf *b, const char *s)
{
    size_t at = b->len;

    if (s == NULL)
        return 0;
    hd_jbuf_raw(b, s, strlen(s) + 1);
    return at;
}

/* The fields of a send, in the order of validate_send's keys; title to
 * web make up the content. */
enum {
    F_USER_ID,
    F_CHANNELS,
    F_CATEGORY,
    F_PRIORITY,
    F_TTL,
    F_SEND_AT,
    F_IDEM,
    F_TITLE,
    F_BODY,
    F_DATA,
    F_PUSH,
    F_SMS,
    F_EMAIL,
    F_WEB,
    F_TEMPLATE,
    F_MAX
};

/* Checks one send (the object text p[0..n), valid JSON); on success the
 * owner's input is a new block in *block and user_id is filled. */
static int
validate_send(const char *p, size_t len, const char *path_user,
              const char *header_key, struct hd_notify_in **block,
              char *user_id, struct verr *e)
{
    /* indexed by the F_ fields */
    static const char *const keys[F_MAX + 1] = {"user_id",
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
    struct hd_jmember m[SEND_MEMBERS];
    const struct hd_jspan *f[F_MAX] = {NULL};
    const struct hd_jspan *uid, *v, *tpl, *data;
    struct hd_notify_in a = {0};
    char category[65], tname[65], idem[256], buf[64];
    const char *idem_s = header_key;
    size_t o_cat, o_tpl, o_idem, o_content, o_tdata = 0;
    struct hd_jbuf b;
    int n;

    a.priority = HD_PRIO_NORMAL;
    n = hd_jtext_members(p, len, m, SEND_MEMBERS);
    if (find_members(m, n < 0 ? SEND_MEMBERS : n, keys, f, "", e) != HD_OK)
        return HD_ERROR;
    uid = f[F_USER_ID];
    if (path_user == NULL) {
        if (uid == NULL)
            return bad(e, "missing_field", "user_id",
                       "\"user_id\" is required%s", "");
        if (str_of(uid, user_id, HD_USER_ID_MAX + 1) < 0 ||
            !hd_user_id_valid(user_id))
            return bad(e, "invalid_field", "user_id",
                       "\"user_id\" must be 1-128 characters of A-Z a-z 0-9 "
                       ". _ : @ -%s",
                       "");
    } else {
        if (uid != NULL && (str_of(uid, user_id, HD_USER_ID_MAX + 1) < 0 ||
                            strcmp(user_id, path_user) != 0))
            return bad(e, "invalid_field", "user_id",
                       "\"user_id\" differs from the user in the path%s", "");
        snprintf(user_id, HD_USER_ID_MAX + 1, "%s", path_user);
    }

    if ((v = f[F_CHANNELS]) != NULL &&
        check_channels(v, &a.channels, e) != HD_OK)
        return HD_ERROR;
    category[0] = '\0';
    if ((v = f[F_CATEGORY]) != NULL &&
        str_of(v, category, sizeof(category)) <= 0)
        return bad(e, "invalid_field", "category",
                   "\"category\" must be a string of 1-64 characters%s", "");
    if ((v = f[F_PRIORITY]) != NULL) {
        a.priority =
            str_of(v, buf, sizeof(buf)) >= 0 ? hd_priority_parse(buf) : -1;
        if (a.priority < 0)
            return bad(e, "invalid_field", "priority",
                       "\"priority\" must be critical, high, normal or low%s",
                       "");
    }
    if ((v = f[F_TTL]) != NULL) {
        if (!is_integer(v) || hd_jtext_int(v) <= 0 ||
            hd_jtext_int(v) > 365LL * 86400)
            return bad(e, "invalid_field", "ttl",
                       "\"ttl\" must be a number of seconds from 1 to one "
                       "year%s",
                       "");
        a.ttl_ms = hd_jtext_int(v) * 1000;
    }
    if ((v = f[F_SEND_AT]) != NULL) {
        if (str_of(v, buf, sizeof(buf)) < 0 ||
            hd_time_parse_iso(buf, &a.send_at_ms) != HD_OK)
            return bad(e, "invalid_field", "send_at",
                       "\"send_at\" must be an RFC 3339 time like "
                       "2026-11-23T07:40:00Z%s",
                       "");
        if (a.send_at_ms <= 0)
            return bad(e, "invalid_field", "send_at",
                       "\"send_at\" is out of range%s", "");
    }
    if ((v = f[F_IDEM]) != NULL) {
        if (!is_string(v))
            return bad(e, "invalid_field", "idempotency_key",
                       "\"idempotency_key\" must be a string%s", "");
        idem_s = str_of(v, idem, sizeof(idem)) > 0 ? idem : "";
    }
    if (idem_s != NULL &&
        (strlen(idem_s) == 0 || strlen(idem_s) > HD_IDEMPOTENCY_KEY_MAX))
        return bad(e, "invalid_field", "idempotency_key",
                   "the idempotency key must be 1-255 characters%s", "");

    tname[0] = '\0';
    tpl = f[F_TEMPLATE];
    data = f[F_DATA];
    if (tpl != NULL && str_of(tpl, tname, sizeof(tname)) <= 0)
        return bad(e, "invalid_field", "template",
                   "\"template\" must be a template name%s", "");
    if (tpl != NULL && data != NULL && !is_object(data))
        return bad(e, "invalid_field", "data",
                   "\"data\" must be an object: the template's values%s", "");
    if (check_str(f[F_TITLE], "title", HD_TITLE_MAX, e) != HD_OK ||
        check_str(f[F_BODY], "body", HD_TEXT_MAX, e) != HD_OK ||
        (tpl == NULL && check_data(data, "data", e) != HD_OK) ||
        check_part(f[F_PUSH], "push", push_keys, e) != HD_OK ||
        check_part(f[F_SMS], "sms", sms_keys, e) != HD_OK ||
        check_part(f[F_EMAIL], "email", email_keys, e) != HD_OK ||
        check_part(f[F_WEB], "web", web_keys, e) != HD_OK)
        return HD_ERROR;
    if (f[F_BODY] == NULL && tpl == NULL && f[F_PUSH] == NULL &&
        f[F_SMS] == NULL && f[F_EMAIL] == NULL && f[F_WEB] == NULL)
        return bad(e, "missing_field", "body",
                   "content is required: \"body\" (and \"title\") or a "
                   "per-channel part%s",
                   "");

    /* the block: the struct, its strings, the content as compact text */
    hd_jbuf_init(&b, sizeof(a) + len + 64);
    b.len = sizeof(a);
    o_cat = put_str(&b, category[0] ? category : NULL);
    o_tpl = put_str(&b, tname[0] ? tname : NULL);
    o_idem = put_str(&b, idem_s);
    o_content = b.len;
    hd_jbuf_raw(&b, "{", 1);
    for (int i = F_TITLE; i <= F_WEB; i++) {
        /* with a template, data is the template's, not a push payload */
        if ((v = f[i]) == NULL || (tpl != NULL && v == data))
            continue;
        hd_jbuf_key(&b, keys[i]);
        hd_jbuf_compact(&b, v->p, v->n);
    }
    hd_jbuf_raw(&b, "}", 1);
    a.content_len = b.len - o_content;
    hd_jbuf_raw(&b, "", 1);
    if (tpl != NULL) {
        o_tdata = b.len;
        if (data != NULL)
            hd_jbuf_compact(&b, data->p, data->n);
        else
            hd_jbuf_raw(&b, "{}", 2);
        a.template_data_len = b.len - o_tdata;
        hd_jbuf_raw(&b, "", 1);
    }
    a.category = o_cat ? b.p + o_cat : NULL;
    a.template_name = o_tpl ? b.p + o_tpl : NULL;
    a.idempotency_key = o_idem ? b.p + o_idem : NULL;
    a.content = b.p + o_content;
    a.template_data = o_tdata ? b.p + o_tdata : NULL;
    memcpy(b.p, &a, sizeof(a));
    *block = (struct hd_notify_in *)(void *)b.p;
    return HD_OK;
}

/* Makes the op for one item (object text p[0..n)), or answers through
 * e. */
static struct hd_api_op *
send_op(struct hd_req *r, const char *p, size_t n, const char *path_user,
        struct verr *e)
{
    struct hd_api_op *op;
    struct hd_notify_in *a;
    char user_id[HD_USER_ID_MAX + 1];

    if (validate_send(p, n, path_user, r->idempotency_key, &a, user_id, e) !=
        HD_OK)
        return NULL;
    op = hd_api_op_new(
        r, hd_shard_of(user_id, strlen(user_id), hd_cycle.nshards), exec_send);
    op->user_id = hd_strdup(user_id);
    op->in_block = a;
    return op;
}

void
hd_api_send(struct hd_req *r)
{
    const char *path_user = r->nparams ? r->params[0] : NULL;
    struct hd_api_op *op;
    struct verr e;

    if (path_user && !hd_user_id_valid(path_user)) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return;
    }
    if (hd_api_body_text(r, '{') != HD_OK)
        return;
    op = send_op(r, r->body, r->body_len, path_user, &e);
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
    free(bo->op.in_block);
    free(bo->op.user_id);
    free(bo);
    if (--b->pending == 0)
        batch_finish(b);
}

/* The item count of the (valid) array text, for the error that names it. */
static size_t
count_items(const char *p, size_t len)
{
    json_t *in = json_loadb(p, len, 0, NULL);
    size_t n = json_array_size(in);

    json_decref(in);
    return n;
}

void
hd_api_send_batch(struct hd_req *r)
{
    struct hd_jspan *items;
    struct batch *b;
    int n;

    if (hd_api_body_text(r, '[') != HD_OK)
        return;
    items = hd_alloc((HD_BATCH_MAX + 1) * sizeof(*items));
    /* the array is valid: it fails only with more than max items */
    n = hd_jtext_items(r->body, r->body_len, items, HD_BATCH_MAX + 1);
    if (n == 0) {
        free(items);
        hd_http_error(r, 400, "invalid_json", NULL,
                      "the body must be a non-empty JSON array of "
                      "notifications");
        return;
    }
    if (n < 0 || n > HD_BATCH_MAX) {
        free(items);
        hd_http_error(r, 413, "batch_too_large", NULL,
                      "a batch holds at most %d notifications, not %zu",
                      HD_BATCH_MAX, count_items(r->body, r->body_len));
        return;
    }
    b = hd_calloc(sizeof(*b));
    b->req = r;
    b->results = hd_calloc((size_t)n * sizeof(*b->results));
    b->n = n;
    b->pending = n + 1; /* +1: held until every item is submitted */
    for (int i = 0; i < n; i++) {
        struct verr e;
        struct hd_api_op *op = NULL;
        struct batch_op *bo;

        if (!is_object(&items[i])) {
            e.code = "invalid_json";
            e.field = NULL;
            e._field[0] = '\0';
            snprintf(e.msg, sizeof(e.msg), "item must be a JSON object");
        } else {
            /* each item's own key: the header would make them all one */
            const char *saved = r->idempotency_key;
            r->idempotency_key = NULL;
            op = send_op(r, items[i].p, items[i].n, NULL, &e);
            r->idempotency_key = saved;
        }
        if (op == NULL) {
            struct hd_jbuf *res = result_start(b, i, 400);
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
        bo->index = i;
        bo->op.call.done = on_batch_item;
        hd_call_submit(&bo->op.call);
    }
    free(items);
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
