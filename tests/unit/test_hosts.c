/* Unit tests of common/hosts: conf/masters and conf/workers parsing (comments, blank
 * lines, IPv6 in brackets, the default web port, each error with its line number), the
 * conf/slaves fallback and the shipped conf files. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/hosts.h"
#include "unit.h"

static char errbuf[1024];

static struct hosts_entry *masters(const char *text, size_t *ret_n, int *ret_r) {
        struct hosts_entry *e = NULL;
        size_t n = 0;
        errbuf[0] = '\0';
        *ret_r = hosts_parse_masters_string("conf/masters", text, strlen(text), &e, &n, errbuf,
                                            sizeof(errbuf));
        *ret_n = n;
        return e;
}

static struct hosts_entry *workers(const char *text, size_t *ret_n, int *ret_r) {
        struct hosts_entry *e = NULL;
        size_t n = 0;
        errbuf[0] = '\0';
        *ret_r = hosts_parse_workers_string("conf/workers", text, strlen(text), &e, &n, errbuf,
                                            sizeof(errbuf));
        *ret_n = n;
        return e;
}

#define CHECK_MASTERS_ERROR(text, message)                                              \
        do {                                                                            \
                size_t n_;                                                              \
                int r_;                                                                 \
                struct hosts_entry *hl_ = masters((text), &n_, &r_);                     \
                CHECK(r_ == -EINVAL && hl_ == NULL, "expected -EINVAL, seen %d", r_);    \
                CHECK_STR(errbuf, (message));                                           \
                free(hl_);                                                               \
        } while (0)

#define CHECK_WORKERS_ERROR(text, message)                                              \
        do {                                                                            \
                size_t n_;                                                              \
                int r_;                                                                 \
                struct hosts_entry *hl_ = workers((text), &n_, &r_);                     \
                CHECK(r_ == -EINVAL && hl_ == NULL, "expected -EINVAL, seen %d", r_);    \
                CHECK_STR(errbuf, (message));                                           \
                free(hl_);                                                               \
        } while (0)

static void test_masters(void) {
        size_t n;
        int r;
        struct hosts_entry *e = masters("# coordinators\n"
                                        "\n"
                                        "node01:8081\n"
                                        "   node02:8082   # the standby\n"
                                        "\tnode03\t\n"
                                        "[::1]:8083\n"
                                        "[fe80::1%eth0]\n"
                                        "10.0.0.5:9000\r\n"
                                        "   # indented comment\n"
                                        "last.example.com:18081",
                                        &n, &r);
        CHECK_INT(r, 0);
        CHECK_INT(n, 7);
        if (r == 0 && n == 7) {
                CHECK_STR(e[0].host, "node01");
                CHECK_INT(e[0].port, 8081);
                CHECK_STR(e[1].host, "node02");
                CHECK_INT(e[1].port, 8082);
                CHECK_STR(e[2].host, "node03");
                CHECK_INT(e[2].port, HOSTS_DEFAULT_WEB_PORT);
                CHECK_STR(e[3].host, "::1");
                CHECK_INT(e[3].port, 8083);
                CHECK_STR(e[4].host, "fe80::1%eth0");
                CHECK_INT(e[4].port, 8081);
                CHECK_STR(e[5].host, "10.0.0.5");
                CHECK_INT(e[5].port, 9000);
                CHECK_STR(e[6].host, "last.example.com");
                CHECK_INT(e[6].port, 18081);
        }
        free(e);

        e = masters("# nothing here\n\n", &n, &r);
        CHECK(r == 0 && n == 0 && e == NULL, "expected an empty list, seen %d, %zu", r, n);
        e = masters("", &n, &r);
        CHECK(r == 0 && n == 0 && e == NULL, "expected an empty list, seen %d, %zu", r, n);

        /* Two coordinators on one host with different ports are fine. */
        e = masters("localhost:8081\nlocalhost:8082\n", &n, &r);
        CHECK(r == 0 && n == 2, "expected 2 entries, seen %d, %zu", r, n);
        free(e);
}

static void test_masters_errors(void) {
        CHECK_MASTERS_ERROR("node01:8081\n\nnode02:abc\n",
                            "conf/masters:3: bad port 'abc' (expected 1..65535)");
        CHECK_MASTERS_ERROR("node01:0\n", "conf/masters:1: bad port '0' (expected 1..65535)");
        CHECK_MASTERS_ERROR("node01:65536\n",
                            "conf/masters:1: bad port '65536' (expected 1..65535)");
        CHECK_MASTERS_ERROR("node01:\n", "conf/masters:1: bad port '' (expected 1..65535)");
        CHECK_MASTERS_ERROR("# c\n:8081\n", "conf/masters:2: empty host");
        CHECK_MASTERS_ERROR("node01:8081 node02:8082\n",
                            "conf/masters:1: junk after port: ' node02:8082'");
        CHECK_MASTERS_ERROR("node01:8081x\n", "conf/masters:1: junk after port: 'x'");
        CHECK_MASTERS_ERROR("node01 8081\n",
                            "conf/masters:1: junk after host 'node01': ' 8081'");
        CHECK_MASTERS_ERROR("ok:1\n[::1:8081\n", "conf/masters:2: unterminated '[' in '[::1:8081'");
        CHECK_MASTERS_ERROR("[::1]8081\n",
                            "conf/masters:1: junk after ']': '8081' (expected :port)");
        CHECK_MASTERS_ERROR("[]:8081\n", "conf/masters:1: empty host");
        CHECK_MASTERS_ERROR("[node01]:8081\n", "conf/masters:1: '[node01]' is not an IPv6 address");
        CHECK_MASTERS_ERROR("::1:8081\n",
                            "conf/masters:1: '::1:8081': write an IPv6 address in brackets, like "
                            "[::1]:8081");
        CHECK_MASTERS_ERROR("bad_host!:8081\n",
                            "conf/masters:1: 'bad_host!' is not a host name or IP address");
        CHECK_MASTERS_ERROR("a:1\nb:2\na:1\n",
                            "conf/masters:3: 'a:1' is listed again (first at line 1)");
        CHECK_MASTERS_ERROR("a\na:8081\n",
                            "conf/masters:2: 'a:8081' is listed again (first at line 1)");

        char longhost[400];
        memset(longhost, 'a', 300);
        strcpy(longhost + 300, ":1\n");
        CHECK_MASTERS_ERROR(longhost, "conf/masters:1: host name longer than 255 bytes");

        /* The NUL byte, and the limit on entries. */
        size_t n;
        int r;
        struct hosts_entry *e = NULL;
        r = hosts_parse_masters_string("conf/masters", "a:1\nb\0c:2\n", 10, &e, &n, errbuf,
                                       sizeof(errbuf));
        CHECK_INT(r, -EINVAL);
        CHECK_STR(errbuf, "conf/masters:2: NUL byte in line");

        size_t cap = (HOSTS_MAX_ENTRIES + 2) * 16;
        char *text = malloc(cap);
        size_t used = 0;
        for (int i = 0; i < HOSTS_MAX_ENTRIES; i++)
                used += (size_t)snprintf(text + used, cap - used, "h%d:8081\n", i);
        e = masters(text, &n, &r);
        CHECK(r == 0 && n == HOSTS_MAX_ENTRIES, "expected %d entries, seen %d, %zu",
              HOSTS_MAX_ENTRIES, r, n);
        free(e);
        snprintf(text + used, cap - used, "# comment\none-more:8081\n");
        CHECK_MASTERS_ERROR(text, "conf/masters:1026: too many hosts (limit 1024)");
        free(text);
}

static void test_workers(void) {
        size_t n;
        int r;
        struct hosts_entry *e = workers("# workers\n"
                                        "node01\n"
                                        "node01   # a second worker on node01\n"
                                        "\n"
                                        "  10.1.2.3  \n"
                                        "::1\n"
                                        "[2001:db8::7]\n",
                                        &n, &r);
        CHECK_INT(r, 0);
        CHECK_INT(n, 5);
        if (r == 0 && n == 5) {
                CHECK_STR(e[0].host, "node01");
                CHECK_STR(e[1].host, "node01");
                CHECK_STR(e[2].host, "10.1.2.3");
                CHECK_STR(e[3].host, "::1");
                CHECK_STR(e[4].host, "2001:db8::7");
                for (size_t i = 0; i < n; i++)
                        CHECK_INT(e[i].port, 0);
        }
        free(e);

        CHECK_WORKERS_ERROR("node01\nnode02:6121\n",
                            "conf/workers:2: 'node02:6121': conf/workers lists hosts without "
                            "ports (worker ports come from taskmanager.rpc.port and "
                            "taskmanager.data.port)");
        CHECK_WORKERS_ERROR("[::1]:6121\n",
                            "conf/workers:1: '[::1]:6121': conf/workers lists hosts without "
                            "ports (worker ports come from taskmanager.rpc.port and "
                            "taskmanager.data.port)");
        CHECK_WORKERS_ERROR("\n\nnode01 node02\n",
                            "conf/workers:3: junk after host 'node01': ' node02'");
        CHECK_WORKERS_ERROR("[::1\n", "conf/workers:1: unterminated '[' in '[::1'");
        CHECK_WORKERS_ERROR("a..b\n", "conf/workers:1: 'a..b' is not a host name or IP address");
}

static void write_file(const char *dir, const char *name, const char *text) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        CHECK_INT(fs_write_atomic(path, text, strlen(text)), 0);
}

static void test_files_and_slaves_fallback(void) {
        char dir[] = "/tmp/flinc-test-hosts-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
        char buf[512], path[512];

        CHECK_INT(hosts_workers_path(dir, buf, sizeof(buf)), -ENOENT);

        write_file(dir, "slaves", "old01\nold02\n");
        snprintf(path, sizeof(path), "%s/slaves", dir);
        CHECK_INT(hosts_workers_path(dir, buf, sizeof(buf)), 1);
        CHECK_STR(buf, path);
        struct hosts_entry *e = NULL;
        size_t n = 0;
        CHECK_INT(hosts_parse_workers(buf, &e, &n, errbuf, sizeof(errbuf)), 0);
        CHECK_INT(n, 2);
        if (n == 2)
                CHECK_STR(e[1].host, "old02");
        free(e);

        write_file(dir, "workers", "new01\n");
        snprintf(path, sizeof(path), "%s/workers", dir);
        CHECK_INT(hosts_workers_path(dir, buf, sizeof(buf)), 0);
        CHECK_STR(buf, path);
        char tiny[8] = "keep";
        CHECK_INT(hosts_workers_path(dir, tiny, sizeof(tiny)), -ENAMETOOLONG);
        CHECK_STR(tiny, "keep");

        write_file(dir, "masters", "m1:8081\nm2:bad\n");
        snprintf(path, sizeof(path), "%s/masters", dir);
        e = NULL;
        n = 99;
        CHECK_INT(hosts_parse_masters(path, &e, &n, errbuf, sizeof(errbuf)), -EINVAL);
        CHECK(e == NULL && n == 99, "expected ret_* untouched on error");
        char want[600];
        snprintf(want, sizeof(want), "%s:2: bad port 'bad' (expected 1..65535)", path);
        CHECK_STR(errbuf, want);

        snprintf(path, sizeof(path), "%s/missing", dir);
        CHECK_INT(hosts_parse_masters(path, &e, &n, errbuf, sizeof(errbuf)), -ENOENT);
        CHECK_CONTAINS(errbuf, "missing: cannot read: No such file or directory");

        const char *names[] = {"slaves", "workers", "masters"};
        for (int i = 0; i < 3; i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                unlink(path);
        }
        rmdir(dir);
}

static void test_shipped_files(void) {
        char path[1024];
        struct hosts_entry *e = NULL;
        size_t n = 0;
        snprintf(path, sizeof(path), "%s/conf/masters", SOURCE_ROOT);
        CHECK_INT(hosts_parse_masters(path, &e, &n, errbuf, sizeof(errbuf)), 0);
        CHECK_INT(n, 1);
        if (n == 1) {
                CHECK_STR(e[0].host, "localhost");
                CHECK_INT(e[0].port, 8081);
        }
        free(e);

        char confdir[1024], wpath[1100];
        snprintf(confdir, sizeof(confdir), "%s/conf", SOURCE_ROOT);
        CHECK_INT(hosts_workers_path(confdir, wpath, sizeof(wpath)), 0);
        e = NULL;
        CHECK_INT(hosts_parse_workers(wpath, &e, &n, errbuf, sizeof(errbuf)), 0);
        CHECK_INT(n, 1);
        if (n == 1)
                CHECK_STR(e[0].host, "localhost");
        free(e);
}

static void test_name_checks(void) {
        static const char *const good[] = {"localhost", "node-01", "a.b.c", "docker_host",
                                           "10.0.0.1", "::1", "fe80::1%eth0", "2001:db8::1",
                                           "x"};
        static const char *const bad[] = {"", "-a", "a-", "a..b", ".a", "a.", "a b", "a/b",
                                          "::g", "1:2", "fe80::1%", "a!b"};
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                CHECK(hosts_name_valid(good[i]), "'%s': expected valid, seen invalid", good[i]);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                CHECK(!hosts_name_valid(bad[i]), "'%s': expected invalid, seen valid", bad[i]);
        char label[80];
        memset(label, 'a', 64);
        label[64] = '\0';
        CHECK(!hosts_name_valid(label), "expected a 64-byte label to be invalid");

        struct hosts_entry e = {"keep", 7};
        char why[256];
        CHECK_INT(hosts_parse_hostport("zk1", 0, &e, why, sizeof(why)), -EINVAL);
        CHECK_STR(why, "'zk1' has no port (expected host:port)");
        CHECK_STR(e.host, "keep");
        CHECK_INT(hosts_parse_hostport("zk1:2181", 0, &e, why, sizeof(why)), 0);
        CHECK_STR(e.host, "zk1");
        CHECK_INT(e.port, 2181);
}

int main(void) {
        RUN(test_masters);
        RUN(test_masters_errors);
        RUN(test_workers);
        RUN(test_files_and_slaves_fallback);
        RUN(test_shipped_files);
        RUN(test_name_checks);
        return unit_done();
}
