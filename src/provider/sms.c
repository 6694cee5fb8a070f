/*
 * sms.c: SMS body accounting (GSM-7 or UCS-2 segments), E.164 syntax and
 * form encoding for the Twilio and Vonage providers. Pure: no state, any
 * thread.
 */
#include <stdint.h>

#include "core/herald.h"
#include "provider/sms.h"

#define GSM_SINGLE 160
#define GSM_MULTI 153
#define UCS_SINGLE 70
#define UCS_MULTI 67

/* GSM 03.38 basic character set, as Unicode code points (ESC excluded) */
static const uint16_t gsm_basic[] = {
    '@',   0xa3,  '$',   0xa5,  0xe8,  0xe9,  0xf9, 0xec,  0xf2,  0xc7,  '\n',
    0xd8,  0xf8,  '\r',  0xc5,  0xe5,  0x394, '_',  0x3a6, 0x393, 0x39b, 0x3a9,
    0x3a0, 0x3a8, 0x3a3, 0x398, 0x39e, 0xc6,  0xe6, 0xdf,  0xc9,  ' ',   '!',
    '"',   '#',   0xa4,  '%',   '&',   '\'',  '(',  ')',   '*',   '+',   ',',
    '-',   '.',   '/',   ':',   ';',   '<',   '=',  '>',   '?',   0xa1,  0xc4,
    0xd6,  0xd1,  0xdc,  0xa7,  0xbf,  0xe4,  0xf6, 0xf1,  0xfc,  0xe0,
};

/* the extension table: escape + one septet */
static const uint16_t gsm_ext[] = {'\f', '^', '{', '}', '\\',
                                   '[',  '~', ']', '|', 0x20ac};

/* Septets of code point c in GSM-7 (1 or 2), or 0 if it has none. */
static int
gsm_septets(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9'))
        return 1;
    for (size_t i = 0; i < HD_NELEMS(gsm_basic); i++)
        if (gsm_basic[i] == c)
            return 1;
    for (size_t i = 0; i < HD_NELEMS(gsm_ext); i++)
        if (gsm_ext[i] == c)
            return 2;
    return 0;
}

/* Decodes one UTF-8 character at *s; -1 on invalid input. */
static int32_t
utf8_next(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c;
    int n;

    if (p[0] < 0x80) {
        *s = p + 1;
        return p[0];
    }
    if ((p[0] & 0xe0) == 0xc0) {
        c = p[0] & 0x1f;
        n = 1;
    } else if ((p[0] & 0xf0) == 0xe0) {
        c = p[0] & 0x0f;
        n = 2;
    } else if ((p[0] & 0xf8) == 0xf0) {
        c = p[0] & 0x07;
        n = 3;
    } else {
        return -1;
    }
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) ||
        (n == 3 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *s = p + n + 1;
    return (int32_t)c;
}

/* Segments for units costing cost[i] each, parts never split a unit. */
static int
count(const unsigned char *body, int gsm, int single, int multi)
{
    const unsigned char *s = body;
    int total = 0, seg = 0, segs = 1;

    while (*s) {
        int32_t c = utf8_next(&s);
        int cost = gsm ? gsm_septets((uint32_t)c) : (c > 0xffff ? 2 : 1);
        total += cost;
        if (seg + cost > multi) {
            segs++;
            seg = 0;
        }
        seg += cost;
    }
    return total <= single ? 1 : segs;
}

int
hd_sms_segments(const char *body, int *encoding)
{
    const unsigned char *s = (const unsigned char *)body;
    int gsm = 1;

    while (*s) {
        int32_t c = utf8_next(&s);
        if (c < 0)
            return -1;
        if (gsm_septets((uint32_t)c) == 0)
            gsm = 0;
    }
    *encoding = gsm ? HD_SMS_GSM7 : HD_SMS_UCS2;
    return gsm ? count((const unsigned char *)body, 1, GSM_SINGLE, GSM_MULTI)
               : count((const unsigned char *)body, 0, UCS_SINGLE, UCS_MULTI);
}

const char *
hd_sms_encoding_name(int encoding)
{
    return encoding == HD_SMS_GSM7 ? "gsm7" : "ucs2";
}

int
hd_sms_e164_valid(const char *n)
{
    size_t digits = 0;

    if (n[0] != '+' || n[1] < '1' || n[1] > '9')
        return 0;
    for (n++; *n; n++, digits++)
        if (*n < '0' || *n > '9')
            return 0;
    return digits >= 2 && digits <= 15;
}

static void
form_escape(struct evbuffer *buf, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '*') {
            evbuffer_add(buf, s, 1);
        } else if (c == ' ') {
            evbuffer_add(buf, "+", 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            evbuffer_add(buf, e, 3);
        }
    }
}

void
hd_form_add(struct evbuffer *buf, const char *name, const char *value)
{
    if (evbuffer_get_length(buf))
        evbuffer_add(buf, "&", 1);
    form_escape(buf, name);
    evbuffer_add(buf, "=", 1);
    form_escape(buf, value);
}
