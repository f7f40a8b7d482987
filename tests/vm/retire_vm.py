# SPDX-License-Identifier: LGPL-2.1-or-later
"""retire_vm.py — plumbing of the retire-node scenarios on the real kernel (test_retire.py) and of
the demo: hotplugctl and its jobs in the guest, the guest's node and blocks, data put on a node by
guest_fill.py, hotplugctl's D-Bus monitor as a clock for job state changes, and the daemon's
state directory."""

import json
import os
import re
import shlex

import hotplugd_vm
from hotplugd_vm import UNIT, Fail, check, log, model_blocks_of, model_node
import testbed

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_FILL = "/usr/local/lib/hotplugd-vm/fill.py"
FILL_UNIT = "hpvm-fill.service"
FILL_STATUS = "/run/hpvm-fill.json"
MONITOR_UNIT = "hpvm-monitor.service"
MONITOR_LOG = "/run/hpvm-monitor.jsonl"
STATE_DIR = "/var/lib/hotplugd"
FINAL = ("completed", "failed", "cancelled")
BUS = "org.hotplugd.Hotplug1"
JOB_IFACE = "org.hotplugd.Hotplug1.Job"
ERR = "org.hotplugd.Hotplug1.Error."


def note(text):
    """An observation worth reporting that does not fail the scenario (printed at the end)."""
    if text not in hotplugd_vm.NOTES:
        hotplugd_vm.NOTES.append(text)
        log(f"NOTE: {text}")


def extra_files():
    """Files the retire scenarios need in the guest (testbed extra_files)."""
    with open(os.path.join(HERE, "guest_fill.py")) as f:
        return {GUEST_FILL: (f.read(), 0o755)}


def config(policy="online_movable", **retire):
    """hotplugd.conf text: [Online] Policy= and [Retire] keys (None values are left out)."""
    text = f"[Online]\nPolicy={policy}\n"
    keys = {k: v for k, v in retire.items() if v is not None}
    if keys:
        text += "[Retire]\n" + "".join(f"{k}={v}\n" for k, v in keys.items())
    return text


class RetireBed:
    """A booted HotplugdVM plus what the retire scenarios do to it."""

    def __init__(self, h):
        self.h = h
        self.vm = h.vm
        self.qnode = self.vm.nodes - 1   # QEMU node whose DIMMs land on the guest's empty node
        self._nid = None

    # ---- the empty node

    @property
    def nid(self):
        """The guest's number of the CPU-less, memory-less node (read once, while it is empty)."""
        if self._nid is None:
            self._nid = self.h.empty_node()
        return self._nid

    def node_online(self):
        return self.nid in self.vm.node_list("online")

    def node_blocks(self):
        """{index: block} of the blocks that link to the node (testbed.VM.blocks() format)."""
        return {i: b for i, b in self.vm.blocks().items() if self.nid in b["nodes"]}

    def zones(self, blocks=None):
        """{index: (state, valid_zones as a string)} of the node's blocks."""
        bl = self.vm.blocks()
        idx = blocks if blocks is not None else [i for i, b in bl.items() if self.nid in b["nodes"]]
        return {i: (bl[i]["state"], " ".join(bl[i]["valid_zones"])) if i in bl else None for i in idx}

    def plug(self, n=2, size="256M", online=True, timeout=90):
        """Plugs n DIMMs into the empty node; with online, waits until hotplugd onlined every block
        (by its policy). Returns (dimms, blocks)."""
        dimms = [self.vm.plug_dimm(self.qnode, size) for _ in range(n)]
        blocks = [b for d in dimms for b in self.vm.dimm_blocks(d)]
        for d in dimms:
            got = self.vm.dimm_guest_node(d)
            check(got == self.nid, f"{d} landed on guest node {got}, not {self.nid}")
        if online:
            self.h.wait(lambda: all(self.vm.blocks().get(b, {}).get("state") == "online" for b in blocks),
                        timeout, f"hotplugd to online memory{blocks}")
        return dimms, blocks

    def empty(self, timeout=120):
        """Takes every DIMM out of the node again, by hand (offline, eject), and waits for the node
        to go offline: the next scenario of a shared boot starts from the empty node."""
        vm = self.vm
        with vm.step(f"empty node {self.nid} again (hand offline + eject)"):
            for b, s in sorted(self.zones().items()):
                if s[0] == "online":
                    vm.set_block_state(b, "offline")
            for d in list(vm.dimms):
                if vm.dimms[d]["node"] == self.qnode:
                    vm.eject(vm.dimm_acpi_device(d))
                    vm.wait_dimm_deleted(d, timeout)
            vm.wait_for(lambda: not self.node_online(), 60, f"node {self.nid} to go offline")

    # ---- the daemon

    def restart(self, conf, clear_state=True):
        """(Re)starts hotplugd with conf; clear_state empties its state directory first (no
        quarantine, no job journal left by an earlier scenario of the same boot)."""
        check(not self.node_online() and not [d for d, i in self.vm.dimms.items() if i["node"] == self.qnode],
              f"node {self.nid} is not empty: an earlier scenario of this boot left {self.vm.dimms}")
        if clear_state:
            self.vm.run(f"systemctl stop {UNIT}; rm -rf {STATE_DIR}/*", check=False,
                        step="clear hotplugd's state directory")
        self.h.start(conf)

    def main_pid(self):
        return int(self.vm.sh(f"systemctl show -p MainPID --value {UNIT}"))

    def state_files(self):
        """Names in hotplugd's StateDirectory."""
        return sorted(self.vm.sh(f"ls -A {STATE_DIR} 2>/dev/null || true").split())

    def job_journals(self):
        return [f for f in self.state_files() if re.fullmatch(r"job-\d+\.journal.*", f)]

    def quarantined(self):
        """Nodes in the persisted quarantine list."""
        text = self.vm.sh(f"cat {STATE_DIR}/quarantine 2>/dev/null || true")
        return set(testbed.parse_cpulist(text)) if text else set()

    # ---- hotplugctl and jobs

    def ctl(self, args, user=None, timeout=120, expect=None, step=None):
        """Runs `hotplugctl ARGS` in the guest (as USER through runuser); expect: the exit status it
        must have. Returns the Result."""
        cmd = f"hotplugctl {args}"
        if user:
            cmd = f"runuser -u {shlex.quote(user)} -- {cmd}"
        r = self.vm.run(cmd, timeout=timeout, check=False, step=step or cmd)
        if expect is not None and r.rc != expect:
            raise self.vm.error(step or cmd, f"exit status {r.rc}, expected {expect}\n"
                                             f"stdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}")
        return r

    def jobs(self):
        r = self.ctl("--json=short jobs", expect=0)
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise self.vm.error("hotplugctl --json=short jobs", f"not JSON: {r.stdout[:2000]!r}")

    def job(self, jid):
        for j in self.jobs():
            if j["job"] == jid:
                return j
        return None

    def job_property(self, jid, prop):
        """One property of the job object, through busctl (typed JSON)."""
        r = self.vm.run(f"busctl --json=short get-property {BUS} /org/hotplugd/Hotplug1/job/{jid} "
                        f"{JOB_IFACE} {prop}", check=False, step=f"job {jid} property {prop}")
        if r.rc != 0:
            return None
        return json.loads(r.stdout)["data"]

    def wait_job(self, jid, states=FINAL, timeout=180, what=None):
        """Waits until job jid is in one of states; returns its ListJobs entry."""
        def reached():
            j = self.job(jid)
            return j if j and j["state"] in states else None
        return self.h.wait(reached, timeout, what or f"job {jid} to reach {'/'.join(states)}", interval=0.5)

    def start_retire(self, args=""):
        """`hotplugctl retire-node --no-block NODE ARGS`; returns the job id."""
        r = self.ctl(f"retire-node --no-block {self.nid} {args}".strip(), expect=0)
        m = re.search(r"/job/(\d+)$", r.stdout.strip())
        check(m, f"retire-node --no-block printed no job path: {r.stdout!r}")
        return int(m.group(1))

    # ---- data on the node (guest_fill.py)

    def fill(self, mib, pin_blocks=(), timeout=180):
        """Runs guest_fill.py as a transient unit: MIB MiB bound to the node, pages in the first of
        pin_blocks that holds any pinned; returns its status (see guest_fill.py)."""
        vm = self.vm
        pins = ",".join(str(b) for b in pin_blocks)
        with vm.step(f"put {mib} MiB of data on node {self.nid}" + (f", pinned in one of memory{list(pin_blocks)}" if pins else "")):
            vm.run(f"rm -f {FILL_STATUS}; systemctl reset-failed {FILL_UNIT} 2>/dev/null; "
                   f"systemd-run --unit={FILL_UNIT} --collect -p Type=exec /usr/bin/python3 {GUEST_FILL} "
                   f"{self.nid} {mib} {FILL_STATUS} {pins}")
            vm.wait_guest(f"[ -s {FILL_STATUS} ] || ! systemctl -q is-active {FILL_UNIT}", timeout=timeout,
                          what="the data to be written")
            r = vm.run(f"cat {FILL_STATUS}", check=False)
            if r.rc != 0:
                j = vm.run(f"journalctl -u {FILL_UNIT} -o cat --no-pager | tail -20", check=False).stdout
                raise Fail(f"guest_fill.py ended without a status:\n{j}")
            st = json.loads(r.stdout)
            used = st["node_mem_used_kib"] >> 10
            log(f"data on node {self.nid}: {used} MiB used on the node; pages per block "
                f"{st['pages_per_block']}; pinned {st['pinned_pages']} pages in memory{st['pinned_block']}")
            check(used >= mib * 0.9, f"only {used} MiB used on node {self.nid} after writing {mib} MiB bound to it")
            if pins:
                check(st["pinned_block"] is not None and st["pinned_pages"] > 0,
                      f"no page of the data lies in memory{list(pin_blocks)}: {st['pages_per_block']}")
            return st

    def unfill(self):
        self.vm.run(f"systemctl stop {FILL_UNIT}; rm -f {FILL_STATUS}", check=False, step="stop guest_fill.py")

    def node_mem_used_mib(self):
        text = self.vm.read_file(f"/sys/devices/system/node/node{self.nid}/meminfo")
        m = re.search(r"MemUsed:\s+(\d+) kB", text)
        return int(m.group(1)) >> 10 if m else None

    # ---- hotplugctl monitor as a clock

    def monitor_start(self):
        """Starts `hotplugctl --json=short monitor` in the guest, writing one JSON object per
        signal (with a microsecond timestamp) to MONITOR_LOG."""
        self.vm.run(f"systemctl stop {MONITOR_UNIT} 2>/dev/null; rm -f {MONITOR_LOG}; "
                    f"systemd-run --unit={MONITOR_UNIT} --collect -p StandardOutput=file:{MONITOR_LOG} "
                    f"-p StandardError=journal hotplugctl --json=short monitor", step="start hotplugctl monitor")
        # The match is in place once the client printed its banner (to stderr, the journal).
        self.vm.wait_guest(f"journalctl -u {MONITOR_UNIT} -o cat | grep -q Monitoring", timeout=30,
                           what="hotplugctl monitor to subscribe")

    def monitor_events(self, stop=True):
        if stop:
            self.vm.run(f"systemctl stop {MONITOR_UNIT}", check=False)
        out = []
        for line in self.vm.run(f"cat {MONITOR_LOG}", check=False).stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    @staticmethod
    def job_state_changes(events, jid):
        """[(timestamp µs, state)] of job jid from monitor events."""
        out = []
        for e in events:
            if e.get("signal") == "PropertiesChanged" and e.get("path", "").endswith(f"/job/{jid}"):
                st = (e.get("changed") or {}).get("State")
                if isinstance(st, dict):
                    st = st.get("data")
                if st:
                    out.append((e["timestamp"], st))
        return out

    # ---- the model

    def check_no_trace(self, blocks, what):
        """Neither the live model (SIGUSR2) nor a fresh --dump-model knows the node's blocks, and
        the two agree; hotplugctl lists none of them."""
        h, nid = self.h, self.nid
        live = h.wait_live_equals_fresh(what=f"the live model to equal a fresh scan ({what})")
        fresh = h.dump_model()
        for name, m in (("live", live), ("--dump-model", fresh)):
            n = model_node(m, nid)
            check(n is None or (not n["online"] and n["blocks"] == 0),
                  f"{what}: node {nid} in the {name} model: {n}")
            check(not model_blocks_of(m, nid), f"{what}: {name} model has blocks of node {nid}: "
                                               f"{model_blocks_of(m, nid)}")
            left = sorted({b["index"] for b in m["blocks"]} & set(blocks))
            check(not left, f"{what}: {name} model still has memory{left}")
        r = self.ctl(f"list-blocks --node {nid}")
        check(r.rc != 0 and "does not exist" in r.stderr or r.rc == 0 and not re.search(r"\bonline|\boffline", r.stdout),
              f"{what}: hotplugctl list-blocks --node {nid}: rc {r.rc} {r.stdout!r} {r.stderr!r}")
        rows = json.loads(self.ctl("--json=short list-blocks --all", expect=0).stdout)
        mine = [b for b in rows if b.get("node") == nid or b.get("block") in blocks]
        check(not mine, f"{what}: hotplugctl list-blocks --all still lists {mine}")
        return live
