/* The operators a worker task runs: records, the push interface that chains them, and
 * the built-ins this worker has (sources generator, file, socket; tokenize, key_by,
 * union, map / flat_map / filter / reduce UDFs (udf.h); keyed count, sum, min, max;
 * tumbling and sliding windows in processing or event time; the print, discard and file
 * sinks), their checkpoints and restore, plus the pure arithmetic behind them (generator
 * sequence split, rate limiter, part file names, watermarks, window assignment) that
 * tests/unit/test_worker_ops.c and test_worker_dataflow.c check.
 *
 * A chain is one job_graph chain (DESIGN.md "Jobs": operators joined by forward edges of
 * equal parallelism) built for one subtask: a source at the head, then operators that
 * each push what they emit into the next one by a function call, ending in a sink. The
 * task thread drives it in steps (wrk_chain_step): the source emits a bounded batch, the
 * records flow down the chain, and between steps the thread looks at its cancel flag
 * and at queued checkpoint events (wrk_chain_trigger / complete / abort). A chain belongs
 * to the one thread that runs it, except its upload thread (CHECKPOINTS below).
 *
 * MULTI-CHAIN JOBS. A chain whose head is not a source reads its inputs from an
 * in-memory input gate (exchange.h) of this worker: buffers of records, barriers and
 * end-of-input markers (dataflow.h); its step takes buffers for up to 50 ms, pushes the
 * records down the chain, and it is done when every input channel ended. A chain whose
 * tail is not a sink ends in a network output operator that partitions each record over
 * the consumers of every output edge (forward, hash by key group, rebalance, broadcast;
 * dataflow.h), fills one WRK_BUFFER_BYTES buffer per consumer subtask, sends a buffer
 * when it is full or execution.buffer-timeout old, and at the end of input sends an end
 * marker to every consumer. A consumer that the deploy's `peers` place on another worker
 * is reached over a TCP data connection with credit-based flow control instead
 * (exchange.h remote channels); the chain cannot tell the difference, except that a
 * lost connection fails it.
 *
 * CHECKPOINTS. A source chain takes checkpoint n when the task thread handles the
 * trigger; a chain reading from a gate when its inputs aligned barrier n (dataflow.h
 * ALIGNMENT; execution mode from the job's checkpointing.mode). Either way, on the task
 * thread: the source position is copied (generator entries, file splits), every
 * operator snapshots synchronously head to tail (keyed: write-back of the step table +
 * sb_snapshot_sync; file sink: in-progress -> pending, sink2pc.h), the network output
 * forwards barrier n at once, and the keyed snapshots are queued to the chain's upload
 * thread, which uploads them (sb_snapshot_upload into <state.checkpoints.dir>/<job>),
 * encodes the subtask state (substate.h) and hands the ack to ctx->on_checkpoint (so that
 * callback runs on the upload thread). A failure is a decline with the reason; a corrupt
 * local SST (-EBADMSG) also fails the task. Complete n: sinks commit, backends confirm;
 * abort n: backends drop n's uploads. At the end of input the queued uploads finish
 * before the task does. A keyed snapshot of n after n was aborted (under backpressure
 * the abort can overtake the barrier) declines n without failing the task, and the
 * barrier still goes on. Restore: ctx->restore (the coordinator's list: this subtask's
 * own state at an unchanged parallelism, every old subtask's state otherwise): keyed
 * backends via sb_backend_restore (clipping), generator entries and file splits
 * redistributed (dataflow.h), the sink commits the listed pending files and cleans up.
 *
 * KEYED OPERATORS (after key_by; each keyed subtask owns the key groups
 * kg_range_for_operator(max_parallelism, p, subtask) in one sb_backend with one value
 * state "agg" holding an int64 per key, little-endian)
 *   key_by   sets the record's key: field word = the text, key = the key already set
 *            (else the text), value = the decimal value; or a udf key selector (udf.h).
 *   reduce   a udf combines the key's int64 accumulator with each record (udf.h).
 *   count    emits (key, running count) for every record.
 *   sum, min, max
 *            emit (key, running sum / min / max) of the field: value, or word = the text
 *            read as a decimal int64 (a text that is not one fails the task).
 *   Pre-aggregation: each keyed subtask keeps a write-back table of at most 4096 keys in
 *   memory; a key is read from RocksDB once when it enters the table and written back
 *   once when the table would pass half full, at a checkpoint barrier (before the
 *   synchronous snapshot) and at the end of input, all dirty keys in one RocksDB write
 *   batch sorted by key (sb_value_put_batch: a memtable insert in key order is cheap).
 *   Records are applied in batches: they wait in a queue of at most 1024 records (1 MiB
 *   of keys) that is drained in order when full, at the end of each step, before a
 *   snapshot, a latency marker and the end of input; a drain reads all keys new to the
 *   table with one MultiGet (sb_value_multi_get), then updates and emits record by
 *   record, so the output is the same as one record at a time. Frequent keys cost no
 *   RocksDB call per record (measured: 1000 keys 5.6 M records/s); at 1M keys cycled
 *   (every record a table miss) the keyed count with 1 s checkpoints ran about twice
 *   db_bench updaterandom's ops/s at the same key size (tools/bench/throughput: 0.31 M
 *   records/s against 0.15 M on a shared 2-core machine). RocksDB runs without a WAL
 *   (backend.h), so holding writes loses nothing a checkpoint would keep. Flush-ahead:
 *   with periodic checkpoints, the first write-back half an interval after a snapshot
 *   also starts a background memtable flush (sb_backend_flush_async), so the flush in
 *   the next synchronous snapshot, which stalls the task, has half as much to write
 *   (measured at 1M keys: sync part ~60 ms instead of ~105 ms per 1 s checkpoint).
 *   Output: a PAIR record (text = the key, value = the aggregate); the file sink writes
 *   it as the line "<key> <value>", the print sink as "(key,value)" (Flink's tuple).
 *
 * WINDOWS (the `window` step, keyed: after key_by; Flink's WindowOperator with an
 * AggregateFunction, allowed lateness 0)
 *   Assignment as Flink's TimeWindow.getWindowStartWithOffset (offset 0): tumbling:
 *   [t - t mod size, + size); sliding: the windows [s, s + size) with s = t - t mod
 *   slide, s - slide, ... while s > t - size (at most 1000 per record: a step whose
 *   size / slide is more fails at deploy). t is the record's timestamp_ms (event time;
 *   a record without one, 0, fails the task: give the file source `timestamps:
 *   leading`) or the wall clock at the window operator (processing time; ctx
 *   wall_clock_ms).
 *   State: the keyed backend's value state "agg" holds one int64 accumulator per (key,
 *   window), namespace = the window (start | end, i64 big-endian each), combined as the
 *   keyed count / sum / min / max / reduce do; it is snapshotted at the barrier and
 *   restored (rescaled by key groups) like theirs. Timers (one per (key, window) in
 *   the state) live in a min-heap in memory, rebuilt from the state at open. As the
 *   keyed aggregates, a window subtask keeps a write-back table of at most 8192 (key,
 *   window) accumulators in memory: written to RocksDB (and emptied) when half of its
 *   16384 slots are used, written back (and kept) at a checkpoint barrier; RocksDB is
 *   read only while it holds windows (after a write-back or a restore), and a window
 *   that fires from the table costs no RocksDB call. Measured (1 M timestamped lines,
 *   1000 keys, file source p 1 -> key_by -> window p 2 -> discard, one worker):
 *   tumbling 1 s 2.1 M records/s, sliding 1 s / 250 ms 1.3 M records/s end to end
 *   (the keyed count: 5.1 M records/s); without the table 0.03 M records/s.
 *   Firing: a window fires when the watermark reaches its max timestamp (event time:
 *   watermark >= end - 1) or the wall clock does (processing time, checked at the end
 *   of every step: at most ~50 ms late); it emits one PAIR (text = key = the key, value
 *   = the aggregate, timestamp_ms = end - 1, Flink's window result timestamp), in the
 *   order (end, start, key bytes), then its state is cleared. The watermark goes on
 *   downstream after the windows it fired. End of input fires every window left: event
 *   time through the sources' watermark INT64_MAX (before the final checkpoint, so the
 *   results are in it), processing time at finish (Flink drops pending
 *   processing-time windows at the end of a bounded input; flinc fires them so a
 *   bounded job emits all its windows).
 *   Late records (event time): a record all of whose windows have fired already
 *   (end - 1 <= the current watermark) is dropped and counted in
 *   numLateRecordsDropped (wrk_chain_late_records_dropped; the task reports it, the
 *   REST API serves it as Flink's vertex metric). A record that still has one open
 *   window (sliding) goes into the open ones only. As in Flink, the watermark is not
 *   part of a checkpoint: after a restore the sources start a new one, so a replayed
 *   record that was late before the failure may go into a window that fired before the
 *   checkpoint, which then fires again (with only such records).
 *   Output lines: the file sink writes a window's result as any PAIR, "<key> <value>",
 *   the print sink "(key,value)"; the window bounds are not written (the timestamp
 *   end - 1 travels with the record). Watermarks: dataflow.h WATERMARKS; every source of
 *   a job with an event-time window generates them, with the largest out_of_orderness
 *   of the job's event-time windows, from the timestamps the source sets (a UDF that
 *   changes timestamp_ms changes the windows a record goes to, not the watermarks).
 *
 * GENERATOR (deterministic and replayable; parameters of jobgraph.h)
 *   The job's records are numbered n = 0, 1, 2, ... (bounded: n < count). Subtask i of
 *   p emits n = i, i + p, i + 2p, ... in that order, so the subtasks together emit every
 *   n exactly once and subtask i emits ceil((count - i) / p) records. Record n is a line
 *   of line_words words separated by one space; word j (0-based) of record n is
 *       "w" + decimal((seed + n * line_words + j) mod words)
 *   so with line_words 1 record n is the word "w<(seed + n) mod words>", and a job of
 *   count = k * words * line_words records holds each of the words w0..w<words-1>
 *   exactly k * line_words times. Its records' timestamp_ms is the wall clock at
 *   emission (the socket source's too), or with event_time_step the deterministic
 *   wrk_gen_timestamp(n), out of order by up to out_of_order. rate (records per second
 *   for the whole job) is split evenly: each subtask is paced at rate / p records per
 *   second (a fraction is fine), with a burst of at most 10 ms worth (at least one
 *   record) after a stall.
 *
 * SINKS
 *   print    each record as one line on stdout (target stderr: stderr); with parallelism
 *            above 1 the line starts with "<subtask + 1>> ", as Flink's print sink does
 *            ("1> w3"). A step's lines are written with one locked write, so lines of
 *            different subtasks never interleave within a line.
 *   discard  counts and drops. With `rate` > 0 (a testing aid) it takes at most rate / p
 *            records per second per subtask (the generator's limiter; push sleeps in
 *            steps of at most 10 ms and gives up when the task is canceled): a
 *            deliberately slow sink whose backpressure reaches the sources.
 *   file     with checkpointing on (the job's checkpointing.interval > 0): exactly-once
 *            part files with two-phase commit, laid out as sink2pc.h says. With
 *            checkpointing off: lines into <path>/part-<subtask>-<attempt>-<n> (n = 0,
 *            1, ... as files roll at part_size bytes), created or truncated at open,
 *            written through a buffer at every step, fsynced (file and directory) when
 *            the input ends; a canceled task leaves what it wrote so far, and each
 *            attempt writes its own files. Either way a PAIR is the line "<key> <value>".
 *
 * SOURCES (besides the generator below)
 *   file     lines of a file split across subtasks by byte ranges aligned to line starts,
 *            replayable by offset (dataflow.h FILE SOURCE SPLITS); bounded. With
 *            `timestamps: leading` (jobgraph.h) each line's leading epoch ms become the
 *            record's timestamp_ms and are cut from its text; a line without them fails
 *            the task naming the file and the line's byte offset.
 *   socket   text lines from host:port (parallelism 1); ends when the server closes the
 *            connection. NOT replayable: it keeps no position, so after a restore it
 *            reads what the server sends next (its records are at-most-once).
 *
 * Record texts are capped at WRK_RECORD_MAX_BYTES. */
#pragma once

#include <stdatomic.h>
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

/* One record, borrowed by the callee for the duration of a push. The record model of
 * the dataflow (DESIGN.md "Jobs"):
 *   kind          TEXT (a line or a word) or PAIR (a key and a number, printed
 *                 "(text,value)"; the keyed operators emit (word, running count))
 *   key, key_len  the key set by key_by (field word: the word; key: the key; value: the
 *                 decimal value); NULL/0 before key_by, and then hash partitioning and
 *                 the keyed operators use text as the key
 *   text          the word or line bytes (not NUL-terminated, at most
 *                 WRK_RECORD_MAX_BYTES)
 *   value         a signed 64-bit number (counts, sums)
 *   timestamp_ms  event time in ms since the epoch (sources set it at emission; the
 *                 generator: the time it emitted the record); 0 = none
 *   seq           the source's sequence number (generator: n; file: line start offset)
 * All bytes are borrowed; on the network they are serialized as worker/dataflow.h says. */
struct wrk_record {
        enum wrk_record_kind kind;
        const char *text;
        size_t text_len;
        int64_t value;
        uint64_t seq; /* the source's sequence number (generator: n) */
        const char *key;
        size_t key_len;
        int64_t timestamp_ms;
};

/* ---- latency markers (Flink's LatencyMarker; metrics.latency.interval) ---- */

/* A source chain whose ctx latency_interval_ms is above 0 emits a marker carrying its
 * wall-clock time at most that often (checked at each step, before the step's records).
 * Operators pass it on in-band: the chained ones at once, the network output to one of
 * each edge's targets (round robin, as Flink picks a random channel) through the same
 * buffer as records, so it waits for execution.buffer-timeout as they do and never
 * overtakes one. A sink records now - marked time in the chain's histogram; the task
 * reports its statistics with the heartbeat, and the REST job view shows them under the
 * sink vertex's metrics "latency". Clocks of different workers are assumed in sync, as
 * Flink assumes. */
struct wrk_latency_marker {
        int64_t marked_us;      /* wall clock at the source, microseconds since the epoch */
        uint32_t vertex;        /* the source vertex (job_graph.vertices index) */
        uint32_t subtask;       /* the source subtask */
};

/* The last WRK_LATENCY_HISTORY samples (metrics.latency.history-size's default in
 * Flink: a sliding window of 128). */
#define WRK_LATENCY_HISTORY 128u

struct wrk_latency_hist {
        uint64_t count;         /* samples ever added */
        uint32_t n;             /* samples held (<= WRK_LATENCY_HISTORY) */
        uint32_t next;          /* where the next one goes */
        uint64_t samples_us[WRK_LATENCY_HISTORY];
};

/* Statistics over the window; all 0 when count is 0. Quantiles are nearest-rank. */
struct wrk_latency_stats {
        uint64_t count;
        uint64_t min_us, max_us, mean_us, p50_us, p95_us, p99_us;
};

/* Adds a sample; a negative one (clock skew between workers) counts as 0. */
void wrk_latency_hist_add(struct wrk_latency_hist *h, int64_t latency_us);
void wrk_latency_hist_stats(const struct wrk_latency_hist *h, struct wrk_latency_stats *ret);

struct wrk_chain;
struct wrk_op;
struct wrk_substate_op;
struct sb_snapshot;

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
        /* Checkpoint n at the barrier (may be NULL: no state): the synchronous part,
         * filling so (its `op` is set by the chain) with operator state; the network
         * output forwards the barrier here. */
        int (*snapshot)(struct wrk_op *op, uint64_t n, bool savepoint,
                        struct wrk_substate_op *so);
        /* Hands over the keyed snapshot the last snapshot call took (statebackend
         * snapshot.h; NULL if none): the chain's upload thread uploads it after the
         * barrier went on and fills the state's `keyed` handle. May be NULL. */
        struct sb_snapshot *(*detach)(struct wrk_op *op);
        int (*complete)(struct wrk_op *op, uint64_t n);
        void (*abort)(struct wrk_op *op, uint64_t n);
        /* Event time: the watermark advanced to this (ms; INT64_MAX = end of event
         * time). NULL: passed on to the next operator that handles them. */
        int (*watermark)(struct wrk_op *op, int64_t watermark);
        /* A latency marker (may be NULL: passed to the next operator, or recorded in the
         * chain's histogram by a sink). */
        int (*marker)(struct wrk_op *op, const struct wrk_latency_marker *m);
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
/* Hands a watermark to the next operator downstream that handles them (0 if none). */
int wrk_op_emit_watermark(struct wrk_op *op, int64_t watermark);

/* Hands a latency marker to op (its marker hook, else on down the chain; the sink at the
 * tail records it). */
int wrk_op_marker(struct wrk_op *op, const struct wrk_latency_marker *m);

/* ---- chains ---- */

struct sb_env;
struct wrk_substate;

/* What a subtask's checkpoint produced, handed to ctx->on_checkpoint (on the task
 * thread): an ack (state set, declined false) or a decline (reason set). */
struct wrk_ckpt_result {
        uint64_t checkpoint_id;
        bool declined;
        char reason[256];
        char *state;            /* the subtask state envelope (substate.h); malloc'ed, the
                                 * callback takes it */
        size_t state_len;
        uint64_t state_bytes;
        uint64_t incremental_bytes;
        uint64_t sync_ms;
        uint64_t async_ms;
        uint64_t alignment_ms;
        uint64_t alignment_bytes;
};

typedef void (*wrk_ckpt_fn)(void *arg, struct wrk_ckpt_result *res);

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
        /* The task's cancel flag: a producer waiting on a full channel gives up when it
         * is set. Borrowed; NULL = never canceled. */
        const atomic_bool *cancel;
        /* The process's RocksDB environment for keyed operators (borrowed; NULL: a
         * process-wide one with the defaults of statebackend/backend.h is made on first
         * use) and the directory under which each keyed subtask gets
         * <job>-<attempt>-<vertex>-<subtask>/ (NULL: $TMPDIR or /tmp). */
        struct sb_env *sb_env;
        const char *state_dir;
        /* execution.buffer-timeout: an output buffer is sent at the latest this long
         * after its first entry (0: after every record). */
        uint64_t buffer_timeout_ms;
        /* metrics.latency.interval in ms: how often a source chain emits a latency
         * marker (0: never). */
        uint64_t latency_interval_ms;
        /* Checkpoints: the job's checkpoint directory (local path of
         * <state.checkpoints.dir>/<job>; NULL or "" = this job cannot checkpoint: every
         * barrier is declined), and where results go. */
        const char *job_checkpoint_dir;
        wrk_ckpt_fn on_checkpoint;
        void *on_checkpoint_arg;
        /* Restore: the decoded subtask states this subtask restores from (borrowed for
         * wrk_chain_create and wrk_chain_open only) and the checkpoint they belong to. */
        const struct wrk_substate *const *restore;
        size_t n_restore;
        uint64_t restored_checkpoint;
        /* PROTO_DEPLOY `restore_dir`: where the restored handles' relative paths
         * resolve (NULL or "": job_checkpoint_dir). When it differs from
         * job_checkpoint_dir the keyed backends forget their base after the restore, so
         * the first checkpoint uploads everything (restore.h). */
        const char *restore_dir;
        /* The cluster's execution.checkpointing.interval and .mode, for a job whose
         * file has no `checkpointing` (the coordinator falls back to them too): the
         * interval decides the file sink (exactly-once when > 0), the mode alignment. */
        int64_t default_checkpoint_interval_ms;
        bool default_at_least_once;
        /* Processing time of windows: wall-clock ms since the epoch. NULL =
         * clock_wall_ms; tests pass their own clock. */
        int64_t (*wall_clock_ms)(void);
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

/* Checkpoints (task thread only). A source chain takes checkpoint n at once: it
 * records its position, snapshots every operator synchronously, emits barrier n on all
 * outputs, then uploads the keyed snapshots and reports through ctx->on_checkpoint. A
 * chain that reads from a gate does the same when its inputs aligned barrier n (called
 * from wrk_chain_step). A failure is a decline, not a task failure, unless local state
 * is corrupt (-EBADMSG is returned then). */
int wrk_chain_trigger(struct wrk_chain *c, uint64_t checkpoint_id, bool savepoint);
/* Checkpoint n completed: the file sink commits what n made pending, keyed backends
 * confirm n. 0 or a negative errno (a commit that failed). */
int wrk_chain_complete(struct wrk_chain *c, uint64_t checkpoint_id);
/* Checkpoint n aborted: keyed backends drop its uploads; pending sink files stay. */
void wrk_chain_abort(struct wrk_chain *c, uint64_t checkpoint_id);
/* End of input with checkpoints on (ctx checkpoint interval > 0 and a checkpoint
 * directory; Flink's checkpoints after tasks finish, FLIP-147): the task does not finish
 * at once. wrk_chain_needs_final_checkpoint says whether this applies. After
 * wrk_chain_end_of_input, a source waits for one more trigger (its final barrier goes
 * out, its end markers not yet), and every chain waits until the checkpoint that last
 * cut it completes (wrk_chain_final_done); only then does the task call
 * wrk_chain_finish, which sends the end markers and commits the rest. So a sink commits
 * nothing at the end that a restore from an earlier checkpoint would write again. An
 * aborted final checkpoint is replaced by the next trigger. */
bool wrk_chain_needs_final_checkpoint(const struct wrk_chain *c);
void wrk_chain_end_of_input(struct wrk_chain *c);
bool wrk_chain_final_done(const struct wrk_chain *c);

/* Whether the head is a source (receives triggers). */
bool wrk_chain_is_source(const struct wrk_chain *c);

/* End of input: finishes every operator, head to tail. 0 or a negative errno. */
int wrk_chain_finish(struct wrk_chain *c);

/* The source's rate in records per second for the whole job (0 = unlimited) and how
 * many subtasks share it. */
void wrk_chain_rate(const struct wrk_chain *c, uint64_t *ret_rate_per_s,
                    uint32_t *ret_share);

/* Records the chain's event-time windows dropped as late (Flink's numLateRecordsDropped). */
uint64_t wrk_chain_late_records_dropped(const struct wrk_chain *c);

/* Records the head consumed (for a source: emitted) and the tail emitted (a sink: wrote). */
uint64_t wrk_chain_records_in(const struct wrk_chain *c);
uint64_t wrk_chain_records_out(const struct wrk_chain *c);

/* The latency a sink at the chain's tail measured from the markers it received
 * (count 0: none yet). */
void wrk_chain_latency(const struct wrk_chain *c, struct wrk_latency_stats *ret);

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

/* The event time of record n with event_time_step > 0 (jobgraph.h): 10^12 + n * step -
 * jitter, jitter = splitmix64(seed + n) mod (out_of_order + 1). */
int64_t wrk_gen_timestamp(const struct job_generator_params *p, uint64_t n);

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
