/* Incremental checkpoints: the synchronous flush and hard links, the asynchronous
 * completion of that local snapshot and upload of new SST files under fresh uids plus
 * one private pack, and the confirm / abort bookkeeping that decides which files later
 * checkpoints may reuse (snapshot.h). */
#include "statebackend/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "statebackend/sb_internal.h"

#define SB_PRIVATE_MAX_BYTES (256u << 20)
/* Optimistic attempts of link_live_files() before it holds file deletions. */
#define SB_LINK_ATTEMPTS 3

struct sb_snapshot {
        struct sb_shared *shared;
        uint64_t checkpoint_id;
        char dir[SB_PATH_MAX];
        struct sb_filemap *base;  /* the base when the snapshot was taken */
        bool uploaded;
        /* Taken by links (link_live_files): the MANIFEST named by CURRENT is linked whole
         * and holds the snapshot in its first manifest_size bytes; the upload cuts it
         * there, writes CURRENT and drops the SST files that MANIFEST does not name. */
        bool linked;
        char manifest[64];
        uint64_t manifest_size;
        struct sb_sync_stats sync;
};

void sb_snapshot_get_sync_stats(const struct sb_snapshot *snap,
                                struct sb_sync_stats *ret_stats) {
        *ret_stats = snap->sync;
}

/* Under the task thread: whether no state has data outside SST files. */
static bool memtables_empty(struct sb_backend *b) {
        for (size_t i = 0; i < b->n_states; i++) {
                uint64_t active = 1, imm = 1;
                if (rocksdb_property_int_cf(b->db, b->states[i].cf,
                                            "rocksdb.num-entries-active-mem-table", &active) != 0 ||
                    rocksdb_property_int_cf(b->db, b->states[i].cf,
                                            "rocksdb.num-immutable-mem-table", &imm) != 0 ||
                    active != 0 || imm != 0)
                        return false;
        }
        return true;
}

/* Flushes the memtables of every state's column family and waits for their SST files.
 * First every column family switches its memtable and queues its flush job
 * (wait off), then the task thread waits for each: the flush jobs run back to back in
 * RocksDB's flush thread instead of one round trip of the task thread per state. A wait
 * on a column family whose memtable is empty but whose flush is queued or running
 * waits for that flush; one with nothing to flush (also in the first pass) returns at
 * once.
 *
 * The task thread is the only writer, so nothing is written between this flush and the
 * checkpoint that follows: the checkpoint need not flush again. *ret_flushed says
 * whether the memtables were seen empty afterwards; if not (which RocksDB should not
 * do), the caller lets the checkpoint flush, as the snapshot would otherwise miss the
 * memtables (the WAL is off). */
static int flush_states(struct sb_backend *b, struct sb_sync_stats *st, bool *ret_flushed,
                        char *err, size_t err_len) {
        rocksdb_flushoptions_t *start = rocksdb_flushoptions_create();
        rocksdb_flushoptions_t *wait = rocksdb_flushoptions_create();
        int r = start && wait ? 0 : -ENOMEM;
        if (r == 0) {
                rocksdb_flushoptions_set_wait(start, 0);
                rocksdb_flushoptions_set_wait(wait, 1);
        }
        for (int pass = 0; pass < 2 && r == 0; pass++) {
                for (size_t i = 0; i < b->n_states && r == 0; i++) {
                        uint64_t v = 0;
                        if (pass == 0 &&
                            rocksdb_property_int_cf(b->db, b->states[i].cf,
                                                    "rocksdb.num-entries-active-mem-table",
                                                    &v) == 0)
                                st->memtable_entries += v;
                        char *e = NULL;
                        rocksdb_flush_cf(b->db, pass == 0 ? start : wait, b->states[i].cf, &e);
                        if (e)
                                r = sb_fail_rocks(err, err_len, e, "flushing state '%s' of %s",
                                                  b->states[i].name, b->db_dir);
                }
        }
        if (start)
                rocksdb_flushoptions_destroy(start);
        if (wait)
                rocksdb_flushoptions_destroy(wait);
        if (r == 0)
                *ret_flushed = memtables_empty(b);
        return r;
}

int sb_backend_flush_async(struct sb_backend *b, char *err, size_t err_len) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        if (!fo)
                return -ENOMEM;
        rocksdb_flushoptions_set_wait(fo, 0);
        int r = 0;
        for (size_t i = 0; i < b->n_states && r == 0; i++) {
                char *e = NULL;
                rocksdb_flush_cf(b->db, fo, b->states[i].cf, &e);
                if (e)
                        r = sb_fail_rocks(err, err_len, e, "flushing state '%s' of %s",
                                          b->states[i].name, b->db_dir);
        }
        rocksdb_flushoptions_destroy(fo);
        return r;
}

uint64_t sb_snapshot_checkpoint_id(const struct sb_snapshot *snap) {
        return snap->checkpoint_id;
}

/* Under s->lock. */
static struct sb_pending *pending_find(struct sb_shared *s, uint64_t id) {
        for (size_t i = 0; i < s->n_pending; i++)
                if (s->pending[i].checkpoint_id == id)
                        return &s->pending[i];
        return NULL;
}

/* Under s->lock: removes p (after clearing it) from the array. */
static void pending_remove(struct sb_shared *s, struct sb_pending *p) {
        sb_pending_clear(p);
        size_t i = (size_t)(p - s->pending);
        s->pending[i] = s->pending[--s->n_pending];
}

static bool aborted_before(struct sb_shared *s, uint64_t id) {
        for (size_t i = 0; i < SB_ABORTED_RING; i++)
                if (s->aborted[i] == id)
                        return true;
        return false;
}

/* RocksDB names its MANIFEST files MANIFEST-<number> and its options files
 * OPTIONS-<number>. */
static bool numbered_name(const char *name, const char *prefix, uint64_t *ret_n) {
        size_t pl = strlen(prefix);
        if (strncmp(name, prefix, pl) != 0 || !name[pl] || strlen(name + pl) > 20)
                return false;
        uint64_t n = 0;
        for (const char *p = name + pl; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                n = n * 10 + (uint64_t)(*p - '0');
        }
        *ret_n = n;
        return true;
}

/* The MANIFEST that <db>/CURRENT names (into name) and its size. */
static int manifest_now(struct sb_backend *b, char *name, size_t name_len, uint64_t *ret_size,
                        char *err, size_t err_len) {
        char path[SB_PATH_MAX], *current = NULL;
        size_t len = 0;
        uint64_t n;
        struct stat st;
        int r = sb_path(path, sizeof(path), "%s/CURRENT", b->db_dir);
        if (r == 0)
                r = fs_read_all(path, 64, &current, &len);
        if (r < 0)
                return sb_fail(err, err_len, r, "reading %s/CURRENT: %s", b->db_dir, err_str(r));
        if (len < 2 || current[len - 1] != '\n' || len > name_len) {
                free(current);
                return sb_fail(err, err_len, -EBADMSG, "%s/CURRENT does not name a MANIFEST",
                               b->db_dir);
        }
        current[len - 1] = '\0';
        if (!numbered_name(current, "MANIFEST-", &n)) {
                r = sb_fail(err, err_len, -EBADMSG, "%s/CURRENT names '%.64s', not a MANIFEST",
                            b->db_dir, current);
                free(current);
                return r;
        }
        snprintf(name, name_len, "%s", current);
        free(current);
        r = sb_path(path, sizeof(path), "%s/%s", b->db_dir, name);
        if (r == 0 && stat(path, &st) < 0)
                r = -errno;
        if (r < 0)
                return sb_fail(err, err_len, r, "%s/%s: %s", b->db_dir, name, err_str(r));
        *ret_size = (uint64_t)st.st_size;
        return 0;
}

/* The synchronous part after the flush, without a single fsync: the MANIFEST that
 * CURRENT names and its size, then hard links of that MANIFEST, of every SST file in the
 * database directory and of the newest OPTIONS file into snap->dir.
 *
 * Why this is a consistent snapshot: the MANIFEST is append-only and RocksDB writes a
 * version edit there after the files it adds are complete and before the files it drops
 * can be deleted; the first manifest_size bytes therefore describe a version whose
 * files all exist until a later edit is written. The links are taken either with file
 * deletions off (hold_deletions), or optimistically: then CURRENT and the MANIFEST's size
 * are read again after the links, and if either changed (an edit was written, which may
 * have let a file go before its link) the caller retries, -EAGAIN. The optimistic way
 * keeps RocksDB's purge of obsolete files, which re-enabling deletions runs on the
 * calling thread, off the task thread. The task thread being the only writer and blocked
 * here, every version after the flush holds the same data: later edits in those bytes
 * are compactions. A version edit cut by the size is a torn tail, which RocksDB ignores
 * as it does after a crash. The links may include SST files that version does not name
 * (compaction outputs being written, files already replaced); the upload removes them
 * (prepare_linked). */
static int link_live_files(struct sb_backend *b, struct sb_snapshot *snap, bool hold_deletions,
                           char *err, size_t err_len) {
        char src[SB_PATH_MAX], dst[SB_PATH_MAX], options[64] = "", again[64];
        char *e = NULL;
        uint64_t n, options_n = 0, size_again = 0;
        int r = 0;
        if (hold_deletions) {
                rocksdb_disable_file_deletions(b->db, &e);
                if (e)
                        return sb_fail_rocks(err, err_len, e, "disabling file deletions of %s",
                                             b->db_dir);
        }
        r = manifest_now(b, snap->manifest, sizeof(snap->manifest), &snap->manifest_size, err,
                         err_len);
        if (r < 0)
                goto out;
        if (mkdir(snap->dir, 0755) < 0) {
                r = sb_fail(err, err_len, -errno, "creating %s: %s", snap->dir, err_str(-errno));
                goto out;
        }
        r = sb_path(src, sizeof(src), "%s/%s", b->db_dir, snap->manifest);
        if (r == 0)
                r = sb_path(dst, sizeof(dst), "%s/%s", snap->dir, snap->manifest);
        if (r == 0 && link(src, dst) < 0)
                r = !hold_deletions && errno == ENOENT ? -EAGAIN : -errno;
        if (r < 0) {
                sb_fail(err, err_len, r, "linking %s into %s: %s", src, snap->dir, err_str(r));
                goto out;
        }
        DIR *d = opendir(b->db_dir);
        if (!d) {
                r = sb_fail(err, err_len, -errno, "reading %s: %s", b->db_dir, err_str(-errno));
                goto out;
        }
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (numbered_name(de->d_name, "OPTIONS-", &n)) {
                        if (n >= options_n) {
                                options_n = n;
                                snprintf(options, sizeof(options), "%.60s", de->d_name);
                        }
                        continue;
                }
                if (!sb_name_is_sst(de->d_name))
                        continue;
                r = sb_path(src, sizeof(src), "%s/%s", b->db_dir, de->d_name);
                if (r == 0)
                        r = sb_path(dst, sizeof(dst), "%s/%s", snap->dir, de->d_name);
                /* A file gone meanwhile is not named by the first manifest_size bytes:
                 * with deletions off it went before they were read; else the check
                 * below sees the edit that let it go. */
                if (r == 0 && link(src, dst) < 0 && errno != ENOENT)
                        r = -errno;
                if (r < 0)
                        sb_fail(err, err_len, r, "linking %s into %s: %s", src, snap->dir,
                                err_str(r));
        }
        closedir(d);
        if (r == 0 && options[0]) {
                r = sb_path(src, sizeof(src), "%s/%s", b->db_dir, options);
                if (r == 0)
                        r = sb_path(dst, sizeof(dst), "%s/%s", snap->dir, options);
                if (r == 0 && link(src, dst) < 0)
                        r = !hold_deletions && errno == ENOENT ? -EAGAIN : -errno;
                if (r < 0)
                        sb_fail(err, err_len, r, "linking %s into %s: %s", src, snap->dir,
                                err_str(r));
        }
        if (r == 0 && !hold_deletions) {
                r = manifest_now(b, again, sizeof(again), &size_again, err, err_len);
                if (r == -ENOENT || (r == 0 && (strcmp(again, snap->manifest) != 0 ||
                                                size_again != snap->manifest_size)))
                        r = -EAGAIN;
        }
        if (r == 0)
                snap->linked = true;
out:
        if (hold_deletions) {
                rocksdb_enable_file_deletions(b->db, 0, &e);
                if (e && r == 0)
                        r = sb_fail_rocks(err, err_len, e, "enabling file deletions of %s",
                                          b->db_dir);
                else
                        free(e);
        }
        return r;
}

/* Optimistic links first; if edits keep coming in between, links with deletions off. */
static int link_snapshot(struct sb_backend *b, struct sb_snapshot *snap, char *err,
                         size_t err_len) {
        for (int attempt = 0;; attempt++) {
                int r = link_live_files(b, snap, attempt == SB_LINK_ATTEMPTS, err, err_len);
                if (r != -EAGAIN)
                        return r;
                (void)fs_rm_rf(snap->dir);
        }
}

int sb_snapshot_sync(struct sb_backend *b, uint64_t checkpoint_id,
                     struct sb_snapshot **ret_snap, char *err, size_t err_len) {
        struct sb_shared *s = b->shared;
        if (checkpoint_id == 0)
                return sb_fail(err, err_len, -EINVAL, "checkpoint id 0 is not valid");
        struct sb_snapshot *snap = calloc(1, sizeof(*snap));
        if (!snap)
                return -ENOMEM;
        snap->checkpoint_id = checkpoint_id;
        int r = sb_path(snap->dir, sizeof(snap->dir), "%s/snap-%" PRIu64, b->local_dir,
                        checkpoint_id);
        if (r < 0) {
                free(snap);
                return sb_fail(err, err_len, r, "local snapshot path is too long");
        }

        pthread_mutex_lock(&s->lock);
        if (pending_find(s, checkpoint_id)) {
                r = sb_fail(err, err_len, -EEXIST, "checkpoint %" PRIu64 " was snapshotted "
                            "before on this backend", checkpoint_id);
        } else if (aborted_before(s, checkpoint_id)) {
                r = sb_fail(err, err_len, -ECANCELED, "checkpoint %" PRIu64 " is aborted",
                            checkpoint_id);
        } else if (s->n_pending == s->cap_pending) {
                size_t ncap = s->cap_pending ? s->cap_pending * 2 : 8;
                struct sb_pending *np = realloc(s->pending, ncap * sizeof(*np));
                if (np) {
                        s->pending = np;
                        s->cap_pending = ncap;
                } else {
                        r = -ENOMEM;
                }
        }
        if (r == 0) {
                s->pending[s->n_pending++] = (struct sb_pending){
                        .checkpoint_id = checkpoint_id,
                        .state = SB_PENDING_SYNCED,
                };
                snap->base = sb_filemap_ref(s->base);
        }
        pthread_mutex_unlock(&s->lock);
        if (r < 0) {
                free(snap);
                return r;
        }
        snap->shared = sb_shared_ref(s);

        char *e = NULL;
        (void)fs_rm_rf(snap->dir); /* a leftover of a crashed run; RocksDB needs it gone */
        uint64_t t0 = clock_mono_us();
        bool flushed = false;
        r = flush_states(b, &snap->sync, &flushed, err, err_len);
        if (r < 0) {
                sb_snapshot_destroy(snap);
                return r;
        }
        uint64_t t1 = clock_mono_us();
        if (flushed) {
                r = link_snapshot(b, snap, err, err_len);
        } else {
                /* RocksDB's own checkpoint flushes the memtables (log_size_for_flush 0)
                 * and copies and fsyncs the MANIFEST and CURRENT itself. */
                rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(b->db, &e);
                if (!e)
                        rocksdb_checkpoint_create(cp, snap->dir, 0, &e);
                if (cp)
                        rocksdb_checkpoint_object_destroy(cp);
                if (e)
                        r = sb_fail_rocks(err, err_len, e, "RocksDB checkpoint of %s into %s",
                                          b->db_dir, snap->dir);
        }
        snap->sync.flush_us = t1 - t0;
        snap->sync.checkpoint_us = clock_mono_us() - t1;
        if (r < 0) {
                sb_snapshot_destroy(snap);
                return r;
        }
        *ret_snap = snap;
        return 0;
}

void sb_snapshot_destroy(struct sb_snapshot *snap) {
        if (!snap)
                return;
        (void)fs_rm_rf(snap->dir); /* hard links only; a failure leaves local garbage that
                                      the next backend on this directory removes */
        if (snap->shared) {
                struct sb_shared *s = snap->shared;
                pthread_mutex_lock(&s->lock);
                struct sb_pending *p = pending_find(s, snap->checkpoint_id);
                if (p && p->state != SB_PENDING_DONE)
                        pending_remove(s, p);
                pthread_mutex_unlock(&s->lock);
                sb_shared_unref(s);
        }
        sb_filemap_unref(snap->base);
        free(snap);
}

/* ---- upload ----------------------------------------------------------------------- */

struct upload {
        struct sb_snapshot *snap;
        const char *job_dir;
        char *err;
        size_t err_len;
        char **names;           /* entries of the snapshot directory, sorted */
        size_t n_names;
        struct sb_fileinfo *files;
        size_t n_files;
        bool *is_new;
        char **uploaded;        /* relative paths created in job_dir */
        size_t n_uploaded;
        struct sb_handle_member *members;
        size_t n_members;
        struct sb_upload_stats stats;
};

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(struct upload *u) {
        DIR *d = opendir(u->snap->dir);
        if (!d)
                return sb_fail(u->err, u->err_len, -errno, "reading local snapshot %s: %s",
                               u->snap->dir, err_str(-errno));
        size_t cap = 0;
        struct dirent *e;
        int r = 0;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                if (u->n_names == cap) {
                        cap = cap ? cap * 2 : 64;
                        char **nn = realloc(u->names, cap * sizeof(*nn));
                        if (!nn) {
                                r = -ENOMEM;
                                break;
                        }
                        u->names = nn;
                }
                u->names[u->n_names] = strdup(e->d_name);
                if (!u->names[u->n_names]) {
                        r = -ENOMEM;
                        break;
                }
                u->n_names++;
        }
        closedir(d);
        if (r == 0 && u->n_names)
                qsort(u->names, u->n_names, sizeof(*u->names), cmp_name);
        return r;
}

/* The read-only open of a linked snapshot found a corrupt file, and RocksDB's message
 * may name another (the MANIFEST that referred to it): if an SST file of the snapshot
 * fails its block checksums, err names that one instead, as an upload would. */
static void name_corrupt_sst(struct sb_snapshot *snap, char *err, size_t err_len) {
        char path[SB_PATH_MAX], why[SB_ERR_MAX];
        DIR *d = opendir(snap->dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                uint32_t crc;
                uint64_t size;
                if (!sb_name_is_sst(de->d_name) ||
                    sb_path(path, sizeof(path), "%s/%s", snap->dir, de->d_name) < 0 ||
                    sb_sst_verify(path, de->d_name, &crc, &size, why, sizeof(why)) != -EBADMSG)
                        continue;
                sb_fail(err, err_len, -EBADMSG, "checkpoint %" PRIu64 ": %s",
                        snap->checkpoint_id, why);
                break;
        }
        closedir(d);
}

/* The asynchronous half of link_live_files(): the MANIFEST cut to the size it had at the
 * barrier, CURRENT naming it, and of the linked SST files only those that this MANIFEST
 * names. RocksDB itself reads the MANIFEST: the directory is opened read-only, which
 * also checks that every file it names is there with its size, and its live files are
 * kept. Everything else in the directory goes (other SST files, the LOG of the open). */
static int prepare_linked(struct sb_snapshot *snap, char *err, size_t err_len) {
        char path[SB_PATH_MAX], *data = NULL, *e = NULL;
        size_t len = 0;
        int r = sb_path(path, sizeof(path), "%s/%s", snap->dir, snap->manifest);
        if (r == 0)
                r = fs_read_all(path, SB_PRIVATE_MAX_BYTES, &data, &len);
        if (r == 0 && len < snap->manifest_size)
                r = -EBADMSG;
        if (r == 0)
                r = fs_write_atomic(path, data, snap->manifest_size);
        free(data);
        if (r < 0)
                return sb_fail(err, err_len, r, "cutting %s to %" PRIu64 " bytes: %s", path,
                               snap->manifest_size, err_str(r));
        char current[80];
        int cl = snprintf(current, sizeof(current), "%s\n", snap->manifest);
        r = sb_path(path, sizeof(path), "%s/CURRENT", snap->dir);
        if (r == 0)
                r = fs_write_atomic(path, current, (size_t)cl);
        if (r < 0)
                return sb_fail(err, err_len, r, "writing %s: %s", path, err_str(r));

        rocksdb_options_t *o = rocksdb_options_create();
        if (!o)
                return -ENOMEM;
        rocksdb_options_set_info_log_level(o, 3 /* ERROR */);
        size_t n_cf = 0;
        char **names = rocksdb_list_column_families(o, snap->dir, &n_cf, &e);
        rocksdb_column_family_handle_t **cfs = NULL;
        const rocksdb_options_t **cf_opts = NULL;
        rocksdb_t *db = NULL;
        if (e) {
                names = NULL;
                r = sb_fail_rocks(err, err_len, e, "reading the snapshot %s", snap->dir);
                goto out;
        }
        cfs = calloc(n_cf ? n_cf : 1, sizeof(*cfs));
        cf_opts = calloc(n_cf ? n_cf : 1, sizeof(*cf_opts));
        if (!cfs || !cf_opts) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n_cf; i++)
                cf_opts[i] = o;
        db = rocksdb_open_for_read_only_column_families(o, snap->dir, (int)n_cf,
                                                        (const char *const *)names, cf_opts,
                                                        cfs, 0, &e);
        if (e) {
                db = NULL;
                r = sb_fail_rocks(err, err_len, e, "opening the snapshot %s", snap->dir);
                if (r == -EBADMSG)
                        name_corrupt_sst(snap, err, err_len);
                goto out;
        }
        const rocksdb_livefiles_t *lf = rocksdb_livefiles(db);
        if (!lf) {
                r = -ENOMEM;
                goto out;
        }
        DIR *d = opendir(snap->dir);
        if (!d) {
                r = sb_fail(err, err_len, -errno, "reading %s: %s", snap->dir, err_str(-errno));
                rocksdb_livefiles_destroy(lf);
                goto out;
        }
        struct dirent *de;
        uint64_t num;
        while (r == 0 && (de = readdir(d))) {
                if (de->d_name[0] == '.' || strcmp(de->d_name, "CURRENT") == 0 ||
                    strcmp(de->d_name, snap->manifest) == 0 ||
                    numbered_name(de->d_name, "OPTIONS-", &num))
                        continue;
                bool live = false;
                for (int i = 0; sb_name_is_sst(de->d_name) && i < rocksdb_livefiles_count(lf) &&
                                !live; i++) {
                        const char *ln = rocksdb_livefiles_name(lf, i);
                        live = strcmp(ln + (ln[0] == '/'), de->d_name) == 0;
                }
                if (live)
                        continue;
                r = sb_path(path, sizeof(path), "%s/%s", snap->dir, de->d_name);
                if (r == 0 && unlink(path) < 0 && errno != ENOENT)
                        r = -errno;
                if (r < 0)
                        sb_fail(err, err_len, r, "removing %s: %s", path, err_str(r));
        }
        closedir(d);
        rocksdb_livefiles_destroy(lf);
out:
        for (size_t i = 0; db && i < n_cf; i++)
                rocksdb_column_family_handle_destroy(cfs[i]);
        if (db)
                rocksdb_close(db);
        if (names)
                rocksdb_list_column_families_destroy(names, n_cf);
        free(cfs);
        free(cf_opts);
        rocksdb_options_destroy(o);
        return r;
}

static int note_upload(struct upload *u, const char *rel) {
        char **nu = realloc(u->uploaded, (u->n_uploaded + 1) * sizeof(*nu));
        if (!nu)
                return -ENOMEM;
        u->uploaded = nu;
        u->uploaded[u->n_uploaded] = strdup(rel);
        if (!u->uploaded[u->n_uploaded])
                return -ENOMEM;
        u->n_uploaded++;
        return 0;
}

static bool aborted_now(struct sb_snapshot *snap) {
        struct sb_shared *s = snap->shared;
        pthread_mutex_lock(&s->lock);
        struct sb_pending *p = pending_find(s, snap->checkpoint_id);
        bool aborted = !p || p->state == SB_PENDING_ABORTED;
        pthread_mutex_unlock(&s->lock);
        return aborted;
}

/* One SST: reused from the base when the base has it with the same size, else verified
 * and copied to shared/<fresh uid>.sst. */
static int upload_sst(struct upload *u, const char *name) {
        char src[SB_PATH_MAX], dst[SB_PATH_MAX], rel[64];
        struct stat st;
        int r = sb_path(src, sizeof(src), "%s/%s", u->snap->dir, name);
        if (r < 0)
                return sb_fail(u->err, u->err_len, r, "path of %s is too long", name);
        if (stat(src, &st) < 0)
                return sb_fail(u->err, u->err_len, -errno, "SST file %s: %s", name,
                               err_str(-errno));
        struct sb_fileinfo *f = &u->files[u->n_files];
        bool *is_new = &u->is_new[u->n_files];
        const struct sb_fileinfo *old = sb_filemap_find(u->snap->base, name);
        if (old && old->size_bytes == (uint64_t)st.st_size) {
                *f = *old;
                *is_new = false;
                u->n_files++;
                u->stats.reused_sst_bytes += f->size_bytes;
                return 0;
        }
        uint32_t crc;
        uint64_t size;
        char why[SB_ERR_MAX];
        r = sb_sst_verify(src, name, &crc, &size, why, sizeof(why));
        if (r < 0)
                return sb_fail(u->err, u->err_len, r, "checkpoint %" PRIu64 ": %s",
                               u->snap->checkpoint_id, why);
        struct flinc_id id;
        r = id_generate(&id);
        if (r < 0)
                return sb_fail(u->err, u->err_len, r, "generating a uid: %s", err_str(r));
        memset(f, 0, sizeof(*f));
        snprintf(f->local, sizeof(f->local), "%s", name);
        id_format(&id, f->uid);
        f->size_bytes = size;
        f->crc32c = crc;
        snprintf(rel, sizeof(rel), "shared/%s.sst", f->uid);
        r = sb_path(dst, sizeof(dst), "%s/%s", u->job_dir, rel);
        if (r < 0)
                return sb_fail(u->err, u->err_len, r, "checkpoint path is too long");
        uint64_t copied;
        r = fs_copy_atomic(src, dst, &crc, NULL, &copied);
        if (r == 0 && copied != size)
                r = -EBADMSG;
        if (r < 0) {
                if (r == -EBADMSG)
                        unlink(dst);
                return sb_fail(u->err, u->err_len, r, "copying SST file %s to %s: %s%s", name,
                               dst, err_str(r),
                               r == -EBADMSG ? " (the file changed after it was verified)" : "");
        }
        r = note_upload(u, rel);
        if (r < 0) {
                unlink(dst);
                return r;
        }
        *is_new = true;
        u->n_files++;
        u->stats.new_sst_files++;
        u->stats.new_sst_bytes += size;
        return 0;
}

/* Packs the non-SST files into chk-<n>/sb-<backend>.pack. */
static int upload_private(struct upload *u, struct sb_handle *h) {
        struct sb_buf pack = {0};
        char path[SB_PATH_MAX], dir[SB_PATH_MAX];
        int r = 0;
        u->members = calloc(u->n_names ? u->n_names : 1, sizeof(*u->members));
        if (!u->members)
                return -ENOMEM;
        for (size_t i = 0; i < u->n_names && r == 0; i++) {
                const char *name = u->names[i];
                if (sb_name_is_sst(name))
                        continue;
                if (!sb_name_is_private(name)) {
                        r = sb_fail(u->err, u->err_len, -EINVAL, "local snapshot %s holds a file "
                                    "named '%s', which a handle cannot carry", u->snap->dir, name);
                        break;
                }
                char *data = NULL;
                size_t len = 0;
                r = sb_path(path, sizeof(path), "%s/%s", u->snap->dir, name);
                if (r == 0)
                        r = fs_read_all(path, SB_PRIVATE_MAX_BYTES, &data, &len);
                if (r < 0) {
                        r = sb_fail(u->err, u->err_len, r, "reading %s: %s", path, err_str(r));
                        break;
                }
                struct sb_handle_member *m = &u->members[u->n_members++];
                snprintf(m->name, sizeof(m->name), "%s", name);
                m->offset = pack.len;
                m->size_bytes = len;
                m->crc32c = crc32c(data, len);
                if (sb_buf_reserve(&pack, pack.len + len + 1) < 0)
                        r = -ENOMEM;
                else if (len)
                        memcpy((char *)pack.data + pack.len, data, len);
                pack.len += r == 0 ? len : 0;
                free(data);
        }
        if (r == 0 && !pack.data && sb_buf_reserve(&pack, 1) < 0)
                r = -ENOMEM;
        if (r < 0)
                goto out;
        snprintf(h->private_path, sizeof(h->private_path), "chk-%" PRIu64 "/sb-%s.pack",
                 u->snap->checkpoint_id, u->snap->shared->backend_id);
        r = sb_path(dir, sizeof(dir), "%s/chk-%" PRIu64, u->job_dir, u->snap->checkpoint_id);
        if (r == 0)
                r = sb_path(path, sizeof(path), "%s/%s", u->job_dir, h->private_path);
        if (r == 0)
                r = fs_mkdir_p(dir, 0755);
        if (r == 0)
                r = fs_write_atomic(path, pack.data, pack.len);
        if (r < 0) {
                r = sb_fail(u->err, u->err_len, r, "writing %s: %s", path, err_str(r));
                goto out;
        }
        r = note_upload(u, h->private_path);
        if (r < 0) {
                unlink(path);
                goto out;
        }
        h->private_size_bytes = pack.len;
        h->private_crc32c = crc32c(pack.data, pack.len);
        h->members = u->members;
        h->n_members = u->n_members;
        u->stats.private_bytes = pack.len;
out:
        sb_buf_finish(&pack);
        return r;
}

static void upload_finish(struct upload *u) {
        for (size_t i = 0; i < u->n_names; i++)
                free(u->names[i]);
        free(u->names);
        free(u->files);
        free(u->is_new);
        for (size_t i = 0; i < u->n_uploaded; i++)
                free(u->uploaded[i]);
        free(u->uploaded);
        free(u->members);
}

int sb_snapshot_upload(struct sb_snapshot *snap, const char *job_dir, char **ret_handle,
                       size_t *ret_len, struct sb_upload_stats *ret_stats, char *err,
                       size_t err_len) {
        struct sb_shared *s = snap->shared;
        struct upload u = {.snap = snap, .job_dir = job_dir, .err = err, .err_len = err_len};
        struct sb_handle h = {0};
        struct sb_filemap *files = NULL;
        char *job_copy = NULL, *data = NULL, path[SB_PATH_MAX];
        size_t len = 0;
        int r;
        if (snap->uploaded)
                return sb_fail(err, err_len, -EALREADY, "checkpoint %" PRIu64 " was uploaded "
                               "before", snap->checkpoint_id);
        pthread_mutex_lock(&s->lock);
        struct sb_pending *p = pending_find(s, snap->checkpoint_id);
        if (p && p->state == SB_PENDING_SYNCED)
                p->state = SB_PENDING_UPLOADING;
        r = p && p->state == SB_PENDING_UPLOADING ? 0 : -ECANCELED;
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                return sb_fail(err, err_len, r, "checkpoint %" PRIu64 " is aborted",
                               snap->checkpoint_id);
        snap->uploaded = true;

        r = sb_path(path, sizeof(path), "%s/shared", job_dir);
        if (r == 0)
                r = fs_mkdir_p(path, 0755);
        if (r < 0) {
                sb_fail(err, err_len, r, "creating %s/shared: %s", job_dir, err_str(r));
                goto fail;
        }
        if (snap->linked) {
                r = prepare_linked(snap, err, err_len);
                if (r < 0)
                        goto fail;
        }
        r = list_dir(&u);
        if (r < 0)
                goto fail;
        u.files = calloc(u.n_names ? u.n_names : 1, sizeof(*u.files));
        u.is_new = calloc(u.n_names ? u.n_names : 1, sizeof(*u.is_new));
        job_copy = strdup(job_dir);
        if (!u.files || !u.is_new || !job_copy) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < u.n_names; i++) {
                if (!sb_name_is_sst(u.names[i]))
                        continue;
                if (aborted_now(snap)) {
                        r = sb_fail(err, err_len, -ECANCELED, "checkpoint %" PRIu64 " was "
                                    "aborted during its upload", snap->checkpoint_id);
                        goto fail;
                }
                r = upload_sst(&u, u.names[i]);
                if (r < 0)
                        goto fail;
        }
        r = upload_private(&u, &h);
        if (r < 0)
                goto fail;

        snprintf(h.backend_id, sizeof(h.backend_id), "%s", s->backend_id);
        h.checkpoint_id = snap->checkpoint_id;
        h.max_parallelism = s->max_parallelism;
        h.range = s->range;
        h.states = s->states;
        h.n_states = s->n_states;
        h.n_shared = u.n_files;
        h.shared = calloc(u.n_files ? u.n_files : 1, sizeof(*h.shared));
        if (!h.shared) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < u.n_files; i++) {
                struct sb_handle_file *f = &h.shared[i];
                snprintf(f->uid, sizeof(f->uid), "%s", u.files[i].uid);
                snprintf(f->local, sizeof(f->local), "%s", u.files[i].local);
                f->size_bytes = u.files[i].size_bytes;
                f->crc32c = u.files[i].crc32c;
                f->is_new = u.is_new[i];
        }
        r = sb_handle_encode(&h, &data, &len);
        if (r == 0) {
                files = sb_filemap_new(snap->checkpoint_id, u.files, u.n_files);
                if (!files)
                        r = -ENOMEM;
        }
        if (r < 0)
                goto fail;

        pthread_mutex_lock(&s->lock);
        p = pending_find(s, snap->checkpoint_id);
        if (p && p->state == SB_PENDING_UPLOADING) {
                p->state = SB_PENDING_DONE;
                p->files = files;
                p->job_dir = job_copy;
                p->uploaded = u.uploaded;
                p->n_uploaded = u.n_uploaded;
                files = NULL;
                job_copy = NULL;
                u.uploaded = NULL;
                u.n_uploaded = 0;
        } else {
                r = sb_fail(err, err_len, -ECANCELED, "checkpoint %" PRIu64 " was aborted "
                            "during its upload", snap->checkpoint_id);
        }
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                goto fail;

        u.stats.sst_files = (uint32_t)u.n_files;
        u.stats.copied_bytes = u.stats.new_sst_bytes + u.stats.private_bytes;
        u.stats.state_bytes = u.stats.new_sst_bytes + u.stats.reused_sst_bytes +
                              u.stats.private_bytes;
        if (ret_stats)
                *ret_stats = u.stats;
        *ret_handle = data;
        *ret_len = len;
        data = NULL;
        r = 0;
        goto out;
fail:
        /* Nothing of a failed upload stays: delete what it copied and drop it. */
        (void)sb_delete_uploads(job_dir, u.uploaded, u.n_uploaded, NULL, 0);
        pthread_mutex_lock(&s->lock);
        p = pending_find(s, snap->checkpoint_id);
        if (p)
                pending_remove(s, p);
        pthread_mutex_unlock(&s->lock);
out:
        free(h.shared); /* h.members and h.states are borrowed from u and s */
        free(data);
        free(job_copy);
        sb_filemap_unref(files);
        upload_finish(&u);
        return r;
}

/* ---- confirm, abort ------------------------------------------------------------- */

int sb_backend_confirm(struct sb_backend *b, uint64_t checkpoint_id) {
        struct sb_shared *s = b->shared;
        int r = -ENOENT;
        pthread_mutex_lock(&s->lock);
        struct sb_pending *p = pending_find(s, checkpoint_id);
        if (p && p->state == SB_PENDING_DONE) {
                sb_filemap_unref(s->base);
                s->base = p->files;
                p->files = NULL;
                pending_remove(s, p);
                /* Older finished uploads can no longer become the base. */
                for (size_t i = 0; i < s->n_pending;) {
                        struct sb_pending *q = &s->pending[i];
                        if (q->state == SB_PENDING_DONE && q->checkpoint_id < checkpoint_id)
                                pending_remove(s, q);
                        else
                                i++;
                }
                r = 0;
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int sb_backend_abort(struct sb_backend *b, uint64_t checkpoint_id, char *err, size_t err_len) {
        struct sb_shared *s = b->shared;
        char **uploaded = NULL, *job_dir = NULL;
        size_t n_uploaded = 0;
        pthread_mutex_lock(&s->lock);
        struct sb_pending *p = pending_find(s, checkpoint_id);
        if (!p) {
                s->aborted[s->aborted_next] = checkpoint_id;
                s->aborted_next = (s->aborted_next + 1) % SB_ABORTED_RING;
        } else if (p->state == SB_PENDING_DONE) {
                uploaded = p->uploaded;
                n_uploaded = p->n_uploaded;
                job_dir = p->job_dir;
                p->uploaded = NULL;
                p->n_uploaded = 0;
                p->job_dir = NULL;
                pending_remove(s, p);
        } else {
                p->state = SB_PENDING_ABORTED; /* its upload cleans up */
        }
        pthread_mutex_unlock(&s->lock);
        int r = 0;
        if (job_dir)
                r = sb_delete_uploads(job_dir, uploaded, n_uploaded, err, err_len);
        for (size_t i = 0; i < n_uploaded; i++)
                free(uploaded[i]);
        free(uploaded);
        free(job_dir);
        return r;
}

void sb_backend_reset_base(struct sb_backend *b) {
        struct sb_shared *s = b->shared;
        pthread_mutex_lock(&s->lock);
        sb_filemap_unref(s->base);
        s->base = NULL;
        pthread_mutex_unlock(&s->lock);
}

uint64_t sb_backend_base_checkpoint(struct sb_backend *b) {
        struct sb_shared *s = b->shared;
        pthread_mutex_lock(&s->lock);
        uint64_t id = s->base ? s->base->checkpoint_id : 0;
        pthread_mutex_unlock(&s->lock);
        return id;
}
