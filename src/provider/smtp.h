/*
 * smtp.h: what smtp.c exposes besides its provider type (declared in
 * provider.h): the reading of the relay's replies (RFC 5321 4.2), for the
 * unit tests and the fuzz target. Pure, any thread.
 */
#ifndef HD_SMTP_H
#define HD_SMTP_H

#include <stddef.h>
#include <stdint.h>

/* One reply line of n bytes (CRLF cut): "ddd", "ddd text" (the last line
 * of the reply) or "ddd-text" (more follow), d a digit and the first
 * 2..5. HD_OK with *code and *last, or HD_ERROR. */
int hd_smtp_reply_line(const char *line, size_t n, int *code, int *last);

/* What an EHLO reply offers: text is its lines' text, newline-separated
 * (the first, the greeting, is skipped); it is cut up (strtok_r). */
struct hd_smtp_ehlo {
    int pipelining, starttls, auth_plain, auth_login;
    int has_size;
    int64_t size_max; /* SIZE's argument; 0: no fixed limit */
};
void hd_smtp_ehlo(char *text, struct hd_smtp_ehlo *e);

#endif
