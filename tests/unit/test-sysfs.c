/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-sysfs.c — the parsers for block_size_bytes, state, valid_zones, node lists, zoneinfo, iomem. */
#include "sysfs.h"
#include "tests.h"

static void test_block_size(void) {
        uint64_t v;

        ASSERT_EQ(parse_block_size("8000000", &v), 0);
        ASSERT_EQ(v, 128ull << 20);
        ASSERT_EQ(parse_block_size("0x1000000", &v), 0);
        ASSERT_EQ(v, 16ull << 20);
        ASSERT_EQ(parse_block_size("80000000", &v), 0);
        ASSERT_EQ(v, 2ull << 30);
        ASSERT_EQ(parse_block_size("", &v), -EINVAL);
        ASSERT_EQ(parse_block_size("0x", &v), -EINVAL);
        ASSERT_EQ(parse_block_size("8000001", &v), -EINVAL);       /* not a power of two */
        ASSERT_EQ(parse_block_size("800", &v), -EINVAL);           /* smaller than a page */
        ASSERT_EQ(parse_block_size("12g", &v), -EINVAL);
        ASSERT_EQ(parse_block_size("1ffffffffffffffff", &v), -ERANGE);
        ASSERT_EQ(parse_block_size("134217728 ", &v), -EINVAL);
}

static void test_block_state(void) {
        BlockState s;

        ASSERT_EQ(parse_block_state("online", &s), 0);
        ASSERT_EQ(s, BLOCK_ONLINE);
        ASSERT_EQ(parse_block_state("offline", &s), 0);
        ASSERT_EQ(s, BLOCK_OFFLINE);
        ASSERT_EQ(parse_block_state("going-offline", &s), 0);
        ASSERT_EQ(s, BLOCK_GOING_OFFLINE);
        ASSERT_EQ(parse_block_state("absent", &s), -EINVAL);
        ASSERT_EQ(parse_block_state("Online", &s), -EINVAL);
        ASSERT_EQ(parse_block_state("", &s), -EINVAL);
}

static void test_valid_zones(void) {
        Zone z;
        uint8_t mask;

        ASSERT_EQ(parse_valid_zones("Normal", &z, &mask), 0);
        ASSERT_EQ(z, ZONE_NORMAL);
        ASSERT_EQ(mask, ZONE_MASK(ZONE_NORMAL));
        ASSERT_EQ(parse_valid_zones("Movable Normal", &z, &mask), 0);
        ASSERT_EQ(z, ZONE_MOVABLE);
        ASSERT_EQ(mask, ZONE_MASK(ZONE_MOVABLE) | ZONE_MASK(ZONE_NORMAL));
        ASSERT_EQ(parse_valid_zones("DMA32 Normal Movable", &z, &mask), 0);
        ASSERT_EQ(z, ZONE_DMA32);
        ASSERT_EQ(parse_valid_zones("none", &z, &mask), 0);
        ASSERT_EQ(z, ZONE_NONE);
        ASSERT_EQ(parse_valid_zones("Normal none", &z, &mask), -EINVAL);
        ASSERT_EQ(parse_valid_zones("none Normal", &z, &mask), -EINVAL);
        ASSERT_EQ(parse_valid_zones("", &z, &mask), -EINVAL);
        ASSERT_EQ(parse_valid_zones("Bogus", &z, &mask), -EINVAL);
        ASSERT_EQ(parse_valid_zones("unknown", &z, &mask), -EINVAL);
        ASSERT_EQ(parse_valid_zones("Normalxxxxxxxxxxxxxxxxxxxxxx", &z, &mask), -EINVAL);
}

static void test_index_list(void) {
        uint64_t bits[16];
        unsigned n;

        ASSERT_EQ(parse_index_list("0-3,7", 1024, bits, 16, &n), 0);
        ASSERT_EQ(n, 5);
        ASSERT_EQ(bits[0], 0x8f);
        ASSERT_EQ(parse_index_list("", 1024, bits, 16, &n), 0);
        ASSERT_EQ(n, 0);
        ASSERT_EQ(parse_index_list("\n", 1024, bits, 16, &n), 0);
        ASSERT_EQ(n, 0);
        ASSERT_EQ(parse_index_list("5\n", 1024, bits, 16, &n), 0);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(parse_index_list("0,0,1-1", 1024, bits, 16, &n), 0);
        ASSERT_EQ(n, 2);
        ASSERT_EQ(parse_index_list("1023", 1024, bits, 16, &n), 0);
        ASSERT_EQ(bits[15], 1ull << 63);
        ASSERT_EQ(parse_index_list("1024", 1024, bits, 16, &n), -ERANGE);
        ASSERT_EQ(parse_index_list("3-1", 1024, bits, 16, &n), -EINVAL);
        ASSERT_EQ(parse_index_list("a", 1024, bits, 16, &n), -EINVAL);
        ASSERT_EQ(parse_index_list("1,,2", 1024, bits, 16, &n), -EINVAL);
        ASSERT_EQ(parse_index_list("-1", 1024, bits, 16, &n), -EINVAL);
        ASSERT_EQ(parse_index_list("1-", 1024, bits, 16, &n), -EINVAL);
        ASSERT_EQ(parse_index_list("99999999999999999999999", 1024, bits, 16, &n), -ERANGE);
}

static void test_prefixed(void) {
        unsigned v;
        uint64_t i;

        ASSERT_EQ(parse_prefixed_uint("node3", "node", &v), 0);
        ASSERT_EQ(v, 3);
        ASSERT_EQ(parse_prefixed_uint("node", "node", &v), -EINVAL);
        ASSERT_EQ(parse_prefixed_uint("node03", "node", &v), -EINVAL);
        ASSERT_EQ(parse_prefixed_uint("node-1", "node", &v), -EINVAL);
        ASSERT_EQ(parse_prefixed_uint("nodex", "node", &v), -EINVAL);
        ASSERT_EQ(parse_prefixed_uint("cpu0", "cpu", &v), 0);
        ASSERT_EQ(v, 0);
        ASSERT_EQ(parse_memory_block_name("memory262143", &i), 0);
        ASSERT_EQ(i, 262143);
        ASSERT_EQ(parse_memory_block_name("memory_failure", &i), -EINVAL);
        ASSERT_EQ(parse_memory_block_name("memory1234567890", &i), -EINVAL);
}

typedef struct ZiSeen {
        int calls;
        ZonePages pages[4][_ZONE_MAX];
} ZiSeen;

static int zi_cb(int node, Zone zone, const ZonePages *p, void *userdata) {
        ZiSeen *s = userdata;

        s->calls++;
        if (node < 4)
                s->pages[node][zone] = *p;
        return 0;
}

static const char zoneinfo_sample[] =
        "Node 0, zone      DMA\n"
        "  per-node stats\n"
        "      nr_inactive_anon 123\n"
        "      nr_active_anon 456\n"
        "  pages free     3840\n"
        "        boost    0\n"
        "        min      21\n"
        "        low      26\n"
        "        high     31\n"
        "        promo    36\n"
        "        spanned  4095\n"
        "        present  3998\n"
        "        managed  3840\n"
        "        cma      0\n"
        "        protection: (0, 2991, 23744, 23744, 23744)\n"
        "      nr_free_pages 3840\n"
        "  pagesets\n"
        "    cpu: 0\n"
        "              count: 0\n"
        "  node_unreclaimable:  0\n"
        "  start_pfn:           1\n"
        "Node 0, zone   Normal\n"
        "  pages free     100\n"
        "        spanned  262144\n"
        "        present  262144\n"
        "        managed  258048\n"
        "        protection: (0, 0, 0, 0, 0)\n"
        "Node 0, zone  Movable\n"
        "  pages free     0\n"
        "        spanned  0\n"
        "        present  0\n"
        "        managed  0\n"
        "        protection: (0, 0, 0, 0, 0)\n"
        "Node 1, zone   Device\n"
        "  pages free     0\n"
        "        spanned  32768\n"
        "        present  0\n"
        "        managed  0\n"
        "        protection: (0, 0, 0, 0, 0)\n";

static void test_zoneinfo(void) {
        ZiSeen s = {};

        ASSERT_EQ(parse_zoneinfo(zoneinfo_sample, zi_cb, &s), 0);
        ASSERT_EQ(s.calls, 4);
        ASSERT_EQ(s.pages[0][ZONE_DMA].spanned, 4095);
        ASSERT_EQ(s.pages[0][ZONE_DMA].present, 3998);
        ASSERT_EQ(s.pages[0][ZONE_DMA].managed, 3840);
        ASSERT_EQ(s.pages[0][ZONE_NORMAL].managed, 258048);
        ASSERT_EQ(s.pages[0][ZONE_MOVABLE].spanned, 0);
        ASSERT_EQ(s.pages[1][ZONE_DEVICE].spanned, 32768);

        memset(&s, 0, sizeof(s));
        ASSERT_EQ(parse_zoneinfo("", zi_cb, &s), 0);
        ASSERT_EQ(s.calls, 0);
        ASSERT_EQ(parse_zoneinfo("Node x, zone Normal\n", zi_cb, &s), -EBADMSG);
        ASSERT_EQ(parse_zoneinfo("Node 5000, zone Normal\n", zi_cb, &s), -EBADMSG);
        /* An unknown zone name is skipped, not fatal: kernels add zones. */
        memset(&s, 0, sizeof(s));
        ASSERT_EQ(parse_zoneinfo("Node 0, zone   Future\n        spanned 5\n", zi_cb, &s), 0);
        ASSERT_EQ(s.calls, 0);
}

typedef struct IomemSeen {
        int n;
        uint64_t start[4], end[4];
        BlockOwner owner[4];
} IomemSeen;

static int iomem_cb(uint64_t start, uint64_t end, BlockOwner owner, void *userdata) {
        IomemSeen *s = userdata;

        if (s->n < 4) {
                s->start[s->n] = start;
                s->end[s->n] = end;
                s->owner[s->n] = owner;
        }
        s->n++;
        return 0;
}

static void test_iomem(void) {
        IomemSeen s = {};
        const char *text = "00000000-00000fff : Reserved\n"
                           "00001000-0009fbff : System RAM\n"
                           "100000000-13fffffff : System RAM\n"
                           "140000000-17fffffff : System RAM (virtio_mem)\n"
                           "180000000-1ffffffff : dax0.0\n"
                           "  180000000-1ffffffff : System RAM (kmem)\n"
                           "garbage line\n";

        ASSERT_EQ(parse_iomem(text, iomem_cb, &s), 0);
        ASSERT_EQ(s.n, 2);
        ASSERT_EQ(s.start[0], 0x140000000ull);
        ASSERT_EQ(s.end[0], 0x17fffffffull);
        ASSERT_EQ(s.owner[0], OWNER_VIRTIO_MEM);
        ASSERT_EQ(s.owner[1], OWNER_DAX_KMEM);
        memset(&s, 0, sizeof(s));
        ASSERT_EQ(parse_iomem("2000-1000 : System RAM (kmem)\n", iomem_cb, &s), -EBADMSG);
}

int main(void) {
        RUN(test_block_size);
        RUN(test_block_state);
        RUN(test_valid_zones);
        RUN(test_index_list);
        RUN(test_prefixed);
        RUN(test_zoneinfo);
        RUN(test_iomem);
        return 0;
}
