/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager-dbus.c — org.hotplugd.Hotplug1.Manager: connection, vtable, node methods, change signals. */
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-id128.h>

#include "blocks-dbus.h"
#include "config-build.h"
#include "hotplug-bus.h"
#include "job-dbus.h"
#include "log.h"
#include "manager-dbus.h"
#include "node-dbus.h"
#include "polkit.h"
#include "preflight.h"
#include "retire.h"
#include "worker.h"

/* ---- helpers shared by the *-dbus.c files ----------------------------------------------- */

int manager_bus_verify(Manager *m, sd_bus_message *message, const char *action, const char *const *details,
                       sd_bus_error *error) {
        ManagerBus *mb = manager_bus(m);

        if (!mb || !mb->polkit)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Authorization is not available.");
        return polkit_verify_async(mb->polkit, message, action, details, error);
}

int manager_get_worker(Manager *m, Worker **ret) {
        int r;

        if (!m->worker) {
                r = worker_new(m->event, m->root->memory_fd, &m->worker);
                if (r < 0)
                        return log_error_errno(r, "Failed to start the worker thread: %m");
        }
        *ret = m->worker;
        return 0;
}

void manager_format_nodes(Manager *m, char *buf, size_t size) {
        size_t l = 0;

        buf[0] = 0;
        for (int id = 0; id <= m->model->max_node && l + 24 < size; id++) {
                int e;

                if (!model_node(m->model, id))
                        continue;
                for (e = id; e + 1 <= m->model->max_node && model_node(m->model, e + 1); e++)
                        ;
                l += (size_t) snprintf(buf + l, size - l, e == id ? "%s%d" : "%s%d-%d", l ? "," : "", id, e);
                id = e;
        }
        if (l == 0)
                snprintf(buf, size, "none");
}

static bool policy_overridden(Manager *m, int node) {
        return (m->policy_overridden[node / 64] >> (node % 64)) & 1;
}

/* The config's [Node N] entry (kept sorted by node, see config.h), created if asked. */
static NodeConfig *config_node_entry(Config *c, int node, bool create) {
        NodeConfig *nodes;
        size_t i;

        for (i = 0; i < c->n_nodes && c->nodes[i].node < node; i++)
                ;
        if (i < c->n_nodes && c->nodes[i].node == node)
                return &c->nodes[i];
        if (!create)
                return NULL;
        nodes = realloc(c->nodes, (c->n_nodes + 1) * sizeof(NodeConfig));
        if (!nodes)
                return NULL;
        c->nodes = nodes;
        memmove(c->nodes + i + 1, c->nodes + i, (c->n_nodes - i) * sizeof(NodeConfig));
        c->nodes[i] = (NodeConfig) { .node = node, .policy = POLICY_INHERIT, .movable_ratio = 0 };
        c->n_nodes++;
        return &c->nodes[i];
}

int manager_set_node_policy(Manager *m, int node, OnlinePolicy policy, bool clear) {
        ManagerBus *mb = manager_bus(m);
        NodeConfig *e;

        if (node < 0 || node >= MODEL_MAX_NODES || !mb)
                return -EINVAL;
        if (clear) {
                if (!policy_overridden(m, node))
                        return 0;
                e = config_node_entry(&m->config, node, false);
                if (e)
                        e->policy = mb->policy_base[node];
                m->policy_overridden[node / 64] &= ~(UINT64_C(1) << (node % 64));
                return manager_update_kernel_online(m), 0;
        }
        if (!policy_overridden(m, node)) {
                e = config_node_entry(&m->config, node, false);
                mb->policy_base[node] = (int8_t) (e ? e->policy : POLICY_INHERIT);
        }
        e = config_node_entry(&m->config, node, true);
        if (!e)
                return -ENOMEM;
        e->policy = policy;
        m->policy_override[node] = (int8_t) policy;
        m->policy_overridden[node / 64] |= UINT64_C(1) << (node % 64);
        /* A node that now differs from the others takes the policy back from the kernel. */
        return manager_update_kernel_online(m), 0;
}

OnlinePolicy manager_node_policy(Manager *m, int node, bool *ret_runtime) {
        if (ret_runtime)
                *ret_runtime = policy_overridden(m, node);
        return config_node_policy(&m->config, node);
}

/* The node, or NULL with NoSuchNode set, naming the nodes that do exist. */
static Node *find_node(Manager *m, uint32_t id, sd_bus_error *error) {
        Node *n = id < MODEL_MAX_NODES ? model_node(m->model, (int) id) : NULL;
        char nodes[256];

        if (!n) {
                manager_format_nodes(m, nodes, sizeof(nodes));
                (void) sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node %" PRIu32 " does not exist (nodes: %s).",
                                         id, nodes);
        }
        return n;
}

/* ---- properties ------------------------------------------------------------------------- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_block_size(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "t", m->model->block_size);
}

static int property_get_policy(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", online_policy_to_string(m->config.policy));
}

static int property_get_virtual_machine(sd_bus *bus, const char *path, const char *interface, const char *property,
                                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "b", (int) m->policy_env.virtual_machine);
}

static int property_get_auto_online(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", m->auto_online_blocks);
}

static int property_get_counts(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t v;

        if (streq(property, "NBlocks"))
                v = m->model->n_blocks;
        else if (streq(property, "NOnlineBlocks"))
                v = m->model->n_blocks_by_state[BLOCK_ONLINE] + m->model->n_blocks_by_state[BLOCK_GOING_OFFLINE];
        else
                v = m->model->n_blocks_by_state[BLOCK_OFFLINE];
        return sd_bus_message_append(reply, "t", v);
}

static int property_get_conflicts(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->conflicts.n; i++) {
                const Conflict *c = &m->conflicts.items[i];

                r = sd_bus_message_append(reply, "(sss)", conflict_kind_to_string(c->kind), c->source ?: "",
                                          c->detail ?: "");
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_nodes(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (int id = 0; id <= m->model->max_node; id++) {
                char p[HOTPLUG_PATH_MAX];

                if (!model_node(m->model, id))
                        continue;
                r = sd_bus_message_append(reply, "o", hotplug_node_path((unsigned) id, p));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_jobs(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_jobs; i++) {
                char p[HOTPLUG_PATH_MAX];

                r = sd_bus_message_append(reply, "o", hotplug_job_path(m->jobs[i]->id, p));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* ---- methods ---------------------------------------------------------------------------- */

static int method_list_nodes(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ubbuuuuttsbbas)");
        if (r < 0)
                return r;
        for (int id = 0; id <= m->model->max_node; id++) {
                const Node *n = model_node(m->model, id);
                unsigned mask;

                if (!n)
                        continue;
                mask = node_offline_blockers(n);
                r = sd_bus_message_open_container(reply, 'r', "ubbuuuuttsbbas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "ubbuuuuttsbb", (uint32_t) id, (int) n->online, (int) n->has_memory,
                                                  (uint32_t) n->n_present_cpus, (uint32_t) n->n_blocks,
                                                  (uint32_t) node_online_blocks(n), (uint32_t) n->n_blocks_by_state[BLOCK_OFFLINE],
                                                  node_spanned_pages(n), node_present_pages(n),
                                                  online_policy_to_string(manager_node_policy(m, id, NULL)),
                                                  (int) manager_node_is_quarantined(m, id), (int) (mask == 0));
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (unsigned bit = 1; r >= 0 && bit && bit <= mask; bit <<= 1)
                        if (mask & bit)
                                r = sd_bus_message_append(reply, "s", offline_blocker_to_string((OfflineBlocker) bit));
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_set_node_policy(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        OnlinePolicy p = POLICY_INHERIT;
        bool clear;
        uint32_t id;
        char node[16];
        const char *details[] = { "node", node, "policy", NULL, NULL };
        int r;

        r = sd_bus_message_read(message, "us", &id, &name);
        if (r < 0)
                return r;
        if (!find_node(m, id, error))
                return -ENODEV;
        clear = name[0] == 0;
        if (!clear && !streq(name, "inherit")) {
                p = online_policy_from_string(name);
                if (p < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown policy '%s': expected offline, online, online_kernel, online_movable, "
                                                 "auto-movable, auto, inherit, or \"\" to drop the runtime policy.", name);
        }
        (void) xsprintf(node, "%" PRIu32, id);
        details[3] = name;
        r = manager_bus_verify(m, message, HOTPLUG_ACTION_SET_POLICY, details, error);
        if (r <= 0)
                return r == 0 ? 1 : r;

        r = manager_set_node_policy(m, (int) id, p, clear);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to set the policy of node %" PRIu32 ": %m", id);
        log_struct(LOG_NOTICE, LOG_FIELDS(.node = (int) id, .extra = "HOTPLUGD_REQUEST=set-policy"),
                   "Node %" PRIu32 ": runtime policy %s (effective: %s), set by %s.", id, clear ? "dropped" : name,
                   online_policy_to_string(manager_node_policy(m, (int) id, NULL)),
                   strna(sd_bus_message_get_sender(message)));
        manager_node_changed(m, (int) id);
        manager_bus_flush(m);
        return sd_bus_reply_method_return(message, NULL);
}

static int set_quarantine(sd_bus_message *message, Manager *m, bool on, sd_bus_error *error) {
        char node[16];
        const char *details[] = { "node", node, NULL };
        uint32_t id;
        int r;

        r = sd_bus_message_read(message, "u", &id);
        if (r < 0)
                return r;
        if (!find_node(m, id, error))
                return -ENODEV;
        (void) xsprintf(node, "%" PRIu32, id);
        r = manager_bus_verify(m, message, HOTPLUG_ACTION_QUARANTINE, details, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        if (manager_node_is_quarantined(m, (int) id) != on) {
                /* Persisted in StateDirectory; if saving fails the change holds until restart. */
                r = manager_set_quarantine(m, (int) id, on);
                log_struct(LOG_NOTICE, LOG_FIELDS(.node = (int) id, .extra = on ? "HOTPLUGD_REQUEST=quarantine" : "HOTPLUGD_REQUEST=unquarantine"),
                           "Node %" PRIu32 " %s by %s%s", id, on ? "quarantined" : "released from quarantine",
                           strna(sd_bus_message_get_sender(message)), on ? ": new memory on it stays offline." : ".");
                manager_node_changed(m, (int) id);
                manager_bus_flush(m);
                if (r < 0)
                        return sd_bus_error_setf(error, HOTPLUG_ERROR_FAILED,
                                                 "Node %" PRIu32 " is %s now, but saving that failed (%s): it holds until hotplugd restarts.",
                                                 id, on ? "quarantined" : "released", strerror(-r));
        }
        return sd_bus_reply_method_return(message, NULL);
}

static int method_quarantine_node(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return set_quarantine(message, userdata, true, error);
}

static int method_unquarantine_node(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return set_quarantine(message, userdata, false, error);
}

static int method_plan_retire(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(preflight_done) Preflight p = {};
        Manager *m = userdata;
        uint32_t id;
        int r;

        r = sd_bus_message_read(message, "u", &id);
        if (r < 0)
                return r;
        if (!find_node(m, id, error))
                return -ENODEV;
        r = preflight_node(m, (int) id, &p);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < p.n_findings; i++) {
                r = sd_bus_message_append(reply, "(sss)", verdict_to_string(p.findings[i].verdict), p.findings[i].code,
                                          p.findings[i].message);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "tt", p.bytes_to_migrate, p.bytes_available);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_retire_node(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        char path[HOTPLUG_PATH_MAX], node[16];
        const char *details[] = { "node", node, NULL };
        uint64_t flags;
        uint32_t id;
        Job *j;
        int r;

        r = sd_bus_message_read(message, "ut", &id, &flags);
        if (r < 0)
                return r;
        if (!find_node(m, id, error))
                return -ENODEV;
        if (flags & ~_HOTPLUG_RETIRE_FLAGS_ALL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown flags 0x%" PRIx64 ".",
                                         flags & ~_HOTPLUG_RETIRE_FLAGS_ALL);
        (void) xsprintf(node, "%" PRIu32, id);
        r = manager_bus_verify(m, message, HOTPLUG_ACTION_RETIRE_NODE, details, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        if (!find_node(m, id, error))
                return -ENODEV;
        j = manager_find_node_job(m, (int) id);
        if (j)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_BUSY, "Job %u is already working on node %" PRIu32 ".", j->id, id);

        r = job_new(m, JOB_RETIRE_NODE, (int) id, flags, &retire_engine, &j);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to create a job: %m");
        log_struct(LOG_NOTICE, LOG_FIELDS(.node = (int) id, .extra = "HOTPLUGD_REQUEST=retire-node"),
                   "Job %u: retire node %" PRIu32 "%s, requested by %s.", j->id, id,
                   flags & HOTPLUG_RETIRE_DRY_RUN ? " (dry run)" : "", strna(sd_bus_message_get_sender(message)));
        return sd_bus_reply_method_return(message, "o", hotplug_job_path(j->id, path));
}

static int method_reload(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *msg = NULL;
        Manager *m = userdata;
        Config c;
        int r;

        r = manager_bus_verify(m, message, HOTPLUG_ACTION_RELOAD, NULL, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        /* Parse once here for the caller's sake (file:line in the error), then for real. */
        config_init(&c);
        r = config_load(m->root_path, m->config_path, &c, &msg);
        config_done(&c);
        if (r < 0)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_INVALID_CONFIG, "The configuration is invalid, the old one stays: %s",
                                         msg ?: strerror(-r));
        r = manager_reload_config(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to reload the configuration: %m");
        return sd_bus_reply_method_return(message, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("BlockSize", "t", property_get_block_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VirtualMachine", "b", property_get_virtual_machine, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Policy", "s", property_get_policy, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KernelAutoOnline", "s", property_get_auto_online, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Conflicts", "a(sss)", property_get_conflicts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Nodes", "ao", property_get_nodes, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Jobs", "ao", property_get_jobs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NBlocks", "t", property_get_counts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NOnlineBlocks", "t", property_get_counts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NOfflineBlocks", "t", property_get_counts, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

        SD_BUS_METHOD_WITH_ARGS("ListNodes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ubbuuuuttsbbas)", nodes),
                                method_list_nodes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListBlocks", SD_BUS_ARGS("i", node), SD_BUS_RESULT("a(tsissss)", blocks),
                                method_list_blocks, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListBlockRanges", SD_BUS_ARGS("i", node), SD_BUS_RESULT("a(ttsiss)", ranges),
                                method_list_block_ranges, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListBlockRuns", SD_BUS_ARGS("i", node), SD_BUS_RESULT("a(ttsissss)", runs),
                                method_list_block_runs, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OnlineBlocks", SD_BUS_ARGS("at", blocks, "s", zone), SD_BUS_RESULT("a(tss)", results),
                                method_online_blocks, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OfflineBlocks", SD_BUS_ARGS("at", blocks), SD_BUS_RESULT("a(tss)", results),
                                method_offline_blocks, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetNodePolicy", SD_BUS_ARGS("u", node, "s", policy), SD_BUS_NO_RESULT,
                                method_set_node_policy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("QuarantineNode", SD_BUS_ARGS("u", node), SD_BUS_NO_RESULT, method_quarantine_node,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnquarantineNode", SD_BUS_ARGS("u", node), SD_BUS_NO_RESULT, method_unquarantine_node,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PlanRetire", SD_BUS_ARGS("u", node),
                                SD_BUS_RESULT("a(sss)", findings, "t", bytes_to_migrate, "t", bytes_available),
                                method_plan_retire, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RetireNode", SD_BUS_ARGS("u", node, "t", flags), SD_BUS_RESULT("o", job),
                                method_retire_node, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListJobs", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(usussdo)", jobs), method_list_jobs,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelJob", SD_BUS_ARGS("u", id), SD_BUS_NO_RESULT, method_cancel_job,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("NodeAdded", SD_BUS_ARGS("u", id, "o", node), 0),
        SD_BUS_SIGNAL_WITH_ARGS("NodeRemoved", SD_BUS_ARGS("u", id, "o", node), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobNew", SD_BUS_ARGS("u", id, "o", job, "s", kind, "u", node), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobRemoved", SD_BUS_ARGS("u", id, "o", job, "s", state), 0),
        SD_BUS_VTABLE_END,
};

/* ---- change signals --------------------------------------------------------------------- */

static uint64_t conflicts_hash(const Conflicts *c) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < c->n; i++) {
                const char *parts[] = { conflict_kind_to_string(c->items[i].kind), c->items[i].source, c->items[i].detail };

                for (size_t k = 0; k < ELEMENTSOF(parts); k++)
                        for (const char *p = parts[k] ?: ""; ; p++) {
                                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
                                if (!*p)
                                        break;
                        }
        }
        return h;
}

/* Compares the Manager's properties with what was last announced; fills names, returns count. */
static size_t manager_diff(Manager *m, bool nodes_changed, const char **names) {
        ManagerBus *mb = manager_bus(m);
        uint64_t online = m->model->n_blocks_by_state[BLOCK_ONLINE] + m->model->n_blocks_by_state[BLOCK_GOING_OFFLINE];
        uint64_t h = conflicts_hash(&m->conflicts);
        size_t k = 0;

        if (mb->last_blocks != m->model->n_blocks)
                names[k++] = "NBlocks";
        if (mb->last_online_blocks != online)
                names[k++] = "NOnlineBlocks";
        if (mb->last_offline_blocks != m->model->n_blocks_by_state[BLOCK_OFFLINE])
                names[k++] = "NOfflineBlocks";
        if (mb->last_policy != (int) m->config.policy)
                names[k++] = "Policy";
        if (!streq(mb->last_auto_online, m->auto_online_blocks))
                names[k++] = "KernelAutoOnline";
        if (mb->last_conflicts_hash != h)
                names[k++] = "Conflicts";
        if (nodes_changed)
                names[k++] = "Nodes";
        names[k] = NULL;

        mb->last_blocks = m->model->n_blocks;
        mb->last_online_blocks = online;
        mb->last_offline_blocks = m->model->n_blocks_by_state[BLOCK_OFFLINE];
        mb->last_policy = (int) m->config.policy;
        snprintf(mb->last_auto_online, sizeof(mb->last_auto_online), "%s", m->auto_online_blocks);
        mb->last_conflicts_hash = h;
        return k;
}

void manager_bus_flush(Manager *m) {
        const char *names[16];
        bool nodes_changed;
        int r;

        if (!m->bus || !manager_bus(m) || !m->model) {
                memset(m->changed_nodes, 0, sizeof(m->changed_nodes));
                return;
        }
        nodes_changed = node_bus_flush(m);
        memset(m->changed_nodes, 0, sizeof(m->changed_nodes));
        if (manager_diff(m, nodes_changed, names) == 0)
                return;
        r = sd_bus_emit_properties_changed_strv(m->bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, (char **) names);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for the manager, ignoring: %m");
}

void manager_bus_config_reloaded(Manager *m) {
        ManagerBus *mb = manager_bus(m);

        if (!mb)
                return;
        /* The new config replaced our patches: note the file's values again, re-apply ours. */
        for (int id = 0; id < MODEL_MAX_NODES; id++) {
                NodeConfig *e;

                if (!policy_overridden(m, id))
                        continue;
                e = config_node_entry(&m->config, id, false);
                mb->policy_base[id] = (int8_t) (e ? e->policy : POLICY_INHERIT);
                e = config_node_entry(&m->config, id, true);
                if (!e) {
                        log_warning("Out of memory re-applying the runtime policy of node %d, dropping it.", id);
                        m->policy_overridden[id / 64] &= ~(UINT64_C(1) << (id % 64));
                        continue;
                }
                e->policy = m->policy_override[id];
        }
        for (int id = 0; id <= m->model->max_node; id++)
                if (model_node(m->model, id))
                        manager_node_changed(m, id);
        manager_bus_flush(m);
}

/* ---- setup and teardown ----------------------------------------------------------------- */

int manager_bus_attach(Manager *m, sd_bus *bus) {
        ManagerBus *mb;
        int r;

        r = hotplug_bus_register_errors();
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus error names: %m");
        mb = calloc(1, sizeof(ManagerBus));
        if (!mb)
                return log_error_errno(-ENOMEM, "Out of memory.");
        m->bus_data = mb;
        mb->node_snapshots = node_snapshots_new();
        if (!mb->node_snapshots)
                return log_error_errno(-ENOMEM, "Out of memory.");

        r = sd_bus_add_object_vtable(bus, NULL, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, HOTPLUG_NODE_PATH_PREFIX, HOTPLUG_NODE_INTERFACE, node_vtable,
                                               node_object_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, HOTPLUG_NODE_PATH_PREFIX, node_node_enumerator, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, HOTPLUG_JOB_PATH_PREFIX, HOTPLUG_JOB_INTERFACE, job_vtable,
                                               job_object_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, HOTPLUG_JOB_PATH_PREFIX, job_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to export the D-Bus objects: %m");
        r = polkit_registry_new(bus, &mb->polkit);
        if (r < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        /* sd-bus would close the connection when the loop exits; manager_bus_done() does it, after
         * the callers of interrupted writes got their replies. */
        r = sd_bus_set_close_on_exit(bus, false);
        if (r < 0)
                return log_error_errno(r, "Failed to keep the bus open at exit: %m");
        if (!sd_bus_get_event(bus)) {
                r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
                if (r < 0)
                        return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        }
        m->bus = sd_bus_ref(bus);

        /* What clients see from now on is the baseline for change signals. */
        node_bus_snapshot_all(m);
        {
                const char *names[16];
                (void) manager_diff(m, false, names);
        }
        return 0;
}

int manager_bus_setup(Manager *m) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        (void) sd_bus_set_description(bus, "hotplugd");
        r = manager_bus_attach(m, bus);
        if (r < 0)
                return r;
        /* Synchronously: READY=1 follows, and callers may rely on the name then. */
        r = sd_bus_request_name(bus, HOTPLUG_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name %s: %m", HOTPLUG_BUS_NAME);
        log_debug("Acquired %s on the system bus.", HOTPLUG_BUS_NAME);
        return 0;
}

void manager_bus_done(Manager *m) {
        ManagerBus *mb = manager_bus(m);

        if (mb)
                mb->shutting_down = true;
        /* The worker ends its batches first, so their callers get a reply on a bus still open. */
        m->worker = worker_free(m->worker);
        manager_free_jobs(m);
        if (mb) {
                block_ops_free_all(m);
                polkit_registry_free(mb->polkit);
                free(mb->node_snapshots);
                free(mb->busy_blocks);
                free(mb);
                m->bus_data = NULL;
        }
        if (m->bus) {
                (void) sd_bus_flush(m->bus);
                (void) sd_bus_detach_event(m->bus);
                m->bus = sd_bus_close_unref(m->bus);
        }
}

/* ---- --bus-introspect ------------------------------------------------------------------- */

static const struct {
        const char *name;
        const sd_bus_vtable *vtable;
} bus_interfaces[] = {
        { HOTPLUG_MANAGER_INTERFACE, manager_vtable },
        { HOTPLUG_NODE_INTERFACE, node_vtable },
        { HOTPLUG_JOB_INTERFACE, job_vtable },
};

typedef struct IntrospectState {
        bool done;
        int error;
        char *xml;
} IntrospectState;

static int on_introspect_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        IntrospectState *s = userdata;
        const char *xml;
        int r;

        s->done = true;
        r = sd_bus_message_get_errno(reply);
        if (r > 0) {
                s->error = -r;
                return 0;
        }
        r = sd_bus_message_read(reply, "s", &xml);
        if (r < 0) {
                s->error = r;
                return 0;
        }
        s->xml = strdup(xml);
        s->error = s->xml ? 0 : -ENOMEM;
        return 0;
}

/* sd-bus generates introspection data only as the answer to an Introspect call, so we answer
 * one ourselves: a socketpair, the vtable exported on one end, the call made from the other,
 * both ends driven by hand in this thread. Nothing touches a bus daemon or the host. */
int manager_bus_introspect(FILE *f, const char *interface) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *server = NULL, *client = NULL;
        IntrospectState s = {};
        const sd_bus_vtable *vtable = NULL;
        sd_id128_t id;
        int fds[2], r;

        if (!interface) {
                for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++)
                        fprintf(f, "%s\n", bus_interfaces[i].name);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++)
                if (streq(interface, bus_interfaces[i].name))
                        vtable = bus_interfaces[i].vtable;
        if (!vtable)
                return log_error_errno(-EINVAL, "Unknown interface '%s' (see --bus-introspect without an argument).", interface);

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return log_error_errno(negative_errno(), "Failed to create a socket pair: %m");
        r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, fds[0], fds[0]);
        else
                close(fds[0]);
        if (r >= 0)
                r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_set_server(server, 1, id);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, "/", interface, vtable, NULL);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = sd_bus_new(&client);
        if (r >= 0)
                r = sd_bus_set_fd(client, fds[1], fds[1]);
        else
                close(fds[1]);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r >= 0)
                r = sd_bus_call_method_async(client, NULL, NULL, "/", "org.freedesktop.DBus.Introspectable", "Introspect",
                                             on_introspect_reply, &s, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the introspection bus: %m");

        for (unsigned i = 0; !s.done && i < 10000; i++) {
                struct pollfd p[2];
                int a, b;

                a = sd_bus_process(server, NULL);
                b = sd_bus_process(client, NULL);
                if (a < 0 || b < 0)
                        return log_error_errno(a < 0 ? a : b, "Failed to introspect: %m");
                if (a > 0 || b > 0)
                        continue;
                p[0] = (struct pollfd) { .fd = sd_bus_get_fd(server), .events = (short) sd_bus_get_events(server) };
                p[1] = (struct pollfd) { .fd = sd_bus_get_fd(client), .events = (short) sd_bus_get_events(client) };
                (void) poll(p, 2, 100);
        }
        if (!s.done)
                return log_error_errno(-ETIMEDOUT, "Introspection did not answer.");
        if (s.error < 0)
                return log_error_errno(s.error, "Failed to introspect %s: %m", interface);
        fputs(s.xml, f);
        free(s.xml);
        return 0;
}
