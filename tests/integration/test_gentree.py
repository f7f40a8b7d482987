# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_gentree.py — the fake-host generator itself: lsmem must read its trees as a real host, scan()
must read back what was generated, the formats must be the kernel's, and mutations must stay consistent.
These do not need the daemon."""

import json
import os
import re
import stat
import subprocess
import time

from common import gentree, SOURCE_DIR

BS = 128 << 20


def rich_spec():
    sp = gentree.Spec(possible_nodes=[0, 1, 2, 3, 4, 5], possible_cpus=8)
    sp.node(0, cpus=[0, 1], hugepages={2048: 8}).node(1, cpus=[2, 3], offline_cpus=[3])
    sp.node(2, device_pages=8192).node(3).node(4, online=False)
    sp.blocks(0, 1, 0, zone="none").blocks(1, 7, 0, zone="DMA32").blocks(8, 1, [0, 1])
    sp.blocks(9, 7, 1, zone="DMA32").blocks(16, 4, 1, state="offline", valid_zones="Movable Normal")
    sp.blocks(32, 8, 0, zone="Normal").blocks(40, 8, 0, zone="Movable")
    sp.blocks(48, 4, 3, state="offline", owner="acpi", container="ACPI0004:00")
    sp.blocks(52, 4, 3, zone="Movable", owner="acpi", container="ACPI0004:00")
    sp.blocks(56, 2, 3, state="going-offline", zone="Movable", owner="acpi")
    sp.blocks(64, 4, 1, zone="Movable", owner="virtio_mem", device="virtio2")
    sp.blocks(68, 2, 1, state="offline", owner="virtio_mem", device="virtio2")
    sp.blocks(72, 4, 0, zone="Movable", owner="dax_kmem", device="dax0.0")
    return sp


def spec_blocks(spec):
    """index -> normalised run attributes from a normalised spec."""
    out = {}
    for b in spec["blocks"]:
        for i in range(b["start"], b["start"] + b["count"]):
            out[i] = b
    return out


def lsmem(root, *args):
    p = subprocess.run(["lsmem", "--sysroot", root, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    assert p.returncode == 0, "lsmem %s failed: %s" % (" ".join(args), p.stderr.decode())
    return p.stdout.decode()


def check_lsmem(root, spec):
    blocks = spec_blocks(spec)
    bs = spec["block_size"]
    js = json.loads(lsmem(root, "-J", "-a", "-o", "RANGE,STATE,NODE,ZONES"))["memory"]
    assert len(js) == len(blocks), "lsmem lists %d blocks, generated %d" % (len(js), len(blocks))
    names = {"online": "online", "offline": "offline", "going-offline": "on->off"}
    for e in js:
        a, z = (int(x, 16) for x in e["range"].split("-"))
        i = a // bs
        assert a % bs == 0 and z == a + bs - 1 and i in blocks, e
        b = blocks[i]
        assert e["state"] == names[b["state"]], (i, e, b)
        assert e["node"] in b["nodes"], (i, e, b)
        want = "None" if b["valid_zones"] == "none" else "/".join(b["valid_zones"].split())
        assert e["zones"] == want, (i, e, b)
    # the merged table and the byte totals
    txt = lsmem(root, "-b", "-o", "RANGE,STATE,NODE,ZONES")
    on = sum(b["state"] == "online" for b in blocks.values()) * bs
    off = sum(b["state"] != "online" for b in blocks.values()) * bs
    assert re.search(r"Memory block size:\s+%d\b" % bs, txt), txt
    assert re.search(r"Total online memory:\s+%d\b" % on, txt), txt
    assert re.search(r"Total offline memory:\s+%d\b" % off, txt), txt


def expected_zone_pages(s):
    """(nid, zone) -> present pages, and (nid, zone) -> (first pfn, last pfn + 1), from scan()'s blocks."""
    pages, spans = {}, {}
    for i, b in s["blocks"].items():
        if b["state"] == "offline" or not b["nodes"]:
            continue
        for n, z, p, pfn in gentree.block_parts(i, s["block_size"], b["nodes"], b["zone"]):
            pages[(n, z)] = pages.get((n, z), 0) + p
            lo, hi = spans.get((n, z), (pfn, pfn + p))
            spans[(n, z)] = (min(lo, pfn), max(hi, pfn + p))
    return pages, spans


def check_zoneinfo_consistent(root):
    s = gentree.scan(root)
    pages, spans = expected_zone_pages(s)
    for nid, n in s["nodes"].items():
        if not n["online"]:
            assert not n["zones"], "offline node %d in zoneinfo" % nid
            continue
        assert list(n["zones"]) == list(gentree.ZONE_ORDER), (nid, list(n["zones"]))
        for z, v in n["zones"].items():
            if z == "Device":
                assert v["present"] == 0 and v["managed"] == 0
                continue
            want = pages.get((nid, z), 0)
            lo, hi = spans.get((nid, z), (0, 0))
            # spanned counts from the zone's first to its last pfn, holes included, as the kernel does.
            assert v["present"] == want and v["spanned"] == hi - lo, (nid, z, v, want, hi - lo)
            assert v["managed"] == gentree.managed_of(z, want)
    has_mem = sorted({n for (n, z), p in pages.items() if p and s["nodes"][n]["online"]})
    assert s["masks"]["has_memory"] == has_mem, (s["masks"], has_mem)
    assert s["masks"]["online"] == sorted(n for n, v in s["nodes"].items() if v["online"])
    return s


# --------------------------------------------------------------------------------------------

def test_gentree_lsmem_agrees(tree):
    """lsmem --sysroot parses the tree, per block (-J -a) and merged, and agrees with the spec."""
    spec = gentree.generate(tree.root, rich_spec())
    check_lsmem(tree.root, spec)


def test_gentree_scan_round_trip(tree):
    """scan() reads back exactly what the spec asked for."""
    spec = gentree.generate(tree.root, rich_spec())
    s = check_zoneinfo_consistent(tree.root)
    blocks = spec_blocks(spec)
    assert sorted(s["blocks"]) == sorted(blocks)
    for i, b in blocks.items():
        g = s["blocks"][i]
        assert g["state"] == b["state"] and g["nodes"] == sorted(b["nodes"]), (i, g, b)
        assert g["valid_zones"] == b["valid_zones"].split(), (i, g, b)
        assert g["owner"] == b["owner"], (i, g, b)
        if b["owner"] == "acpi":
            assert g["device"] == b["device"]
    assert s["nodes"][1]["present_cpus"] == [2, 3] and s["nodes"][1]["online_cpus"] == [2]
    assert s["nodes"][4]["online"] is False and s["nodes"][4]["possible"] is True
    assert s["nodes"][5]["online"] is False and s["nodes"][5]["possible"] is True
    assert s["nodes"][2]["zones"]["Device"]["spanned"] == 8192
    assert s["nodes"][0]["hugepages"][2048] == {"nr": 8, "free": 8, "surplus": 0}
    assert s["cpus"] == {"possible": list(range(8)), "present": [0, 1, 2, 3], "online": [0, 1, 2]}
    assert set(s["acpi"]) == {"PNP0C80:00", "PNP0C80:01", "PNP0C80:02"}
    assert s["acpi"]["PNP0C80:00"] == {"blocks": [48, 49, 50, 51], "container": "ACPI0004:00", "status": 15}
    assert [gentree.offline_blockers(s, n) for n in (0, 1, 2, 3)] == [
        ["spans-pages", "has-blocks", "has-cpus"], ["spans-pages", "has-blocks", "has-cpus"],
        ["spans-pages", "zone-device"], ["spans-pages", "has-blocks"]]


ZONE_HEADER = re.compile(r"^Node (\d+), zone (.{8})$")


def test_gentree_zoneinfo_format(tree):
    """proc/zoneinfo is in the kernel's format (vmstat.c zoneinfo_show_print)."""
    gentree.generate(tree.root, rich_spec())
    text = open(os.path.join(tree.root, "proc/zoneinfo")).read()
    zones = []
    cur = None
    for line in text.splitlines():
        m = ZONE_HEADER.match(line)
        if m:
            cur = {"node": int(m.group(1)), "zone": m.group(2).strip(), "lines": []}
            assert m.group(2) == "%8s" % cur["zone"], line
            zones.append(cur)
            continue
        assert cur is not None and line.startswith("  "), line
        cur["lines"].append(line)
    by_node = {}
    for z in zones:
        by_node.setdefault(z["node"], []).append(z["zone"])
        body = z["lines"]
        keys = [ln.split()[0] for ln in body]
        i = keys.index("pages")
        assert body[i].startswith("  pages free     "), body[i]
        for k in ("boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma"):
            assert any(re.fullmatch(r"        %-8s \d+" % k, ln) for ln in body), (k, z)
        prot = [ln for ln in body if "protection:" in ln]
        assert prot == ["        protection: (0, 0, 0, 0, 0)"], prot
        present = int(next(ln.split()[1] for ln in body if ln.split()[0] == "present"))
        if present:
            assert re.fullmatch(r"  start_pfn:           \d+", body[-1]), body[-1]
            assert "  pagesets" in body
        else:
            assert body[-1] == prot[0], (z["node"], z["zone"], body[-1])
    assert by_node == {n: list(gentree.ZONE_ORDER) for n in (0, 1, 2, 3)}, by_node
    assert text.endswith("\n")


IOMEM_LINE = re.compile(r"^((?:  )*)([0-9a-f]{8,})-([0-9a-f]{8,}) : (.+)$")


def test_gentree_iomem_format(tree):
    """proc/iomem: %08llx-%08llx : name, 2 spaces per level, children inside parents, siblings sorted."""
    spec = gentree.generate(tree.root, rich_spec())
    text = open(os.path.join(tree.root, "proc/iomem")).read()
    stack = []
    prev_end = {}
    for line in text.splitlines():
        m = IOMEM_LINE.match(line)
        assert m, line
        depth = len(m.group(1)) // 2
        a, b, name = int(m.group(2), 16), int(m.group(3), 16), m.group(4)
        assert a <= b
        stack = stack[:depth]
        assert len(stack) == depth, "orphan line %r" % line
        if stack:
            pa, pb, pname = stack[-1]
            assert pa <= a and b <= pb, (line, stack[-1])
            if name == "System RAM (kmem)":
                assert pname.startswith("dax"), line
            if name == "System RAM (virtio_mem)":
                assert pname.startswith("virtio"), line
        assert prev_end.get(depth, -1) < a, "overlap/unsorted at %r" % line
        prev_end[depth] = b
        for d in list(prev_end):
            if d > depth:
                del prev_end[d]
        stack.append((a, b, name))
    ram = gentree.iomem_ram_ranges(gentree.parse_iomem(text))
    covered = {}
    for a, b, owner, parent in ram:
        for i in range(a // BS, (b + 1) // BS):
            covered[i] = owner
    assert covered == {i: b["owner"] if b["owner"] != "acpi" else "boot" for i, b in spec_blocks(spec).items()}
    # one "System RAM" per ACPI DIMM, even when two DIMMs are adjacent (48..51, 52..55)
    assert re.search(r"^180000000-19fffffff : System RAM$", text, re.M), text
    assert re.search(r"^1a0000000-1bfffffff : System RAM$", text, re.M), text


def test_gentree_sysfs_layout(tree):
    """Files, modes and links as in sysfs; every symlink resolves inside the tree."""
    gentree.generate(tree.root, rich_spec())
    r = tree.root
    mem = os.path.join(r, gentree.MEM)
    assert open(mem + "/block_size_bytes").read() == "8000000\n"
    assert open(mem + "/auto_online_blocks").read() == "offline\n"
    m9 = mem + "/memory9"
    want = {"state": ("online\n", 0o644), "valid_zones": ("DMA32\n", 0o444), "phys_index": ("00000009\n", 0o444),
            "online": ("1\n", 0o644), "removable": ("1\n", 0o444), "phys_device": ("0\n", 0o444),
            "uevent": ("", 0o644)}
    for f, (content, mode) in want.items():
        assert open(os.path.join(m9, f)).read() == content, f
        assert stat.S_IMODE(os.lstat(os.path.join(m9, f)).st_mode) == mode, f
    assert open(mem + "/memory16/valid_zones").read() == "Movable Normal\n"
    assert open(mem + "/memory16/online").read() == "0\n"
    assert open(mem + "/memory0/valid_zones").read() == "none\n"
    assert open(mem + "/memory56/state").read() == "going-offline\n"
    assert open(mem + "/memory56/online").read() == "1\n"
    assert sorted(e for e in os.listdir(mem + "/memory8") if e.startswith("node")) == ["node0", "node1"]
    assert os.readlink(mem + "/memory48/firmware_node") == "../../../LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/PNP0C80:00"
    acpi = os.path.join(r, gentree.ACPI_BASE)
    assert os.readlink(acpi + "/PNP0C80:02/physical_node1") == "../../../system/memory/memory57"
    assert os.readlink(acpi + "/ACPI0004:00/PNP0C80:00/physical_node") == "../../../../system/memory/memory48"
    assert open(acpi + "/PNP0C80:02/hid").read() == "PNP0C80\n"
    assert open(acpi + "/PNP0C80:02/status").read() == "15\n"
    assert stat.S_IMODE(os.lstat(acpi + "/PNP0C80:02/eject").st_mode) == 0o200
    node = os.path.join(r, gentree.NODE)
    for f, v in (("possible", "0-5\n"), ("online", "0-3\n"), ("has_memory", "0-1,3\n"),
                 ("has_normal_memory", "0-1\n"), ("has_cpu", "0-1\n"), ("has_generic_initiator", "\n")):
        assert open(os.path.join(node, f)).read() == v, f
    assert not os.path.exists(node + "/node4")
    assert open(node + "/node1/cpulist").read() == "2\n"
    assert open(node + "/node1/cpumap").read() == "04\n"
    assert sorted(e for e in os.listdir(node + "/node1") if e.startswith("cpu") and e[3:].isdigit()) == ["cpu2", "cpu3"]
    assert open(node + "/node0/distance").read() == "10 20 20 20\n"
    assert re.match(r"Node 0 MemTotal:\s+\d+ kB\n", open(node + "/node0/meminfo").read())
    assert open(node + "/node0/hugepages/hugepages-2048kB/nr_hugepages").read() == "8\n"
    assert open(node + "/node0/hugepages/hugepages-1048576kB/free_hugepages").read() == "0\n"
    cpu = os.path.join(r, gentree.CPU)
    assert (open(cpu + "/possible").read(), open(cpu + "/present").read(), open(cpu + "/online").read()) == \
        ("0-7\n", "0-3\n", "0-2\n")
    assert not os.path.exists(cpu + "/cpu0/online") and open(cpu + "/cpu3/online").read() == "0\n"
    assert os.readlink(cpu + "/cpu3/node1") == "../../node/node1"
    assert open(os.path.join(r, "proc/cmdline")).read() == gentree.DEFAULT_CMDLINE + "\n"
    dangling = []
    for base, dirs, files in os.walk(r):
        for name in dirs + files:
            p = os.path.join(base, name)
            if os.path.islink(p):
                t = os.path.realpath(p)
                if not os.path.exists(t) or not t.startswith(os.path.realpath(r) + "/"):
                    dangling.append((p, os.readlink(p)))
    assert not dangling, dangling[:10]


def test_gentree_mutations(tree):
    """The mutation API keeps zoneinfo, masks, ACPI links and iomem consistent; lsmem still agrees."""
    spec = gentree.generate(tree.root, rich_spec())
    r = tree.root
    gentree.add_node(r, 5, cpus=[6], hugepages={2048: 4})
    s = check_zoneinfo_consistent(r)
    assert s["nodes"][5]["online"] and s["nodes"][5]["present_cpus"] == [6] and 5 in s["masks"]["has_cpu"]
    gentree.add_block(r, 80, 5, owner=("acpi", "PNP0C80:09"))
    gentree.add_block(r, 81, 5, owner=("acpi", "PNP0C80:09"))
    gentree.add_block(r, 82, 5, state="online", zone="Movable", owner="virtio_mem")
    gentree.add_block(r, 83, 5, owner=("dax_kmem", "dax5.0"))
    s = check_zoneinfo_consistent(r)
    assert s["acpi"]["PNP0C80:09"]["blocks"] == [80, 81]
    assert [s["blocks"][i]["owner"] for i in (80, 81, 82, 83)] == ["acpi", "acpi", "virtio-mem", "dax-kmem"]
    assert 5 in s["masks"]["has_memory"]
    gentree.set_block_state(r, 80, "online", zone="Movable")
    gentree.set_block_state(r, 82, "offline")
    assert open(os.path.join(r, gentree.MEM, "memory82/valid_zones")).read() == "Movable Normal\n"
    s = check_zoneinfo_consistent(r)
    assert s["blocks"][80]["zone"] == "Movable" and s["blocks"][82]["state"] == "offline"
    gentree.remove_block(r, 81)
    s = check_zoneinfo_consistent(r)
    assert 81 not in s["blocks"] and s["acpi"]["PNP0C80:09"]["blocks"] == [80]
    assert 81 * BS not in [a for a, b, o, p in gentree.iomem_ram_ranges(gentree.parse_iomem(
        open(os.path.join(r, "proc/iomem")).read()))]
    try:
        gentree.remove_node(r, 5)
        raise AssertionError("remove_node must refuse a node with blocks")
    except RuntimeError:
        pass
    for i in (80, 82, 83):
        gentree.remove_block(r, i)
    gentree.remove_cpu(r, 6)
    gentree.remove_node(r, 5)
    s = check_zoneinfo_consistent(r)
    assert not s["nodes"].get(5, {}).get("online")
    gentree.set_cpu_online(r, 3, True)
    assert gentree.scan(r)["nodes"][1]["online_cpus"] == [2, 3]
    gentree.add_block(r, 90, 3, link=False)
    assert gentree.scan(r)["blocks"][90]["nodes"] == []
    gentree.link_block(r, 90, 3)
    assert gentree.scan(r)["blocks"][90]["nodes"] == [3]
    gentree.remove_block(r, 90)
    check_lsmem(r, spec)   # back to the generated blocks (80..83, 90 were added and removed)


def test_gentree_cli(tree):
    """The CLI writes a tree from a JSON spec and prints scan() with --scan."""
    spec_path = os.path.join(tree.dir, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(rich_spec().to_dict(), f)
    p = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tests/gen-tree.py"), tree.root,
                        "--spec", spec_path, "--scan"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert len(out["blocks"]) == 56 and out["block_size"] == BS
    p = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tests/gen-tree.py"), "/", "--blocks", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode != 0 and b"refusing" in p.stderr


def test_gentree_65536_blocks(tree):
    """The benchmark's size: 65,536 blocks in 8 nodes are written quickly and lsmem agrees."""
    t = time.monotonic()
    spec = gentree.generate(tree.root, gentree.simple_spec(65536, 8))
    took = time.monotonic() - t
    assert took < 60, "generating 65,536 blocks took %.1f s (expected well under 60 s)" % took
    check_lsmem(tree.root, spec)
