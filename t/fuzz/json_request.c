/*
 * json_request.c: libFuzzer target for the API's request decoding: the
 * bodies of POST /v1/notifications (alone, per user, in a batch: checked
 * as text, as hd_api_body_text and validate_send do, and what they hand
 * the owner compared with what jansson reads), PUT and PATCH
 * /v1/users/{id}, POST .../devices and PUT .../preferences, parsed as
 * hd_api_body parses them and checked by the handlers' own validators.
 * The first byte picks the endpoint ('0'..'6'). What is accepted is
 * checked again against the documented limits and what is refused must
 * make a well-formed JSON error naming the field: a failed check aborts.
 */
#include "fuzz.h"
#include "http/api_send.c"
#include "http/api_users.c"
#include "http/validate.c"
#include "provider/sms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    M_SEND,      /* POST /v1/notifications */
    M_SEND_USER, /* POST /v1/users/u-1/notifications, Idempotency-Key */
    M_BATCH,     /* POST /v1/notifications/batch */
    M_USER_PUT,
    M_USER_PATCH,
    M_DEVICE,
    M_PREFS,
    M_MAX
};

/* The 4xx body a refusal makes: JSON with the message and the field. */
static void
check_error(const char *code, const char *field, const char *msg)
{
    json_t *body, *err;

    CHECK(code != NULL && msg != NULL && *msg != '\0');
    body = hd_api_error(code, field, "%s", msg);
    CHECK(body != NULL);
    err = json_object_get(body, "error");
    CHECK(json_string_length(json_object_get(err, "message")) > 0);
    CHECK(field == NULL || json_is_string(json_object_get(err, "field")));
    json_decref(body);
}

static void
check_strings(json_t *obj, const char *const *keys)
{
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (v == NULL || strcmp(keys[i], "data") == 0)
            continue;
        if (strcmp(keys[i], "badge") == 0)
            CHECK(json_is_integer(v) && json_integer_value(v) >= 0);
        else
            CHECK(json_is_string(v) && json_string_length(v) <= HD_TEXT_MAX);
    }
}

/* One notification (the object text p[0..n), valid JSON), as the send
 * handlers take it: what validate_send hands the owner must say what
 * jansson reads in the same text. */
static void
send_one(const char *p, size_t n, const char *path_user, const char *header_key)
{
    static const char *const parts[] = {"push", "sms", "email", "web"};
    static const char *const part_keys[] = {
        "title",   "body", "badge", "sound", "data", "collapse_id", "thread_id",
        "subject", "text", "html",  "icon",  "url",  "topic",       NULL};
    static const char *const content_keys[] = {"title", "body",  "data", "push",
                                               "sms",   "email", "web"};
    char user_id[HD_USER_ID_MAX + 1];
    struct hd_notify_in *a = NULL;
    json_t *in, *content, *want, *v;
    struct verr e;
    int has_content = 0;

    memset(&e, 0, sizeof(e));
    if (validate_send(p, n, path_user, header_key, &a, user_id, &e) != HD_OK) {
        CHECK(a == NULL);
        CHECK(strcmp(e.code, "invalid_field") == 0 ||
              strcmp(e.code, "missing_field") == 0);
        check_error(e.code, e.field, e.msg);
        return;
    }
    in = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
    CHECK(in != NULL && a != NULL && hd_user_id_valid(user_id));
    CHECK(path_user == NULL || strcmp(user_id, path_user) == 0);
    CHECK(path_user != NULL ||
          strcmp(user_id, json_string_value(json_object_get(in, "user_id"))) ==
              0);
    CHECK(a->channels < (1u << HD_CH_MAX));
    CHECK(a->priority >= HD_PRIO_LOW && a->priority <= HD_PRIO_CRITICAL);
    CHECK(a->ttl_ms >= 0 && a->ttl_ms <= 365LL * 86400 * 1000);
    CHECK(a->send_at_ms >= 0);
    CHECK(a->idempotency_key == NULL ||
          (strlen(a->idempotency_key) >= 1 &&
           strlen(a->idempotency_key) <= HD_IDEMPOTENCY_KEY_MAX));
    CHECK(a->category == NULL ||
          strcmp(a->category,
                 json_string_value(json_object_get(in, "category"))) == 0);
    CHECK(a->template_name == NULL ||
          (strlen(a->template_name) >= 1 && strlen(a->template_name) <= 64));
    has_content = a->template_name != NULL;
    if (a->template_name != NULL) {
        json_t *d = json_loadb(a->template_data, a->template_data_len, 0, NULL);
        json_t *w = json_object_get(in, "data");
        CHECK(json_is_object(d) && json_equal(d, w ? w : d));
        CHECK(w != NULL || json_object_size(d) == 0);
        json_decref(d);
    }

    /* the content text is the request's content members, compact */
    content = json_loadb(a->content, a->content_len, 0, NULL);
    CHECK(json_is_object(content));
    CHECK(strlen(a->content) == a->content_len);
    want = json_object();
    for (size_t i = 0; i < HD_NELEMS(content_keys); i++)
        if ((v = json_object_get(in, content_keys[i])) != NULL &&
            !(a->template_name && strcmp(content_keys[i], "data") == 0))
            json_object_set(want, content_keys[i], v);
    CHECK(json_equal(content, want));
    json_decref(want);
    v = json_object_get(content, "title");
    CHECK(v == NULL ||
          (json_is_string(v) && json_string_length(v) <= HD_TITLE_MAX));
    v = json_object_get(content, "body");
    CHECK(v == NULL ||
          (json_is_string(v) && json_string_length(v) <= HD_TEXT_MAX));
    has_content |= v != NULL;
    v = json_object_get(content, "data");
    CHECK(v == NULL || json_is_object(v));
    if (v != NULL) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) CHECK(json_is_string(x));
    }
    for (size_t i = 0; i < HD_NELEMS(parts); i++) {
        v = json_object_get(content, parts[i]);
        if (v == NULL)
            continue;
        has_content = 1;
        CHECK(json_is_object(v));
        check_strings(v, part_keys);
    }
    CHECK(has_content);
    json_decref(content);
    json_decref(in);
    free(a);
}

static void
user_one(json_t *in, int patch)
{
    static const char *const keys[] = {"email", "phone", "locale", "timezone",
                                       NULL};
    const char *field;
    char msg[256];

    field = validate_user(in, patch, msg, sizeof(msg));
    if (field != NULL) {
        check_error("invalid_field", field, msg);
        return;
    }
    CHECK(json_object_size(in) <= 4);
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(in, keys[i]);
        CHECK(v == NULL || json_is_null(v) || json_is_string(v));
    }
    if (json_is_string(json_object_get(in, "email")))
        CHECK(strchr(json_string_value(json_object_get(in, "email")), '@'));
    if (json_is_string(json_object_get(in, "phone")))
        CHECK(
            hd_sms_e164_valid(json_string_value(json_object_get(in, "phone"))));
}

static void
device_one(json_t *in)
{
    const char *field = NULL, *msg, *platform, *token;

    msg = hd_valid_device(in, &field);
    if (msg != NULL) {
        /* as hd_api_device_post answers */
        json_t *body = strcmp(msg, "unknown field") == 0
                           ? hd_api_error("invalid_field", field,
                                          "unknown field \"%s\"", field)
                           : hd_api_error("invalid_field", field, "%s", msg);
        CHECK(field != NULL);
        CHECK(body != NULL);
        CHECK(json_is_string(
            json_object_get(json_object_get(body, "error"), "field")));
        json_decref(body);
        return;
    }
    platform = json_string_value(json_object_get(in, "platform"));
    token = json_string_value(json_object_get(in, "token"));
    CHECK(platform != NULL && token != NULL && *token != '\0');
    CHECK(strcmp(platform, "ios") == 0 || strcmp(platform, "android") == 0 ||
          strcmp(platform, "web") == 0);
    if (strcmp(platform, "ios") == 0)
        CHECK(strspn(token, "0123456789abcdefABCDEF") == strlen(token));
    if (strcmp(platform, "web") == 0)
        CHECK(strncmp(token, "https://", 8) == 0);
}

static void
prefs_one(json_t *in)
{
    const char *field, *k;
    char msg[256];
    json_t *v;

    field = validate_prefs(in, msg, sizeof(msg));
    if (field != NULL) {
        check_error("invalid_field", field, msg);
        return;
    }
    json_object_foreach(json_object_get(in, "channels"), k, v)
        CHECK(hd_channel_parse(k, strlen(k)) >= 0 && json_is_boolean(v));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    unsigned mode;
    const char *p;
    size_t n;
    json_t *in;

    if (size < 2)
        return 0;
    mode = data[0] >= '0' ? data[0] - '0' : data[0];
    mode %= M_MAX;
    p = (const char *)data + 1;
    n = size - 1;
    if (mode == M_SEND || mode == M_SEND_USER || mode == M_BATCH) {
        /* hd_api_body_text: the body checked whole as text */
        struct hd_jspan *items;
        int k;
        if (hd_jtext_valid(p, n) != HD_OK)
            return 0;
        if (mode != M_BATCH) {
            const char *q = p; /* valid: not all white space */
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == '{')
                send_one(p, n, mode == M_SEND ? NULL : "u-1",
                         mode == M_SEND ? NULL : "key-1");
            return 0;
        }
        items = hd_alloc((HD_BATCH_MAX + 1) * sizeof(*items));
        k = hd_jtext_items(p, n, items, HD_BATCH_MAX + 1);
        for (int i = 0; k <= HD_BATCH_MAX && i < k; i++)
            if (items[i].p[0] == '{')
                send_one(items[i].p, items[i].n, NULL, NULL);
        free(items);
        return 0;
    }
    /* hd_api_body: a non-empty body, JSON without duplicate keys */
    in = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (in == NULL || !json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    switch (mode) {
    case M_USER_PUT:
    case M_USER_PATCH:
        user_one(in, mode == M_USER_PATCH);
        break;
    case M_DEVICE:
        device_one(in);
        break;
    case M_PREFS:
        prefs_one(in);
        break;
    default:
        break;
    }
    json_decref(in);
    return 0;
}
