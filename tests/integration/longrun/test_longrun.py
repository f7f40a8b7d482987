# SPDX-License-Identifier: LGPL-2.1-or-later
"""Long runs: 10^6 uevents, and 1,000 offline/online cycles through the D-Bus API on the fake kernel, with the
daemon's RSS and open fds sampled throughout. Both must stay flat (bounded growth after a warm-up, fds
equal), and the model must end equal to a fresh scan. The figures are printed."""

import os
import time

import pytest

from conftest import asan_small_quarantine, fd_count, fd_targets, netlink_drops, rss_kib

MEM = "/devices/system/memory/memory%d"
BUS = "org.hotplugd.Hotplug1"
PATH = "/org/hotplugd/Hotplug1"
MGR = "org.hotplugd.Hotplug1.Manager"

RSS_BOUND_KIB = 4 * 1024     # growth allowed between the first sample (after a warm-up) and the last


@pytest.fixture(autouse=True)
def small_quarantine(monkeypatch):
    monkeypatch.setenv("ASAN_OPTIONS", asan_small_quarantine())


class Samples:
    """RSS and fds during the run; fds also when the daemon is idle (before and after), where they must be
    equal: a sample taken mid-run may catch a sysfs file open for a read in flight."""

    def __init__(self, pid):
        self.pid, self.rows, self.idle = pid, [], []

    def take(self, label):
        self.rows.append((label, rss_kib(self.pid), fd_count(self.pid)))

    def take_idle(self):
        self.idle.append(fd_count(self.pid))

    def report(self, title):
        rss = [r[1] for r in self.rows]
        fds = [r[2] for r in self.rows]
        print("\n[longrun] %s: %d samples; RSS first %d KiB, last %d KiB, min %d, max %d; fds first %d, last %d, "
              "max %d" % (title, len(rss), rss[0], rss[-1], min(rss), max(rss), fds[0], fds[-1], max(fds)))
        print("[longrun] %s: RSS KiB by sample: %s" % (title, " ".join(str(r) for r in rss)))

    def check(self, first_fds):
        label, rss0, fd0 = self.rows[0]
        _, rss1, fd1 = self.rows[-1]
        # Idle: equal. Mid-run: one or two above (a read in flight), never a trend.
        assert len(self.idle) == 2 and self.idle[0] == self.idle[1], "open fds moved (idle before/after: %s)\n%s" % (
            self.idle, first_fds)
        assert max(r[2] for r in self.rows) <= self.idle[0] + 2, "open fds moved: %s\n%s" % (
            [(r[0], r[2]) for r in self.rows], first_fds)
        assert rss1 - rss0 <= RSS_BOUND_KIB, "RSS grew by %d KiB: %s" % (rss1 - rss0, [(r[0], r[1]) for r in self.rows])
        assert max(r[1] for r in self.rows) - rss0 <= 2 * RSS_BOUND_KIB, "RSS peaked %d KiB above the first sample" % (
            max(r[1] for r in self.rows) - rss0)


def test_million_uevents(hp):
    """10^6 memory, node and cpu uevents in 20 bursts of 50,000 (a 128 MiB receive buffer, no loss): no-op
    repeats, real state changes played on the tree, blocks added and removed, events for blocks that do
    not exist, CPU events. RSS and fds sampled after each burst."""
    h = hp(policy="offline", receive_buffer="128M")
    h.wait_converged()
    t = h.tree
    s = Samples(h.proc.pid)
    s.take_idle()
    total, t0 = 0, time.monotonic()
    for burst in range(20):
        lines = []
        # Real changes: two blocks of node 0 change state, one block comes, one goes.
        for i, st in ((4 + burst % 2, "offline"), (4 + (burst + 1) % 2, "online")):
            t.set_block_state(h.root, i, st, zone="Normal", update=False)
            lines.append("%s %s memory" % (st, MEM % i))
        new = 40 + burst
        t.add_block(h.root, new, node=burst % 2, update=False)
        lines.append("add %s memory" % (MEM % new))
        if burst:
            t.remove_block(h.root, new - 1, update=False)
            lines.append("remove %s memory" % (MEM % (new - 1)))
        t.write_zoneinfo(h.root)
        filler = []
        while len(lines) + len(filler) < 50000:
            k = len(filler)
            if k % 50 == 0:
                filler.append("online %s memory" % (MEM % (100000 + k)))          # no such block
            elif k % 50 == 1:
                filler.append("online /devices/system/cpu/cpu%d cpu" % (k % 4))
            else:
                filler.append("%s %s memory" % ("online" if k % 2 else "offline", MEM % (k % 8 if k % 8 < 4 else 16 + k % 2)))
        h.inject_lines(filler[:25000] + lines + filler[25000:])
        total += len(lines) + len(filler)
        deadline = time.monotonic() + 120
        while not h._monitor_queue_empty():
            h.assert_alive()
            assert time.monotonic() < deadline, "hotplugd did not drain its uevent queue"
            time.sleep(0.02)
        s.take("burst %d" % (burst + 1))
    secs = time.monotonic() - t0
    drops = netlink_drops(h.proc.pid)
    live, _ = h.wait_converged(timeout=60)
    s.take_idle()
    first = fd_targets(h.proc.pid)
    s.report("%d uevents in %.1f s (%.0f/s), %d dropped" % (total, secs, total / secs, drops))
    assert total >= 10 ** 6
    assert drops == 0, "%d events dropped with a 128 MiB buffer" % drops
    s.check(first)


def test_thousand_offline_online_cycles(rt):
    """1,000 cycles of OfflineBlocks + OnlineBlocks (two blocks each, 4,000 block state changes) on the fake
    kernel, through the D-Bus API as root; each write re-read, each answered by the kernel's uevent (the
    reactor). RSS and fds sampled every 50 cycles; the model ends equal to a fresh scan."""
    import dbus
    from conftest import retire
    h = rt(spec=retire.default_retire_spec())
    bus = dbus.bus.BusConnection(h.bus_address)
    mgr = dbus.Interface(bus.get_object(BUS, PATH), MGR)
    blocks = dbus.Array([38, 39], "t")
    # One cycle first: the worker thread (and its eventfd) starts with the first write.
    mgr.OfflineBlocks(blocks, timeout=60)
    mgr.OnlineBlocks(blocks, "movable", timeout=60)
    h.sync()
    s = Samples(h.proc.pid)
    s.take_idle()
    t0 = time.monotonic()
    worst = 0.0
    for c in range(1000):
        t1 = time.monotonic()
        for r in mgr.OfflineBlocks(blocks, timeout=60):
            assert str(r[1]) == "", "cycle %d: %s" % (c, tuple(map(str, r)))
        for r in mgr.OnlineBlocks(blocks, "movable", timeout=60):
            assert str(r[1]) == "", "cycle %d: %s" % (c, tuple(map(str, r)))
        worst = max(worst, time.monotonic() - t1)
        if c % 50 == 49:
            s.take("cycle %d" % (c + 1))
    secs = time.monotonic() - t0
    h.sync()
    writes = h.writes()
    # The reactor's uevents come after the writes returned: let them land, then compare with a fresh scan.
    for st in ("offline", "online"):
        h.tree.set_block_state(h.root, 7, st, zone="Normal")
        h.inject(st, MEM % 7, "memory")
    h.wait_converged(timeout=30)
    s.take_idle()
    first = fd_targets(h.proc.pid)
    s.report("1000 offline/online cycles of 2 blocks in %.1f s (%.1f ms per cycle, slowest %.0f ms), %d writes" % (
        secs, secs, worst * 1e3, len(writes)))
    assert len([w for w in writes if w[0] in (38, 39) and w[2] == 0]) == 4000 + 4, len(writes)
    s.check(first)
