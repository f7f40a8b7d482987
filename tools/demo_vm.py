#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""demo_vm.py BUILD_DIR — the README's main command on a real kernel (run by tools/demo.sh): a QEMU
guest (Debian's kernel, TCG) gets the build installed and runs hotplugd as its hotplugd.service;
two DIMMs are hot-plugged into the guest's empty NUMA node, hotplugd onlines them movable, and
`hotplugctl retire-node` drains, ejects and leaves the node offline. Only the guest's memory is
touched. The guest is always torn down; a failure names the step."""

import contextlib
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "vm"))

import hotplugd_vm  # noqa: E402
import testbed  # noqa: E402
from hotplugd_vm import Fail, HotplugdVM, check  # noqa: E402
from retire_vm import FILL_UNIT, RetireBed, config, extra_files  # noqa: E402

TTY = sys.stdout.isatty()
BOLD, DIM, RED, OFF = ("\033[1m", "\033[2m", "\033[31m", "\033[0m") if TTY else ("", "", "", "")
T0 = time.monotonic()
DATA_MIB = 200


def say(n, text):
    print(f"\n{BOLD}== {n}. {text}{OFF}  {DIM}[{time.monotonic() - T0:.0f}s]{OFF}", flush=True)


CURRENT = ["1. boot the guest"]  # the demo step under way, for the failure message


@contextlib.contextmanager
def section(vm, n, text):
    """A numbered step of the demo: its title, and any failure inside named after it."""
    say(n, text)
    CURRENT[0] = f"{n}. {text}"
    with vm.step(CURRENT[0]):
        yield


def explain(text):
    for line in text.strip().splitlines():
        print(f"   {line.strip()}")
    sys.stdout.flush()


def show(r_or_text, indent="   "):
    text = r_or_text if isinstance(r_or_text, str) else r_or_text.stdout + r_or_text.stderr
    for line in text.rstrip("\n").splitlines():
        print(indent + line)
    sys.stdout.flush()


class Demo:
    def __init__(self, h):
        self.h, self.vm = h, h.vm
        self.R = RetireBed(h)

    def guest(self, cmd, timeout=120, ok=(0,)):
        """Runs cmd in the guest, showing it as typed at a guest prompt, and its output."""
        print(f"{DIM}guest# {cmd}{OFF}")
        r = self.vm.run(cmd, timeout=timeout, check=False, step=f"guest# {cmd}")
        show(r)
        if r.rc not in ok:
            raise self.vm.error(f"guest# {cmd}", f"exit status {r.rc}")
        return r

    def qmp(self, cmd, args):
        print(f"{DIM}qmp> {{\"execute\": \"{cmd}\", \"arguments\": {args}}}{OFF}")

    def run(self):
        vm, R = self.vm, self.R
        nid = R.nid
        dimm_node = R.qnode

        with section(vm, 2, "The guest's NUMA nodes, as hotplugd sees them"):
            explain(f"""QEMU gave the guest 1 GiB of boot memory and both CPUs on node 0, and a hot-pluggable
            memory range on another node with nothing in it yet: the guest calls that node {nid}. Without
            memory and without CPUs it is offline: only "possible".""")
            R.restart(config("online_movable"))
            self.guest("cat /sys/devices/system/node/possible /sys/devices/system/node/online")
            self.guest("hotplugctl list-nodes")
            explain("""hotplugd runs as the guest's hotplugd.service with [Online] Policy=online_movable: new
            memory goes to ZONE_MOVABLE, which can be emptied and unplugged again.""")

        with section(vm, 3, f"Plug two 256 MiB DIMMs into node {nid}, over QEMU's monitor (QMP)"):
            dimms = []
            for _ in range(2):
                n = vm.dimm_seq + 1
                self.qmp("object-add", f'{{"qom-type": "memory-backend-ram", "id": "mem{n}", "size": 268435456}}')
                self.qmp("device_add", f'{{"driver": "pc-dimm", "id": "dimm{n}", "memdev": "mem{n}", "node": {dimm_node}}}')
                dimms.append(vm.plug_dimm(dimm_node, "256M"))
            blocks = [b for d in dimms for b in vm.dimm_blocks(d)]
            check(all(vm.dimm_guest_node(d) == nid for d in dimms), "the DIMMs landed on another node")
            explain(f"""The guest's ACPI sees two new memory devices; its kernel adds 4 memory blocks of 128 MiB
            (memory{blocks[0]}-memory{blocks[-1]}) to node {nid}, offline (auto_online_blocks=offline),
            and node {nid} comes online.""")

        with section(vm, 4, "hotplugd onlines them by its policy: ZONE_MOVABLE"):
            self.h.wait(lambda: all(vm.blocks().get(b, {}).get("state") == "online" for b in blocks), 90,
                        "hotplugd to online the new blocks")
            self.guest(f"hotplugctl list-blocks --node {nid}")
            self.guest("grep -H . " + " ".join(f"/sys/devices/system/memory/memory{b}/valid_zones" for b in blocks))
            self.guest("journalctl -u hotplugd -o cat --no-pager | grep -E 'Onlined|online in zone'")
            z = R.zones(blocks)
            check(all(v == ("online", "Movable") for v in z.values()), f"blocks not online in Movable: {z}")
            self.guest("hotplugctl list-nodes")

        with section(vm, 5, f"A program puts {DATA_MIB} MiB of data on node {nid}"):
            explain(f"""A process bound to node {nid} (set_mempolicy MPOL_BIND) writes {DATA_MIB} MiB: retiring the
            node has to move that data to node 0 while the process runs on.""")
            R.fill(DATA_MIB)
            self.guest(f"grep -E 'MemTotal|MemUsed' /sys/devices/system/node/node{nid}/meminfo")

        with section(vm, 6, f"Can node {nid} be retired? The preflight changes nothing"):
            self.guest(f"hotplugctl plan-retire {nid}")

        with section(vm, 7, f"Retire node {nid}: drain, eject, verify"):
            explain(f"""hotplugd offlines the blocks one at a time in a worker thread (movable first, highest
            address first; the kernel migrates the data), then ejects the two ACPI memory devices: QEMU
            removes the DIMMs, the kernel removes the blocks and, by the rule of "mm/memory_hotplug: Fix
            try_offline_node()", takes node {nid} offline. hotplugctl follows the job: progress on stderr,
            the result on stdout.""")
            t = time.monotonic()
            r = self.guest(f"hotplugctl retire-node {nid} 2>&1", timeout=300)
            took = time.monotonic() - t
            check(re.search(rf"Node {nid} retired in .* and the node is offline\.", r.stdout),
                  "the retire did not end with the node offline")
            for d in dimms:
                vm.wait_dimm_deleted(d, timeout=60)

        with section(vm, 8, f"Node {nid} is offline, the DIMMs are gone, the data lives on node 0"):
            self.guest("cat /sys/devices/system/node/online")
            check(nid not in vm.node_list("online"), f"node {nid} is still online")
            print(f'{DIM}qmp> {{"execute": "query-memory-devices"}}{OFF}')
            left = vm.qmp.execute("query-memory-devices")
            show(f"{left}  (no DIMM left in QEMU)" if not left else str(left))
            check(not left, f"QEMU still has memory devices: {left}")
            self.guest(f"systemctl is-active {FILL_UNIT} && awk '{{for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+=/) "
                       f"{{ split($i, a, \"=\"); p[a[1]] += a[2] }}}} END {{ for (n in p) printf \"process memory on %s: "
                       f"%d MiB\\n\", n, p[n] / 256 }}' /proc/$(systemctl show -p MainPID --value {FILL_UNIT})/numa_maps")
            self.guest("hotplugctl jobs")
            self.guest("journalctl -u hotplugd -o cat --no-pager | grep -E 'Retire job|Job [0-9]|went offline' | tail -14")
            self.guest("cat /var/lib/hotplugd/quarantine")
            explain(f"""Node {nid} is also quarantined (persisted in hotplugd's state directory): memory that
            reappears on it is not onlined by policy until `hotplugctl unquarantine {nid}`.""")
            R.unfill()
        return took


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    os.environ["HOTPLUGD_BUILD_DIR"] = build
    log_path = os.path.join(build, "meson-logs", "demo-testbed.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logf = open(log_path, "w")

    def quiet_log(msg):  # the test bed's own progress lines go to a file, the narration to stdout
        logf.write(f"[testbed {time.strftime('%H:%M:%S')}] {msg}\n")
        logf.flush()
    testbed.log = hotplugd_vm.log = quiet_log
    import retire_vm
    retire_vm.log = quiet_log

    say(1, "Boot a QEMU guest: Debian's kernel under TCG, this machine's root file system read-only")
    explain("""The build is installed into the guest (meson install --destdir); hotplugd runs there under
    systemd. Everything below happens to the guest's memory; this machine's memory is never touched.""")
    try:
        with HotplugdVM("demo", slots=4, maxmem="4G", extra_files=extra_files()) as h:
            explain(f"guest up after {h.vm.timings['boot']:.0f}s (kernel {h.vm.sh('uname -r')})")
            took = Demo(h).run()
        say(9, "Done: the guest is shut down")
        explain(f"retire-node took {took:.1f}s inside the guest; the whole demo {time.monotonic() - T0:.0f}s. "
                f"Test-bed log: {log_path}")
        return 0
    except (testbed.TestbedError, Fail, AssertionError) as e:
        print(f"\n{RED}{BOLD}demo failed in step \"{CURRENT[0]}\"{OFF} after {time.monotonic() - T0:.0f}s "
              f"(the guest is shut down):\n{e}\n(test-bed log: {log_path})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
