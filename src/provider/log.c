/*
 * log.c: the built-in "log" provider: every delivery becomes one JSON line
 * appended to a file. It lets herald run, and be tested end to end, with
 * no credentials. The lines of one dispatch pass go out in one write() on
 * an O_APPEND descriptor, so workers never interleave lines, and they are
 * in the page cache (safe from a process crash) before any outcome is
 * reported. Per-worker buffers; the descriptor is shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "core/herald.h"
#include "core/time.h"
#include "provider/provider.h"

struct log_sink {
    int fd;
    char *path;
};

/* one worker's pending lines and the jobs they answer */
struct log_batch {
    char *buf;
    size_t len, cap;
    struct hd_job **jobs;
    size_t njobs, cjobs;
};

static const struct hd_provider_setting settings[] = {
    {"path", 1, 1},
    {NULL, 0, 0},
};

static int
log_check(const struct hd_provider_conf *pc, char *err, size_t errlen)
{
    return hd_provider_check_settings(pc, settings, err, errlen);
}

static int
log_create(struct hd_provider *p, const struct hd_provider_conf *pc, char *err,
           size_t errlen)
{
    struct log_sink *ls = hd_calloc(sizeof(*ls));
    const struct hd_conf_kv *kv = hd_conf_kv_find(pc, "path");
    const char *path = kv->args[0];

    ls->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (ls->fd < 0) {
        snprintf(err, errlen,
                 "provider \"%s\": cannot open \"%s\": %s in %s:%d", pc->name,
                 path, strerror(errno), kv->file, kv->line);
        free(ls);
        return HD_ERROR;
    }
    ls->path = hd_strdup(path);
    p->data = ls;
    return HD_OK;
}

static void
log_send(struct hd_provider *p, struct hd_worker *w, struct hd_job *j)
{
    struct log_batch *lb = p->worker_data[w->id];
    char now[32], *line;
    json_t *rec;
    size_t len;

    if (lb == NULL)
        lb = p->worker_data[w->id] = hd_calloc(sizeof(*lb));
    hd_time_iso(hd_now_ms(), now, sizeof(now));
    rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "time", now,
                    "delivery_id", j->delivery_id, "notification_id",
                    j->notification_id, "user_id", j->user_id, "channel",
                    hd_channel_name(j->channel), "to", j->to, "attempt",
                    j->attempt);
    if (j->device_id)
        json_object_set_new(rec, "device_id", json_string(j->device_id));
    if (j->unsubscribe_token) /* what a mail provider would link to */
        json_object_set_new(rec, "unsubscribe_token",
                            json_string(j->unsubscribe_token));
    json_object_update(rec, j->content);
    line = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    len = strlen(line);
    if (lb->len + len + 1 > lb->cap) {
        lb->cap = (lb->len + len + 1) * 2;
        lb->buf = hd_realloc(lb->buf, lb->cap);
    }
    memcpy(lb->buf + lb->len, line, len);
    lb->buf[lb->len + len] = '\n';
    lb->len += len + 1;
    free(line);
    if (lb->njobs == lb->cjobs) {
        lb->cjobs = lb->cjobs ? lb->cjobs * 2 : 64;
        lb->jobs = hd_realloc(lb->jobs, lb->cjobs * sizeof(*lb->jobs));
    }
    lb->jobs[lb->njobs++] = j;
}

static void
log_flush(struct hd_provider *p, struct hd_worker *w)
{
    struct log_sink *ls = p->data;
    struct log_batch *lb = p->worker_data[w->id];
    size_t njobs, off = 0;
    int err = 0;

    if (lb == NULL || lb->njobs == 0)
        return;
    while (off < lb->len) {
        ssize_t n = write(ls->fd, lb->buf + off, lb->len - off);
        if (n <= 0) {
            err = errno;
            break;
        }
        off += (size_t)n;
    }
    if (err)
        hd_log(HD_LOG_ERR, &w->log, err, "write() to \"%s\" failed", ls->path);
    /* done() may stage more work, never more sends into this batch */
    njobs = lb->njobs;
    lb->njobs = 0;
    lb->len = 0;
    for (size_t i = 0; i < njobs; i++) {
        if (err)
            lb->jobs[i]->done(lb->jobs[i], HD_OUT_RETRY, 0,
                              "log sink write failed");
        else
            lb->jobs[i]->done(lb->jobs[i], HD_OUT_DELIVERED, 0, NULL);
    }
}

static void
log_exit_worker(struct hd_provider *p, struct hd_worker *w)
{
    struct log_batch *lb = p->worker_data[w->id];
    if (lb == NULL)
        return;
    free(lb->buf);
    free(lb->jobs);
    free(lb);
    p->worker_data[w->id] = NULL;
}

/* The new file takes the old descriptor's number, so workers writing at
 * that moment never see a closed descriptor. */
static int
log_reopen(struct hd_provider *p)
{
    struct log_sink *ls = p->data;
    int fd = open(ls->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    if (fd < 0)
        return HD_ERROR;
    dup2(fd, ls->fd);
    close(fd);
    return HD_OK;
}

static void
log_destroy(struct hd_provider *p)
{
    struct log_sink *ls = p->data;
    close(ls->fd);
    free(ls->path);
    free(ls);
}

const struct hd_provider_type hd_log_provider = {
    "log",           NULL,        log_check, log_create, log_send,
    log_exit_worker, log_destroy, log_flush, log_reopen,
};
