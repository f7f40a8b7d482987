/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-model.c — per-node counters and the kernel's node-offline rule. */
#include "model.h"
#include "tests.h"

static Block block(BlockState state, Zone zone, int nid) {
        return (Block){ .state = state, .zone = zone, .valid_zones = (uint8_t) ZONE_MASK(zone), .nid = (int16_t) nid };
}

static void test_counters(void) {
        _cleanup_(model_freep) Model *m = model_new();
        Block b;
        Node *n;

        ASSERT(m);
        m->block_size = 128 << 20;
        b = block(BLOCK_ONLINE, ZONE_NORMAL, 1);
        ASSERT_EQ(model_block_set(m, 10, &b), 0);
        b = block(BLOCK_OFFLINE, ZONE_MOVABLE, 1);
        ASSERT_EQ(model_block_set(m, 11, &b), 0);
        n = model_node(m, 1);
        ASSERT(n);
        ASSERT_EQ(n->n_blocks, 2);
        ASSERT_EQ(n->n_blocks_by_state[BLOCK_ONLINE], 1);
        ASSERT_EQ(n->n_blocks_by_state[BLOCK_OFFLINE], 1);
        ASSERT_EQ(n->n_online_by_zone[ZONE_NORMAL], 1);
        ASSERT_EQ(n->n_offline_by_owner[OWNER_BOOT], 1);
        ASSERT_EQ(m->n_blocks, 2);
        ASSERT(model_node_is_dirty(m, 1));

        /* Online → offline → going-offline → removed, counters follow. */
        ASSERT_EQ(model_block_set_state(m, 10, BLOCK_GOING_OFFLINE, ZONE_NORMAL), 0);
        ASSERT_EQ(node_online_blocks(n), 1);
        ASSERT_EQ(model_block_set_state(m, 10, BLOCK_OFFLINE, ZONE_NORMAL), 0);
        ASSERT_EQ(n->n_online_by_zone[ZONE_NORMAL], 0);
        ASSERT_EQ(n->n_blocks_by_state[BLOCK_OFFLINE], 2);
        ASSERT_EQ(model_block_set_state(m, 11, BLOCK_ONLINE, ZONE_MOVABLE), 0);
        ASSERT_EQ(n->n_online_by_zone[ZONE_MOVABLE], 1);
        ASSERT_EQ(model_block_remove(m, 10), 0);
        ASSERT_EQ(model_block_remove(m, 10), -ENOENT);
        ASSERT_EQ(n->n_blocks, 1);
        ASSERT_EQ(m->n_blocks, 1);
        ASSERT_EQ(model_block_set_state(m, 12, BLOCK_ONLINE, ZONE_NORMAL), -ENOENT);

        /* Moving a block to another node (re-read after a late link) moves its counts. */
        b = block(BLOCK_ONLINE, ZONE_MOVABLE, 2);
        ASSERT_EQ(model_block_set(m, 11, &b), 0);
        ASSERT_EQ(n->n_blocks, 0);
        ASSERT_EQ(model_node(m, 2)->n_blocks, 1);

        /* Garbage is refused. */
        b = block(BLOCK_ABSENT, ZONE_NORMAL, 1);
        ASSERT_EQ(model_block_set(m, 1, &b), -EINVAL);
        b = block(BLOCK_ONLINE, ZONE_NORMAL, 5000);
        ASSERT_EQ(model_block_set(m, 1, &b), -ERANGE);
        b = block(BLOCK_ONLINE, ZONE_NORMAL, 1);
        ASSERT_EQ(model_block_set(m, 1ull << 40, &b), -ERANGE);
}

static void test_multi_node(void) {
        _cleanup_(model_freep) Model *m = model_new();
        int nodes[] = { 0, 1 }, out[8];
        Block b = block(BLOCK_ONLINE, ZONE_NONE, 1);

        ASSERT_EQ(model_multi_nodes_add(m, nodes, 2, &b.extra_nodes), 0);
        ASSERT_EQ(b.extra_nodes, 1);
        ASSERT_EQ(model_block_set(m, 0, &b), 0);
        ASSERT_EQ(model_block_nodes(m, model_block(m, 0), out, 8), 2);
        ASSERT_EQ(out[0], 0);
        ASSERT_EQ(out[1], 1);
        /* Both nodes count the block and are blocked by it. */
        ASSERT_EQ(model_node(m, 0)->n_blocks, 1);
        ASSERT_EQ(model_node(m, 1)->n_blocks, 1);
        ASSERT(node_offline_blockers(model_node(m, 0)) & BLOCKER_HAS_BLOCKS);
        /* The same list is shared, not duplicated. */
        uint16_t again;
        ASSERT_EQ(model_multi_nodes_add(m, nodes, 2, &again), 0);
        ASSERT_EQ(again, 1);
        ASSERT_EQ(model_multi_nodes_add(m, nodes, 1, &again), -EINVAL);
        ASSERT_EQ(model_block_remove(m, 0), 0);
        ASSERT_EQ(model_node(m, 0)->n_blocks, 0);
        ASSERT_EQ(model_node(m, 1)->n_blocks, 0);
}

static void test_offline_rule(void) {
        _cleanup_(model_freep) Model *m = model_new();
        Block b;
        Node *n;

        ASSERT_EQ(model_node_ensure(m, 3, &n), 0);
        /* An empty online node: the kernel would offline it. */
        ASSERT_EQ(node_offline_blockers(n), 0);

        /* An offline block still carries the nid: has-blocks without spans-pages. */
        b = block(BLOCK_OFFLINE, ZONE_MOVABLE, 3);
        ASSERT_EQ(model_block_set(m, 40, &b), 0);
        ASSERT_EQ(node_offline_blockers(n), BLOCKER_HAS_BLOCKS);

        /* Online and spanned. */
        ASSERT_EQ(model_block_set_state(m, 40, BLOCK_ONLINE, ZONE_MOVABLE), 0);
        n->zones[ZONE_MOVABLE].spanned = 32768;
        ASSERT_EQ(node_offline_blockers(n), BLOCKER_HAS_BLOCKS | BLOCKER_SPANS_PAGES);
        ASSERT_EQ(node_spanned_pages(n), 32768);

        /* Removed: nothing holds the node. */
        ASSERT_EQ(model_block_remove(m, 40), 0);
        n->zones[ZONE_MOVABLE].spanned = 0;
        ASSERT_EQ(node_offline_blockers(n), 0);

        /* A present CPU, online or not, keeps the node. */
        cpuset_set(&n->present_cpus, 5);
        n->n_present_cpus = cpuset_count(&n->present_cpus);
        ASSERT_EQ(node_offline_blockers(n), BLOCKER_HAS_CPUS);
        ASSERT_EQ(n->n_online_cpus, 0);
        memset(&n->present_cpus, 0, sizeof(n->present_cpus));
        n->n_present_cpus = 0;

        /* ZONE_DEVICE spans are never shrunk: the node is kept, for good. */
        n->zones[ZONE_DEVICE].spanned = 1024;
        ASSERT_EQ(node_offline_blockers(n), BLOCKER_SPANS_PAGES | BLOCKER_ZONE_DEVICE);
        n->zones[ZONE_DEVICE].spanned = 0;
        n->ever_zone_device = true;
        ASSERT_EQ(node_offline_blockers(n), BLOCKER_ZONE_DEVICE);

        ASSERT_STREQ(offline_blocker_to_string(BLOCKER_SPANS_PAGES), "spans-pages");
        ASSERT_STREQ(offline_blocker_to_string(BLOCKER_HAS_BLOCKS), "has-blocks");
        ASSERT_STREQ(offline_blocker_to_string(BLOCKER_HAS_CPUS), "has-cpus");
        ASSERT_STREQ(offline_blocker_to_string(BLOCKER_ZONE_DEVICE), "zone-device");
}

static void test_node_remove_keeps_counted(void) {
        _cleanup_(model_freep) Model *m = model_new();
        Block b = block(BLOCK_OFFLINE, ZONE_MOVABLE, 2);

        ASSERT_EQ(model_block_set(m, 1, &b), 0);
        model_node(m, 2)->online = true;
        model_node_remove(m, 2);
        /* Blocks still point at it: the node stays modelled, offline. */
        ASSERT(model_node(m, 2));
        ASSERT(!model_node(m, 2)->online);
        ASSERT_EQ(model_block_remove(m, 1), 0);
        model_node_remove(m, 2);
        ASSERT(!model_node(m, 2));
        ASSERT_EQ(m->max_node, -1);
}

static void test_equal(void) {
        _cleanup_(model_freep) Model *a = model_new(), *b = model_new();
        Block x = block(BLOCK_ONLINE, ZONE_NORMAL, 0);
        char why[128];

        a->block_size = b->block_size = 128 << 20;
        ASSERT(model_equal(a, b, why, sizeof(why)));
        ASSERT_EQ(model_block_set(a, 5, &x), 0);
        ASSERT(!model_equal(a, b, why, sizeof(why)));
        ASSERT_EQ(model_block_set(b, 5, &x), 0);
        ASSERT(model_equal(a, b, why, sizeof(why)));
        ASSERT_EQ(model_block_set_state(b, 5, BLOCK_OFFLINE, ZONE_NORMAL), 0);
        ASSERT(!model_equal(a, b, why, sizeof(why)));
        ASSERT(strstr(why, "block 5"));
}

static void test_names(void) {
        for (int z = 0; z < _ZONE_MAX; z++)
                ASSERT_EQ(zone_from_string(zone_to_string(z)), z);
        for (int s = BLOCK_OFFLINE; s < _BLOCK_STATE_MAX; s++)
                ASSERT_EQ(block_state_from_string(block_state_to_string(s)), s);
        ASSERT_EQ(zone_from_string("movable"), _ZONE_INVALID);
        ASSERT(!zone_to_string(_ZONE_MAX));
        ASSERT_STREQ(owner_to_string(OWNER_VIRTIO_MEM), "virtio-mem");
}

int main(void) {
        RUN(test_counters);
        RUN(test_multi_node);
        RUN(test_offline_rule);
        RUN(test_node_remove_keeps_counted);
        RUN(test_equal);
        RUN(test_names);
        return 0;
}
