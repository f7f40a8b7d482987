/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* scan.h — building and refreshing the model from sysfs and procfs. */
#pragma once

#include "model.h"
#include "sysfs.h"

/* Cold scan: the whole model from the tree. About 6 syscalls per block (two attribute reads),
 * node ownership read once from the per-node directories instead of per block. */
int scan_model(SysRoot *root, Model **ret);

/* Re-reads one block (state, valid_zones, node links, firmware node) into the model.
 * Returns 0, or -ENOENT if the block is gone (then it is removed from the model). */
int scan_block(SysRoot *root, Model *m, uint64_t index);

/* Re-reads only state and valid_zones of a known block (online/offline events: node links and
 * owners do not change then). Falls back to scan_block() for a block the model does not have. */
int scan_block_state(SysRoot *root, Model *m, uint64_t index);

/* Re-reads the node masks (possible/online/has_memory/has_cpu) for all nodes: O(nodes). */
int scan_node_masks(SysRoot *root, Model *m);
/* Re-reads /proc/zoneinfo into every node's zone spans: O(nodes × zones). */
int scan_zoneinfo(SysRoot *root, Model *m);
/* Re-reads a node's online CPUs (cpulist) and hugepage pools. */
int scan_node_cpus_online(SysRoot *root, Model *m, int id);
int scan_node_hugepages(SysRoot *root, Model *m, int id);
/* Re-reads a node's present CPUs (its cpuM links). */
int scan_node_cpus_present(SysRoot *root, Model *m, int id);
/* Re-reads which blocks /proc/iomem says belong to virtio-mem or dax/kmem and updates owners
 * of the given blocks (NULL/0: all blocks). */
int scan_owners(SysRoot *root, Model *m, const uint64_t *indexes, size_t n);
/* The node a CPU's sysfs directory links to, or -ENOENT. */
int scan_cpu_node(SysRoot *root, unsigned cpu);
