/* Built-in operators and the chain that runs them in one task thread (see ops.h). */
#include "worker/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/ids.h"
#include "common/storage.h"

#define WRK_CHAIN_ERROR_BYTES 512u
#define WRK_PATH_MAX 4096u

__extension__ typedef unsigned __int128 wrk_u128;

struct wrk_chain {
        const struct job_graph *g;
        uint32_t chain;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        uint32_t subtask;
        uint32_t parallelism;
        FILE *out;
        FILE *errs;

        /* The source: the generator is the only one so far. */
        const struct job_vertex *source;
        uint64_t gen_k;     /* records this subtask emitted */
        uint64_t gen_limit; /* records this subtask emits in all */

        struct wrk_op **ops; /* after the source, head to tail */
        size_t n_ops;
        bool opened;

        char text[WRK_RECORD_MAX_BYTES];
        char describe[512];
        char error[WRK_CHAIN_ERROR_BYTES];
};

static int chain_fail(struct wrk_chain *c, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int chain_fail(struct wrk_chain *c, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        return r;
}

static int set_err(char *err, size_t err_len, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t err_len, int r, const char *fmt, ...) {
        if (err && err_len) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, err_len, fmt, ap);
                va_end(ap);
        }
        return r;
}

int wrk_op_emit(struct wrk_op *op, const struct wrk_record *rec) {
        op->records_out++;
        struct wrk_op *next = op->next;
        next->records_in++;
        return next->vt->push(next, rec);
}

/* Writes all of buf to fd, retrying short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

static size_t fmt_u64(char *buf, uint64_t v) {
        char tmp[20];
        size_t n = 0;
        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        return n;
}

/* Formats a record as one output line without the newline: the text, or "(text,value)"
 * for a pair. 0 and *ret_len, or -ENOSPC. */
static int format_record(const struct wrk_record *rec, char *buf, size_t len, size_t *ret_len) {
        if (rec->kind == WRK_REC_PAIR) {
                int n = snprintf(buf, len, "(%.*s,%" PRId64 ")", (int)rec->text_len, rec->text,
                                 rec->value);
                if (n < 0 || (size_t)n >= len)
                        return -ENOSPC;
                *ret_len = (size_t)n;
                return 0;
        }
        if (rec->text_len > len)
                return -ENOSPC;
        memcpy(buf, rec->text, rec->text_len);
        *ret_len = rec->text_len;
        return 0;
}

/* ------------------------------------------------------------------------------------
 * Generator arithmetic. */

uint64_t wrk_gen_subtask_count(uint64_t count, uint32_t subtask, uint32_t parallelism) {
        if (count == 0)
                return UINT64_MAX;
        if (parallelism == 0 || subtask >= parallelism || subtask >= count)
                return 0;
        return (count - subtask - 1) / parallelism + 1;
}

uint64_t wrk_gen_seq(uint64_t k, uint32_t subtask, uint32_t parallelism) {
        return (uint64_t)subtask + k * (uint64_t)parallelism;
}

uint64_t wrk_gen_word_index(int64_t seed, int64_t words, int64_t line_words, uint64_t n,
                            uint64_t j) {
        uint64_t w = words > 0 ? (uint64_t)words : 1;
        uint64_t s = seed > 0 ? (uint64_t)seed % w : 0;
        uint64_t l = line_words > 0 ? (uint64_t)line_words % w : 1 % w;
        /* (seed + n * line_words + j) mod words, in parts that stay below 2^64 (words is
         * at most 10^7, so every product is below 10^14). */
        wrk_u128 x = (wrk_u128)s + ((wrk_u128)(n % w) * l) % w + j % w;
        return (uint64_t)(x % w);
}

int wrk_gen_format(const struct job_generator_params *p, uint64_t n, char *buf,
                   size_t buf_len, size_t *ret_len) {
        size_t pos = 0;
        int64_t lw = p->line_words > 0 ? p->line_words : 1;
        for (int64_t j = 0; j < lw; j++) {
                /* ' ' + 'w' + up to 20 digits */
                if (pos + 22 > buf_len)
                        return -ENOSPC;
                if (j > 0)
                        buf[pos++] = ' ';
                buf[pos++] = 'w';
                pos += fmt_u64(buf + pos,
                               wrk_gen_word_index(p->seed, p->words, lw, n, (uint64_t)j));
        }
        if (pos < buf_len)
                buf[pos] = '\0';
        *ret_len = pos;
        return 0;
}

/* ------------------------------------------------------------------------------------
 * Rate limiter. */

void wrk_rate_init(struct wrk_rate *r, uint64_t rate_per_s, uint32_t share,
                   uint64_t now_us) {
        memset(r, 0, sizeof(*r));
        r->rate_per_s = rate_per_s;
        r->share = share ? share : 1;
        uint64_t per_10ms = rate_per_s / ((uint64_t)r->share * 100u);
        r->burst = per_10ms > 0 ? per_10ms : 1;
        r->start_us = now_us;
}

static uint64_t rate_earned(const struct wrk_rate *r, uint64_t now_us) {
        uint64_t elapsed = now_us > r->start_us ? now_us - r->start_us : 0;
        wrk_u128 e = (wrk_u128)elapsed * r->rate_per_s / ((wrk_u128)r->share * 1000000u);
        if (e > (wrk_u128)(UINT64_MAX - r->burst))
                return UINT64_MAX;
        return r->burst + (uint64_t)e;
}

uint64_t wrk_rate_allowance(struct wrk_rate *r, uint64_t now_us, uint64_t max) {
        if (r->rate_per_s == 0)
                return max;
        uint64_t earned = rate_earned(r, now_us);
        if (earned <= r->granted)
                return 0;
        uint64_t avail = earned - r->granted;
        if (avail > r->burst) {
                /* Behind the schedule (the consumer stalled): start it again rather than
                 * catching up with a flood. */
                r->start_us = now_us;
                r->granted = 0;
                avail = r->burst;
        }
        return avail < max ? avail : max;
}

void wrk_rate_take(struct wrk_rate *r, uint64_t n) {
        r->granted = n > UINT64_MAX - r->granted ? UINT64_MAX : r->granted + n;
}

uint64_t wrk_rate_wait_us(const struct wrk_rate *r, uint64_t now_us) {
        if (r->rate_per_s == 0)
                return 0;
        uint64_t need = r->granted + 1; /* the record we wait for */
        if (need <= r->burst)
                return 0;
        need -= r->burst;
        /* The first elapsed time t with floor(t * rate / (share * 1e6)) >= need. */
        wrk_u128 den = (wrk_u128)r->rate_per_s;
        wrk_u128 t = ((wrk_u128)need * r->share * 1000000u + den - 1) / den;
        uint64_t elapsed = now_us > r->start_us ? now_us - r->start_us : 0;
        if (t <= elapsed)
                return 0;
        wrk_u128 w = t - elapsed;
        return w > UINT64_MAX ? UINT64_MAX : (uint64_t)w;
}

/* ------------------------------------------------------------------------------------
 * File sink names. */

int wrk_file_part_name(char *buf, size_t buf_len, uint32_t subtask, uint32_t attempt,
                       uint32_t counter) {
        int n = snprintf(buf, buf_len, "part-%" PRIu32 "-%" PRIu32 "-%" PRIu32, subtask,
                         attempt, counter);
        return n < 0 || (size_t)n >= buf_len ? -ENOSPC : 0;
}

/* ------------------------------------------------------------------------------------
 * tokenize: splits text at every byte that is not an ASCII letter or digit (bytes of
 * UTF-8 sequences count as letters, so non-ASCII words stay whole), optionally
 * lowercasing ASCII letters; each word goes on as a text record. */

struct op_tokenize {
        struct wrk_op op;
        bool lowercase;
        char word[WRK_RECORD_MAX_BYTES];
};

static bool word_byte(unsigned char ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
               ch >= 0x80;
}

static int tokenize_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_tokenize *t = (struct op_tokenize *)op;
        const unsigned char *s = (const unsigned char *)rec->text;
        size_t i = 0, n = rec->text_len < sizeof(t->word) ? rec->text_len : sizeof(t->word);
        while (i < n) {
                while (i < n && !word_byte(s[i]))
                        i++;
                size_t start = i;
                while (i < n && word_byte(s[i])) {
                        unsigned char ch = s[i];
                        if (t->lowercase && ch >= 'A' && ch <= 'Z')
                                ch = (unsigned char)(ch - 'A' + 'a');
                        t->word[i - start] = (char)ch;
                        i++;
                }
                if (i > start) {
                        struct wrk_record w = {.kind = WRK_REC_TEXT, .text = t->word,
                                               .text_len = i - start, .value = 1,
                                               .seq = rec->seq};
                        int r = wrk_op_emit(op, &w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static void tokenize_destroy(struct wrk_op *op) {
        free(op);
}

static const struct wrk_op_vtable tokenize_vt = {
        .name = "tokenize", .push = tokenize_push, .destroy = tokenize_destroy,
};

/* ------------------------------------------------------------------------------------
 * print sink. */

struct op_print {
        struct wrk_op op;
        FILE *stream;
        const char *stream_name;
        char prefix[16];
        size_t prefix_len;
        size_t used;
        char buf[WRK_SINK_BUFFER_BYTES];
};

static int print_flush(struct wrk_op *op) {
        struct op_print *p = (struct op_print *)op;
        if (p->used == 0)
                return 0;
        flockfile(p->stream);
        size_t n = fwrite_unlocked(p->buf, 1, p->used, p->stream);
        int ferr = n != p->used || fflush_unlocked(p->stream) != 0;
        funlockfile(p->stream);
        p->used = 0;
        if (ferr)
                return chain_fail(op->chain, -EIO, "print sink: writing to %s failed",
                                  p->stream_name);
        return 0;
}

static int print_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_print *p = (struct op_print *)op;
        /* prefix + text (or "(text,value)": 23 more bytes) + newline */
        if (p->used + p->prefix_len + rec->text_len + 32 > sizeof(p->buf)) {
                int r = print_flush(op);
                if (r < 0)
                        return r;
        }
        memcpy(p->buf + p->used, p->prefix, p->prefix_len);
        size_t len;
        int r = format_record(rec, p->buf + p->used + p->prefix_len,
                              sizeof(p->buf) - p->used - p->prefix_len - 1, &len);
        if (r < 0)
                return chain_fail(op->chain, r, "print sink: a record of %zu bytes is too long",
                                  rec->text_len);
        p->used += p->prefix_len + len;
        p->buf[p->used++] = '\n';
        op->records_out++;
        return 0;
}

static void print_destroy(struct wrk_op *op) {
        free(op);
}

static const struct wrk_op_vtable print_vt = {
        .name = "sink:print", .push = print_push, .flush = print_flush, .finish = print_flush,
        .destroy = print_destroy,
};

/* ------------------------------------------------------------------------------------
 * discard sink. */

static int discard_push(struct wrk_op *op, const struct wrk_record *rec) {
        (void)rec;
        op->records_out++;
        return 0;
}

static void discard_destroy(struct wrk_op *op) {
        free(op);
}

static const struct wrk_op_vtable discard_vt = {
        .name = "sink:discard", .push = discard_push, .destroy = discard_destroy,
};

/* ------------------------------------------------------------------------------------
 * file sink. */

struct op_file {
        struct wrk_op op;
        char dir[WRK_PATH_MAX];
        char path[WRK_PATH_MAX];
        int fd;
        uint32_t counter;        /* of the open part file */
        uint64_t file_bytes;     /* written to the open part file, buffer included */
        uint64_t part_size_bytes;
        size_t used;
        char buf[WRK_SINK_BUFFER_BYTES];
};

static int file_open_part(struct op_file *f) {
        char name[64];
        int r = wrk_file_part_name(name, sizeof(name), f->op.chain->subtask,
                                   f->op.chain->attempt, f->counter);
        if (r < 0 || (size_t)snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name) >=
                             sizeof(f->path))
                return chain_fail(f->op.chain, -ENAMETOOLONG, "file sink: path too long in %s",
                                  f->dir);
        f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (f->fd < 0)
                return chain_fail(f->op.chain, -errno, "file sink: cannot create %s: %s",
                                  f->path, strerror(errno));
        f->file_bytes = 0;
        return 0;
}

static int file_write_buffer(struct op_file *f) {
        if (f->used == 0)
                return 0;
        int r = write_all(f->fd, f->buf, f->used);
        if (r < 0)
                return chain_fail(f->op.chain, r, "file sink: writing %s failed: %s", f->path,
                                  strerror(-r));
        f->used = 0;
        return 0;
}

/* Writes out, fsyncs and closes the open part file. */
static int file_close_part(struct op_file *f) {
        int r = file_write_buffer(f);
        if (r < 0)
                return r;
        if (fsync(f->fd) < 0) {
                r = -errno;
                return chain_fail(f->op.chain, r, "file sink: fsync of %s failed: %s", f->path,
                                  strerror(-r));
        }
        int fd = f->fd;
        f->fd = -1;
        if (close(fd) < 0 && errno != EINTR)
                return chain_fail(f->op.chain, -errno, "file sink: close of %s failed: %s",
                                  f->path, strerror(errno));
        return 0;
}

static int file_open(struct wrk_op *op) {
        struct op_file *f = (struct op_file *)op;
        int r = fs_mkdir_p(f->dir, 0755);
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: cannot create directory %s: %s",
                                  f->dir, strerror(-r));
        return file_open_part(f);
}

static int file_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_file *f = (struct op_file *)op;
        int r;
        if (f->fd < 0 && (r = file_open_part(f)) < 0) /* the next part after a roll */
                return r;
        if (f->used + rec->text_len + 32 > sizeof(f->buf) && (r = file_write_buffer(f)) < 0)
                return r;
        size_t len;
        r = format_record(rec, f->buf + f->used, sizeof(f->buf) - f->used - 1, &len);
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: a record of %zu bytes is too long",
                                  rec->text_len);
        f->used += len;
        f->buf[f->used++] = '\n';
        f->file_bytes += len + 1;
        op->records_out++;
        if (f->file_bytes >= f->part_size_bytes) {
                /* Roll: the next part is opened by the next record. */
                if ((r = file_close_part(f)) < 0)
                        return r;
                f->counter++;
        }
        return 0;
}

static int file_flush(struct wrk_op *op) {
        struct op_file *f = (struct op_file *)op;
        return f->fd >= 0 ? file_write_buffer(f) : 0;
}

static int file_finish(struct wrk_op *op) {
        struct op_file *f = (struct op_file *)op;
        int r = f->fd >= 0 ? file_close_part(f) : 0;
        if (r < 0)
                return r;
        r = fs_fsync_dir(f->dir);
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: fsync of directory %s failed: %s",
                                  f->dir, strerror(-r));
        return 0;
}

static void file_destroy(struct wrk_op *op) {
        struct op_file *f = (struct op_file *)op;
        if (!f)
                return;
        if (f->fd >= 0)
                close(f->fd);
        free(f);
}

static const struct wrk_op_vtable file_vt = {
        .name = "sink:file", .open = file_open, .push = file_push, .flush = file_flush,
        .finish = file_finish, .destroy = file_destroy,
};

/* ------------------------------------------------------------------------------------
 * Chains. */

static bool kind_supported(enum job_op_kind k) {
        switch (k) {
        case JOB_OP_GENERATOR:
        case JOB_OP_TOKENIZE:
        case JOB_OP_PRINT_SINK:
        case JOB_OP_DISCARD_SINK:
        case JOB_OP_FILE_SINK:
                return true;
        default:
                return false;
        }
}

int wrk_chain_check(const struct job_graph *g, uint32_t chain, char *err, size_t err_len) {
        if (!g || chain >= g->n_chains)
                return set_err(err, err_len, -EINVAL, "vertex %" PRIu32 " does not exist (the "
                               "job has %zu)", chain, g ? g->n_chains : (size_t)0);
        const struct job_chain *ch = &g->chains[chain];
        if (ch->n == 0 || ch->first + ch->n > g->n_vertices)
                return set_err(err, err_len, -EINVAL, "vertex %" PRIu32 " is empty", chain);
        for (uint32_t i = 0; i < ch->n; i++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + i]];
                if (!kind_supported(v->kind))
                        return set_err(err, err_len, -EOPNOTSUPP,
                                       "operator '%s' (step '%s') is not supported by this "
                                       "worker yet", job_op_kind_name(v->kind), v->id);
        }
        const struct job_vertex *head = &g->vertices[g->chain_vertices[ch->first]];
        const struct job_vertex *tail = &g->vertices[g->chain_vertices[ch->first + ch->n - 1]];
        if (job_op_kind_category(head->kind) != JOB_CAT_SOURCE)
                return set_err(err, err_len, -EOPNOTSUPP,
                               "step '%s' reads from another vertex over the network, which "
                               "this worker cannot do yet", head->id);
        if (job_op_kind_category(tail->kind) != JOB_CAT_SINK)
                return set_err(err, err_len, -EOPNOTSUPP,
                               "step '%s' sends to another vertex over the network, which "
                               "this worker cannot do yet", tail->id);
        for (uint32_t i = 1; i < ch->n; i++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + i]];
                if (job_op_kind_category(v->kind) == JOB_CAT_SOURCE)
                        return set_err(err, err_len, -EINVAL,
                                       "step '%s' is a source inside a chain", v->id);
        }
        return 0;
}

static int op_create(struct wrk_chain *c, const struct job_vertex *v, uint32_t vi,
                     struct wrk_op **ret, char *err, size_t err_len) {
        struct wrk_op *op = NULL;
        switch (v->kind) {
        case JOB_OP_TOKENIZE: {
                struct op_tokenize *t = calloc(1, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                t->lowercase = v->params.tokenize.lowercase;
                t->op.vt = &tokenize_vt;
                op = &t->op;
                break;
        }
        case JOB_OP_PRINT_SINK: {
                struct op_print *p = calloc(1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                bool to_err = v->params.print.target == JOB_PRINT_STDERR;
                p->stream = to_err ? (c->errs ? c->errs : stderr) : (c->out ? c->out : stdout);
                p->stream_name = to_err ? "stderr" : "stdout";
                if (c->parallelism > 1)
                        p->prefix_len = (size_t)snprintf(p->prefix, sizeof(p->prefix),
                                                         "%" PRIu32 "> ", c->subtask + 1);
                p->op.vt = &print_vt;
                op = &p->op;
                break;
        }
        case JOB_OP_DISCARD_SINK: {
                op = calloc(1, sizeof(*op));
                if (!op)
                        return -ENOMEM;
                op->vt = &discard_vt;
                break;
        }
        case JOB_OP_FILE_SINK: {
                struct op_file *f = calloc(1, sizeof(*f));
                if (!f)
                        return -ENOMEM;
                f->fd = -1;
                char why[256];
                int r = storage_uri_to_path(v->params.file_sink.path, f->dir, sizeof(f->dir), why,
                                            sizeof(why));
                if (r < 0) {
                        free(f);
                        return set_err(err, err_len, r, "step '%s': path: %s", v->id, why);
                }
                f->part_size_bytes = v->params.file_sink.part_size_bytes > 0
                                             ? (uint64_t)v->params.file_sink.part_size_bytes
                                             : UINT64_MAX;
                f->op.vt = &file_vt;
                op = &f->op;
                break;
        }
        default:
                return set_err(err, err_len, -EOPNOTSUPP,
                               "operator '%s' (step '%s') is not supported by this worker yet",
                               job_op_kind_name(v->kind), v->id);
        }
        op->chain = c;
        op->vertex = vi;
        *ret = op;
        return 0;
}

int wrk_chain_create(const struct job_graph *g, uint32_t chain,
                     const struct wrk_chain_ctx *ctx, struct wrk_chain **ret, char *err,
                     size_t err_len) {
        int r = wrk_chain_check(g, chain, err, err_len);
        if (r < 0)
                return r;
        if (!ctx || !ctx->job || ctx->parallelism == 0 || ctx->subtask >= ctx->parallelism)
                return set_err(err, err_len, -EINVAL, "bad subtask for vertex %" PRIu32, chain);
        const struct job_chain *ch = &g->chains[chain];
        struct wrk_chain *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->g = g;
        c->chain = chain;
        snprintf(c->job, sizeof(c->job), "%s", ctx->job);
        c->attempt = ctx->attempt;
        c->subtask = ctx->subtask;
        c->parallelism = ctx->parallelism;
        c->out = ctx->out;
        c->errs = ctx->err;
        c->source = &g->vertices[g->chain_vertices[ch->first]];
        c->gen_limit = wrk_gen_subtask_count((uint64_t)c->source->params.generator.count,
                                             c->subtask, c->parallelism);
        c->ops = calloc(ch->n, sizeof(*c->ops));
        if (!c->ops) {
                r = -ENOMEM;
                goto fail;
        }
        size_t dlen = (size_t)snprintf(c->describe, sizeof(c->describe), "%s",
                                       job_op_kind_name(c->source->kind));
        for (uint32_t i = 1; i < ch->n; i++) {
                uint32_t vi = g->chain_vertices[ch->first + i];
                struct wrk_op *op = NULL;
                r = op_create(c, &g->vertices[vi], vi, &op, err, err_len);
                if (r < 0) {
                        if (r == -ENOMEM)
                                set_err(err, err_len, r, "out of memory");
                        goto fail;
                }
                if (c->n_ops > 0)
                        c->ops[c->n_ops - 1]->next = op;
                c->ops[c->n_ops++] = op;
                if (dlen < sizeof(c->describe))
                        dlen += (size_t)snprintf(c->describe + dlen, sizeof(c->describe) - dlen,
                                                 " -> %s", op->vt->name);
        }
        *ret = c;
        return 0;
fail:
        wrk_chain_destroy(c);
        return r;
}

int wrk_chain_open(struct wrk_chain *c) {
        for (size_t i = c->n_ops; i-- > 0;) {
                struct wrk_op *op = c->ops[i];
                if (op->vt->open) {
                        int r = op->vt->open(op);
                        if (r < 0)
                                return r;
                }
        }
        c->opened = true;
        return 0;
}

static int chain_flush(struct wrk_chain *c) {
        for (size_t i = 0; i < c->n_ops; i++) {
                struct wrk_op *op = c->ops[i];
                if (op->vt->flush) {
                        int r = op->vt->flush(op);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int wrk_chain_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        uint64_t emitted = 0;
        int r = 0;
        if (!c->opened || c->n_ops == 0)
                return chain_fail(c, -EINVAL, "chain is not open");
        if (max > WRK_STEP_MAX_RECORDS)
                max = WRK_STEP_MAX_RECORDS;
        const struct job_generator_params *gp = &c->source->params.generator;
        struct wrk_op *head = c->ops[0];
        while (emitted < max && c->gen_k < c->gen_limit) {
                uint64_t n = wrk_gen_seq(c->gen_k, c->subtask, c->parallelism);
                size_t len;
                r = wrk_gen_format(gp, n, c->text, sizeof(c->text), &len);
                if (r < 0) {
                        r = chain_fail(c, r, "generator: record %" PRIu64 " is longer than %u "
                                       "bytes", n, WRK_RECORD_MAX_BYTES);
                        break;
                }
                struct wrk_record rec = {.kind = WRK_REC_TEXT, .text = c->text, .text_len = len,
                                         .value = 1, .seq = n};
                c->gen_k++;
                emitted++;
                head->records_in++;
                r = head->vt->push(head, &rec);
                if (r < 0)
                        break;
        }
        if (ret_emitted)
                *ret_emitted = emitted;
        if (r < 0)
                return r;
        r = chain_flush(c);
        if (r < 0)
                return r;
        return c->gen_k >= c->gen_limit ? 1 : 0;
}

int wrk_chain_finish(struct wrk_chain *c) {
        int r = chain_flush(c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n_ops; i++) {
                struct wrk_op *op = c->ops[i];
                if (op->vt->finish && (r = op->vt->finish(op)) < 0)
                        return r;
        }
        return 0;
}

void wrk_chain_rate(const struct wrk_chain *c, uint64_t *ret_rate_per_s, uint32_t *ret_share) {
        int64_t rate = c->source->params.generator.rate_per_s;
        *ret_rate_per_s = rate > 0 ? (uint64_t)rate : 0;
        *ret_share = c->parallelism;
}

uint64_t wrk_chain_records_in(const struct wrk_chain *c) {
        return c->gen_k;
}

uint64_t wrk_chain_records_out(const struct wrk_chain *c) {
        return c->n_ops ? c->ops[c->n_ops - 1]->records_out : 0;
}

const char *wrk_chain_describe(const struct wrk_chain *c) {
        return c->describe;
}

const char *wrk_chain_error(const struct wrk_chain *c) {
        return c->error;
}

void wrk_chain_destroy(struct wrk_chain *c) {
        if (!c)
                return;
        for (size_t i = 0; c->ops && i < c->n_ops; i++)
                c->ops[i]->vt->destroy(c->ops[i]);
        free(c->ops);
        free(c);
}
