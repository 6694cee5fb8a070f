/*
 * log.c: error and access logs. Any thread writes; lines are formatted on
 * the caller's stack and written with one write() to an O_APPEND fd, so
 * lines from different workers never interleave. The main thread opens and
 * reopens the files (SIGUSR1) by dup2() onto the same descriptor numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/herald.h"
#include "core/log.h"
#include "core/time.h"

volatile int hd_log_level = HD_LOG_NOTICE;

static int error_fd = 2, access_fd = -1;
static char *error_path, *access_path;

static const char *levels[] = {"emerg", "alert",  "crit", "error",
                               "warn",  "notice", "info", "debug"};

int
hd_log_level_parse(const char *name)
{
    for (size_t i = 0; i < HD_NELEMS(levels); i++)
        if (strcmp(name, levels[i]) == 0)
            return (int)i;
    return HD_ERROR;
}

const char *
hd_log_level_name(int level)
{
    return levels[level];
}

void
hd_log_error(int level, const struct hd_log *log, int err, const char *fmt, ...)
{
    char buf[2048], ts[32];
    size_t n;
    int r;
    va_list ap;

    hd_time_iso(hd_now_ms(), ts, sizeof(ts));
    r = snprintf(buf, sizeof(buf), "%s [%s] %d: ", ts, levels[level],
                 (int)getpid());
    n = (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    n = r < 0 ? n : n + (size_t)r;
    if (n > sizeof(buf) - 128)
        n = sizeof(buf) - 128;
    if (err)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " (%d: %s)", err,
                              strerror(err));
    if (log != NULL) {
        if (log->action)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s", log->action);
        if (log->worker >= 0)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", worker: %d",
                                  log->worker);
        if (log->shard >= 0)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", shard: %d",
                                  log->shard);
        if (log->conn)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", conn: %llu",
                                  (unsigned long long)log->conn);
    }
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    if (write(error_fd, buf, n) < 0) {
        /* nowhere left to report it */
    }
}

static int
open_onto(const char *path, int *fd)
{
    int nfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (nfd < 0)
        return HD_ERROR;
    if (*fd > 2) {
        /* keep the descriptor number so racing writers never see -1 */
        dup2(nfd, *fd);
        close(nfd);
    } else {
        *fd = nfd;
    }
    return HD_OK;
}

int
hd_log_open(const char *path, int level)
{
    if (path == NULL || strcmp(path, "stderr") == 0) {
        error_fd = 2;
        free(error_path);
        error_path = NULL;
    } else {
        if (error_path == NULL || strcmp(path, error_path) != 0) {
            int fd = -1;
            if (open_onto(path, &fd) != HD_OK)
                return HD_ERROR;
            if (error_fd > 2) {
                dup2(fd, error_fd);
                close(fd);
            } else {
                error_fd = fd;
            }
            free(error_path);
            error_path = hd_strdup(path);
        }
    }
    hd_log_level = level;
    return HD_OK;
}

int
hd_access_log_open(const char *path)
{
    if (path == NULL) {
        /* access_fd stays open but unused: workers may race a write */
        free(access_path);
        access_path = NULL;
        return HD_OK;
    }
    if (access_path != NULL && strcmp(access_path, path) == 0)
        return HD_OK;
    if (open_onto(path, &access_fd) != HD_OK)
        return HD_ERROR;
    free(access_path);
    access_path = hd_strdup(path);
    return HD_OK;
}

int
hd_access_log_enabled(void)
{
    return access_path != NULL;
}

int
hd_log_reopen(void)
{
    int rc = HD_OK;
    if (error_path != NULL && open_onto(error_path, &error_fd) != HD_OK)
        rc = HD_ERROR;
    if (access_path != NULL && open_onto(access_path, &access_fd) != HD_OK)
        rc = HD_ERROR;
    return rc;
}

void
hd_access_log_write(const char *line, size_t len)
{
    if (access_path == NULL || access_fd < 0)
        return;
    if (write(access_fd, line, len) < 0) {
        /* dropped: the error log would fill with the same complaint */
    }
}

void
hd_log_close(void)
{
    if (error_fd > 2)
        close(error_fd);
    error_fd = 2;
}
