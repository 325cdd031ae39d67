/* Job files: YAML (or a stored msgpack copy) read into a neutral node tree, validated
 * against one declarative operator table, and turned into a graph with derived
 * parallelism, edges and chains. The stored form mirrors the file so that decoding runs
 * the very checks that parsing does. */
#include "common/jobgraph.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>
#include <yaml.h>

#include "common/config.h"
#include "common/envelope.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/keygroup.h"
#include "common/msg.h"
#include "common/storage.h"

_Static_assert(JOB_MAX_PARALLELISM == KG_UPPER_BOUND_MAX_PARALLELISM,
               "job and key-group parallelism limits differ");
_Static_assert(sizeof(enum job_field) == sizeof(int) && sizeof(enum job_time) == sizeof(int) &&
               sizeof(enum job_window_type) == sizeof(int) &&
               sizeof(enum job_aggregate) == sizeof(int) &&
               sizeof(enum job_print_target) == sizeof(int),
               "enum parameters are stored as int");

#define MAX_MAP_KEYS 64     /* no map of the format has more */
#define MSG_QUOTE_BYTES 60  /* user text quoted in messages is cut to this */

/* ------------------------------------------------------------------------------------
 * An arena for the node tree: freed at once when a parse ends. */

struct arena_block {
        struct arena_block *next;
        size_t used;
        size_t cap;
        max_align_t data[];
};

struct arena {
        struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t n) {
        n = (n + 15) & ~(size_t)15;
        if (n == 0)
                n = 16;
        struct arena_block *b = a->head;
        if (!b || b->cap - b->used < n) {
                size_t cap = n > 65536 ? n : 65536;
                b = malloc(sizeof(*b) + cap);
                if (!b)
                        return NULL;
                b->next = a->head;
                b->used = 0;
                b->cap = cap;
                a->head = b;
        }
        void *p = (char *)b->data + b->used;
        b->used += n;
        return p;
}

static void arena_free(struct arena *a) {
        while (a->head) {
                struct arena_block *next = a->head->next;
                free(a->head);
                a->head = next;
        }
}

static char *arena_strndup(struct arena *a, const char *s, size_t len) {
        char *p = arena_alloc(a, len + 1);
        if (!p)
                return NULL;
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

/* ------------------------------------------------------------------------------------
 * The node tree both readers produce. YAML scalars stay text (typed where they are
 * used: `name: 2024` is a name, `parallelism: 2` a number); plain YAML nulls become
 * JN_NULL. msgpack values keep their types. */

enum jn_type { JN_NULL, JN_STR, JN_INT, JN_BOOL, JN_MAP, JN_SEQ, JN_OTHER };

struct jnode {
        enum jn_type type;
        bool plain;        /* JN_STR: an unquoted YAML scalar (may be read as a number) */
        uint32_t line;     /* 1-based; 0 when unknown (stored graphs) */
        size_t n;          /* JN_STR: bytes; JN_SEQ: items; JN_MAP: pairs */
        union {
                const char *str;      /* NUL-terminated after n bytes */
                int64_t i;
                bool b;
                struct jnode *items;  /* JN_SEQ: n; JN_MAP: 2n, key then value */
        } u;
};

static const struct jnode *map_key(const struct jnode *m, size_t i) {
        return &m->u.items[2 * i];
}

static const struct jnode *map_val(const struct jnode *m, size_t i) {
        return &m->u.items[2 * i + 1];
}

static const struct jnode *map_get(const struct jnode *m, const char *key) {
        if (!m || m->type != JN_MAP)
                return NULL;
        size_t klen = strlen(key);
        for (size_t i = 0; i < m->n; i++) {
                const struct jnode *k = map_key(m, i);
                if (k->n == klen && memcmp(k->u.str, key, klen) == 0)
                        return map_val(m, i);
        }
        return NULL;
}

/* ------------------------------------------------------------------------------------
 * Messages. */

struct origin {
        uint32_t line;
        char path[64];     /* "pipeline[3].count" */
};

struct ctx {
        const char *name;        /* the file, "request body", "job graph payload" */
        char *err;
        size_t err_len;
        bool payload;            /* reading a stored graph: jid allowed */
        struct origin *origins;  /* per vertex while parsing; NULL after */
        struct arena arena;
};

/* Copies text for a message: at most MSG_QUOTE_BYTES, control bytes as '?', cut on a
 * character boundary with "..." appended. */
static const char *quote(char *buf, size_t buf_len, const char *s, size_t len) {
        size_t max = MSG_QUOTE_BYTES < buf_len - 4 ? MSG_QUOTE_BYTES : buf_len - 4;
        bool cut = len > max;
        size_t n = cut ? max : len;
        if (cut)
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        if (cut) {
                memcpy(buf + n, "...", 3);
                n += 3;
        }
        buf[n] = '\0';
        return buf;
}

static int vfail(struct ctx *c, uint32_t line, const char *path, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int vfail(struct ctx *c, uint32_t line, const char *path, const char *fmt, va_list ap) {
        if (!c->err || c->err_len == 0)
                return -EINVAL;
        size_t off = 0;
        int w;
        if (line)
                w = snprintf(c->err, c->err_len, "%s:%" PRIu32 ": ", c->name, line);
        else
                w = snprintf(c->err, c->err_len, "%s: ", c->name);
        if (w > 0)
                off = (size_t)w < c->err_len ? (size_t)w : c->err_len - 1;
        if (path && *path && off < c->err_len) {
                w = snprintf(c->err + off, c->err_len - off, "%s: ", path);
                if (w > 0)
                        off += (size_t)w < c->err_len - off ? (size_t)w : c->err_len - off - 1;
        }
        if (off < c->err_len)
                vsnprintf(c->err + off, c->err_len - off, fmt, ap);
        return -EINVAL;
}

static int fail(struct ctx *c, const struct jnode *n, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *c, const struct jnode *n, const char *path, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(c, n ? n->line : 0, path, fmt, ap);
        va_end(ap);
        return r;
}

static int fail_line(struct ctx *c, uint32_t line, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail_line(struct ctx *c, uint32_t line, const char *path, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(c, line, path, fmt, ap);
        va_end(ap);
        return r;
}

/* "<origin path><suffix>" of vertex i, or "step '<id>'<suffix>" without origins. */
static int fail_vertex(struct ctx *c, const struct job_graph *g, size_t i, const char *suffix,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail_vertex(struct ctx *c, const struct job_graph *g, size_t i, const char *suffix,
                       const char *fmt, ...) {
        char path[128];
        uint32_t line = 0;
        if (c->origins) {
                line = c->origins[i].line;
                snprintf(path, sizeof(path), "%s%s", c->origins[i].path, suffix);
        } else {
                snprintf(path, sizeof(path), "step '%s'%s", g->vertices[i].id, suffix);
        }
        va_list ap;
        va_start(ap, fmt);
        int r = vfail(c, line, path, fmt, ap);
        va_end(ap);
        return r;
}

/* What a node is, for "expected X, got Y". */
static const char *describe(char *buf, size_t buf_len, const struct jnode *n) {
        char q[MSG_QUOTE_BYTES + 8];
        switch (n->type) {
        case JN_NULL: return "null (an empty value)";
        case JN_STR:
                snprintf(buf, buf_len, "'%s'", quote(q, sizeof(q), n->u.str, n->n));
                return buf;
        case JN_INT:
                snprintf(buf, buf_len, "%" PRId64, n->u.i);
                return buf;
        case JN_BOOL: return n->u.b ? "true" : "false";
        case JN_MAP: return "a map";
        case JN_SEQ: return "a list";
        case JN_OTHER: break;
        }
        return "a value of an unsupported type";
}

/* ------------------------------------------------------------------------------------
 * Text checks and scalar parsers. */

/* Well-formed UTF-8 without control characters (C0, DEL) or NUL. */
static bool text_ok(const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f)
                                return false;
                        i++;
                        continue;
                }
                size_t need;
                unsigned char lo = 0x80, hi = 0xbf;
                if (c >= 0xc2 && c <= 0xdf)
                        need = 1;
                else if (c >= 0xe0 && c <= 0xef) {
                        need = 2;
                        if (c == 0xe0)
                                lo = 0xa0;
                        else if (c == 0xed)
                                hi = 0x9f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        need = 3;
                        if (c == 0xf0)
                                lo = 0x90;
                        else if (c == 0xf4)
                                hi = 0x8f;
                } else
                        return false;
                if (len - i <= need)
                        return false;
                for (size_t k = 1; k <= need; k++) {
                        unsigned char b = s[i + k];
                        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf))
                                return false;
                }
                i += need + 1;
        }
        return true;
}

static bool id_chars_ok(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static bool symbol_ok(const char *s, size_t len) {
        if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_'))
                        return false;
        }
        return true;
}

/* A host name or an IPv4/IPv6 address (no brackets), by its characters only. */
static bool host_ok(const char *s, size_t len) {
        if (len == 0 || len > 253 || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_' || c == ':' || c == '%'))
                        return false;
        }
        return true;
}

/* Strict decimal: optional '-', digits. 0, -EINVAL or -ERANGE. */
static int parse_int64(const char *s, size_t len, int64_t *ret) {
        size_t i = 0;
        bool neg = false;
        if (i < len && s[i] == '-') {
                neg = true;
                i++;
        }
        if (i == len)
                return -EINVAL;
        uint64_t v = 0;
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (neg) {
                if (v > (uint64_t)INT64_MAX + 1)
                        return -ERANGE;
                *ret = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        } else {
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t)v;
        }
        return 0;
}

/* Durations and sizes in Flink's forms, through common/config.h's parsers (bare numbers
 * are milliseconds and bytes). Node strings are NUL-terminated after len bytes; one with
 * a NUL inside is no duration. */
static int parse_duration_ms(const char *s, size_t len, int64_t *ret_ms) {
        if (memchr(s, '\0', len) || s[len] != '\0')
                return -EINVAL;
        return cfg_parse_duration_ms(s, ret_ms);
}

static int parse_size_bytes(const char *s, size_t len, int64_t *ret_bytes) {
        if (memchr(s, '\0', len) || s[len] != '\0')
                return -EINVAL;
        return cfg_parse_size_bytes(s, ret_bytes);
}

/* "10 min", "1 s", "250 ms": the largest unit that divides the value. */
static const char *fmt_duration(char *buf, size_t len, int64_t ms) {
        static const struct { int64_t n; const char *u; } units[] = {
                {86400000, "d"}, {3600000, "h"}, {60000, "min"}, {1000, "s"}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (ms != 0 && ms % units[i].n == 0) {
                        snprintf(buf, len, "%" PRId64 " %s", ms / units[i].n, units[i].u);
                        return buf;
                }
        snprintf(buf, len, "%" PRId64 " ms", ms);
        return buf;
}

static const char *fmt_size(char *buf, size_t len, int64_t bytes) {
        static const struct { unsigned shift; const char *u; } units[] = {
                {40, "tb"}, {30, "gb"}, {20, "mb"}, {10, "kb"}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                int64_t unit = (int64_t)1 << units[i].shift;
                if (bytes != 0 && bytes % unit == 0) {
                        snprintf(buf, len, "%" PRId64 " %s", bytes / unit, units[i].u);
                        return buf;
                }
        }
        snprintf(buf, len, "%" PRId64 " b", bytes);
        return buf;
}

/* ------------------------------------------------------------------------------------
 * The operator table: one entry per kind, each parameter with its type, default and
 * range. Parsing, decoding, checks, plans and the schema listing all read it. */

enum ptype { PT_INT, PT_DURATION, PT_SIZE, PT_BOOL, PT_ENUM, PT_STRING, PT_URI, PT_SYMBOL,
             PT_HOST };

static const char *const ptype_names[] = {
        [PT_INT] = "int",       [PT_DURATION] = "duration", [PT_SIZE] = "size",
        [PT_BOOL] = "bool",     [PT_ENUM] = "enum",         [PT_STRING] = "string",
        [PT_URI] = "uri",       [PT_SYMBOL] = "symbol",     [PT_HOST] = "host",
};

struct choice {
        const char *name;
        int value;
};

#define PF_REQUIRED  0x1u  /* must be given */
#define PF_NODEFAULT 0x2u  /* optional without a default: absent means "not given" */

struct param_def {
        const char *name;
        enum ptype type;
        size_t offset;                 /* of the value in struct job_vertex */
        unsigned flags;
        int64_t def;                   /* INT, DURATION, SIZE, BOOL, ENUM (a value) */
        const char *def_str;           /* STRING, HOST */
        int64_t min, max;              /* INT, DURATION, SIZE */
        const struct choice *choices;  /* ENUM; ends with a NULL name */
        const char *doc;
};

struct kind_def {
        const char *key;               /* the step's key in a job file */
        const char *type;              /* sinks: the value of `type`; else NULL */
        const char *name;              /* job_op_kind_name() */
        enum job_op_category cat;
        const struct param_def *params;
        size_t n_params;
        const char *doc;
};

#define VOFF(member) offsetof(struct job_vertex, params.member)
#define DAY_MS ((int64_t)86400000)

static const struct choice field_choices[] = {
        {"word", JOB_FIELD_WORD}, {"key", JOB_FIELD_KEY}, {"value", JOB_FIELD_VALUE}, {NULL, 0}};
static const struct choice agg_field_choices[] = {
        {"value", JOB_FIELD_VALUE}, {"word", JOB_FIELD_WORD}, {NULL, 0}};
static const struct choice window_type_choices[] = {
        {"tumbling", JOB_WINDOW_TUMBLING}, {"sliding", JOB_WINDOW_SLIDING}, {NULL, 0}};
static const struct choice time_choices[] = {
        {"processing", JOB_TIME_PROCESSING}, {"event", JOB_TIME_EVENT}, {NULL, 0}};
static const struct choice aggregate_choices[] = {
        {"count", JOB_AGG_COUNT}, {"sum", JOB_AGG_SUM}, {"min", JOB_AGG_MIN},
        {"max", JOB_AGG_MAX},     {"reduce", JOB_AGG_REDUCE}, {NULL, 0}};
static const struct choice timestamps_choices[] = {
        {"none", JOB_TS_NONE}, {"leading", JOB_TS_LEADING}, {NULL, 0}};
static const struct choice print_target_choices[] = {
        {"stdout", JOB_PRINT_STDOUT}, {"stderr", JOB_PRINT_STDERR}, {NULL, 0}};
static const struct choice partitioning_choices[] = {
        {"forward", JOB_PART_FORWARD}, {"rebalance", JOB_PART_REBALANCE},
        {"broadcast", JOB_PART_BROADCAST}, {NULL, 0}};
static const struct choice cp_mode_choices[] = {
        {"EXACTLY_ONCE", JOB_CP_EXACTLY_ONCE}, {"AT_LEAST_ONCE", JOB_CP_AT_LEAST_ONCE}, {NULL, 0}};
static const struct choice restart_choices[] = {
        {"none", JOB_RESTART_NONE},   {"fixed-delay", JOB_RESTART_FIXED_DELAY},
        {"off", JOB_RESTART_NONE},    {"disable", JOB_RESTART_NONE},
        {"fixeddelay", JOB_RESTART_FIXED_DELAY}, {NULL, 0}};

static const struct param_def generator_params[] = {
        {.name = "seed", .type = PT_INT, .offset = VOFF(generator.seed), .def = 0, .min = 0,
         .max = INT64_MAX, .doc = "seed of the word sequence: equal seeds, equal records"},
        {.name = "words", .type = PT_INT, .offset = VOFF(generator.words), .def = 1000,
         .min = 1, .max = 10000000, .doc = "vocabulary size"},
        {.name = "rate", .type = PT_INT, .offset = VOFF(generator.rate_per_s), .def = 0,
         .min = 0, .max = 1000000000,
         .doc = "records per second for the whole source; 0 = unlimited"},
        {.name = "count", .type = PT_INT, .offset = VOFF(generator.count), .def = 0, .min = 0,
         .max = INT64_MAX, .doc = "records in all; 0 = unbounded"},
        {.name = "line_words", .type = PT_INT, .offset = VOFF(generator.line_words), .def = 1,
         .min = 1, .max = 1000, .doc = "words per record"},
        {.name = "event_time_step", .type = PT_DURATION,
         .offset = VOFF(generator.event_time_step_ms), .def = 0, .min = 0, .max = DAY_MS,
         .doc = "event time: record n at 10^12 + n * step ms (0: the wall clock)"},
        {.name = "out_of_order", .type = PT_DURATION, .offset = VOFF(generator.out_of_order_ms),
         .def = 0, .min = 0, .max = DAY_MS,
         .doc = "event_time_step only: each record up to this much earlier (a hash of seed, n)"},
};
static const struct param_def file_source_params[] = {
        {.name = "path", .type = PT_URI, .offset = VOFF(file_source.path), .flags = PF_REQUIRED,
         .doc = "file of lines to read (file:///absolute/path)"},
        {.name = "timestamps", .type = PT_ENUM, .offset = VOFF(file_source.timestamps),
         .def = JOB_TS_NONE, .choices = timestamps_choices,
         .doc = "leading: each line starts with its event time in epoch ms and whitespace"},
};
static const struct param_def socket_params[] = {
        {.name = "host", .type = PT_HOST, .offset = VOFF(socket.host), .def_str = "localhost",
         .doc = "server to read lines from"},
        {.name = "port", .type = PT_INT, .offset = VOFF(socket.port), .flags = PF_REQUIRED,
         .min = 1, .max = 65535, .doc = "its TCP port"},
};
static const struct param_def tokenize_params[] = {
        {.name = "lowercase", .type = PT_BOOL, .offset = VOFF(tokenize.lowercase), .def = 1,
         .doc = "lower-case the words"},
};
static const struct param_def udf_params[] = {
        {.name = "udf", .type = PT_SYMBOL, .offset = VOFF(udf.udf), .flags = PF_REQUIRED,
         .doc = "function exported by an artifact"},
};
static const struct param_def key_by_params[] = {
        {.name = "field", .type = PT_ENUM, .offset = VOFF(key_by.field), .flags = PF_NODEFAULT,
         .choices = field_choices, .doc = "the record's field that is the key"},
        {.name = "udf", .type = PT_SYMBOL, .offset = VOFF(key_by.udf), .flags = PF_NODEFAULT,
         .doc = "key selector exported by an artifact (instead of field)"},
};
static const struct param_def agg_params[] = {
        {.name = "field", .type = PT_ENUM, .offset = VOFF(agg.field), .def = JOB_FIELD_VALUE,
         .choices = agg_field_choices,
         .doc = "the number aggregated: the value, or the text read as an int64"},
};
static const struct param_def window_params[] = {
        {.name = "type", .type = PT_ENUM, .offset = VOFF(window.type), .flags = PF_REQUIRED,
         .choices = window_type_choices, .doc = "tumbling or sliding windows"},
        {.name = "size", .type = PT_DURATION, .offset = VOFF(window.size_ms),
         .flags = PF_REQUIRED, .min = 1, .max = 365 * DAY_MS, .doc = "window length"},
        {.name = "slide", .type = PT_DURATION, .offset = VOFF(window.slide_ms),
         .flags = PF_NODEFAULT, .min = 1, .max = 365 * DAY_MS,
         .doc = "distance between window starts (sliding only)"},
        {.name = "time", .type = PT_ENUM, .offset = VOFF(window.time), .def = JOB_TIME_PROCESSING,
         .choices = time_choices, .doc = "processing time or event time"},
        {.name = "out_of_orderness", .type = PT_DURATION,
         .offset = VOFF(window.out_of_orderness_ms), .def = 0, .min = 0, .max = DAY_MS,
         .doc = "how late an event may come (event time only)"},
        {.name = "aggregate", .type = PT_ENUM, .offset = VOFF(window.aggregate),
         .def = JOB_AGG_COUNT, .choices = aggregate_choices, .doc = "what a window emits"},
        {.name = "field", .type = PT_ENUM, .offset = VOFF(window.field), .def = JOB_FIELD_VALUE,
         .choices = agg_field_choices, .doc = "the number aggregated (sum, min, max)"},
        {.name = "udf", .type = PT_SYMBOL, .offset = VOFF(window.udf), .flags = PF_NODEFAULT,
         .doc = "reduce function exported by an artifact (aggregate reduce)"},
};
static const struct param_def print_params[] = {
        {.name = "target", .type = PT_ENUM, .offset = VOFF(print.target), .def = JOB_PRINT_STDOUT,
         .choices = print_target_choices, .doc = "the worker's stdout or stderr"},
};
static const struct param_def discard_params[] = {
        {.name = "rate", .type = PT_INT, .offset = VOFF(discard.rate_per_s), .def = 0, .min = 0,
         .max = 1000000000,
         .doc = "records per second the whole sink accepts (testing aid: a slow sink); "
                "0 = unlimited"},
};
static const struct param_def file_sink_params[] = {
        {.name = "path", .type = PT_URI, .offset = VOFF(file_sink.path), .flags = PF_REQUIRED,
         .doc = "directory of part files (file:///absolute/path)"},
        {.name = "part_size", .type = PT_SIZE, .offset = VOFF(file_sink.part_size_bytes),
         .def = (int64_t)128 << 20, .min = 1024, .max = (int64_t)1 << 40,
         .doc = "a part file rolls at this size (and at every checkpoint)"},
};

#define PARAMS(a) a, sizeof(a) / sizeof(a[0])
static const struct kind_def kinds[JOB_OP__COUNT] = {
        [JOB_OP_GENERATOR] = {"generator", NULL, "generator", JOB_CAT_SOURCE,
                              PARAMS(generator_params),
                              "deterministic, replayable words from a vocabulary"},
        [JOB_OP_FILE_SOURCE] = {"file", NULL, "file", JOB_CAT_SOURCE, PARAMS(file_source_params),
                                "lines of a file (bounded)"},
        [JOB_OP_SOCKET] = {"socket", NULL, "socket", JOB_CAT_SOURCE, PARAMS(socket_params),
                           "lines from a TCP server (unbounded, parallelism 1)"},
        [JOB_OP_TOKENIZE] = {"tokenize", NULL, "tokenize", JOB_CAT_TRANSFORM,
                             PARAMS(tokenize_params),
                             "splits text into words at non-alphanumeric characters"},
        [JOB_OP_MAP] = {"map", NULL, "map", JOB_CAT_TRANSFORM, PARAMS(udf_params),
                        "one record out per record in (UDF)"},
        [JOB_OP_FLAT_MAP] = {"flat_map", NULL, "flat_map", JOB_CAT_TRANSFORM, PARAMS(udf_params),
                             "any number of records out per record in (UDF)"},
        [JOB_OP_FILTER] = {"filter", NULL, "filter", JOB_CAT_TRANSFORM, PARAMS(udf_params),
                           "keeps the records the UDF accepts"},
        [JOB_OP_KEY_BY] = {"key_by", NULL, "key_by", JOB_CAT_TRANSFORM, PARAMS(key_by_params),
                           "keys records; its output is hash-partitioned by key group"},
        [JOB_OP_UNION] = {"union", NULL, "union", JOB_CAT_TRANSFORM, NULL, 0,
                          "merges 1..64 inputs"},
        [JOB_OP_COUNT] = {"count", NULL, "count", JOB_CAT_KEYED, NULL, 0,
                          "emits (key, running count)"},
        [JOB_OP_SUM] = {"sum", NULL, "sum", JOB_CAT_KEYED, PARAMS(agg_params),
                        "emits (key, running sum)"},
        [JOB_OP_MIN] = {"min", NULL, "min", JOB_CAT_KEYED, PARAMS(agg_params),
                        "emits (key, running minimum)"},
        [JOB_OP_MAX] = {"max", NULL, "max", JOB_CAT_KEYED, PARAMS(agg_params),
                        "emits (key, running maximum)"},
        [JOB_OP_REDUCE] = {"reduce", NULL, "reduce", JOB_CAT_KEYED, PARAMS(udf_params),
                           "emits (key, running reduction) (UDF)"},
        [JOB_OP_WINDOW] = {"window", NULL, "window", JOB_CAT_WINDOW, PARAMS(window_params),
                           "keyed tumbling or sliding windows with an aggregate"},
        [JOB_OP_PRINT_SINK] = {"sink", "print", "sink:print", JOB_CAT_SINK, PARAMS(print_params),
                               "writes records as text lines to the worker's stdout"},
        [JOB_OP_DISCARD_SINK] = {"sink", "discard", "sink:discard", JOB_CAT_SINK,
                                 PARAMS(discard_params),
                                 "drops records (benchmarks)"},
        [JOB_OP_FILE_SINK] = {"sink", "file", "sink:file", JOB_CAT_SINK, PARAMS(file_sink_params),
                              "part files in a directory, committed exactly once"},
};

static const char *const step_keys[] = {
        "generator", "file", "socket", "tokenize", "map", "flat_map", "filter", "key_by",
        "union", "count", "sum", "min", "max", "reduce", "window", "sink", NULL};

static const char *const category_names[] = {
        [JOB_CAT_SOURCE] = "source", [JOB_CAT_TRANSFORM] = "transform",
        [JOB_CAT_KEYED] = "keyed",   [JOB_CAT_WINDOW] = "window", [JOB_CAT_SINK] = "sink"};

static const char *const partitioning_names[] = {
        [JOB_PART_FORWARD] = "FORWARD", [JOB_PART_HASH] = "HASH",
        [JOB_PART_REBALANCE] = "REBALANCE", [JOB_PART_BROADCAST] = "BROADCAST"};

const char *job_op_kind_name(enum job_op_kind kind) {
        return (unsigned)kind < JOB_OP__COUNT ? kinds[kind].name : "?";
}

enum job_op_category job_op_kind_category(enum job_op_kind kind) {
        return (unsigned)kind < JOB_OP__COUNT ? kinds[kind].cat : JOB_CAT_TRANSFORM;
}

const char *job_partitioning_name(enum job_partitioning p) {
        return (unsigned)p <= JOB_PART_BROADCAST ? partitioning_names[p] : "?";
}

static const char *choice_name(const struct choice *ch, int value) {
        for (; ch->name; ch++)
                if (ch->value == value)
                        return ch->name;
        return "?";
}

/* "a, b, c" of a NULL-terminated list of names, cut to fit. */
static const char *list_names(char *buf, size_t len, const char *const *names) {
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; names[i] && off < len; i++) {
                int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", names[i]);
                if (w < 0)
                        break;
                off += (size_t)w;
        }
        return buf;
}

/* The canonical choices (aliases, which map to a value listed earlier, are left out). */
static const char *list_choices(char *buf, size_t len, const struct choice *ch) {
        const char *names[16];
        size_t n = 0;
        for (size_t i = 0; ch[i].name && n < 15; i++) {
                bool alias = false;
                for (size_t k = 0; k < i; k++)
                        alias |= ch[k].value == ch[i].value;
                if (!alias)
                        names[n++] = ch[i].name;
        }
        names[n] = NULL;
        return list_names(buf, len, names);
}

static char **param_str_slot(struct job_vertex *v, const struct param_def *pd) {
        return (char **)(void *)((char *)v + pd->offset);
}

static bool ptype_is_text(enum ptype t) {
        return t == PT_STRING || t == PT_URI || t == PT_SYMBOL || t == PT_HOST;
}

static void vertex_free_params(struct job_vertex *v) {
        if ((unsigned)v->kind >= JOB_OP__COUNT)
                return;
        const struct kind_def *k = &kinds[v->kind];
        for (size_t i = 0; i < k->n_params; i++)
                if (ptype_is_text(k->params[i].type)) {
                        char **slot = param_str_slot(v, &k->params[i]);
                        free(*slot);
                        *slot = NULL;
                }
}

/* ------------------------------------------------------------------------------------
 * Typed reads of nodes, each failing with "<path>: expected ..., got ...". */

static int get_int(struct ctx *c, const struct jnode *n, const char *path, int64_t min,
                   int64_t max, int64_t *ret) {
        char d[MSG_QUOTE_BYTES + 16];
        int64_t x;
        if (n->type == JN_INT)
                x = n->u.i;
        else if (n->type == JN_STR && n->plain) {
                int r = parse_int64(n->u.str, n->n, &x);
                if (r == -ERANGE)
                        return fail(c, n, path, "%s is out of range %" PRId64 "..%" PRId64,
                                    describe(d, sizeof(d), n), min, max);
                if (r < 0)
                        return fail(c, n, path, "expected an integer %" PRId64 "..%" PRId64
                                    ", got %s", min, max, describe(d, sizeof(d), n));
        } else if (n->type == JN_STR && n->line && parse_int64(n->u.str, n->n, &x) == 0) {
                return fail(c, n, path, "expected an integer %" PRId64 "..%" PRId64
                            ", got the quoted string %s (write numbers without quotes)", min,
                            max, describe(d, sizeof(d), n));
        } else
                return fail(c, n, path, "expected an integer %" PRId64 "..%" PRId64 ", got %s",
                            min, max, describe(d, sizeof(d), n));
        if (x < min || x > max)
                return fail(c, n, path, "%" PRId64 " is out of range %" PRId64 "..%" PRId64, x,
                            min, max);
        *ret = x;
        return 0;
}

static int get_duration(struct ctx *c, const struct jnode *n, const char *path, int64_t min,
                        int64_t max, int64_t *ret_ms) {
        char d[MSG_QUOTE_BYTES + 16], a[32], b[32];
        int64_t x;
        if (n->type == JN_INT)
                x = n->u.i;
        else if (n->type == JN_STR) {
                int r = parse_duration_ms(n->u.str, n->n, &x);
                if (r == -ERANGE)
                        return fail(c, n, path, "%s is out of range %s..%s",
                                    describe(d, sizeof(d), n), fmt_duration(a, sizeof(a), min),
                                    fmt_duration(b, sizeof(b), max));
                if (r < 0)
                        return fail(c, n, path,
                                    "expected a duration such as 500 ms, 10 s or 1 min, got %s",
                                    describe(d, sizeof(d), n));
        } else
                return fail(c, n, path, "expected a duration such as 500 ms, 10 s or 1 min, got %s",
                            describe(d, sizeof(d), n));
        if (x < min || x > max)
                return fail(c, n, path, "%s is out of range %s..%s", describe(d, sizeof(d), n),
                            fmt_duration(a, sizeof(a), min), fmt_duration(b, sizeof(b), max));
        *ret_ms = x;
        return 0;
}

static int get_size(struct ctx *c, const struct jnode *n, const char *path, int64_t min,
                    int64_t max, int64_t *ret_bytes) {
        char d[MSG_QUOTE_BYTES + 16], a[32], b[32];
        int64_t x;
        if (n->type == JN_INT)
                x = n->u.i;
        else if (n->type == JN_STR) {
                int r = parse_size_bytes(n->u.str, n->n, &x);
                if (r == -ERANGE)
                        return fail(c, n, path, "%s is out of range %s..%s",
                                    describe(d, sizeof(d), n), fmt_size(a, sizeof(a), min),
                                    fmt_size(b, sizeof(b), max));
                if (r < 0)
                        return fail(c, n, path,
                                    "expected a size such as 512 kb, 64 mb or 1 gb, got %s",
                                    describe(d, sizeof(d), n));
        } else
                return fail(c, n, path, "expected a size such as 512 kb, 64 mb or 1 gb, got %s",
                            describe(d, sizeof(d), n));
        if (x < min || x > max)
                return fail(c, n, path, "%s is out of range %s..%s", describe(d, sizeof(d), n),
                            fmt_size(a, sizeof(a), min), fmt_size(b, sizeof(b), max));
        *ret_bytes = x;
        return 0;
}

static int get_bool(struct ctx *c, const struct jnode *n, const char *path, bool *ret) {
        char d[MSG_QUOTE_BYTES + 16];
        if (n->type == JN_BOOL) {
                *ret = n->u.b;
                return 0;
        }
        if (n->type == JN_STR && n->plain) {
                if (n->n == 4 && strncasecmp(n->u.str, "true", 4) == 0) {
                        *ret = true;
                        return 0;
                }
                if (n->n == 5 && strncasecmp(n->u.str, "false", 5) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return fail(c, n, path, "expected true or false, got %s", describe(d, sizeof(d), n));
}

static int get_enum(struct ctx *c, const struct jnode *n, const char *path,
                    const struct choice *choices, int *ret) {
        char d[MSG_QUOTE_BYTES + 16], l[256];
        if (n->type != JN_STR)
                return fail(c, n, path, "expected one of %s, got %s",
                            list_choices(l, sizeof(l), choices), describe(d, sizeof(d), n));
        for (const struct choice *ch = choices; ch->name; ch++)
                if (strlen(ch->name) == n->n && strncasecmp(ch->name, n->u.str, n->n) == 0) {
                        *ret = ch->value;
                        return 0;
                }
        return fail(c, n, path, "%s is not one of %s", describe(d, sizeof(d), n),
                    list_choices(l, sizeof(l), choices));
}

/* A non-empty string of at most max_len bytes of text (what says what is expected). */
static int get_text(struct ctx *c, const struct jnode *n, const char *path, size_t max_len,
                    const char *what, const char **ret, size_t *ret_len) {
        char d[MSG_QUOTE_BYTES + 16];
        if (n->type != JN_STR)
                return fail(c, n, path, "expected %s, got %s", what, describe(d, sizeof(d), n));
        if (n->n == 0)
                return fail(c, n, path, "expected %s, got an empty string", what);
        if (n->n > max_len)
                return fail(c, n, path, "is %zu bytes long; at most %zu are allowed", n->n,
                            max_len);
        if (!text_ok(n->u.str, n->n))
                return fail(c, n, path, "%s holds a control character or is not valid UTF-8",
                            describe(d, sizeof(d), n));
        *ret = n->u.str;
        *ret_len = n->n;
        return 0;
}

/* Reads one parameter into v (a text value is strdup'ed into its slot, which the caller
 * made free: empty, or owned elsewhere). */
static int read_param(struct ctx *c, struct job_vertex *v, const struct param_def *pd,
                      const struct jnode *n, const char *path) {
        char *slot = (char *)v + pd->offset;
        char d[MSG_QUOTE_BYTES + 16];
        int r;
        switch (pd->type) {
        case PT_INT:
        case PT_DURATION:
        case PT_SIZE: {
                int64_t x = 0;
                if (pd->type == PT_INT)
                        r = get_int(c, n, path, pd->min, pd->max, &x);
                else if (pd->type == PT_DURATION)
                        r = get_duration(c, n, path, pd->min, pd->max, &x);
                else
                        r = get_size(c, n, path, pd->min, pd->max, &x);
                if (r < 0)
                        return r;
                memcpy(slot, &x, sizeof(x));
                return 0;
        }
        case PT_BOOL: {
                bool b = false;
                r = get_bool(c, n, path, &b);
                if (r < 0)
                        return r;
                memcpy(slot, &b, sizeof(b));
                return 0;
        }
        case PT_ENUM: {
                int e = 0;
                r = get_enum(c, n, path, pd->choices, &e);
                if (r < 0)
                        return r;
                memcpy(slot, &e, sizeof(e));
                return 0;
        }
        case PT_STRING:
        case PT_URI:
        case PT_SYMBOL:
        case PT_HOST:
                break;
        }
        const char *s;
        size_t len;
        const char *what = pd->type == PT_URI    ? "a file:///absolute/path URI"
                           : pd->type == PT_SYMBOL ? "a C symbol name"
                           : pd->type == PT_HOST   ? "a host name or IP address"
                                                   : "a string";
        r = get_text(c, n, path, pd->type == PT_SYMBOL ? JOB_NAME_MAX : JOB_STRING_MAX, what, &s,
                     &len);
        if (r < 0)
                return r;
        if (pd->type == PT_SYMBOL && !symbol_ok(s, len))
                return fail(c, n, path,
                            "%s is not a C symbol name (letters, digits and '_', not starting "
                            "with a digit)", describe(d, sizeof(d), n));
        if (pd->type == PT_HOST && !host_ok(s, len))
                return fail(c, n, path, "%s is not a host name or IP address",
                            describe(d, sizeof(d), n));
        if (pd->type == PT_URI) {
                char local[JOB_STRING_MAX + 1], why[256];
                /* s is NUL-terminated after len bytes (node strings always are). */
                r = storage_uri_to_path(s, local, sizeof(local), why, sizeof(why));
                if (r < 0)
                        return fail(c, n, path, "%s", why);
        }
        char *copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        memcpy(slot, &copy, sizeof(copy));
        return 0;
}

/* Applies the default of a parameter that was not given. */
static int default_param(struct job_vertex *v, const struct param_def *pd) {
        char *slot = (char *)v + pd->offset;
        if (pd->flags & (PF_REQUIRED | PF_NODEFAULT))
                return 0;
        switch (pd->type) {
        case PT_INT:
        case PT_DURATION:
        case PT_SIZE:
                memcpy(slot, &pd->def, sizeof(pd->def));
                return 0;
        case PT_BOOL: {
                bool b = pd->def != 0;
                memcpy(slot, &b, sizeof(b));
                return 0;
        }
        case PT_ENUM: {
                int e = (int)pd->def;
                memcpy(slot, &e, sizeof(e));
                return 0;
        }
        case PT_STRING:
        case PT_URI:
        case PT_SYMBOL:
        case PT_HOST:
                break;
        }
        if (!pd->def_str)
                return 0;
        char *copy = strdup(pd->def_str);
        if (!copy)
                return -ENOMEM;
        memcpy(slot, &copy, sizeof(copy));
        return 0;
}

/* ------------------------------------------------------------------------------------
 * Steps. */

static const char *type_desc(char *buf, size_t len, const struct param_def *pd) {
        char a[32], b[32], l[200];
        switch (pd->type) {
        case PT_INT:
                snprintf(buf, len, "an integer %" PRId64 "..%" PRId64, pd->min, pd->max);
                break;
        case PT_DURATION:
                snprintf(buf, len, "a duration %s..%s", fmt_duration(a, sizeof(a), pd->min),
                         fmt_duration(b, sizeof(b), pd->max));
                break;
        case PT_SIZE:
                snprintf(buf, len, "a size %s..%s", fmt_size(a, sizeof(a), pd->min),
                         fmt_size(b, sizeof(b), pd->max));
                break;
        case PT_BOOL: snprintf(buf, len, "true or false"); break;
        case PT_ENUM:
                snprintf(buf, len, "one of %s", list_choices(l, sizeof(l), pd->choices));
                break;
        case PT_STRING: snprintf(buf, len, "a string"); break;
        case PT_URI: snprintf(buf, len, "a file:///absolute/path URI"); break;
        case PT_SYMBOL: snprintf(buf, len, "a function name exported by an artifact"); break;
        case PT_HOST: snprintf(buf, len, "a host name or IP address"); break;
        }
        return buf;
}

static int param_index(enum job_op_kind kind, const char *name) {
        const struct kind_def *k = &kinds[kind];
        for (size_t i = 0; i < k->n_params; i++)
                if (strcmp(k->params[i].name, name) == 0)
                        return (int)i;
        return -1;
}

static bool param_given(const struct job_vertex *v, const char *name) {
        int i = param_index(v->kind, name);
        return i >= 0 && (v->params_set & (1u << i));
}

static bool vertex_has_udf(const struct job_vertex *v) {
        const struct kind_def *k = &kinds[v->kind];
        for (size_t i = 0; i < k->n_params; i++)
                if (k->params[i].type == PT_SYMBOL && (v->params_set & (1u << i)))
                        return true;
        return false;
}

/* "<path>.<leaf>", or just leaf when path is empty. */
static const char *subpath(char *buf, size_t len, const char *path, const char *leaf) {
        if (*path)
                snprintf(buf, len, "%s.%s", path, leaf);
        else
                snprintf(buf, len, "%s", leaf);
        return buf;
}

/* Rules between the parameters of one step; path is the step's ("pipeline[2].key_by"). */
static int check_step(struct ctx *c, const struct job_vertex *v, uint32_t line,
                      const char *path, size_t n_artifacts) {
        char p[128];
        if (v->kind == JOB_OP_KEY_BY) {
                bool f = param_given(v, "field"), u = param_given(v, "udf");
                if (f && u)
                        return fail_line(c, line, path, "give field or udf, not both");
                if (!f && !u)
                        return fail_line(c, line, path,
                                         "needs field (word, key or value) or udf (a key "
                                         "selector exported by an artifact)");
        }
        if (v->kind == JOB_OP_WINDOW) {
                const struct job_window_params *w = &v->params.window;
                if (w->type == JOB_WINDOW_SLIDING && !param_given(v, "slide"))
                        return fail_line(c, line, subpath(p, sizeof(p), path, "slide"),
                                         "required for sliding windows: a duration 1 ms..365 d");
                if (w->type == JOB_WINDOW_TUMBLING && param_given(v, "slide"))
                        return fail_line(c, line, subpath(p, sizeof(p), path, "slide"),
                                         "only sliding windows have a slide");
                if (w->time != JOB_TIME_EVENT && param_given(v, "out_of_orderness"))
                        return fail_line(c, line, subpath(p, sizeof(p), path, "out_of_orderness"),
                                         "only for event time (time: event)");
                bool reduce = w->aggregate == JOB_AGG_REDUCE;
                if (reduce && !param_given(v, "udf"))
                        return fail_line(c, line, subpath(p, sizeof(p), path, "udf"),
                                         "required for aggregate reduce: a function name "
                                         "exported by an artifact");
                if (!reduce && param_given(v, "udf"))
                        return fail_line(c, line, subpath(p, sizeof(p), path, "udf"),
                                         "only for aggregate reduce");
                if (param_given(v, "field") && w->aggregate != JOB_AGG_SUM &&
                    w->aggregate != JOB_AGG_MIN && w->aggregate != JOB_AGG_MAX)
                        return fail_line(c, line, subpath(p, sizeof(p), path, "field"),
                                         "only for aggregate sum, min or max");
        }
        if (vertex_has_udf(v) && n_artifacts == 0)
                return fail_line(c, line, subpath(p, sizeof(p), path, "udf"),
                                 "needs a UDF library: list it under artifacts at the top "
                                 "level");
        return 0;
}

static const char *const common_keys[] = {"id", "name", "parallelism", "partitioning"};

/* Parses one step into v (zeroed by the caller) and o; *ret_inputs gets its `inputs`
 * node (graph form) or NULL. */
static int parse_step(struct ctx *c, const struct jnode *step, const char *list, size_t index,
                      bool graph_form, struct job_vertex *v, struct origin *o,
                      const struct jnode **ret_inputs) {
        char path[32], p[128], d[MSG_QUOTE_BYTES + 16], l[512];
        snprintf(path, sizeof(path), "%s[%zu]", list, index);
        const struct jnode *keynode, *params = NULL;
        int r;
        *ret_inputs = NULL;
        o->line = step->line;
        if (step->type == JN_STR) {
                keynode = step;
        } else if (step->type == JN_MAP && step->n == 1) {
                keynode = map_key(step, 0);
                params = map_val(step, 0);
        } else if (step->type == JN_MAP && step->n == 0) {
                return fail(c, step, path,
                            "expected a step such as `- count: {}`, got an empty map");
        } else if (step->type == JN_MAP) {
                char q[MSG_QUOTE_BYTES + 8];
                return fail(c, step, path,
                            "a step is a map of one key, its operator, to the operator's "
                            "parameters; this one has %zu keys ('%s', ...): indent the "
                            "parameters under the operator, e.g. `- count: { name: c }`",
                            step->n, quote(q, sizeof(q), map_key(step, 0)->u.str,
                                           map_key(step, 0)->n));
        } else {
                return fail(c, step, path,
                            "expected a step such as `- count: {}` or "
                            "`- key_by: { field: word }`, got %s", describe(d, sizeof(d), step));
        }
        size_t ki = 0;
        for (; step_keys[ki]; ki++)
                if (strlen(step_keys[ki]) == keynode->n &&
                    memcmp(step_keys[ki], keynode->u.str, keynode->n) == 0)
                        break;
        if (!step_keys[ki])
                return fail(c, keynode, path, "unknown operator %s (operators: %s)",
                            describe(d, sizeof(d), keynode), list_names(l, sizeof(l), step_keys));
        const char *key = step_keys[ki];
        snprintf(o->path, sizeof(o->path), "%s.%s", path, key);
        if (params && params->type == JN_NULL)
                params = NULL;
        if (params && params->type != JN_MAP)
                return fail(c, params, o->path, "expected a map of parameters, got %s",
                            describe(d, sizeof(d), params));

        /* The kind; a sink's comes from its type. */
        bool sink = strcmp(key, "sink") == 0;
        int kind = -1;
        if (sink) {
                static const struct choice sink_types[] = {
                        {"print", JOB_OP_PRINT_SINK}, {"discard", JOB_OP_DISCARD_SINK},
                        {"file", JOB_OP_FILE_SINK}, {NULL, 0}};
                const struct jnode *t = map_get(params, "type");
                snprintf(p, sizeof(p), "%s.type", o->path);
                if (!t)
                        return fail(c, params ? params : step, p,
                                    "required: print, discard or file");
                r = get_enum(c, t, p, sink_types, &kind);
                if (r < 0)
                        return r;
        } else {
                for (int k = 0; k < JOB_OP__COUNT; k++)
                        if (strcmp(kinds[k].key, key) == 0) {
                                kind = k;
                                break;
                        }
        }
        v->kind = (enum job_op_kind)kind;
        const struct kind_def *kd = &kinds[kind];

        /* Every key must be known. */
        for (size_t i = 0; params && i < params->n; i++) {
                const struct jnode *k = map_key(params, i);
                bool ok = false;
                for (size_t j = 0; j < sizeof(common_keys) / sizeof(common_keys[0]); j++)
                        ok |= strlen(common_keys[j]) == k->n &&
                              memcmp(common_keys[j], k->u.str, k->n) == 0;
                ok |= graph_form && k->n == 6 && memcmp(k->u.str, "inputs", 6) == 0;
                ok |= sink && k->n == 4 && memcmp(k->u.str, "type", 4) == 0;
                for (size_t j = 0; j < kd->n_params; j++)
                        ok |= strlen(kd->params[j].name) == k->n &&
                              memcmp(kd->params[j].name, k->u.str, k->n) == 0;
                if (ok)
                        continue;
                if (!graph_form && k->n == 6 && memcmp(k->u.str, "inputs", 6) == 0) {
                        snprintf(p, sizeof(p), "%s.inputs", o->path);
                        return fail(c, k, p,
                                    "only graph steps name their inputs; in a pipeline each "
                                    "step reads the one before it");
                }
                const char *names[24];
                size_t nn = 0;
                for (size_t j = 0; j < kd->n_params && nn < 16; j++)
                        names[nn++] = kd->params[j].name;
                for (size_t j = 0; j < sizeof(common_keys) / sizeof(common_keys[0]); j++)
                        names[nn++] = common_keys[j];
                if (graph_form)
                        names[nn++] = "inputs";
                if (sink)
                        names[nn++] = "type";
                names[nn] = NULL;
                return fail(c, k, o->path, "unknown key %s (allowed: %s)",
                            describe(d, sizeof(d), k), list_names(l, sizeof(l), names));
        }

        /* Keys every step may carry. */
        const struct jnode *n = map_get(params, "id");
        const char *s;
        size_t len;
        if (n) {
                snprintf(p, sizeof(p), "%s.id", o->path);
                r = get_text(c, n, p, JOB_ID_MAX, "an id of letters, digits, '.', '_' and '-'",
                             &s, &len);
                if (r < 0)
                        return r;
                if (!id_chars_ok(s, len))
                        return fail(c, n, p, "%s may hold only letters, digits, '.', '_' and '-'",
                                    describe(d, sizeof(d), n));
                memcpy(v->id, s, len);
                v->id[len] = '\0';
        } else if (graph_form) {
                snprintf(p, sizeof(p), "%s.id", o->path);
                return fail(c, step, p,
                            "required in graph steps (other steps name it in their inputs)");
        } else {
                snprintf(v->id, sizeof(v->id), "%s-%zu", key, index);
        }
        n = map_get(params, "name");
        if (n) {
                snprintf(p, sizeof(p), "%s.name", o->path);
                r = get_text(c, n, p, JOB_NAME_MAX, "a name", &s, &len);
                if (r < 0)
                        return r;
                memcpy(v->name, s, len);
                v->name[len] = '\0';
        } else {
                memcpy(v->name, v->id, sizeof(v->id));
        }
        n = map_get(params, "parallelism");
        if (n) {
                int64_t x;
                snprintf(p, sizeof(p), "%s.parallelism", o->path);
                r = get_int(c, n, p, 1, JOB_MAX_PARALLELISM, &x);
                if (r < 0)
                        return r;
                v->parallelism = (uint32_t)x;
                v->parallelism_explicit = true;
        }
        n = map_get(params, "partitioning");
        if (n) {
                int e;
                snprintf(p, sizeof(p), "%s.partitioning", o->path);
                r = get_enum(c, n, p, partitioning_choices, &e);
                if (r < 0)
                        return r;
                v->partitioning = (enum job_partitioning)e;
                v->partitioning_explicit = true;
        }
        if (graph_form)
                *ret_inputs = map_get(params, "inputs");

        /* The operator's parameters. */
        for (size_t i = 0; i < kd->n_params; i++) {
                const struct param_def *pd = &kd->params[i];
                snprintf(p, sizeof(p), "%s.%s", o->path, pd->name);
                n = map_get(params, pd->name);
                if (n) {
                        r = read_param(c, v, pd, n, p);
                        if (r < 0)
                                return r;
                        v->params_set |= 1u << i;
                } else if (pd->flags & PF_REQUIRED) {
                        return fail(c, params ? params : step, p, "required: %s",
                                    type_desc(d, sizeof(d), pd));
                } else {
                        r = default_param(v, pd);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* ------------------------------------------------------------------------------------
 * The graph: inputs, rules, order; then what follows from parallelism. */

/* Resolves the inputs of vertex i (graph form) against the ids of all n vertices. */
static int resolve_inputs(struct ctx *c, struct job_graph *g, size_t i,
                          const struct jnode *inputs) {
        struct job_vertex *v = &g->vertices[i];
        char p[128], d[MSG_QUOTE_BYTES + 16];
        snprintf(p, sizeof(p), "%s.inputs", c->origins[i].path);
        if (!inputs || inputs->type == JN_NULL)
                return 0;
        if (inputs->type != JN_SEQ)
                return fail(c, inputs, p, "expected a list of step ids, got %s",
                            describe(d, sizeof(d), inputs));
        if (inputs->n == 0)
                return fail(c, inputs, p, "is empty; list the ids of the steps this one reads");
        if (inputs->n > JOB_MAX_INPUTS)
                return fail(c, inputs, p, "lists %zu inputs; at most %d", inputs->n,
                            JOB_MAX_INPUTS);
        for (size_t k = 0; k < inputs->n; k++) {
                const struct jnode *item = &inputs->u.items[k];
                char ip[160];
                snprintf(ip, sizeof(ip), "%s[%zu]", p, k);
                const char *s;
                size_t len;
                int r = get_text(c, item, ip, JOB_ID_MAX, "a step id", &s, &len);
                if (r < 0)
                        return r;
                size_t j = 0;
                for (; j < g->n_vertices; j++)
                        if (strlen(g->vertices[j].id) == len &&
                            memcmp(g->vertices[j].id, s, len) == 0)
                                break;
                if (j == g->n_vertices)
                        return fail(c, item, ip, "no step has the id %s",
                                    describe(d, sizeof(d), item));
                if (j == i)
                        return fail(c, item, ip, "a step cannot read itself");
                for (size_t m = 0; m < k; m++)
                        if (v->inputs[m] == j)
                                return fail(c, item, ip, "%s is listed twice",
                                            describe(d, sizeof(d), item));
                if (kinds[g->vertices[j].kind].cat == JOB_CAT_SINK)
                        return fail(c, item, ip, "%s is a sink; a sink feeds no other step",
                                    describe(d, sizeof(d), item));
                v->inputs[k] = (uint32_t)j;
        }
        v->n_inputs = (uint32_t)inputs->n;
        return 0;
}

/* Puts the vertices in topological order (stable: among ready vertices the first
 * written goes first), permuting origins along. */
static int topo_sort(struct ctx *c, struct job_graph *g) {
        size_t n = g->n_vertices;
        int r = -ENOMEM;
        uint32_t *order = calloc(n, sizeof(*order));
        uint32_t *newidx = calloc(n, sizeof(*newidx));
        bool *placed = calloc(n, sizeof(*placed));
        struct job_vertex *nv = calloc(n, sizeof(*nv));
        struct origin *no = calloc(n, sizeof(*no));
        if (!order || !newidx || !placed || !nv || !no)
                goto out;
        size_t done = 0;
        while (done < n) {
                size_t pick = n;
                for (size_t i = 0; i < n && pick == n; i++) {
                        if (placed[i])
                                continue;
                        bool ready = true;
                        for (uint32_t k = 0; k < g->vertices[i].n_inputs; k++)
                                ready &= placed[g->vertices[i].inputs[k]];
                        if (ready)
                                pick = i;
                }
                if (pick == n) {
                        char ids[256];
                        size_t first = 0;
                        while (placed[first])
                                first++;
                        size_t off = 0;
                        ids[0] = '\0';
                        for (size_t i = 0, shown = 0; i < n && shown < 6; i++)
                                if (!placed[i]) {
                                        int w = snprintf(ids + off, sizeof(ids) - off, "%s'%s'",
                                                         shown ? ", " : "", g->vertices[i].id);
                                        if (w < 0 || (size_t)w >= sizeof(ids) - off)
                                                break;
                                        off += (size_t)w;
                                        shown++;
                                }
                        r = fail_vertex(c, g, first, "",
                                        "the steps %s%s read each other in a cycle", ids,
                                        n - done > 6 ? ", ..." : "");
                        goto out;
                }
                placed[pick] = true;
                newidx[pick] = (uint32_t)done;
                order[done++] = (uint32_t)pick;
        }
        for (size_t i = 0; i < n; i++) {
                nv[i] = g->vertices[order[i]];
                no[i] = c->origins[order[i]];
                for (uint32_t k = 0; k < nv[i].n_inputs; k++)
                        nv[i].inputs[k] = newidx[nv[i].inputs[k]];
        }
        memcpy(g->vertices, nv, n * sizeof(*nv));
        memcpy(c->origins, no, n * sizeof(*no));
        r = 0;
out:
        free(order);
        free(newidx);
        free(placed);
        free(nv);
        free(no);
        return r;
}

/* The rules of a job's shape (see the header). */
static int check_shape(struct ctx *c, struct job_graph *g, bool graph_form) {
        size_t n = g->n_vertices;
        for (size_t i = 0; i < n; i++) {
                const struct job_vertex *v = &g->vertices[i];
                enum job_op_category cat = kinds[v->kind].cat;
                if (!graph_form) {
                        if (i == 0 && cat != JOB_CAT_SOURCE)
                                return fail_vertex(c, g, i, "",
                                                   "the first step must be a source "
                                                   "(generator, file or socket), got '%s'",
                                                   kinds[v->kind].name);
                        if (i > 0 && cat == JOB_CAT_SOURCE)
                                return fail_vertex(c, g, i, "",
                                                   "a source can only be the first step of a "
                                                   "pipeline (to read several sources, use "
                                                   "graph with a union)");
                        if (cat == JOB_CAT_SINK && i != n - 1)
                                return fail_vertex(c, g, i, "",
                                                   "a sink must be the last step of a pipeline");
                        if (i == n - 1 && cat != JOB_CAT_SINK)
                                return fail_vertex(c, g, i, "",
                                                   "the last step of a pipeline must be a sink "
                                                   "(sink: {type: print, discard or file}), "
                                                   "got '%s'", kinds[v->kind].name);
                } else {
                        if (cat == JOB_CAT_SOURCE && v->n_inputs > 0)
                                return fail_vertex(c, g, i, ".inputs", "a source reads no inputs");
                        if (cat != JOB_CAT_SOURCE && v->n_inputs == 0)
                                return fail_vertex(c, g, i, ".inputs",
                                                   "required: the ids of the steps this one "
                                                   "reads");
                }
                if (v->n_inputs > 1 && v->kind != JOB_OP_UNION)
                        return fail_vertex(c, g, i, ".inputs",
                                           "'%s' reads one input; merge streams with a union "
                                           "step first", kinds[v->kind].name);
                for (uint32_t k = 0; k < v->n_inputs; k++) {
                        const struct job_vertex *in = &g->vertices[v->inputs[k]];
                        if ((cat == JOB_CAT_KEYED || cat == JOB_CAT_WINDOW) &&
                            in->kind != JOB_OP_KEY_BY)
                                return fail_vertex(c, g, i, "",
                                                   "'%s' is keyed and needs a key_by step "
                                                   "right before it, but it reads '%s' (%s)",
                                                   kinds[v->kind].name, in->id,
                                                   kinds[in->kind].name);
                        if (in->kind == JOB_OP_KEY_BY && v->partitioning_explicit)
                                return fail_vertex(c, g, i, ".partitioning",
                                                   "not allowed after key_by, whose output is "
                                                   "hash-partitioned by key");
                }
        }
        /* Then, once every step's inputs are right: each path ends in a sink. */
        for (size_t i = 0; graph_form && i < n; i++) {
                bool read = false;
                for (size_t j = 0; j < n && !read; j++)
                        for (uint32_t k = 0; k < g->vertices[j].n_inputs; k++)
                                read |= g->vertices[j].inputs[k] == i;
                if (!read && kinds[g->vertices[i].kind].cat != JOB_CAT_SINK)
                        return fail_vertex(c, g, i, "",
                                           "no step reads this one; every path must end in a "
                                           "sink");
        }
        return 0;
}

/* Computes parallelism, max parallelism, edges and chains from the vertices and the
 * job's parallelism; g changes only on success. */
static int derive(struct ctx *c, struct job_graph *g) {
        size_t n = g->n_vertices, n_edges = 0;
        int r = -ENOMEM;
        for (size_t i = 0; i < n; i++)
                n_edges += g->vertices[i].n_inputs;
        uint32_t *par = calloc(n, sizeof(*par));
        uint32_t *nout = calloc(n, sizeof(*nout));
        uint32_t *succ = calloc(n, sizeof(*succ));
        uint32_t *chain_of = calloc(n, sizeof(*chain_of));
        uint32_t *chain_vertices = calloc(n, sizeof(*chain_vertices));
        struct job_edge *edges = calloc(n_edges ? n_edges : 1, sizeof(*edges));
        struct job_chain *chains = calloc(n, sizeof(*chains));
        if (!par || !nout || !succ || !chain_of || !chain_vertices || !edges || !chains)
                goto out;
        uint32_t top = 1;
        for (size_t i = 0; i < n; i++) {
                const struct job_vertex *v = &g->vertices[i];
                for (uint32_t k = 0; k < v->n_inputs; k++)
                        nout[v->inputs[k]]++;
                uint32_t p;
                if (v->parallelism_explicit) {
                        p = v->parallelism;
                        if (v->kind == JOB_OP_SOCKET && p != 1) {
                                r = fail_vertex(c, g, i, ".parallelism",
                                                "a socket source runs with parallelism 1");
                                goto out;
                        }
                } else if (v->kind == JOB_OP_SOCKET) {
                        p = 1;
                } else if (v->kind == JOB_OP_KEY_BY && v->n_inputs == 1) {
                        p = par[v->inputs[0]];
                } else {
                        p = g->parallelism;
                }
                par[i] = p;
                if (p > top)
                        top = p;
        }
        uint32_t maxp = g->max_parallelism_explicit ? g->max_parallelism
                                                    : kg_default_max_parallelism(top);
        for (size_t i = 0; i < n; i++)
                if (par[i] > maxp) {
                        bool own = g->vertices[i].parallelism_explicit;
                        r = fail_vertex(c, g, i, own ? ".parallelism" : "",
                                        "parallelism %" PRIu32 "%s is above max-parallelism %"
                                        PRIu32, par[i], own ? "" : " (the job's)", maxp);
                        goto out;
                }
        size_t e = 0;
        for (size_t i = 0; i < n; i++) {
                const struct job_vertex *v = &g->vertices[i];
                for (uint32_t k = 0; k < v->n_inputs; k++) {
                        uint32_t from = v->inputs[k];
                        enum job_partitioning part;
                        if (g->vertices[from].kind == JOB_OP_KEY_BY)
                                part = JOB_PART_HASH;
                        else if (v->partitioning_explicit)
                                part = v->partitioning;
                        else
                                part = par[from] == par[i] ? JOB_PART_FORWARD : JOB_PART_REBALANCE;
                        if (part == JOB_PART_FORWARD && par[from] != par[i]) {
                                r = fail_vertex(c, g, i, ".partitioning",
                                                "forward needs equal parallelism, but '%s' runs "
                                                "with %" PRIu32 " and this step with %" PRIu32,
                                                g->vertices[from].id, par[from], par[i]);
                                goto out;
                        }
                        bool chained = part == JOB_PART_FORWARD && v->n_inputs == 1 &&
                                       nout[from] == 1;
                        edges[e++] = (struct job_edge){.from = from, .to = (uint32_t)i,
                                                       .input = k, .partitioning = part,
                                                       .chained = chained};
                }
        }
        /* nout is complete only now: drop chaining from vertices with several outputs. */
        for (size_t k = 0; k < e; k++) {
                if (edges[k].chained && nout[edges[k].from] != 1)
                        edges[k].chained = false;
                if (edges[k].chained)
                        succ[edges[k].from] = edges[k].to + 1;
        }
        bool *has_chained_input = calloc(n ? n : 1, sizeof(bool));
        if (!has_chained_input)
                goto out;
        for (size_t k = 0; k < e; k++)
                if (edges[k].chained)
                        has_chained_input[edges[k].to] = true;
        size_t n_chains = 0, pos = 0;
        for (size_t i = 0; i < n; i++) {
                if (has_chained_input[i])
                        continue;
                struct job_chain *ch = &chains[n_chains];
                ch->first = (uint32_t)pos;
                ch->parallelism = par[i];
                for (uint32_t j = (uint32_t)i + 1; j != 0; j = succ[j - 1]) {
                        chain_vertices[pos++] = j - 1;
                        chain_of[j - 1] = (uint32_t)n_chains;
                }
                ch->n = (uint32_t)pos - ch->first;
                n_chains++;
        }
        free(has_chained_input);
        for (size_t i = 0; i < n; i++) {
                g->vertices[i].parallelism = par[i];
                g->vertices[i].n_outputs = nout[i];
                g->vertices[i].chain = chain_of[i];
        }
        g->max_parallelism = maxp;
        free(g->edges);
        free(g->chains);
        free(g->chain_vertices);
        g->edges = edges;
        g->n_edges = e;
        g->chains = chains;
        g->n_chains = n_chains;
        g->chain_vertices = chain_vertices;
        edges = NULL;
        chains = NULL;
        chain_vertices = NULL;
        r = 0;
out:
        free(par);
        free(nout);
        free(succ);
        free(chain_of);
        free(chain_vertices);
        free(edges);
        free(chains);
        return r;
}

/* ------------------------------------------------------------------------------------
 * The top level. */

void job_graph_free(struct job_graph *g) {
        if (!g)
                return;
        for (size_t i = 0; g->vertices && i < g->n_vertices; i++)
                vertex_free_params(&g->vertices[i]);
        free(g->vertices);
        for (size_t i = 0; g->artifacts && i < g->n_artifacts; i++)
                free(g->artifacts[i]);
        free(g->artifacts);
        free(g->edges);
        free(g->chains);
        free(g->chain_vertices);
        free(g);
}

/* Fails on any key of map m not in allowed (NULL-terminated). */
static int check_keys(struct ctx *c, const struct jnode *m, const char *path,
                      const char *const *allowed) {
        char d[MSG_QUOTE_BYTES + 16], l[256];
        for (size_t i = 0; i < m->n; i++) {
                const struct jnode *k = map_key(m, i);
                bool ok = false;
                for (size_t j = 0; allowed[j] && !ok; j++)
                        ok = strlen(allowed[j]) == k->n && memcmp(allowed[j], k->u.str, k->n) == 0;
                if (!ok)
                        return fail(c, k, path, "unknown key %s (allowed: %s)",
                                    describe(d, sizeof(d), k), list_names(l, sizeof(l), allowed));
        }
        return 0;
}

static int parse_checkpointing(struct ctx *c, const struct jnode *m, struct job_graph *g) {
        static const char *const keys[] = {"interval", "mode", "timeout", "min-pause", NULL};
        char d[MSG_QUOTE_BYTES + 16];
        struct job_checkpointing *cp = &g->checkpointing;
        if (m->type != JN_MAP)
                return fail(c, m, "checkpointing",
                            "expected a map with interval, mode, timeout, min-pause, got %s",
                            describe(d, sizeof(d), m));
        int r = check_keys(c, m, "checkpointing", keys);
        if (r < 0)
                return r;
        const struct jnode *n = map_get(m, "interval");
        if (!n)
                return fail(c, m, "checkpointing.interval",
                            "required: a duration, 10 ms..365 d (0: no checkpoints)");
        r = get_duration(c, n, "checkpointing.interval", 0, 365 * DAY_MS, &cp->interval_ms);
        if (r < 0)
                return r;
        if (cp->interval_ms > 0 && cp->interval_ms < 10)
                return fail(c, n, "checkpointing.interval",
                            "%" PRId64 " ms is below the minimum of 10 ms (0 turns "
                            "checkpointing off)", cp->interval_ms);
        cp->mode = JOB_CP_EXACTLY_ONCE;
        if ((n = map_get(m, "mode"))) {
                int e;
                r = get_enum(c, n, "checkpointing.mode", cp_mode_choices, &e);
                if (r < 0)
                        return r;
                cp->mode = (enum job_checkpoint_mode)e;
        }
        cp->timeout_ms = 10 * 60000;
        if ((n = map_get(m, "timeout")) &&
            (r = get_duration(c, n, "checkpointing.timeout", 1, 365 * DAY_MS, &cp->timeout_ms)) < 0)
                return r;
        cp->min_pause_ms = 0;
        if ((n = map_get(m, "min-pause")) &&
            (r = get_duration(c, n, "checkpointing.min-pause", 0, 365 * DAY_MS,
                              &cp->min_pause_ms)) < 0)
                return r;
        cp->configured = true;
        return 0;
}

static int parse_restart(struct ctx *c, const struct jnode *m, struct job_graph *g) {
        static const char *const keys[] = {"type", "attempts", "delay", NULL};
        char d[MSG_QUOTE_BYTES + 16];
        struct job_restart *rs = &g->restart;
        if (m->type != JN_MAP)
                return fail(c, m, "restart-strategy",
                            "expected a map with type, attempts, delay, got %s",
                            describe(d, sizeof(d), m));
        int r = check_keys(c, m, "restart-strategy", keys);
        if (r < 0)
                return r;
        const struct jnode *n = map_get(m, "type");
        if (!n)
                return fail(c, m, "restart-strategy.type", "required: none or fixed-delay");
        int e;
        r = get_enum(c, n, "restart-strategy.type", restart_choices, &e);
        if (r < 0)
                return r;
        rs->type = (enum job_restart_type)e;
        const struct jnode *a = map_get(m, "attempts"), *dl = map_get(m, "delay");
        if (rs->type == JOB_RESTART_NONE) {
                if (a)
                        return fail(c, a, "restart-strategy.attempts", "only for type fixed-delay");
                if (dl)
                        return fail(c, dl, "restart-strategy.delay", "only for type fixed-delay");
                rs->attempts = 0;
                rs->delay_ms = 0;
        } else {
                int64_t x = 1;
                if (a && (r = get_int(c, a, "restart-strategy.attempts", 0, INT32_MAX, &x)) < 0)
                        return r;
                rs->attempts = (uint32_t)x;
                rs->delay_ms = 1000;
                if (dl && (r = get_duration(c, dl, "restart-strategy.delay", 0, DAY_MS,
                                            &rs->delay_ms)) < 0)
                        return r;
        }
        rs->configured = true;
        return 0;
}

static const char *base_name(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

static int parse_artifacts(struct ctx *c, const struct jnode *s, struct job_graph *g) {
        char d[MSG_QUOTE_BYTES + 16], p[64];
        if (s->type != JN_SEQ)
                return fail(c, s, "artifacts", "expected a list of library paths, got %s",
                            describe(d, sizeof(d), s));
        if (s->n > JOB_MAX_ARTIFACTS)
                return fail(c, s, "artifacts", "lists %zu libraries; at most %d", s->n,
                            JOB_MAX_ARTIFACTS);
        g->artifacts = calloc(s->n ? s->n : 1, sizeof(char *));
        if (!g->artifacts)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
                const struct jnode *item = &s->u.items[i];
                const char *t;
                size_t len;
                snprintf(p, sizeof(p), "artifacts[%zu]", i);
                int r = get_text(c, item, p, JOB_STRING_MAX, "a library path", &t, &len);
                if (r < 0)
                        return r;
                const char *b = base_name(t);
                if (!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
                        return fail(c, item, p, "%s does not end in a file name",
                                    describe(d, sizeof(d), item));
                for (size_t k = 0; k < i; k++)
                        if (strcmp(base_name(g->artifacts[k]), b) == 0)
                                return fail(c, item, p,
                                            "has the file name of artifacts[%zu]; artifacts are "
                                            "stored by file name, so names must differ", k);
                g->artifacts[i] = strndup(t, len);
                if (!g->artifacts[i])
                        return -ENOMEM;
                g->n_artifacts = i + 1;
        }
        return 0;
}

static int parse_root(struct ctx *c, const struct jnode *root, uint32_t default_parallelism,
                      struct job_graph **ret) {
        static const char *const file_keys[] = {
                "name", "parallelism", "max-parallelism", "checkpointing", "restart-strategy",
                "artifacts", "pipeline", "graph", NULL};
        static const char *const payload_keys[] = {
                "name", "parallelism", "max-parallelism", "checkpointing", "restart-strategy",
                "artifacts", "pipeline", "graph", "jid", NULL};
        char d[MSG_QUOTE_BYTES + 16];
        const struct jnode **inputs = NULL;
        struct job_graph *g = NULL;
        int r;
        if (!root)
                return fail(c, NULL, "", "is empty; a job needs at least name and pipeline");
        if (root->type != JN_MAP)
                return fail(c, root, "",
                            "expected a map with name, pipeline and other job settings at the "
                            "top, got %s", describe(d, sizeof(d), root));
        r = check_keys(c, root, "", c->payload ? payload_keys : file_keys);
        if (r < 0)
                return r;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;

        const struct jnode *n = map_get(root, "name");
        const char *s;
        size_t len;
        if (!n) {
                r = fail(c, root, "name", "required: the job's name, 1..%d bytes", JOB_NAME_MAX);
                goto fail;
        }
        if ((r = get_text(c, n, "name", JOB_NAME_MAX, "the job's name", &s, &len)) < 0)
                goto fail;
        memcpy(g->name, s, len);
        g->name[len] = '\0';
        if ((n = map_get(root, "jid"))) {
                char hex[ID_HEX_LEN + 1];
                if ((r = get_text(c, n, "jid", ID_HEX_LEN, "a job id of 32 hex digits", &s,
                                  &len)) < 0)
                        goto fail;
                memcpy(hex, s, len);
                hex[len] = '\0';
                if (id_parse(hex, &g->id) < 0) {
                        r = fail(c, n, "jid", "expected 32 hex digits, got %s",
                                 describe(d, sizeof(d), n));
                        goto fail;
                }
        }
        int64_t x = default_parallelism;
        if ((n = map_get(root, "parallelism")) &&
            (r = get_int(c, n, "parallelism", 1, JOB_MAX_PARALLELISM, &x)) < 0)
                goto fail;
        g->parallelism = (uint32_t)x;
        if ((n = map_get(root, "max-parallelism"))) {
                if ((r = get_int(c, n, "max-parallelism", 1, JOB_MAX_PARALLELISM, &x)) < 0)
                        goto fail;
                g->max_parallelism = (uint32_t)x;
                g->max_parallelism_explicit = true;
        }
        if ((n = map_get(root, "checkpointing")) && (r = parse_checkpointing(c, n, g)) < 0)
                goto fail;
        if ((n = map_get(root, "restart-strategy")) && (r = parse_restart(c, n, g)) < 0)
                goto fail;
        if ((n = map_get(root, "artifacts")) && (r = parse_artifacts(c, n, g)) < 0)
                goto fail;

        const struct jnode *pl = map_get(root, "pipeline"), *gr = map_get(root, "graph");
        if (pl && gr) {
                r = fail(c, gr, "graph", "a job has pipeline or graph, not both");
                goto fail;
        }
        if (!pl && !gr) {
                r = fail(c, root, "pipeline",
                         "required: the job's steps (or graph, for jobs that are not one "
                         "chain)");
                goto fail;
        }
        bool graph_form = gr != NULL;
        const struct jnode *steps = graph_form ? gr : pl;
        const char *list = graph_form ? "graph" : "pipeline";
        if (steps->type != JN_SEQ) {
                r = fail(c, steps, list, "expected a list of steps, got %s",
                         describe(d, sizeof(d), steps));
                goto fail;
        }
        if (steps->n == 0 || steps->n > JOB_MAX_VERTICES) {
                r = fail(c, steps, list, "has %zu steps; a job has 2..%d", steps->n,
                         JOB_MAX_VERTICES);
                goto fail;
        }
        size_t nv = steps->n;
        g->vertices = calloc(nv, sizeof(*g->vertices));
        c->origins = calloc(nv, sizeof(*c->origins));
        inputs = calloc(nv, sizeof(*inputs));
        if (!g->vertices || !c->origins || !inputs) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < nv; i++) {
                g->n_vertices = i + 1;
                r = parse_step(c, &steps->u.items[i], list, i, graph_form, &g->vertices[i],
                               &c->origins[i], &inputs[i]);
                if (r < 0)
                        goto fail;
                r = check_step(c, &g->vertices[i], c->origins[i].line, c->origins[i].path,
                               g->n_artifacts);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < nv; i++)
                for (size_t j = 0; j < i; j++) {
                        if (strcmp(g->vertices[i].id, g->vertices[j].id) == 0) {
                                r = fail_vertex(c, g, i, ".id", "'%s' is also the id of %s",
                                                g->vertices[i].id, c->origins[j].path);
                                goto fail;
                        }
                        if (strcmp(g->vertices[i].name, g->vertices[j].name) == 0) {
                                char q[MSG_QUOTE_BYTES + 8];
                                r = fail_vertex(c, g, i, ".name",
                                                "'%s' is also the name of %s; names must differ",
                                                quote(q, sizeof(q), g->vertices[i].name,
                                                      strlen(g->vertices[i].name)),
                                                c->origins[j].path);
                                goto fail;
                        }
                }
        for (size_t i = 0; i < nv; i++) {
                if (graph_form) {
                        r = resolve_inputs(c, g, i, inputs[i]);
                        if (r < 0)
                                goto fail;
                } else if (i > 0) {
                        g->vertices[i].inputs[0] = (uint32_t)(i - 1);
                        g->vertices[i].n_inputs = 1;
                }
        }
        if ((r = check_shape(c, g, graph_form)) < 0)
                goto fail;
        if (graph_form && (r = topo_sort(c, g)) < 0)
                goto fail;
        if ((r = derive(c, g)) < 0)
                goto fail;
        free(inputs);
        free(c->origins);
        c->origins = NULL;
        *ret = g;
        return 0;
fail:
        free(inputs);
        free(c->origins);
        c->origins = NULL;
        job_graph_free(g);
        return r;
}

/* ------------------------------------------------------------------------------------
 * YAML to nodes, from libyaml's events: anchors, aliases and tags are refused, nesting
 * is limited, map keys must be distinct strings. */

struct builder {
        struct jnode *stack;   /* finished children of the open containers */
        size_t len;
        size_t cap;
        struct {
                enum jn_type type;
                uint32_t line;
                size_t start;
        } frames[JOB_MAX_NESTING];
        unsigned depth;
        struct jnode *root;
        bool have_root;
};

static int builder_push(struct builder *b, const struct jnode *n) {
        if (b->len == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 64;
                struct jnode *p = realloc(b->stack, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                b->stack = p;
                b->cap = cap;
        }
        b->stack[b->len++] = *n;
        return 0;
}

/* Checks a finished map's keys: strings, distinct, at most MAX_MAP_KEYS. */
static int check_map(struct ctx *c, const struct jnode *m) {
        char d[MSG_QUOTE_BYTES + 16];
        if (m->n > MAX_MAP_KEYS)
                return fail(c, m, "", "a map has %zu keys; no map of a job has more than %d",
                            m->n, MAX_MAP_KEYS);
        for (size_t i = 0; i < m->n; i++) {
                const struct jnode *k = map_key(m, i);
                if (k->type != JN_STR)
                        return fail(c, k, "", "a map key must be a string, got %s",
                                    describe(d, sizeof(d), k));
                for (size_t j = 0; j < i; j++) {
                        const struct jnode *o = map_key(m, j);
                        if (o->n == k->n && memcmp(o->u.str, k->u.str, k->n) == 0)
                                return fail(c, k, "", "key %s appears twice in one map",
                                            describe(d, sizeof(d), k));
                }
        }
        return 0;
}

/* Adds a finished node: to the open container, or as the root. */
static int builder_add(struct ctx *c, struct builder *b, const struct jnode *n) {
        if (b->depth == 0) {
                struct jnode *root = arena_alloc(&c->arena, sizeof(*root));
                if (!root)
                        return -ENOMEM;
                *root = *n;
                b->root = root;
                b->have_root = true;
                return 0;
        }
        return builder_push(b, n);
}

static bool plain_null(const char *s, size_t len) {
        return len == 0 || (len == 1 && s[0] == '~') ||
               (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
                             memcmp(s, "NULL", 4) == 0));
}

static int yaml_event_to_node(struct ctx *c, struct builder *b, const yaml_event_t *ev) {
        uint32_t line = (uint32_t)ev->start_mark.line + 1;
        const unsigned char *anchor = NULL, *tag = NULL;
        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return fail_line(c, line, "", "YAML aliases (*name) are not supported in job "
                                 "files; write the value out");
        case YAML_SCALAR_EVENT:
                anchor = ev->data.scalar.anchor;
                tag = ev->data.scalar.tag;
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = ev->data.sequence_start.anchor;
                tag = ev->data.sequence_start.implicit ? NULL : ev->data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = ev->data.mapping_start.anchor;
                tag = ev->data.mapping_start.implicit ? NULL : ev->data.mapping_start.tag;
                break;
        default:
                break;
        }
        if (anchor)
                return fail_line(c, line, "", "YAML anchors (&name) are not supported in job "
                                 "files");
        if (tag)
                return fail_line(c, line, "", "YAML tags (!tag) are not supported in job files");
        struct jnode n = {.line = line};
        switch (ev->type) {
        case YAML_SCALAR_EVENT: {
                const char *s = (const char *)ev->data.scalar.value;
                size_t len = ev->data.scalar.length;
                bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                bool is_key = b->depth > 0 && b->frames[b->depth - 1].type == JN_MAP &&
                              (b->len - b->frames[b->depth - 1].start) % 2 == 0;
                if (plain && !is_key && plain_null(s, len)) {
                        n.type = JN_NULL;
                } else {
                        n.type = JN_STR;
                        n.plain = plain;
                        n.n = len;
                        n.u.str = arena_strndup(&c->arena, s, len);
                        if (!n.u.str)
                                return -ENOMEM;
                }
                return builder_add(c, b, &n);
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
                if (b->depth >= JOB_MAX_NESTING)
                        return fail_line(c, line, "", "nested deeper than %d levels",
                                         JOB_MAX_NESTING);
                b->frames[b->depth].type = ev->type == YAML_MAPPING_START_EVENT ? JN_MAP : JN_SEQ;
                b->frames[b->depth].line = line;
                b->frames[b->depth].start = b->len;
                b->depth++;
                return 0;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
                b->depth--;
                size_t start = b->frames[b->depth].start, count = b->len - start;
                n.type = b->frames[b->depth].type;
                n.line = b->frames[b->depth].line;
                n.n = n.type == JN_MAP ? count / 2 : count;
                n.u.items = arena_alloc(&c->arena, (count ? count : 1) * sizeof(struct jnode));
                if (!n.u.items)
                        return -ENOMEM;
                if (count)
                        memcpy(n.u.items, b->stack + start, count * sizeof(struct jnode));
                b->len = start;
                if (n.type == JN_MAP) {
                        int r = check_map(c, &n);
                        if (r < 0)
                                return r;
                }
                return builder_add(c, b, &n);
        }
        default:
                return 0;
        }
}

static int yaml_to_nodes(struct ctx *c, const char *text, size_t len, struct jnode **ret_root) {
        yaml_parser_t parser;
        struct builder b = {0};
        int r = 0, docs = 0;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        for (;;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&parser, &ev)) {
                        if (parser.error == YAML_MEMORY_ERROR) {
                                r = -ENOMEM;
                        } else if (parser.error == YAML_READER_ERROR) {
                                r = fail_line(c, 0, "", "invalid YAML: %s at byte %zu",
                                              parser.problem ? parser.problem : "unreadable text",
                                              parser.problem_offset);
                        } else if (parser.context) {
                                r = fail_line(c, (uint32_t)parser.problem_mark.line + 1, "",
                                              "invalid YAML: %s %s (column %zu; the construct "
                                              "started at line %zu)",
                                              parser.context,
                                              parser.problem ? parser.problem : "",
                                              parser.problem_mark.column + 1,
                                              parser.context_mark.line + 1);
                        } else {
                                r = fail_line(c, (uint32_t)parser.problem_mark.line + 1, "",
                                              "invalid YAML: %s (column %zu)",
                                              parser.problem ? parser.problem : "syntax error",
                                              parser.problem_mark.column + 1);
                        }
                        break;
                }
                bool end = ev.type == YAML_STREAM_END_EVENT;
                if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
                        r = fail_line(c, (uint32_t)ev.start_mark.line + 1, "",
                                      "holds more than one YAML document; a job file holds one");
                else
                        r = yaml_event_to_node(c, &b, &ev);
                yaml_event_delete(&ev);
                if (r < 0 || end)
                        break;
        }
        yaml_parser_delete(&parser);
        free(b.stack);
        if (r < 0)
                return r;
        *ret_root = b.have_root ? b.root : NULL;
        return 0;
}

/* ------------------------------------------------------------------------------------
 * msgpack to nodes. Before msgpack-c unpacks anything, mp_plausible() walks the bytes
 * and checks that every container's element count fits in the bytes left: msgpack-c
 * allocates a container's elements from its header alone, so five bytes could otherwise
 * ask for gigabytes. */

static bool mp_plausible(const void *data, size_t len, unsigned max_depth) {
        uint64_t objects_left = UINT64_MAX;
        size_t used = 0;
        const char *why;
        return msg_precheck(data, len, max_depth, &objects_left, &used, &why) == 0 &&
               used == len;
}

static int mp_to_node(struct ctx *c, const msgpack_object *o, unsigned depth, struct jnode *n) {
        memset(n, 0, sizeof(*n));
        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                n->type = JN_NULL;
                return 0;
        case MSGPACK_OBJECT_BOOLEAN:
                n->type = JN_BOOL;
                n->u.b = o->via.boolean;
                return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (o->via.u64 > INT64_MAX) {
                        n->type = JN_OTHER;
                        return 0;
                }
                n->type = JN_INT;
                n->u.i = (int64_t)o->via.u64;
                return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                n->type = JN_INT;
                n->u.i = o->via.i64;
                return 0;
        case MSGPACK_OBJECT_STR:
                n->type = JN_STR;
                n->n = o->via.str.size;
                n->u.str = arena_strndup(&c->arena, o->via.str.ptr, o->via.str.size);
                return n->u.str ? 0 : -ENOMEM;
        case MSGPACK_OBJECT_ARRAY:
        case MSGPACK_OBJECT_MAP: {
                if (depth >= JOB_MAX_NESTING)
                        return fail(c, NULL, "", "nested deeper than %d levels", JOB_MAX_NESTING);
                bool map = o->type == MSGPACK_OBJECT_MAP;
                size_t count = map ? 2 * (size_t)o->via.map.size : o->via.array.size;
                n->type = map ? JN_MAP : JN_SEQ;
                n->n = map ? o->via.map.size : o->via.array.size;
                n->u.items = arena_alloc(&c->arena, (count ? count : 1) * sizeof(struct jnode));
                if (!n->u.items)
                        return -ENOMEM;
                for (size_t i = 0; i < count; i++) {
                        const msgpack_object *child =
                                !map ? &o->via.array.ptr[i]
                                     : (i % 2 == 0 ? &o->via.map.ptr[i / 2].key
                                                   : &o->via.map.ptr[i / 2].val);
                        int r = mp_to_node(c, child, depth + 1, &n->u.items[i]);
                        if (r < 0)
                                return r;
                }
                return map ? check_map(c, n) : 0;
        }
        default:
                n->type = JN_OTHER;
                return 0;
        }
}

/* ------------------------------------------------------------------------------------
 * Public entry points: parse, load, decode. */

int job_graph_parse_yaml(const char *name_for_messages, const char *text, size_t len,
                         uint32_t default_parallelism, struct job_graph **ret, char *err,
                         size_t err_len) {
        struct ctx c = {.name = name_for_messages ? name_for_messages : "job file",
                        .err = err, .err_len = err_len};
        struct jnode *root = NULL;
        int r;
        if (err && err_len)
                err[0] = '\0';
        if (default_parallelism < 1 || default_parallelism > JOB_MAX_PARALLELISM)
                return fail(&c, NULL, "", "default parallelism %" PRIu32
                            " is out of range 1..%d", default_parallelism, JOB_MAX_PARALLELISM);
        if (!text && len)
                return -EINVAL;
        if (len > JOB_FILE_MAX_BYTES) {
                fail(&c, NULL, "", "is %zu bytes; a job file holds at most %zu bytes (1 MiB)",
                     len, JOB_FILE_MAX_BYTES);
                return -EFBIG;
        }
        r = yaml_to_nodes(&c, text, len, &root);
        if (r == 0)
                r = parse_root(&c, root, default_parallelism, ret);
        arena_free(&c.arena);
        return r;
}

int job_graph_load_file(const char *path, uint32_t default_parallelism,
                        struct job_graph **ret, char *err, size_t err_len) {
        struct ctx c = {.name = path, .err = err, .err_len = err_len};
        char *text = NULL;
        size_t len = 0;
        struct job_graph *g = NULL;
        int r = fs_read_all(path, JOB_FILE_MAX_BYTES, &text, &len);
        if (r == -EFBIG) {
                fail(&c, NULL, "", "is larger than %zu bytes (1 MiB), the limit of a job file",
                     JOB_FILE_MAX_BYTES);
                return r;
        }
        if (r < 0) {
                fail(&c, NULL, "", "cannot be read: %s", strerror(-r));
                return r;
        }
        r = job_graph_parse_yaml(path, text, len, default_parallelism, &g, err, err_len);
        free(text);
        if (r < 0)
                return r;
        const char *slash = strrchr(path, '/');
        size_t dir_len = slash ? (size_t)(slash - path) : 0;
        for (size_t i = 0; slash && i < g->n_artifacts; i++) {
                const char *a = g->artifacts[i];
                if (a[0] == '/')
                        continue;
                size_t alen = strlen(a);
                if (dir_len + 1 + alen > JOB_STRING_MAX) {
                        char p[32];
                        snprintf(p, sizeof(p), "artifacts[%zu]", i);
                        r = fail(&c, NULL, p, "with the job file's directory the path is longer "
                                 "than %d bytes", JOB_STRING_MAX);
                        goto fail;
                }
                char *full = malloc(dir_len + 1 + alen + 1);
                if (!full) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(full, path, dir_len);
                full[dir_len] = '/';
                memcpy(full + dir_len + 1, a, alen + 1);
                free(g->artifacts[i]);
                g->artifacts[i] = full;
        }
        *ret = g;
        return 0;
fail:
        job_graph_free(g);
        return r;
}

int job_graph_decode(const void *data, size_t len, struct job_graph **ret, char *err,
                     size_t err_len) {
        struct ctx c = {.name = "job graph payload", .err = err, .err_len = err_len,
                        .payload = true};
        char why[256];
        char *body = NULL;
        size_t body_len = 0;
        msgpack_unpacked up;
        bool unpacked = false;
        struct jnode root;
        int r;
        if (err && err_len)
                err[0] = '\0';
        if (!mp_plausible(data, len, 4)) {
                fail(&c, NULL, "", "not an intact msgpack envelope (truncated or corrupt)");
                return -EBADMSG;
        }
        r = envelope_unwrap(data, len, JOB_GRAPH_ENVELOPE_KIND, JOB_GRAPH_FORMAT_VERSION, &body,
                            &body_len, NULL, why, sizeof(why));
        if (r < 0) {
                fail(&c, NULL, "", "%s", why);
                return r;
        }
        if (!mp_plausible(body, body_len, JOB_MAX_NESTING)) {
                r = -EBADMSG;
                fail(&c, NULL, "", "the body is not intact msgpack of at most %d levels",
                     JOB_MAX_NESTING);
                goto out;
        }
        msgpack_unpacked_init(&up);
        unpacked = true;
        size_t off = 0;
        if (msgpack_unpack_next(&up, body, body_len, &off) != MSGPACK_UNPACK_SUCCESS ||
            off != body_len) {
                r = -EBADMSG;
                fail(&c, NULL, "", "the body is not msgpack");
                goto out;
        }
        r = mp_to_node(&c, &up.data, 0, &root);
        if (r < 0)
                goto out;
        r = parse_root(&c, &root, 1, ret);
out:
        if (unpacked)
                msgpack_unpacked_destroy(&up);
        free(body);
        arena_free(&c.arena);
        return r;
}

/* ------------------------------------------------------------------------------------
 * Encoding: the job file's shape in msgpack, graph form, values resolved. */

static void pack_param(msgpack_packer *pk, const struct job_vertex *v,
                       const struct param_def *pd) {
        const char *slot = (const char *)v + pd->offset;
        msg_pack_cstr(pk, pd->name);
        switch (pd->type) {
        case PT_INT:
        case PT_DURATION:
        case PT_SIZE: {
                int64_t x;
                memcpy(&x, slot, sizeof(x));
                msgpack_pack_int64(pk, x);
                return;
        }
        case PT_BOOL: {
                bool b;
                memcpy(&b, slot, sizeof(b));
                if (b)
                        msgpack_pack_true(pk);
                else
                        msgpack_pack_false(pk);
                return;
        }
        case PT_ENUM: {
                int e;
                memcpy(&e, slot, sizeof(e));
                msg_pack_cstr(pk, choice_name(pd->choices, e));
                return;
        }
        case PT_STRING:
        case PT_URI:
        case PT_SYMBOL:
        case PT_HOST:
                break;
        }
        char *s;
        memcpy(&s, slot, sizeof(s));
        msg_pack_cstr(pk, s ? s : "");
}

static bool graph_sane(const struct job_graph *g) {
        if (!g->vertices || g->n_vertices == 0 || g->n_vertices > JOB_MAX_VERTICES)
                return false;
        for (size_t i = 0; i < g->n_vertices; i++) {
                const struct job_vertex *v = &g->vertices[i];
                if ((unsigned)v->kind >= JOB_OP__COUNT || v->n_inputs > JOB_MAX_INPUTS)
                        return false;
                for (uint32_t k = 0; k < v->n_inputs; k++)
                        if (v->inputs[k] >= g->n_vertices)
                                return false;
        }
        return true;
}

int job_graph_encode(const struct job_graph *g, char **ret_bytes, size_t *ret_len) {
        if (!g || !graph_sane(g))
                return -EINVAL;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        char hex[ID_HEX_LEN + 1];
        id_format(&g->id, hex);
        size_t top = 4 + g->max_parallelism_explicit + g->checkpointing.configured +
                     g->restart.configured + (g->n_artifacts > 0);
        msgpack_pack_map(&pk, top);
        msg_pack_kv_str(&pk, "name", g->name);
        msg_pack_kv_str(&pk, "jid", hex);
        msg_pack_kv_u64(&pk, "parallelism", g->parallelism);
        if (g->max_parallelism_explicit)
                msg_pack_kv_u64(&pk, "max-parallelism", g->max_parallelism);
        if (g->checkpointing.configured) {
                const struct job_checkpointing *cp = &g->checkpointing;
                msg_pack_cstr(&pk, "checkpointing");
                msgpack_pack_map(&pk, 4);
                msg_pack_kv_i64(&pk, "interval", cp->interval_ms);
                msg_pack_kv_str(&pk, "mode", choice_name(cp_mode_choices, (int)cp->mode));
                msg_pack_kv_i64(&pk, "timeout", cp->timeout_ms);
                msg_pack_kv_i64(&pk, "min-pause", cp->min_pause_ms);
        }
        if (g->restart.configured) {
                const struct job_restart *rs = &g->restart;
                bool fixed = rs->type == JOB_RESTART_FIXED_DELAY;
                msg_pack_cstr(&pk, "restart-strategy");
                msgpack_pack_map(&pk, fixed ? 3 : 1);
                msg_pack_kv_str(&pk, "type", choice_name(restart_choices, (int)rs->type));
                if (fixed) {
                        msg_pack_kv_u64(&pk, "attempts", rs->attempts);
                        msg_pack_kv_i64(&pk, "delay", rs->delay_ms);
                }
        }
        if (g->n_artifacts > 0) {
                msg_pack_cstr(&pk, "artifacts");
                msgpack_pack_array(&pk, g->n_artifacts);
                for (size_t i = 0; i < g->n_artifacts; i++)
                        msg_pack_cstr(&pk, g->artifacts[i]);
        }
        msg_pack_cstr(&pk, "graph");
        msgpack_pack_array(&pk, g->n_vertices);
        for (size_t i = 0; i < g->n_vertices; i++) {
                const struct job_vertex *v = &g->vertices[i];
                const struct kind_def *kd = &kinds[v->kind];
                size_t n = 2 + v->parallelism_explicit + v->partitioning_explicit +
                           (v->n_inputs > 0) + (kd->type != NULL);
                for (size_t k = 0; k < kd->n_params; k++)
                        n += (v->params_set >> k) & 1u;
                msgpack_pack_map(&pk, 1);
                msg_pack_cstr(&pk, kd->key);
                msgpack_pack_map(&pk, n);
                msg_pack_kv_str(&pk, "id", v->id);
                msg_pack_kv_str(&pk, "name", v->name);
                if (v->parallelism_explicit)
                        msg_pack_kv_u64(&pk, "parallelism", v->parallelism);
                if (v->partitioning_explicit)
                        msg_pack_kv_str(&pk, "partitioning",
                                        choice_name(partitioning_choices, (int)v->partitioning));
                if (v->n_inputs > 0) {
                        msg_pack_cstr(&pk, "inputs");
                        msgpack_pack_array(&pk, v->n_inputs);
                        for (uint32_t k = 0; k < v->n_inputs; k++)
                                msg_pack_cstr(&pk, g->vertices[v->inputs[k]].id);
                }
                if (kd->type)
                        msg_pack_kv_str(&pk, "type", kd->type);
                for (size_t k = 0; k < kd->n_params; k++)
                        if ((v->params_set >> k) & 1u)
                                pack_param(&pk, v, &kd->params[k]);
        }
        int r;
        if (!sb.data)
                r = -ENOMEM;
        else
                r = envelope_wrap(JOB_GRAPH_ENVELOPE_KIND, JOB_GRAPH_FORMAT_VERSION, sb.data,
                                  sb.size, ret_bytes, ret_len);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* ------------------------------------------------------------------------------------
 * JSON: the plan and the schema. */

static void json_param(struct json_writer *w, const struct job_vertex *v,
                       const struct param_def *pd) {
        const char *slot = (const char *)v + pd->offset;
        switch (pd->type) {
        case PT_INT:
        case PT_DURATION:
        case PT_SIZE: {
                int64_t x;
                memcpy(&x, slot, sizeof(x));
                json_kv_int(w, pd->name, x);
                return;
        }
        case PT_BOOL: {
                bool b;
                memcpy(&b, slot, sizeof(b));
                json_kv_bool(w, pd->name, b);
                return;
        }
        case PT_ENUM: {
                int e;
                memcpy(&e, slot, sizeof(e));
                json_kv_string(w, pd->name, choice_name(pd->choices, e));
                return;
        }
        case PT_STRING:
        case PT_URI:
        case PT_SYMBOL:
        case PT_HOST:
                break;
        }
        char *s;
        memcpy(&s, slot, sizeof(s));
        if (s)
                json_kv_string(w, pd->name, s);
}

/* Joins the chain's kinds (or its names, with "Source: " / "Sink: " prefixes). */
static char *chain_text(const struct job_graph *g, const struct job_chain *ch, bool names) {
        size_t cap = 1;
        for (uint32_t k = 0; k < ch->n; k++)
                cap += JOB_NAME_MAX + 16;
        char *buf = malloc(cap);
        if (!buf)
                return NULL;
        size_t off = 0;
        buf[0] = '\0';
        for (uint32_t k = 0; k < ch->n; k++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + k]];
                enum job_op_category cat = kinds[v->kind].cat;
                const char *prefix = !names                    ? ""
                                     : cat == JOB_CAT_SOURCE ? "Source: "
                                     : cat == JOB_CAT_SINK   ? "Sink: "
                                                             : "";
                int w = snprintf(buf + off, cap - off, "%s%s%s", k ? " -> " : "", prefix,
                                 names ? v->name : kinds[v->kind].name);
                if (w > 0)
                        off += (size_t)w < cap - off ? (size_t)w : cap - off - 1;
        }
        return buf;
}

int job_graph_to_json(const struct job_graph *g, struct json_writer *w) {
        char hex[ID_HEX_LEN + 1];
        id_format(&g->id, hex);
        json_begin_object(w);
        json_kv_string(w, "jid", hex);
        json_kv_string(w, "name", g->name);
        json_kv_string(w, "type", job_graph_is_bounded(g) ? "BATCH" : "STREAMING");
        json_key(w, "nodes");
        json_begin_array(w);
        for (size_t ci = 0; ci < g->n_chains; ci++) {
                const struct job_chain *ch = &g->chains[ci];
                uint32_t head = g->chain_vertices[ch->first];
                char *ops = chain_text(g, ch, false), *desc = chain_text(g, ch, true);
                if (!ops || !desc) {
                        free(ops);
                        free(desc);
                        return -ENOMEM;
                }
                json_begin_object(w);
                json_kv_string(w, "id", g->vertices[head].id);
                json_kv_uint(w, "parallelism", ch->parallelism);
                json_kv_string(w, "operator", ops);
                json_kv_string(w, "operator_strategy", "");
                json_kv_string(w, "description", desc);
                free(ops);
                free(desc);
                json_key(w, "inputs");
                json_begin_array(w);
                for (size_t e = 0; e < g->n_edges; e++) {
                        const struct job_edge *ed = &g->edges[e];
                        if (ed->to != head || ed->chained)
                                continue;
                        const struct job_chain *from = &g->chains[g->vertices[ed->from].chain];
                        json_begin_object(w);
                        json_kv_uint(w, "num", ed->input);
                        json_kv_string(w, "id", g->vertices[g->chain_vertices[from->first]].id);
                        json_kv_string(w, "ship_strategy", job_partitioning_name(ed->partitioning));
                        json_kv_string(w, "exchange", "pipelined_bounded");
                        json_end_object(w);
                }
                json_end_array(w);
                json_key(w, "optimizer_properties");
                json_begin_object(w);
                json_end_object(w);
                json_key(w, "operators");
                json_begin_array(w);
                for (uint32_t k = 0; k < ch->n; k++) {
                        const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + k]];
                        const struct kind_def *kd = &kinds[v->kind];
                        json_begin_object(w);
                        json_kv_string(w, "id", v->id);
                        json_kv_string(w, "name", v->name);
                        json_kv_string(w, "kind", kd->name);
                        json_kv_uint(w, "parallelism", v->parallelism);
                        json_key(w, "params");
                        json_begin_object(w);
                        if (kd->type)
                                json_kv_string(w, "type", kd->type);
                        for (size_t p = 0; p < kd->n_params; p++) {
                                const struct param_def *pd = &kd->params[p];
                                if ((pd->flags & PF_NODEFAULT) && !((v->params_set >> p) & 1u))
                                        continue;
                                json_param(w, v, pd);
                        }
                        json_end_object(w);
                        json_end_object(w);
                }
                json_end_array(w);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
        return json_writer_error(w);
}

int job_schema_to_json(struct json_writer *w) {
        char buf[64];
        json_begin_array(w);
        for (int k = 0; k < JOB_OP__COUNT; k++) {
                const struct kind_def *kd = &kinds[k];
                json_begin_object(w);
                json_kv_string(w, "operator", kd->key);
                if (kd->type)
                        json_kv_string(w, "type", kd->type);
                json_kv_string(w, "kind", kd->name);
                json_kv_string(w, "category", category_names[kd->cat]);
                json_kv_string(w, "doc", kd->doc);
                json_key(w, "params");
                json_begin_array(w);
                for (size_t i = 0; i < kd->n_params; i++) {
                        const struct param_def *pd = &kd->params[i];
                        json_begin_object(w);
                        json_kv_string(w, "name", pd->name);
                        json_kv_string(w, "type", ptype_names[pd->type]);
                        json_kv_bool(w, "required", pd->flags & PF_REQUIRED);
                        bool has_default = !(pd->flags & (PF_REQUIRED | PF_NODEFAULT));
                        switch (pd->type) {
                        case PT_INT:
                                if (has_default)
                                        json_kv_int(w, "default", pd->def);
                                json_kv_int(w, "min", pd->min);
                                json_kv_int(w, "max", pd->max);
                                break;
                        case PT_DURATION:
                                if (has_default)
                                        json_kv_string(w, "default",
                                                       fmt_duration(buf, sizeof(buf), pd->def));
                                json_kv_string(w, "min", fmt_duration(buf, sizeof(buf), pd->min));
                                json_kv_string(w, "max", fmt_duration(buf, sizeof(buf), pd->max));
                                break;
                        case PT_SIZE:
                                if (has_default)
                                        json_kv_string(w, "default",
                                                       fmt_size(buf, sizeof(buf), pd->def));
                                json_kv_string(w, "min", fmt_size(buf, sizeof(buf), pd->min));
                                json_kv_string(w, "max", fmt_size(buf, sizeof(buf), pd->max));
                                break;
                        case PT_BOOL:
                                if (has_default)
                                        json_kv_bool(w, "default", pd->def != 0);
                                break;
                        case PT_ENUM:
                                if (has_default)
                                        json_kv_string(w, "default",
                                                       choice_name(pd->choices, (int)pd->def));
                                json_key(w, "choices");
                                json_begin_array(w);
                                for (const struct choice *ch = pd->choices; ch->name; ch++)
                                        json_string(w, ch->name);
                                json_end_array(w);
                                break;
                        case PT_STRING:
                        case PT_URI:
                        case PT_SYMBOL:
                        case PT_HOST:
                                if (has_default && pd->def_str)
                                        json_kv_string(w, "default", pd->def_str);
                                break;
                        }
                        json_kv_string(w, "doc", pd->doc);
                        json_end_object(w);
                }
                json_end_array(w);
                json_end_object(w);
        }
        json_end_array(w);
        return json_writer_error(w);
}

/* ------------------------------------------------------------------------------------
 * Queries and overrides. */

uint32_t job_graph_total_slots(const struct job_graph *g) {
        uint32_t top = 0;
        for (size_t i = 0; i < g->n_vertices; i++)
                if (g->vertices[i].parallelism > top)
                        top = g->vertices[i].parallelism;
        return top;
}

bool job_graph_is_bounded(const struct job_graph *g) {
        bool any = false;
        for (size_t i = 0; i < g->n_vertices; i++) {
                const struct job_vertex *v = &g->vertices[i];
                if (kinds[v->kind].cat != JOB_CAT_SOURCE)
                        continue;
                any = true;
                if (v->kind == JOB_OP_SOCKET ||
                    (v->kind == JOB_OP_GENERATOR && v->params.generator.count == 0))
                        return false;
        }
        return any;
}

const struct job_vertex *job_graph_find(const struct job_graph *g, const char *id) {
        for (size_t i = 0; i < g->n_vertices; i++)
                if (strcmp(g->vertices[i].id, id) == 0)
                        return &g->vertices[i];
        return NULL;
}

void job_graph_pin_max_parallelism(struct job_graph *g) {
        g->max_parallelism_explicit = true;
}

int job_graph_set_parallelism(struct job_graph *g, uint32_t p, char *err, size_t err_len) {
        char name[JOB_NAME_MAX + 16];
        snprintf(name, sizeof(name), "job '%s'", g->name);
        struct ctx c = {.name = name, .err = err, .err_len = err_len};
        if (p < 1 || p > JOB_MAX_PARALLELISM)
                return fail(&c, NULL, "parallelism", "%" PRIu32 " is out of range 1..%d", p,
                            JOB_MAX_PARALLELISM);
        uint32_t old = g->parallelism;
        g->parallelism = p;
        int r = derive(&c, g);
        if (r < 0)
                g->parallelism = old;
        return r;
}

int job_graph_set_param(struct job_graph *g, const char *target, const char *param,
                        const char *value, char *err, size_t err_len) {
        char name[JOB_NAME_MAX + 80], l[256];
        snprintf(name, sizeof(name), "job '%s'", g->name);
        struct ctx c = {.name = name, .err = err, .err_len = err_len};
        size_t idx = g->n_vertices;
        bool by_cat = strcmp(target, "source") == 0 || strcmp(target, "sink") == 0;
        if (by_cat) {
                enum job_op_category want = target[1] == 'o' ? JOB_CAT_SOURCE : JOB_CAT_SINK;
                size_t found = 0;
                for (size_t i = 0; i < g->n_vertices; i++)
                        if (kinds[g->vertices[i].kind].cat == want) {
                                idx = i;
                                found++;
                        }
                if (found != 1) {
                        fail(&c, NULL, "", "has %zu %ss; name the step by its id", found, target);
                        return -ENOENT;
                }
        } else {
                for (size_t i = 0; i < g->n_vertices; i++)
                        if (strcmp(g->vertices[i].id, target) == 0)
                                idx = i;
                if (idx == g->n_vertices) {
                        char q[MSG_QUOTE_BYTES + 8];
                        fail(&c, NULL, "", "no step has the id '%s'",
                             quote(q, sizeof(q), target, strlen(target)));
                        return -ENOENT;
                }
        }
        struct job_vertex *v = &g->vertices[idx];
        const struct kind_def *kd = &kinds[v->kind];
        snprintf(name, sizeof(name), "step '%s'", v->id);
        int pi = param_index(v->kind, param);
        if (pi < 0) {
                const char *names[24];
                size_t nn = 0;
                for (size_t j = 0; j < kd->n_params && nn < 23; j++)
                        names[nn++] = kd->params[j].name;
                names[nn] = NULL;
                char q[MSG_QUOTE_BYTES + 8];
                return fail(&c, NULL, "", "%s has no parameter '%s' (parameters: %s)", kd->name,
                            quote(q, sizeof(q), param, strlen(param)),
                            nn ? list_names(l, sizeof(l), names) : "none");
        }
        const struct param_def *pd = &kd->params[pi];
        struct jnode n = {.type = JN_STR, .plain = true, .n = strlen(value), .u.str = value};
        struct job_vertex tmp = *v;
        bool text = ptype_is_text(pd->type);
        if (text)
                *param_str_slot(&tmp, pd) = NULL;
        int r = read_param(&c, &tmp, pd, &n, pd->name);
        if (r < 0)
                return r;
        tmp.params_set |= 1u << pi;
        r = check_step(&c, &tmp, 0, "", g->n_artifacts);
        if (r < 0) {
                if (text)
                        free(*param_str_slot(&tmp, pd));
                return r;
        }
        if (text)
                free(*param_str_slot(v, pd));
        *v = tmp;
        return 0;
}
