/*
 * jtext.c: libFuzzer target for src/core/jtext.c, the text reader and
 * writer of the hot path's records, checked against jansson:
 * - any bytes: hd_jtext_members and the value readers stay in bounds;
 * - an object jansson reads (no duplicate keys, not too deep): jtext finds
 *   the same members, and decodes each string member to jansson's value;
 * - hd_jbuf_json of it reads back (jansson) equal to it;
 * - as a notification's content, its APNs payload is JSON jansson reads;
 * - any bytes: hd_jtext_valid says HD_OK exactly when jansson reads them
 *   (JSON_REJECT_DUPLICATES) at most HD_JTEXT_DEPTH deep, HD_DECLINED when
 *   jansson reads them deeper (or refuses them), HD_ERROR otherwise;
 * - valid text: hd_jbuf_compact of it reads back equal, hd_jtext_items of
 *   an array gives jansson's elements, hd_jtext_strlen its string lengths.
 */
#include <stdio.h>
#include <jansson.h>

#include "core/jtext.c"
#include "fuzz.h"
#include "provider/apns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MEMBERS 256

static int
depth_of(json_t *v)
{
    int d = 0, x;
    const char *k;
    json_t *e;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, k, e)
        {
            if ((x = depth_of(e)) > d)
                d = x;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if ((x = depth_of(e)) > d)
                d = x;
        }
        return d + 1;
    }
    return 0;
}

/* what hd_jtext_valid accepts, j as jansson read it: compacted it reads
 * back equal; an array's items are jansson's elements */
static void
check_accepted(const char *p, size_t size, json_t *j)
{
    struct hd_jbuf b, again;
    struct hd_jspan *v;
    json_t *back;
    int n;

    hd_jbuf_init(&b, 16);
    hd_jbuf_compact(&b, p, size);
    back = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(back != NULL && json_equal(back, j));
    CHECK(b.len <= size);
    json_decref(back);
    hd_jbuf_init(&again, 16);
    hd_jbuf_compact(&again, b.p, b.len);
    CHECK(again.len == b.len); /* no whitespace was left outside strings */
    free(again.p);
    free(b.p);

    v = hd_alloc((size / 2 + 1) * sizeof(*v));
    n = hd_jtext_items(p, size, v, (int)(size / 2 + 1));
    CHECK(json_is_array(j) ? n == (int)json_array_size(j) : n == HD_ERROR);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(j, (size_t)i);
        CHECK(v[i].n > 0 && memchr(" \t\n\r", v[i].p[0], 4) == NULL &&
              memchr(" \t\n\r", v[i].p[v[i].n - 1], 4) == NULL);
        back = json_loadb(v[i].p, v[i].n,
                          JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        CHECK(back != NULL && json_equal(back, e));
        json_decref(back);
        if (json_is_string(e))
            CHECK(hd_jtext_strlen(&v[i]) == (long)json_string_length(e));
    }
    free(v);
}

/* hd_jtext_valid against jansson (j: what it read of the input, or NULL).
 * One difference is meant: jansson skips a NUL byte right after a number
 * or literal (load.c: lex_unget_unsave() steps back onto it, and
 * stream_get() takes a NUL in its buffer for "nothing buffered" and reads
 * on), jtext refuses every raw NUL: stored text is used as a C string. */
static void
check_valid(const char *p, size_t size, json_t *j)
{
    int rc = hd_jtext_valid(p, size);
    int deep = j != NULL && depth_of(j) > HD_JTEXT_DEPTH;
    int nul = j != NULL && memchr(p, '\0', size) != NULL;

    CHECK(rc == HD_OK || rc == HD_DECLINED || rc == HD_ERROR);
    CHECK((rc == HD_OK) == (j != NULL && !deep && !nul));
    CHECK(rc != HD_DECLINED || j == NULL || deep);
    CHECK(!deep || nul || rc == HD_DECLINED);
    if (rc == HD_OK)
        check_accepted(p, size, j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct hd_jmember *m = hd_alloc(MAX_MEMBERS * sizeof(*m));
    char *buf = hd_alloc(size + 1);
    int n = hd_jtext_members(p, size, m, MAX_MEMBERS);
    json_t *j;

    for (int i = 0; i < n; i++) {
        hd_jtext_str(&m[i].val, buf, size + 1);
        hd_jtext_int(&m[i].val);
        hd_jtext_true(&m[i].val);
    }

    j = json_loadb(p, size, JSON_REJECT_DUPLICATES, NULL);
    check_valid(p, size, j);
    if (json_is_object(j) && json_object_size(j) <= MAX_MEMBERS &&
        depth_of(j) < HD_JTEXT_DEPTH) {
        struct hd_jbuf b;
        json_t *back;

        /* the members jansson saw, values decoded the same */
        CHECK(n == (int)json_object_size(j));
        for (int i = 0; i < n; i++) {
            json_t *v;
            memcpy(buf, m[i].key.p, m[i].key.n);
            buf[m[i].key.n] = '\0';
            if (memchr(m[i].key.p, '\\', m[i].key.n) != NULL)
                continue; /* an escaped key: compared as written only */
            v = json_object_get(j, buf);
            CHECK(v != NULL);
            if (json_is_string(v) && memchr(json_string_value(v), '\0',
                                            json_string_length(v)) == NULL)
                CHECK(hd_jtext_str(&m[i].val, buf, size + 1) >= 0 &&
                      strcmp(buf, json_string_value(v)) == 0);
            if (json_is_string(v))
                CHECK(hd_jtext_strlen(&m[i].val) ==
                      (long)json_string_length(v));
        }

        /* the writer: what it writes reads back equal */
        hd_jbuf_init(&b, 16);
        hd_jbuf_json(&b, j);
        back = json_loadb(b.p, b.len, 0, NULL);
        CHECK(back != NULL && json_equal(back, j));
        json_decref(back);
        free(b.p);

        /* as content: the APNs payload is JSON */
        {
            int bg;
            size_t len;
            char *pl = hd_apns_payload(p, size, &bg, &len);
            if (pl != NULL) {
                json_t *x = json_loadb(pl, len, 0, NULL);
                CHECK(x != NULL);
                json_decref(x);
                free(pl);
            }
        }
    }
    json_decref(j);
    free(buf);
    free(m);
    return 0;
}
