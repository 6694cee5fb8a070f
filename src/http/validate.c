/*
 * validate.c: what herald accepts from clients, one rule per function so
 * each error names exactly what is wrong. Worker thread; no state.
 */
#include <ctype.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "http/validate.h"

const char *
hd_valid_email(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s);

    if (n > 254)
        return "\"email\" is longer than 254 characters";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' ||
            *p == ',' || *p == ';' || *p == '"' || *p == '\\')
            return "\"email\" contains a space, control or reserved character";
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
        return "\"email\" must have exactly one \"@\" after a local part";
    if (at[1] == '\0' || strchr(at + 1, '.') == NULL || at[1] == '.' ||
        s[n - 1] == '.' || strstr(at, "..") != NULL)
        return "\"email\" must have a domain with a dot, like example.com";
    return NULL;
}

const char *
hd_valid_phone(const char *s)
{
    size_t n = strlen(s);

    if (s[0] != '+')
        return "\"phone\" must be E.164: \"+\" then 8 to 15 digits";
    for (size_t i = 1; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return "\"phone\" must be E.164: \"+\" then 8 to 15 digits";
    if (n - 1 < 8 || n - 1 > 15)
        return "\"phone\" must be E.164: \"+\" then 8 to 15 digits";
    if (s[1] == '0')
        return "\"phone\" country code cannot start with 0";
    return NULL;
}

const char *
hd_valid_locale(const char *s)
{
    /* BCP 47 shape: 2-3 letters, then -subtags of 2-8 alphanumerics */
    const char *p = s;
    int n = 0;

    while (isalpha((unsigned char)*p))
        p++, n++;
    if (n < 2 || n > 3)
        return "\"locale\" must be a language tag like en, pt-BR or zh-Hant";
    while (*p == '-') {
        n = 0;
        for (p++; isalnum((unsigned char)*p); p++)
            n++;
        if (n < 2 || n > 8)
            return "\"locale\" must be a language tag like en, pt-BR or "
                   "zh-Hant";
    }
    if (*p != '\0' || strlen(s) > 35)
        return "\"locale\" must be a language tag like en, pt-BR or zh-Hant";
    return NULL;
}

const char *
hd_valid_timezone(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return "\"timezone\" must be an IANA name like Europe/Paris or UTC";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '/' && *p != '_' &&
            *p != '+' && *p != '-')
            return "\"timezone\" must be an IANA name like Europe/Paris or "
                   "UTC";
    if (s[0] == '/' || strstr(s, "..") != NULL)
        return "\"timezone\" must be an IANA name like Europe/Paris or UTC";
    return NULL;
}

const char *
hd_valid_app(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return "\"app\" must be 1-64 characters of A-Z a-z 0-9 . _ -";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return "\"app\" must be 1-64 characters of A-Z a-z 0-9 . _ -";
    return NULL;
}

const char *
hd_valid_keys(json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;

    json_object_foreach(obj, k, v)
    {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return k;
    }
    return NULL;
}

static int
b64url_len(const char *s, int *len)
{
    unsigned char buf[256];
    size_t n = strlen(s);
    int r;

    if (n == 0 || n > 300)
        return HD_ERROR;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '=')
            return HD_ERROR;
    r = hd_base64_decode(s, n, buf, 1);
    if (r < 0)
        return HD_ERROR;
    *len = r;
    if (r == 65 && buf[0] != 0x04)
        *len = -65; /* right size, not an uncompressed point */
    return HD_OK;
}

const char *
hd_valid_device(json_t *in, const char **field)
{
    static const char *const keys[] = {"platform", "token",        "app",
                                       "sandbox",  "subscription", NULL};
    const char *platform, *token, *bad;
    json_t *v;

    if ((bad = hd_valid_keys(in, keys)) != NULL) {
        *field = bad;
        return "unknown field";
    }
    *field = "platform";
    v = json_object_get(in, "platform");
    if (v == NULL)
        return "\"platform\" is required";
    platform = json_string_value(v);
    if (platform == NULL ||
        (strcmp(platform, "ios") != 0 && strcmp(platform, "android") != 0 &&
         strcmp(platform, "web") != 0))
        return "\"platform\" must be one of ios, android, web";

    v = json_object_get(in, "app");
    if (v != NULL) {
        *field = "app";
        if (!json_is_string(v))
            return "\"app\" must be a string";
        if ((bad = hd_valid_app(json_string_value(v))) != NULL)
            return bad;
    }
    v = json_object_get(in, "sandbox");
    if (v != NULL && !json_is_boolean(v)) {
        *field = "sandbox";
        return "\"sandbox\" must be true or false";
    }

    if (strcmp(platform, "web") == 0) {
        json_t *sub = json_object_get(in, "subscription"), *keys2;
        const char *endpoint, *p256dh, *auth;
        int n;
        static const char *const subkeys[] = {"endpoint", "keys",
                                              "expirationTime", NULL};
        *field = "subscription";
        if (json_object_get(in, "token") != NULL) {
            *field = "token";
            return "web devices register a \"subscription\", not a \"token\"";
        }
        if (!json_is_object(sub))
            return "\"subscription\" is required for web: {endpoint, keys: "
                   "{p256dh, auth}}";
        if ((bad = hd_valid_keys(sub, subkeys)) != NULL) {
            static __thread char f[80];
            snprintf(f, sizeof(f), "subscription.%s", bad);
            *field = f;
            return "unknown field";
        }
        *field = "subscription.endpoint";
        endpoint = json_string_value(json_object_get(sub, "endpoint"));
        if (endpoint == NULL || strncmp(endpoint, "https://", 8) != 0 ||
            strlen(endpoint) < 12 || strlen(endpoint) > 2048 ||
            strpbrk(endpoint, " \t\r\n\"<>") != NULL)
            return "\"subscription.endpoint\" must be an https:// URL";
        keys2 = json_object_get(sub, "keys");
        *field = "subscription.keys.p256dh";
        p256dh = json_string_value(json_object_get(keys2, "p256dh"));
        if (p256dh == NULL || b64url_len(p256dh, &n) != HD_OK || n != 65)
            return "\"subscription.keys.p256dh\" must be base64url of a "
                   "65-byte uncompressed P-256 point (0x04...)";
        *field = "subscription.keys.auth";
        auth = json_string_value(json_object_get(keys2, "auth"));
        if (auth == NULL || b64url_len(auth, &n) != HD_OK || n != 16)
            return "\"subscription.keys.auth\" must be base64url of 16 bytes";
        /* the endpoint is the web device's token */
        json_object_set_new(in, "token", json_string(endpoint));
        return NULL;
    }

    *field = "token";
    if (json_object_get(in, "subscription") != NULL) {
        *field = "subscription";
        return "\"subscription\" is for web devices only";
    }
    if (json_object_get(in, "token") == NULL)
        return "\"token\" is required";
    token = json_string_value(json_object_get(in, "token"));
    if (token == NULL)
        return "\"token\" must be a string";
    if (strcmp(platform, "ios") == 0) {
        size_t n = strlen(token);
        if (n < 16 || n > 200 || n % 2 != 0)
            return "\"token\" for ios must be an even number (16-200) of hex "
                   "digits";
        for (const char *p = token; *p; p++)
            if (!isxdigit((unsigned char)*p))
                return "\"token\" for ios must be hex digits";
    } else {
        size_t n = strlen(token);
        if (n == 0 || n > 4096)
            return "\"token\" for android must be 1-4096 characters";
        for (const char *p = token; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return "\"token\" for android must be printable ASCII";
    }
    return NULL;
}
