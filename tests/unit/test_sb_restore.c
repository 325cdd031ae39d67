/* Unit tests of statebackend/restore.h: an exact restore at the same parallelism (every
 * entry of every state compared, and the next checkpoint still incremental), rescaling
 * 2 -> 3 and 4 -> 2 at 100k keys (each key in exactly one new subtask, the one owning its
 * key group, and clipped data never resurrects), restores of checkpoints taken while
 * compactions run and writes follow each barrier (each exactly its barrier's state), and
 * restores that fail cleanly on a missing or corrupt file in checkpoint storage or on
 * inconsistent handles. */
#include "statebackend/restore.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "statebackend/snapshot.h"
#include "test_sb_util.h"

static struct sb_env *env;

static int sum_u64(void *arg, const void *acc, size_t acc_len, const void *in, size_t in_len,
                   void *out, size_t out_cap, size_t *ret_len) {
        (void)arg;
        uint64_t a = 0, b = 0;
        if (acc_len == 8)
                memcpy(&a, acc, 8);
        if (in_len == 8)
                memcpy(&b, in, 8);
        *ret_len = 8;
        if (out_cap < 8)
                return -ENOBUFS;
        a += b;
        memcpy(out, &a, 8);
        return 0;
}

static const struct sb_state_desc states[] = {
        {.name = "value", .kind = SB_STATE_VALUE},
        {.name = "list", .kind = SB_STATE_LIST},
        {.name = "map", .kind = SB_STATE_MAP},
        {.name = "sum", .kind = SB_STATE_REDUCING, .reduce = sum_u64},
        {.name = "ttl", .kind = SB_STATE_VALUE, .ttl_ms = 24 * 3600 * 1000},
};
#define N_STATES (sizeof(states) / sizeof(states[0]))

static struct sb_backend_config config(char *dir, size_t len, const char *name,
                                       struct kg_range r) {
        return (struct sb_backend_config){.local_dir = sbt_path(dir, len, name),
                                          .max_parallelism = 128, .range = r,
                                          .states = states, .n_states = N_STATES};
}

static struct sb_backend *make(const char *name, struct kg_range r) {
        char dir[512], err[512] = "";
        struct sb_backend_config cfg = config(dir, sizeof(dir), name, r);
        struct sb_backend *b = NULL;
        int rc = sb_backend_create(env, &cfg, &b, err, sizeof(err));
        CHECK(rc == 0, "sb_backend_create(%s): expected 0, seen %d (%s)", name, rc, err);
        return b;
}

/* Writes key number i into every state, if its key group is in b's range. */
static void write_key(struct sb_backend *b, uint32_t i, uint32_t version) {
        char key[32], val[48];
        int kl = snprintf(key, sizeof(key), "user-%u", i);
        uint32_t kg = kg_of_key(key, (size_t)kl, 128);
        struct kg_range r = sb_backend_range(b);
        if (kg < r.start || kg >= r.end)
                return;
        struct sb_key k = {.key = key, .key_len = (size_t)kl};
        int vl = snprintf(val, sizeof(val), "v%u-%u", i, version);
        CHECK_INT(sb_value_put(sb_backend_state(b, "value"), &k, val, (size_t)vl), 0);
        CHECK_INT(sb_value_put(sb_backend_state(b, "ttl"), &k, val, (size_t)vl), 0);
        uint64_t one = i;
        CHECK_INT(sb_reducing_add(sb_backend_state(b, "sum"), &k, &one, 8), 0);
        if (i % 10 == 0) {
                CHECK_INT(sb_list_add(sb_backend_state(b, "list"), &k, val, (size_t)vl), 0);
                CHECK_INT(sb_list_add(sb_backend_state(b, "list"), &k, "", 0), 0);
                struct sb_key kn = {.key = key, .key_len = (size_t)kl, .ns = "w\0", .ns_len = 2};
                CHECK_INT(sb_map_put(sb_backend_state(b, "map"), &kn, "a", 1, val, (size_t)vl), 0);
                CHECK_INT(sb_map_put(sb_backend_state(b, "map"), &kn, "b\0", 2, "x", 1), 0);
        }
}

/* ---- entries as sorted blobs, for exact comparison ------------------------------ */

struct blobs {
        char **v;
        size_t *len;
        size_t n, cap;
        int parallelism;     /* when > 0, check every entry's owner */
        int index;
        size_t wrong_owner;
        const char *state;
};

static void put_field(char *buf, size_t *off, const void *p, size_t len) {
        memcpy(buf + *off, &len, sizeof(len));
        *off += sizeof(len);
        if (len)
                memcpy(buf + *off, p, len);
        *off += len;
}

static int add_entry(void *arg, const struct sb_entry *e) {
        struct blobs *bl = arg;
        if (bl->parallelism > 0 &&
            (kg_of_key(e->key, e->key_len, 128) != e->key_group ||
             kg_operator_index(e->key_group, 128, (uint32_t)bl->parallelism) != (uint32_t)bl->index))
                bl->wrong_owner++;
        if (bl->n == bl->cap) {
                bl->cap = bl->cap ? bl->cap * 2 : 1024;
                bl->v = realloc(bl->v, bl->cap * sizeof(*bl->v));
                bl->len = realloc(bl->len, bl->cap * sizeof(*bl->len));
        }
        size_t sz = strlen(bl->state) + e->key_len + e->ns_len + e->user_key_len + e->value_len +
                    sizeof(uint32_t) + 6 * sizeof(size_t);
        char *buf = malloc(sz);
        size_t off = 0;
        put_field(buf, &off, bl->state, strlen(bl->state));
        put_field(buf, &off, e->key, e->key_len);
        put_field(buf, &off, e->ns, e->ns_len);
        put_field(buf, &off, e->user_key, e->user_key_len);
        put_field(buf, &off, e->value, e->value_len);
        uint32_t kg = e->key_group;
        put_field(buf, &off, &kg, sizeof(kg));
        bl->v[bl->n] = buf;
        bl->len[bl->n] = off;
        bl->n++;
        return 0;
}

static void collect(struct sb_backend *b, struct blobs *bl) {
        for (size_t i = 0; i < N_STATES; i++) {
                bl->state = states[i].name;
                CHECK_INT(sb_state_scan(sb_backend_state(b, states[i].name), add_entry, bl), 0);
        }
}

static size_t *sort_len;
static char **sort_v;
static int cmp_idx(const void *a, const void *b) {
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        size_t n = sort_len[x] < sort_len[y] ? sort_len[x] : sort_len[y];
        int c = memcmp(sort_v[x], sort_v[y], n);
        return c ? c : (sort_len[x] > sort_len[y]) - (sort_len[x] < sort_len[y]);
}

static void blobs_sort(struct blobs *bl) {
        size_t *idx = malloc((bl->n + 1) * sizeof(*idx));
        for (size_t i = 0; i < bl->n; i++)
                idx[i] = i;
        sort_len = bl->len;
        sort_v = bl->v;
        qsort(idx, bl->n, sizeof(*idx), cmp_idx);
        char **v = malloc((bl->n + 1) * sizeof(*v));
        size_t *len = malloc((bl->n + 1) * sizeof(*len));
        for (size_t i = 0; i < bl->n; i++) {
                v[i] = bl->v[idx[i]];
                len[i] = bl->len[idx[i]];
        }
        free(bl->v);
        free(bl->len);
        free(idx);
        bl->v = v;
        bl->len = len;
}

/* Same entries, each exactly once on both sides. */
static void blobs_compare(struct blobs *want, struct blobs *seen, const char *what) {
        blobs_sort(want);
        blobs_sort(seen);
        CHECK(want->n == seen->n, "%s: expected %zu entries, seen %zu", what, want->n, seen->n);
        size_t diffs = 0;
        for (size_t i = 0; i < want->n && i < seen->n; i++)
                diffs += want->len[i] != seen->len[i] || memcmp(want->v[i], seen->v[i], want->len[i]);
        CHECK(diffs == 0, "%s: %zu entries differ", what, diffs);
}

static void blobs_free(struct blobs *bl) {
        for (size_t i = 0; i < bl->n; i++)
                free(bl->v[i]);
        free(bl->v);
        free(bl->len);
        memset(bl, 0, sizeof(*bl));
}

/* ---- checkpoints ------------------------------------------------------------------ */

static int take(struct sb_backend *b, uint64_t id, char **data, size_t *len,
                struct sb_upload_stats *st) {
        char err[512] = "", jd[512];
        struct sb_snapshot *s = NULL;
        int r = sb_snapshot_sync(b, id, &s, err, sizeof(err));
        if (r == 0)
                r = sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), "job"), data, len, st, err,
                                       sizeof(err));
        CHECK(r == 0, "checkpoint %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
        sb_snapshot_destroy(s);
        if (r == 0)
                CHECK_INT(sb_backend_confirm(b, id), 0);
        return r;
}

static struct sb_backend *restore(const char *name, struct kg_range r, struct sb_bytes *hs,
                                  size_t n) {
        char dir[512], err[1024] = "", jd[512];
        struct sb_backend_config cfg = config(dir, sizeof(dir), name, r);
        struct sb_backend *b = NULL;
        int rc = sb_backend_restore(env, &cfg, sbt_path(jd, sizeof(jd), "job"), hs, n, &b, err,
                                    sizeof(err));
        CHECK(rc == 0, "restore of %s [%u,%u): expected 0, seen %d (%s)", name, r.start, r.end,
              rc, err);
        return b;
}

static void test_exact_restore(void) {
        struct kg_range all = {0, 128};
        struct sb_backend *b = make("exact", all);
        if (!b)
                return;
        for (uint32_t i = 0; i < 20000; i++)
                write_key(b, i, 1);
        /* Values of 1 MiB and more go through the SST verifier and back. */
        char *big = malloc(3u << 20);
        for (int i = 0; i < 2 && big; i++) {
                size_t len = i ? 3u << 20 : 1u << 20;
                sbt_fill(big, len, 50 + (uint64_t)i);
                struct sb_key k = {.key = i ? "big-1" : "big-0", .key_len = 5};
                CHECK_INT(sb_value_put(sb_backend_state(b, "value"), &k, big, len), 0);
                CHECK_INT(sb_list_add(sb_backend_state(b, "list"), &k, big, len), 0);
        }
        free(big);
        char *h1 = NULL, *h2 = NULL;
        size_t l1 = 0, l2 = 0;
        take(b, 1, &h1, &l1, NULL);
        for (uint32_t i = 0; i < 20000; i += 7)
                write_key(b, i, 2);
        struct sb_key gone = {.key = "user-14", .key_len = 7};
        CHECK_INT(sb_state_clear(sb_backend_state(b, "value"), &gone), 0);
        take(b, 2, &h2, &l2, NULL);
        struct blobs want = {0}, seen = {0};
        collect(b, &want);
        sb_backend_destroy(b);
        struct sb_bytes hs[] = {{h2, l2}};
        struct sb_backend *r = restore("exact-r", all, hs, 1);
        if (r) {
                collect(r, &seen);
                blobs_compare(&want, &seen, "same-parallelism restore");
                CHECK_INT(sb_value_get(sb_backend_state(r, "value"), &gone, NULL), 0);
                /* The restored files are the base: no change, no SST copied. */
                struct sb_upload_stats st;
                char *h3 = NULL;
                size_t l3 = 0;
                CHECK_INT(sb_backend_base_checkpoint(r), 2);
                take(r, 3, &h3, &l3, &st);
                CHECK_INT(st.new_sst_files, 0);
                free(h3);
                /* And it goes on working. */
                write_key(r, 21, 3);
                CHECK_INT(sb_value_get(sb_backend_state(r, "value"), &gone, NULL), 0);
                sb_backend_destroy(r);
        }
        blobs_free(&want);
        blobs_free(&seen);
        free(h1);
        free(h2);
}

/* Uploads and confirms snapshot s (checkpoint id), then destroys it. */
static bool upload_confirm(struct sb_backend *b, struct sb_snapshot *s, uint64_t id,
                           char **ret_h, size_t *ret_len) {
        char err[512] = "", jd[512];
        int r = sb_snapshot_upload(s, sbt_path(jd, sizeof(jd), "job"), ret_h, ret_len, NULL,
                                   err, sizeof(err));
        CHECK(r == 0, "upload %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
        sb_snapshot_destroy(s);
        if (r == 0)
                CHECK_INT(sb_backend_confirm(b, id), 0);
        return r == 0;
}

/* Snapshots taken while background compactions rewrite the files (every checkpoint
 * adds a run per state; universal compaction merges them), with writes after each
 * barrier and each upload after the next snapshot's flush: every checkpoint restores to
 * exactly the state at its barrier. The synchronous part
 * copies nothing: right after it the snapshot's MANIFEST and SST files are hard links of
 * the database's, and CURRENT is only written by the upload. */
static void test_restore_during_compactions(void) {
        struct kg_range all = {0, 128};
        struct sb_backend *b = make("busy", all);
        if (!b)
                return;
        for (uint32_t i = 0; i < 30000; i++)
                write_key(b, i, 1);
        enum { ROUNDS = 10 };
        char *h[ROUNDS] = {0};
        size_t hl[ROUNDS] = {0};
        struct blobs want[ROUNDS] = {{0}};
        struct sb_snapshot *prev = NULL;
        char err[512] = "", path[1024], rel[64];
        for (uint32_t round = 0; round < ROUNDS; round++) {
                for (uint32_t i = round; i < 30000; i += 5)
                        write_key(b, i, 10 + round);
                uint64_t id = round + 1;
                struct sb_snapshot *s = NULL;
                int r = sb_snapshot_sync(b, id, &s, err, sizeof(err));
                CHECK(r == 0, "sync %" PRIu64 ": expected 0, seen %d (%s)", id, r, err);
                if (r < 0)
                        break;
                collect(b, &want[round]); /* the state at the barrier */
                if (round == 0) {
                        char snapdir[512];
                        snprintf(rel, sizeof(rel), "busy/snap-%" PRIu64, id);
                        sbt_path(snapdir, sizeof(snapdir), rel);
                        size_t links = 0, ssts = 0, manifests = 0, current = 0;
                        DIR *d = opendir(snapdir);
                        struct dirent *e;
                        while (d && (e = readdir(d))) {
                                struct stat st;
                                snprintf(path, sizeof(path), "%s/%s", snapdir, e->d_name);
                                bool sst = strstr(e->d_name, ".sst") != NULL;
                                bool man = strncmp(e->d_name, "MANIFEST-", 9) == 0;
                                ssts += sst;
                                manifests += man;
                                current += strcmp(e->d_name, "CURRENT") == 0;
                                if ((sst || man) && stat(path, &st) == 0 && st.st_nlink >= 2)
                                        links++;
                        }
                        if (d)
                                closedir(d);
                        CHECK(ssts >= N_STATES && manifests == 1 && links == ssts + 1,
                              "expected the synchronous part to hard-link the MANIFEST and the "
                              "SST files; seen %zu SST files and %zu MANIFEST, %zu of them "
                              "links", ssts, manifests, links);
                        CHECK_INT(current, 0);
                }
                /* Writes after the barrier, flushed by the next round's snapshot before
                 * this one is uploaded: its MANIFEST has grown by then. */
                for (uint32_t i = round + 1; i < 30000; i += 7)
                        write_key(b, i, 100 + round);
                CHECK_INT(sb_state_clear(sb_backend_state(b, "value"),
                                         &(struct sb_key){.key = "user-3", .key_len = 6}), 0);
                bool ok = !prev || upload_confirm(b, prev, round, &h[round - 1], &hl[round - 1]);
                prev = s;
                if (!ok)
                        break;
        }
        if (prev)
                upload_confirm(b, prev, ROUNDS, &h[ROUNDS - 1], &hl[ROUNDS - 1]);
        sb_backend_destroy(b);
        for (uint32_t round = 0; round < ROUNDS; round++) {
                if (!h[round])
                        continue;
                snprintf(rel, sizeof(rel), "busy-r%u", round);
                struct sb_bytes hs[] = {{h[round], hl[round]}};
                struct sb_backend *r = restore(rel, all, hs, 1);
                if (r) {
                        struct blobs seen = {0};
                        collect(r, &seen);
                        snprintf(rel, sizeof(rel), "restore of checkpoint %u", round + 1);
                        blobs_compare(&want[round], &seen, rel);
                        blobs_free(&seen);
                        sb_backend_destroy(r);
                }
                blobs_free(&want[round]);
                free(h[round]);
        }
}

/* Writes 100k keys into old_p subtasks, checkpoints them, restores new_p subtasks from
 * all handles and checks ownership and content; then deletes and updates keys in the
 * new subtasks and restores all of them into one, to see that clipped data stays gone. */
static void rescale(int old_p, int new_p, uint64_t chk) {
        enum { KEYS = 100000 };
        char name[64];
        struct sb_backend *old[8] = {0}, *nu[8] = {0};
        struct sb_bytes hs[8] = {{0}};
        struct blobs want = {0};
        for (int i = 0; i < old_p; i++) {
                snprintf(name, sizeof(name), "old-%d-%d-%d", old_p, new_p, i);
                old[i] = make(name, kg_range_for_operator(128, (uint32_t)old_p, (uint32_t)i));
                if (!old[i])
                        return;
                for (uint32_t k = 0; k < KEYS; k++)
                        write_key(old[i], k, 1);
                char *d = NULL;
                size_t l = 0;
                take(old[i], chk, &d, &l, NULL);
                hs[i] = (struct sb_bytes){d, l};
                collect(old[i], &want);
                sb_backend_destroy(old[i]);
        }
        struct blobs seen = {0};
        for (int i = 0; i < new_p; i++) {
                snprintf(name, sizeof(name), "new-%d-%d-%d", old_p, new_p, i);
                nu[i] = restore(name, kg_range_for_operator(128, (uint32_t)new_p, (uint32_t)i), hs,
                                (size_t)old_p);
                if (!nu[i])
                        goto out;
                seen.parallelism = new_p;
                seen.index = i;
                collect(nu[i], &seen);
        }
        char what[64];
        snprintf(what, sizeof(what), "rescale %d -> %d", old_p, new_p);
        CHECK(seen.wrong_owner == 0, "%s: %zu entries in a subtask that does not own their key "
              "group", what, seen.wrong_owner);
        blobs_compare(&want, &seen, what);

        /* Delete every third key and update every fifth in the new subtasks, checkpoint,
         * and restore everything into one subtask. */
        struct blobs want2 = {0}, seen2 = {0};
        struct sb_bytes hs2[8] = {{0}};
        for (int i = 0; i < new_p; i++) {
                struct kg_range r = sb_backend_range(nu[i]);
                for (uint32_t k = 0; k < KEYS; k++) {
                        char key[32];
                        int kl = snprintf(key, sizeof(key), "user-%u", k);
                        uint32_t kg = kg_of_key(key, (size_t)kl, 128);
                        if (kg < r.start || kg >= r.end)
                                continue;
                        struct sb_key sk = {.key = key, .key_len = (size_t)kl};
                        if (k % 3 == 0) {
                                for (size_t s = 0; s < N_STATES; s++)
                                        CHECK_INT(sb_state_clear(sb_backend_state(nu[i], states[s].name),
                                                                 &sk), 0);
                        } else if (k % 5 == 0) {
                                write_key(nu[i], k, 2);
                        }
                }
                char *d = NULL;
                size_t l = 0;
                take(nu[i], chk + 1, &d, &l, NULL);
                hs2[i] = (struct sb_bytes){d, l};
                collect(nu[i], &want2);
        }
        snprintf(name, sizeof(name), "one-%d-%d", old_p, new_p);
        struct sb_backend *one = restore(name, (struct kg_range){0, 128}, hs2, (size_t)new_p);
        if (one) {
                collect(one, &seen2);
                snprintf(what, sizeof(what), "rescale %d -> %d -> 1 after deletes", old_p, new_p);
                blobs_compare(&want2, &seen2, what);
                sb_backend_destroy(one);
        }
        for (int i = 0; i < new_p; i++)
                free((void *)hs2[i].data);
        blobs_free(&want2);
        blobs_free(&seen2);
out:
        for (int i = 0; i < new_p; i++)
                sb_backend_destroy(nu[i]);
        for (int i = 0; i < old_p; i++)
                free((void *)hs[i].data);
        blobs_free(&want);
        blobs_free(&seen);
}

static void test_rescale_2_to_3(void) {
        rescale(2, 3, 10);
}

static void test_rescale_4_to_2(void) {
        rescale(4, 2, 20);
}

/* ---- failures -------------------------------------------------------------------- */

static void expect_clean_failure(const char *name, struct kg_range r, struct sb_bytes *hs,
                                 size_t n, int want, const char *fragment) {
        char dir[512], err[1024] = "", jd[512], p[1024];
        struct sb_backend_config cfg = config(dir, sizeof(dir), name, r);
        struct sb_backend *b = (struct sb_backend *)0x1;
        int rc = sb_backend_restore(env, &cfg, sbt_path(jd, sizeof(jd), "job"), hs, n, &b, err,
                                    sizeof(err));
        CHECK(rc == want, "restore %s: expected %d, seen %d (%s)", name, want, rc, err);
        CHECK_CONTAINS(err, fragment);
        CHECK(b == (struct sb_backend *)0x1, "ret_backend was touched on failure");
        /* Nothing half-open: no database, no restore directory, no backend in the env. */
        snprintf(p, sizeof(p), "%s/db", dir);
        CHECK(access(p, F_OK) != 0, "%s is left behind", p);
        CHECK_INT(sbt_count_dir(dir), 0);
        struct sb_env_stats st;
        sb_env_get_stats(env, &st);
        CHECK_INT(st.backends, 0);
}

static void test_restore_failures(void) {
        struct kg_range all = {0, 128}, lo = {0, 64};
        struct sb_backend *b = make("fail", all);
        struct sb_backend *b2 = make("fail-lo", lo);
        if (!b || !b2)
                return;
        for (uint32_t i = 0; i < 5000; i++) {
                write_key(b, i, 1);
                write_key(b2, i, 1);
        }
        char *d = NULL, *d2 = NULL;
        size_t l = 0, l2 = 0;
        take(b, 30, &d, &l, NULL);
        take(b2, 31, &d2, &l2, NULL);
        sb_backend_destroy(b);
        sb_backend_destroy(b2);
        struct sb_handle *h = NULL;
        char err[512], jd[512], path[1024], save[1100];
        CHECK_INT(sb_handle_parse(d, l, &h, err, sizeof(err)), 0);
        if (!h)
                return;
        struct sb_bytes hs[] = {{d, l}};
        sbt_path(jd, sizeof(jd), "job");

        /* A missing shared file. */
        char rel[128];
        snprintf(rel, sizeof(rel), "shared/%s.sst", h->shared[0].uid);
        snprintf(path, sizeof(path), "%s/%s", jd, rel);
        snprintf(save, sizeof(save), "%s.saved", path);
        CHECK_INT(rename(path, save), 0);
        expect_clean_failure("fail-missing", all, hs, 1, -ENOENT, rel);
        CHECK_INT(rename(save, path), 0);

        /* A flipped byte in a shared file. */
        long size = sbt_file_size(path);
        CHECK_INT(sbt_flip_byte(path, size / 2), 0);
        expect_clean_failure("fail-corrupt", all, hs, 1, -EBADMSG, rel);
        CHECK_INT(sbt_flip_byte(path, size / 2), 0);

        /* A truncated shared file. */
        CHECK_INT(fs_copy_atomic(path, save, NULL, NULL, NULL), 0);
        CHECK_INT(truncate(path, size - 1), 0);
        expect_clean_failure("fail-short", all, hs, 1, -EBADMSG, rel);
        CHECK_INT(rename(save, path), 0);

        /* A corrupt private pack. */
        char pack[1024];
        snprintf(pack, sizeof(pack), "%s/%s", jd, h->private_path);
        CHECK_INT(sbt_flip_byte(pack, 3), 0);
        expect_clean_failure("fail-pack", all, hs, 1, -EBADMSG, h->private_path);
        CHECK_INT(sbt_flip_byte(pack, 3), 0);

        /* Handles that do not cover the range, a changed max parallelism, a bad handle. */
        struct sb_bytes lo_only[] = {{d2, l2}};
        expect_clean_failure("fail-cover", all, lo_only, 1, -EINVAL, "do not cover");
        char dir[512];
        struct sb_backend_config cfg = config(dir, sizeof(dir), "fail-maxp", all);
        cfg.max_parallelism = 256;
        struct sb_backend *nb = NULL;
        CHECK_INT(sb_backend_restore(env, &cfg, jd, hs, 1, &nb, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "max parallelism");
        char junk[] = "not a handle";
        struct sb_bytes bad[] = {{junk, sizeof(junk)}};
        expect_clean_failure("fail-junk", all, bad, 1, -EBADMSG, "handle 0");
        /* A state declared with another kind. */
        struct sb_state_desc other[N_STATES];
        memcpy(other, states, sizeof(other));
        other[0].kind = SB_STATE_LIST;
        cfg = config(dir, sizeof(dir), "fail-kind", all);
        cfg.states = other;
        CHECK_INT(sb_backend_restore(env, &cfg, jd, hs, 1, &nb, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "state 'value' was a value state");
        CHECK(nb == NULL, "ret_backend was touched on failure");

        /* After all that, the intact checkpoint restores. */
        struct sb_backend *ok = restore("fail-ok", all, hs, 1);
        sb_backend_destroy(ok);
        sb_handle_free(h);
        free(d);
        free(d2);
}

int main(void) {
        sbt_mkroot();
        env = sbt_env(256ull << 20);
        RUN(test_exact_restore);
        RUN(test_restore_during_compactions);
        RUN(test_restore_failures);
        RUN(test_rescale_2_to_3);
        RUN(test_rescale_4_to_2);
        sb_env_destroy(env);
        sbt_rmroot();
        return unit_done();
}
