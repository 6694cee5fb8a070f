/*
 * t/unit/event/inbox.c: the cross-thread queue. Four threads send 10000
 * messages each into one inbox while the owner runs its event loop; every
 * message must arrive exactly once, in each sender's order, on the owner
 * thread, with the inbox's ctx.
 */
#include "event/inbox.c"

#include <sched.h>

#include <event2/event.h>

#include "core/time.h"
#include "tap.h"

#define NSENDERS 4
#define PER_SENDER 10000
#define TOTAL (NSENDERS * PER_SENDER)

struct test_msg {
    struct hd_msg msg; /* first: the inbox hands back this pointer */
    int sender;
    int n; /* 0, 1, 2 ... per sender */
};

struct receiver {
    pthread_t owner;
    int received;
    int seen[NSENDERS][PER_SENDER];
    int next[NSENDERS]; /* the n expected next from each sender */
    int out_of_order, bad_ctx, wrong_thread, bad_kind;
};

struct sender {
    pthread_t thread;
    int id;
    struct hd_inbox *in;
};

static void
on_test_msg(struct hd_msg *m, void *ctx)
{
    struct receiver *r = ctx;
    struct test_msg *t = (struct test_msg *)m;

    if (r == NULL) {
        free(t);
        return;
    }
    if (!pthread_equal(pthread_self(), r->owner))
        r->wrong_thread++;
    if (m->kind != HD_MSG_OP)
        r->bad_kind++;
    if (t->sender < 0 || t->sender >= NSENDERS || t->n < 0 ||
        t->n >= PER_SENDER) {
        r->bad_ctx++;
    } else {
        r->seen[t->sender][t->n]++;
        if (t->n != r->next[t->sender])
            r->out_of_order++;
        r->next[t->sender] = t->n + 1;
    }
    r->received++;
    free(t); /* the receiver owns what it was sent */
}

static void *
send_all(void *arg)
{
    struct sender *snd = arg;

    for (int i = 0; i < PER_SENDER; i++) {
        struct test_msg *t = hd_alloc(sizeof(*t));
        t->msg.kind = HD_MSG_OP;
        t->msg.fn = on_test_msg;
        t->sender = snd->id;
        t->n = i;
        hd_inbox_send(snd->in, &t->msg);
        if (i % 1000 == 0)
            sched_yield(); /* let the owner drain mid-stream sometimes */
    }
    return NULL;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    /* only there so EVLOOP_ONCE returns even if a wake-up is lost */
}

static void
test_empty(void)
{
    struct event_base *base = event_base_new();
    struct hd_inbox *in = hd_inbox_create(base, NULL);
    int64_t t0;

    ok(in != NULL, "hd_inbox_create");
    is_int(hd_inbox_drain(in), 0, "drain of an empty inbox returns 0");
    t0 = hd_now_ms();
    is_int(hd_inbox_wait(in, 50), 0, "wait on an empty inbox returns 0");
    ok(hd_now_ms() - t0 >= 40, "wait on an empty inbox waits ~timeout");
    hd_inbox_destroy(in);
    hd_inbox_destroy(NULL);
    ok(1, "hd_inbox_destroy(NULL) is a no-op");
    event_base_free(base);
}

static void
test_same_thread(void)
{
    struct event_base *base = event_base_new();
    struct receiver *r = hd_calloc(sizeof(*r));
    struct hd_inbox *in;
    struct test_msg *t;

    r->owner = pthread_self();
    in = hd_inbox_create(base, r);
    for (int i = 0; i < 3; i++) {
        t = hd_alloc(sizeof(*t));
        t->msg.kind = HD_MSG_OP;
        t->msg.fn = on_test_msg;
        t->sender = 0;
        t->n = i;
        hd_inbox_send(in, &t->msg);
    }
    is_int(r->received, 0, "send does not run the message");
    is_int(event_base_loop(base, EVLOOP_NONBLOCK), 0, "loop pass");
    is_int(r->received, 3, "one wake-up drains all three messages");
    is_int(r->out_of_order, 0, "in order");
    is_int(hd_inbox_drain(in), 0, "nothing left to drain");
    hd_inbox_destroy(in);
    event_base_free(base);
    free(r);
}

static void
test_four_senders(void)
{
    struct event_base *base = event_base_new();
    struct receiver *r = hd_calloc(sizeof(*r));
    struct sender snd[NSENDERS];
    struct timeval tick = {0, 100 * 1000};
    struct event *timer;
    struct hd_inbox *in;
    int64_t deadline;
    int missing = 0, dup = 0, started = 0;

    r->owner = pthread_self();
    in = hd_inbox_create(base, r);
    timer = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(timer, &tick);

    for (int i = 0; i < NSENDERS; i++) {
        snd[i].id = i;
        snd[i].in = in;
        if (pthread_create(&snd[i].thread, NULL, send_all, &snd[i]) == 0)
            started++;
    }
    is_int(started, NSENDERS, "4 sender threads started");

    deadline = hd_now_ms() + 30000;
    while (r->received < TOTAL && hd_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);

    for (int i = 0; i < started; i++)
        pthread_join(snd[i].thread, NULL);
    /* anything still queued would be a lost wake-up: count it as a failure
     * below, but drain it so nothing leaks */
    is_int(r->received, TOTAL, "all 40000 messages received by the loop");
    hd_inbox_drain(in);

    for (int s = 0; s < NSENDERS; s++)
        for (int n = 0; n < PER_SENDER; n++) {
            if (r->seen[s][n] == 0)
                missing++;
            else if (r->seen[s][n] > 1)
                dup++;
        }
    is_int(missing, 0, "no message lost");
    is_int(dup, 0, "no message delivered twice");
    is_int(r->out_of_order, 0, "per-sender order kept");
    is_int(r->wrong_thread, 0, "every message ran on the owner thread");
    is_int(r->bad_ctx, 0, "every message intact, ctx is the inbox's");
    is_int(r->bad_kind, 0, "kind preserved");

    event_free(timer);
    hd_inbox_destroy(in);
    event_base_free(base);
    free(r);
}

static const struct tap_case cases[] = {
    {"empty inbox", test_empty},
    {"same-thread send", test_same_thread},
    {"4 threads x 10000 messages", test_four_senders},
};

int
main(void)
{
    tap_run(cases, HD_NELEMS(cases));
    return done_testing();
}
