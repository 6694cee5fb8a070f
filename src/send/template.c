/*
 * template.c: owns struct hd_tpl, a Mustache subset parsed once into a
 * flat node array (a section node records where its body ends) and then
 * rendered by any thread against a jansson context. Parsed templates are
 * never written to again. Knows nothing of channels, locales or storage:
 * send and http decide which template and which data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/herald.h"
#include "send/template.h"

#define MAX_STEPS (4u * 1024 * 1024)

enum kind { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED };

struct node {
    uint8_t kind;
    uint16_t nparts; /* of the name; 0 for "." */
    uint32_t off;    /* N_TEXT: slice of src; sections: offset of the tag */
    uint32_t len;
    uint32_t name; /* offset in names: "a.b\0" then parts "a\0b\0" */
    uint32_t end;  /* sections: index of the node after the closing tag */
};

struct use {
    uint32_t name; /* offset in names */
    int required;
};

struct hd_tpl {
    char *src;
    struct node *nodes;
    uint32_t n, cap;
    char *names;
    uint32_t nameslen, namescap;
    struct use *uses;
    uint32_t nuses;
};

/* ==== parse ============================================================ */

struct parser {
    struct hd_tpl *t;
    const char *src;
    size_t len;
    uint32_t open[HD_TPL_MAX_DEPTH]; /* node index of each open section */
    int depth;
    char *err;
    size_t errlen;
};

/* 1-based line and column (in UTF-8 characters) of offset off */
static void
position(const char *src, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;

    for (size_t i = 0; i < off; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)src[i] & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static __attribute__((format(printf, 3, 4))) void
fail(struct parser *p, size_t off, const char *fmt, ...)
{
    unsigned line, col;
    va_list ap;
    int n;

    if (p->err == NULL || p->errlen == 0)
        return;
    position(p->src, off, &line, &col);
    n = snprintf(p->err, p->errlen, "%u:%u: ", line, col);
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - n, fmt, ap);
    va_end(ap);
}

static struct node *
add_node(struct hd_tpl *t, enum kind kind)
{
    struct node *nd;

    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->nodes = hd_realloc(t->nodes, t->cap * sizeof(*t->nodes));
    }
    nd = &t->nodes[t->n++];
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    return nd;
}

static void
add_text(struct hd_tpl *t, size_t from, size_t to)
{
    struct node *nd;

    if (to <= from)
        return;
    nd = add_node(t, N_TEXT);
    nd->off = from;
    nd->len = to - from;
}

static int
name_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* "." or parts of name_char joined by single dots; returns the number of
 * parts (0 for "."), or -1 */
static int
check_name(const char *s, size_t n)
{
    int parts = 1;

    if (n == 1 && s[0] == '.')
        return 0;
    if (n == 0 || n > HD_TPL_MAX_NAME || s[0] == '.' || s[n - 1] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i - 1] == '.')
                return -1;
            parts++;
        } else if (!name_char((unsigned char)s[i])) {
            return -1;
        }
    }
    return parts;
}

/* stores "a.b\0a\0b\0" and returns its offset in t->names */
static uint32_t
add_name(struct hd_tpl *t, const char *s, size_t n)
{
    uint32_t off = t->nameslen;
    char *d;

    while (t->namescap - t->nameslen < 2 * n + 2) {
        t->namescap = t->namescap ? t->namescap * 2 : 256;
        t->names = hd_realloc(t->names, t->namescap);
    }
    d = t->names + off;
    memcpy(d, s, n);
    d[n] = '\0';
    for (size_t i = 0; i < n; i++)
        d[n + 1 + i] = s[i] == '.' ? '\0' : s[i];
    d[2 * n + 1] = '\0';
    t->nameslen += 2 * n + 2;
    return off;
}

static int
blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* A tag [ts, te) alone on its line but for spaces and tabs: *from is where
 * the line starts, *to where the next one does. */
static int
standalone(const char *s, size_t len, size_t ts, size_t te, size_t *from,
           size_t *to)
{
    size_t b = ts, e = te;

    while (b > 0 && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (b > 0 && s[b - 1] != '\n')
        return 0;
    while (e < len && (s[e] == ' ' || s[e] == '\t'))
        e++;
    if (e < len && s[e] == '\r' && e + 1 < len && s[e + 1] == '\n')
        e++;
    if (e < len && s[e] != '\n')
        return 0;
    *from = b;
    *to = e < len ? e + 1 : e;
    return 1;
}

/* Collects the distinct names for hd_tpl_names() in document order,
 * deduplicated through an open-addressing table (a 64 KiB template may
 * hold ~13000 tags, too many for a quadratic scan). */
static void
collect_uses(struct hd_tpl *t)
{
    uint32_t nslots = 16, *slots;
    int depth = 0;
    uint32_t ends[HD_TPL_MAX_DEPTH + 1];

    while (nslots < 2 * t->n + 2)
        nslots *= 2;
    slots = hd_alloc(nslots * sizeof(*slots));
    memset(slots, 0xff, nslots * sizeof(*slots));
    t->uses = hd_alloc((t->n ? t->n : 1) * sizeof(*t->uses));

    for (uint32_t i = 0; i < t->n; i++) {
        struct node *nd = &t->nodes[i];
        const char *name;
        uint32_t h = 2166136261u, s;
        int required;

        while (depth > 0 && ends[depth - 1] == i)
            depth--;
        if (nd->kind == N_TEXT)
            continue;
        required = (nd->kind == N_VAR || nd->kind == N_RAW) && depth == 0;
        if (nd->kind == N_SECTION || nd->kind == N_INVERTED)
            ends[depth++] = nd->end;
        if (nd->nparts == 0)
            continue;
        name = t->names + nd->name;
        for (const char *c = name; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        for (s = h & (nslots - 1); slots[s] != UINT32_MAX;
             s = (s + 1) & (nslots - 1)) {
            if (strcmp(t->names + t->uses[slots[s]].name, name) == 0)
                break;
        }
        if (slots[s] == UINT32_MAX) {
            slots[s] = t->nuses;
            t->uses[t->nuses].name = nd->name;
            t->uses[t->nuses].required = required;
            t->nuses++;
        } else if (required) {
            t->uses[slots[s]].required = 1;
        }
    }
    free(slots);
}

struct tag {
    int sigil;      /* '#', '^', '/', '!', '&' or 0 */
    enum kind kind; /* for a variable or section */
    size_t name, namelen;
    int nparts;
    size_t text_end; /* where the text before the tag ends */
    size_t next;     /* where parsing resumes */
};

/* Reads the tag starting at ts ("{{"). Returns HD_ERROR after fail(). */
static int
read_tag(struct parser *p, size_t ts, struct tag *tg)
{
    const char *s = p->src, *c;
    size_t len = p->len, b, e, te, from, to;
    int triple, sigil = 0;

    b = ts + 2;
    triple = b < len && s[b] == '{';
    if (triple)
        b++;
    c = memmem(s + b, len - b, "}}", 2);
    if (c == NULL) {
        fail(p, ts, "unclosed tag (no }} after {{)");
        return HD_ERROR;
    }
    e = c - s;
    te = e + 2;
    if (triple) {
        if (te >= len || s[te] != '}') {
            fail(p, ts, "unclosed tag ({{{ needs }}})");
            return HD_ERROR;
        }
        te++;
    }
    while (b < e && blank(s[b]))
        b++;
    if (!triple && b < e && s[b] != '\0' && strchr("#^/!&=><$", s[b]) != NULL)
        sigil = s[b++];
    if (sigil == '=') {
        fail(p, ts, "delimiter changes ({{=) are not supported");
        return HD_ERROR;
    }
    if (sigil == '>' || sigil == '<' || sigil == '$') {
        fail(p, ts, "partials and blocks ({{%c) are not supported", sigil);
        return HD_ERROR;
    }

    tg->sigil = sigil;
    tg->kind = sigil == '#'             ? N_SECTION
               : sigil == '^'           ? N_INVERTED
               : sigil == '&' || triple ? N_RAW
                                        : N_VAR;
    if (sigil != '!') {
        while (b < e && blank(s[b]))
            b++;
        while (e > b && blank(s[e - 1]))
            e--;
        if (b == e) {
            fail(p, ts, "empty tag");
            return HD_ERROR;
        }
        tg->nparts = check_name(s + b, e - b);
        if (tg->nparts < 0) {
            fail(p, ts,
                 "bad name in tag (use \".\" or letters, digits, _ and - "
                 "in parts joined by single dots, at most %d bytes)",
                 HD_TPL_MAX_NAME);
            return HD_ERROR;
        }
        tg->name = b;
        tg->namelen = e - b;
    }

    tg->text_end = ts;
    tg->next = te;
    if (sigil != 0 && sigil != '&' && standalone(s, len, ts, te, &from, &to)) {
        tg->text_end = from;
        tg->next = to;
    }
    return HD_OK;
}

/* Opens a section or closes the innermost one. */
static int
section(struct parser *p, size_t ts, const struct tag *tg)
{
    struct hd_tpl *t = p->t;
    const char *want, *got = p->src + tg->name;
    struct node *nd;
    unsigned line, col;
    int n = (int)tg->namelen;

    if (tg->sigil != '/') {
        if (p->depth == HD_TPL_MAX_DEPTH) {
            fail(p, ts, "sections nested deeper than %d", HD_TPL_MAX_DEPTH);
            return HD_ERROR;
        }
        nd = add_node(t, tg->kind);
        nd->off = ts;
        nd->nparts = tg->nparts;
        nd->name = add_name(t, got, tg->namelen);
        p->open[p->depth++] = t->n - 1;
        return HD_OK;
    }

    if (p->depth == 0) {
        fail(p, ts, "{{/%.*s}} closes no open section", n, got);
        return HD_ERROR;
    }
    nd = &t->nodes[p->open[p->depth - 1]];
    want = t->names + nd->name;
    if (strlen(want) != tg->namelen || memcmp(want, got, tg->namelen) != 0) {
        position(p->src, nd->off, &line, &col);
        fail(p, ts, "{{/%.*s}} does not close {{%c%s}} opened at %u:%u", n, got,
             nd->kind == N_SECTION ? '#' : '^', want, line, col);
        return HD_ERROR;
    }
    nd->end = t->n;
    p->depth--;
    return HD_OK;
}

struct hd_tpl *
hd_tpl_parse(const char *src, size_t len, char *err, size_t errlen)
{
    struct parser p = {.src = src, .len = len, .err = err, .errlen = errlen};
    struct hd_tpl *t;
    struct node *nd;
    struct tag tg;
    size_t pos = 0, text = 0;
    const char *c;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > HD_TPL_MAX_SRC) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "1:1: template too large (%zu bytes, max %d)",
                     len, HD_TPL_MAX_SRC);
        return NULL;
    }

    t = hd_calloc(sizeof(*t));
    t->src = hd_alloc(len + 1);
    if (len > 0)
        memcpy(t->src, src, len);
    t->src[len] = '\0';
    p.t = t;
    p.src = t->src;

    while (pos < len &&
           (c = memmem(t->src + pos, len - pos, "{{", 2)) != NULL) {
        size_t ts = c - t->src;

        if (read_tag(&p, ts, &tg) != HD_OK)
            goto fail_free_tpl;
        add_text(t, text, tg.text_end);
        pos = text = tg.next;
        if (tg.sigil == '!')
            continue;
        if (tg.sigil == '#' || tg.sigil == '^' || tg.sigil == '/') {
            if (section(&p, ts, &tg) != HD_OK)
                goto fail_free_tpl;
            continue;
        }
        nd = add_node(t, tg.kind);
        nd->nparts = tg.nparts;
        nd->name = add_name(t, t->src + tg.name, tg.namelen);
    }
    add_text(t, text, len);

    if (p.depth > 0) {
        nd = &t->nodes[p.open[p.depth - 1]];
        fail(&p, nd->off, "unclosed section {{%c%s}}",
             nd->kind == N_SECTION ? '#' : '^', t->names + nd->name);
        goto fail_free_tpl;
    }
    collect_uses(t);
    return t;

fail_free_tpl:
    hd_tpl_free(t);
    return NULL;
}

void
hd_tpl_free(struct hd_tpl *t)
{
    if (t == NULL)
        return;
    free(t->src);
    free(t->nodes);
    free(t->names);
    free(t->uses);
    free(t);
}

void
hd_tpl_names(const struct hd_tpl *t, hd_tpl_name_fn fn, void *arg)
{
    for (uint32_t i = 0; i < t->nuses; i++)
        fn(t->names + t->uses[i].name, t->uses[i].required, arg);
}

/* ==== render =========================================================== */

struct render {
    const struct hd_tpl *t;
    json_t *stack[HD_TPL_MAX_DEPTH + 1]; /* [0] is ctx */
    int top;
    int escape;
    char *buf;
    size_t len, cap;
    size_t steps;
    const char *bad;
};

static int
append(struct render *r, const char *s, size_t n)
{
    if (n > HD_TPL_MAX_OUTPUT - r->len) {
        r->bad = "(output too large)";
        return HD_ERROR;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;

        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > HD_TPL_MAX_OUTPUT + 1)
            cap = HD_TPL_MAX_OUTPUT + 1;
        r->buf = hd_realloc(r->buf, cap);
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    return HD_OK;
}

static int
append_escaped(struct render *r, const char *s, size_t n)
{
    size_t run = 0;
    const char *ent;

    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            continue;
        }
        if (append(r, s + run, i - run) != HD_OK ||
            append(r, ent, strlen(ent)) != HD_OK)
            return HD_ERROR;
        run = i + 1;
    }
    return append(r, s + run, n - run);
}

/* part of a name inside v: an object key or, for digits, an array index */
static json_t *
child(json_t *v, const char *part)
{
    size_t i = 0;

    if (json_is_object(v))
        return json_object_get(v, part);
    if (!json_is_array(v) || part[0] == '\0' || strlen(part) > 9)
        return NULL;
    for (const char *c = part; *c; c++) {
        if (*c < '0' || *c > '9')
            return NULL;
        i = i * 10 + (*c - '0');
    }
    return json_array_get(v, i);
}

static json_t *
lookup(struct render *r, const struct node *nd)
{
    const char *part = r->t->names + nd->name;
    json_t *v = NULL;

    if (nd->nparts == 0)
        return r->stack[r->top];
    part += strlen(part) + 1;
    for (int i = r->top; i >= 0 && v == NULL; i--)
        v = child(r->stack[i], part);
    for (int k = 1; k < nd->nparts && v != NULL; k++) {
        part += strlen(part) + 1;
        v = child(v, part);
    }
    return v;
}

static int
truthy(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_TRUE:
        return 1;
    default:
        return 0;
    }
}

static int
emit(struct render *r, const struct node *nd, json_t *v)
{
    char num[64];
    double d;
    int n;

    switch (json_typeof(v)) {
    case JSON_STRING:
        if (r->escape && nd->kind == N_VAR)
            return append_escaped(r, json_string_value(v),
                                  json_string_length(v));
        return append(r, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        return append(r, num, n);
    case JSON_REAL:
        /* the shortest of %.15g .. %.17g that reads back exactly */
        d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(num, sizeof(num), "%.*g", prec, d);
            if (strtod(num, NULL) == d)
                break;
        }
        return append(r, num, n);
    case JSON_TRUE:
        return append(r, "true", 4);
    case JSON_FALSE:
        return append(r, "false", 5);
    case JSON_NULL:
        return HD_OK;
    default:
        r->bad = r->t->names + nd->name; /* object or array */
        return HD_ERROR;
    }
}

static int render_nodes(struct render *r, uint32_t from, uint32_t to);

/* renders the body of section nd once with v pushed */
static int
render_with(struct render *r, const struct node *nd, uint32_t body, json_t *v)
{
    int rc;

    if (++r->steps > MAX_STEPS) {
        r->bad = "(render too long)";
        return HD_ERROR;
    }
    HD_ASSERT(r->top < HD_TPL_MAX_DEPTH);
    r->stack[++r->top] = v;
    rc = render_nodes(r, body, nd->end);
    r->top--;
    return rc;
}

/* Recursion is as deep as sections nest: at most HD_TPL_MAX_DEPTH. */
static int
render_nodes(struct render *r, uint32_t from, uint32_t to)
{
    const struct hd_tpl *t = r->t;

    for (uint32_t i = from; i < to; i++) {
        const struct node *nd = &t->nodes[i];
        json_t *v;

        if (++r->steps > MAX_STEPS) {
            r->bad = "(render too long)";
            return HD_ERROR;
        }
        switch (nd->kind) {
        case N_TEXT:
            if (append(r, t->src + nd->off, nd->len) != HD_OK)
                return HD_ERROR;
            continue;
        case N_VAR:
        case N_RAW:
            v = lookup(r, nd);
            if (v == NULL) {
                r->bad = t->names + nd->name;
                return HD_ERROR;
            }
            if (emit(r, nd, v) != HD_OK)
                return HD_ERROR;
            continue;
        case N_INVERTED:
            v = lookup(r, nd);
            if (v == NULL || !truthy(v)) {
                if (render_nodes(r, i + 1, nd->end) != HD_OK)
                    return HD_ERROR;
            }
            break;
        case N_SECTION:
            v = lookup(r, nd);
            if (v == NULL || !truthy(v))
                break;
            if (json_is_array(v)) {
                for (size_t k = 0; k < json_array_size(v); k++)
                    if (render_with(r, nd, i + 1, json_array_get(v, k)) !=
                        HD_OK)
                        return HD_ERROR;
            } else if (render_with(r, nd, i + 1, v) != HD_OK) {
                return HD_ERROR;
            }
            break;
        }
        i = nd->end - 1; /* past the section */
    }
    return HD_OK;
}

int
hd_tpl_render(const struct hd_tpl *t, json_t *ctx, int html_escape, char **out,
              size_t *outlen, const char **name)
{
    struct render r = {.t = t, .escape = html_escape};

    *out = NULL;
    *outlen = 0;
    *name = NULL;
    r.stack[0] = ctx;
    if (render_nodes(&r, 0, t->n) != HD_OK || append(&r, "", 0) != HD_OK) {
        free(r.buf);
        *name = r.bad;
        return HD_ERROR;
    }
    r.buf[r.len] = '\0';
    *out = r.buf;
    *outlen = r.len;
    return HD_OK;
}
