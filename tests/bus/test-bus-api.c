/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-bus-api.c — every method, property, signal and error name of org.hotplugd.Hotplug1, one
 * scenario per run (argv[1]), against the daemon library on a private system bus. */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "harness.h"
#include "hotplug-bus.h"

#define MGR "org.hotplugd.Hotplug1.Manager"
#define NODE_IFACE "org.hotplugd.Hotplug1.Node"
#define JOB_IFACE "org.hotplugd.Hotplug1.Job"
#define NODE(n) "/org/hotplugd/Hotplug1/node/" #n

static Harness H;

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static uint64_t prop_u(const char *path, const char *iface, const char *name, char type) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t v = 0;
        uint32_t u = 0;
        int b = 0;

        if (type == 't')
                ASSERT_OK(sd_bus_get_property_trivial(H.bus, HOTPLUG_BUS_NAME, path, iface, name, &e, 't', &v));
        else if (type == 'u') {
                ASSERT_OK(sd_bus_get_property_trivial(H.bus, HOTPLUG_BUS_NAME, path, iface, name, &e, 'u', &u));
                v = u;
        } else {
                ASSERT_OK(sd_bus_get_property_trivial(H.bus, HOTPLUG_BUS_NAME, path, iface, name, &e, 'b', &b));
                v = (uint64_t) b;
        }
        return v;
}

/* Caller frees. */
static char *prop_s(const char *path, const char *iface, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;

        ASSERT_OK(sd_bus_get_property_string(H.bus, HOTPLUG_BUS_NAME, path, iface, name, &e, &s));
        return s;
}

static void expect_prop_s(const char *path, const char *iface, const char *name, const char *want) {
        char *s = prop_s(path, iface, name);
        ASSERT_STREQ(s, want);
        free(s);
}

/* A call that must succeed and whose reply is not needed: the reply is released here (a leaked
 * reply would pin the connection, and LeakSanitizer rightly complains). */
#define call_ok(h, e, ...)                                                      \
        ({                                                                      \
                sd_bus_message *_reply = call(h, e, __VA_ARGS__);                \
                bool _ok = _reply != NULL;                                      \
                sd_bus_message_unref(_reply);                                   \
                _ok;                                                            \
        })

static void expect_file(const char *block_state_file, const char *want) {
        char buf[256];

        harness_read(&H, block_state_file, buf, sizeof(buf));
        ASSERT_STREQ(buf, want);
}

#define STATE(n) "sys/devices/system/memory/memory" #n "/state"

/* Reads a(tss) results into a compact "block:name;" string. */
static void results_string(sd_bus_message *reply, char *buf, size_t size) {
        const char *name, *message;
        uint64_t block;
        size_t l = 0;

        buf[0] = 0;
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(tss)"));
        while (sd_bus_message_read(reply, "(tss)", &block, &name, &message) > 0) {
                printf("#   %" PRIu64 " %s: %s\n", block, name[0] ? name : "ok", message);
                l += (size_t) snprintf(buf + l, size - l, "%" PRIu64 ":%s;", block,
                                       name[0] ? name + strlen(HOTPLUG_ERROR_PREFIX) : "ok");
        }
}

static sd_bus_message *call_blocks(sd_bus_error *e, const char *method, const uint64_t *blocks, size_t n, const char *zone) {
        sd_bus_message *m = NULL, *reply = NULL;

        ASSERT_OK(sd_bus_message_new_method_call(H.bus, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, method));
        ASSERT_OK(sd_bus_message_append_array(m, 't', blocks, n * sizeof(uint64_t)));
        if (zone)
                ASSERT_OK(sd_bus_message_append(m, "s", zone));
        sd_bus_error_free(e);
        (void) sd_bus_call(H.bus, m, 30 * 1000 * 1000, e, &reply);
        sd_bus_message_unref(m);
        return reply;
}

static void expect_blocks(const char *method, const uint64_t *blocks, size_t n, const char *zone, const char *want) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = call_blocks(&e, method, blocks, n, zone);
        char buf[512];

        if (!reply) {
                fprintf(stderr, "%s failed: %s: %s\n", method, e.name, e.message);
                exit(EXIT_FAILURE);
        }
        results_string(reply, buf, sizeof(buf));
        ASSERT_STREQ(buf, want);
        sd_bus_message_unref(reply);
}

static void expect_blocks_error(const char *method, const uint64_t *blocks, size_t n, const char *zone, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = call_blocks(&e, method, blocks, n, zone);

        ASSERT(!reply);
        expect_error(&e, name);
        sd_bus_error_free(&e);
}

/* Waits until a job is final; returns its state (caller frees). */
static char *wait_job(const char *path) {
        for (uint64_t end = now_ms() + 5000; now_ms() < end; usleep(10 * 1000)) {
                char *s = prop_s(path, JOB_IFACE, "State");

                if (streq(s, "completed") || streq(s, "failed") || streq(s, "cancelled"))
                        return s;
                free(s);
        }
        fprintf(stderr, "job %s did not end\n", path);
        exit(EXIT_FAILURE);
}

static char *retire(uint32_t node, uint64_t flags) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = call(&H, &e, "RetireNode", "ut", node, flags);
        const char *path;
        char *p;

        if (!reply) {
                fprintf(stderr, "RetireNode(%u) failed: %s: %s\n", node, e.name, e.message);
                exit(EXIT_FAILURE);
        }
        ASSERT_OK(sd_bus_message_read(reply, "o", &path));
        p = strdup(path);
        sd_bus_message_unref(reply);
        return p;
}

/* ---------------------------------------------------------------------------------------- */

static void test_properties(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *s;
        int n = 0;

        expect_prop_s(HOTPLUG_BUS_PATH, MGR, "Version", PACKAGE_VERSION);
        ASSERT_EQ(prop_u(HOTPLUG_BUS_PATH, MGR, "BlockSize", 't'), 128 << 20);
        ASSERT_EQ(prop_u(HOTPLUG_BUS_PATH, MGR, "NBlocks", 't'), 44);
        ASSERT_EQ(prop_u(HOTPLUG_BUS_PATH, MGR, "NOnlineBlocks", 't'), 36);
        ASSERT_EQ(prop_u(HOTPLUG_BUS_PATH, MGR, "NOfflineBlocks", 't'), 8);
        expect_prop_s(HOTPLUG_BUS_PATH, MGR, "Policy", "offline");
        expect_prop_s(HOTPLUG_BUS_PATH, MGR, "KernelAutoOnline", "offline");
        ASSERT_OK(sd_bus_get_property(H.bus, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, "Nodes", &e, &reply, "ao"));
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "o"));
        while (sd_bus_message_read(reply, "o", &s) > 0) {
                char want[64];
                snprintf(want, sizeof(want), "/org/hotplugd/Hotplug1/node/%d", n++);
                ASSERT_STREQ(s, want);
        }
        ASSERT_EQ(n, 3);
        reply = sd_bus_message_unref(reply);

        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "Id", 'u'), 2);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "Online", 'b'), 1);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "HasMemory", 'b'), 1);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "Blocks", 'u'), 20);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "OnlineBlocks", 'u'), 16);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "OfflineBlocks", 'u'), 4);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "SpannedPages", 't'), 16 * 32768);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "PresentPages", 't'), 16 * 32768);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "ManagedPages", 't'), 16 * 32768);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "CanOffline", 'b'), 0);
        ASSERT_EQ(prop_u(NODE(2), NODE_IFACE, "Quarantined", 'b'), 0);
        expect_prop_s(NODE(2), NODE_IFACE, "Policy", "offline");
        expect_prop_s(NODE(2), NODE_IFACE, "PolicyOverride", "");

        ASSERT_OK(sd_bus_get_property(H.bus, HOTPLUG_BUS_NAME, NODE(1), NODE_IFACE, "PresentCPUs", &e, &reply, "au"));
        {
                const uint32_t *cpus;
                size_t size;
                ASSERT_OK(sd_bus_message_read_array(reply, 'u', (const void **) &cpus, &size));
                ASSERT_EQ(size, 2 * sizeof(uint32_t));
                ASSERT_EQ(cpus[0], 2);
                ASSERT_EQ(cpus[1], 3);
        }
        reply = sd_bus_message_unref(reply);
        ASSERT_OK(sd_bus_get_property(H.bus, HOTPLUG_BUS_NAME, NODE(2), NODE_IFACE, "OnlineBlocksByZone", &e, &reply, "a{su}"));
        {
                const char *zone;
                uint32_t count;
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "{su}"));
                ASSERT(sd_bus_message_read(reply, "{su}", &zone, &count) > 0);
                ASSERT_STREQ(zone, "Movable");
                ASSERT_EQ(count, 16);
                ASSERT_EQ(sd_bus_message_read(reply, "{su}", &zone, &count), 0);
        }
        reply = sd_bus_message_unref(reply);
        ASSERT_OK(sd_bus_get_property(H.bus, HOTPLUG_BUS_NAME, NODE(2), NODE_IFACE, "OfflineBlockers", &e, &reply, "as"));
        {
                const char *a, *b;
                ASSERT_OK(sd_bus_message_read(reply, "as", 2, &a, &b));
                ASSERT_STREQ(a, "spans-pages");
                ASSERT_STREQ(b, "has-blocks");
        }
        reply = sd_bus_message_unref(reply);

        /* Objects for nodes that do not exist do not exist. */
        ASSERT(sd_bus_get_property(H.bus, HOTPLUG_BUS_NAME, NODE(9), NODE_IFACE, "Id", &e, &reply, "u") < 0);
        expect_error(&e, SD_BUS_ERROR_UNKNOWN_OBJECT);
        sd_bus_error_free(&e);

        /* GetAll works for every object (the client's show-node depends on it). */
        ASSERT_OK(sd_bus_call_method(H.bus, HOTPLUG_BUS_NAME, NODE(0), "org.freedesktop.DBus.Properties", "GetAll", &e,
                                     &reply, "s", NODE_IFACE));
        reply = sd_bus_message_unref(reply);
        ASSERT_OK(sd_bus_call_method(H.bus, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, "org.freedesktop.DBus.Properties", "GetAll",
                                     &e, &reply, "s", MGR));
        reply = sd_bus_message_unref(reply);
        /* Reading needs no authorization. */
        ASSERT_EQ(pk_calls(&H), 0);
}

/* Every property is flagged: none may say EmitsChangedSignal=false; every argument is named. */
static void test_introspection(void) {
        static const char *const paths[] = { HOTPLUG_BUS_PATH, NODE(0), "/org/hotplugd/Hotplug1/node" };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *xml;

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                ASSERT_OK(sd_bus_call_method(H.bus, HOTPLUG_BUS_NAME, paths[i], "org.freedesktop.DBus.Introspectable",
                                             "Introspect", &e, &reply, NULL));
                ASSERT_OK(sd_bus_message_read(reply, "s", &xml));
                ASSERT(!strstr(xml, "EmitsChangedSignal\" value=\"false\""));
                for (const char *p = xml; (p = strstr(p, "<arg ")); p++) {
                        const char *end = strchr(p, '>');
                        bool in_signal_or_method = true;
                        ASSERT(end);
                        /* Arguments of our interfaces carry names; the standard ones do too. */
                        if (in_signal_or_method && !memmem(p, (size_t) (end - p), "name=", 5)) {
                                fprintf(stderr, "unnamed argument in %s: %.*s\n", paths[i], (int) (end - p), p);
                                exit(EXIT_FAILURE);
                        }
                }
                if (i == 0)
                        ASSERT(strstr(xml, "<arg type=\"at\" name=\"blocks\" direction=\"in\"/>"));
                if (i == 2) /* the node directory lists its children */
                        ASSERT(strstr(xml, "<node name=\"2\"/>"));
                reply = sd_bus_message_unref(reply);
        }
}

static void test_list(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply;
        uint32_t id, cpus, blocks, on, off;
        int online, has_memory, quarantined, can_offline, rows = 0;
        uint64_t spanned, present, index, first, count, total = 0;
        const char *policy, *blocker, *state, *zone, *valid, *owner, *device;
        int32_t node;
        bool saw_has_cpus = false;

        reply = call(&H, &e, "ListNodes", NULL);
        ASSERT(reply);
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ubbuuuuttsbbas)"));
        while (sd_bus_message_enter_container(reply, 'r', "ubbuuuuttsbbas") > 0) {
                ASSERT_OK(sd_bus_message_read(reply, "ubbuuuuttsbb", &id, &online, &has_memory, &cpus, &blocks, &on, &off,
                                              &spanned, &present, &policy, &quarantined, &can_offline));
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "s"));
                while (sd_bus_message_read(reply, "s", &blocker) > 0)
                        if (id == 1 && streq(blocker, "has-cpus"))
                                saw_has_cpus = true;
                ASSERT_OK(sd_bus_message_exit_container(reply));
                ASSERT_OK(sd_bus_message_exit_container(reply));
                if (id == 1) {
                        ASSERT_EQ(cpus, 2);
                        ASSERT_EQ(blocks, 16);
                        ASSERT_EQ(on, 12);
                        ASSERT_EQ(off, 4);
                        ASSERT_STREQ(policy, "offline");
                        ASSERT(!can_offline && online && has_memory && !quarantined);
                }
                rows++;
        }
        ASSERT_EQ(rows, 3);
        ASSERT(saw_has_cpus);
        sd_bus_message_unref(reply);

        reply = call(&H, &e, "ListBlocks", "i", -1);
        ASSERT(reply);
        rows = 0;
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(tsissss)"));
        while (sd_bus_message_read(reply, "(tsissss)", &index, &state, &node, &zone, &valid, &owner, &device) > 0) {
                rows++;
                if (index == 44) {
                        ASSERT_STREQ(state, "offline");
                        ASSERT_EQ(node, 1);
                        ASSERT_STREQ(zone, "Movable");
                        ASSERT_STREQ(valid, "Movable Normal");
                        ASSERT_STREQ(owner, "boot");
                        ASSERT_STREQ(device, "");
                }
                if (index == 64) {
                        ASSERT_STREQ(state, "online");
                        ASSERT_STREQ(owner, "acpi");
                        ASSERT_STREQ(device, "PNP0C80:00");
                        ASSERT_STREQ(valid, "Movable");
                }
                if (index == 0)
                        ASSERT_STREQ(zone, "none");
        }
        ASSERT_EQ(rows, 44);
        sd_bus_message_unref(reply);

        reply = call(&H, &e, "ListBlocks", "i", 2);
        ASSERT(reply);
        rows = 0;
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(tsissss)"));
        while (sd_bus_message_read(reply, "(tsissss)", &index, &state, &node, &zone, &valid, &owner, &device) > 0) {
                ASSERT_EQ(node, 2);
                rows++;
        }
        ASSERT_EQ(rows, 20);
        sd_bus_message_unref(reply);

        reply = call(&H, &e, "ListBlockRanges", "i", -1);
        ASSERT(reply);
        rows = 0;
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ttsiss)"));
        while (sd_bus_message_read(reply, "(ttsiss)", &first, &count, &state, &node, &zone, &owner) > 0) {
                printf("#   range %" PRIu64 "+%" PRIu64 " %s node %d %s %s\n", first, count, state, node, zone, owner);
                if (rows == 0) {
                        ASSERT_EQ(first, 0);
                        ASSERT_EQ(count, 1);
                        ASSERT_STREQ(zone, "none");
                }
                total += count;
                rows++;
        }
        ASSERT_EQ(total, 44);
        ASSERT_EQ(rows, 7); /* exactly the runs of the spec */
        sd_bus_message_unref(reply);

        /* ListBlockRuns expands into exactly ListBlocks' rows, and its runs are maximal. */
        {
                char want[64][128], got[128], prev[128] = "";
                size_t n_want = 0, n_got = 0, n_runs = 0;
                uint64_t prev_end = UINT64_MAX;

                reply = call(&H, &e, "ListBlocks", "i", -1);
                ASSERT(reply);
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(tsissss)"));
                while (sd_bus_message_read(reply, "(tsissss)", &index, &state, &node, &zone, &valid, &owner, &device) > 0) {
                        ASSERT(n_want < 64);
                        snprintf(want[n_want++], sizeof(want[0]), "%" PRIu64 " %s %d %s %s %s %s", index, state, node, zone,
                                 valid, owner, device);
                }
                sd_bus_message_unref(reply);

                reply = call(&H, &e, "ListBlockRuns", "i", -1);
                ASSERT(reply);
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ttsissss)"));
                while (sd_bus_message_read(reply, "(ttsissss)", &first, &count, &state, &node, &zone, &valid, &owner, &device) > 0) {
                        char what[96];

                        ASSERT(count > 0);
                        snprintf(what, sizeof(what), "%s %d %s %s %s %s", state, node, zone, valid, owner, device);
                        /* A run that continues the previous one must differ from it. */
                        ASSERT(first != prev_end || strcmp(what, prev) != 0);
                        snprintf(prev, sizeof(prev), "%s", what);
                        prev_end = first + count;
                        for (uint64_t i = first; i < first + count; i++) {
                                ASSERT(n_got < n_want);
                                snprintf(got, sizeof(got), "%" PRIu64 " %s", i, what);
                                ASSERT_STREQ(got, want[n_got]);
                                n_got++;
                        }
                        n_runs++;
                }
                sd_bus_message_unref(reply);
                ASSERT_EQ(n_got, n_want);
                ASSERT(n_runs < n_want);
                printf("#   ListBlockRuns: %zu runs for %zu blocks\n", n_runs, n_want);
        }

        ASSERT(!call(&H, &e, "ListBlocks", "i", 7));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);
        ASSERT(strstr(e.message, "(nodes: 0-2)"));
        ASSERT(!call(&H, &e, "ListBlockRanges", "i", -5));
        expect_error(&e, SD_BUS_ERROR_INVALID_ARGS);
        ASSERT(!call(&H, &e, "ListBlockRuns", "i", 9));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);
        ASSERT(!call(&H, &e, "ListBlocks", "u", 1));
        expect_error(&e, SD_BUS_ERROR_INVALID_ARGS); /* wrong signature */
        sd_bus_error_free(&e);
}

static void test_online_blocks(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_ONLINE_BLOCKS, HOTPLUG_ACTION_QUARANTINE, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        unsigned calls;

        pk_allow(&H, allow);
        calls = pk_calls(&H);
        expect_blocks("OnlineBlocks", (uint64_t[]) { 45, 44, 44 }, 3, "movable", "44:ok;45:ok;");
        ASSERT_EQ(pk_calls(&H), calls + 1);
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_ONLINE_BLOCKS);
        ASSERT_EQ(H.pk.last_flags, 0);
        expect_file(STATE(44), "online_movable");
        expect_file(STATE(45), "online_movable");

        /* Already there: success, nothing written. */
        expect_blocks("OnlineBlocks", (uint64_t[]) { 40 }, 1, "movable", "40:ok;");
        expect_file(STATE(40), "online\n");
        /* One block that cannot: a plain error. Several, some can: per-block results. */
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 40 }, 1, "kernel", HOTPLUG_ERROR_INVALID_ZONE);
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 81 }, 1, "kernel", HOTPLUG_ERROR_INVALID_ZONE);
        expect_file(STATE(81), "offline\n");
        expect_blocks("OnlineBlocks", (uint64_t[]) { 46, 40 }, 2, "kernel", "40:InvalidZone;46:ok;");
        expect_file(STATE(46), "online_kernel");
        expect_blocks("OnlineBlocks", (uint64_t[]) { 47 }, 1, "auto", "47:ok;");
        expect_file(STATE(47), "onlinee\n"); /* "online" over "offline\n": a file, not a kernel, keeps the rest */

        /* Malformed input and unknown blocks: refused before polkit is asked. */
        calls = pk_calls(&H);
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 81 }, 1, "bogus", SD_BUS_ERROR_INVALID_ARGS);
        expect_blocks_error("OnlineBlocks", NULL, 0, "auto", SD_BUS_ERROR_INVALID_ARGS);
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 999 }, 1, "auto", HOTPLUG_ERROR_NO_SUCH_BLOCK);
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 30, 31, 81 }, 3, "auto", HOTPLUG_ERROR_NO_SUCH_BLOCK);
        ASSERT_EQ(pk_calls(&H), calls);

        /* A quarantined node's memory stays offline. */
        ASSERT(call_ok(&H, &e, "QuarantineNode", "u", 2));
        expect_blocks_error("OnlineBlocks", (uint64_t[]) { 82 }, 1, "movable", HOTPLUG_ERROR_QUARANTINED);
        expect_file(STATE(82), "offline\n");
        sd_bus_error_free(&e);
}

static void test_offline_blocks(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_OFFLINE_BLOCKS, NULL };

        pk_allow(&H, allow);
        collect_signals(&H, 50);
        clear_signals(&H);
        expect_blocks("OfflineBlocks", (uint64_t[]) { 41, 40 }, 2, NULL, "40:ok;41:ok;");
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_OFFLINE_BLOCKS);
        expect_file(STATE(40), "offline");
        expect_file(STATE(41), "offline");
        /* The daemon re-read the blocks: the model and the bus say offline now, in one signal. */
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "OfflineBlocks", 'u'), 6);
        collect_signals(&H, 200);
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(1)), 1);
        ASSERT(changed_property(&H, NODE(1), "OfflineBlocks"));
        ASSERT(changed_property(&H, NODE(1), "OnlineBlocksByZone"));
        ASSERT(changed_property(&H, HOTPLUG_BUS_PATH, "NOfflineBlocks"));
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(2)), 0);

        expect_blocks_error("OfflineBlocks", (uint64_t[]) { 0 }, 1, NULL, HOTPLUG_ERROR_NOT_REMOVABLE);
        expect_file(STATE(0), "online\n");
        expect_blocks("OfflineBlocks", (uint64_t[]) { 44 }, 1, NULL, "44:ok;");
        expect_file(STATE(44), "offline\n");
        expect_blocks("OfflineBlocks", (uint64_t[]) { 0, 42 }, 2, NULL, "0:NotRemovable;42:ok;");
        expect_blocks_error("OfflineBlocks", (uint64_t[]) { 1000 }, 1, NULL, HOTPLUG_ERROR_NO_SUCH_BLOCK);
}

/* A FIFO with a full buffer stands in for an offline that migrates for minutes. */
static int make_stuck(const char *rel) {
        char path[PATH_MAX], junk[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", H.root, rel);
        ASSERT(unlink(path) == 0);
        ASSERT(mkfifo(path, 0644) == 0);
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ASSERT(fd >= 0);
        memset(junk, 'x', sizeof(junk));
        while (write(fd, junk, sizeof(junk)) > 0)
                ;
        return fd;
}

static void unstick(const char *rel, int fd, const char *text) {
        char path[PATH_MAX];

        close(fd);
        snprintf(path, sizeof(path), "%s/%s", H.root, rel);
        ASSERT(unlink(path) == 0);
        harness_write(&H, rel, text);
}

static int on_reply_store(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_bus_message **store = userdata;
        *store = sd_bus_message_ref(m);
        return 0;
}

/* Drives a second connection until the reply of its async call arrives (3 s at most). */
static void wait_reply(sd_bus *bus, sd_bus_message **reply) {
        uint64_t end = now_ms() + 3000;

        while (!*reply) {
                ASSERT(now_ms() < end);
                (void) sd_bus_process(bus, NULL);
                (void) sd_bus_wait(bus, 50 * 1000);
        }
}

static void test_worker(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_OFFLINE_BLOCKS, HOTPLUG_ACTION_ONLINE_BLOCKS, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *c2 = NULL;
        uint64_t t, block = 42;
        int fd;

        pk_allow(&H, allow);
        fd = make_stuck(STATE(42));
        ASSERT_OK(sd_bus_open_system(&c2));
        ASSERT_OK(sd_bus_message_new_method_call(c2, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, "OfflineBlocks"));
        ASSERT_OK(sd_bus_message_append_array(m, 't', &block, sizeof(block)));
        ASSERT_OK(sd_bus_call_async(c2, NULL, m, on_reply_store, &reply, 0));
        ASSERT_OK(sd_bus_flush(c2));
        m = sd_bus_message_unref(m);
        usleep(200 * 1000);
        (void) sd_bus_process(c2, NULL);
        ASSERT(!reply); /* still offlining */

        /* The loop is free while the worker is stuck in the kernel. */
        t = now_ms();
        m = call(&H, &e, "ListNodes", NULL);
        ASSERT(m);
        m = sd_bus_message_unref(m);
        printf("# ListNodes answered in %" PRIu64 " ms during a stuck offline\n", now_ms() - t);
        ASSERT(now_ms() - t < 1000);
        /* The same block cannot be changed twice at once. */
        expect_blocks_error("OfflineBlocks", &block, 1, NULL, HOTPLUG_ERROR_BUSY);
        expect_blocks_error("OnlineBlocks", &block, 1, "auto", HOTPLUG_ERROR_BUSY);

        /* The caller gives up (hotplugctl got ^C): the write is interrupted, the block is free again. */
        c2 = sd_bus_flush_close_unref(c2);
        for (uint64_t end = now_ms() + 3000;; usleep(20 * 1000)) {
                sd_bus_message *r2 = call_blocks(&e, "OnlineBlocks", &block, 1, "auto");
                if (r2) {
                        sd_bus_message_unref(r2);
                        break;
                }
                ASSERT(streq(e.name, HOTPLUG_ERROR_BUSY));
                ASSERT(now_ms() < end);
        }
        unstick(STATE(42), fd, "online\n");
        expect_blocks("OfflineBlocks", &block, 1, NULL, "42:ok;");
        expect_file(STATE(42), "offline");
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
}

static void test_policy(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_SET_POLICY, HOTPLUG_ACTION_QUARANTINE, HOTPLUG_ACTION_RELOAD, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;

        pk_allow(&H, allow);
        collect_signals(&H, 50);
        clear_signals(&H);
        ASSERT(call_ok(&H, &e, "SetNodePolicy", "us", 1, "online_movable"));
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_SET_POLICY);
        ASSERT_STREQ(H.pk.last_detail_node, "1");
        expect_prop_s(NODE(1), NODE_IFACE, "Policy", "online_movable");
        expect_prop_s(NODE(1), NODE_IFACE, "PolicyOverride", "online_movable");
        expect_prop_s(NODE(0), NODE_IFACE, "Policy", "offline");
        collect_signals(&H, 200);
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(1)), 1);
        ASSERT(changed_property(&H, NODE(1), "Policy"));
        ASSERT(changed_property(&H, NODE(1), "PolicyOverride"));

        /* A runtime policy survives a reload of the configuration. */
        ASSERT(call_ok(&H, &e, "Reload", NULL));
        expect_prop_s(NODE(1), NODE_IFACE, "Policy", "online_movable");
        ASSERT(call_ok(&H, &e, "SetNodePolicy", "us", 1, "inherit"));
        expect_prop_s(NODE(1), NODE_IFACE, "Policy", "offline");
        expect_prop_s(NODE(1), NODE_IFACE, "PolicyOverride", "inherit");
        ASSERT(call_ok(&H, &e, "SetNodePolicy", "us", 1, ""));
        expect_prop_s(NODE(1), NODE_IFACE, "PolicyOverride", "");

        ASSERT(!call(&H, &e, "SetNodePolicy", "us", 1, "bogus"));
        expect_error(&e, SD_BUS_ERROR_INVALID_ARGS);
        ASSERT(!call(&H, &e, "SetNodePolicy", "us", 9, "online"));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);

        collect_signals(&H, 100);
        clear_signals(&H);
        ASSERT(call_ok(&H, &e, "QuarantineNode", "u", 1));
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_QUARANTINE);
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 1);
        {
                /* Persisted in the state directory (survives a restart). */
                char path[PATH_MAX], buf[64] = "";
                FILE *f;

                snprintf(path, sizeof(path), "%s/state/quarantine", H.dir);
                f = fopen(path, "re");
                ASSERT(f && fgets(buf, sizeof(buf), f));
                fclose(f);
                ASSERT_STREQ(buf, "1\n");
        }
        ASSERT(call_ok(&H, &e, "QuarantineNode", "u", 1)); /* idempotent: no second signal */
        collect_signals(&H, 200);
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(1)), 1);
        ASSERT(changed_property(&H, NODE(1), "Quarantined"));
        ASSERT(call_ok(&H, &e, "UnquarantineNode", "u", 1));
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 0);
        ASSERT(!call(&H, &e, "QuarantineNode", "u", 9));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);
        ASSERT(!call(&H, &e, "UnquarantineNode", "u", 9));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);

        /* The runtime policy reaches the policy engine: new memory on node 1 goes online_movable,
         * while the global policy (offline) keeps node 0's new memory offline, and quarantine wins. */
        ASSERT(call_ok(&H, &e, "SetNodePolicy", "us", 1, "online_movable"));
        ASSERT(call_ok(&H, &e, "SetNodePolicy", "us", 2, "online_movable"));
        ASSERT(call_ok(&H, &e, "QuarantineNode", "u", 2));
        harness_py(&H, "gentree.add_block(ROOT, 48, 1, state='offline', valid_zones='Movable Normal')\n"
                       "gentree.add_block(ROOT, 8, 0, state='offline', valid_zones='Normal Movable')\n"
                       "gentree.add_block(ROOT, 84, 2, state='offline', valid_zones='Movable', owner=('acpi', 'PNP0C80:01'))");
        harness_uevent(&H, UEVENT_MEMORY, UEVENT_ADD, 48);
        harness_uevent(&H, UEVENT_MEMORY, UEVENT_ADD, 8);
        harness_uevent(&H, UEVENT_MEMORY, UEVENT_ADD, 84);
        for (uint64_t end = now_ms() + 3000; prop_u(HOTPLUG_BUS_PATH, MGR, "NBlocks", 't') < 47; usleep(10 * 1000))
                ASSERT(now_ms() < end);
        usleep(100 * 1000);
        expect_file(STATE(48), "online_movable");
        expect_file(STATE(8), "offline\n");
        expect_file(STATE(84), "offline\n");
        sd_bus_error_free(&e);
}

typedef struct Finding {
        char verdict[16], code[32];
} Finding;

static size_t plan(uint32_t node, Finding *f, size_t max, uint64_t *to_migrate, uint64_t *available) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = call(&H, &e, "PlanRetire", "u", node);
        const char *v, *c, *msg;
        size_t n = 0;

        ASSERT(reply);
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(sss)"));
        while (sd_bus_message_read(reply, "(sss)", &v, &c, &msg) > 0) {
                printf("#   node %u: %s %s: %s\n", node, v, c, msg);
                ASSERT(n < max);
                snprintf(f[n].verdict, sizeof(f[n].verdict), "%s", v);
                snprintf(f[n].code, sizeof(f[n].code), "%s", c);
                n++;
        }
        ASSERT_OK(sd_bus_message_exit_container(reply));
        ASSERT_OK(sd_bus_message_read(reply, "tt", to_migrate, available));
        sd_bus_message_unref(reply);
        return n;
}

static bool has_finding(const Finding *f, size_t n, const char *verdict, const char *code) {
        for (size_t i = 0; i < n; i++)
                if (streq(f[i].verdict, verdict) && streq(f[i].code, code))
                        return true;
        return false;
}

static void test_plan_retire(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        Finding f[32];
        uint64_t need, avail;
        size_t n;

        n = plan(1, f, ELEMENTSOF(f), &need, &avail);
        ASSERT(has_finding(f, n, "blocker", "has-cpus"));
        ASSERT(has_finding(f, n, "blocker", "boot-memory"));
        ASSERT(has_finding(f, n, "warning", "kernel-zone"));
        ASSERT(need > 0);

        n = plan(2, f, ELEMENTSOF(f), &need, &avail);
        for (size_t i = 0; i < n; i++)
                ASSERT(!streq(f[i].verdict, "blocker"));
        ASSERT(has_finding(f, n, "ok", "acpi"));
        ASSERT(has_finding(f, n, "ok", "memory"));
        ASSERT(need > 0 && avail > need);

        n = plan(0, f, ELEMENTSOF(f), &need, &avail);
        ASSERT(has_finding(f, n, "blocker", "zone-none"));

        ASSERT(!call(&H, &e, "PlanRetire", "u", 7));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);
        ASSERT_EQ(pk_calls(&H), 0);
        sd_bus_error_free(&e);
}

static void test_retire_node(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_RETIRE_NODE, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *path, *state, *s;

        pk_allow(&H, allow);
        collect_signals(&H, 50);
        clear_signals(&H);

        /* A dry run: the preflight passes and nothing is written. */
        path = retire(2, HOTPLUG_RETIRE_DRY_RUN);
        ASSERT_STREQ(H.pk.last_detail_node, "2");
        state = wait_job(path);
        ASSERT_STREQ(state, "completed");
        expect_prop_s(path, JOB_IFACE, "Error", "");
        ASSERT_EQ(prop_u(path, JOB_IFACE, "Flags", 't'), HOTPLUG_RETIRE_DRY_RUN);
        s = prop_s(path, JOB_IFACE, "Result");
        ASSERT(strstr(s, "Dry run") && strstr(s, "Nothing was changed"));
        free(s);
        free(state);
        collect_signals(&H, 100);
        ASSERT_EQ(count_signals(&H, "JobNew", HOTPLUG_BUS_PATH), 1);
        ASSERT(changed_property(&H, path, "State"));
        ASSERT(changed_property(&H, HOTPLUG_BUS_PATH, "Jobs"));
        free(path);
        expect_file(STATE(64), "online\n");
        expect_file(STATE(80), "offline\n");

        /* The drain, without the eject: every online block of node 2 is written offline (in a
         * generated tree the write is what the "kernel" keeps), highest first, and the node is
         * quarantined. */
        path = retire(2, HOTPLUG_RETIRE_NO_EJECT);
        state = wait_job(path);
        ASSERT_STREQ(state, "completed");
        expect_prop_s(path, JOB_IFACE, "Error", "");
        s = prop_s(path, JOB_IFACE, "Result");
        printf("# %s\n", s);
        ASSERT(strstr(s, "Drained node 2: 16 blocks") && strstr(s, "not ejected"));
        free(s);
        ASSERT_EQ(prop_u(path, JOB_IFACE, "BlocksDone", 't'), 16);
        free(state);
        free(path);
        expect_file(STATE(64), "offline");     /* what the daemon wrote, no newline */
        expect_file(STATE(79), "offline");
        ASSERT_EQ(prop_u(HOTPLUG_NODE_PATH_PREFIX "/2", HOTPLUG_NODE_INTERFACE, "Quarantined", 'b'), 1);

        path = retire(1, 0);
        state = wait_job(path);
        ASSERT_STREQ(state, "failed");
        expect_prop_s(path, JOB_IFACE, "Error", HOTPLUG_ERROR_NODE_HAS_CPUS);
        free(state);
        free(path);

        ASSERT(!call(&H, &e, "RetireNode", "ut", 2, UINT64_C(0x80)));
        expect_error(&e, SD_BUS_ERROR_INVALID_ARGS);
        ASSERT(!call(&H, &e, "RetireNode", "ut", 9, UINT64_C(0)));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_NODE);

        /* A job already working on the node: Busy. */
        (void) harness_hanging_job(&H, 2);
        ASSERT(!call(&H, &e, "RetireNode", "ut", 2, UINT64_C(0)));
        expect_error(&e, HOTPLUG_ERROR_BUSY);
        sd_bus_error_free(&e);
}

static void test_jobs(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_RETIRE_NODE, HOTPLUG_ACTION_CANCEL_JOB, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply;
        char *path, *state, hang_path[HOTPLUG_PATH_MAX];
        const char *kind, *st, *result, *p;
        uint32_t id, node;
        double progress;
        unsigned hang;
        int rows = 0;

        pk_allow(&H, allow);
        path = retire(2, HOTPLUG_RETIRE_DRY_RUN);
        state = wait_job(path);
        free(state);

        reply = call(&H, &e, "ListJobs", NULL);
        ASSERT(reply);
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(usussdo)"));
        while (sd_bus_message_read(reply, "(usussdo)", &id, &kind, &node, &st, &result, &progress, &p) > 0) {
                ASSERT_EQ(id, 1);
                ASSERT_STREQ(kind, "retire-node");
                ASSERT_EQ(node, 2);
                ASSERT_STREQ(st, "completed");
                ASSERT(progress == 1.0);
                ASSERT_STREQ(p, path);
                rows++;
        }
        ASSERT_EQ(rows, 1);
        sd_bus_message_unref(reply);
        ASSERT_EQ(prop_u(path, JOB_IFACE, "Id", 'u'), 1);
        ASSERT_EQ(prop_u(path, JOB_IFACE, "Node", 'u'), 2);
        expect_prop_s(path, JOB_IFACE, "Kind", "retire-node");
        ASSERT(prop_u(path, JOB_IFACE, "StartTime", 't') > 0);

        /* Finished jobs cannot be cancelled; unknown ones do not exist. */
        ASSERT(!call(&H, &e, "CancelJob", "u", 1));
        expect_error(&e, HOTPLUG_ERROR_JOB_FINISHED);
        ASSERT(sd_bus_call_method(H.bus, HOTPLUG_BUS_NAME, path, JOB_IFACE, "Cancel", &e, NULL, NULL) < 0);
        expect_error(&e, HOTPLUG_ERROR_JOB_FINISHED);
        ASSERT(!call(&H, &e, "CancelJob", "u", 999));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_JOB);
        free(path);

        /* A running job: cancelled through the Manager and through the object. */
        hang = harness_hanging_job(&H, 1);
        for (uint64_t end = now_ms() + 2000; ; usleep(5000)) {
                char *s = prop_s(hotplug_job_path(hang, hang_path), JOB_IFACE, "State");
                bool running = streq(s, "running");
                free(s);
                if (running)
                        break;
                ASSERT(now_ms() < end);
        }
        ASSERT(call_ok(&H, &e, "CancelJob", "u", hang));
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_CANCEL_JOB);
        expect_prop_s(hang_path, JOB_IFACE, "State", "cancelled");
        expect_prop_s(hang_path, JOB_IFACE, "Error", HOTPLUG_ERROR_CANCELLED);
        hang = harness_hanging_job(&H, 1);
        usleep(50 * 1000);
        ASSERT_OK(sd_bus_call_method(H.bus, HOTPLUG_BUS_NAME, hotplug_job_path(hang, hang_path), JOB_IFACE, "Cancel", &e,
                                     NULL, NULL));
        expect_prop_s(hang_path, JOB_IFACE, "State", "cancelled");

        /* At most 32 final jobs linger: the oldest goes, with JobRemoved. */
        collect_signals(&H, 50);
        clear_signals(&H);
        for (int i = 0; i < 32; i++) {
                path = retire(2, HOTPLUG_RETIRE_DRY_RUN);
                free(wait_job(path));
                free(path);
        }
        collect_signals(&H, 200);
        ASSERT(count_signals(&H, "JobRemoved", HOTPLUG_BUS_PATH) >= 1);
        ASSERT(!call(&H, &e, "CancelJob", "u", 1));
        expect_error(&e, HOTPLUG_ERROR_NO_SUCH_JOB);
        sd_bus_error_free(&e);
}

static void test_reload(void) {
        static const char *const allow[] = { HOTPLUG_ACTION_RELOAD, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;

        pk_allow(&H, allow);
        collect_signals(&H, 50);
        clear_signals(&H);
        harness_write(&H, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=online_movable\n");
        ASSERT(call_ok(&H, &e, "Reload", NULL));
        ASSERT_STREQ(H.pk.last_action, HOTPLUG_ACTION_RELOAD);
        expect_prop_s(HOTPLUG_BUS_PATH, MGR, "Policy", "online_movable");
        expect_prop_s(NODE(0), NODE_IFACE, "Policy", "online_movable");
        collect_signals(&H, 200);
        ASSERT(changed_property(&H, HOTPLUG_BUS_PATH, "Policy"));
        ASSERT(changed_property(&H, NODE(0), "Policy"));

        harness_write(&H, "etc/hotplugd/hotplugd.conf", "[Online]\nPolicy=bogus\n");
        ASSERT(!call(&H, &e, "Reload", NULL));
        expect_error(&e, HOTPLUG_ERROR_INVALID_CONFIG);
        ASSERT(strstr(e.message, "hotplugd.conf:2"));
        expect_prop_s(HOTPLUG_BUS_PATH, MGR, "Policy", "online_movable");
        sd_bus_error_free(&e);
}

/* Denied means nothing changed; every change asks for its own action. */
static void test_polkit(void) {
        static const char *const quarantine[] = { HOTPLUG_ACTION_QUARANTINE, NULL };
        static const struct {
                const char *method, *action;
        } table[] = {
                { "OnlineBlocks", HOTPLUG_ACTION_ONLINE_BLOCKS },  { "OfflineBlocks", HOTPLUG_ACTION_OFFLINE_BLOCKS },
                { "SetNodePolicy", HOTPLUG_ACTION_SET_POLICY },    { "QuarantineNode", HOTPLUG_ACTION_QUARANTINE },
                { "UnquarantineNode", HOTPLUG_ACTION_QUARANTINE }, { "RetireNode", HOTPLUG_ACTION_RETIRE_NODE },
                { "CancelJob", HOTPLUG_ACTION_CANCEL_JOB },        { "Reload", HOTPLUG_ACTION_RELOAD },
        };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *c2 = NULL;
        unsigned job = harness_hanging_job(&H, 1);
        uint64_t t;

        pk_allow(&H, NULL);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                const char *method = table[i].method;

                if (streq(method, "OnlineBlocks"))
                        expect_blocks_error(method, (uint64_t[]) { 44 }, 1, "movable", SD_BUS_ERROR_ACCESS_DENIED);
                else if (streq(method, "OfflineBlocks"))
                        expect_blocks_error(method, (uint64_t[]) { 40 }, 1, NULL, SD_BUS_ERROR_ACCESS_DENIED);
                else {
                        if (streq(method, "SetNodePolicy"))
                                ASSERT(!call(&H, &e, method, "us", 1, "online"));
                        else if (streq(method, "RetireNode"))
                                ASSERT(!call(&H, &e, method, "ut", 2, UINT64_C(0)));
                        else if (streq(method, "CancelJob"))
                                ASSERT(!call(&H, &e, method, "u", job));
                        else if (streq(method, "Reload"))
                                ASSERT(!call(&H, &e, method, NULL));
                        else
                                ASSERT(!call(&H, &e, method, "u", 1));
                        expect_error(&e, SD_BUS_ERROR_ACCESS_DENIED);
                }
                ASSERT_STREQ(H.pk.last_action, table[i].action);
        }
        /* … and nothing changed. */
        expect_file(STATE(44), "offline\n");
        expect_file(STATE(40), "online\n");
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 0);
        expect_prop_s(NODE(1), NODE_IFACE, "PolicyOverride", "");
        expect_prop_s(hotplug_job_path(job, (char[HOTPLUG_PATH_MAX]) {}), JOB_IFACE, "State", "running");
        ASSERT_EQ(prop_u(HOTPLUG_BUS_PATH, MGR, "NOfflineBlocks", 't'), 8);

        /* A password would do: say so, and pass the caller's interactive flag on. */
        pk_set(&H, true, false);
        ASSERT_OK(sd_bus_set_allow_interactive_authorization(H.bus, true));
        ASSERT(!call(&H, &e, "QuarantineNode", "u", 1));
        expect_error(&e, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED);
        ASSERT_EQ(H.pk.last_flags, 1);
        ASSERT_OK(sd_bus_set_allow_interactive_authorization(H.bus, false));
        pk_set(&H, false, false);

        /* polkit takes its time (a person types a password): the daemon keeps serving. */
        pk_allow(&H, quarantine);
        pk_set(&H, false, true);
        ASSERT_OK(sd_bus_open_system(&c2));
        ASSERT_OK(sd_bus_message_new_method_call(c2, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, "QuarantineNode"));
        ASSERT_OK(sd_bus_message_append(m, "u", 1));
        ASSERT_OK(sd_bus_call_async(c2, NULL, m, on_reply_store, &reply, 0));
        ASSERT_OK(sd_bus_flush(c2));
        for (unsigned calls = pk_calls(&H), n = calls; n == calls; n = pk_calls(&H))
                usleep(5000);
        t = now_ms();
        m = sd_bus_message_unref(m);
        m = call(&H, &e, "ListNodes", NULL);
        ASSERT(m);
        m = sd_bus_message_unref(m);
        ASSERT(now_ms() - t < 1000);
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 0);
        pk_release(&H);
        wait_reply(c2, &reply);
        ASSERT(!sd_bus_message_is_method_error(reply, NULL));
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 1);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(c2);
        sd_bus_error_free(&e);
}

/* The caller leaves while polkit thinks: when polkit says yes, nothing may happen. */
static void test_polkit_disconnect(void) {
        static const char *const quarantine[] = { HOTPLUG_ACTION_QUARANTINE, NULL };
        sd_bus_message *m = NULL;
        sd_bus *c2 = NULL;

        pk_allow(&H, quarantine);
        pk_set(&H, false, true);
        ASSERT_OK(sd_bus_open_system(&c2));
        ASSERT_OK(sd_bus_message_new_method_call(c2, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, "QuarantineNode"));
        ASSERT_OK(sd_bus_message_append(m, "u", 1));
        ASSERT_OK(sd_bus_send(c2, m, NULL));
        ASSERT_OK(sd_bus_flush(c2));
        for (unsigned n = 0; n == 0; n = pk_calls(&H))
                usleep(5000);
        c2 = sd_bus_flush_close_unref(c2);
        usleep(200 * 1000);
        pk_release(&H);
        usleep(300 * 1000);
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "Quarantined", 'b'), 0);
        sd_bus_message_unref(m);
}

static void test_node_signals(void) {
        char path[PATH_MAX];

        collect_signals(&H, 50);
        clear_signals(&H);

        /* A burst of four onlined blocks: one PropertiesChanged for the node, not four. */
        harness_py(&H, "for i in range(44, 48):\n"
                       "    gentree.set_block_state(ROOT, i, 'online', zone='Movable', update=False)\n"
                       "gentree.write_zoneinfo(ROOT)");
        harness_uevents(&H, UEVENT_MEMORY, UEVENT_ONLINE, 44, 4);
        collect_signals(&H, 300);
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(1)), 1);
        ASSERT(changed_property(&H, NODE(1), "OnlineBlocks"));
        ASSERT(changed_property(&H, NODE(1), "OfflineBlocks"));
        ASSERT(changed_property(&H, NODE(1), "OnlineBlocksByZone"));
        ASSERT(changed_property(&H, NODE(1), "PresentPages"));
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", NODE(0)), 0);
        ASSERT_EQ(count_signals(&H, "PropertiesChanged", HOTPLUG_BUS_PATH), 1);
        ASSERT_EQ(prop_u(NODE(1), NODE_IFACE, "OnlineBlocks", 'u'), 16);

        /* A new node with memory: NodeAdded, and the Nodes property. */
        clear_signals(&H);
        harness_py(&H, "gentree.add_node(ROOT, 3)\n"
                       "gentree.add_block(ROOT, 96, 3, state='offline', owner=('acpi', 'PNP0C80:07'))");
        harness_uevent(&H, UEVENT_NODE, UEVENT_ADD, 3);
        harness_uevent(&H, UEVENT_MEMORY, UEVENT_ADD, 96);
        collect_signals(&H, 300);
        ASSERT_EQ(count_signals(&H, "NodeAdded", HOTPLUG_BUS_PATH), 1);
        ASSERT(changed_property(&H, HOTPLUG_BUS_PATH, "Nodes"));
        ASSERT_EQ(prop_u(NODE(3), NODE_IFACE, "Blocks", 'u'), 1);

        /* Gone for good (not even possible any more): NodeRemoved. */
        clear_signals(&H);
        harness_py(&H, "gentree.remove_block(ROOT, 96)\n"
                       "gentree.remove_node(ROOT, 3, force=True)\n"
                       "open(ROOT + '/sys/devices/system/node/possible', 'w').write('0-2\\n')");
        harness_uevent(&H, UEVENT_MEMORY, UEVENT_REMOVE, 96);
        harness_uevent(&H, UEVENT_NODE, UEVENT_REMOVE, 3);
        collect_signals(&H, 300);
        ASSERT_EQ(count_signals(&H, "NodeRemoved", HOTPLUG_BUS_PATH), 1);
        snprintf(path, sizeof(path), "%s", NODE(3));
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                uint32_t v;
                ASSERT(sd_bus_get_property_trivial(H.bus, HOTPLUG_BUS_NAME, path, NODE_IFACE, "Id", &e, 'u', &v) < 0);
                expect_error(&e, SD_BUS_ERROR_UNKNOWN_OBJECT);
                sd_bus_error_free(&e);
        }
}

/* The error table, and the names not produced by the other scenarios. */
static void test_errors(void) {
        static const char insufficient[] =
                "{\"block_size\": \"128M\", \"nodes\": [{\"id\": 0, \"cpus\": [0]}, {\"id\": 2, \"cpus\": []}],"
                " \"blocks\": [{\"start\": 1, \"count\": 3, \"node\": 0, \"state\": \"online\", \"zone\": \"DMA32\"},"
                "  {\"start\": 64, \"count\": 64, \"node\": 2, \"state\": \"online\", \"zone\": \"Movable\", \"owner\": \"acpi\"}]}";
        static const char *const allow[] = { HOTPLUG_ACTION_RETIRE_NODE, HOTPLUG_ACTION_OFFLINE_BLOCKS, NULL };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *c2 = NULL;
        Finding f[32];
        uint64_t need, avail, block;
        char *path, *state, dir[PATH_MAX];
        size_t n;
        int fd;

        for (const sd_bus_error_map *p = hotplug_bus_error_map; p->name; p++) {
                sd_bus_error x = SD_BUS_ERROR_NULL;

                ASSERT(startswith(p->name, HOTPLUG_ERROR_PREFIX));
                ASSERT_EQ(sd_bus_error_set(&x, p->name, "x"), -p->code);
                ASSERT_EQ(sd_bus_error_get_errno(&x), p->code);
                ASSERT_EQ(hotplug_bus_error_to_errno(p->name), p->code);
                sd_bus_error_free(&x);
        }
        harness_stop(&H);
        harness_start(&H, insufficient);
        pk_allow(&H, allow);

        n = plan(2, f, ELEMENTSOF(f), &need, &avail);
        ASSERT(has_finding(f, n, "blocker", "insufficient-memory"));
        ASSERT(need > avail);
        path = retire(2, 0);
        state = wait_job(path);
        ASSERT_STREQ(state, "failed");
        expect_prop_s(path, JOB_IFACE, "Error", HOTPLUG_ERROR_INSUFFICIENT_MEMORY);
        free(state);
        free(path);

        /* A failure the kernel has no special name for. */
        snprintf(dir, sizeof(dir), "%s/" STATE(65), H.root);
        ASSERT(unlink(dir) == 0 && mkdir(dir, 0755) == 0);
        expect_blocks_error("OfflineBlocks", (uint64_t[]) { 65 }, 1, NULL, HOTPLUG_ERROR_FAILED);

        /* The daemon stops while an offline is stuck: the caller is told, not left hanging. */
        fd = make_stuck(STATE(66));
        block = 66;
        ASSERT_OK(sd_bus_open_system(&c2));
        ASSERT_OK(sd_bus_message_new_method_call(c2, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, MGR, "OfflineBlocks"));
        ASSERT_OK(sd_bus_message_append_array(m, 't', &block, sizeof(block)));
        ASSERT_OK(sd_bus_call_async(c2, NULL, m, on_reply_store, &reply, 0));
        ASSERT_OK(sd_bus_flush(c2));
        usleep(300 * 1000);
        harness_stop_manager(&H);
        wait_reply(c2, &reply);
        printf("# %s: %s\n", sd_bus_message_get_error(reply) ? sd_bus_message_get_error(reply)->name : "success",
               sd_bus_message_get_error(reply) ? sd_bus_message_get_error(reply)->message : "");
        ASSERT(sd_bus_message_is_method_error(reply, HOTPLUG_ERROR_CANCELLED));
        close(fd);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(c2);
        sd_bus_error_free(&e);
}

static const struct {
        const char *name;
        void (*test)(void);
} tests[] = {
        { "properties", test_properties },
        { "introspection", test_introspection },
        { "list", test_list },
        { "online-blocks", test_online_blocks },
        { "offline-blocks", test_offline_blocks },
        { "worker", test_worker },
        { "policy", test_policy },
        { "plan-retire", test_plan_retire },
        { "retire-node", test_retire_node },
        { "jobs", test_jobs },
        { "reload", test_reload },
        { "polkit", test_polkit },
        { "polkit-disconnect", test_polkit_disconnect },
        { "node-signals", test_node_signals },
        { "errors", test_errors },
};

int main(int argc, char *argv[]) {
        if (argc == 2 && streq(argv[1], "--list")) {
                for (size_t i = 0; i < ELEMENTSOF(tests); i++)
                        printf("%s\n", tests[i].name);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(tests); i++)
                if (argc == 1 || streq(argv[1], tests[i].name)) {
                        harness_start(&H, NULL);
                        tests[i].test();
                        harness_stop(&H);
                        printf("ok %d - %s\n", ++tests_run, tests[i].name);
                }
        return 0;
}
