/* Errors: functions return 0 on success or a negative errno. ZooKeeper return codes and
 * RocksDB error strings are translated here, at one point each; callers keep the
 * original text (zerror(), the RocksDB string) for the message they log. */
#pragma once

#include <stddef.h>

/* Text for a negative (or positive) errno; never NULL, static storage. */
const char *err_str(int r);

/* ZooKeeper return code (ZOK, ZNONODE, ...) to 0 or a negative errno:
 *   ZNONODE -ENOENT, ZNODEEXISTS -EEXIST, ZBADVERSION -ESTALE (a fenced write lost),
 *   ZCONNECTIONLOSS and ZSESSIONMOVED -ECONNRESET (outcome unknown: read back and
 *   reconcile),
 *   ZOPERATIONTIMEOUT -ETIMEDOUT, ZSESSIONEXPIRED -EKEYEXPIRED, ZINVALIDSTATE -ENOTCONN,
 *   ZNOAUTH/ZAUTHFAILED -EACCES, ZNOTEMPTY -ENOTEMPTY, ZBADARGUMENTS -EINVAL,
 *   ZCLOSING -ESHUTDOWN, ZNOCHILDRENFOREPHEMERALS -EPERM, ZNOTREADONLY -EROFS,
 *   anything else -EIO. */
int err_from_zk(int zk_rc);

/* RocksDB errptr (NULL means success) to 0 or a negative errno, by the status prefix
 * RocksDB puts on its messages: "NotFound" -ENOENT, "Corruption" -EBADMSG,
 * "Invalid argument" -EINVAL, "IO error" (-ENOSPC when it says so, else -EIO),
 * "Resource busy" -EBUSY, "Operation timed out" -ETIMEDOUT, "Operation aborted"
 * -ECANCELED, "Not implemented" -EOPNOTSUPP, anything else -EIO. The string is not
 * freed. */
int err_from_rocksdb(const char *errptr);

/* Formats a message into err (when err is non-NULL and err_len > 0) and returns r: the
 * one-line error return of functions that report what failed in a caller's buffer,
 *     return err_set(err, err_len, -EINVAL, "%s: expected ...", name); */
int err_set(char *err, size_t err_len, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
