/* The checkpoint coordinator of the leader: one state machine per job that triggers
 * checkpoints, collects the subtasks' acks, writes chk-<n>/_metadata, adds the fenced
 * pointer, retires subsumed checkpoints and tells the workers; and the restore side:
 * which checkpoint a (re)started attempt deploys from and what each task gets.
 * DESIGN.md "Checkpoint protocol", "Storage layout".
 *
 * Checkpoint states (logged as `checkpoint job=<id> id=<n> <FROM> -> <TO>` at debug, the
 * outcomes as events; shown in REST as `status`):
 *
 *   IDLE --(interval and min-pause elapsed, job RUNNING)--> ALLOCATING
 *        (ha_counter_next_above the highest id restored: a savepoint of another job may
 *        be ahead of this job's counter)
 *   ALLOCATING --(id)--> PENDING: trigger sent to the workers of source subtasks
 *   PENDING --(every subtask of the attempt acked)--> WRITING: _metadata on the file thread
 *   WRITING --(written)--> STORING: ha_checkpoint_add(pointer, retain)
 *   STORING --(added)--> COMPLETING: notify the attempt's workers, retire subsumed ones
 *   COMPLETING --> IDLE
 *   PENDING --(decline, timeout, task failure, attempt over, bad ack)--> abort --> IDLE
 *   WRITING/STORING --(error)--> abort --> IDLE
 *
 * Everything with a side effect (trigger, complete/abort messages, store writes, file
 * deletes) runs from coord_ckpt_step, which jobs.c calls from the reconcile step: only
 * while coord_may_act(). Messages and completions only record what happened and ask for
 * a reconcile. A pointer write that failed as fenced (-ESTALE) or was dropped with the
 * term leaves every file in place: a pointer may name them.
 *
 * _metadata: an envelope (common/envelope.h) of kind "flinc.chk.metadata", v1, body:
 *   {job: str, checkpoint: uint, savepoint: bool, attempt: uint, trigger_ms: int,
 *    complete_ms: int, max_parallelism: uint, state_bytes: uint, incremental_bytes: uint,
 *    states: [{vertex: uint (chain index), vertex_id: str (the chain's head step id),
 *              parallelism: uint, subtask: uint, state: bin (the ack's "flinc.subtask-state"
 *              envelope, as sent), state_bytes: uint, incremental_bytes: uint}]}
 *
 * Keyed state handles for the shared-file registry are read from the subtask state
 * envelope (worker/substate.h): `ops[].keyed` bins (and a top-level `keyed`, bin or
 * array of bin), each a statebackend handle (statebackend/handle.h, "flinc.sb.handle");
 * none = no keyed state. The rest of the state is opaque to the coordinator.
 *
 * Restore lists: a task of vertex V, subtask s gets, when V's parallelism in the
 * checkpoint equals the new one, the state of (V, s); otherwise every state of V (the
 * worker picks the key-group ranges that overlap its own and clips them, and
 * redistributes operator state). V is matched by the chain's head step id, so a
 * savepoint restores into a job with another parallelism. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <yaml.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crc32c.h"
#include "common/envelope.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/proto.h"
#include "common/storage.h"
#include "coordinator/bgwork.h"
#include "coordinator/checkpoints.h"
#include "coordinator/coord_internal.h"
#include "ha/stores.h"
#include "statebackend/handle.h"
#include "statebackend/registry.h"

#define CKPT_META_KIND "flinc.chk.metadata"
#define CKPT_META_VERSION 1
#define CKPT_SUBTASK_STATE_KIND "flinc.subtask-state"
#define CKPT_SUBTASK_STATE_MAX_VERSION 8
#define CKPT_STATE_MAX_BYTES (1u << 20)   /* one subtask's state payload in an ack */
#define CKPT_META_MAX_BYTES ENVELOPE_MAX_BYTES
#define CKPT_HISTORY 10                   /* Flink's web.checkpoints.history default */
#define CKPT_PATH_MAX 1024

enum ckpt_state {
        CKPT_IDLE,
        CKPT_ALLOCATING,
        CKPT_PENDING,
        CKPT_WRITING,
        CKPT_STORING,
        CKPT_COMPLETING,
};

static const char *const ckpt_state_names[] = {
        "IDLE", "ALLOCATING", "PENDING", "WRITING", "STORING", "COMPLETING",
};

enum restore_state {
        RESTORE_NEEDED,   /* the next deployment must find its checkpoint first */
        RESTORE_LOADING,  /* reading the store / _metadata */
        RESTORE_READY,    /* rs holds what the next deployment restores from */
        RESTORE_FAILED,
};

struct ack {
        bool acked;
        char *state;            /* owned */
        size_t len;
        uint64_t state_bytes, incremental_bytes, sync_ms, async_ms, alignment_ms,
                alignment_bytes;
        int64_t ack_ms;
};

/* One state of a checkpoint read back from _metadata. */
struct meta_state {
        char vertex_id[JOB_ID_MAX + 1];
        uint32_t vertex;
        uint32_t parallelism;
        uint32_t subtask;
        char *state;            /* owned */
        size_t len;
};

struct meta {
        uint64_t id;
        bool savepoint;
        int64_t trigger_ms;
        uint64_t state_bytes;
        struct meta_state *states;
        size_t n_states;
};

struct hist {
        uint64_t id;
        const char *status;     /* IN_PROGRESS, COMPLETED, FAILED */
        bool savepoint;
        int64_t trigger_ms, latest_ack_ms, end_ms;
        uint64_t state_bytes, incremental_bytes, alignment_bytes;
        uint32_t n_subtasks, n_acked;
        char path[CKPT_PATH_MAX];
        char failure[256];
};

struct savepoint_req {
        char trigger_id[ID_HEX_LEN + 1];
        char target[CKPT_PATH_MAX];     /* directory the savepoint goes under */
        bool cancel_job;
        int status;                     /* 0 IN_PROGRESS, 1 COMPLETED, -1 FAILED */
        uint64_t checkpoint;            /* 0 until triggered */
        char location[CKPT_PATH_MAX];
        char failure[512];
};

#define CKPT_MAX_SAVEPOINT_REQS 16

struct coord_ckpt {
        struct coord_job *j;
        enum ckpt_state state;
        struct event *timer;            /* next trigger, or the timeout of the pending one */

        /* the checkpoint in flight */
        uint64_t id;
        uint32_t attempt;
        bool savepoint;
        int64_t trigger_ms;
        uint64_t trigger_mono_ms;
        struct ack *acks;               /* j->n_tasks entries */
        size_t n_acks;
        char abort_reason[256];         /* set: abort on the next step */
        bool registered;                /* its handles are in the registry */
        bool keep_files;                /* its pointer may exist: delete nothing */
        char meta_path[CKPT_PATH_MAX];
        uint64_t meta_size;
        uint32_t meta_crc;
        uint64_t *subsumed;             /* ids the pointer add retired */
        size_t n_subsumed;
        struct savepoint_req *sp;       /* the savepoint this checkpoint is */

        uint64_t last_end_mono_ms;      /* end of the last checkpoint (min-pause) */
        uint64_t last_trigger_mono_ms;

        /* shared-file registry: NULL until built (first completion or a rebuild) */
        struct sb_registry *registry;
        bool registry_known;            /* built from the retained checkpoints */

        /* restore */
        enum restore_state rstate;
        struct meta rs;                 /* valid in RESTORE_READY; id 0 = fresh start */
        char rs_path[CKPT_PATH_MAX];
        char rs_base[CKPT_PATH_MAX];    /* the directory the restore's handles name files in */
        char restore_from_savepoint[CKPT_PATH_MAX]; /* POST /jobs savepointPath */
        bool marker_checked;            /* <job dir>/_savepoint-restore was read */

        /* statistics for REST */
        uint64_t n_completed, n_failed, n_restored, n_total;
        struct hist history[CKPT_HISTORY]; /* ring, newest at (n_hist - 1) */
        uint32_t n_hist;
        struct hist latest_completed, latest_savepoint, latest_failed;
        bool have_completed, have_savepoint, have_failed;
        uint64_t restored_id;
        uint64_t id_floor;              /* new ids are above it: the highest id restored */
        int64_t restored_ms;
        bool restored_savepoint;
        char restored_path[CKPT_PATH_MAX];
        uint64_t sz_min, sz_max, sz_sum, dur_min, dur_max, dur_sum, inc_min, inc_max, inc_sum;

        struct savepoint_req *sps;      /* CKPT_MAX_SAVEPOINT_REQS, a ring; NULL until the first */
        uint32_t n_sps;
};

/* snprintf for paths and messages: truncation is fine (bounded buffers), and the
 * return value says when it happened. */
static int sfmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sfmt(char *buf, size_t len, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        return n;
}

/* ---- small helpers ---------------------------------------------------------------- */

static void meta_free(struct meta *m) {
        for (size_t i = 0; i < m->n_states; i++)
                free(m->states[i].state);
        free(m->states);
        memset(m, 0, sizeof(*m));
}

static void acks_free(struct coord_ckpt *k) {
        for (size_t i = 0; i < k->n_acks; i++)
                free(k->acks[i].state);
        free(k->acks);
        k->acks = NULL;
        k->n_acks = 0;
}

static int64_t setting_ms(const struct coord_job *j, enum cfg_key key, int which) {
        const struct job_checkpointing *cp = j->g ? &j->g->checkpointing : NULL;
        if (cp && cp->configured) {
                if (which == 0)
                        return cp->interval_ms;
                if (which == 1)
                        return cp->timeout_ms;
                return cp->min_pause_ms;
        }
        return cfg_int(j->c->cfg, key);
}

static int64_t interval_ms(const struct coord_job *j) {
        return setting_ms(j, CFG_CHECKPOINTING_INTERVAL, 0);
}
static int64_t timeout_ms(const struct coord_job *j) {
        return setting_ms(j, CFG_CHECKPOINTING_TIMEOUT, 1);
}
static int64_t min_pause_ms(const struct coord_job *j) {
        return setting_ms(j, CFG_CHECKPOINTING_MIN_PAUSE, 2);
}

/* <state.checkpoints.dir>/<job>; -ENOENT when the key is not set. */
static int job_dir(const struct coord_job *j, char *buf, size_t len) {
        const char *uri = cfg_string(j->c->cfg, CFG_STATE_CHECKPOINTS_DIR);
        char base[CKPT_PATH_MAX], err[256];
        if (!uri || !*uri)
                return -ENOENT;
        int r = storage_uri_to_path(uri, base, sizeof(base), err, sizeof(err));
        if (r < 0)
                return r;
        if ((size_t)sfmt(buf, len, "%s/%s", base, j->id) >= len)
                return -ENAMETOOLONG;
        return 0;
}

static bool chain_is_source(const struct job_graph *g, uint32_t chain) {
        return g->vertices[g->chain_vertices[g->chains[chain].first]].n_inputs == 0;
}

static const char *chain_head_id(const struct job_graph *g, uint32_t chain) {
        return g->vertices[g->chain_vertices[g->chains[chain].first]].id;
}

static void arm_timer(struct coord_ckpt *k, uint64_t ms) {
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(k->timer, &tv);
}

static void set_state(struct coord_ckpt *k, enum ckpt_state st) {
        if (k->state != st)
                log_debug("checkpoint job=%s id=%" PRIu64 " %s -> %s", k->j->id, k->id,
                          ckpt_state_names[k->state], ckpt_state_names[st]);
        k->state = st;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct coord_ckpt *k = arg;
        coord_schedule_reconcile(k->j->c);
}

static struct hist *hist_push(struct coord_ckpt *k) {
        struct hist *h = &k->history[k->n_hist++ % CKPT_HISTORY];
        memset(h, 0, sizeof(*h));
        return h;
}

static struct hist *hist_find(struct coord_ckpt *k, uint64_t id) {
        uint32_t kept = k->n_hist < CKPT_HISTORY ? k->n_hist : CKPT_HISTORY;
        for (uint32_t i = 0; i < kept; i++) {
                struct hist *h = &k->history[(k->n_hist - 1 - i) % CKPT_HISTORY];
                if (h->id == id)
                        return h;
        }
        return NULL;
}

/* The keyed handles inside a subtask state envelope (borrowed from *u, which the caller
 * destroys, and from *body, which the caller frees). */
static int state_keyed_handles(const void *state, size_t len, char **body, msgpack_unpacked *u,
                               struct sb_bytes **ret, size_t *ret_n, char *err, size_t err_len) {
        size_t blen;
        uint32_t v;
        *ret = NULL;
        *ret_n = 0;
        int r = envelope_unwrap(state, len, CKPT_SUBTASK_STATE_KIND,
                                CKPT_SUBTASK_STATE_MAX_VERSION, body, &blen, &v, err, err_len);
        if (r < 0)
                return r;
        const char *why = NULL;
        r = msg_unpack_bounded(*body, blen, MSG_MAX_DEPTH, 1u << 20, u, &why);
        if (r < 0 || u->data.type != MSGPACK_OBJECT_MAP) {
                sfmt(err, err_len, "subtask state body: %s", why ? why : "not a map");
                return -EBADMSG;
        }
        /* worker/substate.h: "ops": [{"op", "keyed": bin, ...}]; a top-level "keyed"
         * (bin or [bin]) is read too */
        const msgpack_object *ops = msg_map_get(&u->data, "ops");
        const msgpack_object *keyed = msg_map_get(&u->data, "keyed");
        size_t cap = 0;
        if (ops && ops->type == MSGPACK_OBJECT_ARRAY)
                cap += ops->via.array.size;
        else if (ops && ops->type != MSGPACK_OBJECT_NIL) {
                sfmt(err, err_len, "subtask state: ops: expected an array");
                return -EBADMSG;
        }
        if (keyed && keyed->type == MSGPACK_OBJECT_ARRAY)
                cap += keyed->via.array.size;
        else if (keyed && keyed->type == MSGPACK_OBJECT_BIN)
                cap += 1;
        else if (keyed && keyed->type != MSGPACK_OBJECT_NIL) {
                sfmt(err, err_len, "subtask state: keyed: expected bin or array of bin");
                return -EBADMSG;
        }
        struct sb_bytes *b = calloc(cap ? cap : 1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; ops && ops->type == MSGPACK_OBJECT_ARRAY && i < ops->via.array.size; i++) {
                const msgpack_object *o = &ops->via.array.ptr[i];
                if (o->type != MSGPACK_OBJECT_MAP) {
                        free(b);
                        sfmt(err, err_len, "subtask state: ops[%zu]: expected a map", i);
                        return -EBADMSG;
                }
                const msgpack_object *k = msg_map_get(o, "keyed");
                if (!k || k->type == MSGPACK_OBJECT_NIL)
                        continue;
                if (k->type != MSGPACK_OBJECT_BIN) {
                        free(b);
                        sfmt(err, err_len, "subtask state: ops[%zu].keyed: expected bin", i);
                        return -EBADMSG;
                }
                b[n].data = k->via.bin.ptr;
                b[n].len = k->via.bin.size;
                n++;
        }
        if (keyed && keyed->type == MSGPACK_OBJECT_BIN) {
                b[n].data = keyed->via.bin.ptr;
                b[n].len = keyed->via.bin.size;
                n++;
        }
        for (size_t i = 0; keyed && keyed->type == MSGPACK_OBJECT_ARRAY && i < keyed->via.array.size; i++) {
                const msgpack_object *o = &keyed->via.array.ptr[i];
                if (o->type != MSGPACK_OBJECT_BIN) {
                        free(b);
                        sfmt(err, err_len, "subtask state: keyed[%zu]: expected bin", i);
                        return -EBADMSG;
                }
                b[n].data = o->via.bin.ptr;
                b[n].len = o->via.bin.size;
                n++;
        }
        *ret = b;
        *ret_n = n;
        return 0;
}

/* Every keyed handle of a set of subtask states, in one flat list. The bytes borrow from
 * the states; the scratch (bodies, unpacked) is released with handles_finish. */
struct handles {
        struct sb_bytes *b;
        size_t n;
        char **bodies;
        msgpack_unpacked *us;
        size_t n_states;
};

static void handles_finish(struct handles *h) {
        for (size_t i = 0; i < h->n_states; i++) {
                msgpack_unpacked_destroy(&h->us[i]);
                free(h->bodies[i]);
        }
        free(h->bodies);
        free(h->us);
        free(h->b);
        memset(h, 0, sizeof(*h));
}

static int handles_collect(const char *const *states, const size_t *lens, size_t n,
                           struct handles *h, char *err, size_t err_len) {
        memset(h, 0, sizeof(*h));
        h->bodies = calloc(n ? n : 1, sizeof(*h->bodies));
        h->us = calloc(n ? n : 1, sizeof(*h->us));
        if (!h->bodies || !h->us) {
                free(h->bodies);
                free(h->us);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                msgpack_unpacked_init(&h->us[i]);
                h->n_states = i + 1;
                struct sb_bytes *b;
                size_t nb;
                int r = state_keyed_handles(states[i], lens[i], &h->bodies[i], &h->us[i], &b,
                                            &nb, err, err_len);
                if (r < 0) {
                        handles_finish(h);
                        return r;
                }
                if (nb) {
                        struct sb_bytes *all = realloc(h->b, (h->n + nb) * sizeof(*all));
                        if (!all) {
                                free(b);
                                handles_finish(h);
                                return -ENOMEM;
                        }
                        memcpy(all + h->n, b, nb * sizeof(*b));
                        h->b = all;
                        h->n += nb;
                }
                free(b);
        }
        return 0;
}

/* ---- _metadata -------------------------------------------------------------------- */

static int meta_encode(struct coord_ckpt *k, int64_t complete_ms, char **ret, size_t *ret_len) {
        struct coord_job *j = k->j;
        const struct job_graph *g = j->g;
        uint64_t total = 0, inc = 0;
        for (size_t i = 0; i < k->n_acks; i++) {
                total += k->acks[i].state_bytes;
                inc += k->acks[i].incremental_bytes;
        }
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 10);
        msg_pack_kv_str(&pk, "job", j->id);
        msg_pack_kv_u64(&pk, "checkpoint", k->id);
        msg_pack_kv_bool(&pk, "savepoint", k->savepoint);
        msg_pack_kv_u64(&pk, "attempt", k->attempt);
        msg_pack_kv_i64(&pk, "trigger_ms", k->trigger_ms);
        msg_pack_kv_i64(&pk, "complete_ms", complete_ms);
        msg_pack_kv_u64(&pk, "max_parallelism", g->max_parallelism);
        msg_pack_kv_u64(&pk, "state_bytes", total);
        msg_pack_kv_u64(&pk, "incremental_bytes", inc);
        msg_pack_cstr(&pk, "states");
        msgpack_pack_array(&pk, k->n_acks);
        for (size_t i = 0; i < k->n_acks; i++) {
                const struct coord_task *t = &j->tasks[i];
                const struct ack *a = &k->acks[i];
                msgpack_pack_map(&pk, 7);
                msg_pack_kv_u64(&pk, "vertex", t->chain);
                msg_pack_kv_str(&pk, "vertex_id", chain_head_id(g, t->chain));
                msg_pack_kv_u64(&pk, "parallelism", g->chains[t->chain].parallelism);
                msg_pack_kv_u64(&pk, "subtask", t->subtask);
                msg_pack_kv_bin(&pk, "state", a->state, a->len);
                msg_pack_kv_u64(&pk, "state_bytes", a->state_bytes);
                msg_pack_kv_u64(&pk, "incremental_bytes", a->incremental_bytes);
        }
        int r = envelope_wrap(CKPT_META_KIND, CKPT_META_VERSION, sb.data, sb.size, ret, ret_len);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* Parses _metadata bytes read from `path` (named in every error). */
static int meta_decode(const char *path, const void *data, size_t len, const char *job,
                       struct meta *ret, char *err, size_t err_len) {
        char *body = NULL;
        size_t blen;
        uint32_t v;
        char why[256] = "";
        struct meta m = {0};
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        int r = envelope_unwrap(data, len, CKPT_META_KIND, CKPT_META_VERSION, &body, &blen, &v,
                                why, sizeof(why));
        if (r < 0) {
                sfmt(err, err_len, "%s: %s", path, why);
                goto out;
        }
        const char *pwhy = NULL;
        r = msg_unpack_bounded(body, blen, MSG_MAX_DEPTH, 1u << 24, &u, &pwhy);
        if (r < 0 || u.data.type != MSGPACK_OBJECT_MAP) {
                sfmt(err, err_len, "%s: body: %s", path, pwhy ? pwhy : "not a map");
                r = -EBADMSG;
                goto out;
        }
        const msgpack_object *map = &u.data, *states;
        char mjob[ID_HEX_LEN + 2];
        const char *field = NULL;
        if (msg_get_strbuf(map, "job", mjob, sizeof(mjob)) < 0 || (job && strcmp(mjob, job) != 0))
                field = "job";
        else if (msg_get_u64(map, "checkpoint", &m.id) < 0 || m.id == 0)
                field = "checkpoint";
        else if (msg_get_bool(map, "savepoint", &m.savepoint) < 0)
                field = "savepoint";
        else if (msg_get_i64(map, "trigger_ms", &m.trigger_ms) < 0)
                field = "trigger_ms";
        else if (msg_get_u64(map, "state_bytes", &m.state_bytes) < 0)
                field = "state_bytes";
        else if (msg_get_array(map, "states", &states) < 0)
                field = "states";
        if (field) {
                sfmt(err, err_len, "%s: field %s missing or invalid", path, field);
                r = -EBADMSG;
                goto out;
        }
        size_t n = states->via.array.size;
        m.states = calloc(n ? n : 1, sizeof(*m.states));
        if (!m.states) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *s = &states->via.array.ptr[i];
                struct meta_state *ms = &m.states[i];
                const void *st;
                size_t sl;
                field = NULL;
                if (s->type != MSGPACK_OBJECT_MAP)
                        field = "";
                else if (msg_get_u32(s, "vertex", &ms->vertex) < 0)
                        field = ".vertex";
                else if (msg_get_strbuf(s, "vertex_id", ms->vertex_id, sizeof(ms->vertex_id)) < 0)
                        field = ".vertex_id";
                else if (msg_get_u32(s, "parallelism", &ms->parallelism) < 0 || ms->parallelism == 0)
                        field = ".parallelism";
                else if (msg_get_u32(s, "subtask", &ms->subtask) < 0 ||
                         ms->subtask >= ms->parallelism)
                        field = ".subtask";
                else if (msg_get_bin(s, "state", &st, &sl) < 0 || sl > CKPT_STATE_MAX_BYTES)
                        field = ".state";
                if (field) {
                        sfmt(err, err_len, "%s: field states[%zu]%s missing or invalid", path,
                                 i, field);
                        m.n_states = i;
                        r = -EBADMSG;
                        goto out;
                }
                ms->state = malloc(sl ? sl : 1);
                if (!ms->state) {
                        m.n_states = i;
                        r = -ENOMEM;
                        goto out;
                }
                memcpy(ms->state, st, sl);
                ms->len = sl;
                m.n_states = i + 1;
        }
        *ret = m;
        memset(&m, 0, sizeof(m));
        r = 0;
out:
        meta_free(&m);
        msgpack_unpacked_destroy(&u);
        free(body);
        return r;
}

/* ---- file work (bgwork.c thread) -------------------------------------------------- */

struct file_task {
        struct coord_bg_task bg;
        struct coord *c;
        uint64_t gen;
        char job[ID_HEX_LEN + 1];
        uint64_t id;
        /* write */
        char path[CKPT_PATH_MAX];
        char *data;
        size_t len;
        /* delete: paths to unlink, then directories to remove */
        char **del;
        size_t n_del;
        /* read: the files to read (paths), their bytes and metadata back */
        size_t n_read;
        char **read_paths;
        struct meta *metas;
        bool foreign;           /* read: a savepoint of another job */
        int r;
        char err[768];
};

static void file_task_free(struct file_task *t) {
        free(t->data);
        for (size_t i = 0; i < t->n_del; i++)
                free(t->del[i]);
        free(t->del);
        for (size_t i = 0; i < t->n_read; i++) {
                free(t->read_paths[i]);
                if (t->metas)
                        meta_free(&t->metas[i]);
        }
        free(t->read_paths);
        free(t->metas);
        free(t);
}

static struct file_task *file_task_new(struct coord_job *j, uint64_t id) {
        struct file_task *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->c = j->c;
        t->gen = j->c->leader_gen;
        sfmt(t->job, sizeof(t->job), "%s", j->id);
        t->id = id;
        return t;
}

static int file_task_add_del(struct file_task *t, const char *path) {
        char **d = realloc(t->del, (t->n_del + 1) * sizeof(*d));
        if (!d)
                return -ENOMEM;
        t->del = d;
        if (!(t->del[t->n_del] = strdup(path)))
                return -ENOMEM;
        t->n_del++;
        return 0;
}

static void work_delete(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        for (size_t i = 0; i < t->n_del; i++) {
                int r = fs_rm_rf(t->del[i]);
                if (r < 0 && t->r == 0) {
                        t->r = r;
                        sfmt(t->err, sizeof(t->err), "%s: %s", t->del[i], err_str(r));
                }
        }
}

static void done_delete(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        if (t->r < 0)
                log_warn("job %s: deleting files of checkpoint %" PRIu64 ": %s", t->job, t->id,
                         t->err);
        else
                log_debug("job %s: deleted %zu path(s) of checkpoint %" PRIu64, t->job, t->n_del,
                          t->id);
        file_task_free(t);
}

static void work_write(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        char dir[CKPT_PATH_MAX];
        sfmt(dir, sizeof(dir), "%s", t->path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        int r = fs_mkdir_p(dir, 0755);
        if (r == 0)
                r = fs_write_atomic(t->path, t->data, t->len);
        if (r < 0) {
                t->r = r;
                sfmt(t->err, sizeof(t->err), "%s: %s", t->path, err_str(r));
        }
}

static void work_read_marker(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        t->r = fs_read_all(t->path, CKPT_PATH_MAX, &t->data, &t->len);
}

static void done_write_marker(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        if (t->r < 0)
                log_error(t->r, "job %s: recording the savepoint to restore from: %s", t->job,
                          t->err);
        file_task_free(t);
}

static void work_read(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        t->metas = calloc(t->n_read ? t->n_read : 1, sizeof(*t->metas));
        if (!t->metas) {
                t->r = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < t->n_read; i++) {
                char *data = NULL;
                size_t len = 0;
                int r = fs_read_all(t->read_paths[i], CKPT_META_MAX_BYTES, &data, &len);
                if (r < 0) {
                        t->r = r;
                        sfmt(t->err, sizeof(t->err), "%s: %s", t->read_paths[i], err_str(r));
                        return;
                }
                r = meta_decode(t->read_paths[i], data, len, t->foreign ? NULL : t->job,
                                &t->metas[i], t->err, sizeof(t->err));
                free(data);
                if (r < 0) {
                        t->r = r;
                        return;
                }
        }
}

/* The job of a completion, or NULL when the term or the job is gone. */
static struct coord_ckpt *ckpt_of(struct coord *c, uint64_t gen, const char *job) {
        if (c->leader_gen != gen)
                return NULL;
        struct coord_job *j = coord_job_find(c, job);
        return j ? j->ckpt : NULL;
}

/* ---- messages --------------------------------------------------------------------- */

/* One-way message to every worker placed for the current attempt. */
static void send_to_attempt(struct coord_job *j, const char *type, uint64_t id,
                            const char *reason, bool sources_only) {
        struct coord *c = j->c;
        if (!j->deployed)
                return;
        struct rpc_msg m;
        rpc_msg_init(&m, reason ? 4 : (strcmp(type, PROTO_TRIGGER_CHECKPOINT) == 0 ? 5 : 3));
        rpc_msg_set_epoch(&m, c->epoch);
        msg_pack_kv_str(&m.pk, "job", j->id);
        msg_pack_kv_u64(&m.pk, "attempt", j->attempt);
        msg_pack_kv_u64(&m.pk, "checkpoint", id);
        if (reason)
                msg_pack_kv_str(&m.pk, "reason", reason);
        if (strcmp(type, PROTO_TRIGGER_CHECKPOINT) == 0) {
                msg_pack_kv_u64(&m.pk, "timestamp_ms", (uint64_t)j->ckpt->trigger_ms);
                msg_pack_kv_bool(&m.pk, "savepoint", j->ckpt->savepoint);
        }
        for (uint32_t s = 0; s < j->slots_needed; s++) {
                struct coord_worker *w = j->placement[s].worker;
                if (!w)
                        continue;
                bool first = true;
                for (uint32_t q = 0; q < s; q++)
                        if (j->placement[q].worker == w)
                                first = false;
                if (!first)
                        continue;
                if (sources_only) {
                        bool has = false;
                        for (size_t i = 0; i < j->n_tasks; i++)
                                if (j->placement[j->tasks[i].job_slot].worker == w &&
                                    chain_is_source(j->g, j->tasks[i].chain))
                                        has = true;
                        if (!has)
                                continue;
                }
                int r = rpc_send(w->conn, type, &m);
                if (r < 0)
                        log_warn("%s job=%s id=%" PRIu64 " to worker %s failed: %s", type, j->id,
                                 id, w->id, err_str(r));
        }
        rpc_msg_finish(&m);
}

/* ---- abort and completion ---------------------------------------------------------- */

static void stats_failed(struct coord_ckpt *k, const char *reason) {
        struct hist *h = hist_find(k, k->id);
        if (h) {
                h->status = "FAILED";
                h->end_ms = clock_wall_ms();
                sfmt(h->failure, sizeof(h->failure), "%s", reason);
                k->latest_failed = *h;
                k->have_failed = true;
        }
        k->n_failed++;
}

static void sp_fail(struct coord_ckpt *k, const char *reason) {
        if (!k->sp)
                return;
        k->sp->status = -1;
        sfmt(k->sp->failure, sizeof(k->sp->failure), "savepoint failed: %s", reason);
        k->sp = NULL;
}

/* Aborts the checkpoint in flight: tells the attempt's workers (when it is still the
 * current one), deletes what only it uploaded. keep_files: its pointer may exist. */
static void ckpt_abort(struct coord_ckpt *k, const char *reason, bool keep_files) {
        struct coord_job *j = k->j;
        log_event_warn("-checkpoint-aborted", "job=%s id=%" PRIu64 " reason=%s", j->id, k->id,
                       reason);
        if (timeout_ms(j) > 0)
                evtimer_del(k->timer);
        if (j->deployed && j->attempt == k->attempt)
                send_to_attempt(j, PROTO_CHECKPOINT_ABORT, k->id, reason, false);
        stats_failed(k, reason);
        sp_fail(k, reason);
        char dir[CKPT_PATH_MAX];
        if (!keep_files && job_dir(j, dir, sizeof(dir)) == 0) {
                struct file_task *t = file_task_new(j, k->id);
                if (t) {
                        char p[CKPT_PATH_MAX + 64];
                        if (k->registered && k->registry) {
                                /* registered, then the write or the pointer failed */
                                struct sb_paths ps = {0};
                                if (sb_registry_retire(k->registry, k->id, &ps) == 0)
                                        for (size_t i = 0; i < ps.n; i++) {
                                                sfmt(p, sizeof(p), "%s/%s", dir, ps.paths[i]);
                                                file_task_add_del(t, p);
                                        }
                                sb_paths_finish(&ps);
                        } else {
                                /* new shared files of the acks that no retained checkpoint
                                 * names */
                                for (size_t i = 0; i < k->n_acks; i++) {
                                        if (!k->acks[i].acked)
                                                continue;
                                        const char *s = k->acks[i].state;
                                        size_t l = k->acks[i].len;
                                        struct handles hs;
                                        char err[256];
                                        if (handles_collect(&s, &l, 1, &hs, err, sizeof(err)) < 0)
                                                continue;
                                        for (size_t h = 0; h < hs.n; h++) {
                                                struct sb_handle *sh;
                                                if (sb_handle_parse(hs.b[h].data, hs.b[h].len, &sh,
                                                                    err, sizeof(err)) < 0)
                                                        continue;
                                                for (size_t f = 0; f < sh->n_shared; f++) {
                                                        char rel[64];
                                                        if (!sh->shared[f].is_new)
                                                                continue;
                                                        sb_handle_shared_path(&sh->shared[f], rel,
                                                                              sizeof(rel));
                                                        if (k->registry &&
                                                            sb_registry_holds(k->registry, rel))
                                                                continue;
                                                        sfmt(p, sizeof(p), "%s/%s", dir, rel);
                                                        file_task_add_del(t, p);
                                                }
                                                sb_handle_free(sh);
                                        }
                                        handles_finish(&hs);
                                }
                        }
                        sfmt(p, sizeof(p), "%s/chk-%" PRIu64, dir, k->id);
                        file_task_add_del(t, p);
                        t->bg.work = work_delete;
                        t->bg.done = done_delete;
                        coord_bg_submit(&t->bg);
                }
        }
        k->registered = false;
        k->keep_files = false;
        acks_free(k);
        free(k->subsumed);
        k->subsumed = NULL;
        k->n_subsumed = 0;
        k->abort_reason[0] = '\0';
        k->last_end_mono_ms = clock_mono_ms();
        set_state(k, CKPT_IDLE);
        coord_schedule_reconcile(j->c);
}

static void ckpt_complete(struct coord_ckpt *k) {
        struct coord_job *j = k->j;
        int64_t now = clock_wall_ms();
        uint64_t bytes = 0, inc = 0, align = 0;
        int64_t last_ack = k->trigger_ms;
        for (size_t i = 0; i < k->n_acks; i++) {
                bytes += k->acks[i].state_bytes;
                inc += k->acks[i].incremental_bytes;
                align += k->acks[i].alignment_bytes;
                if (k->acks[i].ack_ms > last_ack)
                        last_ack = k->acks[i].ack_ms;
        }
        uint64_t dur = (uint64_t)(now - k->trigger_ms);
        if (j->deployed && j->attempt == k->attempt)
                send_to_attempt(j, PROTO_CHECKPOINT_COMPLETE, k->id, NULL, false);
        log_event("+checkpoint-completed", "job=%s id=%" PRIu64 " bytes=%" PRIu64
                  " duration_ms=%" PRIu64 "%s", j->id, k->id, bytes, dur,
                  k->savepoint ? " savepoint=true" : "");
        struct hist *h = hist_find(k, k->id);
        if (h) {
                h->status = "COMPLETED";
                h->latest_ack_ms = last_ack;
                h->end_ms = now;
                h->state_bytes = bytes;
                h->incremental_bytes = inc;
                h->alignment_bytes = align;
                h->n_acked = (uint32_t)k->n_acks;
                sfmt(h->path, sizeof(h->path), "file://%s", k->meta_path);
                char *sl = strrchr(h->path, '/');
                if (sl)
                        *sl = '\0';
                if (k->savepoint) {
                        k->latest_savepoint = *h;
                        k->have_savepoint = true;
                } else {
                        k->latest_completed = *h;
                        k->have_completed = true;
                }
        }
        if (k->n_completed == 0) {
                k->sz_min = k->sz_max = bytes;
                k->dur_min = k->dur_max = dur;
                k->inc_min = k->inc_max = inc;
        }
        k->n_completed++;
        k->sz_min = bytes < k->sz_min ? bytes : k->sz_min;
        k->sz_max = bytes > k->sz_max ? bytes : k->sz_max;
        k->sz_sum += bytes;
        k->dur_min = dur < k->dur_min ? dur : k->dur_min;
        k->dur_max = dur > k->dur_max ? dur : k->dur_max;
        k->dur_sum += dur;
        k->inc_min = inc < k->inc_min ? inc : k->inc_min;
        k->inc_max = inc > k->inc_max ? inc : k->inc_max;
        k->inc_sum += inc;

        /* retire the subsumed checkpoints: their now unreferenced files and chk dirs */
        char dir[CKPT_PATH_MAX];
        if (k->n_subsumed && job_dir(j, dir, sizeof(dir)) == 0) {
                struct file_task *t = file_task_new(j, k->id);
                for (size_t s = 0; t && s < k->n_subsumed; s++) {
                        char p[CKPT_PATH_MAX + 64];
                        struct sb_paths ps = {0};
                        if (k->registry && sb_registry_retire(k->registry, k->subsumed[s], &ps) == 0)
                                for (size_t i = 0; i < ps.n; i++) {
                                        sfmt(p, sizeof(p), "%s/%s", dir, ps.paths[i]);
                                        file_task_add_del(t, p);
                                }
                        sb_paths_finish(&ps);
                        sfmt(p, sizeof(p), "%s/chk-%" PRIu64, dir, k->subsumed[s]);
                        file_task_add_del(t, p);
                        log_info("job %s: checkpoint %" PRIu64 " retired (subsumed by %" PRIu64 ")",
                                 j->id, k->subsumed[s], k->id);
                }
                if (t) {
                        t->bg.work = work_delete;
                        t->bg.done = done_delete;
                        coord_bg_submit(&t->bg);
                }
        }
        if (k->sp)
                coord_ckpt_savepoint_completed(k, k->sp);
        k->sp = NULL;
        k->registered = false;
        acks_free(k);
        free(k->subsumed);
        k->subsumed = NULL;
        k->n_subsumed = 0;
        k->last_end_mono_ms = clock_mono_ms();
        set_state(k, CKPT_IDLE);
        coord_schedule_reconcile(j->c);
}

/* ---- the pointer and the write ----------------------------------------------------- */

struct store_op {
        struct coord *c;
        uint64_t gen;
        char job[ID_HEX_LEN + 1];
        uint64_t id;
};

static struct store_op *store_op_new(struct coord_job *j, uint64_t id) {
        struct store_op *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->c = j->c;
        s->gen = j->c->leader_gen;
        sfmt(s->job, sizeof(s->job), "%s", j->id);
        s->id = id;
        return s;
}

static void pointer_added(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_op *s = arg;
        struct coord_ckpt *k = ckpt_of(s->c, s->gen, s->job);
        if (k && k->state == CKPT_STORING && k->id == s->id) {
                if (rep->r < 0) {
                        log_error(rep->r, "job %s: checkpoint %" PRIu64 " pointer: %s", s->job,
                                  s->id, rep->error ? rep->error : "");
                        /* fenced or ambiguous: a pointer may name the files: keep them */
                        k->keep_files = rep->r == -ESTALE || rep->r == -ECANCELED ||
                                        rep->ambiguous;
                        sfmt(k->abort_reason, sizeof(k->abort_reason), "pointer-write-failed");
                        coord_schedule_reconcile(s->c);
                } else {
                        k->subsumed = NULL;
                        k->n_subsumed = 0;
                        if (rep->n_ids) {
                                k->subsumed = calloc(rep->n_ids, sizeof(uint64_t));
                                if (k->subsumed) {
                                        memcpy(k->subsumed, rep->ids, rep->n_ids * sizeof(uint64_t));
                                        k->n_subsumed = rep->n_ids;
                                }
                        }
                        set_state(k, CKPT_COMPLETING);
                        coord_schedule_reconcile(s->c);
                }
        }
        free(s);
}

static void meta_written(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        struct coord_ckpt *k = ckpt_of(t->c, t->gen, t->job);
        if (k && k->state == CKPT_WRITING && k->id == t->id) {
                if (t->r < 0) {
                        log_error(t->r, "job %s: writing checkpoint %" PRIu64 " metadata: %s",
                                  t->job, t->id, t->err);
                        sfmt(k->abort_reason, sizeof(k->abort_reason), "metadata-write-failed");
                } else {
                        k->meta_size = t->len;
                        k->meta_crc = crc32c(t->data, t->len);
                        set_state(k, CKPT_STORING);
                        k->abort_reason[0] = '\0';
                }
                coord_schedule_reconcile(t->c);
        }
        file_task_free(t);
}

static void counter_got(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct store_op *s = arg;
        struct coord_ckpt *k = ckpt_of(s->c, s->gen, s->job);
        if (k && k->state == CKPT_ALLOCATING) {
                if (rep->r < 0) {
                        log_error(rep->r, "job %s: next checkpoint id: %s", s->job,
                                  rep->error ? rep->error : "");
                        k->last_end_mono_ms = clock_mono_ms();
                        set_state(k, CKPT_IDLE);
                        sp_fail(k, "no checkpoint id");
                } else {
                        k->id = rep->id;
                        set_state(k, CKPT_PENDING);
                        k->trigger_ms = 0; /* the trigger goes out from the step */
                }
                coord_schedule_reconcile(s->c);
        }
        free(s);
}

/* ---- the step ----------------------------------------------------------------------- */

static void start_finalize(struct coord_ckpt *k) {
        struct coord_job *j = k->j;
        char dir[CKPT_PATH_MAX], err[512];
        int r = job_dir(j, dir, sizeof(dir));
        if (r < 0) {
                ckpt_abort(k, "no-checkpoint-dir", false);
                return;
        }
        /* register the keyed handles first: a refused handle aborts (registry.h) */
        if (!k->registry) {
                r = sb_registry_create(&k->registry);
                if (r < 0) {
                        ckpt_abort(k, "out-of-memory", false);
                        return;
                }
        }
        {
                const char **states = calloc(k->n_acks ? k->n_acks : 1, sizeof(*states));
                size_t *lens = calloc(k->n_acks ? k->n_acks : 1, sizeof(*lens));
                struct handles hs = {0};
                r = states && lens ? 0 : -ENOMEM;
                for (size_t i = 0; r == 0 && i < k->n_acks; i++) {
                        states[i] = k->acks[i].state;
                        lens[i] = k->acks[i].len;
                }
                if (r == 0)
                        r = handles_collect(states, lens, k->n_acks, &hs, err, sizeof(err));
                if (r == 0)
                        r = sb_registry_register(k->registry, k->id, hs.b, hs.n, err, sizeof(err));
                handles_finish(&hs);
                free(states);
                free(lens);
                if (r < 0) {
                        log_error(r, "job %s: checkpoint %" PRIu64 " handles refused: %s", j->id,
                                  k->id, err);
                        ckpt_abort(k, r == -ESTALE ? "stale-base" : "bad-state-handle", false);
                        return;
                }
                k->registered = true;
        }
        struct file_task *t = file_task_new(j, k->id);
        if (!t) {
                ckpt_abort(k, "out-of-memory", false);
                return;
        }
        sfmt(k->meta_path, sizeof(k->meta_path), "%s/chk-%" PRIu64 "/_metadata", dir, k->id);
        sfmt(t->path, sizeof(t->path), "%s", k->meta_path);
        r = meta_encode(k, clock_wall_ms(), &t->data, &t->len);
        if (r < 0) {
                file_task_free(t);
                ckpt_abort(k, "metadata-encode-failed", false);
                return;
        }
        t->bg.work = work_write;
        t->bg.done = meta_written;
        set_state(k, CKPT_WRITING);
        coord_bg_submit(&t->bg);
}

static void send_trigger(struct coord_ckpt *k) {
        struct coord_job *j = k->j;
        k->attempt = j->attempt;
        k->trigger_ms = clock_wall_ms();
        k->trigger_mono_ms = clock_mono_ms();
        k->last_trigger_mono_ms = k->trigger_mono_ms;
        acks_free(k);
        k->acks = calloc(j->n_tasks ? j->n_tasks : 1, sizeof(*k->acks));
        if (!k->acks) {
                ckpt_abort(k, "out-of-memory", true);
                return;
        }
        k->n_acks = j->n_tasks;
        k->n_total++;
        struct hist *h = hist_push(k);
        h->id = k->id;
        h->status = "IN_PROGRESS";
        h->savepoint = k->savepoint;
        h->trigger_ms = k->trigger_ms;
        h->latest_ack_ms = -1;
        h->n_subtasks = (uint32_t)j->n_tasks;
        send_to_attempt(j, PROTO_TRIGGER_CHECKPOINT, k->id, NULL, true);
        log_event("+checkpoint-triggered", "job=%s id=%" PRIu64 " attempt=%" PRIu32 "%s", j->id,
                  k->id, k->attempt, k->savepoint ? " savepoint=true" : "");
        int64_t to = timeout_ms(j);
        if (to > 0)
                arm_timer(k, (uint64_t)to);
}

static bool all_acked(const struct coord_ckpt *k) {
        if (k->n_acks == 0)
                return false;
        for (size_t i = 0; i < k->n_acks; i++)
                if (!k->acks[i].acked)
                        return false;
        return true;
}

void coord_ckpt_step(struct coord *c, struct coord_job *j) {
        struct coord_ckpt *k = j->ckpt;
        if (!k || !j->g)
                return;
        bool running = j->state == COORD_JOB_RUNNING && j->deployed;
        switch (k->state) {
        case CKPT_IDLE: {
                if (coord_job_state_is_terminal(j->state)) {
                        /* savepoint requests the job will never take */
                        for (uint32_t i = 0; k->sps && i < k->n_sps && i < CKPT_MAX_SAVEPOINT_REQS; i++)
                                if (k->sps[i].status == 0) {
                                        k->sps[i].status = -1;
                                        sfmt(k->sps[i].failure, sizeof(k->sps[i].failure),
                                             "savepoint failed: job %s", coord_job_state_name(j->state));
                                }
                        return;
                }
                if (!running || !c->leader_ready)
                        return;
                char dir[CKPT_PATH_MAX];
                if (job_dir(j, dir, sizeof(dir)) < 0)
                        return;
                struct savepoint_req *sp = NULL;
                for (uint32_t i = 0; k->sps && i < k->n_sps && i < CKPT_MAX_SAVEPOINT_REQS; i++)
                        if (k->sps[i].status == 0 && k->sps[i].checkpoint == 0)
                                sp = &k->sps[i];
                int64_t iv = interval_ms(j);
                if (!sp) {
                        if (iv <= 0)
                                return;
                        uint64_t now = clock_mono_ms();
                        uint64_t due = k->last_trigger_mono_ms + (uint64_t)iv;
                        uint64_t pause_end = k->last_end_mono_ms + (uint64_t)min_pause_ms(j);
                        if (pause_end > due)
                                due = pause_end;
                        if (k->last_trigger_mono_ms == 0 && k->last_end_mono_ms == 0)
                                due = now; /* first one: at once */
                        if (now < due) {
                                if (!evtimer_pending(k->timer, NULL))
                                        arm_timer(k, due - now);
                                return;
                        }
                }
                struct store_op *s = store_op_new(j, 0);
                if (!s)
                        return;
                int r = ha_counter_next_above(c->store, j->id, k->id_floor, counter_got, s);
                if (r < 0) {
                        free(s);
                        log_error(r, "job %s: asking for a checkpoint id", j->id);
                        return;
                }
                k->savepoint = sp != NULL;
                k->sp = sp;
                if (sp)
                        sp->checkpoint = UINT64_MAX; /* taken */
                set_state(k, CKPT_ALLOCATING);
                return;
        }
        case CKPT_ALLOCATING:
                return;
        case CKPT_PENDING:
                if (k->trigger_ms == 0) {
                        if (!running) {
                                log_info("job %s: checkpoint %" PRIu64 " not triggered: job %s",
                                         j->id, k->id, coord_job_state_name(j->state));
                                k->last_end_mono_ms = clock_mono_ms();
                                sp_fail(k, "job not running");
                                set_state(k, CKPT_IDLE);
                                return;
                        }
                        if (k->sp)
                                k->sp->checkpoint = k->id;
                        send_trigger(k);
                        return;
                }
                if (k->abort_reason[0]) {
                        char reason[256];
                        sfmt(reason, sizeof(reason), "%s", k->abort_reason);
                        ckpt_abort(k, reason, false);
                        return;
                }
                if (!j->deployed || j->attempt != k->attempt ||
                    j->state != COORD_JOB_RUNNING) {
                        const char *why = "task-failure";
                        if (j->state == COORD_JOB_CANCELLING || j->state == COORD_JOB_CANCELED)
                                why = "job-canceled";
                        else if (j->state == COORD_JOB_FINISHED)
                                why = "job-finished";
                        ckpt_abort(k, why, false);
                        return;
                }
                if (timeout_ms(j) > 0) {
                        uint64_t since = clock_mono_ms() - k->trigger_mono_ms;
                        if (since >= (uint64_t)timeout_ms(j)) {
                                ckpt_abort(k, "timeout", false);
                                return;
                        }
                        if (!evtimer_pending(k->timer, NULL))
                                arm_timer(k, (uint64_t)timeout_ms(j) - since);
                }
                if (all_acked(k)) {
                        evtimer_del(k->timer);
                        start_finalize(k);
                }
                return;
        case CKPT_WRITING:
                if (k->abort_reason[0]) {
                        char reason[256];
                        sfmt(reason, sizeof(reason), "%s", k->abort_reason);
                        ckpt_abort(k, reason, false);
                }
                return;
        case CKPT_STORING: {
                if (k->abort_reason[0]) {
                        char reason[256];
                        sfmt(reason, sizeof(reason), "%s", k->abort_reason);
                        if (k->keep_files)
                                k->registered = false; /* the registry keeps n's files */
                        ckpt_abort(k, reason, k->keep_files);
                        return;
                }
                if (k->meta_size == 0)
                        return; /* the pointer add is in flight */
                struct ha_pointer p = {.size_bytes = k->meta_size, .crc = k->meta_crc, .id = k->id};
                sfmt(p.path, sizeof(p.path), "file://%s", k->meta_path);
                struct store_op *s = store_op_new(j, k->id);
                if (!s)
                        return;
                int64_t retain = cfg_int(c->cfg, CFG_STATE_CHECKPOINTS_NUM_RETAINED);
                int r = ha_checkpoint_add(c->store, j->id, &p, retain < 1 ? 1u : (unsigned)retain,
                                          pointer_added, s);
                if (r < 0) {
                        free(s);
                        ckpt_abort(k, "pointer-write-failed", false);
                        return;
                }
                k->meta_size = 0; /* marks the add as sent */
                return;
        }
        case CKPT_COMPLETING:
                ckpt_complete(k);
                return;
        }
}

/* ---- acks and declines ------------------------------------------------------------- */

static struct coord_ckpt *ack_target(struct coord *c, struct coord_worker *w,
                                     const msgpack_object *map, uint32_t *ret_task,
                                     const char **ret_field, uint64_t *ret_id) {
        char job[ID_HEX_LEN + 2];
        uint32_t attempt, vertex, subtask;
        uint64_t id;
        *ret_field = NULL;
        if (msg_get_strbuf(map, "job", job, sizeof(job)) < 0 || strlen(job) != ID_HEX_LEN)
                *ret_field = "job";
        else if (msg_get_u32(map, "attempt", &attempt) < 0)
                *ret_field = "attempt";
        else if (msg_get_u64(map, "checkpoint", &id) < 0 || id == 0)
                *ret_field = "checkpoint";
        else if (msg_get_u32(map, "vertex", &vertex) < 0)
                *ret_field = "vertex";
        else if (msg_get_u32(map, "subtask", &subtask) < 0)
                *ret_field = "subtask";
        if (*ret_field)
                return NULL;
        *ret_id = id;
        struct coord_job *j = coord_job_find(c, job);
        struct coord_ckpt *k = j ? j->ckpt : NULL;
        if (!k || k->state != CKPT_PENDING || k->trigger_ms == 0 || k->id != id ||
            k->attempt != attempt || !j->deployed || j->attempt != attempt)
                return NULL;
        for (size_t i = 0; i < j->n_tasks; i++) {
                const struct coord_task *t = &j->tasks[i];
                if (t->chain == vertex && t->subtask == subtask) {
                        if (j->placement[t->job_slot].worker != w)
                                return NULL;
                        *ret_task = (uint32_t)i;
                        return k;
                }
        }
        return NULL;
}

void coord_ckpt_on_ack(struct coord *c, struct coord_worker *w, const msgpack_object *map) {
        uint32_t ti = 0;
        uint64_t id = 0;
        const char *field;
        struct coord_ckpt *k = ack_target(c, w, map, &ti, &field, &id);
        if (field) {
                log_warn("%s from worker %s: %s missing or invalid; ignored", PROTO_ACK_CHECKPOINT,
                         w->id, field);
                return;
        }
        if (!k) {
                log_debug("%s id %" PRIu64 " from worker %s: not a pending checkpoint of a "
                          "current task; ignored", PROTO_ACK_CHECKPOINT, id, w->id);
                return;
        }
        struct ack *a = &k->acks[ti];
        if (a->acked)
                return;
        const void *state;
        size_t len;
        struct ack na = {0};
        field = NULL;
        if (msg_get_bin(map, "state", &state, &len) < 0)
                field = "state";
        else if (msg_get_u64(map, "state_bytes", &na.state_bytes) < 0)
                field = "state_bytes";
        else if (msg_get_u64(map, "incremental_bytes", &na.incremental_bytes) < 0)
                field = "incremental_bytes";
        else if (msg_map_get(map, "sync_ms") && msg_get_u64(map, "sync_ms", &na.sync_ms) < 0)
                field = "sync_ms";
        else if (msg_map_get(map, "async_ms") && msg_get_u64(map, "async_ms", &na.async_ms) < 0)
                field = "async_ms";
        else if (msg_map_get(map, "alignment_ms") &&
                 msg_get_u64(map, "alignment_ms", &na.alignment_ms) < 0)
                field = "alignment_ms";
        else if (msg_map_get(map, "alignment_bytes") &&
                 msg_get_u64(map, "alignment_bytes", &na.alignment_bytes) < 0)
                field = "alignment_bytes";
        if (field) {
                log_warn("%s from worker %s: %s missing or invalid: declining checkpoint %" PRIu64,
                         PROTO_ACK_CHECKPOINT, w->id, field, id);
                sfmt(k->abort_reason, sizeof(k->abort_reason), "bad-ack(%s)", field);
                coord_schedule_reconcile(c);
                return;
        }
        if (len > CKPT_STATE_MAX_BYTES) {
                log_warn("%s from worker %s: state of %zu bytes is over the limit of %u: "
                         "declining checkpoint %" PRIu64, PROTO_ACK_CHECKPOINT, w->id, len,
                         CKPT_STATE_MAX_BYTES, id);
                sfmt(k->abort_reason, sizeof(k->abort_reason), "state-too-large");
                coord_schedule_reconcile(c);
                return;
        }
        /* the state must be a subtask state envelope whose keyed handles parse */
        {
                struct handles hs;
                char err[256];
                const char *s = state;
                int r = handles_collect(&s, &len, 1, &hs, err, sizeof(err));
                bool collected = r == 0;
                for (size_t h = 0; r == 0 && h < hs.n; h++) {
                        struct sb_handle *sh = NULL;
                        r = sb_handle_parse(hs.b[h].data, hs.b[h].len, &sh, err, sizeof(err));
                        if (r == 0)
                                sb_handle_free(sh);
                }
                if (collected)
                        handles_finish(&hs);
                if (r < 0) {
                        log_warn("%s from worker %s: bad state: %s: declining checkpoint %" PRIu64,
                                 PROTO_ACK_CHECKPOINT, w->id, err, id);
                        sfmt(k->abort_reason, sizeof(k->abort_reason), "bad-state");
                        coord_schedule_reconcile(c);
                        return;
                }
        }
        na.state = malloc(len ? len : 1);
        if (!na.state) {
                sfmt(k->abort_reason, sizeof(k->abort_reason), "out-of-memory");
                coord_schedule_reconcile(c);
                return;
        }
        memcpy(na.state, state, len);
        na.len = len;
        na.acked = true;
        na.ack_ms = clock_wall_ms();
        *a = na;
        struct hist *h = hist_find(k, k->id);
        if (h) {
                h->n_acked++;
                h->latest_ack_ms = na.ack_ms;
                h->state_bytes += na.state_bytes;
                h->incremental_bytes += na.incremental_bytes;
                h->alignment_bytes += na.alignment_bytes;
        }
        if (all_acked(k))
                coord_schedule_reconcile(c);
}

void coord_ckpt_on_decline(struct coord *c, struct coord_worker *w, const msgpack_object *map) {
        uint32_t ti = 0;
        uint64_t id = 0;
        const char *field;
        struct coord_ckpt *k = ack_target(c, w, map, &ti, &field, &id);
        if (field) {
                log_warn("%s from worker %s: %s missing or invalid; ignored",
                         PROTO_DECLINE_CHECKPOINT, w->id, field);
                return;
        }
        if (!k)
                return;
        const char *reason = "";
        size_t rlen = 0;
        msg_get_str(map, "reason", &reason, &rlen);
        log_info("job %s: checkpoint %" PRIu64 " declined by worker %s: %.*s", k->j->id, id, w->id,
                 (int)(rlen > 200 ? 200 : rlen), reason);
        sfmt(k->abort_reason, sizeof(k->abort_reason), "declined(%.*s)",
                 (int)(rlen > 200 ? 200 : rlen), reason);
        for (char *p = k->abort_reason; *p; p++)
                if (*p == ' ' || *p < 0x20)
                        *p = '_';
        coord_schedule_reconcile(c);
}

/* ---- restore ----------------------------------------------------------------------- */

struct restore_op {
        struct coord *c;
        uint64_t gen;
        char job[ID_HEX_LEN + 1];
        struct ha_pointer latest;
        bool have_latest;
};

static void restore_fail(struct coord_ckpt *k, const char *msg) {
        k->rstate = RESTORE_FAILED;
        log_error(-EBADMSG, "job %s: cannot restore: %s", k->j->id, msg);
        coord_jobs_restore_failed(k->j, msg);
}

static void restore_stage_savepoint(struct coord_ckpt *k, const char *spdir);

static void restore_read_done(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        struct coord_ckpt *k = ckpt_of(t->c, t->gen, t->job);
        if (k && k->rstate == RESTORE_LOADING) {
                if (t->r < 0) {
                        restore_fail(k, t->err);
                } else {
                        /* the newest is the restore; all of them rebuild the registry */
                        size_t newest = t->n_read - 1;
                        if (!k->registry_known && !t->foreign) {
                                struct sb_registry_checkpoint *cps = calloc(t->n_read, sizeof(*cps));
                                struct handles *hs = calloc(t->n_read, sizeof(*hs));
                                int r = cps && hs ? 0 : -ENOMEM;
                                char err[512] = "";
                                for (size_t i = 0; r == 0 && i < t->n_read; i++) {
                                        struct meta *m = &t->metas[i];
                                        const char **st = calloc(m->n_states + 1, sizeof(*st));
                                        size_t *ln = calloc(m->n_states + 1, sizeof(*ln));
                                        r = st && ln ? 0 : -ENOMEM;
                                        for (size_t s = 0; r == 0 && s < m->n_states; s++) {
                                                st[s] = m->states[s].state;
                                                ln[s] = m->states[s].len;
                                        }
                                        if (r == 0)
                                                r = handles_collect(st, ln, m->n_states, &hs[i], err,
                                                                    sizeof(err));
                                        free(st);
                                        free(ln);
                                        cps[i].checkpoint_id = m->id;
                                        cps[i].handles = hs[i].b;
                                        cps[i].n_handles = hs[i].n;
                                }
                                struct sb_registry *reg = NULL;
                                if (r == 0)
                                        r = sb_registry_rebuild(cps, t->n_read, &reg, err, sizeof(err));
                                for (size_t i = 0; hs && i < t->n_read; i++)
                                        handles_finish(&hs[i]);
                                free(hs);
                                free(cps);
                                if (r < 0) {
                                        char msg[1024];
                                        sfmt(msg, sizeof(msg), "rebuilding the shared-file "
                                                 "registry from %s: %s", t->read_paths[newest], err);
                                        restore_fail(k, msg);
                                        file_task_free(t);
                                        return;
                                }
                                sb_registry_destroy(k->registry);
                                k->registry = reg;
                                k->registry_known = true;
                                log_info("job %s: shared-file registry rebuilt from %zu retained "
                                         "checkpoint(s): %zu shared file(s)", t->job, t->n_read,
                                         sb_registry_shared_count(reg));
                        }
                        meta_free(&k->rs);
                        k->rs = t->metas[newest];
                        memset(&t->metas[newest], 0, sizeof(t->metas[newest]));
                        sfmt(k->rs_path, sizeof(k->rs_path), "%s", t->read_paths[newest]);
                        /* what the handles' relative paths resolve against: the job's
                         * checkpoint dir, or the savepoint dir */
                        if (job_dir(k->j, k->rs_base, sizeof(k->rs_base)) < 0)
                                k->rs_base[0] = '\0';
                        if (t->foreign) {
                                /* a savepoint: its files are staged into this job's dir
                                 * first (restore_stage_savepoint), READY after that */
                                char spdir[CKPT_PATH_MAX];
                                sfmt(spdir, sizeof(spdir), "%s", k->rs_path);
                                char *sl = strrchr(spdir, '/');
                                if (sl)
                                        *sl = '\0';
                                restore_stage_savepoint(k, spdir);
                        } else {
                                k->rstate = RESTORE_READY;
                        }
                }
                coord_schedule_reconcile(t->c);
        }
        file_task_free(t);
}

static void restore_marker_read(struct coord_bg_task *bg);

/* No checkpoint of the job: restore from the savepoint it was submitted with, else a
 * fresh start. The savepoint path survives a failover in <job dir>/_savepoint-restore
 * (coord_ckpt_set_savepoint_restore). */
static void restore_savepoint_or_fresh(struct coord_ckpt *k) {
        char dir[CKPT_PATH_MAX];
        if (!k->restore_from_savepoint[0] && !k->marker_checked &&
            job_dir(k->j, dir, sizeof(dir)) == 0) {
                struct file_task *t = file_task_new(k->j, 0);
                if (!t) {
                        k->rstate = RESTORE_NEEDED;
                        return;
                }
                sfmt(t->path, sizeof(t->path), "%s/_savepoint-restore", dir);
                t->bg.work = work_read_marker;
                t->bg.done = restore_marker_read;
                coord_bg_submit(&t->bg);
                return;
        }
        if (!k->restore_from_savepoint[0]) {
                k->rstate = RESTORE_READY; /* fresh start */
                return;
        }
        struct file_task *t = file_task_new(k->j, 0);
        if (!t) {
                k->rstate = RESTORE_NEEDED;
                return;
        }
        t->foreign = true; /* another job's metadata */
        t->read_paths = calloc(1, sizeof(char *));
        char p[CKPT_PATH_MAX + 16];
        sfmt(p, sizeof(p), "%s/_metadata", k->restore_from_savepoint);
        if (t->read_paths)
                t->read_paths[t->n_read++] = strdup(p);
        t->bg.work = work_read;
        t->bg.done = restore_read_done;
        coord_bg_submit(&t->bg);
}

static void restore_marker_read(struct coord_bg_task *bg) {
        struct file_task *t = (struct file_task *)bg;
        struct coord_ckpt *k = ckpt_of(t->c, t->gen, t->job);
        if (k && k->rstate == RESTORE_LOADING) {
                k->marker_checked = true;
                if (t->r == 0 && t->data && t->len > 0 && t->len < sizeof(k->restore_from_savepoint)) {
                        sfmt(k->restore_from_savepoint, sizeof(k->restore_from_savepoint), "%.*s",
                             (int)t->len, t->data);
                        log_info("job %s: restores from savepoint %s (recorded at submission)",
                                 t->job, k->restore_from_savepoint);
                } else if (t->r < 0 && t->r != -ENOENT) {
                        log_error(t->r, "job %s: reading %s", t->job, t->path);
                        k->marker_checked = false;
                        k->rstate = RESTORE_NEEDED; /* again */
                        coord_schedule_reconcile(t->c);
                        file_task_free(t);
                        return;
                }
                restore_savepoint_or_fresh(k);
                coord_schedule_reconcile(t->c);
        }
        file_task_free(t);
}

static void restore_listed(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct restore_op *o = arg;
        struct coord_ckpt *k = ckpt_of(o->c, o->gen, o->job);
        if (k && k->rstate == RESTORE_LOADING) {
                char dir[CKPT_PATH_MAX], msg[1024];
                if (rep->r < 0) {
                        log_error(rep->r, "job %s: listing checkpoints: %s", o->job,
                                  rep->error ? rep->error : "");
                        k->rstate = RESTORE_NEEDED; /* again on the next step */
                } else if (job_dir(k->j, dir, sizeof(dir)) < 0) {
                        sfmt(msg, sizeof(msg), "checkpoint %" PRIu64 " exists but "
                                 "state.checkpoints.dir is not set", o->latest.id);
                        restore_fail(k, msg);
                } else {
                        struct file_task *t = file_task_new(k->j, o->latest.id);
                        size_t n = rep->n_ids;
                        if (t) {
                                t->read_paths = calloc(n + 1, sizeof(char *));
                                /* retained ones by their layout path, the newest through its
                                 * pointer (the list and the latest may race a completion:
                                 * the pointer decides) */
                                for (size_t i = 0; t->read_paths && i < n; i++) {
                                        if (rep->ids[i] >= o->latest.id)
                                                continue;
                                        char p[CKPT_PATH_MAX + 64];
                                        sfmt(p, sizeof(p), "%s/chk-%" PRIu64 "/_metadata", dir,
                                                 rep->ids[i]);
                                        t->read_paths[t->n_read++] = strdup(p);
                                }
                                char lp[CKPT_PATH_MAX], err[256];
                                if (t->read_paths &&
                                    storage_uri_to_path(o->latest.path, lp, sizeof(lp), err,
                                                        sizeof(err)) == 0)
                                        t->read_paths[t->n_read++] = strdup(lp);
                                else if (t->read_paths)
                                        t->read_paths[t->n_read++] = strdup(o->latest.path);
                                t->bg.work = work_read;
                                t->bg.done = restore_read_done;
                                coord_bg_submit(&t->bg);
                        } else {
                                k->rstate = RESTORE_NEEDED;
                        }
                }
                coord_schedule_reconcile(o->c);
        }
        free(o);
}

static void restore_latest_got(struct ha_store *st, const struct ha_store_reply *rep, void *arg) {
        struct restore_op *o = arg;
        struct coord_ckpt *k = ckpt_of(o->c, o->gen, o->job);
        if (k && k->rstate == RESTORE_LOADING) {
                if (rep->r == -ENOENT) {
                        meta_free(&k->rs);
                        if (!k->registry_known) {
                                sb_registry_destroy(k->registry);
                                k->registry = NULL;
                                k->registry_known = true; /* no retained checkpoints */
                        }
                        /* no checkpoint yet: the savepoint the job was submitted with
                         * (known here, or from the marker a previous leader wrote) */
                        restore_savepoint_or_fresh(k);
                } else if (rep->r < 0) {
                        if (rep->r == -EBADMSG) {
                                restore_fail(k, rep->error ? rep->error : "corrupt pointer");
                        } else {
                                log_error(rep->r, "job %s: latest checkpoint: %s", o->job,
                                          rep->error ? rep->error : "");
                                k->rstate = RESTORE_NEEDED;
                        }
                } else {
                        o->latest = *rep->pointer;
                        o->latest.id = rep->id;
                        if (k->registry_known) {
                                /* only the newest's metadata is needed */
                                struct ha_store_reply r2 = {.r = 0};
                                restore_listed(st, &r2, o);
                                return;
                        }
                        int r = ha_checkpoint_list(o->c->store, o->job, restore_listed, o);
                        if (r == 0)
                                return;
                        k->rstate = RESTORE_NEEDED;
                }
                coord_schedule_reconcile(o->c);
        }
        free(o);
}

int coord_ckpt_restore_prepare(struct coord *c, struct coord_job *j) {
        struct coord_ckpt *k = j->ckpt;
        if (!k)
                return 1;
        /* a checkpoint between its acks and its pointer decides what "latest" is */
        if (k->state == CKPT_WRITING || k->state == CKPT_STORING || k->state == CKPT_COMPLETING)
                return 0;
        switch (k->rstate) {
        case RESTORE_READY:
                return 1;
        case RESTORE_LOADING:
                return 0;
        case RESTORE_FAILED:
                return -EBADMSG;
        case RESTORE_NEEDED:
                break;
        }
        struct restore_op *o = calloc(1, sizeof(*o));
        if (!o)
                return 0;
        o->c = c;
        o->gen = c->leader_gen;
        sfmt(o->job, sizeof(o->job), "%s", j->id);
        int r = ha_checkpoint_latest(c->store, j->id, restore_latest_got, o);
        if (r < 0) {
                free(o);
                return 0;
        }
        k->rstate = RESTORE_LOADING;
        return 0;
}

void coord_ckpt_deployed(struct coord_job *j) {
        struct coord_ckpt *k = j->ckpt;
        if (!k)
                return;
        if (k->rstate == RESTORE_READY && k->rs.id) {
                k->n_restored++;
                k->restored_id = k->rs.id;
                /* a savepoint's id (another job's counter) may be above ours */
                if (k->rs.id > k->id_floor)
                        k->id_floor = k->rs.id;
                k->restored_ms = clock_wall_ms();
                k->restored_savepoint = k->rs.savepoint;
                sfmt(k->restored_path, sizeof(k->restored_path), "file://%s", k->rs_path);
                char *sl = strrchr(k->restored_path, '/');
                if (sl)
                        *sl = '\0';
                log_event("+checkpoint-restored", "job=%s id=%" PRIu64 " attempt=%" PRIu32
                          " path=%s", j->id, k->rs.id, j->attempt, k->restored_path);
        }
        /* the next (re)start looks for the latest again */
        k->rstate = RESTORE_NEEDED;
        /* the first trigger of the new attempt waits one interval */
        k->last_trigger_mono_ms = clock_mono_ms();
}

uint64_t coord_ckpt_restore_id(const struct coord_job *j) {
        const struct coord_ckpt *k = j->ckpt;
        return k && k->rstate == RESTORE_READY ? k->rs.id : 0;
}

const char *coord_ckpt_restore_dir(const struct coord_job *j) {
        const struct coord_ckpt *k = j->ckpt;
        return k && k->rstate == RESTORE_READY && k->rs.id ? k->rs_base : "";
}

void coord_ckpt_pack_task_restore(const struct coord_job *j, uint32_t chain, uint32_t subtask,
                                  msgpack_packer *pk) {
        const struct coord_ckpt *k = j->ckpt;
        msg_pack_cstr(pk, "restore");
        if (!k || k->rstate != RESTORE_READY || k->rs.id == 0) {
                msgpack_pack_array(pk, 0);
                return;
        }
        const char *vid = chain_head_id(j->g, chain);
        uint32_t p = j->g->chains[chain].parallelism;
        size_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
                if (pass == 1)
                        msgpack_pack_array(pk, (uint32_t)n);
                for (size_t i = 0; i < k->rs.n_states; i++) {
                        const struct meta_state *ms = &k->rs.states[i];
                        if (strcmp(ms->vertex_id, vid) != 0)
                                continue;
                        if (ms->parallelism == p && ms->subtask != subtask)
                                continue;
                        if (pass == 0)
                                n++;
                        else
                                msgpack_pack_bin_with_body(pk, ms->state, ms->len);
                }
        }
}

void coord_ckpt_pack_peers(const struct coord_job *j, msgpack_packer *pk) {
        msg_pack_cstr(pk, "peers");
        msgpack_pack_array(pk, (uint32_t)j->n_tasks);
        for (size_t i = 0; i < j->n_tasks; i++) {
                const struct coord_task *t = &j->tasks[i];
                const struct coord_worker *w = j->placement[t->job_slot].worker;
                msgpack_pack_map(pk, 4);
                msg_pack_kv_u64(pk, "vertex", t->chain);
                msg_pack_kv_u64(pk, "subtask", t->subtask);
                msg_pack_kv_str(pk, "host", w ? w->host : "");
                msg_pack_kv_u64(pk, "data_port", w ? w->data_port : 0);
        }
}

/* ---- lifetime ------------------------------------------------------------------------ */

int coord_ckpt_create(struct coord_job *j) {
        if (j->ckpt)
                return 0;
        struct coord_ckpt *k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->j = j;
        k->timer = evtimer_new(j->c->base, timer_cb, k);
        if (!k->timer) {
                free(k);
                return -ENOMEM;
        }
        int r = coord_bg_start(j->c->base);
        if (r < 0) {
                event_free(k->timer);
                free(k);
                return r;
        }
        j->ckpt = k;
        return 0;
}

void coord_ckpt_destroy(struct coord_ckpt *k) {
        if (!k)
                return;
        if (k->timer)
                event_free(k->timer);
        acks_free(k);
        free(k->subsumed);
        meta_free(&k->rs);
        sb_registry_destroy(k->registry);
        free(k->sps);
        free(k);
}

int coord_ckpt_set_savepoint_restore(struct coord_job *j, const char *path, char *err,
                                     size_t err_len) {
        if (coord_ckpt_create(j) < 0) {
                sfmt(err, err_len, "out of memory");
                return -ENOMEM;
        }
        char p[CKPT_PATH_MAX];
        int r = storage_uri_to_path(path, p, sizeof(p), err, err_len);
        if (r < 0)
                return r;
        size_t n = strlen(p);
        if (n >= 10 && strcmp(p + n - 10, "/_metadata") == 0)
                p[n - 10] = '\0';
        /* A path with no savepoint is refused with the submission, as Flink's "Cannot find
         * checkpoint or savepoint" (else every attempt of the job would fail to restore).
         * One stat on the loop: the storage is a local disk or a mount, as for the rest. */
        char meta[CKPT_PATH_MAX];
        struct stat st;
        if ((size_t)sfmt(meta, sizeof(meta), "%s/_metadata", p) >= sizeof(meta)) {
                sfmt(err, err_len, "'%s': path too long", path);
                return -ENAMETOOLONG;
        }
        int sr = stat(meta, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EISDIR;
        if (sr < 0) {
                sfmt(err, err_len, "cannot find a savepoint at '%s' (%s: %s)", path, meta,
                     sr == -EISDIR ? "not a file" : strerror(-sr));
                return -ENOENT;
        }
        sfmt(j->ckpt->restore_from_savepoint, sizeof(j->ckpt->restore_from_savepoint), "%s", p);
        /* recorded for a leader that takes over before the job's first checkpoint (queued
         * now, so it is on disk long before any deployment reads it: one file thread) */
        char dir[CKPT_PATH_MAX];
        struct file_task *t = job_dir(j, dir, sizeof(dir)) == 0 ? file_task_new(j, 0) : NULL;
        if (t) {
                sfmt(t->path, sizeof(t->path), "%s/_savepoint-restore", dir);
                t->data = strdup(p);
                t->len = t->data ? strlen(t->data) : 0;
                t->bg.work = work_write;
                t->bg.done = done_write_marker;
                coord_bg_submit(&t->bg);
        }
        return 0;
}

/* ---- savepoints ---------------------------------------------------------------------- */

struct sp_copy {
        struct file_task ft;
        char trigger_id[ID_HEX_LEN + 1];
        char src_dir[CKPT_PATH_MAX];      /* the job dir */
        char dst[CKPT_PATH_MAX];          /* savepoint-<job8>-<rand> */
        char meta_src[CKPT_PATH_MAX];
        char **rel;                       /* files (relative to the job dir) to copy */
        size_t n_rel;
        bool cancel_job;
};

static void work_sp_copy(struct coord_bg_task *bg) {
        struct sp_copy *s = (struct sp_copy *)bg;
        int r = fs_mkdir_p(s->dst, 0755);
        for (size_t i = 0; r == 0 && i < s->n_rel; i++) {
                char a[CKPT_PATH_MAX + 128], b[CKPT_PATH_MAX + 128];
                sfmt(a, sizeof(a), "%s/%s", s->src_dir, s->rel[i]);
                sfmt(b, sizeof(b), "%s/%s", s->dst, s->rel[i]);
                char bd[sizeof(b)];
                sfmt(bd, sizeof(bd), "%s", b);
                char *sl = strrchr(bd, '/');
                if (sl) {
                        *sl = '\0';
                        r = fs_mkdir_p(bd, 0755);
                }
                if (r == 0)
                        r = fs_copy_atomic(a, b, NULL, NULL, NULL);
                if (r < 0)
                        sfmt(s->ft.err, sizeof(s->ft.err), "copying %s to %s: %s", a, b,
                                 err_str(r));
        }
        if (r == 0 && s->meta_src[0]) {
                char b[CKPT_PATH_MAX + 32];
                sfmt(b, sizeof(b), "%s/_metadata", s->dst);
                r = fs_copy_atomic(s->meta_src, b, NULL, NULL, NULL);
                if (r < 0)
                        sfmt(s->ft.err, sizeof(s->ft.err), "copying %s to %s: %s",
                                 s->meta_src, b, err_str(r));
        }
        s->ft.r = r;
}

static void done_sp_copy(struct coord_bg_task *bg) {
        struct sp_copy *s = (struct sp_copy *)bg;
        struct coord_ckpt *k = ckpt_of(s->ft.c, s->ft.gen, s->ft.job);
        struct savepoint_req *sp = NULL;
        for (uint32_t i = 0; k && k->sps && i < k->n_sps && i < CKPT_MAX_SAVEPOINT_REQS; i++)
                if (strcmp(k->sps[i].trigger_id, s->trigger_id) == 0)
                        sp = &k->sps[i];
        if (sp) {
                if (s->ft.r < 0) {
                        sp->status = -1;
                        sfmt(sp->failure, sizeof(sp->failure), "%s", s->ft.err);
                        log_error(s->ft.r, "job %s: savepoint: %s", s->ft.job, s->ft.err);
                } else {
                        sp->status = 1;
                        sfmt(sp->location, sizeof(sp->location), "file://%s", s->dst);
                        log_event("+savepoint-completed", "job=%s id=%" PRIu64 " location=%s",
                                  s->ft.job, sp->checkpoint, sp->location);
                        if (s->cancel_job)
                                coord_jobs_cancel(s->ft.c, s->ft.job);
                }
        }
        for (size_t i = 0; i < s->n_rel; i++)
                free(s->rel[i]);
        free(s->rel);
        free(s);
}

/* The files one subtask state names (the shared SSTs and private pack of each of its
 * keyed handles), relative to a job dir, appended to *rel. A state or handle that does
 * not parse adds nothing (it was checked when it was acknowledged); a failed allocation
 * leaves out what did not fit. */
static void collect_state_files(const char *state, size_t len, char ***rel, size_t *n_rel) {
        struct handles hs;
        char err[256];
        if (handles_collect(&state, &len, 1, &hs, err, sizeof(err)) < 0)
                return;
        for (size_t h = 0; h < hs.n; h++) {
                struct sb_handle *sh;
                if (sb_handle_parse(hs.b[h].data, hs.b[h].len, &sh, err, sizeof(err)) < 0)
                        continue;
                char **nr = realloc(*rel, (*n_rel + sh->n_shared + 1) * sizeof(char *));
                if (nr) {
                        *rel = nr;
                        for (size_t f = 0; f < sh->n_shared; f++) {
                                char r[64];
                                sb_handle_shared_path(&sh->shared[f], r, sizeof(r));
                                if (((*rel)[*n_rel] = strdup(r)))
                                        (*n_rel)++;
                        }
                        if (sh->private_path[0] && ((*rel)[*n_rel] = strdup(sh->private_path)))
                                (*n_rel)++;
                }
                sb_handle_free(sh);
        }
        handles_finish(&hs);
}

/* A savepoint's checkpoint completed: copy its metadata and every file its handles name
 * into the savepoint directory (self-contained), off the loop thread. */
void coord_ckpt_savepoint_completed(struct coord_ckpt *k, struct savepoint_req *sp) {
        struct coord_job *j = k->j;
        struct sp_copy *s = calloc(1, sizeof(*s));
        char dir[CKPT_PATH_MAX];
        if (!s || job_dir(j, dir, sizeof(dir)) < 0) {
                free(s);
                sp->status = -1;
                sfmt(sp->failure, sizeof(sp->failure), "out of memory");
                return;
        }
        s->ft.c = j->c;
        s->ft.gen = j->c->leader_gen;
        sfmt(s->ft.job, sizeof(s->ft.job), "%s", j->id);
        s->ft.id = k->id;
        s->cancel_job = sp->cancel_job;
        sfmt(s->trigger_id, sizeof(s->trigger_id), "%s", sp->trigger_id);
        sfmt(s->src_dir, sizeof(s->src_dir), "%s", dir);
        sfmt(s->meta_src, sizeof(s->meta_src), "%s", k->meta_path);
        struct flinc_id rid;
        char rhex[ID_HEX_LEN + 1];
        id_generate(&rid);
        id_format(&rid, rhex);
        sfmt(s->dst, sizeof(s->dst), "%s/savepoint-%.6s-%.12s", sp->target, j->id, rhex);
        /* every file the acks' handles name */
        for (size_t i = 0; i < k->n_acks; i++)
                collect_state_files(k->acks[i].state, k->acks[i].len, &s->rel, &s->n_rel);
        s->ft.bg.work = work_sp_copy;
        s->ft.bg.done = done_sp_copy;
        coord_bg_submit(&s->ft.bg);
}

int coord_ckpt_savepoint_trigger(struct coord_job *j, const char *target, bool cancel_job,
                                 char *ret_trigger_id, char *err, size_t err_len) {
        int r = coord_ckpt_create(j);
        if (r < 0) {
                sfmt(err, err_len, "out of memory");
                return r;
        }
        struct coord_ckpt *k = j->ckpt;
        char dirbuf[CKPT_PATH_MAX];
        const char *uri = target && *target ? target
                                            : cfg_string(j->c->cfg, CFG_STATE_SAVEPOINTS_DIR);
        if (!uri || !*uri) {
                sfmt(err, err_len, "No savepoint directory configured. You can either "
                         "specify a directory while triggering the savepoint or configure a "
                         "cluster-wide default via key 'state.savepoints.dir'.");
                return -EINVAL;
        }
        if ((r = storage_uri_to_path(uri, dirbuf, sizeof(dirbuf), err, err_len)) < 0)
                return r;
        if (job_dir(j, err, err_len) < 0) {
                sfmt(err, err_len, "state.checkpoints.dir is not set: savepoints need it");
                return -EINVAL;
        }
        if (j->state != COORD_JOB_RUNNING) {
                sfmt(err, err_len, "Job %s is not running (%s)", j->id,
                         coord_job_state_name(j->state));
                return -EAGAIN;
        }
        if (!k->sps && !(k->sps = calloc(CKPT_MAX_SAVEPOINT_REQS, sizeof(*k->sps)))) {
                sfmt(err, err_len, "out of memory");
                return -ENOMEM;
        }
        struct savepoint_req *sp = &k->sps[k->n_sps++ % CKPT_MAX_SAVEPOINT_REQS];
        memset(sp, 0, sizeof(*sp));
        struct flinc_id id;
        id_generate(&id);
        id_format(&id, sp->trigger_id);
        sfmt(sp->target, sizeof(sp->target), "%s", dirbuf);
        sp->cancel_job = cancel_job;
        sfmt(ret_trigger_id, ID_HEX_LEN + 1, "%s", sp->trigger_id);
        log_info("job %s: savepoint %s requested (target %s, cancel-job %s)", j->id,
                 sp->trigger_id, dirbuf, cancel_job ? "true" : "false");
        coord_schedule_reconcile(j->c);
        return 0;
}

/* ---- savepoint staging --------------------------------------------------------------- */

/* The files a set of subtask states names, relative to a job dir, appended to *rel. */
static void collect_files(const struct meta *m, char ***rel, size_t *n_rel) {
        for (size_t i = 0; i < m->n_states; i++)
                collect_state_files(m->states[i].state, m->states[i].len, rel, n_rel);
}

static void restore_staged(struct coord_bg_task *bg) {
        struct sp_copy *s = (struct sp_copy *)bg;
        struct coord_ckpt *k = ckpt_of(s->ft.c, s->ft.gen, s->ft.job);
        if (k && k->rstate == RESTORE_LOADING) {
                if (s->ft.r < 0) {
                        char msg[1024];
                        sfmt(msg, sizeof(msg), "staging savepoint %s: %s", s->src_dir, s->ft.err);
                        restore_fail(k, msg);
                } else {
                        /* the staged files are named by the savepoint's handles: the
                         * registry holds them, so this job's first incremental
                         * checkpoints may reuse them (they are never retired: copies) */
                        char err[512] = "";
                        int r = k->registry ? 0 : sb_registry_create(&k->registry);
                        struct handles hs = {0};
                        const char **st = calloc(k->rs.n_states + 1, sizeof(*st));
                        size_t *ln = calloc(k->rs.n_states + 1, sizeof(*ln));
                        if (r == 0 && (!st || !ln))
                                r = -ENOMEM;
                        for (size_t i = 0; r == 0 && i < k->rs.n_states; i++) {
                                st[i] = k->rs.states[i].state;
                                ln[i] = k->rs.states[i].len;
                        }
                        if (r == 0)
                                r = handles_collect(st, ln, k->rs.n_states, &hs, err, sizeof(err));
                        if (r == 0) {
                                int rr = sb_registry_register(k->registry, k->rs.id, hs.b, hs.n,
                                                              err, sizeof(err));
                                if (rr < 0 && rr != -EEXIST)
                                        log_warn("job %s: savepoint files not in the registry: %s",
                                                 s->ft.job, err);
                                handles_finish(&hs);
                        }
                        free(st);
                        free(ln);
                        log_info("job %s: savepoint %s staged: %zu file(s) copied into %s",
                                 s->ft.job, s->src_dir, s->n_rel, s->dst);
                        k->rstate = RESTORE_READY;
                }
                coord_schedule_reconcile(s->ft.c);
        }
        for (size_t i = 0; i < s->n_rel; i++)
                free(s->rel[i]);
        free(s->rel);
        free(s);
}

/* A job started from a savepoint: the state handles name files relative to a job dir,
 * so the savepoint's files are copied into this job's checkpoint dir (off the loop)
 * before the deployment, which then restores as from one of its own checkpoints. */
static void restore_stage_savepoint(struct coord_ckpt *k, const char *spdir) {
        struct coord_job *j = k->j;
        struct sp_copy *s = calloc(1, sizeof(*s));
        if (!s || !k->rs_base[0]) {
                free(s);
                restore_fail(k, "state.checkpoints.dir must be set to restore from a savepoint");
                return;
        }
        s->ft.c = j->c;
        s->ft.gen = j->c->leader_gen;
        sfmt(s->ft.job, sizeof(s->ft.job), "%s", j->id);
        s->ft.id = k->rs.id;
        sfmt(s->src_dir, sizeof(s->src_dir), "%s", spdir);
        sfmt(s->dst, sizeof(s->dst), "%s", k->rs_base);
        collect_files(&k->rs, &s->rel, &s->n_rel);
        s->ft.bg.work = work_sp_copy;
        s->ft.bg.done = restore_staged;
        coord_bg_submit(&s->ft.bg);
}

/* ---- REST views ------------------------------------------------------------------------ */

enum hist_field { HF_INCREMENTAL, HF_STATE, HF_DURATION, HF_ALIGNMENT, HF_NONE };

static uint64_t hist_value(const struct hist *h, enum hist_field f) {
        switch (f) {
        case HF_INCREMENTAL: return h->incremental_bytes;
        case HF_STATE: return h->state_bytes;
        case HF_DURATION: return (uint64_t)(h->end_ms > h->trigger_ms ? h->end_ms - h->trigger_ms : 0);
        case HF_ALIGNMENT: return h->alignment_bytes;
        default: return 0;
        }
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* min, max and avg over every completed checkpoint of this leader's term; the
 * percentiles (nearest rank) over the completed ones still in the history window (the
 * last CKPT_HISTORY checkpoints, Flink's web.checkpoints.history), or 0 when none is. */
static void view_summary(struct json_writer *w, const char *key, const struct coord_ckpt *k,
                         enum hist_field f, uint64_t mn, uint64_t mx, uint64_t sum) {
        uint64_t n = k->n_completed;
        uint64_t v[CKPT_HISTORY];
        size_t nv = 0;
        uint32_t kept = k->n_hist < CKPT_HISTORY ? k->n_hist : CKPT_HISTORY;
        for (uint32_t i = 0; i < kept; i++) {
                const struct hist *h = &k->history[(k->n_hist - 1 - i) % CKPT_HISTORY];
                if (strcmp(h->status, "COMPLETED") == 0)
                        v[nv++] = hist_value(h, f);
        }
        qsort(v, nv, sizeof(v[0]), cmp_u64);
        json_key(w, key);
        json_begin_object(w);
        json_kv_uint(w, "min", n ? mn : 0);
        json_kv_uint(w, "max", n ? mx : 0);
        json_kv_uint(w, "avg", n ? sum / n : 0);
        static const struct { const char *name; double q; } pct[] = {
                {"p50", 0.50}, {"p90", 0.90}, {"p95", 0.95}, {"p99", 0.99}, {"p999", 0.999}};
        for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
                double x = 0;
                if (nv > 0) {
                        size_t rank = (size_t)ceil(pct[i].q * (double)nv); /* 1-based */
                        x = (double)v[(rank ? rank : 1) - 1];
                }
                json_kv_double(w, pct[i].name, x);
        }
        json_end_object(w);
}

static void view_hist(struct json_writer *w, const struct hist *h) {
        bool failed = strcmp(h->status, "FAILED") == 0;
        bool done = strcmp(h->status, "COMPLETED") == 0;
        json_begin_object(w);
        json_kv_string(w, "@class", failed ? "failed" : done ? "completed" : "in_progress");
        json_kv_uint(w, "id", h->id);
        json_kv_string(w, "status", h->status);
        json_kv_bool(w, "is_savepoint", h->savepoint);
        json_kv_string(w, "savepointFormat", h->savepoint ? "CANONICAL" : "");
        json_kv_int(w, "trigger_timestamp", h->trigger_ms);
        json_kv_int(w, "latest_ack_timestamp", h->latest_ack_ms);
        json_kv_uint(w, "state_size", h->state_bytes);
        json_kv_uint(w, "checkpointed_size", h->incremental_bytes);
        int64_t end = h->end_ms > 0 ? h->end_ms : (h->latest_ack_ms > 0 ? h->latest_ack_ms : h->trigger_ms);
        json_kv_int(w, "end_to_end_duration", end - h->trigger_ms);
        json_kv_uint(w, "alignment_buffered", h->alignment_bytes);
        json_kv_uint(w, "processed_data", 0);
        json_kv_uint(w, "persisted_data", 0);
        json_kv_uint(w, "num_subtasks", h->n_subtasks);
        json_kv_uint(w, "num_acknowledged_subtasks", h->n_acked);
        json_kv_string(w, "checkpoint_type", h->savepoint ? "SAVEPOINT" : "CHECKPOINT");
        json_key(w, "tasks");
        json_begin_object(w);
        json_end_object(w);
        if (done) {
                json_kv_string(w, "external_path", h->path);
                json_kv_bool(w, "discarded", false);
        }
        if (failed) {
                json_kv_int(w, "failure_timestamp", h->end_ms);
                json_kv_string(w, "failure_message", h->failure);
        }
        json_end_object(w);
}

void coord_view_checkpoints(struct coord *c, const struct coord_job *j, struct json_writer *w) {
        const struct coord_ckpt *k = j->ckpt;
        static const struct coord_ckpt empty;
        if (!k)
                k = &empty;
        uint64_t in_progress = k->state != CKPT_IDLE && k->state != CKPT_ALLOCATING ? 1 : 0;
        json_begin_object(w);
        json_key(w, "counts");
        json_begin_object(w);
        json_kv_uint(w, "restored", k->n_restored);
        json_kv_uint(w, "total", k->n_total);
        json_kv_uint(w, "in_progress", in_progress);
        json_kv_uint(w, "completed", k->n_completed);
        json_kv_uint(w, "failed", k->n_failed);
        json_end_object(w);
        json_key(w, "summary");
        json_begin_object(w);
        view_summary(w, "checkpointed_size", k, HF_INCREMENTAL, k->inc_min, k->inc_max,
                     k->inc_sum);
        view_summary(w, "state_size", k, HF_STATE, k->sz_min, k->sz_max, k->sz_sum);
        view_summary(w, "end_to_end_duration", k, HF_DURATION, k->dur_min, k->dur_max,
                     k->dur_sum);
        view_summary(w, "alignment_buffered", k, HF_NONE, 0, 0, 0);
        view_summary(w, "processed_data", k, HF_NONE, 0, 0, 0);
        view_summary(w, "persisted_data", k, HF_NONE, 0, 0, 0);
        json_end_object(w);
        json_key(w, "latest");
        json_begin_object(w);
        json_key(w, "completed");
        if (k->have_completed)
                view_hist(w, &k->latest_completed);
        else
                json_null(w);
        json_key(w, "savepoint");
        if (k->have_savepoint)
                view_hist(w, &k->latest_savepoint);
        else
                json_null(w);
        json_key(w, "failed");
        if (k->have_failed)
                view_hist(w, &k->latest_failed);
        else
                json_null(w);
        json_key(w, "restored");
        if (k->n_restored) {
                json_begin_object(w);
                json_kv_uint(w, "id", k->restored_id);
                json_kv_int(w, "restore_timestamp", k->restored_ms);
                json_kv_bool(w, "is_savepoint", k->restored_savepoint);
                json_kv_string(w, "external_path", k->restored_path);
                json_end_object(w);
        } else {
                json_null(w);
        }
        json_end_object(w);
        json_key(w, "history");
        json_begin_array(w);
        uint32_t kept = k->n_hist < CKPT_HISTORY ? k->n_hist : CKPT_HISTORY;
        for (uint32_t i = 0; i < kept; i++)
                view_hist(w, &k->history[(k->n_hist - 1 - i) % CKPT_HISTORY]);
        json_end_array(w);
        /* flinc's own: the state machine's state */
        json_kv_string(w, "coordinator_state", ckpt_state_names[k->state]);
        json_end_object(w);
}

void coord_view_checkpoint_config(struct coord *c, const struct coord_job *j,
                                  struct json_writer *w) {
        const struct job_checkpointing *cp = j->g ? &j->g->checkpointing : NULL;
        bool exactly_once = cp && cp->configured
                                    ? cp->mode == JOB_CP_EXACTLY_ONCE
                                    : strcmp(cfg_string(c->cfg, CFG_CHECKPOINTING_MODE),
                                             "EXACTLY_ONCE") == 0;
        json_begin_object(w);
        json_kv_string(w, "mode", exactly_once ? "exactly_once" : "at_least_once");
        json_kv_int(w, "interval", interval_ms(j) > 0 ? interval_ms(j) : INT64_MAX);
        json_kv_int(w, "timeout", timeout_ms(j));
        json_kv_int(w, "min_pause", min_pause_ms(j));
        json_kv_int(w, "max_concurrent", 1);
        json_key(w, "externalization");
        json_begin_object(w);
        json_kv_bool(w, "enabled", true);
        json_kv_bool(w, "delete_on_cancellation", false);
        json_end_object(w);
        json_kv_string(w, "state_backend", "EmbeddedRocksDBStateBackend");
        json_kv_string(w, "checkpoint_storage", "FileSystemCheckpointStorage");
        json_kv_bool(w, "unaligned_checkpoints", false);
        json_kv_int(w, "tolerable_failed_checkpoints", INT32_MAX); /* a failed checkpoint never fails the job */
        json_kv_int(w, "aligned_checkpoint_timeout", 0);
        json_kv_bool(w, "checkpoints_after_tasks_finish", true);
        json_kv_bool(w, "state_changelog_enabled", false);
        json_kv_int(w, "changelog_periodic_materialization_interval", 600000);
        json_kv_string(w, "changelog_storage", "memory");
        json_end_object(w);
}

/* 0 and the answer, -ENOENT unknown trigger id. */
int coord_view_savepoint_status(struct coord *c, const struct coord_job *j, const char *trigger,
                                struct json_writer *w) {
        const struct coord_ckpt *k = j->ckpt;
        const struct savepoint_req *sp = NULL;
        for (uint32_t i = 0; k && k->sps && i < k->n_sps && i < CKPT_MAX_SAVEPOINT_REQS; i++)
                if (strcmp(k->sps[i].trigger_id, trigger) == 0)
                        sp = &k->sps[i];
        if (!sp)
                return -ENOENT;
        json_begin_object(w);
        json_key(w, "status");
        json_begin_object(w);
        json_kv_string(w, "id", sp->status == 0 ? "IN_PROGRESS" : "COMPLETED");
        json_end_object(w);
        json_key(w, "operation");
        if (sp->status == 0) {
                json_null(w);
        } else {
                json_begin_object(w);
                if (sp->status > 0) {
                        json_kv_string(w, "location", sp->location);
                } else {
                        json_key(w, "failure-cause");
                        json_begin_object(w);
                        json_kv_string(w, "class", "java.util.concurrent.CompletionException");
                        json_kv_string(w, "stack-trace", sp->failure);
                        json_kv_string(w, "serialized-throwable", sp->failure);
                        json_end_object(w);
                }
                json_end_object(w);
        }
        json_end_object(w);
        return 0;
}

/* ---- the savepoint request body ------------------------------------------------------ */

/* {"target-directory": str|null, "cancel-job": bool, "formatType": str (ignored),
 *  "triggerId": str (ignored)}: JSON read with libyaml (JSON is YAML); an empty body is
 * {}. Unknown fields are refused, naming them, as Flink's REST layer does. */
int coord_rest_parse_savepoint_body(const char *text, size_t len, char *target,
                                    size_t target_len, bool *cancel_job, char *err,
                                    size_t err_len) {
        yaml_parser_t p;
        yaml_event_t ev;
        int r = 0, depth = 0;
        char key[64] = "";
        bool want_key = true, done = false;
        if (len == 0)
                return 0;
        if (len > 64 * 1024) {
                sfmt(err, err_len, "request body over 64 KiB");
                return -EINVAL;
        }
        if (!yaml_parser_initialize(&p))
                return -ENOMEM;
        yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
        while (!done && r == 0) {
                if (!yaml_parser_parse(&p, &ev)) {
                        sfmt(err, err_len, "the body is not JSON: %s",
                                 p.problem ? p.problem : "parse error");
                        r = -EINVAL;
                        break;
                }
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_MAPPING_START_EVENT:
                        if (++depth > 1) {
                                sfmt(err, err_len, "field %s: expected a string or a boolean",
                                         key);
                                r = -EINVAL;
                        }
                        break;
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        break;
                case YAML_SEQUENCE_START_EVENT:
                        sfmt(err, err_len, "field %s: expected a string or a boolean",
                                 depth ? key : "(body)");
                        r = -EINVAL;
                        break;
                case YAML_SCALAR_EVENT: {
                        const char *v = (const char *)ev.data.scalar.value;
                        size_t vl = ev.data.scalar.length;
                        if (depth != 1) {
                                sfmt(err, err_len, "expected a JSON object");
                                r = -EINVAL;
                        } else if (want_key) {
                                sfmt(key, sizeof(key), "%.*s", (int)(vl < 63 ? vl : 63), v);
                                want_key = false;
                        } else {
                                want_key = true;
                                bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                                if (strcmp(key, "target-directory") == 0) {
                                        if (plain && strcmp(v, "null") == 0)
                                                target[0] = '\0';
                                        else if (vl >= target_len) {
                                                sfmt(err, err_len, "target-directory: too long");
                                                r = -EINVAL;
                                        } else
                                                sfmt(target, target_len, "%s", v);
                                } else if (strcmp(key, "cancel-job") == 0) {
                                        if (plain && strcmp(v, "true") == 0)
                                                *cancel_job = true;
                                        else if (plain && strcmp(v, "false") == 0)
                                                *cancel_job = false;
                                        else {
                                                sfmt(err, err_len, "cancel-job: '%.32s' is not "
                                                         "a boolean", v);
                                                r = -EINVAL;
                                        }
                                } else if (strcmp(key, "formatType") != 0 &&
                                           strcmp(key, "triggerId") != 0) {
                                        sfmt(err, err_len, "unknown field '%s' (expected "
                                                 "target-directory, cancel-job)", key);
                                        r = -EINVAL;
                                }
                        }
                        break;
                }
                default:
                        break;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        return r;
}
