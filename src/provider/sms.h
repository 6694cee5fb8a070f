/*
 * sms.h: what the SMS providers share: GSM-7 / UCS-2 segment counting
 * (3GPP TS 23.038 alphabet, concatenated SMS headers), E.164 checks and
 * form encoding. Pure functions, any thread; ingest may call
 * hd_sms_segments to refuse bodies over a provider's max_segments.
 */
#ifndef HD_SMS_H
#define HD_SMS_H

#include <stddef.h>
#include <event2/buffer.h>

enum hd_sms_encoding { HD_SMS_GSM7 = 0, HD_SMS_UCS2 };

/* The number of SMS segments body (UTF-8) takes: GSM-7 when every
 * character is in the GSM 03.38 basic or extension table (160 septets in
 * one segment, 153 per part beyond; extension characters take 2 and are
 * never split), else UCS-2 (70 UTF-16 units, 67 per part; surrogate pairs
 * never split). An empty body is 1 segment. -1 on invalid UTF-8. */
int hd_sms_segments(const char *body, int *encoding);
const char *hd_sms_encoding_name(int encoding); /* "gsm7", "ucs2" */

/* ^\+[1-9][0-9]{1,14}$ (syntax only) */
int hd_sms_e164_valid(const char *number);

/* Appends "name=value" (with a leading '&' unless buf is empty), both
 * application/x-www-form-urlencoded. */
void hd_form_add(struct evbuffer *buf, const char *name, const char *value);

#endif
