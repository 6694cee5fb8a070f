/*
 * t/unit/provider/twilio.c: the X-Twilio-Signature check against the
 * test vectors of protocols.md 4.1.6 (from twilio-node's validation
 * spec): form parameters in any order, the JSON-body variant, and what
 * must be refused.
 */
#include "provider/twilio.c"

#include "tap.h"

#define URL "https://mycompany.com/myapp.php?foo=1&bar=2"

static void
test_vector(void)
{
    struct hd_twilio_param p[] = {
        {"To", "+18005551212"},           {"Digits", "1234"},
        {"CallSid", "CA1234567890ABCDE"}, {"From", "+14158675309"},
        {"Caller", "+14158675309"},
    };
    char sig[29];

    hd_twilio_signature("12345", URL, p, HD_NELEMS(p), sig);
    is_str(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "signature of the vector");
    is_str(p[0].name, "CallSid", "params sorted by name");
    ok(hd_twilio_signature_valid("12345", URL, p, HD_NELEMS(p),
                                 "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
       "vector signature valid");
    ok(!hd_twilio_signature_valid("12346", URL, p, HD_NELEMS(p),
                                  "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
       "other auth token: invalid");
    ok(!hd_twilio_signature_valid("12345", URL "&x=1", p, HD_NELEMS(p),
                                  "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
       "other URL: invalid");
    p[1].value = "1235";
    ok(!hd_twilio_signature_valid("12345", URL, p, HD_NELEMS(p),
                                  "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
       "changed param: invalid");
    ok(!hd_twilio_signature_valid("12345", URL, p, HD_NELEMS(p), NULL),
       "no signature: invalid");
    ok(!hd_twilio_signature_valid("12345", URL, p, HD_NELEMS(p), "RSOY"),
       "short signature: invalid");
}

static void
test_body_variant(void)
{
    const char *url =
        URL "&bodySHA256="
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    ok(hd_twilio_signature_valid("12345", url, NULL, 0,
                                 "a9nBmqA0ju/hNViExpshrM61xv4="),
       "JSON body variant: URL with bodySHA256 and no params");
}

static void
test_repeated(void)
{
    struct hd_twilio_param a[] = {{"B", "2"}, {"A", "y"}, {"A", "x"}};
    struct hd_twilio_param b[] = {{"A", "x"}, {"A", "y"}, {"B", "2"}};
    char s1[29], s2[29];

    hd_twilio_signature("t", "https://h/cb", a, 3, s1);
    hd_twilio_signature("t", "https://h/cb", b, 3, s2);
    is_str(s1, s2, "repeated names: values sorted, order of arrival moot");
}

static const struct tap_case cases[] = {
    {"vector", test_vector},
    {"body variant", test_body_variant},
    {"repeated", test_repeated},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
