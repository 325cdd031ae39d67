/* Unit tests of the worker's pure parts and of one chain and one task run in-process:
 * generator determinism and its split across subtasks, the rate limiter's arithmetic,
 * file sink names and rolling, the check that refuses steps the worker cannot run,
 * windows (event time tumbling and sliding with late records, processing time, a
 * checkpoint and restore mid-stream) and the task state machine (worker/ops.h,
 * worker/task.h). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsutil.h"
#include "common/jobgraph.h"
#include "task_wait.h"
#include "unit.h"
#include "worker/ops.h"
#include "worker/substate.h"
#include "worker/task.h"

__extension__ typedef unsigned __int128 u128;

static struct job_graph *parse(const char *yaml) {
        struct job_graph *g = NULL;
        char err[512] = "";
        int r = job_graph_parse_yaml("test.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "job_graph_parse_yaml: %d %s", r, err);
        return g;
}

static char tmpdir[256];

static void make_tmpdir(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/flinc-test-worker-ops-XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp failed: %s", strerror(errno));
}

static char *read_file(const char *dir, const char *name, size_t *ret_len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        char *data = NULL;
        size_t len = 0;
        int r = fs_read_all(path, 1u << 24, &data, &len);
        CHECK(r == 0, "reading %s: %d", path, r);
        if (ret_len)
                *ret_len = len;
        return data;
}

/* ---- generator ---- */

static void test_gen_subtask_counts(void) {
        CHECK_INT(wrk_gen_subtask_count(10, 0, 3), 4);
        CHECK_INT(wrk_gen_subtask_count(10, 1, 3), 3);
        CHECK_INT(wrk_gen_subtask_count(10, 2, 3), 3);
        CHECK_INT(wrk_gen_subtask_count(2, 0, 3), 1);
        CHECK_INT(wrk_gen_subtask_count(2, 1, 3), 1);
        CHECK_INT(wrk_gen_subtask_count(2, 2, 3), 0);
        CHECK_INT(wrk_gen_subtask_count(1, 0, 1), 1);
        CHECK(wrk_gen_subtask_count(0, 0, 4) == UINT64_MAX, "count 0 is unbounded");
        CHECK_INT(wrk_gen_subtask_count(5, 3, 3), 0); /* subtask out of range */
        for (uint64_t count = 1; count < 60; count++)
                for (uint32_t p = 1; p <= 9; p++) {
                        uint64_t sum = 0;
                        for (uint32_t i = 0; i < p; i++)
                                sum += wrk_gen_subtask_count(count, i, p);
                        CHECK(sum == count, "count %" PRIu64 " p %u: subtasks emit %" PRIu64,
                              count, p, sum);
                }
}

/* Every sequence number below count is emitted by exactly one subtask. */
static void test_gen_split_covers_once(void) {
        enum { COUNT = 1000 };
        static unsigned char seen[COUNT];
        for (uint32_t p = 1; p <= 8; p++) {
                memset(seen, 0, sizeof(seen));
                for (uint32_t i = 0; i < p; i++) {
                        uint64_t n_i = wrk_gen_subtask_count(COUNT, i, p);
                        uint64_t prev = 0;
                        for (uint64_t k = 0; k < n_i; k++) {
                                uint64_t n = wrk_gen_seq(k, i, p);
                                CHECK(n < COUNT, "p %u subtask %u k %" PRIu64 ": n %" PRIu64, p, i,
                                      k, n);
                                CHECK(k == 0 || n > prev, "sequence of subtask %u not rising", i);
                                prev = n;
                                if (n < COUNT)
                                        seen[n]++;
                        }
                }
                for (uint64_t n = 0; n < COUNT; n++)
                        CHECK(seen[n] == 1, "p %u: record %" PRIu64 " emitted %d times", p, n,
                              seen[n]);
        }
        CHECK_INT(wrk_gen_seq(0, 2, 4), 2);
        CHECK_INT(wrk_gen_seq(3, 2, 4), 14);
}

static void test_gen_words(void) {
        for (uint64_t n = 0; n < 20; n++)
                CHECK_INT(wrk_gen_word_index(0, 5, 1, n, 0), n % 5);
        CHECK_INT(wrk_gen_word_index(3, 5, 1, 4, 0), 2);      /* (3 + 4) % 5 */
        CHECK_INT(wrk_gen_word_index(0, 10, 3, 4, 2), 4);     /* (12 + 2) % 10 */
        CHECK_INT(wrk_gen_word_index(7, 1, 1000, 99, 7), 0);  /* one word only */
        /* Large values against 128-bit arithmetic. */
        int64_t seeds[] = {0, 1, 42, INT64_MAX};
        int64_t words[] = {1, 7, 1000, 9999991, 10000000};
        int64_t lws[] = {1, 3, 1000};
        uint64_t ns[] = {0, 1, 12345, UINT64_MAX / 3, UINT64_MAX};
        for (size_t a = 0; a < sizeof(seeds) / sizeof(seeds[0]); a++)
                for (size_t b = 0; b < sizeof(words) / sizeof(words[0]); b++)
                        for (size_t c = 0; c < sizeof(lws) / sizeof(lws[0]); c++)
                                for (size_t d = 0; d < sizeof(ns) / sizeof(ns[0]); d++) {
                                        uint64_t j = (uint64_t)lws[c] - 1;
                                        u128 x = (u128)(uint64_t)seeds[a] +
                                                 (u128)ns[d] * (uint64_t)lws[c] + j;
                                        uint64_t expect = (uint64_t)(x % (uint64_t)words[b]);
                                        CHECK_INT(wrk_gen_word_index(seeds[a], words[b], lws[c],
                                                                     ns[d], j), expect);
                                }
}

static void test_gen_format(void) {
        struct job_generator_params p = {.seed = 0, .words = 10, .line_words = 3};
        char buf[64];
        size_t len = 0;
        CHECK_INT(wrk_gen_format(&p, 4, buf, sizeof(buf), &len), 0);
        CHECK_STR(buf, "w2 w3 w4");
        CHECK_INT(len, 8);
        p.line_words = 1;
        p.seed = 42;
        p.words = 1000;
        CHECK_INT(wrk_gen_format(&p, 7, buf, sizeof(buf), &len), 0);
        CHECK_STR(buf, "w49");
        /* Deterministic: the same record twice is the same text. */
        char again[64];
        size_t len2 = 0;
        CHECK_INT(wrk_gen_format(&p, 7, again, sizeof(again), &len2), 0);
        CHECK(len == len2 && memcmp(buf, again, len) == 0, "record 7 differs between calls");
        p.line_words = 10;
        CHECK_INT(wrk_gen_format(&p, 7, buf, 20, &len), -ENOSPC);
}

/* ---- rate limiter ---- */

/* A consumer that takes what it may and waits as told, on simulated time. */
static uint64_t simulate(uint64_t rate, uint32_t share, uint64_t duration_us) {
        struct wrk_rate r;
        uint64_t now = 1000000, end = now + duration_us, total = 0;
        wrk_rate_init(&r, rate, share, now);
        for (int guard = 0; guard < 10000000; guard++) {
                uint64_t a = wrk_rate_allowance(&r, now, WRK_STEP_MAX_RECORDS);
                if (a > 0) {
                        wrk_rate_take(&r, a);
                        total += a;
                        continue;
                }
                uint64_t w = wrk_rate_wait_us(&r, now);
                CHECK(w > 0, "allowance 0 but no wait at %" PRIu64, now);
                if (w == 0)
                        break;
                if (now + w > end)
                        break;
                now += w;
        }
        return total;
}

static void test_rate_arithmetic(void) {
        struct wrk_rate r;
        wrk_rate_init(&r, 1000, 1, 0);
        CHECK_INT(r.burst, 10);
        CHECK_INT(wrk_rate_allowance(&r, 0, 1024), 10);
        wrk_rate_take(&r, 10);
        CHECK_INT(wrk_rate_allowance(&r, 0, 1024), 0);
        CHECK_INT(wrk_rate_wait_us(&r, 0), 1000);
        CHECK_INT(wrk_rate_wait_us(&r, 400), 600);
        CHECK_INT(wrk_rate_allowance(&r, 1000, 1024), 1);
        CHECK_INT(wrk_rate_allowance(&r, 1000, 0), 0);
        /* A stall does not turn into a flood: the schedule restarts with one burst. */
        CHECK_INT(wrk_rate_allowance(&r, 10000000, 1024), 10);
        wrk_rate_take(&r, 10);
        CHECK_INT(wrk_rate_allowance(&r, 10000000, 1024), 0);

        /* Over time the rate holds: burst + rate * seconds. */
        CHECK_INT(simulate(1000, 1, 1000000), 1010);
        CHECK_INT(simulate(50, 1, 2000000), 101);
        /* A job rate of 10/s over 3 subtasks: 10/3 per second each, burst 1. */
        CHECK_INT(simulate(10, 3, 3000000), 11);
        /* A rate below the parallelism still emits (a fraction of a record per second). */
        CHECK_INT(simulate(1, 4, 8000000), 3);

        /* Unlimited. */
        wrk_rate_init(&r, 0, 4, 5);
        CHECK_INT(wrk_rate_allowance(&r, 5, 777), 777);
        CHECK_INT(wrk_rate_wait_us(&r, 5), 0);

        /* Large values do not overflow: a day at 10^9 records/s. */
        wrk_rate_init(&r, 1000000000, 1, 0);
        uint64_t day_us = 86400ull * 1000000ull;
        wrk_rate_take(&r, 86400ull * 1000000000ull);
        uint64_t a = wrk_rate_allowance(&r, day_us, UINT64_MAX);
        CHECK(a == r.burst, "expected one burst (%" PRIu64 ") after a day on schedule, seen %"
              PRIu64, r.burst, a);
        CHECK_INT(wrk_rate_wait_us(&r, day_us), 0);
}

/* ---- file sink names ---- */

static void test_part_names(void) {
        char buf[64];
        CHECK_INT(wrk_file_part_name(buf, sizeof(buf), 2, 1, 0), 0);
        CHECK_STR(buf, "part-2-1-0");
        CHECK_INT(wrk_file_part_name(buf, sizeof(buf), 4294967295u, 4294967295u, 7), 0);
        CHECK_STR(buf, "part-4294967295-4294967295-7");
        CHECK_INT(wrk_file_part_name(buf, 8, 2, 1, 0), -ENOSPC);
}

/* ---- chains ---- */

static void test_chain_check(void) {
        char err[512];
        struct job_graph *g = parse("name: ok\npipeline:\n  - generator: {count: 5}\n"
                                    "  - tokenize\n  - sink: {type: print}\n");
        if (g) {
                CHECK_INT(g->n_chains, 1);
                CHECK_INT(wrk_chain_check(g, 0, err, sizeof(err)), 0);
                CHECK_INT(wrk_chain_check(g, 1, err, sizeof(err)), -EINVAL);
        }
        job_graph_free(g);

        g = parse("name: windowed\npipeline:\n  - generator: {count: 5}\n  - tokenize\n"
                  "  - key_by: {field: word}\n  - window: {type: tumbling, size: 1 s}\n"
                  "  - sink: {type: discard}\n");
        if (g) {
                for (uint32_t ch = 0; ch < g->n_chains; ch++)
                        CHECK_INT(wrk_chain_check(g, ch, err, sizeof(err)), 0);
        }
        job_graph_free(g);
        /* a sliding window putting a record into more than 1000 windows is refused */
        g = parse("name: slid\npipeline:\n  - generator: {count: 5}\n"
                  "  - key_by: {field: word}\n"
                  "  - window: {type: sliding, size: 1001 ms, slide: 1 ms}\n"
                  "  - sink: {type: discard}\n");
        if (g) {
                CHECK_INT(g->n_chains, 2);
                CHECK_INT(wrk_chain_check(g, 1, err, sizeof(err)), -EINVAL);
                CHECK_CONTAINS(err, "step 'window-2': size / slide puts a record into more "
                               "than 1000 windows");
        }
        job_graph_free(g);

        /* Keyed counts and a rebalance between chains: supported (in-memory channels). */
        g = parse("name: keyed\npipeline:\n  - generator: {count: 5}\n  - tokenize\n"
                  "  - key_by: {field: word}\n  - count\n  - sink: {type: discard}\n");
        if (g) {
                for (uint32_t ch = 0; ch < g->n_chains; ch++)
                        CHECK_INT(wrk_chain_check(g, ch, err, sizeof(err)), 0);
        }
        job_graph_free(g);
        g = parse("name: rebalance\npipeline:\n  - generator: {count: 5, parallelism: 2}\n"
                  "  - sink: {type: print, parallelism: 1}\n");
        if (g) {
                CHECK_INT(g->n_chains, 2);
                CHECK_INT(wrk_chain_check(g, 0, err, sizeof(err)), 0);
                CHECK_INT(wrk_chain_check(g, 1, err, sizeof(err)), 0);
        }
        job_graph_free(g);
}

static int run_chain(struct wrk_chain *c) {
        int r;
        uint64_t emitted;
        if ((r = wrk_chain_open(c)) < 0)
                return r;
        while ((r = wrk_chain_step(c, WRK_STEP_MAX_RECORDS, &emitted)) == 0)
                ;
        if (r < 0)
                return r;
        return wrk_chain_finish(c);
}

static void test_chain_file_sink(void) {
        char yaml[1024], err[512] = "";
        snprintf(yaml, sizeof(yaml), "name: f\nparallelism: 2\npipeline:\n"
                 "  - generator: {seed: 0, words: 3, count: 10}\n"
                 "  - sink: {type: file, path: 'file://%s/out'}\n", tmpdir);
        struct job_graph *g = parse(yaml);
        if (!g)
                return;
        struct wrk_chain *c = NULL;
        struct wrk_chain_ctx ctx = {.job = "0123456789abcdef0123456789abcdef", .attempt = 1,
                                    .subtask = 1, .parallelism = 2};
        int r = wrk_chain_create(g, 0, &ctx, &c, err, sizeof(err));
        CHECK(r == 0, "wrk_chain_create: %d %s", r, err);
        if (r == 0) {
                CHECK_STR(wrk_chain_describe(c), "generator -> sink:file");
                r = run_chain(c);
                CHECK(r == 0, "chain run: %d %s", r, wrk_chain_error(c));
                CHECK_INT(wrk_chain_records_in(c), 5);
                CHECK_INT(wrk_chain_records_out(c), 5);
                char dir[300];
                snprintf(dir, sizeof(dir), "%s/out", tmpdir);
                char *data = read_file(dir, "part-1-1-0", NULL);
                /* records 1, 3, 5, 7, 9: words n % 3 */
                CHECK_STR(data, "w1\nw0\nw2\nw1\nw0\n");
                free(data);
        }
        wrk_chain_destroy(c);

        /* The other subtask, into the same directory. */
        ctx.subtask = 0;
        c = NULL;
        r = wrk_chain_create(g, 0, &ctx, &c, err, sizeof(err));
        CHECK(r == 0, "wrk_chain_create: %d %s", r, err);
        if (r == 0) {
                CHECK_INT(run_chain(c), 0);
                char dir[300];
                snprintf(dir, sizeof(dir), "%s/out", tmpdir);
                char *data = read_file(dir, "part-0-1-0", NULL);
                CHECK_STR(data, "w0\nw2\nw1\nw0\nw2\n");
                free(data);
        }
        wrk_chain_destroy(c);
        job_graph_free(g);
}

static void test_chain_file_roll(void) {
        char yaml[1024], err[512] = "";
        snprintf(yaml, sizeof(yaml), "name: roll\npipeline:\n"
                 "  - generator: {words: 10, count: 600}\n"
                 "  - sink: {type: file, path: '%s/roll', part_size: 1 kb}\n", tmpdir);
        struct job_graph *g = parse(yaml);
        if (!g)
                return;
        struct wrk_chain *c = NULL;
        struct wrk_chain_ctx ctx = {.job = "0123456789abcdef0123456789abcdef", .attempt = 3,
                                    .subtask = 0, .parallelism = 1};
        int r = wrk_chain_create(g, 0, &ctx, &c, err, sizeof(err));
        CHECK(r == 0, "wrk_chain_create: %d %s", r, err);
        if (r == 0) {
                CHECK_INT(run_chain(c), 0);
                char dir[300];
                snprintf(dir, sizeof(dir), "%s/roll", tmpdir);
                size_t l0 = 0, l1 = 0;
                char *p0 = read_file(dir, "part-0-3-0", &l0);
                char *p1 = read_file(dir, "part-0-3-1", &l1);
                /* 600 lines of 3 bytes: 1800 bytes, rolled once past 1024 */
                CHECK_INT(l0, 1026);
                CHECK_INT(l1, 774);
                char p2[400];
                snprintf(p2, sizeof(p2), "%s/part-0-3-2", dir);
                CHECK(access(p2, F_OK) != 0, "%s exists; no third part was due", p2);
                CHECK(p0 && strncmp(p0, "w0\nw1\nw2\n", 9) == 0, "first part starts with w0 w1 w2");
                free(p0);
                free(p1);
        }
        wrk_chain_destroy(c);
        job_graph_free(g);
}

static void test_chain_print_tokenize(void) {
        char err[512] = "";
        struct job_graph *g = parse("name: p\nparallelism: 2\npipeline:\n"
                                    "  - generator: {words: 4, count: 4, line_words: 2}\n"
                                    "  - tokenize\n  - sink: {type: print}\n");
        if (!g)
                return;
        FILE *out = tmpfile();
        CHECK(out != NULL, "tmpfile");
        struct wrk_chain *c = NULL;
        struct wrk_chain_ctx ctx = {.job = "0123456789abcdef0123456789abcdef", .attempt = 1,
                                    .subtask = 1, .parallelism = 2, .out = out};
        int r = wrk_chain_create(g, 0, &ctx, &c, err, sizeof(err));
        CHECK(r == 0, "wrk_chain_create: %d %s", r, err);
        if (r == 0 && out) {
                CHECK_INT(run_chain(c), 0);
                CHECK_INT(wrk_chain_records_in(c), 2);  /* records 1 and 3 */
                CHECK_INT(wrk_chain_records_out(c), 4); /* two words each */
                char text[256] = "";
                rewind(out);
                size_t n = fread(text, 1, sizeof(text) - 1, out);
                text[n] = '\0';
                /* record 1: words 2, 3; record 3: words 6 % 4, 7 % 4 */
                CHECK_STR(text, "2> w2\n2> w3\n2> w2\n2> w3\n");
        }
        wrk_chain_destroy(c);
        if (out)
                fclose(out);
        job_graph_free(g);
}

/* The discard sink's rate paces what it takes (its share of the rate per subtask): 300
 * records at 2000/s over 2 subtasks (1000/s each, burst 10) cannot take less than
 * 290 ms; without a rate they take no time worth measuring. Only the lower bound is
 * checked, which no load can break. */
static void test_chain_slow_discard(void) {
        char err[512] = "";
        struct job_graph *g = parse("name: d\nparallelism: 2\npipeline:\n"
                                    "  - generator: {words: 4, count: 600}\n"
                                    "  - sink: {type: discard, rate: 2000}\n");
        if (!g)
                return;
        struct wrk_chain *c = NULL;
        struct wrk_chain_ctx ctx = {.job = "0123456789abcdef0123456789abcdef", .attempt = 1,
                                    .subtask = 0, .parallelism = 2};
        int r = wrk_chain_create(g, 0, &ctx, &c, err, sizeof(err));
        CHECK(r == 0, "wrk_chain_create: %d %s", r, err);
        if (r == 0) {
                uint64_t t0 = clock_mono_us();
                CHECK_INT(run_chain(c), 0);
                uint64_t us = clock_mono_us() - t0;
                CHECK_INT(wrk_chain_records_out(c), 300);
                CHECK(us >= 290000, "300 records at 1000/s took only %llu us",
                      (unsigned long long)us);
        }
        wrk_chain_destroy(c);
        job_graph_free(g);
}

/* ---- windows (ops.h WINDOWS) ---- */

static char *write_input(const char *name, const char *text) {
        static char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "fopen %s", path);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
        return path;
}

static const char WJOB[] = "0123456789abcdef0123456789abcdef";

/* tmpl with its one "%s" replaced by path. */
static void fill_path(char *out, size_t len, const char *tmpl, const char *path) {
        const char *at = strstr(tmpl, "%s");
        if (!at) {
                snprintf(out, len, "%s", tmpl);
                return;
        }
        snprintf(out, len, "%.*s%s%s", (int)(at - tmpl), tmpl, path, at + 2);
}

/* The chains of a job at parallelism 1 each, stepped in turn in this thread. */
struct job_run {
        struct wrk_chain *c[4];
        bool done[4];
        size_t n;
};

static int64_t test_clock_ms;
static int64_t test_clock(void) {
        return test_clock_ms;
}

static int job_create(struct job_run *jr, const struct job_graph *g,
                      const struct wrk_chain_ctx *base, const struct wrk_substate *const *st) {
        memset(jr, 0, sizeof(*jr));
        jr->n = g->n_chains;
        for (size_t i = 0; i < jr->n && i < 4; i++) {
                char err[512] = "";
                struct wrk_chain_ctx ctx = *base;
                ctx.on_checkpoint_arg = (void *)(uintptr_t)i;
                if (st && st[i]) {
                        ctx.restore = &st[i];
                        ctx.n_restore = 1;
                        ctx.restored_checkpoint = 1;
                }
                int r = wrk_chain_create(g, (uint32_t)i, &ctx, &jr->c[i], err, sizeof(err));
                CHECK(r == 0, "wrk_chain_create %zu: %d %s", i, r, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = jr->n; i-- > 0;) {
                int r = wrk_chain_open(jr->c[i]);
                CHECK(r == 0, "wrk_chain_open %zu: %d %s", i, r, wrk_chain_error(jr->c[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Steps chain i once (finishing it when its input ended); 1 when it is done. */
static int job_step(struct job_run *jr, size_t i, uint64_t max) {
        if (jr->done[i])
                return 1;
        uint64_t emitted;
        int r = wrk_chain_step(jr->c[i], max, &emitted);
        if (r == 1) {
                r = wrk_chain_finish(jr->c[i]);
                jr->done[i] = true;
                return r < 0 ? r : 1;
        }
        return r;
}

static int job_run_all(struct job_run *jr) {
        for (int rounds = 0; rounds < 100000; rounds++) {
                bool all = true;
                for (size_t i = 0; i < jr->n; i++) {
                        int r = job_step(jr, i, WRK_STEP_MAX_RECORDS);
                        if (r < 0) {
                                CHECK(false, "chain %zu: %d %s", i, r, wrk_chain_error(jr->c[i]));
                                return r;
                        }
                        all = all && r == 1;
                }
                if (all)
                        return 0;
        }
        CHECK(false, "the job did not end");
        return -ETIMEDOUT;
}

static void job_destroy(struct job_run *jr) {
        for (size_t i = 0; i < jr->n; i++)
                wrk_chain_destroy(jr->c[i]);
        memset(jr, 0, sizeof(*jr));
}

static void read_stream(FILE *f, char *buf, size_t len) {
        fflush(f);
        rewind(f);
        size_t n = fread(buf, 1, len - 1, f);
        buf[n] = '\0';
}

/* Runs a job file over input text; the print sink's output into out, the late records
 * into *ret_late. */
static void run_windowed(const char *yaml_fmt, const char *input, char *out, size_t out_len,
                         uint64_t *ret_late) {
        char yaml[2048];
        fill_path(yaml, sizeof(yaml), yaml_fmt, write_input("win-in", input));
        struct job_graph *g = parse(yaml);
        out[0] = '\0';
        if (!g)
                return;
        FILE *f = tmpfile();
        struct wrk_chain_ctx ctx = {.job = WJOB, .attempt = 11, .subtask = 0,
                                    .parallelism = 1, .out = f};
        struct job_run jr;
        if (job_create(&jr, g, &ctx, NULL) == 0 && job_run_all(&jr) == 0) {
                read_stream(f, out, out_len);
                if (ret_late)
                        *ret_late = wrk_chain_late_records_dropped(jr.c[1]);
        }
        job_destroy(&jr);
        fclose(f);
        job_graph_free(g);
}

static const char EVENT_TUMBLING[] =
        "name: w\npipeline:\n  - file: {path: '%s', timestamps: leading}\n"
        "  - key_by: {field: word}\n"
        "  - window: {type: tumbling, size: 10 ms, time: event, out_of_orderness: 5 ms}\n"
        "  - sink: {type: print}\n";

static void test_window_event_tumbling(void) {
        char out[1024];
        uint64_t late = 99;
        /* watermark = max - 5 - 1: after 12: 6, after 17: 11 (fires [0,10)), so 4 is
         * late; after 25: 19 (fires [10,20)); the end fires [20,30) */
        run_windowed(EVENT_TUMBLING, "1 a\n3 b\n12 a\n8 a\n17 a\n4 b\n25 b\n21 a\n", out,
                     sizeof(out), &late);
        CHECK_STR(out, "(a,2)\n(b,1)\n(a,2)\n(a,1)\n(b,1)\n");
        CHECK_INT(late, 1);

        /* a line without a timestamp fails the task, naming the file and the offset */
        char yaml[1024];
        fill_path(yaml, sizeof(yaml), EVENT_TUMBLING, write_input("win-bad", "1 a\nb\n"));
        struct job_graph *g = parse(yaml);
        if (g) {
                FILE *f = tmpfile();
                struct wrk_chain_ctx ctx = {.job = WJOB, .attempt = 12, .subtask = 0,
                                            .parallelism = 1, .out = f};
                struct job_run jr;
                if (job_create(&jr, g, &ctx, NULL) == 0) {
                        int r = job_step(&jr, 0, WRK_STEP_MAX_RECORDS);
                        CHECK_INT(r, -EINVAL);
                        CHECK_CONTAINS(wrk_chain_error(jr.c[0]), "win-bad: the line at byte 4 "
                                       "does not start with a timestamp");
                }
                job_destroy(&jr);
                fclose(f);
                job_graph_free(g);
        }
}

/* A keyed count queues records before it touches RocksDB (agg_drain): a watermark that
 * reaches it must let them out first, or the window behind the second key_by would see
 * the watermark before them and drop them all as late. */
static const char COUNT_THEN_WINDOW[] =
        "name: w\npipeline:\n  - file: {path: '%s', timestamps: leading}\n"
        "  - key_by: {field: word}\n"
        "  - count: {}\n"
        "  - key_by: {field: key}\n"
        "  - window: {type: tumbling, size: 10 ms, time: event, out_of_orderness: 0 ms}\n"
        "  - sink: {type: print}\n";

static void test_window_after_count(void) {
        char out[1024];
        run_windowed(COUNT_THEN_WINDOW, "1 a\n2 a\n3 a\n15 a\n", out, sizeof(out), NULL);
        CHECK_STR(out, "(a,3)\n(a,1)\n");
}

/* timestamps: leading: spaces or tabs after the number, a line of a timestamp alone (an
 * empty text); 0, an overflow or no digits fail naming the offset. */
static void test_leading_timestamps(void) {
        char out[256];
        run_windowed(EVENT_TUMBLING, "5\tx\n7\n2 \t x\n", out, sizeof(out), NULL);
        CHECK_STR(out, "(,1)\n(x,2)\n");
        const char *bad[] = {"1 a\n0 b\n", "1 a\n99999999999999999999 b\n", "1 a\nx1 b\n",
                             "1 a\n12b\n"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char yaml[1024];
                fill_path(yaml, sizeof(yaml), EVENT_TUMBLING, write_input("win-bad2", bad[i]));
                struct job_graph *g = parse(yaml);
                if (!g)
                        continue;
                FILE *f = tmpfile();
                struct wrk_chain_ctx ctx = {.job = WJOB, .attempt = 14, .subtask = 0,
                                            .parallelism = 1, .out = f};
                struct job_run jr;
                if (job_create(&jr, g, &ctx, NULL) == 0) {
                        CHECK_INT(job_step(&jr, 0, WRK_STEP_MAX_RECORDS), -EINVAL);
                        CHECK_CONTAINS(wrk_chain_error(jr.c[0]), "win-bad2: the line at byte 4 "
                                       "does not start with a timestamp");
                }
                job_destroy(&jr);
                fclose(f);
                job_graph_free(g);
        }
}

static void test_window_event_sliding(void) {
        char out[1024];
        uint64_t late = 99;
        /* size 10, slide 5: 1 in [-5,5) [0,10); 6 in [0,10) [5,15); 12 in [5,15)
         * [10,20); 14 in [5,15) [10,20). The watermark (out_of_orderness 0) is 5 after 6
         * (fires [-5,5)) and 11 after 12 (fires [0,10)), so 3, whose windows are
         * [-5,5) and [0,10), is late and dropped. Sum of the value (1 per line). */
        run_windowed("name: s\npipeline:\n  - file: {path: '%s', timestamps: leading}\n"
                     "  - key_by: {field: word}\n"
                     "  - window: {type: sliding, size: 10 ms, slide: 5 ms, time: event,"
                     " aggregate: sum}\n"
                     "  - sink: {type: print}\n",
                     "1 a\n6 a\n12 a\n3 a\n14 b\n", out, sizeof(out), &late);
        CHECK_STR(out, "(a,1)\n(a,2)\n(a,2)\n(b,1)\n(a,1)\n(b,1)\n");
        CHECK_INT(late, 1);
}

/* More (key, window) accumulators than the write-back table holds (8192): they go to
 * RocksDB and are read back; every window still counts right. */
static void test_window_table_overflow(void) {
        size_t cap = 1u << 20;
        char *input = malloc(cap), *out = malloc(cap);
        CHECK(input && out, "malloc");
        if (!input || !out) {
                free(input);
                free(out);
                return;
        }
        size_t used = 0;
        for (int round = 0; round < 3; round++)
                for (int k = 0; k < 12000; k++)
                        used += (size_t)snprintf(input + used, cap - used, "%d k%05d\n",
                                                 1000 + round, k);
        /* one late record after the window [0, 10000) fired */
        used += (size_t)snprintf(input + used, cap - used, "20000 k00001\n5 k00002\n");
        uint64_t late = 0;
        run_windowed("name: big\npipeline:\n  - file: {path: '%s', timestamps: leading}\n"
                     "  - key_by: {field: word}\n"
                     "  - window: {type: tumbling, size: 10 s, time: event}\n"
                     "  - sink: {type: print}\n", input, out, cap, &late);
        size_t lines = 0, threes = 0;
        for (char *p = out; *p; p = strchr(p, '\n') + 1) {
                lines++;
                threes += strncmp(p + 7, ",3)", 3) == 0;
                if (!strchr(p, '\n'))
                        break;
        }
        CHECK_INT(lines, 12001);
        CHECK_INT(threes, 12000);
        CHECK(strncmp(out, "(k00000,3)\n(k00001,3)\n", 22) == 0, "in key order: %.40s", out);
        CHECK_INT(late, 1);
        free(input);
        free(out);
}

/* The generator's deterministic event time: 10^12 + n * step - jitter, jitter within
 * out_of_order, equal for equal (seed, n); and an event-time window over it. */
static void test_gen_event_time(void) {
        struct job_generator_params p = {.seed = 5, .words = 3, .line_words = 1,
                                         .event_time_step_ms = 10, .out_of_order_ms = 25};
        int64_t seen_jitter[26] = {0};
        bool behind = false;
        int64_t high = 0;
        for (uint64_t n = 0; n < 2000; n++) {
                int64_t t = wrk_gen_timestamp(&p, n);
                int64_t j = 1000000000000 + (int64_t)n * 10 - t;
                CHECK(j >= 0 && j <= 25, "n %llu: jitter %lld", (unsigned long long)n,
                      (long long)j);
                if (j >= 0 && j <= 25)
                        seen_jitter[j]++;
                behind |= t < high;
                high = t > high ? t : high;
                CHECK_INT(t, wrk_gen_timestamp(&p, n));
        }
        CHECK(behind, "some records are out of order");
        for (int j = 0; j <= 25; j++)
                CHECK(seen_jitter[j] > 0, "jitter %d never drawn", j);
        p.out_of_order_ms = 0;
        CHECK_INT(wrk_gen_timestamp(&p, 7), 1000000000070);

        /* 40 records 10 ms apart in windows of 100 ms (10 per window, words w0..w2 by
         * n mod 3); out of order by up to 25 ms, within the bound of 30 ms: none late */
        char out[512];
        uint64_t late = 99;
        run_windowed("name: g\npipeline:\n"
                     "  - generator: {seed: 0, words: 3, count: 40, event_time_step: 10 ms,"
                     " out_of_order: 25 ms}\n"
                     "  - key_by: {field: word}\n"
                     "  - window: {type: tumbling, size: 100 ms, time: event,"
                     " out_of_orderness: 30 ms}\n"
                     "  - sink: {type: print}\n", "", out, sizeof(out), &late);
        CHECK_INT(late, 0);
        /* window k holds n = 10k..10k+9 but for jitter moving n = 10k into window k - 1:
         * every window sums to 10 over the three words, all 40 counted */
        int total = 0;
        for (char *q = strchr(out, ','); q; q = strchr(q + 1, ','))
                total += atoi(q + 1);
        CHECK_INT(total, 40);
}

static void test_window_processing_time(void) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), "name: p\npipeline:\n  - file: {path: '%s'}\n"
                 "  - key_by: {field: word}\n"
                 "  - window: {type: tumbling, size: 100 ms, aggregate: max, field: word}\n"
                 "  - sink: {type: print}\n", write_input("win-proc", "7\n3\n7\n9\n"));
        struct job_graph *g = parse(yaml);
        if (!g)
                return;
        FILE *f = tmpfile();
        struct wrk_chain_ctx ctx = {.job = WJOB, .attempt = 13, .subtask = 0, .parallelism = 1,
                                    .out = f, .wall_clock_ms = test_clock};
        struct job_run jr;
        char out[256];
        test_clock_ms = 1000050;
        if (job_create(&jr, g, &ctx, NULL) == 0) {
                CHECK_INT(wrk_chain_step(jr.c[0], WRK_STEP_MAX_RECORDS, NULL), 1);
                CHECK_INT(job_step(&jr, 1, WRK_STEP_MAX_RECORDS), 0);
                read_stream(f, out, sizeof(out));
                CHECK_STR(out, ""); /* window [1000000, 1000100) still open */
                test_clock_ms = 1000099; /* its max timestamp: it fires at the next step */
                CHECK_INT(job_step(&jr, 1, WRK_STEP_MAX_RECORDS), 0);
                read_stream(f, out, sizeof(out));
                CHECK_STR(out, "(3,3)\n(7,7)\n(9,9)\n");
                CHECK_INT(job_step(&jr, 0, 0), 1);
                CHECK_INT(job_run_all(&jr), 0);
                read_stream(f, out, sizeof(out));
                CHECK_STR(out, "(3,3)\n(7,7)\n(9,9)\n");
        }
        job_destroy(&jr);
        fclose(f);
        job_graph_free(g);
}

static pthread_mutex_t ck_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ck_cond = PTHREAD_COND_INITIALIZER;
static struct wrk_ckpt_result ck_results[4];
static int ck_count;

static void on_ckpt(void *arg, struct wrk_ckpt_result *res) {
        size_t chain = (size_t)(uintptr_t)arg;
        pthread_mutex_lock(&ck_mu);
        if (chain < 4) {
                ck_results[chain] = *res;
                res->state = NULL;
        }
        ck_count++;
        pthread_cond_broadcast(&ck_cond);
        pthread_mutex_unlock(&ck_mu);
        free(res->state);
}

/* A window operator snapshotted mid-stream and restored into new chains gives the same
 * output as a run without the failure: the fired windows before the checkpoint, the
 * restored ones (state and rebuilt timers) after it. */
static void test_window_checkpoint_restore(void) {
        /* 40 lines, out of order by 3 ms (within the bound) or 12 ms (late), keys
         * k0..k2, windows of 7 ms */
        char input[2048] = "";
        size_t used = 0;
        for (int i = 0; i < 40; i++)
                used += (size_t)snprintf(input + used, sizeof(input) - used, "%d k%d\n",
                                         100 + i * 2 - (i % 3 == 1 ? 3 : 0) -
                                                 (i % 7 == 6 ? 12 : 0),
                                         i % 3);
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), "name: r\npipeline:\n"
                 "  - file: {path: '%s', timestamps: leading}\n"
                 "  - key_by: {field: word}\n"
                 "  - window: {type: tumbling, size: 7 ms, time: event, out_of_orderness: 2 ms}\n"
                 "  - sink: {type: print}\n", write_input("win-ck", input));
        struct job_graph *g = parse(yaml);
        if (!g)
                return;
        char expect[2048] = "", got[4096] = "";
        uint64_t late_all = 0;
        FILE *f = tmpfile();
        struct wrk_chain_ctx ctx = {.job = WJOB, .attempt = 21, .subtask = 0, .parallelism = 1,
                                    .out = f};
        struct job_run jr;
        if (job_create(&jr, g, &ctx, NULL) == 0 && job_run_all(&jr) == 0) {
                read_stream(f, expect, sizeof(expect));
                late_all = wrk_chain_late_records_dropped(jr.c[1]);
        }
        job_destroy(&jr);
        fclose(f);
        CHECK(strlen(expect) > 20, "the reference run wrote windows: '%s'", expect);
        CHECK(late_all > 0, "some records are late");

        /* the run that fails after checkpoint 1, taken after 17 lines */
        char ckdir[512];
        snprintf(ckdir, sizeof(ckdir), "%s/ck", tmpdir);
        CHECK_INT(fs_mkdir_p(ckdir, 0755), 0);
        f = tmpfile();
        struct wrk_substate *st[2] = {NULL, NULL};
        ctx.attempt = 22;
        ctx.out = f;
        ctx.job_checkpoint_dir = ckdir;
        ctx.on_checkpoint = on_ckpt;
        ck_count = 0;
        if (g->n_chains == 2 && job_create(&jr, g, &ctx, NULL) == 0) {
                /* the callbacks tell the chains apart by their argument */
                CHECK_INT(wrk_chain_step(jr.c[0], 17, NULL), 0);
                CHECK_INT(job_step(&jr, 1, WRK_STEP_MAX_RECORDS), 0);
                CHECK_INT(wrk_chain_trigger(jr.c[0], 1, false), 0);
                uint64_t deadline = clock_mono_ms() + 30000;
                while (clock_mono_ms() < deadline) {
                        CHECK(job_step(&jr, 1, WRK_STEP_MAX_RECORDS) >= 0, "window chain step");
                        pthread_mutex_lock(&ck_mu);
                        int n = ck_count;
                        pthread_mutex_unlock(&ck_mu);
                        if (n == 2)
                                break;
                }
                CHECK_INT(ck_count, 2);
                read_stream(f, got, sizeof(got));
                for (size_t i = 0; i < 2; i++) {
                        CHECK(!ck_results[i].declined, "chain %zu declined: %s", i,
                              ck_results[i].reason);
                        char err[256] = "";
                        int r = ck_results[i].state
                                        ? wrk_substate_decode(ck_results[i].state,
                                                              ck_results[i].state_len, &st[i],
                                                              err, sizeof(err))
                                        : -ENOENT;
                        CHECK(r == 0, "decode %zu: %d %s", i, r, err);
                        free(ck_results[i].state);
                        ck_results[i].state = NULL;
                }
        }
        job_destroy(&jr); /* the failure: nothing after the checkpoint is kept */
        size_t before = strlen(got);
        CHECK(before > 0 && before < strlen(expect), "some windows fired before the checkpoint");
        if (st[0] && st[1]) {
                FILE *f2 = tmpfile();
                ctx.attempt = 23;
                ctx.out = f2;
                if (job_create(&jr, g, &ctx, (const struct wrk_substate *const *)st) == 0 &&
                    job_run_all(&jr) == 0)
                        read_stream(f2, got + before, sizeof(got) - before);
                job_destroy(&jr);
                fclose(f2);
                CHECK_STR(got, expect);
        }
        for (size_t i = 0; i < 2; i++)
                wrk_substate_free(st[i]);
        fclose(f);
        job_graph_free(g);
}

/* ---- tasks ---- */


static void take_states(struct wrk_task *t, char *buf, size_t len) {
        struct wrk_task_change ch;
        size_t pos = 0;
        buf[0] = '\0';
        while (wrk_task_take_change(t, &ch) && pos < len)
                pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", pos ? " " : "",
                                        wrk_task_state_name(ch.state));
}

static void test_task_lifecycle(void) {
        char err[512] = "", states[256];
        struct job_graph *g = parse("name: t\npipeline:\n  - generator: {count: 1000}\n"
                                    "  - sink: {type: discard}\n");
        struct wrk_graph *wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        struct wrk_task_options opts = {.notify = unit_task_notify};
        struct wrk_task_id id = {.job = "0123456789abcdef0123456789abcdef", .epoch = 1,
                                 .attempt = 1};
        struct wrk_task *t = NULL;
        int r = wrk_task_create(&id, wg, &opts, &t, err, sizeof(err));
        CHECK(r == 0, "wrk_task_create: %d %s", r, err);
        if (r == 0) {
                CHECK_INT(wrk_task_start(t), 0);
                CHECK(unit_wait_task_terminal(t, 10), "bounded task did not finish");
                wrk_task_join(t);
                take_states(t, states, sizeof(states));
                CHECK_STR(states, "DEPLOYING RUNNING FINISHED");
                struct wrk_task_change rep;
                wrk_task_report(t, &rep);
                CHECK_INT(rep.records_in, 1000);
                CHECK_INT(rep.records_out, 1000);
                wrk_task_cancel(t); /* after the end: no change */
                take_states(t, states, sizeof(states));
                CHECK_STR(states, "");
        }
        wrk_task_destroy(t);
        wrk_graph_unref(wg);

        /* Unbounded and slow: a cancel wakes it out of its rate limiter at once. */
        g = parse("name: u\npipeline:\n  - generator: {rate: 1}\n  - sink: {type: discard}\n");
        wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        t = NULL;
        r = wrk_task_create(&id, wg, &opts, &t, err, sizeof(err));
        CHECK(r == 0, "wrk_task_create: %d %s", r, err);
        if (r == 0) {
                CHECK_INT(wrk_task_start(t), 0);
                uint64_t deadline = clock_mono_us() + (uint64_t)(10e6 * unit_timeout_scale());
                while (wrk_task_state(t) != WRK_TASK_RUNNING && clock_mono_us() < deadline) {
                        pthread_mutex_lock(&unit_task_mu);
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += 1;
                        if (wrk_task_state(t) != WRK_TASK_RUNNING)
                                pthread_cond_timedwait(&unit_task_cond, &unit_task_mu, &ts);
                        pthread_mutex_unlock(&unit_task_mu);
                }
                CHECK_STR(wrk_task_state_name(wrk_task_state(t)), "RUNNING");
                uint64_t t0 = clock_mono_us();
                wrk_task_cancel(t);
                CHECK(unit_wait_task_terminal(t, 10), "canceled task did not stop");
                uint64_t took_ms = (clock_mono_us() - t0) / 1000;
                CHECK(took_ms < 900, "cancel took %" PRIu64 " ms; the rate limiter wait (1 s) "
                      "was not interrupted", took_ms);
                wrk_task_join(t);
                take_states(t, states, sizeof(states));
                CHECK_STR(states, "DEPLOYING RUNNING CANCELING CANCELED");
        }
        wrk_task_destroy(t);

        /* A chain that fails at open: FAILED with the reason. */
        wrk_graph_unref(wg);
        g = parse("name: bad\npipeline:\n  - generator: {count: 3}\n"
                  "  - sink: {type: file, path: /proc/no-such-dir/out}\n");
        wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        t = NULL;
        r = wrk_task_create(&id, wg, &opts, &t, err, sizeof(err));
        CHECK(r == 0, "wrk_task_create: %d %s", r, err);
        if (r == 0) {
                CHECK_INT(wrk_task_start(t), 0);
                CHECK(unit_wait_task_terminal(t, 10), "failing task did not end");
                wrk_task_join(t);
                struct wrk_task_change rep;
                wrk_task_report(t, &rep);
                CHECK_STR(wrk_task_state_name(rep.state), "FAILED");
                CHECK_CONTAINS(rep.error, "/proc/no-such-dir/out");
        }
        wrk_task_destroy(t);
        wrk_graph_unref(wg);

        /* Tasks that name no chain or subtask of the graph are refused. */
        g = parse("name: x\npipeline:\n  - generator: {count: 3}\n  - sink: {type: discard}\n");
        wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        id.vertex = 1;
        t = NULL;
        CHECK_INT(wrk_task_create(&id, wg, &opts, &t, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "vertex 1 does not exist");
        id.vertex = 0;
        id.subtask = 1;
        CHECK_INT(wrk_task_create(&id, wg, &opts, &t, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "subtask 1 of vertex 0 does not exist");
        wrk_graph_unref(wg);
}

int main(void) {
        make_tmpdir();
        RUN(test_gen_subtask_counts);
        RUN(test_gen_split_covers_once);
        RUN(test_gen_words);
        RUN(test_gen_format);
        RUN(test_rate_arithmetic);
        RUN(test_part_names);
        RUN(test_chain_check);
        RUN(test_chain_file_sink);
        RUN(test_chain_file_roll);
        RUN(test_chain_print_tokenize);
        RUN(test_chain_slow_discard);
        RUN(test_window_event_tumbling);
        RUN(test_leading_timestamps);
        RUN(test_window_after_count);
        RUN(test_window_event_sliding);
        RUN(test_window_table_overflow);
        RUN(test_gen_event_time);
        RUN(test_window_processing_time);
        RUN(test_window_checkpoint_restore);
        RUN(test_task_lifecycle);
        fs_rm_rf(tmpdir);
        return unit_done();
}
