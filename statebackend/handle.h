/* The state handle: what one keyed subtask's incremental checkpoint consists of, as the
 * subtask acks it and the coordinator embeds it in chk-<n>/_metadata. It is an envelope
 * (common/envelope.h) of kind SB_HANDLE_KIND, version 1, whose body is a msgpack map:
 *
 *   "backend"  str   32 hex: the id of the backend that wrote it
 *   "chk"      uint  checkpoint id
 *   "maxp"     uint  max parallelism, 1..32768
 *   "kg"       [start, end]  the key groups it holds, half-open, start < end <= maxp
 *   "states"   [ {"name": str, "kind": str ("value", "list", ...), "ttl_ms": uint} ]
 *   "shared"   [ {"uid": str 32 hex, "local": str "<digits>.sst", "size": uint,
 *                 "crc": uint32 CRC32C of the file, "new": bool} ]
 *              one per SST file; stored at <job dir>/shared/<uid>.sst. "new" is true when
 *              this checkpoint uploaded the file and false when it reuses one of the last
 *              confirmed checkpoint's files (the registry checks it still holds those).
 *   "private"  {"path": str "chk-<n>/sb-<backend>.pack", "size": uint, "crc": uint32,
 *               "files": [ {"name": str, "off": uint, "size": uint, "crc": uint32} ]}
 *              MANIFEST, CURRENT, OPTIONS (and any other non-SST file of the RocksDB
 *              checkpoint) packed into one object private to this checkpoint.
 *
 * Paths are relative to the job's checkpoint directory <checkpoints.dir>/<job>. Parsing
 * checks every field: types, ranges, hex ids, file names (digits + ".sst"; private names
 * of [A-Za-z0-9._-] without a leading dot), pack members inside the pack, no duplicate
 * uid or local name; a bad handle is an error naming the field, never a crash. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ids.h"
#include "common/keygroup.h"
#include "statebackend/backend.h"

#define SB_HANDLE_KIND "flinc.sb.handle"
#define SB_HANDLE_VERSION 1
#define SB_HANDLE_NAME_MAX 63      /* local SST and private file names */
#define SB_HANDLE_PATH_MAX 128     /* the private pack's relative path */
#define SB_HANDLE_MAX_FILES 1000000

struct sb_handle_state {
        char name[SB_STATE_NAME_MAX + 1];
        enum sb_state_kind kind;
        uint64_t ttl_ms;
};

struct sb_handle_file {
        char uid[ID_HEX_LEN + 1];
        char local[SB_HANDLE_NAME_MAX + 1];
        uint64_t size_bytes;
        uint32_t crc32c;
        bool is_new;
};

struct sb_handle_member {
        char name[SB_HANDLE_NAME_MAX + 1];
        uint64_t offset;
        uint64_t size_bytes;
        uint32_t crc32c;
};

struct sb_handle {
        char backend_id[ID_HEX_LEN + 1];
        uint64_t checkpoint_id;
        uint32_t max_parallelism;
        struct kg_range range;
        struct sb_handle_state *states;
        size_t n_states;
        struct sb_handle_file *shared;
        size_t n_shared;
        char private_path[SB_HANDLE_PATH_MAX + 1];
        uint64_t private_size_bytes;
        uint32_t private_crc32c;
        struct sb_handle_member *members;
        size_t n_members;
};

/* A byte string borrowed from the caller (a handle as stored in _metadata). */
struct sb_bytes {
        const void *data;
        size_t len;
};

/* Parses and validates handle bytes. *ret_handle is allocated; free it with
 * sb_handle_free(). Errors: those of envelope_unwrap() (-EBADMSG, -EMEDIUMTYPE,
 * -EPROTONOSUPPORT, -EFBIG), -EINVAL for a missing or bad field (named in err), -ENOMEM. */
int sb_handle_parse(const void *data, size_t len, struct sb_handle **ret_handle, char *err,
                    size_t err_len);

/* Encodes h into a new malloc'ed envelope; the caller frees *ret_data. 0, -EINVAL or
 * -ENOMEM. */
int sb_handle_encode(const struct sb_handle *h, char **ret_data, size_t *ret_len);

/* Accepts NULL. */
void sb_handle_free(struct sb_handle *h);

/* The bytes a restore of this handle reads: its SST files and its private pack. */
uint64_t sb_handle_state_bytes(const struct sb_handle *h);

/* Writes "shared/<uid>.sst" into buf (at least 45 bytes). */
void sb_handle_shared_path(const struct sb_handle_file *f, char *buf, size_t buf_len);
