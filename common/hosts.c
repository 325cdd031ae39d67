/* Parsers for conf/masters and conf/workers, and the host / host:port checks shared
 * with the config module. Line-based, one entry per line, '#' comments. */
#include "common/hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fsutil.h"

static bool is_label_char(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
               (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

static bool ipv6_valid(const char *host) {
        char addr[64];
        const char *zone = strchr(host, '%');
        size_t alen = zone ? (size_t)(zone - host) : strlen(host);
        if (alen == 0 || alen >= sizeof(addr))
                return false;
        memcpy(addr, host, alen);
        addr[alen] = '\0';
        if (zone) {
                const char *z = zone + 1;
                if (*z == '\0' || strlen(z) > 64)
                        return false;
                for (; *z; z++)
                        if (!is_label_char(*z) && *z != '.')
                                return false;
        }
        struct in6_addr a6;
        return inet_pton(AF_INET6, addr, &a6) == 1;
}

bool hosts_name_valid(const char *host) {
        size_t len = strlen(host);
        if (len == 0 || len > 255)
                return false;
        if (strchr(host, ':'))
                return ipv6_valid(host);
        size_t label = 0;
        for (size_t i = 0; i <= len; i++) {
                char ch = host[i];
                if (ch == '.' || ch == '\0') {
                        if (label == 0 || label > 63 || host[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!is_label_char(ch) || (label == 0 && ch == '-'))
                        return false;
                label++;
        }
        return true;
}

/* Reads a port from s: digits only, 1..65535. Distinguishes a bad port from digits
 * followed by junk for the message. */
static int parse_port(const char *s, uint16_t *ret_port, char *why, size_t why_len) {
        size_t digits = strspn(s, "0123456789");
        if (digits == 0) {
                snprintf(why, why_len, "bad port '%.16s' (expected 1..65535)", s);
                return -EINVAL;
        }
        if (s[digits] != '\0') {
                snprintf(why, why_len, "junk after port: '%.32s'", s + digits);
                return -EINVAL;
        }
        unsigned long v = digits <= 5 ? strtoul(s, NULL, 10) : 0;
        if (v < 1 || v > 65535) {
                snprintf(why, why_len, "bad port '%.16s' (expected 1..65535)", s);
                return -EINVAL;
        }
        *ret_port = (uint16_t)v;
        return 0;
}

static int check_host(const char *host, size_t len, char *why, size_t why_len) {
        if (len == 0) {
                snprintf(why, why_len, "empty host");
                return -EINVAL;
        }
        if (len > 255) {
                snprintf(why, why_len, "host name longer than 255 bytes");
                return -EINVAL;
        }
        for (size_t i = 0; i < len; i++) {
                if (host[i] == ' ' || host[i] == '\t') {
                        snprintf(why, why_len, "junk after host '%.*s': '%.32s'", (int)i,
                                 host, host + i);
                        return -EINVAL;
                }
        }
        char tmp[256];
        memcpy(tmp, host, len);
        tmp[len] = '\0';
        if (!hosts_name_valid(tmp)) {
                snprintf(why, why_len, "'%.64s' is not a host name or IP address", tmp);
                return -EINVAL;
        }
        return 0;
}

int hosts_parse_hostport(const char *s, uint16_t default_port, struct hosts_entry *ret,
                         char *why, size_t why_len) {
        const char *host = s, *rest;
        size_t hlen;

        /* "host:port junk": judge the part before the blank, then name the junk. */
        size_t token = strcspn(s, " \t");
        if (s[token] != '\0') {
                char head[300];
                struct hosts_entry e;
                if (token >= sizeof(head)) {
                        snprintf(why, why_len, "host name longer than 255 bytes");
                        return -EINVAL;
                }
                memcpy(head, s, token);
                head[token] = '\0';
                int r = hosts_parse_hostport(head, default_port ? default_port : 1, &e, why,
                                             why_len);
                if (r < 0)
                        return r;
                bool has_port = head[0] == '[' ? strstr(head, "]:") != NULL
                                               : strchr(head, ':') != NULL;
                if (has_port)
                        snprintf(why, why_len, "junk after port: '%.32s'", s + token);
                else
                        snprintf(why, why_len, "junk after host '%.64s': '%.32s'", head,
                                 s + token);
                return -EINVAL;
        }
        if (*s == '[') {
                const char *close = strchr(s, ']');
                if (!close) {
                        snprintf(why, why_len, "unterminated '[' in '%.64s'", s);
                        return -EINVAL;
                }
                host = s + 1;
                hlen = (size_t)(close - host);
                rest = close + 1;
                if (*rest != '\0' && *rest != ':') {
                        snprintf(why, why_len, "junk after ']': '%.32s' (expected :port)", rest);
                        return -EINVAL;
                }
                char tmp[256];
                if (hlen == 0 || hlen >= sizeof(tmp)) {
                        snprintf(why, why_len, hlen ? "host name longer than 255 bytes"
                                                    : "empty host");
                        return -EINVAL;
                }
                memcpy(tmp, host, hlen);
                tmp[hlen] = '\0';
                if (!ipv6_valid(tmp)) {
                        snprintf(why, why_len, "'[%.64s]' is not an IPv6 address", tmp);
                        return -EINVAL;
                }
        } else {
                const char *colon = strchr(s, ':');
                if (colon && strchr(colon + 1, ':')) {
                        snprintf(why, why_len,
                                 "'%.64s': write an IPv6 address in brackets, like [::1]:8081",
                                 s);
                        return -EINVAL;
                }
                hlen = colon ? (size_t)(colon - s) : strlen(s);
                rest = s + hlen;
                int r = check_host(host, hlen, why, why_len);
                if (r < 0)
                        return r;
        }

        uint16_t port = default_port;
        if (*rest == ':') {
                int r = parse_port(rest + 1, &port, why, why_len);
                if (r < 0)
                        return r;
        } else if (default_port == 0) {
                snprintf(why, why_len, "'%.64s' has no port (expected host:port)", s);
                return -EINVAL;
        }
        memcpy(ret->host, host, hlen);
        ret->host[hlen] = '\0';
        ret->port = port;
        return 0;
}

/* A worker line is a host alone: a name, an IPv4 address, or an IPv6 address with or
 * without brackets. */
static int parse_worker(const char *s, struct hosts_entry *ret, char *why, size_t why_len) {
        if (*s == '[') {
                struct hosts_entry e;
                int r = hosts_parse_hostport(s, 1, &e, why, why_len);
                if (r < 0)
                        return r;
                if (strchr(strchr(s, ']'), ':')) {
                        snprintf(why, why_len,
                                 "'%.64s': conf/workers lists hosts without ports (worker ports "
                                 "come from taskmanager.rpc.port and taskmanager.data.port)", s);
                        return -EINVAL;
                }
                snprintf(ret->host, sizeof(ret->host), "%s", e.host);
                ret->port = 0;
                return 0;
        }
        if (strchr(s, ':') && !strpbrk(s, " \t")) {
                if (ipv6_valid(s)) {
                        snprintf(ret->host, sizeof(ret->host), "%s", s);
                        ret->port = 0;
                        return 0;
                }
                snprintf(why, why_len,
                         "'%.64s': conf/workers lists hosts without ports (worker ports come "
                         "from taskmanager.rpc.port and taskmanager.data.port)", s);
                return -EINVAL;
        }
        int r = check_host(s, strlen(s), why, why_len);
        if (r < 0)
                return r;
        snprintf(ret->host, sizeof(ret->host), "%s", s);
        ret->port = 0;
        return 0;
}

static bool is_space(char ch) {
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int parse_lines(const char *name, const char *text, size_t len, bool masters,
                       struct hosts_entry **ret, size_t *ret_n, char *err, size_t err_len) {
        struct hosts_entry *entries = NULL;
        unsigned *lines = NULL;
        size_t n = 0, cap = 0;
        char *line = NULL;
        int r;

        if (len > HOSTS_MAX_FILE_BYTES) {
                snprintf(err, err_len, "%s: larger than %d bytes", name, HOSTS_MAX_FILE_BYTES);
                return -EFBIG;
        }
        line = malloc(len + 1);
        if (!line) {
                r = -ENOMEM;
                snprintf(err, err_len, "%s: out of memory", name);
                goto fail;
        }

        unsigned lineno = 0;
        size_t pos = 0;
        while (pos < len) {
                const char *start = text + pos;
                const char *nl = memchr(start, '\n', len - pos);
                size_t llen = nl ? (size_t)(nl - start) : len - pos;
                pos += llen + (nl ? 1 : 0);
                lineno++;

                memcpy(line, start, llen);
                line[llen] = '\0';
                if (strlen(line) != llen) {
                        snprintf(err, err_len, "%s:%u: NUL byte in line", name, lineno);
                        r = -EINVAL;
                        goto fail;
                }
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *s = line;
                while (is_space(*s))
                        s++;
                char *end = s + strlen(s);
                while (end > s && is_space(end[-1]))
                        *--end = '\0';
                if (*s == '\0')
                        continue;

                if (n == HOSTS_MAX_ENTRIES) {
                        snprintf(err, err_len, "%s:%u: too many hosts (limit %d)", name,
                                 lineno, HOSTS_MAX_ENTRIES);
                        r = -EINVAL;
                        goto fail;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        struct hosts_entry *ne = realloc(entries, ncap * sizeof(*ne));
                        if (!ne) {
                                r = -ENOMEM;
                                snprintf(err, err_len, "%s: out of memory", name);
                                goto fail;
                        }
                        entries = ne;
                        unsigned *nlines = realloc(lines, ncap * sizeof(*nlines));
                        if (!nlines) {
                                r = -ENOMEM;
                                snprintf(err, err_len, "%s: out of memory", name);
                                goto fail;
                        }
                        lines = nlines;
                        cap = ncap;
                }

                char why[256];
                r = masters ? hosts_parse_hostport(s, HOSTS_DEFAULT_WEB_PORT, &entries[n], why,
                                                   sizeof(why))
                            : parse_worker(s, &entries[n], why, sizeof(why));
                if (r < 0) {
                        snprintf(err, err_len, "%s:%u: %s", name, lineno, why);
                        goto fail;
                }
                if (masters) {
                        for (size_t i = 0; i < n; i++) {
                                if (entries[i].port == entries[n].port &&
                                    strcmp(entries[i].host, entries[n].host) == 0) {
                                        snprintf(err, err_len,
                                                 "%s:%u: '%.64s' is listed again (first at line %u)",
                                                 name, lineno, s, lines[i]);
                                        r = -EINVAL;
                                        goto fail;
                                }
                        }
                }
                lines[n] = lineno;
                n++;
        }

        free(line);
        free(lines);
        if (n == 0) {
                free(entries);
                entries = NULL;
        }
        *ret = entries;
        *ret_n = n;
        return 0;

fail:
        free(line);
        free(lines);
        free(entries);
        return r;
}

static int parse_file(const char *path, bool masters, struct hosts_entry **ret,
                      size_t *ret_n, char *err, size_t err_len) {
        char *data = NULL;
        size_t len = 0;
        int r = fs_read_all(path, HOSTS_MAX_FILE_BYTES, &data, &len);
        if (r == -EFBIG) {
                snprintf(err, err_len, "%s: larger than %d bytes", path, HOSTS_MAX_FILE_BYTES);
                return r;
        }
        if (r < 0) {
                snprintf(err, err_len, "%s: cannot read: %s", path, strerror(-r));
                return r;
        }
        r = parse_lines(path, data, len, masters, ret, ret_n, err, err_len);
        free(data);
        return r;
}

int hosts_parse_masters(const char *path, struct hosts_entry **ret, size_t *ret_n,
                        char *err, size_t err_len) {
        return parse_file(path, true, ret, ret_n, err, err_len);
}

int hosts_parse_masters_string(const char *name, const char *text, size_t len,
                               struct hosts_entry **ret, size_t *ret_n, char *err,
                               size_t err_len) {
        return parse_lines(name, text, len, true, ret, ret_n, err, err_len);
}

int hosts_parse_workers(const char *path, struct hosts_entry **ret, size_t *ret_n,
                        char *err, size_t err_len) {
        return parse_file(path, false, ret, ret_n, err, err_len);
}

int hosts_parse_workers_string(const char *name, const char *text, size_t len,
                               struct hosts_entry **ret, size_t *ret_n, char *err,
                               size_t err_len) {
        return parse_lines(name, text, len, false, ret, ret_n, err, err_len);
}

int hosts_workers_path(const char *confdir, char *buf, size_t len) {
        static const char *const names[] = {"workers", "slaves"};
        for (int i = 0; i < 2; i++) {
                char path[4096];
                int n = snprintf(path, sizeof(path), "%s/%s", confdir, names[i]);
                if (n < 0 || (size_t)n >= sizeof(path))
                        return -ENAMETOOLONG;
                if (access(path, F_OK) != 0)
                        continue;
                if ((size_t)n >= len)
                        return -ENAMETOOLONG;
                memcpy(buf, path, (size_t)n + 1);
                return i;
        }
        return -ENOENT;
}
