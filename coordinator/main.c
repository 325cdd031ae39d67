/* flinc-coordinator: Flink's job manager for flinc. Reads <configDir>/flinc-conf.yaml,
 * applies command-line overrides, and runs the coordinator (coord.h) on one libevent
 * loop until SIGTERM or SIGINT, which resign leadership and exit 0.
 *
 *   flinc-coordinator --configDir DIR [--host H] [--webui-port P] [-D key=value ...]
 *
 * Exit codes: 0 after a signal, 1 for a configuration or start-up error (the message
 * names the file, key or port), 2 for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/err.h"
#include "common/hosts.h"
#include "common/log.h"
#include "coordinator/artifacts.h"
#include "coordinator/coord.h"
#include "coordinator/coord_internal.h"

#define SHUTDOWN_TIMEOUT_MS 3000u

struct main_ctx {
        struct event_base *base;
        struct coord *coord;
        bool stopping;
};

static void usage(FILE *out) {
        fprintf(out,
                "usage: flinc-coordinator --configDir DIR [--host HOST] [--webui-port PORT]\n"
                "                         [-D key=value ...]\n"
                "\n"
                "Runs a coordinator (Flink: job manager): joins the leader election on the\n"
                "ZooKeeper quorum of DIR/flinc-conf.yaml and serves the REST API on rest.port.\n"
                "\n"
                "  -c, --configDir DIR   the conf dir holding flinc-conf.yaml\n"
                "      --host HOST       address advertised to workers and clients (default:\n"
                "                        rest.address, else jobmanager.rpc.address)\n"
                "      --webui-port PORT REST port (overrides rest.port)\n"
                "  -D key=value          sets a configuration key (repeatable)\n"
                "  -h, --help            this text and every configuration key\n"
                "\n"
                "Environment (tests only): FLINC_TEST_EXPOSE_ZK_PASSWD=1 shows the ZooKeeper\n"
                "session password in the log and in GET /ha.\n\n");
}

static void shutdown_done(void *arg) {
        struct main_ctx *m = arg;
        event_base_loopbreak(m->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
        struct main_ctx *m = arg;
        if (m->stopping) {
                log_warn("second signal %d: exiting now", (int)sig);
                event_base_loopbreak(m->base);
                return;
        }
        m->stopping = true;
        log_info("signal %d: shutting down", (int)sig);
        coord_shutdown(m->coord, SHUTDOWN_TIMEOUT_MS, shutdown_done, m);
}

int main(int argc, char **argv) {
        /* The UDF ABI probe (artifacts.h): a fresh process that loads one library. */
        if (argc == 3 && strcmp(argv[1], COORD_ARTIFACT_PROBE_ARG) == 0)
                return coord_artifact_probe_main(argv[2]);
        static const struct option longopts[] = {
                {"configDir", required_argument, NULL, 'c'},
                {"host", required_argument, NULL, 'H'},
                {"webui-port", required_argument, NULL, 'w'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *conf_dir = NULL, *host = NULL, *webui_port = NULL;
        char *defs[256];
        size_t n_defs = 0;
        int opt;
        while ((opt = getopt_long(argc, argv, "c:D:h", longopts, NULL)) != -1) {
                switch (opt) {
                case 'c':
                        conf_dir = optarg;
                        break;
                case 'H':
                        host = optarg;
                        break;
                case 'w':
                        webui_port = optarg;
                        break;
                case 'D':
                        if (n_defs == sizeof(defs) / sizeof(defs[0])) {
                                fprintf(stderr, "flinc-coordinator: too many -D options\n");
                                return 2;
                        }
                        defs[n_defs++] = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        cfg_print_help(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "flinc-coordinator: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (!conf_dir) {
                fprintf(stderr, "flinc-coordinator: --configDir is required\n");
                usage(stderr);
                return 2;
        }

        char err[1024];
        char path[4096];
        struct cfg *cfg = NULL;
        snprintf(path, sizeof(path), "%s/flinc-conf.yaml", conf_dir);
        int r = cfg_load_file(path, &cfg, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "flinc-coordinator: %s\n", err);
                return 1;
        }
        for (size_t i = 0; i < n_defs; i++) {
                char key[CFG_MAX_KEY_BYTES + 1];
                const char *eq = strchr(defs[i], '=');
                if (!eq || eq == defs[i] || (size_t)(eq - defs[i]) > CFG_MAX_KEY_BYTES) {
                        fprintf(stderr, "flinc-coordinator: -D %s: expected key=value\n", defs[i]);
                        cfg_free(cfg);
                        return 2;
                }
                snprintf(key, sizeof(key), "%.*s", (int)(eq - defs[i]), defs[i]);
                if ((r = cfg_set(cfg, key, eq + 1, err, sizeof(err))) < 0) {
                        fprintf(stderr, "flinc-coordinator: -D %s\n", err);
                        cfg_free(cfg);
                        return 1;
                }
        }
        if (webui_port && (r = cfg_set(cfg, "rest.port", webui_port, err, sizeof(err))) < 0) {
                fprintf(stderr, "flinc-coordinator: --webui-port: %s\n", err);
                cfg_free(cfg);
                return 1;
        }
        if ((r = cfg_validate(cfg, err, sizeof(err))) < 0) {
                fprintf(stderr, "flinc-coordinator: %s: %s\n", path, err);
                cfg_free(cfg);
                return 1;
        }
        enum log_level level = LOG_LEVEL_INFO;
        log_parse_level(cfg_string(cfg, CFG_ENV_LOG_LEVEL), &level);
        log_init("coordinator", level, NULL);
        for (size_t i = 0; i < cfg_warning_count(cfg); i++)
                log_warn("%s", cfg_warning(cfg, i));

        if (!host || !host[0])
                host = cfg_string(cfg, CFG_REST_ADDRESS);
        if (!host[0])
                host = cfg_string(cfg, CFG_JOBMANAGER_RPC_ADDRESS);
        if (!host[0])
                host = "localhost";

        if (strlen(host) > COORD_HOST_MAX || !hosts_name_valid(host)) {
                log_error(-EINVAL, "--host: '%.40s' is not a host name or address of at most %d "
                          "bytes", host, COORD_HOST_MAX);
                cfg_free(cfg);
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        struct main_ctx m = {0};
        struct event *sigterm = NULL, *sigint = NULL;
        int rc = 1;
        m.base = event_base_new();
        if (!m.base) {
                log_error(-ENOMEM, "cannot create the event loop");
                goto out;
        }
        struct coord_options co = {.cfg = cfg, .host = host, .conf_dir = conf_dir};
        r = coord_create(m.base, &co, &m.coord, err, sizeof(err));
        if (r < 0) {
                log_error(0, "cannot start: %s", err); /* err names the cause */
                goto out;
        }
        sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
        sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
        if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
                log_error(-ENOMEM, "cannot install signal handlers");
                goto out;
        }
        log_info("flinc-coordinator %s started: conf %s, pid %d", COORD_VERSION, conf_dir,
                 (int)getpid());
        event_base_dispatch(m.base);
        rc = 0;
        log_info("flinc-coordinator stopped");
out:
        if (sigterm)
                event_free(sigterm);
        if (sigint)
                event_free(sigint);
        coord_destroy(m.coord);
        if (m.base)
                event_base_free(m.base);
        cfg_free(cfg);
        log_finish();
        return rc;
}
