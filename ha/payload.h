/* Codecs for what flinc keeps in ZooKeeper nodes. Every payload is an envelope
 * (common/envelope.h: {kind, v, crc, body}) around a msgpack map; the kinds and fields
 * below are the contract of DESIGN.md "ZooKeeper layout" and must stay readable by older
 * and newer flinc versions (add fields, never repurpose them). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HA_KIND_CANDIDATE  "flinc.ha.candidate"  /* election/n_<seq> */
#define HA_KIND_EPOCH      "flinc.ha.epoch"      /* epoch */
#define HA_KIND_LEADER     "flinc.ha.leader"     /* leader */
#define HA_KIND_POINTER    "flinc.ha.pointer"    /* jobs/<job>/graph */
#define HA_KIND_CHECKPOINT "flinc.ha.checkpoint" /* jobs/<job>/checkpoints/<n> */
#define HA_KIND_COUNTER    "flinc.ha.counter"    /* jobs/<job>/checkpoint-counter */
#define HA_KIND_JOB_RESULT "flinc.ha.job-result" /* job-results/<job> */
#define HA_KIND_JOB_GRAPH  "flinc.ha.job-graph"  /* the graph-<uuid> file in storage */

/* Field limits; a longer value is refused with -ENAMETOOLONG when encoding and is an
 * -EBADMSG "field too long" when decoding. */
#define HA_NAME_MAX 128  /* ids: candidate id, job id (including the NUL) */
#define HA_ADDR_MAX 256  /* host, rpc address, rest url */
#define HA_URI_MAX 1024  /* storage paths (file:// URIs) */

/* election/n_<seq>: who is standing. token is 32 hex digits, fresh for every node this
 * process creates, so an operator can tell two nodes of one process apart. */
struct ha_candidate_info {
        char id[HA_NAME_MAX];
        char host[HA_ADDR_MAX];
        char rpc[HA_ADDR_MAX];
        char rest[HA_ADDR_MAX];
        char token[33];
};

/* leader: the elected coordinator; session is the ZooKeeper session that owns the
 * (ephemeral) node. */
struct ha_leader_info {
        uint64_t epoch;
        char id[HA_NAME_MAX];
        char rpc[HA_ADDR_MAX];
        char rest[HA_ADDR_MAX];
        int64_t session_id;
};

/* A pointer to a file in storage: its URI, its size and the CRC32C of its bytes.
 * id is the checkpoint number for HA_KIND_CHECKPOINT pointers and 0 otherwise. */
struct ha_pointer {
        char path[HA_URI_MAX];
        uint64_t size_bytes;
        uint32_t crc;
        uint64_t id;
};

/* The terminal states a job can be recorded with in job-results/<job>. */
enum ha_job_state {
        HA_JOB_FINISHED = 1,
        HA_JOB_CANCELED = 2,
        HA_JOB_FAILED = 3,
};

/* job-results/<job>: recorded (fenced) before a job's cleanup starts, kept for a TTL;
 * a job with a result is never run again. end_time_ms is wall time (for people and for
 * the TTL); epoch is the leader epoch that recorded it. */
struct ha_job_result {
        char job[HA_NAME_MAX];
        enum ha_job_state state;
        int64_t end_time_ms;
        uint64_t epoch;
};

/* "FINISHED", "CANCELED", "FAILED"; "UNKNOWN" for anything else. Static storage. */
const char *ha_job_state_name(enum ha_job_state s);
/* Parses the names above (case-insensitive). 0 or -EINVAL. */
int ha_job_state_parse(const char *s, enum ha_job_state *ret);

/* Encoders: *ret_data is a malloc'ed envelope the caller frees. 0, -ENAMETOOLONG (a
 * string field over its limit) or -ENOMEM. */
int ha_candidate_encode(const struct ha_candidate_info *c, char **ret_data, size_t *ret_len);
int ha_leader_encode(const struct ha_leader_info *l, char **ret_data, size_t *ret_len);
/* For HA_KIND_EPOCH ({"epoch": n}) and HA_KIND_COUNTER ({"value": n}). */
int ha_u64_encode(const char *kind, uint64_t value, char **ret_data, size_t *ret_len);
/* kind is HA_KIND_POINTER or HA_KIND_CHECKPOINT (which also stores p->id). */
int ha_pointer_encode(const char *kind, const struct ha_pointer *p, char **ret_data,
                      size_t *ret_len);
int ha_job_result_encode(const struct ha_job_result *r, char **ret_data, size_t *ret_len);

/* Decoders: fill *ret (untouched on failure). Errors are those of envelope_unwrap()
 * (-EBADMSG, -EMEDIUMTYPE, -EPROTONOSUPPORT, -EFBIG) and -EBADMSG for a missing,
 * mistyped or too long field; err (may be NULL) gets a one-line reason naming the field.
 * The callers add the znode path to that reason. */
int ha_candidate_decode(const void *data, size_t len, struct ha_candidate_info *ret,
                        char *err, size_t err_len);
int ha_leader_decode(const void *data, size_t len, struct ha_leader_info *ret, char *err,
                     size_t err_len);
int ha_u64_decode(const char *kind, const void *data, size_t len, uint64_t *ret, char *err,
                  size_t err_len);
int ha_pointer_decode(const char *kind, const void *data, size_t len, struct ha_pointer *ret,
                      char *err, size_t err_len);
int ha_job_result_decode(const void *data, size_t len, struct ha_job_result *ret, char *err,
                         size_t err_len);
