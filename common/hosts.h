/* conf/masters and conf/workers: which hosts run coordinators (with their REST port)
 * and workers, read by the start/stop scripts and the CLI. Also the host and host:port
 * checks that the config module uses for its address keys and the ZooKeeper quorum.
 *
 * conf/masters: one `host:webport` per line; `host` alone means port 8081 (as in
 * Flink); an IPv6 address is written in brackets, `[::1]:8081`. conf/workers: one host
 * per line, no port; Flink's old name conf/slaves is read when conf/workers is missing.
 * In both, `#` starts a comment (a whole line or the rest of one), blank lines and
 * surrounding whitespace are fine. Errors name the file and line. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOSTS_MAX_ENTRIES       1024
#define HOSTS_MAX_FILE_BYTES    (1024 * 1024)
#define HOSTS_DEFAULT_WEB_PORT  8081

struct hosts_entry {
        char host[256]; /* name or address, IPv6 without brackets, NUL-terminated */
        uint16_t port;  /* 1..65535 in masters; 0 in workers */
};

/* Whether host is a plausible host name (labels of letters, digits, '-', '_' joined by
 * '.', at most 255 bytes), an IPv4 address or an IPv6 address (no brackets; a %zone is
 * allowed). Nothing is resolved. */
bool hosts_name_valid(const char *host);

/* Parses "host", "host:port", "[v6]" or "[v6]:port" (no surrounding whitespace
 * expected). default_port is used when the port is missing; 0 makes the port required.
 * Ports are 1..65535. 0 or -EINVAL with a reason in why (no location; the caller adds
 * it); *ret untouched on error. */
int hosts_parse_hostport(const char *s, uint16_t default_port, struct hosts_entry *ret,
                         char *why, size_t why_len);

/* Reads conf/masters. On success *ret is a malloc'ed array of *ret_n entries (NULL when
 * the file lists none) that the caller frees with free(). Errors: what fs_read_all
 * returns (-ENOENT, -EFBIG past HOSTS_MAX_FILE_BYTES, ...) or -EINVAL for a bad line,
 * a repeated host:port or more than HOSTS_MAX_ENTRIES hosts; err says which file and
 * line. ret_* untouched on error. */
int hosts_parse_masters(const char *path, struct hosts_entry **ret, size_t *ret_n,
                        char *err, size_t err_len);

/* The same for text of len bytes; name stands for the file in messages. */
int hosts_parse_masters_string(const char *name, const char *text, size_t len,
                               struct hosts_entry **ret, size_t *ret_n, char *err,
                               size_t err_len);

/* Reads conf/workers (or conf/slaves): like hosts_parse_masters, port 0 in every entry.
 * A host may be listed more than once (one worker process per line, as in Flink). */
int hosts_parse_workers(const char *path, struct hosts_entry **ret, size_t *ret_n,
                        char *err, size_t err_len);
int hosts_parse_workers_string(const char *name, const char *text, size_t len,
                               struct hosts_entry **ret, size_t *ret_n, char *err,
                               size_t err_len);

/* Writes the workers file to read into buf: <confdir>/workers when it exists (returns
 * 0), else <confdir>/slaves when that exists (returns 1, so the caller can warn that it
 * read Flink's old name). -ENOENT when neither exists, -ENAMETOOLONG when buf is too
 * small; buf untouched on error. */
int hosts_workers_path(const char *confdir, char *buf, size_t len);
