/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* verb-blocks.c — list-blocks, online-blocks, offline-blocks, and the BLOCKS syntax. */
#include <inttypes.h>

#include "hotplugctl.h"

#define OFFLINE_TIMEOUT_PER_BLOCK_USEC (UINT64_C(125) * 1000 * 1000)  /* the daemon gives up after 120 s */
#define ONLINE_TIMEOUT_PER_BLOCK_USEC (UINT64_C(35) * 1000 * 1000)

static int parse_u64(const char *s, const char *end, uint64_t *ret) {
        char buf[32], *e;
        size_t l = (size_t) (end - s);
        int base = 10;

        if (l == 0 || l >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, l);
        buf[l] = 0;
        if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))
                base = 16;
        else if (buf[0] < '0' || buf[0] > '9')
                return -EINVAL;
        errno = 0;
        *ret = strtoull(buf, &e, base);
        return errno || *e ? -EINVAL : 0;
}

/* "12,14-20" (block numbers) or "0x100000000-0x17fffffff" (physical addresses, block-aligned),
 * mixed freely, into a list of block indexes. */
static int parse_blocks(const char *spec, uint64_t block_size, uint64_t **ret, size_t *ret_n) {
        _cleanup_free_ uint64_t *list = NULL;
        size_t n = 0, allocated = 0;
        const char *p = spec;

        while (*p) {
                const char *comma = strchr(p, ','), *end = comma ?: p + strlen(p), *dash;
                uint64_t a, b;
                bool physical = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');

                dash = memchr(p, '-', (size_t) (end - p));
                if (parse_u64(p, dash ?: end, &a) < 0 || (dash && parse_u64(dash + 1, end, &b) < 0))
                        return print_error(-EINVAL, "Invalid block range '%.*s': expected N, N-M or 0xSTART-0xEND.",
                                           (int) (end - p), p);
                if (!dash)
                        b = a;
                if (physical) {
                        if (a % block_size != 0 || (dash && (b + 1) % block_size != 0))
                                return print_error(-EINVAL, "Physical range '%.*s' is not aligned to the block size (0x%" PRIx64 ").",
                                                   (int) (end - p), p, block_size);
                        a /= block_size;
                        b = dash ? b / block_size : a;
                }
                if (b < a)
                        return print_error(-EINVAL, "Invalid block range '%.*s': the end is before the start.", (int) (end - p), p);
                if (b - a > (UINT64_C(1) << 24))
                        return print_error(-EINVAL, "Block range '%.*s' is implausibly large.", (int) (end - p), p);
                for (uint64_t i = a; i <= b; i++) {
                        if (n >= allocated) {
                                size_t k = allocated ? allocated * 2 : 64;
                                uint64_t *q = realloc(list, k * sizeof(uint64_t));
                                if (!q)
                                        return print_error(-ENOMEM, "Out of memory.");
                                list = q;
                                allocated = k;
                        }
                        list[n++] = i;
                }
                p = comma ? comma + 1 : end;
        }
        if (n == 0)
                return print_error(-EINVAL, "No memory blocks given.");
        *ret = list;
        list = NULL;
        *ret_n = n;
        return 0;
}

int verb_list_blocks(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t block_size, online = 0, offline = 0;
        char a[32], b[32];
        Json j;
        FILE *f = stdout;
        int r;

        r = get_property_u64(bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, "BlockSize", 't', &block_size);
        if (r != 0)
                return r;
        /* --all: runs of identical blocks, expanded here into a row per block; 65,536 rows as
         * ListBlocks' per-block structs cost the daemon, dbus-daemon and us 3x more (bench/run-all.py). */
        r = call_manager(bus, arg_all ? "ListBlockRuns" : "ListBlockRanges", &reply, 0, "i", (int32_t) arg_node);
        if (r != 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_init(&j, f);
                json_begin_array(&j);
        } else if (!arg_no_legend)
                fprintf(f, arg_all ? "%-6s %-37s %-13s %4s %-7s %-20s %-10s %s\n" : "%-37s %6s %-13s %4s %-7s %-10s %s\n",
                        arg_all ? "BLOCK" : "RANGE", arg_all ? "RANGE" : "SIZE", "STATE", "NODE", "ZONE",
                        arg_all ? "VALID-ZONES" : "OWNER", arg_all ? "OWNER" : "BLOCKS", arg_all ? "DEVICE" : "");

        if (arg_all) {
                r = sd_bus_message_enter_container(reply, 'a', "(ttsissss)");
                while (r >= 0) {
                        const char *state, *zone, *valid, *owner, *device;
                        uint64_t first, count;
                        int32_t node;

                        r = sd_bus_message_read(reply, "(ttsissss)", &first, &count, &state, &node, &zone, &valid, &owner, &device);
                        if (r <= 0)
                                break;
                        if (streq(state, "offline"))
                                offline += count;
                        else
                                online += count;
                        for (uint64_t i = first; i < first + count; i++) {
                                if (arg_json != JSON_OFF) {
                                        json_begin_object(&j);
                                        json_key(&j, "block"); json_uint(&j, i);
                                        json_key(&j, "start"); json_uint(&j, i * block_size);
                                        json_key(&j, "end"); json_uint(&j, (i + 1) * block_size - 1);
                                        json_key(&j, "state"); json_string(&j, state);
                                        json_key(&j, "node"); json_int(&j, node);
                                        json_key(&j, "zone"); json_string(&j, zone);
                                        json_key(&j, "valid_zones"); json_string(&j, valid);
                                        json_key(&j, "owner"); json_string(&j, owner);
                                        json_key(&j, "device"); device[0] ? json_string(&j, device) : json_null(&j);
                                        json_end_object(&j);
                                } else
                                        fprintf(f, "%-6" PRIu64 " 0x%016" PRIx64 "-0x%016" PRIx64 " %-13s %4" PRIi32 " %-7s %-20s %-10s %s\n",
                                                i, i * block_size, (i + 1) * block_size - 1, state, node, zone, valid, owner, device);
                        }
                }
        } else {
                r = sd_bus_message_enter_container(reply, 'a', "(ttsiss)");
                while (r >= 0) {
                        const char *state, *zone, *owner;
                        uint64_t first, count;
                        int32_t node;
                        char blocks[48];

                        r = sd_bus_message_read(reply, "(ttsiss)", &first, &count, &state, &node, &zone, &owner);
                        if (r <= 0)
                                break;
                        if (streq(state, "offline"))
                                offline += count;
                        else
                                online += count;
                        if (arg_json != JSON_OFF) {
                                json_begin_object(&j);
                                json_key(&j, "start"); json_uint(&j, first * block_size);
                                json_key(&j, "end"); json_uint(&j, (first + count) * block_size - 1);
                                json_key(&j, "size"); json_uint(&j, count * block_size);
                                json_key(&j, "state"); json_string(&j, state);
                                json_key(&j, "node"); json_int(&j, node);
                                json_key(&j, "zone"); json_string(&j, zone);
                                json_key(&j, "owner"); json_string(&j, owner);
                                json_key(&j, "first_block"); json_uint(&j, first);
                                json_key(&j, "blocks"); json_uint(&j, count);
                                json_end_object(&j);
                                continue;
                        }
                        if (count == 1)
                                snprintf(blocks, sizeof(blocks), "%" PRIu64, first);
                        else
                                snprintf(blocks, sizeof(blocks), "%" PRIu64 "-%" PRIu64, first, first + count - 1);
                        fprintf(f, "0x%016" PRIx64 "-0x%016" PRIx64 " %6s %-13s %4" PRIi32 " %-7s %-10s %s\n", first * block_size,
                                (first + count) * block_size - 1, format_bytes(a, sizeof(a), count * block_size), state, node,
                                zone, owner, blocks);
                }
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the block list: %s.", strerror(-r));
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
        } else if (!arg_no_legend) {
                fprintf(f, "\nMemory block size:    %s\n", format_bytes(a, sizeof(a), block_size));
                fprintf(f, "Total online memory:  %s\n", format_bytes(a, sizeof(a), online * block_size));
                fprintf(f, "Total offline memory: %s\n", format_bytes(b, sizeof(b), offline * block_size));
        }
        return EXIT_OK;
}

static int change_blocks(sd_bus *bus, const char *spec, bool offline) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ uint64_t *blocks = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t block_size;
        size_t n = 0, n_failed = 0, n_ok = 0;
        Json j;
        int r;

        r = get_property_u64(bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, "BlockSize", 't', &block_size);
        if (r != 0)
                return r;
        if (block_size == 0)
                return print_error(EXIT_FAIL, "hotplugd reports a block size of 0.");
        if (parse_blocks(spec, block_size, &blocks, &n) < 0)
                return EXIT_USAGE;

        r = sd_bus_message_new_method_call(bus, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE,
                                           offline ? "OfflineBlocks" : "OnlineBlocks");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 't', blocks, n * sizeof(uint64_t));
        if (r >= 0 && !offline)
                r = sd_bus_message_append(m, "s", arg_zone);
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to build the call: %s.", strerror(-r));
        polkit_agent_open();
        /* Offlining migrates pages and may take long: wait as long as the daemon may take, plus
         * the time a person needs for a password. */
        r = sd_bus_call(bus, m, (uint64_t) n * (offline ? OFFLINE_TIMEOUT_PER_BLOCK_USEC : ONLINE_TIMEOUT_PER_BLOCK_USEC) +
                                UINT64_C(300) * 1000 * 1000, &error, &reply);
        polkit_agent_close();
        if (r < 0) {
                int code = print_bus_error(&error, r, offline ? "Failed to offline memory" : "Failed to online memory");
                sd_bus_error_free(&error);
                return code;
        }

        if (arg_json != JSON_OFF) {
                json_init(&j, stdout);
                json_begin_array(&j);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(tss)");
        while (r >= 0) {
                const char *name, *message;
                uint64_t block;

                r = sd_bus_message_read(reply, "(tss)", &block, &name, &message);
                if (r <= 0)
                        break;
                if (name[0])
                        n_failed++;
                else
                        n_ok++;
                if (arg_json != JSON_OFF) {
                        json_begin_object(&j);
                        json_key(&j, "block"); json_uint(&j, block);
                        json_key(&j, "ok"); json_bool(&j, !name[0]);
                        json_key(&j, "error"); name[0] ? json_string(&j, name) : json_null(&j);
                        json_key(&j, "message"); json_string(&j, message);
                        json_end_object(&j);
                } else if (name[0]) {
                        fputs(message, stderr);
                        if (arg_verbose)
                                fprintf(stderr, " [%s]", name);
                        fputc('\n', stderr);
                } else if (arg_verbose)
                        printf("%s\n", message);
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the results: %s.", strerror(-r));
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
        } else if (!arg_quiet && n_failed > 0)
                fprintf(stderr, "%zu of %zu memory blocks %s; %zu failed.\n", n_ok, n_ok + n_failed,
                        offline ? "offline" : "online", n_failed);
        return n_failed == 0 ? EXIT_OK : n_ok > 0 ? EXIT_PARTIAL : EXIT_FAIL;
}

int verb_online_blocks(sd_bus *bus, int argc, char **argv) {
        return change_blocks(bus, argv[1], false);
}

int verb_offline_blocks(sd_bus *bus, int argc, char **argv) {
        return change_blocks(bus, argv[1], true);
}
