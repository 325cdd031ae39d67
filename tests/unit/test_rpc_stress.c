/* Stress test of common/rpc against hostile input: a live server on its own thread and
 * event_base, and a raw-socket client that sends at least 100,000 frames over a few
 * thousand connections: valid frames, random and huge lengths, zero lengths, garbage
 * bodies, valid msgpack that is not a map, maps without a valid v/t/id, truncated
 * frames followed by a close, frames before the hello, bad hellos and random bytes
 * mid-stream. Each connection carries a few frames and is then closed by the server
 * (bad frame) or the client. Afterwards a proper client does a hello and a call and
 * must get the right answer, and the server's counters must account for every frame
 * and connection, proving the bytes really went through the decoder. The PRNG seed is
 * printed; FLINC_STRESS_SEED replays a run. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/rpc.h"
#include "unit.h"

#define CLUSTER "stress-cluster"
#define FRAMES_TOTAL 100000

static uint64_t rng_state;

static uint64_t rnd(void) {
        /* splitmix64 */
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_between(uint64_t lo, uint64_t hi) {
        return lo + rnd() % (hi - lo + 1);
}

static void rnd_bytes(uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)rnd();
}

static uint64_t deadline_ms(double seconds) {
        return clock_mono_ms() + (uint64_t)(seconds * 1000.0 * unit_timeout_scale());
}

/* ---- the server thread ---- */

struct server {
        struct event_base *base;
        struct rpc_server *srv;
        int stop_pipe[2];
        struct event *stop_ev;
        struct event *poll_ev;
        uint64_t stop_deadline_ms;
        pthread_t thread;
        /* written by the server thread; read by main after the join */
        uint64_t messages;
        uint64_t calls;
        struct rpc_server_stats stats;
};

static void srv_on_message(struct rpc_conn *conn, const char *type, uint64_t id,
                           const msgpack_object *map, void *arg) {
        struct server *s = arg;
        s->messages++;
        if (id == 0)
                return;
        s->calls++;
        int64_t n = 0;
        msg_get_i64(map, "n", &n);
        struct rpc_msg m;
        rpc_msg_init(&m, 1);
        msg_pack_kv_i64(&m.pk, "n", 2 * n);
        rpc_reply(conn, id, &m);
        rpc_msg_finish(&m);
}

static void srv_on_accept(struct rpc_server *srv, struct rpc_conn *conn, void *arg) {
        static const struct rpc_conn_callbacks cbs = {.on_message = srv_on_message};
        rpc_conn_set_callbacks(conn, &cbs, arg);
}

/* Stops the loop once every connection is closed (or the deadline passed). */
static void srv_on_poll(evutil_socket_t fd, short what, void *arg) {
        struct server *s = arg;
        struct rpc_server_stats st;
        rpc_server_get_stats(s->srv, &st);
        if (st.open == 0 || clock_mono_ms() > s->stop_deadline_ms)
                event_base_loopbreak(s->base);
}

static void srv_on_stop(evutil_socket_t fd, short what, void *arg) {
        struct server *s = arg;
        char byte;
        ssize_t n = read(fd, &byte, 1);
        (void)n;
        s->stop_deadline_ms = deadline_ms(20);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 5000};
        event_add(s->poll_ev, &tv);
}

static void *srv_main(void *arg) {
        struct server *s = arg;
        event_base_dispatch(s->base);
        rpc_server_get_stats(s->srv, &s->stats);
        return NULL;
}

static int srv_start(struct server *s) {
        memset(s, 0, sizeof(*s));
        s->base = event_base_new();
        struct rpc_options o = {.cluster_id = CLUSTER, .role = "coordinator", .name = "stress"};
        static const struct rpc_server_callbacks cbs = {.on_accept = srv_on_accept};
        int r = rpc_server_create(s->base, "127.0.0.1", 0, &o, &cbs, s, &s->srv);
        if (r < 0)
                return r;
        if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
                return -errno;
        s->stop_ev = event_new(s->base, s->stop_pipe[0], EV_READ, srv_on_stop, s);
        s->poll_ev = event_new(s->base, -1, EV_PERSIST, srv_on_poll, s);
        event_add(s->stop_ev, NULL);
        /* The base and server are handed to the thread here and not touched by main
         * again until the join. */
        return -pthread_create(&s->thread, NULL, srv_main, s);
}

static void srv_stop(struct server *s) {
        ssize_t n = write(s->stop_pipe[1], "x", 1);
        (void)n;
        pthread_join(s->thread, NULL);
        event_free(s->stop_ev);
        event_free(s->poll_ev);
        rpc_server_destroy(s->srv);
        event_base_free(s->base);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
}

/* ---- building frames ---- */

struct out {
        uint8_t *data;
        size_t len, cap;
};

static void out_put(struct out *o, const void *p, size_t n) {
        if (o->len + n > o->cap) {
                size_t cap = o->cap ? o->cap : 4096;
                while (cap < o->len + n)
                        cap *= 2;
                o->data = realloc(o->data, cap);
                o->cap = cap;
        }
        memcpy(o->data + o->len, p, n);
        o->len += n;
}

static void out_len(struct out *o, uint32_t len) {
        uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                          (uint8_t)len};
        out_put(o, hdr, 4);
}

static void out_body(struct out *o, const msgpack_sbuffer *sb) {
        out_len(o, (uint32_t)sb->size);
        out_put(o, sb->data, sb->size);
}

static void begin(msgpack_sbuffer *sb, msgpack_packer *pk) {
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void put_hello(struct out *o, const char *cluster, uint32_t version) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        begin(&sb, &pk);
        msgpack_pack_map(&pk, 6);
        msg_pack_kv_u64(&pk, "v", version);
        msg_pack_kv_str(&pk, "t", "hello");
        msg_pack_kv_u64(&pk, "id", 0);
        msg_pack_kv_str(&pk, "cluster", cluster);
        msg_pack_kv_str(&pk, "role", "worker");
        msg_pack_kv_str(&pk, "name", "stress-client");
        out_body(o, &sb);
        msgpack_sbuffer_destroy(&sb);
}

static uint8_t payload[1 << 20];

/* A valid one-way frame with a random payload, now and then a large one. */
static void put_valid(struct out *o, uint64_t n) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        begin(&sb, &pk);
        size_t plen = rnd() % 200 == 0 ? rnd_between(16 << 10, 512 << 10) : rnd() % 160;
        bool epoch = rnd() % 2;
        msgpack_pack_map(&pk, 5 + epoch);
        msg_pack_kv_u64(&pk, "v", RPC_PROTOCOL_VERSION);
        msg_pack_kv_str(&pk, "t", rnd() % 2 ? "data" : "barrier");
        msg_pack_kv_u64(&pk, "id", 0);
        msg_pack_kv_u64(&pk, "n", n);
        if (epoch)
                msg_pack_kv_u64(&pk, "epoch", rnd() % 100);
        msg_pack_kv_bin(&pk, "p", payload, plen);
        out_body(o, &sb);
        msgpack_sbuffer_destroy(&sb);
}

/* Valid msgpack that is not a map. */
static void put_non_map(struct out *o) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        begin(&sb, &pk);
        switch (rnd() % 6) {
        case 0:
                msgpack_pack_array(&pk, 3);
                msgpack_pack_int(&pk, 1);
                msg_pack_cstr(&pk, "t");
                msgpack_pack_nil(&pk);
                break;
        case 1:
                msg_pack_cstr(&pk, "hello");
                break;
        case 2:
                msgpack_pack_uint64(&pk, rnd());
                break;
        case 3:
                msgpack_pack_nil(&pk);
                break;
        case 4:
                msgpack_pack_bin(&pk, 64);
                msgpack_pack_bin_body(&pk, payload, 64);
                break;
        default:
                msgpack_pack_array(&pk, 1);
                msgpack_pack_map(&pk, 1);
                msg_pack_kv_str(&pk, "t", "x");
                break;
        }
        out_body(o, &sb);
        msgpack_sbuffer_destroy(&sb);
}

/* A map whose v/t/id are missing or invalid. */
static void put_bad_header(struct out *o) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        begin(&sb, &pk);
        switch (rnd() % 7) {
        case 0: /* no t */
                msgpack_pack_map(&pk, 2);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_u64(&pk, "id", 0);
                break;
        case 1: /* t not a str */
                msgpack_pack_map(&pk, 3);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_u64(&pk, "t", 5);
                msg_pack_kv_u64(&pk, "id", 0);
                break;
        case 2: /* v 0 */
                msgpack_pack_map(&pk, 3);
                msg_pack_kv_u64(&pk, "v", 0);
                msg_pack_kv_str(&pk, "t", "data");
                msg_pack_kv_u64(&pk, "id", 0);
                break;
        case 3: /* negative id */
                msgpack_pack_map(&pk, 3);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "data");
                msg_pack_kv_i64(&pk, "id", -1);
                break;
        case 4: /* no id */
                msgpack_pack_map(&pk, 2);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "data");
                break;
        case 5: /* t with a space */
                msgpack_pack_map(&pk, 3);
                msg_pack_kv_u64(&pk, "v", 1);
                msg_pack_kv_str(&pk, "t", "da ta");
                msg_pack_kv_u64(&pk, "id", 0);
                break;
        default: /* empty map */
                msgpack_pack_map(&pk, 0);
                break;
        }
        out_body(o, &sb);
        msgpack_sbuffer_destroy(&sb);
}

/* ---- the client ---- */

enum scenario {
        SC_CLEAN,        /* valid frames, client closes */
        SC_OVERSIZED,    /* length over the cap */
        SC_ZERO,         /* length 0 */
        SC_GARBAGE,      /* a length with random bytes as body */
        SC_NON_MAP,      /* valid msgpack, not a map */
        SC_BAD_HEADER,   /* map without a valid v/t/id */
        SC_TRUNCATED,    /* a valid frame cut short, then the client closes */
        SC_BEFORE_HELLO, /* valid frames but no hello */
        SC_BAD_HELLO,    /* wrong cluster or version */
        SC_RANDOM_MID,   /* random bytes after valid frames: outcome not fixed */
        SC_RANDOM_START, /* random bytes instead of a hello: outcome not fixed */
        SC_COUNT,
};

static const char *const scenario_names[SC_COUNT] = {
        "clean", "oversized", "zero", "garbage", "non-map", "bad-header", "truncated",
        "before-hello", "bad-hello", "random-mid", "random-start",
};

/* Weights out of 100. */
static const unsigned scenario_weights[SC_COUNT] = {22, 9, 6, 11, 8, 8, 10, 7, 5, 8, 6};

struct tally {
        uint64_t frames_sent;   /* every frame or frame-like chunk written */
        uint64_t connections;
        uint64_t hellos;        /* hellos the server must accept */
        uint64_t messages;      /* valid frames after an accepted hello */
        uint64_t closed_peer, closed_oversized, closed_malformed, closed_protocol;
        uint64_t undetermined;  /* random scenarios: any close reason */
        uint64_t per_scenario[SC_COUNT];
        uint64_t io_errors;
};

static enum scenario pick_scenario(void) {
        unsigned x = (unsigned)(rnd() % 100);
        for (unsigned i = 0; i < SC_COUNT; i++) {
                if (x < scenario_weights[i])
                        return (enum scenario)i;
                x -= scenario_weights[i];
        }
        return SC_CLEAN;
}

static int raw_connect(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
                close(fd);
                return -errno;
        }
        struct timeval tv = {.tv_sec = (time_t)(10 * unit_timeout_scale())};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

static bool recv_all(int fd, void *buf, size_t len) {
        uint8_t *p = buf;
        while (len) {
                ssize_t n = recv(fd, p, len, 0);
                if (n <= 0)
                        return false;
                p += n;
                len -= (size_t)n;
        }
        return true;
}

/* Waits for the server's hello, so that it has accepted us and has nothing more to
 * send: our close is then a FIN after all our data, never a reset that could drop it. */
static bool read_server_hello(int fd) {
        uint8_t hdr[4], body[1024];
        if (!recv_all(fd, hdr, 4))
                return false;
        uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
                       hdr[3];
        return len > 0 && len <= sizeof(body) && recv_all(fd, body, len);
}

/* Writes the batch, in random pieces now and then; errors are expected once the
 * server has closed on a bad frame. */
static void send_batch(int fd, const struct out *o) {
        size_t off = 0;
        bool pieces = rnd() % 5 == 0;
        while (off < o->len) {
                size_t n = o->len - off;
                if (pieces && n > 1)
                        n = rnd_between(1, n < 512 ? n : 512);
                ssize_t w = send(fd, o->data + off, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return;
                off += (size_t)w;
        }
}

static void run_connection(uint16_t port, struct tally *t, struct out *o) {
        enum scenario sc = pick_scenario();
        uint64_t k = rnd_between(0, 40); /* valid frames before the ending */
        o->len = 0;
        t->per_scenario[sc]++;
        t->connections++;

        bool hello = sc != SC_BEFORE_HELLO && sc != SC_BAD_HELLO && sc != SC_RANDOM_START;
        if (hello) {
                put_hello(o, CLUSTER, RPC_PROTOCOL_VERSION);
                t->hellos++;
                t->frames_sent++;
        }
        if (sc != SC_BAD_HELLO && sc != SC_RANDOM_START) {
                if (sc == SC_BEFORE_HELLO && k == 0)
                        k = 1;
                for (uint64_t i = 0; i < k; i++)
                        put_valid(o, i);
                t->frames_sent += k;
                if (hello)
                        t->messages += k;
        }

        uint8_t junk[512];
        switch (sc) {
        case SC_CLEAN:
                t->closed_peer++;
                break;
        case SC_OVERSIZED:
                out_len(o, (uint32_t)rnd_between(RPC_DEFAULT_MAX_FRAME_BYTES + 1, UINT32_MAX));
                rnd_bytes(junk, rnd() % sizeof(junk));
                out_put(o, junk, rnd() % sizeof(junk));
                t->frames_sent++;
                t->closed_oversized++;
                break;
        case SC_ZERO:
                out_len(o, 0);
                rnd_bytes(junk, 64);
                out_put(o, junk, rnd() % 64);
                t->frames_sent++;
                t->closed_malformed++;
                break;
        case SC_GARBAGE: {
                size_t len = rnd() % 50 == 0 ? rnd_between(1, 64 << 10) : rnd_between(1, 300);
                out_len(o, (uint32_t)len);
                size_t start = o->len;
                out_put(o, payload, len);
                rnd_bytes(o->data + start, len);
                t->frames_sent++;
                t->closed_malformed++;
                break;
        }
        case SC_NON_MAP:
                put_non_map(o);
                t->frames_sent++;
                t->closed_malformed++;
                break;
        case SC_BAD_HEADER:
                put_bad_header(o);
                t->frames_sent++;
                t->closed_malformed++;
                break;
        case SC_TRUNCATED: {
                struct out whole = {0};
                if (rnd() % 10 == 0) {
                        /* a huge but allowed length, and only a little of the body */
                        out_len(&whole, (uint32_t)rnd_between(1 << 20, RPC_DEFAULT_MAX_FRAME_BYTES));
                        out_put(&whole, payload, rnd_between(0, 4096));
                } else {
                        put_valid(&whole, 0);
                        whole.len = rnd_between(1, whole.len - 1);
                }
                out_put(o, whole.data, whole.len);
                free(whole.data);
                t->frames_sent++;
                t->closed_peer++;
                break;
        }
        case SC_BEFORE_HELLO:
                t->closed_protocol++;
                break;
        case SC_BAD_HELLO:
                if (rnd() % 2)
                        put_hello(o, "other-cluster", RPC_PROTOCOL_VERSION);
                else
                        put_hello(o, CLUSTER, (uint32_t)rnd_between(2, 1000));
                t->frames_sent++;
                t->closed_protocol++;
                break;
        case SC_RANDOM_MID:
        case SC_RANDOM_START: {
                size_t len = rnd_between(1, sizeof(junk));
                rnd_bytes(junk, len);
                out_put(o, junk, len);
                t->frames_sent++;
                t->undetermined++;
                break;
        }
        default:
                break;
        }

        int fd = raw_connect(port);
        if (fd < 0) {
                t->io_errors++;
                return;
        }
        if (!read_server_hello(fd))
                t->io_errors++;
        send_batch(fd, o);
        close(fd);
}

/* ---- the proper client at the end ---- */

struct final_client {
        bool connected, done;
        int error;
        int64_t n;
};

static void fc_on_connected(struct rpc_conn *conn, void *arg) {
        struct final_client *fc = arg;
        fc->connected = true;
}

static void fc_on_call(struct rpc_conn *conn, int error, const msgpack_object *response,
                       void *arg) {
        struct final_client *fc = arg;
        fc->done = true;
        fc->error = error;
        if (response)
                msg_get_i64(response, "n", &fc->n);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
}

static void run_loop_until(struct event_base *base, const bool *flag, double seconds) {
        uint64_t until = deadline_ms(seconds);
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 5000};
        event_add(tick, &tv);
        while (!*flag && clock_mono_ms() < until)
                event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
}

static void final_call(uint16_t port) {
        struct event_base *base = event_base_new();
        struct final_client fc = {0};
        struct rpc_options o = {.cluster_id = CLUSTER, .role = "worker", .name = "final"};
        static const struct rpc_conn_callbacks cbs = {.on_connected = fc_on_connected};
        struct rpc_conn *conn = NULL;
        CHECK_INT(rpc_connect(base, "127.0.0.1", port, &o, &cbs, &fc, &conn), 0);
        run_loop_until(base, &fc.connected, 10);
        CHECK(fc.connected, "final client never connected");
        struct rpc_msg m;
        rpc_msg_init(&m, 1);
        msg_pack_kv_i64(&m.pk, "n", 21);
        CHECK_INT(rpc_call(conn, "double", &m, 10000, fc_on_call, &fc), 0);
        rpc_msg_finish(&m);
        run_loop_until(base, &fc.done, 10);
        CHECK(fc.done, "final call never answered");
        CHECK_INT(fc.error, 0);
        CHECK_INT(fc.n, 42);
        rpc_conn_close(conn);
        event_base_free(base);
}

static uint64_t count_lines(const char *path, const char *fragment) {
        FILE *f = fopen(path, "r");
        if (!f)
                return 0;
        char line[4096];
        uint64_t n = 0;
        while (fgets(line, sizeof(line), f))
                n += strstr(line, fragment) != NULL;
        fclose(f);
        return n;
}

static void test_stress(void) {
        const char *seed_env = getenv("FLINC_STRESS_SEED");
        uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : clock_mono_us();
        rng_state = seed;
        printf("seed %" PRIu64 " (FLINC_STRESS_SEED replays it)\n", seed);
        rnd_bytes(payload, sizeof(payload));

        /* Every refused connection logs one warning: count them in a file. */
        char log_path[] = "/tmp/flinc-test-rpc-stress-XXXXXX";
        int lfd = mkstemp(log_path);
        if (lfd >= 0)
                close(lfd);
        log_init("test_rpc_stress", LOG_LEVEL_WARN, log_path);

        struct server s;
        int r = srv_start(&s);
        CHECK(r == 0, "server start: %d", r);
        if (r < 0)
                return;
        uint16_t port = rpc_server_port(s.srv);

        uint64_t t0 = clock_mono_ms();
        struct tally t = {0};
        struct out o = {0};
        while (t.frames_sent < FRAMES_TOTAL)
                run_connection(port, &t, &o);
        free(o.data);
        uint64_t t1 = clock_mono_ms();

        final_call(port);
        srv_stop(&s);
        log_finish();
        log_set_level(LOG_LEVEL_ERROR);
        uint64_t logged = count_lines(log_path, "-rpc-conn-closed");
        unlink(log_path);

        const struct rpc_server_stats *st = &s.stats;
        printf("%" PRIu64 " frames over %" PRIu64 " connections in %" PRIu64 " ms\n",
               t.frames_sent, t.connections, t1 - t0);
        for (int i = 0; i < SC_COUNT; i++)
                printf("  %-13s %" PRIu64 "\n", scenario_names[i], t.per_scenario[i]);
        printf("server: accepted %" PRIu64 " hellos %" PRIu64 " frames %" PRIu64
               " peer %" PRIu64 " oversized %" PRIu64 " malformed %" PRIu64
               " protocol %" PRIu64 " timeout %" PRIu64 " local %" PRIu64 " error %" PRIu64
               " open %" PRIu64 "; logged %" PRIu64 "\n",
               st->accepted, st->hellos, st->frames, st->closed_peer, st->closed_oversized,
               st->closed_malformed, st->closed_protocol, st->closed_timeout,
               st->closed_local, st->closed_error, st->open, logged);

        CHECK_INT(t.io_errors, 0);
        CHECK(t.frames_sent >= FRAMES_TOTAL, "sent %" PRIu64 " frames", t.frames_sent);
        /* The final client adds one connection, one hello, one call (a message). */
        CHECK_INT(st->accepted, t.connections + 1);
        CHECK_INT(st->refused, 0);
        CHECK_INT(st->open, 0);
        CHECK_INT(st->hellos, t.hellos + 1);
        CHECK_INT(s.messages, t.messages + 1);
        CHECK_INT(s.calls, 1);
        CHECK_INT(st->frames, t.hellos + t.messages + 2);
        CHECK_INT(st->closed_protocol, t.closed_protocol);
        CHECK_INT(st->closed_timeout, 0);
        CHECK_INT(st->closed_error, 0);
        CHECK(st->closed_oversized >= t.closed_oversized &&
              st->closed_oversized <= t.closed_oversized + t.undetermined,
              "oversized closes %" PRIu64 ", expected %" PRIu64 " + up to %" PRIu64,
              st->closed_oversized, t.closed_oversized, t.undetermined);
        CHECK(st->closed_malformed >= t.closed_malformed &&
              st->closed_malformed <= t.closed_malformed + t.undetermined,
              "malformed closes %" PRIu64 ", expected %" PRIu64 " + up to %" PRIu64,
              st->closed_malformed, t.closed_malformed, t.undetermined);
        /* peer closes: ours, plus the final client (its local close is a peer close
         * for the server) */
        CHECK(st->closed_peer >= t.closed_peer + 1 &&
              st->closed_peer <= t.closed_peer + 1 + t.undetermined,
              "peer closes %" PRIu64 ", expected %" PRIu64 " + up to %" PRIu64,
              st->closed_peer, t.closed_peer + 1, t.undetermined);
        uint64_t closed = st->closed_peer + st->closed_oversized + st->closed_malformed +
                          st->closed_protocol + st->closed_timeout + st->closed_local +
                          st->closed_error;
        CHECK_INT(closed, st->accepted);
        CHECK_INT(logged, st->closed_oversized + st->closed_malformed + st->closed_protocol +
                          st->closed_timeout);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        RUN(test_stress);
        return unit_done();
}
