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
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int
hd_time_parse_iso(const char *s, int64_t *ms)
{
    struct tm tm;
    int n = 0, frac_ms = 0, off = 0;
    const char *p;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2d%*[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return HD_ERROR;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31
        || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return HD_ERROR;
    p = s + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return HD_ERROR;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            return HD_ERROR;
        off = (hh * 60 + mm) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return HD_ERROR;
    }
    if (*p != '\0')
        return HD_ERROR;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = ((int64_t)timegm(&tm) - off) * 1000 + frac_ms;
    return HD_OK;
}
