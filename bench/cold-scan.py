#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""cold-scan.py — how fast and how small is hotplugd's start-up scan, next to lsmem, on big fake hosts.

For each size (default 4,096 / 65,536 / 262,144 blocks of 128 MiB in 8 nodes) it writes a tree with
tests/gen-tree.py on tmpfs, then runs, alternating, `hotplugd --root T --dump-model > /dev/null` and
`lsmem --sysroot T -o RANGE,STATE,NODE,ZONES > /dev/null` (one untimed warm-up each, then --runs
timed runs each) and prints median wall time, the ratio hotplugd/lsmem (goal <= 0.4), and peak RSS
from wait4() ru_maxrss (hotplugd's goal: 16 MiB + 64 B per block; see benchlib.peak_rss() for how it
is taken so that this Python's own RSS does not leak into the figure). With strace available it also
counts system calls per block for both (strace -c -f) on the 65,536-block tree (--strace-size).

Trees go on tmpfs: with --tmp DIR they are written under DIR; otherwise, as root, a private tmpfs
with unlimited inodes is mounted under /tmp for the run (a 262,144-block tree needs ~3.2 M inodes,
more than a default /dev/shm has) and unmounted at the end; otherwise /dev/shm. Trees are removed
after each size. Output: a table, or with --json one JSON object for a results table.
This is a benchmark that prints figures; it does not pass or fail on them. bench/run-all.py runs
measure() as part of every benchmark of issue 6.
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import gentree, log  # noqa: E402

LSMEM_COLUMNS = "RANGE,STATE,NODE,ZONES"
RATIO_GOAL = 0.4


def measure(root, n, hotplugd, lsmem, workdir, runs=5, rss_runs=2, strace=False, nodes=8):
    """Cold scan of the tree at root (n blocks): hotplugd --dump-model vs lsmem, interleaved."""
    hp_argv = [hotplugd, "--root", root, "--dump-model"]
    ls_argv = [lsmem, "--sysroot", root, "-o", LSMEM_COLUMNS]
    res = {"blocks": n, "nodes": nodes, "runs": runs,
           "commands": {"hotplugd": " ".join(hp_argv), "lsmem": " ".join(ls_argv)}}
    times = benchlib.interleaved({"hotplugd": hp_argv, "lsmem": ls_argv}, runs)
    for name, argv in (("hotplugd", hp_argv), ("lsmem", ls_argv)):
        rss = [benchlib.peak_rss(argv, workdir) for _ in range(rss_runs)]
        res[name] = dict(benchlib.summary(times[name]), times_s=times[name],
                         peak_rss_kib=max(r[0] for r in rss), rss_method=rss[0][1])
    res["ratio"] = res["hotplugd"]["median_s"] / res["lsmem"]["median_s"]
    # The ratio of medians, and its spread: the ratio within each interleaved round (A then B).
    per_round = [a / b for a, b in zip(times["hotplugd"], times["lsmem"])]
    res["ratio_rounds_min"], res["ratio_rounds_max"] = min(per_round), max(per_round)
    res["rss_goal_kib"] = benchlib.rss_goal_kib(n)
    res["rss_ok"] = res["hotplugd"]["peak_rss_kib"] <= res["rss_goal_kib"]
    res["ratio_ok"] = res["ratio"] <= RATIO_GOAL
    if strace and shutil.which("strace"):
        for name, argv in (("hotplugd", hp_argv), ("lsmem", ls_argv)):
            total, top = benchlib.strace_calls(argv, workdir)
            res[name]["syscalls"] = total
            res[name]["syscalls_per_block"] = total / n
            res[name]["top_syscalls"] = [{"name": s, "calls": c} for c, s in top]
    return res


def print_table(results):
    print("%9s %6s | %10s %10s %7s | %12s %12s %9s | %9s %9s" % (
        "blocks", "nodes", "hotplugd", "lsmem", "ratio", "hotplugd RSS", "RSS goal", "lsmem RSS",
        "hp sc/blk", "ls sc/blk"))
    for r in results:
        hp, ls = r["hotplugd"], r["lsmem"]
        sc = lambda x: ("%9.2f" % x["syscalls_per_block"]) if "syscalls_per_block" in x else "%9s" % "-"  # noqa: E731
        print("%9d %6d | %8.1fms %8.1fms %6.3f%s | %9.1fMiB %9.1fMiB%s %6.1fMiB | %s %s" % (
            r["blocks"], r["nodes"], hp["median_s"] * 1e3, ls["median_s"] * 1e3, r["ratio"],
            " " if r["ratio_ok"] else "!", hp["peak_rss_kib"] / 1024, r["rss_goal_kib"] / 1024,
            " " if r["rss_ok"] else "!", ls["peak_rss_kib"] / 1024, sc(hp), sc(ls)))
    if results:
        print("medians of %d interleaved runs each; goals: ratio <= %.1f, hotplugd RSS <= 16 MiB + 64 B/block "
              "('!' = missed)" % (results[0]["runs"], RATIO_GOAL))
    for r in results:
        for name in ("hotplugd", "lsmem"):
            if "top_syscalls" in r[name]:
                print("%s on %d blocks: %d syscalls; top: %s" % (
                    name, r["blocks"], r[name]["syscalls"],
                    ", ".join("%s %d" % (t["name"], t["calls"]) for t in r[name]["top_syscalls"])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4096,65536,262144", help="comma-separated block counts")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per program and size (>= 5 advised)")
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--block-size", default="128M")
    ap.add_argument("--tmp", help="write trees under this (tmpfs) directory")
    ap.add_argument("--hotplugd", help="daemon binary (default: $HOTPLUGD_BUILD_DIR or SOURCE/build)")
    ap.add_argument("--lsmem", default=shutil.which("lsmem") or "/usr/bin/lsmem")
    ap.add_argument("--strace-size", type=int, default=65536, help="size at which syscalls are counted")
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args(argv)
    hotplugd = os.path.abspath(a.hotplugd or os.path.join(benchlib.BUILD_DIR, "daemon", "hotplugd"))
    if not os.access(hotplugd, os.X_OK):
        ap.error("no hotplugd binary at %s" % hotplugd)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    scratch = benchlib.Scratch(a.tmp, prefix="cold-scan-")
    results = []
    try:
        for n in sizes:
            log("cold scan, %d blocks:" % n)
            root, gen_s = scratch.tree(n, a.nodes, a.block_size)
            log("  %d blocks: tree written in %.1f s" % (n, gen_s))
            try:
                r = measure(root, n, hotplugd, a.lsmem, scratch.base, runs=a.runs,
                            strace=n == a.strace_size and not a.no_strace, nodes=a.nodes)
                r["generate_s"] = round(gen_s, 2)
                results.append(r)
            finally:
                scratch.remove(root)
    finally:
        scratch.close()
    if a.json:
        json.dump({"benchmark": "cold-scan", "hotplugd": hotplugd, "lsmem": a.lsmem,
                   "block_size": gentree.parse_size(a.block_size), "kernel": os.uname().release,
                   "cpus": os.cpu_count(), "results": results}, sys.stdout, indent=1)
        print()
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
