# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_change.py — the changing verbs run by an unprivileged user: allowed by polkit they change the
tree; denied they exit 4 and change nothing."""

import json
import os
import re
import time


def test_online_blocks_allowed(stack):
    stack.allow(["online-blocks"])
    p = stack.ctl("online-blocks", "44-45", "--zone", "movable")
    assert p.returncode == 0, p.err
    assert p.out == "" and p.err == ""
    assert stack.state(44) == b"online_movable"
    assert stack.state(45) == b"online_movable"
    assert stack.state(46) == b"offline\n"


def test_online_blocks_denied(stack):
    before = stack.snapshot()
    p = stack.ctl("online-blocks", "44-47")
    assert p.returncode == 4
    assert p.err == "Not authorized to OnlineBlocks (org.hotplugd.hotplug1.online-blocks).\n"
    assert stack.snapshot() == before
    p = stack.ctl("--verbose", "online-blocks", "44")
    assert p.returncode == 4 and p.err.endswith("[org.freedesktop.DBus.Error.AccessDenied]\n")
    assert stack.snapshot() == before


def test_online_blocks_physical_range(stack):
    stack.allow(["online-blocks"])
    # 0x160000000 = block 44 (128 MiB blocks), up to the end of block 45.
    p = stack.ctl("--verbose", "online-blocks", "0x160000000-0x16fffffff", "--zone=kernel")
    assert p.returncode == 0, p.err
    assert p.out == "Memory block 44 is online.\nMemory block 45 is online.\n"
    assert stack.state(44) == b"online_kernel" and stack.state(45) == b"online_kernel"


def test_online_blocks_errors(stack):
    stack.allow(["online-blocks", "quarantine"])
    p = stack.ctl("online-blocks", "81", "--zone", "kernel")
    assert p.returncode == 1
    assert p.err == "Memory block 81 cannot go to zone Normal (valid zones: Movable).\n"
    p = stack.ctl("online-blocks", "999")
    assert p.returncode == 1 and p.err == "Memory block 999 does not exist.\n"
    assert stack.ctl("quarantine", "2").returncode == 0
    before = stack.snapshot()
    p = stack.ctl("online-blocks", "82")
    assert p.returncode == 1
    assert p.err == "Node 2 is quarantined: unquarantine it before onlining its memory (block 82).\n"
    assert stack.snapshot() == before


def test_offline_blocks_allowed(stack):
    stack.allow(["offline-blocks"])
    p = stack.ctl("offline-blocks", "40,41")
    assert p.returncode == 0, p.err
    assert stack.state(40) == b"offline" and stack.state(41) == b"offline"
    # The daemon read the blocks back: the model says offline now.
    assert stack.ctl_json("show-node", "1")["OfflineBlocks"] == 6


def test_offline_blocks_partial(stack):
    stack.allow(["offline-blocks"])
    p = stack.ctl("offline-blocks", "0,6-7")
    assert p.returncode == 64
    assert p.err == ("Memory block 0 spans several zones or nodes and can never be offlined.\n"
                     "2 of 3 memory blocks offline; 1 failed.\n")
    assert stack.state(0) == b"online\n" and stack.state(6) == b"offline"
    p = stack.ctl("--json=short", "offline-blocks", "0,7")
    assert p.returncode == 64
    assert json.loads(p.out) == [
        {"block": 0, "ok": False, "error": "org.hotplugd.Hotplug1.Error.NotRemovable",
         "message": "Memory block 0 spans several zones or nodes and can never be offlined."},
        {"block": 7, "ok": True, "error": None, "message": "Memory block 7 is already offline."}]


def test_offline_blocks_all_fail(stack):
    stack.allow(["offline-blocks"])
    p = stack.ctl("offline-blocks", "0")
    assert p.returncode == 1
    assert p.err == "Memory block 0 spans several zones or nodes and can never be offlined.\n"


def test_offline_blocks_denied(stack):
    stack.allow(["online-blocks"])   # the wrong action
    before = stack.snapshot()
    p = stack.ctl("offline-blocks", "40-43")
    assert p.returncode == 4
    assert p.err == "Not authorized to OfflineBlocks (org.hotplugd.hotplug1.offline-blocks).\n"
    assert stack.snapshot() == before


def test_root_needs_no_polkit(stack):
    """root (CAP_SYS_ADMIN) is authorized without asking polkit, like systemd's services do."""
    stack.allow([])
    p = stack.ctl("offline-blocks", "43", root=True)
    assert p.returncode == 0, p.err
    assert stack.state(43) == b"offline"


def test_set_policy(stack):
    stack.allow(["set-policy"])
    assert stack.ctl("set-policy", "1", "online_movable").returncode == 0
    j = stack.ctl_json("show-node", "1")
    assert j["Policy"] == "online_movable" and j["PolicyOverride"] == "online_movable"
    assert "Policy: online_movable (set at runtime)" in stack.ctl("show-node", "1").out
    p = stack.ctl("set-policy", "1", "sometimes")
    assert p.returncode == 1 and p.err.startswith("Unknown policy 'sometimes': expected offline, online,")
    assert stack.ctl("set-policy", "1", "default").returncode == 0
    assert stack.ctl_json("show-node", "1")["PolicyOverride"] == ""
    p = stack.ctl("set-policy", "9", "online")
    assert p.returncode == 1 and p.err == "Node 9 does not exist (nodes: 0-2).\n"
    stack.allow([])
    p = stack.ctl("set-policy", "1", "online")
    assert p.returncode == 4
    assert stack.ctl_json("show-node", "1")["Policy"] == "offline"


def test_quarantine(stack):
    stack.allow(["quarantine"])
    assert stack.ctl("quarantine", "1").returncode == 0
    assert stack.ctl_json("show-node", "1")["Quarantined"] is True
    assert "Quarantined: yes" in stack.ctl("show-node", "1").out
    assert re.search(r"^1 .* yes +no ", stack.ctl("--no-legend", "list-nodes").out, re.M)
    assert stack.ctl("unquarantine", "1").returncode == 0
    assert stack.ctl_json("show-node", "1")["Quarantined"] is False
    stack.allow([])
    p = stack.ctl("quarantine", "1")
    assert p.returncode == 4 and p.err == "Not authorized to QuarantineNode (org.hotplugd.hotplug1.quarantine).\n"
    assert stack.ctl_json("show-node", "1")["Quarantined"] is False


def test_retire_node(stack):
    stack.allow(["retire-node"])
    # Refused by the preflight: nothing changes.
    before = stack.snapshot()
    p = stack.ctl("--verbose", "retire-node", "1")
    assert p.returncode == 1
    assert p.err.splitlines()[-1].startswith("Preflight: Node 1 has 2 present CPUs (2-3)")
    assert p.err.splitlines()[-1].endswith("Nothing was changed. [org.hotplugd.Hotplug1.Error.NodeHasCPUs]")
    assert stack.snapshot() == before
    # The drain without the eject: node 2's 16 online blocks are written offline (a generated
    # tree keeps what was written), the job completes, the node is quarantined.
    p = stack.ctl("retire-node", "2", "--no-eject")
    assert p.returncode == 0, p.err
    lines = p.err.splitlines()      # (progress lines in between if the job was seen running)
    assert lines[0] == "Job 2: retiring node 2 (hotplugctl cancel 2 stops it)."  # job 1 was the refusal
    assert p.out.startswith("Drained node 2: 16 blocks (2048 MiB) offline in "), p.out   # the result: stdout
    assert p.out.endswith("; not ejected (--no-eject). Node 2 is quarantined.\n"), p.out
    after = stack.snapshot()
    assert all(after["memory%d" % b] == b"offline" for b in range(64, 80))
    assert all(after[k] == v for k, v in before.items() if not k.startswith("memory") or
               not 64 <= int(k[6:]) < 80)
    assert stack.ctl_json("show-node", "2")["Quarantined"] is True


def test_retire_node_dry_run_and_no_block(stack):
    stack.allow(["retire-node"])
    before = stack.snapshot()
    p = stack.ctl("retire-node", "2", "--dry-run")
    assert p.returncode == 0, p.err
    assert p.out.startswith("Dry run: node 2 can be retired (0 warnings); "), p.out
    assert p.out.rstrip().endswith("Nothing was changed."), p.out
    assert stack.snapshot() == before
    p = stack.ctl("retire-node", "2", "--no-block", "--dry-run")
    assert p.returncode == 0 and p.out == "/org/hotplugd/Hotplug1/job/2\n" and p.err == ""
    assert stack.ctl_json("retire-node", "2", "--no-block", "--dry-run") in (
        {"job": "/org/hotplugd/Hotplug1/job/3"},)
    for _ in range(200):
        jobs = stack.ctl_json("jobs")
        if all(j["state"] != "running" and j["state"] != "queued" for j in jobs):
            break
        time.sleep(0.05)
    assert [(j["job"], j["kind"], j["node"], j["state"]) for j in jobs] == [
        (1, "retire-node", 2, "completed"), (2, "retire-node", 2, "completed"), (3, "retire-node", 2, "completed")]
    assert jobs[0]["progress"] == 1
    p = stack.ctl("jobs")
    assert re.search(r"^ *1 retire-node +2 completed +100% Dry run", p.out, re.M)
    assert p.out.endswith("3 jobs listed.\n")


def test_retire_node_denied(stack):
    stack.allow([])
    p = stack.ctl("retire-node", "2")
    assert p.returncode == 4
    assert p.err == "Not authorized to RetireNode (org.hotplugd.hotplug1.retire-node).\n"
    assert stack.ctl_json("jobs") == []


def test_cancel(stack):
    stack.allow(["retire-node", "cancel-job"])
    assert stack.ctl("retire-node", "2", "--dry-run").returncode == 0
    p = stack.ctl("cancel", "1")
    assert p.returncode == 1 and p.err == "Job 1 has already completed.\n"
    p = stack.ctl("cancel", "/org/hotplugd/Hotplug1/job/7")
    assert p.returncode == 1 and p.err == "Job 7 does not exist.\n"
    p = stack.ctl("cancel", "seven")
    assert p.returncode == 2 and p.err == "Invalid job 'seven': expected a job number.\n"


def test_reload(stack):
    stack.allow(["reload"])
    stack.write_config("[Online]\nPolicy=online_movable\n")
    assert stack.ctl("reload").returncode == 0
    assert stack.ctl_json("status")["Policy"] == "online_movable"
    stack.write_config("[Online]\nPolicy=sometimes\n")
    p = stack.ctl("reload")
    assert p.returncode == 1
    assert p.err.startswith("The configuration is invalid, the old one stays: ")
    assert "hotplugd.conf:2" in p.err
    assert stack.ctl_json("status")["Policy"] == "online_movable"
    stack.allow([])
    stack.write_config("[Online]\nPolicy=offline\n")
    p = stack.ctl("reload")
    assert p.returncode == 4
    assert stack.ctl_json("status")["Policy"] == "online_movable"


def test_no_ask_password(stack):
    """Without --no-ask-password the client allows interactive authorization; dbusmock's polkit
    answers the same either way, so this checks the flag does not break anything."""
    stack.allow(["quarantine"])
    assert stack.ctl("--no-ask-password", "quarantine", "2").returncode == 0
    assert stack.ctl("quarantine", "2").returncode == 0


def test_kernel_handoff(stack):
    """TakeOver=yes with a policy that is the same for every node: hotplugd writes that policy to
    auto_online_blocks (the kernel then onlines in-line), and takes it back ("offline") whenever a
    node needs its own decision — a quarantine, a per-node policy, a retire — and when it exits."""
    path = os.path.join(stack.root, "sys/devices/system/memory/auto_online_blocks")

    def auto_online():
        """What the kernel would read back: a generated tree is a plain file, written over without
        truncation, so take the last value written (its longest known prefix) and store it clean."""
        raw = stack.snapshot()["auto_online_blocks"]
        known = [v for v in (b"offline", b"online", b"online_kernel", b"online_movable") if raw.startswith(v)]
        assert known, raw
        value = max(known, key=len)
        with open(path, "wb") as f:
            f.write(value + b"\n")
        return value

    def log_lines():
        return [l for l in stack.log().splitlines() if l.startswith("Kernel auto-online set from")]

    stack.allow(["reload", "quarantine", "set-policy", "retire-node"])
    assert auto_online() == b"offline"
    stack.write_config("[Daemon]\nTakeOver=yes\n[Online]\nPolicy=online_movable\n")
    assert stack.ctl("reload").returncode == 0
    assert auto_online() == b"online_movable"
    assert log_lines()[-1] == ("Kernel auto-online set from 'offline' to 'online_movable' (TakeOver=yes): "
                               "the policy is the same for every node.")
    # hotplugd owns the setting now: it is not reported as another onliner.
    assert stack.ctl_json("status")["KernelAutoOnline"] == "online_movable"
    assert "Conflicts: none" in stack.ctl("status").out, stack.ctl("status").out

    assert stack.ctl("quarantine", "1").returncode == 0
    assert auto_online() == b"offline"
    assert stack.ctl("unquarantine", "1").returncode == 0
    assert auto_online() == b"online_movable"

    assert stack.ctl("set-policy", "1", "online_kernel").returncode == 0
    assert auto_online() == b"offline"
    assert stack.ctl("set-policy", "1", "online_movable").returncode == 0   # the same as everyone's
    assert auto_online() == b"online_movable"
    assert stack.ctl("set-policy", "1", "default").returncode == 0
    assert auto_online() == b"online_movable"

    # A retire takes the policy back before its drain; the retired node stays quarantined.
    p = stack.ctl("retire-node", "2", "--no-eject")
    assert p.returncode == 0, p.err
    assert auto_online() == b"offline"
    assert "to 'offline' (TakeOver=yes): the policy depends on the node" in log_lines()[-1]
    assert stack.ctl("unquarantine", "2").returncode == 0
    assert auto_online() == b"online_movable"

    stack.write_config("[Daemon]\nTakeOver=yes\n[Online]\nPolicy=online_movable\nKernelHandoff=no\n")
    assert stack.ctl("reload").returncode == 0
    assert auto_online() == b"offline"
    assert log_lines()[-1].endswith("to 'offline' (TakeOver=yes): KernelHandoff=no.")
    stack.write_config("[Daemon]\nTakeOver=yes\n[Online]\nPolicy=online\n")
    assert stack.ctl("reload").returncode == 0
    assert auto_online() == b"online"

    # A clean exit leaves new memory waiting for hotplugd's next start.
    stack.daemon.terminate()
    assert stack.daemon.wait(30) == 0
    assert auto_online() == b"offline"
    assert "Kernel auto-online set back to 'offline' until hotplugd runs again." in stack.log()
