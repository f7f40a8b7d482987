/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplug-bus.h — the bus contract shared by hotplugd and hotplugctl: names, paths, errors, actions. */
#pragma once

#include <systemd/sd-bus.h>

#define HOTPLUG_BUS_NAME "org.hotplugd.Hotplug1"
#define HOTPLUG_BUS_PATH "/org/hotplugd/Hotplug1"
#define HOTPLUG_NODE_PATH_PREFIX "/org/hotplugd/Hotplug1/node"
#define HOTPLUG_JOB_PATH_PREFIX "/org/hotplugd/Hotplug1/job"

#define HOTPLUG_MANAGER_INTERFACE "org.hotplugd.Hotplug1.Manager"
#define HOTPLUG_NODE_INTERFACE "org.hotplugd.Hotplug1.Node"
#define HOTPLUG_JOB_INTERFACE "org.hotplugd.Hotplug1.Job"

/* Domain errors. Malformed input uses org.freedesktop.DBus.Error.InvalidArgs, authorization
 * org.freedesktop.DBus.Error.AccessDenied / .InteractiveAuthorizationRequired. */
#define HOTPLUG_ERROR_PREFIX "org.hotplugd.Hotplug1.Error."
#define HOTPLUG_ERROR_NO_SUCH_NODE HOTPLUG_ERROR_PREFIX "NoSuchNode"
#define HOTPLUG_ERROR_NO_SUCH_BLOCK HOTPLUG_ERROR_PREFIX "NoSuchBlock"
#define HOTPLUG_ERROR_NO_SUCH_JOB HOTPLUG_ERROR_PREFIX "NoSuchJob"
#define HOTPLUG_ERROR_BUSY HOTPLUG_ERROR_PREFIX "Busy"
#define HOTPLUG_ERROR_NODE_HAS_CPUS HOTPLUG_ERROR_PREFIX "NodeHasCPUs"
#define HOTPLUG_ERROR_NOT_REMOVABLE HOTPLUG_ERROR_PREFIX "NotRemovable"
#define HOTPLUG_ERROR_INSUFFICIENT_MEMORY HOTPLUG_ERROR_PREFIX "InsufficientMemory"
#define HOTPLUG_ERROR_QUARANTINED HOTPLUG_ERROR_PREFIX "Quarantined"
#define HOTPLUG_ERROR_NOT_SUPPORTED HOTPLUG_ERROR_PREFIX "NotSupported"
#define HOTPLUG_ERROR_INVALID_ZONE HOTPLUG_ERROR_PREFIX "InvalidZone"
#define HOTPLUG_ERROR_INVALID_STATE HOTPLUG_ERROR_PREFIX "InvalidState"
#define HOTPLUG_ERROR_INVALID_CONFIG HOTPLUG_ERROR_PREFIX "InvalidConfig"
#define HOTPLUG_ERROR_JOB_FINISHED HOTPLUG_ERROR_PREFIX "JobFinished"
#define HOTPLUG_ERROR_TIMEOUT HOTPLUG_ERROR_PREFIX "Timeout"
#define HOTPLUG_ERROR_CANCELLED HOTPLUG_ERROR_PREFIX "Cancelled"
#define HOTPLUG_ERROR_FAILED HOTPLUG_ERROR_PREFIX "Failed"

/* polkit action ids, one per kind of change (systemd/org.hotplugd.hotplug1.policy). */
#define HOTPLUG_ACTION_ONLINE_BLOCKS "org.hotplugd.hotplug1.online-blocks"
#define HOTPLUG_ACTION_OFFLINE_BLOCKS "org.hotplugd.hotplug1.offline-blocks"
#define HOTPLUG_ACTION_SET_POLICY "org.hotplugd.hotplug1.set-policy"
#define HOTPLUG_ACTION_QUARANTINE "org.hotplugd.hotplug1.quarantine"
#define HOTPLUG_ACTION_RETIRE_NODE "org.hotplugd.hotplug1.retire-node"
#define HOTPLUG_ACTION_CANCEL_JOB "org.hotplugd.hotplug1.cancel-job"
#define HOTPLUG_ACTION_RELOAD "org.hotplugd.hotplug1.reload"

/* RetireNode() flags. */
#define HOTPLUG_RETIRE_DRY_RUN (UINT64_C(1) << 0)      /* preflight only: the job ends after it */
#define HOTPLUG_RETIRE_NO_EJECT (UINT64_C(1) << 1)     /* stop after the drain */
#define HOTPLUG_RETIRE_OFFLINE_CPUS (UINT64_C(1) << 2) /* a node with present CPUs: offline them too */
#define _HOTPLUG_RETIRE_FLAGS_ALL (HOTPLUG_RETIRE_DRY_RUN | HOTPLUG_RETIRE_NO_EJECT | HOTPLUG_RETIRE_OFFLINE_CPUS)

/* The name ↔ errno table for every org.hotplugd.Hotplug1.Error.* name, terminated by
 * SD_BUS_ERROR_MAP_END. Both sides register it with sd_bus_error_add_map(), so
 * sd_bus_error_get_errno() and sd_bus_error_set_errno() know the project's names. */
extern const sd_bus_error_map hotplug_bus_error_map[];

/* Registers hotplug_bus_error_map once per process; returns 0 or negative errno. */
int hotplug_bus_register_errors(void);

/* The errno a bus error name stands for (project names, then sd-bus's own), or 0 if unknown. */
int hotplug_bus_error_to_errno(const char *name);

/* Whether a bus error name means "not authorized" (AccessDenied, InteractiveAuthorizationRequired). */
int hotplug_bus_error_is_access_denied(const char *name);

/* Object paths: buf must hold at least HOTPLUG_PATH_MAX bytes. */
#define HOTPLUG_PATH_MAX 64
const char *hotplug_node_path(unsigned id, char buf[static HOTPLUG_PATH_MAX]);
const char *hotplug_job_path(unsigned id, char buf[static HOTPLUG_PATH_MAX]);
/* Parses the numeric id out of a node or job path; returns 0 or -EINVAL. */
int hotplug_path_parse_id(const char *path, const char *prefix, unsigned *ret);
