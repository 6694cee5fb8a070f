/*
 * api_callbacks.c: what outside parties call without an API key, each
 * proven another way: one-click unsubscribe links (signed tokens, RFC
 * 8058) and Twilio status callbacks (X-Twilio-Signature). Worker thread;
 * the recording happens on the owner of the user's shard.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/shard.h"
#include "core/sign.h"
#include "core/time.h"
#include "http/api.h"
#include "provider/provider.h"
#include "provider/twilio.h"
#include "send/delivery.h"
#include "send/events.h"
#include "send/events.h"
#include "send/notify.h"
#include "send/users.h"

#define UNSUBSCRIBE_MAX_AGE_S (180LL * 86400)

/* ==== one-click unsubscribe ==== */

/* The user of a valid token, in user (size HD_USER_ID_MAX + 1), and the
 * delivery the link came in (did, 48 bytes; "" if none). Payload:
 * unsub|USER|email|ISSUED[|DELIVERY] */
static int
unsubscribe_user(const char *token, char *user, size_t size, char *did)
{
    char payload[300], *p, *bar;
    long long issued;

    if (hd_sign_verify(token, payload, sizeof(payload)) != HD_OK ||
        strncmp(payload, "unsub|", 6) != 0)
        return HD_DECLINED;
    p = payload + 6;
    bar = strchr(p, '|');
    if (bar == NULL || (size_t)(bar - p) >= size ||
        strncmp(bar, "|email|", 7) != 0)
        return HD_DECLINED;
    issued = atoll(bar + 7);
    if (hd_now_ms() / 1000 - issued > UNSUBSCRIBE_MAX_AGE_S)
        return HD_DECLINED;
    {
        const char *d = strchr(bar + 7, '|');
        snprintf(did, 48, "%s", d && strlen(d + 1) < 48 ? d + 1 : "");
    }
    memcpy(user, p, (size_t)(bar - p));
    user[bar - p] = '\0';
    return hd_user_id_valid(user) ? HD_OK : HD_DECLINED;
}

static void
exec_unsubscribe(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    json_t *u = hd_user_load(s, op->user_id);

    /* a repeat, or a user erased since, answers the same: idempotent */
    if (u != NULL) {
        json_t *shared = op->id ? hd_delivery_get(s, op->id) : NULL;
        hd_prefs_set_channel(s, op->user_id, HD_CH_EMAIL, 0);
        if (shared != NULL) {
            /* the email whose link it was shows it on its timeline */
            json_t *d = hd_delivery_thaw(shared);
            hd_event_emit(s, d, "unsubscribed", "one-click");
            hd_delivery_put(s, op->id, d);
            json_decref(d);
        }
        json_decref(shared);
    }
    json_decref(u);
    hd_api_op_finish_durable(
        op, 200,
        json_pack("{s:b, s:s}", "unsubscribed", 1, "channel", "email"));
}

void
hd_api_unsubscribe(struct hd_req *r)
{
    char user[HD_USER_ID_MAX + 1], did[48];
    struct hd_api_op *op;

    if (unsubscribe_user(r->params[0], user, sizeof(user), did) != HD_OK) {
        hd_http_error(r, 404, "not_found", "token",
                      "this unsubscribe link is not valid or has expired");
        return;
    }
    if (r->method == HD_M_GET) {
        /* link scanners follow GETs: only a POST unsubscribes (RFC 8058) */
        static const char page[] =
            "<!doctype html><html><head><meta charset=\"utf-8\">"
            "<title>Unsubscribe</title></head><body>"
            "<form method=\"post\"><p>Stop these emails?</p>"
            "<button type=\"submit\" name=\"List-Unsubscribe\" "
            "value=\"One-Click\">Unsubscribe</button></form></body></html>";
        hd_http_reply_text(r, 200, "text/html; charset=utf-8", page,
                           sizeof(page) - 1);
        return;
    }
    op = hd_api_op_new(r, hd_shard_of(user, strlen(user), hd_cycle.nshards),
                       exec_unsubscribe);
    op->user_id = hd_strdup(user);
    /* the delivery must live in the user's shard: it names the user */
    if (did[0] && hd_store_id_shard(did, strlen(did)) == op->call.shard)
        op->id = hd_strdup(did);
    hd_call_submit(&op->call);
}

/* ==== Twilio status callbacks ==== */

static int
unhex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes a form-urlencoded string in place. */
static void
form_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '+') {
            *o++ = ' ';
        } else if (*s == '%' && unhex(s[1]) >= 0 && unhex(s[2]) >= 0) {
            *o++ = (char)(unhex(s[1]) * 16 + unhex(s[2]));
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

#define MAX_PARAMS 64

/* Splits a form body (modified in place) into params; returns the count
 * or -1 when there are too many. */
static int
form_parse(char *body, struct hd_twilio_param *params)
{
    int n = 0;
    char *save = NULL;

    for (char *tok = strtok_r(body, "&", &save); tok;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (n == MAX_PARAMS)
            return -1;
        if (eq)
            *eq = '\0';
        form_decode(tok);
        if (eq)
            form_decode(eq + 1);
        params[n].name = tok;
        params[n].value = eq ? eq + 1 : "";
        n++;
    }
    return n;
}

static const char *
param(struct hd_twilio_param *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return p[i].value;
    return NULL;
}

static void
exec_twilio(struct hd_call *c)
{
    struct hd_api_op *op = (struct hd_api_op *)c;
    struct hd_shard *s = hd_call_shard(c);
    const char *status = json_string_value(json_object_get(op->in, "status"));
    const char *sid = json_string_value(json_object_get(op->in, "sid"));
    const char *code = json_string_value(json_object_get(op->in, "code"));
    json_t *shared = hd_delivery_get(s, op->id), *d;
    const char *known, *cur;
    char detail[128];

    if (shared == NULL) {
        hd_api_op_finish(op, 404,
                         hd_api_error("not_found", "delivery",
                                      "unknown delivery \"%s\"", op->id));
        return;
    }
    known = json_string_value(json_object_get(shared, "provider_message_id"));
    if (known != NULL && sid != NULL && strcmp(known, sid) != 0) {
        json_decref(shared);
        hd_api_op_finish(op, 409,
                         hd_api_error("conflict", "MessageSid",
                                      "MessageSid does not match the "
                                      "message sent for this delivery"));
        return;
    }
    d = hd_delivery_thaw(shared);
    json_decref(shared);
    cur = json_string_value(json_object_get(d, "status"));
    snprintf(detail, sizeof(detail), "twilio %s%s%s", status, code ? " " : "",
             code ? code : "");
    if (strcmp(status, "undelivered") == 0 || strcmp(status, "failed") == 0) {
        /* the carrier gave up after Twilio accepted it */
        json_object_set_new(d, "status", json_string("failed"));
        json_object_set_new(d, "reason", json_string("undelivered"));
        json_object_set_new(d, "last_error", json_string(detail));
        hd_event_emit(s, d, "failed", detail);
    } else if (strcmp(status, "delivered") == 0) {
        if (cur && strcmp(cur, "failed") != 0)
            json_object_set_new(d, "confirmed", json_true());
        hd_event_emit(s, d, "confirmed", detail);
    } else {
        hd_event_emit(s, d, "provider_status", detail); /* sent, queued */
    }
    hd_delivery_put(s, op->id, d);
    json_decref(d);
    hd_api_op_finish_durable(op, 204, NULL);
}

void
hd_api_twilio_callback(struct hd_req *r)
{
    struct hd_twilio_param params[MAX_PARAMS];
    const char *sig = r->twilio_signature, *account, *delivery = NULL;
    const struct hd_provider *tp = NULL;
    char url[2048], *body, *q;
    struct hd_api_op *op;
    int n, shard;

    body = hd_strndup(r->body ? r->body : "", r->body_len);
    n = form_parse(body, params);
    account = n > 0 ? param(params, n, "AccountSid") : NULL;
    /* the Twilio provider whose account sent it */
    for (int i = 0; account && i < hd_providers_count(); i++) {
        const struct hd_provider *p = hd_provider_at(i);
        const struct hd_conf_kv *kv;
        if (strcmp(p->type->name, "twilio") != 0)
            continue;
        kv = hd_conf_kv_find(p->conf, "account_sid");
        if (kv && strcmp(kv->args[0], account) == 0)
            tp = p;
    }
    if (tp == NULL || sig == NULL) {
        free(body);
        hd_http_error(r, 403, "forbidden", NULL,
                      "not a Twilio callback of a configured account");
        return;
    }
    {
        /* the URL Twilio requested: the configured callback, with the
         * query string as it arrived */
        const struct hd_conf_kv *cb =
            hd_conf_kv_find(tp->conf, "status_callback");
        const char *base = cb ? cb->args[0] : "";
        const char *qm = strchr(base, '?');
        int len = qm ? (int)(qm - base) : (int)strlen(base);
        snprintf(url, sizeof(url), "%.*s%s%s", len, base, r->query ? "?" : "",
                 r->query ? r->query : "");
    }
    if (!hd_twilio_signature_valid(
            hd_conf_kv_find(tp->conf, "auth_token")->args[0], url, params,
            (size_t)n, sig)) {
        free(body);
        hd_http_error(r, 403, "forbidden", "X-Twilio-Signature",
                      "the signature does not match");
        return;
    }
    /* delivery=ID in the query string */
    for (q = r->query; q && *q;) {
        if (strncmp(q, "delivery=", 9) == 0) {
            delivery = q + 9;
            break;
        }
        q = strchr(q, '&');
        if (q)
            q++;
    }
    {
        char id[48];
        size_t idlen = delivery ? strcspn(delivery, "&") : 0;
        const char *status = param(params, n, "MessageStatus");
        if (idlen == 0 || idlen >= sizeof(id) || status == NULL) {
            free(body);
            hd_http_error(r, 400, "invalid_field", "delivery",
                          "a delivery id and MessageStatus are required");
            return;
        }
        memcpy(id, delivery, idlen);
        id[idlen] = '\0';
        shard = hd_store_id_shard(id, idlen);
        if (shard < 0 || shard >= hd_cycle.nshards) {
            free(body);
            hd_http_error(r, 404, "not_found", "delivery",
                          "unknown delivery \"%s\"", id);
            return;
        }
        op = hd_api_op_new(r, shard, exec_twilio);
        op->id = hd_strdup(id);
        op->in = json_pack("{s:s}", "status", status);
        if (param(params, n, "MessageSid"))
            json_object_set_new(op->in, "sid",
                                json_string(param(params, n, "MessageSid")));
        if (param(params, n, "ErrorCode"))
            json_object_set_new(op->in, "code",
                                json_string(param(params, n, "ErrorCode")));
    }
    free(body);
    hd_call_submit(&op->call);
}
