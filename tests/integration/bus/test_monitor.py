# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_monitor.py — hotplugctl monitor streams what changes, as lines or JSON (one object per line)."""

import json
import os
import select
import subprocess
import time


def start_monitor(stack, *args):
    cmd = ["setpriv", "--reuid", str(stack.user.pw_uid), "--regid", str(stack.user.pw_gid), "--clear-groups", "--",
           stack.hotplugctl, "monitor", *args]
    p = subprocess.Popen(cmd, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    assert line == "Monitoring org.hotplugd.Hotplug1; press Ctrl-C to stop.\n", line
    return p


def read_lines(p, n, timeout=10):
    """n lines from the monitor's stdout; select() on the raw fd, so lines that arrived together are
    not stuck in a Python buffer."""
    buf = getattr(p, "pending", b"")
    fd = p.stdout.fileno()
    end = time.monotonic() + timeout
    while buf.count(b"\n") < n and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    lines = buf.split(b"\n")
    p.pending = b"\n".join(lines[n:]) if len(lines) > n else b""
    return [line.decode() + "\n" for line in lines[:n] if line or len(lines) > n]


def stop(p):
    p.terminate()
    assert p.wait(10) == 0


def test_monitor_lines(stack):
    stack.allow(["quarantine", "offline-blocks"])
    p = start_monitor(stack)
    assert stack.ctl("quarantine", "1").returncode == 0
    line = read_lines(p, 1)[0]
    assert line.split(" ", 1)[1] == "node 1 changed: Quarantined=true\n"
    assert stack.ctl("offline-blocks", "40-41").returncode == 0
    lines = read_lines(p, 2)
    assert lines[0].split(" ", 1)[1] == ('node 1 changed: OnlineBlocks=10 OfflineBlocks=6 '
                                         'OnlineBlocksByZone={"Normal":8,"Movable":2}\n')
    assert lines[1].split(" ", 1)[1] == "manager changed: NOnlineBlocks=34 NOfflineBlocks=10\n"
    stop(p)


def test_monitor_json(stack):
    stack.allow(["retire-node"])
    p = start_monitor(stack, "--json=pretty")
    assert stack.ctl("retire-node", "2", "--dry-run").returncode == 0
    events = [json.loads(line) for line in read_lines(p, 4)]
    assert len(events) == 4
    assert events[0]["signal"] == "JobNew" and events[0]["args"] == [1, "/org/hotplugd/Hotplug1/job/1", "retire-node", 2]
    assert events[1]["changed"] == {"Jobs": ["/org/hotplugd/Hotplug1/job/1"]}
    states = [e["changed"].get("State") for e in events[2:] if e["signal"] == "PropertiesChanged"]
    assert states[:2] == ["running", "completed"]
    assert all(isinstance(e["timestamp"], int) for e in events)
    stop(p)
