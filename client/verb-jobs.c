/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* verb-jobs.c — jobs, cancel, monitor, reload. */
#include <inttypes.h>
#include <signal.h>
#include <time.h>

#include "hotplugctl.h"

int verb_jobs(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        static const char *const headers[] = { "JOB", "KIND", "NODE", "STATE", "PROGRESS", "RESULT" };
        size_t n = 0;
        Json j;
        int r;

        r = call_manager(bus, "ListJobs", &reply, 0, NULL);
        if (r != 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_init(&j, stdout);
                json_begin_array(&j);
        } else {
                t = table_new(headers, ELEMENTSOF(headers));
                if (!t)
                        return print_error(EXIT_FAIL, "Out of memory.");
                table_set_right(t, 0);
                table_set_right(t, 2);
                table_set_right(t, 4);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(usussdo)");
        while (r >= 0) {
                const char *kind, *state, *result, *path;
                uint32_t id, node;
                double progress;

                r = sd_bus_message_read(reply, "(usussdo)", &id, &kind, &node, &state, &result, &progress, &path);
                if (r <= 0)
                        break;
                n++;
                if (arg_json != JSON_OFF) {
                        json_begin_object(&j);
                        json_key(&j, "job"); json_uint(&j, id);
                        json_key(&j, "kind"); json_string(&j, kind);
                        json_key(&j, "node"); json_uint(&j, node);
                        json_key(&j, "state"); json_string(&j, state);
                        json_key(&j, "progress"); json_double(&j, progress);
                        json_key(&j, "result"); json_string(&j, result);
                        json_key(&j, "path"); json_string(&j, path);
                        json_end_object(&j);
                } else {
                        table_addf(t, "%" PRIu32, id);
                        table_add(t, kind);
                        table_addf(t, "%" PRIu32, node);
                        table_add(t, state);
                        table_addf(t, "%.0f%%", progress * 100);
                        table_add(t, result[0] ? result : "-");
                }
        }
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to parse the job list: %s.", strerror(-r));
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
                return EXIT_OK;
        }
        if (n == 0) {
                if (!arg_quiet)
                        printf("No jobs.\n");
                return EXIT_OK;
        }
        table_print(t, stdout);
        if (!arg_no_legend)
                printf("\n%zu job%s listed.\n", n, n == 1 ? "" : "s");
        return EXIT_OK;
}

int verb_cancel(sd_bus *bus, int argc, char **argv) {
        unsigned id;
        int r;

        /* A number or the job's object path. */
        if (parse_uint(argv[1], &id) < 0 && hotplug_path_parse_id(argv[1], HOTPLUG_JOB_PATH_PREFIX, &id) < 0)
                return print_error(EXIT_USAGE, "Invalid job '%s': expected a job number.", argv[1]);
        polkit_agent_open();
        r = call_manager(bus, "CancelJob", NULL, UINT64_C(300) * 1000 * 1000, "u", (uint32_t) id);
        polkit_agent_close();
        if (r != 0)
                return r;
        if (arg_verbose)
                printf("Job %u cancelled.\n", id);
        return EXIT_OK;
}

int verb_reload(sd_bus *bus, int argc, char **argv) {
        int r;

        polkit_agent_open();
        r = call_manager(bus, "Reload", NULL, UINT64_C(300) * 1000 * 1000, NULL);
        polkit_agent_close();
        return r;
}

/* ---- monitor ---------------------------------------------------------------------------- */

static void print_time(Json *j) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (j) {
                json_key(j, "timestamp");
                json_uint(j, (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000);
        } else {
                struct tm tm;
                char buf[32];

                localtime_r(&ts.tv_sec, &tm);
                strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
                printf("%s.%03ld ", buf, ts.tv_nsec / 1000000);
        }
}

/* "node 2" / "job 5" / "manager" from an object path. */
static void describe_path(const char *path, char *buf, size_t size) {
        unsigned id;

        if (hotplug_path_parse_id(path, HOTPLUG_NODE_PATH_PREFIX, &id) >= 0)
                snprintf(buf, size, "node %u", id);
        else if (hotplug_path_parse_id(path, HOTPLUG_JOB_PATH_PREFIX, &id) >= 0)
                snprintf(buf, size, "job %u", id);
        else
                snprintf(buf, size, "manager");
}

/* Prints one value of a message compactly (as JSON) to stdout. */
static int print_value(sd_bus_message *m) {
        JsonMode saved = arg_json;
        Json j;
        int r;

        arg_json = JSON_SHORT;
        json_init(&j, stdout);
        r = json_bus_value(&j, m);
        arg_json = saved;
        return r;
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *member = sd_bus_message_get_member(m), *path = sd_bus_message_get_path(m);
        char what[64];
        Json j;
        int r = 0;

        describe_path(path, what, sizeof(what));
        if (arg_json != JSON_OFF) {
                JsonMode saved = arg_json;

                /* One object per line, whatever --json says: a stream must be line-delimited. */
                arg_json = JSON_SHORT;
                json_init(&j, stdout);
                json_begin_object(&j);
                print_time(&j);
                json_key(&j, "signal"); json_string(&j, member);
                json_key(&j, "path"); json_string(&j, path);
                if (streq(member, "PropertiesChanged")) {
                        const char *iface;

                        r = sd_bus_message_read(m, "s", &iface);
                        if (r >= 0) {
                                json_key(&j, "interface"); json_string(&j, iface);
                                json_key(&j, "changed");
                                r = json_bus_value(&j, m);
                        }
                        if (r >= 0) {
                                json_key(&j, "invalidated");
                                r = json_bus_value(&j, m);
                        }
                } else {
                        json_key(&j, "args");
                        json_begin_array(&j);
                        while (r >= 0 && sd_bus_message_at_end(m, true) == 0)
                                r = json_bus_value(&j, m);
                        json_end_array(&j);
                }
                json_end_object(&j);
                json_finish(&j);
                arg_json = saved;
        } else if (streq(member, "PropertiesChanged")) {
                const char *iface, *name;

                print_time(NULL);
                printf("%s changed:", what);
                r = sd_bus_message_read(m, "s", &iface);
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'a', "{sv}");
                while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                        r = sd_bus_message_read(m, "s", &name);
                        if (r >= 0) {
                                printf(" %s=", name);
                                r = print_value(m);
                        }
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'a', "s");
                while (r >= 0 && (r = sd_bus_message_read(m, "s", &name)) > 0)
                        printf(" %s=(invalidated)", name);
                putchar('\n');
        } else {
                uint32_t id, node;
                const char *obj, *s;

                print_time(NULL);
                if (streq(member, "NodeAdded") || streq(member, "NodeRemoved")) {
                        r = sd_bus_message_read(m, "uo", &id, &obj);
                        if (r >= 0)
                                printf("%s node %" PRIu32 " %s\n", member, id, obj);
                } else if (streq(member, "JobNew")) {
                        r = sd_bus_message_read(m, "uosu", &id, &obj, &s, &node);
                        if (r >= 0)
                                printf("JobNew job %" PRIu32 " %s node %" PRIu32 " %s\n", id, s, node, obj);
                } else if (streq(member, "JobRemoved")) {
                        r = sd_bus_message_read(m, "uos", &id, &obj, &s);
                        if (r >= 0)
                                printf("JobRemoved job %" PRIu32 " %s %s\n", id, s, obj);
                } else
                        printf("%s %s\n", member, path);
        }
        if (r < 0)
                fprintf(stderr, "Failed to parse %s signal: %s.\n", member, strerror(-r));
        fflush(stdout);
        return 0;
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int verb_monitor(sd_bus *bus, int argc, char **argv) {
        sd_event *event = NULL;
        sigset_t mask;
        int r;

        r = sd_bus_add_match(bus, NULL, "type='signal',sender='" HOTPLUG_BUS_NAME "',path_namespace='" HOTPLUG_BUS_PATH "'",
                             on_signal, NULL);
        if (r < 0)
                return print_error(EXIT_FAIL, "Failed to subscribe to hotplugd's signals: %s.", strerror(-r));
        if (!arg_quiet) {
                fprintf(stderr, "Monitoring " HOTPLUG_BUS_NAME "; press Ctrl-C to stop.\n");
                fflush(stderr);
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_stop, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_stop, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r >= 0)
                r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        sd_event_unref(event);
        if (r < 0)
                return print_error(EXIT_FAIL, "Monitoring failed: %s.", strerror(-r));
        return EXIT_OK;
}
