# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bursts: lost events (receive queue overflow -> ENOBUFS -> resync from sysfs) and a large burst that
fits the buffer (no loss, no resync)."""

import json
import os
import re
import signal
import time

from conftest import BLOCK_SIZE, model_diff, node_of

MEM = "/devices/system/memory/memory%d"


def netlink_drops(h):
    """Drops counted on the daemon's uevent socket(s) (NETLINK_KOBJECT_UEVENT bound to a group)."""
    drops = 0
    with open("/proc/%d/net/netlink" % h.proc.pid) as f:
        next(f)
        for line in f:
            x = line.split()
            if x[1] == "15" and int(x[3], 16) != 0:
                drops += int(x[8])
    return drops


def big_spec(tree):
    return (tree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
            .node(0, cpus=[0, 1])
            .node(1, cpus=[2, 3])
            .blocks(0, 64, 0, state="online", zone="Normal")
            .blocks(64, 32, 0, state="offline", valid_zones="Normal Movable")
            .blocks(128, 64, 1, state="online", zone="Movable")
            .blocks(192, 32, 1, state="offline", valid_zones="Movable Normal")
            .to_dict())


def mutate_heavily(h):
    """Many kernel changes at once; returns the uevents they produce, in kernel order."""
    t, root, ev = h.tree, h.root, []
    # 300 new blocks over both nodes, some of them auto-onlined by "someone".
    for i in range(256, 556):
        t.add_block(root, i, node=0 if i < 406 else 1, update=False)
        ev.append("add %s memory" % (MEM % i))
    for i in range(256, 556, 3):
        t.set_block_state(root, i, "online", zone="Movable", update=False)
        ev.append("online %s memory" % (MEM % i))
    # Node 0's offline boot blocks removed, node 1's onlined.
    for i in range(64, 96):
        t.remove_block(root, i, update=False)
        ev.append("remove %s memory" % (MEM % i))
    for i in range(192, 224):
        t.set_block_state(root, i, "online", zone="Movable", update=False)
        ev.append("online %s memory" % (MEM % i))
    # Some of node 0's kernel memory offlined.
    for i in range(40, 64):
        t.set_block_state(root, i, "offline", update=False)
        ev.append("offline %s memory" % (MEM % i))
    t.write_zoneinfo(root)
    return ev


def test_lost_events_resync(hp):
    h = hp(spec=big_spec(hp_tree()), policy="offline", receive_buffer="64K")
    h.wait_converged()
    assert netlink_drops(h) == 0

    h.pause()
    try:
        events = mutate_heavily(h)
        # The real changes, then thousands of repeats: far more than a 64 KiB queue holds.
        filler = ["online %s memory" % (MEM % i) for i in range(0, 40)] * 100
        h.inject_lines(events + filler)
        drops = netlink_drops(h)
        assert drops > 0, "the receive queue did not overflow (no drops): the test proves nothing"
    finally:
        h.resume()

    # The daemon must notice (ENOBUFS) and say it resyncs.
    deadline = time.monotonic() + 10
    while not re.search("resync", h.stderr(), re.I):
        h.assert_alive()
        assert time.monotonic() < deadline, "hotplugd lost %d events but logged no resync\n%s" % (drops, h.logs())
        time.sleep(0.05)
    live, fresh = h.wait_converged()
    assert live["block_count"] == 192 - 32 + 300, live["block_count"]
    n0 = node_of(live, 0)
    assert n0["online_blocks_by_zone"] == {"Normal": 40, "Movable": 50}, n0["online_blocks_by_zone"]

    # And it keeps working afterwards: one more event is applied.
    h.tree.add_block(h.root, 600, node=1)
    h.inject("add", MEM % 600, "memory")
    h.wait_converged()


def test_dump_requested_during_overflow(hp):
    """SIGUSR2 arrives together with an overflowed queue (the daemon was stopped meanwhile): the
    dump must describe the settled model after the resync, and the daemon must survive it."""
    h = hp(spec=big_spec(hp_tree()), policy="offline", receive_buffer="64K")
    h.wait_converged()
    path = os.path.join(h.runtime, "model.json")
    st = os.stat(path)
    before = (st.st_ino, st.st_mtime_ns)

    h.pause()
    try:
        events = mutate_heavily(h)
        h.inject_lines(events + ["online %s memory" % (MEM % i) for i in range(0, 40)] * 100)
        assert netlink_drops(h) > 0, "the receive queue did not overflow (no drops): the test proves nothing"
        h.proc.send_signal(signal.SIGUSR2)
        time.sleep(0.1)
    finally:
        h.resume()

    deadline = time.monotonic() + 10
    while True:
        h.assert_alive()
        st = os.stat(path)
        if (st.st_ino, st.st_mtime_ns) != before:
            break
        assert time.monotonic() < deadline, "no dump within 10 s of SIGUSR2\n%s" % h.logs()
        time.sleep(0.01)
    time.sleep(0.2)
    h.assert_alive()
    with open(path) as f:
        dumped = json.load(f)
    fresh = h.fresh_scan()
    errs = model_diff(dumped, fresh)
    assert not errs, "the dump requested during the overflow is not the settled model:\n  %s" % "\n  ".join(errs)
    h.wait_converged()


def test_burst_without_loss(hp):
    """3,000 events with the default-sized buffer: all applied, no overflow, no resync."""
    h = hp(spec=big_spec(hp_tree()), policy="offline", receive_buffer="32M")
    t = h.tree
    lines = []
    for i in range(256, 1256):
        t.add_block(h.root, i, node=i % 2, update=False)
        lines.append("add %s memory" % (MEM % i))
    for i in range(256, 1256, 2):
        t.set_block_state(h.root, i, "online", zone="Movable", update=False)
        lines.append("online %s memory" % (MEM % i))
    t.write_zoneinfo(h.root)
    lines += ["offline %s memory" % (MEM % i) for i in range(64, 96)] * 47  # no-op repeats: 1,504 more
    h.inject_lines(lines)
    live, _ = h.wait_converged(timeout=30)
    assert netlink_drops(h) == 0, "events were dropped with a 32M buffer"
    assert not re.search("resync", h.stderr(), re.I), "hotplugd resynced without losing events:\n%s" % h.logs()
    assert live["block_count"] == 192 + 1000, live["block_count"]


def hp_tree():
    import conftest
    return conftest.gentree
