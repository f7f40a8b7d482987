/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* model.c — blocks and nodes, per-node counters, and the kernel's rule for offlining a node. */
#include <assert.h>
#include <inttypes.h>

#include "model.h"

static const char *const block_state_names[_BLOCK_STATE_MAX] = {
        [BLOCK_ABSENT] = "absent",
        [BLOCK_OFFLINE] = "offline",
        [BLOCK_ONLINE] = "online",
        [BLOCK_GOING_OFFLINE] = "going-offline",
};

/* Spelled as valid_zones and /proc/zoneinfo spell them. */
static const char *const zone_names[_ZONE_MAX] = {
        [ZONE_DMA] = "DMA",
        [ZONE_DMA32] = "DMA32",
        [ZONE_NORMAL] = "Normal",
        [ZONE_HIGHMEM] = "HighMem",
        [ZONE_MOVABLE] = "Movable",
        [ZONE_DEVICE] = "Device",
        [ZONE_NONE] = "none",
        [ZONE_UNKNOWN] = "unknown",
};

static const char *const owner_names[_OWNER_MAX] = {
        [OWNER_BOOT] = "boot",
        [OWNER_ACPI] = "acpi",
        [OWNER_VIRTIO_MEM] = "virtio-mem",
        [OWNER_DAX_KMEM] = "dax-kmem",
};

const char *block_state_to_string(BlockState s) {
        return s >= 0 && s < _BLOCK_STATE_MAX ? block_state_names[s] : NULL;
}

BlockState block_state_from_string(const char *s) {
        for (int i = BLOCK_OFFLINE; i < _BLOCK_STATE_MAX; i++)
                if (streq(s, block_state_names[i]))
                        return i;
        return _BLOCK_STATE_INVALID;
}

DEFINE_STRING_TABLE_LOOKUP(zone, Zone, zone_names, _ZONE_MAX, _ZONE_INVALID);

const char *owner_to_string(BlockOwner o) {
        return o >= 0 && o < _OWNER_MAX ? owner_names[o] : NULL;
}

const char *offline_blocker_to_string(OfflineBlocker b) {
        switch (b) {
        case BLOCKER_SPANS_PAGES:
                return "spans-pages";
        case BLOCKER_HAS_BLOCKS:
                return "has-blocks";
        case BLOCKER_HAS_CPUS:
                return "has-cpus";
        case BLOCKER_ZONE_DEVICE:
                return "zone-device";
        }
        return NULL;
}

unsigned cpuset_count(const CpuSet *s) {
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(s->bits); i++)
                n += (unsigned) __builtin_popcountll(s->bits[i]);
        return n;
}

Model *model_new(void) {
        Model *m = calloc(1, sizeof(Model));

        if (!m)
                return NULL;
        m->max_node = -1;
        return m;
}

static Node *node_free(Node *n) {
        if (!n)
                return NULL;
        free(n->hugepages);
        free(n);
        return NULL;
}

Model *model_free(Model *m) {
        if (!m)
                return NULL;
        for (int i = 0; i <= m->max_node; i++)
                node_free(m->nodes[i]);
        free(m->blocks);
        free(m->multi_nodes);
        free(m->devices);
        free(m);
        return NULL;
}

int model_node_ensure(Model *m, int id, Node **ret) {
        Node *n;

        if (id < 0 || id >= MODEL_MAX_NODES)
                return -ERANGE;
        n = m->nodes[id];
        if (!n) {
                n = calloc(1, sizeof(Node));
                if (!n)
                        return -ENOMEM;
                n->id = id;
                m->nodes[id] = n;
                if (id > m->max_node)
                        m->max_node = id;
        }
        if (ret)
                *ret = n;
        return 0;
}

/* Forgets what the kernel no longer shows; the block counters must already be zero because
 * blocks linked to the node keep it (the kernel would not have removed it either). */
void model_node_remove(Model *m, int id) {
        Node *n = model_node(m, id);

        if (!n)
                return;
        if (n->n_blocks > 0) {
                /* Keep the counters: blocks still carry the nid. Only the node's own state goes. */
                n->online = false;
                n->has_memory = false;
                memset(n->zones, 0, sizeof(n->zones));
                return;
        }
        m->nodes[id] = node_free(n);
        while (m->max_node >= 0 && !m->nodes[m->max_node])
                m->max_node--;
}

void model_mark_dirty(Model *m, int id) {
        if (id < 0 || id >= MODEL_MAX_NODES)
                return;
        m->dirty_nodes[id / 64] |= UINT64_C(1) << (id % 64);
        m->any_dirty = true;
}

bool model_node_is_dirty(const Model *m, int id) {
        if (id < 0 || id >= MODEL_MAX_NODES)
                return false;
        return (m->dirty_nodes[id / 64] >> (id % 64)) & 1;
}

void model_clear_dirty(Model *m) {
        memset(m->dirty_nodes, 0, sizeof(m->dirty_nodes));
        m->any_dirty = false;
}

size_t model_block_nodes(const Model *m, const Block *b, int *nodes, size_t n) {
        size_t k = 0;

        if (b->extra_nodes > 0) {
                const int16_t *list = m->multi_nodes[b->extra_nodes - 1];

                for (size_t i = 0; i < 8 && list[i] != NODE_NONE && k < n; i++)
                        nodes[k++] = list[i];
                return k;
        }
        if (b->nid != NODE_NONE && n > 0)
                nodes[k++] = b->nid;
        return k;
}

int model_multi_nodes_add(Model *m, const int *nodes, size_t n, uint16_t *ret) {
        int16_t (*list)[8];

        if (n < 2 || n > 8)
                return -EINVAL;
        /* Reuse an identical list: a host has a handful of multi-node boot blocks, all alike. */
        for (size_t i = 0; i < m->n_multi_nodes; i++) {
                size_t j;
                for (j = 0; j < n && m->multi_nodes[i][j] == nodes[j]; j++)
                        ;
                if (j == n && (n == 8 || m->multi_nodes[i][n] == NODE_NONE)) {
                        *ret = (uint16_t) (i + 1);
                        return 0;
                }
        }
        if (m->n_multi_nodes >= UINT16_MAX - 1)
                return -E2BIG;
        list = realloc(m->multi_nodes, (m->n_multi_nodes + 1) * sizeof(*list));
        if (!list)
                return -ENOMEM;
        m->multi_nodes = list;
        for (size_t j = 0; j < 8; j++)
                list[m->n_multi_nodes][j] = j < n ? (int16_t) nodes[j] : NODE_NONE;
        *ret = (uint16_t) ++m->n_multi_nodes;
        return 0;
}

int model_device_get(Model *m, const char *name, uint32_t *ret) {
        MemoryDevice *d;

        for (size_t i = 0; i < m->n_devices; i++)
                if (streq(m->devices[i].name, name)) {
                        *ret = (uint32_t) (i + 1);
                        return 0;
                }
        if (strlen(name) >= sizeof(d->name))
                return -ENAMETOOLONG;
        d = realloc(m->devices, (m->n_devices + 1) * sizeof(MemoryDevice));
        if (!d)
                return -ENOMEM;
        m->devices = d;
        memset(&d[m->n_devices], 0, sizeof(MemoryDevice));
        strcpy(d[m->n_devices].name, name);
        *ret = (uint32_t) ++m->n_devices;
        return 0;
}

static int block_slots_ensure(Model *m, uint64_t index) {
        size_t n;
        Block *b;

        if (index < m->n_block_slots)
                return 0;
        /* Block indexes are phys_addr / block_size; 2^24 slots covers 2 PiB of 128 MiB blocks. */
        if (index >= (UINT64_C(1) << 24))
                return -ERANGE;
        n = MAX(m->n_block_slots * 2, (size_t) index + 1);
        n = MAX(n, (size_t) 1024);
        b = realloc(m->blocks, n * sizeof(Block));
        if (!b)
                return -ENOMEM;
        memset(b + m->n_block_slots, 0, (n - m->n_block_slots) * sizeof(Block));
        m->blocks = b;
        m->n_block_slots = n;
        return 0;
}

/* Adds (sign = +1) or removes (sign = -1) a block's contribution to its nodes' counters. */
static void account_block(Model *m, const Block *b, int sign) {
        int nodes[8];
        size_t n = model_block_nodes(m, b, nodes, ELEMENTSOF(nodes));

        m->n_blocks_by_state[b->state] += (uint64_t) (int64_t) sign;
        if (b->device > 0)
                m->devices[b->device - 1].n_blocks += (unsigned) sign;

        for (size_t i = 0; i < n; i++) {
                Node *node = model_node(m, nodes[i]);

                if (!node && model_node_ensure(m, nodes[i], &node) < 0)
                        continue;
                node->n_blocks += (unsigned) sign;
                node->n_blocks_by_state[b->state] += (unsigned) sign;
                /* Going-offline blocks are counted by state only: they are on their way out. */
                if (b->state == BLOCK_ONLINE)
                        node->n_online_by_zone[b->zone] += (unsigned) sign;
                if (b->state == BLOCK_OFFLINE)
                        node->n_offline_by_owner[b->owner] += (unsigned) sign;
                model_mark_dirty(m, nodes[i]);
        }
}

int model_block_set(Model *m, uint64_t index, const Block *b) {
        Block *slot;
        int r;

        if (b->state <= BLOCK_ABSENT || b->state >= _BLOCK_STATE_MAX || b->zone >= _ZONE_MAX ||
            b->owner >= _OWNER_MAX)
                return -EINVAL;
        if (b->device > m->n_devices || b->extra_nodes > m->n_multi_nodes)
                return -EINVAL;
        if (b->nid != NODE_NONE && (b->nid < 0 || b->nid >= MODEL_MAX_NODES))
                return -ERANGE;

        r = block_slots_ensure(m, index);
        if (r < 0)
                return r;
        slot = &m->blocks[index];
        if (slot->state != BLOCK_ABSENT)
                account_block(m, slot, -1);
        else
                m->n_blocks++;
        *slot = *b;
        account_block(m, slot, +1);
        return 0;
}

int model_block_set_state(Model *m, uint64_t index, BlockState state, Zone zone) {
        const Block *old = model_block(m, index);
        Block b;

        if (!old)
                return -ENOENT;
        b = *old;
        b.state = (uint8_t) state;
        b.zone = (uint8_t) zone;
        return model_block_set(m, index, &b);
}

int model_block_remove(Model *m, uint64_t index) {
        Block *slot;

        if (!model_block(m, index))
                return -ENOENT;
        slot = &m->blocks[index];
        account_block(m, slot, -1);
        memset(slot, 0, sizeof(*slot));
        m->n_blocks--;
        return 0;
}

uint64_t node_spanned_pages(const Node *n) {
        uint64_t s = 0;

        for (int z = 0; z < _ZONE_MAX; z++)
                s += n->zones[z].spanned;
        return s;
}

uint64_t node_present_pages(const Node *n) {
        uint64_t s = 0;

        for (int z = 0; z < _ZONE_MAX; z++)
                s += n->zones[z].present;
        return s;
}

uint64_t node_managed_pages(const Node *n) {
        uint64_t s = 0;

        for (int z = 0; z < _ZONE_MAX; z++)
                s += n->zones[z].managed;
        return s;
}

unsigned node_online_blocks(const Node *n) {
        return n->n_blocks_by_state[BLOCK_ONLINE] + n->n_blocks_by_state[BLOCK_GOING_OFFLINE];
}

/* try_offline_node() since "mm/memory_hotplug: Fix try_offline_node()" (v5.4, 5.3.12): a node
 * is set offline only if it spans no pages, no memory block carries its nid — offline blocks
 * included, because they are not spanned but can be onlined into the node later — and no
 * present CPU belongs to it. ZONE_DEVICE spans are never shrunk, so such a node stays. */
unsigned node_offline_blockers(const Node *n) {
        unsigned blockers = 0;

        if (node_spanned_pages(n) > 0)
                blockers |= BLOCKER_SPANS_PAGES;
        if (n->n_blocks > 0)
                blockers |= BLOCKER_HAS_BLOCKS;
        if (n->n_present_cpus > 0)
                blockers |= BLOCKER_HAS_CPUS;
        if (n->ever_zone_device || n->zones[ZONE_DEVICE].spanned > 0)
                blockers |= BLOCKER_ZONE_DEVICE;
        return blockers;
}

static bool node_equal(const Node *a, const Node *b, char *why, size_t why_size) {
#define CHECK(field)                                                                           \
        if (a->field != b->field) {                                                            \
                snprintf(why, why_size, "node %d: %s differs (%" PRIu64 " vs %" PRIu64 ")", a->id, \
                         #field, (uint64_t) a->field, (uint64_t) b->field);                    \
                return false;                                                                  \
        }
        CHECK(possible);
        CHECK(online);
        CHECK(has_memory);
        CHECK(n_blocks);
        for (int s = 0; s < _BLOCK_STATE_MAX; s++)
                CHECK(n_blocks_by_state[s]);
        for (int z = 0; z < _ZONE_MAX; z++) {
                CHECK(n_online_by_zone[z]);
                CHECK(zones[z].spanned);
                CHECK(zones[z].present);
                CHECK(zones[z].managed);
        }
        CHECK(n_present_cpus);
        CHECK(n_online_cpus);
#undef CHECK
        if (memcmp(&a->present_cpus, &b->present_cpus, sizeof(CpuSet)) != 0 ||
            memcmp(&a->online_cpus, &b->online_cpus, sizeof(CpuSet)) != 0) {
                snprintf(why, why_size, "node %d: CPU sets differ", a->id);
                return false;
        }
        return true;
}

bool model_equal(const Model *a, const Model *b, char *why, size_t why_size) {
        size_t slots = MAX(a->n_block_slots, b->n_block_slots);

        if (a->block_size != b->block_size) {
                snprintf(why, why_size, "block size differs");
                return false;
        }
        if (a->n_blocks != b->n_blocks) {
                snprintf(why, why_size, "block count differs (%zu vs %zu)", a->n_blocks, b->n_blocks);
                return false;
        }
        for (size_t i = 0; i < slots; i++) {
                const Block *x = model_block(a, i), *y = model_block(b, i);
                int nx[8], ny[8];
                size_t kx, ky;

                if (!x && !y)
                        continue;
                if (!x || !y) {
                        snprintf(why, why_size, "block %zu present in only one model", i);
                        return false;
                }
                kx = model_block_nodes(a, x, nx, 8);
                ky = model_block_nodes(b, y, ny, 8);
                if (x->state != y->state || x->zone != y->zone || x->owner != y->owner ||
                    x->valid_zones != y->valid_zones || kx != ky || memcmp(nx, ny, kx * sizeof(int)) != 0 ||
                    (x->device > 0) != (y->device > 0) ||
                    (x->device > 0 && !streq(a->devices[x->device - 1].name, b->devices[y->device - 1].name))) {
                        snprintf(why, why_size, "block %zu differs", i);
                        return false;
                }
        }
        for (int id = 0; id < MODEL_MAX_NODES; id++) {
                const Node *x = model_node(a, id), *y = model_node(b, id);

                if (!x && !y)
                        continue;
                if (!x || !y) {
                        snprintf(why, why_size, "node %d present in only one model", id);
                        return false;
                }
                if (!node_equal(x, y, why, why_size))
                        return false;
        }
        return true;
}
