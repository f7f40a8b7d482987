/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* uevent-inject — send uevents as systemd-udevd (or the kernel) would, into the current network namespace. */

/*
 * Netlink uevent sockets are per network namespace, so a test runs the daemon under test and this tool
 * in a private netns (unshare -n) and nothing reaches the host's udevd or PID 1. The tool refuses to run
 * in the namespace of PID 1 or kthreadd, and, if neither can be read, in any namespace with an
 * interface other than lo.
 *
 * Default mode (--udev): one datagram per event to multicast group 2 ("udev"), in the format udevd
 * broadcasts after processing an event, which libudev/sd-device monitors accept when
 *   - the datagram is at least 32 bytes and fits the receiver's 8 KiB buffer (MSG_TRUNC is refused),
 *   - it carries SCM_CREDENTIALS with uid 0 (the kernel attaches the sender's; we run as root),
 *   - it starts with "libudev\0" and magic 0xfeedcafe in network byte order,
 *   - properties_off + 32 <= length; properties are NUL-terminated KEY=VALUE strings,
 *   - ACTION is a known action, DEVPATH and SUBSYSTEM are set and SEQNUM is a non-zero number,
 *   - the kernel BPF filter installed by udev_monitor_filter_update() passes it: it compares the
 *     big-endian MurmurHash2 (seed 0) of the subsystem (and devtype, if filtered) in the header,
 *     and a 64-bit bloom of the tags if tag filters are set.
 * udev group messages are not checked for the sender's port id; kernel group (1) messages are refused
 * by libudev unless the port id is 0 (the kernel).
 *
 * --kernel: the kernel's format ("ACTION@DEVPATH\0KEY=VALUE\0...") multicast to group 1 from our own
 *   port (a raw netlink listener sees nl_pid != 0; libudev would drop it).
 * --kernel-relay: the same payload sent to the netns' kernel uevent socket (port 0), which re-broadcasts
 *   it on group 1 with port id 0 and appends SEQNUM= from the kernel's global counter (the feature is
 *   meant for containers: lib/kobject_uevent.c uevent_net_rcv). This bumps the host's uevent seqnum
 *   counter, nothing else.
 *
 * Sends never block: netlink multicast drops the datagram for a listener whose receive queue is full,
 * and that listener gets ENOBUFS on its next recvmsg(). The sender cannot see the drop.
 *
 * netlink_sendmsg() also unicasts every multicast datagram to port 0, the netns' kernel uevent socket,
 * which parses it as netlink messages: "libu" or "add@" read as nlmsg_len is larger than the datagram,
 * so the kernel drops it (older kernels without that input hook answer ECONNREFUSED instead).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* sendmmsg() */
#endif

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define UDEV_MAGIC 0xfeedcafeU
#define GROUP_KERNEL 1U
#define GROUP_UDEV 2U
/* sd-device's receive buffer: bigger datagrams arrive truncated and are refused. */
#define MAX_DATAGRAM 8192
#define BATCH 64
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* The header udevd puts in front of the properties (all fields 32-bit, 40 bytes). */
struct udev_header {
        char prefix[8];                 /* "libudev\0" */
        uint32_t magic;                 /* network order */
        uint32_t header_size;           /* host order */
        uint32_t properties_off;        /* host order */
        uint32_t properties_len;        /* host order */
        uint32_t subsystem_hash;        /* network order */
        uint32_t devtype_hash;          /* network order, 0 if no DEVTYPE */
        uint32_t tag_bloom_hi;          /* network order */
        uint32_t tag_bloom_lo;          /* network order */
};
_Static_assert(sizeof(struct udev_header) == 40, "udev header must be 40 bytes");

typedef enum Mode {
        MODE_UDEV,
        MODE_KERNEL,
        MODE_KERNEL_RELAY,
} Mode;

typedef struct Spec {
        char *action;
        char *devpath;          /* may contain one {A..B} range */
        char *subsystem;
        char **props;           /* extra KEY=VALUE, in order */
        size_t n_props;
        bool has_range;
        uint64_t range_from, range_to;
        size_t range_at, range_len;     /* position of "{A..B}" in devpath */
        const char *devtype;    /* points into props, or NULL */
        uint64_t tag_bloom;
        bool own_seqnum;        /* SEQNUM= given explicitly */
        uint64_t own_seqnum_value;
        bool own_usec;          /* USEC_INITIALIZED= given explicitly */
        unsigned line;
} Spec;

static struct {
        Mode mode;
        uint64_t count;
        double rate;
        uint64_t seqnum;
        bool seqnum_set;
        const char *seqnum_file;
        bool usec;
        bool verbose;
        bool stats;
        bool dry_run;
} arg = {
        .mode = MODE_UDEV,
        .count = 1,
        .usec = true,
};

static const char *program = "uevent-inject";

_Noreturn static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

static void *xmalloc(size_t n) {
        void *p = malloc(n ?: 1);
        if (!p)
                die("out of memory");
        return p;
}

static void *xrealloc(void *p, size_t n) {
        p = realloc(p, n ?: 1);
        if (!p)
                die("out of memory");
        return p;
}

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        if (!p)
                die("out of memory");
        return p;
}

/* MurmurHash2 (Austin Appleby, public domain algorithm), 32-bit, native-endian reads as libudev does. */
static uint32_t murmur2(const void *key, size_t len, uint32_t seed) {
        const uint32_t m = 0x5bd1e995;
        const unsigned char *p = key;
        uint32_t h = seed ^ (uint32_t) len;

        for (; len >= 4; p += 4, len -= 4) {
                uint32_t k;

                memcpy(&k, p, 4);
                k *= m;
                k ^= k >> 24;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len) {
        case 3:
                h ^= (uint32_t) p[2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t) p[1] << 8;
                /* fall through */
        case 1:
                h ^= p[0];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

static uint32_t string_hash(const char *s) {
        return murmur2(s, strlen(s), 0);
}

static uint64_t tag_bloom(const char *tag) {
        uint32_t h = string_hash(tag);

        return (UINT64_C(1) << (h & 63)) | (UINT64_C(1) << ((h >> 6) & 63)) |
               (UINT64_C(1) << ((h >> 12) & 63)) | (UINT64_C(1) << ((h >> 18) & 63));
}

static bool action_is_valid(const char *a) {
        static const char *const actions[] = { "add", "remove", "change", "move", "online", "offline", "bind", "unbind" };

        for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
                if (strcmp(a, actions[i]) == 0)
                        return true;
        return false;
}

static bool parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-' || *s == '+')
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

/* Finds "{A..B}" in s; returns false if there is none. Dies on a malformed or second range. */
static bool find_range(const char *s, unsigned line, size_t *at, size_t *len, uint64_t *from, uint64_t *to) {
        const char *open = strchr(s, '{'), *close, *dots;
        char buf[64];

        if (!open)
                return false;
        close = strchr(open, '}');
        dots = strstr(open, "..");
        if (!close || !dots || dots > close || (size_t) (close - open) >= sizeof(buf))
                die("line %u: malformed range in \"%s\" (expected {FROM..TO})", line, s);
        if (strchr(close + 1, '{'))
                die("line %u: only one {FROM..TO} range per event spec", line);

        memcpy(buf, open + 1, dots - open - 1);
        buf[dots - open - 1] = 0;
        if (!parse_u64(buf, from))
                die("line %u: bad range start in \"%s\"", line, s);
        memcpy(buf, dots + 2, close - dots - 2);
        buf[close - dots - 2] = 0;
        if (!parse_u64(buf, to))
                die("line %u: bad range end in \"%s\"", line, s);
        if (*to < *from)
                die("line %u: range end below start in \"%s\"", line, s);
        *at = open - s;
        *len = close - open + 1;
        return true;
}

/* Parses "ACTION DEVPATH SUBSYSTEM [KEY=VALUE...]"; returns false for blank and comment lines. */
static bool parse_spec(char *line, unsigned lineno, Spec *ret) {
        char *save = NULL, *tok;
        Spec s = { .line = lineno };

        line[strcspn(line, "\r\n")] = 0;
        tok = strtok_r(line, " \t", &save);
        if (!tok || tok[0] == '#')
                return false;

        if (!action_is_valid(tok))
                die("line %u: unknown action \"%s\" (libudev accepts add, remove, change, move, online, offline, bind, unbind)",
                    lineno, tok);
        s.action = xstrdup(tok);

        tok = strtok_r(NULL, " \t", &save);
        if (!tok)
                die("line %u: missing DEVPATH (expected: ACTION DEVPATH SUBSYSTEM [KEY=VALUE...])", lineno);
        if (strncmp(tok, "/sys/", 5) == 0)
                tok += 4;
        if (tok[0] != '/' || tok[1] == 0)
                die("line %u: DEVPATH \"%s\" must start with /, like /devices/system/memory/memory42", lineno, tok);
        s.devpath = xstrdup(tok);
        s.has_range = find_range(s.devpath, lineno, &s.range_at, &s.range_len, &s.range_from, &s.range_to);

        tok = strtok_r(NULL, " \t", &save);
        if (!tok)
                die("line %u: missing SUBSYSTEM (expected: ACTION DEVPATH SUBSYSTEM [KEY=VALUE...])", lineno);
        if (strchr(tok, '='))
                die("line %u: SUBSYSTEM \"%s\" looks like a property; the third word is the subsystem", lineno, tok);
        s.subsystem = xstrdup(tok);

        while ((tok = strtok_r(NULL, " \t", &save))) {
                char *eq = strchr(tok, '=');
                uint64_t v;

                if (!eq || eq == tok)
                        die("line %u: \"%s\" is not KEY=VALUE", lineno, tok);
                if (strncmp(tok, "ACTION=", 7) == 0 || strncmp(tok, "DEVPATH=", 8) == 0 ||
                    strncmp(tok, "SUBSYSTEM=", 10) == 0)
                        die("line %u: %.*s is set by the first three words, not by a property", lineno, (int) (eq - tok), tok);
                if (strncmp(tok, "SEQNUM=", 7) == 0) {
                        if (!parse_u64(eq + 1, &v) || v == 0)
                                die("line %u: SEQNUM must be a number > 0 (libudev drops SEQNUM=0): \"%s\"", lineno, tok);
                        s.own_seqnum = true;
                        s.own_seqnum_value = v;
                }
                if (strncmp(tok, "USEC_INITIALIZED=", 17) == 0)
                        s.own_usec = true;

                s.props = xrealloc(s.props, (s.n_props + 1) * sizeof(char *));
                s.props[s.n_props++] = xstrdup(tok);
                if (strncmp(tok, "DEVTYPE=", 8) == 0)
                        s.devtype = s.props[s.n_props - 1] + 8;
                if (strncmp(tok, "TAGS=", 5) == 0) {
                        /* ":tag1:tag2:" as udevd writes it */
                        char *copy = xstrdup(tok + 5), *t, *ts = NULL;

                        for (t = strtok_r(copy, ":", &ts); t; t = strtok_r(NULL, ":", &ts))
                                s.tag_bloom |= tag_bloom(t);
                        free(copy);
                }
        }

        *ret = s;
        return true;
}

typedef struct SpecList {
        Spec *v;
        size_t n;
        uint64_t n_events;      /* ranges expanded, one pass */
} SpecList;

static void add_spec(SpecList *l, Spec *s) {
        if ((l->n & (l->n - 1)) == 0)
                l->v = xrealloc(l->v, (l->n ? l->n * 2 : 16) * sizeof(Spec));
        l->v[l->n++] = *s;
        l->n_events += s->has_range ? s->range_to - s->range_from + 1 : 1;
}

static void spec_list_free(SpecList *l) {
        for (size_t i = 0; i < l->n; i++) {
                for (size_t j = 0; j < l->v[i].n_props; j++)
                        free(l->v[i].props[j]);
                free(l->v[i].props);
                free(l->v[i].action);
                free(l->v[i].devpath);
                free(l->v[i].subsystem);
        }
        free(l->v);
}

static void read_specs(FILE *f, const char *name, SpecList *l) {
        char *line = NULL;
        size_t size = 0;
        unsigned lineno = 0;

        while (getline(&line, &size, f) >= 0) {
                Spec s;

                lineno++;
                if (parse_spec(line, lineno, &s))
                        add_spec(l, &s);
        }
        if (ferror(f))
                die("reading %s: %m", name);
        free(line);
}

/* Only the loopback device: what a fresh 'unshare -n' or 'ip netns add' namespace holds. */
static bool netns_only_loopback(void) {
        FILE *f = fopen("/proc/self/net/dev", "re");
        char line[512];
        unsigned lineno = 0;
        bool only_lo = true;

        if (!f)
                die("cannot open /proc/self/net/dev: %m");
        while (fgets(line, sizeof(line), f))
                if (++lineno > 2 && strncmp(line + strspn(line, " "), "lo:", 3) != 0)
                        only_lo = false;
        fclose(f);
        return only_lo;
}

/* The host is the network namespace of PID 1 and of kthreadd (kernel threads live in init_net):
 * refuse to broadcast fake events there. PID 1's namespace links may be unreadable even to root
 * (no ptrace access); if no reference can be read, accept only a namespace holding nothing but lo. */
static void check_private_netns(void) {
        static const char *const refs[] = { "/proc/1/ns/net", "/proc/2/ns/net" };
        struct stat self, host;
        bool have_ref = false;

        if (stat("/proc/self/ns/net", &self) < 0)
                die("cannot stat /proc/self/ns/net: %m");
        for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
                if (i == 1) {
                        char comm[32] = "";
                        FILE *f = fopen("/proc/2/comm", "re");

                        if (!f)
                                continue;
                        if (!fgets(comm, sizeof(comm), f))
                                comm[0] = 0;
                        fclose(f);
                        if (strcmp(comm, "kthreadd\n") != 0)
                                continue;
                }
                if (stat(refs[i], &host) < 0)
                        continue;
                have_ref = true;
                if (self.st_dev == host.st_dev && self.st_ino == host.st_ino)
                        die("refusing to send: this process is in the host's network namespace (that of %s), where "
                            "systemd-udevd and PID 1 would act on fake events; run it inside 'unshare -n' or 'ip netns exec'",
                            i == 0 ? "PID 1" : "kthreadd");
        }
        if (!have_ref && !netns_only_loopback())
                die("refusing to send: cannot read the host's network namespace (/proc/1/ns/net, /proc/2/ns/net) and this "
                    "namespace has interfaces other than lo; run it inside a fresh 'unshare -n'");
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct Msg {
        struct udev_header hdr;
        struct nlmsghdr nlh;    /* --kernel-relay only */
        char buf[MAX_DATAGRAM];
        size_t len;             /* bytes of buf used */
} Msg;

static size_t put(char *buf, size_t at, const char *a, const char *b, unsigned line) {
        size_t la = strlen(a), lb = b ? strlen(b) : 0;

        if (at + la + lb + 1 > MAX_DATAGRAM - sizeof(struct udev_header))
                die("line %u: event larger than the %d bytes a libudev monitor can receive", line, MAX_DATAGRAM);
        memcpy(buf + at, a, la);
        if (b)
                memcpy(buf + at + la, b, lb);
        buf[at + la + lb] = 0;
        return at + la + lb + 1;
}

/* Builds the properties (and, for --udev, the header) of one event. */
static void build(Msg *m, const Spec *s, uint64_t index, uint64_t seqnum, uint64_t usec) {
        char devpath[PATH_MAX], num[32];
        size_t at = 0;

        if (s->has_range) {
                int r = snprintf(devpath, sizeof(devpath), "%.*s%" PRIu64 "%s",
                                 (int) s->range_at, s->devpath, index, s->devpath + s->range_at + s->range_len);
                if (r < 0 || (size_t) r >= sizeof(devpath))
                        die("line %u: DEVPATH too long", s->line);
        } else
                snprintf(devpath, sizeof(devpath), "%s", s->devpath);

        if (arg.mode != MODE_UDEV) {
                char head[PATH_MAX + 32];

                snprintf(head, sizeof(head), "%s@%s", s->action, devpath);
                at = put(m->buf, at, head, NULL, s->line);
        }
        at = put(m->buf, at, "ACTION=", s->action, s->line);
        at = put(m->buf, at, "DEVPATH=", devpath, s->line);
        at = put(m->buf, at, "SUBSYSTEM=", s->subsystem, s->line);
        for (size_t i = 0; i < s->n_props; i++)
                at = put(m->buf, at, s->props[i], NULL, s->line);
        if (!s->own_seqnum && arg.mode != MODE_KERNEL_RELAY) {
                snprintf(num, sizeof(num), "%" PRIu64, seqnum);
                at = put(m->buf, at, "SEQNUM=", num, s->line);
        }
        if (arg.mode == MODE_UDEV && arg.usec && !s->own_usec) {
                snprintf(num, sizeof(num), "%" PRIu64, usec);
                at = put(m->buf, at, "USEC_INITIALIZED=", num, s->line);
        }
        m->len = at;

        if (arg.mode == MODE_UDEV) {
                m->hdr = (struct udev_header) {
                        .prefix = "libudev",
                        .magic = htobe32(UDEV_MAGIC),
                        .header_size = sizeof(struct udev_header),
                        .properties_off = sizeof(struct udev_header),
                        .properties_len = (uint32_t) at,
                        .subsystem_hash = htobe32(string_hash(s->subsystem)),
                        .devtype_hash = s->devtype ? htobe32(string_hash(s->devtype)) : 0,
                        .tag_bloom_hi = htobe32((uint32_t) (s->tag_bloom >> 32)),
                        .tag_bloom_lo = htobe32((uint32_t) s->tag_bloom),
                };
                if (sizeof(m->hdr) + at < 32)
                        die("line %u: event shorter than the 32 bytes libudev requires", s->line);
        } else if (arg.mode == MODE_KERNEL_RELAY) {
                m->nlh = (struct nlmsghdr) {
                        .nlmsg_len = NLMSG_HDRLEN + at,
                        .nlmsg_type = NLMSG_MIN_TYPE,   /* netlink_rcv_skb() skips control types */
                        .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,  /* ... and non-requests */
                };
        }
}

static void print_event(const Msg *m) {
        const char *p = m->buf, *end = m->buf + m->len;

        fputs(arg.mode == MODE_UDEV ? "UDEV" : "KERNEL", stderr);
        for (; p < end; p += strlen(p) + 1)
                fprintf(stderr, " %s", p);
        fputc('\n', stderr);
}

static uint64_t read_seqnum_file(int fd) {
        char buf[32] = {};
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        uint64_t v;

        if (n < 0)
                die("reading %s: %m", arg.seqnum_file);
        if (n == 0)
                return 0;
        buf[strcspn(buf, "\n")] = 0;
        if (!parse_u64(buf, &v))
                die("%s does not hold a sequence number: \"%s\"", arg.seqnum_file, buf);
        return v;
}

static void write_seqnum_file(int fd, uint64_t last) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", last);

        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, n, 0) != n)
                die("writing %s: %m", arg.seqnum_file);
}

/* --kernel-relay: the kernel answers every request; a refused one (EPERM without CAP_SYS_ADMIN over the
 * netns) must not pass silently. */
static void read_acks(int fd, size_t n, uint64_t sent) {
        for (size_t i = 0; i < n; i++) {
                char buf[NLMSG_SPACE(sizeof(struct nlmsgerr)) + 256];
                ssize_t r = recv(fd, buf, sizeof(buf), 0);
                const struct nlmsghdr *h = (const struct nlmsghdr *) buf;

                if (r < 0) {
                        if (errno == EINTR) {
                                i--;
                                continue;
                        }
                        die("reading the kernel's answer to event %" PRIu64 ": %m", sent + i + 1);
                }
                if ((size_t) r < NLMSG_SPACE(sizeof(struct nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR)
                        die("unexpected answer from the kernel uevent socket (%zd bytes, type %u)", r,
                            r >= (ssize_t) sizeof(*h) ? h->nlmsg_type : 0);
                if (((const struct nlmsgerr *) NLMSG_DATA(h))->error != 0) {
                        errno = -((const struct nlmsgerr *) NLMSG_DATA(h))->error;
                        die("the kernel refused to relay event %" PRIu64 ": %m", sent + i + 1);
                }
        }
}

static void help(void) {
        printf("Usage: %s [OPTIONS] [ACTION DEVPATH SUBSYSTEM [KEY=VALUE...]]\n"
               "\n"
               "Sends uevents into the current (private!) network namespace, one datagram each.\n"
               "Event specs come from the positional words (one event), -e (repeatable) and -f,\n"
               "or from standard input, one per line:\n"
               "  add /devices/system/memory/memory42 memory\n"
               "  online /devices/system/cpu/cpu3 cpu DRIVER=processor\n"
               "  add /devices/system/memory/memory{100..199} memory     (one event per number)\n"
               "Blank lines and lines starting with # are ignored. SEQNUM= and USEC_INITIALIZED=\n"
               "given as properties override the generated ones. All specs are parsed before the\n"
               "first send: a bad spec sends nothing.\n"
               "\n"
               "  -e, --event=SPEC       one event spec (repeatable)\n"
               "  -f, --file=PATH        read event specs from PATH (- = stdin)\n"
               "  -n, --count=N          send the whole list N times (default 1)\n"
               "  -r, --rate=N           at most N events per second (default: unlimited)\n"
               "  -s, --seqnum=N         SEQNUM of the first event, then +1 per event (default 1)\n"
               "      --seqnum-file=PATH continue after the SEQNUM stored in PATH, store the last one\n"
               "      --udev             udevd's format on group 2 (default)\n"
               "      --kernel           kernel format on group 1, from this process's port\n"
               "      --kernel-relay     kernel format through the netns kernel socket (port id 0)\n"
               "      --no-usec          do not add USEC_INITIALIZED=\n"
               "      --dry-run          parse and print, send nothing (no netns check)\n"
               "  -v, --verbose          print each event to stderr\n"
               "      --stats            print count, time and rate to stderr\n"
               "  -h, --help\n",
               program);
}

static void parse_argv(int argc, char *argv[], SpecList *specs) {
        enum { ARG_SEQNUM_FILE = 0x100, ARG_UDEV, ARG_KERNEL, ARG_KERNEL_RELAY, ARG_NO_USEC, ARG_DRY_RUN, ARG_STATS };
        static const struct option options[] = {
                { "event", required_argument, NULL, 'e' },
                { "file", required_argument, NULL, 'f' },
                { "count", required_argument, NULL, 'n' },
                { "rate", required_argument, NULL, 'r' },
                { "seqnum", required_argument, NULL, 's' },
                { "seqnum-file", required_argument, NULL, ARG_SEQNUM_FILE },
                { "udev", no_argument, NULL, ARG_UDEV },
                { "kernel", no_argument, NULL, ARG_KERNEL },
                { "kernel-relay", no_argument, NULL, ARG_KERNEL_RELAY },
                { "no-usec", no_argument, NULL, ARG_NO_USEC },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "verbose", no_argument, NULL, 'v' },
                { "stats", no_argument, NULL, ARG_STATS },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool have_source = false;
        unsigned n_e = 0;
        int c;

        while ((c = getopt_long(argc, argv, "+e:f:n:r:s:vh", options, NULL)) >= 0) {
                switch (c) {
                case 'e': {
                        char *copy = xstrdup(optarg);
                        Spec s;

                        n_e++;
                        if (!parse_spec(copy, n_e, &s))
                                die("-e \"%s\": empty event spec", optarg);
                        add_spec(specs, &s);
                        free(copy);
                        have_source = true;
                        break;
                }
                case 'f': {
                        FILE *f = strcmp(optarg, "-") == 0 ? stdin : fopen(optarg, "re");

                        if (!f)
                                die("cannot open %s: %m", optarg);
                        read_specs(f, optarg, specs);
                        if (f != stdin)
                                fclose(f);
                        have_source = true;
                        break;
                }
                case 'n':
                        if (!parse_u64(optarg, &arg.count) || arg.count == 0)
                                die("--count needs a number > 0, not \"%s\"", optarg);
                        break;
                case 'r': {
                        char *end;

                        errno = 0;
                        arg.rate = strtod(optarg, &end);
                        if (errno || *end || !(arg.rate >= 0))
                                die("--rate needs events per second >= 0, not \"%s\"", optarg);
                        break;
                }
                case 's':
                        if (!parse_u64(optarg, &arg.seqnum) || arg.seqnum == 0)
                                die("--seqnum needs a number > 0, not \"%s\"", optarg);
                        arg.seqnum_set = true;
                        break;
                case ARG_SEQNUM_FILE:
                        arg.seqnum_file = optarg;
                        break;
                case ARG_UDEV:
                        arg.mode = MODE_UDEV;
                        break;
                case ARG_KERNEL:
                        arg.mode = MODE_KERNEL;
                        break;
                case ARG_KERNEL_RELAY:
                        arg.mode = MODE_KERNEL_RELAY;
                        break;
                case ARG_NO_USEC:
                        arg.usec = false;
                        break;
                case ARG_DRY_RUN:
                        arg.dry_run = true;
                        break;
                case 'v':
                        arg.verbose = true;
                        break;
                case ARG_STATS:
                        arg.stats = true;
                        break;
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                default:
                        fprintf(stderr, "Try '%s --help'.\n", program);
                        exit(EXIT_FAILURE);
                }
        }

        if (optind < argc) {
                size_t len = 0;
                char *line;
                Spec s;

                for (int i = optind; i < argc; i++)
                        len += strlen(argv[i]) + 1;
                line = xmalloc(len + 1);
                line[0] = 0;
                for (int i = optind; i < argc; i++) {
                        strcat(line, argv[i]);
                        strcat(line, " ");
                }
                if (!parse_spec(line, 1, &s))
                        die("empty event spec on the command line");
                add_spec(specs, &s);
                free(line);
                have_source = true;
        }

        if (!have_source)
                read_specs(stdin, "standard input", specs);
        if (specs->n == 0)
                die("no events given (pass ACTION DEVPATH SUBSYSTEM, -e, -f, or lines on stdin)");
        if (arg.seqnum_set && arg.seqnum_file)
                die("--seqnum and --seqnum-file exclude each other");
        if (arg.mode == MODE_KERNEL_RELAY)
                for (size_t i = 0; i < specs->n; i++)
                        if (specs->v[i].own_seqnum)
                                die("line %u: --kernel-relay: the kernel appends SEQNUM itself", specs->v[i].line);
}

int main(int argc, char *argv[]) {
        SpecList specs = {};
        struct sockaddr_nl dest = { .nl_family = AF_NETLINK };
        struct mmsghdr *mm;
        struct iovec *iov;
        Msg *msgs;
        uint64_t total, sent = 0, seqnum, start, last_seqnum = 0;
        int fd = -1, seq_fd = -1;

        parse_argv(argc, argv, &specs);

        if (specs.n_events > UINT64_MAX / arg.count)
                die("too many events");
        total = specs.n_events * arg.count;

        if (!arg.dry_run) {
                check_private_netns();
                fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
                if (fd < 0)
                        die("cannot open a NETLINK_KOBJECT_UEVENT socket: %m");
        }

        seqnum = arg.seqnum_set ? arg.seqnum : 1;
        if (arg.seqnum_file) {
                seq_fd = open(arg.seqnum_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                if (seq_fd < 0)
                        die("cannot open %s: %m", arg.seqnum_file);
                if (flock(seq_fd, LOCK_EX) < 0)
                        die("cannot lock %s: %m", arg.seqnum_file);
                seqnum = read_seqnum_file(seq_fd) + 1;
        }

        switch (arg.mode) {
        case MODE_UDEV:
                dest.nl_groups = GROUP_UDEV;
                break;
        case MODE_KERNEL:
                dest.nl_groups = GROUP_KERNEL;
                break;
        case MODE_KERNEL_RELAY:
                dest.nl_groups = 0;     /* port 0 = the kernel's uevent socket of this netns */
                break;
        }

        msgs = xmalloc(BATCH * sizeof(Msg));
        iov = xmalloc(BATCH * 2 * sizeof(struct iovec));
        mm = xmalloc(BATCH * sizeof(struct mmsghdr));

        start = now_usec(CLOCK_MONOTONIC);
        for (uint64_t pass = 0; pass < arg.count; pass++)
                for (size_t i = 0, n = 0; i < specs.n; i++) {
                        const Spec *s = &specs.v[i];
                        uint64_t from = s->has_range ? s->range_from : 0, to = s->has_range ? s->range_to : 0;

                        for (uint64_t index = from; index <= to; index++) {
                                Msg *m = &msgs[n];
                                bool last = i + 1 == specs.n && index == to;
                                int k;

                                build(m, s, index, seqnum, now_usec(CLOCK_MONOTONIC));
                                if (!s->own_seqnum) {
                                        last_seqnum = MAX(last_seqnum, seqnum);
                                        seqnum++;
                                } else
                                        last_seqnum = MAX(last_seqnum, s->own_seqnum_value);
                                if (arg.verbose || arg.dry_run)
                                        print_event(m);

                                iov[2 * n] = arg.mode == MODE_UDEV ? (struct iovec) { &m->hdr, sizeof(m->hdr) }
                                           : arg.mode == MODE_KERNEL_RELAY ? (struct iovec) { &m->nlh, NLMSG_HDRLEN }
                                           : (struct iovec) { NULL, 0 };
                                iov[2 * n + 1] = (struct iovec) { m->buf, m->len };
                                mm[n] = (struct mmsghdr) {
                                        .msg_hdr = {
                                                .msg_name = &dest,
                                                .msg_namelen = sizeof(dest),
                                                .msg_iov = &iov[2 * n],
                                                .msg_iovlen = 2,
                                        },
                                };
                                n++;

                                /* With a rate, send one at a time on schedule; else in batches. */
                                if (n < BATCH && !last && arg.rate == 0)
                                        continue;
                                if (arg.rate > 0) {
                                        uint64_t due = start + (uint64_t) ((double) sent * 1e6 / arg.rate);
                                        struct timespec ts = { due / 1000000, (due % 1000000) * 1000 };

                                        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                                                ;
                                }
                                for (k = 0; !arg.dry_run && k < (int) n;) {
                                        int r = sendmmsg(fd, mm + k, n - k, 0);

                                        if (r < 0) {
                                                /* Kernels without a uevent input hook refuse the unicast leg
                                                 * to port 0 after the multicast went out. */
                                                if (errno == ECONNREFUSED && arg.mode != MODE_KERNEL_RELAY) {
                                                        k++;
                                                        continue;
                                                }
                                                if (errno == EINTR)
                                                        continue;
                                                die("sending event %" PRIu64 " of %" PRIu64 ": %m", sent + k + 1, total);
                                        }
                                        k += r;
                                }
                                if (arg.mode == MODE_KERNEL_RELAY && !arg.dry_run)
                                        read_acks(fd, n, sent);
                                sent += n;
                                n = 0;
                        }
                }

        if (seq_fd >= 0) {
                /* The highest SEQNUM sent, explicit ones included: the next run continues above it. */
                write_seqnum_file(seq_fd, MAX(last_seqnum, seqnum - 1));
                close(seq_fd);
        }

        if (arg.stats) {
                double secs = (double) (now_usec(CLOCK_MONOTONIC) - start) / 1e6;

                fprintf(stderr, "%s: sent %" PRIu64 " events in %.3f s (%.0f events/s)\n",
                        program, sent, secs, secs > 0 ? (double) sent / secs : 0.0);
        }
        if (fd >= 0)
                close(fd);
        free(msgs);
        free(iov);
        free(mm);
        spec_list_free(&specs);
        return EXIT_SUCCESS;
}
