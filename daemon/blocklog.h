/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* blocklog.h — per-block journal records of a burst, merged into ranges before they are logged.
 *
 * A DIMM of 16 blocks makes 32 uevents in ~0.1 s, a coldplug 10^4..10^5: one journal line per
 * event would make journald do, on the host's CPUs, work of the same order as the onlining being
 * reported (bench/vm-online-latency.py measures it). So the events of a burst are collected here
 * and logged once the burst settles, a line per run of consecutive blocks with the same change,
 * node and state or zone: "Memory blocks 32-47 online in zone Movable (node 1)." */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef enum BlockLogKind {
        BLOCK_LOG_ADDED,        /* detail: the BlockState the block was added in */
        BLOCK_LOG_ONLINED,      /* detail: the Zone it went online in */
        BLOCK_LOG_OFFLINED,     /* detail: unused (0) */
        BLOCK_LOG_REMOVED,      /* detail: unused (0) */
        _BLOCK_LOG_KIND_MAX,
} BlockLogKind;

typedef struct BlockLogEntry {
        uint64_t index;
        int32_t nid;
        uint8_t kind;
        uint8_t detail;
} BlockLogEntry;

/* Blocks first..last (every one of them had this change in the burst; n of them). */
typedef struct BlockLogRun {
        BlockLogKind kind;
        int nid;
        unsigned detail;
        uint64_t first, last;
        size_t n;
} BlockLogRun;

/* Entries kept before the log is flushed in the middle of a burst: bounds the memory a storm uses
 * (16 bytes each), and the reader sees a storm's progress. */
#define BLOCK_LOG_MAX_ENTRIES 4096

typedef struct BlockLog {
        BlockLogEntry *entries;
        size_t n, allocated;
} BlockLog;

typedef void (*BlockLogRunFn)(const BlockLogRun *run, void *userdata);

/* Records one change. Returns 1 when the log is full and should be flushed, 0, or -ENOMEM (the
 * change is not recorded; the model has it regardless). */
int block_log_add(BlockLog *l, BlockLogKind kind, int nid, unsigned detail, uint64_t index);

/* Calls fn for each run, groups (kind, node, detail) in the order of their first change in the
 * burst and, within a group, by block number; a block recorded twice with the same change counts
 * once. Empties the log (keeps its buffer for the next burst). */
void block_log_flush(BlockLog *l, BlockLogRunFn fn, void *userdata);

void block_log_done(BlockLog *l);
