/* flinc-worker: the task manager process. Reads the config, finds the leader (ZooKeeper
 * leader retrieval, or jobmanager.rpc.address with high-availability NONE), registers
 * its slots, and runs the subtasks the leader deploys (control.h, task.h, ops.h).
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT: tasks canceled, connections
 * closed), 1 for a bad config or a start failure or tasks that did not stop on
 * shutdown, 2 for bad arguments. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "common/config.h"
#include "common/err.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/storage.h"
#include "ha/zk.h"
#include "statebackend/backend.h"
#include "worker/control.h"
#include "worker/exchange.h"
#include "worker/leader.h"

#define WRK_MAX_OVERRIDES 256
/* How long a shutdown waits for tasks to stop. */
#define WRK_SHUTDOWN_TIMEOUT_MS 10000u

struct wrk_main {
        struct event_base *base;
        struct wrk_ctl *ctl;
        struct ha_zk *zk;
        struct wrk_leader *leader;
        bool stopping;
        bool clean;
        int64_t session_id;
};

static void usage(FILE *out) {
        fprintf(out,
                "usage: flinc-worker --configDir DIR [--host HOST] [--log-file PATH]\n"
                "                    [-D key=value]... [--help]\n"
                "\n"
                "Runs a flinc worker (Flink's task manager): reads DIR/flinc-conf.yaml, finds\n"
                "the leading coordinator (through ZooKeeper with high-availability: zookeeper,\n"
                "else at jobmanager.rpc.address:jobmanager.rpc.port), offers\n"
                "taskmanager.numberOfTaskSlots slots and runs the subtasks it is given.\n"
                "\n"
                "  --configDir DIR   directory of flinc-conf.yaml (required)\n"
                "  --host HOST       address to advertise (sets taskmanager.host)\n"
                "  --log-file PATH   append the log to PATH instead of stderr\n"
                "  -D key=value      set a config key, after the file (repeatable)\n"
                "  --help            this text and the config keys\n"
                "\n"
                "Exit codes: 0 clean shutdown (SIGTERM, SIGINT), 1 bad config or failure,\n"
                "2 bad arguments.\n");
}

static void on_zk_client_log(const char *message) {
        if (strstr(message, "ZOO_ERROR") || strstr(message, "ZOO_WARN"))
                log_warn("zookeeper client: %s", message);
        else
                log_debug("zookeeper client: %s", message);
}

static void on_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct wrk_main *m = userdata;
        switch (ev->type) {
        case HA_ZK_EVENT_CONNECTED:
                if (ev->new_session) {
                        /* Test builds may show the session password (FLINC_TEST_EXPOSE_ZK_PASSWD=1,
                         * as flinc-coordinator), so a drill can expire the session. */
                        char hex[33] = "";
                        const char *ex = getenv("FLINC_TEST_EXPOSE_ZK_PASSWD");
                        int64_t sid;
                        char pw[16];
                        if (ex && strcmp(ex, "1") == 0 && ha_zk_session(zk, &sid, pw) == 0)
                                for (int i = 0; i < 16; i++)
                                        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)pw[i]);
                        m->session_id = ev->session_id;
                        log_event("+zk-session", "session=0x%016" PRIx64 " timeout_ms=%d%s%s",
                                  (uint64_t)ev->session_id, ha_zk_session_timeout_ms(zk),
                                  hex[0] ? " passwd=" : "", hex);
                } else {
                        log_event("+zk-reconnected", "session=0x%016" PRIx64,
                                  (uint64_t)ev->session_id);
                }
                break;
        case HA_ZK_EVENT_CONNECTING:
                log_event_warn("-zk-disconnected", "session=0x%016" PRIx64 " (reconnecting)",
                               (uint64_t)m->session_id);
                break;
        case HA_ZK_EVENT_EXPIRED:
                log_event_warn("-zk-session-expired", "session=0x%016" PRIx64,
                               (uint64_t)ev->session_id);
                break;
        case HA_ZK_EVENT_STALL:
                log_warn("the control loop stalled for %" PRIu64 " ms", ev->stall_ms);
                break;
        case HA_ZK_EVENT_AUTH_FAILED:
                log_error(-EACCES, "ZooKeeper refused high-availability.zookeeper.auth.digest; "
                          "no leader can be found");
                break;
        }
}

static void on_shutdown_done(void *arg, bool clean) {
        struct wrk_main *m = arg;
        m->clean = clean;
        event_base_loopexit(m->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
        (void)what;
        struct wrk_main *m = arg;
        if (m->stopping) {
                log_warn("signal %d during shutdown: exiting now", (int)sig);
                log_finish();
                _exit(1);
        }
        m->stopping = true;
        log_event("-worker-stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        wrk_leader_destroy(m->leader);
        m->leader = NULL;
        wrk_ctl_shutdown(m->ctl, WRK_SHUTDOWN_TIMEOUT_MS, on_shutdown_done, m);
}

/* Reads and checks the config: 0 and *ret, or 1 after logging why. */
static int load_config(const char *dir, const char *host, char **overrides, size_t n_overrides,
                       struct cfg **ret) {
        char path[4096];
        char err[1024];
        struct cfg *c = NULL;
        if ((size_t)snprintf(path, sizeof(path), "%s/flinc-conf.yaml", dir) >= sizeof(path)) {
                log_error(-ENAMETOOLONG, "config directory path too long");
                return 1;
        }
        int r = cfg_load_file(path, &c, err, sizeof(err));
        if (r < 0) {
                log_error(0, "bad configuration: %s", err[0] ? err : err_str(r));
                return 1;
        }
        if (host && cfg_set(c, "taskmanager.host", host, err, sizeof(err)) < 0) {
                log_error(0, "bad configuration: --host: %s", err);
                goto fail;
        }
        for (size_t i = 0; i < n_overrides; i++) {
                char *eq = strchr(overrides[i], '=');
                *eq = '\0';
                r = cfg_set(c, overrides[i], eq + 1, err, sizeof(err));
                *eq = '=';
                if (r < 0) {
                        log_error(0, "bad configuration: -D %s: %s", overrides[i], err);
                        goto fail;
                }
        }
        if (cfg_validate(c, err, sizeof(err)) < 0) {
                log_error(0, "bad configuration: %s: %s", path, err);
                goto fail;
        }
        *ret = c;
        return 0;
fail:
        cfg_free(c);
        return 1;
}

int main(int argc, char **argv) {
        const char *conf_dir = NULL, *host_arg = NULL, *log_file = NULL;
        char *overrides[WRK_MAX_OVERRIDES];
        size_t n_overrides = 0;
        struct wrk_main m = {0};
        struct cfg *cfg = NULL;
        struct evdns_base *dns = NULL;
        struct event *sigterm_ev = NULL, *sigint_ev = NULL;
        struct sb_env *sb_env = NULL;
        int rc = 1, r;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *val = NULL;
                if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                        usage(stdout);
                        printf("\nConfiguration keys (flinc-conf.yaml):\n\n");
                        cfg_print_help(stdout);
                        return 0;
                }
                bool takes = strcmp(a, "--configDir") == 0 || strcmp(a, "--host") == 0 ||
                             strcmp(a, "--log-file") == 0 || strcmp(a, "-D") == 0;
                if (takes) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "flinc-worker: %s needs a value\n", a);
                                usage(stderr);
                                return 2;
                        }
                        val = argv[++i];
                } else if (strncmp(a, "--configDir=", 12) == 0) {
                        a = "--configDir";
                        val = argv[i] + 12;
                } else if (strncmp(a, "--host=", 7) == 0) {
                        a = "--host";
                        val = argv[i] + 7;
                } else if (strncmp(a, "--log-file=", 11) == 0) {
                        a = "--log-file";
                        val = argv[i] + 11;
                } else if (strncmp(a, "-D", 2) == 0 && a[2]) {
                        val = a + 2;
                        a = "-D";
                } else {
                        fprintf(stderr, "flinc-worker: unknown argument '%s'\n", a);
                        usage(stderr);
                        return 2;
                }
                if (!val[0]) {
                        fprintf(stderr, "flinc-worker: %s needs a non-empty value\n", a);
                        usage(stderr);
                        return 2;
                }
                if (strcmp(a, "--configDir") == 0) {
                        conf_dir = val;
                } else if (strcmp(a, "--host") == 0) {
                        host_arg = val;
                } else if (strcmp(a, "--log-file") == 0) {
                        log_file = val;
                } else {
                        if (!strchr(val, '=') || val[0] == '=') {
                                fprintf(stderr, "flinc-worker: -D expects key=value, got '%s'\n",
                                        val);
                                usage(stderr);
                                return 2;
                        }
                        if (n_overrides == WRK_MAX_OVERRIDES) {
                                fprintf(stderr, "flinc-worker: more than %d -D options\n",
                                        WRK_MAX_OVERRIDES);
                                return 2;
                        }
                        overrides[n_overrides++] = (char *)val;
                }
        }
        if (!conf_dir) {
                fprintf(stderr, "flinc-worker: --configDir is required\n");
                usage(stderr);
                return 2;
        }

        r = log_init("worker", LOG_LEVEL_INFO, log_file);
        if (r < 0) {
                fprintf(stderr, "flinc-worker: cannot open log file %s: %s\n", log_file,
                        strerror(-r));
                return 1;
        }
        if (load_config(conf_dir, host_arg, overrides, n_overrides, &cfg) != 0)
                goto out;
        enum log_level level;
        if (log_parse_level(cfg_string(cfg, CFG_ENV_LOG_LEVEL), &level) == 0)
                log_set_level(level);
        for (size_t i = 0; i < cfg_warning_count(cfg); i++)
                log_warn("configuration: %s", cfg_warning(cfg, i));

        struct flinc_id rid;
        char resource_id[ID_HEX_LEN + 1];
        if ((r = id_generate(&rid)) < 0) {
                log_error(r, "cannot make a resource id");
                goto out;
        }
        id_format(&rid, resource_id);
        char host[256];
        const char *cfg_host = cfg_string(cfg, CFG_TM_HOST);
        if (cfg_host[0]) {
                snprintf(host, sizeof(host), "%s", cfg_host);
        } else if (gethostname(host, sizeof(host)) < 0) {
                snprintf(host, sizeof(host), "localhost");
        }
        host[sizeof(host) - 1] = '\0';
        bool ha = strcmp(cfg_string(cfg, CFG_HIGH_AVAILABILITY), "zookeeper") == 0;
        uint32_t slots = (uint32_t)cfg_int(cfg, CFG_TM_NUMBER_OF_TASK_SLOTS);
        log_event("+worker-starting", "resource_id=%s host=%s slots=%" PRIu32 " pid=%d ha=%s",
                  resource_id, host, slots, (int)getpid(), ha ? "zookeeper" : "NONE");

        signal(SIGPIPE, SIG_IGN);
        if (evthread_use_pthreads() < 0) {
                log_error(-ENOSYS, "libevent has no pthreads support");
                goto out;
        }
        m.base = event_base_new();
        if (!m.base) {
                log_error(-ENOMEM, "cannot create the event loop");
                goto out;
        }
        dns = evdns_base_new(m.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!dns) {
                dns = evdns_base_new(m.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
                if (dns)
                        evdns_base_load_hosts(dns, NULL);
        }

        char hint[600];
        if (ha)
                snprintf(hint, sizeof(hint), "ZooKeeper node %s/%s/leader",
                         cfg_string(cfg, CFG_HA_ZK_PATH_ROOT), cfg_string(cfg, CFG_HA_CLUSTER_ID));
        else
                snprintf(hint, sizeof(hint), "%s:%" PRId64,
                         cfg_string(cfg, CFG_JOBMANAGER_RPC_ADDRESS),
                         cfg_int(cfg, CFG_JOBMANAGER_RPC_PORT));
        int64_t hb_interval = cfg_int(cfg, CFG_HEARTBEAT_INTERVAL);
        int64_t hb_timeout = cfg_int(cfg, CFG_HEARTBEAT_TIMEOUT);
        /* Keyed state: one RocksDB environment for the process, sized from the config,
         * and a directory per worker under state.backend.rocksdb.localdir (or the first
         * of io.tmp.dirs). */
        struct sb_env_config sbc = {
                .memory_fixed_per_tm_bytes = (uint64_t)cfg_int(cfg, CFG_ROCKSDB_MEMORY_FIXED_PER_TM),
                .write_buffer_ratio = cfg_double(cfg, CFG_ROCKSDB_WRITE_BUFFER_RATIO),
        };
        char sb_err[256] = "";
        if ((r = sb_env_create(&sbc, &sb_env, sb_err, sizeof(sb_err))) < 0) {
                log_error(r, "cannot create the RocksDB environment: %s", sb_err);
                goto out;
        }
        char state_dir[4096];
        const char *localdir = cfg_string(cfg, CFG_ROCKSDB_LOCALDIR);
        if (!localdir[0]) {
                const char *tmp = cfg_string(cfg, CFG_IO_TMP_DIRS);
                size_t n = strcspn(tmp, ",:");
                snprintf(state_dir, sizeof(state_dir), "%.*s/flinc-worker-%s", (int)n, tmp,
                         resource_id);
        } else {
                snprintf(state_dir, sizeof(state_dir), "%s/flinc-worker-%s", localdir,
                         resource_id);
        }
        int64_t buffer_timeout = cfg_int(cfg, CFG_EXECUTION_BUFFER_TIMEOUT);
        char checkpoints_dir[4096] = "";
        const char *chk_uri = cfg_string(cfg, CFG_STATE_CHECKPOINTS_DIR);
        if (chk_uri[0]) {
                char why[256];
                if ((r = storage_uri_to_path(chk_uri, checkpoints_dir, sizeof(checkpoints_dir),
                                             why, sizeof(why))) < 0) {
                        log_error(r, "state.checkpoints.dir: %s", why);
                        goto out;
                }
        }
        struct wrk_ctl_options co = {
                .sb_env = sb_env,
                .state_dir = state_dir,
                .buffer_timeout_ms = buffer_timeout > 0 ? (uint64_t)buffer_timeout : 0,
                .latency_interval_ms = (uint64_t)cfg_int(cfg, CFG_METRICS_LATENCY_INTERVAL),
                .checkpoints_dir = checkpoints_dir,
                .checkpoint_interval_ms = cfg_int(cfg, CFG_CHECKPOINTING_INTERVAL),
                .checkpoint_at_least_once =
                        strcasecmp(cfg_string(cfg, CFG_CHECKPOINTING_MODE), "AT_LEAST_ONCE") == 0,
                .resource_id = resource_id,
                .host = host,
                .slots = slots,
                .data_port = (uint16_t)cfg_int(cfg, CFG_TM_DATA_PORT),
                .cluster_id = cfg_string(cfg, CFG_HA_CLUSTER_ID),
                .max_frame_bytes = (size_t)cfg_int(cfg, CFG_PEKKO_FRAMESIZE),
                .dns = dns,
                .heartbeat_interval_ms = hb_interval > UINT32_MAX / 2 ? UINT32_MAX / 2
                                                                      : (uint32_t)hb_interval,
                .heartbeat_timeout_ms = hb_timeout > UINT32_MAX ? UINT32_MAX : (uint32_t)hb_timeout,
                .leader_hint = hint,
        };
        if (co.heartbeat_timeout_ms <= co.heartbeat_interval_ms)
                co.heartbeat_timeout_ms = co.heartbeat_interval_ms + 1;
        wrk_exchange_set_buffers((uint32_t)cfg_int(cfg, CFG_TM_NET_BUFFERS_PER_CHANNEL),
                                 (uint32_t)cfg_int(cfg, CFG_TM_NET_FLOATING_BUFFERS));
        if ((r = wrk_ctl_create(m.base, &co, &m.ctl)) < 0) {
                log_error(r, "cannot start the control plane");
                goto out;
        }

        sigterm_ev = evsignal_new(m.base, SIGTERM, on_signal, &m);
        sigint_ev = evsignal_new(m.base, SIGINT, on_signal, &m);
        if (!sigterm_ev || !sigint_ev || evsignal_add(sigterm_ev, NULL) < 0 ||
            evsignal_add(sigint_ev, NULL) < 0) {
                log_error(-ENOMEM, "cannot handle signals");
                goto out;
        }

        if (ha) {
                struct ha_zk_options zo = {
                        .session_timeout_ms = (int)cfg_int(cfg, CFG_HA_ZK_SESSION_TIMEOUT),
                        .digest = cfg_string(cfg, CFG_HA_ZK_AUTH_DIGEST)[0]
                                          ? cfg_string(cfg, CFG_HA_ZK_AUTH_DIGEST) : NULL,
                        .acl = strcmp(cfg_string(cfg, CFG_HA_ZK_ACL), "creator") == 0
                                       ? HA_ZK_ACL_CREATOR : HA_ZK_ACL_OPEN,
                        .client_log = on_zk_client_log,
                };
                const char *quorum = cfg_string(cfg, CFG_HA_ZK_QUORUM);
                log_info("connecting to ZooKeeper %s (session timeout %d ms asked)", quorum,
                         zo.session_timeout_ms);
                if ((r = ha_zk_create(m.base, quorum, &zo, on_zk_event, &m, &m.zk)) < 0) {
                        log_error(r, "cannot start a ZooKeeper session with %s", quorum);
                        goto out;
                }
                char base_path[600];
                snprintf(base_path, sizeof(base_path), "%s/%s",
                         cfg_string(cfg, CFG_HA_ZK_PATH_ROOT), cfg_string(cfg, CFG_HA_CLUSTER_ID));
                if ((r = wrk_leader_create_zk(m.zk, base_path, m.ctl, &m.leader)) < 0) {
                        log_error(r, "cannot watch the leader under %s", base_path);
                        goto out;
                }
        } else {
                const char *addr = cfg_string(cfg, CFG_JOBMANAGER_RPC_ADDRESS);
                if ((r = wrk_leader_create_static(addr, (uint16_t)cfg_int(cfg, CFG_JOBMANAGER_RPC_PORT),
                                                  m.ctl, &m.leader)) < 0) {
                        log_error(r, "bad coordinator address %s", addr);
                        goto out;
                }
        }

        event_base_dispatch(m.base);
        if (!m.stopping) {
                log_error(0, "the event loop ended unexpectedly");
                goto out;
        }
        if (!m.clean) {
                /* A task thread is stuck (in a write, say): freeing what it uses is not
                 * safe, and exit() could block on a stream it holds. */
                log_error(0, "exiting with tasks still running");
                log_finish();
                _exit(1);
        }
        rc = 0;
        log_event("-worker-stopped", "resource_id=%s", resource_id);
out:
        wrk_leader_destroy(m.leader);
        wrk_ctl_destroy(m.ctl);
        sb_env_destroy(sb_env);
        ha_zk_destroy(m.zk);
        if (sigterm_ev)
                event_free(sigterm_ev);
        if (sigint_ev)
                event_free(sigint_ev);
        if (dns)
                evdns_base_free(dns, 0);
        if (m.base)
                event_base_free(m.base);
        cfg_free(cfg);
        fflush(stdout);
        log_finish();
        return rc;
}
