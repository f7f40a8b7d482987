/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-blocklog.c — merging a burst's per-block changes into runs (daemon/blocklog.c). */
#include <errno.h>

#include "blocklog.h"
#include "tests.h"

typedef struct Collected {
        BlockLogRun runs[64];
        size_t n;
} Collected;

static void collect(const BlockLogRun *run, void *userdata) {
        Collected *c = userdata;

        ASSERT(c->n < 64);
        c->runs[c->n++] = *run;
}

#define ASSERT_RUN(r, k, node, d, f, l, count)                                        \
        do {                                                                          \
                ASSERT_EQ((r).kind, k);                                               \
                ASSERT_EQ((r).nid, node);                                             \
                ASSERT_EQ((r).detail, d);                                             \
                ASSERT_EQ((r).first, f);                                              \
                ASSERT_EQ((r).last, l);                                               \
                ASSERT_EQ((r).n, count);                                              \
        } while (0)

/* A DIMM under the kernel's auto-online: adds and onlines interleave, out of order. */
static void test_dimm_burst(void) {
        BlockLog l = {};
        Collected c = {};
        static const uint64_t order[] = { 33, 32, 34, 37, 35, 36, 39, 38, 40, 41, 42, 43, 44, 46, 45, 47 };

        for (size_t i = 0; i < 16; i++) {
                ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ADDED, 1, 0, order[i]), 0);
                if (i >= 2)
                        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 4, order[i - 2]), 0);
        }
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 4, 47), 0);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 4, 45), 0);
        block_log_flush(&l, collect, &c);
        ASSERT_EQ(c.n, 2);
        ASSERT_RUN(c.runs[0], BLOCK_LOG_ADDED, 1, 0, 32, 47, 16);
        ASSERT_RUN(c.runs[1], BLOCK_LOG_ONLINED, 1, 4, 32, 47, 16);
        ASSERT_EQ(l.n, 0);

        /* Flushed: the next burst starts empty. */
        c.n = 0;
        block_log_flush(&l, collect, &c);
        ASSERT_EQ(c.n, 0);
        block_log_done(&l);
}

/* Gaps, other nodes, other zones and duplicates each end a run; groups keep the burst's order. */
static void test_runs_split(void) {
        BlockLog l = {};
        Collected c = {};

        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_OFFLINED, 2, 0, 10), 0);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 3, 5), 0);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_OFFLINED, 2, 0, 11), 0);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_OFFLINED, 2, 0, 11), 0);  /* duplicate event */
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_OFFLINED, 2, 0, 13), 0);  /* gap at 12 */
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 4, 6), 0);    /* other zone */
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ONLINED, 1, 3, 6), 0);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_OFFLINED, 3, 0, 12), 0);  /* other node */
        block_log_flush(&l, collect, &c);
        ASSERT_EQ(c.n, 5);
        ASSERT_RUN(c.runs[0], BLOCK_LOG_OFFLINED, 2, 0, 10, 11, 2);
        ASSERT_RUN(c.runs[1], BLOCK_LOG_OFFLINED, 2, 0, 13, 13, 1);
        ASSERT_RUN(c.runs[2], BLOCK_LOG_ONLINED, 1, 3, 5, 6, 2);
        ASSERT_RUN(c.runs[3], BLOCK_LOG_ONLINED, 1, 4, 6, 6, 1);
        ASSERT_RUN(c.runs[4], BLOCK_LOG_OFFLINED, 3, 0, 12, 12, 1);
        block_log_done(&l);
}

typedef struct Order {
        size_t runs;
        uint64_t last;
} Order;

static void count_singles(const BlockLogRun *run, void *userdata) {
        Order *o = userdata;

        ASSERT_EQ(run->n, 1);
        ASSERT(o->runs == 0 || run->first > o->last);
        o->last = run->first;
        o->runs++;
}

/* A storm: the log says when it is full (bounded memory), and refuses past that. */
static void test_full(void) {
        BlockLog l = {};
        Order order = {};
        int r = 0;

        for (uint64_t i = 0; i < BLOCK_LOG_MAX_ENTRIES; i++) {
                r = block_log_add(&l, BLOCK_LOG_ADDED, -1, 1, 2 * i);
                ASSERT_EQ(r, i + 1 == BLOCK_LOG_MAX_ENTRIES ? 1 : 0);
        }
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ADDED, -1, 1, 1), -ENOBUFS);
        ASSERT_EQ(l.n, BLOCK_LOG_MAX_ENTRIES);
        /* Every other block: no run merges, and the callback sees them in block order. */
        block_log_flush(&l, count_singles, &order);
        ASSERT_EQ(order.runs, BLOCK_LOG_MAX_ENTRIES);
        ASSERT_EQ(block_log_add(&l, BLOCK_LOG_ADDED, -1, 1, 1), 0);
        block_log_done(&l);
        ASSERT(l.entries == NULL && l.n == 0);
}

int main(void) {
        RUN(test_dimm_burst);
        RUN(test_runs_split);
        RUN(test_full);
        return 0;
}
