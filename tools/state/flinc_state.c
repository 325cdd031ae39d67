/* flinc-state: offline inspection of <state.checkpoints.dir>/<job>: list the retained
 * checkpoints, show one (operators, subtasks, key-group ranges, files), verify every file
 * it references (size + CRC32C from the state handles), dump the decoded keyed state of
 * one operator, diff two checkpoints, restore one subtask's RocksDB for other tools.
 *
 * It never writes into the checkpoint directory: keyed state is restored with
 * sb_backend_restore() into a private temp dir outside it (the restore copies the files
 * in, so the checkpoint's files are only read), and that dir is removed on exit. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "common/crc32c.h"
#include "common/envelope.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/msg.h"
#include "statebackend/backend.h"
#include "statebackend/handle.h"
#include "statebackend/restore.h"
#include "worker/substate.h"

#define META_KIND "flinc.chk.metadata"
#define META_VERSION 1
#define META_MAX_BYTES (256u << 20)
#define PATH_CAP 4096

static const char usage_text[] =
        "usage: flinc-state list <job checkpoint dir>\n"
        "       flinc-state show <chk-dir> | <job dir> --checkpoint N\n"
        "       flinc-state verify <chk-dir>\n"
        "       flinc-state dump <chk-dir> --operator ID [--state NAME] [--key K] [--json]\n"
        "       flinc-state diff <chk-dir-a> <chk-dir-b>\n"
        "       flinc-state restore <chk-dir> --operator ID --subtask N --to DIR\n"
        "\n"
        "Reads <state.checkpoints.dir>/<job>/chk-<n>/ offline and never writes into it.\n"
        "Exit: 0 ok, 1 failure (verify: a file missing or corrupt), 2 bad arguments.\n";

static int usage(const char *why) {
        if (why)
                fprintf(stderr, "flinc-state: %s\n", why);
        fputs(usage_text, stderr);
        return 2;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("flinc-state: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* ---- _metadata ------------------------------------------------------------------- */

struct keyed {
        char op[JOB_ID_MAX + 1];
        uint32_t subtask;
        struct sb_handle *h;
        const void *raw;       /* borrowed from the state's substate */
        size_t raw_len;
};

struct ckpt_state {
        uint32_t vertex;
        char vertex_id[JOB_ID_MAX + 1];
        uint32_t parallelism;
        uint32_t subtask;
        uint64_t state_bytes;
        uint64_t incremental_bytes;
        struct wrk_substate *sub;
};

struct ckpt {
        char dir[PATH_CAP];      /* chk-<n> dir */
        char job_dir[PATH_CAP];  /* what handle paths resolve against */
        char job[80];
        uint64_t id;
        bool savepoint;
        uint64_t attempt;
        int64_t trigger_ms;
        int64_t complete_ms;
        uint64_t max_parallelism;
        uint64_t state_bytes;
        uint64_t incremental_bytes;
        struct ckpt_state *states;
        size_t n_states;
        struct keyed *keyed;
        size_t n_keyed;
};

static void ckpt_finish(struct ckpt *c) {
        for (size_t i = 0; i < c->n_states; i++)
                wrk_substate_free(c->states[i].sub);
        free(c->states);
        for (size_t i = 0; i < c->n_keyed; i++)
                sb_handle_free(c->keyed[i].h);
        free(c->keyed);
        memset(c, 0, sizeof(*c));
}

static bool is_dir(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool parse_chk_name(const char *name, uint64_t *ret) {
        if (strncmp(name, "chk-", 4) != 0 || !name[4])
                return false;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(name + 4, &end, 10);
        if (errno || *end || name[4] < '0' || name[4] > '9')
                return false;
        *ret = v;
        return true;
}

/* Loads <dir>/_metadata (dir may also name the _metadata file itself). Prints the reason
 * and returns -1 on failure. */
static int ckpt_load(const char *arg, struct ckpt *ret) {
        struct ckpt c = {0};
        char meta[PATH_CAP + 16];
        size_t al = strlen(arg);
        while (al > 1 && arg[al - 1] == '/')
                al--;
        if (al >= PATH_CAP) {
                fail("%s: path too long", arg);
                return -1;
        }
        memcpy(c.dir, arg, al);
        c.dir[al] = 0;
        if (al >= 10 && strcmp(c.dir + al - 10, "/_metadata") == 0)
                c.dir[al - 10] = 0;
        if (!is_dir(c.dir)) {
                fail("%s: not a checkpoint directory (no such directory)", c.dir);
                return -1;
        }
        snprintf(meta, sizeof(meta), "%s/_metadata", c.dir);
        if (access(meta, F_OK) != 0) {
                fail("%s: not a checkpoint directory (no _metadata)", c.dir);
                return -1;
        }
        /* handle paths are relative to the job dir: the parent of chk-<n>, or a
         * savepoint dir itself (it holds shared/ and chk-<n>/ beside _metadata) */
        char tmp[PATH_CAP];
        snprintf(tmp, sizeof(tmp), "%s", c.dir);
        char *slash = strrchr(tmp, '/');
        const char *base = slash ? slash + 1 : tmp;
        uint64_t dummy;
        if (parse_chk_name(base, &dummy)) {
                if (slash == tmp)
                        snprintf(c.job_dir, sizeof(c.job_dir), "/");
                else if (slash) {
                        *slash = 0;
                        snprintf(c.job_dir, sizeof(c.job_dir), "%s", tmp);
                } else
                        snprintf(c.job_dir, sizeof(c.job_dir), ".");
        } else
                snprintf(c.job_dir, sizeof(c.job_dir), "%s", c.dir);

        char *data = NULL, *body = NULL;
        size_t len = 0, blen = 0;
        uint32_t v;
        char why[256] = "";
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        int rc = -1;
        int r = fs_read_all(meta, META_MAX_BYTES, &data, &len);
        if (r < 0) {
                fail("%s: cannot read: %s", meta, strerror(-r));
                goto out;
        }
        if (len == 0) {
                fail("%s: truncated _metadata (empty file)", meta);
                goto out;
        }
        {
                /* a file cut short fails the bounded walk with one of these reasons */
                uint64_t budget = 1u << 24;
                size_t used;
                const char *pwhy = NULL;
                if (msg_precheck(data, len, MSG_MAX_DEPTH, &budget, &used, &pwhy) < 0 && pwhy &&
                    (strcmp(pwhy, "truncated msgpack") == 0 ||
                     strcmp(pwhy, "msgpack container larger than the frame") == 0)) {
                        fail("%s: truncated _metadata (%zu bytes; %s)", meta, len, pwhy);
                        goto out;
                }
        }
        r = envelope_unwrap(data, len, META_KIND, META_VERSION, &body, &blen, &v, why,
                            sizeof(why));
        if (r < 0) {
                fail("%s: corrupt _metadata: %s", meta, why);
                goto out;
        }
        const char *pwhy = NULL;
        r = msg_unpack_bounded(body, blen, MSG_MAX_DEPTH, 1u << 24, &u, &pwhy);
        if (r < 0 || u.data.type != MSGPACK_OBJECT_MAP) {
                fail("%s: corrupt _metadata: body: %s", meta, pwhy ? pwhy : "not a map");
                goto out;
        }
        const msgpack_object *map = &u.data, *states;
        const char *field = NULL;
        if (msg_get_strbuf(map, "job", c.job, sizeof(c.job)) < 0)
                field = "job";
        else if (msg_get_u64(map, "checkpoint", &c.id) < 0)
                field = "checkpoint";
        else if (msg_get_bool(map, "savepoint", &c.savepoint) < 0)
                field = "savepoint";
        else if (msg_get_i64(map, "trigger_ms", &c.trigger_ms) < 0)
                field = "trigger_ms";
        else if (msg_get_u64(map, "state_bytes", &c.state_bytes) < 0)
                field = "state_bytes";
        else if (msg_get_array(map, "states", &states) < 0)
                field = "states";
        if (field) {
                fail("%s: corrupt _metadata: field %s missing or invalid", meta, field);
                goto out;
        }
        (void)msg_get_u64(map, "attempt", &c.attempt);
        (void)msg_get_i64(map, "complete_ms", &c.complete_ms);
        (void)msg_get_u64(map, "max_parallelism", &c.max_parallelism);
        (void)msg_get_u64(map, "incremental_bytes", &c.incremental_bytes);
        size_t n = states->via.array.size;
        c.states = calloc(n ? n : 1, sizeof(*c.states));
        if (!c.states) {
                fail("out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *s = &states->via.array.ptr[i];
                struct ckpt_state *cs = &c.states[i];
                const void *st;
                size_t sl;
                field = NULL;
                if (s->type != MSGPACK_OBJECT_MAP)
                        field = "";
                else if (msg_get_u32(s, "vertex", &cs->vertex) < 0)
                        field = ".vertex";
                else if (msg_get_strbuf(s, "vertex_id", cs->vertex_id, sizeof(cs->vertex_id)) < 0)
                        field = ".vertex_id";
                else if (msg_get_u32(s, "parallelism", &cs->parallelism) < 0)
                        field = ".parallelism";
                else if (msg_get_u32(s, "subtask", &cs->subtask) < 0)
                        field = ".subtask";
                else if (msg_get_bin(s, "state", &st, &sl) < 0)
                        field = ".state";
                if (field) {
                        fail("%s: corrupt _metadata: field states[%zu]%s missing or invalid",
                             meta, i, field);
                        goto out;
                }
                (void)msg_get_u64(s, "state_bytes", &cs->state_bytes);
                (void)msg_get_u64(s, "incremental_bytes", &cs->incremental_bytes);
                char serr[256] = "";
                r = wrk_substate_decode(st, sl, &cs->sub, serr, sizeof(serr));
                c.n_states = i + 1;
                if (r < 0) {
                        fail("%s: corrupt _metadata: states[%zu].state: %s", meta, i,
                             serr[0] ? serr : strerror(-r));
                        goto out;
                }
        }
        for (size_t i = 0; i < c.n_states; i++)
                for (size_t j = 0; j < c.states[i].sub->n_ops; j++)
                        c.n_keyed += c.states[i].sub->ops[j].keyed != NULL;
        c.keyed = calloc(c.n_keyed ? c.n_keyed : 1, sizeof(*c.keyed));
        if (!c.keyed) {
                fail("out of memory");
                c.n_keyed = 0;
                goto out;
        }
        size_t k = 0;
        for (size_t i = 0; i < c.n_states; i++) {
                const struct wrk_substate *sub = c.states[i].sub;
                for (size_t j = 0; j < sub->n_ops; j++) {
                        const struct wrk_substate_op *o = &sub->ops[j];
                        if (!o->keyed)
                                continue;
                        struct keyed *kd = &c.keyed[k++];
                        snprintf(kd->op, sizeof(kd->op), "%s", o->op);
                        kd->subtask = c.states[i].subtask;
                        kd->raw = o->keyed;
                        kd->raw_len = o->keyed_len;
                        char herr[256] = "";
                        r = sb_handle_parse(o->keyed, o->keyed_len, &kd->h, herr, sizeof(herr));
                        if (r < 0) {
                                fail("%s: corrupt _metadata: states[%zu] op %s: state handle: %s",
                                     meta, i, o->op, herr[0] ? herr : strerror(-r));
                                goto out;
                        }
                }
        }
        *ret = c;
        memset(&c, 0, sizeof(c));
        rc = 0;
out:
        ckpt_finish(&c);
        msgpack_unpacked_destroy(&u);
        free(body);
        free(data);
        return rc;
}

static void fmt_time(int64_t ms, char *buf, size_t len) {
        if (ms <= 0) {
                snprintf(buf, len, "-");
                return;
        }
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* ---- list ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static int cmd_list(int argc, char **argv) {
        if (argc != 2)
                return usage("list takes one job checkpoint directory");
        const char *dir = argv[1];
        DIR *d = opendir(dir);
        if (!d) {
                fail("%s: not a job checkpoint directory (%s)", dir, strerror(errno));
                return 1;
        }
        uint64_t *ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                uint64_t id;
                if (!parse_chk_name(e->d_name, &id))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        uint64_t *p = realloc(ids, cap * sizeof(*ids));
                        if (!p) {
                                closedir(d);
                                free(ids);
                                fail("out of memory");
                                return 1;
                        }
                        ids = p;
                }
                ids[n++] = id;
        }
        closedir(d);
        if (n == 0) {
                char meta[PATH_CAP + 16];
                snprintf(meta, sizeof(meta), "%s/_metadata", dir);
                free(ids);
                if (access(meta, F_OK) == 0)
                        fail("%s: a checkpoint directory, not a job checkpoint directory: use "
                             "show", dir);
                else
                        fail("%s: not a job checkpoint directory (no chk-<n>)", dir);
                return 1;
        }
        qsort(ids, n, sizeof(*ids), cmp_u64);
        int rc = 0;
        printf("%-8s %-24s %-9s %12s %12s %8s\n", "ID", "COMPLETED", "TYPE", "SIZE", "ADDED",
               "SUBTASKS");
        for (size_t i = 0; i < n; i++) {
                char p[PATH_CAP + 32];
                snprintf(p, sizeof(p), "%s/chk-%" PRIu64, dir, ids[i]);
                char meta[PATH_CAP + 48];
                snprintf(meta, sizeof(meta), "%s/_metadata", p);
                if (access(meta, F_OK) != 0) {
                        printf("%-8" PRIu64 " %-24s %-9s %12s %12s %8s\n", ids[i], "-",
                               "pending", "-", "-", "-");
                        continue;
                }
                struct ckpt c;
                if (ckpt_load(p, &c) < 0) {
                        rc = 1;
                        continue;
                }
                char t[40];
                fmt_time(c.complete_ms ? c.complete_ms : c.trigger_ms, t, sizeof(t));
                printf("%-8" PRIu64 " %-24s %-9s %12" PRIu64 " %12" PRIu64 " %8zu\n", c.id, t,
                       c.savepoint ? "savepoint" : "checkpoint", c.state_bytes,
                       c.incremental_bytes, c.n_states);
                ckpt_finish(&c);
        }
        free(ids);
        return rc;
}

/* ---- show ------------------------------------------------------------------------ */

static int cmd_show(int argc, char **argv) {
        static const struct option opts[] = {
                {"checkpoint", required_argument, NULL, 'c'},
                {NULL, 0, NULL, 0},
        };
        const char *cnum = NULL;
        int o;
        optind = 1;
        opterr = 0;
        while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
                if (o == 'c')
                        cnum = optarg;
                else
                        return usage("show: unknown option");
        }
        if (argc - optind != 1)
                return usage("show takes one checkpoint directory");
        char path[PATH_CAP + 32];
        if (cnum) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(cnum, &end, 10);
                if (errno || *end || !*cnum || cnum[0] == '-')
                        return usage("--checkpoint takes a checkpoint id");
                snprintf(path, sizeof(path), "%s/chk-%llu", argv[optind], v);
        } else
                snprintf(path, sizeof(path), "%s", argv[optind]);
        struct ckpt c;
        if (ckpt_load(path, &c) < 0)
                return 1;
        char t1[40], t2[40];
        fmt_time(c.trigger_ms, t1, sizeof(t1));
        fmt_time(c.complete_ms, t2, sizeof(t2));
        printf("checkpoint %" PRIu64 " job %s%s attempt %" PRIu64 "\n", c.id, c.job,
               c.savepoint ? " (savepoint)" : "", c.attempt);
        printf("  triggered %s completed %s\n", t1, t2);
        printf("  max_parallelism %" PRIu64 " state_bytes %" PRIu64 " incremental_bytes %" PRIu64
               "\n", c.max_parallelism, c.state_bytes, c.incremental_bytes);
        for (size_t i = 0; i < c.n_states; i++) {
                const struct ckpt_state *s = &c.states[i];
                printf("vertex %" PRIu32 " (%s) subtask %" PRIu32 "/%" PRIu32 " state_bytes %" PRIu64
                       " incremental_bytes %" PRIu64 "\n", s->vertex, s->vertex_id, s->subtask,
                       s->parallelism, s->state_bytes, s->incremental_bytes);
                for (size_t j = 0; j < s->sub->n_ops; j++) {
                        const struct wrk_substate_op *op = &s->sub->ops[j];
                        printf("  operator %s\n", op->op);
                        if (op->has_gen)
                                printf("    generator positions: %zu\n", op->n_gen);
                        if (op->has_file)
                                printf("    file splits: %zu\n", op->n_file);
                        if (op->has_sink)
                                printf("    sink: next_seq %" PRIu64 " pending %zu\n",
                                       op->sink_next_seq, op->n_pending);
                        if (!op->keyed)
                                continue;
                        const struct sb_handle *h = NULL;
                        for (size_t k = 0; k < c.n_keyed; k++)
                                if (c.keyed[k].raw == op->keyed)
                                        h = c.keyed[k].h;
                        if (!h)
                                continue;
                        printf("    keyed: backend %s key groups [%" PRIu32 ", %" PRIu32
                               ") of %" PRIu32 "\n", h->backend_id, h->range.start, h->range.end,
                               h->max_parallelism);
                        for (size_t k = 0; k < h->n_states; k++)
                                printf("    state %s kind %s ttl_ms %" PRIu64 "\n",
                                       h->states[k].name, sb_state_kind_name(h->states[k].kind),
                                       h->states[k].ttl_ms);
                        for (size_t k = 0; k < h->n_shared; k++) {
                                char sp[64];
                                sb_handle_shared_path(&h->shared[k], sp, sizeof(sp));
                                printf("    shared %s local %s size %" PRIu64 " crc32c %08" PRIx32
                                       " %s\n", sp, h->shared[k].local, h->shared[k].size_bytes,
                                       h->shared[k].crc32c, h->shared[k].is_new ? "new" : "reused");
                        }
                        printf("    private %s size %" PRIu64 " crc32c %08" PRIx32 "\n",
                               h->private_path, h->private_size_bytes, h->private_crc32c);
                        for (size_t k = 0; k < h->n_members; k++)
                                printf("      member %s offset %" PRIu64 " size %" PRIu64
                                       " crc32c %08" PRIx32 "\n", h->members[k].name,
                                       h->members[k].offset, h->members[k].size_bytes,
                                       h->members[k].crc32c);
                }
        }
        ckpt_finish(&c);
        return 0;
}

/* ---- verify ---------------------------------------------------------------------- */

struct vfile {
        char rel[SB_HANDLE_PATH_MAX + 64];
        uint64_t size;
        uint32_t crc;
};

/* Every file the checkpoint references, once each (rel paths, sorted). */
static int collect_files(const struct ckpt *c, struct vfile **ret, size_t *ret_n) {
        size_t cap = 0;
        for (size_t i = 0; i < c->n_keyed; i++)
                cap += c->keyed[i].h->n_shared + 1;
        struct vfile *v = calloc(cap ? cap : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < c->n_keyed; i++) {
                const struct sb_handle *h = c->keyed[i].h;
                for (size_t k = 0; k < h->n_shared; k++) {
                        sb_handle_shared_path(&h->shared[k], v[n].rel, sizeof(v[n].rel));
                        v[n].size = h->shared[k].size_bytes;
                        v[n].crc = h->shared[k].crc32c;
                        n++;
                }
                snprintf(v[n].rel, sizeof(v[n].rel), "%s", h->private_path);
                v[n].size = h->private_size_bytes;
                v[n].crc = h->private_crc32c;
                n++;
        }
        qsort(v, n, sizeof(*v), (int (*)(const void *, const void *))strcmp);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
                if (m == 0 || strcmp(v[m - 1].rel, v[i].rel) != 0)
                        v[m++] = v[i];
        *ret = v;
        *ret_n = m;
        return 0;
}

static int cmd_verify(int argc, char **argv) {
        if (argc != 2)
                return usage("verify takes one checkpoint directory");
        struct ckpt c;
        if (ckpt_load(argv[1], &c) < 0)
                return 1;
        struct vfile *v;
        size_t n;
        if (collect_files(&c, &v, &n) < 0) {
                fail("out of memory");
                ckpt_finish(&c);
                return 1;
        }
        size_t bad = 0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
                char p[PATH_CAP * 2];
                snprintf(p, sizeof(p), "%s/%s", c.job_dir, v[i].rel);
                uint32_t crc;
                uint64_t size;
                int r = fs_crc32c_file(p, &crc, &size);
                if (r == -ENOENT) {
                        printf("MISSING %s\n", v[i].rel);
                        bad++;
                } else if (r < 0) {
                        printf("UNREADABLE %s: %s\n", v[i].rel, strerror(-r));
                        bad++;
                } else if (size != v[i].size) {
                        printf("CORRUPT %s: size %" PRIu64 ", expected %" PRIu64 "\n", v[i].rel,
                               size, v[i].size);
                        bad++;
                } else if (crc != v[i].crc) {
                        printf("CORRUPT %s: crc32c %08" PRIx32 ", expected %08" PRIx32 "\n",
                               v[i].rel, crc, v[i].crc);
                        bad++;
                } else
                        bytes += size;
        }
        if (bad)
                printf("FAILED checkpoint %" PRIu64 ": %zu of %zu files missing or corrupt\n", c.id,
                       bad, n);
        else
                printf("OK checkpoint %" PRIu64 ": %zu files, %" PRIu64 " bytes verified\n", c.id,
                       n, bytes);
        free(v);
        ckpt_finish(&c);
        return bad ? 1 : 0;
}

/* ---- restore into a private temp dir ---------------------------------------------- */

static int no_reduce(void *arg, const void *acc, size_t acc_len, const void *in, size_t in_len,
                     void *out, size_t out_cap, size_t *ret_len) {
        return -ENOTSUP; /* never called: the tool only reads */
}

static struct sb_env *g_env;
static char g_tmp[PATH_CAP];   /* the private temp root, removed at exit */
static unsigned g_seq;

static int tmp_root(const char *ckpt_dir) {
        if (g_tmp[0])
                return 0;
        const char *base = getenv("TMPDIR");
        if (!base || !*base)
                base = "/tmp";
        snprintf(g_tmp, sizeof(g_tmp), "%s/flinc-state-XXXXXX", base);
        if (!mkdtemp(g_tmp)) {
                int e = errno;
                fail("%s: cannot make a temp dir: %s", g_tmp, strerror(e));
                g_tmp[0] = 0;
                return -1;
        }
        /* refuse a temp dir inside the checkpoint dir: nothing may be written there */
        char a[PATH_MAX], b[PATH_MAX];
        if (realpath(g_tmp, a) && realpath(ckpt_dir, b)) {
                size_t bl = strlen(b);
                if (strncmp(a, b, bl) == 0 && (a[bl] == '/' || a[bl] == 0)) {
                        fail("temp dir %s is inside the checkpoint directory %s; set TMPDIR",
                             a, b);
                        (void)rmdir(g_tmp);
                        g_tmp[0] = 0;
                        return -1;
                }
        }
        return 0;
}

static void tmp_cleanup(void) {
        sb_env_destroy(g_env);
        g_env = NULL;
        if (g_tmp[0])
                (void)fs_rm_rf(g_tmp);
        g_tmp[0] = 0;
}

/* Restores one handle (its files copied and checked) into a fresh dir under the private
 * temp root and opens it; the caller destroys *ret, which deletes the copy. */
static int restore_handle(const struct ckpt *c, const struct keyed *kd, struct sb_backend **ret) {
        char err[512] = "";
        if (!g_env) {
                struct sb_env_config ecfg = {.memory_fixed_per_tm_bytes = 32ull << 20};
                if (sb_env_create(&ecfg, &g_env, err, sizeof(err)) < 0) {
                        fail("RocksDB environment: %s", err);
                        return -1;
                }
        }
        char dir[PATH_CAP + 32];
        if (tmp_root(c->job_dir) < 0)
                return -1;
        snprintf(dir, sizeof(dir), "%s/r%u", g_tmp, g_seq++);
        const struct sb_handle *h = kd->h;
        struct sb_state_desc *descs = calloc(h->n_states ? h->n_states : 1, sizeof(*descs));
        if (!descs) {
                fail("out of memory");
                return -1;
        }
        for (size_t i = 0; i < h->n_states; i++) {
                descs[i].name = h->states[i].name;
                descs[i].kind = h->states[i].kind;
                descs[i].ttl_ms = h->states[i].ttl_ms;
                if (descs[i].kind == SB_STATE_REDUCING || descs[i].kind == SB_STATE_AGGREGATING)
                        descs[i].reduce = no_reduce;
        }
        struct sb_backend_config cfg = {
                .local_dir = dir,
                .max_parallelism = h->max_parallelism,
                .range = h->range,
                .states = descs,
                .n_states = h->n_states,
        };
        struct sb_bytes hb = {.data = kd->raw, .len = kd->raw_len};
        int r = sb_backend_restore(g_env, &cfg, c->job_dir, &hb, 1, ret, err, sizeof(err));
        free(descs);
        if (r < 0) {
                fail("restore of operator %s subtask %" PRIu32 " from %s failed: %s", kd->op,
                     kd->subtask, c->dir, err[0] ? err : strerror(-r));
                return -1;
        }
        return 0;
}

/* ---- printing keys and values ----------------------------------------------------- */

static bool printable(const void *p, size_t n) {
        const unsigned char *s = p;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x21 || s[i] == 0x7f || s[i] == '\\')
                        return false;
        return true;
}

/* Writes bytes as text when printable without spaces, else with \xNN escapes. */
static void put_bytes(FILE *f, const void *p, size_t n) {
        const unsigned char *s = p;
        if (printable(p, n)) {
                fwrite(s, 1, n, f);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                if (s[i] < 0x21 || s[i] == 0x7f || s[i] == '\\')
                        fprintf(f, "\\x%02x", s[i]);
                else
                        fputc(s[i], f);
        }
}

/* Aggregate operators (worker/ops.c count/sum/min/max/reduce) store an int64 as 8
 * little-endian bytes; anything else is shown as bytes. */
static bool value_int(const void *p, size_t n, int64_t *ret) {
        if (n != 8)
                return false;
        const unsigned char *s = p;
        uint64_t u = 0;
        for (int j = 7; j >= 0; j--)
                u = (u << 8) | s[j];
        *ret = (int64_t)u;
        return true;
}

static void put_value(FILE *f, const void *p, size_t n) {
        int64_t v;
        if (value_int(p, n, &v))
                fprintf(f, "%" PRId64, v);
        else
                put_bytes(f, p, n);
}

/* ---- dump ------------------------------------------------------------------------ */

struct dump_ctx {
        const char *key;
        size_t key_len;
        bool json;
        bool with_state;    /* more than one state: prefix lines with its name */
        const char *state;
        uint32_t subtask;
        struct json_writer *w;
        uint64_t n;
};

static int dump_entry(void *arg, const struct sb_entry *e) {
        struct dump_ctx *d = arg;
        if (d->key && (e->key_len != d->key_len || memcmp(e->key, d->key, d->key_len) != 0))
                return 0;
        d->n++;
        if (d->json) {
                struct json_writer *w = d->w;
                json_begin_object(w);
                json_key(w, "state");
                json_string(w, d->state);
                json_key(w, "subtask");
                json_uint(w, d->subtask);
                json_key(w, "key_group");
                json_uint(w, e->key_group);
                json_key(w, "key");
                json_string_len(w, e->key, e->key_len);
                if (e->ns_len) {
                        json_key(w, "namespace");
                        json_string_len(w, e->ns, e->ns_len);
                }
                if (e->user_key) {
                        json_key(w, "user_key");
                        json_string_len(w, e->user_key, e->user_key_len);
                }
                int64_t v;
                json_key(w, "value");
                if (value_int(e->value, e->value_len, &v))
                        json_int(w, v);
                else
                        json_string_len(w, e->value, e->value_len);
                if (e->write_ms) {
                        json_key(w, "write_ms");
                        json_int(w, e->write_ms);
                }
                json_end_object(w);
                return json_writer_error(w);
        }
        if (d->with_state)
                printf("%s ", d->state);
        put_bytes(stdout, e->key, e->key_len);
        if (e->ns_len) {
                fputc(' ', stdout);
                put_bytes(stdout, e->ns, e->ns_len);
        }
        if (e->user_key) {
                fputc(' ', stdout);
                put_bytes(stdout, e->user_key, e->user_key_len);
        }
        fputc(' ', stdout);
        put_value(stdout, e->value, e->value_len);
        fputc('\n', stdout);
        return 0;
}

static void list_ops(const struct ckpt *c) {
        fprintf(stderr, "flinc-state: operators with keyed state in checkpoint %" PRIu64 ":",
                c->id);
        for (size_t i = 0; i < c->n_keyed; i++) {
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen |= strcmp(c->keyed[j].op, c->keyed[i].op) == 0;
                if (!seen)
                        fprintf(stderr, " %s", c->keyed[i].op);
        }
        fprintf(stderr, c->n_keyed ? "\n" : " none\n");
}

static int cmd_dump(int argc, char **argv) {
        static const struct option opts[] = {
                {"operator", required_argument, NULL, 'o'},
                {"state", required_argument, NULL, 's'},
                {"key", required_argument, NULL, 'k'},
                {"json", no_argument, NULL, 'j'},
                {NULL, 0, NULL, 0},
        };
        const char *op = NULL, *state = NULL, *key = NULL;
        bool json = false;
        int o;
        optind = 1;
        opterr = 0;
        while ((o = getopt_long(argc, argv, "o:s:k:j", opts, NULL)) != -1) {
                switch (o) {
                case 'o': op = optarg; break;
                case 's': state = optarg; break;
                case 'k': key = optarg; break;
                case 'j': json = true; break;
                default: return usage("dump: unknown option or missing value");
                }
        }
        if (argc - optind != 1)
                return usage("dump takes one checkpoint directory");
        if (!op)
                return usage("dump needs --operator ID");
        struct ckpt c;
        if (ckpt_load(argv[optind], &c) < 0)
                return 1;
        int rc = 1;
        struct json_writer w;
        json_writer_init(&w, 0);
        json_writer_set_pretty(&w, false);
        size_t found = 0;
        for (size_t i = 0; i < c.n_keyed; i++)
                found += strcmp(c.keyed[i].op, op) == 0;
        if (!found) {
                fail("operator %s has no keyed state in checkpoint %" PRIu64, op, c.id);
                list_ops(&c);
                goto out;
        }
        struct dump_ctx d = {.key = key, .key_len = key ? strlen(key) : 0, .json = json, .w = &w};
        if (json)
                json_begin_array(&w);
        bool state_seen = false;
        for (size_t i = 0; i < c.n_keyed; i++) {
                const struct keyed *kd = &c.keyed[i];
                if (strcmp(kd->op, op) != 0)
                        continue;
                struct sb_backend *b = NULL;
                if (restore_handle(&c, kd, &b) < 0)
                        goto out;
                d.with_state = !state && kd->h->n_states > 1;
                d.subtask = kd->subtask;
                for (size_t k = 0; k < kd->h->n_states; k++) {
                        const char *name = kd->h->states[k].name;
                        if (state && strcmp(state, name) != 0)
                                continue;
                        state_seen = true;
                        struct sb_state *st = sb_backend_state(b, name);
                        if (!st)
                                continue;
                        d.state = name;
                        int r = sb_state_scan(st, dump_entry, &d);
                        if (r < 0) {
                                fail("scan of state %s of operator %s subtask %" PRIu32
                                     " failed: %s", name, op, kd->subtask,
                                     json_writer_error(&w) ? strerror(-r)
                                                           : sb_backend_last_error(b));
                                sb_backend_destroy(b);
                                goto out;
                        }
                }
                sb_backend_destroy(b);
        }
        if (state && !state_seen) {
                fail("operator %s has no state %s in checkpoint %" PRIu64, op, state, c.id);
                goto out;
        }
        if (json) {
                json_end_array(&w);
                char *text;
                size_t tl;
                int r = json_writer_take(&w, &text, &tl);
                if (r < 0) {
                        fail("JSON output: %s", strerror(-r));
                        goto out;
                }
                fwrite(text, 1, tl, stdout);
                fputc('\n', stdout);
                free(text);
        }
        rc = 0;
out:
        json_writer_finish(&w);
        ckpt_finish(&c);
        return rc;
}

/* ---- restore (for RocksDB's own tools) -------------------------------------------- */

static int cmd_restore(int argc, char **argv) {
        static const struct option opts[] = {
                {"operator", required_argument, NULL, 'o'},
                {"subtask", required_argument, NULL, 's'},
                {"to", required_argument, NULL, 't'},
                {NULL, 0, NULL, 0},
        };
        const char *op = NULL, *sub = NULL, *to = NULL;
        int o;
        optind = 1;
        opterr = 0;
        while ((o = getopt_long(argc, argv, "o:s:t:", opts, NULL)) != -1) {
                switch (o) {
                case 'o': op = optarg; break;
                case 's': sub = optarg; break;
                case 't': to = optarg; break;
                default: return usage("restore: unknown option or missing value");
                }
        }
        if (argc - optind != 1 || !op || !sub || !to)
                return usage("restore needs <chk-dir> --operator ID --subtask N --to DIR");
        char *end;
        errno = 0;
        unsigned long sn = strtoul(sub, &end, 10);
        if (errno || *end || !*sub || sub[0] == '-')
                return usage("--subtask takes a number");
        if (access(to, F_OK) == 0) {
                fail("%s exists; restore writes a new directory", to);
                return 1;
        }
        struct ckpt c;
        if (ckpt_load(argv[optind], &c) < 0)
                return 1;
        int rc = 1;
        const struct keyed *kd = NULL;
        for (size_t i = 0; i < c.n_keyed; i++)
                if (strcmp(c.keyed[i].op, op) == 0 && c.keyed[i].subtask == sn)
                        kd = &c.keyed[i];
        if (!kd) {
                fail("operator %s subtask %lu has no keyed state in checkpoint %" PRIu64, op, sn,
                     c.id);
                list_ops(&c);
                goto out;
        }
        /* refuse a target inside the job dir before creating anything: the nearest
         * existing ancestor of `to` decides (mkdir -p must not touch the checkpoint) */
        char anc[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
        snprintf(anc, sizeof(anc), "%s", to);
        for (;;) {
                if (realpath(anc, a))
                        break;
                char *sl = strrchr(anc, '/');
                if (!sl) {
                        snprintf(anc, sizeof(anc), ".");
                } else if (sl == anc) {
                        anc[1] = 0;
                } else
                        *sl = 0;
        }
        if (realpath(c.job_dir, b) && strncmp(a, b, strlen(b)) == 0 &&
            (a[strlen(b)] == '/' || a[strlen(b)] == 0)) {
                fail("%s is inside the checkpoint directory %s; nothing is written there", to,
                     b);
                goto out;
        }
        int mr = fs_mkdir_p(to, 0755);
        if (mr < 0) {
                fail("%s: cannot create: %s", to, strerror(-mr));
                goto out;
        }
        /* The directory is what the subtask's RocksDB checkpoint held: each shared SST
         * under its local name and the pack's members, each checked against the handle.
         * Nothing opens it here (an open could compact and delete files under a copy). */
        const struct sb_handle *h = kd->h;
        int r = 0;
        for (size_t i = 0; r == 0 && i < h->n_shared; i++) {
                char rel[64], src[PATH_CAP * 2], dst[PATH_CAP * 2];
                sb_handle_shared_path(&h->shared[i], rel, sizeof(rel));
                snprintf(src, sizeof(src), "%s/%s", c.job_dir, rel);
                snprintf(dst, sizeof(dst), "%s/%s", to, h->shared[i].local);
                uint64_t size = 0;
                r = fs_copy_atomic(src, dst, &h->shared[i].crc32c, NULL, &size);
                if (r == 0 && size != h->shared[i].size_bytes)
                        r = -EBADMSG;
                if (r < 0)
                        fail("%s: %s", rel, r == -EBADMSG ? "size or CRC32C differs from the handle"
                                                          : strerror(-r));
        }
        char *pack = NULL;
        size_t plen = 0;
        if (r == 0) {
                char src[PATH_CAP * 2];
                snprintf(src, sizeof(src), "%s/%s", c.job_dir, h->private_path);
                r = fs_read_all(src, SIZE_MAX / 2, &pack, &plen);
                if (r == 0 && (plen != h->private_size_bytes ||
                               crc32c(pack, plen) != h->private_crc32c))
                        r = -EBADMSG;
                if (r < 0)
                        fail("%s: %s", h->private_path,
                             r == -EBADMSG ? "size or CRC32C differs from the handle" : strerror(-r));
        }
        for (size_t i = 0; r == 0 && i < h->n_members; i++) {
                const struct sb_handle_member *m = &h->members[i];
                char dst[PATH_CAP * 2];
                snprintf(dst, sizeof(dst), "%s/%s", to, m->name);
                /* sb_handle_parse checked that members lie inside the pack */
                if (crc32c(pack + m->offset, m->size_bytes) != m->crc32c) {
                        fail("%s: member %s: CRC32C differs from the handle", h->private_path,
                             m->name);
                        r = -EBADMSG;
                } else if ((r = fs_write_atomic(dst, pack + m->offset, m->size_bytes)) < 0)
                        fail("%s: %s", dst, strerror(-r));
        }
        free(pack);
        if (r < 0) {
                (void)fs_rm_rf(to);
                goto out;
        }
        printf("restored operator %s subtask %lu of checkpoint %" PRIu64 " into %s (%zu files)\n",
               op, sn, c.id, to, h->n_shared + h->n_members);
        rc = 0;
out:
        ckpt_finish(&c);
        return rc;
}

/* ---- diff ------------------------------------------------------------------------ */

struct dentry {
        char *id;       /* op \0-free text: "op/state key[ ns][ user_key]" escaped */
        char *value;
};

struct dset {
        struct dentry *v;
        size_t n, cap;
        const char *prefix;
        int err;
};

static char *esc_dup(const void *p, size_t n) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        put_bytes(f, p, n);
        fclose(f);
        return buf;
}

static int diff_entry(void *arg, const struct sb_entry *e) {
        struct dset *s = arg;
        if (s->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 256;
                struct dentry *p = realloc(s->v, nc * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                s->v = p;
                s->cap = nc;
        }
        char *k = esc_dup(e->key, e->key_len);
        char *ns = e->ns_len ? esc_dup(e->ns, e->ns_len) : NULL;
        char *uk = e->user_key ? esc_dup(e->user_key, e->user_key_len) : NULL;
        char *val = NULL, *id = NULL;
        size_t vl = 0;
        FILE *f = open_memstream(&val, &vl);
        if (f) {
                put_value(f, e->value, e->value_len);
                fclose(f);
        }
        if (k && asprintf(&id, "%s %s%s%s%s%s", s->prefix, k, ns ? " " : "", ns ? ns : "",
                          uk ? " " : "", uk ? uk : "") < 0)
                id = NULL;
        free(k);
        free(ns);
        free(uk);
        if (!id || !val) {
                free(id);
                free(val);
                return -ENOMEM;
        }
        s->v[s->n].id = id;
        s->v[s->n].value = val;
        s->n++;
        return 0;
}

static int cmp_dentry(const void *a, const void *b) {
        return strcmp(((const struct dentry *)a)->id, ((const struct dentry *)b)->id);
}

static int collect_keys(const struct ckpt *c, struct dset *s) {
        for (size_t i = 0; i < c->n_keyed; i++) {
                const struct keyed *kd = &c->keyed[i];
                struct sb_backend *b = NULL;
                if (restore_handle(c, kd, &b) < 0)
                        return -1;
                for (size_t k = 0; k < kd->h->n_states; k++) {
                        struct sb_state *st = sb_backend_state(b, kd->h->states[k].name);
                        if (!st)
                                continue;
                        char prefix[JOB_ID_MAX + SB_STATE_NAME_MAX + 4];
                        snprintf(prefix, sizeof(prefix), "%s/%s", kd->op, kd->h->states[k].name);
                        s->prefix = prefix;
                        int r = sb_state_scan(st, diff_entry, s);
                        if (r < 0) {
                                fail("scan of %s subtask %" PRIu32 " failed: %s", prefix,
                                     kd->subtask, sb_backend_last_error(b));
                                sb_backend_destroy(b);
                                return -1;
                        }
                }
                sb_backend_destroy(b);
        }
        qsort(s->v, s->n, sizeof(*s->v), cmp_dentry);
        return 0;
}

static void dset_finish(struct dset *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i].id);
                free(s->v[i].value);
        }
        free(s->v);
}

static int cmd_diff(int argc, char **argv) {
        if (argc != 3)
                return usage("diff takes two checkpoint directories");
        struct ckpt a, b;
        if (ckpt_load(argv[1], &a) < 0)
                return 1;
        if (ckpt_load(argv[2], &b) < 0) {
                ckpt_finish(&a);
                return 1;
        }
        int rc = 1;
        struct vfile *fa = NULL, *fb = NULL;
        size_t na = 0, nb = 0;
        struct dset ka = {0}, kb = {0};
        if (collect_files(&a, &fa, &na) < 0 || collect_files(&b, &fb, &nb) < 0) {
                fail("out of memory");
                goto out;
        }
        printf("files: checkpoint %" PRIu64 " -> %" PRIu64 "\n", a.id, b.id);
        size_t fadd = 0, frem = 0, fchg = 0;
        for (size_t i = 0, j = 0; i < na || j < nb;) {
                int cmp = i == na ? 1 : j == nb ? -1 : strcmp(fa[i].rel, fb[j].rel);
                if (cmp < 0) {
                        printf("- %s %" PRIu64 "\n", fa[i].rel, fa[i].size);
                        frem++;
                        i++;
                } else if (cmp > 0) {
                        printf("+ %s %" PRIu64 "\n", fb[j].rel, fb[j].size);
                        fadd++;
                        j++;
                } else {
                        if (fa[i].size != fb[j].size || fa[i].crc != fb[j].crc) {
                                printf("~ %s\n", fa[i].rel);
                                fchg++;
                        }
                        i++;
                        j++;
                }
        }
        if (collect_keys(&a, &ka) < 0 || collect_keys(&b, &kb) < 0)
                goto out;
        printf("keys: checkpoint %" PRIu64 " -> %" PRIu64 "\n", a.id, b.id);
        size_t kadd = 0, krem = 0, kchg = 0;
        for (size_t i = 0, j = 0; i < ka.n || j < kb.n;) {
                int cmp = i == ka.n ? 1 : j == kb.n ? -1 : strcmp(ka.v[i].id, kb.v[j].id);
                if (cmp < 0) {
                        printf("- %s %s\n", ka.v[i].id, ka.v[i].value);
                        krem++;
                        i++;
                } else if (cmp > 0) {
                        printf("+ %s %s\n", kb.v[j].id, kb.v[j].value);
                        kadd++;
                        j++;
                } else {
                        if (strcmp(ka.v[i].value, kb.v[j].value) != 0) {
                                printf("~ %s %s -> %s\n", ka.v[i].id, ka.v[i].value,
                                       kb.v[j].value);
                                kchg++;
                        }
                        i++;
                        j++;
                }
        }
        printf("summary: files +%zu -%zu ~%zu, keys +%zu -%zu ~%zu\n", fadd, frem, fchg, kadd,
               krem, kchg);
        rc = 0;
out:
        dset_finish(&ka);
        dset_finish(&kb);
        free(fa);
        free(fb);
        ckpt_finish(&a);
        ckpt_finish(&b);
        return rc;
}

int main(int argc, char **argv) {
        if (argc < 2)
                return usage(NULL);
        const char *cmd = argv[1];
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
                fputs(usage_text, stdout);
                return 0;
        }
        int rc;
        if (strcmp(cmd, "list") == 0)
                rc = cmd_list(argc - 1, argv + 1);
        else if (strcmp(cmd, "show") == 0)
                rc = cmd_show(argc - 1, argv + 1);
        else if (strcmp(cmd, "verify") == 0)
                rc = cmd_verify(argc - 1, argv + 1);
        else if (strcmp(cmd, "dump") == 0)
                rc = cmd_dump(argc - 1, argv + 1);
        else if (strcmp(cmd, "diff") == 0)
                rc = cmd_diff(argc - 1, argv + 1);
        else if (strcmp(cmd, "restore") == 0)
                rc = cmd_restore(argc - 1, argv + 1);
        else
                return usage("unknown command");
        tmp_cleanup();
        return rc;
}
