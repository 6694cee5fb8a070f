/*
 * jtext.c: top-level members of JSON object text, string and integer
 * values, and a writer for compact JSON. Pure: any thread. It checks
 * structure (brackets, strings, separators), not every number's grammar:
 * its input is records herald wrote itself.
 */
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/jtext.h"

#define JTEXT_DEPTH 64

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* past the string that starts at p ("), or NULL. Records are mostly string
 * bytes: eight are tested at once for '"', '\\' and control bytes. */
static const char *
skip_string(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;

    for (p++; p < end; p++) {
        while (end - p >= 8) {
            uint64_t v, q, b;
            memcpy(&v, p, 8);
            q = v ^ (ones * '"');
            b = v ^ (ones * '\\');
            if ((((q - ones) & ~q) | ((b - ones) & ~b) |
                 ((v - ones * 0x20) & ~v)) &
                highs)
                break;
            p += 8;
        }
        if (p >= end)
            break;
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '"')
            return p + 1;
        if ((unsigned char)*p < 0x20)
            return NULL;
    }
    return NULL;
}

/* past the value that starts at p, or NULL */
static const char *
skip_value(const char *p, const char *end)
{
    char stack[JTEXT_DEPTH];
    int depth = 0;

    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        const char *q = p;
        while (q < end && *q != ',' && *q != '}' && *q != ']' && *q != ' ' &&
               *q != '\t' && *q != '\n' && *q != '\r' && *q != '"')
            q++;
        return q > p ? q : NULL;
    }
    /* containers: brackets balance, strings skipped whole */
    while (p < end) {
        switch (*p) {
        case '"':
            p = skip_string(p, end);
            if (p == NULL)
                return NULL;
            continue;
        case '{':
        case '[':
            if (depth == JTEXT_DEPTH)
                return NULL;
            stack[depth++] = *p == '{' ? '}' : ']';
            break;
        case '}':
        case ']':
            if (depth == 0 || stack[--depth] != *p)
                return NULL;
            if (depth == 0)
                return p + 1;
            break;
        }
        p++;
    }
    return NULL;
}

int
hd_jtext_members(const char *p, size_t n, struct hd_jmember *m, int max)
{
    const char *end = p + n, *q;
    int count = 0;

    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return HD_ERROR;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end ? 0 : HD_ERROR;
    for (;;) {
        if (p == end || *p != '"' || count == max)
            return HD_ERROR;
        q = skip_string(p, end);
        if (q == NULL)
            return HD_ERROR;
        m[count].key.p = p + 1;
        m[count].key.n = (size_t)(q - p - 2);
        p = skip_ws(q, end);
        if (p == end || *p != ':')
            return HD_ERROR;
        p = skip_ws(p + 1, end);
        q = skip_value(p, end);
        if (q == NULL)
            return HD_ERROR;
        m[count].val.p = p;
        m[count].val.n = (size_t)(q - p);
        count++;
        p = skip_ws(q, end);
        if (p == end)
            return HD_ERROR;
        if (*p == '}')
            return skip_ws(p + 1, end) == end ? count : HD_ERROR;
        if (*p != ',')
            return HD_ERROR;
        p = skip_ws(p + 1, end);
    }
}

const struct hd_jspan *
hd_jtext_get(const struct hd_jmember *m, int n, const char *key)
{
    size_t len = strlen(key);

    for (int i = 0; i < n; i++)
        if (m[i].key.n == len && memcmp(m[i].key.p, key, len) == 0)
            return &m[i].val;
    return NULL;
}

static int
hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        int d = hd_hex_digit((unsigned char)p[i]);
        if (d < 0)
            return HD_ERROR;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return HD_OK;
}

int
hd_jtext_str(const struct hd_jspan *v, char *buf, size_t size)
{
    const char *p, *end;
    size_t len = 0;

    if (v == NULL || v->n < 2 || v->p[0] != '"' || v->p[v->n - 1] != '"')
        return HD_ERROR;
    p = v->p + 1;
    end = v->p + v->n - 1;
    while (p < end) {
        char tmp[4];
        size_t k = 1;
        unsigned c;

        if (*p != '\\') {
            tmp[0] = *p++;
        } else {
            if (end - p < 2)
                return HD_ERROR;
            p++;
            switch (*p++) {
            case '"':
                tmp[0] = '"';
                break;
            case '\\':
                tmp[0] = '\\';
                break;
            case '/':
                tmp[0] = '/';
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u':
                if (end - p < 4 || hex4(p, &c) != HD_OK)
                    return HD_ERROR;
                p += 4;
                if (c >= 0xd800 && c < 0xdc00) {
                    unsigned lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
                        hex4(p + 2, &lo) != HD_OK || lo < 0xdc00 || lo > 0xdfff)
                        return HD_ERROR;
                    p += 6;
                    c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                } else if (c >= 0xdc00 && c <= 0xdfff) {
                    return HD_ERROR;
                }
                if (c == 0)
                    return HD_ERROR; /* would cut the C string */
                if (c < 0x80) {
                    tmp[0] = (char)c;
                } else if (c < 0x800) {
                    tmp[0] = (char)(0xc0 | (c >> 6));
                    tmp[1] = (char)(0x80 | (c & 0x3f));
                    k = 2;
                } else if (c < 0x10000) {
                    tmp[0] = (char)(0xe0 | (c >> 12));
                    tmp[1] = (char)(0x80 | ((c >> 6) & 0x3f));
                    tmp[2] = (char)(0x80 | (c & 0x3f));
                    k = 3;
                } else {
                    tmp[0] = (char)(0xf0 | (c >> 18));
                    tmp[1] = (char)(0x80 | ((c >> 12) & 0x3f));
                    tmp[2] = (char)(0x80 | ((c >> 6) & 0x3f));
                    tmp[3] = (char)(0x80 | (c & 0x3f));
                    k = 4;
                }
                break;
            default:
                return HD_ERROR;
            }
        }
        if (len + k >= size)
            return HD_ERROR;
        memcpy(buf + len, tmp, k);
        len += k;
    }
    buf[len] = '\0';
    return (int)len;
}

int64_t
hd_jtext_int(const struct hd_jspan *v)
{
    int64_t r = 0;
    size_t i = 0;
    int neg = 0;

    if (v == NULL || v->n == 0)
        return 0;
    if (v->p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == v->n)
        return 0;
    for (; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9' ||
            r > (INT64_MAX - (v->p[i] - '0')) / 10)
            return 0;
        r = r * 10 + (v->p[i] - '0');
    }
    return neg ? -r : r;
}

int
hd_jtext_true(const struct hd_jspan *v)
{
    return v != NULL && v->n == 4 && memcmp(v->p, "true", 4) == 0;
}

/* ==== writer ==== */

void
hd_jbuf_init(struct hd_jbuf *b, size_t size)
{
    b->p = hd_alloc(size);
    b->len = 0;
    b->size = size;
}

static void
reserve(struct hd_jbuf *b, size_t n)
{
    if (b->len + n <= b->size)
        return;
    while (b->len + n > b->size)
        b->size *= 2;
    b->p = hd_realloc(b->p, b->size);
}

void
hd_jbuf_raw(struct hd_jbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
hd_jbuf_str(struct hd_jbuf *b, const char *s)
{
    size_t n = strlen(s);
    char *o;

    reserve(b, n * 6 + 2); /* every byte \u00XX at worst */
    o = b->p + b->len;
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

void
hd_jbuf_int(struct hd_jbuf *b, int64_t v)
{
    reserve(b, 24);
    b->len += (size_t)sprintf(b->p + b->len, "%lld", (long long)v);
}

void
hd_jbuf_key(struct hd_jbuf *b, const char *key)
{
    reserve(b, 1);
    if (b->len > 0 && b->p[b->len - 1] != '{' && b->p[b->len - 1] != '[')
        b->p[b->len++] = ',';
    hd_jbuf_str(b, key); /* keys may come from a request's data */
    reserve(b, 1);
    b->p[b->len++] = ':';
}

void
hd_jbuf_kv(struct hd_jbuf *b, const char *key, const char *val)
{
    hd_jbuf_key(b, key);
    hd_jbuf_str(b, val);
}

void
hd_jbuf_json(struct hd_jbuf *b, const json_t *v)
{
    void *it;
    json_t *e;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        /* the iterator itself: json_object_foreach looks each key up */
        hd_jbuf_raw(b, "{", 1);
        for (it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            hd_jbuf_key(b, json_object_iter_key(it));
            hd_jbuf_json(b, json_object_iter_value(it));
        }
        hd_jbuf_raw(b, "}", 1);
        break;
    case JSON_ARRAY:
        hd_jbuf_raw(b, "[", 1);
        json_array_foreach(v, i, e)
        {
            if (i > 0)
                hd_jbuf_raw(b, ",", 1);
            hd_jbuf_json(b, e);
        }
        hd_jbuf_raw(b, "]", 1);
        break;
    case JSON_STRING:
        hd_jbuf_str(b, json_string_value(v));
        break;
    case JSON_INTEGER:
        hd_jbuf_int(b, json_integer_value(v));
        break;
    case JSON_REAL: {
        int n;
        reserve(b, 32);
        n = snprintf(b->p + b->len, 32, "%.17g", json_real_value(v));
        /* a real stays a real when read back */
        if (strpbrk(b->p + b->len, ".eE") == NULL) {
            memcpy(b->p + b->len + n, ".0", 2);
            n += 2;
        }
        b->len += (size_t)n;
        break;
    }
    case JSON_TRUE:
        hd_jbuf_raw(b, "true", 4);
        break;
    case JSON_FALSE:
        hd_jbuf_raw(b, "false", 5);
        break;
    default:
        hd_jbuf_raw(b, "null", 4);
        break;
    }
}
