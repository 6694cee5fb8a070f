/*
 * t/unit/core/alloc.c: the free lists (hd_fl_*): blocks come back from
 * the list, the list keeps at most max, and hd_fl_decay gives back what
 * the list held all the time since the last decay, not what it cycles.
 * Sanitizer builds (HD_NO_FREELIST) hold nothing: there the lists must
 * stay empty and every get is a malloc.
 */
#include "core/alloc.c"

#include "tap.h"

#ifdef HD_NO_FREELIST
#define HOLDS 0
#else
#define HOLDS 1
#endif

#define N 8

static void
get_put_max(void)
{
    struct hd_freelist fl;
    void *b[N + 2];

    hd_fl_init(&fl, 256, N);
    for (int i = 0; i < N + 2; i++)
        b[i] = hd_fl_get(&fl, 100 + i);
    for (int i = 0; i < N + 2; i++)
        hd_fl_put(&fl, b[i], 100 + i);
    is_int(fl.n, HOLDS ? N : 0, "the list keeps at most max blocks");
    if (HOLDS)
        ok(hd_fl_get(&fl, 200) == b[N - 1], "a get takes the last put");
    else
        ok(fl.head == NULL, "no block is held");
    /* larger than a block: malloc, and free on the put */
    {
        char *big = hd_fl_get(&fl, 4096);
        memset(big, 'x', 4096);
        hd_fl_put(&fl, big, 4096);
        is_int(fl.n, HOLDS ? N - 1 : 0, "a larger need never enters the list");
    }
    if (HOLDS)
        hd_fl_put(&fl, b[N - 1], 200);
    hd_fl_drain(&fl);
    is_int(fl.n, 0, "drain empties the list");
    ok(thread_lists == NULL, "drain takes the list out of the thread's set");
}

static void
decay(void)
{
    struct hd_freelist a, b;
    void *blk[N];
    size_t freed;

    hd_fl_init(&a, 512, 64);
    hd_fl_init(&b, 1024, 64);
    ok(thread_lists == &b && b.next == &a, "init links both lists");

    /* a burst: N blocks out at once, then all back */
    for (int i = 0; i < N; i++)
        blk[i] = hd_fl_get(&a, 512);
    for (int i = 0; i < N; i++)
        hd_fl_put(&a, blk[i], 512);
    is_int(a.n, HOLDS ? N : 0, "the burst's blocks are held");
    /* the low-water mark went to 0 during the burst: nothing was idle */
    freed = hd_fl_decay();
    is_int((int)freed, 0, "a decay right after use frees nothing");
    is_int(a.n, HOLDS ? N : 0, "the held blocks stay");

    /* steady use: 2 out and back between decays; N - 2 never moved */
    for (int round = 0; round < 3; round++) {
        void *x = hd_fl_get(&a, 512), *y = hd_fl_get(&a, 512);
        hd_fl_put(&a, y, 512);
        hd_fl_put(&a, x, 512);
    }
    freed = hd_fl_decay();
    is_int((int)freed, HOLDS ? (N - 2) * 512 : 0,
           "a decay frees the blocks idle since the last one");
    is_int(a.n, HOLDS ? 2 : 0, "the blocks in use stay");

    /* no use at all: the rest goes at the next decay */
    freed = hd_fl_decay();
    is_int((int)freed, HOLDS ? 2 * 512 : 0, "an idle list empties");
    is_int(a.n, 0, "nothing is left");
    is_int((int)hd_fl_decay(), 0, "an empty list frees nothing");

    hd_fl_drain(&a);
    ok(thread_lists == &b && b.next == NULL, "drain unlinks the first list");
    hd_fl_drain(&b);
    ok(thread_lists == NULL, "and the second");
}

int
main(void)
{
    struct tap_case cases[] = {{"get, put, max", get_put_max},
                               {"decay", decay}};

    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
