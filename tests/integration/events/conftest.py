# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the event-test harness: hotplugd on a fake tree in a private network namespace, fed real
udevd-format uevents through its own libudev monitor by tests/uevent-inject.

Why a private network namespace: netlink uevent sockets are per network namespace. The daemon and the
injector share one that nothing else lives in, so no fake "memory add" reaches the host's udevd or PID 1.
The injector refuses to run in the host's namespace as a second guard.

The `hp` fixture is a factory: hp(spec=..., policy=..., receive_buffer=...) generates the tree, writes
T/etc/hotplugd/hotplugd.conf, starts the daemon and waits for READY=1. Then:
    hp.tree.<gentree mutation>(hp.root, ...)   play the kernel on the fake tree
    hp.inject("add", "/devices/system/memory/memory42", "memory")
    hp.live_model()                            SIGUSR2 -> $RUNTIME_DIRECTORY/model.json
    hp.fresh_scan()                            hotplugd --root T --dump-model
    hp.wait_converged()                        live model == fresh scan (polls; the daemon settles
                                               derived state after bursts)
Prerequisites that are missing fail the test with a message; nothing is ever skipped.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

# A clean exit takes well under a second; sanitizer builds on a loaded 2-CPU machine (LeakSanitizer
# scans the heap at exit) have been seen to need over 10 s. A hang still fails.
SIGTERM_EXIT_SECONDS = 30

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HOTPLUGD_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BUILD_DIR = os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))

try:
    import gentree  # tests/gentree.py -> tests/gen-tree.py
except Exception as e:  # noqa: BLE001 - reported as a failure by the fixture
    gentree = None
    GENTREE_ERROR = "cannot import the tree generator tests/gen-tree.py: %r" % (e,)

BLOCK_SIZE = 128 << 20
PAGES_PER_BLOCK = BLOCK_SIZE // 4096
START_TIMEOUT = 20.0
CONVERGE_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# skips are failures here (one meson test per case; a skipped case proves nothing)

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = "skipped, which counts as a failure in this suite: %s" % (rep.longrepr,)
    setattr(item, "rep_" + rep.when, rep)


# --------------------------------------------------------------------------------------------
# prerequisites

def _binary(env, default):
    path = os.environ.get(env) or default
    assert os.path.isfile(path) and os.access(path, os.X_OK), \
        "%s not found at %s (set %s or HOTPLUGD_BUILD_DIR=%r; build with ninja first)" % (
            os.path.basename(default), path, env, BUILD_DIR)
    return path


def hotplugd_binary():
    return _binary("HOTPLUGD", os.path.join(BUILD_DIR, "daemon", "hotplugd"))


def inject_binary():
    return _binary("UEVENT_INJECT", os.path.join(BUILD_DIR, "tests", "tools", "uevent-inject"))


def check_prerequisites():
    assert gentree is not None, GENTREE_ERROR
    assert os.geteuid() == 0, "the event tests need root: they create a network namespace (unshare -n)"
    for tool in ("unshare", "nsenter"):
        assert any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
                   + ["/usr/bin", "/bin"]), "%s (util-linux) is missing" % tool
    # libudev (sd-device) silently disables a "udev" monitor unless udevd looks present: /run/udev/control
    # exists or /dev is a devtmpfs. Then no injected event would ever arrive.
    devtmpfs = False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == "/dev" and fields[sep + 1] == "devtmpfs":
                devtmpfs = True
    assert devtmpfs or os.path.exists("/run/udev/control"), \
        "libudev would disable the daemon's udev monitor here (no /run/udev/control and /dev is not a devtmpfs)"


def netns_of(pid):
    return os.stat("/proc/%s/ns/net" % pid).st_ino


# --------------------------------------------------------------------------------------------
# model comparison

NODE_FIELDS = ("id", "possible", "online", "has_memory", "present_cpus", "online_cpus", "blocks", "online_blocks",
               "offline_blocks", "going_offline_blocks", "online_blocks_by_zone", "spanned_pages", "present_pages",
               "managed_pages", "zones", "hugepages", "policy", "effective_policy", "can_offline",
               "offline_blockers")
BLOCK_FIELDS = ("index", "start", "size", "state", "zone", "valid_zones", "nodes", "owner", "device")


def model_diff(live, fresh, limit=25):
    """Every difference between two model dumps in block size, nodes (all fields) and blocks; [] if equal."""
    errs = []
    if live.get("block_size_bytes") != fresh.get("block_size_bytes"):
        errs.append("block_size_bytes: live %r, fresh %r" % (live.get("block_size_bytes"), fresh.get("block_size_bytes")))
    ln = {n["id"]: n for n in live.get("nodes", [])}
    fn = {n["id"]: n for n in fresh.get("nodes", [])}
    for nid in sorted(set(ln) | set(fn)):
        if nid not in fn:
            errs.append("node %d only in the live model: %s" % (nid, _short(ln[nid])))
            continue
        if nid not in ln:
            errs.append("node %d only in the fresh scan: %s" % (nid, _short(fn[nid])))
            continue
        for k in sorted(set(ln[nid]) | set(fn[nid])):
            if ln[nid].get(k) != fn[nid].get(k):
                errs.append("node %d %s: live %r, fresh %r" % (nid, k, ln[nid].get(k), fn[nid].get(k)))
    lb = {b["index"]: b for b in live.get("blocks", [])}
    fb = {b["index"]: b for b in fresh.get("blocks", [])}
    only_live, only_fresh = sorted(set(lb) - set(fb)), sorted(set(fb) - set(lb))
    if only_live:
        errs.append("%d blocks only in the live model: %s" % (len(only_live), only_live[:limit]))
    if only_fresh:
        errs.append("%d blocks only in the fresh scan: %s" % (len(only_fresh), only_fresh[:limit]))
    n_block_errs = 0
    for i in sorted(set(lb) & set(fb)):
        if lb[i] != fb[i]:
            n_block_errs += 1
            if n_block_errs <= limit:
                errs.append("block %d: live %s, fresh %s" % (i, lb[i], fb[i]))
    if n_block_errs > limit:
        errs.append("... %d differing blocks in all" % n_block_errs)
    return errs


def _short(n):
    return {k: n.get(k) for k in ("online", "blocks", "online_blocks", "present_cpus", "spanned_pages")}


def node_of(model, nid):
    for n in model["nodes"]:
        if n["id"] == nid:
            return n
    return None


def block_of(model, index):
    for b in model["blocks"]:
        if b["index"] == index:
            return b
    return None


# --------------------------------------------------------------------------------------------
# the harness

class Harness:
    def __init__(self, request, tmp):
        self.request = request
        self.tmp = tmp
        self.root = os.path.join(tmp, "root")
        self.runtime = os.path.join(tmp, "runtime")
        self.tree = gentree
        self.proc = None
        self.holder = None
        self.bus = None
        self.notify = None
        self.stderr_path = os.path.join(tmp, "hotplugd.stderr")
        self.stdout_path = os.path.join(tmp, "hotplugd.stdout")
        self.seqnum_file = os.path.join(tmp, "seqnum")
        self.notifications = []
        self.stopped = False

    # ---- set-up --------------------------------------------------------------------------

    def start(self, spec=None, policy="offline", receive_buffer="8M", event_source="udev", extra_conf="",
              auto_online="offline"):
        check_prerequisites()
        self.hotplugd = hotplugd_binary()
        self.injector = inject_binary()
        if spec is None:
            spec = default_spec()
        self.spec = gentree.generate(self.root, spec)
        gentree.set_auto_online(self.root, auto_online)
        os.makedirs(os.path.join(self.root, "etc/hotplugd"), exist_ok=True)
        with open(os.path.join(self.root, "etc/hotplugd/hotplugd.conf"), "w") as f:
            f.write("[Daemon]\nEventSource=%s\nReceiveBufferSize=%s\nLogLevel=debug\n\n[Online]\nPolicy=%s\n%s"
                    % (event_source, receive_buffer, policy, extra_conf))
        os.makedirs(self.runtime, exist_ok=True)
        self._start_netns()
        self._start_bus()
        self._start_daemon()
        return self

    def _start_netns(self):
        # A holder process keeps the namespace alive; daemon and injector join it with nsenter.
        self.holder = subprocess.Popen(["unshare", "--net", "--", "/bin/sh", "-c", "echo ready; exec sleep infinity"],
                                       stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.holder.stdout.readline()
        assert line == b"ready\n", "unshare --net failed (exit %r): cannot create a private network namespace" % (
            self.holder.poll(),)
        assert netns_of(self.holder.pid) != netns_of("self"), "unshare --net did not give a new network namespace"
        self.netns = "/proc/%d/ns/net" % self.holder.pid

    def _start_bus(self):
        # hotplugd will export its API on the system bus: give it a private one (a unix path socket
        # works across network namespaces).
        if not os.access("/usr/bin/dbus-daemon", os.X_OK):
            return
        sock = os.path.join(self.tmp, "system_bus_socket")
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
                    ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
                    "<busconfig><type>system</type><listen>unix:path=%s</listen><auth>EXTERNAL</auth>\n"
                    '<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>'
                    '<allow receive_sender="*"/></policy></busconfig>\n' % sock)
        self.bus = subprocess.Popen(["/usr/bin/dbus-daemon", "--config-file=" + conf, "--nofork", "--print-address=1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        addr = self.bus.stdout.readline().decode().strip()
        assert addr, "the private dbus-daemon did not start"
        self.bus_address = addr

    def _start_daemon(self):
        nsock = os.path.join(self.tmp, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(nsock)
        self.notify.settimeout(0.1)
        self.notify_stop = threading.Event()
        self.notify_cond = threading.Condition()
        self.notify_thread = threading.Thread(target=self._notify_reader, daemon=True)
        self.notify_thread.start()
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID",
                  "JOURNAL_STREAM"):
            env.pop(k, None)
        env.update(NOTIFY_SOCKET=nsock, RUNTIME_DIRECTORY=self.runtime, SYSTEMD_LOG_LEVEL="debug")
        if self.bus:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        self.stderr_f = open(self.stderr_path, "wb")
        self.stdout_f = open(self.stdout_path, "wb")
        self.cmd = ["nsenter", "--net=" + self.netns, "--", self.hotplugd, "--root", self.root]
        self.proc = subprocess.Popen(self.cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.stdout_f,
                                     stderr=self.stderr_f)
        self.wait_notify("READY=1", START_TIMEOUT)
        # nsenter execs the daemon: same pid, and it must sit in the private namespace.
        assert netns_of(self.proc.pid) == netns_of(self.holder.pid), \
            "hotplugd (pid %d) is not in the private network namespace" % self.proc.pid

    def _notify_reader(self):
        # Drain the notify socket for the daemon's whole life: sd_notify() blocks once the socket's
        # queue (net.unix.max_dgram_qlen, 10 by default) is full, as it would with a hung PID 1.
        while not self.notify_stop.is_set():
            try:
                msg = self.notify.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            except OSError:
                return
            with self.notify_cond:
                self.notifications.append(msg)
                self.notify_cond.notify_all()

    def wait_notify(self, what, timeout):
        deadline = time.monotonic() + timeout
        with self.notify_cond:
            while not any(what in m.split("\n") for m in self.notifications):
                if self.proc.poll() is not None:
                    raise AssertionError("hotplugd exited with %r before sending %s\n%s"
                                         % (self.proc.returncode, what, self.logs()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("hotplugd sent no %s within %.0f s (got %r)\n%s"
                                         % (what, timeout, self.notifications, self.logs()))
                self.notify_cond.wait(min(left, 0.1))

    # ---- events --------------------------------------------------------------------------

    def inject(self, action, devpath, subsystem, **props):
        """One udevd-format event; SEQNUM continues from the previous injection unless given."""
        spec = " ".join([action, devpath, subsystem] + ["%s=%s" % (k, v) for k, v in props.items()])
        self.inject_lines([spec])

    def inject_lines(self, lines, extra_args=()):
        """Many events, one spec per line ("ACTION DEVPATH SUBSYSTEM [K=V...]"), in one injector run."""
        self.assert_alive()
        data = "\n".join(lines) + "\n"
        p = subprocess.run(["nsenter", "--net=" + self.netns, "--", self.injector, "--seqnum-file", self.seqnum_file,
                            "-f", "-", *extra_args], input=data.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, "uevent-inject failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace"))
        return p.stderr.decode(errors="replace")

    # ---- models --------------------------------------------------------------------------

    def _monitor_queue_empty(self):
        """True when no uevent netlink socket in the namespace has unread data (the daemon drained it)."""
        try:
            with open("/proc/%d/net/netlink" % self.proc.pid) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    # sk Eth Pid Groups Rmem Wmem ...; protocol 15 = NETLINK_KOBJECT_UEVENT
                    if fields[1] == "15" and int(fields[3], 16) != 0 and int(fields[4]) != 0:
                        return False
        except (OSError, StopIteration):
            pass
        return True

    def live_model(self, timeout=10.0):
        """SIGUSR2 -> the daemon writes $RUNTIME_DIRECTORY/model.json (atomically); returns it parsed."""
        deadline = time.monotonic() + timeout
        while not self._monitor_queue_empty() and time.monotonic() < deadline:
            self.assert_alive()
            time.sleep(0.005)
        path = os.path.join(self.runtime, "model.json")
        try:
            before = os.stat(path)
            before = (before.st_ino, before.st_mtime_ns)
        except FileNotFoundError:
            before = None
        self.assert_alive()
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = os.stat(path)
                if (st.st_ino, st.st_mtime_ns) != before:
                    with open(path) as f:
                        return json.load(f)
            except FileNotFoundError:
                pass
            except ValueError as e:
                raise AssertionError("%s is not valid JSON: %s" % (path, e))
            self.assert_alive()
            time.sleep(0.005)
        raise AssertionError("hotplugd wrote no new %s within %.0f s of SIGUSR2\n%s\n%s"
                             % (path, timeout, self.process_state(), self.logs()))

    def process_state(self):
        """Where the daemon is: scheduler state, wait channel, signal masks, netlink queues."""
        out = []
        for name in ("wchan", "status", "net/netlink"):
            try:
                with open("/proc/%d/%s" % (self.proc.pid, name)) as f:
                    text = f.read()
            except OSError as e:
                text = str(e)
            if name == "status":
                text = "".join(l for l in text.splitlines(True) if l.split(":")[0] in ("State", "SigPnd", "ShdPnd",
                                                                                       "SigBlk", "SigIgn", "SigCgt"))
            out.append("%s: %s" % (name, text.strip()))
        return "--- daemon state ---\n" + "\n".join(out)

    def fresh_scan(self):
        """hotplugd --root T --dump-model: a cold scan of the tree as it is now."""
        cmd = [self.hotplugd, "--root", self.root, "--dump-model"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, "%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace"))
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("--dump-model printed no JSON (%s): %r" % (e, p.stdout[:300]))

    def wait_model(self, check, what, timeout=CONVERGE_TIMEOUT):
        """Dumps the live model until check(model) returns a falsy list of problems; fails with the last ones."""
        deadline = time.monotonic() + timeout
        while True:
            model = self.live_model()
            problems = check(model)
            if not problems:
                return model
            if time.monotonic() > deadline:
                if isinstance(problems, (list, tuple)):
                    problems = "\n  ".join(str(p) for p in problems)
                raise AssertionError("%s: still wrong after %.0f s:\n  %s\n%s" % (what, timeout, problems,
                                                                                  self.logs(tail=40)))
            time.sleep(0.05)

    def wait_converged(self, timeout=CONVERGE_TIMEOUT):
        """The live model must come to equal a fresh scan of the tree; returns (live, fresh)."""
        fresh = self.fresh_scan()
        live = self.wait_model(lambda m: model_diff(m, fresh), "live model vs fresh scan of %s" % self.root, timeout)
        return live, fresh

    # ---- process control ------------------------------------------------------------------

    def assert_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("hotplugd died (exit status %r)\n%s" % (self.proc.returncode, self.logs()))

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self, tail=60):
        # The harness' own SIGUSR2 dumps would drown everything else.
        lines = [l for l in self.stderr().splitlines() if not l.startswith("Model written to ")]
        return "--- hotplugd stderr without 'Model written' lines (last %d of %d) ---\n%s" % (
            min(tail, len(lines)), len(lines), "\n".join(lines[-tail:]))

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        """SIGTERM: the daemon must exit 0 within 10 s."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        self.proc.send_signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(SIGTERM_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("hotplugd did not exit within %d s of SIGTERM\n%s" % (SIGTERM_EXIT_SECONDS, self.logs()))
        assert rc == 0, "hotplugd exited with status %r on SIGTERM\n%s" % (rc, self.logs())

    def cleanup(self):
        for p in (self.proc, self.holder, self.bus):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for f in ("stderr_f", "stdout_f"):
            if hasattr(self, f):
                getattr(self, f).close()
        if self.notify:
            self.notify_stop.set()
            self.notify_thread.join(2)
            self.notify.close()


def default_spec():
    """Two online nodes with CPUs: node 0 has 8 boot blocks (6 online Normal, 2 offline), node 1 four
    (2 online Movable, 2 offline). Blocks 0..7 and 16..19; 8..15 and 20+ are free for hot-add."""
    return (gentree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
            .node(0, cpus=[0, 1])
            .node(1, cpus=[2, 3])
            .blocks(0, 6, 0, state="online", zone="Normal")
            .blocks(6, 2, 0, state="offline", valid_zones="Normal Movable")
            .blocks(16, 2, 1, state="online", zone="Movable")
            .blocks(18, 2, 1, state="offline", valid_zones="Movable Normal")
            .to_dict())


@pytest.fixture
def hp(request):
    tmp = tempfile.mkdtemp(prefix="hotplugd-ev-%s-" % request.node.name[:40],
                           dir=os.environ.get("HOTPLUGD_TEST_TMPDIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None))
    h = Harness(request, tmp)
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
    finally:
        h.cleanup()
        rep = getattr(request.node, "rep_call", None)
        if rep is None or not rep.passed:
            print("\nkept the files of the failed test in %s (daemon stderr: %s)" % (tmp, h.stderr_path))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
