/* Key groups as Flink computes them (KeyGroupRangeAssignment, MathUtils). */
#include "common/keygroup.h"

#include <string.h>

static inline uint32_t rotl32(uint32_t x, int r) {
        return (x << r) | (x >> (32 - r));
}

static inline uint32_t fmix32(uint32_t h) {
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        return h;
}

int32_t hash_java_bytes(const void *key, size_t len) {
        const unsigned char *p = key;
        uint32_t h = 0;
        for (size_t i = 0; i < len; i++)
                h = 31u * h + p[i];
        return (int32_t)h;
}

int32_t hash_flink_murmur(int32_t code) {
        uint32_t c = (uint32_t)code;
        c *= 0xcc9e2d51u;
        c = rotl32(c, 15);
        c *= 0x1b873593u;
        c = rotl32(c, 13);
        c = c * 5u + 0xe6546b64u;
        c ^= 4u;
        c = fmix32(c);
        int32_t s = (int32_t)c;
        if (s >= 0)
                return s;
        if (s != INT32_MIN)
                return -s;
        return 0;
}

uint32_t hash_murmur3_32(const void *data, size_t len, uint32_t seed) {
        const unsigned char *p = data;
        uint32_t h = seed;
        size_t nblocks = len / 4;
        for (size_t i = 0; i < nblocks; i++) {
                uint32_t k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                             (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
                k *= 0xcc9e2d51u;
                k = rotl32(k, 15);
                k *= 0x1b873593u;
                h ^= k;
                h = rotl32(h, 13);
                h = h * 5u + 0xe6546b64u;
        }
        const unsigned char *tail = p + nblocks * 4;
        uint32_t k = 0;
        switch (len & 3) {
        case 3:
                k ^= (uint32_t)tail[2] << 16;
                /* fall through */
        case 2:
                k ^= (uint32_t)tail[1] << 8;
                /* fall through */
        case 1:
                k ^= tail[0];
                k *= 0xcc9e2d51u;
                k = rotl32(k, 15);
                k *= 0x1b873593u;
                h ^= k;
        }
        h ^= (uint32_t)len;
        return fmix32(h);
}

uint32_t kg_of_hash(int32_t hash_code, uint32_t max_parallelism) {
        return (uint32_t)hash_flink_murmur(hash_code) % max_parallelism;
}

uint32_t kg_of_key(const void *key, size_t len, uint32_t max_parallelism) {
        return kg_of_hash(hash_java_bytes(key, len), max_parallelism);
}

uint32_t kg_operator_index(uint32_t kg, uint32_t max_parallelism, uint32_t parallelism) {
        return (uint32_t)((uint64_t)kg * parallelism / max_parallelism);
}

struct kg_range kg_range_for_operator(uint32_t max_parallelism, uint32_t parallelism,
                                      uint32_t index) {
        uint64_t m = max_parallelism, p = parallelism;
        struct kg_range r = {
                .start = (uint32_t)((index * m + p - 1) / p),
                .end = (uint32_t)(((index + 1) * m - 1) / p + 1),
        };
        return r;
}

uint32_t kg_default_max_parallelism(uint32_t parallelism) {
        uint64_t want = (uint64_t)parallelism + parallelism / 2;
        uint64_t pow2 = 1;
        while (pow2 < want)
                pow2 <<= 1;
        if (pow2 < 128)
                pow2 = 128;
        if (pow2 > KG_UPPER_BOUND_MAX_PARALLELISM)
                pow2 = KG_UPPER_BOUND_MAX_PARALLELISM;
        return (uint32_t)pow2;
}
