/*
 * api_users.c: PUT and GET /v1/users/{user_id}. Validation happens on the
 * accepting worker; the owner of the user's shard reads and stages.
 */
#include <ctype.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "http/api.h"
#include "send/users.h"

static int
shard_of(const char *user_id)
{
    return hd_shard_of(user_id, strlen(user_id), hd_cycle.nshards);
}

/* Returns the offending field, or NULL when fields are valid. */
static const char *
validate_user(json_t *in, char *msg, size_t len)
{
    const char *k;
    json_t *v;

    json_object_foreach(in, k, v)
    {
        const char *s;
        if (strcmp(k, "email") != 0 && strcmp(k, "phone") != 0
            && strcmp(k, "locale") != 0 && strcmp(k, "timezone") != 0) {
            snprintf(msg, len, "unknown field \"%s\"", k);
            return k;
        }
        if (json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            snprintf(msg, len, "\"%s\" must be a string", k);
            return k;
        }
        s = json_string_value(v);
        if (strcmp(k, "email") == 0) {
            const char *at = strchr(s, '@');
            size_t n = strlen(s);
            int bad = n < 3 || n > 254 || at == NULL || at == s
                      || strchr(at + 1, '@') || at[1] == '\0'
                      || strchr(at + 1, '.') == NULL;
            for (const char *p = s; *p && !bad; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<'
                    || *p == '>' || *p == ',' || *p == ';')
                    bad = 1;
            if (bad) {
                snprintf(msg, len,
                         "\"email\" must be an address like "
                         "name@example.com");
                return k;
            }
        } else if (strcmp(k, "phone") == 0) {
            size_t n = strlen(s);
            int bad = s[0] != '+' || n < 9 || n > 16 || s[1] == '0';
            for (size_t i = 1; i < n && !bad; i++)
                if (!isdigit((unsigned char)s[i]))
                    bad = 1;
            if (bad) {
                snprintf(msg, len,
                         "\"phone\" must be E.164: \"+\" and 8 to 15 digits");
                return k;
            }
        } else if (strlen(s) > 64) {
            snprintf(msg, len, "\"%s\" is longer than 64 characters", k);
            return k;
        }
    }
    return NULL;
}

static void
exec_put(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *out;
    int created = hd_user_put(hd_call_shard(c), op->user_id, op->in, &out);

    hd_api_op_finish_durable(op, created ? 201 : 200,
                             json_pack("{s:o}", "user", out));
}

static int
check_user_id(struct hd_req *r)
{
    if (!hd_user_id_valid(r->params[0])) {
        hd_http_error(r, 400, "invalid_field", "user_id",
                      "user id must be 1-128 characters of A-Z a-z 0-9 "
                      ". _ : @ -");
        return HD_ERROR;
    }
    return HD_OK;
}

void
hd_api_user_put(struct hd_req *r)
{
    struct hd_api_op *op;
    const char *field;
    char msg[256];
    json_t *in;

    if (check_user_id(r) != HD_OK || (in = hd_api_body(r)) == NULL)
        return;
    field = validate_user(in, msg, sizeof(msg));
    if (field != NULL) {
        hd_http_error(r, 400, "invalid_field", field, "%s", msg);
        json_decref(in);
        return;
    }
    op = hd_api_op_new(r, shard_of(r->params[0]), exec_put);
    op->in = in;
    op->user_id = hd_strdup(r->params[0]);
    hd_call_submit(&op->call);
}

static void
exec_get(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *u = hd_user_get(hd_call_shard(c), op->user_id);

    if (u == NULL) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "user_id",
                                      "unknown user \"%s\"", op->user_id));
        return;
    }
    /* it may have been read from a group still being committed */
    hd_api_op_finish_durable(op, 200, json_pack("{s:o}", "user", u));
}

void
hd_api_user_get(struct hd_req *r)
{
    struct hd_api_op *op;

    if (check_user_id(r) != HD_OK)
        return;
    op = hd_api_op_new(r, shard_of(r->params[0]), exec_get);
    op->user_id = hd_strdup(r->params[0]);
    hd_call_submit(&op->call);
}
