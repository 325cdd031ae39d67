/* UDF libraries shipped with jobs: upload checks, content-addressed storage, the ABI
 * probe process and the resolution of a submitted job's artifact ids (artifacts.h). */
#include "coordinator/artifacts.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crc32c.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/jobgraph.h"
#include "common/log.h"
#include "common/storage.h"
#include "coordinator/bgwork.h"
#include "coordinator/coord_internal.h"
#include "worker/udf.h"

extern char **environ;

#define PROBE_OUTPUT_MAX 1024

struct upload {
        struct coord_bg_task bg;
        struct coord *c;
        coord_artifact_done_fn done;
        void *arg;
        char *data;
        size_t len;
        char name[COORD_ARTIFACT_NAME_MAX + 1];
        char dir[4096];          /* <storage>/<cluster>/artifacts */
        /* results */
        int r;
        char id[COORD_ARTIFACT_ID_MAX + 1];
        char path[4096 + COORD_ARTIFACT_ID_MAX + 2];
        char msg[1024];
};

static bool name_char_ok(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-' || ch == '+';
}

static bool name_ok(const char *s, size_t n) {
        if (n == 0 || n > COORD_ARTIFACT_NAME_MAX || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!name_char_ok(s[i]))
                        return false;
        return true;
}

static bool id_ok(const char *s) {
        size_t n = strlen(s);
        if (n < 10 || s[8] != '_')
                return false;
        for (size_t i = 0; i < 8; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return name_ok(s + 9, n - 9);
}

/* <storage>/<cluster>/artifacts into buf; 0 or -EINVAL with err. */
static int artifacts_dir(struct coord *c, char *buf, size_t len, char *err, size_t err_len) {
        const char *uri = cfg_string(c->cfg, CFG_HA_STORAGE_DIR);
        char root[4096], why[256];
        if (!uri[0]) {
                snprintf(err, err_len, "high-availability.storageDir is not set: artifacts are "
                         "stored there");
                return -EINVAL;
        }
        if (storage_uri_to_path(uri, root, sizeof(root), why, sizeof(why)) < 0) {
                snprintf(err, err_len, "high-availability.storageDir: %s", why);
                return -EINVAL;
        }
        int n = snprintf(buf, len, "%s/%s/artifacts", root, c->cluster_id);
        if (n < 0 || (size_t)n >= len) {
                snprintf(err, err_len, "high-availability.storageDir: path too long");
                return -EINVAL;
        }
        return 0;
}

/* A 64-bit little/big-endian ELF shared object of this machine's class. */
static int check_elf(const char *name, const char *data, size_t len, char *err, size_t err_len) {
        if (len < sizeof(Elf64_Ehdr) || memcmp(data, ELFMAG, SELFMAG) != 0) {
                snprintf(err, err_len, "artifact %s: not an ELF shared library (the body's first "
                         "bytes are not \\x7fELF)", name);
                return -EINVAL;
        }
        if ((unsigned char)data[EI_CLASS] != ELFCLASS64) {
                snprintf(err, err_len, "artifact %s: not a 64-bit ELF file (ELF class %u)", name,
                         (unsigned)(unsigned char)data[EI_CLASS]);
                return -EINVAL;
        }
        Elf64_Ehdr h;
        memcpy(&h, data, sizeof(h));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        bool native = data[EI_DATA] == ELFDATA2LSB;
#else
        bool native = data[EI_DATA] == ELFDATA2MSB;
#endif
        if (!native) {
                snprintf(err, err_len, "artifact %s: ELF file of another byte order", name);
                return -EINVAL;
        }
        if (h.e_type != ET_DYN) {
                snprintf(err, err_len, "artifact %s: ELF file of type %u, not a shared library "
                         "(ET_DYN: build it with -shared -fPIC)", name, (unsigned)h.e_type);
                return -EINVAL;
        }
        return 0;
}

/* Runs the probe on path (file-work thread). 0 with *ret_version, or -EINVAL with msg. */
static int probe(const char *name, const char *path, uint32_t *ret_version, char *msg,
                 size_t msg_len) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0) {
                int r = -errno;
                snprintf(msg, msg_len, "artifact %s: cannot start the ABI probe: %s", name,
                         err_str(r));
                return r;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
        char arg0[] = "flinc-coordinator", arg1[] = COORD_ARTIFACT_PROBE_ARG;
        char *argv[] = {arg0, arg1, (char *)path, NULL};
        pid_t pid;
        int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        if (e != 0) {
                close(fds[0]);
                snprintf(msg, msg_len, "artifact %s: cannot start the ABI probe: %s", name,
                         strerror(e));
                return -e;
        }
        char out[PROBE_OUTPUT_MAX + 1];
        size_t n = 0;
        bool timed_out = false;
        uint64_t deadline = clock_mono_ms() + COORD_ARTIFACT_PROBE_TIMEOUT_MS;
        for (;;) {
                uint64_t now = clock_mono_ms();
                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                struct pollfd p = {.fd = fds[0], .events = POLLIN};
                int pr = poll(&p, 1, (int)(deadline - now));
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr <= 0)
                        continue;
                char buf[256];
                ssize_t got = read(fds[0], buf, sizeof(buf));
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        break;
                size_t take = (size_t)got < PROBE_OUTPUT_MAX - n ? (size_t)got : PROBE_OUTPUT_MAX - n;
                memcpy(out + n, buf, take);
                n += take;
        }
        close(fds[0]);
        out[n] = '\0';
        if (timed_out)
                kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (timed_out) {
                snprintf(msg, msg_len, "artifact %s: loading it and calling %s() took over %d ms",
                         name, FLINC_UDF_ABI_SYMBOL, COORD_ARTIFACT_PROBE_TIMEOUT_MS);
                return -EINVAL;
        }
        out[strcspn(out, "\n")] = '\0';
        unsigned long v;
        char *end;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(out, "abi ", 4) == 0 &&
            (v = strtoul(out + 4, &end, 10), *end == '\0') && v <= UINT32_MAX) {
                *ret_version = (uint32_t)v;
                return 0;
        }
        if (strncmp(out, "error ", 6) == 0)
                snprintf(msg, msg_len, "artifact %s: %.700s", name, out + 6);
        else if (WIFSIGNALED(status))
                snprintf(msg, msg_len, "artifact %s: loading it and calling %s() killed the "
                         "probe with signal %d", name, FLINC_UDF_ABI_SYMBOL, WTERMSIG(status));
        else
                snprintf(msg, msg_len, "artifact %s: the ABI probe failed (exit %d): %.200s",
                         name, WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
        return -EINVAL;
}

static void upload_work(struct coord_bg_task *t) {
        struct upload *u = (struct upload *)t;
        static atomic_uint seq;
        uint32_t crc = crc32c(u->data, u->len);
        snprintf(u->id, sizeof(u->id), "%08" PRIx32 "_%s", crc, u->name);
        snprintf(u->path, sizeof(u->path), "%s/%s", u->dir, u->id);
        char tmp[sizeof(u->path) + 64];
        snprintf(tmp, sizeof(tmp), "%s/.incoming-%d-%u-%s", u->dir, (int)getpid(),
                 atomic_fetch_add(&seq, 1u), u->id);
        int r = fs_mkdir_p(u->dir, 0755);
        if (r == 0)
                r = fs_write_atomic(tmp, u->data, u->len);
        if (r < 0) {
                snprintf(u->msg, sizeof(u->msg), "artifact %s: cannot write %.600s: %s", u->name,
                         tmp, err_str(r));
                u->r = r;
                return;
        }
        uint32_t version = 0;
        r = probe(u->name, tmp, &version, u->msg, sizeof(u->msg));
        if (r == 0 && version != FLINC_UDF_ABI_VERSION) {
                snprintf(u->msg, sizeof(u->msg), "artifact %s: UDF ABI version %" PRIu32 ", this "
                         "coordinator speaks %u", u->name, version, FLINC_UDF_ABI_VERSION);
                r = -EINVAL;
        }
        if (r == 0 && rename(tmp, u->path) < 0) {
                r = -errno;
                snprintf(u->msg, sizeof(u->msg), "artifact %s: cannot rename into %.600s: %s",
                         u->name, u->path, err_str(r));
        }
        if (r < 0) {
                unlink(tmp);
                u->r = r;
                return;
        }
        fs_fsync_dir(u->dir);
        u->r = 0;
}

static void upload_done(struct coord_bg_task *t) {
        struct upload *u = (struct upload *)t;
        if (u->r == 0)
                log_event("+artifact-stored", "id=%s size=%zu path=%s", u->id, u->len, u->path);
        else
                log_event_warn("-artifact-refused", "name=%s size=%zu reason=%s", u->name, u->len,
                               u->msg);
        u->done(u->c, u->r, u->id, u->path, (uint64_t)u->len, u->msg, u->arg);
        free(u->data);
        free(u);
}

void coord_artifact_upload(struct coord *c, const char *name, char *data, size_t len,
                           coord_artifact_done_fn done, void *arg) {
        char msg[1024];
        char dir[4096];
        int r = -EINVAL;
        size_t nl = name ? strlen(name) : 0;
        if (!name || !name_ok(name, nl)) {
                snprintf(msg, sizeof(msg), "name: '%.200s' is not a library file name (1..%d bytes "
                         "of A-Z a-z 0-9 . _ + -, not starting with '.'); give it as "
                         "?name=libudf.so", name ? name : "", COORD_ARTIFACT_NAME_MAX);
                goto refuse;
        }
        if (len == 0) {
                snprintf(msg, sizeof(msg), "artifact %s: the request body is empty (send the "
                         "library's bytes)", name);
                goto refuse;
        }
        if ((r = check_elf(name, data, len, msg, sizeof(msg))) < 0 ||
            (r = artifacts_dir(c, dir, sizeof(dir), msg, sizeof(msg))) < 0)
                goto refuse;
        if ((r = coord_bg_start(c->base)) < 0) {
                snprintf(msg, sizeof(msg), "cannot start the file-work thread: %s", err_str(r));
                goto refuse;
        }
        struct upload *u = calloc(1, sizeof(*u));
        if (!u) {
                r = -ENOMEM;
                snprintf(msg, sizeof(msg), "out of memory");
                goto refuse;
        }
        u->bg.work = upload_work;
        u->bg.done = upload_done;
        u->c = c;
        u->done = done;
        u->arg = arg;
        u->data = data;
        u->len = len;
        memcpy(u->name, name, nl + 1);
        snprintf(u->dir, sizeof(u->dir), "%s", dir);
        coord_bg_submit(&u->bg);
        return;
refuse:
        log_event_warn("-artifact-refused", "name=%.200s size=%zu reason=%s", name ? name : "",
                       len, msg);
        free(data);
        done(c, r, NULL, NULL, 0, msg, arg);
}

int coord_artifacts_resolve(struct coord *c, struct job_graph *g, char *err, size_t err_len) {
        char dir[4096];
        for (size_t i = 0; i < g->n_artifacts; i++) {
                const char *id = g->artifacts[i];
                if (!id_ok(id)) {
                        snprintf(err, err_len, "artifacts[%zu]: '%.200s' is not the id of an "
                                 "uploaded artifact (<crc32c>_<file name>, as POST "
                                 "/artifacts/upload answers); the coordinator does not read "
                                 "paths of its host", i, id);
                        return -EINVAL;
                }
                char why[512];
                if (artifacts_dir(c, dir, sizeof(dir), why, sizeof(why)) < 0) {
                        snprintf(err, err_len, "artifacts[%zu]: %s", i, why);
                        return -EINVAL;
                }
                char uri[sizeof(dir) + COORD_ARTIFACT_ID_MAX + 16];
                snprintf(uri, sizeof(uri), "file://%s/%s", dir, id);
                struct stat st;
                if (stat(uri + 7, &st) < 0 || !S_ISREG(st.st_mode)) {
                        snprintf(err, err_len, "artifacts[%zu]: artifact '%s' is not uploaded (no "
                                 "file %s); upload it with POST /artifacts/upload first", i, id,
                                 uri + 7);
                        return -EINVAL;
                }
                char *dup = strdup(uri);
                if (!dup)
                        return -ENOMEM;
                free(g->artifacts[i]);
                g->artifacts[i] = dup;
        }
        return 0;
}

struct listed {
        char id[COORD_ARTIFACT_ID_MAX + 1];
        uint64_t size;
        int64_t mtime_ms;
};

static int listed_newest_first(const void *a, const void *b) {
        const struct listed *x = a, *y = b;
        if (x->mtime_ms != y->mtime_ms)
                return x->mtime_ms > y->mtime_ms ? -1 : 1;
        return strcmp(x->id, y->id);
}

int coord_artifacts_list(struct coord *c, struct json_writer *w, char *err, size_t err_len) {
        char dir[4096];
        int r = artifacts_dir(c, dir, sizeof(dir), err, err_len);
        if (r < 0)
                return r;
        struct listed *v = NULL;
        size_t n = 0, cap = 0;
        DIR *d = opendir(dir);
        if (!d && errno != ENOENT) {
                r = -errno;
                snprintf(err, err_len, "%s: %s", dir, strerror(-r));
                return r;
        }
        struct dirent *e;
        while (d && (e = readdir(d))) {
                if (!id_ok(e->d_name) || strlen(e->d_name) > COORD_ARTIFACT_ID_MAX)
                        continue; /* ., .., .incoming-* and anything not ours */
                char path[sizeof(dir) + 256];
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                struct stat st;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? 2 * cap : 16;
                        struct listed *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv) {
                                free(v);
                                closedir(d);
                                snprintf(err, err_len, "out of memory");
                                return -ENOMEM;
                        }
                        v = nv;
                        cap = ncap;
                }
                size_t idlen = strlen(e->d_name); /* id_ok: at most COORD_ARTIFACT_ID_MAX */
                memcpy(v[n].id, e->d_name, idlen + 1);
                v[n].size = (uint64_t)st.st_size;
                v[n].mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
                n++;
        }
        if (d)
                closedir(d);
        if (n > 1)
                qsort(v, n, sizeof(*v), listed_newest_first);
        json_begin_object(w);
        json_key(w, "files");
        json_begin_array(w);
        for (size_t i = 0; i < n; i++) {
                json_begin_object(w);
                json_kv_string(w, "id", v[i].id);
                json_kv_string(w, "name", v[i].id + 9);
                json_kv_uint(w, "size", v[i].size);
                json_kv_int(w, "uploaded", v[i].mtime_ms);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
        free(v);
        return 0;
}

/* Whether a stored job graph's artifact (a file:// URI after coord_artifacts_resolve)
 * is the artifact id. */
static bool names_artifact(const char *uri, const char *id) {
        const char *slash = strrchr(uri, '/');
        return slash && strcmp(slash + 1, id) == 0;
}

int coord_artifact_delete(struct coord *c, const char *id, char *err, size_t err_len) {
        if (!id_ok(id)) {
                snprintf(err, err_len, "'%.200s' is not an artifact id (<crc32c>_<file name>, as "
                         "POST /artifacts/upload answers)", id);
                return -EINVAL;
        }
        for (struct coord_job *j = c->jobs; j; j = j->next) {
                if (!j->g || coord_job_state_is_terminal(j->state))
                        continue;
                for (size_t i = 0; i < j->g->n_artifacts; i++)
                        if (names_artifact(j->g->artifacts[i], id)) {
                                snprintf(err, err_len, "artifact %s is used by job %s (%s), "
                                         "which has not reached a terminal state", id, j->id,
                                         coord_job_state_name(j->state));
                                return -EBUSY;
                        }
        }
        char dir[4096];
        int r = artifacts_dir(c, dir, sizeof(dir), err, err_len);
        if (r < 0)
                return r;
        char path[sizeof(dir) + COORD_ARTIFACT_ID_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, id);
        if (unlink(path) < 0) {
                r = -errno;
                if (r == -ENOENT)
                        snprintf(err, err_len, "artifact %s is not uploaded", id);
                else
                        snprintf(err, err_len, "%s: %s", path, strerror(-r));
                return r;
        }
        log_info("+artifact-deleted id=%s", id);
        return 0;
}

int coord_artifact_probe_main(const char *path) {
        /* Our own code until dlopen: limits first, so the library runs under them. */
        struct rlimit cpu = {.rlim_cur = COORD_ARTIFACT_PROBE_TIMEOUT_MS / 1000,
                             .rlim_max = COORD_ARTIFACT_PROBE_TIMEOUT_MS / 1000 + 1};
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CPU, &cpu);
        setrlimit(RLIMIT_CORE, &core);
        void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
        if (!h) {
                const char *why = dlerror();
                size_t pl = strlen(path);
                if (why && strncmp(why, path, pl) == 0 && strncmp(why + pl, ": ", 2) == 0)
                        why += pl + 2; /* the probe's file name means nothing to the user */
                printf("error cannot load: %s\n", why ? why : "?");
                return 1;
        }
        uint32_t (*ver)(void) = (uint32_t (*)(void))(uintptr_t)dlsym(h, FLINC_UDF_ABI_SYMBOL);
        if (!ver) {
                printf("error no %s(): not a flinc UDF library\n", FLINC_UDF_ABI_SYMBOL);
                return 1;
        }
        printf("abi %" PRIu32 "\n", ver());
        fflush(stdout);
        _exit(0); /* no destructors of the library */
}
