/*
 * inbox.h: the only path between threads. A mutex-guarded list plus an
 * eventfd that wakes the owner's event loop on empty -> non-empty only
 * (h2o); the owner drains it fully on each wake.
 */
#ifndef HD_INBOX_H
#define HD_INBOX_H

#include <event2/event.h>

enum hd_msg_kind {
    HD_MSG_OP = 1,    /* an owner-side operation on a shard (http -> owner) */
    HD_MSG_REPLY,     /* the answer to an op (owner -> origin) */
    HD_MSG_CONF,      /* a new configuration to adopt */
    HD_MSG_COMMITTED, /* commit thread -> reactor: a batch is durable */
    HD_MSG_STOP
};

struct hd_msg;
typedef void (*hd_msg_fn)(struct hd_msg *m, void *ctx);

/* The sender fills kind and fn; hd_inbox_send transfers the message and
 * everything it points to: the sender never touches it again. */
struct hd_msg {
    struct hd_msg *_next;
    enum hd_msg_kind kind;
    hd_msg_fn fn; /* run on the receiving thread with the inbox's ctx */
};

struct hd_inbox;

struct hd_inbox *hd_inbox_create(struct event_base *base, void *ctx);
void hd_inbox_send(struct hd_inbox *in, struct hd_msg *m);
/* Drains and runs every message now (also used at shutdown). */
int hd_inbox_drain(struct hd_inbox *in);
/* Blocks up to timeout_ms for a message, then drains (shutdown only). */
int hd_inbox_wait(struct hd_inbox *in, int timeout_ms);
void hd_inbox_destroy(struct hd_inbox *in);

#endif
