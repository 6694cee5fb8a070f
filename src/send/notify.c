/*
 * notify.c: a notification becomes one delivery per (channel, address or
 * device), each with its record and, when it is to be sent, a queue entry,
 * all staged in the same group commit as the notification, its index
 * entry and its idempotency key. Opt-outs and frequency caps are decided
 * here, in the owning shard, and recorded on the delivery: a delivery is
 * never dropped silently. Owner thread of the shard.
 *
 * Accepting writes its records and its answer as JSON text and reads the
 * request's content, the user and the devices from theirs (core/jtext.h):
 * templates are the only reason to build a tree.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/jtext.h"
#include "core/metrics.h"
#include "core/time.h"
#include "provider/provider.h"
#include "provider/apns.h"
#include "provider/sms.h"
#include "send/delivery.h"
#include "send/dispatch.h"
#include "send/events.h"
#include "send/notify.h"
#include "send/ratelimit.h"
#include "send/templates.h"
#include "send/users.h"
#include "store/queue.h"

static const char *priorities[] = {"low", "normal", "high", "critical"};

const char *
hd_priority_name(int priority)
{
    return priorities[priority];
}

int
hd_priority_parse(const char *name)
{
    for (size_t i = 0; i < HD_NELEMS(priorities); i++)
        if (strcmp(priorities[i], name) == 0)
            return (int)i;
    return HD_ERROR;
}

json_t *
hd_delivery_thaw(json_t *shared)
{
    json_t *d = json_copy(shared), *tl = json_object_get(shared, "timeline");
    if (tl != NULL)
        json_object_set_new(d, "timeline", json_copy(tl));
    return d;
}

void
hd_timeline_add(json_t *delivery, const char *event, const char *detail)
{
    json_t *tl = json_object_get(delivery, "timeline");
    char now[32];
    json_t *e;

    if (tl == NULL) {
        tl = json_array();
        json_object_set_new(delivery, "timeline", tl);
    }
    hd_time_iso(hd_now_ms(), now, sizeof(now));
    e = json_pack("{s:s, s:s}", "at", now, "event", event);
    if (detail)
        json_object_set_new(e, "detail", json_string(detail));
    json_array_append_new(tl, e);
}

/* content_get (below) reads by the same rules without building: keep
 * the two in step */
json_t *
hd_content_for(json_t *content, int ch)
{
    json_t *out = json_object(), *part, *v;
    static const char *shorthand[] = {"title", "body", "data"};

    for (size_t i = 0; i < HD_NELEMS(shorthand); i++)
        if ((v = json_object_get(content, shorthand[i])) != NULL)
            json_object_set(out, shorthand[i], v);
    part = json_object_get(content, hd_channel_name(ch));
    if (json_is_object(part))
        json_object_update(out, part);
    if (ch == HD_CH_EMAIL) {
        if (!json_object_get(out, "subject") && json_object_get(out, "title"))
            json_object_set(out, "subject", json_object_get(out, "title"));
        if (!json_object_get(out, "text") && !json_object_get(out, "html") &&
            json_object_get(out, "body"))
            json_object_set(out, "text", json_object_get(out, "body"));
    } else if (ch == HD_CH_SMS) {
        if (!json_object_get(out, "body") && json_object_get(out, "title"))
            json_object_set(out, "body", json_object_get(out, "title"));
    }
    return out;
}

/* user "\0" key_id "\0" idempotency key */
static size_t
idem_key(char *buf, size_t size, const char *user, const char *key_id,
         const char *key)
{
    int n = snprintf(buf, size, "%s%c%s%c%s", user, 0, key_id, 0, key);
    HD_ASSERT(n > 0 && (size_t)n < size);
    return (size_t)n;
}

static void
fail(struct hd_notify_err *err, int status, const char *code, const char *field,
     const char *fmt, const char *a, const char *b)
{
    err->status = status;
    err->code = code;
    err->field = field;
    snprintf(err->message, sizeof(err->message), fmt, a, b);
}

/* A device of the user as its record's text says: spans borrow the
 * range's copy of the record, and go into the new records as they are
 * (they are JSON values already). */
struct device_view {
    struct hd_jspan id, token, platform, app, sandbox;
};

struct target {
    int ch;
    const char *to;             /* email, sms: the user's address */
    struct device_view *device; /* push, web */
};

static int
span_is(const struct hd_jspan *v, const char *json)
{
    size_t n = strlen(json);
    return v->p != NULL && v->n == n && memcmp(v->p, json, n) == 0;
}

/* The device fields ingest needs, or HD_ERROR for a record without an id
 * and a token. */
static int
device_view(const struct hd_kv *kv, struct device_view *dv)
{
    struct hd_jmember m[32];
    const struct hd_jspan *v;
    struct {
        const char *key;
        struct hd_jspan *out;
    } want[] = {{"id", &dv->id},
                {"token", &dv->token},
                {"platform", &dv->platform},
                {"app", &dv->app},
                {"sandbox", &dv->sandbox}};
    MDB_val rec = {kv->vlen, kv->val};
    int n;

    memset(dv, 0, sizeof(*dv));
    if ((n = hd_record_members(&rec, m, 32)) < 0)
        return HD_ERROR;
    for (size_t i = 0; i < HD_NELEMS(want); i++)
        if ((v = hd_jtext_get(m, n, want[i].key)) != NULL &&
            !(v->n == 4 && memcmp(v->p, "null", 4) == 0))
            *want[i].out = *v;
    return dv->id.p && dv->token.p && dv->token.p[0] == '"' ? HD_OK : HD_ERROR;
}

static void
put_member_raw(struct hd_jbuf *b, const char *key, const struct hd_jspan *v)
{
    hd_jbuf_key(b, key);
    hd_jbuf_raw(b, v->p, v->n);
}

static void
put_timeline_entry(struct hd_jbuf *b, const char *at, const char *event,
                   const char *detail)
{
    if (b->p[b->len - 1] != '[')
        hd_jbuf_raw(b, ",", 1);
    hd_jbuf_raw(b, "{", 1);
    hd_jbuf_kv(b, "at", at);
    hd_jbuf_kv(b, "event", event);
    if (detail)
        hd_jbuf_kv(b, "detail", detail);
    hd_jbuf_raw(b, "}", 1);
}

/* What ingest needs of the user record, read from its text (a tree only
 * when a template renders over it). */
struct user_view {
    char email[256], phone[32]; /* "" when none (validated: 254, 16) */
    int flagged[HD_CH_MAX];     /* the address stopped working */
};

static int
user_view(struct hd_shard *s, const char *user_id, struct user_view *uv)
{
    struct hd_jmember m[32];
    MDB_val v;
    int n;

    memset(uv, 0, sizeof(*uv));
    if (hd_store_get(s, HD_DB_USERS, user_id, strlen(user_id), &v) != HD_OK ||
        (n = hd_record_members(&v, m, 32)) < 0)
        return HD_DECLINED;
    if (hd_jtext_str(hd_jtext_get(m, n, "email"), uv->email,
                     sizeof(uv->email)) < 0)
        uv->email[0] = '\0';
    if (hd_jtext_str(hd_jtext_get(m, n, "phone"), uv->phone,
                     sizeof(uv->phone)) < 0)
        uv->phone[0] = '\0';
    uv->flagged[HD_CH_EMAIL] =
        hd_jtext_true(hd_jtext_get(m, n, hd_user_flag_name(HD_CH_EMAIL)));
    uv->flagged[HD_CH_SMS] =
        hd_jtext_true(hd_jtext_get(m, n, hd_user_flag_name(HD_CH_SMS)));
    return HD_OK;
}

/* The content's members, and those of each channel's part, as text. */
#define CONTENT_MEMBERS 32

struct content_view {
    struct hd_jmember top[CONTENT_MEMBERS];
    struct hd_jmember part[HD_CH_MAX][CONTENT_MEMBERS];
    int ntop, npart[HD_CH_MAX];
};

static int
content_view(struct content_view *cv, const char *p, size_t n)
{
    cv->ntop = hd_jtext_members(p, n, cv->top, CONTENT_MEMBERS);
    if (cv->ntop < 0)
        return HD_ERROR;
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        const struct hd_jspan *v =
            hd_jtext_get(cv->top, cv->ntop, hd_channel_name(ch));
        cv->npart[ch] = 0;
        if (v != NULL && v->p[0] == '{' &&
            (cv->npart[ch] = hd_jtext_members(v->p, v->n, cv->part[ch],
                                              CONTENT_MEMBERS)) < 0)
            return HD_ERROR;
    }
    return HD_OK;
}

/* content's key as channel ch sees it: what hd_content_for(content,
 * ch) would hold, without building it (keep the two in step) */
static const struct hd_jspan *
content_get(const struct content_view *cv, int ch, const char *key)
{
    const struct hd_jspan *v = hd_jtext_get(cv->part[ch], cv->npart[ch], key);

    if (v != NULL)
        return v;
    if ((strcmp(key, "title") == 0 || strcmp(key, "body") == 0 ||
         strcmp(key, "data") == 0) &&
        (v = hd_jtext_get(cv->top, cv->ntop, key)) != NULL)
        return v;
    if (ch == HD_CH_EMAIL && strcmp(key, "subject") == 0)
        return content_get(cv, ch, "title");
    if (ch == HD_CH_EMAIL && strcmp(key, "text") == 0 &&
        content_get(cv, ch, "html") == NULL)
        return content_get(cv, ch, "body");
    if (ch == HD_CH_SMS && strcmp(key, "body") == 0)
        return content_get(cv, ch, "title");
    return NULL;
}

/* The template rendered over the request's content, as text in out;
 * HD_DECLINED (no such template) or HD_ERROR (missing is named) when it
 * cannot be. */
static int
render(struct hd_shard *s, const struct hd_notify_in *in, struct hd_jbuf *out,
       char *missing, size_t size)
{
    json_t *inl, *data, *rendered, *v, *u;
    const char *k;
    int rc;

    inl = json_loadb(in->content, in->content_len, 0, NULL);
    data = in->template_data
               ? json_loadb(in->template_data, in->template_data_len, 0, NULL)
               : json_object();
    u = hd_user_load(s, in->user_id);
    rc = hd_template_render(in->template_name, u, data, &rendered, missing,
                            size);
    json_decref(u);
    json_decref(data);
    if (rc != HD_OK) {
        json_decref(inl);
        return rc;
    }
    /* what the request says itself wins over the template */
    json_object_foreach(inl, k, v)
    {
        json_t *part = json_object_get(rendered, k);
        if (json_is_object(part) && json_is_object(v))
            json_object_update(part, v);
        else
            json_object_set(rendered, k, v);
    }
    json_object_set_new(rendered, "template", json_string(in->template_name));
    hd_jbuf_init(out, 512);
    hd_jbuf_json(out, rendered);
    json_decref(rendered);
    json_decref(inl);
    return HD_OK;
}

int
hd_notify_accept(struct hd_shard *s, const struct hd_conf *cf,
                 const struct hd_notify_in *in, struct hd_jbuf *answer,
                 int *status, struct hd_notify_err *err)
{
    struct user_view user;
    json_t *prefs;
    /* the content as it is stored, and as APNs reads it: the request's,
     * or the template rendered over it */
    const char *ctext = in->content;
    size_t clen = in->content_len;
    struct hd_jbuf rendered = {NULL, 0, 0};
    struct content_view cv;
    char *sms_body = NULL;
    struct target targets[64];
    struct device_view devs[64];
    struct hd_kv *kv = NULL;
    int ntargets = 0, ndevs = 0, nkv = 0, n = 0, ios_checked = 0;
    char id[24], did[40], now[32], ikey[1024];
    size_t iklen = 0;
    int64_t now_ms = hd_now_ms(), due, expires;
    struct hd_jbuf rec, notif;

    if (in->idempotency_key) {
        json_t *rec_idem, *a;
        iklen = idem_key(ikey, sizeof(ikey), in->user_id, in->key_id,
                         in->idempotency_key);
        rec_idem = hd_store_get_json_n(s, HD_DB_IDEMPOTENCY, ikey, iklen);
        if (rec_idem != NULL && json_integer_value(json_object_get(
                                    rec_idem, "expires_at")) > now_ms) {
            a = json_deep_copy(json_object_get(rec_idem, "answer"));
            json_object_set_new(a, "duplicate", json_true());
            hd_jbuf_init(answer, 512);
            hd_jbuf_json(answer, a);
            json_decref(a);
            *status = 200;
            json_decref(rec_idem);
            HD_COUNT(hd_metrics_self()->notifications_duplicate, 1);
            return HD_OK;
        }
        json_decref(rec_idem);
    }

    if (user_view(s, in->user_id, &user) != HD_OK) {
        fail(err, 404, "not_found", "user_id",
             "unknown user \"%s\": create it with PUT /v1/users/%s",
             in->user_id, in->user_id);
        return HD_ERROR;
    }
    if (in->template_name != NULL) {
        char missing[160];
        int rc = render(s, in, &rendered, missing, sizeof(missing));
        if (rc == HD_DECLINED) {
            fail(err, 422, "unknown_template", "template",
                 "no template \"%s\"%s", in->template_name, "");
            return HD_ERROR;
        }
        if (rc != HD_OK) {
            fail(err, 422, "template_variable_missing", "data",
                 "template \"%s\" needs \"%s\", which data and the user "
                 "lack (or is not a text value)",
                 in->template_name, missing);
            return HD_ERROR;
        }
        ctext = rendered.p;
        clen = rendered.len;
    }
    if (content_view(&cv, ctext, clen) != HD_OK) {
        /* checked at the API: only a template could make it so */
        fail(err, 422, "invalid_field", "content",
             "the content has more than %s%s members", "32", "");
        goto fail;
    }
    if (!in->channels ||
        (in->channels & ((1u << HD_CH_PUSH) | (1u << HD_CH_WEB)))) {
        nkv = hd_devices_raw(s, in->user_id, &kv);
        for (int i = 0; i < nkv && ndevs < (int)HD_NELEMS(devs); i++)
            if (device_view(&kv[i], &devs[ndevs]) == HD_OK)
                ndevs++;
    }

    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        int before = ntargets;
        if (in->channels && !(in->channels & (1u << ch)))
            continue;
        if (ch == HD_CH_EMAIL || ch == HD_CH_SMS) {
            const char *to = ch == HD_CH_EMAIL ? user.email : user.phone;
            if (to[0] != '\0')
                targets[ntargets++] = (struct target){ch, to, NULL};
        } else {
            for (int i = 0; i < ndevs; i++) {
                int web = span_is(&devs[i].platform, "\"web\"");
                if (ntargets == (int)HD_NELEMS(targets))
                    break;
                if (web != (ch == HD_CH_WEB))
                    continue;
                targets[ntargets++] = (struct target){ch, NULL, &devs[i]};
            }
        }
        if (in->channels && ntargets == before) {
            fail(err, 422, "no_address", "channels",
                 "user \"%s\" has no address or device for channel \"%s\"",
                 in->user_id, hd_channel_name(ch));
            goto fail;
        }
    }
    if (ntargets == 0) {
        fail(err, 422, "no_address", "user_id",
             "user \"%s\" has no address or device on any channel%s",
             in->user_id, "");
        goto fail;
    }

    /* every channel about to be used must have something to say */
    for (int t = 0; t < ntargets; t++) {
        int ch = targets[t].ch, empty, enc;
        if (ch == HD_CH_EMAIL)
            empty =
                !content_get(&cv, ch, "text") && !content_get(&cv, ch, "html");
        else if (ch == HD_CH_SMS) {
            const struct hd_jspan *body = content_get(&cv, ch, "body");
            empty = body == NULL;
            if (!empty && sms_body == NULL) {
                /* decoded it is never longer than as written */
                sms_body = hd_alloc(body->n + 1);
                if (hd_jtext_str(body, sms_body, body->n + 1) < 0)
                    sms_body[0] = '\0'; /* not a string: as jansson's NULL */
            }
            if (!empty &&
                hd_sms_segments(sms_body, &enc) > cf->sms_max_segments) {
                char msg[64];
                snprintf(msg, sizeof(msg), "%d", cf->sms_max_segments);
                fail(err, 422, "sms_too_long", "sms.body",
                     "the SMS body needs more than %s segments (%s)", msg,
                     enc == HD_SMS_UCS2 ? "UCS-2: 67 characters each"
                                        : "GSM-7: 153 characters each");
                goto fail;
            }
        } else
            empty = !content_get(&cv, ch, "title") &&
                    !content_get(&cv, ch, "body") &&
                    !content_get(&cv, ch, "data");
        if (!empty && ch == HD_CH_PUSH && targets[t].device &&
            span_is(&targets[t].device->platform, "\"ios\"") &&
            !ios_checked++) {
            /* APNs refuses payloads over 4 KiB: say so now, not later */
            int bg;
            size_t size = 0;
            free(hd_apns_payload(ctext, clen, &bg, &size));
            if (size > HD_APNS_MAX_PAYLOAD) {
                char msg[32];
                snprintf(msg, sizeof(msg), "%zu", size);
                fail(err, 422, "payload_too_large", "push",
                     "the APNs payload would be %s bytes, over %s", msg,
                     "4096");
                goto fail;
            }
        }
        if (empty) {
            fail(err, 422, "missing_content", hd_channel_name(ch),
                 "nothing to send on channel \"%s\": give \"body\" (and "
                 "\"title\") or a \"%s\" part",
                 hd_channel_name(ch), hd_channel_name(ch));
            goto fail;
        }
    }

    prefs = hd_prefs_load(s, in->user_id);
    hd_store_make_id(s, hd_store_next_seq(s), id);
    hd_time_iso(now_ms, now, sizeof(now));
    due = in->send_at_ms > now_ms ? in->send_at_ms : now_ms;
    expires = in->ttl_ms ? due + in->ttl_ms : 0;

    /* the records and the answer are written as text as they are decided:
     * no tree per delivery on the ingest path */
    hd_jbuf_init(&notif, 1024);
    notif.p[notif.len++] = HD_STORE_FORMAT;
    hd_jbuf_raw(&notif, "{", 1);
    hd_jbuf_kv(&notif, "id", id);
    hd_jbuf_kv(&notif, "user_id", in->user_id);
    hd_jbuf_kv(&notif, "key_id", in->key_id);
    hd_jbuf_kv(&notif, "created_at", now);
    hd_jbuf_kv(&notif, "priority", hd_priority_name(in->priority));
    hd_jbuf_key(&notif, "content");
    hd_jbuf_raw(&notif, ctext, clen);
    if (in->category)
        hd_jbuf_kv(&notif, "category", in->category);
    if (in->send_at_ms) {
        char at[32];
        hd_time_iso(in->send_at_ms, at, sizeof(at));
        hd_jbuf_kv(&notif, "send_at", at);
    }
    if (in->ttl_ms) {
        hd_jbuf_key(&notif, "ttl");
        hd_jbuf_int(&notif, in->ttl_ms / 1000);
    }
    hd_jbuf_key(&notif, "deliveries");
    hd_jbuf_raw(&notif, "[", 1);

    hd_jbuf_init(answer, 512);
    hd_jbuf_raw(answer, "{", 1);
    hd_jbuf_kv(answer, "id", id);
    hd_jbuf_kv(answer, "user_id", in->user_id);
    hd_jbuf_kv(answer, "status", "accepted");
    hd_jbuf_key(answer, "duplicate");
    hd_jbuf_raw(answer, "false", 5);
    hd_jbuf_key(answer, "deliveries");
    hd_jbuf_raw(answer, "[", 1);

    /* frequency caps count notifications per channel, not devices: one
     * decision per channel, taken at the first delivery of it */
    int capped[HD_CH_MAX] = {-1, -1, -1, -1};

    hd_jbuf_init(&rec, 1024);
    for (int t = 0; t < ntargets; t++) {
        struct target *tg = &targets[t];
        struct device_view *dv = tg->device;
        const char *st, *reason = NULL;
        struct hd_event_src src;

        snprintf(did, sizeof(did), "%s-%d", id, n++);
        src = (struct hd_event_src){
            did,  id,           in->user_id,      hd_channel_name(tg->ch),
            NULL, in->category, in->template_name};
        rec.len = 0;
        rec.p[rec.len++] = HD_STORE_FORMAT;
        hd_jbuf_raw(&rec, "{", 1);
        hd_jbuf_kv(&rec, "id", did);
        hd_jbuf_kv(&rec, "notification_id", id);
        hd_jbuf_kv(&rec, "user_id", in->user_id);
        hd_jbuf_kv(&rec, "channel", hd_channel_name(tg->ch));
        if (dv)
            put_member_raw(&rec, "to", &dv->token);
        else
            hd_jbuf_kv(&rec, "to", tg->to);
        hd_jbuf_key(&rec, "attempts");
        hd_jbuf_int(&rec, 0);
        hd_jbuf_kv(&rec, "priority", hd_priority_name(in->priority));
        hd_jbuf_key(&rec, "due");
        hd_jbuf_int(&rec, due);
        if (dv) {
            put_member_raw(&rec, "device_id", &dv->id);
            if (dv->platform.p)
                put_member_raw(&rec, "platform", &dv->platform);
            if (dv->app.p)
                put_member_raw(&rec, "app", &dv->app);
            if (dv->sandbox.p)
                put_member_raw(&rec, "sandbox", &dv->sandbox);
        }
        if (expires) {
            hd_jbuf_key(&rec, "expires_at");
            hd_jbuf_int(&rec, expires);
        }
        /* events and stats are counted per category and template */
        if (in->category)
            hd_jbuf_kv(&rec, "category", in->category);
        if (in->template_name)
            hd_jbuf_kv(&rec, "template", in->template_name);
        if (tg->ch == HD_CH_SMS) {
            int enc, segs = hd_sms_segments(sms_body, &enc);
            hd_jbuf_key(&rec, "segments");
            hd_jbuf_int(&rec, segs);
            hd_jbuf_kv(&rec, "encoding", hd_sms_encoding_name(enc));
        }
        hd_event_put(s, &src, "accepted", NULL);

        if (dv == NULL && user.flagged[tg->ch]) {
            st = "suppressed";
            reason = tg->ch == HD_CH_EMAIL ? "bouncing" : "invalid_address";
        } else if (!hd_prefs_allow(prefs, cf, tg->ch, in->category)) {
            st = "suppressed";
            reason = "opted_out";
        } else if (in->priority != HD_PRIO_CRITICAL &&
                   (capped[tg->ch] >= 0 ? capped[tg->ch]
                                        : (capped[tg->ch] = !hd_ratelimit_allow(
                                               s->id, cf, in->user_id, tg->ch,
                                               in->category, now_ms)))) {
            st = "throttled";
            reason = "rate_limited";
        } else {
            uint64_t qseq = hd_store_next_seq(s);
            st = due > now_ms ? "scheduled" : "queued";
            hd_jbuf_key(&rec, "qseq");
            hd_jbuf_int(&rec, (int64_t)qseq);
            hd_queue_push(s, tg->ch, due, qseq, did, ctext, clen);
        }
        hd_jbuf_kv(&rec, "status", st);
        {
            struct hd_metrics *m = hd_metrics_self();
            HD_COUNT(m->deliveries_created[tg->ch], 1);
            if (st[0] == 's' && st[1] == 'u')
                HD_COUNT(m->suppressed[tg->ch], 1);
            else if (st[0] == 't')
                HD_COUNT(m->throttled[tg->ch], 1);
        }
        if (reason)
            hd_jbuf_kv(&rec, "reason", reason);
        hd_jbuf_key(&rec, "timeline");
        hd_jbuf_raw(&rec, "[", 1);
        put_timeline_entry(&rec, now, "accepted", NULL);
        if (reason) {
            put_timeline_entry(&rec, now, st, reason);
            hd_event_put(s, &src, st, reason);
        } else if (due > now_ms) {
            put_timeline_entry(&rec, now, "scheduled", NULL);
            hd_event_put(s, &src, "scheduled", NULL);
        }
        hd_jbuf_raw(&rec, "]}", 2);
        /* not cached: the dispatcher reads it as text */
        hd_store_put(s, HD_DB_DELIVERIES, did, strlen(did), rec.p, rec.len);

        if (t > 0)
            hd_jbuf_raw(&notif, ",", 1);
        hd_jbuf_str(&notif, did);

        if (t > 0)
            hd_jbuf_raw(answer, ",", 1);
        hd_jbuf_raw(answer, "{", 1);
        hd_jbuf_kv(answer, "id", did);
        hd_jbuf_kv(answer, "channel", hd_channel_name(tg->ch));
        if (dv)
            put_member_raw(answer, "to", &dv->token);
        else
            hd_jbuf_kv(answer, "to", tg->to);
        hd_jbuf_kv(answer, "status", st);
        if (dv)
            put_member_raw(answer, "device_id", &dv->id);
        if (reason)
            hd_jbuf_kv(answer, "reason", reason);
        hd_jbuf_raw(answer, "}", 1);
    }
    free(rec.p);
    hd_jbuf_raw(answer, "]}", 2);
    hd_jbuf_raw(&notif, "]}", 2);
    /* not cached: read back by status requests and the dispatcher, which
     * decodes only the content */
    hd_store_put(s, HD_DB_NOTIFICATIONS, id, strlen(id), notif.p, notif.len);
    free(notif.p);
    {
        char ukey[HD_USER_ID_MAX + 32];
        int k = snprintf(ukey, sizeof(ukey), "%s%c%s", in->user_id, 0, id);
        hd_store_put(s, HD_DB_USER_NOTIFICATIONS, ukey, (size_t)k, "", 0);
    }

    *status = 202;
    HD_COUNT(hd_metrics_self()->notifications_accepted, 1);
    if (in->idempotency_key) {
        struct hd_jbuf ir;
        hd_jbuf_init(&ir, answer->len + 128);
        ir.p[ir.len++] = HD_STORE_FORMAT;
        hd_jbuf_raw(&ir, "{", 1);
        hd_jbuf_kv(&ir, "id", id);
        hd_jbuf_key(&ir, "expires_at");
        hd_jbuf_int(&ir, now_ms + cf->idempotency_ttl_ms);
        hd_jbuf_key(&ir, "answer");
        hd_jbuf_raw(&ir, answer->p, answer->len);
        hd_jbuf_raw(&ir, "}", 1);
        hd_store_put(s, HD_DB_IDEMPOTENCY, ikey, iklen, ir.p, ir.len);
        free(ir.p);
    }
    json_decref(prefs);
    free(rendered.p);
    free(sms_body);
    hd_kv_free(kv, nkv);
    return HD_OK;

fail:
    free(rendered.p);
    free(sms_body);
    hd_kv_free(kv, nkv);
    return HD_ERROR;
}

static int
terminal(const char *st)
{
    static const char *done[] = {"delivered", "failed",  "suppressed",
                                 "throttled", "expired", "cancelled",
                                 "unreadable"};
    for (size_t i = 0; i < HD_NELEMS(done); i++)
        if (st && strcmp(st, done[i]) == 0)
            return 1;
    return 0;
}

json_t *
hd_notify_get(struct hd_shard *s, const char *id)
{
    json_t *notif = hd_store_get_json(s, HD_DB_NOTIFICATIONS, id), *out, *list,
           *v;
    static const char *keep[] = {"id",       "user_id",  "created_at",
                                 "category", "priority", "send_at",
                                 "ttl",      "content"};
    int delivered = 0, open = 0, total = 0, cancelled = 0, skipped = 0;
    size_t i;

    if (notif == NULL)
        return NULL;
    out = json_object();
    for (i = 0; i < HD_NELEMS(keep); i++)
        if ((v = json_object_get(notif, keep[i])) != NULL)
            json_object_set(out, keep[i], v);
    list = json_array();
    json_array_foreach(json_object_get(notif, "deliveries"), i, v)
    {
        const char *did = json_string_value(v);
        json_t *shared = hd_delivery_get(s, did), *d;
        const char *st;
        MDB_val raw;
        if (shared == NULL && hd_store_get(s, HD_DB_DELIVERIES, did,
                                           strlen(did), &raw) == HD_OK) {
            /* stored but no longer readable (the dispatcher drops it from
             * its queue): say so, do not hide it */
            shared = json_pack("{s:s, s:s}", "id", did, "status", "unreadable");
        }
        if (shared == NULL)
            continue;
        d = json_copy(shared); /* only top-level keys change below */
        json_decref(shared);
        json_object_del(d, "qseq");
        json_object_del(d, "due");
        json_object_del(d, "notification_id");
        json_object_del(d, "user_id");
        if (json_object_get(d, "expires_at")) {
            char at[32];
            hd_time_iso(json_integer_value(json_object_get(d, "expires_at")),
                        at, sizeof(at));
            json_object_set_new(d, "expires_at", json_string(at));
        }
        if (hd_dispatch_inflight(s, did))
            json_object_set_new(d, "status", json_string("sending"));
        st = json_string_value(json_object_get(d, "status"));
        if (st == NULL) {
            json_object_set_new(d, "status", json_string("unreadable"));
            st = "unreadable";
        }
        total++;
        if (strcmp(st, "delivered") == 0)
            delivered++;
        else if (strcmp(st, "cancelled") == 0)
            cancelled++;
        else if (strcmp(st, "suppressed") == 0 || strcmp(st, "throttled") == 0)
            skipped++; /* not to be sent: neither success nor failure */
        else if (!terminal(st))
            open++;
        json_array_append_new(list, d);
    }
    {
        int sent = total - skipped; /* the deliveries meant to go out */
        json_object_set_new(out, "status",
                            json_string(open                ? "pending"
                                        : sent == 0         ? "suppressed"
                                        : delivered == sent ? "delivered"
                                        : cancelled == sent ? "cancelled"
                                        : delivered == 0
                                            ? "failed"
                                            : "partially_delivered"));
    }
    json_object_set_new(out, "deliveries", list);
    json_decref(notif);
    return out;
}

json_t *
hd_notify_list(struct hd_shard *s, const char *user_id, const char *cursor,
               int limit)
{
    char prefix[HD_USER_ID_MAX + 2], after[HD_USER_ID_MAX + 40];
    size_t plen, alen = 0;
    struct hd_kv *kv;
    json_t *list = json_array(), *out;
    int n;

    plen = (size_t)snprintf(prefix, sizeof(prefix), "%s", user_id) + 1;
    if (cursor)
        alen = (size_t)snprintf(after, sizeof(after), "%s%c%s", user_id, 0,
                                cursor);
    n = hd_store_range(s, HD_DB_USER_NOTIFICATIONS, prefix, plen,
                       cursor ? after : NULL, alen, 1, limit + 1, &kv);
    for (int i = 0; i < n && i < limit; i++) {
        json_t *nj = hd_notify_get(s, kv[i].key + plen), *v;
        size_t j;
        if (nj == NULL)
            continue;
        json_array_foreach(json_object_get(nj, "deliveries"), j, v)
            json_object_del(v, "timeline");
        json_array_append_new(list, nj);
    }
    out = json_pack("{s:o}", "notifications", list);
    if (n > limit)
        json_object_set_new(out, "next_cursor",
                            json_string(kv[limit - 1].key + plen));
    else
        json_object_set_new(out, "next_cursor", json_null());
    hd_kv_free(kv, n);
    return out;
}

int
hd_notify_cancel(struct hd_shard *s, const char *id)
{
    json_t *notif = hd_store_get_json(s, HD_DB_NOTIFICATIONS, id), *v;
    int cancelled = 0;
    size_t i;

    if (notif == NULL)
        return -1;
    json_array_foreach(json_object_get(notif, "deliveries"), i, v)
    {
        const char *did = json_string_value(v);
        json_t *shared = hd_delivery_get(s, did), *d;
        const char *st =
            shared ? json_string_value(json_object_get(shared, "status"))
                   : NULL;
        if (shared == NULL || terminal(st) || hd_dispatch_inflight(s, did)) {
            json_decref(shared);
            continue;
        }
        d = hd_delivery_thaw(shared);
        json_decref(shared);
        {
            const char *chn = json_string_value(json_object_get(d, "channel"));
            hd_queue_remove(
                s, hd_channel_parse(chn, strlen(chn)),
                json_integer_value(json_object_get(d, "due")),
                (uint64_t)json_integer_value(json_object_get(d, "qseq")));
        }
        json_object_del(d, "qseq");
        json_object_set_new(d, "status", json_string("cancelled"));
        hd_event_emit(s, d, "cancelled", NULL);
        hd_delivery_put(s, did, d);
        json_decref(d);
        cancelled++;
    }
    json_decref(notif);
    return cancelled;
}

/* where each shard's purge stopped; owner thread only */
static char purge_at[HD_MAX_SHARDS][1024];
static size_t purge_len[HD_MAX_SHARDS];

int
hd_notify_purge_idempotency(struct hd_shard *s, int max)
{
    struct hd_kv *kv;
    int64_t now = hd_now_ms();
    int n, purged = 0;

    n = hd_store_range(s, HD_DB_IDEMPOTENCY, "", 0,
                       purge_len[s->id] ? purge_at[s->id] : NULL,
                       purge_len[s->id], 0, max, &kv);
    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *rec = hd_record_decode(&v);
        if (rec == NULL ||
            json_integer_value(json_object_get(rec, "expires_at")) <= now) {
            hd_store_del(s, HD_DB_IDEMPOTENCY, kv[i].key, kv[i].klen);
            purged++;
        }
        json_decref(rec);
    }
    /* start over from the first key once the end is reached */
    if (n == max && kv[n - 1].klen <= sizeof(purge_at[0])) {
        memcpy(purge_at[s->id], kv[n - 1].key, kv[n - 1].klen);
        purge_len[s->id] = kv[n - 1].klen;
    } else {
        purge_len[s->id] = 0;
    }
    hd_kv_free(kv, n);
    return purged;
}
