/*
 * vonage.c: the "vonage" provider: one SMS per job through the Vonage
 * (Nexmo) SMS API (POST /sms/json, form-encoded, api_key and api_secret
 * in the form) over the worker's HTTP/1.1 pool. The answer is 200 even
 * for errors: every messages[].status is read (protocols.md 4.2).
 * create() on the main thread, send() on the worker that owns the job.
 */
#include <stdio.h>
#include <openssl/crypto.h>

#include "core/herald.h"
#include "provider/provider.h"
#include "provider/rest.h"
#include "provider/sms.h"
#include "provider/vonage.h"

#define VONAGE_DEFAULT_URL "https://rest.nexmo.com"
#define VONAGE_MAX_SEGMENTS 10

struct vonage {
    struct hd_rest rest;
    char *path;
    char *key, *secret, *from;
    char *callback; /* DLR webhook, or NULL */
    int max_segments;
};

static const struct hd_provider_setting settings[] = {
    {"api_key", 1, 1},  {"api_secret", 1, 1},   {"from", 1, 1},
    {"callback", 1, 0}, {"max_segments", 1, 0}, HD_REST_SETTINGS,
    {NULL, 0, 0},
};

static int
vonage_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK ||
        hd_rest_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
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
    return HD_OK;
}

static int
vonage_create(struct hd_provider *p, const struct hd_provider_conf *pc,
              char *err, size_t errlen)
{
    struct vonage *v;
    const char *s;
    char buf[512];

    if (vonage_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    v = hd_calloc(sizeof(*v));
    if (hd_rest_init(&v->rest, pc, VONAGE_DEFAULT_URL, err, errlen) != HD_OK) {
        free(v);
        return HD_ERROR;
    }
    snprintf(buf, sizeof(buf), "%s/sms/json", v->rest.prefix);
    v->path = hd_strdup(buf);
    v->key = hd_strdup(hd_rest_arg(pc, "api_key"));
    v->secret = hd_strdup(hd_rest_arg(pc, "api_secret"));
    v->from = hd_strdup(hd_rest_arg(pc, "from"));
    if ((s = hd_rest_arg(pc, "callback")))
        v->callback = hd_strdup(s);
    v->max_segments =
        (s = hd_rest_arg(pc, "max_segments")) ? atoi(s) : VONAGE_MAX_SEGMENTS;
    p->data = v;
    return HD_OK;
}

static void
vonage_destroy(struct hd_provider *p)
{
    struct vonage *v = p->data;

    if (v == NULL)
        return;
    hd_rest_free(&v->rest);
    OPENSSL_cleanse(v->secret, strlen(v->secret));
    free(v->path);
    free(v->key);
    free(v->secret);
    free(v->from);
    free(v->callback);
    free(v);
}

/* The outcome of a message part's status (protocols.md 4.2 table). */
static int
status_outcome(int status, int64_t *retry_after)
{
    switch (status) {
    case 0:
        return HD_OUT_DELIVERED;
    case 1: /* throttled */
        *retry_after = 1000;
        return HD_OUT_RETRY;
    case 5: /* internal error */
        return HD_OUT_RETRY;
    case 4:  /* invalid credentials */
    case 8:  /* account barred */
    case 9:  /* no credit */
    case 14: /* invalid signature */
        /* account trouble: another provider, or a fix, may save it */
        *retry_after = 60000;
        return HD_OUT_RETRY;
    case 7:  /* number barred */
    case 33: /* number de-activated */
        return HD_OUT_DEAD_ADDRESS;
    default:
        return HD_OUT_FAILED;
    }
}

/* The outcome of a 200: every message part's status. */
static int
parts_outcome(const struct hd_http1_response *r, int64_t *retry_after,
              char *detail, size_t len)
{
    json_t *body = json_loadb(r->body, r->len, 0, NULL), *m;
    json_t *msgs = json_object_get(body, "messages");
    int outcome = HD_OUT_DELIVERED, accepted = 0;
    const char *first_id = NULL, *bad_text = NULL;
    int bad_status = 0;
    size_t i;

    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        json_decref(body);
        snprintf(detail, len, "vonage: no messages in the answer");
        return HD_OUT_RETRY;
    }
    json_array_foreach(msgs, i, m)
    {
        const char *st = json_string_value(json_object_get(m, "status"));
        int status = st ? atoi(st) : -1;
        if (status == 0) {
            const char *id =
                json_string_value(json_object_get(m, "message-id"));
            accepted++;
            if (first_id == NULL && id != NULL && *id != '\0')
                first_id = id; /* the first part that has one */
        } else if (outcome == HD_OUT_DELIVERED) {
            outcome = status_outcome(status, retry_after);
            bad_status = status;
            bad_text = json_string_value(json_object_get(m, "error-text"));
        }
    }
    if (outcome == HD_OUT_DELIVERED) {
        snprintf(detail, len, "%s", first_id ? first_id : "0");
        *retry_after = 0;
    } else {
        /* some parts went out: sending again would repeat them */
        if (accepted && outcome == HD_OUT_RETRY)
            outcome = HD_OUT_FAILED;
        snprintf(detail, len, "vonage %d %s", bad_status,
                 bad_text ? bad_text : "rejected");
    }
    json_decref(body);
    return outcome;
}

int
hd_vonage_classify(const struct hd_http1_response *r, int64_t *retry_after,
                   char *detail, size_t len)
{
    *retry_after = 0;
    if (r->status == 200)
        return parts_outcome(r, retry_after, detail, len);
    snprintf(detail, len, "vonage: HTTP %d", r->status);
    if (r->status == 429 || r->status >= 500) {
        *retry_after = hd_rest_retry_after(r);
        return HD_OUT_RETRY;
    }
    return HD_OUT_FAILED;
}

static void
on_response(void *arg, const struct hd_http1_response *r, const char *error)
{
    hd_rest_finish(arg, "vonage", r, error, hd_vonage_classify);
}

static void
vonage_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct vonage *v = p->data;
    struct hd_rest_worker *rw;
    struct hd_rest_req *q;
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
    if (segs > v->max_segments) {
        snprintf(detail, sizeof(detail),
                 "body takes %d %s segments, max_segments is %d", segs,
                 hd_sms_encoding_name(enc), v->max_segments);
        j->done(j, HD_OUT_FAILED, 0, detail);
        return;
    }
    if (!hd_sms_e164_valid(j->to)) {
        j->done(j, HD_OUT_FAILED, 0, "vonage 3 invalid number");
        return;
    }
    rw = hd_rest_worker(&v->rest, p, w);
    if (rw == NULL) {
        j->done(j, HD_OUT_RETRY, 1000, "vonage: no connection pool");
        return;
    }
    form = evbuffer_new();
    hd_form_add(form, "api_key", v->key);
    hd_form_add(form, "api_secret", v->secret);
    hd_form_add(form, "from", v->from);
    hd_form_add(form, "to", j->to + 1); /* E.164 without the '+' */
    hd_form_add(form, "text", body);
    hd_form_add(form, "type", enc == HD_SMS_UCS2 ? "unicode" : "text");
    hd_form_add(form, "client-ref", j->delivery_id);
    if (v->callback)
        hd_form_add(form, "callback", v->callback);
    q = hd_rest_req_new(rw, j, sizeof(*q));
    if (hd_http1_request(rw->pool, "POST", v->path,
                         "Content-Type: application/x-www-form-urlencoded\r\n"
                         "Accept: application/json\r\n",
                         evbuffer_pullup(form, -1), evbuffer_get_length(form),
                         on_response, q) != HD_OK) {
        hd_rest_req_free(q);
        j->done(j, HD_OUT_RETRY, 1000, "vonage: request queue full");
    }
    evbuffer_free(form);
}

static void
vonage_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    hd_rest_exit_worker(&p->worker_data[w->id]);
}

const struct hd_provider_type hd_vonage_provider = {
    "vonage",       NULL,        vonage_check,
    vonage_create,  vonage_send, vonage_exit_worker,
    vonage_destroy, NULL,        NULL,
};
