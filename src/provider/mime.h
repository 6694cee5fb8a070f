/*
 * mime.h: building the email herald sends (RFC 5322 headers, MIME
 * multipart/alternative with quoted-printable parts, RFC 2047 encoded
 * words, RFC 8058 one-click List-Unsubscribe) and SMTP DATA transparency
 * (dot-stuffing). Pure: any thread, no state. The output is 7-bit clean,
 * has CRLF line ends only, and no line longer than 998 octets.
 */
#ifndef HD_MIME_H
#define HD_MIME_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>

#define HD_MIME_LINE_MAX 998
#define HD_MIME_QP_LINE 76
#define HD_MIME_WORD_MAX 75

struct hd_mime_msg {
    const char *from;            /* address */
    const char *from_name;       /* display name (UTF-8) or NULL */
    const char *to;              /* address */
    const char *subject;         /* UTF-8, or NULL */
    const char *text;            /* UTF-8 text/plain part, or NULL */
    const char *html;            /* UTF-8 text/html part, or NULL */
    const char *message_id;      /* "id@host", without the brackets */
    const char *unsubscribe_url; /* one-click https URL, or NULL */
    int64_t date_ms;
};

/* Appends the whole message (headers, blank line, body) to out. At least
 * one of text and html should be set (else an empty text part). */
void hd_mime_build(struct evbuffer *out, const struct hd_mime_msg *m);

/* Appends "Name: value\r\n": value as is when it is printable ASCII,
 * else as RFC 2047 encoded words (Q or B, each <= 75 characters, split on
 * whole UTF-8 characters), folded so that lines stay <= 76. */
void hd_mime_header(struct evbuffer *out, const char *name, const char *value);

/* Appends s as quoted-printable (RFC 2045): lines <= 76, soft breaks,
 * CRLF hard breaks for LF or CRLF in s, trailing blanks encoded. */
void hd_mime_qp(struct evbuffer *out, const char *s, size_t len);

/* Appends src as SMTP DATA content: bare LF or CR become CRLF, a line
 * starting with '.' gets another, and the end is CRLF "." CRLF. */
void hd_mime_dot_stuff(struct evbuffer *out, const char *src, size_t len);

/* "Tue, 05 Mar 2024 14:03:27 +0000" into buf (>= 32 bytes). */
void hd_mime_date(int64_t ms, char *buf, size_t size);

#endif
