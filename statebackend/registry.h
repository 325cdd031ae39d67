/* The shared-file registry the leading coordinator keeps for one job: which retained
 * checkpoint names which file in <job dir>/shared/, so that a file is deleted only when
 * no retained checkpoint names it. It holds no state of its own beyond the handles: after
 * a leader failover, sb_registry_rebuild() from the retained checkpoints' _metadata gives
 * the same registry.
 *
 * Use: on completion of checkpoint n, sb_registry_register(n, its handles) before
 * retiring anything; then sb_registry_retire() each checkpoint beyond
 * state.checkpoints.num-retained and delete the paths it hands back (they are relative
 * to the job dir: shared/<uid>.sst files and the retired checkpoint's private packs;
 * the caller also removes chk-<n>/ with its _metadata).
 *
 * Registration is strict: a handle that reuses (new = false) a shared file the registry
 * does not hold is refused with -ESTALE. That file may already be deleted: the subtask's
 * base was a checkpoint that has been retired since (its confirm never arrived). Abort
 * the checkpoint and make the subtask reset its base (snapshot.h).
 *
 * Files that only an aborted checkpoint uploaded never reach the registry; the backend
 * deletes them (sb_backend_abort()). A sweep of shared/ for files the registry does not
 * hold is only safe while no checkpoint is in flight, and is not done here.
 *
 * Not thread-safe: one thread (the coordinator's loop or one worker of its pool). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "statebackend/handle.h"

struct sb_registry;

/* A list of malloc'ed paths; release with sb_paths_finish(). */
struct sb_paths {
        char **paths;
        size_t n;
};
void sb_paths_finish(struct sb_paths *p);

int sb_registry_create(struct sb_registry **ret_reg);
/* Accepts NULL. */
void sb_registry_destroy(struct sb_registry *reg);

/* Registers completed checkpoint checkpoint_id with the handles of all its keyed
 * subtasks (bytes as sb_snapshot_upload() made them; borrowed for the call). Every
 * handle is parsed and validated first; on any error nothing changes. Errors (named in
 * err): -EEXIST the id is registered already, or a handle marks as new a file the
 * registry already holds; -ESTALE see above; -EINVAL and the other errors of
 * sb_handle_parse(); -ENOMEM. */
int sb_registry_register(struct sb_registry *reg, uint64_t checkpoint_id,
                         const struct sb_bytes *handles, size_t n_handles, char *err,
                         size_t err_len);

/* Retires checkpoint_id and hands back, in *ret_paths, the files no retained checkpoint
 * names any more (relative to the job dir). -ENOENT if it is not registered. */
int sb_registry_retire(struct sb_registry *reg, uint64_t checkpoint_id,
                       struct sb_paths *ret_paths);

/* One retained checkpoint, for rebuild. */
struct sb_registry_checkpoint {
        uint64_t checkpoint_id;
        const struct sb_bytes *handles;
        size_t n_handles;
};

/* A new registry from the retained checkpoints (any order). Reused files unknown to the
 * rebuilt registry are accepted here: their uploader was retired before the failover and
 * they survived because these checkpoints name them. Errors as for register. */
int sb_registry_rebuild(const struct sb_registry_checkpoint *cps, size_t n_cps,
                        struct sb_registry **ret_reg, char *err, size_t err_len);

/* Whether a retained checkpoint names this path (relative to the job dir). */
bool sb_registry_holds(const struct sb_registry *reg, const char *rel_path);
/* Registered checkpoints, and shared files held with their total size. */
size_t sb_registry_checkpoint_count(const struct sb_registry *reg);
size_t sb_registry_shared_count(const struct sb_registry *reg);
uint64_t sb_registry_shared_bytes(const struct sb_registry *reg);
/* Every path a retained checkpoint names (shared files and packs), sorted. */
int sb_registry_list(const struct sb_registry *reg, struct sb_paths *ret_paths);
