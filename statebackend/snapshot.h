/* Incremental checkpoints of a backend, in two parts as DESIGN.md's checkpoint protocol
 * says. The synchronous part runs on the task thread at the barrier, milliseconds, and
 * never waits for an fsync of its own: it flushes the memtables of every state (all
 * flushes queued first, then waited for), records the MANIFEST that CURRENT names and
 * its size and hard-links that MANIFEST, every SST file of the database and the newest
 * OPTIONS file into <local_dir>/snap-<n>, and checks that CURRENT and the size did not
 * change meanwhile (else it links again; snapshot.c says why that is a consistent
 * snapshot while compactions run). The asynchronous part first completes it: the MANIFEST cut to the
 * recorded size, CURRENT written, the directory opened read-only by RocksDB and every SST
 * file its MANIFEST does not name removed. (Should the memtables not be empty after the
 * flush, which RocksDB should not do, the synchronous part falls back to RocksDB's own
 * checkpoint, which flushes again and fsyncs its copies.) Then, on the snapshot thread,
 * it copies to <job dir>/shared/<uid>.sst only the SST files that the last *confirmed*
 * checkpoint does not already hold, each verified block by block (RocksDB's own block
 * checksums, see sst.c) and CRC32C-checked while copied, under a fresh random uid (never
 * the local name); it packs MANIFEST, CURRENT and OPTIONS into
 * <job dir>/chk-<n>/sb-<backend id>.pack; and it returns the state handle (handle.h).
 *
 * Base rules (FLINK-25395, FLINK-24611, FLINK-29913): the base, the set of files a new
 * checkpoint may reuse, is the file list of the last checkpoint passed to
 * sb_backend_confirm(), kept as local name -> (uid, size, CRC32C). It is never an
 * unconfirmed checkpoint. A checkpoint's uploads are its own; sb_backend_abort() deletes
 * them and no later handle can name them. If the registry refuses a handle because it
 * reuses a file that is no longer retained (a lost confirm notification: -ESTALE from
 * sb_registry_register()), abort that checkpoint and call sb_backend_reset_base(): the
 * next checkpoint uploads everything again.
 *
 * Threads. sb_snapshot_sync() is a task-thread call like the state calls (backend.h).
 * sb_snapshot_upload() and sb_snapshot_destroy() may run on any thread, concurrently
 * with the task thread's state calls and snapshots and with other snapshots' uploads;
 * one snapshot is used by one thread at a time. sb_backend_confirm(), sb_backend_abort()
 * and sb_backend_reset_base() may be called from any thread. A snapshot holds its own
 * reference to what it needs, so it may outlive the backend: upload still works after
 * sb_backend_destroy() (a destroyed backend can no longer be confirmed or aborted, so
 * files uploaded for a checkpoint that is then aborted stay as orphans in shared/), but
 * not a new backend created on the same local directory, which removes old snap-* dirs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "statebackend/backend.h"

struct sb_snapshot;

/* Synchronous part for checkpoint_id (> 0, not used before on this backend). Records the
 * current base for the upload. *ret_snap is owned by the caller: destroy it with
 * sb_snapshot_destroy() after the upload or to drop the snapshot. On error nothing is
 * left in <local_dir>. */
int sb_snapshot_sync(struct sb_backend *b, uint64_t checkpoint_id,
                     struct sb_snapshot **ret_snap, char *err, size_t err_len);

uint64_t sb_snapshot_checkpoint_id(const struct sb_snapshot *snap);

/* Starts flushing every state's memtable in the background and returns at once
 * (RocksDB's flush without waiting). A caller that snapshots periodically calls it about
 * midway between two snapshots, so that the flush inside the next sb_snapshot_sync, which
 * stalls its task thread, has only the writes since then left, while the rest was
 * written by RocksDB's flush thread in parallel. Task thread. 0 or a negative errno. */
int sb_backend_flush_async(struct sb_backend *b, char *err, size_t err_len);

/* Where the synchronous part's time went. */
struct sb_sync_stats {
        uint64_t memtable_entries; /* in the active memtables before the flush */
        uint64_t flush_us;         /* flushing them to SST files */
        uint64_t checkpoint_us;    /* the hard links (or RocksDB's checkpoint, see above) */
};

void sb_snapshot_get_sync_stats(const struct sb_snapshot *snap,
                                struct sb_sync_stats *ret_stats);

struct sb_upload_stats {
        uint32_t sst_files;        /* SST files the handle names */
        uint32_t new_sst_files;    /* of which this upload copied */
        uint64_t new_sst_bytes;
        uint64_t reused_sst_bytes;
        uint64_t private_bytes;    /* the pack */
        uint64_t copied_bytes;     /* new_sst_bytes + private_bytes */
        uint64_t state_bytes;      /* everything the handle names */
};

/* Asynchronous part. job_dir is the local path of <checkpoints.dir>/<job>; shared/ and
 * chk-<n>/ are created in it as needed. On success *ret_handle is a malloc'ed state
 * handle (the caller frees it) and, if ret_stats is non-NULL, what was copied.
 * Errors (named in err): -EBADMSG a local SST fails its block checksums (err names the
 * file; nothing of this upload is left in job_dir): the local state is corrupt, so
 * decline the checkpoint and fail the task, which restores from the last completed
 * checkpoint; a corrupt file never reaches checkpoint storage (FLINK-27681).
 * -ECANCELED the checkpoint was aborted meanwhile, -EALREADY the snapshot was uploaded
 * before, file system errors. A failed upload deletes what it copied. */
int sb_snapshot_upload(struct sb_snapshot *snap, const char *job_dir, char **ret_handle,
                       size_t *ret_len, struct sb_upload_stats *ret_stats, char *err,
                       size_t err_len);

/* Removes the local snapshot directory and frees snap. Accepts NULL. Does not touch
 * anything uploaded: confirm or abort the checkpoint for that. */
void sb_snapshot_destroy(struct sb_snapshot *snap);

/* Checkpoint checkpoint_id completed: its file list becomes the base. Uploads of older
 * checkpoints that were neither confirmed nor aborted are forgotten (their files belong
 * to the coordinator's registry if they completed). -ENOENT if this backend has no
 * finished upload for checkpoint_id (the base is unchanged). */
int sb_backend_confirm(struct sb_backend *b, uint64_t checkpoint_id);

/* Checkpoint checkpoint_id is aborted: deletes what its upload copied (now, or when an
 * upload in progress notices). Idempotent: unknown ids return 0. Returns the first
 * deletion error, if any (named in err); the checkpoint is dropped regardless. */
int sb_backend_abort(struct sb_backend *b, uint64_t checkpoint_id, char *err, size_t err_len);

/* Forgets the base: the next snapshot uploads all its files. */
void sb_backend_reset_base(struct sb_backend *b);

/* The id of the checkpoint that is the base, 0 if none (or a restored checkpoint's id). */
uint64_t sb_backend_base_checkpoint(struct sb_backend *b);
