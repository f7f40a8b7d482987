#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_seed.py — the kernel patch's own test ("mm/memory_hotplug: Fix try_offline_node()"),
with hotplugd watching: two DIMMs into the CPU-less, memory-less node; hotplugd onlines them
movable; the live model shows the node spanning pages and owning its blocks; the blocks are
offlined by hand (the node still carries them, so it must stay online) and ejected; the node goes
offline and hotplugd's live model agrees at every stage."""

from hotplugd_vm import (HotplugdVM, check, check_model_vs_sysfs, log, model_blocks_of,
                         model_node, scenario)

CONFIG = "[Online]\nPolicy=online_movable\n"


def main():
    with HotplugdVM("vm-seed") as h:
        vm = h.vm
        qnode = vm.nodes - 1
        with vm.step("start hotplugd (Policy=online_movable)"):
            nid = h.empty_node()
            h.start(CONFIG)
            m = h.live_model()
            n = model_node(m, nid)
            check(n is None or not n["online"], f"node {nid} online in the model before any plug: {n}")

        with vm.step(f"plug two DIMMs into QEMU node {qnode} (guest node {nid})"):
            dimms = [vm.plug_dimm(qnode, "256M"), vm.plug_dimm(qnode, "256M")]
            blocks = [b for d in dimms for b in vm.dimm_blocks(d)]
            check(all(vm.dimm_guest_node(d) == nid for d in dimms), "DIMMs landed on another node")
            check(nid in vm.node_list("online"), f"node {nid} did not come online")
            devices = {d: vm.dimm_acpi_device(d) for d in dimms}

        with vm.step("hotplugd onlines the blocks movable"):
            h.wait(lambda: all(vm.blocks()[b]["state"] == "online" for b in blocks), 60,
                        f"hotplugd to online memory{blocks}")
            sysfs = vm.blocks()
            for b in blocks:
                check(sysfs[b]["valid_zones"] == ["Movable"],
                      f"memory{b} onlined into {sysfs[b]['valid_zones']}, not Movable")
            check(nid in vm.node_list("has_memory"), f"node {nid} not in has_memory")

        with vm.step("live model: node online, spanning pages, owning its blocks"):
            m = h.wait_live_equals_fresh()
            n = model_node(m, nid)
            check(n is not None, f"node {nid} missing from the live model")
            check(n["online"] and n["has_memory"], f"node flags: {n}")
            check(n["spanned_pages"] > 0 and n["present_pages"] > 0, f"pages: {n}")
            check(n["blocks"] == 4 and n["online_blocks"] == 4 and n["offline_blocks"] == 0,
                  f"block counters: {n}")
            check(n["online_blocks_by_zone"] == {"Movable": 4}, f"zones: {n['online_blocks_by_zone']}")
            check(n["present_cpus"] == [] and n["online_cpus"] == [], f"cpus: {n}")
            check(n["can_offline"] is False, f"can_offline: {n}")
            check({"spans-pages", "has-blocks"} <= set(n["offline_blockers"]),
                  f"blockers: {n['offline_blockers']}")
            check("has-cpus" not in n["offline_blockers"], f"blockers: {n['offline_blockers']}")
            check_model_vs_sysfs(vm, m, "online")
            mb = {b["index"]: b for b in m["blocks"]}
            for d in dimms:
                for b in vm.dimm_blocks(d):
                    check(mb[b]["owner"] == "acpi", f"memory{b} owner {mb[b]['owner']!r}, not acpi")
                    check(mb[b]["device"] == devices[d],
                          f"memory{b} device {mb[b]['device']!r}, sysfs says {devices[d]}")
                    check(mb[b]["zone"] == "Movable" and mb[b]["nodes"] == [nid], f"memory{b}: {mb[b]}")

        with vm.step("offline the blocks by hand: the node keeps them and stays online"):
            for b in blocks:
                vm.set_block_state(b, "offline")
            check(nid in vm.node_list("online"), "node went offline while blocks still carry its nid")
            m = h.wait_live_equals_fresh()
            n = model_node(m, nid)
            check(n is not None and n["online"], f"node {nid} in the model: {n}")
            check(n["offline_blocks"] == 4 and n["online_blocks"] == 0, f"counters: {n}")
            # feee6b298916: the zone span shrinks at offline time, so only the blocks keep it.
            zp = h.zone_pages()
            log(f"after offline: model spanned_pages={n['spanned_pages']}, blockers={n['offline_blockers']}, "
                f"zoneinfo present={zp.get(nid)}")
            check("has-blocks" in n["offline_blockers"], f"blockers: {n['offline_blockers']}")
            check(n["spanned_pages"] == 0 and "spans-pages" not in n["offline_blockers"],
                  f"offlined node still spans pages in the model: {n}")
            check_model_vs_sysfs(vm, m, "offline")

        with vm.step("eject the DIMMs (guest eject via PNP0C80)"):
            for d in dimms:
                vm.eject(devices[d])
                vm.wait_dimm_deleted(d)
            vm.wait_for(lambda: nid not in vm.node_list("online"), 30, f"node {nid} to go offline")
            left = [b for b in blocks if b in vm.blocks()]
            check(not left, f"blocks still present after eject: {left}")

        with vm.step("live model: node gone or offline, none of its blocks left"):
            m = h.wait_live_equals_fresh()
            n = model_node(m, nid)
            check(n is None or (not n["online"] and n["blocks"] == 0), f"node {nid} in the model: {n}")
            check(not model_blocks_of(m, nid), f"blocks of node {nid} left: {model_blocks_of(m, nid)}")
            idx = {b["index"] for b in m["blocks"]}
            check(not idx & set(blocks), f"removed blocks still in the model: {sorted(idx & set(blocks))}")
            check_model_vs_sysfs(vm, m, "after eject")
            check(h.is_active(), "hotplugd is no longer active")


if __name__ == "__main__":
    scenario(main)
