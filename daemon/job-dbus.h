/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* job-dbus.h — org.hotplugd.Hotplug1.Job objects and the Manager's job signals. */
#pragma once

#include <systemd/sd-bus.h>

#include "job.h"

extern const sd_bus_vtable job_vtable[];

int job_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                    sd_bus_error *error);
int job_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);

/* Called by job.c; no-ops without a bus. */
void job_send_new(Job *j);
/* State changes go out at once, progress at most every JOB_PROGRESS_INTERVAL. */
void job_send_changed(Job *j);
void job_send_removed(Job *j);

/* The Manager methods ListJobs() and CancelJob(), implemented here. */
int method_list_jobs(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_cancel_job(sd_bus_message *message, void *userdata, sd_bus_error *error);
