/* In-memory input gates and their process-wide registry (see exchange.h). */
#include "worker/exchange.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <msgpack.h>

#include "common/clock.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/rpc.h"
#include "worker/dataflow.h"

struct remote_out;

struct gate_buf {
        uint32_t channel;
        size_t len;
        void *data;
};

struct wrk_gate {
        struct wrk_gate *next_in_registry;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt, chain, subtask;
        unsigned refs;        /* under registry_mu */

        pthread_mutex_t mu;
        pthread_cond_t cond;  /* CLOCK_MONOTONIC; any change */
        struct gate_buf *bufs; /* grows to floating + per_channel * channels */
        uint32_t cap;
        uint32_t n;           /* queued, in arrival order bufs[0..n) */
        uint32_t *chan_queued; /* buffers queued per channel, chan_queued[0..n_chan) */
        uint32_t n_chan;
        uint32_t floating_used; /* queued beyond each channel's exclusive ones */
        uint32_t per_channel, floating; /* the process's settings at creation */
        bool closed;
        bool failed;          /* a remote producer's connection was lost */

        struct remote_out *remote; /* a producer's remote gate (not in the registry) */
};

static _Atomic uint32_t ex_per_channel = WRK_DEFAULT_BUFFERS_PER_CHANNEL;
static _Atomic uint32_t ex_floating = WRK_DEFAULT_FLOATING_BUFFERS;

void wrk_exchange_set_buffers(uint32_t per_channel, uint32_t floating) {
        atomic_store(&ex_per_channel, per_channel ? per_channel : 1);
        atomic_store(&ex_floating, floating);
}

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct wrk_gate *registry;

int wrk_gate_get(const char *job, uint32_t attempt, uint32_t chain, uint32_t subtask,
                 struct wrk_gate **ret) {
        pthread_mutex_lock(&registry_mu);
        for (struct wrk_gate *g = registry; g; g = g->next_in_registry) {
                if (g->attempt == attempt && g->chain == chain && g->subtask == subtask &&
                    strcmp(g->job, job) == 0) {
                        g->refs++;
                        pthread_mutex_unlock(&registry_mu);
                        *ret = g;
                        return 0;
                }
        }
        struct wrk_gate *g = calloc(1, sizeof(*g));
        if (!g) {
                pthread_mutex_unlock(&registry_mu);
                return -ENOMEM;
        }
        snprintf(g->job, sizeof(g->job), "%s", job);
        g->attempt = attempt;
        g->chain = chain;
        g->subtask = subtask;
        g->refs = 1;
        g->per_channel = atomic_load(&ex_per_channel);
        g->floating = atomic_load(&ex_floating);
        g->cap = g->floating + 2 * g->per_channel;
        g->bufs = calloc(g->cap, sizeof(*g->bufs));
        if (!g->bufs) {
                pthread_mutex_unlock(&registry_mu);
                free(g);
                return -ENOMEM;
        }
        pthread_mutex_init(&g->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->cond, &ca);
        pthread_condattr_destroy(&ca);
        g->next_in_registry = registry;
        registry = g;
        pthread_mutex_unlock(&registry_mu);
        *ret = g;
        return 0;
}

static void gate_drop_all(struct wrk_gate *g) {
        for (uint32_t i = 0; i < g->n; i++)
                free(g->bufs[i].data);
        g->n = 0;
        if (g->chan_queued)
                memset(g->chan_queued, 0, g->n_chan * sizeof(*g->chan_queued));
        g->floating_used = 0;
}

/* Makes room for one more buffer and for channel's counter. 0 or -ENOMEM. */
static int gate_grow(struct wrk_gate *g, uint32_t channel) {
        if (channel >= g->n_chan) {
                uint32_t nc = channel + 1 > g->n_chan * 2 ? channel + 1 : g->n_chan * 2;
                uint32_t *q = realloc(g->chan_queued, nc * sizeof(*q));
                if (!q)
                        return -ENOMEM;
                memset(q + g->n_chan, 0, (nc - g->n_chan) * sizeof(*q));
                g->chan_queued = q;
                g->n_chan = nc;
        }
        if (g->n == g->cap) {
                uint32_t nc = g->cap * 2;
                struct gate_buf *nb = realloc(g->bufs, nc * sizeof(*nb));
                if (!nb)
                        return -ENOMEM;
                g->bufs = nb;
                g->cap = nc;
        }
        return 0;
}

static void remote_out_destroy(struct remote_out *ro);

void wrk_gate_unref(struct wrk_gate *g) {
        if (!g)
                return;
        if (g->remote) {
                remote_out_destroy(g->remote);
                free(g);
                return;
        }
        pthread_mutex_lock(&registry_mu);
        if (--g->refs > 0) {
                pthread_mutex_unlock(&registry_mu);
                return;
        }
        for (struct wrk_gate **p = &registry; *p; p = &(*p)->next_in_registry) {
                if (*p == g) {
                        *p = g->next_in_registry;
                        break;
                }
        }
        pthread_mutex_unlock(&registry_mu);
        gate_drop_all(g);
        free(g->bufs);
        free(g->chan_queued);
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->mu);
        free(g);
}

static void timed_wait(struct wrk_gate *g, uint64_t deadline_us) {
        struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000u),
                              .tv_nsec = (long)(deadline_us % 1000000u) * 1000};
        pthread_cond_timedwait(&g->cond, &g->mu, &ts);
}

static int remote_put(struct remote_out *ro, uint32_t channel, const void *data, size_t len,
                      const atomic_bool *cancel);

static int gate_put_until(struct wrk_gate *g, uint32_t channel, const void *data, size_t len,
                          const atomic_bool *cancel, uint64_t deadline_us);

int wrk_gate_put(struct wrk_gate *g, uint32_t channel, const void *data, size_t len,
                 const atomic_bool *cancel) {
        if (g->remote)
                return remote_put(g->remote, channel, data, len, cancel);
        return gate_put_until(g, channel, data, len, cancel, 0);
}

/* wrk_gate_put that gives up with -ETIMEDOUT at deadline_us (0 = never). */
static int gate_put_until(struct wrk_gate *g, uint32_t channel, const void *data, size_t len,
                          const atomic_bool *cancel, uint64_t deadline_us) {
        void *copy = malloc(len ? len : 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        pthread_mutex_lock(&g->mu);
        for (;;) {
                if (g->closed) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -EPIPE;
                }
                if (cancel && atomic_load(cancel)) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -ECANCELED;
                }
                /* A channel may always queue per_channel buffers (Flink's exclusive
                 * buffers: else the buffers of a channel that alignment blocks could
                 * fill the gate and keep the barrier of another channel out for ever),
                 * and beyond them take one of the gate's floating buffers. */
                if (channel >= WRK_GATE_MAX_CHANNELS) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -EINVAL;
                }
                uint32_t q = channel < g->n_chan ? g->chan_queued[channel] : 0;
                if (q < g->per_channel || g->floating_used < g->floating) {
                        if (gate_grow(g, channel) < 0) {
                                pthread_mutex_unlock(&g->mu);
                                free(copy);
                                return -ENOMEM;
                        }
                        break;
                }
                if (deadline_us && clock_mono_us() >= deadline_us) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -ETIMEDOUT;
                }
                /* short waits: a cancel flag is not a condition of this gate */
                timed_wait(g, clock_mono_us() + 20000);
        }
        g->bufs[g->n++] = (struct gate_buf){channel, len, copy};
        if (g->chan_queued[channel]++ >= g->per_channel)
                g->floating_used++;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
        return 0;
}

int wrk_gate_take(struct wrk_gate *g, uint64_t timeout_us, wrk_gate_blocked_fn blocked,
                  void *arg, uint32_t *ret_channel, void **ret_data, size_t *ret_len) {
        uint64_t deadline = clock_mono_us() + timeout_us;
        pthread_mutex_lock(&g->mu);
        for (;;) {
                if (g->failed) {
                        pthread_mutex_unlock(&g->mu);
                        return -EPIPE;
                }
                for (uint32_t i = 0; i < g->n; i++) {
                        if (blocked && blocked(arg, g->bufs[i].channel))
                                continue;
                        struct gate_buf b = g->bufs[i];
                        memmove(&g->bufs[i], &g->bufs[i + 1], (g->n - i - 1) * sizeof(b));
                        g->n--;
                        if (--g->chan_queued[b.channel] >= g->per_channel)
                                g->floating_used--;
                        pthread_cond_broadcast(&g->cond);
                        pthread_mutex_unlock(&g->mu);
                        *ret_channel = b.channel;
                        *ret_data = b.data;
                        *ret_len = b.len;
                        return 1;
                }
                if (clock_mono_us() >= deadline)
                        break;
                timed_wait(g, deadline);
        }
        pthread_mutex_unlock(&g->mu);
        return 0;
}

void wrk_gate_wake(struct wrk_gate *g) {
        if (g->remote)
                return;
        pthread_mutex_lock(&g->mu);
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
}

void wrk_gate_close(struct wrk_gate *g) {
        if (g->remote)
                return;
        pthread_mutex_lock(&g->mu);
        g->closed = true;
        gate_drop_all(g);
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
}

uint32_t wrk_gate_queued(struct wrk_gate *g) {
        if (g->remote)
                return 0;
        pthread_mutex_lock(&g->mu);
        uint32_t n = g->n;
        pthread_mutex_unlock(&g->mu);
        return n;
}

/* ------------------------------------------------------------------------------------
 * Remote channels (exchange.h): routes, the producer side and the receiving threads. */

#define REMOTE_MAX_FRAME_BYTES (256u * 1024u)
#define REMOTE_CONNECT_TIMEOUT_US (10u * 1000000u)
#define REMOTE_HELLO_TIMEOUT_US (10u * 1000000u)
#define REMOTE_LINGER_TIMEOUT_US (30u * 1000000u)
#define REMOTE_TICK_MS 50

static char ex_cluster[RPC_CLUSTER_MAX_BYTES + 1];
static char ex_name[RPC_NAME_MAX_BYTES + 1];

struct route {
        struct route *next;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt, chain, subtask;
        char host[256];
        uint16_t port;
};

struct job_attempt {
        struct job_attempt *next;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt;
};

static pthread_mutex_t routes_mu = PTHREAD_MUTEX_INITIALIZER;
static struct route *routes;
static struct job_attempt *newest;

void wrk_exchange_configure(const char *cluster_id, const char *name) {
        snprintf(ex_cluster, sizeof(ex_cluster), "%s", cluster_id ? cluster_id : "");
        snprintf(ex_name, sizeof(ex_name), "%s", name ? name : "");
}

static void routes_drop_locked(const char *job, uint32_t below) {
        for (struct route **p = &routes; *p;) {
                struct route *r = *p;
                if (strcmp(r->job, job) == 0 && r->attempt < below) {
                        *p = r->next;
                        free(r);
                } else {
                        p = &r->next;
                }
        }
}

int wrk_exchange_routes_begin(const char *job, uint32_t attempt) {
        pthread_mutex_lock(&routes_mu);
        routes_drop_locked(job, attempt);
        struct job_attempt *j = newest;
        while (j && strcmp(j->job, job) != 0)
                j = j->next;
        if (!j) {
                j = calloc(1, sizeof(*j));
                if (!j) {
                        pthread_mutex_unlock(&routes_mu);
                        return -ENOMEM;
                }
                snprintf(j->job, sizeof(j->job), "%s", job);
                j->next = newest;
                newest = j;
        }
        if (attempt > j->attempt)
                j->attempt = attempt;
        pthread_mutex_unlock(&routes_mu);
        return 0;
}

int wrk_exchange_route_add(const char *job, uint32_t attempt, uint32_t chain, uint32_t subtask,
                           const char *host, uint16_t port) {
        struct route *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        snprintf(r->job, sizeof(r->job), "%s", job);
        snprintf(r->host, sizeof(r->host), "%s", host);
        r->attempt = attempt;
        r->chain = chain;
        r->subtask = subtask;
        r->port = port;
        pthread_mutex_lock(&routes_mu);
        r->next = routes;
        routes = r;
        pthread_mutex_unlock(&routes_mu);
        return 0;
}

void wrk_exchange_forget_job(const char *job) {
        pthread_mutex_lock(&routes_mu);
        routes_drop_locked(job, UINT32_MAX);
        for (struct job_attempt **p = &newest; *p; p = &(*p)->next) {
                if (strcmp((*p)->job, job) == 0) {
                        struct job_attempt *j = *p;
                        *p = j->next;
                        free(j);
                        break;
                }
        }
        pthread_mutex_unlock(&routes_mu);
}

/* The newest attempt this worker was deployed for, 0 when unknown. */
static uint32_t newest_attempt(const char *job) {
        uint32_t a = 0;
        pthread_mutex_lock(&routes_mu);
        for (struct job_attempt *j = newest; j; j = j->next)
                if (strcmp(j->job, job) == 0)
                        a = j->attempt;
        pthread_mutex_unlock(&routes_mu);
        return a;
}

/* ---- blocking frame I/O on one socket ---- */

struct frame_io {
        int fd;
        unsigned char *buf;
        size_t len, cap, consumed;
        msgpack_unpacked up;
};

static void fio_init(struct frame_io *io, int fd) {
        memset(io, 0, sizeof(*io));
        io->fd = fd;
        msgpack_unpacked_init(&io->up);
}

static void fio_finish(struct frame_io *io) {
        msgpack_unpacked_destroy(&io->up);
        free(io->buf);
        io->buf = NULL;
        if (io->fd >= 0)
                close(io->fd);
        io->fd = -1;
}

static bool canceled(const atomic_bool *cancel) {
        return cancel && atomic_load(cancel);
}

static int fio_write(struct frame_io *io, const void *data, size_t len,
                     const atomic_bool *cancel) {
        const unsigned char *p = data;
        while (len > 0) {
                if (canceled(cancel))
                        return -ECANCELED;
                ssize_t w = send(io->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                        p += w;
                        len -= (size_t)w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        struct pollfd pfd = {.fd = io->fd, .events = POLLOUT};
                        poll(&pfd, 1, REMOTE_TICK_MS);
                        continue;
                }
                return -EPIPE;
        }
        return 0;
}

/* Sends a frame: header fields, then nfields pairs packed by fill(pk, arg). */
static int fio_send(struct frame_io *io, const char *type, uint32_t nfields,
                    void (*fill)(msgpack_packer *pk, const void *arg), const void *arg,
                    const atomic_bool *cancel) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        static const char zero[4];
        msgpack_sbuffer_write(&sb, zero, 4);
        msgpack_pack_map(&pk, 3 + nfields);
        msg_pack_kv_u64(&pk, "v", RPC_PROTOCOL_VERSION);
        msg_pack_kv_str(&pk, "t", type);
        msg_pack_kv_u64(&pk, "id", 0);
        if (fill)
                fill(&pk, arg);
        if (!sb.data) {
                msgpack_sbuffer_destroy(&sb);
                return -ENOMEM;
        }
        uint32_t body = (uint32_t)(sb.size - 4);
        sb.data[0] = (char)(body >> 24);
        sb.data[1] = (char)(body >> 16);
        sb.data[2] = (char)(body >> 8);
        sb.data[3] = (char)body;
        int r = fio_write(io, sb.data, sb.size, cancel);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* Reads the next frame. 1 and *ret (borrowing from io until the next read), 0 when
 * deadline_us (0 = none) passed, -ECANCELED, -EPIPE (closed or failed), -EBADMSG /
 * -EMSGSIZE (malformed). */
static int fio_read(struct frame_io *io, uint64_t deadline_us, const atomic_bool *cancel,
                    struct rpc_frame *ret) {
        if (io->consumed) {
                memmove(io->buf, io->buf + io->consumed, io->len - io->consumed);
                io->len -= io->consumed;
                io->consumed = 0;
        }
        for (;;) {
                size_t need = 0;
                int r = rpc_frame_peek(io->buf, io->len, REMOTE_MAX_FRAME_BYTES, &need);
                if (r == 0 && io->len >= need) {
                        r = rpc_frame_decode(io->buf, io->len, REMOTE_MAX_FRAME_BYTES, &io->up,
                                             ret, NULL, 0);
                        if (r < 0)
                                return r;
                        io->consumed = ret->frame_bytes;
                        return 1;
                }
                if (r < 0 && r != -EAGAIN)
                        return r;
                if (canceled(cancel))
                        return -ECANCELED;
                if (deadline_us && clock_mono_us() >= deadline_us)
                        return 0;
                size_t want = need > io->len + 4096 ? need : io->len + 65536;
                if (want > io->cap) {
                        unsigned char *nb = realloc(io->buf, want);
                        if (!nb)
                                return -ENOMEM;
                        io->buf = nb;
                        io->cap = want;
                }
                struct pollfd pfd = {.fd = io->fd, .events = POLLIN};
                int pr = poll(&pfd, 1, REMOTE_TICK_MS);
                if (pr <= 0)
                        continue;
                ssize_t n = recv(io->fd, io->buf + io->len, io->cap - io->len, MSG_DONTWAIT);
                if (n == 0)
                        return -EPIPE;
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                                continue;
                        return -EPIPE;
                }
                io->len += (size_t)n;
        }
}

static void fill_hello(msgpack_packer *pk, const void *arg) {
        (void)arg;
        msg_pack_kv_str(pk, "cluster", ex_cluster);
        msg_pack_kv_str(pk, "role", "data");
        msg_pack_kv_str(pk, "name", ex_name);
}

/* Reads and checks the peer's hello. 0 or a negative errno (-EPROTO: wrong peer). */
static int read_hello(struct frame_io *io, const atomic_bool *cancel, char *why,
                      size_t why_len) {
        struct rpc_frame f;
        int r = fio_read(io, clock_mono_us() + REMOTE_HELLO_TIMEOUT_US, cancel, &f);
        if (r == 0)
                r = -ETIMEDOUT;
        if (r < 0) {
                snprintf(why, why_len, "no hello (%s)", strerror(-r));
                return r;
        }
        char cluster[RPC_CLUSTER_MAX_BYTES + 1] = "", role[RPC_ROLE_MAX_BYTES + 1] = "";
        if (strcmp(f.type, RPC_TYPE_HELLO) != 0 || f.version != RPC_PROTOCOL_VERSION ||
            msg_get_strbuf(f.map, "cluster", cluster, sizeof(cluster)) < 0 ||
            msg_get_strbuf(f.map, "role", role, sizeof(role)) < 0 ||
            strcmp(cluster, ex_cluster) != 0 || strcmp(role, "data") != 0) {
                snprintf(why, why_len, "bad hello: type %s version %" PRIu32 " cluster '%s' "
                         "(ours '%s') role '%s'", f.type, f.version, cluster, ex_cluster, role);
                return -EPROTO;
        }
        return 0;
}

/* ---- producer side ---- */

struct remote_out {
        char job[ID_HEX_LEN + 1];
        uint32_t attempt, from_chain, from_subtask, chain, subtask;
        char host[256];
        uint16_t port;
        struct frame_io io;
        bool connected, failed, ended;
        uint32_t credits;
        uint32_t first_grant; /* the consumer's initial credits (0: none yet) */
        uint32_t channel;
};

struct data_fields {
        const struct remote_out *ro;
        uint32_t channel;
        const char *kind;
        uint64_t checkpoint;
        const void *payload;
        size_t len;
};

static void fill_route(msgpack_packer *pk, const struct remote_out *ro, uint32_t channel) {
        msg_pack_kv_str(pk, "job", ro->job);
        msg_pack_kv_u64(pk, "attempt", ro->attempt);
        msg_pack_kv_u64(pk, "from_vertex", ro->from_chain);
        msg_pack_kv_u64(pk, "from_subtask", ro->from_subtask);
        msg_pack_kv_u64(pk, "to_vertex", ro->chain);
        msg_pack_kv_u64(pk, "to_subtask", ro->subtask);
        msg_pack_kv_u64(pk, "channel", channel);
}

static void fill_open(msgpack_packer *pk, const void *arg) {
        const struct remote_out *ro = arg;
        fill_route(pk, ro, ro->channel);
}

static void fill_data(msgpack_packer *pk, const void *arg) {
        const struct data_fields *d = arg;
        fill_route(pk, d->ro, d->channel);
        msg_pack_kv_str(pk, "kind", d->kind);
        msg_pack_kv_u64(pk, "checkpoint", d->checkpoint);
        msg_pack_kv_bin(pk, "payload", d->payload, d->len);
}

static void fill_credit(msgpack_packer *pk, const void *arg) {
        msg_pack_kv_u64(pk, "n", *(const uint32_t *)arg);
}

int wrk_gate_get_output(const char *job, uint32_t attempt, uint32_t from_chain,
                        uint32_t from_subtask, uint32_t chain, uint32_t subtask,
                        struct wrk_gate **ret) {
        char host[256] = "";
        uint16_t port = 0;
        pthread_mutex_lock(&routes_mu);
        for (struct route *r = routes; r; r = r->next) {
                if (r->attempt == attempt && r->chain == chain && r->subtask == subtask &&
                    strcmp(r->job, job) == 0) {
                        snprintf(host, sizeof(host), "%s", r->host);
                        port = r->port;
                        break;
                }
        }
        pthread_mutex_unlock(&routes_mu);
        if (!port)
                return wrk_gate_get(job, attempt, chain, subtask, ret);
        struct wrk_gate *g = calloc(1, sizeof(*g));
        struct remote_out *ro = calloc(1, sizeof(*ro));
        if (!g || !ro) {
                free(g);
                free(ro);
                return -ENOMEM;
        }
        snprintf(ro->job, sizeof(ro->job), "%s", job);
        snprintf(ro->host, sizeof(ro->host), "%s", host[0] ? host : "127.0.0.1");
        ro->attempt = attempt;
        ro->from_chain = from_chain;
        ro->from_subtask = from_subtask;
        ro->chain = chain;
        ro->subtask = subtask;
        ro->port = port;
        fio_init(&ro->io, -1);
        snprintf(g->job, sizeof(g->job), "%s", job);
        g->attempt = attempt;
        g->chain = chain;
        g->subtask = subtask;
        g->refs = 1;
        g->remote = ro;
        *ret = g;
        return 0;
}

static int tcp_connect_once(const char *host, uint16_t port, const atomic_bool *cancel,
                            uint64_t deadline_us) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        char ps[8];
        snprintf(ps, sizeof(ps), "%u", (unsigned)port);
        if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai)
                return -EHOSTUNREACH;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                freeaddrinfo(ai);
                return -errno;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (r < 0 && errno != EINPROGRESS) {
                r = -errno;
                close(fd);
                return r;
        }
        while (r < 0) {
                if (canceled(cancel) || clock_mono_us() >= deadline_us) {
                        close(fd);
                        return canceled(cancel) ? -ECANCELED : -ETIMEDOUT;
                }
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, REMOTE_TICK_MS) <= 0)
                        continue;
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                        close(fd);
                        return -err;
                }
                r = 0;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
}

static int remote_connect(struct remote_out *ro, uint32_t channel, const atomic_bool *cancel) {
        uint64_t deadline = clock_mono_us() + REMOTE_CONNECT_TIMEOUT_US;
        int fd;
        for (;;) {
                fd = tcp_connect_once(ro->host, ro->port, cancel, deadline);
                if (fd >= 0 || fd == -ECANCELED || clock_mono_us() >= deadline)
                        break;
                usleep(100000); /* a task thread, not a loop thread */
        }
        if (fd < 0) {
                log_warn("-data-connect-failed peer=%s:%u job=%s attempt=%" PRIu32 ": %s",
                         ro->host, (unsigned)ro->port, ro->job, ro->attempt, strerror(-fd));
                return fd == -ECANCELED ? fd : -EPIPE;
        }
        ro->io.fd = fd;
        ro->channel = channel;
        char why[512];
        int r = fio_send(&ro->io, RPC_TYPE_HELLO, 3, fill_hello, NULL, cancel);
        if (r == 0)
                r = read_hello(&ro->io, cancel, why, sizeof(why));
        else
                snprintf(why, sizeof(why), "sending the hello failed");
        if (r == 0)
                r = fio_send(&ro->io, "open", 7, fill_open, ro, cancel);
        if (r < 0) {
                if (r != -ECANCELED)
                        log_warn("-data-connect-failed peer=%s:%u job=%s: %s", ro->host,
                                 (unsigned)ro->port, ro->job, why);
                return r == -ECANCELED ? r : -EPIPE;
        }
        ro->connected = true;
        log_debug("+data-connected peer=%s:%u job=%s attempt=%" PRIu32 " to=%" PRIu32 "/%" PRIu32,
                  ro->host, (unsigned)ro->port, ro->job, ro->attempt, ro->chain, ro->subtask);
        return 0;
}

/* Reads credit frames: waits for one while wait is set. */
static int remote_read_credits(struct remote_out *ro, bool wait, const atomic_bool *cancel,
                               uint64_t deadline_us) {
        for (;;) {
                struct rpc_frame f;
                int r = fio_read(&ro->io, wait ? deadline_us : 1, cancel, &f);
                if (r <= 0)
                        return r;
                uint32_t n = 0;
                if (strcmp(f.type, "credit") != 0 || msg_get_u32(f.map, "n", &n) < 0)
                        return -EBADMSG;
                if (ro->first_grant == 0)
                        ro->first_grant = n;
                ro->credits += n;
                wait = false;
        }
}

static int remote_put(struct remote_out *ro, uint32_t channel, const void *data, size_t len,
                      const atomic_bool *cancel) {
        if (ro->failed)
                return -EPIPE;
        int r = 0;
        if (!ro->connected)
                r = remote_connect(ro, channel, cancel);
        while (r == 0 && ro->credits == 0) {
                r = remote_read_credits(ro, true, cancel, 0);
                if (r == 0 && ro->credits == 0)
                        continue;
        }
        /* the kind, from the entries: end and barrier are always a buffer's last entry */
        struct data_fields d = {.ro = ro, .channel = channel, .kind = "data",
                                .payload = data, .len = len};
        if (r == 0) {
                size_t pos = 0;
                struct wrk_entry e;
                while (wrk_buffer_next(data, len, &pos, &e) == 1) {
                        if (e.type == WRK_ENTRY_END) {
                                d.kind = "end";
                        } else if (e.type == WRK_ENTRY_BARRIER) {
                                d.kind = "barrier";
                                d.checkpoint = e.checkpoint_id;
                        }
                }
                r = fio_send(&ro->io, "data", 10, fill_data, &d, cancel);
        }
        if (r < 0) {
                if (r != -ECANCELED)
                        log_warn("-data-connection-lost peer=%s:%u job=%s attempt=%" PRIu32
                                 " to=%" PRIu32 "/%" PRIu32 ": %s", ro->host, (unsigned)ro->port,
                                 ro->job, ro->attempt, ro->chain, ro->subtask, strerror(-r));
                ro->failed = true;
                return r == -ECANCELED ? r : -EPIPE;
        }
        ro->credits--;
        if (strcmp(d.kind, "end") == 0)
                ro->ended = true;
        return 0;
}

static void remote_out_destroy(struct remote_out *ro) {
        if (!ro)
                return;
        if (ro->connected && ro->ended && !ro->failed) {
                /* every credit back = every buffer is in the consumer's gate; closing
                 * with unread credits in our receive queue would reset the connection */
                uint64_t deadline = clock_mono_us() + REMOTE_LINGER_TIMEOUT_US;
                while (ro->credits < ro->first_grant && clock_mono_us() < deadline)
                        if (remote_read_credits(ro, true, NULL, deadline) < 0)
                                break;
        }
        fio_finish(&ro->io);
        free(ro);
}

/* ---- consumer side: one thread per accepted connection ---- */

static void *serve_main(void *arg) {
        struct frame_io io;
        fio_init(&io, (int)(intptr_t)arg);
        struct wrk_gate *g = NULL;
        bool ended = false;
        char why[512] = "";
        char job[ID_HEX_LEN + 1] = "";
        uint32_t attempt = 0, chain = 0, subtask = 0, channel = 0;
        int r = read_hello(&io, NULL, why, sizeof(why));
        if (r == 0)
                r = fio_send(&io, RPC_TYPE_HELLO, 3, fill_hello, NULL, NULL);
        struct rpc_frame f;
        if (r == 0) {
                r = fio_read(&io, clock_mono_us() + REMOTE_HELLO_TIMEOUT_US, NULL, &f);
                if (r == 0)
                        r = -ETIMEDOUT;
                if (r > 0 && (strcmp(f.type, "open") != 0 ||
                              msg_get_strbuf(f.map, "job", job, sizeof(job)) < 0 ||
                              msg_get_u32(f.map, "attempt", &attempt) < 0 ||
                              msg_get_u32(f.map, "to_vertex", &chain) < 0 ||
                              msg_get_u32(f.map, "to_subtask", &subtask) < 0 ||
                              msg_get_u32(f.map, "channel", &channel) < 0 ||
                              channel >= WRK_GATE_MAX_CHANNELS ||
                              strlen(job) != ID_HEX_LEN))
                        r = -EBADMSG;
                if (r < 0)
                        snprintf(why, sizeof(why), "no valid open (%s)", strerror(-r));
                else
                        r = 0;
        }
        if (r == 0 && newest_attempt(job) > attempt) {
                snprintf(why, sizeof(why), "stale attempt %" PRIu32 " < %" PRIu32 " of job %s",
                         attempt, newest_attempt(job), job);
                r = -ESTALE;
        }
        if (r == 0)
                r = wrk_gate_get(job, attempt, chain, subtask, &g);
        uint32_t grant = atomic_load(&ex_per_channel);
        if (r == 0)
                r = fio_send(&io, "credit", 1, fill_credit, &grant, NULL);
        if (r < 0) {
                log_warn("-data-connection-refused: %s", why[0] ? why : strerror(-r));
                goto out;
        }
        log_debug("+data-channel-open job=%s attempt=%" PRIu32 " to=%" PRIu32 "/%" PRIu32
                  " channel=%" PRIu32, job, attempt, chain, subtask, channel);
        for (;;) {
                r = fio_read(&io, 0, NULL, &f);
                if (r < 0)
                        break;
                const void *payload = NULL;
                size_t len = 0;
                char fjob[ID_HEX_LEN + 1] = "", kind[16] = "";
                uint32_t fa = 0, fc = 0, fs = 0, fch = 0;
                if (strcmp(f.type, "data") != 0 ||
                    msg_get_strbuf(f.map, "job", fjob, sizeof(fjob)) < 0 ||
                    msg_get_u32(f.map, "attempt", &fa) < 0 ||
                    msg_get_u32(f.map, "to_vertex", &fc) < 0 ||
                    msg_get_u32(f.map, "to_subtask", &fs) < 0 ||
                    msg_get_u32(f.map, "channel", &fch) < 0 ||
                    msg_get_strbuf(f.map, "kind", kind, sizeof(kind)) < 0 ||
                    msg_get_bin(f.map, "payload", &payload, &len) < 0 ||
                    len > WRK_BUFFER_BYTES || strcmp(fjob, job) != 0 || fa != attempt ||
                    fc != chain || fs != subtask || fch != channel) {
                        r = -EBADMSG;
                        break;
                }
                if (newest_attempt(job) > attempt) {
                        r = -ESTALE; /* a newer attempt was deployed: drop the old one */
                        break;
                }
                /* waits while the gate is full (backpressure: no credit goes back),
                 * but not for ever for a consumer that never comes: a newer attempt or
                 * a producer that hung up ends the wait */
                while ((r = gate_put_until(g, channel, payload, len, NULL,
                                           clock_mono_us() + 500000)) == -ETIMEDOUT) {
                        char b;
                        if (newest_attempt(job) > attempt) {
                                r = -ESTALE;
                                break;
                        }
                        if (recv(io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
                                r = -ECONNRESET;
                                break;
                        }
                }
                if (r < 0)
                        break; /* the consumer is gone: closing tells the producer */
                if (strcmp(kind, "end") == 0)
                        ended = true;
                uint32_t one = 1;
                if ((r = fio_send(&io, "credit", 1, fill_credit, &one, NULL)) < 0)
                        break;
        }
        if (!ended && r != -EPIPE) {
                log_warn("-data-connection-lost job=%s attempt=%" PRIu32 " to=%" PRIu32 "/%"
                         PRIu32 " channel=%" PRIu32 ": %s", job, attempt, chain, subtask, channel,
                         strerror(-r));
                wrk_gate_fail(g);
        } else if (!ended) {
                /* EPIPE: either the peer closed before its end, or our consumer is gone */
                log_warn("-data-connection-lost job=%s attempt=%" PRIu32 " to=%" PRIu32 "/%"
                         PRIu32 " channel=%" PRIu32 ": closed before end of input", job,
                         attempt, chain, subtask, channel);
                wrk_gate_fail(g);
        }
out:
        wrk_gate_unref(g);
        fio_finish(&io);
        return NULL;
}

int wrk_exchange_serve(int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int r = pthread_create(&t, &at, serve_main, (void *)(intptr_t)fd);
        pthread_attr_destroy(&at);
        if (r != 0) {
                close(fd);
                return -r;
        }
        return 0;
}

void wrk_gate_fail(struct wrk_gate *g) {
        if (!g || g->remote)
                return;
        pthread_mutex_lock(&g->mu);
        g->failed = true;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
}
