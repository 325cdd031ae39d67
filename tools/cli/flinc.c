/* flinc: the command-line client, Flink's `flink` CLI for flinc: submits job files,
 * lists, cancels and savepoints jobs, shows a job's plan and who leads, talking to the
 * cluster's REST API (found through ZooKeeper, conf/masters or -m; see cluster.h).
 * Output follows Flink's CLI where it has one ("Job has been submitted with JobID ...",
 * `flink list`'s sections), so scripts written for Flink keep working.
 *
 *   flinc [--configDir DIR] <run|list|cancel|savepoint|info|leader> [options] [args]
 *
 * Exit codes: 0 success, 1 failure (the cluster refused, a job failed, nothing answered;
 * the message says why), 2 bad arguments (with the action's usage). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fsutil.h"
#include "common/jobgraph.h"
#include "common/json.h"
#include "tools/cli/cluster.h"
#include "tools/cli/jobbody.h"

#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2
#define CLI_POLL_MS 100
/* How long a waiting client keeps trying through failovers before it gives up. */
#define CLI_RETRY_MS 60000
#define CLI_REQUEST_TIMEOUT_MS 10000
#define CLI_CANCEL_WAIT_MS 60000
#define CLI_SAVEPOINT_WAIT_MS (10 * 60 * 1000)

#ifndef FLINC_VERSION
#define FLINC_VERSION "0.0.0"
#endif

static const char *const USAGE_MAIN =
        "usage: flinc [--configDir DIR] <ACTION> [OPTIONS] [ARGUMENTS]\n"
        "\n"
        "Actions (`flinc <ACTION> --help` for each):\n"
        "  run        submit a job file and, unless -d, wait for it to end\n"
        "  list       list jobs (running and scheduled; -a all)\n"
        "  cancel     cancel a job\n"
        "  savepoint  trigger a savepoint of a job\n"
        "  info       show a job file's execution plan (JSON)\n"
        "  leader     show the leading coordinator (id, epoch, REST url)\n"
        "\n"
        "The cluster is found through ZooKeeper (high-availability.zookeeper.quorum of\n"
        "flinc-conf.yaml), else through the coordinators of conf/masters, or with\n"
        "-m host:port. The conf dir is --configDir, else $FLINC_CONF_DIR, else the conf/\n"
        "of this installation.\n";

static const char *const USAGE_RUN =
        "usage: flinc run [OPTIONS] <job.yaml>\n"
        "  -p, --parallelism N            default parallelism of the job's operators\n"
        "  -s, --fromSavepoint PATH       restore the job's state from this savepoint\n"
        "  -n, --allowNonRestoredState    with -s: skip state that no operator takes\n"
        "  -d, --detached                 return once submitted; do not wait for the end\n"
        "  -m, --jobmanager HOST:PORT     a coordinator's REST address\n"
        "      --input PATH               the path of the job's only source\n"
        "      --output PATH              the path of the job's only sink\n"
        "      --configDir DIR            the conf dir\n";

static const char *const USAGE_LIST =
        "usage: flinc list [OPTIONS]\n"
        "  -r, --running                  running and restarting jobs\n"
        "  -s, --scheduled                scheduled (created) jobs\n"
        "  -a, --all                      all jobs, also finished, failed and canceled ones\n"
        "  -m, --jobmanager HOST:PORT     a coordinator's REST address\n"
        "      --configDir DIR            the conf dir\n"
        "Without -r, -s or -a: running and scheduled jobs.\n";

static const char *const USAGE_CANCEL =
        "usage: flinc cancel [OPTIONS] <jobID>\n"
        "  -m, --jobmanager HOST:PORT     a coordinator's REST address\n"
        "      --configDir DIR            the conf dir\n";

static const char *const USAGE_SAVEPOINT =
        "usage: flinc savepoint [OPTIONS] <jobID> [targetDirectory]\n"
        "  -m, --jobmanager HOST:PORT     a coordinator's REST address\n"
        "      --configDir DIR            the conf dir\n"
        "Without a target directory the cluster's state.savepoints.dir is used.\n";

static const char *const USAGE_INFO =
        "usage: flinc info [OPTIONS] <job.yaml>\n"
        "  -p, --parallelism N            default parallelism of the job's operators\n"
        "      --input PATH               the path of the job's only source\n"
        "      --output PATH              the path of the job's only sink\n"
        "      --configDir DIR            the conf dir\n";

static const char *const USAGE_LEADER =
        "usage: flinc leader [OPTIONS]\n"
        "  -m, --jobmanager HOST:PORT     ask this coordinator instead of ZooKeeper\n"
        "      --configDir DIR            the conf dir\n";

struct cli {
        const char *action;
        const char *usage;
        const char *conf_dir_arg; /* --configDir */
        char conf_dir[PATH_MAX];
        bool have_conf_dir;
        struct cfg *cfg;
        struct event_base *base;
        struct cli_cluster cluster;
};

static int usage_error(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(struct cli *c, const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "flinc%s%s: ", c->action ? " " : "", c->action ? c->action : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n\n%s", c->usage);
        return CLI_EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...) {
        va_list ap;
        fflush(stdout);
        fprintf(stderr, "flinc: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return CLI_EXIT_FAILURE;
}

/* ---- set-up: conf dir, conf, loop ---- */

/* getopt's last complaint: an unknown option, or one missing its value. */
static int bad_option(struct cli *c, int opt, char **argv) {
        char name[64];
        if (optopt > 0 && optopt < 256)
                snprintf(name, sizeof(name), "-%c", optopt);
        else
                snprintf(name, sizeof(name), "%.60s", argv[optind - 1]);
        if (opt == ':')
                return usage_error(c, "%s needs a value", name);
        return usage_error(c, "unknown option '%s'", name);
}

static bool file_exists(const char *path) {
        return access(path, R_OK) == 0;
}

/* The conf dir: --configDir, $FLINC_CONF_DIR, <bin>/../conf of an installation, or the
 * source tree's conf/ for a program run from its build directory. */
static void find_conf_dir(struct cli *c) {
        const char *d = c->conf_dir_arg ? c->conf_dir_arg : getenv("FLINC_CONF_DIR");
        if (d && d[0]) {
                snprintf(c->conf_dir, sizeof(c->conf_dir), "%s", d);
                c->have_conf_dir = true;
                return;
        }
        char exe[PATH_MAX - 64];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (!slash)
                return;
        *slash = '\0';
        char cand[PATH_MAX + 32];
        snprintf(cand, sizeof(cand), "%s/../conf/flinc-conf.yaml", exe);
        if (file_exists(cand)) {
                snprintf(c->conf_dir, sizeof(c->conf_dir), "%s/../conf", exe);
                c->have_conf_dir = true;
                return;
        }
#if defined(FLINC_BUILD_ROOT) && defined(FLINC_SOURCE_ROOT)
        size_t bl = strlen(FLINC_BUILD_ROOT);
        if (strncmp(exe, FLINC_BUILD_ROOT, bl) == 0 && (exe[bl] == '/' || exe[bl] == '\0')) {
                snprintf(c->conf_dir, sizeof(c->conf_dir), "%s/conf", FLINC_SOURCE_ROOT);
                c->have_conf_dir = true;
        }
#endif
}

/* Loads the conf (defaults when there is no conf dir). 0 or an exit code. */
static int setup(struct cli *c, const char *jobmanager) {
        char path[PATH_MAX + 32], err[1024];
        find_conf_dir(c);
        if (c->have_conf_dir) {
                snprintf(path, sizeof(path), "%s/flinc-conf.yaml", c->conf_dir);
                if (!file_exists(path) && !c->conf_dir_arg && !getenv("FLINC_CONF_DIR")) {
                        c->have_conf_dir = false;
                } else {
                        int r = cfg_load_file(path, &c->cfg, err, sizeof(err));
                        if (r < 0)
                                return fail("%s", err);
                }
        }
        if (!c->cfg && !(c->cfg = cfg_new_defaults()))
                return fail("out of memory");
        c->base = event_base_new();
        if (!c->base)
                return fail("cannot create an event loop");
        c->cluster = (struct cli_cluster){
                .base = c->base,
                .cfg = c->cfg,
                .conf_dir = c->have_conf_dir ? c->conf_dir : NULL,
                .jobmanager = jobmanager,
                .request_timeout_ms = CLI_REQUEST_TIMEOUT_MS,
                .retry_ms = CLI_RETRY_MS,
        };
        return 0;
}

static void teardown(struct cli *c) {
        if (c->base)
                event_base_free(c->base);
        cfg_free(c->cfg);
}

/* ---- helpers ---- */

static bool parse_parallelism(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > JOB_MAX_PARALLELISM)
                return false;
        *ret = (uint32_t)v;
        return true;
}

static bool job_id_valid(const char *s) {
        if (strlen(s) != 32)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                      (*p >= 'A' && *p <= 'F')))
                        return false;
        return true;
}

/* Removes "." and ".." segments and repeated '/' from an absolute path, in place,
 * lexically (nothing is looked up on disk, so the path need not exist yet). */
static void normalize_path(char *path) {
        char *out = path;
        const char *p = path;
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                size_t n = strcspn(p, "/");
                if (n == 1 && p[0] == '.') {
                        /* skip */
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        while (out > path && *--out != '/') {
                        }
                } else {
                        *out++ = '/';
                        memmove(out, p, n);
                        out += n;
                }
                p += n;
        }
        if (out == path)
                *out++ = '/';
        *out = '\0';
}

/* A user's path as a file:// URI: URIs are kept, other paths made absolute (relative to
 * the current directory) and normalized. */
static int to_uri(const char *path, char *out, size_t len) {
        if (strstr(path, "://")) {
                snprintf(out, len, "%s", path);
                return 0;
        }
        char abs[PATH_MAX * 2];
        if (path[0] == '/') {
                snprintf(abs, sizeof(abs), "%s", path);
        } else {
                char cwd[PATH_MAX];
                if (!getcwd(cwd, sizeof(cwd)))
                        return -errno;
                snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
        }
        normalize_path(abs);
        int n = snprintf(out, len, "file://%s", abs);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Loads a job file and applies -p, --input, --output. 0 and *ret, or an exit code. */
static int load_job(struct cli *c, const char *file, uint32_t parallelism, const char *input,
                    const char *output, struct job_graph **ret) {
        char err[1024], uri[PATH_MAX + 16];
        struct job_graph *g = NULL;
        uint32_t def = (uint32_t)cfg_int(c->cfg, CFG_PARALLELISM_DEFAULT);
        int r = job_graph_load_file(file, def, &g, err, sizeof(err));
        if (r < 0)
                return fail("%s", err);
        if (parallelism && (r = job_graph_set_parallelism(g, parallelism, err, sizeof(err))) < 0)
                goto bad;
        if (input) {
                if ((r = to_uri(input, uri, sizeof(uri))) < 0) {
                        snprintf(err, sizeof(err), "--input %s: %s", input, strerror(-r));
                        goto bad;
                }
                if ((r = job_graph_set_param(g, "source", "path", uri, err, sizeof(err))) < 0)
                        goto bad;
        }
        if (output) {
                if ((r = to_uri(output, uri, sizeof(uri))) < 0) {
                        snprintf(err, sizeof(err), "--output %s: %s", output, strerror(-r));
                        goto bad;
                }
                if ((r = job_graph_set_param(g, "sink", "path", uri, err, sizeof(err))) < 0)
                        goto bad;
        }
        *ret = g;
        return 0;
bad:
        job_graph_free(g);
        return fail("%s: %s", file, err);
}

/* A REST call whose answer must be JSON with one of the expected statuses; else the
 * error (Flink's {"errors": [...]}) is printed. 0 and *ret (may be NULL for an empty
 * body), or an exit code. */
static int rest_json(struct cli *c, const char *method, const char *path, const char *body,
                     size_t body_len, int expect1, int expect2, int *ret_status,
                     struct cli_json **ret) {
        char err[1024];
        int status;
        struct cli_json *j = NULL;
        int r = cli_cluster_call_json(&c->cluster, method, path, body, body_len,
                                      body ? "application/json" : NULL, &status, &j, err,
                                      sizeof(err));
        if (r < 0)
                return fail("%s", err);
        if (status != expect1 && status != expect2) {
                char errs[1024];
                if (j)
                        cli_rest_errors(j, NULL, errs, sizeof(errs));
                else
                        snprintf(errs, sizeof(errs), "%s", err[0] ? err : "(no details)");
                cli_json_free(j);
                return fail("%s %s: %d: %s", method, path, status, errs);
        }
        if (ret_status)
                *ret_status = status;
        *ret = j;
        return 0;
}

static bool state_terminal(const char *s) {
        return s && (strcmp(s, "FINISHED") == 0 || strcmp(s, "FAILED") == 0 ||
                     strcmp(s, "CANCELED") == 0);
}

/* Polls GET /jobs/<jid> until the job is terminal or deadline_ms passed (0: no
 * deadline). 0 and *ret (the job's JSON), or an exit code. */
static int wait_terminal(struct cli *c, const char *jid, uint64_t deadline_ms,
                         struct cli_json **ret) {
        char path[64];
        snprintf(path, sizeof(path), "/jobs/%s", jid);
        uint64_t end = deadline_ms ? clock_mono_ms() + deadline_ms : 0;
        for (;;) {
                struct cli_json *j = NULL;
                int r = rest_json(c, "GET", path, NULL, 0, 200, 200, NULL, &j);
                if (r)
                        return r;
                if (state_terminal(cli_json_str(cli_json_get(j, "state")))) {
                        *ret = j;
                        return 0;
                }
                cli_json_free(j);
                if (end && clock_mono_ms() >= end)
                        return fail("job %s did not end within %" PRIu64 " s", jid,
                                    deadline_ms / 1000);
                cli_pause_ms(CLI_POLL_MS);
        }
}

/* Uploads each artifact of g (local paths, made absolute by job_graph_load_file) with
 * POST /artifacts/upload?name=<file name> and replaces it by the id the coordinator
 * answers, as Flink's client uploads the jar before running it. 0 or an exit code (the
 * coordinator's error printed, e.g. a wrong UDF ABI version). */
static int upload_artifacts(struct cli *c, const char *file, struct job_graph *g) {
        size_t max = (size_t)cfg_int(c->cfg, CFG_REST_MAX_CONTENT_LENGTH);
        for (size_t i = 0; i < g->n_artifacts; i++) {
                const char *path = g->artifacts[i];
                if (strncmp(path, "file://", 7) == 0)
                        path += 7;
                const char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                char *data = NULL;
                size_t len = 0;
                int r = fs_read_all(path, max, &data, &len);
                if (r == -EFBIG)
                        return fail("%s: artifacts[%zu]: %s is larger than "
                                    "rest.server.max-content-length (%zu bytes)", file, i, path,
                                    max);
                if (r < 0)
                        return fail("%s: artifacts[%zu]: cannot read %s: %s", file, i, path,
                                    strerror(-r));
                char *enc = evhttp_encode_uri(name);
                char rpath[512];
                if (!enc || strlen(enc) > 400) {
                        free(enc);
                        free(data);
                        return fail("%s: artifacts[%zu]: file name too long", file, i);
                }
                snprintf(rpath, sizeof(rpath), "/artifacts/upload?name=%s", enc);
                free(enc);
                char err[1024];
                int status = 0;
                struct cli_json *j = NULL;
                r = cli_cluster_call_json(&c->cluster, "POST", rpath, data, len,
                                          "application/x-sharedlib", &status, &j, err,
                                          sizeof(err));
                free(data);
                if (r < 0)
                        return fail("%s", err);
                const char *id = j ? cli_json_str(cli_json_get(j, "id")) : NULL;
                if (status != 200 || !id) {
                        char errs[1024];
                        if (j)
                                cli_rest_errors(j, NULL, errs, sizeof(errs));
                        else
                                snprintf(errs, sizeof(errs), "%s", err[0] ? err : "(no details)");
                        cli_json_free(j);
                        return fail("POST %s: %d: %s", rpath, status, errs);
                }
                char *dup = strdup(id);
                cli_json_free(j);
                if (!dup)
                        return fail("out of memory");
                free(g->artifacts[i]);
                g->artifacts[i] = dup;
        }
        return 0;
}

/* ---- actions ---- */

enum { OPT_CONFIG_DIR = 1000, OPT_INPUT, OPT_OUTPUT };

static int action_run(struct cli *c, int argc, char **argv) {
        static const struct option opts[] = {
                {"parallelism", required_argument, NULL, 'p'},
                {"fromSavepoint", required_argument, NULL, 's'},
                {"allowNonRestoredState", no_argument, NULL, 'n'},
                {"detached", no_argument, NULL, 'd'},
                {"jobmanager", required_argument, NULL, 'm'},
                {"input", required_argument, NULL, OPT_INPUT},
                {"output", required_argument, NULL, OPT_OUTPUT},
                {"configDir", required_argument, NULL, OPT_CONFIG_DIR},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        uint32_t parallelism = 0;
        const char *savepoint = NULL, *jobmanager = NULL, *input = NULL, *output = NULL;
        bool detached = false, allow_non_restored = false;
        int opt;
        while ((opt = getopt_long(argc, argv, ":p:s:ndm:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'p':
                        if (!parse_parallelism(optarg, &parallelism))
                                return usage_error(c, "-p %s: expected a parallelism of 1..%d",
                                                   optarg, JOB_MAX_PARALLELISM);
                        break;
                case 's': savepoint = optarg; break;
                case 'n': allow_non_restored = true; break;
                case 'd': detached = true; break;
                case 'm': jobmanager = optarg; break;
                case OPT_INPUT: input = optarg; break;
                case OPT_OUTPUT: output = optarg; break;
                case OPT_CONFIG_DIR: c->conf_dir_arg = optarg; break;
                case 'h': fputs(c->usage, stdout); return 0;
                default: return bad_option(c, opt, argv);
                }
        }
        if (optind >= argc)
                return usage_error(c, "missing the job file");
        if (argc - optind > 1)
                return usage_error(c, "unexpected argument '%s'", argv[optind + 1]);
        if (allow_non_restored && !savepoint)
                return usage_error(c, "-n needs -s");
        if (input && !input[0])
                return usage_error(c, "--input needs a path");
        if (output && !output[0])
                return usage_error(c, "--output needs a path");
        const char *file = argv[optind];

        int r = setup(c, jobmanager);
        if (r)
                return r;
        struct job_graph *g = NULL;
        if ((r = load_job(c, file, parallelism, input, output, &g)))
                return r;
        if ((r = upload_artifacts(c, file, g))) {
                job_graph_free(g);
                return r;
        }
        char *body = NULL, err[1024];
        size_t body_len;
        int cr = cli_job_to_json(g, &body, &body_len, err, sizeof(err));
        job_graph_free(g);
        if (cr < 0)
                return fail("%s: %s", file, err);

        char path[PATH_MAX * 3 + 128] = "/jobs";
        if (savepoint) {
                char uri[PATH_MAX + 16];
                if (to_uri(savepoint, uri, sizeof(uri)) < 0) {
                        free(body);
                        return fail("-s %s: path too long", savepoint);
                }
                char *enc = evhttp_encode_uri(uri);
                if (!enc) {
                        free(body);
                        return fail("out of memory");
                }
                snprintf(path, sizeof(path), "/jobs?savepointPath=%s&allowNonRestoredState=%s",
                         enc, allow_non_restored ? "true" : "false");
                free(enc);
        }
        struct cli_json *j = NULL;
        r = rest_json(c, "POST", path, body, body_len, 202, 200, NULL, &j);
        free(body);
        if (r)
                return r;
        const char *jid_s = cli_json_str(cli_json_get(j, "jobid"));
        if (!jid_s || !job_id_valid(jid_s)) {
                cli_json_free(j);
                return fail("POST /jobs: the answer names no job id");
        }
        char jid[33];
        snprintf(jid, sizeof(jid), "%s", jid_s);
        cli_json_free(j);
        printf("Job has been submitted with JobID %s\n", jid);
        fflush(stdout);
        if (detached)
                return 0;

        struct cli_json *done = NULL;
        if ((r = wait_terminal(c, jid, 0, &done)))
                return r;
        const char *state = cli_json_str(cli_json_get(done, "state"));
        int64_t duration = 0;
        cli_json_int(cli_json_get(done, "duration"), &duration);
        if (strcmp(state, "FINISHED") == 0) {
                printf("Program execution finished\n");
                printf("Job with JobID %s has finished.\n", jid);
                printf("Job Runtime: %" PRId64 " ms\n", duration);
                cli_json_free(done);
                return 0;
        }
        cli_json_free(done);
        /* FAILED or CANCELED: the root cause, as Flink's client shows it. */
        char epath[64], cause[2048] = "";
        snprintf(epath, sizeof(epath), "/jobs/%s/exceptions", jid);
        struct cli_json *ex = NULL;
        int st;
        if (cli_cluster_call_json(&c->cluster, "GET", epath, NULL, 0, NULL, &st, &ex, err,
                                  sizeof(err)) == 0 && st == 200) {
                const char *root = cli_json_str(cli_json_get(ex, "root-exception"));
                if (root)
                        snprintf(cause, sizeof(cause), "%s", root);
        }
        cli_json_free(ex);
        fflush(stdout);
        fprintf(stderr,
                "\n------------------------------------------------------------\n"
                " The program finished with the following exception:\n\n"
                "Job %s %s.%s%s\n",
                jid, strcmp(state, "CANCELED") == 0 ? "was cancelled" : "failed",
                cause[0] ? "\nCaused by: " : "", cause);
        return CLI_EXIT_FAILURE;
}

struct job_line {
        int64_t start;
        const char *jid;
        const char *name;
        const char *state;
};

static int cmp_job_line(const void *a, const void *b) {
        const struct job_line *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start ? 1 : strcmp(x->jid, y->jid);
}

static void print_jobs(const char *header, const struct job_line *lines, size_t n) {
        printf("%s\n", header);
        for (size_t i = 0; i < n; i++) {
                char when[32] = "";
                time_t t = (time_t)(lines[i].start / 1000);
                struct tm tm;
                if (lines[i].start > 0 && localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%d.%m.%Y %H:%M:%S", &tm);
                printf("%s : %s : %s (%s)\n", when, lines[i].jid, lines[i].name, lines[i].state);
        }
        printf("--------------------------------------------------------------\n");
}

static int action_list(struct cli *c, int argc, char **argv) {
        static const struct option opts[] = {
                {"running", no_argument, NULL, 'r'},
                {"scheduled", no_argument, NULL, 's'},
                {"all", no_argument, NULL, 'a'},
                {"jobmanager", required_argument, NULL, 'm'},
                {"configDir", required_argument, NULL, OPT_CONFIG_DIR},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        bool running = false, scheduled = false, all = false;
        const char *jobmanager = NULL;
        int opt;
        while ((opt = getopt_long(argc, argv, ":rsam:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'r': running = true; break;
                case 's': scheduled = true; break;
                case 'a': all = true; break;
                case 'm': jobmanager = optarg; break;
                case OPT_CONFIG_DIR: c->conf_dir_arg = optarg; break;
                case 'h': fputs(c->usage, stdout); return 0;
                default: return bad_option(c, opt, argv);
                }
        }
        if (optind < argc)
                return usage_error(c, "unexpected argument '%s'", argv[optind]);
        if (all)
                running = scheduled = true;
        else if (!running && !scheduled)
                running = scheduled = true;

        int r = setup(c, jobmanager);
        if (r)
                return r;
        printf("Waiting for response...\n");
        fflush(stdout);
        struct cli_json *j = NULL;
        if ((r = rest_json(c, "GET", "/jobs/overview", NULL, 0, 200, 200, NULL, &j)))
                return r;
        const struct cli_json *jobs = cli_json_get(j, "jobs");
        size_t n = jobs && jobs->type == CLI_JSON_ARRAY ? jobs->len : 0;
        struct job_line *run = calloc(n + 1, sizeof(*run));
        struct job_line *sched = calloc(n + 1, sizeof(*sched));
        struct job_line *term = calloc(n + 1, sizeof(*term));
        size_t nr = 0, ns = 0, nt = 0;
        if (!run || !sched || !term) {
                free(run);
                free(sched);
                free(term);
                cli_json_free(j);
                return fail("out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                const struct cli_json *job = &jobs->items[i];
                struct job_line l = {
                        .jid = cli_json_str(cli_json_get(job, "jid")),
                        .name = cli_json_str(cli_json_get(job, "name")),
                        .state = cli_json_str(cli_json_get(job, "state")),
                };
                if (!l.jid || !l.state)
                        continue;
                if (!l.name)
                        l.name = "";
                cli_json_int(cli_json_get(job, "start-time"), &l.start);
                if (state_terminal(l.state))
                        term[nt++] = l;
                else if (strcmp(l.state, "CREATED") == 0 || strcmp(l.state, "INITIALIZING") == 0)
                        sched[ns++] = l;
                else
                        run[nr++] = l;
        }
        qsort(run, nr, sizeof(*run), cmp_job_line);
        qsort(sched, ns, sizeof(*sched), cmp_job_line);
        qsort(term, nt, sizeof(*term), cmp_job_line);
        if (running) {
                if (nr == 0)
                        printf("No running jobs.\n");
                else
                        print_jobs("------------------ Running/Restarting Jobs -------------------",
                                   run, nr);
        }
        if (scheduled) {
                if (ns == 0)
                        printf("No scheduled jobs.\n");
                else
                        print_jobs("----------------------- Scheduled Jobs -----------------------",
                                   sched, ns);
        }
        if (all && nt > 0)
                print_jobs("---------------------- Terminated Jobs -----------------------", term,
                           nt);
        free(run);
        free(sched);
        free(term);
        cli_json_free(j);
        return 0;
}

/* Options shared by cancel, savepoint and leader: -m, --configDir, --help. Returns -1
 * to go on, else an exit code. */
static int parse_simple(struct cli *c, int argc, char **argv, const char **jobmanager) {
        static const struct option opts[] = {
                {"jobmanager", required_argument, NULL, 'm'},
                {"configDir", required_argument, NULL, OPT_CONFIG_DIR},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int opt;
        while ((opt = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'm': *jobmanager = optarg; break;
                case OPT_CONFIG_DIR: c->conf_dir_arg = optarg; break;
                case 'h': fputs(c->usage, stdout); return 0;
                default: return bad_option(c, opt, argv);
                }
        }
        return -1;
}

static int action_cancel(struct cli *c, int argc, char **argv) {
        const char *jobmanager = NULL;
        int r = parse_simple(c, argc, argv, &jobmanager);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return usage_error(c, "missing the job id");
        if (argc - optind > 1)
                return usage_error(c, "unexpected argument '%s'", argv[optind + 1]);
        const char *jid = argv[optind];
        if (!job_id_valid(jid))
                return usage_error(c, "'%s' is not a job id (32 hex digits)", jid);
        if ((r = setup(c, jobmanager)))
                return r;
        char path[96];
        snprintf(path, sizeof(path), "/jobs/%s?mode=cancel", jid);
        printf("Cancelling job %s.\n", jid);
        fflush(stdout);
        struct cli_json *j = NULL;
        if ((r = rest_json(c, "PATCH", path, NULL, 0, 202, 200, NULL, &j)))
                return r;
        cli_json_free(j);
        if ((r = wait_terminal(c, jid, CLI_CANCEL_WAIT_MS, &j)))
                return r;
        const char *state = cli_json_str(cli_json_get(j, "state"));
        if (strcmp(state, "CANCELED") != 0) {
                r = fail("job %s ended %s, not canceled", jid, state);
                cli_json_free(j);
                return r;
        }
        cli_json_free(j);
        printf("Cancelled job %s.\n", jid);
        return 0;
}

static int action_savepoint(struct cli *c, int argc, char **argv) {
        const char *jobmanager = NULL;
        int r = parse_simple(c, argc, argv, &jobmanager);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return usage_error(c, "missing the job id");
        if (argc - optind > 2)
                return usage_error(c, "unexpected argument '%s'", argv[optind + 2]);
        const char *jid = argv[optind];
        const char *dir = argc - optind == 2 ? argv[optind + 1] : NULL;
        if (!job_id_valid(jid))
                return usage_error(c, "'%s' is not a job id (32 hex digits)", jid);
        if (dir && !dir[0])
                return usage_error(c, "the target directory is empty");
        if ((r = setup(c, jobmanager)))
                return r;

        struct json_writer w;
        char *body = NULL;
        size_t body_len;
        char uri[PATH_MAX + 16];
        if (dir && to_uri(dir, uri, sizeof(uri)) < 0)
                return fail("%s: path too long", dir);
        json_writer_init(&w, 0);
        json_begin_object(&w);
        if (dir)
                json_kv_string(&w, "target-directory", uri);
        else
                json_kv_null(&w, "target-directory");
        json_kv_bool(&w, "cancel-job", false);
        json_end_object(&w);
        r = json_writer_take(&w, &body, &body_len);
        json_writer_finish(&w);
        if (r < 0)
                return fail("out of memory");
        char path[128];
        snprintf(path, sizeof(path), "/jobs/%s/savepoints", jid);
        printf("Triggering savepoint for job %s.\nWaiting for response...\n", jid);
        fflush(stdout);
        struct cli_json *j = NULL;
        r = rest_json(c, "POST", path, body, body_len, 202, 200, NULL, &j);
        free(body);
        if (r)
                return r;
        const char *trigger = cli_json_str(cli_json_get(j, "request-id"));
        if (!trigger || !trigger[0] || strlen(trigger) > 64 || strchr(trigger, '/')) {
                cli_json_free(j);
                return fail("POST %s: the answer names no request-id", path);
        }
        char spath[256];
        snprintf(spath, sizeof(spath), "/jobs/%s/savepoints/%s", jid, trigger);
        cli_json_free(j);
        uint64_t end = clock_mono_ms() + CLI_SAVEPOINT_WAIT_MS;
        for (;;) {
                if ((r = rest_json(c, "GET", spath, NULL, 0, 200, 200, NULL, &j)))
                        return r;
                const char *status = cli_json_str(cli_json_get(cli_json_get(j, "status"), "id"));
                if (status && strcmp(status, "COMPLETED") == 0)
                        break;
                cli_json_free(j);
                if (clock_mono_ms() >= end)
                        return fail("savepoint %s of job %s did not complete within %d s", trigger,
                                    jid, CLI_SAVEPOINT_WAIT_MS / 1000);
                cli_pause_ms(CLI_POLL_MS);
        }
        const struct cli_json *op = cli_json_get(j, "operation");
        const char *location = cli_json_str(cli_json_get(op, "location"));
        if (!location) {
                const struct cli_json *cause = cli_json_get(op, "failure-cause");
                const char *why = cli_json_str(cli_json_get(cause, "stack-trace"));
                if (!why)
                        why = cli_json_str(cli_json_get(cause, "class"));
                r = fail("savepoint of job %s failed: %s", jid, why ? why : "no reason given");
                cli_json_free(j);
                return r;
        }
        printf("Savepoint completed. Path: %s\n", location);
        printf("You can resume your program from this savepoint with the run command.\n");
        cli_json_free(j);
        return 0;
}

static int action_info(struct cli *c, int argc, char **argv) {
        static const struct option opts[] = {
                {"parallelism", required_argument, NULL, 'p'},
                {"input", required_argument, NULL, OPT_INPUT},
                {"output", required_argument, NULL, OPT_OUTPUT},
                {"configDir", required_argument, NULL, OPT_CONFIG_DIR},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        uint32_t parallelism = 0;
        const char *input = NULL, *output = NULL;
        int opt;
        while ((opt = getopt_long(argc, argv, ":p:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'p':
                        if (!parse_parallelism(optarg, &parallelism))
                                return usage_error(c, "-p %s: expected a parallelism of 1..%d",
                                                   optarg, JOB_MAX_PARALLELISM);
                        break;
                case OPT_INPUT: input = optarg; break;
                case OPT_OUTPUT: output = optarg; break;
                case OPT_CONFIG_DIR: c->conf_dir_arg = optarg; break;
                case 'h': fputs(c->usage, stdout); return 0;
                default: return bad_option(c, opt, argv);
                }
        }
        if (optind >= argc)
                return usage_error(c, "missing the job file");
        if (argc - optind > 1)
                return usage_error(c, "unexpected argument '%s'", argv[optind + 1]);
        if ((input && !input[0]) || (output && !output[0]))
                return usage_error(c, "--input and --output need a path");
        int r = setup(c, NULL);
        if (r)
                return r;
        struct job_graph *g = NULL;
        if ((r = load_job(c, argv[optind], parallelism, input, output, &g)))
                return r;
        struct json_writer w;
        char *text = NULL;
        size_t len;
        json_writer_init(&w, 0);
        json_writer_set_pretty(&w, true);
        job_graph_to_json(g, &w);
        r = json_writer_take(&w, &text, &len);
        json_writer_finish(&w);
        job_graph_free(g);
        if (r < 0)
                return fail("cannot write the plan (%s)", strerror(-r));
        printf("----------------------- Execution Plan -----------------------\n%s\n"
               "--------------------------------------------------------------\n\n"
               "No description provided.\n",
               text);
        free(text);
        return 0;
}

static int action_leader(struct cli *c, int argc, char **argv) {
        const char *jobmanager = NULL;
        int r = parse_simple(c, argc, argv, &jobmanager);
        if (r >= 0)
                return r;
        if (optind < argc)
                return usage_error(c, "unexpected argument '%s'", argv[optind]);
        if ((r = setup(c, jobmanager)))
                return r;
        struct cli_leader l;
        char err[2048];
        if (cli_cluster_find_leader(&c->cluster, &l, err, sizeof(err)) < 0)
                return fail("no leader found: %s", err);
        printf("Leader: %s\n", l.id);
        printf("Epoch: %" PRIu64 "\n", l.epoch);
        printf("REST: %s\n", l.rest_url);
        printf("RPC: %s\n", l.rpc);
        printf("Found through: %s\n", l.source);
        return 0;
}

/* ---- main ---- */

struct action {
        const char *name;
        const char *usage;
        int (*run)(struct cli *c, int argc, char **argv);
};

static const struct action ACTIONS[] = {
        {"run", USAGE_RUN, action_run},
        {"list", USAGE_LIST, action_list},
        {"cancel", USAGE_CANCEL, action_cancel},
        {"savepoint", USAGE_SAVEPOINT, action_savepoint},
        {"info", USAGE_INFO, action_info},
        {"leader", USAGE_LEADER, action_leader},
};

int main(int argc, char **argv) {
        struct cli c = {.usage = USAGE_MAIN};
        signal(SIGPIPE, SIG_IGN);
        int i = 1;
        /* Global options before the action. */
        while (i < argc && argv[i][0] == '-') {
                const char *a = argv[i];
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        fputs(USAGE_MAIN, stdout);
                        return 0;
                }
                if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
                        printf("flinc %s\n", FLINC_VERSION);
                        return 0;
                }
                if (strcmp(a, "--configDir") == 0) {
                        if (i + 1 >= argc)
                                return usage_error(&c, "--configDir needs a value");
                        c.conf_dir_arg = argv[i + 1];
                        i += 2;
                        continue;
                }
                if (strncmp(a, "--configDir=", 12) == 0) {
                        c.conf_dir_arg = a + 12;
                        i++;
                        continue;
                }
                return usage_error(&c, "unknown option '%s'", a);
        }
        if (i >= argc)
                return usage_error(&c, "please specify an action");
        if (c.conf_dir_arg && !c.conf_dir_arg[0])
                return usage_error(&c, "--configDir needs a value");
        const char *name = argv[i];
        if (strcmp(name, "help") == 0) {
                fputs(USAGE_MAIN, stdout);
                return 0;
        }
        for (size_t k = 0; k < sizeof(ACTIONS) / sizeof(ACTIONS[0]); k++) {
                if (strcmp(ACTIONS[k].name, name) != 0)
                        continue;
                c.action = name;
                c.usage = ACTIONS[k].usage;
                optind = 1;
                opterr = 0;
                int rc = ACTIONS[k].run(&c, argc - i, argv + i);
                fflush(stdout);
                teardown(&c);
                return rc;
        }
        return usage_error(&c, "'%s' is not a valid action", name);
}
