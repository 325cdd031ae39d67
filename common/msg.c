/* Validated msgpack map access and packing shorthands. */
#include "common/msg.h"

#include <errno.h>
#include <string.h>

const msgpack_object *msg_map_get(const msgpack_object *map, const char *key) {
        if (!map || map->type != MSGPACK_OBJECT_MAP)
                return NULL;
        size_t klen = strlen(key);
        for (uint32_t i = 0; i < map->via.map.size; i++) {
                const msgpack_object *k = &map->via.map.ptr[i].key;
                if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
                    memcmp(k->via.str.ptr, key, klen) == 0)
                        return &map->via.map.ptr[i].val;
        }
        return NULL;
}

int msg_get_u64(const msgpack_object *map, const char *key, uint64_t *ret) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return -EINVAL;
        *ret = o->via.u64;
        return 0;
}

int msg_get_i64(const msgpack_object *map, const char *key, int64_t *ret) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                *ret = o->via.i64;
                return 0;
        }
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX)
                return -EINVAL;
        *ret = (int64_t)o->via.u64;
        return 0;
}

int msg_get_u32(const msgpack_object *map, const char *key, uint32_t *ret) {
        uint64_t v;
        int r = msg_get_u64(map, key, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int msg_get_bool(const msgpack_object *map, const char *key, bool *ret) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
                return -EINVAL;
        *ret = o->via.boolean;
        return 0;
}

int msg_get_str(const msgpack_object *map, const char *key, const char **ret,
                size_t *ret_len) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_STR)
                return -EINVAL;
        *ret = o->via.str.ptr;
        *ret_len = o->via.str.size;
        return 0;
}

int msg_get_strbuf(const msgpack_object *map, const char *key, char *buf, size_t buf_len) {
        const char *s;
        size_t len;
        int r = msg_get_str(map, key, &s, &len);
        if (r < 0)
                return r;
        if (len >= buf_len)
                return -ENAMETOOLONG;
        if (memchr(s, '\0', len))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = '\0';
        return 0;
}

int msg_get_bin(const msgpack_object *map, const char *key, const void **ret,
                size_t *ret_len) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type == MSGPACK_OBJECT_BIN) {
                *ret = o->via.bin.ptr;
                *ret_len = o->via.bin.size;
                return 0;
        }
        if (o->type == MSGPACK_OBJECT_STR) {
                *ret = o->via.str.ptr;
                *ret_len = o->via.str.size;
                return 0;
        }
        return -EINVAL;
}

int msg_get_map(const msgpack_object *map, const char *key, const msgpack_object **ret) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_MAP)
                return -EINVAL;
        *ret = o;
        return 0;
}

int msg_get_array(const msgpack_object *map, const char *key, const msgpack_object **ret) {
        const msgpack_object *o = msg_map_get(map, key);
        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_ARRAY)
                return -EINVAL;
        *ret = o;
        return 0;
}

void msg_pack_cstr(msgpack_packer *pk, const char *s) {
        size_t len = strlen(s);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, s, len);
}

void msg_pack_kv_str(msgpack_packer *pk, const char *key, const char *value) {
        msg_pack_cstr(pk, key);
        msg_pack_cstr(pk, value);
}

void msg_pack_kv_strn(msgpack_packer *pk, const char *key, const char *value, size_t len) {
        msg_pack_cstr(pk, key);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, value, len);
}

void msg_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value) {
        msg_pack_cstr(pk, key);
        msgpack_pack_uint64(pk, value);
}

void msg_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value) {
        msg_pack_cstr(pk, key);
        msgpack_pack_int64(pk, value);
}

void msg_pack_kv_bool(msgpack_packer *pk, const char *key, bool value) {
        msg_pack_cstr(pk, key);
        if (value)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

void msg_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len) {
        msg_pack_cstr(pk, key);
        msgpack_pack_bin(pk, len);
        msgpack_pack_bin_body(pk, data, len);
}
