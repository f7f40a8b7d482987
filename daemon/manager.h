/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager.h — the one owning context: event loop, uevent monitor, config, model, policy. */
#pragma once

#include <libudev.h>
#include <systemd/sd-event.h>

#include "blocklog.h"
#include "config.h"
#include "conflicts.h"
#include "model.h"
#include "policy.h"
#include "sysfs.h"
#include "uevent.h"

typedef struct ManagerOptions {
        const char *root;               /* "/" or a generated tree */
        const char *config_path;        /* main config file override, or NULL */
        const char *runtime_dir;        /* for the SIGUSR2 dump; NULL: $RUNTIME_DIRECTORY or /run/hotplugd */
        const char *state_dir;          /* journals, quarantine; NULL: $STATE_DIRECTORY or /var/lib/hotplugd */
} ManagerOptions;

typedef struct ManagerStats {
        uint64_t events;                /* uevents handled */
        uint64_t events_ignored;        /* decoded as not ours or malformed */
        uint64_t resyncs;               /* full rescans after lost events */
        uint64_t onlined;               /* blocks onlined by policy */
        uint64_t online_failures;
        uint64_t zone_mismatches;
} ManagerStats;

typedef struct Manager {
        sd_event *event;
        sd_event_source *settle_source;         /* batches derived work after a burst of events */
        sd_event_source *retry_source;          /* re-reads blocks whose node link came late */
        sd_event_source *monitor_source;
        struct udev *udev;
        struct udev_monitor *monitor;

        char *root_path;
        char *config_path;
        char *runtime_dir;
        SysRoot *root;
        Config config;
        Conflicts conflicts;
        Model *model;
        PolicyEnvironment policy_env;
        uint64_t quarantined[MODEL_MAX_NODES / 64];
        char auto_online_blocks[32];
        int default_log_level;          /* what LogLevel= unset means (command line/environment) */
        char last_status[256];          /* the last STATUS= sent, to send only changes */

        /* Blocks added since the last settle: owners, late links and policy are handled there. */
        uint64_t *pending;
        size_t n_pending, n_pending_allocated;
        /* Blocks whose node link did not exist yet. */
        uint64_t *unlinked;
        size_t n_unlinked, n_unlinked_allocated;
        /* New blocks left to the kernel's in-line onlining (policy handed off): checked once
         * after HANDOFF_CHECK_USEC, and onlined by hotplugd if the kernel did not. */
        sd_event_source *handoff_source;
        uint64_t *handed_off;
        size_t n_handed_off, n_handed_off_allocated;
        /* Also under the hand-off: uevents are read in batches (on_monitor); armed by the first
         * event of a batch, and batch_reading while the queue is being read. */
        sd_event_source *batch_source;
        bool batch_reading;
        /* Blocks added without a firmware_node link yet: looked at again once (owner_recheck_add). */
        sd_event_source *owner_source;
        uint64_t *owner_recheck;
        size_t n_owner_recheck, n_owner_recheck_allocated;
        unsigned retry_attempt;

        /* Policy decisions handed to the worker and not yet read back, per node and zone kind. */
        unsigned policy_pending_movable[MODEL_MAX_NODES];
        unsigned policy_pending_kernel[MODEL_MAX_NODES];

        /* Nodes whose model changed since the last bus flush (see manager_bus_flush()). */
        uint64_t changed_nodes[MODEL_MAX_NODES / 64];

        /* D-Bus: owned by manager-dbus.c and the per-object *-dbus.c files. */
        struct sd_bus *bus;
        void *bus_data;                         /* struct ManagerBus (manager-dbus.h) */
        /* Jobs (job.c) and the thread for blocking sysfs writes (worker.c, created on first use);
         * both are freed by manager_bus_done(), so waiting callers get replies before the bus closes. */
        struct Job **jobs;
        size_t n_jobs;
        unsigned last_job_id;
        struct Worker *worker;
        /* Runtime per-node policies from SetNodePolicy(): applied on top of the config, kept across
         * reloads, lost on restart. */
        uint64_t policy_overridden[MODEL_MAX_NODES / 64];
        int8_t policy_override[MODEL_MAX_NODES];        /* OnlinePolicy, where the bit is set */

        /* StateDirectory: retire journals and the persisted quarantine (state.c, retire.c). */
        char *state_dir;
        int state_fd;

        /* Per-block log messages of a burst, logged as runs of blocks when it settles, and rate
         * limited (coldplug, DIMM storms): a token bucket, and the count of what was left out. */
        BlockLog block_log;
        double log_tokens;
        uint64_t log_refill_usec;
        uint64_t log_suppressed;

        /* Nodes a retire job works on: the policy onlines nothing there (retire.c sets and clears). */
        uint64_t retiring[MODEL_MAX_NODES / 64];
        bool started;                   /* manager_start() completed */
        bool exiting;                   /* SIGTERM or teardown: jobs stop and keep their journals */

        bool resync_requested;
        uint64_t last_seqnum;
        ManagerStats stats;
} Manager;

int manager_new(const ManagerOptions *opts, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Loads the config, scans the host, detects conflicts and attaches the uevent monitor. */
int manager_start(Manager *m);
int manager_run(Manager *m);

/* The seam between the netlink monitor and the model: unit tests and fuzzers call it directly. */
void manager_handle_uevent(Manager *m, const Uevent *ev);
/* Runs the batched work (spans, node state, owners, policy) now. */
int manager_settle(Manager *m);
/* Throws the model away and rebuilds it from sysfs (lost events). */
int manager_resync(Manager *m, const char *why);
int manager_reload_config(Manager *m);
int manager_dump(Manager *m, FILE *f);
/* Loads config and model without writing anything or listening (--dump-model). */
int manager_load_readonly(Manager *m);

/* Quarantines (or releases) a node and persists the list in StateDirectory. */
int manager_set_quarantine(Manager *m, int node, bool on);
/* TakeOver=yes: brings auto_online_blocks in line with the policy (the uniform policy, else
 * "offline"). Called whenever what the policy depends on changes; a no-op when it already is. */
int manager_update_kernel_online(Manager *m);
bool manager_node_is_quarantined(const Manager *m, int node);

/* Whether this host is a virtual machine, for Policy=auto (reads <root>/proc/cpuinfo and DMI). */
bool detect_virtual_machine(SysRoot *root);
