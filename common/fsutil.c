/* Atomic and durable file writes, whole-file reads, recursive mkdir and removal. */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"

static _Atomic(const char *) fault_step;

void fs_inject_fault(const char *step) {
        atomic_store(&fault_step, step);
}

static int fault_at(const char *step) {
        const char *want = atomic_load(&fault_step);
        if (want && strcmp(want, step) == 0) {
                atomic_store(&fault_step, NULL);
                return 1;
        }
        return 0;
}

int fs_write_full(int fd, const void *data, size_t len) {
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int fs_fsync_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return r;
}

static int parent_dir(const char *path, char *out, size_t outlen) {
        if (strlen(path) >= outlen)
                return -ENAMETOOLONG;
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s", path);
        snprintf(out, outlen, "%s", dirname(tmp));
        return 0;
}

/* Opens a fresh temporary file next to path; its name goes to tmp. */
static int open_temp(const char *path, char *tmp, size_t tmplen) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) < 0)
                rnd = (uint64_t)getpid();
        int n = snprintf(tmp, tmplen, "%s.tmp-%016llx", path, (unsigned long long)rnd);
        if (n < 0 || (size_t)n >= tmplen)
                return -ENAMETOOLONG;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        return fd < 0 ? -errno : fd;
}

/* fsync, close, rename into place, fsync the directory. Consumes fd; removes tmp on
 * failure. */
static int commit_temp(int fd, const char *tmp, const char *path) {
        char dir[4096];
        int r = 0;
        if (fault_at("after-temp-write"))
                r = -EIO;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && fault_at("before-rename"))
                r = -EIO;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        r = parent_dir(path, dir, sizeof(dir));
        if (r < 0)
                return r;
        return fs_fsync_dir(dir);
}

int fs_write_atomic(const char *path, const void *data, size_t len) {
        char tmp[4096];
        int fd = open_temp(path, tmp, sizeof(tmp));
        if (fd < 0)
                return fd;
        int r = fs_write_full(fd, data, len);
        if (r < 0) {
                close(fd);
                unlink(tmp);
                return r;
        }
        return commit_temp(fd, tmp, path);
}

int fs_copy_atomic(const char *src, const char *dst, const uint32_t *expect_crc,
                   uint32_t *ret_crc, uint64_t *ret_size) {
        char tmp[4096];
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        int out = open_temp(dst, tmp, sizeof(tmp));
        if (out < 0) {
                close(in);
                return out;
        }
        uint32_t crc = 0;
        uint64_t size = 0;
        int r = 0;
        char *buf = malloc(1 << 20);
        if (!buf)
                r = -ENOMEM;
        while (r == 0) {
                ssize_t n = read(in, buf, 1 << 20);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                crc = crc32c_extend(crc, buf, (size_t)n);
                size += (uint64_t)n;
                r = fs_write_full(out, buf, (size_t)n);
        }
        free(buf);
        close(in);
        if (r == 0 && expect_crc && *expect_crc != crc)
                r = -EBADMSG;
        if (r < 0) {
                close(out);
                unlink(tmp);
                return r;
        }
        r = commit_temp(out, tmp, dst);
        if (r < 0)
                return r;
        if (ret_crc)
                *ret_crc = crc;
        if (ret_size)
                *ret_size = size;
        return 0;
}

int fs_read_all(const char *path, size_t max_bytes, char **ret_data, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        }
        if ((uint64_t)st.st_size > max_bytes) {
                close(fd);
                return -EFBIG;
        }
        size_t cap = (size_t)st.st_size + 1, len = 0;
        char *data = malloc(cap);
        if (!data) {
                close(fd);
                return -ENOMEM;
        }
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap > max_bytes + 1) {
                                free(data);
                                close(fd);
                                return -EFBIG;
                        }
                        size_t ncap = cap * 2;
                        char *nd = realloc(data, ncap);
                        if (!nd) {
                                free(data);
                                close(fd);
                                return -ENOMEM;
                        }
                        data = nd;
                        cap = ncap;
                }
                ssize_t n = read(fd, data + len, cap - len - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        free(data);
                        close(fd);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        if (len > max_bytes) {
                free(data);
                return -EFBIG;
        }
        data[len] = '\0';
        *ret_data = data;
        *ret_len = len;
        return 0;
}

int fs_crc32c_file(const char *path, uint32_t *ret_crc, uint64_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char *buf = malloc(1 << 20);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        uint32_t crc = 0;
        uint64_t size = 0;
        int r = 0;
        for (;;) {
                ssize_t n = read(fd, buf, 1 << 20);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                crc = crc32c_extend(crc, buf, (size_t)n);
                size += (uint64_t)n;
        }
        free(buf);
        close(fd);
        if (r < 0)
                return r;
        *ret_crc = crc;
        if (ret_size)
                *ret_size = size;
        return 0;
}

int fs_mkdir_p(const char *path, mode_t mode) {
        char buf[4096];
        size_t len = strlen(path);
        if (len == 0 || len >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        struct stat st;
        if (stat(buf, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st;
        (void)ftw;
        int r = flag == FTW_DP ? rmdir(path) : unlink(path);
        return r < 0 && errno != ENOENT ? -errno : 0;
}

int fs_rm_rf(const char *path) {
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r < 0 ? -errno : r;
}
