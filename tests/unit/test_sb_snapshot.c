/* Unit tests of statebackend/snapshot.h: the incremental ratio at 1M keys (printed),
 * a checkpoint without changes copies no SST, confirm / abort / reset semantics (the
 * base is never an unconfirmed checkpoint, aborted uploads are deleted and never named
 * again), an upload running on another thread while the task thread writes, shared
 * files named by uid only, corrupt local SST files failing the upload with an error
 * that names the file, and a synchronous part that flushes every state. */
#include "statebackend/snapshot.h"

#include <errno.h>
#include <pthread.h>

#include "common/clock.h"
#include "statebackend/handle.h"
#include "test_sb_util.h"

static struct sb_env *env;

static struct sb_backend *make(const char *name) {
        static struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                           {.name = "l", .kind = SB_STATE_LIST}};
        char dir[512], err[512] = "";
        struct sb_backend_config cfg = {.local_dir = sbt_path(dir, sizeof(dir), name),
                                        .range = {0, 128}, .states = d, .n_states = 2};
        struct sb_backend *b = NULL;
        int r = sb_backend_create(env, &cfg, &b, err, sizeof(err));
        CHECK(r == 0, "sb_backend_create(%s): expected 0, seen %d (%s)", name, r, err);
        return b;
}

/* Sync + upload of checkpoint id; returns the parsed handle (or NULL, having failed a
 * check) and the stats. */
static struct sb_handle *checkpoint(struct sb_backend *b, const char *job, uint64_t id,
                                    struct sb_upload_stats *stats) {
        char err[1024] = "", jd[512];
        struct sb_snapshot *s = NULL;
        int r = sb_snapshot_sync(b, id, &s, err, sizeof(err));
        CHECK(r == 0, "sync of checkpoint %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
        if (r < 0)
                return NULL;
        char *data = NULL;
        size_t len = 0;
        r = sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), job), &data, &len, stats, err,
                               sizeof(err));
        CHECK(r == 0, "upload of checkpoint %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
        sb_snapshot_destroy(s);
        if (r < 0)
                return NULL;
        struct sb_handle *h = NULL;
        r = sb_handle_parse(data, len, &h, err, sizeof(err));
        CHECK(r == 0, "parse of handle %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
        free(data);
        return h;
}

static bool handle_has_uid(const struct sb_handle *h, const char *uid) {
        for (size_t i = 0; i < h->n_shared; i++)
                if (strcmp(h->shared[i].uid, uid) == 0)
                        return true;
        return false;
}

static bool shared_exists(const char *job, const char *uid) {
        char p[512], rel[128];
        snprintf(rel, sizeof(rel), "%s/shared/%s.sst", job, uid);
        return access(sbt_path(p, sizeof(p), rel), F_OK) == 0;
}

/* 1M keys, checkpoint, 1% updated, checkpoint: the second copies at most 10 % of the
 * first's bytes. Then no change: no SST copied. */
static void test_incremental_ratio(void) {
        struct sb_backend *b = make("incr");
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        enum { KEYS = 1000000, VALUE = 64 };
        uint64_t t0 = clock_mono_ms();
        CHECK_INT(sbt_put_keys(v, 0, KEYS, VALUE, 1), 0);
        /* The bulk load leaves merges for background compaction; finish them now so that
         * what the second checkpoint copies is what the updates changed. */
        CHECK_INT(sb_backend_compact(b), 0);
        struct sb_upload_stats s1, s2, s3;
        struct sb_handle *h1 = checkpoint(b, "incr-job", 1, &s1);
        CHECK_INT(sb_backend_confirm(b, 1), 0);
        char key[32], val[VALUE];
        for (uint32_t i = 0; i < KEYS / 100; i++) {
                uint32_t n = (uint32_t)(sbt_rand() % KEYS);
                int kl = snprintf(key, sizeof(key), "key%012u", n);
                sbt_fill(val, sizeof(val), 77 + i);
                struct sb_key k = {.key = key, .key_len = (size_t)kl};
                CHECK_INT(sb_value_put(v, &k, val, sizeof(val)), 0);
        }
        struct sb_handle *h2 = checkpoint(b, "incr-job", 2, &s2);
        CHECK_INT(sb_backend_confirm(b, 2), 0);
        struct sb_handle *h3 = checkpoint(b, "incr-job", 3, &s3);
        if (h1 && h2 && h3) {
                double ratio = (double)s2.copied_bytes / (double)s1.copied_bytes;
                printf("incremental: checkpoint 1 copied %" PRIu64 " bytes (%u SST files), "
                       "checkpoint 2 after 1%% updates copied %" PRIu64 " bytes (%u new SST "
                       "files): ratio %.4f; checkpoint 3 without changes copied %u SST files "
                       "(%" PRIu64 " bytes of private files); %" PRIu64 " ms\n",
                       s1.copied_bytes, s1.new_sst_files, s2.copied_bytes, s2.new_sst_files,
                       ratio, s3.new_sst_files, s3.private_bytes, clock_mono_ms() - t0);
                CHECK(ratio <= 0.10, "expected the second checkpoint to copy at most 10%% of the "
                      "first's bytes, seen %.4f", ratio);
                CHECK_INT(s3.new_sst_files, 0);
                CHECK_INT(s3.new_sst_bytes, 0);
                /* Checkpoint 3 names exactly checkpoint 2's SST files. */
                CHECK_INT(h3->n_shared, h2->n_shared);
                for (size_t i = 0; i < h3->n_shared; i++) {
                        CHECK(!h3->shared[i].is_new, "checkpoint 3 marks %s new",
                              h3->shared[i].local);
                        CHECK(handle_has_uid(h2, h3->shared[i].uid),
                              "checkpoint 3 names uid %s that checkpoint 2 does not",
                              h3->shared[i].uid);
                }
                /* Shared files are named by uid, never by their local name. */
                for (size_t i = 0; i < h2->n_shared; i++) {
                        CHECK(strstr(h2->shared[i].uid, ".sst") == NULL &&
                              strcmp(h2->shared[i].uid, h2->shared[i].local) != 0,
                              "uid %s looks like a local name", h2->shared[i].uid);
                        CHECK(shared_exists("incr-job", h2->shared[i].uid),
                              "shared/%s.sst is missing", h2->shared[i].uid);
                }
                CHECK_INT(h2->range.start, 0);
                CHECK_INT(h2->range.end, 128);
                CHECK_INT(h2->max_parallelism, 128);
                CHECK_INT(h2->n_states, 2);
                CHECK(h2->n_members >= 3, "expected MANIFEST, CURRENT, OPTIONS in the pack, "
                      "seen %zu files", h2->n_members);
        }
        sb_handle_free(h1);
        sb_handle_free(h2);
        sb_handle_free(h3);
        sb_backend_destroy(b);
}

/* The synchronous part flushes every state that holds data (their flushes are queued
 * together, then waited for): each state's writes are in an SST file of the snapshot,
 * none is left in a memtable, and the sync stats count every entry. */
static void test_sync_flushes_every_state(void) {
        struct sb_backend *b = make("flushall");
        if (!b)
                return;
        CHECK_INT(sbt_put_keys(sb_backend_state(b, "v"), 0, 3000, 32, 1), 0);
        struct sb_state *l = sb_backend_state(b, "l");
        for (int i = 0; i < 2000; i++) {
                char key[32];
                int kl = snprintf(key, sizeof(key), "list%06d", i);
                struct sb_key k = {.key = key, .key_len = (size_t)kl};
                CHECK_INT(sb_list_add(l, &k, "e", 1), 0);
        }
        char err[1024] = "", jd[512];
        struct sb_snapshot *s = NULL;
        int r = sb_snapshot_sync(b, 1, &s, err, sizeof(err));
        CHECK(r == 0, "sync: expected 0, seen %d (%s)", r, err);
        if (r < 0) {
                sb_backend_destroy(b);
                return;
        }
        struct sb_sync_stats ss;
        sb_snapshot_get_sync_stats(s, &ss);
        CHECK_INT(ss.memtable_entries, 5000);
        struct sb_backend_stats bs;
        CHECK_INT(sb_backend_get_stats(b, &bs), 0);
        CHECK_INT(bs.sst_files, 2);
        char *data = NULL;
        size_t len = 0;
        struct sb_upload_stats us;
        r = sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), "flushall-job"), &data, &len, &us,
                               err, sizeof(err));
        CHECK(r == 0, "upload: expected 0, seen %d (%s)", r, err);
        CHECK_INT(us.new_sst_files, 2);
        free(data);
        sb_snapshot_destroy(s);
        sb_backend_destroy(b);
}

/* The base moves only on confirm; an aborted checkpoint's uploads are deleted and never
 * named by a later handle. */
static void test_confirm_abort(void) {
        struct sb_backend *b = make("ca");
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        char err[512];
        CHECK_INT(sbt_put_keys(v, 0, 5000, 32, 1), 0);
        struct sb_handle *h1 = checkpoint(b, "ca-job", 1, NULL);
        CHECK_INT(sb_backend_base_checkpoint(b), 0);
        CHECK_INT(sb_backend_confirm(b, 1), 0);
        CHECK_INT(sb_backend_base_checkpoint(b), 1);
        CHECK_INT(sb_backend_confirm(b, 1), -ENOENT); /* consumed */
        CHECK_INT(sb_backend_confirm(b, 99), -ENOENT);
        CHECK_INT(sb_backend_base_checkpoint(b), 1);

        CHECK_INT(sbt_put_keys(v, 5000, 5000, 32, 2), 0);
        struct sb_handle *h2 = checkpoint(b, "ca-job", 2, NULL);
        /* Checkpoint 2 is neither confirmed nor aborted yet: checkpoint 3 bases on 1. */
        CHECK_INT(sbt_put_keys(v, 10000, 100, 32, 3), 0);
        struct sb_handle *h3 = checkpoint(b, "ca-job", 3, NULL);
        if (h1 && h2 && h3) {
                for (size_t i = 0; i < h3->n_shared; i++) {
                        const struct sb_handle_file *f = &h3->shared[i];
                        CHECK(!handle_has_uid(h2, f->uid) || handle_has_uid(h1, f->uid),
                              "checkpoint 3 reuses %s, uploaded by the unconfirmed "
                              "checkpoint 2", f->uid);
                        if (!f->is_new)
                                CHECK(handle_has_uid(h1, f->uid), "checkpoint 3 reuses %s, "
                                      "which the base (checkpoint 1) does not hold", f->uid);
                }
        }
        /* Abort 2: what it uploaded is deleted, what checkpoint 1 holds stays. */
        CHECK_INT(sb_backend_abort(b, 2, err, sizeof(err)), 0);
        CHECK_INT(sb_backend_abort(b, 2, err, sizeof(err)), 0); /* idempotent */
        if (h1 && h2) {
                for (size_t i = 0; i < h2->n_shared; i++) {
                        const struct sb_handle_file *f = &h2->shared[i];
                        bool exists = shared_exists("ca-job", f->uid);
                        if (f->is_new)
                                CHECK(!exists, "aborted checkpoint 2's upload %s is still there",
                                      f->uid);
                        else
                                CHECK(exists, "checkpoint 1's file %s was deleted by the abort",
                                      f->uid);
                }
                char p[512], rel[256];
                snprintf(rel, sizeof(rel), "ca-job/%s", h2->private_path);
                CHECK(access(sbt_path(p, sizeof(p), rel), F_OK) != 0,
                      "aborted checkpoint 2's pack %s is still there", h2->private_path);
        }
        /* Confirming 3 makes it the base; 4 reuses only 3's files, none of 2's uploads. */
        CHECK_INT(sb_backend_confirm(b, 3), 0);
        CHECK_INT(sbt_put_keys(v, 20000, 100, 32, 4), 0);
        struct sb_handle *h4 = checkpoint(b, "ca-job", 4, NULL);
        if (h2 && h3 && h4) {
                for (size_t i = 0; i < h4->n_shared; i++) {
                        const struct sb_handle_file *f = &h4->shared[i];
                        CHECK(!handle_has_uid(h2, f->uid) || handle_has_uid(h3, f->uid),
                              "checkpoint 4 names %s, an upload of the aborted checkpoint 2",
                              f->uid);
                        CHECK(f->is_new || handle_has_uid(h3, f->uid),
                              "checkpoint 4 reuses %s, not in its base 3", f->uid);
                }
        }
        /* Abort after the sync, before the upload: the upload is cancelled, nothing
         * copied. Abort before the sync: the sync is refused. */
        char jd[512];
        struct sb_snapshot *s = NULL;
        size_t before = sbt_count_dir(sbt_path(jd, sizeof(jd), "ca-job/shared"));
        CHECK_INT(sbt_put_keys(v, 30000, 100, 32, 5), 0);
        CHECK_INT(sb_snapshot_sync(b, 5, &s, err, sizeof(err)), 0);
        CHECK_INT(sb_backend_abort(b, 5, err, sizeof(err)), 0);
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), "ca-job"), &data, &len, NULL,
                                     err, sizeof(err)), -ECANCELED);
        CHECK(data == NULL, "ret_handle was set on failure");
        sb_snapshot_destroy(s);
        CHECK_INT(sbt_count_dir(sbt_path(jd, sizeof(jd), "ca-job/shared")), before);
        CHECK_INT(sb_backend_abort(b, 6, err, sizeof(err)), 0);
        s = NULL;
        CHECK_INT(sb_snapshot_sync(b, 6, &s, err, sizeof(err)), -ECANCELED);
        CHECK(s == NULL, "ret_snap was set on failure");
        /* Reset: the next checkpoint copies everything again. */
        sb_backend_reset_base(b);
        CHECK_INT(sb_backend_base_checkpoint(b), 0);
        struct sb_upload_stats st;
        struct sb_handle *h7 = checkpoint(b, "ca-job", 7, &st);
        if (h7) {
                CHECK_INT(st.new_sst_files, h7->n_shared);
                for (size_t i = 0; i < h7->n_shared; i++)
                        CHECK(h7->shared[i].is_new, "after a reset %s is reused",
                              h7->shared[i].local);
        }
        /* The same id twice is refused. */
        CHECK_INT(sb_snapshot_sync(b, 7, &s, err, sizeof(err)), -EEXIST);
        sb_handle_free(h1);
        sb_handle_free(h2);
        sb_handle_free(h3);
        sb_handle_free(h4);
        sb_handle_free(h7);
        sb_backend_destroy(b);
}

struct upload_job {
        struct sb_snapshot *snap;
        const char *job_dir;
        char *data;
        size_t len;
        int r;
        char err[512];
};

static void *upload_thread(void *arg) {
        struct upload_job *u = arg;
        u->r = sb_snapshot_upload(u->snap, u->job_dir, &u->data, &u->len, NULL, u->err,
                                  sizeof(u->err));
        return NULL;
}

/* Uploads run on snapshot threads while the task thread writes and takes the next
 * synchronous snapshot; a snapshot outlives its backend. */
static void test_concurrent_upload(void) {
        struct sb_backend *b = make("conc");
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v"), *l = sb_backend_state(b, "l");
        char err[512], jd[512];
        sbt_path(jd, sizeof(jd), "conc-job");
        CHECK_INT(sbt_put_keys(v, 0, 50000, 100, 1), 0);
        struct upload_job u[4] = {0};
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
                CHECK_INT(sb_snapshot_sync(b, (uint64_t)i + 1, &u[i].snap, err, sizeof(err)), 0);
                u[i].job_dir = jd;
                pthread_create(&th[i], NULL, upload_thread, &u[i]);
                /* The task thread goes on writing meanwhile. */
                for (uint32_t j = 0; j < 5000; j++) {
                        struct sb_key k = {.key = &j, .key_len = sizeof(j)};
                        CHECK_INT(sb_list_add(l, &k, &i, sizeof(i)), 0);
                }
                CHECK_INT(sbt_put_keys(v, (uint32_t)i * 1000, 1000, 100, 10 + (uint64_t)i), 0);
                if (i == 1) {
                        pthread_join(th[0], NULL);
                        CHECK(u[0].r == 0, "upload 1: %s", u[0].err);
                        CHECK_INT(sb_backend_confirm(b, 1), 0);
                }
        }
        struct sb_snapshot *last = NULL;
        CHECK_INT(sb_snapshot_sync(b, 5, &last, err, sizeof(err)), 0);
        for (int i = 1; i < 4; i++) {
                pthread_join(th[i], NULL);
                CHECK(u[i].r == 0, "upload %d: %s", i + 1, u[i].err);
        }
        CHECK_INT(sb_backend_confirm(b, 3), 0);
        CHECK_INT(sb_backend_abort(b, 4, err, sizeof(err)), 0);
        /* Destroy the backend first: the snapshot still uploads. */
        sb_backend_destroy(b);
        char *data = NULL;
        size_t len = 0;
        int r = sb_snapshot_upload(last, jd, &data, &len, NULL, err, sizeof(err));
        CHECK(r == 0, "upload after destroy: expected 0, seen %d (%s)", r, err);
        sb_snapshot_destroy(last);
        struct sb_handle *h = NULL;
        if (r == 0)
                CHECK_INT(sb_handle_parse(data, len, &h, err, sizeof(err)), 0);
        if (h)
                CHECK(h->n_shared > 0, "the last handle names no SST");
        sb_handle_free(h);
        free(data);
        for (int i = 0; i < 4; i++) {
                sb_snapshot_destroy(u[i].snap);
                free(u[i].data);
        }
}

/* A flipped byte in a local SST fails the upload with an error naming the file; nothing
 * of the upload stays in checkpoint storage. */
static void corrupt_at(const char *name, double where, long from_end) {
        struct sb_backend *b = make(name);
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        char err[1024] = "", jd[512], job[128], sst[256] = "", snapdir[2048], p[4096];
        snprintf(job, sizeof(job), "%s-job", name);
        CHECK_INT(sbt_put_keys(v, 0, 20000, 100, 9), 0);
        struct sb_snapshot *s = NULL;
        CHECK_INT(sb_snapshot_sync(b, 1, &s, err, sizeof(err)), 0);
        /* Find the SST in the local snapshot and flip one byte. */
        char rel[256];
        snprintf(rel, sizeof(rel), "%s/snap-1", name);
        sbt_path(snapdir, sizeof(snapdir), rel);
        DIR *d = opendir(snapdir);
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (strstr(e->d_name, ".sst"))
                        snprintf(sst, sizeof(sst), "%s", e->d_name);
        if (d)
                closedir(d);
        CHECK(sst[0], "no SST in %s", snapdir);
        snprintf(p, sizeof(p), "%s/%s", snapdir, sst);
        long size = sbt_file_size(p);
        long off = from_end ? size - from_end : (long)((double)size * where);
        CHECK_INT(sbt_flip_byte(p, off), 0);
        char *data = NULL;
        size_t len = 0;
        int r = sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), job), &data, &len, NULL, err,
                                   sizeof(err));
        CHECK(r == -EBADMSG, "upload with a byte flipped at %ld of %ld: expected -EBADMSG, seen "
              "%d (%s)", off, size, r, err);
        CHECK_CONTAINS(err, sst);
        CHECK(data == NULL, "ret_handle was set on failure");
        snprintf(p, sizeof(p), "%s/shared", jd);
        CHECK_INT(sbt_count_dir(p), 0);
        sb_snapshot_destroy(s);
        CHECK_INT(sbt_count_dir(snapdir), 0);
        sb_backend_destroy(b);
}

static void test_corrupt_local_sst(void) {
        corrupt_at("corrupt-mid", 0.5, 0);    /* a data block */
        corrupt_at("corrupt-start", 0.0, 0);  /* the first data block */
        corrupt_at("corrupt-index", 0.0, 300); /* index, metaindex or properties */
        corrupt_at("corrupt-footer", 0.0, 10); /* the footer's format version */
        corrupt_at("corrupt-pad", 0.0, 20);    /* the footer's padding */
}

int main(void) {
        sbt_mkroot();
        env = sbt_env(256ull << 20);
        RUN(test_sync_flushes_every_state);
        RUN(test_confirm_abort);
        RUN(test_concurrent_upload);
        RUN(test_corrupt_local_sst);
        RUN(test_incremental_ratio);
        sb_env_destroy(env);
        sbt_rmroot();
        return unit_done();
}
