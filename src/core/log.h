/*
 * log.h: the error log (levels, nginx-style context) and the access log.
 * Both are plain O_APPEND files shared by all threads; one write() per line.
 */
#ifndef HD_LOG_H
#define HD_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum hd_log_level {
    HD_LOG_EMERG = 0,
    HD_LOG_ALERT,
    HD_LOG_CRIT,
    HD_LOG_ERR,
    HD_LOG_WARN,
    HD_LOG_NOTICE,
    HD_LOG_INFO,
    HD_LOG_DEBUG
};

/* Context printed after a message: "..., worker: 1, shard: 3, conn: 42". */
struct hd_log {
    int worker; /* -1: main thread */
    int shard;  /* -1: none */
    uint64_t conn;
    const char *action; /* "while committing batch" */
};

extern volatile int hd_log_level;

#define hd_log(level, log, err, ...)                                           \
    do {                                                                       \
        if ((level) <= hd_log_level)                                           \
            hd_log_error(level, log, err, __VA_ARGS__);                        \
    } while (0)

void hd_log_error(int level, const struct hd_log *log, int err, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
int hd_log_level_parse(const char *name);
const char *hd_log_level_name(int level);

/* Opens (or reopens, on SIGUSR1) the error log; "stderr" logs to fd 2. */
int hd_log_open(const char *path, int level);
int hd_access_log_open(const char *path); /* NULL: off */
int hd_log_reopen(void);
void hd_log_close(void);
/* One access-log line; len bytes, already formatted. */
void hd_access_log_write(const char *line, size_t len);
int hd_access_log_enabled(void);

#endif
