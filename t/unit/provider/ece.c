/*
 * t/unit/provider/ece.c: RFC 8291 Web Push encryption. The Appendix A
 * example (known salt and ephemeral key) must give the exact body; fresh
 * encryptions, with and without padding, must decrypt with the
 * subscription's private key (a decryptor written here from RFC 8188);
 * bad keys and oversized payloads are refused.
 */
#include "provider/ece.c"

#include "core/codec.h"
#include "tap.h"

/* RFC 8291 Appendix A (protocols.md §3.7) */
static const char *PLAIN = "When I grow up, I want to be a watermelon";
static const char *AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char *AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDl"
                               "l6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char *UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
static const char *UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcx"
                               "aOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char *AUTH = "BTBZMqHH6r4Tts7J_aSIgg";
static const char *SALT = "DGv6ra1nlYgDCS1FRnbzlw";
static const char *HEADER =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZII"
    "gDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char *CIPHERTEXT = "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1"
                                "y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ";
static const char *BODY =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZII"
    "gDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztL"
    "VBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

static int
unb64(const char *s, unsigned char *out)
{
    return hd_base64_decode(s, strlen(s), out, 1);
}

static char *
b64(const unsigned char *p, size_t n)
{
    char *s = hd_alloc((n + 2) / 3 * 4 + 1);
    hd_base64_encode(p, n, s, 1);
    return s;
}

/* RFC 8188/8291 receiver: the plaintext into plain, its length, or -1. */
static int
decrypt(const unsigned char *ua_private, const unsigned char *ua_public,
        const unsigned char *auth, const unsigned char *body, size_t len,
        unsigned char *plain)
{
    unsigned char as_public[65];
    unsigned char secret[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32],
        info[145];
    size_t slen = 32, rlen;
    EVP_PKEY *ua, *as;
    EVP_PKEY_CTX *d;
    EVP_CIPHER_CTX *c;
    BIGNUM *priv;
    int n, m, ok;

    if (len < HD_ECE_HEADER_LEN + 17 || body[20] != 65)
        return -1;
    if (((uint32_t)body[16] << 24 | body[17] << 16 | body[18] << 8 |
         body[19]) != 4096)
        return -1;
    memcpy(as_public, body + 21, 65);
    priv = BN_bin2bn(ua_private, 32, NULL);
    ua = key_from(ua_public, priv);
    BN_free(priv);
    as = key_from(as_public, NULL);
    d = EVP_PKEY_CTX_new(ua, NULL);
    ok = ua && as && d && EVP_PKEY_derive_init(d) == 1 &&
         EVP_PKEY_derive_set_peer(d, as) == 1 &&
         EVP_PKEY_derive(d, secret, &slen) == 1;
    EVP_PKEY_CTX_free(d);
    EVP_PKEY_free(ua);
    EVP_PKEY_free(as);
    if (!ok)
        return -1;
    memcpy(info, "WebPush: info", 14);
    memcpy(info + 14, ua_public, 65);
    memcpy(info + 79, as_public, 65);
    info[144] = 1;
    hmac(auth, 16, secret, 32, NULL, 0, prk_key);
    hmac(prk_key, 32, info, 145, NULL, 0, ikm);
    hmac(body, 16, ikm, 32, NULL, 0, prk);
    hmac(prk, 32, (const unsigned char *)"Content-Encoding: aes128gcm\0\1", 29,
         NULL, 0, cek);
    hmac(prk, 32, (const unsigned char *)"Content-Encoding: nonce\0\1", 25,
         NULL, 0, nonce);

    rlen = len - HD_ECE_HEADER_LEN - 16;
    c = EVP_CIPHER_CTX_new();
    ok = EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce) == 1 &&
         EVP_DecryptUpdate(c, plain, &n, body + HD_ECE_HEADER_LEN, (int)rlen) ==
             1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
                             (void *)(body + len - 16)) == 1 &&
         EVP_DecryptFinal_ex(c, plain + n, &m) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return -1;
    /* strip the zero padding; the delimiter of the last record is 2 */
    while (rlen > 0 && plain[rlen - 1] == 0)
        rlen--;
    if (rlen == 0 || plain[rlen - 1] != 2)
        return -1;
    return (int)rlen - 1;
}

static void
test_rfc8291_example(void)
{
    unsigned char ua_public[80], auth[20], salt[20], as_private[40], out[512];
    const char *err = NULL;
    char *s;
    int n;

    is_int(unb64(UA_PUBLIC, ua_public), 65, "ua_public: 65 bytes");
    is_int(unb64(AUTH, auth), 16, "auth: 16 bytes");
    is_int(unb64(SALT, salt), 16, "salt: 16 bytes");
    is_int(unb64(AS_PRIVATE, as_private), 32, "as_private: 32 bytes");

    n = hd_ece_encrypt_with(ua_public, auth, salt, as_private, PLAIN,
                            strlen(PLAIN), 0, out, sizeof(out), &err);
    is_int(n, 144, "RFC 8291 A: a 144-byte body");
    if (n != 144) {
        diag("error: %s", err ? err : "(none)");
        return;
    }
    ok(err == NULL, "no error");
    s = b64(out, HD_ECE_HEADER_LEN);
    is_str(s, HEADER, "RFC 8291 A: header (salt, rs 4096, keyid as_public)");
    free(s);
    s = b64(out + 21, 65);
    is_str(s, AS_PUBLIC, "RFC 8291 A: keyid is as_public");
    free(s);
    s = b64(out + HD_ECE_HEADER_LEN, (size_t)n - HD_ECE_HEADER_LEN);
    is_str(s, CIPHERTEXT, "RFC 8291 A: exact ciphertext");
    free(s);
    s = b64(out, (size_t)n);
    is_str(s, BODY, "RFC 8291 A: exact body");
    free(s);

    {
        unsigned char ua_private[40], plain[512];
        int pn;
        unb64(UA_PRIVATE, ua_private);
        pn = decrypt(ua_private, ua_public, auth, out, (size_t)n, plain);
        ok(pn == (int)strlen(PLAIN) && memcmp(plain, PLAIN, strlen(PLAIN)) == 0,
           "RFC 8291 A: the test decryptor reads it back");
    }
}

/* A fresh subscription key pair: private scalar and public point. */
static void
new_subscription(unsigned char *priv, unsigned char *pub, unsigned char *auth)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIGNUM *d = NULL;
    size_t n = 0;

    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d);
    BN_bn2binpad(d, priv, 32);
    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &n);
    BN_clear_free(d);
    EVP_PKEY_free(k);
    RAND_bytes(auth, 16);
}

static void
test_roundtrip(void)
{
    unsigned char priv[32], pub[65], auth[16], out[4200], out2[4200],
        plain[4200];
    const char *msg = "{\"title\":\"Hello\",\"body\":\"World \xc3\xa9\"}";
    static unsigned char big[HD_ECE_MAX_PLAINTEXT];
    const char *err = NULL;
    int n, n2, pn;

    new_subscription(priv, pub, auth);
    n = hd_ece_encrypt(pub, auth, msg, strlen(msg), 0, out, sizeof(out), &err);
    is_int(n, (int)strlen(msg) + HD_ECE_OVERHEAD, "fresh: body length");
    pn = decrypt(priv, pub, auth, out, (size_t)n, plain);
    ok(pn == (int)strlen(msg) && memcmp(plain, msg, strlen(msg)) == 0,
       "fresh: decrypts with the subscription key");

    n2 = hd_ece_encrypt(pub, auth, msg, strlen(msg), 0, out2, sizeof(out2),
                        &err);
    ok(n2 == n && memcmp(out, out2, 16) != 0 &&
           memcmp(out + 21, out2 + 21, 65) != 0,
       "each message has its own salt and ephemeral key");

    n = hd_ece_encrypt(pub, auth, msg, strlen(msg), 100, out, sizeof(out),
                       &err);
    is_int(n, (int)strlen(msg) + 100 + HD_ECE_OVERHEAD, "padded: length");
    pn = decrypt(priv, pub, auth, out, (size_t)n, plain);
    ok(pn == (int)strlen(msg) && memcmp(plain, msg, strlen(msg)) == 0,
       "padded: decrypts, padding stripped");

    out[n - 1] ^= 1;
    ok(decrypt(priv, pub, auth, out, (size_t)n, plain) < 0,
       "a changed tag does not decrypt");

    memset(big, 'x', sizeof(big));
    n = hd_ece_encrypt(pub, auth, big, sizeof(big), 0, out, sizeof(out), &err);
    is_int(n, 4096, "3993 bytes of plaintext: a 4096-byte body");
    pn = decrypt(priv, pub, auth, out, (size_t)n, plain);
    ok(pn == (int)sizeof(big) && memcmp(plain, big, sizeof(big)) == 0,
       "the largest body decrypts");
}

static void
test_refusals(void)
{
    unsigned char priv[32], pub[65], auth[16], out[4200];
    static unsigned char big[HD_ECE_MAX_PLAINTEXT + 1];
    const char *err = NULL;
    int n;

    new_subscription(priv, pub, auth);
    n = hd_ece_encrypt(pub, auth, big, sizeof(big), 0, out, sizeof(out), &err);
    ok(n == HD_ERROR && err && strstr(err, "3993"), "3994 bytes refused: %s",
       err ? err : "");
    n = hd_ece_encrypt(pub, auth, "x", 1, HD_ECE_MAX_PLAINTEXT, out,
                       sizeof(out), &err);
    ok(n == HD_ERROR, "padding counts toward the limit");
    n = hd_ece_encrypt(pub, auth, "x", 1, 0, out, 50, &err);
    ok(n == HD_ERROR && err, "a short output buffer is refused: %s",
       err ? err : "");

    pub[40] ^= 0x55; /* off the curve */
    err = NULL;
    n = hd_ece_encrypt(pub, auth, "x", 1, 0, out, sizeof(out), &err);
    ok(n == HD_ERROR && err && strstr(err, "p256dh"),
       "a point off the curve is refused: %s", err ? err : "");
    pub[40] ^= 0x55;
    pub[0] = 0x02;
    n = hd_ece_encrypt(pub, auth, "x", 1, 0, out, sizeof(out), &err);
    ok(n == HD_ERROR, "a compressed point is refused");
}

int
main(void)
{
    static const struct tap_case cases[] = {
        {"rfc8291_example", test_rfc8291_example},
        {"roundtrip", test_roundtrip},
        {"refusals", test_refusals},
    };

    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
