/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* blocklog.c — merging a burst's per-block changes into runs of consecutive blocks (blocklog.h). */
#include <errno.h>
#include <stdlib.h>

#include "blocklog.h"
#include "util.h"

int block_log_add(BlockLog *l, BlockLogKind kind, int nid, unsigned detail, uint64_t index) {
        if (l->n == l->allocated) {
                size_t want = l->allocated ? l->allocated * 2 : 64;
                BlockLogEntry *e;

                if (want > BLOCK_LOG_MAX_ENTRIES)
                        want = BLOCK_LOG_MAX_ENTRIES;
                if (want <= l->n)
                        return -ENOBUFS; /* full: the caller flushes when told to (returns 1) */
                e = realloc(l->entries, want * sizeof(*e));
                if (!e)
                        return -ENOMEM;
                l->entries = e;
                l->allocated = want;
        }
        l->entries[l->n++] = (BlockLogEntry){ .index = index, .nid = nid, .kind = (uint8_t) kind, .detail = (uint8_t) detail };
        return l->n >= BLOCK_LOG_MAX_ENTRIES;
}

static uint64_t group_key(const BlockLogEntry *e) {
        return (uint64_t) e->kind << 48 | (uint64_t) (uint32_t) e->nid << 8 | e->detail;
}

/* An entry with the rank of its group (order of first appearance): qsort has no context argument. */
typedef struct Ranked {
        uint32_t rank;
        BlockLogEntry e;
} Ranked;

static int ranked_compare(const void *a, const void *b) {
        const Ranked *x = a, *y = b;

        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        return x->e.index < y->e.index ? -1 : x->e.index > y->e.index;
}

void block_log_flush(BlockLog *l, BlockLogRunFn fn, void *userdata) {
        uint64_t keys[64];
        size_t n_keys = 0;
        Ranked *r;

        if (l->n == 0)
                return;
        r = malloc(l->n * sizeof(*r));
        if (!r) {
                /* Out of memory: one line per change, in the order they came. */
                for (size_t i = 0; i < l->n; i++) {
                        const BlockLogEntry *e = &l->entries[i];
                        fn(&(BlockLogRun){ e->kind, e->nid, e->detail, e->index, e->index, 1 }, userdata);
                }
                l->n = 0;
                return;
        }
        for (size_t i = 0; i < l->n; i++) {
                uint64_t k = group_key(&l->entries[i]);
                size_t g;

                /* Few groups per burst (changes x nodes x zones); past 64, the rest share a rank
                 * and only sort by block, which still merges correctly (runs compare keys). */
                for (g = 0; g < n_keys && keys[g] != k; g++)
                        ;
                if (g == n_keys && n_keys < ELEMENTSOF(keys))
                        keys[n_keys++] = k;
                r[i] = (Ranked){ .rank = (uint32_t) g, .e = l->entries[i] };
        }
        qsort(r, l->n, sizeof(*r), ranked_compare);

        for (size_t i = 0; i < l->n;) {
                BlockLogRun run = { r[i].e.kind, r[i].e.nid, r[i].e.detail, r[i].e.index, r[i].e.index, 1 };
                uint64_t k = group_key(&r[i].e);
                size_t j;

                for (j = i + 1; j < l->n && group_key(&r[j].e) == k && r[j].e.index <= run.last + 1; j++)
                        if (r[j].e.index == run.last + 1) {
                                run.last++;
                                run.n++;
                        }
                fn(&run, userdata);
                i = j;
        }
        free(r);
        l->n = 0;
}

void block_log_done(BlockLog *l) {
        free(l->entries);
        *l = (BlockLog){};
}
