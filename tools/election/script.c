/* flinc-election --script: pointer-store commands run in order once elected. Each result
 * is one log line `+store {json}` with at least "op", "r" (0 or a negative errno) and, on
 * failure, "error". A write refused because leadership is suspended (-EAGAIN) is tried
 * again every 100 ms (`+store-retry`); a leadership error (-ESTALE, -EPERM) stops the
 * script: this process is not the one to write any more. */
#include "tools/election/script.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "ha/stores.h"
#include "ha/zk.h"

#define SCRIPT_MAX_LINES 4096
#define SCRIPT_MAX_LINE 4096

enum cmd_kind {
        CMD_JOB_PUT,
        CMD_JOB_GET,
        CMD_JOB_LIST,
        CMD_JOB_REMOVE,
        CMD_COUNTER_NEXT,
        CMD_CHK_ADD,
        CMD_CHK_LATEST,
        CMD_CHK_LIST,
        CMD_RESULT_PUT,
        CMD_RESULT_GET,
        CMD_RESULT_LIST,
        CMD_RESULT_EXPIRE,
        CMD_RECOVERABLE,
        CMD_SLEEP,
        CMD_RESIGN,
        CMD_EXIT,
};

struct cmd {
        enum cmd_kind kind;
        const char *name;
        char job[HA_NAME_MAX];
        char *text;
        uint64_t n;
        uint64_t count;
        unsigned retain;
        char path[HA_URI_MAX - 16];
        enum ha_job_state state;
        int64_t ms;
};

struct script {
        struct ha_store *store;
        struct ha_zk *zk;
        struct cmd *cmds;
        size_t n_cmds;
        size_t pc;
        uint64_t done_in_cmd; /* counter-next iterations done */
        struct event *next_ev;
        script_finished_fn finished;
        void *userdata;
        bool stopped;
};

static const struct {
        const char *name;
        enum cmd_kind kind;
        int min_args;
} cmd_table[] = {
        {"job-put", CMD_JOB_PUT, 2},       {"job-get", CMD_JOB_GET, 1},
        {"job-list", CMD_JOB_LIST, 0},     {"job-remove", CMD_JOB_REMOVE, 1},
        {"counter-next", CMD_COUNTER_NEXT, 2}, {"chk-add", CMD_CHK_ADD, 4},
        {"chk-latest", CMD_CHK_LATEST, 1}, {"chk-list", CMD_CHK_LIST, 1},
        {"result-put", CMD_RESULT_PUT, 2}, {"result-get", CMD_RESULT_GET, 1},
        {"result-list", CMD_RESULT_LIST, 0}, {"result-expire", CMD_RESULT_EXPIRE, 1},
        {"recoverable", CMD_RECOVERABLE, 0}, {"sleep", CMD_SLEEP, 1},
        {"resign", CMD_RESIGN, 0},         {"exit", CMD_EXIT, 0},
};

/* ---- JSON output ----------------------------------------------------------------------- */

struct jbuf {
        char *p;
        size_t len, cap;
};

static void jput(struct jbuf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p)
                        return;
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void jprintf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jprintf(struct jbuf *b, const char *fmt, ...) {
        char tmp[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n > 0)
                jput(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void jstr(struct jbuf *b, const char *s, size_t n) {
        jput(b, "\"", 1);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\') {
                        char e[2] = {'\\', (char)c};
                        jput(b, e, 2);
                } else if (c < 0x20 || c >= 0x7f) {
                        jprintf(b, "\\u%04x", c);
                } else {
                        jput(b, (const char *)&c, 1);
                }
        }
        jput(b, "\"", 1);
}

static void jkey(struct jbuf *b, const char *key) {
        jput(b, ",", 1);
        jstr(b, key, strlen(key));
        jput(b, ":", 1);
}

static void jkv_str(struct jbuf *b, const char *key, const char *value) {
        jkey(b, key);
        jstr(b, value, strlen(value));
}

/* ---- running ----------------------------------------------------------------------------- */

static void script_next(struct script *s);

static void schedule_next(struct script *s, int64_t delay_ms) {
        struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
                             .tv_usec = (suseconds_t)((delay_ms % 1000) * 1000)};
        evtimer_add(s->next_ev, &tv);
}

static void emit(struct jbuf *b) {
        jput(b, "}", 1);
        log_event("+store", "%s", b->p ? b->p : "{}");
        free(b->p);
}

static void on_reply(struct ha_store *st, const struct ha_store_reply *rep, void *userdata) {
        struct script *s = userdata;
        (void)st;
        struct cmd *c = &s->cmds[s->pc];
        if (rep->r == -EAGAIN) {
                /* Leadership is suspended (connection lost): the write was refused before
                 * it was sent. Try the same command again once resumed. */
                log_event("+store-retry", "op=%s job=%s reason=suspended", c->name,
                          c->job[0] ? c->job : "-");
                schedule_next(s, 100);
                return;
        }
        struct jbuf b = {0};
        jput(&b, "{\"op\":", 6);
        jstr(&b, c->name, strlen(c->name));
        if (c->job[0])
                jkv_str(&b, "job", c->job);
        jkey(&b, "r");
        jprintf(&b, "%d", rep->r);
        if (rep->r < 0) {
                jkv_str(&b, "errno", err_str(rep->r));
                jkv_str(&b, "error", rep->error ? rep->error : "");
        }
        if (rep->ambiguous) {
                jkey(&b, "ambiguous");
                jput(&b, "true", 4);
        }
        if (rep->orphan)
                jkv_str(&b, "orphan", rep->orphan);
        if (rep->r == 0) {
                switch (c->kind) {
                case CMD_JOB_GET:
                        jkey(&b, "data");
                        jstr(&b, rep->data, rep->len);
                        break;
                case CMD_JOB_PUT:
                        if (rep->pointer)
                                jkv_str(&b, "path", rep->pointer->path);
                        break;
                case CMD_JOB_LIST:
                case CMD_RECOVERABLE:
                        jkey(&b, "jobs");
                        jput(&b, "[", 1);
                        for (size_t i = 0; i < rep->n_names; i++) {
                                if (i)
                                        jput(&b, ",", 1);
                                jstr(&b, rep->names[i], strlen(rep->names[i]));
                        }
                        jput(&b, "]", 1);
                        break;
                case CMD_COUNTER_NEXT:
                case CMD_CHK_LATEST:
                        jkey(&b, "id");
                        jprintf(&b, "%" PRIu64, rep->id);
                        if (rep->pointer)
                                jkv_str(&b, "path", rep->pointer->path);
                        break;
                case CMD_CHK_ADD:
                case CMD_CHK_LIST:
                        jkey(&b, c->kind == CMD_CHK_ADD ? "subsumed" : "ids");
                        jput(&b, "[", 1);
                        for (size_t i = 0; i < rep->n_ids; i++)
                                jprintf(&b, "%s%" PRIu64, i ? "," : "", rep->ids[i]);
                        jput(&b, "]", 1);
                        break;
                case CMD_RESULT_PUT:
                case CMD_RESULT_GET:
                case CMD_RESULT_LIST:
                case CMD_RESULT_EXPIRE:
                        jkey(&b, "results");
                        jput(&b, "[", 1);
                        for (size_t i = 0; i < rep->n_results; i++) {
                                const struct ha_job_result *r = &rep->results[i];
                                jput(&b, i ? ",{\"job\":" : "{\"job\":", i ? 8 : 7);
                                jstr(&b, r->job, strlen(r->job));
                                jkv_str(&b, "state", ha_job_state_name(r->state));
                                jkey(&b, "end_ms");
                                jprintf(&b, "%" PRId64, r->end_time_ms);
                                jkey(&b, "epoch");
                                jprintf(&b, "%" PRIu64 "}", r->epoch);
                        }
                        jput(&b, "]", 1);
                        break;
                default:
                        break;
                }
        }
        emit(&b);
        if (rep->r == -ESTALE || rep->r == -EPERM || rep->r == -ECANCELED || rep->r == -ESHUTDOWN) {
                /* Not (or no longer) the leader: stop writing. */
                s->stopped = true;
                log_event_warn("+script-stopped", "at line %zu: %s", s->pc + 1, err_str(rep->r));
                return;
        }
        if (c->kind == CMD_COUNTER_NEXT && ++s->done_in_cmd < c->count) {
                script_next(s);
                return;
        }
        s->done_in_cmd = 0;
        s->pc++;
        script_next(s);
}

static int run_cmd(struct script *s, struct cmd *c) {
        struct ha_store *st = s->store;
        switch (c->kind) {
        case CMD_JOB_PUT:
                return ha_jobgraph_put(st, c->job, c->text, strlen(c->text), on_reply, s);
        case CMD_JOB_GET:
                return ha_jobgraph_get(st, c->job, on_reply, s);
        case CMD_JOB_LIST:
                return ha_jobgraph_list(st, on_reply, s);
        case CMD_JOB_REMOVE:
                return ha_jobgraph_remove(st, c->job, on_reply, s);
        case CMD_COUNTER_NEXT:
                return c->n ? ha_counter_next_above(st, c->job, c->n, on_reply, s)
                            : ha_counter_next(st, c->job, on_reply, s);
        case CMD_CHK_ADD: {
                struct ha_pointer p = {.id = c->n};
                uint32_t crc = 0;
                uint64_t size = 0;
                (void)fs_crc32c_file(c->path, &crc, &size); /* a missing file: 0, 0 */
                p.crc = crc;
                p.size_bytes = size;
                snprintf(p.path, sizeof(p.path), "file://%s", c->path);
                return ha_checkpoint_add(st, c->job, &p, c->retain, on_reply, s);
        }
        case CMD_CHK_LATEST:
                return ha_checkpoint_latest(st, c->job, on_reply, s);
        case CMD_CHK_LIST:
                return ha_checkpoint_list(st, c->job, on_reply, s);
        case CMD_RESULT_PUT: {
                struct ha_job_result r = {.state = c->state, .end_time_ms = clock_wall_ms()};
                snprintf(r.job, sizeof(r.job), "%s", c->job);
                return ha_jobresult_put(st, &r, on_reply, s);
        }
        case CMD_RESULT_GET:
                return ha_jobresult_get(st, c->job, on_reply, s);
        case CMD_RESULT_LIST:
                return ha_jobresult_list(st, on_reply, s);
        case CMD_RESULT_EXPIRE:
                return ha_jobresult_expire(st, clock_wall_ms() + c->ms, on_reply, s);
        case CMD_RECOVERABLE:
                return ha_jobs_recoverable(st, on_reply, s);
        default:
                return -EINVAL;
        }
}

static void script_next(struct script *s) {
        if (s->stopped)
                return;
        while (s->pc < s->n_cmds) {
                struct cmd *c = &s->cmds[s->pc];
                if (c->kind == CMD_SLEEP) {
                        s->pc++;
                        schedule_next(s, c->ms);
                        return;
                }
                if (c->kind == CMD_RESIGN || c->kind == CMD_EXIT) {
                        s->pc = s->n_cmds;
                        s->stopped = true;
                        s->finished(s, c->kind == CMD_EXIT ? 0 : -1, c->kind == CMD_RESIGN,
                                    s->userdata);
                        return;
                }
                int r = run_cmd(s, c);
                if (r == 0)
                        return;
                log_error(r, "script line %zu (%s) could not start", s->pc + 1, c->name);
                s->stopped = true;
                s->finished(s, 1, false, s->userdata);
                return;
        }
        s->stopped = true;
        s->finished(s, -1, false, s->userdata);
}

static void on_next_ev(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        script_next(arg);
}

void script_start(struct script *s) {
        if (s)
                schedule_next(s, 0);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || end == s || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_line(char *line, struct cmd *c, char *err, size_t err_len, size_t lineno) {
        /* job-put takes the rest of the line, spaces included, as its text */
        const char *rest = NULL;
        if (strncmp(line, "job-put", 7) == 0 && (line[7] == ' ' || line[7] == '\t')) {
                const char *p = line + 7;
                p += strspn(p, " \t");
                p += strcspn(p, " \t");
                p += strspn(p, " \t");
                rest = p;
        }
        if (rest && !(c->text = strdup(rest)))
                return -ENOMEM;
        char *args[6] = {0};
        int nargs = 0;
        char *save = NULL;
        char *word = strtok_r(line, " \t", &save);
        for (char *w = strtok_r(NULL, " \t", &save); w && nargs < 6; w = strtok_r(NULL, " \t", &save))
                args[nargs++] = w;
        for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++) {
                if (strcmp(word, cmd_table[i].name) != 0)
                        continue;
                c->kind = cmd_table[i].kind;
                c->name = cmd_table[i].name;
                if (nargs < cmd_table[i].min_args) {
                        snprintf(err, err_len, "line %zu: %s needs %d argument(s)", lineno, word,
                                 cmd_table[i].min_args);
                        return -EINVAL;
                }
                bool has_job = c->kind != CMD_JOB_LIST && c->kind != CMD_RESULT_LIST &&
                               c->kind != CMD_RESULT_EXPIRE && c->kind != CMD_RECOVERABLE &&
                               c->kind != CMD_SLEEP && c->kind != CMD_RESIGN && c->kind != CMD_EXIT;
                if (has_job) {
                        if (!ha_store_job_id_valid(args[0])) {
                                snprintf(err, err_len, "line %zu: job id '%s' is not valid", lineno,
                                         args[0]);
                                return -EINVAL;
                        }
                        snprintf(c->job, sizeof(c->job), "%s", args[0]);
                }
                int r = 0;
                switch (c->kind) {
                case CMD_COUNTER_NEXT: /* JOB COUNT [ABOVE]: ids above ABOVE too */
                        r = parse_u64(args[1], &c->count);
                        if (r == 0 && nargs >= 3)
                                r = parse_u64(args[2], &c->n);
                        break;
                case CMD_CHK_ADD: {
                        uint64_t retain = 0;
                        r = parse_u64(args[1], &c->n);
                        if (r == 0)
                                r = parse_u64(args[3], &retain);
                        if (r == 0 && (retain == 0 || retain > 1000 || c->n == 0))
                                r = -EINVAL;
                        c->retain = (unsigned)retain;
                        snprintf(c->path, sizeof(c->path), "%s", args[2]);
                        break;
                }
                case CMD_RESULT_PUT:
                        r = ha_job_state_parse(args[1], &c->state);
                        break;
                case CMD_RESULT_EXPIRE:
                case CMD_SLEEP: {
                        char *end;
                        errno = 0;
                        long long v = strtoll(args[0], &end, 10);
                        if (errno || *end || end == args[0])
                                r = -EINVAL;
                        c->ms = v;
                        if (c->kind == CMD_SLEEP && (v < 0 || v > 3600000))
                                r = -EINVAL;
                        break;
                }
                default:
                        break;
                }
                if (r < 0)
                        snprintf(err, err_len, "line %zu: bad arguments for %s", lineno, word);
                return r;
        }
        snprintf(err, err_len, "line %zu: unknown command '%s'", lineno, word);
        return -EINVAL;
}

int script_create(struct ha_zk *zk, struct ha_election *election, const char *base_path,
                  const char *cluster, const char *storage_dir, const char *path,
                  script_finished_fn finished, void *userdata, struct script **ret,
                  char *err, size_t err_len) {
        char *text = NULL;
        size_t len = 0;
        int r = fs_read_all(path, SCRIPT_MAX_LINES * 256, &text, &len);
        if (r < 0) {
                snprintf(err, err_len, "cannot read it: %s", err_str(r));
                return r;
        }
        struct script *s = calloc(1, sizeof(*s));
        if (!s) {
                free(text);
                return -ENOMEM;
        }
        s->zk = zk;
        s->finished = finished;
        s->userdata = userdata;
        s->cmds = calloc(SCRIPT_MAX_LINES, sizeof(*s->cmds));
        if (!s->cmds) {
                r = -ENOMEM;
                goto fail;
        }
        size_t lineno = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                lineno++;
                while (*line == ' ' || *line == '\t')
                        line++;
                if (!*line || *line == '#')
                        continue;
                if (s->n_cmds == SCRIPT_MAX_LINES) {
                        snprintf(err, err_len, "more than %d commands", SCRIPT_MAX_LINES);
                        r = -E2BIG;
                        goto fail;
                }
                if ((r = parse_line(line, &s->cmds[s->n_cmds], err, err_len, lineno)) < 0) {
                        free(s->cmds[s->n_cmds].text);
                        goto fail;
                }
                s->n_cmds++;
        }
        struct ha_store_options o = {
                .base_path = base_path,
                .cluster_id = cluster,
                .storage_dir = storage_dir,
                .job_result_ttl_ms = 3600 * 1000,
        };
        if ((r = ha_store_create(zk, election, &o, &s->store)) < 0) {
                snprintf(err, err_len, "cannot create the store (storage dir '%s')", storage_dir);
                goto fail;
        }
        s->next_ev = evtimer_new(ha_zk_event_base(zk), on_next_ev, s);
        if (!s->next_ev) {
                r = -ENOMEM;
                goto fail;
        }
        free(text);
        *ret = s;
        return 0;
fail:
        free(text);
        script_destroy(s);
        return r;
}

void script_destroy(struct script *s) {
        if (!s)
                return;
        s->stopped = true;
        ha_store_destroy(s->store);
        if (s->next_ev)
                event_free(s->next_ev);
        for (size_t i = 0; s->cmds && i < s->n_cmds; i++)
                free(s->cmds[i].text);
        free(s->cmds);
        free(s);
}
