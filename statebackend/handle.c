/* Encoding and strict parsing of state handles (format in handle.h). */
#include "statebackend/sb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/envelope.h"
#include "common/msg.h"

void sb_handle_free(struct sb_handle *h) {
        if (!h)
                return;
        free(h->states);
        free(h->shared);
        free(h->members);
        free(h);
}

uint64_t sb_handle_state_bytes(const struct sb_handle *h) {
        uint64_t n = h->private_size_bytes;
        for (size_t i = 0; i < h->n_shared; i++)
                n += h->shared[i].size_bytes;
        return n;
}

void sb_handle_shared_path(const struct sb_handle_file *f, char *buf, size_t buf_len) {
        snprintf(buf, buf_len, "shared/%s.sst", f->uid);
}

int sb_handle_encode(const struct sb_handle *h, char **ret_data, size_t *ret_len) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        msg_pack_kv_str(&pk, "backend", h->backend_id);
        msg_pack_kv_u64(&pk, "chk", h->checkpoint_id);
        msg_pack_kv_u64(&pk, "maxp", h->max_parallelism);
        msg_pack_cstr(&pk, "kg");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, h->range.start);
        msgpack_pack_uint32(&pk, h->range.end);
        msg_pack_cstr(&pk, "states");
        msgpack_pack_array(&pk, (uint32_t)h->n_states);
        for (size_t i = 0; i < h->n_states; i++) {
                msgpack_pack_map(&pk, 3);
                msg_pack_kv_str(&pk, "name", h->states[i].name);
                msg_pack_kv_str(&pk, "kind", sb_state_kind_name(h->states[i].kind));
                msg_pack_kv_u64(&pk, "ttl_ms", h->states[i].ttl_ms);
        }
        msg_pack_cstr(&pk, "shared");
        msgpack_pack_array(&pk, (uint32_t)h->n_shared);
        for (size_t i = 0; i < h->n_shared; i++) {
                const struct sb_handle_file *f = &h->shared[i];
                msgpack_pack_map(&pk, 5);
                msg_pack_kv_str(&pk, "uid", f->uid);
                msg_pack_kv_str(&pk, "local", f->local);
                msg_pack_kv_u64(&pk, "size", f->size_bytes);
                msg_pack_kv_u64(&pk, "crc", f->crc32c);
                msg_pack_kv_bool(&pk, "new", f->is_new);
        }
        msg_pack_cstr(&pk, "private");
        msgpack_pack_map(&pk, 4);
        msg_pack_kv_str(&pk, "path", h->private_path);
        msg_pack_kv_u64(&pk, "size", h->private_size_bytes);
        msg_pack_kv_u64(&pk, "crc", h->private_crc32c);
        msg_pack_cstr(&pk, "files");
        msgpack_pack_array(&pk, (uint32_t)h->n_members);
        for (size_t i = 0; i < h->n_members; i++) {
                const struct sb_handle_member *m = &h->members[i];
                msgpack_pack_map(&pk, 4);
                msg_pack_kv_str(&pk, "name", m->name);
                msg_pack_kv_u64(&pk, "off", m->offset);
                msg_pack_kv_u64(&pk, "size", m->size_bytes);
                msg_pack_kv_u64(&pk, "crc", m->crc32c);
        }
        if (!sb.data) {
                msgpack_sbuffer_destroy(&sb);
                return -ENOMEM;
        }
        int r = envelope_wrap(SB_HANDLE_KIND, SB_HANDLE_VERSION, sb.data, sb.size, ret_data,
                              ret_len);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* ---- parsing ------------------------------------------------------------------------ */

static int bad(char *err, size_t err_len, const char *field, const char *why) {
        return sb_fail(err, err_len, -EINVAL, "state handle: field %s %s", field, why);
}

static int get_hex_id(const msgpack_object *map, const char *key, char out[ID_HEX_LEN + 1]) {
        char buf[ID_HEX_LEN + 1];
        struct flinc_id id;
        if (msg_get_strbuf(map, key, buf, sizeof(buf)) < 0 || id_parse(buf, &id) < 0)
                return -EINVAL;
        id_format(&id, out);
        return 0;
}

static int parse_states(const msgpack_object *arr, struct sb_handle *h, char *err,
                        size_t err_len) {
        if (arr->via.array.size > SB_MAX_STATES)
                return bad(err, err_len, "states", "has too many entries");
        h->n_states = arr->via.array.size;
        h->states = calloc(h->n_states ? h->n_states : 1, sizeof(*h->states));
        if (!h->states)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_states; i++) {
                const msgpack_object *o = &arr->via.array.ptr[i];
                struct sb_handle_state *s = &h->states[i];
                const char *kind;
                size_t kind_len;
                char field[48];
                snprintf(field, sizeof(field), "states[%zu]", i);
                if (o->type != MSGPACK_OBJECT_MAP)
                        return bad(err, err_len, field, "is not a map");
                if (msg_get_strbuf(o, "name", s->name, sizeof(s->name)) < 0 ||
                    !sb_name_is_state(s->name))
                        return bad(err, err_len, field, "has no valid name");
                if (msg_get_str(o, "kind", &kind, &kind_len) < 0 ||
                    sb_kind_parse(kind, kind_len, &s->kind) < 0)
                        return bad(err, err_len, field, "has no valid kind");
                if (msg_get_u64(o, "ttl_ms", &s->ttl_ms) < 0 || s->ttl_ms > (uint64_t)INT64_MAX / 2)
                        return bad(err, err_len, field, "has no valid ttl_ms");
                for (size_t j = 0; j < i; j++)
                        if (strcmp(h->states[j].name, s->name) == 0)
                                return bad(err, err_len, field, "repeats a state name");
        }
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails if two of the n strings (stride apart, starting at base) are equal. */
static int check_unique(const void *base, size_t n, size_t stride, size_t off) {
        if (n < 2)
                return 0;
        const char **v = malloc(n * sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = (const char *)base + i * stride + off;
        qsort(v, n, sizeof(*v), cmp_str);
        int r = 0;
        for (size_t i = 1; i < n && r == 0; i++)
                if (strcmp(v[i - 1], v[i]) == 0)
                        r = -EEXIST;
        free(v);
        return r;
}

static int parse_shared(const msgpack_object *arr, struct sb_handle *h, char *err,
                        size_t err_len) {
        if (arr->via.array.size > SB_HANDLE_MAX_FILES)
                return bad(err, err_len, "shared", "has too many entries");
        h->n_shared = arr->via.array.size;
        h->shared = calloc(h->n_shared ? h->n_shared : 1, sizeof(*h->shared));
        if (!h->shared)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_shared; i++) {
                const msgpack_object *o = &arr->via.array.ptr[i];
                struct sb_handle_file *f = &h->shared[i];
                char field[48];
                uint64_t size;
                uint32_t crc;
                bool is_new;
                snprintf(field, sizeof(field), "shared[%zu]", i);
                if (o->type != MSGPACK_OBJECT_MAP)
                        return bad(err, err_len, field, "is not a map");
                if (get_hex_id(o, "uid", f->uid) < 0)
                        return bad(err, err_len, field, "has no valid uid (32 hex digits)");
                if (msg_get_strbuf(o, "local", f->local, sizeof(f->local)) < 0 ||
                    !sb_name_is_sst(f->local))
                        return bad(err, err_len, field, "has no valid local SST name");
                if (msg_get_u64(o, "size", &size) < 0)
                        return bad(err, err_len, field, "has no valid size");
                if (msg_get_u32(o, "crc", &crc) < 0)
                        return bad(err, err_len, field, "has no valid crc");
                if (msg_get_bool(o, "new", &is_new) < 0)
                        return bad(err, err_len, field, "has no valid new flag");
                f->size_bytes = size;
                f->crc32c = crc;
                f->is_new = is_new;
        }
        int r = check_unique(h->shared, h->n_shared, sizeof(*h->shared),
                             offsetof(struct sb_handle_file, uid));
        if (r == -EEXIST)
                return bad(err, err_len, "shared", "names a uid twice");
        if (r == 0)
                r = check_unique(h->shared, h->n_shared, sizeof(*h->shared),
                                 offsetof(struct sb_handle_file, local));
        if (r == -EEXIST)
                return bad(err, err_len, "shared", "names a local file twice");
        return r;
}

static int parse_private(const msgpack_object *p, struct sb_handle *h, char *err,
                         size_t err_len) {
        const msgpack_object *arr;
        char want[SB_HANDLE_PATH_MAX + 1];
        if (msg_get_strbuf(p, "path", h->private_path, sizeof(h->private_path)) < 0)
                return bad(err, err_len, "private.path", "is missing or too long");
        /* Exactly where the backend writes it: no other path is accepted. */
        snprintf(want, sizeof(want), "chk-%" PRIu64 "/sb-%s.pack", h->checkpoint_id,
                 h->backend_id);
        if (strcmp(want, h->private_path) != 0)
                return bad(err, err_len, "private.path", "is not chk-<chk>/sb-<backend>.pack");
        if (msg_get_u64(p, "size", &h->private_size_bytes) < 0)
                return bad(err, err_len, "private.size", "is missing or not an integer");
        if (msg_get_u32(p, "crc", &h->private_crc32c) < 0)
                return bad(err, err_len, "private.crc", "is missing or not a uint32");
        if (msg_get_array(p, "files", &arr) < 0)
                return bad(err, err_len, "private.files", "is missing or not an array");
        if (arr->via.array.size > 4096)
                return bad(err, err_len, "private.files", "has too many entries");
        h->n_members = arr->via.array.size;
        h->members = calloc(h->n_members ? h->n_members : 1, sizeof(*h->members));
        if (!h->members)
                return -ENOMEM;
        bool have_current = false;
        for (size_t i = 0; i < h->n_members; i++) {
                const msgpack_object *o = &arr->via.array.ptr[i];
                struct sb_handle_member *m = &h->members[i];
                char field[48];
                snprintf(field, sizeof(field), "private.files[%zu]", i);
                if (o->type != MSGPACK_OBJECT_MAP)
                        return bad(err, err_len, field, "is not a map");
                if (msg_get_strbuf(o, "name", m->name, sizeof(m->name)) < 0 ||
                    !sb_name_is_private(m->name))
                        return bad(err, err_len, field, "has no valid name");
                if (msg_get_u64(o, "off", &m->offset) < 0 || msg_get_u64(o, "size", &m->size_bytes) < 0 ||
                    msg_get_u32(o, "crc", &m->crc32c) < 0)
                        return bad(err, err_len, field, "has no valid off, size or crc");
                if (m->offset > h->private_size_bytes ||
                    m->size_bytes > h->private_size_bytes - m->offset)
                        return bad(err, err_len, field, "lies outside the pack");
                have_current |= strcmp(m->name, "CURRENT") == 0;
        }
        if (!have_current)
                return bad(err, err_len, "private.files", "has no CURRENT");
        int r = check_unique(h->members, h->n_members, sizeof(*h->members),
                             offsetof(struct sb_handle_member, name));
        return r == -EEXIST ? bad(err, err_len, "private.files", "names a file twice") : r;
}

int sb_handle_parse(const void *data, size_t len, struct sb_handle **ret_handle, char *err,
                    size_t err_len) {
        char *body = NULL;
        size_t body_len = 0;
        char why[256];
        int r = envelope_unwrap(data, len, SB_HANDLE_KIND, SB_HANDLE_VERSION, &body, &body_len,
                                NULL, why, sizeof(why));
        if (r < 0)
                return sb_fail(err, err_len, r, "state handle: %s", why);
        struct sb_handle *h = calloc(1, sizeof(*h));
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (!h) {
                r = -ENOMEM;
                goto out;
        }
        /* Bounded: msgpack-c sizes a container from its header alone, so a few bytes of
         * a corrupt or hostile handle could ask for gigabytes. Four levels: root map,
         * "private" map, "files" array, member map. Every object takes a byte at least,
         * so body_len bounds their number. */
        const char *uwhy = NULL;
        if (msg_unpack_bounded(body, body_len, 4, body_len, &up, &uwhy) < 0) {
                r = sb_fail(err, err_len, -EINVAL, "state handle: body is not one msgpack "
                            "object: %s", uwhy ? uwhy : "?");
                goto out;
        }
        if (up.data.type != MSGPACK_OBJECT_MAP) {
                r = sb_fail(err, err_len, -EINVAL, "state handle: body is not one msgpack map");
                goto out;
        }
        const msgpack_object *root = &up.data, *kg, *states, *shared, *priv;
        uint64_t chk;
        if (get_hex_id(root, "backend", h->backend_id) < 0) {
                r = bad(err, err_len, "backend", "is not 32 hex digits");
                goto out;
        }
        if (msg_get_u64(root, "chk", &chk) < 0 || chk == 0) {
                r = bad(err, err_len, "chk", "is missing or 0");
                goto out;
        }
        h->checkpoint_id = chk;
        if (msg_get_u32(root, "maxp", &h->max_parallelism) < 0 || h->max_parallelism == 0 ||
            h->max_parallelism > KG_UPPER_BOUND_MAX_PARALLELISM) {
                r = bad(err, err_len, "maxp", "is not in 1..32768");
                goto out;
        }
        if (msg_get_array(root, "kg", &kg) < 0 || kg->via.array.size != 2 ||
            kg->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            kg->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            kg->via.array.ptr[0].via.u64 >= kg->via.array.ptr[1].via.u64 ||
            kg->via.array.ptr[1].via.u64 > h->max_parallelism) {
                r = bad(err, err_len, "kg", "is not [start, end] with start < end <= maxp");
                goto out;
        }
        h->range.start = (uint32_t)kg->via.array.ptr[0].via.u64;
        h->range.end = (uint32_t)kg->via.array.ptr[1].via.u64;
        if (msg_get_array(root, "states", &states) < 0) {
                r = bad(err, err_len, "states", "is missing or not an array");
                goto out;
        }
        r = parse_states(states, h, err, err_len);
        if (r < 0)
                goto out;
        if (msg_get_array(root, "shared", &shared) < 0) {
                r = bad(err, err_len, "shared", "is missing or not an array");
                goto out;
        }
        r = parse_shared(shared, h, err, err_len);
        if (r < 0)
                goto out;
        if (msg_get_map(root, "private", &priv) < 0) {
                r = bad(err, err_len, "private", "is missing or not a map");
                goto out;
        }
        r = parse_private(priv, h, err, err_len);
        if (r < 0)
                goto out;
        *ret_handle = h;
        h = NULL;
        r = 0;
out:
        msgpack_unpacked_destroy(&up);
        sb_handle_free(h);
        free(body);
        return r;
}
