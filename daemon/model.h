/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* model.h — the live model of memory blocks and NUMA nodes, and the kernel's node-offline rule. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The kernel's MAX_NUMNODES upper bound (CONFIG_NODES_SHIFT ≤ 10). */
#define MODEL_MAX_NODES 1024
#define MODEL_MAX_CPUS 8192
#define NODE_NONE (-1)

typedef enum BlockState {
        BLOCK_ABSENT,           /* no such block in the model */
        BLOCK_OFFLINE,
        BLOCK_ONLINE,
        BLOCK_GOING_OFFLINE,
        _BLOCK_STATE_MAX,
        _BLOCK_STATE_INVALID = -EINVAL,
} BlockState;

/* Zones as valid_zones and /proc/zoneinfo name them, plus ZONE_NONE for blocks that span
 * several zones or nodes (valid_zones "none": such blocks can never be offlined). */
typedef enum Zone {
        ZONE_DMA,
        ZONE_DMA32,
        ZONE_NORMAL,
        ZONE_HIGHMEM,
        ZONE_MOVABLE,
        ZONE_DEVICE,
        ZONE_NONE,
        ZONE_UNKNOWN,
        _ZONE_MAX,
        _ZONE_INVALID = -EINVAL,
} Zone;

#define ZONE_MASK(z) (1u << (z))

typedef enum BlockOwner {
        OWNER_BOOT,             /* present since boot, or added without a known driver */
        OWNER_ACPI,             /* an ACPI memory device (PNP0C80), ejectable */
        OWNER_VIRTIO_MEM,       /* "System RAM (virtio_mem)": the driver and hypervisor manage it */
        OWNER_DAX_KMEM,         /* "System RAM (kmem)": device-dax memory handed to the kernel */
        _OWNER_MAX,
        _OWNER_INVALID = -EINVAL,
} BlockOwner;

/* Kept small on purpose: hosts have up to ~10^5..10^6 blocks (see the memory benchmark). */
typedef struct Block {
        uint8_t state;          /* BlockState */
        uint8_t zone;           /* Zone: the zone of an online block, the default zone of an offline one */
        uint8_t valid_zones;    /* mask of ZONE_MASK(): where an offline block may go */
        uint8_t owner;          /* BlockOwner */
        int16_t nid;            /* the node the kernel stores (mem->nid), NODE_NONE if not linked yet */
        uint16_t extra_nodes;   /* > 0: index+1 into Model.multi_nodes (boot blocks linked to several nodes) */
        uint32_t device;        /* > 0: index+1 into Model.devices (the ACPI memory device owning it) */
} Block;

typedef struct ZonePages {
        uint64_t spanned;
        uint64_t present;
        uint64_t managed;
        uint64_t start_pfn;     /* only printed for populated zones; 0 otherwise */
} ZonePages;

typedef struct HugePages {
        uint64_t size_kb;
        uint64_t nr;
        uint64_t free;
} HugePages;

/* Why a node cannot go offline, by the rule of "mm/memory_hotplug: Fix try_offline_node()". */
typedef enum OfflineBlocker {
        BLOCKER_SPANS_PAGES = 1u << 0,  /* node_spanned_pages != 0 */
        BLOCKER_HAS_BLOCKS = 1u << 1,   /* a memory block (offline ones too) carries the nid */
        BLOCKER_HAS_CPUS = 1u << 2,     /* a present CPU belongs to the node */
        BLOCKER_ZONE_DEVICE = 1u << 3,  /* the node spanned ZONE_DEVICE memory: never shrinks */
} OfflineBlocker;

typedef struct CpuSet {
        uint64_t bits[MODEL_MAX_CPUS / 64];
} CpuSet;

typedef struct Node {
        int id;
        bool possible;
        bool online;
        bool has_memory;
        bool has_cpu;

        /* Counters kept current by model_block_set(): never recomputed by walking blocks. */
        unsigned n_blocks;                        /* blocks carrying this nid, any state */
        unsigned n_blocks_by_state[_BLOCK_STATE_MAX];
        unsigned n_online_by_zone[_ZONE_MAX];
        unsigned n_offline_by_owner[_OWNER_MAX];

        ZonePages zones[_ZONE_MAX];               /* from /proc/zoneinfo; ZONE_DEVICE is "Device" */
        bool zoneinfo_seen;                       /* the node appears in /proc/zoneinfo */
        bool ever_zone_device;                    /* spanned ZONE_DEVICE at some point: sticky */

        CpuSet present_cpus;                      /* nodeN/cpuM links */
        CpuSet online_cpus;                       /* nodeN/cpulist (the kernel ANDs it with online) */
        unsigned n_present_cpus;
        unsigned n_online_cpus;

        HugePages *hugepages;
        size_t n_hugepages;
} Node;

/* An ACPI memory device (PNP0C80) or container (ACPI0004) that owns hot-plugged blocks. */
typedef struct MemoryDevice {
        char name[32];          /* e.g. "PNP0C80:00" */
        unsigned n_blocks;      /* blocks currently linked to it */
} MemoryDevice;

typedef struct Model {
        uint64_t block_size;    /* bytes */

        Block *blocks;          /* dense, indexed by block index (phys_addr / block_size) */
        size_t n_block_slots;   /* allocated slots */
        size_t n_blocks;        /* present blocks */
        uint64_t n_blocks_by_state[_BLOCK_STATE_MAX];

        Node *nodes[MODEL_MAX_NODES];
        int max_node;           /* highest node id with a Node, or -1 */

        /* Side table for the rare boot blocks linked to several nodes: NODE_NONE-terminated lists. */
        int16_t (*multi_nodes)[8];
        size_t n_multi_nodes;

        MemoryDevice *devices;
        size_t n_devices;

        /* Node ids whose derived state (zoneinfo, masks, CPUs, hugepages) needs a re-read. */
        uint64_t dirty_nodes[MODEL_MAX_NODES / 64];
        bool any_dirty;
} Model;

Model *model_new(void);
Model *model_free(Model *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Model *, model_free);

/* Blocks. */
static inline const Block *model_block(const Model *m, uint64_t index) {
        if (index >= m->n_block_slots || m->blocks[index].state == BLOCK_ABSENT)
                return NULL;
        return &m->blocks[index];
}
int model_block_set(Model *m, uint64_t index, const Block *b);
int model_block_remove(Model *m, uint64_t index);
int model_block_set_state(Model *m, uint64_t index, BlockState state, Zone zone);
/* Copies the node list of a block into nodes[] (at most n), returns the count. */
size_t model_block_nodes(const Model *m, const Block *b, int *nodes, size_t n);
int model_multi_nodes_add(Model *m, const int *nodes, size_t n, uint16_t *ret);
int model_device_get(Model *m, const char *name, uint32_t *ret);

/* Nodes. */
static inline Node *model_node(const Model *m, int id) {
        if (id < 0 || id >= MODEL_MAX_NODES)
                return NULL;
        return m->nodes[id];
}
int model_node_ensure(Model *m, int id, Node **ret);
void model_node_remove(Model *m, int id);
void model_mark_dirty(Model *m, int id);
bool model_node_is_dirty(const Model *m, int id);
void model_clear_dirty(Model *m);

/* The rule. Returns the OfflineBlocker mask; 0 means the kernel would offline the node once
 * its last memory is removed. O(1): only counters and zone spans are consulted. */
unsigned node_offline_blockers(const Node *n);
uint64_t node_spanned_pages(const Node *n);
uint64_t node_present_pages(const Node *n);
uint64_t node_managed_pages(const Node *n);
unsigned node_online_blocks(const Node *n);

/* Names, as sysfs and the JSON/D-Bus output spell them. */
const char *block_state_to_string(BlockState s);
BlockState block_state_from_string(const char *s);
const char *zone_to_string(Zone z);
Zone zone_from_string(const char *s);
const char *owner_to_string(BlockOwner o);
const char *offline_blocker_to_string(OfflineBlocker b);

static inline void cpuset_set(CpuSet *s, unsigned cpu) {
        if (cpu < MODEL_MAX_CPUS)
                s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}
static inline bool cpuset_isset(const CpuSet *s, unsigned cpu) {
        return cpu < MODEL_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}
unsigned cpuset_count(const CpuSet *s);

/* Compares two models (blocks, node counters, spans); returns true if equal and, if not, puts a
 * description of the first difference into why. Used by tests and the storm benchmark. */
bool model_equal(const Model *a, const Model *b, char *why, size_t why_size);
