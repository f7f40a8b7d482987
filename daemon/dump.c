/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dump.c — JSON rendering of the model, the node verdicts and what the policy would do. */
#include <fcntl.h>

#include "dump.h"
#include "json.h"

static void dump_cpuset(JsonWriter *w, const CpuSet *s) {
        json_begin_array(w);
        for (unsigned word = 0; word < ELEMENTSOF(s->bits); word++)
                for (uint64_t bits = s->bits[word]; bits; bits &= bits - 1)
                        json_uint(w, word * 64 + (unsigned) __builtin_ctzll(bits));
        json_end_array(w);
}

static void dump_node(JsonWriter *w, const DumpInput *in, const Node *n) {
        unsigned blockers = node_offline_blockers(n);
        OnlinePolicy p = config_node_policy(in->config, n->id);

        json_begin_object(w);
        json_key(w, "id"), json_int(w, n->id);
        json_key(w, "possible"), json_bool(w, n->possible);
        json_key(w, "online"), json_bool(w, n->online);
        json_key(w, "has_memory"), json_bool(w, n->has_memory);
        json_key(w, "present_cpus"), dump_cpuset(w, &n->present_cpus);
        json_key(w, "online_cpus"), dump_cpuset(w, &n->online_cpus);
        json_key(w, "blocks"), json_uint(w, n->n_blocks);
        json_key(w, "online_blocks"), json_uint(w, n->n_blocks_by_state[BLOCK_ONLINE]);
        json_key(w, "offline_blocks"), json_uint(w, n->n_blocks_by_state[BLOCK_OFFLINE]);
        json_key(w, "going_offline_blocks"), json_uint(w, n->n_blocks_by_state[BLOCK_GOING_OFFLINE]);
        json_key(w, "online_blocks_by_zone");
        json_begin_object(w);
        for (int z = 0; z < _ZONE_MAX; z++)
                if (n->n_online_by_zone[z] > 0)
                        json_key(w, zone_to_string(z)), json_uint(w, n->n_online_by_zone[z]);
        json_end_object(w);
        json_key(w, "spanned_pages"), json_uint(w, node_spanned_pages(n));
        json_key(w, "present_pages"), json_uint(w, node_present_pages(n));
        json_key(w, "managed_pages"), json_uint(w, node_managed_pages(n));
        json_key(w, "zones");
        json_begin_object(w);
        for (int z = 0; z < _ZONE_MAX; z++) {
                const ZonePages *zp = &n->zones[z];
                if (!zp->spanned && !zp->present && !zp->managed)
                        continue;
                json_key(w, zone_to_string(z));
                json_begin_object(w);
                json_key(w, "spanned"), json_uint(w, zp->spanned);
                json_key(w, "present"), json_uint(w, zp->present);
                json_key(w, "managed"), json_uint(w, zp->managed);
                json_end_object(w);
        }
        json_end_object(w);
        json_key(w, "hugepages");
        json_begin_array(w);
        for (size_t i = 0; i < n->n_hugepages; i++) {
                json_begin_object(w);
                json_key(w, "size_kb"), json_uint(w, n->hugepages[i].size_kb);
                json_key(w, "nr"), json_uint(w, n->hugepages[i].nr);
                json_key(w, "free"), json_uint(w, n->hugepages[i].free);
                json_end_object(w);
        }
        json_end_array(w);
        json_key(w, "policy"), json_string(w, online_policy_to_string(p));
        json_key(w, "effective_policy"),
                json_string(w, online_policy_to_string(policy_resolve_auto(p, in->env && in->env->virtual_machine)));
        json_key(w, "quarantined"),
                json_bool(w, in->env && in->env->quarantined && ((in->env->quarantined[n->id / 64] >> (n->id % 64)) & 1));
        json_key(w, "can_offline"), json_bool(w, blockers == 0);
        json_key(w, "offline_blockers");
        json_begin_array(w);
        for (unsigned b = 1; b <= BLOCKER_ZONE_DEVICE; b <<= 1)
                if (blockers & b)
                        json_string(w, offline_blocker_to_string(b));
        json_end_array(w);
        json_end_object(w);
}

static void dump_block(JsonWriter *w, const DumpInput *in, uint64_t index, const Block *b) {
        const Model *m = in->model;
        int nodes[8];
        size_t n = model_block_nodes(m, b, nodes, ELEMENTSOF(nodes));
        bool online = b->state == BLOCK_ONLINE || b->state == BLOCK_GOING_OFFLINE;

        json_begin_object(w);
        json_key(w, "index"), json_uint(w, index);
        json_key(w, "start"), json_uint(w, index * m->block_size);
        json_key(w, "size"), json_uint(w, m->block_size);
        json_key(w, "state"), json_string(w, block_state_to_string(b->state));
        json_key(w, "zone"), json_string(w, online ? zone_to_string(b->zone) : NULL);
        json_key(w, "valid_zones");
        json_begin_array(w);
        /* The first valid zone is the kernel's default for plain "online": keep it first. */
        if (b->valid_zones & ZONE_MASK(b->zone))
                json_string(w, zone_to_string(b->zone));
        for (int z = 0; z < _ZONE_MAX; z++)
                if (z != b->zone && (b->valid_zones & ZONE_MASK(z)))
                        json_string(w, zone_to_string(z));
        json_end_array(w);
        json_key(w, "nodes");
        json_begin_array(w);
        for (size_t i = 0; i < n; i++)
                json_int(w, nodes[i]);
        json_end_array(w);
        json_key(w, "owner"), json_string(w, owner_to_string(b->owner));
        json_key(w, "device"), json_string(w, b->device > 0 ? m->devices[b->device - 1].name : NULL);
        json_end_object(w);
}

int dump_model_json(FILE *f, const DumpInput *in) {
        JsonWriter w = { .f = f };
        const Model *m = in->model;
        int r;

        flockfile(f);   /* the writer uses unlocked stdio (json.c) */
        json_begin_object(&w);
        json_key(&w, "root"), json_string(&w, in->root);
        json_key(&w, "block_size_bytes"), json_uint(&w, m->block_size);
        json_key(&w, "auto_online_blocks"), json_string(&w, in->auto_online_blocks);
        json_key(&w, "policy"), json_string(&w, online_policy_to_string(in->config->policy));
        json_key(&w, "virtual_machine"), json_bool(&w, in->env && in->env->virtual_machine);
        json_key(&w, "block_count"), json_uint(&w, m->n_blocks);
        json_key(&w, "nodes");
        json_begin_array(&w);
        for (int id = 0; id <= m->max_node; id++) {
                const Node *n = model_node(m, id);
                if (n)
                        dump_node(&w, in, n);
        }
        json_end_array(&w);

        json_key(&w, "blocks");
        json_begin_array(&w);
        for (uint64_t i = 0; i < m->n_block_slots; i++) {
                const Block *b = model_block(m, i);
                if (b)
                        dump_block(&w, in, i, b);
        }
        json_end_array(&w);

        json_key(&w, "conflicts");
        json_begin_array(&w);
        for (size_t i = 0; in->conflicts && i < in->conflicts->n; i++) {
                const Conflict *c = &in->conflicts->items[i];
                json_begin_object(&w);
                json_key(&w, "kind"), json_string(&w, conflict_kind_to_string(c->kind));
                json_key(&w, "source"), json_string(&w, c->source);
                json_key(&w, "detail"), json_string(&w, c->detail);
                json_end_object(&w);
        }
        json_end_array(&w);

        /* What the policy would do with the blocks that are offline now. */
        json_key(&w, "plan");
        json_begin_array(&w);
        for (uint64_t i = 0; i < m->n_block_slots; i++) {
                const Block *b = model_block(m, i);
                PolicyDecision d;

                if (!b || b->state != BLOCK_OFFLINE)
                        continue;
                d = policy_decide(in->config, m, i, in->env);
                json_begin_object(&w);
                json_key(&w, "block"), json_uint(&w, i);
                json_key(&w, "node"), json_int(&w, b->nid);
                json_key(&w, "action"), json_string(&w, online_action_to_string(d.action));
                json_key(&w, "reason"), json_string(&w, d.reason);
                json_end_object(&w);
        }
        json_end_array(&w);
        json_end_object(&w);
        putc_unlocked('\n', f);
        r = ferror_unlocked(f) ? -EIO : 0;
        funlockfile(f);
        return r;
}

int dump_model_to_file(const char *dir, const char *name, const DumpInput *in) {
        _cleanup_close_ int dfd = -1;
        char tmp[256];
        FILE *f;
        int fd, r;

        if (xsprintf(tmp, ".#%s.%d", name, (int) getpid()) < 0)
                return -ENAMETOOLONG;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        f = fdopen(fd, "w");
        if (!f) {
                r = negative_errno();
                close(fd);
                goto fail;
        }
        r = dump_model_json(f, in);
        if (r >= 0 && fflush(f) != 0)
                r = negative_errno();
        if (r >= 0 && fsync(fileno(f)) < 0)
                r = negative_errno();
        if (fclose(f) != 0 && r >= 0)
                r = negative_errno();
        if (r < 0)
                goto fail;
        if (renameat(dfd, tmp, dfd, name) < 0) {
                r = negative_errno();
                goto fail;
        }
        return 0;
fail:
        (void) unlinkat(dfd, tmp, 0);
        return r;
}
