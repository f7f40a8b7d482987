# SPDX-License-Identifier: LGPL-2.1-or-later
"""common.py — helpers for the integration tests: the built daemon, generated trees, expected models."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HOTPLUGD_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("HOTPLUGD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))

import gentree  # noqa: E402  (tests/gentree.py -> tests/gen-tree.py)


def hotplugd_binary():
    """The built daemon. A missing binary is a failure, never a skip."""
    path = os.path.join(BUILD_DIR, "daemon", "hotplugd")
    assert os.path.isfile(path) and os.access(path, os.X_OK), \
        "hotplugd binary not found at %s (HOTPLUGD_BUILD_DIR=%r): build it first" % (path, BUILD_DIR)
    return path


class Tree:
    """A temporary fake root; removed on success, kept (and named) when the test fails."""

    def __init__(self, name="tree"):
        base = os.environ.get("HOTPLUGD_TEST_TMPDIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.dir = tempfile.mkdtemp(prefix="hotplugd-it-%s-" % name, dir=base)
        self.root = os.path.join(self.dir, "root")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_dump(root, timeout=300, extra=()):
    """hotplugd --root ROOT --dump-model: must exit 0, print JSON and nothing else to stdout."""
    cmd = [hotplugd_binary(), "--root", root, "--dump-model", *extra]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert p.returncode == 0, "%s exited %d\nstderr:\n%s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace"))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError("%s printed no valid JSON (%s); stdout starts %r; stderr:\n%s"
                             % (" ".join(cmd), e, p.stdout[:300], p.stderr.decode(errors="replace")))


def model_node(model, nid):
    for n in model["nodes"]:
        if n["id"] == nid:
            return n
    raise AssertionError("node %d missing from the model's nodes %s" % (nid, [n["id"] for n in model["nodes"]]))


def model_blocks(model):
    return {b["index"]: b for b in model["blocks"]}


def expected_node(s, nid):
    """What the model must say about node nid, derived from gentree.scan() of the tree."""
    n = s["nodes"][nid]
    blocks = [b for b in s["blocks"].values() if nid in b["nodes"]]
    by_zone = {}
    for b in blocks:
        if b["state"] == "online":
            by_zone[b["zone"]] = by_zone.get(b["zone"], 0) + 1
    zones = {z: v for z, v in n["zones"].items() if v["spanned"] or v["present"] or v["managed"]}
    blockers = gentree.offline_blockers(s, nid)
    return {
        "id": nid,
        "possible": n["possible"],
        "online": n["online"],
        "has_memory": nid in s["masks"]["has_memory"],
        "present_cpus": n["present_cpus"],
        "online_cpus": n["online_cpus"],
        "blocks": len(blocks),
        "online_blocks": sum(b["state"] == "online" for b in blocks),
        "offline_blocks": sum(b["state"] == "offline" for b in blocks),
        "going_offline_blocks": sum(b["state"] == "going-offline" for b in blocks),
        "online_blocks_by_zone": by_zone,
        "spanned_pages": sum(v["spanned"] for v in n["zones"].values()),
        "present_pages": sum(v["present"] for v in n["zones"].values()),
        "managed_pages": sum(v["managed"] for v in n["zones"].values()),
        "zones": zones,
        "hugepages": sorted((k, v["nr"], v["free"]) for k, v in n["hugepages"].items()),
        "can_offline": not blockers,
        "offline_blockers": sorted(blockers),
    }


def got_node(n):
    """The same keys from a model node, normalised (zero zones dropped, lists sorted)."""
    zones = {z: {k: v.get(k, 0) for k in ("spanned", "present", "managed")}
             for z, v in (n.get("zones") or {}).items() if any(v.get(k) for k in ("spanned", "present", "managed"))}
    return {
        "id": n.get("id"),
        "possible": n.get("possible"),
        "online": n.get("online"),
        "has_memory": n.get("has_memory"),
        "present_cpus": sorted(n.get("present_cpus") or []),
        "online_cpus": sorted(n.get("online_cpus") or []),
        "blocks": n.get("blocks"),
        "online_blocks": n.get("online_blocks"),
        "offline_blocks": n.get("offline_blocks"),
        "going_offline_blocks": n.get("going_offline_blocks"),
        "online_blocks_by_zone": {z: c for z, c in (n.get("online_blocks_by_zone") or {}).items() if c},
        "spanned_pages": n.get("spanned_pages"),
        "present_pages": n.get("present_pages"),
        "managed_pages": n.get("managed_pages"),
        "zones": zones,
        "hugepages": sorted((h["size_kb"], h["nr"], h["free"]) for h in (n.get("hugepages") or [])),
        "can_offline": n.get("can_offline"),
        "offline_blockers": sorted(n.get("offline_blockers") or []),
    }


def expected_block(s, i):
    b = s["blocks"][i]
    bs = s["block_size"]
    online = b["state"] != "offline"
    # A block not yet linked to a node: hotplugd does not read its valid_zones (on Linux 6.1 that
    # read oopses the kernel in that window), so the model has none until the link appears.
    vz = b["valid_zones"] if b["nodes"] else []
    return {"index": i, "start": i * bs, "size": bs, "state": b["state"],
            "zone": b["zone"] if online else None,
            "valid_zones": vz,
            "nodes": sorted(b["nodes"]), "owner": b["owner"],
            "device": b["device"] if b["owner"] in ("acpi", "boot") else "*"}


def got_block(b):
    return {"index": b.get("index"), "start": b.get("start"), "size": b.get("size"), "state": b.get("state"),
            "zone": b.get("zone"), "valid_zones": b.get("valid_zones"),
            "nodes": sorted(b.get("nodes") or []), "owner": b.get("owner"),
            "device": b.get("device") if b.get("owner") in ("acpi", "boot") else "*"}


def diff_model(model, s, limit=20):
    """Every way model (hotplugd's JSON) disagrees with scan s; [] when it agrees."""
    errs = []
    if model.get("block_size_bytes") != s["block_size"]:
        errs.append("block_size_bytes: expected %d, got %r" % (s["block_size"], model.get("block_size_bytes")))
    if model.get("auto_online_blocks") != s["auto_online_blocks"]:
        errs.append("auto_online_blocks: expected %r, got %r" % (s["auto_online_blocks"], model.get("auto_online_blocks")))
    mb = model_blocks(model)
    if len(mb) != len(model["blocks"]):
        errs.append("duplicate block indexes in the model")
    missing = sorted(set(s["blocks"]) - set(mb))
    extra = sorted(set(mb) - set(s["blocks"]))
    if missing:
        errs.append("blocks missing from the model: %s" % missing[:limit])
    if extra:
        errs.append("blocks in the model but not in the tree: %s" % extra[:limit])
    for i in sorted(set(s["blocks"]) & set(mb)):
        e, g = expected_block(s, i), got_block(mb[i])
        if e != g:
            errs.append("block %d: expected %s, got %s" % (i, e, g))
        if len(errs) > limit:
            return errs
    mn = {n["id"]: n for n in model["nodes"]}
    for nid, n in s["nodes"].items():
        if not n["online"]:
            # a possible-but-offline node: may be listed, but then as offline and empty
            if nid in mn and (mn[nid].get("online") or mn[nid].get("blocks")):
                errs.append("node %d is not online in the tree, model says %s" % (nid, mn[nid]))
            continue
        if nid not in mn:
            errs.append("online node %d missing from the model" % nid)
            continue
        e, g = expected_node(s, nid), got_node(mn[nid])
        for k in e:
            if e[k] != g[k]:
                errs.append("node %d %s: expected %r, got %r" % (nid, k, e[k], g[k]))
    for nid in mn:
        if nid not in s["nodes"]:
            errs.append("node %d in the model but not in the tree" % nid)
    return errs


def assert_model_matches(model, s, root):
    errs = diff_model(model, s)
    assert not errs, "hotplugd --dump-model disagrees with tree %s:\n  %s" % (root, "\n  ".join(errs))
