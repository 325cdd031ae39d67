/* Helpers shared inside statebackend/: error text, buffers, the key encoding's pieces,
 * the confirmed-base file map and the bookkeeping a backend shares with its snapshots. */
#include "statebackend/sb_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sb_fail(char *err, size_t err_len, int r, const char *fmt, ...) {
        if (err && err_len) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, err_len, fmt, ap);
                va_end(ap);
        }
        return r;
}

int sb_fail_rocks(char *err, size_t err_len, char *errptr, const char *fmt, ...) {
        int r = err_from_rocksdb(errptr);
        if (r == 0)
                r = -EIO;
        if (err && err_len) {
                va_list ap;
                va_start(ap, fmt);
                int n = vsnprintf(err, err_len, fmt, ap);
                va_end(ap);
                if (n >= 0 && (size_t)n < err_len)
                        snprintf(err + n, err_len - (size_t)n, ": %s",
                                 errptr ? errptr : "(no RocksDB message)");
        }
        free(errptr);
        return r;
}

int sb_path(char *buf, size_t len, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int sb_buf_reserve(struct sb_buf *buf, size_t cap) {
        if (cap <= buf->cap)
                return 0;
        size_t ncap = buf->cap ? buf->cap : 64;
        while (ncap < cap)
                ncap = ncap > SIZE_MAX / 2 ? cap : ncap * 2;
        void *nd = realloc(buf->data, ncap);
        if (!nd)
                return -ENOMEM;
        buf->data = nd;
        buf->cap = ncap;
        return 0;
}

int sb_buf_set(struct sb_buf *buf, const void *data, size_t len) {
        int r = sb_buf_reserve(buf, len ? len : 1);
        if (r < 0)
                return r;
        if (len)
                memcpy(buf->data, data, len);
        buf->len = len;
        return 0;
}

void sb_buf_finish(struct sb_buf *buf) {
        if (!buf)
                return;
        free(buf->data);
        buf->data = NULL;
        buf->len = buf->cap = 0;
}

size_t sb_varint_put(unsigned char *p, uint64_t v) {
        size_t n = 0;
        while (v >= 0x80) {
                p[n++] = (unsigned char)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (unsigned char)v;
        return n;
}

int sb_varint_get(const unsigned char **p, const unsigned char *end, uint64_t *ret) {
        uint64_t v = 0;
        for (unsigned shift = 0; shift <= 63 && *p < end; shift += 7) {
                unsigned char c = *(*p)++;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

void sb_be16_put(unsigned char *p, uint32_t v) {
        p[0] = (unsigned char)(v >> 8);
        p[1] = (unsigned char)v;
}

uint32_t sb_be16_get(const unsigned char *p) {
        return (uint32_t)p[0] << 8 | p[1];
}

void sb_be64_put(unsigned char *p, uint64_t v) {
        for (int i = 7; i >= 0; i--) {
                p[i] = (unsigned char)v;
                v >>= 8;
        }
}

uint64_t sb_be64_get(const unsigned char *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

int sb_key_decode(const void *raw, size_t len, struct sb_dkey *ret) {
        const unsigned char *p = raw, *end = p + len;
        struct sb_dkey d;
        uint64_t n;
        if (len < SB_KG_PREFIX_BYTES)
                return -EBADMSG;
        d.kg = sb_be16_get(p);
        p += SB_KG_PREFIX_BYTES;
        if (sb_varint_get(&p, end, &n) < 0 || n > (uint64_t)(end - p))
                return -EBADMSG;
        d.key = p;
        d.key_len = (size_t)n;
        p += n;
        if (sb_varint_get(&p, end, &n) < 0 || n > (uint64_t)(end - p))
                return -EBADMSG;
        d.ns = p;
        d.ns_len = (size_t)n;
        p += n;
        d.ukey = p;
        d.ukey_len = (size_t)(end - p);
        *ret = d;
        return 0;
}

/* ---- file map ---------------------------------------------------------------- */

static int fileinfo_cmp(const void *a, const void *b) {
        return strcmp(((const struct sb_fileinfo *)a)->local,
                      ((const struct sb_fileinfo *)b)->local);
}

struct sb_filemap *sb_filemap_new(uint64_t checkpoint_id, const struct sb_fileinfo *files,
                                  size_t n) {
        struct sb_filemap *m = malloc(sizeof(*m) + n * sizeof(files[0]));
        if (!m)
                return NULL;
        atomic_init(&m->refs, 1);
        m->checkpoint_id = checkpoint_id;
        m->n = n;
        if (n)
                memcpy(m->files, files, n * sizeof(files[0]));
        qsort(m->files, n, sizeof(files[0]), fileinfo_cmp);
        return m;
}

struct sb_filemap *sb_filemap_ref(struct sb_filemap *m) {
        if (m)
                atomic_fetch_add(&m->refs, 1);
        return m;
}

void sb_filemap_unref(struct sb_filemap *m) {
        if (m && atomic_fetch_sub(&m->refs, 1) == 1)
                free(m);
}

const struct sb_fileinfo *sb_filemap_find(const struct sb_filemap *m, const char *local) {
        if (!m)
                return NULL;
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(m->files[mid].local, local);
                if (c == 0)
                        return &m->files[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* ---- shared bookkeeping ------------------------------------------------------ */

void sb_pending_clear(struct sb_pending *p) {
        sb_filemap_unref(p->files);
        p->files = NULL;
        for (size_t i = 0; i < p->n_uploaded; i++)
                free(p->uploaded[i]);
        free(p->uploaded);
        p->uploaded = NULL;
        p->n_uploaded = 0;
        free(p->job_dir);
        p->job_dir = NULL;
}

struct sb_shared *sb_shared_ref(struct sb_shared *s) {
        atomic_fetch_add(&s->refs, 1);
        return s;
}

void sb_shared_unref(struct sb_shared *s) {
        if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
                return;
        sb_filemap_unref(s->base);
        for (size_t i = 0; i < s->n_pending; i++)
                sb_pending_clear(&s->pending[i]);
        free(s->pending);
        free(s->states);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int sb_delete_uploads(const char *job_dir, char **paths, size_t n, char *err, size_t err_len) {
        int first = 0;
        char path[SB_PATH_MAX];
        for (size_t i = 0; i < n; i++) {
                int r = sb_path(path, sizeof(path), "%s/%s", job_dir, paths[i]);
                if (r == 0 && unlink(path) < 0 && errno != ENOENT)
                        r = -errno;
                if (r < 0 && first == 0)
                        first = sb_fail(err, err_len, r, "deleting %s/%s: %s", job_dir, paths[i],
                                        err_str(r));
        }
        return first;
}

/* ---- names ------------------------------------------------------------------- */

static bool all_of(const char *s, size_t len, const char *set) {
        for (size_t i = 0; i < len; i++)
                if (!s[i] || !strchr(set, s[i]))
                        return false;
        return true;
}

#define DIGITS "0123456789"
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

bool sb_name_is_sst(const char *name) {
        size_t len = strlen(name);
        return len >= 5 && len <= 24 && strcmp(name + len - 4, ".sst") == 0 &&
               all_of(name, len - 4, DIGITS);
}

bool sb_name_is_private(const char *name) {
        size_t len = strlen(name);
        return len >= 1 && len <= SB_HANDLE_NAME_MAX && name[0] != '.' &&
               all_of(name, len, NAME_CHARS) && !sb_name_is_sst(name);
}

bool sb_name_is_state(const char *name) {
        size_t len = name ? strlen(name) : 0;
        return len >= 1 && len <= SB_STATE_NAME_MAX && all_of(name, len, NAME_CHARS) &&
               strcmp(name, "default") != 0;
}

static const char *const kind_names[] = {
        [SB_STATE_VALUE] = "value",
        [SB_STATE_LIST] = "list",
        [SB_STATE_MAP] = "map",
        [SB_STATE_REDUCING] = "reducing",
        [SB_STATE_AGGREGATING] = "aggregating",
};

const char *sb_state_kind_name(enum sb_state_kind kind) {
        if ((int)kind < SB_STATE_VALUE || (int)kind > SB_STATE_AGGREGATING)
                return "?";
        return kind_names[kind];
}

int sb_kind_parse(const char *s, size_t len, enum sb_state_kind *ret) {
        for (int k = SB_STATE_VALUE; k <= SB_STATE_AGGREGATING; k++) {
                if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0) {
                        *ret = (enum sb_state_kind)k;
                        return 0;
                }
        }
        return -EINVAL;
}
