/*
 * t/unit/send/template.c: the Mustache subset of send/template.c: every
 * tag, lookups, sections, escaping, numbers, the limits and the syntax
 * errors with their positions, parse once / render many, hd_tpl_names().
 */
#include "send/template.c"

#include <stdio.h>

#include "tap.h"

static char got[HD_TPL_MAX_OUTPUT + 256];

/* Parses src, renders it against the JSON text ctx and returns the output,
 * "ERROR <name>" or "PARSE <message>" (in a static buffer). */
static const char *
run(const char *src, const char *ctx, int escape)
{
    struct hd_tpl *t;
    json_error_t je;
    json_t *j = NULL;
    char err[256], *out;
    const char *name;
    size_t n;

    t = hd_tpl_parse(src, strlen(src), err, sizeof(err));
    if (t == NULL) {
        snprintf(got, sizeof(got), "PARSE %s", err);
        return got;
    }
    if (ctx != NULL) {
        j = json_loads(ctx, 0, &je);
        if (j == NULL) {
            snprintf(got, sizeof(got), "BAD JSON %s", je.text);
            hd_tpl_free(t);
            return got;
        }
    }
    if (hd_tpl_render(t, j, escape, &out, &n, &name) == HD_OK) {
        snprintf(got, sizeof(got), "%s", out);
        free(out);
    } else {
        snprintf(got, sizeof(got), "ERROR %s", name ? name : "(null)");
    }
    json_decref(j);
    hd_tpl_free(t);
    return got;
}

/* src with \n, \r and \t made visible, for test descriptions */
static const char *
shown(const char *src)
{
    static char buf[4][160];
    static int k;
    char *d = buf[k++ % 4], *e = d + sizeof(buf[0]) - 3;

    for (; *src && d < e; src++) {
        if (*src == '\n' || *src == '\r' || *src == '\t') {
            *d++ = '\\';
            *d++ = *src == '\n' ? 'n' : *src == '\r' ? 'r' : 't';
        } else {
            *d++ = *src;
        }
    }
    *d = '\0';
    return buf[(k - 1) % 4];
}

static const struct {
    const char *src, *ctx, *want;
} plain[] = {
    /* variables and lookups */
    {"hello", "{}", "hello"},
    {"", "{}", ""},
    {"Hi {{name}}!", "{\"name\":\"Ana\"}", "Hi Ana!"},
    {"{{ name }}|{{\tname\n}}", "{\"name\":\"x\"}", "x|x"},
    {"{{user.email}}", "{\"user\":{\"email\":\"a@b.c\"}}", "a@b.c"},
    {"{{order.items.0.name}},{{order.items.1.name}}",
     "{\"order\":{\"items\":[{\"name\":\"pen\"},{\"name\":\"ink\"}]}}",
     "pen,ink"},
    {"{{a.1}}", "{\"a\":[10,20]}", "20"},
    {"{{a-b_c}}", "{\"a-b_c\":1}", "1"},
    {"{{0}}", "{\"0\":\"zero key\"}", "zero key"},
    /* scalars */
    {"{{i}} {{n}} {{b}}", "{\"i\":-42,\"n\":9007199254740993,\"b\":0}",
     "-42 9007199254740993 0"},
    {"{{r}}", "{\"r\":0.1}", "0.1"},
    {"{{r}}", "{\"r\":2.5}", "2.5"},
    {"{{r}}", "{\"r\":3.0}", "3"},
    {"{{r}}", "{\"r\":1e300}", "1e+300"},
    {"{{r}}", "{\"r\":0.30000000000000004}", "0.30000000000000004"},
    {"{{r}}", "{\"r\":-1.5e-7}", "-1.5e-07"},
    {"{{t}}/{{f}}/{{z}}.", "{\"t\":true,\"f\":false,\"z\":null}",
     "true/false/."},
    /* sections */
    {"{{#s}}yes{{/s}}", "{\"s\":\"x\"}", "yes"},
    {"{{#s}}yes{{/s}}", "{\"s\":\"\"}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":true}", "yes"},
    {"{{#s}}yes{{/s}}", "{\"s\":false}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":1}", "yes"},
    {"{{#s}}yes{{/s}}", "{\"s\":0}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":0.0}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":0.5}", "yes"},
    {"{{#s}}yes{{/s}}", "{\"s\":null}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":{}}", ""},
    {"{{#s}}yes{{/s}}", "{\"s\":[]}", ""},
    {"{{#s}}yes{{/s}}", "{}", ""},
    {"a{{#s}}{{/s}}b", "{\"s\":1}", "ab"},
    {"{{#user}}{{name}} <{{email}}>{{/user}}",
     "{\"user\":{\"name\":\"Ana\",\"email\":\"a@b\"}}", "Ana <a@b>"},
    {"{{#user}}{{name}} from {{city}}{{/user}}",
     "{\"city\":\"Porto\",\"user\":{\"name\":\"Ana\"}}", "Ana from Porto"},
    {"{{#user}}{{name}}{{/user}}",
     "{\"name\":\"outer\",\"user\":{\"name\":\"inner\"}}", "inner"},
    {"{{#items}}[{{name}}]{{/items}}",
     "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}",
     "[a][b][c]"},
    {"{{#items}}{{.}},{{/items}}", "{\"items\":[1,\"two\",3.5,true,null]}",
     "1,two,3.5,true,,"},
    {"{{#m}}{{#.}}{{.}}{{/.}};{{/m}}", "{\"m\":[[1,2],[3]]}", "12;3;"},
    {"{{#coupon}}Code: {{.}}{{/coupon}}", "{\"coupon\":\"SAVE10\"}",
     "Code: SAVE10"},
    {"{{#a}}{{#b}}{{#c}}{{x}}{{/c}}{{/b}}{{/a}}",
     "{\"a\":{\"b\":{\"c\":{\"k\":1}}},\"x\":\"deep\"}", "deep"},
    {"{{#a.b}}{{c}}{{/a.b}}", "{\"a\":{\"b\":{\"c\":7}}}", "7"},
    /* the first part is found (a), the rest fails: no search outwards */
    {"{{#user}}{{user.name}}{{/user}}", "{\"user\":{\"id\":1},\"name\":\"n\"}",
     "ERROR user.name"},
    /* inverted */
    {"{{^s}}none{{/s}}", "{}", "none"},
    {"{{^s}}none{{/s}}", "{\"s\":[]}", "none"},
    {"{{^s}}none{{/s}}", "{\"s\":false}", "none"},
    {"{{^s}}none{{/s}}", "{\"s\":[1]}", ""},
    {"{{^s}}none{{/s}}", "{\"s\":\"x\"}", ""},
    {"{{#s}}{{.}}{{/s}}{{^s}}-{{/s}}", "{\"s\":\"a\"}", "a"},
    /* comments */
    {"a{{! a comment }}b", "{}", "ab"},
    {"a{{!multi\nline {{ tag }}b", "{}", "ab"},
    /* standalone lines */
    {"begin\n{{#s}}\n  line\n{{/s}}\nend\n", "{\"s\":1}",
     "begin\n  line\nend\n"},
    {"begin\n  {{#s}}  \r\nx\n  {{/s}}\nend", "{\"s\":1}", "begin\nx\nend"},
    {"{{! c }}\nfirst", "{}", "first"},
    {"a {{#s}}b{{/s}} c\n", "{\"s\":1}", "a b c\n"},
    {"  {{name}}\n", "{\"name\":\"v\"}", "  v\n"},
    {"{{#s}}\nx\n{{/s}}", "{\"s\":1}", "x\n"},
    /* not tags */
    {"{ } }} {x}", "{}", "{ } }} {x}"},
    /* UTF-8 in text and values, untouched */
    {"Olá {{n}} — ✓ 🎉", "{\"n\":\"João 日本\"}", "Olá João 日本 — ✓ 🎉"},
    /* ctx NULL acts as {} */
    {"x{{#a}}y{{/a}}", NULL, "x"},
};

static void
test_plain(void)
{
    char desc[256];

    for (size_t i = 0; i < HD_NELEMS(plain); i++) {
        snprintf(desc, sizeof(desc), "\"%s\" with %s", shown(plain[i].src),
                 plain[i].ctx ? plain[i].ctx : "NULL");
        is_str(run(plain[i].src, plain[i].ctx, 0), plain[i].want, desc);
    }
}

static void
test_escape(void)
{
    const char *ctx = "{\"v\":\"a&b<c>d\\\"e'f\"}";

    is_str(run("{{v}}", ctx, 1), "a&amp;b&lt;c&gt;d&quot;e&#39;f",
           "escaped: & < > \" '");
    is_str(run("{{{v}}}", ctx, 1), "a&b<c>d\"e'f", "{{{v}}} not escaped");
    is_str(run("{{&v}}|{{& v }}", ctx, 1), "a&b<c>d\"e'f|a&b<c>d\"e'f",
           "{{& v}} not escaped");
    is_str(run("{{v}}", ctx, 0), "a&b<c>d\"e'f", "no escaping when off");
    is_str(run("<b>{{v}}</b>", "{\"v\":\"&&\"}", 1), "<b>&amp;&amp;</b>",
           "template text is never escaped");
    is_str(run("{{v}}", "{\"v\":\"<<<\"}", 1), "&lt;&lt;&lt;",
           "runs of specials");
    is_str(run("{{v}}", "{\"v\":\"plain ünïcode\"}", 1), "plain ünïcode",
           "nothing to escape, UTF-8 untouched");
    is_str(run("{{#l}}{{.}}{{/l}}", "{\"l\":[\"<\",\"&\"]}", 1), "&lt;&amp;",
           "{{.}} escaped too");
    is_str(run("{{n}}", "{\"n\":1}", 1), "1", "numbers unaffected");
}

static void
test_embedded_nul(void)
{
    struct hd_tpl *t;
    json_t *j;
    char *out, err[128];
    const char *name;
    size_t n;
    const char src[] = "a\0{{v}}";

    t = hd_tpl_parse(src, sizeof(src) - 1, err, sizeof(err));
    ok(t != NULL, "NUL in template text parses");
    j = json_pack("{s:s%}", "v", "x\0y", (size_t)3);
    is_int(hd_tpl_render(t, j, 1, &out, &n, &name), HD_OK, "renders");
    ok(n == 5 && memcmp(out, "a\0x\0y", 5) == 0 && out[5] == '\0',
       "NULs in text and value kept, *outlen counts them");
    free(out);
    json_decref(j);
    hd_tpl_free(t);
}

static const struct {
    const char *src, *ctx, *want;
} missing[] = {
    {"Hi {{name}}", "{}", "ERROR name"},
    {"{{a}}{{b}}{{c}}", "{\"a\":1}", "ERROR b"},
    {"{{user.email}}", "{\"user\":{}}", "ERROR user.email"},
    {"{{user.email}}", "{}", "ERROR user.email"},
    {"{{user.email}}", "{\"user\":\"str\"}", "ERROR user.email"},
    {"{{user.email.x}}", "{\"user\":{\"email\":\"e\"}}", "ERROR user.email.x"},
    {"{{a.2}}", "{\"a\":[1,2]}", "ERROR a.2"},
    {"{{a.x}}", "{\"a\":[1,2]}", "ERROR a.x"},
    {"{{a.01x}}", "{\"a\":[1,2]}", "ERROR a.01x"},
    {"{{a.99999999999}}", "{\"a\":[1,2]}", "ERROR a.99999999999"},
    {"{{{raw}}}", "{}", "ERROR raw"},
    {"{{& raw}}", "{}", "ERROR raw"},
    {"{{.}}", "{}", "ERROR ."},
    /* present section, missing inside it: an error naming it */
    {"{{#u}}{{nick}}{{/u}}", "{\"u\":{\"id\":1}}", "ERROR nick"},
    {"{{#l}}{{x}}{{/l}}", "{\"l\":[{\"x\":1},{}]}", "ERROR x"},
    /* missing section: skipped, names inside not needed */
    {"a{{#u}}{{nick}}{{/u}}b", "{}", "ab"},
    {"a{{^u}}{{nick}}{{/u}}b", "{\"u\":1}", "ab"},
    {"{{^u}}{{nick}}{{/u}}", "{}", "ERROR nick"},
    /* objects and arrays are not text */
    {"{{u}}", "{\"u\":{\"a\":1}}", "ERROR u"},
    {"{{l}}", "{\"l\":[1]}", "ERROR l"},
    {"{{#l}}{{.}}{{/l}}", "{\"l\":[[1]]}", "ERROR ."},
};

static void
test_missing(void)
{
    char desc[256];

    for (size_t i = 0; i < HD_NELEMS(missing); i++) {
        snprintf(desc, sizeof(desc), "\"%s\" with %s -> %s",
                 shown(missing[i].src), missing[i].ctx, missing[i].want);
        is_str(run(missing[i].src, missing[i].ctx, 0), missing[i].want, desc);
    }
}

static void
test_missing_lifetime(void)
{
    struct hd_tpl *t;
    json_t *j = json_object();
    char *out = (char *)"x";
    const char *name = NULL;
    size_t n = 9;

    t = hd_tpl_parse("{{order.id}}", 12, NULL, 0);
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_ERROR, "HD_ERROR");
    ok(out == NULL && n == 0, "*out NULL and *outlen 0 on error");
    json_decref(j);
    is_str(name, "order.id", "name still valid after ctx is freed");
    hd_tpl_free(t);
}

static const struct {
    const char *src, *want;
} syntax[] = {
    {"Hi {{name", "PARSE 1:4: unclosed tag (no }} after {{)"},
    {"ab\ncd {{", "PARSE 2:4: unclosed tag (no }} after {{)"},
    {"{{{name}}", "PARSE 1:1: unclosed tag ({{{ needs }}})"},
    {"{{{name}} }", "PARSE 1:1: unclosed tag ({{{ needs }}})"},
    {"{{}}", "PARSE 1:1: empty tag"},
    {"{{  }}", "PARSE 1:1: empty tag"},
    {"{{#}}", "PARSE 1:1: empty tag"},
    {"x\n  {{#items}}\n{{name}}", "PARSE 2:3: unclosed section {{#items}}"},
    {"{{#a}}{{^b}}", "PARSE 1:7: unclosed section {{^b}}"},
    {"{{/a}}", "PARSE 1:1: {{/a}} closes no open section"},
    {"{{#a}}\n{{#b}}x{{/a}}",
     "PARSE 2:8: {{/a}} does not close {{#b}} opened at 2:1"},
    {"{{#a}}{{/b}}", "PARSE 1:7: {{/b}} does not close {{#a}} opened at 1:1"},
    {"{{=<% %>=}}", "PARSE 1:1: delimiter changes ({{=) are not supported"},
    {"{{> part}}", "PARSE 1:1: partials and blocks ({{>) are not supported"},
    {"{{< part}}", "PARSE 1:1: partials and blocks ({{<) are not supported"},
    {"{{$ blk}}", "PARSE 1:1: partials and blocks ({{$) are not supported"},
    {"é {{a b}}", "PARSE 1:3: bad name in tag (use \".\" or letters, digits, "
                  "_ and - in parts joined by single dots, at most 128 "
                  "bytes)"},
};

static void
test_syntax(void)
{
    static const char *bad[] = {
        "{{a b}}",  "{{.a}}",  "{{a.}}",    "{{a..b}}", "{{..}}",   "{{a/b}}",
        "{{a:b}}",  "{{é}}",   "{{ {a} }}", "{{a\"}}",  "{{<}}",    "{{#a b}}",
        "{{a}b}}}", "{{#.x}}", "{{$}}",     "{{%a}}",   "{{a\n}b}}"};
    char desc[256], err[256], name[200];
    struct hd_tpl *t;

    for (size_t i = 0; i < HD_NELEMS(syntax); i++) {
        snprintf(desc, sizeof(desc), "\"%s\" -> %s", shown(syntax[i].src),
                 syntax[i].want);
        is_str(run(syntax[i].src, "{}", 0), syntax[i].want, desc);
    }
    for (size_t i = 0; i < HD_NELEMS(bad); i++) {
        snprintf(desc, sizeof(desc), "bad name \"%s\" refused", shown(bad[i]));
        ok(hd_tpl_parse(bad[i], strlen(bad[i]), err, sizeof(err)) == NULL, "%s",
           desc);
    }

    memset(name, 'a', 128);
    snprintf(name + 128, sizeof(name) - 128, "}}");
    memmove(name + 2, name, 131);
    memcpy(name, "{{", 2);
    t = hd_tpl_parse(name, strlen(name), err, sizeof(err));
    ok(t != NULL && strlen(name) == 132, "a 128-byte name is fine");
    hd_tpl_free(t);
    memmove(name + 3, name + 2, 131);
    name[2] = 'a';
    ok(hd_tpl_parse(name, strlen(name), err, sizeof(err)) == NULL,
       "a 129-byte name is refused");

    /* short or absent error buffers */
    ok(hd_tpl_parse("{{", 2, NULL, 0) == NULL, "err NULL is fine");
    memset(err, 'x', sizeof(err));
    ok(hd_tpl_parse("{{", 2, err, 5) == NULL && strcmp(err, "1:1:") == 0,
       "err truncated to errlen: \"%s\"", err);
    memset(err, 'x', sizeof(err));
    ok(hd_tpl_parse("{{/abc}}", 8, err, 9) == NULL &&
           strcmp(err, "1:1: {{/") == 0,
       "message truncated to errlen: \"%s\"", err);
}

static void
test_nesting(void)
{
    char src[4096], err[256], *p;
    struct hd_tpl *t;
    json_t *j;
    char *out;
    const char *name;
    size_t n;

    /* 16 levels: fine, and renders through all of them */
    p = src;
    for (int i = 0; i < HD_TPL_MAX_DEPTH; i++)
        p += sprintf(p, "{{#a}}");
    p += sprintf(p, "{{x}}");
    for (int i = 0; i < HD_TPL_MAX_DEPTH; i++)
        p += sprintf(p, "{{/a}}");
    t = hd_tpl_parse(src, strlen(src), err, sizeof(err));
    ok(t != NULL, "16 nested sections parse");
    j = json_pack("{s:[i,i],s:s}", "a", 1, 2, "x", "+");
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_OK,
           "and render (2^16 iterations)");
    is_int(n, 1 << 16, "65536 bytes");
    free(out);
    json_decref(j);
    hd_tpl_free(t);

    /* 17: refused at the 17th */
    p = src;
    for (int i = 0; i <= HD_TPL_MAX_DEPTH; i++)
        p += sprintf(p, "{{#a}}");
    for (int i = 0; i <= HD_TPL_MAX_DEPTH; i++)
        p += sprintf(p, "{{/a}}");
    is_str(run(src, "{}", 0), "PARSE 1:97: sections nested deeper than 16",
           "17 nested sections refused");

    /* deep but closed each time: fine */
    p = src;
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "{{#a}}{{/a}}");
    is_str(run(src, "{\"a\":1}", 0), "", "100 sibling sections are fine");

    /* 1000 opens: refused without recursing */
    {
        static char big[8000];

        p = big;
        for (int i = 0; i < 1000; i++)
            p += sprintf(p, "{{^a}}");
        is_str(run(big, "{}", 0), "PARSE 1:97: sections nested deeper than 16",
               "1000 nested sections refused");
    }
}

static void
test_limits(void)
{
    struct hd_tpl *t;
    json_t *j;
    char *src, *out, err[256];
    const char *name;
    size_t n;

    /* template size */
    src = malloc(HD_TPL_MAX_SRC + 2);
    memset(src, 'x', HD_TPL_MAX_SRC + 1);
    t = hd_tpl_parse(src, HD_TPL_MAX_SRC, err, sizeof(err));
    ok(t != NULL, "a 64 KiB template parses");
    is_int(hd_tpl_render(t, NULL, 0, &out, &n, &name), HD_OK, "renders");
    ok(n == HD_TPL_MAX_SRC && out[0] == 'x', "to itself");
    free(out);
    hd_tpl_free(t);
    t = hd_tpl_parse(src, HD_TPL_MAX_SRC + 1, err, sizeof(err));
    ok(t == NULL, "64 KiB + 1 refused");
    is_str(err, "1:1: template too large (65537 bytes, max 65536)",
           "  with a message");

    /* many tags in a big template */
    for (size_t i = 0; i + 5 <= HD_TPL_MAX_SRC; i += 5)
        memcpy(src + i, "{{a}}", 5);
    t = hd_tpl_parse(src, HD_TPL_MAX_SRC / 5 * 5, err, sizeof(err));
    ok(t != NULL, "13107 tags parse");
    j = json_pack("{s:s}", "a", "0123456789abcdefghijk");
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_ERROR,
           "13107 x 21 bytes is over 256 KiB");
    is_str(name, "(output too large)", "  named (output too large)");
    ok(out == NULL, "  no output");
    json_decref(j);
    j = json_pack("{s:s}", "a", "0123456789abcdefghij");
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_OK,
           "13107 x 20 bytes is just under");
    is_int(n, 13107 * 20, "  all of it");
    free(out);
    json_decref(j);
    hd_tpl_free(t);
    free(src);

    /* exactly the cap, then one more byte */
    t = hd_tpl_parse("{{#l}}{{.}}{{/l}}", 17, err, sizeof(err));
    j = json_pack("{s:[]}", "l");
    src = malloc(1024 + 1);
    memset(src, 'y', 1024);
    src[1024] = '\0';
    for (int i = 0; i < 256; i++)
        json_array_append_new(json_object_get(j, "l"), json_string(src));
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_OK,
           "exactly 256 KiB renders");
    is_int(n, HD_TPL_MAX_OUTPUT, "  256 KiB");
    free(out);
    json_array_append_new(json_object_get(j, "l"), json_string("z"));
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_ERROR,
           "256 KiB + 1 refused");
    is_str(name, "(output too large)", "  named (output too large)");
    json_decref(j);
    free(src);

    /* escaping can push it over too */
    j = json_pack("{s:[s]}", "l", "&");
    for (int i = 0; i < 60000; i++)
        json_array_append_new(json_object_get(j, "l"), json_string("&"));
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_OK,
           "60001 x & unescaped fits");
    free(out);
    is_int(hd_tpl_render(t, j, 1, &out, &n, &name), HD_ERROR,
           "60001 x &amp; does not");
    is_str(name, "(output too large)", "  named (output too large)");
    json_decref(j);
    hd_tpl_free(t);

    /* silent but huge: nested loops over a big array, no output */
    t = hd_tpl_parse("{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}", 48,
                     err, sizeof(err));
    j = json_pack("{s:[]}", "a");
    for (int i = 0; i < 1000; i++)
        json_array_append_new(json_object_get(j, "a"), json_integer(i));
    is_int(hd_tpl_render(t, j, 0, &out, &n, &name), HD_ERROR,
           "10^12 empty iterations stop");
    is_str(name, "(render too long)", "  named (render too long)");
    json_decref(j);
    hd_tpl_free(t);
}

static void
test_parse_once(void)
{
    struct hd_tpl *t;
    json_t *a, *b, *c;
    char *out, err[128];
    const char *name;
    size_t n;
    const char *src = "Dear {{user.name}},{{#items}} {{qty}}x{{name}}"
                      "{{/items}}{{^items}} nothing{{/items}}.";

    t = hd_tpl_parse(src, strlen(src), err, sizeof(err));
    a = json_loads("{\"user\":{\"name\":\"Ana\"},\"items\":[{\"qty\":2,"
                   "\"name\":\"pen\"},{\"qty\":1,\"name\":\"ink\"}]}",
                   0, NULL);
    b = json_loads("{\"user\":{\"name\":\"Rui\"}}", 0, NULL);
    c = json_loads("{\"items\":[]}", 0, NULL);

    for (int round = 0; round < 3; round++) {
        hd_tpl_render(t, a, 0, &out, &n, &name);
        is_str(out, "Dear Ana, 2xpen 1xink.", "render a");
        free(out);
        hd_tpl_render(t, b, 0, &out, &n, &name);
        is_str(out, "Dear Rui, nothing.", "render b");
        free(out);
        is_int(hd_tpl_render(t, c, 0, &out, &n, &name), HD_ERROR,
               "render c fails");
        is_str(name, "user.name", "  naming user.name");
    }
    json_decref(a);
    json_decref(b);
    json_decref(c);
    hd_tpl_free(t);
    hd_tpl_free(NULL);
    ok(1, "hd_tpl_free(NULL) is fine");
}

struct names {
    char buf[512];
};

static void
on_name(const char *name, int required, void *arg)
{
    struct names *ns = arg;
    size_t l = strlen(ns->buf);

    snprintf(ns->buf + l, sizeof(ns->buf) - l, "%s%s%s", l ? " " : "", name,
             required ? "!" : "?");
}

static void
on_count(const char *name, int required, void *arg)
{
    (*(int *)arg)++;
}

static void
test_names(void)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"no tags", ""},
        {"{{a}}{{b.c}}{{{d}}}{{& e}}", "a! b.c! d! e!"},
        {"{{a}}{{a}}{{ a }}", "a!"},
        {"{{#s}}{{x}}{{.}}{{/s}}{{^t}}{{y}}{{/t}}", "s? x? t? y?"},
        {"{{#s}}{{x}}{{/s}}{{x}}", "s? x!"},
        {"{{x}}{{#s}}{{x}}{{/s}}", "x! s?"},
        {"{{#a}}{{#b}}{{/b}}{{/a}}{{c}}", "a? b? c!"},
        {"{{! {{not}} }}{{.}}", ""},
    };
    struct hd_tpl *t;
    struct names ns;
    char err[128];

    for (size_t i = 0; i < HD_NELEMS(cases); i++) {
        t = hd_tpl_parse(cases[i].src, strlen(cases[i].src), err, sizeof(err));
        ns.buf[0] = '\0';
        hd_tpl_names(t, on_name, &ns);
        is_str(ns.buf, cases[i].want, shown(cases[i].src));
        hd_tpl_free(t);
    }

    /* many distinct names: each once */
    {
        static char src[20000];
        char *p = src;
        int count = 0;

        for (int i = 0; i < 1000; i++)
            p += sprintf(p, "{{n%d}}{{n%d}}", i, i / 2);
        t = hd_tpl_parse(src, strlen(src), err, sizeof(err));
        hd_tpl_names(t, on_count, &count);
        is_int(count, 1000, "1000 distinct names of 2000 tags, each once");
        hd_tpl_free(t);
    }
}

static const struct tap_case cases[] = {
    {"variables, lookups, scalars, sections", test_plain},
    {"html escaping", test_escape},
    {"NUL bytes", test_embedded_nul},
    {"missing names", test_missing},
    {"lifetime of *name", test_missing_lifetime},
    {"syntax errors", test_syntax},
    {"nesting", test_nesting},
    {"size and work limits", test_limits},
    {"parse once, render many", test_parse_once},
    {"hd_tpl_names", test_names},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
