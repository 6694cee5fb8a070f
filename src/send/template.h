/*
 * template.h: a Mustache subset over jansson values. A template is parsed
 * once into an immutable struct hd_tpl that any number of threads may
 * render at the same time (read-only). No partials, lambdas or delimiter
 * changes: rendering only copies text and looks values up.
 */
#ifndef HD_TEMPLATE_H
#define HD_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#define HD_TPL_MAX_SRC (64 * 1024)     /* bytes of template source */
#define HD_TPL_MAX_OUTPUT (256 * 1024) /* bytes of rendered output */
#define HD_TPL_MAX_DEPTH 16            /* sections inside sections */
#define HD_TPL_MAX_NAME 128            /* bytes of a dotted name */

struct hd_tpl;

/* Parses len bytes of src (need not be NUL-terminated; copied, so src may
 * go away). Accepts {{name}}, {{a.b.0.c}}, {{.}}, {{{name}}}, {{& name}},
 * {{#name}}..{{/name}}, {{^name}}..{{/name}} and {{! comment }}; names are
 * "." or parts of [A-Za-z0-9_-] joined by single dots. Section and comment
 * tags alone on a line take the line with them (Mustache "standalone").
 * Refuses unclosed tags and sections, mismatched {{/x}}, bad names, {{= and
 * {{>, nesting deeper than HD_TPL_MAX_DEPTH and src over HD_TPL_MAX_SRC:
 * returns NULL with "LINE:COL: message" in err (1-based, COL in UTF-8
 * characters; truncated to errlen, never echoes bytes other than a valid
 * name). */
struct hd_tpl *hd_tpl_parse(const char *src, size_t len, char *err,
                            size_t errlen);

/* Renders t against ctx (borrowed until return; NULL acts as {}).
 * html_escape turns & < > " ' in {{name}} values into entities; {{{name}}}
 * and {{& name}} are never escaped, nor is template text. Strings are
 * copied as they are (UTF-8 untouched), integers as integers, reals as the
 * shortest form that reads back exactly, true/false as words, null as "".
 * The first name of a dotted lookup is searched from the innermost section
 * outwards, the rest inside what it found; a digit part indexes an array.
 *
 * A missing section name means the section is skipped ({{^x}} is shown):
 * that is how parts are made optional. Any other failure is HD_ERROR with
 * *name set: a {{variable}} that is missing wherever it is evaluated (also
 * inside a section that renders), or whose value is an object or array,
 * names it as written in the template (valid until hd_tpl_free(t)); output
 * over HD_TPL_MAX_OUTPUT sets "(output too large)" and more than about 4M
 * render steps (a big array under nested sections) "(render too long)",
 * both static. On HD_OK *out is malloc'd and NUL-terminated (the caller
 * frees it; *outlen excludes the NUL, which strings holding \0 may make
 * matter); on HD_ERROR *out is NULL and *outlen 0. */
int hd_tpl_render(const struct hd_tpl *t, json_t *ctx, int html_escape,
                  char **out, size_t *outlen, const char **name);

void hd_tpl_free(struct hd_tpl *t);

/* Called once per distinct name t uses, in order of first use ("." is not
 * reported). required is 1 when rendering fails without the name: it is a
 * {{variable}} outside every section. Section names and names inside
 * sections (looked up in the section's value first) get 0. name is valid
 * until hd_tpl_free(t). */
typedef void (*hd_tpl_name_fn)(const char *name, int required, void *arg);
void hd_tpl_names(const struct hd_tpl *t, hd_tpl_name_fn fn, void *arg);

#endif
