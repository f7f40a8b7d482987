# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the retire harness: the event tests' Harness (tests/integration/events/conftest.py: fake
tree, private network namespace, private permissive dbus-daemon, the built hotplugd) plus

* the fake kernel: libfakekernel.so preloaded into hotplugd (state writes act like the kernel's, with
  fault injection and a log) and tests/fakekernel/reactor.py next to it (zoneinfo, uevents, ACPI eject);
* polkit: python3-dbusmock's polkitd template on the private bus, allowing every action;
* a StateDirectory outside the tree, kept across restarts; kill -9 and restart of the daemon.

The `rt` fixture is a factory: rt(spec=..., retire=dict(OnCrash="resume", ...)) starts everything and returns
the harness. Prerequisites that are missing fail the test; nothing is ever skipped.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

import pytest

# A clean exit takes well under a second; sanitizer builds on a loaded 2-CPU machine (LeakSanitizer
# scans the heap at exit) have been seen to need over 10 s. A hang still fails.
SIGTERM_EXIT_SECONDS = 30

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# The event tests' harness, reused: its hooks and fixture machinery, subclassed below.
events = _load("hotplugd_events_conftest", os.path.join(os.path.dirname(HERE), "events", "conftest.py"))
SOURCE_DIR, BUILD_DIR = events.SOURCE_DIR, events.BUILD_DIR
gentree = events.gentree
reactor = _load("hotplugd_fakekernel_reactor", os.path.join(SOURCE_DIR, "tests", "fakekernel", "reactor.py"))

# Skips count as failures here too.
pytest_runtest_makereport = events.pytest_runtest_makereport

BLOCK_SIZE = events.BLOCK_SIZE
BUS = "org.hotplugd.Hotplug1"
MANAGER_PATH = "/org/hotplugd/Hotplug1"
MANAGER_IFACE = "org.hotplugd.Hotplug1.Manager"
JOB_IFACE = "org.hotplugd.Hotplug1.Job"
ERROR = "org.hotplugd.Hotplug1.Error."
FINAL = ("completed", "failed", "cancelled")
RETIRE_DEFAULTS = {"BlockTimeoutSec": "30", "Retries": "2", "RetryBackoffSec": "100ms", "RemoveTimeoutSec": "10",
                   "HookTimeoutSec": "5"}


def shim_path():
    path = os.environ.get("FAKEKERNEL_SHIM") or os.path.join(BUILD_DIR, "tests", "fakekernel", "libfakekernel.so")
    assert os.path.isfile(path), "libfakekernel.so not found at %s (build tests/fakekernel first)" % path
    return path


def hotplugctl_binary():
    return events._binary("HOTPLUGCTL", os.path.join(BUILD_DIR, "client", "hotplugctl"))


def asan_options():
    """The caller's ASAN_OPTIONS plus verify_asan_link_order=0: the shim is preloaded ahead of libasan."""
    cur = os.environ.get("ASAN_OPTIONS", "")
    return (cur + ":" if cur else "") + "verify_asan_link_order=0"


# ---- reading things the tests compare --------------------------------------------------------------

def tree_snapshot(root):
    """Every file, directory and symlink of the fake host (sys/, proc/) with its bytes and mode."""
    out = {}
    for top in ("sys", "proc"):
        for d, dirs, files in os.walk(os.path.join(root, top)):
            for name in dirs + files:
                p = os.path.join(d, name)
                rel = os.path.relpath(p, root)
                st = os.lstat(p)
                if os.path.islink(p):
                    out[rel] = ("link", os.readlink(p))
                elif os.path.isdir(p):
                    out[rel] = ("dir", st.st_mode)
                else:
                    with open(p, "rb") as f:
                        out[rel] = ("file", st.st_mode, f.read())
    return out


def snapshot_diff(a, b, limit=20):
    def what(k):
        return "only before" if k not in b else "only after" if k not in a else "%r -> %r" % (a[k][1:], b[k][1:])
    diff = ["%s: %s" % (k, what(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diff[:limit] + (["... %d more" % (len(diff) - limit)] if len(diff) > limit else [])


def block_states(root):
    """{index: (state, valid_zones)} of every block in the tree."""
    d = os.path.join(root, "sys/devices/system/memory")
    out = {}
    for e in os.listdir(d):
        m = re.fullmatch(r"memory(\d+)", e)
        if m:
            with open(os.path.join(d, e, "state")) as f:
                st = f.read().strip()
            with open(os.path.join(d, e, "valid_zones")) as f:
                vz = f.read().strip()
            out[int(m.group(1))] = (st, vz)
    return out


def parse_journal(text):
    """hotplugd's job journal (journal.c): checks the CRC-32 and returns the keys and the blocks."""
    lines = text.split("\n")
    assert text.endswith("\n") and lines[-2].startswith("crc32="), "journal has no final checksum line: %r" % text
    body = text[:text.rindex("crc32=")]
    assert "%08x" % zlib.crc32(body.encode()) == lines[-2][6:], "journal checksum mismatch: %r" % text
    assert lines[0] == "hotplugd-job-journal 1", text
    out = {"blocks": {}}      # index -> (zone, state); "n_blocks" the declared count
    for line in lines[1:-2]:
        k, _, v = line.partition("=")
        if k == "block":
            idx, zone, state = v.split()
            out["blocks"][int(idx)] = (zone, state)
        elif k == "blocks":
            out["n_blocks"] = int(v)
        else:
            out[k] = v
    return out


# ---- the harness ---------------------------------------------------------------------------------

class RetireHarness(events.Harness):
    def __init__(self, request, tmp):
        super().__init__(request, tmp)
        self.state_dir = os.path.join(tmp, "state")
        self.polkit = None
        self.reactor = None
        self.runs = 0
        self.dbus = None
        self.clean_env = dict(os.environ)

    # ---- set-up ------------------------------------------------------------------------------

    def start(self, spec=None, retire=None, policy="offline", eject_delay=0.0, **kw):
        conf = dict(RETIRE_DEFAULTS)
        conf.update(retire or {})
        extra = "\n[Retire]\n" + "".join("%s=%s\n" % kv for kv in conf.items())
        self.eject_delay = eject_delay
        self.hotplugctl = hotplugctl_binary()
        self.shim = shim_path()
        return super().start(spec=spec, policy=policy, extra_conf=extra, **kw)

    def _start_bus(self):
        super()._start_bus()
        assert self.bus is not None, "dbus-daemon (/usr/bin/dbus-daemon) is missing: the retire tests need a bus"
        env = dict(self.clean_env, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        self.polkit_log = open(os.path.join(self.tmp, "polkitd-mock.log"), "wb")
        self.polkit = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
                                       env=env, stdout=self.polkit_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            p = subprocess.run(["busctl", "--address=" + self.bus_address, "call", "org.freedesktop.PolicyKit1",
                                "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.DBus.Mock", "AllowUnknown", "b",
                                "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode == 0:
                break
            assert self.polkit.poll() is None, "the dbusmock polkitd template exited (python3-dbusmock missing?)"
            assert time.monotonic() < deadline, "the polkitd mock did not come up: %s" % p.stderr.decode()
            time.sleep(0.05)

    def _start_daemon(self):
        """The event harness' daemon start, with the shim preloaded and a StateDirectory; each run logs
        to its own file (hotplugd.stderr.N)."""
        reactor.prepare(self.root)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        if self.reactor is None:
            self.reactor = reactor.Reactor(self.root, reactor.injector_function(
                self.netns, self.injector, self.seqnum_file, env=self.clean_env), eject_delay=self.eject_delay).start()
        self.runs += 1
        self.stderr_path = os.path.join(self.tmp, "hotplugd.stderr.%d" % self.runs)
        self.stdout_path = os.path.join(self.tmp, "hotplugd.stdout.%d" % self.runs)
        saved = dict(os.environ)
        os.environ.update(LD_PRELOAD=self.shim, FAKEKERNEL_ROOT=self.root, STATE_DIRECTORY=self.state_dir,
                          ASAN_OPTIONS=asan_options())
        try:
            super()._start_daemon()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    # ---- the daemon's life -------------------------------------------------------------------

    def pid(self):
        return self.proc.pid

    def kill9(self):
        """kill -9, as a crash or an OOM kill would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reap()

    def term(self):
        """SIGTERM (systemctl stop): the daemon must exit 0 within 10 s, whatever it is doing."""
        self.proc.send_signal(signal.SIGTERM)
        # Only a daemon the shim stopped (state T) gets SIGCONT. Sent blindly, it could reach an ASan
        # build that had already exited into LeakSanitizer's check, whose tracer attaches with
        # SIGSTOP: SIGCONT discards that stop, and process and tracer wait for each other forever
        # (seen: 4 of 30 runs of the term-* kill points under clang ASan hung in StopTheWorld).
        if self.proc_state() == "T":
            self.proc.send_signal(signal.SIGCONT)
        try:
            rc = self.proc.wait(SIGTERM_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("hotplugd did not exit within %d s of SIGTERM\n%s" % (SIGTERM_EXIT_SECONDS, self.logs()))
        assert rc == 0, "hotplugd exited with %r on SIGTERM\n%s" % (rc, self.logs())
        self._reap()

    def _reap(self):
        self.notify_stop.set()
        self.notify_thread.join(2)
        self.notify.close()
        os.unlink(os.path.join(self.tmp, "notify.sock"))
        self.notifications = []
        self.stderr_f.close()
        self.stdout_f.close()

    def restart(self, wait_ready=True):
        """A new daemon on the same tree and StateDirectory (after kill9()). wait_ready=False: for a daemon that
        is to stop (a "stop" control) before it is ready, e.g. inside the recovery."""
        self.stopped = False
        self.skip_ready = not wait_ready
        try:
            self._start_daemon()
        finally:
            self.skip_ready = False

    def wait_notify(self, what, timeout):
        if what == "READY=1" and getattr(self, "skip_ready", False):
            # Only as far as the daemon being in the namespace, which the caller checks next.
            deadline = time.monotonic() + timeout
            while events.netns_of(self.proc.pid) != events.netns_of(self.holder.pid):
                assert self.proc.poll() is None and time.monotonic() < deadline, "hotplugd did not start\n%s" % self.logs()
                time.sleep(0.005)
            return
        return super().wait_notify(what, timeout)

    def proc_state(self):
        """The daemon's scheduler state letter (R, S, T = stopped, t = traced...), or None once it is gone."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None

    def wait_stopped(self, timeout=20.0):
        """Waits until the shim stopped the daemon (SIGSTOP at a 'stop' control point)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.proc_state()
            if state == "T":
                return
            self.assert_alive()
            assert time.monotonic() < deadline, "hotplugd did not reach its stop point within %.0f s\n%s\n%s" % (
                timeout, self.shim_log_text(30), self.logs(40))
            time.sleep(0.01)

    def logs(self, tail=60):
        """The stderr of every run of the daemon in this test."""
        out = []
        for k in range(1, self.runs + 1):
            try:
                with open(os.path.join(self.tmp, "hotplugd.stderr.%d" % k), "rb") as f:
                    lines = [l for l in f.read().decode(errors="replace").splitlines()
                             if not l.startswith("Model written to ")]
            except FileNotFoundError:
                continue
            out.append("--- hotplugd run %d stderr (last %d of %d lines) ---\n%s" % (k, min(tail, len(lines)), len(lines),
                                                                                   "\n".join(lines[-tail:])))
        return "\n".join(out)

    def all_stderr(self):
        text = ""
        for k in range(1, self.runs + 1):
            try:
                with open(os.path.join(self.tmp, "hotplugd.stderr.%d" % k), "rb") as f:
                    text += f.read().decode(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def cleanup(self):
        if self.reactor:
            self.reactor.stop()
        if self.polkit is not None and self.polkit.poll() is None:
            self.polkit.kill()
            self.polkit.wait()
        if self.polkit is not None:
            self.polkit_log.close()
        super().cleanup()

    # ---- the fake kernel ---------------------------------------------------------------------

    def control(self, name, text=None):
        """Writes (text) or removes (None) ROOT/.fakekernel/NAME."""
        p = os.path.join(self.root, reactor.CONTROL, name)
        if text is None:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        else:
            with open(p + ".new", "w") as f:
                f.write(text)
            os.rename(p + ".new", p)

    def shim_log(self, kind=None):
        return [e for e in reactor.read_log(self.root) if kind is None or e["kind"] == kind]

    def shim_log_text(self, tail=40):
        lines = [e["line"].rstrip("\n") for e in self.shim_log()]
        return "--- fake kernel log (last %d of %d) ---\n%s" % (min(tail, len(lines)), len(lines), "\n".join(lines[-tail:]))

    def writes(self, value=None):
        """[(block, value, result)] of every state write that ended, in order."""
        out = []
        for e in self.shim_log("write-end"):
            b, v, r = e["args"]
            if value is None or v == value:
                out.append((int(b[6:]), v, int(r)))
        return out

    def wait_log(self, predicate, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.shim_log():
                if predicate(e):
                    return e
            self.assert_alive()
            assert time.monotonic() < deadline, "no %s in the fake kernel's log within %.0f s\n%s\n%s" % (
                what, timeout, self.shim_log_text(), self.logs(40))
            time.sleep(0.01)

    def wait_blocked(self, block, timeout=20.0):
        """Waits until a write to memoryN is held by a .block control."""
        return self.wait_log(lambda e: e["kind"] == "block-wait" and e["args"][0] == "memory%d" % block and
                             e["pid"] == self.proc.pid, "held write to memory%d" % block, timeout)

    def sync(self, ejects=False):
        self.reactor.sync(ejects=ejects)
        assert not self.reactor.errors, "the fake kernel's reactor failed: %s" % self.reactor.errors

    # ---- StateDirectory ----------------------------------------------------------------------

    def journals(self):
        return sorted(n for n in os.listdir(self.state_dir) if re.fullmatch(r"job-\d+\.journal", n))

    def journal(self, name=None):
        names = self.journals()
        assert names if name is None else name in names, "no journal in %s: %s" % (self.state_dir,
                                                                                 os.listdir(self.state_dir))
        with open(os.path.join(self.state_dir, name or names[0])) as f:
            return parse_journal(f.read())

    def quarantine(self):
        try:
            with open(os.path.join(self.state_dir, "quarantine")) as f:
                return gentree.parse_list(f.read())
        except FileNotFoundError:
            return []

    # ---- bus and client ----------------------------------------------------------------------

    def ctl(self, *args, timeout=120):
        """hotplugctl with the private bus; returns the CompletedProcess (text)."""
        env = dict(self.clean_env, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address, SYSTEMD_PAGER="", PAGER="cat")
        return subprocess.run([self.hotplugctl, "--no-pager", "--no-ask-password", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, text=True)

    def retire(self, node, *args):
        """hotplugctl retire-node --no-block NODE: returns the job's object path."""
        p = self.ctl("retire-node", "--no-block", *args, str(node))
        assert p.returncode == 0, "hotplugctl retire-node --no-block %d failed (%d): %s%s\n%s" % (
            node, p.returncode, p.stdout, p.stderr, self.logs(30))
        path = p.stdout.strip().splitlines()[-1]
        assert path.startswith(MANAGER_PATH + "/job/"), "retire-node printed no job path: %r" % p.stdout
        return path

    def _bus(self):
        import dbus  # python3-dbus, with python3-dbusmock
        if self.dbus is None:
            self.dbus = dbus.bus.BusConnection(self.bus_address)
        return self.dbus

    def job(self, path):
        """All properties of a job object, as plain Python values."""
        obj = self._bus().get_object(BUS, path)
        props = obj.GetAll(JOB_IFACE, dbus_interface="org.freedesktop.DBus.Properties")
        return {str(k): (str(v) if isinstance(v, str) else v.real if hasattr(v, "real") else v) for k, v in props.items()}

    def jobs(self):
        p = self.ctl("--json=short", "jobs")
        assert p.returncode == 0, "hotplugctl jobs failed: %s" % p.stderr
        return json.loads(p.stdout)

    def wait_job(self, path, states=FINAL, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            j = self.job(path)
            if j["State"] in states:
                return j
            self.assert_alive()
            assert time.monotonic() < deadline, "job %s still %s after %.0f s (wanted %s): %s\n%s\n%s" % (
                path, j["State"], timeout, states, j.get("Result"), self.shim_log_text(), self.logs(40))
            time.sleep(0.02)

    def wait_recovered_job(self, timeout=60.0, missing_ok=False):
        """The job a restart made from a journal: the only job of the new daemon, once final. The daemon makes
        it before READY=1, so none after a few seconds means none (None with missing_ok)."""
        deadline = time.monotonic() + timeout
        appear = time.monotonic() + 3.0
        while True:
            js = self.jobs()
            if js:
                assert len(js) == 1, "expected one recovered job, got %s" % js
                return self.wait_job(js[0]["path"], timeout=max(1.0, deadline - time.monotonic()))
            if missing_ok and time.monotonic() > appear:
                return None
            assert time.monotonic() < deadline, "no recovered job after the restart\n%s" % self.logs(40)
            time.sleep(0.05)


def default_retire_spec(offline_dimm_block=False, cpus_on_node2=()):
    """Node 0: CPUs, 8 boot blocks online Normal. Node 2: CPU-less, two ACPI DIMMs of 4 blocks
    each, all online Movable: PNP0C80:00 = blocks 32-35, PNP0C80:01 = blocks 36-39 (and with
    offline_dimm_block, block 40 of PNP0C80:01, offline before any retire)."""
    s = (gentree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
         .node(0, cpus=[0, 1])
         .node(2, cpus=list(cpus_on_node2))
         .blocks(0, 8, 0, state="online", zone="Normal")
         .blocks(32, 4, 2, state="online", zone="Movable", owner="acpi", device="PNP0C80:00")
         .blocks(36, 4, 2, state="online", zone="Movable", owner="acpi", device="PNP0C80:01"))
    if offline_dimm_block:
        s.blocks(40, 1, 2, state="offline", valid_zones="Movable Normal", owner="acpi", device="PNP0C80:01")
    return s.to_dict()


def mixed_zone_spec():
    """Node 2 with two DIMMs whose blocks are online in both zones:
    PNP0C80:00 = 32 Normal, 33 Normal, 34 Movable, 35 Movable; PNP0C80:01 = 36 Movable, 37 Normal,
    38 Movable, 39 Movable. Drain order: Movable high to low (39 38 36 35 34), then Normal (37 33 32)."""
    s = (gentree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
         .node(0, cpus=[0, 1])
         .node(2)
         .blocks(0, 8, 0, state="online", zone="Normal"))
    for i, zone in zip(range(32, 40), ("Normal", "Normal", "Movable", "Movable", "Movable", "Normal", "Movable", "Movable")):
        s.blocks(i, 1, 2, state="online", zone=zone, owner="acpi", device="PNP0C80:00" if i < 36 else "PNP0C80:01")
    return s.to_dict()


MIXED_ORDER = [39, 38, 36, 35, 34, 37, 33, 32]


@pytest.fixture
def rt(request):
    tmp = tempfile.mkdtemp(prefix="hotplugd-rt-%s-" % re.sub(r"[^\w-]", "_", request.node.name)[:40],
                           dir=os.environ.get("HOTPLUGD_TEST_TMPDIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None))
    h = RetireHarness(request, tmp)
    started = []

    def factory(**kw):
        h.start(**kw)
        started.append(True)
        return h

    try:
        yield factory
        rep = getattr(request.node, "rep_call", None)
        if started and rep is not None and rep.passed:
            h.stop()  # a clean exit on SIGTERM is part of every test
            assert not h.reactor.errors, "the fake kernel's reactor failed: %s" % h.reactor.errors
    finally:
        h.cleanup()
        rep = getattr(request.node, "rep_call", None)
        if rep is None or not rep.passed:
            print("\nkept the files of the failed test in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
