/* Built-in operators and the chain that runs them in one task thread (see ops.h). */
#include "worker/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dlfcn.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/ids.h"
#include "common/keygroup.h"
#include "common/storage.h"
#include "statebackend/backend.h"
#include "worker/dataflow.h"
#include "worker/exchange.h"
#include "worker/sink2pc.h"
#include "worker/substate.h"
#include "worker/udf.h"
#include "statebackend/restore.h"
#include "statebackend/snapshot.h"

#define WRK_CHAIN_ERROR_BYTES 512u
#define WRK_PATH_MAX 4096u
#define WRK_MAX_LIBS 32u /* JOB_MAX_ARTIFACTS */

__extension__ typedef unsigned __int128 wrk_u128;

/* One checkpoint's asynchronous part, queued to the chain's upload thread. */
struct upload_job {
        struct upload_job *next;
        uint64_t n;
        struct wrk_substate_op *so; /* owned */
        size_t n_so;
        struct sb_snapshot **snaps; /* per so entry, or NULL; owned */
        uint64_t sync_ms, alignment_ms, alignment_bytes;
};

struct wrk_chain {
        const struct job_graph *g;
        uint32_t chain;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        uint32_t subtask;
        uint32_t parallelism;
        FILE *out;
        FILE *errs;

        /* The source: the generator is the only one so far. NULL when the head reads
         * from an input gate. */
        const struct job_vertex *source;
        uint64_t gen_k;     /* records this subtask emitted */
        uint64_t gen_end;   /* count, or UINT64_MAX when unbounded */
        struct wrk_gen_entry *gen; /* the position (dataflow.h GENERATOR POSITION) */
        size_t n_gen;
        /* The file source: its path, splits (dataflow.h FILE SOURCE SPLITS), reader. */
        char src_path[WRK_PATH_MAX];
        struct wrk_file_split *splits;
        size_t n_splits;
        size_t cur_split;
        bool split_positioned;
        FILE *src;
        char *line;
        size_t line_cap;
        void *libs[WRK_MAX_LIBS]; /* dlopen handles of the job's artifacts, by index */
        size_t n_libs;
        /* The socket source: connection and bytes of an incomplete line in text. */
        int sock;
        size_t sock_used;

        /* Event time (the job has an event-time window): the source's watermark generator
         * (dataflow.h WATERMARKS), and whether its end (INT64_MAX) went out. */
        bool event_time;
        struct wrk_wm_gen wmgen;
        bool wm_final_sent;
        int64_t (*wall_ms)(void); /* processing time: clock_wall_ms or a test's clock */

        /* Network input (source == NULL). */
        struct wrk_gate *gate;
        uint32_t n_channels;
        struct wrk_aligner aligner;
        bool aligner_ready;
        struct wrk_wm_valve valve; /* event time: the channels' combined watermark */
        bool valve_ready;
        bool inputs_done;
        uint64_t net_in;    /* records taken from the gate */

        const atomic_bool *cancel;
        struct sb_env *sb_env;
        char state_dir[WRK_PATH_MAX];
        uint64_t buffer_timeout_ms;
        /* Latency markers (ops.h): the interval, when the next one is due (monotonic),
         * and what the sink at the tail measured. */
        uint64_t latency_interval_ms;
        uint64_t next_marker_us;
        struct wrk_latency_hist latency;

        char job_dir[WRK_PATH_MAX];     /* "" = no checkpoints */
        wrk_ckpt_fn on_checkpoint;
        void *on_checkpoint_arg;
        const struct wrk_substate *const *restore; /* until open */
        size_t n_restore;
        uint64_t restored_checkpoint;
        char restore_dir[WRK_PATH_MAX]; /* "" = job_dir */
        uint64_t align_bytes; /* bytes processed while aligning (alignment_bytes) */
        int64_t checkpoint_interval_ms; /* the job's, or the cluster's default */
        /* End of input with checkpoints on (wrk_chain_end_of_input). */
        bool final_mode;
        uint64_t last_snapshot;     /* the last checkpoint this chain snapshotted */
        uint64_t final_snapshot;    /* the checkpoint that must complete; 0 = none yet */
        uint64_t completed_max;     /* highest checkpoint completed */

        /* The upload thread (started by the first checkpoint). */
        bool up_started;
        pthread_t up_thread;
        pthread_mutex_t up_mu;
        pthread_cond_t up_cond;
        struct upload_job *up_head, *up_tail; /* under up_mu */
        bool up_stop;                          /* under up_mu */
        int up_failed;                         /* under up_mu: -EBADMSG */
        char up_error[256];                    /* under up_mu */

        struct wrk_op **ops; /* after the source, head to tail */
        size_t n_ops;
        bool opened;

        char text[WRK_RECORD_MAX_BYTES];
        char describe[512];
        char error[WRK_CHAIN_ERROR_BYTES];
};

static int chain_fail(struct wrk_chain *c, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int gen_position(struct wrk_chain *c, const struct wrk_chain_ctx *ctx, char *err,
                        size_t err_len);
static int file_source_open(struct wrk_chain *c);
static int socket_source_open(struct wrk_chain *c);

static int chain_fail(struct wrk_chain *c, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        return r;
}

int wrk_op_emit(struct wrk_op *op, const struct wrk_record *rec) {
        op->records_out++;
        struct wrk_op *next = op->next;
        next->records_in++;
        return next->vt->push(next, rec);
}

int wrk_op_emit_watermark(struct wrk_op *op, int64_t watermark) {
        for (struct wrk_op *n = op->next; n; n = n->next)
                if (n->vt->watermark)
                        return n->vt->watermark(n, watermark);
        return 0;
}

/* Hands a watermark to the chain's first operator that handles them. */
static int chain_watermark(struct wrk_chain *c, int64_t watermark) {
        if (c->n_ops == 0)
                return 0;
        struct wrk_op *head = c->ops[0];
        if (head->vt->watermark)
                return head->vt->watermark(head, watermark);
        return wrk_op_emit_watermark(head, watermark);
}

/* A source pushes a record into its chain; with event time the watermark follows it
 * when it advances. */
static int source_push(struct wrk_chain *c, const struct wrk_record *rec) {
        struct wrk_op *head = c->ops[0];
        head->records_in++;
        int r = head->vt->push(head, rec);
        int64_t w;
        if (r == 0 && c->event_time && wrk_wm_gen_event(&c->wmgen, rec->timestamp_ms, &w))
                r = chain_watermark(c, w);
        return r;
}

int wrk_op_marker(struct wrk_op *op, const struct wrk_latency_marker *m) {
        for (; op; op = op->next) {
                if (op->vt->marker)
                        return op->vt->marker(op, m);
                if (!op->next)
                        wrk_latency_hist_add(&op->chain->latency,
                                             clock_wall_us() - m->marked_us);
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

int64_t wrk_gen_timestamp(const struct job_generator_params *p, uint64_t n) {
        uint64_t z = (uint64_t)p->seed + n + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        uint64_t jitter = p->out_of_order_ms > 0 ? z % ((uint64_t)p->out_of_order_ms + 1) : 0;
        /* saturates at INT64_MAX rather than wrap (n * step of an endless generator) */
        uint64_t step = (uint64_t)p->event_time_step_ms;
        uint64_t base = 1000000000000ull;
        uint64_t span = step && n > ((uint64_t)INT64_MAX - base) / step
                                ? (uint64_t)INT64_MAX - base
                                : n * step;
        return (int64_t)(base + span - (jitter < base ? jitter : 0));
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

struct op_discard {
        struct wrk_op op;
        struct wrk_rate rate; /* the `rate` parameter's share of this subtask; 0 = none */
};

/* With a rate, waits (in sleeps of at most 10 ms, looking at the cancel flag between
 * them) until the record may go: a deliberately slow sink that backpressures. */
static int discard_push(struct wrk_op *op, const struct wrk_record *rec) {
        (void)rec;
        struct op_discard *d = (struct op_discard *)op;
        while (d->rate.rate_per_s > 0 && wrk_rate_allowance(&d->rate, clock_mono_us(), 1) == 0) {
                if (op->chain->cancel && atomic_load(op->chain->cancel))
                        return chain_fail(op->chain, -ECANCELED, "canceled");
                uint64_t us = wrk_rate_wait_us(&d->rate, clock_mono_us());
                if (us > 10000)
                        us = 10000;
                if (us > 0)
                        usleep((useconds_t)us);
        }
        if (d->rate.rate_per_s > 0)
                wrk_rate_take(&d->rate, 1);
        op->records_out++;
        return 0;
}

static void discard_destroy(struct wrk_op *op) {
        free((struct op_discard *)op);
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
        int r = fs_write_full(f->fd, f->buf, f->used);
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

/* One line of a file sink, without its newline: "<key> <value>" for keyed pairs (the
 * format exactly-once checkers read), else the record as format_record writes it.
 * 0 and *ret_len, or -ENOSPC when it does not fit in cap bytes. */
static int format_sink_line(const struct wrk_record *rec, char *buf, size_t cap,
                            size_t *ret_len) {
        if (rec->kind != WRK_REC_PAIR)
                return format_record(rec, buf, cap, ret_len);
        int n = snprintf(buf, cap, "%.*s %" PRId64, (int)rec->text_len, rec->text, rec->value);
        if (n < 0 || (size_t)n >= cap)
                return -ENOSPC;
        *ret_len = (size_t)n;
        return 0;
}

static int file_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_file *f = (struct op_file *)op;
        int r;
        if (f->fd < 0 && (r = file_open_part(f)) < 0) /* the next part after a roll */
                return r;
        if (f->used + rec->text_len + 32 > sizeof(f->buf) && (r = file_write_buffer(f)) < 0)
                return r;
        size_t len;
        r = format_sink_line(rec, f->buf + f->used, sizeof(f->buf) - f->used - 1, &len);
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
 * key_by and union. */

struct op_key_by {
        struct wrk_op op;
        enum job_field field;
        flinc_udf_key_fn udf;   /* a key selector, or NULL */
        const char *step;
        char num[24];
        char keybuf[WRK_RECORD_MAX_BYTES];
};

static int key_by_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_key_by *k = (struct op_key_by *)op;
        struct wrk_record out = *rec;
        if (k->udf) {
                struct flinc_udf_record in = {.text = rec->text, .text_len = rec->text_len,
                                              .key = rec->key, .key_len = rec->key_len,
                                              .value = rec->value,
                                              .timestamp_ms = rec->timestamp_ms};
                size_t kl = 0;
                int r = k->udf(&in, k->keybuf, sizeof(k->keybuf), &kl);
                if (r < 0 || kl > sizeof(k->keybuf))
                        return chain_fail(op->chain, r < 0 ? r : -EINVAL, "%s: the key "
                                          "selector udf failed", k->step);
                out.key = k->keybuf;
                out.key_len = kl;
                return wrk_op_emit(op, &out);
        }
        switch (k->field) {
        case JOB_FIELD_WORD:
                out.key = rec->text;
                out.key_len = rec->text_len;
                break;
        case JOB_FIELD_KEY:
                if (!out.key) {
                        out.key = rec->text;
                        out.key_len = rec->text_len;
                }
                break;
        case JOB_FIELD_VALUE: {
                int n = snprintf(k->num, sizeof(k->num), "%" PRId64, rec->value);
                out.key = k->num;
                out.key_len = (size_t)n;
                break;
        }
        }
        return wrk_op_emit(op, &out);
}

static int pass_push(struct wrk_op *op, const struct wrk_record *rec) {
        return wrk_op_emit(op, rec);
}

static void plain_destroy(struct wrk_op *op) {
        free(op);
}

static const struct wrk_op_vtable key_by_vt = {
        .name = "key_by", .push = key_by_push, .destroy = plain_destroy,
};

static const struct wrk_op_vtable union_vt = {
        .name = "union", .push = pass_push, .destroy = plain_destroy,
};

/* ------------------------------------------------------------------------------------
 * UDFs (udf.h): libraries from the job's artifacts, and map, flat_map, filter. */

static int udf_resolve(struct wrk_chain *c, const struct job_vertex *v, const char *sym,
                       void **ret, char *err, size_t err_len) {
        const struct job_graph *g = c->g;
        for (size_t i = 0; i < g->n_artifacts; i++) {
                const char *path = g->artifacts[i];
                if (strncmp(path, "file://", 7) == 0)
                        path += 7;
                if (i >= c->n_libs || !c->libs[i]) {
                        if (i >= WRK_MAX_LIBS)
                                break;
                        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                        if (!h) {
                                const char *why = dlerror();
                                return err_set(err, err_len, -ENOENT, "step '%s': artifact %s: "
                                               "cannot load: %s", v->id, path,
                                               why ? why : "?");
                        }
                        uint32_t (*ver)(void) = (uint32_t (*)(void))(uintptr_t)dlsym(
                                h, FLINC_UDF_ABI_SYMBOL);
                        if (!ver) {
                                dlclose(h);
                                return err_set(err, err_len, -ENOEXEC, "artifact %s: no %s(): "
                                               "not a flinc UDF library", path,
                                               FLINC_UDF_ABI_SYMBOL);
                        }
                        uint32_t have = ver();
                        if (have != FLINC_UDF_ABI_VERSION) {
                                dlclose(h);
                                return err_set(err, err_len, -ENOEXEC, "artifact %s: UDF ABI "
                                               "version %" PRIu32 ", this worker speaks %u",
                                               path, have, FLINC_UDF_ABI_VERSION);
                        }
                        c->libs[i] = h;
                        if (c->n_libs <= i)
                                c->n_libs = i + 1;
                }
                void *f = dlsym(c->libs[i], sym);
                if (f) {
                        *ret = f;
                        return 0;
                }
        }
        return err_set(err, err_len, -ENOENT, "step '%s': udf '%s' is not exported by the "
                       "job's artifacts (%zu)", v->id, sym, g->n_artifacts);
}

struct op_udf {
        struct wrk_op op;
        void *fn;
        const char *step;
        char scratch[WRK_RECORD_MAX_BYTES];
};

static struct flinc_udf_record to_udf(const struct wrk_record *r) {
        struct flinc_udf_record u = {.text = r->text, .text_len = r->text_len, .key = r->key,
                                     .key_len = r->key_len, .value = r->value,
                                     .timestamp_ms = r->timestamp_ms};
        return u;
}

static int from_udf(const struct flinc_udf_record *u, const struct wrk_record *in,
                    struct wrk_record *ret) {
        if (u->text_len > WRK_RECORD_MAX_BYTES || u->key_len > WRK_RECORD_MAX_BYTES ||
            (u->text_len && !u->text) || (u->key_len && !u->key))
                return -EINVAL;
        struct wrk_record r = {.kind = in->kind, .text = u->text, .text_len = u->text_len,
                               .key = u->key, .key_len = u->key ? u->key_len : 0,
                               .value = u->value, .timestamp_ms = u->timestamp_ms,
                               .seq = in->seq};
        *ret = r;
        return 0;
}

static int map_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_udf *u = (struct op_udf *)op;
        struct flinc_udf_record in = to_udf(rec), out = in;
        int r = ((flinc_udf_map_fn)(uintptr_t)u->fn)(&in, &out, u->scratch, sizeof(u->scratch));
        if (r < 0)
                return chain_fail(op->chain, r, "%s: the map udf failed: %s", u->step,
                                  strerror(-r));
        struct wrk_record w;
        if (from_udf(&out, rec, &w) < 0)
                return chain_fail(op->chain, -EINVAL, "%s: the map udf returned a bad record",
                                  u->step);
        return wrk_op_emit(op, &w);
}

struct flat_ctx {
        struct op_udf *u;
        const struct wrk_record *in;
};

static int flat_emit(void *arg, const struct flinc_udf_record *rec) {
        struct flat_ctx *fc = arg;
        struct wrk_record w;
        if (from_udf(rec, fc->in, &w) < 0)
                return chain_fail(fc->u->op.chain, -EINVAL, "%s: the flat_map udf emitted a "
                                  "bad record", fc->u->step);
        return wrk_op_emit(&fc->u->op, &w);
}

static int flat_map_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_udf *u = (struct op_udf *)op;
        struct flinc_udf_record in = to_udf(rec);
        struct flat_ctx fc = {u, rec};
        int r = ((flinc_udf_flat_map_fn)(uintptr_t)u->fn)(&in, flat_emit, &fc);
        if (r < 0 && !op->chain->error[0])
                return chain_fail(op->chain, r, "%s: the flat_map udf failed: %s", u->step,
                                  strerror(-r));
        return r < 0 ? r : 0;
}

static int filter_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_udf *u = (struct op_udf *)op;
        struct flinc_udf_record in = to_udf(rec);
        int r = ((flinc_udf_filter_fn)(uintptr_t)u->fn)(&in);
        if (r < 0)
                return chain_fail(op->chain, r, "%s: the filter udf failed: %s", u->step,
                                  strerror(-r));
        return r ? wrk_op_emit(op, rec) : 0;
}

static const struct wrk_op_vtable map_vt = {
        .name = "map", .push = map_push, .destroy = plain_destroy,
};
static const struct wrk_op_vtable flat_map_vt = {
        .name = "flat_map", .push = flat_map_push, .destroy = plain_destroy,
};
static const struct wrk_op_vtable filter_vt = {
        .name = "filter", .push = filter_push, .destroy = plain_destroy,
};

/* ------------------------------------------------------------------------------------
 * Keyed aggregates on RocksDB: count, sum, min, max, with a per-step table. */

#define AGG_TABLE_SLOTS 8192u /* power of two; written back at half full */
/* Records held before their keys are looked up together (one MultiGet), and the bytes of
 * their keys (and texts, for reduce) at most. */
#define AGG_PENDING_MAX 1024u
#define AGG_ARENA_MAX (1u << 20)

struct agg_pending {
        size_t key_off, key_len;
        size_t text_off, text_len; /* reduce only */
        int64_t x;                 /* the input (agg_input) */
        int64_t value;             /* reduce: the record's value */
        uint64_t seq;
        int64_t timestamp_ms;
        size_t slot;
};

struct agg_slot {
        char *key;      /* NULL = free */
        size_t key_len;
        uint32_t hash;
        int64_t value;
        bool present;   /* the key has a value (from RocksDB or this step) */
        bool dirty;
        unsigned char enc[8]; /* the value as written back */
};

struct op_agg {
        struct wrk_op op;
        enum job_op_kind kind;
        enum job_field field;
        const char *step;
        struct sb_backend *b;
        struct sb_state *st;
        struct sb_buf buf;
        struct agg_slot *slots;
        struct sb_kv *batch; /* AGG_TABLE_SLOTS: the write-back */
        size_t used;
        /* Records not applied yet (agg_drain), their bytes, and the drain's reads. */
        struct agg_pending *pend;
        size_t n_pend;
        char *arena;
        size_t arena_len;
        struct sb_key *mkeys;
        size_t *mslots;
        /* Flush-ahead (agg_writeback): when the last snapshot was taken, and whether the
         * memtable was flushed in the background since. */
        uint64_t last_snap_us;
        bool flushed_ahead;
        char dir[WRK_PATH_MAX];
        struct sb_snapshot *snap; /* between the sync and the async part */
        flinc_udf_reduce_fn reduce; /* reduce only */
};

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct sb_env *default_env;
static int default_env_r;
static char default_env_err[256];

static void make_default_env(void) {
        struct sb_env_config cfg = {0};
        default_env_r = sb_env_create(&cfg, &default_env, default_env_err,
                                      sizeof(default_env_err));
}

/* Writes the dirty keys of the table back in one RocksDB write batch (sorted by the
 * backend: a memtable insert in key order is cheap) and empties the table. */
static int agg_writeback(struct op_agg *a) {
        int r = 0;
        size_t n = 0;
        for (size_t i = 0; i < AGG_TABLE_SLOTS; i++) {
                struct agg_slot *sl = &a->slots[i];
                if (!sl->key || !sl->dirty)
                        continue;
                uint64_t u = (uint64_t)sl->value;
                for (int j = 0; j < 8; j++)
                        sl->enc[j] = (unsigned char)(u >> (8 * j));
                a->batch[n++] = (struct sb_kv){.key = {.key = sl->key, .key_len = sl->key_len},
                                               .value = sl->enc, .value_len = 8};
        }
        r = sb_value_put_batch(a->st, a->batch, n);
        if (r < 0)
                chain_fail(a->op.chain, r, "%s: state write failed: %s", a->step,
                           sb_backend_last_error(a->b));
        /* With periodic checkpoints, half an interval after the last snapshot the
         * memtable goes to RocksDB's flush thread, so the next snapshot's synchronous
         * flush (which stalls this thread) has only half an interval of writes left. */
        const struct wrk_chain *c = a->op.chain;
        bool periodic = c->checkpoint_interval_ms > 0 && c->job_dir[0];
        if (r == 0 && n && periodic && !a->flushed_ahead &&
            clock_mono_us() - a->last_snap_us >= (uint64_t)c->checkpoint_interval_ms * 500u) {
                char err[256] = "";
                a->flushed_ahead = true;
                int f = sb_backend_flush_async(a->b, err, sizeof(err));
                if (f < 0)
                        r = chain_fail(a->op.chain, f, "%s: state flush failed: %s", a->step,
                                       err);
        }
        for (size_t i = 0; i < AGG_TABLE_SLOTS; i++) {
                free(a->slots[i].key);
                a->slots[i].key = NULL;
        }
        a->used = 0;
        return r;
}

static int agg_open(struct wrk_op *op) {
        struct op_agg *a = (struct op_agg *)op;
        struct wrk_chain *c = op->chain;
        struct sb_env *env = c->sb_env;
        if (!env) {
                pthread_once(&env_once, make_default_env);
                if (default_env_r < 0)
                        return chain_fail(c, default_env_r, "%s: RocksDB environment: %s",
                                          a->step, default_env_err);
                env = default_env;
        }
        a->slots = calloc(AGG_TABLE_SLOTS, sizeof(*a->slots));
        a->batch = calloc(AGG_TABLE_SLOTS, sizeof(*a->batch));
        a->pend = calloc(AGG_PENDING_MAX, sizeof(*a->pend));
        a->arena = malloc(AGG_ARENA_MAX + 2 * WRK_RECORD_MAX_BYTES);
        a->mkeys = calloc(AGG_PENDING_MAX, sizeof(*a->mkeys));
        a->mslots = calloc(AGG_PENDING_MAX, sizeof(*a->mslots));
        if (!a->slots || !a->batch || !a->pend || !a->arena || !a->mkeys || !a->mslots)
                return chain_fail(c, -ENOMEM, "out of memory");
        const struct job_graph *g = c->g;
        struct sb_state_desc desc = {.name = "agg", .kind = SB_STATE_VALUE};
        struct sb_backend_config cfg = {
                .local_dir = a->dir,
                .max_parallelism = g->max_parallelism,
                .range = kg_range_for_operator(g->max_parallelism, c->parallelism, c->subtask),
                .states = &desc,
                .n_states = 1,
        };
        char err[512] = "";
        size_t n_handles = 0;
        for (size_t i = 0; i < c->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(c->restore[i], a->step);
                n_handles += o && o->keyed;
        }
        int r;
        if (n_handles) {
                struct sb_bytes *hs = calloc(n_handles, sizeof(*hs));
                if (!hs)
                        return chain_fail(c, -ENOMEM, "out of memory");
                size_t k = 0;
                for (size_t i = 0; i < c->n_restore; i++) {
                        const struct wrk_substate_op *o = wrk_substate_find(c->restore[i],
                                                                            a->step);
                        if (o && o->keyed)
                                hs[k++] = (struct sb_bytes){o->keyed, o->keyed_len};
                }
                const char *from = c->restore_dir[0] ? c->restore_dir : c->job_dir;
                r = sb_backend_restore(env, &cfg, from, hs, n_handles, &a->b, err,
                                       sizeof(err));
                free(hs);
                if (r < 0)
                        return chain_fail(c, r, "%s: restore of checkpoint %" PRIu64 ": %s",
                                          a->step, c->restored_checkpoint, err);
                if (strcmp(from, c->job_dir) != 0)
                        sb_backend_reset_base(a->b);
        } else {
                r = sb_backend_create(env, &cfg, &a->b, err, sizeof(err));
        }
        if (r < 0)
                return chain_fail(c, r, "%s: keyed state backend in %s: %s", a->step, a->dir,
                                  err);
        a->st = sb_backend_state(a->b, "agg");
        a->last_snap_us = clock_mono_us();
        return 0;
}

static int agg_input(struct op_agg *a, const struct wrk_record *rec, int64_t *ret) {
        if (a->kind == JOB_OP_REDUCE) {
                *ret = rec->value;
                return 0;
        }
        if (a->kind == JOB_OP_COUNT || a->field == JOB_FIELD_VALUE) {
                *ret = a->kind == JOB_OP_COUNT ? 1 : rec->value;
                return 0;
        }
        char tmp[32];
        if (rec->text_len == 0 || rec->text_len >= sizeof(tmp))
                goto bad;
        memcpy(tmp, rec->text, rec->text_len);
        tmp[rec->text_len] = '\0';
        char *end;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno || *end)
                goto bad;
        *ret = v;
        return 0;
bad:
        return chain_fail(a->op.chain, -EINVAL, "%s: field word: '%.*s' is not an int64",
                          a->step, (int)(rec->text_len > 40 ? 40 : rec->text_len), rec->text);
}

/* The new accumulator from the old one (acc, when present) and the record's input x. */
static int agg_combine(struct op_agg *a, bool present, int64_t acc, int64_t x,
                       const struct wrk_record *rec, const char *key, size_t key_len,
                       int64_t *ret) {
        int64_t v = acc;
        if (!present)
                v = x;
        else if (a->kind == JOB_OP_REDUCE) {
                struct flinc_udf_record in = {.text = rec->text, .text_len = rec->text_len,
                                              .key = key, .key_len = key_len,
                                              .value = rec->value,
                                              .timestamp_ms = rec->timestamp_ms};
                int r = a->reduce(acc, &in, &v);
                if (r < 0)
                        return chain_fail(a->op.chain, r, "%s: the reduce udf failed: %s",
                                          a->step, strerror(-r));
        } else if (a->kind == JOB_OP_COUNT || a->kind == JOB_OP_SUM)
                v = (int64_t)((uint64_t)v + (uint64_t)x);
        else if (a->kind == JOB_OP_MIN)
                v = x < v ? x : v;
        else
                v = x > v ? x : v;
        *ret = v;
        return 0;
}

static int agg_drain(struct op_agg *a);

/* A record waits in the pending queue (its input already parsed, so a bad one fails at
 * once); agg_drain applies the queue in order. */
static int agg_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_agg *a = (struct op_agg *)op;
        const char *key;
        size_t key_len;
        wrk_record_key(rec, &key, &key_len);
        int64_t x;
        int r = agg_input(a, rec, &x);
        if (r < 0)
                return r;
        size_t text_len = a->kind == JOB_OP_REDUCE ? rec->text_len : 0;
        if (a->n_pend == AGG_PENDING_MAX || a->arena_len > AGG_ARENA_MAX)
                if ((r = agg_drain(a)) < 0)
                        return r;
        /* the arena has room for one more record beyond AGG_ARENA_MAX */
        struct agg_pending *p = &a->pend[a->n_pend++];
        p->key_off = a->arena_len;
        p->key_len = key_len;
        if (key_len)
                memcpy(a->arena + a->arena_len, key, key_len);
        a->arena_len += key_len;
        p->text_off = a->arena_len;
        p->text_len = text_len;
        if (text_len)
                memcpy(a->arena + a->arena_len, rec->text, text_len);
        a->arena_len += text_len;
        p->x = x;
        p->value = rec->value;
        p->seq = rec->seq;
        p->timestamp_ms = rec->timestamp_ms;
        return 0;
}

static int agg_fill(void *arg, size_t i, const void *value, size_t len) {
        struct op_agg *a = arg;
        struct agg_slot *sl = &a->slots[a->mslots[i]];
        sl->present = value && len == 8;
        if (sl->present) {
                uint64_t u = 0;
                const unsigned char *v = value;
                for (int j = 0; j < 8; j++)
                        u |= (uint64_t)v[j] << (8 * j);
                sl->value = (int64_t)u;
        }
        return 0;
}

/* Applies the pending records in order: their keys find or take a table slot, the keys
 * new to the table are read from RocksDB in one MultiGet, then each record updates its
 * key and the running aggregate goes on. Called when the queue is full, at the end of a
 * step, before a snapshot, a latency marker and the end of input. */
static int agg_drain(struct op_agg *a) {
        struct wrk_op *op = &a->op;
        int r;
        if (a->n_pend == 0)
                return 0;
        if (a->used + a->n_pend > AGG_TABLE_SLOTS / 2 && (r = agg_writeback(a)) < 0)
                return r;
        size_t n_miss = 0;
        for (size_t k = 0; k < a->n_pend; k++) {
                struct agg_pending *p = &a->pend[k];
                const char *key = a->arena + p->key_off;
                size_t key_len = p->key_len;
                uint32_t h = (uint32_t)hash_java_bytes(key, key_len);
                size_t i = (h * 2654435761u) & (AGG_TABLE_SLOTS - 1);
                struct agg_slot *sl;
                for (;;) {
                        sl = &a->slots[i];
                        if (!sl->key || (sl->hash == h && sl->key_len == key_len &&
                                         memcmp(sl->key, key, key_len) == 0))
                                break;
                        i = (i + 1) & (AGG_TABLE_SLOTS - 1);
                }
                p->slot = i;
                if (sl->key)
                        continue;
                sl->key = malloc(key_len ? key_len : 1);
                if (!sl->key)
                        return chain_fail(op->chain, -ENOMEM, "out of memory");
                memcpy(sl->key, key, key_len);
                sl->key_len = key_len;
                sl->hash = h;
                sl->dirty = false;
                sl->present = false;
                a->used++;
                a->mkeys[n_miss] = (struct sb_key){.key = sl->key, .key_len = key_len};
                a->mslots[n_miss++] = i;
        }
        r = sb_value_multi_get(a->st, a->mkeys, n_miss, agg_fill, a);
        if (r < 0)
                return chain_fail(op->chain, r, "%s: state read failed: %s", a->step,
                                  sb_backend_last_error(a->b));
        size_t n = a->n_pend;
        a->n_pend = 0;
        a->arena_len = 0;
        for (size_t k = 0; k < n; k++) {
                struct agg_pending *p = &a->pend[k];
                struct agg_slot *sl = &a->slots[p->slot];
                struct wrk_record in = {.kind = WRK_REC_TEXT, .text = a->arena + p->text_off,
                                        .text_len = p->text_len, .value = p->value,
                                        .seq = p->seq, .timestamp_ms = p->timestamp_ms};
                int64_t v;
                r = agg_combine(a, sl->present, sl->value, p->x, &in, sl->key, sl->key_len, &v);
                if (r < 0)
                        return r;
                sl->value = v;
                sl->present = true;
                sl->dirty = true;
                struct wrk_record out = {.kind = WRK_REC_PAIR, .text = sl->key,
                                         .text_len = sl->key_len, .key = sl->key,
                                         .key_len = sl->key_len, .value = v, .seq = p->seq,
                                         .timestamp_ms = p->timestamp_ms};
                if ((r = wrk_op_emit(op, &out)) < 0)
                        return r;
        }
        return 0;
}

/* End of a step: the table stays (a write-back cache of at most AGG_TABLE_SLOTS / 2
 * keys); it goes to RocksDB when half full, at a checkpoint barrier and at the end of
 * input. Nothing is lost by holding it: RocksDB runs without a WAL, so the state's
 * durability comes from checkpoints, which write the table back first. */
static int agg_flush(struct wrk_op *op) {
        return agg_drain((struct op_agg *)op);
}

static int agg_finish(struct wrk_op *op) {
        int r = agg_drain((struct op_agg *)op);
        return r < 0 ? r : agg_writeback((struct op_agg *)op);
}

/* A latency marker goes on behind the records that came before it. */
static int agg_marker(struct wrk_op *op, const struct wrk_latency_marker *m) {
        int r = agg_drain((struct op_agg *)op);
        return r < 0 ? r : wrk_op_marker(op->next, m);
}

/* Records still queued for agg_drain are older than the watermark: they go first, or a
 * window downstream would see them after it and drop them as late. */
static int agg_watermark(struct wrk_op *op, int64_t watermark) {
        int r = agg_drain((struct op_agg *)op);
        return r < 0 ? r : wrk_op_emit_watermark(op, watermark);
}

static void agg_destroy(struct wrk_op *op) {
        struct op_agg *a = (struct op_agg *)op;
        if (a->slots) {
                for (size_t i = 0; i < AGG_TABLE_SLOTS; i++)
                        free(a->slots[i].key);
                free(a->slots);
        }
        free(a->batch);
        free(a->pend);
        free(a->arena);
        free(a->mkeys);
        free(a->mslots);
        sb_buf_finish(&a->buf);
        sb_snapshot_destroy(a->snap);
        sb_backend_destroy(a->b);
        /* the chain's upload thread is joined by now: nothing reads snap-* any more */
        if (a->dir[0])
                (void)fs_rm_rf(a->dir);
        free(a);
}

static int agg_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so);
static struct sb_snapshot *agg_detach(struct wrk_op *op);
static int agg_complete(struct wrk_op *op, uint64_t n);
static void agg_abort(struct wrk_op *op, uint64_t n);
/* The keyed aggregates differ only in their name (agg_combine reads the kind). */
#define AGG_VTABLE(op_name)                                                                  \
        {                                                                                    \
                .name = op_name, .open = agg_open, .push = agg_push, .flush = agg_flush,     \
                .finish = agg_finish, .destroy = agg_destroy, .snapshot = agg_snapshot,      \
                .detach = agg_detach, .complete = agg_complete, .abort = agg_abort,          \
                .marker = agg_marker, .watermark = agg_watermark,                            \
        }
static const struct wrk_op_vtable count_vt = AGG_VTABLE("count");
static const struct wrk_op_vtable sum_vt = AGG_VTABLE("sum");
static const struct wrk_op_vtable min_vt = AGG_VTABLE("min");
static const struct wrk_op_vtable max_vt = AGG_VTABLE("max");
static const struct wrk_op_vtable reduce_vt = AGG_VTABLE("reduce");

/* ------------------------------------------------------------------------------------
 * Network output: the tail of a chain that feeds other chains. */

struct net_target {
        struct wrk_gate *gate;
        uint32_t channel;
        struct wrk_outbuf *buf;
};

struct net_edge {
        struct wrk_partitioner part;
        uint32_t n;
        struct net_target *t;
        uint32_t next_marker; /* the target of the next latency marker */
};

struct op_net {
        struct wrk_op op;
        struct net_edge *edges;
        size_t n_edges;
};

static int net_send(struct wrk_op *op, struct net_target *t) {
        if (t->buf->len == 0)
                return 0;
        int r = wrk_gate_put(t->gate, t->channel, t->buf->data, t->buf->len, op->chain->cancel);
        wrk_outbuf_reset(t->buf);
        if (r == -ECANCELED)
                return chain_fail(op->chain, r, "canceled");
        if (r < 0)
                return chain_fail(op->chain, r, "network output: the consumer is gone");
        return 0;
}

static int net_add(struct wrk_op *op, struct net_target *t, const struct wrk_record *rec) {
        uint64_t now = clock_mono_us();
        int r = wrk_outbuf_add_record(t->buf, rec, now);
        if (r == -ENOSPC) {
                if ((r = net_send(op, t)) < 0)
                        return r;
                r = wrk_outbuf_add_record(t->buf, rec, now);
        }
        if (r < 0)
                return chain_fail(op->chain, r, "network output: a record of %zu bytes is too "
                                  "long", rec->text_len + rec->key_len);
        return 0;
}

static int net_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_net *n = (struct op_net *)op;
        op->records_out++;
        for (size_t e = 0; e < n->n_edges; e++) {
                struct net_edge *ed = &n->edges[e];
                uint32_t to = wrk_partition(&ed->part, rec);
                int r = 0;
                if (to == WRK_PART_ALL) {
                        for (uint32_t i = 0; i < ed->n && r == 0; i++)
                                r = net_add(op, &ed->t[i], rec);
                } else {
                        r = net_add(op, &ed->t[to], rec);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A latency marker goes to one target of each edge, in turn, behind the records. */
static int net_marker(struct wrk_op *op, const struct wrk_latency_marker *m) {
        struct op_net *n = (struct op_net *)op;
        for (size_t e = 0; e < n->n_edges; e++) {
                struct net_edge *ed = &n->edges[e];
                struct net_target *t = &ed->t[ed->next_marker];
                ed->next_marker = (ed->next_marker + 1) % ed->n;
                uint64_t now = clock_mono_us();
                int r = wrk_outbuf_add_latency(t->buf, m, now);
                if (r == -ENOSPC) {
                        if ((r = net_send(op, t)) < 0)
                                return r;
                        r = wrk_outbuf_add_latency(t->buf, m, now);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int net_flush(struct wrk_op *op) {
        struct op_net *n = (struct op_net *)op;
        uint64_t now = clock_mono_us();
        for (size_t e = 0; e < n->n_edges; e++)
                for (uint32_t i = 0; i < n->edges[e].n; i++) {
                        struct net_target *t = &n->edges[e].t[i];
                        if (wrk_outbuf_due(t->buf, now, op->chain->buffer_timeout_ms)) {
                                int r = net_send(op, t);
                                if (r < 0)
                                        return r;
                        }
                }
        return 0;
}

static int net_finish(struct wrk_op *op) {
        struct op_net *n = (struct op_net *)op;
        for (size_t e = 0; e < n->n_edges; e++)
                for (uint32_t i = 0; i < n->edges[e].n; i++) {
                        struct net_target *t = &n->edges[e].t[i];
                        int r = wrk_outbuf_add_end(t->buf, clock_mono_us());
                        if (r == -ENOSPC) {
                                if ((r = net_send(op, t)) < 0)
                                        return r;
                                r = wrk_outbuf_add_end(t->buf, clock_mono_us());
                        }
                        if (r == 0)
                                r = net_send(op, t);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* A watermark goes to every consumer subtask of every output edge. */
static int net_watermark(struct wrk_op *op, int64_t watermark) {
        struct op_net *n = (struct op_net *)op;
        for (size_t e = 0; e < n->n_edges; e++)
                for (uint32_t i = 0; i < n->edges[e].n; i++) {
                        struct net_target *t = &n->edges[e].t[i];
                        int r = wrk_outbuf_add_watermark(t->buf, watermark, clock_mono_us());
                        if (r == -ENOSPC) {
                                if ((r = net_send(op, t)) < 0)
                                        return r;
                                r = wrk_outbuf_add_watermark(t->buf, watermark,
                                                             clock_mono_us());
                        }
                        if (r < 0)
                                return r;
                }
        return 0;
}

static void net_destroy(struct wrk_op *op) {
        struct op_net *n = (struct op_net *)op;
        for (size_t e = 0; n->edges && e < n->n_edges; e++) {
                for (uint32_t i = 0; n->edges[e].t && i < n->edges[e].n; i++) {
                        wrk_gate_unref(n->edges[e].t[i].gate);
                        free(n->edges[e].t[i].buf);
                }
                free(n->edges[e].t);
        }
        free(n->edges);
        free(n);
}

static int net_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so);
static const struct wrk_op_vtable net_vt = {
        .name = "network", .push = net_push, .flush = net_flush, .finish = net_finish,
        .destroy = net_destroy, .snapshot = net_snapshot, .watermark = net_watermark,
        .marker = net_marker,
};

/* Checkpoint hooks of the keyed aggregates. */
static int agg_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so) {
        struct op_agg *a = (struct op_agg *)op;
        (void)savepoint;
        (void)so;
        int r = agg_drain(a);
        if (r == 0)
                r = agg_writeback(a);
        if (r < 0)
                return r;
        sb_snapshot_destroy(a->snap);
        a->snap = NULL;
        char err[256] = "";
        r = sb_snapshot_sync(a->b, n, &a->snap, err, sizeof(err));
        a->last_snap_us = clock_mono_us();
        a->flushed_ahead = false;
        /* -ECANCELED here: the coordinator aborted n (e.g. it timed out behind queued
         * buffers) before its barrier got here. That is a decline, not a failure of the
         * task, and the barrier still goes on; chain_snapshot keeps -ECANCELED for a
         * canceled task. */
        if (r == -ECANCELED)
                r = -ESTALE;
        if (r < 0)
                return chain_fail(op->chain, r, "%s: snapshot of checkpoint %" PRIu64 ": %s",
                                  a->step, n, err);
        return 0;
}

static struct sb_snapshot *agg_detach(struct wrk_op *op) {
        struct op_agg *a = (struct op_agg *)op;
        struct sb_snapshot *snap = a->snap;
        a->snap = NULL;
        return snap;
}

static int agg_complete(struct wrk_op *op, uint64_t n) {
        struct op_agg *a = (struct op_agg *)op;
        if (a->b)
                (void)sb_backend_confirm(a->b, n); /* -ENOENT: not ours (declined, older) */
        return 0;
}

static void agg_abort(struct wrk_op *op, uint64_t n) {
        struct op_agg *a = (struct op_agg *)op;
        char err[256];
        if (a->b)
                (void)sb_backend_abort(a->b, n, err, sizeof(err));
}

/* ------------------------------------------------------------------------------------
 * Windows (keyed, after key_by): one accumulator per (key, window) in the keyed
 * backend's value state "agg" with namespace = the window (start, end: i64 big-endian
 * each), timers (window ends pending per key) in a min-heap rebuilt from the state at
 * open, and a write-back table of the accumulators in front of RocksDB (as the keyed
 * aggregates have). See ops.h WINDOWS. */

/* Windows one record may belong to at most (sliding: ceil(size / slide)). */
#define WIN_MAX_PER_RECORD 1000u
#define WIN_NS_BYTES 16u
/* The write-back table: a power of two; written back and emptied at half full. */
#define WIN_TABLE_SLOTS 16384u

/* One (key, window) accumulator in memory. */
struct win_slot {
        char *key;      /* NULL = free */
        size_t key_len;
        int64_t start;
        int64_t end;
        uint32_t hash;
        int64_t value;
        bool dirty;     /* newer than RocksDB */
        bool in_db;     /* RocksDB holds a value for it */
};

struct win_timer {
        int64_t end;
        int64_t start;
        char *key;
        size_t key_len;
};

struct op_window {
        struct op_agg agg; /* first: the keyed aggregates' backend, snapshot and restore */
        bool event;
        int64_t size_ms;
        int64_t slide_ms;   /* 0: tumbling */
        int64_t watermark;  /* event time: the current one; INT64_MIN = none yet */
        struct win_timer *heap;
        size_t n_timers;
        size_t cap_timers;
        uint64_t late_dropped; /* Flink's numLateRecordsDropped */
        struct win_slot *slots; /* WIN_TABLE_SLOTS */
        size_t used;
        uint64_t db_entries;    /* (key, window) values in RocksDB: 0 = no read needed */
};

static void win_ns(unsigned char ns[WIN_NS_BYTES], int64_t start, int64_t end);

static uint32_t win_hash(const char *key, size_t key_len, int64_t start) {
        uint32_t h = (uint32_t)hash_java_bytes(key, key_len);
        uint64_t x = (uint64_t)start * 0x9E3779B97F4A7C15ull;
        return (h ^ (uint32_t)(x >> 32)) * 2654435761u;
}

/* The slot holding (key, start), or the free slot where it would go. */
static size_t win_slot_find(const struct op_window *w, const char *key, size_t key_len,
                            int64_t start, uint32_t h) {
        size_t i = h & (WIN_TABLE_SLOTS - 1);
        for (;;) {
                const struct win_slot *sl = &w->slots[i];
                if (!sl->key || (sl->hash == h && sl->start == start && sl->key_len == key_len &&
                                 memcmp(sl->key, key, key_len) == 0))
                        return i;
                i = (i + 1) & (WIN_TABLE_SLOTS - 1);
        }
}

/* Frees slot i and shifts the entries after it back (linear probing without
 * tombstones). */
static void win_slot_remove(struct op_window *w, size_t i) {
        free(w->slots[i].key);
        w->slots[i].key = NULL;
        w->used--;
        size_t j = i;
        for (;;) {
                j = (j + 1) & (WIN_TABLE_SLOTS - 1);
                if (!w->slots[j].key)
                        return;
                size_t home = w->slots[j].hash & (WIN_TABLE_SLOTS - 1);
                bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
                if (!stays) {
                        w->slots[i] = w->slots[j];
                        w->slots[j].key = NULL;
                        i = j;
                }
        }
}

static void put_le64(unsigned char b[8], int64_t v) {
        for (int j = 0; j < 8; j++)
                b[j] = (unsigned char)((uint64_t)v >> (8 * j));
}

static int64_t get_le64(const unsigned char *v) {
        uint64_t u = 0;
        for (int j = 0; j < 8; j++)
                u |= (uint64_t)v[j] << (8 * j);
        return (int64_t)u;
}

/* Writes the dirty accumulators to RocksDB; evict: and empties the table. */
static int win_writeback(struct op_window *w, bool evict) {
        struct op_agg *a = &w->agg;
        int r = 0;
        for (size_t i = 0; w->slots && i < WIN_TABLE_SLOTS; i++) {
                struct win_slot *sl = &w->slots[i];
                if (!sl->key)
                        continue;
                if (sl->dirty && r == 0) {
                        unsigned char ns[WIN_NS_BYTES], b[8];
                        win_ns(ns, sl->start, sl->end);
                        put_le64(b, sl->value);
                        struct sb_key k = {.key = sl->key, .key_len = sl->key_len, .ns = ns,
                                           .ns_len = sizeof(ns)};
                        r = sb_value_put(a->st, &k, b, sizeof(b));
                        if (r < 0) {
                                chain_fail(a->op.chain, r, "%s: state write failed: %s",
                                           a->step, sb_backend_last_error(a->b));
                        } else {
                                sl->dirty = false;
                                if (!sl->in_db)
                                        w->db_entries++;
                                sl->in_db = true;
                        }
                }
                if (evict) {
                        free(sl->key);
                        sl->key = NULL;
                }
        }
        if (evict)
                w->used = 0;
        return r;
}

static void win_ns(unsigned char ns[WIN_NS_BYTES], int64_t start, int64_t end) {
        for (int j = 0; j < 8; j++) {
                ns[j] = (unsigned char)((uint64_t)start >> (56 - 8 * j));
                ns[8 + j] = (unsigned char)((uint64_t)end >> (56 - 8 * j));
        }
}

static int64_t win_be64(const unsigned char *p) {
        uint64_t u = 0;
        for (int j = 0; j < 8; j++)
                u = u << 8 | p[j];
        return (int64_t)u;
}

/* Timer order: end, then start, then key bytes: the firing order, deterministic. */
static int win_timer_cmp(const struct win_timer *a, const struct win_timer *b) {
        if (a->end != b->end)
                return a->end < b->end ? -1 : 1;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
        int c = memcmp(a->key, b->key, n);
        if (c)
                return c;
        return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static int win_timer_add(struct op_window *w, const char *key, size_t key_len, int64_t start,
                         int64_t end) {
        if (w->n_timers == w->cap_timers) {
                size_t cap = w->cap_timers ? w->cap_timers * 2 : 64;
                struct win_timer *h = realloc(w->heap, cap * sizeof(*h));
                if (!h)
                        return chain_fail(w->agg.op.chain, -ENOMEM, "out of memory");
                w->heap = h;
                w->cap_timers = cap;
        }
        char *k = malloc(key_len ? key_len : 1);
        if (!k)
                return chain_fail(w->agg.op.chain, -ENOMEM, "out of memory");
        memcpy(k, key, key_len);
        size_t i = w->n_timers++;
        w->heap[i] = (struct win_timer){.end = end, .start = start, .key = k, .key_len = key_len};
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (win_timer_cmp(&w->heap[i], &w->heap[parent]) >= 0)
                        break;
                struct win_timer t = w->heap[i];
                w->heap[i] = w->heap[parent];
                w->heap[parent] = t;
                i = parent;
        }
        return 0;
}

/* Removes the smallest timer into *ret (its key is the caller's to free). */
static void win_timer_pop(struct op_window *w, struct win_timer *ret) {
        *ret = w->heap[0];
        w->heap[0] = w->heap[--w->n_timers];
        size_t i = 0;
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < w->n_timers && win_timer_cmp(&w->heap[l], &w->heap[m]) < 0)
                        m = l;
                if (r < w->n_timers && win_timer_cmp(&w->heap[r], &w->heap[m]) < 0)
                        m = r;
                if (m == i)
                        break;
                struct win_timer t = w->heap[i];
                w->heap[i] = w->heap[m];
                w->heap[m] = t;
                i = m;
        }
}

/* Fires every window whose end - 1 <= time (Flink's window.maxTimestamp() <= the
 * watermark or the processing time): emits (key, aggregate) with timestamp end - 1 and
 * purges the window's state, in timer order. */
static int win_fire(struct op_window *w, int64_t time) {
        struct op_agg *a = &w->agg;
        while (w->n_timers > 0 && w->heap[0].end - 1 <= time) {
                struct win_timer t;
                win_timer_pop(w, &t);
                unsigned char ns[WIN_NS_BYTES];
                win_ns(ns, t.start, t.end);
                struct sb_key k = {.key = t.key, .key_len = t.key_len, .ns = ns,
                                   .ns_len = sizeof(ns)};
                uint32_t h = win_hash(t.key, t.key_len, t.start);
                size_t i = win_slot_find(w, t.key, t.key_len, t.start, h);
                bool have = false, in_db = true;
                int64_t value = 0;
                int r = 0;
                if (w->slots[i].key) {
                        have = true;
                        value = w->slots[i].value;
                        in_db = w->slots[i].in_db;
                        win_slot_remove(w, i);
                } else {
                        r = sb_value_get(a->st, &k, &a->buf);
                        if (r < 0) {
                                free(t.key);
                                return chain_fail(a->op.chain, r, "%s: state read failed: %s",
                                                  a->step, sb_backend_last_error(a->b));
                        }
                        have = r == 1 && a->buf.len == 8;
                        if (have)
                                value = get_le64(a->buf.data);
                        r = 0;
                }
                if (have) {
                        struct wrk_record out = {.kind = WRK_REC_PAIR, .text = t.key,
                                                 .text_len = t.key_len, .key = t.key,
                                                 .key_len = t.key_len, .value = value,
                                                 .timestamp_ms = t.end - 1};
                        r = wrk_op_emit(&a->op, &out);
                }
                if (r == 0 && have && in_db) {
                        if ((r = sb_state_clear(a->st, &k)) < 0)
                                chain_fail(a->op.chain, r, "%s: state write failed: %s",
                                           a->step, sb_backend_last_error(a->b));
                        else if (w->db_entries > 0)
                                w->db_entries--;
                }
                free(t.key);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Rebuilds the timers from the state (after a restore: one per (key, window) held). */
static int win_rebuild_entry(void *arg, const struct sb_entry *e) {
        struct op_window *w = arg;
        if (e->ns_len != WIN_NS_BYTES)
                return chain_fail(w->agg.op.chain, -EBADMSG, "%s: restored window state has a "
                                  "namespace of %zu bytes, expected %u", w->agg.step, e->ns_len,
                                  WIN_NS_BYTES);
        const unsigned char *ns = e->ns;
        w->db_entries++;
        return win_timer_add(w, e->key, e->key_len, win_be64(ns), win_be64(ns + 8));
}

static int win_open(struct wrk_op *op) {
        struct op_window *w = (struct op_window *)op;
        int r = agg_open(op);
        if (r < 0)
                return r;
        w->slots = calloc(WIN_TABLE_SLOTS, sizeof(*w->slots));
        if (!w->slots)
                return chain_fail(op->chain, -ENOMEM, "out of memory");
        r = sb_state_scan(w->agg.st, win_rebuild_entry, w);
        if (r < 0 && !w->agg.op.chain->error[0])
                chain_fail(op->chain, r, "%s: reading the restored windows failed: %s",
                           w->agg.step, sb_backend_last_error(w->agg.b));
        return r < 0 ? r : 0;
}

static int win_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_window *w = (struct op_window *)op;
        struct op_agg *a = &w->agg;
        struct wrk_chain *c = op->chain;
        int64_t ts;
        if (w->event) {
                ts = rec->timestamp_ms;
                if (ts == 0)
                        return chain_fail(c, -EINVAL, "%s: a record has no event time (give "
                                          "the file source `timestamps: leading`)", a->step);
        } else {
                ts = c->wall_ms();
        }
        const char *key;
        size_t key_len;
        wrk_record_key(rec, &key, &key_len);
        int64_t x;
        int r = agg_input(a, rec, &x);
        if (r < 0)
                return r;
        int64_t starts[WIN_MAX_PER_RECORD];
        size_t n = wrk_window_assign(ts, w->size_ms, w->slide_ms, starts, WIN_MAX_PER_RECORD);
        bool assigned = false;
        for (size_t i = 0; i < n; i++) {
                int64_t start = starts[i];
                int64_t end = start > INT64_MAX - w->size_ms ? INT64_MAX : start + w->size_ms;
                if (w->event && end - 1 <= w->watermark)
                        continue; /* fired already: late for this window */
                assigned = true;
                uint32_t h = win_hash(key, key_len, start);
                size_t si = win_slot_find(w, key, key_len, start, h);
                struct win_slot *sl = &w->slots[si];
                bool present = sl->key != NULL;
                if (!present) {
                        if (w->used >= WIN_TABLE_SLOTS / 2) {
                                if ((r = win_writeback(w, true)) < 0)
                                        return r;
                                si = win_slot_find(w, key, key_len, start, h);
                                sl = &w->slots[si];
                        }
                        /* RocksDB: only when it holds windows (after a write-back or a
                         * restore) */
                        bool in_db = false;
                        int64_t acc = 0;
                        if (w->db_entries > 0) {
                                unsigned char ns[WIN_NS_BYTES];
                                win_ns(ns, start, end);
                                struct sb_key k = {.key = key, .key_len = key_len, .ns = ns,
                                                   .ns_len = sizeof(ns)};
                                r = sb_value_get(a->st, &k, &a->buf);
                                if (r < 0)
                                        return chain_fail(c, r, "%s: state read failed: %s",
                                                          a->step, sb_backend_last_error(a->b));
                                in_db = r == 1 && a->buf.len == 8;
                                if (in_db)
                                        acc = get_le64(a->buf.data);
                        }
                        char *copy = malloc(key_len ? key_len : 1);
                        if (!copy)
                                return chain_fail(c, -ENOMEM, "out of memory");
                        memcpy(copy, key, key_len);
                        *sl = (struct win_slot){.key = copy, .key_len = key_len, .start = start,
                                                .end = end, .hash = h, .value = acc,
                                                .in_db = in_db};
                        w->used++;
                        present = in_db;
                        /* a new (key, window): its timer */
                        if (!in_db && (r = win_timer_add(w, key, key_len, start, end)) < 0)
                                return r;
                }
                int64_t v;
                if ((r = agg_combine(a, present, sl->value, x, rec, key, key_len, &v)) < 0)
                        return r;
                sl->value = v;
                sl->dirty = true;
        }
        if (n > 0 && !assigned)
                w->late_dropped++;
        return 0;
}

static int win_watermark(struct wrk_op *op, int64_t watermark) {
        struct op_window *w = (struct op_window *)op;
        if (!w->event)
                return wrk_op_emit_watermark(op, watermark);
        if (watermark <= w->watermark)
                return 0;
        w->watermark = watermark;
        int r = win_fire(w, watermark);
        if (r < 0)
                return r;
        return wrk_op_emit_watermark(op, watermark);
}

/* Processing time: the windows whose end passed fire at the end of every step (a step
 * of a chain reading from its gate waits at most 50 ms for input). */
static int win_flush(struct wrk_op *op) {
        struct op_window *w = (struct op_window *)op;
        return w->event ? 0 : win_fire(w, op->chain->wall_ms());
}

/* End of input: every window left fires (event time: the watermark INT64_MAX did that
 * already; processing time: unlike Flink, which drops them, so that a bounded job
 * emits all its windows). */
static int win_finish(struct wrk_op *op) {
        struct op_window *w = (struct op_window *)op;
        int r = win_fire(w, INT64_MAX);
        if (r < 0)
                return r;
        return agg_finish(op);
}

/* Checkpoint: the table's dirty accumulators go to RocksDB first (they stay in the
 * table, clean), then the keyed snapshot. */
static int win_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so) {
        int r = win_writeback((struct op_window *)op, false);
        if (r < 0)
                return r;
        return agg_snapshot(op, n, savepoint, so);
}

static void win_destroy(struct wrk_op *op) {
        struct op_window *w = (struct op_window *)op;
        for (size_t i = 0; i < w->n_timers; i++)
                free(w->heap[i].key);
        free(w->heap);
        if (w->slots) {
                for (size_t i = 0; i < WIN_TABLE_SLOTS; i++)
                        free(w->slots[i].key);
                free(w->slots);
        }
        agg_destroy(op);
}

static const struct wrk_op_vtable window_vt = {
        .name = "window", .open = win_open, .push = win_push, .flush = win_flush,
        .finish = win_finish, .destroy = win_destroy, .snapshot = win_snapshot,
        .detach = agg_detach, .complete = agg_complete, .abort = agg_abort,
        .watermark = win_watermark,
};

uint64_t wrk_chain_late_records_dropped(const struct wrk_chain *c) {
        uint64_t n = 0;
        for (size_t i = 0; i < c->n_ops; i++)
                if (c->ops[i]->vt == &window_vt)
                        n += ((const struct op_window *)c->ops[i])->late_dropped;
        return n;
}

/* ------------------------------------------------------------------------------------
 * Exactly-once file sink (checkpointing on): part files through sink2pc.h. */

struct op_file2pc {
        struct wrk_op op;
        char dir[WRK_PATH_MAX];
        uint64_t part_size_bytes;
        struct wrk_sink2pc *sink;
        size_t used;
        char buf[WRK_SINK_BUFFER_BYTES];
};

static int f2_write(struct op_file2pc *f) {
        if (f->used == 0)
                return 0;
        char err[512] = "";
        int r = wrk_sink2pc_write(f->sink, f->buf, f->used, err, sizeof(err));
        f->used = 0;
        if (r < 0)
                return chain_fail(f->op.chain, r, "file sink: %s", err);
        return 0;
}

static int f2_open(struct wrk_op *op) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        struct wrk_chain *c = op->chain;
        const char *id = c->g->vertices[op->vertex].id;
        size_t total = 0;
        for (size_t i = 0; i < c->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(c->restore[i], id);
                if (o && o->has_sink)
                        total += o->n_pending;
        }
        struct wrk_sink_file *files = calloc(total ? total : 1, sizeof(*files));
        if (!files)
                return chain_fail(c, -ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < c->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(c->restore[i], id);
                if (o && o->has_sink) {
                        memcpy(files + k, o->pending, o->n_pending * sizeof(*files));
                        k += o->n_pending;
                }
        }
        struct wrk_sink2pc_config cfg = {.dir = f->dir, .vertex = op->vertex,
                                         .subtask = c->subtask, .parallelism = c->parallelism,
                                         .part_size_bytes = f->part_size_bytes,
                                         .restored = files, .n_restored = total,
                                         .restore = true};
        char err[512] = "";
        int r = wrk_sink2pc_open(&cfg, &f->sink, err, sizeof(err));
        free(files);
        if (r < 0)
                return chain_fail(c, r, "file sink: %s", err);
        return 0;
}

static int f2_push(struct wrk_op *op, const struct wrk_record *rec) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        int r;
        if (f->used + rec->text_len + 32 > sizeof(f->buf) && (r = f2_write(f)) < 0)
                return r;
        size_t len;
        r = format_sink_line(rec, f->buf + f->used, sizeof(f->buf) - f->used - 1, &len);
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: a record of %zu bytes is too long",
                                  rec->text_len);
        f->used += len;
        f->buf[f->used++] = '\n';
        op->records_out++;
        return 0;
}

static int f2_flush(struct wrk_op *op) {
        return f2_write((struct op_file2pc *)op);
}

static int f2_finish(struct wrk_op *op) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        int r = f2_write(f);
        if (r < 0)
                return r;
        char err[512] = "";
        r = wrk_sink2pc_end(f->sink, err, sizeof(err));
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: %s", err);
        return 0;
}

static int f2_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                       struct wrk_substate_op *so) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        (void)savepoint;
        int r = f2_write(f);
        if (r < 0)
                return r;
        char err[512] = "";
        struct wrk_sink_file *files = NULL;
        size_t nf = 0;
        uint64_t next = 0;
        r = wrk_sink2pc_barrier(f->sink, n, &files, &nf, &next, err, sizeof(err));
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: %s", err);
        so->has_sink = true;
        so->pending = files;
        so->n_pending = nf;
        so->sink_next_seq = next;
        return 0;
}

static int f2_complete(struct wrk_op *op, uint64_t n) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        char err[512] = "";
        int r = wrk_sink2pc_commit(f->sink, n, NULL, err, sizeof(err));
        if (r < 0)
                return chain_fail(op->chain, r, "file sink: %s", err);
        return 0;
}

static void f2_destroy(struct wrk_op *op) {
        struct op_file2pc *f = (struct op_file2pc *)op;
        wrk_sink2pc_destroy(f->sink);
        free(f);
}

static const struct wrk_op_vtable file2pc_vt = {
        .name = "sink:file", .open = f2_open, .push = f2_push, .flush = f2_flush,
        .finish = f2_finish, .destroy = f2_destroy, .snapshot = f2_snapshot,
        .complete = f2_complete,
};

/* The network output forwards barrier n on every channel at once. */
static int net_snapshot(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so) {
        struct op_net *nt = (struct op_net *)op;
        (void)so;
        for (size_t e = 0; e < nt->n_edges; e++)
                for (uint32_t i = 0; i < nt->edges[e].n; i++) {
                        struct net_target *t = &nt->edges[e].t[i];
                        int r = wrk_outbuf_add_barrier(t->buf, n, savepoint, clock_mono_us());
                        if (r == -ENOSPC) {
                                if ((r = net_send(op, t)) < 0)
                                        return r;
                                r = wrk_outbuf_add_barrier(t->buf, n, savepoint,
                                                           clock_mono_us());
                        }
                        if (r == 0)
                                r = net_send(op, t);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* The input channel base of edge e at its target: the producer parallelisms of the
 * target's input edges before it. */
static uint32_t channel_base(const struct job_graph *g, const struct job_edge *e) {
        uint32_t base = 0;
        for (size_t i = 0; i < g->n_edges; i++) {
                const struct job_edge *x = &g->edges[i];
                if (x->to == e->to && x->input < e->input)
                        base += g->vertices[x->from].parallelism;
        }
        return base;
}

static int net_create(struct wrk_chain *c, uint32_t tail, struct wrk_op **ret) {
        const struct job_graph *g = c->g;
        struct op_net *n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->op.vt = &net_vt;
        n->op.chain = c;
        n->op.vertex = tail;
        size_t count = 0;
        for (size_t i = 0; i < g->n_edges; i++)
                count += g->edges[i].from == tail;
        n->edges = calloc(count ? count : 1, sizeof(*n->edges));
        if (!n->edges)
                goto nomem;
        for (size_t i = 0; i < g->n_edges; i++) {
                const struct job_edge *e = &g->edges[i];
                if (e->from != tail)
                        continue;
                struct net_edge *ed = &n->edges[n->n_edges++];
                uint32_t cc = g->vertices[e->to].chain;
                uint32_t p = g->chains[cc].parallelism;
                wrk_partitioner_init(&ed->part, e->partitioning, c->subtask, p,
                                     g->max_parallelism);
                ed->t = calloc(p, sizeof(*ed->t));
                if (!ed->t)
                        goto nomem;
                ed->n = p;
                uint32_t base = channel_base(g, e);
                for (uint32_t s = 0; s < p; s++) {
                        ed->t[s].buf = malloc(sizeof(*ed->t[s].buf));
                        if (!ed->t[s].buf || wrk_gate_get_output(c->job, c->attempt, c->chain,
                                                                 c->subtask, cc, s,
                                                                 &ed->t[s].gate) < 0) {
                                free(ed->t[s].buf);
                                ed->t[s].buf = NULL;
                                ed->n = s;
                                goto nomem;
                        }
                        wrk_outbuf_reset(ed->t[s].buf);
                        ed->t[s].channel = base + c->subtask;
                }
        }
        *ret = &n->op;
        return 0;
nomem:
        net_destroy(&n->op);
        return -ENOMEM;
}

/* ------------------------------------------------------------------------------------
 * Chains. */

static bool kind_supported(enum job_op_kind k) {
        switch (k) {
        case JOB_OP_GENERATOR:
        case JOB_OP_FILE_SOURCE:
        case JOB_OP_SOCKET:
        case JOB_OP_TOKENIZE:
        case JOB_OP_KEY_BY:
        case JOB_OP_UNION:
        case JOB_OP_MAP:
        case JOB_OP_FLAT_MAP:
        case JOB_OP_FILTER:
        case JOB_OP_REDUCE:
        case JOB_OP_COUNT:
        case JOB_OP_SUM:
        case JOB_OP_MIN:
        case JOB_OP_MAX:
        case JOB_OP_WINDOW:
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
                return err_set(err, err_len, -EINVAL, "vertex %" PRIu32 " does not exist (the "
                               "job has %zu)", chain, g ? g->n_chains : (size_t)0);
        const struct job_chain *ch = &g->chains[chain];
        if (ch->n == 0 || ch->first + ch->n > g->n_vertices)
                return err_set(err, err_len, -EINVAL, "vertex %" PRIu32 " is empty", chain);
        for (uint32_t i = 0; i < ch->n; i++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + i]];
                if (!kind_supported(v->kind))
                        return err_set(err, err_len, -EOPNOTSUPP,
                                       "operator '%s' (step '%s') is not supported by this "
                                       "worker yet", job_op_kind_name(v->kind), v->id);
                const struct job_window_params *wp = &v->params.window;
                if (v->kind == JOB_OP_WINDOW && wp->type == JOB_WINDOW_SLIDING &&
                    wp->slide_ms > 0 &&
                    (wp->size_ms + wp->slide_ms - 1) / wp->slide_ms > WIN_MAX_PER_RECORD)
                        return err_set(err, err_len, -EINVAL, "step '%s': size / slide puts "
                                       "a record into more than %u windows", v->id,
                                       WIN_MAX_PER_RECORD);
        }
        const struct job_vertex *head = &g->vertices[g->chain_vertices[ch->first]];
        if (job_op_kind_category(head->kind) != JOB_CAT_SOURCE && head->kind != JOB_OP_UNION &&
            head->n_inputs == 0)
                return err_set(err, err_len, -EINVAL, "step '%s' has no input", head->id);
        for (uint32_t i = 1; i < ch->n; i++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[ch->first + i]];
                if (job_op_kind_category(v->kind) == JOB_CAT_SOURCE)
                        return err_set(err, err_len, -EINVAL,
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
        case JOB_OP_MAP:
        case JOB_OP_FLAT_MAP:
        case JOB_OP_FILTER: {
                struct op_udf *u = calloc(1, sizeof(*u));
                if (!u)
                        return -ENOMEM;
                int r = udf_resolve(c, v, v->params.udf.udf, &u->fn, err, err_len);
                if (r < 0) {
                        free(u);
                        return r;
                }
                u->step = v->id;
                u->op.vt = v->kind == JOB_OP_MAP ? &map_vt
                           : v->kind == JOB_OP_FLAT_MAP ? &flat_map_vt : &filter_vt;
                op = &u->op;
                break;
        }
        case JOB_OP_KEY_BY: {
                struct op_key_by *k = calloc(1, sizeof(*k));
                if (!k)
                        return -ENOMEM;
                k->field = v->params.key_by.field;
                k->step = v->id;
                if (v->params.key_by.udf) {
                        void *f = NULL;
                        int r = udf_resolve(c, v, v->params.key_by.udf, &f, err, err_len);
                        if (r < 0) {
                                free(k);
                                return r;
                        }
                        k->udf = (flinc_udf_key_fn)(uintptr_t)f;
                }
                k->op.vt = &key_by_vt;
                op = &k->op;
                break;
        }
        case JOB_OP_UNION: {
                op = calloc(1, sizeof(*op));
                if (!op)
                        return -ENOMEM;
                op->vt = &union_vt;
                break;
        }
        case JOB_OP_COUNT:
        case JOB_OP_SUM:
        case JOB_OP_MIN:
        case JOB_OP_MAX:
        case JOB_OP_REDUCE: {
                struct op_agg *a = calloc(1, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                if (v->kind == JOB_OP_REDUCE) {
                        void *f = NULL;
                        int r = udf_resolve(c, v, v->params.udf.udf, &f, err, err_len);
                        if (r < 0) {
                                free(a);
                                return r;
                        }
                        a->reduce = (flinc_udf_reduce_fn)(uintptr_t)f;
                }
                a->kind = v->kind;
                a->field = v->kind == JOB_OP_COUNT ? JOB_FIELD_VALUE : v->params.agg.field;
                a->step = v->id;
                int n = snprintf(a->dir, sizeof(a->dir), "%s/%s-%" PRIu32 "-%" PRIu32 "-%" PRIu32,
                                 c->state_dir, c->job, c->attempt, vi, c->subtask);
                if (n < 0 || (size_t)n >= sizeof(a->dir)) {
                        free(a);
                        return err_set(err, err_len, -ENAMETOOLONG, "step '%s': state "
                                       "directory name too long", v->id);
                }
                a->op.vt = v->kind == JOB_OP_COUNT ? &count_vt
                           : v->kind == JOB_OP_SUM ? &sum_vt
                           : v->kind == JOB_OP_MIN ? &min_vt
                           : v->kind == JOB_OP_MAX ? &max_vt : &reduce_vt;
                op = &a->op;
                break;
        }
        case JOB_OP_WINDOW: {
                const struct job_window_params *wp = &v->params.window;
                struct op_window *w = calloc(1, sizeof(*w));
                if (!w)
                        return -ENOMEM;
                struct op_agg *a = &w->agg;
                if (wp->aggregate == JOB_AGG_REDUCE) {
                        void *f = NULL;
                        int r = udf_resolve(c, v, wp->udf, &f, err, err_len);
                        if (r < 0) {
                                free(w);
                                return r;
                        }
                        a->reduce = (flinc_udf_reduce_fn)(uintptr_t)f;
                }
                a->kind = wp->aggregate == JOB_AGG_COUNT ? JOB_OP_COUNT
                          : wp->aggregate == JOB_AGG_SUM ? JOB_OP_SUM
                          : wp->aggregate == JOB_AGG_MIN ? JOB_OP_MIN
                          : wp->aggregate == JOB_AGG_MAX ? JOB_OP_MAX : JOB_OP_REDUCE;
                a->field = wp->aggregate == JOB_AGG_COUNT ? JOB_FIELD_VALUE : wp->field;
                a->step = v->id;
                int n = snprintf(a->dir, sizeof(a->dir), "%s/%s-%" PRIu32 "-%" PRIu32 "-%" PRIu32,
                                 c->state_dir, c->job, c->attempt, vi, c->subtask);
                if (n < 0 || (size_t)n >= sizeof(a->dir)) {
                        free(w);
                        return err_set(err, err_len, -ENAMETOOLONG, "step '%s': state "
                                       "directory name too long", v->id);
                }
                w->event = wp->time == JOB_TIME_EVENT;
                w->size_ms = wp->size_ms;
                w->slide_ms = wp->type == JOB_WINDOW_SLIDING ? wp->slide_ms : 0;
                w->watermark = INT64_MIN;
                a->op.vt = &window_vt;
                op = &a->op;
                break;
        }
        case JOB_OP_DISCARD_SINK: {
                struct op_discard *d = calloc(1, sizeof(*d));
                if (!d)
                        return -ENOMEM;
                if (v->params.discard.rate_per_s > 0)
                        wrk_rate_init(&d->rate, (uint64_t)v->params.discard.rate_per_s,
                                      c->parallelism, clock_mono_us());
                op = &d->op;
                op->vt = &discard_vt;
                break;
        }
        case JOB_OP_FILE_SINK: {
                if (c->checkpoint_interval_ms > 0) {
                        struct op_file2pc *f2 = calloc(1, sizeof(*f2));
                        if (!f2)
                                return -ENOMEM;
                        char why2[256];
                        int r2 = storage_uri_to_path(v->params.file_sink.path, f2->dir,
                                                     sizeof(f2->dir), why2, sizeof(why2));
                        if (r2 < 0) {
                                free(f2);
                                return err_set(err, err_len, r2, "step '%s': path: %s", v->id,
                                               why2);
                        }
                        f2->part_size_bytes = v->params.file_sink.part_size_bytes > 0
                                                      ? (uint64_t)v->params.file_sink.part_size_bytes
                                                      : 0;
                        f2->op.vt = &file2pc_vt;
                        op = &f2->op;
                        break;
                }
                struct op_file *f = calloc(1, sizeof(*f));
                if (!f)
                        return -ENOMEM;
                f->fd = -1;
                char why[256];
                int r = storage_uri_to_path(v->params.file_sink.path, f->dir, sizeof(f->dir), why,
                                            sizeof(why));
                if (r < 0) {
                        free(f);
                        return err_set(err, err_len, r, "step '%s': path: %s", v->id, why);
                }
                f->part_size_bytes = v->params.file_sink.part_size_bytes > 0
                                             ? (uint64_t)v->params.file_sink.part_size_bytes
                                             : UINT64_MAX;
                f->op.vt = &file_vt;
                op = &f->op;
                break;
        }
        default:
                return err_set(err, err_len, -EOPNOTSUPP,
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
                return err_set(err, err_len, -EINVAL, "bad subtask for vertex %" PRIu32, chain);
        const struct job_chain *ch = &g->chains[chain];
        struct wrk_chain *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->g = g;
        c->sock = -1;
        c->chain = chain;
        snprintf(c->job, sizeof(c->job), "%s", ctx->job);
        c->attempt = ctx->attempt;
        c->subtask = ctx->subtask;
        c->parallelism = ctx->parallelism;
        c->out = ctx->out;
        c->errs = ctx->err;
        c->cancel = ctx->cancel;
        c->sb_env = ctx->sb_env;
        c->buffer_timeout_ms = ctx->buffer_timeout_ms;
        c->latency_interval_ms = ctx->latency_interval_ms;
        if (ctx->job_checkpoint_dir)
                snprintf(c->job_dir, sizeof(c->job_dir), "%s", ctx->job_checkpoint_dir);
        c->on_checkpoint = ctx->on_checkpoint;
        c->on_checkpoint_arg = ctx->on_checkpoint_arg;
        c->restore = ctx->restore;
        c->n_restore = ctx->n_restore;
        c->restored_checkpoint = ctx->restored_checkpoint;
        if (ctx->restore_dir)
                snprintf(c->restore_dir, sizeof(c->restore_dir), "%s", ctx->restore_dir);
        c->checkpoint_interval_ms = g->checkpointing.configured
                                            ? g->checkpointing.interval_ms
                                            : ctx->default_checkpoint_interval_ms;
        if (ctx->state_dir && ctx->state_dir[0]) {
                snprintf(c->state_dir, sizeof(c->state_dir), "%s", ctx->state_dir);
        } else {
                const char *tmp = getenv("TMPDIR");
                snprintf(c->state_dir, sizeof(c->state_dir), "%s/flinc-state-%ld",
                         tmp && tmp[0] ? tmp : "/tmp", (long)getpid());
        }
        c->wall_ms = ctx->wall_clock_ms ? ctx->wall_clock_ms : clock_wall_ms;
        /* Event time: the job has an event-time window; its sources take the largest
         * out_of_orderness of those windows (ops.h WINDOWS). */
        int64_t ooo = 0;
        for (size_t i = 0; i < g->n_vertices; i++) {
                const struct job_vertex *v = &g->vertices[i];
                if (v->kind == JOB_OP_WINDOW && v->params.window.time == JOB_TIME_EVENT) {
                        c->event_time = true;
                        if (v->params.window.out_of_orderness_ms > ooo)
                                ooo = v->params.window.out_of_orderness_ms;
                }
        }
        wrk_wm_gen_init(&c->wmgen, ooo);
        const struct job_vertex *head = &g->vertices[g->chain_vertices[ch->first]];
        uint32_t first_op = 1;
        size_t dlen;
        if (job_op_kind_category(head->kind) == JOB_CAT_SOURCE) {
                c->source = head;
                if (head->kind == JOB_OP_SOCKET) {
                        /* nothing to set up before open */
                } else if (head->kind == JOB_OP_FILE_SOURCE) {
                        char why[256];
                        r = storage_uri_to_path(head->params.file_source.path, c->src_path,
                                                sizeof(c->src_path), why, sizeof(why));
                        if (r < 0) {
                                err_set(err, err_len, r, "step '%s': path: %s", head->id, why);
                                goto fail;
                        }
                } else {
                        int64_t count = c->source->params.generator.count;
                        c->gen_end = count > 0 ? (uint64_t)count : UINT64_MAX;
                        r = gen_position(c, ctx, err, err_len);
                        if (r < 0)
                                goto fail;
                }
                dlen = (size_t)snprintf(c->describe, sizeof(c->describe), "%s",
                                        job_op_kind_name(c->source->kind));
        } else {
                first_op = 0;
                uint32_t hv = g->chain_vertices[ch->first];
                for (size_t i = 0; i < g->n_edges; i++)
                        if (g->edges[i].to == hv)
                                c->n_channels += g->vertices[g->edges[i].from].parallelism;
                const struct job_checkpointing *cp = &g->checkpointing;
                bool exactly_once = cp->configured ? cp->mode == JOB_CP_EXACTLY_ONCE
                                                   : !ctx->default_at_least_once;
                r = wrk_aligner_init(&c->aligner, c->n_channels, exactly_once);
                if (r < 0) {
                        err_set(err, err_len, r, "vertex %" PRIu32 ": bad input count", chain);
                        goto fail;
                }
                c->aligner_ready = true;
                r = wrk_wm_valve_init(&c->valve, c->n_channels);
                if (r < 0)
                        goto fail;
                c->valve_ready = true;
                r = wrk_gate_get(c->job, c->attempt, chain, c->subtask, &c->gate);
                if (r < 0)
                        goto fail;
                dlen = (size_t)snprintf(c->describe, sizeof(c->describe), "network");
        }
        c->ops = calloc(ch->n + 1, sizeof(*c->ops));
        if (!c->ops) {
                r = -ENOMEM;
                goto fail;
        }
        for (uint32_t i = first_op; i < ch->n; i++) {
                uint32_t vi = g->chain_vertices[ch->first + i];
                struct wrk_op *op = NULL;
                r = op_create(c, &g->vertices[vi], vi, &op, err, err_len);
                if (r < 0) {
                        if (r == -ENOMEM)
                                err_set(err, err_len, r, "out of memory");
                        goto fail;
                }
                if (c->n_ops > 0)
                        c->ops[c->n_ops - 1]->next = op;
                c->ops[c->n_ops++] = op;
                if (dlen < sizeof(c->describe))
                        dlen += (size_t)snprintf(c->describe + dlen, sizeof(c->describe) - dlen,
                                                 " -> %s", op->vt->name);
        }
        uint32_t tail = g->chain_vertices[ch->first + ch->n - 1];
        if (job_op_kind_category(g->vertices[tail].kind) != JOB_CAT_SINK) {
                struct wrk_op *op = NULL;
                r = net_create(c, tail, &op);
                if (r < 0) {
                        err_set(err, err_len, r, "out of memory");
                        goto fail;
                }
                if (c->n_ops > 0)
                        c->ops[c->n_ops - 1]->next = op;
                c->ops[c->n_ops++] = op;
                if (dlen < sizeof(c->describe))
                        snprintf(c->describe + dlen, sizeof(c->describe) - dlen, " -> network");
        }
        *ret = c;
        return 0;
fail:
        wrk_chain_destroy(c);
        return r;
}

int wrk_chain_open(struct wrk_chain *c) {
        if (c->source && c->source->kind == JOB_OP_FILE_SOURCE) {
                int r = file_source_open(c);
                if (r < 0)
                        return r;
        }
        if (c->source && c->source->kind == JOB_OP_SOCKET) {
                int r = socket_source_open(c);
                if (r < 0)
                        return r;
        }
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

/* The generator's position: fresh (p, i, i); the own state's entries when exactly one
 * state, of this very subtask at this parallelism, is given; else the union of all
 * given states redistributed (a rescale: the coordinator passes every old subtask's
 * state to every new subtask). */
static int gen_position(struct wrk_chain *c, const struct wrk_chain_ctx *ctx, char *err,
                        size_t err_len) {
        size_t total = 0;
        const struct wrk_substate_op *own = NULL;
        for (size_t i = 0; i < ctx->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(ctx->restore[i],
                                                                    c->source->id);
                if (!o || !o->has_gen)
                        continue;
                total += o->n_gen;
                if (ctx->restore[i]->subtask == c->subtask &&
                    ctx->restore[i]->parallelism == c->parallelism)
                        own = o;
        }
        if (total == 0) {
                c->gen = malloc(sizeof(*c->gen));
                if (!c->gen)
                        return -ENOMEM;
                c->gen[0] = wrk_gen_initial(c->subtask, c->parallelism);
                c->n_gen = 1;
                return 0;
        }
        if (own && ctx->n_restore == 1) {
                c->gen = calloc(own->n_gen ? own->n_gen : 1, sizeof(*c->gen));
                if (!c->gen)
                        return -ENOMEM;
                memcpy(c->gen, own->gen, own->n_gen * sizeof(*c->gen));
                c->n_gen = own->n_gen;
                return 0;
        }
        struct wrk_gen_entry *all = calloc(total, sizeof(*all));
        if (!all)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < ctx->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(ctx->restore[i],
                                                                    c->source->id);
                if (o && o->has_gen) {
                        memcpy(all + k, o->gen, o->n_gen * sizeof(*all));
                        k += o->n_gen;
                }
        }
        int r = wrk_gen_redistribute(all, total, c->subtask, c->parallelism, &c->gen, &c->n_gen);
        free(all);
        if (r < 0)
                return err_set(err, err_len, r, "generator state redistribution failed");
        return 0;
}

static int chain_snapshot(struct wrk_chain *c, uint64_t n, bool savepoint,
                          uint64_t alignment_us);
static void chain_decline(struct wrk_chain *c, uint64_t n, const char *reason);

static bool chain_blocked(void *arg, uint32_t channel) {
        struct wrk_chain *c = arg;
        return wrk_aligner_blocked(&c->aligner, channel);
}

/* A step of a chain that reads from its gate: buffers for up to max records, waiting at
 * most 50 ms for the first. */
static int chain_step_input(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        uint64_t taken = 0;
        int r = 0;
        struct wrk_op *head = c->ops[0];
        uint64_t wait_us = 50000;
        while (taken < max && !c->inputs_done) {
                uint32_t channel;
                void *data;
                size_t len;
                int got = wrk_gate_take(c->gate, wait_us, chain_blocked, c, &channel, &data,
                                        &len);
                if (got < 0)
                        return chain_fail(c, got, "network input: the connection from a "
                                          "producer on another worker was lost");
                if (got != 1)
                        break;
                wait_us = 0;
                if (c->aligner.current)
                        c->align_bytes += len;
                size_t pos = 0;
                struct wrk_entry e;
                int k;
                while ((k = wrk_buffer_next(data, len, &pos, &e)) == 1) {
                        uint64_t unused = 0, al = 0;
                        if (e.type == WRK_ENTRY_RECORD) {
                                taken++;
                                c->net_in++;
                                head->records_in++;
                                r = head->vt->push(head, &e.rec);
                                if (r < 0)
                                        break;
                        } else if (e.type == WRK_ENTRY_WATERMARK) {
                                int64_t w;
                                if (wrk_wm_valve_input(&c->valve, channel, e.watermark, &w) &&
                                    (r = chain_watermark(c, w)) < 0)
                                        break;
                        } else if (e.type == WRK_ENTRY_LATENCY) {
                                r = wrk_op_marker(head, &e.marker);
                                if (r < 0)
                                        break;
                        } else if (e.type == WRK_ENTRY_BARRIER) {
                                enum wrk_align_event ev = wrk_aligner_barrier(
                                        &c->aligner, channel, e.checkpoint_id, clock_mono_us(),
                                        &unused, &al);
                                if (ev == WRK_ALIGN_CANCEL || ev == WRK_ALIGN_CANCEL_AND_SNAPSHOT)
                                        chain_decline(c, unused, "a newer barrier overtook it "
                                                      "during alignment");
                                if (ev == WRK_ALIGN_SNAPSHOT ||
                                    ev == WRK_ALIGN_CANCEL_AND_SNAPSHOT) {
                                        r = chain_snapshot(c, e.checkpoint_id, e.savepoint, al);
                                        if (r < 0)
                                                break;
                                }
                        } else {
                                enum wrk_align_event ev = wrk_aligner_end(&c->aligner, channel,
                                                                          clock_mono_us(), &al);
                                if (ev == WRK_ALIGN_SNAPSHOT) {
                                        r = chain_snapshot(c, c->aligner.last_started, false, al);
                                        if (r < 0)
                                                break;
                                }
                                int64_t w;
                                if (c->event_time && wrk_wm_valve_end(&c->valve, channel, &w) &&
                                    (r = chain_watermark(c, w)) < 0)
                                        break;
                                if (wrk_aligner_all_ended(&c->aligner))
                                        c->inputs_done = true;
                        }
                }
                free(data);
                if (r < 0)
                        break;
                if (k < 0) {
                        r = chain_fail(c, k, "input channel %" PRIu32 ": malformed buffer",
                                       channel);
                        break;
                }
        }
        if (ret_emitted)
                *ret_emitted = taken;
        if (r < 0)
                return r;
        r = chain_flush(c);
        if (r < 0)
                return r;
        return c->inputs_done ? 1 : 0;
}

/* ------------------------------------------------------------------------------------
 * File source: lines of a file, split across subtasks by byte ranges (dataflow.h). */

static int file_source_open(struct wrk_chain *c) {
        const char *id = c->source->id;
        struct stat st;
        if (stat(c->src_path, &st) < 0)
                return chain_fail(c, -errno, "file source: %s: %s", c->src_path,
                                  strerror(errno));
        size_t total = 0;
        const struct wrk_substate_op *own = NULL;
        for (size_t i = 0; i < c->n_restore; i++) {
                const struct wrk_substate_op *o = wrk_substate_find(c->restore[i], id);
                if (!o || !o->has_file)
                        continue;
                total += o->n_file;
                if (c->restore[i]->subtask == c->subtask &&
                    c->restore[i]->parallelism == c->parallelism)
                        own = o;
        }
        if (c->n_restore == 0 || (total == 0 && !own)) {
                c->splits = calloc(1, sizeof(*c->splits));
                if (!c->splits)
                        return chain_fail(c, -ENOMEM, "out of memory");
                wrk_file_split_initial((uint64_t)st.st_size, c->subtask, c->parallelism,
                                       &c->splits[0].start, &c->splits[0].end);
                c->splits[0].offset = c->splits[0].start;
                c->n_splits = 1;
        } else if (own && c->n_restore == 1) {
                c->splits = calloc(own->n_file ? own->n_file : 1, sizeof(*c->splits));
                if (!c->splits)
                        return chain_fail(c, -ENOMEM, "out of memory");
                memcpy(c->splits, own->file, own->n_file * sizeof(*c->splits));
                c->n_splits = own->n_file;
        } else {
                struct wrk_file_split *all = calloc(total ? total : 1, sizeof(*all));
                if (!all)
                        return chain_fail(c, -ENOMEM, "out of memory");
                size_t k = 0;
                for (size_t i = 0; i < c->n_restore; i++) {
                        const struct wrk_substate_op *o = wrk_substate_find(c->restore[i], id);
                        if (o && o->has_file) {
                                memcpy(all + k, o->file, o->n_file * sizeof(*all));
                                k += o->n_file;
                        }
                }
                int r = wrk_file_splits_redistribute(all, total, c->subtask, c->parallelism,
                                                     &c->splits, &c->n_splits);
                free(all);
                if (r < 0)
                        return chain_fail(c, r, "file source: split redistribution failed");
        }
        c->src = fopen(c->src_path, "re");
        if (!c->src)
                return chain_fail(c, -errno, "file source: %s: %s", c->src_path,
                                  strerror(errno));
        c->split_positioned = false;
        return 0;
}

/* Positions the reader at split s's next line start. */
static int file_source_seek(struct wrk_chain *c, struct wrk_file_split *s) {
        if (s->offset == s->start && s->start > 0) {
                if (fseeko(c->src, (off_t)(s->start - 1), SEEK_SET) < 0)
                        return -errno;
                int ch;
                uint64_t pos = s->start - 1;
                while ((ch = getc(c->src)) != EOF) {
                        pos++;
                        if (ch == '\n')
                                break;
                }
                s->offset = ch == EOF ? s->end : pos;
                if (s->offset > s->end)
                        s->offset = s->end;
                return 0;
        }
        if (fseeko(c->src, (off_t)s->offset, SEEK_SET) < 0)
                return -errno;
        return 0;
}

/* Emits up to max lines. 1 when every split is done. */
/* timestamps: leading: the line's leading decimal epoch ms (1..2^63-1) and the spaces
 * or tabs after it are cut from the text and become the record's timestamp. */
static int leading_timestamp(struct wrk_chain *c, struct wrk_record *rec, uint64_t offset) {
        const char *t = rec->text;
        size_t n = rec->text_len, i = 0;
        uint64_t v = 0;
        while (i < n && t[i] >= '0' && t[i] <= '9') {
                unsigned d = (unsigned)(t[i] - '0');
                if (v > ((uint64_t)INT64_MAX - d) / 10)
                        goto bad;
                v = v * 10 + d;
                i++;
        }
        if (i == 0 || v == 0 || (i < n && t[i] != ' ' && t[i] != '\t'))
                goto bad;
        while (i < n && (t[i] == ' ' || t[i] == '\t'))
                i++;
        rec->timestamp_ms = (int64_t)v;
        rec->text += i;
        rec->text_len -= i;
        return 0;
bad:
        return chain_fail(c, -EINVAL, "file source: %s: the line at byte %" PRIu64 " does not "
                          "start with a timestamp (timestamps: leading wants epoch "
                          "milliseconds 1..2^63-1, then spaces or tabs): '%.*s'", c->src_path,
                          offset, (int)(n > 40 ? 40 : n), t);
}

static int file_source_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        uint64_t emitted = 0;
        int r = 0;
        while (emitted < max && c->cur_split < c->n_splits) {
                struct wrk_file_split *s = &c->splits[c->cur_split];
                if (!c->split_positioned) {
                        if ((r = file_source_seek(c, s)) < 0) {
                                r = chain_fail(c, r, "file source: seek in %s: %s", c->src_path,
                                               strerror(-r));
                                break;
                        }
                        c->split_positioned = true;
                }
                if (s->offset >= s->end) {
                        c->cur_split++;
                        c->split_positioned = false;
                        continue;
                }
                ssize_t n = getline(&c->line, &c->line_cap, c->src);
                if (n < 0) {
                        if (ferror(c->src)) {
                                r = chain_fail(c, -EIO, "file source: reading %s failed",
                                               c->src_path);
                                break;
                        }
                        s->offset = s->end; /* the file is shorter than when split */
                        continue;
                }
                uint64_t start = s->offset;
                s->offset += (uint64_t)n;
                size_t len = (size_t)n;
                if (len && c->line[len - 1] == '\n')
                        len--;
                if (len && c->line[len - 1] == '\r')
                        len--;
                if (len > WRK_RECORD_MAX_BYTES) {
                        r = chain_fail(c, -E2BIG, "file source: the line at byte %" PRIu64
                                       " of %s is longer than %u bytes", start, c->src_path,
                                       WRK_RECORD_MAX_BYTES);
                        break;
                }
                struct wrk_record rec = {.kind = WRK_REC_TEXT, .text = c->line, .text_len = len,
                                         .value = 1, .seq = start};
                if (c->source->params.file_source.timestamps == JOB_TS_LEADING &&
                    (r = leading_timestamp(c, &rec, start)) < 0)
                        break;
                c->gen_k++;
                emitted++;
                r = source_push(c, &rec);
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
        return c->cur_split >= c->n_splits ? 1 : 0;
}

/* ------------------------------------------------------------------------------------
 * Socket source: text lines from a TCP server (parallelism 1). Not replayable: it keeps
 * no position, a restore reconnects and reads what the server sends next. The input
 * ends when the server closes the connection. */

static int socket_source_open(struct wrk_chain *c) {
        const struct job_socket_params *sp = &c->source->params.socket;
        char port[16];
        snprintf(port, sizeof(port), "%" PRId64, sp->port);
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(sp->host, port, &hints, &res);
        if (g != 0)
                return chain_fail(c, -EHOSTUNREACH, "socket source: %s:%s: %s", sp->host, port,
                                  gai_strerror(g));
        int fd = -1, r = -ECONNREFUSED;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                if (fd < 0)
                        continue;
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                r = -errno;
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return chain_fail(c, r, "socket source: cannot connect to %s:%s: %s", sp->host,
                                  port, strerror(-r));
        c->sock = fd;
        return 0;
}

/* Reads what is there (waiting at most 50 ms) and emits the complete lines. 1 when the
 * server closed the connection. */
static int socket_source_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        uint64_t emitted = 0;
        int r = 0;
        bool eof = false;
        struct pollfd pfd = {.fd = c->sock, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0) {
                if (c->sock_used == sizeof(c->text))
                        return chain_fail(c, -E2BIG, "socket source: a line is longer than %u "
                                          "bytes", WRK_RECORD_MAX_BYTES);
                ssize_t n = read(c->sock, c->text + c->sock_used, sizeof(c->text) - c->sock_used);
                if (n < 0 && errno != EINTR && errno != EAGAIN)
                        return chain_fail(c, -errno, "socket source: read: %s", strerror(errno));
                if (n == 0)
                        eof = true;
                if (n > 0)
                        c->sock_used += (size_t)n;
        }
        size_t start = 0;
        for (size_t i = 0; i < c->sock_used && emitted < max; i++) {
                if (c->text[i] != '\n')
                        continue;
                size_t len = i - start;
                if (len && c->text[start + len - 1] == '\r')
                        len--;
                struct wrk_record rec = {.kind = WRK_REC_TEXT, .text = c->text + start,
                                         .text_len = len, .value = 1, .seq = c->gen_k,
                                         .timestamp_ms = clock_wall_ms()};
                c->gen_k++;
                emitted++;
                start = i + 1;
                r = source_push(c, &rec);
                if (r < 0)
                        break;
        }
        memmove(c->text, c->text + start, c->sock_used - start);
        c->sock_used -= start;
        if (eof && c->sock_used > 0 && r == 0) {
                struct wrk_record rec = {.kind = WRK_REC_TEXT, .text = c->text,
                                         .text_len = c->sock_used, .value = 1, .seq = c->gen_k,
                                         .timestamp_ms = clock_wall_ms()};
                c->gen_k++;
                emitted++;
                c->sock_used = 0;
                r = source_push(c, &rec);
        }
        if (ret_emitted)
                *ret_emitted = emitted;
        if (r < 0)
                return r;
        r = chain_flush(c);
        if (r < 0)
                return r;
        return eof ? 1 : 0;
}

static int chain_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        uint64_t emitted = 0;
        int r = 0;
        if (c->up_started) {
                pthread_mutex_lock(&c->up_mu);
                int f = c->up_failed;
                if (f)
                        chain_fail(c, f, "%s", c->up_error);
                pthread_mutex_unlock(&c->up_mu);
                if (f)
                        return f;
        }
        if (!c->opened || c->n_ops == 0)
                return chain_fail(c, -EINVAL, "chain is not open");
        if (max > WRK_STEP_MAX_RECORDS)
                max = WRK_STEP_MAX_RECORDS;
        if (c->source && c->latency_interval_ms > 0) {
                uint64_t now = clock_mono_us();
                if (now >= c->next_marker_us) {
                        c->next_marker_us = now + c->latency_interval_ms * 1000u;
                        struct wrk_latency_marker m = {.marked_us = clock_wall_us(),
                                                       .vertex = (uint32_t)(c->source -
                                                                            c->g->vertices),
                                                       .subtask = c->subtask};
                        r = wrk_op_marker(c->ops[0], &m);
                        if (r < 0)
                                return r;
                }
        }
        if (!c->source)
                return chain_step_input(c, max, ret_emitted);
        if (c->source->kind == JOB_OP_FILE_SOURCE)
                return file_source_step(c, max, ret_emitted);
        if (c->source->kind == JOB_OP_SOCKET)
                return socket_source_step(c, max, ret_emitted);
        const struct job_generator_params *gp = &c->source->params.generator;
        size_t gi;
        while (emitted < max && wrk_gen_pick(c->gen, c->n_gen, c->gen_end, &gi)) {
                uint64_t n = c->gen[gi].next;
                c->gen[gi].next += c->gen[gi].modulus;
                size_t len;
                r = wrk_gen_format(gp, n, c->text, sizeof(c->text), &len);
                if (r < 0) {
                        r = chain_fail(c, r, "generator: record %" PRIu64 " is longer than %u "
                                       "bytes", n, WRK_RECORD_MAX_BYTES);
                        break;
                }
                struct wrk_record rec = {.kind = WRK_REC_TEXT, .text = c->text, .text_len = len,
                                         .value = 1, .seq = n,
                                         .timestamp_ms = gp->event_time_step_ms > 0
                                                                 ? wrk_gen_timestamp(gp, n)
                                                                 : clock_wall_ms()};
                c->gen_k++;
                emitted++;
                r = source_push(c, &rec);
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
        return wrk_gen_pick(c->gen, c->n_gen, c->gen_end, &gi) ? 0 : 1;
}

int wrk_chain_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted) {
        int r = chain_step(c, max, ret_emitted);
        /* an exhausted source ends event time: watermark INT64_MAX fires every window
         * downstream before the final checkpoint and the end markers */
        if (r == 1 && c->source && c->event_time && !c->wm_final_sent) {
                c->wm_final_sent = true;
                int k = chain_watermark(c, INT64_MAX);
                if (k == 0)
                        k = chain_flush(c);
                if (k < 0)
                        return k;
        }
        return r;
}

/* ------------------------------------------------------------------------------------
 * Checkpoints of a chain. */

static void upload_job_free(struct upload_job *j);

static void chain_decline(struct wrk_chain *c, uint64_t n, const char *reason) {
        if (!c->on_checkpoint || n == 0)
                return;
        struct wrk_ckpt_result res;
        memset(&res, 0, sizeof(res));
        res.checkpoint_id = n;
        res.declined = true;
        snprintf(res.reason, sizeof(res.reason), "%s", reason);
        c->on_checkpoint(c->on_checkpoint_arg, &res);
}

static void free_substate_ops(struct wrk_substate_op *so, size_t n) {
        for (size_t i = 0; so && i < n; i++) {
                free(so[i].keyed);
                free(so[i].gen);
                free(so[i].file);
                free(so[i].pending);
        }
        free(so);
}

static void upload_job_free(struct upload_job *j) {
        if (!j)
                return;
        for (size_t i = 0; i < j->n_so; i++)
                sb_snapshot_destroy(j->snaps[i]);
        free(j->snaps);
        free_substate_ops(j->so, j->n_so);
        free(j);
}

/* Runs one upload job on the upload thread: every keyed snapshot to checkpoint storage,
 * then the subtask state and the ack (or a decline) through on_checkpoint. */
static void upload_run(struct wrk_chain *c, struct upload_job *j) {
        uint64_t t0 = clock_mono_us();
        uint64_t state_bytes = 0, incr_bytes = 0;
        char reason[256] = "";
        bool decline = false;
        for (size_t k = 0; k < j->n_so && !decline; k++) {
                if (!j->snaps[k])
                        continue;
                char *handle = NULL;
                size_t len = 0;
                struct sb_upload_stats st;
                memset(&st, 0, sizeof(st));
                char why[200] = "";
                int u = sb_snapshot_upload(j->snaps[k], c->job_dir, &handle, &len, &st, why,
                                           sizeof(why));
                sb_snapshot_destroy(j->snaps[k]);
                j->snaps[k] = NULL;
                if (u < 0) {
                        decline = true;
                        snprintf(reason, sizeof(reason), "%s: upload: %s", j->so[k].op, why);
                        if (u == -EBADMSG) { /* corrupt local state: the task must fail */
                                pthread_mutex_lock(&c->up_mu);
                                snprintf(c->up_error, sizeof(c->up_error), "%s", reason);
                                c->up_failed = u;
                                pthread_mutex_unlock(&c->up_mu);
                        }
                        break;
                }
                j->so[k].keyed = handle;
                j->so[k].keyed_len = len;
                state_bytes += st.state_bytes;
                incr_bytes += st.copied_bytes;
        }
        if (decline) {
                chain_decline(c, j->n, reason);
                return;
        }
        struct wrk_substate st = {.checkpoint_id = j->n, .vertex = c->chain,
                                  .subtask = c->subtask, .parallelism = c->parallelism,
                                  .ops = j->so, .n_ops = j->n_so};
        struct wrk_ckpt_result res;
        memset(&res, 0, sizeof(res));
        res.checkpoint_id = j->n;
        if (wrk_substate_encode(&st, &res.state, &res.state_len) < 0) {
                chain_decline(c, j->n, "cannot encode the subtask state");
                return;
        }
        res.state_bytes = state_bytes + res.state_len;
        res.incremental_bytes = incr_bytes;
        res.sync_ms = j->sync_ms;
        res.async_ms = (clock_mono_us() - t0) / 1000;
        res.alignment_ms = j->alignment_ms;
        res.alignment_bytes = j->alignment_bytes;
        if (c->on_checkpoint)
                c->on_checkpoint(c->on_checkpoint_arg, &res);
        free(res.state);
}

static void *upload_main(void *arg) {
        struct wrk_chain *c = arg;
        pthread_mutex_lock(&c->up_mu);
        for (;;) {
                while (!c->up_head && !c->up_stop)
                        pthread_cond_wait(&c->up_cond, &c->up_mu);
                if (!c->up_head)
                        break; /* stopping, and nothing left */
                struct upload_job *j = c->up_head;
                c->up_head = j->next;
                if (!c->up_head)
                        c->up_tail = NULL;
                bool stop = c->up_stop;
                pthread_mutex_unlock(&c->up_mu);
                if (!stop)
                        upload_run(c, j);
                upload_job_free(j);
                pthread_mutex_lock(&c->up_mu);
        }
        pthread_mutex_unlock(&c->up_mu);
        return NULL;
}

static int upload_enqueue(struct wrk_chain *c, struct upload_job *j) {
        if (!c->up_started) {
                pthread_mutex_init(&c->up_mu, NULL);
                pthread_cond_init(&c->up_cond, NULL);
                int r = pthread_create(&c->up_thread, NULL, upload_main, c);
                if (r != 0) {
                        pthread_cond_destroy(&c->up_cond);
                        pthread_mutex_destroy(&c->up_mu);
                        return -r;
                }
                c->up_started = true;
        }
        pthread_mutex_lock(&c->up_mu);
        if (c->up_tail)
                c->up_tail->next = j;
        else
                c->up_head = j;
        c->up_tail = j;
        pthread_cond_signal(&c->up_cond);
        pthread_mutex_unlock(&c->up_mu);
        return 0;
}

/* Stops the upload thread: with drain, the queued uploads finish first (end of input:
 * their acks still count); without, they are dropped (cancel). */
static void upload_stop(struct wrk_chain *c, bool drain) {
        if (!c->up_started)
                return;
        pthread_mutex_lock(&c->up_mu);
        if (!drain) {
                while (c->up_head) {
                        struct upload_job *j = c->up_head;
                        c->up_head = j->next;
                        upload_job_free(j);
                }
                c->up_tail = NULL;
        }
        c->up_stop = true;
        pthread_cond_signal(&c->up_cond);
        pthread_mutex_unlock(&c->up_mu);
        pthread_join(c->up_thread, NULL);
        pthread_cond_destroy(&c->up_cond);
        pthread_mutex_destroy(&c->up_mu);
        c->up_started = false;
        c->up_stop = false;
}

static int chain_snapshot(struct wrk_chain *c, uint64_t n, bool savepoint,
                          uint64_t alignment_us) {
        uint64_t t0 = clock_mono_us();
        struct wrk_substate_op *so = calloc(c->n_ops + 1, sizeof(*so));
        if (!so)
                return chain_fail(c, -ENOMEM, "out of memory");
        size_t n_so = 0;
        int r = 0;
        bool decline = !c->job_dir[0];
        char reason[256] = "state.checkpoints.dir is not set";
        if (c->source && c->source->kind == JOB_OP_FILE_SOURCE) {
                struct wrk_substate_op *o = &so[n_so++];
                snprintf(o->op, sizeof(o->op), "%s", c->source->id);
                o->file = calloc(c->n_splits ? c->n_splits : 1, sizeof(*o->file));
                if (!o->file) {
                        free_substate_ops(so, n_so);
                        return chain_fail(c, -ENOMEM, "out of memory");
                }
                memcpy(o->file, c->splits, c->n_splits * sizeof(*o->file));
                o->n_file = c->n_splits;
                o->has_file = true;
        } else if (c->source && c->source->kind == JOB_OP_GENERATOR) {
                struct wrk_substate_op *o = &so[n_so++];
                snprintf(o->op, sizeof(o->op), "%s", c->source->id);
                o->gen = calloc(c->n_gen ? c->n_gen : 1, sizeof(*o->gen));
                if (!o->gen) {
                        free_substate_ops(so, n_so);
                        return chain_fail(c, -ENOMEM, "out of memory");
                }
                memcpy(o->gen, c->gen, c->n_gen * sizeof(*o->gen));
                o->n_gen = c->n_gen;
                o->has_gen = true;
        }
        /* Synchronous part, head to tail; the network output forwards the barrier. */
        for (size_t i = 0; i < c->n_ops; i++) {
                struct wrk_op *op = c->ops[i];
                if (!op->vt->snapshot)
                        continue;
                struct wrk_substate_op *o = &so[n_so];
                snprintf(o->op, sizeof(o->op), "%s", c->g->vertices[op->vertex].id);
                r = op->vt->snapshot(op, n, savepoint, o);
                if (r < 0) {
                        decline = true;
                        snprintf(reason, sizeof(reason), "%.200s", c->error);
                        if (r == -ECANCELED)
                                break;
                        r = 0;
                }
                if (op->vt != &net_vt)
                        n_so++;
        }
        uint64_t t1 = clock_mono_us();
        if (decline) {
                for (size_t i = 0; i < c->n_ops; i++)
                        if (c->ops[i]->vt->detach)
                                sb_snapshot_destroy(c->ops[i]->vt->detach(c->ops[i]));
                chain_decline(c, n, reason);
                free_substate_ops(so, n_so);
                return r;
        }
        c->last_snapshot = n;
        /* Asynchronous part: the keyed snapshots go to the chain's upload thread. */
        struct upload_job *job = calloc(1, sizeof(*job));
        struct sb_snapshot **snaps = calloc(n_so ? n_so : 1, sizeof(*snaps));
        if (!job || !snaps) {
                free(job);
                free(snaps);
                free_substate_ops(so, n_so);
                chain_decline(c, n, "out of memory");
                return r;
        }
        for (size_t i = 0, k = c->source ? 1 : 0; i < c->n_ops && k < n_so; i++) {
                struct wrk_op *op = c->ops[i];
                if (!op->vt->snapshot || op->vt == &net_vt)
                        continue;
                if (op->vt->detach)
                        snaps[k] = op->vt->detach(op);
                k++;
        }
        job->n = n;
        job->so = so;
        job->n_so = n_so;
        job->snaps = snaps;
        job->sync_ms = (t1 - t0) / 1000;
        job->alignment_ms = alignment_us / 1000;
        job->alignment_bytes = c->align_bytes;
        c->align_bytes = 0;
        r = upload_enqueue(c, job);
        if (r < 0) {
                upload_job_free(job);
                chain_decline(c, n, "the upload thread could not start");
                return chain_fail(c, r, "cannot start the checkpoint upload thread");
        }
        return 0;
}

int wrk_chain_trigger(struct wrk_chain *c, uint64_t checkpoint_id, bool savepoint) {
        if (!c->source || !c->opened || checkpoint_id <= c->last_snapshot)
                return 0;
        if (c->final_mode && c->final_snapshot) {
                /* Past its end the source has its final checkpoint: a newer barrier would
                 * reach the consumers, which then wait for that checkpoint to complete,
                 * while this source finishes as soon as the final one completes and never
                 * acks the newer one: the job would hang. Declined (it does not fail the
                 * job). */
                char why[96];
                snprintf(why, sizeof(why), "the source's input ended; its final checkpoint "
                         "is %" PRIu64, c->final_snapshot);
                chain_decline(c, checkpoint_id, why);
                return 0;
        }
        int r = chain_snapshot(c, checkpoint_id, savepoint, 0);
        if (r == 0 && c->final_mode && !c->final_snapshot)
                c->final_snapshot = checkpoint_id;
        return r;
}

bool wrk_chain_needs_final_checkpoint(const struct wrk_chain *c) {
        return c->checkpoint_interval_ms > 0 && c->job_dir[0];
}

void wrk_chain_end_of_input(struct wrk_chain *c) {
        c->final_mode = true;
        /* A source needs a checkpoint after its last record; any other chain saw its
         * inputs' final barrier before their end markers. */
        c->final_snapshot = c->source ? 0 : c->last_snapshot;
}

bool wrk_chain_final_done(const struct wrk_chain *c) {
        return c->final_snapshot && c->completed_max >= c->final_snapshot;
}

int wrk_chain_complete(struct wrk_chain *c, uint64_t checkpoint_id) {
        if (checkpoint_id > c->completed_max)
                c->completed_max = checkpoint_id;
        for (size_t i = 0; i < c->n_ops; i++) {
                struct wrk_op *op = c->ops[i];
                if (op->vt->complete) {
                        int r = op->vt->complete(op, checkpoint_id);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

void wrk_chain_abort(struct wrk_chain *c, uint64_t checkpoint_id) {
        if (c->final_mode && c->source && c->final_snapshot == checkpoint_id)
                c->final_snapshot = 0; /* the next trigger makes the final checkpoint */
        for (size_t i = 0; i < c->n_ops; i++)
                if (c->ops[i]->vt->abort)
                        c->ops[i]->vt->abort(c->ops[i], checkpoint_id);
}

bool wrk_chain_is_source(const struct wrk_chain *c) {
        return c->source != NULL;
}

int wrk_chain_finish(struct wrk_chain *c) {
        upload_stop(c, true);
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
        int64_t rate = c->source && c->source->kind == JOB_OP_GENERATOR
                               ? c->source->params.generator.rate_per_s : 0;
        *ret_rate_per_s = rate > 0 ? (uint64_t)rate : 0;
        *ret_share = c->parallelism;
}

uint64_t wrk_chain_records_in(const struct wrk_chain *c) {
        return c->source ? c->gen_k : c->net_in;
}

void wrk_chain_latency(const struct wrk_chain *c, struct wrk_latency_stats *ret) {
        wrk_latency_hist_stats(&c->latency, ret);
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
        upload_stop(c, false);
        for (size_t i = 0; c->ops && i < c->n_ops; i++)
                c->ops[i]->vt->destroy(c->ops[i]);
        free(c->ops);
        for (size_t i = 0; i < c->n_libs; i++)
                if (c->libs[i])
                        dlclose(c->libs[i]);
        if (c->gate) {
                wrk_gate_close(c->gate);
                wrk_gate_unref(c->gate);
        }
        if (c->aligner_ready)
                wrk_aligner_finish(&c->aligner);
        if (c->valve_ready)
                wrk_wm_valve_finish(&c->valve);
        free(c->gen);
        free(c->splits);
        free(c->line);
        if (c->src)
                fclose(c->src);
        if (c->sock >= 0)
                close(c->sock);
        free(c);
}
