/* RPC framing on libevent bufferevents: the frame decoder (a pure function the fuzzer
 * drives), the message builder, connections with their hello handshake and pending
 * calls, and the accepting server. The wire contract is in common/rpc.h. */
#include "common/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <msgpack/unpack_define.h>

#include "common/err.h"
#include "common/log.h"
#include "common/msg.h"

_Static_assert(RPC_MAX_DEPTH <= MSGPACK_EMBED_STACK_SIZE,
               "frames nested deeper than msgpack-c unpacks would pass the check");

#define RPC_KEY_VERSION "v"
#define RPC_KEY_TYPE "t"
#define RPC_KEY_ID "id"
#define RPC_KEY_EPOCH "epoch"
#define RPC_KEY_RE "re"
#define RPC_KEY_OK "ok"
#define RPC_KEY_ERROR "error"

/* Keys the layer writes: the first four into every frame, the rest into responses. */
static const char *const reserved_keys[] = {
        RPC_KEY_VERSION, RPC_KEY_TYPE, RPC_KEY_ID, RPC_KEY_EPOCH,
        RPC_KEY_RE, RPC_KEY_OK, RPC_KEY_ERROR,
};
#define RESERVED_ALWAYS 4u

/* The frame header as written: u32 body length, then a map32 header (0xdf, u32 count)
 * whose count is known only when the frame is assembled. */
#define FRAME_PREFIX_BYTES (RPC_FRAME_HEADER_BYTES + 5u)

static void set_err(char *err, size_t err_len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...) {
        if (!err || err_len == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
}

static uint32_t load_be32(const uint8_t *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

/* Bytes a peer may put into type, role and name: printable ASCII without space. */
static bool is_token_char(unsigned char ch) {
        return ch > 0x20 && ch < 0x7f;
}

static bool is_text_char(unsigned char ch) {
        return ch >= 0x20 && ch < 0x7f;
}

static bool type_valid(const char *s, size_t len) {
        if (len == 0 || len > RPC_TYPE_MAX_BYTES)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_token_char((unsigned char)s[i]))
                        return false;
        return true;
}

/* Copies peer-controlled bytes for a log line: non-printables become '?', long text is
 * cut with "...". */
static void printable(char *out, size_t out_len, const char *s, size_t len) {
        size_t n = len < out_len ? len : out_len - 4; /* room for "..." and the NUL */
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                out[i] = is_text_char(ch) && ch != '\'' ? (char)ch : '?';
        }
        if (n < len) {
                memcpy(out + n, "...", 3);
                n += 3;
        }
        out[n] = '\0';
}

/* ---- frames ---- */

int rpc_frame_peek(const void *buf, size_t len, size_t max_frame_bytes,
                   size_t *ret_frame_bytes) {
        if (len < RPC_FRAME_HEADER_BYTES)
                return -EAGAIN;
        uint32_t n = load_be32(buf);
        if (n == 0)
                return -EBADMSG;
        if (n > max_frame_bytes)
                return -EMSGSIZE;
        *ret_frame_bytes = RPC_FRAME_HEADER_BYTES + (size_t)n;
        return 0;
}

int rpc_frame_decode(const void *buf, size_t len, size_t max_frame_bytes,
                     msgpack_unpacked *out, struct rpc_frame *ret_frame, char *err,
                     size_t err_len) {
        size_t frame_bytes;
        int r = rpc_frame_peek(buf, len, max_frame_bytes, &frame_bytes);
        if (r == -EMSGSIZE) {
                set_err(err, err_len, "frame length %" PRIu32 " over the limit of %zu bytes",
                        load_be32(buf), max_frame_bytes);
                return r;
        }
        if (r == -EBADMSG) {
                set_err(err, err_len, "frame length 0");
                return r;
        }
        if (r < 0)
                return r;
        if (len < frame_bytes)
                return -EAGAIN;

        const uint8_t *body = (const uint8_t *)buf + RPC_FRAME_HEADER_BYTES;
        size_t n = frame_bytes - RPC_FRAME_HEADER_BYTES;
        uint8_t b = body[0];
        if (!((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)) {
                set_err(err, err_len, "body is not a msgpack map (first byte 0x%02x)", b);
                return -EBADMSG;
        }
        size_t used;
        const char *why;
        uint64_t objects_left = RPC_MAX_OBJECTS;
        r = msg_precheck(body, n, RPC_MAX_DEPTH, &objects_left, &used, &why);
        if (r < 0) {
                set_err(err, err_len, "%s", why);
                return r;
        }
        if (used != n) {
                set_err(err, err_len, "%zu bytes after the map", n - used);
                return -EBADMSG;
        }
        size_t off = 0;
        msgpack_unpack_return ur = msgpack_unpack_next(out, (const char *)body, n, &off);
        if (ur != MSGPACK_UNPACK_SUCCESS || off != n || out->data.type != MSGPACK_OBJECT_MAP) {
                set_err(err, err_len, "msgpack-c refused the body (%d)", (int)ur);
                return -EBADMSG;
        }

        const msgpack_object *map = &out->data;
        uint64_t v, id;
        const char *type;
        size_t type_len;
        r = msg_get_u64(map, RPC_KEY_VERSION, &v);
        if (r < 0 || v == 0 || v > UINT32_MAX) {
                set_err(err, err_len, r == -ENOENT ? "no 'v'" : "'v' is not a version number");
                return -EBADMSG;
        }
        r = msg_get_str(map, RPC_KEY_TYPE, &type, &type_len);
        if (r < 0 || !type_valid(type, type_len)) {
                set_err(err, err_len, r == -ENOENT ? "no 't'" :
                        "'t' is not 1..63 printable ASCII characters");
                return -EBADMSG;
        }
        r = msg_get_u64(map, RPC_KEY_ID, &id);
        if (r < 0) {
                set_err(err, err_len, r == -ENOENT ? "no 'id'" : "'id' is not an unsigned integer");
                return -EBADMSG;
        }

        ret_frame->version = (uint32_t)v;
        ret_frame->id = id;
        memcpy(ret_frame->type, type, type_len);
        ret_frame->type[type_len] = '\0';
        ret_frame->map = map;
        ret_frame->frame_bytes = frame_bytes;
        return 0;
}

/* ---- messages ---- */

static int msg_write(void *data, const char *buf, size_t len) {
        struct rpc_msg *m = data;
        if (m->error)
                return -1;
        if (len > UINT32_MAX - m->buf.size) {
                m->error = -EMSGSIZE;
                return -1;
        }
        if (msgpack_sbuffer_write(&m->buf, buf, len) < 0) {
                m->error = -ENOMEM;
                return -1;
        }
        return 0;
}

void rpc_msg_init(struct rpc_msg *m, uint32_t nfields) {
        memset(m, 0, sizeof(*m));
        msgpack_sbuffer_init(&m->buf);
        msgpack_packer_init(&m->pk, m, msg_write);
        m->nfields = nfields;
}

void rpc_msg_set_epoch(struct rpc_msg *m, uint64_t epoch) {
        m->epoch = epoch;
        m->has_epoch = true;
}

void rpc_msg_finish(struct rpc_msg *m) {
        if (!m)
                return;
        msgpack_sbuffer_destroy(&m->buf);
        msgpack_sbuffer_init(&m->buf);
        m->error = 0;
}

int rpc_msg_epoch(const msgpack_object *map, uint64_t *ret_epoch) {
        return msg_get_u64(map, RPC_KEY_EPOCH, ret_epoch);
}

int rpc_response_error(const msgpack_object *response, const char **ret_text,
                       size_t *ret_len) {
        return msg_get_str(response, RPC_KEY_ERROR, ret_text, ret_len);
}

/* Whether the msgpack object p[0..len) is a str equal to a reserved key (of a
 * response when reply), in any of the str encodings (the receiver reads the first of
 * duplicate keys, which would be the body's). */
static bool key_reserved(const uint8_t *p, size_t len, bool reply) {
        size_t hdr;
        if (p[0] >= 0xa0 && p[0] <= 0xbf)
                hdr = 1;
        else if (p[0] >= 0xd9 && p[0] <= 0xdb)
                hdr = 1 + (1u << (p[0] - 0xd9));
        else
                return false;
        size_t nkeys = reply ? sizeof(reserved_keys) / sizeof(reserved_keys[0]) : RESERVED_ALWAYS;
        for (size_t k = 0; k < nkeys; k++)
                if (strlen(reserved_keys[k]) == len - hdr &&
                    memcmp(p + hdr, reserved_keys[k], len - hdr) == 0)
                        return true;
        return false;
}

/* Checks that a body holds exactly nfields key/value pairs, none with a reserved key, so
 * that a builder mistake is an error here and not a closed connection at the peer. */
static int msg_check(const struct rpc_msg *m, bool reply) {
        if (m->error)
                return m->error;
        const uint8_t *p = (const uint8_t *)m->buf.data;
        size_t len = m->buf.size, pos = 0;
        /* the frame map and up to 7 header pairs come on top */
        uint64_t objects_left = RPC_MAX_OBJECTS - 15;
        for (uint64_t i = 0; i < 2 * (uint64_t)m->nfields; i++) {
                size_t used;
                const char *why;
                if (msg_precheck(p + pos, len - pos, RPC_MAX_DEPTH - 1, &objects_left, &used,
                            &why) < 0)
                        return -EINVAL;
                if (i % 2 == 0 && key_reserved(p + pos, used, reply))
                        return -EINVAL;
                pos += used;
        }
        return pos == len ? 0 : -EINVAL;
}

/* ---- connections ---- */

enum conn_state {
        CONN_CONNECTING, /* rpc_connect: TCP connect (and name lookup) in progress */
        CONN_HELLO,      /* TCP up, our hello queued, waiting for the peer's */
        CONN_OPEN,
        CONN_CLOSED,     /* freed as soon as no callback of it is running */
};

static const char *const conn_state_names[] = {
        [CONN_CONNECTING] = "connecting",
        [CONN_HELLO] = "hello",
        [CONN_OPEN] = "open",
        [CONN_CLOSED] = "closed",
};

enum close_cause {
        CLOSE_LOCAL, /* rpc_conn_close, rpc_server_destroy */
        CLOSE_PEER,  /* EOF or socket error */
        CLOSE_FAIL,  /* we refused what the peer sent, or ran out of resources */
};

/* Options after defaults and validation; each connection keeps its own copy. */
struct conn_settings {
        char cluster_id[RPC_CLUSTER_MAX_BYTES + 1];
        char role[RPC_ROLE_MAX_BYTES + 1];
        char name[RPC_NAME_MAX_BYTES + 1];
        size_t max_frame_bytes;
        size_t max_output_bytes;
        uint32_t hello_timeout_ms;
        uint32_t max_pending_calls;
        uint32_t max_connections;
        uint32_t version;
};

struct rpc_call {
        struct rpc_call *next; /* bucket chain */
        struct rpc_conn *conn;
        struct event *timer;
        uint64_t id;
        rpc_call_cb cb;
        void *arg;
};

/* A host name lookup. libevent always calls its callback once, possibly after the
 * connection is gone (a cancel is delivered from the loop), so the callback owns and
 * frees this; conn is NULL once the connection has given up on it. */
struct conn_lookup {
        struct rpc_conn *conn;
        struct evdns_getaddrinfo_request *req;
};

#define CALL_BUCKETS 256u

struct rpc_conn {
        struct event_base *base;
        struct rpc_server *server; /* accepting server, until closed or destroyed */
        struct rpc_conn *srv_prev, *srv_next;
        bool accepted;
        enum conn_state state;
        unsigned depth;            /* callbacks of this connection running now */
        bool in_connect;           /* inside rpc_connect: failures are errors to return */
        int connect_error;
        struct conn_lookup *lookup; /* host name lookup in flight */
        bool want_drain;
        size_t read_low_bytes;
        struct bufferevent *bev;
        struct event *hello_timer;
        struct rpc_conn_callbacks cbs;
        void *arg;
        struct conn_settings set;
        uint64_t next_id;
        uint32_t ncalls;
        struct rpc_call *calls[CALL_BUCKETS];
        char peer[RPC_PEER_MAX];
        char peer_role[RPC_ROLE_MAX_BYTES + 1];
        char peer_name[RPC_NAME_MAX_BYTES + 1];
};

struct rpc_server {
        struct event_base *base;
        struct evconnlistener *listener;
        struct event *resume_timer; /* accepting again after EMFILE and the like */
        struct conn_settings set;
        struct rpc_server_callbacks cbs;
        void *arg;
        struct rpc_conn *conns;     /* every accepted connection not yet closed */
        struct rpc_server_stats stats;
        uint16_t port;
        bool destroying;
};

static int copy_text(char *dst, size_t dst_size, const char *src, bool required) {
        if (!src)
                src = "";
        size_t len = strlen(src);
        if ((required && len == 0) || len >= dst_size)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (!is_token_char((unsigned char)src[i]))
                        return -EINVAL;
        memcpy(dst, src, len + 1);
        return 0;
}

static int settings_init(struct conn_settings *set, const struct rpc_options *opts) {
        if (!opts)
                return -EINVAL;
        memset(set, 0, sizeof(*set));
        if (copy_text(set->cluster_id, sizeof(set->cluster_id), opts->cluster_id, true) < 0 ||
            copy_text(set->role, sizeof(set->role), opts->role, false) < 0 ||
            copy_text(set->name, sizeof(set->name), opts->name, false) < 0)
                return -EINVAL;
        set->max_frame_bytes = opts->max_frame_bytes ? opts->max_frame_bytes
                                                     : RPC_DEFAULT_MAX_FRAME_BYTES;
        if (set->max_frame_bytes < RPC_MIN_FRAME_BYTES || set->max_frame_bytes > UINT32_MAX)
                return -EINVAL;
        set->max_output_bytes = opts->max_output_bytes ? opts->max_output_bytes
                                                       : RPC_DEFAULT_MAX_OUTPUT_BYTES;
        if (set->max_output_bytes < set->max_frame_bytes + RPC_FRAME_HEADER_BYTES)
                return -EINVAL;
        set->hello_timeout_ms = opts->hello_timeout_ms ? opts->hello_timeout_ms
                                                       : RPC_DEFAULT_HELLO_TIMEOUT_MS;
        set->max_pending_calls = opts->max_pending_calls ? opts->max_pending_calls
                                                         : RPC_DEFAULT_MAX_PENDING_CALLS;
        set->max_connections = opts->max_connections ? opts->max_connections
                                                     : RPC_DEFAULT_MAX_CONNECTIONS;
        set->version = opts->protocol_version ? opts->protocol_version : RPC_PROTOCOL_VERSION;
        return 0;
}

static void format_sockaddr(const struct sockaddr *sa, char out[RPC_PEER_MAX]) {
        char host[INET6_ADDRSTRLEN];
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
                inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
                snprintf(out, RPC_PEER_MAX, "%s:%u", host, ntohs(sin->sin_port));
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
                inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
                snprintf(out, RPC_PEER_MAX, "[%s]:%u", host, ntohs(sin6->sin6_port));
        } else {
                snprintf(out, RPC_PEER_MAX, "?");
        }
}

static void conn_cancel_lookup(struct rpc_conn *c) {
        struct conn_lookup *l = c->lookup;
        if (!l)
                return;
        c->lookup = NULL;
        l->conn = NULL;
        if (l->req)
                evdns_getaddrinfo_cancel(l->req); /* its callback frees l */
}

static void conn_free(struct rpc_conn *c) {
        if (!c)
                return;
        conn_cancel_lookup(c);
        if (c->hello_timer)
                event_free(c->hello_timer);
        if (c->bev)
                bufferevent_free(c->bev);
        free(c);
}

/* Frees a closed connection once the last of its callbacks has returned; every entry
 * point that runs callbacks brackets them with depth++ / depth-- and then calls this. */
static void conn_release(struct rpc_conn *c) {
        if (c->depth == 0 && c->state == CONN_CLOSED)
                conn_free(c);
}

static void call_free(struct rpc_call *call) {
        if (!call)
                return;
        if (call->timer)
                event_free(call->timer);
        free(call);
}

static struct rpc_call *call_take(struct rpc_conn *c, uint64_t id) {
        struct rpc_call **pp = &c->calls[id % CALL_BUCKETS];
        for (; *pp; pp = &(*pp)->next)
                if ((*pp)->id == id) {
                        struct rpc_call *call = *pp;
                        *pp = call->next;
                        c->ncalls--;
                        evtimer_del(call->timer);
                        return call;
                }
        return NULL;
}

static void conn_fail_calls(struct rpc_conn *c, int error) {
        for (size_t b = 0; b < CALL_BUCKETS; b++) {
                struct rpc_call *call;
                while ((call = c->calls[b])) {
                        c->calls[b] = call->next;
                        c->ncalls--;
                        evtimer_del(call->timer);
                        call->cb(c, error, NULL, call->arg);
                        call_free(call);
                }
        }
}

static void server_unlink(struct rpc_server *srv, struct rpc_conn *c) {
        if (c->srv_prev)
                c->srv_prev->srv_next = c->srv_next;
        else
                srv->conns = c->srv_next;
        if (c->srv_next)
                c->srv_next->srv_prev = c->srv_prev;
        c->srv_prev = c->srv_next = NULL;
        srv->stats.open--;
}

static void server_count_close(struct rpc_server *srv, enum close_cause cause, int reason) {
        struct rpc_server_stats *st = &srv->stats;
        if (cause == CLOSE_LOCAL)
                st->closed_local++;
        else if (cause == CLOSE_PEER)
                st->closed_peer++;
        else if (reason == -EMSGSIZE)
                st->closed_oversized++;
        else if (reason == -EBADMSG)
                st->closed_malformed++;
        else if (reason == -EPROTO)
                st->closed_protocol++;
        else if (reason == -ETIMEDOUT)
                st->closed_timeout++;
        else
                st->closed_error++;
}

/* Closes c: no more I/O, pending calls failed, then the owner told (on_close, or the
 * server's on_reject before the hello). The memory goes when the callbacks are done. */
static void conn_close(struct rpc_conn *c, enum close_cause cause, int reason) {
        if (c->state == CONN_CLOSED)
                return;
        bool was_open = c->state == CONN_OPEN;
        c->state = CONN_CLOSED;
        c->depth++;
        if (c->bev) {
                bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
                bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        }
        if (c->hello_timer)
                evtimer_del(c->hello_timer);
        conn_cancel_lookup(c);
        struct rpc_server *srv = c->server;
        c->server = NULL;
        if (srv) {
                server_unlink(srv, c);
                server_count_close(srv, cause, reason);
        }
        conn_fail_calls(c, cause == CLOSE_LOCAL ? -ECANCELED : -ECONNRESET);
        if (cause != CLOSE_LOCAL) {
                if (c->accepted && !was_open) {
                        /* srv is alive: nothing of ours ran since it was read (no calls
                         * can be pending before the hello). */
                        if (srv && srv->cbs.on_reject)
                                srv->cbs.on_reject(srv, c->peer, reason, srv->arg);
                } else if (c->cbs.on_close) {
                        c->cbs.on_close(c, reason, c->arg);
                }
        }
        c->depth--;
        conn_release(c);
}

/* Closes c because of what the peer sent (or a resource failure), logging why. */
static void conn_fail(struct rpc_conn *c, int reason, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void conn_fail(struct rpc_conn *c, int reason, const char *fmt, ...) {
        char why[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        bool peer_fault = reason == -EMSGSIZE || reason == -EBADMSG || reason == -EPROTO ||
                          reason == -ETIMEDOUT;
        log_at(peer_fault ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, reason, "-rpc-conn-closed",
               "peer=%s state=%s reason=\"%s\"", c->peer, conn_state_names[c->state], why);
        conn_close(c, CLOSE_FAIL, reason);
}

static void conn_set_read_low(struct rpc_conn *c, size_t bytes) {
        if (c->read_low_bytes == bytes)
                return;
        c->read_low_bytes = bytes;
        bufferevent_setwatermark(c->bev, EV_READ, bytes,
                                 c->set.max_frame_bytes + RPC_FRAME_HEADER_BYTES);
}

/* What conn_send puts on the wire besides the body's fields. */
struct out_frame {
        const char *type;
        uint64_t id;
        const struct rpc_msg *body;
        bool reply;
        uint64_t re;
        bool ok;
        const char *error;
};

struct tail_buf {
        size_t len;
        bool overflow;
        char data[RPC_ERROR_MAX_BYTES + 256];
};

static int tail_write(void *data, const char *buf, size_t len) {
        struct tail_buf *t = data;
        if (len > sizeof(t->data) - t->len) {
                t->overflow = true;
                return -1;
        }
        memcpy(t->data + t->len, buf, len);
        t->len += len;
        return 0;
}

/* Assembles one frame straight into the output buffer, all or nothing. */
static int conn_send(struct rpc_conn *c, const struct out_frame *f) {
        const struct rpc_msg *body = f->body;
        uint32_t nfields = body ? body->nfields : 0;
        size_t body_size = body ? body->buf.size : 0;
        if (body) {
                int r = msg_check(body, f->reply);
                if (r < 0)
                        return r;
        }

        struct tail_buf tail;
        tail.len = 0;
        tail.overflow = false;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &tail, tail_write);
        uint32_t ntail = 3;
        msg_pack_kv_u64(&pk, RPC_KEY_VERSION, c->set.version);
        msg_pack_kv_str(&pk, RPC_KEY_TYPE, f->type);
        msg_pack_kv_u64(&pk, RPC_KEY_ID, f->id);
        if (body && body->has_epoch) {
                msg_pack_kv_u64(&pk, RPC_KEY_EPOCH, body->epoch);
                ntail++;
        }
        if (f->reply) {
                msg_pack_kv_u64(&pk, RPC_KEY_RE, f->re);
                msg_pack_kv_bool(&pk, RPC_KEY_OK, f->ok);
                ntail += 2;
                if (!f->ok) {
                        const char *text = f->error ? f->error : "";
                        size_t len = strnlen(text, RPC_ERROR_MAX_BYTES);
                        msg_pack_kv_strn(&pk, RPC_KEY_ERROR, text, len);
                        ntail++;
                }
        }
        if (tail.overflow || nfields > UINT32_MAX - ntail)
                return -EINVAL;

        size_t n = 5 + body_size + tail.len;
        if (n > c->set.max_frame_bytes)
                return -EMSGSIZE;
        size_t total = RPC_FRAME_HEADER_BYTES + n;
        struct evbuffer *out = bufferevent_get_output(c->bev);
        if (evbuffer_get_length(out) + total > c->set.max_output_bytes) {
                c->want_drain = true;
                return -ENOBUFS;
        }
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, (ev_ssize_t)total, &v, 1) != 1 || v.iov_len < total)
                return -ENOMEM;
        uint8_t *p = v.iov_base;
        store_be32(p, (uint32_t)n);
        p[4] = 0xdf;
        store_be32(p + 5, nfields + ntail);
        if (body_size)
                memcpy(p + FRAME_PREFIX_BYTES, body->buf.data, body_size);
        memcpy(p + FRAME_PREFIX_BYTES + body_size, tail.data, tail.len);
        v.iov_len = total;
        if (evbuffer_commit_space(out, &v, 1) < 0)
                return -ENOMEM;
        return 0;
}

static int conn_send_hello(struct rpc_conn *c) {
        struct rpc_msg m;
        rpc_msg_init(&m, 3);
        msg_pack_kv_str(&m.pk, "cluster", c->set.cluster_id);
        msg_pack_kv_str(&m.pk, "role", c->set.role);
        msg_pack_kv_str(&m.pk, "name", c->set.name);
        int r = conn_send(c, &(struct out_frame){.type = RPC_TYPE_HELLO, .body = &m});
        rpc_msg_finish(&m);
        return r;
}

/* A hello str field copied to buf: printable ASCII, shorter than buf_len. */
static int hello_text(const msgpack_object *map, const char *key, char *buf, size_t buf_len) {
        int r = msg_get_strbuf(map, key, buf, buf_len);
        if (r < 0)
                return r;
        for (const char *s = buf; *s; s++)
                if (!is_token_char((unsigned char)*s))
                        return -EINVAL;
        return 0;
}

static void conn_on_hello(struct rpc_conn *c, const struct rpc_frame *f) {
        if (strcmp(f->type, RPC_TYPE_HELLO) != 0) {
                conn_fail(c, -EPROTO, "first frame is '%s', not a hello", f->type);
                return;
        }
        const char *cluster;
        size_t cluster_len;
        if (msg_get_str(f->map, "cluster", &cluster, &cluster_len) < 0) {
                conn_fail(c, -EBADMSG, "hello without a str 'cluster'");
                return;
        }
        if (hello_text(f->map, "role", c->peer_role, sizeof(c->peer_role)) < 0 ||
            hello_text(f->map, "name", c->peer_name, sizeof(c->peer_name)) < 0) {
                c->peer_role[0] = c->peer_name[0] = '\0';
                conn_fail(c, -EBADMSG, "hello without a printable 'role' and 'name' "
                          "(up to %u and %u bytes)", RPC_ROLE_MAX_BYTES, RPC_NAME_MAX_BYTES);
                return;
        }
        if (cluster_len != strlen(c->set.cluster_id) ||
            memcmp(cluster, c->set.cluster_id, cluster_len) != 0) {
                char shown[RPC_CLUSTER_MAX_BYTES + 1];
                printable(shown, sizeof(shown), cluster, cluster_len);
                conn_fail(c, -EPROTO, "cluster id mismatch: peer '%s', local '%s'", shown,
                          c->set.cluster_id);
                return;
        }
        c->state = CONN_OPEN;
        evtimer_del(c->hello_timer);
        if (c->server)
                c->server->stats.frames++;
        log_debug("rpc: hello from %s role=%s name=%s", c->peer, c->peer_role, c->peer_name);
        if (c->accepted) {
                struct rpc_server *srv = c->server;
                srv->stats.hellos++;
                if (srv->cbs.on_accept)
                        srv->cbs.on_accept(srv, c, srv->arg);
        } else if (c->cbs.on_connected) {
                c->cbs.on_connected(c, c->arg);
        }
}

static void conn_on_response(struct rpc_conn *c, const struct rpc_frame *f) {
        uint64_t re;
        bool ok;
        if (msg_get_u64(f->map, RPC_KEY_RE, &re) < 0 || re == 0) {
                conn_fail(c, -EBADMSG, "response without a request id 're'");
                return;
        }
        if (msg_get_bool(f->map, RPC_KEY_OK, &ok) < 0) {
                conn_fail(c, -EBADMSG, "response without a bool 'ok'");
                return;
        }
        if (c->server)
                c->server->stats.frames++;
        struct rpc_call *call = call_take(c, re);
        if (!call) {
                log_debug("rpc: %s: dropping a response to unknown request %" PRIu64, c->peer, re);
                return;
        }
        call->cb(c, ok ? 0 : -EREMOTEIO, f->map, call->arg);
        call_free(call);
}

static void conn_dispatch(struct rpc_conn *c, const struct rpc_frame *f) {
        if (f->version != c->set.version) {
                conn_fail(c, -EPROTO, "protocol version mismatch: peer v=%" PRIu32
                          ", local v=%" PRIu32, f->version, c->set.version);
                return;
        }
        if (c->state == CONN_HELLO) {
                conn_on_hello(c, f);
                return;
        }
        if (strcmp(f->type, RPC_TYPE_HELLO) == 0) {
                conn_fail(c, -EPROTO, "second hello");
                return;
        }
        if (strcmp(f->type, RPC_TYPE_RESPONSE) == 0) {
                conn_on_response(c, f);
                return;
        }
        if (c->server)
                c->server->stats.frames++;
        if (c->cbs.on_message)
                c->cbs.on_message(c, f->type, f->id, f->map, c->arg);
        else
                log_debug("rpc: %s: no handler for '%s'", c->peer, f->type);
}

/* Decodes and dispatches every whole frame in the input buffer. The read high watermark
 * (max frame + 4) stops libevent from buffering more than one frame's worth; the low
 * watermark is raised to the size of a partial frame so that a large frame is looked
 * at once, when complete. */
static void conn_process_input(struct rpc_conn *c) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        while (c->state != CONN_CLOSED) {
                size_t avail = evbuffer_get_length(in);
                uint8_t hdr[RPC_FRAME_HEADER_BYTES];
                size_t need;
                if (avail < sizeof(hdr)) {
                        conn_set_read_low(c, sizeof(hdr));
                        return;
                }
                evbuffer_copyout(in, hdr, sizeof(hdr));
                int r = rpc_frame_peek(hdr, sizeof(hdr), c->set.max_frame_bytes, &need);
                if (r == -EMSGSIZE) {
                        conn_fail(c, r, "frame length %" PRIu32 " over the limit of %zu bytes",
                                  load_be32(hdr), c->set.max_frame_bytes);
                        return;
                }
                if (r < 0) {
                        conn_fail(c, r, "frame length 0");
                        return;
                }
                if (avail < need) {
                        conn_set_read_low(c, need);
                        return;
                }
                const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)need);
                if (!p) {
                        conn_fail(c, -ENOMEM, "no memory for a frame of %zu bytes", need);
                        return;
                }
                msgpack_unpacked unpacked;
                msgpack_unpacked_init(&unpacked);
                struct rpc_frame f;
                char why[256];
                r = rpc_frame_decode(p, need, c->set.max_frame_bytes, &unpacked, &f, why,
                                     sizeof(why));
                if (r < 0)
                        conn_fail(c, r, "%s", why);
                else
                        conn_dispatch(c, &f);
                msgpack_unpacked_destroy(&unpacked);
                if (c->state != CONN_CLOSED)
                        evbuffer_drain(in, need);
        }
}

static void conn_on_read(struct bufferevent *bev, void *arg) {
        struct rpc_conn *c = arg;
        c->depth++;
        conn_process_input(c);
        c->depth--;
        conn_release(c);
}

static void conn_on_write(struct bufferevent *bev, void *arg) {
        struct rpc_conn *c = arg;
        if (!c->want_drain || c->state != CONN_OPEN ||
            evbuffer_get_length(bufferevent_get_output(bev)) > c->set.max_output_bytes / 2)
                return;
        c->want_drain = false;
        if (!c->cbs.on_drain)
                return;
        c->depth++;
        c->cbs.on_drain(c, c->arg);
        c->depth--;
        conn_release(c);
}

static void conn_on_tcp_connected(struct rpc_conn *c) {
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
                format_sockaddr((struct sockaddr *)&ss, c->peer);
        c->state = CONN_HELLO;
}

static bool connect_error_plausible(int e) {
        switch (e) {
        case ECONNREFUSED: case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
        case EADDRNOTAVAIL: case ECONNRESET: case EACCES: case EPERM: case ENETDOWN:
        case EHOSTDOWN:
                return true;
        default:
                return false;
        }
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg) {
        struct rpc_conn *c = arg;
        int e = EVUTIL_SOCKET_ERROR();
        if (what & BEV_EVENT_CONNECTED) {
                conn_on_tcp_connected(c);
                return;
        }
        int reason;
        if (what & BEV_EVENT_EOF) {
                reason = 0;
        } else if (c->state == CONN_CONNECTING) {
                /* libevent reports a connect refused at once later, with errno stale. */
                reason = connect_error_plausible(e) ? -e : -ECONNREFUSED;
        } else if (e > 0 && e != EAGAIN && e != EINPROGRESS && e != EINTR) {
                reason = -e;
        } else {
                reason = -ECONNRESET;
        }
        if (c->in_connect) {
                /* Failed inside rpc_connect: it returns the error; no callback. */
                c->connect_error = reason ? reason : -ECONNRESET;
                bufferevent_disable(bev, EV_READ | EV_WRITE);
                return;
        }
        size_t partial = evbuffer_get_length(bufferevent_get_input(bev));
        log_debug("rpc: %s closed by the peer in state %s (%s)%s", c->peer,
                  conn_state_names[c->state], reason ? err_str(reason) : "EOF",
                  partial ? ", in the middle of a frame" : "");
        c->depth++;
        conn_close(c, CLOSE_PEER, reason);
        c->depth--;
        conn_release(c);
}

static void conn_on_hello_timeout(evutil_socket_t fd, short what, void *arg) {
        struct rpc_conn *c = arg;
        c->depth++;
        conn_fail(c, -ETIMEDOUT, "no hello within %" PRIu32 " ms", c->set.hello_timeout_ms);
        c->depth--;
        conn_release(c);
}

static void call_on_timeout(evutil_socket_t fd, short what, void *arg) {
        struct rpc_call *call = arg;
        struct rpc_conn *c = call->conn;
        struct rpc_call *taken = call_take(c, call->id);
        if (taken != call)
                return;
        c->depth++;
        call->cb(c, -ETIMEDOUT, NULL, call->arg);
        call_free(call);
        c->depth--;
        conn_release(c);
}

static void ms_to_timeval(uint32_t ms, struct timeval *tv) {
        tv->tv_sec = ms / 1000;
        tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

/* A connection around bev (fd -1 for rpc_connect); the bufferevent is created here and
 * owns fd from then on. On failure fd is the caller's. */
static int conn_create(struct event_base *base, const struct conn_settings *set,
                       evutil_socket_t fd, struct rpc_conn **ret_conn) {
        struct rpc_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base = base;
        c->set = *set;
        c->next_id = 1;
        c->hello_timer = evtimer_new(base, conn_on_hello_timeout, c);
        if (!c->hello_timer)
                goto fail;
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev)
                goto fail;
        bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
        bufferevent_setwatermark(c->bev, EV_WRITE, set->max_output_bytes / 2, 0);
        conn_set_read_low(c, RPC_FRAME_HEADER_BYTES);
        if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
                goto fail_owned;
        struct timeval tv;
        ms_to_timeval(set->hello_timeout_ms, &tv);
        if (evtimer_add(c->hello_timer, &tv) < 0 || conn_send_hello(c) < 0)
                goto fail_owned;
        *ret_conn = c;
        return 0;

fail_owned:
        /* The bufferevent would close fd: give it back to the caller first. */
        bufferevent_setfd(c->bev, -1);
fail:
        conn_free(c);
        return -ENOMEM;
}

/* Starts the TCP connect to sa. A refused or failed connect is reported later through
 * conn_on_event (libevent defers it), not from inside this call. */
static int conn_start_connect(struct rpc_conn *c, const struct sockaddr *sa, socklen_t len) {
        /* Our own socket, to have it close-on-exec (libevent's is not). */
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bufferevent_setfd(c->bev, fd) < 0) {
                close(fd);
                return -ENOMEM;
        }
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, (int)len) < 0)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static void conn_on_resolved(int result, struct evutil_addrinfo *res, void *arg) {
        struct conn_lookup *l = arg;
        struct rpc_conn *c = l->conn;
        free(l);
        if (!c) {
                if (res)
                        evutil_freeaddrinfo(res);
                return;
        }
        c->lookup = NULL;
        int r = -EHOSTUNREACH;
        if (result == 0 && res)
                r = conn_start_connect(c, res->ai_addr, (socklen_t)res->ai_addrlen);
        if (res)
                evutil_freeaddrinfo(res);
        if (r == 0)
                return;
        if (c->in_connect) {
                c->connect_error = r;
                return;
        }
        c->depth++;
        conn_fail(c, r, "cannot connect: %s",
                  result ? evutil_gai_strerror(result) : err_str(r));
        c->depth--;
        conn_release(c);
}

/* Resolves host with evdns and connects to its first IPv4 address: libevent's
 * bufferevent_socket_connect_hostname is not used because freeing the bufferevent does
 * not cancel its lookup (libevent 2.1), which keeps it alive and connecting. IPv4 only:
 * servers bind 0.0.0.0 by default; IPv6 peers are given as numeric addresses. */
static int conn_start_lookup(struct rpc_conn *c, struct evdns_base *dns, const char *host,
                             uint16_t port) {
        struct conn_lookup *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->conn = c;
        c->lookup = l;
        char service[8];
        snprintf(service, sizeof(service), "%u", port);
        struct evutil_addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_protocol = IPPROTO_TCP;
        struct evdns_getaddrinfo_request *req =
                evdns_getaddrinfo(dns, host, service, &hints, conn_on_resolved, l);
        /* The callback may have run already (an answer from /etc/hosts, or an error),
         * and then l is gone. */
        if (c->lookup)
                c->lookup->req = req;
        return 0;
}

int rpc_connect(struct event_base *base, const char *host, uint16_t port,
                const struct rpc_options *opts, const struct rpc_conn_callbacks *cbs,
                void *arg, struct rpc_conn **ret_conn) {
        struct conn_settings set;
        struct sockaddr_storage ss;
        socklen_t sslen = 0;
        struct rpc_conn *c = NULL;
        int r;

        if (!base || !host || !ret_conn)
                return -EINVAL;
        r = settings_init(&set, opts);
        if (r < 0)
                return r;
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                sslen = sizeof(*sin);
        } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(port);
                sslen = sizeof(*sin6);
        } else if (!opts->dns) {
                return -EINVAL;
        }

        r = conn_create(base, &set, -1, &c);
        if (r < 0)
                return r;
        if (cbs)
                c->cbs = *cbs;
        c->arg = arg;
        c->state = CONN_CONNECTING;
        if (strchr(host, ':'))
                snprintf(c->peer, sizeof(c->peer), "[%.*s]:%u", (int)(RPC_PEER_MAX - 10),
                         host, port);
        else
                snprintf(c->peer, sizeof(c->peer), "%.*s:%u", (int)(RPC_PEER_MAX - 10),
                         host, port);
        c->in_connect = true;
        if (sslen)
                r = conn_start_connect(c, (struct sockaddr *)&ss, sslen);
        else
                r = conn_start_lookup(c, opts->dns, host, port);
        c->in_connect = false;
        if (r == 0 && c->connect_error)
                r = c->connect_error;
        if (r < 0)
                goto fail;
        *ret_conn = c;
        return 0;

fail:
        conn_free(c);
        return r;
}

void rpc_conn_set_callbacks(struct rpc_conn *conn, const struct rpc_conn_callbacks *cbs,
                            void *arg) {
        if (!conn)
                return;
        if (cbs)
                conn->cbs = *cbs;
        else
                memset(&conn->cbs, 0, sizeof(conn->cbs));
        conn->arg = arg;
}

void rpc_conn_close(struct rpc_conn *conn) {
        if (!conn || conn->state == CONN_CLOSED)
                return;
        log_debug("rpc: closing connection %s (state %s)", conn->peer,
                  conn_state_names[conn->state]);
        conn_close(conn, CLOSE_LOCAL, 0);
}

static bool user_type_valid(const char *type) {
        return type && type_valid(type, strlen(type)) && strcmp(type, RPC_TYPE_HELLO) != 0 &&
               strcmp(type, RPC_TYPE_RESPONSE) != 0;
}

int rpc_send(struct rpc_conn *conn, const char *type, const struct rpc_msg *body) {
        if (!conn || conn->state != CONN_OPEN)
                return -ENOTCONN;
        if (!user_type_valid(type))
                return -EINVAL;
        return conn_send(conn, &(struct out_frame){.type = type, .body = body});
}

int rpc_call(struct rpc_conn *conn, const char *type, const struct rpc_msg *body,
             uint32_t timeout_ms, rpc_call_cb cb, void *arg) {
        if (!cb || timeout_ms == 0)
                return -EINVAL;
        if (!conn || conn->state != CONN_OPEN)
                return -ENOTCONN;
        if (!user_type_valid(type))
                return -EINVAL;
        if (conn->ncalls >= conn->set.max_pending_calls)
                return -EAGAIN;

        struct rpc_call *call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->conn = conn;
        call->cb = cb;
        call->arg = arg;
        call->id = conn->next_id++;
        call->timer = evtimer_new(conn->base, call_on_timeout, call);
        if (!call->timer) {
                call_free(call);
                return -ENOMEM;
        }
        int r = conn_send(conn, &(struct out_frame){.type = type, .id = call->id, .body = body});
        if (r < 0) {
                call_free(call);
                return r;
        }
        struct timeval tv;
        ms_to_timeval(timeout_ms, &tv);
        /* evtimer_add fails only for a bad timeval or a broken base; the frame is out,
         * so the call stays and waits for its response or the close. */
        evtimer_add(call->timer, &tv);
        struct rpc_call **bucket = &conn->calls[call->id % CALL_BUCKETS];
        call->next = *bucket;
        *bucket = call;
        conn->ncalls++;
        return 0;
}

int rpc_reply(struct rpc_conn *conn, uint64_t request_id, const struct rpc_msg *body) {
        if (!conn || conn->state != CONN_OPEN)
                return -ENOTCONN;
        if (request_id == 0)
                return -EINVAL;
        return conn_send(conn, &(struct out_frame){.type = RPC_TYPE_RESPONSE, .body = body,
                                                   .reply = true, .re = request_id,
                                                   .ok = true});
}

int rpc_reply_error(struct rpc_conn *conn, uint64_t request_id, const char *error_text) {
        if (!conn || conn->state != CONN_OPEN)
                return -ENOTCONN;
        if (request_id == 0)
                return -EINVAL;
        return conn_send(conn, &(struct out_frame){.type = RPC_TYPE_RESPONSE, .reply = true,
                                                   .re = request_id, .ok = false,
                                                   .error = error_text});
}

const char *rpc_conn_peer(const struct rpc_conn *conn) {
        return conn->peer;
}

const char *rpc_conn_peer_role(const struct rpc_conn *conn) {
        return conn->peer_role;
}

const char *rpc_conn_peer_name(const struct rpc_conn *conn) {
        return conn->peer_name;
}

bool rpc_conn_is_open(const struct rpc_conn *conn) {
        return conn && conn->state == CONN_OPEN;
}

size_t rpc_conn_output_bytes(const struct rpc_conn *conn) {
        if (!conn || !conn->bev)
                return 0;
        return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

uint32_t rpc_conn_pending_calls(const struct rpc_conn *conn) {
        return conn ? conn->ncalls : 0;
}

/* ---- servers ---- */

static void server_on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                             struct sockaddr *sa, int socklen, void *arg) {
        struct rpc_server *srv = arg;
        char peer[RPC_PEER_MAX];
        format_sockaddr(sa, peer);
        srv->stats.accepted++;
        if (srv->stats.open >= srv->set.max_connections) {
                srv->stats.refused++;
                log_debug("rpc: refusing %s: %" PRIu32 " connections open", peer,
                          srv->set.max_connections);
                evutil_closesocket(fd);
                return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct rpc_conn *c;
        int r = conn_create(srv->base, &srv->set, fd, &c);
        if (r < 0) {
                srv->stats.refused++;
                log_debug("rpc: refusing %s: %s", peer, err_str(r));
                evutil_closesocket(fd);
                return;
        }
        c->accepted = true;
        c->state = CONN_HELLO;
        memcpy(c->peer, peer, sizeof(peer));
        c->server = srv;
        c->srv_next = srv->conns;
        if (srv->conns)
                srv->conns->srv_prev = c;
        srv->conns = c;
        srv->stats.open++;
}

static void server_on_resume(evutil_socket_t fd, short what, void *arg) {
        struct rpc_server *srv = arg;
        evconnlistener_enable(srv->listener);
}

/* accept(2) failed. Out of descriptors or memory the listening socket stays readable,
 * so pause accepting for a moment instead of spinning. */
static void server_on_accept_error(struct evconnlistener *listener, void *arg) {
        struct rpc_server *srv = arg;
        int e = EVUTIL_SOCKET_ERROR();
        srv->stats.accept_errors++;
        log_debug("rpc: accept on port %u failed: %s", srv->port, err_str(-e));
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
                evconnlistener_disable(listener);
                evtimer_add(srv->resume_timer, &tv);
        }
}

int rpc_server_create(struct event_base *base, const char *bind_host, uint16_t port,
                      const struct rpc_options *opts, const struct rpc_server_callbacks *cbs,
                      void *arg, struct rpc_server **ret_srv) {
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct rpc_server *srv = NULL;
        int r;

        if (!base || !cbs || !cbs->on_accept || !ret_srv)
                return -EINVAL;
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (!bind_host)
                bind_host = "0.0.0.0";
        if (inet_pton(AF_INET, bind_host, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                sslen = sizeof(*sin);
        } else if (inet_pton(AF_INET6, bind_host, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(port);
                sslen = sizeof(*sin6);
        } else {
                return -EINVAL;
        }

        srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        r = settings_init(&srv->set, opts);
        if (r < 0)
                goto fail;
        srv->base = base;
        srv->cbs = *cbs;
        srv->arg = arg;
        srv->resume_timer = evtimer_new(base, server_on_resume, srv);
        if (!srv->resume_timer) {
                r = -ENOMEM;
                goto fail;
        }
        srv->listener = evconnlistener_new_bind(base, server_on_accept, srv,
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                                LEV_OPT_CLOSE_ON_EXEC,
                                                -1, (struct sockaddr *)&ss, (int)sslen);
        if (!srv->listener) {
                int e = EVUTIL_SOCKET_ERROR();
                r = e > 0 ? -e : -EIO;
                goto fail;
        }
        evconnlistener_set_error_cb(srv->listener, server_on_accept_error);
        sslen = sizeof(ss);
        if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss,
                        &sslen) < 0) {
                r = -errno;
                goto fail;
        }
        srv->port = ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port : sin->sin_port);
        *ret_srv = srv;
        return 0;

fail:
        rpc_server_destroy(srv);
        return r;
}

uint16_t rpc_server_port(const struct rpc_server *srv) {
        return srv->port;
}

void rpc_server_get_stats(const struct rpc_server *srv, struct rpc_server_stats *ret_stats) {
        *ret_stats = srv->stats;
}

void rpc_server_destroy(struct rpc_server *srv) {
        if (!srv || srv->destroying)
                return;
        srv->destroying = true;
        if (srv->listener)
                evconnlistener_free(srv->listener);
        if (srv->resume_timer)
                event_free(srv->resume_timer);
        struct rpc_conn *c;
        while ((c = srv->conns))
                conn_close(c, CLOSE_LOCAL, 0);
        free(srv);
}
