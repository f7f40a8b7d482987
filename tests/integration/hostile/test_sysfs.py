# SPDX-License-Identifier: LGPL-2.1-or-later
"""A hostile kernel, or a hostile tree: garbage in state, valid_zones, block_size_bytes, the node masks and
zoneinfo under a running daemon (it must log a clear error, keep going, and come to equal a fresh scan
once the garbage is fixed); block directories that vanish between the event and the read; symlinks out of
the root (never opened, never written: inotify is the witness); an event flood into a 64 KiB socket buffer.
All in the events harness: private network namespace, real uevents."""

import os
import re
import shutil
import signal
import threading
import time

from conftest import BUS, MGR, PATH, Inotify, block_of, netlink_drops, node_of

MEM = "/devices/system/memory/memory%d"
MEMDIR = "sys/devices/system/memory"
NODEDIR = "sys/devices/system/node"


def put(h, rel, data):
    """Writes raw bytes into the tree (what a broken kernel would show)."""
    with open(os.path.join(h.root, rel), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def wait_log(h, pattern, what, start=0, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        text = h.stderr()[start:]
        m = re.search(pattern, text)
        if m:
            return text[m.start():text.find("\n", m.start())]
        h.assert_alive()
        assert time.monotonic() < deadline, "hotplugd logged no %s (/%s/) within %d s\n%s" % (
            what, pattern, timeout, h.logs(30))
        time.sleep(0.02)


def overflow(h, n=4000):
    """Stops the daemon, fills its 64 KiB uevent queue past the brim, lets it go on: it must resync."""
    h.pause()
    try:
        h.inject_lines(["online %s memory" % (MEM % (i % 6)) for i in range(n)])
        assert netlink_drops(h.proc.pid) > 0, "the uevent queue did not overflow: the test proves nothing"
    finally:
        h.resume()


GARBAGE_STATE = [b"", b"\n", b"onl\0ine\n", b"\xff\xfe\xfd\n", b"online" * 200, b"going-offline-ish\n", b"42\n",
                 b"offline\noffline\n", b"OFFLINE\n", b" \n"]
GARBAGE_ZONES = [b"", b"Movable Nonsense\n", b"\0\n", b"Movable " * 100, b"\xff\n", b"None None\n", b"DMA32 DMA32 x\n"]


def test_garbage_block_attributes(hp):
    """state and valid_zones full of garbage, for a known block (online/offline events) and a new one (add):
    each event is refused with a message naming the block, the daemon carries on, a cold scan of the broken
    tree works, and once the kernel's files are sane again the live model equals a fresh scan."""
    h = hp(policy="offline")
    h.wait_converged()
    n_errors = 0
    for g in GARBAGE_STATE:
        mark = len(h.stderr())
        put(h, MEMDIR + "/memory6/state", g)
        h.inject("online", MEM % 6, "memory")
        line = wait_log(h, r"memory block 6\b", "error about memory6/state = %r" % g[:20], start=mark)
        n_errors += 1
        h.fresh_scan()                     # --dump-model of the broken tree must not fail or crash
        assert block_of(h.live_model(), 6)["state"] == "offline", "garbage %r was applied" % g[:20]
        h.tree.set_block_state(h.root, 6, "offline")
        h.inject("offline", MEM % 6, "memory")
        h.wait_converged()
    print("\n[sysfs] garbage state: e.g. %r" % line)
    for g in GARBAGE_ZONES:
        mark = len(h.stderr())
        put(h, MEMDIR + "/memory7/valid_zones", g)
        h.inject("offline", MEM % 7, "memory")
        line = wait_log(h, r"memory block 7\b", "error about memory7/valid_zones = %r" % g[:20], start=mark)
        n_errors += 1
        h.fresh_scan()
        put(h, MEMDIR + "/memory7/valid_zones", b"Normal Movable\n")
        h.inject("offline", MEM % 7, "memory")
        h.wait_converged()
    print("[sysfs] garbage valid_zones: e.g. %r" % line)
    # A new block whose files are garbage when its add event comes: not added until they make sense.
    h.tree.add_block(h.root, 8, node=0)
    for g in GARBAGE_STATE[:4]:
        mark = len(h.stderr())
        put(h, MEMDIR + "/memory8/state", g)
        h.inject("add", MEM % 8, "memory")
        wait_log(h, r"memory block 8\b", "error about the new memory8", start=mark)
        n_errors += 1
        assert block_of(h.live_model(), 8) is None
    h.tree.set_block_state(h.root, 8, "offline")
    h.inject("add", MEM % 8, "memory")
    live, _ = h.wait_converged()
    assert block_of(live, 8)["state"] == "offline"
    print("[sysfs] %d garbage attribute events refused, model equal to a fresh scan afterwards" % n_errors)


def test_garbage_block_size(hp):
    """block_size_bytes is read at start and at every resync: garbage there fails the resync with a
    message, keeps the old model and the daemon; the next resync after the fix repairs everything."""
    h = hp(policy="offline", receive_buffer="64K")
    h.wait_converged()
    for g in (b"zz\n", b"", b"0\n", b"ffffffffffffffffffff\n", b"8000000" * 50):
        good = open(os.path.join(h.root, MEMDIR, "block_size_bytes"), "rb").read()
        h.tree.add_block(h.root, 9, node=0)            # a change the lost events would have announced
        put(h, MEMDIR + "/block_size_bytes", g)
        mark = len(h.stderr())
        overflow(h)
        line = wait_log(h, r"Failed to rescan", "failed resync with block_size_bytes = %r" % g[:20], start=mark)
        assert block_of(h.live_model(), 9) is None
        put(h, MEMDIR + "/block_size_bytes", good)
        mark = len(h.stderr())
        overflow(h)
        wait_log(h, r"Resynchronized", "resync after the fix", start=mark)
        live, _ = h.wait_converged()
        assert block_of(live, 9) is not None
        h.tree.remove_block(h.root, 9)
        h.inject("remove", MEM % 9, "memory")
        h.wait_converged()
    print("\n[sysfs] garbage block_size_bytes: %r" % line)


def device_then_garbage(zoneinfo):
    """A zoneinfo that starts well, with a ZONE_DEVICE span for node 0 (sticky by the kernel's rule: the
    node could never go offline again), and then turns to garbage: a parser that applies as it reads
    would keep the Device span after the error."""
    text = zoneinfo.decode()
    i = text.index("Node 0, zone")
    j = text.find("Node ", i + 1)
    block = text[i:j if j > 0 else len(text)]
    name = block.split("zone", 1)[1].split("\n", 1)[0].strip()
    dev = block.replace("zone" + block.split("zone", 1)[1].split("\n", 1)[0], "zone   Device", 1)
    dev = re.sub(r"spanned +\d+", "spanned  32768", dev)
    assert name and "Device" in dev
    return (dev + text + "Node x, zone garbage\n\xff\n").encode("latin-1")


MASK_GARBAGE = [b"0-\n", b"zzz\n", b"0-99999999\n", b"\xff\n", b"0," * 5000 + b"\n", b"1-0\n", b"-1\n", b"0-1;2\n"]


def test_garbage_node_masks_and_zoneinfo(hp):
    """Node masks and /proc/zoneinfo are re-read after every burst: garbage there is logged, the rest of the
    burst is applied, and the next burst after the fix converges."""
    h = hp(policy="offline")
    h.wait_converged()
    lines = set()
    flip = ["offline", "online"]
    k = 0

    def burst():
        # A real change, so that the derived state is refreshed.
        nonlocal k
        st = flip[k % 2]
        k += 1
        h.tree.set_block_state(h.root, 5, st, zone="Normal", update=False)
        h.inject(st, MEM % 5, "memory")

    for name in ("has_memory", "online", "possible"):
        path = os.path.join(h.root, NODEDIR, name)
        good = open(path, "rb").read()
        for g in MASK_GARBAGE:
            mark = len(h.stderr())
            put(h, NODEDIR + "/" + name, g)
            burst()
            lines.add(wait_log(h, r"node masks", "error about node/%s = %r" % (name, g[:20]), start=mark))
            put(h, NODEDIR + "/" + name, good)
            h.tree.write_zoneinfo(h.root)
            burst()
            h.wait_converged()
    zgood = open(os.path.join(h.root, "proc/zoneinfo"), "rb").read()
    zgarbage = [os.urandom(8192), zgood[:len(zgood) // 2] + b"\0garbage", b"Node 99999999999, zone Normal\n",
                zgood.replace(b"spanned  ", b"spanned  99999999999999999999999", 1),
                zgood.replace(b"spanned  ", b"spanned  -", 1), b"Node 0, zone\n" * 100000, b"\xff" * 100,
                device_then_garbage(zgood)]
    refused = 0
    for g in zgarbage:
        mark = len(h.stderr())
        h.tree.set_block_state(h.root, 5, flip[k % 2], zone="Normal", update=True)
        put(h, "proc/zoneinfo", g)
        h.inject(flip[k % 2], MEM % 5, "memory")
        k += 1
        try:
            lines.add(wait_log(h, r"zoneinfo", "error about zoneinfo", start=mark, timeout=3))
            refused += 1
        except AssertionError:
            pass                               # some garbage parses as "no zones": no error, just wrong spans
        h.assert_alive()
        put(h, "proc/zoneinfo", zgood)
        h.tree.write_zoneinfo(h.root)
        burst()
        h.wait_converged()
    print("\n[sysfs] node masks: %d garbage variants refused; zoneinfo: %d of %d refused (the others read as "
          "no zones of that node); converged after each fix. Messages:\n  %s" % (
              3 * len(MASK_GARBAGE), refused, len(zgarbage), "\n  ".join(sorted(lines))))


def settle(h):
    """Lets the fake kernel catch up, then makes the daemon re-read the derived files with a change of its
    own (the shim updates zoneinfo after a write returns, the real kernel before: a daemon that wrote a
    block already knows its state and has no reason to re-read spans at the late uevent); returns the
    live model once it equals a fresh scan."""
    h.sync()
    for st in ("offline", "online"):
        h.tree.set_block_state(h.root, 5, st, zone="Normal")
        h.inject(st, MEM % 5, "memory")
    return h.wait_converged(timeout=30)[0]


def test_block_vanishes_mid_read(rt):
    """A block whose sysfs directory (or part of it) is gone between its event and the daemon's read, 300
    times deterministically (the daemon stopped meanwhile) and 300 times racing (a thread removes the
    directories while events stream in): nothing crashes, nothing half-added stays, the model ends equal
    to a fresh scan."""
    from conftest import events
    h = rt(spec=events.default_spec(), policy="online_movable")   # the fake kernel: policy writes behave
    t = h.tree
    settle(h)
    # Deterministic: events queued while the daemon is stopped, then the files go, then it runs.
    for i in range(300):
        idx = 100 + i % 50
        what = i % 5
        t.add_block(h.root, idx, node=i % 2, update=False)
        h.pause()
        try:
            h.inject_lines(["add %s memory" % (MEM % idx), "online %s memory" % (MEM % idx)])
            d = os.path.join(h.root, MEMDIR, "memory%d" % idx)
            if what == 0:
                t.remove_block(h.root, idx, update=False)
            elif what == 1:
                os.unlink(d + "/state")
            elif what == 2:
                os.unlink(d + "/valid_zones")
            elif what == 3:
                os.unlink(os.path.join(d, "node%d" % (i % 2)))
            else:
                shutil.rmtree(d)
        finally:
            h.resume()
        h.assert_alive()
        if what != 0:
            # Put it in a sane state again, or remove it for good, as the kernel would.
            # The daemon may be writing the block's state meanwhile (a uniform policy onlines a
            # block before its node link shows): remove until it stays gone, as the kernel would.
            for _ in range(100):
                shutil.rmtree(d, ignore_errors=True)
                if not os.path.isdir(d):
                    break
                time.sleep(0.01)
            assert not os.path.isdir(d), d
            for n in (0, 1):
                for p in (os.path.join(h.root, NODEDIR, "node%d" % n, "memory%d" % idx),
                          os.path.join(h.root, "sys/bus/memory/devices/memory%d" % idx)):
                    if os.path.lexists(p):
                        os.unlink(p)
        h.inject("remove", MEM % idx, "memory")
    live = settle(h)
    assert not any(100 <= b["index"] < 150 for b in live["blocks"])

    # Racing: a thread adds and removes directories while events for them stream in. (Policy offline from
    # here, by a reload: the fake kernel's writes into a directory being removed would race the test itself.)
    conf = os.path.join(h.root, "etc/hotplugd/hotplugd.conf")
    text = open(conf).read().replace("Policy=online_movable", "Policy=offline")
    open(conf, "w").write(text)
    mark = len(h.stderr())
    h.proc.send_signal(signal.SIGHUP)
    wait_log(h, r"Configuration reloaded: policy offline", "reload", start=mark)
    stop = threading.Event()
    errors = []

    def churn():
        try:
            j = 0
            while not stop.is_set():
                idx = 200 + j % 40
                d = os.path.join(h.root, MEMDIR, "memory%d" % idx)
                if os.path.isdir(d):
                    t.remove_block(h.root, idx, update=False)
                else:
                    t.add_block(h.root, idx, node=j % 2, update=False)
                j += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=churn)
    th.start()
    try:
        for rnd in range(30):
            h.inject_lines(["%s %s memory" % (a, MEM % (200 + i)) for i in range(40) for a in ("add", "online")])
    finally:
        stop.set()
        th.join()
    assert not errors, errors
    # The kernel's final word for each of them.
    h.inject_lines(["%s %s memory" % ("add" if os.path.isdir(os.path.join(h.root, MEMDIR, "memory%d" % (200 + i)))
                                      else "remove", MEM % (200 + i)) for i in range(40)])
    settle(h)
    print("\n[sysfs] 300 blocks vanished between event and read, 2,400 racing events: model equal to a fresh scan")


def test_symlinks_out_of_the_root_never_followed(rt):
    """memory6/state is a symlink to a file outside the root; memory7 is a symlink to a directory outside
    the root (a copy of a real block directory); memory5/valid_zones points outside with a relative link;
    later proc/zoneinfo and node/has_memory do too. Through a cold scan, add/online/offline events, the
    policy (online_movable: it wants to online 6 and 7), OnlineBlocks/OfflineBlocks over D-Bus, a SIGUSR2
    dump and --dump-model, the files outside are never opened, read or written (inotify sees nothing) and
    keep their bytes. (rt: the events harness plus a restart on the same tree.)"""
    import dbus
    from conftest import events
    h = rt(spec=events.default_spec(), policy="offline")
    h.wait_converged()
    h.term()
    outside = os.path.join(h.tmp, "outside")
    _symlink_setup(h.root, outside)
    conf = os.path.join(h.root, "etc/hotplugd/hotplugd.conf")
    text = open(conf).read().replace("Policy=offline", "Policy=online_movable")
    open(conf, "w").write(text)
    before = {n: open(os.path.join(outside, n), "rb").read() for n in ("state", "valid_zones", "zoneinfo", "has_memory",
                                                                      "memory7/state", "memory7/valid_zones")}
    # The fake kernel's reactor reads the tree from this process: it must not blur what inotify reports.
    h.reactor.stop()
    watch = Inotify([outside, os.path.join(outside, "memory7")])
    try:
        h.restart()
        bus = dbus.bus.BusConnection(h.bus_address)
        mgr = dbus.Interface(bus.get_object(BUS, PATH), MGR)
        for i in (5, 6, 7):
            h.inject_lines(["add %s memory" % (MEM % i), "online %s memory" % (MEM % i), "offline %s memory" % (MEM % i)])
        replies = []
        for blocks, zone in (([6], "movable"), ([7], "movable"), ([6, 7], "auto"), ([6], None), ([7], None)):
            try:
                r = mgr.OnlineBlocks(dbus.Array(blocks, "t"), zone) if zone else mgr.OfflineBlocks(dbus.Array(blocks, "t"))
                replies.append(("ok", [tuple(map(str, x)) for x in r]))
            except dbus.DBusException as e:
                replies.append((e.get_dbus_name(), e.get_dbus_message()))
        h.live_model()
        p = __import__("subprocess").run([h.hotplugd, "--root", h.root, "--dump-model"], capture_output=True, text=True)
        # Now the derived files too: the next burst re-reads them.
        for name, rel in (("zoneinfo", "proc/zoneinfo"), ("has_memory", NODEDIR + "/has_memory")):
            os.unlink(os.path.join(h.root, rel))
            os.symlink(os.path.join(outside, name), os.path.join(h.root, rel))
        mark = len(h.stderr())
        h.tree.set_block_state(h.root, 4, "offline", update=False)
        h.inject("offline", MEM % 4, "memory")
        wait_log(h, r"zoneinfo", "error about the zoneinfo symlink", start=mark)
        wait_log(h, r"node masks", "error about the has_memory symlink", start=mark)
        h.assert_alive()
        seen = watch.events()
    finally:
        watch.close()
    after = {n: open(os.path.join(outside, n), "rb").read() for n in before}
    log = h.all_stderr()
    print("\n[sysfs] symlinks out of the root: D-Bus replies %s" % replies)
    print("[sysfs] --dump-model exit %d: %s" % (p.returncode, p.stderr.strip().splitlines()[-1:] or ""))
    print("[sysfs] daemon said: %s" % sorted(set(l for l in log.splitlines() if "symbolic links" in l or
                                                  "memory block 7" in l or "memory block 6" in l))[:8])
    assert seen == [], "files outside the root were touched: %s" % seen
    assert after == before
    assert "Too many levels of symbolic links" in log, h.logs(40)
    # The shim logs every state write: none reached 6 or 7.
    assert not [w for w in h.writes() if w[0] in (6, 7)], h.writes()
    h.assert_alive()
    # Undo the trickery: the daemon must still converge with the kernel's truth.
    for name, rel in (("zoneinfo", "proc/zoneinfo"), ("has_memory", NODEDIR + "/has_memory")):
        os.unlink(os.path.join(h.root, rel))
    open(os.path.join(h.root, NODEDIR, "has_memory"), "w").write("0-1\n")
    h.tree.write_zoneinfo(h.root)


def test_event_flood_small_buffer(hp):
    """40,000 events into a 64 KiB receive buffer in 10 bursts, the tree changing underneath and a D-Bus
    reader at the same time; 4 bursts come while the daemon is stopped (the queue overflows for sure), the
    others race it running. Each loss is noticed and resynced, reads keep being answered, and the model
    ends equal to a fresh scan."""
    import dbus
    h = hp(policy="offline", receive_buffer="64K")
    h.wait_converged()
    bus = dbus.bus.BusConnection(h.bus_address)
    mgr = dbus.Interface(bus.get_object(BUS, PATH), MGR)
    stop, lat, errors = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                mgr.ListNodes(timeout=10)
            except dbus.DBusException as e:
                errors.append(str(e))
            lat.append(time.monotonic() - t0)
    th = threading.Thread(target=reader)
    th.start()
    n_events = 0
    try:
        for rnd in range(10):
            lines = []
            base = 300 + rnd * 20
            for i in range(base, base + 20):
                h.tree.add_block(h.root, i, node=i % 2, update=False)
                lines.append("add %s memory" % (MEM % i))
            for i in range(base, base + 20, 2):
                h.tree.set_block_state(h.root, i, "online", zone="Movable", update=False)
                lines.append("online %s memory" % (MEM % i))
            if rnd:
                for i in range(base - 20, base - 10):
                    h.tree.remove_block(h.root, i, update=False)
                    lines.append("remove %s memory" % (MEM % i))
            h.tree.write_zoneinfo(h.root)
            filler = ["online %s memory" % (MEM % (i % 6)) for i in range(4000)]
            # Every third burst arrives while the daemon is stopped, so that the queue overflows for sure;
            # the others race a running daemon (which may or may not keep up).
            if rnd % 3 == 0:
                h.pause()
            try:
                h.inject_lines(filler[:2000] + lines + filler[2000:])
            finally:
                h.resume()
            n_events += len(lines) + len(filler)
    finally:
        stop.set()
        th.join()
    drops = netlink_drops(h.proc.pid)
    live, _ = h.wait_converged(timeout=30)
    resyncs = len(re.findall(r"Resynchronized", h.stderr()))
    print("\n[sysfs] flood: %d events into a 64 KiB buffer, %d dropped by the kernel, %d resyncs; "
          "%d D-Bus reads meanwhile, slowest %.0f ms; %d blocks at the end" % (
              n_events, drops, resyncs, len(lat), max(lat) * 1e3, live["block_count"]))
    assert drops > 0, "no overflow: the test proves nothing"
    assert resyncs >= 1
    assert not errors, errors[:3]
    assert max(lat) < 5.0


def _symlink_setup(root, outside):
    mem = os.path.join(root, MEMDIR)
    os.makedirs(outside)
    # memory6/state -> outside/state
    with open(os.path.join(outside, "state"), "w") as f:
        f.write("offline\n")
    os.unlink(os.path.join(mem, "memory6/state"))
    os.symlink(os.path.join(outside, "state"), os.path.join(mem, "memory6/state"))
    # memory5/valid_zones -> outside/valid_zones (relative, climbing out of the root)
    with open(os.path.join(outside, "valid_zones"), "w") as f:
        f.write("Normal\n")
    os.unlink(os.path.join(mem, "memory5/valid_zones"))
    os.symlink(os.path.relpath(os.path.join(outside, "valid_zones"), os.path.join(mem, "memory5")),
               os.path.join(mem, "memory5/valid_zones"))
    # memory7 -> outside/memory7 (the whole directory)
    shutil.copytree(os.path.join(mem, "memory7"), os.path.join(outside, "memory7"), symlinks=True)
    shutil.rmtree(os.path.join(mem, "memory7"))
    os.symlink(os.path.join(outside, "memory7"), os.path.join(mem, "memory7"))
    for name in ("zoneinfo", "has_memory"):
        with open(os.path.join(outside, name), "w") as f:
            f.write("garbage\n")
