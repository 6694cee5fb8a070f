/*
 * inbox.c: cross-thread message queue of one event loop. Any thread sends;
 * only the loop's thread receives. The eventfd is written only when the
 * list goes from empty to non-empty, so a burst costs one wake-up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>

#include "core/herald.h"
#include "event/inbox.h"

struct hd_inbox {
    pthread_mutex_t lock;
    struct hd_msg *head, *tail;
    int fd;
    struct event *ev;
    void *ctx;
};

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct hd_inbox *in = arg;
    uint64_t v;

    /* read before draining: a send racing the drain re-arms the fd */
    if (read(in->fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
        /* the eventfd cannot fail short of a bug; drain anyway */
    }
    hd_inbox_drain(in);
}

struct hd_inbox *
hd_inbox_create(struct event_base *base, void *ctx)
{
    struct hd_inbox *in = hd_calloc(sizeof(*in));

    pthread_mutex_init(&in->lock, NULL);
    in->ctx = ctx;
    in->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->fd < 0) {
        free(in);
        return NULL;
    }
    in->ev = event_new(base, in->fd, EV_READ | EV_PERSIST, on_wake, in);
    event_add(in->ev, NULL);
    return in;
}

void
hd_inbox_send(struct hd_inbox *in, struct hd_msg *m)
{
    int wake;
    uint64_t one = 1;

    m->_next = NULL;
    pthread_mutex_lock(&in->lock);
    wake = in->head == NULL;
    if (in->tail)
        in->tail->_next = m;
    else
        in->head = m;
    in->tail = m;
    pthread_mutex_unlock(&in->lock);
    if (wake && write(in->fd, &one, sizeof(one)) < 0) {
        /* EAGAIN means the counter is already non-zero: it will wake */
    }
}

int
hd_inbox_drain(struct hd_inbox *in)
{
    struct hd_msg *m, *next;
    int n = 0;

    pthread_mutex_lock(&in->lock);
    m = in->head;
    in->head = in->tail = NULL;
    pthread_mutex_unlock(&in->lock);

    for (; m; m = next) {
        next = m->_next;
        m->fn(m, in->ctx);
        n++;
    }
    return n;
}

int
hd_inbox_wait(struct hd_inbox *in, int timeout_ms)
{
    struct pollfd pfd = {.fd = in->fd, .events = POLLIN};
    uint64_t v;

    if (poll(&pfd, 1, timeout_ms) > 0 && read(in->fd, &v, sizeof(v)) < 0) {
        /* drained below either way */
    }
    return hd_inbox_drain(in);
}

void
hd_inbox_destroy(struct hd_inbox *in)
{
    if (in == NULL)
        return;
    event_free(in->ev);
    close(in->fd);
    pthread_mutex_destroy(&in->lock);
    free(in);
}
