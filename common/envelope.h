/* The envelope around every payload flinc stores (ZooKeeper node data, metadata files):
 * a msgpack map {"kind": str, "v": uint, "crc": uint32, "body": bin}. kind is the magic
 * ("flinc.leader", "flinc.chk.metadata", ...), v the format version of the body, crc
 * the CRC32C of the body bytes. Nothing is ever stored as a raw struct. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest envelope unwrap accepts (16 MiB). */
#define ENVELOPE_MAX_BYTES (16u << 20)

/* Wraps body into a new malloc'ed envelope (*ret_data, *ret_len); caller frees.
 * 0 or -ENOMEM / -EINVAL. */
int envelope_wrap(const char *kind, uint32_t version, const void *body, size_t body_len,
                  char **ret_data, size_t *ret_len);

/* Checks an envelope of the expected kind with a version in [1, max_version] and a
 * matching CRC, and returns a malloc'ed copy of its body (caller frees). Errors:
 * -EBADMSG (not an envelope, truncated, CRC mismatch), -EMEDIUMTYPE (another kind),
 * -EPROTONOSUPPORT (version unknown), -EFBIG (over ENVELOPE_MAX_BYTES). When err is
 * non-NULL a one-line reason is written to it. */
int envelope_unwrap(const void *data, size_t len, const char *kind, uint32_t max_version,
                    char **ret_body, size_t *ret_body_len, uint32_t *ret_version,
                    char *err, size_t err_len);
