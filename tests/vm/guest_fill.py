#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guest_fill.py — puts data on one NUMA node of the test-bed guest (stdlib only; shipped into the
guest by the retire scenarios and run there as a transient unit).

    guest_fill.py NODE MIB STATUS_FILE [PIN_BLOCK[,PIN_BLOCK...]]

Binds itself to NODE (set_mempolicy(MPOL_BIND)), maps MIB MiB of private anonymous memory and
writes every page, so that the pages really are on the node (the caller checks the node's
MemUsed). With PIN_BLOCK, it also takes extra references on a few of its pages that lie in the
first listed memory block holding any (found through /proc/self/pagemap): vmsplice() into a pipe
that is never read keeps a reference on each page, migration of such a page fails, and the
kernel's offline of that block retries migration until a signal interrupts the writer. That
makes "a drain in progress" last as long as the scenario needs, deterministically, instead of
racing a one-second migration. Killing this process drops the references.

Writes one JSON line to STATUS_FILE when ready, then sleeps until killed."""

import ctypes
import json
import mmap
import os
import struct
import sys
import time

SYS_set_mempolicy, SYS_vmsplice = 238, 278  # x86_64
MPOL_BIND = 2
PAGE = 4096
PIN_PAGES = 8  # fits the default pipe capacity (16 pages)


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def node_mem_used_kib(node):
    with open(f"/sys/devices/system/node/node{node}/meminfo") as f:
        for line in f:
            if "MemUsed:" in line:
                return int(line.split()[-2])
    return -1


def main():
    node, mib, status = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    pin_blocks = [int(b) for b in sys.argv[4].split(",")] if len(sys.argv) > 4 and sys.argv[4] else []
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.c_ulong(1 << node)
    if libc.syscall(SYS_set_mempolicy, MPOL_BIND, ctypes.byref(mask), ctypes.c_ulong(64)) != 0:
        sys.exit(f"set_mempolicy(MPOL_BIND, node {node}): {os.strerror(ctypes.get_errno())}")
    size = mib << 20
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    page = b"\xa5" * PAGE
    for off in range(0, size, PAGE):
        buf[off:off + PAGE] = page
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))

    # Where each page is: pagemap entry bit 63 = present, bits 0-54 = PFN (root only).
    with open("/proc/self/pagemap", "rb") as pm:
        pm.seek(base // PAGE * 8)
        entries = [e for (e,) in struct.iter_unpack("<Q", pm.read(size // PAGE * 8))]
    pfns = [e & ((1 << 55) - 1) if e >> 63 else None for e in entries]
    with open("/sys/devices/system/memory/block_size_bytes") as f:
        pages_per_block = int(f.read(), 16) // PAGE
    per_block = {}
    for p in pfns:
        if p is not None:
            per_block[p // pages_per_block] = per_block.get(p // pages_per_block, 0) + 1

    pinned_block, pinned, pipe = None, 0, None
    for blk in pin_blocks:
        mine = [i for i, p in enumerate(pfns) if p is not None and p // pages_per_block == blk]
        if not mine:
            continue
        pipe = os.pipe()
        for i in mine[:PIN_PAGES]:
            iov = IOVec(base + i * PAGE, PAGE)
            if libc.syscall(SYS_vmsplice, pipe[1], ctypes.byref(iov), ctypes.c_ulong(1), 0) == PAGE:
                pinned += 1
        pinned_block = blk
        break

    out = {"pid": os.getpid(), "node": node, "mib": mib, "node_mem_used_kib": node_mem_used_kib(node),
           "pages_per_block": {str(k): v for k, v in sorted(per_block.items())},
           "pinned_block": pinned_block, "pinned_pages": pinned}
    tmp = status + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(out) + "\n")
    os.rename(tmp, status)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
