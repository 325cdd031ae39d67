/* The worker's control plane: leader connection state machine, protocol handlers, slots
 * and tasks (see control.h). */
#include "worker/control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <msgpack.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hosts.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/proto.h"
#include "common/rpc.h"
#include "common/fsutil.h"
#include "worker/artifacts.h"
#include "worker/exchange.h"
#include "worker/ops.h"
#include "worker/task.h"

#define WRK_ADDR_MAX 256u
#define WRK_ERR_BYTES 512u
#define WRK_REMIND_FIRST_MS 10000u
#define WRK_REMIND_MAX_MS 300000u
#define WRK_REGISTER_TIMEOUT_MAX_MS 10000u
#define WRK_STOP_TICK_MS 20u
/* After the last task ended, how long final states may take to leave the socket. */
#define WRK_STOP_DRAIN_MS 1000u

struct task_entry {
        struct wrk_task *task;
        uint64_t seq;  /* creation order: the oldest finished tasks make room first */
        bool ended;    /* the terminal change was taken and the thread joined */
};

/* What a job's tasks were deployed and canceled at, as (leader epoch, attempt). */
struct job_fence {
        char job[ID_HEX_LEN + 1];
        uint64_t epoch;
        uint32_t attempt;
        bool canceled;
        uint64_t canceled_epoch;
        uint32_t canceled_attempt;
};

struct wrk_ctl {
        struct event_base *base;
        char resource_id[ID_HEX_LEN + 1];
        char host[256];
        char cluster_id[RPC_CLUSTER_MAX_BYTES + 1];
        char leader_hint[512];
        uint32_t slots;
        uint16_t data_port;          /* the data listener's real port */
        struct evconnlistener *data_listener;
        size_t max_frame_bytes;
        struct evdns_base *dns;
        uint32_t cfg_hb_interval_ms;
        uint32_t cfg_hb_timeout_ms;
        uint32_t hb_interval_ms;
        uint32_t hb_timeout_ms;
        FILE *out;
        FILE *err;
        struct sb_env *sb_env;
        char state_dir[4096];
        char checkpoints_dir[4096];
        uint64_t buffer_timeout_ms;
        uint64_t latency_interval_ms;
        int64_t checkpoint_interval_ms;
        bool checkpoint_at_least_once;

        enum wrk_conn_state state;
        bool leader_known;
        uint64_t leader_epoch;
        char leader_rpc[WRK_ADDR_MAX];
        char leader_host[WRK_ADDR_MAX];
        uint16_t leader_port;
        uint64_t highest_epoch;
        struct rpc_conn *conn;
        char conn_rpc[WRK_ADDR_MAX];
        uint32_t retry_ms;
        uint64_t last_send_ok_us;
        uint64_t waiting_since_us;
        uint32_t remind_ms;

        struct event *retry_ev;
        struct event *hb_ev;
        struct event *wake_ev;
        struct event *remind_ev;
        struct event *stop_ev;

        struct task_entry *tasks;
        size_t n_tasks;
        size_t max_tasks;
        uint64_t next_seq;
        struct job_fence *jobs;
        size_t n_jobs;

        bool stopping;
        bool stop_done;
        uint64_t stop_deadline_us;
        uint64_t drain_deadline_us;
        void (*done)(void *arg, bool clean);
        void *done_arg;
};

static void connect_now(struct wrk_ctl *c);
static void process_changes(struct wrk_ctl *c);
static void task_notify(void *arg);

const char *wrk_conn_state_name(enum wrk_conn_state s) {
        switch (s) {
        case WRK_CONN_NO_LEADER: return "NO_LEADER";
        case WRK_CONN_CONNECTING: return "CONNECTING";
        case WRK_CONN_REGISTERING: return "REGISTERING";
        case WRK_CONN_REGISTERED: return "REGISTERED";
        case WRK_CONN_RETRY_WAIT: return "RETRY_WAIT";
        case WRK_CONN_STOPPING: return "STOPPING";
        }
        return "UNKNOWN";
}

static void set_state(struct wrk_ctl *c, enum wrk_conn_state s, const char *why) {
        if (c->state == s)
                return;
        log_info("leader connection %s -> %s (%s)", wrk_conn_state_name(c->state),
                 wrk_conn_state_name(s), why);
        c->state = s;
}

/* A short token for a close reason, for `reason=` in events. */
static const char *close_reason(int reason) {
        switch (reason) {
        case 0: return "closed-by-peer";
        case -ECONNREFUSED: return "connection-refused";
        case -ECONNRESET: return "connection-reset";
        case -EPIPE: return "broken-pipe";
        case -EHOSTUNREACH: return "unreachable";
        case -ETIMEDOUT: return "timeout";
        case -EMSGSIZE: return "oversized-frame";
        case -EBADMSG: return "malformed-frame";
        case -EPROTO: return "protocol-mismatch";
        default: return "socket-error";
        }
}

/* ------------------------------------------------------------------------------------
 * Task table and job fences. */

static int cmp_version(uint64_t e1, uint32_t a1, uint64_t e2, uint32_t a2) {
        if (e1 != e2)
                return e1 < e2 ? -1 : 1;
        if (a1 != a2)
                return a1 < a2 ? -1 : 1;
        return 0;
}

static struct job_fence *find_job(struct wrk_ctl *c, const char *job) {
        for (size_t i = 0; i < c->n_jobs; i++)
                if (strcmp(c->jobs[i].job, job) == 0)
                        return &c->jobs[i];
        return NULL;
}

static bool job_has_tasks(const struct wrk_ctl *c, const char *job) {
        for (size_t i = 0; i < c->n_tasks; i++)
                if (strcmp(wrk_task_id(c->tasks[i].task)->job, job) == 0)
                        return true;
        return false;
}

/* Drops the fences of jobs that have no task left. */
static void prune_jobs(struct wrk_ctl *c) {
        for (size_t i = 0; i < c->n_jobs;) {
                if (!job_has_tasks(c, c->jobs[i].job)) {
                        c->jobs[i] = c->jobs[--c->n_jobs];
                        continue;
                }
                i++;
        }
}

static void remove_task_at(struct wrk_ctl *c, size_t i) {
        wrk_task_destroy(c->tasks[i].task);
        memmove(&c->tasks[i], &c->tasks[i + 1], (c->n_tasks - i - 1) * sizeof(c->tasks[0]));
        c->n_tasks--;
}

static size_t count_ended(const struct wrk_ctl *c) {
        size_t n = 0;
        for (size_t i = 0; i < c->n_tasks; i++)
                n += c->tasks[i].ended;
        return n;
}

/* Removes the oldest ended tasks until `need` more fit. */
static void make_room(struct wrk_ctl *c, size_t need) {
        while (c->n_tasks + need > c->max_tasks) {
                size_t oldest = SIZE_MAX;
                for (size_t i = 0; i < c->n_tasks; i++)
                        if (c->tasks[i].ended &&
                            (oldest == SIZE_MAX || c->tasks[i].seq < c->tasks[oldest].seq))
                                oldest = i;
                if (oldest == SIZE_MAX)
                        return;
                remove_task_at(c, oldest);
        }
}

size_t wrk_ctl_task_count(const struct wrk_ctl *c) {
        return c->n_tasks;
}

size_t wrk_ctl_live_task_count(const struct wrk_ctl *c) {
        return c->n_tasks - count_ended(c);
}

uint64_t wrk_ctl_highest_epoch(const struct wrk_ctl *c) {
        return c->highest_epoch;
}

enum wrk_conn_state wrk_ctl_conn_state(const struct wrk_ctl *c) {
        return c->state;
}

/* ------------------------------------------------------------------------------------
 * Messages to the leader. */

static void pack_task(msgpack_packer *pk, const struct wrk_task_id *id) {
        msg_pack_kv_str(pk, "job", id->job);
        msg_pack_kv_u64(pk, "attempt", id->attempt);
        msg_pack_kv_u64(pk, "vertex", id->vertex);
        msg_pack_kv_u64(pk, "subtask", id->subtask);
}

static void send_task_state(struct wrk_ctl *c, struct wrk_task *t,
                            const struct wrk_task_change *ch) {
        if (c->state != WRK_CONN_REGISTERED && !(c->stopping && c->conn))
                return;
        if (!c->conn || !rpc_conn_is_open(c->conn))
                return;
        bool failed = ch->state == WRK_TASK_FAILED;
        struct rpc_msg m;
        rpc_msg_init(&m, failed ? 9 : 8);
        pack_task(&m.pk, wrk_task_id(t));
        msg_pack_kv_str(&m.pk, "state", wrk_task_state_name(ch->state));
        if (failed)
                msg_pack_kv_str(&m.pk, "error", ch->error);
        msg_pack_kv_u64(&m.pk, "records_in", ch->records_in);
        msg_pack_kv_u64(&m.pk, "records_out", ch->records_out);
        msg_pack_kv_u64(&m.pk, "late_records_dropped", ch->late_records_dropped);
        int r = rpc_send(c->conn, PROTO_TASK_STATE, &m);
        rpc_msg_finish(&m);
        if (r < 0)
                log_debug("task state not sent to %s: %s (the next heartbeat carries it)",
                          c->conn_rpc, err_str(r));
        else
                c->last_send_ok_us = clock_mono_us();
}

/* PROTO_ACK_CHECKPOINT or PROTO_DECLINE_CHECKPOINT for one subtask's result. */
static void send_checkpoint_result(struct wrk_ctl *c, struct wrk_task *t,
                                   const struct wrk_ckpt_result *res) {
        const struct wrk_task_id *id = wrk_task_id(t);
        if (res->declined)
                log_event_warn("-checkpoint-declined", "job=%s vertex=%" PRIu32 " subtask=%"
                               PRIu32 " id=%" PRIu64 " reason=%s", id->job, id->vertex,
                               id->subtask, res->checkpoint_id, res->reason);
        else
                log_event("+checkpoint-acked", "job=%s vertex=%" PRIu32 " subtask=%" PRIu32
                          " id=%" PRIu64 " state_bytes=%" PRIu64 " incremental_bytes=%" PRIu64
                          " sync_ms=%" PRIu64 " async_ms=%" PRIu64 " alignment_ms=%" PRIu64,
                          id->job, id->vertex, id->subtask, res->checkpoint_id,
                          res->state_bytes, res->incremental_bytes, res->sync_ms,
                          res->async_ms, res->alignment_ms);
        if (c->state != WRK_CONN_REGISTERED || !c->conn || !rpc_conn_is_open(c->conn))
                return; /* the leader times the checkpoint out */
        struct rpc_msg m;
        rpc_msg_init(&m, res->declined ? 6 : 12);
        pack_task(&m.pk, id);
        msg_pack_kv_u64(&m.pk, "checkpoint", res->checkpoint_id);
        if (res->declined) {
                msg_pack_kv_str(&m.pk, "reason", res->reason);
        } else {
                msg_pack_kv_bin(&m.pk, "state", res->state, res->state_len);
                msg_pack_kv_u64(&m.pk, "state_bytes", res->state_bytes);
                msg_pack_kv_u64(&m.pk, "incremental_bytes", res->incremental_bytes);
                msg_pack_kv_u64(&m.pk, "sync_ms", res->sync_ms);
                msg_pack_kv_u64(&m.pk, "async_ms", res->async_ms);
                msg_pack_kv_u64(&m.pk, "alignment_ms", res->alignment_ms);
                msg_pack_kv_u64(&m.pk, "alignment_bytes", res->alignment_bytes);
        }
        int r = rpc_send(c->conn, res->declined ? PROTO_DECLINE_CHECKPOINT
                                                : PROTO_ACK_CHECKPOINT, &m);
        rpc_msg_finish(&m);
        if (r < 0)
                log_warn("checkpoint %" PRIu64 " result not sent to %s: %s",
                         res->checkpoint_id, c->conn_rpc, err_str(r));
        else
                c->last_send_ok_us = clock_mono_us();
}

static void drop_connection(struct wrk_ctl *c) {
        struct rpc_conn *conn = c->conn;
        c->conn = NULL;
        event_del(c->hb_ev);
        rpc_conn_close(conn);
}

static void enter_no_leader(struct wrk_ctl *c, const char *why) {
        set_state(c, WRK_CONN_NO_LEADER, why);
        c->waiting_since_us = clock_mono_us();
        c->remind_ms = WRK_REMIND_FIRST_MS;
        log_info("waiting for a leader%s%s", c->leader_hint[0] ? ": " : "", c->leader_hint);
        struct timeval tv = {.tv_sec = c->remind_ms / 1000, .tv_usec = 0};
        evtimer_add(c->remind_ev, &tv);
}

static void schedule_retry(struct wrk_ctl *c, const char *why) {
        set_state(c, WRK_CONN_RETRY_WAIT, why);
        log_info("retrying the leader %s in %" PRIu32 " ms", c->leader_rpc, c->retry_ms);
        struct timeval tv = {.tv_sec = c->retry_ms / 1000,
                             .tv_usec = (suseconds_t)(c->retry_ms % 1000) * 1000};
        evtimer_add(c->retry_ev, &tv);
        c->retry_ms = c->retry_ms * 2 > WRK_RETRY_MAX_MS ? WRK_RETRY_MAX_MS : c->retry_ms * 2;
}

/* The connection is gone (closed by the peer, failed, or closed by us after an error):
 * what next. */
static void after_disconnect(struct wrk_ctl *c, const char *why) {
        event_del(c->hb_ev);
        if (c->stopping)
                return;
        if (c->leader_known)
                schedule_retry(c, why);
        else
                enter_no_leader(c, why);
}

/* Closes the connection on our side for a reason of ours. */
static void close_for(struct wrk_ctl *c, const char *reason) {
        if (c->state == WRK_CONN_REGISTERING || c->state == WRK_CONN_REGISTERED)
                log_event_warn("-leader-connection-lost", "leader=%s reason=%s", c->conn_rpc,
                               reason);
        drop_connection(c);
        after_disconnect(c, reason);
}

static void send_heartbeat(struct wrk_ctl *c) {
        if (!c->conn || c->state != WRK_CONN_REGISTERED)
                return;
        struct rpc_msg m;
        rpc_msg_init(&m, 2);
        msg_pack_kv_str(&m.pk, "resource_id", c->resource_id);
        msg_pack_cstr(&m.pk, "tasks");
        msgpack_pack_array(&m.pk, c->n_tasks);
        for (size_t i = 0; i < c->n_tasks; i++) {
                struct wrk_task *t = c->tasks[i].task;
                const struct wrk_task_id *id = wrk_task_id(t);
                struct wrk_task_change rep;
                wrk_task_report(t, &rep);
                bool lat = rep.latency.count > 0;
                msgpack_pack_map(&m.pk, lat ? 10 : 9);
                pack_task(&m.pk, id);
                msg_pack_kv_u64(&m.pk, "slot", id->slot);
                msg_pack_kv_str(&m.pk, "state", wrk_task_state_name(rep.state));
                msg_pack_kv_u64(&m.pk, "records_in", rep.records_in);
                msg_pack_kv_u64(&m.pk, "records_out", rep.records_out);
                msg_pack_kv_u64(&m.pk, "late_records_dropped", rep.late_records_dropped);
                if (lat) {
                        /* a sink's latency from markers (ops.h), microseconds */
                        msg_pack_cstr(&m.pk, "latency");
                        msgpack_pack_map(&m.pk, 7);
                        msg_pack_kv_u64(&m.pk, "count", rep.latency.count);
                        msg_pack_kv_u64(&m.pk, "min_us", rep.latency.min_us);
                        msg_pack_kv_u64(&m.pk, "max_us", rep.latency.max_us);
                        msg_pack_kv_u64(&m.pk, "mean_us", rep.latency.mean_us);
                        msg_pack_kv_u64(&m.pk, "p50_us", rep.latency.p50_us);
                        msg_pack_kv_u64(&m.pk, "p95_us", rep.latency.p95_us);
                        msg_pack_kv_u64(&m.pk, "p99_us", rep.latency.p99_us);
                }
        }
        int r = rpc_send(c->conn, PROTO_HEARTBEAT, &m);
        rpc_msg_finish(&m);
        uint64_t now = clock_mono_us();
        if (r == 0) {
                c->last_send_ok_us = now;
                return;
        }
        if (r == -ENOBUFS) {
                if (now - c->last_send_ok_us > (uint64_t)c->hb_timeout_ms * 1000u) {
                        log_warn("the leader %s has read nothing for %" PRIu32 " ms",
                                 c->conn_rpc, c->hb_timeout_ms);
                        close_for(c, "leader-not-reading");
                }
                return;
        }
        log_error(r, "heartbeat to %s not sent", c->conn_rpc);
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        send_heartbeat(arg);
}

static void start_heartbeats(struct wrk_ctl *c) {
        struct timeval tv = {.tv_sec = c->hb_interval_ms / 1000,
                             .tv_usec = (suseconds_t)(c->hb_interval_ms % 1000) * 1000};
        event_del(c->hb_ev);
        event_add(c->hb_ev, &tv);
}

/* ------------------------------------------------------------------------------------
 * Epochs. */

static void reject_stale(struct wrk_ctl *c, uint64_t epoch, const char *type) {
        log_event_warn("-rejected-stale-epoch", "epoch=%" PRIu64 " highest=%" PRIu64 " type=%s",
                       epoch, c->highest_epoch, type);
}

/* Checks the epoch of a coordinator message; answers a request that fails. */
static bool check_epoch(struct wrk_ctl *c, struct rpc_conn *conn, const char *type,
                        uint64_t id, const msgpack_object *map, uint64_t *ret_epoch) {
        uint64_t epoch;
        char text[128];
        if (rpc_msg_epoch(map, &epoch) < 0) {
                log_warn("%s from %s without a valid epoch dropped", type, rpc_conn_peer(conn));
                if (id)
                        rpc_reply_error(conn, id, "field epoch: required (a uint)");
                return false;
        }
        if (epoch < c->highest_epoch) {
                reject_stale(c, epoch, type);
                if (id) {
                        snprintf(text, sizeof(text), "stale epoch %" PRIu64 " < %" PRIu64, epoch,
                                 c->highest_epoch);
                        rpc_reply_error(conn, id, text);
                }
                return false;
        }
        if (epoch > c->highest_epoch)
                c->highest_epoch = epoch;
        *ret_epoch = epoch;
        return true;
}

/* ------------------------------------------------------------------------------------
 * Coordinator requests. */

static const char *field_problem(int r) {
        return r == -ENOENT ? "required" : r == -ENAMETOOLONG ? "too long" : "wrong type";
}

static void refuse(struct wrk_ctl *c, struct rpc_conn *conn, uint64_t id, const char *job,
                   uint32_t attempt, const char *why) {
        log_event_warn("-deploy-refused", "job=%s attempt=%" PRIu32 " reason=%s", job, attempt,
                       why);
        rpc_reply_error(conn, id, why);
}

/* Reads and checks `job`: 0 or a negative errno with the reason in err. */
static int get_job(const msgpack_object *map, char job[ID_HEX_LEN + 1], char *err,
                   size_t err_len) {
        struct flinc_id jid;
        int r = msg_get_strbuf(map, "job", job, ID_HEX_LEN + 1);
        if (r < 0) {
                snprintf(err, err_len, "field job: %s (32 hex digits)", field_problem(r));
                job[0] = '\0';
                return -EINVAL;
        }
        if (id_parse(job, &jid) < 0) {
                snprintf(err, err_len, "field job: expected 32 hex digits");
                job[0] = '\0';
                return -EINVAL;
        }
        for (char *p = job; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                        *p = (char)(*p - 'A' + 'a');
        return 0;
}

struct req_task {
        uint32_t vertex;
        uint32_t subtask;
        uint32_t slot;
        bool skip; /* already running as asked */
        const msgpack_object *restore; /* array of bin, or NULL */
};

#define WRK_MAX_RESTORE_STATES 32768u

static int route_peers(struct wrk_ctl *c, const struct job_graph *g, const msgpack_object *map,
                       const char *job, uint32_t attempt, char *err, size_t err_len);

static bool is_superseded(const struct wrk_task_id *id, const char *job, uint64_t epoch,
                          uint32_t attempt) {
        return strcmp(id->job, job) == 0 &&
               cmp_version(id->epoch, id->attempt, epoch, attempt) < 0;
}

/* Removes the local copies of an attempt's artifacts (artifacts.h) once no task of
 * that attempt runs here. */
static void artifacts_gc(struct wrk_ctl *c, const char *job, uint64_t epoch, uint32_t attempt) {
        char dir[sizeof(c->state_dir) + 128];
        if (!c->state_dir[0] ||
            wrk_artifacts_dir(c->state_dir, job, epoch, attempt, dir, sizeof(dir)) < 0)
                return;
        for (size_t k = 0; k < c->n_tasks; k++) {
                const struct wrk_task_id *e = wrk_task_id(c->tasks[k].task);
                if (!c->tasks[k].ended && strcmp(e->job, job) == 0 && e->epoch == epoch &&
                    e->attempt == attempt)
                        return;
        }
        if (access(dir, F_OK) != 0)
                return;
        int r = fs_rm_rf(dir);
        if (r < 0)
                log_warn("cannot remove the artifacts of job %s attempt %" PRIu32 " (%s): %s",
                         job, attempt, dir, err_str(r));
}

static void handle_deploy(struct wrk_ctl *c, struct rpc_conn *conn, uint64_t id,
                          const msgpack_object *map, uint64_t epoch) {
        char err[WRK_ERR_BYTES] = "";
        char art_dir[sizeof(c->state_dir) + 128] = "";
        char job[ID_HEX_LEN + 1] = "";
        uint32_t attempt = 0;
        struct req_task *req = NULL;
        struct wrk_task **created = NULL;
        struct job_graph *g = NULL;
        struct wrk_graph *wg = NULL;
        const void *gbytes;
        size_t glen, n = 0, n_new = 0;
        const msgpack_object *arr;
        int r;

        if (c->stopping) {
                snprintf(err, sizeof(err), "the worker is shutting down");
                goto refuse;
        }
        if (get_job(map, job, err, sizeof(err)) < 0)
                goto refuse;
        if ((r = msg_get_u32(map, "attempt", &attempt)) < 0 || attempt == 0) {
                snprintf(err, sizeof(err), "field attempt: %s (a uint >= 1)",
                         r < 0 ? field_problem(r) : "zero");
                goto refuse;
        }
        if ((r = msg_get_bin(map, "graph", &gbytes, &glen)) < 0) {
                snprintf(err, sizeof(err), "field graph: %s (job graph bytes)", field_problem(r));
                goto refuse;
        }
        if ((r = msg_get_array(map, "tasks", &arr)) < 0) {
                snprintf(err, sizeof(err), "field tasks: %s (a list)", field_problem(r));
                goto refuse;
        }
        n = arr->via.array.size;
        if (n == 0 || n > c->max_tasks) {
                snprintf(err, sizeof(err), "field tasks: %zu tasks; a deployment names 1..%zu",
                         n, c->max_tasks);
                goto refuse;
        }
        uint64_t restored_checkpoint = 0;
        if ((r = msg_get_u64(map, "restored_checkpoint", &restored_checkpoint)) < 0 &&
            r != -ENOENT) {
                snprintf(err, sizeof(err), "field restored_checkpoint: %s (a uint)",
                         field_problem(r));
                goto refuse;
        }
        char restore_dir[4096] = "";
        if ((r = msg_get_strbuf(map, "restore_dir", restore_dir, sizeof(restore_dir))) < 0 &&
            r != -ENOENT) {
                snprintf(err, sizeof(err), "field restore_dir: %s (a path)", field_problem(r));
                goto refuse;
        }
        req = calloc(n, sizeof(*req));
        created = calloc(n, sizeof(*created));
        if (!req || !created) {
                snprintf(err, sizeof(err), "out of memory");
                goto refuse;
        }
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *t = &arr->via.array.ptr[i];
                if (t->type != MSGPACK_OBJECT_MAP) {
                        snprintf(err, sizeof(err), "tasks[%zu]: expected a map", i);
                        goto refuse;
                }
                const char *bad = NULL;
                if ((r = msg_get_u32(t, "vertex", &req[i].vertex)) < 0)
                        bad = "vertex";
                else if ((r = msg_get_u32(t, "subtask", &req[i].subtask)) < 0)
                        bad = "subtask";
                else if ((r = msg_get_u32(t, "slot", &req[i].slot)) < 0)
                        bad = "slot";
                if (bad) {
                        snprintf(err, sizeof(err), "tasks[%zu].%s: %s (a uint)", i, bad,
                                 field_problem(r));
                        goto refuse;
                }
                const msgpack_object *ra = msg_map_get(t, "restore");
                if (ra && ra->type != MSGPACK_OBJECT_NIL) {
                        bool ok = ra->type == MSGPACK_OBJECT_ARRAY &&
                                  ra->via.array.size <= WRK_MAX_RESTORE_STATES;
                        for (uint32_t k = 0; ok && k < ra->via.array.size; k++)
                                ok = ra->via.array.ptr[k].type == MSGPACK_OBJECT_BIN;
                        if (!ok) {
                                snprintf(err, sizeof(err), "tasks[%zu].restore: expected a "
                                         "list of at most %u bin", i, WRK_MAX_RESTORE_STATES);
                                goto refuse;
                        }
                        req[i].restore = ra;
                }
        }

        /* The graph, and whether this worker can run all of it. */
        char why[WRK_ERR_BYTES - 64];
        r = job_graph_decode(gbytes, glen, &g, why, sizeof(why));
        if (r < 0) {
                snprintf(err, sizeof(err), "bad job graph: %s", why);
                goto refuse;
        }
        if (!id_is_zero(&g->id)) {
                char gid[ID_HEX_LEN + 1];
                id_format(&g->id, gid);
                if (strcmp(gid, job) != 0) {
                        snprintf(err, sizeof(err), "the graph is of job %s, not %s", gid, job);
                        goto refuse;
                }
        }
        for (uint32_t ch = 0; ch < g->n_chains; ch++) {
                if (wrk_chain_check(g, ch, why, sizeof(why)) < 0) {
                        snprintf(err, sizeof(err), "%s", why);
                        goto refuse;
                }
        }
        if (route_peers(c, g, map, job, attempt, why, sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "%s", why);
                goto refuse;
        }

        /* Attempts: nothing older than what runs or was canceled. */
        struct job_fence *f = find_job(c, job);
        if (f && cmp_version(epoch, attempt, f->epoch, f->attempt) < 0) {
                snprintf(err, sizeof(err), "attempt %" PRIu32 " (epoch %" PRIu64 ") is older than "
                         "attempt %" PRIu32 " (epoch %" PRIu64 ") of this job on this worker",
                         attempt, epoch, f->attempt, f->epoch);
                goto refuse;
        }
        if (f && f->canceled &&
            cmp_version(epoch, attempt, f->canceled_epoch, f->canceled_attempt) <= 0) {
                snprintf(err, sizeof(err), "attempt %" PRIu32 " (epoch %" PRIu64 ") of this job "
                         "was canceled", attempt, epoch);
                goto refuse;
        }

        /* Each task: it exists, its slot is ours and not busy with another job, and no
         * slot gets two subtasks of one vertex. */
        for (size_t i = 0; i < n; i++) {
                struct req_task *q = &req[i];
                if (q->vertex >= g->n_chains) {
                        snprintf(err, sizeof(err), "tasks[%zu]: vertex %" PRIu32 " does not exist "
                                 "(the job has %zu)", i, q->vertex, g->n_chains);
                        goto refuse;
                }
                uint32_t p = g->chains[q->vertex].parallelism;
                if (q->subtask >= p) {
                        snprintf(err, sizeof(err), "tasks[%zu]: subtask %" PRIu32 " of vertex %"
                                 PRIu32 " does not exist (parallelism %" PRIu32 ")", i,
                                 q->subtask, q->vertex, p);
                        goto refuse;
                }
                if (q->slot >= c->slots) {
                        snprintf(err, sizeof(err), "tasks[%zu]: slot %" PRIu32 " does not exist "
                                 "(this worker has %" PRIu32 ")", i, q->slot, c->slots);
                        goto refuse;
                }
                for (size_t j = 0; j < i; j++) {
                        if (req[j].vertex == q->vertex && req[j].subtask == q->subtask) {
                                snprintf(err, sizeof(err), "tasks[%zu]: subtask %" PRIu32
                                         " of vertex %" PRIu32 " is named twice", i, q->subtask,
                                         q->vertex);
                                goto refuse;
                        }
                        if (req[j].vertex == q->vertex && req[j].slot == q->slot) {
                                snprintf(err, sizeof(err), "tasks[%zu]: slot %" PRIu32 " would run "
                                         "two subtasks of vertex %" PRIu32, i, q->slot, q->vertex);
                                goto refuse;
                        }
                }
                for (size_t k = 0; k < c->n_tasks; k++) {
                        if (c->tasks[k].ended)
                                continue;
                        const struct wrk_task_id *e = wrk_task_id(c->tasks[k].task);
                        if (e->slot != q->slot)
                                continue;
                        if (strcmp(e->job, job) != 0) {
                                snprintf(err, sizeof(err), "slot %" PRIu32 " is busy with job %s",
                                         q->slot, e->job);
                                goto refuse;
                        }
                        if (is_superseded(e, job, epoch, attempt) ||
                            e->vertex != q->vertex)
                                continue;
                        if (e->subtask == q->subtask) {
                                q->skip = true; /* the same deployment again */
                        } else {
                                snprintf(err, sizeof(err), "slot %" PRIu32 " already runs subtask %"
                                         PRIu32 " of vertex %" PRIu32, q->slot, e->subtask,
                                         e->vertex);
                                goto refuse;
                        }
                }
                if (!q->skip) {
                        for (size_t k = 0; k < c->n_tasks; k++) {
                                const struct wrk_task_id *e = wrk_task_id(c->tasks[k].task);
                                if (!c->tasks[k].ended && strcmp(e->job, job) == 0 &&
                                    e->epoch == epoch && e->attempt == attempt &&
                                    e->vertex == q->vertex && e->subtask == q->subtask) {
                                        snprintf(err, sizeof(err), "subtask %" PRIu32 " of vertex %"
                                                 PRIu32 " already runs in slot %" PRIu32,
                                                 q->subtask, q->vertex, e->slot);
                                        goto refuse;
                                }
                        }
                        n_new++;
                }
        }
        /* Room in the task table: superseded finished tasks go, then the oldest finished. */
        size_t dropping = 0;
        for (size_t k = 0; k < c->n_tasks; k++)
                dropping += c->tasks[k].ended;
        if (c->n_tasks - dropping + n_new > c->max_tasks) {
                snprintf(err, sizeof(err), "this worker keeps at most %zu tasks (%zu run now)",
                         c->max_tasks, c->n_tasks - dropping);
                goto refuse;
        }

        /* The job's UDF libraries from storage, into a local directory of the attempt. */
        if (wrk_artifacts_needed(g)) {
                if (!c->state_dir[0] || wrk_artifacts_dir(c->state_dir, job, epoch, attempt,
                                                          art_dir, sizeof(art_dir)) < 0) {
                        art_dir[0] = '\0';
                        snprintf(err, sizeof(err), "no local directory for the job's artifacts");
                        goto refuse;
                }
                if (wrk_artifacts_fetch(g, art_dir, why, sizeof(why)) < 0) {
                        snprintf(err, sizeof(err), "%s", why);
                        goto refuse;
                }
        }
        r = wrk_graph_create(g, &wg);
        g = NULL;
        if (r < 0) {
                snprintf(err, sizeof(err), "out of memory");
                goto refuse;
        }
        char job_dir[sizeof(c->checkpoints_dir) + ID_HEX_LEN + 2];
        snprintf(job_dir, sizeof(job_dir), "%s/%s", c->checkpoints_dir, job);
        struct wrk_task_options topts = {.notify = task_notify, .notify_arg = c, .out = c->out,
                                         .err = c->err, .sb_env = c->sb_env,
                                         .state_dir = c->state_dir[0] ? c->state_dir : NULL,
                                         .buffer_timeout_ms = c->buffer_timeout_ms,
                                         .latency_interval_ms = c->latency_interval_ms,
                                         .job_checkpoint_dir =
                                                 c->checkpoints_dir[0] ? job_dir : NULL,
                                         .restored_checkpoint = restored_checkpoint,
                                         .restore_dir = restore_dir,
                                         .default_checkpoint_interval_ms =
                                                 c->checkpoint_interval_ms,
                                         .default_at_least_once =
                                                 c->checkpoint_at_least_once};
        size_t n_created = 0;
        for (size_t i = 0; i < n; i++) {
                if (req[i].skip)
                        continue;
                struct wrk_task_id tid = {.epoch = epoch, .attempt = attempt,
                                          .vertex = req[i].vertex, .subtask = req[i].subtask,
                                          .slot = req[i].slot};
                memcpy(tid.job, job, sizeof(tid.job));
                const void *rdata[64];
                size_t rlen[64];
                const void **rd = rdata;
                size_t *rl = rlen;
                struct wrk_bytes_list rlist = {0};
                size_t nr = req[i].restore ? req[i].restore->via.array.size : 0;
                if (nr > 64) {
                        rd = calloc(nr, sizeof(*rd));
                        rl = calloc(nr, sizeof(*rl));
                        if (!rd || !rl) {
                                free(rd);
                                free(rl);
                                snprintf(err, sizeof(err), "out of memory");
                                for (size_t k = 0; k < n_created; k++)
                                        wrk_task_destroy(created[k]);
                                goto refuse;
                        }
                }
                for (size_t k = 0; k < nr; k++) {
                        rd[k] = req[i].restore->via.array.ptr[k].via.bin.ptr;
                        rl[k] = req[i].restore->via.array.ptr[k].via.bin.size;
                }
                rlist = (struct wrk_bytes_list){.data = rd, .len = rl, .n = nr};
                topts.restore = nr ? &rlist : NULL;
                r = wrk_task_create(&tid, wg, &topts, &created[n_created], why, sizeof(why));
                if (rd != rdata) {
                        free(rd);
                        free(rl);
                }
                if (r < 0) {
                        snprintf(err, sizeof(err), "%s", why);
                        for (size_t k = 0; k < n_created; k++)
                                wrk_task_destroy(created[k]);
                        goto refuse;
                }
                n_created++;
        }

        /* Commit: older attempts of the job stop, their finished tasks go. */
        size_t superseded = 0;
        for (size_t k = 0; k < c->n_tasks;) {
                struct task_entry *e = &c->tasks[k];
                if (!is_superseded(wrk_task_id(e->task), job, epoch, attempt)) {
                        k++;
                        continue;
                }
                superseded++;
                if (e->ended) {
                        remove_task_at(c, k);
                        continue;
                }
                wrk_task_cancel(e->task);
                k++;
        }
        make_room(c, n_created);
        prune_jobs(c);
        f = find_job(c, job);
        if (!f) {
                f = &c->jobs[c->n_jobs++];
                memset(f, 0, sizeof(*f));
                memcpy(f->job, job, sizeof(f->job));
        }
        f->epoch = epoch;
        f->attempt = attempt;
        log_event("+deploy", "job=%s attempt=%" PRIu32 " epoch=%" PRIu64 " tasks=%zu new=%zu "
                  "superseded=%zu graph='%s'", job, attempt, epoch, n, n_created, superseded,
                  wg->g->name);
        for (size_t i = 0; i < n_created; i++) {
                c->tasks[c->n_tasks++] = (struct task_entry){.task = created[i],
                                                             .seq = c->next_seq++};
        }
        /* Start after the table holds them: a thread may report at once. */
        for (size_t i = 0; i < n_created; i++) {
                r = wrk_task_start(created[i]);
                if (r < 0) {
                        const struct wrk_task_id *tid = wrk_task_id(created[i]);
                        log_error(r, "task vertex=%" PRIu32 " subtask=%" PRIu32 " of job %s "
                                  "did not start", tid->vertex, tid->subtask, job);
                }
        }
        rpc_reply(conn, id, NULL);
        free(req);
        free(created);
        wrk_graph_unref(wg);
        prune_jobs(c);
        process_changes(c);
        return;
refuse:
        refuse(c, conn, id, job[0] ? job : "?", attempt, err);
        if (art_dir[0])
                artifacts_gc(c, job, epoch, attempt);
        job_graph_free(g);
        wrk_graph_unref(wg);
        free(req);
        free(created);
}

static void handle_cancel(struct wrk_ctl *c, struct rpc_conn *conn, uint64_t id,
                          const msgpack_object *map, uint64_t epoch) {
        char err[WRK_ERR_BYTES];
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        int r;
        if (get_job(map, job, err, sizeof(err)) < 0) {
                rpc_reply_error(conn, id, err);
                return;
        }
        if ((r = msg_get_u32(map, "attempt", &attempt)) < 0) {
                snprintf(err, sizeof(err), "field attempt: %s (a uint)", field_problem(r));
                rpc_reply_error(conn, id, err);
                return;
        }
        size_t canceled = 0;
        for (size_t k = 0; k < c->n_tasks; k++) {
                struct task_entry *e = &c->tasks[k];
                const struct wrk_task_id *tid = wrk_task_id(e->task);
                if (e->ended || strcmp(tid->job, job) != 0 ||
                    cmp_version(tid->epoch, tid->attempt, epoch, attempt) > 0)
                        continue;
                wrk_task_cancel(e->task);
                canceled++;
        }
        struct job_fence *f = find_job(c, job);
        if (f && (!f->canceled || cmp_version(epoch, attempt, f->canceled_epoch,
                                              f->canceled_attempt) > 0)) {
                f->canceled = true;
                f->canceled_epoch = epoch;
                f->canceled_attempt = attempt;
        }
        log_event("+cancel", "job=%s attempt=%" PRIu32 " epoch=%" PRIu64 " tasks=%zu", job,
                  attempt, epoch, canceled);
        rpc_reply(conn, id, NULL);
        process_changes(c);
}

/* PROTO_TRIGGER_CHECKPOINT, PROTO_CHECKPOINT_COMPLETE, PROTO_CHECKPOINT_ABORT: handed
 * to the job attempt's tasks, which act on them between steps. */
static void handle_checkpoint_msg(struct wrk_ctl *c, const char *type,
                                  const msgpack_object *map) {
        char err[WRK_ERR_BYTES];
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        uint64_t n;
        bool savepoint = false;
        if (get_job(map, job, err, sizeof(err)) < 0 ||
            msg_get_u32(map, "attempt", &attempt) < 0 ||
            msg_get_u64(map, "checkpoint", &n) < 0 || n == 0) {
                log_warn("%s dropped: needs job, attempt and checkpoint >= 1", type);
                return;
        }
        (void)msg_get_bool(map, "savepoint", &savepoint);
        enum wrk_ckpt_event ev = strcmp(type, PROTO_TRIGGER_CHECKPOINT) == 0 ? WRK_CKPT_TRIGGER
                                 : strcmp(type, PROTO_CHECKPOINT_COMPLETE) == 0
                                         ? WRK_CKPT_COMPLETE : WRK_CKPT_ABORT;
        size_t tasks = 0;
        for (size_t k = 0; k < c->n_tasks; k++) {
                struct task_entry *e = &c->tasks[k];
                const struct wrk_task_id *tid = wrk_task_id(e->task);
                if (e->ended || tid->attempt != attempt || strcmp(tid->job, job) != 0)
                        continue;
                wrk_task_checkpoint_event(e->task, ev, n, savepoint);
                tasks++;
        }
        log_debug("%s job=%s attempt=%" PRIu32 " checkpoint=%" PRIu64 " tasks=%zu", type, job,
                  attempt, n, tasks);
}

static void handle_free_job(struct wrk_ctl *c, const msgpack_object *map) {
        char err[WRK_ERR_BYTES];
        char job[ID_HEX_LEN + 1];
        if (get_job(map, job, err, sizeof(err)) < 0) {
                log_warn("free_job dropped: %s", err);
                return;
        }
        size_t freed = 0, canceled = 0;
        for (size_t k = 0; k < c->n_tasks;) {
                struct task_entry *e = &c->tasks[k];
                if (strcmp(wrk_task_id(e->task)->job, job) != 0) {
                        k++;
                        continue;
                }
                if (e->ended) {
                        remove_task_at(c, k);
                        freed++;
                        continue;
                }
                wrk_task_cancel(e->task);
                canceled++;
                k++;
        }
        prune_jobs(c);
        wrk_exchange_forget_job(job);
        log_event("+free-job", "job=%s freed=%zu canceled=%zu", job, freed, canceled);
        if (canceled)
                process_changes(c);
}

/* ------------------------------------------------------------------------------------
 * Connection callbacks. */

static void on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                       const msgpack_object *map, void *arg) {
        struct wrk_ctl *c = arg;
        uint64_t epoch;
        if (conn != c->conn)
                return;
        bool deploy = strcmp(type, PROTO_DEPLOY) == 0, cancel = strcmp(type, PROTO_CANCEL) == 0,
             free_job = strcmp(type, PROTO_FREE_JOB) == 0,
             ckpt = strcmp(type, PROTO_TRIGGER_CHECKPOINT) == 0 ||
                    strcmp(type, PROTO_CHECKPOINT_COMPLETE) == 0 ||
                    strcmp(type, PROTO_CHECKPOINT_ABORT) == 0;
        if (!deploy && !cancel && !free_job && !ckpt) {
                log_warn("unknown message type '%s' from %s", type, rpc_conn_peer(conn));
                if (id)
                        rpc_reply_error(conn, id, "unknown message type");
                return;
        }
        if ((deploy || cancel) && id == 0) {
                log_warn("%s from %s is not a request (id 0); dropped", type,
                         rpc_conn_peer(conn));
                return;
        }
        if (!check_epoch(c, conn, type, id, map, &epoch))
                return;
        if (deploy)
                handle_deploy(c, conn, id, map, epoch);
        else if (cancel)
                handle_cancel(c, conn, id, map, epoch);
        else if (ckpt)
                handle_checkpoint_msg(c, type, map);
        else
                handle_free_job(c, map);
}

static void on_register_done(struct rpc_conn *conn, int error, const msgpack_object *resp,
                             void *arg) {
        struct wrk_ctl *c = arg;
        if (conn != c->conn || c->state != WRK_CONN_REGISTERING)
                return;
        if (error == -ECONNRESET || error == -ECANCELED)
                return; /* on_close follows, or we closed it */
        if (error == -EREMOTEIO) {
                const char *text = "";
                size_t len = 0;
                rpc_response_error(resp, &text, &len);
                int shown = len > 200 ? 200 : (int)len;
                if (len == strlen(PROTO_ERR_NOT_LEADER) &&
                    memcmp(text, PROTO_ERR_NOT_LEADER, len) == 0)
                        log_info("%s is not the leader (any more)", c->conn_rpc);
                else
                        log_warn("registration at %s refused: %.*s", c->conn_rpc, shown, text);
                drop_connection(c);
                after_disconnect(c, "registration-refused");
                return;
        }
        if (error < 0) {
                log_warn("registration at %s failed: %s", c->conn_rpc, err_str(error));
                drop_connection(c);
                after_disconnect(c, "registration-failed");
                return;
        }
        uint64_t epoch;
        if (rpc_msg_epoch(resp, &epoch) < 0) {
                log_warn("registration response of %s has no epoch", c->conn_rpc);
                drop_connection(c);
                after_disconnect(c, "registration-failed");
                return;
        }
        if (epoch < c->highest_epoch) {
                reject_stale(c, epoch, PROTO_REGISTER);
                drop_connection(c);
                /* An old leader: wait for the retrieval to name the new one. */
                c->leader_known = false;
                enter_no_leader(c, "stale-leader");
                return;
        }
        c->highest_epoch = epoch;
        uint32_t interval = 0, timeout = 0;
        if (msg_get_u32(resp, "heartbeat_interval_ms", &interval) < 0 || interval == 0 ||
            interval > 3600000u || msg_get_u32(resp, "heartbeat_timeout_ms", &timeout) < 0 ||
            timeout <= interval) {
                log_warn("registration response of %s has no valid heartbeat_interval_ms / "
                         "heartbeat_timeout_ms; using heartbeat.interval %" PRIu32 " ms and "
                         "heartbeat.timeout %" PRIu32 " ms", c->conn_rpc, c->cfg_hb_interval_ms,
                         c->cfg_hb_timeout_ms);
                interval = c->cfg_hb_interval_ms;
                timeout = c->cfg_hb_timeout_ms;
        }
        c->hb_interval_ms = interval;
        c->hb_timeout_ms = timeout;
        c->retry_ms = WRK_RETRY_MIN_MS;
        set_state(c, WRK_CONN_REGISTERED, "registered");
        log_event("+registered", "leader=%s epoch=%" PRIu64 " heartbeat_interval_ms=%" PRIu32
                  " tasks=%zu", c->conn_rpc, epoch, interval, c->n_tasks);
        c->last_send_ok_us = clock_mono_us();
        send_heartbeat(c);
        if (c->conn)
                start_heartbeats(c);
        process_changes(c);
}

static void on_connected(struct rpc_conn *conn, void *arg) {
        struct wrk_ctl *c = arg;
        if (conn != c->conn)
                return;
        set_state(c, WRK_CONN_REGISTERING, "connected");
        struct rpc_msg m;
        rpc_msg_init(&m, 5);
        msg_pack_kv_str(&m.pk, "resource_id", c->resource_id);
        msg_pack_kv_str(&m.pk, "host", c->host);
        msg_pack_kv_u64(&m.pk, "data_port", c->data_port);
        msg_pack_kv_u64(&m.pk, "slots", c->slots);
        msg_pack_kv_u64(&m.pk, "pid", (uint64_t)getpid());
        uint32_t timeout = c->cfg_hb_timeout_ms < WRK_REGISTER_TIMEOUT_MAX_MS
                                   ? c->cfg_hb_timeout_ms
                                   : WRK_REGISTER_TIMEOUT_MAX_MS;
        int r = rpc_call(conn, PROTO_REGISTER, &m, timeout, on_register_done, c);
        rpc_msg_finish(&m);
        if (r < 0) {
                log_error(r, "registration at %s not sent", c->conn_rpc);
                drop_connection(c);
                after_disconnect(c, "registration-failed");
        }
}

static void on_close(struct rpc_conn *conn, int reason, void *arg) {
        struct wrk_ctl *c = arg;
        if (conn != c->conn)
                return;
        c->conn = NULL;
        event_del(c->hb_ev);
        if (c->state == WRK_CONN_CONNECTING) {
                log_info("cannot reach the leader %s: %s", c->conn_rpc,
                         reason ? err_str(reason) : "closed during the hello");
                after_disconnect(c, close_reason(reason));
                return;
        }
        log_event_warn("-leader-connection-lost", "leader=%s reason=%s", c->conn_rpc,
                       close_reason(reason));
        after_disconnect(c, close_reason(reason));
}

static void connect_now(struct wrk_ctl *c) {
        struct rpc_options o = {.cluster_id = c->cluster_id, .role = "worker",
                                .name = c->resource_id, .max_frame_bytes = c->max_frame_bytes,
                                .dns = c->dns};
        struct rpc_conn_callbacks cbs = {.on_connected = on_connected,
                                         .on_message = on_message, .on_close = on_close};
        struct rpc_conn *conn = NULL;
        event_del(c->retry_ev);
        event_del(c->remind_ev);
        snprintf(c->conn_rpc, sizeof(c->conn_rpc), "%s", c->leader_rpc);
        set_state(c, WRK_CONN_CONNECTING, "connect");
        int r = rpc_connect(c->base, c->leader_host, c->leader_port, &o, &cbs, c, &conn);
        if (r < 0) {
                log_error(r, "cannot connect to the leader %s", c->leader_rpc);
                after_disconnect(c, "connect-error");
                return;
        }
        c->conn = conn;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        struct wrk_ctl *c = arg;
        if (c->state == WRK_CONN_RETRY_WAIT && c->leader_known && !c->stopping)
                connect_now(c);
}

static void on_remind(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        struct wrk_ctl *c = arg;
        if (c->state != WRK_CONN_NO_LEADER)
                return;
        log_info("still waiting for a leader after %" PRIu64 " s%s%s",
                 (clock_mono_us() - c->waiting_since_us) / 1000000u,
                 c->leader_hint[0] ? ": " : "", c->leader_hint);
        c->remind_ms = c->remind_ms * 2 > WRK_REMIND_MAX_MS ? WRK_REMIND_MAX_MS : c->remind_ms * 2;
        struct timeval tv = {.tv_sec = c->remind_ms / 1000, .tv_usec = 0};
        evtimer_add(c->remind_ev, &tv);
}

void wrk_ctl_set_leader(struct wrk_ctl *c, uint64_t epoch, const char *rpc) {
        struct hosts_entry he;
        char why[256];
        if (c->stopping)
                return;
        if (epoch < c->highest_epoch) {
                reject_stale(c, epoch, "leader");
                return;
        }
        if (c->leader_known && epoch == c->leader_epoch && strcmp(rpc, c->leader_rpc) == 0)
                return;
        if (strlen(rpc) >= sizeof(c->leader_rpc) ||
            hosts_parse_hostport(rpc, 0, &he, why, sizeof(why)) < 0) {
                log_warn("the leader of epoch %" PRIu64 " publishes a bad rpc address '%.*s'; "
                         "ignored", epoch, 200, rpc);
                wrk_ctl_clear_leader(c, "bad-address");
                return;
        }
        c->leader_known = true;
        c->leader_epoch = epoch;
        snprintf(c->leader_rpc, sizeof(c->leader_rpc), "%s", rpc);
        snprintf(c->leader_host, sizeof(c->leader_host), "%s", he.host);
        c->leader_port = he.port;
        if (epoch > c->highest_epoch)
                c->highest_epoch = epoch;
        log_event("+leader-changed", "epoch=%" PRIu64 " leader=%s", epoch, rpc);
        if (c->conn)
                drop_connection(c);
        c->retry_ms = WRK_RETRY_MIN_MS;
        connect_now(c);
}

void wrk_ctl_clear_leader(struct wrk_ctl *c, const char *reason) {
        if (!c->leader_known)
                return;
        c->leader_known = false;
        log_event_warn("-leader-unpublished", "epoch=%" PRIu64 " leader=%s reason=%s",
                       c->leader_epoch, c->leader_rpc, reason);
        if (c->stopping)
                return;
        if (c->state == WRK_CONN_CONNECTING || c->state == WRK_CONN_RETRY_WAIT) {
                event_del(c->retry_ev);
                if (c->conn)
                        drop_connection(c);
                enter_no_leader(c, reason);
        }
}

/* ------------------------------------------------------------------------------------
 * Task state changes (woken by task threads) and shutdown. */

static void process_changes(struct wrk_ctl *c) {
        for (size_t i = 0; i < c->n_tasks; i++) {
                struct task_entry *e = &c->tasks[i];
                struct wrk_task_change ch;
                struct wrk_ckpt_result res;
                while (wrk_task_take_checkpoint_result(e->task, &res)) {
                        send_checkpoint_result(c, e->task, &res);
                        free(res.state);
                }
                while (wrk_task_take_change(e->task, &ch)) {
                        const struct wrk_task_id *id = wrk_task_id(e->task);
                        if (ch.state == WRK_TASK_FAILED)
                                log_event_warn("+task-state", "job=%s vertex=%" PRIu32
                                               " subtask=%" PRIu32 " state=%s attempt=%" PRIu32
                                               " slot=%" PRIu32 " records_in=%" PRIu64
                                               " records_out=%" PRIu64 " error=%s",
                                               id->job, id->vertex, id->subtask,
                                               wrk_task_state_name(ch.state), id->attempt,
                                               id->slot, ch.records_in, ch.records_out, ch.error);
                        else
                                log_event("+task-state", "job=%s vertex=%" PRIu32 " subtask=%"
                                          PRIu32 " state=%s attempt=%" PRIu32 " slot=%" PRIu32
                                          " records_in=%" PRIu64 " records_out=%" PRIu64 "%s%s",
                                          id->job, id->vertex, id->subtask,
                                          wrk_task_state_name(ch.state), id->attempt, id->slot,
                                          ch.records_in, ch.records_out,
                                          ch.state == WRK_TASK_DEPLOYING ? " chain=" : "",
                                          ch.state == WRK_TASK_DEPLOYING
                                                  ? wrk_task_describe(e->task) : "");
                        send_task_state(c, e->task, &ch);
                        if (wrk_task_state_is_terminal(ch.state)) {
                                wrk_task_join(e->task);
                                e->ended = true;
                                artifacts_gc(c, id->job, id->epoch, id->attempt);
                        }
                }
        }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        process_changes(arg);
}

static void task_notify(void *arg) {
        struct wrk_ctl *c = arg;
        event_active(c->wake_ev, EV_READ, 0);
}

static void stop_finish(struct wrk_ctl *c, bool clean) {
        if (c->stop_done)
                return;
        c->stop_done = true;
        event_del(c->stop_ev);
        if (c->conn)
                drop_connection(c);
        if (c->done)
                c->done(c->done_arg, clean);
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        struct wrk_ctl *c = arg;
        process_changes(c);
        uint64_t now = clock_mono_us();
        size_t live = wrk_ctl_live_task_count(c);
        if (live > 0) {
                if (now >= c->stop_deadline_us) {
                        log_warn("shutdown: %zu tasks did not stop in time", live);
                        stop_finish(c, false);
                }
                return;
        }
        if (c->drain_deadline_us == 0)
                c->drain_deadline_us = now + WRK_STOP_DRAIN_MS * 1000u;
        if (!c->conn || !rpc_conn_is_open(c->conn) || rpc_conn_output_bytes(c->conn) == 0 ||
            now >= c->drain_deadline_us)
                stop_finish(c, true);
}

int wrk_ctl_shutdown(struct wrk_ctl *c, uint32_t timeout_ms,
                     void (*done)(void *arg, bool clean), void *arg) {
        if (c->stopping)
                return -EALREADY;
        c->stopping = true;
        c->done = done;
        c->done_arg = arg;
        c->stop_deadline_us = clock_mono_us() + (uint64_t)timeout_ms * 1000u;
        event_del(c->retry_ev);
        event_del(c->remind_ev);
        bool keep = c->conn && c->state == WRK_CONN_REGISTERED;
        if (c->conn && !keep)
                drop_connection(c);
        event_del(c->hb_ev);
        set_state(c, WRK_CONN_STOPPING, "shutdown");
        size_t live = wrk_ctl_live_task_count(c);
        log_info("shutting down: canceling %zu tasks", live);
        for (size_t i = 0; i < c->n_tasks; i++)
                if (!c->tasks[i].ended)
                        wrk_task_cancel(c->tasks[i].task);
        struct timeval tv = {.tv_sec = 0, .tv_usec = WRK_STOP_TICK_MS * 1000};
        event_add(c->stop_ev, &tv);
        return 0;
}

/* ------------------------------------------------------------------------------------
 * Lifetime. */

/* The data-plane listener (taskmanager.data.port, 0 = any): its real port is what
 * PROTO_REGISTER reports and what `peers` name this worker by. Each accepted connection
 * is served by its own thread (exchange.h remote channels). */
static void on_data_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int socklen, void *arg) {
        (void)l;
        (void)sa;
        (void)socklen;
        (void)arg;
        int r = wrk_exchange_serve(fd);
        if (r < 0)
                log_warn("-data-connection-refused: no thread for it: %s", strerror(-r));
}

static int data_listen(struct wrk_ctl *c) {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_ANY);
        sin.sin_port = htons(c->data_port);
        c->data_listener = evconnlistener_new_bind(
                c->base, on_data_accept, c, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                (struct sockaddr *)&sin, sizeof(sin));
        if (!c->data_listener) {
                log_error(-errno, "cannot listen on taskmanager.data.port %u",
                          (unsigned)c->data_port);
                return -EADDRINUSE;
        }
        struct sockaddr_in got;
        socklen_t len = sizeof(got);
        if (getsockname(evconnlistener_get_fd(c->data_listener), (struct sockaddr *)&got,
                        &len) == 0)
                c->data_port = ntohs(got.sin_port);
        log_info("data port %u", (unsigned)c->data_port);
        return 0;
}

/* Validates the deploy's `peers` and routes the subtasks it places on other workers
 * to their data ports (exchange.h remote channels), for this job attempt. 0, or
 * -EINVAL / -ENOMEM with err set. peers absent or empty: everything is local. */
static int route_peers(struct wrk_ctl *c, const struct job_graph *g, const msgpack_object *map,
                       const char *job, uint32_t attempt, char *err, size_t err_len) {
        const msgpack_object *peers = msg_map_get(map, "peers");
        if (!peers || peers->type != MSGPACK_OBJECT_ARRAY)
                return 0;
        for (uint32_t k = 0; k < peers->via.array.size; k++) {
                const msgpack_object *p = &peers->via.array.ptr[k];
                uint32_t v, s, port;
                char host[256];
                if (p->type != MSGPACK_OBJECT_MAP || msg_get_u32(p, "vertex", &v) < 0 ||
                    msg_get_u32(p, "subtask", &s) < 0 || msg_get_u32(p, "data_port", &port) < 0 ||
                    msg_get_strbuf(p, "host", host, sizeof(host)) < 0 || v >= g->n_chains ||
                    port > UINT16_MAX) {
                        snprintf(err, err_len, "peers[%" PRIu32 "]: needs vertex, subtask, host "
                                 "and data_port", k);
                        return -EINVAL;
                }
        }
        if (wrk_exchange_routes_begin(job, attempt) < 0) {
                snprintf(err, err_len, "out of memory");
                return -ENOMEM;
        }
        for (uint32_t k = 0; k < peers->via.array.size; k++) {
                const msgpack_object *p = &peers->via.array.ptr[k];
                uint32_t v = 0, s = 0, port = 0;
                char host[256] = "";
                msg_get_u32(p, "vertex", &v);
                msg_get_u32(p, "subtask", &s);
                msg_get_u32(p, "data_port", &port);
                msg_get_strbuf(p, "host", host, sizeof(host));
                if (port == 0 || (port == c->data_port && (strcmp(host, c->host) == 0 ||
                                                           !host[0])))
                        continue; /* this worker (0: a peer without a data port) */
                if (wrk_exchange_route_add(job, attempt, v, s, host, (uint16_t)port) < 0) {
                        snprintf(err, err_len, "out of memory");
                        return -ENOMEM;
                }
        }
        return 0;
}

int wrk_ctl_create(struct event_base *base, const struct wrk_ctl_options *o,
                   struct wrk_ctl **ret) {
        struct wrk_ctl *c = NULL;
        if (!base || !o || !o->resource_id || strlen(o->resource_id) != ID_HEX_LEN ||
            !o->cluster_id || strlen(o->cluster_id) > RPC_CLUSTER_MAX_BYTES || !o->host ||
            strlen(o->host) >= sizeof(c->host) || o->slots == 0 || o->slots > 1024 ||
            o->heartbeat_interval_ms == 0 || o->heartbeat_timeout_ms <= o->heartbeat_interval_ms)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base = base;
        memcpy(c->resource_id, o->resource_id, ID_HEX_LEN + 1);
        snprintf(c->host, sizeof(c->host), "%s", o->host);
        snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", o->cluster_id);
        snprintf(c->leader_hint, sizeof(c->leader_hint), "%s", o->leader_hint ? o->leader_hint : "");
        c->slots = o->slots;
        c->data_port = o->data_port;
        if (data_listen(c) < 0) {
                wrk_ctl_destroy(c);
                return -EADDRINUSE;
        }
        wrk_exchange_configure(c->cluster_id, c->resource_id);
        c->max_frame_bytes = o->max_frame_bytes;
        c->dns = o->dns;
        c->cfg_hb_interval_ms = c->hb_interval_ms = o->heartbeat_interval_ms;
        c->cfg_hb_timeout_ms = c->hb_timeout_ms = o->heartbeat_timeout_ms;
        c->out = o->out;
        c->err = o->err;
        c->sb_env = o->sb_env;
        snprintf(c->state_dir, sizeof(c->state_dir), "%s", o->state_dir ? o->state_dir : "");
        snprintf(c->checkpoints_dir, sizeof(c->checkpoints_dir), "%s",
                 o->checkpoints_dir ? o->checkpoints_dir : "");
        c->buffer_timeout_ms = o->buffer_timeout_ms;
        c->latency_interval_ms = o->latency_interval_ms;
        c->checkpoint_interval_ms = o->checkpoint_interval_ms;
        c->checkpoint_at_least_once = o->checkpoint_at_least_once;
        c->retry_ms = WRK_RETRY_MIN_MS;
        c->state = WRK_CONN_NO_LEADER;
        c->max_tasks = (size_t)c->slots * WRK_MAX_TASKS_PER_SLOT;
        if (c->max_tasks > WRK_MAX_TASKS)
                c->max_tasks = WRK_MAX_TASKS;
        c->tasks = calloc(c->max_tasks, sizeof(*c->tasks));
        c->jobs = calloc(c->max_tasks, sizeof(*c->jobs));
        c->retry_ev = evtimer_new(base, on_retry, c);
        c->hb_ev = event_new(base, -1, EV_PERSIST, on_heartbeat_timer, c);
        c->wake_ev = event_new(base, -1, 0, on_wake, c);
        c->remind_ev = evtimer_new(base, on_remind, c);
        c->stop_ev = event_new(base, -1, EV_PERSIST, on_stop_tick, c);
        if (!c->tasks || !c->jobs || !c->retry_ev || !c->hb_ev || !c->wake_ev || !c->remind_ev ||
            !c->stop_ev) {
                wrk_ctl_destroy(c);
                return -ENOMEM;
        }
        enter_no_leader(c, "start");
        *ret = c;
        return 0;
}

void wrk_ctl_destroy(struct wrk_ctl *c) {
        if (!c)
                return;
        if (c->data_listener)
                evconnlistener_free(c->data_listener);
        for (size_t i = 0; i < c->n_tasks; i++)
                wrk_task_destroy(c->tasks[i].task);
        c->n_tasks = 0;
        if (c->state_dir[0]) {
                char dir[sizeof(c->state_dir) + 16];
                snprintf(dir, sizeof(dir), "%s/artifacts", c->state_dir);
                fs_rm_rf(dir);
        }
        if (c->conn)
                drop_connection(c);
        if (c->retry_ev)
                event_free(c->retry_ev);
        if (c->hb_ev)
                event_free(c->hb_ev);
        if (c->wake_ev)
                event_free(c->wake_ev);
        if (c->remind_ev)
                event_free(c->remind_ev);
        if (c->stop_ev)
                event_free(c->stop_ev);
        free(c->tasks);
        free(c->jobs);
        free(c);
}
