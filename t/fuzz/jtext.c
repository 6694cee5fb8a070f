/*
 * jtext.c: libFuzzer target for src/core/jtext.c, the text reader and
 * writer of the hot path's records, checked against jansson:
 * - any bytes: hd_jtext_members and the value readers stay in bounds;
 * - an object jansson reads (no duplicate keys, not too deep): jtext finds
 *   the same members, and decodes each string member to jansson's value;
 * - hd_jbuf_json of it reads back (jansson) equal to it;
 * - as a notification's content, its APNs payload is JSON jansson reads.
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
    if (json_is_object(j) && json_object_size(j) <= MAX_MEMBERS &&
        depth_of(j) < JTEXT_DEPTH) {
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
