/* Leader election with epochs on ZooKeeper (DESIGN.md "ZooKeeper layout"): every
 * candidate holds an EPHEMERAL_SEQUENTIAL node <base>/election/n_<seq> and watches only
 * the next lower one; the lowest claims leadership with one multi that checks its own
 * node, bumps <base>/epoch at the version it read and creates the ephemeral
 * <base>/leader. The epoch and the version of <base>/epoch it set are the fence: every
 * later write of the leader carries check(epoch, version) in the same multi, so a
 * deposed leader's writes fail in ZooKeeper itself.
 *
 * The election is an explicit state machine; every transition is reported with the
 * epoch concerned and a reason. A leader that loses its connection is SUSPENDED (no side
 * effects, leadership kept); it resumes with the same epoch if it reconnects within the
 * session and the epoch is unchanged, and it gives up when the lease runs out
 * (ha_zk_last_alive_us() + ha_zk_lease_ms(), i.e. 3/4 of the session timeout after the
 * server was last heard), when its loop stalled longer than the lease, when a fenced
 * write fails, or when the session expires. After losing leadership it deletes what it
 * still owns and stands again as a new candidate. The module decides nothing else and
 * never logs: the program logs the transitions. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <zookeeper/zookeeper.h>

#include "ha/payload.h"

struct ha_zk;
struct ha_election;

enum ha_election_state {
        HA_ELECTION_IDLE,        /* waiting for a (new) ZooKeeper session */
        HA_ELECTION_REGISTERING, /* creating our election node, or finding it again */
        HA_ELECTION_CANDIDATE,   /* our node exists; watching the next lower node */
        HA_ELECTION_CLAIMING,    /* lowest node: bumping the epoch, creating leader */
        HA_ELECTION_LEADER,      /* leader and connected: may act */
        HA_ELECTION_SUSPENDED,   /* leader, connection lost: no side effects, epoch kept */
        HA_ELECTION_RESUMING,    /* leader, reconnected in the same session: checking */
        HA_ELECTION_RELEASING,   /* lost leadership, session alive: deleting our nodes */
        HA_ELECTION_RESIGNING,   /* clean resign: leader + our node deleted in one multi */
        HA_ELECTION_STOPPED,     /* resigned without rejoining, or failed for good */
};

/* "idle", "registering", "candidate", "claiming", "leader", "suspended", "resuming",
 * "releasing", "resigning", "stopped". Static storage. */
const char *ha_election_state_name(enum ha_election_state s);

/* LEADER, SUSPENDED and RESUMING: states in which this process holds an epoch. */
bool ha_election_state_holds_epoch(enum ha_election_state s);

/* The fence of one leadership term. */
struct ha_fence {
        uint64_t epoch;        /* the term; strictly increasing across leaders */
        int32_t epoch_version; /* version of <base>/epoch set by the claim */
        int64_t epoch_zxid;    /* zxid of the claim (the epoch node's mzxid) */
        char epoch_path[512];  /* <base>/epoch */
};

/* Appends check(epoch_path, epoch_version) as op: put it first in every fenced multi.
 * The op borrows f->epoch_path: keep f alive until the multi completes. */
void ha_fence_check_op(const struct ha_fence *f, zoo_op_t *op);

struct ha_election_transition {
        enum ha_election_state from;
        enum ha_election_state to;
        /* The epoch concerned: the one won (to LEADER from CLAIMING), kept (SUSPENDED,
         * RESUMING, back to LEADER) or lost/resigned; 0 when none. */
        uint64_t epoch;
        /* Why, as a short token for logs: "elected", "connection-lost", "reconnected",
         * "lease-expired", "deadline", "stall", "session-expired", "fenced",
         * "epoch-changed", "leader-node-deleted", "election-node-deleted", "resign",
         * "registered", "predecessor-gone", "lowest", "lost-race", "leader-exists",
         * "node-missing", "connected", "released", "error". Static storage. */
        const char *reason;
        /* True when this transition ends a leadership term other than by a clean
         * resign: the program logs -leadership-lost. */
        bool leadership_lost;
        /* The fence of the term concerned (epoch != 0), borrowed for the call. */
        const struct ha_fence *fence;
        /* Our election node ("n_0000000012") or "" when none. */
        const char *node;
};

struct ha_election_callbacks {
        /* Every state change. Called on the loop thread, possibly from inside the
         * ZooKeeper client; may call any ha_election_* function, including destroy
         * (deferred until the callback returns). */
        void (*transition)(struct ha_election *e, const struct ha_election_transition *t,
                           void *userdata);
        /* An unexpected error the election works around (it retries after a short
         * back-off): r is a negative errno, what names the step and the znode. May be
         * NULL. */
        void (*error)(struct ha_election *e, int r, const char *what, void *userdata);
};

/* Joins the election under base ("<root>/<cluster>", e.g. "/flinc/default"; the nodes
 * below it are created as needed). info is copied (its token is generated here). The
 * election starts as soon as zk is connected; zk must outlive the election. Returns 0
 * and *ret, or -EINVAL (bad base, fields too long) / -ENOMEM. Free with
 * ha_election_destroy(). */
int ha_election_create(struct ha_zk *zk, const char *base,
                       const struct ha_candidate_info *info,
                       const struct ha_election_callbacks *callbacks, void *userdata,
                       struct ha_election **ret);

/* Leaves without cleaning up (ZooKeeper removes our ephemeral nodes when the session
 * ends): call ha_election_resign() first for a prompt handover. Accepts NULL; deferred
 * when called from one of its own callbacks. */
void ha_election_destroy(struct ha_election *e);

/* Gives up leadership or candidacy at once: is_acting() turns false immediately, then
 * one multi deletes <base>/leader and our election node (check(epoch) first, so a term
 * that was already lost deletes only our own node). The successor, which watches our
 * node, claims right away. Ends in STOPPED, or in REGISTERING (back in the queue) when
 * rejoin is true. 0, or -EALREADY when already stopped or resigning. */
int ha_election_resign(struct ha_election *e, bool rejoin);

enum ha_election_state ha_election_state(const struct ha_election *e);

/* True only when LEADER and the lease still runs: the one question to ask before any
 * side effect. Pure: does not change state. */
bool ha_election_is_acting(const struct ha_election *e);

/* The current term's fence. 0 when acting; -EAGAIN when the term is held but suspended
 * or being checked (SUSPENDED, RESUMING, or the lease ran out); -ESTALE otherwise (not
 * leader). *ret untouched on failure. */
int ha_election_fence(const struct ha_election *e, struct ha_fence *ret);

/* Tells the election that a write fenced with f failed with -ESTALE: if f is the
 * current term, leadership is lost (reason "fenced"). */
void ha_election_report_fenced(struct ha_election *e, const struct ha_fence *f);

/* The epoch of the current term, 0 when none. */
uint64_t ha_election_epoch(const struct ha_election *e);

/* Our election node name ("n_0000000012"), "" when none. Borrowed until the next
 * transition. */
const char *ha_election_node(const struct ha_election *e);

/* <base>/epoch, <base>/leader, <base>/election. Borrowed; live as long as e. */
const char *ha_election_epoch_path(const struct ha_election *e);
const char *ha_election_leader_path(const struct ha_election *e);
const char *ha_election_dir(const struct ha_election *e);
