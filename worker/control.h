/* The worker's control plane, on the control loop thread: the connection to the leader
 * (find, connect, register, heartbeat, follow a new leader), the coordinator's requests
 * of common/proto.h (deploy, cancel, free_job) with epoch fencing, the slots and the
 * table of tasks. Whoever finds the leader (ZooKeeper leader retrieval, or the fixed
 * jobmanager.rpc.address with high-availability NONE) tells it through
 * wrk_ctl_set_leader / wrk_ctl_clear_leader.
 *
 * Connection state machine (logged as "leader connection FROM -> TO (why)"):
 *
 *   NO_LEADER   no leader known; waits for wrk_ctl_set_leader (a ZooKeeper watch, no
 *               polling) and logs a reminder now and then.
 *   CONNECTING  TCP connect + hello to the leader's rpc address.
 *   REGISTERING PROTO_REGISTER sent, waiting for the response.
 *   REGISTERED  heartbeats every heartbeat_interval_ms with the slot report; task state
 *               changes are sent as they happen.
 *   RETRY_WAIT  a connect or registration failed, or the connection closed while the
 *               leader is still published: retries after a back-off (100 ms doubling to
 *               5 s; reset by a registration or a new leader), one timer, no busy loop.
 *   STOPPING    shutting down: tasks are canceled, their final states go out, then the
 *               owner's done callback runs.
 *
 * A new leader (another epoch or address) closes the current connection and connects to
 * it at once; a closed connection is noticed at once (on_close), logged as
 * `-leader-connection-lost`, and followed by a reconnect. Tasks keep running across all
 * of this: only a leader's cancel, or a deployment of a newer attempt of the same job,
 * stops them.
 *
 * Events: `+leader-changed epoch=<e> leader=<rpc>`, `+registered leader=<rpc>
 * epoch=<e>`, `-leader-connection-lost leader=<rpc> reason=<why>`,
 * `-rejected-stale-epoch epoch=<e> highest=<h> type=<t>`, `+task-state job=<j>
 * vertex=<v> subtask=<s> state=<S> attempt=<a> slot=<n> ...`, `-deploy-refused job=<j>
 * reason=<why>`.
 *
 * Deployments of a job with stored artifacts first copy and verify the UDF libraries into
 * a per-attempt directory under the worker's state dir (worker/artifacts.h; a failure
 * refuses the deployment naming the artifact); the directory is removed when the
 * attempt's last task here ended.
 *
 * Fencing: the worker keeps the highest epoch it has seen (leader node, register
 * responses, messages) and refuses anything older. Tasks are ordered by (epoch of the
 * leader that deployed them, attempt): a deployment or cancel from a newer leader
 * supersedes the tasks an older one deployed, whatever their attempt numbers.
 *
 * Limits: at most WRK_MAX_TASKS_PER_SLOT * slots tasks (WRK_MAX_TASKS at most) are
 * kept, finished ones included (the oldest finished and reported ones make room); a
 * deployment names at most that many tasks; strings are bounded by the fields' sizes.
 *
 * Everything here runs on the loop thread; task threads only activate an event. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/jobgraph.h"

struct event_base;
struct evdns_base;
struct wrk_ctl;

/* One subtask of each vertex per slot, so a slot holds at most this many tasks of a
 * job. */
#define WRK_MAX_TASKS_PER_SLOT JOB_MAX_VERTICES
#define WRK_MAX_TASKS 65536u
#define WRK_RETRY_MIN_MS 100u
#define WRK_RETRY_MAX_MS 5000u

enum wrk_conn_state {
        WRK_CONN_NO_LEADER,
        WRK_CONN_CONNECTING,
        WRK_CONN_REGISTERING,
        WRK_CONN_REGISTERED,
        WRK_CONN_RETRY_WAIT,
        WRK_CONN_STOPPING,
};

/* "NO_LEADER", "CONNECTING", ... Static storage. */
const char *wrk_conn_state_name(enum wrk_conn_state s);

struct wrk_ctl_options {
        const char *resource_id;     /* 32 hex digits; copied */
        const char *host;            /* advertised host; copied */
        uint32_t slots;              /* 1..1024 */
        uint16_t data_port;
        const char *cluster_id;      /* copied */
        size_t max_frame_bytes;      /* 0 = RPC_DEFAULT_MAX_FRAME_BYTES */
        struct evdns_base *dns;      /* resolves leader host names; borrowed */
        /* Until a leader tells its own in the register response. */
        uint32_t heartbeat_interval_ms;
        uint32_t heartbeat_timeout_ms;
        /* Shown while waiting for a leader ("ZooKeeper node /flinc/default/leader");
         * copied; NULL = "". */
        const char *leader_hint;
        /* Print sink streams; NULL = stdout / stderr. Borrowed. */
        FILE *out;
        FILE *err;
        /* Handed to every task (task.h wrk_task_options): the RocksDB environment
         * (borrowed), the keyed state directory (copied), execution.buffer-timeout and
         * metrics.latency.interval. */
        struct sb_env *sb_env;
        const char *state_dir;
        uint64_t buffer_timeout_ms;
        uint64_t latency_interval_ms;
        /* Local path of state.checkpoints.dir (copied; NULL or "": jobs cannot
         * checkpoint, every barrier is declined). */
        const char *checkpoints_dir;
        /* execution.checkpointing.interval and .mode (AT_LEAST_ONCE: true), for jobs
         * without their own `checkpointing`. */
        int64_t checkpoint_interval_ms;
        bool checkpoint_at_least_once;
};

/* 0 and *ret in NO_LEADER, or -EINVAL / -ENOMEM. base must run on this thread and have
 * been created after evthread_use_pthreads(). Free with wrk_ctl_destroy. */
int wrk_ctl_create(struct event_base *base, const struct wrk_ctl_options *opts,
                   struct wrk_ctl **ret);

/* Cancels every task, waits for their threads, closes the connection, frees c. Blocks
 * as long as the slowest task takes to notice its cancel. NULL is fine. */
void wrk_ctl_destroy(struct wrk_ctl *c);

/* The leader is (epoch, rpc "host:port" or "[v6]:port"). Another leader than the
 * current one is followed at once; an epoch below the highest seen is refused. */
void wrk_ctl_set_leader(struct wrk_ctl *c, uint64_t epoch, const char *rpc);

/* No leader is published (reason for the log). A registered connection stays until it
 * closes; a retry or connect in progress stops. */
void wrk_ctl_clear_leader(struct wrk_ctl *c, const char *reason);

/* Clean shutdown: cancels every task; once all have ended and their final states were
 * sent (or timeout_ms passed) calls done(arg, clean) on the loop thread, clean being
 * false on a timeout. Later leader changes are ignored. 0, or -EALREADY. */
int wrk_ctl_shutdown(struct wrk_ctl *c, uint32_t timeout_ms,
                     void (*done)(void *arg, bool clean), void *arg);

enum wrk_conn_state wrk_ctl_conn_state(const struct wrk_ctl *c);
uint64_t wrk_ctl_highest_epoch(const struct wrk_ctl *c);
/* Tasks kept (live and finished) and tasks not in a terminal state. */
size_t wrk_ctl_task_count(const struct wrk_ctl *c);
size_t wrk_ctl_live_task_count(const struct wrk_ctl *c);
