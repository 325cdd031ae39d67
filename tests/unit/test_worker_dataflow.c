/* Unit tests of the worker's data-plane logic: partitioners, network buffers and their
 * flush rule, the barrier alignment state machine (exactly-once and at-least-once), the
 * generator position's redistribution, the two-phase-commit file sink's transitions
 * including restore cleanup, and the subtask state codec (worker/dataflow.h,
 * worker/sink2pc.h, worker/substate.h). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsutil.h"
#include "common/jobgraph.h"
#include "common/keygroup.h"
#include "task_wait.h"
#include "unit.h"
#include "worker/task.h"
#include "worker/dataflow.h"
#include "worker/exchange.h"
#include "worker/sink2pc.h"
#include "worker/substate.h"

static struct wrk_record text_rec(const char *s) {
        struct wrk_record r = {.kind = WRK_REC_TEXT, .text = s, .text_len = strlen(s)};
        return r;
}

static void test_partition_hash(void) {
        struct wrk_partitioner p;
        wrk_partitioner_init(&p, JOB_PART_HASH, 0, 3, 128);
        const char *words[] = {"a", "hello", "w17", "flink", "zz"};
        for (size_t i = 0; i < 5; i++) {
                struct wrk_record r = text_rec(words[i]);
                uint32_t g = kg_of_key(words[i], strlen(words[i]), 128);
                uint32_t t = wrk_partition(&p, &r);
                CHECK_INT(t, kg_operator_index(g, 128, 3));
                struct kg_range range = kg_range_for_operator(128, 3, t);
                CHECK(g >= range.start && g < range.end, "group %u in range of %u", g, t);
                /* a key set by key_by wins over the text */
                struct wrk_record k = text_rec("other");
                k.key = words[i];
                k.key_len = strlen(words[i]);
                CHECK_INT(wrk_partition(&p, &k), t);
        }
}

static void test_partition_others(void) {
        struct wrk_partitioner p;
        struct wrk_record r = text_rec("x");
        wrk_partitioner_init(&p, JOB_PART_REBALANCE, 1, 3, 128);
        uint32_t seen[6];
        for (int i = 0; i < 6; i++)
                seen[i] = wrk_partition(&p, &r);
        CHECK_INT(seen[0], 2);
        CHECK_INT(seen[1], 0);
        CHECK_INT(seen[2], 1);
        CHECK_INT(seen[3], 2);
        wrk_partitioner_init(&p, JOB_PART_BROADCAST, 0, 4, 128);
        CHECK(wrk_partition(&p, &r) == WRK_PART_ALL, "broadcast goes to all");
        wrk_partitioner_init(&p, JOB_PART_FORWARD, 2, 4, 128);
        CHECK_INT(wrk_partition(&p, &r), 2);
}

static void test_buffer_roundtrip(void) {
        static struct wrk_outbuf b;
        wrk_outbuf_reset(&b);
        struct wrk_record r = {.kind = WRK_REC_PAIR, .text = "word", .text_len = 4,
                               .value = -42, .seq = 7, .key = "k\0y", .key_len = 3,
                               .timestamp_ms = 1700000000000};
        CHECK_INT(wrk_outbuf_add_record(&b, &r, 100), 0);
        CHECK_INT(wrk_outbuf_add_barrier(&b, 5, true, 200), 0);
        CHECK_INT(wrk_outbuf_add_end(&b, 300), 0);
        CHECK_INT(b.first_us, 100);
        size_t pos = 0;
        struct wrk_entry e;
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK_INT(e.type, WRK_ENTRY_RECORD);
        CHECK_INT(e.rec.kind, WRK_REC_PAIR);
        CHECK(e.rec.text_len == 4 && memcmp(e.rec.text, "word", 4) == 0, "text");
        CHECK(e.rec.key_len == 3 && memcmp(e.rec.key, "k\0y", 3) == 0, "key");
        CHECK_INT(e.rec.value, -42);
        CHECK_INT(e.rec.seq, 7);
        CHECK_INT(e.rec.timestamp_ms, 1700000000000);
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK_INT(e.type, WRK_ENTRY_BARRIER);
        CHECK_INT(e.checkpoint_id, 5);
        CHECK(e.savepoint, "savepoint flag");
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK_INT(e.type, WRK_ENTRY_END);
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 0);
        /* every truncation is refused, never read past the end */
        for (size_t cut = 1; cut < b.len - 2; cut++) {
                size_t p = 0;
                int r2;
                while ((r2 = wrk_buffer_next(b.data, cut, &p, &e)) == 1)
                        ;
                CHECK(r2 == -EBADMSG || p == cut, "cut %zu: %d", cut, r2);
        }
        unsigned char junk[3] = {9, 1, 2};
        pos = 0;
        CHECK_INT(wrk_buffer_next(junk, 3, &pos, &e), -EBADMSG);
}

static void test_buffer_full_and_flush(void) {
        static struct wrk_outbuf b;
        wrk_outbuf_reset(&b);
        char text[1000];
        memset(text, 'a', sizeof(text));
        struct wrk_record r = {.kind = WRK_REC_TEXT, .text = text, .text_len = sizeof(text)};
        int n = 0, rc;
        while ((rc = wrk_outbuf_add_record(&b, &r, 10)) == 0)
                n++;
        CHECK_INT(rc, -ENOSPC);
        CHECK(n >= 30 && b.len <= WRK_BUFFER_BYTES, "records %d len %zu", n, b.len);
        static char big[WRK_BUFFER_BYTES];
        struct wrk_record huge = {.kind = WRK_REC_TEXT, .text = big, .text_len = sizeof(big)};
        CHECK_INT(wrk_outbuf_add_record(&b, &huge, 10), -EMSGSIZE);
        /* flush rule */
        CHECK(wrk_outbuf_due(&b, 10, 0), "timeout 0 flushes at once");
        CHECK(!wrk_outbuf_due(&b, 10 + 99999, 100), "not yet due");
        CHECK(wrk_outbuf_due(&b, 10 + 100000, 100), "due after 100 ms");
        wrk_outbuf_reset(&b);
        CHECK(!wrk_outbuf_due(&b, 1u << 30, 0), "empty is never due");
}

/* Latency markers (type 5) travel in the buffer among records, in the order they were
 * added, and wait for the buffer timeout as records do. */
static void test_buffer_latency_markers(void) {
        static struct wrk_outbuf b;
        wrk_outbuf_reset(&b);
        char text[16];
        for (int i = 0; i < 6; i++) {
                snprintf(text, sizeof(text), "r%d", i);
                struct wrk_record r = {.kind = WRK_REC_TEXT, .text = text,
                                       .text_len = strlen(text), .seq = (uint64_t)i};
                CHECK_INT(wrk_outbuf_add_record(&b, &r, 1000), 0);
                if (i % 2 == 1) {
                        struct wrk_latency_marker m = {.marked_us = 1700000000000000 + i,
                                                       .vertex = 3, .subtask = (uint32_t)i};
                        CHECK_INT(wrk_outbuf_add_latency(&b, &m, 1000 + (uint64_t)i), 0);
                }
        }
        struct wrk_latency_marker neg = {.marked_us = -5, .vertex = UINT32_MAX, .subtask = 0};
        CHECK_INT(wrk_outbuf_add_latency(&b, &neg, 2000), 0);
        CHECK_INT(b.records, 6); /* markers are not records */
        CHECK(!wrk_outbuf_due(&b, 1000 + 99999, 100), "a marker waits for the timeout");
        CHECK(wrk_outbuf_due(&b, 1000 + 100000, 100), "and goes with the buffer");
        size_t pos = 0;
        struct wrk_entry e;
        char order[128] = "";
        size_t n = 0;
        while (wrk_buffer_next(b.data, b.len, &pos, &e) == 1) {
                if (e.type == WRK_ENTRY_RECORD)
                        n += (size_t)snprintf(order + n, sizeof(order) - n, "R%" PRIu64 " ",
                                              e.rec.seq);
                else if (e.type == WRK_ENTRY_LATENCY)
                        n += (size_t)snprintf(order + n, sizeof(order) - n, "M%" PRIu32 " ",
                                              e.marker.subtask);
                if (e.type == WRK_ENTRY_LATENCY && e.marker.subtask == 3) {
                        CHECK_INT(e.marker.marked_us, 1700000000000003);
                        CHECK_INT(e.marker.vertex, 3);
                }
                if (e.type == WRK_ENTRY_LATENCY && e.marker.vertex == UINT32_MAX)
                        CHECK_INT(e.marker.marked_us, -5);
        }
        CHECK_STR(order, "R0 R1 M1 R2 R3 M3 R4 R5 M5 M0 ");
        /* every cut of a marker is malformed, never read past the end */
        wrk_outbuf_reset(&b);
        struct wrk_latency_marker m = {.marked_us = 123456789012345, .vertex = 300,
                                       .subtask = 70000};
        CHECK_INT(wrk_outbuf_add_latency(&b, &m, 1), 0);
        for (size_t cut = 1; cut < b.len; cut++) {
                pos = 0;
                CHECK_INT(wrk_buffer_next(b.data, cut, &pos, &e), -EBADMSG);
        }
        /* a vertex beyond 32 bits is refused */
        unsigned char bad[] = {WRK_ENTRY_LATENCY, 2, 0x80, 0x80, 0x80, 0x80, 0x10, 0};
        pos = 0;
        CHECK_INT(wrk_buffer_next(bad, sizeof(bad), &pos, &e), -EBADMSG);
        /* a full buffer says so */
        wrk_outbuf_reset(&b);
        b.len = WRK_BUFFER_BYTES - 5;
        CHECK_INT(wrk_outbuf_add_latency(&b, &m, 1), -ENOSPC);
}

/* The sink's histogram: a sliding window of the last 128 samples, nearest-rank
 * quantiles. */
static void test_latency_histogram(void) {
        struct wrk_latency_hist h = {0};
        struct wrk_latency_stats st;
        wrk_latency_hist_stats(&h, &st);
        CHECK_INT(st.count, 0);
        CHECK_INT(st.p99_us, 0);
        for (int i = 1; i <= 100; i++)
                wrk_latency_hist_add(&h, i * 1000);
        wrk_latency_hist_stats(&h, &st);
        CHECK_INT(st.count, 100);
        CHECK_INT(st.min_us, 1000);
        CHECK_INT(st.max_us, 100000);
        CHECK_INT(st.p50_us, 50000);
        CHECK_INT(st.p95_us, 95000);
        CHECK_INT(st.p99_us, 99000);
        CHECK_INT(st.mean_us, 50500);
        /* 200 more samples of 7 us, one negative (skew: 0): only the last 128 count */
        for (int i = 0; i < 200; i++)
                wrk_latency_hist_add(&h, i == 199 ? -40 : 7);
        wrk_latency_hist_stats(&h, &st);
        CHECK_INT(st.count, 300);
        CHECK_INT(st.min_us, 0);
        CHECK_INT(st.max_us, 7);
        CHECK_INT(st.p99_us, 7);
}

static void test_align_exactly_once(void) {
        struct wrk_aligner a;
        CHECK_INT(wrk_aligner_init(&a, 3, true), 0);
        uint64_t cancelled = 0, al = 0;
        CHECK_INT(wrk_aligner_barrier(&a, 0, 1, 1000, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK(wrk_aligner_blocked(&a, 0), "input 0 blocked after its barrier");
        CHECK(!wrk_aligner_blocked(&a, 1), "input 1 not blocked");
        CHECK_INT(wrk_aligner_barrier(&a, 0, 1, 1100, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_barrier(&a, 2, 1, 1200, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_barrier(&a, 1, 1, 1500, &cancelled, &al), WRK_ALIGN_SNAPSHOT);
        CHECK_INT(al, 500);
        CHECK(!wrk_aligner_blocked(&a, 0) && !wrk_aligner_blocked(&a, 2), "all unblocked");
        /* a stale barrier 1 after completion is ignored */
        CHECK_INT(wrk_aligner_barrier(&a, 0, 1, 1600, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK(!wrk_aligner_blocked(&a, 0), "stale barrier blocks nothing");
        /* barrier 3 overtakes 2: 2 is cancelled */
        CHECK_INT(wrk_aligner_barrier(&a, 0, 2, 2000, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_barrier(&a, 1, 3, 2100, &cancelled, &al), WRK_ALIGN_CANCEL);
        CHECK_INT(cancelled, 2);
        CHECK(!wrk_aligner_blocked(&a, 0) && wrk_aligner_blocked(&a, 1), "aligning 3 on input 1");
        CHECK_INT(wrk_aligner_barrier(&a, 0, 2, 2150, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_barrier(&a, 0, 3, 2200, &cancelled, &al), WRK_ALIGN_NOTHING);
        /* input 2 ends: counts as aligned */
        CHECK_INT(wrk_aligner_end(&a, 2, 2300, &al), WRK_ALIGN_SNAPSHOT);
        CHECK_INT(al, 200);
        CHECK(!wrk_aligner_all_ended(&a), "two inputs live");
        /* later barriers need inputs 0 and 1 only */
        CHECK_INT(wrk_aligner_barrier(&a, 1, 4, 3000, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_barrier(&a, 0, 4, 3001, &cancelled, &al), WRK_ALIGN_SNAPSHOT);
        CHECK_INT(wrk_aligner_end(&a, 0, 4000, &al), WRK_ALIGN_NOTHING);
        CHECK_INT(wrk_aligner_end(&a, 1, 4000, &al), WRK_ALIGN_NOTHING);
        CHECK(wrk_aligner_all_ended(&a), "all ended");
        wrk_aligner_finish(&a);
        /* one input: every barrier snapshots at once */
        CHECK_INT(wrk_aligner_init(&a, 1, true), 0);
        CHECK_INT(wrk_aligner_barrier(&a, 0, 1, 0, &cancelled, &al), WRK_ALIGN_SNAPSHOT);
        CHECK_INT(wrk_aligner_barrier(&a, 0, 2, 0, &cancelled, &al), WRK_ALIGN_SNAPSHOT);
        wrk_aligner_finish(&a);
        CHECK_INT(wrk_aligner_init(&a, 0, true), -EINVAL);
}

static void test_align_at_least_once(void) {
        struct wrk_aligner a;
        CHECK_INT(wrk_aligner_init(&a, 2, false), 0);
        uint64_t cancelled = 0, al = 0;
        CHECK_INT(wrk_aligner_barrier(&a, 0, 1, 0, &cancelled, &al), WRK_ALIGN_NOTHING);
        CHECK(!wrk_aligner_blocked(&a, 0), "at-least-once never blocks");
        CHECK_INT(wrk_aligner_barrier(&a, 1, 1, 10, &cancelled, &al), WRK_ALIGN_SNAPSHOT);
        wrk_aligner_finish(&a);
}

/* Emits every number of a set of entries below limit into seen[] (counting). */
static void gen_drain(struct wrk_gen_entry *e, size_t n, uint64_t limit, uint8_t *seen) {
        size_t i;
        uint64_t last = 0;
        bool first = true;
        while (wrk_gen_pick(e, n, limit, &i)) {
                CHECK(first || e[i].next > last, "increasing order");
                first = false;
                last = e[i].next;
                seen[e[i].next]++;
                e[i].next += e[i].modulus;
        }
}

static void test_gen_redistribute(void) {
        enum { LIMIT = 1000 };
        static uint8_t seen[LIMIT];
        /* p = 3 runs a while, then restores at 2, 3, 5 and 8: every n exactly once */
        uint32_t targets[] = {2, 3, 5, 8, 1};
        for (size_t t = 0; t < 5; t++) {
                memset(seen, 0, sizeof(seen));
                struct wrk_gen_entry old[3];
                for (uint32_t i = 0; i < 3; i++) {
                        old[i] = wrk_gen_initial(i, 3);
                        /* subtask i emitted 10 + i records before the checkpoint */
                        for (uint32_t k = 0; k < 10 + i; k++) {
                                seen[old[i].next]++;
                                old[i].next += old[i].modulus;
                        }
                }
                uint32_t p = targets[t];
                size_t total_entries = 0;
                for (uint32_t s = 0; s < p; s++) {
                        struct wrk_gen_entry *mine = NULL;
                        size_t n = 0;
                        CHECK_INT(wrk_gen_redistribute(old, 3, s, p, &mine, &n), 0);
                        CHECK(n >= 1, "p=%u subtask %u has work", p, s);
                        total_entries += n;
                        gen_drain(mine, n, LIMIT, seen);
                        free(mine);
                }
                CHECK(total_entries >= p && total_entries >= 3, "entries %zu", total_entries);
                int bad = 0;
                for (int n = 0; n < LIMIT; n++)
                        bad += seen[n] != 1;
                CHECK(bad == 0, "p=3 -> %u: %d numbers not seen exactly once", p, bad);
        }
        struct wrk_gen_entry *x;
        size_t nx;
        CHECK_INT(wrk_gen_redistribute(NULL, 0, 0, 0, &x, &nx), -EINVAL);
}

static char tmpdir[256];

static int count_files(const char *dir, const char *prefix) {
        DIR *d = opendir(dir);
        int n = 0;
        struct dirent *de;
        while (d && (de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        if (d)
                closedir(d);
        return n;
}

static bool exists(const char *dir, const char *name) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        struct stat st;
        return stat(p, &st) == 0;
}

static void test_sink_names(void) {
        char b[WRK_SINK_NAME_MAX];
        CHECK_INT(wrk_sink_final_name(b, sizeof(b), 4, 1, 12), 0);
        CHECK_STR(b, "part-4-1-12");
        CHECK_INT(wrk_sink_inprogress_name(b, sizeof(b), 4, 1, 12), 0);
        CHECK_STR(b, ".part-4-1-12.inprogress");
        CHECK_INT(wrk_sink_pending_name(b, sizeof(b), 4, 1, 12), 0);
        CHECK_STR(b, ".part-4-1-12.pending");
        uint32_t v, s;
        uint64_t q;
        int st;
        CHECK_INT(wrk_sink_parse_name(".part-4-1-12.pending", &v, &s, &q, &st), 1);
        CHECK(v == 4 && s == 1 && q == 12 && st == 2, "parsed");
        CHECK_INT(wrk_sink_parse_name("part-4-1-12", &v, &s, &q, &st), 1);
        CHECK_INT(st, 0);
        CHECK_INT(wrk_sink_parse_name("part-4-1-12.pending", &v, &s, &q, &st), 0);
        CHECK_INT(wrk_sink_parse_name(".part-4-1.inprogress", &v, &s, &q, &st), 0);
        CHECK_INT(wrk_sink_parse_name("README", &v, &s, &q, &st), 0);
        CHECK_INT(wrk_sink_final_name(b, 5, 4, 1, 12), -ENOSPC);
}

static void test_sink_2pc(void) {
        char dir[512], err[512] = "";
        snprintf(dir, sizeof(dir), "%s/sink", tmpdir);
        struct wrk_sink2pc_config cfg = {.dir = dir, .vertex = 3, .subtask = 0,
                                         .parallelism = 1, .part_size_bytes = 10};
        struct wrk_sink2pc *s = NULL;
        CHECK_INT(wrk_sink2pc_open(&cfg, &s, err, sizeof(err)), 0);
        CHECK_INT(wrk_sink2pc_write(s, "a 1\n", 4, err, sizeof(err)), 0);
        CHECK(exists(dir, ".part-3-0-0.inprogress"), "in progress");
        CHECK_INT(wrk_sink2pc_write(s, "b 22222\n", 8, err, sizeof(err)), 0); /* rolls */
        CHECK(exists(dir, ".part-3-0-0.pending"), "rolled to pending");
        CHECK_INT(wrk_sink2pc_write(s, "c 3\n", 4, err, sizeof(err)), 0);
        struct wrk_sink_file *f = NULL;
        size_t n = 0;
        uint64_t next = 0;
        CHECK_INT(wrk_sink2pc_barrier(s, 1, &f, &n, &next, err, sizeof(err)), 0);
        CHECK_INT(n, 2);
        CHECK_INT(next, 2);
        CHECK(n == 2 && f[0].checkpoint_id == 1 && f[1].checkpoint_id == 1, "owned by 1");
        free(f);
        CHECK_INT(count_files(dir, "part-"), 0);
        /* checkpoint 2 aborted: its files stay pending and commit with 3 */
        CHECK_INT(wrk_sink2pc_write(s, "d 4\n", 4, err, sizeof(err)), 0);
        CHECK_INT(wrk_sink2pc_barrier(s, 2, &f, &n, &next, err, sizeof(err)), 0);
        free(f);
        size_t committed = 0;
        CHECK_INT(wrk_sink2pc_commit(s, 1, &committed, err, sizeof(err)), 0);
        CHECK_INT(committed, 2);
        CHECK(exists(dir, "part-3-0-0") && exists(dir, "part-3-0-1"), "committed 0 and 1");
        CHECK(exists(dir, ".part-3-0-2.pending"), "2 still pending");
        CHECK_INT(wrk_sink2pc_write(s, "e 5\n", 4, err, sizeof(err)), 0);
        CHECK_INT(wrk_sink2pc_barrier(s, 3, &f, &n, &next, err, sizeof(err)), 0);
        CHECK_INT(n, 2); /* seq 2 (chk 2) and seq 3 (chk 3) */
        struct wrk_sink_file saved[4];
        memcpy(saved, f, n * sizeof(*f));
        size_t n_saved = n;
        free(f);
        /* more output after checkpoint 3, then a crash before 3 completes */
        CHECK_INT(wrk_sink2pc_write(s, "f 6\n", 4, err, sizeof(err)), 0);
        CHECK_INT(wrk_sink2pc_barrier(s, 4, &f, &n, &next, err, sizeof(err)), 0);
        free(f);
        CHECK_INT(wrk_sink2pc_write(s, "g 7\n", 4, err, sizeof(err)), 0);
        wrk_sink2pc_destroy(s);
        CHECK(exists(dir, ".part-3-0-4.pending") && exists(dir, ".part-3-0-5.inprogress"),
              "leftovers after the crash");
        /* restore from checkpoint 3: commits seq 2 and 3, deletes 4 and 5 */
        cfg.restored = saved;
        cfg.n_restored = n_saved;
        cfg.restore = true;
        CHECK_INT(wrk_sink2pc_open(&cfg, &s, err, sizeof(err)), 0);
        CHECK(exists(dir, "part-3-0-2") && exists(dir, "part-3-0-3"), "restored pending committed");
        CHECK(!exists(dir, ".part-3-0-4.pending") && !exists(dir, ".part-3-0-5.inprogress"),
              "files after the checkpoint deleted");
        CHECK_INT(count_files(dir, "."), 2); /* "." and ".." only */
        CHECK_INT(wrk_sink2pc_next_seq(s), 4);
        /* restoring again (a second failure) is idempotent */
        wrk_sink2pc_destroy(s);
        CHECK_INT(wrk_sink2pc_open(&cfg, &s, err, sizeof(err)), 0);
        CHECK_INT(count_files(dir, "part-"), 4);
        /* end of input commits at once */
        CHECK_INT(wrk_sink2pc_write(s, "h 8\n", 4, err, sizeof(err)), 0);
        CHECK_INT(wrk_sink2pc_end(s, err, sizeof(err)), 0);
        CHECK(exists(dir, "part-3-0-4"), "end commits");
        wrk_sink2pc_destroy(s);
        char *data = NULL;
        size_t len = 0;
        char p[600];
        snprintf(p, sizeof(p), "%s/part-3-0-2", dir);
        CHECK_INT(fs_read_all(p, 1024, &data, &len), 0);
        CHECK(len == 4 && memcmp(data, "d 4\n", 4) == 0, "content of part 2");
        free(data);
}

static void test_sink_rescale_cleanup(void) {
        char dir[512], err[512] = "";
        snprintf(dir, sizeof(dir), "%s/sink2", tmpdir);
        CHECK_INT(fs_mkdir_p(dir, 0755), 0);
        /* old parallelism 3: pending files of subtasks 0..2, one in progress of 2 */
        const char *names[] = {".part-1-0-0.pending", ".part-1-1-0.pending",
                               ".part-1-2-0.pending", ".part-1-2-1.inprogress",
                               ".part-9-2-0.pending"};
        for (int i = 0; i < 5; i++) {
                char p[600];
                snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
                CHECK_INT(fs_write_atomic(p, "x\n", 2), 0);
        }
        struct wrk_sink_file restored[] = {{0, 0, 5}, {1, 0, 5}, {2, 0, 5}};
        /* new parallelism 2; both subtasks get all states */
        for (uint32_t s = 0; s < 2; s++) {
                struct wrk_sink2pc_config cfg = {.dir = dir, .vertex = 1, .subtask = s,
                                                 .parallelism = 2, .restored = restored,
                                                 .n_restored = 3, .restore = true};
                struct wrk_sink2pc *k = NULL;
                CHECK_INT(wrk_sink2pc_open(&cfg, &k, err, sizeof(err)), 0);
                wrk_sink2pc_destroy(k);
        }
        CHECK(exists(dir, "part-1-0-0") && exists(dir, "part-1-1-0") && exists(dir, "part-1-2-0"),
              "all three committed");
        CHECK(!exists(dir, ".part-1-2-1.inprogress"), "in-progress of old subtask 2 deleted");
        CHECK(exists(dir, ".part-9-2-0.pending"), "another vertex's file untouched");
}

static void test_substate_roundtrip(void) {
        struct wrk_gen_entry gen[2] = {{4, 1, 9}, {4, 3, 11}};
        struct wrk_sink_file pend[1] = {{2, 7, 12}};
        struct wrk_file_split split[1] = {{0, 100, 40}};
        struct wrk_substate_op ops[3] = {
                {.op = "gen", .has_gen = true, .gen = gen, .n_gen = 2},
                {.op = "count-3", .keyed = "HANDLE", .keyed_len = 6},
                {.op = "sink", .has_sink = true, .sink_next_seq = 8, .pending = pend,
                 .n_pending = 1, .has_file = true, .file = split, .n_file = 1},
        };
        struct wrk_substate st = {.checkpoint_id = 12, .vertex = 1, .subtask = 2,
                                  .parallelism = 3, .ops = ops, .n_ops = 3};
        char *bytes = NULL;
        size_t len = 0;
        CHECK_INT(wrk_substate_encode(&st, &bytes, &len), 0);
        struct wrk_substate *d = NULL;
        char err[256] = "";
        int rd = wrk_substate_decode(bytes, len, &d, err, sizeof(err));
        CHECK(rd == 0, "decode: %d %s", rd, err);
        if (d) {
                CHECK_INT(d->checkpoint_id, 12);
                CHECK_INT(d->subtask, 2);
                CHECK_INT(d->parallelism, 3);
                CHECK_INT(d->n_ops, 3);
                const struct wrk_substate_op *o = wrk_substate_find(d, "gen");
                CHECK(o && o->has_gen && o->n_gen == 2 && o->gen[1].next == 11, "gen");
                o = wrk_substate_find(d, "count-3");
                CHECK(o && o->keyed_len == 6 && memcmp(o->keyed, "HANDLE", 6) == 0, "keyed");
                o = wrk_substate_find(d, "sink");
                CHECK(o && o->has_sink && o->sink_next_seq == 8 && o->n_pending == 1 &&
                              o->pending[0].seq == 7 && o->pending[0].checkpoint_id == 12,
                      "sink");
                CHECK(o && o->has_file && o->n_file == 1 && o->file[0].offset == 40, "file");
                CHECK(wrk_substate_find(d, "nope") == NULL, "absent op");
        }
        wrk_substate_free(d);
        /* damage is refused */
        bytes[len / 2] ^= 0x20;
        d = NULL;
        CHECK(wrk_substate_decode(bytes, len, &d, err, sizeof(err)) < 0, "damaged refused");
        CHECK(d == NULL, "nothing returned");
        free(bytes);
}

/* Reads every "part-*" file of dir and keeps, per word, the largest count seen (the
 * running count's last value). Returns the number of lines. */
static long read_counts(const char *dir, const char **words, size_t n_words, long *ret) {
        long lines = 0;
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "part-", 5) != 0)
                        continue;
                char p[1024];
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                FILE *f = fopen(p, "r");
                char w[64];
                long c;
                while (f && fscanf(f, "%63s %ld", w, &c) == 2) {
                        lines++;
                        for (size_t i = 0; i < n_words; i++)
                                if (strcmp(w, words[i]) == 0 && c > ret[i])
                                        ret[i] = c;
                }
                if (f)
                        fclose(f);
        }
        if (d)
                closedir(d);
        return lines;
}

/* generator -> tokenize -> key_by (p 2) | hash | count -> sink:file (p 3): two chains in
 * five task threads joined by in-memory channels, keyed state in RocksDB, the batch job
 * finishes and each word's last count is its number of occurrences. */
static void test_keyed_wordcount_tasks(void) {
        char yaml[1024], out[512], state[512], err[512] = "";
        snprintf(out, sizeof(out), "%s/wc-out", tmpdir);
        snprintf(state, sizeof(state), "%s/wc-state", tmpdir);
        snprintf(yaml, sizeof(yaml),
                 "name: wc\nparallelism: 2\npipeline:\n"
                 "  - generator: {count: 20000, words: 10, line_words: 3}\n"
                 "  - tokenize\n  - key_by: {field: word}\n  - count: {parallelism: 3}\n"
                 "  - sink: {type: file, path: %s, parallelism: 3}\n", out);
        struct job_graph *g = NULL;
        int r = job_graph_parse_yaml("wc.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "parse: %s", err);
        struct wrk_graph *wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        CHECK_INT(wg->g->n_chains, 2);
        struct wrk_task *tasks[5] = {0};
        size_t n = 0;
        struct wrk_task_options opts = {.state_dir = state, .buffer_timeout_ms = 5,
                                        .notify = unit_task_notify};
        for (uint32_t ch = 0; ch < 2; ch++)
                for (uint32_t s = 0; s < wg->g->chains[ch].parallelism; s++) {
                        struct wrk_task_id id = {.job = "0123456789abcdef0123456789abcdef",
                                                 .epoch = 1, .attempt = 1, .vertex = ch,
                                                 .subtask = s, .slot = s};
                        r = wrk_task_create(&id, wg, &opts, &tasks[n], err, sizeof(err));
                        CHECK(r == 0, "task %u/%u: %s", ch, s, err);
                        if (r == 0)
                                n++;
                }
        CHECK_INT(n, 5);
        /* consumers last, so producers meet gates they created themselves */
        for (size_t i = 0; i < n; i++)
                CHECK_INT(wrk_task_start(tasks[i]), 0);
        for (size_t i = 0; i < n; i++) {
                unit_wait_task_terminal(tasks[i], 30);
                struct wrk_task_change rep;
                wrk_task_report(tasks[i], &rep);
                CHECK(wrk_task_state(tasks[i]) == WRK_TASK_FINISHED, "task %zu: %s %s", i,
                      wrk_task_state_name(wrk_task_state(tasks[i])), rep.error);
        }
        for (size_t i = 0; i < n; i++)
                wrk_task_destroy(tasks[i]);
        wrk_graph_unref(wg);
        const char *words[10] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"};
        long counts[10] = {0};
        long lines = read_counts(out, words, 10, counts);
        CHECK_INT(lines, 60000);
        for (int i = 0; i < 10; i++)
                CHECK(counts[i] == 6000, "%s: expected 6000, seen %ld", words[i], counts[i]);
}

/* generator -> key_by -> count (p 2) -> discard with metrics.latency.interval: markers
 * cross the in-memory channels and the sink tasks report a latency; without the interval
 * nobody does. */
static void run_latency_job(uint64_t interval_ms, uint64_t *ret_source_count,
                            uint64_t *ret_sink_count) {
        char yaml[1024], state[512], err[512] = "";
        snprintf(state, sizeof(state), "%s/lat-state-%" PRIu64, tmpdir, interval_ms);
        snprintf(yaml, sizeof(yaml),
                 "name: lat\nparallelism: 1\npipeline:\n"
                 "  - generator: {count: 20000, words: 100, rate: 40000}\n"
                 "  - key_by: {field: word}\n  - count: {parallelism: 2}\n"
                 "  - sink: {type: discard, parallelism: 2}\n");
        *ret_source_count = *ret_sink_count = 0;
        struct job_graph *g = NULL;
        int r = job_graph_parse_yaml("lat.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "parse: %s", err);
        struct wrk_graph *wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        CHECK_INT(wg->g->n_chains, 2);
        struct wrk_task *tasks[3] = {0};
        size_t n = 0;
        struct wrk_task_options opts = {.state_dir = state, .buffer_timeout_ms = 5,
                                        .notify = unit_task_notify,
                                        .latency_interval_ms = interval_ms};
        for (uint32_t ch = 0; ch < 2; ch++)
                for (uint32_t s = 0; s < wg->g->chains[ch].parallelism; s++) {
                        struct wrk_task_id id = {.job = "00000000000000000000000000001a7e",
                                                 .epoch = 1, .attempt = (uint32_t)interval_ms + 1,
                                                 .vertex = ch, .subtask = s, .slot = s};
                        r = wrk_task_create(&id, wg, &opts, &tasks[n], err, sizeof(err));
                        CHECK(r == 0, "task %u/%u: %s", ch, s, err);
                        if (r == 0)
                                n++;
                }
        CHECK_INT(n, 3);
        for (size_t i = 0; i < n; i++)
                CHECK_INT(wrk_task_start(tasks[i]), 0);
        for (size_t i = 0; i < n; i++) {
                unit_wait_task_terminal(tasks[i], 30);
                struct wrk_task_change rep;
                wrk_task_report(tasks[i], &rep);
                CHECK(wrk_task_state(tasks[i]) == WRK_TASK_FINISHED, "task %zu: %s %s", i,
                      wrk_task_state_name(wrk_task_state(tasks[i])), rep.error);
                const struct wrk_latency_stats *l = &rep.latency;
                if (i == 0)
                        *ret_source_count += l->count;
                else
                        *ret_sink_count += l->count;
                CHECK(l->min_us <= l->p50_us && l->p50_us <= l->p95_us &&
                      l->p95_us <= l->p99_us && l->p99_us <= l->max_us,
                      "task %zu: ordered quantiles", i);
                if (l->count)
                        CHECK(l->max_us < 60u * 1000000u, "task %zu: latency %" PRIu64 " us",
                              i, l->max_us);
        }
        for (size_t i = 0; i < n; i++)
                wrk_task_destroy(tasks[i]);
        wrk_graph_unref(wg);
}

static void test_latency_markers_tasks(void) {
        uint64_t src, sink;
        run_latency_job(0, &src, &sink);
        CHECK_INT(src, 0);
        CHECK_INT(sink, 0);
        /* 20000 records at 40000/s: ~0.5 s, a marker every 10 ms */
        run_latency_job(10, &src, &sink);
        CHECK_INT(src, 0); /* a source chain has no sink: it measures nothing */
        CHECK(sink >= 2, "sinks recorded %" PRIu64 " markers", sink);
}

/* generator (12000 words, each 5 times) -> key_by | hash | count -> sink:file, p 1: more
 * keys than the count's write-back table holds, so the batched path reads keys back
 * from RocksDB (MultiGet) and writes them back in sorted batches; each word's running
 * counts come out as 1, 2, ..., 5 in order. */
static void test_keyed_count_many_keys_in_order(void) {
        enum { WORDS = 12000, TIMES = 5 };
        char yaml[1024], out[512], state[512], err[512] = "";
        snprintf(out, sizeof(out), "%s/many-out", tmpdir);
        snprintf(state, sizeof(state), "%s/many-state", tmpdir);
        snprintf(yaml, sizeof(yaml),
                 "name: many\nparallelism: 1\npipeline:\n"
                 "  - generator: {count: %d, words: %d}\n"
                 "  - key_by: {field: word}\n  - count\n"
                 "  - sink: {type: file, path: %s}\n", WORDS * TIMES, WORDS, out);
        struct job_graph *g = NULL;
        int r = job_graph_parse_yaml("many.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "parse: %s", err);
        struct wrk_graph *wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        CHECK_INT(wg->g->n_chains, 2);
        struct wrk_task *tasks[2] = {0};
        size_t n = 0;
        struct wrk_task_options opts = {.state_dir = state, .buffer_timeout_ms = 5,
                                        .notify = unit_task_notify};
        for (uint32_t ch = 0; ch < 2; ch++) {
                struct wrk_task_id id = {.job = "000000000000000000000000000000aa", .epoch = 1,
                                         .attempt = 1, .vertex = ch, .subtask = 0, .slot = 0};
                r = wrk_task_create(&id, wg, &opts, &tasks[n], err, sizeof(err));
                CHECK(r == 0, "task %u: %s", ch, err);
                if (r == 0)
                        n++;
        }
        CHECK_INT(n, 2);
        for (size_t i = 0; i < n; i++)
                CHECK_INT(wrk_task_start(tasks[i]), 0);
        for (size_t i = 0; i < n; i++) {
                unit_wait_task_terminal(tasks[i], 60);
                CHECK(wrk_task_state(tasks[i]) == WRK_TASK_FINISHED, "task %zu: %s", i,
                      wrk_task_state_name(wrk_task_state(tasks[i])));
        }
        for (size_t i = 0; i < n; i++)
                wrk_task_destroy(tasks[i]);
        wrk_graph_unref(wg);
        static int last[WORDS];
        memset(last, 0, sizeof(last));
        long lines = 0, bad = 0;
        DIR *d = opendir(out);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "part-", 5) != 0)
                        continue;
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s", out, de->d_name);
                FILE *f = fopen(path, "r");
                char w[64];
                long c;
                while (f && fscanf(f, "%63s %ld", w, &c) == 2) {
                        lines++;
                        long i = w[0] == 'w' ? atol(w + 1) : -1;
                        if (i < 0 || i >= WORDS || c != last[i] + 1) {
                                if (bad++ < 3)
                                        CHECK(false, "line '%s %ld' after count %d", w, c,
                                              i >= 0 && i < WORDS ? last[i] : -1);
                                continue;
                        }
                        last[i] = (int)c;
                }
                if (f)
                        fclose(f);
        }
        if (d)
                closedir(d);
        CHECK_INT(lines, WORDS * TIMES);
        CHECK_INT(bad, 0);
        long done = 0;
        for (int i = 0; i < WORDS; i++)
                done += last[i] == TIMES;
        CHECK_INT(done, WORDS);
}

static void test_file_splits(void) {
        uint64_t a, b, prev_end = 0;
        for (uint32_t i = 0; i < 7; i++) {
                wrk_file_split_initial(1000, i, 7, &a, &b);
                CHECK(a == prev_end && b >= a, "split %u: [%" PRIu64 ", %" PRIu64 ")", i, a, b);
                prev_end = b;
        }
        CHECK_INT(prev_end, 1000);
        struct wrk_file_split old[3] = {{600, 1000, 700}, {0, 300, 120}, {300, 600, 600}};
        size_t total = 0;
        for (uint32_t s2 = 0; s2 < 2; s2++) {
                struct wrk_file_split *mine = NULL;
                size_t n = 0;
                CHECK_INT(wrk_file_splits_redistribute(old, 3, s2, 2, &mine, &n), 0);
                total += n;
                if (s2 == 0)
                        CHECK(n == 2 && mine[0].start == 0 && mine[1].start == 600, "round robin");
                free(mine);
        }
        CHECK_INT(total, 3);
}

/* file (p 3) -> sink:file (p 3, forward, one chain): every line of a file of uneven lines
 * is read by exactly one subtask. */
static void test_file_source_lines_once(void) {
        char in[400], out[400], yaml[1200], err[512] = "";
        snprintf(in, sizeof(in), "%s/input.txt", tmpdir);
        snprintf(out, sizeof(out), "%s/lines-out", tmpdir);
        FILE *f = fopen(in, "w");
        long expect_sum = 0;
        for (int i = 0; i < 997; i++) {
                fprintf(f, "%d", i);
                for (int k = 0; k < i % 13; k++)
                        fputs(" x", f);
                fputc('\n', f);
                expect_sum += i;
        }
        fputs("last-without-newline", f);
        fclose(f);
        snprintf(yaml, sizeof(yaml), "name: lines\nparallelism: 3\npipeline:\n"
                 "  - file: {path: %s}\n  - sink: {type: file, path: %s}\n", in, out);
        struct job_graph *g = NULL;
        int r = job_graph_parse_yaml("l.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "parse: %s", err);
        struct wrk_graph *wg = NULL;
        if (!g || wrk_graph_create(g, &wg) < 0)
                return;
        struct wrk_task *tasks[3] = {0};
        struct wrk_task_options opts = {.buffer_timeout_ms = 5, .notify = unit_task_notify};
        for (uint32_t s = 0; s < 3; s++) {
                struct wrk_task_id id = {.job = "1123456789abcdef0123456789abcdef", .epoch = 1,
                                         .attempt = 1, .vertex = 0, .subtask = s, .slot = s};
                r = wrk_task_create(&id, wg, &opts, &tasks[s], err, sizeof(err));
                CHECK(r == 0, "task %u: %s", s, err);
                if (r == 0)
                        CHECK_INT(wrk_task_start(tasks[s]), 0);
        }
        for (int s = 0; s < 3 && tasks[s]; s++) {
                unit_wait_task_terminal(tasks[s], 20);
                struct wrk_task_change rep;
                wrk_task_report(tasks[s], &rep);
                CHECK(wrk_task_state(tasks[s]) == WRK_TASK_FINISHED, "task %d: %s", s, rep.error);
                wrk_task_destroy(tasks[s]);
        }
        wrk_graph_unref(wg);
        long lines = 0, sum = 0, last = 0;
        DIR *d = opendir(out);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "part-", 5) != 0)
                        continue;
                char p[1024];
                snprintf(p, sizeof(p), "%s/%s", out, de->d_name);
                FILE *pf = fopen(p, "r");
                char line[256];
                while (pf && fgets(line, sizeof(line), pf)) {
                        lines++;
                        if (strncmp(line, "last-without-newline", 20) == 0)
                                last++;
                        else
                                sum += strtol(line, NULL, 10);
                }
                if (pf)
                        fclose(pf);
        }
        if (d)
                closedir(d);
        CHECK_INT(lines, 998);
        CHECK_INT(sum, expect_sum);
        CHECK_INT(last, 1);
}

/* Flow control of an input gate: each channel may always queue buffers-per-channel
 * buffers, and the gate's floating buffers are shared beyond them; a put that finds
 * neither waits until a take frees one. */
struct gate_putter {
        struct wrk_gate *g;
        uint32_t channel;
        atomic_bool done;
        int r;
};

static void *gate_put_main(void *arg) {
        struct gate_putter *p = arg;
        p->r = wrk_gate_put(p->g, p->channel, "x", 1, NULL);
        atomic_store(&p->done, true);
        return NULL;
}

static void test_gate_exclusive_and_floating(void) {
        wrk_exchange_set_buffers(2, 3);
        struct wrk_gate *g = NULL;
        CHECK(wrk_gate_get("00000000000000000000000000000356", 1, 1, 0, &g) == 0, "gate");
        /* channel 0: 2 exclusive + all 3 floating */
        for (int i = 0; i < 5; i++)
                CHECK(wrk_gate_put(g, 0, "a", 1, NULL) == 0, "put %d on channel 0", i);
        /* channel 1 still has its 2 exclusive buffers */
        for (int i = 0; i < 2; i++)
                CHECK(wrk_gate_put(g, 1, "b", 1, NULL) == 0, "put %d on channel 1", i);
        CHECK(wrk_gate_queued(g) == 7, "queued %u", wrk_gate_queued(g));
        /* a third on channel 1 needs a floating buffer: it waits */
        struct gate_putter p = {.g = g, .channel = 1};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, gate_put_main, &p) == 0, "thread");
        CHECK(!atomic_load(&p.done), "a put beyond exclusive + floating must wait");
        CHECK(wrk_gate_queued(g) == 7, "nothing added while full: %u", wrk_gate_queued(g));
        /* taking one of channel 0's 5 (2 exclusive + 3 floating) frees a floating one */
        uint32_t ch = 9;
        void *data = NULL;
        size_t len = 0;
        CHECK(wrk_gate_take(g, 1000000, NULL, NULL, &ch, &data, &len) == 1 && ch == 0,
              "take the oldest (channel 0), seen %u", ch);
        free(data);
        pthread_join(t, NULL);
        CHECK(p.r == 0 && atomic_load(&p.done), "the waiting put went in: %d", p.r);
        CHECK(wrk_gate_queued(g) == 7, "queued %u", wrk_gate_queued(g));
        /* a channel past the limit is refused */
        CHECK(wrk_gate_put(g, WRK_GATE_MAX_CHANNELS, "c", 1, NULL) == -EINVAL,
              "channel out of range");
        wrk_gate_close(g);
        wrk_gate_unref(g);
        wrk_exchange_set_buffers(WRK_DEFAULT_BUFFERS_PER_CHANNEL, WRK_DEFAULT_FLOATING_BUFFERS);
}

/* ---- watermarks and windows ---- */

static void test_watermark_entry(void) {
        static struct wrk_outbuf b;
        wrk_outbuf_reset(&b);
        CHECK_INT(wrk_outbuf_add_watermark(&b, 1700000000123, 10), 0);
        CHECK_INT(wrk_outbuf_add_watermark(&b, INT64_MAX, 10), 0);
        CHECK_INT(wrk_outbuf_add_watermark(&b, INT64_MIN, 10), 0);
        size_t pos = 0;
        struct wrk_entry e;
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK_INT(e.type, WRK_ENTRY_WATERMARK);
        CHECK_INT(e.watermark, 1700000000123);
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK(e.watermark == INT64_MAX, "INT64_MAX");
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 1);
        CHECK(e.watermark == INT64_MIN, "INT64_MIN");
        CHECK_INT(wrk_buffer_next(b.data, b.len, &pos, &e), 0);
        for (size_t cut = 1; cut < b.len; cut++) {
                size_t p = 0;
                int r;
                while ((r = wrk_buffer_next(b.data, cut, &p, &e)) == 1)
                        ;
                CHECK(r == -EBADMSG || p == cut, "cut %zu: %d", cut, r);
        }
        /* 5 (reserved for a latency marker) is not an entry type here */
        unsigned char five[2] = {5, 0};
        pos = 0;
        CHECK_INT(wrk_buffer_next(five, sizeof(five), &pos, &e), -EBADMSG);
}

/* The combined watermark of three channels is their minimum; an ended channel no longer
 * holds it back; all ended is INT64_MAX; it never goes back. */
static void test_watermark_valve(void) {
        struct wrk_wm_valve v;
        CHECK_INT(wrk_wm_valve_init(&v, 0), -EINVAL);
        CHECK_INT(wrk_wm_valve_init(&v, 3), 0);
        int64_t w = 0;
        CHECK(!wrk_wm_valve_input(&v, 0, 10, &w), "two channels have none yet");
        CHECK(!wrk_wm_valve_input(&v, 1, 20, &w), "one has none yet");
        CHECK(wrk_wm_valve_input(&v, 2, 5, &w) && w == 5, "min(10, 20, 5) = 5");
        CHECK(!wrk_wm_valve_input(&v, 0, 30, &w), "still held by channel 2 at 5");
        CHECK(!wrk_wm_valve_input(&v, 2, 4, &w), "a channel never goes back");
        CHECK(wrk_wm_valve_input(&v, 2, 25, &w) && w == 20, "min(30, 20, 25) = 20");
        CHECK(wrk_wm_valve_end(&v, 1, &w) && w == 25, "channel 1 ended: min(30, 25)");
        CHECK(!wrk_wm_valve_input(&v, 1, 100, &w), "an ended channel counts no more");
        CHECK(!wrk_wm_valve_input(&v, 7, 100, &w), "no such channel");
        CHECK(wrk_wm_valve_end(&v, 2, &w) && w == 30, "only channel 0 left");
        CHECK(!wrk_wm_valve_end(&v, 2, &w), "ended twice");
        CHECK(wrk_wm_valve_end(&v, 0, &w) && w == INT64_MAX, "all ended: +infinity");
        wrk_wm_valve_finish(&v);
}

static void test_watermark_generator(void) {
        struct wrk_wm_gen g;
        wrk_wm_gen_init(&g, 5);
        int64_t w = 0;
        CHECK(wrk_wm_gen_event(&g, 100, &w) && w == 94, "100 - 5 - 1");
        CHECK(!wrk_wm_gen_event(&g, 97, &w), "an older record does not advance it");
        CHECK(!wrk_wm_gen_event(&g, 100, &w), "nor an equal one");
        CHECK(wrk_wm_gen_event(&g, 101, &w) && w == 95, "101 - 5 - 1");
        wrk_wm_gen_init(&g, 0);
        CHECK(!wrk_wm_gen_event(&g, INT64_MIN + 1, &w), "saturates at INT64_MIN: no advance");
        CHECK(wrk_wm_gen_event(&g, INT64_MIN + 2, &w) && w == INT64_MIN + 1, "then advances");
}

static void test_window_assign(void) {
        CHECK_INT(wrk_window_start(0, 10), 0);
        CHECK_INT(wrk_window_start(9, 10), 0);
        CHECK_INT(wrk_window_start(10, 10), 10);
        CHECK_INT(wrk_window_start(-1, 10), -10);
        CHECK_INT(wrk_window_start(-10, 10), -10);
        int64_t s[8];
        CHECK_INT(wrk_window_assign(17, 10, 0, s, 8), 1);
        CHECK_INT(s[0], 10);
        /* sliding 10 / 5: two windows, latest start first (Flink's order) */
        CHECK_INT(wrk_window_assign(17, 10, 5, s, 8), 2);
        CHECK(s[0] == 15 && s[1] == 10, "17 in [15,25) and [10,20): %lld %lld",
              (long long)s[0], (long long)s[1]);
        CHECK_INT(wrk_window_assign(15, 10, 5, s, 8), 2);
        CHECK(s[0] == 15 && s[1] == 10, "15 in [15,25) and [10,20)");
        /* 10 / 3: ceil(10 / 3) = 4 windows for 9: starts 9, 6, 3, 0 */
        CHECK_INT(wrk_window_assign(9, 10, 3, s, 8), 4);
        CHECK(s[0] == 9 && s[3] == 0, "starts 9..0");
        CHECK_INT(wrk_window_assign(9, 10, 3, s, 2), 2);
        /* slide above the size: gaps in no window */
        CHECK_INT(wrk_window_assign(7, 5, 10, s, 8), 0);
        CHECK_INT(wrk_window_assign(17, 5, 10, s, 8), 0);
        CHECK_INT(wrk_window_assign(14, 5, 10, s, 8), 1);
        CHECK_INT(s[0], 10);
        CHECK_INT(wrk_window_assign(21, 5, 10, s, 8), 1);
        CHECK_INT(s[0], 20);
}

int main(void) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/test_worker_dataflow.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_partition_hash);
        RUN(test_partition_others);
        RUN(test_buffer_roundtrip);
        RUN(test_buffer_full_and_flush);
        RUN(test_watermark_entry);
        RUN(test_watermark_valve);
        RUN(test_watermark_generator);
        RUN(test_window_assign);
        RUN(test_buffer_latency_markers);
        RUN(test_latency_histogram);
        RUN(test_align_exactly_once);
        RUN(test_align_at_least_once);
        RUN(test_gate_exclusive_and_floating);
        RUN(test_gen_redistribute);
        RUN(test_sink_names);
        RUN(test_sink_2pc);
        RUN(test_sink_rescale_cleanup);
        RUN(test_substate_roundtrip);
        RUN(test_keyed_wordcount_tasks);
        RUN(test_latency_markers_tasks);
        RUN(test_keyed_count_many_keys_in_order);
        RUN(test_file_splits);
        RUN(test_file_source_lines_once);
        fs_rm_rf(tmpdir);
        return unit_done();
}
