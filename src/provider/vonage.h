/*
 * vonage.h: what vonage.c exposes besides its provider type (declared in
 * provider.h): what an answer of the SMS API means, for the unit tests
 * and the fuzz target. Any thread.
 */
#ifndef HD_VONAGE_H
#define HD_VONAGE_H

#include <stddef.h>
#include <stdint.h>

struct hd_http1_response;

/* The outcome (enum hd_outcome) of a Vonage answer: a 200 by the status
 * of every messages[] part (protocols.md 4.2), else by the HTTP status.
 * *retry_after in ms (0: the backoff's), detail the first message-id or
 * the error. Pure but for the clock (an HTTP-date Retry-After). */
int hd_vonage_classify(const struct hd_http1_response *r, int64_t *retry_after,
                       char *detail, size_t len);

#endif
