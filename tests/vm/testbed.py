#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""testbed.py — a real Debian kernel under QEMU (TCG) with hot-pluggable NUMA memory, driven over QMP.

Library and CLI (stdlib only, /usr/bin/python3). The guest boots the HOST's root file system,
shared read-only over 9p, under a tmpfs overlay, with systemd as PID 1; a project tree installed
with `meson install --destdir D` and caller-provided extra files are copied over the overlay by a
busybox initramfs before switch_root. Commands run in the guest through a virtio-serial port
served by guest_agent.py; memory is hot(un)plugged with QMP (pc-dimm on empty NUMA nodes).

Safety: nothing here writes to the host's /sys. The host root is exported with readonly=on and the
guest mounts its own proc/sys/dev over the exported ones before switch_root, so every sysfs path
a guest command touches is the guest kernel's.

    testbed.py boot-check [--destdir D | --build-dir B]     boot, print timings, shut down
    testbed.py shell [--cmd CMD] [--destdir D | --build-dir B]

Environment: HOTPLUGD_VM_CACHE (cache dir; default $XDG_CACHE_HOME/hotplugd-vm or
/var/cache/hotplugd-vm), HOTPLUGD_VM_KERNEL (kernel package, default: what linux-image-amd64
depends on), HOTPLUGD_VM_LOG_DIR (console logs; default $HOTPLUGD_BUILD_DIR/meson-logs/vm).
"""

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import glob
import gzip
import hashlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_PACKAGES = ["qemu-system-x86", "busybox-static", "kmod", "udev"]
KERNEL_META_PACKAGE = "linux-image-amd64"
# Loaded by the initramfs (with their dependencies, from modules.dep) before the root is mounted.
INITRAMFS_MODULES = ["virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay"]
AGENT_PORT = "hotplugd.cmd"
AGENT_GUEST_PATH = "/usr/local/lib/hotplugd-vm/guest_agent.py"
AGENT_UNIT = "hotplugd-vm-agent.service"
INITRAMFS_FORMAT = 3  # bump when the initramfs layout changes in a way the hash cannot see
CONSOLE_TAIL_LINES = 40

# Units a test guest does not need; masking them keeps a TCG boot short.
DEFAULT_MASKS = [
    "systemd-tmpfiles-setup.service", "systemd-tmpfiles-clean.timer", "timers.target",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "fstrim.timer", "man-db.timer", "e2scrub_reap.service", "getty.target", "getty@tty1.service",
    "serial-getty@ttyS0.service", "systemd-logind.service", "systemd-user-sessions.service",
    "postgresql.service", "systemd-timesyncd.service", "systemd-pstore.service",
    "systemd-networkd.service", "systemd-networkd.socket", "systemd-network-generator.service",
    "networking.service", "remote-fs.target", "systemd-journal-flush.service",
    "systemd-random-seed.service", "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "systemd-firstboot.service", "systemd-repart.service",
    "systemd-machine-id-commit.service", "systemd-ask-password-wall.path",
    "systemd-ask-password-console.path", "sys-fs-fuse-connections.mount",
    "systemd-pcrphase.service", "systemd-pcrphase-sysinit.service", "systemd-sysusers.service",
]


class TestbedError(Exception):
    """A failed test-bed step; the message names the step and carries the guest console tail."""


def log(msg):
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run(argv, step, check=True, timeout=900, **kw):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, **kw)
    except OSError as e:
        raise TestbedError(f"step '{step}': cannot run {argv[0]}: {e}") from None
    except subprocess.TimeoutExpired:
        raise TestbedError(f"step '{step}': {' '.join(argv)} did not finish within {timeout}s") from None
    if check and r.returncode != 0:
        raise TestbedError(f"step '{step}': {' '.join(argv)} exited with {r.returncode}\n"
                           f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


# ------------------------------------------------------------------------------------------------
# Assets: host packages, the Debian kernel, the initramfs


def default_cache_dir():
    if os.environ.get("HOTPLUGD_VM_CACHE"):
        return os.environ["HOTPLUGD_VM_CACHE"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "hotplugd-vm")
    return "/var/cache/hotplugd-vm"


def _dpkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=60)
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


def ensure_packages(pkgs=HOST_PACKAGES):
    """apt-get install whatever of pkgs is missing (idempotent: dpkg-query first)."""
    missing = [p for p in pkgs if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise TestbedError(f"step 'install host packages': {', '.join(missing)} missing and not "
                           f"root: run apt-get install --no-install-recommends {' '.join(missing)}")
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing
    r = _run(argv, "install host packages", check=False, env=env)
    if r.returncode != 0:
        _run(["apt-get", "update", "-q"], "apt-get update", env=env)
        _run(argv, "install host packages", env=env)
    still = [p for p in missing if not _dpkg_installed(p)]
    if still:
        raise TestbedError(f"step 'install host packages': still missing: {', '.join(still)}")


def kernel_package():
    if os.environ.get("HOTPLUGD_VM_KERNEL"):
        return os.environ["HOTPLUGD_VM_KERNEL"]
    r = _run(["apt-cache", "depends", KERNEL_META_PACKAGE], "find the kernel package", check=False)
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)", r.stdout)
    if not m:
        raise TestbedError(f"step 'find the kernel package': apt-cache depends {KERNEL_META_PACKAGE} "
                           f"names no linux-image-*-amd64 (rc {r.returncode}): {r.stdout}{r.stderr}")
    return m.group(1)


def ensure_kernel(cache_dir):
    """Returns (abi, tree): the kernel package unpacked (never installed) and depmod'ed."""
    pkg = kernel_package()
    abi = pkg[len("linux-image-"):]
    tree = os.path.join(cache_dir, f"kernel-{abi}")
    if os.path.exists(os.path.join(tree, ".complete")):
        return abi, tree
    log(f"fetching {pkg} into {tree}")
    tmp = tempfile.mkdtemp(prefix="kernel-", dir=cache_dir)
    try:
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg],
             f"apt-get download {pkg}", cwd=tmp)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if len(debs) != 1:
            raise TestbedError(f"step 'apt-get download {pkg}': expected one .deb, got {debs}")
        root = os.path.join(tmp, "root")
        _run(["dpkg-deb", "-x", debs[0], root], "unpack the kernel package")
        _run(["depmod", "-b", root, abi], "depmod the kernel's modules")
        for f in (f"boot/vmlinuz-{abi}", f"lib/modules/{abi}/modules.dep"):
            if not os.path.exists(os.path.join(root, f)):
                raise TestbedError(f"step 'unpack the kernel package': {f} missing in {pkg}")
        with open(os.path.join(root, ".complete"), "w") as f:
            f.write(pkg + "\n")
        if os.path.exists(tree):
            shutil.rmtree(tree)
        os.rename(root, tree)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return abi, tree


def module_closure(moddir, names):
    """Module files (relative to moddir) for names and their dependencies, dependencies first."""
    deps = {}
    by_name = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.strip().partition(":")
            deps[path] = rest.split()
            by_name[os.path.basename(path).split(".ko")[0].replace("-", "_")] = path
    order = []

    def visit(path):
        if path in order:
            return
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    for n in names:
        n = n.replace("-", "_")
        if n not in by_name:
            if os.path.exists(os.path.join(moddir, "modules.builtin")) and \
                    re.search(rf"/{re.escape(n)}\.ko", open(os.path.join(moddir, "modules.builtin")).read()):
                continue
            raise TestbedError(f"step 'build the initramfs': module {n} not found in {moddir}")
        visit(by_name[n])
    return order


INIT_SCRIPT = r"""#!/bin/busybox sh
# hotplugd VM test bed: mount the host root (9p, read-only) under a tmpfs overlay, copy the
# installed project and the extra files over it, and hand over to systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "hpvm-init: $*" > /dev/console; }
fail() { say "FAILED: $*"; sleep 1; poweroff -f; }
say "loading modules"
for m in @MODULES@; do insmod "/lib/modules/$m" || fail "insmod $m"; done
MODDIR= ; DESTDIR= ; EXTRA= ; INIT=/lib/systemd/systemd ; ABI=$(uname -r)
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hpvm.modules=*) MODDIR="${arg#hpvm.modules=}" ;;
        hpvm.destdir=1) DESTDIR=1 ;;
        hpvm.extra=1) EXTRA=1 ;;
        hpvm.init=*) INIT="${arg#hpvm.init=}" ;;
    esac
done
mkdir -p /host /rw /newroot /mnt/destdir /mnt/extra
# msize: fewer round trips for large reads (python, systemd binaries) under TCG.
P9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$P9,ro,cache=loose" hostroot /host || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"
# Copy a tree over the new root, one top-level entry at a time so that merged-/usr symlinks
# (/lib -> usr/lib, /sbin -> usr/sbin) in the new root are followed, not replaced.
merge() {
    for e in "$1"/* "$1"/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        n="${e##*/}"
        if [ -d "$e" ] && [ ! -L "$e" ]; then
            mkdir -p "/newroot/$n" && cp -a "$e"/. "/newroot/$n/" || fail "copy $e"
        else
            cp -a "$e" /newroot/ || fail "copy $e"
        fi
    done
}
if [ -n "$DESTDIR" ]; then
    mount -t 9p -o "$P9,ro" destdir /mnt/destdir || fail "mount destdir"
    merge /mnt/destdir
    umount /mnt/destdir
fi
if [ -n "$EXTRA" ]; then
    mount -t 9p -o "$P9,ro" extra /mnt/extra || fail "mount extra"
    merge /mnt/extra
    umount /mnt/extra
fi
if [ -n "$MODDIR" ]; then
    mkdir -p "/newroot/lib/modules/$ABI" || fail "mkdir modules"
    mount -o bind "/host$MODDIR" "/newroot/lib/modules/$ABI" || fail "bind modules"
fi
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "tmpfs /tmp"
# The host may be a container: its markers would make the guest's systemd ignore the kernel
# command line (it reads /proc/1/cmdline in containers) and skip udev.
rm -f /newroot/.dockerenv /newroot/run/.containerenv /newroot/run/systemd/container
# The guest's own proc/sys/dev replace the host's (read-only) ones before anything runs there.
for d in dev proc sys; do mount -o move "/$d" "/newroot/$d" || fail "move /$d"; done
exec switch_root /newroot "$INIT"
"""


def _cpio_newc(entries):
    """entries: (name, mode, data, rdev_major, rdev_minor); returns the archive bytes."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data, rmaj, rmin in entries + [("TRAILER!!!", 0, b"", 0, 0)]:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0))
        out.write(hdr.encode() + nb)
        out.write(b"\0" * (-(110 + len(nb)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
        ino += 1
    return out.getvalue()


def ensure_initramfs(cache_dir, abi, tree):
    moddir = os.path.join(tree, "lib/modules", abi)
    mods = module_closure(moddir, INITRAMFS_MODULES)
    busybox = shutil.which("busybox", path="/bin:/usr/bin") or "/bin/busybox"
    with open(busybox, "rb") as f:
        if b"ld-linux" in f.read(1 << 16):
            raise TestbedError(f"step 'build the initramfs': {busybox} is dynamically linked; "
                               f"install busybox-static")
    init = INIT_SCRIPT.replace("@MODULES@", " ".join(mods))
    h = hashlib.sha256(f"{INITRAMFS_FORMAT}\n{abi}\n{init}".encode())
    for f in [busybox] + [os.path.join(moddir, m) for m in mods]:
        with open(f, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    path = os.path.join(cache_dir, f"initramfs-{abi}-{h.hexdigest()[:16]}.img")
    if os.path.exists(path):
        return path
    log(f"building {path}")
    entries = []
    dirs = set()

    def add_dir(d):
        if d and d not in dirs:
            add_dir(os.path.dirname(d))
            dirs.add(d)
            entries.append((d, 0o040755, b"", 0, 0))

    for d in ("bin", "dev", "proc", "sys", "tmp"):
        add_dir(d)
    entries.append(("dev/console", 0o020600, b"", 5, 1))
    with open(busybox, "rb") as f:
        entries.append(("bin/busybox", 0o100755, f.read(), 0, 0))
    entries.append(("bin/sh", 0o120777, b"busybox", 0, 0))
    entries.append(("init", 0o100755, init.encode(), 0, 0))
    for m in mods:
        add_dir(os.path.dirname(f"lib/modules/{m}"))
        with open(os.path.join(moddir, m), "rb") as f:
            entries.append((f"lib/modules/{m}", 0o100644, f.read(), 0, 0))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gzip.compress(_cpio_newc(entries), compresslevel=6))
    os.rename(tmp, path)
    for old in glob.glob(os.path.join(cache_dir, f"initramfs-{abi}-*.img")):
        if old != path:
            os.unlink(old)
    return path


class Assets:
    def __init__(self, cache_dir, abi, kernel, initramfs, moddir):
        self.cache_dir, self.abi, self.kernel, self.initramfs, self.moddir = \
            cache_dir, abi, kernel, initramfs, moddir


def ensure_assets(cache_dir=None):
    """Host packages, the cached kernel and the cached initramfs; returns Assets."""
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    if any(c.isspace() for c in cache_dir):
        raise TestbedError(f"step 'prepare the cache': {cache_dir!r} contains white space")
    ensure_packages()
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        abi, tree = ensure_kernel(cache_dir)
        initramfs = ensure_initramfs(cache_dir, abi, tree)
    return Assets(cache_dir, abi, os.path.join(tree, "boot", f"vmlinuz-{abi}"), initramfs,
                  os.path.join(tree, "lib/modules", abi))


# ------------------------------------------------------------------------------------------------
# Process hygiene: no orphaned QEMU, ever

_live_vms = []
_handlers_installed = False


def _kill_all_vms():
    for vm in list(_live_vms):
        vm.kill()


def _on_signal(signum, frame):
    # QEMU first (that must happen whatever else goes wrong), then unwind so that context
    # managers remove their temporary directories.
    _kill_all_vms()
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    atexit.register(_kill_all_vms)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(s, _on_signal)
        except ValueError:  # not the main thread: atexit and PDEATHSIG still apply
            pass
    _handlers_installed = True


def _pdeathsig():
    # The kernel kills QEMU when this (the spawning) process dies, even by SIGKILL.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def reap_stale(cache_dir):
    """Kills QEMUs left by earlier runs whose owner died, identified by their pid files."""
    for rec in glob.glob(os.path.join(cache_dir, "run", "*.json")):
        try:
            with open(rec) as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        owner, qpid, rundir = info.get("owner"), info.get("qemu_pid"), info.get("rundir", "")
        if not qpid and rundir:  # QEMU's own -pidfile
            with contextlib.suppress(OSError, ValueError):
                qpid = int(open(os.path.join(rundir, "qemu.pid")).read())
        if owner and os.path.exists(f"/proc/{owner}") and owner != os.getpid():
            try:
                with open(f"/proc/{owner}/cmdline", "rb") as f:
                    if b"python" in f.read():
                        continue  # a live run
            except OSError:
                pass
        if qpid and rundir:
            try:
                with open(f"/proc/{qpid}/cmdline", "rb") as f:
                    cmd = f.read()
                if b"qemu-system" in cmd and rundir.encode() in cmd:
                    log(f"killing stale QEMU {qpid} from {rec}")
                    os.kill(qpid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        shutil.rmtree(rundir, ignore_errors=True) if rundir.startswith("/tmp/hpvm-") else None
        with contextlib.suppress(OSError):
            os.unlink(rec)


# ------------------------------------------------------------------------------------------------
# Channels


def _connect_unix(path, deadline, proc, what):
    while True:
        if proc.poll() is not None:
            raise ConnectionError(f"QEMU exited ({proc.returncode}) before {what} was ready")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} socket {path} never appeared")
            time.sleep(0.05)


class Result:
    def __init__(self, cmd, resp):
        self.cmd = cmd
        self.rc = resp["rc"]
        self.stdout = resp["stdout"]
        self.stderr = resp["stderr"]
        self.timed_out = resp.get("timed_out", False)
        self.duration = resp.get("duration", 0)

    @property
    def ok(self):
        return self.rc == 0

    def __repr__(self):
        return (f"Result(cmd={self.cmd!r}, rc={self.rc}, stdout={self.stdout[-1500:]!r}, "
                f"stderr={self.stderr[-1500:]!r})")


class Agent:
    """Host side of the virtio-serial command channel (see guest_agent.py for the protocol)."""

    def __init__(self, sock):
        self.sock = sock
        self.next_id = 1
        self.buf = b""  # survives timeouts: a frame cut by one is completed by the next read

    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def _recv(self, deadline, what):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    frame, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return json.loads(frame)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            r, _, _ = select.select([self.sock], [], [], min(left, 1.0))
            if r:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError(f"connection closed while waiting for {what}")
                self.buf += chunk

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        next_ping = 0
        while True:
            if time.monotonic() >= next_ping:
                self._send({"id": self.next_id, "ping": True})
                self.next_id += 1
                next_ping = time.monotonic() + 5
            try:
                msg = self._recv(min(deadline, time.monotonic() + 1), "the guest agent")
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if msg.get("hello") or msg.get("pong"):
                return msg

    def request(self, cmd, timeout, stdin=None):
        rid = self.next_id
        self.next_id += 1
        self._send({"id": rid, "cmd": cmd, "timeout": timeout, "stdin": stdin})
        # The guest enforces `timeout`; the host allows for a slow TCG guest on top.
        deadline = time.monotonic() + timeout + 30
        while True:
            msg = self._recv(deadline, f"the result of {cmd!r}")
            if msg.get("id") == rid:
                return msg
            # hello after an agent restart, pongs, late results of timed-out requests: skip


class QMP:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.events = []
        self.next_id = 1

    def _read_msg(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for QMP")
            r, _, _ = select.select([self.sock], [], [], min(left, 1.0))
            if r:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("QMP connection closed")
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def handshake(self, timeout=30):
        deadline = time.monotonic() + timeout
        greeting = self._read_msg(deadline)
        if "QMP" not in greeting:
            raise ConnectionError(f"unexpected QMP greeting {greeting}")
        self.execute("qmp_capabilities", timeout=timeout)

    def execute(self, cmd, args=None, timeout=30):
        """Returns the "return" value; raises QMPError on an "error" reply."""
        rid = f"t{self.next_id}"
        self.next_id += 1
        msg = {"execute": cmd, "id": rid}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_msg(deadline)
            if "event" in m:
                self.events.append(m)
            elif m.get("id") == rid:
                if "error" in m:
                    raise QMPError(cmd, m["error"])
                return m.get("return")

    def poll_events(self):
        while True:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r and b"\n" not in self.buf:
                return
            m = self._read_msg(time.monotonic() + 5)
            if "event" in m:
                self.events.append(m)

    def wait_event(self, names, pred=None, timeout=60):
        """Removes and returns the first event named in names (str or tuple) matching pred."""
        names = (names,) if isinstance(names, str) else tuple(names)
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] in names and (pred is None or pred(e)):
                    return self.events.pop(i)
            try:
                m = self._read_msg(deadline)
            except TimeoutError:
                seen = {}
                for e in self.events:
                    seen[e["event"]] = seen.get(e["event"], 0) + 1
                raise TimeoutError(f"no matching QMP event {'/'.join(names)} within {timeout}s; "
                                   f"unconsumed events: {seen}; last: {self.events[-3:]}") from None
            if "event" in m:
                self.events.append(m)


class QMPError(Exception):
    def __init__(self, cmd, error):
        super().__init__(f"QMP {cmd}: {error.get('class')}: {error.get('desc')}")
        self.error = error


# ------------------------------------------------------------------------------------------------
# The VM


def parse_size(s):
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"(\d+)([KMGT]?)", str(s).strip().upper())
    if not m:
        raise ValueError(f"bad size {s!r}")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def parse_cpulist(text):
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


# One guest round trip lists every memory block: "index|state|valid_zones|node,node,|firmware".
# valid_zones is read only once the block links to its node: a hot-added block exists (and its
# "add" uevent is out) before the kernel sets its nid, and on 6.1 reading valid_zones in that
# window dereferences NODE_DATA(NUMA_NO_NODE) (oops in zone_for_pfn_range). "-" means not read.
_BLOCKS_SH = r"""
for b in /sys/devices/system/memory/memory[0-9]*; do
  [ -d "$b" ] || continue
  i=${b##*memory}; read s < $b/state
  n=; for l in $b/node[0-9]*; do [ -e "$l" ] && n="$n${l##*node},"; done
  z=-; [ -n "$n" ] && { read z < $b/valid_zones 2>/dev/null || z=?; }
  fw=$( [ -e $b/firmware_node ] && cd $b/firmware_node && pwd -P ); fw=${fw##*/}
  echo "$i|$s|$z|$n|$fw"
done
"""

# ACPI memory devices: "name|status|block,block,"
_ACPI_MEM_SH = r"""
for d in /sys/bus/acpi/devices/PNP0C80:*; do
  [ -e "$d" ] || continue
  st=$(cat $d/status 2>/dev/null); bl=
  for p in $d/physical_node*; do
    [ -e "$p" ] || continue
    t=$(cd $p && pwd -P); t=${t##*/memory}; bl="$bl$t,"
  done
  echo "${d##*/}|$st|$bl"
done
"""


class VM:
    """One QEMU guest. Use as a context manager; kill() is always safe to call.

    destdir: a `meson install --destdir` tree copied over the guest's root before systemd starts.
    extra_files: {guest path: text | bytes | (text or bytes, mode)} copied the same way, after it.
    nodes: QEMU NUMA nodes; node 0 has the CPUs and `mem` of boot memory, the others are empty.
      QEMU gives only its LAST node an SRAT (hot-pluggable) entry: DIMMs plugged there land on
      the guest's empty node (guest node 1 with nodes=3), DIMMs plugged into the nodes between
      land on guest node 0. Always read the guest's numbering (dimm_guest_node()).
    slots/maxmem: DIMM slots and the memory ceiling (-m mem,slots=,maxmem=).
    masks: units masked on the kernel command line (default DEFAULT_MASKS); append: more
      kernel parameters; enable_units: /lib/systemd/system units to pull into multi-user.target.
    """

    def __init__(self, name="hotplugd-vm", destdir=None, extra_files=None, nodes=3, slots=8,
                 maxmem="8G", mem="1G", smp=2, cache_dir=None, masks=None, append=(),
                 log_dir=None, boot_timeout=240, enable_units=()):
        self.name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.destdir = os.path.abspath(destdir) if destdir else None
        self.extra_files = dict(extra_files or {})
        self.nodes, self.slots, self.maxmem, self.mem, self.smp = nodes, slots, maxmem, mem, smp
        self.cache_dir = os.path.abspath(cache_dir or default_cache_dir())
        self.masks = DEFAULT_MASKS if masks is None else masks
        self.append = list(append)
        self.enable_units = list(enable_units)
        self.boot_timeout = boot_timeout
        if log_dir is None:
            log_dir = os.environ.get("HOTPLUGD_VM_LOG_DIR")
        if log_dir is None and os.environ.get("HOTPLUGD_BUILD_DIR"):
            log_dir = os.path.join(os.environ["HOTPLUGD_BUILD_DIR"], "meson-logs", "vm")
        self.log_dir = os.path.abspath(log_dir or os.path.join(self.cache_dir, "logs"))
        self.console_log = os.path.join(self.log_dir, f"{self.name}-console.log")
        self.qemu_log = os.path.join(self.log_dir, f"{self.name}-qemu.log")
        self.proc = None
        self.rundir = None
        self.record = None
        self.agent = None
        self.qmp = None
        self.dimms = {}        # dimm id -> {"node": qemu node, "size": bytes, "mem": backend id}
        self.dimm_seq = 0
        self.timings = {}
        self._block_size = None

    # ---- failure reporting

    def console_tail(self, n=CONSOLE_TAIL_LINES):
        try:
            with open(self.console_log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no console log)"
        return "\n".join(lines[-n:])

    def error(self, step, msg):
        extra = ""
        if self.proc is not None and self.proc.poll() is not None:
            extra = f"\n(QEMU exited with {self.proc.returncode}; its log: {self.qemu_log})"
        return TestbedError(f"step '{step}' failed: {msg}{extra}\n"
                            f"--- last {CONSOLE_TAIL_LINES} lines of the guest console "
                            f"({self.console_log}) ---\n{self.console_tail()}")

    @contextlib.contextmanager
    def step(self, what):
        """Any exception inside becomes a TestbedError naming the step, with the console tail.
        Steps taking longer than a second are logged with their duration."""
        t0 = time.monotonic()
        try:
            yield
        except TestbedError:
            raise
        except Exception as e:
            raise self.error(what, f"{type(e).__name__}: {e}") from e
        if time.monotonic() - t0 >= 1:
            log(f"{self.name}: step '{what}' took {time.monotonic() - t0:.1f}s")

    # ---- life cycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.kill()
        return False

    def _write_extra_tree(self, root):
        files = {
            AGENT_GUEST_PATH: (open(os.path.join(HERE, "guest_agent.py")).read(), 0o755),
            f"/etc/systemd/system/{AGENT_UNIT}": (
                "[Unit]\nDescription=hotplugd VM test bed command agent\n"
                "DefaultDependencies=no\nAfter=systemd-journald.socket\n\n"
                f"[Service]\nExecStart=/usr/bin/python3 {AGENT_GUEST_PATH}\n"
                "Restart=always\nRestartSec=200ms\n", 0o644),
        }
        files.update(self.extra_files)
        for path, content in files.items():
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            dst = os.path.join(root, path.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
            os.chmod(dst, mode)
        for unit in [AGENT_UNIT] + self.enable_units:
            wants = os.path.join(root, "etc/systemd/system/sysinit.target.wants" if unit == AGENT_UNIT
                                 else "etc/systemd/system/multi-user.target.wants")
            os.makedirs(wants, exist_ok=True)
            os.symlink(f"/etc/systemd/system/{unit}" if unit == AGENT_UNIT else
                       f"/lib/systemd/system/{unit}", os.path.join(wants, unit))

    def qemu_argv(self, assets):
        cmdline = ["console=ttyS0", "loglevel=4", "panic=-1", "memhp_default_state=offline",
                   "systemd.unit=multi-user.target", "systemd.show_status=1",
                   "systemd.journald.forward_to_console=0", "random.trust_cpu=on",
                   f"hpvm.modules={assets.moddir}", "hpvm.extra=1"]
        if self.destdir:
            cmdline.append("hpvm.destdir=1")
        cmdline += [f"systemd.mask={m}" for m in self.masks] + self.append
        append = " ".join(cmdline)
        if len(append) > 2000:
            raise TestbedError(f"step 'build the QEMU command line': kernel command line too long "
                               f"({len(append)} > 2000 characters)")
        argv = ["qemu-system-x86_64", "-name", f"{self.name},process={self.name}",
                "-nodefaults", "-nographic", "-no-reboot", "-accel", "tcg", "-cpu", "max",
                "-m", f"{self.mem},slots={self.slots},maxmem={self.maxmem}", "-smp", str(self.smp),
                "-object", f"memory-backend-ram,id=m0,size={self.mem}",
                "-numa", f"node,nodeid=0,cpus=0-{self.smp - 1},memdev=m0"]
        for n in range(1, self.nodes):
            argv += ["-numa", f"node,nodeid={n}"]
        argv += ["-kernel", assets.kernel, "-initrd", assets.initramfs, "-append", append,
                 "-serial", f"file:{self.console_log}", "-monitor", "none",
                 "-qmp", f"unix:{self.rundir}/qmp.sock,server=on,wait=off",
                 "-pidfile", f"{self.rundir}/qemu.pid",
                 # multidevs=remap: the host root spans several file systems (/proc, /sys, /dev
                 # are mount points); without it their inode numbers collide in the guest's 9p
                 # cache and the guest's own mounts on them get mixed up.
                 "-fsdev", "local,id=r,path=/,security_model=none,readonly=on,multidevs=remap",
                 "-device", "virtio-9p-pci,fsdev=r,mount_tag=hostroot",
                 "-fsdev", f"local,id=x,path={self.rundir}/extra,security_model=none,readonly=on",
                 "-device", "virtio-9p-pci,fsdev=x,mount_tag=extra",
                 "-device", "virtio-serial-pci,id=vser",
                 "-chardev", f"socket,id=c0,path={self.rundir}/agent.sock,server=on,wait=off",
                 "-device", f"virtserialport,bus=vser.0,chardev=c0,name={AGENT_PORT}"]
        if self.destdir:
            argv += ["-fsdev", f"local,id=d,path={self.destdir},security_model=none,readonly=on",
                     "-device", "virtio-9p-pci,fsdev=d,mount_tag=destdir"]
        return argv

    def start(self):
        step = "boot the guest"
        t0 = time.monotonic()
        assets = ensure_assets(self.cache_dir)
        self.assets = assets
        self.timings["assets"] = time.monotonic() - t0
        _install_handlers()
        os.makedirs(os.path.join(self.cache_dir, "run"), exist_ok=True)
        reap_stale(self.cache_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        if self.destdir and not os.path.isdir(self.destdir):
            raise TestbedError(f"step '{step}': destdir {self.destdir} is not a directory")
        self.rundir = tempfile.mkdtemp(prefix="hpvm-", dir="/tmp")
        self._write_extra_tree(os.path.join(self.rundir, "extra"))
        for f in (self.console_log, self.qemu_log):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f)
        argv = self.qemu_argv(assets)
        with open(os.path.join(self.rundir, "argv.json"), "w") as f:
            json.dump(argv, f)
        t1 = time.monotonic()
        qlog = open(self.qemu_log, "wb")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                                         stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        except OSError as e:
            raise TestbedError(f"step '{step}': cannot start QEMU: {e}") from None
        finally:
            qlog.close()
        _live_vms.append(self)
        self.record = os.path.join(self.cache_dir, "run", f"{self.name}-{os.getpid()}.json")
        with open(self.record, "w") as f:
            json.dump({"owner": os.getpid(), "qemu_pid": self.proc.pid, "rundir": self.rundir}, f)
        try:
            deadline = t1 + self.boot_timeout
            with self.step("connect to QMP"):
                self.qmp = QMP(_connect_unix(f"{self.rundir}/qmp.sock", deadline, self.proc, "QMP"))
                self.qmp.handshake()
            with self.step("connect to the guest agent (boot)"):
                self.agent = Agent(_connect_unix(f"{self.rundir}/agent.sock", deadline, self.proc,
                                                 "the agent channel"))
                self._wait_agent(deadline)
            self.timings["agent_ready"] = time.monotonic() - t1
            with self.step("wait for systemd to finish booting"):
                r = self.run("systemctl is-system-running --wait", timeout=max(10, deadline - time.monotonic()),
                             check=False)
                state = r.stdout.strip()
                if state not in ("running", "degraded"):
                    raise RuntimeError(f"system state {state!r}: {r.stderr}")
                if state == "degraded":
                    failed = self.run("systemctl --failed --no-legend --plain", check=False).stdout
                    log(f"{self.name}: guest is degraded; failed units:\n{failed}")
            self.timings["boot"] = time.monotonic() - t1
            log(f"{self.name}: agent after {self.timings['agent_ready']:.1f}s, "
                f"booted after {self.timings['boot']:.1f}s")
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_agent(self, deadline):
        while True:
            if self.proc.poll() is not None:
                raise ConnectionError(f"QEMU exited with {self.proc.returncode} during boot")
            try:
                self.agent.wait_ready(min(5, max(0.1, deadline - time.monotonic())))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the guest agent did not answer within {self.boot_timeout}s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def shutdown(self, timeout=30):
        """Ends QEMU through QMP quit; kill() if it does not exit."""
        if self.alive() and self.qmp:
            with contextlib.suppress(Exception):
                self.qmp.execute("quit", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        for s in (self.agent and self.agent.sock, self.qmp and self.qmp.sock):
            if s:
                with contextlib.suppress(OSError):
                    s.close()
        if self.record:
            with contextlib.suppress(OSError):
                os.unlink(self.record)
            self.record = None
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None
        if self in _live_vms:
            _live_vms.remove(self)

    # ---- commands in the guest

    def run(self, cmd, timeout=60, check=True, stdin=None, step=None):
        """Runs a shell command in the guest; returns Result. check: raise unless rc == 0."""
        step = step or f"guest command {cmd[:120]!r}"
        if not self.alive():
            raise self.error(step, "QEMU is not running")
        try:
            resp = self.agent.request(cmd, timeout, stdin)
        except (TimeoutError, ConnectionError, OSError, ValueError) as e:
            raise self.error(step, f"command channel: {e}") from None
        r = Result(cmd, resp)
        if r.timed_out:
            raise self.error(step, f"timed out after {timeout}s in the guest; {r!r}")
        if check and r.rc != 0:
            raise self.error(step, f"exit status {r.rc}\nstdout: {r.stdout[-3000:]}\n"
                                   f"stderr: {r.stderr[-3000:]}")
        return r

    def sh(self, cmd, timeout=60):
        """run() with check, returning stripped stdout."""
        return self.run(cmd, timeout=timeout).stdout.strip()

    def write_file(self, path, content, mode=None):
        cmd = f"mkdir -p {shlex.quote(os.path.dirname(path))} && cat > {shlex.quote(path)}"
        if mode is not None:
            cmd += f" && chmod {mode:o} {shlex.quote(path)}"
        self.run(cmd, stdin=content, step=f"write {path} in the guest")

    def read_file(self, path):
        return self.run(f"cat {shlex.quote(path)}", step=f"read {path} in the guest").stdout

    def wait_guest(self, condition, timeout=60, what=None, interval=0.2):
        """Polls a shell condition inside the guest (one round trip) until it holds."""
        what = what or condition
        script = (f"end=$(( $(date +%s) + {int(timeout)} )); "
                  f"until {condition}; do [ $(date +%s) -ge $end ] && exit 1; sleep {interval}; done")
        r = self.run(f"sh -c {shlex.quote(script)}", timeout=timeout + 15, check=False,
                     step=f"wait for {what}")
        if r.rc != 0:
            raise self.error(f"wait for {what}", f"not true within {timeout}s: {condition}")

    def wait_for(self, fn, timeout=60, what="condition", interval=0.3):
        """Polls a host-side predicate (which may query the guest) until it returns truthy.
        Gives up at once if the guest kernel oopses meanwhile."""
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 5
        while True:
            last = fn()
            if last:
                return last
            now = time.monotonic()
            if now >= deadline:
                raise self.error(f"wait for {what}", f"not reached within {timeout}s")
            if now >= next_check:
                self.check_kernel_alive(f"wait for {what}")
                next_check = now + 5
            time.sleep(interval)

    def check_kernel_alive(self, step):
        """Raises if the guest kernel has oopsed (a waiting step would only time out later)."""
        r = self.run("dmesg | grep -m1 -A12 -E '(BUG:|Oops|general protection fault|Kernel panic)'",
                     check=False, step=f"{step}: check the guest kernel log")
        if r.stdout.strip():
            raise self.error(step, f"the guest kernel oopsed while waiting:\n{r.stdout}")

    # ---- guest memory state (always the guest's own numbering)

    def block_size(self):
        if self._block_size is None:
            self._block_size = int(self.sh("cat /sys/devices/system/memory/block_size_bytes"), 16)
        return self._block_size

    def blocks(self):
        """{index: {"state", "valid_zones": [...], "nodes": [...], "firmware_node"}}"""
        out = {}
        for line in self.sh(_BLOCKS_SH).splitlines():
            i, s, z, n, fw = line.split("|")
            out[int(i)] = {"state": s, "valid_zones": [] if z == "-" else z.split(),
                           "nodes": [int(x) for x in n.split(",") if x], "firmware_node": fw or None}
        return out

    def acpi_memory_devices(self):
        """{"PNP0C80:XX": {"status": int, "blocks": [...]}} for the ACPI memory devices."""
        out = {}
        for line in self.sh(_ACPI_MEM_SH).splitlines():
            name, st, bl = line.split("|")
            out[name] = {"status": int(st) if st.strip() else None,
                         "blocks": sorted(int(x) for x in bl.split(",") if x)}
        return out

    def node_list(self, which="online"):
        """Nodes in /sys/devices/system/node/<which> (online, has_memory, possible, has_cpu…)."""
        return parse_cpulist(self.sh(f"cat /sys/devices/system/node/{which}"))

    def set_block_state(self, index, state, check=True):
        """Writes state (online, online_movable, online_kernel, offline) to memoryN/state."""
        # /bin/echo, not the shell's builtin: dash reports every failed write as "I/O error",
        # coreutils names the errno ("write error: Device or resource busy").
        path = f"/sys/devices/system/memory/memory{index}/state"
        return self.run(f"/bin/echo {shlex.quote(state)} > {path}", timeout=120, check=check,
                        step=f"write {state} to memory{index}")

    def eject(self, device, check=True):
        """Guest-initiated removal: writes 1 to the PNP0C80 device's eject (asynchronous)."""
        return self.run(f"/bin/echo 1 > /sys/bus/acpi/devices/{device}/eject", check=check,
                        step=f"eject {device}")

    def kernel_problems(self):
        """Oopses, BUGs and WARNINGs in the guest's kernel log (with 25 lines of context)."""
        text = self.run("dmesg", check=False, step="read the guest kernel log").stdout
        lines = text.splitlines()
        out = []
        for i, line in enumerate(lines):
            if re.search(r"\b(BUG:|Oops|WARNING:|general protection fault|Kernel panic)", line):
                out.append("\n".join(lines[i:i + 25]))
        return out

    # ---- QMP: memory devices

    def plug_dimm(self, node, size="256M", wait_blocks=True, timeout=120):
        """Hot-plugs a pc-dimm into QEMU NUMA node `node`; returns its id. With wait_blocks, waits
        until the guest has all of its memory blocks (found via the DIMM's address)."""
        self.dimm_seq += 1
        did, mid = f"dimm{self.dimm_seq}", f"mem{self.dimm_seq}"
        size_b = parse_size(size)
        with self.step(f"plug {did} ({size}) into QEMU node {node}"):
            self.qmp.execute("object-add", {"qom-type": "memory-backend-ram", "id": mid,
                                            "size": size_b})
            self.qmp.execute("device_add", {"driver": "pc-dimm", "id": did, "memdev": mid,
                                            "node": node})
            slot = self.memory_devices()[did]["slot"]
            self.dimms[did] = {"node": node, "size": size_b, "mem": mid, "slot": slot}
            # _OST events of an earlier DIMM in this slot must not be taken for this one's.
            self.qmp.poll_events()
            self.qmp.events = [e for e in self.qmp.events if not (
                e["event"] == "ACPI_DEVICE_OST" and
                e.get("data", {}).get("info", {}).get("slot") == str(slot))]
        if wait_blocks:
            self.wait_dimm_blocks(did, timeout)
        return did

    def wait_dimm_blocks(self, did, timeout=120):
        """Waits until every block of the DIMM exists and links to its node."""
        conds = [f"ls -d /sys/devices/system/memory/memory{b}/node[0-9]* >/dev/null 2>&1"
                 for b in self.dimm_blocks(did)]
        self.wait_guest(" && ".join(conds), timeout=timeout, what=f"the blocks of {did} in the guest")

    def memory_devices(self):
        """{dimm id: {"addr", "size", "node", "slot"}} from query-memory-devices."""
        out = {}
        for d in self.qmp.execute("query-memory-devices"):
            data = d.get("data", {})
            if data.get("id"):
                out[data["id"]] = data
        return out

    def dimm_blocks(self, did):
        """Guest memory block indices a DIMM covers."""
        info = self.dimms.get(did)
        if info and "addr" in info:
            d = info
        else:
            d = self.memory_devices()[did]
            if info:
                info["addr"] = d["addr"]
        bs = self.block_size()
        return list(range(d["addr"] // bs, (d["addr"] + d["size"]) // bs))

    def dimm_guest_node(self, did):
        blocks = self.blocks()
        nodes = {n for b in self.dimm_blocks(did) for n in blocks.get(b, {}).get("nodes", [])}
        if len(nodes) != 1:
            raise self.error(f"find the guest node of {did}", f"blocks link to nodes {nodes}")
        return nodes.pop()

    def dimm_acpi_device(self, did):
        want = set(self.dimm_blocks(did))
        for name, d in self.acpi_memory_devices().items():
            if want & set(d["blocks"]):
                return name
        raise self.error(f"find the ACPI device of {did}", f"no PNP0C80 links to blocks {sorted(want)}")

    def _ost_failed(self, did):
        """Predicate for the QMP events that end an unplug of did: DEVICE_DELETED, or a failure
        (MEM_UNPLUG_ERROR, or an _OST eject status other than success/in progress)."""
        slot = str(self.dimms.get(did, {}).get("slot"))

        def pred(e):
            data = e.get("data", {})
            if e["event"] == "DEVICE_DELETED":
                return data.get("device") == did
            if e["event"] == "ACPI_DEVICE_OST":
                info = data.get("info", {})
                return (info.get("device") == did or info.get("slot") == slot) and \
                    info.get("source") in (3, 0x103) and info.get("status") not in (0, 0x84)
            return data.get("device") in (did, None)
        return pred

    def _wait_unplugged(self, did, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                e = self.qmp.wait_event(("DEVICE_DELETED", "MEM_UNPLUG_ERROR", "DEVICE_UNPLUG_GUEST_ERROR",
                                         "ACPI_DEVICE_OST"), self._ost_failed(did),
                                        timeout=max(0.1, min(5, deadline - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                self.check_kernel_alive(f"wait for the removal of {did}")
        if e["event"] != "DEVICE_DELETED":
            raise RuntimeError(f"{e['event']}: {e.get('data')}")

    def unplug_dimm(self, did, timeout=120, drop_backend=True):
        """Host-initiated removal (device_del): the guest gets an eject request and its kernel
        offlines and removes the memory itself. Raises on an unplug error or a timeout."""
        with self.step(f"unplug {did} (device_del)"):
            self.qmp.execute("device_del", {"id": did})
            self._wait_unplugged(did, timeout)
        self.forget_dimm(did, drop_backend)

    def wait_dimm_deleted(self, did, timeout=120, drop_backend=True):
        """After a guest-initiated eject: waits for QEMU's DEVICE_DELETED."""
        with self.step(f"wait for QEMU to delete {did}"):
            self._wait_unplugged(did, timeout)
        self.forget_dimm(did, drop_backend)

    def wait_event(self, names, pred=None, timeout=60):
        """Waits for a QMP event (e.g. DEVICE_DELETED, ACPI_DEVICE_OST, MEM_UNPLUG_ERROR)."""
        with self.step(f"wait for QMP {names}"):
            return self.qmp.wait_event(names, pred, timeout)

    def forget_dimm(self, did, drop_backend=True):
        info = self.dimms.pop(did, None)
        if info and drop_backend:
            with self.step(f"delete the backend of {did}"):
                self.qmp.execute("object-del", {"id": info["mem"]})

    # ---- fault injection (memory-notifier-error-inject)

    FI_DIR = "/sys/kernel/debug/notifier-error-inject/memory/actions"

    def arm_memory_notifier_error(self, action, errno=-16):
        """Makes the guest's memory notifier chain fail `action` (MEM_GOING_OFFLINE,
        MEM_GOING_ONLINE) with errno (negative). disarm_…() restores."""
        if action not in ("MEM_GOING_OFFLINE", "MEM_GOING_ONLINE"):
            raise ValueError(action)
        self.run("mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug; "
                 "modprobe memory-notifier-error-inject && "
                 f"/bin/echo {int(errno)} > {self.FI_DIR}/{action}/error && "
                 f"cat {self.FI_DIR}/{action}/error", step=f"arm {action}={errno}")
        got = self.sh(f"cat {self.FI_DIR}/{action}/error")
        if int(got) != int(errno):
            raise self.error(f"arm {action}", f"reads back {got}, wanted {errno}")

    def disarm_memory_notifier_error(self, action):
        self.run(f"/bin/echo 0 > {self.FI_DIR}/{action}/error", step=f"disarm {action}")

    # ---- virtio-mem (optional; one device per call)

    def plug_virtio_mem(self, node, size="1G", requested="256M"):
        self.dimm_seq += 1
        did, mid = f"vmem{self.dimm_seq}", f"vmemb{self.dimm_seq}"
        with self.step(f"plug virtio-mem {did} into QEMU node {node}"):
            self.qmp.execute("object-add", {"qom-type": "memory-backend-ram", "id": mid,
                                            "size": parse_size(size)})
            self.qmp.execute("device_add", {"driver": "virtio-mem-pci", "id": did, "memdev": mid,
                                            "node": node, "requested-size": parse_size(requested)})
        return did

    def resize_virtio_mem(self, did, requested):
        with self.step(f"resize {did} to {requested}"):
            self.qmp.execute("qom-set", {"path": f"/machine/peripheral/{did}",
                                         "property": "requested-size", "value": parse_size(requested)})


# ------------------------------------------------------------------------------------------------
# CLI


def _destdir_from_args(args, stack):
    if args.destdir:
        return args.destdir
    if args.build_dir:
        d = stack.enter_context(tempfile.TemporaryDirectory(prefix="hpvm-destdir-"))
        _run(["meson", "install", "-C", args.build_dir, "--destdir", d, "--quiet"], "meson install")
        return d
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("shell", "boot-check"):
        s = sub.add_parser(verb)
        s.add_argument("--destdir", help="a `meson install --destdir` tree to copy into the guest")
        s.add_argument("--build-dir", help="meson build dir to install into a temporary destdir")
        s.add_argument("--nodes", type=int, default=3)
        s.add_argument("--slots", type=int, default=8)
        s.add_argument("--maxmem", default="8G")
        s.add_argument("--cache-dir")
        if verb == "shell":
            s.add_argument("--cmd", help="run this one command, print its output, exit with its status")
            s.add_argument("--timeout", type=float, default=300)
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        destdir = _destdir_from_args(args, stack)
        vm = stack.enter_context(VM(name=f"cli-{args.verb}", destdir=destdir, nodes=args.nodes,
                                    slots=args.slots, maxmem=args.maxmem, cache_dir=args.cache_dir))
        if args.verb == "boot-check":
            r = vm.run("uname -r; cat /sys/devices/system/node/online; systemctl is-system-running")
            print(r.stdout, end="")
            print(f"assets ready in {vm.timings['assets']:.1f}s; command channel ready "
                  f"{vm.timings['agent_ready']:.1f}s after QEMU start; system booted after "
                  f"{vm.timings['boot']:.1f}s")
            t = time.monotonic()
            vm.shutdown()
            print(f"shut down in {time.monotonic() - t:.1f}s")
            return 0
        if args.cmd:
            r = vm.run(args.cmd, timeout=args.timeout, check=False)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            return r.rc
        print(f"guest ready (boot {vm.timings['boot']:.1f}s). Commands run via /bin/sh in the guest; "
              f"'qmp <cmd> [json]' talks to QEMU; EOF or 'exit' quits.", file=sys.stderr)
        while True:
            try:
                line = input("guest# ")
            except EOFError:
                break
            if line.strip() in ("exit", "quit"):
                break
            if line.startswith("qmp "):
                cmd, _, a = line[4:].strip().partition(" ")
                try:
                    print(json.dumps(vm.qmp.execute(cmd, json.loads(a) if a else None), indent=1))
                except (QMPError, ValueError) as e:
                    print(e)
                continue
            if line.strip():
                r = vm.run(line, timeout=args.timeout, check=False)
                sys.stdout.write(r.stdout)
                sys.stdout.write(r.stderr)
                if r.rc:
                    print(f"[rc {r.rc}]")
        vm.shutdown()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TestbedError as e:
        print(f"testbed: {e}", file=sys.stderr)
        sys.exit(1)
