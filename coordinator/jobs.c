/* Jobs on the leader: submission (persisted before it is acknowledged), scheduling into
 * free slots with slot sharing, deployment stamped with the epoch, cancel, the job state
 * machine with Flink's states and the fixed-delay restart strategy, terminal results
 * and cleanup, and recovery of every job without a terminal result on becoming leader.
 *
 * Job states (logged as `+job-state job=<id> state=<S> from=<S> ...`):
 *
 *   CREATED --(every task RUNNING)--> RUNNING --(every task FINISHED)--> FINISHED
 *      |                                 |
 *      +---------(task failed, worker lost, deploy failed)--> FAILING
 *                                           |  cancel the attempt's other tasks;
 *                                           |  when every task is terminal:
 *                       restarts left: RESTARTING --(delay, then free slots,
 *                                           |        deploy, every task RUNNING)--> RUNNING
 *                       none left:     FAILED
 *   any non-terminal --(cancel)--> CANCELLING --(every task terminal)--> CANCELED
 *   (CREATED or RESTARTING with nothing deployed go to CANCELED at once)
 *
 * RUNNING means every subtask of the current attempt runs (Flink switches to RUNNING
 * when scheduling starts); until then a new or recovered job is CREATED and a restarting
 * one RESTARTING, also while it waits for slots.
 *
 * Side effects (deploy, cancel, store writes) happen only in coord_jobs_reconcile and
 * in direct answers to requests, and only when coord_may_act(): the reconcile step is
 * level-triggered, so whatever was skipped while the leader was suspended happens when
 * it resumes. Worker messages update the bookkeeping at any time.
 *
 * A terminal job: its result goes to the job result store first, then its graph is
 * removed from the job graph store, then workers get free_job. */
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
#include "coordinator/checkpoints.h"
#include "coordinator/coord_internal.h"
#include "ha/stores.h"
#include "ha/zk.h"

/* ---- names ----------------------------------------------------------------------- */

static const char *const job_state_names[COORD_JOB__COUNT] = {
        [COORD_JOB_CREATED] = "CREATED",       [COORD_JOB_RUNNING] = "RUNNING",
        [COORD_JOB_FAILING] = "FAILING",       [COORD_JOB_RESTARTING] = "RESTARTING",
        [COORD_JOB_CANCELLING] = "CANCELLING", [COORD_JOB_CANCELED] = "CANCELED",
        [COORD_JOB_FINISHED] = "FINISHED",     [COORD_JOB_FAILED] = "FAILED",
};

static const char *const task_state_names[COORD_TASK__COUNT] = {
        [COORD_TASK_CREATED] = "CREATED",       [COORD_TASK_SCHEDULED] = "SCHEDULED",
        [COORD_TASK_DEPLOYING] = "DEPLOYING",   [COORD_TASK_RUNNING] = "RUNNING",
        [COORD_TASK_FINISHED] = "FINISHED",     [COORD_TASK_CANCELING] = "CANCELING",
        [COORD_TASK_CANCELED] = "CANCELED",     [COORD_TASK_FAILED] = "FAILED",
        [COORD_TASK_RECONCILING] = "RECONCILING", [COORD_TASK_INITIALIZING] = "INITIALIZING",
};

static const char *const task_state_keys[COORD_TASK__COUNT] = {
        [COORD_TASK_CREATED] = "created",       [COORD_TASK_SCHEDULED] = "scheduled",
        [COORD_TASK_DEPLOYING] = "deploying",   [COORD_TASK_RUNNING] = "running",
        [COORD_TASK_FINISHED] = "finished",     [COORD_TASK_CANCELING] = "canceling",
        [COORD_TASK_CANCELED] = "canceled",     [COORD_TASK_FAILED] = "failed",
        [COORD_TASK_RECONCILING] = "reconciling", [COORD_TASK_INITIALIZING] = "initializing",
};

const char *coord_job_state_name(enum coord_job_state s) {
        return s < COORD_JOB__COUNT ? job_state_names[s] : "UNKNOWN";
}

bool coord_job_state_is_terminal(enum coord_job_state s) {
        return s == COORD_JOB_CANCELED || s == COORD_JOB_FINISHED || s == COORD_JOB_FAILED;
}

const char *coord_task_state_name(enum coord_task_state s) {
        return s < COORD_TASK__COUNT ? task_state_names[s] : "UNKNOWN";
}

const char *coord_task_state_key(enum coord_task_state s) {
        return s < COORD_TASK__COUNT ? task_state_keys[s] : "unknown";
}

bool coord_task_state_is_terminal(enum coord_task_state s) {
        return s == COORD_TASK_FINISHED || s == COORD_TASK_CANCELED || s == COORD_TASK_FAILED;
}

int coord_task_state_parse(const char *s, size_t len, enum coord_task_state *ret) {
        for (int i = 0; i < COORD_TASK__COUNT; i++)
                if (strlen(task_state_names[i]) == len && memcmp(task_state_names[i], s, len) == 0) {
                        *ret = (enum coord_task_state)i;
                        return 0;
                }
        return -EINVAL;
}

/* Order in which a task's states may follow each other; a report never moves a task
 * back (reports can lag behind task_state messages). */
static int task_rank(enum coord_task_state s) {
        switch (s) {
        case COORD_TASK_CREATED:
                return 0;
        case COORD_TASK_SCHEDULED:
                return 1;
        case COORD_TASK_DEPLOYING:
                return 2;
        case COORD_TASK_INITIALIZING:
        case COORD_TASK_RECONCILING:
                return 3;
        case COORD_TASK_RUNNING:
                return 4;
        case COORD_TASK_CANCELING:
                return 5;
        default:
                return 6;
        }
}

/* ---- small helpers --------------------------------------------------------------- */

struct coord_job *coord_job_find(struct coord *c, const char *id) {
        for (struct coord_job *j = c->jobs; j; j = j->next)
                if (strcmp(j->id, id) == 0)
                        return j;
        return NULL;
}

static void job_set_state(struct coord_job *j, enum coord_job_state st, const char *reason) {
        if (j->state == st)
                return;
        enum coord_job_state from = j->state;
        j->state = st;
        int64_t now = clock_wall_ms();
        j->state_ts_ms[st] = now;
        j->last_mod_ms = now;
        if (coord_job_state_is_terminal(st))
                j->end_ms = now;
        log_event("+job-state", "job=%s state=%s from=%s attempt=%" PRIu32 " epoch=%" PRIu64
                  " reason=%s", j->id, job_state_names[st], job_state_names[from], j->attempt,
                  j->c->epoch, reason);
}

static void job_add_exception(struct coord_job *j, const char *task, const char *location,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void job_add_exception(struct coord_job *j, const char *task, const char *location,
                              const char *fmt, ...) {
        char text[COORD_EXCEPTION_MAX_BYTES];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        struct coord_exception *e = &j->exc[j->n_exc % COORD_MAX_EXCEPTIONS];
        free(e->text);
        e->text = strdup(text);
        e->ts_ms = clock_wall_ms();
        snprintf(e->task, sizeof(e->task), "%s", task ? task : "");
        snprintf(e->location, sizeof(e->location), "%s", location ? location : "");
        j->n_exc++;
        free(j->root_exception);
        j->root_exception = strdup(text);
        j->root_exception_ts_ms = e->ts_ms;
        j->last_mod_ms = e->ts_ms;
}

static const char *chain_name(const struct coord_job *j, uint32_t chain) {
        if (!j->g || chain >= j->g->n_chains)
                return "?";
        const struct job_chain *ch = &j->g->chains[chain];
        return j->g->vertices[j->g->chain_vertices[ch->first]].name;
}

static struct coord_task *job_task(struct coord_job *j, uint32_t chain, uint32_t subtask) {
        for (size_t i = 0; i < j->n_tasks; i++)
                if (j->tasks[i].chain == chain && j->tasks[i].subtask == subtask)
                        return &j->tasks[i];
        return NULL;
}

static bool job_all_tasks_terminal(const struct coord_job *j) {
        for (size_t i = 0; i < j->n_tasks; i++)
                if (!coord_task_state_is_terminal(j->tasks[i].state))
                        return false;
        return true;
}

/* Gives the job's slots back (the attempt is over). */
static void job_release_slots(struct coord_job *j) {
        for (uint32_t s = 0; s < j->slots_needed; s++) {
                struct coord_placement *p = &j->placement[s];
                if (p->worker && p->worker_slot < p->worker->slots &&
                    p->worker->slot[p->worker_slot].job == j)
                        p->worker->slot[p->worker_slot].job = NULL;
                memset(p, 0, sizeof(*p));
        }
        j->deployed = false;
}

static void job_enter_terminal(struct coord_job *j, enum coord_job_state st, const char *reason) {
        if (j->timer)
                evtimer_del(j->timer);
        j->restart_wait = false;
        job_release_slots(j);
        job_set_state(j, st, reason);
        coord_schedule_reconcile(j->c);
}

void coord_jobs_free(struct coord_job *j) {
        if (!j)
                return;
        if (j->timer)
                event_free(j->timer);
        for (size_t i = 0; i < COORD_MAX_EXCEPTIONS; i++)
                free(j->exc[i].text);
        free(j->root_exception);
        coord_ckpt_destroy(j->ckpt);
        free(j->placement);
        free(j->tasks);
        free(j->graph_bytes);
        job_graph_free(j->g);
        free(j);
}

static void job_unlink(struct coord *c, struct coord_job *j) {
        for (struct coord_job **p = &c->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        c->n_jobs--;
                        return;
                }
}

/* Keeps at most COORD_MAX_TERMINAL_JOBS terminal jobs, dropping the oldest ended. */
static void jobs_prune(struct coord *c) {
        for (;;) {
                size_t n = 0;
                struct coord_job *oldest = NULL;
                for (struct coord_job *j = c->jobs; j; j = j->next) {
                        if (!coord_job_state_is_terminal(j->state) || !j->cleaned)
                                continue;
                        n++;
                        if (!oldest || j->end_ms < oldest->end_ms)
                                oldest = j;
                }
                if (n <= COORD_MAX_TERMINAL_JOBS || !oldest)
                        return;
                job_unlink(c, oldest);
                coord_jobs_free(oldest);
        }
}

static void job_restart_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct coord_job *j = arg;
        j->restart_wait = false;
        coord_schedule_reconcile(j->c);
}

/* A new job record for graph g (taken over; freed with the job on error). */
static int job_create(struct coord *c, struct job_graph *g, char *bytes, size_t len,
                      struct coord_job **ret) {
        struct coord_job *j = calloc(1, sizeof(*j));
        if (!j) {
                job_graph_free(g);
                free(bytes);
                return -ENOMEM;
        }
        j->c = c;
        j->g = g;
        j->graph_bytes = bytes;
        j->graph_len = len;
        id_format(&g->id, j->id);
        snprintf(j->name, sizeof(j->name), "%s", g->name);
        j->bounded = job_graph_is_bounded(g);
        j->slots_needed = job_graph_total_slots(g);
        j->end_ms = -1;
        j->start_ms = clock_wall_ms();
        j->last_mod_ms = j->start_ms;
        j->state = COORD_JOB_CREATED;
        j->state_ts_ms[COORD_JOB_CREATED] = j->start_ms;
        size_t n_tasks = 0;
        for (size_t i = 0; i < g->n_chains; i++)
                n_tasks += g->chains[i].parallelism;
        j->placement = calloc(j->slots_needed ? j->slots_needed : 1, sizeof(*j->placement));
        j->tasks = calloc(n_tasks ? n_tasks : 1, sizeof(*j->tasks));
        j->timer = evtimer_new(c->base, job_restart_timer_cb, j);
        if (!j->placement || !j->tasks || !j->timer || coord_ckpt_create(j) < 0) {
                coord_jobs_free(j);
                return -ENOMEM;
        }
        size_t k = 0;
        for (uint32_t ch = 0; ch < g->n_chains; ch++)
                for (uint32_t s = 0; s < g->chains[ch].parallelism; s++) {
                        struct coord_task *t = &j->tasks[k++];
                        t->chain = ch;
                        t->subtask = s;
                        t->job_slot = s;
                        t->state = COORD_TASK_CREATED;
                        t->start_ms = -1;
                        t->end_ms = -1;
                }
        j->n_tasks = n_tasks;
        *ret = j;
        return 0;
}

static void job_link(struct coord *c, struct coord_job *j) {
        j->next = c->jobs;
        c->jobs = j;
        c->n_jobs++;
}

/* ---- failure, restart --------------------------------------------------------------- */

static bool job_may_restart(const struct coord_job *j, uint32_t *ret_delay_ms) {
        const struct coord *c = j->c;
        bool fixed = c->restart_fixed_delay;
        uint32_t attempts = c->restart_attempts;
        int64_t delay = c->restart_delay_ms;
        if (j->g && j->g->restart.configured) {
                fixed = j->g->restart.type == JOB_RESTART_FIXED_DELAY;
                attempts = j->g->restart.attempts;
                delay = j->g->restart.delay_ms;
        }
        *ret_delay_ms = delay < 0 ? 0 : (uint32_t)delay;
        return fixed && j->restarts < attempts;
}

/* The current attempt failed: stop it (FAILING), then restart or fail (reconcile). */
static void job_fail(struct coord_job *j, const char *reason) {
        if (coord_job_state_is_terminal(j->state) || j->state == COORD_JOB_FAILING ||
            j->state == COORD_JOB_CANCELLING)
                return;
        job_set_state(j, COORD_JOB_FAILING, reason);
        coord_schedule_reconcile(j->c);
}

void coord_jobs_restore_failed(struct coord_job *j, const char *msg) {
        if (coord_job_state_is_terminal(j->state))
                return;
        job_add_exception(j, NULL, "", "restore failed: %s", msg);
        if (j->deployed) {
                job_fail(j, "restore-failed");
                return;
        }
        /* never a silent fallback to an older checkpoint or a fresh start */
        job_enter_terminal(j, COORD_JOB_FAILED, "restore-failed");
}

/* ---- task updates ----------------------------------------------------------------- */

void coord_jobs_task_update(struct coord *c, struct coord_worker *w, const char *job,
                            uint32_t attempt, uint32_t chain, uint32_t subtask,
                            enum coord_task_state st, const char *error, size_t error_len,
                            uint64_t records_in, uint64_t records_out, uint64_t late_dropped,
                            const struct coord_latency *latency, bool from_report) {
        struct coord_job *j = coord_job_find(c, job);
        struct coord_task *t = NULL;
        if (j && j->deployed && attempt == j->attempt)
                t = job_task(j, chain, subtask);
        if (t) {
                struct coord_placement *p = t->job_slot < j->slots_needed ? &j->placement[t->job_slot] : NULL;
                if (!p || p->worker != w)
                        t = NULL; /* reported by a worker it was not placed on */
        }
        if (!t) {
                if (coord_task_state_is_terminal(st))
                        coord_registry_foreign_done(w, job, attempt, chain, subtask);
                log_debug("task update for job %s attempt %" PRIu32 " vertex %" PRIu32
                          " subtask %" PRIu32 " from worker %s: not a current task; ignored",
                          job, attempt, chain, subtask, w->id);
                return;
        }
        if (from_report)
                t->seen = true;
        if (records_in > t->records_in)
                t->records_in = records_in;
        if (records_out > t->records_out)
                t->records_out = records_out;
        if (late_dropped > t->late_dropped)
                t->late_dropped = late_dropped;
        if (latency && latency->count)
                t->latency = *latency;
        if (coord_task_state_is_terminal(t->state) || task_rank(st) < task_rank(t->state) ||
            st == t->state)
                return;
        enum coord_task_state from = t->state;
        t->state = st;
        j->last_mod_ms = clock_wall_ms();
        if (coord_task_state_is_terminal(st))
                t->end_ms = j->last_mod_ms;
        log_debug("task job=%s attempt=%" PRIu32 " vertex=%" PRIu32 " subtask=%" PRIu32
                  " %s -> %s (worker %s%s)", job, attempt, chain, subtask,
                  coord_task_state_name(from), coord_task_state_name(st), w->id,
                  from_report ? ", report" : "");
        if (st == COORD_TASK_FAILED) {
                char taskname[JOB_NAME_MAX + 32];
                snprintf(taskname, sizeof(taskname), "%s (%" PRIu32 "/%" PRIu32 ")",
                         chain_name(j, chain), subtask + 1,
                         j->g ? j->g->chains[chain].parallelism : 0);
                char loc[COORD_WORKER_HOST_MAX + 16];
                snprintf(loc, sizeof(loc), "%s:%" PRIu32, w->host, w->data_port);
                job_add_exception(j, taskname, loc, "task %s failed on worker %s: %.*s",
                                  taskname, w->id, (int)(error ? error_len : 0),
                                  error ? error : "no reason given");
                log_warn("job %s: task %s failed on worker %s: %.*s", j->id, taskname, w->id,
                         (int)(error ? error_len : 0), error ? error : "no reason given");
                job_fail(j, "task-failed");
        } else if (st == COORD_TASK_CANCELED && (j->state == COORD_JOB_RUNNING ||
                                                 j->state == COORD_JOB_CREATED ||
                                                 j->state == COORD_JOB_RESTARTING)) {
                /* Canceled without us asking: the worker gave it up. */
                job_add_exception(j, chain_name(j, chain), w->host,
                                  "task %s (%" PRIu32 ") was canceled by worker %s",
                                  chain_name(j, chain), subtask + 1, w->id);
                job_fail(j, "task-canceled-by-worker");
        }
        coord_schedule_reconcile(c);
}

void coord_jobs_report_begin(struct coord *c, struct coord_worker *w) {
        for (struct coord_job *j = c->jobs; j; j = j->next)
                for (size_t i = 0; i < j->n_tasks; i++)
                        j->tasks[i].seen = false;
}

void coord_jobs_report_end(struct coord *c, struct coord_worker *w) {
        for (struct coord_job *j = c->jobs; j; j = j->next) {
                if (!j->deployed)
                        continue;
                for (size_t i = 0; i < j->n_tasks; i++) {
                        struct coord_task *t = &j->tasks[i];
                        struct coord_placement *p = &j->placement[t->job_slot];
                        if (p->worker != w || !p->deploy_acked ||
                            coord_task_state_is_terminal(t->state))
                                continue;
                        if (t->seen) {
                                t->missed = 0;
                                continue;
                        }
                        /* Acknowledged but not in the worker's report: after two reports
                         * in a row it is gone (the worker lost it or never had it). */
                        if (++t->missed < 2)
                                continue;
                        log_warn("job %s attempt %" PRIu32 ": task %s (%" PRIu32
                                 ") is missing from worker %s's reports; taking it as failed",
                                 j->id, j->attempt, chain_name(j, t->chain), t->subtask + 1, w->id);
                        t->state = COORD_TASK_FAILED;
                        t->end_ms = clock_wall_ms();
                        if (j->state == COORD_JOB_CREATED || j->state == COORD_JOB_RUNNING ||
                            j->state == COORD_JOB_RESTARTING) {
                                job_add_exception(j, chain_name(j, t->chain), w->host,
                                                  "task %s (%" PRIu32 ") vanished from worker %s",
                                                  chain_name(j, t->chain), t->subtask + 1, w->id);
                                job_fail(j, "task-missing");
                        }
                        coord_schedule_reconcile(c);
                }
        }
}

void coord_jobs_worker_lost(struct coord *c, struct coord_worker *w, const char *reason) {
        for (struct coord_job *j = c->jobs; j; j = j->next) {
                bool lost_live = false; /* a task that had not ended ran there */
                for (uint32_t s = 0; s < j->slots_needed; s++) {
                        struct coord_placement *p = &j->placement[s];
                        if (p->worker != w)
                                continue;
                        p->worker = NULL;
                        for (size_t i = 0; i < j->n_tasks; i++) {
                                struct coord_task *t = &j->tasks[i];
                                if (t->job_slot == s && !coord_task_state_is_terminal(t->state)) {
                                        t->state = COORD_TASK_FAILED;
                                        t->end_ms = clock_wall_ms();
                                        lost_live = true;
                                }
                        }
                }
                if (!lost_live || !j->deployed)
                        continue;
                if (j->state == COORD_JOB_CREATED || j->state == COORD_JOB_RUNNING ||
                    j->state == COORD_JOB_RESTARTING) {
                        job_add_exception(j, NULL, w->host,
                                          "worker %s (%s) lost: %s; its tasks of attempt %" PRIu32
                                          " failed", w->id, w->host, reason, j->attempt);
                        char why[160];
                        snprintf(why, sizeof(why), "worker-lost(%s)", w->id);
                        job_fail(j, why);
                }
        }
        for (uint32_t i = 0; i < w->slots; i++)
                w->slot[i].job = NULL;
        coord_schedule_reconcile(c);
}

/* ---- deployment ------------------------------------------------------------------- */

struct deploy_ctx {
        struct coord *c;
        uint64_t gen;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
        char worker[ID_HEX_LEN + 1];
};

static void deploy_done(struct rpc_conn *conn, int error, const msgpack_object *response,
                        void *arg) {
        struct deploy_ctx *d = arg;
        struct coord *c = d->c;
        if (error != -ECANCELED)
                ha_zk_poll_stall(c->zk); /* a pause ends the term before a failure is taken */
        struct coord_job *j = c->leader_gen == d->gen ? coord_job_find(c, d->job) : NULL;
        if (!j || j->attempt != d->attempt || !j->deployed) {
                free(d);
                return;
        }
        if (error == 0) {
                for (uint32_t s = 0; s < j->slots_needed; s++) {
                        struct coord_placement *p = &j->placement[s];
                        if (p->worker && strcmp(p->worker->id, d->worker) == 0)
                                p->deploy_acked = true;
                }
                log_debug("deploy of job %s attempt %" PRIu32 " acknowledged by worker %s", d->job,
                          d->attempt, d->worker);
        } else {
                char text[RPC_ERROR_MAX_BYTES + 1] = "";
                const char *e;
                size_t elen;
                if (error == -EREMOTEIO && rpc_response_error(response, &e, &elen) == 0)
                        snprintf(text, sizeof(text), "%.*s", (int)elen, e);
                else
                        snprintf(text, sizeof(text), "%s", err_str(error));
                log_warn("deploy of job %s attempt %" PRIu32 " to worker %s failed: %s", d->job,
                         d->attempt, d->worker, text);
                /* Whatever the worker did not confirm counts as not started; if it did
                 * start something after all, its next report shows a task we do not
                 * know and it is canceled then. */
                int64_t now = clock_wall_ms();
                for (size_t i = 0; i < j->n_tasks; i++) {
                        struct coord_task *t = &j->tasks[i];
                        struct coord_placement *p = &j->placement[t->job_slot];
                        if (p->worker && strcmp(p->worker->id, d->worker) == 0 &&
                            !coord_task_state_is_terminal(t->state)) {
                                t->state = COORD_TASK_FAILED;
                                t->end_ms = now;
                        }
                }
                job_add_exception(j, NULL, d->worker, "deployment to worker %s failed: %s",
                                  d->worker, text);
                job_fail(j, "deploy-failed");
        }
        free(d);
}

/* Picks slots for the job, spreading its slots over the workers with the most free
 * slots. true when enough were found (j->placement filled, worker slots taken). */
static bool job_place(struct coord *c, struct coord_job *j) {
        if (coord_registry_free_slots(c) < j->slots_needed)
                return false;
        for (uint32_t s = 0; s < j->slots_needed; s++) {
                struct coord_worker *best = NULL;
                uint32_t best_free = 0;
                for (struct coord_worker *w = c->workers; w; w = w->next) {
                        uint32_t f = coord_worker_free_slots(w);
                        if (f > best_free) {
                                best = w;
                                best_free = f;
                        }
                }
                if (!best)
                        return false; /* cannot happen: counted above */
                for (uint32_t i = 0; i < best->slots; i++)
                        if (!best->slot[i].job && !best->slot[i].foreign) {
                                best->slot[i].job = j;
                                best->slot[i].job_slot = s;
                                j->placement[s] = (struct coord_placement){
                                        .worker = best, .worker_slot = i};
                                break;
                        }
        }
        return true;
}

static int deploy_to_worker(struct coord *c, struct coord_job *j, struct coord_worker *w) {
        uint32_t n = 0;
        for (size_t i = 0; i < j->n_tasks; i++)
                if (j->placement[j->tasks[i].job_slot].worker == w)
                        n++;
        if (n == 0)
                return 0;
        struct deploy_ctx *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->c = c;
        d->gen = c->leader_gen;
        snprintf(d->job, sizeof(d->job), "%s", j->id);
        snprintf(d->worker, sizeof(d->worker), "%s", w->id);
        d->attempt = j->attempt;

        struct rpc_msg m;
        rpc_msg_init(&m, 7);
        rpc_msg_set_epoch(&m, c->epoch);
        msg_pack_kv_str(&m.pk, "job", j->id);
        msg_pack_kv_u64(&m.pk, "attempt", j->attempt);
        msg_pack_kv_bin(&m.pk, "graph", j->graph_bytes, j->graph_len);
        /* the data plane and the restore (checkpoints.c) */
        msg_pack_kv_u64(&m.pk, "restored_checkpoint", coord_ckpt_restore_id(j));
        msg_pack_kv_str(&m.pk, "restore_dir", coord_ckpt_restore_dir(j));
        coord_ckpt_pack_peers(j, &m.pk);
        msg_pack_cstr(&m.pk, "tasks");
        msgpack_pack_array(&m.pk, n);
        for (size_t i = 0; i < j->n_tasks; i++) {
                const struct coord_task *t = &j->tasks[i];
                const struct coord_placement *p = &j->placement[t->job_slot];
                if (p->worker != w)
                        continue;
                msgpack_pack_map(&m.pk, 4);
                msg_pack_kv_u64(&m.pk, "vertex", t->chain);
                msg_pack_kv_u64(&m.pk, "subtask", t->subtask);
                msg_pack_kv_u64(&m.pk, "slot", p->worker_slot);
                coord_ckpt_pack_task_restore(j, t->chain, t->subtask, &m.pk);
        }
        int r = rpc_call(w->conn, PROTO_DEPLOY, &m, COORD_RPC_CALL_TIMEOUT_MS, deploy_done, d);
        rpc_msg_finish(&m);
        if (r < 0) {
                free(d);
                return r;
        }
        log_info("deploying job %s attempt %" PRIu32 " epoch %" PRIu64 ": %" PRIu32
                 " task(s) to worker %s (%s)", j->id, j->attempt, c->epoch, n, w->id, w->host);
        return 0;
}

/* Places and deploys the job's next attempt if enough slots are free. */
static void job_try_schedule(struct coord *c, struct coord_job *j) {
        if (!j->g || j->slots_needed == 0)
                return;
        if (!job_place(c, j)) {
                if (!j->waiting_slots_logged) {
                        log_info("job %s (%s) waits for slots: needs %" PRIu32 ", %" PRIu32
                                 " free of %" PRIu32 " registered", j->id,
                                 job_state_names[j->state], j->slots_needed,
                                 coord_registry_free_slots(c), coord_registry_total_slots(c));
                        j->waiting_slots_logged = true;
                }
                return;
        }
        j->waiting_slots_logged = false;
        uint32_t next = j->attempt;
        if (j->max_seen_attempt > next)
                next = j->max_seen_attempt;
        uint32_t reported = coord_registry_max_reported_attempt(c, j->id);
        if (reported > next)
                next = reported;
        j->attempt = next + 1;
        j->deployed = true;
        int64_t now = clock_wall_ms();
        for (size_t i = 0; i < j->n_tasks; i++) {
                struct coord_task *t = &j->tasks[i];
                t->state = COORD_TASK_DEPLOYING;
                t->records_in = 0;
                t->records_out = 0;
                t->late_dropped = 0;
                memset(&t->latency, 0, sizeof(t->latency));
                t->start_ms = now;
                t->end_ms = -1;
                t->seen = false;
                t->missed = 0;
        }
        j->last_mod_ms = now;
        /* One deploy per worker involved. */
        for (uint32_t s = 0; s < j->slots_needed; s++) {
                struct coord_worker *w = j->placement[s].worker;
                bool first = true;
                for (uint32_t k = 0; k < s; k++)
                        if (j->placement[k].worker == w)
                                first = false;
                if (!w || !first)
                        continue;
                int r = deploy_to_worker(c, j, w);
                if (r < 0) {
                        log_error(r, "deploy of job %s attempt %" PRIu32 " to worker %s", j->id,
                                  j->attempt, w->id);
                        job_add_exception(j, NULL, w->host, "deployment to worker %s failed: %s",
                                          w->id, err_str(r));
                        job_fail(j, "deploy-failed");
                        coord_ckpt_deployed(j);
                        return;
                }
        }
        coord_ckpt_deployed(j);
}

/* Sends cancels for the current attempt to every worker still holding its tasks. */
static void job_send_cancels(struct coord *c, struct coord_job *j) {
        for (uint32_t s = 0; s < j->slots_needed; s++) {
                struct coord_placement *p = &j->placement[s];
                if (!p->worker || p->cancel_sent)
                        continue;
                bool live = false;
                for (size_t i = 0; i < j->n_tasks; i++)
                        if (j->tasks[i].job_slot == s && !coord_task_state_is_terminal(j->tasks[i].state))
                                live = true;
                if (!live)
                        continue;
                /* One cancel per worker covers all its slots of this job. A cancel that
                 * could not be queued is tried again on the next round. */
                struct coord_worker *w = p->worker;
                int r = coord_worker_send_cancel(w, j->id, j->attempt);
                if (r < 0) {
                        log_warn("cancel of job %s attempt %" PRIu32 " to worker %s failed: %s",
                                 j->id, j->attempt, w->id, err_str(r));
                        continue;
                }
                log_info("canceling job %s attempt %" PRIu32 " on worker %s", j->id, j->attempt,
                         w->id);
                for (uint32_t k = s; k < j->slots_needed; k++)
                        if (j->placement[k].worker == w)
                                j->placement[k].cancel_sent = true;
                for (size_t i = 0; i < j->n_tasks; i++) {
                        struct coord_task *t = &j->tasks[i];
                        if (j->placement[t->job_slot].worker == w &&
                            !coord_task_state_is_terminal(t->state))
                                t->state = COORD_TASK_CANCELING;
                }
        }
}

/* ---- terminal results and cleanup ------------------------------------------------- */

struct store_ctx {
        struct coord *c;
        uint64_t gen;
        char job[ID_HEX_LEN + 1];
        coord_submit_done_fn submit_done;
        void *submit_arg;
        struct coord_job *pending; /* submit: the job not linked yet */
};

static struct store_ctx *store_ctx_new(struct coord *c, const char *job) {
        struct store_ctx *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->c = c;
        s->gen = c->leader_gen;
        snprintf(s->job, sizeof(s->job), "%s", job);
        return s;
}

static void cleanup_done(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_ctx *s = arg;
        struct coord *c = s->c;
        struct coord_job *j = c->leader_gen == s->gen ? coord_job_find(c, s->job) : NULL;
        if (j) {
                j->cleanup_pending = false;
                if (rep->r == 0 || rep->r == -ENOENT) {
                        j->cleaned = true;
                        log_info("job %s: graph removed from the job graph store", j->id);
                        jobs_prune(c);
                } else {
                        log_error(rep->r, "cleanup of job %s in the job graph store: %s", s->job,
                                  rep->error ? rep->error : "");
                }
                coord_schedule_reconcile(c);
        }
        free(s);
}

static void result_done(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_ctx *s = arg;
        struct coord *c = s->c;
        struct coord_job *j = c->leader_gen == s->gen ? coord_job_find(c, s->job) : NULL;
        if (j) {
                j->result_pending = false;
                if (rep->r == 0) {
                        j->result_written = true;
                        log_event("+job-result", "job=%s state=%s epoch=%" PRIu64, j->id,
                                  job_state_names[j->state], c->epoch);
                } else {
                        log_error(rep->r, "recording the result of job %s: %s", s->job,
                                  rep->error ? rep->error : "");
                }
                coord_schedule_reconcile(c);
        }
        free(s);
}

static void job_terminal_step(struct coord *c, struct coord_job *j) {
        if (!j->result_written) {
                if (j->result_pending)
                        return;
                struct ha_job_result res = {.end_time_ms = j->end_ms, .epoch = c->epoch};
                snprintf(res.job, sizeof(res.job), "%s", j->id);
                res.state = j->state == COORD_JOB_FINISHED ? HA_JOB_FINISHED
                            : j->state == COORD_JOB_CANCELED ? HA_JOB_CANCELED : HA_JOB_FAILED;
                struct store_ctx *s = store_ctx_new(c, j->id);
                if (!s)
                        return;
                int r = ha_jobresult_put(c->store, &res, result_done, s);
                if (r < 0) {
                        free(s);
                        log_error(r, "recording the result of job %s", j->id);
                        return;
                }
                j->result_pending = true;
                return;
        }
        if (!j->cleaned) {
                if (j->cleanup_pending)
                        return;
                struct store_ctx *s = store_ctx_new(c, j->id);
                if (!s)
                        return;
                int r = ha_jobgraph_remove(c->store, j->id, cleanup_done, s);
                if (r < 0) {
                        free(s);
                        log_error(r, "cleanup of job %s", j->id);
                        return;
                }
                j->cleanup_pending = true;
                return;
        }
        if (!j->freed_on_workers) {
                coord_registry_free_job(c, j->id);
                j->freed_on_workers = true;
        }
}

/* ---- the reconcile step ----------------------------------------------------------- */

/* A recovered job is deployed once the workers that ran it under the previous leader
 * have had a heartbeat interval (at most COORD_SETTLE_MAX_MS) after the election to
 * register and report: their reports carry the job's last attempt number, so the new
 * attempt numbers stay increasing across leaders, and the slots that still hold the old
 * attempt are known before placing. Arms c->settle_ev for the rest of the window. */
static bool recovery_settled(struct coord *c) {
        uint64_t window = c->hb_interval_ms < COORD_SETTLE_MAX_MS ? c->hb_interval_ms
                                                                  : COORD_SETTLE_MAX_MS;
        uint64_t since = clock_mono_ms() - c->elected_mono_ms;
        if (since >= window)
                return true;
        if (!evtimer_pending(c->settle_ev, NULL)) {
                uint64_t left = window - since;
                struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                                     .tv_usec = (suseconds_t)((left % 1000) * 1000)};
                evtimer_add(c->settle_ev, &tv);
        }
        return false;
}

static void job_step(struct coord *c, struct coord_job *j) {
        coord_ckpt_step(c, j);
        switch (j->state) {
        case COORD_JOB_CREATED:
        case COORD_JOB_RESTARTING:
                if (!c->leader_ready || j->restart_wait)
                        return;
                if (!j->deployed && j->recovered && j->attempt == 0 && !recovery_settled(c))
                        return;
                if (!j->deployed) {
                        /* what the attempt restores from, before its slots are taken */
                        if (coord_ckpt_restore_prepare(c, j) <= 0)
                                return;
                        job_try_schedule(c, j);
                        return;
                }
                {
                        bool all_up = j->n_tasks > 0;
                        for (size_t i = 0; i < j->n_tasks; i++) {
                                enum coord_task_state st = j->tasks[i].state;
                                if (st != COORD_TASK_RUNNING && st != COORD_TASK_FINISHED)
                                        all_up = false;
                        }
                        if (!all_up)
                                return;
                        job_set_state(j, COORD_JOB_RUNNING, "all-tasks-running");
                }
                /* a bounded job may have finished already */
                __attribute__((fallthrough));
        case COORD_JOB_RUNNING: {
                bool all_done = j->n_tasks > 0;
                for (size_t i = 0; i < j->n_tasks; i++)
                        if (j->tasks[i].state != COORD_TASK_FINISHED)
                                all_done = false;
                if (all_done)
                        job_enter_terminal(j, COORD_JOB_FINISHED, "all-tasks-finished");
                return;
        }
        case COORD_JOB_FAILING:
                job_send_cancels(c, j);
                if (!job_all_tasks_terminal(j))
                        return;
                job_release_slots(j);
                {
                        uint32_t delay_ms;
                        if (!job_may_restart(j, &delay_ms)) {
                                job_enter_terminal(j, COORD_JOB_FAILED, "no-restarts-left");
                                return;
                        }
                        j->restarts++;
                        job_set_state(j, COORD_JOB_RESTARTING, "restart-strategy");
                        log_info("job %s: restart %" PRIu32 " in %" PRIu32 " ms", j->id,
                                 j->restarts, delay_ms);
                        if (delay_ms > 0) {
                                struct timeval tv = {.tv_sec = delay_ms / 1000,
                                                     .tv_usec = (delay_ms % 1000) * 1000};
                                j->restart_wait = true;
                                evtimer_add(j->timer, &tv);
                        } else {
                                coord_schedule_reconcile(c);
                        }
                }
                return;
        case COORD_JOB_CANCELLING:
                job_send_cancels(c, j);
                if (!job_all_tasks_terminal(j))
                        return;
                job_enter_terminal(j, COORD_JOB_CANCELED, "all-tasks-canceled");
                return;
        case COORD_JOB_CANCELED:
        case COORD_JOB_FINISHED:
        case COORD_JOB_FAILED:
                job_terminal_step(c, j);
                return;
        case COORD_JOB__COUNT:
                return;
        }
}

void coord_jobs_reconcile(struct coord *c) {
        if (!coord_may_act(c))
                return;
        /* job_step may unlink nothing (pruning happens in store completions), so the
         * list is stable here. */
        for (struct coord_job *j = c->jobs; j; j = j->next)
                job_step(c, j);
}

/* ---- cancel ----------------------------------------------------------------------- */

int coord_jobs_cancel(struct coord *c, const char *job_id) {
        if (!coord_may_act(c))
                return -EAGAIN;
        struct coord_job *j = coord_job_find(c, job_id);
        if (!j)
                return -ENOENT;
        if (coord_job_state_is_terminal(j->state) || j->state == COORD_JOB_CANCELLING)
                return -EALREADY;
        log_info("job %s: cancel requested in state %s", j->id, job_state_names[j->state]);
        bool live = false;
        for (size_t i = 0; i < j->n_tasks; i++)
                if (j->deployed && !coord_task_state_is_terminal(j->tasks[i].state))
                        live = true;
        if (!live) {
                job_enter_terminal(j, COORD_JOB_CANCELED, "canceled-before-deployment");
                return 0;
        }
        job_set_state(j, COORD_JOB_CANCELLING, "cancel-requested");
        job_send_cancels(c, j);
        coord_schedule_reconcile(c);
        return 0;
}

/* ---- submission ------------------------------------------------------------------- */

static void submit_stored(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_ctx *s = arg;
        struct coord *c = s->c;
        struct coord_job *j = s->pending;
        if (rep->r < 0 || c->leader_gen != s->gen) {
                int r = rep->r < 0 ? rep->r : -EAGAIN;
                char msg[512];
                snprintf(msg, sizeof(msg), "could not persist the job graph: %s",
                         rep->error ? rep->error : err_str(r));
                log_error(r, "submit of job %s: %s", j->id, rep->error ? rep->error : "");
                s->submit_done(c, r == -ESTALE || r == -EAGAIN ? -EAGAIN : -EIO, j->id, msg,
                               s->submit_arg);
                coord_jobs_free(j);
                free(s);
                return;
        }
        j->graph_persisted = true;
        job_link(c, j);
        log_event("+job-submitted", "job=%s name=\"%s\" slots=%" PRIu32 " tasks=%zu bounded=%s "
                  "epoch=%" PRIu64, j->id, j->name, j->slots_needed, j->n_tasks,
                  j->bounded ? "true" : "false", c->epoch);
        s->submit_done(c, 0, j->id, NULL, s->submit_arg);
        free(s);
        coord_schedule_reconcile(c);
}

void coord_jobs_submit(struct coord *c, struct job_graph *g, coord_submit_done_fn done,
                       void *arg) {
        coord_jobs_submit_from(c, g, NULL, done, arg);
}

void coord_jobs_submit_from(struct coord *c, struct job_graph *g, const char *savepoint_path,
                            coord_submit_done_fn done, void *arg) {
        char msg[512];
        char *bytes = NULL;
        size_t len = 0;
        struct coord_job *j = NULL;
        struct store_ctx *s = NULL;
        int r;

        if (!coord_may_act(c) || !c->leader_ready) {
                job_graph_free(g);
                done(c, -EAGAIN, NULL, "this coordinator is not the acting leader", arg);
                return;
        }
        /* Parallelism above the cluster's slots is refused (Flink would wait for
         * resources and time out): name the step that asks for the most. */
        uint32_t need = job_graph_total_slots(g);
        uint32_t have = coord_registry_total_slots(c);
        if (need > have) {
                const struct job_vertex *maxv = NULL;
                for (size_t i = 0; i < g->n_vertices; i++)
                        if (!maxv || g->vertices[i].parallelism > maxv->parallelism)
                                maxv = &g->vertices[i];
                if (maxv && maxv->parallelism_explicit)
                        snprintf(msg, sizeof(msg),
                                 "%s.parallelism: %" PRIu32 " is above the cluster's %" PRIu32
                                 " task slots", maxv->id, need, have);
                else
                        snprintf(msg, sizeof(msg),
                                 "parallelism: %" PRIu32 " is above the cluster's %" PRIu32
                                 " task slots", need, have);
                job_graph_free(g);
                done(c, -EINVAL, NULL, msg, arg);
                return;
        }
        if (c->n_jobs >= COORD_MAX_JOBS) {
                job_graph_free(g);
                done(c, -ENOSPC, NULL, "too many jobs", arg);
                return;
        }
        if ((r = id_generate(&g->id)) < 0 || (r = job_graph_encode(g, &bytes, &len)) < 0) {
                job_graph_free(g);
                snprintf(msg, sizeof(msg), "cannot encode the job graph: %s", err_str(r));
                done(c, r, NULL, msg, arg);
                return;
        }
        if ((r = job_create(c, g, bytes, len, &j)) < 0) {
                done(c, r, NULL, "out of memory", arg);
                return;
        }
        if (savepoint_path) {
                char why[400];
                r = coord_ckpt_set_savepoint_restore(j, savepoint_path, why, sizeof(why));
                if (r < 0) {
                        snprintf(msg, sizeof(msg), "savepointPath: %s", why);
                        done(c, -EINVAL, NULL, msg, arg);
                        coord_jobs_free(j);
                        return;
                }
        }
        s = store_ctx_new(c, j->id);
        if (!s) {
                r = -ENOMEM;
                goto fail;
        }
        s->pending = j;
        s->submit_done = done;
        s->submit_arg = arg;
        r = ha_jobgraph_put(c->store, j->id, j->graph_bytes, j->graph_len, submit_stored, s);
        if (r < 0)
                goto fail;
        return;
fail:
        free(s);
        snprintf(msg, sizeof(msg), "cannot persist the job graph: %s", err_str(r));
        done(c, r, j->id, msg, arg);
        coord_jobs_free(j);
}

/* ---- leadership begins and ends --------------------------------------------------- */

void coord_jobs_drop_all(struct coord *c) {
        while (c->jobs) {
                struct coord_job *j = c->jobs;
                c->jobs = j->next;
                coord_jobs_free(j);
        }
        c->n_jobs = 0;
}

void coord_jobs_add_result_only(struct coord *c, const struct ha_job_result *r) {
        if (coord_job_find(c, r->job) || !ha_store_job_id_valid(r->job))
                return;
        struct coord_job *j = calloc(1, sizeof(*j));
        if (!j)
                return;
        j->c = c;
        snprintf(j->id, sizeof(j->id), "%.32s", r->job);
        /* The result keeps no name: say where the job came from. */
        snprintf(j->name, sizeof(j->name), "(job result of epoch %" PRIu64 ")", r->epoch);
        j->state = r->state == HA_JOB_FINISHED ? COORD_JOB_FINISHED
                   : r->state == HA_JOB_CANCELED ? COORD_JOB_CANCELED : COORD_JOB_FAILED;
        j->start_ms = r->end_time_ms;
        j->end_ms = r->end_time_ms;
        j->last_mod_ms = r->end_time_ms;
        j->state_ts_ms[j->state] = r->end_time_ms;
        j->result_written = true;
        j->cleaned = true;
        j->freed_on_workers = false; /* a worker may still hold something: free it */
        job_link(c, j);
}

struct recover_ctx {
        struct coord *c;
        uint64_t gen;
        size_t pending;      /* graph gets in flight */
        bool listed;
        int error;
};

static void recover_finish(struct recover_ctx *rc) {
        struct coord *c = rc->c;
        if (rc->pending > 0 || !rc->listed)
                return;
        if (c->leader_gen == rc->gen) {
                if (rc->error < 0) {
                        log_error(rc->error, "recovery on becoming leader is incomplete; "
                                  "retrying in %d ms", COORD_RECOVER_RETRY_MS);
                        coord_jobs_drop_all(c);
                        struct timeval tv = {.tv_sec = 0, .tv_usec = COORD_RECOVER_RETRY_MS * 1000};
                        evtimer_add(c->recover_retry_ev, &tv);
                } else {
                        c->leader_ready = true;
                        size_t n = 0;
                        for (struct coord_job *j = c->jobs; j; j = j->next)
                                if (j->recovered)
                                        n++;
                        log_info("recovery done: %zu job(s) to run, %zu known in all, epoch %"
                                 PRIu64, n, c->n_jobs, c->epoch);
                        coord_schedule_reconcile(c);
                }
        }
        free(rc);
}

static void recover_graph_got(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct recover_ctx *rc = arg;
        struct coord *c = rc->c;
        rc->pending--;
        if (c->leader_gen != rc->gen) {
                recover_finish(rc);
                return;
        }
        if (rep->r < 0) {
                log_error(rep->r, "recovery of job %s: %s", rep->job, rep->error ? rep->error : "");
                if (rep->r != -EBADMSG && rep->r != -ENOENT)
                        rc->error = rep->r; /* connection trouble: try again */
                recover_finish(rc);
                return;
        }
        char err[512];
        struct job_graph *g = NULL;
        int r = job_graph_decode(rep->data, rep->len, &g, err, sizeof(err));
        if (r < 0) {
                log_error(r, "recovery of job %s: its stored graph does not decode: %s", rep->job,
                          err);
                recover_finish(rc);
                return;
        }
        char idhex[ID_HEX_LEN + 1];
        id_format(&g->id, idhex);
        if (strcmp(idhex, rep->job) != 0) {
                log_error(-EBADMSG, "recovery of job %s: the stored graph names job %s; skipped",
                          rep->job, idhex);
                job_graph_free(g);
                recover_finish(rc);
                return;
        }
        char *bytes = malloc(rep->len ? rep->len : 1);
        if (!bytes) {
                job_graph_free(g);
                rc->error = -ENOMEM;
                recover_finish(rc);
                return;
        }
        memcpy(bytes, rep->data, rep->len);
        struct coord_job *j;
        if (coord_job_find(c, rep->job) || (r = job_create(c, g, bytes, rep->len, &j)) < 0) {
                if (!coord_job_find(c, rep->job))
                        rc->error = r;
                else {
                        job_graph_free(g);
                        free(bytes);
                }
                recover_finish(rc);
                return;
        }
        j->recovered = true;
        j->graph_persisted = true;
        job_link(c, j);
        log_event("+job-recovered", "job=%s epoch=%" PRIu64 " name=\"%s\" slots=%" PRIu32, j->id,
                  c->epoch, j->name, j->slots_needed);
        recover_finish(rc);
}

static void recover_stale_removed(struct ha_store *st, const struct ha_store_reply *rep,
                                  void *arg) {
        struct store_ctx *s = arg;
        if (rep->r < 0 && rep->r != -ENOENT)
                log_error(rep->r, "cleanup of finished job %s left by the previous leader: %s",
                          s->job, rep->error ? rep->error : "");
        else
                log_info("job %s: graph of a job with a result removed (cleanup the previous "
                         "leader did not finish)", s->job);
        free(s);
}

static void recover_recoverable_listed(struct ha_store *st, const struct ha_store_reply *rep,
                                       void *arg) {
        struct recover_ctx *rc = arg;
        struct coord *c = rc->c;
        rc->listed = true;
        if (c->leader_gen != rc->gen || rep->r < 0) {
                if (rep->r < 0) {
                        log_error(rep->r, "listing recoverable jobs: %s", rep->error ? rep->error : "");
                        rc->error = rep->r;
                }
                recover_finish(rc);
                return;
        }
        rc->pending++; /* hold rc while submitting */
        for (size_t i = 0; i < rep->n_names; i++) {
                int r = ha_jobgraph_get(c->store, rep->names[i], recover_graph_got, rc);
                if (r < 0) {
                        log_error(r, "recovery of job %s", rep->names[i]);
                        continue;
                }
                rc->pending++;
        }
        rc->pending--;
        recover_finish(rc);
}

static void recover_graphs_listed(struct ha_store *st, const struct ha_store_reply *rep,
                                  void *arg) {
        struct recover_ctx *rc = arg;
        struct coord *c = rc->c;
        if (c->leader_gen != rc->gen || rep->r < 0) {
                if (rep->r < 0) {
                        log_error(rep->r, "listing job graphs: %s", rep->error ? rep->error : "");
                        rc->error = rep->r;
                }
                rc->listed = true;
                recover_finish(rc);
                return;
        }
        /* Graphs of jobs that have a result: the previous leader did not finish their
         * cleanup. */
        for (size_t i = 0; i < rep->n_names; i++) {
                struct coord_job *j = coord_job_find(c, rep->names[i]);
                if (!j || !coord_job_state_is_terminal(j->state))
                        continue;
                struct store_ctx *s = store_ctx_new(c, rep->names[i]);
                if (s && ha_jobgraph_remove(c->store, rep->names[i], recover_stale_removed, s) < 0)
                        free(s);
        }
        int r = ha_jobs_recoverable(c->store, recover_recoverable_listed, rc);
        if (r < 0) {
                rc->listed = true;
                rc->error = r;
                recover_finish(rc);
        }
}

static void recover_results_listed(struct ha_store *st, const struct ha_store_reply *rep,
                                   void *arg) {
        struct recover_ctx *rc = arg;
        struct coord *c = rc->c;
        if (c->leader_gen != rc->gen || rep->r < 0) {
                if (rep->r < 0) {
                        log_error(rep->r, "listing job results: %s", rep->error ? rep->error : "");
                        rc->error = rep->r;
                }
                rc->listed = true;
                recover_finish(rc);
                return;
        }
        for (size_t i = 0; i < rep->n_results; i++)
                coord_jobs_add_result_only(c, &rep->results[i]);
        int r = ha_jobgraph_list(c->store, recover_graphs_listed, rc);
        if (r < 0) {
                rc->listed = true;
                rc->error = r;
                recover_finish(rc);
        }
}

static void expire_done(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_ctx *s = arg;
        struct coord *c = s->c;
        if (rep->r < 0) {
                log_warn("expiring job results: %s", rep->error ? rep->error : err_str(rep->r));
        } else if (c->leader_gen == s->gen) {
                for (size_t i = 0; i < rep->n_results; i++) {
                        struct coord_job *j = coord_job_find(c, rep->results[i].job);
                        log_info("job %s: result expired (jobstore.expiration-time)",
                                 rep->results[i].job);
                        if (j && coord_job_state_is_terminal(j->state)) {
                                job_unlink(c, j);
                                coord_jobs_free(j);
                        }
                }
        }
        free(s);
}

void coord_jobs_expire_results(struct coord *c) {
        if (!coord_may_act(c) || !c->leader_ready)
                return;
        struct store_ctx *s = store_ctx_new(c, "");
        if (s && ha_jobresult_expire(c->store, clock_wall_ms(), expire_done, s) < 0)
                free(s);
}

void coord_jobs_recover(struct coord *c) {
        struct recover_ctx *rc = calloc(1, sizeof(*rc));
        if (!rc) {
                log_error(-ENOMEM, "recovery");
                return;
        }
        rc->c = c;
        rc->gen = c->leader_gen;
        c->leader_ready = false;
        int r = ha_jobresult_list(c->store, recover_results_listed, rc);
        if (r < 0) {
                log_error(r, "recovery: listing job results; retrying in %d ms",
                          COORD_RECOVER_RETRY_MS);
                free(rc);
                struct timeval tv = {.tv_sec = 0, .tv_usec = COORD_RECOVER_RETRY_MS * 1000};
                evtimer_add(c->recover_retry_ev, &tv);
        }
}
