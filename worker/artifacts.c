/* Fetching a job's UDF libraries from storage into a local directory (artifacts.h). */
#include "worker/artifacts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/jobgraph.h"

#define SCHEME "file://"

int wrk_artifacts_dir(const char *base, const char *job, uint64_t epoch, uint32_t attempt,
                      char *buf, size_t len) {
        int n = snprintf(buf, len, "%s/artifacts/%s-%" PRIu64 "-%" PRIu32, base, job, epoch,
                         attempt);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int wrk_artifacts_needed(const struct job_graph *g) {
        for (size_t i = 0; i < g->n_artifacts; i++)
                if (strncmp(g->artifacts[i], SCHEME, strlen(SCHEME)) == 0)
                        return 1;
        return 0;
}

/* "<8 hex>_<name>": the CRC32C in *ret_crc. */
static int parse_id(const char *id, uint32_t *ret_crc) {
        if (strlen(id) < 10 || id[8] != '_')
                return -EINVAL;
        uint32_t v = 0;
        for (int i = 0; i < 8; i++) {
                char ch = id[i];
                uint32_t d;
                if (ch >= '0' && ch <= '9')
                        d = (uint32_t)(ch - '0');
                else if (ch >= 'a' && ch <= 'f')
                        d = (uint32_t)(ch - 'a' + 10);
                else
                        return -EINVAL;
                v = v << 4 | d;
        }
        *ret_crc = v;
        return 0;
}

int wrk_artifacts_fetch(struct job_graph *g, const char *dir, char *err, size_t err_len) {
        int r;
        bool made = false;
        for (size_t i = 0; i < g->n_artifacts; i++) {
                const char *uri = g->artifacts[i];
                if (strncmp(uri, SCHEME, strlen(SCHEME)) != 0)
                        continue; /* a local path of a direct deployment */
                const char *src = uri + strlen(SCHEME);
                const char *slash = strrchr(src, '/');
                const char *id = slash ? slash + 1 : src;
                uint32_t crc;
                if (src[0] != '/' || parse_id(id, &crc) < 0) {
                        snprintf(err, err_len, "artifact %s: not a stored artifact (expected "
                                 "file:///<storage>/artifacts/<crc32c>_<name>)", uri);
                        return -EINVAL;
                }
                if (!made) {
                        if ((r = fs_mkdir_p(dir, 0700)) < 0) {
                                snprintf(err, err_len, "artifact %s: cannot create %s: %s", id,
                                         dir, err_str(r));
                                return r;
                        }
                        made = true;
                }
                char *dst = NULL;
                if (asprintf(&dst, "%s/%s", dir, id) < 0)
                        return -ENOMEM;
                r = fs_copy_atomic(src, dst, &crc, NULL, NULL);
                if (r == -EBADMSG) {
                        snprintf(err, err_len, "artifact %s: checksum mismatch: %s does not have "
                                 "CRC32C %08" PRIx32 " (the stored library is damaged; upload it "
                                 "again)", id, src, crc);
                        free(dst);
                        return r;
                }
                if (r < 0) {
                        snprintf(err, err_len, "artifact %s: cannot fetch %s: %s", id, src,
                                 err_str(r));
                        free(dst);
                        return r;
                }
                free(g->artifacts[i]);
                g->artifacts[i] = dst;
        }
        return 0;
}
