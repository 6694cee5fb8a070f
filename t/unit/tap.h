/*
 * tap.h: a tiny TAP producer for the C unit tests (t/unit/<layer>/<module>.c).
 * Header-only; every helper is static and marked unused so a test may use
 * any subset. Output goes to stdout, flushed per line, so it interleaves
 * sanely with the error log on stderr.
 *
 *   plan(n)              "1..n" up front (optional: done_testing() prints
 *                        the plan at the end when none was given)
 *   ok(cond, fmt, ...)   "ok N - desc" / "not ok N - desc"
 *   is_int(got, want, desc), is_u64(...), is_str(got, want, desc)
 *   diag(fmt, ...)       "# ..." comment lines
 *   todo_start(why) .. todo_end()   marks known src/ bugs ("# TODO why")
 *   tap_run(cases, n)    runs a memcached-style table of test functions
 *   return done_testing();   exit status 0 only if all passed
 */
#ifndef HD_TAP_H
#define HD_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TAP_UNUSED __attribute__((unused))

static struct {
    int planned; /* -1: no plan yet */
    int run, failed;
    const char *todo;
} tap_state TAP_UNUSED = {-1, 0, 0, NULL};

struct tap_case {
    const char *name;
    void (*fn)(void);
};

static TAP_UNUSED void
plan(int n)
{
    tap_state.planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static TAP_UNUSED __attribute__((format(printf, 1, 2))) void
diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static TAP_UNUSED void
todo_start(const char *why)
{
    tap_state.todo = why;
}

static TAP_UNUSED void
todo_end(void)
{
    tap_state.todo = NULL;
}

static TAP_UNUSED __attribute__((format(printf, 4, 5))) int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    tap_state.run++;
    printf("%sok %d - ", pass ? "" : "not ", tap_state.run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (tap_state.todo)
        printf(" # TODO %s", tap_state.todo);
    printf("\n");
    if (!pass) {
        printf("#   Failed %stest at %s line %d.\n",
               tap_state.todo ? "(TODO) " : "", file, line);
        if (tap_state.todo == NULL)
            tap_state.failed++;
    }
    fflush(stdout);
    return pass;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static TAP_UNUSED int
tap_is_int(long long got, long long want, const char *file, int line,
           const char *desc)
{
    int pass = tap_ok(got == want, file, line, "%s", desc);
    if (!pass)
        diag("       got: %lld\n#  expected: %lld", got, want);
    return pass;
}

static TAP_UNUSED int
tap_is_u64(uint64_t got, uint64_t want, const char *file, int line,
           const char *desc)
{
    int pass = tap_ok(got == want, file, line, "%s", desc);
    if (!pass)
        diag("       got: 0x%016" PRIx64 "\n#  expected: 0x%016" PRIx64, got,
             want);
    return pass;
}

static TAP_UNUSED int
tap_is_str(const char *got, const char *want, const char *file, int line,
           const char *desc)
{
    int pass = (got == NULL && want == NULL) ||
               (got != NULL && want != NULL && strcmp(got, want) == 0);

    tap_ok(pass, file, line, "%s", desc);
    if (!pass)
        diag("       got: %s%s%s\n#  expected: %s%s%s", got ? "\"" : "",
             got ? got : "NULL", got ? "\"" : "", want ? "\"" : "",
             want ? want : "NULL", want ? "\"" : "");
    return pass;
}

#define is_int(got, want, desc)                                                \
    tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, desc)
#define is_u64(got, want, desc)                                                \
    tap_is_u64((uint64_t)(got), (uint64_t)(want), __FILE__, __LINE__, desc)
#define is_str(got, want, desc) tap_is_str(got, want, __FILE__, __LINE__, desc)

static TAP_UNUSED void
tap_run(const struct tap_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        diag("%s", cases[i].name);
        cases[i].fn();
    }
}

/* Prints the plan when none was given; the exit status for main(). */
static TAP_UNUSED int
done_testing(void)
{
    if (tap_state.planned < 0) {
        printf("1..%d\n", tap_state.run);
    } else if (tap_state.planned != tap_state.run) {
        diag("planned %d tests but ran %d", tap_state.planned, tap_state.run);
        fflush(stdout);
        return 1;
    }
    if (tap_state.failed)
        diag("failed %d of %d tests", tap_state.failed, tap_state.run);
    fflush(stdout);
    return tap_state.failed ? 1 : 0;
}

#endif
