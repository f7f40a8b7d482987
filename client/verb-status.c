/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* verb-status.c — status, list-nodes, show-node. */
#include <inttypes.h>

#include "hotplugctl.h"

#define PAGE_BYTES UINT64_C(4096)

static int parse_path_ids(sd_bus_message *m, void *userdata, const char *prefix) {
        struct {
                uint32_t ids[1024];
                size_t n;
        } *l = userdata;
        const char *path;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "o");
        while (r >= 0 && (r = sd_bus_message_read(m, "o", &path)) > 0) {
                unsigned id;
                if (hotplug_path_parse_id(path, prefix, &id) >= 0 && l->n < ELEMENTSOF(l->ids))
                        l->ids[l->n++] = id;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

typedef struct IdList {
        uint32_t ids[1024];
        size_t n;
} IdList;

static int parse_nodes(sd_bus_message *m, void *userdata) {
        return parse_path_ids(m, userdata, HOTPLUG_NODE_PATH_PREFIX);
}

static int parse_jobs(sd_bus_message *m, void *userdata) {
        return parse_path_ids(m, userdata, HOTPLUG_JOB_PATH_PREFIX);
}

static int parse_au(sd_bus_message *m, void *userdata) {
        IdList *l = userdata;
        const void *p;
        size_t size;
        int r;

        r = sd_bus_message_read_array(m, 'u', &p, &size);
        if (r < 0)
                return r;
        l->n = MIN(size / sizeof(uint32_t), ELEMENTSOF(l->ids));
        memcpy(l->ids, p, l->n * sizeof(uint32_t));
        return 0;
}

int print_no_such_node(sd_bus *bus, unsigned node) {
        IdList nodes = {};
        const PropertyMap map[] = { { "Nodes", NULL, &nodes, parse_nodes }, {} };
        char buf[256];

        if (get_all_properties(bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, map) != 0)
                return EXIT_FAIL;
        fprintf(stderr, "Node %u does not exist (nodes: %s).", node, format_id_list(buf, sizeof(buf), nodes.ids, nodes.n));
        if (arg_verbose)
                fputs(" [" HOTPLUG_ERROR_NO_SUCH_NODE "]", stderr);
        fputc('\n', stderr);
        return EXIT_FAIL;
}

typedef struct Conflict {
        char kind[32], source[256], detail[256];
} Conflict;

typedef struct Conflicts {
        Conflict items[16];
        size_t n;
} Conflicts;

static int parse_conflicts(sd_bus_message *m, void *userdata) {
        Conflicts *c = userdata;
        const char *kind, *source, *detail;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(sss)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(sss)", &kind, &source, &detail)) > 0)
                if (c->n < ELEMENTSOF(c->items)) {
                        snprintf(c->items[c->n].kind, sizeof(c->items[c->n].kind), "%s", kind);
                        snprintf(c->items[c->n].source, sizeof(c->items[c->n].source), "%s", source);
                        snprintf(c->items[c->n].detail, sizeof(c->items[c->n].detail), "%s", detail);
                        c->n++;
                }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int verb_status(sd_bus *bus, int argc, char **argv) {
        _cleanup_free_ char *version = NULL, *policy = NULL, *auto_online = NULL;
        uint64_t block_size = 0, blocks = 0, online = 0, offline = 0;
        int vm = 0;
        IdList nodes = {}, jobs = {};
        Conflicts conflicts = {};
        const PropertyMap map[] = {
                { "Version", "s", &version },
                { "Policy", "s", &policy },
                { "KernelAutoOnline", "s", &auto_online },
                { "VirtualMachine", "b", &vm },
                { "BlockSize", "t", &block_size },
                { "NBlocks", "t", &blocks },
                { "NOnlineBlocks", "t", &online },
                { "NOfflineBlocks", "t", &offline },
                { "Nodes", NULL, &nodes, parse_nodes },
                { "Jobs", NULL, &jobs, parse_jobs },
                { "Conflicts", NULL, &conflicts, parse_conflicts },
                {},
        };
        char a[32], b[32], c[32], list[256];
        int r;

        if (arg_json != JSON_OFF)
                return print_all_properties_json(bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE);
        r = get_all_properties(bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, map);
        if (r != 0)
                return r;
        printf("      Daemon: hotplugd %s\n", version ?: "?");
        printf("      Policy: %s%s\n", policy ?: "?",
               policy && streq(policy, "auto") ? (vm ? " (virtual machine: online)" : " (bare metal: online_movable)") : "");
        printf("  Block size: %s\n", format_bytes(a, sizeof(a), block_size));
        printf("      Memory: %" PRIu64 " blocks, %s online, %s offline (%" PRIu64 " online, %" PRIu64 " offline blocks)\n",
               blocks, format_bytes(b, sizeof(b), online * block_size), format_bytes(c, sizeof(c), offline * block_size),
               online, offline);
        printf("       Nodes: %zu (%s)\n", nodes.n, format_id_list(list, sizeof(list), nodes.ids, nodes.n));
        printf(" Auto-online: %s (kernel)\n", auto_online && *auto_online ? auto_online : "unknown");
        if (conflicts.n == 0)
                printf("   Conflicts: none\n");
        for (size_t i = 0; i < conflicts.n; i++)
                printf("%s %s (%s: %s)\n", i == 0 ? "   Conflicts:" : "             ", conflicts.items[i].kind,
                       conflicts.items[i].source, conflicts.items[i].detail);
        printf("        Jobs: %zu%s\n", jobs.n, jobs.n ? " (see hotplugctl jobs)" : "");
        return EXIT_OK;
}

int verb_list_nodes(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        static const char *const headers[] = { "NODE", "ONLINE", "CPUS", "BLOCKS", "ONLINE-BLOCKS", "OFFLINE-BLOCKS",
                                               "MEMORY", "POLICY", "QUARANTINED", "CAN-OFFLINE", "BLOCKERS" };
        Json j;
        size_t n = 0;
        int r;

        r = call_manager(bus, "ListNodes", &reply, 0, NULL);
        if (r != 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_init(&j, stdout);
                json_begin_array(&j);
        } else {
                t = table_new(headers, ELEMENTSOF(headers));
                if (!t)
                        return print_error(EXIT_FAIL, "Out of memory.");
                for (size_t c = 2; c <= 6; c++)
                        table_set_right(t, c);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ubbuuuuttsbbas)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "ubbuuuuttsbbas")) > 0) {
                uint32_t id, cpus, blocks, on, off;
                int online, has_memory, quarantined, can_offline;
                uint64_t spanned, present;
                const char *policy, *blocker;
                char blockers[256] = "", size[32];
                size_t l = 0;

                r = sd_bus_message_read(reply, "ubbuuuuttsbb", &id, &online, &has_memory, &cpus, &blocks, &on, &off,
                                        &spanned, &present, &policy, &quarantined, &can_offline);
                if (r < 0)
                        break;
                if (arg_json != JSON_OFF) {
                        json_begin_object(&j);
                        json_key(&j, "node"); json_uint(&j, id);
                        json_key(&j, "online"); json_bool(&j, online);
                        json_key(&j, "has_memory"); json_bool(&j, has_memory);
                        json_key(&j, "present_cpus"); json_uint(&j, cpus);
                        json_key(&j, "blocks"); json_uint(&j, blocks);
                        json_key(&j, "online_blocks"); json_uint(&j, on);
                        json_key(&j, "offline_blocks"); json_uint(&j, off);
                        json_key(&j, "spanned_pages"); json_uint(&j, spanned);
                        json_key(&j, "present_pages"); json_uint(&j, present);
                        json_key(&j, "policy"); json_string(&j, policy);
                        json_key(&j, "quarantined"); json_bool(&j, quarantined);
                        json_key(&j, "can_offline"); json_bool(&j, can_offline);
                        json_key(&j, "offline_blockers");
                        json_begin_array(&j);
                }
                r = sd_bus_message_enter_container(reply, 'a', "s");
                while (r >= 0 && (r = sd_bus_message_read(reply, "s", &blocker)) > 0) {
                        if (arg_json != JSON_OFF)
                                json_string(&j, blocker);
                        else
                                l += (size_t) snprintf(blockers + l, sizeof(blockers) - MIN(l, sizeof(blockers)), "%s%s",
                                                       l ? "," : "", blocker);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                if (arg_json != JSON_OFF) {
                        json_end_array(&j);
                        json_end_object(&j);
                } else {
                        table_addf(t, "%" PRIu32, id);
                        table_add(t, yes_no(online));
                        table_addf(t, "%" PRIu32, cpus);
                        table_addf(t, "%" PRIu32, blocks);
                        table_addf(t, "%" PRIu32, on);
                        table_addf(t, "%" PRIu32, off);
                        table_add(t, format_bytes(size, sizeof(size), present * PAGE_BYTES));
                        table_add(t, policy);
                        table_add(t, yes_no(quarantined));
                        table_add(t, yes_no(can_offline));
                        table_add(t, l ? blockers : "-");
                }
                n++;
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the node list: %s.", strerror(-r));
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
                return EXIT_OK;
        }
        table_print(t, stdout);
        if (!arg_no_legend)
                printf("\n%zu node%s listed.\n", n, n == 1 ? "" : "s");
        return EXIT_OK;
}

typedef struct ZoneCounts {
        char text[256];
} ZoneCounts;

static int parse_by_zone(sd_bus_message *m, void *userdata) {
        ZoneCounts *z = userdata;
        const char *zone;
        uint32_t n;
        size_t l = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{su}");
        while (r >= 0 && (r = sd_bus_message_read(m, "{su}", &zone, &n)) > 0)
                l += (size_t) snprintf(z->text + l, sizeof(z->text) - MIN(l, sizeof(z->text)), "%s%s %" PRIu32,
                                       l ? ", " : "", zone, n);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int parse_hugepages(sd_bus_message *m, void *userdata) {
        ZoneCounts *z = userdata;
        uint64_t size, nr, free_pages;
        size_t l = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(ttt)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(ttt)", &size, &nr, &free_pages)) > 0)
                l += (size_t) snprintf(z->text + l, sizeof(z->text) - MIN(l, sizeof(z->text)),
                                       "%s%" PRIu64 " of %" PRIu64 " kB (%" PRIu64 " free)", l ? ", " : "", nr, size, free_pages);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int parse_strv(sd_bus_message *m, void *userdata) {
        ZoneCounts *z = userdata;
        const char *s;
        size_t l = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read(m, "s", &s)) > 0)
                l += (size_t) snprintf(z->text + l, sizeof(z->text) - MIN(l, sizeof(z->text)), "%s%s", l ? ", " : "", s);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int verb_show_node(sd_bus *bus, int argc, char **argv) {
        _cleanup_free_ char *policy = NULL, *override = NULL;
        uint32_t id = 0, blocks = 0, online_blocks = 0, offline_blocks = 0;
        uint64_t spanned = 0, present = 0, managed = 0;
        int online = 0, has_memory = 0, quarantined = 0, can_offline = 0;
        IdList present_cpus = {}, online_cpus = {};
        ZoneCounts by_zone = {}, hugepages = {}, blockers = {};
        const PropertyMap map[] = {
                { "Id", "u", &id },
                { "Online", "b", &online },
                { "HasMemory", "b", &has_memory },
                { "Blocks", "u", &blocks },
                { "OnlineBlocks", "u", &online_blocks },
                { "OfflineBlocks", "u", &offline_blocks },
                { "SpannedPages", "t", &spanned },
                { "PresentPages", "t", &present },
                { "ManagedPages", "t", &managed },
                { "Policy", "s", &policy },
                { "PolicyOverride", "s", &override },
                { "Quarantined", "b", &quarantined },
                { "CanOffline", "b", &can_offline },
                { "PresentCPUs", NULL, &present_cpus, parse_au },
                { "OnlineCPUs", NULL, &online_cpus, parse_au },
                { "OnlineBlocksByZone", NULL, &by_zone, parse_by_zone },
                { "HugePages", NULL, &hugepages, parse_hugepages },
                { "OfflineBlockers", NULL, &blockers, parse_strv },
                {},
        };
        char path[HOTPLUG_PATH_MAX], a[32], b[256], c[256];
        unsigned node;
        int r;

        if (parse_uint(argv[1], &node) < 0)
                return print_error(EXIT_USAGE, "Invalid node '%s': expected a node number.", argv[1]);
        hotplug_node_path(node, path);
        if (arg_json != JSON_OFF)
                return print_all_properties_json(bus, path, HOTPLUG_NODE_INTERFACE);
        r = get_all_properties(bus, path, HOTPLUG_NODE_INTERFACE, map);
        if (r != 0)
                return r;
        printf("Node %" PRIu32 "\n", id);
        printf("        Online: %s\n", yes_no(online));
        printf("        Memory: %s in %" PRIu32 " blocks: %" PRIu32 " online%s%s%s, %" PRIu32 " offline\n",
               format_bytes(a, sizeof(a), present * PAGE_BYTES), blocks, online_blocks, by_zone.text[0] ? " (" : "",
               by_zone.text, by_zone.text[0] ? ")" : "", offline_blocks);
        printf("         Pages: %" PRIu64 " spanned, %" PRIu64 " present, %" PRIu64 " managed\n", spanned, present, managed);
        printf("          CPUs: %s present, %s online\n", format_id_list(b, sizeof(b), present_cpus.ids, present_cpus.n),
               format_id_list(c, sizeof(c), online_cpus.ids, online_cpus.n));
        printf("    Huge pages: %s\n", hugepages.text[0] ? hugepages.text : "none");
        printf("        Policy: %s%s\n", policy ?: "?", override && *override ? " (set at runtime)" : "");
        printf("   Quarantined: %s\n", yes_no(quarantined));
        printf("   Can offline: %s%s%s%s\n", yes_no(can_offline), blockers.text[0] ? " (" : "", blockers.text,
               blockers.text[0] ? ")" : "");
        return EXIT_OK;
}
