/*
 * http.c: libFuzzer target for the HTTP/1.1 request-head parser, fed the
 * way the server feeds it: a header block cut at the first CRLF CRLF and
 * NUL-terminated. Links the rest of herald (objs/) like a unit test.
 */
#include "http/server.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = memmem(data, size, "\r\n\r\n", 4);
    struct hd_req r;
    int64_t clen;
    const char *err = NULL;

    if (end == NULL || end + 4 - data > HD_MAX_HEADER)
        return 0;
    memset(&r, 0, sizeof(r));
    r._hdr = hd_strndup((const char *)data, (size_t)(end + 4 - data));
    parse_header(&r, (size_t)(end + 4 - data), &clen, &err);
    free(r._hdr);
    return 0;
}
