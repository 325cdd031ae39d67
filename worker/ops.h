/* The operators a worker task runs: records, the push interface that chains them, and
 * the built-ins this worker has so far (the generator source, tokenize, and the print,
 * discard and file sinks), plus the pure arithmetic behind them (generator sequence
 * split, rate limiter, part file names) that tests/unit/test_worker_ops.c checks.
 *
 * A chain is one job_graph chain (DESIGN.md "Jobs": operators joined by forward edges of
 * equal parallelism) built for one subtask: a source at the head, then operators that
 * each push what they emit into the next one by a function call, ending in a sink. The
 * task thread drives it in steps (wrk_chain_step): the source emits a bounded batch, the
 * records flow down the chain, and between steps the thread looks at its cancel flag
 * (and, with the dataflow issue, at checkpoint barriers and network input). A chain
 * belongs to the one thread that runs it.
 *
 * GENERATOR (deterministic and replayable; parameters of jobgraph.h)
 *   The job's records are numbered n = 0, 1, 2, ... (bounded: n < count). Subtask i of
 *   p emits n = i, i + p, i + 2p, ... in that order, so the subtasks together emit every
 *   n exactly once and subtask i emits ceil((count - i) / p) records. Record n is a line
 *   of line_words words separated by one space; word j (0-based) of record n is
 *       "w" + decimal((seed + n * line_words + j) mod words)
 *   so with line_words 1 record n is the word "w<(seed + n) mod words>", and a job of
 *   count = k * words * line_words records holds each of the words w0..w<words-1>
 *   exactly k * line_words times. rate (records per second for the whole job) is split
 *   evenly: each subtask is paced at rate / p records per second (a fraction is fine),
 *   with a burst of at most 10 ms worth (at least one record) after a stall.
 *
 * SINKS
 *   print    each record as one line on stdout (target stderr: stderr); with parallelism
 *            above 1 the line starts with "<subtask + 1>> ", as Flink's print sink does
 *            ("1> w3"). A step's lines are written with one locked write, so lines of
 *            different subtasks never interleave within a line.
 *   discard  counts and drops.
 *   file     lines into <path>/part-<subtask>-<attempt>-<n> (n = 0, 1, ... as files
 *            roll at part_size bytes), created or truncated at open, written through a
 *            buffer at every step, fsynced (file and directory) when the input ends. Not
 *            exactly-once yet (that comes with checkpoints): a canceled task leaves what
 *            it wrote so far, and each attempt writes its own files.
 *
 * Record texts are capped at WRK_RECORD_MAX_BYTES. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/jobgraph.h"

#define WRK_RECORD_MAX_BYTES 16384u
/* Records a source emits in one step at most: bounds the latency of a cancel. */
#define WRK_STEP_MAX_RECORDS 1024u
/* Output buffered by the print and file sinks before a write. */
#define WRK_SINK_BUFFER_BYTES (64u * 1024u)

/* ---- records and the push interface ---- */

enum wrk_record_kind {
        WRK_REC_TEXT, /* a word or a line: text */
        WRK_REC_PAIR, /* a key and a number: (text, value), printed "(text,value)" */
};

/* One record, borrowed by the callee for the duration of a push. */
struct wrk_record {
        enum wrk_record_kind kind;
        const char *text;
        size_t text_len;
        int64_t value;
        uint64_t seq; /* the source's sequence number (generator: n) */
};

struct wrk_chain;
struct wrk_op;

/* What every operator after the source implements. Each returns 0 or a negative errno
 * (with a message in the chain's error, see wrk_chain_error). */
struct wrk_op_vtable {
        const char *name;
        int (*open)(struct wrk_op *op);
        int (*push)(struct wrk_op *op, const struct wrk_record *rec);
        /* End of a step: hand buffered output on (may be NULL). */
        int (*flush)(struct wrk_op *op);
        /* End of input (a bounded source is done): make the output complete and durable
         * (may be NULL). */
        int (*finish)(struct wrk_op *op);
        /* Frees the operator, closing what it holds without finishing it. */
        void (*destroy)(struct wrk_op *op);
};

struct wrk_op {
        const struct wrk_op_vtable *vt;
        struct wrk_op *next;    /* downstream operator; NULL for a sink */
        struct wrk_chain *chain;
        uint32_t vertex;        /* index in job_graph.vertices */
        uint64_t records_in;
        uint64_t records_out;   /* pushed downstream, or written by a sink */
};

/* Hands rec to the next operator. */
int wrk_op_emit(struct wrk_op *op, const struct wrk_record *rec);

/* ---- chains ---- */

/* Who runs the chain. Strings are copied. */
struct wrk_chain_ctx {
        const char *job;        /* 32 hex digits */
        uint32_t attempt;
        uint32_t subtask;
        uint32_t parallelism;
        /* Streams of the print sink; NULL = stdout / stderr. Borrowed: they must outlive
         * the chain. */
        FILE *out;
        FILE *err;
};

/* Whether this worker can run chain `chain` of g: a source at its head, a sink at its
 * tail, nothing read from or sent to another chain, and only operators it has. 0 or
 * -EOPNOTSUPP with a message naming the operator and the step ("operator 'count' (step
 * 'count-3') is not supported by this worker yet"), -EINVAL for a chain index out of
 * range. */
int wrk_chain_check(const struct job_graph *g, uint32_t chain, char *err, size_t err_len);

/* Builds chain `chain` of g for ctx->subtask (checked as wrk_chain_check does). g is
 * borrowed until wrk_chain_destroy. 0 and *ret, or -EOPNOTSUPP / -EINVAL / -ENOMEM with
 * the reason in err. */
int wrk_chain_create(const struct job_graph *g, uint32_t chain,
                     const struct wrk_chain_ctx *ctx, struct wrk_chain **ret, char *err,
                     size_t err_len);

/* Opens the operators (sink first: files are created here). 0 or a negative errno
 * (wrk_chain_error says why). */
int wrk_chain_open(struct wrk_chain *c);

/* Runs one step: the source emits at most max records (at most WRK_STEP_MAX_RECORDS)
 * through the chain, then the operators flush. 0 when the source has more, 1 when it is
 * exhausted (bounded), or a negative errno. *ret_emitted counts what the source emitted. */
int wrk_chain_step(struct wrk_chain *c, uint64_t max, uint64_t *ret_emitted);

/* End of input: finishes every operator, head to tail. 0 or a negative errno. */
int wrk_chain_finish(struct wrk_chain *c);

/* The source's rate in records per second for the whole job (0 = unlimited) and how
 * many subtasks share it. */
void wrk_chain_rate(const struct wrk_chain *c, uint64_t *ret_rate_per_s,
                    uint32_t *ret_share);

/* Records the head consumed (for a source: emitted) and the tail emitted (a sink: wrote). */
uint64_t wrk_chain_records_in(const struct wrk_chain *c);
uint64_t wrk_chain_records_out(const struct wrk_chain *c);

/* "generator -> print", for logs. Borrowed from c. */
const char *wrk_chain_describe(const struct wrk_chain *c);

/* The message of the last failure; "" when none. Borrowed from c. */
const char *wrk_chain_error(const struct wrk_chain *c);

/* Frees the chain and its operators (files are closed, not finished). NULL is fine. */
void wrk_chain_destroy(struct wrk_chain *c);

/* ---- generator arithmetic (pure) ---- */

/* Records subtask i of p emits of count (0 = unbounded: UINT64_MAX). */
uint64_t wrk_gen_subtask_count(uint64_t count, uint32_t subtask, uint32_t parallelism);

/* The sequence number n of the k-th record (0-based) of subtask i of p. */
uint64_t wrk_gen_seq(uint64_t k, uint32_t subtask, uint32_t parallelism);

/* The vocabulary index of word j of record n. */
uint64_t wrk_gen_word_index(int64_t seed, int64_t words, int64_t line_words, uint64_t n,
                            uint64_t j);

/* Writes the text of record n (no NUL needed, but one is written when it fits) into
 * buf. 0 and *ret_len, or -ENOSPC when buf is too small. */
int wrk_gen_format(const struct job_generator_params *p, uint64_t n, char *buf,
                   size_t buf_len, size_t *ret_len);

/* ---- rate limiter (pure; the caller passes the monotonic time) ---- */

/* Paces records at rate_per_s / share per second: by now_us, burst + floor(elapsed *
 * rate_per_s / (share * 1e6)) records are allowed since the start; a limiter more than
 * `burst` behind its schedule (after a stall) restarts it, so it never catches up with
 * a flood. burst = max(1, 10 ms worth). rate_per_s 0 = unlimited. */
struct wrk_rate {
        uint64_t rate_per_s;
        uint32_t share;
        uint64_t burst;
        uint64_t start_us;
        uint64_t granted; /* records taken since start_us */
};

void wrk_rate_init(struct wrk_rate *r, uint64_t rate_per_s, uint32_t share,
                   uint64_t now_us);
/* Records that may go now, at most max (max for an unlimited limiter). May restart the
 * schedule, see above. */
uint64_t wrk_rate_allowance(struct wrk_rate *r, uint64_t now_us, uint64_t max);
/* Counts n records as sent. */
void wrk_rate_take(struct wrk_rate *r, uint64_t n);
/* Microseconds from now_us until one more record is allowed; 0 when one is. */
uint64_t wrk_rate_wait_us(const struct wrk_rate *r, uint64_t now_us);

/* ---- file sink names (pure) ---- */

/* Writes "part-<subtask>-<attempt>-<counter>" into buf. 0 or -ENOSPC. */
int wrk_file_part_name(char *buf, size_t buf_len, uint32_t subtask, uint32_t attempt,
                       uint32_t counter);
