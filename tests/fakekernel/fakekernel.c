/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fakekernel.c — an LD_PRELOAD shim that plays the kernel's synchronous half for a generated tree. */

/*
 * hotplugd under test runs with --root ROOT on a tree written by tests/gen-tree.py. Its sysfs
 * writes land in plain files there, which would just store the bytes. This shim makes a write to
 * ROOT/sys/devices/system/memory/memoryN/state behave like the kernel's state_store(), in the
 * writing thread, before write(2) returns:
 *
 *   "offline"        -> state "offline", online "0", valid_zones "<old zone> <the other zone>"
 *   "online_movable" -> state "online",  online "1", valid_zones "Movable"
 *   "online_kernel"  -> state "online",  online "1", valid_zones the first kernel zone offered, else "Normal"
 *   "online"         -> state "online",  online "1", valid_zones the first zone valid_zones offers
 *   the state the block already has -> EINVAL (state_store: "if (ret) return -EINVAL");
 *   anything else, or offlining a block whose valid_zones is "none" -> EINVAL.
 * A trailing newline is accepted (sysfs_streq). The files are replaced by rename(2), so a reader
 * (the daemon, tests/fakekernel/reactor.py) never sees a half-written one. What the kernel does
 * asynchronously (zoneinfo, node masks, uevents, ACPI eject) is reactor.py's part: it follows the
 * log below.
 *
 * Fault injection, read from ROOT/.fakekernel/ at every write (memoryN.X first, then any.X):
 *   memoryN.fail   "ERRNO COUNT [OP]"  fail COUNT times (or "inf") with ERRNO ("-16" or "16" = EBUSY),
 *                                      then succeed; the file is rewritten with the count left
 *   memoryN.delay  "MS [OP]"           the write takes MS milliseconds (page migration); a signal
 *                                      that reaches the thread meanwhile ends it with EINTR and
 *                                      nothing changed, as offline_pages() does on signal_pending()
 *   memoryN.block  "[OP]"              the write waits until a signal arrives, then fails with EINTR
 *                                      (the kernel's retry loop on a pinned page); removing the file
 *                                      lets the write go on (a test-only way to release it)
 * OP is "offline" (the default), "online" (any online* write) or "any".
 *   stop           lines "KIND N [TEXT]"  raise(SIGSTOP) right after the Nth event of KIND (whose log
 *                                      line contains TEXT) in this process, so a test can look at the
 *                                      journal and kill -9 at a known point. KIND is a log kind below.
 *
 * Log, ROOT/.fakekernel/log, one line per event (O_APPEND, one write(2) each), CLOCK_MONOTONIC seconds:
 *   T PID TID write-start memoryN VALUE
 *   T PID TID block-wait memoryN VALUE         (a .block control holds the write)
 *   T PID TID write-end memoryN VALUE RESULT   (RESULT 0 or -errno)
 *   T PID TID eject DEVICE                     (a write to an ACPI device's eject; the bytes go to the file)
 *   T PID TID journal NAME phase=P blocks=I:S,... copy=journals/PID-K.journal
 *   T PID TID journal-remove NAME
 *   T PID TID quarantine TMPNAME               (a file renamed to "quarantine": hotplugd persisted it)
 *   T PID TID rename OLD NEW                   (a journal renamed to something else, e.g. *.corrupt)
 *   T PID TID stop KIND N
 * Journals are job-<id>.journal files renamed into place anywhere (hotplugd's StateDirectory); each
 * saved version is copied to ROOT/.fakekernel/journals/.
 *
 * Everything else passes through untouched. Without FAKEKERNEL_ROOT the shim does nothing. It is
 * never built with sanitizers (it is preloaded into non-instrumented programs too: nsenter, hook
 * shells); an ASan-built daemon needs ASAN_OPTIONS=verify_asan_link_order=0 to accept it.
 */

/* The shim defines open() and open64() itself: no redirection of one to the other. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_FDS 65536
#define FD_EJECT (-1)

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_close)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_unlink)(const char *);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);

static char root[PATH_MAX];             /* realpath of FAKEKERNEL_ROOT, "" = inactive */
static size_t root_len;
static char ctl[PATH_MAX];              /* ROOT/.fakekernel */
/* fd -> block index + 1, FD_EJECT, or 0. Set on open, cleared on close; fds are unique while open. */
static int fd_kind[MAX_FDS];
static unsigned journal_seq;
static unsigned stop_counts[32];
static bool stop_done[32];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void init(void) {
        const char *e = getenv("FAKEKERNEL_ROOT");

        real_open = dlsym(RTLD_NEXT, "open");
        real_openat = dlsym(RTLD_NEXT, "openat");
        real_write = dlsym(RTLD_NEXT, "write");
        real_pwrite = dlsym(RTLD_NEXT, "pwrite");
        real_close = dlsym(RTLD_NEXT, "close");
        real_rename = dlsym(RTLD_NEXT, "rename");
        real_renameat = dlsym(RTLD_NEXT, "renameat");
        real_renameat2 = dlsym(RTLD_NEXT, "renameat2");
        real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
        real_unlink = dlsym(RTLD_NEXT, "unlink");
        real_dup = dlsym(RTLD_NEXT, "dup");
        real_dup2 = dlsym(RTLD_NEXT, "dup2");
        real_dup3 = dlsym(RTLD_NEXT, "dup3");
        real_fcntl = dlsym(RTLD_NEXT, "fcntl");
        if (!e || !*e || !realpath(e, root) || strcmp(root, "/") == 0) {
                root[0] = 0;
                return;
        }
        root_len = strlen(root);
        snprintf(ctl, sizeof(ctl), "%s/.fakekernel", root);
}

/* The constructor may not have run yet when another library's constructor calls us. */
static void ensure(void) {
        if (!real_write)
                init();
}

/* ---- small file helpers on the real calls ------------------------------------------------- */

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int read_file(const char *path, char *buf, size_t size) {
        int fd = real_open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n, total = 0;

        if (fd < 0)
                return -errno;
        while ((size_t) total < size - 1 && (n = read(fd, buf + total, size - 1 - (size_t) total)) > 0)
                total += n;
        real_close(fd);
        buf[total] = 0;
        return (int) total;
}

static void strip(char *s) {
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
                s[--n] = 0;
}

/* Replaces path atomically: a reader sees the old content or the new, never an empty file. */
static int replace_file(const char *path, const char *text, mode_t mode) {
        char tmp[PATH_MAX];
        int fd, r = 0;
        size_t len = strlen(text);

        snprintf(tmp, sizeof(tmp), "%s/tmp/%d-%ld", ctl, getpid(), (long) syscall(SYS_gettid));
        fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0) {
                /* No control directory: write next to the file (still atomic, briefly visible). */
                snprintf(tmp, sizeof(tmp), "%s.fk-%ld", path, (long) syscall(SYS_gettid));
                fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
                if (fd < 0)
                        return -errno;
        }
        if (real_write(fd, text, len) != (ssize_t) len)
                r = -EIO;
        (void) fchmod(fd, mode);
        real_close(fd);
        if (r == 0 && real_rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) real_unlink(tmp);
        return r;
}

static void check_stop(const char *kind, const char *line);

/* One line per event; one write(2) with O_APPEND keeps concurrent writers' lines whole. */
__attribute__((format(printf, 2, 3))) static void logf_(const char *kind, const char *fmt, ...) {
        char line[4096], path[PATH_MAX];
        int n, fd;
        va_list ap;

        n = snprintf(line, sizeof(line), "%.6f %d %ld %s ", now(), getpid(), (long) syscall(SYS_gettid), kind);
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
        va_end(ap);
        if (n > (int) sizeof(line) - 2)
                n = (int) sizeof(line) - 2;
        line[n++] = '\n';
        line[n] = 0;
        snprintf(path, sizeof(path), "%s/log", ctl);
        fd = real_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
                (void) !real_write(fd, line, (size_t) n);
                real_close(fd);
        }
        check_stop(kind, line);
}

/* "stop" lines: KIND N [TEXT]. */
static void check_stop(const char *kind, const char *line) {
        char buf[4096], path[PATH_MAX];
        bool stop = false;
        unsigned k = 0;

        if (strcmp(kind, "stop") == 0)
                return;
        snprintf(path, sizeof(path), "%s/stop", ctl);
        if (read_file(path, buf, sizeof(buf)) <= 0)
                return;
        pthread_mutex_lock(&lock);
        for (char *p = buf, *nl; p && *p && k < 32; p = nl, k++) {
                char what[64] = "", text[256] = "";
                unsigned n = 0;

                nl = strchr(p, '\n');
                if (nl)
                        *nl++ = 0;
                if (sscanf(p, "%63s %u %255[^\n]", what, &n, text) < 2 || strcmp(what, kind) != 0)
                        continue;
                if (text[0] && !strstr(line, text))
                        continue;
                if (stop_done[k] || ++stop_counts[k] != n)
                        continue;
                stop_done[k] = true;
                stop = true;
                snprintf(text, sizeof(text), "%s %u", what, n);
                pthread_mutex_unlock(&lock);
                logf_("stop", "%s", text);
                pthread_mutex_lock(&lock);
        }
        pthread_mutex_unlock(&lock);
        if (stop)
                raise(SIGSTOP);
}

/* ---- classifying file descriptors ---------------------------------------------------------- */

static const char MEMORY_PREFIX[] = "/sys/devices/system/memory/memory";

/* What an fd opened for writing is: a block's state file, an ACPI eject file, or nothing of ours. */
static void classify(int fd, int flags) {
        char link[64], target[PATH_MAX];
        ssize_t n;
        const char *p;
        char *end;
        unsigned long v;

        if (fd < 0 || fd >= MAX_FDS)
                return;
        __atomic_store_n(&fd_kind[fd], 0, __ATOMIC_RELEASE);
        if (!root[0] || (flags & O_ACCMODE) == O_RDONLY)
                return;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
                return;
        target[n] = 0;
        if ((size_t) n <= root_len || strncmp(target, root, root_len) != 0 || target[root_len] != '/')
                return;
        p = target + root_len;
        if (strncmp(p, MEMORY_PREFIX, sizeof(MEMORY_PREFIX) - 1) == 0) {
                p += sizeof(MEMORY_PREFIX) - 1;
                if (*p < '0' || *p > '9')
                        return;
                errno = 0;
                v = strtoul(p, &end, 10);
                if (errno || strcmp(end, "/state") != 0 || v > INT32_MAX - 2)
                        return;
                __atomic_store_n(&fd_kind[fd], (int) v + 1, __ATOMIC_RELEASE);
                return;
        }
        if (strncmp(p, "/sys/devices/", 13) == 0 && n > 6 && strcmp(target + n - 6, "/eject") == 0)
                __atomic_store_n(&fd_kind[fd], FD_EJECT, __ATOMIC_RELEASE);
}

static int kind_of(int fd) {
        if (fd < 0 || fd >= MAX_FDS || !root[0])
                return 0;
        return __atomic_load_n(&fd_kind[fd], __ATOMIC_ACQUIRE);
}

/* ---- the kernel's state_store() -------------------------------------------------------------- */

static bool op_matches(const char *op, const char *value) {
        if (!op[0] || strcmp(op, "offline") == 0)
                return strcmp(value, "offline") == 0;
        if (strcmp(op, "online") == 0)
                return strncmp(value, "online", 6) == 0;
        return strcmp(op, "any") == 0 || strcmp(op, "all") == 0;
}

/* The control file for this block, or the any.X fallback; returns its length or < 0. */
static int read_control(long index, const char *what, char *buf, size_t size, char *path, size_t path_size) {
        int r;

        snprintf(path, path_size, "%s/memory%ld.%s", ctl, index, what);
        r = read_file(path, buf, size);
        if (r >= 0)
                return r;
        snprintf(path, path_size, "%s/any.%s", ctl, what);
        return read_file(path, buf, size);
}

/* Sleeps up to usec; -EINTR as soon as a signal handler ran in this thread. */
static int interruptible_sleep(long usec) {
        struct timespec ts = { usec / 1000000, (usec % 1000000) * 1000 };
        if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
                return -EINTR;
        return 0;
}

static int hold_while_blocked(long index, const char *value) {
        char buf[64], path[PATH_MAX], op[32] = "";
        bool announced = false;

        for (;;) {
                if (read_control(index, "block", buf, sizeof(buf), path, sizeof(path)) < 0)
                        return 0;
                op[0] = 0;
                (void) sscanf(buf, "%31s", op);
                if (!op_matches(op, value))
                        return 0;
                if (!announced) {
                        logf_("block-wait", "memory%ld %s", index, value);
                        announced = true;
                }
                if (interruptible_sleep(5000) < 0)
                        return -EINTR;
        }
}

static int apply_delay(long index, const char *value) {
        char buf[64], path[PATH_MAX], op[32] = "";
        long ms = 0;
        double end;

        if (read_control(index, "delay", buf, sizeof(buf), path, sizeof(path)) < 0)
                return 0;
        if (sscanf(buf, "%ld %31s", &ms, op) < 1 || ms <= 0 || !op_matches(op, value))
                return 0;
        end = now() + (double) ms / 1000.0;
        for (double left; (left = end - now()) > 0;)
                if (interruptible_sleep(left > 0.005 ? 5000 : (long) (left * 1e6) + 1) < 0)
                        return -EINTR;
        return 0;
}

static int apply_fail(long index, const char *value) {
        char buf[128], path[PATH_MAX], count[32] = "", op[32] = "", out[128];
        int err = 0;
        long left;

        if (read_control(index, "fail", buf, sizeof(buf), path, sizeof(path)) < 0)
                return 0;
        if (sscanf(buf, "%d %31s %31s", &err, count, op) < 2 || err == 0 || !op_matches(op, value))
                return 0;
        if (err > 0)
                err = -err;
        if (strcmp(count, "inf") == 0)
                return err;
        left = strtol(count, NULL, 10);
        if (left <= 0)
                return 0;
        snprintf(out, sizeof(out), "%d %ld%s%s\n", err, left - 1, op[0] ? " " : "", op);
        (void) replace_file(path, out, 0644);
        return err;
}

static const char *other_zone(const char *zone) {
        return strcmp(zone, "Movable") == 0 ? "Normal" : "Movable";
}

static int change_state(long index, const char *value) {
        char dir[PATH_MAX], path[PATH_MAX], state[64], zones[256], zone[64] = "", vz[256];
        bool online;
        const char *new_state, *new_online;

        snprintf(dir, sizeof(dir), "%s/sys/devices/system/memory/memory%ld", root, index);
        snprintf(path, sizeof(path), "%s/state", dir);
        if (read_file(path, state, sizeof(state)) < 0)
                return -ENODEV;     /* removed under our feet */
        strip(state);
        snprintf(path, sizeof(path), "%s/valid_zones", dir);
        if (read_file(path, zones, sizeof(zones)) < 0)
                return -ENODEV;
        strip(zones);
        (void) sscanf(zones, "%63s", zone);
        online = strcmp(state, "offline") != 0;

        if (strcmp(value, "offline") == 0) {
                if (!online)
                        return -EINVAL;
                if (strcmp(zone, "none") == 0 || !zone[0])
                        return -EINVAL;     /* spans zones or nodes: memory_block_offline() refuses */
                if (strcmp(zone, "Movable") == 0 || strcmp(zone, "Normal") == 0)
                        snprintf(vz, sizeof(vz), "%s %s\n", zone, other_zone(zone));
                else
                        snprintf(vz, sizeof(vz), "%s Normal Movable\n", zone);
                new_state = "offline\n";
                new_online = "0\n";
        } else if (strcmp(value, "online") == 0 || strcmp(value, "online_movable") == 0 ||
                   strcmp(value, "online_kernel") == 0) {
                if (online)
                        return -EINVAL;
                if (strcmp(value, "online_movable") == 0)
                        snprintf(vz, sizeof(vz), "Movable\n");
                else if (strcmp(value, "online_kernel") == 0) {
                        /* The first kernel zone valid_zones offers, Normal if it offers none. */
                        char copy[256], *save = NULL, *z;
                        const char *pick = "Normal";

                        snprintf(copy, sizeof(copy), "%s", zones);
                        for (z = strtok_r(copy, " ", &save); z; z = strtok_r(NULL, " ", &save))
                                if (strcmp(z, "Movable") != 0) {
                                        pick = z;
                                        break;
                                }
                        snprintf(vz, sizeof(vz), "%s\n", pick);
                } else
                        snprintf(vz, sizeof(vz), "%s\n", zone[0] ? zone : "Normal");
                new_state = "online\n";
                new_online = "1\n";
        } else
                return -EINVAL;

        /* valid_zones and online first, state last: state is what everyone polls. */
        snprintf(path, sizeof(path), "%s/valid_zones", dir);
        if (replace_file(path, vz, 0444) < 0)
                return -EIO;
        snprintf(path, sizeof(path), "%s/online", dir);
        if (replace_file(path, new_online, 0644) < 0)
                return -EIO;
        snprintf(path, sizeof(path), "%s/state", dir);
        if (replace_file(path, new_state, 0644) < 0)
                return -EIO;
        return 0;
}

static ssize_t state_write(long index, const void *buf, size_t count) {
        char value[64];
        size_t n = count < sizeof(value) - 1 ? count : sizeof(value) - 1;
        int saved = errno, r;

        memcpy(value, buf, n);
        value[n] = 0;
        if (n > 0 && value[n - 1] == '\n')
                value[n - 1] = 0;   /* sysfs_streq() */
        logf_("write-start", "memory%ld %s", index, value);

        r = hold_while_blocked(index, value);
        if (r == 0)
                r = apply_delay(index, value);
        if (r == 0)
                r = apply_fail(index, value);
        if (r == 0)
                r = change_state(index, value);

        logf_("write-end", "memory%ld %s %d", index, value, r);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        errno = saved;
        return (ssize_t) count;
}

static void log_eject(int fd) {
        char link[64], target[PATH_MAX], *slash;
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
                return;
        target[n] = 0;
        slash = strrchr(target, '/');
        if (!slash)
                return;
        *slash = 0;
        slash = strrchr(target, '/');
        logf_("eject", "%s", slash ? slash + 1 : target);
}

/* ---- journals ------------------------------------------------------------------------------ */

static bool is_journal_name(const char *name) {
        const char *base = strrchr(name, '/');
        size_t n;

        base = base ? base + 1 : name;
        n = strlen(base);
        if (strncmp(base, "job-", 4) != 0 || n < 13 || strcmp(base + n - 8, ".journal") != 0)
                return false;
        for (const char *p = base + 4; p < base + n - 8; p++)
                if (*p < '0' || *p > '9')
                        return false;
        return true;
}

static void resolve(int dirfd, const char *name, char *out, size_t size) {
        char link[64], dir[PATH_MAX];
        ssize_t n;

        if (name[0] == '/') {
                snprintf(out, size, "%s", name);
                return;
        }
        if (dirfd == AT_FDCWD)
                snprintf(link, sizeof(link), "/proc/self/cwd");
        else
                snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
        n = readlink(link, dir, sizeof(dir) - 1);
        if (n <= 0) {
                snprintf(out, size, "%s", name);
                return;
        }
        dir[n] = 0;
        snprintf(out, size, "%s/%s", dir, name);
}

static const char *base_of(const char *p) {
        const char *b = strrchr(p, '/');
        return b ? b + 1 : p;
}

/* A journal was renamed into place: copy it and log a summary a test can match on. */
static void journal_saved(int dirfd, const char *name) {
        char path[PATH_MAX], text[65536], summary[2048] = "", phase[32] = "?", copy[PATH_MAX], rel[128];
        size_t off = 0;
        unsigned seq;
        int n;

        resolve(dirfd, name, path, sizeof(path));
        n = read_file(path, text, sizeof(text));
        if (n < 0)
                return;
        for (char *line = text, *nl; line && *line; line = nl) {
                char st[32];
                unsigned long idx;

                nl = strchr(line, '\n');
                if (nl)
                        *nl++ = 0;
                if (strncmp(line, "phase=", 6) == 0)
                        snprintf(phase, sizeof(phase), "%s", line + 6);
                else if (sscanf(line, "block=%lu %*s %31s", &idx, st) == 2 && off < sizeof(summary) - 48)
                        off += (size_t) snprintf(summary + off, sizeof(summary) - off, "%s%lu:%s", off ? "," : "", idx, st);
                if (nl)
                        nl[-1] = '\n';
        }
        pthread_mutex_lock(&lock);
        seq = ++journal_seq;
        pthread_mutex_unlock(&lock);
        snprintf(rel, sizeof(rel), "journals/%d-%u.journal", getpid(), seq);
        snprintf(copy, sizeof(copy), "%s/%s", ctl, rel);
        (void) replace_file(copy, text, 0644);
        logf_("journal", "%s phase=%s blocks=%s copy=%s", base_of(name), phase, off ? summary : "-", rel);
}

static void after_rename(int newdirfd, const char *oldpath, const char *newpath) {
        if (!root[0])
                return;
        if (is_journal_name(newpath))
                journal_saved(newdirfd, newpath);
        else if (strcmp(base_of(newpath), "quarantine") == 0)
                logf_("quarantine", "%s", base_of(oldpath));
        else if (is_journal_name(oldpath))
                logf_("rename", "%s %s", base_of(oldpath), base_of(newpath));
}

/* ---- the interposed calls ------------------------------------------------------------------ */

static mode_t mode_arg(int flags, va_list ap) {
        return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t) va_arg(ap, int) : 0;
}

/* sysfs ignores O_TRUNC; a regular file would lose the state before we read it ("echo x > state"). */
static bool maybe_ours(const char *path, int flags) {
        const char *b = base_of(path);
        return root[0] && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY &&
               (strcmp(b, "state") == 0 || strcmp(b, "eject") == 0);
}

static int opened(int fd, int flags, bool truncate) {
        if (fd < 0)
                return fd;
        classify(fd, flags);
        if (truncate && kind_of(fd) == 0 && ftruncate(fd, 0) < 0) {
                int saved = errno;
                real_close(fd);
                errno = saved;
                return -1;
        }
        return fd;
}

EXPORT int open(const char *path, int flags, ...) {
        bool trunc;
        va_list ap;
        mode_t mode;

        ensure();
        va_start(ap, flags);
        mode = mode_arg(flags, ap);
        va_end(ap);
        trunc = maybe_ours(path, flags);
        return opened(real_open(path, trunc ? flags & ~O_TRUNC : flags, mode), flags, trunc);
}

EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open")));

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
        bool trunc;
        va_list ap;
        mode_t mode;

        ensure();
        va_start(ap, flags);
        mode = mode_arg(flags, ap);
        va_end(ap);
        trunc = maybe_ours(path, flags);
        return opened(real_openat(dirfd, path, trunc ? flags & ~O_TRUNC : flags, mode), flags, trunc);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

/* _FORTIFY_SOURCE builds call these. */
int __open_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);

EXPORT int __open_2(const char *path, int flags) {
        return open(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags) {
        return openat(dirfd, path, flags);
}

EXPORT ssize_t write(int fd, const void *buf, size_t count) {
        int k;

        ensure();
        k = kind_of(fd);
        if (k > 0)
                return state_write(k - 1, buf, count);
        if (k == FD_EJECT) {
                ssize_t n = real_write(fd, buf, count);
                int saved = errno;
                log_eject(fd);
                errno = saved;
                return n;
        }
        return real_write(fd, buf, count);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
        int k;

        ensure();
        k = kind_of(fd);
        if (k > 0)
                return state_write(k - 1, buf, count);
        return real_pwrite(fd, buf, count, offset);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) __attribute__((alias("pwrite")));

/* A shell's "echo offline > state" opens, then moves the fd to 1: the copy is the same file. */
static int copied(int from, int to) {
        if (to >= 0 && to < MAX_FDS)
                __atomic_store_n(&fd_kind[to], kind_of(from), __ATOMIC_RELEASE);
        return to;
}

EXPORT int dup(int fd) {
        ensure();
        return copied(fd, real_dup(fd));
}

EXPORT int dup2(int fd, int fd2) {
        ensure();
        return copied(fd, real_dup2(fd, fd2));
}

EXPORT int dup3(int fd, int fd2, int flags) {
        ensure();
        return copied(fd, real_dup3(fd, fd2, flags));
}

EXPORT int fcntl(int fd, int cmd, ...) {
        va_list ap;
        long arg;
        int r;

        ensure();
        va_start(ap, cmd);
        arg = va_arg(ap, long);
        va_end(ap);
        r = real_fcntl(fd, cmd, arg);
        if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
                copied(fd, r);
        return r;
}

EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

EXPORT int close(int fd) {
        ensure();
        if (fd >= 0 && fd < MAX_FDS)
                __atomic_store_n(&fd_kind[fd], 0, __ATOMIC_RELEASE);
        return real_close(fd);
}

EXPORT int rename(const char *oldpath, const char *newpath) {
        int r;

        ensure();
        r = real_rename(oldpath, newpath);
        if (r == 0) {
                int saved = errno;
                after_rename(AT_FDCWD, oldpath, newpath);
                errno = saved;
        }
        return r;
}

EXPORT int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
        int r;

        ensure();
        r = real_renameat(olddirfd, oldpath, newdirfd, newpath);
        if (r == 0) {
                int saved = errno;
                after_rename(newdirfd, oldpath, newpath);
                errno = saved;
        }
        return r;
}

EXPORT int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags) {
        int r;

        ensure();
        if (!real_renameat2) {
                errno = ENOSYS;
                return -1;
        }
        r = real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
        if (r == 0) {
                int saved = errno;
                after_rename(newdirfd, oldpath, newpath);
                errno = saved;
        }
        return r;
}

EXPORT int unlinkat(int dirfd, const char *path, int flags) {
        int r;

        ensure();
        r = real_unlinkat(dirfd, path, flags);
        if (r == 0 && root[0] && is_journal_name(path)) {
                int saved = errno;
                logf_("journal-remove", "%s", base_of(path));
                errno = saved;
        }
        return r;
}

EXPORT int unlink(const char *path) {
        int r;

        ensure();
        r = real_unlink(path);
        if (r == 0 && root[0] && is_journal_name(path)) {
                int saved = errno;
                logf_("journal-remove", "%s", base_of(path));
                errno = saved;
        }
        return r;
}
