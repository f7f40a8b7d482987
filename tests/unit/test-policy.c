/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-policy.c — auto-online decisions: policies, zones, owners, quarantine, auto-movable ratio. */
#include "policy.h"
#include "tests.h"

static void add(Model *m, uint64_t index, BlockState st, Zone zone, uint8_t valid, int nid, BlockOwner owner) {
        Block b = { .state = st, .zone = zone, .valid_zones = valid, .nid = (int16_t) nid, .owner = owner };
        ASSERT_EQ(model_block_set(m, index, &b), 0);
}

#define NM (ZONE_MASK(ZONE_NORMAL) | ZONE_MASK(ZONE_MOVABLE))

static void test_simple_policies(void) {
        _cleanup_(model_freep) Model *m = model_new();
        Config c;
        PolicyDecision d;

        config_init(&c);
        add(m, 1, BLOCK_OFFLINE, ZONE_NORMAL, NM, 0, OWNER_ACPI);

        c.policy = POLICY_ONLINE_MOVABLE;
        d = policy_decide(&c, m, 1, NULL);
        ASSERT_EQ(d.action, ACTION_ONLINE_MOVABLE);
        ASSERT_STREQ(online_action_to_string(d.action), "online_movable");
        c.policy = POLICY_ONLINE_KERNEL;
        ASSERT_EQ(policy_decide(&c, m, 1, NULL).action, ACTION_ONLINE_KERNEL);
        c.policy = POLICY_ONLINE;
        ASSERT_EQ(policy_decide(&c, m, 1, NULL).action, ACTION_ONLINE);
        c.policy = POLICY_OFFLINE;
        ASSERT_EQ(policy_decide(&c, m, 1, NULL).action, ACTION_NONE);

        /* auto: bare metal keeps DIMMs removable, VMs get plain online. */
        c.policy = POLICY_AUTO;
        PolicyEnvironment vm = { .virtual_machine = true }, metal = { .virtual_machine = false };
        ASSERT_EQ(policy_decide(&c, m, 1, &metal).action, ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(policy_decide(&c, m, 1, &vm).action, ACTION_ONLINE);

        /* Not offline, unknown block, unknown node: nothing. */
        c.policy = POLICY_ONLINE_MOVABLE;
        add(m, 2, BLOCK_ONLINE, ZONE_NORMAL, ZONE_MASK(ZONE_NORMAL), 0, OWNER_BOOT);
        ASSERT_EQ(policy_decide(&c, m, 2, NULL).action, ACTION_NONE);
        ASSERT_EQ(policy_decide(&c, m, 99, NULL).action, ACTION_NONE);
        config_done(&c);
}

/* A policy that is the same for every node: the kernel can apply it (auto_online_blocks), and a
 * block not yet linked to its node is decided at once. Anything per node makes it non-uniform. */
static void test_uniform(void) {
        _cleanup_(model_freep) Model *m = model_new();
        _cleanup_free_ char *error = NULL;
        uint64_t quarantined[MODEL_MAX_NODES / 64] = {}, retiring[MODEL_MAX_NODES / 64] = {};
        PolicyEnvironment env = { .quarantined = quarantined, .retiring = retiring };
        OnlineAction a = _ACTION_MAX;
        Config c;

        config_init(&c);
        add(m, 3, BLOCK_OFFLINE, ZONE_NORMAL, 0, NODE_NONE, OWNER_ACPI);
        c.policy = POLICY_ONLINE_MOVABLE;
        ASSERT(policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(a, ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_ONLINE_MOVABLE);
        c.policy = POLICY_OFFLINE;
        ASSERT(policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(a, ACTION_NONE);
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_NONE);
        /* auto resolves per platform, then is uniform. */
        c.policy = POLICY_AUTO;
        env.virtual_machine = true;
        ASSERT(policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(a, ACTION_ONLINE);
        env.virtual_machine = false;
        /* auto-movable counts per node: never uniform, an unlinked block waits for its node. */
        c.policy = POLICY_AUTO_MOVABLE;
        ASSERT(!policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_NONE);
        /* A quarantined or retiring node anywhere: the node matters. */
        c.policy = POLICY_ONLINE_MOVABLE;
        quarantined[1] = UINT64_C(1) << 3; /* node 67 */
        ASSERT(!policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_NONE);
        quarantined[1] = 0;
        retiring[0] = 1;
        ASSERT(!policy_uniform_action(&c, &env, &a));
        retiring[0] = 0;
        /* virtio-mem stays its driver's business even when uniform. */
        add(m, 4, BLOCK_OFFLINE, ZONE_NORMAL, 0, NODE_NONE, OWNER_VIRTIO_MEM);
        ASSERT_EQ(policy_decide(&c, m, 4, &env).action, ACTION_NONE);
        config_done(&c);

        /* [Node N] sections: uniform only while they say what the global policy says. */
        config_init(&c);
        ASSERT_EQ(config_parse_string("t.conf", "[Online]\nPolicy=online_movable\n[Node 2]\nPolicy=online_movable\n"
                                      "[Node 3]\nMovableRatio=200\n", &c, &error), 0);
        ASSERT(policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(a, ACTION_ONLINE_MOVABLE);
        config_done(&c);
        config_init(&c);
        ASSERT_EQ(config_parse_string("t.conf", "[Online]\nPolicy=online_movable\n[Node 2]\nPolicy=online_kernel\n",
                                      &c, &error), 0);
        ASSERT(!policy_uniform_action(&c, &env, &a));
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_NONE);
        config_done(&c);
}

static void test_zones_owners_quarantine(void) {
        _cleanup_(model_freep) Model *m = model_new();
        uint64_t quarantined[MODEL_MAX_NODES / 64] = {};
        PolicyEnvironment env = { .quarantined = quarantined };
        Config c;

        config_init(&c);
        c.policy = POLICY_ONLINE_MOVABLE;
        /* valid_zones without Movable: asking for it would get EINVAL, so don't. */
        add(m, 1, BLOCK_OFFLINE, ZONE_NORMAL, ZONE_MASK(ZONE_NORMAL), 0, OWNER_BOOT);
        ASSERT_EQ(policy_decide(&c, m, 1, NULL).action, ACTION_NONE);
        c.policy = POLICY_ONLINE_KERNEL;
        add(m, 2, BLOCK_OFFLINE, ZONE_MOVABLE, ZONE_MASK(ZONE_MOVABLE), 0, OWNER_BOOT);
        ASSERT_EQ(policy_decide(&c, m, 2, NULL).action, ACTION_NONE);

        /* virtio-mem and dax/kmem are their drivers' business unless configured. */
        c.policy = POLICY_ONLINE_MOVABLE;
        add(m, 3, BLOCK_OFFLINE, ZONE_MOVABLE, NM, 0, OWNER_VIRTIO_MEM);
        add(m, 4, BLOCK_OFFLINE, ZONE_MOVABLE, NM, 0, OWNER_DAX_KMEM);
        ASSERT_EQ(policy_decide(&c, m, 3, NULL).action, ACTION_NONE);
        ASSERT_EQ(policy_decide(&c, m, 4, NULL).action, ACTION_NONE);
        c.online_virtio_mem = c.online_dax_kmem = true;
        ASSERT_EQ(policy_decide(&c, m, 3, NULL).action, ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(policy_decide(&c, m, 4, NULL).action, ACTION_ONLINE_MOVABLE);

        /* A quarantined node gets nothing onlined. */
        quarantined[0] = 1;
        ASSERT_EQ(policy_decide(&c, m, 3, &env).action, ACTION_NONE);
        ASSERT_STREQ(policy_decide(&c, m, 3, &env).reason, "node quarantined");
        config_done(&c);
}

static void test_per_node(void) {
        _cleanup_(model_freep) Model *m = model_new();
        _cleanup_free_ char *error = NULL;
        Config c;

        config_init(&c);
        ASSERT_EQ(config_parse_string("test.conf", "[Online]\nPolicy=online_kernel\n[Node 2]\nPolicy=online_movable\n", &c, &error), 0);
        add(m, 1, BLOCK_OFFLINE, ZONE_NORMAL, NM, 0, OWNER_BOOT);
        add(m, 2, BLOCK_OFFLINE, ZONE_NORMAL, NM, 2, OWNER_BOOT);
        ASSERT_EQ(policy_decide(&c, m, 1, NULL).action, ACTION_ONLINE_KERNEL);
        ASSERT_EQ(policy_decide(&c, m, 2, NULL).action, ACTION_ONLINE_MOVABLE);
        config_done(&c);
}

/* With MovableRatio=301 and 1 kernel block on the node, 3 movable blocks fit (300% ≤ 301%),
 * the 4th would make 400%: it goes to the kernel zone, which then allows 3 more. */
static void test_auto_movable(void) {
        _cleanup_(model_freep) Model *m = model_new();
        OnlineAction seq[8];
        Config c;

        config_init(&c);
        c.policy = POLICY_AUTO_MOVABLE;
        c.movable_ratio = 301;
        add(m, 0, BLOCK_ONLINE, ZONE_NORMAL, ZONE_MASK(ZONE_NORMAL), 1, OWNER_BOOT);
        for (uint64_t i = 1; i <= 8; i++)
                add(m, i, BLOCK_OFFLINE, ZONE_NORMAL, NM, 1, OWNER_ACPI);
        for (uint64_t i = 1; i <= 8; i++) {
                PolicyDecision d = policy_decide(&c, m, i, NULL);
                seq[i - 1] = d.action;
                /* Play the kernel: the block lands where we asked. */
                ASSERT_EQ(model_block_set_state(m, i, BLOCK_ONLINE,
                                                d.action == ACTION_ONLINE_MOVABLE ? ZONE_MOVABLE : ZONE_NORMAL), 0);
        }
        ASSERT_EQ(seq[0], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[1], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[2], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[3], ACTION_ONLINE_KERNEL);
        ASSERT_EQ(seq[4], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[5], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[6], ACTION_ONLINE_MOVABLE);
        ASSERT_EQ(seq[7], ACTION_ONLINE_KERNEL);
        /* A node without kernel memory gets kernel memory first. */
        add(m, 20, BLOCK_OFFLINE, ZONE_NORMAL, NM, 3, OWNER_ACPI);
        ASSERT_EQ(policy_decide(&c, m, 20, NULL).action, ACTION_ONLINE_KERNEL);
        config_done(&c);
}

static void test_zone_check(void) {
        ASSERT(online_action_zone_ok(ACTION_ONLINE_MOVABLE, ZONE_MOVABLE));
        ASSERT(!online_action_zone_ok(ACTION_ONLINE_MOVABLE, ZONE_NORMAL));
        ASSERT(online_action_zone_ok(ACTION_ONLINE_KERNEL, ZONE_NORMAL));
        ASSERT(online_action_zone_ok(ACTION_ONLINE_KERNEL, ZONE_DMA32));
        ASSERT(!online_action_zone_ok(ACTION_ONLINE_KERNEL, ZONE_MOVABLE));
        ASSERT(online_action_zone_ok(ACTION_ONLINE, ZONE_MOVABLE));
}

int main(void) {
        RUN(test_simple_policies);
        RUN(test_uniform);
        RUN(test_zones_owners_quarantine);
        RUN(test_per_node);
        RUN(test_auto_movable);
        RUN(test_zone_check);
        return 0;
}
