/* The exactly-once file sink's part files and their two-phase commit (DESIGN.md
 * "Checkpoint protocol": in-progress part files become pending at the barrier and final
 * on checkpoint completion). This module owns the file transitions only; the operator
 * (ops.c) feeds it lines and the task calls it at barriers and notifications.
 *
 * DIRECTORY LAYOUT of a sink path <path> (vertex = the sink's index in
 * job_graph.vertices, subtask = its subtask index, seq = a per-(vertex, subtask) counter
 * that never repeats among committed files):
 *   <path>/part-<vertex>-<subtask>-<seq>               committed: what readers and the
 *                                                      exactly-once checkers read
 *   <path>/.part-<vertex>-<subtask>-<seq>.inprogress   being written (hidden)
 *   <path>/.part-<vertex>-<subtask>-<seq>.pending      closed, waiting for its checkpoint
 *                                                      to complete (hidden)
 * Readers take the files whose names start with "part-" and ignore dot files.
 *
 * TRANSITIONS
 *   write      lines go to the in-progress file (created on the first line after a
 *              barrier); at part_size bytes it is fsynced and renamed to pending (it is
 *              owned by the next barrier).
 *   barrier n  the in-progress file (if any) is fsynced and renamed to pending; every
 *              pending file not owned by a checkpoint yet becomes owned by n. The
 *              subtask state records the pending files not committed yet and next_seq.
 *   complete n every pending file owned by a checkpoint <= n is renamed to its final
 *              name (then the directory is fsynced). An aborted checkpoint's files stay
 *              pending and go with the next completed one.
 *   end        end of input of a bounded job: the in-progress file and every pending one
 *              are committed at once (a batch job's output is complete when it
 *              FINISHES; with checkpoints off there is nothing else to commit them).
 *   restore    from the states of checkpoint n (one or several when the parallelism
 *              changed): each pending file they list is committed (renamed if still
 *              pending; already final is fine: the notification had arrived), of those
 *              whose owner subtask j has j mod p == this subtask; then
 *              every hidden file of the sink's vertex whose subtask index j satisfies
 *              j mod p == this subtask is deleted (it was written after n); next_seq
 *              becomes one more than the largest seq of this subtask's files on disk
 *              that survive the cleanup (the seq of a deleted file may be used again: its
 *              name was never committed).
 *   A canceled task leaves its in-progress file; the restore of the next attempt
 *   deletes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRK_SINK_NAME_MAX 96u
#define WRK_SINK_MAX_PENDING 100000u

/* A pending part file, named by its owner subtask and seq. */
struct wrk_sink_file {
        uint32_t subtask;
        uint64_t seq;
        uint64_t checkpoint_id; /* owner checkpoint; 0 = the next barrier */
};

struct wrk_sink2pc;

struct wrk_sink2pc_config {
        const char *dir;           /* local directory (created if missing) */
        uint32_t vertex;
        uint32_t subtask;
        uint32_t parallelism;
        uint64_t part_size_bytes;  /* roll threshold; 0 = never */
        /* Restore: the pending files listed by the restored states given to this
         * subtask. Of these it commits those whose owner subtask j has
         * j mod parallelism == subtask, so with a changed parallelism every new subtask
         * may be given all old states (as the generator's redistribution needs) and each
         * file is still committed by exactly one of them. */
        const struct wrk_sink_file *restored;
        size_t n_restored;
        bool restore; /* a restore (also of a state with nothing pending): clean up */
};

/* Opens the sink directory and applies the restore rules. 0 and *ret, or a negative
 * errno with the path in err. */
int wrk_sink2pc_open(const struct wrk_sink2pc_config *cfg, struct wrk_sink2pc **ret, char *err,
                     size_t err_len);

/* Appends bytes (whole lines) to the in-progress file, rolling at part_size. */
int wrk_sink2pc_write(struct wrk_sink2pc *s, const void *data, size_t len, char *err,
                      size_t err_len);

/* Barrier n: see above. *ret_files (malloc'ed, caller frees) lists every pending file
 * not committed yet, for the subtask state; *ret_next_seq the counter. */
int wrk_sink2pc_barrier(struct wrk_sink2pc *s, uint64_t checkpoint_id,
                        struct wrk_sink_file **ret_files, size_t *ret_n,
                        uint64_t *ret_next_seq, char *err, size_t err_len);

/* Checkpoint n completed: commits what n and older checkpoints own. *ret_committed
 * (may be NULL) counts the files. */
int wrk_sink2pc_commit(struct wrk_sink2pc *s, uint64_t checkpoint_id, size_t *ret_committed,
                       char *err, size_t err_len);

/* End of input: commits everything. */
int wrk_sink2pc_end(struct wrk_sink2pc *s, char *err, size_t err_len);

/* Closes files without committing. NULL is fine. */
void wrk_sink2pc_destroy(struct wrk_sink2pc *s);

/* Names (pure): 0 or -ENOSPC. */
int wrk_sink_final_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask, uint64_t seq);
int wrk_sink_inprogress_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask,
                             uint64_t seq);
int wrk_sink_pending_name(char *buf, size_t len, uint32_t vertex, uint32_t subtask,
                          uint64_t seq);

/* Parses a name of this layout: 1 and the parts (*ret_state 0 final, 1 in progress,
 * 2 pending), or 0 when it is no part file. */
int wrk_sink_parse_name(const char *name, uint32_t *ret_vertex, uint32_t *ret_subtask,
                        uint64_t *ret_seq, int *ret_state);

uint64_t wrk_sink2pc_next_seq(const struct wrk_sink2pc *s);
