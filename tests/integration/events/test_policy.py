# SPDX-License-Identifier: LGPL-2.1-or-later
"""Onlining by policy on a memory `add` event. On the fake tree the daemon's write to memoryN/state is a
plain file write; the test checks what was written, then plays the kernel (state "online", valid_zones
"Movable", zoneinfo) and sends the `online` uevent the kernel would send."""

import os
import re
import time

from conftest import BLOCK_SIZE, PAGES_PER_BLOCK, node_of
from test_blocks import all_of, expect_block, expect_node

MEM = "/devices/system/memory/memory%d"
NODE = "/devices/system/node/node%d"


def all_online_spec(tree):
    """Only online boot blocks, so that starting with an onlining policy writes nothing."""
    return (tree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
            .node(0, cpus=[0, 1])
            .node(1, cpus=[2, 3])
            .blocks(0, 6, 0, state="online", zone="Normal")
            .blocks(16, 2, 1, state="online", zone="Movable")
            .to_dict())


def state_path(h, index):
    return "%s/sys/devices/system/memory/memory%d/state" % (h.root, index)


def read(path):
    with open(path) as f:
        return f.read()


def wait_written(h, index, want, timeout=10.0):
    """Waits until the daemon has written `want` into memoryN/state (the file started as "offline\\n")."""
    path = state_path(h, index)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = read(path)
        if text != "offline\n":
            # One write(2) of the value over "offline\n", without O_TRUNC: the value, then any rest
            # of the old text if the value was shorter.
            assert text.startswith(want), "hotplugd wrote %r to memory%d/state, expected %r" % (text, index, want)
            return text
        h.assert_alive()
        time.sleep(0.01)
    raise AssertionError("hotplugd did not write %r to memory%d/state within %.0f s\n%s"
                         % (want, index, timeout, h.logs()))


def states(h):
    d = "%s/sys/devices/system/memory" % h.root
    return {e: read(os.path.join(d, e, "state")) for e in os.listdir(d) if e.startswith("memory") and e[6:].isdigit()}


def play_kernel_online(h, index, zone):
    h.tree.set_block_state(h.root, index, "online", zone=zone)   # state, valid_zones, zoneinfo, masks
    h.inject("online", MEM % index, "memory")


def test_policy_online_movable_on_add(hp):
    h = hp(spec=all_online_spec(hp_tree()), policy="online_movable")
    n0 = node_of(h.live_model(), 0)
    before = states(h)
    assert all(v == "online\n" for v in before.values()), before

    h.tree.add_block(h.root, 8, node=0, valid_zones="Normal Movable")
    h.inject("add", MEM % 8, "memory")
    wait_written(h, 8, "online_movable")
    # Nothing else was touched.
    after = states(h)
    del after["memory8"]
    assert after == before, "hotplugd wrote to other blocks: %s" % {k: v for k, v in after.items() if before.get(k) != v}

    play_kernel_online(h, 8, "Movable")
    h.wait_model(all_of(
        expect_block(8, state="online", zone="Movable", valid_zones=["Movable"], nodes=[0]),
        expect_node(id=0, blocks=n0["blocks"] + 1, online_blocks=n0["online_blocks"] + 1, offline_blocks=0,
                    online_blocks_by_zone={"Normal": 6, "Movable": 1},
                    spanned_pages=n0["spanned_pages"] + PAGES_PER_BLOCK)),
        "after the policy onlined memory8 and the kernel announced it")
    live, _ = h.wait_converged()
    # Once online, the block is not written again (e.g. by a second settle).
    time.sleep(0.2)
    assert read(state_path(h, 8)) == "online\n", "memory8/state was written again: %r" % read(state_path(h, 8))


def test_policy_online_movable_new_node(hp):
    """Policy onlining of a DIMM in a new node, in kernel order: the block's node link only appears
    after the node `add` event. The block must be onlined once it is linked, into Movable."""
    h = hp(spec=all_online_spec(hp_tree()), policy="online_movable")
    tree = h.tree
    for i in (40, 41):
        tree.add_block(h.root, i, node=3, valid_zones="Movable Normal", owner=("acpi", "PNP0C80:07"), link=False)
    h.inject_lines(["add %s memory" % (MEM % i) for i in (40, 41)])
    tree.add_node(h.root, 3)
    h.inject("add", NODE % 3, "node")
    for i in (40, 41):
        tree.link_block(h.root, i, 3)

    for i in (40, 41):
        wait_written(h, i, "online_movable")
        play_kernel_online(h, i, "Movable")
    h.wait_model(all_of(
        expect_block(40, state="online", zone="Movable", nodes=[3], owner="acpi", device="PNP0C80:07"),
        expect_block(41, state="online", zone="Movable", nodes=[3], owner="acpi", device="PNP0C80:07"),
        expect_node(id=3, online=True, has_memory=True, blocks=2, online_blocks=2,
                    online_blocks_by_zone={"Movable": 2}, spanned_pages=2 * PAGES_PER_BLOCK)),
        "after onlining the new node's DIMM")
    h.wait_converged()


def test_policy_offline_writes_nothing(hp):
    h = hp(spec=all_online_spec(hp_tree()), policy="offline")
    h.tree.add_block(h.root, 8, node=0)
    h.inject("add", MEM % 8, "memory")
    h.wait_model(expect_block(8, state="offline", nodes=[0]), "after memory8 add")
    time.sleep(0.3)
    assert read(state_path(h, 8)) == "offline\n", "Policy=offline wrote %r" % read(state_path(h, 8))
    h.wait_converged()


def hp_tree():
    import conftest
    return conftest.gentree


def test_policy_block_already_online(hp):
    """Kernel auto-online (or a udev rule) was first: the block is already online when its `add` event
    arrives, followed by its `online` event (kernel-abi §3.1). The daemon must not write to it."""
    h = hp(spec=all_online_spec(hp_tree()), policy="online_movable")
    h.tree.add_block(h.root, 8, node=0, state="online", zone="Normal")
    h.inject_lines(["add %s memory" % (MEM % 8), "online %s memory" % (MEM % 8)])
    h.wait_model(all_of(expect_block(8, state="online", zone="Normal", nodes=[0]),
                        expect_node(id=0, online_blocks=7, online_blocks_by_zone={"Normal": 7})),
                 "after an auto-onlined block's add+online events")
    time.sleep(0.3)
    assert read(state_path(h, 8)) == "online\n", "hotplugd wrote %r to an online block" % read(state_path(h, 8))
    h.wait_converged()


def test_policy_handed_to_kernel(hp):
    """TakeOver=yes and a uniform policy: hotplugd writes it to auto_online_blocks and leaves new
    blocks to the kernel's in-line onlining; a block the kernel left offline (here: the generated
    tree never onlines anything) is onlined by hotplugd after the 2 s it gives the kernel."""
    h = hp(spec=all_online_spec(hp_tree()), policy="online_movable", extra_conf="[Daemon]\nTakeOver=yes\n")
    with open("%s/sys/devices/system/memory/auto_online_blocks" % h.root) as f:
        assert f.read().startswith("online_movable"), "the uniform policy was not handed to the kernel"
    h.tree.add_block(h.root, 8, node=0, valid_zones="Normal Movable")
    t0 = time.monotonic()
    h.inject("add", MEM % 8, "memory")
    h.wait_model(expect_block(8, state="offline", nodes=[0]), "after memory8 add")
    time.sleep(1.0)
    assert read(state_path(h, 8)) == "offline\n", "hotplugd raced the kernel's own onlining"
    wait_written(h, 8, "online_movable", timeout=10)
    waited = time.monotonic() - t0
    assert waited >= 1.9, "written after %.2f s, before the kernel's 2 s" % waited
    assert "1 new memory blocks are still offline 2 s after the kernel was to online them" in h.logs()


def block_runs(h, verb):
    """The (first, last) block runs of hotplugd's "Memory block(s) ... <verb>" messages so far."""
    runs = []
    for line in h.stderr().splitlines():
        m = re.match(r"Memory blocks? (\d+)(?:-(\d+))? %s\b" % verb, line)
        if m:
            runs.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    return runs


def assert_each_block_once(runs, blocks, what):
    seen = [b for first, last in runs for b in range(first, last + 1)]
    assert sorted(seen) == sorted(blocks), "%s: messages cover %s, expected each of %s once" % (what, runs, blocks)


def plug_online_dimm(h, blocks, rate):
    """What the kernel's in-line onlining looks like from user space: each block added already online
    (Movable), then add and online events interleaved as the kernel sends them, `rate` per second."""
    for i in blocks:
        h.tree.add_block(h.root, i, node=0, state="online", zone="Movable", valid_zones="Movable")
    lines = []
    for k, i in enumerate(blocks):
        lines.append("add %s memory" % (MEM % i))
        if k >= 1:
            lines.append("online %s memory" % (MEM % blocks[k - 1]))
    lines.append("online %s memory" % (MEM % blocks[-1]))
    h.inject_lines(lines, extra_args=("--rate", str(rate)))
    for i in blocks:
        h.wait_model(expect_block(i, state="online", nodes=[0]), "after memory%d online" % i)


def test_block_messages_merged(hp):
    """A burst's per-block messages come as runs of blocks ("Memory blocks 8-15 added ..."), each
    block in exactly one message per change; a gap in the numbers starts a new run."""
    h = hp(spec=all_online_spec(hp_tree()), policy="offline")
    blocks = [8, 9, 10, 11, 12, 13, 14, 15, 20]
    plug_online_dimm(h, blocks, rate=0)
    added, onlined = block_runs(h, "added"), block_runs(h, "online in zone Movable")
    assert_each_block_once(added, blocks, "added")
    assert_each_block_once(onlined, blocks, "online")
    assert (20, 20) in added and (20, 20) in onlined, "block 20 merged across the gap: %s %s" % (added, onlined)
    assert len(added) < len(blocks), "no run was merged: %s\n%s" % (added, h.logs())


def test_handoff_reads_events_in_batches(hp):
    """With the policy handed to the kernel, hotplugd only records what the kernel did, and reads
    uevents in batches (100 ms after the first of each) instead of one by one: a DIMM's 16 events,
    5 ms apart, make at most a few messages, and the model still has every block."""
    h = hp(spec=all_online_spec(hp_tree()), policy="online_movable", extra_conf="[Daemon]\nTakeOver=yes\n")
    with open("%s/sys/devices/system/memory/auto_online_blocks" % h.root) as f:
        assert f.read().startswith("online_movable"), "the uniform policy was not handed to the kernel"
    blocks = list(range(32, 40))
    plug_online_dimm(h, blocks, rate=200)
    added, onlined = block_runs(h, "added"), block_runs(h, "online in zone Movable")
    assert_each_block_once(added, blocks, "added")
    assert_each_block_once(onlined, blocks, "online")
    # One by one, 16 events 5 ms apart give ~8 messages of each kind; batches of 100 ms give 1 or 2.
    assert len(added) <= 3 and len(onlined) <= 3, "events were not read in batches: %s %s\n%s" % (
        added, onlined, h.logs())
    assert "still offline" not in h.stderr()
