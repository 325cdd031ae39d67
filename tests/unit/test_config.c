/* Unit tests of common/config: every error path with its message, every duration and
 * memory-size form, old names and ignored JVM keys, the classic Flink HA tutorial's
 * flink-conf.yaml (refused for its hdfs:// URIs, loaded once they are file://), and the
 * shipped conf/flinc-conf.yaml. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "unit.h"

static char errbuf[2048];

/* Loads text named "t.yaml"; returns the cfg or NULL (then errbuf holds the message). */
static struct cfg *load(const char *text, int *ret_r) {
        struct cfg *c = NULL;
        errbuf[0] = '\0';
        int r = cfg_load_string("t.yaml", text, strlen(text), &c, errbuf, sizeof(errbuf));
        if (ret_r)
                *ret_r = r;
        return r == 0 ? c : NULL;
}

/* The text must fail to load with exactly this message. */
#define CHECK_LOAD_ERROR(text, message)                                                 \
        do {                                                                            \
                int r_;                                                                 \
                struct cfg *c_ = load((text), &r_);                                     \
                CHECK(c_ == NULL && r_ == -EINVAL, "expected -EINVAL, seen %d", r_);    \
                CHECK_STR(errbuf, (message));                                           \
                cfg_free(c_);                                                           \
        } while (0)

/* The text must fail to load with a message containing the fragment. */
#define CHECK_LOAD_ERROR_CONTAINS(text, fragment)                                       \
        do {                                                                            \
                int r_;                                                                 \
                struct cfg *c_ = load((text), &r_);                                     \
                CHECK(c_ == NULL && r_ == -EINVAL, "expected -EINVAL, seen %d", r_);    \
                CHECK_CONTAINS(errbuf, (fragment));                                     \
                cfg_free(c_);                                                           \
        } while (0)

static bool has_warning(const struct cfg *c, const char *fragment) {
        for (size_t i = 0; i < cfg_warning_count(c); i++)
                if (strstr(cfg_warning(c, i), fragment))
                        return true;
        return false;
}

#define CHECK_WARNING(c, fragment)                                                      \
        CHECK(has_warning((c), (fragment)), "expected a warning containing \"%s\", seen %zu " \
              "warnings, first \"%s\"", (fragment), cfg_warning_count(c),               \
              cfg_warning_count(c) ? cfg_warning((c), 0) : "")

static void test_defaults(void) {
        struct cfg *c = cfg_new_defaults();
        CHECK(c != NULL, "cfg_new_defaults returned NULL: a default in CFG_KEYS does not parse");
        if (!c)
                return;
        CHECK_STR(cfg_string(c, CFG_HIGH_AVAILABILITY), "NONE");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_QUORUM), "");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_PATH_ROOT), "/flinc");
        CHECK_STR(cfg_string(c, CFG_HA_CLUSTER_ID), "default");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_ACL), "open");
        CHECK_STR(cfg_string(c, CFG_HA_JOBMANAGER_PORT), "0");
        CHECK_INT(cfg_int(c, CFG_HA_ZK_SESSION_TIMEOUT), 60000);
        CHECK_INT(cfg_int(c, CFG_HA_ZK_CONNECTION_TIMEOUT), 15000);
        CHECK_INT(cfg_int(c, CFG_HA_ZK_RETRY_WAIT), 5000);
        CHECK_INT(cfg_int(c, CFG_HA_ZK_MAX_RETRY_ATTEMPTS), 3);
        CHECK_INT(cfg_int(c, CFG_JOBMANAGER_RPC_PORT), 6123);
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8081);
        CHECK_INT(cfg_int(c, CFG_REST_MAX_CONTENT_LENGTH), 104857600);
        CHECK_INT(cfg_int(c, CFG_PEKKO_FRAMESIZE), 10485760);
        CHECK_INT(cfg_int(c, CFG_JOBSTORE_EXPIRATION_TIME), 3600 * 1000);
        CHECK_INT(cfg_int(c, CFG_TM_NUMBER_OF_TASK_SLOTS), 1);
        CHECK_INT(cfg_int(c, CFG_PARALLELISM_DEFAULT), 1);
        CHECK_INT(cfg_int(c, CFG_PIPELINE_MAX_PARALLELISM), -1);
        CHECK_INT(cfg_int(c, CFG_EXECUTION_BUFFER_TIMEOUT), 100);
        CHECK_STR(cfg_string(c, CFG_RESTART_STRATEGY), "fixed-delay");
        CHECK_INT(cfg_int(c, CFG_RESTART_FIXED_DELAY_ATTEMPTS), 2147483647);
        CHECK_INT(cfg_int(c, CFG_RESTART_FIXED_DELAY_DELAY), 1000);
        CHECK_INT(cfg_int(c, CFG_HEARTBEAT_INTERVAL), 10000);
        CHECK_INT(cfg_int(c, CFG_HEARTBEAT_TIMEOUT), 50000);
        CHECK_INT(cfg_int(c, CFG_CHECKPOINTING_INTERVAL), 0);
        CHECK_INT(cfg_int(c, CFG_CHECKPOINTING_TIMEOUT), 600000);
        CHECK_INT(cfg_int(c, CFG_CHECKPOINTING_MIN_PAUSE), 0);
        CHECK_INT(cfg_int(c, CFG_CHECKPOINTING_MAX_CONCURRENT), 1);
        CHECK_STR(cfg_string(c, CFG_CHECKPOINTING_MODE), "EXACTLY_ONCE");
        CHECK_STR(cfg_string(c, CFG_STATE_BACKEND), "rocksdb");
        CHECK(cfg_bool(c, CFG_STATE_BACKEND_INCREMENTAL), "expected incremental true, seen false");
        CHECK_INT(cfg_int(c, CFG_STATE_CHECKPOINTS_NUM_RETAINED), 1);
        CHECK_INT(cfg_int(c, CFG_ROCKSDB_MEMORY_FIXED_PER_TM), 256 << 20);
        CHECK(cfg_double(c, CFG_ROCKSDB_WRITE_BUFFER_RATIO) == 0.5, "expected 0.5, seen %g",
              cfg_double(c, CFG_ROCKSDB_WRITE_BUFFER_RATIO));
        CHECK_STR(cfg_string(c, CFG_IO_TMP_DIRS), "/tmp");
        CHECK_STR(cfg_string(c, CFG_ENV_PID_DIR), "/tmp");
        CHECK_STR(cfg_string(c, CFG_ENV_LOG_DIR), "");
        CHECK_STR(cfg_string(c, CFG_ENV_LOG_LEVEL), "info");
        for (size_t k = 0; k < cfg_key_count(); k++)
                CHECK(!cfg_is_set(c, (enum cfg_key)k), "%s is set in the defaults",
                      cfg_key_name((enum cfg_key)k));
        CHECK_INT(cfg_warning_count(c), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);
        cfg_free(c);
        cfg_free(NULL);
}

/* The table itself: unique names, a doc line each, lookups, and every value's text read
 * back by cfg_set to the same text. */
static void test_table_and_round_trip(void) {
        struct cfg *c = cfg_new_defaults(), *d = cfg_new_defaults();
        CHECK_INT(cfg_key_count(), CFG__MAX);
        for (size_t k = 0; k < cfg_key_count(); k++) {
                const char *name = cfg_key_name((enum cfg_key)k);
                CHECK(name && name[0], "key %zu has no name", k);
                CHECK(cfg_key_doc((enum cfg_key)k) && cfg_key_doc((enum cfg_key)k)[0],
                      "%s has no doc line", name);
                enum cfg_key found = CFG__MAX;
                CHECK_INT(cfg_key_find(name, &found), 0);
                CHECK_INT(found, k);
                for (size_t j = 0; j < k; j++)
                        CHECK(strcmp(name, cfg_key_name((enum cfg_key)j)) != 0,
                              "%s appears twice in the table", name);

                char text[4200], again[4200];
                CHECK_INT(cfg_value_text(c, (enum cfg_key)k, text, sizeof(text)), 0);
                int r = cfg_set(d, name, text, errbuf, sizeof(errbuf));
                CHECK(r == 0, "%s: default text '%s' does not read back: %s", name, text, errbuf);
                CHECK_INT(cfg_value_text(d, (enum cfg_key)k, again, sizeof(again)), 0);
                CHECK_STR(again, text);
        }
        enum cfg_key untouched = CFG_REST_PORT;
        CHECK_INT(cfg_key_find("rest.prot", &untouched), -ENOENT);
        CHECK_INT(untouched, CFG_REST_PORT);
        CHECK(cfg_key_name(CFG__MAX) == NULL, "expected NULL for a key out of range");

        char small[4];
        CHECK_INT(cfg_value_text(c, CFG_REST_MAX_CONTENT_LENGTH, small, sizeof(small)), -ENOSPC);
        CHECK_STR(small, "100");
        CHECK_INT(cfg_value_text(c, CFG__MAX, small, sizeof(small)), -EINVAL);

        char text[64];
        cfg_value_text(c, CFG_HA_ZK_SESSION_TIMEOUT, text, sizeof(text));
        CHECK_STR(text, "1 min");
        cfg_value_text(c, CFG_ROCKSDB_MEMORY_FIXED_PER_TM, text, sizeof(text));
        CHECK_STR(text, "256 mb");
        cfg_value_text(c, CFG_PEKKO_FRAMESIZE, text, sizeof(text));
        CHECK_STR(text, "10 mb");
        cfg_value_text(c, CFG_CHECKPOINTING_INTERVAL, text, sizeof(text));
        CHECK_STR(text, "0 ms");
        cfg_value_text(c, CFG_JOBSTORE_EXPIRATION_TIME, text, sizeof(text));
        CHECK_STR(text, "1 h");
        cfg_value_text(c, CFG_ROCKSDB_WRITE_BUFFER_RATIO, text, sizeof(text));
        CHECK_STR(text, "0.5");
        cfg_free(c);
        cfg_free(d);
}

static void test_duration_forms(void) {
        static const struct {
                const char *text;
                int64_t ms;
        } ok[] = {
                {"2000", 2000}, {"0", 0}, {"60 s", 60000}, {"60s", 60000}, {"1 min", 60000},
                {"1min", 60000}, {"1 m", 60000}, {"500 ms", 500}, {"500ms", 500},
                {"2 h", 7200000}, {"1 d", 86400000}, {"1d", 86400000}, {"2 days", 172800000},
                {"1 day", 86400000}, {"3 hours", 10800000}, {"1 hour", 3600000},
                {"5 minutes", 300000}, {"1 minute", 60000}, {"10 seconds", 10000},
                {"1 second", 1000}, {"7 sec", 7000}, {"7 secs", 7000}, {"3 milli", 3},
                {"3 millis", 3}, {"3 millisecond", 3}, {"3 milliseconds", 3},
                {"1500 us", 1}, {"2000 \xc2\xb5s", 2}, {"3000000 micros", 3000},
                {"1 microsecond", 0}, {"5000000 ns", 5}, {"999999 ns", 0},
                {"2000000 nanos", 2}, {"7 nanoseconds", 0}, {"1 nano", 0},
                {"60 S", 60000}, {"1 MIN", 60000}, {"2 H", 7200000}, {"1 Day", 86400000},
                {"  10 s  ", 10000}, {"10 \t s", 10000}, {"0 ms", 0},
                {"9223372036854775807", INT64_MAX}, {"106751991167 d", 106751991167LL * 86400000},
        };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                int64_t ms = -7;
                int r = cfg_parse_duration_ms(ok[i].text, &ms);
                CHECK(r == 0 && ms == ok[i].ms, "'%s': expected 0 and %lld ms, seen %d and %lld",
                      ok[i].text, (long long)ok[i].ms, r, (long long)ms);
        }
        static const struct {
                const char *text;
                int r;
        } bad[] = {
                {"", -EINVAL}, {"   ", -EINVAL}, {"s", -EINVAL}, {"-1 s", -EINVAL},
                {"+1 s", -EINVAL}, {"1.5 s", -EINVAL}, {"1 parsec", -EINVAL},
                {"1 s x", -EINVAL}, {"1 s 2 s", -EINVAL}, {"1 mins", -EINVAL},
                {"1 hr", -EINVAL}, {"1 w", -EINVAL}, {"0x10", -EINVAL},
                {"9223372036854775808", -ERANGE}, {"99999999999999999999 ms", -ERANGE},
                {"106751991168 d", -ERANGE}, {"9223372036854776 s", -ERANGE},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t ms = -7;
                int r = cfg_parse_duration_ms(bad[i].text, &ms);
                CHECK(r == bad[i].r && ms == -7, "'%s': expected %d and untouched, seen %d, %lld",
                      bad[i].text, bad[i].r, r, (long long)ms);
        }
}

static void test_size_forms(void) {
        static const struct {
                const char *text;
                int64_t bytes;
        } ok[] = {
                {"1024", 1024}, {"0", 0}, {"1024m", 1024LL << 20}, {"1024 mb", 1024LL << 20},
                {"1 gb", 1LL << 30}, {"64kb", 64 << 10}, {"10485760b", 10485760},
                {"1 GB", 1LL << 30}, {"1 Gb", 1LL << 30}, {"256 MB", 256 << 20},
                {"3 k", 3 << 10}, {"3 K", 3 << 10}, {"2 g", 2LL << 30}, {"2 t", 2LL << 40},
                {"2 tb", 2LL << 40}, {"7 bytes", 7}, {"7 b", 7}, {"1 kibibytes", 1024},
                {"1 mebibytes", 1 << 20}, {"1 gibibytes", 1LL << 30},
                {"1 tebibytes", 1LL << 40}, {"  5 mb  ", 5 << 20},
                {"8388607 tb", 8388607LL << 40},
        };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                int64_t b = -7;
                int r = cfg_parse_size_bytes(ok[i].text, &b);
                CHECK(r == 0 && b == ok[i].bytes, "'%s': expected 0 and %lld bytes, seen %d and %lld",
                      ok[i].text, (long long)ok[i].bytes, r, (long long)b);
        }
        static const struct {
                const char *text;
                int r;
        } bad[] = {
                {"", -EINVAL}, {"mb", -EINVAL}, {"1.5 mb", -EINVAL}, {"-1", -EINVAL},
                {"1 pb", -EINVAL}, {"1 kib", -EINVAL}, {"1 megabytes", -EINVAL},
                {"1 mb 2", -EINVAL}, {"8388608 tb", -ERANGE},
                {"99999999999999999999", -ERANGE},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t b = -7;
                int r = cfg_parse_size_bytes(bad[i].text, &b);
                CHECK(r == bad[i].r && b == -7, "'%s': expected %d and untouched, seen %d, %lld",
                      bad[i].text, bad[i].r, r, (long long)b);
        }
}

static void test_values_in_file(void) {
        int r;
        struct cfg *c = load("# a comment\n"
                             "\n"
                             "rest.port: 8082   # trailing comment\n"
                             "high-availability: ZooKeeper\n"
                             "high-availability.zookeeper.quorum: h1:2181, h2:2181 ,[::1]:2181\n"
                             "high-availability.cluster-id: /prod\n"
                             "high-availability.jobmanager.port: 50100,50200,50300-50400\n"
                             "heartbeat.timeout: \"2 min\"\n"
                             "jobstore.expiration-time: 60\n"
                             "execution.checkpointing.interval: 10s\n"
                             "state.backend: RocksDB\n"
                             "state.backend.incremental: FALSE\n"
                             "state.backend.rocksdb.memory.write-buffer-ratio: 0.25\n"
                             "pipeline.max-parallelism: 128\n"
                             "restart-strategy: off\n"
                             "rest.address:\n"
                             "rest.bind-address: '::'\n"
                             "taskmanager.host: 10.0.0.7\n"
                             "state.checkpoints.dir: /shared/chk\n"
                             "high-availability.zookeeper.auth.digest: flinc:s3cret\n"
                             "env.log.level: WARNING\n",
                             &r);
        CHECK(c != NULL, "expected the file to load, seen %d: %s", r, errbuf);
        if (!c)
                return;
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8082);
        CHECK_STR(cfg_string(c, CFG_HIGH_AVAILABILITY), "zookeeper");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_QUORUM), "h1:2181,h2:2181,[::1]:2181");
        CHECK_STR(cfg_string(c, CFG_HA_CLUSTER_ID), "prod");
        CHECK_STR(cfg_string(c, CFG_HA_JOBMANAGER_PORT), "50100,50200,50300-50400");
        CHECK_INT(cfg_int(c, CFG_HEARTBEAT_TIMEOUT), 120000);
        CHECK_INT(cfg_int(c, CFG_JOBSTORE_EXPIRATION_TIME), 60000);
        CHECK_INT(cfg_int(c, CFG_CHECKPOINTING_INTERVAL), 10000);
        CHECK_STR(cfg_string(c, CFG_STATE_BACKEND), "rocksdb");
        CHECK(!cfg_bool(c, CFG_STATE_BACKEND_INCREMENTAL), "expected incremental false");
        CHECK(cfg_double(c, CFG_ROCKSDB_WRITE_BUFFER_RATIO) == 0.25, "expected 0.25, seen %g",
              cfg_double(c, CFG_ROCKSDB_WRITE_BUFFER_RATIO));
        CHECK_INT(cfg_int(c, CFG_PIPELINE_MAX_PARALLELISM), 128);
        CHECK_STR(cfg_string(c, CFG_RESTART_STRATEGY), "none");
        CHECK_STR(cfg_string(c, CFG_REST_ADDRESS), "");
        CHECK(cfg_is_set(c, CFG_REST_ADDRESS), "an empty value still counts as set");
        CHECK_STR(cfg_string(c, CFG_REST_BIND_ADDRESS), "::");
        CHECK_STR(cfg_string(c, CFG_TM_HOST), "10.0.0.7");
        CHECK_STR(cfg_string(c, CFG_STATE_CHECKPOINTS_DIR), "/shared/chk");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_AUTH_DIGEST), "flinc:s3cret");
        CHECK_STR(cfg_string(c, CFG_ENV_LOG_LEVEL), "warn");
        CHECK(cfg_is_set(c, CFG_REST_PORT) && !cfg_is_set(c, CFG_JOBMANAGER_RPC_PORT),
              "expected rest.port set and jobmanager.rpc.port not");
        char text[64];
        cfg_value_text(c, CFG_HA_ZK_AUTH_DIGEST, text, sizeof(text));
        CHECK_STR(text, "******");
        CHECK_INT(cfg_warning_count(c), 0);
        cfg_free(c);

        /* Documents that mean "nothing set". */
        static const char *const empty[] = {"", "\n\n", "# only a comment\n", "---\n",
                                            "--- ~\n", "---\n...\n", "{}\n"};
        for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
                c = load(empty[i], &r);
                CHECK(c != NULL, "'%s': expected defaults, seen %d: %s", empty[i], r, errbuf);
                if (c)
                        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8081);
                cfg_free(c);
        }
        /* A flow mapping is a mapping too. */
        c = load("{rest.port: 9000, parallelism.default: 4}", &r);
        CHECK(c != NULL, "expected a flow mapping to load, seen %d: %s", r, errbuf);
        if (c)
                CHECK_INT(cfg_int(c, CFG_PARALLELISM_DEFAULT), 4);
        cfg_free(c);
        /* Windows line ends. */
        c = load("rest.port: 9001\r\nparallelism.default: 3\r\n", &r);
        CHECK(c != NULL, "expected CRLF lines to load, seen %d: %s", r, errbuf);
        if (c)
                CHECK_INT(cfg_int(c, CFG_REST_PORT), 9001);
        cfg_free(c);
}

static void test_key_errors(void) {
        CHECK_LOAD_ERROR("# x\nrest.prot: 8081\n",
                         "t.yaml:2: unknown key 'rest.prot'; did you mean 'rest.port'?");
        CHECK_LOAD_ERROR("REST.PORT: 8081\n",
                         "t.yaml:1: unknown key 'REST.PORT'; did you mean 'rest.port'?");
        CHECK_LOAD_ERROR("taskmanager.numberOfTaskSlot: 2\n",
                         "t.yaml:1: unknown key 'taskmanager.numberOfTaskSlot'; did you mean "
                         "'taskmanager.numberOfTaskSlots'?");
        CHECK_LOAD_ERROR("jobmanager.web.prt: 1\n",
                         "t.yaml:1: unknown key 'jobmanager.web.prt'; did you mean "
                         "'jobmanager.web.port'?");
        CHECK_LOAD_ERROR("totally.unknown.key: 1\n", "t.yaml:1: unknown key 'totally.unknown.key'");
        CHECK_LOAD_ERROR("rest.port: 1\n# c\nrest.port: 2\n",
                         "t.yaml:3: rest.port: duplicate key (first at line 1)");
        CHECK_LOAD_ERROR("rest.port: 1\njobmanager.web.port: 2\n",
                         "t.yaml:2: jobmanager.web.port: duplicate key: sets rest.port, already "
                         "set as rest.port at line 1");
        CHECK_LOAD_ERROR("web.port: 1\njobmanager.web.port: 2\n",
                         "t.yaml:2: jobmanager.web.port: duplicate key: sets rest.port, already "
                         "set as web.port at line 1");
        CHECK_LOAD_ERROR("state.backend.fs.checkpointdir: file:///a\n"
                         "state.checkpoints.dir: file:///b\n",
                         "t.yaml:2: state.checkpoints.dir: duplicate key: sets "
                         "state.checkpoints.dir, already set as state.backend.fs.checkpointdir "
                         "at line 1");
        CHECK_LOAD_ERROR("env.java.opts: -Xmx1g\nenv.java.opts: -Xmx2g\n",
                         "t.yaml:2: env.java.opts: duplicate key (first at line 1)");

        char longkey[400];
        memset(longkey, 'k', 300);
        snprintf(longkey + 300, sizeof(longkey) - 300, ": 1\n");
        CHECK_LOAD_ERROR(longkey, "t.yaml:1: key longer than 256 bytes");
        CHECK_LOAD_ERROR("\"\": 1\n", "t.yaml:1: empty key or NUL byte in key");
        CHECK_LOAD_ERROR("\"rest\\0port\": 1\n", "t.yaml:1: empty key or NUL byte in key");
        CHECK_LOAD_ERROR("? [a, b]\n: c\n", "t.yaml:1: a key must be a plain name, found a list");
        CHECK_LOAD_ERROR("? {a: b}\n: c\n",
                         "t.yaml:1: a key must be a plain name, found a nested mapping");
}

static void test_value_errors(void) {
        CHECK_LOAD_ERROR("# one\n# two\nrest.port: abc\n",
                         "t.yaml:3: rest.port: 'abc' is not an integer (expected 0..65535)");
        CHECK_LOAD_ERROR("rest.port: 70000\n",
                         "t.yaml:1: rest.port: '70000' is out of range (expected 0..65535)");
        CHECK_LOAD_ERROR("rest.port: -1\n",
                         "t.yaml:1: rest.port: '-1' is out of range (expected 0..65535)");
        CHECK_LOAD_ERROR("rest.port: 99999999999999999999999\n",
                         "t.yaml:1: rest.port: '99999999999999999999999' is out of range "
                         "(expected 0..65535)");
        CHECK_LOAD_ERROR("rest.port: 80.5\n",
                         "t.yaml:1: rest.port: '80.5' is not an integer (expected 0..65535)");
        CHECK_LOAD_ERROR("rest.port:\n",
                         "t.yaml:1: rest.port: '' is not an integer (expected 0..65535)");
        CHECK_LOAD_ERROR("taskmanager.numberOfTaskSlots: 0\n",
                         "t.yaml:1: taskmanager.numberOfTaskSlots: '0' is out of range "
                         "(expected 1..1024)");
        CHECK_LOAD_ERROR("pipeline.max-parallelism: 0\n",
                         "t.yaml:1: pipeline.max-parallelism: '0' is out of range (expected -1 "
                         "or 1..32768)");
        CHECK_LOAD_ERROR("state.backend.incremental: yes\n",
                         "t.yaml:1: state.backend.incremental: 'yes' is not a boolean (expected "
                         "true or false)");
        CHECK_LOAD_ERROR("heartbeat.interval: 5 parsecs\n",
                         "t.yaml:1: heartbeat.interval: '5 parsecs' is not a duration (expected "
                         "a number and a unit: ms, s, min, h, d (also ns, us); a bare number "
                         "means ms; range 1 ms..1 h)");
        CHECK_LOAD_ERROR("jobstore.expiration-time: 1 fortnight\n",
                         "t.yaml:1: jobstore.expiration-time: '1 fortnight' is not a duration "
                         "(expected a number and a unit: ms, s, min, h, d (also ns, us); a bare "
                         "number means seconds; range 1 s..365 d)");
        CHECK_LOAD_ERROR("high-availability.zookeeper.client.session-timeout: 500 ms\n",
                         "t.yaml:1: high-availability.zookeeper.client.session-timeout: '500 "
                         "ms' is out of range (expected 1 s..1 d)");
        CHECK_LOAD_ERROR("heartbeat.interval: 99999999999999999999 d\n",
                         "t.yaml:1: heartbeat.interval: '99999999999999999999 d' is out of "
                         "range (expected 1 ms..1 h)");
        CHECK_LOAD_ERROR("pekko.framesize: 10 furlongs\n",
                         "t.yaml:1: pekko.framesize: '10 furlongs' is not a memory size "
                         "(expected a number and a unit: b, kb, mb, gb, tb; a bare number means "
                         "bytes; range 1 kb..1 gb)");
        CHECK_LOAD_ERROR("pekko.framesize: 2 gb\n",
                         "t.yaml:1: pekko.framesize: '2 gb' is out of range (expected 1 kb..1 "
                         "gb)");
        CHECK_LOAD_ERROR("high-availability: kubernetes\n",
                         "t.yaml:1: high-availability: 'kubernetes' is not allowed (expected "
                         "one of: NONE, zookeeper)");
        CHECK_LOAD_ERROR("restart-strategy: failure-rate\n",
                         "t.yaml:1: restart-strategy: 'failure-rate' is not allowed (expected "
                         "one of: none, fixed-delay (also off, disable, fixeddelay))");
        CHECK_LOAD_ERROR("state.backend: memory\n",
                         "t.yaml:1: state.backend: 'memory' is not allowed (expected one of: "
                         "rocksdb, hashmap (also filesystem, jobmanager))");
        CHECK_LOAD_ERROR("state.backend.rocksdb.memory.write-buffer-ratio: 1\n",
                         "t.yaml:1: state.backend.rocksdb.memory.write-buffer-ratio: '1' is out "
                         "of range (expected a number between 0 and 1, both excluded)");
        CHECK_LOAD_ERROR("state.backend.rocksdb.memory.write-buffer-ratio: half\n",
                         "t.yaml:1: state.backend.rocksdb.memory.write-buffer-ratio: 'half' is "
                         "not a number (expected a number between 0 and 1, both excluded)");
        CHECK_LOAD_ERROR("state.backend.rocksdb.memory.write-buffer-ratio: nan\n",
                         "t.yaml:1: state.backend.rocksdb.memory.write-buffer-ratio: 'nan' is "
                         "not a number (expected a number between 0 and 1, both excluded)");
        CHECK_LOAD_ERROR("high-availability.jobmanager.port: 50025-50000\n",
                         "t.yaml:1: high-availability.jobmanager.port: '50025-50000' is not a "
                         "port or port range (expected a port 0..65535, a range like "
                         "50000-50025, or a comma list of them)");
        CHECK_LOAD_ERROR_CONTAINS("taskmanager.rpc.port: 70000\n", "'70000' is not a port");
        CHECK_LOAD_ERROR_CONTAINS("taskmanager.rpc.port: 1,,2\n", "'1,,2' is not a port");
        CHECK_LOAD_ERROR("high-availability.zookeeper.path.root: flinc\n",
                         "t.yaml:1: high-availability.zookeeper.path.root: 'flinc' is not a "
                         "ZooKeeper path (expected an absolute path like /flinc of letters, "
                         "digits, '.', '_', '-', no trailing '/')");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.path.root: /flinc/\n",
                                  "'/flinc/' is not a ZooKeeper path");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.path.root: /a/../b\n",
                                  "'/a/../b' is not a ZooKeeper path");
        CHECK_LOAD_ERROR("high-availability.cluster-id: a/b\n",
                         "t.yaml:1: high-availability.cluster-id: 'a/b' is not a valid name "
                         "(expected 1 to 128 letters, digits, '.', '_', '-')");
        CHECK_LOAD_ERROR("rest.address: bad host\n",
                         "t.yaml:1: rest.address: 'bad host' is not a host name or IP address");
        CHECK_LOAD_ERROR("taskmanager.host: -lead.example\n",
                         "t.yaml:1: taskmanager.host: '-lead.example' is not a host name or IP "
                         "address");
        CHECK_LOAD_ERROR("high-availability.zookeeper.quorum: h1:2181,h2\n",
                         "t.yaml:1: high-availability.zookeeper.quorum: 'h1:2181,h2' is not a "
                         "host:port list: 'h2' has no port (expected host:port) (expected "
                         "host:port[,host:port...])");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.quorum: h1:2181/chroot\n",
                                  "has a chroot suffix '/chroot'; set "
                                  "high-availability.zookeeper.path.root instead");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.quorum: h1:99999\n",
                                  "bad port '99999' (expected 1..65535)");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.quorum: h1:2181,,h2:2181\n",
                                  "has an empty entry");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.zookeeper.quorum: ::1:2181\n",
                                  "write an IPv6 address in brackets");

        /* The password is never echoed. */
        int r;
        struct cfg *c = load("high-availability.zookeeper.auth.digest: hunter2\n", &r);
        CHECK(c == NULL && r == -EINVAL, "expected -EINVAL, seen %d", r);
        CHECK_STR(errbuf, "t.yaml:1: high-availability.zookeeper.auth.digest: value is not in "
                          "the form user:password (not shown here)");
        CHECK(!strstr(errbuf, "hunter2"), "the message shows the secret: %s", errbuf);

        /* Control characters, length, truncation in messages. */
        CHECK_LOAD_ERROR("rest.address: \"a\\nb\"\n",
                         "t.yaml:1: rest.address: value holds a line break or control character "
                         "(byte 1)");
        CHECK_LOAD_ERROR("env.log.dir: |\n  /a\n  /b\n",
                         "t.yaml:1: env.log.dir: value holds a line break or control character "
                         "(byte 2)");
        char *big = malloc(5000 + 64);
        strcpy(big, "env.log.dir: /");
        memset(big + strlen(big), 'x', 4200);
        big[14 + 4200] = '\0';
        strcat(big, "\n");
        CHECK_LOAD_ERROR(big, "t.yaml:1: env.log.dir: value is longer than 4096 bytes");
        strcpy(big, "rest.port: ");
        memset(big + strlen(big), '9', 300);
        big[11 + 300] = '\0';
        strcat(big, "x\n");
        c = load(big, &r);
        CHECK(c == NULL && r == -EINVAL, "expected -EINVAL, seen %d", r);
        CHECK_CONTAINS(errbuf, "t.yaml:1: rest.port: '9999999999");
        CHECK_CONTAINS(errbuf, "999...' is not an integer (expected 0..65535)");
        CHECK(strlen(errbuf) < 200, "expected the value cut in the message, seen %zu bytes",
              strlen(errbuf));
        free(big);
}

static void test_uri_values(void) {
        CHECK_LOAD_ERROR("state.checkpoints.dir: hdfs://namenode:9000/flink/chk\n",
                         "t.yaml:1: state.checkpoints.dir: 'hdfs://namenode:9000/flink/chk': "
                         "scheme 'hdfs://' is not supported: flinc stores files through file:// "
                         "only; put the directory on a shared mount (NFS, CephFS) and use "
                         "file:///mount/path");
        CHECK_LOAD_ERROR_CONTAINS("state.savepoints.dir: s3://bucket/sp\n",
                                  "t.yaml:1: state.savepoints.dir: 's3://bucket/sp': scheme "
                                  "'s3://' is not supported");
        CHECK_LOAD_ERROR("high-availability.storageDir: ha/dir\n",
                         "t.yaml:1: high-availability.storageDir: 'ha/dir': 'ha/dir' is not "
                         "absolute; expected file:///absolute/path");
        CHECK_LOAD_ERROR_CONTAINS("high-availability.storageDir: file://ha/dir\n",
                                  "names a host; expected file:///absolute/path");
        int r;
        struct cfg *c = load("high-availability.storageDir: file:///shared/ha/\n"
                             "state.checkpoints.dir: file:///shared/chk\n",
                             &r);
        CHECK(c != NULL, "expected file:// URIs to load, seen %d: %s", r, errbuf);
        if (c) {
                CHECK_STR(cfg_string(c, CFG_HA_STORAGE_DIR), "file:///shared/ha/");
                CHECK_STR(cfg_string(c, CFG_STATE_CHECKPOINTS_DIR), "file:///shared/chk");
        }
        cfg_free(c);
}

static void test_yaml_shape_errors(void) {
        CHECK_LOAD_ERROR("rest:\n  port: 8081\n",
                         "t.yaml:1: rest: the value is a nested mapping; flinc reads flat 'key: "
                         "value' lines (write nested keys joined by '.', lists as one "
                         "comma-separated value)");
        CHECK_LOAD_ERROR_CONTAINS("rest.port: 8081\nio.tmp.dirs:\n  - /a\n  - /b\n",
                                  "t.yaml:2: io.tmp.dirs: the value is a list; flinc reads flat");
        CHECK_LOAD_ERROR_CONTAINS("io.tmp.dirs: [/a, /b]\n", "t.yaml:1: io.tmp.dirs: the value is a list");
        CHECK_LOAD_ERROR_CONTAINS("rest.port: &p 8081\njobmanager.rpc.port: *p\n",
                                  "t.yaml:2: jobmanager.rpc.port: the value is an alias");
        CHECK_LOAD_ERROR("- a\n- b\n",
                         "t.yaml:1: the top level must be a mapping of 'key: value' lines, found "
                         "a list");
        CHECK_LOAD_ERROR("hello\n",
                         "t.yaml:1: the top level must be a mapping of 'key: value' lines, found "
                         "a scalar (is a space missing after a ':'?)");
        CHECK_LOAD_ERROR("rest.port:8081\n",
                         "t.yaml:1: the top level must be a mapping of 'key: value' lines, found "
                         "a scalar (is a space missing after a ':'?)");
        CHECK_LOAD_ERROR("rest.port: 1\nparallelism.default:2\nrest.address: x\n",
                         "t.yaml:2: invalid YAML: a line that is not 'key: value' (could not "
                         "find expected ':'; write a space after the colon)");
        CHECK_LOAD_ERROR("rest.port: 1\n---\nrest.port: 2\n",
                         "t.yaml:2: a second YAML document ('---'); flinc reads one");
        /* Invalid YAML: libyaml's text and the line. */
        CHECK_LOAD_ERROR("rest.port: 8081\nparallelism.default: 1: 2\n",
                         "t.yaml:2: invalid YAML: mapping values are not allowed in this "
                         "context");
        CHECK_LOAD_ERROR("rest.port: 8081\n\tparallelism.default: 1\n",
                         "t.yaml:2: invalid YAML: found a tab character that violates "
                         "indentation while scanning a plain scalar (started at line 1)");
        CHECK_LOAD_ERROR("rest.port: 8081\nrest.address: \"unterminated\n\n",
                         "t.yaml:4: invalid YAML: found unexpected end of stream while scanning "
                         "a quoted scalar (started at line 2)");
        CHECK_LOAD_ERROR("rest.port: 1\n]\n",
                         "t.yaml:2: invalid YAML: did not find expected key while parsing a "
                         "block mapping (started at line 1)");
        CHECK_LOAD_ERROR("rest.port: 1\nrest.address: @x\n",
                         "t.yaml:2: invalid YAML: found character that cannot start any token "
                         "while scanning for the next token");
        CHECK_LOAD_ERROR("rest.port: 1\n%YAML 1.1\n",
                         "t.yaml:3: invalid YAML: did not find expected <document start>");
        /* An indented line continues the value above it (a YAML plain scalar). */
        CHECK_LOAD_ERROR("rest.port: 1\n  parallelism.default: 2\n",
                         "t.yaml:1: rest.port: '1 parallelism.default' is not an integer "
                         "(expected 0..65535)");
}

static void test_size_limit(void) {
        size_t len = CFG_MAX_FILE_BYTES + 1;
        char *text = malloc(len);
        memset(text, '#', len);
        struct cfg *c = NULL;
        int r = cfg_load_string("big.yaml", text, len, &c, errbuf, sizeof(errbuf));
        CHECK_INT(r, -EFBIG);
        CHECK(c == NULL, "expected ret_cfg untouched");
        CHECK_STR(errbuf, "big.yaml: larger than 1048576 bytes (1 mb)");

        char dir[] = "/tmp/flinc-test-config-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
        char path[256];
        snprintf(path, sizeof(path), "%s/big.yaml", dir);
        CHECK_INT(fs_write_atomic(path, text, len), 0);
        r = cfg_load_file(path, &c, errbuf, sizeof(errbuf));
        CHECK_INT(r, -EFBIG);
        CHECK_CONTAINS(errbuf, "big.yaml: larger than 1048576 bytes");
        /* Exactly at the limit is fine: all comments. */
        CHECK_INT(fs_write_atomic(path, text, len - 1), 0);
        r = cfg_load_file(path, &c, errbuf, sizeof(errbuf));
        CHECK(r == 0, "expected a 1 MiB comment file to load, seen %d: %s", r, errbuf);
        cfg_free(c);
        c = NULL;
        unlink(path);

        snprintf(path, sizeof(path), "%s/missing.yaml", dir);
        r = cfg_load_file(path, &c, errbuf, sizeof(errbuf));
        CHECK_INT(r, -ENOENT);
        CHECK_CONTAINS(errbuf, "missing.yaml: cannot read: No such file or directory");
        rmdir(dir);
        free(text);
}

static void test_old_names_and_jvm_keys(void) {
        int r;
        struct cfg *c = load("jobmanager.web.port: 8090\n"
                             "akka.framesize: 20971520b\n"
                             "high-availability.type: zookeeper\n"
                             "high-availability.zookeeper.storageDir: file:///shared/ha\n"
                             "restart-strategy.type: fixeddelay\n"
                             "state.backend.type: jobmanager\n"
                             "execution.checkpointing.dir: file:///shared/chk\n"
                             "env.java.opts: -XX:+UseG1GC\n"
                             "env.java.opts.taskmanager: -Xmx4g\n"
                             "taskmanager.memory.process.size: 1728m\n"
                             "jobmanager.memory.process.size: 1600m\n"
                             "taskmanager.memory.managed.fraction: 0.4\n"
                             "jobmanager.heap.mb: 1024\n",
                             &r);
        CHECK(c != NULL, "expected old names to load, seen %d: %s", r, errbuf);
        if (!c)
                return;
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8090);
        CHECK_INT(cfg_int(c, CFG_PEKKO_FRAMESIZE), 20 << 20);
        CHECK_STR(cfg_string(c, CFG_HIGH_AVAILABILITY), "zookeeper");
        CHECK_STR(cfg_string(c, CFG_HA_STORAGE_DIR), "file:///shared/ha");
        CHECK_STR(cfg_string(c, CFG_RESTART_STRATEGY), "fixed-delay");
        CHECK_STR(cfg_string(c, CFG_STATE_BACKEND), "hashmap");
        CHECK_STR(cfg_string(c, CFG_STATE_CHECKPOINTS_DIR), "file:///shared/chk");
        CHECK_WARNING(c, "t.yaml:1: jobmanager.web.port is a deprecated name; read as rest.port");
        CHECK_WARNING(c, "t.yaml:2: akka.framesize is a deprecated name; read as pekko.framesize");
        CHECK_WARNING(c, "t.yaml:3: high-availability.type is a deprecated name; read as "
                         "high-availability");
        CHECK_WARNING(c, "t.yaml:4: high-availability.zookeeper.storageDir is a deprecated "
                         "name; read as high-availability.storageDir");
        CHECK_WARNING(c, "t.yaml:5: restart-strategy.type is a deprecated name; read as "
                         "restart-strategy");
        CHECK_WARNING(c, "t.yaml:6: state.backend.type is a deprecated name; read as state.backend");
        CHECK_WARNING(c, "t.yaml:6: state.backend.type: 'jobmanager' is read as 'hashmap': "
                         "flinc's hashmap backend keeps keyed state in the worker's memory and "
                         "checkpoints full snapshots");
        CHECK_WARNING(c, "t.yaml:7: execution.checkpointing.dir is Flink 2's name for "
                         "state.checkpoints.dir; read as state.checkpoints.dir");
        CHECK_WARNING(c, "t.yaml:8: env.java.opts does not apply to flinc, which runs no JVM; "
                         "ignored");
        CHECK_WARNING(c, "t.yaml:9: env.java.opts.taskmanager does not apply to flinc");
        CHECK_WARNING(c, "t.yaml:10: taskmanager.memory.process.size does not apply to flinc");
        CHECK_WARNING(c, "t.yaml:11: jobmanager.memory.process.size does not apply to flinc");
        CHECK_WARNING(c, "t.yaml:12: taskmanager.memory.managed.fraction does not apply to "
                         "flinc, which runs no JVM (RocksDB memory is "
                         "state.backend.rocksdb.memory.fixed-per-tm); ignored");
        CHECK_WARNING(c, "t.yaml:13: jobmanager.heap.mb does not apply to flinc");
        CHECK_INT(cfg_warning_count(c), 14);
        CHECK(cfg_warning(c, 14) == NULL, "expected NULL past the last warning");
        cfg_free(c);

        /* A JVM key's value is not checked; a plain synonym of an enum value warns not. */
        c = load("env.java.opts: \"\"\nrestart-strategy: disable\n", &r);
        CHECK(c != NULL, "expected to load, seen %d: %s", r, errbuf);
        if (c) {
                CHECK_STR(cfg_string(c, CFG_RESTART_STRATEGY), "none");
                CHECK_INT(cfg_warning_count(c), 1);
        }
        cfg_free(c);

        /* Warnings are capped; ignored keys too. */
        size_t cap = 300 * 48;
        char *text = malloc(cap);
        size_t used = 0;
        for (int i = 0; i < CFG_MAX_IGNORED_KEYS; i++)
                used += (size_t)snprintf(text + used, cap - used, "env.java.opts.x%d: a\n", i);
        c = load(text, &r);
        CHECK(c != NULL, "expected %d ignored keys to load, seen %d: %s", CFG_MAX_IGNORED_KEYS, r,
              errbuf);
        if (c) {
                CHECK_INT(cfg_warning_count(c), CFG_MAX_WARNINGS);
                CHECK_STR(cfg_warning(c, CFG_MAX_WARNINGS - 1),
                          "more than 255 warnings; the rest are not shown");
        }
        cfg_free(c);
        snprintf(text + used, cap - used, "env.java.opts.last: a\n");
        CHECK_LOAD_ERROR(text, "t.yaml:257: env.java.opts.last: more than 256 ignored JVM keys");
        free(text);
}

static void test_cfg_set(void) {
        struct cfg *c = cfg_new_defaults();
        CHECK_INT(cfg_set(c, "rest.port", "8082", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8082);
        CHECK(cfg_is_set(c, CFG_REST_PORT), "expected rest.port set");
        CHECK_INT(cfg_set(c, "rest.port", " 8083 ", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8083);

        CHECK_INT(cfg_set(c, "rest.port", "http", errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "rest.port: 'http' is not an integer (expected 0..65535)");
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 8083);

        CHECK_INT(cfg_set(c, "rest.prot", "1", errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "unknown key 'rest.prot'; did you mean 'rest.port'?");

        CHECK_INT(cfg_set(c, "web.port", "9999", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_int(c, CFG_REST_PORT), 9999);
        CHECK_WARNING(c, "web.port is a deprecated name; read as rest.port");
        CHECK_INT(cfg_set(c, "taskmanager.heap.size", "1024m", errbuf, sizeof(errbuf)), 0);
        CHECK_WARNING(c, "taskmanager.heap.size does not apply to flinc");
        CHECK_INT(cfg_warning_count(c), 2);

        CHECK_INT(cfg_set(c, "state.backend", "filesystem", errbuf, sizeof(errbuf)), 0);
        CHECK_STR(cfg_string(c, CFG_STATE_BACKEND), "hashmap");
        CHECK_WARNING(c, "state.backend: 'filesystem' is read as 'hashmap'");
        CHECK_INT(cfg_set(c, "state.checkpoints.dir", "hdfs://nn/x", errbuf, sizeof(errbuf)),
                  -EINVAL);
        CHECK_CONTAINS(errbuf, "state.checkpoints.dir: 'hdfs://nn/x': scheme 'hdfs://' is not "
                               "supported");
        cfg_free(c);
}

static void test_validate(void) {
        int r;
        struct cfg *c = load("high-availability: zookeeper\n", &r);
        CHECK_INT(r, 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "high-availability is zookeeper but high-availability.zookeeper.quorum "
                          "is not set (expected host:port,host:port)");
        CHECK_INT(cfg_set(c, "high-availability.zookeeper.quorum", "zk1:2181", errbuf,
                          sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "high-availability is zookeeper but high-availability.storageDir is "
                          "not set (expected a file:///shared/mount/path directory)");
        CHECK_INT(cfg_set(c, "high-availability.storageDir", "file:///shared/ha", errbuf,
                          sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);

        CHECK_INT(cfg_set(c, "high-availability.zookeeper.client.acl", "creator", errbuf,
                          sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "high-availability.zookeeper.client.acl is creator but "
                          "high-availability.zookeeper.auth.digest is not set (expected "
                          "user:password)");
        CHECK_INT(cfg_set(c, "high-availability.zookeeper.auth.digest", "flinc:pw", errbuf,
                          sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);

        CHECK_INT(cfg_set(c, "heartbeat.timeout", "10 s", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "heartbeat.timeout (10 s) must be longer than heartbeat.interval (10 s)");
        CHECK_INT(cfg_set(c, "heartbeat.timeout", "11 s", errbuf, sizeof(errbuf)), 0);

        CHECK_INT(cfg_set(c, "parallelism.default", "200", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_set(c, "pipeline.max-parallelism", "128", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK_STR(errbuf, "pipeline.max-parallelism (128) is below parallelism.default (200)");
        CHECK_INT(cfg_set(c, "pipeline.max-parallelism", "-1", errbuf, sizeof(errbuf)), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);
        cfg_free(c);
}

static char *read_source(const char *rel, size_t *ret_len) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", SOURCE_ROOT, rel);
        char *data = NULL;
        int r = fs_read_all(path, 1 << 20, &data, ret_len);
        CHECK(r == 0, "reading %s: expected 0, seen %d", path, r);
        return r == 0 ? data : NULL;
}

/* Replaces the first occurrence of from with to in a malloc'ed string. */
static char *replace(char *s, const char *from, const char *to) {
        char *at = strstr(s, from);
        CHECK(at != NULL, "'%s' not found", from);
        if (!at)
                return s;
        size_t head = (size_t)(at - s), flen = strlen(from), tlen = strlen(to);
        char *out = malloc(strlen(s) - flen + tlen + 1);
        memcpy(out, s, head);
        memcpy(out + head, to, tlen);
        strcpy(out + head + tlen, at + flen);
        free(s);
        return out;
}

static void test_flink_tutorial(void) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/tests/unit/data/flink-conf-tutorial.yaml", SOURCE_ROOT);
        struct cfg *c = NULL;
        int r = cfg_load_file(path, &c, errbuf, sizeof(errbuf));
        CHECK_INT(r, -EINVAL);
        CHECK(c == NULL, "expected the tutorial file to be refused");
        CHECK_CONTAINS(errbuf, "flink-conf-tutorial.yaml:47: state.backend.fs.checkpointdir: "
                               "'hdfs://bigdata111:9000/flink-checkpoints': scheme 'hdfs://' is "
                               "not supported");
        CHECK_CONTAINS(errbuf, "use file:///mount/path");
        CHECK(strncmp(errbuf, path, strlen(path)) == 0, "expected the message to start with %s, "
              "seen %s", path, errbuf);

        /* The same file with its two hdfs:// URIs made file:// loads. */
        size_t len;
        char *text = read_source("tests/unit/data/flink-conf-tutorial.yaml", &len);
        if (!text)
                return;
        text = replace(text, "hdfs://bigdata111:9000/flink-checkpoints",
                       "file:///shared/flink-checkpoints");
        text = replace(text, "hdfs://bigdata111:9000/flink/ha/", "file:///shared/flink/ha/");
        char dir[] = "/tmp/flinc-test-tutorial-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
        char fixed[256];
        snprintf(fixed, sizeof(fixed), "%s/flink-conf.yaml", dir);
        CHECK_INT(fs_write_atomic(fixed, text, strlen(text)), 0);
        free(text);

        r = cfg_load_file(fixed, &c, errbuf, sizeof(errbuf));
        CHECK(r == 0, "expected the file:// variant to load, seen %d: %s", r, errbuf);
        if (r == 0) {
                CHECK_STR(cfg_string(c, CFG_JOBMANAGER_RPC_ADDRESS), "node01");
                CHECK_INT(cfg_int(c, CFG_JOBMANAGER_RPC_PORT), 6123);
                CHECK_INT(cfg_int(c, CFG_TM_NUMBER_OF_TASK_SLOTS), 2);
                CHECK_INT(cfg_int(c, CFG_PARALLELISM_DEFAULT), 1);
                CHECK_INT(cfg_int(c, CFG_REST_PORT), 8081);
                CHECK(cfg_is_set(c, CFG_REST_PORT), "expected rest.port set by jobmanager.web.port");
                CHECK_STR(cfg_string(c, CFG_IO_TMP_DIRS), "/export/servers/flink-1.6.1/tmp");
                CHECK_STR(cfg_string(c, CFG_STATE_BACKEND), "hashmap");
                CHECK_STR(cfg_string(c, CFG_STATE_CHECKPOINTS_DIR), "file:///shared/flink-checkpoints");
                CHECK_STR(cfg_string(c, CFG_HIGH_AVAILABILITY), "zookeeper");
                CHECK_STR(cfg_string(c, CFG_HA_STORAGE_DIR), "file:///shared/flink/ha/");
                CHECK_STR(cfg_string(c, CFG_HA_ZK_QUORUM),
                          "bigdata111:2181,bigdata222:2181,bigdata333:2181");
                char want[512];
                snprintf(want, sizeof(want), "%s:16: jobmanager.heap.size does not apply to flinc, "
                         "which runs no JVM; ignored", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:19: taskmanager.heap.size does not apply to flinc, "
                         "which runs no JVM; ignored", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:26: taskmanager.memory.preallocate does not apply "
                         "to flinc, which runs no JVM; ignored", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:32: jobmanager.web.port is a deprecated name; "
                         "read as rest.port", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:35: taskmanager.tmp.dirs is a deprecated name; "
                         "read as io.tmp.dirs", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:43: state.backend: 'filesystem' is read as "
                         "'hashmap'", fixed);
                CHECK_WARNING(c, want);
                snprintf(want, sizeof(want), "%s:47: state.backend.fs.checkpointdir is a deprecated "
                         "name; read as state.checkpoints.dir", fixed);
                CHECK_WARNING(c, want);
                CHECK_INT(cfg_warning_count(c), 7);
                CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);
                cfg_free(c);
        }
        unlink(fixed);
        rmdir(dir);
}

static void test_shipped_conf(void) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/conf/flinc-conf.yaml", SOURCE_ROOT);
        struct cfg *c = NULL;
        int r = cfg_load_file(path, &c, errbuf, sizeof(errbuf));
        CHECK(r == 0, "expected conf/flinc-conf.yaml to load, seen %d: %s", r, errbuf);
        if (r != 0)
                return;
        CHECK_INT(cfg_warning_count(c), 0);
        CHECK_INT(cfg_validate(c, errbuf, sizeof(errbuf)), 0);
        CHECK_STR(cfg_string(c, CFG_HIGH_AVAILABILITY), "zookeeper");
        CHECK_STR(cfg_string(c, CFG_HA_ZK_QUORUM), "localhost:2181");
        CHECK_STR(cfg_string(c, CFG_HA_STORAGE_DIR), "file:///tmp/flinc/ha");
        CHECK_STR(cfg_string(c, CFG_STATE_CHECKPOINTS_DIR), "file:///tmp/flinc/checkpoints");
        cfg_free(c);

        /* Every key of the table is documented in the shipped file, and every commented
         * example in it is a valid setting. */
        size_t len;
        char *text = read_source("conf/flinc-conf.yaml", &len);
        if (!text)
                return;
        for (size_t k = 0; k < cfg_key_count(); k++) {
                char needle[300];
                snprintf(needle, sizeof(needle), "\n%s: ", cfg_key_name((enum cfg_key)k));
                char commented[300];
                snprintf(commented, sizeof(commented), "\n# %s: ", cfg_key_name((enum cfg_key)k));
                CHECK(strstr(text, needle) || strstr(text, commented),
                      "conf/flinc-conf.yaml does not mention %s", cfg_key_name((enum cfg_key)k));
        }
        struct cfg *all = cfg_new_defaults();
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                if (strncmp(line, "# ", 2) != 0)
                        continue;
                /* "# some.key: value" (docs lines start with other words). */
                char *colon = strstr(line + 2, ": ");
                if (!colon || strchr(line + 2, ' ') < colon ||
                    strspn(line + 2, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-") <
                            (size_t)(colon - line - 2) ||
                    !(line[2] >= 'a' && line[2] <= 'z') || !strpbrk(line + 2, ".-") ||
                    strpbrk(line + 2, ".-") > colon)
                        continue;
                *colon = '\0';
                r = cfg_set(all, line + 2, colon + 2, errbuf, sizeof(errbuf));
                CHECK(r == 0, "commented example '%s: %s' is not valid: %s", line + 2, colon + 2,
                      errbuf);
        }
        CHECK_INT(cfg_warning_count(all), 0);
        cfg_free(all);
        free(text);
}

static void test_help(void) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cfg_print_help(f);
        fclose(f);
        for (size_t k = 0; k < cfg_key_count(); k++)
                CHECK_CONTAINS(buf, cfg_key_name((enum cfg_key)k));
        CHECK_CONTAINS(buf, "  rest.port\n      int, 0..65535; default: 8081\n");
        CHECK_CONTAINS(buf, "enum, one of NONE, zookeeper; default: NONE");
        CHECK_CONTAINS(buf, "duration, 1 s..1 d; default: 1 min");
        CHECK_CONTAINS(buf, "jobmanager.web.port");
        CHECK_CONTAINS(buf, "jobmanager.heap.size");
        CHECK_CONTAINS(buf, "env.java.*");
        free(buf);
}

int main(void) {
        RUN(test_defaults);
        RUN(test_table_and_round_trip);
        RUN(test_duration_forms);
        RUN(test_size_forms);
        RUN(test_values_in_file);
        RUN(test_key_errors);
        RUN(test_value_errors);
        RUN(test_uri_values);
        RUN(test_yaml_shape_errors);
        RUN(test_size_limit);
        RUN(test_old_names_and_jvm_keys);
        RUN(test_cfg_set);
        RUN(test_validate);
        RUN(test_flink_tutorial);
        RUN(test_shipped_conf);
        RUN(test_help);
        return unit_done();
}
