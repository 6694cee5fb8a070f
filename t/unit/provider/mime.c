/*
 * t/unit/provider/mime.c: RFC 2047 encoded words (Q and B, word and line
 * limits, whole UTF-8 characters, no header injection), quoted-printable
 * (76-column lines, soft breaks, trailing blanks, '='), dot-stuffing and
 * line ends, the RFC 5322 date, and a whole message's structure.
 */
#include "provider/mime.c"

#include "tap.h"

static char *
take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = hd_alloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static char *
header(const char *name, const char *value)
{
    struct evbuffer *b = evbuffer_new();
    char *s;
    hd_mime_header(b, name, value);
    s = take(b);
    evbuffer_free(b);
    return s;
}

static char *
qp(const char *in)
{
    struct evbuffer *b = evbuffer_new();
    char *s;
    hd_mime_qp(b, in, strlen(in));
    s = take(b);
    evbuffer_free(b);
    return s;
}

static char *
stuff(const char *in)
{
    struct evbuffer *b = evbuffer_new();
    char *s;
    hd_mime_dot_stuff(b, in, strlen(in));
    s = take(b);
    evbuffer_free(b);
    return s;
}

/* longest line, CRLF excluded; *bare set when a lone CR or LF is seen */
static size_t
max_line(const char *s, int *bare)
{
    size_t max = 0, cur = 0;
    *bare = 0;
    for (; *s; s++) {
        if (s[0] == '\r' && s[1] == '\n') {
            if (cur > max)
                max = cur;
            cur = 0;
            s++;
        } else if (*s == '\r' || *s == '\n') {
            *bare = 1;
        } else {
            cur++;
        }
    }
    return cur > max ? cur : max;
}

static void
test_words(void)
{
    char *s;
    int bare;

    s = header("Subject", "Hello there");
    is_str(s, "Subject: Hello there\r\n", "ASCII subject as is");
    free(s);
    s = header("Subject", "Gr\xc3\xbc\xc3\x9f"
                          "e \xe2\x9c\x93");
    is_str(s, "Subject: =?UTF-8?B?R3LDvMOfZSDinJM=?=\r\n",
           "mostly non-ASCII: B words (protocols.md 5.5 example)");
    free(s);
    s = header("Subject", "Gr\xc3\xbc\xc3\x9f"
                          "e aus K\xc3\xb6ln, alles gut");
    is_str(
        s,
        "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln=2C_alles_gut?=\r\n",
        "mostly Latin: Q words, '_' for space, ',' encoded");
    free(s);
    s = header("Subject", "a\r\nBcc: victim@example.com");
    ok(strstr(s, "\r\nBcc") == NULL, "CRLF in a subject cannot add a header");
    ok(strncmp(s, "Subject: =?UTF-8?Q?a=0D=0ABcc", 29) == 0,
       "  it is encoded instead");
    free(s);
    s = header("Subject", "=?UTF-8?B?Zm9v?= looks encoded");
    ok(strncmp(s, "Subject: =?UTF-8?Q?=3D=3F", 25) == 0,
       "text that looks like an encoded word gets encoded");
    free(s);

    {
        /* 60 x "ü✓ " : long, must fold into several words */
        char in[1024] = "", *w;
        int ok_words = 1, ok_utf8 = 1;
        for (int i = 0; i < 60; i++)
            strcat(in, "\xc3\xbc\xe2\x9c\x93 ");
        s = header("Subject", in);
        is_int(max_line(s, &bare) <= 76, 1, "long subject: lines <= 76");
        ok(!bare, "long subject: CRLF only");
        for (w = strstr(s, "=?"); w; w = strstr(w + 2, "=?")) {
            char *e = strstr(w + 2, "?=");
            unsigned char dec[128];
            int n;
            if (e == NULL || e - w + 2 > 75)
                ok_words = 0;
            if (e && w[8] == 'B') {
                n = hd_base64_decode(w + 10, (size_t)(e - w - 10), dec, 0);
                /* a word must end on a whole character */
                if (n > 0 &&
                    ((dec[n - 1] & 0xc0) == 0xc0 ||
                     ((dec[n - 1] & 0xc0) == 0x80 && n >= 2 &&
                      (dec[n - 2] & 0xe0) == 0xe0 && (dec[n - 1] != 0x93))))
                    ok_utf8 = 0;
            }
            if (e)
                w = e;
        }
        ok(ok_words, "long subject: every encoded word <= 75");
        ok(ok_utf8, "long subject: words split on whole characters");
        free(s);
    }
}

static void
test_qp(void)
{
    char *s, big[300];
    int bare;

    s = qp("a=b");
    is_str(s, "a=3Db\r\n", "'=' encoded");
    free(s);
    s = qp("caf\xc3\xa9");
    is_str(s, "caf=C3=A9\r\n", "UTF-8 bytes encoded");
    free(s);
    s = qp("x \ny\t\nz ");
    is_str(s, "x=20\r\ny=09\r\nz=20\r\n", "trailing blanks encoded");
    free(s);
    s = qp("a b\r\nc");
    is_str(s, "a b\r\nc\r\n", "inner blank kept, CRLF kept");
    free(s);
    memset(big, 'a', 200);
    big[200] = '\0';
    s = qp(big);
    is_int(max_line(s, &bare), 76, "200 chars: lines of at most 76");
    ok(strstr(s, "=\r\n") != NULL, "  with soft breaks");
    free(s);
    for (int i = 0; i < 100; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[200] = '\0';
    s = qp(big);
    {
        /* no =XX token is split by a soft break */
        int split = 0;
        for (char *p = s; (p = strstr(p, "=\r\n")); p += 3)
            if (p > s + 1 && (p[-1] == '=' || p[-2] == '='))
                split = 1;
        ok(!split, "soft breaks never split =XX");
    }
    is_int(max_line(s, &bare) <= 76, 1, "encoded lines <= 76");
    free(s);
}

static void
test_stuff(void)
{
    char *s;

    s = stuff(".hello\r\nworld\n..x");
    is_str(s, "..hello\r\nworld\r\n...x\r\n.\r\n",
           "leading dots doubled, bare LF to CRLF, CRLF.CRLF added");
    free(s);
    s = stuff("a\rb\r\n.\r\n");
    is_str(s, "a\r\nb\r\n..\r\n.\r\n", "bare CR to CRLF; a lone dot line");
    free(s);
    s = stuff("");
    is_str(s, ".\r\n", "empty: just the end");
    free(s);
    s = stuff("end\r\n");
    is_str(s, "end\r\n.\r\n", "no extra CRLF when the body ends with one");
    free(s);
}

static void
test_date(void)
{
    char buf[40];

    hd_mime_date(0, buf, sizeof(buf));
    is_str(buf, "Thu, 01 Jan 1970 00:00:00 +0000", "epoch");
    hd_mime_date(1709647407000LL, buf, sizeof(buf));
    is_str(buf, "Tue, 05 Mar 2024 14:03:27 +0000", "protocols.md 5.5 date");
}

static void
test_build(void)
{
    struct evbuffer *b = evbuffer_new();
    struct hd_mime_msg m;
    char *text = hd_alloc(5001), *s;
    int bare;

    memset(text, 'w', 5000);
    text[5000] = '\0';
    memset(&m, 0, sizeof(m));
    m.from = "alerts@example.org";
    m.from_name = "Acme \xe2\x9c\x93";
    m.to = "alice@example.net";
    m.subject = "Hi";
    m.text = text;
    m.html = "<p>.dot</p>";
    m.message_id = "n1-0@herald.test";
    m.unsubscribe_url = "https://h.example/u/n1-0";
    m.date_ms = 1709647407000LL;
    hd_mime_build(b, &m);
    s = take(b);
    ok(strstr(s, "Date: Tue, 05 Mar 2024 14:03:27 +0000\r\n") != NULL, "Date");
    ok(strstr(s, "From: =?UTF-8?") != NULL &&
           strstr(s, "\r\n <alerts@example.org>\r\n") != NULL,
       "From with an encoded name");
    ok(strstr(s, "Message-ID: <n1-0@herald.test>\r\n") != NULL, "Message-ID");
    ok(strstr(s, "List-Unsubscribe: <https://h.example/u/n1-0>\r\n") != NULL,
       "List-Unsubscribe");
    ok(strstr(s, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") !=
           NULL,
       "List-Unsubscribe-Post");
    ok(strstr(s, "multipart/alternative; boundary=\"=_herald_") != NULL,
       "multipart/alternative");
    ok(strstr(s, "text/plain") < strstr(s, "text/html"), "text before html");
    is_int(max_line(s, &bare) <= 76, 1, "a 5000-char line: all lines <= 76");
    ok(!bare, "CRLF only");
    {
        int high = 0;
        for (char *p = s; *p; p++)
            if ((unsigned char)*p > 127)
                high = 1;
        ok(!high, "7-bit clean");
    }
    ok(strstr(s, "\r\n--=_herald_") != NULL && strstr(s, "--\r\n") != NULL,
       "delimiters and the closing delimiter");
    free(s);
    m.html = NULL;
    hd_mime_build(b, &m);
    s = take(b);
    ok(strstr(s, "multipart") == NULL &&
           strstr(s, "Content-Type: text/plain; charset=utf-8\r\n"),
       "text only: a single part");
    free(s);
    evbuffer_free(b);
    free(text);
}

static const struct tap_case cases[] = {
    {"encoded words", test_words}, {"quoted-printable", test_qp},
    {"dot-stuffing", test_stuff},  {"date", test_date},
    {"message", test_build},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
