# SPDX-License-Identifier: LGPL-2.1-or-later
"""busfixture.py — a private system bus, dbusmock's polkitd, the built hotplugd on a generated tree,
and the built hotplugctl run as an unprivileged user. Missing prerequisites fail, never skip."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HOTPLUGD_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BUILD_DIR = os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))

import gentree  # noqa: E402

TEST_USER = "hotplugd-test"
BUS_NAME = "org.hotplugd.Hotplug1"
ACTIONS = ["online-blocks", "offline-blocks", "set-policy", "quarantine", "retire-node", "cancel-job", "reload"]

# Three nodes: 0 and 1 with CPUs and boot memory, 2 without CPUs holding two ACPI DIMMs in Movable
# (the node that passes the retire preflight). The daemon runs with Policy=offline, so it writes
# to the tree only when asked to.
DEFAULT_SPEC = {
    "block_size": "128M",
    "auto_online_blocks": "offline",
    "nodes": [{"id": 0, "cpus": [0, 1]}, {"id": 1, "cpus": [2, 3]}, {"id": 2, "cpus": []}],
    "blocks": [
        {"start": 0, "count": 1, "node": 0, "state": "online", "zone": "none"},
        {"start": 1, "count": 7, "node": 0, "state": "online", "zone": "DMA32"},
        {"start": 32, "count": 8, "node": 1, "state": "online", "zone": "Normal"},
        {"start": 40, "count": 4, "node": 1, "state": "online", "zone": "Movable"},
        {"start": 44, "count": 4, "node": 1, "state": "offline", "valid_zones": "Movable Normal"},
        {"start": 64, "count": 16, "node": 2, "state": "online", "zone": "Movable", "owner": "acpi", "device": "PNP0C80:00"},
        {"start": 80, "count": 4, "node": 2, "state": "offline", "valid_zones": "Movable", "owner": "acpi",
         "device": "PNP0C80:01"},
    ],
}


def need(cond, what):
    assert cond, "prerequisite missing: " + what


def binary(*parts):
    path = os.path.join(BUILD_DIR, *parts)
    need(os.path.isfile(path) and os.access(path, os.X_OK),
         "%s is not built (HOTPLUGD_BUILD_DIR=%r): run ninja first" % (path, BUILD_DIR))
    return path


def ensure_test_user():
    need(os.geteuid() == 0, "the bus integration tests run as root (they start a system bus and drop to %s)" % TEST_USER)
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True)
        return pwd.getpwnam(TEST_USER)


class Stack:
    """One private bus with polkit (mocked) and hotplugd on its own tree."""

    def __init__(self, name, spec=None, start_daemon=True, big=None):
        need(shutil.which("dbus-daemon"), "dbus-daemon (apt-get install dbus)")
        need(shutil.which("setpriv"), "setpriv (util-linux)")
        try:
            import dbus  # noqa: F401
            import dbusmock  # noqa: F401
        except ImportError as e:
            raise AssertionError("prerequisite missing: python3-dbusmock under /usr/bin/python3 (%s)" % e)
        self.user = ensure_test_user()
        self.hotplugd = binary("daemon", "hotplugd")
        self.hotplugctl = binary("client", "hotplugctl")
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="hotplugd-bus-%s-" % name, dir=base)
        os.chmod(self.dir, 0o755)   # the unprivileged client must reach the bus socket
        self.root = os.path.join(self.dir, "root")
        self.procs = []
        self.daemon = None
        self.daemon_log = os.path.join(self.dir, "hotplugd.log")
        t = time.monotonic()
        if big:
            gentree.generate(self.root, gentree.simple_spec(big, n_nodes=8))
        else:
            gentree.generate(self.root, spec or DEFAULT_SPEC)
        self.generate_seconds = time.monotonic() - t
        os.makedirs(os.path.join(self.root, "etc/hotplugd"), exist_ok=True)
        self.write_config("[Online]\nPolicy=offline\n")
        self._start_bus()
        self._start_polkit()
        if start_daemon:
            self.start_daemon()

    # -- infrastructure ----------------------------------------------------------------------

    def _start_bus(self):
        conf = os.path.join(self.dir, "bus.conf")
        with open(conf, "w") as f:
            f.write("""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <include>%s/dbus/org.hotplugd.Hotplug1.conf</include>
</busconfig>
""" % (self.dir, SOURCE_DIR))
        p = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--print-address=1"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.address = p.stdout.readline().decode().strip()
        need(self.address, "dbus-daemon printed no address")
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address, LANG="C.UTF-8", LC_ALL="C.UTF-8",
                        SYSTEMD_PAGER="", PAGER="cat")
        import dbus
        self.bus = dbus.bus.BusConnection(self.address)

    def _start_polkit(self):
        p = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
                             env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.wait_name("org.freedesktop.PolicyKit1", p)
        self.polkit = self.bus.get_object("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")
        self.allow([])

    def wait_name(self, name, proc=None, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.bus.name_has_owner(name):
                return
            if proc is not None and proc.poll() is not None:
                raise AssertionError("%s exited with %s before owning %s" % (proc.args, proc.returncode, name))
            time.sleep(0.02)
        raise AssertionError("%s did not appear on the bus within %ss" % (name, timeout))

    def allow(self, actions):
        """polkit says yes to these actions (short names like 'online-blocks'), no to all others."""
        self.polkit.SetAllowed(["org.hotplugd.hotplug1." + a for a in actions],
                               dbus_interface="org.freedesktop.DBus.Mock")

    def start_daemon(self, extra=()):
        notify = os.path.join(self.dir, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        # Never the host's /var/lib/hotplugd or /run/hotplugd.
        env = dict(self.env, NOTIFY_SOCKET=notify, STATE_DIRECTORY=os.path.join(self.dir, "state"),
                   RUNTIME_DIRECTORY=os.path.join(self.dir, "run"))
        os.makedirs(env["RUNTIME_DIRECTORY"], exist_ok=True)
        self.daemon_start = time.monotonic()
        log = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen([self.hotplugd, "--root", self.root, *extra], env=env,
                                       stdout=log, stderr=log)
        self.procs.append(self.daemon)
        sock.settimeout(0.2)
        self.notifications = []
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                raise AssertionError("hotplugd exited with %d:\n%s" % (self.daemon.returncode, self.log()))
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.notifications.append(msg)
            if "READY=1" in msg.split("\n"):
                break
        else:
            raise AssertionError("hotplugd sent no READY=1:\n" + self.log())
        self.ready_seconds = time.monotonic() - self.daemon_start
        sock.close()
        # READY=1 comes after the name was acquired: it must be there now.
        assert self.bus.name_has_owner(BUS_NAME), "READY=1 before %s was owned" % BUS_NAME

    def log(self):
        try:
            with open(self.daemon_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []

    def cleanup(self, keep=False):
        self.stop()
        if keep:
            print("kept %s (daemon log: %s)" % (self.dir, self.daemon_log))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the tree ----------------------------------------------------------------------------

    def write_config(self, text):
        with open(os.path.join(self.root, "etc/hotplugd/hotplugd.conf"), "w") as f:
            f.write(text)

    def state(self, block):
        with open(os.path.join(self.root, "sys/devices/system/memory/memory%d/state" % block), "rb") as f:
            return f.read()

    def snapshot(self):
        """Every byte the daemon could have written: block states and auto_online_blocks."""
        mem = os.path.join(self.root, "sys/devices/system/memory")
        out = {}
        for name in sorted(os.listdir(mem)):
            path = os.path.join(mem, name, "state") if name.startswith("memory") else None
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    out[name] = f.read()
        with open(os.path.join(mem, "auto_online_blocks"), "rb") as f:
            out["auto_online_blocks"] = f.read()
        return out

    # -- the client --------------------------------------------------------------------------

    def ctl(self, *args, root=False, timeout=120, echo=True):
        """Runs hotplugctl (as the unprivileged test user unless root=True); returns CompletedProcess."""
        cmd = [self.hotplugctl, *args]
        if not root:
            cmd = ["setpriv", "--reuid", str(self.user.pw_uid), "--regid", str(self.user.pw_gid),
                   "--clear-groups", "--"] + cmd
        p = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        p.out = p.stdout.decode()
        p.err = p.stderr.decode()
        if echo:
            print("$ hotplugctl %s%s -> %d\n%s%s" % (" ".join(args), "  (root)" if root else "", p.returncode, p.out,
                                                      p.err))
        return p

    def ctl_json(self, *args, **kw):
        p = self.ctl("--json=short", *args, **kw)
        assert p.returncode == 0, p.err
        return json.loads(p.out)

    def props(self, path, interface):
        import dbus
        obj = self.bus.get_object(BUS_NAME, path)
        return obj.GetAll(interface, dbus_interface=dbus.PROPERTIES_IFACE)
