/*
 * codec.c: libFuzzer target for the input decoders herald applies to
 * untrusted bytes: base64 (both alphabets), RFC 3339 times and signed
 * tokens (as in unsubscribe and tracking links), and the UTF-8 repair of
 * error messages (its output must be a string jansson takes).
 */
#include <stdio.h>
#include <jansson.h>

#include "core/alloc.c"
#include "core/codec.c"
#include "core/log.c"
#include "core/sign.c"
#include "core/time.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = hd_strndup((const char *)data, size), payload[512];
    unsigned char *buf = hd_alloc(size + 4);
    int64_t ms;

    hd_base64_decode(s, strlen(s), buf, 0);
    hd_base64_decode(s, strlen(s), buf, 1);
    hd_time_parse_iso(s, &ms);
    hd_sign_verify(s, payload, sizeof(payload));
    {
        json_t *j = json_string(hd_utf8_fix(s));
        if (j == NULL)
            abort();
        json_decref(j);
    }
    free(buf);
    free(s);
    return 0;
}
