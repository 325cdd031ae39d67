/* Validated msgpack map access and packing shorthands. */
#include "common/msg.h"

#include <errno.h>
#include <stdbool.h>
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

static uint64_t load_be(const uint8_t *p, unsigned bytes) {
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes; i++)
                v = v << 8 | p[i];
        return v;
}

int msg_precheck(const void *data, size_t len, unsigned max_depth, uint64_t *objects_left,
                 size_t *ret_used, const char **ret_why) {
        const uint8_t *p = data;
        uint64_t left[MSG_MAX_DEPTH + 1];
        if (max_depth > MSG_MAX_DEPTH)
                max_depth = MSG_MAX_DEPTH;
        uint64_t owed = 1; /* elements still to read, over all open levels */
        unsigned depth = 0;
        size_t pos = 0;

        left[0] = 1;
        for (;;) {
                while (left[depth] == 0) {
                        if (depth == 0) {
                                *ret_used = pos;
                                return 0;
                        }
                        depth--;
                }
                left[depth]--;
                owed--;
                if (*objects_left == 0) {
                        *ret_why = "more msgpack objects than allowed";
                        return -EBADMSG;
                }
                (*objects_left)--;
                if (pos >= len) {
                        *ret_why = "truncated msgpack";
                        return -EBADMSG;
                }
                uint8_t b = p[pos++];
                uint64_t skip = 0, count = 0;
                unsigned len_bytes = 0, extra = 0;
                bool container = false, map = false;
                if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
                        /* fixint, nil, bool */
                } else if (b <= 0x8f) {
                        container = map = true;
                        count = b & 0x0f;
                } else if (b <= 0x9f) {
                        container = true;
                        count = b & 0x0f;
                } else if (b <= 0xbf) {
                        skip = b & 0x1f;
                } else {
                        switch (b) {
                        case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
                                len_bytes = 1u << (b - 0xc4);
                                break;
                        case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: + type byte */
                                len_bytes = 1u << (b - 0xc7);
                                extra = 1;
                                break;
                        case 0xca: skip = 4; break;
                        case 0xcb: skip = 8; break;
                        case 0xcc: case 0xd0: skip = 1; break;
                        case 0xcd: case 0xd1: skip = 2; break;
                        case 0xce: case 0xd2: skip = 4; break;
                        case 0xcf: case 0xd3: skip = 8; break;
                        case 0xd4: skip = 2; break;  /* fixext 1 + type */
                        case 0xd5: skip = 3; break;
                        case 0xd6: skip = 5; break;
                        case 0xd7: skip = 9; break;
                        case 0xd8: skip = 17; break;
                        case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
                                len_bytes = 1u << (b - 0xd9);
                                break;
                        case 0xdc: case 0xdd: /* array 16/32 */
                                container = true;
                                len_bytes = 2u << (b - 0xdc);
                                break;
                        case 0xde: case 0xdf: /* map 16/32 */
                                container = map = true;
                                len_bytes = 2u << (b - 0xde);
                                break;
                        default: /* 0xc1 */
                                *ret_why = "msgpack byte 0xc1 (never used)";
                                return -EBADMSG;
                        }
                        if (len_bytes) {
                                if (len - pos < len_bytes) {
                                        *ret_why = "truncated msgpack";
                                        return -EBADMSG;
                                }
                                uint64_t n = load_be(p + pos, len_bytes);
                                pos += len_bytes;
                                if (container)
                                        count = n;
                                else
                                        skip = n + extra;
                        }
                }
                if (container) {
                        if (depth >= max_depth) {
                                *ret_why = "msgpack nested too deep";
                                return -EBADMSG;
                        }
                        if (map)
                                count *= 2;
                        if (count > 0) {
                                if (owed + count > len - pos) {
                                        *ret_why = "msgpack container larger than the frame";
                                        return -EBADMSG;
                                }
                                left[++depth] = count;
                                owed += count;
                        }
                } else if (skip > len - pos) {
                        *ret_why = "truncated msgpack";
                        return -EBADMSG;
                } else {
                        pos += (size_t)skip;
                }
        }
}

int msg_unpack_bounded(const void *data, size_t len, unsigned max_depth, uint64_t max_objects,
                       msgpack_unpacked *out, const char **ret_why) {
        size_t used = 0, off = 0;
        uint64_t left = max_objects;
        int r = msg_precheck(data, len, max_depth, &left, &used, ret_why);
        if (r < 0)
                return r;
        if (used != len) {
                *ret_why = "bytes after the msgpack object";
                return -EBADMSG;
        }
        if (msgpack_unpack_next(out, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
                *ret_why = "msgpack object could not be unpacked";
                return -EBADMSG;
        }
        return 0;
}
