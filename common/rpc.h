/* RPC framing for coordinator<->worker and worker<->worker connections: frames of
 * `u32 big-endian length | msgpack map` on libevent bufferevents, a hello handshake that
 * checks cluster id and protocol version, and request/response correlation with
 * timeouts. Nothing a peer sends can crash the process or make it buffer without bound:
 * frames are capped, pending output and pending calls are capped, and a malformed frame
 * closes that one connection with a logged reason.
 *
 * Wire contract (protocol version RPC_PROTOCOL_VERSION):
 *   frame     u32 big-endian body length n (1 <= n <= max_frame_bytes), then n bytes
 *             holding exactly one msgpack map.
 *   every map `v` uint (protocol version, >= 1), `t` str (message type, 1..63 printable
 *             ASCII bytes, no spaces), `id` uint (request id; 0 for one-way messages).
 *             Optional `epoch` uint: the sender's leader epoch (coordinators set it;
 *             this layer carries it, see rpc_msg_set_epoch / rpc_msg_epoch).
 *   hello     the first frame from each side: {v, t: "hello", id: 0, cluster: str,
 *             role: str, name: str}. role and name are printable ASCII without spaces
 *             (may be empty; up to 63 and 255 bytes).
 *             A different `v` or `cluster` closes the connection (-EPROTO) with a
 *             logged reason naming both values; any other first frame is -EPROTO too.
 *   request   {v, t: <type>, id: <n != 0>, ...fields}; ids count up from 1 per
 *             connection and side.
 *   response  {v, t: "response", id: 0, re: <request id>, ok: bool,
 *             error: str (when ok is false), ...fields}. A response whose `re` matches
 *             no pending call is dropped (debug log). A "response" without a uint `re`
 *             or a bool `ok` is malformed.
 * The keys v, t, id and epoch are reserved in every body; re, ok and error also in the
 * bodies of responses (rpc_reply).
 *
 * Close reasons given to on_close (and to pending calls, see rpc_call_cb):
 *   0             the peer closed the connection (EOF), also in the middle of a frame
 *   -ECONNRESET, -EPIPE, other -errno from the socket
 *   -ECONNREFUSED, -EHOSTUNREACH (name lookup failed)    connect failed
 *   -EMSGSIZE     a frame length over max_frame_bytes
 *   -EBADMSG      a malformed frame (length 0, not exactly one msgpack map, nested
 *                 deeper than RPC_MAX_DEPTH or over RPC_MAX_OBJECTS objects, `v`/`t`/`id`
 *                 missing or invalid, bad hello or response fields)
 *   -EPROTO       protocol version or cluster id mismatch, a first frame that is not a
 *                 hello, a second hello
 *   -ETIMEDOUT    connect + hello not done within hello_timeout_ms
 * Malformed, oversized and protocol closes and hello timeouts are logged with log_warn
 * naming the peer and the reason; the rest at debug level.
 *
 * Threads: every object belongs to the thread that runs its event_base; nothing here
 * is thread-safe. SIGPIPE: libevent writes with writev(2), so a process using this
 * module must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)) or a peer that resets its
 * connection kills it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct event_base;
struct evdns_base;

#define RPC_PROTOCOL_VERSION 1u
#define RPC_FRAME_HEADER_BYTES 4u
/* Default frame body cap: Flink's pekko.framesize, 10485760 bytes. */
#define RPC_DEFAULT_MAX_FRAME_BYTES (10u << 20)
#define RPC_MIN_FRAME_BYTES 1024u
#define RPC_DEFAULT_MAX_OUTPUT_BYTES (64u << 20)
#define RPC_DEFAULT_HELLO_TIMEOUT_MS 10000u
#define RPC_DEFAULT_MAX_PENDING_CALLS 4096u
#define RPC_DEFAULT_MAX_CONNECTIONS 4096u
/* Lengths of strings on the wire, without the NUL. */
#define RPC_TYPE_MAX_BYTES 63u
#define RPC_CLUSTER_MAX_BYTES 255u
#define RPC_ROLE_MAX_BYTES 63u
#define RPC_NAME_MAX_BYTES 255u
#define RPC_ERROR_MAX_BYTES 1024u /* longer error texts are truncated by rpc_reply_error */
/* Nesting limit of msgpack containers in a frame (msgpack-c's unpacker limit). */
#define RPC_MAX_DEPTH 32u
/* msgpack objects (every scalar, str, bin, array, map, key and value) in one frame.
 * msgpack-c takes about 24 bytes per object, so a frame unpacks into at most ~24 MiB;
 * bulk data belongs in bin fields, which are one object and are not copied. */
#define RPC_MAX_OBJECTS (1u << 20)
/* Enough for "[ipv6]:port" and a NUL. */
#define RPC_PEER_MAX 64u

#define RPC_TYPE_HELLO "hello"
#define RPC_TYPE_RESPONSE "response"

/* Settings of a server or an outgoing connection. The strings are copied by
 * rpc_server_create / rpc_connect and must be printable ASCII without spaces, at most
 * RPC_CLUSTER_MAX_BYTES / RPC_ROLE_MAX_BYTES / RPC_NAME_MAX_BYTES long (else -EINVAL).
 * A zero number means the default. */
struct rpc_options {
        const char *cluster_id;    /* required: high-availability.cluster-id */
        const char *role;          /* this side's role ("coordinator", "worker"); NULL = "" */
        const char *name;          /* this side's name (id, host:port); NULL = "" */
        size_t max_frame_bytes;    /* body cap, RPC_MIN_FRAME_BYTES..UINT32_MAX */
        size_t max_output_bytes;   /* pending output cap, >= max_frame_bytes + 4 */
        uint32_t hello_timeout_ms; /* connect + hello exchange */
        uint32_t max_pending_calls;
        uint32_t max_connections;  /* servers: accepted connections open at once */
        /* 0 = RPC_PROTOCOL_VERSION; another value only to test version mismatches. */
        uint32_t protocol_version;
        /* rpc_connect: resolves host names (to IPv4 addresses; the first one is tried)
         * when set; NULL = numeric addresses only, since a blocking lookup must not run
         * on a loop thread. The lookup counts against hello_timeout_ms; a failed one
         * is -EHOSTUNREACH. Closing a connection cancels its lookup, which libevent
         * finishes from the loop: run the loop once more before freeing the
         * evdns_base or the event_base. */
        struct evdns_base *dns;
};

/* ---- frames (pure functions, no libevent; the fuzzer's entry points) ---- */

/* One decoded frame. map and the strings inside it borrow from the msgpack_unpacked the
 * frame was decoded into *and* from the input buffer: both must outlive their use. */
struct rpc_frame {
        uint32_t version;                   /* v */
        uint64_t id;                        /* id */
        char type[RPC_TYPE_MAX_BYTES + 1];  /* t, NUL-terminated, printable ASCII */
        const msgpack_object *map;          /* the whole map */
        size_t frame_bytes;                 /* header + body: what the frame consumed */
};

/* Reads the length prefix at buf. 0 with *ret_frame_bytes = 4 + body length once four
 * bytes are there (the body may still be missing); -EAGAIN with fewer than four bytes;
 * -EMSGSIZE when the body length is over max_frame_bytes; -EBADMSG when it is 0. */
int rpc_frame_peek(const void *buf, size_t len, size_t max_frame_bytes,
                   size_t *ret_frame_bytes);

/* Decodes the frame at the start of buf[0..len). 0 and *ret_frame filled (out holds the
 * map; the caller keeps out initialized with msgpack_unpacked_init and destroys it with
 * msgpack_unpacked_destroy; each decode replaces its previous content); -EAGAIN when
 * buf does not hold the whole frame yet; -EMSGSIZE or -EBADMSG for a frame that must
 * close the connection. Before msgpack-c sees the body it is checked to be exactly one
 * msgpack object whose container counts fit in the body, with at most RPC_MAX_DEPTH
 * nesting and RPC_MAX_OBJECTS objects, so a few bytes cannot make the unpacker
 * allocate gigabytes. err (may be NULL) gets a one-line reason on -EMSGSIZE and
 * -EBADMSG. ret_frame is untouched on failure. */
int rpc_frame_decode(const void *buf, size_t len, size_t max_frame_bytes,
                     msgpack_unpacked *out, struct rpc_frame *ret_frame, char *err,
                     size_t err_len);

/* ---- messages ---- */

/* Builder of a message body: rpc_msg_init(&m, 2), then exactly 2 key/value pairs packed
 * on &m.pk (msg_pack_kv_str(&m.pk, "job", id) ...), then rpc_send / rpc_call /
 * rpc_reply, as often as wanted (a body can go to several connections), then
 * rpc_msg_finish. The header fields (v, t, id, epoch, re, ok, error) are added at send
 * time; bodies must not use them (see the wire contract above). The struct must not be
 * copied or moved after rpc_msg_init (pk points into it). */
struct rpc_msg {
        msgpack_packer pk;
        /* private */
        msgpack_sbuffer buf;
        uint32_t nfields;
        bool has_epoch;
        int error; /* -ENOMEM, or -EMSGSIZE past UINT32_MAX bytes, while packing */
        uint64_t epoch;
};

void rpc_msg_init(struct rpc_msg *m, uint32_t nfields);
/* Adds `epoch` to every frame sent with this body (coordinator->worker messages). */
void rpc_msg_set_epoch(struct rpc_msg *m, uint64_t epoch);
/* Frees the body bytes; m may then be initialized again. Accepts a zeroed struct. */
void rpc_msg_finish(struct rpc_msg *m);

/* Reads the `epoch` of a received map: 0, -ENOENT (none) or -EINVAL (not a uint). */
int rpc_msg_epoch(const msgpack_object *map, uint64_t *ret_epoch);
/* The `error` text of a response with ok = false, borrowed like the map, not
 * NUL-terminated: 0 or -ENOENT / -EINVAL. */
int rpc_response_error(const msgpack_object *response, const char **ret_text,
                       size_t *ret_len);

/* ---- connections ---- */

struct rpc_conn;

struct rpc_conn_callbacks {
        /* rpc_connect only: the TCP connection is up and both hellos were accepted.
         * Not called for accepted connections (the server's on_accept is). */
        void (*on_connected)(struct rpc_conn *conn, void *arg);
        /* A frame other than hello and response. type is NUL-terminated; id is the
         * request id (0 for one-way; answer a request with rpc_reply or
         * rpc_reply_error, now or later). type and map are borrowed until the callback
         * returns; copy what must outlive it. */
        void (*on_message)(struct rpc_conn *conn, const char *type, uint64_t id,
                           const msgpack_object *map, void *arg);
        /* The connection closed for a reason other than rpc_conn_close /
         * rpc_server_destroy (see "Close reasons" above). Called once, after pending
         * calls were failed; the connection is freed when the callback returns, so
         * conn must not be used afterwards. */
        void (*on_close)(struct rpc_conn *conn, int reason, void *arg);
        /* Optional: an rpc_send/rpc_call/rpc_reply returned -ENOBUFS earlier and pending
         * output has now fallen to half of max_output_bytes. */
        void (*on_drain)(struct rpc_conn *conn, void *arg);
};

/* Called once per call: error 0 and the response map (ok = true); -EREMOTEIO and the
 * response map (ok = false; read the text with rpc_response_error); or, with response
 * NULL, -ETIMEDOUT (no response in time), -ECONNRESET (the connection closed, whatever
 * the close reason), -ECANCELED (closed locally by rpc_conn_close or
 * rpc_server_destroy). response is borrowed until the callback returns. conn is valid
 * during the call but may be closing: rpc_send then returns -ENOTCONN. */
typedef void (*rpc_call_cb)(struct rpc_conn *conn, int error,
                            const msgpack_object *response, void *arg);

/* Starts connecting to host:port (numeric unless opts->dns is set); the hello goes out
 * as soon as TCP is up. 0 and *ret_conn, or -EINVAL (bad options or address) / -ENOMEM;
 * then exactly one of: on_connected (later on_close on a close), or on_close alone
 * (connect failed, hello rejected or timed out). The connection is owned by the caller
 * until on_close returns; release it earlier with rpc_conn_close. cbs is copied; arg is
 * handed to the callbacks. */
int rpc_connect(struct event_base *base, const char *host, uint16_t port,
                const struct rpc_options *opts, const struct rpc_conn_callbacks *cbs,
                void *arg, struct rpc_conn **ret_conn);

/* Replaces the callbacks and their arg (cbs is copied). Accepted connections start
 * with none: set them in on_accept, before the first message arrives. */
void rpc_conn_set_callbacks(struct rpc_conn *conn, const struct rpc_conn_callbacks *cbs,
                            void *arg);

/* Closes the connection now, dropping unsent output. Pending calls get -ECANCELED
 * before this returns; on_close is not called. The memory is freed at once or, when
 * called from inside one of this connection's callbacks (or a call callback), when
 * that callback returns. NULL and repeated calls are no-ops. */
void rpc_conn_close(struct rpc_conn *conn);

/* Sends a one-way message (id 0) of the given type with body's fields (body NULL: no
 * fields). 0, or -ENOTCONN (hello not done yet, or closed), -EINVAL (bad type, body
 * with a different field count than declared or a reserved key), -EMSGSIZE (over the
 * frame cap), -ENOBUFS (pending output would pass max_output_bytes; on_drain follows),
 * -ENOMEM. Nothing is queued on failure. */
int rpc_send(struct rpc_conn *conn, const char *type, const struct rpc_msg *body);

/* Sends a request and calls cb once with its outcome (see rpc_call_cb). timeout_ms > 0.
 * Errors as rpc_send, plus -EAGAIN when max_pending_calls are pending; cb is not called
 * when rpc_call fails. */
int rpc_call(struct rpc_conn *conn, const char *type, const struct rpc_msg *body,
             uint32_t timeout_ms, rpc_call_cb cb, void *arg);

/* Answers request_id with ok = true and body's fields (NULL: none); errors as rpc_send.
 * rpc_reply_error answers ok = false with error_text (truncated to
 * RPC_ERROR_MAX_BYTES). */
int rpc_reply(struct rpc_conn *conn, uint64_t request_id, const struct rpc_msg *body);
int rpc_reply_error(struct rpc_conn *conn, uint64_t request_id, const char *error_text);

/* "127.0.0.1:4567" ("[::1]:4567"); the peer's role and name from its hello ("" before
 * the hello). Strings live as long as conn. */
const char *rpc_conn_peer(const struct rpc_conn *conn);
const char *rpc_conn_peer_role(const struct rpc_conn *conn);
const char *rpc_conn_peer_name(const struct rpc_conn *conn);
/* Hello done and not closed. */
bool rpc_conn_is_open(const struct rpc_conn *conn);
/* Bytes queued for the peer and not yet written to the socket. */
size_t rpc_conn_output_bytes(const struct rpc_conn *conn);
/* Calls waiting for a response. */
uint32_t rpc_conn_pending_calls(const struct rpc_conn *conn);

/* ---- servers ---- */

struct rpc_server;

struct rpc_server_callbacks {
        /* A connection finished the hello exchange. Set its callbacks with
         * rpc_conn_set_callbacks here. The connection belongs to the server until the
         * owner closes it, it closes (on_close), or the server is destroyed. */
        void (*on_accept)(struct rpc_server *srv, struct rpc_conn *conn, void *arg);
        /* Optional: a connection closed before its hello was accepted. peer is
         * borrowed for the call; reason as for on_close. */
        void (*on_reject)(struct rpc_server *srv, const char *peer, int reason, void *arg);
};

/* Counters since rpc_server_create (read on the server's loop thread). */
struct rpc_server_stats {
        uint64_t accepted;         /* TCP connections accepted */
        uint64_t refused;          /* closed at once: max_connections were open */
        uint64_t hellos;           /* connections that completed the hello exchange */
        uint64_t frames;           /* frames accepted: hellos, messages, responses */
        uint64_t closed_peer;      /* closed by the peer or a socket error */
        uint64_t closed_oversized; /* -EMSGSIZE */
        uint64_t closed_malformed; /* -EBADMSG */
        uint64_t closed_protocol;  /* -EPROTO */
        uint64_t closed_timeout;   /* hello timeout */
        uint64_t closed_local;     /* rpc_conn_close, rpc_server_destroy */
        uint64_t closed_error;     /* local failure (-ENOMEM) */
        uint64_t accept_errors;    /* accept(2) failed (EMFILE: paused for 100 ms) */
        uint64_t open;             /* connections open now (with or without hello) */
};

/* Listens on bind_host:port (numeric; NULL = "0.0.0.0"; port 0 = any free port).
 * 0 and *ret_srv, or -EINVAL, -ENOMEM, -EADDRINUSE and other bind errors. cbs is
 * copied. Destroy with rpc_server_destroy. */
int rpc_server_create(struct event_base *base, const char *bind_host, uint16_t port,
                      const struct rpc_options *opts, const struct rpc_server_callbacks *cbs,
                      void *arg, struct rpc_server **ret_srv);

/* The port the server listens on (useful after port 0). */
uint16_t rpc_server_port(const struct rpc_server *srv);

void rpc_server_get_stats(const struct rpc_server *srv, struct rpc_server_stats *ret_stats);

/* Stops listening and closes every connection it accepted as rpc_conn_close does
 * (pending calls get -ECANCELED, on_close is not called; pointers to them become
 * invalid). May be called from inside a callback. NULL is a no-op. */
void rpc_server_destroy(struct rpc_server *srv);
