# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — hostile callers, hostile trees and untrusted files, on the harnesses that exist:

* `stack`: tests/integration/bus/busfixture.py's Stack (private system bus with the shipped bus policy,
  dbusmock's polkitd, the built hotplugd as root on a generated tree, the unprivileged user hotplugd-test);
* `hp`: tests/integration/events/conftest.py's Harness (private network namespace, real uevents);
* `rt`: tests/integration/retire/conftest.py's RetireHarness (hp + the fake kernel + polkit allowing all).

Added here: the raw-socket client (rawbus.py) run as the unprivileged user, RSS and fd sampling, and a
snapshot of everything the daemon could change (tree bytes and modes, StateDirectory). Skips fail.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


retire = _load("hotplugd_retire_conftest", os.path.join(INTEGRATION, "retire", "conftest.py"))
events = retire.events
sys.path.insert(0, os.path.join(INTEGRATION, "bus"))
sys.path.insert(0, HERE)
import busfixture  # noqa: E402
import rawbus  # noqa: E402

SOURCE_DIR, BUILD_DIR = events.SOURCE_DIR, events.BUILD_DIR
gentree = events.gentree
tree_snapshot, snapshot_diff = retire.tree_snapshot, retire.snapshot_diff
block_of, node_of = events.block_of, events.node_of

# Skips are failures; rep_* attributes for the fixtures.
pytest_runtest_makereport = events.pytest_runtest_makereport
hp = events.hp
rt = retire.rt

BUS = "org.hotplugd.Hotplug1"
PATH = "/org/hotplugd/Hotplug1"
MGR = "org.hotplugd.Hotplug1.Manager"

# ASan keeps up to 256 MiB of freed memory in quarantine (and its RSS with it): a growth test would only
# measure that. A small quarantine keeps use-after-free detection and makes RSS mean the daemon's memory.
ASAN_SMALL_QUARANTINE = "quarantine_size_mb=4:thread_local_quarantine_size_kb=64"


def asan_small_quarantine(env=None):
    cur = (env if env is not None else os.environ).get("ASAN_OPTIONS", "")
    return (cur + ":" if cur else "") + ASAN_SMALL_QUARANTINE


# ---- process figures -------------------------------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_targets(pid):
    out = []
    for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass
    return out


# ---- the stack ---------------------------------------------------------------------------------------

class HostileStack(busfixture.Stack):
    """busfixture.Stack with the daemon's ASan quarantine kept small (RSS is measured) and helpers."""

    def start_daemon(self, extra=()):
        self.env = dict(self.env, ASAN_OPTIONS=asan_small_quarantine(self.env))
        super().start_daemon(extra)
        self.pid = self.daemon.pid

    def state_dir(self):
        return os.path.join(self.dir, "state")

    def everything(self):
        """What a hostile caller must not change: every file of sys/ and proc/ (bytes and modes), the
        StateDirectory, the config, and what the daemon says about itself and its nodes."""
        snap = tree_snapshot(self.root)
        sd = self.state_dir()
        if os.path.isdir(sd):
            for name in sorted(os.listdir(sd)):
                p = os.path.join(sd, name)
                st = os.lstat(p)
                data = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else None
                snap["state/" + name] = ("file", st.st_mode, data)
        return snap

    def bus_view(self):
        """Manager and node properties (minus nothing: no jobs are expected) and the block list."""
        import dbus
        view = {"manager": {str(k): _plain(v) for k, v in self.props(PATH, MGR).items()}}
        for p in view["manager"]["Nodes"]:
            view[p] = {str(k): _plain(v) for k, v in self.props(p, "org.hotplugd.Hotplug1.Node").items()}
        obj = self.bus.get_object(BUS, PATH)
        view["blocks"] = _plain(obj.ListBlocks(dbus.Int32(-1), dbus_interface=MGR))
        return view

    def alive_and_answering(self):
        assert self.daemon.poll() is None, "hotplugd died (exit %r):\n%s" % (self.daemon.returncode, self.log()[-4000:])
        t = time.monotonic()
        c = rawbus.Conn(self.address)
        m = c.call(BUS, PATH, MGR, "ListNodes")
        c.close()
        assert rawbus.outcome(m) == "ok", rawbus.error_message(m)
        return time.monotonic() - t

    def run_as_user(self, plan, timeout=600):
        """rawbus.py's plan mode under setpriv as hotplugd-test: returns its JSON result."""
        cmd = ["setpriv", "--reuid", str(self.user.pw_uid), "--regid", str(self.user.pw_gid), "--clear-groups",
               "/usr/bin/python3", os.path.join(HERE, "rawbus.py"), self.address]
        p = subprocess.run(cmd, input=(json.dumps(plan) + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        assert p.returncode == 0, "rawbus.py failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")[-3000:])
        return json.loads(p.stdout.decode().splitlines()[-1])

    def start_as_user(self, plan):
        """rawbus.py with a "held" plan, as hotplugd-test: returns (process, number of calls sent) once
        every call is on its way; finish_held() lets it go on."""
        cmd = ["setpriv", "--reuid", str(self.user.pw_uid), "--regid", str(self.user.pw_gid), "--clear-groups",
               "/usr/bin/python3", os.path.join(HERE, "rawbus.py"), self.address]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write((json.dumps(plan) + "\n").encode())
        p.stdin.flush()
        line = p.stdout.readline()
        assert line, "rawbus.py ended early: %s" % p.stderr.read().decode(errors="replace")[-3000:]
        return p, json.loads(line)["held_sent"]

    def finish_held(self, p, timeout=120):
        out, err = p.communicate(b"go\n", timeout=timeout)
        assert p.returncode == 0, "rawbus.py failed (%d): %s" % (p.returncode, err.decode(errors="replace")[-3000:])
        return json.loads(out.decode().splitlines()[-1])["held"]

    def polkit_mock(self, method, *args):
        """A call on dbusmock's polkitd control interface (SetAllowed, SimulateHang, ...)."""
        return getattr(self.polkit, method)(*args, dbus_interface="org.freedesktop.DBus.Mock")

    def run_as_root(self, plan):
        return rawbus.run_plan(self.address, json.loads(json.dumps(plan)))


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


@pytest.fixture
def stack(request):
    s = HostileStack(request.node.name[:40])
    s.pid = s.daemon.pid
    yield s
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    if not failed and s.daemon.poll() is None:
        # A clean exit on SIGTERM after the abuse is part of every test.
        s.daemon.send_signal(signal.SIGTERM)
        try:
            rc = s.daemon.wait(15)
        except subprocess.TimeoutExpired:
            s.daemon.kill()
            rc = "timeout"
        if rc != 0:
            failed = True
            print("hotplugd exited with %r on SIGTERM after the test" % rc)
            print("daemon log:\n" + s.log()[-6000:])
            s.cleanup(keep=True)
            raise AssertionError("hotplugd exited with %r on SIGTERM" % rc)
    if failed:
        print("daemon log:\n" + s.log()[-6000:])
    s.cleanup(keep=failed)


def count_outcomes(results):
    out = {}
    for r in results:
        out[r["outcome"]] = out.get(r["outcome"], 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def log_lines(text, pattern):
    return [l for l in text.splitlines() if re.search(pattern, l)]


# ---- events and files ------------------------------------------------------------------------------

def netlink_drops(pid):
    """Datagrams dropped on the daemon's uevent socket(s) (NETLINK_KOBJECT_UEVENT bound to a group)."""
    drops = 0
    with open("/proc/%d/net/netlink" % pid) as f:
        next(f)
        for line in f:
            x = line.split()
            if x[1] == "15" and int(x[3], 16) != 0:
                drops += int(x[8])
    return drops


class Inotify:
    """Every open, read, write or attribute change of the watched paths (a directory: also of the files
    in it), as the kernel reports them: the proof that nobody touched them, not just that bytes match."""

    MASK = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x100 | 0x200 | 0x400   # access modify attrib close open create delete

    def __init__(self, paths):
        import ctypes
        import ctypes.util
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, "inotify_init1 failed"
        self.wd = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(p), self.MASK)
            assert wd >= 0, "inotify_add_watch(%s) failed" % p
            self.wd[wd] = p

    def events(self):
        import struct as st
        out = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            off = 0
            while off < len(data):
                wd, mask, _, n = st.unpack_from("iIII", data, off)
                name = data[off + 16:off + 16 + n].rstrip(b"\0").decode()
                out.append((self.wd.get(wd, wd), name, mask))
                off += 16 + n

    def close(self):
        os.close(self.fd)
