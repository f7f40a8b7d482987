/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-uevent.c — decoding of memory/node/cpu/acpi uevents, and what is refused. */
#include "conflicts.h"
#include "tests.h"
#include "uevent.h"

static void test_decode(void) {
        Uevent ev;

        ASSERT_EQ(uevent_decode("add", "memory", "/devices/system/memory/memory42", "1234", &ev), 0);
        ASSERT_EQ(ev.subsystem, UEVENT_MEMORY);
        ASSERT_EQ(ev.action, UEVENT_ADD);
        ASSERT_EQ(ev.index, 42);
        ASSERT_EQ(ev.seqnum, 1234);
        ASSERT_EQ(uevent_decode("online", "memory", "/devices/system/memory/memory0", NULL, &ev), 0);
        ASSERT_EQ(ev.action, UEVENT_ONLINE);
        ASSERT_EQ(uevent_decode("remove", "node", "/devices/system/node/node3", NULL, &ev), 0);
        ASSERT_EQ(ev.subsystem, UEVENT_NODE);
        ASSERT_EQ(ev.index, 3);
        ASSERT_EQ(uevent_decode("offline", "cpu", "/devices/system/cpu/cpu7", NULL, &ev), 0);
        ASSERT_EQ(ev.subsystem, UEVENT_CPU);
        ASSERT_EQ(ev.index, 7);
        ASSERT_EQ(uevent_decode("add", "acpi", "/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C80:03", NULL, &ev), 0);
        ASSERT_STREQ(ev.acpi_name, "PNP0C80:03");

        /* Not ours. */
        ASSERT_EQ(uevent_decode("add", "block", "/devices/virtual/block/loop0", NULL, &ev), -ENOMSG);
        ASSERT_EQ(uevent_decode("change", "cpu", "/devices/system/cpu/cpufreq", NULL, &ev), -ENOMSG);
        ASSERT_EQ(uevent_decode("add", "acpi", "/devices/LNXSYSTM:00/PNP0A08:00", NULL, &ev), -ENOMSG);

        /* Malformed. */
        ASSERT_EQ(uevent_decode(NULL, "memory", "/devices/system/memory/memory1", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("explode", "memory", "/devices/system/memory/memory1", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "memory", "/devices/system/memory/memoryX", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "memory", "/devices/system/memory/../memory1", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "memory", "/elsewhere/memory1", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "memory", "memory1", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "node", "/devices/system/node/node1024", NULL, &ev), -EINVAL);
        ASSERT_EQ(uevent_decode("add", "memory", "/devices/system/memory/memory1", "12x", &ev), -EINVAL);
}

static void test_properties(void) {
        static const char props[] = "ACTION=change\0DEVPATH=/devices/LNXSYSTM:00/ACPI0004:00\0SUBSYSTEM=acpi\0"
                                    "EVENT=offline\0SEQNUM=77\0";
        static const char unterminated[] = { 'A', 'C', 'T', 'I', 'O', 'N', '=', 'a' };
        Uevent ev;

        ASSERT_EQ(uevent_decode_properties(props, sizeof(props) - 1, &ev), 0);
        ASSERT_EQ(ev.subsystem, UEVENT_ACPI);
        ASSERT(ev.eject_request);
        ASSERT_EQ(ev.seqnum, 77);
        ASSERT_EQ(uevent_decode_properties(unterminated, sizeof(unterminated), &ev), -EINVAL);
        ASSERT_EQ(uevent_decode_properties("", 0, &ev), -EINVAL);
}

static void test_udev_rules(void) {
        ASSERT_EQ(udev_rules_write_memory_state(
                          "# comment\nSUBSYSTEM==\"memory\", ACTION==\"add\", ATTR{state}==\"offline\", ATTR{state}=\"online\"\n"), 2);
        /* RHEL style: skip everything that is not memory, then assign. */
        ASSERT_EQ(udev_rules_write_memory_state("SUBSYSTEM!=\"memory\", GOTO=\"end\"\nACTION!=\"add\", GOTO=\"end\"\n"
                                                "ATTR{state}==\"offline\", ATTR{state}=\"online_movable\"\nLABEL=\"end\"\n"), 3);
        /* Comparisons only, other subsystems, comments: nothing. */
        ASSERT_EQ(udev_rules_write_memory_state("SUBSYSTEM==\"memory\", ATTR{state}==\"offline\", RUN+=\"/bin/true\"\n"), 0);
        ASSERT_EQ(udev_rules_write_memory_state("SUBSYSTEM==\"cpu\", ATTR{online}=\"1\"\n"), 0);
        ASSERT_EQ(udev_rules_write_memory_state("# SUBSYSTEM==\"memory\", ATTR{state}=\"online\"\n"), 0);
        ASSERT_EQ(udev_rules_write_memory_state(""), 0);
}

int main(void) {
        RUN(test_decode);
        RUN(test_properties);
        RUN(test_udev_rules);
        return 0;
}
