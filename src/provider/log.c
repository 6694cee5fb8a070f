/*
 * log.c: the built-in "log" provider: every delivery becomes one JSON line
 * appended to a file. It lets herald run, and be tested end to end, with
 * no credentials. One write() per delivery on an O_APPEND descriptor, so
 * workers never interleave lines and a line is in the page cache (safe
 * from a process crash) before the outcome is recorded.
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
log_create(struct hd_provider *p, const struct hd_provider_conf *pc,
           char *err, size_t errlen)
{
    struct log_sink *ls = hd_calloc(sizeof(*ls));
    const char *path = hd_conf_kv_find(pc, "path")->args[0];

    ls->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (ls->fd < 0) {
        snprintf(err, errlen, "provider \"%s\": cannot open \"%s\": %s",
                 pc->name, path, strerror(errno));
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
    struct log_sink *ls = p->data;
    char now[32], *line;
    json_t *rec;
    size_t len;
    ssize_t n;

    hd_time_iso(hd_now_ms(), now, sizeof(now));
    rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "time", now,
                    "delivery_id", j->delivery_id, "notification_id",
                    j->notification_id, "user_id", j->user_id, "channel",
                    hd_channel_name(j->channel), "to", j->to, "attempt",
                    j->attempt);
    json_object_update(rec, j->content);
    line = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    len = strlen(line);
    line[len] = '\n'; /* json_dumps NUL-terminates: room for one byte */
    n = write(ls->fd, line, len + 1);
    free(line);
    if (n == (ssize_t)(len + 1)) {
        j->done(j, HD_OUT_DELIVERED, 0, NULL);
        return;
    }
    hd_log(HD_LOG_ERR, &w->log, errno, "write() to \"%s\" failed", ls->path);
    j->done(j, HD_OUT_RETRY, 1000, "log sink write failed");
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
    "log", NULL, log_check, log_create, log_send, NULL, log_destroy,
};
