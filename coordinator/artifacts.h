/* UDF libraries shipped with jobs (Flink: POST /jars/upload and the blob server).
 * Private to coordinator/.
 *
 * An upload (POST /artifacts/upload?name=<file name>, body = the library) is checked and
 * stored content-addressed as
 *
 *     <high-availability.storageDir>/<cluster>/artifacts/<crc32c>_<name>
 *
 * where <crc32c> is the CRC32C of the bytes in 8 lowercase hex digits; "<crc32c>_<name>"
 * is the artifact's id. A job submitted with POST /jobs names uploaded artifacts by id in
 * its `artifacts:` (never paths on the coordinator's host); coord_artifacts_resolve
 * replaces each id by the stored file's file:// URI, which the stored job graph and the
 * deployments carry. Workers copy the file into a local directory, checking the CRC32C
 * of the name, and dlopen the copy (worker/artifacts.h).
 *
 * Checks at upload, in this order: the name (1..COORD_ARTIFACT_NAME_MAX bytes of
 * [A-Za-z0-9._+-], not starting with '.'), a non-empty body, an ELF header of a 64-bit
 * shared object (non-ELF bytes are refused without running anything), then the UDF ABI:
 * flinc_udf_abi_version() is a function, so its answer cannot be read from the file
 * without running the library's code. The coordinator runs it in a separate process: it
 * re-executes its own binary (/proc/self/exe --udf-abi-probe <file>), which sets a CPU
 * limit and no core dumps, dlopens the file with RTLD_LAZY | RTLD_LOCAL, calls the
 * function and prints the version. A library that crashes, loops or corrupts memory in
 * its constructors only takes the probe down; the probe is killed after
 * COORD_ARTIFACT_PROBE_TIMEOUT_MS. (dlopen in the coordinator itself, or in a forked
 * child of its threaded process, is what this avoids.) A version other than
 * FLINC_UDF_ABI_VERSION is refused with "artifact <name>: UDF ABI version <n>, this
 * coordinator speaks <m>". All of this runs on the file-work thread (bgwork.h), never on
 * the loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct coord;
struct job_graph;

#define COORD_ARTIFACT_NAME_MAX 128
#define COORD_ARTIFACT_ID_MAX (8 + 1 + COORD_ARTIFACT_NAME_MAX)
#define COORD_ARTIFACT_PROBE_TIMEOUT_MS 10000
#define COORD_ARTIFACT_PROBE_ARG "--udf-abi-probe"

/* Called on the loop thread when an upload ended. r: 0 (stored: id, path, size set),
 * -EINVAL (refused: msg says why, for a 400), other negative errno (msg says what
 * failed, for a 500). Borrowed strings, valid for the call. */
typedef void (*coord_artifact_done_fn)(struct coord *c, int r, const char *id,
                                       const char *path, uint64_t size, const char *msg,
                                       void *arg);

/* Checks and stores an uploaded library: takes ownership of data (malloc'ed, len
 * bytes; freed here). done runs later on the loop thread, or now for a request refused
 * before any file work (bad name, empty body, not ELF, no storage dir). */
void coord_artifact_upload(struct coord *c, const char *name, char *data, size_t len,
                           coord_artifact_done_fn done, void *arg);

/* For POST /jobs: every entry of g->artifacts must be the id of a stored artifact; each
 * is replaced by the file:// URI of its file. 0, or -EINVAL with err naming
 * artifacts[i] and why (not an id, not uploaded), or -ENOMEM. Runs on the loop (one
 * stat per artifact). */
int coord_artifacts_resolve(struct coord *c, struct job_graph *g, char *err, size_t err_len);

/* The probe process's main (main.c, for COORD_ARTIFACT_PROBE_ARG): prints
 * "abi <version>" or "error <reason>" on stdout. Exit 0, or 1. */
int coord_artifact_probe_main(const char *path);

struct json_writer;

/* GET /artifacts (Flink: GET /jars): {"files": [{"id", "name", "size", "uploaded" (ms
 * since the epoch, the file's mtime)}]}, newest first, of the stored artifacts (an
 * unfinished `.incoming-*` upload is not listed). 0, or -EINVAL with err (no storage
 * dir). A directory that does not exist yet is an empty list. Runs on the loop (one
 * readdir and a stat per file). */
int coord_artifacts_list(struct coord *c, struct json_writer *w, char *err, size_t err_len);

/* DELETE /artifacts/:id (Flink: DELETE /jars/:jarid): removes a stored artifact. 0;
 * -EINVAL (not an artifact id), -ENOENT (not stored), -EBUSY (a job that has not reached
 * a terminal state names it: it may still be deployed again), or another negative errno
 * of the unlink; err says which. Runs on the loop (one unlink). */
int coord_artifact_delete(struct coord *c, const char *id, char *err, size_t err_len);
