/* Line-oriented logger. Each record is formatted into one buffer and written with a
 * single write(2), so lines from several threads do not interleave. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

enum log_level log_max_level = LOG_LEVEL_INFO;

static char log_component[32] = "flinc";
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "ERROR",
        [LOG_LEVEL_WARN] = "WARN",
        [LOG_LEVEL_INFO] = "INFO",
        [LOG_LEVEL_DEBUG] = "DEBUG",
};

int log_init(const char *component, enum log_level level, const char *path) {
        if (component)
                snprintf(log_component, sizeof(log_component), "%s", component);
        log_max_level = level;
        if (!path)
                return 0;
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        log_finish();
        log_fd = fd;
        return 0;
}

void log_finish(void) {
        if (log_fd != STDERR_FILENO)
                close(log_fd);
        log_fd = STDERR_FILENO;
}

void log_set_level(enum log_level level) {
        log_max_level = level;
}

int log_parse_level(const char *s, enum log_level *ret_level) {
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (s && strcasecmp(s, level_names[i]) == 0) {
                        *ret_level = (enum log_level)i;
                        return 0;
                }
        return -EINVAL;
}

void log_write(enum log_level level, int error, const char *event, const char *fmt, ...) {
        char line[4096];
        size_t n = 0;
        int64_t wall_ms = clock_wall_ms();
        uint64_t mono_us = clock_mono_us();
        time_t secs = (time_t)(wall_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        int w = snprintf(line + n, sizeof(line) - n, ".%03dZ [%llu.%06llu] %-5s %s[%d]: ",
                         (int)(wall_ms % 1000), (unsigned long long)(mono_us / 1000000),
                         (unsigned long long)(mono_us % 1000000), level_names[level],
                         log_component, (int)getpid());
        if (w > 0)
                n += (size_t)w;
        if (event && n < sizeof(line)) {
                w = snprintf(line + n, sizeof(line) - n, "%s ", event);
                if (w > 0)
                        n += (size_t)w;
        }
        if (n < sizeof(line)) {
                va_list ap;
                va_start(ap, fmt);
                w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
                va_end(ap);
                if (w > 0)
                        n += (size_t)w;
        }
        if (error != 0 && n < sizeof(line)) {
                w = snprintf(line + n, sizeof(line) - n, ": %s", err_str(error));
                if (w > 0)
                        n += (size_t)w;
        }
        if (n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        ssize_t unused = write(log_fd, line, n);
        (void)unused;
}
