#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""run-all.py — every benchmark of issue 6, one table of goals, JSON, markdown and a plot.

    bench/run-all.py --vm       everything, the real-kernel benchmarks in a QEMU guest included (~30 min)
    bench/run-all.py [--quick] [--vm] [--build-dir DIR] [--tmp DIR] [--out DIR] [--only LIST]
    ninja -C build bench          (the same as bench/run-all.py --build-dir build)
    ninja -C build bench-quick    (--quick)

What it runs, one generated tree at a time (tests/gen-tree.py simple_spec: 128 MiB blocks in 8 nodes,
on a private tmpfs with unlimited inodes), each tree serving every benchmark that needs its size:

  cold      cold scan: `hotplugd --root T --dump-model` vs `lsmem --sysroot T -o RANGE,STATE,NODE,ZONES`,
            interleaved, median wall time, peak RSS (bench/cold-scan.py measure()); syscalls per block
            (strace -c) on the middle size. Goals: ratio <= 0.4, RSS <= 16 MiB + 64 B/block.
  storm     100,000 udev-format add/online uevents into the running daemon (private network namespace),
            on the smallest and the largest tree (bench/event-storm.py storms()): events/s, time to
            settle, live model == fresh scan, per-event cost ratio largest/smallest tree (goal <= 1.2).
  queries   on the middle tree, the running daemon answering hotplugctl vs lsmem rescanning, interleaved:
            `hotplugctl --json=short list-blocks --all` (one row per block) vs `lsmem -J -a` and the default
            merged view `hotplugctl --json=short list-blocks` vs `lsmem -J` (goal <= 0.1x), `hotplugctl status`
            vs `lsmem --summary=only` (goal <= 0.01x).
  memory    the daemon's RSS (and peak, VmHWM) once it has loaded each tree (goal 16 MiB + 64 B/block),
            and RSS and open fds after each of 10 bursts of 100,000 events = 10^6 events (goal: flat).
  bus       bench/bus-load (built with the project): 16 clients, each its own connection, calling
            Properties.GetAll on node objects back to back, latency taken in-process; idle, then while a
            100,000-event storm runs (goal p99 <= 10 ms during the storm).

  online    (--vm, real kernel) bench/vm-online-latency.py: a 2 GiB DIMM hot-plugged into a QEMU/TCG guest,
            device_add -> last block online, kernel auto-online vs a udev rule vs hotplugd (goals <= 1.1x
            the kernel's, <= 1.0x the udev rule's), 12 interleaved rounds (~6 min), and the guest CPU
            time each way's services spend per plug.
  drain     (--vm, real kernel) bench/vm-drain.py: draining 512 MiB of data off a node, hotplugctl
            retire-node --no-eject vs a shell loop of `echo offline`, 4 interleaved rounds (goal <= 1.05x),
            and D-Bus call latency during the drain (~6 min).

Output: the goals table on stdout; bench/results.json (every figure), bench/results.md, bench/cold-scan.dat
and bench/cold-scan.png (drawn by bench/plot.gp with gnuplot); a full run (not --quick, not --out) also
publishes: doc/performance.md is rewritten from it and the goals table in README.md (between its
markers) replaced, so the published figures are always those of one run.
--quick uses small sizes (1,024 / 4,096 / 16,384 blocks, 20,000-event storms) for a ~2-minute run;
its results go to bench/results-quick.* unless --out is given, so they never replace the full ones.

Set-up: as root, installs what is missing from Debian (gnuplot-nox, strace, time) with apt-get.
Never touches the host's memory: the daemon only runs with --root on generated trees, and uevents
only go into a private network namespace (the events harness refuses the host's).
This prints figures; it does not pass or fail on them (exit 0 unless a benchmark could not run).
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _early_build_dir():
    # benchlib reads HOTPLUGD_BUILD_DIR when imported: honour --build-dir before that.
    for i, a in enumerate(sys.argv):
        if a == "--build-dir" and i + 1 < len(sys.argv):
            os.environ["HOTPLUGD_BUILD_DIR"] = os.path.abspath(sys.argv[i + 1])
        elif a.startswith("--build-dir="):
            os.environ["HOTPLUGD_BUILD_DIR"] = os.path.abspath(a.split("=", 1)[1])


_early_build_dir()
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cold_scan = _load("cold_scan", "cold-scan.py")
event_storm = _load("event_storm", "event-storm.py")
profile_storm = _load("profile_storm", "profile-storm.py")

LSMEM_COLUMNS = cold_scan.LSMEM_COLUMNS
GOALS = {"cold_ratio": 0.4, "storm_ratio": 1.2, "list_ratio": 0.1, "status_ratio": 0.01, "bus_p99_ms": 10.0,
         "online_vs_kernel": 1.1, "online_vs_udev": 1.0, "drain_ratio": 1.05}
VM_BENCHES = {"online": "vm-online-latency.py", "drain": "vm-drain.py"}

FULL = dict(cold_sizes=[4096, 65536, 262144], cold_runs={4096: 7, 65536: 5, 262144: 5}, strace_size=65536,
            storm_sizes=[4096, 262144], storm_events=100000, storm_repeat=3, strace_events=10000, callgrind_events=10000,
            query_size=65536, query_runs=5, leak_rounds=10, leak_events=100000,
            bus_clients=16, bus_idle_s=3.0, bus_storms=5, bus_events=100000)
QUICK = dict(cold_sizes=[1024, 4096, 16384], cold_runs={1024: 5, 4096: 5, 16384: 3}, strace_size=4096,
             storm_sizes=[1024, 16384], storm_events=20000, storm_repeat=2, strace_events=2000, callgrind_events=2000,
             query_size=16384, query_runs=3, leak_rounds=10, leak_events=10000,
             bus_clients=16, bus_idle_s=1.5, bus_storms=3, bus_events=20000)


# ------------------------------------------------------------------------------------------------
# set-up

def setup(need_plot):
    """Debian packages the benchmarks use; installed (as root) when missing."""
    want = {"strace": "strace", "/usr/bin/time": "time", "lsmem": "util-linux", "dbus-daemon": "dbus"}
    if need_plot:
        want["gnuplot"] = "gnuplot-nox"
    missing = sorted({pkg for tool, pkg in want.items() if not (shutil.which(tool) or os.access(tool, os.X_OK))})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing %s" % " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env,
                       stdout=subprocess.DEVNULL, check=False)
    still = sorted({pkg for tool, pkg in want.items() if not (shutil.which(tool) or os.access(tool, os.X_OK))})
    if still:
        log("missing (some figures will be absent): %s" % " ".join(still))


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line[len(key):].lstrip(" \t:").strip().strip('"')
        except OSError:
            return None

    def git(*args):
        p = subprocess.run(["git", "-C", benchlib.SOURCE_DIR, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    lsmem = subprocess.run(["lsmem", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_kernel": platform.release(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(first("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "loadavg_start": os.getloadavg(),
        "os": first("/etc/os-release", "PRETTY_NAME=") or "",
        "lsmem": lsmem.stdout.decode().strip(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "worktree_modified": bool(status),
    }


# ------------------------------------------------------------------------------------------------
# benchmarks that need the running daemon

def hotplugctl_argv(*args):
    return [benchlib.binary("client", "hotplugctl"), *args]


def queries(d, root, n, runs):
    """The running daemon answering hotplugctl vs lsmem rescanning the tree; interleaved medians."""
    env = d.env()
    pairs = {
        "list_all": (hotplugctl_argv("--json=short", "list-blocks", "--all"),
                     ["lsmem", "-J", "--sysroot", root, "-a", "-o", LSMEM_COLUMNS], GOALS["list_ratio"]),
        "list_merged": (hotplugctl_argv("--json=short", "list-blocks"),
                        ["lsmem", "-J", "--sysroot", root, "-o", LSMEM_COLUMNS], GOALS["list_ratio"]),
        "status": (hotplugctl_argv("status"), ["lsmem", "--sysroot", root, "--summary=only"], GOALS["status_ratio"]),
    }
    # Not timed: both answer, and agree on the number of blocks.
    p = subprocess.run(pairs["list_all"][0], env=env, stdout=subprocess.PIPE, check=True)
    rows_hp = len(json.loads(p.stdout))
    p = subprocess.run(pairs["list_all"][1], stdout=subprocess.PIPE, check=True)
    rows_ls = len(json.loads(p.stdout)["memory"])
    lsmem_path = shutil.which("lsmem")
    out = {"blocks": n, "runs": runs, "rows_hotplugctl_all": rows_hp, "rows_lsmem_all": rows_ls, "root": root}
    for name, (hp, ls, goal) in pairs.items():
        ls = [lsmem_path] + ls[1:]
        t = benchlib.interleaved({"hotplugctl": hp, "lsmem": ls}, runs, env=env)
        r = {"hotplugctl": benchlib.summary(t["hotplugctl"]), "lsmem": benchlib.summary(t["lsmem"]),
             "commands": {"hotplugctl": " ".join(["hotplugctl"] + hp[1:]), "lsmem": " ".join(["lsmem"] + ls[1:])}}
        r["ratio"] = r["hotplugctl"]["median_s"] / r["lsmem"]["median_s"]
        r["goal"] = goal
        r["ok"] = r["ratio"] <= goal
        out[name] = r
        log("    %-11s hotplugctl %7.1f ms, lsmem %8.1f ms: %.4fx" % (
            name, r["hotplugctl"]["median_s"] * 1e3, r["lsmem"]["median_s"] * 1e3, r["ratio"]))
    return out


def syscalls_per_event(d, events, workdir):
    """strace -c on the daemon during one burst of `add` and one of `online` events (not timed)."""
    blocks = sorted(b["index"] for b in d.live_model()["blocks"])
    out = {}
    for kind in ("add", "online"):
        calls = profile_storm.strace_burst(d, profile_storm.lines_for(kind, blocks, events), workdir)
        out[kind] = {"events": events, "total": round(sum(calls.values()) / events, 2),
                     "by_call": {k: round(v / events, 2) for k, v in sorted(calls.items(), key=lambda x: -x[1])
                                 if v / events >= 0.05}}
        log("    strace, %d %s events: %.2f syscalls/event (%s)" % (
            events, kind, out[kind]["total"], ", ".join("%s %.2f" % kv for kv in out[kind]["by_call"].items())))
    return out


def leak(d, rounds, events):
    """rounds bursts of events each; RSS and fds after each (settled) burst."""
    model = d.live_model()
    blocks = sorted(b["index"] for b in model["blocks"])
    samples = [dict(d.figures(), events=0)]
    total = 0
    for i in range(rounds):
        lines = event_storm.storm_lines(blocks, events, seed=100 + i)
        d.inject(lines)
        d.live_model()
        total += events
        samples.append(dict(d.figures(), events=total))
    first, last = samples[1], samples[-1]
    tolerance = max(128, first["rss_kib"] // 100)
    out = {"blocks": len(blocks), "rounds": rounds, "events_per_round": events, "events": total,
           "samples": [{k: s[k] for k in ("events", "rss_kib", "hwm_kib", "fds")} for s in samples],
           "rss_loaded_kib": samples[0]["rss_kib"], "rss_first_burst_kib": first["rss_kib"],
           "rss_last_kib": last["rss_kib"], "growth_after_first_burst_kib": last["rss_kib"] - first["rss_kib"],
           "tolerance_kib": tolerance, "fds_loaded": samples[0]["fds"], "fds_last": last["fds"]}
    out["flat"] = out["growth_after_first_burst_kib"] <= tolerance and out["fds_last"] == out["fds_loaded"]
    log("    RSS after each of %d bursts (KiB): %s; fds %d -> %d" % (
        rounds, " ".join(str(s["rss_kib"]) for s in samples[1:]), out["fds_loaded"], out["fds_last"]))
    return out


def bus_load(d, clients, idle_s, storms, events):
    """bench/bus-load against the daemon: idle, then during storms (the window is from the first
    event sent until the daemon has drained its uevent socket)."""
    bl = benchlib.binary("bench", "bus-load")
    nodes = 8
    argv = [bl, "--address", d.bus_address, "--clients", str(clients), "--nodes", str(nodes)]
    p = subprocess.run(argv + ["--duration", str(idle_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=idle_s + 60)
    if p.returncode != 0:
        raise RuntimeError("bus-load failed: %s" % p.stderr.decode(errors="replace"))
    idle = json.loads(p.stdout)
    log("    idle: %d calls/s, p50 %.2f ms, p99 %.2f ms" % (idle["calls_per_s"], idle["p50_us"] / 1e3,
                                                            idle["p99_us"] / 1e3))
    model = d.live_model()
    blocks = sorted(b["index"] for b in model["blocks"])
    runs = []
    for i in range(storms):
        lines = event_storm.storm_lines(blocks, events, seed=200 + i)
        c0 = d.figures()["cpu_s"]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready = p.stderr.readline()
            if ready != b"ready\n":
                raise RuntimeError("bus-load did not start: %s%s" % (ready.decode(errors="replace"),
                                                                      p.stderr.read().decode(errors="replace")))
            t0 = time.monotonic()
            d.inject(lines)
            while not d.h._monitor_queue_empty():
                d.h.assert_alive()
                time.sleep(0.002)
            drained = time.monotonic() - t0
        finally:
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        r = json.loads(out)
        d.live_model()
        r.update(events=events, drained_s=round(drained, 3), daemon_cpu_s=round(d.figures()["cpu_s"] - c0, 3))
        runs.append(r)
        log("    storm %d: %d events drained in %.2f s; %d calls (%d/s), p50 %.2f ms, p99 %.2f ms, max %.1f ms" % (
            i + 1, events, drained, r["calls"], r["calls_per_s"], r["p50_us"] / 1e3, r["p99_us"] / 1e3,
            r["max_us"] / 1e3))
    med = lambda k: benchlib.median([r[k] for r in runs])  # noqa: E731
    return {"clients": clients, "nodes": nodes, "idle": idle, "storm_runs": runs,
            "storm": {"p50_us": med("p50_us"), "p99_us": med("p99_us"), "p999_us": med("p999_us"),
                      "max_us": max(r["max_us"] for r in runs), "calls_per_s": med("calls_per_s"),
                      "errors": sum(r["errors"] for r in runs), "drained_s": med("drained_s")},
            "command": "bench/bus-load --address $DBUS_SYSTEM_BUS_ADDRESS --clients %d --nodes %d" % (clients, nodes)}


# ------------------------------------------------------------------------------------------------
# the goals table

def fmt_ms(s):
    return "%.1f ms" % (s * 1e3) if s < 10 else "%.2f s" % s


def mib(kib):
    return "%.1f MiB" % (kib / 1024)


def vm_bench(key, quick, scratch_dir):
    """Runs one real-kernel benchmark (its own QEMU guest) with its output streamed; returns the
    medians it measured, from its --json file."""
    script = os.path.join(HERE, VM_BENCHES[key])
    path = os.path.join(scratch_dir, ".vm-%s.json" % key)
    argv = ["/usr/bin/python3", script, "--json", path, "--rounds", "2" if quick else ("12" if key == "online" else "4")]
    log("== real kernel: %s" % " ".join(argv[1:]))
    t0 = time.monotonic()
    subprocess.run(argv, check=True, env=dict(os.environ))
    with open(path) as f:
        raw = json.load(f)
    os.unlink(path)
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    out = {"elapsed_s": round(time.monotonic() - t0, 1), "rounds": int(argv[-1])}
    if key == "online":
        for mode, recs in raw["figures"].items():
            out[mode] = {"total_s": med([r["total"] for r in recs]),
                         "onlining_s": med([r["first_block_to_last_online"] for r in recs]),
                         "all_s": [round(r["total"], 3) for r in recs],
                         # guest CPU time per plug of the services that handle the uevents
                         "cpu_ms": {u: med([r["cpu_ms"].get(u, 0) for r in recs])
                                    for u in sorted({u for r in recs for u in r.get("cpu_ms", {})})}}
        out["clock_residual_ms"] = raw["residual"] * 1e3
    else:
        for method, recs in raw["drains"].items():
            out[method] = {k: med([r[k] for r in recs]) for k in ("elapsed", "vcpu_s")}
            out[method]["all_elapsed"] = [round(r["elapsed"], 2) for r in recs]
        lat = raw["latency"].get("dbus") or {}
        for phase in ("idle", "hotplugd", "shell"):
            x = sorted(v * 1e3 for v in lat.get(phase, []))
            if x:
                out.setdefault("dbus_ms", {})[phase] = {"p50": x[len(x) // 2], "p99": x[min(len(x) - 1, int(len(x) * 0.99))],
                                                       "calls": len(x)}
    return out


def goal_rows(R):
    rows = []   # (section, what, goal, measured, met: True/False/None)

    def add(section, what, goal, measured, met):
        rows.append({"section": section, "what": what, "goal": goal, "measured": measured, "met": met})

    for c in R.get("cold_scan", []):
        n = c["blocks"]
        add("cold scan", "%d blocks: hotplugd/lsmem wall time" % n, "<= %.1fx" % GOALS["cold_ratio"],
            "%.3fx (%s vs %s)" % (c["ratio"], fmt_ms(c["hotplugd"]["median_s"]), fmt_ms(c["lsmem"]["median_s"])),
            c["ratio_ok"])
        add("cold scan", "%d blocks: hotplugd --dump-model peak RSS" % n, "<= %s" % mib(c["rss_goal_kib"]),
            "%s (lsmem %s)" % (mib(c["hotplugd"]["peak_rss_kib"]), mib(c["lsmem"]["peak_rss_kib"])), c["rss_ok"])
    st = R.get("storm")
    if st:
        for r in st["results"]:
            add("event storm", "%d events on %d blocks: settle, rate" % (r["events"], r["blocks"]), "-",
                "%.2f s, %d events/s (%.1f us/event wall, %.1f us daemon CPU)" % (
                    r["settled_s"], r["events_per_s"], r["us_per_event"], r["cpu_us_per_event"]), None)
            add("event storm", "%d blocks: live model == fresh scan" % r["blocks"], "equal",
                "equal" if r["model_equals_fresh_scan"] else "DIFFERENT: %s" % "; ".join(r["diff"]),
                r["model_equals_fresh_scan"])
        if st.get("ratio"):
            q = st["ratio"]
            ir = ""
            if q.get("ir") is not None:
                ir = "; instructions (callgrind): %.2fx" % q["ir"]
            add("event storm", "per-event cost %d vs %d blocks (daemon CPU)" % (q["big_blocks"], q["small_blocks"]),
                "<= %.1fx" % GOALS["storm_ratio"], "%.2fx (wall time to settle: %.2fx%s)" % (q["cpu"], q["wall"], ir),
                q["cpu"] <= GOALS["storm_ratio"])
    q = R.get("queries")
    if q:
        for key, label in (("list_all", "hotplugctl --json=short list-blocks --all vs lsmem -J -a"),
                           ("list_merged", "hotplugctl --json=short list-blocks vs lsmem -J (merged ranges)"),
                           ("status", "hotplugctl status vs lsmem --summary=only")):
            r = q[key]
            add("queries", "%d blocks: %s" % (q["blocks"], label), "<= %gx" % r["goal"],
                "%.4fx (%s vs %s)" % (r["ratio"], fmt_ms(r["hotplugctl"]["median_s"]), fmt_ms(r["lsmem"]["median_s"])),
                r["ok"])
    m = R.get("memory")
    if m:
        for r in m.get("loaded", []):
            add("memory", "daemon on %d blocks: RSS after loading (peak)" % r["blocks"], "<= %s" % mib(r["goal_kib"]),
                "%s (peak %s), %d fds" % (mib(r["rss_kib"]), mib(r["hwm_kib"]), r["fds"]), r["hwm_kib"] <= r["goal_kib"])
        lk = m.get("leak")
        if lk:
            add("memory", "RSS after %s events on %d blocks" % (format(lk["events"], ","), lk["blocks"]),
                "flat (+<= %d KiB after the 1st burst), fds unchanged" % lk["tolerance_kib"],
                "%s loaded, %s after 1st burst, %s after the last (%+d KiB); fds %d -> %d" % (
                    mib(lk["rss_loaded_kib"]), mib(lk["rss_first_burst_kib"]), mib(lk["rss_last_kib"]),
                    lk["growth_after_first_burst_kib"], lk["fds_loaded"], lk["fds_last"]), lk["flat"])
    for key, section in (("vm_online", "onlining latency (real kernel)"), ("vm_drain", "drain (real kernel)")):
        if R.get(key, {}).get("error"):
            add(section, "not measured: the benchmark failed", "-", R[key]["error"], False)
    o = R.get("vm_online")
    if o and not o.get("error"):
        k, u = o["kernel"]["total_s"], o["udev"]["total_s"]
        for mode, label in (("kernel", "kernel auto-online (auto_online_blocks=online_movable)"),
                            ("udev", "udev rule ATTR{state}=\"online_movable\""),
                            ("hotplugd", "hotplugd, TakeOver=yes (uniform policy handed to the kernel)"),
                            ("hotplugd-self", "hotplugd deciding each block itself (KernelHandoff=no)"),
                            ("hotplugd-kernel-events", "hotplugd itself, EventSource=kernel")):
            if mode not in o:
                continue
            t = o[mode]["total_s"]
            cpu = o[mode].get("cpu_ms", {})
            add("onlining latency (real kernel)", "2 GiB DIMM, device_add -> last block online: %s" % label, "-",
                "%.3f s (%.2fx kernel, %.2fx udev); onlining phase %.3f s; guest CPU per plug %.0f ms (%s)" % (
                    t, t / k, t / u, o[mode]["onlining_s"], sum(cpu.values()),
                    ", ".join("%s %.0f" % (x, cpu[x]) for x in ("hotplugd", "udevd", "journald") if cpu.get(x))),
                None)
        t = o["hotplugd"]["total_s"]
        add("onlining latency (real kernel)", "hotplugd / kernel auto-online", "<= %.1fx" % GOALS["online_vs_kernel"],
            "%.2fx" % (t / k), t / k <= GOALS["online_vs_kernel"])
        add("onlining latency (real kernel)", "hotplugd / udev rule", "<= %.1fx" % GOALS["online_vs_udev"],
            "%.2fx" % (t / u), t / u <= GOALS["online_vs_udev"])
    d = R.get("vm_drain")
    if d and not d.get("error"):
        rw = d["hotplugd"]["elapsed"] / d["shell"]["elapsed"]
        rc = d["hotplugd"]["vcpu_s"] / d["shell"]["vcpu_s"]
        add("drain (real kernel)", "512 MiB of data off a node: retire-node --no-eject / shell loop of echo offline",
            "<= %.2fx" % GOALS["drain_ratio"], "%.2fx wall (%.2f vs %.2f s), %.2fx vCPU" % (
                rw, d["hotplugd"]["elapsed"], d["shell"]["elapsed"], rc), rw <= GOALS["drain_ratio"])
        lat = d.get("dbus_ms", {})
        if "hotplugd" in lat:
            # Informational: under TCG the guest's own scheduling noise dominates (see the idle figure);
            # the goal row for call latency is "D-Bus under load" on the host.
            add("drain (real kernel)", "D-Bus GetAll in the TCG guest during the drain", "-",
                "p50 %.1f ms, p99 %.1f ms (idle guest p99 %.1f ms, during the shell drain %.1f ms)" % (
                    lat["hotplugd"]["p50"], lat["hotplugd"]["p99"], lat.get("idle", {}).get("p99", float("nan")),
                    lat.get("shell", {}).get("p99", float("nan"))), None)
    b = R.get("bus")
    if b:
        s = b["storm"]
        add("D-Bus under load", "%d clients, GetAll on nodes, idle" % b["clients"], "-",
            "p50 %.2f ms, p99 %.2f ms, %d calls/s" % (b["idle"]["p50_us"] / 1e3, b["idle"]["p99_us"] / 1e3,
                                                      b["idle"]["calls_per_s"]), None)
        add("D-Bus under load", "%d clients during a %s-event storm on %d blocks" % (
            b["clients"], format(b["storm_runs"][0]["events"], ","), b["blocks"]), "p99 <= %g ms" % GOALS["bus_p99_ms"],
            "p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d calls/s, %d errors" % (
                s["p50_us"] / 1e3, s["p99_us"] / 1e3, s["max_us"] / 1e3, s["calls_per_s"], s["errors"]),
            s["p99_us"] / 1e3 <= GOALS["bus_p99_ms"] and s["errors"] == 0)
    return rows


def print_table(rows):
    w1 = max(len(r["section"]) + 2 + len(r["what"]) for r in rows)
    w2 = max(len(r["goal"]) for r in rows)
    print("%-*s  %-*s  %-6s  %s" % (w1, "benchmark", w2, "goal", "met?", "measured"))
    for r in rows:
        met = "-" if r["met"] is None else ("met" if r["met"] else "MISSED")
        print("%-*s  %-*s  %-6s  %s" % (w1, r["section"] + ": " + r["what"], w2, r["goal"], met, r["measured"]))


def markdown(R, rows, quick):
    M = R["machine"]
    out = []
    out.append("## Results%s\n" % (" (quick run, small sizes)" if quick else ""))
    out.append("Measured %s on %s (%d CPUs, %.0f GiB, %s, kernel %s), hotplugd %s%s, %s. Load average at the "
               "start %.2f, at the end %.2f; figures are medians of interleaved runs." % (M["date"], M["cpu"], M["cpus"], M["memory_gib"], M["os"], M["host_kernel"], M["commit"],
                          " with local changes" if M["worktree_modified"] else "", M["lsmem"], M["loadavg_start"][0],
                          M["loadavg_end"][0]))
    out.append("Trees: `tests/gen-tree.py` `simple_spec(N)` (128 MiB blocks in 8 nodes, 3/4 online) on tmpfs. "
               "Reproduce everything, as root, with `%s` (%.0f min here).\n" % (R["command"], R["elapsed_s"] / 60))
    out.append("| benchmark | goal | measured | met? |")
    out.append("|---|---|---|---|")
    for r in rows:
        met = "–" if r["met"] is None else ("yes" if r["met"] else "**no**")
        out.append("| %s: %s | %s | %s | %s |" % (r["section"], r["what"], r["goal"].replace("<=", "≤"),
                                                  r["measured"].replace("|", "\\|"), met))
    out.append("")
    cs = R.get("cold_scan")
    if cs:
        out.append("### Cold scan\n")
        out.append("`hotplugd --root T --dump-model` vs `lsmem --sysroot T -o %s`, stdout to /dev/null, run "
                   "alternately after one warm-up each; peak RSS is wait4()'s ru_maxrss via /usr/bin/time "
                   "(`bench/cold-scan.py --sizes N` reproduces a row).\n" % LSMEM_COLUMNS)
        out.append("| blocks | hotplugd | lsmem | ratio (per-round range) | hotplugd peak RSS | goal | lsmem peak RSS | "
                   "syscalls/block hotplugd | lsmem |")
        out.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for c in cs:
            sc = lambda x: "%.2f" % x["syscalls_per_block"] if "syscalls_per_block" in x else "–"  # noqa: E731
            out.append("| %d | %s | %s | %.3f (%.3f–%.3f) | %s | %s | %s | %s | %s |" % (
                c["blocks"], fmt_ms(c["hotplugd"]["median_s"]), fmt_ms(c["lsmem"]["median_s"]), c["ratio"],
                c["ratio_rounds_min"], c["ratio_rounds_max"], mib(c["hotplugd"]["peak_rss_kib"]),
                mib(c["rss_goal_kib"]), mib(c["lsmem"]["peak_rss_kib"]), sc(c["hotplugd"]), sc(c["lsmem"])))
        out.append("\n![cold scan time and RSS against block count](%s)\n" % R.get("plot_png", "cold-scan.png"))
    st = R.get("storm")
    if st:
        out.append("### Event storm\n")
        out.append("udev-format `add`/`online` uevents (alternating, random existing blocks) sent by "
                   "`tests/uevent-inject` as fast as it goes into the daemon's private network namespace; "
                   "settled = socket drained and the settle step done (a SIGUSR2 dump, whose own cost on the "
                   "idle daemon is subtracted). Medians of %d bursts (`bench/event-storm.py --sizes %s`). "
                   "Wall times depend on how much CPU the daemon got on the shared machine; the cost of an "
                   "event is its daemon CPU time and, repeatably, its instruction count. The settle step "
                   "works once per distinct added block: the `add` events of a burst hit each block of the "
                   "small tree many times but mostly distinct blocks of the large one.\n" % (
                       st["repeat"], ",".join(str(r["blocks"]) for r in st["results"])))
        out.append("| blocks | events | settled | events/s | µs/event (wall) | µs/event (daemon CPU) | "
                   "instructions/event (callgrind) | resyncs | model == fresh scan |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in st["results"]:
            out.append("| %d | %d | %.2f s | %d | %.1f | %.1f | %s | %d | %s |" % (
                r["blocks"], r["events"], r["settled_s"], r["events_per_s"], r["us_per_event"],
                r["cpu_us_per_event"], format(r["ir_per_event"], ",") if r.get("ir_per_event") else "–",
                r["resyncs"], "yes" if r["model_equals_fresh_scan"] else "**no**"))
        if any(r.get("callgrind") for r in st["results"]):
            out.append("\nInstructions: user space only, counted by callgrind inside the event handlers "
                       "(`on_monitor`, libudev included) and the once-per-burst settle step (`manager_settle`), "
                       "the mean of one burst of `add` and one of `online` events (%s each), on a daemon started "
                       "under `valgrind --tool=callgrind` (`bench/profile-storm.py`). Repeatable where the wall and "
                       "CPU times on a shared machine are not." % format(
                           next(r for r in st["results"] if r.get("callgrind"))["callgrind"]["add"]["events"], ","))
        out.append("")
        sc = [r for r in st["results"] if r.get("syscalls_per_event")]
        if sc:
            out.append("System calls per event, `strace -c -f` attached to the daemon during one burst of %s events "
                       "of one kind (including the settle step; where the time goes: "
                       "`bench/profile-storm.py` adds perf and callgrind profiles):\n" % format(
                           sc[0]["syscalls_per_event"]["add"]["events"], ","))
            out.append("| blocks | event | syscalls/event | by call |")
            out.append("|---:|---|---:|---|")
            for r in sc:
                for kind, x in r["syscalls_per_event"].items():
                    out.append("| %d | %s | %.2f | %s |" % (r["blocks"], kind, x["total"],
                                                           ", ".join("%s %.2f" % kv for kv in x["by_call"].items())))
            out.append("")
    q = R.get("queries")
    if q:
        out.append("### Queries on %d blocks\n" % q["blocks"])
        out.append("The running daemon (private bus) answering `hotplugctl` vs `lsmem` rescanning the tree, "
                   "median of %d interleaved runs each, process start-up included for both.\n" % q["runs"])
        out.append("| hotplugctl | lsmem | hotplugctl | lsmem | ratio | goal |")
        out.append("|---|---|---:|---:|---:|---:|")
        for key in ("list_all", "list_merged", "status"):
            r = q[key]
            out.append("| `%s` | `%s` | %s | %s | %.4f | ≤ %g |" % (
                r["commands"]["hotplugctl"], r["commands"]["lsmem"].replace(q.get("root", "T"), "T"),
                fmt_ms(r["hotplugctl"]["median_s"]), fmt_ms(r["lsmem"]["median_s"]), r["ratio"], r["goal"]))
        out.append("")
    m = R.get("memory")
    if m:
        out.append("### Memory\n")
        out.append("| daemon on | RSS after loading | peak (VmHWM) | goal | open fds |")
        out.append("|---:|---:|---:|---:|---:|")
        for r in m.get("loaded", []):
            out.append("| %d blocks | %s | %s | %s | %d |" % (r["blocks"], mib(r["rss_kib"]), mib(r["hwm_kib"]),
                                                            mib(r["goal_kib"]), r["fds"]))
        lk = m.get("leak")
        if lk:
            out.append("\nRSS (KiB) of the daemon on %d blocks after each burst of %s add/online events, from "
                       "freshly loaded (0) to %s events later: %s; open fds %d → %d.\n" % (lk["blocks"],
                format(lk["events_per_round"], ","), format(lk["events"], ","),
                ", ".join("%s: %d" % (format(s["events"], ","), s["rss_kib"]) for s in lk["samples"]),
                lk["fds_loaded"], lk["fds_last"]))
    b = R.get("bus")
    if b:
        out.append("### D-Bus under load\n")
        out.append("`bench/bus-load`: %d threads, each its own bus connection, calling `Properties.GetAll` "
                   "(`org.hotplugd.Hotplug1.Node`) on nodes 0–7 back to back; latency per call measured "
                   "in-process around `sd_bus_call()`, through a private dbus-daemon. Storm window: from the "
                   "first event sent until the daemon drained its socket.\n" % b["clients"])
        out.append("| phase | calls | calls/s | p50 | p99 | p99.9 | max |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        rows_b = [("idle, %.1f s" % b["idle"]["seconds"], b["idle"])] + [
            ("storm %d (%s events, drained in %.2f s)" % (i + 1, format(r["events"], ","), r["drained_s"]), r)
            for i, r in enumerate(b["storm_runs"])]
        for label, r in rows_b:
            out.append("| %s | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.1f ms |" % (
                label, r["calls"], r["calls_per_s"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["p999_us"] / 1e3,
                r["max_us"] / 1e3))
        out.append("")
    o = R.get("vm_online")
    if o and not o.get("error"):
        out.append("### Onlining latency on a real kernel\n")
        out.append("`bench/vm-online-latency.py --rounds %d` (%s): a 2 GiB DIMM (16 blocks of 128 MiB) hot-plugged "
                   "into an empty node of a QEMU/TCG guest (Debian's Linux 6.1, 2 vCPUs, systemd), from the QMP "
                   "`device_add` to the last block's `online` uevent, the ways interleaved round by round. Guest CPU "
                   "is what the services handling the uevents spent per plug (cgroup `cpu.stat`, from before the "
                   "`device_add` to 0.5 s after the last online); the kernel's own onlining (a kworker) is the same "
                   "in every way and not in it. Under TCG one plug's latency varies by tens of percent from round "
                   "to round; the CPU column is the steadier figure of what a way costs.\n" % (
                       o["rounds"], o.get("measured", R["machine"]["date"])))
        units = sorted({u for mode in o.values() if isinstance(mode, dict) for u in mode.get("cpu_ms", {})},
                       key=lambda u: ["hotplugd", "udevd", "journald", "dbus", "pid1"].index(u)
                       if u in ["hotplugd", "udevd", "journald", "dbus", "pid1"] else 9)
        out.append("| way | device_add → last online, median [min–max] | vs kernel | onlining phase | guest CPU per plug | %s |"
                   % " | ".join(units))
        out.append("|---|---:|---:|---:|---:|%s" % ("---:|" * len(units)))
        for mode in ("kernel", "udev", "hotplugd", "hotplugd-self", "hotplugd-kernel-events"):
            if mode not in o:
                continue
            x, cpu = o[mode], o[mode].get("cpu_ms", {})
            out.append("| %s | %.3f s [%.3f–%.3f] | %.2fx | %.3f s | %.0f ms | %s |" % (
                mode, x["total_s"], min(x["all_s"]), max(x["all_s"]), x["total_s"] / o["kernel"]["total_s"],
                x["onlining_s"], sum(cpu.values()), " | ".join("%.1f" % cpu.get(u, 0) for u in units)))
        out.append("\nkernel: `auto_online_blocks=online_movable`; udev: the distribution-style rule `SUBSYSTEM==\"memory\", "
                   "ACTION==\"add\", ATTR{state}==\"offline\", ATTR{state}=\"online_movable\"`; hotplugd: "
                   "`TakeOver=yes`, `Policy=online_movable`, the uniform policy handed to the kernel; hotplugd-self: "
                   "`KernelHandoff=no`, hotplugd writes each block (what it does while a node needs its own decision); "
                   "hotplugd-kernel-events: the same with `EventSource=kernel`.\n")
    d = R.get("vm_drain")
    if d and not d.get("error"):
        out.append("### Drain on a real kernel\n")
        out.append("`bench/vm-drain.py --rounds %d` (%s): 512 MiB of data on a hot-plugged node drained, "
                   "`hotplugctl retire-node --no-eject` vs a shell loop of `echo offline` over the same blocks, "
                   "interleaved; vCPU s: the host CPU time of QEMU's vCPU threads.\n" % (d["rounds"], d.get("measured", R["machine"]["date"])))
        out.append("| method | wall, median | all rounds | vCPU s |")
        out.append("|---|---:|---|---:|")
        for method in ("hotplugd", "shell"):
            if method in d:
                out.append("| %s | %.2f s | %s | %.2f |" % (method, d[method]["elapsed"],
                                                           ", ".join("%.2f" % v for v in d[method]["all_elapsed"]),
                                                           d[method]["vcpu_s"]))
        out.append("")
    return "\n".join(out) + "\n"


README_BEGIN = "<!-- bench/run-all.py writes this table: begin -->"
README_END = "<!-- bench/run-all.py writes this table: end -->"


def publish(R, rows, md):
    """A full run's results into the documentation: doc/performance.md (the whole report) and the
    goals table in README.md between its two markers, so that the published figures are always
    those of one run of this command."""
    src = benchlib.SOURCE_DIR
    perf = os.path.join(src, "doc", "performance.md")
    with open(perf, "w") as f:
        f.write("# Performance\n\nEvery figure below is from one run of `%s` (%s), which wrote this file, "
                "`bench/results.json` and the plot. Each section gives the command that reproduces it alone.\n\n"
                % (R["command"], "the benchmarks in a QEMU guest included" if "vm_online" in R else "no VM"))
        f.write(md.replace("](%s)" % R.get("plot_png", "cold-scan.png"), "](../bench/%s)" % R.get("plot_png", "cold-scan.png")))
    readme = os.path.join(src, "README.md")
    with open(readme) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        log("README.md has no markers for the table; not updated")
        return
    M = R["machine"]
    table = ["Measured %s by `%s` (%.0f min) on %s, %d CPUs, %.0f GiB, load average %.1f at the start; "
             "full tables and methods: [doc/performance.md](doc/performance.md), the plot: `bench/cold-scan.png`.\n"
             % (M["date"][:10], R["command"], R["elapsed_s"] / 60, M["cpu"], M["cpus"], M["memory_gib"],
                M["loadavg_start"][0]),
             "| benchmark | goal | measured | met? |", "|---|---|---|---|"]
    for r in rows:
        met = "–" if r["met"] is None else ("yes" if r["met"] else "**no**")
        table.append("| %s: %s | %s | %s | %s |" % (r["section"], r["what"], r["goal"].replace("<=", "≤"),
                                                     r["measured"].replace("|", "\\|"), met))
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    with open(readme, "w") as f:
        f.write(head + README_BEGIN + "\n" + "\n".join(table) + "\n" + README_END + tail)
    log("published: %s, %s" % (perf, readme))


def plot(R, out_dir, stem):
    """bench/<stem>.dat from the cold-scan figures, then gnuplot bench/plot.gp -> bench/<stem>.png."""
    cs = R.get("cold_scan")
    if not cs:
        return None
    dat = os.path.join(out_dir, stem + ".dat")
    with open(dat, "w") as f:
        f.write("# cold scan (bench/run-all.py, %s): blocks, median wall ms (hotplugd, lsmem), "
                "peak RSS MiB (hotplugd, lsmem), RSS goal MiB\n" % R["machine"]["date"])
        for c in cs:
            f.write("%d %.3f %.3f %.2f %.2f %.2f\n" % (
                c["blocks"], c["hotplugd"]["median_s"] * 1e3, c["lsmem"]["median_s"] * 1e3,
                c["hotplugd"]["peak_rss_kib"] / 1024, c["lsmem"]["peak_rss_kib"] / 1024, c["rss_goal_kib"] / 1024))
    png = os.path.join(out_dir, stem + ".png")
    if not shutil.which("gnuplot"):
        log("gnuplot is missing: no %s" % png)
        return None
    p = subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'" % (dat, png), os.path.join(HERE, "plot.gp")],
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        log("gnuplot failed: %s" % p.stderr.decode(errors="replace"))
        return None
    return png


def render_again(path, out):
    with open(path) as f:
        R = json.load(f)
    out_dir = os.path.abspath(out or os.path.dirname(os.path.abspath(path)))
    stem = os.path.splitext(os.path.basename(path))[0]
    png = plot(R, out_dir, "cold-scan" if stem == "results" else stem.replace("results", "cold-scan"))
    if png:
        R["plot_png"] = os.path.basename(png)
    rows = goal_rows(R)
    md = markdown(R, rows, R.get("quick"))
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(md)
    if stem == "results" and out_dir == HERE and R.get("complete"):
        publish(R, rows, md)
    print_table(rows)
    return 0


# ------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    ap.add_argument("--build-dir", help="meson build directory (default: $HOTPLUGD_BUILD_DIR or SOURCE/build)")
    ap.add_argument("--tmp", help="an existing tmpfs directory for the trees (default: a private tmpfs)")
    ap.add_argument("--out", help="where results.{json,md} and the plot go (default: bench/)")
    ap.add_argument("--only", default="cold,storm,queries,memory,bus", help="comma-separated subset (also: online, drain)")
    ap.add_argument("--vm", action="store_true", help="also the real-kernel benchmarks in the QEMU guest: online, drain")
    ap.add_argument("--runs", type=int, help="timed runs per command for the cold scan and the queries")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts of the storm")
    ap.add_argument("--from-json", metavar="FILE", help="run nothing: print the table and write the markdown and "
                    "the plot again from a results.json (next to it, or in --out)")
    a = ap.parse_args()
    if a.from_json:
        return render_again(a.from_json, a.out)
    cfg = dict(QUICK if a.quick else FULL)
    if a.runs:
        cfg["cold_runs"] = {n: a.runs for n in cfg["cold_sizes"]}
        cfg["query_runs"] = a.runs
    only = set(a.only.split(","))
    if a.vm:
        only |= set(VM_BENCHES)
    out_dir = os.path.abspath(a.out or HERE)
    stem = "results-quick" if a.quick and not a.out else "results"
    plot_stem = "cold-scan-quick" if a.quick and not a.out else "cold-scan"
    os.makedirs(out_dir, exist_ok=True)
    if os.geteuid() != 0:
        raise SystemExit("run-all needs root: the daemon runs in a private network namespace, trees go on a private tmpfs")
    setup("cold" in only)
    for b in (("daemon", "hotplugd"), ("client", "hotplugctl"), ("tests", "tools", "uevent-inject"), ("bench", "bus-load")):
        benchlib.binary(*b)
    hotplugd = benchlib.binary("daemon", "hotplugd")

    t_start = time.monotonic()
    R = {"machine": machine(), "quick": a.quick, "config": {k: (v if not isinstance(v, dict) else {str(x): y for x, y in v.items()})
                                                           for k, v in cfg.items()},
         "command": "bench/run-all.py%s%s%s" % (" --quick" if a.quick else "", " --vm" if a.vm else "",
                                                " --only " + a.only if a.only != ap.get_default("only") else ""),
         "goals": GOALS}
    sizes = set()
    if "cold" in only:
        sizes |= set(cfg["cold_sizes"])
    if "storm" in only:
        sizes |= set(cfg["storm_sizes"])
    if "queries" in only:
        sizes.add(cfg["query_size"])
    if "memory" in only:
        sizes |= set(cfg["cold_sizes"])
    leak_size = min(cfg["storm_sizes"])
    bus_size = min(cfg["storm_sizes"])
    if "bus" in only:
        sizes.add(bus_size)

    scratch = benchlib.Scratch(a.tmp, prefix="run-all-")
    cold, storms, loaded = [], [], []
    try:
        for n in sorted(sizes):
            log("== %d blocks: writing the tree" % n)
            root, gen_s = scratch.tree(n)
            log("   written in %.1f s" % gen_s)
            try:
                if "cold" in only and n in cfg["cold_sizes"]:
                    runs = cfg["cold_runs"][n]
                    log("   cold scan (%d interleaved runs each)" % runs)
                    c = cold_scan.measure(root, n, hotplugd, shutil.which("lsmem"), scratch.base, runs=runs,
                                          rss_runs=2 if n < 100000 else 1, strace=n == cfg["strace_size"])
                    c["generate_s"] = round(gen_s, 2)
                    cold.append(c)
                    log("     hotplugd %s, lsmem %s: %.3fx; peak RSS %s vs %s" % (
                        fmt_ms(c["hotplugd"]["median_s"]), fmt_ms(c["lsmem"]["median_s"]), c["ratio"],
                        mib(c["hotplugd"]["peak_rss_kib"]), mib(c["lsmem"]["peak_rss_kib"])))
                need_daemon = (("storm" in only and n in cfg["storm_sizes"]) or ("queries" in only and n == cfg["query_size"])
                               or "memory" in only or ("bus" in only and n == bus_size))
                if not need_daemon:
                    continue
                d = benchlib.Daemon(root, os.path.join(scratch.base, "daemon-%d" % n))
                os.makedirs(d.h.tmp, exist_ok=True)
                try:
                    d.start()
                    f = d.figures()
                    loaded.append({"blocks": n, "rss_kib": f["rss_kib"], "hwm_kib": f["hwm_kib"], "fds": f["fds"],
                                   "startup_s": round(d.startup_s, 3), "goal_kib": benchlib.rss_goal_kib(n)})
                    log("   daemon ready in %.2f s: RSS %s (peak %s), %d fds" % (
                        d.startup_s, mib(f["rss_kib"]), mib(f["hwm_kib"]), f["fds"]))
                    if "queries" in only and n == cfg["query_size"]:
                        log("   queries (%d interleaved runs each)" % cfg["query_runs"])
                        R["queries"] = queries(d, root, n, cfg["query_runs"])
                    if "memory" in only and n == leak_size:     # first: sample 0 is the freshly loaded daemon
                        log("   memory: %d bursts of %d events" % (cfg["leak_rounds"], cfg["leak_events"]))
                        R.setdefault("memory", {})["leak"] = leak(d, cfg["leak_rounds"], cfg["leak_events"])
                    if "storm" in only and n in cfg["storm_sizes"]:
                        log("   event storm: %d x %d events" % (cfg["storm_repeat"], cfg["storm_events"]))
                        s = event_storm.storms(d, cfg["storm_events"], cfg["storm_repeat"])
                        s["startup_s"] = round(d.startup_s, 3)
                        s["block_list"] = sorted(b["index"] for b in d.live_model()["blocks"])
                        if shutil.which("strace"):
                            s["syscalls_per_event"] = syscalls_per_event(d, cfg["strace_events"], scratch.base)
                        storms.append(s)
                    if "bus" in only and n == bus_size:
                        log("   D-Bus under load: %d clients" % cfg["bus_clients"])
                        R["bus"] = bus_load(d, cfg["bus_clients"], cfg["bus_idle_s"], cfg["bus_storms"], cfg["bus_events"])
                        R["bus"]["blocks"] = n
                finally:
                    d.stop()
                if "storm" in only and n in cfg["storm_sizes"] and shutil.which("valgrind") and not a.no_callgrind:
                    log("   callgrind: %d add, then %d online events" % (cfg["callgrind_events"], cfg["callgrind_events"]))
                    work = os.path.join(scratch.base, "callgrind-%d" % n)
                    os.makedirs(work, exist_ok=True)
                    cg = profile_storm.callgrind_bursts(root, ["add", "online"], cfg["callgrind_events"], work,
                                                        blocks=storms[-1]["block_list"])
                    storms[-1]["callgrind"] = {k: {"events": cfg["callgrind_events"], "ir_handler": v["on_monitor"],
                                                   "ir_settle": v["manager_settle"],
                                                   "ir_per_event": round(v["ir_per_event"])} for k, v in cg.items()}
                    storms[-1]["ir_per_event"] = round((cg["add"]["ir_per_event"] + cg["online"]["ir_per_event"]) / 2)
                    log("     %s Ir/event (add %d, online %d: handler and settle)" % (
                        format(storms[-1]["ir_per_event"], ","), cg["add"]["ir_per_event"], cg["online"]["ir_per_event"]))
            finally:
                scratch.remove(root)
    finally:
        scratch.close()

    for key in VM_BENCHES:
        if key in only:
            # A failed guest run must not cost the host figures measured so far: it is reported.
            try:
                R["vm_" + key] = vm_bench(key, a.quick, scratch_dir=out_dir)
            except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as e:
                log("real-kernel benchmark %s failed: %s" % (key, e))
                R["vm_" + key] = {"error": str(e)}
    if cold:
        R["cold_scan"] = cold
    for st in storms:
        st.pop("block_list", None)
    if storms:
        R["storm"] = {"results": storms, "repeat": cfg["storm_repeat"],
                      "ratio": event_storm.ratio(storms) if len(storms) > 1 else None}
        if R["storm"]["ratio"] and all(st.get("ir_per_event") for st in storms):
            R["storm"]["ratio"]["ir"] = storms[-1]["ir_per_event"] / storms[0]["ir_per_event"]
    if "memory" in only:
        R.setdefault("memory", {})["loaded"] = loaded
    R["elapsed_s"] = round(time.monotonic() - t_start, 1)
    # A subset (--only) updates its sections of an earlier full results.json and keeps the rest,
    # so that the table always shows every benchmark (each section says when it was measured).
    section_of = {"cold": ["cold_scan"], "storm": ["storm"], "queries": ["queries"], "memory": ["memory"], "bus": ["bus"],
                  "online": ["vm_online"], "drain": ["vm_drain"]}
    R["complete"] = set(section_of) <= only     # every benchmark measured by this one run
    stamp = R["machine"]["date"]
    for key in only:
        for sec in section_of.get(key, []):
            if isinstance(R.get(sec), dict):
                R[sec]["measured"] = stamp
    old_path = os.path.join(out_dir, stem + ".json")
    if set(section_of) - only and os.path.exists(old_path):
        with open(old_path) as f:
            old = json.load(f)
        for key, secs in section_of.items():
            for sec in secs:
                if key not in only and sec in old:
                    R[sec] = old[sec]
                    if isinstance(R[sec], dict):
                        R[sec].setdefault("measured", old.get("machine", {}).get("date"))
    R["machine"]["loadavg_end"] = os.getloadavg()
    png = plot(R, out_dir, plot_stem)
    if png:
        R["plot_png"] = os.path.basename(png)
    rows = goal_rows(R)
    R["table"] = rows
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump(R, f, indent=1)
        f.write("\n")
    md = markdown(R, rows, a.quick)
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(md)
    if stem == "results" and out_dir == HERE and R["complete"]:
        publish(R, rows, md)
    print()
    print_table(rows)
    print("\n%d goals met, %d missed; %.1f min. Written: %s%s" % (
        sum(1 for r in rows if r["met"]), sum(1 for r in rows if r["met"] is False), R["elapsed_s"] / 60,
        ", ".join(os.path.join(out_dir, stem + e) for e in (".json", ".md")), (", " + png) if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
