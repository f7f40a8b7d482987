/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* verb-nodes.c — set-policy, quarantine, unquarantine, plan-retire, retire-node (and job waiting). */
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "hotplugctl.h"

static int parse_node_arg(const char *s, unsigned *ret) {
        if (parse_uint(s, ret) < 0)
                return print_error(EXIT_USAGE, "Invalid node '%s': expected a node number.", s);
        return 0;
}

/* A change: polkit may ask for a password, so give it time and an agent. */
static int call_change(sd_bus *bus, const char *method, sd_bus_message **reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, HOTPLUG_BUS_NAME, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, method);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to build the %s call: %s.", method, strerror(-r));
        polkit_agent_open();
        r = sd_bus_call(bus, m, UINT64_C(300) * 1000 * 1000, &error, reply);
        polkit_agent_close();
        if (r < 0) {
                int code = print_bus_error(&error, r, method);
                sd_bus_error_free(&error);
                return code;
        }
        return 0;
}

int verb_set_policy(sd_bus *bus, int argc, char **argv) {
        const char *policy = argv[2];
        unsigned node;
        int r;

        r = parse_node_arg(argv[1], &node);
        if (r != 0)
                return r;
        /* "default" drops the runtime policy: the daemon's API says "" for that. */
        r = call_change(bus, "SetNodePolicy", NULL, "us", (uint32_t) node, streq(policy, "default") ? "" : policy);
        if (r != 0)
                return r;
        if (arg_verbose)
                printf("Node %u: policy %s.\n", node, streq(policy, "default") ? "back to the configuration" : policy);
        return EXIT_OK;
}

int verb_quarantine(sd_bus *bus, int argc, char **argv) {
        bool on = streq(argv[0], "quarantine");
        unsigned node;
        int r;

        r = parse_node_arg(argv[1], &node);
        if (r != 0)
                return r;
        r = call_change(bus, on ? "QuarantineNode" : "UnquarantineNode", NULL, "u", (uint32_t) node);
        if (r != 0)
                return r;
        if (arg_verbose)
                printf("Node %u %s.\n", node, on ? "quarantined" : "released from quarantine");
        return EXIT_OK;
}

int verb_plan_retire(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        static const char *const headers[] = { "VERDICT", "CHECK", "FINDING" };
        uint64_t to_migrate, available;
        unsigned node, blockers = 0, warnings = 0;
        const char *verdict, *code, *message;
        char a[32], b[32];
        Json j;
        int r;

        r = parse_node_arg(argv[1], &node);
        if (r != 0)
                return r;
        r = call_manager(bus, "PlanRetire", &reply, 0, "u", (uint32_t) node);
        if (r != 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_init(&j, stdout);
                json_begin_object(&j);
                json_key(&j, "node");
                json_uint(&j, node);
                json_key(&j, "findings");
                json_begin_array(&j);
        } else if (!(t = table_new(headers, ELEMENTSOF(headers))))
                return print_error(EXIT_FAIL, "Out of memory.");
        r = sd_bus_message_enter_container(reply, 'a', "(sss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sss)", &verdict, &code, &message)) > 0) {
                blockers += streq(verdict, "blocker");
                warnings += streq(verdict, "warning");
                if (arg_json != JSON_OFF) {
                        json_begin_object(&j);
                        json_key(&j, "verdict"); json_string(&j, verdict);
                        json_key(&j, "code"); json_string(&j, code);
                        json_key(&j, "message"); json_string(&j, message);
                        json_end_object(&j);
                } else {
                        table_add(t, verdict);
                        table_add(t, code);
                        table_add(t, message);
                }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "tt", &to_migrate, &available);
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the plan: %s.", strerror(-r));
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_key(&j, "bytes_to_migrate"); json_uint(&j, to_migrate);
                json_key(&j, "bytes_available"); json_uint(&j, available);
                json_key(&j, "blockers"); json_uint(&j, blockers);
                json_key(&j, "warnings"); json_uint(&j, warnings);
                json_key(&j, "can_retire"); json_bool(&j, blockers == 0);
                json_end_object(&j);
                json_finish(&j);
        } else {
                table_print(t, stdout);
                if (!arg_no_legend)
                        printf("\nTo migrate: %s; free on other nodes: %s.\n%s\n", format_bytes(a, sizeof(a), to_migrate),
                               format_bytes(b, sizeof(b), available),
                               blockers ? "Node cannot be retired: see the blockers above." : "Node can be retired.");
        }
        return blockers ? EXIT_FAIL : EXIT_OK;
}

typedef struct JobView {
        char *state, *result, *error;
        double progress;
        uint64_t blocks_done, blocks_total, bytes_done, bytes_total, estimated_end;
} JobView;

static void job_view_done(JobView *v) {
        free(v->state);
        free(v->result);
        free(v->error);
        *v = (JobView) {};
}

static int fetch_job(sd_bus *bus, const char *path, JobView *v) {
        const PropertyMap map[] = {
                { "State", "s", &v->state },
                { "Result", "s", &v->result },
                { "Error", "s", &v->error },
                { "Progress", "d", &v->progress },
                { "BlocksDone", "t", &v->blocks_done },
                { "BlocksTotal", "t", &v->blocks_total },
                { "BytesDone", "t", &v->bytes_done },
                { "BytesTotal", "t", &v->bytes_total },
                { "EstimatedEnd", "t", &v->estimated_end },
                {},
        };
        return get_all_properties(bus, path, HOTPLUG_JOB_INTERFACE, map);
}

static bool state_is_final(const char *s) {
        return s && (streq(s, "completed") || streq(s, "failed") || streq(s, "cancelled"));
}

/* Follows a job until it ends: a progress bar on a TTY, plain lines otherwise. */
static int wait_for_job(sd_bus *bus, const char *path) {
        JobView v = {};
        char last[64] = "";
        int last_percent = -1, r;

        for (;;) {
                r = fetch_job(bus, path, &v);
                if (r != 0)
                        return r;
                if (state_is_final(v.state))
                        break;
                if (isatty(STDERR_FILENO) || (int) (v.progress * 100) != last_percent || !streq(last, v.state)) {
                        progress_show(v.state, v.progress, v.blocks_done, v.blocks_total, v.bytes_done, v.bytes_total,
                                      v.estimated_end);
                        last_percent = (int) (v.progress * 100);
                        snprintf(last, sizeof(last), "%s", v.state);
                }
                job_view_done(&v);
                /* Woken by the job's PropertiesChanged (matched by the caller), or once a second. */
                r = sd_bus_wait(bus, UINT64_C(1000000));
                if (r < 0)
                        return print_error(EXIT_FAIL, "Failed to wait for the job: %s.", strerror(-r));
                while ((r = sd_bus_process(bus, NULL)) > 0)
                        ;
                if (r < 0)
                        return print_error(EXIT_FAIL, "Lost the connection while waiting for the job: %s.", strerror(-r));
        }
        progress_clear();
        if (streq(v.state, "completed")) {
                if (!arg_quiet)
                        printf("%s\n", v.result && *v.result ? v.result : "Done.");
                r = EXIT_OK;
        } else {
                fputs(v.result && *v.result ? v.result : "The job failed.", stderr);
                if (arg_verbose && v.error && *v.error)
                        fprintf(stderr, " [%s]", v.error);
                fputc('\n', stderr);
                r = hotplug_bus_error_is_access_denied(v.error) ? EXIT_DENIED : EXIT_FAIL;
        }
        job_view_done(&v);
        return r;
}

int verb_retire_node(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_slot *slot = NULL;
        const char *path;
        unsigned node, id;
        int r;

        r = parse_node_arg(argv[1], &node);
        if (r != 0)
                return r;
        /* Subscribe before the job exists, so that no change can slip by. */
        if (!arg_no_block) {
                r = sd_bus_add_match(bus, &slot,
                                     "type='signal',sender='" HOTPLUG_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"
                                     "member='PropertiesChanged',path_namespace='" HOTPLUG_JOB_PATH_PREFIX "'",
                                     NULL, NULL);
                if (r < 0)
                        return print_error(EXIT_FAIL, "Failed to subscribe to job changes: %s.", strerror(-r));
        }
        r = call_change(bus, "RetireNode", &reply, "ut", (uint32_t) node,
                        (arg_dry_run ? HOTPLUG_RETIRE_DRY_RUN : 0) | (arg_no_eject ? HOTPLUG_RETIRE_NO_EJECT : 0) |
                                (arg_offline_cpus ? HOTPLUG_RETIRE_OFFLINE_CPUS : 0));
        if (r != 0) {
                sd_bus_slot_unref(slot);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0) {
                sd_bus_slot_unref(slot);
                return print_error(EXIT_FAIL, "Failed to parse the reply: %s.", strerror(-r));
        }
        if (arg_no_block) {
                if (arg_json != JSON_OFF) {
                        Json j;
                        json_init(&j, stdout);
                        json_begin_object(&j);
                        json_key(&j, "job");
                        json_string(&j, path);
                        json_end_object(&j);
                        json_finish(&j);
                } else
                        printf("%s\n", path);
                return EXIT_OK;
        }
        if (!arg_quiet && hotplug_path_parse_id(path, HOTPLUG_JOB_PATH_PREFIX, &id) >= 0)
                fprintf(stderr, "Job %u: %s node %u (hotplugctl cancel %u stops it).\n", id,
                        arg_dry_run ? "checking whether to retire" : "retiring", node, id);
        r = wait_for_job(bus, path);
        sd_bus_slot_unref(slot);
        return r;
}
