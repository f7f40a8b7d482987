#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gen-tree.py — writes a fake host root (sysfs + procfs files) that hotplugd --root and lsmem --sysroot read.

One file, two uses:

* CLI:  /usr/bin/python3 tests/gen-tree.py ROOT [--spec spec.json | --blocks N --nodes M ...] [--scan]
  (run with --help for the options; ROOT must not exist or be empty, or pass --force).
* Module: `tests/gentree.py` is a small shim, so with tests/ on sys.path `import gentree` works;
  or load this file directly:
      spec = importlib.util.spec_from_file_location("gentree", ".../tests/gen-tree.py")
      gentree = importlib.util.module_from_spec(spec); sys.modules["gentree"] = gentree
      spec.loader.exec_module(gentree)

Nothing here ever touches the host's /sys or /proc: every path is ROOT + "/sys/..." and the
functions refuse ROOT == "/" (see _check_root).

What a tree contains (mimicking Linux 6.x, see /work/shared/reference/kernel-abi.md §1–3, §6)
------------------------------------------------------------------------------------------------
sys/devices/system/memory/  block_size_bytes (hex, no 0x), auto_online_blocks, memoryN/{state,
    valid_zones, phys_index (%08x), online, removable, phys_device, uevent, subsystem ->
    ../../../../bus/memory, nodeX -> ../../node/nodeX (one per node; multi-node boot blocks get
    two), firmware_node -> ../../../LNXSYSTM:00/LNXSYBUS:00/[CONTAINER/]PNP0C80:xx (ACPI blocks)}
sys/devices/system/node/    possible, online, has_memory, has_normal_memory, has_cpu,
    has_generic_initiator (nodemask lists "0-1,4"); nodeN/ only for ONLINE nodes: cpulist (online
    cpus), cpumap, cpuM -> ../../cpu/cpuM (PRESENT cpus), memoryM -> ../../memory/memoryM,
    distance, meminfo, uevent, hugepages/hugepages-{2048,1048576}kB/{nr,free,surplus}_hugepages
sys/devices/system/cpu/     possible, present, online; cpuM/ for present cpus with online
    (not for cpu0 unless cpu0_hotpluggable) and nodeN -> ../../node/nodeN
sys/devices/system/container/<ACPI0004:xx>/online   (when ACPI devices sit under a container)
sys/devices/LNXSYSTM:00/LNXSYBUS:00/[CONTAINER/]PNP0C80:xx/  hid, status (15), eject (0200,
    empty), uevent, physical_node, physical_node1, ... -> ../../../system/memory/memoryN
sys/bus/{memory,node,cpu}/devices/* and sys/bus/acpi/devices/* symlinks
proc/zoneinfo  every ONLINE node, zones DMA DMA32 Normal Movable Device in kernel format;
    present = online pages of that node/zone (block_size/4096 per online block; going-offline
    blocks still count), spanned = last - first pfn of them (holes included, as the kernel counts), managed = present - present/64 for kernel zones and =
    present for Movable; Device: spanned = the node's ZONE_DEVICE pages, present = managed = 0.
    Blocks whose valid_zones is "none" (multi-zone or multi-node boot blocks) split their pages
    evenly between their nodes and, by physical address, between DMA (<16M), DMA32 (<4G), Normal.
    `protection:` has 5 entries (MAX_NR_ZONES with ZONE_DEVICE), as on this 6.18 host.
proc/iomem     "System RAM" runs for boot blocks (kernel code/data nested in the first one),
    one "System RAM" per ACPI DIMM, virtio-mem as "virtioN" > "System RAM (virtio_mem)" (one per
    block, as in SBM mode), dax as "Soft Reserved" > "daxX.Y" > "System RAM (kmem)".
proc/cmdline   "BOOT_IMAGE=/vmlinuz root=/dev/vda ro" [+ " memhp_default_state=X"]
etc/udev/rules.d/80-hotplug-memory.rules   optional, the onlining rule is on line 2 (UDEV_RULE_LINE)

Spec (a dict, or JSON for --spec); all keys optional except nodes/blocks content
------------------------------------------------------------------------------------------------
{ "block_size": 134217728 | "128M", "auto_online_blocks": "offline",
  "cmdline": "BOOT_IMAGE=...", "memhp_default_state": null | "online" | ...,
  "udev_rule": false | true, "possible_nodes": [0,1,2,3] (default: the listed node ids),
  "possible_cpus": 16 (default: highest present cpu + 1), "cpu0_hotpluggable": false,
  "nodes": [ {"id": 0, "online": true, "cpus": [0,1] (present), "offline_cpus": [1] (subset),
              "hugepages": {"2048": 16 | {"nr":16,"free":8,"surplus":0}, "1048576": 0},
              "device_pages": 0 (ZONE_DEVICE spanned pages)} ],
  "blocks": [ {"start": 0, "count": 8, "node": 0 | "nodes": [0, 1],
               "state": "online" | "offline" | "going-offline",
               "zone": "Normal" | "Movable" | "DMA32" | "DMA" | "none"  (online blocks),
               "valid_zones": "Normal Movable" (offline blocks; default "Normal Movable"),
               "owner": null | "acpi" | "virtio-mem" | "dax-kmem" (underscores accepted),
               "device": "PNP0C80:02" (acpi; default: one new device per run) | "virtio3" | "dax1.0",
               "container": null | "ACPI0004:00" | "PNP0A06:00" (acpi only)} ] }
A block with 2+ nodes or zone "none" gets valid_zones "none" and must be online.
Nodes with "online": false are only in `possible`: no nodeN dir, not in zoneinfo.

Python API
------------------------------------------------------------------------------------------------
generate(root, spec, jobs=None, force=False) -> dict   write a tree (force: wipe a non-empty root);
                                             returns the normalised spec
simple_spec(n_blocks, n_nodes=8, ...)        the benchmark's layout (see its docstring)
Spec()                                       chainable builder: .node(...), .blocks(...), .to_dict()
scan(root) -> dict                           read a tree back (works after any mutation):
    {"block_size", "auto_online_blocks", "cmdline", "udev_rules": [relpath...],
     "blocks": {index: {"state", "zone" (None if offline), "valid_zones": [..], "nodes": [..],
                        "owner": "boot"|"acpi"|"virtio-mem"|"dax-kmem", "device": str|None}},
     "nodes": {id: {"possible", "online", "present_cpus", "online_cpus", "blocks": [..],
                    "zones": {name: {"spanned","present","managed"}}, "hugepages":
                    {size_kb: {"nr","free","surplus"}}}},
     "masks": {"possible"|"online"|"has_memory"|"has_normal_memory"|"has_cpu": [..]},
     "cpus": {"possible"|"present"|"online": [..]},
     "acpi": {name: {"blocks": [..], "container": str|None, "status": int}}}
offline_blockers(scan_result, nid) -> list   the kernel rule, as the daemon must apply it
Mutations (on the tree on disk; each keeps zoneinfo, node masks and meminfo consistent unless
update=False, then call write_zoneinfo(root) once at the end):
add_block(root, index, node, state='offline', valid_zones='Normal Movable', owner=None,
          zone=None, link=True, update=True)
    owner: None | ('acpi', 'PNP0C80:03'[, 'ACPI0004:00']) | 'virtio_mem' | ('virtio_mem','virtio1')
           | 'dax_kmem' | ('dax_kmem', 'dax1.0');  link=False leaves out nodeX links (the window
           between the memory "add" uevent and register_memory_blocks_under_node_hotplug)
link_block(root, index, node, update=True)
remove_block(root, index, update=True)       (also drops iomem entry and ACPI physical_node link)
set_block_state(root, index, state, zone=None, valid_zones=None, update=True)
    online needs zone (default: first of valid_zones); offline writes valid_zones (default
    "<old zone> <other of Normal/Movable>")
add_node(root, id, cpus=(), offline_cpus=(), hugepages=None, device_pages=0)
remove_node(root, id, force=False)           (refuses while blocks/cpus link to it unless force)
add_cpu(root, cpu, node, online=True) / remove_cpu(root, cpu) / set_cpu_online(root, cpu, online)
set_auto_online(root, value) / set_cmdline(root, text) / set_udev_rule(root, present)
set_hugepages(root, node, size_kb, nr, free=None, surplus=0)
write_zoneinfo(root, device_pages=None)      regenerate proc/zoneinfo, node masks and meminfo from
                                             the blocks on disk (Device spans are kept unless
                                             device_pages={nid: pages} overrides them)
Speed: ~70-110 us per block on tmpfs (about 12 inodes per block), one writer on a loaded 2-cpu VM:
65,536 blocks 4-8 s, 262,144 blocks 30-40 s.
A 262,144-block tree needs ~3.2 M inodes: more than a default /dev/shm on a 24 GiB machine has;
mount a tmpfs with nr_inodes=0 for it (bench/cold-scan.py does). jobs=N forks N writers (default:
half the cpus, at most 4, for trees of 16,384 blocks or more).
"""

import argparse
import json
import os
import re
import shutil
import sys

PAGE_SIZE = 4096
ZONE_ORDER = ("DMA", "DMA32", "Normal", "Movable", "Device")
KERNEL_ZONES = ("DMA", "DMA32", "Normal")
DMA_END = 16 << 20
DMA32_END = 4 << 30
HUGEPAGE_SIZES_KB = (2048, 1048576)
DEFAULT_CMDLINE = "BOOT_IMAGE=/vmlinuz root=/dev/vda ro"
DEFAULT_BLOCK_SIZE = 128 << 20
UDEV_RULE_PATH = "etc/udev/rules.d/80-hotplug-memory.rules"
UDEV_RULE_LINE = 2
UDEV_RULE_TEXT = ("# Online hot-added memory as movable (distro-style rule)\n"
                  'SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable"\n')
ACPI_BASE = "sys/devices/LNXSYSTM:00/LNXSYBUS:00"
MEM = "sys/devices/system/memory"
NODE = "sys/devices/system/node"
CPU = "sys/devices/system/cpu"
OWNERS = ("boot", "acpi", "virtio-mem", "dax-kmem")
ONLINE_STATES = ("online", "going-offline")
STATES = ("online", "offline", "going-offline")

_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_DFLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


# --------------------------------------------------------------------------------------------
# small helpers

def _check_root(root):
    root = os.path.abspath(root)
    if root == "/" or os.path.realpath(root) == "/":
        raise ValueError("refusing to use / as a fake root: this would write the host's /sys")
    return root


def _emit(dfd, name, data, mode=0o644):
    fd = os.open(name, _WFLAGS, mode, dir_fd=dfd)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, _WFLAGS, mode)
    try:
        if text:
            os.write(fd, text.encode() if isinstance(text, str) else text)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _read(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        if default is not None:
            return default
        raise


def _symlink(target, path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.symlink(target, path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def parse_size(v):
    """128M, 0x8000000, 134217728 -> int bytes."""
    if isinstance(v, int):
        return v
    s = str(v).strip()
    m = re.fullmatch(r"(\d+)([KMGT])i?B?", s, re.I)
    if m:
        return int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper()))
    return int(s, 0)


def mask_list(ids):
    """[0,1,4] -> '0-1,4' (the kernel's %*pbl)."""
    ids = sorted(set(ids))
    out = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else "%d-%d" % (ids[i], ids[j]))
        i = j + 1
    return ",".join(out)


def parse_list(s):
    """'0-1,4' -> [0,1,4]."""
    out = []
    for part in s.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def mask_map(ids, nbits):
    """The kernel's %*pb: 32-bit hex groups, most significant first, comma separated."""
    v = 0
    for i in ids:
        v |= 1 << i
    nbits = max(nbits, 1)
    groups = []
    for g in range((nbits + 31) // 32):
        groups.append((v >> (32 * g)) & 0xffffffff)
    groups.reverse()
    first_bits = nbits % 32 or 32
    parts = ["%0*x" % ((first_bits + 3) // 4, groups[0])]
    parts += ["%08x" % g for g in groups[1:]]
    return ",".join(parts)


def _norm_owner(o):
    if o is None:
        return "boot"
    o = str(o).replace("_", "-").lower()
    if o not in OWNERS:
        raise ValueError("unknown owner %r" % o)
    return o


def _phys_zone_split(start, size):
    """[(zone, bytes)] of a physical range split at the x86_64 DMA/DMA32 boundaries."""
    out = []
    end = start + size
    for zone, lo, hi in (("DMA", 0, DMA_END), ("DMA32", DMA_END, DMA32_END), ("Normal", DMA32_END, 1 << 64)):
        a, b = max(start, lo), min(end, hi)
        if b > a:
            out.append((zone, b - a))
    return out


def block_parts(index, block_size, nodes, zone):
    """[(node, zone, pages, start_pfn)] that an online block contributes to zoneinfo."""
    pages = block_size // PAGE_SIZE
    nodes = list(nodes)
    if len(nodes) == 1 and zone not in (None, "none"):
        return [(nodes[0], zone, pages, index * pages)]
    out = []
    share = block_size // len(nodes)
    for k, n in enumerate(nodes):
        start = index * block_size + k * share
        for z, b in _phys_zone_split(start, share):
            out.append((n, z, b // PAGE_SIZE, start // PAGE_SIZE))
            start += b
    return out


def managed_of(zone, present):
    return present if zone == "Movable" else present - present // 64


# --------------------------------------------------------------------------------------------
# spec normalisation

class Spec:
    """Chainable builder for generate(): Spec(block_size="128M").node(0, cpus=[0,1]).blocks(0, 8, 0)."""

    def __init__(self, block_size=DEFAULT_BLOCK_SIZE, **kw):
        self.d = {"block_size": block_size, "nodes": [], "blocks": []}
        self.d.update(kw)

    def node(self, id, **kw):
        kw["id"] = id
        self.d["nodes"].append(kw)
        return self

    def blocks(self, start, count, node=None, **kw):
        kw.update(start=start, count=count)
        if isinstance(node, (list, tuple)):
            kw["nodes"] = list(node)
        elif node is not None:
            kw["node"] = node
        self.d["blocks"].append(kw)
        return self

    def set(self, **kw):
        self.d.update(kw)
        return self

    def to_dict(self):
        return self.d


class _Run:
    __slots__ = ("start", "count", "nodes", "state", "zone", "vz", "owner", "device", "container")


def _normalise(spec):
    if isinstance(spec, Spec):
        spec = spec.to_dict()
    spec = json.loads(json.dumps(spec))  # deep copy, JSON-able
    bs = parse_size(spec.get("block_size", DEFAULT_BLOCK_SIZE))
    if bs <= 0 or bs % PAGE_SIZE:
        raise ValueError("bad block size %d" % bs)
    spec["block_size"] = bs
    spec.setdefault("auto_online_blocks", "offline")
    spec.setdefault("cmdline", DEFAULT_CMDLINE)
    spec.setdefault("memhp_default_state", None)
    spec.setdefault("udev_rule", False)
    spec.setdefault("cpu0_hotpluggable", False)
    nodes = {}
    for n in spec.get("nodes", []):
        nid = int(n["id"])
        if nid in nodes:
            raise ValueError("node %d listed twice" % nid)
        n.setdefault("online", True)
        n["cpus"] = sorted(int(c) for c in n.get("cpus", []))
        n["offline_cpus"] = sorted(int(c) for c in n.get("offline_cpus", []))
        if not set(n["offline_cpus"]) <= set(n["cpus"]):
            raise ValueError("node %d: offline_cpus must be present cpus" % nid)
        if not n["online"] and n["cpus"]:
            raise ValueError("node %d: an offline node has no present cpus" % nid)
        hp = {}
        for k, v in (n.get("hugepages") or {}).items():
            if isinstance(v, int):
                v = {"nr": v, "free": v, "surplus": 0}
            hp[int(k)] = {"nr": int(v.get("nr", 0)), "free": int(v.get("free", v.get("nr", 0))),
                          "surplus": int(v.get("surplus", 0))}
        for size in HUGEPAGE_SIZES_KB:
            hp.setdefault(size, {"nr": 0, "free": 0, "surplus": 0})
        n["hugepages"] = {str(k): v for k, v in sorted(hp.items())}
        n.setdefault("device_pages", 0)
        nodes[nid] = n
    all_cpus = [c for n in nodes.values() for c in n["cpus"]]
    if len(all_cpus) != len(set(all_cpus)):
        raise ValueError("a cpu is listed in two nodes")
    spec["nodes"] = [nodes[k] for k in sorted(nodes)]
    spec.setdefault("possible_nodes", sorted(nodes))
    spec["possible_nodes"] = sorted(set(spec["possible_nodes"]) | set(nodes))
    spec.setdefault("possible_cpus", (max(all_cpus) + 1) if all_cpus else 1)
    if all_cpus and spec["possible_cpus"] <= max(all_cpus):
        raise ValueError("possible_cpus too small")

    runs = []
    auto_dev = {"acpi": 0}
    used_acpi = {b.get("device") for b in spec.get("blocks", []) if b.get("device")}
    seen = {}
    for b in spec.get("blocks", []):
        r = _Run()
        r.start = int(b["start"])
        r.count = int(b.get("count", 1))
        ns = b.get("nodes")
        if ns is None:
            ns = [b["node"]]
        r.nodes = tuple(int(x) for x in ns)
        for x in r.nodes:
            if x not in nodes or not nodes[x]["online"]:
                raise ValueError("block run at %d links to node %d which is not online" % (r.start, x))
        r.state = b.get("state", "online")
        if r.state not in STATES:
            raise ValueError("bad state %r" % r.state)
        r.owner = _norm_owner(b.get("owner"))
        if r.state == "offline":
            if len(r.nodes) > 1:
                raise ValueError("multi-node blocks are always online")
            r.zone = None
            r.vz = b.get("valid_zones", "Normal Movable")
        else:
            z = b.get("zone", "Normal")
            if len(r.nodes) > 1:
                z = "none"
            if z not in ("DMA", "DMA32", "Normal", "Movable", "none"):
                raise ValueError("bad zone %r" % z)
            r.zone = z
            r.vz = z
        r.container = b.get("container")
        r.device = b.get("device")
        if r.owner == "acpi" and not r.device:
            while "PNP0C80:%02x" % auto_dev["acpi"] in used_acpi:
                auto_dev["acpi"] += 1
            r.device = "PNP0C80:%02x" % auto_dev["acpi"]
            used_acpi.add(r.device)
        if r.owner == "virtio-mem" and not r.device:
            r.device = "virtio0"
        if r.owner == "dax-kmem" and not r.device:
            r.device = "dax0.0"
        if r.owner == "boot":
            r.device = None
        for i in range(r.start, r.start + r.count):
            if i in seen:
                raise ValueError("block %d listed twice" % i)
            seen[i] = True
        runs.append(r)
        b.update(start=r.start, count=r.count, nodes=list(r.nodes), state=r.state, zone=r.zone,
                 valid_zones=r.vz, owner=r.owner, device=r.device, container=r.container)
        b.pop("node", None)
    runs.sort(key=lambda r: r.start)
    spec["blocks"] = [b for b in sorted(spec.get("blocks", []), key=lambda b: b["start"])]
    return spec, nodes, runs


# --------------------------------------------------------------------------------------------
# writers

def _acpi_dir(name, container):
    return ACPI_BASE + ("/" + container if container else "") + "/" + name


def _write_blocks(root, runs, lo, hi):
    """Write the blocks with positional index lo..hi of the flattened runs (worker body)."""
    mem_fd = os.open(os.path.join(root, MEM), _DFLAGS)
    bus_fd = os.open(os.path.join(root, "sys/bus/memory/devices"), _DFLAGS)
    node_fds = {}
    try:
        pos = 0
        for r in runs:
            if pos + r.count <= lo:
                pos += r.count
                continue
            if pos >= hi:
                break
            a = max(lo - pos, 0)
            b = min(hi - pos, r.count)
            pos += r.count
            state_b = (r.state + "\n").encode()
            vz_b = (r.vz + "\n").encode()
            online_b = b"0\n" if r.state == "offline" else b"1\n"
            nlinks = [("node%d" % n, "../../node/node%d" % n) for n in r.nodes]
            nfds = []
            for n in r.nodes:
                if n not in node_fds:
                    node_fds[n] = os.open(os.path.join(root, NODE, "node%d" % n), _DFLAGS)
                nfds.append(node_fds[n])
            fw = None
            if r.owner == "acpi":
                fw = "../../../LNXSYSTM:00/LNXSYBUS:00/" + ((r.container + "/") if r.container else "") + r.device
            for i in range(r.start + a, r.start + b):
                name = "memory%d" % i
                os.mkdir(name, 0o755, dir_fd=mem_fd)
                d = os.open(name, _DFLAGS, dir_fd=mem_fd)
                try:
                    _emit(d, "uevent", None, 0o644)
                    _emit(d, "phys_index", b"%08x\n" % i, 0o444)
                    _emit(d, "phys_device", b"0\n", 0o444)
                    _emit(d, "removable", b"1\n", 0o444)
                    _emit(d, "online", online_b, 0o644)
                    _emit(d, "valid_zones", vz_b, 0o444)
                    _emit(d, "state", state_b, 0o644)
                    os.symlink("../../../../bus/memory", "subsystem", dir_fd=d)
                    if fw:
                        os.symlink(fw, "firmware_node", dir_fd=d)
                    for (ln, tgt), nfd in zip(nlinks, nfds):
                        os.symlink(tgt, ln, dir_fd=d)
                        os.symlink("../../memory/" + name, name, dir_fd=nfd)
                finally:
                    os.close(d)
                os.symlink("../../../devices/system/memory/" + name, name, dir_fd=bus_fd)
    finally:
        os.close(mem_fd)
        os.close(bus_fd)
        for fd in node_fds.values():
            os.close(fd)


def _write_acpi_device(root, name, container, hid="PNP0C80"):
    d = os.path.join(root, _acpi_dir(name, container))
    os.makedirs(d, exist_ok=True)
    _write(d + "/hid", hid + "\n", 0o444)
    _write(d + "/status", "15\n", 0o444)
    _write(d + "/uevent", "", 0o644)
    if hid == "PNP0C80":
        _write(d + "/eject", "", 0o200)
    os.makedirs(os.path.join(root, "sys/bus/acpi/devices"), exist_ok=True)
    _symlink("../../../devices/LNXSYSTM:00/LNXSYBUS:00/" + ((container + "/") if container else "") + name,
             os.path.join(root, "sys/bus/acpi/devices", name))
    return d


def _write_container(root, name):
    _write_acpi_device(root, name, None, hid=name.split(":")[0])
    c = os.path.join(root, "sys/devices/system/container", name)
    os.makedirs(c, exist_ok=True)
    _write(c + "/online", "1\n", 0o644)
    _write(c + "/uevent", "", 0o644)
    _symlink("../../../LNXSYSTM:00/LNXSYBUS:00/" + name, c + "/firmware_node")


def _add_physical_node_link(root, devdir, index):
    """Bind memoryN to the ACPI device: the next free physical_node[K] link (acpi_bind_one)."""
    # devdir = ROOT/sys/devices/LNXSYSTM:00/LNXSYBUS:00/[CONTAINER/]DEV: one "../" per component
    ups = os.path.relpath(devdir, os.path.join(root, "sys/devices")).count("/") + 1
    rel = "../" * ups + "system/memory/memory%d" % index
    k = 0
    while True:
        ln = os.path.join(devdir, "physical_node" if k == 0 else "physical_node%d" % k)
        if not os.path.lexists(ln):
            os.symlink(rel, ln)
            return
        k += 1


def _write_static(root, spec, nodes):
    """Everything but the blocks, the zoneinfo and derived masks."""
    bs = spec["block_size"]
    os.makedirs(os.path.join(root, MEM), exist_ok=True)
    os.makedirs(os.path.join(root, NODE), exist_ok=True)
    os.makedirs(os.path.join(root, CPU), exist_ok=True)
    for bus in ("memory", "node", "cpu"):
        os.makedirs(os.path.join(root, "sys/bus", bus, "devices"), exist_ok=True)
    os.makedirs(os.path.join(root, "proc"), exist_ok=True)
    _write(os.path.join(root, MEM, "block_size_bytes"), "%x\n" % bs, 0o444)
    _write(os.path.join(root, MEM, "auto_online_blocks"), spec["auto_online_blocks"] + "\n", 0o644)
    _write(os.path.join(root, MEM, "uevent"), "", 0o644)

    # cpus
    present, online = [], []
    cpu_node = {}
    for n in nodes.values():
        for c in n["cpus"]:
            present.append(c)
            cpu_node[c] = n["id"]
            if c not in n["offline_cpus"]:
                online.append(c)
    _write(os.path.join(root, CPU, "possible"), mask_list(range(spec["possible_cpus"])) + "\n", 0o444)
    _write(os.path.join(root, CPU, "present"), mask_list(present) + "\n", 0o444)
    _write(os.path.join(root, CPU, "online"), mask_list(online) + "\n", 0o444)
    for c in sorted(present):
        _write_cpu(root, c, cpu_node[c], c in online, spec["cpu0_hotpluggable"])

    # nodes
    _write(os.path.join(root, NODE, "possible"), mask_list(spec["possible_nodes"]) + "\n", 0o444)
    _write(os.path.join(root, NODE, "has_generic_initiator"), "\n", 0o444)
    _write(os.path.join(root, NODE, "uevent"), "", 0o644)
    for n in nodes.values():
        if n["online"]:
            _write_node_dir(root, n["id"], n["hugepages"])
            for c in n["cpus"]:
                _symlink("../../cpu/cpu%d" % c, os.path.join(root, NODE, "node%d" % n["id"], "cpu%d" % c))

    # proc, etc
    cmd = spec["cmdline"]
    if spec.get("memhp_default_state"):
        cmd += " memhp_default_state=" + spec["memhp_default_state"]
    _write(os.path.join(root, "proc/cmdline"), cmd + "\n", 0o444)
    if spec.get("udev_rule"):
        _write(os.path.join(root, UDEV_RULE_PATH), UDEV_RULE_TEXT, 0o644)


def _write_cpu(root, c, nid, online, cpu0_hotpluggable=False):
    d = os.path.join(root, CPU, "cpu%d" % c)
    os.makedirs(d, exist_ok=True)
    if c != 0 or cpu0_hotpluggable:
        _write(d + "/online", "1\n" if online else "0\n", 0o644)
    _write(d + "/uevent", "", 0o644)
    for e in os.listdir(d):
        if re.fullmatch(r"node\d+", e):
            os.unlink(os.path.join(d, e))
    _symlink("../../node/node%d" % nid, d + "/node%d" % nid)
    _symlink("../../../../bus/cpu", d + "/subsystem")
    _symlink("../../../devices/system/cpu/cpu%d" % c, os.path.join(root, "sys/bus/cpu/devices/cpu%d" % c))


def _write_node_dir(root, nid, hugepages):
    d = os.path.join(root, NODE, "node%d" % nid)
    os.makedirs(d, exist_ok=True)
    _write(d + "/uevent", "", 0o644)
    _symlink("../../../../bus/node", d + "/subsystem")
    _symlink("../../../devices/system/node/node%d" % nid, os.path.join(root, "sys/bus/node/devices/node%d" % nid))
    for size, v in hugepages.items():
        h = os.path.join(d, "hugepages", "hugepages-%skB" % size)
        os.makedirs(h, exist_ok=True)
        _write(h + "/nr_hugepages", "%d\n" % v["nr"], 0o644)
        _write(h + "/free_hugepages", "%d\n" % v["free"], 0o444)
        _write(h + "/surplus_hugepages", "%d\n" % v["surplus"], 0o444)


class _Derived:
    """Per node/zone page counts and per node cpu info, from which zoneinfo & masks are written."""

    def __init__(self):
        self.pages = {}       # (nid, zone) -> present pages
        self.start = {}       # (nid, zone) -> first pfn
        self.end = {}         # (nid, zone) -> last pfn + 1: spanned = end - start, holes included
        self.device = {}      # nid -> ZONE_DEVICE spanned pages

    def add(self, nid, zone, pages, pfn):
        k = (nid, zone)
        self.pages[k] = self.pages.get(k, 0) + pages
        if k not in self.start or pfn < self.start[k]:
            self.start[k] = pfn
        if k not in self.end or pfn + pages > self.end[k]:
            self.end[k] = pfn + pages


def _derive_from_runs(runs, bs):
    d = _Derived()
    ppb = bs // PAGE_SIZE
    for r in runs:
        if r.state == "offline":
            continue
        if len(r.nodes) == 1 and r.zone != "none":
            d.add(r.nodes[0], r.zone, ppb * r.count, r.start * ppb)
        else:
            for i in range(r.start, r.start + r.count):
                for n, z, p, pfn in block_parts(i, bs, r.nodes, r.zone):
                    d.add(n, z, p, pfn)
    return d


def _render_zoneinfo(online_nodes, derived, online_cpus):
    out = []
    cpus = sorted(online_cpus) or [0]
    for nid in sorted(online_nodes):
        first_populated = True
        for z in ZONE_ORDER:
            if z == "Device":
                spanned, present = derived.device.get(nid, 0), 0
            else:
                present = derived.pages.get((nid, z), 0)
                # As the kernel counts it: from the zone's first to its last pfn, holes included.
                spanned = derived.end[(nid, z)] - derived.start[(nid, z)] if present else 0
            managed = 0 if z == "Device" else managed_of(z, present)
            wmark = managed // 256
            out.append("Node %d, zone %8s" % (nid, z))
            if present and first_populated:
                first_populated = False
                out.append("  per-node stats")
                for k in ("nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file",
                          "nr_unevictable", "nr_slab_reclaimable", "nr_slab_unreclaimable"):
                    out.append("      %-12s %d" % (k, 0))
            out.append("  pages free     %d" % (managed - managed // 16))
            out.append("        boost    0")
            out.append("        min      %d" % wmark)
            out.append("        low      %d" % (wmark + wmark // 4))
            out.append("        high     %d" % (wmark + wmark // 2))
            out.append("        promo    %d" % (wmark + 3 * wmark // 4))
            out.append("        spanned  %d" % spanned)
            out.append("        present  %d" % present)
            out.append("        managed  %d" % managed)
            out.append("        cma      0")
            out.append("        protection: (0, 0, 0, 0, 0)")
            if not present:
                continue
            out.append("      %-12s %d" % ("nr_free_pages", managed - managed // 16))
            for k in ("nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file",
                      "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending",
                      "nr_mlock", "nr_free_cma", "numa_hit", "numa_miss", "numa_foreign",
                      "numa_interleave", "numa_local", "numa_other"):
                out.append("      %-12s %d" % (k, 0))
            out.append("  pagesets")
            for c in cpus:
                out.append("    cpu: %d" % c)
                out.append("              count:    0")
                out.append("              high:     0")
                out.append("              batch:    1")
                out.append("              high_min: 0")
                out.append("              high_max: 0")
                out.append("  vm stats threshold: 4")
            out.append("  node_unreclaimable:  0")
            out.append("  start_pfn:           %d" % derived.start[(nid, z)])
    return "\n".join(out) + ("\n" if out else "")


def _write_derived(root, online_nodes, derived, node_cpus):
    """zoneinfo, node masks, meminfo. node_cpus: nid -> (present, online) cpu lists."""
    online_cpus = sorted(c for p, o in node_cpus.values() for c in o)
    _write(os.path.join(root, "proc/zoneinfo"), _render_zoneinfo(online_nodes, derived, online_cpus), 0o444)
    has_mem, has_normal, has_cpu = [], [], []
    for nid in online_nodes:
        present = {z: derived.pages.get((nid, z), 0) for z in ZONE_ORDER[:4]}
        if sum(present.values()):
            has_mem.append(nid)
        if any(present[z] for z in KERNEL_ZONES):
            has_normal.append(nid)
        p, o = node_cpus.get(nid, ([], []))
        if o:
            has_cpu.append(nid)
        d = os.path.join(root, NODE, "node%d" % nid)
        _write(d + "/cpulist", mask_list(o) + "\n", 0o444)
        ncpu = int(parse_list(_read(os.path.join(root, CPU, "possible"), "0"))[-1]) + 1
        _write(d + "/cpumap", mask_map(o, ncpu) + "\n", 0o444)
        _write(d + "/distance", " ".join("10" if x == nid else "20" for x in sorted(online_nodes)) + "\n", 0o444)
        managed = sum(managed_of(z, v) for z, v in present.items())
        hp = {}
        hd = os.path.join(d, "hugepages/hugepages-2048kB")
        for k in ("nr", "free", "surplus"):
            hp[k] = int(_read(os.path.join(hd, k + "_hugepages"), "0\n").strip() or 0)
        total_kb = managed * (PAGE_SIZE // 1024)
        free_kb = total_kb - total_kb // 16
        lines = [("MemTotal", total_kb), ("MemFree", free_kb), ("MemUsed", total_kb - free_kb)]
        lines += [(k, 0) for k in ("SwapCached", "Active", "Inactive", "Active(anon)", "Inactive(anon)",
                                   "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "Dirty",
                                   "Writeback", "FilePages", "Mapped", "AnonPages", "Shmem", "KernelStack",
                                   "PageTables", "Slab", "SReclaimable", "SUnreclaim")]
        text = "".join("Node %d %-16s%8d kB\n" % (nid, k + ":", v) for k, v in lines)
        text += "Node %d HugePages_Total: %5d\n" % (nid, hp["nr"])
        text += "Node %d HugePages_Free:  %5d\n" % (nid, hp["free"])
        text += "Node %d HugePages_Surp:  %5d\n" % (nid, hp["surplus"])
        _write(d + "/meminfo", text, 0o444)
    _write(os.path.join(root, NODE, "online"), mask_list(online_nodes) + "\n", 0o444)
    _write(os.path.join(root, NODE, "has_memory"), mask_list(has_mem) + "\n", 0o444)
    _write(os.path.join(root, NODE, "has_normal_memory"), mask_list(has_normal) + "\n", 0o444)
    _write(os.path.join(root, NODE, "has_cpu"), mask_list(has_cpu) + "\n", 0o444)


# --------------------------------------------------------------------------------------------
# /proc/iomem as a resource tree

class Res:
    __slots__ = ("start", "end", "name", "children")

    def __init__(self, start, end, name, children=None):
        self.start, self.end, self.name = start, end, name
        self.children = children or []

    def __repr__(self):
        return "Res(%x-%x %s %r)" % (self.start, self.end, self.name, self.children)


RAM_NAMES = {"System RAM": "boot", "System RAM (virtio_mem)": "virtio-mem", "System RAM (kmem)": "dax-kmem"}


def parse_iomem(text):
    """-> list of top-level Res (children nested by 2-space indentation)."""
    top = []
    stack = []  # (depth, Res)
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        rng, _, name = line.strip().partition(" : ")
        a, b = rng.split("-")
        r = Res(int(a, 16), int(b, 16), name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        (stack[-1][1].children if stack else top).append(r)
        stack.append((depth, r))
    return top


def render_iomem(top):
    out = []

    def walk(rs, depth):
        for r in sorted(rs, key=lambda r: r.start):
            out.append("%s%08x-%08x : %s" % ("  " * depth, r.start, r.end, r.name))
            walk(r.children, depth + 1)
    walk(top, 0)
    return "\n".join(out) + ("\n" if out else "")


def iomem_ram_ranges(top):
    """[(start, end, owner, parent_name)] for every System RAM* resource."""
    out = []

    def walk(rs, parent):
        for r in rs:
            if r.name in RAM_NAMES:
                out.append((r.start, r.end, RAM_NAMES[r.name], parent))
            walk(r.children, r.name)
    walk(top, None)
    return out


def _kernel_children(start, end):
    kids = []
    for a, b, name in ((0x01000000, 0x02209987, "Kernel code"), (0x02400000, 0x02e09fff, "Kernel rodata"),
                       (0x03000000, 0x0327c0ff, "Kernel data"), (0x03b34000, 0x03c57fff, "Kernel bss")):
        if start <= a and b <= end:
            kids.append(Res(a, b, name))
    return kids


def _build_iomem(items, bs):
    """items: sorted [(index, owner, device)] -> top-level resources."""
    top = []
    parents = {}  # device name -> Res (virtio parent / dax resource)
    soft = None
    last = None   # (res, index, owner, device) for merging
    for idx, owner, device in items:
        s, e = idx * bs, (idx + 1) * bs - 1
        if owner == "virtio-mem":
            p = parents.get(device)
            if p is None:
                p = parents[device] = Res(s, e, device)
                top.append(p)
            p.start, p.end = min(p.start, s), max(p.end, e)
            p.children.append(Res(s, e, "System RAM (virtio_mem)"))
            last = None
            continue
        if (last and last[1] + 1 == idx and last[2] == owner and last[3] == device):
            last[0].end = e
            if owner == "dax-kmem":
                p = parents[device]
                p.end = max(p.end, e)
                soft_of = parents["Soft Reserved:" + device]
                soft_of.end = max(soft_of.end, e)
            last = (last[0], idx, owner, device)
            continue
        if owner == "dax-kmem":
            p = parents.get(device)
            if p is None:
                soft = Res(s, e, "Soft Reserved")
                p = parents[device] = Res(s, e, device)
                parents["Soft Reserved:" + device] = soft
                soft.children.append(p)
                top.append(soft)
            p.start, p.end = min(p.start, s), max(p.end, e)
            r = Res(s, e, "System RAM (kmem)")
            p.children.append(r)
        else:
            r = Res(s, e, "System RAM")
            top.append(r)
        last = (r, idx, owner, device)
    # the kernel image lives in the first boot range
    for r in top:
        if r.name == "System RAM":
            r.children = _kernel_children(r.start, r.end)
            break
    return top


def _iomem_items_from_runs(runs):
    for r in runs:
        for i in range(r.start, r.start + r.count):
            yield (i, r.owner, r.device)


# --------------------------------------------------------------------------------------------
# generate

def generate(root, spec, jobs=None, force=False):
    """Write the tree described by spec (dict, Spec or JSON path) under root. Returns the normalised spec."""
    root = _check_root(root)
    if isinstance(spec, str):
        with open(spec) as f:
            spec = json.load(f)
    spec, nodes, runs = _normalise(spec)
    if os.path.exists(root) and os.listdir(root):
        if not force:
            raise FileExistsError("%s is not empty" % root)
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    bs = spec["block_size"]
    _write_static(root, spec, nodes)

    # ACPI devices first: the blocks link to them
    acpi_blocks = {}
    for r in runs:
        if r.owner == "acpi":
            acpi_blocks.setdefault((r.device, r.container), []).extend(range(r.start, r.start + r.count))
    for (dev, cont), idxs in acpi_blocks.items():
        if cont:
            if not os.path.isdir(os.path.join(root, ACPI_BASE, cont)):
                _write_container(root, cont)
        dd = _write_acpi_device(root, dev, cont)
        for k, i in enumerate(sorted(idxs)):
            rel = "../" * (3 + (1 if cont else 0)) + "system/memory/memory%d" % i
            os.symlink(rel, os.path.join(dd, "physical_node" if k == 0 else "physical_node%d" % k))

    total = sum(r.count for r in runs)
    if jobs is None:
        # Writers contend on the memory/ and nodeN/ directory locks: worth it only with spare cpus
        # (on a loaded 2-cpu machine two writers were as often slower as faster than one).
        jobs = max(1, min(4, (os.cpu_count() or 1) // 2)) if total >= 16384 else 1
    jobs = max(1, min(jobs, total or 1))
    if jobs == 1:
        _write_blocks(root, runs, 0, total)
    else:
        pids = []
        step = (total + jobs - 1) // jobs
        for j in range(jobs):
            lo, hi = j * step, min(total, (j + 1) * step)
            if lo >= hi:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _write_blocks(root, runs, lo, hi)
                except BaseException as e:  # noqa: BLE001 - report and exit the child
                    sys.stderr.write("gen-tree worker %d: %r\n" % (j, e))
                    code = 1
                finally:
                    os._exit(code)
            pids.append(pid)
        bad = 0
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                bad += 1
        if bad:
            raise RuntimeError("%d gen-tree worker(s) failed" % bad)

    online_nodes = [n["id"] for n in nodes.values() if n["online"]]
    derived = _derive_from_runs(runs, bs)
    for n in nodes.values():
        if n["online"] and n["device_pages"]:
            derived.device[n["id"]] = int(n["device_pages"])
    node_cpus = {n["id"]: (n["cpus"], [c for c in n["cpus"] if c not in n["offline_cpus"]]) for n in nodes.values()}
    _write_derived(root, online_nodes, derived, node_cpus)
    _write(os.path.join(root, "proc/iomem"), render_iomem(_build_iomem(list(_iomem_items_from_runs(runs)), bs)), 0o444)
    return spec


def _boot_zone(index, bs):
    """The zone of a boot block at index, by address (x86_64): "none" if it straddles 16M or 4G."""
    zs = _phys_zone_split(index * bs, bs)
    return zs[0][0] if len(zs) == 1 else "none"


def simple_spec(n_blocks, n_nodes=8, block_size=DEFAULT_BLOCK_SIZE, cpus_per_node=2,
                offline_fraction=0.25, movable_fraction=0.5, hole=True):
    """The benchmark's layout: n_blocks split evenly over n_nodes (contiguous per node, node 0 first).

    Per node: the first (1 - movable - offline) share online in a kernel zone, then online Movable, then
    offline ("Movable Normal"). Kernel-zone blocks get their zone from their address (DMA32 below 4G,
    "none" for block 0 which straddles DMA/DMA32), and the 3G..4G PCI hole holds no blocks (hole=True),
    like a real x86_64 host. Each node has cpus_per_node present, online cpus."""
    bs = parse_size(block_size)
    sp = Spec(block_size=bs)
    per = [n_blocks // n_nodes + (1 if k < n_blocks % n_nodes else 0) for k in range(n_nodes)]
    hole_lo, hole_hi = (3 << 30) // bs, DMA32_END // bs
    idx = 0
    cpu = 0
    for nid in range(n_nodes):
        sp.node(nid, cpus=list(range(cpu, cpu + cpus_per_node)))
        cpu += cpus_per_node
        n_off = int(per[nid] * offline_fraction)
        n_mov = int(per[nid] * movable_fraction)
        n_norm = per[nid] - n_off - n_mov
        kinds = [("online", None)] * n_norm + [("online", "Movable")] * n_mov + [("offline", None)] * n_off
        run = None
        for state, zone in kinds:
            if hole and hole_lo < hole_hi and hole_lo <= idx < hole_hi:
                idx = hole_hi
            if state == "online" and zone is None:
                zone = _boot_zone(idx, bs)
            key = (state, zone)
            if run and run[0] == key and run[1] + run[2] == idx and zone != "none":
                run[2] += 1
            else:
                if run:
                    _flush_run(sp, nid, run)
                run = [key, idx, 1]
            idx += 1
        if run:
            _flush_run(sp, nid, run)
    return sp.to_dict()


def _flush_run(sp, nid, run):
    (state, zone), start, count = run
    if state == "offline":
        sp.blocks(start, count, nid, state="offline", valid_zones="Movable Normal")
    else:
        sp.blocks(start, count, nid, state="online", zone=zone)


# --------------------------------------------------------------------------------------------
# reading a tree back

def _links(d, prefix):
    out = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for e in names:
        if e.startswith(prefix) and e[len(prefix):].isdigit():
            out.append(int(e[len(prefix):]))
    return sorted(out)


def parse_zoneinfo(text):
    """-> {(nid, zone): {"spanned", "present", "managed", "start_pfn"}}"""
    out = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if m:
            cur = out[(int(m.group(1)), m.group(2))] = {"spanned": 0, "present": 0, "managed": 0, "start_pfn": None}
            continue
        if cur is None:
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("spanned", "present", "managed"):
            cur[parts[0]] = int(parts[1])
        elif len(parts) == 2 and parts[0] == "start_pfn:":
            cur["start_pfn"] = int(parts[1])
    return out


def scan(root):
    """Read a tree (generated and possibly mutated) back into plain dicts; see the module docstring."""
    root = _check_root(root)
    memd = os.path.join(root, MEM)
    noded = os.path.join(root, NODE)
    bs = int(_read(os.path.join(memd, "block_size_bytes")).strip(), 16)
    iomem = parse_iomem(_read(os.path.join(root, "proc/iomem"), ""))
    ram = iomem_ram_ranges(iomem)
    res = {"block_size": bs,
           "auto_online_blocks": _read(os.path.join(memd, "auto_online_blocks"), "offline\n").strip(),
           "cmdline": _read(os.path.join(root, "proc/cmdline"), "").strip(),
           "udev_rules": [], "blocks": {}, "nodes": {}, "masks": {}, "cpus": {}, "acpi": {}}
    for rd in ("etc/udev/rules.d", "run/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d"):
        p = os.path.join(root, rd)
        if os.path.isdir(p):
            res["udev_rules"] += [os.path.join(rd, f) for f in sorted(os.listdir(p)) if f.endswith(".rules")]

    ram.sort()
    starts = [r[0] for r in ram]
    import bisect
    for e in os.listdir(memd):
        if not (e.startswith("memory") and e[6:].isdigit()):
            continue
        i = int(e[6:])
        d = os.path.join(memd, e)
        state = _read(d + "/state").strip()
        vz = _read(d + "/valid_zones").strip().split()
        owner, device = "boot", None
        fw = os.path.join(d, "firmware_node")
        if os.path.islink(fw):
            owner, device = "acpi", os.path.basename(os.readlink(fw))
        else:
            k = bisect.bisect_right(starts, i * bs) - 1
            if k >= 0 and ram[k][0] <= i * bs and (i + 1) * bs - 1 <= ram[k][1] and ram[k][2] != "boot":
                owner = ram[k][2]
        res["blocks"][i] = {"state": state,
                            "zone": vz[0] if state in ONLINE_STATES else None,
                            "valid_zones": vz,
                            "nodes": _links(d, "node"),
                            "owner": owner, "device": device}
    masks = {}
    for k in ("possible", "online", "has_memory", "has_normal_memory", "has_cpu"):
        masks[k] = parse_list(_read(os.path.join(noded, k), "\n"))
    res["masks"] = masks
    for k in ("possible", "present", "online"):
        res["cpus"][k] = parse_list(_read(os.path.join(root, CPU, k), "\n"))
    zi = parse_zoneinfo(_read(os.path.join(root, "proc/zoneinfo"), ""))
    ids = set(masks["possible"]) | set(masks["online"]) | set(_links(noded, "node"))
    for nid in sorted(ids):
        d = os.path.join(noded, "node%d" % nid)
        exists = os.path.isdir(d)
        n = {"possible": nid in masks["possible"], "online": nid in masks["online"] and exists,
             "present_cpus": _links(d, "cpu") if exists else [],
             "online_cpus": parse_list(_read(d + "/cpulist", "\n")) if exists else [],
             "blocks": _links(d, "memory") if exists else [],
             "zones": {}, "hugepages": {}}
        for z in ZONE_ORDER:
            if (nid, z) in zi:
                v = zi[(nid, z)]
                n["zones"][z] = {"spanned": v["spanned"], "present": v["present"], "managed": v["managed"]}
        hd = os.path.join(d, "hugepages")
        if os.path.isdir(hd):
            for h in sorted(os.listdir(hd)):
                m = re.fullmatch(r"hugepages-(\d+)kB", h)
                if m:
                    n["hugepages"][int(m.group(1))] = {
                        k: int(_read(os.path.join(hd, h, k + "_hugepages"), "0\n").strip() or 0)
                        for k in ("nr", "free", "surplus")}
        res["nodes"][nid] = n
    for base, _, files in os.walk(os.path.join(root, ACPI_BASE)):
        name = os.path.basename(base)
        if not name.startswith("PNP0C80:"):
            continue
        links = [f for f in os.listdir(base) if re.fullmatch(r"physical_node\d*", f)]
        blocks = sorted(int(os.path.basename(os.readlink(os.path.join(base, f)))[6:]) for f in links)
        parent = os.path.basename(os.path.dirname(base))
        res["acpi"][name] = {"blocks": blocks, "container": None if parent == "LNXSYBUS:00" else parent,
                             "status": int(_read(base + "/status", "0\n").strip() or 0)}
    return res


def offline_blockers(s, nid):
    """The kernel's try_offline_node() rule (+ sticky ZONE_DEVICE), from a scan() result, in a fixed order."""
    n = s["nodes"][nid]
    out = []
    if any(z["spanned"] for z in n["zones"].values()):
        out.append("spans-pages")
    if n["blocks"] or any(nid in b["nodes"] for b in s["blocks"].values()):
        out.append("has-blocks")
    if n["present_cpus"]:
        out.append("has-cpus")
    if n["zones"].get("Device", {}).get("spanned", 0):
        out.append("zone-device")
    return out


# --------------------------------------------------------------------------------------------
# mutations

def _block_size(root):
    return int(_read(os.path.join(root, MEM, "block_size_bytes")).strip(), 16)


def write_zoneinfo(root, device_pages=None):
    """Regenerate proc/zoneinfo, node masks (online/has_*), cpulist/cpumap/distance/meminfo from disk."""
    root = _check_root(root)
    bs = _block_size(root)
    memd = os.path.join(root, MEM)
    noded = os.path.join(root, NODE)
    old = parse_zoneinfo(_read(os.path.join(root, "proc/zoneinfo"), ""))
    online_nodes = _links(noded, "node")
    d = _Derived()
    for nid in online_nodes:
        sp = old.get((nid, "Device"), {}).get("spanned", 0)
        if device_pages and nid in device_pages:
            sp = device_pages[nid]
        if sp:
            d.device[nid] = sp
    # block -> nodes from the nodeN/memoryM links (one listdir per node, not one per block)
    block_nodes = {}
    for nid in online_nodes:
        for i in _links(os.path.join(noded, "node%d" % nid), "memory"):
            block_nodes.setdefault(i, []).append(nid)
    for i, nodes in block_nodes.items():
        p = os.path.join(memd, "memory%d" % i)
        state = _read(p + "/state", "absent\n").strip()
        if state not in ONLINE_STATES:
            continue
        zones = _read(p + "/valid_zones", "").split()
        if not zones:
            continue  # files gone mid-walk (the block is being removed): it spans nothing any more
        zone = zones[0]
        for n, z, pg, pfn in block_parts(i, bs, sorted(nodes), zone):
            d.add(n, z, pg, pfn)
    cpu_online = set(parse_list(_read(os.path.join(root, CPU, "online"), "\n")))
    node_cpus = {}
    for nid in online_nodes:
        present = _links(os.path.join(noded, "node%d" % nid), "cpu")
        node_cpus[nid] = (present, [c for c in present if c in cpu_online])
    _write_derived(root, online_nodes, d, node_cpus)


def _set_iomem_block(root, index, owner, device):
    """Set (owner != None) or drop (owner None) the iomem entry of one block, keeping the rest."""
    bs = _block_size(root)
    path = os.path.join(root, "proc/iomem")
    top = parse_iomem(_read(path, ""))
    s, e = index * bs, (index + 1) * bs - 1

    def cut(rs):
        out = []
        for r in rs:
            if r.name in RAM_NAMES and r.start <= e and s <= r.end:
                if r.start < s:
                    out.append(Res(r.start, s - 1, r.name, [c for c in r.children if c.end < s]))
                if r.end > e:
                    out.append(Res(e + 1, r.end, r.name, [c for c in r.children if c.start > e]))
                continue
            r.children = cut(r.children)
            out.append(r)
        return out
    top = cut(top)
    if owner is not None:
        if owner == "virtio-mem":
            p = next((r for r in top if r.name == device), None)
            if p is None:
                p = Res(s, e, device)
                top.append(p)
            p.start, p.end = min(p.start, s), max(p.end, e)
            p.children.append(Res(s, e, "System RAM (virtio_mem)"))
        elif owner == "dax-kmem":
            p = soft = None
            for r in top:
                for c in r.children:
                    if c.name == device:
                        soft, p = r, c
            if p is None:
                p = Res(s, e, device)
                soft = Res(s, e, "Soft Reserved", [p])
                top.append(soft)
            p.start, p.end = min(p.start, s), max(p.end, e)
            soft.start, soft.end = min(soft.start, s), max(soft.end, e)
            merged = False
            for c in p.children:
                if c.end + 1 == s:
                    c.end, merged = e, True
                elif c.start == e + 1:
                    c.start, merged = s, True
            if not merged:
                p.children.append(Res(s, e, "System RAM (kmem)"))
        else:
            # boot / acpi: "System RAM"; extend an adjacent range of the same owner (same DIMM)
            fw = os.path.join(root, MEM, "memory%d" % index, "firmware_node")
            mine = os.readlink(fw) if os.path.islink(fw) else None
            merged = False
            for r in top:
                if r.name != "System RAM":
                    continue
                for nb, adj in ((index - 1, r.end + 1 == s), (index + 1, r.start == e + 1)):
                    if not adj:
                        continue
                    nfw = os.path.join(root, MEM, "memory%d" % nb, "firmware_node")
                    theirs = os.readlink(nfw) if os.path.islink(nfw) else None
                    if theirs == mine:
                        r.start, r.end = min(r.start, s), max(r.end, e)
                        merged = True
                        break
                if merged:
                    break
            if not merged:
                top.append(Res(s, e, "System RAM"))
    _write(path, render_iomem(top), 0o444)


def add_block(root, index, node, state="offline", valid_zones="Normal Movable", owner=None, zone=None,
              link=True, update=True):
    """Hot-add memoryN (kernel order: block dir, then node links; auto-online optional via state)."""
    root = _check_root(root)
    memd = os.path.join(root, MEM)
    name = "memory%d" % index
    d = os.path.join(memd, name)
    if os.path.exists(d):
        raise FileExistsError(d)
    kind, device, container = "boot", None, None
    if isinstance(owner, (tuple, list)):
        kind = _norm_owner(owner[0])
        device = owner[1] if len(owner) > 1 else None
        container = owner[2] if len(owner) > 2 else None
    elif owner is not None:
        kind = _norm_owner(owner)
    if kind == "acpi" and not device:
        raise ValueError("acpi owner needs a device name, e.g. ('acpi', 'PNP0C80:03')")
    if kind == "virtio-mem":
        device = device or "virtio0"
    if kind == "dax-kmem":
        device = device or "dax0.0"
    if state not in STATES:
        raise ValueError("bad state %r" % state)
    if link and not os.path.isdir(os.path.join(root, NODE, "node%d" % node)):
        raise FileNotFoundError("node%d is not online (add_node first)" % node)
    if state == "offline":
        vz = valid_zones
    else:
        vz = zone or valid_zones.split()[0]
    os.mkdir(d, 0o755)
    fd = os.open(d, _DFLAGS)
    try:
        _emit(fd, "uevent", None, 0o644)
        _emit(fd, "phys_index", b"%08x\n" % index, 0o444)
        _emit(fd, "phys_device", b"0\n", 0o444)
        _emit(fd, "removable", b"1\n", 0o444)
        _emit(fd, "online", b"0\n" if state == "offline" else b"1\n", 0o644)
        _emit(fd, "valid_zones", (vz + "\n").encode(), 0o444)
        _emit(fd, "state", (state + "\n").encode(), 0o644)
        os.symlink("../../../../bus/memory", "subsystem", dir_fd=fd)
    finally:
        os.close(fd)
    _symlink("../../../devices/system/memory/" + name, os.path.join(root, "sys/bus/memory/devices", name))
    if kind == "acpi":
        dd = os.path.join(root, _acpi_dir(device, container))
        if not os.path.isdir(dd):
            if container and not os.path.isdir(os.path.join(root, ACPI_BASE, container)):
                _write_container(root, container)
            _write_acpi_device(root, device, container)
        _symlink("../../../LNXSYSTM:00/LNXSYBUS:00/" + ((container + "/") if container else "") + device,
                 d + "/firmware_node")
        _add_physical_node_link(root, dd, index)
    _set_iomem_block(root, index, kind, device)
    if link:
        link_block(root, index, node, update=False)
    if update:
        write_zoneinfo(root)


def link_block(root, index, node, update=True):
    """Create memoryN/nodeX and nodeX/memoryN (register_memory_blocks_under_node_hotplug)."""
    root = _check_root(root)
    name = "memory%d" % index
    _symlink("../../node/node%d" % node, os.path.join(root, MEM, name, "node%d" % node))
    _symlink("../../memory/" + name, os.path.join(root, NODE, "node%d" % node, name))
    if update:
        write_zoneinfo(root)


def remove_block(root, index, update=True):
    """Hot-remove memoryN: node links, ACPI binding, iomem resource and the directory."""
    root = _check_root(root)
    name = "memory%d" % index
    d = os.path.join(root, MEM, name)
    if not os.path.isdir(d):
        raise FileNotFoundError(d)
    for n in _links(d, "node"):
        _unlink(os.path.join(root, NODE, "node%d" % n, name))
    fw = d + "/firmware_node"
    if os.path.islink(fw):
        dd = os.path.normpath(os.path.join(d, os.readlink(fw)))
        for f in os.listdir(dd):
            if re.fullmatch(r"physical_node\d*", f) and os.readlink(os.path.join(dd, f)).endswith("/" + name):
                os.unlink(os.path.join(dd, f))
    _set_iomem_block(root, index, None, None)
    shutil.rmtree(d)
    _unlink(os.path.join(root, "sys/bus/memory/devices", name))
    if update:
        write_zoneinfo(root)


def set_block_state(root, index, state, zone=None, valid_zones=None, update=True):
    """Change state (and valid_zones) of memoryN as the kernel would after an online/offline write."""
    root = _check_root(root)
    d = os.path.join(root, MEM, "memory%d" % index)
    if state not in STATES:
        raise ValueError("bad state %r" % state)
    cur = _read(d + "/valid_zones").strip()
    if state == "offline":
        if valid_zones is None:
            old = (zone or cur.split()[0])
            if old == "Movable":
                valid_zones = "Movable Normal"
            elif old in ("Normal", "none"):
                valid_zones = "Normal Movable"
            else:
                valid_zones = old + " Normal Movable"
        vz = valid_zones
    elif state == "going-offline":
        vz = zone or cur.split()[0]
    else:
        vz = zone or cur.split()[0]
    _write(d + "/valid_zones", vz + "\n", 0o444)
    _write(d + "/online", "0\n" if state == "offline" else "1\n", 0o644)
    _write(d + "/state", state + "\n", 0o644)
    if update:
        write_zoneinfo(root)


def add_node(root, id, cpus=(), offline_cpus=(), hugepages=None, device_pages=0):
    """Bring node id online (register_one_node): nodeN dir, masks, zoneinfo entries; cpus become present."""
    root = _check_root(root)
    noded = os.path.join(root, NODE)
    possible = parse_list(_read(os.path.join(noded, "possible"), "\n"))
    if id not in possible:
        _write(os.path.join(noded, "possible"), mask_list(possible + [id]) + "\n", 0o444)
    hp = {}
    for size in HUGEPAGE_SIZES_KB:
        v = (hugepages or {}).get(size, (hugepages or {}).get(str(size), 0))
        if isinstance(v, int):
            v = {"nr": v, "free": v, "surplus": 0}
        hp[str(size)] = {"nr": v.get("nr", 0), "free": v.get("free", v.get("nr", 0)), "surplus": v.get("surplus", 0)}
    _write_node_dir(root, id, hp)
    for c in cpus:
        add_cpu(root, c, id, online=c not in offline_cpus, update=False)
    write_zoneinfo(root, device_pages={id: device_pages})


def remove_node(root, id, force=False):
    """Take node id offline (unregister_one_node): drop nodeN, its links and zoneinfo entries."""
    root = _check_root(root)
    d = os.path.join(root, NODE, "node%d" % id)
    if not os.path.isdir(d):
        raise FileNotFoundError(d)
    if not force and (_links(d, "memory") or _links(d, "cpu")):
        raise RuntimeError("node%d still has memory blocks or cpus (force=True to remove anyway)" % id)
    for c in _links(d, "cpu"):
        _unlink(os.path.join(root, CPU, "cpu%d" % c, "node%d" % id))
    for m in _links(d, "memory"):
        _unlink(os.path.join(root, MEM, "memory%d" % m, "node%d" % id))
    shutil.rmtree(d)
    _unlink(os.path.join(root, "sys/bus/node/devices/node%d" % id))
    write_zoneinfo(root)


def add_cpu(root, cpu, node, online=True, update=True):
    """Make cpu present on node (and online or not)."""
    root = _check_root(root)
    _write_cpu(root, cpu, node, online)
    _symlink("../../cpu/cpu%d" % cpu, os.path.join(root, NODE, "node%d" % node, "cpu%d" % cpu))
    for k in ("present",) + (("online",) if online else ()):
        p = os.path.join(root, CPU, k)
        _write(p, mask_list(parse_list(_read(p, "\n")) + [cpu]) + "\n", 0o444)
    p = os.path.join(root, CPU, "possible")
    pos = parse_list(_read(p, "\n"))
    if cpu not in pos:
        _write(p, mask_list(range(max(pos + [cpu]) + 1)) + "\n", 0o444)
    if update:
        write_zoneinfo(root)


def remove_cpu(root, cpu, update=True):
    """Hot-remove cpu (no longer present)."""
    root = _check_root(root)
    d = os.path.join(root, CPU, "cpu%d" % cpu)
    for n in _links(d, "node"):
        _unlink(os.path.join(root, NODE, "node%d" % n, "cpu%d" % cpu))
    shutil.rmtree(d, ignore_errors=True)
    _unlink(os.path.join(root, "sys/bus/cpu/devices/cpu%d" % cpu))
    for k in ("present", "online"):
        p = os.path.join(root, CPU, k)
        _write(p, mask_list(c for c in parse_list(_read(p, "\n")) if c != cpu) + "\n", 0o444)
    if update:
        write_zoneinfo(root)


def set_cpu_online(root, cpu, online, update=True):
    root = _check_root(root)
    d = os.path.join(root, CPU, "cpu%d" % cpu)
    if os.path.exists(d + "/online") or cpu != 0:
        _write(d + "/online", "1\n" if online else "0\n", 0o644)
    p = os.path.join(root, CPU, "online")
    cur = set(parse_list(_read(p, "\n")))
    cur = cur | {cpu} if online else cur - {cpu}
    _write(p, mask_list(cur) + "\n", 0o444)
    if update:
        write_zoneinfo(root)


def set_hugepages(root, node, size_kb, nr, free=None, surplus=0):
    root = _check_root(root)
    h = os.path.join(root, NODE, "node%d" % node, "hugepages", "hugepages-%dkB" % size_kb)
    os.makedirs(h, exist_ok=True)
    _write(h + "/nr_hugepages", "%d\n" % nr)
    _write(h + "/free_hugepages", "%d\n" % (nr if free is None else free), 0o444)
    _write(h + "/surplus_hugepages", "%d\n" % surplus, 0o444)
    write_zoneinfo(root)


def set_auto_online(root, value):
    _write(os.path.join(_check_root(root), MEM, "auto_online_blocks"), value + "\n")


def set_cmdline(root, text):
    _write(os.path.join(_check_root(root), "proc/cmdline"), text.rstrip("\n") + "\n", 0o444)


def set_udev_rule(root, present=True):
    p = os.path.join(_check_root(root), UDEV_RULE_PATH)
    if present:
        _write(p, UDEV_RULE_TEXT)
    else:
        _unlink(p)


# --------------------------------------------------------------------------------------------
# CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a fake host sysfs/procfs tree (see the module docstring).")
    ap.add_argument("root", help="directory to create (must be empty unless --force)")
    ap.add_argument("--spec", help="JSON spec file (see docstring); overrides the layout options")
    ap.add_argument("--blocks", type=int, default=64, help="number of memory blocks (simple layout)")
    ap.add_argument("--nodes", type=int, default=2, help="number of NUMA nodes (simple layout)")
    ap.add_argument("--block-size", default="128M", help="block size, e.g. 128M, 0x8000000")
    ap.add_argument("--cpus-per-node", type=int, default=2)
    ap.add_argument("--offline-fraction", type=float, default=0.25)
    ap.add_argument("--movable-fraction", type=float, default=0.5)
    ap.add_argument("--no-hole", action="store_true", help="no 3G..4G PCI hole")
    ap.add_argument("--auto-online", default="offline", help="auto_online_blocks value")
    ap.add_argument("--memhp-default-state", help="add memhp_default_state=X to proc/cmdline")
    ap.add_argument("--udev-rule", action="store_true", help="write " + UDEV_RULE_PATH)
    ap.add_argument("--jobs", type=int, help="worker processes (default: cpus, for >= 8192 blocks)")
    ap.add_argument("--force", action="store_true", help="wipe ROOT first")
    ap.add_argument("--print-spec", action="store_true", help="print the normalised spec as JSON")
    ap.add_argument("--scan", action="store_true", help="print scan(ROOT) as JSON afterwards")
    a = ap.parse_args(argv)
    if a.spec:
        with open(a.spec) as f:
            spec = json.load(f)
    else:
        spec = simple_spec(a.blocks, a.nodes, a.block_size, a.cpus_per_node, a.offline_fraction,
                           a.movable_fraction, hole=not a.no_hole)
    spec.setdefault("auto_online_blocks", a.auto_online)
    if a.memhp_default_state:
        spec["memhp_default_state"] = a.memhp_default_state
    if a.udev_rule:
        spec["udev_rule"] = True
    spec = generate(a.root, spec, jobs=a.jobs, force=a.force)
    if a.print_spec:
        json.dump(spec, sys.stdout, indent=1)
        print()
    if a.scan:
        json.dump(scan(a.root), sys.stdout, indent=1, sort_keys=True, default=str)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
