/* A task: one subtask of one vertex (a chain of operators) of one job attempt, run by a
 * thread of its own. The control loop creates, starts, cancels and reaps tasks; the
 * task thread runs the chain (ops.h) and moves the task through its states.
 *
 * States (PROTO_TASK_*, as Flink names them):
 *
 *     DEPLOYING --(thread opened the chain)--> RUNNING --(bounded input done)--> FINISHED
 *         |                                       |
 *         +--(cancel)--> CANCELING <--(cancel)----+         any --(error)--> FAILED
 *                            |
 *                            +--(thread stopped)--> CANCELED
 *
 * DEPLOYING is set at creation, CANCELING by wrk_task_cancel (control loop), the others
 * by the task thread. FINISHED, CANCELED and FAILED are terminal; the thread sets the
 * terminal state as its last act, after the chain was finished or closed, so FINISHED
 * means the output is complete. Every state a task passes through is kept, in order,
 * until the control loop takes it (wrk_task_take_change), so the leader hears about
 * each one; at most WRK_TASK_MAX_CHANGES are pending (a task passes through at most
 * four states after DEPLOYING).
 *
 * Threads: every function is called on the control loop thread; the notify callback is
 * called on the task thread (it must be thread-safe: event_active on a loop made with
 * evthread_use_pthreads). The task thread waits for its rate limiter on a condition
 * variable (CLOCK_MONOTONIC) that a cancel signals, so a cancel is seen at once. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/ids.h"
#include "common/jobgraph.h"
#include "worker/ops.h"

#define WRK_TASK_ERROR_BYTES 512u
#define WRK_TASK_MAX_CHANGES 6u

enum wrk_task_state {
        WRK_TASK_DEPLOYING,
        WRK_TASK_RUNNING,
        WRK_TASK_FINISHED,
        WRK_TASK_CANCELING,
        WRK_TASK_CANCELED,
        WRK_TASK_FAILED,
};

/* PROTO_TASK_* names ("DEPLOYING", ...). Static storage. */
const char *wrk_task_state_name(enum wrk_task_state s);
bool wrk_task_state_is_terminal(enum wrk_task_state s);

/* A decoded job graph shared by the tasks of one deployment. */
struct wrk_graph {
        atomic_uint refs;
        struct job_graph *g;
};

/* Takes ownership of g: 0 and *ret (one reference), or -ENOMEM (g is then freed). */
int wrk_graph_create(struct job_graph *g, struct wrk_graph **ret);
struct wrk_graph *wrk_graph_ref(struct wrk_graph *wg);
/* Drops a reference; the last one frees the graph. NULL is fine. */
void wrk_graph_unref(struct wrk_graph *wg);

/* Names a task. */
struct wrk_task_id {
        char job[ID_HEX_LEN + 1];
        uint64_t epoch;    /* of the leader that deployed it */
        uint32_t attempt;
        uint32_t vertex;   /* index in job_graph.chains (a chain is Flink's JobVertex) */
        uint32_t subtask;
        uint32_t slot;
};

/* A state change, or a report of the current state. */
struct wrk_task_change {
        enum wrk_task_state state;
        uint64_t records_in;
        uint64_t records_out;
        uint64_t late_records_dropped; /* event-time windows (numLateRecordsDropped) */
        struct wrk_latency_stats latency; /* a sink's, from latency markers (ops.h) */
        char error[WRK_TASK_ERROR_BYTES]; /* FAILED: why; else "" */
};

struct wrk_task;
struct sb_env;

typedef void (*wrk_task_notify_fn)(void *arg);

struct wrk_task_options {
        /* Called on the task thread after each state change it makes; thread-safe. */
        wrk_task_notify_fn notify;
        void *notify_arg;
        /* Print sink streams (NULL: stdout, stderr); borrowed, must outlive the task. */
        FILE *out;
        FILE *err;
        /* Keyed state: the process's RocksDB environment (borrowed; NULL: a default one)
         * and the directory for the subtasks' RocksDB files (copied; NULL: $TMPDIR). */
        struct sb_env *sb_env;
        const char *state_dir;
        /* execution.buffer-timeout in ms (0: send every record at once). */
        uint64_t buffer_timeout_ms;
        /* metrics.latency.interval in ms (0: no latency markers). */
        uint64_t latency_interval_ms;
        /* Local path of <state.checkpoints.dir>/<job> (copied; NULL: no checkpoints). */
        const char *job_checkpoint_dir;
        /* Restore: serialized subtask states (PROTO_DEPLOY `restore`; decoded and kept by
         * the task; a bad one fails wrk_task_create naming it) and their checkpoint. */
        const struct wrk_bytes_list *restore;
        uint64_t restored_checkpoint;
        const char *restore_dir; /* copied; NULL or "": the job's checkpoint dir */
        /* execution.checkpointing.interval / .mode of the cluster (ops.h). */
        int64_t default_checkpoint_interval_ms;
        bool default_at_least_once;
};

/* A list of byte strings (restore states); borrowed. */
struct wrk_bytes_list {
        const void *const *data;
        const size_t *len;
        size_t n;
};

/* Checkpoint events from the leader, handled by the task thread between steps. */
enum wrk_ckpt_event { WRK_CKPT_TRIGGER, WRK_CKPT_COMPLETE, WRK_CKPT_ABORT };

/* Queues an event (at most WRK_TASK_MAX_CKPT_EVENTS pending; past that the oldest is
 * dropped: a lost trigger times out at the leader, a lost complete is subsumed by the
 * next). A trigger only matters to a source task. */
#define WRK_TASK_MAX_CKPT_EVENTS 64u
void wrk_task_checkpoint_event(struct wrk_task *t, enum wrk_ckpt_event ev, uint64_t checkpoint_id,
                               bool savepoint);

/* Takes the oldest checkpoint result (ack or decline) the task produced: true and *ret
 * (ret->state is malloc'ed: the caller frees it), or false. */
struct wrk_ckpt_result;
bool wrk_task_take_checkpoint_result(struct wrk_task *t, struct wrk_ckpt_result *ret);

/* Builds the task's chain (nothing runs yet): 0 and *ret in state DEPLOYING, or
 * -EOPNOTSUPP / -EINVAL / -ENOMEM with the reason in err (naming the operator or the
 * step). Takes a reference on graph. id and opts are copied. */
int wrk_task_create(const struct wrk_task_id *id, struct wrk_graph *graph,
                    const struct wrk_task_options *opts, struct wrk_task **ret, char *err,
                    size_t err_len);

/* Starts the thread. 0 or a negative errno (the task is then FAILED, with the change
 * pending, and needs no join). */
int wrk_task_start(struct wrk_task *t);

/* Asks the task to stop: a task that is not terminal goes to CANCELING (a pending
 * change) and its thread stops at the next step boundary. Repeated calls are no-ops. */
void wrk_task_cancel(struct wrk_task *t);

/* Takes the oldest state change not taken yet: true and *ret, or false. */
bool wrk_task_take_change(struct wrk_task *t, struct wrk_task_change *ret);

/* The current state and counters. */
void wrk_task_report(struct wrk_task *t, struct wrk_task_change *ret);

enum wrk_task_state wrk_task_state(struct wrk_task *t);

/* Whether the thread has set a terminal state (it is then exiting or gone). */
bool wrk_task_is_terminal(struct wrk_task *t);

/* Joins the thread of a terminal task (returns at once: the terminal state is the
 * thread's last act). No-op when already joined or never started; must not be called on
 * a task that is not terminal. */
void wrk_task_join(struct wrk_task *t);

const struct wrk_task_id *wrk_task_id(const struct wrk_task *t);

/* "generator -> sink:file", borrowed from t. */
const char *wrk_task_describe(const struct wrk_task *t);

/* Cancels, waits for the thread to end and frees the task. NULL is fine. Blocks until the
 * thread is gone: call it on terminal tasks, or at shutdown. */
void wrk_task_destroy(struct wrk_task *t);
