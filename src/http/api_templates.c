/*
 * api_templates.c: /v1/templates (admin scope). Definitions are checked
 * on the accepting worker (every part must compile) and stored by the
 * owner of shard 0, which swaps the template set every worker renders
 * from.
 */
#include <stdio.h>

#include "core/herald.h"
#include "http/api.h"
#include "send/templates.h"

static int
name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > HD_TEMPLATE_NAME_MAX)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static void
exec_put(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    json_t *got = hd_template_get(op->id);
    int created = got == NULL, rc;

    json_decref(got);
    if (hd_api_op_busy(op))
        return;
    rc = hd_template_put(hd_call_shard(c), op->id, op->in);
    if (rc == HD_DECLINED) {
        hd_api_op_finish(op, 409,
                         hd_api_error("conflict", "name",
                                      "template \"%s\" is defined in the "
                                      "configuration",
                                      op->id));
        return;
    }
    got = hd_template_get(op->id);
    hd_api_op_finish_durable(op, created ? 201 : 200,
                             json_pack("{s:o}", "template", got));
}

void
hd_api_template_put(struct hd_req *r)
{
    struct hd_api_op *op;
    char err[512], field[128];
    json_t *in;

    if (!name_valid(r->params[0])) {
        hd_http_error(r, 400, "invalid_field", "name",
                      "a template name is 1-64 characters of A-Z a-z 0-9 "
                      "- _ .");
        return;
    }
    if ((in = hd_api_body(r)) == NULL)
        return;
    if (hd_template_validate(in, err, sizeof(err), field, sizeof(field)) !=
        HD_OK) {
        hd_http_error(r, 422, "invalid_template", field, "%s", err);
        json_decref(in);
        return;
    }
    op = hd_api_op_new(r, 0, exec_put);
    op->id = hd_strdup(r->params[0]);
    op->in = in;
    hd_call_submit(&op->call);
}

void
hd_api_template_get(struct hd_req *r)
{
    json_t *t = hd_template_get(r->params[0]);

    if (t == NULL) {
        hd_http_error(r, 404, "not_found", "name", "no template \"%s\"",
                      r->params[0]);
        return;
    }
    hd_http_reply(r, 200, json_pack("{s:o}", "template", t));
}

void
hd_api_templates_list(struct hd_req *r)
{
    hd_http_reply(r, 200, json_pack("{s:o}", "templates", hd_template_list()));
}

static void
exec_delete(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    int rc = hd_template_put(hd_call_shard(c), op->id, NULL);

    if (rc == HD_DECLINED) {
        hd_api_op_finish(op, 409,
                         hd_api_error("conflict", "name",
                                      "template \"%s\" is defined in the "
                                      "configuration: edit the file",
                                      op->id));
        return;
    }
    if (rc != HD_OK) {
        hd_api_op_finish(
            op, 404,
            hd_api_error("not_found", "name", "no template \"%s\"", op->id));
        return;
    }
    hd_api_op_finish_durable(op, 200, json_pack("{s:b}", "deleted", 1));
}

void
hd_api_template_delete(struct hd_req *r)
{
    struct hd_api_op *op = hd_api_op_new(r, 0, exec_delete);
    op->id = hd_strdup(r->params[0]);
    hd_call_submit(&op->call);
}
