#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""show-model.py — renders `hotplugd --dump-model` JSON (stdin or a file) as the tables a person reads."""
import json
import sys


def ranges(ids):
    out, start, prev = [], None, None
    for i in sorted(ids):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out) or "-"


def main():
    data = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    mib = data["block_size_bytes"] >> 20
    print(f"  block size {mib} MiB, {data['block_count']} blocks, kernel auto-online: "
          f"{data['auto_online_blocks']}, policy: {data['policy']}"
          f"{' (virtual machine)' if data.get('virtual_machine') else ''}")
    print()
    print(f"  {'NODE':>4} {'ONLINE':6} {'CPUS(present/online)':21} {'BLOCKS':>6} {'ONLINE':>6} "
          f"{'SPANNED MiB':>11}  {'CAN OFFLINE':11} BLOCKERS")
    for n in data["nodes"]:
        cpus = f"{ranges(n['present_cpus'])}/{ranges(n['online_cpus'])}"
        print(f"  {n['id']:>4} {str(n['online']).lower():6} {cpus:21} {n['blocks']:>6} "
              f"{n['online_blocks']:>6} {n['spanned_pages'] * 4096 >> 20:>11}  "
              f"{'yes' if n['can_offline'] else 'no':11} {','.join(n['offline_blockers']) or '-'}")
    print()
    # Merge consecutive blocks with the same state/zone/nodes/owner, like lsmem does.
    rows, cur = [], None
    for b in data["blocks"]:
        key = (b["state"], b["zone"], tuple(b["nodes"]), b["owner"], b["device"])
        if cur and cur["key"] == key and b["index"] == cur["last"] + 1:
            cur["last"] = b["index"]
        else:
            cur = {"key": key, "first": b["index"], "last": b["index"]}
            rows.append(cur)
    print(f"  {'BLOCKS':>13} {'STATE':8} {'ZONE':8} {'NODES':6} OWNER")
    for r in rows:
        state, zone, nodes, owner, device = r["key"]
        blocks = f"{r['first']}-{r['last']}" if r["first"] != r["last"] else str(r["first"])
        print(f"  {blocks:>13} {state:8} {zone or '-':8} {ranges(nodes):6} {owner}"
              f"{' ' + device if device else ''}")
    if data["conflicts"]:
        print()
        print("  Other agents that online memory:")
        for c in data["conflicts"]:
            print(f"    {c['kind']}: {c['source']} ({c['detail']})")
    if data["plan"]:
        print()
        print("  What the policy does with the offline blocks:")
        for p in data["plan"]:
            print(f"    block {p['block']:>5} on node {p['node']}: {p['action']:15} ({p['reason']})")


if __name__ == "__main__":
    main()
