/* A keyed subtask's backend: opening its RocksDB with one column family per state, the
 * key and value encodings of backend.h, and the state calls of each kind. */
#include "statebackend/sb_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"

/* ---- errors ------------------------------------------------------------------- */

static int st_fail(struct sb_state *st, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int st_fail(struct sb_state *st, int r, const char *fmt, ...) {
        struct sb_backend *b = st->b;
        int n = snprintf(b->last_error, sizeof(b->last_error), "state '%s': ", st->name);
        if (n < 0 || (size_t)n >= sizeof(b->last_error))
                return r;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->last_error + n, sizeof(b->last_error) - (size_t)n, fmt, ap);
        va_end(ap);
        return r;
}

/* Translates and frees a RocksDB error of a state call. */
static int st_rocks(struct sb_state *st, char *e, const char *what) {
        int r = err_from_rocksdb(e);
        if (r == 0)
                r = -EIO;
        st_fail(st, r, "%s: %s", what, e ? e : "(no RocksDB message)");
        free(e);
        return r;
}

static int st_need(struct sb_state *st, enum sb_state_kind a, enum sb_state_kind b2,
                   const char *call) {
        if (st->kind == a || st->kind == b2)
                return 0;
        return st_fail(st, -EINVAL, "%s does not apply to a %s state", call,
                       sb_state_kind_name(st->kind));
}

const char *sb_backend_last_error(const struct sb_backend *b) {
        return b->last_error;
}

const char *sb_backend_id(const struct sb_backend *b) {
        return b->shared->backend_id;
}

struct kg_range sb_backend_range(const struct sb_backend *b) {
        return b->range;
}

uint32_t sb_backend_max_parallelism(const struct sb_backend *b) {
        return b->max_parallelism;
}

const char *sb_state_name(const struct sb_state *st) {
        return st->name;
}

enum sb_state_kind sb_state_kind(const struct sb_state *st) {
        return st->kind;
}

struct sb_state *sb_backend_state(struct sb_backend *b, const char *name) {
        for (size_t i = 0; i < b->n_states; i++)
                if (b->states[i].declared && strcmp(b->states[i].name, name) == 0)
                        return &b->states[i];
        return NULL;
}

/* ---- config and local directory ----------------------------------------------- */

int sb_config_check(const struct sb_backend_config *cfg, char *err, size_t err_len) {
        uint32_t maxp = cfg->max_parallelism ? cfg->max_parallelism : KG_DEFAULT_MAX_PARALLELISM;
        if (!cfg->local_dir || cfg->local_dir[0] != '/')
                return sb_fail(err, err_len, -EINVAL, "local_dir must be an absolute path");
        if (strlen(cfg->local_dir) > SB_PATH_MAX - 64)
                return sb_fail(err, err_len, -ENAMETOOLONG, "local_dir is too long");
        if (maxp > KG_UPPER_BOUND_MAX_PARALLELISM)
                return sb_fail(err, err_len, -EINVAL, "max parallelism %u is over %u", maxp,
                               KG_UPPER_BOUND_MAX_PARALLELISM);
        if (cfg->range.start >= cfg->range.end || cfg->range.end > maxp)
                return sb_fail(err, err_len, -EINVAL,
                               "key-group range [%u,%u) is empty or beyond max parallelism %u",
                               cfg->range.start, cfg->range.end, maxp);
        if (cfg->n_states > SB_MAX_STATES || (cfg->n_states && !cfg->states))
                return sb_fail(err, err_len, -EINVAL, "%zu states; at most %d", cfg->n_states,
                               SB_MAX_STATES);
        for (size_t i = 0; i < cfg->n_states; i++) {
                const struct sb_state_desc *d = &cfg->states[i];
                if (!sb_name_is_state(d->name))
                        return sb_fail(err, err_len, -EINVAL,
                                       "state name '%s' is not 1..%d of [A-Za-z0-9._-] (and not "
                                       "'default')", d->name ? d->name : "(null)",
                                       SB_STATE_NAME_MAX);
                if (strcmp(sb_state_kind_name(d->kind), "?") == 0)
                        return sb_fail(err, err_len, -EINVAL, "state '%s' has an unknown kind %d",
                                       d->name, (int)d->kind);
                bool reduces = d->kind == SB_STATE_REDUCING || d->kind == SB_STATE_AGGREGATING;
                if (reduces != (d->reduce != NULL))
                        return sb_fail(err, err_len, -EINVAL, "state '%s': a %s state %s a reduce "
                                       "function", d->name, sb_state_kind_name(d->kind),
                                       reduces ? "needs" : "takes no");
                if (d->ttl_ms > (uint64_t)INT64_MAX / 2)
                        return sb_fail(err, err_len, -EINVAL, "state '%s': ttl_ms is too large",
                                       d->name);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(cfg->states[j].name, d->name) == 0)
                                return sb_fail(err, err_len, -EINVAL,
                                               "state '%s' is declared twice", d->name);
        }
        return 0;
}

int sb_local_dir_prepare(const char *local_dir, char *err, size_t err_len) {
        int r = fs_mkdir_p(local_dir, 0755);
        if (r < 0)
                return sb_fail(err, err_len, r, "creating %s: %s", local_dir, err_str(r));
        DIR *d = opendir(local_dir);
        if (!d)
                return sb_fail(err, err_len, -errno, "reading %s: %s", local_dir,
                               err_str(-errno));
        struct dirent *e;
        char path[SB_PATH_MAX];
        r = 0;
        while (r == 0 && (e = readdir(d))) {
                if (strcmp(e->d_name, "db") != 0 && strncmp(e->d_name, "snap-", 5) != 0 &&
                    strncmp(e->d_name, "restore-", 8) != 0)
                        continue;
                r = sb_path(path, sizeof(path), "%s/%s", local_dir, e->d_name);
                if (r == 0)
                        r = fs_rm_rf(path);
                if (r < 0)
                        sb_fail(err, err_len, r, "removing %s/%s: %s", local_dir, e->d_name,
                                err_str(r));
        }
        closedir(d);
        return r;
}

/* ---- open and destroy ------------------------------------------------------------ */

static int db_options(struct sb_env *env, rocksdb_options_t **ret, char *err, size_t err_len) {
        rocksdb_options_t *o = rocksdb_options_create(), *o2 = rocksdb_options_create();
        char *e = NULL;
        if (!o || !o2) {
                if (o)
                        rocksdb_options_destroy(o);
                if (o2)
                        rocksdb_options_destroy(o2);
                return -ENOMEM;
        }
        rocksdb_options_set_create_if_missing(o, 1);
        rocksdb_options_set_create_missing_column_families(o, 1);
        rocksdb_options_set_env(o, env->rocks_env);
        rocksdb_options_set_max_background_jobs(o, env->background_threads + 1);
        rocksdb_options_set_max_open_files(o, -1);
        rocksdb_options_set_keep_log_file_num(o, 2);
        rocksdb_options_set_max_log_file_size(o, 1 << 20);
        rocksdb_options_set_info_log_level(o, 2 /* WARN */);
        rocksdb_options_set_stats_dump_period_sec(o, 0);
        /* Write back big compaction outputs as they grow, so that the fsyncs of a
         * synchronous snapshot do not queue behind hundreds of dirty megabytes. */
        rocksdb_options_set_bytes_per_sync(o, 1 << 20);
        /* A checkpoint copies the MANIFEST every time: roll it while it is small. */
        rocksdb_options_set_max_manifest_file_size(o, 1 << 20);
        /* The local database is thrown away on close: do not flush it first. The C API
         * has no setter for this one. */
        rocksdb_get_options_from_string(o, "avoid_flush_during_shutdown=true", o2, &e);
        rocksdb_options_destroy(o);
        if (e) {
                rocksdb_options_destroy(o2);
                return sb_fail_rocks(err, err_len, e, "setting RocksDB options");
        }
        *ret = o2;
        return 0;
}

static const struct sb_handle_state *find_restored(const struct sb_handle_state *r, size_t n,
                                                   const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(r[i].name, name) == 0)
                        return &r[i];
        return NULL;
}

int sb_backend_open(struct sb_env *env, const struct sb_backend_config *cfg,
                    const struct sb_handle_state *restored, size_t n_restored,
                    struct sb_backend **ret_backend, char *err, size_t err_len) {
        rocksdb_options_t *dbo = NULL, **cf_opts = NULL;
        const char **cf_names = NULL;
        rocksdb_column_family_handle_t **handles = NULL;
        char **existing = NULL;
        size_t n_existing = 0, n_cf = 0;
        struct flinc_id id;
        char *e = NULL;
        int r = sb_config_check(cfg, err, err_len);
        if (r < 0)
                return r;
        struct sb_backend *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->env = env;
        b->max_parallelism = cfg->max_parallelism ? cfg->max_parallelism
                                                  : KG_DEFAULT_MAX_PARALLELISM;
        b->range = cfg->range;
        snprintf(b->local_dir, sizeof(b->local_dir), "%s", cfg->local_dir);
        r = sb_path(b->db_dir, sizeof(b->db_dir), "%s/db", cfg->local_dir);
        if (r < 0)
                goto fail;

        struct sb_shared *s = calloc(1, sizeof(*s));
        if (!s) {
                r = -ENOMEM;
                goto fail;
        }
        pthread_mutex_init(&s->lock, NULL);
        atomic_init(&s->refs, 1);
        b->shared = s;
        r = id_generate(&id);
        if (r < 0) {
                sb_fail(err, err_len, r, "generating a backend id: %s", err_str(r));
                goto fail;
        }
        id_format(&id, s->backend_id);
        s->max_parallelism = b->max_parallelism;
        s->range = b->range;
        snprintf(s->local_dir, sizeof(s->local_dir), "%s", cfg->local_dir);

        /* States: the declared ones, then restored ones no longer declared. */
        size_t n = cfg->n_states;
        for (size_t i = 0; i < n_restored; i++) {
                bool declared = false;
                for (size_t j = 0; j < cfg->n_states; j++)
                        declared |= strcmp(cfg->states[j].name, restored[i].name) == 0;
                n += !declared;
        }
        b->states = calloc(n ? n : 1, sizeof(*b->states));
        s->states = calloc(n ? n : 1, sizeof(*s->states));
        if (!b->states || !s->states) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < cfg->n_states; i++) {
                const struct sb_state_desc *d = &cfg->states[i];
                struct sb_state *st = &b->states[b->n_states++];
                st->b = b;
                snprintf(st->name, sizeof(st->name), "%s", d->name);
                st->kind = d->kind;
                st->ttl_ms = d->ttl_ms;
                st->reduce = d->reduce;
                st->reduce_arg = d->reduce_arg;
                st->declared = true;
                const struct sb_handle_state *old = find_restored(restored, n_restored, d->name);
                if (old && old->kind != d->kind) {
                        r = sb_fail(err, err_len, -EINVAL, "state '%s' was a %s state in the "
                                    "checkpoint and is declared a %s state now", d->name,
                                    sb_state_kind_name(old->kind), sb_state_kind_name(d->kind));
                        goto fail;
                }
                if (old && (old->ttl_ms == 0) != (d->ttl_ms == 0)) {
                        r = sb_fail(err, err_len, -EINVAL, "state '%s': TTL was %s in the "
                                    "checkpoint and is %s now; the stored format differs",
                                    d->name, old->ttl_ms ? "on" : "off", d->ttl_ms ? "on" : "off");
                        goto fail;
                }
        }
        for (size_t i = 0; i < n_restored; i++) {
                if (sb_backend_state(b, restored[i].name))
                        continue;
                struct sb_state *st = &b->states[b->n_states++];
                st->b = b;
                snprintf(st->name, sizeof(st->name), "%s", restored[i].name);
                st->kind = restored[i].kind;
                st->ttl_ms = restored[i].ttl_ms;
        }
        s->n_states = b->n_states;
        for (size_t i = 0; i < b->n_states; i++) {
                snprintf(s->states[i].name, sizeof(s->states[i].name), "%s", b->states[i].name);
                s->states[i].kind = b->states[i].kind;
                s->states[i].ttl_ms = b->states[i].ttl_ms;
        }

        b->wopts = rocksdb_writeoptions_create();
        b->ropts = rocksdb_readoptions_create();
        if (!b->wopts || !b->ropts) {
                r = -ENOMEM;
                goto fail;
        }
        rocksdb_writeoptions_disable_WAL(b->wopts, 1);

        uint64_t wb = sb_env_reserve(env, (uint32_t)b->n_states);
        b->wb_bytes = wb;
        b->n_cf_reserved = (uint32_t)b->n_states;
        r = db_options(env, &dbo, err, err_len);
        if (r < 0)
                goto fail;

        if (restored) {
                existing = rocksdb_list_column_families(dbo, b->db_dir, &n_existing, &e);
                if (e) {
                        r = sb_fail_rocks(err, err_len, e, "reading the restored database in %s",
                                          b->db_dir);
                        goto fail;
                }
                for (size_t i = 0; i < n_existing; i++) {
                        if (strcmp(existing[i], "default") != 0 &&
                            !find_restored(restored, n_restored, existing[i])) {
                                r = sb_fail(err, err_len, -EBADMSG, "the restored database holds "
                                            "column family '%s', which no handle lists",
                                            existing[i]);
                                goto fail;
                        }
                }
        }

        n_cf = b->n_states + 1;
        cf_opts = calloc(n_cf, sizeof(*cf_opts));
        cf_names = calloc(n_cf, sizeof(*cf_names));
        handles = calloc(n_cf, sizeof(*handles));
        if (!cf_opts || !cf_names || !handles) {
                r = -ENOMEM;
                goto fail;
        }
        cf_names[0] = "default";
        cf_opts[0] = sb_cf_options(env, SB_STATE_VALUE, 0, 64 << 10, NULL);
        if (!cf_opts[0]) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < b->n_states; i++) {
                struct sb_state *st = &b->states[i];
                cf_names[i + 1] = st->name;
                cf_opts[i + 1] = sb_cf_options(env, st->kind, st->ttl_ms, wb, &st->filter);
                if (!cf_opts[i + 1]) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        b->db = rocksdb_open_column_families(dbo, b->db_dir, (int)n_cf, cf_names,
                                             (const rocksdb_options_t *const *)cf_opts, handles,
                                             &e);
        if (e) {
                b->db = NULL;
                r = sb_fail_rocks(err, err_len, e, "opening RocksDB in %s", b->db_dir);
                goto fail;
        }
        b->default_cf = handles[0];
        for (size_t i = 0; i < b->n_states; i++)
                b->states[i].cf = handles[i + 1];
        sb_env_link(env, b);
        r = 0;
        *ret_backend = b;
        b = NULL;
fail:
        if (existing)
                rocksdb_list_column_families_destroy(existing, n_existing);
        for (size_t i = 0; cf_opts && i < n_cf; i++)
                if (cf_opts[i])
                        rocksdb_options_destroy(cf_opts[i]);
        free(cf_opts);
        free(cf_names);
        free(handles);
        if (dbo)
                rocksdb_options_destroy(dbo);
        sb_backend_destroy(b);
        return r;
}

int sb_backend_create(struct sb_env *env, const struct sb_backend_config *cfg,
                      struct sb_backend **ret_backend, char *err, size_t err_len) {
        int r = sb_config_check(cfg, err, err_len);
        if (r < 0)
                return r;
        r = sb_local_dir_prepare(cfg->local_dir, err, err_len);
        if (r < 0)
                return r;
        return sb_backend_open(env, cfg, NULL, 0, ret_backend, err, err_len);
}

void sb_backend_destroy(struct sb_backend *b) {
        if (!b)
                return;
        sb_env_release(b->env, b, b->n_cf_reserved);
        if (b->db) {
                if (b->default_cf)
                        rocksdb_column_family_handle_destroy(b->default_cf);
                for (size_t i = 0; i < b->n_states; i++)
                        if (b->states[i].cf)
                                rocksdb_column_family_handle_destroy(b->states[i].cf);
                rocksdb_close(b->db);
        }
        for (size_t i = 0; b->states && i < b->n_states; i++)
                if (b->states[i].filter)
                        rocksdb_compactionfilter_destroy(b->states[i].filter);
        if (b->db_dir[0])
                (void)fs_rm_rf(b->db_dir); /* nothing to report to: the state is given up */
        if (b->wopts)
                rocksdb_writeoptions_destroy(b->wopts);
        if (b->ropts)
                rocksdb_readoptions_destroy(b->ropts);
        sb_buf_finish(&b->key);
        sb_buf_finish(&b->val);
        sb_buf_finish(&b->upper);
        sb_buf_finish(&b->batch);
        sb_buf_finish(&b->order);
        free(b->states);
        sb_shared_unref(b->shared);
        free(b);
}

int sb_backend_compact(struct sb_backend *b) {
        for (size_t i = 0; i < b->n_states; i++)
                rocksdb_compact_range_cf(b->db, b->states[i].cf, NULL, 0, NULL, 0);
        return 0;
}

int sb_backend_get_stats(struct sb_backend *b, struct sb_backend_stats *ret_stats) {
        struct sb_backend_stats s = {0};
        const rocksdb_livefiles_t *lf = rocksdb_livefiles(b->db);
        if (!lf)
                return -ENOMEM;
        int n = rocksdb_livefiles_count(lf);
        for (int i = 0; i < n; i++) {
                s.sst_files++;
                s.sst_bytes += rocksdb_livefiles_size(lf, i);
                s.l0_files += rocksdb_livefiles_level(lf, i) == 0;
        }
        rocksdb_livefiles_destroy(lf);
        for (size_t i = 0; i < b->n_states; i++) {
                uint64_t v = 0;
                if (rocksdb_property_int_cf(b->db, b->states[i].cf,
                                            "rocksdb.cur-size-all-mem-tables", &v) == 0)
                        s.memtable_bytes += v;
        }
        *ret_stats = s;
        return 0;
}

/* ---- keys ------------------------------------------------------------------------ */

/* RocksDB counts into a thread-local perf context on every operation unless told not
 * to, per thread; nothing reads those counters here. */
static _Thread_local bool perf_off;

static inline void thread_perf_off(void) {
        if (!perf_off) {
                rocksdb_set_perf_level(rocksdb_disable);
                perf_off = true;
        }
}

/* Encodes key group | varint | key | varint | namespace [| ukey] into b->key. */
static int encode_key(struct sb_state *st, const struct sb_key *k, const void *ukey,
                      size_t ukey_len, uint32_t *ret_kg) {
        struct sb_backend *b = st->b;
        thread_perf_off();
        if (k->key_len > SB_MAX_KEY_BYTES || k->ns_len > SB_MAX_KEY_BYTES ||
            ukey_len > SB_MAX_KEY_BYTES)
                return st_fail(st, -EINVAL, "a key, namespace or map key is over %u bytes",
                               SB_MAX_KEY_BYTES);
        uint32_t kg = kg_of_key(k->key_len ? k->key : "", k->key_len, b->max_parallelism);
        if (kg < b->range.start || kg >= b->range.end)
                return st_fail(st, -ERANGE, "key group %u of the key is outside this backend's "
                               "range [%u,%u)", kg, b->range.start, b->range.end);
        size_t need = SB_KG_PREFIX_BYTES + 20 + k->key_len + k->ns_len + ukey_len;
        if (sb_buf_reserve(&b->key, need) < 0)
                return st_fail(st, -ENOMEM, "out of memory");
        unsigned char *p = b->key.data;
        sb_be16_put(p, kg);
        size_t off = SB_KG_PREFIX_BYTES;
        off += sb_varint_put(p + off, k->key_len);
        if (k->key_len)
                memcpy(p + off, k->key, k->key_len);
        off += k->key_len;
        off += sb_varint_put(p + off, k->ns_len);
        if (k->ns_len)
                memcpy(p + off, k->ns, k->ns_len);
        off += k->ns_len;
        if (ukey_len)
                memcpy(p + off, ukey, ukey_len);
        off += ukey_len;
        b->key.len = off;
        if (ret_kg)
                *ret_kg = kg;
        return 0;
}

/* The smallest key greater than every key starting with prefix, into out; 0 or
 * -ENOMEM. A prefix of 0xff bytes only has no bound (out->len = 0). */
static int prefix_successor(const void *prefix, size_t len, struct sb_buf *out) {
        if (sb_buf_set(out, prefix, len) < 0)
                return -ENOMEM;
        unsigned char *p = out->data;
        while (out->len > 0) {
                if (p[out->len - 1] != 0xff) {
                        p[out->len - 1]++;
                        return 0;
                }
                out->len--;
        }
        return 0;
}

/* ---- values -------------------------------------------------------------------- */

static int put_raw(struct sb_state *st, const void *value, size_t len) {
        struct sb_backend *b = st->b;
        char *e = NULL;
        rocksdb_put_cf(b->db, b->wopts, st->cf, b->key.data, b->key.len, value, len, &e);
        return e ? st_rocks(st, e, "put") : 0;
}

static int delete_raw(struct sb_state *st, const void *key, size_t len) {
        struct sb_backend *b = st->b;
        char *e = NULL;
        rocksdb_delete_cf(b->db, b->wopts, st->cf, key, len, &e);
        return e ? st_rocks(st, e, "delete") : 0;
}

/* Puts value with the TTL header when the state has one (b->key holds the key). */
static int put_value(struct sb_state *st, const void *value, size_t len) {
        struct sb_backend *b = st->b;
        if (len > SB_MAX_VALUE_BYTES)
                return st_fail(st, -EINVAL, "a value of %zu bytes is over %u", len,
                               SB_MAX_VALUE_BYTES);
        if (!st->ttl_ms)
                return put_raw(st, len ? value : "", len);
        if (sb_buf_reserve(&b->val, SB_TTL_BYTES + len) < 0)
                return st_fail(st, -ENOMEM, "out of memory");
        sb_be64_put(b->val.data, (uint64_t)sb_env_now_ms(b->env));
        if (len)
                memcpy((char *)b->val.data + SB_TTL_BYTES, value, len);
        return put_raw(st, b->val.data, SB_TTL_BYTES + len);
}

/* Reads the value under b->key. Returns 1 with *ret_pin (destroy it) and the user part in
 * *ret_v / *ret_len, or 0 when absent or expired (an expired value is deleted). */
static int get_value(struct sb_state *st, rocksdb_pinnableslice_t **ret_pin, const char **ret_v,
                     size_t *ret_len) {
        struct sb_backend *b = st->b;
        char *e = NULL;
        rocksdb_pinnableslice_t *pin = rocksdb_get_pinned_cf(b->db, b->ropts, st->cf, b->key.data,
                                                             b->key.len, &e);
        if (e)
                return st_rocks(st, e, "get");
        if (!pin)
                return 0;
        size_t len;
        const char *v = rocksdb_pinnableslice_value(pin, &len);
        if (st->ttl_ms) {
                if (len < SB_TTL_BYTES) {
                        rocksdb_pinnableslice_destroy(pin);
                        return st_fail(st, -EBADMSG, "a stored value of %zu bytes has no TTL "
                                       "header", len);
                }
                int64_t w = (int64_t)sb_be64_get((const unsigned char *)v);
                if (sb_ttl_expired(st->ttl_ms, w, sb_env_now_ms(b->env))) {
                        rocksdb_pinnableslice_destroy(pin);
                        int r = delete_raw(st, b->key.data, b->key.len);
                        return r < 0 ? r : 0;
                }
                v += SB_TTL_BYTES;
                len -= SB_TTL_BYTES;
        }
        *ret_pin = pin;
        *ret_v = v;
        *ret_len = len;
        return 1;
}

static int get_into(struct sb_state *st, struct sb_buf *out) {
        rocksdb_pinnableslice_t *pin = NULL;
        const char *v;
        size_t len;
        int r = get_value(st, &pin, &v, &len);
        if (r <= 0)
                return r;
        if (out && sb_buf_set(out, v, len) < 0)
                r = st_fail(st, -ENOMEM, "out of memory");
        rocksdb_pinnableslice_destroy(pin);
        return r;
}

int sb_value_get(struct sb_state *st, const struct sb_key *k, struct sb_buf *out) {
        int r = st_need(st, SB_STATE_VALUE, SB_STATE_VALUE, "value get");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        return r < 0 ? r : get_into(st, out);
}

int sb_value_put(struct sb_state *st, const struct sb_key *k, const void *value, size_t len) {
        int r = st_need(st, SB_STATE_VALUE, SB_STATE_VALUE, "value put");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        return r < 0 ? r : put_value(st, value, len);
}

/* An entry of sb_value_put_batch in b->batch: offsets of the encoded key and value. */
struct batch_ent {
        size_t key_off, key_len, val_off, val_len, index;
};

static int batch_cmp(const void *a, const void *b, void *arg) {
        const struct batch_ent *x = a, *y = b;
        const unsigned char *batch_base = arg;
        size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
        int c = memcmp(batch_base + x->key_off, batch_base + y->key_off, n);
        if (c)
                return c;
        if (x->key_len != y->key_len)
                return x->key_len < y->key_len ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

int sb_value_put_batch(struct sb_state *st, const struct sb_kv *kvs, size_t n) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_VALUE, SB_STATE_VALUE, "value put");
        if (r < 0 || n == 0)
                return r;
        if (sb_buf_reserve(&b->order, n * sizeof(struct batch_ent)) < 0)
                return st_fail(st, -ENOMEM, "out of memory");
        b->batch.len = 0;
        int64_t now = st->ttl_ms ? sb_env_now_ms(b->env) : 0;
        for (size_t i = 0; i < n; i++) {
                if (kvs[i].value_len > SB_MAX_VALUE_BYTES)
                        return st_fail(st, -EINVAL, "a value of %zu bytes is over %u",
                                       kvs[i].value_len, SB_MAX_VALUE_BYTES);
                if ((r = encode_key(st, &kvs[i].key, NULL, 0, NULL)) < 0)
                        return r;
                size_t hdr = st->ttl_ms ? SB_TTL_BYTES : 0;
                size_t off = b->batch.len;
                if (sb_buf_reserve(&b->batch, off + b->key.len + hdr + kvs[i].value_len) < 0)
                        return st_fail(st, -ENOMEM, "out of memory");
                unsigned char *p = b->batch.data;
                memcpy(p + off, b->key.data, b->key.len);
                if (hdr)
                        sb_be64_put(p + off + b->key.len, (uint64_t)now);
                if (kvs[i].value_len)
                        memcpy(p + off + b->key.len + hdr, kvs[i].value, kvs[i].value_len);
                ((struct batch_ent *)b->order.data)[i] = (struct batch_ent){
                        .key_off = off, .key_len = b->key.len, .val_off = off + b->key.len,
                        .val_len = hdr + kvs[i].value_len, .index = i};
                b->batch.len = off + b->key.len + hdr + kvs[i].value_len;
        }
        struct batch_ent *ents = b->order.data;
        const unsigned char *base = b->batch.data;
        qsort_r(ents, n, sizeof(*ents), batch_cmp, (void *)base);
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        if (!wb)
                return st_fail(st, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                rocksdb_writebatch_put_cf(wb, st->cf, (const char *)base + ents[i].key_off,
                                          ents[i].key_len, (const char *)base + ents[i].val_off,
                                          ents[i].val_len);
        char *e = NULL;
        rocksdb_write(b->db, b->wopts, wb, &e);
        rocksdb_writebatch_destroy(wb);
        return e ? st_rocks(st, e, "write batch") : 0;
}

int sb_value_multi_get(struct sb_state *st, const struct sb_key *keys, size_t n,
                       sb_multi_fn fn, void *arg) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_VALUE, SB_STATE_VALUE, "value get");
        if (r < 0 || n == 0)
                return r;
        if (st->ttl_ms) {
                /* expiry is checked (and expired values deleted) one key at a time */
                for (size_t i = 0; i < n && r == 0; i++) {
                        rocksdb_pinnableslice_t *pin = NULL;
                        const char *v = NULL;
                        size_t len = 0;
                        if ((r = encode_key(st, &keys[i], NULL, 0, NULL)) < 0)
                                return r;
                        int got = get_value(st, &pin, &v, &len);
                        if (got < 0)
                                return got;
                        r = fn(arg, i, got ? v : NULL, got ? len : 0);
                        if (pin)
                                rocksdb_pinnableslice_destroy(pin);
                }
                return r;
        }
        b->batch.len = 0;
        size_t *offs = malloc(n * sizeof(*offs));
        size_t *lens = malloc(n * sizeof(*lens));
        const char **ptrs = malloc(n * sizeof(*ptrs));
        rocksdb_pinnableslice_t **vals = calloc(n, sizeof(*vals));
        char **errs = calloc(n, sizeof(*errs));
        if (!offs || !lens || !ptrs || !vals || !errs) {
                r = st_fail(st, -ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                if ((r = encode_key(st, &keys[i], NULL, 0, NULL)) < 0)
                        goto out;
                size_t off = b->batch.len;
                if (sb_buf_reserve(&b->batch, off + b->key.len) < 0) {
                        r = st_fail(st, -ENOMEM, "out of memory");
                        goto out;
                }
                memcpy((char *)b->batch.data + off, b->key.data, b->key.len);
                offs[i] = off;
                lens[i] = b->key.len;
                b->batch.len = off + b->key.len;
        }
        for (size_t i = 0; i < n; i++)
                ptrs[i] = (const char *)b->batch.data + offs[i];
        rocksdb_batched_multi_get_cf(b->db, b->ropts, st->cf, n, ptrs, lens, vals, errs,
                                     false);
        for (size_t i = 0; i < n; i++)
                if (errs[i]) {
                        r = st_rocks(st, errs[i], "multi get");
                        errs[i] = NULL; /* st_rocks frees it */
                        goto out;
                }
        for (size_t i = 0; i < n && r == 0; i++) {
                size_t len = 0;
                const char *v = vals[i] ? rocksdb_pinnableslice_value(vals[i], &len) : NULL;
                r = fn(arg, i, v, len);
        }
out:
        for (size_t i = 0; vals && i < n; i++)
                if (vals[i])
                        rocksdb_pinnableslice_destroy(vals[i]);
        for (size_t i = 0; errs && i < n; i++)
                free(errs[i]);
        free(offs);
        free(lens);
        free(ptrs);
        free(vals);
        free(errs);
        return r;
}

/* ---- lists ------------------------------------------------------------------------- */

/* Appends one encoded element to b->val (from offset off). */
static int list_encode(struct sb_state *st, size_t off, const void *elem, size_t len,
                       int64_t now) {
        struct sb_backend *b = st->b;
        if (len > SB_MAX_VALUE_BYTES)
                return st_fail(st, -EINVAL, "a list element of %zu bytes is over %u", len,
                               SB_MAX_VALUE_BYTES);
        if (sb_buf_reserve(&b->val, off + 10 + SB_TTL_BYTES + len) < 0)
                return st_fail(st, -ENOMEM, "out of memory");
        unsigned char *p = b->val.data;
        off += sb_varint_put(p + off, len);
        if (st->ttl_ms) {
                sb_be64_put(p + off, (uint64_t)now);
                off += SB_TTL_BYTES;
        }
        if (len)
                memcpy(p + off, elem, len);
        b->val.len = off + len;
        return 0;
}

int sb_list_add(struct sb_state *st, const struct sb_key *k, const void *elem, size_t len) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_LIST, SB_STATE_LIST, "list add");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        if (r == 0)
                r = list_encode(st, 0, elem, len, st->ttl_ms ? sb_env_now_ms(b->env) : 0);
        if (r < 0)
                return r;
        char *e = NULL;
        rocksdb_merge_cf(b->db, b->wopts, st->cf, b->key.data, b->key.len, b->val.data,
                         b->val.len, &e);
        return e ? st_rocks(st, e, "list add") : 0;
}

int sb_list_update(struct sb_state *st, const struct sb_key *k, const void *const *elems,
                   const size_t *lens, size_t n) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_LIST, SB_STATE_LIST, "list update");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        if (r < 0)
                return r;
        if (n == 0)
                return delete_raw(st, b->key.data, b->key.len);
        int64_t now = st->ttl_ms ? sb_env_now_ms(b->env) : 0;
        b->val.len = 0;
        for (size_t i = 0; i < n; i++) {
                r = list_encode(st, b->val.len, elems[i], lens[i], now);
                if (r < 0)
                        return r;
        }
        if (b->val.len > SB_MAX_VALUE_BYTES)
                return st_fail(st, -EINVAL, "the list is over %u bytes", SB_MAX_VALUE_BYTES);
        return put_raw(st, b->val.data, b->val.len);
}

/* Walks an encoded list: calls fn (if any) for each live element; counts the expired. */
static int list_walk(struct sb_state *st, const unsigned char *p, size_t len, int64_t now,
                     sb_elem_fn fn, void *arg, size_t *ret_expired) {
        const unsigned char *end = p + len;
        size_t expired = 0;
        while (p < end) {
                uint64_t n;
                size_t hdr = st->ttl_ms ? SB_TTL_BYTES : 0;
                if (sb_varint_get(&p, end, &n) < 0 || (uint64_t)(end - p) < hdr ||
                    n > (uint64_t)(end - p) - hdr)
                        return st_fail(st, -EBADMSG, "a stored list does not decode");
                bool dead = hdr && sb_ttl_expired(st->ttl_ms, (int64_t)sb_be64_get(p), now);
                p += hdr;
                if (dead) {
                        expired++;
                } else if (fn) {
                        int r = fn(arg, p, (size_t)n);
                        if (r != 0)
                                return r;
                }
                p += n;
        }
        if (ret_expired)
                *ret_expired = expired;
        return 0;
}

/* Keeps the live elements of an encoded list, into a new malloc'ed buffer. */
static int list_filter(struct sb_state *st, const unsigned char *p, size_t len, int64_t now,
                       unsigned char **ret, size_t *ret_len) {
        unsigned char *out = malloc(len ? len : 1);
        if (!out)
                return st_fail(st, -ENOMEM, "out of memory");
        const unsigned char *end = p + len;
        size_t off = 0;
        while (p < end) {
                const unsigned char *start = p;
                uint64_t n;
                (void)sb_varint_get(&p, end, &n); /* list_walk checked it */
                bool dead = sb_ttl_expired(st->ttl_ms, (int64_t)sb_be64_get(p), now);
                p += SB_TTL_BYTES + n;
                if (!dead) {
                        memcpy(out + off, start, (size_t)(p - start));
                        off += (size_t)(p - start);
                }
        }
        *ret = out;
        *ret_len = off;
        return 0;
}

int sb_list_get(struct sb_state *st, const struct sb_key *k, sb_elem_fn fn, void *arg) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_LIST, SB_STATE_LIST, "list get");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        if (r < 0)
                return r;
        char *e = NULL;
        rocksdb_pinnableslice_t *pin = rocksdb_get_pinned_cf(b->db, b->ropts, st->cf, b->key.data,
                                                             b->key.len, &e);
        if (e)
                return st_rocks(st, e, "list get");
        if (!pin)
                return 0;
        size_t len;
        const unsigned char *v = (const unsigned char *)rocksdb_pinnableslice_value(pin, &len);
        int64_t now = st->ttl_ms ? sb_env_now_ms(b->env) : 0;
        size_t expired = 0;
        unsigned char *live = NULL;
        size_t live_len = 0;
        r = list_walk(st, v, len, now, NULL, NULL, &expired);
        if (r == 0 && expired) {
                /* Clean up on read, before fn runs (fn may touch this state). */
                r = list_filter(st, v, len, now, &live, &live_len);
                if (r == 0)
                        r = live_len ? put_raw(st, live, live_len)
                                     : delete_raw(st, b->key.data, b->key.len);
                rocksdb_pinnableslice_destroy(pin);
                pin = NULL;
                if (r == 0)
                        r = list_walk(st, live, live_len, now, fn, arg, NULL);
        } else if (r == 0) {
                r = list_walk(st, v, len, now, fn, arg, NULL);
        }
        free(live);
        if (pin)
                rocksdb_pinnableslice_destroy(pin);
        return r;
}

/* ---- maps ---------------------------------------------------------------------------- */

int sb_map_put(struct sb_state *st, const struct sb_key *k, const void *ukey, size_t ukey_len,
               const void *value, size_t value_len) {
        int r = st_need(st, SB_STATE_MAP, SB_STATE_MAP, "map put");
        if (r == 0)
                r = encode_key(st, k, ukey, ukey_len, NULL);
        return r < 0 ? r : put_value(st, value, value_len);
}

int sb_map_get(struct sb_state *st, const struct sb_key *k, const void *ukey, size_t ukey_len,
               struct sb_buf *out) {
        int r = st_need(st, SB_STATE_MAP, SB_STATE_MAP, "map get");
        if (r == 0)
                r = encode_key(st, k, ukey, ukey_len, NULL);
        return r < 0 ? r : get_into(st, out);
}

int sb_map_remove(struct sb_state *st, const struct sb_key *k, const void *ukey,
                  size_t ukey_len) {
        int r = st_need(st, SB_STATE_MAP, SB_STATE_MAP, "map remove");
        if (r == 0)
                r = encode_key(st, k, ukey, ukey_len, NULL);
        return r < 0 ? r : delete_raw(st, st->b->key.data, st->b->key.len);
}

/* Iterates the keys of a state in [lower, upper) (upper_len 0: no bound); calls visit with
 * each raw key and value. Expired values (not lists) are deleted, not visited. */
typedef int (*raw_visit_fn)(struct sb_state *st, void *arg, const char *key, size_t key_len,
                            const char *value, size_t value_len);

static int iterate_raw(struct sb_state *st, const void *lower, size_t lower_len,
                       const void *upper, size_t upper_len, raw_visit_fn visit, void *arg) {
        struct sb_backend *b = st->b;
        /* Own copies of the bounds: visit may call into the backend, which reuses b->key. */
        char *lo = malloc(lower_len + upper_len + 1);
        if (!lo)
                return st_fail(st, -ENOMEM, "out of memory");
        char *hi = lo + lower_len;
        memcpy(lo, lower, lower_len);
        if (upper_len)
                memcpy(hi, upper, upper_len);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        if (!ro) {
                free(lo);
                return st_fail(st, -ENOMEM, "out of memory");
        }
        rocksdb_readoptions_set_iterate_lower_bound(ro, lo, lower_len);
        if (upper_len)
                rocksdb_readoptions_set_iterate_upper_bound(ro, hi, upper_len);
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(b->db, ro, st->cf);
        int64_t now = st->ttl_ms ? sb_env_now_ms(b->env) : 0;
        int r = 0;
        for (rocksdb_iter_seek(it, lo, lower_len); r == 0 && rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
                size_t klen, vlen;
                const char *key = rocksdb_iter_key(it, &klen);
                const char *v = rocksdb_iter_value(it, &vlen);
                if (st->ttl_ms && st->kind != SB_STATE_LIST) {
                        if (vlen < SB_TTL_BYTES) {
                                r = st_fail(st, -EBADMSG, "a stored value has no TTL header");
                                break;
                        }
                        if (sb_ttl_expired(st->ttl_ms, (int64_t)sb_be64_get((const unsigned char *)v),
                                           now)) {
                                r = delete_raw(st, key, klen);
                                continue;
                        }
                }
                r = visit(st, arg, key, klen, v, vlen);
        }
        if (r == 0) {
                char *e = NULL;
                rocksdb_iter_get_error(it, &e);
                if (e)
                        r = st_rocks(st, e, "iterating");
        }
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
        free(lo);
        return r;
}

struct map_iter_arg {
        size_t prefix_len;
        sb_map_fn fn;
        void *arg;
};

static int map_visit(struct sb_state *st, void *arg, const char *key, size_t key_len,
                     const char *value, size_t value_len) {
        const struct map_iter_arg *a = arg;
        size_t hdr = st->ttl_ms ? SB_TTL_BYTES : 0;
        return a->fn(a->arg, key + a->prefix_len, key_len - a->prefix_len, value + hdr,
                     value_len - hdr);
}

/* Runs visit over the entries under the (key, namespace) prefix of k. */
static int prefix_iterate(struct sb_state *st, const struct sb_key *k, raw_visit_fn visit,
                          struct map_iter_arg *a) {
        struct sb_backend *b = st->b;
        int r = encode_key(st, k, NULL, 0, NULL);
        if (r < 0)
                return r;
        a->prefix_len = b->key.len;
        if (prefix_successor(b->key.data, b->key.len, &b->upper) < 0)
                return st_fail(st, -ENOMEM, "out of memory");
        return iterate_raw(st, b->key.data, b->key.len, b->upper.data, b->upper.len, visit, a);
}

int sb_map_iterate(struct sb_state *st, const struct sb_key *k, sb_map_fn fn, void *arg) {
        int r = st_need(st, SB_STATE_MAP, SB_STATE_MAP, "map iterate");
        if (r < 0)
                return r;
        struct map_iter_arg a = {.fn = fn, .arg = arg};
        return prefix_iterate(st, k, map_visit, &a);
}

struct clear_arg {
        rocksdb_writebatch_t *wb;
};

static int flush_batch(struct sb_state *st, rocksdb_writebatch_t *wb) {
        char *e = NULL;
        rocksdb_write(st->b->db, st->b->wopts, wb, &e);
        rocksdb_writebatch_clear(wb);
        return e ? st_rocks(st, e, "clear") : 0;
}

static int clear_visit(struct sb_state *st, void *arg, const char *key, size_t key_len,
                       const char *value, size_t value_len) {
        (void)value;
        (void)value_len;
        struct clear_arg *c = arg;
        rocksdb_writebatch_delete_cf(c->wb, st->cf, key, key_len);
        return rocksdb_writebatch_count(c->wb) >= 1024 ? flush_batch(st, c->wb) : 0;
}

int sb_state_clear(struct sb_state *st, const struct sb_key *k) {
        if (st->kind != SB_STATE_MAP) {
                int r = encode_key(st, k, NULL, 0, NULL);
                return r < 0 ? r : delete_raw(st, st->b->key.data, st->b->key.len);
        }
        /* Point deletes, not a range tombstone: many cleared maps would otherwise pile
         * up range tombstones that every read has to consider. */
        struct clear_arg c = {.wb = rocksdb_writebatch_create()};
        if (!c.wb)
                return st_fail(st, -ENOMEM, "out of memory");
        struct sb_backend *b = st->b;
        int r = encode_key(st, k, NULL, 0, NULL);
        if (r == 0 && prefix_successor(b->key.data, b->key.len, &b->upper) < 0)
                r = st_fail(st, -ENOMEM, "out of memory");
        if (r == 0)
                r = iterate_raw(st, b->key.data, b->key.len, b->upper.data, b->upper.len,
                                clear_visit, &c);
        if (r == 0 && rocksdb_writebatch_count(c.wb) > 0)
                r = flush_batch(st, c.wb);
        rocksdb_writebatch_destroy(c.wb);
        return r;
}

/* ---- reducing and aggregating ------------------------------------------------------ */

int sb_reducing_add(struct sb_state *st, const struct sb_key *k, const void *in, size_t len) {
        struct sb_backend *b = st->b;
        int r = st_need(st, SB_STATE_REDUCING, SB_STATE_AGGREGATING, "reducing add");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        if (r < 0)
                return r;
        rocksdb_pinnableslice_t *pin = NULL;
        const char *acc = NULL;
        size_t acc_len = 0;
        r = get_value(st, &pin, &acc, &acc_len);
        if (r < 0)
                return r;
        size_t hdr = st->ttl_ms ? SB_TTL_BYTES : 0;
        size_t cap = b->val.cap > hdr + 64 ? b->val.cap - hdr : 64;
        size_t out_len = 0;
        for (int attempt = 0;; attempt++) {
                if (sb_buf_reserve(&b->val, hdr + cap) < 0) {
                        r = st_fail(st, -ENOMEM, "out of memory");
                        break;
                }
                r = st->reduce(st->reduce_arg, acc, acc_len, len ? in : "", len,
                               (char *)b->val.data + hdr, cap, &out_len);
                if (r == -ENOBUFS && attempt == 0 && out_len > cap &&
                    out_len <= SB_MAX_VALUE_BYTES) {
                        cap = out_len;
                        continue;
                }
                if (r < 0)
                        st_fail(st, r, "the reduce function failed: %s", err_str(r));
                else if (out_len > cap)
                        r = st_fail(st, -EINVAL, "the reduce function returned %zu bytes in a "
                                    "buffer of %zu", out_len, cap);
                break;
        }
        if (pin)
                rocksdb_pinnableslice_destroy(pin);
        if (r < 0)
                return r;
        if (hdr)
                sb_be64_put(b->val.data, (uint64_t)sb_env_now_ms(b->env));
        return put_raw(st, b->val.data, hdr + out_len);
}

int sb_reducing_get(struct sb_state *st, const struct sb_key *k, struct sb_buf *out) {
        int r = st_need(st, SB_STATE_REDUCING, SB_STATE_AGGREGATING, "reducing get");
        if (r == 0)
                r = encode_key(st, k, NULL, 0, NULL);
        return r < 0 ? r : get_into(st, out);
}

/* ---- scan ----------------------------------------------------------------------------- */

struct scan_arg {
        sb_scan_fn fn;
        void *arg;
        int64_t now;
        struct sb_entry e;
};

static int scan_elem(void *arg, const void *elem, size_t len) {
        struct scan_arg *a = arg;
        a->e.value = elem;
        a->e.value_len = len;
        return a->fn(a->arg, &a->e);
}

static int scan_visit(struct sb_state *st, void *arg, const char *key, size_t key_len,
                      const char *value, size_t value_len) {
        struct scan_arg *a = arg;
        struct sb_dkey d;
        if (sb_key_decode(key, key_len, &d) < 0)
                return st_fail(st, -EBADMSG, "a stored key does not decode");
        struct sb_entry *e = &a->e;
        *e = (struct sb_entry){
                .key_group = d.kg,
                .key = d.key,
                .key_len = d.key_len,
                .ns = d.ns,
                .ns_len = d.ns_len,
        };
        if (st->kind == SB_STATE_MAP) {
                e->user_key = d.ukey;
                e->user_key_len = d.ukey_len;
        }
        if (st->kind == SB_STATE_LIST) {
                /* write_ms per element is not reported for lists. */
                return list_walk(st, (const unsigned char *)value, value_len, a->now, scan_elem, a,
                                 NULL);
        }
        size_t hdr = st->ttl_ms ? SB_TTL_BYTES : 0;
        if (hdr)
                e->write_ms = (int64_t)sb_be64_get((const unsigned char *)value);
        e->value = value + hdr;
        e->value_len = value_len - hdr;
        return a->fn(a->arg, e);
}

int sb_state_scan(struct sb_state *st, sb_scan_fn fn, void *arg) {
        unsigned char lo[SB_KG_PREFIX_BYTES], hi[SB_KG_PREFIX_BYTES];
        sb_be16_put(lo, st->b->range.start);
        sb_be16_put(hi, st->b->range.end);
        struct scan_arg a = {.fn = fn, .arg = arg,
                             .now = st->ttl_ms ? sb_env_now_ms(st->b->env) : 0};
        return iterate_raw(st, lo, sizeof(lo), hi, sizeof(hi), scan_visit, &a);
}
