#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vm-drain.py — the retire-node drain against a plain shell loop, and D-Bus latency while a drain
runs (issue 5, "Performance"); a benchmark that prints figures, not a test.

On one QEMU/TCG guest of the VM test bed (tests/vm), a 1 GiB DIMM (8 blocks of 128 MiB) is
hot-plugged into the guest's empty NUMA node and onlined movable. Each round:

  1. every block of the node is (re)onlined with `echo online_movable > memoryX/state`, the page
     cache is dropped, and a filler process bound to the node (set_mempolicy(MPOL_BIND)) writes
     the same pattern into the same amount of anonymous memory (default 512 MiB, 4 KiB pages only:
     MADV_NOHUGEPAGE, since a varying share of THPs changes the migration work from round to
     round by a factor of 2) and sleeps; its /proc/PID/numa_maps must show that memory on the node;
  2. the node is drained, one of two ways, timed in the guest (CLOCK_MONOTONIC around the one
     command, process start included for both) and, on the host, by the CPU time the guest's vCPU
     threads ran meanwhile (/proc/<qemu>/task/<vCPU>/schedstat, thread ids from QMP
     query-cpus-fast): wall time is the goal's measure but moves with the host's load; vCPU time
     does not (descheduled vCPUs do not count), though it cannot see a path that waits idly, which
     the guest's own idle time (/proc/stat, both vCPUs, ~1 vCPU-second per second for a
     single-threaded drain on 2 vCPUs) shows:
       hotplugd  `hotplugctl retire-node N --no-eject` (preflight, hooks, drain in the daemon's
                 worker thread, quarantine; the client waits for the job's end);
       shell     `for b in <blocks>; do echo offline > /sys/devices/system/memory/memory$b/state; done`
                 in /bin/sh, over the same blocks in the order hotplugd uses (highest address
                 first; offlining migrates to the other nodes whatever the order);
     every block must be offline afterwards and the filler's pages on node 0;
  3. the filler exits.
The two ways alternate (AB BA AB …) so that drift in the host's load hits both alike; the
latency rounds (below) run first and also warm the guest up. For hotplugd
the daemon's own journal splits its time into "request -> drain starts" (job set-up, preflight,
hooks), the drain, and "drain ends -> job done".

Latency while a drain runs: an in-guest Python loop (python3-dbus, from the host root the guest
boots) calls org.freedesktop.DBus.Properties.GetAll(org.hotplugd.Hotplug1.Manager) back to back,
timing each call: for a few seconds on an idle daemon, during a hotplugd drain, and, as a control,
during the shell loop's drain (the same kernel work, the daemon only watching). Then `hotplugctl
status` in a loop (process start and bus connection included), idle and during a hotplugd drain.
Printed: p50, p99, max and the number of calls. The loops compete with the drain for the guest's
2 vCPUs, so those drains are not used for the ratio.

Under TCG on a shared 2-core host every figure moves with the host's load (printed): the ways are
interleaved and the per-round ratio is printed next to the ratio of medians for that reason.

    /usr/bin/python3 bench/vm-drain.py [--rounds N] [--mib M] [--build-dir build]

Needs what the vm test suite needs (root, qemu-system-x86, the cached kernel: tests/vm/testbed.py)
and a build directory (meson install --destdir of it goes into the guest). About 4 minutes with the
defaults (4 rounds of each way, 512 MiB) on a 2-core machine.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "vm"))

LIB = "/usr/local/lib/hotplugd-vm"
FILLER_PATH = f"{LIB}/bench-filler.py"
DRIVER_PATH = f"{LIB}/bench-drain.py"
BUSLOOP_PATH = f"{LIB}/bench-busloop.py"
DIMM_SIZE = "1G"
MEMORY = "/sys/devices/system/memory"

# Binds itself to the node, fills MiB of anonymous memory with a fixed pattern, says so, sleeps.
FILLER = r'''
import ctypes, mmap, os, signal, sys
node, mib, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_ulong(1 << node)
if libc.syscall(238, 2, ctypes.byref(mask), ctypes.sizeof(mask) * 8 + 1) != 0:   # set_mempolicy(MPOL_BIND)
    sys.exit(f"set_mempolicy: {os.strerror(ctypes.get_errno())}")
m = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)   # 4 KiB pages only: every round migrates the same pages
m.madvise(23)                     # MADV_POPULATE_WRITE: fault everything in one syscall (faster)
chunk = bytes(range(256)) * 4096
for i in range(mib):
    m[i << 20:(i + 1) << 20] = chunk
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while True:
    signal.pause()
'''

# Times one drain command in the guest, then (untimed) reads back the blocks' states, where the
# filler's pages are, hotplugd's journal for the job, and ends the filler: one guest round trip.
DRIVER = r'''
import json, os, re, signal, subprocess, sys, time
method, node, blocks, filler = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])
if method == "shell":
    argv = ["/bin/sh", "-c", "for b in %s; do echo offline > /sys/devices/system/memory/memory$b/state || exit 1; done"
            % " ".join(blocks)]
else:
    argv = ["hotplugctl", "--no-ask-password", "retire-node", str(node), "--no-eject"]


def cpu():   # (busy, idle) jiffies of all CPUs; idle = halted vCPUs (plus iowait)
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], v[3] + v[4]


c0 = cpu()
t = time.monotonic()
r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
elapsed = time.monotonic() - t
c1 = cpu()
hz = os.sysconf("SC_CLK_TCK")
res = {"elapsed": elapsed, "rc": r.returncode, "out": r.stdout[-3000:], "err": r.stderr[-3000:],
       "guest_busy_s": (c1[0] - c0[0]) / hz, "guest_idle_s": (c1[1] - c0[1]) / hz,
       "states": {b: open(f"/sys/devices/system/memory/memory{b}/state").read().strip() for b in blocks},
       "pages_on_node": sum(int(f.split("=")[1]) for line in open(f"/proc/{filler}/numa_maps")
                            for f in line.split() if f.startswith(f"N{node}="))}
m = re.search(r"Job (\d+)", r.stdout + r.stderr)
if method == "hotplugd" and m:
    j = subprocess.run(["journalctl", "-u", "hotplugd.service", "-o", "json", "--no-pager", "-n", "400",
                        "--output-fields=MESSAGE,__MONOTONIC_TIMESTAMP"], stdout=subprocess.PIPE, text=True).stdout
    res["journal"] = [(int(e["__MONOTONIC_TIMESTAMP"]) / 1e6, e["MESSAGE"]) for e in map(json.loads, j.splitlines())
                      if isinstance(e.get("MESSAGE"), str) and (f"job {m.group(1)}:" in e["MESSAGE"].lower()
                                                               or e["MESSAGE"].startswith(f"Job {m.group(1)} "))]
os.kill(filler, signal.SIGTERM)
print(json.dumps(res))
'''

# Calls in a loop until the stop file exists; writes every call's latency (s) as JSON.
BUSLOOP = r'''
import json, os, subprocess, sys, time
kind, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
lat = []
if kind == "dbus":
    import dbus
    bus = dbus.SystemBus()
    props = dbus.Interface(bus.get_object("org.hotplugd.Hotplug1", "/org/hotplugd/Hotplug1"),
                           "org.freedesktop.DBus.Properties")
    call = lambda: props.GetAll("org.hotplugd.Hotplug1.Manager")
else:
    call = lambda: subprocess.run(["hotplugctl", "status"], stdout=subprocess.DEVNULL, check=True)
call()
with open(out + ".started", "w"):
    pass
while not os.path.exists(stop):
    t = time.perf_counter()
    call()
    lat.append(time.perf_counter() - t)
with open(out + ".tmp", "w") as f:
    json.dump(lat, f)
os.rename(out + ".tmp", out)
'''


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))]


class Bench:
    def __init__(self, h, nid, blocks, mib):
        self.h, self.vm, self.nid, self.blocks, self.mib = h, h.vm, nid, blocks, mib
        self.order = sorted(blocks, reverse=True)   # hotplugd's order: highest address first

    def vcpu_ns(self):
        """Host CPU time (ns) the guest's vCPU threads have run: unlike wall time, it does not grow
        while the host runs other work, but it does not see the guest waiting either."""
        if not hasattr(self, "tids"):
            self.tids = [c["thread-id"] for c in self.vm.qmp.execute("query-cpus-fast")]
        pid = self.vm.proc.pid
        return sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0]) for t in self.tids)

    def prepare(self):
        """Blocks online movable, page cache dropped, the filler's data on the node; returns its pid."""
        vm, nid = self.vm, self.nid
        blocks = " ".join(map(str, sorted(self.blocks)))
        out = vm.sh(
            f"hotplugctl unquarantine {nid} >/dev/null 2>&1; "
            f"for b in {blocks}; do read s < {MEMORY}/memory$b/state; [ $s = online ] || "
            f"/bin/echo online_movable > {MEMORY}/memory$b/state || exit 1; done; "
            f"for b in {blocks}; do read z < {MEMORY}/memory$b/valid_zones; echo \"$b $z\"; done; "
            "systemctl stop hpvm-filler.service 2>/dev/null; systemctl reset-failed hpvm-filler.service 2>/dev/null; "
            "rm -f /run/hpvm-filler.ready; sync; echo 3 > /proc/sys/vm/drop_caches")
        zones = dict(line.split(" ", 1) for line in out.splitlines())
        if any(z != "Movable" for z in zones.values()):
            raise RuntimeError(f"blocks not online movable: {zones}")
        t0 = time.monotonic()
        vm.run(f"systemd-run --unit=hpvm-filler --collect -q /usr/bin/python3 {FILLER_PATH} {nid} "
               f"{self.mib} /run/hpvm-filler.ready")
        vm.wait_guest("[ -e /run/hpvm-filler.ready ]", 180, "the filler to fill its memory")
        self.fill_s = time.monotonic() - t0
        # Its pages on the node (numa_maps), and no THP in the data's mapping (the one of that size).
        pid, pages, thp = vm.sh(
            "p=$(cat /run/hpvm-filler.ready); echo $p; "
            f"grep -o ' N{nid}=[0-9]*' /proc/$p/numa_maps | awk -F= '{{s += $2}} END {{print s + 0}}'; "
            f"awk '/^Size:/ {{d = ($2 == {self.mib * 1024})}} /^AnonHugePages:/ && d {{s += $2}} "
            "END {print s + 0}' /proc/$p/smaps").split()
        if int(pages) < self.mib * 256 * 0.98:
            raise RuntimeError(f"the filler has {pages} pages on node {nid}, want {self.mib * 256}")
        if thp != "0":
            raise RuntimeError(f"the filler's data has {thp} kB of transparent huge pages despite MADV_NOHUGEPAGE")
        return int(pid)

    def drain(self, method, pid):
        vm, nid = self.vm, self.nid
        c0 = self.vcpu_ns()
        r = vm.run(f"/usr/bin/python3 {DRIVER_PATH} {method} {nid} {','.join(map(str, self.order))} {pid}",
                   timeout=600)
        res = json.loads(r.stdout)
        res["vcpu_s"] = (self.vcpu_ns() - c0) / 1e9   # includes the untimed read-back: a few %
        if res["rc"] != 0:
            raise RuntimeError(f"{method} drain failed: {res}")
        if any(s != "offline" for s in res["states"].values()):
            raise RuntimeError(f"{method}: blocks not offline after the drain: {res['states']}")
        if res["pages_on_node"] > 0:
            raise RuntimeError(f"{method}: the filler still has {res['pages_on_node']} pages on node {nid}")
        if method == "hotplugd":
            res["phases"] = self.job_phases(res.get("journal", []))
        return res

    @staticmethod
    def job_phases(journal):
        """From hotplugd's journal: request -> drain start, drain, drain end -> job done (s)."""
        t = {}
        for ts, msg in journal:
            if re.match(r"Job \d+: retire node", msg):
                t["request"] = ts
            elif re.match(r"Retire job \d+: draining", msg):
                t["drain"] = ts
            elif re.match(r"Retire job \d+: memory block \d+ offline", msg):
                t["last_offline"] = ts
            elif re.match(r"Job \d+ \(retire-node", msg):
                t["done"] = ts
        if len(t) < 4:
            return {"journal": t}
        return {"setup": t["drain"] - t["request"], "drain": t["last_offline"] - t["drain"],
                "finish": t["done"] - t["last_offline"]}

    def latency(self, kind, methods, seconds_idle=4):
        """{"idle": [s], method: [s] for each drain method, method + "_s": drain seconds}."""
        vm = self.vm

        def loop_start(tag):
            vm.run(f"rm -f /run/hpvm-{tag}*; systemd-run --unit=hpvm-{tag} --collect -q /usr/bin/python3 "
                   f"{BUSLOOP_PATH} {kind} /run/hpvm-{tag}.stop /run/hpvm-{tag}.json")
            vm.wait_guest(f"[ -e /run/hpvm-{tag}.json.started ]", 60, f"the {kind} loop to start")

        def loop_stop(tag):
            vm.run(f"touch /run/hpvm-{tag}.stop")
            vm.wait_guest(f"[ -e /run/hpvm-{tag}.json ]", 60, f"the {kind} loop to end")
            return json.loads(vm.sh(f"cat /run/hpvm-{tag}.json"))

        out = {}
        loop_start("idle")
        time.sleep(seconds_idle)
        out["idle"] = loop_stop("idle")
        for method in methods:
            pid = self.prepare()
            loop_start(method)
            res = self.drain(method, pid)
            out[method] = loop_stop(method)
            out[method + "_s"] = res["elapsed"]
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="drains per way for the ratio (default 4)")
    ap.add_argument("--mib", type=int, default=512, help="MiB of data on the node (default 512)")
    ap.add_argument("--build-dir", default=os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args()
    os.environ["HOTPLUGD_BUILD_DIR"] = os.path.abspath(args.build_dir)
    os.environ.setdefault("HOTPLUGD_VM_LOG_DIR", os.path.join(os.environ["HOTPLUGD_BUILD_DIR"], "meson-logs", "vm"))
    import hotplugd_vm  # noqa: E402 (needs the environment above)

    t_start = time.monotonic()
    extra = {FILLER_PATH: (FILLER, 0o755), DRIVER_PATH: (DRIVER, 0o755), BUSLOOP_PATH: (BUSLOOP, 0o755)}
    # 2 GiB of boot memory on node 0: room for the drained data plus retire's default Reserve=512M.
    with hotplugd_vm.HotplugdVM("bench-drain", mem="2G", slots=4, maxmem="6G", extra_files=extra) as h:
        vm = h.vm
        nid = h.empty_node()
        h.start("[Online]\nPolicy=offline\n")
        d = vm.plug_dimm(vm.nodes - 1, DIMM_SIZE)
        blocks = vm.dimm_blocks(d)
        b = Bench(h, nid, blocks, args.mib)
        dbus_ok = vm.run("/usr/bin/python3 -c 'import dbus'", check=False).rc == 0
        print(f"guest: Linux {vm.sh('uname -r')}, {vm.smp} vCPUs under QEMU TCG, {vm.mem} on node 0; "
              f"node {nid}: {len(blocks)} blocks of {vm.block_size() >> 20} MiB (memory{min(blocks)}-"
              f"{max(blocks)}), {args.mib} MiB of data; python3-dbus in the guest: {dbus_ok}", flush=True)
        load0 = os.getloadavg()
        # Latency rounds first: they also warm the guest up (the first drain of a boot is slower).
        lat = {}
        plan = [("dbus", ("hotplugd", "shell"))] if dbus_ok else []
        plan.append(("hotplugctl", ("hotplugd",)))
        for kind, methods in plan:
            lat[kind] = b.latency(kind, methods)
            print(f"latency ({kind}): {len(lat[kind]['idle'])} calls idle; " + "; ".join(
                f"{len(lat[kind][m])} during a {lat[kind][m + '_s']:.2f} s {m} drain" for m in methods), flush=True)
        results = {"hotplugd": [], "shell": []}
        for r in range(args.rounds):
            for method in (("hotplugd", "shell") if r % 2 == 0 else ("shell", "hotplugd")):
                pid = b.prepare()
                res = b.drain(method, pid)
                results[method].append(res)
                ph = res.get("phases") or {}
                extra_txt = (f" (journal: set-up {ph['setup']:.2f} s, drain {ph['drain']:.2f} s, "
                             f"finish {ph['finish']:.2f} s)" if "setup" in ph else "")
                print(f"round {r + 1} {method:8s} {res['elapsed']:6.2f} s wall, {res['vcpu_s']:5.2f} s vCPU, "
                      f"guest idle {res['guest_idle_s']:5.2f} s{extra_txt}  [fill {b.fill_s:.1f} s]", flush=True)
        problems = vm.run("journalctl -u hotplugd.service -p warning -o cat --no-pager | sort | uniq -c | "
                          "sort -rn | head -5", check=False).stdout.strip()

    load1 = os.getloadavg()
    print()
    print(f"host load average (1 min) at the start and end of the measurements: {load0[0]:.1f}, {load1[0]:.1f} "
          f"on {os.cpu_count()} CPUs (other work on the host makes TCG figures noisy)")
    print(f"Drain of {args.mib} MiB of data on {len(blocks)} blocks, {args.rounds} rounds each, seconds:")
    ratios = {}
    for key, label in (("elapsed", "wall time in the guest"), ("vcpu_s", "host CPU time of the vCPUs"),
                       ("guest_idle_s", "guest idle CPU time")):
        med = {}
        for method in ("hotplugd", "shell"):
            v = [x[key] for x in results[method]]
            med[method] = statistics.median(v)
            print(f"  {label:28s} {method:8s} median {med[method]:6.2f}  [{min(v):.2f}-{max(v):.2f}]  all: "
                  + " ".join(f"{x:.2f}" for x in v))
        if key != "guest_idle_s":
            paired = [x[key] / y[key] for x, y in zip(results["hotplugd"], results["shell"])]
            ratios[key] = (med["hotplugd"] / med["shell"], statistics.median(paired), paired)
    ph = [x["phases"] for x in results["hotplugd"] if x.get("phases") and "setup" in x["phases"]]
    if ph:
        print(f"  hotplugd per its journal (median): set-up (job, preflight, hooks) "
              f"{statistics.median(p['setup'] for p in ph):.2f} s, drain "
              f"{statistics.median(p['drain'] for p in ph):.2f} s, finish "
              f"{statistics.median(p['finish'] for p in ph):.2f} s")
    for key, label in (("elapsed", "wall time"), ("vcpu_s", "vCPU time")):
        rm, rp, paired = ratios[key]
        verdict = ("met" if max(rm, rp) <= 1.05 else "MISSED" if min(rm, rp) > 1.05 else "within the noise")
        print(f"hotplugd / shell loop, {label:9s}: {rm:.3f} (ratio of medians), {rp:.3f} (median of the per-round "
              f"ratios: {' '.join(f'{x:.2f}' for x in paired)}) (goal <= 1.05: {verdict})")
    print()
    print("Call latency (ms) while nothing runs, during a hotplugd drain (retire-node --no-eject), and during "
          "the shell loop's drain (control: the same kernel work without the daemon draining):")
    for kind, v in lat.items():
        what = ("GetAll(Manager), python3-dbus loop" if kind == "dbus"
                else "`hotplugctl status` loop (process start incl.)")
        for phase in ("idle", "hotplugd", "shell"):
            if phase not in v:
                continue
            x = [s * 1e3 for s in v[phase]]
            if not x:
                print(f"  {what:48s} {phase:8s}: no calls completed")
                continue
            p99 = pct(x, 99)
            goal = f"  goal p99 <= 10 ms: {'met' if p99 <= 10 else 'MISSED'}" if phase == "hotplugd" else ""
            print(f"  {what:48s} {phase:8s}: p50 {pct(x, 50):6.1f}  p99 {p99:6.1f}  max {max(x):6.1f}"
                  f"  ({len(x)} calls){goal}")
    if problems:
        print(f"\nhotplugd warnings in the guest journal (count, message):\n{problems}")
    print(f"({time.monotonic() - t_start:.0f} s including the boot)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"drains": results, "latency": lat}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
