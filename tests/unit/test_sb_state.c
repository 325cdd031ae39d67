/* Unit tests of statebackend/backend.h: every state kind, TTL with an injected clock
 * (no sleeping), empty lists, values of 1 MiB and more, binary keys with NUL bytes, many
 * states in one backend, keys outside the key-group range, config errors, the
 * per-process memory budget and compactions at a lower CPU priority than flushes. */
#include "statebackend/backend.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/keygroup.h"
#include "test_sb_util.h"

static struct sb_env *env;

static int sum_u64(void *arg, const void *acc, size_t acc_len, const void *in, size_t in_len,
                   void *out, size_t out_cap, size_t *ret_len) {
        (void)arg;
        uint64_t a = 0, b = 0;
        if (acc && acc_len == 8)
                memcpy(&a, acc, 8);
        if (in_len != 8)
                return -EINVAL;
        memcpy(&b, in, 8);
        *ret_len = 8;
        if (out_cap < 8)
                return -ENOBUFS;
        a += b;
        memcpy(out, &a, 8);
        return 0;
}

/* Aggregating: the accumulator is the concatenation of all inputs (it grows, so the
 * backend's buffer must grow through -ENOBUFS). */
static int concat_agg(void *arg, const void *acc, size_t acc_len, const void *in,
                      size_t in_len, void *out, size_t out_cap, size_t *ret_len) {
        (void)arg;
        *ret_len = acc_len + in_len;
        if (out_cap < acc_len + in_len)
                return -ENOBUFS;
        if (acc_len)
                memcpy(out, acc, acc_len);
        memcpy((char *)out + acc_len, in, in_len);
        return 0;
}

static struct sb_backend *make(const char *name, struct kg_range range,
                               const struct sb_state_desc *states, size_t n) {
        char dir[512], err[512] = "";
        struct sb_backend_config cfg = {
                .local_dir = sbt_path(dir, sizeof(dir), name),
                .max_parallelism = 128,
                .range = range,
                .states = states,
                .n_states = n,
        };
        struct sb_backend *b = NULL;
        int r = sb_backend_create(env, &cfg, &b, err, sizeof(err));
        CHECK(r == 0, "sb_backend_create(%s): expected 0, seen %d (%s)", name, r, err);
        return b;
}

static const struct kg_range all_groups = {0, 128};

static void test_value_state(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                    {.name = "l", .kind = SB_STATE_LIST}};
        struct sb_backend *b = make("value", all_groups, d, 2);
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        CHECK(v != NULL, "declared state 'v' not found");
        CHECK(sb_backend_state(b, "nope") == NULL, "an undeclared state was found");
        struct sb_buf out = {0};
        struct sb_key k = {.key = "alice", .key_len = 5};
        CHECK_INT(sb_value_get(v, &k, &out), 0);
        CHECK_INT(sb_value_put(v, &k, "one", 3), 0);
        CHECK_INT(sb_value_get(v, &k, &out), 1);
        CHECK(out.len == 3 && memcmp(out.data, "one", 3) == 0, "expected 'one', seen %zu bytes",
              out.len);
        CHECK_INT(sb_value_put(v, &k, "twotwo", 6), 0);
        CHECK_INT(sb_value_get(v, &k, &out), 1);
        CHECK(out.len == 6 && memcmp(out.data, "twotwo", 6) == 0, "expected 'twotwo'");
        /* Zero-length values exist and differ from absent. */
        CHECK_INT(sb_value_put(v, &k, NULL, 0), 0);
        CHECK_INT(sb_value_get(v, &k, &out), 1);
        CHECK_INT(out.len, 0);
        /* Namespaces separate values of the same key. */
        struct sb_key kw = {.key = "alice", .key_len = 5, .ns = "w1", .ns_len = 2};
        CHECK_INT(sb_value_get(v, &kw, &out), 0);
        CHECK_INT(sb_value_put(v, &kw, "win", 3), 0);
        CHECK_INT(sb_state_clear(v, &k), 0);
        CHECK_INT(sb_value_get(v, &k, &out), 0);
        CHECK_INT(sb_value_get(v, &kw, &out), 1);
        /* Calls of another kind are refused with a reason. */
        struct sb_state *l = sb_backend_state(b, "l");
        CHECK_INT(sb_value_put(l, &k, "x", 1), -EINVAL);
        CHECK_CONTAINS(sb_backend_last_error(b), "state 'l'");
        CHECK_CONTAINS(sb_backend_last_error(b), "list state");
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

struct multi_seen {
        char vals[8][16];
        size_t n;
};

static int multi_collect(void *arg, size_t i, const void *value, size_t len) {
        struct multi_seen *m = arg;
        if (i != m->n || i >= 8)
                return -EPROTO;
        snprintf(m->vals[m->n++], sizeof(m->vals[0]), "%.*s", value ? (int)len : 9,
                 value ? (const char *)value : "(absent)");
        return 0;
}

/* sb_value_put_batch: one write of many keys in any order, equal keys last-wins, the
 * same values as single puts; refused on another kind; an empty batch is fine. */
static void test_value_put_batch(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                    {.name = "l", .kind = SB_STATE_LIST}};
        struct sb_backend *b = make("batch", all_groups, d, 2);
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        enum { N = 3000 };
        static char keys[N][16], vals[N][16];
        static struct sb_kv kvs[N + 1];
        for (int i = 0; i < N; i++) {
                /* descending, so the backend must sort */
                snprintf(keys[i], sizeof(keys[i]), "k%05d", N - i);
                snprintf(vals[i], sizeof(vals[i]), "v%d", i);
                kvs[i] = (struct sb_kv){.key = {.key = keys[i], .key_len = strlen(keys[i])},
                                        .value = vals[i], .value_len = strlen(vals[i])};
        }
        /* the last entry repeats the first key with another value: it wins */
        kvs[N] = (struct sb_kv){.key = kvs[0].key, .value = "last", .value_len = 4};
        CHECK_INT(sb_value_put_batch(v, kvs, N + 1), 0);
        struct sb_buf out = {0};
        for (int i = 1; i < N; i += 97) {
                CHECK_INT(sb_value_get(v, &kvs[i].key, &out), 1);
                CHECK(out.len == strlen(vals[i]) && memcmp(out.data, vals[i], out.len) == 0,
                      "key %s: expected %s", keys[i], vals[i]);
        }
        CHECK_INT(sb_value_get(v, &kvs[0].key, &out), 1);
        CHECK(out.len == 4 && memcmp(out.data, "last", 4) == 0, "the last equal key wins");
        CHECK_INT(sb_value_put_batch(v, kvs, 0), 0);
        /* sb_value_multi_get: in the caller's order, absent keys NULL */
        struct multi_seen ms = {0};
        struct sb_key ks[4] = {kvs[5].key, {.key = "nope", .key_len = 4}, kvs[0].key,
                               kvs[N - 1].key};
        CHECK_INT(sb_value_multi_get(v, ks, 4, multi_collect, &ms), 0);
        CHECK_INT(ms.n, 4);
        CHECK_STR(ms.vals[0], vals[5]);
        CHECK_STR(ms.vals[1], "(absent)");
        CHECK_STR(ms.vals[2], "last");
        CHECK_STR(ms.vals[3], vals[N - 1]);
        CHECK_INT(sb_value_multi_get(v, ks, 0, multi_collect, &ms), 0);
        CHECK_INT(sb_value_multi_get(sb_backend_state(b, "l"), ks, 1, multi_collect, &ms),
                  -EINVAL);
        CHECK_INT(sb_value_put_batch(sb_backend_state(b, "l"), kvs, 1), -EINVAL);
        CHECK_CONTAINS(sb_backend_last_error(b), "list state");
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

struct collect {
        char items[16][64];
        size_t lens[16];
        size_t n;
};

static int collect_elem(void *arg, const void *elem, size_t len) {
        struct collect *c = arg;
        if (c->n < 16) {
                memcpy(c->items[c->n], elem, len < 64 ? len : 64);
                c->lens[c->n] = len;
        }
        c->n++;
        return 0;
}

static int stop_at_two(void *arg, const void *elem, size_t len) {
        struct collect *c = arg;
        collect_elem(arg, elem, len);
        return c->n == 2 ? 42 : 0;
}

static void test_list_state(void) {
        struct sb_state_desc d[] = {{.name = "l", .kind = SB_STATE_LIST}};
        struct sb_backend *b = make("list", all_groups, d, 1);
        if (!b)
                return;
        struct sb_state *l = sb_backend_state(b, "l");
        struct sb_key k = {.key = "bob", .key_len = 3};
        struct collect c = {0};
        /* An empty list: get succeeds and calls nothing. */
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 0);
        CHECK_INT(sb_list_update(l, &k, NULL, NULL, 0), 0);
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 0);
        /* Appends, including a zero-length element, come back in order. */
        CHECK_INT(sb_list_add(l, &k, "a", 1), 0);
        CHECK_INT(sb_list_add(l, &k, "", 0), 0);
        CHECK_INT(sb_list_add(l, &k, "ccc", 3), 0);
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 3);
        CHECK(c.lens[0] == 1 && c.items[0][0] == 'a', "element 0: expected 'a'");
        CHECK_INT(c.lens[1], 0);
        CHECK(c.lens[2] == 3 && memcmp(c.items[2], "ccc", 3) == 0, "element 2: expected 'ccc'");
        /* Stop early: the callback's value comes back. */
        memset(&c, 0, sizeof(c));
        CHECK_INT(sb_list_get(l, &k, stop_at_two, &c), 42);
        CHECK_INT(c.n, 2);
        /* Update replaces; it survives a compaction (merge operands folded). */
        const void *elems[] = {"x", "yy"};
        size_t lens[] = {1, 2};
        CHECK_INT(sb_list_update(l, &k, elems, lens, 2), 0);
        CHECK_INT(sb_list_add(l, &k, "z", 1), 0);
        CHECK_INT(sb_backend_compact(b), 0);
        CHECK_INT(sb_list_add(l, &k, "w", 1), 0);
        memset(&c, 0, sizeof(c));
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 4);
        CHECK(c.n == 4 && c.items[0][0] == 'x' && c.items[1][1] == 'y' && c.items[2][0] == 'z' &&
              c.items[3][0] == 'w', "expected x, yy, z, w");
        CHECK_INT(sb_state_clear(l, &k), 0);
        memset(&c, 0, sizeof(c));
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 0);
        sb_backend_destroy(b);
}

struct map_seen {
        size_t n;
        char ukeys[8][16];
        size_t uklens[8];
        char vals[8][16];
};

static int map_collect(void *arg, const void *ukey, size_t ukey_len, const void *v, size_t vlen) {
        struct map_seen *m = arg;
        if (m->n < 8 && ukey_len <= 16 && vlen <= 16) {
                memcpy(m->ukeys[m->n], ukey, ukey_len);
                m->uklens[m->n] = ukey_len;
                memcpy(m->vals[m->n], v, vlen);
        }
        m->n++;
        return 0;
}

static void test_map_state(void) {
        struct sb_state_desc d[] = {{.name = "m", .kind = SB_STATE_MAP}};
        struct sb_backend *b = make("map", all_groups, d, 1);
        if (!b)
                return;
        struct sb_state *m = sb_backend_state(b, "m");
        struct sb_buf out = {0};
        /* Key "a" and key "a\0" and key "ab" must not see each other's entries. */
        struct sb_key ka = {.key = "a", .key_len = 1};
        struct sb_key ka0 = {.key = "a\0", .key_len = 2};
        struct sb_key kab = {.key = "ab", .key_len = 2};
        CHECK_INT(sb_map_put(m, &ka, "u2", 2, "v2", 2), 0);
        CHECK_INT(sb_map_put(m, &ka, "u1", 2, "v1", 2), 0);
        CHECK_INT(sb_map_put(m, &ka, "u\0", 2, "nul", 3), 0);
        CHECK_INT(sb_map_put(m, &ka0, "u1", 2, "other", 5), 0);
        CHECK_INT(sb_map_put(m, &kab, "u1", 2, "third", 5), 0);
        CHECK_INT(sb_map_get(m, &ka, "u1", 2, &out), 1);
        CHECK(out.len == 2 && memcmp(out.data, "v1", 2) == 0, "expected v1");
        CHECK_INT(sb_map_get(m, &ka0, "u1", 2, &out), 1);
        CHECK(out.len == 5 && memcmp(out.data, "other", 5) == 0, "expected 'other'");
        CHECK_INT(sb_map_get(m, &ka, "u3", 2, NULL), 0);
        struct map_seen s = {0};
        CHECK_INT(sb_map_iterate(m, &ka, map_collect, &s), 0);
        CHECK_INT(s.n, 3);
        /* User-key byte order: "u\0" < "u1" < "u2". */
        CHECK(s.n == 3 && s.uklens[0] == 2 && s.ukeys[0][1] == '\0' && s.ukeys[1][1] == '1' &&
              s.ukeys[2][1] == '2', "expected user keys u\\0, u1, u2 in order");
        CHECK_INT(sb_map_remove(m, &ka, "u1", 2), 0);
        CHECK_INT(sb_map_get(m, &ka, "u1", 2, NULL), 0);
        CHECK_INT(sb_state_clear(m, &ka), 0);
        memset(&s, 0, sizeof(s));
        CHECK_INT(sb_map_iterate(m, &ka, map_collect, &s), 0);
        CHECK_INT(s.n, 0);
        /* Clearing "a" left "a\0" and "ab" alone. */
        CHECK_INT(sb_map_get(m, &ka0, "u1", 2, NULL), 1);
        CHECK_INT(sb_map_get(m, &kab, "u1", 2, NULL), 1);
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

static void test_reducing_and_aggregating(void) {
        struct sb_state_desc d[] = {
                {.name = "sum", .kind = SB_STATE_REDUCING, .reduce = sum_u64},
                {.name = "cat", .kind = SB_STATE_AGGREGATING, .reduce = concat_agg},
        };
        struct sb_backend *b = make("reduce", all_groups, d, 2);
        if (!b)
                return;
        struct sb_state *sum = sb_backend_state(b, "sum"), *cat = sb_backend_state(b, "cat");
        struct sb_key k = {.key = "carol", .key_len = 5};
        struct sb_buf out = {0};
        CHECK_INT(sb_reducing_get(sum, &k, &out), 0);
        for (uint64_t i = 1; i <= 100; i++)
                CHECK_INT(sb_reducing_add(sum, &k, &i, 8), 0);
        CHECK_INT(sb_reducing_get(sum, &k, &out), 1);
        uint64_t total = 0;
        if (out.len == 8)
                memcpy(&total, out.data, 8);
        CHECK_INT(total, 5050);
        /* A bad input: the reduce function's error comes back. */
        CHECK_INT(sb_reducing_add(sum, &k, "x", 1), -EINVAL);
        CHECK_CONTAINS(sb_backend_last_error(b), "reduce function");
        /* A growing accumulator (1000 x 100 bytes = 100 kB). */
        char chunk[100];
        for (int i = 0; i < 1000; i++) {
                memset(chunk, 'a' + i % 26, sizeof(chunk));
                CHECK_INT(sb_reducing_add(cat, &k, chunk, sizeof(chunk)), 0);
        }
        CHECK_INT(sb_reducing_get(cat, &k, &out), 1);
        CHECK_INT(out.len, 100000);
        CHECK(out.len == 100000 && ((char *)out.data)[99999] == 'a' + 999 % 26,
              "last byte of the accumulator is wrong");
        CHECK_INT(sb_state_clear(sum, &k), 0);
        CHECK_INT(sb_reducing_get(sum, &k, &out), 0);
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

static int count_entries(void *arg, const struct sb_entry *e) {
        (void)e;
        (*(size_t *)arg)++;
        return 0;
}

static void test_ttl(void) {
        struct sb_state_desc d[] = {
                {.name = "v", .kind = SB_STATE_VALUE, .ttl_ms = 1000},
                {.name = "l", .kind = SB_STATE_LIST, .ttl_ms = 1000},
                {.name = "m", .kind = SB_STATE_MAP, .ttl_ms = 1000},
                {.name = "r", .kind = SB_STATE_REDUCING, .ttl_ms = 1000, .reduce = sum_u64},
        };
        struct sb_backend *b = make("ttl", all_groups, d, 4);
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v"), *l = sb_backend_state(b, "l"),
                        *m = sb_backend_state(b, "m"), *r = sb_backend_state(b, "r");
        struct sb_key k = {.key = "dave", .key_len = 4};
        struct sb_buf out = {0};
        struct collect c = {0};
        const int64_t t0 = 5000000;
        uint64_t one = 1;

        atomic_store(&sbt_clock_ms, t0);
        CHECK_INT(sb_value_put(v, &k, "val", 3), 0);
        CHECK_INT(sb_list_add(l, &k, "old", 3), 0);
        CHECK_INT(sb_map_put(m, &k, "u", 1, "mv", 2), 0);
        CHECK_INT(sb_reducing_add(r, &k, &one, 8), 0);
        atomic_store(&sbt_clock_ms, t0 + 600);
        CHECK_INT(sb_list_add(l, &k, "new", 3), 0);

        /* 999 ms after the first writes: everything is there. */
        atomic_store(&sbt_clock_ms, t0 + 999);
        CHECK_INT(sb_value_get(v, &k, &out), 1);
        CHECK_INT(sb_map_get(m, &k, "u", 1, NULL), 1);
        CHECK_INT(sb_reducing_get(r, &k, NULL), 1);
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 2);

        /* At 1000 ms: the first writes are expired, the later list element is not. */
        atomic_store(&sbt_clock_ms, t0 + 1000);
        CHECK_INT(sb_map_get(m, &k, "u", 1, NULL), 0);
        CHECK_INT(sb_reducing_get(r, &k, NULL), 0);
        memset(&c, 0, sizeof(c));
        CHECK_INT(sb_list_get(l, &k, collect_elem, &c), 0);
        CHECK_INT(c.n, 1);
        CHECK(c.n == 1 && memcmp(c.items[0], "new", 3) == 0, "expected the live element 'new'");
        /* An add after expiry starts from nothing. */
        CHECK_INT(sb_reducing_add(r, &k, &one, 8), 0);
        CHECK_INT(sb_reducing_get(r, &k, &out), 1);
        uint64_t got = 0;
        if (out.len == 8)
                memcpy(&got, out.data, 8);
        CHECK_INT(got, 1);

        /* The compaction filter drops what expired without being read: write, expire,
         * compact, then turn the clock back: a value the filter removed stays gone. */
        struct sb_key k2 = {.key = "erin", .key_len = 4};
        atomic_store(&sbt_clock_ms, t0);
        CHECK_INT(sb_value_put(v, &k2, "gone", 4), 0);
        CHECK_INT(sb_list_add(l, &k2, "e1", 2), 0);
        atomic_store(&sbt_clock_ms, t0 + 600);
        CHECK_INT(sb_list_add(l, &k2, "e2", 2), 0);
        atomic_store(&sbt_clock_ms, t0 + 1100);
        /* Twice: the first folds the list's merge operands into one value (the filter
         * does not see operands), the second filters that value. */
        CHECK_INT(sb_backend_compact(b), 0);
        CHECK_INT(sb_backend_compact(b), 0);
        atomic_store(&sbt_clock_ms, t0 + 1);
        CHECK_INT(sb_value_get(v, &k2, &out), 0);
        memset(&c, 0, sizeof(c));
        CHECK_INT(sb_list_get(l, &k2, collect_elem, &c), 0);
        CHECK_INT(c.n, 1);
        CHECK(c.n == 1 && memcmp(c.items[0], "e2", 2) == 0,
              "expected only e2 after the filter rewrote the list");
        /* Once everything is expired, a compaction leaves no files. */
        atomic_store(&sbt_clock_ms, t0 + 100000);
        CHECK_INT(sb_backend_compact(b), 0);
        struct sb_backend_stats st;
        CHECK_INT(sb_backend_get_stats(b, &st), 0);
        CHECK_INT(st.sst_files, 0);
        size_t n = 0;
        for (size_t i = 0; i < 4; i++)
                CHECK_INT(sb_state_scan(sb_backend_state(b, d[i].name), count_entries, &n), 0);
        CHECK_INT(n, 0);
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

static void test_large_values(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                    {.name = "vt", .kind = SB_STATE_VALUE, .ttl_ms = 3600000},
                                    {.name = "l", .kind = SB_STATE_LIST},
                                    {.name = "m", .kind = SB_STATE_MAP}};
        struct sb_backend *b = make("large", all_groups, d, 4);
        if (!b)
                return;
        const size_t sizes[] = {1u << 20, (1u << 20) + 7, 5u << 20};
        struct sb_buf out = {0};
        char *big = malloc(5u << 20);
        if (!big) {
                CHECK(0, "out of memory");
                return;
        }
        for (size_t i = 0; i < 3; i++) {
                struct sb_key k = {.key = &i, .key_len = sizeof(i)};
                sbt_fill(big, sizes[i], i + 1);
                CHECK_INT(sb_value_put(sb_backend_state(b, "v"), &k, big, sizes[i]), 0);
                CHECK_INT(sb_value_put(sb_backend_state(b, "vt"), &k, big, sizes[i]), 0);
                CHECK_INT(sb_list_add(sb_backend_state(b, "l"), &k, big, sizes[i]), 0);
                CHECK_INT(sb_map_put(sb_backend_state(b, "m"), &k, "u", 1, big, sizes[i]), 0);
        }
        CHECK_INT(sb_backend_compact(b), 0); /* through SST files, not just the memtable */
        for (size_t i = 0; i < 3; i++) {
                struct sb_key k = {.key = &i, .key_len = sizeof(i)};
                sbt_fill(big, sizes[i], i + 1);
                CHECK_INT(sb_value_get(sb_backend_state(b, "v"), &k, &out), 1);
                CHECK(out.len == sizes[i] && memcmp(out.data, big, sizes[i]) == 0,
                      "value %zu: expected %zu bytes intact, seen %zu", i, sizes[i], out.len);
                CHECK_INT(sb_value_get(sb_backend_state(b, "vt"), &k, &out), 1);
                CHECK(out.len == sizes[i] && memcmp(out.data, big, sizes[i]) == 0,
                      "TTL value %zu: expected %zu bytes intact", i, sizes[i]);
                CHECK_INT(sb_map_get(sb_backend_state(b, "m"), &k, "u", 1, &out), 1);
                CHECK(out.len == sizes[i] && memcmp(out.data, big, sizes[i]) == 0,
                      "map value %zu: expected %zu bytes intact", i, sizes[i]);
        }
        free(big);
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

struct nul_check {
        size_t n;
        uint32_t bad_kg;
};

static int check_kg(void *arg, const struct sb_entry *e) {
        struct nul_check *c = arg;
        c->n++;
        if (kg_of_key(e->key, e->key_len, 128) != e->key_group)
                c->bad_kg++;
        return 0;
}

static void test_binary_keys(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE}};
        struct sb_backend *b = make("binary", all_groups, d, 1);
        if (!b)
                return;
        struct sb_state *v = sb_backend_state(b, "v");
        /* Keys that differ only after a NUL, an empty key, a key of NULs, namespaces
         * with NULs: all distinct. */
        const struct sb_key keys[] = {
                {.key = "a\0b", .key_len = 3},
                {.key = "a\0c", .key_len = 3},
                {.key = "a", .key_len = 1},
                {.key = "", .key_len = 0},
                {.key = "\0\0\0\0", .key_len = 4},
                {.key = "a", .key_len = 1, .ns = "\0", .ns_len = 1},
                {.key = "a\0", .key_len = 2, .ns = "", .ns_len = 0},
                {.key = "a", .key_len = 1, .ns = "\0\0", .ns_len = 2},
        };
        size_t n = sizeof(keys) / sizeof(keys[0]);
        for (size_t i = 0; i < n; i++) {
                unsigned char val[2] = {(unsigned char)i, 0};
                CHECK_INT(sb_value_put(v, &keys[i], val, 2), 0);
        }
        struct sb_buf out = {0};
        for (size_t i = 0; i < n; i++) {
                CHECK_INT(sb_value_get(v, &keys[i], &out), 1);
                CHECK(out.len == 2 && ((unsigned char *)out.data)[0] == i,
                      "key %zu: expected its own value %zu, seen %d", i, i,
                      out.len ? ((unsigned char *)out.data)[0] : -1);
        }
        struct nul_check c = {0};
        CHECK_INT(sb_state_scan(v, check_kg, &c), 0);
        CHECK_INT(c.n, n);
        CHECK_INT(c.bad_kg, 0);
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

static void test_key_outside_range(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE},
                                    {.name = "l", .kind = SB_STATE_LIST}};
        struct kg_range half = {0, 64};
        struct sb_backend *b = make("range", half, d, 2);
        if (!b)
                return;
        char key[32];
        uint64_t counter = 0;
        size_t len = sbt_key_in(key, sizeof(key), 128, (struct kg_range){64, 128}, &counter);
        struct sb_key k = {.key = key, .key_len = len};
        CHECK_INT(sb_value_put(sb_backend_state(b, "v"), &k, "x", 1), -ERANGE);
        CHECK_CONTAINS(sb_backend_last_error(b), "outside this backend's range [0,64)");
        CHECK_INT(sb_list_add(sb_backend_state(b, "l"), &k, "x", 1), -ERANGE);
        CHECK_INT(sb_value_get(sb_backend_state(b, "v"), &k, NULL), -ERANGE);
        counter = 0;
        len = sbt_key_in(key, sizeof(key), 128, half, &counter);
        k.key_len = len;
        CHECK_INT(sb_value_put(sb_backend_state(b, "v"), &k, "x", 1), 0);
        sb_backend_destroy(b);
}

static void test_many_states(void) {
        enum { N = 60 };
        struct sb_state_desc d[N];
        char names[N][16];
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "s%02d", i);
                d[i] = (struct sb_state_desc){.name = names[i]};
                switch (i % 4) {
                case 0: d[i].kind = SB_STATE_VALUE; break;
                case 1: d[i].kind = SB_STATE_LIST; break;
                case 2: d[i].kind = SB_STATE_MAP; break;
                default: d[i].kind = SB_STATE_REDUCING; d[i].reduce = sum_u64; break;
                }
                if (i % 3 == 0)
                        d[i].ttl_ms = 3600000;
        }
        struct sb_backend *b = make("many", all_groups, d, N);
        if (!b)
                return;
        struct sb_env_stats es;
        sb_env_get_stats(env, &es);
        CHECK_INT(es.column_families, N);
        for (int round = 0; round < 3; round++) {
                for (int i = 0; i < N; i++) {
                        struct sb_state *st = sb_backend_state(b, names[i]);
                        for (uint64_t j = 0; j < 50; j++) {
                                struct sb_key k = {.key = &j, .key_len = sizeof(j)};
                                uint64_t val = (uint64_t)i * 1000 + j;
                                switch (d[i].kind) {
                                case SB_STATE_VALUE:
                                        CHECK_INT(sb_value_put(st, &k, &val, 8), 0);
                                        break;
                                case SB_STATE_LIST:
                                        CHECK_INT(sb_list_add(st, &k, &val, 8), 0);
                                        break;
                                case SB_STATE_MAP:
                                        CHECK_INT(sb_map_put(st, &k, &round, sizeof(round), &val, 8), 0);
                                        break;
                                default:
                                        CHECK_INT(sb_reducing_add(st, &k, &val, 8), 0);
                                        break;
                                }
                        }
                }
                if (round == 1)
                        CHECK_INT(sb_backend_compact(b), 0);
        }
        /* Each state holds exactly its own entries. */
        for (int i = 0; i < N; i++) {
                size_t n = 0;
                CHECK_INT(sb_state_scan(sb_backend_state(b, names[i]), count_entries, &n), 0);
                size_t want = d[i].kind == SB_STATE_LIST || d[i].kind == SB_STATE_MAP ? 150 : 50;
                CHECK(n == want, "state %s: expected %zu entries, seen %zu", names[i], want, n);
        }
        struct sb_buf out = {0};
        uint64_t j = 7;
        struct sb_key k = {.key = &j, .key_len = sizeof(j)};
        CHECK_INT(sb_reducing_get(sb_backend_state(b, "s03"), &k, &out), 1);
        uint64_t got = 0;
        if (out.len == 8)
                memcpy(&got, out.data, 8);
        CHECK_INT(got, 3 * (3000 + 7));
        sb_buf_finish(&out);
        sb_backend_destroy(b);
}

static void test_config_errors(void) {
        char dir[512], err[512];
        struct sb_backend *b = NULL;
        struct sb_state_desc bad_name[] = {{.name = "no/slash", .kind = SB_STATE_VALUE}};
        struct sb_state_desc dup[] = {{.name = "a", .kind = SB_STATE_VALUE},
                                      {.name = "a", .kind = SB_STATE_LIST}};
        struct sb_state_desc no_fn[] = {{.name = "r", .kind = SB_STATE_REDUCING}};
        struct sb_backend_config cfg = {.local_dir = sbt_path(dir, sizeof(dir), "cfg"),
                                        .range = {0, 128}};
        cfg.states = bad_name;
        cfg.n_states = 1;
        CHECK_INT(sb_backend_create(env, &cfg, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "no/slash");
        cfg.states = dup;
        cfg.n_states = 2;
        CHECK_INT(sb_backend_create(env, &cfg, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "declared twice");
        cfg.states = no_fn;
        cfg.n_states = 1;
        CHECK_INT(sb_backend_create(env, &cfg, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "needs a reduce function");
        cfg.n_states = 0;
        cfg.range = (struct kg_range){10, 200};
        CHECK_INT(sb_backend_create(env, &cfg, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "[10,200)");
        CHECK(b == NULL, "ret_backend was touched on failure");
        struct sb_env *e2 = NULL;
        struct sb_env_config ec = {.memory_fixed_per_tm_bytes = 64 << 20, .write_buffer_ratio = 1.5};
        CHECK_INT(sb_env_create(&ec, &e2, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "write-buffer-ratio");
        CHECK(e2 == NULL, "ret_env was touched on failure");
}

/* One budget for the process: more backends split it, they do not multiply it. */
static void test_memory_budget(void) {
        struct sb_env *e = sbt_env(64ull << 20); /* 32 MiB of memtables */
        struct sb_env_stats s;
        sb_env_get_stats(e, &s);
        CHECK_INT(s.write_buffer_budget_bytes, 32ull << 20);
        CHECK_INT(s.block_cache_capacity_bytes, 32ull << 20);
        struct sb_state_desc d[8];
        char names[8][8];
        for (int i = 0; i < 8; i++) {
                snprintf(names[i], sizeof(names[i]), "s%d", i);
                d[i] = (struct sb_state_desc){.name = names[i], .kind = SB_STATE_VALUE};
        }
        struct sb_backend *bs[12] = {0};
        char dir[512], err[512];
        for (int i = 0; i < 12; i++) {
                char name[32];
                snprintf(name, sizeof(name), "mem%d", i);
                struct sb_backend_config cfg = {.local_dir = sbt_path(dir, sizeof(dir), name),
                                                .range = {0, 128}, .states = d, .n_states = 8};
                CHECK_INT(sb_backend_create(e, &cfg, &bs[i], err, sizeof(err)), 0);
                sb_env_get_stats(e, &s);
                uint64_t worst = s.write_buffer_per_cf_bytes * 2 * s.column_families;
                if (!s.over_budget)
                        CHECK(worst <= s.write_buffer_budget_bytes,
                              "%u backends: memtables may reach %" PRIu64 " bytes, over the "
                              "budget of %" PRIu64, s.backends, worst,
                              s.write_buffer_budget_bytes);
        }
        sb_env_get_stats(e, &s);
        CHECK_INT(s.backends, 12);
        CHECK_INT(s.column_families, 96);
        /* 32 MiB / (2 x 96) = 170 kB is under the 256 kB floor: reported. */
        CHECK(s.over_budget, "expected over_budget with 96 column families in 32 MiB");
        for (int i = 0; i < 12; i++)
                sb_backend_destroy(bs[i]);
        sb_env_get_stats(e, &s);
        CHECK_INT(s.backends, 0);
        CHECK_INT(s.column_families, 0);
        CHECK_INT(s.write_buffer_per_cf_bytes, SB_MAX_WRITE_BUFFER_BYTES > (16u << 20)
                                                       ? (16u << 20) : SB_MAX_WRITE_BUFFER_BYTES);
        sb_env_destroy(e);
}

/* The nice value of each of this process's threads whose name starts with prefix:
 * counts them and returns in *ret_other how many have another nice than want. */
static int threads_with_nice(const char *prefix, int want, int *ret_other) {
        int n = 0;
        *ret_other = 0;
        DIR *d = opendir("/proc/self/task");
        if (!d)
                return -1;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char path[128], comm[64] = "", stat[1024] = "";
                snprintf(path, sizeof(path), "/proc/self/task/%.32s/comm", e->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                        continue;
                bool named = fgets(comm, sizeof(comm), f) &&
                             strncmp(comm, prefix, strlen(prefix)) == 0;
                fclose(f);
                if (!named)
                        continue;
                snprintf(path, sizeof(path), "/proc/self/task/%.32s/stat", e->d_name);
                f = fopen(path, "r");
                if (!f)
                        continue;
                bool ok = fgets(stat, sizeof(stat), f) != NULL;
                fclose(f);
                /* Field 19 is the nice value; fields 3.. follow the ") " after comm. */
                const char *p = ok ? strrchr(stat, ')') : NULL;
                int field = 2, nice = 0;
                for (; p && *p && field < 19; p++)
                        if (*p == ' ')
                                field++;
                if (!p || sscanf(p, "%d", &nice) != 1)
                        continue;
                n++;
                *ret_other += nice != want;
        }
        closedir(d);
        return n;
}

/* Compactions run at the lowest CPU priority and flushes at the normal one (env.c), so
 * that a synchronous snapshot's flush does not wait for a CPU behind a compaction: the
 * compaction thread that ran a manual compaction has nice 19, the flush thread 0. */
static void test_compaction_priority(void) {
        struct sb_state_desc d[] = {{.name = "v", .kind = SB_STATE_VALUE}};
        struct sb_backend *b = make("prio", all_groups, d, 1);
        if (!b)
                return;
        for (uint32_t i = 0; i < 3; i++) {
                CHECK_INT(sbt_put_keys(sb_backend_state(b, "v"), i * 1000, 1000, 32, i), 0);
                CHECK_INT(sb_backend_compact(b), 0);
        }
        int other_low = 0, other_high = 0;
        int low = threads_with_nice("rocksdb:low", 19, &other_low);
        int high = threads_with_nice("rocksdb:high", 0, &other_high);
        CHECK(low >= 1 && other_low < low, "expected a compaction thread (rocksdb:low) at nice "
              "19 after a compaction; seen %d threads, %d at another nice value", low, other_low);
        CHECK(high >= 1 && other_high == 0, "expected the flush thread (rocksdb:high) at nice 0; "
              "seen %d threads, %d at another nice value", high, other_high);
        sb_backend_destroy(b);
}

#define RUNT(t)                                                                  \
        do {                                                                     \
                uint64_t t0_ = clock_mono_ms();                                  \
                RUN(t);                                                          \
                printf("     %" PRIu64 " ms\n", clock_mono_ms() - t0_);             \
        } while (0)

int main(void) {
        sbt_mkroot();
        env = sbt_env(128ull << 20);
        RUNT(test_value_state);
        RUNT(test_value_put_batch);
        RUNT(test_list_state);
        RUNT(test_map_state);
        RUNT(test_reducing_and_aggregating);
        RUNT(test_ttl);
        RUNT(test_large_values);
        RUNT(test_binary_keys);
        RUNT(test_key_outside_range);
        RUNT(test_many_states);
        RUNT(test_config_errors);
        RUNT(test_memory_budget);
        RUNT(test_compaction_priority);
        sb_env_destroy(env);
        sbt_rmroot();
        return unit_done();
}
