#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_policies.py — hotplugd's [Online] Policy= decides the zone of hot-added blocks, verified
from the guest's valid_zones: offline, online_movable, auto-movable (per-node ratio) and
online_kernel, one boot, hotplugd restarted with a new config between them."""

from hotplugd_vm import HotplugdVM, check, log, model_node, scenario

SIZE = "256M"  # two 128 MiB blocks per DIMM


def main():
    with HotplugdVM("vm-policies", slots=12) as h:
        vm = h.vm
        qempty = vm.nodes - 1   # QEMU node whose DIMMs land on the guest's empty node
        qboot = 1               # QEMU node 1 has no SRAT entry: its DIMMs land on guest node 0

        def plug_and_wait(qnode, online, what):
            """Plugs a DIMM; waits until hotplugd onlined its blocks (or, online=False, lets it
            have the time it would need); returns (dimm, {block: zone or None})."""
            d = vm.plug_dimm(qnode, SIZE)
            bl = vm.dimm_blocks(d)
            if online:
                h.wait(lambda: all(vm.blocks()[b]["state"] == "online" for b in bl), 60,
                            f"hotplugd to online the blocks of {d} ({what})")
            else:
                h.settle()
                h.live_model()  # the daemon has handled the events once it answers SIGUSR2
            s = vm.blocks()
            return d, {b: (s[b]["valid_zones"][0] if s[b]["state"] == "online" else None) for b in bl}

        def remove(d, also_offline=True):
            """Offlines (if movable) and ejects a DIMM so the node is empty again."""
            for b in vm.dimm_blocks(d):
                if vm.blocks()[b]["state"] == "online":
                    vm.set_block_state(b, "offline")
            vm.eject(vm.dimm_acpi_device(d))
            vm.wait_dimm_deleted(d)

        with vm.step("find the empty node"):
            nid = h.empty_node()

        # ---- Policy=offline: hotplugd leaves new blocks alone
        with vm.step("Policy=offline"):
            h.start("[Online]\nPolicy=offline\n")
            d, zones = plug_and_wait(qempty, False, "offline")
            check(all(z is None for z in zones.values()), f"Policy=offline onlined blocks: {zones}")
            m = h.live_model()
            check(model_node(m, nid)["policy"] == "offline", f"model policy: {model_node(m, nid)}")
            remove(d)
            vm.wait_for(lambda: nid not in vm.node_list("online"), 30, "the node to go offline")

        # ---- Policy=online_movable
        with vm.step("Policy=online_movable"):
            h.start("[Online]\nPolicy=online_movable\n")
            d, zones = plug_and_wait(qempty, True, "online_movable")
            check(all(z == "Movable" for z in zones.values()), f"online_movable gave {zones}")
            remove(d)
            vm.wait_for(lambda: nid not in vm.node_list("online"), 30, "the node to go offline")

        # ---- Policy=auto-movable, MovableRatio=100
        # A block may go to ZONE_MOVABLE only while the node's MOVABLE:KERNEL stays within the
        # ratio: (movable + new) * 100 <= MovableRatio * kernel, i.e. here movable <= kernel.
        #  * The empty node N starts at 0:0. Deciding per block: block 1: 1 > 0 → Normal;
        #    block 2: 1 <= 1 → Movable; block 3: 2 > 1 → Normal; block 4: 2 <= 2 → Movable.
        #    Deciding per DIMM (as the kernel's auto-movable does): DIMM 1: 2 > 0 → Normal,
        #    Normal; DIMM 2: 2 <= 2 → Movable, Movable. Either way: 2 Normal + 2 Movable.
        #  * Node 0 holds ~1 GiB of boot memory in kernel zones (DMA, DMA32): a 256 MiB DIMM
        #    there is 256 <= 1024 MiB → both blocks Movable.
        # A ratio over the whole machine (1 GiB kernel) would have made all of N's blocks
        # Movable: the mix on N next to all-Movable on node 0 shows the ratio is per node.
        with vm.step("Policy=auto-movable MovableRatio=100"):
            h.start("[Online]\nPolicy=auto-movable\nMovableRatio=100\n")
            d1, z1 = plug_and_wait(qempty, True, "auto-movable, DIMM 1 on the empty node")
            d2, z2 = plug_and_wait(qempty, True, "auto-movable, DIMM 2 on the empty node")
            d0, z0 = plug_and_wait(qboot, True, "auto-movable, DIMM on node 0")
            check(vm.dimm_guest_node(d0) == 0 and vm.dimm_guest_node(d1) == nid, "DIMM placement")
            zn = list(z1.values()) + list(z2.values())
            log(f"auto-movable: node {nid} zones {zn}, node 0 zones {list(z0.values())}")
            check(sorted(zn) == ["Movable", "Movable", "Normal", "Normal"],
                  f"node {nid}: expected 2 Normal + 2 Movable, got {zn}")
            check(all(z == "Movable" for z in z0.values()), f"node 0: expected Movable, got {z0}")
            zp = h.zone_pages()
            for node in (0, nid):
                movable = zp[node].get("Movable", 0)
                kernel = sum(v for z, v in zp[node].items() if z != "Movable")
                log(f"node {node}: present pages movable={movable} kernel={kernel}")
                check(movable * 100 <= 100 * kernel,
                      f"node {node}: MOVABLE:KERNEL {movable}:{kernel} exceeds MovableRatio=100")
            m = h.wait_live_equals_fresh()
            n = model_node(m, nid)
            check(n["online_blocks_by_zone"] == {"Normal": 2, "Movable": 2},
                  f"model zones of node {nid}: {n['online_blocks_by_zone']}")
            # Leave node 0's DIMM (Movable) and move on: Normal blocks usually cannot be offlined.
            remove(d0)

        # ---- Policy=online_kernel (last: its blocks usually cannot be removed again)
        with vm.step("Policy=online_kernel"):
            h.start("[Online]\nPolicy=online_kernel\n")
            d, zones = plug_and_wait(qempty, True, "online_kernel")
            check(all(z == "Normal" for z in zones.values()), f"online_kernel gave {zones}")
            check(h.is_active(), "hotplugd is no longer active")
            h.wait_live_equals_fresh()

        # ---- VirtioMem=ignore (the default): virtio-mem blocks are the driver's business
        with vm.step("virtio-mem blocks are left alone (VirtioMem=ignore)"):
            before = set(vm.blocks())
            vm.plug_virtio_mem(qempty, "1G", "256M")

            def vmem_blocks():  # new blocks, linked to their node (256 MiB = 2 blocks)
                s = vm.blocks()
                found = [i for i in s if i not in before and s[i]["nodes"]]
                return found if len(found) >= 2 else None
            new = vm.wait_for(vmem_blocks, 60, "virtio-mem blocks in the guest")
            h.settle()
            live = h.live_model()  # once it answers, hotplugd has handled the add events
            s = vm.blocks()
            check(all(s[i]["state"] == "offline" for i in new),
                  f"hotplugd onlined virtio-mem blocks despite VirtioMem=ignore: {[(i, s[i]) for i in new]}")
            mb = {b["index"]: b for b in live["blocks"]}
            check(all(mb[i]["owner"] == "virtio-mem" for i in new),
                  f"live model owners of the virtio-mem blocks: {[(i, mb[i].get('owner')) for i in new]}")
            h.wait_live_equals_fresh()


if __name__ == "__main__":
    scenario(main)
