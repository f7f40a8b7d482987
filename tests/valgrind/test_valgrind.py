# SPDX-License-Identifier: LGPL-2.1-or-later
"""hotplugd under valgrind (memcheck) through a scenario that exercises every part: a cold scan; uevents (add,
online, offline, remove, duplicates, a missing block, a CPU) and an ENOBUFS resync; D-Bus calls from root,
well-formed and hostile, one hung up mid-call; runtime policy and quarantine; a retire whose drain fails for
good and rolls back on the fake kernel, with a pre-drain hook; a dry run; reloads by SIGHUP and by D-Bus,
refused ones included; SIGUSR2 dumps; --dump-model; SIGTERM. valgrind runs with --error-exitcode and
--errors-for-leak-kinds=definite: the daemon must exit 0 and every log must say 0 errors, 0 bytes definitely
lost."""

import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import time

from conftest import events, rawbus, retire

BUS = "org.hotplugd.Hotplug1"
PATH = "/org/hotplugd/Hotplug1"
MGR = "org.hotplugd.Hotplug1.Manager"
MEM = "/devices/system/memory/memory%d"

VALGRIND_ARGS = ["--tool=memcheck", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                 "--show-leak-kinds=definite", "--num-callers=30", "--child-silent-after-fork=yes",
                 "--trace-children=no", "--vgdb=no"]


def plain_build():
    """(hotplugd, libfakekernel.so) without sanitizers: the build's own, or a plain build made next to it."""
    build = events.BUILD_DIR
    if os.environ.get("HOTPLUGD_SANITIZE", "none") in ("none", ""):
        return os.path.join(build, "daemon", "hotplugd"), os.path.join(build, "tests", "fakekernel", "libfakekernel.so")
    sub = os.environ.get("HOTPLUGD_VALGRIND_BUILD") or os.path.join(build, "tests", "valgrind", "plain")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESON") and k not in ("ASAN_OPTIONS", "UBSAN_OPTIONS")}
    if not os.path.exists(os.path.join(sub, "build.ninja")):
        p = subprocess.run(["meson", "setup", sub, events.SOURCE_DIR, "-Db_sanitize=none", "-Dvm-tests=false",
                            "-Dfuzz=false", "--buildtype=debug"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        assert p.returncode == 0, "meson setup of the uninstrumented build failed:\n%s" % p.stdout[-3000:]
    p = subprocess.run(["ninja", "-C", sub, "daemon/hotplugd", "tests/fakekernel/libfakekernel.so"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, "building the uninstrumented hotplugd failed:\n%s" % p.stdout[-3000:]
    return os.path.join(sub, "daemon", "hotplugd"), os.path.join(sub, "tests", "fakekernel", "libfakekernel.so")


def wrapper(tmp, binary):
    vg = shutil.which("valgrind")
    assert vg, "valgrind is missing (apt-get install valgrind)"
    logs = os.path.join(tmp, "valgrind")
    os.makedirs(logs, exist_ok=True)
    path = os.path.join(tmp, "hotplugd-under-valgrind")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s %s --log-file=%s/valgrind.%%p.log %s \"$@\"\n" % (
            vg, " ".join(VALGRIND_ARGS), logs, binary))
    os.chmod(path, 0o755)
    return path, logs


def wait_log(h, pattern, start, timeout=60):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, h.all_stderr()[start:]):
        h.assert_alive()
        assert time.monotonic() < deadline, "no /%s/ in the log\n%s" % (pattern, h.logs(30))
        time.sleep(0.05)


def summarize(logs):
    out = []
    for path in sorted(glob.glob(os.path.join(logs, "valgrind.*.log"))):
        text = open(path, errors="replace").read()
        errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        definite = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
        heap = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated", text)
        cmd = re.search(r"Command: (.*)", text)
        out.append({"log": path, "command": cmd.group(1).split(" ", 1)[1] if cmd else "?",
                    "errors": int(errors.group(1)) if errors else None,
                    "definitely_lost": int(definite.group(1).replace(",", "")) if definite else 0,
                    "heap": heap.groups() if heap else None, "text": text})
    return out


def test_memcheck_scenario(rt):
    binary, shim = plain_build()
    tmp_base = os.environ.get("HOTPLUGD_TEST_TMPDIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
    tmp = os.path.join(tmp_base, "hotplugd-valgrind-%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    path, logs = wrapper(tmp, binary)
    os.environ["HOTPLUGD"] = path
    os.environ["FAKEKERNEL_SHIM"] = shim
    t0 = time.monotonic()
    steps = []

    def step(name):
        steps.append((name, time.monotonic() - t0))

    h = rt(spec=retire.default_retire_spec(), policy="offline", receive_buffer="64K")
    step("start (cold scan)")
    h.wait_converged(timeout=60)

    # Events: a block comes, goes online and offline, leaves; duplicates; a block that is not there; a CPU.
    t = h.tree
    t.add_block(h.root, 12, node=0)
    h.inject("add", MEM % 12, "memory")
    t.set_block_state(h.root, 12, "online", zone="Movable")
    h.inject_lines(["online %s memory" % (MEM % 12)] * 3)
    t.set_block_state(h.root, 12, "offline")
    h.inject("offline", MEM % 12, "memory")
    h.inject("online", MEM % 99999, "memory")
    h.inject("offline", "/devices/system/cpu/cpu1", "cpu")
    t.remove_block(h.root, 12)
    h.inject("remove", MEM % 12, "memory")
    h.wait_converged(timeout=60)
    step("uevents")
    mark = len(h.all_stderr())
    h.pause()
    try:
        h.inject_lines(["online %s memory" % (MEM % (i % 8)) for i in range(3000)])
    finally:
        h.resume()
    wait_log(h, "Resynchronized", mark)
    h.wait_converged(timeout=60)
    step("ENOBUFS resync")

    # D-Bus from root: reads, refusals, a lie about the signature, a huge array, a hang-up mid-call.
    c = rawbus.Conn(h.bus_address)
    outcomes = {}
    calls = [(PATH, MGR, "ListNodes", "", []), (PATH, MGR, "ListBlocks", "i", [-1]), (PATH, MGR, "ListBlockRanges", "i", [2]),
             (PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", [MGR]),
             (PATH + "/node/2", "org.freedesktop.DBus.Properties", "GetAll", "s", ["org.hotplugd.Hotplug1.Node"]),
             (PATH, "org.freedesktop.DBus.Introspectable", "Introspect", "", []),
             (PATH, MGR, "PlanRetire", "u", [2]), (PATH, MGR, "PlanRetire", "u", [2 ** 32 - 1]),
             (PATH, MGR, "OfflineBlocks", "at", [[]]), (PATH, MGR, "OnlineBlocks", "ay", [b"\xff\xfe"]),
             (PATH, MGR, "OfflineBlocks", "at", [struct.pack("<Q", 999999) * 100000]),
             (PATH, MGR, "OnlineBlocks", "ats", [[0], "dma"]), (PATH, MGR, "SetNodePolicy", "us", [0, "online_movable"]),
             (PATH, MGR, "SetNodePolicy", "us", [0, ""]), (PATH, MGR, "QuarantineNode", "u", [0]),
             (PATH, MGR, "UnquarantineNode", "u", [0]), (PATH, MGR, "OfflineBlocks", "at", [[7]]),
             (PATH, MGR, "OnlineBlocks", "ats", [[7], "kernel"]), (PATH, MGR, "CancelJob", "u", [99]),
             (PATH, MGR, "Reload", "", []), (PATH + "/job/1", "org.hotplugd.Hotplug1.Job", "Cancel", "", [])]
    for p, i, m, s, a in calls:
        o = rawbus.outcome(c.call(BUS, p, i, m, s, a))
        outcomes[o] = outcomes.get(o, 0) + 1
    c.close()
    c = rawbus.Conn(h.bus_address)        # gone before the answer (a no-op: block 7 is online already)
    c.send(BUS, PATH, MGR, "OnlineBlocks", "ats", [struct.pack("<Q", 7) * 100000, "auto"])
    c.close()
    assert outcomes.get("ok", 0) >= 12, outcomes
    step("D-Bus calls")

    # A retire that cannot drain (EBUSY for good) and rolls back, with a pre-drain hook; then a dry run.
    hooks = os.path.join(h.root, "etc/hotplugd/hooks.d")
    os.makedirs(hooks, exist_ok=True)
    with open(os.path.join(hooks, "10-ok"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(hooks, "10-ok"), 0o755)
    before = retire.block_states(h.root)
    h.control("memory37.fail", "-16 inf\n")
    job = h.retire(2)
    j = h.wait_job(job, timeout=180)
    assert j["State"] == "failed", j
    h.sync()
    assert retire.block_states(h.root) == before, "the rollback did not restore every block"
    assert h.journals() == []
    h.control("memory37.fail", None)
    job = h.retire(2, "--dry-run")
    assert h.wait_job(job, timeout=120)["State"] == "completed"
    step("retire with rollback, dry run")

    # Reloads: SIGHUP, a bad file (refused), an untrusted file (refused), a good one.
    conf = os.path.join(h.root, "etc/hotplugd/hotplugd.conf")
    good = open(conf).read()
    mark = len(h.all_stderr())
    h.proc.send_signal(signal.SIGHUP)
    wait_log(h, "Configuration reloaded", mark)
    for text, mode in ((good.replace("Policy=offline", "Policy=sometimes"), 0o644), (good, 0o666)):
        with open(conf, "w") as f:
            f.write(text)
        os.chmod(conf, mode)
        p = h.ctl("reload")
        assert p.returncode == 1, (p.returncode, p.stderr)
    os.chmod(conf, 0o644)
    assert h.ctl("reload").returncode == 0
    step("reloads")
    h.live_model()
    h.wait_converged(timeout=60)
    h.term()
    step("SIGTERM")

    results = summarize(logs)
    daemon = [r for r in results if "--dump-model" not in r["command"]]
    assert daemon, "no valgrind log of the daemon in %s" % logs
    print("\n[valgrind] %d runs under memcheck (%d of the daemon, %d of --dump-model); D-Bus outcomes %s" % (
        len(results), len(daemon), len(results) - len(daemon), outcomes))
    for r in results:
        print("[valgrind] %-40s errors %s, definitely lost %d bytes, heap %s" % (
            os.path.basename(r["log"]) + (" (dump)" if "--dump-model" in r["command"] else " (daemon)"),
            r["errors"], r["definitely_lost"], r["heap"]))
    print("[valgrind] steps (s since start): %s" % ", ".join("%s %.1f" % s for s in steps))
    bad = [r for r in results if r["errors"] != 0 or r["definitely_lost"] != 0]
    assert not bad, "valgrind found problems:\n%s" % "\n\n".join(r["text"][-6000:] for r in bad)
    shutil.rmtree(tmp, ignore_errors=True)
