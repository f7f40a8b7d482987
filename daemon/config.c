/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.c — hotplugd.conf and its drop-ins: inih splits the lines, this file validates them. */
#include <dirent.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "config.h"
#include "log.h"

#define CONFIG_FILE_MAX (1024 * 1024)   /* a config file larger than this is a mistake, not a config */
#define USEC_PER_SEC UINT64_C(1000000)
#define NODE_MAX 1023                   /* MAX_NUMNODES is at most 1 << 10 (CONFIG_NODES_SHIFT <= 10) */
#define MOVABLE_RATIO_MIN 1U
#define MOVABLE_RATIO_MAX 10000U
#define MOVABLE_RATIO_DEFAULT 301U      /* the kernel's memory_hotplug.auto_movable_ratio default */
#define RECEIVE_BUFFER_MIN ((size_t) 64 * 1024)
#define RECEIVE_BUFFER_MAX ((size_t) 2 * 1024 * 1024 * 1024)
#define RECEIVE_BUFFER_DEFAULT ((size_t) 128 * 1024 * 1024)

static const char *const online_policy_table[_POLICY_MAX] = {
        [POLICY_OFFLINE] = "offline",
        [POLICY_ONLINE] = "online",
        [POLICY_ONLINE_KERNEL] = "online_kernel",
        [POLICY_ONLINE_MOVABLE] = "online_movable",
        [POLICY_AUTO_MOVABLE] = "auto-movable",
        [POLICY_AUTO] = "auto",
};

/* "inherit" is not a policy but the absence of a per-node one: from_string() does not accept it
 * (only [Node N] sections do, see parse_node_policy()), to_string() names it so that a NodeConfig
 * can be printed. */
const char *online_policy_to_string(OnlinePolicy p) {
        if (p == POLICY_INHERIT)
                return "inherit";
        if (p < 0 || p >= _POLICY_MAX)
                return NULL;
        return online_policy_table[p];
}

OnlinePolicy online_policy_from_string(const char *s) {
        if (!s)
                return _POLICY_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(online_policy_table); i++)
                if (streq(s, online_policy_table[i]))
                        return (OnlinePolicy) i;
        return _POLICY_INVALID;
}

static const char *const event_source_table[_EVENT_SOURCE_MAX] = {
        [EVENT_SOURCE_UDEV] = "udev",
        [EVENT_SOURCE_KERNEL] = "kernel",
};

DEFINE_STRING_TABLE_LOOKUP(event_source, EventSource, event_source_table, _EVENT_SOURCE_MAX, _EVENT_SOURCE_INVALID);

void config_init(Config *c) {
        *c = (Config) {
                .event_source = EVENT_SOURCE_UDEV,
                .take_over = false,
                .receive_buffer_size = RECEIVE_BUFFER_DEFAULT,
                .log_level = -1,
                .policy = POLICY_AUTO,
                .movable_ratio = MOVABLE_RATIO_DEFAULT,
                .online_virtio_mem = false,
                .online_dax_kmem = false,
                .kernel_handoff = true,
                .block_timeout_usec = 120 * USEC_PER_SEC,
                .retries = 5,
                .retry_backoff_usec = 1 * USEC_PER_SEC,
                .reserve_bytes = UINT64_C(512) << 20,
                .rollback = true,
                .on_crash = ON_CRASH_ROLLBACK,
                .eject = true,
                .offline_cpus = false,
                .remove_timeout_usec = 60 * USEC_PER_SEC,
                .hook_timeout_usec = 60 * USEC_PER_SEC,
        };
}

void config_done(Config *c) {
        if (!c)
                return;
        free(c->nodes);
        c->nodes = NULL;
        c->n_nodes = 0;
}

static int config_copy(const Config *c, Config *ret) {
        Config copy = *c;

        copy.nodes = NULL;
        if (c->n_nodes > 0) {
                copy.nodes = malloc(c->n_nodes * sizeof(NodeConfig));
                if (!copy.nodes)
                        return -ENOMEM;
                memcpy(copy.nodes, c->nodes, c->n_nodes * sizeof(NodeConfig));
        }
        *ret = copy;
        return 0;
}

static int node_config_compare(const void *a, const void *b) {
        const NodeConfig *x = a, *y = b;

        return (x->node > y->node) - (x->node < y->node);
}

static NodeConfig *config_find_node(const Config *c, int node) {
        NodeConfig key = { .node = node };

        if (!c || c->n_nodes == 0)
                return NULL;
        return bsearch(&key, c->nodes, c->n_nodes, sizeof(NodeConfig), node_config_compare);
}

/* Returns the entry of the node, inserted in sorted position with everything inherited if new. */
static NodeConfig *config_get_node(Config *c, int node) {
        NodeConfig *n, *nodes;
        size_t i;

        n = config_find_node(c, node);
        if (n)
                return n;

        nodes = realloc(c->nodes, (c->n_nodes + 1) * sizeof(NodeConfig));
        if (!nodes)
                return NULL;
        c->nodes = nodes;

        for (i = 0; i < c->n_nodes && c->nodes[i].node < node; i++)
                ;
        memmove(c->nodes + i + 1, c->nodes + i, (c->n_nodes - i) * sizeof(NodeConfig));
        c->nodes[i] = (NodeConfig) { .node = node, .policy = POLICY_INHERIT, .movable_ratio = 0 };
        c->n_nodes++;
        return c->nodes + i;
}

/* "Policy=inherit" alone leaves an entry that says nothing; drop those so n_nodes counts only
 * nodes that really differ from the global settings. */
static void config_prune_nodes(Config *c) {
        size_t j = 0;

        for (size_t i = 0; i < c->n_nodes; i++)
                if (c->nodes[i].policy != POLICY_INHERIT || c->nodes[i].movable_ratio > 0)
                        c->nodes[j++] = c->nodes[i];
        c->n_nodes = j;
        if (j == 0) {
                free(c->nodes);
                c->nodes = NULL;
        }
}

OnlinePolicy config_node_policy(const Config *c, int node) {
        const NodeConfig *n = config_find_node(c, node);

        return n && n->policy != POLICY_INHERIT ? n->policy : c->policy;
}

unsigned config_node_movable_ratio(const Config *c, int node) {
        const NodeConfig *n = config_find_node(c, node);

        return n && n->movable_ratio > 0 ? n->movable_ratio : c->movable_ratio;
}

typedef enum SectionKind {
        SECTION_NONE,           /* before the first section header */
        SECTION_DAEMON,
        SECTION_RETIRE,
        SECTION_ONLINE,
        SECTION_NODE,
        SECTION_UNKNOWN,        /* warned about once at its header, its keys are ignored */
} SectionKind;

/* State of one file (or string) being parsed into a Config. */
typedef struct Parser {
        Config *config;
        const char *name;       /* for messages: the path, or the name given with a string */
        const char *pos, *end;  /* the part of the text not yet handed to inih */
        unsigned line;          /* the line last handed to inih */
        SectionKind section;
        int node;               /* SECTION_NODE: its number */
        char *section_name;     /* as written (escaped), for messages */
        unsigned error_line;
        char *error;            /* "name:line: …", set with r */
        int r;
} Parser;

/* Quotes untrusted bytes for a log message or an error string: anything but printable ASCII
 * becomes \xNN, so a binary or non-UTF-8 file cannot put control characters or invalid UTF-8
 * into the journal or onto a D-Bus error (which must be valid UTF-8). */
static char *escape_bytes(const char *s, size_t n) {
        char *buf, *t;

        buf = t = malloc(n * 4 + 1);
        if (!buf)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) s[i];

                if (ch < 0x20 || ch >= 0x7f || ch == '\\' || ch == '\'')
                        t += sprintf(t, "\\x%02x", ch);
                else
                        *t++ = (char) ch;
        }
        *t = '\0';
        return buf;
}

static char *escape(const char *s) {
        return escape_bytes(s, strlen(s));
}

_printf_(2, 3)
static void parser_fail(Parser *p, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int k;

        if (p->r < 0)   /* keep the first error: it is the one the user has to fix first */
                return;

        va_start(ap, format);
        k = vasprintf(&msg, format, ap);
        va_end(ap);
        if (k < 0) {
                msg = NULL;
                p->r = -ENOMEM;
                return;
        }
        if (asprintf(&p->error, "%s:%u: %s", p->name, p->line, msg) < 0) {
                p->error = NULL;
                p->r = -ENOMEM;
                return;
        }
        p->error_line = p->line;
        p->r = -EINVAL;
}

static void parser_fail_value(Parser *p, const char *key, const char *value, const char *expected) {
        _cleanup_free_ char *v = escape(value), *k = escape(key);

        if (!v || !k) {
                p->r = -ENOMEM;
                return;
        }
        parser_fail(p, "Invalid value '%s' for %s= in [%s]: expected %s.", v, k, p->section_name, expected);
}

/* Decimal digits only: strtoul() would also take blanks, a sign (and wrap "-1") and "0x". */
static int parse_decimal(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t) (*s - '0'), &v))
                        return -ERANGE;
        }
        *ret = v;
        return 0;
}

typedef int (*ParseFunc)(const char *value, void *data);

static int parse_event_source(const char *value, void *data) {
        EventSource s = event_source_from_string(value);

        if (s < 0)
                return s;
        *(EventSource *) data = s;
        return 0;
}

/* The spellings of systemd's parse_boolean(), case-insensitive like there. */
static int parse_boolean(const char *value, void *data) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(value, yes[i]) == 0) {
                        *(bool *) data = true;
                        return 0;
                }
                if (strcasecmp(value, no[i]) == 0) {
                        *(bool *) data = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_receive_buffer_size(const char *value, void *data) {
        _cleanup_free_ char *digits = strdup(value);
        uint64_t v, factor = 1;
        size_t n;
        int r;

        if (!digits)
                return -ENOMEM;
        n = strlen(digits);
        if (n > 0) {
                switch (digits[n - 1]) {
                case 'K': factor = UINT64_C(1) << 10; break;
                case 'M': factor = UINT64_C(1) << 20; break;
                case 'G': factor = UINT64_C(1) << 30; break;
                }
                if (factor > 1)
                        digits[n - 1] = '\0';
        }
        r = parse_decimal(digits, &v);
        if (r < 0)
                return r;
        if (__builtin_mul_overflow(v, factor, &v))
                return -ERANGE;
        if (v < RECEIVE_BUFFER_MIN || v > RECEIVE_BUFFER_MAX)
                return -ERANGE;
        *(size_t *) data = (size_t) v;
        return 0;
}

static int parse_log_level(const char *value, void *data) {
        static const struct {
                const char *name;
                int level;
        } table[] = {
                { "err", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
                { "info", LOG_INFO }, { "debug", LOG_DEBUG },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(value, table[i].name)) {
                        *(int *) data = table[i].level;
                        return 0;
                }
        return -EINVAL;
}

static int parse_policy(const char *value, void *data) {
        OnlinePolicy p = online_policy_from_string(value);

        if (p < 0)
                return p;
        *(OnlinePolicy *) data = p;
        return 0;
}

static int parse_node_policy(const char *value, void *data) {
        if (streq(value, "inherit")) {
                *(OnlinePolicy *) data = POLICY_INHERIT;
                return 0;
        }
        return parse_policy(value, data);
}

static int parse_movable_ratio(const char *value, void *data) {
        uint64_t v;
        int r;

        r = parse_decimal(value, &v);
        if (r < 0)
                return r;
        if (v < MOVABLE_RATIO_MIN || v > MOVABLE_RATIO_MAX)
                return -ERANGE;
        *(unsigned *) data = (unsigned) v;
        return 0;
}

static int parse_ignore_online(const char *value, void *data) {
        if (streq(value, "online"))
                *(bool *) data = true;
        else if (streq(value, "ignore"))
                *(bool *) data = false;
        else
                return -EINVAL;
        return 0;
}

static const char *const on_crash_table[_ON_CRASH_MAX] = {
        [ON_CRASH_ROLLBACK] = "rollback",
        [ON_CRASH_RESUME] = "resume",
};

DEFINE_STRING_TABLE_LOOKUP(on_crash, OnCrash, on_crash_table, _ON_CRASH_MAX, _ON_CRASH_INVALID);

static int parse_on_crash(const char *value, void *data) {
        OnCrash o = on_crash_from_string(value);

        if (o < 0)
                return o;
        *(OnCrash *) data = o;
        return 0;
}

/* A time span: a number of seconds, or a number with one unit: ms, s, min (systemd's spellings). */
static int parse_seconds_range(const char *value, uint64_t min_usec, uint64_t max_usec, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = { { "ms", 1000 }, { "min", 60 * USEC_PER_SEC }, { "s", USEC_PER_SEC } };
        _cleanup_free_ char *digits = strdup(value);
        uint64_t v, unit = USEC_PER_SEC;
        size_t n;
        int r;

        if (!digits)
                return -ENOMEM;
        n = strlen(digits);
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                size_t l = strlen(units[i].suffix);
                if (n > l && streq(digits + n - l, units[i].suffix)) {
                        digits[n - l] = '\0';
                        unit = units[i].usec;
                        break;
                }
        }
        r = parse_decimal(digits, &v);
        if (r < 0)
                return r;
        if (__builtin_mul_overflow(v, unit, &v))
                return -ERANGE;
        if (v < min_usec || v > max_usec)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int parse_block_timeout(const char *value, void *data) {
        return parse_seconds_range(value, 100 * 1000, 24 * 3600 * USEC_PER_SEC, data);
}

static int parse_backoff(const char *value, void *data) {
        return parse_seconds_range(value, 0, 60 * USEC_PER_SEC, data);
}

static int parse_wait(const char *value, void *data) {
        return parse_seconds_range(value, USEC_PER_SEC, 3600 * USEC_PER_SEC, data);
}

static int parse_retries(const char *value, void *data) {
        uint64_t v;
        int r = parse_decimal(value, &v);

        if (r < 0)
                return r;
        if (v > 100)
                return -ERANGE;
        *(unsigned *) data = (unsigned) v;
        return 0;
}

static int parse_reserve(const char *value, void *data) {
        _cleanup_free_ char *digits = strdup(value);
        uint64_t v, factor = 1;
        size_t n;
        int r;

        if (!digits)
                return -ENOMEM;
        n = strlen(digits);
        if (n > 0 && strchr("KMGT", digits[n - 1])) {
                factor = UINT64_C(1) << (10 * (strchr("KMGT", digits[n - 1]) - "KMGT" + 1));
                digits[n - 1] = '\0';
        }
        r = parse_decimal(digits, &v);
        if (r < 0)
                return r;
        if (__builtin_mul_overflow(v, factor, &v))
                return -ERANGE;
        *(uint64_t *) data = v;
        return 0;
}

#define POLICY_NAMES "offline, online, online_kernel, online_movable, auto-movable or auto"

/* Every key, with where it is stored: in Config for [Daemon]/[Online], in NodeConfig for [Node N].
 * An empty value ("Key=") resets the key to its default, as in systemd unit files. */
typedef struct ConfigItem {
        SectionKind section;
        const char *key;
        ParseFunc parse;
        size_t offset, size;
        const char *expected;
} ConfigItem;

#define ITEM(sec, k, func, type, field, exp) \
        { sec, k, func, offsetof(type, field), sizeof(((type *) NULL)->field), exp }

static const ConfigItem config_items[] = {
        ITEM(SECTION_DAEMON, "EventSource", parse_event_source, Config, event_source, "udev or kernel"),
        ITEM(SECTION_DAEMON, "TakeOver", parse_boolean, Config, take_over, "a boolean (yes, no, true, false, on, off, 1, 0)"),
        ITEM(SECTION_DAEMON, "ReceiveBufferSize", parse_receive_buffer_size, Config, receive_buffer_size,
             "a size in bytes with optional K, M or G suffix, from 64K to 2G"),
        ITEM(SECTION_DAEMON, "LogLevel", parse_log_level, Config, log_level, "err, warning, notice, info or debug"),
        ITEM(SECTION_ONLINE, "Policy", parse_policy, Config, policy, POLICY_NAMES),
        ITEM(SECTION_ONLINE, "MovableRatio", parse_movable_ratio, Config, movable_ratio, "a percentage from 1 to 10000"),
        ITEM(SECTION_ONLINE, "VirtioMem", parse_ignore_online, Config, online_virtio_mem, "ignore or online"),
        ITEM(SECTION_ONLINE, "DaxKmem", parse_ignore_online, Config, online_dax_kmem, "ignore or online"),
        ITEM(SECTION_ONLINE, "KernelHandoff", parse_boolean, Config, kernel_handoff, "a boolean (yes, no, true, false, on, off, 1, 0)"),
        ITEM(SECTION_RETIRE, "BlockTimeoutSec", parse_block_timeout, Config, block_timeout_usec,
             "a time span from 100ms to 24h (seconds, or with ms, s or min)"),
        ITEM(SECTION_RETIRE, "Retries", parse_retries, Config, retries, "a number from 0 to 100"),
        ITEM(SECTION_RETIRE, "RetryBackoffSec", parse_backoff, Config, retry_backoff_usec,
             "a time span up to 60s (seconds, or with ms, s or min)"),
        ITEM(SECTION_RETIRE, "Reserve", parse_reserve, Config, reserve_bytes, "a size in bytes with optional K, M, G or T suffix"),
        ITEM(SECTION_RETIRE, "Rollback", parse_boolean, Config, rollback, "a boolean (yes, no, true, false, on, off, 1, 0)"),
        ITEM(SECTION_RETIRE, "OnCrash", parse_on_crash, Config, on_crash, "rollback or resume"),
        ITEM(SECTION_RETIRE, "Eject", parse_boolean, Config, eject, "a boolean (yes, no, true, false, on, off, 1, 0)"),
        ITEM(SECTION_RETIRE, "OfflineCPUs", parse_boolean, Config, offline_cpus, "a boolean (yes, no, true, false, on, off, 1, 0)"),
        ITEM(SECTION_RETIRE, "RemoveTimeoutSec", parse_wait, Config, remove_timeout_usec,
             "a time span from 1s to 1h (seconds, or with ms, s or min)"),
        ITEM(SECTION_RETIRE, "HookTimeoutSec", parse_wait, Config, hook_timeout_usec,
             "a time span from 1s to 1h (seconds, or with ms, s or min)"),
        ITEM(SECTION_NODE, "Policy", parse_node_policy, NodeConfig, policy, "inherit, " POLICY_NAMES),
        ITEM(SECTION_NODE, "MovableRatio", parse_movable_ratio, NodeConfig, movable_ratio, "a percentage from 1 to 10000"),
};

/* Node sections must look exactly like the node directories are numbered: "Node 0" … "Node 1023",
 * no leading zeros, one space. Returns -EINVAL for "Node x", "Node -1", "Node 01", "Node1" etc.,
 * 0 for a section name that is not about a node at all. */
static int section_parse_node(const char *name, int *ret) {
        const char *s = startswith(name, "Node");
        uint64_t v;

        if (!s)
                return 0;
        if (*s != '\0' && *s != ' ' && *s != '\t' && *s != '-' && (*s < '0' || *s > '9'))
                return 0;       /* "Nodes", "NodeFoo": some other (unknown) section */

        s = startswith(s, " ");
        if (!s || (s[0] == '0' && s[1] != '\0'))
                return -EINVAL;
        if (parse_decimal(s, &v) < 0 || v > NODE_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 1;
}

static void parser_enter_section(Parser *p, const char *name, size_t n) {
        _cleanup_free_ char *raw = strndup(name, n);
        int node = -1, r;

        free(p->section_name);
        p->section_name = raw ? escape(raw) : NULL;
        if (!p->section_name) {
                p->r = -ENOMEM;
                return;
        }

        if (streq(raw, "Daemon"))
                p->section = SECTION_DAEMON;
        else if (streq(raw, "Online"))
                p->section = SECTION_ONLINE;
        else if (streq(raw, "Retire"))
                p->section = SECTION_RETIRE;
        else {
                r = section_parse_node(raw, &node);
                if (r < 0)
                        parser_fail(p, "Invalid section [%s]: expected [Node N] with N from 0 to %d.",
                                    p->section_name, NODE_MAX);
                else if (r > 0) {
                        p->section = SECTION_NODE;
                        p->node = node;
                } else {
                        /* Not an error, so that a newer config (with a section this version does
                         * not know) still loads in an older daemon. */
                        log_warning("%s:%u: Unknown section [%s], ignoring.", p->name, p->line, p->section_name);
                        p->section = SECTION_UNKNOWN;
                }
        }
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The ini_reader: hands inih one physical line per call, so inih's error line numbers are ours
 * too, and refuses what inih would silently reinterpret. Debian's inih accepts "Key: value",
 * treats an indented line as the continuation of the previous value, ignores text after "]",
 * and splits a line longer than its buffer into several lines; all of that would change the
 * meaning of a config without a word, so those lines are errors here. Section headers are
 * interpreted here as well, so that a bad one is reported at its own line even if no key
 * follows. Returning NULL ends the parse (at the end of the text, or after an error). */
static char *parser_read_line(char *buf, int size, void *userdata) {
        Parser *p = userdata;
        const char *line, *nl, *eq;
        size_t n;

        if (p->r < 0 || p->pos >= p->end)
                return NULL;

        line = p->pos;
        nl = memchr(line, '\n', (size_t) (p->end - line));
        n = (size_t) ((nl ?: p->end) - line);
        p->pos = nl ? nl + 1 : p->end;
        p->line++;

        if (memchr(line, '\0', n)) {
                parser_fail(p, "Line contains a NUL byte.");
                return NULL;
        }
        if (p->line == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
                line += 3;
                n -= 3;
        }
        while (n > 0 && is_blank(line[0])) {
                line++;
                n--;
        }
        while (n > 0 && is_blank(line[n - 1]))
                n--;

        /* Blank lines and comments reach inih as empty lines: they only need to be counted. */
        if (n == 0 || line[0] == '#' || line[0] == ';') {
                if (size < 2)
                        return NULL;
                return strcpy(buf, "\n");
        }

        /* inih ends a line at a ';' after a blank (an inline comment). Cut it off here already,
         * so that the checks below see what inih will see, e.g. "[Online] ; x" is a header. */
        for (size_t i = 1; i < n; i++)
                if (line[i] == ';' && is_blank(line[i - 1])) {
                        n = i;
                        break;
                }
        while (n > 0 && is_blank(line[n - 1]))
                n--;

        /* Room for the line, '\n' and NUL: the '\n' tells inih the line is complete. */
        if (size < 2 || n > (size_t) size - 2) {
                parser_fail(p, "Line too long (more than %d bytes).", size - 2);
                return NULL;
        }

        if (line[0] == '[') {
                const char *close = memchr(line, ']', n);

                if (!close || close != line + n - 1) {
                        _cleanup_free_ char *l = escape_bytes(line, n);

                        parser_fail(p, "Invalid section header '%s': expected '[Name]' alone on the line.", strna(l));
                        return NULL;
                }
                parser_enter_section(p, line + 1, n - 2);
                if (p->r < 0)
                        return NULL;
        } else {
                eq = memchr(line, '=', n);
                if (!eq || eq == line || memchr(line, ':', (size_t) (eq - line))) {
                        _cleanup_free_ char *l = escape_bytes(line, n);

                        parser_fail(p, "Invalid line '%s': expected '[Section]' or 'Key=Value'.", strna(l));
                        return NULL;
                }
        }

        memcpy(buf, line, n);
        buf[n] = '\n';
        buf[n + 1] = '\0';
        return buf;
}

/* The ini_handler: one Key=Value of the current section. Returns 0 to make inih count an error,
 * which it only does after parser_fail() set p->r. */
static int parser_handle(void *userdata, _unused_ const char *section, const char *key, const char *value) {
        Parser *p = userdata;
        const ConfigItem *item = NULL;
        Config defaults;
        NodeConfig node_defaults = { .policy = POLICY_INHERIT, .movable_ratio = 0 };
        const void *def;
        void *base;
        int r;

        if (p->r < 0)
                return 0;

        switch (p->section) {
        case SECTION_NONE: {
                _cleanup_free_ char *k = escape(key);

                log_warning("%s:%u: Assignment to '%s' outside of any section, ignoring.", p->name, p->line, strna(k));
                return 1;
        }
        case SECTION_UNKNOWN:
                return 1;
        default:
                break;
        }

        for (size_t i = 0; i < ELEMENTSOF(config_items); i++)
                if (config_items[i].section == p->section && streq(config_items[i].key, key)) {
                        item = config_items + i;
                        break;
                }
        if (!item) {
                _cleanup_free_ char *k = escape(key);

                log_warning("%s:%u: Unknown key '%s' in section [%s], ignoring.", p->name, p->line, strna(k),
                            p->section_name);
                return 1;
        }

        if (p->section == SECTION_NODE) {
                base = config_get_node(p->config, p->node);
                if (!base) {
                        p->r = -ENOMEM;
                        return 0;
                }
                def = &node_defaults;
        } else {
                config_init(&defaults);
                base = p->config;
                def = &defaults;
        }

        if (*value == '\0') {
                memcpy((uint8_t *) base + item->offset, (const uint8_t *) def + item->offset, item->size);
                return 1;
        }

        r = item->parse(value, (uint8_t *) base + item->offset);
        if (r == -ENOMEM) {
                p->r = r;
                return 0;
        }
        if (r < 0) {
                parser_fail_value(p, key, value, item->expected);
                return 0;
        }
        return 1;
}

static void parser_done(Parser *p) {
        free(p->section_name);
        free(p->error);
}

/* Applies one file's text to c, which is left half-updated on error: callers parse into a copy. */
static int parse_text(const char *name, const char *text, size_t size, Config *c, char **ret_error) {
        _cleanup_(parser_done) Parser p = {
                .config = c,
                .name = name,
                .pos = text,
                .end = text + size,
        };
        int r;

        p.section_name = strdup("");
        if (!p.section_name)
                return -ENOMEM;

        r = ini_parse_stream(parser_read_line, &p, parser_handle, &p);

        /* The reader lets through only lines inih accepts, so this is defence in depth: should
         * inih find a malformed line anyway, it goes on parsing, and an error of ours may then
         * come later in the file than the one inih returns. */
        if (r > 0 && (p.r == 0 || (unsigned) r < p.error_line)) {
                free(p.error);
                if (asprintf(&p.error, "%s:%d: Invalid line: expected '[Section]' or 'Key=Value'.", name, r) < 0) {
                        p.error = NULL;
                        return -ENOMEM;
                }
                p.r = -EINVAL;
        } else if (r < 0 && p.r == 0)
                return -ENOMEM; /* -2: inih's own allocation; -1 (open error) cannot happen with a reader */

        if (p.r < 0 && ret_error)
                *ret_error = TAKE_PTR(p.error);
        return p.r;
}

int config_parse_string(const char *name, const char *text, Config *c, char **ret_error) {
        _cleanup_(config_done) Config tmp = {};
        int r;

        if (ret_error)
                *ret_error = NULL;

        r = config_copy(c, &tmp);
        if (r < 0)
                return r;
        r = parse_text(name ?: "(string)", text, strlen(text), &tmp, ret_error);
        if (r < 0)
                return r;

        config_prune_nodes(&tmp);
        config_done(c);
        *c = tmp;
        tmp = (Config) {};
        return 0;
}

_printf_(3, 4)
static int set_error(char **ret_error, int r, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

/* Whom we take configuration from: root (or the user we run as, who could change anything anyway),
 * and nobody else may be able to write it. The same rule as for hooks (hooks.c). */
static bool trusted(const struct stat *st) {
        return (st->st_uid == 0 || st->st_uid == geteuid()) && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int untrusted_error(char **ret_error, const char *what, const char *path, const struct stat *st) {
        return set_error(ret_error, -EPERM,
                         "%s: Refusing to use %s owned by uid %u with mode %04o: it must be owned by root and not "
                         "writable by group or others.",
                         path, what, (unsigned) st->st_uid, (unsigned) (st->st_mode & 07777));
}

/* Reads a whole config file; a symlink to /dev/null reads as empty. O_NONBLOCK because opening a
 * FIFO for reading would otherwise wait for a writer, before fstat() could reject it. The file is
 * judged by what was opened (fstat), so a symlink is judged by its target. */
static int read_file(const char *path, char **ret, size_t *ret_size, char **ret_error) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))
                return -EBADFD;
        if (S_ISREG(st.st_mode) && !trusted(&st))
                return untrusted_error(ret_error, "a configuration file", path, &st);

        buf = malloc(CONFIG_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > CONFIG_FILE_MAX)
                        return -EFBIG;
        }
        buf[n] = '\0';

        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

/* A missing file means defaults; anything else that keeps a file from being read is an error,
 * since going on without it would run with a config nobody wrote. */
static int load_file(const char *path, Config *c, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = read_file(path, &text, &size, ret_error);
        if (r == -ENOENT) {
                log_debug("%s: Not found, ignoring.", path);
                return 0;
        }
        if (r == -ENOMEM || (r == -EPERM && ret_error && *ret_error))
                return r;
        if (r < 0)
                return set_error(ret_error, r, "%s: Failed to read configuration file: %s", path, strerror(-r));

        log_debug("Loading %s.", path);
        return parse_text(path, text, size, c, ret_error);
}

typedef struct DropIn {
        char *name;
        char *path;     /* NULL: masked with a symlink to /dev/null, nothing to read */
} DropIn;

typedef struct DropInList {
        DropIn *items;
        size_t n;
} DropInList;

static void drop_in_list_done(DropInList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].name);
                free(l->items[i].path);
        }
        free(l->items);
}

static int drop_in_compare(const void *a, const void *b) {
        return strcmp(((const DropIn *) a)->name, ((const DropIn *) b)->name);
}

static bool drop_in_list_contains(const DropInList *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].name, name))
                        return true;
        return false;
}

static bool drop_in_name_valid(const char *name) {
        size_t n = strlen(name);

        /* Hidden files are editor swap files and the like, skipped as in systemd's conf-files.c. */
        return name[0] != '.' && n > STRLEN(".conf") && streq(name + n - STRLEN(".conf"), ".conf");
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* Adds the *.conf files of dir whose names were not seen in an earlier directory. */
static int drop_in_list_add_dir(DropInList *l, const char *dir, char **ret_error) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                return set_error(ret_error, negative_errno(), "%s: Failed to open drop-in directory: %m", dir);
        }
        /* Whoever may write the directory may add, replace or remove drop-ins. */
        {
                struct stat st;

                if (fstat(dirfd(d), &st) < 0)
                        return set_error(ret_error, negative_errno(), "%s: Failed to stat drop-in directory: %m", dir);
                if (!trusted(&st))
                        return untrusted_error(ret_error, "a drop-in directory", dir, &st);
        }

        for (errno = 0; (de = readdir(d)); errno = 0) {
                _cleanup_free_ char *name = NULL, *path = NULL;
                struct stat st;
                DropIn *grown;

                if (!drop_in_name_valid(de->d_name) || drop_in_list_contains(l, de->d_name))
                        continue;

                /* Follows symlinks: a link to /dev/null masks the same name in later directories;
                 * anything else that is not a regular file (a directory, a dangling link) is
                 * skipped and masks nothing, as in systemd. */
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0) {
                        log_debug_errno(errno, "%s/%s: Cannot stat, ignoring: %m", dir, de->d_name);
                        continue;
                }
                if (S_ISREG(st.st_mode)) {
                        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                                path = NULL;
                                return -ENOMEM;
                        }
                } else if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
                        log_debug("%s/%s: Not a regular file, ignoring.", dir, de->d_name);
                        continue;
                }

                name = strdup(de->d_name);
                if (!name)
                        return -ENOMEM;
                grown = realloc(l->items, (l->n + 1) * sizeof(DropIn));
                if (!grown)
                        return -ENOMEM;
                l->items = grown;
                l->items[l->n++] = (DropIn) { .name = TAKE_PTR(name), .path = TAKE_PTR(path) };
        }
        if (errno > 0)
                return set_error(ret_error, negative_errno(), "%s: Failed to read drop-in directory: %m", dir);
        return 0;
}

/* "<root>/<path>" without a doubled slash; root NULL or "/" is the real root. */
static char *root_path(const char *root, const char *path) {
        size_t n = root ? strlen(root) : 0;
        char *s;

        while (n > 0 && root[n - 1] == '/')
                n--;
        if (asprintf(&s, "%.*s/%s", (int) n, n > 0 ? root : "", path) < 0)
                return NULL;
        return s;
}

int config_load(const char *root, const char *main_path, Config *ret, char **ret_error) {
        static const char *const dirs[] = {
                "etc/hotplugd/hotplugd.conf.d",
                "run/hotplugd/hotplugd.conf.d",
                "usr/lib/hotplugd/hotplugd.conf.d",
        };
        _cleanup_(drop_in_list_done) DropInList drop_ins = {};
        _cleanup_(config_done) Config tmp = {};
        _cleanup_free_ char *default_main = NULL;
        int r;

        if (ret_error)
                *ret_error = NULL;

        if (!main_path) {
                _cleanup_free_ char *dir = root_path(root, "etc/hotplugd");
                struct stat st;

                default_main = root_path(root, "etc/hotplugd/hotplugd.conf");
                if (!default_main || !dir)
                        return -ENOMEM;
                main_path = default_main;
                /* Whoever may write etc/hotplugd may replace or remove hotplugd.conf. (A file named
                 * with --config is the caller's choice, wherever it lives.) */
                if (stat(dir, &st) >= 0 && !trusted(&st))
                        return untrusted_error(ret_error, "a configuration directory", dir, &st);
        }

        /* 1. Collect the drop-ins first, so that an unreadable directory fails before any
         *    warning about the files is logged. */
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = root_path(root, dirs[i]);

                if (!dir)
                        return -ENOMEM;
                r = drop_in_list_add_dir(&drop_ins, dir, ret_error);
                if (r < 0)
                        return r;
        }
        if (drop_ins.n > 0)
                qsort(drop_ins.items, drop_ins.n, sizeof(DropIn), drop_in_compare);

        /* 2. Defaults, the main file, then the drop-ins by name: later assignments win. */
        config_init(&tmp);
        r = load_file(main_path, &tmp, ret_error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < drop_ins.n; i++) {
                if (!drop_ins.items[i].path) {
                        log_debug("Drop-in %s is masked, skipping.", drop_ins.items[i].name);
                        continue;
                }
                r = load_file(drop_ins.items[i].path, &tmp, ret_error);
                if (r < 0)
                        return r;
        }

        /* 3. Only now replace the caller's config: nothing of a failed load is applied. */
        config_prune_nodes(&tmp);
        config_done(ret);
        *ret = tmp;
        tmp = (Config) {};
        return 0;
}
