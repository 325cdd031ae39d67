/* Fetching a job's UDF libraries from storage (Flink: the blob cache of a task manager).
 *
 * A job submitted through the coordinator names each artifact by its storage reference,
 * file://<high-availability.storageDir>/<cluster>/artifacts/<crc32c>_<name>
 * (coordinator/artifacts.h). At deployment the worker copies each one into a local
 * per-attempt directory, <worker dir>/artifacts/<job>-<epoch>-<attempt>/<crc32c>_<name>
 * (the worker dir is <io.tmp.dirs or state.backend.rocksdb.localdir>/flinc-worker-<id>),
 * checks while copying that the bytes have the CRC32C the name carries, and rewrites the
 * graph's entry to the local copy, which ops.c dlopens (and checks the UDF ABI of, as
 * before). The directory is removed when the attempt's last task on this worker ended,
 * and the whole artifacts/ directory when the worker stops.
 *
 * The copy runs on the control loop thread, inside the deploy handler: a library is at
 * most rest.server.max-content-length (100 MiB by default) and typically tens of KiB, so
 * this blocks the loop for milliseconds, far below heartbeat.timeout; a file-work
 * thread would be the next step if libraries grow large.
 *
 * A plain absolute path (no file:// scheme) is left as it is: a deployment made
 * straight to a worker (tests) may name a library every worker sees locally. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct job_graph;

/* Copies g's file:// artifacts into dir (created) and points g at the copies. 0, or a
 * negative errno with err naming the artifact: -EINVAL (the name carries no checksum),
 * -ENOENT and other copy errors, -EBADMSG (the stored bytes do not match the checksum:
 * "artifact <id>: checksum mismatch ..."). On failure dir may hold some copies; the
 * caller removes it (wrk_artifacts_remove). */
int wrk_artifacts_fetch(struct job_graph *g, const char *dir, char *err, size_t err_len);

/* The local directory of an attempt's artifacts under base into buf. 0 or -ENAMETOOLONG. */
int wrk_artifacts_dir(const char *base, const char *job, uint64_t epoch, uint32_t attempt,
                      char *buf, size_t len);

/* Whether g has artifacts to fetch (file:// ones). */
int wrk_artifacts_needed(const struct job_graph *g);
