# SPDX-License-Identifier: LGPL-2.1-or-later
"""hotplugd_vm.py — the project fixture of the vm suite: the build installed into a test-bed guest,
hotplugd run by the guest's systemd, its models read and compared, scenario plumbing."""

import json
import os
import re
import shlex
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testbed  # noqa: E402
from testbed import TestbedError, log  # noqa: E402,F401

RUNTIME_MODEL = "/run/hotplugd/model.json"
UNIT = "hotplugd.service"
NOTES = []  # observations worth reporting that do not fail a scenario


class Fail(AssertionError):
    pass


def check(cond, msg):
    """A scenario assertion: raises with msg (inside vm.step() it gets the step and console)."""
    if not cond:
        raise Fail(msg)


def build_dir():
    d = os.environ.get("HOTPLUGD_BUILD_DIR")
    if not d or not os.path.isdir(d):
        raise TestbedError("prerequisite: HOTPLUGD_BUILD_DIR is not set to a meson build directory "
                           "(run the vm suite with `meson test -C build --suite vm`)")
    return d


class Install:
    """`meson install --destdir` of the build into a temporary directory, and what is in it."""

    def __init__(self, bdir=None):
        self.build_dir = bdir or build_dir()
        self.tmp = tempfile.TemporaryDirectory(prefix="hpvm-destdir-")
        self.destdir = self.tmp.name
        # Without --no-rebuild: `meson test --suite vm` builds only the tests' dependencies, and
        # an install needs every installed target (meson test's own build has finished by now).
        r = testbed._run(["meson", "install", "-C", self.build_dir, "--destdir", self.destdir,
                          "--quiet"], "meson install --destdir", check=False, timeout=900)
        if r.returncode != 0:
            raise TestbedError(f"step 'meson install --destdir': exit {r.returncode}\n"
                               f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
        self.files = []
        for root, _, files in os.walk(self.destdir):
            for f in files:
                self.files.append("/" + os.path.relpath(os.path.join(root, f), self.destdir))
        bins = [f for f in self.files if re.search(r"/s?bin/hotplugd$", f)]
        if not bins:
            raise TestbedError(f"prerequisite: the install has no sbin/hotplugd; it has {self.files}")
        self.binary = bins[0]
        units = [f for f in self.files if f.endswith("/systemd/system/" + UNIT)]
        self.unit = units[0] if units else None
        # hotplugd reads ROOT/etc/hotplugd/hotplugd.conf whatever the install prefix (main.c --help).
        self.config_path = "/etc/hotplugd/hotplugd.conf"
        # dbus-daemon reads bus policy only from /usr/share and /etc: a build configured with
        # prefix /usr/local installs it where the bus never looks, and hotplugd then cannot own
        # its name. The guest gets a copy in /etc (reported as a NOTE, not hidden).
        self.extra_files = {}
        for f in self.files:
            if "/dbus-1/system.d/" in f and not f.startswith(("/usr/share/dbus-1/system.d/",
                                                                "/etc/dbus-1/system.d/")):
                with open(self.destdir + f, "rb") as fh:
                    self.extra_files["/etc/dbus-1/system.d/" + os.path.basename(f)] = fh.read()
                note = (f"the build installs its D-Bus policy to {f}, which dbus-daemon does not read; "
                        f"the guest gets a copy in /etc/dbus-1/system.d")
                NOTES.append(note)
                log(f"NOTE: {note}")

    def cleanup(self):
        self.tmp.cleanup()


def vacant(node):
    """An offline node with nothing in it: listing it or not says the same thing."""
    return (not node.get("online") and not node.get("blocks") and not node.get("present_cpus")
            and not node.get("spanned_pages") and not node.get("present_pages"))


def normalize_model(m):
    """The comparable part of a model: nodes by id and blocks by index."""
    nodes = {n["id"]: n for n in m.get("nodes", [])}
    blocks = {b["index"]: b for b in m.get("blocks", [])}
    return nodes, blocks


def diff_models(a, b, a_name="live", b_name="fresh"):
    """Differences between two models' nodes and blocks, as readable lines (empty = equal)."""
    out = []
    an, ab = normalize_model(a)
    bn, bb = normalize_model(b)
    for k in sorted(set(an) ^ set(bn)):
        only, other = (an, b_name) if k in an else (bn, a_name)
        if vacant(only[k]):
            note = (f"node {k} (offline, empty) is listed by the {a_name if only is an else b_name} "
                    f"model but not by the {other} one")
            if note not in NOTES:
                NOTES.append(note)
                log(f"NOTE: {note}")
            an.pop(k, None)
            bn.pop(k, None)
    for kind, x, y in (("node", an, bn), ("block", ab, bb)):
        for k in sorted(set(x) | set(y)):
            if k not in x:
                out.append(f"{kind} {k}: only in {b_name}: {json.dumps(y[k], sort_keys=True)}")
            elif k not in y:
                out.append(f"{kind} {k}: only in {a_name}: {json.dumps(x[k], sort_keys=True)}")
            elif x[k] != y[k]:
                for f in sorted(set(x[k]) | set(y[k])):
                    if x[k].get(f) != y[k].get(f):
                        out.append(f"{kind} {k}.{f}: {a_name}={json.dumps(x[k].get(f))} "
                                   f"{b_name}={json.dumps(y[k].get(f))}")
    return out


class HotplugdVM:
    """A booted guest with the build installed; hotplugd runs as hotplugd.service."""

    def __init__(self, name, **vm_args):
        self.install = Install()
        log(f"installed build: binary {self.install.binary}, unit {self.install.unit or '(none: transient)'}, "
            f"config {self.install.config_path}")
        extra = dict(self.install.extra_files)
        extra.update(vm_args.pop("extra_files", {}))
        self.vm = testbed.VM(name=name, destdir=self.install.destdir, extra_files=extra, **vm_args)
        self.vm_error = self.vm.error

    def __enter__(self):
        try:
            self.vm.start()
            self.vm.error = self._error_with_journal
        except BaseException:
            self.install.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.vm.alive():
                with self.vm.step("the guest kernel logged no oops, BUG or WARNING"):
                    problems = self.vm.kernel_problems()
                    check(not problems, "kernel problems:\n" + "\n---\n".join(problems[:3]))
        finally:
            self.vm.kill()
            self.install.cleanup()
        return False

    def _error_with_journal(self, step, msg):
        j = ""
        if self.vm.alive():
            try:
                r = self.vm.agent.request(f"journalctl -u {UNIT} -o short-monotonic --no-pager -n 30", 20)
                j = f"\n--- hotplugd journal (last 30) ---\n{r['stdout']}{r['stderr']}"
                r = self.vm.agent.request("dmesg | grep -m1 -A14 -E '(BUG:|Oops|WARNING:|general protection)'", 20)
                if r["stdout"].strip():
                    j += f"\n--- first kernel problem in dmesg ---\n{r['stdout']}"
            except Exception as e:  # the channel itself may be what failed
                j = f"\n(no journal: {e})"
        return self.vm_error(step, msg + j)

    def wait(self, fn, timeout=60, what="condition", interval=0.3):
        """vm.wait_for() that fails at once, with the journal, if hotplugd stops running."""
        deadline = time.monotonic() + timeout
        next_check = 0
        while True:
            v = fn()
            if v:
                return v
            now = time.monotonic()
            if now >= next_check:
                if not self.is_active():
                    raise self.vm.error(f"wait for {what}", f"{UNIT} is not running any more")
                self.vm.check_kernel_alive(f"wait for {what}")
                next_check = now + 2
            if now >= deadline:
                raise self.vm.error(f"wait for {what}", f"not reached within {timeout}s")
            time.sleep(interval)

    # ---- the daemon

    def write_config(self, text):
        self.vm.write_file(self.install.config_path, text)

    def start(self, config=None, timeout=60):
        """(Re)starts hotplugd.service with config (text of hotplugd.conf, if given)."""
        vm = self.vm
        with vm.step("start hotplugd"):
            if config is not None:
                self.write_config(config)
            vm.run(f"systemctl stop {UNIT}; systemctl reset-failed {UNIT}; "
                   f"rm -f {RUNTIME_MODEL}", check=False)
            if self.install.unit:
                vm.run(f"systemctl start {UNIT}", timeout=timeout)
            else:
                vm.run(f"systemd-run --unit={UNIT} -p Type=notify -p RuntimeDirectory=hotplugd "
                       f"{self.install.binary}", timeout=timeout)
            state = vm.run(f"systemctl is-active {UNIT}", check=False).stdout.strip()
            check(state == "active", f"{UNIT} is {state!r} after start")

    def is_active(self):
        return self.vm.run(f"systemctl is-active {UNIT}", check=False).stdout.strip() == "active"

    def journal(self, n=200):
        return self.vm.run(f"journalctl -u {UNIT} -o cat --no-pager -n {n}", check=False).stdout

    def dump_model(self):
        """A fresh scan: `hotplugd --dump-model` in the guest."""
        r = self.vm.run(f"{self.install.binary} --dump-model", timeout=120,
                        step="hotplugd --dump-model")
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise self.vm.error("hotplugd --dump-model", f"not JSON ({e}): {r.stdout[:2000]!r}")

    def live_model(self, timeout=30):
        """The running daemon's model: SIGUSR2, then wait for model.json's mtime to change."""
        vm = self.vm
        step = "live model (SIGUSR2 dump)"
        q = shlex.quote(RUNTIME_MODEL)
        before = vm.run(f"stat -c %.9Y {q} 2>/dev/null || echo none", step=step).stdout.strip()
        vm.run(f"systemctl kill -s USR2 {UNIT}", step=step)
        vm.wait_guest(f'[ "$(stat -c %.9Y {q} 2>/dev/null || echo none)" != {shlex.quote(before)} ]',
                      timeout=timeout, what=f"{RUNTIME_MODEL} to be rewritten after SIGUSR2")
        last_err = None
        for _ in range(20):  # the write may still be in progress if not done by rename
            text = vm.run(f"cat {q}", step=step).stdout
            try:
                return json.loads(text)
            except ValueError as e:
                last_err = e
                time.sleep(0.2)
        raise vm.error(step, f"{RUNTIME_MODEL} is not JSON: {last_err}")

    def settle(self, timeout=60):
        """Waits until udev's queue is empty (events reached their listeners)."""
        self.vm.run(f"udevadm settle --timeout={int(timeout)}", timeout=timeout + 10, check=False)

    def wait_live_equals_fresh(self, timeout=30, what="hotplugd's live model to equal a fresh scan"):
        """Polls until the live (SIGUSR2) model equals --dump-model; returns the live model."""
        deadline = time.monotonic() + timeout
        while True:
            self.settle()
            live = self.live_model()
            fresh = self.dump_model()
            diff = diff_models(live, fresh)
            if not diff:
                return live
            if time.monotonic() >= deadline:
                raise self.vm.error(f"wait for {what}",
                                    f"still different after {timeout}s:\n  " + "\n  ".join(diff[:60]))
            time.sleep(1)

    # ---- guest facts used by several scenarios

    def empty_node(self):
        """The guest's number of the CPU-less, memory-less node that QEMU's last NUMA node maps to
        (QEMU puts the hot-pluggable SRAT range on its last node): possible but not online."""
        vm = self.vm
        possible, online = vm.node_list("possible"), vm.node_list("online")
        cand = sorted(set(possible) - set(online))
        if len(cand) != 1:
            raise vm.error("find the empty node", f"possible {possible}, online {online}")
        return cand[0]

    def zone_pages(self):
        """{node: {zone: present pages}} from the guest's /proc/zoneinfo."""
        out = {}
        node = zone = None
        for line in self.vm.read_file("/proc/zoneinfo").splitlines():
            m = re.match(r"Node (\d+), zone\s+(\S+)", line)
            if m:
                node, zone = int(m.group(1)), m.group(2)
                out.setdefault(node, {})[zone] = 0
                continue
            m = re.match(r"\s+present\s+(\d+)", line)
            if m and node is not None:
                out[node][zone] = int(m.group(1))
        return out


def check_model_vs_sysfs(vm, model, what):
    """The model against the guest's sysfs, read independently of hotplugd's scanner: the set of
    blocks, their state, zones, nodes and ACPI device; per node the block counters and the
    online/has_memory masks. Raises Fail listing every mismatch."""
    sysfs = vm.blocks()
    online = set(vm.node_list("online"))
    has_memory = set(vm.node_list("has_memory"))
    errors = []
    mb = {b["index"]: b for b in model.get("blocks", [])}
    if set(mb) != set(sysfs):
        errors.append(f"block sets differ: only in model {sorted(set(mb) - set(sysfs))}, "
                      f"only in sysfs {sorted(set(sysfs) - set(mb))}")
    for i in sorted(set(mb) & set(sysfs)):
        m, s = mb[i], sysfs[i]
        if m.get("state") != s["state"]:
            errors.append(f"memory{i}: state model={m.get('state')} sysfs={s['state']}")
        if sorted(m.get("nodes") or []) != sorted(s["nodes"]):
            errors.append(f"memory{i}: nodes model={m.get('nodes')} sysfs={s['nodes']}")
        if [z.lower() for z in m.get("valid_zones") or []] != [z.lower() for z in s["valid_zones"]]:
            errors.append(f"memory{i}: valid_zones model={m.get('valid_zones')} sysfs={s['valid_zones']}")
        if s["firmware_node"] and (m.get("owner") != "acpi" or m.get("device") != s["firmware_node"]):
            errors.append(f"memory{i}: owner/device model={m.get('owner')}/{m.get('device')} "
                          f"sysfs firmware_node={s['firmware_node']}")
    for n in model.get("nodes", []):
        nid = n["id"]
        mine = [b for b in sysfs.values() if nid in b["nodes"]]
        want = {"online": nid in online, "has_memory": nid in has_memory, "blocks": len(mine),
                "online_blocks": sum(b["state"] == "online" for b in mine),
                "offline_blocks": sum(b["state"] == "offline" for b in mine)}
        for k, v in want.items():
            if n.get(k) != v:
                errors.append(f"node {nid}: {k} model={n.get(k)} sysfs={v}")
    for nid in online - {n["id"] for n in model.get("nodes", [])}:
        errors.append(f"node {nid} is online in sysfs but missing from the model")
    if errors:
        raise Fail(f"{what}: the model is not what sysfs says:\n  " + "\n  ".join(errors[:60]))


def model_node(model, nid):
    for n in model.get("nodes", []):
        if n.get("id") == nid:
            return n
    return None


def model_blocks_of(model, nid):
    return [b for b in model.get("blocks", []) if nid in (b.get("nodes") or [])]


def scenario(fn):
    """Runs a scenario as a test program: exit 0 on success, 1 with a clear message otherwise
    (missing prerequisites are failures too: the vm suite never skips)."""
    t0 = time.monotonic()
    name = os.path.basename(sys.argv[0])
    try:
        fn()
    except (TestbedError, Fail, AssertionError) as e:
        print(f"FAIL {name} after {time.monotonic() - t0:.1f}s: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        print(f"FAIL {name} after {time.monotonic() - t0:.1f}s (unexpected error above)", file=sys.stderr)
        sys.exit(1)
    for note in NOTES:
        print(f"NOTE: {note}")
    print(f"PASS {name} in {time.monotonic() - t0:.1f}s")
    sys.exit(0)
