#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""event-storm.py — a burst of memory uevents into the running daemon, on trees of two sizes.

For each tree size: generate a tree on tmpfs, start the built hotplugd on it in a private network
namespace (the events harness, tests/integration/events/conftest.py, via benchlib.Daemon), deliver
N udev-format `add`/`online` events (alternating) for random existing blocks as fast as
uevent-inject sends them, and time until the daemon has drained its socket and settled: a SIGUSR2
dump, which settles first, has been written. The dump of the whole model is not part of the storm:
the same dump on the idle daemon is timed before the burst and subtracted, from the wall time and
from the daemon's CPU time (summed over its threads from /proc/PID/task/*/sched). Then the live
model must equal a fresh `--dump-model` scan (correctness, not timed).

Prints events/s, settle time, per-event cost (wall and daemon CPU) and the ratio between the
largest and smallest tree (goal <= 1.2: the cost of an event must not grow with the number of
blocks), and the daemon's RSS and open fds before and after the storm (a leak shows as growth).
Not a test: it prints figures. bench/run-all.py runs storm() as part of every benchmark of issue 6.

    bench/event-storm.py [--sizes 4096,262144] [--events 100000] [--repeat 3] [--json]
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402

RATIO_GOAL = 1.2


def storm_lines(blocks, n_events, seed=1):
    rnd = random.Random(seed)
    return ["%s /devices/system/memory/memory%d memory" % ("add" if i % 2 == 0 else "online", rnd.choice(blocks))
            for i in range(n_events)]


def storm(d, blocks, n_events, seed=1, check=True, idle_dump=None):
    """One burst of n_events add/online events into the running Daemon d.

    idle_dump: (wall s, cpu s) of a SIGUSR2 dump on the idle daemon; measured here if not given."""
    lines = storm_lines(blocks, n_events, seed)
    if idle_dump is None:
        _, w, c = d.timed_dump()
        idle_dump = (w, c)
    before = d.figures()
    resyncs0 = d.stderr().count("Resynchronized")
    t0 = time.monotonic()
    d.inject(lines)
    t_sent = time.monotonic() - t0
    live, _, _ = d.timed_dump()
    t_raw = time.monotonic() - t0
    after = d.figures()
    settled = max(t_raw - idle_dump[0], 1e-6)
    cpu = max(after["cpu_s"] - before["cpu_s"] - idle_dump[1], 1e-6)
    res = {
        "blocks": len(blocks), "events": n_events, "send_s": round(t_sent, 3),
        "settled_raw_s": round(t_raw, 3), "idle_dump_s": round(idle_dump[0], 3), "idle_dump_cpu_s": round(idle_dump[1], 3),
        "settled_s": round(settled, 3), "events_per_s": round(n_events / settled),
        "us_per_event": round(settled / n_events * 1e6, 2),
        "cpu_s": round(cpu, 3), "cpu_us_per_event": round(cpu / n_events * 1e6, 2),
        "rss_before_kib": before["rss_kib"], "rss_after_kib": after["rss_kib"],
        "fds_before": before["fds"], "fds_after": after["fds"],
        "resyncs": d.stderr().count("Resynchronized") - resyncs0,
    }
    if check:
        fresh = d.h.fresh_scan()
        diff = benchlib._harness_module().model_diff(live, fresh)
        res["model_equals_fresh_scan"] = not diff
        res["diff"] = diff[:3]
    return res


def storms(d, n_events, repeat=3, check=True):
    """repeat bursts on one daemon; the median run by daemon CPU, with every run's figures kept."""
    model, w, c = d.timed_dump()
    blocks = sorted(b["index"] for b in model["blocks"])
    runs = []
    for i in range(repeat):
        runs.append(storm(d, blocks, n_events, seed=i + 1, check=check and i == repeat - 1, idle_dump=(w, c)))
        log("    burst %d: %.2f s settled, %.1f us/event wall, %.1f us/event daemon CPU" % (
            i + 1, runs[-1]["settled_s"], runs[-1]["us_per_event"], runs[-1]["cpu_us_per_event"]))
    res = dict(runs[-1])
    for k in ("settled_s", "us_per_event", "cpu_us_per_event", "send_s"):
        res[k] = benchlib.median([r[k] for r in runs])
    res["events_per_s"] = round(n_events / res["settled_s"])
    res["runs"] = [{k: r[k] for k in ("settled_s", "us_per_event", "cpu_us_per_event", "resyncs")} for r in runs]
    res["resyncs"] = sum(r["resyncs"] for r in runs)
    res["rss_before_kib"] = runs[0]["rss_before_kib"]
    res["fds_before"] = runs[0]["fds_before"]
    return res


def ratio(results):
    small, big = results[0], results[-1]
    return {"small_blocks": small["blocks"], "big_blocks": big["blocks"],
            "wall": big["us_per_event"] / small["us_per_event"],
            "cpu": big["cpu_us_per_event"] / small["cpu_us_per_event"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4096,262144")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3, help="bursts per tree (medians are printed)")
    ap.add_argument("--tmp", default=None, help="tmpfs directory for the trees (default: a private tmpfs)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    scratch = benchlib.Scratch(a.tmp, prefix="storm-")
    results = []
    try:
        for n in (int(s) for s in a.sizes.split(",")):
            log("event storm, %d blocks:" % n)
            root, gen_s = scratch.tree(n)
            d = benchlib.Daemon(root, os.path.join(scratch.base, "daemon-%d" % n))
            os.makedirs(d.h.tmp, exist_ok=True)
            try:
                d.start()
                r = storms(d, a.events, a.repeat)
                r["startup_s"] = round(d.startup_s, 3)
                results.append(r)
            finally:
                d.stop()
                scratch.remove(root)
    finally:
        scratch.close()
    if a.json:
        print(json.dumps({"results": results, "ratio": ratio(results) if len(results) > 1 else None}, indent=2))
        return
    print("%9s %8s %10s %10s %10s %10s %12s %12s %8s %s" % (
        "blocks", "events", "settled s", "events/s", "us/event", "CPU us/ev", "RSS before", "RSS after", "resyncs",
        "model == scan"))
    for r in results:
        print("%9d %8d %10.3f %10d %10.2f %10.2f %8d KiB %8d KiB %8d %s" % (
            r["blocks"], r["events"], r["settled_s"], r["events_per_s"], r["us_per_event"], r["cpu_us_per_event"],
            r["rss_before_kib"], r["rss_after_kib"], r["resyncs"],
            "yes" if r["model_equals_fresh_scan"] else "NO: %s" % r["diff"]))
    if len(results) >= 2:
        q = ratio(results)
        print("per-event cost, %d vs %d blocks: %.2fx wall, %.2fx daemon CPU (goal <= %.1f)" % (
            q["big_blocks"], q["small_blocks"], q["wall"], q["cpu"], RATIO_GOAL))


if __name__ == "__main__":
    main()
