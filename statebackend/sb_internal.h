/* Private to statebackend/: the structures behind the public handles and the helpers
 * the modules share (error text, key encoding, the confirmed-base file map, the
 * bookkeeping a backend shares with its snapshots, the SST verifier). */
#pragma once

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "common/err.h"
#include "common/ids.h"
#include "statebackend/backend.h"
#include "statebackend/handle.h"

#define SB_PATH_MAX 4096
#define SB_KG_PREFIX_BYTES 2
#define SB_TTL_BYTES 8
#define SB_ERR_MAX 512

/* Writes a formatted reason into err (if any) and returns r. */
int sb_fail(char *err, size_t err_len, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Translates a RocksDB errptr with err_from_rocksdb(), writes "<what>: <RocksDB text>"
 * into err, frees errptr and returns the negative errno. */
int sb_fail_rocks(char *err, size_t err_len, char *errptr, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Path join into buf; -ENAMETOOLONG if it does not fit. */
int sb_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int sb_buf_reserve(struct sb_buf *buf, size_t cap);
int sb_buf_set(struct sb_buf *buf, const void *data, size_t len);

/* ---- encoding ---------------------------------------------------------------- */

size_t sb_varint_put(unsigned char *p, uint64_t v);  /* at most 10 bytes */
int sb_varint_get(const unsigned char **p, const unsigned char *end, uint64_t *ret);
void sb_be16_put(unsigned char *p, uint32_t v);
uint32_t sb_be16_get(const unsigned char *p);
void sb_be64_put(unsigned char *p, uint64_t v);
uint64_t sb_be64_get(const unsigned char *p);

/* A decoded RocksDB key (pointers into it). */
struct sb_dkey {
        uint32_t kg;
        const unsigned char *key, *ns, *ukey;
        size_t key_len, ns_len, ukey_len;
};
int sb_key_decode(const void *raw, size_t len, struct sb_dkey *ret);

/* Is a stored TTL value expired at now_ms? write_ms is the stored write time. */
static inline bool sb_ttl_expired(uint64_t ttl_ms, int64_t write_ms, int64_t now_ms) {
        return ttl_ms && now_ms - write_ms >= (int64_t)ttl_ms;
}

/* ---- the base: local SST name -> (uid, size, CRC32C) -------------------------- */

struct sb_fileinfo {
        char local[SB_HANDLE_NAME_MAX + 1];
        char uid[ID_HEX_LEN + 1];
        uint64_t size_bytes;
        uint32_t crc32c;
};

/* Immutable after creation and shared by reference count. */
struct sb_filemap {
        atomic_int refs;
        uint64_t checkpoint_id;
        size_t n;
        struct sb_fileinfo files[]; /* sorted by local name */
};

struct sb_filemap *sb_filemap_new(uint64_t checkpoint_id, const struct sb_fileinfo *files,
                                  size_t n);
struct sb_filemap *sb_filemap_ref(struct sb_filemap *m);
void sb_filemap_unref(struct sb_filemap *m);
const struct sb_fileinfo *sb_filemap_find(const struct sb_filemap *m, const char *local);

/* ---- what a backend shares with its snapshots ------------------------------- */

enum sb_pending_state {
        SB_PENDING_SYNCED,     /* local snapshot taken, not uploading */
        SB_PENDING_UPLOADING,
        SB_PENDING_DONE,       /* handle returned; waits for confirm or abort */
        SB_PENDING_ABORTED,    /* aborted before its upload finished */
};

struct sb_pending {
        uint64_t checkpoint_id;
        enum sb_pending_state state;
        struct sb_filemap *files;  /* DONE: every SST the handle names */
        char *job_dir;             /* DONE: where the uploads went */
        char **uploaded;           /* DONE: relative paths this upload created */
        size_t n_uploaded;
};

#define SB_ABORTED_RING 64

struct sb_shared {
        pthread_mutex_t lock;
        atomic_int refs;
        /* Under lock. */
        struct sb_filemap *base;
        struct sb_pending *pending;
        size_t n_pending, cap_pending;
        uint64_t aborted[SB_ABORTED_RING]; /* ids aborted before they were synced */
        size_t aborted_next;
        /* Immutable after the backend is open. */
        char backend_id[ID_HEX_LEN + 1];
        uint32_t max_parallelism;
        struct kg_range range;
        struct sb_handle_state *states;
        size_t n_states;
        char local_dir[SB_PATH_MAX];
};

struct sb_shared *sb_shared_ref(struct sb_shared *s);
void sb_shared_unref(struct sb_shared *s);
void sb_pending_clear(struct sb_pending *p);
/* Deletes job_dir/<path> for each path; returns the first error (named in err). */
int sb_delete_uploads(const char *job_dir, char **paths, size_t n, char *err, size_t err_len);

/* ---- env and backend ------------------------------------------------------- */

struct sb_env {
        pthread_mutex_t lock;
        rocksdb_cache_t *cache;
        rocksdb_env_t *rocks_env;
        uint64_t cache_bytes;
        uint64_t wb_budget_bytes;
        uint64_t wb_per_cf_bytes;   /* under lock */
        sb_now_ms_fn now_ms;
        void *now_ms_arg;
        int background_threads;
        struct sb_backend *backends; /* under lock: open backends */
        uint32_t n_backends;         /* under lock */
        uint32_t n_cf;               /* under lock: column families reserved */
};

int64_t sb_env_now_ms(const struct sb_env *env);
/* Reserves memtable budget for n_cf more column families, resizes the memtables of the
 * open backends and returns the size for the new ones. */
uint64_t sb_env_reserve(struct sb_env *env, uint32_t n_cf);
/* Links an open backend (its column families reserved before), resizing its memtables
 * if the budget was split anew since it opened. */
void sb_env_link(struct sb_env *env, struct sb_backend *b);
/* Unlinks b (if linked) and gives back n_cf column families. */
void sb_env_release(struct sb_env *env, struct sb_backend *b, uint32_t n_cf);

struct sb_ttl_filter;

struct sb_state {
        struct sb_backend *b;
        char name[SB_STATE_NAME_MAX + 1];
        enum sb_state_kind kind;
        uint64_t ttl_ms;
        sb_reduce_fn reduce;
        void *reduce_arg;
        bool declared;
        rocksdb_column_family_handle_t *cf;
        rocksdb_compactionfilter_t *filter; /* TTL states; must outlive the db */
};

struct sb_backend {
        struct sb_env *env;
        struct sb_shared *shared;
        char local_dir[SB_PATH_MAX];
        char db_dir[SB_PATH_MAX];
        uint32_t max_parallelism;
        struct kg_range range;
        rocksdb_t *db;
        rocksdb_column_family_handle_t *default_cf;
        struct sb_state *states;
        size_t n_states;
        uint32_t n_cf_reserved;
        uint64_t wb_bytes;      /* memtable size the column families have; env lock */
        bool linked;
        rocksdb_writeoptions_t *wopts;
        rocksdb_readoptions_t *ropts;
        struct sb_buf key;      /* scratch: encoded key */
        struct sb_buf val;      /* scratch: encoded value */
        struct sb_buf upper;    /* scratch: iteration bound */
        struct sb_buf batch;    /* scratch: sb_value_put_batch's encoded entries */
        struct sb_buf order;    /* scratch: and their order */
        char last_error[SB_ERR_MAX];
        struct sb_backend *env_next;
};

/* Validates a backend config; err names the field. */
int sb_config_check(const struct sb_backend_config *cfg, char *err, size_t err_len);

/* Removes <local_dir>/db, snap-* and restore-* left by an earlier run, and creates
 * local_dir. */
int sb_local_dir_prepare(const char *local_dir, char *err, size_t err_len);

/* Opens the database in <local_dir>/db: new (restored == NULL, the directory must not
 * exist) or restored (files in place; restored lists the states of the handles, which
 * the database's column families must match). Declared states missing in the database
 * are created. */
int sb_backend_open(struct sb_env *env, const struct sb_backend_config *cfg,
                    const struct sb_handle_state *restored, size_t n_restored,
                    struct sb_backend **ret_backend, char *err, size_t err_len);

/* Options for one column family of the given kind (merge operator, table options with
 * the shared cache, compaction settings); the caller destroys them. filter, if the
 * state has a TTL, is set and must outlive the database. */
rocksdb_options_t *sb_cf_options(struct sb_env *env, enum sb_state_kind kind, uint64_t ttl_ms,
                                 uint64_t write_buffer_bytes, rocksdb_compactionfilter_t **filter);

/* ---- SST verification (sst.c) -------------------------------------------------- */

/* Checks every block checksum of the block-based SST at path and that the blocks tile
 * the file; returns the file's CRC32C and size. name is what err calls the file.
 * -EBADMSG when corrupt (err says where), -EOPNOTSUPP for a table format the backend
 * does not write, file errors. */
int sb_sst_verify(const char *path, const char *name, uint32_t *ret_crc, uint64_t *ret_size,
                  char *err, size_t err_len);

/* ---- handle names ---------------------------------------------------------- */

bool sb_name_is_sst(const char *name);
bool sb_name_is_private(const char *name);
bool sb_name_is_state(const char *name);
int sb_kind_parse(const char *s, size_t len, enum sb_state_kind *ret);
