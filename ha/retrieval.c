/* Leader retrieval (see retrieval.h). One read of <base>/leader at a time: a get with a
 * data watch when the node exists, an exists watch when it does not; every watch event,
 * reconnect and new session triggers a read; a change is reported once. */
#include "ha/retrieval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "ha/zk.h"

#define RT_RETRY_MS 500

struct ha_retrieval {
        struct ha_zk *zk;
        char base[512];
        char path[560];
        ha_retrieval_fn on_change;
        ha_retrieval_error_fn on_error;
        void *userdata;

        bool known;           /* a leader was reported (and not "none" since) */
        bool reported;        /* anything was reported yet */
        struct ha_leader_info leader;
        bool busy;
        bool rerun;
        struct event *retry_ev;
        int refs;
        int depth;
        bool destroy_pending;
        bool dead;
};

static void rt_read(struct ha_retrieval *r);

static void rt_unref(struct ha_retrieval *r) {
        if (--r->refs == 0)
                free(r);
}

static void rt_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata);
static void rt_watch(struct ha_zk *zk, int type, const char *path, void *userdata);

static void rt_kill(struct ha_retrieval *r) {
        if (r->dead)
                return;
        r->dead = true;
        ha_zk_unsubscribe(r->zk, rt_zk_event, r);
        ha_zk_watch_remove(r->zk, r->path, rt_watch, r);
        if (r->retry_ev)
                event_free(r->retry_ev);
        r->retry_ev = NULL;
        rt_unref(r);
}

static void rt_enter(struct ha_retrieval *r) {
        r->refs++;
        r->depth++;
}

static void rt_leave(struct ha_retrieval *r) {
        if (--r->depth == 0 && r->destroy_pending)
                rt_kill(r);
        rt_unref(r);
}

void ha_retrieval_destroy(struct ha_retrieval *r) {
        if (!r || r->dead)
                return;
        r->destroy_pending = true;
        if (r->depth == 0)
                rt_kill(r);
}

static bool rt_alive(const struct ha_retrieval *r) {
        return !r->dead && !r->destroy_pending;
}

static bool same_leader(const struct ha_leader_info *a, const struct ha_leader_info *b) {
        return a->epoch == b->epoch && a->session_id == b->session_id &&
               strcmp(a->id, b->id) == 0 && strcmp(a->rpc, b->rpc) == 0 &&
               strcmp(a->rest, b->rest) == 0;
}

static void rt_report(struct ha_retrieval *r, const struct ha_leader_info *li) {
        if (r->reported && ((!li && !r->known) || (li && r->known && same_leader(li, &r->leader))))
                return;
        r->reported = true;
        r->known = li != NULL;
        if (li)
                r->leader = *li;
        if (r->on_change)
                r->on_change(r, li, r->userdata);
}

static void rt_error(struct ha_retrieval *r, int err, const char *what) {
        if (r->on_error)
                r->on_error(r, err, what, r->userdata);
}

static void rt_done(struct ha_retrieval *r) {
        r->busy = false;
        if (r->rerun && rt_alive(r))
                rt_read(r);
}

static void rt_retry_later(struct ha_retrieval *r) {
        r->busy = false;
        if (!rt_alive(r))
                return;
        struct timeval tv = {0, RT_RETRY_MS * 1000};
        evtimer_add(r->retry_ev, &tv);
}

/* Connection trouble: the next CONNECTED event reads again. */
static bool rt_connection_trouble(int rc) {
        return ha_zk_outcome_unknown(rc) || rc == ZSESSIONEXPIRED || rc == ZCLOSING ||
               rc == ZINVALIDSTATE;
}

static void rt_exists_done(int rc, const struct Stat *stat, const void *data) {
        struct ha_retrieval *r = (struct ha_retrieval *)data;
        (void)stat;
        if (!rt_alive(r)) {
                rt_unref(r);
                return;
        }
        rt_enter(r);
        if (rc == ZNONODE) {
                rt_report(r, NULL);
                rt_done(r); /* the exists watch reports the creation */
        } else if (rc == ZOK) {
                r->busy = false;
                rt_read(r); /* created in between */
        } else if (rt_connection_trouble(rc)) {
                r->busy = false;
        } else {
                char what[640];
                snprintf(what, sizeof(what), "watching %s", r->path);
                rt_error(r, ha_zk_error(rc), what);
                rt_retry_later(r);
        }
        rt_leave(r);
        rt_unref(r);
}

static void rt_get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                        const void *data) {
        struct ha_retrieval *r = (struct ha_retrieval *)data;
        (void)stat;
        if (!rt_alive(r)) {
                rt_unref(r);
                return;
        }
        rt_enter(r);
        if (rc == ZOK) {
                struct ha_leader_info li;
                char why[256] = "";
                if (ha_leader_decode(value, value_len > 0 ? (size_t)value_len : 0, &li, why,
                                     sizeof(why)) == 0) {
                        rt_report(r, &li);
                } else {
                        char what[900];
                        snprintf(what, sizeof(what), "corrupt payload in %s: %s", r->path, why);
                        rt_error(r, -EBADMSG, what);
                        rt_report(r, NULL);
                }
                rt_done(r); /* the data watch reports the next change */
        } else if (rc == ZNONODE) {
                /* no data watch was set: watch for the creation instead */
                r->refs++;
                if (ha_zk_aexists(r->zk, r->path, true, rt_exists_done, r) < 0) {
                        r->refs--;
                        r->busy = false;
                }
        } else if (rt_connection_trouble(rc)) {
                r->busy = false;
        } else {
                char what[640];
                snprintf(what, sizeof(what), "reading %s", r->path);
                rt_error(r, ha_zk_error(rc), what);
                rt_retry_later(r);
        }
        rt_leave(r);
        rt_unref(r);
}

static void rt_read(struct ha_retrieval *r) {
        if (r->busy) {
                r->rerun = true;
                return;
        }
        if (ha_zk_state(r->zk) != HA_ZK_CONNECTED)
                return; /* the CONNECTED event reads */
        r->busy = true;
        r->rerun = false;
        r->refs++;
        if (ha_zk_aget(r->zk, r->path, true, rt_get_done, r) < 0) {
                r->refs--;
                rt_retry_later(r);
        }
}

static void rt_retry_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_retrieval *r = arg;
        (void)fd;
        (void)what;
        rt_enter(r);
        if (rt_alive(r))
                rt_read(r);
        rt_leave(r);
}

static void rt_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct ha_retrieval *r = userdata;
        (void)zk;
        if (!rt_alive(r))
                return;
        rt_enter(r);
        if (ev->type == HA_ZK_EVENT_CONNECTED) {
                /* a reconnect or a new session: whatever happened meanwhile, look */
                r->busy = false;
                rt_read(r);
        }
        rt_leave(r);
}

static void rt_watch(struct ha_zk *zk, int type, const char *path, void *userdata) {
        struct ha_retrieval *r = userdata;
        (void)zk;
        (void)type;
        if (!rt_alive(r) || strcmp(path, r->path) != 0)
                return;
        rt_enter(r);
        rt_read(r);
        rt_leave(r);
}

int ha_retrieval_create(struct ha_zk *zk, const char *base, ha_retrieval_fn on_change,
                        ha_retrieval_error_fn on_error, void *userdata,
                        struct ha_retrieval **ret) {
        size_t blen = base ? strlen(base) : 0;
        if (!zk || blen < 2 || base[0] != '/' || base[blen - 1] == '/' || blen >= 500)
                return -EINVAL;
        struct ha_retrieval *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->refs = 1;
        r->zk = zk;
        snprintf(r->base, sizeof(r->base), "%s", base);
        snprintf(r->path, sizeof(r->path), "%s/leader", base);
        r->on_change = on_change;
        r->on_error = on_error;
        r->userdata = userdata;
        int e = -ENOMEM;
        r->retry_ev = evtimer_new(ha_zk_event_base(zk), rt_retry_cb, r);
        if (!r->retry_ev)
                goto fail;
        if ((e = ha_zk_subscribe(zk, rt_zk_event, r)) < 0 ||
            (e = ha_zk_watch_add(zk, r->path, rt_watch, r)) < 0)
                goto fail;
        rt_enter(r);
        rt_read(r);
        rt_leave(r);
        *ret = r;
        return 0;
fail:
        rt_kill(r);
        return e;
}

int ha_retrieval_leader(const struct ha_retrieval *r, struct ha_leader_info *ret) {
        if (!r->known)
                return -ENOENT;
        *ret = r->leader;
        return 0;
}
