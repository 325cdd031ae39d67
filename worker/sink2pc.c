/* Part files of the exactly-once file sink and their two-phase commit (see sink2pc.h). */
#include "worker/sink2pc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fsutil.h"

#define SINK_PATH_MAX 4096u

struct wrk_sink2pc {
        char dir[SINK_PATH_MAX];
        uint32_t vertex;
        uint32_t subtask;
        uint32_t parallelism;
        uint64_t part_size;
        uint64_t next_seq;
        int fd;              /* in-progress file, or -1 */
        uint64_t cur_seq;
        uint64_t cur_bytes;
        struct wrk_sink_file *pending;
        size_t n_pending;
        size_t cap_pending;
};

static int name_fmt(char *buf, size_t len, const char *pre, uint32_t v, uint32_t s, uint64_t q,
                    const char *suf) {
        int n = snprintf(buf, len, "%spart-%" PRIu32 "-%" PRIu32 "-%" PRIu64 "%s", pre, v, s, q,
                         suf);
        return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int wrk_sink_final_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask, uint64_t seq) {
        return name_fmt(buf, len, "", vertex, subtask, seq, "");
}

int wrk_sink_inprogress_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask,
                             uint64_t seq) {
        return name_fmt(buf, len, ".", vertex, subtask, seq, ".inprogress");
}

int wrk_sink_pending_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask,
                          uint64_t seq) {
        return name_fmt(buf, len, ".", vertex, subtask, seq, ".pending");
}

static bool parse_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        if (*s < '0' || *s > '9')
                return false;
        while (*s >= '0' && *s <= '9') {
                uint64_t d = (uint64_t)(*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
                s++;
        }
        *p = s;
        *ret = v;
        return true;
}

int wrk_sink_parse_name(const char *name, uint32_t *ret_vertex, uint32_t *ret_subtask,
                        uint64_t *ret_seq, int *ret_state) {
        const char *p = name;
        bool hidden = false;
        if (*p == '.') {
                hidden = true;
                p++;
        }
        if (strncmp(p, "part-", 5) != 0)
                return 0;
        p += 5;
        uint64_t v, s, q;
        if (!parse_u64(&p, &v) || *p++ != '-' || !parse_u64(&p, &s) || *p++ != '-' ||
            !parse_u64(&p, &q) || v > UINT32_MAX || s > UINT32_MAX)
                return 0;
        int state;
        if (!hidden && *p == '\0')
                state = 0;
        else if (hidden && strcmp(p, ".inprogress") == 0)
                state = 1;
        else if (hidden && strcmp(p, ".pending") == 0)
                state = 2;
        else
                return 0;
        *ret_vertex = (uint32_t)v;
        *ret_subtask = (uint32_t)s;
        *ret_seq = q;
        *ret_state = state;
        return 1;
}

static int path_of(const struct wrk_sink2pc *s, char *buf, size_t len, int state, uint32_t sub,
                   uint64_t seq) {
        char name[WRK_SINK_NAME_MAX];
        int r = state == 0   ? wrk_sink_final_name(name, sizeof(name), s->vertex, sub, seq)
                : state == 1 ? wrk_sink_inprogress_name(name, sizeof(name), s->vertex, sub, seq)
                             : wrk_sink_pending_name(name, sizeof(name), s->vertex, sub, seq);
        if (r < 0)
                return r;
        int n = snprintf(buf, len, "%s/%s", s->dir, name);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int pending_add(struct wrk_sink2pc *s, uint32_t sub, uint64_t seq, uint64_t chk) {
        if (s->n_pending >= WRK_SINK_MAX_PENDING)
                return -E2BIG;
        if (s->n_pending == s->cap_pending) {
                size_t cap = s->cap_pending ? 2 * s->cap_pending : 8;
                struct wrk_sink_file *p = realloc(s->pending, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                s->pending = p;
                s->cap_pending = cap;
        }
        s->pending[s->n_pending++] = (struct wrk_sink_file){sub, seq, chk};
        return 0;
}

/* Renames a pending file to its final name; an already final one is fine. */
static int commit_one(struct wrk_sink2pc *s, uint32_t sub, uint64_t seq, char *err,
                      size_t err_len) {
        char from[SINK_PATH_MAX + WRK_SINK_NAME_MAX], to[SINK_PATH_MAX + WRK_SINK_NAME_MAX];
        int r = path_of(s, from, sizeof(from), 2, sub, seq);
        if (r == 0)
                r = path_of(s, to, sizeof(to), 0, sub, seq);
        if (r < 0)
                return err_set(err, err_len, r, "sink part name too long in %s", s->dir);
        if (rename(from, to) == 0)
                return 0;
        r = -errno;
        struct stat st;
        if (r == -ENOENT && stat(to, &st) == 0)
                return 0;
        return err_set(err, err_len, r, "commit of %s failed: %s", from, strerror(-r));
}

static int close_inprogress(struct wrk_sink2pc *s, char *err, size_t err_len) {
        if (s->fd < 0)
                return 0;
        int r = 0;
        if (fsync(s->fd) < 0)
                r = -errno;
        close(s->fd);
        s->fd = -1;
        if (r < 0)
                return err_set(err, err_len, r, "fsync of a part file in %s failed: %s",
                               s->dir, strerror(-r));
        char from[SINK_PATH_MAX + WRK_SINK_NAME_MAX], to[SINK_PATH_MAX + WRK_SINK_NAME_MAX];
        r = path_of(s, from, sizeof(from), 1, s->subtask, s->cur_seq);
        if (r == 0)
                r = path_of(s, to, sizeof(to), 2, s->subtask, s->cur_seq);
        if (r < 0)
                return err_set(err, err_len, r, "sink part name too long in %s", s->dir);
        if (rename(from, to) < 0)
                return err_set(err, err_len, -errno, "rename of %s failed: %s", from,
                               strerror(errno));
        r = pending_add(s, s->subtask, s->cur_seq, 0);
        if (r < 0)
                return err_set(err, err_len, r, "too many pending part files in %s", s->dir);
        return 0;
}

int wrk_sink2pc_open(const struct wrk_sink2pc_config *cfg, struct wrk_sink2pc **ret, char *err,
                     size_t err_len) {
        if (!cfg->dir || strlen(cfg->dir) >= SINK_PATH_MAX || cfg->parallelism == 0 ||
            cfg->subtask >= cfg->parallelism)
                return err_set(err, err_len, -EINVAL, "bad file sink configuration");
        struct wrk_sink2pc *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        snprintf(s->dir, sizeof(s->dir), "%s", cfg->dir);
        s->vertex = cfg->vertex;
        s->subtask = cfg->subtask;
        s->parallelism = cfg->parallelism;
        s->part_size = cfg->part_size_bytes;
        s->fd = -1;
        int r = fs_mkdir_p(s->dir, 0755);
        if (r < 0) {
                err_set(err, err_len, r, "cannot create sink directory %s: %s", s->dir,
                        strerror(-r));
                goto fail;
        }
        uint64_t max_seq = 0;
        bool any = false;
        for (size_t i = 0; i < cfg->n_restored; i++) {
                const struct wrk_sink_file *f = &cfg->restored[i];
                if (f->subtask % s->parallelism != s->subtask)
                        continue;
                r = commit_one(s, f->subtask, f->seq, err, err_len);
                if (r < 0)
                        goto fail;
                if (f->subtask == s->subtask && (!any || f->seq > max_seq)) {
                        max_seq = f->seq;
                        any = true;
                }
        }
        /* Clean up what came after the restored checkpoint, and find the largest seq. */
        DIR *d = opendir(s->dir);
        if (!d) {
                r = -errno;
                err_set(err, err_len, r, "cannot list %s: %s", s->dir, strerror(-r));
                goto fail;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                uint32_t v, sub;
                uint64_t seq;
                int state;
                if (!wrk_sink_parse_name(de->d_name, &v, &sub, &seq, &state) || v != s->vertex)
                        continue;
                if (state != 0 && sub % s->parallelism == s->subtask) {
                        char p[SINK_PATH_MAX + 256 + 2];
                        snprintf(p, sizeof(p), "%s/%s", s->dir, de->d_name);
                        if (unlink(p) < 0 && errno != ENOENT) {
                                r = -errno;
                                closedir(d);
                                err_set(err, err_len, r, "cannot delete %s: %s", p,
                                        strerror(-r));
                                goto fail;
                        }
                        continue;
                }
                if (sub == s->subtask && (!any || seq > max_seq)) {
                        max_seq = seq;
                        any = true;
                }
        }
        closedir(d);
        s->next_seq = any ? max_seq + 1 : 0;
        r = fs_fsync_dir(s->dir);
        if (r < 0) {
                err_set(err, err_len, r, "fsync of %s failed", s->dir);
                goto fail;
        }
        *ret = s;
        return 0;
fail:
        wrk_sink2pc_destroy(s);
        return r;
}

int wrk_sink2pc_write(struct wrk_sink2pc *s, const void *data, size_t len, char *err,
                      size_t err_len) {
        if (len == 0)
                return 0;
        if (s->fd < 0) {
                char p[SINK_PATH_MAX + WRK_SINK_NAME_MAX];
                s->cur_seq = s->next_seq++;
                s->cur_bytes = 0;
                int r = path_of(s, p, sizeof(p), 1, s->subtask, s->cur_seq);
                if (r < 0)
                        return err_set(err, err_len, r, "sink part name too long");
                s->fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (s->fd < 0)
                        return err_set(err, err_len, -errno, "cannot create %s: %s", p,
                                       strerror(errno));
        }
        int wr = fs_write_full(s->fd, data, len);
        if (wr < 0)
                return err_set(err, err_len, wr, "write to a part file in %s: %s", s->dir,
                               strerror(-wr));
        s->cur_bytes += len;
        if (s->part_size && s->cur_bytes >= s->part_size)
                return close_inprogress(s, err, err_len);
        return 0;
}

int wrk_sink2pc_barrier(struct wrk_sink2pc *s, uint64_t checkpoint_id,
                        struct wrk_sink_file **ret_files, size_t *ret_n,
                        uint64_t *ret_next_seq, char *err, size_t err_len) {
        int r = close_inprogress(s, err, err_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_pending; i++)
                if (s->pending[i].checkpoint_id == 0)
                        s->pending[i].checkpoint_id = checkpoint_id;
        if (s->n_pending) {
                r = fs_fsync_dir(s->dir);
                if (r < 0)
                        return err_set(err, err_len, r, "fsync of %s failed", s->dir);
        }
        struct wrk_sink_file *copy = NULL;
        if (s->n_pending) {
                copy = malloc(s->n_pending * sizeof(*copy));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, s->pending, s->n_pending * sizeof(*copy));
        }
        *ret_files = copy;
        *ret_n = s->n_pending;
        *ret_next_seq = s->next_seq;
        return 0;
}

static int commit_where(struct wrk_sink2pc *s, bool all, uint64_t checkpoint_id,
                        size_t *ret_committed, char *err, size_t err_len) {
        size_t kept = 0, done = 0;
        int r = 0;
        for (size_t i = 0; i < s->n_pending; i++) {
                struct wrk_sink_file f = s->pending[i];
                bool go = all || (f.checkpoint_id != 0 && f.checkpoint_id <= checkpoint_id);
                if (go && r == 0) {
                        r = commit_one(s, f.subtask, f.seq, err, err_len);
                        if (r == 0) {
                                done++;
                                continue;
                        }
                }
                s->pending[kept++] = f;
        }
        s->n_pending = kept;
        if (done) {
                int r2 = fs_fsync_dir(s->dir);
                if (r == 0 && r2 < 0)
                        r = err_set(err, err_len, r2, "fsync of %s failed", s->dir);
        }
        if (ret_committed)
                *ret_committed = done;
        return r;
}

int wrk_sink2pc_commit(struct wrk_sink2pc *s, uint64_t checkpoint_id, size_t *ret_committed,
                       char *err, size_t err_len) {
        return commit_where(s, false, checkpoint_id, ret_committed, err, err_len);
}

int wrk_sink2pc_end(struct wrk_sink2pc *s, char *err, size_t err_len) {
        int r = close_inprogress(s, err, err_len);
        if (r < 0)
                return r;
        return commit_where(s, true, 0, NULL, err, err_len);
}

uint64_t wrk_sink2pc_next_seq(const struct wrk_sink2pc *s) {
        return s->next_seq;
}

void wrk_sink2pc_destroy(struct wrk_sink2pc *s) {
        if (!s)
                return;
        if (s->fd >= 0)
                close(s->fd);
        free(s->pending);
        free(s);
}
