/* The configuration module: the key table from config.h made into descriptors, the
 * value parsers per type, the flat-YAML loader (libyaml events, for line numbers), old
 * names, ignored JVM keys, warnings, and the listing for --help and REST. */
#include "common/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "common/fsutil.h"
#include "common/hosts.h"
#include "common/storage.h"

struct cfg_def {
        const char *name;
        enum cfg_type type;
        const char *def;
        int64_t min, max;
        const char *choices;
        unsigned flags;
        const char *doc;
};

static const struct cfg_def defs[CFG__MAX] = {
#define CFG_DEF_ENTRY_(id, name_, type_, def_, min_, max_, choices_, flags_, doc_)      \
        [id] = {.name = name_, .type = CFG_T_##type_, .def = def_, .min = min_,         \
                .max = max_, .choices = choices_, .flags = flags_, .doc = doc_},
        CFG_KEYS(CFG_DEF_ENTRY_)
#undef CFG_DEF_ENTRY_
};

/* Other names Flink has used for a key. newer: the name Flink 2 uses where flinc keeps
 * the Flink 1 name. */
static const struct {
        const char *name;
        enum cfg_key key;
        bool newer;
} aliases[] = {
        {"jobmanager.web.port", CFG_REST_PORT, false},
        {"web.port", CFG_REST_PORT, false},
        {"state.backend.fs.checkpointdir", CFG_STATE_CHECKPOINTS_DIR, false},
        {"taskmanager.tmp.dirs", CFG_IO_TMP_DIRS, false},
        {"high-availability.zookeeper.storageDir", CFG_HA_STORAGE_DIR, false},
        {"high-availability.zookeeper.path.namespace", CFG_HA_CLUSTER_ID, false},
        {"state.backend.type", CFG_STATE_BACKEND, false},
        {"high-availability.type", CFG_HIGH_AVAILABILITY, false},
        {"restart-strategy.type", CFG_RESTART_STRATEGY, false},
        {"akka.framesize", CFG_PEKKO_FRAMESIZE, false},
        {"execution.checkpointing.dir", CFG_STATE_CHECKPOINTS_DIR, true},
        {"execution.checkpointing.savepoint-dir", CFG_STATE_SAVEPOINTS_DIR, true},
        {"execution.checkpointing.num-retained", CFG_STATE_CHECKPOINTS_NUM_RETAINED, true},
        {"execution.checkpointing.incremental", CFG_STATE_BACKEND_INCREMENTAL, true},
};

#define NO_JVM "does not apply to flinc, which runs no JVM; ignored"

/* Keys accepted with a warning and otherwise ignored. Any key starting with "env.java."
 * (env.java.opts and its per-process variants, env.java.home, ...) is one too. */
static const struct {
        const char *name;
        const char *why;
} ignored_keys[] = {
        {"jobmanager.heap.size", NO_JVM},
        {"taskmanager.heap.size", NO_JVM},
        {"jobmanager.heap.mb", NO_JVM},
        {"taskmanager.heap.mb", NO_JVM},
        {"taskmanager.memory.preallocate", NO_JVM},
        {"taskmanager.memory.off-heap", NO_JVM},
        {"taskmanager.memory.size", NO_JVM},
        {"taskmanager.memory.fraction", NO_JVM},
        {"jobmanager.memory.process.size", NO_JVM},
        {"jobmanager.memory.flink.size", NO_JVM},
        {"jobmanager.memory.heap.size", NO_JVM},
        {"jobmanager.memory.off-heap.size", NO_JVM},
        {"jobmanager.memory.jvm-metaspace.size", NO_JVM},
        {"jobmanager.memory.jvm-overhead.min", NO_JVM},
        {"jobmanager.memory.jvm-overhead.max", NO_JVM},
        {"jobmanager.memory.jvm-overhead.fraction", NO_JVM},
        {"jobmanager.memory.enable-jvm-direct-memory-limit", NO_JVM},
        {"taskmanager.memory.process.size", NO_JVM},
        {"taskmanager.memory.flink.size", NO_JVM},
        {"taskmanager.memory.framework.heap.size", NO_JVM},
        {"taskmanager.memory.framework.off-heap.size", NO_JVM},
        {"taskmanager.memory.task.heap.size", NO_JVM},
        {"taskmanager.memory.task.off-heap.size", NO_JVM},
        {"taskmanager.memory.network.min", NO_JVM},
        {"taskmanager.memory.network.max", NO_JVM},
        {"taskmanager.memory.network.fraction", NO_JVM},
        {"taskmanager.memory.jvm-metaspace.size", NO_JVM},
        {"taskmanager.memory.jvm-overhead.min", NO_JVM},
        {"taskmanager.memory.jvm-overhead.max", NO_JVM},
        {"taskmanager.memory.jvm-overhead.fraction", NO_JVM},
        {"taskmanager.memory.managed.size",
         "does not apply to flinc, which runs no JVM (RocksDB memory is "
         "state.backend.rocksdb.memory.fixed-per-tm); ignored"},
        {"taskmanager.memory.managed.fraction",
         "does not apply to flinc, which runs no JVM (RocksDB memory is "
         "state.backend.rocksdb.memory.fixed-per-tm); ignored"},
        {"jobmanager.execution.failover-strategy", "is not read by flinc; ignored"},
};

#define JVM_PREFIX "env.java."

struct value {
        char *s;   /* string-like types: malloc'ed, never NULL once set */
        int64_t i; /* INT, DURATION (ms), SIZE (bytes) */
        double d;
        bool b;
};

struct cfg {
        struct value v[CFG__MAX];
        bool set[CFG__MAX];
        char *warnings[CFG_MAX_WARNINGS];
        size_t n_warnings;
};

/* Where an entry comes from, for messages: "file:line: " or "" for cfg_set. */
struct where {
        const char *file;
        unsigned line;
};

static bool type_is_string(enum cfg_type t) {
        return t != CFG_T_INT && t != CFG_T_BOOL && t != CFG_T_DOUBLE &&
               t != CFG_T_DURATION && t != CFG_T_SIZE;
}

static void loc_text(const struct where *w, char *buf, size_t len) {
        if (w && w->file)
                snprintf(buf, len, "%s:%u: ", w->file, w->line);
        else if (len)
                buf[0] = '\0';
}

/* A value or key as it appears in messages: at most 80 bytes, control bytes as '?'. */
static void quote(char *buf, size_t len, const char *s) {
        size_t n = 0, max = len > 84 ? 80 : (len > 4 ? len - 4 : 0);
        for (; s[n] && n < max; n++)
                buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
        if (s[n] && max > 0) {
                memcpy(buf + n, "...", 3);
                n += 3;
        }
        if (len)
                buf[n < len ? n : len - 1] = '\0';
}

static char *strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strdup_printf(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

/* ---- numbers with units ---- */

struct unit {
        const char *label;
        int64_t mul; /* value * mul / div */
        int64_t div;
};

static const struct unit duration_units[] = {
        {"ns", 1, 1000000}, {"nano", 1, 1000000}, {"nanos", 1, 1000000},
        {"nanosecond", 1, 1000000}, {"nanoseconds", 1, 1000000},
        {"us", 1, 1000}, {"\xc2\xb5s", 1, 1000}, {"micro", 1, 1000}, {"micros", 1, 1000},
        {"microsecond", 1, 1000}, {"microseconds", 1, 1000},
        {"ms", 1, 1}, {"milli", 1, 1}, {"millis", 1, 1}, {"millisecond", 1, 1},
        {"milliseconds", 1, 1},
        {"s", 1000, 1}, {"sec", 1000, 1}, {"secs", 1000, 1}, {"second", 1000, 1},
        {"seconds", 1000, 1},
        {"min", 60000, 1}, {"m", 60000, 1}, {"minute", 60000, 1}, {"minutes", 60000, 1},
        {"h", 3600000, 1}, {"hour", 3600000, 1}, {"hours", 3600000, 1},
        {"d", 86400000, 1}, {"day", 86400000, 1}, {"days", 86400000, 1},
};

static const struct unit size_units[] = {
        {"b", 1, 1}, {"bytes", 1, 1},
        {"k", 1LL << 10, 1}, {"kb", 1LL << 10, 1}, {"kibibytes", 1LL << 10, 1},
        {"m", 1LL << 20, 1}, {"mb", 1LL << 20, 1}, {"mebibytes", 1LL << 20, 1},
        {"g", 1LL << 30, 1}, {"gb", 1LL << 30, 1}, {"gibibytes", 1LL << 30, 1},
        {"t", 1LL << 40, 1}, {"tb", 1LL << 40, 1}, {"tebibytes", 1LL << 40, 1},
};

static bool is_blank(char ch) {
        return ch == ' ' || ch == '\t';
}

/* digits [blanks] [unit], surrounding blanks allowed. bare_mul applies without a unit. */
static int parse_with_unit(const char *s, const struct unit *units, size_t n_units,
                           int64_t bare_mul, int64_t *ret) {
        while (is_blank(*s))
                s++;
        uint64_t v = 0;
        const char *p = s;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (p == s)
                return -EINVAL;
        while (is_blank(*p))
                p++;
        const char *u = p;
        size_t ulen = strlen(u);
        while (ulen > 0 && is_blank(u[ulen - 1]))
                ulen--;

        int64_t mul = bare_mul, div = 1;
        if (ulen > 0) {
                size_t i;
                for (i = 0; i < n_units; i++)
                        if (strlen(units[i].label) == ulen &&
                            strncasecmp(units[i].label, u, ulen) == 0)
                                break;
                if (i == n_units)
                        return -EINVAL;
                mul = units[i].mul;
                div = units[i].div;
        }
        if (v > (uint64_t)(INT64_MAX / mul))
                return -ERANGE;
        *ret = (int64_t)(v * (uint64_t)mul) / div;
        return 0;
}

int cfg_parse_duration_ms(const char *s, int64_t *ret_ms) {
        return parse_with_unit(s, duration_units,
                               sizeof(duration_units) / sizeof(duration_units[0]), 1, ret_ms);
}

int cfg_parse_size_bytes(const char *s, int64_t *ret_bytes) {
        return parse_with_unit(s, size_units, sizeof(size_units) / sizeof(size_units[0]), 1,
                               ret_bytes);
}

static void format_duration(int64_t ms, char *buf, size_t len) {
        static const struct unit out[] = {
                {"d", 86400000, 1}, {"h", 3600000, 1}, {"min", 60000, 1}, {"s", 1000, 1},
        };
        for (size_t i = 0; ms != 0 && i < sizeof(out) / sizeof(out[0]); i++) {
                if (ms % out[i].mul == 0) {
                        snprintf(buf, len, "%" PRId64 " %s", ms / out[i].mul, out[i].label);
                        return;
                }
        }
        snprintf(buf, len, "%" PRId64 " ms", ms);
}

static void format_size(int64_t bytes, char *buf, size_t len) {
        static const char *const labels[] = {"tb", "gb", "mb", "kb"};
        for (int i = 0; bytes != 0 && i < 4; i++) {
                int shift = 40 - 10 * i;
                if (bytes % ((int64_t)1 << shift) == 0) {
                        snprintf(buf, len, "%" PRId64 " %s", bytes >> shift, labels[i]);
                        return;
                }
        }
        snprintf(buf, len, "%" PRId64 " b", bytes);
}

/* "expected ..." text for a numeric key's range. */
static void range_text(const struct cfg_def *d, char *buf, size_t len) {
        char lo[32], hi[32];
        switch (d->type) {
        case CFG_T_DURATION:
                format_duration(d->min, lo, sizeof(lo));
                format_duration(d->max, hi, sizeof(hi));
                break;
        case CFG_T_SIZE:
                format_size(d->min, lo, sizeof(lo));
                format_size(d->max, hi, sizeof(hi));
                break;
        default:
                snprintf(lo, sizeof(lo), "%" PRId64, d->min);
                snprintf(hi, sizeof(hi), "%" PRId64, d->max);
                break;
        }
        if (d->type == CFG_T_DOUBLE)
                snprintf(buf, len, "a number between %s and %s%s", lo, hi,
                         (d->flags & CFG_F_OPEN) ? ", both excluded" : "");
        else
                snprintf(buf, len, "%s%s..%s", (d->flags & CFG_F_MINUS_ONE) ? "-1 or " : "", lo,
                         hi);
}

/* ---- enums ---- */

/* Finds s among d->choices ("a|b|old=a"); writes the canonical spelling. */
static bool enum_lookup(const struct cfg_def *d, const char *s, char *canon, size_t canon_len,
                        bool *ret_alias) {
        const char *p = d->choices;
        while (*p) {
                size_t seg = strcspn(p, "|");
                const char *eq = memchr(p, '=', seg);
                size_t nlen = eq ? (size_t)(eq - p) : seg;
                if (strlen(s) == nlen && strncasecmp(p, s, nlen) == 0) {
                        const char *c = eq ? eq + 1 : p;
                        size_t clen = eq ? seg - nlen - 1 : seg;
                        snprintf(canon, canon_len, "%.*s", (int)clen, c);
                        *ret_alias = eq != NULL;
                        return true;
                }
                p += seg;
                if (*p == '|')
                        p++;
        }
        return false;
}

/* "NONE, zookeeper" or "none, fixed-delay (also off, disable, fixeddelay)". */
static void enum_allowed(const struct cfg_def *d, char *buf, size_t len) {
        size_t used = 0;
        buf[0] = '\0';
        for (int pass = 0; pass < 2; pass++) {
                bool first = true;
                const char *p = d->choices;
                while (*p) {
                        size_t seg = strcspn(p, "|");
                        const char *eq = memchr(p, '=', seg);
                        if ((pass == 0) == (eq == NULL)) {
                                size_t nlen = eq ? (size_t)(eq - p) : seg;
                                const char *sep = first ? (pass ? " (also " : "") : ", ";
                                int n = snprintf(buf + used, len - used, "%s%.*s", sep,
                                                 (int)nlen, p);
                                if (n > 0 && used + (size_t)n < len)
                                        used += (size_t)n;
                                first = false;
                        }
                        p += seg;
                        if (*p == '|')
                                p++;
                }
                if (pass == 1 && !first) {
                        int n = snprintf(buf + used, len - used, ")");
                        if (n > 0 && used + (size_t)n < len)
                                used += (size_t)n;
                }
        }
}

/* ---- value parsing per type ---- */

static int parse_ports(const char *s) {
        const char *p = s;
        if (*p == '\0')
                return -EINVAL;
        for (;;) {
                while (is_blank(*p))
                        p++;
                long a, b;
                char *end;
                if (!(*p >= '0' && *p <= '9'))
                        return -EINVAL;
                a = strtol(p, &end, 10);
                p = end;
                while (is_blank(*p))
                        p++;
                b = a;
                if (*p == '-') {
                        p++;
                        while (is_blank(*p))
                                p++;
                        if (!(*p >= '0' && *p <= '9'))
                                return -EINVAL;
                        b = strtol(p, &end, 10);
                        p = end;
                        while (is_blank(*p))
                                p++;
                }
                if (a < 0 || a > 65535 || b < a || b > 65535)
                        return -EINVAL;
                if (*p == '\0')
                        return 0;
                if (*p != ',')
                        return -EINVAL;
                p++;
        }
}

/* host:port,host:port; writes the list without blanks into out (same size as s). */
static int parse_hostports(const char *s, char *out, size_t out_len, char *why,
                           size_t why_len) {
        size_t used = 0;
        const char *p = s;
        out[0] = '\0';
        for (;;) {
                size_t seg = strcspn(p, ",");
                const char *a = p, *b = p + seg;
                while (a < b && is_blank(*a))
                        a++;
                while (b > a && is_blank(b[-1]))
                        b--;
                char item[CFG_MAX_VALUE_BYTES + 1];
                size_t ilen = (size_t)(b - a);
                memcpy(item, a, ilen);
                item[ilen] = '\0';
                if (ilen == 0) {
                        snprintf(why, why_len, "has an empty entry");
                        return -EINVAL;
                }
                const char *slash = strchr(item, '/');
                if (slash) {
                        snprintf(why, why_len,
                                 "has a chroot suffix '%.32s'; set "
                                 "high-availability.zookeeper.path.root instead", slash);
                        return -EINVAL;
                }
                struct hosts_entry e;
                char hwhy[256];
                if (hosts_parse_hostport(item, 0, &e, hwhy, sizeof(hwhy)) < 0) {
                        snprintf(why, why_len, "is not a host:port list: %s", hwhy);
                        return -EINVAL;
                }
                int n = snprintf(out + used, out_len - used, "%s%s", used ? "," : "", item);
                if (n < 0 || used + (size_t)n >= out_len)
                        return -EINVAL;
                used += (size_t)n;
                p += seg;
                if (*p == '\0')
                        return 0;
                p++;
        }
}

static bool zkpath_valid(const char *s) {
        size_t len = strlen(s);
        if (len < 2 || s[0] != '/' || s[len - 1] == '/' || strstr(s, "//"))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-/", *p))
                        return false;
        return !strstr(s, "/./") && !strstr(s, "/../") && strcmp(s + len - 2, "/.") != 0 &&
               (len < 3 || strcmp(s + len - 3, "/..") != 0);
}

static bool name_valid(const char *s) {
        size_t len = strlen(s);
        if (len == 0 || len > 128 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
                        return false;
        return true;
}

/* Parses text (trimmed, no control bytes) for key k into *ret (ret->s malloc'ed for
 * string types). *ret_alias tells that an enum value was an alias. why gets a reason
 * such as "'abc' is not an integer (expected 0..65535)". 0, -EINVAL or -ENOMEM. */
static int parse_value(enum cfg_key k, const char *text, struct value *ret, bool *ret_alias,
                       char *why, size_t why_len) {
        const struct cfg_def *d = &defs[k];
        struct value v = {0};
        char q[96], range[160];
        char *canon = NULL;
        int r;

        quote(q, sizeof(q), text);
        *ret_alias = false;
        switch (d->type) {
        case CFG_T_STRING:
                break;
        case CFG_T_INT: {
                const char *p = text + (text[0] == '-' || text[0] == '+');
                range_text(d, range, sizeof(range));
                if (*p == '\0' || strspn(p, "0123456789") != strlen(p)) {
                        snprintf(why, why_len, "'%s' is not an integer (expected %s)", q, range);
                        return -EINVAL;
                }
                errno = 0;
                long long x = strtoll(text, NULL, 10);
                bool ok = errno == 0 && x >= d->min && x <= d->max;
                if (x == -1 && (d->flags & CFG_F_MINUS_ONE))
                        ok = true;
                if (!ok) {
                        snprintf(why, why_len, "'%s' is out of range (expected %s)", q, range);
                        return -EINVAL;
                }
                v.i = x;
                break;
        }
        case CFG_T_BOOL:
                if (strcasecmp(text, "true") == 0) {
                        v.b = true;
                } else if (strcasecmp(text, "false") == 0) {
                        v.b = false;
                } else {
                        snprintf(why, why_len, "'%s' is not a boolean (expected true or false)",
                                 q);
                        return -EINVAL;
                }
                break;
        case CFG_T_DOUBLE: {
                char *end = NULL;
                range_text(d, range, sizeof(range));
                bool syntax = text[0] != '\0' && strspn(text, "0123456789.eE+-") == strlen(text);
                double x = syntax ? strtod(text, &end) : 0;
                if (!syntax || *end != '\0' || !isfinite(x)) {
                        snprintf(why, why_len, "'%s' is not a number (expected %s)", q, range);
                        return -EINVAL;
                }
                bool open = d->flags & CFG_F_OPEN;
                if (open ? (x <= (double)d->min || x >= (double)d->max)
                         : (x < (double)d->min || x > (double)d->max)) {
                        snprintf(why, why_len, "'%s' is out of range (expected %s)", q, range);
                        return -EINVAL;
                }
                v.d = x;
                break;
        }
        case CFG_T_DURATION: {
                int64_t bare = (d->flags & CFG_F_BARE_SECONDS) ? 1000 : 1;
                range_text(d, range, sizeof(range));
                r = parse_with_unit(text, duration_units,
                                    sizeof(duration_units) / sizeof(duration_units[0]), bare,
                                    &v.i);
                if (r == -EINVAL) {
                        snprintf(why, why_len,
                                 "'%s' is not a duration (expected a number and a unit: ms, s, "
                                 "min, h, d (also ns, us); a bare number means %s; range %s)",
                                 q, bare == 1 ? "ms" : "seconds", range);
                        return r;
                }
                if (r < 0 || v.i < d->min || v.i > d->max) {
                        snprintf(why, why_len, "'%s' is out of range (expected %s)", q, range);
                        return -EINVAL;
                }
                break;
        }
        case CFG_T_SIZE:
                range_text(d, range, sizeof(range));
                r = cfg_parse_size_bytes(text, &v.i);
                if (r == -EINVAL) {
                        snprintf(why, why_len,
                                 "'%s' is not a memory size (expected a number and a unit: b, "
                                 "kb, mb, gb, tb; a bare number means bytes; range %s)",
                                 q, range);
                        return r;
                }
                if (r < 0 || v.i < d->min || v.i > d->max) {
                        snprintf(why, why_len, "'%s' is out of range (expected %s)", q, range);
                        return -EINVAL;
                }
                break;
        case CFG_T_ENUM: {
                char c[64];
                if (!enum_lookup(d, text, c, sizeof(c), ret_alias)) {
                        enum_allowed(d, range, sizeof(range));
                        snprintf(why, why_len, "'%s' is not allowed (expected one of: %s)", q,
                                 range);
                        return -EINVAL;
                }
                canon = strdup(c);
                if (!canon)
                        return -ENOMEM;
                break;
        }
        case CFG_T_URI: {
                char path[4096], uwhy[512];
                if (text[0] != '\0' &&
                    storage_uri_to_path(text, path, sizeof(path), uwhy, sizeof(uwhy)) < 0) {
                        snprintf(why, why_len, "'%s': %s", q, uwhy);
                        return -EINVAL;
                }
                break;
        }
        case CFG_T_HOST:
                if (text[0] != '\0' && !hosts_name_valid(text)) {
                        snprintf(why, why_len, "'%s' is not a host name or IP address", q);
                        return -EINVAL;
                }
                break;
        case CFG_T_HOSTPORTS: {
                char hwhy[400];
                canon = malloc(strlen(text) + 1);
                if (!canon)
                        return -ENOMEM;
                canon[0] = '\0';
                if (text[0] != '\0' &&
                    parse_hostports(text, canon, strlen(text) + 1, hwhy, sizeof(hwhy)) < 0) {
                        free(canon);
                        snprintf(why, why_len, "'%s' %s (expected host:port[,host:port...])", q,
                                 hwhy);
                        return -EINVAL;
                }
                break;
        }
        case CFG_T_PORTS:
                if (parse_ports(text) < 0) {
                        snprintf(why, why_len,
                                 "'%s' is not a port or port range (expected a port 0..65535, a "
                                 "range like 50000-50025, or a comma list of them)", q);
                        return -EINVAL;
                }
                break;
        case CFG_T_ZKPATH:
                if (!zkpath_valid(text)) {
                        snprintf(why, why_len,
                                 "'%s' is not a ZooKeeper path (expected an absolute path like "
                                 "/flinc of letters, digits, '.', '_', '-', no trailing '/')", q);
                        return -EINVAL;
                }
                break;
        case CFG_T_NAME:
                if (text[0] == '/')
                        text++;
                if (!name_valid(text)) {
                        snprintf(why, why_len,
                                 "'%s' is not a valid name (expected 1 to 128 letters, digits, "
                                 "'.', '_', '-')", q);
                        return -EINVAL;
                }
                break;
        case CFG_T_USERPASS:
                if (text[0] != '\0' && (text[0] == ':' || !strchr(text, ':'))) {
                        snprintf(why, why_len,
                                 "value is not in the form user:password (not shown here)");
                        return -EINVAL;
                }
                break;
        }

        if (type_is_string(d->type)) {
                v.s = canon ? canon : strdup(text);
                if (!v.s)
                        return -ENOMEM;
        }
        *ret = v;
        return 0;
}

/* ---- the cfg object ---- */

static void value_clear(struct value *v) {
        free(v->s);
        v->s = NULL;
}

void cfg_free(struct cfg *c) {
        if (!c)
                return;
        for (size_t k = 0; k < CFG__MAX; k++)
                value_clear(&c->v[k]);
        for (size_t i = 0; i < c->n_warnings; i++)
                free(c->warnings[i]);
        free(c);
}

struct cfg *cfg_new_defaults(void) {
        struct cfg *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        for (size_t k = 0; k < CFG__MAX; k++) {
                char why[512];
                bool alias;
                int r = parse_value((enum cfg_key)k, defs[k].def, &c->v[k], &alias, why,
                                    sizeof(why));
                assert(r != -EINVAL && "a default in CFG_KEYS does not parse");
                if (r < 0) {
                        cfg_free(c);
                        return NULL;
                }
        }
        return c;
}

/* Takes ownership of w (may be NULL: out of memory, nothing added). Past the cap one
 * last note says that warnings were dropped. */
static void add_warning(struct cfg *c, char *w) {
        if (!w)
                return;
        if (c->n_warnings >= CFG_MAX_WARNINGS - 1) {
                free(w);
                if (c->n_warnings == CFG_MAX_WARNINGS - 1) {
                        char *note = strdup_printf("more than %d warnings; the rest are not shown",
                                                    CFG_MAX_WARNINGS - 1);
                        if (note)
                                c->warnings[c->n_warnings++] = note;
                }
                return;
        }
        c->warnings[c->n_warnings++] = w;
}

const char *cfg_string(const struct cfg *c, enum cfg_key k) {
        assert((size_t)k < CFG__MAX);
        assert(type_is_string(defs[k].type) && "cfg_string on a non-string key");
        const char *s = c->v[k].s;
        return s ? s : "";
}

int64_t cfg_int(const struct cfg *c, enum cfg_key k) {
        assert((size_t)k < CFG__MAX);
        assert((defs[k].type == CFG_T_INT || defs[k].type == CFG_T_DURATION ||
                defs[k].type == CFG_T_SIZE) && "cfg_int on a key that is no int, duration or size");
        return c->v[k].i;
}

double cfg_double(const struct cfg *c, enum cfg_key k) {
        assert((size_t)k < CFG__MAX);
        assert(defs[k].type == CFG_T_DOUBLE && "cfg_double on a non-double key");
        return c->v[k].d;
}

bool cfg_bool(const struct cfg *c, enum cfg_key k) {
        assert((size_t)k < CFG__MAX);
        assert(defs[k].type == CFG_T_BOOL && "cfg_bool on a non-bool key");
        return c->v[k].b;
}

bool cfg_is_set(const struct cfg *c, enum cfg_key k) {
        return (size_t)k < CFG__MAX && c->set[k];
}

size_t cfg_warning_count(const struct cfg *c) {
        return c->n_warnings;
}

const char *cfg_warning(const struct cfg *c, size_t i) {
        return i < c->n_warnings ? c->warnings[i] : NULL;
}

size_t cfg_key_count(void) {
        return CFG__MAX;
}

const char *cfg_key_name(enum cfg_key k) {
        return (size_t)k < CFG__MAX ? defs[k].name : NULL;
}

const char *cfg_key_doc(enum cfg_key k) {
        return (size_t)k < CFG__MAX ? defs[k].doc : NULL;
}

enum cfg_type cfg_key_type(enum cfg_key k) {
        return (size_t)k < CFG__MAX ? defs[k].type : CFG_T_STRING;
}

int cfg_key_find(const char *name, enum cfg_key *ret_key) {
        for (size_t k = 0; k < CFG__MAX; k++) {
                if (strcmp(defs[k].name, name) == 0) {
                        *ret_key = (enum cfg_key)k;
                        return 0;
                }
        }
        return -ENOENT;
}

static void value_text(enum cfg_key k, const struct value *v, bool set, char *buf,
                       size_t len) {
        switch (defs[k].type) {
        case CFG_T_INT:
                snprintf(buf, len, "%" PRId64, v->i);
                break;
        case CFG_T_BOOL:
                snprintf(buf, len, "%s", v->b ? "true" : "false");
                break;
        case CFG_T_DOUBLE:
                /* The shortest of these that reads back to the same number. */
                snprintf(buf, len, "%.15g", v->d);
                if (strtod(buf, NULL) != v->d)
                        snprintf(buf, len, "%.17g", v->d);
                break;
        case CFG_T_DURATION:
                format_duration(v->i, buf, len);
                break;
        case CFG_T_SIZE:
                format_size(v->i, buf, len);
                break;
        case CFG_T_USERPASS:
                snprintf(buf, len, "%s", set && v->s && v->s[0] ? "******" : "");
                break;
        default:
                snprintf(buf, len, "%s", v->s ? v->s : "");
                break;
        }
}

int cfg_value_text(const struct cfg *c, enum cfg_key k, char *buf, size_t len) {
        if ((size_t)k >= CFG__MAX)
                return -EINVAL;
        if (len == 0)
                return -ENOSPC;
        char tmp[CFG_MAX_VALUE_BYTES + 64];
        value_text(k, &c->v[k], c->set[k], tmp, sizeof(tmp));
        size_t n = strlen(tmp);
        snprintf(buf, len, "%s", tmp);
        return n < len ? 0 : -ENOSPC;
}

/* ---- key lookup ---- */

/* Optimal string alignment distance, case-insensitive, capped: returns cap + 1 when the
 * distance is larger than cap. */
static size_t edit_distance(const char *a, const char *b, size_t cap) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > CFG_MAX_KEY_BYTES || lb > CFG_MAX_KEY_BYTES)
                return cap + 1;
        if ((la > lb ? la - lb : lb - la) > cap)
                return cap + 1;
        size_t rows[3][CFG_MAX_KEY_BYTES + 1];
        size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                cur[0] = i;
                size_t best = cur[0];
                for (size_t j = 1; j <= lb; j++) {
                        int ca = tolower((unsigned char)a[i - 1]);
                        int cb = tolower((unsigned char)b[j - 1]);
                        size_t cost = ca != cb;
                        size_t v = prev[j] + 1;
                        if (cur[j - 1] + 1 < v)
                                v = cur[j - 1] + 1;
                        if (prev[j - 1] + cost < v)
                                v = prev[j - 1] + cost;
                        if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                            tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < v)
                                v = prev2[j - 2] + 1;
                        cur[j] = v;
                        if (v < best)
                                best = v;
                }
                if (best > cap)
                        return cap + 1;
                size_t *t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return prev[lb];
}

static const char *suggest(const char *key) {
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t k = 0; k < CFG__MAX; k++) {
                size_t dist = edit_distance(key, defs[k].name, 2);
                if (dist < best_d) {
                        best_d = dist;
                        best = defs[k].name;
                }
        }
        for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
                size_t dist = edit_distance(key, aliases[i].name, 2);
                if (dist < best_d) {
                        best_d = dist;
                        best = aliases[i].name;
                }
        }
        for (size_t i = 0; i < sizeof(ignored_keys) / sizeof(ignored_keys[0]); i++) {
                size_t dist = edit_distance(key, ignored_keys[i].name, 2);
                if (dist < best_d) {
                        best_d = dist;
                        best = ignored_keys[i].name;
                }
        }
        return best;
}

enum key_kind { KEY_UNKNOWN, KEY_CURRENT, KEY_ALIAS, KEY_IGNORED };

struct key_match {
        enum key_kind kind;
        enum cfg_key key;   /* CURRENT, ALIAS */
        size_t alias;       /* ALIAS: index in aliases */
        const char *why;    /* IGNORED: the reason */
};

static struct key_match match_key(const char *name) {
        struct key_match m = {.kind = KEY_UNKNOWN};
        enum cfg_key k;
        if (cfg_key_find(name, &k) == 0) {
                m.kind = KEY_CURRENT;
                m.key = k;
                return m;
        }
        for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
                if (strcmp(aliases[i].name, name) == 0) {
                        m.kind = KEY_ALIAS;
                        m.key = aliases[i].key;
                        m.alias = i;
                        return m;
                }
        }
        for (size_t i = 0; i < sizeof(ignored_keys) / sizeof(ignored_keys[0]); i++) {
                if (strcmp(ignored_keys[i].name, name) == 0) {
                        m.kind = KEY_IGNORED;
                        m.why = ignored_keys[i].why;
                        return m;
                }
        }
        if (strncmp(name, JVM_PREFIX, strlen(JVM_PREFIX)) == 0 && name[strlen(JVM_PREFIX)]) {
                m.kind = KEY_IGNORED;
                m.why = NO_JVM;
        }
        return m;
}

static int unknown_key_error(const struct where *w, const char *key, char *err,
                             size_t err_len) {
        char loc[CFG_MAX_KEY_BYTES + 64], q[96];
        loc_text(w, loc, sizeof(loc));
        quote(q, sizeof(q), key);
        const char *s = suggest(key);
        if (s)
                snprintf(err, err_len, "%sunknown key '%s'; did you mean '%s'?", loc, q, s);
        else
                snprintf(err, err_len, "%sunknown key '%s'", loc, q);
        return -EINVAL;
}

/* Checks the value text common to all types: length and control bytes. Trims blanks
 * into out. */
static int check_text(const char *value, size_t vlen, char *out, char *why, size_t why_len) {
        if (vlen > CFG_MAX_VALUE_BYTES) {
                snprintf(why, why_len, "value is longer than %d bytes", CFG_MAX_VALUE_BYTES);
                return -EINVAL;
        }
        for (size_t i = 0; i < vlen; i++) {
                unsigned char ch = (unsigned char)value[i];
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                        snprintf(why, why_len,
                                 "value holds a line break or control character (byte %zu)", i);
                        return -EINVAL;
                }
        }
        while (vlen > 0 && is_blank(*value)) {
                value++;
                vlen--;
        }
        while (vlen > 0 && is_blank(value[vlen - 1]))
                vlen--;
        memcpy(out, value, vlen);
        out[vlen] = '\0';
        return 0;
}

/* Parses and stores one entry for a known key (current or alias name `as`), with its
 * warnings. On error c is unchanged and err holds "<loc><as>: <why>". */
static int set_known(struct cfg *c, const struct where *w, const struct key_match *m,
                     const char *as, const char *value, size_t vlen, char *err,
                     size_t err_len) {
        char loc[CFG_MAX_KEY_BYTES + 64], why[1024];
        char text[CFG_MAX_VALUE_BYTES + 1];
        char *warn_alias = NULL, *warn_value = NULL;
        struct value v = {0};
        bool value_alias = false;
        int r;

        loc_text(w, loc, sizeof(loc));
        r = check_text(value, vlen, text, why, sizeof(why));
        if (r == 0)
                r = parse_value(m->key, text, &v, &value_alias, why, sizeof(why));
        if (r == -ENOMEM) {
                snprintf(err, err_len, "%s%s: out of memory", loc, as);
                goto fail;
        }
        if (r < 0) {
                snprintf(err, err_len, "%s%s: %s", loc, as, why);
                goto fail;
        }

        if (m->kind == KEY_ALIAS) {
                warn_alias = aliases[m->alias].newer
                        ? strdup_printf("%s%s is Flink 2's name for %s; read as %s", loc, as,
                                         defs[m->key].name, defs[m->key].name)
                        : strdup_printf("%s%s is a deprecated name; read as %s", loc, as,
                                         defs[m->key].name);
                if (!warn_alias)
                        goto nomem;
        }
        if (m->key == CFG_STATE_BACKEND && value_alias) {
                char q[96];
                quote(q, sizeof(q), text);
                warn_value = strdup_printf(
                        "%s%s: '%s' is read as 'hashmap': flinc's hashmap backend keeps keyed "
                        "state in the worker's memory and checkpoints full snapshots; use "
                        "'rocksdb' for large state and incremental checkpoints",
                        loc, as, q);
                if (!warn_value)
                        goto nomem;
        }

        value_clear(&c->v[m->key]);
        c->v[m->key] = v;
        c->set[m->key] = true;
        add_warning(c, warn_alias);
        add_warning(c, warn_value);
        return 0;

nomem:
        r = -ENOMEM;
        snprintf(err, err_len, "%s%s: out of memory", loc, as);
fail:
        free(warn_alias);
        free(warn_value);
        value_clear(&v);
        return r;
}

static int add_ignored_warning(struct cfg *c, const struct where *w, const char *key,
                               const char *why) {
        char loc[CFG_MAX_KEY_BYTES + 64];
        loc_text(w, loc, sizeof(loc));
        char *msg = strdup_printf("%s%s %s", loc, key, why);
        if (!msg)
                return -ENOMEM;
        add_warning(c, msg);
        return 0;
}

int cfg_set(struct cfg *c, const char *key, const char *value, char *err, size_t err_len) {
        struct key_match m = match_key(key);
        switch (m.kind) {
        case KEY_UNKNOWN:
                return unknown_key_error(NULL, key, err, err_len);
        case KEY_IGNORED:
                if (add_ignored_warning(c, NULL, key, m.why) < 0) {
                        snprintf(err, err_len, "%s: out of memory", key);
                        return -ENOMEM;
                }
                return 0;
        default:
                return set_known(c, NULL, &m, key, value, strlen(value), err, err_len);
        }
}

/* ---- the YAML loader ---- */

struct load {
        struct cfg *c;
        const char *name;
        unsigned key_line[CFG__MAX];     /* 0: not in this file yet */
        const char *key_as[CFG__MAX];    /* the name it was set under (static string) */
        struct {
                char *name;
                unsigned line;
        } ignored[CFG_MAX_IGNORED_KEYS];
        size_t n_ignored;
};

static int load_entry(struct load *ld, const char *key, unsigned key_line, const char *value,
                      size_t vlen, char *err, size_t err_len) {
        struct where w = {ld->name, key_line};
        struct key_match m = match_key(key);
        char q[96];

        quote(q, sizeof(q), key);

        switch (m.kind) {
        case KEY_UNKNOWN:
                return unknown_key_error(&w, key, err, err_len);
        case KEY_IGNORED:
                for (size_t i = 0; i < ld->n_ignored; i++) {
                        if (strcmp(ld->ignored[i].name, key) == 0) {
                                snprintf(err, err_len, "%s:%u: %s: duplicate key (first at line %u)",
                                         ld->name, key_line, q, ld->ignored[i].line);
                                return -EINVAL;
                        }
                }
                if (ld->n_ignored == CFG_MAX_IGNORED_KEYS) {
                        snprintf(err, err_len, "%s:%u: %s: more than %d ignored JVM keys",
                                 ld->name, key_line, q, CFG_MAX_IGNORED_KEYS);
                        return -EINVAL;
                }
                ld->ignored[ld->n_ignored].name = strdup(key);
                if (!ld->ignored[ld->n_ignored].name ||
                    add_ignored_warning(ld->c, &w, key, m.why) < 0) {
                        snprintf(err, err_len, "%s:%u: %s: out of memory", ld->name, key_line,
                                 q);
                        return -ENOMEM;
                }
                ld->ignored[ld->n_ignored++].line = key_line;
                return 0;
        default:
                break;
        }

        const char *as = m.kind == KEY_ALIAS ? aliases[m.alias].name : defs[m.key].name;
        if (ld->key_line[m.key]) {
                if (strcmp(ld->key_as[m.key], as) == 0)
                        snprintf(err, err_len, "%s:%u: %s: duplicate key (first at line %u)",
                                 ld->name, key_line, as, ld->key_line[m.key]);
                else
                        snprintf(err, err_len,
                                 "%s:%u: %s: duplicate key: sets %s, already set as %s at line %u",
                                 ld->name, key_line, as, defs[m.key].name, ld->key_as[m.key],
                                 ld->key_line[m.key]);
                return -EINVAL;
        }
        int r = set_known(ld->c, &w, &m, as, value, vlen, err, err_len);
        if (r < 0)
                return r;
        ld->key_line[m.key] = key_line;
        ld->key_as[m.key] = as;
        return 0;
}

static unsigned mark_line(const yaml_mark_t *m) {
        return (unsigned)m->line + 1;
}

static bool is_null_scalar(const yaml_event_t *ev) {
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *s = (const char *)ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        return n == 0 || (n == 1 && s[0] == '~') ||
               (n == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
                           memcmp(s, "NULL", 4) == 0));
}

static const char *event_what(yaml_event_type_t t) {
        switch (t) {
        case YAML_MAPPING_START_EVENT:
                return "a nested mapping";
        case YAML_SEQUENCE_START_EVENT:
                return "a list";
        case YAML_ALIAS_EVENT:
                return "an alias";
        case YAML_SCALAR_EVENT:
                return "a scalar";
        default:
                return "something else";
        }
}

enum load_state {
        ST_STREAM_START,
        ST_DOCUMENT_START,
        ST_TOP,
        ST_KEY,
        ST_VALUE,
        ST_DOCUMENT_END,
        ST_STREAM_END,
        ST_DONE,
};

static int load_events(struct load *ld, yaml_parser_t *p, char *err, size_t err_len) {
        enum load_state st = ST_STREAM_START;
        char key[CFG_MAX_KEY_BYTES + 1];
        unsigned key_line = 0;
        int r = 0;

        while (st != ST_DONE && r == 0) {
                yaml_event_t ev;
                if (!yaml_parser_parse(p, &ev)) {
                        unsigned pline = (unsigned)p->problem_mark.line + 1;
                        unsigned cline = (unsigned)p->context_mark.line + 1;
                        char started[48] = "";
                        if (p->context && strcmp(p->context, "while scanning a simple key") == 0) {
                                /* A line without ": " inside a mapping; libyaml notices
                                 * only on a later line. Name the line itself. */
                                snprintf(err, err_len,
                                         "%s:%u: invalid YAML: a line that is not 'key: value' "
                                         "(%s; write a space after the colon)", ld->name, cline,
                                         p->problem ? p->problem : "no ':'");
                                return -EINVAL;
                        }
                        if (p->context && cline != pline)
                                snprintf(started, sizeof(started), " (started at line %u)", cline);
                        snprintf(err, err_len, "%s:%u: invalid YAML: %s%s%s%s", ld->name, pline,
                                 p->problem ? p->problem : "parse error", p->context ? " " : "",
                                 p->context ? p->context : "", started);
                        return -EINVAL;
                }
                unsigned line = mark_line(&ev.start_mark);
                switch (st) {
                case ST_STREAM_START:
                        st = ST_DOCUMENT_START;
                        break;
                case ST_DOCUMENT_START:
                        st = ev.type == YAML_DOCUMENT_START_EVENT ? ST_TOP : ST_DONE;
                        break;
                case ST_TOP:
                        if (ev.type == YAML_MAPPING_START_EVENT) {
                                st = ST_KEY;
                        } else if (ev.type == YAML_SCALAR_EVENT && is_null_scalar(&ev)) {
                                st = ST_DOCUMENT_END;
                        } else {
                                snprintf(err, err_len,
                                         "%s:%u: the top level must be a mapping of 'key: value' "
                                         "lines, found %s%s", ld->name, line, event_what(ev.type),
                                         ev.type == YAML_SCALAR_EVENT
                                                 ? " (is a space missing after a ':'?)" : "");
                                r = -EINVAL;
                        }
                        break;
                case ST_KEY:
                        if (ev.type == YAML_MAPPING_END_EVENT) {
                                st = ST_DOCUMENT_END;
                        } else if (ev.type != YAML_SCALAR_EVENT) {
                                snprintf(err, err_len,
                                         "%s:%u: a key must be a plain name, found %s", ld->name,
                                         line, event_what(ev.type));
                                r = -EINVAL;
                        } else if (ev.data.scalar.length > CFG_MAX_KEY_BYTES) {
                                snprintf(err, err_len, "%s:%u: key longer than %d bytes",
                                         ld->name, line, CFG_MAX_KEY_BYTES);
                                r = -EINVAL;
                        } else if (ev.data.scalar.length == 0 ||
                                   memchr(ev.data.scalar.value, '\0', ev.data.scalar.length)) {
                                snprintf(err, err_len, "%s:%u: empty key or NUL byte in key",
                                         ld->name, line);
                                r = -EINVAL;
                        } else {
                                memcpy(key, ev.data.scalar.value, ev.data.scalar.length);
                                key[ev.data.scalar.length] = '\0';
                                key_line = line;
                                st = ST_VALUE;
                        }
                        break;
                case ST_VALUE:
                        if (ev.type == YAML_SCALAR_EVENT) {
                                bool null = is_null_scalar(&ev);
                                r = load_entry(ld, key, key_line,
                                               null ? "" : (const char *)ev.data.scalar.value,
                                               null ? 0 : ev.data.scalar.length, err,
                                               err_len);
                                st = ST_KEY;
                        } else {
                                char q[96];
                                quote(q, sizeof(q), key);
                                snprintf(err, err_len,
                                         "%s:%u: %s: the value is %s; flinc reads flat "
                                         "'key: value' lines (write nested keys joined by '.', "
                                         "lists as one comma-separated value)",
                                         ld->name, key_line, q, event_what(ev.type));
                                r = -EINVAL;
                        }
                        break;
                case ST_DOCUMENT_END:
                        st = ST_STREAM_END; /* YAML_DOCUMENT_END_EVENT */
                        break;
                case ST_STREAM_END:
                        if (ev.type == YAML_DOCUMENT_START_EVENT) {
                                snprintf(err, err_len,
                                         "%s:%u: a second YAML document ('---'); flinc reads one",
                                         ld->name, line);
                                r = -EINVAL;
                        }
                        st = ST_DONE;
                        break;
                case ST_DONE:
                        break;
                }
                yaml_event_delete(&ev);
        }
        return r;
}

int cfg_load_string(const char *name, const char *text, size_t len, struct cfg **ret_cfg,
                    char *err, size_t err_len) {
        struct load *ld = NULL;
        yaml_parser_t parser;
        bool parser_ready = false;
        int r;

        if (len > CFG_MAX_FILE_BYTES) {
                snprintf(err, err_len, "%s: larger than %d bytes (1 mb)", name,
                         CFG_MAX_FILE_BYTES);
                return -EFBIG;
        }
        ld = calloc(1, sizeof(*ld));
        if (!ld)
                goto nomem;
        ld->name = name;
        ld->c = cfg_new_defaults();
        if (!ld->c)
                goto nomem;
        if (!yaml_parser_initialize(&parser))
                goto nomem;
        parser_ready = true;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

        r = load_events(ld, &parser, err, err_len);
        if (r < 0)
                goto fail;

        yaml_parser_delete(&parser);
        for (size_t i = 0; i < ld->n_ignored; i++)
                free(ld->ignored[i].name);
        *ret_cfg = ld->c;
        free(ld);
        return 0;

nomem:
        r = -ENOMEM;
        snprintf(err, err_len, "%s: out of memory", name);
fail:
        if (parser_ready)
                yaml_parser_delete(&parser);
        if (ld) {
                for (size_t i = 0; i < ld->n_ignored; i++)
                        free(ld->ignored[i].name);
                cfg_free(ld->c);
                free(ld);
        }
        return r;
}

int cfg_load_file(const char *path, struct cfg **ret_cfg, char *err, size_t err_len) {
        char *data = NULL;
        size_t len = 0;
        int r = fs_read_all(path, CFG_MAX_FILE_BYTES, &data, &len);
        if (r == -EFBIG) {
                snprintf(err, err_len, "%s: larger than %d bytes (1 mb)", path,
                         CFG_MAX_FILE_BYTES);
                return r;
        }
        if (r < 0) {
                snprintf(err, err_len, "%s: cannot read: %s", path, strerror(-r));
                return r;
        }
        r = cfg_load_string(path, data, len, ret_cfg, err, err_len);
        free(data);
        return r;
}

/* ---- rules across keys ---- */

int cfg_validate(const struct cfg *c, char *err, size_t err_len) {
        if (strcmp(cfg_string(c, CFG_HIGH_AVAILABILITY), "zookeeper") == 0) {
                if (cfg_string(c, CFG_HA_ZK_QUORUM)[0] == '\0') {
                        snprintf(err, err_len,
                                 "high-availability is zookeeper but "
                                 "high-availability.zookeeper.quorum is not set (expected "
                                 "host:port,host:port)");
                        return -EINVAL;
                }
                if (cfg_string(c, CFG_HA_STORAGE_DIR)[0] == '\0') {
                        snprintf(err, err_len,
                                 "high-availability is zookeeper but "
                                 "high-availability.storageDir is not set (expected a "
                                 "file:///shared/mount/path directory)");
                        return -EINVAL;
                }
        }
        if (strcmp(cfg_string(c, CFG_HA_ZK_ACL), "creator") == 0 &&
            cfg_string(c, CFG_HA_ZK_AUTH_DIGEST)[0] == '\0') {
                snprintf(err, err_len,
                         "high-availability.zookeeper.client.acl is creator but "
                         "high-availability.zookeeper.auth.digest is not set (expected "
                         "user:password)");
                return -EINVAL;
        }
        if (cfg_int(c, CFG_HEARTBEAT_TIMEOUT) <= cfg_int(c, CFG_HEARTBEAT_INTERVAL)) {
                char t[32], i[32];
                format_duration(cfg_int(c, CFG_HEARTBEAT_TIMEOUT), t, sizeof(t));
                format_duration(cfg_int(c, CFG_HEARTBEAT_INTERVAL), i, sizeof(i));
                snprintf(err, err_len,
                         "heartbeat.timeout (%s) must be longer than heartbeat.interval (%s)", t,
                         i);
                return -EINVAL;
        }
        int64_t maxp = cfg_int(c, CFG_PIPELINE_MAX_PARALLELISM);
        if (maxp != -1 && maxp < cfg_int(c, CFG_PARALLELISM_DEFAULT)) {
                snprintf(err, err_len,
                         "pipeline.max-parallelism (%" PRId64 ") is below parallelism.default (%"
                         PRId64 ")", maxp, cfg_int(c, CFG_PARALLELISM_DEFAULT));
                return -EINVAL;
        }
        return 0;
}

/* ---- help ---- */

static const char *type_name(enum cfg_type t) {
        switch (t) {
        case CFG_T_STRING:
                return "string";
        case CFG_T_INT:
                return "int";
        case CFG_T_BOOL:
                return "bool";
        case CFG_T_DOUBLE:
                return "number";
        case CFG_T_DURATION:
                return "duration";
        case CFG_T_SIZE:
                return "memory size";
        case CFG_T_ENUM:
                return "enum";
        case CFG_T_URI:
                return "file:// uri";
        case CFG_T_HOST:
                return "host";
        case CFG_T_HOSTPORTS:
                return "host:port list";
        case CFG_T_PORTS:
                return "port or range";
        case CFG_T_ZKPATH:
                return "zookeeper path";
        case CFG_T_NAME:
                return "name";
        case CFG_T_USERPASS:
                return "user:password";
        }
        return "?";
}

void cfg_print_help(FILE *out) {
        fprintf(out, "Keys of conf/flinc-conf.yaml (flat 'key: value' lines; -D key=value "
                     "overrides):\n\n");
        for (size_t k = 0; k < CFG__MAX; k++) {
                const struct cfg_def *d = &defs[k];
                char extra[256] = "";
                if (d->type == CFG_T_ENUM) {
                        char allowed[200];
                        enum_allowed(d, allowed, sizeof(allowed));
                        snprintf(extra, sizeof(extra), "one of %s", allowed);
                }
                else if (d->type == CFG_T_INT || d->type == CFG_T_DURATION ||
                         d->type == CFG_T_SIZE || d->type == CFG_T_DOUBLE)
                        range_text(d, extra, sizeof(extra));
                char def[CFG_MAX_VALUE_BYTES + 64];
                struct value v = {0};
                bool alias;
                char why[256];
                if (parse_value((enum cfg_key)k, d->def, &v, &alias, why, sizeof(why)) == 0)
                        value_text((enum cfg_key)k, &v, false, def, sizeof(def));
                else
                        snprintf(def, sizeof(def), "%s", d->def);
                value_clear(&v);
                fprintf(out, "  %s\n      %s%s%s; default: %s%s\n      %s\n", d->name,
                        type_name(d->type), extra[0] ? ", " : "", extra,
                        def[0] ? def : "(empty)", (d->flags & CFG_F_FLINC) ? "; flinc's own key" : "",
                        d->doc);
        }
        fprintf(out, "\nOther names, read as the key they stand for (with a warning):\n");
        for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
                fprintf(out, "  %-48s -> %s\n", aliases[i].name, defs[aliases[i].key].name);
        fprintf(out, "\nFlink keys accepted and ignored, with a warning:\n");
        for (size_t i = 0; i < sizeof(ignored_keys) / sizeof(ignored_keys[0]); i++)
                fprintf(out, "  %s\n", ignored_keys[i].name);
        fprintf(out, "  %s*\n", JVM_PREFIX);
}
