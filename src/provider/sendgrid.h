/*
 * sendgrid.h: what sendgrid.c exposes besides its provider type (declared
 * in provider.h): what a Mail Send answer means, for the unit tests and
 * the fuzz target. Any thread.
 */
#ifndef HD_SENDGRID_H
#define HD_SENDGRID_H

#include <stddef.h>
#include <stdint.h>

struct hd_http1_response;

/* The outcome (enum hd_outcome) of a SendGrid answer (protocols.md 5.7):
 * *retry_after in ms (0: the backoff's; a 429 waits for
 * X-RateLimit-Reset), detail the X-Message-Id or the error. Pure but for
 * the clock. */
int hd_sendgrid_classify(const struct hd_http1_response *r,
                         int64_t *retry_after, char *detail, size_t len);

#endif
