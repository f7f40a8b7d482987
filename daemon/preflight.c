/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* preflight.c — the retire preflight: what the model says about draining a node, as findings. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numa.h>
#include <stdarg.h>

#include "hotplug-bus.h"
#include "log.h"
#include "preflight.h"
#include "scan.h"

#define PAGE_BYTES UINT64_C(4096)
#define CGROUPS_MAX 100000              /* a bound on the cgroup walk */
#define FINDINGS_PER_KIND_MAX 5         /* name a few tasks/cgroups, count the rest */

const char *verdict_to_string(Verdict v) {
        static const char *const names[_VERDICT_MAX] = {
                [VERDICT_OK] = "ok",
                [VERDICT_WARNING] = "warning",
                [VERDICT_BLOCKER] = "blocker",
        };
        return v < _VERDICT_MAX ? names[v] : NULL;
}

void preflight_done(Preflight *p) {
        for (size_t i = 0; i < p->n_findings; i++)
                free(p->findings[i].message);
        free(p->findings);
        *p = (Preflight) {};
}

static int add(Preflight *p, Verdict v, const char *code, const char *format, ...) _printf_(4, 5);
static int add(Preflight *p, Verdict v, const char *code, const char *format, ...) {
        Finding *f;
        char *msg;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&msg, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        f = realloc(p->findings, (p->n_findings + 1) * sizeof(Finding));
        if (!f) {
                free(msg);
                return -ENOMEM;
        }
        p->findings = f;
        p->findings[p->n_findings++] = (Finding) { v, code, msg };
        p->n_blockers += v == VERDICT_BLOCKER;
        p->n_warnings += v == VERDICT_WARNING;
        return 0;
}

const Finding *preflight_first_blocker(const Preflight *p) {
        for (size_t i = 0; i < p->n_findings; i++)
                if (p->findings[i].verdict == VERDICT_BLOCKER)
                        return &p->findings[i];
        return NULL;
}

/* "Node 0 MemFree:  1234 kB" → bytes; the node's meminfo, not /proc/meminfo. */
static int read_node_meminfo(Manager *m, int node, uint64_t *ret_total, uint64_t *ret_free) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        bool have_total = false, have_free = false;
        int r;

        if (m->root->node_fd < 0)
                return -ENOENT;
        (void) xsprintf(path, "node%d/meminfo", node);
        r = sysfs_read_full_at(m->root->node_fd, path, &text, NULL);
        if (r < 0)
                return r;
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n'), key[32];
                unsigned long long kb;
                int id;

                if (nl)
                        *nl = 0;
                if (sscanf(line, "Node %d %31[^:]: %llu kB", &id, key, &kb) == 3 && id == node) {
                        if (streq(key, "MemTotal")) {
                                *ret_total = (uint64_t) kb * 1024;
                                have_total = true;
                        } else if (streq(key, "MemFree")) {
                                *ret_free = (uint64_t) kb * 1024;
                                have_free = true;
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        return have_total && have_free ? 0 : -EBADMSG;
}

static void format_mib(char *buf, size_t size, uint64_t bytes) {
        if (bytes >= (UINT64_C(10) << 30))
                snprintf(buf, size, "%" PRIu64 " GiB", bytes >> 30);
        else
                snprintf(buf, size, "%" PRIu64 " MiB", bytes >> 20);
}

static void format_cpus(const CpuSet *s, char *buf, size_t size) {
        size_t l = 0;

        buf[0] = 0;
        for (unsigned c = 0; c < MODEL_MAX_CPUS && l + 16 < size; c++) {
                unsigned e;

                if (!cpuset_isset(s, c))
                        continue;
                for (e = c; e + 1 < MODEL_MAX_CPUS && cpuset_isset(s, e + 1); e++)
                        ;
                l += (size_t) snprintf(buf + l, size - l, e == c ? "%s%u" : "%s%u-%u", l ? "," : "", c, e);
                c = e;
        }
}

static int check_memory(Manager *m, const Node *n, Preflight *p) {
        uint64_t total, free_bytes, used, available = 0;
        bool exact = true;
        char a[32], b[32];
        int r;

        r = read_node_meminfo(m, n->id, &total, &free_bytes);
        if (r >= 0)
                used = total > free_bytes ? total - free_bytes : 0;
        else {
                /* No meminfo: everything managed might be in use. */
                used = node_managed_pages(n) * PAGE_BYTES;
                exact = false;
        }
        for (int id = 0; id <= m->model->max_node; id++) {
                const Node *o = model_node(m->model, id);
                uint64_t t, f;

                if (!o || id == n->id || !o->online || node_online_blocks(o) == 0)
                        continue;
                if (read_node_meminfo(m, id, &t, &f) >= 0)
                        available += f;
                else {
                        exact = false;
                        available += node_managed_pages(o) * PAGE_BYTES;
                }
        }
        p->bytes_to_migrate = used;
        p->bytes_available = available;
        format_mib(a, sizeof(a), used);
        format_mib(b, sizeof(b), available);
        if (used == 0)
                return add(p, VERDICT_OK, "memory", "Nothing to migrate: no memory of node %d is in use.", n->id);
        if (available < used)
                return add(p, VERDICT_BLOCKER, "insufficient-memory",
                           "%s in use on node %d must move, but the other nodes have only %s free.", a, n->id, b);
        /* Reserve=: what the rest of the host must keep free after taking the node's memory in. */
        if (available - used < m->config.reserve_bytes) {
                char c[32];
                format_mib(c, sizeof(c), m->config.reserve_bytes);
                return add(p, VERDICT_BLOCKER, "insufficient-memory",
                           "%s in use on node %d must move; the other nodes have %s free, which would leave less than Reserve=%s.",
                           a, n->id, b, c);
        }
        return add(p, VERDICT_OK, "memory", "%s%s in use on node %d must move; the other nodes have %s free.",
                   exact ? "" : "Up to ", a, n->id, b);
}

/* In-use huge pages must migrate: is there room for them on the other nodes' pools? Free ones are
 * dissolved by the offline itself. */
static int check_hugepages(Manager *m, const Node *n, Preflight *p) {
        for (size_t i = 0; i < n->n_hugepages; i++) {
                const HugePages *h = &n->hugepages[i];
                uint64_t used = h->nr - MIN(h->free, h->nr), room = 0;

                if (used == 0)
                        continue;
                for (int id = 0; id <= m->model->max_node; id++) {
                        const Node *o = model_node(m->model, id);
                        if (!o || id == n->id || !o->online)
                                continue;
                        for (size_t k = 0; k < o->n_hugepages; k++)
                                if (o->hugepages[k].size_kb == h->size_kb)
                                        room += o->hugepages[k].free;
                }
                if (room < used) {
                        int r = add(p, VERDICT_WARNING, "hugepages-room",
                                    "%" PRIu64 " huge pages of %" PRIu64 " kB in use on node %d must migrate, but the other nodes have %" PRIu64
                                    " free: the kernel must allocate new ones, which can fail (raise nr_hugepages elsewhere first).",
                                    used, h->size_kb, n->id, room);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Would the node's retirement leave this mask of allowed memory nodes empty? libnuma's bitmask
 * does the set arithmetic; the list itself is parsed here, against the tree (not the host). */
static bool mask_only_node(const char *list, int node) {
        uint64_t bits[MODEL_MAX_NODES / 64];
        struct bitmask *bm;
        bool only;

        if (parse_index_list(list, MODEL_MAX_NODES, bits, ELEMENTSOF(bits), NULL) < 0)
                return false;
        bm = numa_bitmask_alloc(MODEL_MAX_NODES);
        if (!bm)
                return false;
        for (unsigned i = 0; i < MODEL_MAX_NODES; i++)
                if ((bits[i / 64] >> (i % 64)) & 1)
                        numa_bitmask_setbit(bm, i);
        only = numa_bitmask_isbitset(bm, (unsigned) node);
        numa_bitmask_clearbit(bm, (unsigned) node);
        only = only && numa_bitmask_weight(bm) == 0;
        numa_bitmask_free(bm);
        return only;
}

typedef struct UsersScan {
        Manager *m;
        int node;
        unsigned n_cgroups, n_tasks, walked;
        char examples[256];
} UsersScan;

static void note_example(UsersScan *u, const char *what) {
        size_t l = strlen(u->examples);
        if (u->n_cgroups + u->n_tasks <= FINDINGS_PER_KIND_MAX && l + strlen(what) + 3 < sizeof(u->examples))
                snprintf(u->examples + l, sizeof(u->examples) - l, "%s%s", l ? ", " : "", what);
}

/* cgroup v2: cpuset.mems.effective of every cgroup under <root>/sys/fs/cgroup. */
static void walk_cgroups(UsersScan *u, int dirfd, const char *rel, unsigned depth) {
        char buf[4096];
        DIR *d;
        struct dirent *de;
        int fd;

        if (depth > 32 || u->walked++ > CGROUPS_MAX)
                return;
        if (sysfs_read_at(dirfd, "cpuset.mems.effective", buf, sizeof(buf)) > 0 && mask_only_node(buf, u->node)) {
                u->n_cgroups++;
                note_example(u, rel[0] ? rel : "/");
        }
        fd = dup(dirfd);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }
        while ((de = readdir(d))) {
                char sub[512];
                int sfd;

                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                sfd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (sfd < 0)
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
                walk_cgroups(u, sfd, sub, depth + 1);
                close(sfd);
        }
        closedir(d);
}

/* Tasks whose Mems_allowed_list (cpuset plus mempolicy view of /proc/PID/status) is the node alone,
 * and cgroups whose effective memory nodes would become empty: the kernel migrates their pages
 * anyway (the drain ignores mempolicies), but they lose the memory they were confined to. */
static int check_memory_users(Manager *m, int node, Preflight *p) {
        UsersScan u = { .m = m, .node = node };
        DIR *d;
        struct dirent *de;
        int fd;

        fd = openat(m->root->root_fd, "sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                walk_cgroups(&u, fd, "", 0);
                close(fd);
        }
        fd = m->root->proc_fd >= 0 ? dup(m->root->proc_fd) : -1;
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d && fd >= 0)
                close(fd);
        while (d && (de = readdir(d))) {
                char path[64], status[4096], *line, comm[64] = "?", what[96];
                unsigned pid;

                if (parse_prefixed_uint(de->d_name, "", &pid) < 0 || pid == 0)
                        continue;
                (void) xsprintf(path, "%u/status", pid);
                if (sysfs_read_at(m->root->proc_fd, path, status, sizeof(status)) < 0)
                        continue;
                if (sscanf(status, "Name:\t%63s", comm) != 1)
                        comm[0] = '?', comm[1] = 0;
                line = strstr(status, "\nMems_allowed_list:");
                if (!line)
                        continue;
                line += STRLEN("\nMems_allowed_list:");
                line += strspn(line, " \t");
                line[strcspn(line, "\n")] = 0;
                if (!mask_only_node(line, node))
                        continue;
                u.n_tasks++;
                snprintf(what, sizeof(what), "%s[%u]", comm, pid);
                note_example(&u, what);
        }
        if (d)
                closedir(d);
        if (u.n_cgroups + u.n_tasks == 0)
                return 0;
        return add(p, VERDICT_WARNING, "memory-users",
                   "%u task%s and %u cgroup%s may allocate memory from node %d only (%s%s): their pages migrate, but they lose the node they were confined to.",
                   u.n_tasks, u.n_tasks == 1 ? "" : "s", u.n_cgroups, u.n_cgroups == 1 ? "" : "s", node, u.examples,
                   u.n_cgroups + u.n_tasks > FINDINGS_PER_KIND_MAX ? ", …" : "");
}

int preflight_node(Manager *m, int node, Preflight *ret) {
        Preflight p = {};
        const Node *n = model_node(m->model, node);
        unsigned by_owner[_OWNER_MAX] = {}, kernel = 0, none = 0, movable, offline, devices = 0;
        char buf[256];
        int r = 0;

        if (!n)
                return -ENODEV;

        /* What looks like boot memory is read again before it is refused: the kernel links a
         * hot-added block to its ACPI memory device only after the block's uevents (see
         * owner_recheck_add() in manager.c). */
        for (uint64_t i = 0; i < m->model->n_block_slots; i++) {
                const Block *b = model_block(m->model, i);

                if (b && b->nid == node && b->owner == OWNER_BOOT)
                        (void) scan_block(m->root, m->model, i);
        }
        n = model_node(m->model, node);
        if (!n)
                return -ENODEV;

        /* One pass over the blocks for what the per-node counters do not keep: owners of online
         * blocks and the ACPI devices that would be ejected. */
        {
                _cleanup_free_ uint8_t *seen = m->model->n_devices ? calloc(m->model->n_devices, 1) : NULL;

                for (uint64_t i = 0; i < m->model->n_block_slots; i++) {
                        const Block *b = model_block(m->model, i);

                        if (!b || b->nid != node)
                                continue;
                        by_owner[b->owner]++;
                        if (b->device > 0 && seen && !seen[b->device - 1]) {
                                seen[b->device - 1] = 1;
                                devices++;
                        }
                }
        }
        for (Zone z = ZONE_DMA; z <= ZONE_HIGHMEM; z++)
                kernel += n->n_online_by_zone[z];
        none = n->n_online_by_zone[ZONE_NONE];
        movable = n->n_online_by_zone[ZONE_MOVABLE];
        offline = n->n_blocks_by_state[BLOCK_OFFLINE];

        if (!n->online && n->n_blocks == 0)
                r = add(&p, VERDICT_OK, "node-offline", "Node %d is already offline; there is nothing to retire.", node);
        else if (!n->online)
                r = add(&p, VERDICT_WARNING, "node-offline", "Node %d is offline but %u memory blocks still carry its id.",
                        node, n->n_blocks);
        else if (n->n_blocks == 0)
                r = add(&p, VERDICT_OK, "no-memory", "Node %d has no memory blocks.", node);
        else
                r = add(&p, VERDICT_OK, "blocks", "Node %d has %u memory blocks: %u online (%u Movable, %u kernel zones), %u offline.",
                        node, n->n_blocks, node_online_blocks(n), movable, kernel, offline);
        if (r < 0)
                goto fail;

        if (manager_find_node_job(m, node)) {
                r = add(&p, VERDICT_BLOCKER, "busy", "A job is already working on node %d.", node);
                if (r < 0)
                        goto fail;
        }
        if (n->n_present_cpus > 0) {
                format_cpus(&n->present_cpus, buf, sizeof(buf));
                r = add(&p, VERDICT_BLOCKER, "has-cpus",
                        "Node %d has %u present CPU%s (%s): a node with CPUs never goes offline; remove them first.",
                        node, n->n_present_cpus, n->n_present_cpus == 1 ? "" : "s", buf);
                if (r < 0)
                        goto fail;
        }
        if (n->ever_zone_device || n->zones[ZONE_DEVICE].spanned > 0) {
                r = add(&p, VERDICT_BLOCKER, "zone-device",
                        "Node %d spans ZONE_DEVICE memory (pmem, device DAX or GPU memory): the kernel never takes such a node offline.",
                        node);
                if (r < 0)
                        goto fail;
        }
        if (none > 0) {
                r = add(&p, VERDICT_BLOCKER, "zone-none",
                        "%u memory block%s of node %d span several zones or nodes (valid_zones \"none\") and can never be offlined.",
                        none, none == 1 ? "" : "s", node);
                if (r < 0)
                        goto fail;
        }
        if (by_owner[OWNER_BOOT] > 0) {
                r = add(&p, VERDICT_BLOCKER, "boot-memory",
                        "%u memory block%s of node %d came with boot memory and belong to no ejectable ACPI memory device.",
                        by_owner[OWNER_BOOT], by_owner[OWNER_BOOT] == 1 ? "" : "s", node);
                if (r < 0)
                        goto fail;
        }
        if (by_owner[OWNER_VIRTIO_MEM] > 0) {
                r = add(&p, VERDICT_BLOCKER, "virtio-mem",
                        "%u memory block%s of node %d belong to virtio-mem: unplug them through the hypervisor instead.",
                        by_owner[OWNER_VIRTIO_MEM], by_owner[OWNER_VIRTIO_MEM] == 1 ? "" : "s", node);
                if (r < 0)
                        goto fail;
        }
        if (by_owner[OWNER_DAX_KMEM] > 0) {
                r = add(&p, VERDICT_BLOCKER, "dax-kmem",
                        "%u memory block%s of node %d are device-dax memory given to the kernel (kmem): use daxctl to take them back.",
                        by_owner[OWNER_DAX_KMEM], by_owner[OWNER_DAX_KMEM] == 1 ? "" : "s", node);
                if (r < 0)
                        goto fail;
        }
        if (by_owner[OWNER_ACPI] > 0) {
                r = add(&p, VERDICT_OK, "acpi", "%u memory block%s belong to %u ejectable ACPI memory device%s.",
                        by_owner[OWNER_ACPI], by_owner[OWNER_ACPI] == 1 ? "" : "s", devices, devices == 1 ? "" : "s");
                if (r < 0)
                        goto fail;
        }
        if (kernel > 0) {
                r = add(&p, VERDICT_WARNING, "kernel-zone",
                        "%u block%s of node %d are online in kernel zones (DMA/DMA32/Normal): offlining them usually fails with EBUSY on unmovable pages.",
                        kernel, kernel == 1 ? "" : "s", node);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < n->n_hugepages; i++) {
                const HugePages *h = &n->hugepages[i];

                if (h->nr == 0)
                        continue;
                r = add(&p, VERDICT_WARNING, "hugepages",
                        "Node %d reserves %" PRIu64 " huge pages of %" PRIu64 " kB (%" PRIu64 " in use): free ones are dissolved, used ones must migrate.",
                        node, h->nr, h->size_kb, h->nr - MIN(h->free, h->nr));
                if (r < 0)
                        goto fail;
        }
        if (m->auto_online_blocks[0] && !streq(m->auto_online_blocks, "offline")) {
                r = add(&p, VERDICT_WARNING, "auto-online",
                        "The kernel onlines new memory by itself (auto_online_blocks=%s).", m->auto_online_blocks);
                if (r < 0)
                        goto fail;
        }
        if (node_online_blocks(n) > 0) {
                r = check_memory(m, n, &p);
                if (r < 0)
                        goto fail;
                r = check_hugepages(m, n, &p);
                if (r < 0)
                        goto fail;
        }
        r = check_memory_users(m, n->id, &p);
        if (r < 0)
                goto fail;
        *ret = p;
        return 0;
fail:
        preflight_done(&p);
        return r;
}

/* The error a failed retire job reports for its first blocker. */
const char *preflight_error_for(const char *code) {
        static const struct {
                const char *code, *error;
        } table[] = {
                { "has-cpus", HOTPLUG_ERROR_NODE_HAS_CPUS },
                { "insufficient-memory", HOTPLUG_ERROR_INSUFFICIENT_MEMORY },
                { "busy", HOTPLUG_ERROR_BUSY },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(code, table[i].code))
                        return table[i].error;
        return HOTPLUG_ERROR_NOT_REMOVABLE;
}

