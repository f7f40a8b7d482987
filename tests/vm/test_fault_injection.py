#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_fault_injection.py — memory-notifier-error-inject makes offline and online writes fail
with EBUSY; hotplugd's model must keep telling the truth: a failed hand offline leaves the block
online in the model, a failed policy online leaves it offline, and the daemon keeps running."""

import re

from hotplugd_vm import HotplugdVM, check, check_model_vs_sysfs, log, model_node, scenario

CONFIG = "[Online]\nPolicy=online_movable\n"


def injections(vm, action):
    return len(re.findall(rf"Injecting error \(-16\) to {action}", vm.sh("dmesg")))


def main():
    with HotplugdVM("vm-fault-injection") as h:
        vm = h.vm
        qnode = vm.nodes - 1
        with vm.step("start hotplugd and plug a DIMM into the empty node"):
            nid = h.empty_node()
            h.start(CONFIG)
            d1 = vm.plug_dimm(qnode, "256M")
            b1 = vm.dimm_blocks(d1)
            h.wait(lambda: all(vm.blocks()[b]["state"] == "online" for b in b1), 60,
                        "hotplugd to online the DIMM")
            check_model_vs_sysfs(vm, h.wait_live_equals_fresh(), "after onlining")

        # ---- MEM_GOING_OFFLINE
        with vm.step("MEM_GOING_OFFLINE=-16: a hand offline fails with EBUSY"):
            vm.arm_memory_notifier_error("MEM_GOING_OFFLINE", -16)
            r = vm.set_block_state(b1[0], "offline", check=False)
            check(r.rc != 0, f"offline succeeded despite the injected error: {r!r}")
            check("Device or resource busy" in r.stderr, f"not EBUSY: {r.stderr!r}")
            check(vm.blocks()[b1[0]]["state"] == "online", "the block is not online after the failure")
        with vm.step("MEM_GOING_OFFLINE=-16: the model still says online"):
            live = h.wait_live_equals_fresh()
            blk = {b["index"]: b for b in live["blocks"]}[b1[0]]
            check(blk["state"] == "online", f"model says {blk['state']} for memory{b1[0]}")
            check(model_node(live, nid)["online_blocks"] == 2, f"node counters: {model_node(live, nid)}")
            check_model_vs_sysfs(vm, live, "after the failed offline")
            check(h.is_active(), "hotplugd died")
        with vm.step("disarm MEM_GOING_OFFLINE: the offline succeeds"):
            vm.disarm_memory_notifier_error("MEM_GOING_OFFLINE")
            vm.set_block_state(b1[0], "offline")
            live = h.wait_live_equals_fresh()
            blk = {b["index"]: b for b in live["blocks"]}[b1[0]]
            check(blk["state"] == "offline", f"model says {blk['state']} after the offline")
            check_model_vs_sysfs(vm, live, "after the offline")

        # ---- MEM_GOING_ONLINE: hotplugd's own policy onlining fails
        with vm.step("MEM_GOING_ONLINE=-16: hotplugd's online of a new DIMM fails"):
            vm.arm_memory_notifier_error("MEM_GOING_ONLINE", -16)
            before = injections(vm, "MEM_GOING_ONLINE")
            d2 = vm.plug_dimm(qnode, "256M")
            b2 = vm.dimm_blocks(d2)
            # hotplugd tried: the kernel logs one injection per attempted block online.
            h.wait(lambda: injections(vm, "MEM_GOING_ONLINE") - before >= len(b2), 60,
                        "hotplugd to attempt onlining the new blocks")
            log(f"MEM_GOING_ONLINE injections: {injections(vm, 'MEM_GOING_ONLINE') - before}")
            s = vm.blocks()
            check(all(s[b]["state"] == "offline" for b in b2), f"blocks not offline: {[s[b] for b in b2]}")
        with vm.step("MEM_GOING_ONLINE=-16: the model says offline, hotplugd runs on"):
            live = h.wait_live_equals_fresh()
            mb = {b["index"]: b for b in live["blocks"]}
            check(all(mb[b]["state"] == "offline" for b in b2), f"model: {[mb.get(b) for b in b2]}")
            check_model_vs_sysfs(vm, live, "after the failed online")
            check(h.is_active(), "hotplugd died")
            r = vm.set_block_state(b2[0], "online_movable", check=False)
            check(r.rc != 0 and "Device or resource busy" in r.stderr, f"armed hand online: {r!r}")
        with vm.step("disarm MEM_GOING_ONLINE: the online succeeds"):
            vm.disarm_memory_notifier_error("MEM_GOING_ONLINE")
            for b in b2:
                vm.set_block_state(b, "online_movable")
            live = h.wait_live_equals_fresh()
            mb = {b["index"]: b for b in live["blocks"]}
            check(all(mb[b]["state"] == "online" and mb[b]["zone"] == "Movable" for b in b2),
                  f"model: {[mb.get(b) for b in b2]}")
            check_model_vs_sysfs(vm, live, "after the hand online")
        with vm.step("journal names the failures"):
            j = h.journal()
            check(re.search(r"busy|EBUSY", j, re.I), f"hotplugd logged no EBUSY failure:\n{j[-3000:]}")


if __name__ == "__main__":
    scenario(main)
