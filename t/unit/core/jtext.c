/*
 * t/unit/core/jtext.c: the JSON text scanner and writer, checked against
 * jansson (the reference reader of every record): members of what jansson
 * dumps, strings with every escape, refused malformed text, and writer
 * output that jansson reads back to the same values.
 */
#include "core/jtext.c"

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

int
main(void)
{
    static const struct tap_case cases[] = {
        {"members", test_members},
        {"bad", test_bad},
        {"strings vs jansson", test_strings_vs_jansson},
        {"json writer", test_json_writer},
    };
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
