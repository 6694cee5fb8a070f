/*
 * t/unit/core/time.c: RFC 3339 parsing (hd_time_parse_iso) and formatting
 * (hd_time_iso). 2026-11-23T07:40:00Z is 1795419600 s since the epoch.
 */
#include "core/time.c"

#include <stdio.h>

#include "tap.h"

#define T0 1795419600000LL /* 2026-11-23T07:40:00Z in ms */

/* The string is copied into a zeroed buffer so that a parser reading
 * past the terminator reads zeros instead of crashing the test. */
static int
parse(const char *s, int64_t *ms)
{
    char buf[128];

    memset(buf, 0, sizeof(buf));
    snprintf(buf, sizeof(buf), "%s", s);
    *ms = -42;
    return hd_time_parse_iso(buf, ms);
}

static void
accepts(const char *s, int64_t want)
{
    int64_t ms;
    int rc = parse(s, &ms);

    ok(rc == HD_OK && ms == want, "parses \"%s\"", s);
    if (rc != HD_OK)
        diag("  rc %d", rc);
    else if (ms != want)
        diag("  got %lld, expected %lld", (long long)ms, (long long)want);
}

static void
rejects(const char *s, const char *why)
{
    int64_t ms;

    is_int(parse(s, &ms), HD_ERROR, why);
}

static void
test_parse_valid(void)
{
    accepts("2026-11-23T07:40:00Z", T0);
    accepts("2026-11-23T07:40:00.123Z", T0 + 123);
    accepts("2026-11-23T07:40:00.1Z", T0 + 100);
    accepts("2026-11-23T07:40:00.12Z", T0 + 120);
    accepts("2026-11-23T07:40:00.123456789Z", T0 + 123);
    accepts("2026-11-23T07:40:00+02:00", T0 - 2 * 3600 * 1000LL);
    accepts("2026-11-23T07:40:00-05:30", T0 + 5 * 3600 * 1000LL + 30 * 60000);
    accepts("2026-11-23T07:40:00.250+02:00", T0 - 2 * 3600 * 1000LL + 250);
    accepts("2026-11-23T07:40:00+00:00", T0);
    accepts("2026-11-23T07:40:00-00:00", T0);
    accepts("2026-11-23t07:40:00z", T0);
    accepts("2026-11-23 07:40:00Z", T0); /* RFC 3339 section 5.6 note */
    accepts("1970-01-01T00:00:00Z", 0);
    accepts("2000-02-29T23:59:59Z", 951868799000LL);
}

static void
test_parse_invalid(void)
{
    rejects("2026-13-23T07:40:00Z", "month 13 rejected");
    rejects("2026-00-23T07:40:00Z", "month 0 rejected");
    rejects("2026-11-32T07:40:00Z", "day 32 rejected");
    rejects("2026-11-00T07:40:00Z", "day 0 rejected");
    rejects("2026-11-23T24:00:00Z", "hour 24 rejected");
    rejects("2026-11-23T07:60:00Z", "minute 60 rejected");
    rejects("2026-11-23T07:40:61Z", "second 61 rejected");
    rejects("2026-11-23T07:40:00", "missing zone rejected");
    rejects("2026-11-23T07:40:00Zjunk", "junk after Z rejected");
    rejects("2026-11-23T07:40:00+02:00junk", "junk after offset rejected");
    rejects("2026-11-23T07:40:00 Z", "space before Z rejected");
    rejects("2026-11-23T07:40:00.Z", "fraction without digits rejected");
    rejects("2026-11-23T07:40:00+0200", "offset without colon rejected");
    rejects("2026-11-23T07:40:00+24:00", "offset hour 24 rejected");
    rejects("2026-11-23T07:40:00+02:60", "offset minute 60 rejected");
    rejects("2026-11-23T07:40:00+02", "offset without minutes rejected");
    rejects("2026-11-23X07:40:00Z", "separator other than T/t/space rejected");
    rejects("2026-11-23", "date only rejected");
    rejects("", "empty string rejected");
    rejects("yesterday", "words rejected");
    rejects("2026-11-23T07:40Z", "missing seconds rejected");

    /* Known bugs, see the report: the fields are read with sscanf "%2d",
     * which accepts one digit, and the offset is then skipped as if it
     * were six characters. */
    todo_start("src/core/time.c: one-digit offset fields are accepted and "
               "the parser steps past the NUL");
    rejects("2026-11-23T07:40:00+2:00", "one-digit offset hour rejected");
    rejects("2026-11-23T07:40:00-05:3", "one-digit offset minute rejected");
    todo_end();
    todo_start("src/core/time.c: day is checked against 31, not the month");
    rejects("2026-02-31T00:00:00Z", "February 31 rejected");
    rejects("2026-04-31T00:00:00Z", "April 31 rejected");
    todo_end();
    todo_start("src/core/time.c: sscanf %2d accepts one-digit fields");
    rejects("2026-1-5T7:4:0Z", "one-digit date/time fields rejected");
    todo_end();
}

static void
test_format(void)
{
    char buf[32];
    int64_t ms;
    int bad = 0;

    hd_time_iso(T0 + 123, buf, sizeof(buf));
    is_str(buf, "2026-11-23T07:40:00.123Z", "formats with milliseconds");
    is_int(strlen(buf), 24, "24 characters");
    hd_time_iso(T0, buf, sizeof(buf));
    is_str(buf, "2026-11-23T07:40:00.000Z", "whole second gets .000");
    hd_time_iso(0, buf, sizeof(buf));
    is_str(buf, "1970-01-01T00:00:00.000Z", "the epoch");
    hd_time_iso(951868799999LL, buf, sizeof(buf));
    is_str(buf, "2000-02-29T23:59:59.999Z", "leap day, .999");

    /* the second's text is kept between calls: change second and back */
    hd_time_iso(T0 + 1999, buf, sizeof(buf));
    is_str(buf, "2026-11-23T07:40:01.999Z", "next second");
    hd_time_iso(T0 + 5, buf, sizeof(buf));
    is_str(buf, "2026-11-23T07:40:00.005Z", "and back");
    hd_time_iso(T0 + 42, buf, sizeof(buf));
    is_str(buf, "2026-11-23T07:40:00.042Z", "same second again");

    hd_time_iso(T0 + 7, buf, 11);
    is_str(buf, "2026-11-23", "truncates to the buffer size");

    for (int64_t t = 0; t < 4102444800000LL; t += 7777777777LL + 13) {
        hd_time_iso(t, buf, sizeof(buf));
        if (hd_time_parse_iso(buf, &ms) != HD_OK || ms != t) {
            if (bad++ == 0)
                diag("round trip of %lld: \"%s\"", (long long)t, buf);
        }
    }
    is_int(bad, 0, "hd_time_iso -> hd_time_parse_iso round trip, 1970..2100");
}

static void
test_clock(void)
{
    int64_t a = hd_now_ms(), us = hd_now_us(), b = hd_now_ms();

    ok(a > T0 - 10LL * 365 * 86400 * 1000, "hd_now_ms is a wall clock");
    ok(b >= a, "hd_now_ms does not go back between two calls");
    ok(us / 1000 >= a && us / 1000 <= b, "hd_now_us agrees with hd_now_ms");
}

static const struct tap_case cases[] = {
    {"parse valid", test_parse_valid},
    {"parse invalid", test_parse_invalid},
    {"format and round trip", test_format},
    {"clock", test_clock},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
