/* The per-process environment: one block cache and one memtable budget for all backends
 * of a worker, the RocksDB options every column family gets, the list merge operator and
 * the TTL compaction filter.
 *
 * Memory. RocksDB 7.8's C API cannot share a WriteBufferManager between databases, so
 * the memtable budget is divided here: each state's column family gets memtables of
 * budget / (2 x all column families of the process), rounded down to a power of two
 * (fewer resizes) and capped at SB_MAX_WRITE_BUFFER_BYTES, with at most two memtables
 * per column family. When backends come and go, the open ones are resized through
 * SetOptions (write_buffer_size is a mutable option). The block cache, which also holds
 * the index and filter blocks, is one LRU cache of the rest of the budget. So the number
 * of subtasks and states changes how the budget is split, not how large it is. */
#include "statebackend/sb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

static int64_t wall_now_ms(void *arg) {
        (void)arg;
        return clock_wall_ms();
}

int64_t sb_env_now_ms(const struct sb_env *env) {
        return env->now_ms(env->now_ms_arg);
}

int sb_env_create(const struct sb_env_config *cfg, struct sb_env **ret_env, char *err,
                  size_t err_len) {
        struct sb_env_config c = cfg ? *cfg : (struct sb_env_config){0};
        if (c.memory_fixed_per_tm_bytes == 0)
                c.memory_fixed_per_tm_bytes = SB_DEFAULT_MEMORY_FIXED_PER_TM_BYTES;
        if (c.write_buffer_ratio == 0)
                c.write_buffer_ratio = SB_DEFAULT_WRITE_BUFFER_RATIO;
        if (c.background_threads == 0)
                c.background_threads = 2;
        if (c.memory_fixed_per_tm_bytes < SB_MIN_MEMORY_FIXED_PER_TM_BYTES)
                return sb_fail(err, err_len, -EINVAL,
                               "state.backend.rocksdb.memory.fixed-per-tm is %" PRIu64
                               " bytes; at least %llu are needed",
                               c.memory_fixed_per_tm_bytes, SB_MIN_MEMORY_FIXED_PER_TM_BYTES);
        if (!(c.write_buffer_ratio > 0 && c.write_buffer_ratio < 1))
                return sb_fail(err, err_len, -EINVAL,
                               "state.backend.rocksdb.memory.write-buffer-ratio is %g; "
                               "it must be in (0, 1)", c.write_buffer_ratio);
        if (c.background_threads < 1 || c.background_threads > 64)
                return sb_fail(err, err_len, -EINVAL,
                               "background threads is %d; it must be in 1..64",
                               c.background_threads);

        struct sb_env *env = calloc(1, sizeof(*env));
        if (!env)
                return -ENOMEM;
        pthread_mutex_init(&env->lock, NULL);
        env->wb_budget_bytes = (uint64_t)((double)c.memory_fixed_per_tm_bytes *
                                          c.write_buffer_ratio);
        env->cache_bytes = c.memory_fixed_per_tm_bytes - env->wb_budget_bytes;
        env->now_ms = c.now_ms ? c.now_ms : wall_now_ms;
        env->now_ms_arg = c.now_ms_arg;
        env->background_threads = c.background_threads;
        env->cache = rocksdb_cache_create_lru(env->cache_bytes);
        /* The process's default Env: its thread pools are shared by all databases. */
        env->rocks_env = rocksdb_create_default_env();
        if (!env->cache || !env->rocks_env) {
                sb_env_destroy(env);
                return -ENOMEM;
        }
        rocksdb_env_set_background_threads(env->rocks_env, c.background_threads);
        rocksdb_env_set_high_priority_background_threads(env->rocks_env, 1);
        /* Compactions run at the lowest CPU priority (nice 19; flushes keep the normal
         * one). A synchronous snapshot waits for a flush, and on a machine with fewer
         * cores than busy threads a running compaction otherwise takes the CPU that
         * flush and the task thread wait for. Compactions only need to keep up on
         * average: they still get every idle cycle, and RocksDB's write stalls bound
         * what they may fall behind. */
        rocksdb_env_lower_thread_pool_cpu_priority(env->rocks_env);
        *ret_env = env;
        return 0;
}

void sb_env_destroy(struct sb_env *env) {
        if (!env)
                return;
        if (env->cache)
                rocksdb_cache_destroy(env->cache);
        if (env->rocks_env)
                rocksdb_env_destroy(env->rocks_env);
        pthread_mutex_destroy(&env->lock);
        free(env);
}

static uint64_t per_cf_bytes(uint64_t budget, uint32_t n_cf, bool *ret_over) {
        uint64_t raw = budget / (2 * (uint64_t)(n_cf ? n_cf : 1));
        uint64_t v = SB_MAX_WRITE_BUFFER_BYTES;
        while (v > raw && v > SB_MIN_WRITE_BUFFER_BYTES)
                v >>= 1;
        if (ret_over)
                *ret_over = raw < SB_MIN_WRITE_BUFFER_BYTES;
        return v;
}

/* Under env->lock: gives b's column families the current memtable size. */
static void resize_backend(struct sb_env *env, struct sb_backend *b) {
        if (b->wb_bytes == env->wb_per_cf_bytes)
                return;
        char value[32];
        snprintf(value, sizeof(value), "%" PRIu64, env->wb_per_cf_bytes);
        const char *keys[] = {"write_buffer_size"};
        const char *values[] = {value};
        bool ok = true;
        for (size_t i = 0; i < b->n_states; i++) {
                char *e = NULL;
                rocksdb_set_options_cf(b->db, b->states[i].cf, 1, keys, values, &e);
                /* Best effort: a failure leaves the old size, which the next resize
                 * retries; nothing a caller could do about it. */
                ok &= e == NULL;
                free(e);
        }
        if (ok)
                b->wb_bytes = env->wb_per_cf_bytes;
}

static void resize_open_backends(struct sb_env *env) {
        for (struct sb_backend *b = env->backends; b; b = b->env_next)
                resize_backend(env, b);
}

uint64_t sb_env_reserve(struct sb_env *env, uint32_t n_cf) {
        pthread_mutex_lock(&env->lock);
        env->n_cf += n_cf;
        uint64_t v = per_cf_bytes(env->wb_budget_bytes, env->n_cf, NULL);
        if (v != env->wb_per_cf_bytes) {
                env->wb_per_cf_bytes = v;
                resize_open_backends(env);
        }
        pthread_mutex_unlock(&env->lock);
        return v;
}

void sb_env_link(struct sb_env *env, struct sb_backend *b) {
        pthread_mutex_lock(&env->lock);
        b->env_next = env->backends;
        env->backends = b;
        env->n_backends++;
        b->linked = true;
        resize_backend(env, b); /* another backend may have come or gone meanwhile */
        pthread_mutex_unlock(&env->lock);
}

void sb_env_release(struct sb_env *env, struct sb_backend *b, uint32_t n_cf) {
        pthread_mutex_lock(&env->lock);
        if (b && b->linked) {
                for (struct sb_backend **pp = &env->backends; *pp; pp = &(*pp)->env_next) {
                        if (*pp == b) {
                                *pp = b->env_next;
                                break;
                        }
                }
                b->linked = false;
                env->n_backends--;
        }
        env->n_cf -= n_cf < env->n_cf ? n_cf : env->n_cf;
        uint64_t v = per_cf_bytes(env->wb_budget_bytes, env->n_cf, NULL);
        if (v != env->wb_per_cf_bytes) {
                env->wb_per_cf_bytes = v;
                resize_open_backends(env);
        }
        pthread_mutex_unlock(&env->lock);
}

void sb_env_get_stats(struct sb_env *env, struct sb_env_stats *ret_stats) {
        struct sb_env_stats s = {0};
        pthread_mutex_lock(&env->lock);
        s.block_cache_capacity_bytes = env->cache_bytes;
        s.block_cache_usage_bytes = rocksdb_cache_get_usage(env->cache);
        s.write_buffer_budget_bytes = env->wb_budget_bytes;
        s.write_buffer_per_cf_bytes = per_cf_bytes(env->wb_budget_bytes, env->n_cf,
                                                   &s.over_budget);
        s.backends = env->n_backends;
        s.column_families = env->n_cf;
        for (struct sb_backend *b = env->backends; b; b = b->env_next) {
                for (size_t i = 0; i < b->n_states; i++) {
                        uint64_t v = 0;
                        if (rocksdb_property_int_cf(b->db, b->states[i].cf,
                                                    "rocksdb.cur-size-all-mem-tables", &v) == 0)
                                s.memtable_bytes += v;
                }
        }
        pthread_mutex_unlock(&env->lock);
        *ret_stats = s;
}

/* ---- list merge operator: concatenation of encoded element sequences ----------- */

static char *concat_merge(const char *existing, size_t existing_len,
                          const char *const *ops, const size_t *op_lens, int n,
                          unsigned char *success, size_t *ret_len) {
        size_t total = existing_len;
        for (int i = 0; i < n; i++)
                total += op_lens[i];
        char *out = malloc(total ? total : 1);
        if (!out) {
                *success = 0;
                return NULL;
        }
        size_t off = 0;
        if (existing_len) {
                memcpy(out, existing, existing_len);
                off = existing_len;
        }
        for (int i = 0; i < n; i++) {
                if (op_lens[i])
                        memcpy(out + off, ops[i], op_lens[i]);
                off += op_lens[i];
        }
        *success = 1;
        *ret_len = total;
        return out;
}

static char *list_full_merge(void *state, const char *key, size_t key_len,
                             const char *existing, size_t existing_len,
                             const char *const *ops, const size_t *op_lens, int n,
                             unsigned char *success, size_t *ret_len) {
        (void)state;
        (void)key;
        (void)key_len;
        return concat_merge(existing, existing ? existing_len : 0, ops, op_lens, n, success,
                            ret_len);
}

static char *list_partial_merge(void *state, const char *key, size_t key_len,
                                const char *const *ops, const size_t *op_lens, int n,
                                unsigned char *success, size_t *ret_len) {
        (void)state;
        (void)key;
        (void)key_len;
        return concat_merge(NULL, 0, ops, op_lens, n, success, ret_len);
}

static void merge_delete_value(void *state, const char *value, size_t len) {
        (void)state;
        (void)len;
        free((void *)value);
}

static const char *merge_name(void *state) {
        (void)state;
        return "flinc.sb.list-append";
}

static void no_destructor(void *state) {
        (void)state;
}

/* ---- TTL compaction filter ---------------------------------------------------- */

struct sb_ttl_filter {
        enum sb_state_kind kind;
        uint64_t ttl_ms;
        struct sb_env *env;
};

static pthread_key_t thread_buf_key;
static pthread_once_t thread_buf_once = PTHREAD_ONCE_INIT;
static bool thread_buf_ok;

static void thread_buf_free(void *p) {
        sb_buf_finish(p);
        free(p);
}

static void thread_buf_init(void) {
        thread_buf_ok = pthread_key_create(&thread_buf_key, thread_buf_free) == 0;
}

static struct sb_buf *thread_buf(void) {
        pthread_once(&thread_buf_once, thread_buf_init);
        if (!thread_buf_ok)
                return NULL;
        struct sb_buf *b = pthread_getspecific(thread_buf_key);
        if (!b) {
                b = calloc(1, sizeof(*b));
                if (b && pthread_setspecific(thread_buf_key, b) != 0) {
                        free(b);
                        b = NULL;
                }
        }
        return b;
}

/* Drops expired values and expired list elements (rewriting the list without them). A
 * value that does not decode is kept: the filter never destroys what it cannot read. */
static unsigned char ttl_filter(void *state, int level, const char *key, size_t key_len,
                                const char *value, size_t value_len, char **new_value,
                                size_t *new_value_len, unsigned char *value_changed) {
        (void)level;
        (void)key;
        (void)key_len;
        const struct sb_ttl_filter *f = state;
        int64_t now = sb_env_now_ms(f->env);
        if (f->kind != SB_STATE_LIST) {
                if (value_len < SB_TTL_BYTES)
                        return 0;
                int64_t w = (int64_t)sb_be64_get((const unsigned char *)value);
                return sb_ttl_expired(f->ttl_ms, w, now) ? 1 : 0;
        }
        const unsigned char *p = (const unsigned char *)value, *end = p + value_len;
        size_t live = 0, dropped = 0;
        while (p < end) {
                uint64_t n;
                if (sb_varint_get(&p, end, &n) < 0 || (uint64_t)(end - p) < SB_TTL_BYTES ||
                    n > (uint64_t)(end - p) - SB_TTL_BYTES)
                        return 0;
                int64_t w = (int64_t)sb_be64_get(p);
                p += SB_TTL_BYTES + n;
                if (sb_ttl_expired(f->ttl_ms, w, now))
                        dropped++;
                else
                        live++;
        }
        if (dropped == 0)
                return 0;
        if (live == 0)
                return 1;
        /* The C API copies *new_value and never frees it, so the rewritten list goes to
         * a buffer that belongs to the compaction thread, reused by its next call and
         * freed when the thread exits. */
        struct sb_buf *tl_out = thread_buf();
        if (!tl_out || sb_buf_reserve(tl_out, value_len) < 0)
                return 0;
        char *out = tl_out->data;
        size_t off = 0;
        p = (const unsigned char *)value;
        while (p < end) {
                const unsigned char *start = p;
                uint64_t n;
                (void)sb_varint_get(&p, end, &n); /* checked above */
                int64_t w = (int64_t)sb_be64_get(p);
                p += SB_TTL_BYTES + n;
                if (!sb_ttl_expired(f->ttl_ms, w, now)) {
                        memcpy(out + off, start, (size_t)(p - start));
                        off += (size_t)(p - start);
                }
        }
        *new_value = out;
        *new_value_len = off;
        *value_changed = 1;
        return 0;
}

static const char *ttl_filter_name(void *state) {
        (void)state;
        return "flinc.sb.ttl";
}

static void ttl_filter_destroy(void *state) {
        free(state);
}

rocksdb_options_t *sb_cf_options(struct sb_env *env, enum sb_state_kind kind, uint64_t ttl_ms,
                                 uint64_t write_buffer_bytes, rocksdb_compactionfilter_t **filter) {
        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
        rocksdb_mergeoperator_t *m = rocksdb_mergeoperator_create(
                NULL, no_destructor, list_full_merge, list_partial_merge, merge_delete_value,
                merge_name);
        if (!o || !t || !m)
                goto fail;
        /* The table format sst.c verifies: block-based, format 5, CRC32C checksums,
         * binary-search index, full (not partitioned) bloom filters. */
        rocksdb_block_based_options_set_format_version(t, 5);
        rocksdb_block_based_options_set_checksum(t, 1 /* kCRC32c */);
        rocksdb_block_based_options_set_index_type(t, 0 /* kBinarySearch */);
        rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_block_based_options_set_block_cache(t, env->cache);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
        rocksdb_block_based_options_set_block_size(t, 16 << 10);
        rocksdb_options_set_block_based_table_factory(o, t);
        rocksdb_block_based_options_destroy(t);
        t = NULL;
        rocksdb_options_set_merge_operator(o, m); /* owned by o from here */
        m = NULL;
        rocksdb_options_set_compression(o, rocksdb_lz4_compression);
        rocksdb_options_set_write_buffer_size(o, (size_t)write_buffer_bytes);
        rocksdb_options_set_max_write_buffer_number(o, 2);
        rocksdb_options_set_min_write_buffer_number_to_merge(o, 1);
        /* A whole-key bloom filter on the memtable (10 % of its size): with checkpoints
         * flushing the memtable every interval most reads are of keys not in it, and the
         * filter spares them the skip list search (the keyed count's read per record). */
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.1);
        rocksdb_options_set_memtable_whole_key_filtering(o, 1);
        /* Universal (size-tiered) compaction. A checkpoint flushes one small file per
         * changed state; level compaction would merge those into the whole base level
         * every few checkpoints (random keys overlap all of it), so each checkpoint
         * would re-upload most of the state and compete for the disk with the next
         * synchronous snapshot. Universal compaction merges the small recent runs with
         * each other and rewrites the big oldest run only when the newer ones add up to
         * max_size_amplification_percent (200 %) of it. The file count stays bounded:
         * at most level0_file_num_compaction_trigger (4) runs wait before a merge, and
         * the default 7 levels hold the merged runs. */
        rocksdb_options_set_compaction_style(o, rocksdb_universal_compaction);
        rocksdb_universal_compaction_options_t *uo = rocksdb_universal_compaction_options_create();
        if (!uo)
                goto fail;
        /* SB_COMPRESSED_PERCENT (backend.h): with N >= 0 a memtable flush writes its SST
         * file uncompressed, and so does a compaction of recent runs while the older
         * ones hold N % of the data; compactions into the oldest run and full ones
         * compress. The price: up to 100 - N % of the state, the youngest, is stored and
         * uploaded uncompressed. tools/bench/state passes the same to db_bench. */
        rocksdb_universal_compaction_options_set_compression_size_percent(uo,
                                                                          SB_COMPRESSED_PERCENT);
        rocksdb_options_set_universal_compaction_options(o, uo); /* copied */
        rocksdb_universal_compaction_options_destroy(uo);
        rocksdb_options_set_level0_file_num_compaction_trigger(o, 4);
        rocksdb_options_set_target_file_size_base(o, 64ull << 20);
        if (ttl_ms) {
                struct sb_ttl_filter *f = calloc(1, sizeof(*f));
                if (!f)
                        goto fail;
                f->kind = kind;
                f->ttl_ms = ttl_ms;
                f->env = env;
                *filter = rocksdb_compactionfilter_create(f, ttl_filter_destroy, ttl_filter,
                                                          ttl_filter_name);
                if (!*filter) {
                        free(f);
                        goto fail;
                }
                rocksdb_compactionfilter_set_ignore_snapshots(*filter, 1);
                rocksdb_options_set_compaction_filter(o, *filter);
        }
        return o;
fail:
        if (m)
                rocksdb_mergeoperator_destroy(m);
        if (t)
                rocksdb_block_based_options_destroy(t);
        if (o)
                rocksdb_options_destroy(o);
        return NULL;
}
