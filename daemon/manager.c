/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager.c — the owning context. Data flows one way: uevent → model → policy/action → (D-Bus).
 * Events are applied to the model at once (cheap, per block); work derived from many events —
 * zone spans, node masks, owners from /proc/iomem, policy decisions — runs once per burst in
 * the "settle" step, an idle-priority defer source that fires when the socket is drained. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "dump.h"
#include "log.h"
#include "manager.h"
#include "manager-dbus.h"
#include "worker.h"
#include "retire.h"
#include "state.h"
#include "scan.h"

#define EVENTS_PER_DISPATCH 2048
#define DISPATCH_BUDGET_USEC 1000               /* of uevent work before bus calls get their turn */
#define BUS_MESSAGES_PER_DISPATCH 64
/* A hot-added block is linked to its node a few ms after its add uevent (the kernel announces
 * all blocks of a range, then links them): look again soon, then back off (5 ms … 2.6 s). */
#define RETRY_FIRST_USEC (5 * 1000)
#define RETRY_MAX_ATTEMPTS 10
/* How long the kernel gets to online a block itself when the policy is handed to it. */
#define HANDOFF_CHECK_USEC (2 * UINT64_C(1000000))
/* How long after a block's add event its firmware_node link is looked for once more. */
#define OWNER_RECHECK_USEC (UINT64_C(1000000))
/* Under the hand-off, how long after the first uevent of a batch hotplugd reads them all. */
#define HANDOFF_BATCH_USEC (100 * 1000)
#define POLICY_WRITE_TIMEOUT_USEC (60 * UINT64_C(1000000))

static int index_list_add(uint64_t **list, size_t *n, size_t *allocated, uint64_t index) {
        if (*n >= *allocated) {
                size_t a = MAX(*allocated * 2, (size_t) 64);
                uint64_t *p = realloc(*list, a * sizeof(uint64_t));
                if (!p)
                        return -ENOMEM;
                *list = p;
                *allocated = a;
        }
        (*list)[(*n)++] = index;
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Sorts and drops duplicates (a block can be added, removed and added again in one burst). */
static size_t index_list_uniq(uint64_t *list, size_t n) {
        size_t k = 0;

        if (n == 0)
                return 0; /* qsort(NULL, 0) is undefined */
        qsort(list, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (k == 0 || list[k - 1] != list[i])
                        list[k++] = list[i];
        return k;
}

static void kernel_online_release(Manager *m);

static void block_log_emit(Manager *m);

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* Jobs are torn down below: they must leave their journals for the next start. */
        if (!m->exiting && m->started)
                kernel_online_release(m);
        m->exiting = true;
        manager_bus_done(m);
        sd_event_source_disable_unref(m->settle_source);
        sd_event_source_disable_unref(m->retry_source);
        sd_event_source_disable_unref(m->handoff_source);
        sd_event_source_disable_unref(m->batch_source);
        sd_event_source_disable_unref(m->owner_source);
        free(m->owner_recheck);
        free(m->handed_off);
        sd_event_source_disable_unref(m->monitor_source);
        udev_monitor_unref(m->monitor);
        udev_unref(m->udev);
        sd_event_unref(m->event);
        model_free(m->model);
        sysroot_free(m->root);
        config_done(&m->config);
        conflicts_done(&m->conflicts);
        block_log_emit(m);
        block_log_done(&m->block_log);
        free(m->pending);
        free(m->unlinked);
        free(m->root_path);
        free(m->config_path);
        free(m->runtime_dir);
        free(m->state_dir);
        closep(&m->state_fd);
        free(m);
        return NULL;
}

int manager_new(const ManagerOptions *opts, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        const char *rd;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        config_init(&m->config);
        m->state_fd = -1;
        if (opts->state_dir && !(m->state_dir = strdup(opts->state_dir)))
                return -ENOMEM;
        m->root_path = strdup(opts->root ?: "/");
        if (!m->root_path)
                return -ENOMEM;
        if (opts->config_path && !(m->config_path = strdup(opts->config_path)))
                return -ENOMEM;
        rd = opts->runtime_dir ?: getenv("RUNTIME_DIRECTORY");
        /* RUNTIME_DIRECTORY may list several directories separated by ':'; the first is ours.
         * Without it, a daemon on another root keeps its files in that root, never in the host's. */
        if (rd)
                m->runtime_dir = strndup(rd, strcspn(rd, ":"));
        else if (asprintf(&m->runtime_dir, "%s/run/hotplugd", streq(m->root_path, "/") ? "" : m->root_path) < 0)
                m->runtime_dir = NULL;
        if (!m->runtime_dir)
                return -ENOMEM;
        if (!m->state_dir && !getenv("STATE_DIRECTORY") && !streq(m->root_path, "/") &&
            asprintf(&m->state_dir, "%s/var/lib/hotplugd", m->root_path) < 0)
                return -ENOMEM;
        m->default_log_level = log_get_max_level();
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

bool manager_node_is_quarantined(const Manager *m, int node) {
        return node >= 0 && node < MODEL_MAX_NODES && ((m->quarantined[node / 64] >> (node % 64)) & 1);
}

int manager_set_quarantine(Manager *m, int node, bool on) {
        if (node < 0 || node >= MODEL_MAX_NODES)
                return -ERANGE;
        if (on)
                m->quarantined[node / 64] |= UINT64_C(1) << (node % 64);
        else
                m->quarantined[node / 64] &= ~(UINT64_C(1) << (node % 64));
        m->changed_nodes[node / 64] |= UINT64_C(1) << (node % 64);
        /* Before the caller hears "done": the kernel must not online onto the node either. */
        (void) manager_update_kernel_online(m);
        return m->state_fd >= 0 ? quarantine_save(m->state_fd, m->quarantined) : 0;
}

bool detect_virtual_machine(SysRoot *root) {
        _cleanup_free_ char *cpuinfo = NULL;
        char buf[256];

        /* x86 sets the "hypervisor" CPUID bit in every mainstream hypervisor. */
        if (root->proc_fd >= 0 && sysfs_read_full_at(root->proc_fd, "cpuinfo", &cpuinfo, NULL) >= 0) {
                for (char *p = cpuinfo; (p = strstr(p, " hypervisor")); p++)
                        if (p[STRLEN(" hypervisor")] == ' ' || p[STRLEN(" hypervisor")] == '\n')
                                return true;
        }
        /* Elsewhere (and for Xen PV) the hypervisor directory or DMI tell. */
        if (sysfs_read_at(root->root_fd, "sys/hypervisor/type", buf, sizeof(buf)) > 0)
                return true;
        if (sysfs_read_at(root->root_fd, "sys/class/dmi/id/sys_vendor", buf, sizeof(buf)) > 0) {
                static const char *const vendors[] = { "QEMU", "KVM", "VMware", "Microsoft Corporation",
                                                       "Xen", "innotek GmbH", "Amazon EC2", "Google" };
                for (size_t i = 0; i < ELEMENTSOF(vendors); i++)
                        if (strstr(buf, vendors[i]))
                                return true;
        }
        return false;
}

static void log_conflicts(Manager *m) {
        for (size_t i = 0; i < m->conflicts.n; i++) {
                const Conflict *c = &m->conflicts.items[i];
                char extra[128];

                snprintf(extra, sizeof(extra), "CONFLICT=%s", conflict_kind_to_string(c->kind));
                log_struct(LOG_WARNING, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_CONFLICT, .extra = extra),
                           "Another agent onlines memory: %s (%s: %s)%s", conflict_kind_to_string(c->kind),
                           c->source, c->detail,
                           c->kind == CONFLICT_KERNEL_AUTO_ONLINE && !m->config.take_over
                                   ? "; set TakeOver=yes to let hotplugd own onlining"
                                   : "");
        }
}

static int detect_conflicts(Manager *m) {
        Conflicts c = {};
        int r;

        r = sysfs_read_at(m->root->memory_fd, "auto_online_blocks", m->auto_online_blocks,
                          sizeof(m->auto_online_blocks));
        if (r < 0)
                m->auto_online_blocks[0] = 0;
        r = conflicts_detect(m->root, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to detect other memory onliners: %m");
        /* With TakeOver=yes the kernel's auto-online setting is hotplugd's own (it may hand its
         * policy to the kernel), not another onliner. */
        if (m->config.take_over)
                conflicts_drop_kind(&c, CONFLICT_KERNEL_AUTO_ONLINE);
        conflicts_done(&m->conflicts);
        m->conflicts = c;
        return 0;
}

/* What auto_online_blocks should say while hotplugd owns it (TakeOver=yes): its own policy when
 * that is the same for every block on every node (the kernel then onlines each new block inside
 * its hot-add handler, with no uevent round trip: the fastest onlining there is), and "offline"
 * otherwise, so that new blocks wait for hotplugd's per-node decision. */
static const char *kernel_online_wanted(Manager *m, const char **why) {
        OnlineAction a;

        if (!m->config.kernel_handoff) {
                *why = "KernelHandoff=no";
                return "offline";
        }
        if (!policy_uniform_action(&m->config, &m->policy_env, &a)) {
                *why = "the policy depends on the node (per-node policy, auto-movable, a quarantined node "
                       "or a retire job)";
                return "offline";
        }
        if (a == ACTION_NONE) {
                *why = "the policy is offline";
                return "offline";
        }
        *why = "the policy is the same for every node";
        return online_action_to_string(a);
}

int manager_update_kernel_online(Manager *m) {
        const char *want, *why;
        int r;

        if (!m->config.take_over || !m->root || m->auto_online_blocks[0] == 0)
                return 0; /* not ours, or a kernel without the knob */
        want = kernel_online_wanted(m, &why);
        if (streq(m->auto_online_blocks, want))
                return 0;
        r = sysfs_write_at(m->root->memory_fd, "auto_online_blocks", want);
        if (r < 0)
                return log_error_errno(r, "Failed to set auto_online_blocks to '%s' (TakeOver=yes): %m", want);
        log_struct(LOG_NOTICE, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_KERNEL_ONLINE),
                   "Kernel auto-online set from '%s' to '%s' (TakeOver=yes): %s.", m->auto_online_blocks, want, why);
        return detect_conflicts(m);
}

/* At start, until the retires a crash interrupted are recovered and the policy is known to be
 * uniform: new blocks wait for hotplugd. The first settle hands the policy to the kernel. */
static int kernel_online_take(Manager *m) {
        int r;

        if (!m->config.take_over || m->auto_online_blocks[0] == 0 || streq(m->auto_online_blocks, "offline"))
                return 0;
        r = sysfs_write_at(m->root->memory_fd, "auto_online_blocks", "offline");
        if (r < 0)
                return log_error_errno(r, "Failed to set auto_online_blocks to offline (TakeOver=yes): %m");
        log_info("TakeOver=yes: kernel auto-online was '%s', set to 'offline' while starting.", m->auto_online_blocks);
        return detect_conflicts(m);
}

/* On a clean exit: new blocks wait for hotplugd's next start rather than follow a policy that
 * nobody watches any more (quarantines and retires included). */
static void kernel_online_release(Manager *m) {
        int r;

        if (!m->config.take_over || !m->root || m->auto_online_blocks[0] == 0 ||
            streq(m->auto_online_blocks, "offline"))
                return;
        r = sysfs_write_at(m->root->memory_fd, "auto_online_blocks", "offline");
        if (r < 0)
                log_warning_errno(r, "Failed to set auto_online_blocks back to offline: %m");
        else
                log_info("Kernel auto-online set back to 'offline' until hotplugd runs again.");
}

static void notify_status(Manager *m) {
        char status[sizeof(m->last_status)];
        unsigned nodes = 0;

        for (int i = 0; i <= m->model->max_node; i++)
                if (model_node(m->model, i) && model_node(m->model, i)->online)
                        nodes++;
        snprintf(status, sizeof(status),
                 "STATUS=%zu memory blocks (%" PRIu64 " online) on %u nodes, policy %s, %zu conflicts",
                 m->model->n_blocks, m->model->n_blocks_by_state[BLOCK_ONLINE], nodes,
                 online_policy_to_string(m->config.policy), m->conflicts.n);
        /* Once per change, not per settle: a storm must not flood the notify socket. */
        if (streq(status, m->last_status))
                return;
        strcpy(m->last_status, status);
        (void) sd_notify(false, status);
}

static void enable_settle(Manager *m) {
        if (m->settle_source)
                (void) sd_event_source_set_enabled(m->settle_source, SD_EVENT_ONESHOT);
}

static void pending_add(Manager *m, uint64_t index) {
        if (index_list_add(&m->pending, &m->n_pending, &m->n_pending_allocated, index) < 0)
                m->resync_requested = true; /* out of memory: a rescan will catch up */
}

/* A block whose node link is not there yet: on_retry reads it again, 5 ms from now and backing off. */
static void retry_arm(Manager *m) {
        int enabled = SD_EVENT_OFF;

        /* Armed once per round: re-arming on every event of a burst would postpone it forever. */
        if (!m->retry_source || m->retry_attempt != 0 ||
            (sd_event_source_get_enabled(m->retry_source, &enabled) >= 0 && enabled != SD_EVENT_OFF))
                return;
        (void) sd_event_source_set_time_relative(m->retry_source, RETRY_FIRST_USEC);
        (void) sd_event_source_set_enabled(m->retry_source, SD_EVENT_ONESHOT);
}

static void unlinked_add(Manager *m, uint64_t index) {
        /* Duplicates are harmless: on_retry reads such a block twice. */
        if (index_list_add(&m->unlinked, &m->n_unlinked, &m->n_unlinked_allocated, index) < 0) {
                m->resync_requested = true;
                return;
        }
        retry_arm(m);
}

static int node_of_cpu(Manager *m, unsigned cpu) {
        for (int id = 0; id <= m->model->max_node; id++) {
                Node *n = model_node(m->model, id);
                if (n && cpuset_isset(&n->present_cpus, cpu))
                        return id;
        }
        return -ENOENT;
}

#define LOG_BURST 200                   /* messages before rate limiting starts */
#define LOG_RATE_PER_SEC 50             /* messages per second after that */

/* Whether one more per-block message may go out now; journald would drop them past its own limit
 * anyway, and the model has every event regardless. */
static bool block_log_allowed(Manager *m) {
        uint64_t now = 0;

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (m->log_refill_usec == 0) {
                m->log_tokens = LOG_BURST;
                m->log_refill_usec = now;
        } else if (now > m->log_refill_usec) {
                m->log_tokens = MIN((double) LOG_BURST, m->log_tokens + (now - m->log_refill_usec) * LOG_RATE_PER_SEC / 1e6);
                m->log_refill_usec = now;
        }
        if (m->log_tokens >= 1) {
                m->log_tokens -= 1;
                return true;
        }
        m->log_suppressed++;
        return false;
}

static void log_block_run(const BlockLogRun *run, void *userdata) {
        static const char *const message_ids[_BLOCK_LOG_KIND_MAX] = {
                [BLOCK_LOG_ADDED] = HOTPLUGD_MESSAGE_BLOCK_ADDED,
                [BLOCK_LOG_ONLINED] = HOTPLUGD_MESSAGE_BLOCK_ONLINED,
                [BLOCK_LOG_OFFLINED] = HOTPLUGD_MESSAGE_BLOCK_OFFLINED,
                [BLOCK_LOG_REMOVED] = HOTPLUGD_MESSAGE_BLOCK_REMOVED,
        };
        Manager *m = userdata;
        char what[64], range[64];

        if (!block_log_allowed(m))
                return;
        /* One block keeps BLOCK= (journalctl BLOCK=40 finds it); a run says BLOCK_RANGE=first-last. */
        if (run->n == 1)
                (void) xsprintf(what, "Memory block %" PRIu64, run->first);
        else
                (void) xsprintf(what, "Memory blocks %" PRIu64 "-%" PRIu64, run->first, run->last);
        (void) xsprintf(range, "BLOCK_RANGE=%" PRIu64 "-%" PRIu64, run->first, run->last);
        const LogFields *f = LOG_FIELDS(.message_id = message_ids[run->kind], .node = run->nid,
                                        .block = run->n == 1 ? (int64_t) run->first : -1,
                                        .extra = run->n == 1 ? NULL : range);
        switch (run->kind) {
        case BLOCK_LOG_ADDED:
                log_struct(LOG_INFO, f, "%s added (node %d, %s).", what, run->nid,
                           block_state_to_string((BlockState) run->detail));
                break;
        case BLOCK_LOG_ONLINED:
                log_struct(LOG_INFO, f, "%s online in zone %s (node %d).", what, zone_to_string((Zone) run->detail), run->nid);
                break;
        case BLOCK_LOG_OFFLINED:
                log_struct(LOG_INFO, f, "%s offline (node %d).", what, run->nid);
                break;
        case BLOCK_LOG_REMOVED:
                log_struct(LOG_INFO, f, "%s removed from node %d.", what, run->nid);
                break;
        default:
                break;
        }
}

/* The per-block messages of a burst, merged into runs of blocks (blocklog.h). */
static void block_log_emit(Manager *m) {
        block_log_flush(&m->block_log, log_block_run, m);
        if (m->log_suppressed > 0) {
                log_info("%" PRIu64 " more memory block messages in this burst were left out (the model has every event).",
                         m->log_suppressed);
                m->log_suppressed = 0;
        }
}

static void block_log_record(Manager *m, BlockLogKind kind, int nid, unsigned detail, uint64_t index) {
        int r = block_log_add(&m->block_log, kind, nid, detail, index);

        if (r > 0)
                block_log_emit(m); /* a storm: log what it did so far, keep memory bounded */
        else if (r < 0)
                m->log_suppressed++;
}

static void handle_memory_event(Manager *m, const Uevent *ev) {
        const Block *b;
        int r;

        if (ev->action == UEVENT_REMOVE) {
                b = model_block(m->model, ev->index);
                if (!b)
                        return;
                int nid = b->nid;
                (void) model_block_remove(m->model, ev->index);
                block_log_record(m, BLOCK_LOG_REMOVED, nid, 0, ev->index);
                return;
        }

        /* add (and unknown blocks) read everything; online/offline only change state and zone. */
        b = model_block(m->model, ev->index);
        /* A block not linked to a node yet is read whole again: its link may be there by now. */
        r = ev->action == UEVENT_ADD || !b || b->nid == NODE_NONE ? scan_block(m->root, m->model, ev->index)
                                                                 : scan_block_state(m->root, m->model, ev->index);
        if (r == -ENOENT)
                return; /* gone again: its remove event follows (or was lost: a resync fixes that) */
        if (r < 0) {
                log_warning_errno(r, "Failed to read memory block %" PRIu64 ", ignoring: %m", ev->index);
                return;
        }
        b = model_block(m->model, ev->index);

        switch (ev->action) {
        case UEVENT_ADD:
                block_log_record(m, BLOCK_LOG_ADDED, b->nid, b->state, ev->index);
                pending_add(m, ev->index);
                if (b->nid == NODE_NONE)
                        unlinked_add(m, ev->index);
                break;
        case UEVENT_ONLINE:
                block_log_record(m, BLOCK_LOG_ONLINED, b->nid, b->zone, ev->index);
                break;
        case UEVENT_OFFLINE:
                block_log_record(m, BLOCK_LOG_OFFLINED, b->nid, 0, ev->index);
                break;
        default:
                break;
        }
}

static void handle_node_event(Manager *m, const Uevent *ev) {
        int id = (int) ev->index;
        Node *n;

        model_mark_dirty(m->model, id);
        if (ev->action == UEVENT_ADD) {
                if (model_node_ensure(m->model, id, &n) < 0)
                        return;
                n->online = true;
                (void) scan_node_cpus_present(m->root, m->model, id);
                log_struct(LOG_INFO, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_NODE_ONLINE, .node = id),
                           "NUMA node %d is online.", id);
                /* The kernel links blocks to a new node after announcing both: look again now. */
                m->retry_attempt = 0;
                if (m->n_unlinked > 0 && m->retry_source)
                        (void) sd_event_source_set_time_relative(m->retry_source, 0),
                                (void) sd_event_source_set_enabled(m->retry_source, SD_EVENT_ONESHOT);
        } else if (ev->action == UEVENT_REMOVE) {
                n = model_node(m->model, id);
                if (n)
                        n->online = false;
                log_struct(LOG_INFO, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_NODE_OFFLINE, .node = id),
                           "NUMA node %d went offline.", id);
        }
}

static void handle_cpu_event(Manager *m, const Uevent *ev) {
        unsigned cpu = (unsigned) ev->index;
        int id;
        Node *n;

        switch (ev->action) {
        case UEVENT_ADD:
                id = scan_cpu_node(m->root, cpu);
                if (id < 0 || model_node_ensure(m->model, id, &n) < 0)
                        return;
                cpuset_set(&n->present_cpus, cpu);
                n->n_present_cpus = cpuset_count(&n->present_cpus);
                (void) scan_node_cpus_online(m->root, m->model, id);
                break;
        case UEVENT_REMOVE:
                id = node_of_cpu(m, cpu);
                if (id < 0)
                        return;
                n = model_node(m->model, id);
                n->present_cpus.bits[cpu / 64] &= ~(UINT64_C(1) << (cpu % 64));
                n->n_present_cpus = cpuset_count(&n->present_cpus);
                (void) scan_node_cpus_online(m->root, m->model, id);
                break;
        default:
                id = node_of_cpu(m, cpu);
                if (id < 0)
                        id = scan_cpu_node(m->root, cpu);
                if (id < 0)
                        return;
                (void) scan_node_cpus_online(m->root, m->model, id);
        }
        model_mark_dirty(m->model, id);
}

void manager_handle_uevent(Manager *m, const Uevent *ev) {
        m->stats.events++;
        /* The kernel numbers every uevent; a step back means a replay or reordering, which is
         * harmless because every handler re-reads sysfs instead of trusting the event. */
        if (ev->seqnum > m->last_seqnum)
                m->last_seqnum = ev->seqnum;

        switch (ev->subsystem) {
        case UEVENT_MEMORY:
                handle_memory_event(m, ev);
                break;
        case UEVENT_NODE:
                handle_node_event(m, ev);
                break;
        case UEVENT_CPU:
                handle_cpu_event(m, ev);
                break;
        case UEVENT_ACPI:
                log_debug("ACPI %s %s.", ev->acpi_name, uevent_action_to_string(ev->action));
                break;
        default:
                break;
        }
        enable_settle(m);
}

/* Counts a decision that is written but not yet read back, so that auto-movable's ratio sees it
 * (sign +1 when submitted, -1 when done). */
static void policy_pending_account(Manager *m, int nid, OnlineAction a, int sign) {
        if (nid < 0 || nid >= MODEL_MAX_NODES)
                return;
        if (a == ACTION_ONLINE_MOVABLE)
                m->policy_pending_movable[nid] += (unsigned) sign;
        else if (a == ACTION_ONLINE_KERNEL)
                m->policy_pending_kernel[nid] += (unsigned) sign;
}

static OnlineAction action_of_value(const char *value) {
        for (OnlineAction a = ACTION_ONLINE; a < _ACTION_MAX; a++)
                if (streq(value, online_action_to_string(a)))
                        return a;
        return ACTION_NONE;
}

/* What the kernel made of one policy write: re-read, never trust the write alone. */
static bool policy_write_done(Manager *m, uint64_t index, const char *action, int r) {
        OnlineAction a = action_of_value(action);
        const Block *b;
        int nid;

        (void) scan_block(m->root, m->model, index);
        b = model_block(m->model, index);
        nid = b ? b->nid : -1;
        if (r < 0) {
                /* EINVAL on a block that is online by now: another onliner (the kernel's auto-online,
                 * a udev rule) was first. That is not our failure. */
                if (b && b->state == BLOCK_ONLINE) {
                        log_debug("Memory block %" PRIu64 " was already onlined by someone else.", index);
                        return false;
                }
                m->stats.online_failures++;
                log_struct_errno(LOG_ERR, r, LOG_FIELDS(.node = nid, .block = (int64_t) index),
                                 "Failed to online memory block %" PRIu64 " (%s): %m", index, action);
                return false;
        }
        m->stats.onlined++;
        log_debug("Wrote '%s' to memory block %" PRIu64 " (node %d).", action, index, nid);
        if (b && nid == NODE_NONE)
                /* Decided before its node link appeared (uniform policy): read it again once linked. */
                unlinked_add(m, index);
        if (b && b->state == BLOCK_ONLINE && !online_action_zone_ok(a, b->zone)) {
                m->stats.zone_mismatches++;
                log_struct(LOG_WARNING, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_ZONE_MISMATCH, .node = nid, .block = (int64_t) index),
                           "Memory block %" PRIu64 " was onlined with '%s' but landed in zone %s.", index, action,
                           zone_to_string(b->zone));
        }
        return true;
}

static void on_policy_batch_done(WorkBatch *batch, void *userdata) {
        Manager *m = userdata;
        size_t n = 0, onlined = 0;
        WorkItem *items = work_batch_items(batch, &n);

        for (size_t i = 0; i < n; i++) {
                const Block *b = model_block(m->model, items[i].tag);
                policy_pending_account(m, b ? b->nid : -1, action_of_value(items[i].value), -1);
                onlined += policy_write_done(m, items[i].tag, items[i].value, items[i].result);
        }
        if (onlined > 0)
                log_info("Onlined %zu of %zu new memory blocks by policy.", onlined, n);
        enable_settle(m);
}

/* Decides for the new blocks of a burst and hands the writes to the worker thread: an online
 * write waits for the kernel's device_hotplug_lock, which a long offline (a drain) holds for
 * minutes, and the event loop must never wait for that. */
static void apply_policy_now(Manager *m, const uint64_t *indexes, size_t n) {
        _cleanup_free_ WorkItem *items = calloc(MAX(n, (size_t) 1), sizeof(WorkItem));
        Worker *w = NULL;
        size_t k = 0;
        int r;

        if (!items) {
                log_error("Out of memory: %zu new blocks are not onlined by policy.", n);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                PolicyDecision d = policy_decide(&m->config, m->model, indexes[i], &m->policy_env);
                const Block *b = model_block(m->model, indexes[i]);

                if (d.action == ACTION_NONE) {
                        log_debug("Memory block %" PRIu64 " stays as it is: %s.", indexes[i], d.reason);
                        continue;
                }
                (void) xsprintf(items[k].path, "memory%" PRIu64 "/state", indexes[i]);
                (void) xsprintf(items[k].value, "%s", online_action_to_string(d.action));
                items[k].timeout_usec = POLICY_WRITE_TIMEOUT_USEC;
                items[k].tag = indexes[i];
                policy_pending_account(m, b->nid, d.action, +1);
                k++;
        }
        if (k == 0)
                return;
        r = manager_get_worker(m, &w);
        if (r >= 0)
                r = worker_submit(w, items, k, NULL, on_policy_batch_done, m, NULL);
        if (r >= 0)
                return;
        /* No worker (out of threads or memory): write here rather than not at all. */
        log_warning_errno(r, "Failed to hand policy writes to the worker, writing them directly: %m");
        for (size_t i = 0; i < k; i++) {
                const Block *b = model_block(m->model, items[i].tag);
                policy_pending_account(m, b ? b->nid : -1, action_of_value(items[i].value), -1);
                (void) policy_write_done(m, items[i].tag, items[i].value,
                                         sysfs_write_at(m->root->memory_fd, items[i].path, items[i].value));
        }
}

/* Is the policy in the kernel's hands right now (auto_online_blocks says what we would write)? */
static bool kernel_online_handed_off(Manager *m) {
        OnlineAction a;

        return m->config.take_over && m->config.kernel_handoff && m->auto_online_blocks[0] &&
               policy_uniform_action(&m->config, &m->policy_env, &a) && a != ACTION_NONE &&
               streq(m->auto_online_blocks, online_action_to_string(a));
}

static int on_handoff_check(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        size_t k = 0;

        /* What the kernel left offline (a failed in-line online, a block added before the
         * hand-off): hotplugd's own decision, as without the hand-off. */
        for (size_t i = 0; i < m->n_handed_off; i++) {
                const Block *b;

                if (scan_block_state(m->root, m->model, m->handed_off[i]) < 0)
                        continue;
                b = model_block(m->model, m->handed_off[i]);
                if (b && b->state == BLOCK_OFFLINE)
                        m->handed_off[k++] = m->handed_off[i];
        }
        if (k > 0) {
                log_info("%zu new memory blocks are still offline %.0f s after the kernel was to online them; onlining them by policy.",
                         k, (double) HANDOFF_CHECK_USEC / 1e6);
                apply_policy_now(m, m->handed_off, k);
        }
        m->n_handed_off = 0;
        return 0;
}

/* With the policy handed off, the kernel onlines every new block inside its hot-add handler: a
 * write from here would only race it (and fail with EINVAL once the kernel is done). Look again
 * later instead. */
static void apply_policy(Manager *m, const uint64_t *indexes, size_t n) {
        if (n == 0)
                return;
        if (kernel_online_handed_off(m) && m->handoff_source) {
                bool armed = m->n_handed_off > 0;

                for (size_t i = 0; i < n; i++)
                        if (index_list_add(&m->handed_off, &m->n_handed_off, &m->n_handed_off_allocated, indexes[i]) < 0) {
                                apply_policy_now(m, indexes + i, n - i);
                                break;
                        }
                if (!armed) {
                        (void) sd_event_source_set_time_relative(m->handoff_source, HANDOFF_CHECK_USEC);
                        (void) sd_event_source_set_enabled(m->handoff_source, SD_EVENT_ONESHOT);
                }
                return;
        }
        apply_policy_now(m, indexes, n);
}

/* The kernel links a hot-added block to its ACPI memory device (firmware_node) only after the
 * device's add_memory() returned, so after the block's add uevent and, with in-kernel onlining, its
 * online uevent too; no uevent announces the link. A block seen without it is looked at once more
 * OWNER_RECHECK_USEC later (and retire's preflight reads it again before refusing boot memory). */
static void owner_recheck_add(Manager *m, uint64_t index) {
        bool armed = m->n_owner_recheck > 0;

        if (!m->owner_source || index_list_add(&m->owner_recheck, &m->n_owner_recheck, &m->n_owner_recheck_allocated, index) < 0)
                return;
        if (!armed) {
                (void) sd_event_source_set_time_relative(m->owner_source, OWNER_RECHECK_USEC);
                (void) sd_event_source_set_enabled(m->owner_source, SD_EVENT_ONESHOT);
        }
}

static int on_owner_recheck(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        size_t n = index_list_uniq(m->owner_recheck, m->n_owner_recheck), found = 0;

        for (size_t i = 0; i < n; i++) {
                const Block *b = model_block(m->model, m->owner_recheck[i]);
                char path[64], target[8];

                if (!b || b->owner == OWNER_ACPI)
                        continue;
                (void) xsprintf(path, "memory%" PRIu64 "/firmware_node", m->owner_recheck[i]);
                if (readlinkat(m->root->memory_fd, path, target, sizeof(target)) > 0 &&
                    scan_block(m->root, m->model, m->owner_recheck[i]) >= 0)
                        found++;
        }
        m->n_owner_recheck = 0;
        if (found > 0) {
                log_debug("%zu memory blocks were linked to their ACPI memory device after their uevents.", found);
                enable_settle(m); /* tells the bus */
        }
        return 0;
}

static int refresh_derived(Manager *m) {
        int r;

        if (!m->model->any_dirty)
                return 0;
        /* Both keep what the model had when the kernel's files cannot be read or make no sense. */
        r = scan_node_masks(m->root, m->model);
        if (r < 0)
                log_warning_errno(r, "Failed to read node masks (%s/sys/devices/system/node/{possible,online,has_memory}), "
                                  "keeping the previous ones: %m", streq(m->root_path, "/") ? "" : m->root_path);
        r = scan_zoneinfo(m->root, m->model);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to read zoneinfo (%s/proc/zoneinfo), keeping the previous spans: %m",
                                  streq(m->root_path, "/") ? "" : m->root_path);
        for (int id = 0; id <= m->model->max_node; id++) {
                Node *n = model_node(m->model, id);

                if (!n || !model_node_is_dirty(m->model, id))
                        continue;
                (void) scan_node_hugepages(m->root, m->model, id);
                /* The kernel removed the node and no block refers to it any more: it leaves the
                 * model as it left sysfs (it stays in "possible", which the kernel never shrinks). */
                if (!n->online && n->n_blocks == 0)
                        model_node_remove(m->model, id);
        }
        for (size_t i = 0; i < ELEMENTSOF(m->changed_nodes); i++)
                m->changed_nodes[i] |= m->model->dirty_nodes[i];
        model_clear_dirty(m->model);
        return 0;
}

int manager_settle(Manager *m) {
        size_t n;

        if (m->resync_requested)
                return manager_resync(m, "lost uevents");

        n = index_list_uniq(m->pending, m->n_pending);
        if (n > 0) {
                /* Owners from /proc/iomem once per burst; ACPI links may have appeared late too. */
                for (size_t i = 0; i < n; i++) {
                        const Block *b = model_block(m->model, m->pending[i]);
                        char path[64], target[8];

                        if (!b || b->owner == OWNER_ACPI)
                                continue;
                        (void) xsprintf(path, "memory%" PRIu64 "/firmware_node", m->pending[i]);
                        if (readlinkat(m->root->memory_fd, path, target, sizeof(target)) > 0)
                                (void) scan_block(m->root, m->model, m->pending[i]);
                        else
                                owner_recheck_add(m, m->pending[i]);
                }
                (void) scan_owners(m->root, m->model, m->pending, n);
                apply_policy(m, m->pending, n);
        }
        m->n_pending = 0;

        (void) refresh_derived(m);

        block_log_emit(m);

        if (m->n_unlinked > 0)
                retry_arm(m);
        if (m->bus)
                manager_bus_flush(m);
        else
                memset(m->changed_nodes, 0, sizeof(m->changed_nodes));
        retire_model_changed(m);
        (void) manager_update_kernel_online(m);
        notify_status(m);
        return 0;
}

int manager_resync(Manager *m, const char *why) {
        _cleanup_(model_freep) Model *fresh = NULL;
        int r;

        m->resync_requested = false;
        block_log_emit(m); /* what the events before the loss said */
        r = scan_model(m->root, &fresh);
        if (r < 0)
                return log_error_errno(r, "Failed to rescan memory after %s: %m", why);
        m->stats.resyncs++;

        /* Offline blocks we did not know are new: give them to the policy. ZONE_DEVICE history
         * is sticky by the kernel's rule, keep it. */
        m->n_pending = 0;
        for (uint64_t i = 0; i < fresh->n_block_slots; i++) {
                const Block *b = model_block(fresh, i);
                if (b && b->state == BLOCK_OFFLINE && !model_block(m->model, i))
                        pending_add(m, i);
        }
        for (int id = 0; id <= fresh->max_node; id++) {
                Node *old = model_node(m->model, id), *n = model_node(fresh, id);
                if (old && n && old->ever_zone_device)
                        n->ever_zone_device = true;
        }
        /* Every node may have changed: tell the bus about all of them. */
        for (int id = 0; id < MODEL_MAX_NODES; id++)
                if (model_node(m->model, id) || model_node(fresh, id))
                        m->changed_nodes[id / 64] |= UINT64_C(1) << (id % 64);
        model_free(m->model);
        m->model = TAKE_PTR(fresh);
        m->n_unlinked = 0;
        log_warning("Resynchronized the model from sysfs after %s: %zu blocks, %zu new offline blocks.", why,
                    m->model->n_blocks, m->n_pending);
        if (m->n_pending > 0)
                return manager_settle(m);
        if (m->bus)
                manager_bus_flush(m);
        else
                memset(m->changed_nodes, 0, sizeof(m->changed_nodes));
        notify_status(m);
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        size_t k = 0;
        int r;

        for (size_t i = 0; i < m->n_unlinked; i++) {
                uint64_t index = m->unlinked[i];
                const Block *b;

                r = scan_block(m->root, m->model, index);
                if (r == -ENOENT)
                        continue; /* gone: its remove event follows */
                b = model_block(m->model, index);
                if (r < 0 || !b || b->nid == NODE_NONE)
                        m->unlinked[k++] = index;
                else
                        pending_add(m, index);
        }
        m->n_unlinked = k;
        if (k > 0 && ++m->retry_attempt < RETRY_MAX_ATTEMPTS) {
                (void) sd_event_source_set_time_relative(s, RETRY_FIRST_USEC << m->retry_attempt);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        } else if (k > 0) {
                log_warning("%zu memory blocks still link to no NUMA node; leaving them alone.", k);
                m->n_unlinked = 0;
                m->retry_attempt = 0;
        } else
                m->retry_attempt = 0;
        return manager_settle(m);
}

static int on_settle(sd_event_source *s, void *userdata) {
        return manager_settle(userdata), 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* A storm keeps the uevent socket readable for seconds. sd-event alternates between the monitor
 * and the bus, and sd-bus handles one message per dispatch: with a batch of 2048 events (~30 ms)
 * per turn, the 16th queued D-Bus call waited 16 turns, half a second (bench/run-all.py, "D-Bus
 * under load"). So a batch ends after DISPATCH_BUDGET_USEC, and the calls queued meanwhile are
 * answered right after it, a bounded number so that clients cannot starve the events either. */
static void serve_bus(Manager *m) {
        for (unsigned i = 0; m->bus && i < BUS_MESSAGES_PER_DISPATCH; i++)
                if (sd_bus_process(m->bus, NULL) <= 0)
                        break;
}

static bool any_job_active(Manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (!job_state_is_final(m->jobs[i]->state))
                        return true;
        return false;
}

/* With the policy handed off, the kernel onlines new blocks inside its own hot-add handler and
 * hotplugd only records what happened. Reading every uevent as it comes (a DIMM of 16 blocks: 32
 * events in ~0.1 s) would take CPU from the very onlining being recorded, so then uevents are
 * read in batches, HANDOFF_BATCH_USEC after the first of each. Not while a job runs or a resync
 * is due: those act on events. */
static bool events_batched(Manager *m) {
        return m->batch_source && !m->resync_requested && kernel_online_handed_off(m) && !any_job_active(m);
}

static int on_batch_due(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->batch_reading = true;
        (void) sd_event_source_set_enabled(m->monitor_source, SD_EVENT_ON);
        return 0;
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        uint64_t start;
        unsigned i;

        if (!m->batch_reading && events_batched(m)) {
                (void) sd_event_source_set_enabled(m->monitor_source, SD_EVENT_OFF);
                (void) sd_event_source_set_time_relative(m->batch_source, HANDOFF_BATCH_USEC);
                (void) sd_event_source_set_enabled(m->batch_source, SD_EVENT_ONESHOT);
                return 0;
        }

        start = now_usec();
        for (i = 0; i < EVENTS_PER_DISPATCH; i++) {
                struct udev_device *d;
                Uevent ev;
                int r;

                if (i % 16 == 15 && now_usec() - start >= DISPATCH_BUDGET_USEC)
                        break;

                errno = 0;
                d = udev_monitor_receive_device(m->monitor);
                if (!d) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == 0) {
                                m->batch_reading = false; /* all read: the next event starts a batch */
                                break;
                        }
                        if (errno == ENOBUFS) {
                                /* The kernel dropped events for us: the model can no longer be
                                 * trusted. Drain what is queued, then rescan everything. */
                                if (!m->resync_requested)
                                        log_warning("uevent socket overflowed (ENOBUFS), will resync from sysfs.");
                                m->resync_requested = true;
                                enable_settle(m);
                                continue;
                        }
                        if (errno == EINTR)
                                continue;
                        log_debug_errno(errno, "Failed to receive uevent, ignoring: %m");
                        break;
                }
                r = uevent_decode(udev_device_get_action(d), udev_device_get_subsystem(d),
                                  udev_device_get_devpath(d), udev_device_get_property_value(d, "SEQNUM"), &ev);
                if (r >= 0 && ev.subsystem == UEVENT_ACPI && ev.action == UEVENT_CHANGE) {
                        const char *e = udev_device_get_property_value(d, "EVENT");
                        ev.eject_request = e && streq(e, "offline");
                }
                udev_device_unref(d);
                if (r < 0) {
                        m->stats.events_ignored++;
                        continue;
                }
                manager_handle_uevent(m, &ev);
        }
        /* Only when the batch was cut short: more events wait, and so may callers. */
        if (i == EVENTS_PER_DISPATCH || now_usec() - start >= DISPATCH_BUDGET_USEC)
                serve_bus(m);
        return 0;
}

static int setup_monitor(Manager *m) {
        static const char *const subsystems[] = { "memory", "node", "cpu", "acpi" };
        const char *source = m->config.event_source == EVENT_SOURCE_KERNEL ? "kernel" : "udev";
        int r;

        m->udev = udev_new();
        if (!m->udev)
                return log_error_errno(negative_errno(), "Failed to create udev context: %m");
        m->monitor = udev_monitor_new_from_netlink(m->udev, source);
        if (!m->monitor)
                return log_error_errno(negative_errno(), "Failed to create %s uevent monitor: %m", source);
        for (size_t i = 0; i < ELEMENTSOF(subsystems); i++) {
                r = udev_monitor_filter_add_match_subsystem_devtype(m->monitor, subsystems[i], NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to add uevent filter: %m");
        }
        /* A coldplug or a big DIMM burst delivers 10^4..10^5 events at once (openSUSE had to stop
         * memory coldplug over this); a large buffer avoids ENOBUFS, a resync covers the rest. */
        r = udev_monitor_set_receive_buffer_size(m->monitor, (int) MIN(m->config.receive_buffer_size, (size_t) INT_MAX));
        if (r < 0)
                log_warning_errno(r, "Failed to set uevent receive buffer to %zu bytes, ignoring: %m",
                                  m->config.receive_buffer_size);
        /* libudev receives nothing from the "udev" source without a running systemd-udevd. */
        if (m->config.event_source == EVENT_SOURCE_UDEV && access("/run/udev/control", F_OK) < 0)
                log_warning("EventSource=udev, but systemd-udevd does not seem to run (no /run/udev/control): "
                            "no events will arrive. Use EventSource=kernel on hosts without it.");
        r = udev_monitor_enable_receiving(m->monitor);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the %s uevent monitor: %m", source);
        r = sd_event_add_io(m->event, &m->monitor_source, udev_monitor_get_fd(m->monitor), EPOLLIN, on_monitor, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the uevent monitor: %m");
        (void) sd_event_source_set_description(m->monitor_source, "uevent-monitor");
        log_debug("Listening to %s uevents for memory, node, cpu and acpi.", source);
        return 0;
}

int manager_dump(Manager *m, FILE *f) {
        DumpInput in = {
                .root = m->root_path,
                .auto_online_blocks = m->auto_online_blocks[0] ? m->auto_online_blocks : NULL,
                .model = m->model,
                .config = &m->config,
                .conflicts = &m->conflicts,
                .env = &m->policy_env,
        };
        return dump_model_json(f, &in);
}

static int on_sigusr2(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        DumpInput in;
        int r;

        /* Dump what a settled model says, not a half-applied burst. Settling may resync, which
         * replaces m->model: only look at it afterwards. */
        (void) manager_settle(m);
        in = (DumpInput){
                .root = m->root_path,
                .auto_online_blocks = m->auto_online_blocks[0] ? m->auto_online_blocks : NULL,
                .model = m->model,
                .config = &m->config,
                .conflicts = &m->conflicts,
                .env = &m->policy_env,
        };
        r = dump_model_to_file(m->runtime_dir, "model.json", &in);
        if (r < 0)
                log_error_errno(r, "Failed to write %s/model.json: %m", m->runtime_dir);
        else
                log_info("Model written to %s/model.json.", m->runtime_dir);
        return 0;
}

int manager_reload_config(Manager *m) {
        _cleanup_free_ char *error = NULL;
        Config c;
        int r;

        config_init(&c);
        r = config_load(m->root_path, m->config_path, &c, &error);
        if (r < 0) {
                config_done(&c);
                return log_error_errno(r, "Failed to reload configuration, keeping the old one: %s",
                                       error ?: strerror(-r));
        }
        if (c.event_source != m->config.event_source)
                log_warning("EventSource= changes take effect at the next start.");
        config_done(&m->config);
        m->config = c;
        log_set_max_level(m->config.log_level >= 0 ? m->config.log_level : m->default_log_level);
        (void) detect_conflicts(m);
        log_conflicts(m);
        (void) manager_update_kernel_online(m);
        log_info("Configuration reloaded: policy %s.", online_policy_to_string(m->config.policy));
        manager_bus_config_reloaded(m); /* re-applies runtime per-node policies, emits changes */
        notify_status(m);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(false, "RELOADING=1");
        (void) manager_reload_config(m);
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(false, "STOPPING=1");
        kernel_online_release(m);
        m->exiting = true;
        log_info("Received %s, exiting.", strsignal((int) si->ssi_signo));
        return sd_event_exit(m->event, 0);
}

/* A missing main file means defaults, but a file named with --config must exist: a typo there
 * would otherwise run with defaults silently. */
static int load_config(Manager *m, char **error) {
        if (m->config_path && access(m->config_path, R_OK) < 0) {
                int r = negative_errno();
                if (asprintf(error, "%s: %s", m->config_path, strerror(-r)) < 0)
                        *error = NULL;
                return r;
        }
        return config_load(m->root_path, m->config_path, &m->config, error);
}

/* What a running daemon and --dump-model both need: the config, the tree, the persisted
 * quarantine and the other onliners. Writes nothing when readonly (no state directory is made). */
static int manager_load(Manager *m, bool readonly) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = load_config(m, &error);
        if (r < 0)
                return log_error_errno(r, "%s: %s", readonly ? "Invalid configuration" : "Refusing to start with an invalid configuration",
                                       error ?: strerror(-r));
        if (m->config.log_level >= 0)
                log_set_max_level(m->config.log_level);

        r = sysroot_open(m->root_path, &m->root);
        if (r < 0)
                return log_error_errno(r, "Failed to open %s/sys/devices/system/memory: %m",
                                       streq(m->root_path, "/") ? "" : m->root_path);
        m->policy_env.virtual_machine = detect_virtual_machine(m->root);
        m->policy_env.quarantined = m->quarantined;
        m->policy_env.retiring = m->retiring;
        m->policy_env.pending_movable = m->policy_pending_movable;
        m->policy_env.pending_kernel = m->policy_pending_kernel;

        r = state_dir_open(m->state_dir, !readonly, &m->state_fd, m->state_dir ? NULL : &m->state_dir);
        if (r < 0 && !(readonly && r == -ENOENT))
                log_warning_errno(r, "Failed to open the state directory%s: %m",
                                  readonly ? "" : ", retire jobs will not survive a crash");
        if (r >= 0) {
                r = quarantine_load(m->state_fd, m->quarantined);
                if (r < 0)
                        log_warning_errno(r, "Ignoring the persisted quarantine list: %m");
                else if (!readonly) {
                        char list[256];
                        node_list_format(m->quarantined, MODEL_MAX_NODES, list, sizeof(list));
                        if (list[0])
                                log_info("Quarantined nodes (no memory is onlined on them): %s.", list);
                }
        }
        return detect_conflicts(m);
}

int manager_start(Manager *m) {
        sigset_t mask;
        int r;

        r = manager_load(m, false);
        if (r < 0)
                return r;
        r = mkdir_parents(m->runtime_dir, 0755);
        if (r < 0)
                log_warning_errno(r, "Failed to create %s, ignoring: %m", m->runtime_dir);
        log_conflicts(m);
        r = kernel_online_take(m);
        if (r < 0)
                return r;

        /* Listen before scanning: what changes during the scan arrives as events afterwards, and
         * every handler re-reads sysfs, so nothing falls between the scan and the monitor. */
        r = setup_monitor(m);
        if (r < 0)
                return r;
        r = scan_model(m->root, &m->model);
        if (r < 0)
                return log_error_errno(r, "Failed to scan memory blocks and nodes: %m");

        r = sd_event_add_defer(m->event, &m->settle_source, on_settle, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(m->settle_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(m->settle_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->settle_source, "settle");
        r = sd_event_add_time_relative(m->event, &m->retry_source, CLOCK_MONOTONIC, RETRY_FIRST_USEC, 0, on_retry, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->retry_source, SD_EVENT_OFF);
        r = sd_event_add_time_relative(m->event, &m->handoff_source, CLOCK_MONOTONIC, HANDOFF_CHECK_USEC, 0, on_handoff_check, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->handoff_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->handoff_source, "handoff-check");
        r = sd_event_add_time_relative(m->event, &m->owner_source, CLOCK_MONOTONIC, OWNER_RECHECK_USEC, 0, on_owner_recheck, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->owner_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->owner_source, "owner-recheck");
        r = sd_event_add_time_relative(m->event, &m->batch_source, CLOCK_MONOTONIC, HANDOFF_BATCH_USEC, 0, on_batch_due, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->batch_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->batch_source, "uevent-batch");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR2);
        sigaddset(&mask, SIGCHLD);      /* hooks run as children (sd_event_add_child) */
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGUSR2, on_sigusr2, m);
        if (r < 0)
                return log_error_errno(r, "Failed to install signal handlers: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        log_info("Tracking %zu memory blocks of %" PRIu64 " MiB; policy %s%s.", m->model->n_blocks,
                 m->model->block_size >> 20, online_policy_to_string(m->config.policy),
                 m->config.policy == POLICY_AUTO ? (m->policy_env.virtual_machine ? " (virtual machine: online)"
                                                                                  : " (bare metal: online_movable)")
                                                 : "");

        /* The bus, then the retires a crash interrupted: their nodes are marked as being retired
         * before the policy looks at offline blocks, so that nothing a journal owns is onlined. */
        r = manager_bus_setup(m);
        if (r < 0)
                return r;
        r = retire_recover(m);
        if (r < 0)
                log_error_errno(r, "Failed to recover interrupted retire jobs: %m");

        /* Blocks that are offline now are handed to the policy like a coldplug would. */
        for (uint64_t i = 0; i < m->model->n_block_slots; i++) {
                const Block *b = model_block(m->model, i);
                if (b && b->state == BLOCK_OFFLINE)
                        pending_add(m, i);
        }
        r = manager_settle(m);
        if (r < 0)
                return r;
        m->started = true;
        (void) sd_notify(false, "READY=1");
        return 0;
}

int manager_run(Manager *m) {
        return sd_event_loop(m->event);
}

int manager_load_readonly(Manager *m) {
        int r;

        r = manager_load(m, true);
        if (r < 0)
                return r;
        r = scan_model(m->root, &m->model);
        if (r < 0)
                return log_error_errno(r, "Failed to scan memory blocks and nodes: %m");
        return 0;
}
