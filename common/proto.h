/* The coordinator <-> worker control protocol: message types and field names carried in
 * common/rpc.h frames. This header is the contract between coordinator/ and worker/;
 * both sides validate every field they read (common/msg.h) and answer a bad message with
 * rpc_reply_error naming the field, never with a crash.
 *
 * Connection: a worker connects to the rpc address the leader published in ZooKeeper
 * (<root>/<cluster>/leader), hello role "worker", name = its resource id. A coordinator
 * that is not the acting leader answers every request with the error "not leader".
 *
 * Every coordinator -> worker message carries `epoch` (rpc_msg_set_epoch). A worker
 * keeps the highest epoch it has seen (from register responses and from messages) and
 * rejects a message with a lower epoch: requests get the error
 * "stale epoch <e> < <highest>", one-way messages are dropped, and either way it logs
 * the event `-rejected-stale-epoch epoch=<e> highest=<h> type=<t>`.
 *
 * Identifiers: resource ids and job ids are 32 lowercase hex digits (common/ids.h).
 * A job's attempt number counts its deployments (1 for the first, +1 on each restart or
 * recovery); tasks are named by (job, attempt, vertex, subtask) and a message about an
 * older attempt than the current one is ignored by both sides. `vertex` is an index into
 * job_graph.chains (a chain is Flink's JobVertex). A worker orders the deployments of a
 * job by (epoch of the leader that sent them, attempt): a newer leader's deployment or
 * cancel supersedes what an older leader deployed, whatever its attempt numbers.
 *
 * Worker -> coordinator
 *   PROTO_REGISTER (call)  {resource_id: str, host: str, data_port: uint, slots: uint,
 *                           pid: uint}
 *       response ok        {epoch: uint, heartbeat_interval_ms: uint,
 *                           heartbeat_timeout_ms: uint}
 *       A worker re-registers on every new leader and after a reconnect. Registering an
 *       id that is already registered replaces the old registration (its connection is
 *       closed and its tasks are treated as lost).
 *   PROTO_HEARTBEAT (one-way, every heartbeat_interval_ms)
 *                          {resource_id: str, tasks: [PROTO task report]}
 *   PROTO_TASK_STATE (one-way, on every task state change)
 *                          {job: str, attempt: uint, vertex: uint, subtask: uint,
 *                           state: str (PROTO_TASK_*), error: str (FAILED only),
 *                           records_in: uint, records_out: uint,
 *                           late_records_dropped: uint (optional, 0 when absent)}
 *   task report            {job: str, attempt: uint, vertex: uint, subtask: uint,
 *                           slot: uint, state: str, records_in: uint, records_out: uint,
 *                           late_records_dropped: uint (optional, 0 when absent)}
 *                          late_records_dropped: records the task's event-time windows
 *                          dropped as late (Flink's numLateRecordsDropped)
 *
 * Coordinator -> worker (all carry epoch)
 *   PROTO_DEPLOY (call)    {job: str, attempt: uint, graph: bin (job_graph_encode
 *                           bytes), tasks: [{vertex: uint, subtask: uint, slot: uint}],
 *                           restore: bin (optional; checkpoint state for these tasks,
 *                           defined by the dataflow issue)}
 *       response ok {} once the tasks are started (state DEPLOYING -> RUNNING follows
 *       as PROTO_TASK_STATE), or an error (unknown operator, slot busy, bad graph).
 *       Tasks of older (epoch, attempt) of the same job on that worker are canceled by
 *       it (their CANCELED follows); a deploy older than what the worker runs, or of an
 *       (epoch, attempt) it was told to cancel, is refused; the same task deployed again
 *       into the same slot is a no-op.
 *   PROTO_CANCEL (call)    {job: str, attempt: uint}  cancels every task of that job
 *       attempt on this worker (and of older attempts); response ok {} at once, each
 *       task then reports CANCELED.
 *   PROTO_FREE_JOB (one-way) {job: str} drops everything the worker keeps for a job
 *       that reached a terminal state.
 *
 * Data plane and checkpoints (the dataflow issue; both sides implement these):
 *   PROTO_REGISTER carries the worker's data-plane `data_port` (a real listening port;
 *   data connections between workers use common/rpc.h frames with hello role "data").
 *   PROTO_DEPLOY adds, per task, `restore`: [bin ...] (optional) — the serialized
 *   subtask states (PROTO_ACK_CHECKPOINT `state` payloads) this task restores from:
 *   one for the same parallelism, several when the parallelism changed (the worker
 *   clips keyed state to its key-group range and redistributes operator list state);
 *   and per job `peers`: [{vertex: uint, subtask: uint, host: str, data_port: uint}]
 *   for every subtask of the attempt, so a task can reach its downstream subtasks; and
 *   `restored_checkpoint`: uint (0 = fresh start); and `restore_dir`: str ("" on a fresh
 *   start), the local path the restored handles' relative paths (shared/<uid>.sst,
 *   chk-<n>/...) resolve against: <state.checkpoints.dir>/<job> (a job started from a
 *   savepoint gets the savepoint's files copied there by the leader before the deploy).
 *   `restore` is always present (an empty array on a fresh start).
 *   PROTO_TRIGGER_CHECKPOINT (one-way, leader -> workers running source subtasks)
 *                          {job: str, attempt: uint, checkpoint: uint, timestamp_ms: uint,
 *                           savepoint: bool}
 *       each source subtask of that job attempt on the worker records its position
 *       and emits barrier `checkpoint` into its outputs.
 *   PROTO_ACK_CHECKPOINT (one-way, worker -> leader, one per subtask)
 *                          {job: str, attempt: uint, checkpoint: uint, vertex: uint,
 *                           subtask: uint, state: bin (the subtask state, an envelope of
 *                           kind "flinc.subtask-state": keyed state handles
 *                           (statebackend/handle.h) and operator state: source
 *                           positions, sink pending files), state_bytes: uint,
 *                           incremental_bytes: uint (bytes this checkpoint copied),
 *                           sync_ms: uint, async_ms: uint, alignment_ms: uint,
 *                           alignment_bytes: uint}
 *   PROTO_DECLINE_CHECKPOINT (one-way, worker -> leader)
 *                          {job: str, attempt: uint, checkpoint: uint, vertex: uint,
 *                           subtask: uint, reason: str}
 *   PROTO_CHECKPOINT_COMPLETE (one-way, leader -> every worker of the job attempt)
 *                          {job: str, attempt: uint, checkpoint: uint}
 *       sinks commit what checkpoint n made pending; state backends confirm n as their
 *       new incremental base. Sent only after chk-n/_metadata and its fenced pointer in
 *       ZooKeeper are written.
 *   PROTO_CHECKPOINT_ABORT (one-way, leader -> every worker of the job attempt)
 *                          {job: str, attempt: uint, checkpoint: uint, reason: str}
 *       backends drop n (its uploads are never referenced); sinks keep n's pending
 *       files pending, to be committed with a later checkpoint.
 */
#pragma once

#define PROTO_REGISTER "register"
#define PROTO_HEARTBEAT "heartbeat"
#define PROTO_TASK_STATE "task_state"
#define PROTO_DEPLOY "deploy"
#define PROTO_CANCEL "cancel"
#define PROTO_FREE_JOB "free_job"
#define PROTO_TRIGGER_CHECKPOINT "trigger_checkpoint"
#define PROTO_ACK_CHECKPOINT "ack_checkpoint"
#define PROTO_DECLINE_CHECKPOINT "decline_checkpoint"
#define PROTO_CHECKPOINT_COMPLETE "checkpoint_complete"
#define PROTO_CHECKPOINT_ABORT "checkpoint_abort"

#define PROTO_ERR_NOT_LEADER "not leader"

/* Task (execution) states, as Flink names them. */
#define PROTO_TASK_DEPLOYING "DEPLOYING"
#define PROTO_TASK_RUNNING "RUNNING"
#define PROTO_TASK_FINISHED "FINISHED"
#define PROTO_TASK_CANCELING "CANCELING"
#define PROTO_TASK_CANCELED "CANCELED"
#define PROTO_TASK_FAILED "FAILED"
