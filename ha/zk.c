/* The ZooKeeper session on a libevent loop. The single-threaded client does its I/O only
 * when asked: zookeeper_interest() says which socket (it changes on every reconnect and
 * is -1 during back-off), which events and how long until the client wants to run again
 * (pings, connect timeouts); zookeeper_process() reads/writes and runs completions and
 * watchers. Every entry point here (socket, timer, heartbeat, kick) first checks for a
 * loop stall, then drives the client, then re-registers the socket and re-arms the timer.
 * An expiry is handled after the client call returns (never from inside it): the old
 * handle is closed and a new session started. */
#include "ha/zk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/err.h"

struct zk_sub {
        ha_zk_event_fn fn;
        void *userdata;
        bool dead;
        struct zk_sub *next;
};

struct zk_watch {
        char *prefix;
        size_t prefix_len;
        ha_zk_watch_fn fn;
        void *userdata;
        bool dead;
        struct zk_watch *next;
};

struct ha_zk {
        struct event_base *base;
        char *connect_string;
        char *digest;
        int requested_timeout_ms;
        enum ha_zk_acl acl_kind;
        void (*client_log)(const char *message);

        zhandle_t *zh;
        struct event *io_ev;
        struct event *timer_ev;
        struct event *heartbeat_ev;
        struct event *kick_ev;
        struct event *reopen_ev;
        int io_fd;      /* registered socket, -1 when none */
        ino_t io_ino;   /* its inode: the client may close and reopen the same number */
        short io_what;

        enum ha_zk_state state;
        bool have_session;
        int64_t session_id;
        char passwd[16];
        int negotiated_ms;
        uint64_t last_alive_us;
        uint64_t last_tick_us;

        bool expired_pending;
        bool auth_failed_pending;
        bool closing;
        int depth;              /* nesting of our entry points */
        bool destroy_pending;

        struct zk_sub *subs;
        struct zk_watch *watches;
        int dispatching;

        char *drop_after[8]; /* test hook: cut the connection after a write to these */
};

static void zk_pump(struct ha_zk *zk);

const char *ha_zk_state_name(enum ha_zk_state s) {
        switch (s) {
        case HA_ZK_CONNECTING:
                return "connecting";
        case HA_ZK_CONNECTED:
                return "connected";
        case HA_ZK_EXPIRED:
                return "expired";
        case HA_ZK_AUTH_FAILED:
                return "auth-failed";
        }
        return "unknown";
}

/* ---- subscribers and watch routing ---------------------------------------------- */

static void zk_compact(struct ha_zk *zk) {
        if (zk->dispatching)
                return;
        for (struct zk_sub **p = &zk->subs; *p;) {
                struct zk_sub *s = *p;
                if (s->dead) {
                        *p = s->next;
                        free(s);
                } else {
                        p = &s->next;
                }
        }
        for (struct zk_watch **p = &zk->watches; *p;) {
                struct zk_watch *w = *p;
                if (w->dead) {
                        *p = w->next;
                        free(w->prefix);
                        free(w);
                } else {
                        p = &w->next;
                }
        }
}

/* Delivers ev to the subscribers that existed when it started, in subscription order. */
static void zk_emit(struct ha_zk *zk, const struct ha_zk_event *ev) {
        struct zk_sub *last = zk->subs;
        while (last && last->next)
                last = last->next;
        zk->dispatching++;
        for (struct zk_sub *s = zk->subs; s && !zk->destroy_pending; s = s->next) {
                if (!s->dead)
                        s->fn(zk, ev, s->userdata);
                if (s == last)
                        break;
        }
        zk->dispatching--;
        zk_compact(zk);
}

int ha_zk_subscribe(struct ha_zk *zk, ha_zk_event_fn fn, void *userdata) {
        struct zk_sub *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fn = fn;
        s->userdata = userdata;
        struct zk_sub **p = &zk->subs;
        while (*p)
                p = &(*p)->next;
        *p = s;
        return 0;
}

void ha_zk_unsubscribe(struct ha_zk *zk, ha_zk_event_fn fn, void *userdata) {
        if (!zk)
                return;
        for (struct zk_sub *s = zk->subs; s; s = s->next)
                if (!s->dead && s->fn == fn && s->userdata == userdata)
                        s->dead = true;
        zk_compact(zk);
}

int ha_zk_watch_add(struct ha_zk *zk, const char *prefix, ha_zk_watch_fn fn, void *userdata) {
        struct zk_watch *w = calloc(1, sizeof(*w));
        if (!w || !(w->prefix = strdup(prefix))) {
                free(w);
                return -ENOMEM;
        }
        w->prefix_len = strlen(prefix);
        w->fn = fn;
        w->userdata = userdata;
        struct zk_watch **p = &zk->watches;
        while (*p)
                p = &(*p)->next;
        *p = w;
        return 0;
}

void ha_zk_watch_remove(struct ha_zk *zk, const char *prefix, ha_zk_watch_fn fn,
                        void *userdata) {
        if (!zk)
                return;
        for (struct zk_watch *w = zk->watches; w; w = w->next)
                if (!w->dead && w->fn == fn && w->userdata == userdata &&
                    strcmp(w->prefix, prefix) == 0)
                        w->dead = true;
        zk_compact(zk);
}

/* The watcher of every node watch we arm. Session events are delivered to every
 * registered watcher by the client; they are handled by zk_session_watcher only. */
static void zk_node_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
        struct ha_zk *zk = ctx;
        (void)state;
        if (type == ZOO_SESSION_EVENT || !path || zh != zk->zh || zk->closing)
                return;
        struct zk_watch *last = zk->watches;
        while (last && last->next)
                last = last->next;
        zk->dispatching++;
        for (struct zk_watch *w = zk->watches; w && !zk->destroy_pending; w = w->next) {
                if (!w->dead && strncmp(path, w->prefix, w->prefix_len) == 0 &&
                    (path[w->prefix_len] == '\0' || path[w->prefix_len] == '/'))
                        w->fn(zk, type, path, w->userdata);
                if (w == last)
                        break;
        }
        zk->dispatching--;
        zk_compact(zk);
}

/* ---- session state --------------------------------------------------------------- */

static void zk_session_watcher(zhandle_t *zh, int type, int state, const char *path,
                               void *ctx) {
        struct ha_zk *zk = ctx;
        (void)path;
        if (type != ZOO_SESSION_EVENT || zh != zk->zh || zk->closing)
                return;
        if (state == ZOO_CONNECTED_STATE) {
                const clientid_t *cid = zoo_client_id(zh);
                bool new_session = !zk->have_session || cid->client_id != zk->session_id;
                zk->have_session = true;
                zk->session_id = cid->client_id;
                memcpy(zk->passwd, cid->passwd, sizeof(zk->passwd));
                zk->negotiated_ms = zoo_recv_timeout(zh);
                zk->state = HA_ZK_CONNECTED;
                zk->last_alive_us = clock_mono_us();
                struct ha_zk_event ev = {
                        .type = HA_ZK_EVENT_CONNECTED,
                        .new_session = new_session,
                        .session_id = zk->session_id,
                };
                zk_emit(zk, &ev);
        } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
                if (zk->state == HA_ZK_CONNECTED) {
                        zk->state = HA_ZK_CONNECTING;
                        struct ha_zk_event ev = {.type = HA_ZK_EVENT_CONNECTING,
                                                 .session_id = zk->session_id};
                        zk_emit(zk, &ev);
                }
        } else if (state == ZOO_EXPIRED_SESSION_STATE) {
                zk->expired_pending = true;
        } else if (state == ZOO_AUTH_FAILED_STATE) {
                zk->auth_failed_pending = true;
        }
}

static void zk_auth_done(int rc, const void *data) {
        struct ha_zk *zk = (struct ha_zk *)data;
        if (rc == ZAUTHFAILED && !zk->closing)
                zk->auth_failed_pending = true;
}

static int zk_open(struct ha_zk *zk) {
        errno = 0;
        zhandle_t *zh = zookeeper_init2(zk->connect_string, zk_session_watcher,
                                        zk->requested_timeout_ms, NULL, zk, 0, zk->client_log);
        if (!zh)
                return errno > 0 ? -errno : -EIO;
        if (zk->digest) {
                int rc = zoo_add_auth(zh, "digest", zk->digest, (int)strlen(zk->digest),
                                      zk_auth_done, zk);
                if (rc != ZOK) {
                        zookeeper_close(zh);
                        return err_from_zk(rc);
                }
        }
        zk->zh = zh;
        return 0;
}

/* ---- socket and timers ------------------------------------------------------------- */

static void zk_io_cb(evutil_socket_t fd, short what, void *arg);

static void zk_io_unregister(struct ha_zk *zk) {
        if (zk->io_fd >= 0)
                event_del(zk->io_ev);
        zk->io_fd = -1;
        zk->io_ino = 0;
        zk->io_what = 0;
}

static void zk_io_register(struct ha_zk *zk, int fd, int interest) {
        short what = (short)(((interest & ZOOKEEPER_READ) ? EV_READ : 0) |
                             ((interest & ZOOKEEPER_WRITE) ? EV_WRITE : 0));
        ino_t ino = 0;
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0)
                ino = st.st_ino;
        if (fd == zk->io_fd && ino == zk->io_ino && what == zk->io_what)
                return;
        zk_io_unregister(zk);
        if (fd < 0 || what == 0)
                return;
        event_assign(zk->io_ev, zk->base, fd, (short)(what | EV_PERSIST), zk_io_cb, zk);
        if (event_add(zk->io_ev, NULL) == 0) {
                zk->io_fd = fd;
                zk->io_ino = ino;
                zk->io_what = what;
        }
}

static void zk_arm_timer_ms(struct ha_zk *zk, long ms) {
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        evtimer_add(zk->timer_ev, &tv);
}

static uint64_t zk_heartbeat_ms(const struct ha_zk *zk) {
        uint64_t ms = (uint64_t)ha_zk_lease_ms(zk) / 4;
        return ms < 10 ? 10 : ms > 250 ? 250 : ms;
}

static void zk_arm_heartbeat(struct ha_zk *zk) {
        uint64_t ms = zk_heartbeat_ms(zk);
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(zk->heartbeat_ev, &tv);
}

/* A session expiry or an authentication failure seen by the last client call. Returns
 * true if one was handled (the handle was replaced or stopped). */
static bool zk_handle_pending(struct ha_zk *zk) {
        if (zk->auth_failed_pending) {
                zk->auth_failed_pending = false;
                zk->expired_pending = false;
                zk_io_unregister(zk);
                evtimer_del(zk->timer_ev);
                zk->state = HA_ZK_AUTH_FAILED;
                zk->last_alive_us = 0;
                struct ha_zk_event ev = {.type = HA_ZK_EVENT_AUTH_FAILED,
                                         .session_id = zk->session_id};
                zk_emit(zk, &ev);
                return true;
        }
        if (!zk->expired_pending)
                return false;
        zk->expired_pending = false;
        zhandle_t *old = zk->zh;
        zk->zh = NULL;
        zk_io_unregister(zk);
        evtimer_del(zk->timer_ev);
        int64_t old_id = zk->session_id;
        zk->have_session = false;
        zk->session_id = 0;
        memset(zk->passwd, 0, sizeof(zk->passwd));
        zk->last_alive_us = 0;
        zk->state = HA_ZK_EXPIRED;
        /* Not connected: this does not block. Requests still queued complete with
         * ZCLOSING; their owners see the handle gone (zk->zh is NULL). */
        zookeeper_close(old);
        int r = zk_open(zk);
        struct ha_zk_event ev = {.type = HA_ZK_EVENT_EXPIRED, .session_id = old_id};
        zk_emit(zk, &ev);
        if (zk->destroy_pending)
                return true;
        if (r < 0) {
                struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
                evtimer_add(zk->reopen_ev, &tv);
        } else {
                ha_zk_kick(zk);
        }
        return true;
}

static void zk_pump(struct ha_zk *zk) {
        if (!zk->zh || zk->destroy_pending || zk->state == HA_ZK_AUTH_FAILED)
                return;
        int fd = -1, interest = 0;
        struct timeval tv = {0, 0};
        int rc = zookeeper_interest(zk->zh, &fd, &interest, &tv);
        if (zk_handle_pending(zk))
                return;
        /* The client can drop a connection without a session event (a failed send);
         * keep our state in step with its own. */
        if (zk->state == HA_ZK_CONNECTED && zoo_state(zk->zh) != ZOO_CONNECTED_STATE) {
                zk->state = HA_ZK_CONNECTING;
                struct ha_zk_event ev = {.type = HA_ZK_EVENT_CONNECTING,
                                         .session_id = zk->session_id};
                zk_emit(zk, &ev);
                if (zk->destroy_pending)
                        return;
        }
        if (rc != ZOK) {
                /* The client gave up on this connection (timeout, refused, ...) and closed
                 * the socket; ask again shortly rather than spin. */
                zk_io_unregister(zk);
                zk_arm_timer_ms(zk, 10);
                return;
        }
        zk_io_register(zk, fd, interest);
        long ms = (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        zk_arm_timer_ms(zk, ms < 1 ? 1 : ms);
}

static void zk_enter(struct ha_zk *zk) {
        zk->depth++;
        if (zk->depth == 1)
                ha_zk_poll_stall(zk);
}

/* Returns true if zk was freed: the caller must not touch it any more. */
static bool zk_free_if_pending(struct ha_zk *zk);

static bool zk_leave(struct ha_zk *zk) {
        zk->depth--;
        return zk_free_if_pending(zk);
}

static void zk_io_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_zk *zk = arg;
        (void)fd;
        zk_enter(zk);
        if (zk->zh && !zk->destroy_pending) {
                int events = ((what & EV_READ) ? ZOOKEEPER_READ : 0) |
                             ((what & EV_WRITE) ? ZOOKEEPER_WRITE : 0);
                int rc = zookeeper_process(zk->zh, events);
                /* ZOK with a read interest means a whole message arrived. */
                if ((events & ZOOKEEPER_READ) && rc == ZOK && zk->zh &&
                    zk->state == HA_ZK_CONNECTED && zoo_state(zk->zh) == ZOO_CONNECTED_STATE)
                        zk->last_alive_us = clock_mono_us();
                if (!zk->destroy_pending && !zk_handle_pending(zk))
                        zk_pump(zk);
        }
        zk_leave(zk);
}

static void zk_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_zk *zk = arg;
        (void)fd;
        (void)what;
        zk_enter(zk);
        zk_pump(zk);
        zk_leave(zk);
}

static void zk_heartbeat_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_zk *zk = arg;
        (void)fd;
        (void)what;
        zk_enter(zk);
        if (!zk->destroy_pending)
                zk_arm_heartbeat(zk);
        zk_leave(zk);
}

static void zk_reopen_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_zk *zk = arg;
        (void)fd;
        (void)what;
        zk_enter(zk);
        if (!zk->zh && !zk->destroy_pending) {
                if (zk_open(zk) < 0) {
                        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
                        evtimer_add(zk->reopen_ev, &tv);
                } else {
                        zk_pump(zk);
                }
        }
        zk_leave(zk);
}

void ha_zk_kick(struct ha_zk *zk) {
        if (zk && !zk->closing && zk->kick_ev)
                event_active(zk->kick_ev, EV_TIMEOUT, 1);
}

/* ---- lifetime ------------------------------------------------------------------------ */

static void zk_free(struct ha_zk *zk) {
        zk->closing = true;
        zhandle_t *zh = zk->zh;
        zk->zh = NULL;
        if (zh)
                zookeeper_close(zh);
        if (zk->io_ev)
                event_free(zk->io_ev);
        if (zk->timer_ev)
                event_free(zk->timer_ev);
        if (zk->heartbeat_ev)
                event_free(zk->heartbeat_ev);
        if (zk->kick_ev)
                event_free(zk->kick_ev);
        if (zk->reopen_ev)
                event_free(zk->reopen_ev);
        zk->dispatching = 0;
        for (struct zk_sub *s = zk->subs; s; s = s->next)
                s->dead = true;
        for (struct zk_watch *w = zk->watches; w; w = w->next)
                w->dead = true;
        zk_compact(zk);
        for (size_t i = 0; i < sizeof(zk->drop_after) / sizeof(zk->drop_after[0]); i++)
                free(zk->drop_after[i]);
        free(zk->connect_string);
        free(zk->digest);
        free(zk);
}

static bool zk_free_if_pending(struct ha_zk *zk) {
        if (zk->depth > 0 || !zk->destroy_pending)
                return false;
        zk_free(zk);
        return true;
}

void ha_zk_destroy(struct ha_zk *zk) {
        if (!zk)
                return;
        zk->destroy_pending = true;
        zk_free_if_pending(zk);
}

int ha_zk_create(struct event_base *base, const char *connect_string,
                 const struct ha_zk_options *options, ha_zk_event_fn on_event, void *userdata,
                 struct ha_zk **ret) {
        if (!base || !connect_string || !*connect_string || !options ||
            options->session_timeout_ms <= 0)
                return -EINVAL;
        if (options->digest && !strchr(options->digest, ':'))
                return -EINVAL;
        if (options->acl == HA_ZK_ACL_CREATOR && !options->digest)
                return -EINVAL;
        int r = -ENOMEM;
        struct ha_zk *zk = calloc(1, sizeof(*zk));
        if (!zk)
                return -ENOMEM;
        zk->base = base;
        zk->io_fd = -1;
        zk->requested_timeout_ms = options->session_timeout_ms;
        zk->acl_kind = options->acl;
        zk->client_log = options->client_log;
        zk->state = HA_ZK_CONNECTING;
        if (!(zk->connect_string = strdup(connect_string)))
                goto fail;
        if (options->digest && !(zk->digest = strdup(options->digest)))
                goto fail;
        zk->io_ev = event_new(base, -1, 0, zk_io_cb, zk);
        zk->timer_ev = evtimer_new(base, zk_timer_cb, zk);
        zk->heartbeat_ev = evtimer_new(base, zk_heartbeat_cb, zk);
        zk->kick_ev = event_new(base, -1, 0, zk_timer_cb, zk);
        zk->reopen_ev = evtimer_new(base, zk_reopen_cb, zk);
        if (!zk->io_ev || !zk->timer_ev || !zk->heartbeat_ev || !zk->kick_ev || !zk->reopen_ev)
                goto fail;
        if (on_event && (r = ha_zk_subscribe(zk, on_event, userdata)) < 0)
                goto fail;
        if ((r = zk_open(zk)) < 0)
                goto fail;
        zk_arm_heartbeat(zk);
        ha_zk_kick(zk);
        *ret = zk;
        return 0;
fail:
        zk_free(zk);
        return r;
}

/* ---- accessors ----------------------------------------------------------------------- */

enum ha_zk_state ha_zk_state(const struct ha_zk *zk) {
        return zk->state;
}

struct event_base *ha_zk_event_base(const struct ha_zk *zk) {
        return zk->base;
}

int ha_zk_session_timeout_ms(const struct ha_zk *zk) {
        return zk->negotiated_ms > 0 ? zk->negotiated_ms : zk->requested_timeout_ms;
}

int ha_zk_lease_ms(const struct ha_zk *zk) {
        return ha_zk_session_timeout_ms(zk) * 3 / 4;
}

uint64_t ha_zk_last_alive_us(const struct ha_zk *zk) {
        return zk->last_alive_us;
}

int ha_zk_session(const struct ha_zk *zk, int64_t *ret_id, char ret_passwd[16]) {
        if (!zk->have_session)
                return -ENOTCONN;
        if (ret_id)
                *ret_id = zk->session_id;
        if (ret_passwd)
                memcpy(ret_passwd, zk->passwd, sizeof(zk->passwd));
        return 0;
}

bool ha_zk_poll_stall(struct ha_zk *zk) {
        uint64_t now = clock_mono_us();
        uint64_t prev = zk->last_tick_us;
        zk->last_tick_us = now;
        if (prev == 0 || now - prev <= (uint64_t)ha_zk_lease_ms(zk) * 1000)
                return false;
        zk->last_alive_us = 0;
        struct ha_zk_event ev = {.type = HA_ZK_EVENT_STALL,
                                 .session_id = zk->session_id,
                                 .stall_ms = (now - prev) / 1000};
        zk->depth++;
        zk_emit(zk, &ev);
        zk->depth--;
        /* A destroy requested by a subscriber completes when the outermost entry point
         * returns; when called directly by a module, right here is that point. */
        return true;
}

const struct ACL_vector *ha_zk_acl(const struct ha_zk *zk) {
        return zk->acl_kind == HA_ZK_ACL_CREATOR ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
}

zhandle_t *ha_zk_handle(const struct ha_zk *zk) {
        return zk->closing ? NULL : zk->zh;
}

/* ---- request wrappers ---------------------------------------------------------------- */

int ha_zk_inject_drop_after(struct ha_zk *zk, const char *path_prefix) {
        for (size_t i = 0; i < sizeof(zk->drop_after) / sizeof(zk->drop_after[0]); i++)
                if (!zk->drop_after[i])
                        return (zk->drop_after[i] = strdup(path_prefix)) ? 0 : -ENOMEM;
        return -E2BIG;
}

/* The test hook: the request was queued and (normally) already written to the socket
 * by the client; cutting the connection now leaves its outcome unknown to the caller.
 * shutdown() is not enough: the answer can still arrive and be read. So the client's
 * descriptor is pointed at a fresh unconnected socket (dup2): the real connection is
 * closed at once, the client's next read fails and it reconnects as after any loss. */
static void zk_maybe_drop(struct ha_zk *zk, const char *path) {
        if (zk->io_fd < 0 || zk->state != HA_ZK_CONNECTED)
                return; /* stays armed for a write on a live connection */
        for (size_t i = 0; path && i < sizeof(zk->drop_after) / sizeof(zk->drop_after[0]); i++) {
                char *p = zk->drop_after[i];
                if (!p || strncmp(path, p, strlen(p)) != 0)
                        continue;
                free(p);
                zk->drop_after[i] = NULL;
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0 || dup2(s, zk->io_fd) < 0)
                        shutdown(zk->io_fd, SHUT_RDWR);
                if (s >= 0)
                        close(s);
                ha_zk_kick(zk);
                return;
        }
}

static int zk_queued(struct ha_zk *zk, int rc) {
        ha_zk_kick(zk);
        return rc == ZINVALIDSTATE ? -ENOTCONN : ha_zk_error(rc);
}

int ha_zk_acreate(struct ha_zk *zk, const char *path, const void *data, int len, int flags,
                  string_completion_t done, const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        int r = zk_queued(zk, zoo_acreate(zh, path, data, len, ha_zk_acl(zk), flags, done, ctx));
        if (r == 0)
                zk_maybe_drop(zk, path);
        return r;
}

int ha_zk_adelete(struct ha_zk *zk, const char *path, int version, void_completion_t done,
                  const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        int r = zk_queued(zk, zoo_adelete(zh, path, version, done, ctx));
        if (r == 0)
                zk_maybe_drop(zk, path);
        return r;
}

int ha_zk_aget(struct ha_zk *zk, const char *path, bool watch, data_completion_t done,
               const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        return zk_queued(zk, zoo_awget(zh, path, watch ? zk_node_watcher : NULL,
                                       watch ? zk : NULL, done, ctx));
}

int ha_zk_aexists(struct ha_zk *zk, const char *path, bool watch, stat_completion_t done,
                  const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        return zk_queued(zk, zoo_awexists(zh, path, watch ? zk_node_watcher : NULL,
                                          watch ? zk : NULL, done, ctx));
}

int ha_zk_achildren(struct ha_zk *zk, const char *path, bool watch, strings_completion_t done,
                    const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        return zk_queued(zk, zoo_awget_children(zh, path, watch ? zk_node_watcher : NULL,
                                                watch ? zk : NULL, done, ctx));
}

int ha_zk_async_sync(struct ha_zk *zk, const char *path, string_completion_t done,
                     const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        return zk_queued(zk, zoo_async(zh, path, done, ctx));
}

int ha_zk_amulti(struct ha_zk *zk, int count, const zoo_op_t *ops, zoo_op_result_t *results,
                 void_completion_t done, const void *ctx) {
        zhandle_t *zh = ha_zk_handle(zk);
        if (!zh)
                return -ENOTCONN;
        int r = zk_queued(zk, zoo_amulti(zh, count, ops, results, done, ctx));
        for (int i = 0; r == 0 && i < count; i++) {
                const char *path = ops[i].type == ZOO_CREATE_OP    ? ops[i].create_op.path
                                   : ops[i].type == ZOO_DELETE_OP  ? ops[i].delete_op.path
                                   : ops[i].type == ZOO_SETDATA_OP ? ops[i].set_op.path
                                                                   : NULL;
                zk_maybe_drop(zk, path);
        }
        return r;
}

int ha_zk_error(int rc) {
        return rc == ZSESSIONMOVED ? -ECONNRESET : err_from_zk(rc);
}

bool ha_zk_outcome_unknown(int rc) {
        return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONMOVED;
}

int ha_zk_multi_failed_op(int rc, int count, const zoo_op_result_t *results) {
        switch (rc) {
        case ZOK:
        case ZCONNECTIONLOSS:
        case ZOPERATIONTIMEOUT:
        case ZSESSIONMOVED:
        case ZSESSIONEXPIRED:
        case ZCLOSING:
        case ZINVALIDSTATE:
        case ZMARSHALLINGERROR:
        case ZSYSTEMERROR:
                return -1;
        default:
                break;
        }
        for (int i = 0; i < count; i++)
                if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY)
                        return i;
        return -1;
}

/* ---- ensure_path --------------------------------------------------------------------- */

struct ensure_ctx {
        int remaining;
        int first_error;
        ha_zk_done_fn done;
        void *ctx;
};

static void ensure_one_done(int rc, const char *value, const void *data) {
        struct ensure_ctx *c = (struct ensure_ctx *)data;
        (void)value;
        int r = rc == ZNODEEXISTS ? 0 : ha_zk_error(rc);
        if (r < 0 && c->first_error == 0)
                c->first_error = r;
        if (--c->remaining == 0) {
                if (c->done)
                        c->done(c->first_error, c->ctx);
                free(c);
        }
}

int ha_zk_ensure_path(struct ha_zk *zk, const char *path, ha_zk_done_fn done, void *ctx) {
        size_t len = path ? strlen(path) : 0;
        if (len < 2 || path[0] != '/' || path[len - 1] == '/' || len >= 1024)
                return -EINVAL;
        struct ensure_ctx *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->done = done;
        c->ctx = ctx;
        /* Requests of one session are processed in order, so the creates can all be
         * queued at once: each parent exists by the time its child is created. */
        char prefix[1024];
        int r = 0;
        c->remaining = 1; /* held until all are queued */
        for (size_t i = 1; i <= len; i++) {
                if (i < len && path[i] != '/')
                        continue;
                memcpy(prefix, path, i);
                prefix[i] = '\0';
                c->remaining++;
                r = ha_zk_acreate(zk, prefix, "", 0, 0, ensure_one_done, c);
                if (r < 0) {
                        c->remaining--;
                        break;
                }
        }
        if (--c->remaining == 0) {
                /* Nothing was queued: report synchronously through the return value. */
                free(c);
                return r < 0 ? r : -EIO;
        }
        if (r < 0 && c->first_error == 0)
                c->first_error = r;
        return 0;
}
