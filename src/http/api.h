/*
 * api.h: the JSON API handlers and the call that carries a request's work
 * to the owner of its shard and the answer back.
 */
#ifndef HD_API_H
#define HD_API_H

#include <jansson.h>

#include "core/jtext.h"

#include "core/worker.h"
#include "http/http.h"
#include "store/store.h"

/* One request's work on a shard. Made on the origin (which alone touches
 * req), run on the owner (which alone touches the shard), finished back
 * on the origin. Inputs are owned by the op and freed with it. */
struct hd_api_op {
    struct hd_call call; /* first member */
    struct hd_req *req;
    json_t *in;
    void *in_block; /* or a handler's input in one block (free()) */
    char *user_id;
    char *id;
    char key_id[64];
    int status;
    json_t *out;
    /* or the answer as JSON text already (out NULL): the send path's,
     * written without a tree */
    struct hd_jbuf out_text;
    int retry_after; /* seconds; > 0 adds a Retry-After header */
};

struct hd_api_op *hd_api_op_new(struct hd_req *r, int shard, hd_call_fn exec);
/* Owner side: the store is past its high-water mark: 503 + Retry-After.
 * Returns 1 when it answered. */
int hd_api_op_busy(struct hd_api_op *op);
/* Owner side: answer now. */
void hd_api_op_finish(struct hd_api_op *op, int status, json_t *out);
/* Owner side: answer once everything staged so far is durable (a failed
 * commit turns the answer into 507 or 500). */
void hd_api_op_finish_durable(struct hd_api_op *op, int status, json_t *out);
/* The same with the answer as JSON text; takes text->p. */
void hd_api_op_finish_durable_text(struct hd_api_op *op, int status,
                                   struct hd_jbuf *text);
json_t *hd_api_error(const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* name=value from a query string, copied into buf (truncated to size);
 * NULL when absent. No percent-decoding: values are ids and numbers. */
const char *hd_api_query_arg(const char *q, const char *name, char *buf,
                             size_t size);
/* Parses r's body as a JSON object; answers 400 and returns NULL if not. */
json_t *hd_api_body(struct hd_req *r);
/* Checks r's body as JSON text whose top level opens with open ('{' or
 * '['), without building a tree; answers 400 (jansson's words for what
 * is wrong) and returns HD_ERROR if it is not. */
int hd_api_body_text(struct hd_req *r, char open);

/* A question for every shard at once: exec runs on each owner (args is
 * shared: read only) and leaves its answer in *out; finish runs on the
 * origin when all are back, with parts[shard], then everything is freed. */
struct hd_fanout;
typedef void (*hd_fanout_fn)(struct hd_fanout *f);
struct hd_fanout {
    struct hd_req *req;
    json_t *args;
    json_t **parts; /* one answer per shard */
    int pending;
    hd_fanout_fn finish;
};
void hd_api_fanout(struct hd_req *r, json_t *args,
                   void (*exec)(struct hd_shard *s, json_t *args, json_t **out),
                   hd_fanout_fn finish);

void hd_api_healthz(struct hd_req *r);
void hd_api_readyz(struct hd_req *r);
void hd_api_metrics(struct hd_req *r);
void hd_api_status_page(struct hd_req *r);
/* optional module: starts the /status sampling with the workers */
extern const struct hd_module hd_status_module;
void hd_api_user_put(struct hd_req *r);
void hd_api_user_patch(struct hd_req *r);
void hd_api_user_get(struct hd_req *r);
void hd_api_user_delete(struct hd_req *r);
void hd_api_device_post(struct hd_req *r);
void hd_api_devices_get(struct hd_req *r);
void hd_api_device_delete(struct hd_req *r);
void hd_api_prefs_put(struct hd_req *r);
void hd_api_prefs_get(struct hd_req *r);
void hd_api_send(struct hd_req *r);
void hd_api_send_batch(struct hd_req *r);
void hd_api_status(struct hd_req *r);
void hd_api_cancel(struct hd_req *r);
void hd_api_user_notifications(struct hd_req *r);
void hd_api_queues(struct hd_req *r);
void hd_api_unsubscribe(struct hd_req *r);
void hd_api_events_feed(struct hd_req *r);
void hd_api_events_post(struct hd_req *r);
void hd_api_stats(struct hd_req *r);
void hd_api_track(struct hd_req *r);
void hd_api_template_put(struct hd_req *r);
void hd_api_template_get(struct hd_req *r);
void hd_api_template_delete(struct hd_req *r);
void hd_api_templates_list(struct hd_req *r);
void hd_api_twilio_callback(struct hd_req *r);
void hd_api_dead_letters(struct hd_req *r);
void hd_api_dead_letters_retry(struct hd_req *r);
void hd_api_dead_letter_retry(struct hd_req *r);
void hd_api_dead_letter_delete(struct hd_req *r);

#endif
