/* The coordinator object: settings, the ZooKeeper session, the election and what this
 * process does on each of its transitions (become leader: recover jobs; suspended: stop
 * side effects; lose it: drop all leader state and stand again), the view of who leads
 * (leader retrieval, for REST forwarding and /ha) and of who stands (the election
 * nodes), and shutdown. Leadership events are logged here, once:
 * `+leader-elected epoch=N`, `-leader-suspended`, `+leader-resumed`,
 * `-leadership-lost reason=...`. */
#include "coordinator/coord.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "coordinator/coord_internal.h"
#include "ha/retrieval.h"
#include "ha/stores.h"
#include "ha/zk.h"

#define COORD_MAX_CANDIDATES 64

/* ---- small queries ---------------------------------------------------------------- */

bool coord_holds_term(const struct coord *c) {
        return c->election && ha_election_state_holds_epoch(ha_election_state(c->election));
}

bool coord_may_act(struct coord *c) {
        if (!c->election || c->shutting_down)
                return false;
        ha_zk_poll_stall(c->zk); /* a stall is seen before anything else */
        return ha_election_is_acting(c->election);
}

const char *coord_role_name(const struct coord *c) {
        if (c->shutting_down)
                return "stopping";
        if (!c->election)
                return "starting";
        enum ha_election_state s = ha_election_state(c->election);
        if (s == HA_ELECTION_LEADER)
                return ha_election_is_acting(c->election) ? "leader" : "suspended";
        if (s == HA_ELECTION_SUSPENDED || s == HA_ELECTION_RESUMING)
                return "suspended";
        return c->leader_known ? "standby" : "electing";
}

static void reconcile_cb(evutil_socket_t fd, short what, void *arg) {
        struct coord *c = arg;
        coord_jobs_reconcile(c);
}

void coord_schedule_reconcile(struct coord *c) {
        if (c->reconcile_ev && !event_pending(c->reconcile_ev, EV_TIMEOUT, NULL))
                event_active(c->reconcile_ev, EV_TIMEOUT, 0);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg) {
        coord_jobs_expire_results(arg);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg) {
        coord_schedule_reconcile(arg);
}

static void recover_retry_cb(evutil_socket_t fd, short what, void *arg) {
        struct coord *c = arg;
        if (coord_holds_term(c) && !c->leader_ready)
                coord_jobs_recover(c);
}

/* ---- who leads: leader retrieval on <base>/leader ---------------------------------- */

static void leader_note_gone(struct coord *c) {
        if (c->leader_known) {
                log_info("leader %s (epoch %" PRIu64 ") is gone; waiting for the election",
                         c->leader.id, c->leader.epoch);
                if (c->leader_gone_mono_ms == 0)
                        c->leader_gone_mono_ms = clock_mono_ms();
        }
        c->leader_known = false;
}

static void leader_note(struct coord *c, const struct ha_leader_info *li) {
        bool changed = !c->leader_known || c->leader.epoch != li->epoch ||
                       strcmp(c->leader.id, li->id) != 0;
        if (changed && c->leader_known && li->epoch > c->leader.epoch &&
            c->leader_gone_mono_ms == 0)
                c->leader_gone_mono_ms = clock_mono_ms(); /* changed without a gap seen */
        if (changed && c->leader_gone_mono_ms != 0) {
                c->last_failover_ms = (int64_t)(clock_mono_ms() - c->leader_gone_mono_ms);
                c->last_failover_wall_ms = clock_wall_ms();
                c->last_failover_epoch = li->epoch;
                c->leader_gone_mono_ms = 0;
                struct coord_failover *f = &c->failovers[c->n_failovers++ % COORD_FAILOVER_HISTORY];
                *f = (struct coord_failover){.wall_ms = c->last_failover_wall_ms,
                                             .duration_ms = c->last_failover_ms,
                                             .epoch = li->epoch};
                snprintf(f->from, sizeof(f->from), "%s", c->leader.id); /* still the old one */
                snprintf(f->to, sizeof(f->to), "%s", li->id);
        }
        c->leader = *li;
        c->leader_known = true;
        if (changed)
                log_info("leader is %s (epoch %" PRIu64 ", rest %s, rpc %s)%s", li->id, li->epoch,
                         li->rest, li->rpc, strcmp(li->id, c->id) == 0 ? " (this coordinator)" : "");
}

static void leader_changed(struct ha_retrieval *r, const struct ha_leader_info *leader,
                           void *arg) {
        struct coord *c = arg;
        if (leader)
                leader_note(c, leader);
        else
                leader_note_gone(c);
}

static void leader_error(struct ha_retrieval *r, int err, const char *what, void *arg) {
        log_warn("leader retrieval: %s: %s", what, err_str(err));
}

/* ---- who stands: the election nodes (for /ha) ------------------------------------- */

static void candidates_fetch(struct coord *c);

struct cand_get {
        struct coord *c;
        struct ha_candidate_info *list;
        size_t n;
        size_t pending;
};

/* A fetch ended (done or failed): a change seen while it ran starts the next one (its
 * watch was consumed by that change, so nothing else would). */
static void cand_fetch_ended(struct coord *c) {
        c->candidates_busy = false;
        if (c->candidates_again) {
                c->candidates_again = false;
                candidates_fetch(c);
        }
}

static void cand_finish(struct cand_get *g) {
        if (g->pending > 0)
                return;
        struct coord *c = g->c;
        free(c->candidates);
        c->candidates = g->list;
        c->n_candidates = g->n;
        free(g);
        cand_fetch_ended(c);
}

static void cand_data_done(int rc, const char *value, int value_len, const struct Stat *stat,
                           const void *data) {
        struct cand_get *g = (struct cand_get *)data;
        g->pending--;
        if (rc == ZOK && g->n < COORD_MAX_CANDIDATES &&
            ha_candidate_decode(value, value_len > 0 ? (size_t)value_len : 0, &g->list[g->n],
                                NULL, 0) == 0)
                g->n++;
        cand_finish(g);
}

static void cand_children_done(int rc, const struct String_vector *strings, const void *data) {
        struct coord *c = (struct coord *)data;
        if (rc != ZOK || !strings) {
                cand_fetch_ended(c);
                return;
        }
        struct cand_get *g = calloc(1, sizeof(*g));
        size_t n = (size_t)strings->count < COORD_MAX_CANDIDATES ? (size_t)strings->count
                                                                 : COORD_MAX_CANDIDATES;
        if (!g || !(g->list = calloc(n ? n : 1, sizeof(*g->list)))) {
                free(g);
                cand_fetch_ended(c);
                return;
        }
        g->c = c;
        g->pending = 1;
        for (size_t i = 0; i < n; i++) {
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s", ha_election_dir(c->election),
                         strings->data[i]);
                if (ha_zk_aget(c->zk, path, false, cand_data_done, g) == 0)
                        g->pending++;
        }
        g->pending--;
        cand_finish(g);
}

static void candidates_fetch(struct coord *c) {
        if (c->candidates_busy) {
                c->candidates_again = true;
                return;
        }
        if (ha_zk_achildren(c->zk, ha_election_dir(c->election), true, cand_children_done, c) == 0)
                c->candidates_busy = true;
}

static void candidates_watch(struct ha_zk *zk, int type, const char *path, void *arg) {
        struct coord *c = arg;
        if (strcmp(path, ha_election_dir(c->election)) == 0)
                candidates_fetch(c);
}

/* ---- ZooKeeper session events ----------------------------------------------------- */

static void zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *arg) {
        struct coord *c = arg;
        switch (ev->type) {
        case HA_ZK_EVENT_CONNECTED: {
                char passwd[16];
                int64_t sid = ev->session_id;
                if (ha_zk_session(zk, &sid, passwd) == 0) {
                        for (int i = 0; i < 16; i++)
                                snprintf(c->session_passwd_hex + 2 * i, 3, "%02x",
                                         (unsigned char)passwd[i]);
                }
                c->session_id = sid;
                c->negotiated_timeout_ms = ha_zk_session_timeout_ms(zk);
                if (ev->new_session) {
                        log_info("zookeeper session=0x%016" PRIx64 " negotiated-timeout-ms=%d "
                                 "lease-ms=%d%s%s", (uint64_t)sid, c->negotiated_timeout_ms,
                                 ha_zk_lease_ms(zk), c->expose_passwd ? " passwd=" : "",
                                 c->expose_passwd ? c->session_passwd_hex : "");
                } else {
                        log_info("zookeeper reconnected in session=0x%016" PRIx64, (uint64_t)sid);
                }
                candidates_fetch(c);
                break;
        }
        case HA_ZK_EVENT_CONNECTING:
                log_warn("zookeeper connection lost (session=0x%016" PRIx64 " may still live)",
                         (uint64_t)c->session_id);
                break;
        case HA_ZK_EVENT_EXPIRED:
                log_warn("zookeeper session=0x%016" PRIx64 " expired; starting a new one",
                         (uint64_t)ev->session_id);
                c->candidates_busy = false;
                c->candidates_again = false;
                break;
        case HA_ZK_EVENT_STALL:
                log_warn("this process did not run for %" PRIu64 " ms (over the %d ms lease): "
                         "nothing heard before can be trusted", ev->stall_ms, ha_zk_lease_ms(zk));
                break;
        case HA_ZK_EVENT_AUTH_FAILED:
                log_error(-EACCES, "zookeeper authentication failed; this coordinator cannot "
                          "take part in the election");
                break;
        }
}

/* ---- election transitions --------------------------------------------------------- */

static void leadership_end(struct coord *c) {
        c->leader_gen++;
        c->leader_ready = false;
        evtimer_del(c->recover_retry_ev);
        /* Jobs first: the workers then go without job bookkeeping (no job state
         * changes are logged for a term that is over). */
        coord_jobs_drop_all(c);
        coord_registry_drop_all(c, "leadership-ended");
        c->epoch = 0;
}

static void election_transition(struct ha_election *e, const struct ha_election_transition *t,
                                void *arg) {
        struct coord *c = arg;
        if (t->to == HA_ELECTION_CANDIDATE || t->to == HA_ELECTION_CLAIMING)
                candidates_fetch(c); /* our node exists now: the directory does too */
        log_debug("election %s -> %s (%s) epoch=%" PRIu64 " node=%s",
                  ha_election_state_name(t->from), ha_election_state_name(t->to), t->reason,
                  t->epoch, t->node);
        if (t->to == HA_ELECTION_LEADER && t->from == HA_ELECTION_CLAIMING) {
                c->epoch = t->epoch;
                c->leader_gen++;
                c->elected_wall_ms = clock_wall_ms();
                c->elected_mono_ms = clock_mono_ms();
                log_event("+leader-elected", "epoch=%" PRIu64 " id=%s rest=%s rpc=%s session=0x%016"
                          PRIx64, t->epoch, c->id, c->rest_url, c->rpc_addr,
                          (uint64_t)c->session_id);
                coord_jobs_recover(c);
                return;
        }
        if (t->to == HA_ELECTION_SUSPENDED) {
                log_event_warn("-leader-suspended", "epoch=%" PRIu64 " reason=%s", t->epoch,
                               t->reason);
                return;
        }
        if (t->to == HA_ELECTION_LEADER && t->from == HA_ELECTION_RESUMING) {
                log_event("+leader-resumed", "epoch=%" PRIu64 " reason=%s", t->epoch, t->reason);
                coord_schedule_reconcile(c);
                return;
        }
        if (t->leadership_lost) {
                log_event_warn("-leadership-lost", "reason=%s epoch=%" PRIu64, t->reason, t->epoch);
                leadership_end(c);
                return;
        }
        if ((t->to == HA_ELECTION_RESIGNING || t->to == HA_ELECTION_STOPPED) && c->epoch != 0) {
                log_event("-leadership-resigned", "epoch=%" PRIu64 " reason=%s", c->epoch,
                          t->reason);
                leadership_end(c);
        }
        if (t->to == HA_ELECTION_CANDIDATE && t->from == HA_ELECTION_REGISTERING)
                log_info("standing for election as %s (node %s)", c->id, t->node);
}

static void election_error(struct ha_election *e, int r, const char *what, void *arg) {
        log_warn("election: %s: %s (retrying)", what, err_str(r));
}

/* ---- /ha ---------------------------------------------------------------------------- */

void coord_ha_to_json(struct coord *c, struct json_writer *w) {
        char buf[64];
        json_begin_object(w);
        json_kv_string(w, "id", c->id);
        json_kv_string(w, "role", coord_role_name(c));
        json_kv_string(w, "election-state",
                       c->election ? ha_election_state_name(ha_election_state(c->election)) : "none");
        json_kv_string(w, "rest-url", c->rest_url);
        json_kv_string(w, "rpc-address", c->rpc_addr);
        json_kv_uint(w, "epoch", coord_holds_term(c) ? c->epoch
                                 : c->leader_known ? c->leader.epoch : 0);
        json_key(w, "leader");
        if (c->leader_known) {
                json_begin_object(w);
                json_kv_string(w, "id", c->leader.id);
                json_kv_uint(w, "epoch", c->leader.epoch);
                json_kv_string(w, "rest-url", c->leader.rest);
                json_kv_string(w, "rpc-address", c->leader.rpc);
                snprintf(buf, sizeof(buf), "0x%016" PRIx64, (uint64_t)c->leader.session_id);
                json_kv_string(w, "session", buf);
                json_kv_bool(w, "self", strcmp(c->leader.id, c->id) == 0);
                json_end_object(w);
        } else {
                json_null(w);
        }
        json_key(w, "standbys");
        json_begin_array(w);
        for (size_t i = 0; i < c->n_candidates; i++) {
                const struct ha_candidate_info *ci = &c->candidates[i];
                if (c->leader_known && strcmp(ci->id, c->leader.id) == 0)
                        continue;
                json_begin_object(w);
                json_kv_string(w, "id", ci->id);
                json_kv_string(w, "host", ci->host);
                json_kv_string(w, "rest-url", ci->rest);
                json_kv_string(w, "rpc-address", ci->rpc);
                json_end_object(w);
        }
        json_end_array(w);
        json_key(w, "session");
        json_begin_object(w);
        snprintf(buf, sizeof(buf), "0x%016" PRIx64, (uint64_t)c->session_id);
        json_kv_string(w, "id", buf);
        json_kv_string(w, "state", ha_zk_state_name(ha_zk_state(c->zk)));
        json_kv_int(w, "negotiated-timeout-ms", ha_zk_session_timeout_ms(c->zk));
        json_kv_int(w, "lease-ms", ha_zk_lease_ms(c->zk));
        if (c->expose_passwd)
                json_kv_string(w, "passwd", c->session_passwd_hex);
        json_end_object(w);
        json_key(w, "last-failover");
        if (c->last_failover_wall_ms) {
                json_begin_object(w);
                json_kv_int(w, "time", c->last_failover_wall_ms);
                json_kv_int(w, "duration-ms", c->last_failover_ms);
                json_kv_uint(w, "epoch", c->last_failover_epoch);
                json_end_object(w);
        } else {
                json_null(w);
        }
        /* flinc's own: the failovers this coordinator saw since it started, newest first */
        json_key(w, "failover-history");
        json_begin_array(w);
        uint32_t kept = c->n_failovers < COORD_FAILOVER_HISTORY ? c->n_failovers
                                                                  : COORD_FAILOVER_HISTORY;
        for (uint32_t k = 0; k < kept; k++) {
                const struct coord_failover *f =
                        &c->failovers[(c->n_failovers - 1 - k) % COORD_FAILOVER_HISTORY];
                json_begin_object(w);
                json_kv_int(w, "time", f->wall_ms);
                json_kv_int(w, "duration-ms", f->duration_ms);
                json_kv_uint(w, "epoch", f->epoch);
                json_kv_string(w, "from", f->from);
                json_kv_string(w, "to", f->to);
                json_end_object(w);
        }
        json_end_array(w);
        json_key(w, "term");
        if (coord_holds_term(c)) {
                json_begin_object(w);
                json_kv_int(w, "elected-time", c->elected_wall_ms);
                json_kv_int(w, "elected-for-ms", (int64_t)(clock_mono_ms() - c->elected_mono_ms));
                json_kv_bool(w, "recovered", c->leader_ready);
                json_kv_uint(w, "workers", c->n_workers);
                json_end_object(w);
        } else {
                json_null(w);
        }
        json_kv_string(w, "zookeeper-quorum", cfg_string(c->cfg, CFG_HA_ZK_QUORUM));
        json_kv_string(w, "zookeeper-path", c->ha_base);
        json_kv_string(w, "conf-dir", c->conf_dir);
        json_kv_int(w, "start-time", c->start_wall_ms);
        json_end_object(w);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static void zk_client_log(const char *message) {
        log_debug("zookeeper client: %s", message);
}

int coord_create(struct event_base *base, const struct coord_options *opts,
                 struct coord **ret, char *err, size_t err_len) {
        struct coord *c = calloc(1, sizeof(*c));
        struct flinc_id fid;
        int r = -ENOMEM;
        if (!c) {
                snprintf(err, err_len, "out of memory");
                return -ENOMEM;
        }
        c->base = base;
        c->cfg = opts->cfg;
        c->start_wall_ms = clock_wall_ms();
        snprintf(c->host, sizeof(c->host), "%s", opts->host);
        snprintf(c->conf_dir, sizeof(c->conf_dir), "%s", opts->conf_dir ? opts->conf_dir : "");
        if ((r = id_generate(&fid)) < 0) {
                snprintf(err, err_len, "cannot generate an id: %s", err_str(r));
                goto fail;
        }
        id_format(&fid, c->id);

        const struct cfg *cfg = c->cfg;
        snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", cfg_string(cfg, CFG_HA_CLUSTER_ID));
        snprintf(c->ha_base, sizeof(c->ha_base), "%s/%s", cfg_string(cfg, CFG_HA_ZK_PATH_ROOT),
                 c->cluster_id);
        c->hb_interval_ms = (uint32_t)cfg_int(cfg, CFG_HEARTBEAT_INTERVAL);
        c->hb_timeout_ms = (uint32_t)cfg_int(cfg, CFG_HEARTBEAT_TIMEOUT);
        c->default_parallelism = (uint32_t)cfg_int(cfg, CFG_PARALLELISM_DEFAULT);
        c->restart_fixed_delay = strcmp(cfg_string(cfg, CFG_RESTART_STRATEGY), "fixed-delay") == 0;
        c->restart_attempts = (uint32_t)cfg_int(cfg, CFG_RESTART_FIXED_DELAY_ATTEMPTS);
        c->restart_delay_ms = (uint32_t)cfg_int(cfg, CFG_RESTART_FIXED_DELAY_DELAY);
        c->rest_max_body_bytes = (size_t)cfg_int(cfg, CFG_REST_MAX_CONTENT_LENGTH);
        c->rpc_max_frame_bytes = (size_t)cfg_int(cfg, CFG_PEKKO_FRAMESIZE);
        c->result_ttl_ms = cfg_int(cfg, CFG_JOBSTORE_EXPIRATION_TIME);
        const char *ex = getenv("FLINC_TEST_EXPOSE_ZK_PASSWD");
        c->expose_passwd = ex && strcmp(ex, "1") == 0;

        if (strcmp(cfg_string(cfg, CFG_HIGH_AVAILABILITY), "zookeeper") != 0) {
                r = -EINVAL;
                snprintf(err, err_len, "high-availability: 'NONE' is not supported by "
                         "flinc-coordinator yet (expected zookeeper)");
                goto fail;
        }

        c->reconcile_ev = event_new(base, -1, 0, reconcile_cb, c);
        c->recover_retry_ev = evtimer_new(base, recover_retry_cb, c);
        c->settle_ev = evtimer_new(base, settle_cb, c);
        c->expire_ev = event_new(base, -1, EV_PERSIST, expire_cb, c);
        if (!c->reconcile_ev || !c->recover_retry_ev || !c->settle_ev ||
            !c->expire_ev) {
                r = -ENOMEM;
                snprintf(err, err_len, "out of memory");
                goto fail;
        }

        if ((r = coord_registry_start(c, err, err_len)) < 0)
                goto fail;
        snprintf(c->rpc_addr, sizeof(c->rpc_addr), "%s%s%s:%u", strchr(c->host, ':') ? "[" : "",
                 c->host, strchr(c->host, ':') ? "]" : "", c->rpc_port);
        if ((r = coord_rest_start(c, err, err_len)) < 0)
                goto fail;
        snprintf(c->rest_url, sizeof(c->rest_url), "http://%s%s%s:%u",
                 strchr(c->host, ':') ? "[" : "", c->host, strchr(c->host, ':') ? "]" : "",
                 c->rest_port);

        struct ha_zk_options zo = {
                .session_timeout_ms = (int)cfg_int(cfg, CFG_HA_ZK_SESSION_TIMEOUT),
                .digest = cfg_string(cfg, CFG_HA_ZK_AUTH_DIGEST)[0]
                                  ? cfg_string(cfg, CFG_HA_ZK_AUTH_DIGEST) : NULL,
                .acl = strcmp(cfg_string(cfg, CFG_HA_ZK_ACL), "creator") == 0 ? HA_ZK_ACL_CREATOR
                                                                               : HA_ZK_ACL_OPEN,
                .client_log = zk_client_log,
        };
        if ((r = ha_zk_create(base, cfg_string(cfg, CFG_HA_ZK_QUORUM), &zo, zk_event, c,
                              &c->zk)) < 0) {
                snprintf(err, err_len, "cannot start a ZooKeeper session with %s: %s",
                         cfg_string(cfg, CFG_HA_ZK_QUORUM), err_str(r));
                goto fail;
        }
        struct ha_candidate_info ci = {0};
        snprintf(ci.id, sizeof(ci.id), "%s", c->id);
        snprintf(ci.host, sizeof(ci.host), "%s", c->host);
        snprintf(ci.rpc, sizeof(ci.rpc), "%s", c->rpc_addr);
        snprintf(ci.rest, sizeof(ci.rest), "%s", c->rest_url);
        const struct ha_election_callbacks ecb = {
                .transition = election_transition,
                .error = election_error,
        };
        if ((r = ha_election_create(c->zk, c->ha_base, &ci, &ecb, c, &c->election)) < 0) {
                snprintf(err, err_len, "cannot join the election under %s: %s", c->ha_base,
                         err_str(r));
                goto fail;
        }
        if ((r = ha_zk_watch_add(c->zk, ha_election_dir(c->election), candidates_watch, c)) < 0) {
                snprintf(err, err_len, "out of memory");
                goto fail;
        }
        if ((r = ha_retrieval_create(c->zk, c->ha_base, leader_changed, leader_error, c,
                                     &c->retrieval)) < 0) {
                snprintf(err, err_len, "cannot follow the leader under %s: %s", c->ha_base,
                         err_str(r));
                goto fail;
        }
        struct ha_store_options so = {
                .base_path = c->ha_base,
                .cluster_id = c->cluster_id,
                .storage_dir = cfg_string(cfg, CFG_HA_STORAGE_DIR),
                .job_result_ttl_ms = c->result_ttl_ms,
                .max_graph_bytes = JOB_FILE_MAX_BYTES * 4,
        };
        if ((r = ha_store_create(c->zk, c->election, &so, &c->store)) < 0) {
                snprintf(err, err_len, "cannot set up the job stores under %s (storage %s): %s",
                         c->ha_base, so.storage_dir, err_str(r));
                goto fail;
        }
        /* Results are looked at every tenth of their lifetime, at most once a minute. */
        int64_t every_ms = c->result_ttl_ms / 10 < 60000 ? c->result_ttl_ms / 10 : 60000;
        struct timeval etv = {.tv_sec = (time_t)(every_ms / 1000),
                              .tv_usec = (suseconds_t)((every_ms % 1000) * 1000)};
        event_add(c->expire_ev, &etv);
        log_info("coordinator %s: rpc %s, rest %s, zookeeper %s%s, session timeout asked %d ms, "
                 "heartbeat %" PRIu32 "/%" PRIu32 " ms", c->id, c->rpc_addr, c->rest_url,
                 cfg_string(cfg, CFG_HA_ZK_QUORUM), c->ha_base, zo.session_timeout_ms,
                 c->hb_interval_ms, c->hb_timeout_ms);
        *ret = c;
        return 0;
fail:
        coord_destroy(c);
        return r;
}

struct shutdown_ctx {
        struct coord *c;
        struct event *poll;
        uint64_t deadline_ms;
        void (*done)(void *arg);
        void *arg;
};

static void shutdown_poll(evutil_socket_t fd, short what, void *arg) {
        struct shutdown_ctx *s = arg;
        enum ha_election_state st = ha_election_state(s->c->election);
        bool settled = st == HA_ELECTION_STOPPED || st == HA_ELECTION_IDLE ||
                       st == HA_ELECTION_REGISTERING;
        if (!settled && clock_mono_ms() < s->deadline_ms) {
                struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
                evtimer_add(s->poll, &tv);
                return;
        }
        if (!settled)
                log_warn("shutdown: the resign did not complete in time (election %s)",
                         ha_election_state_name(st));
        event_free(s->poll);
        void (*done)(void *) = s->done;
        void *darg = s->arg;
        free(s);
        done(darg);
}

void coord_shutdown(struct coord *c, uint32_t timeout_ms, void (*done)(void *arg), void *arg) {
        log_info("shutting down: resigning (role %s)", coord_role_name(c));
        bool held = coord_holds_term(c);
        c->shutting_down = true;
        if (held) {
                log_event("-leadership-resigned", "epoch=%" PRIu64 " reason=shutdown", c->epoch);
                leadership_end(c);
        }
        coord_rest_stop(c);
        coord_registry_stop(c);
        int r = c->election ? ha_election_resign(c->election, false) : -EALREADY;
        struct shutdown_ctx *s = calloc(1, sizeof(*s));
        if (s)
                s->poll = evtimer_new(c->base, shutdown_poll, s);
        if (!s || !s->poll || r < 0) {
                if (s) {
                        if (s->poll)
                                event_free(s->poll);
                        free(s);
                }
                done(arg);
                return;
        }
        s->c = c;
        s->deadline_ms = clock_mono_ms() + timeout_ms;
        s->done = done;
        s->arg = arg;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 1000};
        evtimer_add(s->poll, &tv);
}

void coord_destroy(struct coord *c) {
        if (!c)
                return;
        c->shutting_down = true;
        coord_rest_stop(c);
        coord_registry_stop(c);
        coord_jobs_drop_all(c);
        ha_store_destroy(c->store);
        ha_retrieval_destroy(c->retrieval);
        if (c->zk && c->election)
                ha_zk_watch_remove(c->zk, ha_election_dir(c->election), candidates_watch, c);
        ha_election_destroy(c->election);
        ha_zk_destroy(c->zk);
        if (c->reconcile_ev)
                event_free(c->reconcile_ev);
        if (c->recover_retry_ev)
                event_free(c->recover_retry_ev);
        if (c->settle_ev)
                event_free(c->settle_ev);
        if (c->expire_ev)
                event_free(c->expire_ev);
        free(c->candidates);
        free(c);
}
