/*
 * alloc.c: allocation wrappers that abort on OOM and the assertion
 * handler. Any thread.
 */
#include <stdio.h>

#include "core/herald.h"

static void
oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void
hd_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "herald: assertion \"%s\" failed at %s:%d\n", expr, file,
            line);
    abort();
}

void *
hd_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
hd_calloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
hd_realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

char *
hd_strndup(const char *s, size_t n)
{
    char *p = hd_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
hd_strdup(const char *s)
{
    return hd_strndup(s, strlen(s));
}

/* ==== free lists ==== */

static __thread struct hd_freelist *thread_lists; /* hd_fl_decay's set */

void
hd_fl_init(struct hd_freelist *fl, size_t size, unsigned max)
{
    *fl = (struct hd_freelist){NULL, size, 0, max, 0, thread_lists};
    thread_lists = fl;
}

void *
hd_fl_get(struct hd_freelist *fl, size_t need)
{
#ifndef HD_NO_FREELIST
    if (need <= fl->size) {
        void *p = fl->head;
        if (p == NULL)
            return hd_alloc(fl->size);
        memcpy(&fl->head, p, sizeof(void *)); /* the next, in its first bytes */
        if (--fl->n < fl->low)
            fl->low = fl->n;
        /* a block put back a thousand jobs ago is out of the cache by
         * now: the next one's first KiB (a job's or a request's part in
         * use) is asked for at once, so its misses overlap and are done
         * by the next get */
        if (fl->head != NULL) {
            size_t n = fl->size < 1024 ? fl->size : 1024;
            for (size_t o = 0; o < n; o += 64)
                __builtin_prefetch((char *)fl->head + o);
        }
        return p;
    }
#endif
    return hd_alloc(need);
}

void
hd_fl_put(struct hd_freelist *fl, void *p, size_t need)
{
#ifndef HD_NO_FREELIST
    if (p != NULL && need <= fl->size && fl->n < fl->max) {
        memcpy(p, &fl->head, sizeof(void *));
        fl->head = p;
        fl->n++;
        return;
    }
#endif
    free(p);
}

/* frees up to k blocks of fl; the bytes freed */
static size_t
fl_free(struct hd_freelist *fl, unsigned k)
{
    size_t freed = 0;

    for (; k > 0 && fl->head != NULL; k--) {
        void *p = fl->head;
        memcpy(&fl->head, p, sizeof(void *));
        free(p);
        fl->n--;
        freed += fl->size;
    }
    return freed;
}

void
hd_fl_drain(struct hd_freelist *fl)
{
    struct hd_freelist **pp;

    fl_free(fl, fl->n);
    fl->low = 0;
    for (pp = &thread_lists; *pp != NULL; pp = &(*pp)->next)
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
}

size_t
hd_fl_decay(void)
{
    size_t freed = 0;

    for (struct hd_freelist *fl = thread_lists; fl != NULL; fl = fl->next) {
        freed += fl_free(fl, fl->low);
        fl->low = fl->n;
    }
    return freed;
}
