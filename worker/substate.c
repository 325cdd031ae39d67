/* Encoding and validation of the subtask state (see substate.h). */
#include "worker/substate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/err.h"
#include "common/envelope.h"
#include "common/msg.h"

int wrk_substate_encode(const struct wrk_substate *st, char **ret, size_t *ret_len) {
        if (st->n_ops > WRK_SUBSTATE_MAX_OPS)
                return -EINVAL;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        msg_pack_kv_u64(&pk, "chk", st->checkpoint_id);
        msg_pack_kv_u64(&pk, "vertex", st->vertex);
        msg_pack_kv_u64(&pk, "subtask", st->subtask);
        msg_pack_kv_u64(&pk, "par", st->parallelism);
        msg_pack_cstr(&pk, "ops");
        msgpack_pack_array(&pk, st->n_ops);
        for (size_t i = 0; i < st->n_ops; i++) {
                const struct wrk_substate_op *o = &st->ops[i];
                size_t n = 1 + (o->keyed != NULL) + o->has_gen + o->has_file + o->has_sink;
                msgpack_pack_map(&pk, n);
                msg_pack_kv_str(&pk, "op", o->op);
                if (o->keyed)
                        msg_pack_kv_bin(&pk, "keyed", o->keyed, o->keyed_len);
                if (o->has_gen) {
                        msg_pack_cstr(&pk, "gen");
                        /* struct wrk_gen_entry is three uint64_t */
                        msgpack_pack_array(&pk, o->n_gen);
                        for (size_t k = 0; k < o->n_gen; k++) {
                                msgpack_pack_array(&pk, 3);
                                msgpack_pack_uint64(&pk, o->gen[k].modulus);
                                msgpack_pack_uint64(&pk, o->gen[k].residue);
                                msgpack_pack_uint64(&pk, o->gen[k].next);
                        }
                }
                if (o->has_file) {
                        msg_pack_cstr(&pk, "file");
                        msgpack_pack_array(&pk, o->n_file);
                        for (size_t k = 0; k < o->n_file; k++) {
                                msgpack_pack_array(&pk, 3);
                                msgpack_pack_uint64(&pk, o->file[k].start);
                                msgpack_pack_uint64(&pk, o->file[k].end);
                                msgpack_pack_uint64(&pk, o->file[k].offset);
                        }
                }
                if (o->has_sink) {
                        msg_pack_cstr(&pk, "sink");
                        msgpack_pack_map(&pk, 2);
                        msg_pack_kv_u64(&pk, "next_seq", o->sink_next_seq);
                        msg_pack_cstr(&pk, "pending");
                        msgpack_pack_array(&pk, o->n_pending);
                        for (size_t k = 0; k < o->n_pending; k++) {
                                msgpack_pack_array(&pk, 3);
                                msgpack_pack_uint64(&pk, o->pending[k].subtask);
                                msgpack_pack_uint64(&pk, o->pending[k].seq);
                                msgpack_pack_uint64(&pk, o->pending[k].checkpoint_id);
                        }
                }
        }
        int r = envelope_wrap(WRK_SUBSTATE_KIND, WRK_SUBSTATE_VERSION, sb.data, sb.size, ret,
                              ret_len);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* Reads an array of [u64, u64, u64] into a malloc'ed array of n*3 u64. */
static int get_triples(const msgpack_object *arr, uint64_t **ret, size_t *ret_n) {
        if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size > WRK_SUBSTATE_MAX_ENTRIES)
                return -EINVAL;
        size_t n = arr->via.array.size;
        uint64_t *v = calloc(n ? n * 3 : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *t = &arr->via.array.ptr[i];
                if (t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != 3)
                        goto bad;
                for (size_t j = 0; j < 3; j++) {
                        const msgpack_object *x = &t->via.array.ptr[j];
                        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                                goto bad;
                        v[i * 3 + j] = x->via.u64;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
bad:
        free(v);
        return -EINVAL;
}

static int decode_op(const msgpack_object *m, size_t i, struct wrk_substate_op *o, char *err,
                     size_t err_len) {
        if (m->type != MSGPACK_OBJECT_MAP)
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu]: expected a map",
                               i);
        if (msg_get_strbuf(m, "op", o->op, sizeof(o->op)) < 0 || !o->op[0])
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu].op: bad step id",
                               i);
        const void *kb;
        size_t kl;
        int r = msg_get_bin(m, "keyed", &kb, &kl);
        if (r == 0) {
                o->keyed = malloc(kl ? kl : 1);
                if (!o->keyed)
                        return -ENOMEM;
                memcpy(o->keyed, kb, kl);
                o->keyed_len = kl;
        } else if (r != -ENOENT) {
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu].keyed: expected bin",
                               i);
        }
        const msgpack_object *a;
        uint64_t *t;
        size_t n;
        if (msg_get_array(m, "gen", &a) == 0) {
                r = get_triples(a, &t, &n);
                if (r < 0)
                        return err_set(err, err_len, r,
                                       "subtask state: ops[%zu].gen: expected [[m, r, next]...]", i);
                o->gen = calloc(n ? n : 1, sizeof(*o->gen));
                if (!o->gen) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t k = 0; k < n; k++) {
                        o->gen[k] = (struct wrk_gen_entry){t[3 * k], t[3 * k + 1], t[3 * k + 2]};
                        if (o->gen[k].modulus == 0) {
                                free(t);
                                return err_set(err, err_len, -EINVAL,
                                               "subtask state: ops[%zu].gen[%zu]: modulus 0", i, k);
                        }
                }
                free(t);
                o->n_gen = n;
                o->has_gen = true;
        } else if (msg_map_get(m, "gen")) {
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu].gen: expected an array", i);
        }
        if (msg_get_array(m, "file", &a) == 0) {
                r = get_triples(a, &t, &n);
                if (r < 0)
                        return err_set(err, err_len, r,
                                       "subtask state: ops[%zu].file: expected [[start, end, offset]...]",
                                       i);
                o->file = calloc(n ? n : 1, sizeof(*o->file));
                if (!o->file) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t k = 0; k < n; k++)
                        o->file[k] = (struct wrk_file_split){t[3 * k], t[3 * k + 1], t[3 * k + 2]};
                free(t);
                o->n_file = n;
                o->has_file = true;
        } else if (msg_map_get(m, "file")) {
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu].file: expected an array", i);
        }
        const msgpack_object *sm;
        if (msg_get_map(m, "sink", &sm) == 0) {
                if (msg_get_u64(sm, "next_seq", &o->sink_next_seq) < 0 ||
                    msg_get_array(sm, "pending", &a) < 0)
                        return err_set(err, err_len, -EINVAL,
                                       "subtask state: ops[%zu].sink: needs next_seq and pending", i);
                r = get_triples(a, &t, &n);
                if (r < 0)
                        return err_set(err, err_len, r,
                                       "subtask state: ops[%zu].sink.pending: expected [[subtask, seq, chk]...]",
                                       i);
                o->pending = calloc(n ? n : 1, sizeof(*o->pending));
                if (!o->pending) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t k = 0; k < n; k++) {
                        if (t[3 * k] > UINT32_MAX) {
                                free(t);
                                return err_set(err, err_len, -EINVAL,
                                               "subtask state: ops[%zu].sink.pending[%zu]: subtask out of range",
                                               i, k);
                        }
                        o->pending[k] = (struct wrk_sink_file){(uint32_t)t[3 * k], t[3 * k + 1],
                                                               t[3 * k + 2]};
                }
                free(t);
                o->n_pending = n;
                o->has_sink = true;
        } else if (msg_map_get(m, "sink")) {
                return err_set(err, err_len, -EINVAL, "subtask state: ops[%zu].sink: expected a map", i);
        }
        return 0;
}

int wrk_substate_decode(const void *data, size_t len, struct wrk_substate **ret, char *err,
                        size_t err_len) {
        char *body = NULL;
        size_t body_len = 0;
        uint32_t version;
        int r = envelope_unwrap(data, len, WRK_SUBSTATE_KIND, WRK_SUBSTATE_VERSION, &body,
                                &body_len, &version, err, err_len);
        if (r < 0)
                return r;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        struct wrk_substate *st = calloc(1, sizeof(*st));
        const char *why = NULL;
        if (!st) {
                r = -ENOMEM;
                goto out;
        }
        r = msg_unpack_bounded(body, body_len, 8, 8u * WRK_SUBSTATE_MAX_ENTRIES, &up, &why);
        if (r < 0) {
                err_set(err, err_len, r, "subtask state: %s", why);
                goto out;
        }
        const msgpack_object *m = &up.data;
        const msgpack_object *ops;
        if (m->type != MSGPACK_OBJECT_MAP || msg_get_u64(m, "chk", &st->checkpoint_id) < 0 ||
            msg_get_u32(m, "vertex", &st->vertex) < 0 ||
            msg_get_u32(m, "subtask", &st->subtask) < 0 ||
            msg_get_u32(m, "par", &st->parallelism) < 0 || msg_get_array(m, "ops", &ops) < 0 ||
            st->parallelism == 0 || st->subtask >= st->parallelism ||
            ops->via.array.size > WRK_SUBSTATE_MAX_OPS) {
                r = err_set(err, err_len, -EINVAL,
                            "subtask state: needs chk, vertex, subtask < par, par >= 1 and ops");
                goto out;
        }
        st->n_ops = ops->via.array.size;
        st->ops = calloc(st->n_ops ? st->n_ops : 1, sizeof(*st->ops));
        if (!st->ops) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < st->n_ops; i++) {
                r = decode_op(&ops->via.array.ptr[i], i, &st->ops[i], err, err_len);
                if (r < 0)
                        goto out;
        }
        *ret = st;
        st = NULL;
        r = 0;
out:
        wrk_substate_free(st);
        msgpack_unpacked_destroy(&up);
        free(body);
        return r;
}

void wrk_substate_free(struct wrk_substate *st) {
        if (!st)
                return;
        for (size_t i = 0; st->ops && i < st->n_ops; i++) {
                free(st->ops[i].keyed);
                free(st->ops[i].gen);
                free(st->ops[i].file);
                free(st->ops[i].pending);
        }
        free(st->ops);
        free(st);
}

const struct wrk_substate_op *wrk_substate_find(const struct wrk_substate *st, const char *op) {
        for (size_t i = 0; i < st->n_ops; i++)
                if (strcmp(st->ops[i].op, op) == 0)
                        return &st->ops[i];
        return NULL;
}
