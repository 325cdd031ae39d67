/* Helpers for reading and writing msgpack maps with validation: every field read from a
 * peer or from storage goes through these and a missing or mistyped field is an error
 * that names the field. Objects borrow from their msgpack zone: a returned string or
 * bin pointer lives as long as the zone (msgpack_unpacked) it came from. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Nesting limit of msgpack containers that msg_precheck accepts (msgpack-c's own
 * unpacker stack is 32 deep). */
#define MSG_MAX_DEPTH 32u

/* Walks one msgpack object at data[0..len) without building it, before msgpack-c sees
 * it: msgpack-c allocates a container's slots from its header alone, so five bytes
 * could otherwise ask for gigabytes. Every element of a container takes at least one
 * byte, so the elements still owed may never outnumber the bytes left. max_depth (at
 * most MSG_MAX_DEPTH) mirrors msgpack-c's stack check: a container header met while
 * max_depth non-empty containers are open is refused. *objects_left is an object
 * budget, decremented per object; running out is refused. 0 and *ret_used (the
 * object's size), or -EBADMSG and *ret_why (a static string). Use it on every msgpack
 * buffer that comes from a peer or from storage. */
int msg_precheck(const void *data, size_t len, unsigned max_depth, uint64_t *objects_left,
                 size_t *ret_used, const char **ret_why);

/* msg_precheck over exactly one object filling data[0..len), then msgpack_unpack_next
 * into out (initialized by the caller with msgpack_unpacked_init; strings and bins in
 * it point into data, which must outlive their use). 0 or -EBADMSG with *ret_why. */
int msg_unpack_bounded(const void *data, size_t len, unsigned max_depth, uint64_t max_objects,
                       msgpack_unpacked *out, const char **ret_why);

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
