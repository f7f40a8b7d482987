# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_read.py — the reading verbs of hotplugctl (no authorization needed), human and JSON."""

import re


def test_status(stack):
    p = stack.ctl("status")
    assert p.returncode == 0, p.err
    assert re.search(r"Policy: offline\n", p.out)
    assert "Block size: 128M" in p.out
    assert "44 blocks" in p.out and "36 online, 8 offline blocks" in p.out
    assert "Nodes: 3 (0-2)" in p.out
    assert p.err == ""
    # No verb means status.
    assert stack.ctl().out == p.out


def test_status_json(stack):
    j = stack.ctl_json("status")
    assert j["Version"] and j["BlockSize"] == 128 << 20
    assert j["NBlocks"] == 44 and j["NOnlineBlocks"] == 36 and j["NOfflineBlocks"] == 8
    assert j["Nodes"] == ["/org/hotplugd/Hotplug1/node/%d" % i for i in range(3)]
    assert j["Policy"] == "offline" and j["KernelAutoOnline"] == "offline"
    p = stack.ctl("--json=pretty", "status")
    assert p.returncode == 0 and p.out.startswith("{\n  \"Version\"")


def test_list_nodes(stack):
    p = stack.ctl("list-nodes")
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].split() == ["NODE", "ONLINE", "CPUS", "BLOCKS", "ONLINE-BLOCKS", "OFFLINE-BLOCKS", "MEMORY",
                                "POLICY", "QUARANTINED", "CAN-OFFLINE", "BLOCKERS"]
    row1 = lines[2].split()
    assert row1[:6] == ["1", "yes", "2", "16", "12", "4"] and "has-cpus" in row1[-1]
    assert lines[-1] == "3 nodes listed."
    p = stack.ctl("--no-legend", "list-nodes")
    assert len(p.out.splitlines()) == 3 and not p.out.startswith("NODE")


def test_list_nodes_json(stack):
    j = stack.ctl_json("list-nodes")
    assert [n["node"] for n in j] == [0, 1, 2]
    n2 = j[2]
    assert n2 == {"node": 2, "online": True, "has_memory": True, "present_cpus": 0, "blocks": 20, "online_blocks": 16,
                  "offline_blocks": 4, "spanned_pages": 16 * 32768, "present_pages": 16 * 32768, "policy": "offline",
                  "quarantined": False, "can_offline": False, "offline_blockers": ["spans-pages", "has-blocks"]}


def test_show_node(stack):
    p = stack.ctl("show-node", "2")
    assert p.returncode == 0, p.err
    assert p.out.startswith("Node 2\n")
    assert "Memory: 2G in 20 blocks: 16 online (Movable 16), 4 offline" in p.out
    assert "CPUs: none present, none online" in p.out
    assert "Can offline: no (spans-pages, has-blocks)" in p.out
    j = stack.ctl_json("show-node", "1")
    assert j["Id"] == 1 and j["PresentCPUs"] == [2, 3] and j["OnlineBlocksByZone"] == {"Normal": 8, "Movable": 4}
    assert j["Quarantined"] is False and j["PolicyOverride"] == ""


def test_show_node_missing(stack):
    p = stack.ctl("show-node", "99")
    assert p.returncode == 1
    assert p.err == "Node 99 does not exist (nodes: 0-2).\n"
    assert p.out == ""
    p = stack.ctl("--verbose", "show-node", "99")
    assert p.err == "Node 99 does not exist (nodes: 0-2). [org.hotplugd.Hotplug1.Error.NoSuchNode]\n"
    p = stack.ctl("show-node", "x")
    assert p.returncode == 2 and "Invalid node 'x'" in p.err


def test_list_blocks(stack):
    p = stack.ctl("list-blocks")
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].split() == ["RANGE", "SIZE", "STATE", "NODE", "ZONE", "OWNER", "BLOCKS"]
    assert lines[1].split() == ["0x0000000000000000-0x0000000007ffffff", "128M", "online", "0", "none", "boot", "0"]
    assert lines[6].split() == ["0x0000000200000000-0x000000027fffffff", "2G", "online", "2", "Movable", "acpi", "64-79"]
    assert "Memory block size:    128M" in p.out
    assert "Total online memory:  4.5G" in p.out and "Total offline memory: 1G" in p.out


def test_list_blocks_all_and_node(stack):
    p = stack.ctl("list-blocks", "--all", "--node", "2")
    assert p.returncode == 0, p.err
    rows = p.out.splitlines()[1:21]
    assert len(rows) == 20
    assert rows[0].split() == ["64", "0x0000000200000000-0x0000000207ffffff", "online", "2", "Movable", "Movable",
                               "acpi", "PNP0C80:00"]
    assert rows[-1].split()[:6] == ["83", "0x0000000298000000-0x000000029fffffff", "offline", "2", "Movable",
                                    "Movable"]
    p = stack.ctl("list-blocks", "--node", "7")
    assert p.returncode == 1 and p.err == "Node 7 does not exist (nodes: 0-2).\n"


def test_list_blocks_json(stack):
    ranges = stack.ctl_json("list-blocks")
    assert sum(r["blocks"] for r in ranges) == 44
    assert ranges[4] == {"start": 44 << 27, "end": (48 << 27) - 1, "size": 4 << 27, "state": "offline", "node": 1,
                         "zone": "Movable", "owner": "boot", "first_block": 44, "blocks": 4}
    blocks = stack.ctl_json("list-blocks", "--all")
    assert len(blocks) == 44
    b44 = [b for b in blocks if b["block"] == 44][0]
    assert b44 == {"block": 44, "start": 44 << 27, "end": (45 << 27) - 1, "state": "offline", "node": 1,
                   "zone": "Movable", "valid_zones": "Movable Normal", "owner": "boot", "device": None}


def test_plan_retire(stack):
    p = stack.ctl("plan-retire", "1")
    assert p.returncode == 1          # blockers: the plan says no
    assert re.search(r"^blocker +has-cpus +Node 1 has 2 present CPUs \(2-3\)", p.out, re.M)
    assert re.search(r"^warning +kernel-zone ", p.out, re.M)
    assert "Node cannot be retired" in p.out
    p = stack.ctl("plan-retire", "2")
    assert p.returncode == 0, p.out + p.err
    assert "blocker" not in p.out and "Node can be retired." in p.out
    j = stack.ctl_json("plan-retire", "2")
    assert j["can_retire"] is True and j["blockers"] == 0
    assert j["bytes_to_migrate"] > 0 and j["bytes_available"] > j["bytes_to_migrate"]
    assert {"verdict": "ok", "code": "acpi",
            "message": "20 memory blocks belong to 2 ejectable ACPI memory devices."} in j["findings"]
    p = stack.ctl("plan-retire", "5")
    assert p.returncode == 1 and p.err == "Node 5 does not exist (nodes: 0-2).\n"


def test_jobs_empty(stack):
    p = stack.ctl("jobs")
    assert p.returncode == 0 and p.out == "No jobs.\n"
    assert stack.ctl_json("jobs") == []


def test_usage_errors(stack):
    for args, message in [(("frobnicate",), "Unknown command 'frobnicate' (see hotplugctl --help).\n"),
                          (("show-node",), "show-node needs an argument (see hotplugctl --help).\n"),
                          (("set-policy", "1"), "set-policy needs two arguments (see hotplugctl --help).\n"),
                          (("status", "extra"), "Too many arguments for status.\n"),
                          (("--json=yaml", "status"), "Unknown JSON mode 'yaml': expected short, pretty or off.\n"),
                          (("online-blocks", "1-", ), "Invalid block range '1-': expected N, N-M or 0xSTART-0xEND.\n"),
                          (("online-blocks", "0x1000-0x1fff"),
                           "Physical range '0x1000-0x1fff' is not aligned to the block size (0x8000000).\n"),
                          (("online-blocks", "9-3"), "Invalid block range '9-3': the end is before the start.\n"),
                          (("online-blocks", "44", "--zone", "dma"),
                           "Invalid zone 'dma': expected movable, kernel or auto.\n")]:
        p = stack.ctl(*args)
        assert p.returncode == 2, args
        assert p.err == message
    p = stack.ctl("--help")
    assert p.returncode == 0 and "retire-node NODE" in p.out
    p = stack.ctl("--version")
    assert p.returncode == 0 and p.out.startswith("hotplugctl ")


def test_daemon_not_running(stack):
    stack.daemon.terminate()
    stack.daemon.wait(10)
    p = stack.ctl("status")
    assert p.returncode == 1
    assert p.err == "hotplugd is not running (nothing owns org.hotplugd.Hotplug1 on the system bus).\n"


def test_bus_policy_only_root_owns(stack):
    """The shipped bus policy: an unprivileged process cannot take hotplugd's name."""
    code = ("import dbus,sys\n"
            "b = dbus.bus.BusConnection(sys.argv[1])\n"
            "try:\n"
            "    b.request_name('org.hotplugd.Hotplug1.Test')\n"
            "    b.request_name('org.hotplugd.Hotplug1')\n"
            "except dbus.DBusException as e:\n"
            "    print(e.get_dbus_name()); sys.exit(0)\n"
            "sys.exit(1)\n")
    import subprocess
    p = subprocess.run(["setpriv", "--reuid", str(stack.user.pw_uid), "--regid", str(stack.user.pw_gid),
                        "--clear-groups", "/usr/bin/python3", "-c", code, stack.address],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == "org.freedesktop.DBus.Error.AccessDenied"
