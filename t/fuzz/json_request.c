/*
 * json_request.c: libFuzzer target for the API's request decoding: the
 * bodies of POST /v1/notifications (alone, per user, in a batch), PUT and
 * PATCH /v1/users/{id}, POST .../devices and PUT .../preferences, parsed
 * as hd_api_body parses them and checked by the handlers' own validators.
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

/* One notification, as the send handlers take it. */
static void
send_one(json_t *in, const char *path_user, const char *header_key)
{
    static const char *const parts[] = {"push", "sms", "email", "web"};
    static const char *const part_keys[] = {
        "title",   "body", "badge", "sound", "data", "collapse_id", "thread_id",
        "subject", "text", "html",  "icon",  "url",  "topic",       NULL};
    const char *user_id = NULL, *idem;
    json_t *args = NULL, *content, *v;
    struct verr e;
    json_int_t n;
    int has_content = 0;

    memset(&e, 0, sizeof(e));
    if (validate_send(in, path_user, header_key, &args, &user_id, &e) !=
        HD_OK) {
        CHECK(args == NULL);
        CHECK(strcmp(e.code, "invalid_field") == 0 ||
              strcmp(e.code, "missing_field") == 0);
        check_error(e.code, e.field, e.msg);
        return;
    }
    CHECK(args != NULL && user_id != NULL && hd_user_id_valid(user_id));
    CHECK(path_user == NULL || strcmp(user_id, path_user) == 0);
    n = json_integer_value(json_object_get(args, "ch"));
    CHECK(n >= 0 && n < (1 << HD_CH_MAX));
    n = json_integer_value(json_object_get(args, "priority"));
    CHECK(n >= HD_PRIO_LOW && n <= HD_PRIO_CRITICAL);
    n = json_integer_value(json_object_get(args, "ttl"));
    CHECK(n >= 0 && n <= 365LL * 86400 * 1000);
    CHECK(json_integer_value(json_object_get(args, "send_at")) >= 0);
    idem = json_string_value(json_object_get(args, "idem"));
    CHECK(idem == NULL ||
          (strlen(idem) >= 1 && strlen(idem) <= HD_IDEMPOTENCY_KEY_MAX));
    v = json_object_get(args, "category");
    CHECK(v == NULL ||
          (json_string_length(v) >= 1 && json_string_length(v) <= 64));
    v = json_object_get(args, "template");
    CHECK(v == NULL ||
          (json_string_length(v) >= 1 && json_string_length(v) <= 64));
    has_content = v != NULL;
    CHECK(v == NULL || json_is_object(json_object_get(args, "tdata")));

    content = json_object_get(args, "content");
    CHECK(json_is_object(content));
    v = json_object_get(content, "title");
    CHECK(v == NULL ||
          (json_is_string(v) && json_string_length(v) <= HD_TITLE_MAX));
    v = json_object_get(content, "body");
    CHECK(v == NULL ||
          (json_is_string(v) && json_string_length(v) <= HD_TEXT_MAX));
    has_content |= v != NULL;
    v = json_object_get(content, "data");
    CHECK(v == NULL || json_is_object(v));
    for (size_t i = 0; i < HD_NELEMS(parts); i++) {
        v = json_object_get(content, parts[i]);
        if (v == NULL)
            continue;
        has_content = 1;
        CHECK(json_is_object(v));
        check_strings(v, part_keys);
    }
    CHECK(has_content);
    json_decref(args);
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
    json_t *in, *item;
    size_t i;

    if (size < 2)
        return 0;
    mode = data[0] >= '0' ? data[0] - '0' : data[0];
    mode %= M_MAX;
    /* hd_api_body: a non-empty body, JSON without duplicate keys */
    in = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES,
                    &je);
    if (in == NULL)
        return 0;
    if (mode == M_BATCH) {
        if (json_is_array(in) && json_array_size(in) <= HD_BATCH_MAX)
            json_array_foreach(in, i, item) if (json_is_object(item))
                send_one(item, NULL, NULL);
        json_decref(in);
        return 0;
    }
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    switch (mode) {
    case M_SEND:
        send_one(in, NULL, NULL);
        break;
    case M_SEND_USER:
        send_one(in, "u-1", "key-1");
        break;
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
    }
    json_decref(in);
    return 0;
}
