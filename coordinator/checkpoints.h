/* The leader's checkpoint coordinator (checkpoints.c): per job, the checkpoint state
 * machine, restore of (re)started attempts, savepoints, and the Flink-shaped checkpoint
 * views. Private to coordinator/; everything runs on the loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct coord;
struct coord_job;
struct coord_worker;
struct coord_ckpt;
struct json_writer;
struct savepoint_req;

/* Gives j its checkpoint state (idempotent). 0 or -ENOMEM. */
int coord_ckpt_create(struct coord_job *j);
/* Accepts NULL. */
void coord_ckpt_destroy(struct coord_ckpt *k);

/* One step of j's checkpoint state machine (reconcile, only while acting): triggers,
 * finishes, aborts. */
void coord_ckpt_step(struct coord *c, struct coord_job *j);

/* PROTO_ACK_CHECKPOINT / PROTO_DECLINE_CHECKPOINT from w (validated here). */
void coord_ckpt_on_ack(struct coord *c, struct coord_worker *w, const msgpack_object *map);
void coord_ckpt_on_decline(struct coord *c, struct coord_worker *w, const msgpack_object *map);

/* Before deploying an attempt: 1 when what it restores from is known (the latest
 * completed checkpoint, the savepoint the job was submitted with, or nothing), 0 while
 * that is being read (a reconcile follows), -EBADMSG when it cannot be read (the job was
 * failed through coord_jobs_restore_failed, naming the file). */
int coord_ckpt_restore_prepare(struct coord *c, struct coord_job *j);
/* The checkpoint the next deployment restores from (0: none). */
uint64_t coord_ckpt_restore_id(const struct coord_job *j);
/* The directory its state handles' relative paths resolve against ("" for none):
 * <state.checkpoints.dir>/<job>, or a savepoint's directory. Borrowed from j. */
const char *coord_ckpt_restore_dir(const struct coord_job *j);
/* Packs the deploy fields: "restore": [bin ...] of one task, "peers": [...] of the job. */
void coord_ckpt_pack_task_restore(const struct coord_job *j, uint32_t chain, uint32_t subtask,
                                  msgpack_packer *pk);
void coord_ckpt_pack_peers(const struct coord_job *j, msgpack_packer *pk);
/* The attempt was deployed: counts the restore, the next start looks again. */
void coord_ckpt_deployed(struct coord_job *j);

/* POST /jobs?savepointPath=...: the job's first start restores from that savepoint
 * (a directory or its _metadata). 0 or an error in err. */
int coord_ckpt_set_savepoint_restore(struct coord_job *j, const char *path, char *err,
                                     size_t err_len);
/* POST /jobs/:id/savepoints: 0 and the trigger id, or an error in err (-EINVAL bad
 * request, -EAGAIN job not running). */
int coord_ckpt_savepoint_trigger(struct coord_job *j, const char *target, bool cancel_job,
                                 char *ret_trigger_id, char *err, size_t err_len);
void coord_ckpt_savepoint_completed(struct coord_ckpt *k, struct savepoint_req *sp);

/* Flink's CheckpointingStatistics, CheckpointConfigInfo, and the savepoint status. */
void coord_view_checkpoints(struct coord *c, const struct coord_job *j, struct json_writer *w);
void coord_view_checkpoint_config(struct coord *c, const struct coord_job *j,
                                  struct json_writer *w);
int coord_view_savepoint_status(struct coord *c, const struct coord_job *j, const char *trigger,
                                struct json_writer *w);

/* rest.c: the body of POST /jobs/:id/savepoints. 0 or -EINVAL with err. */
int coord_rest_parse_savepoint_body(const char *text, size_t len, char *target,
                                    size_t target_len, bool *cancel_job, char *err,
                                    size_t err_len);
/* jobs.c: coord_jobs_submit with a savepoint to restore the first attempt from (NULL:
 * none). */
struct job_graph;
typedef void (*coord_submit_done_fn)(struct coord *c, int r, const char *job_id,
                                     const char *msg, void *arg);
void coord_jobs_submit_from(struct coord *c, struct job_graph *g, const char *savepoint_path,
                            coord_submit_done_fn done, void *arg);

/* jobs.c: the restore of j's next attempt cannot be read; fails the job, naming why. */
void coord_jobs_restore_failed(struct coord_job *j, const char *msg);
