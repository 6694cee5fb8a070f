/*
 * template.c: libFuzzer target for the template engine: parse the input
 * as a template and render it against a context with strings, numbers,
 * arrays and nested objects, escaped and not.
 */
#include "core/alloc.c"
#include "send/template.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    char err[256];
    struct hd_tpl *t;

    if (ctx == NULL)
        ctx = json_loads("{\"name\":\"A<b>\",\"n\":3,\"x\":1.5,\"t\":true,"
                         "\"items\":[{\"name\":\"i\"},{\"name\":\"j\"}],"
                         "\"user\":{\"email\":\"e@x.y\",\"locale\":\"pt\"},"
                         "\"empty\":[],\"obj\":{\"a\":{\"b\":\"c\"}}}",
                         0, NULL);
    t = hd_tpl_parse((const char *)data, size, err, sizeof(err));
    if (t != NULL) {
        char *out;
        size_t len;
        const char *name;
        for (int esc = 0; esc < 2; esc++)
            if (hd_tpl_render(t, ctx, esc, &out, &len, &name) == HD_OK)
                free(out);
        hd_tpl_free(t);
    }
    return 0;
}
