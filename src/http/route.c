/*
 * route.c: the route table: method + path pattern -> scope + handler.
 * Worker thread. Patterns are literal segments and "{}" for one path
 * parameter, percent-decoded before the handler sees it.
 */
#include <stdio.h>

#include "core/herald.h"
#include "http/api.h"
#include "http/auth.h"
#include "http/http.h"

struct route {
    int method;
    const char *pattern;
    unsigned scope; /* 0: no auth */
    void (*handler)(struct hd_req *r);
};

static const struct route routes[] = {
    {HD_M_GET, "/healthz", 0, hd_api_healthz},
    {HD_M_PUT, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_put},
    {HD_M_GET, "/v1/users/{}", HD_SCOPE_USERS, hd_api_user_get},
    {HD_M_POST, "/v1/notifications", HD_SCOPE_SEND, hd_api_send},
    {HD_M_POST, "/v1/users/{}/notifications", HD_SCOPE_SEND, hd_api_send},
    {HD_M_GET, "/v1/notifications/{}", HD_SCOPE_READ, hd_api_status},
};

static int
unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in [s, s+n) into a new string; NULL on a bad escape or a
 * NUL byte. */
static char *
decode(const char *s, size_t n)
{
    char *out = hd_alloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            hi = unhex(s[i + 1]);
            lo = unhex(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Matches path against pattern; fills params on success. HD_OK,
 * HD_DECLINED (no match) or HD_ERROR (bad escape). */
static int
match(const char *pattern, const char *path, struct hd_req *r)
{
    const char *p = pattern, *s = path;

    r->nparams = 0;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(s, '/');
            size_t n = end ? (size_t)(end - s) : strlen(s);
            char *v;
            if (n == 0)
                return HD_DECLINED;
            v = decode(s, n);
            if (v == NULL)
                return HD_ERROR;
            r->params[r->nparams++] = v;
            p += 2;
            s += n;
            continue;
        }
        if (*p != *s)
            return HD_DECLINED;
        p++;
        s++;
    }
    return *p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'))
               ? HD_OK
               : HD_DECLINED;
}

static void
drop_params(struct hd_req *r)
{
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    r->nparams = 0;
}

void
hd_http_route(struct hd_req *r)
{
    const struct route *found = NULL;
    char allow[128] = "";
    size_t n = 0;

    for (size_t i = 0; i < HD_NELEMS(routes); i++) {
        int rc = match(routes[i].pattern, r->path, r);
        if (rc != HD_OK)
            drop_params(r); /* a prefix may have matched */
        if (rc == HD_ERROR) {
            hd_http_error(r, 400, "bad_request", NULL,
                          "invalid percent-encoding in path");
            return;
        }
        if (rc != HD_OK)
            continue;
        if (routes[i].method == r->method
            || (r->method == HD_M_HEAD && routes[i].method == HD_M_GET)) {
            found = &routes[i];
            break;
        }
        drop_params(r);
        n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s",
                              n ? ", " : "Allow: ",
                              routes[i].method == HD_M_GET    ? "GET"
                              : routes[i].method == HD_M_POST ? "POST"
                              : routes[i].method == HD_M_PUT  ? "PUT"
                              : routes[i].method == HD_M_PATCH
                                  ? "PATCH"
                                  : "DELETE");
    }
    if (found == NULL) {
        if (n) {
            hd_http_header(r, allow);
            hd_http_error(r, 405, "method_not_allowed", NULL,
                          "method %s is not allowed on %s", r->method_name,
                          r->path);
        } else {
            hd_http_error(r, 404, "not_found", NULL, "no such endpoint: %s",
                          r->path);
        }
        return;
    }
    if (found->scope) {
        r->key = hd_auth_basic(r->conf, r->authorization);
        if (r->key == NULL) {
            hd_http_error(r, 401, "unauthorized", NULL,
                          r->authorization
                              ? "invalid API key or secret"
                              : "missing credentials: use HTTP Basic auth "
                                "with your API key and secret");
            return;
        }
        if (!(r->key->scopes & found->scope)) {
            hd_http_error(r, 403, "forbidden", NULL,
                          "API key \"%s\" lacks the scope this endpoint "
                          "needs",
                          r->key->id);
            return;
        }
    }
    found->handler(r);
}
