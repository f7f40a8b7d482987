/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-retire.c — the retire engine's pure decisions: drain order, failure classes, backoff. */
#include "retire.h"
#include "tests.h"

static void add(Model *m, uint64_t index, BlockState st, Zone zone, int nid) {
        Block b = { .state = st, .zone = zone, .valid_zones = ZONE_MASK(zone), .nid = (int16_t) nid };
        ASSERT_EQ(model_block_set(m, index, &b), 0);
}

static void test_drain_order(void) {
        _cleanup_(model_freep) Model *m = model_new();
        uint64_t *order = NULL;
        size_t n;

        add(m, 10, BLOCK_ONLINE, ZONE_NORMAL, 1);
        add(m, 11, BLOCK_ONLINE, ZONE_MOVABLE, 1);
        add(m, 12, BLOCK_ONLINE, ZONE_NORMAL, 1);
        add(m, 13, BLOCK_ONLINE, ZONE_MOVABLE, 1);
        add(m, 14, BLOCK_OFFLINE, ZONE_MOVABLE, 1);     /* already offline: not ours to drain */
        add(m, 15, BLOCK_ONLINE, ZONE_MOVABLE, 2);      /* another node */
        add(m, 16, BLOCK_GOING_OFFLINE, ZONE_MOVABLE, 1);
        n = retire_drain_order(m, 1, &order);
        ASSERT_EQ(n, 5);
        /* Movable first, highest address first; then the kernel zones, highest first. */
        ASSERT_EQ(order[0], 16);
        ASSERT_EQ(order[1], 13);
        ASSERT_EQ(order[2], 11);
        ASSERT_EQ(order[3], 12);
        ASSERT_EQ(order[4], 10);
        free(order);
        ASSERT_EQ(retire_drain_order(m, 7, &order), 0);
        free(order);
}

static void test_multi_node_never_drained(void) {
        _cleanup_(model_freep) Model *m = model_new();
        int nodes[] = { 0, 1 };
        Block b = { .state = BLOCK_ONLINE, .zone = ZONE_NONE, .nid = 1 };
        uint64_t *order = NULL;

        ASSERT_EQ(model_multi_nodes_add(m, nodes, 2, &b.extra_nodes), 0);
        ASSERT_EQ(model_block_set(m, 0, &b), 0);
        ASSERT_EQ(retire_drain_order(m, 1, &order), 0);
        free(order);
}

static void test_classes(void) {
        ASSERT(retire_error_is_transient(-EBUSY));
        ASSERT(retire_error_is_transient(-ETIMEDOUT));
        ASSERT(retire_error_is_transient(-EINTR));
        ASSERT(retire_error_is_transient(-EAGAIN));
        ASSERT(!retire_error_is_transient(-EINVAL));
        ASSERT(!retire_error_is_transient(-EPERM));
        ASSERT(!retire_error_is_transient(-ECANCELED));
        ASSERT(!retire_error_is_transient(-ENOMEM));
}

static void test_backoff(void) {
        ASSERT_EQ(retire_backoff_usec(1000000, 1), 1000000);
        ASSERT_EQ(retire_backoff_usec(1000000, 2), 2000000);
        ASSERT_EQ(retire_backoff_usec(1000000, 3), 4000000);
        ASSERT_EQ(retire_backoff_usec(1000000, 10), 60000000);
        ASSERT_EQ(retire_backoff_usec(0, 5), 0);
        ASSERT_EQ(retire_backoff_usec(40000000, 2), 60000000);
}

int main(void) {
        RUN(test_drain_order);
        RUN(test_multi_node_never_drained);
        RUN(test_classes);
        RUN(test_backoff);
        return 0;
}
