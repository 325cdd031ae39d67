/* Unit tests of common/: CRC32C, key groups against Flink's vectors, ids, atomic
 * writes, the envelope, storage URIs, error translation and the logger's level check. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zookeeper/zookeeper.h>

#include "common/crc32c.h"
#include "common/envelope.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/ids.h"
#include "common/keygroup.h"
#include "common/log.h"
#include "common/storage.h"
#include "unit.h"

static void test_crc32c_vectors(void) {
        /* RFC 3720 B.4 and the common check value. */
        CHECK_INT(crc32c("123456789", 9), 0xe3069283u);
        unsigned char zeros[32] = {0}, ones[32], inc[32];
        memset(ones, 0xff, sizeof(ones));
        for (int i = 0; i < 32; i++)
                inc[i] = (unsigned char)i;
        CHECK_INT(crc32c(zeros, 32), 0x8a9136aau);
        CHECK_INT(crc32c(ones, 32), 0x62a8ab43u);
        CHECK_INT(crc32c(inc, 32), 0x46dd794eu);
        CHECK_INT(crc32c("", 0), 0);
        /* Extending in pieces equals one pass. */
        const char *text = "The quick brown fox jumps over the lazy dog, many times over.";
        uint32_t whole = crc32c(text, strlen(text));
        uint32_t part = crc32c_extend(crc32c(text, 7), text + 7, strlen(text) - 7);
        CHECK_INT(part, whole);
}

/* Computed in Java with Flink's MathUtils.murmurHash and String.hashCode
 * (KeyGroupRangeAssignment.assignToKeyGroup): key, max parallelism, hashCode,
 * murmurHash, key group. */
static const struct {
        const char *key;
        uint32_t maxp;
        int32_t java_hash;
        int32_t murmur;
        uint32_t kg;
} flink_vectors[] = {
        {"", 128, 0, 593689054, 94},
        {"", 1000, 0, 593689054, 54},
        {"", 32768, 0, 593689054, 31198},
        {"a", 128, 97, 1455541201, 81},
        {"a", 1000, 97, 1455541201, 201},
        {"a", 32768, 97, 1455541201, 19409},
        {"hello", 128, 99162322, 1715862179, 35},
        {"hello", 1000, 99162322, 1715862179, 179},
        {"hello", 32768, 99162322, 1715862179, 31395},
        {"flink", 128, 97520992, 1330823394, 98},
        {"flink", 1000, 97520992, 1330823394, 394},
        {"word42", 128, -782093560, 1035103077, 101},
        {"word42", 32768, -782093560, 1035103077, 27493},
        {"The quick brown fox", 128, -1739336029, 1018809842, 114},
        {"The quick brown fox", 1000, -1739336029, 1018809842, 842},
        {"bigdata111", 128, 1976342823, 1350333874, 50},
        {"bigdata111", 32768, 1976342823, 1350333874, 30130},
};

/* KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex: max parallelism,
 * parallelism, index, start, end (exclusive). */
static const uint32_t flink_ranges[][5] = {
        {128, 2, 0, 0, 64},      {128, 2, 1, 64, 128},    {128, 3, 0, 0, 43},
        {128, 3, 1, 43, 86},     {128, 3, 2, 86, 128},    {128, 4, 3, 96, 128},
        {10, 3, 0, 0, 4},        {10, 3, 1, 4, 7},        {10, 3, 2, 7, 10},
        {32768, 7, 0, 0, 4682},  {32768, 7, 3, 14044, 18725}, {32768, 7, 6, 28087, 32768},
};

static void test_keygroups_flink_vectors(void) {
        for (size_t i = 0; i < sizeof(flink_vectors) / sizeof(flink_vectors[0]); i++) {
                const char *k = flink_vectors[i].key;
                CHECK_INT(hash_java_bytes(k, strlen(k)), flink_vectors[i].java_hash);
                CHECK_INT(hash_flink_murmur(flink_vectors[i].java_hash), flink_vectors[i].murmur);
                CHECK_INT(kg_of_key(k, strlen(k), flink_vectors[i].maxp), flink_vectors[i].kg);
        }
        for (size_t i = 0; i < sizeof(flink_ranges) / sizeof(flink_ranges[0]); i++) {
                struct kg_range r = kg_range_for_operator(flink_ranges[i][0], flink_ranges[i][1],
                                                          flink_ranges[i][2]);
                CHECK_INT(r.start, flink_ranges[i][3]);
                CHECK_INT(r.end, flink_ranges[i][4]);
        }
        /* Every key group is owned by the subtask whose range holds it. */
        const uint32_t maxps[] = {128, 1000, 32768};
        for (size_t m = 0; m < 3; m++)
                for (uint32_t p = 1; p <= 9; p++)
                        for (uint32_t kg = 0; kg < maxps[m]; kg += 7) {
                                uint32_t idx = kg_operator_index(kg, maxps[m], p);
                                struct kg_range r = kg_range_for_operator(maxps[m], p, idx);
                                CHECK(idx < p && kg >= r.start && kg < r.end,
                                      "kg %u max %u p %u: index %u range [%u,%u)", kg, maxps[m],
                                      p, idx, r.start, r.end);
                        }
        CHECK_INT(kg_default_max_parallelism(1), 128);
        CHECK_INT(kg_default_max_parallelism(100), 256);
        CHECK_INT(kg_default_max_parallelism(30000), 32768);
        /* Standard MurmurHash3_x86_32 vectors (SMHasher). */
        CHECK_INT(hash_murmur3_32("", 0, 0), 0);
        CHECK_INT(hash_murmur3_32("", 0, 1), 0x514e28b7u);
        CHECK_INT(hash_murmur3_32("hello", 5, 0), 0x248bfa47u);
        CHECK_INT(hash_murmur3_32("The quick brown fox jumps over the lazy dog", 43, 0x9747b28c),
                  0x2fa826cdu);
}

static void test_ids(void) {
        struct flinc_id a, b;
        char hex[ID_HEX_LEN + 1];
        CHECK_INT(id_generate(&a), 0);
        CHECK_INT(id_generate(&b), 0);
        CHECK(!id_equal(&a, &b), "two random ids are equal");
        id_format(&a, hex);
        CHECK_INT(strlen(hex), 32);
        CHECK_INT(id_parse(hex, &b), 0);
        CHECK(id_equal(&a, &b), "parse(format(id)) != id");
        CHECK_INT(id_parse("A0B1C2D3E4F5061728394a5b6c7d8e9f", &b), 0);
        CHECK_INT(id_parse("a0b1c2d3e4f5061728394a5b6c7d8e9", &b), -EINVAL);
        CHECK_INT(id_parse("a0b1c2d3e4f5061728394a5b6c7d8e9fa", &b), -EINVAL);
        CHECK_INT(id_parse("g0b1c2d3e4f5061728394a5b6c7d8e9f", &b), -EINVAL);
        CHECK_INT(id_parse("", &b), -EINVAL);
}

static char tmpdir[256];

static void read_back(const char *path, const char *expected) {
        char *data = NULL;
        size_t len = 0;
        int r = fs_read_all(path, 1 << 20, &data, &len);
        CHECK_INT(r, 0);
        if (r == 0)
                CHECK_STR(data, expected);
        free(data);
}

static int count_entries(const char *dir) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
        return system(cmd) == 0 ? 1 : 0;
}

static void test_atomic_write(void) {
        char path[300];
        snprintf(path, sizeof(path), "%s/file", tmpdir);
        CHECK_INT(fs_write_atomic(path, "old", 3), 0);
        read_back(path, "old");
        /* A failure after the temporary file is written leaves the old file intact and
         * no temporary file behind. */
        fs_inject_fault("after-temp-write");
        CHECK_INT(fs_write_atomic(path, "new content", 11), -EIO);
        read_back(path, "old");
        CHECK(count_entries(tmpdir), "a temporary file was left in %s", tmpdir);
        fs_inject_fault("before-rename");
        CHECK_INT(fs_write_atomic(path, "new content", 11), -EIO);
        read_back(path, "old");
        CHECK(count_entries(tmpdir), "a temporary file was left in %s", tmpdir);
        CHECK_INT(fs_write_atomic(path, "new", 3), 0);
        read_back(path, "new");
        /* Copy with checksum check. */
        char dst[300];
        snprintf(dst, sizeof(dst), "%s/copy", tmpdir);
        uint32_t crc, bad;
        uint64_t size;
        CHECK_INT(fs_copy_atomic(path, dst, NULL, &crc, &size), 0);
        CHECK_INT(crc, crc32c("new", 3));
        CHECK_INT(size, 3);
        bad = crc ^ 1;
        CHECK_INT(fs_copy_atomic(path, dst, &bad, NULL, NULL), -EBADMSG);
        read_back(dst, "new");
        /* Limits and errors of reads. */
        char *data;
        size_t len;
        CHECK_INT(fs_read_all(path, 2, &data, &len), -EFBIG);
        CHECK_INT(fs_read_all(tmpdir, 100, &data, &len), -EISDIR);
        snprintf(dst, sizeof(dst), "%s/missing", tmpdir);
        CHECK_INT(fs_read_all(dst, 100, &data, &len), -ENOENT);
        snprintf(dst, sizeof(dst), "%s/a/b/c", tmpdir);
        CHECK_INT(fs_mkdir_p(dst, 0755), 0);
        CHECK_INT(fs_mkdir_p(dst, 0755), 0);
        CHECK_INT(fs_mkdir_p(path, 0755), -ENOTDIR);
}

static void test_envelope(void) {
        char *env, *body;
        size_t env_len, body_len;
        uint32_t v;
        char err[256];
        CHECK_INT(envelope_wrap("flinc.test", 2, "payload", 7, &env, &env_len), 0);
        CHECK_INT(envelope_unwrap(env, env_len, "flinc.test", 2, &body, &body_len, &v, err,
                                  sizeof(err)), 0);
        CHECK_INT(body_len, 7);
        CHECK(memcmp(body, "payload", 7) == 0, "body differs");
        CHECK_INT(v, 2);
        free(body);
        CHECK_INT(envelope_unwrap(env, env_len, "flinc.other", 2, &body, &body_len, &v, err,
                                  sizeof(err)), -EMEDIUMTYPE);
        CHECK_CONTAINS(err, "expected 'flinc.other'");
        CHECK_INT(envelope_unwrap(env, env_len, "flinc.test", 1, &body, &body_len, &v, err,
                                  sizeof(err)), -EPROTONOSUPPORT);
        /* Every truncation and every single flipped byte is refused. */
        for (size_t n = 0; n < env_len; n++)
                CHECK_INT(envelope_unwrap(env, n, "flinc.test", 2, &body, &body_len, &v, err,
                                          sizeof(err)), -EBADMSG);
        for (size_t i = 0; i < env_len; i++) {
                env[i] ^= 0x01;
                int r = envelope_unwrap(env, env_len, "flinc.test", 2, &body, &body_len, &v, err,
                                        sizeof(err));
                CHECK(r < 0, "flipped byte %zu accepted", i);
                if (r == 0)
                        free(body);
                env[i] ^= 0x01;
        }
        free(env);
        /* A header that claims 2^28 elements in five bytes is refused before msgpack-c
         * allocates anything for it. */
        static const unsigned char bomb[] = {0xdd, 0x0f, 0xff, 0xff, 0xff};
        CHECK_INT(envelope_unwrap(bomb, sizeof(bomb), "flinc.test", 2, &body, &body_len, &v,
                                  err, sizeof(err)), -EBADMSG);
        CHECK_CONTAINS(err, "larger than");
}

static void test_storage_uri(void) {
        char path[256], err[512];
        CHECK_INT(storage_uri_to_path("file:///var/flinc/ha/", path, sizeof(path), err, sizeof(err)), 0);
        CHECK_STR(path, "/var/flinc/ha");
        CHECK_INT(storage_uri_to_path("/data/chk", path, sizeof(path), err, sizeof(err)), 0);
        CHECK_STR(path, "/data/chk");
        CHECK_INT(storage_uri_to_path("hdfs://bigdata111:9000/flink/ha/", path, sizeof(path), err,
                                      sizeof(err)), -EPROTONOSUPPORT);
        CHECK_CONTAINS(err, "file://");
        CHECK_CONTAINS(err, "shared mount");
        CHECK_INT(storage_uri_to_path("file://host/x", path, sizeof(path), err, sizeof(err)), -EINVAL);
        CHECK_INT(storage_uri_to_path("relative/x", path, sizeof(path), err, sizeof(err)), -EINVAL);
}

static void test_err_translation(void) {
        CHECK_INT(err_from_zk(ZOK), 0);
        CHECK_INT(err_from_zk(ZNONODE), -ENOENT);
        CHECK_INT(err_from_zk(ZBADVERSION), -ESTALE);
        CHECK_INT(err_from_zk(ZCONNECTIONLOSS), -ECONNRESET);
        CHECK_INT(err_from_zk(ZSESSIONEXPIRED), -EKEYEXPIRED);
        CHECK_INT(err_from_zk(ZNODEEXISTS), -EEXIST);
        CHECK_INT(err_from_rocksdb(NULL), 0);
        CHECK_INT(err_from_rocksdb("Corruption: block checksum mismatch in 000012.sst"), -EBADMSG);
        CHECK_INT(err_from_rocksdb("IO error: No such file or directory: /x/CURRENT"), -ENOENT);
        CHECK_INT(err_from_rocksdb("IO error: No space left on device"), -ENOSPC);
        CHECK_INT(err_from_rocksdb("Invalid argument: Column family not found"), -EINVAL);
        CHECK_INT(err_from_rocksdb("NotFound: "), -ENOENT);
        CHECK_INT(err_from_rocksdb("something else"), -EIO);
        CHECK_STR(err_str(-ENOENT), "No such file or directory");
}

static int formatted;

static const char *side_effect(void) {
        formatted++;
        return "x";
}

static void test_log_level_checked_first(void) {
        char path[300];
        snprintf(path, sizeof(path), "%s/log", tmpdir);
        CHECK_INT(log_init("unit", LOG_LEVEL_INFO, path), 0);
        log_debug("not written %s", side_effect());
        CHECK_INT(formatted, 0);
        log_event("+leader-elected", "epoch=%d %s", 7, side_effect());
        CHECK_INT(formatted, 1);
        log_error(-ENOENT, "open of %s failed", "chk-3");
        log_finish();
        char *data;
        size_t len;
        CHECK_INT(fs_read_all(path, 1 << 16, &data, &len), 0);
        CHECK_CONTAINS(data, "INFO  unit[");
        CHECK_CONTAINS(data, "+leader-elected epoch=7 x\n");
        CHECK_CONTAINS(data, "ERROR unit[");
        CHECK_CONTAINS(data, "open of chk-3 failed: No such file or directory\n");
        CHECK(!strstr(data, "not written"), "a debug line was written at info level");
        free(data);
        enum log_level l;
        CHECK_INT(log_parse_level("DEBUG", &l), 0);
        CHECK_INT(l, LOG_LEVEL_DEBUG);
        CHECK_INT(log_parse_level("verbose", &l), -EINVAL);
}

int main(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/flinc-unit-XXXXXX");
        if (!mkdtemp(tmpdir))
                return EXIT_FAILURE;
        RUN(test_crc32c_vectors);
        RUN(test_keygroups_flink_vectors);
        RUN(test_ids);
        RUN(test_atomic_write);
        RUN(test_envelope);
        RUN(test_storage_uri);
        RUN(test_err_translation);
        RUN(test_log_level_checked_first);
        fs_rm_rf(tmpdir);
        return unit_done();
}
