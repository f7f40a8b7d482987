/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* job-dbus.c — Job objects on the bus: properties, Cancel(), JobNew/JobRemoved, progress signals. */
#include "hotplug-bus.h"
#include "job-dbus.h"
#include "log.h"
#include "manager-dbus.h"

#define JOB_PROGRESS_INTERVAL_USEC (250 * 1000)

static Job *job_from_path(Manager *m, const char *path) {
        unsigned id;

        if (hotplug_path_parse_id(path, HOTPLUG_JOB_PATH_PREFIX, &id) < 0)
                return NULL;
        return manager_find_job(m, id);
}

int job_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                    sd_bus_error *error) {
        Job *j = job_from_path(userdata, path);

        if (!j)
                return 0;
        *found = j;
        return 1;
}

int job_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = calloc(m->n_jobs + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_jobs; i++) {
                char buf[HOTPLUG_PATH_MAX];

                l[i] = strdup(hotplug_job_path(m->jobs[i]->id, buf));
                if (!l[i]) {
                        for (size_t k = 0; k < i; k++)
                                free(l[k]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", job_kind_to_string(j->kind));
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", job_state_to_string(j->state));
}

static int property_get_node(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) j->node);
}

static int property_get_progress(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "d", job_progress(userdata));
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", streq(property, "Result") ? j->result : (j->error ?: ""));
}

static int method_job_cancel(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        unsigned id = j->id;
        int r;

        if (job_state_is_final(j->state))
                return sd_bus_error_setf(error, HOTPLUG_ERROR_JOB_FINISHED, "Job %u has already %s.", j->id,
                                         job_state_to_string(j->state));
        r = manager_bus_verify(m, message, HOTPLUG_ACTION_CANCEL_JOB, NULL, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        /* The job may have ended while polkit was asked. */
        j = manager_find_job(m, id);
        if (!j)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_JOB, "Job %u no longer exists.", id);
        if (job_state_is_final(j->state))
                return sd_bus_error_setf(error, HOTPLUG_ERROR_JOB_FINISHED, "Job %u has already %s.", id,
                                         job_state_to_string(j->state));
        log_info("Job %u cancelled by %s.", id, strna(sd_bus_message_get_sender(message)));
        r = job_cancel(j);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to cancel job %u: %m", id);
        return sd_bus_reply_method_return(message, NULL);
}

const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", NULL, offsetof(Job, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Node", "u", property_get_node, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "t", NULL, offsetof(Job, flags), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "d", property_get_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BlocksDone", "t", NULL, offsetof(Job, blocks_done), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BlocksTotal", "t", NULL, offsetof(Job, blocks_total), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesDone", "t", NULL, offsetof(Job, bytes_done), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", NULL, offsetof(Job, bytes_total), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CurrentBlock", "x", NULL, offsetof(Job, current_block), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StartTime", "t", NULL, offsetof(Job, start_time), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EstimatedEnd", "t", NULL, offsetof(Job, estimated_end), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Result", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_job_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void emit_jobs_changed(Manager *m) {
        int r = sd_bus_emit_properties_changed(m->bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, "Jobs", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for Jobs, ignoring: %m");
}

void job_send_new(Job *j) {
        Manager *m = j->manager;
        char path[HOTPLUG_PATH_MAX];
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_signal(m->bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, "JobNew", "uosu", (uint32_t) j->id,
                               hotplug_job_path(j->id, path), job_kind_to_string(j->kind), (uint32_t) j->node);
        if (r < 0)
                log_debug_errno(r, "Failed to emit JobNew, ignoring: %m");
        emit_jobs_changed(m);
}

void job_send_removed(Job *j) {
        Manager *m = j->manager;
        char path[HOTPLUG_PATH_MAX];
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_signal(m->bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, "JobRemoved", "uos",
                               (uint32_t) j->id, hotplug_job_path(j->id, path), job_state_to_string(j->state));
        if (r < 0)
                log_debug_errno(r, "Failed to emit JobRemoved, ignoring: %m");
        emit_jobs_changed(m);
}

static void job_emit(Job *j) {
        static const char *const state[] = { "State", "Progress", "Result", "Error", "EstimatedEnd", "CurrentBlock", NULL };
        static const char *const progress[] = { "Progress", "BlocksDone", "BlocksTotal", "BytesDone", "BytesTotal",
                                                "CurrentBlock", "EstimatedEnd", NULL };
        Manager *m = j->manager;
        char path[HOTPLUG_PATH_MAX];
        const char *names[24];
        size_t k = 0;
        int r;

        if (j->changed & JOB_CHANGED_STATE)
                for (size_t i = 0; state[i]; i++)
                        names[k++] = state[i];
        if (j->changed & JOB_CHANGED_PROGRESS)
                for (size_t i = 0; progress[i]; i++) {
                        bool dup = false;
                        for (size_t x = 0; x < k; x++)
                                dup = dup || streq(names[x], progress[i]);
                        if (!dup)
                                names[k++] = progress[i];
                }
        if (j->changed & JOB_CHANGED_TIMES)
                names[k++] = "StartTime";
        names[k] = NULL;
        j->changed = 0;
        if (k == 0)
                return;
        r = sd_bus_emit_properties_changed_strv(m->bus, hotplug_job_path(j->id, path), HOTPLUG_JOB_INTERFACE,
                                                (char **) names);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for job %u, ignoring: %m", j->id);
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &j->last_progress_emit);
}

static int on_notify(sd_event_source *s, uint64_t usec, void *userdata) {
        job_emit(userdata);
        return 0;
}

void job_send_changed(Job *j) {
        Manager *m = j->manager;
        uint64_t now;

        if (!m->bus || !m->event) {
                j->changed = 0;
                return;
        }
        if (j->changed & (JOB_CHANGED_STATE | JOB_CHANGED_TIMES)) {
                (void) sd_event_source_set_enabled(j->notify_source, SD_EVENT_OFF);
                job_emit(j);
                return;
        }
        /* Progress only: at most one signal per interval, the latest values win. */
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (now >= j->last_progress_emit + JOB_PROGRESS_INTERVAL_USEC) {
                job_emit(j);
                return;
        }
        if (!j->notify_source) {
                if (sd_event_add_time(m->event, &j->notify_source, CLOCK_MONOTONIC,
                                      j->last_progress_emit + JOB_PROGRESS_INTERVAL_USEC, 0, on_notify, j) < 0) {
                        job_emit(j);
                        return;
                }
                (void) sd_event_source_set_description(j->notify_source, "job-progress");
        } else {
                (void) sd_event_source_set_time(j->notify_source, j->last_progress_emit + JOB_PROGRESS_INTERVAL_USEC);
        }
        (void) sd_event_source_set_enabled(j->notify_source, SD_EVENT_ONESHOT);
}

int method_list_jobs(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(usussdo)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                char path[HOTPLUG_PATH_MAX];

                r = sd_bus_message_append(reply, "(usussdo)", (uint32_t) j->id, job_kind_to_string(j->kind),
                                          (uint32_t) j->node, job_state_to_string(j->state), j->result,
                                          job_progress(j), hotplug_job_path(j->id, path));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int method_cancel_job(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t id;
        Job *j;
        int r;

        r = sd_bus_message_read(message, "u", &id);
        if (r < 0)
                return r;
        j = manager_find_job(m, id);
        if (!j)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_JOB, "Job %" PRIu32 " does not exist.", id);
        return method_job_cancel(message, j, error);
}
