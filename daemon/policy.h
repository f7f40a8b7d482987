/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.h — which zone, if any, a newly added memory block is onlined into. */
#pragma once

#include "config.h"
#include "model.h"

typedef enum OnlineAction {
        ACTION_NONE,
        ACTION_ONLINE,          /* plain "online": the kernel's online_policy picks the zone */
        ACTION_ONLINE_KERNEL,
        ACTION_ONLINE_MOVABLE,
        _ACTION_MAX,
} OnlineAction;

typedef struct PolicyEnvironment {
        bool virtual_machine;           /* for Policy=auto */
        const uint64_t *quarantined;    /* node bitmap (MODEL_MAX_NODES bits) or NULL */
        const uint64_t *retiring;       /* nodes a retire job works on, or NULL */
        /* Per node: blocks decided movable/kernel whose write has not been read back yet (so that
         * auto-movable counts them); NULL when none are in flight. */
        const unsigned *pending_movable;
        const unsigned *pending_kernel;
} PolicyEnvironment;

typedef struct PolicyDecision {
        OnlineAction action;
        const char *reason;     /* why: the policy name, or why nothing is done */
} PolicyDecision;

/* Pure: decides for one offline block from the config, the model's per-node counters (O(1)) and
 * the environment. Never touches sysfs. */
PolicyDecision policy_decide(const Config *c, const Model *m, uint64_t index, const PolicyEnvironment *env);

/* The one action the policy takes for every new block on every node, if there is one: the
 * policy is offline, online, online_kernel or online_movable (not auto-movable, which depends on
 * each node's counters), every [Node N] section resolves to the same, and no node is quarantined
 * or being retired. The kernel can then apply it by itself (auto_online_blocks), and a block whose
 * node link is not there yet needs no node to be decided. ACTION_NONE means "offline". */
bool policy_uniform_action(const Config *c, const PolicyEnvironment *env, OnlineAction *ret);

/* The string written to memoryN/state for an action ("online", "online_kernel", "online_movable"). */
const char *online_action_to_string(OnlineAction a);
/* Does the zone a block landed in match what the action asked for? */
bool online_action_zone_ok(OnlineAction a, Zone zone);
/* The policy that Policy=auto resolves to on this platform. */
OnlinePolicy policy_resolve_auto(OnlinePolicy p, bool virtual_machine);
