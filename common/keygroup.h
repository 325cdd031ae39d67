/* Hashing and key groups, the unit of keyed state. A key's group is Flink's:
 * MathUtils.murmurHash(key.hashCode()) % max_parallelism, where the hash code is Java's
 * String.hashCode taken over the key's bytes (identical to Flink's for ASCII string
 * keys). Subtask i of p owns the groups [ceil(i*M/p), ceil((i+1)*M/p)). The vectors
 * checked in tests/unit/test_keygroup.c were computed with Flink's formulas in Java. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KG_DEFAULT_MAX_PARALLELISM 128
#define KG_UPPER_BOUND_MAX_PARALLELISM 32768

/* A half-open range of key groups [start, end). */
struct kg_range {
        uint32_t start;
        uint32_t end;
};

/* Java's String.hashCode over bytes taken as unsigned chars. */
int32_t hash_java_bytes(const void *key, size_t len);

/* Flink's MathUtils.murmurHash(int): one murmur3 block and its finalizer, made
 * non-negative as Flink does. */
int32_t hash_flink_murmur(int32_t code);

/* Standard MurmurHash3_x86_32. */
uint32_t hash_murmur3_32(const void *data, size_t len, uint32_t seed);

/* Key group of a key, for 1 <= max_parallelism <= KG_UPPER_BOUND_MAX_PARALLELISM. */
uint32_t kg_of_key(const void *key, size_t len, uint32_t max_parallelism);

/* Key group from a precomputed hash code (Flink's computeKeyGroupForKeyHash). */
uint32_t kg_of_hash(int32_t hash_code, uint32_t max_parallelism);

/* The subtask index in [0, parallelism) that owns key group kg. */
uint32_t kg_operator_index(uint32_t kg, uint32_t max_parallelism, uint32_t parallelism);

/* The key groups subtask index of parallelism owns. */
struct kg_range kg_range_for_operator(uint32_t max_parallelism, uint32_t parallelism,
                                      uint32_t index);

/* Flink's default max parallelism for an operator of the given parallelism:
 * roundUpToPowerOfTwo(p + p/2), clamped to [128, 32768]. */
uint32_t kg_default_max_parallelism(uint32_t parallelism);
