/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.c — auto-online decisions: global and per-node policy, zone-aware, pure functions. */
#include "policy.h"

const char *online_action_to_string(OnlineAction a) {
        static const char *const names[_ACTION_MAX] = {
                [ACTION_NONE] = "none",
                [ACTION_ONLINE] = "online",
                [ACTION_ONLINE_KERNEL] = "online_kernel",
                [ACTION_ONLINE_MOVABLE] = "online_movable",
        };
        return a < _ACTION_MAX ? names[a] : NULL;
}

bool online_action_zone_ok(OnlineAction a, Zone zone) {
        switch (a) {
        case ACTION_ONLINE_MOVABLE:
                return zone == ZONE_MOVABLE;
        case ACTION_ONLINE_KERNEL:
                return zone == ZONE_DMA || zone == ZONE_DMA32 || zone == ZONE_NORMAL || zone == ZONE_HIGHMEM;
        default:
                return true;
        }
}

/* Bare metal keeps hot-added DIMMs removable (ZONE_MOVABLE). In a VM, memory is added by
 * balloon/virtio-mem/DIMM drivers whose guests need kernel memory to grow with it; an all-
 * movable VM risks running out of kernel zone memory, so plain "online" is the safer default
 * (the same reasoning as the RHEL udev rules and David Hildenbrand's memhpd prototype). */
OnlinePolicy policy_resolve_auto(OnlinePolicy p, bool virtual_machine) {
        if (p != POLICY_AUTO)
                return p;
        return virtual_machine ? POLICY_ONLINE : POLICY_ONLINE_MOVABLE;
}

static bool node_quarantined(const PolicyEnvironment *env, int node) {
        return env && env->quarantined && node >= 0 &&
               ((env->quarantined[node / 64] >> (node % 64)) & 1);
}

/* auto-movable: ZONE_MOVABLE while the node's MOVABLE:KERNEL ratio stays within the limit,
 * like the kernel's memory_hotplug.online_policy=auto-movable with auto_movable_numa_aware.
 * Both sides come from the node's block counters plus the decisions whose writes are still in
 * flight, so every decision of a burst is counted. A node without kernel memory gets kernel memory first. */
static OnlineAction auto_movable(const Node *n, unsigned ratio, const PolicyEnvironment *env) {
        uint64_t movable, kernel;

        if (!n)
                return ACTION_ONLINE_KERNEL;
        movable = n->n_online_by_zone[ZONE_MOVABLE];
        kernel = n->n_online_by_zone[ZONE_DMA] + n->n_online_by_zone[ZONE_DMA32] +
                 n->n_online_by_zone[ZONE_NORMAL] + n->n_online_by_zone[ZONE_HIGHMEM] +
                 n->n_online_by_zone[ZONE_NONE];
        if (env && env->pending_movable)
                movable += env->pending_movable[n->id];
        if (env && env->pending_kernel)
                kernel += env->pending_kernel[n->id];
        if ((movable + 1) * 100 <= (uint64_t) ratio * kernel)
                return ACTION_ONLINE_MOVABLE;
        return ACTION_ONLINE_KERNEL;
}

static bool bitmap_empty(const uint64_t *bits) {
        if (!bits)
                return true;
        for (size_t i = 0; i < MODEL_MAX_NODES / 64; i++)
                if (bits[i])
                        return false;
        return true;
}

static OnlineAction action_of_policy(OnlinePolicy p) {
        switch (p) {
        case POLICY_ONLINE:
                return ACTION_ONLINE;
        case POLICY_ONLINE_KERNEL:
                return ACTION_ONLINE_KERNEL;
        case POLICY_ONLINE_MOVABLE:
                return ACTION_ONLINE_MOVABLE;
        default:
                return ACTION_NONE;
        }
}

bool policy_uniform_action(const Config *c, const PolicyEnvironment *env, OnlineAction *ret) {
        bool vm = env && env->virtual_machine;
        OnlinePolicy p = policy_resolve_auto(c->policy, vm);

        if (p == POLICY_AUTO_MOVABLE || p < 0 || p >= _POLICY_MAX)
                return false;
        for (size_t i = 0; i < c->n_nodes; i++)
                if (c->nodes[i].policy != POLICY_INHERIT && policy_resolve_auto(c->nodes[i].policy, vm) != p)
                        return false;
        if (env && !(bitmap_empty(env->quarantined) && bitmap_empty(env->retiring)))
                return false;
        *ret = action_of_policy(p);
        return true;
}

PolicyDecision policy_decide(const Config *c, const Model *m, uint64_t index, const PolicyEnvironment *env) {
        const Block *b = model_block(m, index);
        OnlinePolicy p;
        OnlineAction a;

        if (!b)
                return (PolicyDecision){ ACTION_NONE, "no such block" };
        if (b->state != BLOCK_OFFLINE)
                return (PolicyDecision){ ACTION_NONE, "not offline" };
        if (b->owner == OWNER_VIRTIO_MEM && !c->online_virtio_mem)
                return (PolicyDecision){ ACTION_NONE, "owned by virtio-mem (VirtioMem=ignore)" };
        if (b->owner == OWNER_DAX_KMEM && !c->online_dax_kmem)
                return (PolicyDecision){ ACTION_NONE, "owned by dax/kmem (DaxKmem=ignore)" };
        if (b->nid == NODE_NONE) {
                /* The kernel links a new block to its node only after announcing it, while it
                 * still holds device_hotplug_lock: a state write issued now waits for that lock
                 * and finds the block linked. So a decision that needs no node is made at once. */
                if (policy_uniform_action(c, env, &a) && a != ACTION_NONE)
                        return (PolicyDecision){ a, "uniform policy (node not linked yet)" };
                return (PolicyDecision){ ACTION_NONE, "node not known yet" };
        }
        if (node_quarantined(env, b->nid))
                return (PolicyDecision){ ACTION_NONE, "node quarantined" };
        if (env && env->retiring && ((env->retiring[b->nid / 64] >> (b->nid % 64)) & 1))
                return (PolicyDecision){ ACTION_NONE, "node being retired" };

        p = policy_resolve_auto(config_node_policy(c, b->nid), env && env->virtual_machine);
        switch (p) {
        case POLICY_OFFLINE:
                return (PolicyDecision){ ACTION_NONE, "policy offline" };
        case POLICY_ONLINE:
                a = ACTION_ONLINE;
                break;
        case POLICY_ONLINE_KERNEL:
                a = ACTION_ONLINE_KERNEL;
                break;
        case POLICY_ONLINE_MOVABLE:
                a = ACTION_ONLINE_MOVABLE;
                break;
        case POLICY_AUTO_MOVABLE:
                a = auto_movable(model_node(m, b->nid), config_node_movable_ratio(c, b->nid), env);
                break;
        default:
                return (PolicyDecision){ ACTION_NONE, "invalid policy" };
        }

        /* valid_zones lists where the block may go; asking for anything else gets EINVAL. */
        if (b->valid_zones != 0) {
                if (a == ACTION_ONLINE_MOVABLE && !(b->valid_zones & ZONE_MASK(ZONE_MOVABLE)))
                        return (PolicyDecision){ ACTION_NONE, "Movable not in valid_zones" };
                if (a == ACTION_ONLINE_KERNEL &&
                    !(b->valid_zones & (ZONE_MASK(ZONE_NORMAL) | ZONE_MASK(ZONE_DMA32) | ZONE_MASK(ZONE_DMA))))
                        return (PolicyDecision){ ACTION_NONE, "no kernel zone in valid_zones" };
        }
        return (PolicyDecision){ a, online_policy_to_string(p) };
}
