/* Task threads and the task state machine (see task.h). */
#include "worker/task.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/proto.h"
#include "worker/ops.h"
#include "worker/substate.h"

#define WRK_TASK_MAX_RESULTS 64u

struct ckpt_ev {
        enum wrk_ckpt_event ev;
        uint64_t id;
        bool savepoint;
};

struct wrk_task {
        struct wrk_task_id id;
        struct wrk_graph *graph;
        struct wrk_chain *chain; /* owned by the thread once started */
        struct wrk_task_options opts;
        char describe[512];
        pthread_t thread;
        bool started;
        bool joined;

        pthread_mutex_t mu;
        pthread_cond_t cond; /* CLOCK_MONOTONIC; signaled by a cancel */
        atomic_bool cancel;
        /* under mu */
        enum wrk_task_state state;
        struct wrk_task_change changes[WRK_TASK_MAX_CHANGES];
        uint32_t n_changes;
        char error[WRK_TASK_ERROR_BYTES];
        struct wrk_latency_stats latency; /* the chain's, as of the last step */

        _Atomic uint64_t records_in;
        _Atomic uint64_t records_out;
        _Atomic uint64_t late_dropped;

        /* Checkpoints, under mu: events in, results out. */
        struct ckpt_ev events[WRK_TASK_MAX_CKPT_EVENTS];
        uint32_t n_events;
        struct wrk_ckpt_result *results[WRK_TASK_MAX_RESULTS];
        uint32_t n_results;
        /* Decoded restore states, kept until destroy (the chain borrows them). */
        struct wrk_substate **restore;
        size_t n_restore;
        char job_dir[4096];
        char restore_dir[4096];
};

void wrk_task_checkpoint_event(struct wrk_task *t, enum wrk_ckpt_event ev, uint64_t checkpoint_id,
                               bool savepoint) {
        pthread_mutex_lock(&t->mu);
        if (t->n_events == WRK_TASK_MAX_CKPT_EVENTS) {
                memmove(&t->events[0], &t->events[1], (t->n_events - 1) * sizeof(t->events[0]));
                t->n_events--;
        }
        t->events[t->n_events++] = (struct ckpt_ev){ev, checkpoint_id, savepoint};
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
}

bool wrk_task_take_checkpoint_result(struct wrk_task *t, struct wrk_ckpt_result *ret) {
        pthread_mutex_lock(&t->mu);
        if (t->n_results == 0) {
                pthread_mutex_unlock(&t->mu);
                return false;
        }
        struct wrk_ckpt_result *r = t->results[0];
        memmove(&t->results[0], &t->results[1], (t->n_results - 1) * sizeof(t->results[0]));
        t->n_results--;
        pthread_mutex_unlock(&t->mu);
        *ret = *r;
        free(r);
        return true;
}

/* ops.h on_checkpoint, on the task thread: queues the result for the control loop. */
static void on_checkpoint(void *arg, struct wrk_ckpt_result *res) {
        struct wrk_task *t = arg;
        struct wrk_ckpt_result *copy = malloc(sizeof(*copy));
        if (!copy)
                return; /* the leader times the checkpoint out */
        *copy = *res;
        res->state = NULL; /* taken */
        pthread_mutex_lock(&t->mu);
        if (t->n_results == WRK_TASK_MAX_RESULTS) {
                free(t->results[0]->state);
                free(t->results[0]);
                memmove(&t->results[0], &t->results[1],
                        (t->n_results - 1) * sizeof(t->results[0]));
                t->n_results--;
        }
        t->results[t->n_results++] = copy;
        pthread_mutex_unlock(&t->mu);
        if (t->opts.notify)
                t->opts.notify(t->opts.notify_arg);
}

/* Handles the queued checkpoint events on the task thread. A negative errno fails the
 * task (a sink commit that failed, corrupt local state). */
static int run_checkpoint_events(struct wrk_task *t) {
        for (;;) {
                pthread_mutex_lock(&t->mu);
                if (t->n_events == 0) {
                        pthread_mutex_unlock(&t->mu);
                        return 0;
                }
                struct ckpt_ev e = t->events[0];
                memmove(&t->events[0], &t->events[1], (t->n_events - 1) * sizeof(e));
                t->n_events--;
                pthread_mutex_unlock(&t->mu);
                int r = 0;
                if (e.ev == WRK_CKPT_TRIGGER)
                        r = wrk_chain_trigger(t->chain, e.id, e.savepoint);
                else if (e.ev == WRK_CKPT_COMPLETE)
                        r = wrk_chain_complete(t->chain, e.id);
                else
                        wrk_chain_abort(t->chain, e.id);
                if (r < 0)
                        return r;
        }
}

const char *wrk_task_state_name(enum wrk_task_state s) {
        switch (s) {
        case WRK_TASK_DEPLOYING: return PROTO_TASK_DEPLOYING;
        case WRK_TASK_RUNNING: return PROTO_TASK_RUNNING;
        case WRK_TASK_FINISHED: return PROTO_TASK_FINISHED;
        case WRK_TASK_CANCELING: return PROTO_TASK_CANCELING;
        case WRK_TASK_CANCELED: return PROTO_TASK_CANCELED;
        case WRK_TASK_FAILED: return PROTO_TASK_FAILED;
        }
        return "UNKNOWN";
}

bool wrk_task_state_is_terminal(enum wrk_task_state s) {
        return s == WRK_TASK_FINISHED || s == WRK_TASK_CANCELED || s == WRK_TASK_FAILED;
}

int wrk_graph_create(struct job_graph *g, struct wrk_graph **ret) {
        struct wrk_graph *wg = calloc(1, sizeof(*wg));
        if (!wg) {
                job_graph_free(g);
                return -ENOMEM;
        }
        atomic_init(&wg->refs, 1);
        wg->g = g;
        *ret = wg;
        return 0;
}

struct wrk_graph *wrk_graph_ref(struct wrk_graph *wg) {
        if (wg)
                atomic_fetch_add(&wg->refs, 1);
        return wg;
}

void wrk_graph_unref(struct wrk_graph *wg) {
        if (!wg || atomic_fetch_sub(&wg->refs, 1) != 1)
                return;
        job_graph_free(wg->g);
        free(wg);
}

/* Appends a change under t->mu. The queue never overflows: a task passes through at
 * most DEPLOYING, CANCELING, RUNNING and one terminal state; should it be full anyway,
 * the newest change replaces the last one (the latest state is what counts). */
static void push_change_locked(struct wrk_task *t) {
        struct wrk_task_change ch = {.state = t->state,
                                     .records_in = atomic_load(&t->records_in),
                                     .records_out = atomic_load(&t->records_out),
                                     .late_records_dropped = atomic_load(&t->late_dropped)};
        if (t->state == WRK_TASK_FAILED)
                snprintf(ch.error, sizeof(ch.error), "%s", t->error);
        if (t->n_changes == WRK_TASK_MAX_CHANGES)
                t->n_changes--;
        t->changes[t->n_changes++] = ch;
}

/* Moves the task to s from the task thread. A task that is CANCELING does not go back to
 * RUNNING. Returns false if the change was not made. */
static bool set_state(struct wrk_task *t, enum wrk_task_state s, const char *error) {
        pthread_mutex_lock(&t->mu);
        if (wrk_task_state_is_terminal(t->state) ||
            (s == WRK_TASK_RUNNING && t->state == WRK_TASK_CANCELING)) {
                pthread_mutex_unlock(&t->mu);
                return false;
        }
        t->state = s;
        if (error)
                snprintf(t->error, sizeof(t->error), "%s", error);
        push_change_locked(t);
        pthread_mutex_unlock(&t->mu);
        if (t->opts.notify)
                t->opts.notify(t->opts.notify_arg);
        return true;
}

static void publish_counters(struct wrk_task *t) {
        atomic_store(&t->records_in, wrk_chain_records_in(t->chain));
        atomic_store(&t->records_out, wrk_chain_records_out(t->chain));
        atomic_store(&t->late_dropped, wrk_chain_late_records_dropped(t->chain));
        struct wrk_latency_stats ls;
        wrk_chain_latency(t->chain, &ls);
        if (ls.count) {
                pthread_mutex_lock(&t->mu);
                t->latency = ls;
                pthread_mutex_unlock(&t->mu);
        }
}

/* Waits on the task's condition variable until the monotonic time deadline_us or a
 * cancel. */
static void wait_until(struct wrk_task *t, uint64_t deadline_us) {
        struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000u),
                              .tv_nsec = (long)(deadline_us % 1000000u) * 1000};
        pthread_mutex_lock(&t->mu);
        while (!atomic_load(&t->cancel) && clock_mono_us() < deadline_us) {
                int r = pthread_cond_timedwait(&t->cond, &t->mu, &ts);
                if (r == ETIMEDOUT)
                        break;
        }
        pthread_mutex_unlock(&t->mu);
}

static void *task_main(void *arg) {
        struct wrk_task *t = arg;
        enum wrk_task_state end = WRK_TASK_CANCELED;
        char error[WRK_TASK_ERROR_BYTES] = "";
        struct wrk_rate rate;
        uint64_t rate_per_s;
        uint32_t share;
        int r;

        if (atomic_load(&t->cancel))
                goto out;
        r = wrk_chain_open(t->chain);
        if (r < 0) {
                snprintf(error, sizeof(error), "%s", wrk_chain_error(t->chain));
                end = WRK_TASK_FAILED;
                goto out;
        }
        if (!set_state(t, WRK_TASK_RUNNING, NULL))
                goto out;
        wrk_chain_rate(t->chain, &rate_per_s, &share);
        wrk_rate_init(&rate, rate_per_s, share, clock_mono_us());
        for (;;) {
                if (atomic_load(&t->cancel))
                        goto out;
                r = run_checkpoint_events(t);
                if (r < 0) {
                        snprintf(error, sizeof(error), "%s", wrk_chain_error(t->chain));
                        end = WRK_TASK_FAILED;
                        goto out;
                }
                uint64_t now = clock_mono_us();
                uint64_t allowed = wrk_rate_allowance(&rate, now, WRK_STEP_MAX_RECORDS);
                if (allowed == 0) {
                        uint64_t wait = wrk_rate_wait_us(&rate, now);
                        wait_until(t, now + (wait > 0 ? wait : 1));
                        continue;
                }
                uint64_t emitted = 0;
                r = wrk_chain_step(t->chain, allowed, &emitted);
                wrk_rate_take(&rate, emitted);
                publish_counters(t);
                if (r < 0 && atomic_load(&t->cancel))
                        goto out; /* e.g. a producer woken from a full channel: CANCELED */
                if (r < 0) {
                        snprintf(error, sizeof(error), "%s", wrk_chain_error(t->chain));
                        end = WRK_TASK_FAILED;
                        goto out;
                }
                if (r == 1 && wrk_chain_needs_final_checkpoint(t->chain)) {
                        /* wait for the final checkpoint (ops.h) */
                        wrk_chain_end_of_input(t->chain);
                        while (!wrk_chain_final_done(t->chain)) {
                                if (atomic_load(&t->cancel))
                                        goto out;
                                r = run_checkpoint_events(t);
                                if (r < 0) {
                                        snprintf(error, sizeof(error), "%s",
                                                 wrk_chain_error(t->chain));
                                        end = WRK_TASK_FAILED;
                                        goto out;
                                }
                                if (!wrk_chain_final_done(t->chain))
                                        wait_until(t, clock_mono_us() + 20000);
                        }
                }
                if (r == 1 || wrk_chain_final_done(t->chain)) {
                        r = wrk_chain_finish(t->chain);
                        publish_counters(t);
                        if (r < 0) {
                                snprintf(error, sizeof(error), "%s", wrk_chain_error(t->chain));
                                end = WRK_TASK_FAILED;
                        } else {
                                end = WRK_TASK_FINISHED;
                        }
                        goto out;
                }
        }
out:
        if (t->chain)
                publish_counters(t);
        wrk_chain_destroy(t->chain);
        t->chain = NULL;
        set_state(t, end, end == WRK_TASK_FAILED ? error : NULL);
        return NULL;
}

int wrk_task_create(const struct wrk_task_id *id, struct wrk_graph *graph,
                    const struct wrk_task_options *opts, struct wrk_task **ret, char *err,
                    size_t err_len) {
        struct wrk_task *t = NULL;
        pthread_condattr_t ca;
        int r;
        if (!id || !graph || !ret)
                return -EINVAL;
        const struct job_graph *g = graph->g;
        if (id->vertex >= g->n_chains) {
                snprintf(err, err_len, "vertex %" PRIu32 " does not exist (the job has %zu)",
                         id->vertex, g->n_chains);
                return -EINVAL;
        }
        uint32_t p = g->chains[id->vertex].parallelism;
        if (id->subtask >= p) {
                snprintf(err, err_len, "subtask %" PRIu32 " of vertex %" PRIu32
                         " does not exist (parallelism %" PRIu32 ")", id->subtask, id->vertex, p);
                return -EINVAL;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->id = *id;
        if (opts)
                t->opts = *opts;
        t->state = WRK_TASK_DEPLOYING;
        atomic_init(&t->cancel, false);
        atomic_init(&t->records_in, 0);
        atomic_init(&t->records_out, 0);
        atomic_init(&t->late_dropped, 0);
        if (t->opts.job_checkpoint_dir)
                snprintf(t->job_dir, sizeof(t->job_dir), "%s", t->opts.job_checkpoint_dir);
        if (t->opts.restore_dir)
                snprintf(t->restore_dir, sizeof(t->restore_dir), "%s", t->opts.restore_dir);
        if (t->opts.restore && t->opts.restore->n) {
                const struct wrk_bytes_list *rl = t->opts.restore;
                t->restore = calloc(rl->n, sizeof(*t->restore));
                if (!t->restore) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < rl->n; i++) {
                        char why[256] = "";
                        r = wrk_substate_decode(rl->data[i], rl->len[i], &t->restore[i], why,
                                                sizeof(why));
                        if (r < 0) {
                                snprintf(err, err_len, "restore[%zu]: %s", i, why);
                                for (size_t k = 0; k < t->n_restore; k++)
                                        wrk_substate_free(t->restore[k]);
                                free(t->restore);
                                free(t);
                                return r;
                        }
                        t->n_restore++;
                }
        }
        struct wrk_chain_ctx ctx = {.job = id->job, .attempt = id->attempt,
                                    .subtask = id->subtask, .parallelism = p,
                                    .out = t->opts.out, .err = t->opts.err,
                                    .cancel = &t->cancel, .sb_env = t->opts.sb_env,
                                    .state_dir = t->opts.state_dir,
                                    .buffer_timeout_ms = t->opts.buffer_timeout_ms,
                                    .latency_interval_ms = t->opts.latency_interval_ms,
                                    .job_checkpoint_dir = t->job_dir[0] ? t->job_dir : NULL,
                                    .on_checkpoint = on_checkpoint, .on_checkpoint_arg = t,
                                    .restore = (const struct wrk_substate *const *)t->restore,
                                    .n_restore = t->n_restore,
                                    .restored_checkpoint = t->opts.restored_checkpoint,
                                    .restore_dir = t->restore_dir[0] ? t->restore_dir : NULL,
                                    .default_checkpoint_interval_ms =
                                            t->opts.default_checkpoint_interval_ms,
                                    .default_at_least_once = t->opts.default_at_least_once};
        t->opts.state_dir = NULL; /* copied by the chain; not kept */
        t->opts.job_checkpoint_dir = NULL;
        t->opts.restore = NULL;
        t->opts.restore_dir = NULL;
        r = wrk_chain_create(g, id->vertex, &ctx, &t->chain, err, err_len);
        if (r < 0) {
                for (size_t k = 0; k < t->n_restore; k++)
                        wrk_substate_free(t->restore[k]);
                free(t->restore);
                free(t);
                return r;
        }
        snprintf(t->describe, sizeof(t->describe), "%s", wrk_chain_describe(t->chain));
        pthread_mutex_init(&t->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&t->cond, &ca);
        pthread_condattr_destroy(&ca);
        t->graph = wrk_graph_ref(graph);
        push_change_locked(t); /* DEPLOYING */
        *ret = t;
        return 0;
}

int wrk_task_start(struct wrk_task *t) {
        sigset_t all, old;
        pthread_attr_t attr;
        char name[16];
        /* Task threads take no signals: the control loop handles them. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1u << 20);
        int r = -pthread_create(&t->thread, &attr, task_main, t);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                char why[128];
                snprintf(why, sizeof(why), "cannot start the task thread: %s", strerror(-r));
                wrk_chain_destroy(t->chain);
                t->chain = NULL;
                pthread_mutex_lock(&t->mu);
                t->state = WRK_TASK_FAILED;
                snprintf(t->error, sizeof(t->error), "%s", why);
                push_change_locked(t);
                pthread_mutex_unlock(&t->mu);
                return r;
        }
        t->started = true;
        snprintf(name, sizeof(name), "task-%" PRIu32 "-%" PRIu32, t->id.vertex % 1000u,
                 t->id.subtask % 10000u);
        pthread_setname_np(t->thread, name);
        return 0;
}

void wrk_task_cancel(struct wrk_task *t) {
        pthread_mutex_lock(&t->mu);
        atomic_store(&t->cancel, true);
        if (!wrk_task_state_is_terminal(t->state) && t->state != WRK_TASK_CANCELING) {
                t->state = WRK_TASK_CANCELING;
                push_change_locked(t);
        }
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
}

bool wrk_task_take_change(struct wrk_task *t, struct wrk_task_change *ret) {
        pthread_mutex_lock(&t->mu);
        bool any = t->n_changes > 0;
        if (any) {
                *ret = t->changes[0];
                memmove(&t->changes[0], &t->changes[1],
                        (t->n_changes - 1) * sizeof(t->changes[0]));
                t->n_changes--;
        }
        pthread_mutex_unlock(&t->mu);
        return any;
}

void wrk_task_report(struct wrk_task *t, struct wrk_task_change *ret) {
        pthread_mutex_lock(&t->mu);
        ret->state = t->state;
        snprintf(ret->error, sizeof(ret->error), "%s",
                 t->state == WRK_TASK_FAILED ? t->error : "");
        ret->latency = t->latency;
        pthread_mutex_unlock(&t->mu);
        ret->records_in = atomic_load(&t->records_in);
        ret->records_out = atomic_load(&t->records_out);
        ret->late_records_dropped = atomic_load(&t->late_dropped);
}

enum wrk_task_state wrk_task_state(struct wrk_task *t) {
        pthread_mutex_lock(&t->mu);
        enum wrk_task_state s = t->state;
        pthread_mutex_unlock(&t->mu);
        return s;
}

bool wrk_task_is_terminal(struct wrk_task *t) {
        return wrk_task_state_is_terminal(wrk_task_state(t));
}

void wrk_task_join(struct wrk_task *t) {
        if (t && t->started && !t->joined) {
                pthread_join(t->thread, NULL);
                t->joined = true;
        }
}

const struct wrk_task_id *wrk_task_id(const struct wrk_task *t) {
        return &t->id;
}

const char *wrk_task_describe(const struct wrk_task *t) {
        return t->describe;
}

void wrk_task_destroy(struct wrk_task *t) {
        if (!t)
                return;
        wrk_task_cancel(t);
        wrk_task_join(t);
        wrk_chain_destroy(t->chain); /* never started */
        for (size_t k = 0; k < t->n_restore; k++)
                wrk_substate_free(t->restore[k]);
        free(t->restore);
        for (uint32_t k = 0; k < t->n_results; k++) {
                free(t->results[k]->state);
                free(t->results[k]);
        }
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->mu);
        wrk_graph_unref(t->graph);
        free(t);
}
