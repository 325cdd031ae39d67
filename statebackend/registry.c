/* The coordinator's shared-file registry: a reference count per shared file (the number
 * of retained checkpoints naming it) in an open-addressing hash table keyed by uid, and
 * the list of retained checkpoints with their files and private packs (registry.h). */
#include "statebackend/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statebackend/sb_internal.h"

struct reg_file {
        struct flinc_id uid;
        uint64_t size_bytes;
        uint32_t refs;   /* 0: empty slot */
};

struct reg_checkpoint {
        uint64_t id;
        struct flinc_id *uids;   /* distinct */
        size_t n_uids;
        char **packs;
        size_t n_packs;
};

struct sb_registry {
        struct reg_file *slots;
        size_t cap;              /* power of two */
        size_t n_files;
        uint64_t bytes;
        struct reg_checkpoint *cps; /* sorted by id */
        size_t n_cps, cap_cps;
};

void sb_paths_finish(struct sb_paths *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                free(p->paths[i]);
        free(p->paths);
        p->paths = NULL;
        p->n = 0;
}

static int paths_add(struct sb_paths *p, const char *s) {
        char **np = realloc(p->paths, (p->n + 1) * sizeof(*np));
        if (!np)
                return -ENOMEM;
        p->paths = np;
        p->paths[p->n] = strdup(s);
        if (!p->paths[p->n])
                return -ENOMEM;
        p->n++;
        return 0;
}

/* ---- hash table of files ------------------------------------------------------------- */

static size_t slot_of(const struct sb_registry *reg, const struct flinc_id *uid) {
        uint64_t h;
        memcpy(&h, uid->bytes, sizeof(h)); /* uids are random */
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 32;
        return (size_t)h & (reg->cap - 1);
}

static struct reg_file *file_find(const struct sb_registry *reg, const struct flinc_id *uid) {
        if (reg->cap == 0)
                return NULL;
        for (size_t i = slot_of(reg, uid);; i = (i + 1) & (reg->cap - 1)) {
                struct reg_file *f = &reg->slots[i];
                if (f->refs == 0)
                        return NULL;
                if (id_equal(&f->uid, uid))
                        return f;
        }
}

static int grow(struct sb_registry *reg) {
        size_t ncap = reg->cap ? reg->cap * 2 : 256;
        struct reg_file *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
                return -ENOMEM;
        struct reg_file *old = reg->slots;
        size_t ocap = reg->cap;
        reg->slots = ns;
        reg->cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
                if (old[i].refs == 0)
                        continue;
                size_t j = slot_of(reg, &old[i].uid);
                while (ns[j].refs)
                        j = (j + 1) & (ncap - 1);
                ns[j] = old[i];
        }
        free(old);
        return 0;
}

/* Needs room reserved (file_reserve) beforehand. */
static void file_ref(struct sb_registry *reg, const struct flinc_id *uid, uint64_t size) {
        size_t i = slot_of(reg, uid);
        for (;; i = (i + 1) & (reg->cap - 1)) {
                struct reg_file *f = &reg->slots[i];
                if (f->refs == 0) {
                        f->uid = *uid;
                        f->size_bytes = size;
                        f->refs = 1;
                        reg->n_files++;
                        reg->bytes += size;
                        return;
                }
                if (id_equal(&f->uid, uid)) {
                        f->refs++;
                        return;
                }
        }
}

static int file_reserve(struct sb_registry *reg, size_t more) {
        while ((reg->n_files + more) * 4 >= reg->cap * 3) {
                int r = grow(reg);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Drops one reference; returns true when the file is no longer named. Backward-shift
 * deletion keeps the probe chains intact without tombstones. */
static bool file_unref(struct sb_registry *reg, struct reg_file *f) {
        if (--f->refs > 0)
                return false;
        reg->n_files--;
        reg->bytes -= f->size_bytes;
        size_t mask = reg->cap - 1, i = (size_t)(f - reg->slots);
        for (size_t j = (i + 1) & mask; reg->slots[j].refs; j = (j + 1) & mask) {
                size_t home = slot_of(reg, &reg->slots[j].uid);
                /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        reg->slots[i] = reg->slots[j];
                        reg->slots[j].refs = 0;
                        i = j;
                }
        }
        reg->slots[i].refs = 0;
        return true;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static void cp_clear(struct reg_checkpoint *cp) {
        free(cp->uids);
        for (size_t i = 0; i < cp->n_packs; i++)
                free(cp->packs[i]);
        free(cp->packs);
        memset(cp, 0, sizeof(*cp));
}

static struct reg_checkpoint *cp_find(const struct sb_registry *reg, uint64_t id, size_t *ret_pos) {
        size_t lo = 0, hi = reg->n_cps;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (reg->cps[mid].id == id) {
                        if (ret_pos)
                                *ret_pos = mid;
                        return &reg->cps[mid];
                }
                if (reg->cps[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (ret_pos)
                *ret_pos = lo;
        return NULL;
}

int sb_registry_create(struct sb_registry **ret_reg) {
        struct sb_registry *reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        *ret_reg = reg;
        return 0;
}

void sb_registry_destroy(struct sb_registry *reg) {
        if (!reg)
                return;
        for (size_t i = 0; i < reg->n_cps; i++)
                cp_clear(&reg->cps[i]);
        free(reg->cps);
        free(reg->slots);
        free(reg);
}

/* One shared file as a checkpoint names it (merged over its handles). */
struct cp_file {
        struct flinc_id uid;
        uint64_t size_bytes;
        bool is_new, reused;
        char local[SB_HANDLE_NAME_MAX + 1];
        uint64_t handle_chk;
};

static int cmp_cp_file(const void *a, const void *b) {
        return memcmp(&((const struct cp_file *)a)->uid, &((const struct cp_file *)b)->uid,
                      sizeof(struct flinc_id));
}

static bool pack_held(const struct sb_registry *reg, const char *path) {
        for (size_t i = 0; i < reg->n_cps; i++)
                for (size_t j = 0; j < reg->cps[i].n_packs; j++)
                        if (strcmp(reg->cps[i].packs[j], path) == 0)
                                return true;
        return false;
}

static int do_register(struct sb_registry *reg, uint64_t checkpoint_id,
                       const struct sb_bytes *handles, size_t n_handles, bool strict,
                       char *err, size_t err_len) {
        struct sb_handle **hs = NULL;
        struct cp_file *files = NULL;
        struct reg_checkpoint cp = {.id = checkpoint_id};
        size_t n_parsed = 0, n_files = 0, total = 0, pos;
        int r = 0;
        if (checkpoint_id == 0)
                return sb_fail(err, err_len, -EINVAL, "checkpoint id 0 is not valid");
        if (cp_find(reg, checkpoint_id, &pos))
                return sb_fail(err, err_len, -EEXIST, "checkpoint %" PRIu64 " is registered "
                               "already", checkpoint_id);
        hs = calloc(n_handles ? n_handles : 1, sizeof(*hs));
        if (!hs)
                return -ENOMEM;
        for (size_t i = 0; i < n_handles; i++) {
                char why[SB_ERR_MAX];
                r = sb_handle_parse(handles[i].data, handles[i].len, &hs[i], why, sizeof(why));
                if (r < 0) {
                        sb_fail(err, err_len, r, "checkpoint %" PRIu64 ", handle %zu: %s",
                                checkpoint_id, i, why);
                        goto out;
                }
                n_parsed++;
                total += hs[i]->n_shared;
        }
        files = calloc(total ? total : 1, sizeof(*files));
        cp.packs = calloc(n_handles ? n_handles : 1, sizeof(*cp.packs));
        if (!files || !cp.packs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n_handles; i++) {
                const struct sb_handle *h = hs[i];
                for (size_t j = 0; j < h->n_shared; j++) {
                        struct cp_file *f = &files[n_files++];
                        (void)id_parse(h->shared[j].uid, &f->uid); /* validated by the parse */
                        f->size_bytes = h->shared[j].size_bytes;
                        f->is_new = h->shared[j].is_new;
                        f->reused = !h->shared[j].is_new;
                        f->handle_chk = h->checkpoint_id;
                        snprintf(f->local, sizeof(f->local), "%s", h->shared[j].local);
                }
                if (pack_held(reg, h->private_path)) {
                        r = sb_fail(err, err_len, -EEXIST, "checkpoint %" PRIu64 ": private pack "
                                    "%s is registered already", checkpoint_id, h->private_path);
                        goto out;
                }
                for (size_t k = 0; k < cp.n_packs; k++) {
                        if (strcmp(cp.packs[k], h->private_path) == 0) {
                                r = sb_fail(err, err_len, -EINVAL, "checkpoint %" PRIu64 ": two "
                                            "handles name private pack %s", checkpoint_id,
                                            h->private_path);
                                goto out;
                        }
                }
                cp.packs[cp.n_packs] = strdup(h->private_path);
                if (!cp.packs[cp.n_packs]) {
                        r = -ENOMEM;
                        goto out;
                }
                cp.n_packs++;
        }
        /* Merge the handles' views of each file. */
        qsort(files, n_files, sizeof(*files), cmp_cp_file);
        size_t n = 0;
        for (size_t i = 0; i < n_files; i++) {
                if (n > 0 && id_equal(&files[n - 1].uid, &files[i].uid)) {
                        struct cp_file *m = &files[n - 1];
                        char uid[ID_HEX_LEN + 1];
                        id_format(&m->uid, uid);
                        if (m->size_bytes != files[i].size_bytes || m->is_new || files[i].is_new) {
                                r = sb_fail(err, err_len, -EINVAL, "checkpoint %" PRIu64 ": shared "
                                            "file %s is named by two handles that disagree on its "
                                            "size or on who uploaded it", checkpoint_id, uid);
                                goto out;
                        }
                        continue;
                }
                files[n++] = files[i];
        }
        for (size_t i = 0; i < n; i++) {
                const struct cp_file *f = &files[i];
                const struct reg_file *held = file_find(reg, &f->uid);
                char uid[ID_HEX_LEN + 1];
                id_format(&f->uid, uid);
                if (f->is_new && held) {
                        r = sb_fail(err, err_len, -EEXIST, "checkpoint %" PRIu64 " marks shared/%s"
                                    ".sst (local %s) as new, but it is registered already",
                                    checkpoint_id, uid, f->local);
                        goto out;
                }
                if (f->reused && !held && strict) {
                        r = sb_fail(err, err_len, -ESTALE, "checkpoint %" PRIu64 " reuses shared/%s"
                                    ".sst (local %s), which no retained checkpoint names: its "
                                    "base is gone; abort it and reset the backend's base",
                                    checkpoint_id, uid, f->local);
                        goto out;
                }
                if (held && held->size_bytes != f->size_bytes) {
                        r = sb_fail(err, err_len, -EINVAL, "checkpoint %" PRIu64 " names shared/%s"
                                    ".sst with %" PRIu64 " bytes, registered with %" PRIu64,
                                    checkpoint_id, uid, f->size_bytes, held->size_bytes);
                        goto out;
                }
        }
        cp.uids = calloc(n ? n : 1, sizeof(*cp.uids));
        if (!cp.uids) {
                r = -ENOMEM;
                goto out;
        }
        r = file_reserve(reg, n);
        if (r == 0 && reg->n_cps == reg->cap_cps) {
                size_t ncap = reg->cap_cps ? reg->cap_cps * 2 : 16;
                struct reg_checkpoint *nc = realloc(reg->cps, ncap * sizeof(*nc));
                if (!nc)
                        r = -ENOMEM;
                else {
                        reg->cps = nc;
                        reg->cap_cps = ncap;
                }
        }
        if (r < 0)
                goto out;
        /* Nothing can fail from here on. */
        for (size_t i = 0; i < n; i++) {
                file_ref(reg, &files[i].uid, files[i].size_bytes);
                cp.uids[cp.n_uids++] = files[i].uid;
        }
        memmove(&reg->cps[pos + 1], &reg->cps[pos], (reg->n_cps - pos) * sizeof(*reg->cps));
        reg->cps[pos] = cp;
        reg->n_cps++;
        memset(&cp, 0, sizeof(cp));
out:
        cp_clear(&cp);
        free(files);
        for (size_t i = 0; i < n_parsed; i++)
                sb_handle_free(hs[i]);
        free(hs);
        return r;
}

int sb_registry_register(struct sb_registry *reg, uint64_t checkpoint_id,
                         const struct sb_bytes *handles, size_t n_handles, char *err,
                         size_t err_len) {
        return do_register(reg, checkpoint_id, handles, n_handles, true, err, err_len);
}

int sb_registry_retire(struct sb_registry *reg, uint64_t checkpoint_id,
                       struct sb_paths *ret_paths) {
        size_t pos;
        struct reg_checkpoint *cp = cp_find(reg, checkpoint_id, &pos);
        if (!cp)
                return -ENOENT;
        struct sb_paths out = {0};
        /* Reserve the output first so that retiring cannot fail half-way. */
        out.paths = calloc(cp->n_uids + cp->n_packs + 1, sizeof(*out.paths));
        if (!out.paths)
                return -ENOMEM;
        for (size_t i = 0; i < cp->n_uids; i++) {
                struct reg_file *f = file_find(reg, &cp->uids[i]);
                char path[64], uid[ID_HEX_LEN + 1];
                id_format(&cp->uids[i], uid);
                if (f && file_unref(reg, f)) {
                        snprintf(path, sizeof(path), "shared/%s.sst", uid);
                        out.paths[out.n] = strdup(path);
                        if (out.paths[out.n])
                                out.n++;
                        /* On ENOMEM the path is lost from the list: an orphan, never a
                         * deletion of something still named. */
                }
        }
        for (size_t i = 0; i < cp->n_packs; i++) {
                out.paths[out.n++] = cp->packs[i];
                cp->packs[i] = NULL;
        }
        cp->n_packs = 0;
        cp_clear(cp);
        memmove(&reg->cps[pos], &reg->cps[pos + 1], (reg->n_cps - pos - 1) * sizeof(*reg->cps));
        reg->n_cps--;
        *ret_paths = out;
        return 0;
}

static int cmp_rcp(const void *a, const void *b) {
        uint64_t x = ((const struct sb_registry_checkpoint *)a)->checkpoint_id;
        uint64_t y = ((const struct sb_registry_checkpoint *)b)->checkpoint_id;
        return x < y ? -1 : x > y;
}

int sb_registry_rebuild(const struct sb_registry_checkpoint *cps, size_t n_cps,
                        struct sb_registry **ret_reg, char *err, size_t err_len) {
        struct sb_registry *reg = NULL;
        struct sb_registry_checkpoint *sorted = malloc((n_cps ? n_cps : 1) * sizeof(*sorted));
        if (!sorted)
                return -ENOMEM;
        if (n_cps)
                memcpy(sorted, cps, n_cps * sizeof(*sorted));
        qsort(sorted, n_cps, sizeof(*sorted), cmp_rcp);
        int r = sb_registry_create(&reg);
        for (size_t i = 0; r == 0 && i < n_cps; i++)
                r = do_register(reg, sorted[i].checkpoint_id, sorted[i].handles,
                                sorted[i].n_handles, false, err, err_len);
        free(sorted);
        if (r < 0) {
                sb_registry_destroy(reg);
                return r;
        }
        *ret_reg = reg;
        return 0;
}

bool sb_registry_holds(const struct sb_registry *reg, const char *rel_path) {
        struct flinc_id uid;
        char hex[ID_HEX_LEN + 1];
        size_t len = strlen(rel_path);
        if (len == 7 + ID_HEX_LEN + 4 && strncmp(rel_path, "shared/", 7) == 0 &&
            strcmp(rel_path + len - 4, ".sst") == 0) {
                memcpy(hex, rel_path + 7, ID_HEX_LEN);
                hex[ID_HEX_LEN] = '\0';
                return id_parse(hex, &uid) == 0 && file_find(reg, &uid) != NULL;
        }
        return pack_held(reg, rel_path);
}

size_t sb_registry_checkpoint_count(const struct sb_registry *reg) {
        return reg->n_cps;
}

size_t sb_registry_shared_count(const struct sb_registry *reg) {
        return reg->n_files;
}

uint64_t sb_registry_shared_bytes(const struct sb_registry *reg) {
        return reg->bytes;
}

static int cmp_path(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int sb_registry_list(const struct sb_registry *reg, struct sb_paths *ret_paths) {
        struct sb_paths out = {0};
        int r = 0;
        for (size_t i = 0; r == 0 && i < reg->cap; i++) {
                if (reg->slots[i].refs == 0)
                        continue;
                char uid[ID_HEX_LEN + 1], path[64];
                id_format(&reg->slots[i].uid, uid);
                snprintf(path, sizeof(path), "shared/%s.sst", uid);
                r = paths_add(&out, path);
        }
        for (size_t i = 0; r == 0 && i < reg->n_cps; i++)
                for (size_t j = 0; r == 0 && j < reg->cps[i].n_packs; j++)
                        r = paths_add(&out, reg->cps[i].packs[j]);
        if (r < 0) {
                sb_paths_finish(&out);
                return r;
        }
        if (out.n)
                qsort(out.paths, out.n, sizeof(*out.paths), cmp_path);
        *ret_paths = out;
        return 0;
}
