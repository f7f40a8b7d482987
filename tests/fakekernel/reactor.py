# SPDX-License-Identifier: LGPL-2.1-or-later
"""reactor.py — the kernel's asynchronous half for a generated tree, next to a daemon that runs with
libfakekernel.so preloaded.

libfakekernel.so does what state_store() does inside the write(2) (state, valid_zones, online) and logs
every write to ROOT/.fakekernel/log. The reactor follows that log and the tree, every 5 ms, and does
the rest, in the kernel's order (kernel-abi.md §3, §3.4, §6):

* after a state write that took (write-end ... 0): zoneinfo, node masks and meminfo are regenerated
  (gentree.write_zoneinfo), then the memory block's `online` or `offline` uevent is sent into the
  daemon's network namespace;
* after "1" was written to sys/bus/acpi/devices/PNP0C80:XX/eject (the file is read and emptied again):
  if every block of the device (its physical_node* links) is offline, the blocks are removed
  (gentree.remove_block), the device's status becomes 0 and their `remove` uevents are sent; then each
  node they belonged to goes offline if the kernel's rule lets it (it spans no pages, no block carries
  its id, no CPU is present: try_offline_node()), which removes it (gentree.remove_node) and sends its
  `remove` uevent. If a block is still online the eject fails: nothing changes, the failure is
  recorded in `eject_failures` (the kernel would log "Offline failed.").

Ejects can be made slow or never complete: Reactor.eject_delay (seconds; None = never), or the control
file ROOT/.fakekernel/eject ("never", or a delay in milliseconds), which wins when present. Pending ejects
run once the delay is over (lowering the delay or deleting the file lets them through).

Use (what tests/integration/retire/conftest.py does):
    r = Reactor(root, inject=lambda lines: ...)   # inject: sends "ACTION DEVPATH SUBSYSTEM" lines
    r.start(); ...; r.sync(); ...; r.stop(); assert not r.errors
Stand-alone: /usr/bin/python3 reactor.py ROOT --netns /proc/PID/ns/net --injector PATH
(the injector is uevent-inject from tests/tools).

Every tree write the reactor makes (through gentree) replaces the file by rename(2), so the daemon never
reads a half-written zoneinfo or node mask.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import traceback
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: gentree.py

import gentree  # noqa: E402  (tests/gentree.py -> tests/gen-tree.py)

CONTROL = ".fakekernel"
MEM = "sys/devices/system/memory"
NODE = "sys/devices/system/node"
ACPI_DEVICES = "sys/bus/acpi/devices"
POLL = 0.005

# ---- atomic tree writes --------------------------------------------------------------------------

_atomic_roots = {}       # root (with a trailing /) -> its control tmp directory
_plain_write = gentree._write


def _atomic_write(path, text, mode=0o644):
    """gentree._write, but through a temporary file and rename(2) for trees a reactor serves."""
    apath = os.path.abspath(path)
    tmpdir = next((t for r, t in _atomic_roots.items() if apath.startswith(r)), None)
    if tmpdir is None:
        return _plain_write(path, text, mode)
    os.makedirs(os.path.dirname(apath), exist_ok=True)
    tmp = os.path.join(tmpdir, "reactor-%d-%d" % (os.getpid(), threading.get_ident()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        if text:
            os.write(fd, text.encode() if isinstance(text, str) else text)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.rename(tmp, apath)


gentree._write = _atomic_write


def prepare(root):
    """Creates ROOT/.fakekernel/{tmp,journals} (the shim and the reactor need them); returns the path."""
    ctl = os.path.join(root, CONTROL)
    for d in ("tmp", "journals"):
        os.makedirs(os.path.join(ctl, d), exist_ok=True)
    return ctl


# ---- reading the tree and the shim's log ---------------------------------------------------------

def parse_log_line(line):
    """'T PID TID KIND ARGS...' -> dict(t, pid, tid, kind, args) or None."""
    parts = line.split()
    if len(parts) < 4:
        return None
    try:
        return {"t": float(parts[0]), "pid": int(parts[1]), "tid": int(parts[2]), "kind": parts[3],
                "args": parts[4:], "line": line}
    except ValueError:
        return None


def read_log(root):
    """Every event of the shim's log, in order."""
    try:
        with open(os.path.join(root, CONTROL, "log")) as f:
            return [e for e in (parse_log_line(l) for l in f) if e]
    except FileNotFoundError:
        return []


def _read(path):
    with open(path) as f:
        return f.read()


def zone_spans(root):
    """{nid: {zone: spanned}} from proc/zoneinfo."""
    out = {}
    nid = zone = None
    try:
        text = _read(os.path.join(root, "proc/zoneinfo"))
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if m:
            nid, zone = int(m.group(1)), m.group(2)
            continue
        m = re.match(r"\s+spanned\s+(\d+)", line)
        if m and nid is not None:
            out.setdefault(nid, {})[zone] = int(m.group(1))
    return out


def _links(d, prefix):
    try:
        return sorted(int(e[len(prefix):]) for e in os.listdir(d) if e.startswith(prefix) and e[len(prefix):].isdigit())
    except FileNotFoundError:
        return []


def node_offline_blockers(root, nid):
    """The kernel's try_offline_node() rule for nid, as the list of what keeps it online."""
    d = os.path.join(root, NODE, "node%d" % nid)
    why = []
    if any(v for v in zone_spans(root).get(nid, {}).values()):
        why.append("spans-pages")
    blocks = _links(d, "memory") + [i for i in _links(os.path.join(root, MEM), "memory")
                                    if os.path.lexists(os.path.join(root, MEM, "memory%d" % i, "node%d" % nid))]
    if blocks:
        why.append("has-blocks")
    if _links(d, "cpu"):
        why.append("has-cpus")
    return why


def acpi_device_blocks(root, device):
    """Block indexes bound to an ACPI device (physical_node, physical_node1, ...)."""
    d = os.path.realpath(os.path.join(root, ACPI_DEVICES, device))
    out = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for e in names:
        if re.fullmatch(r"physical_node\d*", e):
            m = re.search(r"memory(\d+)$", os.readlink(os.path.join(d, e)))
            if m:
                out.append(int(m.group(1)))
    return sorted(out)


# ---- the reactor ---------------------------------------------------------------------------------

class Reactor:
    def __init__(self, root, inject, eject_delay=0.0, poll=POLL):
        self.root = os.path.abspath(root)
        self.ctl = prepare(self.root)
        _atomic_roots[self.root.rstrip("/") + "/"] = os.path.join(self.ctl, "tmp")
        self.inject = inject
        self.eject_delay = eject_delay
        self.poll = poll
        self.errors = []            # exceptions raised in the thread (a test fails on any)
        self.injected = []          # every event line sent, in order
        self.eject_failures = []    # (device, reason)
        self.ejected = []           # (device, [blocks], [nodes removed])
        self.pending_ejects = []    # [device, requested_at]
        self._offset = 0
        self._lock = threading.Lock()
        self._rounds = 0
        self._round_cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = None
        self._log_path = os.path.join(self.ctl, "log")
        self._journal = os.path.join(self.ctl, "reactor.log")

    # ---- control -----------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="fakekernel-reactor", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        _atomic_roots.pop(self.root.rstrip("/") + "/", None)

    def sync(self, timeout=10.0, ejects=False):
        """Waits until everything logged or written so far has been handled (two full rounds after the
        call); with ejects=True also until no eject is pending."""
        deadline = time.monotonic() + timeout
        with self._round_cond:
            target = self._rounds + 2
            while self._rounds < target or (ejects and self.pending_ejects):
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise AssertionError("the fake kernel's reactor did not settle within %.0f s (pending ejects: %r, "
                                         "errors: %r)" % (timeout, self.pending_ejects, self.errors))
                self._round_cond.wait(min(left, 0.05))

    def note(self, text):
        with open(self._journal, "a") as f:
            f.write("%.6f %s\n" % (time.monotonic(), text))

    # ---- the loop ----------------------------------------------------------------------------

    def _run(self):
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as e:  # noqa: BLE001 - recorded, the test fails on it
                where = traceback.extract_tb(e.__traceback__)[-1]
                self.errors.append("%r at %s:%d" % (e, os.path.basename(where.filename), where.lineno))
                self.note("error %r" % (e,))
            with self._round_cond:
                self._rounds += 1
                self._round_cond.notify_all()
            self._stop.wait(self.poll)

    def _round(self):
        self._state_changes()
        if self._poll_ejects():
            # An eject is written after the writes that drained the device: their uevents go first,
            # as the kernel sends them before those writes return.
            self._state_changes()
        self._run_due_ejects()

    def _state_changes(self):
        events = []
        for e in self._new_log_events():
            if e["kind"] == "write-end" and len(e["args"]) == 3 and e["args"][2] == "0":
                m = re.fullmatch(r"memory(\d+)", e["args"][0])
                if m:
                    action = "offline" if e["args"][1] == "offline" else "online"
                    events.append("%s /devices/system/memory/memory%s memory" % (action, m.group(1)))
        if events:
            # The kernel updates spans and masks before device_offline() announces the change.
            gentree.write_zoneinfo(self.root)
            self._send(events)

    def _new_log_events(self):
        try:
            with open(self._log_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        return [e for e in (parse_log_line(l) for l in data[:end].decode(errors="replace").split("\n")) if e]

    def _send(self, lines):
        self.injected.extend(lines)
        self.note("inject " + "; ".join(lines))
        self.inject(lines)

    # ---- ACPI eject --------------------------------------------------------------------------

    def _delay(self):
        try:
            v = _read(os.path.join(self.ctl, "eject")).strip()
        except FileNotFoundError:
            return self.eject_delay
        if v == "never":
            return None
        return int(v) / 1000.0

    def _poll_ejects(self):
        """Picks up eject requests (and empties the files again); returns how many."""
        d = os.path.join(self.root, ACPI_DEVICES)
        found = 0
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(d, name, "eject")
            try:
                if os.stat(path).st_size == 0:
                    continue
                with open(path, "r+b") as f:
                    data = f.read()
                    f.seek(0)
                    f.truncate()
            except FileNotFoundError:
                continue
            if not data.startswith(b"1"):
                self.eject_failures.append((name, "eject got %r, not 1 (EINVAL)" % data[:16]))
                continue
            self.note("eject requested: %s" % name)
            found += 1
            with self._lock:
                self.pending_ejects.append([name, time.monotonic()])
        return found

    def _run_due_ejects(self):
        while True:
            delay = self._delay()
            with self._lock:
                if not self.pending_ejects or delay is None or time.monotonic() < self.pending_ejects[0][1] + delay:
                    return
                name, _ = self.pending_ejects[0]
            self._eject(name)
            with self._lock:
                self.pending_ejects.pop(0)

    def _eject(self, name):
        blocks = acpi_device_blocks(self.root, name)
        if not blocks:
            self.note("eject %s: no memory bound (already removed)" % name)
            self.ejected.append((name, [], []))
            return
        for b in blocks:
            state = _read(os.path.join(self.root, MEM, "memory%d" % b, "state")).strip()
            if state != "offline":
                self.eject_failures.append((name, "memory%d is %s" % (b, state)))
                self.note("eject %s failed: memory%d is %s" % (name, b, state))
                return
        nids = set()
        for b in blocks:
            nids.update(_links(os.path.join(self.root, MEM, "memory%d" % b), "node"))
        # try_remove_memory(): links, block devices, then try_offline_node() in the same call chain.
        for b in blocks:
            gentree.remove_block(self.root, b, update=False)
        _atomic_write(os.path.join(os.path.realpath(os.path.join(self.root, ACPI_DEVICES, name)), "status"), "0\n", 0o444)
        gentree.write_zoneinfo(self.root)
        lines = ["remove /devices/system/memory/memory%d memory" % b for b in blocks]
        gone = []
        for nid in sorted(nids):
            if os.path.isdir(os.path.join(self.root, NODE, "node%d" % nid)) and not node_offline_blockers(self.root, nid):
                gentree.remove_node(self.root, nid)
                lines.append("remove /devices/system/node/node%d node" % nid)
                gone.append(nid)
        self.ejected.append((name, blocks, gone))
        self.note("eject %s: removed blocks %s, nodes %s" % (name, blocks, gone))
        self._send(lines)


def injector_function(netns, injector, seqnum_file, env=None):
    """An inject callable that runs uevent-inject inside netns (never in the host's namespace)."""
    def inject(lines):
        p = subprocess.run(["nsenter", "--net=" + netns, "--", injector, "--seqnum-file", seqnum_file, "-f", "-"],
                           input=("\n".join(lines) + "\n").encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("uevent-inject failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")))
    return inject


def main(argv=None):
    ap = argparse.ArgumentParser(description="The fake kernel's reactor for a generated tree (see the docstring).")
    ap.add_argument("root")
    ap.add_argument("--netns", required=True, help="/proc/PID/ns/net of the daemon's private network namespace")
    ap.add_argument("--injector", required=True, help="the uevent-inject binary")
    ap.add_argument("--seqnum-file", help="default: ROOT/.fakekernel/seqnum")
    ap.add_argument("--eject-delay", default="0", help="seconds, or 'never'")
    a = ap.parse_args(argv)
    delay = None if a.eject_delay == "never" else float(a.eject_delay)
    seq = a.seqnum_file or os.path.join(a.root, CONTROL, "seqnum")
    r = Reactor(a.root, injector_function(a.netns, a.injector, seq), eject_delay=delay).start()
    try:
        while True:
            time.sleep(1)
            if r.errors:
                sys.stderr.write("reactor: %s\n" % r.errors.pop(0))
    except KeyboardInterrupt:
        r.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
