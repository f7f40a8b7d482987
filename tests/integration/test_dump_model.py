# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_dump_model.py — hotplugd --root TREE --dump-model against generated trees (one meson test per case).

Every case builds a fake host with tests/gen-tree.py, runs the built daemon, and checks its JSON
against what gentree.scan() reads back from the same tree (common.diff_model), plus the verdicts of
the kernel's node-offline rule spelled out by hand for the node the case is about."""

import json
import os
import re
import shutil
import subprocess

import pytest

import common
from common import gentree, model_blocks, model_node, run_dump

BS = 128 << 20


def gen_and_dump(tree, spec):
    gentree.generate(tree.root, spec)
    s = gentree.scan(tree.root)
    model = run_dump(tree.root)
    common.assert_model_matches(model, s, tree.root)
    return model, s


def boot_node0(sp, n=16):
    """Node 0 as on a real x86_64 host: block 0 straddles DMA/DMA32 ("none"), then DMA32, then Normal."""
    sp.node(0, cpus=[0, 1], hugepages={2048: 8})
    sp.blocks(0, 1, 0, zone="none")
    sp.blocks(1, min(n, 24) - 1, 0, zone="DMA32")
    if n > 24:
        sp.blocks(32, n - 24, 0, zone="Normal")
    return sp


def verdict(model, nid):
    n = model_node(model, nid)
    return sorted(n["offline_blockers"]), n["can_offline"]


# --------------------------------------------------------------------------------------------

def test_normal_node(tree):
    """A node with online memory and cpus: spans-pages, has-blocks, has-cpus."""
    sp = gentree.Spec(possible_nodes=[0, 1, 2])
    boot_node0(sp, 32)
    sp.node(1, cpus=[2, 3])
    sp.blocks(64, 16, 1, zone="Normal").blocks(80, 8, 1, zone="Movable").blocks(88, 8, 1, state="offline")
    model, s = gen_and_dump(tree, sp)
    for nid in (0, 1):
        assert verdict(model, nid) == (["has-blocks", "has-cpus", "spans-pages"], False), model_node(model, nid)
    n1 = model_node(model, 1)
    assert (n1["blocks"], n1["online_blocks"], n1["offline_blocks"]) == (32, 24, 8)
    assert n1["online_blocks_by_zone"] == {"Normal": 16, "Movable": 8}
    assert n1["spanned_pages"] == 24 * BS // 4096
    # node 2 is possible only: if listed at all, then offline and empty
    for n in model["nodes"]:
        if n["id"] == 2:
            assert not n["online"] and not n["blocks"], n


def test_offline_blocks_keep_nid(tree):
    """Offline blocks are not spanned but still carry the nid: has-blocks without spans-pages."""
    sp = boot_node0(gentree.Spec(), 16)
    sp.node(1)
    sp.blocks(40, 8, 1, state="offline", valid_zones="Movable Normal")
    model, s = gen_and_dump(tree, sp)
    n1 = model_node(model, 1)
    assert verdict(model, 1) == (["has-blocks"], False), n1
    assert n1["spanned_pages"] == 0 and n1["blocks"] == 8 and n1["offline_blocks"] == 8, n1
    assert not n1["has_memory"], n1
    for i in range(40, 48):
        b = model_blocks(model)[i]
        assert b["state"] == "offline" and b["zone"] is None and b["valid_zones"] == ["Movable", "Normal"], b


def test_multi_node_boot_blocks(tree):
    """A boot block spanning nodes 0 and 1 links to both: both count it, it keeps node 1 online."""
    sp = gentree.Spec()
    sp.node(0, cpus=[0, 1]).node(1).node(2, cpus=[2])
    sp.blocks(0, 1, 0, zone="none").blocks(1, 7, 0, zone="DMA32")
    sp.blocks(8, 1, [0, 1])                         # the shared block, valid_zones "none"
    sp.blocks(9, 1, [1, 2])                         # and another one shared by 1 and 2
    sp.blocks(10, 6, 2, zone="DMA32")
    model, s = gen_and_dump(tree, sp)
    blocks = model_blocks(model)
    for i, ns in ((8, [0, 1]), (9, [1, 2])):
        b = blocks[i]
        assert sorted(b["nodes"]) == ns and b["zone"] == "none" and b["state"] == "online", b
    n1 = model_node(model, 1)
    assert n1["blocks"] == 2 and n1["online_blocks"] == 2, n1
    assert model_node(model, 0)["blocks"] == 9 and model_node(model, 2)["blocks"] == 7
    assert verdict(model, 1) == (["has-blocks", "spans-pages"], False), n1
    # block 8 at 1 GiB is DMA32: node 1 gets half of it (and half of block 9)
    assert n1["zones"]["DMA32"]["spanned"] == BS // 4096, n1["zones"]


def test_zone_device_span(tree):
    """A node that spanned ZONE_DEVICE memory never goes offline, even without blocks or cpus."""
    sp = boot_node0(gentree.Spec(), 16)
    sp.node(1, device_pages=262144)
    model, s = gen_and_dump(tree, sp)
    n1 = model_node(model, 1)
    assert verdict(model, 1) == (["spans-pages", "zone-device"], False), n1
    assert n1["blocks"] == 0 and not n1["has_memory"], n1
    assert n1["zones"]["Device"]["spanned"] == 262144 and n1["zones"]["Device"]["present"] == 0, n1["zones"]
    assert n1["present_pages"] == 0 and n1["spanned_pages"] == 262144, n1


def test_present_offline_cpus(tree):
    """Offline but present cpus keep a node online (check_cpu_on_node uses present cpus)."""
    sp = boot_node0(gentree.Spec(), 16)
    sp.node(1, cpus=[2, 3], offline_cpus=[2, 3])
    sp.node(2, cpus=[4, 5], offline_cpus=[5])
    model, s = gen_and_dump(tree, sp)
    n1 = model_node(model, 1)
    assert verdict(model, 1) == (["has-cpus"], False), n1
    assert sorted(n1["present_cpus"]) == [2, 3] and n1["online_cpus"] == [], n1
    n2 = model_node(model, 2)
    assert sorted(n2["present_cpus"]) == [4, 5] and n2["online_cpus"] == [4], n2
    assert verdict(model, 2) == (["has-cpus"], False), n2


def test_empty_online_node(tree):
    """Online, no memory, no cpus, no ZONE_DEVICE: the kernel would let it go (can_offline true)."""
    sp = boot_node0(gentree.Spec(possible_nodes=[0, 1, 2, 3]), 16)
    sp.node(1)
    sp.node(2, cpus=[2])
    model, s = gen_and_dump(tree, sp)
    n1 = model_node(model, 1)
    assert verdict(model, 1) == ([], True), n1
    assert n1["blocks"] == 0 and n1["spanned_pages"] == 0 and n1["present_cpus"] == [], n1


def test_memoryless_acpi_node(tree):
    """A cpu-less node whose only memory is two offline ACPI DIMMs in a container: has-blocks only."""
    sp = boot_node0(gentree.Spec(), 16)
    sp.node(1)
    sp.blocks(64, 4, 1, state="offline", valid_zones="Movable Normal", owner="acpi", device="PNP0C80:00",
              container="ACPI0004:00")
    sp.blocks(68, 4, 1, state="offline", valid_zones="Movable Normal", owner="acpi", device="PNP0C80:01",
              container="ACPI0004:00")
    model, s = gen_and_dump(tree, sp)
    n1 = model_node(model, 1)
    assert verdict(model, 1) == (["has-blocks"], False), n1
    assert n1["blocks"] == 8 and n1["offline_blocks"] == 8 and n1["spanned_pages"] == 0, n1
    blocks = model_blocks(model)
    for i in range(64, 72):
        assert blocks[i]["owner"] == "acpi", blocks[i]
        assert blocks[i]["device"] == ("PNP0C80:00" if i < 68 else "PNP0C80:01"), blocks[i]


def test_counts_and_owners(tree):
    """Per-node counters and per-block owners: boot, acpi (firmware_node), virtio-mem and dax-kmem (iomem)."""
    sp = gentree.Spec(possible_nodes=list(range(6)))
    sp.node(0, cpus=[0, 1], hugepages={2048: {"nr": 64, "free": 32}, 1048576: 1})
    sp.node(1, cpus=[2, 3], offline_cpus=[3], hugepages={2048: 16})
    sp.node(2).node(3, cpus=[4])
    sp.blocks(0, 1, 0, zone="none").blocks(1, 7, 0, zone="DMA32").blocks(8, 1, [0, 1])
    sp.blocks(9, 3, 1, zone="Normal").blocks(12, 2, 1, state="offline", valid_zones="Movable Normal")
    sp.blocks(32, 4, 2, state="offline", owner="acpi", container="ACPI0004:00")          # PNP0C80:00
    sp.blocks(36, 4, 2, zone="Movable", owner="acpi", device="PNP0C80:07", container="ACPI0004:00")
    sp.blocks(40, 2, 1, zone="Movable", owner="virtio_mem", device="virtio3")
    sp.blocks(42, 2, 1, state="offline", owner="virtio_mem", device="virtio3")
    sp.blocks(48, 4, 0, zone="Movable", owner="dax_kmem", device="dax1.0")
    sp.blocks(52, 2, 0, state="offline", owner="dax_kmem", device="dax1.0", valid_zones="Movable Normal")
    sp.blocks(60, 2, 3, zone="Movable", owner="acpi", device="PNP0C80:01")
    sp.blocks(62, 2, 3, state="going-offline", zone="Movable", owner="acpi", device="PNP0C80:01")
    model, s = gen_and_dump(tree, sp)
    blocks = model_blocks(model)
    owners = {i: (b["owner"], b["device"] if b["owner"] == "acpi" else None) for i, b in blocks.items()}
    want = {}
    for i in list(range(0, 14)):
        want[i] = ("boot", None)
    for i in range(32, 36):
        want[i] = ("acpi", "PNP0C80:00")
    for i in range(36, 40):
        want[i] = ("acpi", "PNP0C80:07")
    for i in range(40, 44):
        want[i] = ("virtio-mem", None)
    for i in range(48, 54):
        want[i] = ("dax-kmem", None)
    for i in range(60, 64):
        want[i] = ("acpi", "PNP0C80:01")
    assert owners == want
    n3 = model_node(model, 3)
    assert (n3["blocks"], n3["online_blocks"], n3["going_offline_blocks"], n3["offline_blocks"]) == (4, 2, 2, 0), n3
    for n in model["nodes"]:
        assert n["blocks"] == n["online_blocks"] + n["offline_blocks"] + n["going_offline_blocks"], n
        assert sum(n["online_blocks_by_zone"].values()) == n["online_blocks"], \
            "node %d: online_blocks_by_zone %s does not add up to online_blocks %d" % (
                n["id"], n["online_blocks_by_zone"], n["online_blocks"])
    assert sorted((h["size_kb"], h["nr"], h["free"]) for h in model_node(model, 0)["hugepages"]) == \
        [(2048, 64, 32), (1048576, 1, 1)]
    # the plan only ever onlines blocks that are offline, on their own node
    for p in model.get("plan", []):
        if p.get("action") in (None, "none"):
            continue
        b = blocks.get(p["block"])
        assert b is not None and b["state"] == "offline" and p["node"] in b["nodes"], p


def conflict_kinds(model):
    return sorted(c["kind"] for c in model["conflicts"])


@pytest.mark.parametrize("case", ["clean", "auto", "cmdline", "udev", "all"])
def test_conflicts(tree, case):
    """Competing onliners: kernel auto-online, memhp_default_state= on the command line, a udev rule."""
    sp = boot_node0(gentree.Spec(), 16)
    sp.node(1).blocks(64, 4, 1, state="offline")
    if case in ("auto", "all"):
        sp.set(auto_online_blocks="online_movable")
    if case in ("cmdline", "all"):
        sp.set(memhp_default_state="online")
    if case in ("udev", "all"):
        sp.set(udev_rule=True)
    model, s = gen_and_dump(tree, sp)
    want = {"clean": [], "auto": ["kernel-auto-online"], "cmdline": ["cmdline"], "udev": ["udev-rule"],
            "all": ["cmdline", "kernel-auto-online", "udev-rule"]}[case]
    assert conflict_kinds(model) == want, model["conflicts"]
    for c in model["conflicts"]:
        assert c.get("source") and not c["source"].startswith(tree.root), c
        if c["kind"] == "udev-rule":
            assert c["source"].endswith("/etc/udev/rules.d/80-hotplug-memory.rules:%d" % gentree.UDEV_RULE_LINE), c
        if c["kind"] == "kernel-auto-online":
            assert "auto_online_blocks" in c["source"], c
        if c["kind"] == "cmdline":
            assert "cmdline" in c["source"], c


def test_conflicts_udev_masked(tree):
    """udev semantics: /etc/udev/rules.d/X masks /usr/lib/udev/rules.d/X (a commented copy or a /dev/null
    link is the documented way to disable a distro rule); comments and non-memory rules are no conflict."""
    sp = boot_node0(gentree.Spec(), 16)
    gentree.generate(tree.root, sp)
    r = tree.root
    os.makedirs(r + "/usr/lib/udev/rules.d")
    os.makedirs(r + "/etc/udev/rules.d")
    with open(r + "/usr/lib/udev/rules.d/40-redhat.rules", "w") as f:
        f.write(gentree.UDEV_RULE_TEXT)
    with open(r + "/etc/udev/rules.d/40-redhat.rules", "w") as f:
        f.write("".join("# " + line + "\n" for line in gentree.UDEV_RULE_TEXT.splitlines()))
    with open(r + "/usr/lib/udev/rules.d/81-hotplug.rules", "w") as f:
        f.write(gentree.UDEV_RULE_TEXT)
    os.symlink("/dev/null", r + "/etc/udev/rules.d/81-hotplug.rules")
    with open(r + "/etc/udev/rules.d/60-disk.rules", "w") as f:
        f.write('SUBSYSTEM=="block", ACTION=="add", ATTR{queue/scheduler}="none"\n')
    model = run_dump(tree.root)
    assert conflict_kinds(model) == [], model["conflicts"]


# --------------------------------------------------------------------------------------------

def snapshot(root):
    """Everything a write could change: type, mode, size, mtime/ctime, content or link target."""
    snap = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files + ["."]:
            p = os.path.normpath(os.path.join(base, name))
            st = os.lstat(p)
            entry = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)
            if os.path.islink(p):
                entry += (os.readlink(p),)
            elif os.path.isfile(p) and st.st_mode & 0o444:
                with open(p, "rb") as f:
                    entry += (f.read(),)
            snap[os.path.relpath(p, root)] = entry
    return snap


def rich_spec():
    sp = gentree.Spec(possible_nodes=[0, 1, 2, 3, 4], auto_online_blocks="online", memhp_default_state="online",
                      udev_rule=True)
    boot_node0(sp, 40)
    sp.node(1, cpus=[2, 3], offline_cpus=[3]).node(2, device_pages=4096).node(3)
    sp.blocks(48, 1, [0, 1])
    sp.blocks(64, 8, 1, zone="Movable", owner="virtio_mem").blocks(72, 4, 1, state="offline", owner="virtio_mem")
    sp.blocks(80, 4, 3, state="offline", owner="acpi", container="PNP0A06:00")
    sp.blocks(84, 4, 3, zone="Movable", owner="dax_kmem")
    sp.blocks(88, 2, 1, state="going-offline", zone="Movable", owner="acpi")
    return sp


def test_dump_writes_nothing(tree):
    """--dump-model must not create, modify, chmod or touch anything in the tree."""
    gentree.generate(tree.root, rich_spec())
    before = snapshot(tree.root)
    run_dump(tree.root)
    run_dump(tree.root)
    after = snapshot(tree.root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, "--dump-model changed %d path(s) in %s: %s" % (len(changed), tree.root, changed[:20])


WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
MUTATING = ("creat", "mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2",
            "symlink", "symlinkat", "link", "linkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
            "fchownat", "lchown", "truncate", "ftruncate", "utimensat", "utime", "utimes", "mknod", "mknodat",
            "setxattr", "lsetxattr", "fsetxattr", "removexattr")


# What libraries read about the machine the daemon runs on, read-only and never model input, so
# allowed outside the root: glibc (sysconf, /proc/self) and libnuma, whose constructor (numa_init)
# reads the host's node and CPU topology when the library is loaded. hotplugd itself opens
# nothing outside the root.
HOST_OK = re.compile(r"/proc/(self|thread-self)/|/sys/devices/system/cpu(/(online|possible|present|cpu[0-9]+))?$"
                     r"|/sys/devices/system/node(/(possible|online|node[0-9]+(/(meminfo|cpumap))?))?$")


def test_dump_syscalls_read_only_under_root(tree):
    """Under strace: no write-mode open or mutating call anywhere, and no /sys or /proc path outside the root."""
    assert shutil.which("strace"), "strace is needed by this test (apt-get install strace)"
    gentree.generate(tree.root, rich_spec())
    log = os.path.join(tree.dir, "strace.log")
    cmd = ["strace", "-f", "-y", "-qq", "-s", "256", "-o", log,
           "-e", "trace=%file,%desc", common.hotplugd_binary(), "--root", tree.root, "--dump-model"]
    # LeakSanitizer cannot work under ptrace: in the sanitizer builds, leaks are checked elsewhere.
    env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":"))
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    bad = []
    with open(log) as f:
        for line in f:
            m = re.match(r"\d+\s+(\w+)\((.*)", line)
            if not m:
                continue
            call, args = m.groups()
            if call in ("open", "openat", "openat2") and WRITE_FLAGS.search(args):
                bad.append(line.strip())
            elif call in MUTATING and "= -1" not in line:
                bad.append(line.strip())
            if call in ("read", "write", "pread64", "pwrite64", "readv", "writev", "sendmsg", "recvmsg"):
                continue
            paths = re.findall(r'"(/[^"]*)"', args)
            for path in paths:
                if re.match(r"/(sys|proc)(/|$)", path) and not HOST_OK.match(path):
                    bad.append(line.strip())
                if path.startswith("/etc/udev"):
                    bad.append(line.strip())
    assert not bad, "hotplugd --dump-model on %s made %d forbidden call(s):\n%s" % (tree.root, len(bad), "\n".join(bad[:20]))


# --------------------------------------------------------------------------------------------

def lsmem_blocks(root):
    p = subprocess.run(["lsmem", "--sysroot", root, "-J", "-a", "-o", "RANGE,STATE,NODE,ZONES"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, timeout=300)
    out = {}
    for e in json.loads(p.stdout)["memory"]:
        a, b = (int(x, 16) for x in e["range"].split("-"))
        out[a] = dict(e, end=b)
    return out


def test_agrees_with_lsmem(tree):
    """The model's ranges, states, nodes and zones agree with lsmem --sysroot on the same tree."""
    gentree.generate(tree.root, rich_spec())
    model = run_dump(tree.root)
    ls = lsmem_blocks(tree.root)
    blocks = model_blocks(model)
    assert sorted(ls) == sorted(b["start"] for b in blocks.values()), "block ranges differ from lsmem's"
    states = {"online": "online", "offline": "offline", "going-offline": "on->off"}
    errs = []
    for b in blocks.values():
        e = ls[b["start"]]
        if e["end"] != b["start"] + b["size"] - 1:
            errs.append("block %d: lsmem range %s" % (b["index"], e["range"]))
        if states[b["state"]] != e["state"]:
            errs.append("block %d: state %s, lsmem %s" % (b["index"], b["state"], e["state"]))
        if e["node"] not in b["nodes"]:
            errs.append("block %d: nodes %s, lsmem node %s" % (b["index"], b["nodes"], e["node"]))
        zones = "None" if b["valid_zones"] == ["none"] else "/".join(b["valid_zones"])
        if zones != e["zones"]:
            errs.append("block %d: valid_zones %s, lsmem zones %s" % (b["index"], b["valid_zones"], e["zones"]))
    assert not errs, "model vs lsmem on %s:\n%s" % (tree.root, "\n".join(errs[:20]))


def test_round_trip_4096_blocks(tree):
    """A 4,096-block, 8-node tree (with DIMMs, virtio-mem and dax appended) round-trips exactly."""
    sp = gentree.simple_spec(4096, 8)
    top = max(b["start"] + b["count"] for b in sp["blocks"])
    sp["nodes"][5]["offline_cpus"] = list(sp["nodes"][5]["cpus"])
    sp["nodes"].append({"id": 8})
    sp["nodes"].append({"id": 9, "device_pages": 1 << 20})
    sp["blocks"] += [
        {"start": top, "count": 64, "node": 8, "state": "offline", "owner": "acpi", "container": "ACPI0004:00"},
        {"start": top + 64, "count": 64, "node": 8, "state": "online", "zone": "Movable", "owner": "acpi",
         "container": "ACPI0004:00"},
        {"start": top + 128, "count": 32, "node": 3, "state": "online", "zone": "Movable", "owner": "virtio_mem"},
        {"start": top + 160, "count": 32, "node": 4, "state": "online", "zone": "Movable", "owner": "dax_kmem"},
    ]
    model, s = gen_and_dump(tree, sp)
    assert len(model["blocks"]) == 4096 + 192
    assert verdict(model, 5)[0] == ["has-blocks", "has-cpus", "spans-pages"]
    assert verdict(model, 9) == (["spans-pages", "zone-device"], False)


def test_mutated_tree(tree):
    """After hot-add/remove/state changes made with the gentree mutation API, a fresh dump matches the tree."""
    sp = boot_node0(gentree.Spec(possible_nodes=[0, 1, 2, 3]), 16)
    sp.node(1, cpus=[2])
    sp.blocks(64, 8, 1, zone="Normal")
    gentree.generate(tree.root, sp)
    r = tree.root
    gentree.add_node(r, 2)
    for i in range(96, 100):
        gentree.add_block(r, i, 2, owner=("acpi", "PNP0C80:05"), update=False)
    gentree.add_block(r, 100, 2, state="online", zone="Movable", owner="virtio_mem", update=False)
    gentree.add_block(r, 101, 2, owner=("dax_kmem", "dax2.0"), update=False)
    gentree.set_block_state(r, 96, "online", zone="Movable", update=False)
    gentree.set_block_state(r, 70, "offline", update=False)
    gentree.set_block_state(r, 71, "going-offline", update=False)
    gentree.remove_block(r, 64, update=False)
    gentree.add_block(r, 102, 2, link=False, update=False)   # added, not yet linked to its node
    gentree.write_zoneinfo(r)
    gentree.remove_cpu(r, 2)
    gentree.add_node(r, 3, cpus=[5], offline_cpus=[5])
    model, s = run_dump(r), gentree.scan(r)
    common.assert_model_matches(model, s, r)
    assert verdict(model, 2) == (["has-blocks", "spans-pages"], False)
    assert verdict(model, 3) == (["has-cpus"], False)
    assert model_blocks(model)[102]["nodes"] == []


@pytest.mark.parametrize("size", ["16M", "2G"])
def test_block_sizes(tree, size):
    """Other block sizes: 16 MiB (ppc64-like) and 2 GiB (large x86_64 hosts); spans scale with them."""
    bs = gentree.parse_size(size)
    base = (4 << 30) // bs                    # first block at 4 GiB: above the DMA32 zone
    sp = gentree.Spec(block_size=bs)
    sp.node(0, cpus=[0]).node(1)
    sp.blocks(base, 8, 0, zone="Normal").blocks(base + 8, 4, 1, zone="Movable")
    sp.blocks(base + 12, 4, 1, state="offline", owner="acpi")
    model, s = gen_and_dump(tree, sp)
    assert model["block_size_bytes"] == bs
    assert model_node(model, 1)["zones"]["Movable"]["spanned"] == 4 * bs // 4096
    assert model_blocks(model)[base + 12]["start"] == (base + 12) * bs


def test_sparse_high_blocks(tree):
    """Boot memory at the bottom and DIMMs at 128 TiB (block index 2^20): sparse indexes, same answers."""
    sp = boot_node0(gentree.Spec(), 16)
    hi = 1 << 20
    sp.node(1).blocks(hi, 4, 1, zone="Movable", owner="acpi").blocks(hi + 4, 4, 1, state="offline", owner="acpi")
    model, s = gen_and_dump(tree, sp)
    assert model_blocks(model)[hi]["start"] == hi * BS
    assert model_node(model, 1)["blocks"] == 8
