/* The subtask state: what one subtask acks for a checkpoint (PROTO_ACK_CHECKPOINT
 * `state`) and what a deployment hands back to restore from (PROTO_DEPLOY `restore`).
 * The coordinator stores it opaque in chk-<n>/_metadata; only its keyed handles matter
 * to it (for the shared-file registry), and it can find them with wrk_substate_decode.
 *
 * FORMAT: an envelope (common/envelope.h) of kind WRK_SUBSTATE_KIND
 * ("flinc.subtask-state"), version 1, whose body is a msgpack map:
 *
 *   "chk"      uint  checkpoint id
 *   "vertex"   uint  chain index (job_graph.chains) of the subtask
 *   "subtask"  uint  subtask index
 *   "par"      uint  parallelism of the chain when the state was taken
 *   "ops"      [ per operator with state, in chain order:
 *     {"op":     str   the step id (job file `id`: Flink's uid; state follows it across
 *                      job versions),
 *      "keyed":  bin   optional: the keyed state handle of statebackend/handle.h
 *                      (envelope "flinc.sb.handle"); present for count/sum/min/max/
 *                      reduce,
 *      "gen":    [[modulus, residue, next], ...]  optional: generator position, a list
 *                      state redistributed as worker/dataflow.h says,
 *      "file":   [[start, end, offset], ...]  optional: file source splits (byte range
 *                      of the input, aligned to line starts, and the offset of the next
 *                      line to read),
 *      "sink":   {"next_seq": uint, "pending": [[subtask, seq, chk], ...]}  optional:
 *                      file sink part files pending at this checkpoint (sink2pc.h)} ]
 *
 * Every field is validated on decode; a bad state is an error naming the field. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jobgraph.h"
#include "worker/dataflow.h"
#include "worker/sink2pc.h"

#define WRK_SUBSTATE_KIND "flinc.subtask-state"
#define WRK_SUBSTATE_VERSION 1
#define WRK_SUBSTATE_MAX_OPS JOB_MAX_VERTICES
#define WRK_SUBSTATE_MAX_ENTRIES 1000000u

struct wrk_substate_op {
        char op[JOB_ID_MAX + 1];
        /* keyed handle bytes; owned (malloc'ed) after decode, borrowed for encode */
        void *keyed;
        size_t keyed_len;
        bool has_gen;
        struct wrk_gen_entry *gen;
        size_t n_gen;
        bool has_file;
        struct wrk_file_split *file;
        size_t n_file;
        bool has_sink;
        uint64_t sink_next_seq;
        struct wrk_sink_file *pending;
        size_t n_pending;
};

struct wrk_substate {
        uint64_t checkpoint_id;
        uint32_t vertex;
        uint32_t subtask;
        uint32_t parallelism;
        struct wrk_substate_op *ops;
        size_t n_ops;
};

/* Encodes st: *ret is a malloc'ed envelope (caller frees). 0, -ENOMEM or -EINVAL. */
int wrk_substate_encode(const struct wrk_substate *st, char **ret, size_t *ret_len);

/* Decodes and validates; *ret owns everything (wrk_substate_free). 0 or -EBADMSG /
 * -EMEDIUMTYPE / -EPROTONOSUPPORT / -EFBIG (envelope), -EINVAL (a field, named in err),
 * -ENOMEM. */
int wrk_substate_decode(const void *data, size_t len, struct wrk_substate **ret, char *err,
                        size_t err_len);

/* Frees a decoded state (all arrays and keyed bytes). NULL is fine. */
void wrk_substate_free(struct wrk_substate *st);

/* The op entry of step id `op`, or NULL. Borrowed. */
const struct wrk_substate_op *wrk_substate_find(const struct wrk_substate *st, const char *op);
