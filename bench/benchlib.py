# SPDX-License-Identifier: LGPL-2.1-or-later
"""benchlib.py — what the benchmarks share: scratch tmpfs, timed and RSS-measured runs, process
figures (RSS, fds, CPU time), interleaved timing with medians, and the events harness
(tests/integration/events/conftest.py) started on a tree that is already written.

Imported by cold-scan.py, event-storm.py and run-all.py (bench/ is put on sys.path by each)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HOTPLUGD_SOURCE_DIR") or os.path.dirname(HERE)
BUILD_DIR = os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
os.environ.setdefault("HOTPLUGD_SOURCE_DIR", SOURCE_DIR)
os.environ.setdefault("HOTPLUGD_BUILD_DIR", BUILD_DIR)
for p in (os.path.join(SOURCE_DIR, "tests"), os.path.join(SOURCE_DIR, "tests", "integration", "events")):
    if p not in sys.path:
        sys.path.insert(0, p)

import gentree  # noqa: E402

TIME = "/usr/bin/time"
KIB_PER_BLOCK_GOAL = 64 / 1024          # 64 bytes per block
BASE_KIB_GOAL = 16 * 1024               # 16 MiB


def rss_goal_kib(blocks):
    return BASE_KIB_GOAL + int(blocks * KIB_PER_BLOCK_GOAL)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def binary(*parts):
    path = os.path.join(BUILD_DIR, *parts)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SystemExit("%s is not built (HOTPLUGD_BUILD_DIR=%s): run ninja -C %s first" % (path, BUILD_DIR, BUILD_DIR))
    return path


# ------------------------------------------------------------------------------------------------
# statistics

def median(v):
    return statistics.median(v) if v else None


def percentile(v, p):
    """Nearest-rank percentile of v (p in 0..100)."""
    if not v:
        return None
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))]


# ------------------------------------------------------------------------------------------------
# runs

def timed_run(argv, env=None, stdout=None):
    """Run argv with stdout on /dev/null (or the given fd); return (wall seconds, exit code)."""
    out = stdout if stdout is not None else os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, out, 1)])
        _, status = os.waitpid(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        if stdout is None:
            os.close(out)
    return wall, os.waitstatus_to_exitcode(status)


def interleaved(commands, runs, warmup=1, env=None):
    """Times each argv of commands (a dict name -> argv) in turn, `runs` rounds after `warmup`
    untimed rounds; raises on a non-zero exit. Returns name -> list of wall seconds.

    Interleaving (A B A B ...) spreads the noise of a shared machine evenly over the commands."""
    times = {name: [] for name in commands}
    for i in range(warmup + runs):
        for name, argv in commands.items():
            wall, code = timed_run(argv, env=env)
            if code != 0:
                raise RuntimeError("%s exited %d" % (" ".join(argv), code))
            if i >= warmup:
                times[name].append(wall)
    return times


def summary(times):
    return {"median_s": median(times), "min_s": min(times), "max_s": max(times), "runs": len(times)}


def peak_rss(argv, workdir):
    """Peak RSS (KiB) of argv: wait4()'s ru_maxrss, taken by a small launcher.

    Linux folds the pre-exec address space into the exec'ed process's maxrss (exec_mmap ->
    setmax_mm_hiwater_rss), so a process spawned straight from this Python (tens of MiB after writing
    a tree) would report at least Python's RSS. GNU time forks the program from its own small image
    and reports the same wait4() ru_maxrss; without it, fall back to os.wait4 here (an upper bound)."""
    if os.access(TIME, os.X_OK):
        out = os.path.join(workdir, "time.out")
        p = subprocess.run([TIME, "-f", "%M", "-o", out, *argv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=3600)
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (argv[0], p.stderr.decode(errors="replace")))
        with open(out) as f:
            kib = int(f.read().split()[-1])
        os.unlink(out)
        return kib, "time"
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status, ru = os.wait4(pid, 0)
    finally:
        os.close(devnull)
    return ru.ru_maxrss, "wait4-upper-bound"


def strace_calls(argv, workdir):
    """Total system calls of argv and its threads/children, from strace -c -f; and the top 4."""
    out = os.path.join(workdir, "strace-c.txt")
    p = subprocess.run(["strace", "-c", "-f", "-o", out, *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("strace %s failed: %s" % (argv[0], p.stderr.decode(errors="replace")))
    total, top = parse_strace_c(out)
    os.unlink(out)
    return total, top


def parse_strace_c(path):
    total, top = None, []
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok or not tok[0][0].isdigit():
                continue
            if tok[-1] == "total":
                total = int(tok[3])
            elif len(tok) >= 5:
                top.append((int(tok[3]), tok[-1]))
    top.sort(reverse=True)
    return total, top[:4]


# ------------------------------------------------------------------------------------------------
# a running process

def proc_status(pid, key):
    """A kB figure of /proc/PID/status (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    """CPU time of all threads of pid so far (se.sum_exec_runtime, ns precision; utime+stime as a fallback)."""
    total, found = 0.0, False
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/sched" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("se.sum_exec_runtime"):
                            total += float(line.split(":")[1]) / 1e3
                            found = True
                            break
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    if found:
        return total
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------
# where trees go

class Scratch:
    """Where trees are written: --tmp DIR, a private tmpfs (root), or /dev/shm.

    A 262,144-block tree needs ~3.2 M inodes, more than a default /dev/shm has: as root a private
    tmpfs with nr_inodes=0 (unlimited) is mounted under /tmp for the run and unmounted at the end."""

    def __init__(self, tmp=None, prefix="hotplugd-bench-"):
        self.mounted = None
        if tmp:
            self.base = tempfile.mkdtemp(prefix=prefix, dir=tmp)
            return
        if os.geteuid() == 0:
            d = tempfile.mkdtemp(prefix=prefix + "tmpfs-", dir="/tmp")
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16G,nr_inodes=0,mode=0755", "hotplugd-bench", d],
                               stderr=subprocess.PIPE)
            if r.returncode == 0:
                self.mounted = d
                self.base = d
                return
            log("cannot mount a tmpfs (%s); using /dev/shm" % r.stderr.decode().strip())
            os.rmdir(d)
        self.base = tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")

    def tree(self, n, nodes=8, block_size="128M"):
        """Writes a simple_spec tree of n blocks; returns (root, seconds)."""
        root = os.path.join(self.base, "tree-%d" % n)
        t0 = time.monotonic()
        gentree.generate(root, gentree.simple_spec(n, nodes, block_size))
        return root, time.monotonic() - t0

    def remove(self, path):
        shutil.rmtree(path, ignore_errors=True)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.mounted], check=False)
            os.rmdir(self.mounted)
        else:
            shutil.rmtree(self.base, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# the daemon, running

def _harness_module():
    import conftest  # tests/integration/events/conftest.py: the events harness
    return conftest


class Daemon:
    """The built hotplugd running on an existing tree in a private network namespace, with a private
    system bus: the events harness (tests/integration/events/conftest.py) minus the tree generation,
    so that one tree serves the cold scan, the storm, the queries and the memory figures.

    Policy=offline: the daemon never writes to the tree, so the tree stays as generated."""

    def __init__(self, root, workdir, receive_buffer="1G", log_level="info", policy="offline"):
        h = _harness_module()
        self.h = h.Harness(None, workdir)
        self.h.root = root
        self.root = root
        self.receive_buffer = receive_buffer
        self.log_level = log_level
        self.policy = policy

    def start(self):
        hm = _harness_module()
        h = self.h
        hm.check_prerequisites()
        h.hotplugd = hm.hotplugd_binary()
        h.injector = hm.inject_binary()
        gentree.set_auto_online(h.root, "offline")
        os.makedirs(os.path.join(h.root, "etc/hotplugd"), exist_ok=True)
        with open(os.path.join(h.root, "etc/hotplugd/hotplugd.conf"), "w") as f:
            f.write("[Daemon]\nEventSource=udev\nReceiveBufferSize=%s\nLogLevel=%s\n\n[Online]\nPolicy=%s\n"
                    % (self.receive_buffer, self.log_level, self.policy))
        os.makedirs(h.runtime, exist_ok=True)
        t0 = time.monotonic()
        h._start_netns()
        h._start_bus()
        assert h.bus is not None, "dbus-daemon is missing (apt-get install dbus)"
        h._start_daemon()
        self.startup_s = time.monotonic() - t0
        self.pid = h.proc.pid
        self.bus_address = h.bus_address
        return self

    def env(self):
        return dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address, LANG="C.UTF-8", LC_ALL="C.UTF-8",
                    SYSTEMD_PAGER="", PAGER="cat")

    def figures(self):
        return {"rss_kib": rss_kib(self.pid), "hwm_kib": proc_status(self.pid, "VmHWM"), "fds": fd_count(self.pid),
                "cpu_s": cpu_seconds(self.pid)}

    def live_model(self, timeout=600):
        return self.h.live_model(timeout=timeout)

    def timed_dump(self, timeout=600):
        """SIGUSR2 dump (settles first); returns (model, wall seconds, daemon CPU seconds)."""
        c0, t0 = cpu_seconds(self.pid), time.monotonic()
        model = self.h.live_model(timeout=timeout)
        return model, time.monotonic() - t0, cpu_seconds(self.pid) - c0

    def inject(self, lines, repeat=1):
        extra = ("-n", str(repeat)) if repeat > 1 else ()
        return self.h.inject_lines(lines, extra_args=extra)

    def stderr(self):
        return self.h.stderr()

    def stop(self):
        try:
            self.h.stop()
        finally:
            self.h.cleanup()
