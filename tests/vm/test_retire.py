#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_retire.py SCENARIO... — `hotplugctl retire-node` on the real kernel (issue "retire-node",
"Scenarios on the real kernel"). The scenarios named on the command line run one after the other
on one guest (tests/vm/meson.build groups those that do not interfere); each starts from the
empty node with a freshly started hotplugd and an empty state directory, and ends with the node
empty again when another scenario may follow.

  seed       two DIMMs into the memory-less, CPU-less node, onlined movable; retire-node drains,
             ejects, the node goes offline; progress and result; no trace in the model; quarantine
  transient  EBUSY injected for ~3 s (memory-notifier-error-inject): the retire succeeds after retries
  permanent  EBUSY injected for good after some blocks went offline: the retire fails naming the
             block and the errno, every block is online again in its own zone
  cancel     a drain of a node full of data, cancelled while a block is going offline: the kernel
             write and the job stop within a second, and what was offlined comes back
  crash      kill -9 of hotplugd during a drain: systemd restarts it, the journal is reconciled
             (OnCrash=rollback, the default: rolled back; OnCrash=resume: the retire completes)
  killpoints kill -9 at three more moments, each caught by a watcher that stops hotplugd the
             instant its job journal records it: the drain's start, the rollback, the eject;
             the restarted daemon rolls back (the first two) or completes the retire (the eject)
  refusals   node with CPUs, node 0's kernel memory, nodes that do not exist, a node already being
             retired, an unprivileged caller (the guest's polkitd): refused, nothing changed
"""

import re
import sys
import time

from hotplugd_vm import UNIT, HotplugdVM, Fail, check, log, model_node, scenario
from retire_vm import BUS, ERR, FILL_UNIT, RetireBed, config, extra_files, note

MOVABLE = ("online", "Movable")
NORMAL = ("online", "Normal")
TIMES = {}


def drain_order(zones):
    """hotplugd's drain order for {block: (state, zone)}: movable first, highest address first."""
    online = [b for b, (s, _) in zones.items() if s == "online"]
    return (sorted([b for b in online if zones[b][1] == "Movable"], reverse=True) +
            sorted([b for b in online if zones[b][1] != "Movable"], reverse=True))


def offline_lines(journal, jid):
    """Blocks in the order the job logged them offline."""
    return [int(b) for b in re.findall(rf"Retire job {jid}: memory block (\d+) offline after", journal)]


# ------------------------------------------------------------------------------------------------
# 1. The seed's test, end to end


def seed(R):
    h, vm, nid = R.h, R.vm, R.nid
    with vm.step("start hotplugd (Policy=online_movable)"):
        R.restart(config("online_movable"))
        check(not R.node_online(), f"node {nid} is online before any plug")

    with vm.step(f"plug two DIMMs into node {nid}; hotplugd onlines them movable"):
        dimms, blocks = R.plug(2)
        devices = {d: vm.dimm_acpi_device(d) for d in dimms}
        z = R.zones(blocks)
        check(all(v == MOVABLE for v in z.values()), f"blocks not online in Movable: {z}")
        r = R.ctl(f"list-blocks --node {nid}", expect=0)
        check(re.search(r"512M\s+online\s+%d\s+Movable" % nid, r.stdout), f"list-blocks --node {nid}:\n{r.stdout}")
        r = R.ctl(f"plan-retire {nid}", expect=0)
        check("Node can be retired." in r.stdout, f"plan-retire {nid}:\n{r.stdout}")
        order = drain_order(z)

    with vm.step(f"hotplugctl retire-node {nid}: drain, eject, node offline"):
        R.monitor_start()
        t0 = time.monotonic()
        r = R.ctl(f"retire-node {nid}", timeout=300, expect=0)
        took = time.monotonic() - t0
        log(f"retire-node {nid} took {took:.1f}s (hotplugctl)\n--- stderr ---\n{r.stderr}--- stdout ---\n{r.stdout}")
        m = re.search(rf"^Job (\d+): retiring node {nid} \(hotplugctl cancel \1 stops it\)\.$", r.stderr, re.M)
        check(m, f"no job line on stderr: {r.stderr!r}")
        jid = int(m.group(1))
        progress = re.findall(r"^running: (\d+)%, (\d+)/(\d+) blocks, \S+/512M", r.stderr, re.M)
        check(progress and all(t == "4" for _, _, t in progress), f"no progress lines for 4 blocks: {r.stderr!r}")
        # What hotplugctl printed depends on when it looked; the job object published every step.
        done = [e["changed"]["BlocksDone"] for e in R.monitor_events()
                if e.get("path", "").endswith(f"/job/{jid}") and "BlocksDone" in (e.get("changed") or {})]
        log(f"job {jid} BlocksDone as published on the bus: {done}")
        check(done and done == sorted(done) and done[-1] == 4, f"the job's BlocksDone went {done}")
        # Progress signals are rate-limited (250 ms, the latest values win): a drain of empty
        # blocks under a second may go from 0 to 4 in one step. Worth a note, not a failure.
        if not (set(done) & {1, 2, 3} or any(d in "123" for _, d, _ in progress)):
            note("no progress between 0 and 4 blocks was seen (progress signals are rate-limited to one per 250 ms)")
        result = r.stdout.strip()
        check(re.fullmatch(rf"Node {nid} retired in [\d.]+ s: 4 blocks \(512 MiB\) drained, 2 memory devices "
                           rf"ejected, and the node is offline\.", result), f"final result: {result!r}")

    with vm.step("QEMU deleted both DIMMs; the guest has neither their blocks nor the node"):
        for d in dimms:
            vm.wait_dimm_deleted(d, timeout=60)
        check(not R.node_online(), f"node {nid} still in /sys/devices/system/node/online")
        left = sorted(set(blocks) & set(vm.blocks()))
        check(not left, f"blocks still present: {left}")
        log(f"guest /sys/devices/system/node/online: {vm.sh('cat /sys/devices/system/node/online')}")

    with vm.step(f"job {jid}: completed with the result; the journal shows the drain order and the eject"):
        j = R.job(jid)
        check(j and j["state"] == "completed" and j["result"] == result and j["progress"] == 1,
              f"hotplugctl jobs: {j}")
        journal = h.journal(400)
        got = offline_lines(journal, jid)
        check(got == order, f"blocks went offline in the order {got}, expected {order} (movable, highest first)")
        for dev in devices.values():
            check(f"Retire job {jid}: ejected {dev}." in journal, f"no eject of {dev} in the journal")
        check(not R.job_journals(), f"job journal left in the state directory: {R.job_journals()}")

    with vm.step("no trace of the node's blocks in the model (live and fresh) or in hotplugctl"):
        R.check_no_trace(blocks, "after the retire")

    with vm.step(f"node {nid} is quarantined: memory plugged again stays offline"):
        check(nid in R.quarantined(), f"quarantine list {R.quarantined()} lacks node {nid}")
        r = R.ctl(f"unquarantine {nid}")
        if r.rc != 0:
            note(f"`hotplugctl unquarantine {nid}` on the retired (offline) node fails: "
                             f"{r.stderr.strip()!r}; the quarantine can only be lifted once memory is back")
        d = vm.plug_dimm(R.qnode, "256M")
        again = vm.dimm_blocks(d)
        h.settle()
        live = h.live_model()  # once it answers, hotplugd has handled the add events
        z = R.zones(again)
        check(all(s[0] == "offline" for s in z.values()), f"quarantined node got memory onlined: {z}")
        n = model_node(live, nid)
        check(n and n.get("quarantined") is True, f"live model node {nid}: {n}")
        r = R.ctl(f"show-node {nid}", expect=0)
        check(re.search(r"Quarantined: yes", r.stdout), f"show-node {nid}:\n{r.stdout}")
        R.empty()


# ------------------------------------------------------------------------------------------------
# 2. Transient failure


def transient(R):
    h, vm, nid = R.h, R.vm, R.nid
    with vm.step("start hotplugd (Retries=6, RetryBackoffSec=1)"):
        R.restart(config("online_movable", Retries=6, RetryBackoffSec=1))
        dimms, blocks = R.plug(2)
        before = R.zones(blocks)
        check(all(v == MOVABLE for v in before.values()), f"zones: {before}")
        first = drain_order(before)[0]

    with vm.step("MEM_GOING_OFFLINE fails with EBUSY for about 3 s while the retire starts"):
        inj0 = injections(vm)
        vm.arm_memory_notifier_error("MEM_GOING_OFFLINE", -16)
        t0 = time.monotonic()
        jid = R.start_retire()
        # The ~3 s count from the first failed write, however long the start took.
        vm.wait_for(lambda: injections(vm) > inj0, 60, "the first offline write to fail", interval=0.1)
        t1 = time.monotonic()
        time.sleep(3)
        vm.disarm_memory_notifier_error("MEM_GOING_OFFLINE")
        failed_tries = injections(vm) - inj0
        log(f"injection armed for {time.monotonic() - t0:.1f}s ({time.monotonic() - t1:.1f}s after the first failure): "
            f"{failed_tries} offline writes failed with -16")

    with vm.step(f"job {jid} succeeds after retries; the node is retired"):
        j = R.wait_job(jid, timeout=240)
        log(f"job {jid}: {j['state']}: {j['result']}")
        check(j["state"] == "completed", f"job {jid}: {j}")
        check(re.fullmatch(rf"Node {nid} retired in [\d.]+ s: 4 blocks \(512 MiB\) drained after retries, "
                           rf"2 memory devices ejected, and the node is offline\.", j["result"]),
              f"result does not show the retries: {j['result']!r}")
        journal = h.journal(400)
        tries = re.findall(rf"Retire job {jid}: memory block (\d+) did not go offline \(Device or resource busy\), "
                           rf"try (\d+) of 7 in ([\d.]+) s\.", journal)
        log(f"retries logged: {tries}")
        check(tries and all(int(b) == first for b, _, _ in tries),
              f"no 'did not go offline ... try N of 7' lines for memory{first}:\n{journal[-3000:]}")
        check([int(t) for _, t, _ in tries] == list(range(2, 2 + len(tries))), f"tries not counted up: {tries}")
        check(len(tries) == failed_tries, f"{len(tries)} retries logged, {failed_tries} injected failures")
        waits = [float(w) for _, _, w in tries]
        check(all(b == 2 * a for a, b in zip(waits, waits[1:])) and waits[0] == 1.0,
              f"backoff is not 1 s doubling: {waits}")
        for d in dimms:
            vm.wait_dimm_deleted(d, timeout=60)
        check(not R.node_online(), f"node {nid} still online")
        check(not R.job_journals(), f"job journal left: {R.job_journals()}")


def injections(vm, action="MEM_GOING_OFFLINE"):
    """How often the guest kernel injected -16 into action so far (one dmesg line per failed write)."""
    return len(re.findall(rf"Injecting error \(-16\) to {action}", vm.run("dmesg", check=False).stdout))


def enable_offline_failure_log(vm):
    """The kernel reports each failed offline_pages() call ("memory offlining [mem A-B] failed due
    to REASON") with pr_debug: switch it on for mm/memory_hotplug.c (needs debugfs, mounted by
    arm_memory_notifier_error)."""
    vm.run("echo 'file memory_hotplug.c +p' > /sys/kernel/debug/dynamic_debug/control", step="dynamic debug on")


def offline_failures(vm, since=0):
    """[(first block, reason)] of the failed offline attempts the kernel logged, from dmesg line
    `since` on; and the number of dmesg lines now (the next `since`)."""
    lines = vm.run("dmesg", check=False).stdout.splitlines()
    bs = vm.block_size()
    out = [(int(m.group(1), 16) // bs, m.group(2)) for m in
           (re.search(r"memory offlining \[mem (0x[0-9a-f]+)-0x[0-9a-f]+\] failed due to (.+)$", l)
            for l in lines[since:]) if m]
    return out, len(lines)


# ------------------------------------------------------------------------------------------------
# 3. Permanent failure


# Arms the injection from inside the guest the moment the given blocks are all offline: the drain
# runs on without a pause between blocks, so only a watcher next to it hits the point between two
# blocks reliably. Spins on `read` (a shell builtin: no fork per poll, the clock from /proc/uptime).
ARM_WHEN_OFFLINE = r"""
FI=/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error
M=/sys/devices/system/memory
read up _ < /proc/uptime; end=$(( ${up%.*} + 120 ))
while :; do
  n=0
  for b in @BLOCKS@; do read s < $M/memory$b/state; [ "$s" = offline ] && n=$((n+1)); done
  [ $n -eq @COUNT@ ] && break
  read up _ < /proc/uptime
  [ ${up%.*} -ge $end ] && { echo "gave up: @BLOCKS@ never all offline"; exit 1; }
done
echo -16 > $FI
echo "armed after @BLOCKS@ went offline"
"""


def permanent(R):
    h, vm, nid = R.h, R.vm, R.nid
    with vm.step("start hotplugd (Policy=offline, Retries=3, RetryBackoffSec=1)"):
        R.restart(config("offline", Retries=3, RetryBackoffSec=1))

    with vm.step("three DIMMs: one onlined Movable, two Normal (by hand, all plugged first)"):
        # All plugged before any is onlined: the memory map of a later DIMM would otherwise be
        # allocated from the node's own Normal zone and pin it.
        dimms, blocks = R.plug(3, online=False)
        want = {}
        for d, zone in zip(dimms, ("online_movable", "online_kernel", "online_kernel")):
            for b in vm.dimm_blocks(d):
                vm.set_block_state(b, zone)
                want[b] = MOVABLE if zone == "online_movable" else NORMAL
        before = R.zones(blocks)
        check(before == want, f"zones after the hand onlining: {before}, wanted {want}")
        order = drain_order(before)
        # Fail from the fourth block on: two Movable and one Normal block are offline by then.
        arm_after = order[:3]
        log(f"drain order {order}; the injection is armed once memory{arm_after} are offline")
        vm.arm_memory_notifier_error("MEM_GOING_OFFLINE", -16)  # loads the module, mounts debugfs
        vm.disarm_memory_notifier_error("MEM_GOING_OFFLINE")
        enable_offline_failure_log(vm)
        vm.write_file("/run/hpvm-arm.sh", ARM_WHEN_OFFLINE.replace("@BLOCKS@", " ".join(map(str, arm_after)))
                      .replace("@COUNT@", str(len(arm_after))))
        vm.run("systemd-run --unit=hpvm-arm --collect sh /run/hpvm-arm.sh")

    try:
        with vm.step(f"hotplugctl retire-node {nid} fails: the injection stays on"):
            _, since = offline_failures(vm)
            r = R.ctl(f"--verbose retire-node {nid}", timeout=300, expect=1)
            log(f"retire-node {nid}: rc {r.rc}\n--- stderr ---\n{r.stderr}")
            armed = vm.run("journalctl -u hpvm-arm -o cat --no-pager", check=False).stdout
            failures, _ = offline_failures(vm, since)
            log(f"watcher: {armed.strip()!r}; failed offline attempts the kernel logged: {failures}")
            m = re.search(r"^Memory block (\d+) did not go offline after 4 tries \(Device or resource busy\)\. "
                          r"Rolled back: (\d+) blocks are online again in their zones\. \[" + re.escape(ERR) + r"Busy\]$",
                          r.stderr, re.M)
            check(m, f"the result does not name the block and EBUSY: {r.stderr!r}")
            bad, rolled = int(m.group(1)), int(m.group(2))
            check(rolled == order.index(bad), f"rolled back {rolled} blocks, but {order.index(bad)} went offline "
                                              f"before memory{bad}")
            # The permanent EBUSY is the injection, or — on a Normal block — the kernel's own
            # unmovable pages, whichever comes first (a kernel allocation often lands in the
            # first Normal block). Either way: exactly the 4 tries on that block failed in the
            # kernel, and every block drained before it went offline at its first try.
            check([b for b, _ in failures] == [bad] * 4, f"the kernel logged {failures}, expected 4 failures "
                                                         f"of memory{bad} and no other")
            # EBUSY reasons of 6.1's offline_pages(); "signal backoff" (EINTR) would be a timeout.
            reasons = {"notifier failure", "failure to isolate range", "unmovable page",
                       "failure to dissolve huge pages"}
            check(all(why in reasons for _, why in failures), f"failure reasons: {failures}")
            check("armed after" in armed or any(why != "notifier failure" for _, why in failures),
                  f"neither the injection nor the kernel failed the drain: {armed}")
            injected = sum(why == "notifier failure" for _, why in failures)
            log(f"memory{bad} failed 4 times: {injected} injected, {4 - injected} by the kernel's unmovable pages")
            jid = int(re.search(r"^Job (\d+):", r.stderr, re.M).group(1))
            j = R.job(jid)
            check(j["state"] == "failed" and j["result"] in r.stderr, f"hotplugctl jobs: {j}")
            tries = re.findall(rf"Retire job {jid}: memory block {bad} did not go offline \(Device or resource busy\), "
                               r"try (\d) of 4", h.journal(400))
            check(tries == ["2", "3", "4"], f"journal retries of memory{bad}: {tries}")

        with vm.step("every block is online again in the zone it had; nothing else changed"):
            after = R.zones(blocks)
            check(after == before, f"zones after the failed retire: {after}, before: {before}")
            log(f"rolled back into their zones: {[(b, after[b][1]) for b in order[:rolled]]}")
            check(R.node_online(), f"node {nid} went offline")
            check(nid not in R.quarantined(), "a failed retire left the node quarantined")
            check(set(dimms) <= set(vm.memory_devices()), "a DIMM was ejected")
            check(not R.job_journals(), f"job journal left: {R.job_journals()}")
            live = h.wait_live_equals_fresh()
            n = model_node(live, nid)
            check(n["online_blocks"] == 6 and n["offline_blocks"] == 0 and not n["quarantined"], f"model: {n}")
    finally:
        vm.run("systemctl stop hpvm-arm 2>/dev/null; /bin/echo 0 > "
               "/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error", check=False)


# ------------------------------------------------------------------------------------------------
# 4. Cancel in the middle of a drain


# Run in the guest: cancel JOB while a watcher, started first, timestamps the moment the block
# whose write is in flight leaves "going-offline" (the kernel's offline_pages() returned). Times
# of the guest's realtime clock ($EPOCHREALTIME: bash, no fork), as in hotplugctl monitor's JSON
# and the journal.
CANCEL = r"""
B=/sys/devices/system/memory/memory@BLOCK@/state
( while read s < $B && [ "$s" = going-offline ]; do :; done; echo "$EPOCHREALTIME $s" > /run/hpvm-write-ended ) &
w=$!
t0=$EPOCHREALTIME
hotplugctl cancel @JOB@; rc=$?
t1=$EPOCHREALTIME
wait $w
read t2 s < /run/hpvm-write-ended
echo "rc=$rc cancel=$t0 returned=$t1 write_ended=$t2 block_state=$s"
"""


def cancel(R):
    h, vm, nid = R.h, R.vm, R.nid
    with vm.step("start hotplugd (Reserve=64M: the data must fit the other node)"):
        R.restart(config("online_movable", Reserve="64M"))
        dimms, blocks = R.plug(2)
        before = R.zones(blocks)
        check(all(v == MOVABLE for v in before.values()), f"zones: {before}")
        order = drain_order(before)

    with vm.step("fill the node with data; pin a few pages of the third block of the drain"):
        st = R.fill(380, pin_blocks=order[2:])
        stuck = st["pinned_block"]
        n_before = order.index(stuck)
        r = R.ctl(f"plan-retire {nid}", expect=0)
        m = re.search(r"To migrate: (\d+)M", r.stdout)
        check(m and int(m.group(1)) >= 300, f"plan-retire does not see the data:\n{r.stdout}")

    with vm.step(f"retire node {nid}; wait until {n_before} blocks are drained and memory{stuck} is going offline"):
        R.monitor_start()
        used0 = R.node_mem_used_mib()
        jid = R.start_retire()
        vm.wait_guest(" && ".join([f"grep -qx offline /sys/devices/system/memory/memory{b}/state" for b in order[:n_before]] +
                                  [f"grep -qx going-offline /sys/devices/system/memory/memory{stuck}/state"]),
                      timeout=180, what=f"memory{order[:n_before]} offline and memory{stuck} going offline")
        time.sleep(2)  # well inside the write: it does not end by itself
        check(vm.sh(f"cat /sys/devices/system/memory/memory{stuck}/state") == "going-offline",
              f"memory{stuck} is no longer going offline")
        j = R.job(jid)
        check(j["state"] == "running", f"job {jid}: {j}")
        check(R.job_property(jid, "CurrentBlock") == stuck and R.job_property(jid, "BlocksDone") == n_before,
              "job progress does not show the block in flight")
        used1 = R.node_mem_used_mib()
        log(f"node {nid} MemUsed {used0} MiB before the retire, {used1} MiB with {n_before} blocks drained")
        check(used1 < used0, "the drained blocks' data did not move")

    with vm.step(f"hotplugctl cancel {jid}: the write stops and the job changes state within a second"):
        vm.write_file("/run/hpvm-cancel.sh", CANCEL.replace("@JOB@", str(jid)).replace("@BLOCK@", str(stuck)))
        r = vm.run("bash /run/hpvm-cancel.sh", timeout=120)
        v = dict(kv.split("=", 1) for kv in r.stdout.split())
        for k in ("cancel", "returned", "write_ended"):
            v[k] = round(float(v[k]) * 1e6)
        check(v["rc"] == "0", f"hotplugctl cancel failed: {r.stdout} {r.stderr}")
        j = R.wait_job(jid, timeout=120)
        events = R.monitor_events()
        changes = R.job_state_changes(events, jid)
        t0 = int(v["cancel"])
        # When hotplugd got the request: its own log line, realtime µs like the rest.
        m = re.search(rf"^(\d+)\.(\d+) \S+ hotplugd\[\d+\]: Job {jid} cancelled by ",
                      vm.run(f"journalctl -u {UNIT} -o short-unix --no-pager | tail -50", check=False).stdout, re.M)
        check(m, "hotplugd did not log the cancel request")
        t_daemon = int(m.group(1)) * 1000000 + int(m.group(2).ljust(6, "0")[:6])
        after = [(ts, s) for ts, s in changes if ts >= t0]
        check(after, f"no state change of job {jid} after the cancel: {changes}")
        first_ts, first_state = after[0]
        t_write = int(v["write_ended"])
        sec = lambda a, b: (a - b) / 1e6  # noqa: E731
        TIMES["cancel: request in hotplugd → kernel write ended"] = sec(t_write, t_daemon)
        TIMES["cancel: request in hotplugd → job state change"] = sec(first_ts, t_daemon)
        TIMES["cancel: `hotplugctl cancel` started → job state change"] = sec(first_ts, t0)
        log(f"cancel: `hotplugctl cancel` started at 0, hotplugd got the request at {sec(t_daemon, t0):.3f}s, "
            f"the kernel write of memory{stuck} ended at {sec(t_write, t0):.3f}s, job state {first_state!r} at "
            f"{sec(first_ts, t0):.3f}s, {after[-1][1]!r} at {sec(after[-1][0], t0):.3f}s, hotplugctl returned at "
            f"{sec(int(v['returned']), t0):.3f}s; states {[s for _, s in after]}")
        check(first_state in ("rolling-back", "cancelled"), f"first state after the cancel: {first_state}")
        check(v["block_state"] == "online", f"memory{stuck} is {v['block_state']} after the interrupted write")
        check(sec(t_write, t_daemon) < 1.0, f"the kernel write went on {sec(t_write, t_daemon):.2f}s after hotplugd got the cancel")
        check(sec(first_ts, t_daemon) < 1.0, f"the job changed state {sec(first_ts, t_daemon):.2f}s after hotplugd got the cancel")
        # Including hotplugctl's own start (slow under TCG): a sanity bound, not the claim.
        check(sec(first_ts, t0) < 3.0, f"the job changed state {sec(first_ts, t0):.2f}s after `hotplugctl cancel` started")

    with vm.step(f"job {jid} cancelled and rolled back: every block online in Movable again"):
        check(j["state"] == "cancelled", f"job {jid}: {j}")
        check(j["result"] == f"Cancelled during the drain of block {stuck}. Rolled back: {n_before} blocks are "
                             f"online again in their zones.", f"result: {j['result']!r}")
        check(R.job_property(jid, "Error") == ERR + "Cancelled", "job Error is not Cancelled")
        after = R.zones(blocks)
        check(after == before, f"zones after the cancel: {after}, before: {before}")
        check(R.node_online() and nid not in R.quarantined(), "node offline or quarantined after a cancel")
        check(not R.job_journals(), f"job journal left: {R.job_journals()}")
        check(vm.run(f"systemctl is-active {FILL_UNIT}", check=False).stdout.strip() == "active",
              "the process whose data was moved died")
        h.wait_live_equals_fresh()
        R.unfill()
        R.empty()


# ------------------------------------------------------------------------------------------------
# 5. kill -9 during a drain


def recovered_retire_completed(R, rid, phase, dimms, blocks, timeout=180, ejected="2"):
    """The job recovered from a journal interrupted in `phase` completed the retire of two
    256 MiB DIMMs: result, devices gone, node offline and quarantined, no journal, no trace.
    `ejected`: how the result counts the devices (a regex): a job recovered after its eject began
    does not know which went before the restart and says "its memory devices ejected"."""
    vm, nid = R.vm, R.nid
    j = R.wait_job(rid, timeout=timeout)
    log(f"recovered job {rid}: {j['state']}: {j['result']}")
    check(j["state"] == "completed", f"job {rid}: {j}")
    check(re.fullmatch(rf"Interrupted by a restart of hotplugd \(in its {phase} phase\) and recovered: Node {nid} "
                       rf"retired in [\d.]+ s: 4 blocks \(512 MiB\) drained, (?:{ejected}) memory devices ejected, and the node "
                       r"is offline\.", j["result"]), f"result: {j['result']!r}")
    for d in dimms:
        vm.wait_dimm_deleted(d, timeout=60)
    check(not R.node_online(), f"node {nid} still online")
    check(not R.job_journals(), f"job journal left: {R.job_journals()}")
    check(nid in R.quarantined(), "the retired node is not quarantined")
    R.check_no_trace(blocks, f"after the job recovered in its {phase} phase")


def crash(R):
    h, vm, nid = R.h, R.vm, R.nid

    def crash_during_drain(conf, what):
        """Starts a retire of the node full of data, kills hotplugd -9 while the third block's write
        is in flight, waits for systemd to restart it; returns (old job, blocks, zones before,
        order, stuck block, the recovered job's id)."""
        with vm.step(f"[{what}] start hotplugd, two DIMMs, data with pages pinned in the third block"):
            R.restart(conf)
            dimms, blocks = R.plug(2)
            before = R.zones(blocks)
            order = drain_order(before)
            st = R.fill(380, pin_blocks=order[2:])
            stuck = st["pinned_block"]
        with vm.step(f"[{what}] retire; kill -9 hotplugd while memory{stuck} is going offline"):
            jid = R.start_retire()
            n_before = order.index(stuck)
            vm.wait_guest(" && ".join([f"grep -qx offline /sys/devices/system/memory/memory{b}/state" for b in order[:n_before]] +
                                      [f"grep -qx going-offline /sys/devices/system/memory/memory{stuck}/state"]),
                          timeout=180, what=f"memory{order[:n_before]} offline and memory{stuck} going offline")
            journal_file = vm.read_file(f"/var/lib/hotplugd/job-{jid}.journal")
            check("phase=drain" in journal_file and f"block={stuck} Movable offlining" in journal_file and
                  all(f"block={b} Movable offlined" in journal_file for b in order[:n_before]),
                  f"the job journal does not record the drain:\n{journal_file}")
            pid = R.main_pid()
            restarts = int(vm.sh(f"systemctl show -p NRestarts --value {UNIT}"))
            vm.run(f"kill -9 {pid}")
            t_kill = time.monotonic()
            vm.wait_for(lambda: R.main_pid() not in (0, pid) and vm.sh(f"systemctl is-active {UNIT} || true") == "active",
                        60, "systemd to restart hotplugd")
            log(f"hotplugd (pid {pid}) killed; running again as pid {R.main_pid()} after {time.monotonic() - t_kill:.1f}s")
            check(int(vm.sh(f"systemctl show -p NRestarts --value {UNIT}")) == restarts + 1, "NRestarts did not count up")
            check(f"{UNIT}: Main process exited, code=killed, status=9/KILL" in h.journal(80), "systemd saw no SIGKILL")
            found = re.compile(rf"Found the journal of a retire of node {nid} interrupted in its drain phase "
                               rf"\({n_before + 1} blocks recorded\); recovering it as job (\d+)\.")
            m = h.wait(lambda: found.search(h.journal(80)), 30, "hotplugd to recover the job journal")
            return dimms, blocks, before, order, stuck, int(m.group(1))

    # ---- OnCrash= not set: rollback is the default
    t0 = time.monotonic()
    dimms, blocks, before, order, stuck, rid = crash_during_drain(
        config("online_movable", Reserve="64M"), "OnCrash=rollback (default)")
    n_before = order.index(stuck)
    with vm.step(f"recovered job {rid}: rolled back, result says it was interrupted; nothing stranded"):
        j = R.wait_job(rid, timeout=120)
        log(f"recovered job {rid}: {j['state']}: {j['result']}")
        check(j["state"] == "failed", f"job {rid}: {j}")
        check(j["result"] == "Interrupted by a restart of hotplugd (in its drain phase) and recovered: Interrupted by "
                             "a restart of hotplugd during the drain (OnCrash=rollback). Rolled back: "
                             f"{n_before} blocks are online again in their zones.", f"result: {j['result']!r}")
        after = R.zones(blocks)
        check(after == before, f"zones after recovery: {after}, before: {before}")
        check(not [b for b, s in R.zones().items() if s[0] != "online"], "offline blocks left on the node")
        check(not R.job_journals(), f"job journal left: {R.job_journals()}")
        check(nid not in R.quarantined() and R.node_online(), "node quarantined or offline after a rollback")
        h.wait_live_equals_fresh()
    TIMES["crash: rollback"] = time.monotonic() - t0

    # ---- OnCrash=resume: the recovered job goes on and completes once the pages are free
    R.unfill()
    R.empty()
    t0 = time.monotonic()
    dimms, blocks, before, order, stuck, rid = crash_during_drain(
        config("online_movable", Reserve="64M", OnCrash="resume"), "OnCrash=resume")
    with vm.step(f"recovered job {rid} resumes the drain; releasing the pinned pages lets it finish"):
        h.wait(lambda: f"Retire job {rid} (recovered): OnCrash=resume, going on with the drain of node {nid}." in h.journal(60),
               30, "the recovered job to resume the drain")
        vm.wait_guest(f"grep -qx going-offline /sys/devices/system/memory/memory{stuck}/state", timeout=60,
                      what=f"the resumed drain to be offlining memory{stuck} again")
        check(R.job(rid)["state"] == "running", f"recovered job: {R.job(rid)}")
        R.unfill()
        recovered_retire_completed(R, rid, "drain", dimms, blocks, timeout=240)
    TIMES["crash: resume"] = time.monotonic() - t0


# ------------------------------------------------------------------------------------------------
# 5b. More kill points: the moment the job journal first records the drain, the rollback, the eject


# Stops hotplugd (SIGSTOP: nothing moves between that moment and the test's kill -9) as soon as a
# job journal in the state directory records a line matching PATTERN (a regular expression, whole
# line). Woken by inotify when hotplugd renames a new journal into place, so it neither misses a
# phase that lasts a few milliseconds (the rollback of two blocks: ~50 ms under TCG) nor takes CPU
# from hotplugd while it waits: a shell loop polling the files missed that window once.
STOP_AT = r"""
import ctypes, os, re, select, signal, sys, time
pid, pattern, d = int(sys.argv[1]), re.compile(sys.argv[2]), "/var/lib/hotplugd"
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80
if fd < 0 or libc.inotify_add_watch(fd, d.encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
    print("inotify failed: errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(2)

def check():
    for name in os.listdir(d):
        if not (name.startswith("job-") and name.endswith(".journal")):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            if pattern.fullmatch(line):
                os.kill(pid, signal.SIGSTOP)
                print("stopped at: " + line, flush=True)
                sys.exit(0)

print("watching", flush=True)
check()
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    if select.select([fd], [], [], 1.0)[0]:
        try:
            os.read(fd, 65536)
        except BlockingIOError:
            pass
        check()
print("gave up: no journal line matched " + pattern.pattern, flush=True)
sys.exit(1)
"""


def killpoints(R):
    h, vm, nid = R.h, R.vm, R.nid

    def kill_at(pattern, what):
        """Arms the watcher on hotplugd's current PID; returns a function that waits until it
        stopped hotplugd, kills it -9, waits for systemd's restart and for the recovery; that
        function returns (journal line it stopped at, the recovered job's id)."""
        pid = R.main_pid()
        unit = f"hpvm-stop-{pid}"   # its own unit (and journal) per kill point
        vm.write_file(f"/run/{unit}.py", STOP_AT)
        vm.run(f"systemd-run --unit={unit} --collect /usr/bin/python3 /run/{unit}.py {pid} '{pattern}'")
        vm.wait_for(lambda: "watching" in vm.run(f"journalctl -u {unit} -o cat --no-pager", check=False).stdout,
                    60, f"the watcher for {pattern} to start")

        def finish():
            with vm.step(f"[{what}] hotplugd stopped at the kill point, kill -9, systemd restarts it"):
                vm.wait_for(lambda: "stopped at" in vm.run(f"journalctl -u {unit} -o cat --no-pager", check=False).stdout,
                            120, f"the watcher to stop hotplugd at {pattern}")
                line = re.search(r"stopped at: (.*)", vm.run(f"journalctl -u {unit} -o cat --no-pager").stdout).group(1)
                state = vm.sh(f"grep State /proc/{pid}/status || true")
                check("stopped" in state, f"hotplugd (pid {pid}) is not stopped: {state!r}")
                journal = vm.sh("cat /var/lib/hotplugd/job-*.journal")
                vm.run(f"kill -9 {pid}")
                vm.wait_for(lambda: R.main_pid() not in (0, pid) and
                            vm.sh(f"systemctl is-active {UNIT} || true") == "active", 60, "systemd to restart hotplugd")
                phase = re.search(r"^phase=(\w+)$", journal, re.M).group(1)
                found = re.compile(rf"Found the journal of a retire of node {nid} interrupted in its {phase} phase "
                                   r"\(\d+ blocks recorded\); recovering it as job (\d+)\.")
                m = h.wait(lambda: found.search(h.journal(80)), 30, "hotplugd to recover the job journal")
                log(f"[{what}] stopped at journal line {line!r} (phase {phase}); recovered as job {m.group(1)}")
                return line, phase, int(m.group(1))
        return finish

    def rolled_back(rid, before, blocks, what):
        with vm.step(f"[{what}] recovered job {rid} rolls back; every block online in its zone, nothing left"):
            j = R.wait_job(rid, timeout=180)
            log(f"[{what}] recovered job {rid}: {j['state']}: {j['result']}")
            check(j["state"] == "failed" and j["result"].startswith("Interrupted by a restart of hotplugd"),
                  f"job {rid}: {j}")
            after = R.zones(blocks)
            check(after == before, f"zones after recovery: {after}, before: {before}")
            check(not R.job_journals(), f"job journal left: {R.job_journals()}")
            check(nid not in R.quarantined() and R.node_online(), "node quarantined or offline after a rollback")
            h.wait_live_equals_fresh()

    # ---- 1. the journal's first record of the drain (the first block write may be in flight)
    what = "drain starts"
    with vm.step(f"[{what}] hotplugd, two DIMMs online movable"):
        R.restart(config("online_movable"))
        dimms, blocks = R.plug(2)
        before = R.zones(blocks)
    finish = kill_at("phase=drain", what)
    R.start_retire()
    line, phase, rid = finish()
    check(phase == "drain", f"stopped in phase {phase}")
    rolled_back(rid, before, blocks, what)
    R.empty()

    # ---- 2. the rollback: the third block's pages are pinned, its write times out (Retries=0),
    # the two blocks offlined before it are being onlined again when hotplugd stops
    what = "rollback"
    with vm.step(f"[{what}] hotplugd (BlockTimeoutSec=3, Retries=0), two DIMMs, pages pinned in the third block"):
        R.restart(config("online_movable", Reserve="64M", BlockTimeoutSec=3, Retries=0))
        dimms, blocks = R.plug(2)
        before = R.zones(blocks)
        order = drain_order(before)
        st = R.fill(380, pin_blocks=order[2:])
    finish = kill_at("phase=rollback", what)
    R.start_retire()
    line, phase, rid = finish()
    check(phase == "rollback", f"stopped in phase {phase}")
    R.unfill()
    rolled_back(rid, before, blocks, what)
    R.empty()

    # ---- 3. the eject: the blocks are offline, the devices' eject is written (or about to be)
    what = "eject"
    with vm.step(f"[{what}] hotplugd, two DIMMs online movable"):
        R.restart(config("online_movable"))
        dimms, blocks = R.plug(2)
    finish = kill_at("phase=eject|phase=verify", what)
    R.start_retire()
    line, phase, rid = finish()
    check(phase in ("eject", "verify"), f"stopped in phase {phase}")
    with vm.step(f"[{what}] recovered job {rid} finishes the retire: devices gone, node offline, quarantined"):
        recovered_retire_completed(R, rid, phase, dimms, blocks, ejected="its")


# ------------------------------------------------------------------------------------------------
# 6. Refusals that change nothing


def snapshot(R):
    """What a refusal must not change: every block (state, zones, node), the node masks, CPUs,
    QEMU's memory devices, the state directory and the quarantine list."""
    vm = R.vm
    return {
        "blocks": vm.blocks(),
        "online": vm.node_list("online"),
        "has_memory": vm.node_list("has_memory"),
        "cpus": vm.sh("cat /sys/devices/system/cpu/online"),
        "dimms": sorted(vm.memory_devices()),
        "state": R.state_files(),
        "quarantine": sorted(R.quarantined()),
    }


def refusals(R):
    vm, nid = R.vm, R.nid
    user = "hpvm-nobody"
    with vm.step("start hotplugd; two DIMMs online on the empty node"):
        R.restart(config("online_movable", Reserve="64M"))
        dimms, blocks = R.plug(2)
        order = drain_order(R.zones(blocks))
        base = snapshot(R)

    def unchanged(what, jobs_before):
        now = snapshot(R)
        diff = {k: (base[k], now[k]) for k in base if base[k] != now[k]}
        check(not diff, f"{what} changed things: {diff}")
        new = [j for j in R.jobs() if j["job"] not in jobs_before]
        for j in new:
            check(j["state"] == "failed" and "Nothing was changed" in j["result"], f"{what}: job {j}")
        return new

    def refused(args, rc, pattern, error=None, user=None, ask=False):
        before = {j["job"] for j in R.jobs()}
        r = R.ctl(f"{'' if ask else '--no-ask-password '}--verbose {args}", user=user, expect=rc, timeout=60)
        check(re.search(pattern, r.stderr, re.M), f"`hotplugctl {args}`: stderr {r.stderr!r} does not match {pattern!r}")
        if error:
            check(f"[{ERR}{error}]" in r.stderr or f"[{error}]" in r.stderr,
                  f"`hotplugctl {args}`: no {error} in {r.stderr!r}")
        new = unchanged(f"`hotplugctl {args}`" + (f" as {user}" if user else ""), before)
        log(f"refused `hotplugctl {args}`{' as ' + user if user else ''}: rc {r.rc}: "
            f"{r.stderr.strip().splitlines()[-1]}" + (f" (job {new[0]['job']} {new[0]['state']})" if new else " (no job)"))
        return r

    with vm.step("node 0: present CPUs"):
        r = R.ctl("plan-retire 0")
        for code in ("has-cpus", "zone-none", "boot-memory"):
            check(re.search(rf"^blocker\s+{code}\s", r.stdout, re.M), f"plan-retire 0 lacks blocker {code}:\n{r.stdout}")
        check(r.rc != 0 or "Node cannot be retired" in r.stdout, f"plan-retire 0: rc {r.rc}\n{r.stdout}")
        refused("retire-node 0", 1, r"^Preflight: Node 0 has 2 present CPUs \(0-1\): a node with CPUs never goes "
                                    r"offline; remove them first\. Nothing was changed\.", "NodeHasCPUs")
    with vm.step("node 0: kernel (boot) memory, even when its CPUs may go"):
        # --dry-run: the preflight alone decides; even a wrong "yes" would change nothing.
        refused("retire-node 0 --offline-cpus --dry-run", 1,
                r"^Preflight: .*(valid_zones \"none\"|boot memory).* Nothing was changed\.", "NotRemovable")
    with vm.step("nodes that do not exist"):
        for bad in (7, 1023, 4096):
            refused(f"retire-node {bad}", 1, rf"Node {bad} does not exist", "NoSuchNode")
            refused(f"plan-retire {bad}", 1, rf"Node {bad} does not exist", "NoSuchNode")
    with vm.step("D-Bus RetireNode(): a node that does not exist, unknown flags"):
        for args, msg in (("7 0", "Node 7 does not exist"), (f"{nid} 4096", "Unknown flags 0x1000")):
            before = {j["job"] for j in R.jobs()}
            r = vm.run(f"busctl call {BUS} /org/hotplugd/Hotplug1 {BUS}.Manager RetireNode ut {args}", check=False)
            check(r.rc != 0 and msg in r.stderr, f"RetireNode({args}): rc {r.rc} {r.stderr!r}")
            unchanged(f"RetireNode({args})", before)
            log(f"refused D-Bus RetireNode({args}): {r.stderr.strip()}")

    with vm.step(f"node {nid} already being retired: a second retire is Busy"):
        st = R.fill(200, pin_blocks=order)  # the write of the pinned block never ends by itself
        stuck = st["pinned_block"]
        jid = R.start_retire()
        vm.wait_guest(f"grep -qx going-offline /sys/devices/system/memory/memory{stuck}/state", timeout=120,
                      what=f"job {jid} to be offlining memory{stuck}")
        base = snapshot(R)  # what the first job did so far is its own doing
        for args in (f"retire-node {nid}", f"retire-node {nid} --dry-run", f"retire-node {nid} --no-block"):
            refused(args, 1, rf"Job {jid} is already working on node {nid}\.", "Busy")
        check(R.job(jid)["state"] == "running", f"the first job was disturbed: {R.job(jid)}")
        vm.run(f"id {user} >/dev/null 2>&1 || useradd --system --no-create-home {user}")
        r = R.ctl(f"--no-ask-password cancel {jid}", user=user, expect=4)
        check("Authentication is required" in r.stderr, f"cancel as {user}: {r.stderr!r}")
        check(R.job(jid)["state"] == "running", f"an unprivileged cancel stopped job {jid}: {R.job(jid)}")
        R.ctl(f"cancel {jid}", expect=0)
        j = R.wait_job(jid)
        check(j["state"] == "cancelled" and j["result"].startswith(f"Cancelled during the drain of block {stuck}."),
              f"job {jid}: {j}")
        R.unfill()
        base = snapshot(R)
        check(all(base["blocks"][b]["state"] == "online" for b in blocks), "blocks not online after the cancel")

    with vm.step("an unprivileged caller: the guest's polkitd says no (exit 4)"):
        for args in (f"retire-node {nid}", f"retire-node {nid} --dry-run", f"retire-node {nid} --no-block"):
            refused(args, 4, r"^Authentication is required for org\.hotplugd\.hotplug1\.retire-node\.", user=user)
        # Without --no-ask-password the client may ask, but there is no agent to ask with.
        refused(f"retire-node {nid}", 4, r"", user=user, ask=True)
        r = R.ctl(f"plan-retire {nid}", user=user, expect=0)   # reading is open to everyone
        check("Node can be retired." in r.stdout, f"plan-retire as {user}:\n{r.stdout}")
        pk = vm.run("systemctl is-active polkit; systemctl show -p MainPID --value polkit; "
                    "ls /usr/share/polkit-1/actions/ | grep -c hotplug", check=False).stdout.split()
        check(pk[0] == "active" and pk[1] != "0", f"the guest's polkitd is not running: {pk}")
        check(pk[2] == "1", "the hotplugd polkit actions are not installed where polkitd reads them")
        log(f"polkitd in the guest: pid {pk[1]}")
    R.empty()


# ------------------------------------------------------------------------------------------------

SCENARIOS = {"seed": seed, "transient": transient, "permanent": permanent, "cancel": cancel,
             "crash": crash, "killpoints": killpoints, "refusals": refusals}


def main():
    names = sys.argv[1:]
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        raise Fail(f"usage: test_retire.py SCENARIO... (from {', '.join(SCENARIOS)}); unknown: {unknown}")
    with HotplugdVM("vm-retire-" + "-".join(names), slots=8, extra_files=extra_files()) as h:
        R = RetireBed(h)
        log(f"boot took {h.vm.timings['boot']:.1f}s")
        TIMES["boot"] = h.vm.timings["boot"]
        for name in names:
            t0 = time.monotonic()
            log(f"=== scenario {name}")
            SCENARIOS[name](R)
            TIMES[name] = time.monotonic() - t0
            log(f"=== scenario {name} passed in {TIMES[name]:.1f}s")
    for k, v in TIMES.items():
        print(f"TIME {k}: {v:.{3 if v < 10 else 1}f}s")


if __name__ == "__main__":
    scenario(main)
