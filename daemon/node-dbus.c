/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node-dbus.c — Node objects: a fallback vtable over the model, change signals diffed per burst. */
#include <inttypes.h>

#include "hotplug-bus.h"
#include "log.h"
#include "manager-dbus.h"
#include "node-dbus.h"

/* The values a PropertiesChanged was last sent for; only differences go out. */
typedef struct NodeSnapshot {
        bool valid;
        bool online, has_memory, quarantined;
        unsigned blocks, online_blocks, offline_blocks;
        unsigned by_zone[_ZONE_MAX];
        uint64_t spanned, present, managed;
        uint64_t present_cpus_hash, online_cpus_hash, hugepages_hash;
        unsigned blockers;
        int policy;
        bool policy_runtime;
        int policy_override;
} NodeSnapshot;

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
        const uint8_t *b = p;

        /* FNV-1a: enough to notice a change, never used for anything else. */
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * UINT64_C(0x100000001b3);
        return h;
}

static Node *node_from_path(Manager *m, const char *path) {
        unsigned id;

        if (hotplug_path_parse_id(path, HOTPLUG_NODE_PATH_PREFIX, &id) < 0 || id >= MODEL_MAX_NODES)
                return NULL;
        return model_node(m->model, (int) id);
}

int node_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error) {
        Manager *m = userdata;

        if (!node_from_path(m, path))
                return 0;
        /* Getters need the manager (policy, quarantine) and find the node again from the path. */
        *found = m;
        return 1;
}

int node_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l;
        size_t k = 0;

        l = calloc((size_t) (m->model->max_node + 2), sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (int id = 0; id <= m->model->max_node; id++) {
                char buf[HOTPLUG_PATH_MAX];

                if (!model_node(m->model, id))
                        continue;
                l[k] = strdup(hotplug_node_path((unsigned) id, buf));
                if (!l[k]) {
                        for (size_t i = 0; i < k; i++)
                                free(l[i]);
                        free(l);
                        return -ENOMEM;
                }
                k++;
        }
        *nodes = l;
        return 1;
}

#define NODE_GETTER(name, type, expr)                                                                    \
        static int property_get_##name(sd_bus *bus, const char *path, const char *interface,            \
                                       const char *property, sd_bus_message *reply, void *userdata,     \
                                       sd_bus_error *error) {                                           \
                Manager *m = userdata;                                                                  \
                const Node *n = node_from_path(m, path);                                                \
                if (!n)                                                                                 \
                        return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");   \
                return sd_bus_message_append(reply, type, (expr));                                      \
        }

NODE_GETTER(id, "u", (uint32_t) n->id)
NODE_GETTER(online, "b", (int) n->online)
NODE_GETTER(has_memory, "b", (int) n->has_memory)
NODE_GETTER(blocks, "u", (uint32_t) n->n_blocks)
NODE_GETTER(online_blocks, "u", (uint32_t) node_online_blocks(n))
NODE_GETTER(offline_blocks, "u", (uint32_t) n->n_blocks_by_state[BLOCK_OFFLINE])
NODE_GETTER(spanned_pages, "t", node_spanned_pages(n))
NODE_GETTER(present_pages, "t", node_present_pages(n))
NODE_GETTER(managed_pages, "t", node_managed_pages(n))
NODE_GETTER(quarantined, "b", (int) manager_node_is_quarantined(m, n->id))
NODE_GETTER(can_offline, "b", (int) (node_offline_blockers(n) == 0))
NODE_GETTER(policy, "s", online_policy_to_string(manager_node_policy(m, n->id, NULL)))

static int property_get_policy_override(sd_bus *bus, const char *path, const char *interface, const char *property,
                                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const Node *n = node_from_path(m, path);
        bool runtime;
        OnlinePolicy p;

        if (!n)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");
        (void) manager_node_policy(m, n->id, &runtime);
        p = runtime ? (OnlinePolicy) m->policy_override[n->id] : POLICY_INHERIT;
        return sd_bus_message_append(reply, "s", runtime ? online_policy_to_string(p) : "");
}

static int append_cpus(sd_bus_message *reply, const CpuSet *s) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "u");
        if (r < 0)
                return r;
        for (unsigned w = 0; w < MODEL_MAX_CPUS / 64; w++) {
                uint64_t bits = s->bits[w];

                while (bits) {
                        unsigned b = (unsigned) __builtin_ctzll(bits);

                        r = sd_bus_message_append(reply, "u", (uint32_t) (w * 64 + b));
                        if (r < 0)
                                return r;
                        bits &= bits - 1;
                }
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_cpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Node *n = node_from_path(userdata, path);

        if (!n)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");
        return append_cpus(reply, streq(property, "PresentCPUs") ? &n->present_cpus : &n->online_cpus);
}

static int property_get_by_zone(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Node *n = node_from_path(userdata, path);
        int r;

        if (!n)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");
        r = sd_bus_message_open_container(reply, 'a', "{su}");
        if (r < 0)
                return r;
        /* Only zones that hold blocks: a client that wants zeros knows the zone names. */
        for (Zone z = 0; z < _ZONE_MAX; z++)
                if (n->n_online_by_zone[z] > 0) {
                        r = sd_bus_message_append(reply, "{su}", zone_to_string(z), (uint32_t) n->n_online_by_zone[z]);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}

static int property_get_hugepages(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Node *n = node_from_path(userdata, path);
        int r;

        if (!n)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");
        r = sd_bus_message_open_container(reply, 'a', "(ttt)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_hugepages; i++) {
                r = sd_bus_message_append(reply, "(ttt)", n->hugepages[i].size_kb, n->hugepages[i].nr,
                                          n->hugepages[i].free);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_blockers(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Node *n = node_from_path(userdata, path);
        unsigned mask;
        int r;

        if (!n)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node is gone.");
        mask = node_offline_blockers(n);
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (unsigned bit = 1; bit && bit <= mask; bit <<= 1)
                if (mask & bit) {
                        r = sd_bus_message_append(reply, "s", offline_blocker_to_string((OfflineBlocker) bit));
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}

const sd_bus_vtable node_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Online", "b", property_get_online, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HasMemory", "b", property_get_has_memory, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PresentCPUs", "au", property_get_cpus, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("OnlineCPUs", "au", property_get_cpus, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Blocks", "u", property_get_blocks, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OnlineBlocks", "u", property_get_online_blocks, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OfflineBlocks", "u", property_get_offline_blocks, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OnlineBlocksByZone", "a{su}", property_get_by_zone, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SpannedPages", "t", property_get_spanned_pages, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PresentPages", "t", property_get_present_pages, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ManagedPages", "t", property_get_managed_pages, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HugePages", "a(ttt)", property_get_hugepages, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Policy", "s", property_get_policy, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PolicyOverride", "s", property_get_policy_override, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Quarantined", "b", property_get_quarantined, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CanOffline", "b", property_get_can_offline, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OfflineBlockers", "as", property_get_blockers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static void snapshot(Manager *m, const Node *n, NodeSnapshot *s) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        *s = (NodeSnapshot) {
                .valid = true,
                .online = n->online,
                .has_memory = n->has_memory,
                .quarantined = manager_node_is_quarantined(m, n->id),
                .blocks = n->n_blocks,
                .online_blocks = node_online_blocks(n),
                .offline_blocks = n->n_blocks_by_state[BLOCK_OFFLINE],
                .spanned = node_spanned_pages(n),
                .present = node_present_pages(n),
                .managed = node_managed_pages(n),
                .present_cpus_hash = hash_bytes(h, &n->present_cpus, sizeof(n->present_cpus)),
                .online_cpus_hash = hash_bytes(h, &n->online_cpus, sizeof(n->online_cpus)),
                .hugepages_hash = hash_bytes(h, n->hugepages, n->n_hugepages * sizeof(HugePages)),
                .blockers = node_offline_blockers(n),
        };
        memcpy(s->by_zone, n->n_online_by_zone, sizeof(s->by_zone));
        s->policy = manager_node_policy(m, n->id, &s->policy_runtime);
        s->policy_override = s->policy_runtime ? m->policy_override[n->id] : 0;
}

/* Names of the properties that differ, NULL-terminated in names[] (room for 20). */
static size_t diff(const NodeSnapshot *a, const NodeSnapshot *b, const char **names) {
        size_t k = 0;

#define CHANGED(field, name)                    \
        if (a->field != b->field)               \
                names[k++] = name
        CHANGED(online, "Online");
        CHANGED(has_memory, "HasMemory");
        CHANGED(present_cpus_hash, "PresentCPUs");
        CHANGED(online_cpus_hash, "OnlineCPUs");
        CHANGED(blocks, "Blocks");
        CHANGED(online_blocks, "OnlineBlocks");
        CHANGED(offline_blocks, "OfflineBlocks");
        if (memcmp(a->by_zone, b->by_zone, sizeof(a->by_zone)) != 0)
                names[k++] = "OnlineBlocksByZone";
        CHANGED(spanned, "SpannedPages");
        CHANGED(present, "PresentPages");
        CHANGED(managed, "ManagedPages");
        CHANGED(hugepages_hash, "HugePages");
        CHANGED(policy, "Policy");
        if (a->policy_runtime != b->policy_runtime || a->policy_override != b->policy_override)
                names[k++] = "PolicyOverride";
        CHANGED(quarantined, "Quarantined");
        if ((a->blockers == 0) != (b->blockers == 0))
                names[k++] = "CanOffline";
        CHANGED(blockers, "OfflineBlockers");
#undef CHANGED
        names[k] = NULL;
        return k;
}

static bool bit_test(const uint64_t *set, int id) {
        return (set[id / 64] >> (id % 64)) & 1;
}

static void emit_node_signal(Manager *m, const char *member, int id) {
        char path[HOTPLUG_PATH_MAX];
        int r;

        r = sd_bus_emit_signal(m->bus, HOTPLUG_BUS_PATH, HOTPLUG_MANAGER_INTERFACE, member, "uo", (uint32_t) id,
                               hotplug_node_path((unsigned) id, path));
        if (r < 0)
                log_debug_errno(r, "Failed to emit %s for node %d, ignoring: %m", member, id);
}

struct NodeSnapshot *node_snapshots_new(void) {
        return calloc(MODEL_MAX_NODES, sizeof(NodeSnapshot));
}

void node_bus_snapshot_all(Manager *m) {
        ManagerBus *mb = manager_bus(m);

        memset(mb->exported_nodes, 0, sizeof(mb->exported_nodes));
        for (int id = 0; id < MODEL_MAX_NODES; id++) {
                const Node *n = model_node(m->model, id);

                mb->node_snapshots[id].valid = false;
                if (!n)
                        continue;
                mb->exported_nodes[id / 64] |= UINT64_C(1) << (id % 64);
                snapshot(m, n, &mb->node_snapshots[id]);
        }
}

bool node_bus_flush(Manager *m) {
        ManagerBus *mb = manager_bus(m);
        bool set_changed = false;

        for (int id = 0; id < MODEL_MAX_NODES; id++) {
                const Node *n = model_node(m->model, id);
                bool exported = bit_test(mb->exported_nodes, id);

                if (!n && !exported)
                        continue;
                if (!n) {
                        mb->exported_nodes[id / 64] &= ~(UINT64_C(1) << (id % 64));
                        mb->node_snapshots[id].valid = false;
                        emit_node_signal(m, "NodeRemoved", id);
                        set_changed = true;
                        continue;
                }
                if (!exported) {
                        mb->exported_nodes[id / 64] |= UINT64_C(1) << (id % 64);
                        snapshot(m, n, &mb->node_snapshots[id]);
                        emit_node_signal(m, "NodeAdded", id);
                        set_changed = true;
                        continue;
                }
                if (bit_test(m->changed_nodes, id)) {
                        NodeSnapshot now;
                        const char *names[24];
                        char path[HOTPLUG_PATH_MAX];
                        int r;

                        snapshot(m, n, &now);
                        if (diff(&mb->node_snapshots[id], &now, names) == 0)
                                continue;
                        mb->node_snapshots[id] = now;
                        r = sd_bus_emit_properties_changed_strv(m->bus, hotplug_node_path((unsigned) id, path),
                                                                HOTPLUG_NODE_INTERFACE, (char **) names);
                        if (r < 0)
                                log_debug_errno(r, "Failed to emit PropertiesChanged for node %d, ignoring: %m", id);
                }
        }
        return set_changed;
}
