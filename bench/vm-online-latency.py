#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vm-online-latency.py — onlining latency on a real kernel (issue 6, benchmark 1), a benchmark that
prints figures (not a test).

On one QEMU/TCG guest of the VM test bed (tests/vm), a DIMM of 2 GiB (16 blocks of 128 MiB) is
hot-plugged into the guest's empty NUMA node and timed from the QMP device_add to the moment the
last of its blocks is online, three ways, interleaved round by round:

  kernel    auto_online_blocks=online_movable: the kernel onlines each block inside its own ACPI
            hot-add handler (the physical limit). It is also the figure hotplugd would get by
            handing a uniform policy (same for every node, no quarantine) to the kernel.
  udev      auto_online_blocks=offline and the distro-style rule
            SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable"
            in /etc/udev/rules.d, udevd reloaded; hotplugd stopped.
  hotplugd  no rule, hotplugd.service with [Daemon] TakeOver=yes and [Online] Policy=online_movable:
            the policy is the same for every node, so hotplugd hands it to the kernel
            (auto_online_blocks=online_movable, written by hotplugd; KernelHandoff=yes, the default)
            and takes it back when a node needs its own decision.
  hotplugd-self   (no goal) the same with KernelHandoff=no: hotplugd decides and writes every
            block itself (what it does while a quarantine, per-node policy or retire is in force),
            with the default EventSource=udev: it hears of a block after udevd ran its rules.
  hotplugd-kernel-events   (no goal) hotplugd-self with EventSource=kernel: hotplugd listens to
            the kernel's uevents directly, in parallel with udevd.

After each round the DIMM is removed again with device_del (the guest kernel offlines and removes
it), so every round starts from the same empty node.

How "last block online" is timestamped, and the two clock domains
-----------------------------------------------------------------
The start is a host event (the QMP device_add); the end happens in the guest. Under TCG the guest's
clock runs at the host's rate but with its own epoch (and its TSC calibration may be off by a
fraction of a percent), so the end is measured on the guest clock and mapped onto the host clock:

* In the guest, a small Python watcher (started before the device_add) listens on a kernel uevent
  netlink socket (NETLINK_KOBJECT_UEVENT, group 1) and stamps every memory-block uevent with
  CLOCK_MONOTONIC on receipt. Every path emits KOBJ_ONLINE per block once that block's online
  has completed (device_online() sends it after the bus's online callback returns, whether called
  by the kernel's auto-online or by a write to `state`); done = the online event of the last of the
  16 blocks whose add events were seen. Event-driven: no polling load competes with the onliner.
  The watcher then re-reads every block's `state` and `valid_zones` (must be online, Movable).
* Clock mapping: the watcher sets the guest's RTC to the value it just read (RTC_SET_TIME ioctl on
  /dev/rtc0) before the plug and again after the last online. QEMU emits a QMP RTC_CHANGE
  event for each, stamped with the host's CLOCK_REALTIME while the guest's vCPU executes the port write
  that ends the RTC update (mc146818_set_time() clears RTC_SET near its end); the watcher stamps
  the end of the ioctl on its clock (the write is within microseconds of it; the ioctl's whole
  duration, up to ~10 ms under TCG when the vCPU waits for QEMU's lock, is an upper bound). The
  (guest, host) pairs of the run, two per round, are fitted with one line (offset and rate: the
  guest's TSC calibration under TCG is slightly off), using only the marks whose ioctl took less
  than 1 ms (at least a third of them, the quickest); the largest residual of those is printed as
  the mapping error. The host stamps device_add with CLOCK_REALTIME as well:
  latency = map(done) - t(device_add).

Also printed: the guest-only part "first block added -> last block online" (one clock, no
mapping), which isolates the onlining from ACPI and QEMU processing common to all three paths.

Also printed: the guest CPU time per plug of the services that handle the uevents (hotplugd,
journald, udevd, dbus, PID 1; cgroup cpu.stat, from before the device_add to 0.5 s after the last
online). Under TCG the latency of one plug varies by tens of percent from round to round; the CPU
time a way adds is the steadier figure of what it costs.

    /usr/bin/python3 bench/vm-online-latency.py [--rounds N] [--build-dir build] [--timeline] [--json F]
                                                [--modes kernel,udev,hotplugd,hotplugd-self,...]

--timeline prints, per round, when each block's add and online events arrived (ms after the first
add), which shows where a path spends its time, and for hotplugd its journal around the plug
(stamped by journald on receipt: an upper bound of when hotplugd logged).

Needs what the vm test suite needs (root, qemu-system-x86, the cached kernel: tests/vm/testbed.py)
and a build directory (meson install --destdir of it goes into the guest). About 4 minutes with the
default 5 rounds on a 2-core machine.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "vm"))

DIMM_SIZE = 2 << 30
UDEV_RULE_PATH = "/etc/udev/rules.d/60-hpvm-bench-online.rules"
UDEV_RULE = 'SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable"\n'
WATCHER_PATH = "/usr/local/lib/hotplugd-vm/bench-online-watch.py"
# RTC writes per clock mark. One: QEMU throttles RTC_CHANGE to one event per second (a throttled
# event keeps its own timestamp, but only the last one of a second is sent).
MARKS = 1
MODES = ("kernel", "udev", "hotplugd", "hotplugd-self", "hotplugd-kernel-events")
GOAL_MODES = MODES[:3]
CONFIGS = {
    # The shipped way to run it for speed: TakeOver=yes, the uniform policy handed to the kernel.
    "hotplugd": "[Daemon]\nTakeOver=yes\n[Online]\nPolicy=online_movable\n",
    # hotplugd deciding every block itself (what it does while a node needs its own decision).
    "hotplugd-self": "[Daemon]\nTakeOver=yes\n[Online]\nPolicy=online_movable\nKernelHandoff=no\n",
    "hotplugd-kernel-events": "[Daemon]\nTakeOver=yes\nEventSource=kernel\n[Online]\nPolicy=online_movable\n"
                              "KernelHandoff=no\n",
}
if os.environ.get("HOTPLUGD_BENCH_EXPERIMENT"):  # local experiments: name=config (\n escaped)
    _name, _conf = os.environ["HOTPLUGD_BENCH_EXPERIMENT"].split("=", 1)
    CONFIGS[_name] = _conf.replace("\\n", "\n")

WATCHER = r'''
import fcntl, json, os, socket, sys, time

n_blocks, timeout, MARKS = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
RTC_RD_TIME, RTC_SET_TIME = 0x80247009, 0x4024700a   # _IOR/_IOW('p', 9/10, struct rtc_time)


def rtc_mark():
    """Writes the RTC's own value back, MARKS times: QEMU stamps each write (QMP RTC_CHANGE) on the
    host clock; returns [(guest ns at the end of the ioctl, ioctl duration ns)]."""
    out = []
    with open("/dev/rtc0", "rb", buffering=0) as f:
        tm = bytearray(36)
        fcntl.ioctl(f, RTC_RD_TIME, tm)
        for _ in range(MARKS):
            t1 = time.monotonic_ns()
            fcntl.ioctl(f, RTC_SET_TIME, bytes(tm))
            t2 = time.monotonic_ns()
            out.append((t2, t2 - t1))
    return out


s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)   # NETLINK_KOBJECT_UEVENT
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)                 # SO_RCVBUFFORCE
s.bind((0, 1))                                                # kernel events
mark1 = rtc_mark()
events, added, online = [], [], set()
deadline = time.monotonic() + timeout
s.settimeout(0.5)
while time.monotonic() < deadline:
    try:
        msg = s.recv(1 << 16)
    except socket.timeout:
        continue
    t = time.monotonic_ns()
    head, _, _ = msg.partition(b"\0")
    action, _, devpath = head.decode(errors="replace").partition("@")
    if not devpath.startswith("/devices/system/memory/memory"):
        continue
    block = int(devpath.rsplit("memory", 1)[1])
    events.append((t, action, block))
    if action == "add" and block not in added:
        added.append(block)
    elif action == "online":
        online.add(block)
    if len(added) >= n_blocks and online >= set(added[:n_blocks]):
        break
blocks = added[:n_blocks]
done = max((t for t, a, b in events if a == "online" and b in blocks), default=None)
states = {}
for b in blocks:
    d = f"/sys/devices/system/memory/memory{b}/"
    states[b] = open(d + "state").read().strip() + "/" + open(d + "valid_zones").read().strip()
mark2 = rtc_mark()
print(json.dumps({"mark1": mark1, "mark2": mark2, "blocks": blocks, "done": done,
                  "first_add": min((t for t, a, b in events if a == "add"), default=None),
                  "states": states, "events": events}))
'''


def qmp_time(ev):
    ts = ev["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


class Bench:
    def __init__(self, h, rounds):
        self.h, self.vm, self.rounds = h, h.vm, rounds
        self.mode = None
        self.results = {m: [] for m in MODES}

    def set_mode(self, mode):
        if mode == self.mode:
            return
        vm, h = self.vm, self.h
        vm.run(f"systemctl stop hotplugd.service; rm -f {UDEV_RULE_PATH}; udevadm control --reload; "
               "echo offline > /sys/devices/system/memory/auto_online_blocks")
        if mode == "kernel":
            vm.run("echo online_movable > /sys/devices/system/memory/auto_online_blocks")
        elif mode == "udev":
            vm.write_file(UDEV_RULE_PATH, UDEV_RULE)
            vm.run("udevadm control --reload")
        else:
            h.start(CONFIGS[mode])
            want = "offline" if "KernelHandoff=no" in CONFIGS[mode] else "online_movable"
            got = vm.sh("cat /sys/devices/system/memory/auto_online_blocks")
            if got != want:
                raise RuntimeError(f"{mode}: hotplugd left auto_online_blocks={got}, expected {want}")
        self.mode = mode

    def one(self, node_q, warmup=False):
        vm = self.vm
        vm.dimm_seq += 1
        did, mid = f"dimm{vm.dimm_seq}", f"mem{vm.dimm_seq}"
        vm.qmp.execute("object-add", {"qom-type": "memory-backend-ram", "id": mid, "size": DIMM_SIZE})
        vm.qmp.poll_events()
        vm.qmp.events = [e for e in vm.qmp.events if e["event"] != "RTC_CHANGE"]
        out = {}
        n_blocks = DIMM_SIZE // vm.block_size()

        def watch():
            try:
                out["r"] = vm.run(f"/usr/bin/python3 {WATCHER_PATH} {n_blocks} 120 {MARKS}", timeout=150)
            except Exception as e:  # reported by the main thread
                out["e"] = e
        cpu0 = cpu_usage(vm)
        th = threading.Thread(target=watch)
        th.start()
        mark1 = [vm.qmp.wait_event("RTC_CHANGE", timeout=120)]
        mark1 += [vm.qmp.wait_event("RTC_CHANGE", timeout=30) for _ in range(MARKS - 1)]
        t0 = time.time()
        vm.qmp.execute("device_add", {"driver": "pc-dimm", "id": did, "memdev": mid, "node": node_q})
        t0_reply = time.time()
        slot = vm.memory_devices()[did]["slot"]
        vm.dimms[did] = {"node": node_q, "size": DIMM_SIZE, "mem": mid, "slot": slot}
        th.join()
        if "e" in out:
            raise out["e"]
        mark2 = [vm.qmp.wait_event("RTC_CHANGE", timeout=30) for _ in range(MARKS)]
        vm.qmp.poll_events()
        vm.qmp.events = [e for e in vm.qmp.events if not (
            e["event"] == "ACPI_DEVICE_OST" and e.get("data", {}).get("info", {}).get("slot") == str(slot))]
        cpu1 = cpu_usage(vm, after=0.5)
        w = json.loads(out["r"].stdout)
        if w["done"] is None or len(w["blocks"]) != n_blocks:
            raise RuntimeError(f"{self.mode}: not all blocks online within the watcher's timeout: {w}")
        bad = {b: s for b, s in w["states"].items() if s != "online/Movable"}
        if bad:
            raise RuntimeError(f"{self.mode}: blocks not online in Movable: {bad}")
        if sorted(w["blocks"]) != sorted(vm.dimm_blocks(did)):
            raise RuntimeError(f"watched blocks {w['blocks']} are not {did}'s {vm.dimm_blocks(did)}")
        rec = {"mode": self.mode, "t0": t0, "device_add_reply": t0_reply - t0,
               "marks": [min(((g, qmp_time(e), d) for (g, d), e in zip(w[k], ev)), key=lambda x: x[2])
                         for k, ev in (("mark1", mark1), ("mark2", mark2))],
               "done": w["done"], "first_add": w["first_add"], "events": w["events"],
               # A unit restarted in between (hotplugd, between ways) starts from 0 again.
               "cpu_ms": {k: (cpu1[k] - cpu0.get(k, 0)) / 1e3 for k in cpu1 if cpu1[k] >= cpu0.get(k, 0)}}
        if self.mode.startswith("hotplugd"):
            # hotplugd's own account (journald's receive time, CLOCK_MONOTONIC like the watcher's).
            j = vm.run("journalctl -u hotplugd.service -o json --no-pager -n 80 "
                       "--output-fields=MESSAGE,__MONOTONIC_TIMESTAMP", check=False).stdout
            rec["journal"] = []
            for line in j.splitlines():
                e = json.loads(line)
                t = int(e["__MONOTONIC_TIMESTAMP"]) * 1000
                if t >= w["first_add"] - 1e9 and isinstance(e.get("MESSAGE"), str):
                    rec["journal"].append((t, e["MESSAGE"]))
        vm.unplug_dimm(did, timeout=180)
        if not warmup:
            self.results[self.mode].append(rec)
        return rec


def fit(records):
    """Least-squares line host = a + b * guest over every RTC mark of the run; returns
    (map function, rate b, largest residual in seconds)."""
    marks = [m for r in records for m in r["marks"]]
    durations = sorted(d for _, _, d in marks)
    limit = max(1e6, durations[len(durations) // 3])
    pts = [(g / 1e9, h) for g, h, d in marks if d <= limit]
    g0, h0 = pts[0]
    xs = [g - g0 for g, _ in pts]
    ys = [h - h0 for _, h in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    resid = max(abs(y - (a + b * x)) for x, y in zip(xs, ys))

    def to_host(g_ns):
        return h0 + a + b * (g_ns / 1e9 - g0)
    return to_host, b, resid, len(pts), len(marks)


def figures(rec, to_host):
    return {"total": to_host(rec["done"]) - rec["t0"],
            "add_to_first_block": to_host(rec["first_add"]) - rec["t0"],
            "first_block_to_last_online": (rec["done"] - rec["first_add"]) / 1e9,
            "cpu_ms": rec.get("cpu_ms", {})}


# The guest's services that handle a DIMM's uevents; their CPU time per plug (cgroup cpu.stat
# usage_usec, from before the device_add to after the last online) is the cost each way adds to
# the onlining, steadier than the latency itself under TCG.
CPU_UNITS = {"hotplugd": "system.slice/hotplugd.service", "journald": "system.slice/systemd-journald.service",
             "udevd": "system.slice/systemd-udevd.service", "dbus": "system.slice/dbus.service",
             "pid1": "init.scope"}
CPU_READ = " ; ".join(f"echo {k} $(sed -n 's/^usage_usec //p' /sys/fs/cgroup/{v}/cpu.stat 2>/dev/null || echo 0)"
                      for k, v in CPU_UNITS.items())


def cpu_usage(vm, after=0):
    out = {}
    # after: seconds to wait first, so that work a way defers past the last online is counted too.
    for line in vm.run(f"sleep {after}; {CPU_READ}", check=False).stdout.splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v) if v.strip().isdigit() else 0
    return out


def timeline(rec):
    """Per block: ms after the first add uevent at which its add and online events arrived."""
    t0 = rec["first_add"]
    per = {}
    for t, action, block in rec["events"]:
        per.setdefault(block, {})[action] = (t - t0) / 1e6
    return "  ".join(f"{b}:{v.get('add', float('nan')):.0f}/{v.get('online', float('nan')):.0f}"
                     for b, v in sorted(per.items()))


def summary(values):
    return statistics.median(values), min(values), max(values)


def main():
    global MODES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds per way (default 5)")
    ap.add_argument("--build-dir", default=os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--json", help="also write the figures and raw events to this file")
    ap.add_argument("--timeline", action="store_true", help="print each round's per-block event times")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated ways to measure (default all; kernel, udev and hotplugd are always kept)")
    args = ap.parse_args()
    extra = [x for x in args.modes.split(",") if x and x not in GOAL_MODES]
    unknown = [x for x in extra if x not in CONFIGS]
    if unknown:
        ap.error(f"unknown way(s): {', '.join(unknown)} (known: {', '.join(MODES)})")
    MODES = GOAL_MODES + tuple(extra)
    os.environ["HOTPLUGD_BUILD_DIR"] = os.path.abspath(args.build_dir)
    os.environ.setdefault("HOTPLUGD_VM_LOG_DIR", os.path.join(os.environ["HOTPLUGD_BUILD_DIR"], "meson-logs", "vm"))
    import hotplugd_vm  # noqa: E402 (needs the environment above)

    t_start = time.monotonic()
    # One DIMM at a time: it is unplugged before the next round plugs another.
    with hotplugd_vm.HotplugdVM("bench-online-latency", slots=4, maxmem="4G",
                                extra_files={WATCHER_PATH: (WATCHER, 0o755)}) as h:
        vm = h.vm
        b = Bench(h, args.rounds)
        node_q = vm.nodes - 1
        nid = h.empty_node()
        kernel = vm.sh("uname -r")
        block_size = vm.block_size()
        print(f"guest: Linux {kernel}, {vm.smp} vCPUs under QEMU TCG, DIMM {DIMM_SIZE >> 30} GiB = "
              f"{DIMM_SIZE // vm.block_size()} blocks of {vm.block_size() >> 20} MiB into empty node {nid}",
              flush=True)
        load0 = os.getloadavg()
        b.set_mode("kernel")
        b.one(node_q, warmup=True)
        for r in range(args.rounds):
            order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
            for mode in order:
                b.set_mode(mode)
                rec = b.one(node_q)
                print(f"round {r + 1} {mode:22s} done (clock marks: ioctl {rec['marks'][0][2] / 1e6:.1f} "
                      f"and {rec['marks'][1][2] / 1e6:.1f} ms)", flush=True)
        conflicts = vm.run("journalctl -u hotplugd.service -o cat --no-pager | grep -i conflict | sort -u",
                           check=False).stdout.strip()

    load1 = os.getloadavg()
    allrec = [x for m in MODES for x in b.results[m]]
    to_host, rate, resid, n_used, n_marks = fit(allrec)
    res = {m: [figures(x, to_host) for x in b.results[m]] for m in MODES}
    print()
    print(f"host load average (1 min) at the start and end: {load0[0]:.1f}, {load1[0]:.1f} on {os.cpu_count()} "
          f"CPUs (other work on the host makes TCG figures noisy)")
    print(f"clock mapping: guest/host rate {rate:.6f}, fitted on {n_used} of {n_marks} RTC marks, "
          f"largest residual {resid * 1e3:.2f} ms")
    if args.timeline:
        for m in MODES:
            for i, x in enumerate(b.results[m]):
                print(f"timeline {m} round {i + 1} (block:add/online ms after the first add): {timeline(x)}")
                for t, msg in x.get("journal", []):
                    print(f"    hotplugd journal {(t - x['first_add']) / 1e6:+8.0f} ms  {msg}")
    if conflicts:
        print(f"hotplugd logged: {conflicts}")
    print()
    print(f"Onlining latency of a {DIMM_SIZE >> 30} GiB DIMM ({DIMM_SIZE // block_size} blocks), "
          f"{args.rounds} rounds each, median [min-max] in seconds:")
    print(f"{'way':24s} {'device_add -> last online':>28s} {'device_add -> 1st block':>24s} "
          f"{'1st block -> last online':>26s}")
    med = {}
    for mode in MODES:
        tot = summary([x["total"] for x in res[mode]])
        fst = summary([x["add_to_first_block"] for x in res[mode]])
        onl = summary([x["first_block_to_last_online"] for x in res[mode]])
        med[mode] = (tot[0], onl[0])
        print(f"{mode:24s} {tot[0]:9.3f} [{tot[1]:.3f}-{tot[2]:.3f}]     {fst[0]:9.3f} [{fst[1]:.3f}-{fst[2]:.3f}]"
              f"  {onl[0]:9.3f} [{onl[1]:.3f}-{onl[2]:.3f}]")
    print()
    print("guest CPU time per plug (ms, median), from before the device_add to after the last online:")
    print(f"{'way':24s} " + " ".join(f"{k:>9s}" for k in CPU_UNITS) + f" {'sum':>9s}")
    for mode in MODES:
        cols = [statistics.median([x["cpu_ms"].get(k, 0) for x in res[mode]]) for k in CPU_UNITS]
        print(f"{mode:24s} " + " ".join(f"{c:9.1f}" for c in cols) + f" {sum(cols):9.1f}")
    rk, ru = med["hotplugd"][0] / med["kernel"][0], med["hotplugd"][0] / med["udev"][0]
    print()
    print(f"hotplugd / kernel auto-online : {rk:.2f} (goal <= 1.1: {'met' if rk <= 1.1 else 'MISSED'})"
          f"   [onlining phase alone: {med['hotplugd'][1] / med['kernel'][1]:.2f}]")
    print(f"hotplugd / udev rule          : {ru:.2f} (goal <= 1.0: {'met' if ru <= 1.0 else 'MISSED'})"
          f"   [onlining phase alone: {med['hotplugd'][1] / med['udev'][1]:.2f}]")
    for mode in MODES[3:]:
        x = med[mode][0]
        print(f"{mode} (no goal): {x / med['kernel'][0]:.2f} x kernel, {x / med['udev'][0]:.2f} x udev rule")
    print(f"({time.monotonic() - t_start:.0f} s including the boot)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"figures": res, "raw": b.results, "rate": rate, "residual": resid}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
