/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* state.c — StateDirectory: the quarantine list, written atomically, private to root. */
#include <fcntl.h>
#include <sys/stat.h>

#include "state.h"
#include "sysfs.h"

/* mkdir -p: the parents 0755, the directory itself with mode. */
int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int state_dir_open(const char *path, bool create, int *ret_fd, char **ret_path) {
        const char *e = getenv("STATE_DIRECTORY");
        _cleanup_free_ char *p = NULL;
        int fd;

        /* STATE_DIRECTORY may list several directories separated by ':'; the first is ours. */
        if (path)
                p = strdup(path);
        else if (e)
                p = strndup(e, strcspn(e, ":"));
        else
                p = strdup("/var/lib/hotplugd");
        if (!p)
                return -ENOMEM;
        if (create) {
                int r = mkdir_parents(p, 0700);
                if (r < 0)
                        return r;
        }
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        if (ret_path)
                *ret_path = TAKE_PTR(p);
        return 0;
}

void node_list_format(const uint64_t *bits, size_t n_bits, char *buf, size_t size) {
        size_t off = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n_bits;) {
                size_t j;
                int n;

                if (!((bits[i / 64] >> (i % 64)) & 1)) {
                        i++;
                        continue;
                }
                for (j = i; j + 1 < n_bits && ((bits[(j + 1) / 64] >> ((j + 1) % 64)) & 1); j++)
                        ;
                n = j == i ? snprintf(buf + off, size - off, "%s%zu", off ? "," : "", i)
                           : snprintf(buf + off, size - off, "%s%zu-%zu", off ? "," : "", i, j);
                if (n < 0 || (size_t) n >= size - off) {
                        buf[off] = 0; /* truncated: keep what fits whole */
                        return;
                }
                off += (size_t) n;
                i = j + 1;
        }
}

int quarantine_load(int dirfd, uint64_t bits[MODEL_MAX_NODES / 64]) {
        char buf[8192];
        struct stat st;
        _cleanup_close_ int fd = -1;
        int r;

        memset(bits, 0, MODEL_MAX_NODES / 8);
        fd = openat(dirfd, "quarantine", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        /* Only a file we wrote counts: a quarantine planted by someone else is ignored. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 0022))
                return -EPERM;
        r = sysfs_read_at(dirfd, "quarantine", buf, sizeof(buf));
        if (r < 0)
                return r;
        return parse_index_list(buf, MODEL_MAX_NODES, bits, MODEL_MAX_NODES / 64, NULL);
}

int quarantine_save(int dirfd, const uint64_t bits[MODEL_MAX_NODES / 64]) {
        char buf[8192];
        _cleanup_close_ int fd = -1;
        size_t len;

        node_list_format(bits, MODEL_MAX_NODES, buf, sizeof(buf) - 1);
        len = strlen(buf);
        buf[len++] = '\n';
        (void) unlinkat(dirfd, ".#quarantine", 0);
        fd = openat(dirfd, ".#quarantine", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        if (write(fd, buf, len) != (ssize_t) len || fsync(fd) < 0) {
                int r = negative_errno();
                (void) unlinkat(dirfd, ".#quarantine", 0);
                return r;
        }
        if (renameat(dirfd, ".#quarantine", dirfd, "quarantine") < 0)
                return negative_errno();
        return fsync(dirfd) < 0 ? negative_errno() : 0;
}
