# SPDX-License-Identifier: LGPL-2.1-or-later
"""Memory block uevents (add, online, offline, remove; duplicates, reordering, stale events) against the
live model of a running hotplugd. Each test plays the kernel on the fake tree first, then sends the
uevent the kernel (via udevd) would send, and checks the counters and a fresh scan."""

import os

from conftest import PAGES_PER_BLOCK, block_of, node_of

MEM = "/devices/system/memory/memory%d"


def read_state(h, index):
    with open("%s/sys/devices/system/memory/memory%d/state" % (h.root, index)) as f:
        return f.read()


def expect_node(**want):
    """A check for wait_model(): node `id` has the given field values."""
    nid = want.pop("id")

    def check(model):
        n = node_of(model, nid)
        if n is None:
            return ["node %d missing from the live model" % nid]
        return ["node %d %s: want %r, got %r" % (nid, k, v, n.get(k)) for k, v in want.items() if n.get(k) != v]
    return check


def expect_block(index, **want):
    def check(model):
        b = block_of(model, index)
        if b is None:
            return ["block %d missing from the live model" % index]
        return ["block %d %s: want %r, got %r" % (index, k, v, b.get(k)) for k, v in want.items() if b.get(k) != v]
    return check


def expect_no_block(index):
    return lambda model: ["block %d still in the live model: %s" % (index, block_of(model, index))] \
        if block_of(model, index) else []


def all_of(*checks):
    return lambda model: [p for c in checks for p in c(model)]


def test_block_add(hp):
    h = hp(policy="offline")
    before = h.live_model()
    assert block_of(before, 8) is None
    n0 = node_of(before, 0)

    # Kernel: memory8 appears (offline, linked to node 0); then the add uevent.
    h.tree.add_block(h.root, 8, node=0)
    # No event yet: the daemon must not know the block (it is event-driven, not polling).
    assert block_of(h.live_model(), 8) is None, "hotplugd saw memory8 before its uevent"

    h.inject("add", MEM % 8, "memory")
    h.wait_model(all_of(
        expect_block(8, state="offline", zone=None, nodes=[0], valid_zones=["Normal", "Movable"], owner="boot"),
        expect_node(id=0, blocks=n0["blocks"] + 1, offline_blocks=n0["offline_blocks"] + 1,
                    online_blocks=n0["online_blocks"], spanned_pages=n0["spanned_pages"],
                    offline_blockers=["spans-pages", "has-blocks", "has-cpus"])),
        "after memory8 add")
    h.wait_converged()
    # Policy=offline: nothing may have been written to the new block.
    assert read_state(h, 8) == "offline\n", "Policy=offline, yet memory8/state now reads %r" % read_state(h, 8)


def test_block_acpi_link_late(hp):
    """The kernel links a hot-added block to its ACPI memory device (memoryN/firmware_node) only after
    add_memory() returned, after the block's uevents, and announces the link with no event: hotplugd
    looks once more a second later, and the block is the device's, not boot memory."""
    h = hp(policy="offline")
    h.tree.add_block(h.root, 8, node=0, owner=("acpi", "PNP0C80:07"))
    fw = "%s/sys/devices/system/memory/memory8/firmware_node" % h.root
    os.rename(fw, fw + ".later")
    h.inject("add", MEM % 8, "memory")
    h.wait_model(expect_block(8, state="offline", nodes=[0], owner="boot"), "after memory8 add, before its link")
    os.rename(fw + ".later", fw)
    h.wait_model(expect_block(8, owner="acpi"), "once memory8 is linked to PNP0C80:07", timeout=5)


def test_block_online(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)
    assert n0["online_blocks_by_zone"] == {"Normal": 6}

    h.tree.set_block_state(h.root, 6, "online", zone="Movable")
    h.inject("online", MEM % 6, "memory")
    h.wait_model(all_of(
        expect_block(6, state="online", zone="Movable", valid_zones=["Movable"]),
        expect_node(id=0, online_blocks=7, offline_blocks=1, blocks=8,
                    online_blocks_by_zone={"Normal": 6, "Movable": 1},
                    spanned_pages=n0["spanned_pages"] + PAGES_PER_BLOCK,
                    present_pages=n0["present_pages"] + PAGES_PER_BLOCK)),
        "after memory6 online")
    h.wait_converged()


def test_block_offline(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)

    h.tree.set_block_state(h.root, 5, "offline")
    h.inject("offline", MEM % 5, "memory")
    h.wait_model(all_of(
        expect_block(5, state="offline", zone=None, valid_zones=["Normal", "Movable"]),
        expect_node(id=0, online_blocks=5, offline_blocks=3, blocks=8, online_blocks_by_zone={"Normal": 5},
                    spanned_pages=n0["spanned_pages"] - PAGES_PER_BLOCK)),
        "after memory5 offline")
    h.wait_converged()

    # Movable side of node 1 as well, then back online: counters follow both ways.
    h.tree.set_block_state(h.root, 16, "offline")
    h.inject("offline", MEM % 16, "memory")
    h.wait_model(expect_node(id=1, online_blocks=1, offline_blocks=3, online_blocks_by_zone={"Movable": 1}),
                 "after memory16 offline")
    h.tree.set_block_state(h.root, 16, "online", zone="Movable")
    h.inject("online", MEM % 16, "memory")
    h.wait_model(expect_node(id=1, online_blocks=2, offline_blocks=2, online_blocks_by_zone={"Movable": 2}),
                 "after memory16 online again")
    h.wait_converged()


def test_block_remove(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)
    assert block_of(h.live_model(), 7) is not None

    h.tree.remove_block(h.root, 7)
    h.inject("remove", MEM % 7, "memory")
    h.wait_model(all_of(expect_no_block(7),
                        expect_node(id=0, blocks=n0["blocks"] - 1, offline_blocks=n0["offline_blocks"] - 1,
                                    online_blocks=n0["online_blocks"])),
                 "after memory7 remove")
    live, _ = h.wait_converged()
    assert live["block_count"] == 11


def test_event_for_missing_block(hp):
    """Events for blocks that are not (or no longer) in the tree: added and removed again before the
    daemon looked, a stale online for a removed block, an event for a block that never existed."""
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)

    # memory9: hot-added and removed again before the daemon read it; only the add arrives first.
    h.inject("add", MEM % 9, "memory")
    # memory7 removed from the tree, but an old "offline" event for it comes in (its remove follows later).
    h.tree.remove_block(h.root, 7)
    h.inject("offline", MEM % 7, "memory")
    # An event for a block far outside anything that ever existed.
    h.inject("online", MEM % 100000, "memory")
    h.wait_model(all_of(expect_no_block(9), expect_no_block(7), expect_no_block(100000),
                        expect_node(id=0, blocks=n0["blocks"] - 1)),
                 "after events for missing blocks")
    h.inject("remove", MEM % 7, "memory")
    h.inject("remove", MEM % 9, "memory")
    live, _ = h.wait_converged()
    assert block_of(live, 7) is None and block_of(live, 9) is None
    assert not any(n.get("blocks", 0) < 0 for n in live["nodes"])
    # The daemon must not have created files for blocks that do not exist.
    for i in (9, 100000):
        assert not os.path.exists("%s/sys/devices/system/memory/memory%d" % (h.root, i)), \
            "hotplugd created memory%d in the tree" % i


def test_duplicate_events(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)

    h.tree.add_block(h.root, 8, node=0)
    for _ in range(3):
        h.inject("add", MEM % 8, "memory")
    h.wait_model(expect_node(id=0, blocks=n0["blocks"] + 1, offline_blocks=n0["offline_blocks"] + 1),
                 "after three identical add events")

    h.tree.set_block_state(h.root, 8, "online", zone="Normal")
    h.inject_lines(["online %s memory" % (MEM % 8)] * 4)
    h.wait_model(expect_node(id=0, blocks=n0["blocks"] + 1, online_blocks=n0["online_blocks"] + 1,
                             offline_blocks=n0["offline_blocks"],
                             online_blocks_by_zone={"Normal": n0["online_blocks_by_zone"]["Normal"] + 1}),
                 "after four identical online events")

    h.tree.set_block_state(h.root, 8, "offline")
    h.tree.remove_block(h.root, 8)
    h.inject_lines(["offline %s memory" % (MEM % 8), "remove %s memory" % (MEM % 8),
                    "remove %s memory" % (MEM % 8), "offline %s memory" % (MEM % 8)])
    h.wait_model(all_of(expect_no_block(8),
                        expect_node(id=0, blocks=n0["blocks"], online_blocks=n0["online_blocks"],
                                    offline_blocks=n0["offline_blocks"])),
                 "after duplicate offline/remove events")
    h.wait_converged()


def test_reordered_events(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)

    # Block 8 was added and onlined (Movable); the online event overtakes the add event.
    h.tree.add_block(h.root, 8, node=0)
    h.tree.set_block_state(h.root, 8, "online", zone="Movable")
    h.inject_lines(["online %s memory SEQNUM=1001" % (MEM % 8), "add %s memory SEQNUM=1000" % (MEM % 8)])
    h.wait_model(all_of(expect_block(8, state="online", zone="Movable", nodes=[0]),
                        expect_node(id=0, blocks=n0["blocks"] + 1, online_blocks=n0["online_blocks"] + 1,
                                    online_blocks_by_zone={"Normal": 6, "Movable": 1})),
                 "after online-before-add")

    # Block 6 went online and offline again; the events arrive offline first, then the older online.
    h.tree.set_block_state(h.root, 6, "online", zone="Normal")
    h.tree.set_block_state(h.root, 6, "offline")
    h.inject_lines(["offline %s memory SEQNUM=1003" % (MEM % 6), "online %s memory SEQNUM=1002" % (MEM % 6)])
    h.wait_model(expect_block(6, state="offline"), "after offline-before-online: the tree says offline")

    # Block 7 removed; the remove overtakes an older add/offline.
    h.tree.remove_block(h.root, 7)
    h.inject_lines(["remove %s memory SEQNUM=1005" % (MEM % 7), "add %s memory SEQNUM=1004" % (MEM % 7)])
    h.wait_model(expect_no_block(7), "after remove-before-add: memory7 is gone from the tree")
    h.wait_converged()
