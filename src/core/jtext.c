/*
 * jtext.c: JSON as text, without building a tree. hd_jtext_valid checks a
 * document as jansson reads it (the send path's requests are stored as
 * text and read back by jansson later); the readers after it only check
 * structure (brackets, strings, separators), so their input is validated
 * text or records herald wrote itself. A writer for compact JSON. Pure:
 * any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/jtext.h"

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* ==== strings ==== */

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

/* c (a Unicode scalar value) as UTF-8 into out; returns its length */
static int
utf8_put(unsigned c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Decodes the escape at *pp (a backslash) into out, as jansson does: \"
 * \\ \/ \b \f \n \r \t, and \uXXXX as UTF-8, a high surrogate together
 * with the escaped low one after it. A lone surrogate is an error, and so
 * is \u0000 (jansson refuses it; it would cut a C string). Returns the
 * bytes written (1 to 4) and moves *pp past the escape, or HD_ERROR. */
static int
unescape(const char **pp, const char *end, char *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *p = *pp + 1, *e;
    unsigned c, lo;

    if (p >= end)
        return HD_ERROR;
    if (*p != 'u') {
        e = memchr(from, *p, sizeof(from) - 1);
        if (e == NULL)
            return HD_ERROR;
        out[0] = to[e - from];
        *pp = p + 1;
        return 1;
    }
    if (end - p < 5 || hex4(p + 1, &c) != HD_OK)
        return HD_ERROR;
    p += 5;
    if (c >= 0xd800 && c < 0xdc00) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
            hex4(p + 2, &lo) != HD_OK || lo < 0xdc00 || lo > 0xdfff)
            return HD_ERROR;
        p += 6;
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
    } else if ((c >= 0xdc00 && c <= 0xdfff) || c == 0) {
        return HD_ERROR;
    }
    *pp = p;
    return utf8_put(c, out);
}

/* The length of the well-formed multibyte UTF-8 sequence at p (RFC 3629,
 * as jansson: no overlong forms, surrogates or code points above
 * U+10FFFF), or 0. Which second bytes are allowed depends on the first. */
static size_t
utf8_len(const char *p, const char *end)
{
    const unsigned char *s = (const unsigned char *)p;
    unsigned lo = 0x80, hi = 0xbf;
    size_t n;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = s[0] == 0xe0 ? 0xa0 : lo; /* overlong */
        hi = s[0] == 0xed ? 0x9f : hi; /* surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = s[0] == 0xf0 ? 0x90 : lo; /* overlong */
        hi = s[0] == 0xf4 ? 0x8f : hi; /* above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* past the string bytes at p that need no attention: not '"', '\\', a
 * control byte, nor with check set a byte >= 0x80 (UTF-8 to check).
 * Records are mostly such bytes: eight are tested at once. */
static inline const char *
skip_plain(const char *p, const char *end, int check)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    unsigned char c;

    while (end - p >= 8) {
        uint64_t v, q, b;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v) |
             (check ? v : 0)) &
            highs)
            break;
        p += 8;
    }
    for (; p < end; p++) {
        c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || (check && c >= 0x80))
            break;
    }
    return p;
}

/* past the string that starts at p ("), or NULL. With check set, only
 * if jansson reads it: UTF-8, no control bytes (a raw NUL included), only
 * the escapes unescape knows. */
static inline const char *
skip_string(const char *p, const char *end, int check)
{
    char tmp[4];
    size_t k;

    for (p++;;) {
        p = skip_plain(p, end, check);
        if (p == end)
            return NULL;
        if (*p == '"')
            return p + 1;
        if (*p == '\\' && !check) {
            if (end - p < 2)
                return NULL;
            p += 2;
        } else if (*p == '\\') {
            if (unescape(&p, end, tmp) < 0)
                return NULL;
        } else if (check && (k = utf8_len(p, end)) > 0) {
            p += k;
        } else {
            return NULL;
        }
    }
}

/* The text between the quotes of the string value v, or HD_ERROR. */
static int
str_body(const struct hd_jspan *v, const char **p, const char **end)
{
    if (v == NULL || v->n < 2 || v->p[0] != '"' || v->p[v->n - 1] != '"')
        return HD_ERROR;
    *p = v->p + 1;
    *end = v->p + v->n - 1;
    return HD_OK;
}

/* The next piece of the string body *pp..end, decoded: a run of bytes up
 * to a backslash (*s points into the text) or one escape (decoded into
 * tmp, at least 4 bytes). Returns its length and moves *pp past it, or
 * HD_ERROR. */
static long
str_piece(const char **pp, const char *end, const char **s, char *tmp)
{
    const char *q;

    if (**pp == '\\') {
        *s = tmp;
        return unescape(pp, end, tmp);
    }
    q = memchr(*pp, '\\', (size_t)(end - *pp));
    if (q == NULL)
        q = end;
    *s = *pp;
    *pp = q;
    return q - *s;
}

int
hd_jtext_str(const struct hd_jspan *v, char *buf, size_t size)
{
    const char *p, *end, *s;
    size_t len = 0;
    char tmp[4];
    long k;

    if (str_body(v, &p, &end) != HD_OK || size == 0)
        return HD_ERROR;
    while (p < end) {
        k = str_piece(&p, end, &s, tmp);
        if (k < 0 || len + (size_t)k >= size)
            return HD_ERROR;
        memcpy(buf + len, s, (size_t)k);
        len += (size_t)k;
    }
    buf[len] = '\0';
    return (int)len;
}

long
hd_jtext_strlen(const struct hd_jspan *v)
{
    const char *p, *end, *s;
    char tmp[4];
    long len = 0, k;

    if (str_body(v, &p, &end) != HD_OK)
        return HD_ERROR;
    while (p < end) {
        k = str_piece(&p, end, &s, tmp);
        if (k < 0)
            return HD_ERROR;
        len += k;
    }
    return len;
}

/* ==== structure ==== */

/* past the value that starts at p, or NULL */
static const char *
skip_value(const char *p, const char *end)
{
    char stack[HD_JTEXT_DEPTH];
    int depth = 0;

    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end, 0);
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
            p = skip_string(p, end, 0);
            if (p == NULL)
                return NULL;
            continue;
        case '{':
        case '[':
            if (depth == HD_JTEXT_DEPTH)
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

/* Splits the object (m != NULL: keys and values into m) or array (values
 * into v) text p..p+n into its top-level entries. Returns their count, or
 * HD_ERROR: not one such container, or more than max entries. */
static int
split(const char *p, size_t n, struct hd_jmember *m, struct hd_jspan *v,
      int max)
{
    const char *end = p + n, *q;
    char close = m != NULL ? '}' : ']';
    struct hd_jspan *val;
    int count = 0;

    p = skip_ws(p, end);
    if (p == end || *p != (m != NULL ? '{' : '['))
        return HD_ERROR;
    p = skip_ws(p + 1, end);
    if (p < end && *p == close)
        return skip_ws(p + 1, end) == end ? 0 : HD_ERROR;
    for (;;) {
        if (count == max)
            return HD_ERROR;
        if (m != NULL) {
            if (p == end || *p != '"' || (q = skip_string(p, end, 0)) == NULL)
                return HD_ERROR;
            m[count].key.p = p + 1;
            m[count].key.n = (size_t)(q - p - 2);
            p = skip_ws(q, end);
            if (p == end || *p != ':')
                return HD_ERROR;
            p = skip_ws(p + 1, end);
        }
        q = skip_value(p, end);
        if (q == NULL)
            return HD_ERROR;
        val = m != NULL ? &m[count].val : &v[count];
        val->p = p;
        val->n = (size_t)(q - p);
        count++;
        p = skip_ws(q, end);
        if (p == end)
            return HD_ERROR;
        if (*p == close)
            return skip_ws(p + 1, end) == end ? count : HD_ERROR;
        if (*p != ',')
            return HD_ERROR;
        p = skip_ws(p + 1, end);
    }
}

int
hd_jtext_members(const char *p, size_t n, struct hd_jmember *m, int max)
{
    return split(p, n, m, NULL, max);
}

int
hd_jtext_strings_only(const char *p, size_t n)
{
    const char *end = p + n;

    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end;
    for (;;) {
        /* "key" : "value" */
        if (p == end || *p != '"' || (p = skip_string(p, end, 0)) == NULL)
            return 0;
        p = skip_ws(p, end);
        if (p == end || *p != ':')
            return 0;
        p = skip_ws(p + 1, end);
        if (p == end || *p != '"' || (p = skip_string(p, end, 0)) == NULL)
            return 0;
        p = skip_ws(p, end);
        if (p == end)
            return 0;
        if (*p == '}')
            return skip_ws(p + 1, end) == end;
        if (*p != ',')
            return 0;
        p = skip_ws(p + 1, end);
    }
}

int
hd_jtext_items(const char *p, size_t n, struct hd_jspan *v, int max)
{
    return split(p, n, NULL, v, max);
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

/* ==== validation: what jansson accepts ==== */

static const char *
skip_digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* Whether strtod overflows (+-HUGE_VAL, ERANGE: jansson's "real number
 * overflow") on the real with mantissa m..me (digits, maybe a point) and
 * exponent x..xe ([+-]digits; empty for none). As 0.D * 10^e, D its
 * digits from the first non-zero one, it is below 1e308 for e <= 308 and
 * at least 1e309 for e >= 310: only e == 309 asks strtod. What strtod
 * gets has no decimal point, so the locale does not matter. */
static int
real_overflows(const char *m, const char *me, const char *x, const char *xe)
{
    const char *d = NULL;
    long long e = 0, ex = 0;
    char small[512], *t = small;
    size_t len = 0;
    int before = 1, over;
    double r;

    for (const char *q = m; q < me; q++) {
        if (*q == '.') {
            before = 0;
        } else if (d == NULL && *q == '0') {
            e -= !before; /* a zero between the point and D */
        } else {
            d = d == NULL ? q : d;
            e += before;
        }
    }
    if (d == NULL)
        return 0; /* zero */
    for (const char *q = x + (x < xe && (*x == '-' || *x == '+')); q < xe; q++)
        if ((ex = ex * 10 + (*q - '0')) > 1000000000000000LL)
            break; /* far past any text's digit count */
    e += x < xe && *x == '-' ? -ex : ex;
    if (e != 309)
        return e > 309;

    if ((size_t)(me - d) + 24 > sizeof(small))
        t = hd_alloc((size_t)(me - d) + 24);
    for (const char *q = d; q < me; q++)
        if (*q != '.')
            t[len++] = *q;
    snprintf(t + len, 24, "e%lld", 309LL - (long long)len);
    errno = 0;
    r = strtod(t, NULL);
    over = errno == ERANGE && r == HUGE_VAL;
    if (t != small)
        free(t);
    return over;
}

/* past the number at p if jansson reads it: RFC 8259's grammar, an
 * integer (no fraction or exponent) that fits a long long as strtoll
 * reads it, a real that strtod does not overflow; or NULL */
static const char *
check_number(const char *p, const char *end)
{
    int neg = *p == '-', real = 0;
    const char *m = p + neg, *q, *me, *x, *f;
    size_t n;

    q = m < end && *m == '0' ? m + 1 : skip_digits(m, end);
    if (q == m)
        return NULL;
    if (q < end && *q == '.') {
        f = skip_digits(q + 1, end);
        if (f == q + 1)
            return NULL;
        q = f;
        real = 1;
    }
    me = x = q;
    if (q < end && (*q == 'e' || *q == 'E')) {
        x = q + 1;
        f = x + (x < end && (*x == '+' || *x == '-'));
        q = skip_digits(f, end);
        if (q == f)
            return NULL;
        real = 1;
    }
    if (real)
        return real_overflows(m, me, x, q) ? NULL : q;
    /* no leading zeros: the digit count tells, then the digits */
    n = (size_t)(me - m);
    if (n > 19 ||
        (n == 19 &&
         memcmp(m, neg ? "9223372036854775808" : "9223372036854775807", 19) >
             0))
        return NULL;
    return q;
}

static const char *
literal(const char *p, const char *end, const char *word, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* past the string, number or literal at p if jansson reads it, or NULL */
static const char *
check_scalar(const char *p, const char *end)
{
    switch (*p) {
    case '"':
        return skip_string(p, end, 1);
    case 't':
        return literal(p, end, "true", 4);
    case 'f':
        return literal(p, end, "false", 5);
    case 'n':
        return literal(p, end, "null", 4);
    case '-':
    case '0' ... '9':
        return check_number(p, end);
    default:
        return NULL;
    }
}

/* The keys of the open objects, innermost last: an object's keys are
 * contiguous when it closes. On the stack until a document has many. */
struct keys {
    struct hd_jspan *k;
    size_t n, size;
    struct hd_jspan stack[64];
};

static void
keys_push(struct keys *ks, const char *p, size_t n)
{
    if (ks->n == ks->size) {
        ks->size *= 2;
        if (ks->k == ks->stack) {
            ks->k = hd_alloc(ks->size * sizeof(*ks->k));
            memcpy(ks->k, ks->stack, sizeof(ks->stack));
        } else {
            ks->k = hd_realloc(ks->k, ks->size * sizeof(*ks->k));
        }
    }
    ks->k[ks->n].p = p;
    ks->k[ks->n].n = n;
    ks->n++;
}

/* a string body read one decoded byte at a time (next_byte) */
struct dbytes {
    const char *p, *end, *s;
    long n;
    char tmp[4];
};

/* the next decoded byte, or -1 at the end */
static int
next_byte(struct dbytes *d)
{
    if (d->n == 0) {
        if (d->p == d->end)
            return -1;
        d->n = str_piece(&d->p, d->end, &d->s, d->tmp);
        if (d->n <= 0)
            return -1; /* not met: skip_string checked the key */
    }
    d->n--;
    return (unsigned char)*d->s++;
}

/* Orders keys (string bodies) by their decoded bytes, as jansson compares
 * them: "a" and "\u0061" are the same key. */
static int
key_cmp(const void *a, const void *b)
{
    const struct hd_jspan *x = a, *y = b;
    struct dbytes dx = {x->p, x->p + x->n, NULL, 0, {0}};
    struct dbytes dy = {y->p, y->p + y->n, NULL, 0, {0}};
    int r, cx, cy;

    if (memchr(x->p, '\\', x->n) == NULL && memchr(y->p, '\\', y->n) == NULL) {
        r = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
        return r != 0 ? r : (x->n > y->n) - (x->n < y->n);
    }
    do {
        cx = next_byte(&dx);
        cy = next_byte(&dy);
    } while (cx == cy && cx >= 0);
    return cx - cy;
}

/* Whether two of k[0..n) are the same key (JSON_REJECT_DUPLICATES).
 * Objects are small: pairs are compared. A big one is sorted, so that a
 * request with many keys costs n log n, not n^2. */
static int
has_dup(struct hd_jspan *k, size_t n)
{
    if (n <= 8) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (key_cmp(&k[i], &k[j]) == 0)
                    return 1;
        return 0;
    }
    qsort(k, n, sizeof(*k), key_cmp);
    for (size_t i = 1; i < n; i++)
        if (key_cmp(&k[i - 1], &k[i]) == 0)
            return 1;
    return 0;
}

/* past an object's "key": (kept in ks) when obj is set, else p; or NULL */
static const char *
check_key(const char *p, const char *end, int obj, struct keys *ks)
{
    const char *q;

    if (!obj)
        return p;
    if (p == end || *p != '"' || (q = skip_string(p, end, 1)) == NULL)
        return NULL;
    keys_push(ks, p + 1, (size_t)(q - p - 2));
    p = skip_ws(q, end);
    if (p == end || *p != ':')
        return NULL;
    return skip_ws(p + 1, end);
}

/* One pass, a value at a time: at the top of the loop p is at a value;
 * after it come the brackets it closes, then a comma and the next
 * entry's key (objects). Duplicate keys are looked for as objects close. */
int
hd_jtext_valid(const char *p, size_t n)
{
    const char *end = p + n;
    char close[HD_JTEXT_DEPTH];  /* the open containers' closing brackets */
    size_t base[HD_JTEXT_DEPTH]; /* an open object's first key in ks */
    struct keys ks;
    int depth = 0, rc = HD_ERROR;

    p = skip_ws(p, end);
    if (p == end || (*p != '{' && *p != '['))
        return HD_ERROR;
    ks.k = ks.stack;
    ks.n = 0;
    ks.size = HD_NELEMS(ks.stack);
    while (p != NULL && p < end) {
        if (*p == '{' || *p == '[') {
            if (depth == HD_JTEXT_DEPTH) {
                rc = HD_DECLINED;
                break;
            }
            close[depth] = (char)(*p + 2); /* '{' + 2 is '}', '[' + 2 ']' */
            base[depth++] = ks.n;
            p = skip_ws(p + 1, end);
            if (p == end || *p != close[depth - 1]) {
                p = check_key(p, end, close[depth - 1] == '}', &ks);
                continue;
            }
        } else if ((p = check_scalar(p, end)) == NULL) {
            break;
        }
        p = skip_ws(p, end);
        while (p < end && *p == close[depth - 1]) {
            if (*p == '}' &&
                has_dup(ks.k + base[depth - 1], ks.n - base[depth - 1]))
                goto done;
            ks.n = base[--depth];
            p = skip_ws(p + 1, end);
            if (depth == 0) {
                rc = p == end ? HD_OK : HD_ERROR;
                goto done;
            }
        }
        if (p == end || *p != ',')
            break;
        p = check_key(skip_ws(p + 1, end), end, close[depth - 1] == '}', &ks);
    }
done:
    if (ks.k != ks.stack)
        free(ks.k);
    return rc;
}

/* ==== writer ==== */

void
hd_jbuf_init(struct hd_jbuf *b, size_t size)
{
    b->p = hd_alloc(size);
    b->len = 0;
    b->size = size;
}

void
hd_jbuf_grow(struct hd_jbuf *b, size_t n)
{
    while (b->len + n > b->size)
        b->size *= 2;
    b->p = hd_realloc(b->p, b->size);
}

static inline void
reserve(struct hd_jbuf *b, size_t n)
{
    if (b->len + n > b->size)
        hd_jbuf_grow(b, n);
}

void
hd_jbuf_compact(struct hd_jbuf *b, const char *p, size_t n)
{
    const char *end = p + n, *q;
    char *o;

    reserve(b, n);
    o = b->p + b->len;
    while (p < end) {
        q = skip_ws(p, end);
        if (q != p) {
            p = q;
            continue;
        }
        q = *p == '"' ? skip_string(p, end, 0) : p + 1;
        if (q == NULL)
            q = end; /* not valid after all: copied as it is */
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        p = q;
    }
    b->len = (size_t)(o - b->p);
}

void
hd_jbuf_str(struct hd_jbuf *b, const char *s)
{
    size_t n = strlen(s);
    char *o;

    reserve(b, n * 6 + 2); /* every byte \u00XX at worst */
    o = b->p + b->len;
    *o++ = '"';
    {
        /* ids and names: nothing to escape, copied at once */
        size_t plain = (size_t)(skip_plain(s, s + n, 0) - s);
        memcpy(o, s, plain);
        o += plain;
        s += plain;
    }
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
    char tmp[24], *q = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    /* by hand: sprintf was most of a record's integers */
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    hd_jbuf_raw(b, q, (size_t)(tmp + sizeof(tmp) - q));
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
