/* Fenced pointer stores (see stores.h for the contract).
 *
 * Shape: a FIFO of operations, one running at a time. An operation is a short sequence
 * of phases; a phase issues a few pipelined ZooKeeper requests into slots and continues
 * in its `after` function once all have answered. Every kind of operation is written so
 * that it can start over from its first phase at any point: after a conflicting write
 * (someone changed a node between our read and our multi), and after an ambiguous one
 * (the connection broke before the answer; op->ambiguous makes the read phase look for
 * the write first). A fenced write that fails after an ambiguous attempt reads back once
 * more (op->fenced_readback) before reporting -ESTALE. */
#include "ha/stores.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/crc32c.h"
#include "common/envelope.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/ids.h"
#include "common/storage.h"
#include "ha/election.h"
#include "ha/zk.h"

#define ST_PATH_MAX 768
#define ST_MAX_ATTEMPTS 8
#define ST_MAX_MULTI_OPS 512
#define ST_DEFAULT_MAX_GRAPH (64u << 20)

enum st_kind {
        ST_GRAPH_PUT,
        ST_GRAPH_GET,
        ST_GRAPH_LIST,
        ST_GRAPH_REMOVE,
        ST_COUNTER_NEXT,
        ST_COUNTER_GET,
        ST_CHK_ADD,
        ST_CHK_LATEST,
        ST_CHK_LIST,
        ST_CHK_REMOVE,
        ST_RESULT_PUT,
        ST_RESULT_GET,
        ST_RESULT_LIST,
        ST_RESULT_EXPIRE,
        ST_RECOVERABLE,
};

struct st_op;

/* One request of a phase and what came back (copied out of the client's buffers). */
struct st_slot {
        struct st_op *op;
        char path[ST_PATH_MAX];
        int r;   /* 0 or a negative errno */
        int zrc; /* the client's own code, for the message */
        char *data;
        size_t len;
        struct Stat stat;
        char **names;
        int count;
};

struct st_op {
        struct st_op *next;
        struct ha_store *st;
        enum st_kind kind;
        ha_store_cb cb;
        void *userdata;
        char job[HA_NAME_MAX];

        /* inputs */
        char *in_data;
        size_t in_len;
        struct ha_pointer in_ptr;
        unsigned retain;
        uint64_t in_id;
        struct ha_job_result in_result;
        int64_t now_ms;

        /* progress */
        bool cancelled;
        bool ambiguous;
        bool fenced_readback;
        bool waiting_connect;
        int attempts;
        struct ha_fence fence;
        int pending;
        void (*after)(struct st_op *op);
        void (*on_success)(struct st_op *op);
        struct st_slot *slots;
        int nslots;

        /* the multi of the current attempt */
        zoo_op_t *mops;
        zoo_op_result_t *mres;
        char **mstrings; /* paths and payloads the ops point to */
        int mcount;
        int mrc;
        struct Stat mstat;

        /* graph put */
        bool file_written;
        char file_path[920];
        struct ha_pointer new_ptr;
        bool have_old;
        struct ha_pointer old_ptr;

        /* listings kept across phases */
        char **list;
        int list_count;
        int cursor;
        uint64_t *planned;
        size_t n_planned;

        /* outputs */
        char error[1024];
        char **out_names;
        size_t n_out_names;
        uint64_t *out_ids;
        size_t n_out_ids;
        struct ha_job_result *out_results;
        size_t n_out_results;
        uint64_t out_id;
        struct ha_pointer out_ptr;
        bool have_out_ptr;
        char *out_data;
        size_t out_len;
        char orphan[920];
};

struct ha_store {
        struct ha_zk *zk;
        struct ha_election *election;
        char base[512];
        char jobs_dir[512];
        char results_dir[512];
        char cluster[HA_NAME_MAX];
        char storage_path[600]; /* resolved local path, "" when none */
        int64_t ttl_ms;
        size_t max_graph_bytes;
        struct st_op *head;
        struct st_op *tail;
        bool running;
        int depth;            /* inside a user callback */
        bool destroy_pending; /* ha_store_destroy() called from one */
        struct event *run_ev;
        struct event *retry_ev;
        /* a fenced failure to report once the operation has completed */
        bool report_fenced;
        struct ha_fence fenced;
};

static void st_restart(struct st_op *op);
static void st_kick(struct ha_store *st);
static void st_destroy_now(struct ha_store *st);

/* ---- small helpers ------------------------------------------------------------------ */

bool ha_store_job_id_valid(const char *job) {
        size_t n = job ? strnlen(job, HA_NAME_MAX) : 0;
        if (n == 0 || n >= HA_NAME_MAX || strcmp(job, ".") == 0 || strcmp(job, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = job[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-'))
                        return false;
        }
        return true;
}

static void free_strv(char **v, int n) {
        for (int i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "0000000000000000042" -> 42; only 19-digit names are checkpoint nodes. */
static int chk_id_of(const char *name, uint64_t *ret) {
        if (strlen(name) != 19)
                return -EINVAL;
        uint64_t v = 0;
        for (int i = 0; i < 19; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(name[i] - '0');
        }
        *ret = v;
        return 0;
}

static void job_dir(const struct st_op *op, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s", op->st->jobs_dir, op->job);
}

static void job_node(const struct st_op *op, const char *leaf, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s/%s", op->st->jobs_dir, op->job, leaf);
}

static void chk_node(const struct st_op *op, uint64_t id, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s/checkpoints/%019" PRIu64, op->st->jobs_dir, op->job, id);
}

static void result_node(const struct st_op *op, const char *job, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s", op->st->results_dir, job);
}

static bool conn_trouble(int r) {
        return r == -ECONNRESET || r == -ETIMEDOUT || r == -ENOTCONN || r == -EKEYEXPIRED;
}

/* ---- operation lifetime ------------------------------------------------------------- */

static void st_free_slots(struct st_op *op) {
        for (int i = 0; i < op->nslots; i++) {
                free(op->slots[i].data);
                free_strv(op->slots[i].names, op->slots[i].count);
        }
        free(op->slots);
        op->slots = NULL;
        op->nslots = 0;
}

static void st_free_multi(struct st_op *op) {
        for (int i = 0; op->mstrings && i < 3 * op->mcount + 1; i++)
                free(op->mstrings[i]);
        free(op->mstrings);
        free(op->mops);
        free(op->mres);
        op->mstrings = NULL;
        op->mops = NULL;
        op->mres = NULL;
        op->mcount = 0;
}

static void st_op_free(struct st_op *op) {
        st_free_slots(op);
        st_free_multi(op);
        free(op->in_data);
        free_strv(op->list, op->list_count);
        free(op->planned);
        free_strv(op->out_names, (int)op->n_out_names);
        free(op->out_ids);
        free(op->out_results);
        free(op->out_data);
        free(op);
}

static void st_fill_reply(struct st_op *op, int r, struct ha_store_reply *rep) {
        *rep = (struct ha_store_reply){
                .r = r,
                .error = r < 0 ? op->error : NULL,
                .job = op->job,
                .ambiguous = op->ambiguous,
                .data = op->out_data,
                .len = op->out_len,
                .pointer = op->have_out_ptr ? &op->out_ptr : NULL,
                .orphan = op->orphan[0] ? op->orphan : NULL,
                .names = (const char *const *)op->out_names,
                .n_names = op->n_out_names,
                .id = op->out_id,
                .ids = op->out_ids,
                .n_ids = op->n_out_ids,
                .results = op->out_results,
                .n_results = op->n_out_results,
        };
}

/* Completes the running operation and moves on to the next. */
static void st_finish(struct st_op *op, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void st_finish(struct st_op *op, int r, const char *fmt, ...) {
        struct ha_store *st = op->st;
        if (r < 0 && fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(op->error, sizeof(op->error), fmt, ap);
                va_end(ap);
        } else if (r < 0 && !op->error[0]) {
                snprintf(op->error, sizeof(op->error), "%s", err_str(r));
        }
        if (op->kind == ST_GRAPH_PUT && r < 0 && op->file_written) {
                /* Never named by a pointer unless a write was ambiguous. */
                if (op->ambiguous)
                        snprintf(op->orphan, sizeof(op->orphan), "%s", op->file_path);
                else
                        unlink(op->file_path);
        }
        st->head = op->next;
        if (!st->head)
                st->tail = NULL;
        st->running = false;
        struct ha_election *election = st->election;
        bool report = st->report_fenced;
        struct ha_fence fenced = st->fenced;
        st->report_fenced = false;
        st_kick(st);
        if (op->cb) {
                struct ha_store_reply rep;
                st_fill_reply(op, r, &rep);
                st->depth++;
                op->cb(st, &rep, op->userdata);
                st->depth--;
        }
        st_op_free(op);
        if (st->destroy_pending && st->depth == 0)
                st_destroy_now(st);
        /* Last: this may run the election's callbacks (st may be gone by now). */
        if (report && election)
                ha_election_report_fenced(election, &fenced);
}

static void st_retry_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_store *st = arg;
        (void)fd;
        (void)what;
        if (st->running && st->head && !st->head->waiting_connect)
                st_restart(st->head);
}

/* Connection trouble: start over once connected again. */
static void st_wait_restart(struct st_op *op) {
        if (ha_zk_state(op->st->zk) == HA_ZK_CONNECTED) {
                struct timeval tv = {0, 50 * 1000};
                evtimer_add(op->st->retry_ev, &tv);
        } else {
                op->waiting_connect = true;
        }
}

/* Leadership is suspended (or being checked after a reconnect): start over shortly. The
 * election settles it within its lease, either back to LEADER (the write goes on) or
 * lost (the next attempt fails with -ESTALE). */
static void st_wait_leading(struct st_op *op) {
        struct timeval tv = {0, 50 * 1000};
        evtimer_add(op->st->retry_ev, &tv);
}

/* ---- phases and requests ------------------------------------------------------------ */

static int st_phase(struct st_op *op, int nslots, void (*after)(struct st_op *)) {
        st_free_slots(op);
        if (nslots > 0) {
                op->slots = calloc((size_t)nslots, sizeof(*op->slots));
                if (!op->slots)
                        return -ENOMEM;
        }
        op->nslots = nslots;
        for (int i = 0; i < nslots; i++)
                op->slots[i].op = op;
        op->after = after;
        op->pending = 1; /* held until st_go() */
        return 0;
}

static void st_req_done(struct st_op *op) {
        if (--op->pending > 0)
                return;
        if (op->cancelled) {
                st_op_free(op);
                return;
        }
        op->after(op);
}

static void st_go(struct st_op *op) {
        st_req_done(op);
}

static void st_data_done(int rc, const char *value, int value_len, const struct Stat *stat,
                         const void *data) {
        struct st_slot *s = (struct st_slot *)data;
        s->zrc = rc;
        s->r = ha_zk_error(rc);
        if (rc == ZOK && !s->op->cancelled) {
                size_t len = value && value_len > 0 ? (size_t)value_len : 0;
                s->data = malloc(len + 1);
                if (s->data) {
                        if (len)
                                memcpy(s->data, value, len);
                        s->data[len] = '\0';
                        s->len = len;
                } else {
                        s->r = -ENOMEM;
                }
                if (stat)
                        s->stat = *stat;
        }
        st_req_done(s->op);
}

static void st_stat_done(int rc, const struct Stat *stat, const void *data) {
        struct st_slot *s = (struct st_slot *)data;
        s->zrc = rc;
        s->r = ha_zk_error(rc);
        if (rc == ZOK && stat)
                s->stat = *stat;
        st_req_done(s->op);
}

static void st_children_done(int rc, const struct String_vector *v, const void *data) {
        struct st_slot *s = (struct st_slot *)data;
        s->zrc = rc;
        s->r = ha_zk_error(rc);
        if (rc == ZOK && v && v->count > 0 && !s->op->cancelled) {
                s->names = calloc((size_t)v->count, sizeof(char *));
                if (!s->names) {
                        s->r = -ENOMEM;
                } else {
                        s->count = v->count;
                        for (int i = 0; i < v->count; i++)
                                if (!(s->names[i] = strdup(v->data[i])))
                                        s->r = -ENOMEM;
                }
        }
        st_req_done(s->op);
}

static void st_req(struct st_op *op, int i, int kind, const char *path) {
        struct st_slot *s = &op->slots[i];
        snprintf(s->path, sizeof(s->path), "%s", path);
        int r;
        if (kind == 'g')
                r = ha_zk_aget(op->st->zk, s->path, false, st_data_done, s);
        else if (kind == 'e')
                r = ha_zk_aexists(op->st->zk, s->path, false, st_stat_done, s);
        else
                r = ha_zk_achildren(op->st->zk, s->path, false, st_children_done, s);
        if (r < 0)
                s->r = r;
        else
                op->pending++;
}

static void st_get(struct st_op *op, int i, const char *path) {
        st_req(op, i, 'g', path);
}
static void st_exists(struct st_op *op, int i, const char *path) {
        st_req(op, i, 'e', path);
}
static void st_children(struct st_op *op, int i, const char *path) {
        st_req(op, i, 'c', path);
}

/* Looks at a finished read phase: connection trouble starts the operation over once
 * connected; any other error except -ENOENT completes it. Returns true if it did. */
static bool st_reads_failed(struct st_op *op) {
        for (int i = 0; i < op->nslots; i++) {
                int r = op->slots[i].r;
                if (conn_trouble(r)) {
                        st_wait_restart(op);
                        return true;
                }
        }
        for (int i = 0; i < op->nslots; i++) {
                int r = op->slots[i].r;
                if (r < 0 && r != -ENOENT) {
                        st_finish(op, r, "reading %s: %s", op->slots[i].path,
                                  op->slots[i].zrc ? zerror(op->slots[i].zrc) : err_str(r));
                        return true;
                }
        }
        return false;
}

/* ---- fenced multi ---------------------------------------------------------------- */

static int st_multi_begin(struct st_op *op, int max_ops) {
        st_free_multi(op);
        if (max_ops > ST_MAX_MULTI_OPS)
                return -E2BIG;
        op->mops = calloc((size_t)max_ops, sizeof(*op->mops));
        op->mres = calloc((size_t)max_ops, sizeof(*op->mres));
        op->mstrings = calloc((size_t)(3 * max_ops + 1), sizeof(char *));
        if (!op->mops || !op->mres || !op->mstrings)
                return -ENOMEM;
        op->mcount = 0;
        return 0;
}

/* Keeps a copy of s for the ops of this multi. */
static const char *st_mkeep(struct st_op *op, const char *s, size_t len) {
        char *copy = malloc(len + 1);
        if (!copy)
                return NULL;
        memcpy(copy, s, len);
        copy[len] = '\0';
        for (int i = 0;; i++)
                if (!op->mstrings[i]) {
                        op->mstrings[i] = copy;
                        return copy;
                }
}

static void st_mop_check(struct st_op *op) {
        ha_fence_check_op(&op->fence, &op->mops[op->mcount++]);
}

static int st_mop_create(struct st_op *op, const char *path, const char *data, size_t len) {
        const char *p = st_mkeep(op, path, strlen(path));
        const char *d = data ? st_mkeep(op, data, len) : "";
        if (!p || !d)
                return -ENOMEM;
        zoo_create_op_init(&op->mops[op->mcount++], p, d, data ? (int)len : 0,
                           ha_zk_acl(op->st->zk), 0, NULL, 0);
        return 0;
}

static int st_mop_set(struct st_op *op, const char *path, const char *data, size_t len,
                      int version) {
        const char *p = st_mkeep(op, path, strlen(path));
        const char *d = st_mkeep(op, data, len);
        if (!p || !d)
                return -ENOMEM;
        zoo_set_op_init(&op->mops[op->mcount++], p, d, (int)len, version, &op->mstat);
        return 0;
}

static int st_mop_delete(struct st_op *op, const char *path, int version) {
        const char *p = st_mkeep(op, path, strlen(path));
        if (!p)
                return -ENOMEM;
        zoo_delete_op_init(&op->mops[op->mcount++], p, version);
        return 0;
}

/* The epoch this operation writes under: the current term when it first writes; later
 * attempts must still be in that same term. */
static int st_fence_ok(struct st_op *op) {
        struct ha_store *st = op->st;
        struct ha_fence cur;
        if (!st->election) {
                snprintf(op->error, sizeof(op->error),
                         "this store has no election: it cannot write");
                return -EPERM;
        }
        int r = ha_election_fence(st->election, &cur);
        if (r == -EAGAIN) {
                snprintf(op->error, sizeof(op->error),
                         "leadership is suspended (ZooKeeper connection lost): not writing");
                return r;
        }
        if (r < 0 || (op->fence.epoch && cur.epoch != op->fence.epoch)) {
                snprintf(op->error, sizeof(op->error),
                         "not the leader%s: not writing",
                         op->fence.epoch ? " of the epoch this operation started in" : "");
                return -ESTALE;
        }
        op->fence = cur;
        return 0;
}

static void st_multi_done(int rc, const void *data) {
        struct st_op *op = (struct st_op *)data;
        op->mrc = rc;
        st_req_done(op);
}

static const char *mop_path(const zoo_op_t *o) {
        switch (o->type) {
        case ZOO_CREATE_OP:
                return o->create_op.path;
        case ZOO_DELETE_OP:
                return o->delete_op.path;
        case ZOO_SETDATA_OP:
                return o->set_op.path;
        case ZOO_CHECK_OP:
                return o->check_op.path;
        default:
                return "?";
        }
}

static void st_multi_after(struct st_op *op) {
        int rc = op->mrc;
        if (rc == ZOK) {
                op->on_success(op);
                return;
        }
        int failed = ha_zk_multi_failed_op(rc, op->mcount, op->mres);
        if (failed == 0) {
                if (op->ambiguous && !op->fenced_readback && op->kind != ST_COUNTER_NEXT) {
                        op->fenced_readback = true;
                        st_restart(op);
                        return;
                }
                op->st->report_fenced = true;
                op->st->fenced = op->fence;
                st_finish(op, -ESTALE,
                          "fenced: epoch %" PRIu64 " is no longer current (%s moved on); "
                          "nothing was written",
                          op->fence.epoch, op->fence.epoch_path);
                return;
        }
        if (failed < 0) {
                if (rc == ZCLOSING) {
                        st_finish(op, -ESHUTDOWN, "ZooKeeper handle closed during the write");
                        return;
                }
                /* Outcome unknown: read back once connected. */
                op->ambiguous = true;
                st_wait_restart(op);
                return;
        }
        int err = op->mres[failed].err;
        const char *path = mop_path(&op->mops[failed]);
        if (err == ZNODEEXISTS || err == ZNONODE || err == ZBADVERSION || err == ZNOTEMPTY) {
                /* Someone (or our own ambiguous attempt) changed it: look again. */
                if (++op->attempts >= ST_MAX_ATTEMPTS) {
                        st_finish(op, -EBUSY, "gave up after %d conflicting attempts: %s: %s",
                                  op->attempts, path, zerror(err));
                        return;
                }
                st_restart(op);
                return;
        }
        st_finish(op, ha_zk_error(err), "writing %s: %s", path, zerror(err));
}

/* Sends the multi built by st_plan() (check op first) in op->mops. */
static void st_multi_go(struct st_op *op, void (*on_success)(struct st_op *)) {
        int r;
        op->on_success = on_success;
        if ((r = st_phase(op, 0, st_multi_after)) < 0) {
                st_finish(op, r, "out of memory");
                return;
        }
        op->mrc = ZOK;
        r = ha_zk_amulti(op->st->zk, op->mcount, op->mops, op->mres, st_multi_done, op);
        if (r < 0) {
                op->pending = 0;
                if (conn_trouble(r)) {
                        st_wait_restart(op);
                        return;
                }
                st_finish(op, r, "writing under %s: %s", op->st->base, err_str(r));
                return;
        }
        op->pending++;
        st_go(op);
}

/* Starts a fenced multi: refuses at once when not acting, so nothing is planned on a
 * fence that would fail anyway. */
static int st_plan(struct st_op *op, int max_ops) {
        int r = st_fence_ok(op);
        if (r == -EAGAIN) {
                st_wait_leading(op);
                return r;
        }
        if (r < 0) {
                st_finish(op, r, NULL);
                return r;
        }
        if ((r = st_multi_begin(op, max_ops + 1)) < 0) {
                st_finish(op, r, "planning a write of %d operations: %s", max_ops, err_str(r));
                return r;
        }
        st_mop_check(op);
        return 0;
}

/* Adds creates for <jobs> and <jobs>/<job> when the read phase found them missing. */
static int st_mop_job_parents(struct st_op *op, bool have_jobs_dir, bool have_job_dir) {
        char path[ST_PATH_MAX];
        int r = 0;
        if (!have_jobs_dir)
                r = st_mop_create(op, op->st->jobs_dir, NULL, 0);
        if (r == 0 && !have_job_dir) {
                job_dir(op, path, sizeof(path));
                r = st_mop_create(op, path, NULL, 0);
        }
        return r;
}

/* ---- job graphs ------------------------------------------------------------------- */

static int graph_write_file(struct st_op *op) {
        struct ha_store *st = op->st;
        if (!st->storage_path[0]) {
                snprintf(op->error, sizeof(op->error), "no storage dir configured for job graphs");
                return -EINVAL;
        }
        struct flinc_id uuid;
        char hex[ID_HEX_LEN + 1], dir[880];
        int r = id_generate(&uuid);
        if (r < 0)
                return r;
        id_format(&uuid, hex);
        int n = snprintf(dir, sizeof(dir), "%s/%s/jobs/%s", st->storage_path, st->cluster, op->job);
        if (n < 0 || (size_t)n >= sizeof(dir))
                return -ENAMETOOLONG;
        snprintf(op->file_path, sizeof(op->file_path), "%s/graph-%s", dir, hex);
        char *env = NULL;
        size_t env_len = 0;
        if ((r = envelope_wrap(HA_KIND_JOB_GRAPH, 1, op->in_data, op->in_len, &env, &env_len)) < 0)
                return r;
        if ((r = fs_mkdir_p(dir, 0755)) < 0) {
                snprintf(op->error, sizeof(op->error), "creating %s: %s", dir, err_str(r));
                free(env);
                return r;
        }
        r = fs_write_atomic(op->file_path, env, env_len);
        if (r < 0) {
                snprintf(op->error, sizeof(op->error), "writing %s: %s", op->file_path, err_str(r));
                free(env);
                return r;
        }
        snprintf(op->new_ptr.path, sizeof(op->new_ptr.path), "file://%s", op->file_path);
        op->new_ptr.size_bytes = env_len;
        op->new_ptr.crc = crc32c(env, env_len);
        op->new_ptr.id = 0;
        free(env);
        op->file_written = true;
        return 0;
}

static void graph_put_ok(struct st_op *op) {
        if (op->have_old && strcmp(op->old_ptr.path, op->new_ptr.path) != 0) {
                /* The new pointer is in place: the old file is named by nothing. Only
                 * files under this job's storage folder are ever deleted. */
                char old[HA_URI_MAX], why[256], prefix[900];
                snprintf(prefix, sizeof(prefix), "%s/%s/jobs/%s/graph-", op->st->storage_path,
                         op->st->cluster, op->job);
                if (storage_uri_to_path(op->old_ptr.path, old, sizeof(old), why, sizeof(why)) == 0 &&
                    strncmp(old, prefix, strlen(prefix)) == 0)
                        unlink(old);
        }
        op->out_ptr = op->new_ptr;
        op->have_out_ptr = true;
        st_finish(op, 0, NULL);
}

static void graph_put_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *jobs = &op->slots[0], *jd = &op->slots[1], *graph = &op->slots[2];
        op->have_old = false;
        if (graph->r == 0) {
                struct ha_pointer cur;
                if (ha_pointer_decode(HA_KIND_POINTER, graph->data, graph->len, &cur, NULL, 0) == 0) {
                        if (strcmp(cur.path, op->new_ptr.path) == 0 && cur.crc == op->new_ptr.crc) {
                                graph_put_ok(op); /* our ambiguous write went through */
                                return;
                        }
                        op->have_old = true;
                        op->old_ptr = cur;
                }
        }
        if (op->fenced_readback) {
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current; %s does "
                          "not name %s", op->fence.epoch, graph->path, op->file_path);
                return;
        }
        if (st_plan(op, 3) < 0)
                return;
        char *payload = NULL;
        size_t len = 0;
        int r = ha_pointer_encode(HA_KIND_POINTER, &op->new_ptr, &payload, &len);
        if (r == 0)
                r = st_mop_job_parents(op, jobs->r == 0, jd->r == 0);
        if (r == 0)
                r = graph->r == 0 ? st_mop_set(op, graph->path, payload, len, graph->stat.version)
                                  : st_mop_create(op, graph->path, payload, len);
        free(payload);
        if (r < 0) {
                st_finish(op, r, "planning the write of %s: %s", graph->path, err_str(r));
                return;
        }
        st_multi_go(op, graph_put_ok);
}

static void graph_put_start(struct st_op *op) {
        int r;
        if (!op->file_written) {
                if ((r = st_fence_ok(op)) == -EAGAIN) {
                        st_wait_leading(op);
                        return;
                }
                if (r < 0 || (r = graph_write_file(op)) < 0) {
                        st_finish(op, r, NULL);
                        return;
                }
        }
        char path[ST_PATH_MAX];
        if ((r = st_phase(op, 3, graph_put_read)) < 0) {
                st_finish(op, r, "out of memory");
                return;
        }
        st_exists(op, 0, op->st->jobs_dir);
        job_dir(op, path, sizeof(path));
        st_exists(op, 1, path);
        job_node(op, "graph", path, sizeof(path));
        st_get(op, 2, path);
        st_go(op);
}

static void graph_get_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *s = &op->slots[0];
        if (s->r == -ENOENT) {
                st_finish(op, -ENOENT, "job %s has no graph (%s does not exist)", op->job, s->path);
                return;
        }
        char why[256] = "", path[HA_URI_MAX];
        struct ha_pointer p;
        int r = ha_pointer_decode(HA_KIND_POINTER, s->data, s->len, &p, why, sizeof(why));
        if (r < 0) {
                st_finish(op, -EBADMSG, "corrupt pointer in %s: %s", s->path, why);
                return;
        }
        op->out_ptr = p;
        op->have_out_ptr = true;
        if ((r = storage_uri_to_path(p.path, path, sizeof(path), why, sizeof(why))) < 0) {
                st_finish(op, -EBADMSG, "pointer in %s names '%s': %s", s->path, p.path, why);
                return;
        }
        char *file = NULL;
        size_t len = 0;
        r = fs_read_all(path, op->st->max_graph_bytes, &file, &len);
        if (r < 0) {
                st_finish(op, r, "reading job graph file %s named by %s: %s", path, s->path,
                          err_str(r));
                return;
        }
        if (len != p.size_bytes || crc32c(file, len) != p.crc) {
                st_finish(op, -EBADMSG,
                          "job graph file %s does not match the pointer in %s (size %zu, "
                          "expected %" PRIu64 "; crc32c %08x, expected %08x)",
                          path, s->path, len, p.size_bytes, crc32c(file, len), p.crc);
                free(file);
                return;
        }
        char *body = NULL;
        size_t body_len = 0;
        r = envelope_unwrap(file, len, HA_KIND_JOB_GRAPH, 1, &body, &body_len, NULL, why,
                            sizeof(why));
        free(file);
        if (r < 0) {
                st_finish(op, -EBADMSG, "job graph file %s named by %s: %s", path, s->path, why);
                return;
        }
        op->out_data = body;
        op->out_len = body_len;
        st_finish(op, 0, NULL);
}

static void graph_get_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 1, graph_get_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        job_node(op, "graph", path, sizeof(path));
        st_get(op, 0, path);
        st_go(op);
}

/* Keeps the names of slot 0 (a children listing) in op->list. */
static void keep_listing(struct st_op *op) {
        free_strv(op->list, op->list_count);
        op->list = op->slots[0].names;
        op->list_count = op->slots[0].count;
        op->slots[0].names = NULL;
        op->slots[0].count = 0;
}

static int add_name(struct st_op *op, const char *name) {
        char **v = realloc(op->out_names, (op->n_out_names + 1) * sizeof(char *));
        if (!v)
                return -ENOMEM;
        op->out_names = v;
        if (!(v[op->n_out_names] = strdup(name)))
                return -ENOMEM;
        op->n_out_names++;
        return 0;
}

static void sort_names(struct st_op *op) {
        if (op->n_out_names > 1)
                qsort(op->out_names, op->n_out_names, sizeof(char *), cmp_str);
}

/* jobgraph_list and jobs_recoverable: per job, exists(graph) [and exists(result)]. */
static void graph_list_checked(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        bool recoverable = op->kind == ST_RECOVERABLE;
        int per = recoverable ? 2 : 1;
        free_strv(op->out_names, (int)op->n_out_names);
        op->out_names = NULL;
        op->n_out_names = 0;
        for (int i = 0; i < op->list_count; i++) {
                bool has_graph = op->slots[per * i].r == 0;
                bool has_result = recoverable && op->slots[per * i + 1].r == 0;
                if (has_graph && !has_result && add_name(op, op->list[i]) < 0) {
                        st_finish(op, -ENOMEM, "out of memory");
                        return;
                }
        }
        sort_names(op);
        st_finish(op, 0, NULL);
}

static void graph_list_listed(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        keep_listing(op);
        bool recoverable = op->kind == ST_RECOVERABLE;
        int per = recoverable ? 2 : 1;
        if (st_phase(op, per * op->list_count, graph_list_checked) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        char path[ST_PATH_MAX];
        for (int i = 0; i < op->list_count; i++) {
                snprintf(path, sizeof(path), "%s/%s/graph", op->st->jobs_dir, op->list[i]);
                st_exists(op, per * i, path);
                if (recoverable) {
                        result_node(op, op->list[i], path, sizeof(path));
                        st_exists(op, per * i + 1, path);
                }
        }
        st_go(op);
}

static void graph_list_start(struct st_op *op) {
        if (st_phase(op, 1, graph_list_listed) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        st_children(op, 0, op->st->jobs_dir);
        st_go(op);
}

static void graph_remove_ok(struct st_op *op) {
        if (op->st->storage_path[0]) {
                char dir[900];
                snprintf(dir, sizeof(dir), "%s/%s/jobs/%s", op->st->storage_path, op->st->cluster,
                         op->job);
                fs_rm_rf(dir); /* no pointer names these files any more */
        }
        st_finish(op, 0, NULL);
}

static void graph_remove_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *jd = &op->slots[0], *chk = &op->slots[1];
        if (jd->r == -ENOENT) {
                if (op->ambiguous) {
                        graph_remove_ok(op); /* our ambiguous delete went through */
                        return;
                }
                st_finish(op, -ENOENT, "job %s does not exist (%s)", op->job, jd->path);
                return;
        }
        if (op->fenced_readback) {
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current; %s is "
                          "still there", op->fence.epoch, jd->path);
                return;
        }
        if (st_plan(op, chk->count + jd->count + 2) < 0)
                return;
        char path[ST_PATH_MAX + 256];
        int r = 0;
        for (int i = 0; r == 0 && i < chk->count; i++) {
                snprintf(path, sizeof(path), "%s/%s", chk->path, chk->names[i]);
                r = st_mop_delete(op, path, -1);
        }
        for (int i = 0; r == 0 && i < jd->count; i++) {
                snprintf(path, sizeof(path), "%s/%s", jd->path, jd->names[i]);
                r = st_mop_delete(op, path, -1);
        }
        if (r == 0)
                r = st_mop_delete(op, jd->path, -1);
        if (r < 0) {
                st_finish(op, r, "planning the removal of %s: %s", jd->path, err_str(r));
                return;
        }
        st_multi_go(op, graph_remove_ok);
}

static void graph_remove_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 2, graph_remove_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        job_dir(op, path, sizeof(path));
        st_children(op, 0, path);
        job_node(op, "checkpoints", path, sizeof(path));
        st_children(op, 1, path);
        st_go(op);
}

/* ---- checkpoint counter --------------------------------------------------------------- */

static void counter_ok(struct st_op *op) {
        st_finish(op, 0, NULL);
}

static void counter_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        bool next = op->kind == ST_COUNTER_NEXT;
        struct st_slot *c = &op->slots[next ? 2 : 0];
        uint64_t value = 0;
        char why[256];
        if (c->r == 0 && ha_u64_decode(HA_KIND_COUNTER, c->data, c->len, &value, why,
                                       sizeof(why)) < 0) {
                st_finish(op, -EBADMSG, "corrupt counter in %s: %s", c->path, why);
                return;
        }
        if (!next) {
                op->out_id = value;
                st_finish(op, 0, NULL);
                return;
        }
        if (op->in_id > value)
                value = op->in_id; /* ha_counter_next_above: ids after the floor */
        if (value == UINT64_MAX) {
                st_finish(op, -EOVERFLOW, "counter in %s is exhausted", c->path);
                return;
        }
        if (st_plan(op, 3) < 0)
                return;
        char *payload = NULL;
        size_t len = 0;
        op->out_id = value + 1;
        int r = ha_u64_encode(HA_KIND_COUNTER, op->out_id, &payload, &len);
        if (r == 0)
                r = st_mop_job_parents(op, op->slots[0].r == 0, op->slots[1].r == 0);
        if (r == 0)
                r = c->r == 0 ? st_mop_set(op, c->path, payload, len, c->stat.version)
                              : st_mop_create(op, c->path, payload, len);
        free(payload);
        if (r < 0) {
                st_finish(op, r, "planning the write of %s: %s", c->path, err_str(r));
                return;
        }
        st_multi_go(op, counter_ok);
}

static void counter_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        bool next = op->kind == ST_COUNTER_NEXT;
        if (st_phase(op, next ? 3 : 1, counter_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        int i = 0;
        if (next) {
                st_exists(op, i++, op->st->jobs_dir);
                job_dir(op, path, sizeof(path));
                st_exists(op, i++, path);
        }
        job_node(op, "checkpoint-counter", path, sizeof(path));
        st_get(op, i, path);
        st_go(op);
}

/* ---- completed checkpoints ---------------------------------------------------------------- */

/* Sorted checkpoint ids of a children listing. */
static int chk_ids(const struct st_slot *s, uint64_t **ret, size_t *ret_n) {
        uint64_t *ids = s->count ? calloc((size_t)s->count, sizeof(uint64_t)) : NULL;
        size_t n = 0;
        if (s->count && !ids)
                return -ENOMEM;
        for (int i = 0; i < s->count; i++) {
                uint64_t id;
                if (chk_id_of(s->names[i], &id) == 0)
                        ids[n++] = id;
        }
        if (n > 1)
                qsort(ids, n, sizeof(uint64_t), cmp_u64);
        *ret = ids;
        *ret_n = n;
        return 0;
}

static void chk_add_ok(struct st_op *op) {
        op->out_id = op->in_ptr.id;
        op->out_ids = op->planned;
        op->n_out_ids = op->n_planned;
        op->planned = NULL;
        op->n_planned = 0;
        st_finish(op, 0, NULL);
}

/* The id already exists: ours (an ambiguous add went through) or a conflict. */
static void chk_add_compare(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *s = &op->slots[0];
        struct ha_pointer p;
        if (s->r == -ENOENT) {
                st_restart(op);
                return;
        }
        if (ha_pointer_decode(HA_KIND_CHECKPOINT, s->data, s->len, &p, NULL, 0) == 0 &&
            p.id == op->in_ptr.id && strcmp(p.path, op->in_ptr.path) == 0 &&
            p.crc == op->in_ptr.crc && p.size_bytes == op->in_ptr.size_bytes) {
                chk_add_ok(op);
                return;
        }
        st_finish(op, -EEXIST, "checkpoint %" PRIu64 " already exists in %s with another pointer",
                  op->in_ptr.id, s->path);
}

static void chk_add_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *jobs = &op->slots[0], *jd = &op->slots[1], *cd = &op->slots[2];
        uint64_t *ids = NULL;
        size_t n = 0;
        if (chk_ids(cd, &ids, &n) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        char path[ST_PATH_MAX];
        chk_node(op, op->in_ptr.id, path, sizeof(path));
        bool present = false;
        for (size_t i = 0; i < n; i++)
                present |= ids[i] == op->in_ptr.id;
        if (present) {
                free(ids);
                if (st_phase(op, 1, chk_add_compare) < 0) {
                        st_finish(op, -ENOMEM, "out of memory");
                        return;
                }
                st_get(op, 0, path);
                st_go(op);
                return;
        }
        if (op->fenced_readback) {
                free(ids);
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current; %s was "
                          "not added", op->fence.epoch, path);
                return;
        }
        if (n > 0 && ids[n - 1] >= op->in_ptr.id) {
                st_finish(op, -EINVAL, "checkpoint %" PRIu64 " is not newer than the latest "
                          "retained one (%" PRIu64 ") in %s", op->in_ptr.id, ids[n - 1], cd->path);
                free(ids);
                return;
        }
        size_t drop = n + 1 > op->retain ? n + 1 - op->retain : 0;
        if (st_plan(op, (int)drop + 4) < 0) {
                free(ids);
                return;
        }
        /* What this attempt subsumes; if it turns out ambiguous and is found applied on
         * the read back, this is what it deleted. */
        free(op->planned);
        op->planned = drop ? calloc(drop, sizeof(uint64_t)) : NULL;
        op->n_planned = 0;
        if (drop && !op->planned) {
                free(ids);
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        for (size_t i = 0; i < drop; i++)
                op->planned[op->n_planned++] = ids[i];
        char *payload = NULL;
        size_t len = 0;
        int r = ha_pointer_encode(HA_KIND_CHECKPOINT, &op->in_ptr, &payload, &len);
        if (r == 0)
                r = st_mop_job_parents(op, jobs->r == 0, jd->r == 0);
        if (r == 0 && cd->r != 0)
                r = st_mop_create(op, cd->path, NULL, 0);
        if (r == 0)
                r = st_mop_create(op, path, payload, len);
        char del[ST_PATH_MAX];
        for (size_t i = 0; r == 0 && i < drop; i++) {
                chk_node(op, ids[i], del, sizeof(del));
                r = st_mop_delete(op, del, -1);
        }
        free(payload);
        free(ids);
        if (r < 0) {
                st_finish(op, r, "planning the write of %s: %s", path, err_str(r));
                return;
        }
        st_multi_go(op, chk_add_ok);
}

static void chk_add_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 3, chk_add_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        st_exists(op, 0, op->st->jobs_dir);
        job_dir(op, path, sizeof(path));
        st_exists(op, 1, path);
        job_node(op, "checkpoints", path, sizeof(path));
        st_children(op, 2, path);
        st_go(op);
}

static void chk_latest_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *s = &op->slots[0];
        if (s->r == -ENOENT) {
                /* Deleted between the listing and the read: list again. */
                if (++op->attempts >= ST_MAX_ATTEMPTS) {
                        st_finish(op, -EBUSY, "%s keeps disappearing", s->path);
                        return;
                }
                st_restart(op);
                return;
        }
        char why[256] = "";
        struct ha_pointer p;
        if (ha_pointer_decode(HA_KIND_CHECKPOINT, s->data, s->len, &p, why, sizeof(why)) < 0) {
                st_finish(op, -EBADMSG, "corrupt checkpoint pointer in %s: %s", s->path, why);
                return;
        }
        if (p.id != op->out_id) {
                st_finish(op, -EBADMSG, "checkpoint pointer in %s names checkpoint %" PRIu64,
                          s->path, p.id);
                return;
        }
        op->out_ptr = p;
        op->have_out_ptr = true;
        st_finish(op, 0, NULL);
}

static void chk_listed(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        uint64_t *ids = NULL;
        size_t n = 0;
        if (chk_ids(&op->slots[0], &ids, &n) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        if (op->kind == ST_CHK_LIST) {
                op->out_ids = ids;
                op->n_out_ids = n;
                st_finish(op, 0, NULL);
                return;
        }
        if (n == 0) {
                free(ids);
                st_finish(op, -ENOENT, "job %s has no completed checkpoint (%s)", op->job,
                          op->slots[0].path);
                return;
        }
        op->out_id = ids[n - 1];
        free(ids);
        char path[ST_PATH_MAX];
        chk_node(op, op->out_id, path, sizeof(path));
        if (st_phase(op, 1, chk_latest_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        st_get(op, 0, path);
        st_go(op);
}

static void chk_list_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 1, chk_listed) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        job_node(op, "checkpoints", path, sizeof(path));
        st_children(op, 0, path);
        st_go(op);
}

static void chk_remove_ok(struct st_op *op) {
        op->out_id = op->in_id;
        st_finish(op, 0, NULL);
}

static void chk_remove_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *s = &op->slots[0];
        if (s->r == -ENOENT) {
                if (op->ambiguous) {
                        chk_remove_ok(op);
                        return;
                }
                st_finish(op, -ENOENT, "no checkpoint %" PRIu64 " (%s)", op->in_id, s->path);
                return;
        }
        if (op->fenced_readback) {
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current; %s is "
                          "still there", op->fence.epoch, s->path);
                return;
        }
        if (st_plan(op, 1) < 0)
                return;
        int r = st_mop_delete(op, s->path, s->stat.version);
        if (r < 0) {
                st_finish(op, r, "out of memory");
                return;
        }
        st_multi_go(op, chk_remove_ok);
}

static void chk_remove_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 1, chk_remove_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        chk_node(op, op->in_id, path, sizeof(path));
        st_exists(op, 0, path);
        st_go(op);
}

/* ---- job results ---------------------------------------------------------------------------- */

static void result_put_ok(struct st_op *op) {
        op->out_results = malloc(sizeof(*op->out_results));
        if (op->out_results) {
                op->out_results[0] = op->in_result;
                op->n_out_results = 1;
        }
        st_finish(op, 0, NULL);
}

static void result_put_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *dir = &op->slots[0], *s = &op->slots[1];
        struct ha_job_result cur;
        if (s->r == 0 && ha_job_result_decode(s->data, s->len, &cur, NULL, 0) == 0 &&
            cur.state == op->in_result.state && strcmp(cur.job, op->in_result.job) == 0) {
                op->in_result = cur;
                result_put_ok(op);
                return;
        }
        if (op->fenced_readback) {
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current; %s was "
                          "not written", op->fence.epoch, s->path);
                return;
        }
        if (st_plan(op, 2) < 0)
                return;
        op->in_result.epoch = op->fence.epoch;
        char *payload = NULL;
        size_t len = 0;
        int r = ha_job_result_encode(&op->in_result, &payload, &len);
        if (r == 0 && dir->r != 0)
                r = st_mop_create(op, op->st->results_dir, NULL, 0);
        if (r == 0)
                r = s->r == 0 ? st_mop_set(op, s->path, payload, len, s->stat.version)
                              : st_mop_create(op, s->path, payload, len);
        free(payload);
        if (r < 0) {
                st_finish(op, r, "planning the write of %s: %s", s->path, err_str(r));
                return;
        }
        st_multi_go(op, result_put_ok);
}

static void result_put_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 2, result_put_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        st_exists(op, 0, op->st->results_dir);
        result_node(op, op->job, path, sizeof(path));
        st_get(op, 1, path);
        st_go(op);
}

static void result_expire_next(struct st_op *op);

/* Decodes the results read in this phase (one per op->list entry). */
static int results_decode(struct st_op *op, int first_slot) {
        free(op->out_results);
        op->out_results = op->list_count ? calloc((size_t)op->list_count, sizeof(*op->out_results))
                                         : NULL;
        op->n_out_results = 0;
        if (op->list_count && !op->out_results)
                return -ENOMEM;
        for (int i = 0; i < op->list_count; i++) {
                struct st_slot *s = &op->slots[first_slot + i];
                if (s->r == -ENOENT)
                        continue;
                char why[256] = "";
                struct ha_job_result res;
                if (ha_job_result_decode(s->data, s->len, &res, why, sizeof(why)) < 0) {
                        snprintf(op->error, sizeof(op->error), "corrupt job result in %s: %s",
                                 s->path, why);
                        return -EBADMSG;
                }
                op->out_results[op->n_out_results++] = res;
        }
        return 0;
}

static void result_read_one(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        struct st_slot *s = &op->slots[0];
        if (s->r == -ENOENT) {
                st_finish(op, -ENOENT, "job %s has no result (%s)", op->job, s->path);
                return;
        }
        char why[256] = "";
        op->out_results = calloc(1, sizeof(*op->out_results));
        if (!op->out_results) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        if (ha_job_result_decode(s->data, s->len, op->out_results, why, sizeof(why)) < 0) {
                st_finish(op, -EBADMSG, "corrupt job result in %s: %s", s->path, why);
                return;
        }
        op->n_out_results = 1;
        st_finish(op, 0, NULL);
}

static void result_get_start(struct st_op *op) {
        char path[ST_PATH_MAX];
        if (st_phase(op, 1, result_read_one) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        result_node(op, op->job, path, sizeof(path));
        st_get(op, 0, path);
        st_go(op);
}

static void results_read(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        int r = results_decode(op, 1);
        if (r < 0) {
                st_finish(op, r, NULL);
                return;
        }
        if (op->kind == ST_RESULT_LIST) {
                st_finish(op, 0, NULL);
                return;
        }
        /* expire: the reply lists what is removed; the candidates stay in the slots
         * (with the znode versions read) and are handled one by one */
        free(op->out_results);
        op->out_results = NULL;
        op->n_out_results = 0;
        op->cursor = 0;
        result_expire_next(op);
}

static void results_listed(struct st_op *op) {
        if (st_reads_failed(op))
                return;
        keep_listing(op);
        if (st_phase(op, 1 + op->list_count, results_read) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        char path[ST_PATH_MAX];
        st_exists(op, 0, op->st->jobs_dir);
        for (int i = 0; i < op->list_count; i++) {
                result_node(op, op->list[i], path, sizeof(path));
                st_get(op, 1 + i, path);
        }
        st_go(op);
}

static void results_start(struct st_op *op) {
        if (op->kind == ST_RESULT_EXPIRE) {
                free(op->out_results);
                op->out_results = NULL;
                op->n_out_results = 0;
        }
        if (st_phase(op, 1, results_listed) < 0) {
                st_finish(op, -ENOMEM, "out of memory");
                return;
        }
        st_children(op, 0, op->st->results_dir);
        st_go(op);
}

/* expire: one fenced multi per expired result, asserting that jobs/<job> is gone (the
 * create fails with NODEEXISTS if it is there) and deleting the result at the version
 * read. The removed ones are collected in op->planned (as list indices). */
static void result_expire_step_done(struct st_op *op);

static void result_expire_next(struct st_op *op) {
        struct ha_store *st = op->st;
        for (; op->cursor < op->list_count; op->cursor++) {
                struct st_slot *s = &op->slots[1 + op->cursor];
                if (s->r != 0)
                        continue;
                struct ha_job_result res;
                if (ha_job_result_decode(s->data, s->len, &res, NULL, 0) < 0)
                        continue;
                if (st->ttl_ms <= 0 || res.end_time_ms > op->now_ms - st->ttl_ms)
                        continue;
                int fr = st_fence_ok(op);
                if (fr == -EAGAIN) {
                        st_wait_leading(op);
                        return;
                }
                if (fr < 0) {
                        st_finish(op, fr, NULL);
                        return;
                }
                /* Build the multi by hand: this phase's slots must survive it. */
                st_free_multi(op);
                op->mops = calloc(5, sizeof(*op->mops));
                op->mres = calloc(5, sizeof(*op->mres));
                op->mstrings = calloc(16, sizeof(char *));
                if (!op->mops || !op->mres || !op->mstrings) {
                        st_finish(op, -ENOMEM, "out of memory");
                        return;
                }
                op->mcount = 0;
                st_mop_check(op);
                char path[ST_PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", st->jobs_dir, op->list[op->cursor]);
                int r = 0;
                if (op->slots[0].r != 0)
                        r = st_mop_create(op, st->jobs_dir, NULL, 0);
                if (r == 0)
                        r = st_mop_create(op, path, NULL, 0);
                if (r == 0)
                        r = st_mop_delete(op, path, -1);
                if (r == 0)
                        r = st_mop_delete(op, s->path, s->stat.version);
                if (r < 0) {
                        st_finish(op, r, "out of memory");
                        return;
                }
                op->mrc = ZOK;
                op->after = result_expire_step_done;
                op->pending = 1;
                r = ha_zk_amulti(st->zk, op->mcount, op->mops, op->mres, st_multi_done, op);
                if (r < 0) {
                        op->pending = 0;
                        op->ambiguous = true;
                        st_wait_restart(op);
                        return;
                }
                return;
        }
        st_finish(op, 0, NULL);
}

static void result_expire_step_done(struct st_op *op) {
        int rc = op->mrc;
        struct st_slot *s = &op->slots[1 + op->cursor];
        if (rc == ZOK) {
                struct ha_job_result res;
                if (ha_job_result_decode(s->data, s->len, &res, NULL, 0) == 0) {
                        struct ha_job_result *v = realloc(op->out_results,
                                                          (op->n_out_results + 1) * sizeof(*v));
                        if (v) {
                                op->out_results = v;
                                v[op->n_out_results++] = res;
                        }
                }
                op->cursor++;
                result_expire_next(op);
                return;
        }
        int failed = ha_zk_multi_failed_op(rc, op->mcount, op->mres);
        if (failed == 0) {
                op->st->report_fenced = true;
                op->st->fenced = op->fence;
                st_finish(op, -ESTALE, "fenced: epoch %" PRIu64 " is no longer current",
                          op->fence.epoch);
                return;
        }
        if (failed < 0) {
                if (rc == ZCLOSING) {
                        st_finish(op, -ESHUTDOWN, "ZooKeeper handle closed during the write");
                        return;
                }
                op->ambiguous = true;
                st_wait_restart(op); /* lists again: removed ones are simply gone */
                return;
        }
        /* The job is still there (NODEEXISTS) or the result changed: keep it. */
        op->cursor++;
        result_expire_next(op);
}

/* ---- queue ------------------------------------------------------------------------------- */

static void st_restart(struct st_op *op) {
        op->waiting_connect = false;
        switch (op->kind) {
        case ST_GRAPH_PUT:
                graph_put_start(op);
                break;
        case ST_GRAPH_GET:
                graph_get_start(op);
                break;
        case ST_GRAPH_LIST:
        case ST_RECOVERABLE:
                graph_list_start(op);
                break;
        case ST_GRAPH_REMOVE:
                graph_remove_start(op);
                break;
        case ST_COUNTER_NEXT:
        case ST_COUNTER_GET:
                counter_start(op);
                break;
        case ST_CHK_ADD:
                chk_add_start(op);
                break;
        case ST_CHK_LATEST:
        case ST_CHK_LIST:
                chk_list_start(op);
                break;
        case ST_CHK_REMOVE:
                chk_remove_start(op);
                break;
        case ST_RESULT_PUT:
                result_put_start(op);
                break;
        case ST_RESULT_GET:
                result_get_start(op);
                break;
        case ST_RESULT_LIST:
        case ST_RESULT_EXPIRE:
                results_start(op);
                break;
        }
}

static void st_run_cb(evutil_socket_t fd, short what, void *arg) {
        struct ha_store *st = arg;
        (void)fd;
        (void)what;
        if (st->running || !st->head)
                return;
        st->running = true;
        st_restart(st->head);
}

static void st_kick(struct ha_store *st) {
        event_active(st->run_ev, EV_TIMEOUT, 1);
}

static void st_zk_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct ha_store *st = userdata;
        (void)zk;
        if (ev->type == HA_ZK_EVENT_CONNECTED && st->running && st->head &&
            st->head->waiting_connect) {
                /* Not from inside the client: the retry timer runs it on the loop. */
                st->head->waiting_connect = false;
                struct timeval tv = {0, 0};
                evtimer_add(st->retry_ev, &tv);
        }
}

static struct st_op *st_op_new(struct ha_store *st, enum st_kind kind, const char *job,
                               ha_store_cb cb, void *userdata) {
        if (job && !ha_store_job_id_valid(job))
                return NULL;
        struct st_op *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->st = st;
        op->kind = kind;
        op->cb = cb;
        op->userdata = userdata;
        snprintf(op->job, sizeof(op->job), "%s", job ? job : "");
        return op;
}

static int st_submit(struct ha_store *st, struct st_op *op) {
        if (!op)
                return -EINVAL;
        if (st->tail)
                st->tail->next = op;
        else
                st->head = op;
        st->tail = op;
        st_kick(st);
        return 0;
}

int ha_jobgraph_put(struct ha_store *st, const char *job, const void *data, size_t len,
                    ha_store_cb cb, void *userdata) {
        if (!data && len)
                return -EINVAL;
        struct st_op *op = st_op_new(st, ST_GRAPH_PUT, job, cb, userdata);
        if (!op)
                return job && ha_store_job_id_valid(job) ? -ENOMEM : -EINVAL;
        op->in_data = malloc(len ? len : 1);
        if (!op->in_data) {
                st_op_free(op);
                return -ENOMEM;
        }
        if (len)
                memcpy(op->in_data, data, len);
        op->in_len = len;
        return st_submit(st, op);
}

#define SIMPLE_OP(fn, kind)                                                              \
        int fn(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata) {   \
                struct st_op *op = st_op_new(st, kind, job, cb, userdata);               \
                if (!op)                                                                 \
                        return ha_store_job_id_valid(job) ? -ENOMEM : -EINVAL;           \
                return st_submit(st, op);                                                \
        }

SIMPLE_OP(ha_jobgraph_get, ST_GRAPH_GET)
SIMPLE_OP(ha_jobgraph_remove, ST_GRAPH_REMOVE)
SIMPLE_OP(ha_counter_next, ST_COUNTER_NEXT)
SIMPLE_OP(ha_counter_get, ST_COUNTER_GET)
SIMPLE_OP(ha_checkpoint_latest, ST_CHK_LATEST)
SIMPLE_OP(ha_checkpoint_list, ST_CHK_LIST)
SIMPLE_OP(ha_jobresult_get, ST_RESULT_GET)

int ha_counter_next_above(struct ha_store *st, const char *job, uint64_t floor,
                          ha_store_cb cb, void *userdata) {
        struct st_op *op = st_op_new(st, ST_COUNTER_NEXT, job, cb, userdata);
        if (!op)
                return ha_store_job_id_valid(job) ? -ENOMEM : -EINVAL;
        op->in_id = floor;
        return st_submit(st, op);
}

#define LIST_OP(fn, kind)                                                                \
        int fn(struct ha_store *st, ha_store_cb cb, void *userdata) {                    \
                struct st_op *op = st_op_new(st, kind, NULL, cb, userdata);              \
                return op ? st_submit(st, op) : -ENOMEM;                                 \
        }

LIST_OP(ha_jobgraph_list, ST_GRAPH_LIST)
LIST_OP(ha_jobresult_list, ST_RESULT_LIST)
LIST_OP(ha_jobs_recoverable, ST_RECOVERABLE)

int ha_checkpoint_add(struct ha_store *st, const char *job, const struct ha_pointer *p,
                      unsigned retain, ha_store_cb cb, void *userdata) {
        if (!p || retain == 0 || p->id == 0 || strnlen(p->path, HA_URI_MAX) >= HA_URI_MAX)
                return -EINVAL;
        struct st_op *op = st_op_new(st, ST_CHK_ADD, job, cb, userdata);
        if (!op)
                return ha_store_job_id_valid(job) ? -ENOMEM : -EINVAL;
        op->in_ptr = *p;
        op->retain = retain;
        return st_submit(st, op);
}

int ha_checkpoint_remove(struct ha_store *st, const char *job, uint64_t id, ha_store_cb cb,
                         void *userdata) {
        struct st_op *op = st_op_new(st, ST_CHK_REMOVE, job, cb, userdata);
        if (!op)
                return ha_store_job_id_valid(job) ? -ENOMEM : -EINVAL;
        op->in_id = id;
        return st_submit(st, op);
}

int ha_jobresult_put(struct ha_store *st, const struct ha_job_result *result, ha_store_cb cb,
                     void *userdata) {
        if (!result || strcmp(ha_job_state_name(result->state), "UNKNOWN") == 0)
                return -EINVAL;
        struct st_op *op = st_op_new(st, ST_RESULT_PUT, result->job, cb, userdata);
        if (!op)
                return ha_store_job_id_valid(result->job) ? -ENOMEM : -EINVAL;
        op->in_result = *result;
        return st_submit(st, op);
}

int ha_jobresult_expire(struct ha_store *st, int64_t now_wall_ms, ha_store_cb cb,
                        void *userdata) {
        struct st_op *op = st_op_new(st, ST_RESULT_EXPIRE, NULL, cb, userdata);
        if (!op)
                return -ENOMEM;
        op->now_ms = now_wall_ms;
        return st_submit(st, op);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

int ha_store_create(struct ha_zk *zk, struct ha_election *election,
                    const struct ha_store_options *o, struct ha_store **ret) {
        size_t blen = o && o->base_path ? strlen(o->base_path) : 0;
        if (!zk || !o || blen < 2 || o->base_path[0] != '/' || o->base_path[blen - 1] == '/' ||
            blen >= 480 || !o->cluster_id || !ha_store_job_id_valid(o->cluster_id))
                return -EINVAL;
        struct ha_store *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        int r = -EINVAL;
        st->zk = zk;
        st->election = election;
        snprintf(st->base, sizeof(st->base), "%s", o->base_path);
        snprintf(st->jobs_dir, sizeof(st->jobs_dir), "%s/jobs", o->base_path);
        snprintf(st->results_dir, sizeof(st->results_dir), "%s/job-results", o->base_path);
        snprintf(st->cluster, sizeof(st->cluster), "%s", o->cluster_id);
        st->ttl_ms = o->job_result_ttl_ms;
        st->max_graph_bytes = o->max_graph_bytes ? o->max_graph_bytes : ST_DEFAULT_MAX_GRAPH;
        if (o->storage_dir) {
                char why[256];
                if (storage_uri_to_path(o->storage_dir, st->storage_path, sizeof(st->storage_path),
                                        why, sizeof(why)) < 0)
                        goto fail;
        }
        r = -ENOMEM;
        st->run_ev = event_new(ha_zk_event_base(zk), -1, 0, st_run_cb, st);
        st->retry_ev = evtimer_new(ha_zk_event_base(zk), st_retry_cb, st);
        if (!st->run_ev || !st->retry_ev)
                goto fail;
        if ((r = ha_zk_subscribe(zk, st_zk_event, st)) < 0)
                goto fail;
        *ret = st;
        return 0;
fail:
        if (st->run_ev)
                event_free(st->run_ev);
        if (st->retry_ev)
                event_free(st->retry_ev);
        free(st);
        return r;
}

static void st_destroy_now(struct ha_store *st) {
        ha_zk_unsubscribe(st->zk, st_zk_event, st);
        event_free(st->run_ev);
        event_free(st->retry_ev);
        struct st_op *op = st->head;
        st->head = st->tail = NULL;
        while (op) {
                struct st_op *next = op->next;
                if (op->cb) {
                        struct ha_store_reply rep;
                        snprintf(op->error, sizeof(op->error), "the store was destroyed");
                        st_fill_reply(op, -ECANCELED, &rep);
                        op->cb(st, &rep, op->userdata);
                }
                op->cb = NULL;
                op->st = NULL;
                if (op->pending > 0)
                        op->cancelled = true; /* freed by its last completion */
                else
                        st_op_free(op);
                op = next;
        }
        free(st);
}

void ha_store_destroy(struct ha_store *st) {
        if (!st || st->destroy_pending)
                return;
        st->destroy_pending = true;
        if (st->depth == 0)
                st_destroy_now(st);
}
