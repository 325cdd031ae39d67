/* flinc-election: joins a flinc leader election on ZooKeeper and prints its events, for
 * tests, drills and operators who want to watch an election. While it believes it is
 * the leader it can make a fenced "acting" write every --act-interval-ms (a sequential
 * node <root>/<cluster>/acting/w- holding {epoch, id, seq}, created in a multi that
 * checks the epoch), so an observer can verify that a deposed leader never writes. With
 * --script it also runs pointer-store commands once elected (see usage). SIGTERM or
 * SIGINT resigns cleanly (the successor takes over at once) and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "common/clock.h"
#include "common/envelope.h"
#include "common/err.h"
#include "common/log.h"
#include "common/msg.h"
#include "ha/election.h"
#include "ha/retrieval.h"
#include "ha/zk.h"
#include "tools/election/script.h"

#define ACTING_KIND "flinc.election.acting"

struct app {
        struct event_base *base;
        struct ha_zk *zk;
        struct ha_election *election;
        struct ha_retrieval *retrieval;
        struct script *script;
        struct event *act_ev;
        struct event *sigterm_ev;
        struct event *sigint_ev;
        struct event *exit_ev;

        const char *zk_connect;
        const char *root;
        const char *cluster;
        char base_path[512];
        char acting_dir[600];
        struct ha_candidate_info info;
        int session_timeout_ms;
        int act_interval_ms;
        const char *digest;
        enum ha_zk_acl acl;
        bool log_passwd;
        bool probe_after_loss;
        bool observe;
        const char *drop_after[8];
        int n_drop_after;
        const char *storage_dir;
        const char *script_path;

        uint64_t act_seq;
        bool act_inflight;
        bool probe_pending;
        bool probe_inflight;
        struct ha_fence probe_fence;
        bool stopping;
        bool script_started;
        int exit_code;
};

struct act_req {
        struct app *app;
        struct ha_fence fence;
        uint64_t seq;
        bool probe;
        zoo_op_t ops[2];
        zoo_op_result_t results[2];
        char created[700];
        char *data;
};

static void usage(FILE *f) {
        fprintf(f,
                "usage: flinc-election --zk CONNECT --cluster-id ID --id NAME [options]\n"
                "\n"
                "Joins the leader election of <root>/<cluster-id> on ZooKeeper and logs its events\n"
                "(+session, +candidate, +leader-elected, +suspended, +resumed, -leadership-lost, ...).\n"
                "SIGTERM/SIGINT resign cleanly and exit 0.\n"
                "\n"
                "  --zk CONNECT              ZooKeeper connect string host:port[,host:port...]\n"
                "  --root PATH               high-availability.zookeeper.path.root (default /flinc)\n"
                "  --cluster-id ID           high-availability.cluster-id\n"
                "  --id NAME                 candidate id (shown in +leader-elected and in leader)\n"
                "  --host HOST               host advertised in the election node (default: hostname)\n"
                "  --rpc ADDR                rpc address advertised in leader (default empty)\n"
                "  --rest URL                rest url advertised in leader (default empty)\n"
                "  --session-timeout-ms N    requested session timeout (default 60000)\n"
                "  --act-interval-ms N       fenced acting write every N ms while leader (0: none, default)\n"
                "  --probe-after-loss        after losing leadership, try one acting write with the lost\n"
                "                            epoch's fence (drills: ZooKeeper must refuse it)\n"
                "  --digest USER:PASS        digest authentication\n"
                "  --acl open|creator        ACL of created nodes (creator needs --digest; default open)\n"
                "  --log-session-passwd      also log the session password (tests that force an expiry)\n"
                "  --drop-connection-after PATH  drills: cut the ZooKeeper connection right after the\n"
                "                            first write naming a path that starts with PATH was sent\n"
                "                            (its outcome is then unknown to us); repeatable, up to 8\n"
                "  --observe                 do not stand: only follow the leader (+leader-changed,\n"
                "                            +leader-none), as workers and tools do\n"
                "  --storage-dir URI         high-availability.storageDir (file://...), for --script\n"
                "  --script FILE             pointer-store commands to run once elected, one per line:\n"
                "                              job-put JOB TEXT | job-get JOB | job-list | job-remove JOB\n"
                "                              counter-next JOB COUNT [ABOVE] (ids above ABOVE too)\n"
                "                              chk-add JOB N PATH RETAIN | chk-latest JOB\n"
                "                              chk-list JOB | result-put JOB STATE\n"
                "                              result-get JOB | result-list | result-expire TTL_MS\n"
                "                              recoverable | sleep MS | resign | exit\n"
                "                            each result is logged as +store {json}\n"
                "  --log-level LEVEL         error|warn|info|debug (default info)\n"
                "  --help                    this text\n");
}

/* ---- acting writes ----------------------------------------------------------------------- */

static void act_done(int rc, const void *data);

static int act_issue(struct app *app, const struct ha_fence *fence, bool probe) {
        struct act_req *q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->app = app;
        q->fence = *fence;
        q->seq = ++app->act_seq;
        q->probe = probe;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        msg_pack_kv_u64(&pk, "epoch", fence->epoch);
        msg_pack_kv_str(&pk, "id", app->info.id);
        msg_pack_kv_u64(&pk, "seq", q->seq);
        size_t len = 0;
        int r = sb.data ? envelope_wrap(ACTING_KIND, 1, sb.data, sb.size, &q->data, &len)
                        : -ENOMEM;
        msgpack_sbuffer_destroy(&sb);
        if (r < 0) {
                free(q);
                return r;
        }
        char path[700];
        snprintf(path, sizeof(path), "%s/w-", app->acting_dir);
        ha_fence_check_op(&q->fence, &q->ops[0]);
        zoo_create_op_init(&q->ops[1], path, q->data, (int)len, ha_zk_acl(app->zk),
                           ZOO_PERSISTENT_SEQUENTIAL, q->created, sizeof(q->created));
        r = ha_zk_amulti(app->zk, 2, q->ops, q->results, act_done, q);
        if (r < 0) {
                log_event_warn("-acting-write", "epoch=%" PRIu64 " seq=%" PRIu64 " err=%s%s",
                               fence->epoch, q->seq, err_str(r), probe ? " probe=1" : "");
                free(q->data);
                free(q);
                return r;
        }
        return 0;
}

static const char *act_err_name(int rc, const zoo_op_result_t *results) {
        int failed = ha_zk_multi_failed_op(rc, 2, results);
        if (failed == 0 && results[0].err == ZBADVERSION)
                return "stale";
        switch (rc) {
        case ZCONNECTIONLOSS:
                return "connection-loss";
        case ZOPERATIONTIMEOUT:
                return "timeout";
        case ZSESSIONMOVED:
                return "session-moved";
        case ZSESSIONEXPIRED:
                return "session-expired";
        case ZCLOSING:
                return "closing";
        default:
                return zerror(rc);
        }
}

static void probe_maybe(struct app *app);

static void act_done(int rc, const void *data) {
        struct act_req *q = (struct act_req *)data;
        struct app *app = q->app;
        if (q->probe)
                app->probe_inflight = false;
        else
                app->act_inflight = false;
        const char *tag = q->probe ? " probe=1" : "";
        if (rc == ZOK) {
                const char *slash = strrchr(q->created, '/');
                log_event("+acting-write", "epoch=%" PRIu64 " seq=%" PRIu64 " ok node=%s%s",
                          q->fence.epoch, q->seq, slash ? slash + 1 : q->created, tag);
        } else {
                log_event_warn("-acting-write", "epoch=%" PRIu64 " seq=%" PRIu64 " err=%s%s",
                               q->fence.epoch, q->seq, act_err_name(rc, q->results), tag);
                int failed = ha_zk_multi_failed_op(rc, 2, q->results);
                if (failed == 0 && q->results[0].err == ZBADVERSION && app->election)
                        ha_election_report_fenced(app->election, &q->fence);
                /* A probe must get ZooKeeper's own answer: try again once connected. */
                if (q->probe && failed < 0 && rc != ZCLOSING)
                        app->probe_pending = true;
        }
        free(q->data);
        free(q);
        if (!app->stopping)
                probe_maybe(app);
}

static void probe_maybe(struct app *app) {
        if (!app->probe_pending || app->probe_inflight || !app->zk ||
            ha_zk_state(app->zk) != HA_ZK_CONNECTED)
                return;
        app->probe_pending = false;
        app->probe_inflight = true;
        if (act_issue(app, &app->probe_fence, true) < 0)
                app->probe_inflight = false;
}

static void act_tick(evutil_socket_t fd, short what, void *arg) {
        struct app *app = arg;
        (void)fd;
        (void)what;
        /* A stall must be noticed before deciding to act. */
        ha_zk_poll_stall(app->zk);
        struct ha_fence f;
        if (!app->stopping && !app->act_inflight && app->election &&
            ha_election_fence(app->election, &f) == 0) {
                app->act_inflight = true;
                if (act_issue(app, &f, false) < 0)
                        app->act_inflight = false;
        }
}

/* ---- events ---------------------------------------------------------------------------- */

static void app_finish(struct app *app, int code) {
        app->exit_code = code;
        event_active(app->exit_ev, EV_TIMEOUT, 1);
}

static void on_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct app *app = userdata;
        switch (ev->type) {
        case HA_ZK_EVENT_CONNECTED:
                if (ev->new_session) {
                        char passwd[16], hex[33] = "";
                        ha_zk_session(zk, NULL, passwd);
                        for (int i = 0; app->log_passwd && i < 16; i++)
                                snprintf(hex + 2 * i, 3, "%02x", (unsigned char)passwd[i]);
                        log_event("+session",
                                  "session=0x%016" PRIx64 " negotiated-timeout-ms=%d lease-ms=%d%s%s",
                                  (uint64_t)ev->session_id, ha_zk_session_timeout_ms(zk),
                                  ha_zk_lease_ms(zk), app->log_passwd ? " passwd=" : "", hex);
                        /* best effort: an acting write fails with "no node" otherwise */
                        if (app->act_interval_ms > 0 || app->probe_after_loss)
                                (void)ha_zk_ensure_path(zk, app->acting_dir, NULL, NULL);
                } else {
                        log_event("+reconnected", "session=0x%016" PRIx64, (uint64_t)ev->session_id);
                }
                probe_maybe(app);
                break;
        case HA_ZK_EVENT_CONNECTING:
                log_event_warn("-disconnected", "session=0x%016" PRIx64, (uint64_t)ev->session_id);
                break;
        case HA_ZK_EVENT_EXPIRED:
                log_event_warn("-session-expired", "session=0x%016" PRIx64,
                               (uint64_t)ev->session_id);
                break;
        case HA_ZK_EVENT_STALL:
                log_event_warn("-stall", "gap-ms=%" PRIu64 " lease-ms=%d", ev->stall_ms,
                               ha_zk_lease_ms(zk));
                break;
        case HA_ZK_EVENT_AUTH_FAILED:
                log_error(-EACCES, "ZooKeeper refused the digest credentials");
                app_finish(app, 1);
                break;
        }
}

static void on_transition(struct ha_election *e, const struct ha_election_transition *t,
                          void *userdata) {
        struct app *app = userdata;
        log_debug("election %s -> %s epoch=%" PRIu64 " reason=%s", ha_election_state_name(t->from),
                  ha_election_state_name(t->to), t->epoch, t->reason);
        if (t->leadership_lost) {
                log_event_warn("-leadership-lost", "epoch=%" PRIu64 " id=%s reason=%s", t->epoch,
                               app->info.id, t->reason);
                if (app->probe_after_loss && t->fence) {
                        app->probe_fence = *t->fence;
                        app->probe_pending = true;
                }
        }
        switch (t->to) {
        case HA_ELECTION_CANDIDATE:
                log_event("+candidate", "id=%s node=%s", app->info.id, t->node);
                break;
        case HA_ELECTION_LEADER:
                if (t->from == HA_ELECTION_CLAIMING) {
                        log_event("+leader-elected", "epoch=%" PRIu64 " id=%s node=%s zxid=0x%" PRIx64,
                                  t->epoch, app->info.id, t->node,
                                  (uint64_t)(t->fence ? t->fence->epoch_zxid : 0));
                        if (app->script && !app->script_started) {
                                app->script_started = true;
                                script_start(app->script);
                        }
                } else {
                        log_event("+resumed", "epoch=%" PRIu64 " id=%s", t->epoch, app->info.id);
                }
                break;
        case HA_ELECTION_SUSPENDED:
                log_event_warn("+suspended", "epoch=%" PRIu64 " id=%s reason=%s", t->epoch,
                               app->info.id, t->reason);
                break;
        case HA_ELECTION_RESIGNING:
                log_event("+resigning", "epoch=%" PRIu64 " id=%s", t->epoch, app->info.id);
                break;
        case HA_ELECTION_STOPPED:
                log_event("+stopped", "id=%s reason=%s", app->info.id, t->reason);
                if (app->stopping)
                        app_finish(app, app->exit_code);
                break;
        default:
                break;
        }
        (void)e;
        probe_maybe(app);
}

static void on_election_error(struct ha_election *e, int r, const char *what, void *userdata) {
        (void)e;
        (void)userdata;
        log_error(r, "election: %s", what);
}

static void on_leader_change(struct ha_retrieval *r, const struct ha_leader_info *li,
                             void *userdata) {
        (void)r;
        (void)userdata;
        if (li)
                log_event("+leader-changed", "epoch=%" PRIu64 " id=%s rpc=%s rest=%s session=0x%016" PRIx64,
                          li->epoch, li->id, li->rpc[0] ? li->rpc : "-", li->rest[0] ? li->rest : "-",
                          (uint64_t)li->session_id);
        else
                log_event("+leader-none", "no leader node");
}

static void on_retrieval_error(struct ha_retrieval *r, int err, const char *what,
                               void *userdata) {
        (void)r;
        (void)userdata;
        log_error(err, "leader retrieval: %s", what);
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg) {
        struct app *app = arg;
        (void)fd;
        (void)what;
        event_base_loopbreak(app->base);
}

/* Resigns, then exits once STOPPED (or after the session timeout, whichever first). */
static void app_stop(struct app *app, int code) {
        if (app->stopping)
                return;
        app->stopping = true;
        app->exit_code = code;
        evtimer_del(app->act_ev);
        if (!app->election || ha_election_resign(app->election, false) < 0 ||
            ha_election_state(app->election) == HA_ELECTION_STOPPED) {
                app_finish(app, code);
                return;
        }
        struct timeval tv = {.tv_sec = app->session_timeout_ms / 1000 + 1, .tv_usec = 0};
        evtimer_add(app->exit_ev, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
        struct app *app = arg;
        (void)what;
        log_event("+signal", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        app_stop(app, 0);
}

static void on_script_finished(struct script *s, int code, bool resign, void *userdata) {
        struct app *app = userdata;
        (void)s;
        if (resign) {
                log_event("+script-done", "then=resign");
                if (app->election)
                        ha_election_resign(app->election, true);
        } else if (code >= 0) {
                log_event("+script-done", "then=exit code=%d", code);
                app_stop(app, code);
        } else {
                log_event("+script-done", "then=continue");
        }
}

/* ---- main ---------------------------------------------------------------------------- */

static int parse_int(const char *s, int min, int max, int *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < min || v > max)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

static int bad_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_arg(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "flinc-election: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n\n");
        va_end(ap);
        usage(stderr);
        return 2;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                {"zk", required_argument, NULL, 'z'},
                {"root", required_argument, NULL, 'r'},
                {"cluster-id", required_argument, NULL, 'c'},
                {"id", required_argument, NULL, 'i'},
                {"host", required_argument, NULL, 'H'},
                {"rpc", required_argument, NULL, 'p'},
                {"rest", required_argument, NULL, 'R'},
                {"session-timeout-ms", required_argument, NULL, 't'},
                {"act-interval-ms", required_argument, NULL, 'a'},
                {"probe-after-loss", no_argument, NULL, 'P'},
                {"digest", required_argument, NULL, 'd'},
                {"acl", required_argument, NULL, 'A'},
                {"log-session-passwd", no_argument, NULL, 'W'},
                {"observe", no_argument, NULL, 'O'},
                {"drop-connection-after", required_argument, NULL, 'D'},
                {"storage-dir", required_argument, NULL, 's'},
                {"script", required_argument, NULL, 'S'},
                {"log-level", required_argument, NULL, 'l'},
                {"help", no_argument, NULL, 'h'},
                {0, 0, 0, 0},
        };
        struct app app = {
                .root = "/flinc",
                .session_timeout_ms = 60000,
                .acl = HA_ZK_ACL_OPEN,
        };
        enum log_level level = LOG_LEVEL_INFO;
        const char *host = NULL, *rpc = "", *rest = "";
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'z':
                        app.zk_connect = optarg;
                        break;
                case 'r':
                        app.root = optarg;
                        break;
                case 'c':
                        app.cluster = optarg;
                        break;
                case 'i':
                        if (strlen(optarg) >= HA_NAME_MAX || !*optarg)
                                return bad_arg("--id '%s' must be 1..127 bytes", optarg);
                        snprintf(app.info.id, sizeof(app.info.id), "%s", optarg);
                        break;
                case 'H':
                        host = optarg;
                        break;
                case 'p':
                        rpc = optarg;
                        break;
                case 'R':
                        rest = optarg;
                        break;
                case 't':
                        if (parse_int(optarg, 1, 3600000, &app.session_timeout_ms) < 0)
                                return bad_arg("--session-timeout-ms '%s' must be an integer in "
                                               "1..3600000", optarg);
                        break;
                case 'a':
                        if (parse_int(optarg, 0, 3600000, &app.act_interval_ms) < 0)
                                return bad_arg("--act-interval-ms '%s' must be an integer in "
                                               "0..3600000", optarg);
                        break;
                case 'P':
                        app.probe_after_loss = true;
                        break;
                case 'd':
                        if (!strchr(optarg, ':'))
                                return bad_arg("--digest '%s' must be USER:PASSWORD", optarg);
                        app.digest = optarg;
                        break;
                case 'A':
                        if (strcmp(optarg, "open") == 0)
                                app.acl = HA_ZK_ACL_OPEN;
                        else if (strcmp(optarg, "creator") == 0)
                                app.acl = HA_ZK_ACL_CREATOR;
                        else
                                return bad_arg("--acl '%s' must be open or creator", optarg);
                        break;
                case 'W':
                        app.log_passwd = true;
                        break;
                case 'O':
                        app.observe = true;
                        break;
                case 'D':
                        if (app.n_drop_after == 8 || optarg[0] != '/')
                                return bad_arg("--drop-connection-after '%s': an absolute path, at "
                                               "most 8 times", optarg);
                        app.drop_after[app.n_drop_after++] = optarg;
                        break;
                case 's':
                        app.storage_dir = optarg;
                        break;
                case 'S':
                        app.script_path = optarg;
                        break;
                case 'l':
                        if (log_parse_level(optarg, &level) < 0)
                                return bad_arg("--log-level '%s' must be error, warn, info or debug",
                                               optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        fprintf(stderr, "\n");
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc)
                return bad_arg("unexpected argument '%s'", argv[optind]);
        if (!app.zk_connect || !app.cluster || !app.info.id[0]) {
                fprintf(stderr, "flinc-election: --zk, --cluster-id and --id are required\n\n");
                usage(stderr);
                return 2;
        }
        if (app.root[0] != '/' || (strlen(app.root) > 1 && app.root[strlen(app.root) - 1] == '/'))
                return bad_arg("--root '%s' must be an absolute ZooKeeper path without a "
                               "trailing slash", app.root);
        if (!*app.cluster || strchr(app.cluster, '/'))
                return bad_arg("--cluster-id '%s' must be non-empty and contain no '/'", app.cluster);
        if (app.acl == HA_ZK_ACL_CREATOR && !app.digest)
                return bad_arg("--acl %s needs --digest", "creator");
        if (app.observe && (app.script_path || app.act_interval_ms > 0 || app.probe_after_loss))
                return bad_arg("--observe does not stand: %s", "no --script, --act-interval-ms or "
                               "--probe-after-loss");
        if (app.script_path && !app.storage_dir)
                return bad_arg("--script %s needs --storage-dir", app.script_path);
        int n = snprintf(app.base_path, sizeof(app.base_path), "%s/%s",
                         strcmp(app.root, "/") == 0 ? "" : app.root, app.cluster);
        if (n < 0 || (size_t)n >= sizeof(app.base_path) - 64)
                return bad_arg("--root/--cluster-id '%s' make a path that is too long", app.root);
        snprintf(app.acting_dir, sizeof(app.acting_dir), "%s/acting", app.base_path);
        char hostname[HOST_NAME_MAX + 1] = "localhost";
        if (!host) {
                gethostname(hostname, sizeof(hostname));
                hostname[sizeof(hostname) - 1] = '\0';
                host = hostname;
        }
        if (strlen(host) >= HA_ADDR_MAX || strlen(rpc) >= HA_ADDR_MAX || strlen(rest) >= HA_ADDR_MAX)
                return bad_arg("--host/--rpc/--rest value '%s...' is longer than 255 bytes", "");
        snprintf(app.info.host, sizeof(app.info.host), "%s", host);
        snprintf(app.info.rpc, sizeof(app.info.rpc), "%s", rpc);
        snprintf(app.info.rest, sizeof(app.info.rest), "%s", rest);

        log_init("election", level, NULL);
        signal(SIGPIPE, SIG_IGN);
        zoo_set_debug_level(level >= LOG_LEVEL_DEBUG ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_ERROR);
        int r = 0;
        app.base = event_base_new();
        if (!app.base) {
                log_error(-ENOMEM, "cannot create the event loop");
                return 1;
        }
        app.act_ev = event_new(app.base, -1, EV_PERSIST, act_tick, &app);
        app.exit_ev = event_new(app.base, -1, 0, on_exit_ev, &app);
        app.sigterm_ev = evsignal_new(app.base, SIGTERM, on_signal, &app);
        app.sigint_ev = evsignal_new(app.base, SIGINT, on_signal, &app);
        if (!app.act_ev || !app.exit_ev || !app.sigterm_ev || !app.sigint_ev ||
            event_add(app.sigterm_ev, NULL) < 0 || event_add(app.sigint_ev, NULL) < 0) {
                log_error(-ENOMEM, "cannot set up events");
                return 1;
        }
        struct ha_zk_options zo = {
                .session_timeout_ms = app.session_timeout_ms,
                .digest = app.digest,
                .acl = app.acl,
        };
        r = ha_zk_create(app.base, app.zk_connect, &zo, on_zk_event, &app, &app.zk);
        if (r < 0) {
                log_error(r, "cannot start a ZooKeeper session with '%s'", app.zk_connect);
                return 1;
        }
        for (int i = 0; i < app.n_drop_after; i++)
                if ((r = ha_zk_inject_drop_after(app.zk, app.drop_after[i])) < 0) {
                        log_error(r, "cannot arm --drop-connection-after %s", app.drop_after[i]);
                        return 1;
                }
        log_event("+starting", "id=%s base=%s zk=%s requested-timeout-ms=%d act-interval-ms=%d",
                  app.info.id, app.base_path, app.zk_connect, app.session_timeout_ms,
                  app.act_interval_ms);
        if (app.observe) {
                r = ha_retrieval_create(app.zk, app.base_path, on_leader_change, on_retrieval_error,
                                        &app, &app.retrieval);
                if (r < 0) {
                        log_error(r, "cannot follow the leader of %s", app.base_path);
                        ha_zk_destroy(app.zk);
                        return 1;
                }
        } else {
                struct ha_election_callbacks cbs = {.transition = on_transition,
                                                    .error = on_election_error};
                r = ha_election_create(app.zk, app.base_path, &app.info, &cbs, &app,
                                       &app.election);
                if (r < 0) {
                        log_error(r, "cannot join the election under %s", app.base_path);
                        ha_zk_destroy(app.zk);
                        return 1;
                }
        }
        if (app.script_path) {
                char err[512] = "";
                r = script_create(app.zk, app.election, app.base_path, app.cluster,
                                  app.storage_dir, app.script_path, on_script_finished, &app,
                                  &app.script, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "script %s: %s", app.script_path, err);
                        ha_election_destroy(app.election);
                        ha_zk_destroy(app.zk);
                        return 2;
                }
        }
        if (app.act_interval_ms > 0) {
                struct timeval tv = {.tv_sec = app.act_interval_ms / 1000,
                                     .tv_usec = (app.act_interval_ms % 1000) * 1000};
                event_add(app.act_ev, &tv);
        }
        event_base_dispatch(app.base);

        log_event("+exiting", "id=%s code=%d", app.info.id, app.exit_code);
        script_destroy(app.script);
        ha_retrieval_destroy(app.retrieval);
        app.retrieval = NULL;
        ha_election_destroy(app.election);
        app.election = NULL;
        ha_zk_destroy(app.zk);
        app.zk = NULL;
        event_free(app.act_ev);
        event_free(app.exit_ev);
        event_free(app.sigterm_ev);
        event_free(app.sigint_ev);
        event_base_free(app.base);
        return app.exit_code;
}
