/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysfs.c — root-relative reads and writes of /sys and /proc, and parsers for their formats. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "sysfs.h"

/*
 * Nothing below the root follows a symlink out of it
 * --------------------------------------------------
 * O_NOFOLLOW guards only the last component of a path: "memory7/state" with memory7 a symlink to a
 * directory elsewhere (or to the host's own /sys under --root) would be followed, and a state write
 * would land there. So every path with more than one component is resolved with openat2() and
 * RESOLVE_BENEATH: symlinks inside the tree are fine (sysfs is full of relative ones, e.g. the ACPI
 * devices), anything that resolves outside the directory fd fails, reported as ELOOP. Writes resolve
 * only the parent that way and open the file itself with openat(), so that an LD_PRELOAD shim (the fake
 * kernel of the tests) still sees the open. Kernels before 5.6, seccomp filters without openat2 and
 * valgrind answer ENOSYS or EPERM: then plain openat(), as before, and we remember it.
 */
static int openat2_unavailable = 0;

static int open_beneath(int dirfd, const char *path, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int fd;

        if (!strchr(path, '/') || __atomic_load_n(&openat2_unavailable, __ATOMIC_RELAXED))
                return openat(dirfd, path, flags | O_CLOEXEC);
        fd = (int) syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
                return fd < 0 && errno == EXDEV ? (errno = ELOOP, -1) : fd;
        __atomic_store_n(&openat2_unavailable, 1, __ATOMIC_RELAXED);
        return openat(dirfd, path, flags | O_CLOEXEC);
}

/* Opens a directory below the root without following symlinks out of it. O_NOFOLLOW guards
 * only the last component; the prefixes we open are fixed kernel paths. */
static int open_dir_at(int dirfd, const char *path) {
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? negative_errno() : fd;
}

SysRoot *sysroot_free(SysRoot *r) {
        if (!r)
                return NULL;
        closep(&r->root_fd);
        closep(&r->memory_fd);
        closep(&r->node_fd);
        closep(&r->cpu_fd);
        closep(&r->proc_fd);
        free(r->path);
        free(r);
        return NULL;
}

int sysroot_open(const char *path, SysRoot **ret) {
        _cleanup_(sysroot_freep) SysRoot *r = NULL;
        int fd;

        r = calloc(1, sizeof(SysRoot));
        if (!r)
                return -ENOMEM;
        r->root_fd = r->memory_fd = r->node_fd = r->cpu_fd = r->proc_fd = -1;
        r->path = strdup(path);
        if (!r->path)
                return -ENOMEM;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r->root_fd = fd;

        fd = open_dir_at(r->root_fd, "sys/devices/system/memory");
        if (fd < 0)
                return fd; /* no memory hotplug support at all: nothing for us to do */
        r->memory_fd = fd;

        /* Kernels without CONFIG_NUMA have no node directory; everything is node 0 then. */
        r->node_fd = open_dir_at(r->root_fd, "sys/devices/system/node");
        if (r->node_fd < 0 && r->node_fd != -ENOENT)
                return r->node_fd;
        r->cpu_fd = open_dir_at(r->root_fd, "sys/devices/system/cpu");
        if (r->cpu_fd < 0 && r->cpu_fd != -ENOENT)
                return r->cpu_fd;
        r->proc_fd = open_dir_at(r->root_fd, "proc");
        if (r->proc_fd < 0 && r->proc_fd != -ENOENT)
                return r->proc_fd;

        *ret = TAKE_PTR(r);
        return 0;
}

static int read_small(int dirfd, const char *path, char *buf, size_t size, bool whole) {
        _cleanup_close_ int fd = -1;
        ssize_t n;

        if (size < 2)
                return -EINVAL;
        fd = open_beneath(dirfd, path, O_RDONLY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        if (whole && (size_t) n == size - 1) {
                char c;
                ssize_t k = read(fd, &c, 1);

                if (k < 0)
                        return negative_errno();
                if (k > 0)
                        return -EFBIG; /* more than the kernel ever writes there: garbage, not a prefix */
        }
        buf[n] = 0;
        /* An embedded NUL would silently truncate what parsers see: treat it as garbage. */
        if (memchr(buf, 0, (size_t) n))
                return -EBADMSG;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = 0;
        return (int) n;
}

int sysfs_read_at(int dirfd, const char *path, char *buf, size_t size) {
        return read_small(dirfd, path, buf, size, false);
}

int sysfs_read_attr_at(int dirfd, const char *path, char *buf, size_t size) {
        return read_small(dirfd, path, buf, size, true);
}

int sysfs_read_full_at(int dirfd, const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = open_beneath(dirfd, path, O_RDONLY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                ssize_t n;

                if (allocated - size < 4096) {
                        char *p;

                        if (allocated > 64u * 1024 * 1024)
                                return -EFBIG;
                        allocated = MAX(allocated * 2, (size_t) 16384);
                        p = realloc(buf, allocated);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        buf[size] = 0;
        if (ret_size)
                *ret_size = size;
        *ret = TAKE_PTR(buf);
        return 0;
}

int sysfs_write_at(int dirfd, const char *path, const char *value) {
        _cleanup_close_ int fd = -1, parent = -1;
        const char *slash = strrchr(path, '/');
        size_t len = strlen(value);
        ssize_t n;

        if (slash) {
                char dir[PATH_MAX];

                if ((size_t) (slash - path) >= sizeof(dir))
                        return -ENAMETOOLONG;
                memcpy(dir, path, (size_t) (slash - path));
                dir[slash - path] = 0;
                parent = open_beneath(dirfd, dir, O_PATH | O_DIRECTORY);
                if (parent < 0)
                        return negative_errno();
                dirfd = parent;
                path = slash + 1;
        }
        fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        /* sysfs takes one write(2) per store; the kernel's errno is the answer. */
        n = write(fd, value, len);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

int parse_block_size(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        const char *p = s;

        /* The kernel prints "%lx" without 0x; accept an optional 0x for robustness. */
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                p += 2;
        if (!*p)
                return -EINVAL;
        for (; *p; p++) {
                int d;

                if (*p >= '0' && *p <= '9')
                        d = *p - '0';
                else if (*p >= 'a' && *p <= 'f')
                        d = *p - 'a' + 10;
                else if (*p >= 'A' && *p <= 'F')
                        d = *p - 'A' + 10;
                else
                        return -EINVAL;
                if (v > (UINT64_MAX >> 4))
                        return -ERANGE;
                v = (v << 4) | (uint64_t) d;
        }
        /* A memory block is a power of two of at least one 4 KiB page. */
        if (v < 4096 || (v & (v - 1)) != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_block_state(const char *s, BlockState *ret) {
        BlockState st = block_state_from_string(s);

        if (st < 0)
                return -EINVAL;
        *ret = st;
        return 0;
}

int parse_valid_zones(const char *s, Zone *ret_first, uint8_t *ret_mask) {
        Zone first = _ZONE_INVALID;
        uint8_t mask = 0;
        const char *p = s;

        while (*p) {
                char word[16];
                size_t n = strcspn(p, " ");
                Zone z;

                if (n == 0) {
                        p++;
                        continue;
                }
                if (n >= sizeof(word))
                        return -EINVAL;
                memcpy(word, p, n);
                word[n] = 0;
                z = zone_from_string(word);
                /* "none" is a verdict, not a zone: it must stand alone. */
                if (z < 0 || z == ZONE_UNKNOWN || (z == ZONE_NONE && (mask != 0 || p[n] != 0)))
                        return -EINVAL;
                if (first < 0)
                        first = z;
                mask |= (uint8_t) ZONE_MASK(z);
                p += n;
        }
        if (first < 0)
                return -EINVAL;
        *ret_first = first;
        *ret_mask = mask;
        return 0;
}

static int parse_uint_range(const char **p, unsigned long *ret) {
        char *end;
        unsigned long v;

        if (!isdigit((unsigned char) **p))
                return -EINVAL;
        errno = 0;
        v = strtoul(*p, &end, 10);
        if (errno != 0)
                return -ERANGE;
        *p = end;
        *ret = v;
        return 0;
}

int parse_index_list(const char *s, int max, uint64_t *bits, size_t n_words, unsigned *ret_count) {
        const char *p = s;
        unsigned count = 0;

        memset(bits, 0, n_words * sizeof(uint64_t));
        while (*p == ' ' || *p == '\n')
                p++;
        while (*p) {
                unsigned long a, b;
                int r;

                r = parse_uint_range(&p, &a);
                if (r < 0)
                        return r;
                b = a;
                if (*p == '-') {
                        p++;
                        r = parse_uint_range(&p, &b);
                        if (r < 0)
                                return r;
                        if (b < a)
                                return -EINVAL;
                }
                if (b >= (unsigned long) max || b >= n_words * 64)
                        return -ERANGE;
                for (unsigned long i = a; i <= b; i++) {
                        if (!((bits[i / 64] >> (i % 64)) & 1))
                                count++;
                        bits[i / 64] |= UINT64_C(1) << (i % 64);
                }
                if (*p == ',')
                        p++;
                else if (*p == '\n' || *p == 0)
                        break;
                else
                        return -EINVAL;
        }
        while (*p == '\n' || *p == ' ')
                p++;
        if (*p)
                return -EINVAL;
        if (ret_count)
                *ret_count = count;
        return 0;
}

int parse_prefixed_uint(const char *name, const char *prefix, unsigned *ret) {
        const char *p = startswith(name, prefix);
        unsigned long v = 0;

        if (!p || !*p || strlen(p) > 9)
                return -EINVAL;
        /* No leading zeros, signs or spaces: "memory007" is not a kernel name. */
        if (p[0] == '0' && p[1] != 0)
                return -EINVAL;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (*p - '0');
        }
        *ret = (unsigned) v;
        return 0;
}

int parse_memory_block_name(const char *name, uint64_t *ret) {
        unsigned v;
        int r = parse_prefixed_uint(name, "memory", &v);

        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

/* Reads "keyword value" at p if the line (after spaces) starts with keyword and a space. */
static bool zoneinfo_field(const char *line, const char *keyword, uint64_t *ret) {
        const char *p = line;
        unsigned long long v;
        char *end;

        while (*p == ' ' || *p == '\t')
                p++;
        p = startswith(p, keyword);
        if (!p || (*p != ' ' && *p != '\t'))
                return false;
        errno = 0;
        v = strtoull(p, &end, 10);
        if (errno != 0 || end == p)
                return false;
        *ret = v;
        return true;
}

int parse_zoneinfo(const char *text, ZoneinfoCallback cb, void *userdata) {
        const char *p = text;
        int node = -1;
        Zone zone = _ZONE_INVALID;
        ZonePages pages = {};
        int r;

        while (*p) {
                const char *eol = strchr(p, '\n');
                size_t len = eol ? (size_t) (eol - p) : strlen(p);
                char line[256];
                uint64_t v;

                if (len >= sizeof(line))
                        len = sizeof(line) - 1; /* long "protection:" lines: we need no tail */
                memcpy(line, p, len);
                line[len] = 0;
                p = eol ? eol + 1 : p + strlen(p);

                if (startswith(line, "Node ")) {
                        int n;
                        char name[16];

                        if (node >= 0 && zone >= 0) {
                                r = cb(node, zone, &pages, userdata);
                                if (r < 0)
                                        return r;
                        }
                        /* "Node %d, zone %8s": the name is right-aligned, so scanf's %s skips the pad. */
                        if (sscanf(line, "Node %d, zone %15s", &n, name) != 2 || n < 0 || n >= MODEL_MAX_NODES)
                                return -EBADMSG;
                        node = n;
                        zone = zone_from_string(name);
                        if (zone < 0 || zone == ZONE_NONE || zone == ZONE_UNKNOWN)
                                zone = _ZONE_INVALID; /* a zone we do not model (e.g. a future one): skip */
                        memset(&pages, 0, sizeof(pages));
                        continue;
                }
                if (node < 0)
                        continue;
                if (zoneinfo_field(line, "start_pfn:", &v))
                        pages.start_pfn = v;
                else if (zoneinfo_field(line, "spanned", &v))
                        pages.spanned = v;
                else if (zoneinfo_field(line, "present", &v))
                        pages.present = v;
                else if (zoneinfo_field(line, "managed", &v))
                        pages.managed = v;
        }
        if (node >= 0 && zone >= 0) {
                r = cb(node, zone, &pages, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int parse_iomem(const char *text, IomemCallback cb, void *userdata) {
        const char *p = text;

        while (*p) {
                const char *eol = strchr(p, '\n');
                size_t len = eol ? (size_t) (eol - p) : strlen(p);
                char line[256];
                unsigned long long start, end;
                int name_at = 0;
                const char *name;
                BlockOwner owner;

                if (len >= sizeof(line))
                        len = sizeof(line) - 1;
                memcpy(line, p, len);
                line[len] = 0;
                p = eol ? eol + 1 : p + strlen(p);

                if (sscanf(line, " %llx-%llx : %n", &start, &end, &name_at) < 2 || name_at == 0)
                        continue;
                name = line + name_at;
                if (streq(name, "System RAM (virtio_mem)"))
                        owner = OWNER_VIRTIO_MEM;
                else if (streq(name, "System RAM (kmem)"))
                        owner = OWNER_DAX_KMEM;
                else
                        continue;
                if (end < start)
                        return -EBADMSG;
                int r = cb(start, end, owner, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
