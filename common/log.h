/* Logging for flinc processes: one line per record, with wall and monotonic time, level,
 * component and, for events that operators and drills grep for, a stable event name
 * such as "+leader-elected". Library code (common/, ha/, statebackend/) does not log
 * errors it returns; daemons log once, where they decide. */
#pragma once

#include <stdbool.h>

enum log_level {
        LOG_LEVEL_ERROR = 0,
        LOG_LEVEL_WARN = 1,
        LOG_LEVEL_INFO = 2,
        LOG_LEVEL_DEBUG = 3,
};

/* The highest level that is written; read by the macros below before any argument is
 * formatted. Set it through log_init() or log_set_level(). */
extern enum log_level log_max_level;

/* Starts logging for this process. component is copied ("coordinator", "worker", ...).
 * path NULL means stderr; otherwise the file is opened for append (created 0644).
 * Returns 0 or a negative errno (the file could not be opened; stderr stays in use). */
int log_init(const char *component, enum log_level level, const char *path);

/* Closes the log file, if any; later records go to stderr. */
void log_finish(void);

void log_set_level(enum log_level level);

/* Parses "error", "warn", "info", "debug" (case-insensitive). 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *ret_level);

/* Writes one record. error is 0 or a negative errno whose text is appended; event is
 * NULL or a stable event name written before the message. Use the macros. */
void log_write(enum log_level level, int error, const char *event,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_at(level, error, event, ...)                                          \
        ((void)((level) <= log_max_level ? (log_write((level), (error), (event),  \
                                                      __VA_ARGS__), 0) : 0))

/* log_error(r, "restore of chk-%" PRIu64 " failed", id): r is a negative errno or 0. */
#define log_error(r, ...) log_at(LOG_LEVEL_ERROR, (r), NULL, __VA_ARGS__)
#define log_warn(...)     log_at(LOG_LEVEL_WARN, 0, NULL, __VA_ARGS__)
#define log_info(...)     log_at(LOG_LEVEL_INFO, 0, NULL, __VA_ARGS__)
#define log_debug(...)    log_at(LOG_LEVEL_DEBUG, 0, NULL, __VA_ARGS__)

/* log_event("+leader-elected", "epoch=%" PRIu64, epoch) at info level;
 * log_event_warn("-leadership-lost", "reason=%s", why) at warn level. */
#define log_event(name, ...)      log_at(LOG_LEVEL_INFO, 0, (name), __VA_ARGS__)
#define log_event_warn(name, ...) log_at(LOG_LEVEL_WARN, 0, (name), __VA_ARGS__)
