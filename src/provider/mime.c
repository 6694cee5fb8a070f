/*
 * mime.c: the email message herald sends, built as 7-bit text with CRLF
 * line ends: headers (RFC 5322, RFC 2047 encoded words for UTF-8),
 * multipart/alternative text + html in quoted-printable (RFC 2045/2046),
 * List-Unsubscribe one-click (RFC 2369, RFC 8058), and DATA dot-stuffing
 * (RFC 5321 4.5.2). Pure functions: any thread, no state, no I/O.
 */
#include <stdio.h>
#include <time.h>

#include "core/codec.h"
#include "core/herald.h"
#include "provider/mime.h"

static const char hex[] = "0123456789ABCDEF";

/* ==== dates ==== */

void
hd_mime_date(int64_t ms, char *buf, size_t size)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed",
                                 "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ==== headers: RFC 2047 ==== */

/* bytes of the UTF-8 character starting with c (1 for stray bytes) */
static size_t
utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c < 0xf8)
        return 4;
    if (c >= 0xe0)
        return 3;
    if (c >= 0xc0)
        return 2;
    return 1;
}

/* Q encoding keeps these (RFC 2047 5(3)); space becomes '_' */
static int
q_plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
           c == '-' || c == '/';
}

static int
printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* Appends value as encoded words; col is the column after "Name: ". */
static void
encoded_words(struct evbuffer *out, const char *value, size_t col)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t len = strlen(value), need = 0, i;
    int b;

    for (i = 0; i < len; i++)
        if (!q_plain(s[i]) && s[i] != ' ')
            need++;
    b = need * 3 > len; /* mostly non-Latin: B is shorter */

    i = 0;
    while (i < len) {
        /* the room for this word's payload on its line */
        size_t limit = HD_MIME_WORD_MAX, room, used = 0, start = i;
        if (col + HD_MIME_WORD_MAX > HD_MIME_QP_LINE)
            limit = HD_MIME_QP_LINE - col;
        if (limit < 24)
            limit = 24;
        room = limit - 12; /* "=?UTF-8?Q?" "?=" */
        while (i < len) {
            size_t n = utf8_len(s[i]), cost = 0;
            if (i + n > len)
                n = len - i;
            if (b) {
                size_t bytes = i + n - start;
                cost = (bytes + 2) / 3 * 4 - used;
            } else {
                for (size_t k = 0; k < n; k++)
                    cost += q_plain(s[i + k]) || s[i + k] == ' ' ? 1 : 3;
            }
            if (used + cost > room && i > start)
                break;
            used += cost;
            i += n;
        }
        evbuffer_add_printf(out, "=?UTF-8?%c?", b ? 'B' : 'Q');
        if (b) {
            char enc[128];
            hd_base64_encode(s + start, i - start, enc, 0);
            evbuffer_add(out, enc, strlen(enc));
        } else {
            for (size_t k = start; k < i; k++) {
                if (s[k] == ' ') {
                    evbuffer_add(out, "_", 1);
                } else if (q_plain(s[k])) {
                    evbuffer_add(out, &s[k], 1);
                } else {
                    char e[3] = {'=', hex[s[k] >> 4], hex[s[k] & 15]};
                    evbuffer_add(out, e, 3);
                }
            }
        }
        evbuffer_add(out, "?=", 2);
        if (i < len) {
            evbuffer_add(out, "\r\n ", 3); /* folding white space */
            col = 1;
        }
    }
}

void
hd_mime_header(struct evbuffer *out, const char *name, const char *value)
{
    size_t col = strlen(name) + 2, len = strlen(value);

    evbuffer_add_printf(out, "%s: ", name);
    if (!printable(value) || strstr(value, "=?") || len > 900) {
        encoded_words(out, value, col);
    } else {
        /* fold at spaces past 78 columns */
        const char *s = value;
        while (col + strlen(s) > 78) {
            const char *sp = NULL;
            for (const char *p = s + 1; *p && col + (size_t)(p - s) <= 78; p++)
                if (*p == ' ')
                    sp = p;
            if (sp == NULL)
                break;
            evbuffer_add(out, s, (size_t)(sp - s));
            evbuffer_add(out, "\r\n", 2);
            s = sp; /* the space starts the continuation line */
            col = 0;
        }
        evbuffer_add(out, s, strlen(s));
    }
    evbuffer_add(out, "\r\n", 2);
}

/* ==== bodies ==== */

void
hd_mime_qp(struct evbuffer *out, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t col = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        char tok[3];
        size_t n;
        int eol;

        if (c == '\n' || (c == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            if (c == '\r')
                i++;
            evbuffer_add(out, "\r\n", 2);
            col = 0;
            continue;
        }
        /* at the end of a line a blank must be encoded */
        eol = i + 1 == len || s[i + 1] == '\n' ||
              (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n');
        if ((c >= 33 && c <= 126 && c != '=') ||
            ((c == ' ' || c == '\t') && !eol)) {
            tok[0] = (char)c;
            n = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[c >> 4];
            tok[2] = hex[c & 15];
            n = 3;
        }
        /* room for a soft break '=' unless this is the line's last */
        if (col + n > (eol ? HD_MIME_QP_LINE : HD_MIME_QP_LINE - 1)) {
            evbuffer_add(out, "=\r\n", 3);
            col = 0;
        }
        evbuffer_add(out, tok, n);
        col += n;
    }
    if (col > 0)
        evbuffer_add(out, "\r\n", 2);
}

void
hd_mime_dot_stuff(struct evbuffer *out, const char *src, size_t len)
{
    int bol = 1;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (bol && c == '.')
            evbuffer_add(out, ".", 1);
        bol = 0;
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && src[i + 1] == '\n')
                i++;
            evbuffer_add(out, "\r\n", 2);
            bol = 1;
            continue;
        }
        evbuffer_add(out, &c, 1);
    }
    if (!bol)
        evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, ".\r\n", 3);
}

static void
part(struct evbuffer *out, const char *type, const char *body)
{
    evbuffer_add_printf(out,
                        "Content-Type: %s; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n"
                        "\r\n",
                        type);
    hd_mime_qp(out, body, strlen(body));
}

void
hd_mime_build(struct evbuffer *out, const struct hd_mime_msg *m)
{
    char date[40], boundary[80];
    unsigned long h = 5381;

    hd_mime_date(m->date_ms, date, sizeof(date));
    evbuffer_add_printf(out, "Date: %s\r\n", date);
    if (m->from_name && *m->from_name) {
        if (printable(m->from_name) && !strpbrk(m->from_name, "\"\\") &&
            !strstr(m->from_name, "=?")) {
            evbuffer_add_printf(out, "From: \"%s\" <%s>\r\n", m->from_name,
                                m->from);
        } else {
            evbuffer_add(out, "From: ", 6);
            encoded_words(out, m->from_name, 6);
            evbuffer_add_printf(out, "\r\n <%s>\r\n", m->from);
        }
    } else {
        evbuffer_add_printf(out, "From: %s\r\n", m->from);
    }
    evbuffer_add_printf(out, "To: %s\r\n", m->to);
    if (m->subject)
        hd_mime_header(out, "Subject", m->subject);
    evbuffer_add_printf(out, "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n",
                        m->message_id);
    if (m->unsubscribe_url) {
        evbuffer_add_printf(out, "List-Unsubscribe: <%s>\r\n",
                            m->unsubscribe_url);
        evbuffer_add(
            out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", 51);
    }
    if (m->text && m->html) {
        /* "=_" never occurs in quoted-printable output: a safe boundary */
        for (const char *p = m->message_id; *p; p++)
            h = h * 33 + (unsigned char)*p;
        snprintf(boundary, sizeof(boundary), "=_herald_%016lx", h);
        evbuffer_add_printf(out,
                            "Content-Type: multipart/alternative; "
                            "boundary=\"%s\"\r\n\r\n"
                            "This is a multi-part message in MIME "
                            "format.\r\n\r\n--%s\r\n",
                            boundary, boundary);
        part(out, "text/plain", m->text);
        evbuffer_add_printf(out, "\r\n--%s\r\n", boundary);
        part(out, "text/html", m->html);
        evbuffer_add_printf(out, "\r\n--%s--\r\n", boundary);
    } else if (m->html) {
        part(out, "text/html", m->html);
    } else {
        part(out, "text/plain", m->text ? m->text : "");
    }
}
