/* A streaming JSON writer for the REST API's Flink-shaped responses and the CLIs' --json
 * output: values are appended to one growable buffer, with commas, quoting and escapes
 * done here. Every call that can fail records the first error in the writer and makes
 * the later calls no-ops ("sticky"), so a response is built without checks after each
 * call and checked once, at the end, by json_writer_take() or json_writer_error().
 *
 * Output rules:
 *  - strings: '"' and '\\' escaped, control characters as \n \t \r \b \f or \u00XX,
 *    DEL as \u007f, U+2028 and U+2029 as \u2028 \u2029 (safe inside a <script>); bytes
 *    that are not well-formed UTF-8 (stray continuation bytes, overlong forms,
 *    surrogates, code points above U+10FFFF, truncated sequences) become one \ufffd for
 *    each maximal ill-formed subpart, as Unicode recommends. Other text is copied.
 *  - numbers: int64 and uint64 exactly; doubles in the shortest form that reads back to
 *    the same value (at most 17 significant digits), independent of the C locale; NaN
 *    and infinities, which JSON cannot hold, are written as null.
 *  - nesting of at most JSON_MAX_DEPTH objects and arrays.
 *
 * Error codes kept by the writer: -EINVAL (misuse: a value in an object without a key,
 * a key outside an object or twice in a row, an end that does not match its begin, a
 * second top-level value), -E2BIG (deeper than JSON_MAX_DEPTH), -EFBIG (output over the
 * writer's max_bytes), -ENOMEM. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64
#define JSON_DEFAULT_MAX_BYTES ((size_t)64 << 20)

/* Caller-allocated (json_writer_init / json_writer_finish); the fields are private. */
struct json_writer {
        char *buf;
        size_t len;
        size_t cap;
        size_t max_bytes;
        int error;
        uint32_t depth;
        bool pretty;
        bool key_pending;   /* json_key() was called; its value comes next */
        bool done;          /* a complete top-level value was written */
        char kind[JSON_MAX_DEPTH];       /* 'o' object or 'a' array, per open level */
        bool nonempty[JSON_MAX_DEPTH];   /* the level has at least one member */
};

/* Prepares w for one JSON value (an object, an array or a scalar) of at most max_bytes
 * bytes of output (0 means JSON_DEFAULT_MAX_BYTES). Allocates nothing yet. */
void json_writer_init(struct json_writer *w, size_t max_bytes);

/* Indents members by two spaces per level, one per line (for people); off by default.
 * Call before the first value. */
void json_writer_set_pretty(struct json_writer *w, bool pretty);

/* Frees the buffer (if it was not taken) and leaves w empty; NULL is fine. */
void json_writer_finish(struct json_writer *w);

/* The sticky error: 0 or the first negative errno met (see the header comment). */
int json_writer_error(const struct json_writer *w);

/* Checks that no error happened and that exactly one complete value was written, then
 * hands the text over: *ret_text is malloc'ed, NUL-terminated, *ret_len bytes long
 * without the NUL; the caller frees it. w is left empty (still to be finished, which is
 * then a no-op). On error (the sticky one, or -EINVAL for an unfinished value) nothing
 * is handed over and w is unchanged. */
int json_writer_take(struct json_writer *w, char **ret_text, size_t *ret_len);

/* Objects and arrays. Inside an object each value is preceded by json_key(). */
void json_begin_object(struct json_writer *w);
void json_end_object(struct json_writer *w);
void json_begin_array(struct json_writer *w);
void json_end_array(struct json_writer *w);
/* key is NUL-terminated and escaped like a string value; json_key_len takes len bytes
 * (NUL bytes included, written as \u0000). */
void json_key(struct json_writer *w, const char *key);
void json_key_len(struct json_writer *w, const char *key, size_t len);

/* Scalars. json_string(w, NULL) writes null. */
void json_string(struct json_writer *w, const char *s);
void json_string_len(struct json_writer *w, const char *s, size_t len);
void json_int(struct json_writer *w, int64_t v);
void json_uint(struct json_writer *w, uint64_t v);
void json_double(struct json_writer *w, double v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);

/* A key and its value in one call, for object members. */
void json_kv_string(struct json_writer *w, const char *key, const char *value);
void json_kv_int(struct json_writer *w, const char *key, int64_t value);
void json_kv_uint(struct json_writer *w, const char *key, uint64_t value);
void json_kv_double(struct json_writer *w, const char *key, double value);
void json_kv_bool(struct json_writer *w, const char *key, bool value);
void json_kv_null(struct json_writer *w, const char *key);
