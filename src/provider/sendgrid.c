/*
 * sendgrid.c: the "sendgrid" provider: email through SendGrid's v3 Mail
 * Send API (POST /v3/mail/send, bearer key, JSON; 202 accepted) over the
 * worker's HTTP/1.1 pool, as the alternative to an SMTP relay. create()
 * on the main thread, send() on the worker that owns the job. Knows
 * nothing of the store or of HTTP ingest.
 */
#include <stdio.h>
#include <openssl/crypto.h>

#include "core/herald.h"
#include "core/time.h"
#include "provider/provider.h"
#include "provider/rest.h"
#include "provider/sendgrid.h"

#define SENDGRID_DEFAULT_URL "https://api.sendgrid.com"

struct sendgrid {
    struct hd_rest rest;
    char *path;
    char *headers; /* Authorization, Content-Type */
    char *from, *from_name;
    char *unsubscribe_url;
};

static const struct hd_provider_setting settings[] = {
    {"api_key", 1, 1},         {"from", 1, 1},   {"from_name", 1, 0},
    {"unsubscribe_url", 1, 0}, HD_REST_SETTINGS, {NULL, 0, 0},
};

static int
sendgrid_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    const struct hd_conf_kv *kv;

    if (hd_provider_check_settings(pc, settings, err, errlen) != HD_OK ||
        hd_rest_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    if ((kv = hd_conf_kv_find(pc, "unsubscribe_url")) &&
        strncmp(kv->args[0], "https://", 8) != 0) {
        snprintf(err, errlen,
                 "invalid value \"%s\" in \"unsubscribe_url\" directive, "
                 "expected an https URL in %s:%d",
                 kv->args[0], kv->file, kv->line);
        return HD_ERROR;
    }
    return HD_OK;
}

static int
sendgrid_create(struct hd_provider *p, const struct hd_provider_conf *pc,
                char *err, size_t errlen)
{
    struct sendgrid *g;
    const char *key, *s;
    char buf[512];
    size_t n;

    if (sendgrid_check(pc, err, errlen) != HD_OK)
        return HD_ERROR;
    g = hd_calloc(sizeof(*g));
    if (hd_rest_init(&g->rest, pc, SENDGRID_DEFAULT_URL, err, errlen) !=
        HD_OK) {
        free(g);
        return HD_ERROR;
    }
    snprintf(buf, sizeof(buf), "%s/v3/mail/send", g->rest.prefix);
    g->path = hd_strdup(buf);
    key = hd_rest_arg(pc, "api_key");
    n = strlen(key) + 128;
    g->headers = hd_alloc(n);
    snprintf(g->headers, n,
             "Authorization: Bearer %s\r\n"
             "Content-Type: application/json\r\n",
             key);
    g->from = hd_strdup(hd_rest_arg(pc, "from"));
    if ((s = hd_rest_arg(pc, "from_name")))
        g->from_name = hd_strdup(s);
    if ((s = hd_rest_arg(pc, "unsubscribe_url"))) {
        n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
            n--;
        g->unsubscribe_url = hd_strndup(s, n);
    }
    p->data = g;
    return HD_OK;
}

static void
sendgrid_destroy(struct hd_provider *p)
{
    struct sendgrid *g = p->data;

    if (g == NULL)
        return;
    hd_rest_free(&g->rest);
    OPENSSL_cleanse(g->headers, strlen(g->headers));
    free(g->headers);
    free(g->path);
    free(g->from);
    free(g->from_name);
    free(g->unsubscribe_url);
    free(g);
}

int
hd_sendgrid_classify(const struct hd_http1_response *r, int64_t *retry_after,
                     char *detail, size_t len)
{
    const char *v;

    *retry_after = 0;
    if (r->status == 202 || r->status == 200) {
        v = hd_http1_header_find(r, "X-Message-Id");
        snprintf(detail, len, "%s", v && *v ? v : "accepted");
        return HD_OUT_DELIVERED;
    }
    if (r->status == 429) {
        /* wait until X-RateLimit-Reset (epoch seconds), else Retry-After */
        int64_t wait = hd_rest_retry_after(r);
        if ((v = hd_http1_header_find(r, "X-RateLimit-Reset"))) {
            int64_t reset = strtoll(v, NULL, 10);
            if (reset > INT64_MAX / 1000 - 1) /* no overflow below */
                reset = INT64_MAX / 1000 - 1;
            reset = reset > 0 ? reset * 1000 - hd_now_ms() : 0;
            if (reset > wait)
                wait = reset > 3600000 ? 3600000 : reset;
        }
        snprintf(detail, len, "sendgrid 429 too many requests");
        *retry_after = wait;
        return HD_OUT_RETRY;
    }
    if (r->status >= 500) {
        snprintf(detail, len, "sendgrid %d", r->status);
        *retry_after = hd_rest_retry_after(r);
        return HD_OUT_RETRY;
    }
    {
        json_t *body = json_loadb(r->body, r->len, 0, NULL);
        json_t *e = json_array_get(json_object_get(body, "errors"), 0);
        const char *msg = json_string_value(json_object_get(e, "message"));
        snprintf(detail, len, "sendgrid %d %s", r->status,
                 msg ? msg : "rejected");
        json_decref(body);
    }
    if (r->status == 401 || r->status == 403) {
        /* the key: a fix and a reload must not lose the message */
        *retry_after = 60000;
        return HD_OUT_RETRY;
    }
    return HD_OUT_FAILED;
}

static void
on_response(void *arg, const struct hd_http1_response *r, const char *error)
{
    hd_rest_finish(arg, "sendgrid", r, error, hd_sendgrid_classify);
}

static void
sendgrid_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct sendgrid *g = p->data;
    struct hd_rest_worker *rw;
    struct hd_rest_req *q;
    const char *subject, *text, *html;
    json_t *req, *pers, *content, *from;
    char *body;

    subject = json_string_value(json_object_get(j->content, "subject"));
    text = json_string_value(json_object_get(j->content, "text"));
    html = json_string_value(json_object_get(j->content, "html"));
    if (subject == NULL || *subject == '\0') {
        j->done(j, HD_OUT_FAILED, 0, "sendgrid needs a subject");
        return;
    }
    if ((text == NULL || *text == '\0') && (html == NULL || *html == '\0')) {
        j->done(j, HD_OUT_FAILED, 0, "no text or html for the email");
        return;
    }
    rw = hd_rest_worker(&g->rest, p, w);
    if (rw == NULL) {
        j->done(j, HD_OUT_RETRY, 1000, "sendgrid: no connection pool");
        return;
    }

    pers = json_pack("{s:[{s:s}], s:{s:s}}", "to", "email", j->to,
                     "custom_args", "delivery_id", j->delivery_id);
    content = json_array();
    if (text && *text)
        json_array_append_new(content, json_pack("{s:s, s:s}", "type",
                                                 "text/plain", "value", text));
    if (html && *html)
        json_array_append_new(content, json_pack("{s:s, s:s}", "type",
                                                 "text/html", "value", html));
    from = json_pack("{s:s}", "email", g->from);
    if (g->from_name)
        json_object_set_new(from, "name", json_string(g->from_name));
    req = json_pack("{s:[o], s:o, s:s, s:o}", "personalizations", pers, "from",
                    from, "subject", subject, "content", content);
    if (g->unsubscribe_url) {
        /* the delivery id stands in for the signed token (issue 5) */
        char url[1024];
        snprintf(url, sizeof(url), "<%s/%s>", g->unsubscribe_url,
                 j->unsubscribe_token ? j->unsubscribe_token : j->delivery_id);
        json_object_set_new(req, "headers",
                            json_pack("{s:s, s:s}", "List-Unsubscribe", url,
                                      "List-Unsubscribe-Post",
                                      "List-Unsubscribe=One-Click"));
    }
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);

    q = hd_rest_req_new(rw, j, sizeof(*q));
    if (hd_http1_request(rw->pool, "POST", g->path, g->headers, body,
                         strlen(body), on_response, q) != HD_OK) {
        hd_rest_req_free(q);
        j->done(j, HD_OUT_RETRY, 1000, "sendgrid: request queue full");
    }
    free(body);
}

static void
sendgrid_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    hd_rest_exit_worker(&p->worker_data[w->id]);
}

const struct hd_provider_type hd_sendgrid_provider = {
    "sendgrid",       NULL,          sendgrid_check,
    sendgrid_create,  sendgrid_send, sendgrid_exit_worker,
    sendgrid_destroy, NULL,          NULL,
};
