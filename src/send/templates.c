/*
 * templates.c: named templates: compile, keep, choose a locale, render.
 * Any worker renders (ingest, on the owner of the user's shard); only the
 * owner of shard 0 changes API templates. The set is immutable once built
 * and reference-counted; a change builds a new set and swaps the pointer
 * under a mutex held for the swap and for taking a reference, nothing
 * more (templates are rare next to sends).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "core/herald.h"
#include "core/time.h"
#include "send/template.h"
#include "send/templates.h"

/* the fields of each channel's part, in a fixed order */
static const char *const fields[HD_CH_MAX][4] = {
    [HD_CH_PUSH] = {"title", "body", NULL, NULL},
    [HD_CH_SMS] = {"body", NULL, NULL, NULL},
    [HD_CH_EMAIL] = {"subject", "text", "html", NULL},
    [HD_CH_WEB] = {"title", "body", "url", "icon"},
};

struct variant {
    char *locale; /* "" for the default */
    struct hd_tpl *tpl[HD_CH_MAX][4];
};

struct entry {
    char *name;
    int from_config;
    json_t *def; /* the definition as given (API) or built (config) */
    struct variant *v;
    int nv;
};

struct set {
    int refs; /* atomic */
    struct entry *e;
    int n;
};

static struct set *current;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* ==== compile ==== */

static void
entry_clear(struct entry *e)
{
    for (int i = 0; i < e->nv; i++) {
        for (int ch = 0; ch < HD_CH_MAX; ch++)
            for (int f = 0; f < 4; f++)
                hd_tpl_free(e->v[i].tpl[ch][f]);
        free(e->v[i].locale);
    }
    free(e->v);
    free(e->name);
    json_decref(e->def);
}

/* Compiles one locale's parts ({ch: {field: src}}) into v. */
static int
compile_parts(json_t *parts, struct variant *v, char *err, size_t errlen,
              char *field, size_t fieldlen)
{
    const char *chn;
    json_t *part;

    if (!json_is_object(parts)) {
        snprintf(err, errlen, "must be an object of channel parts");
        return HD_ERROR;
    }
    json_object_foreach(parts, chn, part)
    {
        int ch = hd_channel_parse(chn, strlen(chn));
        const char *fn;
        json_t *src;

        snprintf(field, fieldlen, "%s", chn);
        if (ch < 0 || !json_is_object(part)) {
            snprintf(err, errlen,
                     "\"%s\" is not a channel part (push, sms, email, web "
                     "objects)",
                     chn);
            return HD_ERROR;
        }
        json_object_foreach(part, fn, src)
        {
            int f;
            char perr[256];
            for (f = 0; f < 4 && fields[ch][f]; f++)
                if (strcmp(fields[ch][f], fn) == 0)
                    break;
            snprintf(field, fieldlen, "%s.%s", chn, fn);
            if (f == 4 || fields[ch][f] == NULL || !json_is_string(src)) {
                snprintf(err, errlen, "\"%s.%s\" is not a text field of %s",
                         chn, fn, chn);
                return HD_ERROR;
            }
            v->tpl[ch][f] =
                hd_tpl_parse(json_string_value(src), json_string_length(src),
                             perr, sizeof(perr));
            if (v->tpl[ch][f] == NULL) {
                snprintf(err, errlen, "%s.%s: %s", chn, fn, perr);
                return HD_ERROR;
            }
        }
    }
    return HD_OK;
}

static int
compile(const char *name, json_t *def, struct entry *e, char *err,
        size_t errlen, char *field, size_t fieldlen)
{
    json_t *locales = json_object_get(def, "locales"), *parts;
    const char *tag;
    char f[96];

    memset(e, 0, sizeof(*e));
    e->name = hd_strdup(name);
    e->def = json_incref(def);
    e->v = hd_calloc(sizeof(*e->v) * (1 + json_object_size(locales)));
    e->v[0].locale = hd_strdup("");
    e->nv = 1;
    if (compile_parts(json_object_get(def, "parts"), &e->v[0], err, errlen, f,
                      sizeof(f)) != HD_OK) {
        snprintf(field, fieldlen, "parts.%s", f);
        return HD_ERROR;
    }
    if (locales != NULL && !json_is_object(locales)) {
        snprintf(err, errlen, "\"locales\" must be an object");
        snprintf(field, fieldlen, "locales");
        return HD_ERROR;
    }
    json_object_foreach(locales, tag, parts)
    {
        struct variant *v = &e->v[e->nv++];
        v->locale = hd_strdup(tag);
        if (compile_parts(parts, v, err, errlen, f, sizeof(f)) != HD_OK) {
            snprintf(field, fieldlen, "locales.%s.%s", tag, f);
            return HD_ERROR;
        }
    }
    return HD_OK;
}

/* A config template block as the same JSON an API caller would PUT. */
static json_t *
config_def(const struct hd_template_conf *tc, char *err, size_t errlen)
{
    json_t *def = json_pack("{s:{}, s:{}}", "parts", "locales");

    for (int i = 0; i < tc->nkv; i++) {
        const struct hd_template_kv *kv = &tc->kv[i];
        char chn[16], fn[16];
        const char *us = strchr(kv->name, '_');
        json_t *parts, *part;
        char *text = NULL;
        size_t n = us ? (size_t)(us - kv->name) : 0;
        int file = 0;

        if (us == NULL || n >= sizeof(chn)) {
            snprintf(err, errlen, "unknown template directive \"%s\" in %s:%d",
                     kv->name, kv->file, kv->line);
            json_decref(def);
            return NULL;
        }
        memcpy(chn, kv->name, n);
        chn[n] = '\0';
        snprintf(fn, sizeof(fn), "%s", us + 1);
        if (strlen(fn) > 5 && strcmp(fn + strlen(fn) - 5, "_file") == 0) {
            fn[strlen(fn) - 5] = '\0';
            file = 1;
        }
        if (file) {
            FILE *fp = fopen(kv->value, "r");
            size_t len = 0, cap = 0, r;
            if (fp == NULL) {
                snprintf(err, errlen, "cannot open \"%s\": %s in %s:%d",
                         kv->value, strerror(errno), kv->file, kv->line);
                json_decref(def);
                return NULL;
            }
            do {
                if (cap - len < 4096)
                    text = hd_realloc(text, cap = cap ? cap * 2 : 8192);
                r = fread(text + len, 1, cap - len - 1, fp);
                len += r;
            } while (r > 0 && len < HD_TPL_MAX_SRC + 1);
            fclose(fp);
            text[len] = '\0';
        }
        parts = *kv->locale ? json_object_get(json_object_get(def, "locales"),
                                              kv->locale)
                            : json_object_get(def, "parts");
        if (parts == NULL) {
            parts = json_object();
            json_object_set_new(json_object_get(def, "locales"), kv->locale,
                                parts);
        }
        part = json_object_get(parts, chn);
        if (part == NULL) {
            part = json_object();
            json_object_set_new(parts, chn, part);
        }
        json_object_set_new(part, fn, json_string(file ? text : kv->value));
        free(text);
        if (json_object_get(part, fn) == NULL) {
            snprintf(err, errlen, "\"%s\" is not UTF-8 in %s:%d", kv->name,
                     kv->file, kv->line);
            json_decref(def);
            return NULL;
        }
    }
    return def;
}

static int
compile_config(const struct hd_template_conf *tc, struct entry *e, char *err,
               size_t errlen)
{
    char msg[512], field[128];
    json_t *def = config_def(tc, err, errlen);

    if (def == NULL)
        return HD_ERROR;
    if (compile(tc->name, def, e, msg, sizeof(msg), field, sizeof(field)) !=
        HD_OK) {
        snprintf(err, errlen, "template \"%s\": %s in %s:%d", tc->name, msg,
                 tc->file, tc->line);
        json_decref(def);
        entry_clear(e);
        return HD_ERROR;
    }
    json_decref(def);
    e->from_config = 1;
    return HD_OK;
}

/* ==== the set ==== */

static void
set_release(struct set *s)
{
    if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (int i = 0; i < s->n; i++)
        entry_clear(&s->e[i]);
    free(s->e);
    free(s);
}

static struct set *
set_acquire(void)
{
    struct set *s;
    pthread_mutex_lock(&lock);
    s = current;
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&lock);
    return s;
}

static void
set_swap(struct set *s)
{
    struct set *old;
    pthread_mutex_lock(&lock);
    old = current;
    current = s;
    pthread_mutex_unlock(&lock);
    set_release(old);
}

static struct entry *
find(struct set *s, const char *name)
{
    for (int i = 0; s && i < s->n; i++)
        if (strcmp(s->e[i].name, name) == 0)
            return &s->e[i];
    return NULL;
}

/* A new set: config templates of cf (or those of base when cf is NULL),
 * then API templates from api (name -> def), skipping config names. */
static struct set *
build(const struct hd_conf *cf, struct set *base, json_t *api, char *err,
      size_t errlen)
{
    struct set *s = hd_calloc(sizeof(*s));
    const char *name;
    json_t *def;
    size_t cap = (cf ? (size_t)cf->ntemplates : (size_t)(base ? base->n : 0)) +
                 json_object_size(api) + 1;

    s->refs = 1;
    s->e = hd_calloc(cap * sizeof(*s->e));
    if (cf) {
        for (int i = 0; i < cf->ntemplates; i++) {
            if (compile_config(&cf->templates[i], &s->e[s->n], err, errlen) !=
                HD_OK) {
                set_release(s);
                return NULL;
            }
            s->n++;
        }
    } else {
        for (int i = 0; base && i < base->n; i++) {
            char m[256], f[96];
            if (!base->e[i].from_config)
                continue;
            if (compile(base->e[i].name, base->e[i].def, &s->e[s->n], m,
                        sizeof(m), f, sizeof(f)) == HD_OK) {
                s->e[s->n++].from_config = 1;
            } else {
                entry_clear(&s->e[s->n]);
            }
        }
    }
    json_object_foreach(api, name, def)
    {
        char m[256], f[96];
        if (find(s, name) != NULL || json_is_null(def))
            continue; /* the config's name wins */
        if (compile(name, def, &s->e[s->n], m, sizeof(m), f, sizeof(f)) ==
            HD_OK)
            s->n++;
        else
            entry_clear(&s->e[s->n]); /* stored by an older herald? */
    }
    return s;
}

/* The API templates of s as name -> def. */
static json_t *
api_defs(struct set *s)
{
    json_t *o = json_object();
    for (int i = 0; s && i < s->n; i++)
        if (!s->e[i].from_config)
            json_object_set(o, s->e[i].name, s->e[i].def);
    return o;
}

int
hd_templates_check(const struct hd_conf *cf, char *err, size_t errlen)
{
    for (int i = 0; i < cf->ntemplates; i++) {
        struct entry e;
        if (strlen(cf->templates[i].name) > HD_TEMPLATE_NAME_MAX) {
            snprintf(err, errlen, "template name too long in %s:%d",
                     cf->templates[i].file, cf->templates[i].line);
            return HD_ERROR;
        }
        if (compile_config(&cf->templates[i], &e, err, errlen) != HD_OK)
            return HD_ERROR;
        entry_clear(&e);
    }
    return HD_OK;
}

int
hd_templates_init(const struct hd_conf *cf, struct hd_shard *shard0, char *err,
                  size_t errlen)
{
    json_t *api = json_object();
    struct hd_kv *kv;
    struct set *s;
    int n =
        hd_store_range(shard0, HD_DB_TEMPLATES, "", 0, NULL, 0, 0, 10000, &kv);

    for (int i = 0; i < n; i++) {
        MDB_val v = {kv[i].vlen, kv[i].val};
        json_t *rec = hd_record_decode(&v);
        if (rec != NULL)
            json_object_set(api, kv[i].key, json_object_get(rec, "def"));
        json_decref(rec);
    }
    hd_kv_free(kv, n);
    s = build(cf, NULL, api, err, errlen);
    json_decref(api);
    if (s == NULL)
        return HD_ERROR;
    set_swap(s);
    return HD_OK;
}

int
hd_templates_reconf(const struct hd_conf *cf, char *err, size_t errlen)
{
    struct set *old = set_acquire(), *s;
    json_t *api = api_defs(old);

    s = build(cf, NULL, api, err, errlen);
    json_decref(api);
    set_release(old);
    if (s == NULL)
        return HD_ERROR;
    set_swap(s);
    return HD_OK;
}

void
hd_templates_free(void)
{
    set_swap(NULL);
}

int
hd_template_validate(json_t *def, char *err, size_t errlen, char *field,
                     size_t fieldlen)
{
    struct entry e;
    const char *k;
    json_t *v;
    int rc;

    json_object_foreach(def, k, v)
    {
        if (strcmp(k, "parts") != 0 && strcmp(k, "locales") != 0) {
            snprintf(err, errlen, "unknown field \"%s\"", k);
            snprintf(field, fieldlen, "%s", k);
            return HD_ERROR;
        }
    }
    if (!json_is_object(json_object_get(def, "parts"))) {
        snprintf(err, errlen,
                 "\"parts\" is required: {channel: {field: "
                 "template}}");
        snprintf(field, fieldlen, "parts");
        return HD_ERROR;
    }
    rc = compile("check", def, &e, err, errlen, field, fieldlen);
    entry_clear(&e);
    return rc;
}

int
hd_template_put(struct hd_shard *s, const char *name, json_t *def)
{
    struct set *old = set_acquire(), *next;
    struct entry *e = find(old, name);
    json_t *api;
    char err[256];

    if (e != NULL && e->from_config) {
        set_release(old);
        return HD_DECLINED;
    }
    if (def == NULL && e == NULL) {
        set_release(old);
        return HD_ERROR; /* nothing to delete */
    }
    if (def != NULL) {
        char now[32];
        json_t *rec;
        hd_time_iso(hd_now_ms(), now, sizeof(now));
        rec = json_pack("{s:O, s:s}", "def", def, "updated_at", now);
        hd_store_put_json(s, HD_DB_TEMPLATES, name, rec);
        json_decref(rec);
    } else {
        hd_store_del(s, HD_DB_TEMPLATES, name, strlen(name));
    }
    api = api_defs(old);
    if (def)
        json_object_set(api, name, def);
    else
        json_object_del(api, name);
    next = build(NULL, old, api, err, sizeof(err));
    json_decref(api);
    set_release(old);
    if (next != NULL)
        set_swap(next);
    return HD_OK;
}

json_t *
hd_template_get(const char *name)
{
    struct set *s = set_acquire();
    struct entry *e = find(s, name);
    json_t *out = NULL;

    if (e != NULL) {
        out = json_deep_copy(e->def);
        json_object_set_new(out, "name", json_string(name));
        json_object_set_new(out, "source",
                            json_string(e->from_config ? "config" : "api"));
    }
    set_release(s);
    return out;
}

json_t *
hd_template_list(void)
{
    struct set *s = set_acquire();
    json_t *list = json_array();

    for (int i = 0; s && i < s->n; i++)
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "name", s->e[i].name, "source",
                            s->e[i].from_config ? "config" : "api"));
    set_release(s);
    return list;
}

/* ==== rendering ==== */

/* pt-BR -> pt -> default: the variant of each step that has the field */
static struct hd_tpl *
pick(struct entry *e, const char *locale, int ch, int f)
{
    char tag[64];

    snprintf(tag, sizeof(tag), "%s", locale ? locale : "");
    while (tag[0] != '\0') {
        char *dash;
        for (int i = 1; i < e->nv; i++)
            if (strcasecmp(e->v[i].locale, tag) == 0 && e->v[i].tpl[ch][f])
                return e->v[i].tpl[ch][f];
        dash = strrchr(tag, '-');
        if (dash == NULL)
            break;
        *dash = '\0';
    }
    return e->v[0].tpl[ch][f];
}

int
hd_template_render(const char *name, json_t *user, json_t *data,
                   json_t **content, char *missing, size_t missinglen)
{
    struct set *s = set_acquire();
    struct entry *e = find(s, name);
    const char *locale = json_string_value(json_object_get(user, "locale"));
    json_t *ctx, *out, *u;
    static const char *ukeys[] = {"id", "email", "phone", "locale", "timezone"};

    if (e == NULL) {
        set_release(s);
        return HD_DECLINED;
    }
    ctx = json_is_object(data) ? json_copy(data) : json_object();
    u = json_object();
    for (size_t i = 0; i < HD_NELEMS(ukeys); i++)
        if (json_object_get(user, ukeys[i]))
            json_object_set(u, ukeys[i], json_object_get(user, ukeys[i]));
    json_object_set_new(ctx, "user", u);

    out = json_object();
    for (int ch = 0; ch < HD_CH_MAX; ch++) {
        json_t *part = NULL;
        for (int f = 0; f < 4 && fields[ch][f]; f++) {
            struct hd_tpl *t = pick(e, locale, ch, f);
            const char *bad = NULL;
            char *text;
            size_t len;
            if (t == NULL)
                continue;
            /* html parts escape what they insert; nothing else does */
            if (hd_tpl_render(t, ctx, ch == HD_CH_EMAIL && f == 2, &text, &len,
                              &bad) != HD_OK) {
                snprintf(missing, missinglen, "%s", bad ? bad : "?");
                json_decref(part);
                json_decref(out);
                json_decref(ctx);
                set_release(s);
                return HD_ERROR;
            }
            if (part == NULL)
                part = json_object();
            json_object_set_new(part, fields[ch][f],
                                json_stringn_nocheck(text, len));
            free(text);
        }
        if (part)
            json_object_set_new(out, hd_channel_name(ch), part);
    }
    json_decref(ctx);
    set_release(s);
    *content = out;
    return HD_OK;
}
