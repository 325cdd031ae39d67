/* Keyed operator state in embedded RocksDB: one sb_env per worker process (the shared
 * block cache and write-buffer budget), one sb_backend per keyed operator subtask (one
 * RocksDB instance, one column family per declared state), and the state kinds Flink
 * offers: value, list, map, reducing and aggregating, each with an optional TTL.
 *
 * Keys. The caller passes the current key with every call. The backend computes its key
 * group with kg_of_key() and refuses a key outside its range with -ERANGE. A RocksDB key
 * is: key group (u16 big-endian) | varint length | key | varint length | namespace
 * [| map user key], so keys sort by key group (rescaling clips by range) and a
 * (key, namespace) pair is a self-delimiting prefix (map iteration). Keys, namespaces and
 * map keys are binary: NUL bytes are fine.
 *
 * Values. With a TTL the stored value starts with the time of the last write (u64
 * big-endian ms); a list value is a sequence of elements, each varint length [| u64
 * write time] | bytes, appended through a RocksDB merge operator (no read-modify-write).
 * TTL follows Flink's defaults: updated on create and write, expired state is never
 * returned, it is deleted when read (lazily) and dropped by a compaction filter.
 *
 * Durability comes from checkpoints (snapshot.h), not a WAL: writes skip the WAL, and a
 * backend that is destroyed without a checkpoint loses its state, as in Flink.
 *
 * Threads. sb_env_* is thread-safe. A backend's state calls, sb_backend_compact() and
 * sb_backend_destroy() belong to one thread at a time (the task thread). What may run
 * elsewhere is listed in snapshot.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keygroup.h"

/* Defaults for the config keys the daemon passes in. */
#define SB_DEFAULT_MEMORY_FIXED_PER_TM_BYTES (256ull << 20) /* state.backend.rocksdb.memory.fixed-per-tm */
#define SB_DEFAULT_WRITE_BUFFER_RATIO 0.5                   /* state.backend.rocksdb.memory.write-buffer-ratio */
#define SB_MIN_MEMORY_FIXED_PER_TM_BYTES (16ull << 20)
/* Each column family's memtable is the write-buffer budget divided among all column
 * families of the process (two memtables each), within these bounds. Past
 * budget / (2 * SB_MIN_WRITE_BUFFER_BYTES) column families the floor wins and
 * sb_env_stats.over_budget says so. */
#define SB_MIN_WRITE_BUFFER_BYTES (256u << 10)
#define SB_MAX_WRITE_BUFFER_BYTES (64u << 20)

/* Universal compaction's compression_size_percent (env.c). -1 (RocksDB's default):
 * everything is compressed, flushes included. N in 0..100: memtable flushes are not
 * compressed, nor is a compaction whose older runs hold N % of the data or more;
 * compactions into the oldest run and full ones compress. 90: the synchronous snapshot's
 * flush skips LZ4 (tools/bench/state at 1M keys: the flush thread's CPU time per
 * snapshot fell from 9.0 to 5.9 ms, median), while the young runs left uncompressed stay
 * within about a tenth of the state. The price: the SST files a checkpoint flushes, and
 * the merges of young runs, are stored and uploaded uncompressed (more bytes per
 * incremental checkpoint when the values compress). */
#define SB_COMPRESSED_PERCENT 90

#define SB_STATE_NAME_MAX 64
#define SB_MAX_STATES 1024
#define SB_MAX_KEY_BYTES (1u << 20)      /* key, namespace and map user key, each */
#define SB_MAX_VALUE_BYTES (512u << 20)  /* one value, list element or map value */

struct sb_env;
struct sb_backend;
struct sb_state;

/* Current wall time in ms for TTL (Flink's processing time). Called from the task thread
 * and from RocksDB's compaction threads: it must be thread-safe. */
typedef int64_t (*sb_now_ms_fn)(void *arg);

struct sb_env_config {
        /* state.backend.rocksdb.memory.fixed-per-tm: all RocksDB memory of the process
         * (block cache and memtables). 0 means SB_DEFAULT_MEMORY_FIXED_PER_TM_BYTES; at
         * least SB_MIN_MEMORY_FIXED_PER_TM_BYTES. */
        uint64_t memory_fixed_per_tm_bytes;
        /* state.backend.rocksdb.memory.write-buffer-ratio: the part of it for memtables,
         * in (0, 1); 0 means SB_DEFAULT_WRITE_BUFFER_RATIO. The rest is the block cache,
         * which also holds index and filter blocks. */
        double write_buffer_ratio;
        /* RocksDB background threads (flush + compaction) of the process; 0 means 2. */
        int background_threads;
        /* TTL clock; NULL means clock_wall_ms(). Tests inject their own. */
        sb_now_ms_fn now_ms;
        void *now_ms_arg;
};

struct sb_env_stats {
        uint64_t block_cache_capacity_bytes;
        uint64_t block_cache_usage_bytes;   /* includes pinned index and filter blocks */
        uint64_t write_buffer_budget_bytes;
        uint64_t write_buffer_per_cf_bytes; /* current memtable size of each column family */
        uint64_t memtable_bytes;            /* all memtables of all backends, now */
        uint32_t backends;
        uint32_t column_families;
        bool over_budget;                   /* the SB_MIN_WRITE_BUFFER_BYTES floor applies */
};

/* Creates the per-process environment. Returns 0 or -EINVAL (a bad config value, named
 * in err) / -ENOMEM. Destroy it after every backend made from it. */
int sb_env_create(const struct sb_env_config *cfg, struct sb_env **ret_env, char *err,
                  size_t err_len);
/* Accepts NULL. All backends must have been destroyed. */
void sb_env_destroy(struct sb_env *env);
void sb_env_get_stats(struct sb_env *env, struct sb_env_stats *ret_stats);

enum sb_state_kind {
        SB_STATE_VALUE = 1,
        SB_STATE_LIST = 2,
        SB_STATE_MAP = 3,
        SB_STATE_REDUCING = 4,
        SB_STATE_AGGREGATING = 5,
};

/* "value", "list", "map", "reducing", "aggregating" or "?". */
const char *sb_state_kind_name(enum sb_state_kind kind);

/* Reducing and aggregating states: combines the accumulator acc (NULL and 0 when the key
 * has none yet, e.g. the first add after a clear or an expiry) with the input in, and
 * writes the new accumulator to out. If it needs more than out_cap bytes it sets
 * *ret_len to the size needed and returns -ENOBUFS; it is then called again with a
 * buffer that large. Returns 0 (with *ret_len set) or a negative errno, which the add
 * call returns. Called on the thread that calls sb_reducing_add(); it must not call into
 * the backend. A reducing state is an aggregating state whose input and accumulator
 * types agree; for both, sb_reducing_get() returns the accumulator. */
typedef int (*sb_reduce_fn)(void *arg, const void *acc, size_t acc_len, const void *in,
                            size_t in_len, void *out, size_t out_cap, size_t *ret_len);

struct sb_state_desc {
        const char *name;       /* 1..SB_STATE_NAME_MAX of [A-Za-z0-9_.-], not "default" */
        enum sb_state_kind kind;
        uint64_t ttl_ms;        /* 0: no TTL */
        sb_reduce_fn reduce;    /* reducing and aggregating states only */
        void *reduce_arg;
};

struct sb_backend_config {
        /* Working directory of this subtask (state.backend.rocksdb.localdir/...); created
         * if missing. The backend owns <local_dir>/db, <local_dir>/snap-<n> and
         * <local_dir>/restore-*, and removes whatever a previous run left there. */
        const char *local_dir;
        uint32_t max_parallelism;  /* 1..32768; 0 means KG_DEFAULT_MAX_PARALLELISM */
        struct kg_range range;     /* the key groups this subtask owns, non-empty */
        const struct sb_state_desc *states;
        size_t n_states;           /* 0..SB_MAX_STATES; names unique */
};

/* Creates an empty backend (restore.h restores one from a checkpoint). The state
 * descriptors are copied. Returns 0, -EINVAL (bad config: err names the field),
 * -ENOMEM, or an error of RocksDB or the file system with the text in err. On error
 * nothing stays open and *ret_backend is untouched. */
int sb_backend_create(struct sb_env *env, const struct sb_backend_config *cfg,
                      struct sb_backend **ret_backend, char *err, size_t err_len);

/* Closes the database and deletes <local_dir>/db (the state lives on in checkpoints).
 * Accepts NULL and a half-built backend. Snapshots taken from it stay valid (see
 * snapshot.h). */
void sb_backend_destroy(struct sb_backend *b);

/* This backend's random 32-hex id, named in its state handles. Lives as long as b. */
const char *sb_backend_id(const struct sb_backend *b);
struct kg_range sb_backend_range(const struct sb_backend *b);
uint32_t sb_backend_max_parallelism(const struct sb_backend *b);

/* The text of the last failed call on this backend's states (names the state, and the
 * key group or RocksDB's own message). Valid until the next call on the backend. */
const char *sb_backend_last_error(const struct sb_backend *b);

/* A declared state by name, or NULL. Borrowed; lives as long as b. States restored from
 * a checkpoint but no longer declared are kept (carried into later checkpoints) and not
 * returned here. */
struct sb_state *sb_backend_state(struct sb_backend *b, const char *name);

/* Full manual compaction of every column family; blocks until done. Maintenance and
 * tests: after a bulk load it leaves nothing for background compaction to rewrite. */
int sb_backend_compact(struct sb_backend *b);

struct sb_backend_stats {
        uint32_t sst_files;     /* live SST files of all column families */
        uint64_t sst_bytes;
        uint32_t l0_files;
        uint64_t memtable_bytes;
};
int sb_backend_get_stats(struct sb_backend *b, struct sb_backend_stats *ret_stats);

/* The current key of a state access. ns is the namespace (a window; empty for plain
 * keyed state); key and ns may hold any bytes, NULL is fine with length 0. */
struct sb_key {
        const void *key;
        size_t key_len;
        const void *ns;
        size_t ns_len;
};

/* A caller-owned growable buffer for returned values: start zeroed, reuse it across
 * calls, release it with sb_buf_finish(). The backend reallocs data as needed; on error
 * the content and len are unchanged. */
struct sb_buf {
        void *data;
        size_t len;
        size_t cap;
};
void sb_buf_finish(struct sb_buf *buf);

/* Every state call returns a negative errno on error, with the text in
 * sb_backend_last_error(): -ERANGE (key outside the backend's key groups), -EINVAL (the
 * call does not fit the state's kind, or a size over its limit), -EBADMSG (a stored
 * value does not decode), or a RocksDB error translated by err_from_rocksdb(). */

/* Value state. get returns 1 and the value in *out, or 0 when absent or expired. */
int sb_value_get(struct sb_state *st, const struct sb_key *k, struct sb_buf *out);
int sb_value_put(struct sb_state *st, const struct sb_key *k, const void *value, size_t len);
/* Puts n values of a value state in one RocksDB write (a WriteBatch), its entries sorted
 * by their RocksDB key first: a memtable insert in key order reuses the position of the
 * previous one, so this costs much less than n sb_value_put calls (the keyed operators'
 * write-back). Equal keys: the last one wins, as with n puts. All or nothing. */
struct sb_kv {
        struct sb_key key;
        const void *value;
        size_t value_len;
};
int sb_value_put_batch(struct sb_state *st, const struct sb_kv *kvs, size_t n);
/* Reads n keys of a value state in one RocksDB MultiGet (one pass over the memtables
 * and files for all of them, batched filter and block lookups). fn(arg, i, value, len)
 * for each i in order, value NULL when absent or expired; value is valid during the call
 * only. 0, fn's first non-zero return, or a negative errno. */
typedef int (*sb_multi_fn)(void *arg, size_t i, const void *value, size_t len);
int sb_value_multi_get(struct sb_state *st, const struct sb_key *keys, size_t n,
                       sb_multi_fn fn, void *arg);
/* Clear works on every kind: it removes the key's value, list or whole map. */
int sb_state_clear(struct sb_state *st, const struct sb_key *k);

/* List state. add appends one element (zero length is fine) through the merge operator.
 * update replaces the list (n == 0 clears it). get calls fn for each live element in
 * order; fn returns 0 to go on or anything else to stop, which get returns; get returns
 * 0 after the last element (an empty or absent list calls fn never). Elements passed to
 * fn are borrowed for the call only. */
typedef int (*sb_elem_fn)(void *arg, const void *elem, size_t len);
int sb_list_add(struct sb_state *st, const struct sb_key *k, const void *elem, size_t len);
int sb_list_update(struct sb_state *st, const struct sb_key *k, const void *const *elems,
                   const size_t *lens, size_t n);
int sb_list_get(struct sb_state *st, const struct sb_key *k, sb_elem_fn fn, void *arg);

/* Map state: the user key is part of the RocksDB key. get returns 1 (value in *out; out
 * may be NULL to test presence) or 0. iterate calls fn for each live entry in user-key
 * byte order, with the same stop rule as sb_list_get. */
typedef int (*sb_map_fn)(void *arg, const void *ukey, size_t ukey_len, const void *value,
                         size_t value_len);
int sb_map_put(struct sb_state *st, const struct sb_key *k, const void *ukey, size_t ukey_len,
               const void *value, size_t value_len);
int sb_map_get(struct sb_state *st, const struct sb_key *k, const void *ukey, size_t ukey_len,
               struct sb_buf *out);
int sb_map_remove(struct sb_state *st, const struct sb_key *k, const void *ukey,
                  size_t ukey_len);
int sb_map_iterate(struct sb_state *st, const struct sb_key *k, sb_map_fn fn, void *arg);

/* Reducing and aggregating state: add is get + reduce + put; get returns 1 and the
 * accumulator, or 0. */
int sb_reducing_add(struct sb_state *st, const struct sb_key *k, const void *in, size_t len);
int sb_reducing_get(struct sb_state *st, const struct sb_key *k, struct sb_buf *out);

/* Every live entry of a state in this backend's key groups, in RocksDB order (by key
 * group, then key, namespace, user key): one call per value, per list element and per
 * map entry. For inspection tools and tests. Pointers are borrowed for the call. fn's
 * return follows the stop rule of sb_list_get. */
struct sb_entry {
        uint32_t key_group;
        const void *key;
        size_t key_len;
        const void *ns;
        size_t ns_len;
        const void *user_key;   /* map state only, else NULL */
        size_t user_key_len;
        const void *value;      /* the value, list element, map value or accumulator */
        size_t value_len;
        int64_t write_ms;       /* TTL states: time of the last write; else 0 */
};
typedef int (*sb_scan_fn)(void *arg, const struct sb_entry *e);
int sb_state_scan(struct sb_state *st, sb_scan_fn fn, void *arg);

const char *sb_state_name(const struct sb_state *st);
enum sb_state_kind sb_state_kind(const struct sb_state *st);
