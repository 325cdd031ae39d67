/* Helpers shared by the statebackend unit tests (test_sb_*.c): a private temp directory,
 * an injectable TTL clock, a per-process sb_env, keys, and a model of expected state that
 * tests compare a backend against. Header-only: each test program includes it once. */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/keygroup.h"
#include "statebackend/backend.h"
#include "unit.h"

static char sbt_root[256];
static _Atomic int64_t sbt_clock_ms = 1000000;

static inline int64_t sbt_now(void *arg) {
        (void)arg;
        return atomic_load(&sbt_clock_ms);
}

/* A fresh directory for this test program: $TMPDIR (or /tmp)/flinc-sb-XXXXXX. */
static inline const char *sbt_mkroot(void) {
        const char *t = getenv("TMPDIR");
        snprintf(sbt_root, sizeof(sbt_root), "%s/flinc-sb-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(sbt_root)) {
                fprintf(stderr, "mkdtemp %s: %s\n", sbt_root, strerror(errno));
                exit(2);
        }
        return sbt_root;
}

static inline void sbt_rmroot(void) {
        if (sbt_root[0])
                fs_rm_rf(sbt_root);
}

/* root/<name> into buf. */
static inline const char *sbt_path(char *buf, size_t len, const char *name) {
        snprintf(buf, len, "%s/%s", sbt_root, name);
        return buf;
}

static inline struct sb_env *sbt_env(uint64_t budget_bytes) {
        struct sb_env_config c = {
                .memory_fixed_per_tm_bytes = budget_bytes,
                .write_buffer_ratio = 0.5,
                .now_ms = sbt_now,
        };
        struct sb_env *env = NULL;
        char err[256] = "";
        int r = sb_env_create(&c, &env, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "sb_env_create: %s (%s)\n", err, err_str(r));
                exit(2);
        }
        return env;
}

/* A key with a key group inside r (max parallelism maxp), from a counter. */
static inline size_t sbt_key_in(char *buf, size_t len, uint32_t maxp, struct kg_range r,
                         uint64_t *counter) {
        for (;;) {
                int n = snprintf(buf, len, "k%" PRIu64, (*counter)++);
                uint32_t kg = kg_of_key(buf, (size_t)n, maxp);
                if (kg >= r.start && kg < r.end)
                        return (size_t)n;
        }
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t sbt_rand_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t sbt_rand(void) {
        uint64_t x = sbt_rand_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        sbt_rand_state = x;
        return x * 0x2545f4914f6cdd1dull;
}

static inline void sbt_fill(void *p, size_t len, uint64_t seed) {
        unsigned char *c = p;
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
        for (size_t i = 0; i < len; i++) {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                c[i] = (unsigned char)((x * 0x2545f4914f6cdd1dull) >> 56);
        }
}

/* Flips one byte of a file at offset. */
static inline int sbt_flip_byte(const char *path, long offset) {
        FILE *f = fopen(path, "r+b");
        if (!f)
                return -errno;
        int r = 0;
        if (fseek(f, offset, SEEK_SET) == 0) {
                int c = fgetc(f);
                if (c == EOF || fseek(f, offset, SEEK_SET) != 0 || fputc(c ^ 0x5a, f) == EOF)
                        r = -EIO;
        } else {
                r = -errno;
        }
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}

static inline long sbt_file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

#include <dirent.h>

/* Regular entries of a directory (0 if it does not exist). */
static inline size_t sbt_count_dir(const char *path) {
        DIR *d = opendir(path);
        if (!d)
                return 0;
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* Puts keys "key%012u" first..first+n-1 into a value state, with pseudo-random values
 * of value_len bytes derived from seed and the key number. */
static inline int sbt_put_keys(struct sb_state *st, uint32_t first, uint32_t n, size_t value_len,
                               uint64_t seed) {
        char key[32], val[4096];
        if (value_len > sizeof(val))
                return -EINVAL;
        for (uint32_t i = first; i < first + n; i++) {
                int kl = snprintf(key, sizeof(key), "key%012u", i);
                sbt_fill(val, value_len, seed * 1000003u + i);
                struct sb_key k = {.key = key, .key_len = (size_t)kl};
                int r = sb_value_put(st, &k, val, value_len);
                if (r < 0)
                        return r;
        }
        return 0;
}
