/*
 * conf.c: the nginx-style configuration parser. Main thread only. Two
 * passes: the tokenizer builds a tree of directives (name, args, block,
 * file:line), then one table of directives per context fills struct
 * hd_conf through offsetof slot setters. Every error names file:line.
 * It knows nothing of what the settings drive.
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/sha.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/conf.h"
#include "core/log.h"

#define MAX_ARGS 16
#define MAX_DEPTH 8
#define MAX_INCLUDE_DEPTH 8

struct node {
    char *name;
    char *args[MAX_ARGS];
    int nargs;
    const char *file;
    int line;
    int block;
    struct node *children, *next;
};

struct parser {
    struct hd_conf *cf;
    char *err;
    size_t errlen;
    char **files; /* names kept for node->file */
    int nfiles;
    struct node **all; /* every node, for freeing */
    int nall, call;
};

/* ==== helpers ==== */

static char *
keep(struct hd_conf *cf, char *s)
{
    if (cf->nstrings == cf->cstrings) {
        cf->cstrings = cf->cstrings ? cf->cstrings * 2 : 64;
        cf->strings = hd_realloc(cf->strings, cf->cstrings * sizeof(char *));
    }
    cf->strings[cf->nstrings++] = s;
    return s;
}

static int
fail(struct parser *p, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    n = strlen(p->err);
    if (file)
        snprintf(p->err + n, p->errlen - n, " in %s:%d", file, line);
    return HD_ERROR;
}

static struct node *
new_node(struct parser *p)
{
    struct node *n = hd_calloc(sizeof(*n));
    if (p->nall == p->call) {
        p->call = p->call ? p->call * 2 : 64;
        p->all = hd_realloc(p->all, p->call * sizeof(*p->all));
    }
    p->all[p->nall++] = n;
    return n;
}

int
hd_parse_size(const char *s, int64_t *out)
{
    char *end;
    long long v;
    int64_t mul = 1;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || v < 0 || errno)
        return HD_ERROR;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024LL * 1024 * 1024;
        end++;
        break;
    default:
        return HD_ERROR;
    }
    if (*end != '\0' || v > INT64_MAX / mul)
        return HD_ERROR;
    *out = v * mul;
    return HD_OK;
}

int
hd_parse_time_ms(const char *s, int64_t *out)
{
    char *end;
    long long v;
    int64_t mul = 1000;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || v < 0 || errno)
        return HD_ERROR;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mul = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        mul = 86400 * 1000;
    else
        return HD_ERROR;
    if (v > INT64_MAX / mul)
        return HD_ERROR;
    *out = v * mul;
    return HD_OK;
}

/* ==== tokenizer: text -> tree ==== */

struct lexer {
    const char *file;
    const char *s, *end;
    int line;
};

enum { T_WORD, T_SEMI, T_OPEN, T_CLOSE, T_EOF, T_BAD };

/* Reads one token. A word is returned in *word (malloc'd) with $VAR and
 * env:VAR expanded. */
static int
next_token(struct parser *p, struct lexer *lx, char **word, int *line)
{
    const char *s;
    char *buf;
    size_t len = 0, cap = 64;
    int quoted = 0;

    for (;;) {
        while (lx->s < lx->end && isspace((unsigned char)*lx->s)) {
            if (*lx->s == '\n')
                lx->line++;
            lx->s++;
        }
        if (lx->s < lx->end && *lx->s == '#') {
            while (lx->s < lx->end && *lx->s != '\n')
                lx->s++;
            continue;
        }
        break;
    }
    *line = lx->line;
    if (lx->s >= lx->end)
        return T_EOF;
    switch (*lx->s) {
    case ';':
        lx->s++;
        return T_SEMI;
    case '{':
        lx->s++;
        return T_OPEN;
    case '}':
        lx->s++;
        return T_CLOSE;
    }

    buf = hd_alloc(cap);
    s = lx->s;
    if (*s == '"' || *s == '\'') {
        char q = *s++;
        quoted = q == '\'' ? 2 : 1;
        for (;;) {
            if (s >= lx->end) {
                free(buf);
                fail(p, lx->file, *line, "unterminated quoted string");
                return T_BAD;
            }
            if (*s == q) {
                s++;
                break;
            }
            if (*s == '\\' && s + 1 < lx->end) {
                s++;
                switch (*s) {
                case 'n':
                    buf[len++] = '\n';
                    s++;
                    break;
                case 't':
                    buf[len++] = '\t';
                    s++;
                    break;
                default:
                    buf[len++] = *s++;
                    break;
                }
            } else {
                if (*s == '\n')
                    lx->line++;
                buf[len++] = *s++;
            }
            if (len + 2 >= cap)
                buf = hd_realloc(buf, cap *= 2);
        }
    } else {
        while (s < lx->end && !isspace((unsigned char)*s) && *s != ';' &&
               *s != '{' && *s != '}' && *s != '"' && *s != '\'') {
            buf[len++] = *s++;
            if (len + 2 >= cap)
                buf = hd_realloc(buf, cap *= 2);
        }
    }
    buf[len] = '\0';
    lx->s = s;

    /* secret references: "$NAME" or "env:NAME" is the variable's value
     * (single-quoted strings are literal) */
    if (quoted != 2) {
        const char *name = NULL;
        if (buf[0] == '$' && buf[1] != '\0')
            name = buf + 1;
        else if (strncmp(buf, "env:", 4) == 0 && buf[4] != '\0')
            name = buf + 4;
        if (name != NULL) {
            const char *v = getenv(name);
            if (v == NULL) {
                fail(p, lx->file, *line,
                     "environment variable \"%s\" is not set", name);
                free(buf);
                return T_BAD;
            }
            free(buf);
            buf = hd_strdup(v);
        }
    }
    *word = buf;
    return T_WORD;
}

static int parse_file(struct parser *p, const char *file, struct node **head,
                      int depth);

static int
include_files(struct parser *p, struct node *inc, struct node ***tail,
              int depth)
{
    char pattern[PATH_MAX], dir[PATH_MAX];
    glob_t g;
    int rc;

    if (inc->nargs != 1)
        return fail(p, inc->file, inc->line,
                    "invalid number of arguments in \"include\" directive");
    if (depth >= MAX_INCLUDE_DEPTH)
        return fail(p, inc->file, inc->line, "too many nested includes");
    if (inc->args[0][0] == '/') {
        snprintf(pattern, sizeof(pattern), "%s", inc->args[0]);
    } else {
        snprintf(dir, sizeof(dir), "%s", inc->file);
        snprintf(pattern, sizeof(pattern), "%s/%s", dirname(dir), inc->args[0]);
    }
    rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH && strpbrk(inc->args[0], "*?[") != NULL)
        return HD_OK;
    if (rc != 0)
        return fail(p, inc->file, inc->line, "cannot open \"%s\": %s", pattern,
                    strerror(ENOENT));
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct node *head = NULL;
        if (parse_file(p, g.gl_pathv[i], &head, depth + 1) != HD_OK) {
            globfree(&g);
            return HD_ERROR;
        }
        **tail = head;
        while (**tail)
            *tail = &(**tail)->next;
    }
    globfree(&g);
    return HD_OK;
}

/* Parses directives until EOF (level 0) or '}' into *head. */
static int
parse_block(struct parser *p, struct lexer *lx, struct node **head, int level,
            int depth)
{
    struct node **tail = head, *n = NULL;
    char *word;
    int line, t;

    for (;;) {
        t = next_token(p, lx, &word, &line);
        switch (t) {
        case T_BAD:
            return HD_ERROR;
        case T_EOF:
            if (n != NULL)
                return fail(p, lx->file, line,
                            "unexpected end of file, expecting \";\" or "
                            "\"}\"");
            if (level > 0)
                return fail(p, lx->file, line,
                            "unexpected end of file, expecting \"}\"");
            return HD_OK;
        case T_CLOSE:
            if (n != NULL)
                return fail(p, lx->file, line, "unexpected \"}\"");
            if (level == 0)
                return fail(p, lx->file, line, "unexpected \"}\"");
            return HD_OK;
        case T_SEMI:
            if (n == NULL)
                return fail(p, lx->file, line, "unexpected \";\"");
            if (strcmp(n->name, "include") == 0) {
                if (include_files(p, n, &tail, depth) != HD_OK)
                    return HD_ERROR;
            } else {
                *tail = n;
                tail = &n->next;
            }
            n = NULL;
            break;
        case T_OPEN:
            if (n == NULL)
                return fail(p, lx->file, line, "unexpected \"{\"");
            if (level + 1 >= MAX_DEPTH)
                return fail(p, lx->file, line, "blocks nested too deep");
            n->block = 1;
            *tail = n;
            tail = &n->next;
            if (parse_block(p, lx, &n->children, level + 1, depth) != HD_OK)
                return HD_ERROR;
            n = NULL;
            break;
        case T_WORD:
            if (n == NULL) {
                n = new_node(p);
                n->name = keep(p->cf, word);
                n->file = lx->file;
                n->line = line;
            } else {
                if (n->nargs == MAX_ARGS) {
                    free(word);
                    return fail(p, lx->file, line,
                                "too many arguments in \"%s\" directive",
                                n->name);
                }
                n->args[n->nargs++] = keep(p->cf, word);
            }
            break;
        }
    }
}

static int
parse_file(struct parser *p, const char *file, struct node **head, int depth)
{
    FILE *f;
    char *text = NULL;
    size_t len = 0, cap = 0, r;
    struct lexer lx;
    int rc;

    f = fopen(file, "r");
    if (f == NULL)
        return fail(p, NULL, 0, "cannot open configuration file \"%s\": %s",
                    file, strerror(errno));
    do {
        if (cap - len < 4096)
            text = hd_realloc(text, cap = cap ? cap * 2 : 8192);
        r = fread(text + len, 1, cap - len, f);
        len += r;
    } while (r > 0);
    fclose(f);

    p->files = hd_realloc(p->files, (p->nfiles + 1) * sizeof(char *));
    p->files[p->nfiles++] = keep(p->cf, hd_strdup(file));
    lx.file = p->files[p->nfiles - 1];
    lx.s = text;
    lx.end = text + len;
    lx.line = 1;
    rc = parse_block(p, &lx, head, 0, depth);
    free(text);
    return rc;
}

/* ==== directives: tree -> struct hd_conf ==== */

#define ARGS_0 0x0001
#define ARGS_1 0x0002
#define ARGS_2 0x0004
#define ARGS_1MORE 0x0100
#define ARGS_BLOCK 0x1000

struct cmd;
typedef const char *(*set_fn)(struct parser *p, struct node *n,
                              const struct cmd *c, void *base);

struct cmd {
    const char *name;
    unsigned flags;
    set_fn set;
    size_t offset;
};

static const char *set_flag(struct parser *, struct node *, const struct cmd *,
                            void *);
static const char *set_str(struct parser *, struct node *, const struct cmd *,
                           void *);
static const char *set_url(struct parser *, struct node *, const struct cmd *,
                           void *);
static const char *set_num(struct parser *, struct node *, const struct cmd *,
                           void *);
static const char *set_size(struct parser *, struct node *, const struct cmd *,
                            void *);
static const char *set_msec(struct parser *, struct node *, const struct cmd *,
                            void *);
static const char *set_workers(struct parser *, struct node *,
                               const struct cmd *, void *);
static const char *set_percent(struct parser *, struct node *,
                               const struct cmd *, void *);
static const char *set_outcome_delay(struct parser *, struct node *,
                                     const struct cmd *, void *);
static const char *set_shards(struct parser *, struct node *,
                              const struct cmd *, void *);
static const char *set_error_log(struct parser *, struct node *,
                                 const struct cmd *, void *);
static const char *set_access_log(struct parser *, struct node *,
                                  const struct cmd *, void *);
static const char *set_listen(struct parser *, struct node *,
                              const struct cmd *, void *);
static const char *set_store(struct parser *, struct node *, const struct cmd *,
                             void *);
static const char *set_api_key(struct parser *, struct node *,
                               const struct cmd *, void *);
static const char *set_user(struct parser *, struct node *, const struct cmd *,
                            void *);
static const char *set_template(struct parser *, struct node *,
                                const struct cmd *, void *);
static const char *set_provider(struct parser *, struct node *,
                                const struct cmd *, void *);
static const char *set_channel(struct parser *, struct node *,
                               const struct cmd *, void *);
static const char *set_secret(struct parser *, struct node *,
                              const struct cmd *, void *);
static const char *set_scopes(struct parser *, struct node *,
                              const struct cmd *, void *);
static const char *set_rate_limit(struct parser *, struct node *,
                                  const struct cmd *, void *);
static const char *set_key_rate(struct parser *, struct node *,
                                const struct cmd *, void *);
static const char *set_category(struct parser *, struct node *,
                                const struct cmd *, void *);
static const char *set_opt_in(struct parser *, struct node *,
                              const struct cmd *, void *);

#define CF(f) offsetof(struct hd_conf, f)
#define ST(f) offsetof(struct hd_store_conf, f)

static const struct cmd main_cmds[] = {
    {"daemon", ARGS_1, set_flag, CF(daemon)},
    {"user", ARGS_1 | ARGS_2, set_user, 0},
    {"pid", ARGS_1, set_str, CF(pid)},
    {"error_log", ARGS_1 | ARGS_2, set_error_log, 0},
    {"access_log", ARGS_1, set_access_log, 0},
    {"workers", ARGS_1, set_workers, CF(workers)},
    {"listen", ARGS_1 | ARGS_2, set_listen, 0},
    {"ssl_certificate", ARGS_1, set_str, CF(ssl_certificate)},
    {"ssl_certificate_key", ARGS_1, set_str, CF(ssl_certificate_key)},
    {"client_max_body_size", ARGS_1, set_size, CF(client_max_body_size)},
    {"client_header_timeout", ARGS_1, set_msec, CF(client_header_timeout_ms)},
    {"client_body_timeout", ARGS_1, set_msec, CF(client_body_timeout_ms)},
    {"keepalive_timeout", ARGS_1, set_msec, CF(keepalive_timeout_ms)},
    {"send_timeout", ARGS_1, set_msec, CF(send_timeout_ms)},
    {"keepalive_requests", ARGS_1, set_num, CF(keepalive_requests)},
    {"store", ARGS_0 | ARGS_BLOCK, set_store, 0},
    {"api_key", ARGS_1 | ARGS_BLOCK, set_api_key, 0},
    {"provider", ARGS_1 | ARGS_BLOCK, set_provider, 0},
    {"channel", ARGS_1 | ARGS_BLOCK, set_channel, 0},
    {"rate_limit", ARGS_1MORE, set_rate_limit, CF(rate)},
    {"category", ARGS_1 | ARGS_BLOCK, set_category, 0},
    {"template", ARGS_1 | ARGS_BLOCK, set_template, 0},
    {"idempotency_ttl", ARGS_1, set_msec, CF(idempotency_ttl_ms)},
    {"sms_max_segments", ARGS_1, set_num, CF(sms_max_segments)},
    {"max_in_flight", ARGS_1, set_num, CF(max_in_flight)},
    {"tracking_url", ARGS_1, set_str, CF(tracking_url)},
    {"events_retention", ARGS_1, set_msec, CF(events_retention_ms)},
    {"event_webhook", ARGS_1, set_url, CF(event_webhook)},
    {"event_webhook_secret", ARGS_1, set_str, CF(event_webhook_secret)},
    {"event_webhook_ca_file", ARGS_1, set_str, CF(event_webhook_ca_file)},
    {"alert_webhook", ARGS_1, set_url, CF(alert_webhook)},
    {"alert_webhook_secret", ARGS_1, set_str, CF(alert_webhook_secret)},
    {"alert_webhook_ca_file", ARGS_1, set_str, CF(alert_webhook_ca_file)},
    {NULL, 0, NULL, 0},
};

static const struct cmd category_cmds[] = {
    {"opt_in", ARGS_1MORE, set_opt_in, 0},
    {"rate_limit", ARGS_1MORE, set_rate_limit,
     offsetof(struct hd_category_conf, rate)},
    {NULL, 0, NULL, 0},
};

static const struct cmd store_cmds[] = {
    {"path", ARGS_1, set_str, ST(path)},
    {"shards", ARGS_1, set_shards, ST(shards)},
    {"sync", ARGS_1, set_flag, ST(sync)},
    {"map_size", ARGS_1, set_size, ST(map_size)},
    {"max_map_size", ARGS_1, set_size, ST(max_map_size)},
    {"commit_records", ARGS_1, set_num, ST(commit_records)},
    {"commit_delay", ARGS_1, set_msec, ST(commit_delay_ms)},
    {"outcome_delay", ARGS_1, set_outcome_delay, ST(outcome_delay_ms)},
    {"high_water", ARGS_1, set_percent, ST(high_water)},
    {"min_free_disk", ARGS_1, set_size, ST(min_free_disk)},
    {NULL, 0, NULL, 0},
};

static const struct cmd key_cmds[] = {
    {"secret", ARGS_1, set_secret, 0},
    {"scopes", ARGS_1MORE, set_scopes, 0},
    {"rate_limit", ARGS_1MORE, set_key_rate, 0},
    {NULL, 0, NULL, 0},
};

static int
check_args(struct parser *p, struct node *n, const struct cmd *c)
{
    int ok;

    if ((c->flags & ARGS_BLOCK) && !n->block)
        return fail(p, n->file, n->line,
                    "directive \"%s\" has no opening \"{\"", n->name);
    if (!(c->flags & ARGS_BLOCK) && n->block)
        return fail(p, n->file, n->line,
                    "directive \"%s\" is not terminated by \";\"", n->name);
    ok = (c->flags & ARGS_1MORE)
             ? n->nargs >= 1
             : (n->nargs < 3 && (c->flags & (ARGS_0 << n->nargs)));
    if (!ok)
        return fail(p, n->file, n->line,
                    "invalid number of arguments in \"%s\" directive", n->name);
    return HD_OK;
}

/* Runs the table over a block. seen[] catches duplicates of single-value
 * directives (repeatable ones set their own policy). */
static int
run_block(struct parser *p, struct node *head, const struct cmd *cmds,
          void *base)
{
    static const char *repeatable[] = {"listen",  "api_key",  "provider",
                                       "channel", "category", "rate_limit",
                                       "opt_in",  "template", NULL};
    const char *seen[64];
    int nseen = 0;

    for (struct node *n = head; n; n = n->next) {
        const struct cmd *c;
        const char *e;
        int rep = 0;

        for (c = cmds; c->name; c++)
            if (strcmp(c->name, n->name) == 0)
                break;
        if (c->name == NULL)
            return fail(p, n->file, n->line, "unknown directive \"%s\"",
                        n->name);
        if (check_args(p, n, c) != HD_OK)
            return HD_ERROR;
        for (int i = 0; repeatable[i]; i++)
            if (strcmp(repeatable[i], c->name) == 0)
                rep = 1;
        if (!rep) {
            for (int i = 0; i < nseen; i++)
                if (strcmp(seen[i], c->name) == 0)
                    return fail(p, n->file, n->line,
                                "\"%s\" directive is duplicate", n->name);
            if (nseen < (int)HD_NELEMS(seen))
                seen[nseen++] = c->name;
        }
        e = c->set(p, n, c, base);
        if (e == (const char *)-1)
            return HD_ERROR; /* the setter wrote the whole message */
        if (e != NULL)
            return fail(p, n->file, n->line, "\"%s\" directive %s", n->name, e);
    }
    return HD_OK;
}

static const char *
bad_value(struct parser *p, struct node *n, const char *v)
{
    fail(p, n->file, n->line, "invalid value \"%s\" in \"%s\" directive", v,
         n->name);
    return (const char *)-1;
}

static const char *
set_flag(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    int *slot = (int *)((char *)base + c->offset);
    if (strcmp(n->args[0], "on") == 0)
        *slot = 1;
    else if (strcmp(n->args[0], "off") == 0)
        *slot = 0;
    else
        return bad_value(p, n, n->args[0]);
    return NULL;
}

static const char *
set_str(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    *(char **)((char *)base + c->offset) = n->args[0];
    return NULL;
}

/* An http:// or https:// URL with a host (the rest is checked where it
 * is used: http1.c parses it the same way). */
static const char *
set_url(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    const char *u = n->args[0], *host;

    if (strncmp(u, "http://", 7) == 0)
        host = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        host = u + 8;
    else
        return "expects an http:// or https:// URL";
    if (*host == '\0' || *host == '/' || *host == ':' ||
        strpbrk(u, " \t\"<>") != NULL)
        return "expects an http:// or https:// URL";
    return set_str(p, n, c, base);
}

static const char *
set_num(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    char *end;
    long v = strtol(n->args[0], &end, 10);
    if (end == n->args[0] || *end != '\0' || v < 1 || v > 100000000)
        return bad_value(p, n, n->args[0]);
    *(int *)((char *)base + c->offset) = (int)v;
    return NULL;
}

static const char *
set_size(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    if (hd_parse_size(n->args[0], (int64_t *)((char *)base + c->offset)) !=
        HD_OK)
        return bad_value(p, n, n->args[0]);
    return NULL;
}

static const char *
set_msec(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    if (hd_parse_time_ms(n->args[0], (int64_t *)((char *)base + c->offset)) !=
        HD_OK)
        return bad_value(p, n, n->args[0]);
    return NULL;
}

/* A time up to a second: the dispatcher's jobs (max_in_flight) wait for
 * the batch it holds. */
static const char *
set_outcome_delay(struct parser *p, struct node *n, const struct cmd *c,
                  void *base)
{
    const char *rv = set_msec(p, n, c, base);

    if (rv != NULL)
        return rv;
    if (*(int64_t *)((char *)base + c->offset) > 1000) {
        fail(p, n->file, n->line,
             "\"outcome_delay\" must be at most 1s, not \"%s\"", n->args[0]);
        return (const char *)-1;
    }
    return NULL;
}

/* "90%" or "90" */
static const char *
set_percent(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    char *end;
    long v = strtol(n->args[0], &end, 10);

    if (end == n->args[0] || (*end != '\0' && strcmp(end, "%") != 0) || v < 1 ||
        v > 100)
        return bad_value(p, n, n->args[0]);
    *(int *)((char *)base + c->offset) = (int)v;
    return NULL;
}

static const char *
set_workers(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    int *slot = (int *)((char *)base + c->offset);
    char *end;
    long v;

    if (strcmp(n->args[0], "auto") == 0) {
        *slot = 0;
        return NULL;
    }
    v = strtol(n->args[0], &end, 10);
    if (end == n->args[0] || *end != '\0' || v < 1 || v > HD_MAX_WORKERS)
        return bad_value(p, n, n->args[0]);
    *slot = (int)v;
    return NULL;
}

static const char *
set_shards(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    int *slot = (int *)((char *)base + c->offset);
    char *end;
    long v;

    if (strcmp(n->args[0], "auto") == 0) {
        *slot = 0;
        return NULL;
    }
    v = strtol(n->args[0], &end, 10);
    if (end == n->args[0] || *end != '\0' || v < 1 || v > HD_MAX_SHARDS)
        return bad_value(p, n, n->args[0]);
    *slot = (int)v;
    return NULL;
}

static const char *
set_error_log(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    p->cf->error_log = n->args[0];
    if (n->nargs == 2) {
        int level = hd_log_level_parse(n->args[1]);
        if (level < 0)
            return bad_value(p, n, n->args[1]);
        p->cf->log_level = level;
    }
    return NULL;
}

static const char *
set_access_log(struct parser *p, struct node *n, const struct cmd *c,
               void *base)
{
    p->cf->access_log = strcmp(n->args[0], "off") == 0 ? NULL : n->args[0];
    return NULL;
}

static const char *
set_listen(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    struct hd_listen_conf *l;
    char host[256], *colon;
    const char *a = n->args[0];
    struct addrinfo hints, *res;
    int port;

    if (cf->nlisten == HD_MAX_LISTEN)
        return "has too many addresses";
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (close == NULL || close[1] != ':' ||
            (size_t)(close - a - 1) >= sizeof(host))
            return bad_value(p, n, a);
        memcpy(host, a + 1, close - a - 1);
        host[close - a - 1] = '\0';
        colon = (char *)close + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL) {
            snprintf(host, sizeof(host), "0.0.0.0");
            colon = (char *)a - 1;
        } else {
            if ((size_t)(colon - a) >= sizeof(host))
                return bad_value(p, n, a);
            memcpy(host, a, colon - a);
            host[colon - a] = '\0';
            if (strcmp(host, "*") == 0)
                snprintf(host, sizeof(host), "0.0.0.0");
        }
    }
    port = strlen(colon + 1) <= 5 ? atoi(colon + 1) : -1;
    for (const char *d = colon + 1; *d; d++)
        if (!isdigit((unsigned char)*d))
            port = -1;
    if (port < 1 || port > 65535)
        return bad_value(p, n, a);

    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        fail(p, n->file, n->line,
             "host \"%s\" in \"listen\" must be a numeric address", host);
        return (const char *)-1;
    }
    if (n->nargs == 2 && strcmp(n->args[1], "ssl") != 0) {
        freeaddrinfo(res);
        return bad_value(p, n, n->args[1]);
    }
    l = &cf->listen[cf->nlisten++];
    l->ssl = n->nargs == 2;
    memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
    l->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (l->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&l->addr)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&l->addr)->sin6_port = htons(port);
    l->text = n->args[0];
    return NULL;
}

static const char *
set_store(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    if (run_block(p, n->children, store_cmds, &p->cf->store) != HD_OK)
        return (const char *)-1;
    return NULL;
}

static const char *
set_api_key(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    struct hd_api_key *k;

    if (hd_conf_find_key(cf, n->args[0], strlen(n->args[0])) != NULL)
        return fail(p, n->file, n->line, "duplicate api_key \"%s\"",
                    n->args[0]),
               (const char *)-1;
    if (strchr(n->args[0], ':') != NULL || n->args[0][0] == '\0')
        return bad_value(p, n, n->args[0]);
    cf->keys = hd_realloc(cf->keys, (cf->nkeys + 1) * sizeof(*k));
    k = &cf->keys[cf->nkeys++];
    memset(k, 0, sizeof(*k));
    k->id = n->args[0];
    k->scopes = (unsigned)-1; /* marks "no scopes directive" */
    if (run_block(p, n->children, key_cmds, k) != HD_OK)
        return (const char *)-1;
    if (k->scopes == (unsigned)-1)
        k->scopes = HD_SCOPE_SEND | HD_SCOPE_USERS | HD_SCOPE_READ;
    if (k->has_secret)
        return NULL;
    return fail(p, n->file, n->line, "api_key \"%s\" has no \"secret\"",
                n->args[0]),
           (const char *)-1;
}

static int
unhex_bytes(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return HD_ERROR;
        }
        out[i] = (unsigned char)v;
    }
    return HD_OK;
}

/* secret PLAIN;  or  secret sha256$SALTHEX$HASHHEX;  (herald -k) */
static const char *
set_secret(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_api_key *k = base;
    const char *v = n->args[0];
    size_t plen = strlen(HD_SECRET_HASH_PREFIX);

    if (strncmp(v, HD_SECRET_HASH_PREFIX, plen) == 0) {
        const char *salt = v + plen, *dollar = strchr(salt, '$');
        size_t slen = dollar ? (size_t)(dollar - salt) : 0;
        if (dollar == NULL || slen % 2 || slen / 2 > HD_SECRET_SALT_MAX ||
            strlen(dollar + 1) != 64 ||
            unhex_bytes(salt, slen / 2, k->salt) != HD_OK ||
            unhex_bytes(dollar + 1, 32, k->secret_sha256) != HD_OK)
            return "has a malformed hash: expected what herald -k prints";
        k->saltlen = slen / 2;
    } else {
        if (strlen(v) < 8)
            return "must be at least 8 characters";
        /* a plain secret is hashed at once and forgotten */
        k->saltlen = 0;
        hd_sha256_2(NULL, 0, v, strlen(v), k->secret_sha256);
    }
    k->has_secret = 1;
    return NULL;
}

int
hd_secret_hash(const char *secret, char *buf, size_t size)
{
    unsigned char salt[16], md[32];
    char salthex[33], mdhex[65];
    FILE *f = fopen("/dev/urandom", "r");

    if (f == NULL || fread(salt, 1, sizeof(salt), f) != sizeof(salt)) {
        if (f)
            fclose(f);
        return HD_ERROR;
    }
    fclose(f);
    hd_sha256_2(salt, sizeof(salt), secret, strlen(secret), md);
    for (int i = 0; i < 16; i++)
        snprintf(salthex + 2 * i, 3, "%02x", salt[i]);
    for (int i = 0; i < 32; i++)
        snprintf(mdhex + 2 * i, 3, "%02x", md[i]);
    snprintf(buf, size, "%s%s$%s", HD_SECRET_HASH_PREFIX, salthex, mdhex);
    return HD_OK;
}

static const char *
set_scopes(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    static const struct {
        const char *name;
        unsigned bit;
    } scopes[] = {{"send", HD_SCOPE_SEND},
                  {"users", HD_SCOPE_USERS},
                  {"read", HD_SCOPE_READ},
                  {"admin", HD_SCOPE_ADMIN}};
    struct hd_api_key *k = base;

    k->scopes = 0;
    for (int i = 0; i < n->nargs; i++) {
        size_t j;
        for (j = 0; j < HD_NELEMS(scopes); j++)
            if (strcmp(n->args[i], scopes[j].name) == 0)
                break;
        if (j == HD_NELEMS(scopes))
            return bad_value(p, n, n->args[i]);
        k->scopes |= scopes[j].bit;
    }
    return NULL;
}

/* A provider block: "type" is required; the rest is kept as name/args for
 * the provider type to check and read (provider.c), so each type owns its
 * settings and their error messages. */
static const char *
set_provider(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    struct hd_provider_conf *pc;

    for (int i = 0; i < cf->nproviders; i++)
        if (strcmp(cf->providers[i].name, n->args[0]) == 0)
            return fail(p, n->file, n->line, "duplicate provider \"%s\"",
                        n->args[0]),
                   (const char *)-1;
    cf->providers =
        hd_realloc(cf->providers, (cf->nproviders + 1) * sizeof(*pc));
    pc = &cf->providers[cf->nproviders++];
    memset(pc, 0, sizeof(*pc));
    pc->name = n->args[0];
    pc->file = n->file;
    pc->line = n->line;

    for (struct node *d = n->children; d; d = d->next) {
        struct hd_conf_kv *kv;
        if (d->block)
            return fail(p, d->file, d->line,
                        "directive \"%s\" is not terminated by \";\"", d->name),
                   (const char *)-1;
        if (strcmp(d->name, "type") == 0) {
            if (d->nargs != 1)
                return fail(p, d->file, d->line,
                            "invalid number of arguments in \"type\" "
                            "directive"),
                       (const char *)-1;
            if (pc->type != NULL)
                return fail(p, d->file, d->line,
                            "\"type\" directive is duplicate"),
                       (const char *)-1;
            pc->type = d->args[0];
            pc->type_line = d->line;
            continue;
        }
        pc->kv = hd_realloc(pc->kv, (pc->nkv + 1) * sizeof(*kv));
        kv = &pc->kv[pc->nkv++];
        kv->name = d->name;
        /* the node goes with the parse; its strings stay with cf */
        kv->args = (char **)keep(cf, hd_alloc(sizeof(char *) * (d->nargs + 1)));
        memcpy(kv->args, d->args, sizeof(char *) * d->nargs);
        kv->args[d->nargs] = NULL;
        kv->nargs = d->nargs;
        kv->file = d->file;
        kv->line = d->line;
    }
    if (pc->type == NULL)
        return fail(p, n->file, n->line, "provider \"%s\" has no \"type\"",
                    pc->name),
               (const char *)-1;
    return NULL;
}

/* "10/h [burst 5]" from args[from]; burst defaults to the count. */
static const char *
parse_rate(struct parser *p, struct node *n, int from, struct hd_rate *r)
{
    char *end;
    double count;
    int64_t per = 0;

    if (n->nargs != from + 1 && n->nargs != from + 3)
        return "takes RATE [burst N], e.g. 10/h burst 5";
    count = strtod(n->args[from], &end);
    if (end == n->args[from] || *end != '/' || count <= 0)
        return bad_value(p, n, n->args[from]);
    switch (end[1]) {
    case 's':
        per = 1000;
        break;
    case 'm':
        per = 60 * 1000;
        break;
    case 'h':
        per = 3600 * 1000;
        break;
    case 'd':
        per = 86400 * 1000;
        break;
    default:
        return bad_value(p, n, n->args[from]);
    }
    if (end[2] != '\0')
        return bad_value(p, n, n->args[from]);
    r->per_ms = count / (double)per;
    r->burst = count;
    if (n->nargs == from + 3) {
        char *e2;
        double b;
        if (strcmp(n->args[from + 1], "burst") != 0)
            return bad_value(p, n, n->args[from + 1]);
        b = strtod(n->args[from + 2], &e2);
        if (e2 == n->args[from + 2] || *e2 != '\0' || b < 1)
            return bad_value(p, n, n->args[from + 2]);
        r->burst = b;
    }
    r->set = 1;
    return NULL;
}

/* rate_limit CHANNEL RATE [burst N]; (main and category contexts) */
static const char *
set_rate_limit(struct parser *p, struct node *n, const struct cmd *c,
               void *base)
{
    struct hd_rate *rates = (struct hd_rate *)((char *)base + c->offset);
    int ch = hd_channel_parse(n->args[0], strlen(n->args[0]));

    if (ch < 0)
        return bad_value(p, n, n->args[0]);
    if (rates[ch].set)
        return "is duplicate for this channel";
    return parse_rate(p, n, 1, &rates[ch]);
}

static const char *
set_key_rate(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_api_key *k = base;
    if (k->rate.set)
        return "is duplicate";
    return parse_rate(p, n, 0, &k->rate);
}

static const char *
set_category(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    struct hd_category_conf *cat;

    if (hd_conf_find_category(cf, n->args[0]) != NULL)
        return fail(p, n->file, n->line, "duplicate category \"%s\"",
                    n->args[0]),
               (const char *)-1;
    if (cf->ncategories == HD_MAX_CATEGORIES)
        return "is repeated too often";
    cf->categories =
        hd_realloc(cf->categories, (cf->ncategories + 1) * sizeof(*cat));
    cat = &cf->categories[cf->ncategories++];
    memset(cat, 0, sizeof(*cat));
    cat->name = n->args[0];
    if (run_block(p, n->children, category_cmds, cat) != HD_OK)
        return (const char *)-1;
    return NULL;
}

/* opt_in on|off [CHANNEL ...]; without channels: every channel */
static const char *
set_opt_in(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_category_conf *cat = base;
    unsigned bits = 0;
    int on;

    if (strcmp(n->args[0], "on") == 0)
        on = 1;
    else if (strcmp(n->args[0], "off") == 0)
        on = 0;
    else
        return bad_value(p, n, n->args[0]);
    for (int i = 1; i < n->nargs; i++) {
        int ch = hd_channel_parse(n->args[i], strlen(n->args[i]));
        if (ch < 0)
            return bad_value(p, n, n->args[i]);
        bits |= 1u << ch;
    }
    if (n->nargs == 1)
        bits = (1u << HD_CH_MAX) - 1;
    if (on)
        cat->opt_out &= ~bits;
    else
        cat->opt_out |= bits;
    return NULL;
}

const struct hd_category_conf *
hd_conf_find_category(const struct hd_conf *cf, const char *name)
{
    for (int i = 0; i < cf->ncategories; i++)
        if (strcmp(cf->categories[i].name, name) == 0)
            return &cf->categories[i];
    return NULL;
}

/* user NAME [GROUP]; checked at start-up, when root drops to it */
static const char *
set_user(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    p->cf->user = n->args[0];
    p->cf->group = n->nargs == 2 ? n->args[1] : NULL;
    return NULL;
}

/* template NAME { push_title "..."; ...; locale pt-BR { ... } } */
static const char *
template_kv(struct parser *p, struct hd_template_conf *tc, struct node *head,
            const char *locale)
{
    for (struct node *d = head; d; d = d->next) {
        struct hd_template_kv *kv;
        if (strcmp(d->name, "locale") == 0 && *locale == '\0') {
            if (!d->block || d->nargs != 1)
                return fail(p, d->file, d->line,
                            "\"locale\" takes a language tag and a block"),
                       (const char *)-1;
            if (template_kv(p, tc, d->children, d->args[0]) != NULL)
                return (const char *)-1;
            continue;
        }
        if (d->block || d->nargs != 1)
            return fail(p, d->file, d->line,
                        "invalid number of arguments in \"%s\" directive",
                        d->name),
                   (const char *)-1;
        tc->kv = hd_realloc(tc->kv, (tc->nkv + 1) * sizeof(*kv));
        kv = &tc->kv[tc->nkv++];
        kv->locale = (char *)locale;
        kv->name = d->name;
        kv->value = d->args[0];
        kv->file = d->file;
        kv->line = d->line;
    }
    return NULL;
}

static const char *
set_template(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    struct hd_template_conf *tc;

    for (int i = 0; i < cf->ntemplates; i++)
        if (strcmp(cf->templates[i].name, n->args[0]) == 0)
            return fail(p, n->file, n->line, "duplicate template \"%s\"",
                        n->args[0]),
                   (const char *)-1;
    cf->templates =
        hd_realloc(cf->templates, (cf->ntemplates + 1) * sizeof(*tc));
    tc = &cf->templates[cf->ntemplates++];
    memset(tc, 0, sizeof(*tc));
    tc->name = n->args[0];
    tc->file = n->file;
    tc->line = n->line;
    /* the locale strings live in the nodes' args: kept by keep() */
    return template_kv(p, tc, n->children, "");
}

const struct hd_conf_kv *
hd_conf_kv_find(const struct hd_provider_conf *pc, const char *name)
{
    const struct hd_conf_kv *found = NULL;
    for (int i = 0; i < pc->nkv; i++)
        if (strcmp(pc->kv[i].name, name) == 0)
            found = &pc->kv[i];
    return found;
}

static const char *
set_channel(struct parser *p, struct node *n, const struct cmd *c, void *base)
{
    struct hd_conf *cf = p->cf;
    int ch = hd_channel_parse(n->args[0], strlen(n->args[0]));
    struct hd_channel_conf *cc;

    if (ch < 0)
        return fail(p, n->file, n->line,
                    "unknown channel \"%s\" (push, sms, email, web)",
                    n->args[0]),
               (const char *)-1;
    cc = &cf->channels[ch];
    if (cc->nproviders > 0)
        return fail(p, n->file, n->line, "duplicate channel \"%s\"",
                    n->args[0]),
               (const char *)-1;
    for (struct node *d = n->children; d; d = d->next) {
        if (strcmp(d->name, "provider") != 0)
            return fail(p, d->file, d->line, "unknown directive \"%s\"",
                        d->name),
                   (const char *)-1;
        if (d->nargs < 1 || d->nargs > HD_MAX_CHANNEL_PROVIDERS || d->block)
            return fail(p, d->file, d->line,
                        "invalid number of arguments in \"provider\" "
                        "directive"),
                   (const char *)-1;
        cc->nproviders = 0;
        for (int i = 0; i < d->nargs; i++) {
            int j;
            for (j = 0; j < cf->nproviders; j++)
                if (strcmp(cf->providers[j].name, d->args[i]) == 0)
                    break;
            if (j == cf->nproviders)
                return fail(p, d->file, d->line,
                            "unknown provider \"%s\" in \"channel\" "
                            "directive",
                            d->args[i]),
                       (const char *)-1;
            cc->providers[cc->nproviders++] = j;
        }
    }
    if (cc->nproviders == 0)
        return fail(p, n->file, n->line, "channel \"%s\" has no \"provider\"",
                    n->args[0]),
               (const char *)-1;
    return NULL;
}

/* ==== public ==== */

static void
set_defaults(struct hd_conf *cf)
{
    cf->refs = 1;
    cf->log_level = HD_LOG_NOTICE;
    cf->workers = HD_CONF_UNSET;
    cf->daemon = HD_CONF_UNSET;
    cf->client_max_body_size = HD_CONF_UNSET;
    cf->client_header_timeout_ms = HD_CONF_UNSET;
    cf->client_body_timeout_ms = HD_CONF_UNSET;
    cf->keepalive_timeout_ms = HD_CONF_UNSET;
    cf->send_timeout_ms = HD_CONF_UNSET;
    cf->keepalive_requests = HD_CONF_UNSET;
    cf->store.shards = HD_CONF_UNSET;
    cf->store.sync = HD_CONF_UNSET;
    cf->store.map_size = HD_CONF_UNSET;
    cf->store.max_map_size = HD_CONF_UNSET;
    cf->store.commit_records = HD_CONF_UNSET;
    cf->store.commit_delay_ms = HD_CONF_UNSET;
    cf->store.outcome_delay_ms = HD_CONF_UNSET;
    cf->store.high_water = HD_CONF_UNSET;
    cf->store.min_free_disk = HD_CONF_UNSET;
    cf->idempotency_ttl_ms = HD_CONF_UNSET;
    cf->sms_max_segments = HD_CONF_UNSET;
    cf->max_in_flight = HD_CONF_UNSET;
    cf->events_retention_ms = HD_CONF_UNSET;
}

#define DEFAULT(v, d)                                                          \
    do {                                                                       \
        if ((v) == HD_CONF_UNSET)                                              \
            (v) = (d);                                                         \
    } while (0)

static void
merge_defaults(struct hd_conf *cf)
{
    DEFAULT(cf->daemon, 0);
    DEFAULT(cf->workers, 0);
    DEFAULT(cf->client_max_body_size, 1024 * 1024);
    DEFAULT(cf->client_header_timeout_ms, 10000);
    DEFAULT(cf->client_body_timeout_ms, 10000);
    DEFAULT(cf->keepalive_timeout_ms, 75000);
    DEFAULT(cf->send_timeout_ms, 10000);
    DEFAULT(cf->keepalive_requests, 10000);
    DEFAULT(cf->store.shards, 0);
    DEFAULT(cf->store.sync, 1);
    DEFAULT(cf->store.map_size, 64LL * 1024 * 1024);
    DEFAULT(cf->store.max_map_size, 4LL * 1024 * 1024 * 1024);
    DEFAULT(cf->store.commit_records, 256);
    DEFAULT(cf->store.commit_delay_ms, 0);
    DEFAULT(cf->store.outcome_delay_ms, 4);
    DEFAULT(cf->store.high_water, 90);
    DEFAULT(cf->store.min_free_disk, 64LL * 1024 * 1024);
    DEFAULT(cf->idempotency_ttl_ms, 24LL * 3600 * 1000);
    DEFAULT(cf->sms_max_segments, 10);
    DEFAULT(cf->max_in_flight, 1024);
    DEFAULT(cf->events_retention_ms, 7LL * 86400 * 1000);
    if (cf->pid == NULL)
        cf->pid = keep(cf, hd_strdup("var/herald.pid"));
    if (cf->error_log == NULL)
        cf->error_log = keep(cf, hd_strdup("var/error.log"));
    if (cf->store.path == NULL)
        cf->store.path = keep(cf, hd_strdup("var/store"));
}

struct hd_conf *
hd_conf_load(const char *file, char *err, size_t errlen)
{
    struct parser p;
    struct node *head = NULL;
    struct hd_conf *cf = hd_calloc(sizeof(*cf));
    int rc;

    memset(&p, 0, sizeof(p));
    p.cf = cf;
    p.err = err;
    p.errlen = errlen;
    set_defaults(cf);
    cf->file = keep(cf, hd_strdup(file));

    rc = parse_file(&p, file, &head, 0);
    if (rc == HD_OK)
        rc = run_block(&p, head, main_cmds, cf);
    if (rc == HD_OK && cf->store.max_map_size != HD_CONF_UNSET &&
        cf->store.map_size != HD_CONF_UNSET &&
        cf->store.max_map_size < cf->store.map_size)
        rc = fail(&p, file, 1, "\"max_map_size\" is smaller than \"map_size\"");
    if (rc == HD_OK) {
        merge_defaults(cf);
        if (cf->nlisten == 0) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&cf->listen[0].addr;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(8025);
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            cf->listen[0].addrlen = sizeof(*sin);
            cf->listen[0].text = keep(cf, hd_strdup("127.0.0.1:8025"));
            cf->nlisten = 1;
        }
        for (int i = 0; i < cf->nlisten && rc == HD_OK; i++)
            if (cf->listen[i].ssl && (cf->ssl_certificate == NULL ||
                                      cf->ssl_certificate_key == NULL))
                rc = fail(&p, file, 1,
                          "\"listen %s ssl\" needs \"ssl_certificate\" and "
                          "\"ssl_certificate_key\"",
                          cf->listen[i].text);
        for (int ch = 0; ch < HD_CH_MAX && rc == HD_OK; ch++)
            if (cf->channels[ch].nproviders == 0)
                rc = fail(&p, file, 1,
                          "no provider for channel \"%s\"; "
                          "add: channel %s { provider NAME; }",
                          hd_channel_name(ch), hd_channel_name(ch));
    }

    for (int i = 0; i < p.nall; i++)
        free(p.all[i]);
    free(p.all);
    free(p.files);
    if (rc != HD_OK) {
        cf->refs = 1;
        hd_conf_unref(cf);
        return NULL;
    }
    return cf;
}

void
hd_conf_ref(struct hd_conf *cf)
{
    __atomic_add_fetch(&cf->refs, 1, __ATOMIC_RELAXED);
}

void
hd_conf_unref(struct hd_conf *cf)
{
    if (cf == NULL || __atomic_sub_fetch(&cf->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (int i = 0; i < cf->nstrings; i++)
        free(cf->strings[i]);
    free(cf->strings);
    for (int i = 0; i < cf->nproviders; i++)
        free(cf->providers[i].kv);
    free(cf->providers);
    free(cf->keys);
    free(cf->categories);
    for (int i = 0; i < cf->ntemplates; i++)
        free(cf->templates[i].kv);
    free(cf->templates);
    free(cf);
}

static const char *channel_names[HD_CH_MAX] = {"push", "sms", "email", "web"};

const char *
hd_channel_name(int ch)
{
    return channel_names[ch];
}

int
hd_channel_parse(const char *name, size_t len)
{
    for (int i = 0; i < HD_CH_MAX; i++)
        if (strlen(channel_names[i]) == len &&
            memcmp(channel_names[i], name, len) == 0)
            return i;
    return HD_ERROR;
}

const struct hd_api_key *
hd_conf_find_key(const struct hd_conf *cf, const char *id, size_t len)
{
    for (int i = 0; i < cf->nkeys; i++)
        if (strlen(cf->keys[i].id) == len &&
            memcmp(cf->keys[i].id, id, len) == 0)
            return &cf->keys[i];
    return NULL;
}
