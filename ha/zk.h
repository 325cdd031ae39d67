/* A ZooKeeper session driven by a libevent loop through the single-threaded C client
 * (zookeeper_interest / zookeeper_process): the socket may change on every reconnect and
 * be absent during back-off, the client's timer is always armed, nothing blocks. It
 * reports connection states, starts a new session by itself after an expiry, notices
 * when its own loop stalled, and keeps the one "last heard from the server" time that
 * leadership leases are measured from. The other ha/ modules issue their asynchronous
 * requests on ha_zk_handle() through the wrappers below. It never logs and never exits:
 * everything is reported through callbacks and return values. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <zookeeper/zookeeper.h>

struct event_base;
struct ha_zk;

enum ha_zk_state {
        HA_ZK_CONNECTING,  /* no usable connection; the session may still be alive */
        HA_ZK_CONNECTED,   /* requests flow; the session is alive */
        HA_ZK_EXPIRED,     /* the session is gone; a new one is being established */
        HA_ZK_AUTH_FAILED, /* the server refused the digest credentials: terminal */
};

/* "connecting", "connected", "expired", "auth-failed". Static storage. */
const char *ha_zk_state_name(enum ha_zk_state s);

enum ha_zk_acl {
        HA_ZK_ACL_OPEN,    /* world:anyone may do anything (the default) */
        HA_ZK_ACL_CREATOR, /* only the creating identity (digest user) may read or write */
};

struct ha_zk_options {
        /* Requested session timeout; the server clamps it to [2, 20] * tickTime unless
         * configured otherwise. The negotiated value is what counts: ha_zk_session_timeout_ms. */
        int session_timeout_ms;
        /* "user:password" for digest authentication, or NULL. Copied. */
        const char *digest;
        /* ACL of every node flinc creates. HA_ZK_ACL_CREATOR needs a digest. */
        enum ha_zk_acl acl;
        /* Where the ZooKeeper C client's own log lines go (it formats them); NULL leaves
         * the client's default (stderr). Called on the loop thread. */
        void (*client_log)(const char *message);
};

enum ha_zk_event_type {
        /* Connected. new_session tells whether this is a session we did not have before
         * (the first one, or the one after an expiry): then no ephemeral node or watch
         * of ours exists and modules re-create them. Otherwise it is a reconnect within
         * the session: watches were re-armed by the client, ephemeral nodes survived. */
        HA_ZK_EVENT_CONNECTED,
        /* The connection is lost; the session may still be alive. Requests in flight
         * complete with ZCONNECTIONLOSS (-ECONNRESET): their outcome is unknown. */
        HA_ZK_EVENT_CONNECTING,
        /* The session expired (old_session_id): its ephemeral nodes and watches are gone
         * and its requests failed. A new session is already being established. */
        HA_ZK_EVENT_EXPIRED,
        /* The loop did not run for stall_ms, more than ha_zk_lease_ms(): nothing heard
         * from the server before it can be trusted any more (ha_zk_last_alive_us() is 0
         * until the next message). Delivered before anything else is processed. */
        HA_ZK_EVENT_STALL,
        /* Digest authentication failed; the handle is unusable. */
        HA_ZK_EVENT_AUTH_FAILED,
};

struct ha_zk_event {
        enum ha_zk_event_type type;
        bool new_session;       /* CONNECTED */
        int64_t session_id;     /* CONNECTED: the session; EXPIRED: the old one */
        uint64_t stall_ms;      /* STALL */
};

/* Called on the loop thread, possibly from inside the ZooKeeper client: the callee may
 * issue requests and may call ha_zk_destroy() (then the handle is freed once the
 * callback returns). ev is valid for the duration of the call. */
typedef void (*ha_zk_event_fn)(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata);

/* Called when a watch fires on a path under a prefix registered with ha_zk_watch_add().
 * type is ZOO_CREATED_EVENT, ZOO_DELETED_EVENT, ZOO_CHANGED_EVENT or ZOO_CHILD_EVENT;
 * path is borrowed for the call. Watches are one-shot: re-arm by reading again. */
typedef void (*ha_zk_watch_fn)(struct ha_zk *zk, int type, const char *path, void *userdata);

/* Starts a session with connect_string ("host:port,host:port[/chroot]", copied) on base.
 * on_event (may be NULL) receives every event, like a subscriber added first. Returns 0
 * and *ret, or -EINVAL (bad options: no digest with HA_ZK_ACL_CREATOR, a timeout <= 0,
 * a digest without ':'), -ENOMEM, or a negative errno from the client's initialization.
 * Free with ha_zk_destroy(). */
int ha_zk_create(struct event_base *base, const char *connect_string,
                 const struct ha_zk_options *options, ha_zk_event_fn on_event, void *userdata,
                 struct ha_zk **ret);

/* Closes the session (its ephemeral nodes go at once when the server is reachable; this
 * may wait a few milliseconds for the server to confirm) and frees everything.
 * Outstanding requests complete with ZCLOSING (-ESHUTDOWN) before it returns, so
 * destroy the modules that use the handle first. Accepts NULL; from inside one of this
 * handle's callbacks it is deferred until the callback returns. */
void ha_zk_destroy(struct ha_zk *zk);

/* Adds an event subscriber (modules: election, retrieval, stores). The subscription
 * lives until ha_zk_unsubscribe() or ha_zk_destroy(); it is safe to unsubscribe from
 * inside a callback. 0 or -ENOMEM. */
int ha_zk_subscribe(struct ha_zk *zk, ha_zk_event_fn fn, void *userdata);
void ha_zk_unsubscribe(struct ha_zk *zk, ha_zk_event_fn fn, void *userdata);

/* Routes watch events for paths equal to prefix or below it (prefix + "/...") to fn.
 * Arm watches with ha_zk_aget()/ha_zk_aexists()/ha_zk_achildren() and watch=true. The
 * prefix is copied. 0 or -ENOMEM. */
int ha_zk_watch_add(struct ha_zk *zk, const char *prefix, ha_zk_watch_fn fn, void *userdata);
void ha_zk_watch_remove(struct ha_zk *zk, const char *prefix, ha_zk_watch_fn fn,
                        void *userdata);

enum ha_zk_state ha_zk_state(const struct ha_zk *zk);

/* The loop the session runs on (modules create their timers on it). */
struct event_base *ha_zk_event_base(const struct ha_zk *zk);

/* The negotiated session timeout once connected, else the requested one. */
int ha_zk_session_timeout_ms(const struct ha_zk *zk);

/* The leadership lease: 3/4 of the (negotiated) session timeout T (DESIGN.md
 * "Failover"). A leader may act only until ha_zk_last_alive_us() + lease; a loop stall
 * longer than the lease counts as lost leadership. Why 3/4:
 *  - below T: the server expires a session no sooner than T after it last heard from
 *    us, and it last heard from us no later than we last heard from it (its answer to
 *    our ping); the remaining T/4 covers loop latency, the ping round trip and clock-rate
 *    differences, so a leader has always stepped down before anyone else can be elected;
 *  - above 2/3: the C client gives up on a silent connection only 2/3 T after its last
 *    message, then moves to another server. A connection can go silent without an RST
 *    (a server changing role during a ZooKeeper leader election orphans its client
 *    connections), so with a 2/3 lease every such blip would cost leadership although
 *    the session survives. 3/4 leaves T/12 to reconnect and resume.
 *  - it stays far above the client's T/3 ping interval, so a healthy connection never
 *    lets it lapse. */
int ha_zk_lease_ms(const struct ha_zk *zk);

/* Monotonic time (clock_mono_us) at which the last message from the server arrived in
 * the current session while connected; 0 when there is none (no session yet, after an
 * expiry, after a stall). */
uint64_t ha_zk_last_alive_us(const struct ha_zk *zk);

/* The current session: id and 16-byte password (for tests that force an expiry and for
 * `session=0x...` in logs). -ENOTCONN before the first connection. */
int ha_zk_session(const struct ha_zk *zk, int64_t *ret_id, char ret_passwd[16]);

/* Runs the stall check now: call at the start of any loop callback of yours that makes
 * a leadership decision, so a stall is seen before anything else. Returns true if a
 * stall was detected (and HA_ZK_EVENT_STALL delivered). */
bool ha_zk_poll_stall(struct ha_zk *zk);

/* ACL for nodes this handle creates (per the options). Borrowed; lives as long as zk. */
const struct ACL_vector *ha_zk_acl(const struct ha_zk *zk);

/* The client handle, for requests the wrappers below do not cover. It changes after an
 * expiry: never keep it. After queuing a request on it directly call ha_zk_kick(). NULL
 * while no handle exists (after a failed re-initialization). */
zhandle_t *ha_zk_handle(const struct ha_zk *zk);

/* Makes the loop look at the handle again soon (after requests were queued). */
void ha_zk_kick(struct ha_zk *zk);

/* Asynchronous requests. Each returns 0 when the request was queued (the completion
 * will then be called exactly once: with the result, with ZCONNECTIONLOSS, with
 * ZSESSIONEXPIRED, or with ZCLOSING at destroy), or a negative errno when it was not
 * queued (-ENOTCONN after an expiry or without a handle, -EINVAL for a bad path): then
 * the completion is never called. Completion arguments (strings, stats, vectors) are
 * borrowed from the client for the duration of the call: copy what you keep. With
 * watch=true the watch goes to the watch_add() routing above. */
int ha_zk_acreate(struct ha_zk *zk, const char *path, const void *data, int len, int flags,
                  string_completion_t done, const void *ctx);
int ha_zk_adelete(struct ha_zk *zk, const char *path, int version, void_completion_t done,
                  const void *ctx);
int ha_zk_aget(struct ha_zk *zk, const char *path, bool watch, data_completion_t done,
               const void *ctx);
int ha_zk_aexists(struct ha_zk *zk, const char *path, bool watch, stat_completion_t done,
                  const void *ctx);
int ha_zk_achildren(struct ha_zk *zk, const char *path, bool watch,
                    strings_completion_t done, const void *ctx);
/* zoo_async: the server this session talks to catches up with the quorum's leader, so
 * every write the leader ordered before the sync (also one sent on a connection that
 * was then lost) is visible to the reads that follow. */
int ha_zk_async_sync(struct ha_zk *zk, const char *path, string_completion_t done,
                     const void *ctx);
/* ops and results must stay valid until done runs (results, create path buffers and set
 * stats are written then): keep them in the request's context. */
int ha_zk_amulti(struct ha_zk *zk, int count, const zoo_op_t *ops, zoo_op_result_t *results,
                 void_completion_t done, const void *ctx);

/* err_from_zk() for ha/: the same, except ZSESSIONMOVED, which err_from_zk() maps to
 * -EIO: the server refused the request because the session had moved to another server
 * (it happens while reconnecting), so it is connection trouble like ZCONNECTIONLOSS and
 * becomes -ECONNRESET. */
int ha_zk_error(int rc);

/* True for client codes after which a write's outcome is unknown and must be read back:
 * ZCONNECTIONLOSS, ZOPERATIONTIMEOUT, ZSESSIONMOVED. */
bool ha_zk_outcome_unknown(int rc);

/* The first failed op of a finished multi: its index, or -1 when rc is ZOK or when no
 * single op failed (connection loss, expiry: the outcome is unknown). */
int ha_zk_multi_failed_op(int rc, int count, const zoo_op_result_t *results);

/* Test hook, for drills and integration tests: the next write request (create, delete,
 * multi) that names a path starting with path_prefix is sent, then the connection is cut
 * (shutdown of the socket): the server applies it, the caller sees ZCONNECTIONLOSS and
 * must read back. One-shot per call; up to 8 prefixes armed at once. 0, -E2BIG or
 * -ENOMEM. */
int ha_zk_inject_drop_after(struct ha_zk *zk, const char *path_prefix);

/* Creates path and its missing parents (persistent, empty, with ha_zk_acl()); existing
 * nodes are fine. done(r, ctx) (may be NULL) runs once with 0 or a negative errno.
 * Returns 0 if queued, else a negative errno and done is not called. */
typedef void (*ha_zk_done_fn)(int r, void *ctx);
int ha_zk_ensure_path(struct ha_zk *zk, const char *path, ha_zk_done_fn done, void *ctx);
