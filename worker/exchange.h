/* In-memory channels between subtasks on one worker: each consuming subtask has one
 * input gate, a bounded queue of buffers (worker/dataflow.h layout) tagged with the input
 * channel they came from. Channel numbers: the consumer's head vertex reads input edges
 * e0, e1, ... (job_graph.edges order); channel = (sum of the producer parallelisms of the
 * edges before e) + producer subtask.
 *
 * Flow control (Flink's network buffers): each channel may always queue
 * taskmanager.network.memory.buffers-per-channel buffers (exclusive, default 2; so that
 * a blocked channel cannot keep another channel's barrier out), and beyond them the
 * gate's taskmanager.network.memory.floating-buffers-per-gate (default 8) are shared by
 * all its channels (wrk_exchange_set_buffers; a gate keeps the settings it was created
 * with). A producer whose put finds no room waits, so a slow consumer stops its
 * producers, and theirs, back to the sources: bounded memory, 32 KiB * (floating +
 * per_channel * channels) per gate. A buffer of a channel that alignment blocks stays
 * queued; it still counts, so a blocked channel holds its producer back too (as Flink's
 * credits do). The depth also bounds how long a barrier waits behind queued buffers
 * under backpressure: at most (floating + per_channel * channels) buffers' worth of
 * records at the consumer's pace. The old fixed 64 buffers per gate (about 90 000
 * small records) kept barriers out for longer than a checkpoint timeout behind a slow
 * sink; 2 + 8 lose no throughput measured (README.md "Dataflow and checkpoints").
 *
 * Gates live in a process-wide registry keyed by (job, attempt, chain, subtask): the
 * first of producer or consumer to ask creates it (deployment order does not matter);
 * the last unref frees it. Thread-safe. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRK_DEFAULT_BUFFERS_PER_CHANNEL 2u
#define WRK_DEFAULT_FLOATING_BUFFERS 8u
/* Channel numbers a gate accepts: JOB_MAX_INPUTS edges of parallelism 32768. A put on a
 * higher channel fails with -EINVAL, an open naming one is refused. */
#define WRK_GATE_MAX_CHANNELS (64u * 32768u)

/* The buffers of gates created from now on (config keys above); per_channel 0 counts
 * as 1. Call before deploys. */
void wrk_exchange_set_buffers(uint32_t per_channel, uint32_t floating);

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
 * timeout, -EPIPE once a remote producer's connection was lost (wrk_gate_fail). */
typedef bool (*wrk_gate_blocked_fn)(void *arg, uint32_t channel);
int wrk_gate_take(struct wrk_gate *g, uint64_t timeout_us, wrk_gate_blocked_fn blocked,
                  void *arg, uint32_t *ret_channel, void **ret_data, size_t *ret_len);

/* Wakes waiting takers and putters (after a cancel or an alignment change). */
void wrk_gate_wake(struct wrk_gate *g);

/* The consumer is gone: queued buffers are dropped and later puts fail with -EPIPE. */
void wrk_gate_close(struct wrk_gate *g);

/* Buffers queued now. */
uint32_t wrk_gate_queued(struct wrk_gate *g);

/* ---- remote channels (TCP between workers) ----
 *
 * A producer whose consumer subtask runs on another worker (a route set from the
 * deploy's `peers`) gets a remote gate from wrk_gate_get_output: its puts go over one
 * TCP connection per channel to the consumer worker's data port, in common/rpc.h frames
 * (written and read with blocking I/O on the task threads; no event loop involved):
 *   hello   {v, t: "hello", id: 0, cluster, role: "data", name}  both sides, first;
 *           a different version, cluster id or role closes the connection.
 *   open    producer -> consumer {job, attempt, from_vertex, from_subtask, to_vertex,
 *           to_subtask, channel}; an attempt older than the newest this worker was
 *           deployed for closes the connection (stale frames are dropped).
 *   credit  consumer -> producer {n}: n more buffers may be sent. The consumer grants
 *           buffers-per-channel credits after the open and one more each time a buffer
 *           went into the consumer's bounded input gate (wrk_gate_put, which waits
 *           while it is full), so at most buffers-per-channel buffers per channel are in
 *           flight and a full gate stops the producer exactly like an in-memory channel.
 *           The producer takes the first grant as the number to wait for back before it
 *           closes after its end of input.
 *   data    producer -> consumer {job, attempt, from_vertex, from_subtask, to_vertex,
 *           to_subtask, channel, kind: "data" | "barrier" | "end", checkpoint,
 *           payload: bin (one dataflow.h buffer, barriers and end in-band)}.
 * Connection loss fails both ends: the producer's put returns -EPIPE, and a consumer
 * gate whose producer connection closed before its "end" makes wrk_gate_take return
 * -EPIPE. Either way the task fails and the coordinator restarts the job. */

/* Identity of this worker on data connections (copied). Call once before deploys. */
void wrk_exchange_configure(const char *cluster_id, const char *name);

/* Forgets the routes of older attempts of job and records attempt as its newest;
 * then wrk_exchange_route_add places (chain, subtask) of that attempt on host:port.
 * 0 or -ENOMEM. */
int wrk_exchange_routes_begin(const char *job, uint32_t attempt);
int wrk_exchange_route_add(const char *job, uint32_t attempt, uint32_t chain, uint32_t subtask,
                           const char *host, uint16_t port);
/* Drops everything kept for job. */
void wrk_exchange_forget_job(const char *job);

/* The output gate a producer (from_chain, from_subtask) uses to reach consumer (chain,
 * subtask): the local gate (as wrk_gate_get) or, when routed to another worker, a
 * private remote gate that connects on first put. Unref with wrk_gate_unref. */
int wrk_gate_get_output(const char *job, uint32_t attempt, uint32_t from_chain,
                        uint32_t from_subtask, uint32_t chain, uint32_t subtask,
                        struct wrk_gate **ret);

/* Serves one accepted data connection on a detached thread that owns fd from now on.
 * 0 or -errno (fd is closed then). */
int wrk_exchange_serve(int fd);

/* The producer of one of this gate's remote channels is gone: takes fail with -EPIPE. */
void wrk_gate_fail(struct wrk_gate *g);
