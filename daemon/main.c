/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main.c — hotplugd's command line; everything else lives in the library. */
#include <getopt.h>

#include "config-build.h"
#include "log.h"
#include "manager.h"
#include "manager-dbus.h"

static const char *arg_root = "/";
static const char *arg_config;
static bool arg_dump_model;
static bool arg_bus_introspect;

static void help(void) {
        printf("hotplugd [OPTIONS...]\n\n"
               "Memory and NUMA node hotplug daemon.\n\n"
               "  -h --help          Show this help\n"
               "     --version       Show package version\n"
               "     --root=DIR      Operate on the tree under DIR (sys/, proc/, etc/) instead of /\n"
               "     --config=FILE   Main configuration file (default: ROOT/etc/hotplugd/hotplugd.conf)\n"
               "     --dump-model    Print the model as JSON and exit; writes nothing\n"
               "     --bus-introspect [INTERFACE]\n"
               "                     Print the D-Bus introspection XML of INTERFACE (generated from\n"
               "                     the vtables), or the list of interfaces, and exit\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_ROOT, ARG_CONFIG, ARG_DUMP_MODEL, ARG_BUS_INTROSPECT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "root", required_argument, NULL, ARG_ROOT },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "dump-model", no_argument, NULL, ARG_DUMP_MODEL },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("hotplugd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_ROOT:
                        arg_root = optarg;
                        break;
                case ARG_CONFIG:
                        arg_config = optarg;
                        break;
                case ARG_DUMP_MODEL:
                        arg_dump_model = true;
                        break;
                case ARG_BUS_INTROSPECT:
                        arg_bus_introspect = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (arg_bus_introspect) {
                if (argc - optind > 1) {
                        log_error("--bus-introspect takes at most one interface name.");
                        return -EINVAL;
                }
                return manager_bus_introspect(stdout, optind < argc ? argv[optind] : NULL) ?: 0;
        }
        if (optind < argc) {
                log_error("%s takes no positional arguments.", program_invocation_short_name);
                return -EINVAL;
        }
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ManagerOptions opts;
        int r;

        log_setup(LOG_TARGET_AUTO);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        opts = (ManagerOptions){ .root = arg_root, .config_path = arg_config };
        r = manager_new(&opts, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate manager: %m");

        if (arg_dump_model) {
                r = manager_load_readonly(m);
                if (r < 0)
                        return r;
                return manager_dump(m, stdout);
        }

        r = manager_start(m);
        if (r < 0)
                return r;
        return manager_run(m);
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
