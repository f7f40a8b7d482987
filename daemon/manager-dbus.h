/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager-dbus.h — the bus side of the manager: connection, objects, batched change signals. */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

struct PolkitRegistry;
struct NodeSnapshot;
struct BlockOp;

/* What the bus side keeps between calls (Manager.bus_data). */
typedef struct ManagerBus {
        struct PolkitRegistry *polkit;
        /* Node objects announced with NodeAdded, and what their properties said then. */
        uint64_t exported_nodes[MODEL_MAX_NODES / 64];
        struct NodeSnapshot *node_snapshots;    /* MODEL_MAX_NODES entries */
        /* The Manager's own properties as last emitted. */
        uint64_t last_blocks, last_online_blocks, last_offline_blocks;
        uint64_t last_conflicts_hash;
        int last_policy;
        char last_auto_online[32];
        bool nodes_changed, jobs_changed;
        /* Config values of nodes with a runtime policy, to restore when the override goes. */
        int8_t policy_base[MODEL_MAX_NODES];
        /* Blocks with a state write queued or in flight (bitmap over block indexes). */
        uint64_t *busy_blocks;
        size_t n_busy_words;
        /* OnlineBlocks/OfflineBlocks calls waiting for the worker. */
        struct BlockOp *block_ops;
        bool shutting_down;
} ManagerBus;

/* Connects to the system bus, exports the objects and requests the name. */
int manager_bus_setup(Manager *m);
/* Exports the objects on a bus that is already connected (a peer-to-peer socket in tests) and
 * attaches it to the manager's event loop; takes a reference. */
int manager_bus_attach(Manager *m, sd_bus *bus);
/* Called at the end of every settle step: emits PropertiesChanged for nodes in m->changed_nodes
 * (one signal per node per burst, never per block), NodeAdded/NodeRemoved, and clears the set. */
void manager_bus_flush(Manager *m);
/* Ends jobs and pending writes (their callers get replies), then closes the connection. */
void manager_bus_done(Manager *m);
/* Called by manager_reload_config() after a new config took effect: re-applies runtime
 * policies and announces changed properties. */
void manager_bus_config_reloaded(Manager *m);

/* --bus-introspect: the introspection XML of one interface, generated from the vtables, or the
 * list of interfaces if interface is NULL. */
int manager_bus_introspect(FILE *f, const char *interface);

/* For the *-dbus.c files. */
static inline ManagerBus *manager_bus(Manager *m) {
        return m->bus_data;
}
/* polkit, asynchronously (see polkit.h): 1 authorized, 0 pending, negative errno with error set. */
int manager_bus_verify(Manager *m, sd_bus_message *message, const char *action, const char *const *details,
                       sd_bus_error *error);
/* The worker thread, started on first use. */
int manager_get_worker(Manager *m, struct Worker **ret);
static inline void manager_node_changed(Manager *m, int id) {
        if (id >= 0 && id < MODEL_MAX_NODES)
                m->changed_nodes[id / 64] |= UINT64_C(1) << (id % 64);
}
/* "0-2,5": the nodes that exist, for error messages. */
void manager_format_nodes(Manager *m, char *buf, size_t size);
/* Sets (or with POLICY_INHERIT + clear = true, drops) the runtime policy of a node. */
int manager_set_node_policy(Manager *m, int node, OnlinePolicy policy, bool clear);
/* The node's effective policy and whether it comes from SetNodePolicy(). */
OnlinePolicy manager_node_policy(Manager *m, int node, bool *ret_runtime);
