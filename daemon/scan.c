/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* scan.c — the model from sysfs/procfs: a fast cold scan and cheap per-object refreshes. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#include "log.h"
#include "scan.h"

typedef struct DirEntry {
        const char *name;
        unsigned char type;
} DirEntry;

/* getdents64 with a large buffer: the memory directory of a big host holds 10^5 entries and
 * readdir()'s 32 KiB buffer would cost a syscall per ~1000 of them. */
typedef int (*DirCallback)(const DirEntry *e, void *userdata);

static int for_each_dirent_at(int dirfd, const char *path, DirCallback cb, void *userdata) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        const size_t size = 1024 * 1024;

        fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                long n = syscall(SYS_getdents64, fd, buf, size);

                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return 0;
                for (long off = 0; off < n;) {
                        struct {
                                uint64_t ino;
                                int64_t off;
                                unsigned short reclen;
                                unsigned char type;
                                char name[];
                        } *d = (void *) (buf + off);
                        DirEntry e = { .name = d->name, .type = d->type };
                        int r;

                        off += d->reclen;
                        if (e.name[0] == '.')
                                continue;
                        r = cb(&e, userdata);
                        if (r < 0)
                                return r;
                }
        }
}

/* What the per-node directories say about blocks, before the blocks are read. */
typedef struct LinkTable {
        int16_t *nid;           /* per block index: NODE_NONE, a node, or NID_MULTI */
        uint32_t *device;       /* per block index: device index+1 or 0 */
        size_t size;
        struct MultiLink {
                uint64_t index;
                int nodes[8];
                size_t n;
        } *multi;
        size_t n_multi;
} LinkTable;

#define NID_MULTI (-2)

static void link_table_done(LinkTable *t) {
        free(t->nid);
        free(t->device);
        free(t->multi);
}

static int link_table_ensure(LinkTable *t, uint64_t index) {
        size_t n;

        if (index < t->size)
                return 0;
        if (index >= (UINT64_C(1) << 24))
                return -ERANGE;
        n = MAX(t->size * 2, (size_t) index + 1);
        n = MAX(n, (size_t) 4096);
        int16_t *nid = realloc(t->nid, n * sizeof(int16_t));
        if (!nid)
                return -ENOMEM;
        t->nid = nid;
        uint32_t *dev = realloc(t->device, n * sizeof(uint32_t));
        if (!dev)
                return -ENOMEM;
        t->device = dev;
        for (size_t i = t->size; i < n; i++) {
                t->nid[i] = NODE_NONE;
                t->device[i] = 0;
        }
        t->size = n;
        return 0;
}

static struct MultiLink *link_table_multi(LinkTable *t, uint64_t index) {
        for (size_t i = 0; i < t->n_multi; i++)
                if (t->multi[i].index == index)
                        return &t->multi[i];
        return NULL;
}

static int link_table_add(LinkTable *t, uint64_t index, int node) {
        struct MultiLink *ml;
        int r;

        r = link_table_ensure(t, index);
        if (r < 0)
                return r;
        if (t->nid[index] == NODE_NONE) {
                t->nid[index] = (int16_t) node;
                return 0;
        }
        /* A boot block that spans nodes links to each of them. */
        ml = t->nid[index] == NID_MULTI ? link_table_multi(t, index) : NULL;
        if (!ml) {
                struct MultiLink *p = realloc(t->multi, (t->n_multi + 1) * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                t->multi = p;
                ml = &t->multi[t->n_multi++];
                *ml = (struct MultiLink){ .index = index, .nodes = { t->nid[index] }, .n = 1 };
                t->nid[index] = NID_MULTI;
        }
        if (ml->n < ELEMENTSOF(ml->nodes))
                ml->nodes[ml->n++] = node;
        return 0;
}

typedef struct NodeScan {
        Model *model;
        LinkTable *links;
        Node *node;
} NodeScan;

static int node_dir_entry(const DirEntry *e, void *userdata) {
        NodeScan *s = userdata;
        unsigned v;

        if (e->name[0] == 'm' && parse_prefixed_uint(e->name, "memory", &v) >= 0)
                return s->links ? link_table_add(s->links, v, s->node->id) : 0;
        if (e->name[0] == 'c' && parse_prefixed_uint(e->name, "cpu", &v) >= 0)
                cpuset_set(&s->node->present_cpus, v);
        return 0;
}

static int read_mask(SysRoot *root, const char *name, uint64_t *bits) {
        char buf[4096];
        int r;

        r = sysfs_read_attr_at(root->node_fd, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        return parse_index_list(buf, MODEL_MAX_NODES, bits, MODEL_MAX_NODES / 64, NULL);
}

static bool bit(const uint64_t *bits, int i) {
        return (bits[i / 64] >> (i % 64)) & 1;
}

int scan_node_masks(SysRoot *root, Model *m) {
        uint64_t possible[MODEL_MAX_NODES / 64], online[MODEL_MAX_NODES / 64],
                has_memory[MODEL_MAX_NODES / 64], has_cpu[MODEL_MAX_NODES / 64];
        int r;

        if (root->node_fd < 0) {
                Node *n;
                r = model_node_ensure(m, 0, &n);
                if (r < 0)
                        return r;
                n->possible = n->online = true;
                n->has_memory = m->n_blocks_by_state[BLOCK_ONLINE] > 0;
                return 0;
        }
        r = read_mask(root, "possible", possible);
        if (r < 0)
                return r;
        r = read_mask(root, "online", online);
        if (r < 0)
                return r;
        r = read_mask(root, "has_memory", has_memory);
        if (r < 0)
                return r;
        r = read_mask(root, "has_cpu", has_cpu);
        if (r < 0)
                memset(has_cpu, 0, sizeof(has_cpu));

        for (int id = 0; id < MODEL_MAX_NODES; id++) {
                Node *n = model_node(m, id);

                /* Only online nodes (and those blocks still point at) are modelled. */
                if (!n && !bit(online, id))
                        continue;
                if (!n) {
                        r = model_node_ensure(m, id, &n);
                        if (r < 0)
                                return r;
                }
                n->possible = bit(possible, id);
                n->online = bit(online, id);
                n->has_memory = bit(has_memory, id);
                n->has_cpu = bit(has_cpu, id);
        }
        return 0;
}

int scan_node_cpus_online(SysRoot *root, Model *m, int id) {
        char path[64], buf[4096];
        Node *n = model_node(m, id);
        int r;

        if (!n || root->node_fd < 0)
                return 0;
        if (xsprintf(path, "node%d/cpulist", id) < 0)
                return -ENAMETOOLONG;
        r = sysfs_read_at(root->node_fd, path, buf, sizeof(buf));
        if (r == -ENOENT) {
                memset(&n->online_cpus, 0, sizeof(n->online_cpus));
                n->n_online_cpus = 0;
                return 0;
        }
        if (r < 0)
                return r;
        r = parse_index_list(buf, MODEL_MAX_CPUS, n->online_cpus.bits, ELEMENTSOF(n->online_cpus.bits),
                             &n->n_online_cpus);
        return r;
}

int scan_node_cpus_present(SysRoot *root, Model *m, int id) {
        char path[32];
        Node *n = model_node(m, id);
        NodeScan s = { .model = m, .node = n };
        int r;

        if (!n || root->node_fd < 0)
                return 0;
        memset(&n->present_cpus, 0, sizeof(n->present_cpus));
        if (xsprintf(path, "node%d", id) < 0)
                return -ENAMETOOLONG;
        r = for_each_dirent_at(root->node_fd, path, node_dir_entry, &s);
        if (r < 0 && r != -ENOENT)
                return r;
        n->n_present_cpus = cpuset_count(&n->present_cpus);
        return 0;
}

typedef struct HugeScan {
        SysRoot *root;
        Node *node;
        const char *dir;
} HugeScan;

static int hugepage_entry(const DirEntry *e, void *userdata) {
        HugeScan *s = userdata;
        const char *p = startswith(e->name, "hugepages-");
        char path[128], buf[64];
        unsigned long long size_kb;
        HugePages hp = {};
        HugePages *a;
        int r;

        if (!p || sscanf(p, "%llukB", &size_kb) != 1)
                return 0;
        hp.size_kb = size_kb;
        if (xsprintf(path, "%s/%s/nr_hugepages", s->dir, e->name) < 0)
                return 0;
        r = sysfs_read_at(s->root->node_fd, path, buf, sizeof(buf));
        if (r >= 0)
                hp.nr = strtoull(buf, NULL, 10);
        if (xsprintf(path, "%s/%s/free_hugepages", s->dir, e->name) < 0)
                return 0;
        r = sysfs_read_at(s->root->node_fd, path, buf, sizeof(buf));
        if (r >= 0)
                hp.free = strtoull(buf, NULL, 10);

        a = realloc(s->node->hugepages, (s->node->n_hugepages + 1) * sizeof(HugePages));
        if (!a)
                return -ENOMEM;
        s->node->hugepages = a;
        /* Keep sizes sorted so that output and comparisons are stable. */
        size_t i = s->node->n_hugepages;
        while (i > 0 && a[i - 1].size_kb > hp.size_kb) {
                a[i] = a[i - 1];
                i--;
        }
        a[i] = hp;
        s->node->n_hugepages++;
        return 0;
}

int scan_node_hugepages(SysRoot *root, Model *m, int id) {
        char dir[48];
        Node *n = model_node(m, id);
        HugeScan s = { .root = root, .node = n, .dir = dir };
        int r;

        if (!n || root->node_fd < 0)
                return 0;
        free(n->hugepages);
        n->hugepages = NULL;
        n->n_hugepages = 0;
        if (xsprintf(dir, "node%d/hugepages", id) < 0)
                return -ENAMETOOLONG;
        r = for_each_dirent_at(root->node_fd, dir, hugepage_entry, &s);
        return r == -ENOENT ? 0 : r;
}

typedef struct ZoneinfoEntry {
        int node;
        Zone zone;
        ZonePages pages;
} ZoneinfoEntry;

typedef struct ZoneinfoScan {
        ZoneinfoEntry *entries;
        size_t n, allocated;
} ZoneinfoScan;

static int zoneinfo_entry(int node, Zone zone, const ZonePages *pages, void *userdata) {
        ZoneinfoScan *s = userdata;

        if (s->n >= s->allocated) {
                size_t a = MAX(s->allocated * 2, (size_t) 64);
                ZoneinfoEntry *p = realloc(s->entries, a * sizeof(ZoneinfoEntry));

                if (!p)
                        return -ENOMEM;
                s->entries = p;
                s->allocated = a;
        }
        s->entries[s->n++] = (ZoneinfoEntry) { .node = node, .zone = zone, .pages = *pages };
        return 0;
}

/* The whole file is parsed before anything is applied: garbage halfway through must not leave half a
 * zoneinfo in the model, nor a ZONE_DEVICE span, which is sticky by the kernel's rule. The kernel lists
 * every online node, so a file without a single zone (or with a NUL in it) is garbage too. */
int scan_zoneinfo(SysRoot *root, Model *m) {
        _cleanup_free_ char *text = NULL;
        ZoneinfoScan s = {};
        bool seen[MODEL_MAX_NODES] = {};
        size_t size = 0;
        int r;

        if (root->proc_fd < 0)
                return -ENOENT;
        r = sysfs_read_full_at(root->proc_fd, "zoneinfo", &text, &size);
        if (r < 0)
                return r;
        r = memchr(text, 0, size) ? -EBADMSG : parse_zoneinfo(text, zoneinfo_entry, &s);
        if (r >= 0 && s.n == 0)
                r = -EBADMSG;
        for (size_t i = 0; r >= 0 && i < s.n; i++) {
                const ZoneinfoEntry *e = &s.entries[i];
                Node *n;

                r = model_node_ensure(m, e->node, &n);
                if (r < 0)
                        break;
                if (!seen[e->node]) {
                        memset(n->zones, 0, sizeof(n->zones));
                        seen[e->node] = true;
                }
                n->zones[e->zone] = e->pages;
                if (e->zone == ZONE_DEVICE && e->pages.spanned > 0)
                        n->ever_zone_device = true;
        }
        free(s.entries);
        if (r < 0)
                return r;
        /* zoneinfo lists online nodes only: a node missing from it spans nothing. */
        for (int id = 0; id <= m->max_node; id++) {
                Node *n = model_node(m, id);
                if (!n)
                        continue;
                n->zoneinfo_seen = seen[id];
                if (!seen[id])
                        memset(n->zones, 0, sizeof(n->zones));
        }
        return 0;
}

/* Owner ranges from /proc/iomem, in block indexes. */
typedef struct OwnerRange {
        uint64_t first, last;
        BlockOwner owner;
} OwnerRange;

typedef struct OwnerRanges {
        OwnerRange *ranges;
        size_t n;
        uint64_t block_size;
        bool hidden;            /* the kernel printed 0-0: we lack CAP_SYS_ADMIN */
} OwnerRanges;

static int iomem_entry(uint64_t start, uint64_t end, BlockOwner owner, void *userdata) {
        OwnerRanges *o = userdata;
        OwnerRange *p;

        /* Without CAP_SYS_ADMIN the kernel shows every range as 00000000-00000000: not a range. */
        if (start == 0 && end == 0) {
                o->hidden = true;
                return 0;
        }
        p = realloc(o->ranges, (o->n + 1) * sizeof(OwnerRange));

        if (!p)
                return -ENOMEM;
        o->ranges = p;
        p[o->n++] = (OwnerRange){ start / o->block_size, end / o->block_size, owner };
        return 0;
}

static int read_owner_ranges(SysRoot *root, uint64_t block_size, OwnerRanges *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        ret->block_size = block_size;
        if (root->proc_fd < 0)
                return 0;
        r = sysfs_read_full_at(root->proc_fd, "iomem", &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = parse_iomem(text, iomem_entry, ret);
        if (r >= 0 && ret->hidden)
                log_warning("/proc/iomem hides its addresses (hotplugd lacks CAP_SYS_ADMIN): virtio-mem and dax/kmem memory "
                            "cannot be told from other memory and may be onlined by policy.");
        return r;
}

static BlockOwner owner_of(const OwnerRanges *o, uint64_t index, BlockOwner fallback) {
        for (size_t i = 0; i < o->n; i++)
                if (index >= o->ranges[i].first && index <= o->ranges[i].last)
                        return o->ranges[i].owner;
        return fallback;
}

int scan_owners(SysRoot *root, Model *m, const uint64_t *indexes, size_t n) {
        OwnerRanges o = {};
        int r;

        r = read_owner_ranges(root, m->block_size, &o);
        if (r < 0)
                goto finish;
        for (size_t i = 0; indexes ? i < n : i < m->n_block_slots; i++) {
                uint64_t index = indexes ? indexes[i] : i;
                const Block *b = model_block(m, index);
                Block nb;

                if (!b || b->owner == OWNER_ACPI)
                        continue;
                nb = *b;
                nb.owner = (uint8_t) owner_of(&o, index, OWNER_BOOT);
                if (nb.owner != b->owner) {
                        r = model_block_set(m, index, &nb);
                        if (r < 0)
                                goto finish;
                }
        }
        r = 0;
finish:
        free(o.ranges);
        return r;
}

/* ACPI memory devices: their physical_node* links name the blocks they own. */
typedef struct AcpiScan {
        SysRoot *root;
        Model *model;
        LinkTable *links;
        const char *device;
        uint32_t device_index;
} AcpiScan;

static int acpi_physical_node_entry(const DirEntry *e, void *userdata) {
        AcpiScan *s = userdata;
        char path[128], target[256];
        const char *base;
        uint64_t index;
        ssize_t n;
        int r;

        if (!startswith(e->name, "physical_node"))
                return 0;
        if (xsprintf(path, "sys/bus/acpi/devices/%s/%s", s->device, e->name) < 0)
                return 0;
        n = readlinkat(s->root->root_fd, path, target, sizeof(target) - 1);
        if (n < 0)
                return 0;
        target[n] = 0;
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (parse_memory_block_name(base, &index) < 0)
                return 0;
        r = link_table_ensure(s->links, index);
        if (r < 0)
                return r;
        s->links->device[index] = s->device_index;
        return 0;
}

static int acpi_device_entry(const DirEntry *e, void *userdata) {
        AcpiScan *s = userdata;
        char path[128];
        int r;

        if (!startswith(e->name, "PNP0C80:"))
                return 0;
        r = model_device_get(s->model, e->name, &s->device_index);
        if (r < 0)
                return r;
        s->device = e->name;
        if (xsprintf(path, "sys/bus/acpi/devices/%s/", e->name) < 0)
                return 0;
        r = for_each_dirent_at(s->root->root_fd, path, acpi_physical_node_entry, s);
        return r == -ENOENT ? 0 : r;
}

typedef struct ZoneSpans ZoneSpans;

typedef struct BlockScan {
        SysRoot *root;
        const ZoneSpans *spans;
        Model *model;
        LinkTable *links;
        OwnerRanges *owners;
        int fallback_nid;       /* without CONFIG_NUMA every block is node 0 */
} BlockScan;

/* An online block's zone without reading valid_zones: if exactly one zone span of any node in
 * /proc/zoneinfo intersects the block, and holds it whole, that is the zone valid_zones would
 * name (a block in several zones would intersect several spans, and is read). */
typedef struct ZoneSpan {
        uint64_t start, end;    /* physical addresses, [start, end) */
        Zone zone;
} ZoneSpan;

struct ZoneSpans {
        ZoneSpan v[256];
        size_t n;
        bool overflow;          /* more spans than fit: infer nothing, read every valid_zones */
};

static void zone_spans_from_model(const Model *m, ZoneSpans *spans) {
        uint64_t page = (uint64_t) getpagesize();

        spans->n = 0;
        spans->overflow = false;
        for (int id = 0; id <= m->max_node; id++) {
                const Node *n = model_node(m, id);
                if (!n)
                        continue;
                for (int z = 0; z < _ZONE_MAX; z++) {
                        const ZonePages *zp = &n->zones[z];
                        /* start_pfn is printed for populated zones only; ZONE_DEVICE has no blocks. */
                        if (z == ZONE_DEVICE || zp->present == 0 || zp->spanned == 0)
                                continue;
                        if (spans->n >= ELEMENTSOF(spans->v)) {
                                spans->overflow = true;
                                return;
                        }
                        spans->v[spans->n++] = (ZoneSpan){ zp->start_pfn * page, (zp->start_pfn + zp->spanned) * page, z };
                }
        }
}

static Zone zone_from_spans(const ZoneSpans *spans, uint64_t start, uint64_t end) {
        Zone found = _ZONE_INVALID;

        if (!spans || spans->overflow)
                return _ZONE_INVALID;
        for (size_t i = 0; i < spans->n; i++) {
                const ZoneSpan *z = &spans->v[i];
                if (z->end <= start || z->start >= end)
                        continue;
                if (found >= 0 || z->start > start || z->end < end)
                        return _ZONE_INVALID; /* ambiguous or partial: ask valid_zones */
                found = z->zone;
        }
        return found;
}

static int read_block_hinted(SysRoot *root, uint64_t index, uint64_t block_size, const ZoneSpans *spans,
                             bool zones_safe, Block *b);

static int read_block(SysRoot *root, uint64_t index, bool zones_safe, Block *b) {
        return read_block_hinted(root, index, 0, NULL, zones_safe, b);
}

/* zones_safe: the block is linked to its node. Reading valid_zones of a block the kernel has
 * registered but not yet given a node (between the memory "add" uevent and the nodeN link) makes
 * Linux 6.1 dereference a NULL pgdat in zone_for_pfn_range() (nid -1): an oops, seen in the VM
 * test bed. Until the link exists, only "state" is read; the zone comes with the re-read. */
static int read_block_hinted(SysRoot *root, uint64_t index, uint64_t block_size, const ZoneSpans *spans,
                             bool zones_safe, Block *b) {
        char path[64], buf[128];
        Zone first;
        uint8_t mask;
        BlockState st;
        int r;

        if (xsprintf(path, "memory%" PRIu64 "/state", index) < 0)
                return -ENAMETOOLONG;
        r = sysfs_read_attr_at(root->memory_fd, path, buf, sizeof(buf));
        if (r < 0)
                return r;
        r = parse_block_state(buf, &st);
        if (r < 0)
                return r;
        if (st == BLOCK_ONLINE && spans) {
                Zone z = zone_from_spans(spans, index * block_size, (index + 1) * block_size);
                if (z >= 0) {
                        b->state = (uint8_t) st;
                        b->zone = (uint8_t) z;
                        b->valid_zones = (uint8_t) ZONE_MASK(z);
                        return 0;
                }
        }
        if (!zones_safe) {
                b->state = (uint8_t) st;
                b->zone = ZONE_UNKNOWN;
                b->valid_zones = 0;
                return 0;
        }
        if (xsprintf(path, "memory%" PRIu64 "/valid_zones", index) < 0)
                return -ENAMETOOLONG;
        r = sysfs_read_attr_at(root->memory_fd, path, buf, sizeof(buf));
        if (r == -ENOENT) {
                /* Kernels without CONFIG_MEMORY_HOTREMOVE have no valid_zones. */
                first = ZONE_UNKNOWN;
                mask = 0;
        } else if (r < 0)
                return r;
        else {
                r = parse_valid_zones(buf, &first, &mask);
                if (r < 0)
                        return r;
        }
        b->state = (uint8_t) st;
        b->zone = (uint8_t) first;
        b->valid_zones = mask;
        return 0;
}

typedef struct IndexList {
        uint64_t *v;
        size_t n, allocated;
} IndexList;

static int collect_block_index(const DirEntry *e, void *userdata) {
        IndexList *l = userdata;
        uint64_t index;

        if (e->name[0] != 'm' || parse_memory_block_name(e->name, &index) < 0)
                return 0;
        /* Block directories are directories: a symlink there (to another block, or out of the
         * root) is not a block of this host. */
        if (e->type != DT_DIR && e->type != DT_UNKNOWN)
                return 0;
        if (l->n >= l->allocated) {
                size_t a = MAX(l->allocated * 2, (size_t) 4096);
                uint64_t *p = realloc(l->v, a * sizeof(uint64_t));
                if (!p)
                        return -ENOMEM;
                l->v = p;
                l->allocated = a;
        }
        l->v[l->n++] = index;
        return 0;
}

typedef struct ReadBlocks {
        SysRoot *root;
        const ZoneSpans *spans;
        const LinkTable *links;
        uint64_t block_size;
        const IndexList *l;
        Block *blocks;
        int8_t *errors;
        size_t from, to;
} ReadBlocks;

static void *read_blocks_range(void *userdata) {
        ReadBlocks *rb = userdata;

        for (size_t i = rb->from; i < rb->to; i++) {
                uint64_t index = rb->l->v[i];
                bool linked = rb->root->node_fd < 0 || (index < rb->links->size && rb->links->nid[index] != NODE_NONE);
                int r = read_block_hinted(rb->root, index, rb->block_size, rb->spans, linked, &rb->blocks[i]);
                rb->errors[i] = r == -ENOENT ? 1 : r < 0 ? 2 : 0;
        }
        return NULL;
}

/* Below this many blocks a second thread costs more than it saves. */
#define READ_BLOCKS_PARALLEL_MIN 1024

/* The attribute reads are nearly all of a cold scan's cost, and all of it kernel time (path
 * lookup, open, read, close), so: as few reads as possible, and on a host with a CPU to spare,
 * half of them on a second thread (each block's result goes to its own slot; nothing is shared
 * but read-only tables). On an idle 2-CPU machine this took 4,096 blocks from 21 to ~13 ms. */
static void read_blocks(SysRoot *root, const ZoneSpans *spans, const LinkTable *links, uint64_t block_size,
                        const IndexList *l, Block *blocks, int8_t *errors) {
        ReadBlocks first = { root, spans, links, block_size, l, blocks, errors, 0, l->n }, second;
        cpu_set_t cpus;
        pthread_t t;

        if (l->n >= READ_BLOCKS_PARALLEL_MIN && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1) {
                second = first;
                first.to = second.from = l->n / 2;
                if (pthread_create(&t, NULL, read_blocks_range, &second) == 0) {
                        (void) read_blocks_range(&first);
                        (void) pthread_join(t, NULL);
                        return;
                }
                first.to = l->n;
        }
        (void) read_blocks_range(&first);
}

static int assemble_block(BlockScan *s, uint64_t index, Block b, int8_t error) {
        int r;

        if (error == 1)
                return 0; /* removed while we scanned: its remove event follows */
        if (error) {
                /* Garbage in one block must not hide the others; mark what we cannot read. */
                b.state = BLOCK_OFFLINE;
                b.zone = ZONE_UNKNOWN;
                b.valid_zones = 0;
        }
        b.nid = NODE_NONE;
        if (index < s->links->size) {
                b.device = s->links->device[index];
                if (s->links->nid[index] == NID_MULTI) {
                        struct MultiLink *ml = link_table_multi(s->links, index);
                        int sorted[8];

                        if (!ml)
                                return -EINVAL;
                        memcpy(sorted, ml->nodes, sizeof(sorted));
                        for (size_t i = 1; i < ml->n; i++)
                                for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
                                        int t = sorted[j];
                                        sorted[j] = sorted[j - 1];
                                        sorted[j - 1] = t;
                                }
                        r = model_multi_nodes_add(s->model, sorted, ml->n, &b.extra_nodes);
                        if (r < 0)
                                return r;
                        /* The kernel keeps the last nid linked at boot: the highest one. */
                        b.nid = (int16_t) sorted[ml->n - 1];
                } else
                        b.nid = s->links->nid[index];
        }
        if (b.nid == NODE_NONE && s->fallback_nid >= 0)
                b.nid = (int16_t) s->fallback_nid;
        b.owner = b.device > 0 ? OWNER_ACPI : (uint8_t) owner_of(s->owners, index, OWNER_BOOT);
        return model_block_set(s->model, index, &b);
}

static int scan_blocks(BlockScan *s) {
        IndexList l = {};
        Block *blocks = NULL;
        int8_t *errors = NULL;
        int r;

        r = for_each_dirent_at(s->root->memory_fd, ".", collect_block_index, &l);
        if (r < 0)
                goto finish;
        blocks = calloc(MAX(l.n, (size_t) 1), sizeof(Block));
        errors = calloc(MAX(l.n, (size_t) 1), sizeof(int8_t));
        if (!blocks || !errors) {
                r = -ENOMEM;
                goto finish;
        }
        read_blocks(s->root, s->spans, s->links, s->model->block_size, &l, blocks, errors);
        for (size_t i = 0; i < l.n; i++) {
                r = assemble_block(s, l.v[i], blocks[i], errors[i]);
                if (r < 0)
                        goto finish;
        }
        r = 0;
finish:
        free(l.v);
        free(blocks);
        free(errors);
        return r;
}

int scan_model(SysRoot *root, Model **ret) {
        _cleanup_(model_freep) Model *m = NULL;
        LinkTable links = {};
        OwnerRanges owners = {};
        char buf[64];
        int r;

        m = model_new();
        if (!m)
                return -ENOMEM;

        r = sysfs_read_attr_at(root->memory_fd, "block_size_bytes", buf, sizeof(buf));
        if (r < 0)
                return r;
        r = parse_block_size(buf, &m->block_size);
        if (r < 0)
                return r;

        /* 1. Node ownership and present CPUs, from the per-node directories: one getdents pass
         *    per node instead of a readdir of every block directory. */
        if (root->node_fd >= 0) {
                uint64_t online[MODEL_MAX_NODES / 64];

                r = read_mask(root, "online", online);
                if (r < 0)
                        goto finish;
                for (int id = 0; id < MODEL_MAX_NODES; id++) {
                        char path[32];
                        NodeScan s = { .model = m, .links = &links };

                        if (!bit(online, id))
                                continue;
                        r = model_node_ensure(m, id, &s.node);
                        if (r < 0)
                                goto finish;
                        (void) xsprintf(path, "node%d", id);
                        r = for_each_dirent_at(root->node_fd, path, node_dir_entry, &s);
                        if (r < 0 && r != -ENOENT)
                                goto finish;
                        s.node->n_present_cpus = cpuset_count(&s.node->present_cpus);
                }
        }

        /* 2. Which ACPI memory device owns which block. */
        {
                AcpiScan s = { .root = root, .model = m, .links = &links };
                r = for_each_dirent_at(root->root_fd, "sys/bus/acpi/devices", acpi_device_entry, &s);
                if (r < 0 && r != -ENOENT)
                        goto finish;
        }

        /* 3. virtio-mem and dax/kmem ranges. */
        r = read_owner_ranges(root, m->block_size, &owners);
        if (r < 0)
                goto finish;

        /* 4. The blocks themselves: state, and valid_zones unless the zone spans already tell.
         *    The spans come from zoneinfo, read first for that. */
        r = scan_zoneinfo(root, m);
        if (r < 0 && r != -ENOENT)
                goto finish;
        {
                _cleanup_free_ ZoneSpans *spans = calloc(1, sizeof(ZoneSpans));
                if (!spans) {
                        r = -ENOMEM;
                        goto finish;
                }
                zone_spans_from_model(m, spans);
                BlockScan s = { .root = root, .spans = spans, .model = m, .links = &links, .owners = &owners,
                                .fallback_nid = root->node_fd < 0 ? 0 : -1 };
                r = scan_blocks(&s);
                if (r < 0)
                        goto finish;
        }

        /* 5. Node state, CPUs and hugepages (the spans were read before the blocks). */
        r = scan_node_masks(root, m);
        if (r < 0)
                goto finish;
        for (int id = 0; id <= m->max_node; id++) {
                if (!model_node(m, id))
                        continue;
                r = scan_node_cpus_online(root, m, id);
                if (r < 0)
                        goto finish;
                r = scan_node_hugepages(root, m, id);
                if (r < 0)
                        goto finish;
        }

        model_clear_dirty(m);
        *ret = TAKE_PTR(m);
        r = 0;
finish:
        link_table_done(&links);
        free(owners.ranges);
        return r;
}

typedef struct BlockLinks {
        int nodes[8];
        size_t n;
} BlockLinks;

static int block_dir_entry(const DirEntry *e, void *userdata) {
        BlockLinks *l = userdata;
        unsigned v;

        if (e->name[0] == 'n' && parse_prefixed_uint(e->name, "node", &v) >= 0 && v < MODEL_MAX_NODES &&
            l->n < ELEMENTSOF(l->nodes))
                l->nodes[l->n++] = (int) v;
        return 0;
}

int scan_block(SysRoot *root, Model *m, uint64_t index) {
        const Block *old = model_block(m, index);
        Block b = { .nid = NODE_NONE };
        BlockLinks links = {};
        char path[64], target[256];
        ssize_t n;
        int r;

        /* Links first: whether valid_zones may be read depends on them (see read_block_hinted). */
        if (xsprintf(path, "memory%" PRIu64, index) < 0)
                return -ENAMETOOLONG;
        if (root->node_fd >= 0) {
                r = for_each_dirent_at(root->memory_fd, path, block_dir_entry, &links);
                if (r == -ENOENT) {
                        if (old)
                                (void) model_block_remove(m, index);
                        return -ENOENT;
                }
                if (r < 0)
                        return r;
        } else
                links.nodes[links.n++] = 0;

        r = read_block(root, index, links.n > 0, &b);
        if (r == -ENOENT) {
                if (old)
                        (void) model_block_remove(m, index);
                return -ENOENT;
        }
        if (r < 0)
                return r;

        for (size_t i = 1; i < links.n; i++)
                for (size_t j = i; j > 0 && links.nodes[j - 1] > links.nodes[j]; j--) {
                        int t = links.nodes[j];
                        links.nodes[j] = links.nodes[j - 1];
                        links.nodes[j - 1] = t;
                }
        if (links.n == 1)
                b.nid = (int16_t) links.nodes[0];
        else if (links.n > 1) {
                r = model_multi_nodes_add(m, links.nodes, links.n, &b.extra_nodes);
                if (r < 0)
                        return r;
                b.nid = (int16_t) links.nodes[links.n - 1];
        }

        if (xsprintf(path, "memory%" PRIu64 "/firmware_node", index) < 0)
                return -ENAMETOOLONG;
        n = readlinkat(root->memory_fd, path, target, sizeof(target) - 1);
        if (n > 0) {
                const char *base;

                target[n] = 0;
                base = strrchr(target, '/');
                base = base ? base + 1 : target;
                if (startswith(base, "PNP0C80:")) {
                        r = model_device_get(m, base, &b.device);
                        if (r < 0)
                                return r;
                        b.owner = OWNER_ACPI;
                }
        }
        /* virtio-mem/dax ownership comes from /proc/iomem, refreshed in batches by the caller;
         * keep what we knew. */
        if (b.owner != OWNER_ACPI && old)
                b.owner = old->owner;
        return model_block_set(m, index, &b);
}

int scan_block_state(SysRoot *root, Model *m, uint64_t index) {
        const Block *old = model_block(m, index);
        Block b;
        int r;

        if (!old)
                return scan_block(root, m, index);
        b = *old;
        r = read_block(root, index, root->node_fd < 0 || old->nid != NODE_NONE, &b);
        if (r == -ENOENT) {
                (void) model_block_remove(m, index);
                return -ENOENT;
        }
        if (r < 0)
                return r;
        if (b.state == old->state && b.zone == old->zone && b.valid_zones == old->valid_zones)
                return 0;
        return model_block_set(m, index, &b);
}

typedef struct CpuNode {
        int node;
} CpuNode;

static int cpu_dir_entry(const DirEntry *e, void *userdata) {
        CpuNode *c = userdata;
        unsigned v;

        if (e->name[0] == 'n' && parse_prefixed_uint(e->name, "node", &v) >= 0)
                c->node = (int) v;
        return 0;
}

int scan_cpu_node(SysRoot *root, unsigned cpu) {
        CpuNode c = { .node = -ENOENT };
        char path[32];
        int r;

        if (root->cpu_fd < 0)
                return -ENOENT;
        if (xsprintf(path, "cpu%u", cpu) < 0)
                return -ENAMETOOLONG;
        r = for_each_dirent_at(root->cpu_fd, path, cpu_dir_entry, &c);
        if (r < 0)
                return r;
        return c.node;
}
