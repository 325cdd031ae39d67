/* The pure parts of the worker's data plane (DESIGN.md "Wire protocol", "Checkpoint
 * protocol"): how a record picks its downstream subtask, how records and barriers are
 * laid out in a network buffer and when a buffer is flushed, the barrier alignment state
 * machine of a task with several inputs, and the generator's redistributable position.
 * Nothing here does I/O, takes a lock or reads a clock: callers pass the time, so that
 * tests/unit/test_worker_dataflow.c checks every rule.
 *
 * PARTITIONING (job_graph edges)
 *   forward    subtask i sends to subtask i (equal parallelism; chained when possible).
 *   hash       the record's key (wrk_record.key, or its text when it has no key) goes to
 *              key group g = kg_of_key(key, max_parallelism), owned by subtask
 *              kg_operator_index(g, max_parallelism, p): the subtask whose keyed state
 *              backend holds g (statebackend/backend.h).
 *   rebalance  round robin over the p targets, starting at (self + 1) % p so that the
 *              subtasks of a producer do not all start on target 0 (Flink's
 *              RebalancePartitioner starts at a random one; ours is deterministic).
 *   broadcast  every target.
 *
 * BUFFERS (one per output channel)
 *   A buffer holds at most WRK_BUFFER_BYTES (32 KiB) of entries, each starting with one
 *   type byte:
 *     1 record   kind u8 (wrk_record_kind) | varint key_len | key | varint text_len |
 *                text | zigzag varint value | zigzag varint timestamp_ms | varint seq
 *     2 barrier  varint checkpoint id | u8 flags (bit 0: savepoint)
 *     3 end      end of input of this channel (the producer subtask finished)
 *     4 watermark  zigzag varint watermark ms (event time; INT64_MAX = end of event time)
 *     5 latency  a latency marker (Flink's LatencyMarker): zigzag varint marked time
 *                (wall clock, microseconds since the epoch) | varint source vertex |
 *                varint source subtask. It waits in the buffer like a record (so
 *                execution.buffer-timeout delays it as it delays records) and never
 *                overtakes one.
 *   Varints are LEB128 (7 bits a byte, low first, at most 10 bytes). A buffer is flushed
 *   (handed to the channel) when the next entry does not fit, when it holds a barrier or
 *   an end (they never wait), and when its oldest entry is execution.buffer-timeout ms old
 *   (0 = after every record). On TCP one buffer is one rpc frame (common/rpc.h, hello
 *   role "data"); in memory it is moved to the consumer's bounded queue as it is.
 *
 * ALIGNMENT (exactly-once; Flink's aligned checkpoints)
 *   The first barrier n on any input starts aligning n: that input is blocked (its
 *   later entries stay queued, so the producer's credits run out and backpressure holds
 *   it) until barrier n arrived on every input that has not ended; then the task
 *   snapshots, forwards barrier n and unblocks all. A barrier m > n while aligning n
 *   means n cannot complete here: n is declined (cancelled) and m starts. A barrier
 *   older than the last one started is stale and ignored. An input that ends counts as
 *   aligned for every later barrier. AT_LEAST_ONCE: no input is ever blocked; the task
 *   snapshots when barrier n arrived on every live input (Flink's barrier tracker), so
 *   the records that overtook the barrier on the faster inputs are in the snapshot and
 *   may be replayed: at-least-once.
 *
 * WATERMARKS (event time; Flink's watermarks)
 *   A source of a job with an event-time window generates bounded-out-of-orderness
 *   watermarks (Flink's BoundedOutOfOrdernessWatermarks: max timestamp seen -
 *   out_of_orderness - 1), emitting one in-band after every record that advances it
 *   (Flink emits periodically, every pipeline.auto-watermark-interval = 200 ms; emitting
 *   on every advance makes which records are late a function of the input order alone),
 *   and INT64_MAX when its input is exhausted. Operators pass them on in order with the
 *   records; a network output sends each one to every consumer subtask of every output
 *   edge (broadcast, whatever the partitioning). A task with several input channels
 *   takes the minimum over its channels (wrk_wm_valve; Flink's StatusWatermarkValve);
 *   an ended channel no longer holds it back, so all ended = INT64_MAX.
 *
 * GENERATOR POSITION (operator list state, redistributable)
 *   The generator's records are numbered n = 0, 1, ... (ops.h). Its position is a list
 *   of entries (modulus m, residue r, next n): the entry will emit n, n + m, n + 2m, ...
 *   (all ≡ r mod m) while n < count. A fresh subtask i of p holds the one entry
 *   (p, i, i). At a checkpoint each subtask stores its entries; at restore with
 *   parallelism p' the union of all subtasks' entries is sorted by (m, r) and dealt
 *   round robin (entry k to subtask k mod p'), as Flink redistributes operator list
 *   state; while there are fewer entries than p' the entry with the smallest modulus
 *   (then residue) is split in two: (m, r, n) -> (2m, n mod 2m, n) and
 *   (2m, (n + m) mod 2m, n + m), which emit exactly the same numbers between them. So
 *   every n is emitted exactly once over all restarts and rescales, whatever p and p'.
 *   A subtask with several entries emits from the entry whose next is smallest.
 *
 * FILE SOURCE SPLITS (operator list state, redistributable)
 *   A file of S bytes read by p subtasks: subtask i gets the byte range
 *   [floor(i*S/p), floor((i+1)*S/p)) and reads every line that STARTS in its range (a
 *   subtask whose range starts inside a line skips to the next line start), so each line
 *   is read by exactly one subtask. Its position is a list of splits (start, end,
 *   offset): offset is the next line start to read (offset == start > 0 means "not
 *   aligned yet": the reader skips to the first line start >= start). At a restore
 *   with another parallelism the union of all splits is sorted by start and dealt round
 *   robin; a split is never cut, so the remaining ranges are read exactly once. Lines
 *   are replayable by offset; the socket source is not replayable (a restore resumes
 *   from whatever the server sends next: at-most-once for its records). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jobgraph.h"
#include "worker/ops.h"

#define WRK_BUFFER_BYTES (32u * 1024u)
#define WRK_PART_ALL UINT32_MAX

/* ---- partitioners ---- */

struct wrk_partitioner {
        enum job_partitioning kind;
        uint32_t self;          /* the producing subtask */
        uint32_t n_targets;     /* parallelism of the consumer */
        uint32_t max_parallelism;
        uint32_t next;          /* rebalance: the next target */
};

/* n_targets >= 1; max_parallelism (1..32768) matters for hash only. */
void wrk_partitioner_init(struct wrk_partitioner *p, enum job_partitioning kind, uint32_t self,
                          uint32_t n_targets, uint32_t max_parallelism);

/* The target subtask of rec, or WRK_PART_ALL (broadcast). */
uint32_t wrk_partition(struct wrk_partitioner *p, const struct wrk_record *rec);

/* The key hash partitioning uses: rec->key if it has one, else rec->text. */
void wrk_record_key(const struct wrk_record *rec, const char **ret_key, size_t *ret_len);

/* ---- buffers ---- */

enum wrk_entry_type {
        WRK_ENTRY_RECORD = 1,
        WRK_ENTRY_BARRIER = 2,
        WRK_ENTRY_END = 3,
        WRK_ENTRY_WATERMARK = 4,
        WRK_ENTRY_LATENCY = 5,
};

/* An output buffer: caller-allocated, WRK_BUFFER_BYTES of storage inline. */
struct wrk_outbuf {
        size_t len;
        uint32_t records;
        uint64_t first_us;      /* monotonic time of the oldest entry; valid when len > 0 */
        unsigned char data[WRK_BUFFER_BYTES];
};

void wrk_outbuf_reset(struct wrk_outbuf *b);

/* Appends a record. 0, -ENOSPC when it does not fit in what is left (flush, then retry),
 * or -EMSGSIZE when it could never fit in an empty buffer (key or text too long). */
int wrk_outbuf_add_record(struct wrk_outbuf *b, const struct wrk_record *rec, uint64_t now_us);
int wrk_outbuf_add_barrier(struct wrk_outbuf *b, uint64_t checkpoint_id, bool savepoint,
                           uint64_t now_us);
int wrk_outbuf_add_end(struct wrk_outbuf *b, uint64_t now_us);
int wrk_outbuf_add_watermark(struct wrk_outbuf *b, int64_t watermark, uint64_t now_us);
/* Appends a latency marker (counted neither as a record nor as a barrier: it waits for
 * the buffer timeout as records do). 0 or -ENOSPC. */
int wrk_outbuf_add_latency(struct wrk_outbuf *b, const struct wrk_latency_marker *m,
                           uint64_t now_us);

/* Whether a non-empty buffer must go now: its oldest entry is timeout_ms old (0: at
 * once). */
bool wrk_outbuf_due(const struct wrk_outbuf *b, uint64_t now_us, uint64_t timeout_ms);

/* An entry read back from a buffer; text and key borrow from the buffer. */
struct wrk_entry {
        enum wrk_entry_type type;
        struct wrk_record rec;      /* WRK_ENTRY_RECORD */
        uint64_t checkpoint_id;     /* WRK_ENTRY_BARRIER */
        bool savepoint;
        int64_t watermark;          /* WRK_ENTRY_WATERMARK */
        struct wrk_latency_marker marker; /* WRK_ENTRY_LATENCY */
};

/* Reads the entry at data[*pos], advancing *pos. 1 and *ret, 0 at the end, -EBADMSG on
 * a malformed buffer (from a peer: the connection is then closed). */
int wrk_buffer_next(const void *data, size_t len, size_t *pos, struct wrk_entry *ret);

/* ---- barrier alignment ---- */

#define WRK_ALIGN_MAX_INPUTS 4096u

enum wrk_align_event {
        WRK_ALIGN_NOTHING,      /* go on */
        WRK_ALIGN_SNAPSHOT,     /* all inputs delivered the barrier: snapshot + forward it */
        WRK_ALIGN_CANCEL,       /* the checkpoint being aligned (ret_cancelled) is given up */
        WRK_ALIGN_CANCEL_AND_SNAPSHOT, /* both: a newer barrier completed at once */
};

struct wrk_aligner {
        uint32_t n_inputs;
        bool exactly_once;
        uint64_t current;       /* checkpoint being aligned; 0 = none */
        uint64_t last_started;  /* highest checkpoint seen */
        uint32_t n_seen;        /* live inputs that delivered `current` */
        uint32_t n_ended;
        uint64_t start_us;
        uint64_t bytes;         /* bytes held back while aligning (exactly-once) */
        uint8_t *flags;         /* per input: bit 0 delivered current, bit 1 ended */
};

/* 0 or -ENOMEM / -EINVAL (n_inputs 0 or over WRK_ALIGN_MAX_INPUTS). */
int wrk_aligner_init(struct wrk_aligner *a, uint32_t n_inputs, bool exactly_once);
void wrk_aligner_finish(struct wrk_aligner *a);

/* Barrier n arrived on input. *ret_cancelled gets the id given up (CANCEL*), and
 * *ret_alignment_us the time spent aligning (SNAPSHOT*). */
enum wrk_align_event wrk_aligner_barrier(struct wrk_aligner *a, uint32_t input, uint64_t n,
                                         uint64_t now_us, uint64_t *ret_cancelled,
                                         uint64_t *ret_alignment_us);

/* Input ended (its producer finished). May complete the alignment in progress. */
enum wrk_align_event wrk_aligner_end(struct wrk_aligner *a, uint32_t input, uint64_t now_us,
                                     uint64_t *ret_alignment_us);

/* Whether entries of input must stay queued now (exactly-once alignment). */
bool wrk_aligner_blocked(const struct wrk_aligner *a, uint32_t input);

/* Whether every input ended. */
bool wrk_aligner_all_ended(const struct wrk_aligner *a);

/* ---- watermarks (WATERMARKS above) ---- */

/* Flink's StatusWatermarkValve without idleness: the combined watermark of a task's
 * input channels. */
struct wrk_wm_valve {
        uint32_t n_inputs;
        int64_t current;        /* last combined watermark; INT64_MIN = none yet */
        int64_t *wm;            /* per input: its highest watermark */
        uint8_t *ended;         /* per input: it ended */
};

/* 0, -EINVAL (n_inputs 0 or over WRK_ALIGN_MAX_INPUTS) or -ENOMEM. */
int wrk_wm_valve_init(struct wrk_wm_valve *v, uint32_t n_inputs);
void wrk_wm_valve_finish(struct wrk_wm_valve *v);
/* Watermark w arrived on input (a lower one than the input's last is ignored). true and
 * *ret when the combined watermark (the minimum over the inputs that have not ended)
 * advanced. */
bool wrk_wm_valve_input(struct wrk_wm_valve *v, uint32_t input, int64_t watermark,
                        int64_t *ret);
/* Input ended: it no longer holds the watermark back (all ended: INT64_MAX). true and
 * *ret when the combined watermark advanced. */
bool wrk_wm_valve_end(struct wrk_wm_valve *v, uint32_t input, int64_t *ret);

/* Flink's BoundedOutOfOrdernessWatermarks, emitting on every advance. */
struct wrk_wm_gen {
        int64_t out_of_orderness_ms;
        int64_t max_ts;         /* highest timestamp seen; INT64_MIN = none */
        int64_t emitted;        /* last watermark emitted; INT64_MIN = none */
};

void wrk_wm_gen_init(struct wrk_wm_gen *g, int64_t out_of_orderness_ms);
/* A record with this timestamp was emitted: true and *ret (max seen -
 * out_of_orderness - 1) when the watermark advanced. */
bool wrk_wm_gen_event(struct wrk_wm_gen *g, int64_t timestamp_ms, int64_t *ret);

/* ---- window assignment (Flink's TimeWindow.getWindowStartWithOffset, offset 0) ---- */

/* The start of the window of length size_ms holding timestamp_ms (size_ms > 0):
 * timestamp - (timestamp mod size), rounding down for negative timestamps. */
int64_t wrk_window_start(int64_t timestamp_ms, int64_t size_ms);
/* The windows [start, start + size) of timestamp_ms: tumbling (slide_ms 0) one; sliding
 * (Flink's SlidingEventTimeWindows) the starts last, last - slide, ... > timestamp -
 * size with last = wrk_window_start(timestamp, slide), at most max of them. Writes the
 * starts into ret_starts and returns how many. */
size_t wrk_window_assign(int64_t timestamp_ms, int64_t size_ms, int64_t slide_ms,
                         int64_t *ret_starts, size_t max);

/* ---- generator position ---- */

struct wrk_gen_entry {
        uint64_t modulus;
        uint64_t residue;
        uint64_t next;
};

/* The fresh position of subtask i of p: one entry (p, i, i). */
struct wrk_gen_entry wrk_gen_initial(uint32_t subtask, uint32_t parallelism);

/* Redistributes the union of all old subtasks' entries (in, n_in) to subtask `subtask`
 * of `parallelism`, as described above. *ret is malloc'ed (caller frees), *ret_n may be
 * 0 (an idle subtask only when n_in is 0). 0 or -ENOMEM / -EINVAL (parallelism 0). */
int wrk_gen_redistribute(const struct wrk_gen_entry *in, size_t n_in, uint32_t subtask,
                         uint32_t parallelism, struct wrk_gen_entry **ret, size_t *ret_n);

struct wrk_file_split {
        uint64_t start;
        uint64_t end;
        uint64_t offset;
};

/* The initial split of subtask i of p over a file of size_bytes. */
void wrk_file_split_initial(uint64_t size_bytes, uint32_t subtask, uint32_t parallelism,
                            uint64_t *ret_start, uint64_t *ret_end);

/* Deals the union of old splits to subtask `subtask` of `parallelism`: *ret malloc'ed
 * (caller frees; *ret_n may be 0). 0, -ENOMEM or -EINVAL. */
int wrk_file_splits_redistribute(const struct wrk_file_split *in, size_t n_in, uint32_t subtask,
                                 uint32_t parallelism, struct wrk_file_split **ret,
                                 size_t *ret_n);

/* The next sequence number below limit (count, or UINT64_MAX when unbounded) of a set
 * of entries: the smallest `next`. true and *ret_index (the entry), or false when all
 * are done. Advance with e->next += e->modulus. */
bool wrk_gen_pick(const struct wrk_gen_entry *e, size_t n, uint64_t limit, size_t *ret_index);
