/* file:// URI resolution. */
#include "common/storage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int storage_uri_to_path(const char *uri, char *buf, size_t buf_len, char *err, size_t err_len) {
        const char *path;
        const char *colon = strstr(uri, "://");
        if (colon) {
                size_t slen = (size_t)(colon - uri);
                if (slen != 4 || strncmp(uri, "file", 4) != 0) {
                        snprintf(err, err_len,
                                 "scheme '%.*s://' is not supported: flinc stores files through "
                                 "file:// only; put the directory on a shared mount (NFS, CephFS) "
                                 "and use file:///mount/path",
                                 (int)(slen > 16 ? 16 : slen), uri);
                        return -EPROTONOSUPPORT;
                }
                path = colon + 3;
                if (*path != '/') {
                        snprintf(err, err_len,
                                 "'%s' names a host; expected file:///absolute/path", uri);
                        return -EINVAL;
                }
        } else {
                path = uri;
                if (strncmp(uri, "file:", 5) == 0)
                        path = uri + 5;
                if (*path != '/') {
                        snprintf(err, err_len,
                                 "'%s' is not absolute; expected file:///absolute/path", uri);
                        return -EINVAL;
                }
        }
        size_t len = strlen(path);
        while (len > 1 && path[len - 1] == '/')
                len--;
        if (len >= buf_len) {
                snprintf(err, err_len, "path in '%s' is too long", uri);
                return -ENAMETOOLONG;
        }
        memcpy(buf, path, len);
        buf[len] = '\0';
        return 0;
}
