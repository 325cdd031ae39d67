/* Configuration: conf/flinc-conf.yaml and -D overrides, read through one declarative
 * table of keys (CFG_KEYS below: name, type, default, range, doc line), with Flink's key
 * names so that a Flink operator's file carries over. Validation, --help text and the
 * REST config listing all come from that table.
 *
 * The file is flat YAML, Flink's classic style: a mapping of scalar keys to scalar
 * values, `key: value` per line. A nested mapping, a list, an alias or a non-scalar key
 * is an error naming the line. Loading stops at the first error; its message names the
 * file, the line, the key, the value and what is allowed:
 *     conf/flinc-conf.yaml:12: rest.port: 'abc' is not an integer (expected 0..65535)
 *     conf/flinc-conf.yaml:3: unknown key 'rest.prot'; did you mean 'rest.port'?
 *
 * Decisions that differ from Flink (also in the keys' doc lines):
 *  - Old Flink names are read as their current name with a warning naming both
 *    (jobmanager.web.port -> rest.port, ...; see cfg_print_help()). Setting an old and a
 *    current name of one key in one file is a duplicate-key error.
 *  - Keys of Flink's JVM and memory model (jobmanager.heap.size, env.java.opts*,
 *    taskmanager.memory.process.size, ...) are accepted with a warning and ignored:
 *    flinc runs no JVM. Their values are not checked.
 *  - state.backend takes rocksdb (default) or hashmap. Flink's legacy values filesystem
 *    and jobmanager are read as hashmap, with a warning: flinc's hashmap backend keeps
 *    keyed state in the worker's memory and checkpoints full snapshots (never
 *    incremental), so it suits small state only.
 *  - state.backend.incremental defaults to true (Flink: false).
 *  - restart-strategy defaults to fixed-delay with 2147483647 attempts, 1 s apart (what
 *    Flink does when checkpointing is on); none/off/disable turn restarts off.
 *  - Storage URIs (high-availability.storageDir, state.*.dir) must be file://; hdfs://
 *    and other schemes are refused with a message saying to use file:// on a shared
 *    mount. Values are kept as written; resolve them with storage_uri_to_path().
 *  - high-availability.zookeeper.path.root defaults to /flinc (Flink: /flink) and
 *    high-availability.cluster-id to "default" (Flink: "/default"; a leading '/' is
 *    accepted and dropped).
 *  - jobstore.expiration-time: a bare number means seconds, as in Flink; a unit may be
 *    given ("1 h"). Every other duration reads a bare number as milliseconds.
 *  - Durations are stored in whole milliseconds (ns and us values are truncated);
 *    memory sizes in bytes, units binary (1 kb = 1024 bytes) as in Flink's MemorySize.
 *
 * Limits: a file of at most CFG_MAX_FILE_BYTES, keys of at most CFG_MAX_KEY_BYTES,
 * values of at most CFG_MAX_VALUE_BYTES, at most CFG_MAX_IGNORED_KEYS distinct ignored
 * JVM keys, CFG_MAX_WARNINGS warnings kept. Values are quoted in messages cut to 80
 * bytes. A value holding a line break or another control character is refused. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_FILE_BYTES   (1024 * 1024)
#define CFG_MAX_KEY_BYTES    256
#define CFG_MAX_VALUE_BYTES  4096
#define CFG_MAX_IGNORED_KEYS 256
#define CFG_MAX_WARNINGS     256

/* Value types. Accessors: cfg_string() for STRING, HOST, URI, ENUM, HOSTPORTS, PORTS,
 * ZKPATH, NAME, USERPASS; cfg_int() for INT, DURATION (ms), SIZE (bytes); cfg_bool()
 * for BOOL; cfg_double() for DOUBLE. */
enum cfg_type {
        CFG_T_STRING,    /* any text, "" allowed */
        CFG_T_INT,       /* decimal with optional sign; range MIN..MAX */
        CFG_T_BOOL,      /* true or false, any case */
        CFG_T_DOUBLE,    /* decimal number; range MIN..MAX (exclusive with CFG_F_OPEN) */
        CFG_T_DURATION,  /* Flink TimeUtils form, stored in ms; range MIN..MAX in ms */
        CFG_T_SIZE,      /* Flink MemorySize form, stored in bytes; range MIN..MAX */
        CFG_T_ENUM,      /* one of CHOICES "a|b|old=a", any case; stored canonical */
        CFG_T_URI,       /* "" or a storage URI accepted by storage_uri_to_path() */
        CFG_T_HOST,      /* "" or a host name, IPv4 or IPv6 address */
        CFG_T_HOSTPORTS, /* "" or host:port[,host:port...] ([v6]:port), stored without spaces */
        CFG_T_PORTS,     /* a port, a range a-b, or a comma list of them; 0 = any */
        CFG_T_ZKPATH,    /* absolute ZooKeeper path, no trailing '/' */
        CFG_T_NAME,      /* one ZooKeeper path segment: [A-Za-z0-9._-]; leading '/' dropped */
        CFG_T_USERPASS,  /* "" or user:password; never shown in messages or listings */
};

/* Flags. */
#define CFG_F_MINUS_ONE    0x1u /* INT: -1 is also allowed (meaning "derived") */
#define CFG_F_BARE_SECONDS 0x2u /* DURATION: a bare number means seconds, not ms */
#define CFG_F_OPEN         0x4u /* DOUBLE: MIN and MAX themselves are excluded */
#define CFG_F_FLINC        0x8u /* flinc's own key (Flink has no such key) */

#define CFG_SEC(n)  ((int64_t)(n) * 1000)
#define CFG_MIN(n)  ((int64_t)(n) * 60 * 1000)
#define CFG_HOUR(n) ((int64_t)(n) * 3600 * 1000)
#define CFG_DAY(n)  ((int64_t)(n) * 86400 * 1000)
#define CFG_KIB(n)  ((int64_t)(n) << 10)
#define CFG_MIB(n)  ((int64_t)(n) << 20)
#define CFG_GIB(n)  ((int64_t)(n) << 30)
#define CFG_TIB(n)  ((int64_t)(n) << 40)

/* The table. X(ID, "name", TYPE, "default", MIN, MAX, "choices" or NULL, FLAGS, "doc").
 * Defaults are text read by the same parser as the file (a unit test checks each). */
#define CFG_KEYS(X)                                                                     \
        /* High availability */                                                        \
        X(CFG_HIGH_AVAILABILITY, "high-availability", ENUM, "NONE", 0, 0,               \
          "NONE|zookeeper", 0,                                                          \
          "NONE: a single coordinator, no failover; zookeeper: coordinators elect a "  \
          "leader on high-availability.zookeeper.quorum")                              \
        X(CFG_HA_ZK_QUORUM, "high-availability.zookeeper.quorum", HOSTPORTS, "", 0, 0,  \
          NULL, 0,                                                                      \
          "ZooKeeper servers, host:port,host:port (required with high-availability: "  \
          "zookeeper)")                                                                 \
        X(CFG_HA_ZK_PATH_ROOT, "high-availability.zookeeper.path.root", ZKPATH, "/flinc", \
          0, 0, NULL, 0,                                                                \
          "ZooKeeper node under which all clusters live (Flink's default: /flink)")    \
        X(CFG_HA_CLUSTER_ID, "high-availability.cluster-id", NAME, "default", 0, 0,     \
          NULL, 0,                                                                      \
          "Name of this cluster under the root node; clusters sharing a quorum need "   \
          "different ids")                                                              \
        X(CFG_HA_STORAGE_DIR, "high-availability.storageDir", URI, "", 0, 0, NULL, 0,   \
          "file:// directory (a shared mount) for job graphs and artifacts; ZooKeeper " \
          "keeps pointers to it (required with high-availability: zookeeper)")         \
        X(CFG_HA_ZK_SESSION_TIMEOUT, "high-availability.zookeeper.client.session-timeout", \
          DURATION, "60 s", CFG_SEC(1), CFG_DAY(1), NULL, 0,                            \
          "ZooKeeper session timeout asked for (the server may lower it); bounds how "  \
          "long a crashed leader is waited for")                                       \
        X(CFG_HA_ZK_CONNECTION_TIMEOUT,                                                 \
          "high-availability.zookeeper.client.connection-timeout", DURATION, "15 s", 1, \
          CFG_HOUR(1), NULL, 0, "Time allowed to connect to the quorum at start")       \
        X(CFG_HA_ZK_RETRY_WAIT, "high-availability.zookeeper.client.retry-wait",        \
          DURATION, "5 s", 0, CFG_HOUR(1), NULL, 0,                                     \
          "Pause between attempts to reach ZooKeeper")                                  \
        X(CFG_HA_ZK_MAX_RETRY_ATTEMPTS,                                                 \
          "high-availability.zookeeper.client.max-retry-attempts", INT, "3", 0, 1000,   \
          NULL, 0, "Attempts to reach ZooKeeper before a start fails")                  \
        X(CFG_HA_ZK_ACL, "high-availability.zookeeper.client.acl", ENUM, "open", 0, 0,  \
          "creator|open", 0,                                                            \
          "ACL of created nodes: open (world) or creator (needs auth.digest)")          \
        X(CFG_HA_ZK_AUTH_DIGEST, "high-availability.zookeeper.auth.digest", USERPASS,   \
          "", 0, 0, NULL, CFG_F_FLINC,                                                  \
          "user:password for ZooKeeper digest authentication (flinc's own key; empty: " \
          "none)")                                                                      \
        X(CFG_HA_JOBMANAGER_PORT, "high-availability.jobmanager.port", PORTS, "0", 0, 0, \
          NULL, 0,                                                                      \
          "Coordinator RPC port with HA: a port, a range like 50000-50025 or a list; "  \
          "0 = any free port (published in ZooKeeper)")                                 \
        /* Coordinator */                                                               \
        X(CFG_JOBMANAGER_RPC_ADDRESS, "jobmanager.rpc.address", HOST, "localhost", 0, 0, \
          NULL, 0, "Coordinator address when high-availability is NONE")                \
        X(CFG_JOBMANAGER_RPC_PORT, "jobmanager.rpc.port", INT, "6123", 0, 65535, NULL, 0, \
          "Coordinator RPC port when high-availability is NONE")                        \
        X(CFG_JOBMANAGER_BIND_HOST, "jobmanager.bind-host", HOST, "", 0, 0, NULL, 0,    \
          "Address the coordinator's RPC server binds to (empty: all interfaces)")      \
        X(CFG_REST_PORT, "rest.port", INT, "8081", 0, 65535, NULL, 0,                   \
          "Port of the REST API and web UI (conf/masters may name one per host)")      \
        X(CFG_REST_ADDRESS, "rest.address", HOST, "", 0, 0, NULL, 0,                    \
          "Address clients use for the REST API (empty: jobmanager.rpc.address)")      \
        X(CFG_REST_BIND_ADDRESS, "rest.bind-address", HOST, "", 0, 0, NULL, 0,          \
          "Address the REST server binds to (empty: all interfaces)")                   \
        X(CFG_REST_MAX_CONTENT_LENGTH, "rest.server.max-content-length", SIZE,          \
          "104857600", CFG_KIB(1), CFG_GIB(1), NULL, 0,                                 \
          "Largest REST request or response body (UDF library uploads, job files)")     \
        X(CFG_PEKKO_FRAMESIZE, "pekko.framesize", SIZE, "10485760b", CFG_KIB(1),        \
          CFG_GIB(1), NULL, 0,                                                          \
          "Largest RPC frame between coordinators and workers; larger frames close "    \
          "the connection")                                                             \
        X(CFG_JOBSTORE_EXPIRATION_TIME, "jobstore.expiration-time", DURATION, "3600 s", \
          CFG_SEC(1), CFG_DAY(365), NULL, CFG_F_BARE_SECONDS,                            \
          "How long results of finished jobs are kept (a bare number means seconds, as " \
          "in Flink)")                                                                  \
        /* Worker */                                                                    \
        X(CFG_TM_NUMBER_OF_TASK_SLOTS, "taskmanager.numberOfTaskSlots", INT, "1", 1,    \
          1024, NULL, 0, "Slots each worker offers; one subtask chain per slot")        \
        X(CFG_TM_HOST, "taskmanager.host", HOST, "", 0, 0, NULL, 0,                     \
          "Address a worker advertises (empty: its host name)")                         \
        X(CFG_TM_BIND_HOST, "taskmanager.bind-host", HOST, "", 0, 0, NULL, 0,           \
          "Address a worker's servers bind to (empty: all interfaces)")                 \
        X(CFG_TM_RPC_PORT, "taskmanager.rpc.port", PORTS, "0", 0, 0, NULL, 0,           \
          "Worker RPC port: a port, a range like 50100-50200 or a list; 0 = any")       \
        X(CFG_TM_DATA_PORT, "taskmanager.data.port", INT, "0", 0, 65535, NULL, 0,       \
          "Worker data-plane port for records between subtasks; 0 = any")               \
        X(CFG_TM_NET_BUFFERS_PER_CHANNEL, "taskmanager.network.memory.buffers-per-channel", \
          INT, "2", 1, 1024, NULL, 0,                                                   \
          "32 KiB network buffers each input channel may always queue (exclusive); "    \
          "also the credits of a channel between workers")                             \
        X(CFG_TM_NET_FLOATING_BUFFERS, "taskmanager.network.memory.floating-buffers-per-gate", \
          INT, "8", 0, 65536, NULL, 0,                                                  \
          "32 KiB network buffers an input gate shares among its channels beyond the "  \
          "exclusive ones")                                                             \
        /* Execution */                                                                 \
        X(CFG_PARALLELISM_DEFAULT, "parallelism.default", INT, "1", 1, 32768, NULL, 0,  \
          "Parallelism of jobs that do not set one")                                    \
        X(CFG_PIPELINE_MAX_PARALLELISM, "pipeline.max-parallelism", INT, "-1", 1, 32768, \
          NULL, CFG_F_MINUS_ONE,                                                        \
          "Number of key groups (the limit for rescaling); -1: derived from the "       \
          "parallelism as Flink does")                                                  \
        X(CFG_EXECUTION_BUFFER_TIMEOUT, "execution.buffer-timeout", DURATION, "100 ms", \
          0, CFG_MIN(10), NULL, 0,                                                      \
          "Longest time a record waits in a network buffer that is not full; 0: "       \
          "flush after every record")                                                   \
        X(CFG_METRICS_LATENCY_INTERVAL, "metrics.latency.interval", DURATION, "0 ms",  \
          0, CFG_DAY(1), NULL, 0,                                                       \
          "How often sources emit latency markers, whose source-to-sink latency sinks " \
          "report (REST vertex metrics 'latency'); 0: off")                             \
        X(CFG_RESTART_STRATEGY, "restart-strategy", ENUM, "fixed-delay", 0, 0,          \
          "none|fixed-delay|off=none|disable=none|fixeddelay=fixed-delay", 0,           \
          "What a failed job does: fixed-delay restarts it from its latest checkpoint; " \
          "none fails it (Flink's default is none when checkpointing is off)")         \
        X(CFG_RESTART_FIXED_DELAY_ATTEMPTS, "restart-strategy.fixed-delay.attempts", INT, \
          "2147483647", 0, 2147483647, NULL, 0,                                         \
          "Restarts before a job is failed (Flink's value with checkpointing on)")     \
        X(CFG_RESTART_FIXED_DELAY_DELAY, "restart-strategy.fixed-delay.delay", DURATION, \
          "1 s", 0, CFG_DAY(1), NULL, 0, "Pause before each restart")                   \
        X(CFG_HEARTBEAT_INTERVAL, "heartbeat.interval", DURATION, "10 s", 1, CFG_HOUR(1), \
          NULL, 0, "Heartbeats between coordinator and workers")                        \
        X(CFG_HEARTBEAT_TIMEOUT, "heartbeat.timeout", DURATION, "50 s", 1, CFG_DAY(1),  \
          NULL, 0,                                                                      \
          "Silence after which a worker (or the coordinator) is taken as dead; must "  \
          "exceed heartbeat.interval")                                                  \
        /* Checkpointing */                                                             \
        X(CFG_CHECKPOINTING_INTERVAL, "execution.checkpointing.interval", DURATION,     \
          "0 ms", 0, CFG_DAY(365), NULL, 0,                                             \
          "Time between checkpoint triggers; 0: checkpointing off unless the job sets " \
          "it")                                                                         \
        X(CFG_CHECKPOINTING_TIMEOUT, "execution.checkpointing.timeout", DURATION,       \
          "10 min", 1, CFG_DAY(365), NULL, 0,                                           \
          "A checkpoint not complete after this is aborted")                            \
        X(CFG_CHECKPOINTING_MIN_PAUSE, "execution.checkpointing.min-pause", DURATION,   \
          "0 ms", 0, CFG_DAY(365), NULL, 0,                                             \
          "Least time between the end of one checkpoint and the trigger of the next")   \
        X(CFG_CHECKPOINTING_MAX_CONCURRENT,                                             \
          "execution.checkpointing.max-concurrent-checkpoints", INT, "1", 1, 1000, NULL, \
          0, "Checkpoints that may be in progress at once")                             \
        X(CFG_CHECKPOINTING_MODE, "execution.checkpointing.mode", ENUM, "EXACTLY_ONCE", \
          0, 0, "EXACTLY_ONCE|AT_LEAST_ONCE", 0,                                        \
          "EXACTLY_ONCE aligns barriers; AT_LEAST_ONCE does not wait for alignment")    \
        /* State */                                                                     \
        X(CFG_STATE_BACKEND, "state.backend", ENUM, "rocksdb", 0, 0,                    \
          "rocksdb|hashmap|filesystem=hashmap|jobmanager=hashmap", 0,                   \
          "rocksdb: keyed state in RocksDB on each worker, incremental checkpoints; "   \
          "hashmap: in worker memory, full snapshots (filesystem and jobmanager are "   \
          "read as hashmap)")                                                           \
        X(CFG_STATE_BACKEND_INCREMENTAL, "state.backend.incremental", BOOL, "true", 0,  \
          0, NULL, 0,                                                                   \
          "RocksDB checkpoints upload only new SST files (flinc's default is true; "    \
          "Flink's is false)")                                                          \
        X(CFG_STATE_CHECKPOINTS_DIR, "state.checkpoints.dir", URI, "", 0, 0, NULL, 0,   \
          "file:// directory (a shared mount) for checkpoint data and metadata")       \
        X(CFG_STATE_SAVEPOINTS_DIR, "state.savepoints.dir", URI, "", 0, 0, NULL, 0,     \
          "file:// directory for savepoints that name no target")                      \
        X(CFG_STATE_CHECKPOINTS_NUM_RETAINED, "state.checkpoints.num-retained", INT,    \
          "1", 1, 10000, NULL, 0, "Completed checkpoints kept per job")                 \
        X(CFG_ROCKSDB_LOCALDIR, "state.backend.rocksdb.localdir", STRING, "", 0, 0,     \
          NULL, 0, "Local directory for the workers' RocksDB files (empty: io.tmp.dirs)") \
        X(CFG_ROCKSDB_MEMORY_FIXED_PER_TM, "state.backend.rocksdb.memory.fixed-per-tm", \
          SIZE, "256 mb", CFG_MIB(1), CFG_TIB(1), NULL, 0,                              \
          "Memory shared by all RocksDB instances of one worker (block cache and "      \
          "write buffers; flinc's default, Flink has none)")                           \
        X(CFG_ROCKSDB_WRITE_BUFFER_RATIO,                                               \
          "state.backend.rocksdb.memory.write-buffer-ratio", DOUBLE, "0.5", 0, 1, NULL,  \
          CFG_F_OPEN, "Share of the RocksDB memory for write buffers, between 0 and 1") \
        /* Processes */                                                                 \
        X(CFG_IO_TMP_DIRS, "io.tmp.dirs", STRING, "/tmp", 0, 0, NULL, 0,                 \
          "Directories for temporary files, separated by ',' or ':'")                   \
        X(CFG_ENV_PID_DIR, "env.pid.dir", STRING, "/tmp", 0, 0, NULL, 0,                 \
          "Directory of the daemons' pid files")                                        \
        X(CFG_ENV_LOG_DIR, "env.log.dir", STRING, "", 0, 0, NULL, 0,                     \
          "Directory of the daemons' log files (empty: <install>/log)")                \
        X(CFG_ENV_LOG_LEVEL, "env.log.level", ENUM, "info", 0, 0,                       \
          "error|warn|info|debug|warning=warn", CFG_F_FLINC,                            \
          "Log level of the daemons (flinc's own key)")                                 \
        X(CFG_ENV_SSH_OPTS, "env.ssh.opts", STRING, "", 0, 0, NULL, 0,                   \
          "Extra ssh options for start-cluster.sh and stop-cluster.sh")

#define CFG_ENUM_ENTRY_(id, ...) id,
enum cfg_key {
        CFG_KEYS(CFG_ENUM_ENTRY_)
        CFG__MAX
};
#undef CFG_ENUM_ENTRY_

struct cfg; /* opaque: one value per key, whether it was set, and the warnings */

/* Reads and checks a config file (at most CFG_MAX_FILE_BYTES). On success *ret_cfg is a
 * new cfg (free with cfg_free) holding the defaults plus what the file set, and any
 * warnings. On failure returns a negative errno (-ENOENT and friends from reading,
 * -EFBIG, -EINVAL for any content error) with the reason in err, and *ret_cfg is
 * untouched. cfg_validate() is not called: call it after the overrides. */
int cfg_load_file(const char *path, struct cfg **ret_cfg, char *err, size_t err_len);

/* Like cfg_load_file on text of len bytes (no NUL needed); name stands for the file in
 * messages. For tests and fuzzing. */
int cfg_load_string(const char *name, const char *text, size_t len, struct cfg **ret_cfg,
                    char *err, size_t err_len);

/* A cfg holding every default and no warnings; NULL when out of memory. Free with
 * cfg_free. */
struct cfg *cfg_new_defaults(void);

/* Sets one key from text, as the file would (command-line overrides: -D key=value,
 * --webui-port). Old names and ignored JVM keys are accepted with a warning; a later
 * cfg_set of the same key replaces the value. 0, -EINVAL (unknown key or bad value;
 * err says which, without a location: callers prefix theirs) or -ENOMEM; c is
 * unchanged on error. */
int cfg_set(struct cfg *c, const char *key, const char *value, char *err, size_t err_len);

/* Rules across keys: high-availability zookeeper needs a quorum and a storageDir;
 * heartbeat.timeout must exceed heartbeat.interval; pipeline.max-parallelism, when set,
 * must be at least parallelism.default; high-availability.zookeeper.client.acl creator
 * needs an auth.digest. 0 or -EINVAL with the first broken rule in err. */
int cfg_validate(const struct cfg *c, char *err, size_t err_len);

/* Frees c and everything it holds; NULL is fine. */
void cfg_free(struct cfg *c);

/* Typed reads. The key must have a type the accessor serves (see enum cfg_type); asked
 * for another it asserts. cfg_string's result is borrowed from c and lives until
 * cfg_free or a cfg_set of that key; "" when empty. Enum values come back in their
 * canonical spelling ("NONE", "zookeeper", "fixed-delay", "hashmap", ...). */
const char *cfg_string(const struct cfg *c, enum cfg_key k);
int64_t cfg_int(const struct cfg *c, enum cfg_key k); /* INT; DURATION in ms; SIZE in bytes */
double cfg_double(const struct cfg *c, enum cfg_key k);
bool cfg_bool(const struct cfg *c, enum cfg_key k);

/* Whether the file or a cfg_set gave the key a value (even one equal to the default). */
bool cfg_is_set(const struct cfg *c, enum cfg_key k);

/* Warnings gathered while loading and setting, each naming file, line and key when they
 * come from a file; borrowed from c until cfg_free. The daemon logs them. */
size_t cfg_warning_count(const struct cfg *c);
const char *cfg_warning(const struct cfg *c, size_t i);

/* The table, for GET /jobmanager/config, --help and docs. Names and docs are static
 * strings; NULL for a key out of range. cfg_key_find looks a current key name up
 * (exact, case-sensitive): 0 or -ENOENT, *ret_key untouched then. */
size_t cfg_key_count(void);
const char *cfg_key_name(enum cfg_key k);
const char *cfg_key_doc(enum cfg_key k);
enum cfg_type cfg_key_type(enum cfg_key k);
int cfg_key_find(const char *name, enum cfg_key *ret_key);

/* The effective value of k as text that cfg_set would read back to the same value:
 * durations as "60 s", sizes as "256 mb", enums canonical; a USERPASS value shows as
 * "******" when set. 0, -EINVAL for a key out of range, or -ENOSPC when buf is too small
 * (buf then holds a truncated, NUL-terminated text). */
int cfg_value_text(const struct cfg *c, enum cfg_key k, char *buf, size_t len);

/* Flink's duration text: digits, optional spaces, optional unit (case-insensitive):
 * ns nano nanos nanosecond nanoseconds, us µs micro micros microsecond microseconds,
 * ms milli millis millisecond milliseconds (the default), s sec secs second seconds,
 * min m minute minutes, h hour hours, d day days. Surrounding spaces are fine; no sign,
 * no fraction. Sub-millisecond values are truncated. 0, -EINVAL (not a duration) or
 * -ERANGE (does not fit in int64 ms); *ret_ms untouched on error. */
int cfg_parse_duration_ms(const char *s, int64_t *ret_ms);

/* Flink's memory size text: digits, optional spaces, optional unit (case-insensitive):
 * b bytes (the default), k kb kibibytes, m mb mebibytes, g gb gibibytes, t tb
 * tebibytes; units are powers of 1024. 0, -EINVAL or -ERANGE; *ret_bytes untouched on
 * error. */
int cfg_parse_size_bytes(const char *s, int64_t *ret_bytes);

/* Writes every key with its type, default, range and doc, then the old names and the
 * ignored JVM keys, to out (for --help and the README). */
void cfg_print_help(FILE *out);
