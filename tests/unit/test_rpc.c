/* Unit tests of common/rpc: the frame decoder on its own, then a server and clients on
 * one event loop over loopback: messages, calls, timeouts, closes, hello mismatches,
 * malformed and oversized frames from raw sockets, the output limit and deferred
 * closes inside callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/rpc.h"
#include "unit.h"

#define CLUSTER "unit-cluster"

/* ---- helpers ---- */

static uint64_t deadline_ms(double seconds) {
        return clock_mono_ms() + (uint64_t)(seconds * 1000.0 * unit_timeout_scale());
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
}

/* Runs the loop until cond(arg) holds or the (scaled) deadline passes. */
static bool run_until(struct event_base *base, bool (*cond)(void *), void *arg,
                      double seconds) {
        uint64_t until = deadline_ms(seconds);
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 5000};
        event_add(tick, &tv);
        bool ok;
        while (!(ok = cond(arg)) && clock_mono_ms() < until)
                event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
        return ok;
}

static bool flag_set(void *arg) {
        return *(bool *)arg;
}

static bool int_nonzero(void *arg) {
        return *(int *)arg != 0;
}

static struct rpc_options options(void) {
        return (struct rpc_options){.cluster_id = CLUSTER, .role = "test", .name = "unit"};
}

/* A raw TCP client for sending what rpc_send never would. */
struct raw {
        int fd;
        size_t in_bytes;
        bool eof;
        uint8_t head[4096]; /* the first bytes received */
};

static void raw_connect(struct raw *r, uint16_t port) {
        memset(r, 0, sizeof(*r));
        r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(r->fd, (struct sockaddr *)&sin, sizeof(sin));
        CHECK(rc == 0, "raw connect to port %u: %s", port, strerror(errno));
}

static void raw_send(struct raw *r, const void *buf, size_t len) {
        ssize_t n = send(r->fd, buf, len, MSG_NOSIGNAL);
        CHECK(n == (ssize_t)len, "raw send of %zu bytes: %zd (%s)", len, n, strerror(errno));
}

/* Reads what is there without blocking. */
static void raw_pump(struct raw *r) {
        uint8_t buf[65536];
        for (;;) {
                ssize_t n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                        r->eof = true;
                        return;
                }
                if (n < 0)
                        return;
                if (r->in_bytes < sizeof(r->head)) {
                        size_t k = sizeof(r->head) - r->in_bytes;
                        memcpy(r->head + r->in_bytes, buf, (size_t)n < k ? (size_t)n : k);
                }
                r->in_bytes += (size_t)n;
        }
}

static bool raw_eof(void *arg) {
        struct raw *r = arg;
        raw_pump(r);
        return r->eof;
}

static void be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static void raw_send_body(struct raw *r, const void *body, size_t len) {
        uint8_t hdr[4];
        be32(hdr, (uint32_t)len);
        raw_send(r, hdr, sizeof(hdr));
        if (len)
                raw_send(r, body, len);
}

/* Packs {v, t, id} (each only when given: version 0, type NULL, id UINT64_MAX mean
 * leave out) plus cluster/role/name when cluster is not NULL. */
static void pack_map(msgpack_sbuffer *sb, uint32_t version, const char *type, uint64_t id,
                     const char *cluster) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        size_t n = (version != 0) + (type != NULL) + (id != UINT64_MAX) + (cluster ? 3 : 0);
        msgpack_pack_map(&pk, n);
        if (version)
                msg_pack_kv_u64(&pk, "v", version);
        if (type)
                msg_pack_kv_str(&pk, "t", type);
        if (id != UINT64_MAX)
                msg_pack_kv_u64(&pk, "id", id);
        if (cluster) {
                msg_pack_kv_str(&pk, "cluster", cluster);
                msg_pack_kv_str(&pk, "role", "raw");
                msg_pack_kv_str(&pk, "name", "raw-client");
        }
}

static void raw_send_map(struct raw *r, uint32_t version, const char *type, uint64_t id,
                         const char *cluster) {
        msgpack_sbuffer sb;
        pack_map(&sb, version, type, id, cluster);
        raw_send_body(r, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
}

static void raw_hello(struct raw *r) {
        raw_send_map(r, RPC_PROTOCOL_VERSION, "hello", 0, CLUSTER);
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "r");
        if (!f)
                return strdup("");
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return strdup(buf);
}

/* Sends warnings to a fresh temp file; log_capture_end returns its text (free it). */
static char log_path[64];

static void log_capture_begin(void) {
        snprintf(log_path, sizeof(log_path), "/tmp/flinc-test-rpc-XXXXXX");
        int fd = mkstemp(log_path);
        if (fd >= 0)
                close(fd);
        log_init("test_rpc", LOG_LEVEL_WARN, log_path);
}

static char *log_capture_end(void) {
        log_finish();
        log_set_level(LOG_LEVEL_ERROR);
        char *text = read_file(log_path);
        unlink(log_path);
        if (getenv("TEST_RPC_SHOW_LOG"))
                fputs(text, stderr);
        return text;
}

/* ---- a server with scripted behaviour ---- */

struct srv_ctx {
        struct event_base *base;
        struct rpc_server *srv;
        struct rpc_conn *conn;     /* last accepted, until it closes */
        int accepted;
        int rejected, reject_reason;
        int closed, close_reason;
        int messages;
        char last_type[64];
        uint64_t last_id;
        int64_t last_n;
        bool had_epoch;
        uint64_t last_epoch;
        uint64_t held_id;          /* a "hold" request left unanswered */
        int send_after_close;      /* rpc_send right after rpc_conn_close in a callback */
};

static void srv_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                           const msgpack_object *map, void *arg) {
        struct srv_ctx *s = arg;
        s->messages++;
        snprintf(s->last_type, sizeof(s->last_type), "%s", type);
        s->last_id = id;
        s->last_n = -1;
        msg_get_i64(map, "n", &s->last_n);
        s->had_epoch = rpc_msg_epoch(map, &s->last_epoch) == 0;

        if (strcmp(type, "echo") == 0) {
                struct rpc_msg m;
                rpc_msg_init(&m, 1);
                msg_pack_kv_i64(&m.pk, "n", s->last_n + 1);
                int r = rpc_reply(conn, id, &m);
                CHECK(r == 0, "rpc_reply: %d", r);
                rpc_msg_finish(&m);
        } else if (strcmp(type, "fail") == 0) {
                rpc_reply_error(conn, id, "nope");
        } else if (strcmp(type, "hold") == 0) {
                s->held_id = id;
        } else if (strcmp(type, "die") == 0) {
                rpc_conn_close(conn);
                s->send_after_close = rpc_send(conn, "ping", NULL);
                rpc_conn_close(conn); /* twice: a no-op */
                s->conn = NULL;
        } else if (strcmp(type, "destroy") == 0) {
                rpc_server_destroy(s->srv);
                s->srv = NULL;
                s->conn = NULL;
        }
}

static void srv_on_close(struct rpc_conn *conn, int reason, void *arg) {
        struct srv_ctx *s = arg;
        s->closed++;
        s->close_reason = reason;
        if (s->conn == conn)
                s->conn = NULL;
        rpc_conn_close(conn); /* inside on_close: a no-op */
}

static void srv_on_accept(struct rpc_server *srv, struct rpc_conn *conn, void *arg) {
        struct srv_ctx *s = arg;
        static const struct rpc_conn_callbacks cbs = {
                .on_message = srv_on_message,
                .on_close = srv_on_close,
        };
        s->accepted++;
        s->conn = conn;
        rpc_conn_set_callbacks(conn, &cbs, s);
}

static void srv_on_reject(struct rpc_server *srv, const char *peer, int reason, void *arg) {
        struct srv_ctx *s = arg;
        s->rejected++;
        s->reject_reason = reason;
}

static void srv_start(struct srv_ctx *s, const struct rpc_options *opts) {
        memset(s, 0, sizeof(*s));
        s->base = event_base_new();
        struct rpc_options o = opts ? *opts : options();
        static const struct rpc_server_callbacks cbs = {
                .on_accept = srv_on_accept,
                .on_reject = srv_on_reject,
        };
        int r = rpc_server_create(s->base, "127.0.0.1", 0, &o, &cbs, s, &s->srv);
        CHECK(r == 0, "rpc_server_create: %d", r);
        CHECK(rpc_server_port(s->srv) != 0, "server port is 0");
}

static void srv_stop(struct srv_ctx *s) {
        rpc_server_destroy(s->srv);
        s->srv = NULL;
        event_base_free(s->base);
}

static struct rpc_server_stats srv_stats(struct srv_ctx *s) {
        struct rpc_server_stats st;
        rpc_server_get_stats(s->srv, &st);
        return st;
}

struct count_wait {
        struct srv_ctx *s;
        int messages;
};

static bool messages_reach(void *arg) {
        struct count_wait *w = arg;
        return w->s->messages >= w->messages;
}

/* ---- a client ---- */

struct cli_ctx {
        bool connected;
        int closed, close_reason;
        int drained;
        int messages;
        bool close_in_connected;
};

static void cli_on_connected(struct rpc_conn *conn, void *arg) {
        struct cli_ctx *c = arg;
        c->connected = true;
        if (c->close_in_connected)
                rpc_conn_close(conn);
}

static void cli_on_close(struct rpc_conn *conn, int reason, void *arg) {
        struct cli_ctx *c = arg;
        c->closed++;
        c->close_reason = reason;
}

static void cli_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                           const msgpack_object *map, void *arg) {
        struct cli_ctx *c = arg;
        c->messages++;
}

static void cli_on_drain(struct rpc_conn *conn, void *arg) {
        struct cli_ctx *c = arg;
        c->drained++;
}

static const struct rpc_conn_callbacks cli_cbs = {
        .on_connected = cli_on_connected,
        .on_message = cli_on_message,
        .on_close = cli_on_close,
        .on_drain = cli_on_drain,
};

static struct rpc_conn *cli_connect(struct srv_ctx *s, struct cli_ctx *c,
                                    const struct rpc_options *opts) {
        memset(c, 0, sizeof(*c));
        struct rpc_options o = opts ? *opts : options();
        struct rpc_conn *conn = NULL;
        int r = rpc_connect(s->base, "127.0.0.1", rpc_server_port(s->srv), &o, &cli_cbs, c,
                            &conn);
        CHECK(r == 0, "rpc_connect: %d", r);
        return conn;
}

/* One call's outcome. */
struct call_slot {
        bool done;
        int error;
        int64_t n;
        char text[64];
        bool close_conn; /* rpc_conn_close from inside the callback */
};

static void on_call_done(struct rpc_conn *conn, int error, const msgpack_object *response,
                         void *arg) {
        struct call_slot *slot = arg;
        CHECK(!slot->done, "call callback ran twice");
        slot->done = true;
        slot->error = error;
        slot->n = -1;
        if (response) {
                msg_get_i64(response, "n", &slot->n);
                const char *text;
                size_t len;
                if (rpc_response_error(response, &text, &len) == 0)
                        snprintf(slot->text, sizeof(slot->text), "%.*s", (int)len, text);
        }
        if (slot->close_conn)
                rpc_conn_close(conn);
}

static bool slot_done(void *arg) {
        return ((struct call_slot *)arg)->done;
}

static int call_n(struct rpc_conn *conn, const char *type, int64_t n, uint32_t timeout_ms,
                  struct call_slot *slot) {
        struct rpc_msg m;
        rpc_msg_init(&m, 1);
        msg_pack_kv_i64(&m.pk, "n", n);
        int r = rpc_call(conn, type, &m, timeout_ms, on_call_done, slot);
        rpc_msg_finish(&m);
        return r;
}

/* ---- tests: the decoder ---- */

static size_t frame_of(uint8_t *out, const msgpack_sbuffer *sb) {
        be32(out, (uint32_t)sb->size);
        memcpy(out + 4, sb->data, sb->size);
        return 4 + sb->size;
}

static int decode(const void *buf, size_t len, size_t cap, struct rpc_frame *f, char *why) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        int r = rpc_frame_decode(buf, len, cap, &u, f, why, 128);
        msgpack_unpacked_destroy(&u);
        return r;
}

static void test_decode_frames(void) {
        uint8_t buf[8192];
        char why[128] = "";
        struct rpc_frame f;
        msgpack_sbuffer sb;

        /* Two frames back to back, fed byte by byte: -EAGAIN until each is whole. */
        pack_map(&sb, 1, "ping", 7, NULL);
        size_t one = frame_of(buf, &sb);
        msgpack_sbuffer_destroy(&sb);
        pack_map(&sb, 1, "pong", 0, NULL);
        size_t two = frame_of(buf + one, &sb);
        msgpack_sbuffer_destroy(&sb);
        for (size_t len = 0; len < one; len++)
                CHECK_INT(decode(buf, len, 4096, &f, why), -EAGAIN);
        CHECK_INT(decode(buf, one + two, 4096, &f, why), 0);
        CHECK_STR(f.type, "ping");
        CHECK_INT(f.id, 7);
        CHECK_INT(f.version, 1);
        CHECK_INT(f.frame_bytes, one);
        CHECK_INT(decode(buf + one, two, 4096, &f, why), 0);
        CHECK_STR(f.type, "pong");

        /* Length checks come from the four header bytes alone. */
        size_t need = 0;
        be32(buf, 0);
        CHECK_INT(decode(buf, 4, 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "length 0");
        be32(buf, 4097);
        CHECK_INT(rpc_frame_peek(buf, 4, 4096, &need), -EMSGSIZE);
        CHECK_INT(decode(buf, 4, 4096, &f, why), -EMSGSIZE);
        CHECK_CONTAINS(why, "4097");
        be32(buf, 4096);
        CHECK_INT(rpc_frame_peek(buf, 4, 4096, &need), 0);
        CHECK_INT(need, 4100);

        /* Not a map; a map with trailing bytes; missing or bad v/t/id. */
        static const uint8_t array[] = {0x92, 0x01, 0x02};
        be32(buf, sizeof(array));
        memcpy(buf + 4, array, sizeof(array));
        CHECK_INT(decode(buf, 4 + sizeof(array), 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "not a msgpack map");
        static const uint8_t trailing[] = {0x80, 0xc0};
        be32(buf, sizeof(trailing));
        memcpy(buf + 4, trailing, sizeof(trailing));
        CHECK_INT(decode(buf, 6, 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "after the map");
        pack_map(&sb, 1, NULL, 0, NULL);
        CHECK_INT(decode(buf, frame_of(buf, &sb), 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "no 't'");
        msgpack_sbuffer_destroy(&sb);
        pack_map(&sb, 0, "x", 0, NULL);
        CHECK_INT(decode(buf, frame_of(buf, &sb), 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "no 'v'");
        msgpack_sbuffer_destroy(&sb);
        pack_map(&sb, 1, "x", UINT64_MAX, NULL);
        CHECK_INT(decode(buf, frame_of(buf, &sb), 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "no 'id'");
        msgpack_sbuffer_destroy(&sb);
        pack_map(&sb, 1, "has space", 0, NULL);
        CHECK_INT(decode(buf, frame_of(buf, &sb), 4096, &f, why), -EBADMSG);
        msgpack_sbuffer_destroy(&sb);

        /* A few bytes claiming 2^32-1 array elements must not reach msgpack-c, which
         * would allocate 24 bytes per claimed element. */
        static const uint8_t huge[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
        be32(buf, sizeof(huge));
        memcpy(buf + 4, huge, sizeof(huge));
        CHECK_INT(decode(buf, 4 + sizeof(huge), 4096, &f, why), -EBADMSG);
        CHECK_CONTAINS(why, "larger than the frame");

        /* Nesting: the frame map plus 31 arrays is the deepest msgpack-c takes. */
        for (unsigned depth = 30; depth <= 33; depth++) {
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 4);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "deep");
                msg_pack_kv_u64(&pk, "id", 0);
                msg_pack_cstr(&pk, "x");
                for (unsigned i = 0; i < depth; i++)
                        msgpack_pack_array(&pk, 1);
                msgpack_pack_array(&pk, 0);
                size_t len = frame_of(buf, &sb);
                msgpack_sbuffer_destroy(&sb);
                /* open containers when the innermost (empty) header comes: 1 + depth */
                int expect = 1 + depth < RPC_MAX_DEPTH ? 0 : -EBADMSG;
                int r = decode(buf, len, 4096, &f, why);
                CHECK(r == expect, "depth %u: expected %d, seen %d (%s)", depth, expect, r, why);
        }
}

/* RPC_MAX_OBJECTS: the frame map, its 4 keys and 3 header values, the array, and N
 * nils make N + 9 objects. */
static void test_decode_object_limit(void) {
        for (uint32_t extra = 0; extra <= 1; extra++) {
                uint32_t nils = RPC_MAX_OBJECTS - 9 + extra;
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 4);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "many");
                msg_pack_kv_u64(&pk, "id", 0);
                msg_pack_cstr(&pk, "x");
                msgpack_pack_array(&pk, nils);
                for (uint32_t i = 0; i < nils; i++)
                        msgpack_pack_nil(&pk);
                uint8_t *buf = malloc(sb.size + 4);
                size_t len = frame_of(buf, &sb);
                msgpack_sbuffer_destroy(&sb);
                struct rpc_frame f;
                char why[128] = "";
                int r = decode(buf, len, 4u << 20, &f, why);
                free(buf);
                if (extra == 0) {
                        CHECK(r == 0, "at the object limit: %d (%s)", r, why);
                } else {
                        CHECK_INT(r, -EBADMSG);
                        CHECK_CONTAINS(why, "more msgpack objects than allowed");
                }
        }
}

/* ---- tests: over sockets ---- */

static void test_roundtrip(void) {
        struct srv_ctx s;
        struct cli_ctx c;
        srv_start(&s, NULL);
        struct rpc_options o = options();
        o.role = "worker";
        o.name = "w-1";
        struct rpc_conn *conn = cli_connect(&s, &c, &o);
        CHECK_INT(rpc_send(conn, "ping", NULL), -ENOTCONN);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        CHECK(run_until(s.base, int_nonzero, &s.accepted, 5), "server never accepted");
        CHECK_STR(rpc_conn_peer_role(conn), "test");
        CHECK_STR(rpc_conn_peer_name(conn), "unit");
        CHECK_CONTAINS(rpc_conn_peer(conn), "127.0.0.1:");
        CHECK_STR(rpc_conn_peer_role(s.conn), "worker");
        CHECK_STR(rpc_conn_peer_name(s.conn), "w-1");

        /* One-way with an epoch. */
        struct rpc_msg m;
        rpc_msg_init(&m, 2);
        msg_pack_kv_i64(&m.pk, "n", 41);
        msg_pack_kv_str(&m.pk, "s", "text");
        rpc_msg_set_epoch(&m, 9);
        CHECK_INT(rpc_send(conn, "ping", &m), 0);
        rpc_msg_finish(&m);
        CHECK(run_until(s.base, int_nonzero, &s.messages, 5), "ping never arrived");
        CHECK_STR(s.last_type, "ping");
        CHECK_INT(s.last_id, 0);
        CHECK_INT(s.last_n, 41);
        CHECK(s.had_epoch && s.last_epoch == 9, "epoch: had %d value %" PRIu64, s.had_epoch,
              s.last_epoch);

        /* Server to client one-way. */
        CHECK_INT(rpc_send(s.conn, "note", NULL), 0);
        CHECK(run_until(s.base, int_nonzero, &c.messages, 5), "note never arrived");

        /* Calls: ok and error. */
        struct call_slot ok = {0}, bad = {0};
        CHECK_INT(call_n(conn, "echo", 5, 5000, &ok), 0);
        CHECK_INT(call_n(conn, "fail", 5, 5000, &bad), 0);
        CHECK_INT(rpc_conn_pending_calls(conn), 2);
        CHECK(run_until(s.base, slot_done, &bad, 5), "fail call never answered");
        CHECK(ok.done, "echo call never answered");
        CHECK_INT(ok.error, 0);
        CHECK_INT(ok.n, 6);
        CHECK_INT(bad.error, -EREMOTEIO);
        CHECK_STR(bad.text, "nope");
        CHECK_INT(rpc_conn_pending_calls(conn), 0);

        /* Builder mistakes are caught before anything is queued. */
        rpc_msg_init(&m, 2);
        msg_pack_kv_i64(&m.pk, "n", 1);
        CHECK_INT(rpc_send(conn, "ping", &m), -EINVAL); /* one field, two declared */
        rpc_msg_finish(&m);
        rpc_msg_init(&m, 1);
        msg_pack_kv_str(&m.pk, "t", "sneaky");
        CHECK_INT(rpc_send(conn, "ping", &m), -EINVAL); /* reserved key */
        CHECK_INT(rpc_reply(conn, 1, &m), -EINVAL);
        rpc_msg_finish(&m);
        rpc_msg_init(&m, 1);
        msg_pack_kv_str(&m.pk, "error", "disk full"); /* reserved in responses only */
        CHECK_INT(rpc_send(conn, "ping", &m), 0);
        CHECK_INT(rpc_reply(conn, 1, &m), -EINVAL);
        rpc_msg_finish(&m);
        CHECK_INT(rpc_send(conn, "has space", NULL), -EINVAL);
        CHECK_INT(rpc_send(conn, "hello", NULL), -EINVAL);
        CHECK_INT(rpc_send(conn, "", NULL), -EINVAL);
        CHECK_INT(rpc_reply(conn, 0, NULL), -EINVAL);

        CHECK(run_until(s.base, messages_reach, &(struct count_wait){&s, 4}, 5),
              "ping with an error field never arrived");
        struct rpc_server_stats st = srv_stats(&s);
        CHECK_INT(st.hellos, 1);
        CHECK_INT(st.frames, 5); /* hello, ping, echo, fail, ping with an error field */
        CHECK_INT(st.open, 1);

        rpc_conn_close(conn);
        CHECK_INT(c.closed, 0); /* a local close does not call on_close */
        CHECK(run_until(s.base, int_nonzero, &s.closed, 5), "server never saw the close");
        CHECK_INT(s.close_reason, 0);
        srv_stop(&s);
}

static void test_many_calls(void) {
        enum { N = 3000 };
        struct srv_ctx s;
        struct cli_ctx c;
        srv_start(&s, NULL);
        struct rpc_conn *conn = cli_connect(&s, &c, NULL);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        static struct call_slot slots[N];
        memset(slots, 0, sizeof(slots));
        for (int i = 0; i < N; i++)
                CHECK_INT(call_n(conn, "echo", i * 10, 10000, &slots[i]), 0);
        CHECK_INT(rpc_conn_pending_calls(conn), N);
        CHECK(run_until(s.base, slot_done, &slots[N - 1], 20), "last call never answered");
        int wrong = 0;
        for (int i = 0; i < N; i++)
                if (!slots[i].done || slots[i].error != 0 || slots[i].n != i * 10 + 1)
                        wrong++;
        CHECK_INT(wrong, 0);
        rpc_conn_close(conn);

        /* The pending-call cap. */
        struct rpc_options o = options();
        o.max_pending_calls = 16;
        conn = cli_connect(&s, &c, &o);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        memset(slots, 0, sizeof(slots));
        for (int i = 0; i < 16; i++)
                CHECK_INT(call_n(conn, "hold", i, 10000, &slots[i]), 0);
        CHECK_INT(call_n(conn, "hold", 16, 10000, &slots[16]), -EAGAIN);
        CHECK(!slots[16].done, "a refused call's callback ran");
        rpc_conn_close(conn);
        int cancelled = 0;
        for (int i = 0; i < 16; i++)
                cancelled += slots[i].done && slots[i].error == -ECANCELED;
        CHECK_INT(cancelled, 16);
        srv_stop(&s);
}

static void test_call_timeout(void) {
        struct srv_ctx s;
        struct cli_ctx c;
        srv_start(&s, NULL);
        struct rpc_conn *conn = cli_connect(&s, &c, NULL);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        struct call_slot held = {0};
        uint64_t t0 = clock_mono_ms();
        CHECK_INT(call_n(conn, "hold", 1, 100, &held), 0);
        CHECK(run_until(s.base, slot_done, &held, 5), "held call never timed out");
        CHECK_INT(held.error, -ETIMEDOUT);
        /* libevent's timers run on CLOCK_MONOTONIC_COARSE unless the base asks for
         * precise timers: they may fire a few ms early by our precise clock. */
        CHECK(clock_mono_ms() - t0 >= 90, "timed out after %" PRIu64 " ms, before 100",
              clock_mono_ms() - t0);

        /* The late answer is dropped and the connection goes on. */
        CHECK(s.held_id != 0, "server never saw the held request");
        CHECK_INT(rpc_reply(s.conn, s.held_id, NULL), 0);
        struct call_slot next = {0};
        CHECK_INT(call_n(conn, "echo", 1, 5000, &next), 0);
        CHECK(run_until(s.base, slot_done, &next, 5), "call after a late response failed");
        CHECK_INT(next.error, 0);
        CHECK_INT(next.n, 2);
        CHECK(rpc_conn_is_open(conn), "connection closed by a late response");
        CHECK_INT(c.closed, 0);
        rpc_conn_close(conn);
        srv_stop(&s);
}

/* The server closes from inside on_message (deferred close): the client's pending calls
 * fail with -ECONNRESET and its on_close runs. */
static void test_close_with_pending_calls(void) {
        struct srv_ctx s;
        struct cli_ctx c;
        srv_start(&s, NULL);
        struct rpc_conn *conn = cli_connect(&s, &c, NULL);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        struct call_slot held = {0}, die = {0};
        CHECK_INT(call_n(conn, "hold", 1, 10000, &held), 0);
        CHECK_INT(call_n(conn, "die", 2, 10000, &die), 0);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "client never saw the close");
        CHECK(c.close_reason == 0 || c.close_reason == -ECONNRESET,
              "close reason: expected 0 or -ECONNRESET, seen %d", c.close_reason);
        CHECK(held.done && held.error == -ECONNRESET, "held call: done %d error %d",
              held.done, held.error);
        CHECK(die.done && die.error == -ECONNRESET, "die call: done %d error %d", die.done,
              die.error);
        CHECK_INT(s.send_after_close, -ENOTCONN);
        CHECK_INT(s.closed, 0); /* the server closed locally */
        CHECK_INT(srv_stats(&s).closed_local, 1);
        srv_stop(&s);
}

/* Closes from inside callbacks: on_connected, a call callback (which cancels another
 * pending call from inside the first), and the server destroyed from inside
 * on_message. ASan turns any use after free into a failure. */
static void test_deferred_close(void) {
        struct srv_ctx s;
        struct cli_ctx c;
        srv_start(&s, NULL);

        memset(&c, 0, sizeof(c));
        c.close_in_connected = true;
        struct rpc_options o = options();
        struct rpc_conn *conn;
        CHECK_INT(rpc_connect(s.base, "127.0.0.1", rpc_server_port(s.srv), &o, &cli_cbs, &c,
                              &conn), 0);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        CHECK(run_until(s.base, int_nonzero, &s.closed, 5), "server never saw the close");
        CHECK_INT(c.closed, 0);

        conn = cli_connect(&s, &c, NULL);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        struct call_slot hold = {0}, echo = {.close_conn = true};
        CHECK_INT(call_n(conn, "hold", 1, 10000, &hold), 0);
        CHECK_INT(call_n(conn, "echo", 1, 10000, &echo), 0);
        CHECK(run_until(s.base, slot_done, &echo, 5), "echo never answered");
        CHECK_INT(echo.error, 0);
        CHECK(hold.done && hold.error == -ECANCELED, "hold: done %d error %d", hold.done,
              hold.error);
        CHECK_INT(c.closed, 0);

        conn = cli_connect(&s, &c, NULL);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");
        struct call_slot destroy = {0};
        CHECK_INT(call_n(conn, "destroy", 1, 10000, &destroy), 0);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "client never saw the close");
        CHECK(destroy.done && destroy.error == -ECONNRESET, "destroy: done %d error %d",
              destroy.done, destroy.error);
        CHECK(s.srv == NULL, "server not destroyed");
        srv_stop(&s);
}

static void test_hello_mismatch(void) {
        struct srv_ctx s;
        struct cli_ctx c;

        /* Cluster id. */
        srv_start(&s, NULL);
        log_capture_begin();
        struct rpc_options o = options();
        o.cluster_id = "other-cluster";
        cli_connect(&s, &c, &o);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "client never closed");
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "server never rejected");
        char *text = log_capture_end();
        CHECK_INT(c.close_reason, -EPROTO);
        CHECK_INT(s.reject_reason, -EPROTO);
        CHECK(!c.connected, "on_connected ran for a rejected hello");
        CHECK_INT(s.accepted, 0);
        CHECK_CONTAINS(text, "cluster id mismatch: peer 'other-cluster', local '" CLUSTER "'");
        CHECK_CONTAINS(text, "cluster id mismatch: peer '" CLUSTER "', local 'other-cluster'");
        CHECK_CONTAINS(text, "-rpc-conn-closed peer=127.0.0.1:");
        free(text);
        CHECK_INT(srv_stats(&s).closed_protocol, 1);
        srv_stop(&s);

        /* Protocol version. */
        srv_start(&s, NULL);
        log_capture_begin();
        o = options();
        o.protocol_version = 2;
        cli_connect(&s, &c, &o);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "client never closed");
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "server never rejected");
        text = log_capture_end();
        CHECK_INT(c.close_reason, -EPROTO);
        CHECK_INT(s.reject_reason, -EPROTO);
        CHECK_CONTAINS(text, "protocol version mismatch: peer v=2, local v=1");
        CHECK_CONTAINS(text, "protocol version mismatch: peer v=1, local v=2");
        free(text);
        srv_stop(&s);
}

static void test_hello_rules(void) {
        struct srv_ctx s;
        struct raw r;
        struct rpc_options o = options();
        o.hello_timeout_ms = 100;
        srv_start(&s, &o);

        /* No hello at all: timeout, logged. */
        log_capture_begin();
        raw_connect(&r, rpc_server_port(s.srv));
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "hello timeout never fired");
        char *text = log_capture_end();
        CHECK_INT(s.reject_reason, -ETIMEDOUT);
        CHECK_CONTAINS(text, "no hello within 100 ms");
        free(text);
        CHECK(run_until(s.base, raw_eof, &r, 5), "raw client not closed after timeout");
        CHECK(r.in_bytes > 0, "server sent no hello");
        close(r.fd);

        /* A message before the hello. */
        s.rejected = 0;
        raw_connect(&r, rpc_server_port(s.srv));
        raw_send_map(&r, 1, "ping", 0, NULL);
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "server never rejected");
        CHECK_INT(s.reject_reason, -EPROTO);
        close(r.fd);

        /* A second hello. */
        raw_connect(&r, rpc_server_port(s.srv));
        raw_hello(&r);
        raw_hello(&r);
        CHECK(run_until(s.base, int_nonzero, &s.closed, 5), "second hello accepted");
        CHECK_INT(s.close_reason, -EPROTO);
        CHECK_INT(s.accepted, 1);
        close(r.fd);

        /* A hello without a cluster. */
        s.rejected = 0;
        raw_connect(&r, rpc_server_port(s.srv));
        raw_send_map(&r, 1, "hello", 0, NULL);
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "server never rejected");
        CHECK_INT(s.reject_reason, -EBADMSG);
        close(r.fd);

        /* A client whose server never says hello: -ETIMEDOUT. */
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t slen = sizeof(sin);
        bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
        listen(lfd, 4);
        getsockname(lfd, (struct sockaddr *)&sin, &slen);
        struct cli_ctx c = {0};
        struct rpc_conn *conn;
        CHECK_INT(rpc_connect(s.base, "127.0.0.1", ntohs(sin.sin_port), &o, &cli_cbs, &c,
                              &conn), 0);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "client hello timeout never fired");
        CHECK_INT(c.close_reason, -ETIMEDOUT);

        /* Connecting to a port nobody listens on. */
        close(lfd);
        memset(&c, 0, sizeof(c));
        CHECK_INT(rpc_connect(s.base, "127.0.0.1", ntohs(sin.sin_port), &o, &cli_cbs, &c,
                              &conn), 0);
        CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "refused connect never reported");
        CHECK_INT(c.close_reason, -ECONNREFUSED);
        CHECK_INT(rpc_connect(s.base, "no-such-host.invalid", 1, &o, &cli_cbs, &c, &conn),
                  -EINVAL);
        srv_stop(&s);
}

/* Each malformed frame closes only its connection, with the right reason; a client that
 * connected before goes on working. */
static void test_malformed_frames(void) {
        struct srv_ctx s;
        struct cli_ctx c;
        struct rpc_options o = options();
        o.max_frame_bytes = 4096;
        srv_start(&s, &o);
        struct rpc_conn *good = cli_connect(&s, &c, &o);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "client never connected");

        static const uint8_t not_map[] = {0x93, 0x01, 0x02, 0x03};
        static const uint8_t garbage[] = {0xc1, 0xff, 0x00, 0x17};
        static const uint8_t huge_array[] = {0x81, 0xa1, 'x', 0xdd, 0x7f, 0xff, 0xff, 0xff};
        msgpack_sbuffer no_t;
        pack_map(&no_t, 1, NULL, 0, NULL);
        msgpack_sbuffer bad_response; /* a response without re / ok */
        pack_map(&bad_response, 1, "response", 0, NULL);
        const struct {
                const char *name;
                uint32_t length; /* written as the length prefix */
                const void *body;
                size_t body_len;
                int reason;
        } cases[] = {
                {"oversized", 4097, NULL, 0, -EMSGSIZE},
                {"length 2^32-1", UINT32_MAX, NULL, 0, -EMSGSIZE},
                {"zero length", 0, NULL, 0, -EBADMSG},
                {"not a map", sizeof(not_map), not_map, sizeof(not_map), -EBADMSG},
                {"garbage", sizeof(garbage), garbage, sizeof(garbage), -EBADMSG},
                {"huge array count", sizeof(huge_array), huge_array, sizeof(huge_array),
                 -EBADMSG},
                {"missing t", (uint32_t)no_t.size, no_t.data, no_t.size, -EBADMSG},
                {"bad response", (uint32_t)bad_response.size, bad_response.data,
                 bad_response.size, -EBADMSG},
        };
        log_capture_begin();
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct raw r;
                raw_connect(&r, rpc_server_port(s.srv));
                raw_hello(&r);
                s.closed = 0;
                uint8_t hdr[4];
                be32(hdr, cases[i].length);
                raw_send(&r, hdr, 4);
                if (cases[i].body_len)
                        raw_send(&r, cases[i].body, cases[i].body_len);
                CHECK(run_until(s.base, int_nonzero, &s.closed, 5), "%s: not closed",
                      cases[i].name);
                CHECK(s.close_reason == cases[i].reason, "%s: expected %d, seen %d",
                      cases[i].name, cases[i].reason, s.close_reason);
                CHECK(run_until(s.base, raw_eof, &r, 5), "%s: socket left open", cases[i].name);
                close(r.fd);
        }
        /* Oversized before the hello: rejected the same way. */
        struct raw r;
        raw_connect(&r, rpc_server_port(s.srv));
        uint8_t hdr[4];
        be32(hdr, 1u << 30);
        raw_send(&r, hdr, 4);
        s.rejected = 0;
        CHECK(run_until(s.base, int_nonzero, &s.rejected, 5), "oversized pre-hello kept");
        CHECK_INT(s.reject_reason, -EMSGSIZE);
        close(r.fd);
        char *text = log_capture_end();
        CHECK_CONTAINS(text, "frame length 4097 over the limit of 4096 bytes");
        CHECK_CONTAINS(text, "frame length 0");
        CHECK_CONTAINS(text, "not a msgpack map");
        CHECK_CONTAINS(text, "no 't'");
        CHECK_CONTAINS(text, "response without");
        free(text);
        msgpack_sbuffer_destroy(&no_t);
        msgpack_sbuffer_destroy(&bad_response);

        struct rpc_server_stats st = srv_stats(&s);
        CHECK_INT(st.closed_oversized, 3);
        CHECK_INT(st.closed_malformed, 6);

        /* A response to an unknown request is dropped, not fatal. */
        raw_connect(&r, rpc_server_port(s.srv));
        raw_hello(&r);
        {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 5);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "response");
                msg_pack_kv_u64(&pk, "id", 0);
                msg_pack_kv_u64(&pk, "re", 999);
                msg_pack_kv_bool(&pk, "ok", true);
                raw_send_body(&r, sb.data, sb.size);
                msgpack_sbuffer_destroy(&sb);
        }
        s.messages = 0;
        raw_send_map(&r, 1, "ping", 0, NULL);
        CHECK(run_until(s.base, int_nonzero, &s.messages, 5), "message after stray response lost");
        close(r.fd);

        /* The first client was never disturbed. */
        struct call_slot slot = {0};
        CHECK_INT(call_n(good, "echo", 100, 5000, &slot), 0);
        CHECK(run_until(s.base, slot_done, &slot, 5), "good client's call never answered");
        CHECK_INT(slot.n, 101);
        CHECK_INT(c.closed, 0);
        rpc_conn_close(good);
        srv_stop(&s);
}

/* A frame of exactly max_frame_bytes fills the read buffer to its high watermark; the
 * frame behind it must still arrive. */
static void test_frame_at_cap(void) {
        struct srv_ctx s;
        struct rpc_options o = options();
        o.max_frame_bytes = 4096;
        srv_start(&s, &o);
        struct raw r;
        raw_connect(&r, rpc_server_port(s.srv));
        raw_hello(&r);
        for (size_t pad = 4000; pad < 4100; pad++) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 4);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "big");
                msg_pack_kv_u64(&pk, "id", 0);
                static char zeros[4096];
                msg_pack_kv_bin(&pk, "pad", zeros, pad);
                if (sb.size == 4096) {
                        raw_send_body(&r, sb.data, sb.size);
                        msgpack_sbuffer_destroy(&sb);
                        break;
                }
                msgpack_sbuffer_destroy(&sb);
        }
        raw_send_map(&r, 1, "after", 0, NULL);
        CHECK(run_until(s.base, messages_reach, &(struct count_wait){&s, 2}, 5),
              "frames at the cap: %d of 2 arrived", s.messages);
        CHECK_STR(s.last_type, "after");
        CHECK_INT(s.closed, 0);
        close(r.fd);
        srv_stop(&s);
}

/* Host names go through an evdns_base; here one that reads only /etc/hosts. A name
 * that does not resolve fails in rpc_connect or in on_close, never silently. */
static void test_connect_by_name(void) {
        struct srv_ctx s;
        struct cli_ctx c = {0};
        srv_start(&s, NULL);
        struct evdns_base *dns = evdns_base_new(s.base, 0);
        CHECK(evdns_base_load_hosts(dns, NULL) == 0, "no /etc/hosts");
        struct rpc_options o = options();
        o.dns = dns;
        struct rpc_conn *conn = NULL;
        CHECK_INT(rpc_connect(s.base, "localhost", rpc_server_port(s.srv), &o, &cli_cbs, &c,
                              &conn), 0);
        CHECK(run_until(s.base, flag_set, &c.connected, 5), "never connected to localhost: %d",
              c.close_reason);
        rpc_conn_close(conn);

        /* Without nameservers evdns never answers: the connect + hello timeout ends it. */
        memset(&c, 0, sizeof(c));
        o.hello_timeout_ms = 200;
        int r = rpc_connect(s.base, "no-such-host.invalid", rpc_server_port(s.srv), &o,
                            &cli_cbs, &c, &conn);
        if (r == 0) {
                CHECK(run_until(s.base, int_nonzero, &c.closed, 5), "lookup failure not reported");
                if (!c.closed)
                        rpc_conn_close(conn);
                CHECK(c.close_reason == -EHOSTUNREACH || c.close_reason == -ETIMEDOUT,
                      "expected -EHOSTUNREACH or -ETIMEDOUT, seen %d", c.close_reason);
        } else {
                CHECK_INT(r, -EHOSTUNREACH);
        }
        CHECK(!c.connected, "connected to a name that does not exist");
        /* The close cancelled the lookup; libevent finishes the cancel from a deferred
         * callback, so the loop runs once more before the bases go. */
        event_base_loop(s.base, EVLOOP_NONBLOCK);
        evdns_base_free(dns, 0);
        srv_stop(&s);
}

struct drain_wait {
        struct raw *r;
        struct cli_ctx *c;
};

static bool raw_reads_until_drained(void *arg) {
        struct drain_wait *w = arg;
        raw_pump(w->r);
        return w->c->drained > 0;
}

/* A peer that does not read: rpc_send refuses with -ENOBUFS past max_output_bytes
 * instead of buffering without bound, and on_drain fires once the peer reads. */
static void test_output_limit(void) {
        struct srv_ctx s;
        struct rpc_options o = options();
        o.max_frame_bytes = 64 << 10;
        o.max_output_bytes = 1 << 20;
        srv_start(&s, &o);
        struct raw r;
        raw_connect(&r, rpc_server_port(s.srv));
        raw_hello(&r);
        CHECK(run_until(s.base, int_nonzero, &s.accepted, 5), "raw client not accepted");
        struct cli_ctx c = {0};
        static const struct rpc_conn_callbacks cbs = {.on_drain = cli_on_drain};
        rpc_conn_set_callbacks(s.conn, &cbs, &c);

        static char blob[60 << 10];
        memset(blob, 'x', sizeof(blob));
        struct rpc_msg m;
        rpc_msg_init(&m, 1);
        msg_pack_kv_bin(&m.pk, "blob", blob, sizeof(blob));
        int rc = 0;
        size_t sent = 0;
        uint64_t until = deadline_ms(20);
        while (clock_mono_ms() < until) {
                rc = rpc_send(s.conn, "blob", &m);
                if (rc < 0)
                        break;
                sent++;
                event_base_loop(s.base, EVLOOP_NONBLOCK);
        }
        CHECK_INT(rc, -ENOBUFS);
        CHECK(rpc_conn_output_bytes(s.conn) <= o.max_output_bytes,
              "output %zu over the limit", rpc_conn_output_bytes(s.conn));
        CHECK(sent > 16, "only %zu frames before -ENOBUFS", sent);
        CHECK_INT(c.drained, 0);
        struct drain_wait w = {&r, &c};
        CHECK(run_until(s.base, raw_reads_until_drained, &w, 10), "on_drain never fired");
        CHECK_INT(rpc_send(s.conn, "blob", &m), 0);
        rpc_msg_finish(&m);

        /* A body over the frame cap is refused outright. */
        static char big[65 << 10];
        rpc_msg_init(&m, 1);
        msg_pack_kv_bin(&m.pk, "blob", big, sizeof(big));
        CHECK_INT(rpc_send(s.conn, "blob", &m), -EMSGSIZE);
        rpc_msg_finish(&m);
        close(r.fd);
        srv_stop(&s);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        log_set_level(LOG_LEVEL_ERROR);
        RUN(test_decode_frames);
        RUN(test_decode_object_limit);
        RUN(test_roundtrip);
        RUN(test_many_calls);
        RUN(test_call_timeout);
        RUN(test_close_with_pending_calls);
        RUN(test_deferred_close);
        RUN(test_hello_mismatch);
        RUN(test_hello_rules);
        RUN(test_malformed_frames);
        RUN(test_frame_at_cap);
        RUN(test_connect_by_name);
        RUN(test_output_limit);
        return unit_done();
}
