/* The worker registry: the coordinator's RPC server, worker registration, heartbeats
 * with slot reports, and loss detection (connection close at once, else
 * heartbeat.timeout). Only the acting leader registers workers; a standby or a suspended
 * leader answers "not leader" (common/proto.h). Task reports are handed to jobs.c;
 * tasks a worker runs that the leader did not place (an earlier leader's or attempt's)
 * keep their slot busy and get a cancel. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/proto.h"
#include "ha/zk.h"
#include "coordinator/checkpoints.h"
#include "coordinator/coord_internal.h"

#define REG_MAX_REPORTED_TASKS 65536u

static void worker_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                              const msgpack_object *map, void *arg);
static void worker_on_close(struct rpc_conn *conn, int reason, void *arg);
static void pending_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                               const msgpack_object *map, void *arg);
static void pending_on_close(struct rpc_conn *conn, int reason, void *arg);

static const struct rpc_conn_callbacks pending_cbs = {
        .on_message = pending_on_message,
        .on_close = pending_on_close,
};

static const struct rpc_conn_callbacks worker_cbs = {
        .on_message = worker_on_message,
        .on_close = worker_on_close,
};

uint32_t coord_worker_free_slots(const struct coord_worker *w) {
        if (!w->reported)
                return 0;
        uint32_t n = 0;
        for (uint32_t i = 0; i < w->slots; i++)
                if (!w->slot[i].job && !w->slot[i].foreign)
                        n++;
        return n;
}

uint32_t coord_registry_total_slots(const struct coord *c) {
        uint32_t n = 0;
        for (const struct coord_worker *w = c->workers; w; w = w->next)
                n += w->slots;
        return n;
}

uint32_t coord_registry_free_slots(const struct coord *c) {
        uint32_t n = 0;
        for (const struct coord_worker *w = c->workers; w; w = w->next)
                n += coord_worker_free_slots(w);
        return n;
}

uint32_t coord_registry_max_reported_attempt(const struct coord *c, const char *job) {
        uint32_t max = 0;
        for (const struct coord_worker *w = c->workers; w; w = w->next)
                for (size_t i = 0; i < w->n_foreign; i++)
                        if (strcmp(w->foreign[i].job, job) == 0 && w->foreign[i].attempt > max)
                                max = w->foreign[i].attempt;
        return max;
}

static void foreign_recount(struct coord_worker *w) {
        for (uint32_t i = 0; i < w->slots; i++)
                w->slot[i].foreign = false;
        for (size_t i = 0; i < w->n_foreign; i++)
                w->slot[w->foreign[i].slot].foreign = true;
}

void coord_registry_foreign_done(struct coord_worker *w, const char *job, uint32_t attempt,
                                 uint32_t vertex, uint32_t subtask) {
        for (size_t i = 0; i < w->n_foreign; i++) {
                struct coord_foreign_task *f = &w->foreign[i];
                if (strcmp(f->job, job) == 0 && f->attempt == attempt && f->vertex == vertex &&
                    f->subtask == subtask) {
                        w->foreign[i] = w->foreign[--w->n_foreign];
                        foreign_recount(w);
                        coord_schedule_reconcile(w->c);
                        return;
                }
        }
}

static int foreign_add(struct coord_worker *w, const char *job, uint32_t attempt,
                       uint32_t vertex, uint32_t subtask, uint32_t slot) {
        if (w->n_foreign == w->foreign_cap) {
                size_t cap = w->foreign_cap ? w->foreign_cap * 2 : 8;
                struct coord_foreign_task *n = realloc(w->foreign, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                w->foreign = n;
                w->foreign_cap = cap;
        }
        struct coord_foreign_task *f = &w->foreign[w->n_foreign++];
        snprintf(f->job, sizeof(f->job), "%s", job);
        f->attempt = attempt;
        f->vertex = vertex;
        f->subtask = subtask;
        f->slot = slot;
        return 0;
}

struct coord_worker *coord_worker_find(struct coord *c, const char *id) {
        for (struct coord_worker *w = c->workers; w; w = w->next)
                if (strcmp(w->id, id) == 0)
                        return w;
        return NULL;
}

/* Unlinks and frees w. conn_gone: its connection is being freed by the rpc layer (we
 * are inside its on_close), so it must not be closed here. */
static void worker_drop(struct coord *c, struct coord_worker *w, const char *reason,
                        bool conn_gone, bool quiet) {
        for (struct coord_worker **p = &c->workers; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        c->n_workers--;
                        break;
                }
        if (quiet)
                log_debug("worker %s dropped: %s", w->id, reason);
        else
                log_event_warn("-worker-lost", "id=%s reason=%s host=%s slots=%" PRIu32, w->id,
                               reason, w->host, w->slots);
        coord_jobs_worker_lost(c, w, reason);
        if (w->hb_timer)
                event_free(w->hb_timer);
        if (!conn_gone)
                rpc_conn_close(w->conn);
        free(w->foreign);
        free(w->slot);
        free(w);
        coord_schedule_reconcile(c);
}

/* Runs the ZooKeeper stall check before a worker event is acted on (ha/zk.h: at the start
 * of any callback that makes a leadership decision), so that a process waking up from a
 * long pause learns it lost its term before it takes a worker's silence or its closed
 * connection for a failure. false when the check ended the term: every worker, w
 * included, was dropped (w is freed). */
static bool worker_event_begins(struct coord *c) {
        uint64_t gen = c->leader_gen;
        ha_zk_poll_stall(c->zk);
        return c->leader_gen == gen;
}

static void worker_hb_timeout(evutil_socket_t fd, short what, void *arg) {
        struct coord_worker *w = arg;
        struct coord *c = w->c;
        if (!worker_event_begins(c))
                return;
        char reason[64];
        snprintf(reason, sizeof(reason), "heartbeat-timeout-%" PRIu32 "ms", c->hb_timeout_ms);
        worker_drop(c, w, reason, false, false);
}

static void worker_arm_timeout(struct coord_worker *w) {
        struct timeval tv = {.tv_sec = w->c->hb_timeout_ms / 1000,
                             .tv_usec = (w->c->hb_timeout_ms % 1000) * 1000};
        evtimer_add(w->hb_timer, &tv);
}

void coord_registry_drop_all(struct coord *c, const char *reason) {
        if (c->n_workers > 0)
                log_info("closing the connections of %zu worker(s): %s", c->n_workers, reason);
        while (c->workers)
                worker_drop(c, c->workers, reason, false, true);
}

static void cancel_done(struct rpc_conn *conn, int error, const msgpack_object *response,
                        void *arg) {
        const char *text = NULL;
        size_t len = 0;
        if (error == -EREMOTEIO && rpc_response_error(response, &text, &len) == 0)
                log_warn("cancel refused by worker %s: %.*s", rpc_conn_peer_name(conn), (int)len,
                         text);
        else if (error < 0 && error != -ECANCELED)
                log_debug("cancel to worker %s: %s", rpc_conn_peer_name(conn), err_str(error));
}

int coord_worker_send_cancel(struct coord_worker *w, const char *job, uint32_t attempt) {
        struct rpc_msg m;
        rpc_msg_init(&m, 2);
        rpc_msg_set_epoch(&m, w->c->epoch);
        msg_pack_kv_str(&m.pk, "job", job);
        msg_pack_kv_u64(&m.pk, "attempt", attempt);
        /* The response carries nothing we wait for (the tasks report CANCELED); a
         * refusal is logged. */
        int r = rpc_call(w->conn, PROTO_CANCEL, &m, COORD_RPC_CALL_TIMEOUT_MS, cancel_done, NULL);
        rpc_msg_finish(&m);
        return r;
}

void coord_registry_free_job(struct coord *c, const char *job) {
        struct rpc_msg m;
        rpc_msg_init(&m, 1);
        rpc_msg_set_epoch(&m, c->epoch);
        msg_pack_kv_str(&m.pk, "job", job);
        for (struct coord_worker *w = c->workers; w; w = w->next) {
                int r = rpc_send(w->conn, PROTO_FREE_JOB, &m);
                if (r < 0)
                        log_warn("free_job job=%s to worker %s failed: %s", job, w->id,
                                 err_str(r));
        }
        rpc_msg_finish(&m);
}

/* ---- registration ---------------------------------------------------------------- */

static bool hex_id_valid(const char *s) {
        struct flinc_id id;
        return strlen(s) == ID_HEX_LEN && id_parse(s, &id) == 0;
}

static void reply_error(struct rpc_conn *conn, uint64_t id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void reply_error(struct rpc_conn *conn, uint64_t id, const char *fmt, ...) {
        if (id == 0)
                return;
        char text[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        rpc_reply_error(conn, id, text);
}

/* A register call on conn (registered or not). */
static void handle_register(struct coord *c, struct rpc_conn *conn, uint64_t id,
                            const msgpack_object *map, struct coord_worker *current) {
        char rid[ID_HEX_LEN + 2], host[COORD_WORKER_HOST_MAX];
        uint32_t data_port, slots, pid;
        int r;

        if (id == 0) {
                log_warn("rpc %s: one-way register ignored", rpc_conn_peer(conn));
                return;
        }
        if (!coord_may_act(c) || !c->leader_ready) {
                rpc_reply_error(conn, id, PROTO_ERR_NOT_LEADER);
                return;
        }
        if (strcmp(rpc_conn_peer_role(conn), "worker") != 0) {
                reply_error(conn, id, "hello role '%.63s': only a worker registers",
                            rpc_conn_peer_role(conn));
                return;
        }
        if ((r = msg_get_strbuf(map, "resource_id", rid, sizeof(rid))) < 0 || !hex_id_valid(rid)) {
                reply_error(conn, id, "resource_id: %s",
                            r == -ENOENT ? "missing" : "expected 32 hex digits");
                return;
        }
        if ((r = msg_get_strbuf(map, "host", host, sizeof(host))) < 0 || host[0] == '\0') {
                reply_error(conn, id, "host: %s",
                            r == -ENOENT ? "missing" : "expected a host name of 1..255 bytes");
                return;
        }
        if ((r = msg_get_u32(map, "data_port", &data_port)) < 0 || data_port > 65535) {
                reply_error(conn, id, "data_port: %s",
                            r == -ENOENT ? "missing" : "expected 0..65535");
                return;
        }
        if ((r = msg_get_u32(map, "slots", &slots)) < 0 || slots < 1 || slots > 1024) {
                reply_error(conn, id, "slots: %s",
                            r == -ENOENT ? "missing" : "expected 1..1024");
                return;
        }
        if ((r = msg_get_u32(map, "pid", &pid)) < 0) {
                reply_error(conn, id, "pid: %s",
                            r == -ENOENT ? "missing" : "expected an unsigned integer");
                return;
        }

        /* The same id again: replace the old registration (proto.h). On the same
         * connection that is a re-register; the old tasks are lost either way. */
        struct coord_worker *old = coord_worker_find(c, rid);
        if (current && old != current) {
                /* This connection registered under another id before: drop that one. */
                worker_drop(c, current, "re-registered-as-other-id", true, false);
                current = NULL;
        }
        if (old) {
                bool same_conn = old->conn == conn;
                if (same_conn)
                        old->conn = NULL; /* keep the connection: it becomes the new worker's */
                worker_drop(c, old, "re-registered", same_conn, false);
        }
        if (c->n_workers >= COORD_MAX_WORKERS) {
                reply_error(conn, id, "too many workers (%d)", COORD_MAX_WORKERS);
                return;
        }

        struct coord_worker *w = calloc(1, sizeof(*w));
        if (!w) {
                reply_error(conn, id, "out of memory");
                return;
        }
        w->slot = calloc(slots, sizeof(*w->slot));
        w->hb_timer = evtimer_new(c->base, worker_hb_timeout, w);
        if (!w->slot || !w->hb_timer) {
                if (w->hb_timer)
                        event_free(w->hb_timer);
                free(w->slot);
                free(w);
                {
                        reply_error(conn, id, "out of memory");
                        return;
                }
        }
        w->c = c;
        snprintf(w->id, sizeof(w->id), "%s", rid);
        snprintf(w->host, sizeof(w->host), "%s", host);
        snprintf(w->peer, sizeof(w->peer), "%s", rpc_conn_peer(conn));
        w->data_port = data_port;
        w->slots = slots;
        w->pid = pid;
        w->conn = conn;
        w->registered_wall_ms = clock_wall_ms();
        w->last_heartbeat_mono_ms = clock_mono_ms();
        w->last_heartbeat_wall_ms = w->registered_wall_ms;
        w->next = c->workers;
        c->workers = w;
        c->n_workers++;
        rpc_conn_set_callbacks(conn, &worker_cbs, w);
        worker_arm_timeout(w);

        struct rpc_msg m;
        rpc_msg_init(&m, 2);
        rpc_msg_set_epoch(&m, c->epoch); /* the response's `epoch` (a reserved key) */
        msg_pack_kv_u64(&m.pk, "heartbeat_interval_ms", c->hb_interval_ms);
        msg_pack_kv_u64(&m.pk, "heartbeat_timeout_ms", c->hb_timeout_ms);
        r = rpc_reply(conn, id, &m);
        rpc_msg_finish(&m);
        if (r < 0) {
                log_warn("register reply to %s failed: %s", rid, err_str(r));
                worker_drop(c, w, "register-reply-failed", false, false);
                return;
        }
        log_event("+worker-registered", "id=%s slots=%" PRIu32 " host=%s data_port=%" PRIu32
                  " pid=%" PRIu32 " peer=%s epoch=%" PRIu64, w->id, slots, host, data_port, pid,
                  w->peer, c->epoch);
        coord_schedule_reconcile(c);
}

/* ---- heartbeats and task reports ------------------------------------------------- */

static bool stale_cancel_due(struct coord_worker *w, const char *job, uint32_t attempt) {
        uint64_t now = clock_mono_ms();
        size_t oldest = 0;
        for (size_t i = 0; i < sizeof(w->stale) / sizeof(w->stale[0]); i++) {
                struct coord_stale_cancel *s = &w->stale[i];
                if (strcmp(s->job, job) == 0 && s->attempt == attempt) {
                        if (now - s->sent_mono_ms < COORD_STALE_CANCEL_RESEND_MS)
                                return false;
                        s->sent_mono_ms = now;
                        return true;
                }
                if (s->sent_mono_ms < w->stale[oldest].sent_mono_ms)
                        oldest = i;
        }
        struct coord_stale_cancel *s = &w->stale[oldest];
        snprintf(s->job, sizeof(s->job), "%s", job);
        s->attempt = attempt;
        s->sent_mono_ms = now;
        return true;
}

/* One entry of a heartbeat's task list; 0, or -EINVAL with the field named in why. */
static int read_task_report(const msgpack_object *t, char *job, size_t job_len,
                            uint32_t *attempt, uint32_t *vertex, uint32_t *subtask,
                            uint32_t *slot, enum coord_task_state *st, uint64_t *rin,
                            uint64_t *rout, uint64_t *late, struct coord_latency *lat,
                            const char **why) {
        const char *s;
        size_t slen;
        if (t->type != MSGPACK_OBJECT_MAP)
                return *why = "tasks[]: expected a map", -EINVAL;
        if (msg_get_strbuf(t, "job", job, job_len) < 0 || !hex_id_valid(job))
                return *why = "tasks[].job", -EINVAL;
        if (msg_get_u32(t, "attempt", attempt) < 0)
                return *why = "tasks[].attempt", -EINVAL;
        if (msg_get_u32(t, "vertex", vertex) < 0)
                return *why = "tasks[].vertex", -EINVAL;
        if (msg_get_u32(t, "subtask", subtask) < 0)
                return *why = "tasks[].subtask", -EINVAL;
        if (msg_get_u32(t, "slot", slot) < 0)
                return *why = "tasks[].slot", -EINVAL;
        if (msg_get_str(t, "state", &s, &slen) < 0 || coord_task_state_parse(s, slen, st) < 0)
                return *why = "tasks[].state", -EINVAL;
        *rin = 0;
        *rout = 0;
        if (msg_map_get(t, "records_in") && msg_get_u64(t, "records_in", rin) < 0)
                return *why = "tasks[].records_in", -EINVAL;
        if (msg_map_get(t, "records_out") && msg_get_u64(t, "records_out", rout) < 0)
                return *why = "tasks[].records_out", -EINVAL;
        *late = 0;
        if (msg_map_get(t, "late_records_dropped") &&
            msg_get_u64(t, "late_records_dropped", late) < 0)
                return *why = "tasks[].late_records_dropped", -EINVAL;
        memset(lat, 0, sizeof(*lat));
        if (msg_map_get(t, "latency")) {
                const msgpack_object *l;
                if (msg_get_map(t, "latency", &l) < 0)
                        return *why = "tasks[].latency: expected a map", -EINVAL;
                static const char *const keys[] = {"count", "min_us", "max_us", "mean_us",
                                                   "p50_us", "p95_us", "p99_us"};
                uint64_t *dst[] = {&lat->count, &lat->min_us, &lat->max_us, &lat->mean_us,
                                   &lat->p50_us, &lat->p95_us, &lat->p99_us};
                for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
                        if (msg_get_u64(l, keys[k], dst[k]) < 0)
                                return *why = "tasks[].latency: count, min_us, max_us, "
                                              "mean_us, p50_us, p95_us, p99_us (uint64)",
                                       -EINVAL;
        }
        return 0;
}

static void handle_heartbeat(struct coord *c, struct coord_worker *w, const msgpack_object *map) {
        const msgpack_object *tasks = NULL;
        int r = msg_get_array(map, "tasks", &tasks);
        if (r < 0 && r != -ENOENT) {
                log_warn("heartbeat from worker %s: tasks: expected an array; ignored", w->id);
                return;
        }
        w->last_heartbeat_mono_ms = clock_mono_ms();
        w->last_heartbeat_wall_ms = clock_wall_ms();
        worker_arm_timeout(w);
        bool first = !w->reported;
        w->reported = true;
        w->n_foreign = 0;
        coord_jobs_report_begin(c, w);
        uint64_t sum_in = 0, sum_out = 0;
        uint32_t n = tasks ? tasks->via.array.size : 0;
        if (n > REG_MAX_REPORTED_TASKS)
                n = REG_MAX_REPORTED_TASKS;
        for (uint32_t i = 0; i < n; i++) {
                char job[ID_HEX_LEN + 2];
                uint32_t attempt, vertex, subtask, slot;
                enum coord_task_state st;
                uint64_t rin, rout, late;
                struct coord_latency lat;
                const char *why = NULL;
                if (read_task_report(&tasks->via.array.ptr[i], job, sizeof(job), &attempt,
                                     &vertex, &subtask, &slot, &st, &rin, &rout, &late, &lat,
                                     &why) < 0) {
                        log_warn("heartbeat from worker %s: %s: missing or invalid; entry ignored",
                                 w->id, why);
                        continue;
                }
                if (slot >= w->slots) {
                        log_warn("heartbeat from worker %s: tasks[].slot %" PRIu32
                                 " >= its %" PRIu32 " slots; entry ignored", w->id, slot, w->slots);
                        continue;
                }
                sum_in += rin;
                sum_out += rout;
                struct coord_job *j = coord_job_find(c, job);
                if (j && attempt > j->max_seen_attempt)
                        j->max_seen_attempt = attempt;
                bool ours = j && j->deployed && attempt == j->attempt &&
                            w->slot[slot].job == j;
                if (ours) {
                        coord_jobs_task_update(c, w, job, attempt, vertex, subtask, st, NULL, 0,
                                               rin, rout, late, &lat, true);
                        continue;
                }
                if (coord_task_state_is_terminal(st))
                        continue;
                /* A live task we did not place: busy slot, and it must go. */
                if (foreign_add(w, job, attempt, vertex, subtask, slot) < 0) {
                        log_warn("heartbeat from worker %s: out of memory", w->id);
                        break;
                }
                if (coord_may_act(c) && stale_cancel_due(w, job, attempt)) {
                        log_info("worker %s runs job %s attempt %" PRIu32 " in slot %" PRIu32
                                 " (not ours: current attempt %" PRIu32 "); canceling it",
                                 w->id, job, attempt, slot, j ? j->attempt : 0);
                        r = coord_worker_send_cancel(w, job, attempt);
                        if (r < 0)
                                log_warn("cancel of stale job %s attempt %" PRIu32
                                         " on worker %s failed: %s", job, attempt, w->id,
                                         err_str(r));
                }
        }
        foreign_recount(w);
        coord_jobs_report_end(c, w);
        w->records_in = sum_in;
        w->records_out = sum_out;
        if (first)
                log_info("worker %s reported its slots: %" PRIu32 " free of %" PRIu32, w->id,
                         coord_worker_free_slots(w), w->slots);
        coord_schedule_reconcile(c);
}

static void handle_task_state(struct coord *c, struct coord_worker *w, uint64_t id,
                              const msgpack_object *map) {
        char job[ID_HEX_LEN + 2];
        uint32_t attempt, vertex, subtask;
        enum coord_task_state st;
        const char *s, *error = NULL;
        size_t slen, error_len = 0;
        uint64_t rin = 0, rout = 0, late = 0;
        const char *field = NULL;
        if (msg_get_strbuf(map, "job", job, sizeof(job)) < 0 || !hex_id_valid(job))
                field = "job";
        else if (msg_get_u32(map, "attempt", &attempt) < 0)
                field = "attempt";
        else if (msg_get_u32(map, "vertex", &vertex) < 0)
                field = "vertex";
        else if (msg_get_u32(map, "subtask", &subtask) < 0)
                field = "subtask";
        else if (msg_get_str(map, "state", &s, &slen) < 0 || coord_task_state_parse(s, slen, &st) < 0)
                field = "state";
        else if (msg_map_get(map, "records_in") && msg_get_u64(map, "records_in", &rin) < 0)
                field = "records_in";
        else if (msg_map_get(map, "records_out") && msg_get_u64(map, "records_out", &rout) < 0)
                field = "records_out";
        else if (msg_map_get(map, "late_records_dropped") &&
                 msg_get_u64(map, "late_records_dropped", &late) < 0)
                field = "late_records_dropped";
        else if (msg_map_get(map, "error") && msg_get_str(map, "error", &error, &error_len) < 0)
                field = "error";
        if (field) {
                log_warn("task_state from worker %s: %s missing or invalid; ignored", w->id,
                         field);
                reply_error(w->conn, id, "%s: missing or invalid", field);
                return;
        }
        coord_jobs_task_update(c, w, job, attempt, vertex, subtask, st, error, error_len, rin,
                               rout, late, NULL, false);
        if (id != 0)
                rpc_reply(w->conn, id, NULL);
}

/* ---- connection callbacks -------------------------------------------------------- */

static void worker_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                              const msgpack_object *map, void *arg) {
        struct coord_worker *w = arg;
        struct coord *c = w->c;
        if (!worker_event_begins(c))
                return;
        if (strcmp(type, PROTO_HEARTBEAT) == 0)
                handle_heartbeat(c, w, map);
        else if (strcmp(type, PROTO_TASK_STATE) == 0)
                handle_task_state(c, w, id, map);
        else if (strcmp(type, PROTO_REGISTER) == 0)
                handle_register(c, conn, id, map, w);
        else if (strcmp(type, PROTO_ACK_CHECKPOINT) == 0)
                coord_ckpt_on_ack(c, w, map);
        else if (strcmp(type, PROTO_DECLINE_CHECKPOINT) == 0)
                coord_ckpt_on_decline(c, w, map);
        else {
                log_debug("worker %s: unknown message type '%s' ignored", w->id, type);
                reply_error(conn, id, "unknown message type '%s'", type);
        }
}

static void worker_on_close(struct rpc_conn *conn, int reason, void *arg) {
        struct coord_worker *w = arg;
        char why[96];
        if (reason == 0)
                snprintf(why, sizeof(why), "connection-closed");
        else
                snprintf(why, sizeof(why), "connection-error(%s)", err_str(reason));
        struct coord *c = w->c;
        w->conn = NULL; /* being freed by the rpc layer: nobody closes it again */
        if (!worker_event_begins(c))
                return;
        worker_drop(c, w, why, true, false);
}

static void pending_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                               const msgpack_object *map, void *arg) {
        struct coord *c = arg;
        if (strcmp(type, PROTO_REGISTER) == 0) {
                handle_register(c, conn, id, map, NULL);
                return;
        }
        if (!coord_may_act(c)) {
                reply_error(conn, id, PROTO_ERR_NOT_LEADER);
                return;
        }
        log_debug("rpc %s: '%s' before register ignored", rpc_conn_peer(conn), type);
        reply_error(conn, id, "not registered: send %s first", PROTO_REGISTER);
}

static void pending_on_close(struct rpc_conn *conn, int reason, void *arg) {
        log_debug("rpc %s closed before registering: %s", rpc_conn_peer(conn),
                  reason ? err_str(reason) : "eof");
}

static void server_on_accept(struct rpc_server *srv, struct rpc_conn *conn, void *arg) {
        rpc_conn_set_callbacks(conn, &pending_cbs, arg);
}

static void server_on_reject(struct rpc_server *srv, const char *peer, int reason, void *arg) {
        log_debug("rpc %s rejected: %s", peer, err_str(reason));
}

/* high-availability.jobmanager.port: "0", "6123", "50000-50025", "a,b-c". Tries each
 * port in order until one binds. */
int coord_registry_start(struct coord *c, char *err, size_t err_len) {
        const char *bind = cfg_string(c->cfg, CFG_JOBMANAGER_BIND_HOST);
        const char *ports = cfg_string(c->cfg, CFG_HA_JOBMANAGER_PORT);
        struct rpc_options opts = {
                .cluster_id = c->cluster_id,
                .role = "coordinator",
                .name = c->id,
                .max_frame_bytes = c->rpc_max_frame_bytes,
                .max_connections = COORD_MAX_WORKERS + 64,
        };
        const struct rpc_server_callbacks cbs = {
                .on_accept = server_on_accept,
                .on_reject = server_on_reject,
        };
        int r = -EINVAL;
        const char *p = ports;
        while (*p) {
                char item[64];
                size_t len = strcspn(p, ",");
                snprintf(item, sizeof(item), "%.*s", (int)(len < 63 ? len : 63), p);
                p += len;
                if (*p == ',')
                        p++;
                unsigned lo = 0, hi = 0;
                char *dash = strchr(item, '-');
                lo = (unsigned)strtoul(item, NULL, 10);
                hi = dash ? (unsigned)strtoul(dash + 1, NULL, 10) : lo;
                for (unsigned port = lo; port <= hi && port <= 65535; port++) {
                        r = rpc_server_create(c->base, bind[0] ? bind : NULL, (uint16_t)port,
                                              &opts, &cbs, c, &c->rpc);
                        if (r == 0) {
                                c->rpc_port = rpc_server_port(c->rpc);
                                return 0;
                        }
                        if (r != -EADDRINUSE)
                                break;
                }
                if (r != -EADDRINUSE && r != 0)
                        break;
        }
        snprintf(err, err_len, "cannot listen for RPC on %s port(s) %s: %s",
                 bind[0] ? bind : "0.0.0.0", ports, err_str(r));
        return r;
}

void coord_registry_stop(struct coord *c) {
        coord_registry_drop_all(c, "shutdown");
        rpc_server_destroy(c->rpc);
        c->rpc = NULL;
}
