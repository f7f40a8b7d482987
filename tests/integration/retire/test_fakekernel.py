# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fake kernel itself (tests/fakekernel), without hotplugd: libfakekernel.so's state_store() semantics,
fault injection, stop points and journal log, driven from a small preloaded Python writer; reactor.py's
uevents, zoneinfo and ACPI eject (the kernel's node rule), with the injection captured. If these are wrong,
every retire test proves nothing."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import BLOCK_SIZE, block_states, gentree, reactor, shim_path

WRITER = r"""
import os, sys, signal
hit = False
def interrupted(*a):
    global hit
    if not hit:
        hit = True
        raise InterruptedError("signal")
signal.signal(signal.SIGUSR1, interrupted)
out = []
for arg in sys.argv[1:]:
    path, value = arg.rsplit("=", 1)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
        out.append("0")
    except InterruptedError:
        out.append("EINTR")
    except OSError as e:
        out.append(str(-e.errno))
    finally:
        os.close(fd)
print(" ".join(out))
"""


@pytest.fixture
def fk():
    tmp = tempfile.mkdtemp(prefix="hotplugd-fk-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    root = os.path.join(tmp, "root")
    spec = (gentree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
            .node(0, cpus=[0, 1]).node(2).node(3, cpus=[4])
            .blocks(0, 4, 0, state="online", zone="Normal")
            .blocks(4, 1, 0, state="online", zone="none")
            .blocks(32, 2, 2, state="online", zone="Movable", owner="acpi", device="PNP0C80:00")
            .blocks(34, 1, 2, state="online", zone="Normal", owner="acpi", device="PNP0C80:00")
            .blocks(35, 1, 2, state="offline", valid_zones="DMA32 Normal Movable", owner="acpi", device="PNP0C80:00")
            .blocks(40, 2, 3, state="online", zone="Movable", owner="acpi", device="PNP0C80:01"))
    gentree.generate(root, spec.to_dict())
    reactor.prepare(root)
    ns = type("FK", (), {})()
    ns.root, ns.tmp = root, tmp
    ns.mem = os.path.join(root, "sys/devices/system/memory")
    ns.procs = []

    def write(*pairs, background=False):
        """Writes VALUE to memoryN/state for each (N, VALUE), in a preloaded process; returns the results."""
        env = dict(os.environ, LD_PRELOAD=shim_path(), FAKEKERNEL_ROOT=root)
        env.pop("ASAN_OPTIONS", None)
        args = ["%s/memory%d/state=%s" % (ns.mem, n, v) for n, v in pairs]
        p = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, *args], env=env, stdout=subprocess.PIPE, text=True)
        ns.procs.append(p)
        if background:
            return p
        out, _ = p.communicate(timeout=30)
        return out.split()

    def control(name, text):
        with open(os.path.join(root, ".fakekernel", name), "w") as f:
            f.write(text)

    ns.write, ns.control = write, control
    ns.log = lambda kind=None: [e for e in reactor.read_log(root) if kind is None or e["kind"] == kind]
    yield ns
    for p in ns.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def test_shim_state_semantics(fk):
    """state_store(): offline/online_movable/online_kernel/online, EINVAL for the same state, bad strings and a
    block that spans zones; valid_zones and online follow; a trailing newline is fine."""
    st = lambda: block_states(fk.root)
    assert fk.write((32, "offline")) == ["0"]
    assert st()[32] == ("offline", "Movable Normal")
    assert fk.write((32, "offline"), (32, "bogus"), (32, "online_movable\n")) == ["-22", "-22", "0"]
    assert st()[32] == ("online", "Movable")
    assert fk.write((34, "offline\n"), (34, "online")) == ["0", "0"]
    assert st()[34] == ("online", "Normal")   # plain online: the first zone valid_zones offered ("Normal Movable")
    assert fk.write((34, "online_kernel")) == ["-22"]
    assert fk.write((33, "offline"), (33, "online_kernel")) == ["0", "0"]
    assert st()[33] == ("online", "Normal")
    assert fk.write((35, "online_kernel")) == ["0"]
    assert st()[35] == ("online", "DMA32")    # the first kernel zone offered
    assert fk.write((4, "offline")) == ["-22"]   # valid_zones "none": several zones, never offlined
    with open(os.path.join(fk.mem, "memory33/online")) as f:
        assert f.read() == "1\n"
    # A shell's redirection (O_TRUNC, then dup2 to stdout) goes through the same path.
    env = dict(os.environ, LD_PRELOAD=shim_path(), FAKEKERNEL_ROOT=fk.root)
    subprocess.run(["/bin/sh", "-c", "echo offline > %s/memory41/state" % fk.mem], env=env, check=True)
    assert st()[41] == ("offline", "Movable Normal")
    # Other files are untouched by the shim, O_TRUNC included.
    other = os.path.join(fk.tmp, "state")
    subprocess.run(["/bin/sh", "-c", "echo hello > %s; echo hi > %s" % (other, other)], env=env, check=True)
    with open(other) as f:
        assert f.read() == "hi\n"
    ends = [(e["args"][0], e["args"][1], int(e["args"][2])) for e in fk.log("write-end")]
    assert ends[:3] == [("memory32", "offline", 0), ("memory32", "offline", -22), ("memory32", "bogus", -22)], ends


def test_shim_fault_injection(fk):
    """.fail counts down (and applies only to its operation), .delay takes its time, .block waits for a signal
    and then fails with EINTR leaving the block as it was, any.* applies to every block."""
    fk.control("memory32.fail", "-16 2\n")
    assert fk.write((32, "offline"), (32, "offline"), (32, "offline")) == ["-16", "-16", "0"]
    with open(os.path.join(fk.root, ".fakekernel/memory32.fail")) as f:
        assert f.read().split()[:2] == ["-16", "0"]
    fk.control("memory33.fail", "16 inf online\n")
    assert fk.write((33, "offline"), (33, "online_movable"), (33, "online_movable")) == ["0", "-16", "-16"]
    fk.control("memory33.fail", "5 1 any\n")
    assert fk.write((33, "online")) == ["-5"]

    fk.control("memory34.delay", "400\n")
    t = time.monotonic()
    assert fk.write((34, "offline")) == ["0"]
    assert 0.4 <= time.monotonic() - t < 3.0
    t = time.monotonic()
    assert fk.write((34, "online_kernel")) == ["0"]   # delays are for offline unless told
    assert time.monotonic() - t < 0.4 + 1.0

    fk.control("memory40.block", "offline\n")
    p = fk.write((40, "offline"), background=True)
    deadline = time.monotonic() + 10
    while not [e for e in fk.log("block-wait") if e["args"][0] == "memory40"]:
        assert time.monotonic() < deadline, "no block-wait logged"
        time.sleep(0.01)
    time.sleep(0.2)
    assert p.poll() is None, "a held write returned without a signal"
    # As hotplugd's worker does: signal until the write returns (one may land between two sleeps).
    while p.poll() is None and time.monotonic() < deadline:
        p.send_signal(signal.SIGUSR1)
        time.sleep(0.02)
    out, _ = p.communicate(timeout=10)
    assert out.split() == ["EINTR"]
    assert block_states(fk.root)[40] == ("online", "Movable")
    # Removing the control lets a held write go on.
    p = fk.write((40, "offline"), background=True)
    time.sleep(0.3)
    os.unlink(os.path.join(fk.root, ".fakekernel/memory40.block"))
    out, _ = p.communicate(timeout=10)
    assert out.split() == ["0"] and block_states(fk.root)[40][0] == "offline"

    fk.control("any.fail", "-11 1\n")
    assert fk.write((41, "offline"), (41, "offline")) == ["-11", "0"]


def test_shim_stop_point_and_journal_log(fk):
    """A 'stop' control stops the writer with SIGSTOP right after the Nth matching event; a journal renamed into
    place is logged with its phase and blocks and copied; unlinking it is logged."""
    fk.control("stop", "write-end 2 offline 0\n")
    p = fk.write((32, "offline"), (33, "offline"), (34, "offline"), background=True)
    deadline = time.monotonic() + 10
    while True:
        with open("/proc/%d/stat" % p.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                break
        assert time.monotonic() < deadline and p.poll() is None, "the writer did not stop"
        time.sleep(0.01)
    assert [e["args"][0] for e in fk.log("write-end")] == ["memory32", "memory33"]
    assert fk.log("stop")[0]["args"] == ["write-end", "2"]
    p.kill()
    p.wait()
    assert block_states(fk.root)[34] == ("online", "Normal")

    state = os.path.join(fk.tmp, "state")
    os.makedirs(state)
    text = "hotplugd-job-journal 1\njob=3\nnode=2\nflags=0\nphase=drain\nstarted=1\nblocks=2\nblock=33 Movable offlined\n" \
           "block=32 Movable offlining\ncrc32=00000000\n"
    env = dict(os.environ, LD_PRELOAD=shim_path(), FAKEKERNEL_ROOT=fk.root)
    code = ("import os\nd=os.open(%r, os.O_RDONLY)\nopen(%r,'w').write(%r)\n"
            "os.rename('.#job-3.journal.tmp', 'job-3.journal', src_dir_fd=d, dst_dir_fd=d)\n"
            "os.unlink('job-3.journal', dir_fd=d)\n" % (state, state + "/.#job-3.journal.tmp", text))
    subprocess.run(["/usr/bin/python3", "-c", code], env=env, check=True)
    [j] = fk.log("journal")
    assert j["args"][:3] == ["job-3.journal", "phase=drain", "blocks=33:offlined,32:offlining"], j
    with open(os.path.join(fk.root, ".fakekernel", j["args"][3][5:])) as f:
        assert f.read() == text
    assert [e["args"] for e in fk.log("journal-remove")] == [["job-3.journal"]]


class Captured:
    def __init__(self):
        self.lines = []

    def __call__(self, lines):
        self.lines.extend(lines)


def test_reactor_state_changes(fk):
    """After each state write that took: zoneinfo follows, then the online/offline uevent, in write order;
    failed writes send nothing."""
    cap = Captured()
    r = reactor.Reactor(fk.root, cap).start()
    try:
        assert reactor.zone_spans(fk.root)[2]["Movable"] == 2 * BLOCK_SIZE // 4096
        fk.write((33, "offline"), (32, "offline"), (32, "offline"), (33, "online_kernel"))
        r.sync()
        assert cap.lines == ["offline /devices/system/memory/memory33 memory",
                             "offline /devices/system/memory/memory32 memory",
                             "online /devices/system/memory/memory33 memory"]
        spans = reactor.zone_spans(fk.root)[2]
        assert spans["Movable"] == 0 and spans["Normal"] == 2 * BLOCK_SIZE // 4096, spans
        assert not r.errors
    finally:
        r.stop()


def test_reactor_eject_and_node_rule(fk):
    """Eject: refused while a block of the device is online; with all offline the blocks are removed, then
    node 2 (no CPU, nothing spanned, no block left) goes offline after them. Node 3 keeps its present CPU:
    its blocks go, the node stays. A slow eject waits for its delay; 'never' holds it."""
    cap = Captured()
    r = reactor.Reactor(fk.root, cap).start()
    eject = lambda dev: open(os.path.join(fk.root, "sys/bus/acpi/devices", dev, "eject"), "w").write("1")
    try:
        fk.write((32, "offline"), (33, "offline"))
        r.sync()
        eject("PNP0C80:00")
        r.sync(ejects=True)
        assert r.eject_failures == [("PNP0C80:00", "memory34 is online")], r.eject_failures
        assert sorted(i for i in block_states(fk.root) if i >= 32) == [32, 33, 34, 35, 40, 41]

        fk.write((34, "offline"))
        r.sync()
        del cap.lines[:]
        eject("PNP0C80:00")
        r.sync(ejects=True)
        assert cap.lines == ["remove /devices/system/memory/memory%d memory" % i for i in (32, 33, 34, 35)] + \
            ["remove /devices/system/node/node2 node"], cap.lines
        assert not os.path.exists(os.path.join(fk.root, "sys/devices/system/node/node2"))
        assert 2 not in gentree.parse_list(open(os.path.join(fk.root, "sys/devices/system/node/online")).read())
        with open(os.path.join(fk.root, "sys/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C80:00/status")) as f:
            assert f.read() == "0\n"

        fk.control("eject", "never")
        fk.write((40, "offline"), (41, "offline"))
        r.sync()
        del cap.lines[:]
        eject("PNP0C80:01")
        time.sleep(0.3)
        r.sync()
        assert cap.lines == [] and len(r.pending_ejects) == 1
        fk.control("eject", "300")
        r.sync(ejects=True)
        assert cap.lines == ["remove /devices/system/memory/memory%d memory" % i for i in (40, 41)]
        assert os.path.isdir(os.path.join(fk.root, "sys/devices/system/node/node3")), "node 3 has a CPU: it stays"
        assert reactor.node_offline_blockers(fk.root, 3) == ["has-cpus"]
        assert not r.errors
    finally:
        r.stop()
