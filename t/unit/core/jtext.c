/*
 * t/unit/core/jtext.c: the JSON text scanner and writer, checked against
 * jansson (the reference reader of every record): members of what jansson
 * dumps, strings with every escape, refused malformed text, and writer
 * output that jansson reads back to the same values. hd_jtext_valid is
 * checked case by case against jansson itself, so each expectation in
 * its table is jansson's verdict too.
 */
#include "core/jtext.c"

#include <float.h>
#include <jansson.h>
#include <stdio.h>

#include "tap.h"

static void
test_members(void)
{
    const char *t =
        "{\"id\":\"d1\",\"n\":-42,\"ok\":true,\"nil\":null,"
        "\"o\":{\"a\":[1,{\"b\":\"}]\"}],\"c\":\"x\\\"y\"},\"tl\":[],"
        "\"f\":1.5e3}";
    struct hd_jmember m[16];
    char buf[64];
    int n = hd_jtext_members(t, strlen(t), m, 16);

    is_int(n, 7, "seven members");
    is_int(hd_jtext_str(hd_jtext_get(m, n, "id"), buf, sizeof(buf)), 2,
           "string length");
    is_str(buf, "d1", "string value");
    is_int((int)hd_jtext_int(hd_jtext_get(m, n, "n")), -42, "negative int");
    ok(hd_jtext_true(hd_jtext_get(m, n, "ok")), "true");
    ok(!hd_jtext_true(hd_jtext_get(m, n, "nil")), "null is not true");
    ok(hd_jtext_get(m, n, "absent") == NULL, "absent key");
    {
        const struct hd_jspan *o = hd_jtext_get(m, n, "o");
        ok(o && o->n == strlen("{\"a\":[1,{\"b\":\"}]\"}],\"c\":\"x\\\"y\"}") &&
               memcmp(o->p, "{\"a\"", 4) == 0,
           "nested value spans its brackets, strings with brackets skipped");
    }
    ok(hd_jtext_str(hd_jtext_get(m, n, "n"), buf, sizeof(buf)) == HD_ERROR,
       "an int is not a string");
    is_int((int)hd_jtext_int(hd_jtext_get(m, n, "f")), 0, "a float is no int");
    is_int(hd_jtext_members(t, strlen(t), m, 6), HD_ERROR, "over max");
    is_int(hd_jtext_members("{}", 2, m, 16), 0, "empty object");
    is_int(hd_jtext_members(" { \"a\" : 1 , \"b\" : [ ] } ", 25, m, 16), 2,
           "whitespace");
}

static void
test_bad(void)
{
    static const char *bad[] = {"",
                                "[]",
                                "{",
                                "{\"a\"}",
                                "{\"a\":}",
                                "{\"a\":1",
                                "{\"a\":1,}",
                                "{\"a\":[}",
                                "{\"a\":[1}",
                                "{a:1}",
                                "{\"a\":\"x",
                                "{\"a\":1}x",
                                "{\"a\":{]}",
                                "{\"a\":1 \"b\":2}",
                                "{\"a\":\"\x01\"}"};
    struct hd_jmember m[8];

    for (size_t i = 0; i < HD_NELEMS(bad); i++)
        ok(hd_jtext_members(bad[i], strlen(bad[i]), m, 8) == HD_ERROR,
           "refused: %s", bad[i]);
}

static void
test_strings_vs_jansson(void)
{
    static const char *vals[] = {"plain",
                                 "",
                                 "quote \" and \\ backslash",
                                 "tab\tnl\ncr\r",
                                 "ctl \x01\x1f",
                                 "utf-8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                                 "/slash/"};
    char buf[128];

    for (size_t i = 0; i < HD_NELEMS(vals); i++) {
        /* jansson writes, we read */
        json_t *o = json_pack("{s:s}", "k", vals[i]);
        char *t = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        struct hd_jmember m[2];
        int n = hd_jtext_members(t, strlen(t), m, 2);
        struct hd_jbuf b;
        json_t *back;

        hd_jtext_str(hd_jtext_get(m, n, "k"), buf, sizeof(buf));
        ok(strcmp(buf, vals[i]) == 0, "read what jansson wrote (ascii): %zu",
           i);
        free(t);
        t = json_dumps(o, JSON_COMPACT | JSON_ESCAPE_SLASH);
        n = hd_jtext_members(t, strlen(t), m, 2);
        hd_jtext_str(hd_jtext_get(m, n, "k"), buf, sizeof(buf));
        ok(strcmp(buf, vals[i]) == 0,
           "read what jansson wrote (escaped /): %zu", i);
        free(t);
        json_decref(o);

        /* we write, jansson reads */
        hd_jbuf_init(&b, 4);
        hd_jbuf_raw(&b, "{", 1);
        hd_jbuf_key(&b, "k");
        hd_jbuf_str(&b, vals[i]);
        hd_jbuf_key(&b, "i");
        hd_jbuf_int(&b, -7);
        hd_jbuf_raw(&b, "}", 1);
        back = json_loadb(b.p, b.len, 0, NULL);
        ok(back &&
               strcmp(json_string_value(json_object_get(back, "k")), vals[i]) ==
                   0 &&
               json_integer_value(json_object_get(back, "i")) == -7,
           "jansson reads what we wrote: %zu", i);
        json_decref(back);
        free(b.p);
    }
    {
        struct hd_jspan s = {"\"ab\"", 4};
        is_int(hd_jtext_str(&s, buf, 3), 2, "fits with its NUL");
        is_int(hd_jtext_str(&s, buf, 2), HD_ERROR, "does not fit");
        s.p = "\"\\ud800x\"";
        s.n = strlen(s.p);
        is_int(hd_jtext_str(&s, buf, sizeof(buf)), HD_ERROR, "lone surrogate");
        s.p = "\"\\u0000\"";
        s.n = strlen(s.p);
        is_int(hd_jtext_str(&s, buf, sizeof(buf)), HD_ERROR, "NUL refused");
    }
}

/* an object of strings only, checked without storing its members */
static void
test_strings_only(void)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"{}", 1},
        {" { } ", 1},
        {"{\"a\":\"1\"}", 1},
        {"{\"a\" : \"x:y\" , \"b\":\"\\\"\"}", 1},
        {"{\"a\":1}", 0},
        {"{\"a\":\"1\",\"b\":{}}", 0},
        {"{\"a\":[\"x\"]}", 0},
        {"{\"a\":null}", 0},
        {"[\"a\"]", 0},
        {"\"a\"", 0},
        {"{\"a\":\"1\"", 0},
        {"{\"a\":\"1\"} x", 0},
        {"", 0},
    };
    for (size_t i = 0; i < HD_NELEMS(cases); i++)
        ok(hd_jtext_strings_only(cases[i].text, strlen(cases[i].text)) ==
               cases[i].want,
           "strings only: %s", cases[i].text);
}

/* integers by hand and strings copied in runs: as printf and jansson */
static void
test_writer_scalars(void)
{
    static const int64_t ints[] = {
        0, 1, -1, 9, 10, -10, 1796434735873LL, INT64_MAX, INT64_MIN, -1234567};
    static const char *strs[] = {
        "",
        "n0001a243dab3010000-0",
        "abcdefghijklmnop\"q",
        "abcdefgh\\ijklmnop",
        "line one\nline two\tand\rthree\x01",
        "\x1f at the front, then plain text",
        "caf\xc3\xa9 and more than eight bytes \xe2\x82\xac",
    };
    char want[32];
    struct hd_jbuf b;

    for (size_t i = 0; i < HD_NELEMS(ints); i++) {
        hd_jbuf_init(&b, 1); /* grows */
        hd_jbuf_int(&b, ints[i]);
        snprintf(want, sizeof(want), "%lld", (long long)ints[i]);
        ok(b.len == strlen(want) && memcmp(b.p, want, b.len) == 0, "integer %s",
           want);
        free(b.p);
    }
    for (size_t i = 0; i < HD_NELEMS(strs); i++) {
        json_t *back;
        hd_jbuf_init(&b, 2);
        hd_jbuf_str(&b, strs[i]);
        back = json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
        ok(back && strcmp(json_string_value(back), strs[i]) == 0,
           "string %zu reads back", i);
        json_decref(back);
        free(b.p);
    }
    hd_jbuf_init(&b, 8);
    hd_jbuf_str(&b, "abcdefghij\"k\\l\nm");
    ok(b.len == 21 && memcmp(b.p, "\"abcdefghij\\\"k\\\\l\\nm\"", 21) == 0,
       "escapes after a plain run");
    free(b.p);
}

static void
test_json_writer(void)
{
    static const char *docs[] = {
        "{}", "[]",
        "{\"a\":[1,-2,3.5,1e300,-0.0,true,false,null,\"s\\\"q\"],"
        "\"b\":{\"c\":{\"d\":[]}},\"u\":\"\u00e9\\n\"}",
        "[[[\"deep\"]],{\"k\":2.0}]", "{\"key \\\" with \\\\ and \\n\":1}"};

    for (size_t i = 0; i < HD_NELEMS(docs); i++) {
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY, NULL), *back;
        struct hd_jbuf b;

        hd_jbuf_init(&b, 2);
        hd_jbuf_json(&b, v);
        back = json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
        ok(v != NULL && json_equal(v, back), "round trip %zu: %.*s", i,
           (int)b.len, b.p);
        ok(json_is_real(json_object_get(back, "k")) || i != 3 ||
               json_is_real(json_object_get(json_array_get(back, 1), "k")),
           "a real stays a real");
        json_decref(v);
        json_decref(back);
        free(b.p);
    }
}

/* a case for hd_jtext_valid: sizeof keeps the NUL bytes in the text */
struct vcase {
    const char *s;
    size_t n;
    int want;
    const char *why;
};

#define V(s, want, why)                                                        \
    {                                                                          \
        s, sizeof(s) - 1, want, why                                            \
    }

static const struct vcase valid_cases[] = {
    V("{}", HD_OK, "empty object"),
    V("[]", HD_OK, "empty array"),
    V(" \t\r\n{ } \n\t\r ", HD_OK, "whitespace around and inside"),
    V("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", HD_OK,
      "nested object"),
    V("[0,-0,1,-1,0.5,-1.5e+3,2E-2,1e308,-9223372036854775808,"
      "9223372036854775807,1.7976931348623157e308,1.7976931348623158e308]",
      HD_OK, "numbers, long long and double limits included"),
    V("[1e-400,-1e-99999,0e99999,0.000e400]", HD_OK,
      "underflow to zero and zero with a big exponent are fine"),
    V("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\uFFFF\"]",
      HD_OK, "every escape, surrogate pair, either hex case"),
    V("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf"
      "\x7f\"]",
      HD_OK, "raw UTF-8 up to U+10FFFF, and DEL"),
    V("{\"a\":{\"a\":{\"a\":[{\"a\":1},{\"a\":2}]}}}", HD_OK,
      "one key in nested and sibling objects is no duplicate"),
    V("{\"a\":1,\"b\":{\"a\":2,\"b\":3},\"c\":3}", HD_OK,
      "an inner object's keys do not count for the outer one"),
    V("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
      "\"k7\":7,\"k8\":8,\"k9\":9,\"k\":10,\"\":11,\"k\\u0031x\":12}",
      HD_OK, "many distinct keys (the sorted check)"),

    /* jansson's top level: an object or array (no JSON_DECODE_ANY) */
    V("", HD_ERROR, "empty text"),
    V(" \n", HD_ERROR, "only whitespace"),
    V("\"a\"", HD_ERROR, "a string at the top"),
    V("1", HD_ERROR, "a number at the top"),
    V("null", HD_ERROR, "a literal at the top"),
    V("{}x", HD_ERROR, "text after the value"),
    V("{}{}", HD_ERROR, "two values"),
    V("[] ,", HD_ERROR, "a comma after the value"),
    V("\xef\xbb\xbf{}", HD_ERROR, "a byte order mark"),
    V("\f{}", HD_ERROR, "form feed is no JSON whitespace"),

    /* raw NUL bytes */
    V("[\"a\0\"]", HD_ERROR, "raw NUL in a string"),
    V("[1]\0", HD_ERROR, "raw NUL after the value"),
    V("[\0]", HD_ERROR, "raw NUL between tokens"),

    /* bytes that are not UTF-8 */
    V("[\"\x80\"]", HD_ERROR, "a lone continuation byte"),
    V("[\"\xc0\xaf\"]", HD_ERROR, "overlong two-byte form"),
    V("[\"\xe0\x80\xaf\"]", HD_ERROR, "overlong three-byte form"),
    V("[\"\xf0\x80\x80\xaf\"]", HD_ERROR, "overlong four-byte form"),
    V("[\"\xed\xa0\x80\"]", HD_ERROR, "a surrogate in UTF-8"),
    V("[\"\xf4\x90\x80\x80\"]", HD_ERROR, "above U+10FFFF"),
    V("[\"\xf5\x80\x80\x80\"]", HD_ERROR, "lead byte 0xf5"),
    V("[\"\xff\"]", HD_ERROR, "byte 0xff"),
    V("[\"\xc3\"]", HD_ERROR, "a sequence cut by the quote"),
    V("[\"\xe2\x82\"]", HD_ERROR, "a three-byte sequence cut"),
    V("[\xc3\xa9]", HD_ERROR, "UTF-8 outside a string"),

    /* strings */
    V("[\"a\x01\"]", HD_ERROR, "a control byte in a string"),
    V("[\"a\nb\"]", HD_ERROR, "a raw newline in a string"),
    V("[\"a\tb\"]", HD_ERROR, "a raw tab in a string"),
    V("[\"abc]", HD_ERROR, "an unterminated string"),
    V("[\"\\\"]", HD_ERROR, "the closing quote escaped"),
    V("[\"\\x41\"]", HD_ERROR, "an unknown escape"),
    V("[\"\\'\"]", HD_ERROR, "an escaped apostrophe"),
    V("[\"\\U0041\"]", HD_ERROR, "\\U is not \\u"),
    V("[\"\\u12\"]", HD_ERROR, "a short \\u escape"),
    V("[\"\\u00zz\"]", HD_ERROR, "a \\u escape with non-hex digits"),
    V("[\"\\u0000\"]", HD_ERROR, "\\u0000 without JSON_ALLOW_NUL"),
    V("{\"a\\u0000\":1}", HD_ERROR, "\\u0000 in a key"),
    V("[\"\\ud800\"]", HD_ERROR, "a lone high surrogate"),
    V("[\"\\ud800x\"]", HD_ERROR, "a high surrogate before a plain byte"),
    V("[\"\\ud800\\n\"]", HD_ERROR, "a high surrogate before another escape"),
    V("[\"\\ud800\\u0041\"]", HD_ERROR, "a high surrogate before no low one"),
    V("[\"\\ud800\\ud800\"]", HD_ERROR, "two high surrogates"),
    V("[\"\\udc00\"]", HD_ERROR, "a lone low surrogate"),
    V("[\"\\ude00\\ud83d\"]", HD_ERROR, "a pair in the wrong order"),

    /* numbers */
    V("[01]", HD_ERROR, "a leading zero"),
    V("[-01]", HD_ERROR, "a leading zero after minus"),
    V("[+1]", HD_ERROR, "a plus sign"),
    V("[.5]", HD_ERROR, "no digit before the point"),
    V("[1.]", HD_ERROR, "no digit after the point"),
    V("[1.e5]", HD_ERROR, "no digit between point and exponent"),
    V("[1e]", HD_ERROR, "no exponent digits"),
    V("[1e+]", HD_ERROR, "no exponent digits after the sign"),
    V("[-]", HD_ERROR, "a minus alone"),
    V("[--1]", HD_ERROR, "two minus signs"),
    V("[0x10]", HD_ERROR, "hexadecimal"),
    V("[1.5.2]", HD_ERROR, "two points"),
    V("[Infinity]", HD_ERROR, "Infinity"),
    V("[NaN]", HD_ERROR, "NaN"),
    V("[9223372036854775808]", HD_ERROR, "an integer above LLONG_MAX"),
    V("[-9223372036854775809]", HD_ERROR, "an integer below LLONG_MIN"),
    V("[100000000000000000000]", HD_ERROR, "a 21-digit integer"),
    V("[1e309]", HD_ERROR, "a real above DBL_MAX"),
    V("[-1e400]", HD_ERROR, "a real below -DBL_MAX"),
    V("[1.7976931348623159e308]", HD_ERROR,
      "a real just past DBL_MAX's rounding"),
    V("[0.00001e314]", HD_ERROR, "overflow with leading zeros"),
    V("[1e99999999999999999999]", HD_ERROR, "a huge exponent"),

    /* literals */
    V("[tru]", HD_ERROR, "a cut literal"),
    V("[True]", HD_ERROR, "a capitalised literal"),
    V("[truex]", HD_ERROR, "a literal with more letters"),
    V("[true false]", HD_ERROR, "two literals without a comma"),
    V("[nul]", HD_ERROR, "a cut null"),

    /* structure */
    V("[1,]", HD_ERROR, "a trailing comma in an array"),
    V("[,1]", HD_ERROR, "a leading comma"),
    V("{\"a\":1,}", HD_ERROR, "a trailing comma in an object"),
    V("{,}", HD_ERROR, "a comma alone"),
    V("{\"a\" 1}", HD_ERROR, "no colon"),
    V("{\"a\":}", HD_ERROR, "no value"),
    V("{1:2}", HD_ERROR, "a number as key"),
    V("{a:1}", HD_ERROR, "an unquoted key"),
    V("{'a':1}", HD_ERROR, "a single-quoted key"),
    V("[1 2]", HD_ERROR, "no comma between elements"),
    V("{\"a\":1 \"b\":2}", HD_ERROR, "no comma between members"),
    V("[}", HD_ERROR, "mismatched brackets"),
    V("{]", HD_ERROR, "mismatched braces"),
    V("[[]", HD_ERROR, "an unclosed array"),
    V("[]]", HD_ERROR, "a bracket too many"),
    V("{\"a\":1", HD_ERROR, "an unclosed object"),

    /* JSON_REJECT_DUPLICATES, keys compared decoded */
    V("{\"a\":1,\"a\":2}", HD_ERROR, "a duplicate key"),
    V("{\"a\":1,\"b\":2,\"a\":3}", HD_ERROR, "a duplicate key, not adjacent"),
    V("{\"a\":1,\"\\u0061\":2}", HD_ERROR, "the same key via \\u0061"),
    V("{\"\xc3\xa9\":1,\"\\u00e9\":2}", HD_ERROR,
      "the same key raw and via \\u00e9"),
    V("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", HD_ERROR,
      "the same key raw and via a surrogate pair"),
    V("{\"/\":1,\"\\/\":2}", HD_ERROR, "the same key via \\/"),
    V("{\"\":1,\"\":2}", HD_ERROR, "a duplicate empty key"),
    V("{\"x\":{\"a\":1,\"a\":2}}", HD_ERROR, "a duplicate in an inner object"),
    V("[{\"a\":[],\"a\":[]}]", HD_ERROR, "a duplicate in an array's object"),
    V("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
      "\"k7\":7,\"k8\":8,\"k9\":9,\"k\\u0035\":10}",
      HD_ERROR, "a duplicate among many keys (the sorted check)"),
};

/* jansson skips one NUL byte right after a number or literal (load.c:
 * lex_unget_unsave() steps back onto it and stream_get() then reads past
 * it); jtext refuses every raw NUL, as stored text is used as a C string */
static void
test_nul_quirk(void)
{
    static const struct vcase cases[] = {
        V("[1\0]", HD_ERROR, "NUL after a number"),
        V("{\"a\":true\0}", HD_ERROR, "NUL after a literal"),
        V("[1.5e3\0,null\0]", HD_ERROR, "NUL after a real"),
    };

    for (size_t i = 0; i < HD_NELEMS(cases); i++) {
        json_t *j =
            json_loadb(cases[i].s, cases[i].n, JSON_REJECT_DUPLICATES, NULL);
        ok(j != NULL && hd_jtext_valid(cases[i].s, cases[i].n) == HD_ERROR,
           "jansson reads, jtext refuses: %s", cases[i].why);
        json_decref(j);
    }
}

/* a real with more digits than the stack copy for strtod holds, either
 * side of DBL_MAX: the heap copy gives jansson's answer too */
static void
test_long_real(void)
{
    char *s = hd_alloc(1024);
    int n;
    json_t *j;

    n = snprintf(s, 1024, "[%.0f.%0300d]", DBL_MAX, 0);
    j = json_loadb(s, (size_t)n, 0, NULL);
    ok(j != NULL && hd_jtext_valid(s, (size_t)n) == HD_OK,
       "DBL_MAX with 300 more digits");
    json_decref(j);
    n = snprintf(s, 1024, "[18%0307d.%0300d]", 0, 0);
    j = json_loadb(s, (size_t)n, 0, NULL);
    ok(j == NULL && hd_jtext_valid(s, (size_t)n) == HD_ERROR,
       "1.8e308 with 300 more digits");
    json_decref(j);
    free(s);
}

static char *
nested(int depth, char open, const char *inner)
{
    size_t in = strlen(inner), len = 0;
    char *s = hd_alloc((size_t)depth * 6 + in + 1);

    for (int i = 0; i < depth; i++) {
        if (open == '{' && i > 0)
            len += (size_t)sprintf(s + len, "\"a\":");
        s[len++] = open;
    }
    memcpy(s + len, inner, in);
    len += in;
    for (int i = 0; i < depth; i++)
        s[len++] = open + 2;
    s[len] = '\0';
    return s;
}

static void
test_valid(void)
{
    for (size_t i = 0; i < HD_NELEMS(valid_cases); i++) {
        const struct vcase *c = &valid_cases[i];
        int rc = hd_jtext_valid(c->s, c->n);
        json_t *j = json_loadb(c->s, c->n, JSON_REJECT_DUPLICATES, NULL);

        ok(rc == c->want && (j != NULL) == (c->want == HD_OK), "%s: %s",
           c->want == HD_OK ? "valid" : "refused", c->why);
        if (rc != c->want || (j != NULL) != (c->want == HD_OK))
            diag("got %d, jansson %s", rc, j ? "reads it" : "refuses it");
        json_decref(j);
    }
}

/* 64 containers deep is fine, 65 declined (jansson reads it: 2048 is its
 * limit); declined may come before an error further on */
static void
test_depth(void)
{
    static const struct {
        int depth;
        char open;
        const char *inner;
        int want;
        int jansson; /* whether jansson reads it */
    } cases[] = {
        {64, '[', "", HD_OK, 1},          {65, '[', "", HD_DECLINED, 1},
        {64, '[', "1", HD_OK, 1},         {65, '[', "1", HD_DECLINED, 1},
        {64, '{', "", HD_OK, 1},          {65, '{', "", HD_DECLINED, 1},
        {200, '[', "", HD_DECLINED, 1},   {65, '[', "01", HD_DECLINED, 0},
        {64, '[', "\"\\x\"", HD_ERROR, 0}};

    for (size_t i = 0; i < HD_NELEMS(cases); i++) {
        char *s = nested(cases[i].depth, cases[i].open, cases[i].inner);
        int rc = hd_jtext_valid(s, strlen(s));
        json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);

        ok(rc == cases[i].want && (j != NULL) == cases[i].jansson,
           "%d deep %c%s: %d", cases[i].depth, cases[i].open, cases[i].inner,
           cases[i].want);
        if (rc != cases[i].want)
            diag("got %d", rc);
        json_decref(j);
        free(s);
    }
}

static void
test_items(void)
{
    const char *t = " [ 1 , \"a,]\" ,\n[ 2 , [3] ] , {\"k\": [ ]}\t,true ] ";
    struct hd_jspan v[8];
    int n = hd_jtext_items(t, strlen(t), v, 8);

    is_int(n, 5, "five elements");
    ok(n == 5 && v[0].n == 1 && v[0].p[0] == '1', "a number");
    ok(n == 5 && v[1].n == 5 && memcmp(v[1].p, "\"a,]\"", 5) == 0,
       "a string with a comma and a bracket");
    ok(n == 5 && v[2].n == 11 && memcmp(v[2].p, "[ 2 , [3] ]", 11) == 0,
       "a nested array, its inner whitespace kept");
    ok(n == 5 && v[3].n == 10 && memcmp(v[3].p, "{\"k\": [ ]}", 10) == 0,
       "an object");
    ok(n == 5 && v[4].n == 4 && memcmp(v[4].p, "true", 4) == 0,
       "the last, before the bracket");
    is_int(hd_jtext_items("[]", 2, v, 8), 0, "empty");
    is_int(hd_jtext_items(" [ \n ] ", 7, v, 8), 0, "empty with whitespace");
    is_int(hd_jtext_items("[[]]", 4, v, 8), 1, "one empty array");
    is_int(hd_jtext_items(t, strlen(t), v, 4), HD_ERROR, "over max");
    is_int(hd_jtext_items("{}", 2, v, 8), HD_ERROR, "an object");
    is_int(hd_jtext_items("[1,]", 4, v, 8), HD_ERROR, "a trailing comma");
    is_int(hd_jtext_items("[1] x", 5, v, 8), HD_ERROR, "text after");
    is_int(hd_jtext_items("[1", 2, v, 8), HD_ERROR, "unclosed");
}

static void
test_compact(void)
{
    const char *t = " {\n\t\"a b\" : [ 1 , \"x \\\" y\\\\\" , \" \" ] ,\r\n"
                    "  \"c\\\\\" : { \"d\" :\ttrue } } ";
    const char *want = "{\"a b\":[1,\"x \\\" y\\\\\",\" \"],"
                       "\"c\\\\\":{\"d\":true}}";
    struct hd_jbuf b;

    hd_jbuf_init(&b, 4);
    hd_jbuf_raw(&b, "x", 1);
    hd_jbuf_compact(&b, t, strlen(t));
    ok(b.len == strlen(want) + 1 && memcmp(b.p, "x", 1) == 0 &&
           memcmp(b.p + 1, want, strlen(want)) == 0,
       "whitespace only inside strings kept, escaped quotes included");
    if (b.len != strlen(want) + 1)
        diag("got %.*s", (int)b.len, b.p);
    b.len = 0;
    hd_jbuf_compact(&b, "[]", 2);
    ok(b.len == 2 && memcmp(b.p, "[]", 2) == 0, "compact text unchanged");
    free(b.p);
}

static void
test_strlen(void)
{
    static const struct {
        const char *s;
        long want;
        const char *why;
    } cases[] = {
        {"\"abc\"", 3, "plain"},
        {"\"\"", 0, "empty"},
        {"\"a\\nb\"", 3, "\\n is one byte"},
        {"\"\\\"\\\\\\/\\b\\f\\r\\t\"", 7, "every short escape"},
        {"\"\\u0041\"", 1, "\\u0041 is one byte"},
        {"\"\\u00e9\"", 2, "\\u00e9 is two bytes"},
        {"\"\\u20ac\"", 3, "\\u20ac is three bytes"},
        {"\"\\ud83d\\ude00\"", 4, "a surrogate pair is four bytes"},
        {"\"\xc3\xa9\xf0\x9f\x98\x80\"", 6, "raw UTF-8 counts its bytes"},
        {"\"x\\ud83d\\ude00y\\u00e9z\"", 9, "mixed"},
        {"123", HD_ERROR, "a number"},
        {"\"abc", HD_ERROR, "no closing quote"},
        {"\"\\u0000\"", HD_ERROR, "\\u0000"},
        {"\"\\ud83d\"", HD_ERROR, "a lone surrogate"},
        {"\"\\q\"", HD_ERROR, "an unknown escape"},
    };

    for (size_t i = 0; i < HD_NELEMS(cases); i++) {
        struct hd_jspan v = {cases[i].s, strlen(cases[i].s)};
        ok(hd_jtext_strlen(&v) == cases[i].want, "strlen: %s", cases[i].why);
    }
    ok(hd_jtext_strlen(NULL) == HD_ERROR, "strlen: NULL");
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"members", test_members},
        {"bad", test_bad},
        {"strings vs jansson", test_strings_vs_jansson},
        {"json writer", test_json_writer},
        {"writer scalars", test_writer_scalars},
        {"strings only", test_strings_only},
        {"valid", test_valid},
        {"nul quirk", test_nul_quirk},
        {"long real", test_long_real},
        {"depth", test_depth},
        {"items", test_items},
        {"compact", test_compact},
        {"strlen", test_strlen},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
