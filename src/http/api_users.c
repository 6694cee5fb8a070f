/*
 * api_users.c: /v1/users/{user_id}[/devices|/preferences]. Validation
 * happens on the accepting worker; the owner of the user's shard reads
 * and stages, and answers after the group commit when it wrote.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "http/api.h"
#include "http/validate.h"
#include "send/users.h"

/* An op for the user named in the path, or NULL (answered 400). */
static struct hd_api_op *
user_op(struct hd_req *r, hd_call_fn exec)
{
    const char *id = r->params[0];
    struct hd_api_op *op;

    if (!hd_user_id_valid(id)) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return NULL;
    }
    op = hd_api_op_new(r, hd_shard_of(id, strlen(id), hd_cycle.nshards), exec);
    op->user_id = hd_strdup(id);
    return op;
}

static json_t *
unknown_user(struct hd_api_op *op)
{
    return hd_api_error("not_found", "user_id", "unknown user \"%s\"",
                        op->user_id);
}

/* Whether op's user exists; if not, answers 404 and returns 0. */
static int
user_known(struct hd_api_op *op, struct hd_shard *s)
{
    json_t *u = hd_user_load(s, op->user_id);

    if (u == NULL) {
        hd_api_op_finish(op, 404, unknown_user(op));
        return 0;
    }
    json_decref(u);
    return 1;
}

/* ==== users ==== */

static const char *
validate_user(json_t *in, int patch, char *msg, size_t len)
{
    static const char *const keys[] = {"email", "phone", "locale", "timezone",
                                       NULL};
    const char *(*check[])(const char *) = {hd_valid_email, hd_valid_phone,
                                            hd_valid_locale, hd_valid_timezone};
    const char *k;

    if ((k = hd_valid_keys(in, keys)) != NULL) {
        snprintf(msg, len, "unknown field \"%s\"", k);
        return k;
    }
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(in, keys[i]);
        const char *e;
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            snprintf(msg, len, "\"%s\" must be a string%s", keys[i],
                     patch ? " or null" : "");
            return keys[i];
        }
        if ((e = check[i](json_string_value(v))) != NULL) {
            snprintf(msg, len, "%s", e);
            return keys[i];
        }
    }
    return NULL;
}

static void
exec_put(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *out;
    int rc;

    if (hd_api_op_busy(op))
        return;
    rc = hd_user_put(hd_call_shard(c), op->user_id, op->in, 0, &out);

    hd_api_op_finish_durable(op, rc == 1 ? 201 : 200,
                             json_pack("{s:o}", "user", out));
}

static void
exec_patch(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *out;
    int rc = hd_user_put(hd_call_shard(c), op->user_id, op->in, 1, &out);

    if (rc == HD_DECLINED) {
        hd_api_op_finish(op, 404, unknown_user(op));
        return;
    }
    hd_api_op_finish_durable(op, 200, json_pack("{s:o}", "user", out));
}

static void
user_write(struct hd_req *r, hd_call_fn exec, int patch)
{
    struct hd_api_op *op;
    const char *field;
    char msg[256];
    json_t *in;

    if (!hd_user_id_valid(r->params[0])) {
        user_op(r, exec); /* answers the 400 */
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    if ((field = validate_user(in, patch, msg, sizeof(msg))) != NULL) {
        hd_http_error(r, 400, "invalid_field", field, "%s", msg);
        json_decref(in);
        return;
    }
    op = user_op(r, exec);
    op->in = in;
    hd_call_submit(&op->call);
}

void
hd_api_user_put(struct hd_req *r)
{
    user_write(r, exec_put, 0);
}

void
hd_api_user_patch(struct hd_req *r)
{
    user_write(r, exec_patch, 1);
}

static void
exec_get(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *u = hd_user_get(hd_call_shard(c), op->user_id);

    if (u == NULL) {
        hd_api_op_finish(op, 404, unknown_user(op));
        return;
    }
    /* it may have been read from a group still being committed */
    hd_api_op_finish_durable(op, 200, json_pack("{s:o}", "user", u));
}

void
hd_api_user_get(struct hd_req *r)
{
    struct hd_api_op *op = user_op(r, exec_get);
    if (op)
        hd_call_submit(&op->call);
}

static void
exec_delete(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *out;

    if (hd_user_erase(hd_call_shard(c), op->user_id, &out) != HD_OK) {
        hd_api_op_finish(op, 404, unknown_user(op));
        return;
    }
    hd_api_op_finish_durable(op, 200, out);
}

void
hd_api_user_delete(struct hd_req *r)
{
    struct hd_api_op *op = user_op(r, exec_delete);
    if (op)
        hd_call_submit(&op->call);
}

/* ==== devices ==== */

static void
exec_device_post(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *out;
    int rc;

    if (hd_api_op_busy(op))
        return;
    rc = hd_device_register(hd_call_shard(c), op->user_id, op->in, &out);

    if (rc == HD_DECLINED) {
        hd_api_op_finish(op, 404, unknown_user(op));
        return;
    }
    hd_api_op_finish_durable(op, rc == 1 ? 201 : 200,
                             json_pack("{s:o}", "device", out));
}

void
hd_api_device_post(struct hd_req *r)
{
    struct hd_api_op *op;
    const char *field, *msg;
    json_t *in;

    if (!hd_user_id_valid(r->params[0])) {
        user_op(r, exec_device_post);
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    if ((msg = hd_valid_device(in, &field)) != NULL) {
        if (strcmp(msg, "unknown field") == 0)
            hd_http_error(r, 400, "invalid_field", field,
                          "unknown field \"%s\"", field);
        else
            hd_http_error(r, 400,
                          strstr(msg, "is required") ? "missing_field"
                                                     : "invalid_field",
                          field, "%s", msg);
        json_decref(in);
        return;
    }
    op = user_op(r, exec_device_post);
    op->in = in;
    hd_call_submit(&op->call);
}

static void
exec_devices_get(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);

    if (!user_known(op, s))
        return;
    hd_api_op_finish_durable(
        op, 200,
        json_pack("{s:o}", "devices", hd_devices_list(s, op->user_id)));
}

void
hd_api_devices_get(struct hd_req *r)
{
    struct hd_api_op *op = user_op(r, exec_devices_get);
    if (op)
        hd_call_submit(&op->call);
}

static void
exec_device_delete(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;

    if (hd_device_remove(hd_call_shard(c), op->user_id, op->id) != HD_OK) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "device_id",
                                      "user \"%s\" has no device \"%s\"",
                                      op->user_id, op->id));
        return;
    }
    hd_api_op_finish_durable(op, 200, json_pack("{s:b}", "deleted", 1));
}

void
hd_api_device_delete(struct hd_req *r)
{
    struct hd_api_op *op = user_op(r, exec_device_delete);
    if (op) {
        op->id = hd_strdup(r->params[1]);
        hd_call_submit(&op->call);
    }
}

/* ==== preferences ==== */

static const char *
validate_prefs(json_t *in, char *msg, size_t len)
{
    static const char *const keys[] = {"channels", "categories", NULL};
    const char *k, *ck;
    json_t *v, *cv;

    if ((k = hd_valid_keys(in, keys)) != NULL) {
        snprintf(msg, len, "unknown field \"%s\"", k);
        return k;
    }
    v = json_object_get(in, "channels");
    if (v != NULL) {
        if (!json_is_object(v)) {
            snprintf(msg, len, "\"channels\" must be an object of booleans");
            return "channels";
        }
        json_object_foreach(v, k, cv)
        {
            if (hd_channel_parse(k, strlen(k)) < 0 || !json_is_boolean(cv)) {
                snprintf(msg, len,
                         "\"channels.%s\": channels are push, sms, email, "
                         "web, each true or false",
                         k);
                return "channels";
            }
        }
    }
    v = json_object_get(in, "categories");
    if (v != NULL) {
        if (!json_is_object(v)) {
            snprintf(msg, len, "\"categories\" must be an object");
            return "categories";
        }
        json_object_foreach(v, ck, cv)
        {
            if (strlen(ck) == 0 || strlen(ck) > 64 || !json_is_object(cv)) {
                snprintf(msg, len,
                         "\"categories.%s\" must be an object of channel "
                         "booleans",
                         ck);
                return "categories";
            }
            json_object_foreach(cv, k, v)
            {
                if (hd_channel_parse(k, strlen(k)) < 0 || !json_is_boolean(v)) {
                    snprintf(msg, len,
                             "\"categories.%s.%s\": channels are push, sms, "
                             "email, web, each true or false",
                             ck, k);
                    return "categories";
                }
            }
        }
    }
    return NULL;
}

static void
exec_prefs_put(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    json_t *p;

    if (!user_known(op, s))
        return;
    p = json_object();
    json_object_set_new(
        p, "channels",
        json_object_get(op->in, "channels")
            ? json_deep_copy(json_object_get(op->in, "channels"))
            : json_object());
    json_object_set_new(
        p, "categories",
        json_object_get(op->in, "categories")
            ? json_deep_copy(json_object_get(op->in, "categories"))
            : json_object());
    hd_prefs_put(s, op->user_id, p);
    hd_api_op_finish_durable(op, 200, json_pack("{s:o}", "preferences", p));
}

void
hd_api_prefs_put(struct hd_req *r)
{
    struct hd_api_op *op;
    const char *field;
    char msg[256];
    json_t *in;

    if (!hd_user_id_valid(r->params[0])) {
        user_op(r, exec_prefs_put);
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    if ((field = validate_prefs(in, msg, sizeof(msg))) != NULL) {
        hd_http_error(r, 400, "invalid_field", field, "%s", msg);
        json_decref(in);
        return;
    }
    op = user_op(r, exec_prefs_put);
    op->in = in;
    hd_call_submit(&op->call);
}

static void
exec_prefs_get(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);

    if (!user_known(op, s))
        return;
    hd_api_op_finish_durable(
        op, 200,
        json_pack("{s:o}", "preferences", hd_prefs_get(s, op->user_id)));
}

void
hd_api_prefs_get(struct hd_req *r)
{
    struct hd_api_op *op = user_op(r, exec_prefs_get);
    if (op)
        hd_call_submit(&op->call);
}
