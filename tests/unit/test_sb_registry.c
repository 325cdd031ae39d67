/* Unit tests of statebackend/registry.h and handle.h: strict handle parsing (every field;
 * random corruption never crashes), registry reference counting, -ESTALE for a reused
 * file that is gone, rebuild from metadata, and a randomized run of 200 checkpoints of two
 * subtasks with random complete / abort / lost confirm / retention, checking that no
 * handle names an aborted upload, that no released file is still named by a retained
 * checkpoint, that every retained file exists, and that the file count stays bounded. */
#include "statebackend/registry.h"

#include <errno.h>

#include "common/crc32c.h"
#include "common/envelope.h"
#include "statebackend/restore.h"
#include "statebackend/snapshot.h"
#include "test_sb_util.h"

static struct sb_env *env;

/* ---- handles --------------------------------------------------------------------- */

static struct sb_handle_state hstates[] = {{.name = "v", .kind = SB_STATE_VALUE}};

static void sample_handle(struct sb_handle *h, struct sb_handle_file *files, size_t n_files,
                          struct sb_handle_member *m, uint64_t chk, const char *backend) {
        memset(h, 0, sizeof(*h));
        snprintf(h->backend_id, sizeof(h->backend_id), "%s", backend);
        h->checkpoint_id = chk;
        h->max_parallelism = 128;
        h->range = (struct kg_range){0, 64};
        h->states = hstates;
        h->n_states = 1;
        h->shared = files;
        h->n_shared = n_files;
        snprintf(h->private_path, sizeof(h->private_path), "chk-%" PRIu64 "/sb-%s.pack", chk,
                 backend);
        h->private_size_bytes = 100;
        h->private_crc32c = 7;
        snprintf(m[0].name, sizeof(m[0].name), "CURRENT");
        m[0].offset = 0;
        m[0].size_bytes = 16;
        snprintf(m[1].name, sizeof(m[1].name), "MANIFEST-000005");
        m[1].offset = 16;
        m[1].size_bytes = 84;
        h->members = m;
        h->n_members = 2;
}

static const char *B1 = "0123456789abcdef0123456789abcdef";
static const char *U1 = "11111111111111111111111111111111";
static const char *U2 = "22222222222222222222222222222222";
static const char *U3 = "33333333333333333333333333333333";

static struct sb_handle_file file(const char *uid, const char *local, uint64_t size, bool is_new) {
        struct sb_handle_file f = {.size_bytes = size, .crc32c = 1, .is_new = is_new};
        snprintf(f.uid, sizeof(f.uid), "%s", uid);
        snprintf(f.local, sizeof(f.local), "%s", local);
        return f;
}

/* Encodes h, then expects parse to fail with want and a message with fragment. */
static void expect_parse(const struct sb_handle *h, int want, const char *fragment) {
        char *data = NULL, err[512] = "";
        size_t len = 0;
        CHECK_INT(sb_handle_encode(h, &data, &len), 0);
        struct sb_handle *out = NULL;
        int r = sb_handle_parse(data, len, &out, err, sizeof(err));
        CHECK(r == want, "parse: expected %d, seen %d (%s)", want, r, err);
        if (want < 0) {
                CHECK_CONTAINS(err, fragment);
                CHECK(out == NULL, "ret_handle set on failure");
        }
        sb_handle_free(out);
        free(data);
}

static void test_handle_parse(void) {
        struct sb_handle h;
        struct sb_handle_member m[2];
        struct sb_handle_file f[2] = {file(U1, "000010.sst", 1000, true),
                                      file(U2, "000011.sst", 2000, false)};
        sample_handle(&h, f, 2, m, 7, B1);
        expect_parse(&h, 0, NULL);

        /* Round trip. */
        char *data = NULL, err[512];
        size_t len = 0;
        CHECK_INT(sb_handle_encode(&h, &data, &len), 0);
        struct sb_handle *p = NULL;
        CHECK_INT(sb_handle_parse(data, len, &p, err, sizeof(err)), 0);
        if (p) {
                CHECK_STR(p->backend_id, B1);
                CHECK_INT(p->checkpoint_id, 7);
                CHECK_INT(p->n_shared, 2);
                CHECK_STR(p->shared[1].local, "000011.sst");
                CHECK(!p->shared[1].is_new && p->shared[0].is_new, "new flags lost");
                CHECK_INT(p->shared[1].size_bytes, 2000);
                CHECK_STR(p->private_path, "chk-7/sb-0123456789abcdef0123456789abcdef.pack");
                CHECK_INT(sb_handle_state_bytes(p), 3100);
        }
        sb_handle_free(p);

        /* Corruption anywhere: an error, never a crash (ASan checks the rest). */
        char *copy = malloc(len);
        for (int i = 0; i < 3000; i++) {
                memcpy(copy, data, len);
                size_t at = (size_t)(sbt_rand() % len);
                copy[at] ^= (char)(1 + sbt_rand() % 255);
                size_t cut = i % 3 == 0 ? (size_t)(sbt_rand() % len) : len;
                p = NULL;
                int r = sb_handle_parse(copy, cut, &p, err, sizeof(err));
                CHECK(r < 0, "a corrupt handle (byte %zu, length %zu) parsed", at, cut);
                sb_handle_free(p);
        }
        free(copy);
        free(data);

        /* Every field is checked. */
        struct sb_handle b = h;
        snprintf(b.shared[0].uid, sizeof(b.shared[0].uid), "not-hex");
        expect_parse(&b, -EINVAL, "shared[0] has no valid uid");
        sample_handle(&b, f, 2, m, 7, B1);
        f[0] = file(U1, "../000010.sst", 1000, true);
        expect_parse(&b, -EINVAL, "shared[0] has no valid local SST name");
        f[0] = file(U1, "MANIFEST-000001", 1000, true);
        expect_parse(&b, -EINVAL, "shared[0] has no valid local SST name");
        f[0] = file(U2, "000010.sst", 1000, true);
        expect_parse(&b, -EINVAL, "names a uid twice");
        f[0] = file(U1, "000011.sst", 1000, true);
        expect_parse(&b, -EINVAL, "names a local file twice");
        f[0] = file(U1, "000010.sst", 1000, true);
        snprintf(b.private_path, sizeof(b.private_path), "chk-7/../../etc/passwd");
        expect_parse(&b, -EINVAL, "private.path");
        sample_handle(&b, f, 2, m, 7, B1);
        b.range = (struct kg_range){64, 64};
        expect_parse(&b, -EINVAL, "field kg");
        b.range = (struct kg_range){0, 129};
        expect_parse(&b, -EINVAL, "field kg");
        sample_handle(&b, f, 2, m, 7, B1);
        b.max_parallelism = 40000;
        expect_parse(&b, -EINVAL, "field maxp");
        sample_handle(&b, f, 2, m, 7, B1);
        b.checkpoint_id = 0;
        expect_parse(&b, -EINVAL, "field chk");
        sample_handle(&b, f, 2, m, 7, B1);
        m[1].size_bytes = 85;
        expect_parse(&b, -EINVAL, "lies outside the pack");
        sample_handle(&b, f, 2, m, 7, B1);
        snprintf(m[0].name, sizeof(m[0].name), "NOT-CURRENT");
        expect_parse(&b, -EINVAL, "has no CURRENT");
        sample_handle(&b, f, 2, m, 7, B1);
        snprintf(m[1].name, sizeof(m[1].name), "../x");
        expect_parse(&b, -EINVAL, "private.files[1] has no valid name");
        sample_handle(&b, f, 2, m, 7, B1);
        struct sb_handle_state bad_state[] = {{.name = "default", .kind = SB_STATE_VALUE}};
        b.states = bad_state;
        expect_parse(&b, -EINVAL, "states[0] has no valid name");
        /* Another kind of envelope. */
        char *env_data = NULL;
        size_t env_len = 0;
        CHECK_INT(envelope_wrap("flinc.other", 1, "x", 1, &env_data, &env_len), 0);
        p = NULL;
        CHECK_INT(sb_handle_parse(env_data, env_len, &p, err, sizeof(err)), -EMEDIUMTYPE);
        free(env_data);
}

/* ---- registry basics ---------------------------------------------------------------- */

static struct sb_bytes enc(const struct sb_handle *h) {
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(sb_handle_encode(h, &data, &len), 0);
        return (struct sb_bytes){data, len};
}

static bool paths_has(const struct sb_paths *p, const char *s) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->paths[i], s) == 0)
                        return true;
        return false;
}

static void test_registry_basics(void) {
        struct sb_registry *reg = NULL;
        char err[512];
        CHECK_INT(sb_registry_create(&reg), 0);
        struct sb_handle h1, h2, h3;
        struct sb_handle_member m1[2], m2[2], m3[2];
        struct sb_handle_file f1[] = {file(U1, "000010.sst", 1000, true),
                                      file(U2, "000011.sst", 2000, true)};
        struct sb_handle_file f2[] = {file(U1, "000010.sst", 1000, false),
                                      file(U3, "000012.sst", 3000, true)};
        sample_handle(&h1, f1, 2, m1, 1, B1);
        sample_handle(&h2, f2, 2, m2, 2, B1);
        struct sb_bytes b1 = enc(&h1), b2 = enc(&h2);
        CHECK_INT(sb_registry_register(reg, 1, &b1, 1, err, sizeof(err)), 0);
        CHECK_INT(sb_registry_register(reg, 1, &b1, 1, err, sizeof(err)), -EEXIST);
        CHECK_INT(sb_registry_register(reg, 2, &b2, 1, err, sizeof(err)), 0);
        CHECK_INT(sb_registry_shared_count(reg), 3);
        CHECK_INT(sb_registry_shared_bytes(reg), 6000);
        CHECK(sb_registry_holds(reg, "shared/11111111111111111111111111111111.sst"), "U1 not held");
        CHECK(sb_registry_holds(reg, h2.private_path), "pack of 2 not held");

        /* Retire 1: U2 and its pack go, U1 stays (2 names it). */
        struct sb_paths out = {0};
        CHECK_INT(sb_registry_retire(reg, 1, &out), 0);
        CHECK_INT(out.n, 2);
        CHECK(paths_has(&out, "shared/22222222222222222222222222222222.sst"), "U2 not released");
        CHECK(paths_has(&out, h1.private_path), "pack of 1 not released");
        CHECK(!paths_has(&out, "shared/11111111111111111111111111111111.sst"),
              "U1 released while checkpoint 2 names it");
        sb_paths_finish(&out);
        CHECK_INT(sb_registry_retire(reg, 1, &out), -ENOENT);

        /* A handle reusing U2, which is gone: -ESTALE, nothing registered. */
        struct sb_handle_file f3[] = {file(U2, "000011.sst", 2000, false)};
        sample_handle(&h3, f3, 1, m3, 3, B1);
        struct sb_bytes b3 = enc(&h3);
        CHECK_INT(sb_registry_register(reg, 3, &b3, 1, err, sizeof(err)), -ESTALE);
        CHECK_CONTAINS(err, "shared/22222222222222222222222222222222.sst");
        CHECK_INT(sb_registry_checkpoint_count(reg), 1);
        /* A new file that is registered already: -EEXIST. */
        f3[0] = file(U3, "000012.sst", 3000, true);
        free((void *)b3.data);
        b3 = enc(&h3);
        CHECK_INT(sb_registry_register(reg, 3, &b3, 1, err, sizeof(err)), -EEXIST);
        /* A size that disagrees with the registry. */
        f3[0] = file(U3, "000012.sst", 3001, false);
        free((void *)b3.data);
        b3 = enc(&h3);
        CHECK_INT(sb_registry_register(reg, 3, &b3, 1, err, sizeof(err)), -EINVAL);
        /* A bad handle among good ones: nothing registered. */
        char junk[] = "junk";
        struct sb_bytes mixed[] = {b2, {junk, 4}};
        CHECK_INT(sb_registry_register(reg, 4, mixed, 2, err, sizeof(err)), -EBADMSG);
        CHECK_CONTAINS(err, "handle 1");
        CHECK_INT(sb_registry_checkpoint_count(reg), 1);

        /* Rebuild from checkpoint 2 alone: it reuses U1 from the retired 1, accepted. */
        struct sb_registry_checkpoint cps[] = {{2, &b2, 1}};
        struct sb_registry *rb = NULL;
        CHECK_INT(sb_registry_rebuild(cps, 1, &rb, err, sizeof(err)), 0);
        struct sb_paths l1 = {0}, l2 = {0};
        CHECK_INT(sb_registry_list(reg, &l1), 0);
        if (rb)
                CHECK_INT(sb_registry_list(rb, &l2), 0);
        CHECK_INT(l1.n, 3);
        CHECK_INT(l2.n, l1.n);
        for (size_t i = 0; i < l1.n && i < l2.n; i++)
                CHECK_STR(l2.paths[i], l1.paths[i]);
        sb_paths_finish(&l1);
        sb_paths_finish(&l2);
        CHECK_INT(sb_registry_retire(reg, 2, &out), 0);
        CHECK_INT(out.n, 3);
        CHECK_INT(sb_registry_shared_count(reg), 0);
        sb_paths_finish(&out);
        sb_registry_destroy(rb);
        sb_registry_destroy(reg);
        free((void *)b1.data);
        free((void *)b2.data);
        free((void *)b3.data);
}

/* Many files: the hash table grows and deletes correctly. */
static void test_registry_many_files(void) {
        struct sb_registry *reg = NULL;
        char err[512];
        CHECK_INT(sb_registry_create(&reg), 0);
        enum { CPS = 30, PER = 200 };
        struct sb_handle_file *f = calloc(PER, sizeof(*f));
        struct sb_handle h;
        struct sb_handle_member m[2];
        struct flinc_id id;
        char prev[PER][ID_HEX_LEN + 1];
        for (int c = 1; c <= CPS; c++) {
                for (int i = 0; i < PER; i++) {
                        char local[32];
                        snprintf(local, sizeof(local), "%06d.sst", c * 1000 + i);
                        /* Half reuse the previous checkpoint's files. */
                        bool reuse = c > 1 && i % 2 == 0;
                        if (!reuse) {
                                id_generate(&id);
                                id_format(&id, prev[i]);
                        }
                        f[i] = file(prev[i], local, (uint64_t)i + 1, !reuse);
                }
                sample_handle(&h, f, PER, m, (uint64_t)c, B1);
                struct sb_bytes b = enc(&h);
                CHECK_INT(sb_registry_register(reg, (uint64_t)c, &b, 1, err, sizeof(err)), 0);
                free((void *)b.data);
                if (c > 3) {
                        struct sb_paths out = {0};
                        CHECK_INT(sb_registry_retire(reg, (uint64_t)c - 3, &out), 0);
                        sb_paths_finish(&out);
                }
        }
        CHECK_INT(sb_registry_checkpoint_count(reg), 3);
        /* 3 retained: 100 files reused through all three, 100 new in each. */
        CHECK_INT(sb_registry_shared_count(reg), PER / 2 + 3 * PER / 2);
        for (int c = CPS - 2; c <= CPS; c++) {
                struct sb_paths out = {0};
                CHECK_INT(sb_registry_retire(reg, (uint64_t)c, &out), 0);
                sb_paths_finish(&out);
        }
        CHECK_INT(sb_registry_shared_count(reg), 0);
        CHECK_INT(sb_registry_shared_bytes(reg), 0);
        free(f);
        sb_registry_destroy(reg);
}

/* ---- a stale base, deterministically ---------------------------------------------------- */

static struct sb_bytes upload(struct sb_backend *b, uint64_t id, const char *jd) {
        char err[512];
        struct sb_snapshot *s = NULL;
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(sb_snapshot_sync(b, id, &s, err, sizeof(err)), 0);
        if (s)
                CHECK_INT(sb_snapshot_upload(s, jd, &data, &len, NULL, err, sizeof(err)), 0);
        sb_snapshot_destroy(s);
        return (struct sb_bytes){data, len};
}

/* Checkpoint 2 is taken before checkpoint 1's confirm arrives, so it uploads its own
 * copies; 1 is confirmed (the base), 2 completes and 1 is retired, releasing 1's files;
 * checkpoint 3 reuses them from its base: the registry refuses it with -ESTALE, and after
 * abort + reset the next checkpoint is complete and accepted. */
static void test_stale_base(void) {
        char dir[512], jd[512], err[1024];
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE}};
        struct sb_backend_config cfg = {.local_dir = sbt_path(dir, sizeof(dir), "stale"),
                                        .range = {0, 128}, .states = d, .n_states = 1};
        struct sb_backend *b = NULL;
        CHECK_INT(sb_backend_create(env, &cfg, &b, err, sizeof(err)), 0);
        if (!b)
                return;
        sbt_path(jd, sizeof(jd), "stale-job");
        struct sb_registry *reg = NULL;
        CHECK_INT(sb_registry_create(&reg), 0);
        CHECK_INT(sbt_put_keys(sb_backend_state(b, "v"), 0, 2000, 50, 1), 0);
        struct sb_bytes h1 = upload(b, 1, jd);
        struct sb_bytes h2 = upload(b, 2, jd);      /* no base yet: copies everything */
        CHECK_INT(sb_registry_register(reg, 1, &h1, 1, err, sizeof(err)), 0);
        CHECK_INT(sb_backend_confirm(b, 1), 0);     /* base = 1 */
        CHECK_INT(sb_registry_register(reg, 2, &h2, 1, err, sizeof(err)), 0);
        /* confirm(2) is late; 1 is retired and its files deleted */
        struct sb_paths out = {0};
        CHECK_INT(sb_registry_retire(reg, 1, &out), 0);
        CHECK(out.n >= 2, "expected checkpoint 1's SST and pack released, seen %zu paths", out.n);
        for (size_t i = 0; i < out.n; i++) {
                char p[1024];
                snprintf(p, sizeof(p), "%s/%s", jd, out.paths[i]);
                CHECK(unlink(p) == 0, "released %s does not exist", p);
        }
        sb_paths_finish(&out);
        struct sb_bytes h3 = upload(b, 3, jd);      /* reuses 1's files: gone */
        CHECK_INT(sb_registry_register(reg, 3, &h3, 1, err, sizeof(err)), -ESTALE);
        CHECK_CONTAINS(err, "no retained checkpoint names");
        CHECK_INT(sb_backend_abort(b, 3, err, sizeof(err)), 0);
        sb_backend_reset_base(b);
        struct sb_bytes h4 = upload(b, 4, jd);
        CHECK_INT(sb_registry_register(reg, 4, &h4, 1, err, sizeof(err)), 0);
        /* And checkpoint 4 restores. */
        struct sb_backend *r = NULL;
        cfg.local_dir = sbt_path(dir, sizeof(dir), "stale-restore");
        CHECK_INT(sb_backend_restore(env, &cfg, jd, &h4, 1, &r, err, sizeof(err)), 0);
        sb_backend_destroy(r);
        free((void *)h1.data);
        free((void *)h2.data);
        free((void *)h3.data);
        free((void *)h4.data);
        sb_registry_destroy(reg);
        sb_backend_destroy(b);
}

/* ---- randomized checkpoints with real backends ------------------------------------------- */

enum { SUBTASKS = 2, CHECKPOINTS = 200, KEYS = 20000 };

struct uidset {
        char (*v)[ID_HEX_LEN + 1];
        size_t n, cap;
};

static void uid_add(struct uidset *s, const char *uid) {
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 256;
                s->v = realloc(s->v, s->cap * sizeof(*s->v));
        }
        snprintf(s->v[s->n++], ID_HEX_LEN + 1, "%s", uid);
}

static bool uid_has(const struct uidset *s, const char *uid) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], uid) == 0)
                        return true;
        return false;
}

struct retained {
        uint64_t id;
        struct sb_bytes h[SUBTASKS];
        struct sb_handle *ph[SUBTASKS];
        uint32_t digest[SUBTASKS];
        size_t entries[SUBTASKS];
};

struct digest {
        uint32_t sum;
        size_t n;
};

static int digest_entry(void *arg, const struct sb_entry *e) {
        struct digest *d = arg;
        uint32_t c = crc32c(e->key, e->key_len);
        c = crc32c_extend(c, e->value, e->value_len);
        d->sum += c;
        d->n++;
        return 0;
}

static bool retained_names(const struct retained *r, size_t n, const char *path) {
        for (size_t i = 0; i < n; i++) {
                for (int s = 0; s < SUBTASKS; s++) {
                        const struct sb_handle *h = r[i].ph[s];
                        if (strcmp(h->private_path, path) == 0)
                                return true;
                        for (size_t j = 0; j < h->n_shared; j++) {
                                char p[64];
                                sb_handle_shared_path(&h->shared[j], p, sizeof(p));
                                if (strcmp(p, path) == 0)
                                        return true;
                        }
                }
        }
        return false;
}

static void retained_free(struct retained *r) {
        for (int s = 0; s < SUBTASKS; s++) {
                free((void *)r->h[s].data);
                sb_handle_free(r->ph[s]);
        }
}

struct run {
        struct sb_backend *b[SUBTASKS];
        struct sb_state_desc *d;
        struct sb_registry *reg;
        struct retained ret[16];
        size_t n_ret;
        struct uidset aborted;
        size_t completed, aborts, stale, lost, released, restores;
        char jd[512];
};

/* Decides the fate of an uploaded checkpoint: completed (registered, confirmed unless the
 * notification is lost, old ones retired and their files deleted) or aborted. */
static void decide(struct run *run, struct retained *cur) {
        char err[1024], p[1024], dir[512];
        uint64_t id = cur->id;
        bool complete = sbt_rand() % 10 < 6;
        if (complete) {
                int r = sb_registry_register(run->reg, id, cur->h, SUBTASKS, err, sizeof(err));
                CHECK(r == 0 || r == -ESTALE, "register %" PRIu64 ": %d (%s)", id, r, err);
                if (r == -ESTALE) {
                        /* A base was retired while its confirm was late: abort, reset. */
                        run->stale++;
                        complete = false;
                        for (int s = 0; s < SUBTASKS; s++)
                                sb_backend_reset_base(run->b[s]);
                }
        }
        if (!complete) {
                run->aborts++;
                for (int s = 0; s < SUBTASKS; s++) {
                        const struct sb_handle *h = cur->ph[s];
                        for (size_t j = 0; j < h->n_shared; j++)
                                if (h->shared[j].is_new)
                                        uid_add(&run->aborted, h->shared[j].uid);
                        CHECK_INT(sb_backend_abort(run->b[s], id, err, sizeof(err)), 0);
                        for (size_t j = 0; j < h->n_shared; j++) {
                                if (!h->shared[j].is_new)
                                        continue;
                                snprintf(p, sizeof(p), "%s/shared/%s.sst", run->jd, h->shared[j].uid);
                                CHECK(access(p, F_OK) != 0, "aborted upload %s survives", p);
                        }
                }
                retained_free(cur);
                return;
        }
        run->completed++;
        for (int s = 0; s < SUBTASKS; s++) {
                if (sbt_rand() % 100 < 15) {
                        run->lost++; /* the notification never arrives */
                        continue;
                }
                CHECK_INT(sb_backend_confirm(run->b[s], id), 0);
        }
        struct retained *ret = run->ret;
        ret[run->n_ret++] = *cur;
        /* Retain the last 1..3, sometimes keeping the oldest (a savepoint-like pin) a
         * little longer. */
        size_t keep = 1 + sbt_rand() % 3;
        while (run->n_ret > keep) {
                size_t victim = run->n_ret > 2 && sbt_rand() % 4 == 0 ? 1 : 0;
                struct sb_paths out = {0};
                CHECK_INT(sb_registry_retire(run->reg, ret[victim].id, &out), 0);
                struct retained gone = ret[victim];
                memmove(&ret[victim], &ret[victim + 1], (run->n_ret - victim - 1) * sizeof(*ret));
                run->n_ret--;
                for (size_t i = 0; i < out.n; i++) {
                        /* Invariant: never release what a retained checkpoint names. */
                        CHECK(!retained_names(ret, run->n_ret, out.paths[i]),
                              "retiring %" PRIu64 " released %s, which a retained checkpoint "
                              "names", gone.id, out.paths[i]);
                        snprintf(p, sizeof(p), "%s/%s", run->jd, out.paths[i]);
                        CHECK(unlink(p) == 0, "released %s does not exist", p);
                        run->released++;
                }
                sb_paths_finish(&out);
                retained_free(&gone);
        }
        /* Invariant: every file a retained checkpoint names exists. */
        for (size_t i = 0; i < run->n_ret; i++) {
                for (int s = 0; s < SUBTASKS; s++) {
                        const struct sb_handle *h = ret[i].ph[s];
                        for (size_t j = 0; j < h->n_shared; j++) {
                                char rel[64];
                                sb_handle_shared_path(&h->shared[j], rel, sizeof(rel));
                                snprintf(p, sizeof(p), "%s/%s", run->jd, rel);
                                CHECK(access(p, F_OK) == 0, "retained checkpoint %" PRIu64
                                      " names %s, which is gone", ret[i].id, rel);
                        }
                }
        }
        /* Now and then: restore the oldest retained checkpoint and compare. */
        if (run->completed % 40 != 0)
                return;
        run->restores++;
        for (int s = 0; s < SUBTASKS; s++) {
                struct sb_backend *rb = NULL;
                char name[32];
                snprintf(name, sizeof(name), "rnd-restore-%d", s);
                struct sb_backend_config cfg = {
                        .local_dir = sbt_path(dir, sizeof(dir), name),
                        .range = kg_range_for_operator(128, SUBTASKS, (uint32_t)s),
                        .states = run->d, .n_states = 2};
                int rr = sb_backend_restore(env, &cfg, run->jd, ret[0].h, SUBTASKS, &rb, err,
                                            sizeof(err));
                CHECK(rr == 0, "restore of %" PRIu64 ": %s", ret[0].id, err);
                if (!rb)
                        continue;
                struct digest dg = {0};
                CHECK_INT(sb_state_scan(sb_backend_state(rb, "v"), digest_entry, &dg), 0);
                CHECK_INT(sb_state_scan(sb_backend_state(rb, "l"), digest_entry, &dg), 0);
                CHECK(dg.sum == ret[0].digest[s] && dg.n == ret[0].entries[s],
                      "restore of %" PRIu64 " subtask %d: %zu entries, expected %zu (or "
                      "different values)", ret[0].id, s, dg.n, ret[0].entries[s]);
                sb_backend_destroy(rb);
        }
}

/* Checkpoints overlap: checkpoint n is synced and uploaded before n-1 is decided, so
 * bases move while uploads are in flight, as with late notifications. */
static void test_randomized_checkpoints(void) {
        static struct run run;
        char dir[512], err[1024], p[1024];
        static struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                           {.name = "l", .kind = SB_STATE_LIST}};
        run.d = d;
        for (int s = 0; s < SUBTASKS; s++) {
                char name[32];
                snprintf(name, sizeof(name), "rnd-%d", s);
                struct sb_backend_config cfg = {
                        .local_dir = sbt_path(dir, sizeof(dir), name),
                        .range = kg_range_for_operator(128, SUBTASKS, (uint32_t)s),
                        .states = d, .n_states = 2};
                CHECK_INT(sb_backend_create(env, &cfg, &run.b[s], err, sizeof(err)), 0);
                if (!run.b[s])
                        return;
        }
        sbt_path(run.jd, sizeof(run.jd), "rnd-job");
        CHECK_INT(sb_registry_create(&run.reg), 0);
        struct retained pend;
        bool have_pend = false;
        uint64_t counter = 0;

        for (uint64_t id = 1; id <= CHECKPOINTS; id++) {
                /* Writes: updates of random keys, some list appends. */
                for (int s = 0; s < SUBTASKS; s++) {
                        struct kg_range r = sb_backend_range(run.b[s]);
                        int n = (int)(sbt_rand() % 400);
                        for (int i = 0; i < n; i++) {
                                char key[32];
                                counter = sbt_rand() % KEYS;
                                size_t kl = sbt_key_in(key, sizeof(key), 128, r, &counter);
                                struct sb_key k = {.key = key, .key_len = kl};
                                char val[80];
                                sbt_fill(val, sizeof(val), id * 100000 + (uint64_t)i);
                                CHECK_INT(sb_value_put(sb_backend_state(run.b[s], "v"), &k, val,
                                                       sizeof(val)), 0);
                                if (i % 20 == 0)
                                        CHECK_INT(sb_list_add(sb_backend_state(run.b[s], "l"), &k,
                                                              val, 8), 0);
                        }
                }
                struct retained cur = {.id = id};
                bool ok = true;
                for (int s = 0; s < SUBTASKS; s++) {
                        struct sb_snapshot *snap = NULL;
                        char *data = NULL;
                        size_t len = 0;
                        int r = sb_snapshot_sync(run.b[s], id, &snap, err, sizeof(err));
                        /* The state as of this checkpoint, for the restore checks. */
                        struct digest dg = {0};
                        CHECK_INT(sb_state_scan(sb_backend_state(run.b[s], "v"), digest_entry, &dg), 0);
                        CHECK_INT(sb_state_scan(sb_backend_state(run.b[s], "l"), digest_entry, &dg), 0);
                        cur.digest[s] = dg.sum;
                        cur.entries[s] = dg.n;
                        if (r == 0)
                                r = sb_snapshot_upload(snap, run.jd, &data, &len, NULL, err,
                                                       sizeof(err));
                        sb_snapshot_destroy(snap);
                        CHECK(r == 0, "checkpoint %" PRIu64 " subtask %d: %s", id, s, err);
                        if (r < 0) {
                                ok = false;
                                continue;
                        }
                        cur.h[s] = (struct sb_bytes){data, len};
                        CHECK_INT(sb_handle_parse(data, len, &cur.ph[s], err, sizeof(err)), 0);
                        if (!cur.ph[s]) {
                                ok = false;
                                continue;
                        }
                        /* Invariant: no handle names a file only an aborted checkpoint
                         * uploaded. */
                        for (size_t j = 0; j < cur.ph[s]->n_shared; j++)
                                CHECK(!uid_has(&run.aborted, cur.ph[s]->shared[j].uid),
                                      "checkpoint %" PRIu64 " names %s, uploaded by an aborted "
                                      "checkpoint", id, cur.ph[s]->shared[j].uid);
                }
                if (!ok) {
                        retained_free(&cur);
                        break;
                }
                if (have_pend)
                        decide(&run, &pend);
                pend = cur;
                have_pend = true;
        }
        if (have_pend)
                decide(&run, &pend);

        /* Rebuild from the retained checkpoints' handles gives the same registry. */
        struct sb_registry_checkpoint cps[16];
        for (size_t i = 0; i < run.n_ret; i++)
                cps[i] = (struct sb_registry_checkpoint){run.ret[i].id, run.ret[i].h, SUBTASKS};
        struct sb_registry *rb = NULL;
        CHECK_INT(sb_registry_rebuild(cps, run.n_ret, &rb, err, sizeof(err)), 0);
        struct sb_paths l1 = {0}, l2 = {0};
        CHECK_INT(sb_registry_list(run.reg, &l1), 0);
        if (rb)
                CHECK_INT(sb_registry_list(rb, &l2), 0);
        CHECK_INT(l2.n, l1.n);
        for (size_t i = 0; i < l1.n && i < l2.n; i++)
                CHECK_STR(l2.paths[i], l1.paths[i]);

        /* No orphans: shared/ holds exactly what the registry holds. File count. */
        snprintf(p, sizeof(p), "%s/shared", run.jd);
        size_t in_storage = sbt_count_dir(p);
        CHECK(in_storage == sb_registry_shared_count(run.reg), "shared/ holds %zu files, the "
              "registry %zu", in_storage, sb_registry_shared_count(run.reg));
        struct sb_backend_stats bs[SUBTASKS];
        for (int s = 0; s < SUBTASKS; s++)
                CHECK_INT(sb_backend_get_stats(run.b[s], &bs[s]), 0);
        printf("after %d checkpoints (%zu completed, %zu aborted of which %zu refused as stale, "
               "%zu confirms lost, %zu restores checked): %zu retained, %zu files in shared/ "
               "(%.1f MB), %zu private packs, %zu files released; live SST files per subtask: "
               "%u and %u\n", CHECKPOINTS, run.completed, run.aborts, run.stale, run.lost,
               run.restores, run.n_ret, in_storage,
               (double)sb_registry_shared_bytes(run.reg) / 1e6, l1.n - in_storage, run.released,
               bs[0].sst_files, bs[1].sst_files);
        /* Bounded by what the retained checkpoints can name: each subtask has a few live
         * SST files (universal compaction: at most 4 fresh runs plus merged ones). */
        CHECK(in_storage <= run.n_ret * SUBTASKS * 20, "expected at most 20 shared files per "
              "subtask and retained checkpoint, seen %zu for %zu retained", in_storage, run.n_ret);
        sb_paths_finish(&l1);
        sb_paths_finish(&l2);
        sb_registry_destroy(rb);
        for (size_t i = 0; i < run.n_ret; i++)
                retained_free(&run.ret[i]);
        free(run.aborted.v);
        sb_registry_destroy(run.reg);
        for (int s = 0; s < SUBTASKS; s++)
                sb_backend_destroy(run.b[s]);
}

int main(void) {
        sbt_mkroot();
        env = sbt_env(128ull << 20);
        RUN(test_handle_parse);
        RUN(test_registry_basics);
        RUN(test_registry_many_files);
        RUN(test_stale_base);
        RUN(test_randomized_checkpoints);
        sb_env_destroy(env);
        sbt_rmroot();
        return unit_done();
}
