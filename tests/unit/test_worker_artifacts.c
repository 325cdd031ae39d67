/* Fetching a job's shipped UDF libraries into a worker's local directory
 * (worker/artifacts.c): storage URIs are copied with their CRC32C checked and the graph
 * points at the copies; plain local paths stay; a damaged file, a missing file and a
 * name without a checksum are refused naming the artifact. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/crc32c.h"
#include "common/fsutil.h"
#include "common/jobgraph.h"
#include "unit.h"
#include "worker/artifacts.h"

static char tmpdir[256];

static struct job_graph *graph_with(const char *artifact) {
        char yaml[8192];
        snprintf(yaml, sizeof(yaml),
                 "name: j\nartifacts: [ '%s' ]\npipeline:\n  - generator: { count: 1 }\n"
                 "  - map: { udf: f }\n  - sink: { type: discard }\n", artifact);
        struct job_graph *g = NULL;
        char err[512];
        int r = job_graph_parse_yaml("t.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == 0, "parse: %d %s", r, err);
        return g;
}

/* Stores bytes as <tmpdir>/storage/<crc>_<name>; its file:// URI into uri. */
static void store(const char *name, const char *bytes, char *uri, size_t len) {
        char dir[512], path[1024];
        snprintf(dir, sizeof(dir), "%s/storage", tmpdir);
        fs_mkdir_p(dir, 0755);
        snprintf(path, sizeof(path), "%s/%08" PRIx32 "_%s", dir, crc32c(bytes, strlen(bytes)),
                 name);
        CHECK_INT(fs_write_atomic(path, bytes, strlen(bytes)), 0);
        snprintf(uri, len, "file://%s", path);
}

static void test_copies_verified_and_rewritten(void) {
        char uri[1100], dir[512], err[1024] = "";
        store("libok.so", "library bytes", uri, sizeof(uri));
        struct job_graph *g = graph_with(uri);
        CHECK_INT(wrk_artifacts_needed(g), 1);
        CHECK_INT(wrk_artifacts_dir(tmpdir, "ab", 7, 3, dir, sizeof(dir)), 0);
        CHECK(strstr(dir, "/artifacts/ab-7-3") != NULL, "dir %s", dir);
        CHECK_INT(wrk_artifacts_fetch(g, dir, err, sizeof(err)), 0);
        char expect[1100];
        snprintf(expect, sizeof(expect), "%s/%s", dir, strrchr(uri, '/') + 1);
        CHECK_STR(g->artifacts[0], expect);
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(fs_read_all(g->artifacts[0], 1024, &data, &len), 0);
        CHECK(data && len == 13 && memcmp(data, "library bytes", 13) == 0, "copy content");
        free(data);
        job_graph_free(g);
}

static void test_damaged_file_refused(void) {
        char uri[1100], dir[512], err[1024] = "";
        store("libbad.so", "original", uri, sizeof(uri));
        CHECK_INT(fs_write_atomic(uri + 7, "0riginal", 8), 0); /* a byte flipped */
        struct job_graph *g = graph_with(uri);
        snprintf(dir, sizeof(dir), "%s/local-bad", tmpdir);
        CHECK_INT(wrk_artifacts_fetch(g, dir, err, sizeof(err)), -EBADMSG);
        char id[300];
        snprintf(id, sizeof(id), "artifact %s: checksum mismatch", strrchr(uri, '/') + 1);
        CHECK_CONTAINS(err, id);
        char copy[1100];
        snprintf(copy, sizeof(copy), "%s/%s", dir, strrchr(uri, '/') + 1);
        struct stat st;
        CHECK(stat(copy, &st) != 0, "expected no copy left at %s", copy);
        CHECK(strncmp(g->artifacts[0], "file://", 7) == 0, "graph unchanged: %s",
              g->artifacts[0]);
        job_graph_free(g);
}

static void test_missing_and_unnamed_refused(void) {
        char uri[1100], dir[512], err[1024] = "";
        snprintf(dir, sizeof(dir), "%s/local-missing", tmpdir);
        snprintf(uri, sizeof(uri), "file://%s/storage/0badc0de_libgone.so", tmpdir);
        struct job_graph *g = graph_with(uri);
        CHECK_INT(wrk_artifacts_fetch(g, dir, err, sizeof(err)), -ENOENT);
        CHECK_CONTAINS(err, "artifact 0badc0de_libgone.so: cannot fetch");
        job_graph_free(g);
        snprintf(uri, sizeof(uri), "file://%s/storage/libnochecksum.so", tmpdir);
        g = graph_with(uri);
        CHECK_INT(wrk_artifacts_fetch(g, dir, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "libnochecksum.so: not a stored artifact");
        job_graph_free(g);
}

static void test_plain_path_kept(void) {
        char dir[512], err[1024] = "";
        struct job_graph *g = graph_with("/opt/udf/libplain.so");
        CHECK_INT(wrk_artifacts_needed(g), 0);
        snprintf(dir, sizeof(dir), "%s/local-plain", tmpdir);
        CHECK_INT(wrk_artifacts_fetch(g, dir, err, sizeof(err)), 0);
        CHECK_STR(g->artifacts[0], "/opt/udf/libplain.so");
        struct stat st;
        CHECK(stat(dir, &st) != 0, "expected no directory made for plain paths");
        job_graph_free(g);
}

int main(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/flinc-test-artifacts-XXXXXX");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_copies_verified_and_rewritten);
        RUN(test_damaged_file_refused);
        RUN(test_missing_and_unnamed_refused);
        RUN(test_plain_path_kept);
        fs_rm_rf(tmpdir);
        return unit_done();
}
