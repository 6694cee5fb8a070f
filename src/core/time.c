/*
 * time.c: the one clock herald reads. Any thread. An optional test offset
 * (milliseconds, read from the file named by HERALD_TEST_CLOCK_FILE at most
 * every 100 ms of real time) lets tests move time forward.
 */
#include <stdio.h>
#include <time.h>

#include "core/herald.h"
#include "core/time.h"

static int64_t
real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
test_offset_us(int64_t now)
{
    static __thread int64_t checked, offset;
    static const char *path;
    static int inited;
    FILE *f;
    long long v;

    if (!inited) {
        path = getenv("HERALD_TEST_CLOCK_FILE");
        inited = 1;
    }
    if (path == NULL)
        return 0;
    if (now - checked < 100000 && checked != 0)
        return offset;
    checked = now;
    f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%lld", &v) == 1)
            offset = (int64_t)v * 1000;
        fclose(f);
    }
    return offset;
}

int64_t
hd_now_us(void)
{
    int64_t now = real_us();
    return now + test_offset_us(now);
}

int64_t
hd_now_ms(void)
{
    return hd_now_us() / 1000;
}

void
hd_time_iso(int64_t ms, char *buf, size_t size)
{
    /* every event of the send path is stamped: the second's text is
     * made once per thread and second, the milliseconds by hand */
    static __thread int64_t last_sec = -1;
    static __thread char last[80]; /* "YYYY-MM-DDTHH:MM:SS." */
    static __thread int last_len;
    int64_t sec = ms / 1000;
    int frac = (int)(ms % 1000);

    if (ms < 0 || size < 25) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, frac);
        return;
    }
    if (sec != last_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        last_len =
            snprintf(last, sizeof(last), "%04d-%02d-%02dT%02d:%02d:%02d.",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
        last_sec = sec;
    }
    if (last_len != 20) { /* past year 9999 */
        snprintf(buf, size, "%s%03dZ", last, frac);
        return;
    }
    memcpy(buf, last, 20);
    buf[20] = (char)('0' + frac / 100);
    buf[21] = (char)('0' + frac / 10 % 10);
    buf[22] = (char)('0' + frac % 10);
    buf[23] = 'Z';
    buf[24] = '\0';
}

/* Reads exactly n digits at *p. */
static int
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return HD_ERROR;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return HD_OK;
}

static int
expect(const char **p, const char *set)
{
    if (**p == '\0' || strchr(set, **p) == NULL)
        return HD_ERROR;
    (*p)++;
    return HD_OK;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
int
hd_time_parse_iso(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm;
    const char *p = s;
    int y, mo, d, h, mi, sec, frac_ms = 0, off = 0;

    if (digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) ||
        expect(&p, "-") || digits(&p, 2, &d) || expect(&p, "Tt ") ||
        digits(&p, 2, &h) || expect(&p, ":") || digits(&p, 2, &mi) ||
        expect(&p, ":") || digits(&p, 2, &sec))
        return HD_ERROR;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60)
        return HD_ERROR;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return HD_ERROR;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (n == 0)
            return HD_ERROR;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '+' ? 1 : -1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            return HD_ERROR;
        off = sign * (oh * 60 + om) * 60;
    } else {
        return HD_ERROR;
    }
    if (*p != '\0')
        return HD_ERROR;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - off) * 1000 + frac_ms;
    return HD_OK;
}
