#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_harness.py — proves the test bed itself (no hotplugd involved): boot, command channel,
QMP plug → guest blocks, manual online/offline, fault injection arming, guest eject and
host device_del → node offline, failure reports, no QEMU left behind."""

import os
import time

from hotplugd_vm import check, log, scenario
import testbed


def main():
    vm = testbed.VM(name="vm-harness")
    with vm:
        t = vm.timings
        log(f"boot: command channel after {t['agent_ready']:.1f}s, system up after {t['boot']:.1f}s")
        qemu_pid = vm.proc.pid

        with vm.step("command channel"):
            r = vm.run("echo out; echo err >&2; exit 3", check=False)
            check((r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n"), f"rc/stdout/stderr wrong: {r!r}")
            r = vm.run("wc -c", stdin="x" * 100000)
            check(r.stdout.strip() == "100000", f"stdin lost: {r!r}")
            r = vm.run("head -c 1000000 /dev/zero | tr '\\0' a")
            check(r.stdout == "a" * 1000000, f"1 MB of output came back as {len(r.stdout)} bytes")
            t0 = time.monotonic()
            for _ in range(10):
                vm.run("true")
            log(f"command round trip: {(time.monotonic() - t0) / 10 * 1000:.0f} ms")
            try:
                vm.run("sleep 30", timeout=2)
                raise AssertionError("a command outrunning its timeout did not fail")
            except testbed.TestbedError as e:
                check("timed out" in str(e) and "last 40 lines of the guest console" in str(e),
                      f"timeout error lacks step/console: {str(e)[:300]}")
            check(vm.sh("echo still-there") == "still-there", "channel dead after a timeout")

        with vm.step("the guest is a VM with its own sysfs, not the host's"):
            check(vm.sh("systemd-detect-virt") == "qemu", "systemd-detect-virt is not qemu")
            check("memhp_default_state=offline" in vm.read_file("/proc/cmdline"), "kernel cmdline")
            check(vm.sh("cat /sys/devices/system/memory/auto_online_blocks") == "offline",
                  "auto_online_blocks is not offline")
            check(vm.sh("systemctl is-active systemd-udevd dbus") == "active\nactive",
                  "udevd or dbus not active")
            check(vm.sh("findmnt -no FSTYPE /sys") == "sysfs", "/sys is not the guest's sysfs")

        empty = vm.nodes - 1  # QEMU puts the hot-pluggable SRAT range on its last node
        with vm.step("QMP plug of two DIMMs into the empty node"):
            possible, online = vm.node_list("possible"), vm.node_list("online")
            cand = sorted(set(possible) - set(online))
            check(len(cand) == 1, f"expected one possible-but-offline node: {possible} vs {online}")
            gnode = cand[0]
            t0 = time.monotonic()
            d1 = vm.plug_dimm(empty, "256M")
            d2 = vm.plug_dimm(empty, "256M")
            log(f"two DIMMs plugged and visible in {time.monotonic() - t0:.1f}s")
            blocks = vm.blocks()
            mine = vm.dimm_blocks(d1) + vm.dimm_blocks(d2)
            check(len(mine) == 4, f"256M DIMMs should have 2 blocks each: {mine}")
            for b in mine:
                check(blocks[b]["state"] == "offline", f"memory{b} not offline: {blocks[b]}")
                check(blocks[b]["nodes"] == [gnode], f"memory{b} not on guest node {gnode}: {blocks[b]}")
                check("Movable" in blocks[b]["valid_zones"], f"memory{b}: {blocks[b]}")
            check(gnode in vm.node_list("online"), "node did not come online")
            check(gnode not in vm.node_list("has_memory"), "node has memory before onlining")
            devs = {vm.dimm_acpi_device(d1), vm.dimm_acpi_device(d2)}
            check(len(devs) == 2, f"two DIMMs, devices {devs}")

        with vm.step("manual online_movable"):
            for b in mine:
                vm.set_block_state(b, "online_movable")
            blocks = vm.blocks()
            check(all(blocks[b]["valid_zones"] == ["Movable"] for b in mine),
                  f"zones: {[blocks[b] for b in mine]}")
            check(gnode in vm.node_list("has_memory"), "node lacks memory after onlining")

        with vm.step("fault injection: MEM_GOING_OFFLINE"):
            vm.arm_memory_notifier_error("MEM_GOING_OFFLINE", -16)
            r = vm.set_block_state(mine[0], "offline", check=False)
            check(r.rc != 0 and "Device or resource busy" in r.stderr, f"armed offline: {r!r}")
            check(vm.blocks()[mine[0]]["state"] == "online", "block changed state despite the error")
            vm.disarm_memory_notifier_error("MEM_GOING_OFFLINE")
            for b in mine:
                vm.set_block_state(b, "offline")

        with vm.step("fault injection: MEM_GOING_ONLINE"):
            vm.arm_memory_notifier_error("MEM_GOING_ONLINE", -16)
            r = vm.set_block_state(mine[0], "online_movable", check=False)
            check(r.rc != 0 and "Device or resource busy" in r.stderr, f"armed online: {r!r}")
            check(vm.blocks()[mine[0]]["state"] == "offline", "block changed state despite the error")
            vm.disarm_memory_notifier_error("MEM_GOING_ONLINE")
            vm.set_block_state(mine[0], "online_movable")
            vm.set_block_state(mine[0], "offline")

        with vm.step("guest eject → node offline"):
            t0 = time.monotonic()
            for d in (d1, d2):
                vm.eject(vm.dimm_acpi_device(d))
                vm.wait_dimm_deleted(d)
            vm.wait_for(lambda: gnode not in vm.node_list("online"), 30, f"node {gnode} to go offline")
            blocks = vm.blocks()
            check(not set(mine) & set(blocks), f"blocks left: {sorted(set(mine) & set(blocks))}")
            log(f"eject of two DIMMs → node offline in {time.monotonic() - t0:.1f}s")

        with vm.step("host device_del of an online DIMM → node offline"):
            d3 = vm.plug_dimm(empty, "256M")
            for b in vm.dimm_blocks(d3):
                vm.set_block_state(b, "online_movable")
            vm.unplug_dimm(d3)  # the guest kernel offlines the movable blocks itself
            vm.wait_for(lambda: gnode not in vm.node_list("online"), 30, f"node {gnode} to go offline")

        with vm.step("virtio-mem: plug and resize"):
            before = set(vm.blocks())
            vm_dev = vm.plug_virtio_mem(empty, "1G", "256M")
            vm.wait_for(lambda: len(set(vm.blocks()) - before) == 2, 60, "2 virtio-mem blocks")
            check("System RAM (virtio_mem)" in vm.read_file("/proc/iomem"), "no virtio_mem range in /proc/iomem")
            vm.resize_virtio_mem(vm_dev, "512M")
            vm.wait_for(lambda: len(set(vm.blocks()) - before) == 4, 60, "4 virtio-mem blocks after resize")

        with vm.step("a failing step reports the step and the console"):
            try:
                with vm.step("deliberately failing"):
                    check(False, "as intended")
            except testbed.TestbedError as e:
                s = str(e)
                check("step 'deliberately failing' failed" in s and "guest console" in s, s[:300])

        with vm.step("the guest kernel logged no oops, BUG or WARNING"):
            problems = vm.kernel_problems()
            check(not problems, "kernel problems:\n" + "\n---\n".join(problems[:3]))

        t0 = time.monotonic()
        vm.shutdown()
        log(f"shut down in {time.monotonic() - t0:.1f}s")
    with vm.step("no QEMU left behind"):
        check(not os.path.exists(f"/proc/{qemu_pid}") or
              open(f"/proc/{qemu_pid}/stat").read().split()[2] == "Z", f"QEMU {qemu_pid} still runs")


if __name__ == "__main__":
    scenario(main)
