/* The leader's pointer stores in ZooKeeper (DESIGN.md "ZooKeeper layout"):
 *
 *   <base>/jobs/<job>/graph                 pointer {path, size, crc} to the job graph file
 *                                           <storageDir>/<cluster>/jobs/<job>/graph-<uuid>
 *   <base>/jobs/<job>/checkpoint-counter    {value}: the last checkpoint id handed out
 *   <base>/jobs/<job>/checkpoints/<19-digit n>  pointer {id, path, size, crc} to chk-n/_metadata
 *   <base>/job-results/<job>                {job, state, end_ms, epoch}
 *
 * Every write is one multi whose first op is check(<base>/epoch, version of our claim)
 * (ha/election.h): a deposed leader's write fails in ZooKeeper, the store reports
 * -ESTALE and tells the election, which gives up leadership ("fenced"). A write waits
 * while the leader is suspended (the election settles that within its lease: resumed,
 * and the write goes on, or lost) and fails with -ESTALE when this process is not, or
 * no longer, the leader of the term the operation started in; reads work on any
 * process (election may be NULL for a read-only store: writes fail with -EPERM).
 *
 * Ambiguous writes (the connection broke before the answer) are reconciled: the store
 * waits for the connection, reads back and either finds its write (success) or tries
 * again (still fenced by the same epoch). It never deletes a storage file a pointer may
 * name: a job graph file written for a put whose outcome was ever ambiguous is left in
 * place even when the put finally failed (reply.orphan names it). A pointer whose
 * payload is corrupt is an error (-EBADMSG) whose text names the znode: never a silent
 * fallback to an older one.
 *
 * Operations run one at a time, in the order they were submitted, on the loop thread;
 * each completes exactly once through its callback, never from inside the call that
 * submitted it. Disk I/O of job graph files (a few KiB) is done on the loop thread;
 * checkpoint metadata files are not read by the store (the caller passes size and crc).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/payload.h"

struct ha_zk;
struct ha_election;
struct ha_store;

struct ha_store_options {
        const char *base_path;   /* "<root>/<cluster>", e.g. "/flinc/default" */
        const char *cluster_id;  /* names the storage subfolder */
        const char *storage_dir; /* high-availability.storageDir, file:// URI or absolute path;
                                  * NULL for a store that does not put or get job graphs */
        int64_t job_result_ttl_ms;  /* ha_jobresult_expire(): results whose end time is older
                                     * than this are removed (0 or less: never) */
        size_t max_graph_bytes;     /* largest job graph file read back (0: 64 MiB) */
};

/* What an operation produced. Everything is borrowed for the duration of the callback. */
struct ha_store_reply {
        int r;              /* 0 or a negative errno */
        const char *error;  /* NULL on success, else one line naming the znode or file */
        const char *job;    /* the job the operation was about ("" for list operations) */
        bool ambiguous;     /* a write's outcome was unknown at some point and was
                             * reconciled by reading back */

        const void *data;   /* jobgraph_get: the graph bytes as put */
        size_t len;
        const struct ha_pointer *pointer; /* jobgraph_put/get: the graph pointer;
                                           * checkpoint_latest: the checkpoint pointer */
        const char *orphan; /* jobgraph_put that failed after an ambiguous write: the
                             * payload file left in place (a pointer may name it) */

        const char *const *names; /* jobgraph_list, jobs_recoverable: job ids, sorted */
        size_t n_names;

        uint64_t id;        /* counter_next: the new id; counter_get: the last one handed
                             * out (0: none); checkpoint_add/latest: the checkpoint id */
        const uint64_t *ids; /* checkpoint_list: retained ids, ascending; checkpoint_add:
                              * the ids it subsumed (their files may now be deleted) */
        size_t n_ids;

        const struct ha_job_result *results; /* jobresult_get (1), jobresult_list,
                                              * jobresult_expire (the removed ones) */
        size_t n_results;
};

typedef void (*ha_store_cb)(struct ha_store *st, const struct ha_store_reply *reply,
                            void *userdata);

/* Creates a store on zk (which must outlive it). election may be NULL: then every write
 * fails with -EPERM. Options are copied. 0, -EINVAL (bad base path or storage URI) or
 * -ENOMEM. */
int ha_store_create(struct ha_zk *zk, struct ha_election *election,
                    const struct ha_store_options *options, struct ha_store **ret);

/* Operations not yet completed complete now with -ECANCELED (requests in flight are
 * dropped when they come back). Accepts NULL; from inside one of the store's callbacks
 * it takes effect when that callback returns. */
void ha_store_destroy(struct ha_store *st);

/* Every submit function returns 0 when the operation was queued (cb will run exactly
 * once), or -EINVAL (a job id that is not 1..127 of [A-Za-z0-9_.-], not "." or "..";
 * other bad arguments) / -ENOMEM, and then cb never runs. job ids and buffers are
 * copied. */

/* Writes the graph file atomically, then points jobs/<job>/graph at it (creating the
 * job's znode if needed); the previous graph file is deleted once the new pointer is
 * in place. */
int ha_jobgraph_put(struct ha_store *st, const char *job, const void *data, size_t len,
                    ha_store_cb cb, void *userdata);
/* -ENOENT when the job has no graph; -EBADMSG when the pointer or the file is corrupt
 * (the error names the znode, and the file). */
int ha_jobgraph_get(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);
/* Jobs that have a graph pointer. */
int ha_jobgraph_list(struct ha_store *st, ha_store_cb cb, void *userdata);
/* Removes jobs/<job> with its counter and checkpoint pointers (fenced, one multi), then
 * the job's graph files. Checkpoint files are the caller's. -ENOENT if there is no such
 * job. */
int ha_jobgraph_remove(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);

/* Hands out the next checkpoint id of the job (compare-and-set on the counter, fenced):
 * ids are unique and increasing across leaders; an id may be skipped after an ambiguous
 * write, never repeated. The first id is 1. */
int ha_counter_next(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);
/* The same, with the new id above `floor` too: max(counter, floor) + 1. A job restored
 * from a savepoint (another job's checkpoint n) takes its ids after n, as Flink's
 * checkpoint coordinator does after a restore: checkpoint n of the restored state exists
 * in the job's directory and registry already. */
int ha_counter_next_above(struct ha_store *st, const char *job, uint64_t floor,
                          ha_store_cb cb, void *userdata);
int ha_counter_get(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);

/* Adds checkpoint p->id of the job (newer than every retained one, else -EINVAL) and
 * removes the oldest pointers beyond `retain` (>= 1) in the same fenced multi; reply.ids
 * lists the subsumed ids. -EEXIST if that id exists with another pointer. */
int ha_checkpoint_add(struct ha_store *st, const char *job, const struct ha_pointer *p,
                      unsigned retain, ha_store_cb cb, void *userdata);
/* The newest checkpoint: reply.id and reply.pointer. -ENOENT when there is none;
 * -EBADMSG naming the znode when its payload is corrupt (no fallback to an older one). */
int ha_checkpoint_latest(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);
int ha_checkpoint_list(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);
int ha_checkpoint_remove(struct ha_store *st, const char *job, uint64_t id, ha_store_cb cb,
                         void *userdata);

/* Records a job's terminal state (fenced). Do this before any cleanup of the job: a job
 * with a result is never returned by ha_jobs_recoverable(). Recording the same state
 * again is a no-op; another state replaces it. */
int ha_jobresult_put(struct ha_store *st, const struct ha_job_result *result, ha_store_cb cb,
                     void *userdata);
int ha_jobresult_get(struct ha_store *st, const char *job, ha_store_cb cb, void *userdata);
int ha_jobresult_list(struct ha_store *st, ha_store_cb cb, void *userdata);
/* Removes results whose end time is older than the TTL at now_wall_ms (wall clock, ms),
 * each in a fenced multi that also asserts that jobs/<job> is gone (so a job's result
 * never disappears while its graph lingers). reply.results lists the removed ones. */
int ha_jobresult_expire(struct ha_store *st, int64_t now_wall_ms, ha_store_cb cb,
                        void *userdata);

/* Jobs a new leader must run: those with a graph pointer and no job result. */
int ha_jobs_recoverable(struct ha_store *st, ha_store_cb cb, void *userdata);

/* true for 1..127 bytes of [A-Za-z0-9_.-], not "." or "..". */
bool ha_store_job_id_valid(const char *job);
