/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl.c — the command line, the verb table and the bus connection of hotplugctl. */
#include <getopt.h>
#include <stdarg.h>
#include <unistd.h>

#include "config-build.h"
#include "hotplugctl.h"

JsonMode arg_json = JSON_OFF;
bool arg_no_pager;
bool arg_no_legend;
bool arg_ask_password = true;
bool arg_quiet;
bool arg_verbose;
bool arg_all;
bool arg_no_block;
bool arg_dry_run;
bool arg_no_eject;
bool arg_offline_cpus;
int arg_node = -1;
const char *arg_zone = "auto";
static const char *arg_host;
static const char *arg_machine;

typedef struct Verb {
        const char *name;
        int min_args, max_args;         /* positional arguments after the verb */
        VerbFunction function;
        bool pager;
} Verb;

static const Verb verbs[] = {
        { "status", 0, 0, verb_status, true },
        { "list-nodes", 0, 0, verb_list_nodes, true },
        { "show-node", 1, 1, verb_show_node, true },
        { "list-blocks", 0, 0, verb_list_blocks, true },
        { "online-blocks", 1, 1, verb_online_blocks, false },
        { "offline-blocks", 1, 1, verb_offline_blocks, false },
        { "set-policy", 2, 2, verb_set_policy, false },
        { "quarantine", 1, 1, verb_quarantine, false },
        { "unquarantine", 1, 1, verb_quarantine, false },
        { "plan-retire", 1, 1, verb_plan_retire, true },
        { "retire-node", 1, 1, verb_retire_node, false },
        { "jobs", 0, 0, verb_jobs, true },
        { "cancel", 1, 1, verb_cancel, false },
        { "monitor", 0, 0, verb_monitor, false },
        { "reload", 0, 0, verb_reload, false },
};

static void help(void) {
        printf("hotplugctl [OPTIONS...] COMMAND ...\n\n"
               "Query and control hotplugd, the memory and NUMA node hotplug daemon.\n\n"
               "Commands:\n"
               "  status                          Show the daemon's summary\n"
               "  list-nodes                      List NUMA nodes\n"
               "  show-node NODE                  Show everything about one node\n"
               "  list-blocks [--node N] [--all]  List memory as ranges (or every block)\n"
               "  online-blocks BLOCKS [--zone Z] Online memory blocks (Z: movable|kernel|auto)\n"
               "  offline-blocks BLOCKS           Offline memory blocks\n"
               "  set-policy NODE POLICY          Set a node's online policy until restart\n"
               "                                  (POLICY \"default\" returns to the configuration)\n"
               "  quarantine NODE                 Keep new memory on NODE offline\n"
               "  unquarantine NODE               Undo quarantine\n"
               "  plan-retire NODE                Check whether NODE can be retired\n"
               "  retire-node NODE                Retire NODE: drain, eject, verify\n"
               "  jobs                            List jobs\n"
               "  cancel JOB                      Cancel a job\n"
               "  monitor                         Print node, block and job changes as they happen\n"
               "  reload                          Reload the configuration\n\n"
               "BLOCKS: block numbers and ranges (\"12,14-20\") or physical address ranges\n"
               "(\"0x100000000-0x17fffffff\").\n\n"
               "Options:\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "  -H --host=[USER@]HOST  Operate on a remote host (over ssh)\n"
               "  -M --machine=CONTAINER Operate on a local container\n"
               "  -j                     Same as --json=pretty on a terminal, --json=short otherwise\n"
               "     --json[=MODE]       Print JSON: short (the default), pretty or off\n"
               "     --no-pager          Do not pipe output into a pager\n"
               "     --no-legend         Do not print column headers and footers\n"
               "     --no-ask-password   Do not ask for a password (polkit)\n"
               "  -q --quiet             Print less\n"
               "     --verbose           Print more, including D-Bus error names\n"
               "     --node=N            list-blocks: only blocks of node N\n"
               "     --all               list-blocks: one row per block\n"
               "     --zone=ZONE         online-blocks: movable, kernel or auto (default)\n"
               "     --no-block          retire-node: print the job and return at once\n"
               "     --dry-run           retire-node: run the preflight as a job, change nothing\n"
               "     --no-eject          retire-node: stop after the drain, do not eject the DIMMs\n"
               "     --offline-cpus      retire-node: offline the node's CPUs too (the node stays\n"
               "                         online until they are hot-removed)\n\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 4 not authorized,\n"
               "64 some blocks changed and some did not.\n");
}

int parse_uint(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_PAGER,
                ARG_NO_LEGEND,
                ARG_NO_ASK_PASSWORD,
                ARG_VERBOSE,
                ARG_NODE,
                ARG_ALL,
                ARG_ZONE,
                ARG_NO_BLOCK,
                ARG_DRY_RUN,
                ARG_NO_EJECT,
                ARG_OFFLINE_CPUS,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "host", required_argument, NULL, 'H' },
                { "machine", required_argument, NULL, 'M' },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "quiet", no_argument, NULL, 'q' },
                { "verbose", no_argument, NULL, ARG_VERBOSE },
                { "node", required_argument, NULL, ARG_NODE },
                { "all", no_argument, NULL, ARG_ALL },
                { "zone", required_argument, NULL, ARG_ZONE },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "no-eject", no_argument, NULL, ARG_NO_EJECT },
                { "offline-cpus", no_argument, NULL, ARG_OFFLINE_CPUS },
                {},
        };
        unsigned u;
        int c;

        while ((c = getopt_long(argc, argv, "hH:M:jq", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("hotplugctl %s\n", PACKAGE_VERSION);
                        return 0;
                case 'H':
                        arg_host = optarg;
                        break;
                case 'M':
                        arg_machine = optarg;
                        break;
                case 'j':
                        arg_json = isatty(STDOUT_FILENO) ? JSON_PRETTY : JSON_SHORT;
                        break;
                case ARG_JSON:
                        /* A bare --json means short, so that "hotplugctl --json list-blocks" works. */
                        if (!optarg || streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else if (streq(optarg, "off"))
                                arg_json = JSON_OFF;
                        else if (streq(optarg, "help")) {
                                printf("short\npretty\noff\n");
                                return 0;
                        } else
                                return print_error(-EINVAL, "Unknown JSON mode '%s': expected short, pretty or off.", optarg);
                        break;
                case ARG_NO_PAGER:
                        arg_no_pager = true;
                        break;
                case ARG_NO_LEGEND:
                        arg_no_legend = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case ARG_VERBOSE:
                        arg_verbose = true;
                        break;
                case ARG_NODE:
                        if (parse_uint(optarg, &u) < 0 || u > INT32_MAX)
                                return print_error(-EINVAL, "Invalid node '%s': expected a node number.", optarg);
                        arg_node = (int) u;
                        break;
                case ARG_ALL:
                        arg_all = true;
                        break;
                case ARG_ZONE:
                        if (!streq(optarg, "movable") && !streq(optarg, "kernel") && !streq(optarg, "auto"))
                                return print_error(-EINVAL, "Invalid zone '%s': expected movable, kernel or auto.", optarg);
                        arg_zone = optarg;
                        break;
                case ARG_NO_BLOCK:
                        arg_no_block = true;
                        break;
                case ARG_DRY_RUN:
                        arg_dry_run = true;
                        break;
                case ARG_NO_EJECT:
                        arg_no_eject = true;
                        break;
                case ARG_OFFLINE_CPUS:
                        arg_offline_cpus = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        if (arg_host && arg_machine)
                return print_error(-EINVAL, "--host and --machine cannot be used together.");
        return 1;
}

static int connect_bus(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        if (arg_host)
                r = sd_bus_open_system_remote(&bus, arg_host);
        else if (arg_machine)
                r = sd_bus_open_system_machine(&bus, arg_machine);
        else
                r = sd_bus_open_system(&bus);
        if (r < 0) {
                if (arg_host || arg_machine)
                        fprintf(stderr, "Failed to connect to the system bus of %s: %s.\n", arg_host ?: arg_machine, strerror(-r));
                else
                        fprintf(stderr, "Failed to connect to the system bus: %s.\n", strerror(-r));
                return r;
        }
        /* A password prompt may appear (polkit) unless --no-ask-password. */
        (void) sd_bus_set_allow_interactive_authorization(bus, arg_ask_password);
        *ret = bus;
        return 0;
}

int call_manager(sd_bus *bus, const char *method, sd_bus_message **reply, uint64_t timeout_usec,
                 const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, method);
        if (r >= 0 && types) {
                va_list ap;

                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to build the %s call: %s.", method, strerror(-r));
        r = sd_bus_call(bus, m, timeout_usec, &error, reply);
        if (r < 0) {
                int code = print_bus_error(&error, r, method);
                sd_bus_error_free(&error);
                return code;
        }
        return 0;
}

int get_property_u64(sd_bus *bus, const char *path, const char *interface, const char *name, char type, uint64_t *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (type == 't')
                r = sd_bus_get_property_trivial(bus, HOTPLUG_BUS_NAME, path, interface, name, &error, 't', ret);
        else {
                uint32_t v;
                r = sd_bus_get_property_trivial(bus, HOTPLUG_BUS_NAME, path, interface, name, &error, 'u', &v);
                if (r >= 0)
                        *ret = v;
        }
        if (r < 0) {
                int code = print_bus_error(&error, r, name);
                sd_bus_error_free(&error);
                return code;
        }
        return 0;
}

int get_property_string(sd_bus *bus, const char *path, const char *interface, const char *name, char **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(bus, HOTPLUG_BUS_NAME, path, interface, name, &error, ret);
        if (r < 0) {
                int code = print_bus_error(&error, r, name);
                sd_bus_error_free(&error);
                return code;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        sd_bus *bus = NULL;
        const Verb *verb = NULL;
        const char *name;
        int r, n;

        r = parse_argv(argc, argv);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return EXIT_OK;
        (void) hotplug_bus_register_errors();

        name = optind < argc ? argv[optind] : "status";
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(name, verbs[i].name))
                        verb = &verbs[i];
        if (!verb)
                return print_error(EXIT_USAGE, "Unknown command '%s' (see hotplugctl --help).", name);
        n = optind < argc ? argc - optind - 1 : 0;
        if (n < verb->min_args)
                return print_error(EXIT_USAGE, "%s needs %s argument%s (see hotplugctl --help).", verb->name,
                                   verb->min_args == 1 ? "an" : "two", verb->min_args == 1 ? "" : "s");
        if (n > verb->max_args)
                return print_error(EXIT_USAGE, "Too many arguments for %s.", verb->name);

        if (connect_bus(&bus) < 0)
                return EXIT_FAIL;
        if (verb->pager && arg_json == JSON_OFF)
                pager_open();
        r = verb->function(bus, n + 1, argv + (optind < argc ? optind : argc - 1));
        pager_close();
        polkit_agent_close();
        sd_bus_flush_close_unref(bus);
        return r;
}

static int fetch_all(sd_bus *bus, const char *path, const char *interface, sd_bus_message **reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, HOTPLUG_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, reply,
                               "s", interface);
        if (r < 0) {
                unsigned id;
                int code;

                /* Objects come and go with the hardware: say which one is missing. */
                if (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) &&
                    hotplug_path_parse_id(path, HOTPLUG_NODE_PATH_PREFIX, &id) >= 0)
                        code = print_no_such_node(bus, id);
                else if (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) &&
                         hotplug_path_parse_id(path, HOTPLUG_JOB_PATH_PREFIX, &id) >= 0)
                        code = print_error(EXIT_FAIL, "Job %u does not exist (any more).", id);
                else
                        code = print_bus_error(&error, r, "Failed to read properties");
                sd_bus_error_free(&error);
                return code;
        }
        return 0;
}

int get_all_properties(sd_bus *bus, const char *path, const char *interface, const PropertyMap *map) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = fetch_all(bus, path, interface, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const PropertyMap *p = NULL;
                const char *name, *contents;
                char type;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        break;
                for (size_t i = 0; map[i].name; i++)
                        if (streq(map[i].name, name))
                                p = &map[i];
                if (!p) {
                        r = sd_bus_message_skip(reply, "v");
                } else {
                        r = sd_bus_message_peek_type(reply, &type, &contents);
                        if (r >= 0)
                                r = sd_bus_message_enter_container(reply, 'v', contents);
                        if (r >= 0) {
                                if (p->parse)
                                        r = p->parse(reply, p->ptr);
                                else if (!streq(contents, p->signature))
                                        r = sd_bus_message_skip(reply, contents);
                                else if (contents[0] == 's') {
                                        const char *s;
                                        r = sd_bus_message_read_basic(reply, 's', &s);
                                        if (r >= 0) {
                                                free(*(char **) p->ptr);
                                                *(char **) p->ptr = strdup(s);
                                        }
                                } else
                                        r = sd_bus_message_read_basic(reply, contents[0], p->ptr);
                        }
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the properties of %s: %s.", path, strerror(-r));
        return 0;
}

int print_all_properties_json(sd_bus *bus, const char *path, const char *interface) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Json j;
        int r;

        r = fetch_all(bus, path, interface, &reply);
        if (r != 0)
                return r;
        json_init(&j, stdout);
        r = json_bus_value(&j, reply);
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the properties of %s: %s.", path, strerror(-r));
        json_finish(&j);
        return 0;
}
