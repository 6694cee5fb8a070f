/*
 * api_send.c: POST /v1/notifications (and the per-user path) and
 * GET /v1/notifications/{id}. The accepting worker validates; the owner
 * of the user's shard expands, stages and answers after the group commit.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "http/api.h"
#include "send/notify.h"
#include "send/users.h"

#define HD_TITLE_MAX 1024
#define HD_BODY_MAX 8192

static void
exec_send(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_notify_in in;
    struct hd_notify_err err;
    json_t *answer;

    in.user_id = op->user_id;
    in.key_id = op->key_id;
    in.channels = (unsigned)json_integer_value(json_object_get(op->in, "_ch"));
    in.content = json_object_get(op->in, "content");
    if (hd_notify_accept(hd_call_shard(c), &in, &answer, &err) != HD_OK) {
        hd_api_op_finish(op, err.status,
                         hd_api_error(err.code, err.field, "%s", err.message));
        return;
    }
    hd_api_op_finish_durable(op, 202, answer);
}

/* Checks the body; returns the offending field or NULL. Fills channels
 * and content. */
static const char *
validate_send(json_t *in, const char *path_user, unsigned *channels,
              json_t **content, char *msg, size_t len)
{
    const char *k;
    json_t *v, *uid = json_object_get(in, "user_id");

    json_object_foreach(in, k, v)
    {
        if (strcmp(k, "user_id") != 0 && strcmp(k, "channels") != 0
            && strcmp(k, "title") != 0 && strcmp(k, "body") != 0) {
            snprintf(msg, len, "unknown field \"%s\"", k);
            return k;
        }
    }
    if (path_user == NULL) {
        if (uid == NULL) {
            snprintf(msg, len, "\"user_id\" is required");
            return "user_id";
        }
        if (!json_is_string(uid) || !hd_user_id_valid(json_string_value(uid))) {
            snprintf(msg, len,
                     "\"user_id\" must be 1-128 characters of A-Z a-z 0-9 "
                     ". _ : @ -");
            return "user_id";
        }
    } else if (uid != NULL && (!json_is_string(uid)
                               || strcmp(json_string_value(uid), path_user))) {
        snprintf(msg, len, "\"user_id\" differs from the user in the path");
        return "user_id";
    }

    *channels = 0;
    v = json_object_get(in, "channels");
    if (v != NULL) {
        size_t i;
        json_t *ch;
        if (!json_is_array(v) || json_array_size(v) == 0) {
            snprintf(msg, len,
                     "\"channels\" must be a non-empty array of push, sms, "
                     "email, web");
            return "channels";
        }
        json_array_foreach(v, i, ch)
        {
            int c = json_is_string(ch)
                        ? hd_channel_parse(json_string_value(ch),
                                           json_string_length(ch))
                        : -1;
            if (c < 0) {
                snprintf(msg, len,
                         "\"channels\" item %zu is not one of push, sms, "
                         "email, web",
                         i);
                return "channels";
            }
            *channels |= 1u << c;
        }
    }

    *content = json_object();
    {
        static const struct {
            const char *name;
            size_t max;
        } fields[] = {{"title", HD_TITLE_MAX}, {"body", HD_BODY_MAX}};
        for (size_t i = 0; i < HD_NELEMS(fields); i++) {
            v = json_object_get(in, fields[i].name);
            if (v == NULL)
                continue;
            if (!json_is_string(v)) {
                snprintf(msg, len, "\"%s\" must be a string", fields[i].name);
                return fields[i].name;
            }
            if (json_string_length(v) > fields[i].max) {
                snprintf(msg, len, "\"%s\" is longer than %zu bytes",
                         fields[i].name, fields[i].max);
                return fields[i].name;
            }
            json_object_set(*content, fields[i].name, v);
        }
    }
    if (json_object_get(*content, "body") == NULL) {
        snprintf(msg, len, "\"body\" is required");
        return "body";
    }
    return NULL;
}

void
hd_api_send(struct hd_req *r)
{
    const char *path_user = r->nparams ? r->params[0] : NULL;
    const char *field, *user_id;
    struct hd_api_op *op;
    json_t *in, *content = NULL;
    unsigned channels;
    char msg[256];

    if (path_user && !hd_user_id_valid(path_user)) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    field = validate_send(in, path_user, &channels, &content, msg,
                          sizeof(msg));
    if (field != NULL) {
        hd_http_error(r, 400,
                      strstr(msg, "is required") ? "missing_field"
                                                 : "invalid_field",
                      field, "%s", msg);
        json_decref(content);
        json_decref(in);
        return;
    }
    user_id = path_user ? path_user
                        : json_string_value(json_object_get(in, "user_id"));
    op = hd_api_op_new(r, hd_shard_of(user_id, strlen(user_id),
                                      hd_cycle.nshards),
                       exec_send);
    op->user_id = hd_strdup(user_id);
    op->in = json_pack("{s:o, s:i}", "content", content, "_ch", channels);
    json_decref(in);
    hd_call_submit(&op->call);
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
    const char *id = r->params[0];
    int shard = hd_store_id_shard(id, strlen(id));
    struct hd_api_op *op;

    if (shard < 0 || shard >= hd_cycle.nshards || strlen(id) > 19) {
        hd_http_error(r, 404, "not_found", "id",
                      "unknown notification \"%s\"", id);
        return;
    }
    op = hd_api_op_new(r, shard, exec_status);
    op->id = hd_strdup(id);
    hd_call_submit(&op->call);
}
