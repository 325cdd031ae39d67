/* Restore of a keyed subtask's backend from the state handles of one checkpoint.
 *
 * Same parallelism: one handle whose key-group range equals the subtask's. Its files are
 * copied into <local_dir>/db (each checked for size and CRC32C against the handle; the
 * pack's members too) and RocksDB opens them. The restored files become the base of the
 * next incremental checkpoint, which therefore copies only what changed.
 *
 * Changed parallelism (rescale): every handle whose range overlaps the subtask's. The
 * one with the largest overlap is copied in as above and clipped with delete-range to the
 * new range; its files become the base. Each other one is copied into
 * <local_dir>/restore-<i>, opened read-only, and the keys of the new range are written
 * into the new database; then the copy is removed. Every key ends in the subtask whose
 * range holds its key group, because keys are ordered by key group (backend.h).
 *
 * The caller may pass all handles of the operator; those that do not overlap are
 * ignored. The overlapping ones must cover the whole new range and agree on the max
 * parallelism (-EINVAL otherwise). States in the handles but not in cfg->states are kept
 * and carried into later checkpoints; a state declared with another kind, or with TTL
 * switched on or off, is -EINVAL (its stored format differs).
 *
 * The base after a restore names files in the job_dir it was restored from. When that is
 * not where the next checkpoints go (a new job started from another job's retained
 * checkpoint), call sb_backend_reset_base() so that the first checkpoint is complete;
 * otherwise the registry refuses it with -ESTALE, with the same end result one
 * checkpoint later. */
#pragma once

#include <stddef.h>

#include "statebackend/backend.h"
#include "statebackend/handle.h"

/* job_dir is the local path of <checkpoints.dir>/<job>. On success *ret_backend is a
 * backend as from sb_backend_create(). Errors (the file or field named in err):
 * -ENOENT a file is missing in checkpoint storage, -EBADMSG a file's size or CRC32C
 * differs from the handle (or RocksDB finds it corrupt), -EINVAL bad or inconsistent
 * handles, file system and RocksDB errors. On error nothing stays open, the local
 * directories the restore made are removed and *ret_backend is untouched. */
int sb_backend_restore(struct sb_env *env, const struct sb_backend_config *cfg,
                       const char *job_dir, const struct sb_bytes *handles, size_t n_handles,
                       struct sb_backend **ret_backend, char *err, size_t err_len);
