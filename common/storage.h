/* Storage URIs for high-availability.storageDir, state.checkpoints.dir and
 * state.savepoints.dir. file:// (a local disk or a shared mount) is the one scheme;
 * hdfs:// and others are refused with a reason. */
#pragma once

#include <stddef.h>

/* Resolves "file:///abs/path" (or a plain absolute path) to a local path in buf, with
 * trailing slashes removed. Errors: -EPROTONOSUPPORT for another scheme (hdfs://, s3://)
 * and -EINVAL for a relative path or a file:// URI with a host; err gets a reason that
 * says what is expected. */
int storage_uri_to_path(const char *uri, char *buf, size_t buf_len, char *err, size_t err_len);
