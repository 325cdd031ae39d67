/* The C ABI of flinc user-defined functions (DESIGN.md "Jobs"): what a UDF library
 * shipped with a job (the job file's `artifacts`; uploaded to the coordinator, which checks
 * the version below at upload, and fetched by workers from storage: coordinator/artifacts.h,
 * worker/artifacts.h) exports and how workers call it. This
 * header is the whole contract; a library includes only it. Version FLINC_UDF_ABI_VERSION
 * changes whenever a struct or a signature below changes; a worker refuses a library
 * built for another version with "artifact <path>: UDF ABI version <n>, this worker
 * speaks <m>".
 *
 * A library exports
 *     uint32_t flinc_udf_abi_version(void);      returns FLINC_UDF_ABI_VERSION
 * and, under the names the job's steps give in `udf:`, functions of these types:
 *     map           flinc_udf_map_fn          one record in, one out
 *     flat_map      flinc_udf_flat_map_fn     one record in, 0..n out through emit
 *     filter        flinc_udf_filter_fn       1 keeps the record, 0 drops it
 *     key_by        flinc_udf_key_fn          writes the record's key
 *     reduce        flinc_udf_reduce_fn       combines the key's accumulator with a value
 * Every function returns a negative errno on error, which fails the task with the step
 * named. Functions are called on task threads, possibly on several at once (one per
 * subtask): they must be thread-safe and must not keep pointers they were given (all
 * bytes are borrowed for the call). Strings are bytes with a length, not NUL-terminated. */
#ifndef FLINC_UDF_H
#define FLINC_UDF_H

#include <stddef.h>
#include <stdint.h>

#define FLINC_UDF_ABI_VERSION 1u
#define FLINC_UDF_ABI_SYMBOL "flinc_udf_abi_version"

/* A record as a UDF sees it (worker/ops.h's record model). */
struct flinc_udf_record {
        const char *text;       /* the word or line */
        size_t text_len;
        const char *key;        /* set by key_by; NULL before */
        size_t key_len;
        int64_t value;
        int64_t timestamp_ms;   /* event time; 0 = none */
};

/* map: writes the output record to *out. Output bytes (text, key) may point into the
 * input or into scratch (scratch_len bytes, owned by the worker). 0 or a negative
 * errno. */
typedef int (*flinc_udf_map_fn)(const struct flinc_udf_record *in,
                                struct flinc_udf_record *out, char *scratch,
                                size_t scratch_len);

/* flat_map: calls emit(emit_ctx, rec) for each output record (its bytes are copied by
 * the worker before emit returns) and returns 0, or emit's negative return, or its own
 * negative errno. */
typedef int (*flinc_udf_emit_fn)(void *emit_ctx, const struct flinc_udf_record *rec);
typedef int (*flinc_udf_flat_map_fn)(const struct flinc_udf_record *in, flinc_udf_emit_fn emit,
                                     void *emit_ctx);

/* filter: 1 keep, 0 drop, or a negative errno. */
typedef int (*flinc_udf_filter_fn)(const struct flinc_udf_record *in);

/* key selector: writes at most key_cap bytes of key to key_buf and *ret_key_len. 0 or a
 * negative errno (-ENOSPC when the key does not fit). */
typedef int (*flinc_udf_key_fn)(const struct flinc_udf_record *in, char *key_buf,
                                size_t key_cap, size_t *ret_key_len);

/* reduce: the key's new accumulator from the old one (acc) and the record's value;
 * the first record of a key becomes the accumulator as it is, without a call. 0 or a
 * negative errno. */
typedef int (*flinc_udf_reduce_fn)(int64_t acc, const struct flinc_udf_record *in,
                                   int64_t *ret_acc);

#endif
