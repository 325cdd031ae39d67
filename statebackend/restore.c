/* Restore of a backend from checkpoint storage: copy-in with size and CRC32C checks,
 * and for a changed parallelism, clip the best-overlapping copy with delete-range and
 * merge the key-group ranges of the others into it (restore.h). */
#include "statebackend/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/fsutil.h"
#include "statebackend/sb_internal.h"

#define COPY_CHUNK_BYTES (4u << 20)
#define MERGE_BATCH_BYTES (4u << 20)

/* Copies src (called name in errors) to a new file dst, checking size and CRC32C. No
 * fsync: the local database is rebuilt from checkpoint storage after any crash. */
static int copy_checked(const char *src, const char *name, const char *dst,
                        uint64_t want_size, uint32_t want_crc, char *buf, char *err,
                        size_t err_len) {
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return sb_fail(err, err_len, -errno, "%s: cannot open %s: %s", name, src,
                               err_str(-errno));
        (void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
        int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (out < 0) {
                int r = -errno;
                close(in);
                return sb_fail(err, err_len, r, "creating %s: %s", dst, err_str(r));
        }
        uint32_t crc = 0;
        uint64_t size = 0;
        int r = 0;
        for (;;) {
                ssize_t n = read(in, buf, COPY_CHUNK_BYTES);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = sb_fail(err, err_len, -errno, "%s: reading %s: %s", name, src,
                                    err_str(-errno));
                        break;
                }
                if (n == 0)
                        break;
                size += (uint64_t)n;
                if (size > want_size)
                        break;
                crc = crc32c_extend(crc, buf, (size_t)n);
                r = fs_write_full(out, buf, (size_t)n);
                if (r < 0) {
                        sb_fail(err, err_len, r, "writing %s: %s", dst, err_str(r));
                        break;
                }
        }
        close(in);
        if (close(out) < 0 && r == 0)
                r = sb_fail(err, err_len, -errno, "writing %s: %s", dst, err_str(-errno));
        if (r == 0 && size != want_size)
                r = sb_fail(err, err_len, -EBADMSG, "%s is corrupt: %s%" PRIu64 " bytes, the "
                            "handle says %" PRIu64, name, size > want_size ? "more than " : "",
                            size, want_size);
        else if (r == 0 && crc != want_crc)
                r = sb_fail(err, err_len, -EBADMSG, "%s is corrupt: CRC32C %08x, the handle "
                            "says %08x", name, crc, want_crc);
        if (r < 0)
                unlink(dst);
        return r;
}

/* Copies one handle's files into dir (created; must not exist). */
static int download(const char *job_dir, const struct sb_handle *h, const char *dir,
                    char *err, size_t err_len) {
        char src[SB_PATH_MAX], dst[SB_PATH_MAX], name[SB_PATH_MAX + 128];
        char *pack = NULL;
        size_t pack_len = 0;
        int r = fs_mkdir_p(dir, 0755);
        if (r < 0)
                return sb_fail(err, err_len, r, "creating %s: %s", dir, err_str(r));
        char *buf = malloc(COPY_CHUNK_BYTES);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_shared && r == 0; i++) {
                const struct sb_handle_file *f = &h->shared[i];
                char rel[64];
                sb_handle_shared_path(f, rel, sizeof(rel));
                r = sb_path(src, sizeof(src), "%s/%s", job_dir, rel);
                if (r == 0)
                        r = sb_path(dst, sizeof(dst), "%s/%s", dir, f->local);
                if (r < 0) {
                        sb_fail(err, err_len, r, "a path under %s is too long", job_dir);
                        break;
                }
                snprintf(name, sizeof(name), "checkpoint file %s (local %s) of checkpoint %"
                         PRIu64, src, f->local, h->checkpoint_id);
                r = copy_checked(src, name, dst, f->size_bytes, f->crc32c, buf, err, err_len);
        }
        free(buf);
        if (r < 0)
                return r;

        r = sb_path(src, sizeof(src), "%s/%s", job_dir, h->private_path);
        if (r < 0)
                return sb_fail(err, err_len, r, "a path under %s is too long", job_dir);
        r = fs_read_all(src, h->private_size_bytes, &pack, &pack_len);
        if (r < 0)
                return sb_fail(err, err_len, r == -EFBIG ? -EBADMSG : r,
                               "checkpoint file %s of checkpoint %" PRIu64 "%s: %s", src,
                               h->checkpoint_id, r == -EFBIG ? " is corrupt" : "",
                               r == -EFBIG ? "larger than the handle says" : err_str(r));
        if (pack_len != h->private_size_bytes || crc32c(pack, pack_len) != h->private_crc32c) {
                r = sb_fail(err, err_len, -EBADMSG, "checkpoint file %s of checkpoint %" PRIu64
                            " is corrupt: %zu bytes with CRC32C %08x, the handle says %" PRIu64
                            " bytes with %08x", src, h->checkpoint_id, pack_len,
                            crc32c(pack, pack_len), h->private_size_bytes, h->private_crc32c);
                goto out;
        }
        for (size_t i = 0; i < h->n_members; i++) {
                const struct sb_handle_member *m = &h->members[i];
                const char *data = pack + m->offset;
                if (crc32c(data, (size_t)m->size_bytes) != m->crc32c) {
                        r = sb_fail(err, err_len, -EBADMSG, "checkpoint file %s: member %s fails "
                                    "its CRC32C", src, m->name);
                        goto out;
                }
                r = sb_path(dst, sizeof(dst), "%s/%s", dir, m->name);
                if (r < 0)
                        goto out;
                int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0) {
                        r = sb_fail(err, err_len, -errno, "creating %s: %s", dst, err_str(-errno));
                        goto out;
                }
                r = fs_write_full(fd, data, (size_t)m->size_bytes);
                if (close(fd) < 0 && r == 0)
                        r = -errno;
                if (r < 0) {
                        sb_fail(err, err_len, r, "writing %s: %s", dst, err_str(r));
                        goto out;
                }
        }
        r = 0;
out:
        free(pack);
        return r;
}

/* ---- read-only copies for rescaling ---------------------------------------------- */

struct ro_db {
        rocksdb_t *db;
        rocksdb_column_family_handle_t **cfs;
        char **names;
        size_t n;
};

static void ro_close(struct ro_db *ro) {
        for (size_t i = 0; ro->cfs && i < ro->n; i++)
                if (ro->cfs[i])
                        rocksdb_column_family_handle_destroy(ro->cfs[i]);
        if (ro->db)
                rocksdb_close(ro->db);
        if (ro->names)
                rocksdb_list_column_families_destroy(ro->names, ro->n);
        free(ro->cfs);
        *ro = (struct ro_db){0};
}

static int ro_open(struct sb_env *env, const char *dir, struct ro_db *ro, char *err,
                   size_t err_len) {
        rocksdb_options_t *o = rocksdb_options_create(), **cf_opts = NULL;
        char *e = NULL;
        int r = 0;
        if (!o)
                return -ENOMEM;
        rocksdb_options_set_env(o, env->rocks_env);
        rocksdb_options_set_info_log_level(o, 3 /* ERROR */);
        ro->names = rocksdb_list_column_families(o, dir, &ro->n, &e);
        if (e) {
                ro->names = NULL;
                ro->n = 0;
                r = sb_fail_rocks(err, err_len, e, "reading the checkpoint copy in %s", dir);
                goto out;
        }
        cf_opts = calloc(ro->n, sizeof(*cf_opts));
        ro->cfs = calloc(ro->n, sizeof(*ro->cfs));
        if (!cf_opts || !ro->cfs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < ro->n; i++) {
                cf_opts[i] = sb_cf_options(env, SB_STATE_VALUE, 0, 64 << 10, NULL);
                if (!cf_opts[i]) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        ro->db = rocksdb_open_for_read_only_column_families(
                o, dir, (int)ro->n, (const char *const *)ro->names,
                (const rocksdb_options_t *const *)cf_opts, ro->cfs, 0, &e);
        if (e) {
                ro->db = NULL;
                r = sb_fail_rocks(err, err_len, e, "opening the checkpoint copy in %s", dir);
        }
out:
        for (size_t i = 0; cf_opts && i < ro->n; i++)
                if (cf_opts[i])
                        rocksdb_options_destroy(cf_opts[i]);
        free(cf_opts);
        rocksdb_options_destroy(o);
        if (r < 0)
                ro_close(ro);
        return r;
}

/* Writes every key of the copy within [start, end) into the backend's column family of
 * the same name. */
static int merge_range(struct sb_backend *b, struct ro_db *ro, struct kg_range kr,
                       const char *what, char *err, size_t err_len) {
        unsigned char lo[SB_KG_PREFIX_BYTES], hi[SB_KG_PREFIX_BYTES];
        sb_be16_put(lo, kr.start);
        sb_be16_put(hi, kr.end);
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        rocksdb_readoptions_t *rdo = rocksdb_readoptions_create();
        if (!wb || !rdo) {
                if (wb)
                        rocksdb_writebatch_destroy(wb);
                if (rdo)
                        rocksdb_readoptions_destroy(rdo);
                return -ENOMEM;
        }
        rocksdb_readoptions_set_iterate_lower_bound(rdo, (const char *)lo, sizeof(lo));
        rocksdb_readoptions_set_iterate_upper_bound(rdo, (const char *)hi, sizeof(hi));
        rocksdb_readoptions_set_fill_cache(rdo, 0);
        int r = 0;
        char *e = NULL;
        for (size_t c = 0; c < ro->n && r == 0; c++) {
                if (strcmp(ro->names[c], "default") == 0)
                        continue;
                struct sb_state *st = NULL;
                for (size_t j = 0; j < b->n_states; j++)
                        if (strcmp(b->states[j].name, ro->names[c]) == 0)
                                st = &b->states[j];
                if (!st) {
                        r = sb_fail(err, err_len, -EBADMSG, "%s holds column family '%s', which "
                                    "its handle does not list", what, ro->names[c]);
                        break;
                }
                rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ro->db, rdo, ro->cfs[c]);
                size_t batch_bytes = 0;
                for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo));
                     r == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
                        size_t klen, vlen;
                        const char *k = rocksdb_iter_key(it, &klen);
                        const char *v = rocksdb_iter_value(it, &vlen);
                        rocksdb_writebatch_put_cf(wb, st->cf, k, klen, v, vlen);
                        batch_bytes += klen + vlen;
                        if (batch_bytes >= MERGE_BATCH_BYTES) {
                                rocksdb_write(b->db, b->wopts, wb, &e);
                                rocksdb_writebatch_clear(wb);
                                batch_bytes = 0;
                                if (e)
                                        r = sb_fail_rocks(err, err_len, e, "merging %s", what);
                        }
                }
                if (r == 0) {
                        rocksdb_iter_get_error(it, &e);
                        if (e)
                                r = sb_fail_rocks(err, err_len, e, "reading %s", what);
                }
                rocksdb_iter_destroy(it);
                if (r == 0 && rocksdb_writebatch_count(wb) > 0) {
                        rocksdb_write(b->db, b->wopts, wb, &e);
                        rocksdb_writebatch_clear(wb);
                        if (e)
                                r = sb_fail_rocks(err, err_len, e, "merging %s", what);
                }
        }
        rocksdb_writebatch_destroy(wb);
        rocksdb_readoptions_destroy(rdo);
        return r;
}

/* Deletes the key groups outside the backend's range from every column family. */
static int clip(struct sb_backend *b, struct kg_range had, char *err, size_t err_len) {
        unsigned char lo[SB_KG_PREFIX_BYTES], hi[SB_KG_PREFIX_BYTES];
        const unsigned char zero[1] = {0}, top[3] = {0xff, 0xff, 0xff};
        sb_be16_put(lo, b->range.start);
        sb_be16_put(hi, b->range.end);
        char *e = NULL;
        for (size_t i = 0; i < b->n_states; i++) {
                if (had.start < b->range.start)
                        rocksdb_delete_range_cf(b->db, b->wopts, b->states[i].cf,
                                                (const char *)zero, sizeof(zero),
                                                (const char *)lo, sizeof(lo), &e);
                if (!e && had.end > b->range.end)
                        rocksdb_delete_range_cf(b->db, b->wopts, b->states[i].cf,
                                                (const char *)hi, sizeof(hi),
                                                (const char *)top, sizeof(top), &e);
                if (e)
                        return sb_fail_rocks(err, err_len, e, "clipping state '%s' to key "
                                             "groups [%u,%u)", b->states[i].name,
                                             b->range.start, b->range.end);
        }
        return 0;
}

/* ---- restore ------------------------------------------------------------------------ */

static uint32_t overlap(struct kg_range a, struct kg_range b) {
        uint32_t s = a.start > b.start ? a.start : b.start;
        uint32_t e = a.end < b.end ? a.end : b.end;
        return e > s ? e - s : 0;
}

static int cmp_by_start(const void *a, const void *b) {
        const struct sb_handle *x = *(const struct sb_handle *const *)a;
        const struct sb_handle *y = *(const struct sb_handle *const *)b;
        return x->range.start < y->range.start ? -1 : x->range.start > y->range.start;
}

/* The union of the handles' states; a name must agree on kind and TTL on/off. */
static int union_states(struct sb_handle **hs, size_t n, struct sb_handle_state **ret,
                        size_t *ret_n, char *err, size_t err_len) {
        size_t cap = 0;
        for (size_t i = 0; i < n; i++)
                cap += hs[i]->n_states;
        struct sb_handle_state *u = calloc(cap ? cap : 1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < hs[i]->n_states; j++) {
                        const struct sb_handle_state *s = &hs[i]->states[j];
                        size_t m = 0;
                        while (m < k && strcmp(u[m].name, s->name) != 0)
                                m++;
                        if (m == k) {
                                u[k++] = *s;
                        } else if (u[m].kind != s->kind || (u[m].ttl_ms == 0) != (s->ttl_ms == 0)) {
                                free(u);
                                return sb_fail(err, err_len, -EINVAL, "handles disagree on state "
                                               "'%s' (kind or TTL)", s->name);
                        }
                }
        }
        *ret = u;
        *ret_n = k;
        return 0;
}

int sb_backend_restore(struct sb_env *env, const struct sb_backend_config *cfg,
                       const char *job_dir, const struct sb_bytes *handles, size_t n_handles,
                       struct sb_backend **ret_backend, char *err, size_t err_len) {
        struct sb_handle **all = NULL, **over = NULL;
        struct sb_handle_state *states = NULL;
        struct sb_backend *b = NULL;
        struct sb_fileinfo *base_files = NULL;
        size_t n_over = 0, n_states = 0, n_parsed = 0;
        char dir[SB_PATH_MAX], what[SB_PATH_MAX + 64];
        bool dirs_made = false;
        int r = sb_config_check(cfg, err, err_len);
        if (r < 0)
                return r;
        uint32_t maxp = cfg->max_parallelism ? cfg->max_parallelism : KG_DEFAULT_MAX_PARALLELISM;
        struct kg_range want = cfg->range;

        all = calloc(n_handles ? n_handles : 1, sizeof(*all));
        over = calloc(n_handles ? n_handles : 1, sizeof(*over));
        if (!all || !over) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < n_handles; i++) {
                char why[SB_ERR_MAX];
                r = sb_handle_parse(handles[i].data, handles[i].len, &all[i], why, sizeof(why));
                if (r < 0) {
                        sb_fail(err, err_len, r, "handle %zu: %s", i, why);
                        goto fail;
                }
                n_parsed++;
                if (all[i]->max_parallelism != maxp) {
                        r = sb_fail(err, err_len, -EINVAL, "handle %zu has max parallelism %u, "
                                    "the operator %u; it cannot change across a restore", i,
                                    all[i]->max_parallelism, maxp);
                        goto fail;
                }
                if (overlap(all[i]->range, want))
                        over[n_over++] = all[i];
        }
        if (n_over == 0) {
                r = sb_fail(err, err_len, -EINVAL, "no handle holds key groups of [%u,%u)",
                            want.start, want.end);
                goto fail;
        }
        qsort(over, n_over, sizeof(*over), cmp_by_start);
        uint32_t covered = want.start;
        for (size_t i = 0; i < n_over; i++) {
                if (over[i]->range.start > covered)
                        break;
                if (over[i]->range.end > covered)
                        covered = over[i]->range.end;
        }
        if (covered < want.end) {
                r = sb_fail(err, err_len, -EINVAL, "the handles do not cover key groups [%u,%u) "
                            "from %u on", want.start, want.end, covered);
                goto fail;
        }
        size_t best = 0;
        for (size_t i = 1; i < n_over; i++)
                if (overlap(over[i]->range, want) > overlap(over[best]->range, want))
                        best = i;
        r = union_states(over, n_over, &states, &n_states, err, err_len);
        if (r < 0)
                goto fail;

        /* The best-overlapping handle becomes the database. */
        r = sb_local_dir_prepare(cfg->local_dir, err, err_len);
        if (r < 0)
                goto fail;
        dirs_made = true;
        r = sb_path(dir, sizeof(dir), "%s/db", cfg->local_dir);
        if (r == 0)
                r = download(job_dir, over[best], dir, err, err_len);
        if (r < 0)
                goto fail;
        r = sb_backend_open(env, cfg, states, n_states, &b, err, err_len);
        if (r < 0)
                goto fail;
        bool rescale = n_over > 1 || over[best]->range.start != want.start ||
                       over[best]->range.end != want.end;
        if (rescale) {
                r = clip(b, over[best]->range, err, err_len);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < n_over; i++) {
                if (i == best)
                        continue;
                struct ro_db ro = {0};
                r = sb_path(dir, sizeof(dir), "%s/restore-%zu", cfg->local_dir, i);
                if (r == 0)
                        r = download(job_dir, over[i], dir, err, err_len);
                if (r == 0)
                        r = ro_open(env, dir, &ro, err, err_len);
                if (r == 0) {
                        struct kg_range kr = {
                                .start = over[i]->range.start > want.start ? over[i]->range.start
                                                                          : want.start,
                                .end = over[i]->range.end < want.end ? over[i]->range.end
                                                                    : want.end,
                        };
                        snprintf(what, sizeof(what), "checkpoint %" PRIu64 " of backend %s",
                                 over[i]->checkpoint_id, over[i]->backend_id);
                        r = merge_range(b, &ro, kr, what, err, err_len);
                }
                ro_close(&ro);
                (void)fs_rm_rf(dir);
                if (r < 0)
                        goto fail;
        }

        /* The copied-in files are in checkpoint storage already: they are the base. */
        const struct sb_handle *bh = over[best];
        base_files = calloc(bh->n_shared ? bh->n_shared : 1, sizeof(*base_files));
        if (!base_files) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < bh->n_shared; i++) {
                snprintf(base_files[i].local, sizeof(base_files[i].local), "%s",
                         bh->shared[i].local);
                snprintf(base_files[i].uid, sizeof(base_files[i].uid), "%s", bh->shared[i].uid);
                base_files[i].size_bytes = bh->shared[i].size_bytes;
                base_files[i].crc32c = bh->shared[i].crc32c;
        }
        struct sb_filemap *base = sb_filemap_new(bh->checkpoint_id, base_files, bh->n_shared);
        if (!base) {
                r = -ENOMEM;
                goto fail;
        }
        b->shared->base = base; /* nobody else holds b->shared yet */
        *ret_backend = b;
        b = NULL;
        r = 0;
        goto out;
fail:
        sb_backend_destroy(b);
        if (dirs_made) {
                /* Leave nothing half-made in the local directory. */
                char ignored[8];
                (void)sb_local_dir_prepare(cfg->local_dir, ignored, sizeof(ignored));
        }
out:
        free(base_files);
        free(states);
        for (size_t i = 0; i < n_parsed; i++)
                sb_handle_free(all[i]);
        free(all);
        free(over);
        return r;
}
