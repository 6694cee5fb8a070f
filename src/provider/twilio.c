/*
 * twilio.c: the "twilio" provider: one SMS per job through Twilio's
 * Programmable Messaging API (POST /2010-04-01/Accounts/{sid}/Messages
 * .json, basic auth, form-encoded) over the worker's HTTP/1.1 pool; and
 * the X-Twilio-Signature check for status callbacks. create() runs on the
 * main thread, send() on the worker that owns the job. Knows nothing of
 * the store or of HTTP ingest: outcomes go back through job->done.
 */
#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/codec.h"
#include "core/herald.h"
#include "provider/provider.h"
#include "provider/rest.h"
#include "provider/sms.h"
#include "provider/twilio.h"

#define TWILIO_DEFAULT_URL "https://api.twilio.com"
#define TWILIO_MAX_SEGMENTS 10

struct twilio {
    struct hd_rest rest;
    char *path;     /* .../Accounts/{sid}/Messages.json */
    char *headers;  /* Authorization, Content-Type, Accept */
    char *from;     /* or NULL */
    char *service;  /* MessagingServiceSid, or NULL */
    char *callback; /* StatusCallback, or NULL */
    int max_segments;
};

struct twilio_req {
    struct hd_rest_req r; /* first */
    struct twilio *t;
};

static const struct hd_provider_setting settings[] = {
    {"account_sid", 1, 1},
    {"auth_token", 1, 1},
    {"from", 1, 0},
    {"messaging_service_sid", 1, 0},
    {"status_callback", 1, 0},
    {"max_segments", 1, 0},
    HD_REST_SETTINGS,
    {NULL, 0, 0},
};

/* ==== the signature ==== */

static int
param_cmp(const void *a, const void *b)
{
    const struct hd_twilio_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void
hd_twilio_signature(const char *auth_token, const char *url,
                    struct hd_twilio_param *params, size_t n, char out[29])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t len = strlen(url), off;
    char *msg;

    if (n > 1)
        qsort(params, n, sizeof(*params), param_cmp);
    for (size_t i = 0; i < n; i++)
        len += strlen(params[i].name) + strlen(params[i].value);
    msg = hd_alloc(len + 1);
    off = strlen(url);
    memcpy(msg, url, off);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(params[i].name), b = strlen(params[i].value);
        memcpy(msg + off, params[i].name, a);
        memcpy(msg + off + a, params[i].value, b);
        off += a + b;
    }
    HMAC(EVP_sha1(), auth_token, (int)strlen(auth_token), (unsigned char *)msg,
         len, mac, &maclen);
    free(msg);
    hd_base64_encode(mac, maclen, out, 0);
}

int
hd_twilio_signature_valid(const char *auth_token, const char *url,
                          struct hd_twilio_param *params, size_t n,
                          const char *signature)
{
    char want[29];

    if (signature == NULL || strlen(signature) != 28)
        return 0;
    hd_twilio_signature(auth_token, url, params, n, want);
    return CRYPTO_memcmp(want, signature, 28) == 0;
}

/* ==== settings ==== */

static int
twilio_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK ||
        hd_rest_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    if (!hd_conf_kv_find(pc, "from") ==
        !hd_conf_kv_find(pc, "messaging_service_sid")) {
        snprintf(err, errlen,
                 "provider \"%s\" of type twilio needs either \"from\" or "
                 "\"messaging_service_sid\" in %s:%d",
                 pc->name, pc->file, pc->line);
        return HD_ERROR;
    }
    if ((kv = hd_conf_kv_find(pc, "max_segments"))) {
        char *end;
        long n = strtol(kv->args[0], &end, 10);
        if (*end || end == kv->args[0] || n < 1 || n > 100) {
            snprintf(err, errlen,
                     "invalid value \"%s\" in \"max_segments\" directive, "
                     "expected 1..100 in %s:%d",
                     kv->args[0], kv->file, kv->line);
            return HD_ERROR;
        }
    }
    if ((kv = hd_conf_kv_find(pc, "status_callback")) &&
        strncmp(kv->args[0], "https://", 8) != 0 &&
        strncmp(kv->args[0], "http://", 7) != 0) {
        snprintf(err, errlen,
                 "invalid value \"%s\" in \"status_callback\" directive, "
                 "expected a URL in %s:%d",
                 kv->args[0], kv->file, kv->line);
        return HD_ERROR;
    }
    return HD_OK;
}

static int
twilio_create(struct hd_provider *p, const struct hd_provider_conf *pc,
              char *err, size_t errlen)
{
    struct twilio *t;
    const char *sid, *token, *s;
    char *cred, *b64, buf[512];
    size_t n;

    if (twilio_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    t = hd_calloc(sizeof(*t));
    if (hd_rest_init(&t->rest, pc, TWILIO_DEFAULT_URL, err, errlen) != HD_OK) {
        free(t);
        return HD_ERROR;
    }
    sid = hd_rest_arg(pc, "account_sid");
    token = hd_rest_arg(pc, "auth_token");
    snprintf(buf, sizeof(buf), "%s/2010-04-01/Accounts/%s/Messages.json",
             t->rest.prefix, sid);
    t->path = hd_strdup(buf);
    n = strlen(sid) + 1 + strlen(token);
    cred = hd_alloc(n + 1);
    snprintf(cred, n + 1, "%s:%s", sid, token);
    b64 = hd_alloc((n + 2) / 3 * 4 + 1);
    hd_base64_encode((unsigned char *)cred, n, b64, 0);
    OPENSSL_cleanse(cred, n);
    free(cred);
    n = strlen(b64) + 128;
    t->headers = hd_alloc(n);
    snprintf(t->headers, n,
             "Authorization: Basic %s\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n"
             "Accept: application/json\r\n",
             b64);
    free(b64);
    if ((s = hd_rest_arg(pc, "from")))
        t->from = hd_strdup(s);
    if ((s = hd_rest_arg(pc, "messaging_service_sid")))
        t->service = hd_strdup(s);
    if ((s = hd_rest_arg(pc, "status_callback")))
        t->callback = hd_strdup(s);
    t->max_segments =
        (s = hd_rest_arg(pc, "max_segments")) ? atoi(s) : TWILIO_MAX_SEGMENTS;
    p->data = t;
    return HD_OK;
}

static void
twilio_destroy(struct hd_provider *p)
{
    struct twilio *t = p->data;

    if (t == NULL)
        return;
    hd_rest_free(&t->rest);
    free(t->path);
    if (t->headers)
        OPENSSL_cleanse(t->headers, strlen(t->headers));
    free(t->headers);
    free(t->from);
    free(t->service);
    free(t->callback);
    free(t);
}

/* ==== sending ==== */

int
hd_twilio_classify(const struct hd_http1_response *r, int64_t *retry_after,
                   char *detail, size_t len)
{
    json_t *body = json_loadb(r->body, r->len, 0, NULL);
    int code = (int)json_integer_value(json_object_get(body, "code"));
    const char *msg = json_string_value(json_object_get(body, "message"));
    int outcome;

    *retry_after = 0;
    if (r->status == 201 || r->status == 200) {
        const char *sid = json_string_value(json_object_get(body, "sid"));
        /* an empty sid is no message id: callbacks could not match it */
        snprintf(detail, len, "%s", sid && *sid ? sid : "accepted");
        outcome = HD_OUT_DELIVERED;
    } else if (r->status == 429 || code == 20429 || r->status >= 500) {
        snprintf(detail, len, "twilio %d %d%s%s", r->status, code,
                 msg ? ": " : "", msg ? msg : "");
        *retry_after = hd_rest_retry_after(r);
        outcome = HD_OUT_RETRY;
    } else if (code == 21610) {
        /* replied STOP: the number takes no SMS until START */
        snprintf(detail, len, "21610 unsubscribed");
        outcome = HD_OUT_DEAD_ADDRESS;
    } else if (code == 21211) {
        snprintf(detail, len, "21211 invalid number");
        outcome = HD_OUT_FAILED;
    } else if (r->status == 401 || r->status == 403 || code == 20003) {
        /* credentials: a fix and a reload must not lose the message */
        snprintf(detail, len, "20003 authentication failed");
        *retry_after = 60000;
        outcome = HD_OUT_RETRY;
    } else {
        snprintf(detail, len, "%d %s", code ? code : r->status,
                 msg ? msg : "rejected");
        outcome = HD_OUT_FAILED;
    }
    json_decref(body);
    return outcome;
}

static void
on_response(void *arg, const struct hd_http1_response *r, const char *error)
{
    hd_rest_finish(arg, "twilio", r, error, hd_twilio_classify);
}

static void
twilio_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct twilio *t = p->data;
    struct hd_rest_worker *rw;
    struct twilio_req *q;
    struct evbuffer *form;
    const char *body = json_string_value(json_object_get(j->content, "body"));
    char detail[128];
    int segs, enc;

    if (body == NULL || *body == '\0') {
        j->done(j, HD_OUT_FAILED, 0, "no body for the SMS");
        return;
    }
    segs = hd_sms_segments(body, &enc);
    if (segs < 0) {
        j->done(j, HD_OUT_FAILED, 0, "body is not UTF-8");
        return;
    }
    if (segs > t->max_segments) {
        snprintf(detail, sizeof(detail),
                 "body takes %d %s segments, max_segments is %d", segs,
                 hd_sms_encoding_name(enc), t->max_segments);
        j->done(j, HD_OUT_FAILED, 0, detail);
        return;
    }
    if (!hd_sms_e164_valid(j->to)) {
        j->done(j, HD_OUT_FAILED, 0, "21211 invalid number");
        return;
    }
    rw = hd_rest_worker(&t->rest, p, w);
    if (rw == NULL) {
        j->done(j, HD_OUT_RETRY, 1000, "twilio: no connection pool");
        return;
    }

    form = evbuffer_new();
    hd_form_add(form, "To", j->to);
    if (t->service)
        hd_form_add(form, "MessagingServiceSid", t->service);
    else
        hd_form_add(form, "From", t->from);
    hd_form_add(form, "Body", body);
    if (t->callback) {
        /* the delivery id in the URL: the callback needs no lookup */
        char url[1024];
        snprintf(url, sizeof(url), "%s%sdelivery=%s", t->callback,
                 strchr(t->callback, '?') ? "&" : "?", j->delivery_id);
        hd_form_add(form, "StatusCallback", url);
    }
    q = hd_rest_req_new(rw, j, sizeof(*q));
    q->t = t;
    if (hd_http1_request(rw->pool, "POST", t->path, t->headers,
                         evbuffer_pullup(form, -1), evbuffer_get_length(form),
                         on_response, q) != HD_OK) {
        hd_rest_req_free(q);
        j->done(j, HD_OUT_RETRY, 1000, "twilio: request queue full");
    }
    evbuffer_free(form);
}

static void
twilio_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    hd_rest_exit_worker(&p->worker_data[w->id]);
}

const struct hd_provider_type hd_twilio_provider = {
    "twilio",       NULL,        twilio_check,
    twilio_create,  twilio_send, twilio_exit_worker,
    twilio_destroy, NULL,        NULL,
};
