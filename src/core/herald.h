/*
 * herald.h: what every module includes: result codes, allocation that
 * aborts on OOM, assertions and the forward declarations of the core
 * structs. Holds no state and knows nothing of any layer above core.
 */
#ifndef HD_HERALD_H
#define HD_HERALD_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define HD_OK 0
#define HD_ERROR -1
#define HD_AGAIN -2
#define HD_DECLINED -3

#ifndef HD_VERSION
#define HD_VERSION "0.0.0"
#endif
#define HD_NAME "herald"

#define HD_MAX_WORKERS 64
#define HD_MAX_SHARDS 256

#define HD_UNUSED(x) (void)(x)
#define HD_NELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define HD_ASSERT(e)                                                           \
    do {                                                                       \
        if (!(e))                                                              \
            hd_assert_fail(#e, __FILE__, __LINE__);                            \
    } while (0)

struct hd_conf;
struct hd_worker;
struct hd_shard;
struct hd_log;

void hd_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* Small allocations abort on OOM (Redis, h2o): callers never check. Sizes
 * that come from input must be checked against a limit before this. */
void *hd_alloc(size_t n);
void *hd_calloc(size_t n);
void *hd_realloc(void *p, size_t n);
char *hd_strdup(const char *s);
char *hd_strndup(const char *s, size_t n);

/* A free list of equal blocks, for one thread: what the send path
 * allocates per push (a job, an HTTP/2 request) goes back to it, not to
 * malloc, whose coalescing of such 1-3 KiB chunks cost a tenth of a push.
 * A block of need bytes comes from the list when need <= size, else from
 * malloc; hd_fl_put takes the same need. It holds at most max blocks, and
 * gives back what a burst left: hd_fl_decay, called now and then on the
 * owner thread, frees the blocks the list held all the time since the
 * last call (its low-water mark), so a list in steady use keeps what it
 * cycles and one left full by a burst is empty two calls later.
 * hd_fl_init links a list into its thread's set for hd_fl_decay;
 * hd_fl_drain frees its blocks and unlinks it. Sanitizer builds
 * (HD_NO_FREELIST) use malloc for all, so a use after the put is still
 * caught. */
struct hd_freelist {
    void *head;
    size_t size;
    unsigned n, max;
    unsigned low;             /* fewest held since the last decay */
    struct hd_freelist *next; /* in its thread's set */
};

void hd_fl_init(struct hd_freelist *fl, size_t size, unsigned max);
void *hd_fl_get(struct hd_freelist *fl, size_t need);
void hd_fl_put(struct hd_freelist *fl, void *p, size_t need);
void hd_fl_drain(struct hd_freelist *fl);
size_t hd_fl_decay(void);

#endif
