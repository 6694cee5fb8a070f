/*
 * time.h: wall clock in milliseconds and RFC 3339 formatting. The clock can
 * be offset for tests (HERALD_TEST_CLOCK_FILE) so refills and schedules can
 * be tested without sleeping.
 */
#ifndef HD_TIME_H
#define HD_TIME_H

#include <stdint.h>
#include <stddef.h>

int64_t hd_now_ms(void);
int64_t hd_now_us(void);
/* writes "2026-11-23T07:40:00.123Z" (24 chars + NUL) into buf[32] */
void hd_time_iso(int64_t ms, char *buf, size_t size);
/* parses RFC 3339; returns HD_OK and *ms, or HD_ERROR */
int hd_time_parse_iso(const char *s, int64_t *ms);

#endif
