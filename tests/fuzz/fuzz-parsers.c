/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-parsers.c — the sysfs/procfs parsers: the first byte picks block_size_bytes, state,
 * valid_zones, node/cpu lists, /proc/zoneinfo, /proc/iomem, sysfs names or udev rules. */
#include <stdint.h>

#include "conflicts.h"
#include "sysfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int zi_cb(int node, Zone zone, const ZonePages *p, void *userdata) {
        if (node < 0 || node >= MODEL_MAX_NODES || zone < 0 || zone >= _ZONE_MAX)
                abort();
        return 0;
}

static int iomem_cb(uint64_t start, uint64_t end, BlockOwner owner, void *userdata) {
        if (end < start || (owner != OWNER_VIRTIO_MEM && owner != OWNER_DAX_KMEM))
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t bits[MODEL_MAX_NODES / 64], v64;
        unsigned count, v;
        uint8_t mask;
        Zone zone;
        BlockState st;
        char *s;

        if (size < 1)
                return 0;
        s = malloc(size);
        if (!s)
                return 0;
        /* Attribute reads are NUL-terminated strings; make the input one. */
        memcpy(s, data + 1, size - 1);
        s[size - 1] = 0;

        switch (data[0] % 8) {
        case 0:
                if (parse_block_size(s, &v64) == 0 && (v64 < 4096 || (v64 & (v64 - 1))))
                        abort();
                break;
        case 1:
                if (parse_block_state(s, &st) == 0 && (st <= BLOCK_ABSENT || st >= _BLOCK_STATE_MAX))
                        abort();
                break;
        case 2:
                if (parse_valid_zones(s, &zone, &mask) == 0 && !(mask & ZONE_MASK(zone)))
                        abort();
                break;
        case 3:
                if (parse_index_list(s, MODEL_MAX_NODES, bits, ELEMENTSOF(bits), &count) == 0 &&
                    count > MODEL_MAX_NODES)
                        abort();
                break;
        case 4:
                (void) parse_zoneinfo(s, zi_cb, NULL);
                break;
        case 5:
                (void) parse_iomem(s, iomem_cb, NULL);
                break;
        case 6:
                (void) parse_prefixed_uint(s, "node", &v);
                (void) parse_memory_block_name(s, &v64);
                break;
        case 7:
                (void) udev_rules_write_memory_state(s);
                break;
        }
        free(s);
        return 0;
}
