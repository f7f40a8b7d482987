#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""profile-storm.py — where an event storm's cost goes: system calls per event (strace -c) and
instructions per event (valgrind --tool=callgrind, repeatable on a noisy machine), per event kind.

For each tree size, the daemon runs on a generated tree (benchlib.Daemon: private network namespace,
private bus, Policy=offline), and for each kind of event (`add`, `online`) a burst of --events events
for random existing blocks is sent:

  strace     strace -c -f attached to the daemon only while the burst is handled (from before the
             first event until the daemon drained its socket and settled): system calls per event,
             by name.
  perf       perf record -e cpu-clock (software clock: works in VMs without hardware counters)
             attached to the daemon during the burst: where its CPU time goes, by shared object
             (kernel, libudev, libc, hotplugd, libsystemd) and by kernel/user symbol.
  callgrind  the daemon started under callgrind with collection only inside on_monitor() (the
             event handlers, reading sysfs) and manager_settle() (the once-per-burst work), reported
             separately: instructions per event and per settle. User space only: kernel time in
             the system calls shows in the strace figures.

    bench/profile-storm.py [--sizes 4096,262144] [--events 20000] [--kinds add,online]
                           [--no-strace] [--no-perf] [--no-callgrind]

Prints a table; --json prints every figure. Nothing here is timed: the figures are counts."""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402


def lines_for(kind, blocks, n, seed=7):
    rnd = random.Random(seed)
    return ["%s /devices/system/memory/memory%d memory" % (kind, rnd.choice(blocks)) for _ in range(n)]


def drain(d):
    while not d.h._monitor_queue_empty():
        d.h.assert_alive()
        time.sleep(0.01)


def strace_burst(d, lines, workdir):
    out = os.path.join(workdir, "strace.txt")
    s = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(d.pid)], stderr=subprocess.PIPE)
    time.sleep(1.0)     # attached (strace prints nothing on -c until it detaches)
    d.inject(lines)
    wait_idle(d)
    s.send_signal(signal.SIGINT)
    s.wait(60)
    calls = {}
    with open(out) as f:
        for line in f:
            tok = line.split()
            if len(tok) >= 5 and tok[0][0].isdigit() and tok[-1] != "total":
                calls[tok[-1]] = int(tok[3])
    os.unlink(out)
    return calls


def wait_idle(d, timeout=120.0):
    """The settle step runs once the socket is empty (idle priority); SIGUSR2 would add a dump, so
    wait until the daemon has slept (state S) for 0.2 s in a row instead."""
    drain(d)
    deadline, asleep_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        with open("/proc/%d/stat" % d.pid) as f:
            asleep = f.read().rsplit(")", 1)[1].split()[0] == "S"
        now = time.monotonic()
        if not asleep:
            asleep_since = None
        elif asleep_since is None:
            asleep_since = now
        elif now - asleep_since >= 0.2:
            return
        time.sleep(0.01)


def perf_burst(d, lines, workdir):
    """cpu-clock samples of the daemon during one burst: share by object and top symbols."""
    data = os.path.join(workdir, "perf.data")
    p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-p", str(d.pid), "-o", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    d.inject(lines)
    wait_idle(d)
    p.send_signal(signal.SIGINT)
    p.wait(60)
    out = {}
    for key, sort in (("by_object", "dso"), ("by_symbol", "dso,sym")):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort, "--percent-limit",
                            "1.5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        rows = []
        for line in r.stdout.decode(errors="replace").splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*)$", line)
            if m:
                rows.append((float(m.group(1)), " ".join(m.group(2).split())))
        out[key] = rows
    os.unlink(data)
    return out


def callgrind_bursts(root, kinds, n_events, workdir, blocks=None):
    """One daemon under callgrind; per kind: Ir in on_monitor and manager_settle per burst."""
    hm = benchlib._harness_module()
    hm.START_TIMEOUT = 900.0
    wrapper = os.path.join(workdir, "hotplugd-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s --dump-instr=no "
                "--collect-atstart=no --toggle-collect=on_monitor --toggle-collect=manager_settle %s \"$@\"\n"
                % (os.path.join(workdir, "callgrind.out.%p"), hm.hotplugd_binary()))
    os.chmod(wrapper, 0o755)
    os.environ["HOTPLUGD"] = wrapper
    d = benchlib.Daemon(root, os.path.join(workdir, "cg-daemon"))
    os.makedirs(d.h.tmp, exist_ok=True)
    results = {}
    try:
        d.start()
        if blocks is None:
            blocks = sorted(b["index"] for b in d.live_model(timeout=900)["blocks"])
        wait_idle(d, 900)
        dump_counts(d, workdir)                 # start-up: not counted
        for kind in kinds:
            d.inject(lines_for(kind, blocks, n_events))
            wait_idle(d, 900)                   # drained and settled
            # callgrind zeroes its counters at each dump: this one holds the burst alone.
            results[kind] = dump_counts(d, workdir)
            results[kind]["ir_per_event_on_monitor"] = results[kind]["on_monitor"] / n_events
            results[kind]["ir_per_event"] = results[kind]["total"] / n_events
    finally:
        os.environ.pop("HOTPLUGD", None)
        try:
            d.stop()
        except AssertionError as e:             # valgrind may take longer than the harness allows to exit
            log("   (callgrind daemon: %s)" % str(e).splitlines()[0])
    return results


def dump_counts(d, workdir):
    """Inclusive Ir of on_monitor and manager_settle since the last dump (callgrind_control --dump)."""
    keep = os.environ.get("PROFILE_STORM_KEEP")   # a directory: keep every dump there
    for f in os.listdir(workdir):
        if f.startswith("callgrind.out."):
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.move(os.path.join(workdir, f), os.path.join(keep, "%s.%d" % (f, time.monotonic_ns())))
            else:
                os.unlink(os.path.join(workdir, f))
    subprocess.run(["callgrind_control", "--dump", str(d.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=300)
    files = sorted(os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith("callgrind.out."))
    # callgrind_annotate --inclusive=yes on the new dump: Ir of the two toggled functions.
    counts = {"on_monitor": 0, "manager_settle": 0}
    for path in files:
        p = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", path], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, check=True)
        for line in p.stdout.decode(errors="replace").splitlines():
            # "1,234 (12.3%)  /path/file.c:function [/path/binary]"
            m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*?:([A-Za-z_]\w*)(?:'\d+)? \[", line)
            if m and m.group(2) in counts:
                counts[m.group(2)] += int(m.group(1).replace(",", ""))
    counts["total"] = sum(counts.values())
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4096,262144")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--kinds", default="add,online")
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--tmp", help="an existing tmpfs directory for the trees")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    scratch = benchlib.Scratch(a.tmp, prefix="profile-")
    res = []
    try:
        for n in (int(s) for s in a.sizes.split(",")):
            log("== %d blocks" % n)
            root, _ = scratch.tree(n)
            work = tempfile.mkdtemp(prefix="work-", dir=scratch.base)
            r = {"blocks": n, "events": a.events}
            try:
                if not (a.no_strace and a.no_perf):
                    d = benchlib.Daemon(root, os.path.join(work, "daemon"))
                    os.makedirs(d.h.tmp, exist_ok=True)
                    try:
                        d.start()
                        blocks = sorted(b["index"] for b in d.live_model()["blocks"])
                        for kind in kinds:
                            if a.no_perf:
                                continue
                            pr = perf_burst(d, lines_for(kind, blocks, a.events, seed=11), work)
                            r.setdefault("perf", {})[kind] = pr
                            log("   perf %s: %s" % (kind, ", ".join("%s %.1f%%" % (o, p) for p, o in pr["by_object"])))
                            log("     top: %s" % ", ".join("%s %.1f%%" % (o, p) for p, o in pr["by_symbol"][:8]))
                        for kind in kinds:
                            if a.no_strace:
                                continue
                            calls = strace_burst(d, lines_for(kind, blocks, a.events), work)
                            r.setdefault("syscalls", {})[kind] = calls
                            log("   strace %s: %.2f syscalls/event (%s)" % (
                                kind, sum(calls.values()) / a.events,
                                ", ".join("%s %.2f" % (k, v / a.events) for k, v in
                                          sorted(calls.items(), key=lambda x: -x[1])[:8])))
                    finally:
                        d.stop()
                if not a.no_callgrind:
                    r["callgrind"] = callgrind_bursts(root, kinds, a.events, work)
                    for kind in kinds:
                        c = r["callgrind"][kind]
                        log("   callgrind %s: %.0f Ir/event in on_monitor, %.0f Ir in manager_settle (%.0f/event)" % (
                            kind, c["on_monitor"] / a.events, c["manager_settle"], c["manager_settle"] / a.events))
            finally:
                scratch.remove(root)
            res.append(r)
    finally:
        scratch.close()
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print("%9s %-7s %12s %14s %14s  %s" % ("blocks", "event", "syscalls/ev", "Ir/ev handler", "Ir/ev settle",
                                          "top syscalls per event"))
    for r in res:
        for kind in kinds:
            calls = r.get("syscalls", {}).get(kind, {})
            c = r.get("callgrind", {}).get(kind)
            print("%9d %-7s %12s %14s %14s  %s" % (
                r["blocks"], kind, "%.2f" % (sum(calls.values()) / r["events"]) if calls else "-",
                "%.0f" % (c["on_monitor"] / r["events"]) if c else "-",
                "%.0f" % (c["manager_settle"] / r["events"]) if c else "-",
                ", ".join("%s %.2f" % (k, v / r["events"]) for k, v in sorted(calls.items(), key=lambda x: -x[1])[:7])))


if __name__ == "__main__":
    main()
