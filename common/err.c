/* The one translation point from ZooKeeper codes and RocksDB status strings to errno. */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

const char *err_str(int r) {
        if (r < 0)
                r = -r;
        const char *s = strerrordesc_np(r);
        return s ? s : "Unknown error";
}

int err_from_zk(int zk_rc) {
        switch (zk_rc) {
        case ZOK:
                return 0;
        case ZNONODE:
                return -ENOENT;
        case ZNODEEXISTS:
                return -EEXIST;
        case ZBADVERSION:
                return -ESTALE;
        case ZCONNECTIONLOSS:
        case ZSESSIONMOVED:
                return -ECONNRESET;
        case ZOPERATIONTIMEOUT:
                return -ETIMEDOUT;
        case ZSESSIONEXPIRED:
                return -EKEYEXPIRED;
        case ZINVALIDSTATE:
                return -ENOTCONN;
        case ZNOAUTH:
        case ZAUTHFAILED:
                return -EACCES;
        case ZNOTEMPTY:
                return -ENOTEMPTY;
        case ZBADARGUMENTS:
                return -EINVAL;
        case ZCLOSING:
                return -ESHUTDOWN;
        case ZNOCHILDRENFOREPHEMERALS:
                return -EPERM;
        case ZNOTREADONLY:
                return -EROFS;
        case ZUNIMPLEMENTED:
                return -EOPNOTSUPP;
        default:
                return -EIO;
        }
}

static int has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

int err_from_rocksdb(const char *errptr) {
        if (!errptr)
                return 0;
        if (has_prefix(errptr, "NotFound"))
                return -ENOENT;
        if (has_prefix(errptr, "Corruption"))
                return -EBADMSG;
        if (has_prefix(errptr, "Invalid argument"))
                return -EINVAL;
        if (has_prefix(errptr, "IO error")) {
                if (strstr(errptr, "No space left"))
                        return -ENOSPC;
                if (strstr(errptr, "No such file"))
                        return -ENOENT;
                if (strstr(errptr, "lock"))
                        return -EBUSY;
                return -EIO;
        }
        if (has_prefix(errptr, "Resource busy"))
                return -EBUSY;
        if (has_prefix(errptr, "Operation timed out"))
                return -ETIMEDOUT;
        if (has_prefix(errptr, "Operation aborted"))
                return -ECANCELED;
        if (has_prefix(errptr, "Not implemented"))
                return -EOPNOTSUPP;
        return -EIO;
}

int err_set(char *err, size_t err_len, int r, const char *fmt, ...) {
        if (err && err_len) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, err_len, fmt, ap);
                va_end(ap);
        }
        return r;
}
