/* What the coordinator's files share: the coordinator object, the worker registry's
 * workers and the jobs with their tasks, and the functions one part calls in another.
 * Private to coordinator/ (DESIGN.md "Layout": one public header per module).
 *
 * Everything runs on the one loop thread. Ownership: struct coord owns the workers
 * (registry.c), the jobs (jobs.c), the REST server (rest.c) and the HA objects
 * (coord.c); a job borrows worker pointers in its placement, and registry.c clears them
 * (coord_jobs_worker_lost) before it frees a worker. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/ids.h"
#include "common/jobgraph.h"
#include "common/rpc.h"
#include "coordinator/coord.h"
#include "ha/election.h"
#include "ha/payload.h"

struct event;
struct event_base;
struct evhttp_request;
struct json_writer;
struct ha_zk;
struct ha_retrieval;
struct coord_rest;
struct ha_store;

#define COORD_VERSION "0.1.0"
#define COORD_WORKER_HOST_MAX 256
#define COORD_HOST_MAX 200
#define COORD_MAX_WORKERS 4096
#define COORD_MAX_JOBS 4096              /* jobs kept in memory, terminal ones included */
#define COORD_MAX_TERMINAL_JOBS 1000     /* terminal jobs kept for REST, oldest dropped */
#define COORD_MAX_EXCEPTIONS 32          /* per job, newest kept */
#define COORD_EXCEPTION_MAX_BYTES 4096
#define COORD_RPC_CALL_TIMEOUT_MS 10000u
#define COORD_STALE_CANCEL_RESEND_MS 2000u
#define COORD_RECOVER_RETRY_MS 500
#define COORD_SETTLE_MAX_MS 500u

/* ---- job and task states (Flink's JobStatus and ExecutionState names) ---- */

enum coord_job_state {
        COORD_JOB_CREATED,
        COORD_JOB_RUNNING,
        COORD_JOB_FAILING,
        COORD_JOB_RESTARTING,
        COORD_JOB_CANCELLING,
        COORD_JOB_CANCELED,
        COORD_JOB_FINISHED,
        COORD_JOB_FAILED,
        COORD_JOB__COUNT,
};

enum coord_task_state {
        COORD_TASK_CREATED,
        COORD_TASK_SCHEDULED,
        COORD_TASK_DEPLOYING,
        COORD_TASK_RUNNING,
        COORD_TASK_FINISHED,
        COORD_TASK_CANCELING,
        COORD_TASK_CANCELED,
        COORD_TASK_FAILED,
        COORD_TASK_RECONCILING,
        COORD_TASK_INITIALIZING,
        COORD_TASK__COUNT,
};

const char *coord_job_state_name(enum coord_job_state s);
bool coord_job_state_is_terminal(enum coord_job_state s);
const char *coord_task_state_name(enum coord_task_state s);
/* Names of the REST "tasks" counters, lower case ("created", ...), indexed like the
 * enum. */
const char *coord_task_state_key(enum coord_task_state s);
bool coord_task_state_is_terminal(enum coord_task_state s);
/* PROTO_TASK_* text to a state: 0 or -EINVAL. */
int coord_task_state_parse(const char *s, size_t len, enum coord_task_state *ret);

/* ---- workers ---- */

/* One slot of a worker as the leader sees it. */
struct coord_wslot {
        struct coord_job *job;  /* the job whose slot-shared tasks we placed here, or NULL */
        uint32_t job_slot;      /* which of the job's slots */
        /* A live task the worker reports here that is not one we placed (a task of an
         * earlier leader or attempt being canceled): the slot is busy until a report
         * without it. */
        bool foreign;
};

/* A live task a worker reported that the leader did not place: it keeps its slot busy
 * until the worker reports it terminal (task_state) or a report lists it no more. */
struct coord_foreign_task {
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        uint32_t vertex;
        uint32_t subtask;
        uint32_t slot;
};

struct coord_stale_cancel {
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        uint64_t sent_mono_ms;
};

struct coord_worker {
        struct coord *c;
        struct coord_worker *next;
        char id[ID_HEX_LEN + 1];
        char host[COORD_WORKER_HOST_MAX];
        char peer[RPC_PEER_MAX];
        uint32_t data_port;
        uint32_t slots;
        uint32_t pid;
        struct rpc_conn *conn;       /* owned: closed when the worker is dropped */
        struct event *hb_timer;      /* heartbeat.timeout since the last heartbeat */
        uint64_t last_heartbeat_mono_ms;
        int64_t registered_wall_ms;
        int64_t last_heartbeat_wall_ms;
        bool reported;               /* a heartbeat (slot report) arrived since register */
        struct coord_wslot *slot;    /* slots entries */
        struct coord_foreign_task *foreign; /* from the last report, n_foreign entries */
        size_t n_foreign;
        size_t foreign_cap;
        struct coord_stale_cancel stale[8]; /* recent cancels of foreign tasks */
        uint64_t records_in, records_out;   /* of the tasks in the last report */
};

/* Free slots we may place into: reported, not foreign, not placed. */
uint32_t coord_worker_free_slots(const struct coord_worker *w);

/* ---- jobs ---- */

/* A sink task's latency from latency markers (heartbeat "latency", worker/ops.h), in
 * microseconds; count 0 = none reported. */
struct coord_latency {
        uint64_t count;
        uint64_t min_us, max_us, mean_us, p50_us, p95_us, p99_us;
};

struct coord_task {
        uint32_t chain;              /* index into the graph's chains (a REST vertex) */
        uint32_t subtask;
        uint32_t job_slot;           /* the job slot it shares (== subtask) */
        enum coord_task_state state;
        uint64_t records_in;
        uint64_t records_out;
        uint64_t late_dropped;       /* numLateRecordsDropped of its event-time windows */
        struct coord_latency latency;
        int64_t start_ms;            /* wall time it was deployed, -1 before */
        int64_t end_ms;              /* wall time it reached a terminal state, -1 before */
        bool seen;                   /* listed in the report being processed */
        uint8_t missed;              /* reports in a row that did not list it */
};

struct coord_placement {
        struct coord_worker *worker; /* NULL: not placed, or the worker was lost */
        uint32_t worker_slot;
        bool deploy_acked;
        bool cancel_sent;
};

struct coord_exception {
        int64_t ts_ms;
        char *text;                  /* owned */
        char task[JOB_NAME_MAX + 32];
        char location[COORD_WORKER_HOST_MAX + 16];
};

struct coord_job {
        struct coord *c;
        struct coord_job *next;
        char id[ID_HEX_LEN + 1];
        char name[JOB_NAME_MAX + 1];
        struct job_graph *g;         /* owned; NULL for a job known only by its result */
        char *graph_bytes;           /* owned; job_graph_encode output (deploy payload) */
        size_t graph_len;
        bool bounded;

        enum coord_job_state state;
        int64_t state_ts_ms[COORD_JOB__COUNT]; /* wall time of entering each state, 0 = never */
        int64_t start_ms;            /* wall time of submission (or recovery) */
        int64_t end_ms;              /* wall time of reaching a terminal state, -1 before */
        int64_t last_mod_ms;

        uint32_t attempt;            /* current deployment; 0 before the first */
        uint32_t max_seen_attempt;   /* highest attempt any worker reported */
        uint32_t restarts;           /* restarts used (restart strategy) */
        uint32_t slots_needed;
        struct coord_placement *placement; /* slots_needed entries */
        struct coord_task *tasks;    /* n_tasks entries, by chain then subtask */
        size_t n_tasks;
        bool deployed;               /* placement and tasks belong to `attempt` */

        struct event *timer;         /* restart delay */
        bool restart_wait;           /* the delay is running */
        bool waiting_slots_logged;

        /* persistence (store.c) */
        bool recovered;              /* taken over from the job graph store */
        bool graph_persisted;
        bool result_pending;
        bool result_written;
        bool cleanup_pending;
        bool cleaned;
        bool freed_on_workers;

        struct coord_exception exc[COORD_MAX_EXCEPTIONS]; /* ring */
        uint32_t n_exc;              /* total recorded */
        char *root_exception;        /* owned: the last failure cause */
        int64_t root_exception_ts_ms;

        struct coord_ckpt *ckpt;     /* owned: checkpoints and restore (checkpoints.c) */
};

/* ---- the coordinator ---- */

#define COORD_FAILOVER_HISTORY 16

/* One failover this coordinator saw: the leader `from` was lost and `to` took over. */
struct coord_failover {
        int64_t wall_ms;                /* when the new leader was seen */
        int64_t duration_ms;            /* old leader gone -> new leader */
        uint64_t epoch;                 /* the new leader's */
        char from[HA_NAME_MAX];         /* "" when not known */
        char to[HA_NAME_MAX];
};

struct coord {
        struct event_base *base;
        const struct cfg *cfg;
        char host[COORD_HOST_MAX + 1];  /* advertised; main.c checks the length */
        char conf_dir[1024];
        char id[ID_HEX_LEN + 1];     /* this coordinator's resource id */
        char ha_base[512];           /* <root>/<cluster> */
        char cluster_id[160];
        char rpc_addr[HA_ADDR_MAX];  /* host:port */
        char rest_url[HA_ADDR_MAX];  /* http://host:port */
        uint16_t rpc_port;
        uint16_t rest_port;
        int64_t start_wall_ms;

        /* settings read once */
        uint32_t hb_interval_ms;
        uint32_t hb_timeout_ms;
        uint32_t default_parallelism;
        bool restart_fixed_delay;
        uint32_t restart_attempts;
        uint32_t restart_delay_ms;
        size_t rest_max_body_bytes;
        size_t rpc_max_frame_bytes;
        int64_t result_ttl_ms;
        bool expose_passwd;          /* env FLINC_TEST_EXPOSE_ZK_PASSWD=1: /ha shows it */

        struct ha_zk *zk;
        struct ha_election *election;
        struct ha_retrieval *retrieval;
        struct ha_store *store;
        struct rpc_server *rpc;
        struct coord_rest *rest;
        struct event *reconcile_ev;  /* deferred: runs coord_jobs_reconcile once */
        struct event *recover_retry_ev; /* recovery failed on the connection: again */
        struct event *settle_ev;     /* end of the post-election settle window (jobs.c) */
        struct event *expire_ev;     /* periodic: expire old job results */

        /* leadership */
        uint64_t epoch;              /* of the term held (0 when none) */
        bool leader_ready;           /* recovery read the stores: may schedule */
        uint64_t leader_gen;         /* bumped per term: completions of an old term drop */
        int64_t elected_wall_ms;
        uint64_t elected_mono_ms;

        /* session */
        int64_t session_id;
        char session_passwd_hex[33];
        int negotiated_timeout_ms;

        /* who leads (leader retrieval on <base>/leader), for forwarding and /ha */
        bool leader_known;
        struct ha_leader_info leader;

        /* standbys (from <base>/election), for /ha */
        struct ha_candidate_info *candidates;
        size_t n_candidates;
        bool candidates_busy;
        bool candidates_again;  /* the list changed during a fetch: fetch again after it */

        /* last failover seen by this process: when the previous leader was lost (the
         * leader node disappeared or our own term ended) and when a leader took over */
        uint64_t leader_gone_mono_ms;   /* 0 when no failover is in progress */
        int64_t last_failover_wall_ms;  /* when the new leader was elected */
        int64_t last_failover_ms;       /* leader gone -> new leader elected */
        uint64_t last_failover_epoch;
        /* every failover seen by this process, a ring: the newest is
         * failovers[(n_failovers - 1) % COORD_FAILOVER_HISTORY] (for /ha) */
        struct coord_failover failovers[COORD_FAILOVER_HISTORY];
        uint32_t n_failovers;

        /* registry */
        struct coord_worker *workers;
        size_t n_workers;

        /* jobs */
        struct coord_job *jobs;
        size_t n_jobs;

        bool shutting_down;
};

/* ---- coord.c ---- */

/* The one question before any side effect (deploy, cancel, store write): runs the
 * ZooKeeper stall check first, then asks the election. */
bool coord_may_act(struct coord *c);
/* Whether this process holds the leadership term (acting or suspended). */
bool coord_holds_term(const struct coord *c);
/* "leader", "suspended", "standby", "electing" (no leader known), "stopping". */
const char *coord_role_name(const struct coord *c);
/* Asks for coord_jobs_reconcile to run once, soon, on the loop. */
void coord_schedule_reconcile(struct coord *c);
/* Writes the /ha object. */
void coord_ha_to_json(struct coord *c, struct json_writer *w);

/* ---- registry.c ---- */

int coord_registry_start(struct coord *c, char *err, size_t err_len);
void coord_registry_stop(struct coord *c);
/* Drops every worker (leadership ended): closes their connections, frees them. */
void coord_registry_drop_all(struct coord *c, const char *reason);
struct coord_worker *coord_worker_find(struct coord *c, const char *id);
/* Sends a cancel of (job, attempt) to w (epoch-stamped). 0 or a negative errno. */
int coord_worker_send_cancel(struct coord_worker *w, const char *job, uint32_t attempt);
/* One-way free_job to every worker. */
void coord_registry_free_job(struct coord *c, const char *job);
uint32_t coord_registry_total_slots(const struct coord *c);
uint32_t coord_registry_free_slots(const struct coord *c);
/* The highest attempt of job any worker reported in its last report (0: none). */
uint32_t coord_registry_max_reported_attempt(const struct coord *c, const char *job);
/* A terminal task_state for a task we did not place: frees its slot at once. */
void coord_registry_foreign_done(struct coord_worker *w, const char *job, uint32_t attempt,
                                 uint32_t vertex, uint32_t subtask);

/* ---- jobs.c ---- */

/* Validates and submits a parsed graph (ownership of g passes in, even on error).
 * The job is persisted before done() is called with 0 and the id, or with an error
 * (400-class errors are -EINVAL with a message; -EAGAIN not acting; -EIO store). */
typedef void (*coord_submit_done_fn)(struct coord *c, int r, const char *job_id,
                                     const char *msg, void *arg);
void coord_jobs_submit(struct coord *c, struct job_graph *g, coord_submit_done_fn done,
                       void *arg);
/* Cancels a job: 0 (accepted), -ENOENT (unknown), -EALREADY (terminal: nothing to
 * do, also 0 for REST as Flink answers 202), -EAGAIN (not acting). */
int coord_jobs_cancel(struct coord *c, const char *job_id);
struct coord_job *coord_job_find(struct coord *c, const char *id);
/* Runs every job's state machine one step: called through coord_schedule_reconcile. */
void coord_jobs_reconcile(struct coord *c);
/* A task state message, a heartbeat task report. */
void coord_jobs_task_update(struct coord *c, struct coord_worker *w, const char *job,
                            uint32_t attempt, uint32_t chain, uint32_t subtask,
                            enum coord_task_state st, const char *error, size_t error_len,
                            uint64_t records_in, uint64_t records_out, uint64_t late_dropped,
                            const struct coord_latency *latency, bool from_report);
/* Around the task list of one heartbeat: tasks placed on w that its reports stop
 * listing are taken as failed. */
void coord_jobs_report_begin(struct coord *c, struct coord_worker *w);
void coord_jobs_report_end(struct coord *c, struct coord_worker *w);
/* The worker is going away: every task placed on it is lost. Clears the placement's
 * pointers to w. */
void coord_jobs_worker_lost(struct coord *c, struct coord_worker *w, const char *reason);
/* Leadership ended: frees every job (and cancels their timers). */
void coord_jobs_drop_all(struct coord *c);
/* Leadership began: reads the stores and takes over jobs without a terminal result. */
void coord_jobs_recover(struct coord *c);
/* Removes job results older than jobstore.expiration-time (and those jobs from memory). */
void coord_jobs_expire_results(struct coord *c);
/* Records a job known only by its terminal result (from the job result store). */
void coord_jobs_add_result_only(struct coord *c, const struct ha_job_result *r);
void coord_jobs_free(struct coord_job *j);

/* ---- views.c: Flink-shaped JSON ---- */

void coord_view_overview(struct coord *c, struct json_writer *w);
void coord_view_jobs(struct coord *c, struct json_writer *w);
void coord_view_jobs_overview(struct coord *c, struct json_writer *w);
void coord_view_job(struct coord *c, const struct coord_job *j, struct json_writer *w);
void coord_view_job_exceptions(struct coord *c, const struct coord_job *j,
                               struct json_writer *w);
/* One vertex (chain) with its subtasks and their workers: 0, or -ENOENT when the job
 * has no vertex vertex_id (nothing written then). */
/* Flink's metric REST API for a vertex: GET /jobs/:jobid/vertices/:vertexid/metrics
 * (ids "<subtask>.<metric>", values as strings) and .../subtasks/metrics (aggregated:
 * min, max, avg, sum over the subtasks; `agg` a comma-separated subset). Metrics:
 * numRecordsIn, numRecordsOut, and numLateRecordsDropped for a vertex with a window.
 * get / agg: comma-separated lists or NULL (no get: the ids only). 0, -ENOENT (no such
 * vertex) or -EINVAL (agg names something else). */
int coord_view_vertex_metrics(struct coord *c, const struct coord_job *j, const char *vertex_id,
                              bool aggregated, const char *get, const char *agg,
                              struct json_writer *w);
int coord_view_job_vertex(struct coord *c, const struct coord_job *j, const char *vertex_id,
                          struct json_writer *w);
void coord_view_taskmanagers(struct coord *c, struct json_writer *w);
void coord_view_taskmanager(struct coord *c, const struct coord_worker *wk,
                            struct json_writer *w);
void coord_view_config(struct coord *c, struct json_writer *w);
void coord_view_jobmanager_config(struct coord *c, struct json_writer *w);

/* ---- rest.c ---- */

int coord_rest_start(struct coord *c, char *err, size_t err_len);
void coord_rest_stop(struct coord *c);

/* ---- recovery (jobs.c) uses c->store (ha/stores.h) directly ---- */
