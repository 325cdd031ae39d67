/* Helpers for reading and writing msgpack maps with validation: every field read from a
 * peer or from storage goes through these and a missing or mistyped field is an error
 * that names the field. Objects borrow from their msgpack zone: a returned string or
 * bin pointer lives as long as the zone (msgpack_unpacked) it came from. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* The value under a string key of a map object, or NULL (also when obj is no map). */
const msgpack_object *msg_map_get(const msgpack_object *map, const char *key);

/* Typed getters: 0, -ENOENT (missing) or -EINVAL (wrong type or out of range). */
int msg_get_u64(const msgpack_object *map, const char *key, uint64_t *ret);
int msg_get_i64(const msgpack_object *map, const char *key, int64_t *ret);
int msg_get_u32(const msgpack_object *map, const char *key, uint32_t *ret);
int msg_get_bool(const msgpack_object *map, const char *key, bool *ret);
/* A str field; *ret borrows from the zone and is not NUL-terminated. */
int msg_get_str(const msgpack_object *map, const char *key, const char **ret,
                size_t *ret_len);
/* A str field copied into buf (NUL-terminated); -ENAMETOOLONG if it does not fit, or
 * -EINVAL if it holds a NUL byte. */
int msg_get_strbuf(const msgpack_object *map, const char *key, char *buf, size_t buf_len);
/* A bin (or str) field, borrowed. */
int msg_get_bin(const msgpack_object *map, const char *key, const void **ret,
                size_t *ret_len);
int msg_get_map(const msgpack_object *map, const char *key, const msgpack_object **ret);
int msg_get_array(const msgpack_object *map, const char *key, const msgpack_object **ret);

/* Packing shorthands: a str key followed by a value. */
void msg_pack_cstr(msgpack_packer *pk, const char *s);
void msg_pack_kv_str(msgpack_packer *pk, const char *key, const char *value);
void msg_pack_kv_strn(msgpack_packer *pk, const char *key, const char *value, size_t len);
void msg_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value);
void msg_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value);
void msg_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
void msg_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len);
