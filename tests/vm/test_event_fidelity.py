#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_event_fidelity.py — bursts of DIMM plugs and unplugs (host device_del while hotplugd may
still be onlining, hand offline + guest eject, hand offline + device_del) on two nodes; afterwards
hotplugd's live model (SIGUSR2) must equal a fresh `hotplugd --dump-model` and sysfs. Run once
with EventSource=udev and once with EventSource=kernel."""

import time

from hotplugd_vm import HotplugdVM, check, check_model_vs_sysfs, log, scenario

SIZE = "256M"


def main():
    with HotplugdVM("vm-event-fidelity", slots=12, maxmem="8G") as h:
        vm = h.vm
        qempty, qboot = vm.nodes - 1, 1

        def device_del_many(dimms):
            """device_del for all first, then wait for each: removals overlap in the guest."""
            for d in dimms:
                vm.qmp.execute("device_del", {"id": d})
            for d in dimms:
                vm.wait_dimm_deleted(d)

        def wait_all_online(what):
            def done():
                s = vm.blocks()
                return all(s.get(b, {}).get("state") == "online" for d in vm.dimms for b in vm.dimm_blocks(d))
            h.wait(done, 120, what, interval=0.5)

        def burst(source):
            plugs = unplugs = 0
            t0 = time.monotonic()
            with vm.step(f"[{source}] burst 1: 10 plugs, no waiting"):
                first = []
                for i in range(10):
                    first.append(vm.plug_dimm(qempty if i % 3 else qboot, SIZE, wait_blocks=False))
                plugs += 10
            with vm.step(f"[{source}] device_del of 2 DIMMs while hotplugd is onlining"):
                device_del_many(first[:2])
                unplugs += 2
            with vm.step(f"[{source}] hotplugd onlines the rest"):
                wait_all_online("hotplugd to online every plugged block")
            with vm.step(f"[{source}] hand offline + guest eject of 3 DIMMs"):
                for d in first[2:5]:
                    for b in vm.dimm_blocks(d):
                        vm.set_block_state(b, "offline")
                    vm.eject(vm.dimm_acpi_device(d))
                for d in first[2:5]:
                    vm.wait_dimm_deleted(d)
                unplugs += 3
            with vm.step(f"[{source}] hand offline + host device_del of 3 DIMMs"):
                for d in first[5:8]:
                    for b in vm.dimm_blocks(d):
                        vm.set_block_state(b, "offline")
                device_del_many(first[5:8])
                unplugs += 3
            with vm.step(f"[{source}] burst 2: 6 plugs, no waiting"):
                for i in range(6):
                    vm.plug_dimm(qempty if i % 2 else qboot, SIZE, wait_blocks=False)
                plugs += 6
                wait_all_online("hotplugd to online the second burst")
            log(f"[{source}] {plugs} plugs + {unplugs} unplugs in {time.monotonic() - t0:.1f}s")
            check(plugs >= 16, "fewer than 16 plugs")
            with vm.step(f"[{source}] live model == fresh scan == sysfs"):
                live = h.wait_live_equals_fresh(timeout=30)
                check_model_vs_sysfs(vm, live, f"[{source}] live model")
                check(h.is_active(), "hotplugd is no longer active")

        with vm.step("start hotplugd (EventSource=udev)"):
            h.start("[Daemon]\nEventSource=udev\n[Online]\nPolicy=online_movable\n")
        burst("udev")

        with vm.step("remove every DIMM (overlapping device_del)"):
            device_del_many(list(vm.dimms))
            h.start("[Daemon]\nEventSource=kernel\n[Online]\nPolicy=online_movable\n")
            live = h.wait_live_equals_fresh(timeout=30)
            check_model_vs_sysfs(vm, live, "after removing every DIMM")
        burst("kernel")


if __name__ == "__main__":
    scenario(main)
