/*
 * t/unit/core/codec.c: base64 (RFC 4648 section 10 vectors, standard and
 * url alphabets, padded and not) and hex.
 */
#include "core/codec.c"

#include <stdio.h>

#include "tap.h"

static const struct {
    const char *plain, *std, *url;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

/* decodes into a fresh buffer; returns the length, *out NUL-terminated */
static int
decode(const char *src, int url, char *out)
{
    int n = hd_base64_decode(src, strlen(src), (unsigned char *)out, url);
    out[n < 0 ? 0 : n] = '\0';
    return n;
}

static void
test_encode_vectors(void)
{
    char buf[64], desc[96];

    for (size_t i = 0; i < HD_NELEMS(rfc4648); i++) {
        const char *p = rfc4648[i].plain;
        size_t n;

        n = hd_base64_encode((const unsigned char *)p, strlen(p), buf, 0);
        snprintf(desc, sizeof(desc), "encode std \"%s\" -> \"%s\"", p,
                 rfc4648[i].std);
        is_str(buf, rfc4648[i].std, desc);
        is_int(n, strlen(rfc4648[i].std), "  returned length");

        n = hd_base64_encode((const unsigned char *)p, strlen(p), buf, 1);
        snprintf(desc, sizeof(desc), "encode url \"%s\" -> \"%s\" (no pad)", p,
                 rfc4648[i].url);
        is_str(buf, rfc4648[i].url, desc);
        is_int(n, strlen(rfc4648[i].url), "  returned length");
    }
}

static void
test_decode_vectors(void)
{
    char buf[64], desc[96];

    for (size_t i = 0; i < HD_NELEMS(rfc4648); i++) {
        const char *p = rfc4648[i].plain;
        int n;

        for (int url = 0; url <= 1; url++) {
            n = decode(rfc4648[i].std, url, buf);
            snprintf(desc, sizeof(desc), "decode %s \"%s\" (padded)",
                     url ? "url" : "std", rfc4648[i].std);
            ok(n == (int)strlen(p) && strcmp(buf, p) == 0, "%s", desc);

            n = decode(rfc4648[i].url, url, buf);
            snprintf(desc, sizeof(desc), "decode %s \"%s\" (unpadded)",
                     url ? "url" : "std", rfc4648[i].url);
            ok(n == (int)strlen(p) && strcmp(buf, p) == 0, "%s", desc);
        }
    }
}

static void
test_alphabets(void)
{
    /* 0xfb 0xff 0xbf uses both alphabet-specific characters */
    const unsigned char bin[] = {0xfb, 0xff, 0xbf, 0xfe};
    unsigned char out[16];
    char buf[32];

    hd_base64_encode(bin, 3, buf, 0);
    is_str(buf, "+/+/", "std alphabet uses + and /");
    hd_base64_encode(bin, 3, buf, 1);
    is_str(buf, "-_-_", "url alphabet uses - and _");
    hd_base64_encode(bin, 4, buf, 0);
    is_str(buf, "+/+//g==", "std 4 bytes padded");
    hd_base64_encode(bin, 4, buf, 1);
    is_str(buf, "-_-__g", "url 4 bytes unpadded");

    is_int(hd_base64_decode("+/+//g==", 8, out, 0), 4, "std decode of + /");
    ok(memcmp(out, bin, 4) == 0, "  bytes match");
    is_int(hd_base64_decode("-_-__g", 6, out, 1), 4, "url decode of - _");
    ok(memcmp(out, bin, 4) == 0, "  bytes match");
    is_int(hd_base64_decode("-_-_", 4, out, 0), -1,
           "std decoder rejects url characters");
    is_int(hd_base64_decode("+/+/", 4, out, 1), -1,
           "url decoder rejects std characters");
}

static void
test_round_trip(void)
{
    unsigned char bin[256], out[256 + 3];
    char enc[((256 + 2) / 3) * 4 + 1];
    int bad = 0;

    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(bin); len++)
        for (int url = 0; url <= 1; url++) {
            size_t n = hd_base64_encode(bin, len, enc, url);
            int m = hd_base64_decode(enc, n, out, url);
            if (m != (int)len || memcmp(out, bin, len) != 0)
                bad++;
        }
    is_int(bad, 0, "encode/decode round trip, lengths 0..256, both alphabets");
}

static void
test_invalid(void)
{
    static const char *bad[] = {
        "Zm9v!",    /* not in the alphabet */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* newline */
        "Z",        /* one char is never a whole byte */
        "Zm9vY",    /* 5 chars: last group of one */
        "Z===",     /* padding cannot make a group of one valid */
        "Zg==Zg==", /* padding in the middle */
        "=Zg=",     /* leading padding */
    };
    unsigned char out[32];

    for (size_t i = 0; i < HD_NELEMS(bad); i++) {
        int n = hd_base64_decode(bad[i], strlen(bad[i]), out, 0);
        ok(n == -1, "decode rejects \"%s\"", i == 2 ? "Zm9v\\n" : bad[i]);
    }
    is_int(hd_base64_decode("Zm9v\0Zm9v", 9, out, 0), -1,
           "decode rejects an embedded NUL");
}

static void
test_hex(void)
{
    const unsigned char bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char buf[32];

    hd_hex_encode(bin, sizeof(bin), buf);
    is_str(buf, "00017f80abff", "hex of 00 01 7f 80 ab ff, lowercase");
    memset(buf, 'x', sizeof(buf));
    hd_hex_encode(bin, 0, buf);
    is_str(buf, "", "hex of nothing is \"\" (terminated)");
    hd_hex_encode((const unsigned char *)"foobar", 6, buf);
    is_str(buf, "666f6f626172", "hex of \"foobar\" (RFC 4648 section 10)");
}

static void
test_hex_digit(void)
{
    static const char digits[] = "0123456789abcdefABCDEF";
    int bad = 0;

    for (int i = 0; digits[i]; i++)
        if (hd_hex_digit(digits[i]) != (i < 16 ? i : i - 6))
            bad++;
    is_int(bad, 0, "every hex digit, both cases");
    for (int c = 0; c < 256; c++)
        if (!strchr(digits, c) && hd_hex_digit(c) != -1)
            bad++;
    is_int(bad, 0, "every other byte is -1 (g, G, /, :, @, `, 0xff)");
}

static const struct tap_case cases[] = {
    {"base64 encode, RFC 4648 section 10", test_encode_vectors},
    {"base64 decode, RFC 4648 section 10", test_decode_vectors},
    {"std and url alphabets", test_alphabets},
    {"round trip", test_round_trip},
    {"invalid input", test_invalid},
    {"hex", test_hex},
    {"hex digit", test_hex_digit},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
