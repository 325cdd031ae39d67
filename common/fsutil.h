/* File helpers with the durability rules of DESIGN.md: every file is written to a
 * temporary name in the same directory, fsynced, renamed into place, and the directory
 * fsynced. A crash or error at any step leaves the old file (or none) intact. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all of data to fd, retrying short writes and EINTR. 0 or a negative errno. */
int fs_write_full(int fd, const void *data, size_t len);

/* Writes data to path atomically. 0 or a negative errno; on error the temporary file is
 * removed and whatever was at path before is unchanged. */
int fs_write_atomic(const char *path, const void *data, size_t len);

/* Copies src to dst atomically (as fs_write_atomic), returning the CRC32C and size of
 * what was copied when ret_* are non-NULL. If expect_crc is non-NULL the source's CRC
 * is checked against it while copying and -EBADMSG returned on mismatch (nothing is
 * left at dst). */
int fs_copy_atomic(const char *src, const char *dst, const uint32_t *expect_crc,
                   uint32_t *ret_crc, uint64_t *ret_size);

/* Reads a whole file of at most max_bytes. *ret_data is malloc'ed (NUL-terminated
 * beyond *ret_len, for convenience); the caller frees it. -EFBIG past max_bytes. */
int fs_read_all(const char *path, size_t max_bytes, char **ret_data, size_t *ret_len);

/* CRC32C and size of a file's content. */
int fs_crc32c_file(const char *path, uint32_t *ret_crc, uint64_t *ret_size);

/* mkdir -p; existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode);

/* fsyncs a directory (after creating, renaming or removing entries in it). */
int fs_fsync_dir(const char *dir);

/* rm -rf; a missing path is fine. */
int fs_rm_rf(const char *path);

/* Test hook: when set to a step name ("after-temp-write", "before-rename"),
 * fs_write_atomic and fs_copy_atomic fail with -EIO at that step, once. */
void fs_inject_fault(const char *step);
