/* tools/bench/state: measures the keyed state backend (statebackend/) on this machine and
 * prints one JSON object on stdout:
 *
 *   rmw_ops_per_s                   read-modify-write of a reducing state (get, reduce,
 *                                   put), uniform random keys, like db_bench updaterandom;
 *                                   the better of two runs after a random fill
 *   db_bench_updaterandom_ops_per_s Debian's db_bench run in the same process tree, same
 *                                   key and value sizes, WAL off, same table options;
 *                                   the better of its two updaterandom runs
 *   ratio                           the first over the second
 *   sync_snapshot_ms                median and p99 of the synchronous snapshot part, at
 *                                   --keys keys, 1 % of them updated between snapshots
 *   incremental_bytes_ratio         bytes copied by a checkpoint after 1 % updates over
 *                                   those of the full first checkpoint
 *   restore_mb_per_s                restore of a checkpoint of >= --restore-mb MB (10^6
 *                                   bytes) of SST data from checkpoint storage whose pages
 *                                   were dropped from the page cache first
 *   state_bytes                     the size of that restored checkpoint
 *
 * Checkpoint storage lives in a fresh directory under --dir (default $TMPDIR or /tmp);
 * the backends' local directories and db_bench's database in one under --local-dir
 * (default: the same as --dir), as state.checkpoints.dir and
 * state.backend.rocksdb.localdir may be different disks. Both are removed at the end.
 * Progress and details go to stderr, among them where the synchronous parts' time went:
 * the task thread and RocksDB's flush thread on a CPU, waiting for one (a loaded
 * machine), or blocked (I/O); --verbose adds one line per snapshot with the flush /
 * checkpoint split. Not part of the test suite: a run takes a few
 * minutes. Usage: state [--dir D] [--local-dir D] [--keys N] [--snapshots N]
 * [--restore-mb N] [--db-bench PATH] [--no-db-bench] [--verbose]
 *
 * --db-bench-only [--key-size B] [--value-size B] [--memory BYTES]: runs only db_bench
 * (--keys keys of those sizes; defaults 16 and 100, and the worker's default
 * state.backend.rocksdb.memory.fixed-per-tm of 256 MiB) with the table options and the
 * cache and memtable sizes a worker's backend of one value state gets, and prints
 * {"db_bench_updaterandom_ops_per_s":..}. tools/bench/throughput uses it to compare the
 * keyed count with RocksDB at the sizes of the job's keys. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "statebackend/backend.h"
#include "statebackend/registry.h"
#include "statebackend/restore.h"
#include "statebackend/snapshot.h"

extern char **environ;

#define KEY_BYTES 16
#define VALUE_BYTES 100
#define MEMORY_BYTES (512ull << 20)
#define RESTORE_VALUE_BYTES 1024

static struct {
        const char *dir;
        const char *local_dir;
        uint64_t keys;
        int snapshots;
        uint64_t restore_mb;
        const char *db_bench;
        int no_db_bench;
        int db_bench_only;
        int db_key_bytes, db_value_bytes; /* db_bench's sizes */
        uint64_t memory;
        int verbose;
} opt = {.keys = 1000000, .snapshots = 100, .restore_mb = 550, .db_bench = "db_bench",
         .db_key_bytes = KEY_BYTES, .db_value_bytes = VALUE_BYTES, .memory = 256ull << 20};

static char root[1024];   /* checkpoint storage */
static char local[1024];  /* local working directories */

static void cleanup(void) {
        if (root[0])
                fs_rm_rf(root);
        if (local[0])
                fs_rm_rf(local);
}

static void die(int r, const char *what, const char *detail) {
        fprintf(stderr, "bench state: %s: %s%s%s\n", what, err_str(r), detail ? ": " : "",
                detail ? detail : "");
        cleanup();
        exit(1);
}

static uint64_t rng = 0x853c49e6748fea9bull;
static inline uint64_t next_rand(void) {
        uint64_t x = rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        rng = x;
        return x * 0x2545f4914f6cdd1dull;
}

static void fill_random(void *p, size_t len) {
        unsigned char *c = p;
        for (size_t i = 0; i < len; i += 8) {
                uint64_t v = next_rand();
                memcpy(c + i, &v, len - i < 8 ? len - i : 8);
        }
}

/* As db_bench's GenerateKeyFromInt: the number big-endian, padded with '0'. */
static size_t make_key(char *buf, uint64_t n) {
        for (int i = 7; i >= 0; i--) {
                buf[i] = (char)(n & 0xff);
                n >>= 8;
        }
        memset(buf + 8, '0', KEY_BYTES - 8);
        return KEY_BYTES;
}

/* Values are slices of a random buffer, as db_bench's RandomGenerator hands them out. */
#define VALUE_POOL_BYTES (1u << 20)
static char value_pool[VALUE_POOL_BYTES + RESTORE_VALUE_BYTES];

static const char *value_at_random(void) {
        return value_pool + next_rand() % VALUE_POOL_BYTES;
}

/* The update: a fresh value, with a counter carried over from the old one. */
static int update_fn(void *arg, const void *acc, size_t acc_len, const void *in, size_t in_len,
                     void *out, size_t out_cap, size_t *ret_len) {
        (void)arg;
        *ret_len = in_len;
        if (out_cap < in_len)
                return -ENOBUFS;
        memcpy(out, in, in_len);
        uint64_t n = 0;
        if (acc_len >= 8)
                memcpy(&n, acc, 8);
        n++;
        memcpy(out, &n, 8);
        return 0;
}

/* The machine may be shared: each phase's figures go with the load average it ran at. */
static void print_load(const char *when) {
        char buf[128] = "?";
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        snprintf(buf, sizeof(buf), "?");
                fclose(f);
        }
        buf[strcspn(buf, "\n")] = '\0';
        fprintf(stderr, "bench state: load average %s: %s\n", when, buf);
}

/* Scheduler accounting (/proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns runnable but
 * waiting for one) of the task thread and of RocksDB's flush thread (rocksdb:high), to
 * tell apart in a synchronous snapshot the CPU work, the wait for a CPU on a loaded
 * machine, and the rest: blocked in I/O (fsync) or on a lock. */
struct sched_acct {
        uint64_t task_run_ns, task_wait_ns, flush_run_ns, flush_wait_ns;
};

static bool read_schedstat(const char *dir, uint64_t *run_ns, uint64_t *wait_ns) {
        char path[512];
        snprintf(path, sizeof(path), "%s/schedstat", dir);
        FILE *f = fopen(path, "r");
        if (!f)
                return false;
        unsigned long long run = 0, wait = 0;
        bool ok = fscanf(f, "%llu %llu", &run, &wait) == 2;
        fclose(f);
        *run_ns += run;
        *wait_ns += wait;
        return ok;
}

static void sched_now(struct sched_acct *a) {
        *a = (struct sched_acct){0};
        char dir[512];
        snprintf(dir, sizeof(dir), "/proc/self/task/%ld", (long)gettid());
        (void)read_schedstat(dir, &a->task_run_ns, &a->task_wait_ns);
        DIR *d = opendir("/proc/self/task");
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char comm[64] = "";
                snprintf(dir, sizeof(dir), "/proc/self/task/%.32s/comm", e->d_name);
                FILE *f = fopen(dir, "r");
                if (!f)
                        continue;
                if (!fgets(comm, sizeof(comm), f))
                        comm[0] = '\0';
                fclose(f);
                if (strncmp(comm, "rocksdb:high", 12) != 0)
                        continue;
                snprintf(dir, sizeof(dir), "/proc/self/task/%.32s", e->d_name);
                (void)read_schedstat(dir, &a->flush_run_ns, &a->flush_wait_ns);
        }
        closedir(d);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* ---- db_bench ------------------------------------------------------------------------ */

static double run_db_bench(uint64_t cache_bytes, uint64_t write_buffer_bytes) {
        char db[1200], num[64], cache[64], wb[64], ks[32], vs[32], csp[64];
        snprintf(db, sizeof(db), "--db=%s/db_bench", local);
        snprintf(num, sizeof(num), "--num=%" PRIu64, opt.keys);
        snprintf(cache, sizeof(cache), "--cache_size=%" PRIu64, cache_bytes);
        snprintf(wb, sizeof(wb), "--write_buffer_size=%" PRIu64, write_buffer_bytes);
        snprintf(ks, sizeof(ks), "--key_size=%d", opt.db_key_bytes);
        snprintf(vs, sizeof(vs), "--value_size=%d", opt.db_value_bytes);
        snprintf(csp, sizeof(csp), "--universal_compression_size_percent=%d",
                 SB_COMPRESSED_PERCENT);
        /* The backend's settings (env.c, backend.c), so that the ratio measures the
         * backend's own work per operation. */
        char *argv[] = {(char *)opt.db_bench, "--benchmarks=fillrandom,updaterandom,updaterandom", num, ks, vs,
                        "--disable_wal=1", db, cache, wb, "--max_write_buffer_number=2",
                        "--compression_type=lz4", "--compression_ratio=1.0",
                        "--compaction_style=1", csp, "--level0_file_num_compaction_trigger=4",
                        "--block_size=16384", "--bloom_bits=10", "--format_version=5",
                        "--checksum_type=1", "--cache_index_and_filter_blocks=1",
                        "--pin_l0_filter_and_index_blocks_in_cache=1",
                        "--bytes_per_sync=1048576", "--max_background_jobs=3", "--threads=1",
                        "--seed=1", NULL};
        print_load("before db_bench");
        fprintf(stderr, "bench state: running");
        for (char **a = argv; *a; a++)
                fprintf(stderr, " %s", *a);
        fputc('\n', stderr);
        int pfd[2];
        if (pipe(pfd) < 0)
                die(-errno, "pipe", NULL);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        pid_t pid;
        int r = posix_spawnp(&pid, opt.db_bench, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pfd[1]);
        if (r != 0)
                die(-r, "starting db_bench (install rocksdb-tools or pass --db-bench)", opt.db_bench);
        char *out = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (len + 4096 > cap) {
                        cap = cap ? cap * 2 : 65536;
                        out = realloc(out, cap);
                        if (!out)
                                die(-ENOMEM, "reading db_bench output", NULL);
                }
                ssize_t n = read(pfd[0], out + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        close(pfd[0]);
        out[len] = '\0';
        int status = 0;
        waitpid(pid, &status, 0);
        /* The better of the two updaterandom runs, as for the backend. */
        double ops = 0;
        int runs = 0;
        for (const char *line = strstr(out, "\nupdaterandom"); line;
             line = strstr(line + 1, "\nupdaterandom")) {
                const char *m = strstr(line, "micros/op");
                double v;
                if (m && sscanf(m, "micros/op %lf ops/sec", &v) == 1) {
                        runs++;
                        ops = v > ops ? v : ops;
                        const char *eol = strchr(line + 1, '\n');
                        fprintf(stderr, "bench state: db_bench %.*s\n",
                                (int)(eol ? eol - line - 1 : 80), line + 1);
                }
        }
        const char *fill = strstr(out, "fillrandom   :");
        const char *eol = fill ? strchr(fill, '\n') : NULL;
        if (fill && eol)
                fprintf(stderr, "bench state: db_bench %.*s\n", (int)(eol - fill), fill);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || runs != 2) {
                fprintf(stderr, "%s\n", out);
                die(-EIO, "db_bench failed or printed no updaterandom result", NULL);
        }
        free(out);
        char path[1200];
        snprintf(path, sizeof(path), "%s/db_bench", local);
        fs_rm_rf(path);
        return ops;
}

/* ---- checkpoints --------------------------------------------------------------------- */

struct ckpt_loop {
        struct sb_backend *b;
        struct sb_registry *reg;
        char job_dir[1100];
        uint64_t retained[4];
        size_t n_retained;
};

/* Sync + upload + register + confirm, retiring beyond 2 retained; returns the sync ms. */
static double checkpoint(struct ckpt_loop *c, uint64_t id, struct sb_upload_stats *stats,
                         struct sb_sync_stats *ret_sync, struct sched_acct *ret_sched,
                         char **ret_handle, size_t *ret_len) {
        char err[1024];
        struct sb_snapshot *snap = NULL;
        struct sched_acct s0, s1;
        sched_now(&s0);
        uint64_t t0 = clock_mono_us();
        int r = sb_snapshot_sync(c->b, id, &snap, err, sizeof(err));
        uint64_t t1 = clock_mono_us();
        sched_now(&s1);
        if (ret_sched)
                *ret_sched = (struct sched_acct){
                        .task_run_ns = s1.task_run_ns - s0.task_run_ns,
                        .task_wait_ns = s1.task_wait_ns - s0.task_wait_ns,
                        .flush_run_ns = s1.flush_run_ns - s0.flush_run_ns,
                        .flush_wait_ns = s1.flush_wait_ns - s0.flush_wait_ns,
                };
        if (r < 0)
                die(r, "synchronous snapshot", err);
        if (ret_sync)
                sb_snapshot_get_sync_stats(snap, ret_sync);
        char *h = NULL;
        size_t len = 0;
        r = sb_snapshot_upload(snap, c->job_dir, &h, &len, stats, err, sizeof(err));
        sb_snapshot_destroy(snap);
        if (r < 0)
                die(r, "upload", err);
        struct sb_bytes hb = {h, len};
        r = sb_registry_register(c->reg, id, &hb, 1, err, sizeof(err));
        if (r < 0)
                die(r, "registry", err);
        sb_backend_confirm(c->b, id);
        c->retained[c->n_retained++] = id;
        if (c->n_retained > 2) {
                struct sb_paths out = {0};
                r = sb_registry_retire(c->reg, c->retained[0], &out);
                if (r < 0)
                        die(r, "retire", NULL);
                for (size_t i = 0; i < out.n; i++) {
                        char p[2300];
                        snprintf(p, sizeof(p), "%s/%s", c->job_dir, out.paths[i]);
                        unlink(p);
                }
                sb_paths_finish(&out);
                memmove(c->retained, c->retained + 1, --c->n_retained * sizeof(c->retained[0]));
        }
        if (ret_handle) {
                *ret_handle = h;
                *ret_len = len;
        } else {
                free(h);
        }
        return (double)(t1 - t0) / 1000.0;
}

static void rmw_ops(struct sb_state *st, uint64_t n) {
        char key[KEY_BYTES];
        for (uint64_t i = 0; i < n; i++) {
                make_key(key, next_rand() % opt.keys);
                struct sb_key k = {.key = key, .key_len = KEY_BYTES};
                int r = sb_reducing_add(st, &k, value_at_random(), VALUE_BYTES);
                if (r < 0)
                        die(r, "reducing add", NULL);
        }
}

/* Drops a file's pages from the page cache (it was fsynced, so they are clean). */
static void drop_cache(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"dir", required_argument, NULL, 'd'},
                {"local-dir", required_argument, NULL, 'l'},
                {"keys", required_argument, NULL, 'k'},
                {"snapshots", required_argument, NULL, 's'},
                {"restore-mb", required_argument, NULL, 'r'},
                {"db-bench", required_argument, NULL, 'b'},
                {"no-db-bench", no_argument, &opt.no_db_bench, 1},
                {"verbose", no_argument, &opt.verbose, 1},
                {"db-bench-only", no_argument, &opt.db_bench_only, 1},
                {"key-size", required_argument, NULL, 'K'},
                {"value-size", required_argument, NULL, 'V'},
                {"memory", required_argument, NULL, 'm'},
                {"help", no_argument, NULL, 'h'},
                {0}};
        int c;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'd': opt.dir = optarg; break;
                case 'l': opt.local_dir = optarg; break;
                case 'k': opt.keys = strtoull(optarg, NULL, 10); break;
                case 's': opt.snapshots = atoi(optarg); break;
                case 'r': opt.restore_mb = strtoull(optarg, NULL, 10); break;
                case 'b': opt.db_bench = optarg; break;
                case 'K': opt.db_key_bytes = atoi(optarg); break;
                case 'V': opt.db_value_bytes = atoi(optarg); break;
                case 'm': opt.memory = strtoull(optarg, NULL, 10); break;
                case 0: break;
                default:
                        fprintf(c == 'h' ? stdout : stderr, "usage: %s [--dir D] [--local-dir D] "
                                "[--keys N] [--snapshots N] [--restore-mb N] [--db-bench PATH] "
                                "[--no-db-bench] [--verbose]\n"
                                "       %s --db-bench-only [--keys N] [--key-size B] "
                                "[--value-size B] [--memory BYTES] [--db-bench PATH]\n"
                                "(defaults: --keys 1000000 --snapshots 100 --restore-mb 550; while "
                                "iterating on the snapshots, --no-db-bench --restore-mb 20 saves "
                                "most of the time)\n", argv[0], argv[0]);
                        return c == 'h' ? 0 : 2;
                }
        }
        if (opt.keys < 1000 || opt.snapshots < 2 || opt.snapshots > 10000) {
                fprintf(stderr, "bench state: --keys must be >= 1000, --snapshots in 2..10000\n");
                return 2;
        }
        if (opt.db_key_bytes < 1 || opt.db_key_bytes > 4096 || opt.db_value_bytes < 1 ||
            opt.db_value_bytes > 1 << 20 || opt.memory < (1u << 20)) {
                fprintf(stderr, "bench state: --key-size must be in 1..4096, --value-size in "
                        "1..1048576, --memory at least 1048576\n");
                return 2;
        }
        if (!opt.dir)
                opt.dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        if (!opt.local_dir)
                opt.local_dir = opt.dir;
        snprintf(root, sizeof(root), "%s/flinc-bench-state-XXXXXX", opt.dir);
        if (!mkdtemp(root)) {
                int r = -errno;
                root[0] = '\0';
                die(r, "creating a directory under", opt.dir);
        }
        snprintf(local, sizeof(local), "%s/flinc-bench-state-local-XXXXXX", opt.local_dir);
        if (!mkdtemp(local)) {
                int r = -errno;
                local[0] = '\0';
                die(r, "creating a directory under", opt.local_dir);
        }
        fprintf(stderr, "bench state: checkpoint storage in %s, local state in %s (both removed "
                "at the end)\n", root, local);
        fill_random(value_pool, sizeof(value_pool));

        char err[1024], path[1200];
        struct sb_env *env = NULL;
        struct sb_env_config ec = {.memory_fixed_per_tm_bytes =
                                           opt.db_bench_only ? opt.memory : MEMORY_BYTES};
        int r = sb_env_create(&ec, &env, err, sizeof(err));
        if (r < 0)
                die(r, "sb_env_create", err);
        struct sb_env_stats es;
        if (opt.db_bench_only) {
                /* the sizes a worker's keyed subtask gets: one backend, one value state */
                struct sb_state_desc vd = {.name = "agg", .kind = SB_STATE_VALUE};
                snprintf(path, sizeof(path), "%s/sizes", local);
                struct sb_backend_config vc = {.local_dir = path, .range = {0, 128},
                                               .states = &vd, .n_states = 1};
                struct sb_backend *vb = NULL;
                r = sb_backend_create(env, &vc, &vb, err, sizeof(err));
                if (r < 0)
                        die(r, "sb_backend_create", err);
                sb_env_get_stats(env, &es);
                sb_backend_destroy(vb);
                double ops = run_db_bench(es.block_cache_capacity_bytes,
                                          es.write_buffer_per_cf_bytes);
                printf("{\"db_bench_updaterandom_ops_per_s\":%.0f,\"keys\":%" PRIu64
                       ",\"key_size\":%d,\"value_size\":%d,\"cache_bytes\":%" PRIu64
                       ",\"write_buffer_bytes\":%" PRIu64 "}\n", ops, opt.keys,
                       opt.db_key_bytes, opt.db_value_bytes, es.block_cache_capacity_bytes,
                       es.write_buffer_per_cf_bytes);
                sb_env_destroy(env);
                cleanup();
                return 0;
        }

        /* 1. Read-modify-write throughput. */
        struct sb_state_desc d[] = {{.name = "acc", .kind = SB_STATE_REDUCING, .reduce = update_fn}};
        snprintf(path, sizeof(path), "%s/rmw", local);
        struct sb_backend_config cfg = {.local_dir = path, .range = {0, 128}, .states = d,
                                        .n_states = 1};
        struct sb_backend *b = NULL;
        r = sb_backend_create(env, &cfg, &b, err, sizeof(err));
        if (r < 0)
                die(r, "sb_backend_create", err);
        sb_env_get_stats(env, &es);
        struct sb_state *st = sb_backend_state(b, "acc");
        print_load("before the read-modify-write runs");
        uint64_t t0 = clock_mono_us();
        rmw_ops(st, opt.keys); /* the fill: random keys, as fillrandom */
        uint64_t t1 = clock_mono_us();
        rmw_ops(st, opt.keys);
        uint64_t t2 = clock_mono_us();
        rmw_ops(st, opt.keys);
        uint64_t t3 = clock_mono_us();
        double fill_ops = (double)opt.keys * 1e6 / (double)(t1 - t0);
        double rmw1 = (double)opt.keys * 1e6 / (double)(t2 - t1);
        double rmw2 = (double)opt.keys * 1e6 / (double)(t3 - t2);
        /* The better of two runs, on both sides: the machine may be shared. */
        double rmw = rmw1 > rmw2 ? rmw1 : rmw2;
        fprintf(stderr, "bench state: backend fill %.0f ops/s, read-modify-write %.0f and %.0f "
                "ops/s (%" PRIu64 " keys of %d bytes, values of %d bytes)\n", fill_ops, rmw1,
                rmw2, opt.keys, KEY_BYTES, VALUE_BYTES);

        double dbb = 0;
        if (!opt.no_db_bench)
                dbb = run_db_bench(es.block_cache_capacity_bytes, es.write_buffer_per_cf_bytes);

        /* 2. Incremental ratio and synchronous snapshot latency at opt.keys keys. */
        struct ckpt_loop cl = {.b = b};
        snprintf(cl.job_dir, sizeof(cl.job_dir), "%s/checkpoints/job", root);
        r = sb_registry_create(&cl.reg);
        if (r < 0)
                die(r, "sb_registry_create", NULL);
        sb_backend_compact(b);
        print_load("before the snapshots");
        struct sb_upload_stats s1, s2, s;
        checkpoint(&cl, 1, &s1, NULL, NULL, NULL, NULL);
        rmw_ops(st, opt.keys / 100);
        checkpoint(&cl, 2, &s2, NULL, NULL, NULL, NULL);
        double incr = (double)s2.copied_bytes / (double)s1.copied_bytes;
        fprintf(stderr, "bench state: checkpoint 1 copied %" PRIu64 " bytes, checkpoint 2 after "
                "1%% updates %" PRIu64 " bytes\n", s1.copied_bytes, s2.copied_bytes);
        double *lat = calloc((size_t)opt.snapshots, sizeof(double));
        double *flush_ms = calloc((size_t)opt.snapshots, sizeof(double));
        double *cp_ms = calloc((size_t)opt.snapshots, sizeof(double));
        struct sched_acct *sched = calloc((size_t)opt.snapshots, sizeof(*sched));
        if (!lat || !flush_ms || !cp_ms || !sched)
                die(-ENOMEM, "latency arrays", NULL);
        uint64_t copied = 0, memtable = 0;
        for (int i = 0; i < opt.snapshots; i++) {
                struct sb_sync_stats ss;
                rmw_ops(st, opt.keys / 100);
                lat[i] = checkpoint(&cl, 3 + (uint64_t)i, &s, &ss, &sched[i], NULL, NULL);
                flush_ms[i] = (double)ss.flush_us / 1000.0;
                cp_ms[i] = (double)ss.checkpoint_us / 1000.0;
                copied += s.copied_bytes;
                memtable += ss.memtable_entries;
                if (opt.verbose) {
                        struct sb_backend_stats vs;
                        sb_backend_get_stats(b, &vs);
                        fprintf(stderr, "bench state: snapshot %d: sync %.2f ms (flush of %" PRIu64
                                " memtable entries %.2f ms, checkpoint %.2f ms), copied %" PRIu64
                                " bytes in %u new SST files; %u live SST files (%u in L0); task "
                                "thread %.2f ms on a CPU + %.2f ms waiting for one, flush thread "
                                "%.2f + %.2f ms\n",
                                i + 3, lat[i], ss.memtable_entries, flush_ms[i], cp_ms[i],
                                s.copied_bytes, s.new_sst_files, vs.sst_files, vs.l0_files,
                                sched[i].task_run_ns / 1e6, sched[i].task_wait_ns / 1e6,
                                sched[i].flush_run_ns / 1e6, sched[i].flush_wait_ns / 1e6);
                }
        }
        print_load("after the snapshots");
        /* Where the time of all snapshots and of the slowest 5 % went: the sync part is
         * the task thread's own work (on a CPU or waiting for one) plus its wait for the
         * flush thread (on a CPU, waiting for one) plus the rest, blocked in I/O. */
        double *order = calloc((size_t)opt.snapshots, sizeof(double));
        if (!order)
                die(-ENOMEM, "latency arrays", NULL);
        memcpy(order, lat, (size_t)opt.snapshots * sizeof(double));
        qsort(order, (size_t)opt.snapshots, sizeof(double), cmp_double);
        double p95 = order[(size_t)opt.snapshots * 95 / 100];
        free(order);
        for (int tail = 0; tail < 2; tail++) {
                double tot = 0, tr = 0, tw = 0, fr = 0, fw = 0;
                int n = 0;
                for (int i = 0; i < opt.snapshots; i++) {
                        if (tail && lat[i] < p95)
                                continue;
                        n++;
                        tot += lat[i];
                        tr += sched[i].task_run_ns / 1e6;
                        tw += sched[i].task_wait_ns / 1e6;
                        fr += sched[i].flush_run_ns / 1e6;
                        fw += sched[i].flush_wait_ns / 1e6;
                }
                double rest = tot - tr - tw - fr - fw;
                fprintf(stderr, "bench state: %s (%d, %.2f ms on average): task thread on a CPU "
                        "%.0f %%, waiting for a CPU %.0f %%; flush thread on a CPU %.0f %%, waiting "
                        "for a CPU %.0f %%; blocked (I/O, locks) %.0f %%\n",
                        tail ? "the slowest 5 % of the synchronous parts" :
                               "all synchronous parts", n, tot / n, 100 * tr / tot,
                        100 * tw / tot, 100 * fr / tot, 100 * fw / tot, 100 * rest / tot);
        }
        free(sched);
        qsort(lat, (size_t)opt.snapshots, sizeof(double), cmp_double);
        qsort(flush_ms, (size_t)opt.snapshots, sizeof(double), cmp_double);
        qsort(cp_ms, (size_t)opt.snapshots, sizeof(double), cmp_double);
        size_t i99 = (size_t)(opt.snapshots * 99 + 99) / 100 - 1;
        double median = lat[opt.snapshots / 2];
        double p99 = lat[i99];
        fprintf(stderr, "bench state: synchronous part: flush median %.2f ms, p99 %.2f ms, max "
                "%.2f ms (%.0f memtable entries on average); checkpoint median %.2f ms, p99 %.2f "
                "ms, max %.2f ms\n", flush_ms[opt.snapshots / 2], flush_ms[i99],
                flush_ms[opt.snapshots - 1], (double)memtable / opt.snapshots,
                cp_ms[opt.snapshots / 2], cp_ms[i99], cp_ms[opt.snapshots - 1]);
        free(flush_ms);
        free(cp_ms);
        struct sb_backend_stats bs;
        sb_backend_get_stats(b, &bs);
        fprintf(stderr, "bench state: %d synchronous snapshots: median %.2f ms, p99 %.2f ms, max "
                "%.2f ms; %.0f bytes copied per checkpoint on average; %u live SST files, %zu "
                "shared files retained\n", opt.snapshots, median, p99, lat[opt.snapshots - 1],
                (double)copied / opt.snapshots, bs.sst_files, sb_registry_shared_count(cl.reg));
        free(lat);
        sb_backend_destroy(b);
        sb_registry_destroy(cl.reg);
        snprintf(path, sizeof(path), "%s/checkpoints", root);
        fs_rm_rf(path);

        /* 3. Restore of >= opt.restore_mb MB. */
        struct sb_state_desc dv[] = {{.name = "big", .kind = SB_STATE_VALUE}};
        snprintf(path, sizeof(path), "%s/restore-src", local);
        cfg = (struct sb_backend_config){.local_dir = path, .range = {0, 128}, .states = dv,
                                         .n_states = 1};
        r = sb_backend_create(env, &cfg, &b, err, sizeof(err));
        if (r < 0)
                die(r, "sb_backend_create", err);
        uint64_t n_big = opt.restore_mb * 1000000ull / RESTORE_VALUE_BYTES + 1;
        char key[KEY_BYTES];
        for (uint64_t i = 0; i < n_big; i++) {
                make_key(key, i);
                struct sb_key k = {.key = key, .key_len = KEY_BYTES};
                r = sb_value_put(sb_backend_state(b, "big"), &k, value_at_random(),
                                 RESTORE_VALUE_BYTES);
                if (r < 0)
                        die(r, "put", sb_backend_last_error(b));
        }
        sb_backend_compact(b);
        struct ckpt_loop rl = {.b = b};
        snprintf(rl.job_dir, sizeof(rl.job_dir), "%s/checkpoints/job", root);
        sb_registry_create(&rl.reg);
        char *handle = NULL;
        size_t handle_len = 0;
        checkpoint(&rl, 1, &s, NULL, NULL, &handle, &handle_len);
        sb_backend_destroy(b);
        struct sb_handle *h = NULL;
        r = sb_handle_parse(handle, handle_len, &h, err, sizeof(err));
        if (r < 0)
                die(r, "handle", err);
        uint64_t state_bytes = sb_handle_state_bytes(h);
        for (size_t i = 0; i < h->n_shared; i++) {
                char rel[64];
                sb_handle_shared_path(&h->shared[i], rel, sizeof(rel));
                snprintf(path, sizeof(path), "%s/%s", rl.job_dir, rel);
                drop_cache(path);
        }
        snprintf(path, sizeof(path), "%s/restore-dst", local);
        cfg.local_dir = path;
        struct sb_bytes hb = {handle, handle_len};
        t0 = clock_mono_us();
        r = sb_backend_restore(env, &cfg, rl.job_dir, &hb, 1, &b, err, sizeof(err));
        t1 = clock_mono_us();
        if (r < 0)
                die(r, "restore", err);
        double restore_mbps = (double)state_bytes / 1e6 / ((double)(t1 - t0) / 1e6);
        /* Spot check: keys come back with their values' sizes. */
        struct sb_buf out = {0};
        for (int i = 0; i < 1000; i++) {
                make_key(key, next_rand() % n_big);
                struct sb_key k = {.key = key, .key_len = KEY_BYTES};
                r = sb_value_get(sb_backend_state(b, "big"), &k, &out);
                if (r != 1 || out.len != RESTORE_VALUE_BYTES)
                        die(r < 0 ? r : -EBADMSG, "restored value missing", key);
        }
        sb_buf_finish(&out);
        fprintf(stderr, "bench state: restored %" PRIu64 " bytes (%zu SST files) in %.2f s\n",
                state_bytes, h->n_shared, (double)(t1 - t0) / 1e6);
        sb_handle_free(h);
        free(handle);
        sb_backend_destroy(b);
        sb_registry_destroy(rl.reg);
        sb_env_destroy(env);
        cleanup();

        printf("{\"rmw_ops_per_s\":%.0f,\"db_bench_updaterandom_ops_per_s\":%.0f,\"ratio\":%.3f,"
               "\"sync_snapshot_ms\":{\"median\":%.2f,\"p99\":%.2f},"
               "\"incremental_bytes_ratio\":%.4f,\"restore_mb_per_s\":%.1f,"
               "\"state_bytes\":%" PRIu64 "}\n",
               rmw, dbb, dbb > 0 ? rmw / dbb : 0.0, median, p99, incr, restore_mbps, state_bytes);
        return 0;
}
