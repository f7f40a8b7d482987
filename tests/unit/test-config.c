/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-config.c — hotplugd.conf parsing: values, errors, drop-in order and masking, node inheritance. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <syslog.h>

#include "config.h"
#include "log.h"

#define ASSERT(expr)                                                                    \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: Assertion failed: %s\n", __FILE__,     \
                                __LINE__, #expr);                                       \
                        exit(EXIT_FAILURE);                                             \
                }                                                                       \
        } while (0)

#define ASSERT_STREQ(a, b)                                                              \
        do {                                                                            \
                const char *_a_ = (a), *_b_ = (b);                                      \
                if (!streq_ptr(_a_, _b_)) {                                             \
                        fprintf(stderr, "%s:%d: Assertion failed: %s == %s\n"           \
                                "  got:      \"%s\"\n  expected: \"%s\"\n", __FILE__,   \
                                __LINE__, #a, #b, strna(_a_), strna(_b_));              \
                        exit(EXIT_FAILURE);                                             \
                }                                                                       \
        } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                               \
        do {                                                                            \
                const char *_h_ = (haystack), *_n_ = (needle);                          \
                if (!_h_ || !strstr(_h_, _n_)) {                                        \
                        fprintf(stderr, "%s:%d: Assertion failed: \"%s\" in %s\n"       \
                                "  got: \"%s\"\n", __FILE__, __LINE__, _n_, #haystack,  \
                                strna(_h_));                                            \
                        exit(EXIT_FAILURE);                                             \
                }                                                                       \
        } while (0)

/* ---- helpers ---------------------------------------------------------------------------- */

static bool config_equal(const Config *a, const Config *b) {
        return a->event_source == b->event_source && a->take_over == b->take_over &&
               a->receive_buffer_size == b->receive_buffer_size && a->log_level == b->log_level &&
               a->policy == b->policy && a->movable_ratio == b->movable_ratio &&
               a->online_virtio_mem == b->online_virtio_mem && a->online_dax_kmem == b->online_dax_kmem &&
               a->kernel_handoff == b->kernel_handoff &&
               a->block_timeout_usec == b->block_timeout_usec && a->retries == b->retries &&
               a->retry_backoff_usec == b->retry_backoff_usec && a->reserve_bytes == b->reserve_bytes &&
               a->rollback == b->rollback && a->on_crash == b->on_crash && a->eject == b->eject &&
               a->offline_cpus == b->offline_cpus && a->remove_timeout_usec == b->remove_timeout_usec &&
               a->hook_timeout_usec == b->hook_timeout_usec &&
               a->n_nodes == b->n_nodes &&
               (a->n_nodes == 0 || memcmp(a->nodes, b->nodes, a->n_nodes * sizeof(NodeConfig)) == 0);
}

static bool config_is_default(const Config *c) {
        Config d;

        config_init(&d);
        return config_equal(c, &d);
}

/* stderr goes to a temporary file between capture_begin() and capture_end(), so tests can check
 * what was logged (warnings) and that nothing was. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void) {
        fflush(stderr);
        capture_file = tmpfile();
        ASSERT(capture_file);
        saved_stderr = dup(STDERR_FILENO);
        ASSERT(saved_stderr >= 0);
        ASSERT(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

static char *capture_end(void) {
        char *buf;
        long n;

        fflush(stderr);
        ASSERT(dup2(saved_stderr, STDERR_FILENO) >= 0);
        close(saved_stderr);
        ASSERT((n = ftell(capture_file)) >= 0);
        buf = calloc(1, (size_t) n + 1);
        ASSERT(buf);
        rewind(capture_file);
        ASSERT(fread(buf, 1, (size_t) n, capture_file) == (size_t) n);
        fclose(capture_file);
        if (n > 0)      /* show it, for whoever reads the test log */
                fputs(buf, stderr);
        return buf;
}

/* Parses text on top of the defaults; returns what config_parse_string() returned. */
static int parse(const char *text, Config *c, char **ret_error) {
        config_init(c);
        return config_parse_string("test.conf", text, c, ret_error);
}

/* "[section]\nkey=value\n" must fail with "test.conf:2: Invalid value 'value' for key= in
 * [section]: expected …" and leave the config as it was. */
static void assert_invalid(const char *section, const char *key, const char *value) {
        _cleanup_free_ char *text = NULL, *prefix = NULL, *err = NULL;
        Config c;

        ASSERT(asprintf(&text, "[%s]\n%s=%s\n", section, key, value) > 0);
        ASSERT(asprintf(&prefix, "test.conf:2: Invalid value '%s' for %s= in [%s]: expected ", value, key, section) > 0);
        ASSERT(parse(text, &c, &err) == -EINVAL);
        ASSERT(err);
        if (!startswith(err, prefix)) {
                fprintf(stderr, "unexpected error: \"%s\"\n  expected prefix: \"%s\"\n", err, prefix);
                ASSERT(!"wrong error message");
        }
        ASSERT(config_is_default(&c));
        config_done(&c);
}

/* Parses "[section]\nkey=value\n" into c, which the caller inspects and releases. */
static void parse_ok(const char *section, const char *key, const char *value, Config *c) {
        _cleanup_free_ char *text = NULL, *err = NULL;

        ASSERT(asprintf(&text, "[%s]\n%s=%s\n", section, key, value) > 0);
        if (parse(text, c, &err) != 0) {
                fprintf(stderr, "unexpected failure: %s\n", strna(err));
                ASSERT(!"parse failed");
        }
        ASSERT(!err);
}

/* "text" must fail with an error message starting with "test.conf:LINE: " and containing what. */
static void assert_error(const char *text, unsigned line, const char *what) {
        _cleanup_free_ char *err = NULL, *prefix = NULL;
        Config c;

        ASSERT(asprintf(&prefix, "test.conf:%u: ", line) > 0);
        ASSERT(parse(text, &c, &err) == -EINVAL);
        ASSERT(err);
        if (!startswith(err, prefix)) {
                fprintf(stderr, "unexpected error: \"%s\"\n  expected prefix: \"%s\"\n", err, prefix);
                ASSERT(!"wrong error line");
        }
        ASSERT_CONTAINS(err, what);
        ASSERT(config_is_default(&c));
        config_done(&c);
}

static int rm_one(const char *path, _unused_ const struct stat *st, _unused_ int flag, _unused_ struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path) {
        ASSERT(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static char *make_root(void) {
        char *root = strdup("/tmp/test-config.XXXXXX");

        ASSERT(root);
        ASSERT(mkdtemp(root));
        return root;
}

static void mkdir_parents(char *path) {
        for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                ASSERT(mkdir(path, 0755) == 0 || errno == EEXIST);
                *s = '/';
        }
}

static void write_bytes(const char *root, const char *rel, const void *data, size_t n) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;

        ASSERT(asprintf(&path, "%s/%s", root, rel) > 0);
        mkdir_parents(path);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT(fd >= 0);
        ASSERT(write(fd, data, n) == (ssize_t) n);
}

static void write_file(const char *root, const char *rel, const char *text) {
        write_bytes(root, rel, text, strlen(text));
}

static void make_symlink(const char *root, const char *rel, const char *target) {
        _cleanup_free_ char *path = NULL;

        ASSERT(asprintf(&path, "%s/%s", root, rel) > 0);
        mkdir_parents(path);
        ASSERT(symlink(target, path) == 0);
}

static void make_dir(const char *root, const char *rel) {
        _cleanup_free_ char *path = NULL;

        ASSERT(asprintf(&path, "%s/%s/", root, rel) > 0);
        mkdir_parents(path);
}

/* Loads the config of root; asserts success and no error string. */
static void load_ok(const char *root, Config *c) {
        _cleanup_free_ char *err = NULL;
        int r;

        config_init(c);
        r = config_load(root, NULL, c, &err);
        if (r != 0) {
                fprintf(stderr, "config_load() failed: %d %s\n", r, strna(err));
                ASSERT(!"config_load failed");
        }
        ASSERT(!err);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_defaults(void) {
        _cleanup_free_ char *root = make_root(), *logged = NULL;
        Config c;

        config_init(&c);
        ASSERT(c.event_source == EVENT_SOURCE_UDEV);
        ASSERT(!c.take_over);
        ASSERT(c.receive_buffer_size == 128 * 1024 * 1024);
        ASSERT(c.log_level == -1);
        ASSERT(c.policy == POLICY_AUTO);
        ASSERT(c.movable_ratio == 301);
        ASSERT(!c.online_virtio_mem);
        ASSERT(!c.online_dax_kmem);
        ASSERT(!c.nodes && c.n_nodes == 0);
        ASSERT(config_node_policy(&c, 0) == POLICY_AUTO);
        ASSERT(config_node_movable_ratio(&c, 1023) == 301);
        config_done(&c);
        config_done(&c);        /* idempotent */
        config_done(NULL);

        /* An empty root: no main file, no drop-in directories. */
        capture_begin();
        load_ok(root, &c);
        logged = capture_end();
        ASSERT_STREQ(logged, "");
        ASSERT(config_is_default(&c));
        config_done(&c);
        rm_rf(root);
}

static void test_string_tables(void) {
        static const char *const names[] = { "offline", "online", "online_kernel", "online_movable", "auto-movable", "auto" };

        for (OnlinePolicy p = 0; p < _POLICY_MAX; p++) {
                ASSERT_STREQ(online_policy_to_string(p), names[p]);
                ASSERT(online_policy_from_string(names[p]) == p);
        }
        ASSERT_STREQ(online_policy_to_string(POLICY_INHERIT), "inherit");
        ASSERT(online_policy_to_string(_POLICY_MAX) == NULL);
        ASSERT(online_policy_to_string(_POLICY_INVALID) == NULL);
        ASSERT(online_policy_from_string("inherit") == _POLICY_INVALID);
        ASSERT(online_policy_from_string("Auto") == _POLICY_INVALID);
        ASSERT(online_policy_from_string("auto_movable") == _POLICY_INVALID);
        ASSERT(online_policy_from_string("") == _POLICY_INVALID);
        ASSERT(online_policy_from_string(NULL) == _POLICY_INVALID);

        ASSERT_STREQ(event_source_to_string(EVENT_SOURCE_UDEV), "udev");
        ASSERT_STREQ(event_source_to_string(EVENT_SOURCE_KERNEL), "kernel");
        ASSERT(event_source_to_string(_EVENT_SOURCE_MAX) == NULL);
        ASSERT(event_source_to_string(_EVENT_SOURCE_INVALID) == NULL);
        ASSERT(event_source_from_string("udev") == EVENT_SOURCE_UDEV);
        ASSERT(event_source_from_string("kernel") == EVENT_SOURCE_KERNEL);
        ASSERT(event_source_from_string("Kernel") == _EVENT_SOURCE_INVALID);
        ASSERT(event_source_from_string(NULL) == _EVENT_SOURCE_INVALID);
}

static void test_empty_and_comments(void) {
        static const char *const texts[] = {
                "",
                "\n\n\n",
                "# comment\n; comment\n   # indented comment\n\t\n",
                "[Daemon]\n[Online]\n[Node 3]\n",
                "# no newline at the end",
                "\r\n# DOS line ends\r\n[Online]\r\n;\r\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_free_ char *err = NULL, *logged = NULL;
                Config c;

                capture_begin();
                ASSERT(parse(texts[i], &c, &err) == 0);
                logged = capture_end();
                ASSERT(!err);
                ASSERT_STREQ(logged, "");
                ASSERT(config_is_default(&c));
                config_done(&c);
        }
}

static void test_event_source(void) {
        Config c;

        parse_ok("Daemon", "EventSource", "kernel", &c);
        ASSERT(c.event_source == EVENT_SOURCE_KERNEL);
        parse_ok("Daemon", "EventSource", "udev", &c);
        ASSERT(c.event_source == EVENT_SOURCE_UDEV);
        parse_ok("Daemon", "EventSource", "  kernel  ", &c);       /* blanks around values are not part of them */
        ASSERT(c.event_source == EVENT_SOURCE_KERNEL);

        assert_invalid("Daemon", "EventSource", "netlink");
        assert_invalid("Daemon", "EventSource", "UDEV");
        assert_invalid("Daemon", "EventSource", "udev kernel");
}

static void test_take_over(void) {
        static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True" };
        static const char *const no[] = { "no", "false", "off", "0", "No", "OFF" };
        Config c;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                parse_ok("Daemon", "TakeOver", yes[i], &c);
                ASSERT(c.take_over);
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                _cleanup_free_ char *text = NULL;

                ASSERT(asprintf(&text, "[Daemon]\nTakeOver=yes\nTakeOver=%s\n", no[i]) > 0);
                ASSERT(parse(text, &c, NULL) == 0);
                ASSERT(!c.take_over);
        }

        assert_invalid("Daemon", "TakeOver", "maybe");
        assert_invalid("Daemon", "TakeOver", "2");
        assert_invalid("Daemon", "TakeOver", "y");
        assert_invalid("Daemon", "TakeOver", "yes please");
}

static void test_receive_buffer_size(void) {
        static const struct {
                const char *text;
                size_t bytes;
        } good[] = {
                { "65536", 65536 },
                { "64K", 65536 },
                { "1M", 1024 * 1024 },
                { "128M", 128 * 1024 * 1024 },
                { "1G", (size_t) 1 << 30 },
                { "2G", (size_t) 2 << 30 },
                { "2048M", (size_t) 2 << 30 },
                { "2147483648", (size_t) 2 << 30 },
                { "000064K", 65536 },
        };
        static const char *const bad[] = {
                "65535", "63K", "2049M", "3G", "2147483649", "0", "K", "-1", "+64K", "1k", "1m", "64 K",
                "1.5M", "64KB", "64KiB", "1T", "0x10000", "99999999999999999999", "18446744073709551615K",
                "abc",
        };
        Config c;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                parse_ok("Daemon", "ReceiveBufferSize", good[i].text, &c);
                ASSERT(c.receive_buffer_size == good[i].bytes);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_invalid("Daemon", "ReceiveBufferSize", bad[i]);
}

static void test_log_level(void) {
        static const struct {
                const char *text;
                int level;
        } good[] = {
                { "err", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
                { "info", LOG_INFO }, { "debug", LOG_DEBUG },
        };
        _cleanup_free_ char *err = NULL;
        Config c;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                parse_ok("Daemon", "LogLevel", good[i].text, &c);
                ASSERT(c.log_level == good[i].level);
        }
        assert_invalid("Daemon", "LogLevel", "emerg");
        assert_invalid("Daemon", "LogLevel", "DEBUG");
        assert_invalid("Daemon", "LogLevel", "7");
        assert_invalid("Daemon", "LogLevel", "verbose");

        /* An empty value resets to the default, here "unset". */
        ASSERT(parse("[Daemon]\nLogLevel=debug\nLogLevel=\n", &c, &err) == 0);
        ASSERT(c.log_level == -1);
}

static void test_online_policy(void) {
        Config c;

        for (OnlinePolicy p = 0; p < _POLICY_MAX; p++) {
                parse_ok("Online", "Policy", online_policy_to_string(p), &c);
                ASSERT(c.policy == p);
                ASSERT(config_node_policy(&c, 5) == p);
        }
        assert_invalid("Online", "Policy", "inherit");    /* only for [Node N] */
        assert_invalid("Online", "Policy", "Auto");
        assert_invalid("Online", "Policy", "movable");
        assert_invalid("Online", "Policy", "auto_movable");
        assert_invalid("Online", "Policy", "online,online_movable");
}

static void test_movable_ratio(void) {
        static const char *const bad[] = { "0", "10001", "-5", "+5", "abc", "3.5", "301%", "4294967597",
                                           "99999999999999999999999" };
        Config c;

        parse_ok("Online", "MovableRatio", "1", &c);
        ASSERT(c.movable_ratio == 1);
        parse_ok("Online", "MovableRatio", "10000", &c);
        ASSERT(c.movable_ratio == 10000);
        parse_ok("Online", "MovableRatio", "150", &c);
        ASSERT(c.movable_ratio == 150);
        ASSERT(config_node_movable_ratio(&c, 0) == 150);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_invalid("Online", "MovableRatio", bad[i]);
                assert_invalid("Node 2", "MovableRatio", bad[i]);
        }
}

static void test_retire(void) {
        static const struct {
                const char *key, *bad;
        } bad[] = {
                { "BlockTimeoutSec", "50ms" }, { "BlockTimeoutSec", "25h" }, { "BlockTimeoutSec", "-1" },
                { "BlockTimeoutSec", "1 min" }, { "Retries", "101" }, { "Retries", "x" },
                { "RetryBackoffSec", "2min" }, { "Reserve", "12X" }, { "Reserve", "99999999999T" },
                { "Rollback", "maybe" }, { "OnCrash", "explode" }, { "Eject", "2" },
                { "OfflineCPUs", "" "sometimes" }, { "RemoveTimeoutSec", "0" }, { "HookTimeoutSec", "2h" },
        };
        Config c;

        config_init(&c);
        ASSERT(c.block_timeout_usec == 120 * 1000000ull && c.retries == 5 && c.rollback && c.eject &&
               c.on_crash == ON_CRASH_ROLLBACK && !c.offline_cpus && c.reserve_bytes == 512ull << 20);
        parse_ok("Retire", "BlockTimeoutSec", "2min", &c);
        ASSERT(c.block_timeout_usec == 120 * 1000000ull);
        parse_ok("Retire", "BlockTimeoutSec", "250ms", &c);
        ASSERT(c.block_timeout_usec == 250000);
        parse_ok("Retire", "BlockTimeoutSec", "30", &c);
        ASSERT(c.block_timeout_usec == 30 * 1000000ull);
        parse_ok("Retire", "Retries", "0", &c);
        ASSERT(c.retries == 0);
        parse_ok("Retire", "RetryBackoffSec", "0", &c);
        ASSERT(c.retry_backoff_usec == 0);
        parse_ok("Retire", "Reserve", "2G", &c);
        ASSERT(c.reserve_bytes == 2ull << 30);
        parse_ok("Retire", "OnCrash", "resume", &c);
        ASSERT(c.on_crash == ON_CRASH_RESUME);
        parse_ok("Retire", "Rollback", "no", &c);
        ASSERT(!c.rollback);
        parse_ok("Retire", "Eject", "off", &c);
        ASSERT(!c.eject);
        parse_ok("Retire", "OfflineCPUs", "yes", &c);
        ASSERT(c.offline_cpus);
        parse_ok("Retire", "RemoveTimeoutSec", "5s", &c);
        ASSERT(c.remove_timeout_usec == 5000000);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_invalid("Retire", bad[i].key, bad[i].bad);
        ASSERT_STREQ(on_crash_to_string(ON_CRASH_RESUME), "resume");
        ASSERT(on_crash_from_string("bogus") < 0);
}

static void test_virtio_mem_dax_kmem(void) {
        Config c;

        parse_ok("Online", "VirtioMem", "online", &c);
        ASSERT(c.online_virtio_mem && !c.online_dax_kmem);
        parse_ok("Online", "VirtioMem", "ignore", &c);
        ASSERT(!c.online_virtio_mem);
        parse_ok("Online", "DaxKmem", "online", &c);
        ASSERT(c.online_dax_kmem && !c.online_virtio_mem);
        parse_ok("Online", "DaxKmem", "ignore", &c);
        ASSERT(!c.online_dax_kmem);

        assert_invalid("Online", "VirtioMem", "yes");
        assert_invalid("Online", "VirtioMem", "online_movable");
        assert_invalid("Online", "DaxKmem", "no");
        assert_invalid("Online", "DaxKmem", "Online");

        config_init(&c);
        ASSERT(c.kernel_handoff);
        config_done(&c);
        parse_ok("Online", "KernelHandoff", "no", &c);
        ASSERT(!c.kernel_handoff);
        parse_ok("Online", "KernelHandoff", "on", &c);
        ASSERT(c.kernel_handoff);
        assert_invalid("Online", "KernelHandoff", "online");
        parse_ok("Online", "KernelHandoff", "", &c);   /* empty: back to the default */
        ASSERT(c.kernel_handoff);
}

static void test_all_keys_together(void) {
        _cleanup_free_ char *err = NULL, *logged = NULL;
        Config c;

        capture_begin();
        ASSERT(parse("# every key\n"
                     "[Daemon]\n"
                     "EventSource=kernel\n"
                     "TakeOver=yes\n"
                     "ReceiveBufferSize=256M\n"
                     "LogLevel=notice\n"
                     "\n"
                     "[Online]\n"
                     "Policy=auto-movable\n"
                     "MovableRatio=400\n"
                     "VirtioMem=online\n"
                     "DaxKmem=online\n"
                     "[Node 2]\n"
                     "Policy=online_kernel\n"
                     "[Node 1]\n"
                     "MovableRatio=50\n",
                     &c, &err) == 0);
        logged = capture_end();
        ASSERT(!err);
        ASSERT_STREQ(logged, "");
        ASSERT(c.event_source == EVENT_SOURCE_KERNEL);
        ASSERT(c.take_over);
        ASSERT(c.receive_buffer_size == 256 * 1024 * 1024);
        ASSERT(c.log_level == LOG_NOTICE);
        ASSERT(c.policy == POLICY_AUTO_MOVABLE);
        ASSERT(c.movable_ratio == 400);
        ASSERT(c.online_virtio_mem && c.online_dax_kmem);
        ASSERT(c.n_nodes == 2);
        ASSERT(c.nodes[0].node == 1 && c.nodes[0].policy == POLICY_INHERIT && c.nodes[0].movable_ratio == 50);
        ASSERT(c.nodes[1].node == 2 && c.nodes[1].policy == POLICY_ONLINE_KERNEL && c.nodes[1].movable_ratio == 0);
        config_done(&c);
}

static void test_empty_value_resets(void) {
        _cleanup_free_ char *err = NULL;
        Config c;

        ASSERT(parse("[Daemon]\nEventSource=kernel\nTakeOver=yes\nReceiveBufferSize=1G\n"
                     "[Online]\nPolicy=offline\nMovableRatio=5\nVirtioMem=online\nDaxKmem=online\n"
                     "[Node 4]\nPolicy=online\nMovableRatio=7\n"
                     "[Daemon]\nEventSource=\nTakeOver=\nReceiveBufferSize=\n"
                     "[Online]\nPolicy=\nMovableRatio=\nVirtioMem=\nDaxKmem=\n"
                     "[Node 4]\nPolicy=\nMovableRatio=\n",
                     &c, &err) == 0);
        ASSERT(!err);
        ASSERT(config_is_default(&c));  /* node 4 has nothing left and is dropped */
        config_done(&c);
}

static void test_node_sections(void) {
        static const char *const bad[] = {
                "Node x", "Node -1", "Node 1024", "Node 99999999999999999999", "Node", "Node ", "Node  1",
                "Node 01", "Node 00", "Node1", "Node 1 ", "Node 0x1", "Node 1.0", "Node +1", "Node\t1",
                "Node 1 2",
        };
        _cleanup_free_ char *err = NULL, *logged = NULL;
        Config c;

        parse_ok("Node 0", "Policy", "offline", &c);
        ASSERT(c.n_nodes == 1 && c.nodes[0].node == 0);
        ASSERT(config_node_policy(&c, 0) == POLICY_OFFLINE);
        ASSERT(config_node_policy(&c, 1) == POLICY_AUTO);
        config_done(&c);

        parse_ok("Node 1023", "Policy", "online_movable", &c);
        ASSERT(config_node_policy(&c, 1023) == POLICY_ONLINE_MOVABLE);
        config_done(&c);

        for (OnlinePolicy p = 0; p < _POLICY_MAX; p++) {
                parse_ok("Node 7", "Policy", online_policy_to_string(p), &c);
                ASSERT(config_node_policy(&c, 7) == p);
                config_done(&c);
        }
        assert_invalid("Node 7", "Policy", "bogus");
        assert_invalid("Node 7", "Policy", "Inherit");

        /* A bad node section is an error at its header line, even with no key after it. */
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = NULL;

                ASSERT(asprintf(&text, "# x\n[%s]\n", bad[i]) > 0);
                assert_error(text, 2, "Invalid section [");
                free(text);
                ASSERT(asprintf(&text, "# x\n[Online]\nPolicy=online\n[%s]\nPolicy=offline\n", bad[i]) > 0);
                assert_error(text, 4, "expected [Node N] with N from 0 to 1023");
        }

        /* Other sections that merely start with "Node" are unknown sections, not broken nodes. */
        capture_begin();
        ASSERT(parse("[Nodes]\nPolicy=offline\n", &c, &err) == 0);
        logged = capture_end();
        ASSERT_CONTAINS(logged, "test.conf:1: Unknown section [Nodes], ignoring.");
        ASSERT(config_is_default(&c));
        config_done(&c);
}

static void test_node_inheritance(void) {
        _cleanup_free_ char *err = NULL;
        Config c;

        ASSERT(parse("[Online]\nPolicy=online\nMovableRatio=200\n"
                     "[Node 1]\nPolicy=online_movable\n"
                     "[Node 2]\nMovableRatio=900\n"
                     "[Node 3]\nPolicy=auto-movable\nMovableRatio=50\n"
                     "[Node 4]\nPolicy=online_kernel\nPolicy=inherit\n"
                     "[Node 1]\nMovableRatio=10\n",          /* the same node again: merged per key */
                     &c, &err) == 0);
        ASSERT(!err);

        ASSERT(config_node_policy(&c, 0) == POLICY_ONLINE);
        ASSERT(config_node_movable_ratio(&c, 0) == 200);
        ASSERT(config_node_policy(&c, 1) == POLICY_ONLINE_MOVABLE);
        ASSERT(config_node_movable_ratio(&c, 1) == 10);
        ASSERT(config_node_policy(&c, 2) == POLICY_ONLINE);
        ASSERT(config_node_movable_ratio(&c, 2) == 900);
        ASSERT(config_node_policy(&c, 3) == POLICY_AUTO_MOVABLE);
        ASSERT(config_node_movable_ratio(&c, 3) == 50);
        ASSERT(config_node_policy(&c, 4) == POLICY_ONLINE);
        ASSERT(config_node_movable_ratio(&c, 4) == 200);
        ASSERT(config_node_policy(&c, -1) == POLICY_ONLINE);

        /* Sorted, and node 4 (all inherited) is not listed. */
        ASSERT(c.n_nodes == 3);
        ASSERT(c.nodes[0].node == 1 && c.nodes[1].node == 2 && c.nodes[2].node == 3);

        /* The global policy changing later still shows through inherited nodes. */
        ASSERT(config_parse_string("more.conf", "[Online]\nPolicy=offline\n", &c, &err) == 0);
        ASSERT(config_node_policy(&c, 2) == POLICY_OFFLINE);
        ASSERT(config_node_policy(&c, 1) == POLICY_ONLINE_MOVABLE);
        ASSERT(config_parse_string("more.conf", "[Node 1]\nPolicy=inherit\n", &c, &err) == 0);
        ASSERT(config_node_policy(&c, 1) == POLICY_OFFLINE);
        ASSERT(config_node_movable_ratio(&c, 1) == 10);
        config_done(&c);

        /* Many nodes in reverse order end up sorted. */
        config_init(&c);
        for (int n = 1023; n >= 0; n -= 7) {
                _cleanup_free_ char *text = NULL;

                ASSERT(asprintf(&text, "[Node %d]\nMovableRatio=%d\n", n, n + 1) > 0);
                ASSERT(config_parse_string("n.conf", text, &c, NULL) == 0);
        }
        for (size_t i = 1; i < c.n_nodes; i++)
                ASSERT(c.nodes[i - 1].node < c.nodes[i].node);
        for (int n = 1023; n >= 0; n -= 7)
                ASSERT(config_node_movable_ratio(&c, n) == (unsigned) n + 1);
        ASSERT(config_node_movable_ratio(&c, 1022) == 301);
        config_done(&c);
}

static void test_unknown_are_warnings(void) {
        _cleanup_free_ char *err = NULL, *logged = NULL;
        Config c;

        capture_begin();
        ASSERT(parse("[Daemon]\n"
                     "Frobnicate=yes\n"                 /* 2 */
                     "eventsource=kernel\n"             /* 3: keys are case-sensitive */
                     "[Future]\n"                       /* 4 */
                     "Timeout=5min\n"
                     "Policy=offline\n"                 /* not [Online]'s Policy */
                     "[Online]\n"
                     "Policy=online\n"
                     "EventSource=kernel\n"             /* 9: a [Daemon] key in [Online] */
                     "[online]\n"                       /* 10 */
                     "Policy=offline\n"
                     "[Node 3]\n"
                     "VirtioMem=online\n"               /* 13: not a per-node key */
                     "[]\n",                            /* 14 */
                     &c, &err) == 0);
        logged = capture_end();
        ASSERT(!err);
        ASSERT_CONTAINS(logged, "test.conf:2: Unknown key 'Frobnicate' in section [Daemon], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:3: Unknown key 'eventsource' in section [Daemon], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:4: Unknown section [Future], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:9: Unknown key 'EventSource' in section [Online], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:10: Unknown section [online], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:13: Unknown key 'VirtioMem' in section [Node 3], ignoring.\n");
        ASSERT_CONTAINS(logged, "test.conf:14: Unknown section [], ignoring.\n");
        ASSERT(!strstr(logged, "Timeout"));     /* an unknown section is reported once, not per key */
        ASSERT(c.event_source == EVENT_SOURCE_UDEV);
        ASSERT(c.policy == POLICY_ONLINE);
        ASSERT(c.n_nodes == 0);
        config_done(&c);

        /* Assignments before any section. */
        free(logged);
        capture_begin();
        ASSERT(parse("Policy=offline\n[Online]\n", &c, &err) == 0);
        logged = capture_end();
        ASSERT_CONTAINS(logged, "test.conf:1: Assignment to 'Policy' outside of any section, ignoring.\n");
        ASSERT(c.policy == POLICY_AUTO);
        config_done(&c);
}

static void test_error_message(void) {
        _cleanup_free_ char *err = NULL;
        Config c;

        ASSERT(parse("# comment\n\n[Online]\nMovableRatio=100\nPolicy = bogus \n", &c, &err) == -EINVAL);
        ASSERT_STREQ(err, "test.conf:5: Invalid value 'bogus' for Policy= in [Online]: expected offline, "
                          "online, online_kernel, online_movable, auto-movable or auto.");
        free(err);
        err = NULL;

        ASSERT(parse("[Node 12]\nPolicy=sideways\n", &c, &err) == -EINVAL);
        ASSERT_STREQ(err, "test.conf:2: Invalid value 'sideways' for Policy= in [Node 12]: expected inherit, "
                          "offline, online, online_kernel, online_movable, auto-movable or auto.");
        free(err);
        err = NULL;

        ASSERT(parse("[Online]\nMovableRatio=0\n", &c, &err) == -EINVAL);
        ASSERT_STREQ(err, "test.conf:2: Invalid value '0' for MovableRatio= in [Online]: expected a percentage "
                          "from 1 to 10000.");
        free(err);
        err = NULL;

        /* The first error wins, and nothing after it is parsed (no warnings from later lines). */
        _cleanup_free_ char *logged = NULL;
        capture_begin();
        ASSERT(parse("[Online]\nPolicy=bad1\nPolicy=bad2\nUnknown=1\n", &c, &err) == -EINVAL);
        logged = capture_end();
        ASSERT_CONTAINS(err, "test.conf:2: Invalid value 'bad1'");
        ASSERT_STREQ(logged, "");
        free(err);
        err = NULL;

        /* ret_error may be NULL. */
        ASSERT(parse("[Online]\nPolicy=bad\n", &c, NULL) == -EINVAL);
        ASSERT(config_is_default(&c));
}

static void test_malformed_lines(void) {
        assert_error("[Online]\nPolicy online\n", 2, "Invalid line 'Policy online': expected '[Section]' or 'Key=Value'.");
        assert_error("[Online]\nPolicy: online\n", 2, "Invalid line 'Policy: online'");
        assert_error("[Online]\nFoo:Policy=online\n", 2, "Invalid line");
        assert_error("[Online]\n=online\n", 2, "Invalid line '=online'");
        assert_error("[Online]\n  =online\n", 2, "Invalid line");
        assert_error("\n[Online\nPolicy=online\n", 2, "Invalid section header '[Online'");
        assert_error("[Online]]\n", 1, "Invalid section header");
        assert_error("[Online] # comment\n", 1, "Invalid section header");
        assert_error("[Online]x\nPolicy=online\n", 1, "Invalid section header '[Online]x'");
        assert_error("[Online]\nPolicy=online\n   online_movable\n", 3, "Invalid line 'online_movable'");
        /* A ';' after a blank starts an inline comment, so this '=' is part of the comment. */
        assert_error("[Online]\nPolicy ;=online\n", 2, "Invalid line 'Policy'");
        assert_error("[Online ; x]\n", 1, "Invalid section header '[Online'");
}

static void test_inline_comments(void) {
        _cleanup_free_ char *err = NULL, *logged = NULL;
        Config c;

        capture_begin();
        ASSERT(parse("[Online] ; the global policy\n"
                     "Policy=online_movable ; keep DIMMs removable\n"
                     "MovableRatio=50\t;\ttab\n"
                     "[Node 1]   ;\n"
                     "Policy=offline;\n",        /* no blank before ';': part of the value */
                     &c, &err) == -EINVAL);
        logged = capture_end();
        ASSERT_STREQ(logged, "");
        ASSERT_STREQ(err, "test.conf:5: Invalid value 'offline;' for Policy= in [Node 1]: expected inherit, "
                          "offline, online, online_kernel, online_movable, auto-movable or auto.");
        free(err);
        err = NULL;

        ASSERT(parse("[Online] ; the global policy\n"
                     "Policy=online_movable ; keep DIMMs removable\n"
                     "MovableRatio=50\t;\ttab\n"
                     "[Node 1]   ;\n"
                     "Policy=offline ;\n",
                     &c, &err) == 0);
        ASSERT(c.policy == POLICY_ONLINE_MOVABLE);
        ASSERT(c.movable_ratio == 50);
        ASSERT(config_node_policy(&c, 1) == POLICY_OFFLINE);
        config_done(&c);

        /* '#' only starts a comment at the beginning of a line. */
        assert_invalid("Online", "Policy", "online # comment");
}

static void test_long_lines(void) {
        char line[4096];
        _cleanup_free_ char *text = NULL, *err = NULL;
        Config c;

        /* A long comment is fine, a long assignment is an error naming its line. */
        memset(line, 'x', sizeof(line) - 1);
        line[sizeof(line) - 1] = '\0';
        ASSERT(asprintf(&text, "# %s\n[Online]\nPolicy=online\n", line) > 0);
        ASSERT(parse(text, &c, &err) == 0);
        ASSERT(c.policy == POLICY_ONLINE);
        free(text);

        ASSERT(asprintf(&text, "[Online]\n\nPolicy=online%s\n", line) > 0);
        assert_error(text, 3, "Line too long");
        free(text);

        ASSERT(asprintf(&text, "[Online]\nX%s=1\n", line) > 0);
        assert_error(text, 2, "Line too long");
        free(text);

        ASSERT(asprintf(&text, "[%s]\n", line) > 0);
        assert_error(text, 1, "Line too long");

        /* Just below the limit (inih's 200-byte buffer): an unknown key, only a warning. */
        _cleanup_free_ char *logged = NULL;
        free(text);
        ASSERT(asprintf(&text, "[Online]\n%.*s=1\n", 190, line) > 0);
        capture_begin();
        ASSERT(parse(text, &c, &err) == 0);
        logged = capture_end();
        ASSERT_CONTAINS(logged, "test.conf:2: Unknown key 'xxx");
}

static void test_odd_bytes(void) {
        _cleanup_free_ char *err = NULL, *logged = NULL;
        Config c;

        /* Non-UTF-8 and control bytes are quoted in messages, never copied raw. */
        ASSERT(parse("[Online]\nPolicy=\xff\xfe\x01'\\\n", &c, &err) == -EINVAL);
        ASSERT_STREQ(err, "test.conf:2: Invalid value '\\xff\\xfe\\x01\\x27\\x5c' for Policy= in [Online]: "
                          "expected offline, online, online_kernel, online_movable, auto-movable or auto.");
        free(err);
        err = NULL;

        capture_begin();
        ASSERT(parse("[Online]\n\xc3\x28\x1b[31m=1\n[\xe2\x82]\nA=1\n", &c, &err) == 0);
        logged = capture_end();
        ASSERT_CONTAINS(logged, "test.conf:2: Unknown key '\\xc3(\\x1b[31m' in section [Online], ignoring.");
        ASSERT_CONTAINS(logged, "test.conf:3: Unknown section [\\xe2\\x82], ignoring.");
        ASSERT(!strchr(logged, '\x1b'));

        /* A UTF-8 byte order mark at the start is skipped; elsewhere it is just bytes. */
        ASSERT(parse("\xef\xbb\xbf[Online]\nPolicy=offline\n", &c, &err) == 0);
        ASSERT(c.policy == POLICY_OFFLINE);
        assert_error("[Online]\n\xef\xbb\xbf[Daemon]\n", 2, "Invalid line");
}

static void test_fuzz_smoke(void) {
        static const char alphabet[] = "[]=:;# \t\n\r\\x0Node123456789PolicyMovableRatio\xff\xc3";
        uint32_t seed = 12345;
        char buf[512];

        /* Not a fuzzer, just a guard that random input only ever yields 0 or -EINVAL. */
        log_set_max_level(LOG_ERR);
        for (int i = 0; i < 20000; i++) {
                _cleanup_free_ char *err = NULL;
                size_t n;
                Config c;
                int r;

                seed = seed * 1103515245 + 12345;
                n = (seed >> 16) % (sizeof(buf) - 1);
                for (size_t j = 0; j < n; j++) {
                        seed = seed * 1103515245 + 12345;
                        buf[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
                }
                buf[n] = '\0';
                r = parse(buf, &c, &err);
                ASSERT(r == 0 || r == -EINVAL);
                ASSERT((r == 0) == !err);
                if (r < 0)
                        ASSERT(startswith(err, "test.conf:"));
                config_done(&c);
        }
        log_set_max_level(LOG_INFO);
}

static void test_failed_load_leaves_config(void) {
        _cleanup_free_ char *root = make_root(), *err = NULL;
        Config c, before;

        /* Strings: a good base, then a failing update. */
        ASSERT(parse("[Daemon]\nTakeOver=yes\n[Node 5]\nPolicy=offline\n[Node 9]\nMovableRatio=3\n", &c, NULL) == 0);
        ASSERT(c.n_nodes == 2);
        before = c;
        before.nodes = malloc(c.n_nodes * sizeof(NodeConfig));
        ASSERT(before.nodes);
        memcpy(before.nodes, c.nodes, c.n_nodes * sizeof(NodeConfig));

        ASSERT(config_parse_string("bad.conf",
                                   "[Daemon]\nTakeOver=no\n[Node 5]\nPolicy=online\n[Node 6]\nPolicy=online\n"
                                   "[Online]\nPolicy=auto\nMovableRatio=0\n",
                                   &c, &err) == -EINVAL);
        ASSERT_CONTAINS(err, "bad.conf:9: ");
        ASSERT(config_equal(&c, &before));
        free(err);
        err = NULL;

        /* Files: the main file is fine, a later drop-in is not; nothing of either is applied. */
        write_file(root, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=offline\n[Node 5]\nPolicy=online\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/10-a.conf", "[Daemon]\nEventSource=kernel\n");
        write_file(root, "run/hotplugd/hotplugd.conf.d/20-b.conf", "# b\n[Daemon]\nReceiveBufferSize=1T\n");
        ASSERT(config_load(root, NULL, &c, &err) == -EINVAL);
        ASSERT(err);
        ASSERT(startswith(err, root));
        ASSERT_CONTAINS(err, "/run/hotplugd/hotplugd.conf.d/20-b.conf:3: Invalid value '1T' for ReceiveBufferSize= "
                             "in [Daemon]: expected a size in bytes");
        ASSERT(config_equal(&c, &before));
        free(err);
        err = NULL;

        /* An error in the main file, too. */
        write_file(root, "run/hotplugd/hotplugd.conf.d/20-b.conf", "");
        write_file(root, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=offline\nbroken\n");
        ASSERT(config_load(root, NULL, &c, &err) == -EINVAL);
        ASSERT_CONTAINS(err, "/etc/hotplugd/hotplugd.conf:3: Invalid line 'broken'");
        ASSERT(config_equal(&c, &before));
        free(err);
        err = NULL;

        /* And then a good load replaces everything, nodes included. */
        write_file(root, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=offline\n");
        ASSERT(config_load(root, NULL, &c, &err) == 0);
        ASSERT(!err);
        ASSERT(c.policy == POLICY_OFFLINE && c.event_source == EVENT_SOURCE_KERNEL && !c.take_over);
        ASSERT(c.n_nodes == 0);

        config_done(&c);
        config_done(&before);
        rm_rf(root);
}

static void test_drop_in_order(void) {
        _cleanup_free_ char *root = make_root();
        Config c;

        /* Applied by file name across all three directories: 10 (usr/lib), 20 (etc), 30 (run),
         * 40 (usr/lib); each sets Policy and later ones win. */
        write_file(root, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=offline\nMovableRatio=11\n[Node 1]\nPolicy=online\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/10-vendor.conf", "[Online]\nPolicy=online\nVirtioMem=online\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/20-admin.conf", "[Online]\nPolicy=online_kernel\n[Node 1]\nMovableRatio=22\n");
        write_file(root, "run/hotplugd/hotplugd.conf.d/30-runtime.conf", "[Online]\nPolicy=online_movable\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/40-late.conf", "[Online]\nPolicy=auto-movable\n[Node 1]\nPolicy=inherit\n");
        load_ok(root, &c);
        ASSERT(c.policy == POLICY_AUTO_MOVABLE);
        ASSERT(c.movable_ratio == 11);          /* from the main file, never overridden */
        ASSERT(c.online_virtio_mem);
        ASSERT(config_node_policy(&c, 1) == POLICY_AUTO_MOVABLE);
        ASSERT(config_node_movable_ratio(&c, 1) == 22);
        config_done(&c);

        /* Lexical is byte order: "9" sorts after "10", upper case before lower case. */
        rm_rf(root);
        ASSERT(mkdir(root, 0700) == 0);
        write_file(root, "etc/hotplugd/hotplugd.conf.d/9.conf", "[Online]\nMovableRatio=9\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/10.conf", "[Online]\nMovableRatio=10\n");
        write_file(root, "run/hotplugd/hotplugd.conf.d/B.conf", "[Online]\nPolicy=online\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/a.conf", "[Online]\nPolicy=offline\n");
        load_ok(root, &c);
        ASSERT(c.movable_ratio == 9);
        ASSERT(c.policy == POLICY_OFFLINE);
        config_done(&c);

        /* Drop-ins apply after the main file even when it sorts later and no main file is needed. */
        rm_rf(root);
        ASSERT(mkdir(root, 0700) == 0);
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/zz.conf", "[Daemon]\nLogLevel=debug\n");
        load_ok(root, &c);
        ASSERT(c.log_level == LOG_DEBUG);
        config_done(&c);

        rm_rf(root);
}

static void test_drop_in_masking(void) {
        _cleanup_free_ char *root = make_root(), *err = NULL, *logged = NULL;
        Config c;

        /* etc masks run and usr/lib; run masks usr/lib. */
        write_file(root, "etc/hotplugd/hotplugd.conf.d/50-a.conf", "[Online]\nPolicy=online\n");
        write_file(root, "run/hotplugd/hotplugd.conf.d/50-a.conf", "[Online]\nPolicy=offline\nDaxKmem=online\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/50-a.conf", "[Online]\nPolicy=bogus\n");
        write_file(root, "run/hotplugd/hotplugd.conf.d/60-b.conf", "[Online]\nMovableRatio=60\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/60-b.conf", "[Online]\nMovableRatio=0\n");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/70-c.conf", "[Daemon]\nTakeOver=yes\n");
        load_ok(root, &c);
        ASSERT(c.policy == POLICY_ONLINE);
        ASSERT(!c.online_dax_kmem);
        ASSERT(c.movable_ratio == 60);
        ASSERT(c.take_over);
        config_done(&c);

        /* A symlink to /dev/null masks, and so does an empty file. */
        make_symlink(root, "etc/hotplugd/hotplugd.conf.d/70-c.conf", "/dev/null");
        write_file(root, "run/hotplugd/hotplugd.conf.d/60-b.conf", "");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/60-b.conf", "[Online]\nMovableRatio=61\n");
        load_ok(root, &c);
        ASSERT(!c.take_over);
        ASSERT(c.movable_ratio == 301);
        config_done(&c);

        /* Not drop-ins: other suffixes, hidden files, directories, dangling links. None of them
         * masks anything either. */
        write_file(root, "etc/hotplugd/hotplugd.conf.d/80-x.conf.bak", "[Online]\nPolicy=bogus\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/80-x.conf~", "[Online]\nPolicy=bogus\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/80-x", "[Online]\nPolicy=bogus\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/.80-x.conf", "[Online]\nPolicy=bogus\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/.conf", "[Online]\nPolicy=bogus\n");
        make_dir(root, "etc/hotplugd/hotplugd.conf.d/90-dir.conf");
        write_file(root, "usr/lib/hotplugd/hotplugd.conf.d/90-dir.conf", "[Online]\nVirtioMem=online\n");
        make_symlink(root, "etc/hotplugd/hotplugd.conf.d/95-dangling.conf", "/nonexistent/hotplugd-test");
        write_file(root, "run/hotplugd/hotplugd.conf.d/95-dangling.conf", "[Online]\nDaxKmem=online\n");
        capture_begin();
        load_ok(root, &c);
        logged = capture_end();
        ASSERT_STREQ(logged, "");
        ASSERT(c.policy == POLICY_ONLINE);
        ASSERT(c.online_virtio_mem);
        ASSERT(c.online_dax_kmem);
        config_done(&c);

        /* A drop-in directory that is not a directory is an error. */
        rm_rf(root);
        ASSERT(mkdir(root, 0700) == 0);
        write_file(root, "run/hotplugd/hotplugd.conf.d", "not a directory");
        config_init(&c);
        ASSERT(config_load(root, NULL, &c, &err) == -ENOTDIR);
        ASSERT_CONTAINS(err, "/run/hotplugd/hotplugd.conf.d: Failed to open drop-in directory");
        ASSERT(config_is_default(&c));
        config_done(&c);
        rm_rf(root);
}

static void test_main_file(void) {
        _cleanup_free_ char *root = make_root(), *other = NULL, *err = NULL, *root_slash = NULL;
        Config c;

        /* The main file, then drop-ins that override it. */
        write_file(root, "etc/hotplugd/hotplugd.conf", "[Daemon]\nEventSource=kernel\nTakeOver=yes\n");
        write_file(root, "etc/hotplugd/hotplugd.conf.d/override.conf", "[Daemon]\nTakeOver=no\n");
        load_ok(root, &c);
        ASSERT(c.event_source == EVENT_SOURCE_KERNEL);
        ASSERT(!c.take_over);
        config_done(&c);

        /* A root with trailing slashes is the same root. */
        ASSERT(asprintf(&root_slash, "%s//", root) > 0);
        load_ok(root_slash, &c);
        ASSERT(c.event_source == EVENT_SOURCE_KERNEL);
        config_done(&c);

        /* main_path is used as given (not below root); the drop-ins still come from root. */
        ASSERT(asprintf(&other, "%s/elsewhere.conf", root) > 0);
        write_file(root, "elsewhere.conf", "[Online]\nPolicy=offline\n");
        config_init(&c);
        ASSERT(config_load(root, other, &c, &err) == 0);
        ASSERT(c.policy == POLICY_OFFLINE);
        ASSERT(c.event_source == EVENT_SOURCE_UDEV);    /* etc/hotplugd/hotplugd.conf not read */
        ASSERT(!c.take_over);
        config_done(&c);

        /* A missing main_path means defaults, like a missing main file. */
        free(other);
        ASSERT(asprintf(&other, "%s/missing.conf", root) > 0);
        config_init(&c);
        ASSERT(config_load(root, other, &c, &err) == 0);
        ASSERT(!err);
        config_done(&c);

        /* A main file that cannot be read (here: a directory) is an error, not defaults. */
        rm_rf(root);
        ASSERT(mkdir(root, 0700) == 0);
        make_dir(root, "etc/hotplugd/hotplugd.conf");
        config_init(&c);
        ASSERT(config_load(root, NULL, &c, &err) == -EISDIR);
        ASSERT_CONTAINS(err, "/etc/hotplugd/hotplugd.conf: Failed to read configuration file");
        ASSERT(config_is_default(&c));
        config_done(&c);
        free(err);
        err = NULL;

        /* A NUL byte in a file is an error naming its line. */
        rm_rf(root);
        ASSERT(mkdir(root, 0700) == 0);
        write_bytes(root, "etc/hotplugd/hotplugd.conf", "[Online]\n\nPolicy=on\0line\n", 25);
        config_init(&c);
        ASSERT(config_load(root, NULL, &c, &err) == -EINVAL);
        ASSERT_CONTAINS(err, "/etc/hotplugd/hotplugd.conf:3: Line contains a NUL byte.");
        config_done(&c);

        rm_rf(root);
}

/* The shipped config: argv[1] from meson, else found from the source directory. */
static const char *shipped_config;

static void test_shipped_config(void) {
        _cleanup_free_ char *path = NULL, *err = NULL, *logged = NULL;
        const char *srcdir = getenv("HOTPLUGD_SOURCE_DIR");
        Config c;

        /* Everything in the shipped file is commented out: loading it must give the defaults and
         * uncommenting every "#Key=" line must give them too (the documented defaults are true). */
        if (shipped_config)
                path = strdup(shipped_config);
        else
                ASSERT(asprintf(&path, "%s/conf/hotplugd.conf", srcdir ?: ".") > 0);
        ASSERT(path);
        config_init(&c);
        capture_begin();
        ASSERT(config_load("/nonexistent-root", path, &c, &err) == 0);
        logged = capture_end();
        ASSERT_STREQ(logged, "");
        ASSERT(config_is_default(&c));

        FILE *f = fopen(path, "re");
        ASSERT(f);
        char *text = NULL, *line = NULL;
        size_t text_size = 0, line_size = 0;
        FILE *out = open_memstream(&text, &text_size);
        unsigned n_keys = 0;
        ASSERT(out);
        while (getline(&line, &line_size, f) > 0) {
                /* "#Key=value" is a commented-out setting, "# text" is prose, "#[Section]" a header */
                if (line[0] == '#' && (line[1] == '[' || (line[1] >= 'A' && line[1] <= 'Z' && strchr(line, '=')))) {
                        fputs(line + 1, out);
                        if (line[1] != '[')
                                n_keys++;
                } else
                        fputs(line, out);
        }
        fclose(out);
        fclose(f);
        free(line);
        ASSERT(n_keys == 19);   /* every key of [Daemon], [Online] and [Retire] */
        capture_begin();
        ASSERT(config_parse_string(path, text, &c, &err) == 0);
        free(logged);
        logged = capture_end();
        ASSERT_STREQ(logged, "");
        ASSERT(config_is_default(&c));
        config_done(&c);
        free(text);
}

int main(int argc, char *argv[]) {
        static const struct {
                const char *name;
                void (*func)(void);
        } tests[] = {
                { "defaults", test_defaults },
                { "string tables", test_string_tables },
                { "empty files and comments", test_empty_and_comments },
                { "[Daemon] EventSource=", test_event_source },
                { "[Daemon] TakeOver=", test_take_over },
                { "[Daemon] ReceiveBufferSize=", test_receive_buffer_size },
                { "[Daemon] LogLevel=", test_log_level },
                { "[Online] Policy=", test_online_policy },
                { "MovableRatio= range", test_movable_ratio },
                { "[Online] VirtioMem= DaxKmem= KernelHandoff=", test_virtio_mem_dax_kmem },
                { "all keys together", test_all_keys_together },
                { "empty value resets", test_empty_value_resets },
                { "[Node N] sections", test_node_sections },
                { "per-node inheritance", test_node_inheritance },
                { "unknown sections and keys warn", test_unknown_are_warnings },
                { "error message format", test_error_message },
                { "malformed lines", test_malformed_lines },
                { "inline comments", test_inline_comments },
                { "long lines", test_long_lines },
                { "non-UTF-8 and control bytes", test_odd_bytes },
                { "random input smoke test", test_fuzz_smoke },
                { "failed load leaves config untouched", test_failed_load_leaves_config },
                { "drop-in order", test_drop_in_order },
                { "drop-in masking", test_drop_in_masking },
                { "main file", test_main_file },
                { "shipped hotplugd.conf", test_shipped_config },
                { "[Retire] keys", test_retire },
        };

        if (argc > 1)
                shipped_config = argv[1];
        log_setup(LOG_TARGET_STDERR);
        log_set_max_level(LOG_INFO);

        printf("1..%zu\n", ELEMENTSOF(tests));
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                tests[i].func();
                printf("ok %zu - %s\n", i + 1, tests[i].name);
                fflush(stdout);
        }
        return EXIT_SUCCESS;
}
