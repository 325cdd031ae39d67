/* In-memory channels between subtasks on one worker: each consuming subtask has one
 * input gate, a bounded queue of buffers (worker/dataflow.h layout) tagged with the input
 * channel they came from. Channel numbers: the consumer's head vertex reads input edges
 * e0, e1, ... (job_graph.edges order); channel = (sum of the producer parallelisms of the
 * edges before e) + producer subtask.
 *
 * Flow control: a gate holds at most WRK_GATE_MAX_BUFFERS buffers; a producer whose put
 * finds it full waits, so a slow consumer stops its producers, and theirs, back to the
 * sources (bounded memory: 32 KiB * WRK_GATE_MAX_BUFFERS per gate). A buffer of a
 * channel that alignment blocks stays queued; it still counts, so a blocked channel
 * holds its producer back too (as Flink's credits do).
 *
 * Gates live in a process-wide registry keyed by (job, attempt, chain, subtask): the
 * first of producer or consumer to ask creates it (deployment order does not matter);
 * the last unref frees it. Thread-safe. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRK_GATE_MAX_BUFFERS 64u

struct wrk_gate;

/* Gets (creating if needed) the gate of a consumer subtask, with one reference.
 * 0 or -ENOMEM. */
int wrk_gate_get(const char *job, uint32_t attempt, uint32_t chain, uint32_t subtask,
                 struct wrk_gate **ret);
void wrk_gate_unref(struct wrk_gate *g);

/* Queues a copy of a buffer from channel. Waits while the gate is full, until *cancel
 * is set (-ECANCELED) or the consumer closed it (-EPIPE). 0 on success. */
int wrk_gate_put(struct wrk_gate *g, uint32_t channel, const void *data, size_t len,
                 const atomic_bool *cancel);

/* Takes the oldest buffer whose channel is not blocked (blocked(arg, channel) may be
 * NULL). Waits at most timeout_us. 1 and the malloc'ed buffer (caller frees), 0 on
 * timeout. */
typedef bool (*wrk_gate_blocked_fn)(void *arg, uint32_t channel);
int wrk_gate_take(struct wrk_gate *g, uint64_t timeout_us, wrk_gate_blocked_fn blocked,
                  void *arg, uint32_t *ret_channel, void **ret_data, size_t *ret_len);

/* Wakes waiting takers and putters (after a cancel or an alignment change). */
void wrk_gate_wake(struct wrk_gate *g);

/* The consumer is gone: queued buffers are dropped and later puts fail with -EPIPE. */
void wrk_gate_close(struct wrk_gate *g);

/* Buffers queued now. */
uint32_t wrk_gate_queued(struct wrk_gate *g);
