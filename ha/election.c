/* Leader election state machine (see election.h for the contract).
 *
 * Shape: one function per state step (el_step dispatches on the state), one completion
 * per ZooKeeper request. Every transition bumps e->gen, so completions of requests sent
 * in an earlier state are recognised and dropped; within a state only one chain of
 * requests runs at a time (busy/rerun). Requests that fail because the connection broke
 * leave need_step set and the step runs again on reconnect; everything is idempotent
 * (our own node is found again by its ephemeralOwner, deletes tolerate NONODE, the claim
 * is read back). */
#include "ha/election.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/ids.h"
#include "ha/zk.h"

#define EL_PATH_MAX 512
#define EL_RETRY_MS 500

struct ha_election {
        struct ha_zk *zk;
        char base[EL_PATH_MAX];
        char dir[EL_PATH_MAX];
        char epoch_path[EL_PATH_MAX];
        char leader_path[EL_PATH_MAX];
        char my_path[EL_PATH_MAX + 32];
        char my_node[32];
        char pred_path[EL_PATH_MAX + 32];
        struct ha_candidate_info info;
        struct ha_election_callbacks cbs;
        void *userdata;

        enum ha_election_state state;
        uint64_t gen;            /* bumped on every transition and on expiry */
        bool busy;               /* a request chain of the current state is in flight */
        bool rerun;              /* run the step again when that chain ends */
        bool need_step;          /* a step failed on the connection: run it on reconnect */
        bool adopt;              /* registration: find our node again (ambiguous create) */
        bool claim_ambiguous;    /* the claim multi's outcome is unknown */
        bool waiting_leader_gone;
        bool resign_requested;   /* resign() during CLAIMING: finish the claim first */
        bool resign_rejoin;
        uint64_t claim_epoch;
        int64_t session_id;      /* session our node belongs to */
        struct ha_fence fence;   /* the term held or being released; epoch 0 if none */

        struct event *deadline_ev;
        struct event *retry_ev;
        int refs;                /* 1 for the owner + 1 per request in flight */
        int depth;               /* nesting of entry points, for deferred destroy */
        bool destroy_pending;
        bool dead;
};

struct el_scan;
struct el_cleanup;

/* One ZooKeeper request of the election. Owns its payload and the buffers the client
 * writes at completion (multi results, created path, set stat). */
struct el_op {
        struct ha_election *e;
        uint64_t gen;
        zoo_op_t ops[3];
        zoo_op_result_t results[3];
        struct Stat stat;
        char created[EL_PATH_MAX + 32];
        char path[EL_PATH_MAX + 32];
        char *data;
        struct el_scan *scan;
        struct el_cleanup *cleanup;
        int idx;
};

/* A scan of the election directory for nodes owned by our session. */
struct el_scan {
        int count;
        int remaining;
        bool failed_connection;
        int first_error;
        char (*names)[64];
        int64_t *owners;
};

static void el_step(struct ha_election *e);
static void el_run(struct ha_election *e);
static void el_lose(struct ha_election *e, const char *reason);
static void el_claim(struct ha_election *e);
static void el_arm_leader_watches(struct ha_election *e);

const char *ha_election_state_name(enum ha_election_state s) {
        switch (s) {
        case HA_ELECTION_IDLE:
                return "idle";
        case HA_ELECTION_REGISTERING:
                return "registering";
        case HA_ELECTION_CANDIDATE:
                return "candidate";
        case HA_ELECTION_CLAIMING:
                return "claiming";
        case HA_ELECTION_LEADER:
                return "leader";
        case HA_ELECTION_SUSPENDED:
                return "suspended";
        case HA_ELECTION_RESUMING:
                return "resuming";
        case HA_ELECTION_RELEASING:
                return "releasing";
        case HA_ELECTION_RESIGNING:
                return "resigning";
        case HA_ELECTION_STOPPED:
                return "stopped";
        }
        return "unknown";
}

bool ha_election_state_holds_epoch(enum ha_election_state s) {
        return s == HA_ELECTION_LEADER || s == HA_ELECTION_SUSPENDED || s == HA_ELECTION_RESUMING;
}

void ha_fence_check_op(const struct ha_fence *f, zoo_op_t *op) {
        zoo_check_op_init(op, f->epoch_path, f->epoch_version);
}

/* ---- lifetime ------------------------------------------------------------------------ */

static void el_unref(struct ha_election *e) {
        if (--e->refs > 0)
                return;
        free(e);
}

static void el_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata);
static void el_watch(struct ha_zk *zk, int type, const char *path, void *userdata);

/* Detaches from zk and the loop; memory goes when the last request completes. */
static void el_kill(struct ha_election *e) {
        if (e->dead)
                return;
        e->dead = true;
        ha_zk_unsubscribe(e->zk, el_zk_event, e);
        ha_zk_watch_remove(e->zk, e->base, el_watch, e);
        if (e->deadline_ev)
                event_free(e->deadline_ev);
        if (e->retry_ev)
                event_free(e->retry_ev);
        e->deadline_ev = e->retry_ev = NULL;
        el_unref(e);
}

static void el_enter(struct ha_election *e) {
        e->refs++;
        e->depth++;
}

static void el_leave(struct ha_election *e) {
        e->depth--;
        if (e->depth == 0 && e->destroy_pending)
                el_kill(e);
        el_unref(e);
}

void ha_election_destroy(struct ha_election *e) {
        if (!e || e->dead)
                return;
        e->destroy_pending = true;
        if (e->depth == 0)
                el_kill(e);
}

/* True while the election should go on with what it was doing. */
static bool el_alive(const struct ha_election *e) {
        return !e->dead && !e->destroy_pending;
}

static struct el_op *el_op_new(struct ha_election *e) {
        struct el_op *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->e = e;
        op->gen = e->gen;
        e->refs++;
        return op;
}

static void el_op_free(struct el_op *op) {
        if (!op)
                return;
        struct ha_election *e = op->e;
        free(op->data);
        free(op);
        el_unref(e);
}

/* Opens a completion: returns e when the request still matters (then call el_op_end),
 * NULL when it is stale (the op is freed). */
static struct ha_election *el_op_begin(struct el_op *op) {
        struct ha_election *e = op->e;
        if (!el_alive(e) || op->gen != e->gen) {
                el_op_free(op);
                return NULL;
        }
        el_enter(e);
        return e;
}

static void el_op_end(struct el_op *op) {
        struct ha_election *e = op->e;
        el_op_free(op);
        el_leave(e);
}

/* ---- transitions --------------------------------------------------------------------- */

/* Moves to state `to` and reports it. Returns false if the callback changed the state
 * or destroyed the election: the caller must stop what it was doing. */
static bool el_goto(struct ha_election *e, enum ha_election_state to, const char *reason,
                    bool leadership_lost) {
        enum ha_election_state from = e->state;
        e->state = to;
        e->gen++;
        e->busy = false;
        e->rerun = false;
        e->waiting_leader_gone = false;
        uint64_t gen = e->gen;
        if (e->cbs.transition) {
                struct ha_election_transition t = {
                        .from = from,
                        .to = to,
                        .epoch = e->fence.epoch,
                        .reason = reason,
                        .leadership_lost = leadership_lost,
                        .fence = e->fence.epoch ? &e->fence : NULL,
                        .node = e->my_node,
                };
                e->cbs.transition(e, &t, e->userdata);
        }
        return el_alive(e) && e->gen == gen;
}

static void el_report_error(struct ha_election *e, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void el_report_error(struct ha_election *e, int r, const char *fmt, ...) {
        if (!e->cbs.error)
                return;
        char what[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        e->cbs.error(e, r, what, e->userdata);
}

/* The current chain ended; run the step again if something asked for it meanwhile. */
static void el_chain_done(struct ha_election *e) {
        e->busy = false;
        if (e->rerun && el_alive(e))
                el_run(e);
}

/* A request failed. Connection trouble: run the step again on reconnect (or after the
 * expiry is handled). Anything else: report it and retry after a short back-off. */
static void el_failed(struct ha_election *e, int r, const char *what, const char *path) {
        e->busy = false;
        if (r == -ECONNRESET || r == -ETIMEDOUT || r == -ENOTCONN || r == -EKEYEXPIRED ||
            r == -ESHUTDOWN) {
                e->need_step = true;
                if (r == -ENOTCONN && ha_zk_state(e->zk) == HA_ZK_CONNECTED) {
                        /* Not queued although connected (the handle is being replaced):
                         * try again shortly. */
                        struct timeval tv = {0, EL_RETRY_MS * 1000};
                        evtimer_add(e->retry_ev, &tv);
                }
                return;
        }
        el_report_error(e, r, "%s %s", what, path);
        if (!el_alive(e))
                return;
        struct timeval tv = {0, EL_RETRY_MS * 1000};
        evtimer_add(e->retry_ev, &tv);
}

static void el_retry_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_election *e = arg;
        (void)fd;
        (void)what;
        el_enter(e);
        if (el_alive(e))
                el_run(e);
        el_leave(e);
}

/* ---- lease / give-up deadline ---------------------------------------------------------- */

static uint64_t el_lease_end_us(const struct ha_election *e) {
        uint64_t last = ha_zk_last_alive_us(e->zk);
        return last ? last + (uint64_t)ha_zk_lease_ms(e->zk) * 1000 : 0;
}

static void el_arm_deadline(struct ha_election *e) {
        uint64_t end = el_lease_end_us(e), now = clock_mono_us();
        uint64_t wait_us = end > now ? end - now : 0;
        struct timeval tv = {.tv_sec = (time_t)(wait_us / 1000000),
                             .tv_usec = (suseconds_t)(wait_us % 1000000)};
        evtimer_add(e->deadline_ev, &tv);
}

static void el_deadline_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_election *e = arg;
        (void)fd;
        (void)what;
        el_enter(e);
        /* A stall is reported as such before the lease is looked at. */
        ha_zk_poll_stall(e->zk);
        if (el_alive(e) && ha_election_state_holds_epoch(e->state)) {
                uint64_t end = el_lease_end_us(e);
                if (end == 0 || clock_mono_us() >= end)
                        el_lose(e, e->state == HA_ELECTION_LEADER ? "lease-expired" : "deadline");
                else
                        el_arm_deadline(e);
        }
        el_leave(e);
}

bool ha_election_is_acting(const struct ha_election *e) {
        if (!e || e->dead || e->state != HA_ELECTION_LEADER ||
            ha_zk_state(e->zk) != HA_ZK_CONNECTED)
                return false;
        uint64_t end = el_lease_end_us(e);
        return end != 0 && clock_mono_us() < end;
}

int ha_election_fence(const struct ha_election *e, struct ha_fence *ret) {
        if (ha_election_is_acting(e)) {
                *ret = e->fence;
                return 0;
        }
        return e && !e->dead && ha_election_state_holds_epoch(e->state) ? -EAGAIN : -ESTALE;
}

/* ---- registering ------------------------------------------------------------------------ */

static void el_scan_start(struct ha_election *e);

static void el_paths_done(int r, void *ctx) {
        struct el_op *op = ctx;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state == HA_ELECTION_REGISTERING) {
                if (r < 0)
                        el_failed(e, r, "creating", e->dir);
                else
                        el_scan_start(e);
        }
        el_op_end(op);
}

static void el_epoch_created(int rc, const char *value, const void *data) {
        (void)value;
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (rc != ZOK && rc != ZNODEEXISTS && !ha_zk_outcome_unknown(rc) &&
            rc != ZSESSIONEXPIRED && rc != ZCLOSING)
                el_report_error(e, ha_zk_error(rc), "creating %s", e->epoch_path);
        el_op_end(op);
}

/* Creates <base>/election (with parents) and <base>/epoch (value 0) if missing. */
static void el_register(struct ha_election *e) {
        struct el_op *op = el_op_new(e), *op2 = el_op_new(e);
        int r = -ENOMEM;
        if (!op || !op2)
                goto fail;
        size_t len;
        if ((r = ha_u64_encode(HA_KIND_EPOCH, 0, &op2->data, &len)) < 0)
                goto fail;
        if ((r = ha_zk_ensure_path(e->zk, e->dir, el_paths_done, op)) < 0)
                goto fail;
        op = NULL;
        r = ha_zk_acreate(e->zk, e->epoch_path, op2->data, (int)len, 0, el_epoch_created, op2);
        if (r == 0)
                op2 = NULL;
        el_op_free(op2);
        return;
fail:
        el_op_free(op);
        el_op_free(op2);
        el_failed(e, r, "creating", e->dir);
}

static void el_created(int rc, const char *value, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_REGISTERING)
                goto out;
        if (rc == ZOK && value) {
                const char *slash = strrchr(value, '/');
                snprintf(e->my_path, sizeof(e->my_path), "%s", value);
                snprintf(e->my_node, sizeof(e->my_node), "%s", slash ? slash + 1 : value);
                e->adopt = false;
                if (el_goto(e, HA_ELECTION_CANDIDATE, "registered", false))
                        el_run(e);
        } else if (ha_zk_outcome_unknown(rc)) {
                /* It may exist: find it again by its owner before creating another. */
                e->adopt = true;
                el_failed(e, ha_zk_error(rc), "creating", e->dir);
        } else {
                el_failed(e, ha_zk_error(rc), "creating a node in", e->dir);
        }
out:
        el_op_end(op);
}

static void el_create_node(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = -ENOMEM;
        if (!op)
                goto fail;
        struct flinc_id token;
        if ((r = id_generate(&token)) < 0)
                goto fail;
        id_format(&token, e->info.token);
        size_t len;
        if ((r = ha_candidate_encode(&e->info, &op->data, &len)) < 0)
                goto fail;
        snprintf(op->path, sizeof(op->path), "%s/n_", e->dir);
        r = ha_zk_acreate(e->zk, op->path, op->data, (int)len, ZOO_EPHEMERAL | ZOO_SEQUENCE,
                          el_created, op);
        if (r < 0)
                goto fail;
        return;
fail:
        el_op_free(op);
        el_failed(e, r, "creating a node in", e->dir);
}

static void el_ignore_void(int rc, const void *data) {
        (void)rc;
        el_op_free((struct el_op *)data);
}

/* Deletes one of our nodes (best effort; a failure leaves it to the next scan). */
static void el_delete_own(struct ha_election *e, const char *path) {
        struct el_op *op = el_op_new(e);
        if (!op)
                return;
        if (ha_zk_adelete(e->zk, path, -1, el_ignore_void, op) < 0)
                el_op_free(op);
}

static int seq_of(const char *name, uint64_t *ret) {
        if (strncmp(name, "n_", 2) != 0 || !name[2])
                return -EINVAL;
        char *end;
        unsigned long long v = strtoull(name + 2, &end, 10);
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void el_scan_decide(struct ha_election *e, struct el_scan *s) {
        if (s->failed_connection) {
                el_failed(e, -ECONNRESET, "scanning", e->dir);
                return;
        }
        if (s->first_error < 0) {
                el_failed(e, s->first_error, "scanning", e->dir);
                return;
        }
        int keep = -1;
        uint64_t keep_seq = 0;
        if (e->adopt) {
                for (int i = 0; i < s->count; i++) {
                        uint64_t q;
                        if (s->owners[i] != e->session_id || seq_of(s->names[i], &q) < 0)
                                continue;
                        if (keep < 0 || q < keep_seq) {
                                keep = i;
                                keep_seq = q;
                        }
                }
        }
        char path[EL_PATH_MAX + 80];
        for (int i = 0; i < s->count; i++) {
                if (i == keep || s->owners[i] != e->session_id)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", e->dir, s->names[i]);
                el_delete_own(e, path);
        }
        if (keep >= 0) {
                snprintf(e->my_path, sizeof(e->my_path), "%s/%s", e->dir, s->names[keep]);
                snprintf(e->my_node, sizeof(e->my_node), "%s", s->names[keep]);
                e->adopt = false;
                if (el_goto(e, HA_ELECTION_CANDIDATE, "registered", false))
                        el_run(e);
                return;
        }
        e->adopt = false;
        el_create_node(e);
}

static void el_scan_free(struct el_scan *s) {
        free(s->names);
        free(s->owners);
        free(s);
}

static void el_scan_exists_done(int rc, const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct el_scan *s = op->scan;
        if (rc == ZOK && stat)
                s->owners[op->idx] = stat->ephemeralOwner;
        else if (ha_zk_outcome_unknown(rc) || rc == ZSESSIONEXPIRED || rc == ZCLOSING)
                s->failed_connection = true;
        else if (rc != ZNONODE && s->first_error == 0)
                s->first_error = ha_zk_error(rc);
        bool last = --s->remaining == 0;
        struct ha_election *e = last ? el_op_begin(op) : NULL;
        if (!last) {
                el_op_free(op);
                return;
        }
        if (e && e->state == HA_ELECTION_REGISTERING)
                el_scan_decide(e, s);
        el_scan_free(s);
        if (e)
                el_op_end(op);
}

static void el_scan_children_done(int rc, const struct String_vector *strings,
                                  const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_REGISTERING)
                goto out;
        if (rc != ZOK) {
                el_failed(e, ha_zk_error(rc), "listing", e->dir);
                goto out;
        }
        int n = strings ? strings->count : 0;
        if (n == 0) {
                e->adopt = false;
                el_create_node(e);
                goto out;
        }
        struct el_scan *s = calloc(1, sizeof(*s));
        if (!s || !(s->names = calloc((size_t)n, sizeof(*s->names))) ||
            !(s->owners = calloc((size_t)n, sizeof(*s->owners)))) {
                if (s)
                        el_scan_free(s);
                el_failed(e, -ENOMEM, "scanning", e->dir);
                goto out;
        }
        s->count = n;
        s->remaining = 1;
        for (int i = 0; i < n; i++) {
                snprintf(s->names[i], sizeof(s->names[i]), "%s", strings->data[i]);
                struct el_op *q = el_op_new(e);
                if (!q) {
                        s->first_error = -ENOMEM;
                        break;
                }
                q->scan = s;
                q->idx = i;
                snprintf(q->path, sizeof(q->path), "%s/%s", e->dir, s->names[i]);
                s->remaining++;
                int r = ha_zk_aexists(e->zk, q->path, false, el_scan_exists_done, q);
                if (r < 0) {
                        s->remaining--;
                        el_op_free(q);
                        if (r == -ENOTCONN)
                                s->failed_connection = true;
                        else
                                s->first_error = r;
                        break;
                }
        }
        if (--s->remaining == 0) {
                el_scan_decide(e, s);
                el_scan_free(s);
        }
out:
        el_op_end(op);
}

/* Lists the election directory and looks at every node's ephemeralOwner: ours are
 * adopted (after an ambiguous create) or deleted (a fresh registration), then a node is
 * created if none was adopted. */
static void el_scan_list(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_achildren(e->zk, e->dir, false, el_scan_children_done, op) : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "listing", e->dir);
        }
}

static void el_scan_synced(int rc, const char *value, const void *data) {
        (void)value;
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state == HA_ELECTION_REGISTERING) {
                if (rc == ZOK)
                        el_scan_list(e);
                else
                        el_failed(e, ha_zk_error(rc), "syncing", e->dir);
        }
        el_op_end(op);
}

/* A create sent on a connection that was then lost may still be on its way through the
 * quorum while we reconnect to another server: sync first, so that the listing sees it
 * if the leader ordered it before our sync (and if it did not, the server refuses it
 * as coming from a session that moved). */
static void el_scan_start(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_async_sync(e->zk, e->dir, el_scan_synced, op) : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "syncing", e->dir);
        }
}

/* ---- candidate ------------------------------------------------------------------------- */

static void el_pred_exists_done(int rc, const struct Stat *stat, const void *data) {
        (void)stat;
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state == HA_ELECTION_CANDIDATE) {
                if (rc == ZOK) {
                        el_chain_done(e); /* wait for the watch */
                } else if (rc == ZNONODE) {
                        e->busy = false;
                        el_run(e); /* gone meanwhile: look again */
                } else {
                        el_failed(e, ha_zk_error(rc), "watching", op->path);
                }
        }
        el_op_end(op);
}

static void el_position_done(int rc, const struct String_vector *strings, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CANDIDATE)
                goto out;
        if (rc != ZOK) {
                el_failed(e, ha_zk_error(rc), "listing", e->dir);
                goto out;
        }
        uint64_t mine;
        if (seq_of(e->my_node, &mine) < 0)
                goto missing;
        bool found = false, have_pred = false;
        uint64_t pred = 0;
        const char *pred_name = NULL;
        for (int i = 0; strings && i < strings->count; i++) {
                uint64_t q;
                if (seq_of(strings->data[i], &q) < 0)
                        continue;
                if (q == mine)
                        found = true;
                else if (q < mine && (!have_pred || q > pred)) {
                        have_pred = true;
                        pred = q;
                        pred_name = strings->data[i];
                }
        }
        if (!found)
                goto missing;
        if (!have_pred) {
                if (el_goto(e, HA_ELECTION_CLAIMING, "lowest", false))
                        el_run(e);
                goto out;
        }
        snprintf(e->pred_path, sizeof(e->pred_path), "%s/%s", e->dir, pred_name);
        struct el_op *q = el_op_new(e);
        if (q)
                snprintf(q->path, sizeof(q->path), "%s", e->pred_path);
        int r = q ? ha_zk_aexists(e->zk, e->pred_path, true, el_pred_exists_done, q) : -ENOMEM;
        if (r < 0) {
                el_op_free(q);
                el_failed(e, r, "watching", e->pred_path);
        }
        goto out;
missing:
        e->my_node[0] = '\0';
        e->my_path[0] = '\0';
        if (el_goto(e, HA_ELECTION_REGISTERING, "node-missing", false))
                el_run(e);
out:
        el_op_end(op);
}

static void el_check_position(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_achildren(e->zk, e->dir, false, el_position_done, op) : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "listing", e->dir);
        }
}

/* ---- claiming -------------------------------------------------------------------------- */

static void el_become_leader(struct ha_election *e, uint64_t epoch, int32_t version,
                             int64_t zxid) {
        e->fence.epoch = epoch;
        e->fence.epoch_version = version;
        e->fence.epoch_zxid = zxid;
        snprintf(e->fence.epoch_path, sizeof(e->fence.epoch_path), "%s", e->epoch_path);
        e->claim_ambiguous = false;
        if (!el_goto(e, HA_ELECTION_LEADER, "elected", false))
                return;
        el_arm_deadline(e);
        el_arm_leader_watches(e);
        if (e->resign_requested && el_alive(e))
                ha_election_resign(e, e->resign_rejoin);
}

static void el_stale_leader_deleted(int rc, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state == HA_ELECTION_CLAIMING) {
                if (rc == ZOK || rc == ZNONODE) {
                        e->busy = false;
                        el_run(e);
                } else {
                        el_failed(e, ha_zk_error(rc), "deleting", e->leader_path);
                }
        }
        el_op_end(op);
}

static void el_leader_exists_done(int rc, const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CLAIMING)
                goto out;
        if (rc == ZNONODE) {
                e->busy = false;
                el_run(e);
        } else if (rc == ZOK && stat && stat->ephemeralOwner == e->session_id) {
                /* Ours, from a term of this session that is over: remove it. */
                struct el_op *q = el_op_new(e);
                int r = q ? ha_zk_adelete(e->zk, e->leader_path, stat->version,
                                          el_stale_leader_deleted, q)
                          : -ENOMEM;
                if (r < 0) {
                        el_op_free(q);
                        el_failed(e, r, "deleting", e->leader_path);
                }
        } else if (rc == ZOK) {
                /* Another session's leader node: wait until it goes. */
                e->waiting_leader_gone = true;
                el_chain_done(e);
        } else {
                el_failed(e, ha_zk_error(rc), "watching", e->leader_path);
        }
out:
        el_op_end(op);
}

static void el_claim_done(int rc, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CLAIMING)
                goto out;
        if (rc == ZOK) {
                el_become_leader(e, e->claim_epoch, op->stat.version, op->stat.mzxid);
                goto out;
        }
        int failed = ha_zk_multi_failed_op(rc, 3, op->results);
        if (failed < 0) {
                if (ha_zk_outcome_unknown(rc))
                        e->claim_ambiguous = true;
                el_failed(e, ha_zk_error(rc), "claiming", e->leader_path);
        } else if (failed == 0) {
                e->my_node[0] = '\0';
                e->my_path[0] = '\0';
                if (el_goto(e, HA_ELECTION_REGISTERING, "node-missing", false))
                        el_run(e);
        } else if (failed == 1 && op->results[1].err == ZBADVERSION) {
                if (el_goto(e, HA_ELECTION_CANDIDATE, "lost-race", false))
                        el_run(e);
        } else if (failed == 2 && op->results[2].err == ZNODEEXISTS) {
                struct el_op *q = el_op_new(e);
                int r = q ? ha_zk_aexists(e->zk, e->leader_path, true, el_leader_exists_done, q)
                          : -ENOMEM;
                if (r < 0) {
                        el_op_free(q);
                        el_failed(e, r, "watching", e->leader_path);
                }
        } else {
                el_failed(e, ha_zk_error(op->results[failed].err), "claiming",
                          failed == 1 ? e->epoch_path : e->leader_path);
        }
out:
        el_op_end(op);
}

static void el_epoch_read(int rc, const char *value, int value_len, const struct Stat *stat,
                          const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CLAIMING)
                goto out;
        if (rc == ZNONODE) {
                /* Deleted under us: registration creates it again. */
                if (el_goto(e, HA_ELECTION_REGISTERING, "node-missing", false)) {
                        e->adopt = true;
                        el_run(e);
                }
                goto out;
        }
        if (rc != ZOK) {
                el_failed(e, ha_zk_error(rc), "reading", e->epoch_path);
                goto out;
        }
        uint64_t epoch;
        char why[256];
        int r = ha_u64_decode(HA_KIND_EPOCH, value, value_len > 0 ? (size_t)value_len : 0,
                              &epoch, why, sizeof(why));
        if (r < 0) {
                e->busy = false;
                el_report_error(e, r, "corrupt payload in %s: %s", e->epoch_path, why);
                if (el_alive(e)) {
                        struct timeval tv = {0, EL_RETRY_MS * 1000};
                        evtimer_add(e->retry_ev, &tv);
                }
                goto out;
        }
        struct el_op *q = el_op_new(e);
        size_t epoch_len, leader_len;
        char *epoch_data = NULL;
        if (!q) {
                el_failed(e, -ENOMEM, "claiming", e->leader_path);
                goto out;
        }
        e->claim_epoch = epoch + 1;
        struct ha_leader_info li = {.epoch = e->claim_epoch, .session_id = e->session_id};
        snprintf(li.id, sizeof(li.id), "%s", e->info.id);
        snprintf(li.rpc, sizeof(li.rpc), "%s", e->info.rpc);
        snprintf(li.rest, sizeof(li.rest), "%s", e->info.rest);
        if ((r = ha_u64_encode(HA_KIND_EPOCH, e->claim_epoch, &epoch_data, &epoch_len)) < 0 ||
            (r = ha_leader_encode(&li, &q->data, &leader_len)) < 0) {
                free(epoch_data);
                el_op_free(q);
                el_failed(e, r, "claiming", e->leader_path);
                goto out;
        }
        /* The multi copies op data when it is queued; epoch_data can go right after. */
        zoo_check_op_init(&q->ops[0], e->my_path, -1);
        zoo_set_op_init(&q->ops[1], e->epoch_path, epoch_data, (int)epoch_len, stat->version,
                        &q->stat);
        zoo_create_op_init(&q->ops[2], e->leader_path, q->data, (int)leader_len,
                           ha_zk_acl(e->zk), ZOO_EPHEMERAL, q->created, sizeof(q->created));
        r = ha_zk_amulti(e->zk, 3, q->ops, q->results, el_claim_done, q);
        free(epoch_data);
        if (r < 0) {
                el_op_free(q);
                el_failed(e, r, "claiming", e->leader_path);
        }
out:
        el_op_end(op);
}

static void el_claim(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_aget(e->zk, e->epoch_path, false, el_epoch_read, op) : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "reading", e->epoch_path);
        }
}

/* After an ambiguous claim: read leader and epoch back. If the leader node is ours with
 * the epoch we tried, the claim went through. */
static void el_readback_epoch(int rc, const char *value, int value_len,
                              const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CLAIMING)
                goto out;
        uint64_t epoch;
        if (rc == ZOK && ha_u64_decode(HA_KIND_EPOCH, value, value_len > 0 ? (size_t)value_len : 0,
                                       &epoch, NULL, 0) == 0 &&
            epoch == e->claim_epoch) {
                el_become_leader(e, epoch, stat->version, stat->mzxid);
        } else if (rc == ZOK || rc == ZNONODE) {
                e->claim_ambiguous = false;
                e->busy = false;
                el_run(e);
        } else {
                el_failed(e, ha_zk_error(rc), "reading", e->epoch_path);
        }
out:
        el_op_end(op);
}

static void el_readback_leader(int rc, const char *value, int value_len,
                               const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_CLAIMING)
                goto out;
        struct ha_leader_info li;
        if (rc == ZOK && stat && stat->ephemeralOwner == e->session_id &&
            ha_leader_decode(value, value_len > 0 ? (size_t)value_len : 0, &li, NULL, 0) == 0 &&
            li.epoch == e->claim_epoch) {
                struct el_op *q = el_op_new(e);
                int r = q ? ha_zk_aget(e->zk, e->epoch_path, false, el_readback_epoch, q)
                          : -ENOMEM;
                if (r < 0) {
                        el_op_free(q);
                        el_failed(e, r, "reading", e->epoch_path);
                }
        } else if (rc == ZOK || rc == ZNONODE) {
                /* Not ours: the claim did not happen. Start over from the epoch. */
                e->claim_ambiguous = false;
                e->busy = false;
                el_run(e);
        } else {
                el_failed(e, ha_zk_error(rc), "reading", e->leader_path);
        }
out:
        el_op_end(op);
}

static void el_claim_readback_synced(int rc, const char *value, const void *data) {
        (void)value;
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (rc != ZOK) {
                el_failed(e, ha_zk_error(rc), "syncing", e->leader_path);
        } else {
                struct el_op *q = el_op_new(e);
                int r = q ? ha_zk_aget(e->zk, e->leader_path, false, el_readback_leader, q)
                          : -ENOMEM;
                if (r < 0) {
                        el_op_free(q);
                        el_failed(e, r, "reading", e->leader_path);
                }
        }
        el_op_end(op);
}

/* Reads back an ambiguous claim, after a sync (see el_scan_start): the multi may still
 * be on its way through the quorum when we reconnect to another server. */
static void el_claim_readback(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_async_sync(e->zk, e->leader_path, el_claim_readback_synced, op)
                   : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "syncing", e->leader_path);
        }
}

/* ---- leader ---------------------------------------------------------------------------- */

static void el_leader_watch_done(int rc, const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (ha_election_state_holds_epoch(e->state)) {
                if (rc == ZNONODE && strcmp(op->path, e->leader_path) == 0)
                        el_lose(e, "leader-node-deleted");
                else if (rc == ZNONODE && strcmp(op->path, e->my_path) == 0)
                        el_lose(e, "election-node-deleted");
                else if (rc == ZOK && stat && strcmp(op->path, e->epoch_path) == 0 &&
                         stat->version != e->fence.epoch_version)
                        el_lose(e, "epoch-changed");
                else if (rc == ZOK && stat && strcmp(op->path, e->leader_path) == 0 &&
                         stat->ephemeralOwner != e->session_id)
                        el_lose(e, "leader-node-deleted");
        }
        el_op_end(op);
}

static void el_watch_path(struct ha_election *e, const char *path) {
        struct el_op *op = el_op_new(e);
        if (!op)
                return;
        snprintf(op->path, sizeof(op->path), "%s", path);
        if (ha_zk_aexists(e->zk, op->path, true, el_leader_watch_done, op) < 0)
                el_op_free(op);
}

/* Watches what a leader must not lose without noticing: the epoch, the leader node and
 * its own election node (exists watches; they survive reconnects in the session). */
static void el_arm_leader_watches(struct ha_election *e) {
        el_watch_path(e, e->epoch_path);
        el_watch_path(e, e->leader_path);
        el_watch_path(e, e->my_path);
}

/* RESUMING: the session survived; make sure nothing moved while we were away. */
static void el_resume_leader_done(int rc, const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_RESUMING)
                goto out;
        if (rc == ZOK && stat && stat->ephemeralOwner == e->session_id) {
                if (el_goto(e, HA_ELECTION_LEADER, "reconnected", false)) {
                        el_arm_deadline(e);
                        el_arm_leader_watches(e);
                }
        } else if (rc == ZOK || rc == ZNONODE) {
                el_lose(e, "leader-node-deleted");
        } else {
                el_failed(e, ha_zk_error(rc), "reading", e->leader_path);
        }
out:
        el_op_end(op);
}

static void el_resume_epoch_done(int rc, const struct Stat *stat, const void *data) {
        struct el_op *op = (struct el_op *)data;
        struct ha_election *e = el_op_begin(op);
        if (!e)
                return;
        if (e->state != HA_ELECTION_RESUMING)
                goto out;
        if (rc == ZOK && stat && stat->version == e->fence.epoch_version) {
                struct el_op *q = el_op_new(e);
                int r = q ? ha_zk_aexists(e->zk, e->leader_path, true, el_resume_leader_done, q)
                          : -ENOMEM;
                if (r < 0) {
                        el_op_free(q);
                        el_failed(e, r, "reading", e->leader_path);
                }
        } else if (rc == ZOK || rc == ZNONODE) {
                el_lose(e, "epoch-changed");
        } else {
                el_failed(e, ha_zk_error(rc), "reading", e->epoch_path);
        }
out:
        el_op_end(op);
}

static void el_resume_check(struct ha_election *e) {
        struct el_op *op = el_op_new(e);
        int r = op ? ha_zk_aexists(e->zk, e->epoch_path, true, el_resume_epoch_done, op)
                   : -ENOMEM;
        if (r < 0) {
                el_op_free(op);
                el_failed(e, r, "reading", e->epoch_path);
        }
}

/* ---- releasing and resigning ------------------------------------------------------------ */

struct el_cleanup {
        int remaining;
        bool connection_failed;
        int first_error;
};

static void el_cleanup_finished(struct ha_election *e) {
        e->fence = (struct ha_fence){0};
        e->my_node[0] = '\0';
        e->my_path[0] = '\0';
        e->adopt = false;
        e->claim_ambiguous = false;
        if (e->state == HA_ELECTION_RELEASING) {
                if (el_goto(e, HA_ELECTION_REGISTERING, "released", false))
                        el_run(e);
        } else if (e->state == HA_ELECTION_RESIGNING) {
                bool rejoin = e->resign_rejoin;
                e->resign_requested = false;
                if (el_goto(e, rejoin ? HA_ELECTION_REGISTERING : HA_ELECTION_STOPPED, "resign",
                            false) &&
                    rejoin)
                        el_run(e);
        }
}

static void el_cleanup_part_done(struct el_op *op, int rc) {
        struct el_cleanup *c = op->cleanup;
        /* NONODE / BADVERSION: already gone, or the leader node is not ours any more. */
        if (ha_zk_outcome_unknown(rc) || rc == ZSESSIONEXPIRED || rc == ZCLOSING)
                c->connection_failed = true;
        else if (rc != ZOK && rc != ZNONODE && rc != ZBADVERSION && c->first_error == 0)
                c->first_error = ha_zk_error(rc);
        if (--c->remaining > 0) {
                el_op_free(op);
                return;
        }
        struct ha_election *e = el_op_begin(op);
        if (e && (e->state == HA_ELECTION_RELEASING || e->state == HA_ELECTION_RESIGNING)) {
                if (c->connection_failed)
                        el_failed(e, -ECONNRESET, "deleting", e->leader_path);
                else if (c->first_error < 0)
                        el_failed(e, c->first_error, "deleting", e->leader_path);
                else
                        el_cleanup_finished(e);
        }
        free(c);
        if (e)
                el_op_end(op);
}

static void el_cleanup_multi_done(int rc, const void *data) {
        el_cleanup_part_done((struct el_op *)data, rc);
}

static void el_cleanup_delete_done(int rc, const void *data) {
        el_cleanup_part_done((struct el_op *)data, rc);
}

/* Deletes <base>/leader if the term is still ours (check(epoch) in the same multi) and
 * our election node; both queued at once, so the successor is notified by the second. */
static void el_cleanup(struct ha_election *e) {
        if (ha_zk_state(e->zk) != HA_ZK_CONNECTED) {
                e->busy = false;
                e->need_step = true;
                return;
        }
        struct el_cleanup *c = calloc(1, sizeof(*c));
        if (!c) {
                el_failed(e, -ENOMEM, "deleting", e->leader_path);
                return;
        }
        c->remaining = 1;
        int r = 0;
        if (e->fence.epoch) {
                struct el_op *op = el_op_new(e);
                if (!op) {
                        r = -ENOMEM;
                        goto done;
                }
                op->cleanup = c;
                ha_fence_check_op(&e->fence, &op->ops[0]);
                /* the fence lives in e, which outlives the request (op holds a ref) */
                zoo_delete_op_init(&op->ops[1], e->leader_path, -1);
                c->remaining++;
                r = ha_zk_amulti(e->zk, 2, op->ops, op->results, el_cleanup_multi_done, op);
                if (r < 0) {
                        c->remaining--;
                        el_op_free(op);
                        goto done;
                }
        }
        if (e->my_path[0]) {
                struct el_op *op = el_op_new(e);
                if (!op) {
                        r = -ENOMEM;
                        goto done;
                }
                op->cleanup = c;
                snprintf(op->path, sizeof(op->path), "%s", e->my_path);
                c->remaining++;
                r = ha_zk_adelete(e->zk, op->path, -1, el_cleanup_delete_done, op);
                if (r < 0) {
                        c->remaining--;
                        el_op_free(op);
                }
        }
done:
        if (--c->remaining == 0) {
                free(c);
                if (r < 0)
                        el_failed(e, r, "deleting", e->leader_path);
                else
                        el_cleanup_finished(e);
                return;
        }
        if (r < 0)
                c->first_error = r;
}

/* Leadership is over (not by resign): report it, then clean up and stand again. */
static void el_lose(struct ha_election *e, const char *reason) {
        if (!ha_election_state_holds_epoch(e->state))
                return;
        evtimer_del(e->deadline_ev);
        if (!el_goto(e, HA_ELECTION_RELEASING, reason, true))
                return;
        el_run(e);
}

int ha_election_resign(struct ha_election *e, bool rejoin) {
        if (!e || e->dead || e->state == HA_ELECTION_STOPPED || e->state == HA_ELECTION_RESIGNING)
                return -EALREADY;
        el_enter(e);
        e->resign_rejoin = rejoin;
        if (e->state == HA_ELECTION_CLAIMING && e->busy) {
                /* Let the claim finish: a leader node it creates must be deleted too. */
                e->resign_requested = true;
        } else {
                e->resign_requested = false;
                evtimer_del(e->deadline_ev);
                if (e->state != HA_ELECTION_RELEASING && !ha_election_state_holds_epoch(e->state))
                        e->fence = (struct ha_fence){0};
                if (el_goto(e, HA_ELECTION_RESIGNING, "resign", false))
                        el_run(e);
        }
        el_leave(e);
        return 0;
}

void ha_election_report_fenced(struct ha_election *e, const struct ha_fence *f) {
        if (!e || e->dead || !f || f->epoch == 0 || f->epoch != e->fence.epoch)
                return;
        el_enter(e);
        el_lose(e, "fenced");
        el_leave(e);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void el_step(struct ha_election *e) {
        if (!el_alive(e))
                return;
        bool connected = ha_zk_state(e->zk) == HA_ZK_CONNECTED;
        switch (e->state) {
        case HA_ELECTION_IDLE:
                if (connected && el_goto(e, HA_ELECTION_REGISTERING, "connected", false))
                        el_run(e);
                return;
        case HA_ELECTION_LEADER:
        case HA_ELECTION_SUSPENDED:
        case HA_ELECTION_STOPPED:
                return;
        default:
                break;
        }
        if (!connected) {
                e->need_step = true;
                return;
        }
        e->busy = true;
        e->need_step = false;
        switch (e->state) {
        case HA_ELECTION_REGISTERING:
                el_register(e);
                break;
        case HA_ELECTION_CANDIDATE:
                el_check_position(e);
                break;
        case HA_ELECTION_CLAIMING:
                if (e->claim_ambiguous)
                        el_claim_readback(e);
                else
                        el_claim(e);
                break;
        case HA_ELECTION_RESUMING:
                el_resume_check(e);
                break;
        case HA_ELECTION_RELEASING:
        case HA_ELECTION_RESIGNING:
                el_cleanup(e);
                break;
        default:
                e->busy = false;
                break;
        }
}

static void el_run(struct ha_election *e) {
        if (e->busy) {
                e->rerun = true;
                return;
        }
        e->rerun = false;
        el_step(e);
}

static void el_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct ha_election *e = userdata;
        (void)zk;
        if (!el_alive(e))
                return;
        el_enter(e);
        switch (ev->type) {
        case HA_ZK_EVENT_CONNECTED:
                if (ev->new_session) {
                        e->session_id = ev->session_id;
                        if (e->state == HA_ELECTION_IDLE || e->need_step) {
                                e->busy = false;
                                el_run(e);
                        }
                } else if (e->state == HA_ELECTION_SUSPENDED) {
                        if (el_goto(e, HA_ELECTION_RESUMING, "reconnected", false))
                                el_run(e);
                } else if (e->need_step || e->state == HA_ELECTION_CANDIDATE ||
                           (e->state == HA_ELECTION_CLAIMING && e->waiting_leader_gone)) {
                        e->busy = false;
                        el_run(e);
                }
                break;
        case HA_ZK_EVENT_CONNECTING:
                if (e->state == HA_ELECTION_LEADER)
                        el_goto(e, HA_ELECTION_SUSPENDED, "connection-lost", false);
                /* the deadline timer keeps running from the last message heard */
                break;
        case HA_ZK_EVENT_EXPIRED: {
                evtimer_del(e->deadline_ev);
                bool held = ha_election_state_holds_epoch(e->state);
                enum ha_election_state st = e->state;
                e->my_node[0] = '\0';
                e->my_path[0] = '\0';
                e->claim_ambiguous = false;
                e->adopt = false;
                e->need_step = false;
                if (st == HA_ELECTION_RESIGNING) {
                        el_cleanup_finished(e);
                        break;
                }
                if (st == HA_ELECTION_STOPPED)
                        break;
                if (el_goto(e, HA_ELECTION_IDLE, "session-expired", held))
                        e->fence = (struct ha_fence){0};
                break;
        }
        case HA_ZK_EVENT_STALL:
                if (ha_election_state_holds_epoch(e->state))
                        el_lose(e, "stall");
                break;
        case HA_ZK_EVENT_AUTH_FAILED:
                el_report_error(e, -EACCES, "authenticating to ZooKeeper for %s", e->base);
                if (el_alive(e)) {
                        bool held = ha_election_state_holds_epoch(e->state);
                        evtimer_del(e->deadline_ev);
                        el_goto(e, HA_ELECTION_STOPPED, "error", held);
                }
                break;
        }
        el_leave(e);
}

static void el_watch(struct ha_zk *zk, int type, const char *path, void *userdata) {
        struct ha_election *e = userdata;
        (void)zk;
        if (!el_alive(e))
                return;
        el_enter(e);
        switch (e->state) {
        case HA_ELECTION_CANDIDATE:
                if (type == ZOO_DELETED_EVENT && strcmp(path, e->pred_path) == 0)
                        el_run(e);
                break;
        case HA_ELECTION_CLAIMING:
                if (e->waiting_leader_gone && type == ZOO_DELETED_EVENT &&
                    strcmp(path, e->leader_path) == 0) {
                        e->waiting_leader_gone = false;
                        e->busy = false;
                        el_run(e);
                }
                break;
        case HA_ELECTION_LEADER:
        case HA_ELECTION_SUSPENDED:
        case HA_ELECTION_RESUMING:
                if (type == ZOO_DELETED_EVENT && strcmp(path, e->leader_path) == 0)
                        el_lose(e, "leader-node-deleted");
                else if (type == ZOO_DELETED_EVENT && strcmp(path, e->my_path) == 0)
                        el_lose(e, "election-node-deleted");
                else if (strcmp(path, e->epoch_path) == 0)
                        el_watch_path(e, e->epoch_path); /* compares the version, re-arms */
                else if (strcmp(path, e->leader_path) == 0 || strcmp(path, e->my_path) == 0)
                        el_watch_path(e, path);
                break;
        default:
                break;
        }
        el_leave(e);
}

/* ---- creation and accessors -------------------------------------------------------------- */

int ha_election_create(struct ha_zk *zk, const char *base, const struct ha_candidate_info *info,
                       const struct ha_election_callbacks *callbacks, void *userdata,
                       struct ha_election **ret) {
        size_t blen = base ? strlen(base) : 0;
        if (!zk || !info || blen < 2 || base[0] != '/' || base[blen - 1] == '/' ||
            blen + 32 > EL_PATH_MAX)
                return -EINVAL;
        if (strnlen(info->id, HA_NAME_MAX) >= HA_NAME_MAX || !info->id[0] ||
            strnlen(info->host, HA_ADDR_MAX) >= HA_ADDR_MAX ||
            strnlen(info->rpc, HA_ADDR_MAX) >= HA_ADDR_MAX ||
            strnlen(info->rest, HA_ADDR_MAX) >= HA_ADDR_MAX)
                return -EINVAL;
        struct ha_election *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->refs = 1;
        e->zk = zk;
        snprintf(e->base, sizeof(e->base), "%s", base);
        snprintf(e->dir, sizeof(e->dir), "%s/election", base);
        snprintf(e->epoch_path, sizeof(e->epoch_path), "%s/epoch", base);
        snprintf(e->leader_path, sizeof(e->leader_path), "%s/leader", base);
        e->info = *info;
        if (callbacks)
                e->cbs = *callbacks;
        e->userdata = userdata;
        e->state = HA_ELECTION_IDLE;
        int r = -ENOMEM;
        e->deadline_ev = evtimer_new(ha_zk_event_base(zk), el_deadline_cb, e);
        e->retry_ev = evtimer_new(ha_zk_event_base(zk), el_retry_cb, e);
        if (!e->deadline_ev || !e->retry_ev)
                goto fail;
        if ((r = ha_zk_subscribe(zk, el_zk_event, e)) < 0)
                goto fail;
        if ((r = ha_zk_watch_add(zk, e->base, el_watch, e)) < 0)
                goto fail;
        int64_t sid;
        if (ha_zk_state(zk) == HA_ZK_CONNECTED && ha_zk_session(zk, &sid, NULL) == 0) {
                e->session_id = sid;
                el_enter(e);
                el_run(e);
                el_leave(e);
        }
        *ret = e;
        return 0;
fail:
        el_kill(e);
        return r;
}

enum ha_election_state ha_election_state(const struct ha_election *e) {
        return e->state;
}

uint64_t ha_election_epoch(const struct ha_election *e) {
        return ha_election_state_holds_epoch(e->state) ? e->fence.epoch : 0;
}

const char *ha_election_node(const struct ha_election *e) {
        return e->my_node;
}

const char *ha_election_epoch_path(const struct ha_election *e) {
        return e->epoch_path;
}

const char *ha_election_leader_path(const struct ha_election *e) {
        return e->leader_path;
}

const char *ha_election_dir(const struct ha_election *e) {
        return e->dir;
}
