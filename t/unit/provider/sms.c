/*
 * t/unit/provider/sms.c: GSM-7 / UCS-2 segment counting (single and
 * concatenated limits, extension characters and surrogate pairs never
 * split, invalid UTF-8), E.164 syntax and form encoding.
 */
#include "provider/sms.c"

#include "tap.h"

static char *
rep(const char *s, int n)
{
    size_t len = strlen(s);
    char *out = hd_alloc(len * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(out + len * (size_t)i, s, len);
    out[len * (size_t)n] = '\0';
    return out;
}

static void
seg(const char *unit, int n, int want, int want_enc, const char *desc)
{
    char *s = rep(unit, n);
    int enc = -1, got = hd_sms_segments(s, &enc);
    is_int(got, want, desc);
    if (want > 0)
        is_str(hd_sms_encoding_name(enc), hd_sms_encoding_name(want_enc),
               "  encoding");
    free(s);
}

static void
test_segments(void)
{
    int enc;

    seg("a", 0, 1, HD_SMS_GSM7, "empty body: 1 segment");
    seg("a", 5, 1, HD_SMS_GSM7, "hello: 1");
    seg("a", 160, 1, HD_SMS_GSM7, "160 GSM-7: 1");
    seg("a", 161, 2, HD_SMS_GSM7, "161 GSM-7: 2 (153 per part)");
    seg("a", 306, 2, HD_SMS_GSM7, "306 GSM-7: 2");
    seg("a", 307, 3, HD_SMS_GSM7, "307 GSM-7: 3");
    seg("\xe2\x82\xac", 80, 1, HD_SMS_GSM7, "80 euro signs (2 septets): 1");
    seg("\xe2\x82\xac", 81, 2, HD_SMS_GSM7, "81 euro signs: 2");
    {
        char *a = rep("a", 152), *s = hd_alloc(400);
        snprintf(s, 400, "%s\xe2\x82\xac%s", a, a);
        is_int(hd_sms_segments(s, &enc), 3,
               "152 + euro + 152 = 306 septets: 3, the escape pair is "
               "never split");
        free(a);
        free(s);
    }
    seg("{", 153, 3, HD_SMS_GSM7, "153 braces: 306 septets, 76 a part: 3");
    seg("Gr\xc3\xbc\xc3\x9f"
        "e ",
        10, 1, HD_SMS_GSM7, "German umlauts and sharp s are GSM-7");
    seg("\xc3\xaa", 1, 1, HD_SMS_UCS2, "e circumflex is not GSM-7: UCS-2");
    seg("\xd0\xb6", 70, 1, HD_SMS_UCS2, "70 Cyrillic: 1");
    seg("\xd0\xb6", 71, 2, HD_SMS_UCS2, "71 Cyrillic: 2 (67 per part)");
    seg("\xd0\xb6", 134, 2, HD_SMS_UCS2, "134 Cyrillic: 2");
    seg("\xd0\xb6", 135, 3, HD_SMS_UCS2, "135 Cyrillic: 3");
    seg("\xf0\x9f\x98\x80", 35, 1, HD_SMS_UCS2, "35 emoji = 70 units: 1");
    seg("\xf0\x9f\x98\x80", 36, 2, HD_SMS_UCS2,
        "36 emoji: 2 (33 a part, pairs never split)");
    seg("\xf0\x9f\x98\x80", 67, 3, HD_SMS_UCS2, "67 emoji: 3");
    is_int(hd_sms_segments("abc\xff", &enc), -1, "invalid UTF-8: -1");
    is_int(hd_sms_segments("\xc3", &enc), -1, "truncated UTF-8: -1");
    is_int(hd_sms_segments("\xed\xa0\x80", &enc), -1,
           "an encoded surrogate: -1");
    is_int(hd_sms_segments("\xc0\xaf", &enc), -1, "overlong: -1");
}

static void
test_e164(void)
{
    ok(hd_sms_e164_valid("+14155552671"), "+14155552671 valid");
    ok(hd_sms_e164_valid("+442071838750"), "+442071838750 valid");
    ok(hd_sms_e164_valid("+123456789012345"), "15 digits valid");
    ok(!hd_sms_e164_valid("+1234567890123456"), "16 digits invalid");
    ok(!hd_sms_e164_valid("14155552671"), "no + invalid");
    ok(!hd_sms_e164_valid("+04155552671"), "leading 0 invalid");
    ok(!hd_sms_e164_valid("+1 415 555"), "spaces invalid");
    ok(!hd_sms_e164_valid("+1"), "too short invalid");
}

static void
test_form(void)
{
    struct evbuffer *b = evbuffer_new();
    char *s;

    hd_form_add(b, "To", "+15558675310");
    hd_form_add(b, "Body", "Hello world & more=1 \xc3\xbc~");
    hd_form_add(b, "StatusCallback", "https://example.com/tw/status");
    evbuffer_add(b, "", 1);
    s = (char *)evbuffer_pullup(b, -1);
    is_str(s,
           "To=%2B15558675310&Body=Hello+world+%26+more%3D1+%C3%BC%7E"
           "&StatusCallback=https%3A%2F%2Fexample.com%2Ftw%2Fstatus",
           "form encoding as protocols.md 4.1.1");
    evbuffer_free(b);
}

static const struct tap_case cases[] = {
    {"segments", test_segments},
    {"e164", test_e164},
    {"form", test_form},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
