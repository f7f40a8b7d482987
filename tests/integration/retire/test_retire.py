# SPDX-License-Identifier: LGPL-2.1-or-later
"""Retiring a node on a fake host whose kernel is tests/fakekernel: the whole way (drain, eject, removal,
node offline, quarantine), the drain order, transient and permanent EBUSY, the per-write timeout, and
cancelling a slow drain. The fake kernel's log shows every state write the daemon made."""

import os
import re
import time

from conftest import ERROR, MIXED_ORDER, block_states, default_retire_spec, events, gentree, mixed_zone_spec, tree_snapshot


def journal_before_every_write(h):
    """Crash safety, from the fake kernel's log: every offline write of the retire was preceded by a saved
    journal that lists the block as offlining (or offlined), and every eject by a journal in phase eject."""
    last = None
    problems = []
    for e in h.shim_log():
        if e["kind"] == "journal":
            last = e
        elif e["kind"] == "write-start" and e["args"][1] == "offline":
            blk = e["args"][0][6:]
            if last is None or not re.search(r"(^|[=,])%s:(offlining|offlined)\b" % blk, last["args"][2]):
                problems.append("offline write of memory%s without a journal naming it first (last: %s)"
                                % (blk, last and last["line"].strip()))
        elif e["kind"] == "eject":
            if last is None or last["args"][1] != "phase=eject":
                problems.append("eject of %s without a journal in phase eject first" % e["args"][0])
    return problems


def test_retire_end_to_end(rt):
    """Node 2: CPU-less, two ACPI DIMMs of 4 blocks each online Movable. hotplugctl retire-node 2 drains,
    ejects, sees the memory and the node go, quarantines the node and removes its journal."""
    h = rt(spec=default_retire_spec())
    before = block_states(h.root)
    p = h.ctl("retire-node", "2", timeout=120)
    assert p.returncode == 0, "retire-node 2 failed (%d): %s%s\n%s\n%s" % (p.returncode, p.stdout, p.stderr,
                                                                         h.shim_log_text(), h.logs())
    assert "retired" in p.stdout and "node is offline" in p.stdout, p.stdout
    jobs = h.jobs()
    assert [(j["node"], j["state"]) for j in jobs] == [(2, "completed")], jobs

    # The kernel's view: all eight offlined exactly once, both DIMMs ejected, the node gone.
    assert sorted(b for b, v, r in h.writes("offline") if r == 0) == list(range(32, 40))
    assert [e["args"][0] for e in h.shim_log("eject")] == ["PNP0C80:00", "PNP0C80:01"]
    after = block_states(h.root)
    assert set(after) == set(before) - set(range(32, 40)), sorted(after)
    assert after == {i: before[i] for i in after}, "blocks of node 0 changed"
    tree = gentree.scan(h.root)
    assert 2 not in tree["masks"]["online"], tree["masks"]
    assert not os.path.isdir(os.path.join(h.root, "sys/devices/system/node/node2"))
    h.sync()

    # The daemon's view: no node 2, no blocks 32-39, and equal to a fresh scan.
    live, _ = h.wait_converged()
    assert events.node_of(live, 2) is None or not events.node_of(live, 2)["online"], events.node_of(live, 2)
    assert not [b["index"] for b in live["blocks"] if 32 <= b["index"] < 40]
    # StateDirectory: quarantined for good, no journal left.
    assert h.quarantine() == [2]
    assert h.journals() == [], h.journals()
    assert journal_before_every_write(h) == []
    assert any(e["kind"] == "journal-remove" for e in h.shim_log())


def test_drain_order(rt):
    """Movable first, highest address first, then the kernel zones, highest first — as written to the kernel."""
    h = rt(spec=mixed_zone_spec())
    p = h.ctl("retire-node", "2")
    assert p.returncode == 0, "%s%s\n%s" % (p.stdout, p.stderr, h.logs())
    assert [b for b, v, r in h.writes("offline")] == MIXED_ORDER, h.shim_log_text()
    assert not [w for w in h.writes() if w[0] < 32], "blocks of node 0 were written"


def test_transient_ebusy_retried(rt):
    """memory37 answers EBUSY twice (unmovable pages right now), then goes offline: the job completes and
    says it needed retries; the kernel saw exactly three writes to it."""
    h = rt(spec=default_retire_spec(), retire={"Retries": "5", "RetryBackoffSec": "100ms"})
    h.control("memory37.fail", "-16 2\n")
    path = h.retire(2)
    j = h.wait_job(path)
    assert j["State"] == "completed", j
    assert [r for b, v, r in h.writes() if b == 37] == [-16, -16, 0], h.shim_log_text()
    assert "after retries" in j["Result"], j["Result"]
    log = h.all_stderr()
    assert re.search(r"memory block 37 did not go offline \(Device or resource busy\), try 2 of 6", log), h.logs()
    assert re.search(r"memory block 37 did not go offline \(Device or resource busy\), try 3 of 6", log), h.logs()
    # The backoff doubles: 100 ms, then 200 ms between the tries.
    t = [e["t"] for e in h.shim_log("write-start") if e["args"][0] == "memory37"]
    assert t[1] - t[0] >= 0.09 and t[2] - t[1] >= 0.19, t


def test_permanent_ebusy_rolls_back(rt):
    """memory32 (the last, a Normal block) never goes offline: after 1 + Retries tries the job fails with Busy,
    names the block and the errno, and every block it had offlined is online again in its old zone —
    Movable ones with online_movable, Normal ones with online_kernel."""
    h = rt(spec=mixed_zone_spec(), retire={"Retries": "2", "RetryBackoffSec": "100ms"})
    before = block_states(h.root)
    snap = tree_snapshot(h.root)
    h.control("memory32.fail", "-16 inf\n")
    path = h.retire(2)
    j = h.wait_job(path)
    assert j["State"] == "failed", j
    assert j["Error"] == ERROR + "Busy", j
    assert "block 32" in j["Result"] and "Device or resource busy" in j["Result"], j["Result"]
    assert "3 tries" in j["Result"] and "Rolled back" in j["Result"], j["Result"]
    assert [r for b, v, r in h.writes() if b == 32] == [-16, -16, -16]
    rollback = [(b, v) for b, v, r in h.writes() if v.startswith("online")]
    assert sorted(rollback) == sorted((b, "online_kernel" if b in (37, 33) else "online_movable")
                                      for b in MIXED_ORDER[:-1]), rollback
    assert all(r == 0 for b, v, r in h.writes() if v.startswith("online"))
    assert block_states(h.root) == before, "blocks not back in their zones: %s" % {
        i: (before[i], s) for i, s in block_states(h.root).items() if before.get(i) != s}
    h.sync()
    assert tree_snapshot(h.root) == snap, "the tree differs from before the retire"
    assert h.journals() == [] and h.quarantine() == []
    assert h.shim_log("eject") == []


def test_block_timeout_interrupts_and_rolls_back(rt):
    """memory36's offline never ends by itself (a pinned page): with BlockTimeoutSec=1 the write is
    interrupted by the worker's signal (EINTR) after a second, tried once more (Retries=1), interrupted
    again, and the job fails and rolls back 39, 38, 37."""
    h = rt(spec=default_retire_spec(), retire={"BlockTimeoutSec": "1", "Retries": "1", "RetryBackoffSec": "100ms"})
    before = block_states(h.root)
    h.control("memory36.block", "offline\n")
    path = h.retire(2)
    j = h.wait_job(path, timeout=30)
    assert j["State"] == "failed", j
    assert "block 36" in j["Result"] and "2 tries" in j["Result"] and "timed out" in j["Result"], j["Result"]
    assert j["Error"] in (ERROR + "Busy", ERROR + "Timeout"), j
    ends = [e for e in h.shim_log("write-end") if e["args"][0] == "memory36"]
    starts = [e for e in h.shim_log("write-start") if e["args"][0] == "memory36"]
    assert [e["args"][2] for e in ends] == ["-4", "-4"], h.shim_log_text()
    for s, e in zip(starts, ends):
        assert 0.95 <= e["t"] - s["t"] < 2.0, "write held %.3f s, BlockTimeoutSec=1" % (e["t"] - s["t"])
    assert sorted(b for b, v, r in h.writes() if v == "online_movable" and r == 0) == [37, 38, 39]
    assert block_states(h.root) == before
    assert h.journals() == []


def test_cancel_slow_drain(rt):
    """Every offline takes 2 s (page migration). hotplugctl cancel while the third block migrates: the write is
    interrupted at once, the job ends cancelled within 1 s of that, and the two blocks offlined so far are
    online again."""
    h = rt(spec=default_retire_spec())
    before = block_states(h.root)
    snap = tree_snapshot(h.root)
    h.control("any.delay", "2000 offline\n")
    path = h.retire(2)
    h.wait_log(lambda e: e["kind"] == "write-start" and e["args"][0] == "memory37", "the third offline", timeout=15)
    time.sleep(0.3)
    job_id = path.rsplit("/", 1)[1]
    t_cancel = time.monotonic()
    p = h.ctl("cancel", job_id)
    t_returned = time.monotonic()
    assert p.returncode == 0, "hotplugctl cancel %s failed: %s%s" % (job_id, p.stdout, p.stderr)
    while True:
        j = h.job(path)
        if j["State"] in ("completed", "failed", "cancelled"):
            t_final = time.monotonic()
            break
        assert time.monotonic() - t_cancel < 10, "job not final 10 s after the cancel: %s" % j
        time.sleep(0.005)
    assert j["State"] == "cancelled", j
    assert j["Error"] == ERROR + "Cancelled", j
    intr = [e for e in h.shim_log("write-end") if e["args"][0] == "memory37"]
    assert [e["args"][2] for e in intr] == ["-4"], h.shim_log_text()
    t_intr = intr[0]["t"]
    assert t_cancel <= t_intr <= t_returned + 0.5, "the write was interrupted %.3f s after the cancel was sent" % (
        t_intr - t_cancel)
    assert t_final - t_intr < 1.0, "job cancelled %.3f s after the write was interrupted" % (t_final - t_intr)
    assert [b for b, v, r in h.writes("offline") if r == 0] == [39, 38]
    assert sorted(b for b, v, r in h.writes("online_movable") if r == 0) == [38, 39]
    assert block_states(h.root) == before
    h.sync()
    assert tree_snapshot(h.root) == snap
    assert h.journals() == [] and h.quarantine() == []


def test_cancel_during_backoff(rt):
    """memory37 keeps answering EBUSY; the job waits 3 s before trying again. A cancel in that wait (no write in
    flight) ends the job cancelled at once and rolls back 39 and 38."""
    h = rt(spec=default_retire_spec(), retire={"Retries": "5", "RetryBackoffSec": "3s"})
    before = block_states(h.root)
    h.control("memory37.fail", "-16 inf\n")
    path = h.retire(2)
    h.wait_log(lambda e: e["kind"] == "write-end" and e["args"][0] == "memory37", "the first EBUSY of memory37")
    time.sleep(0.2)
    t = time.monotonic()
    p = h.ctl("cancel", path.rsplit("/", 1)[1])
    assert p.returncode == 0, p.stderr
    j = h.wait_job(path, timeout=10)
    assert time.monotonic() - t < 1.5, "cancel took %.1f s during a backoff" % (time.monotonic() - t)
    assert j["State"] == "cancelled", j
    assert [r for b, v, r in h.writes() if b == 37] == [-16], "memory37 was tried again after the cancel"
    assert block_states(h.root) == before
    assert h.journals() == []


def test_slow_eject_completes(rt):
    """The firmware takes 1.5 s to eject: the job waits for the removal (RemoveTimeoutSec=5) and completes."""
    h = rt(spec=default_retire_spec(), retire={"RemoveTimeoutSec": "5"})
    h.control("eject", "1500")
    path = h.retire(2)
    j = h.wait_job(path, timeout=30)
    assert j["State"] == "completed", j
    t_eject = h.shim_log("eject")[-1]["t"]
    assert time.monotonic() - t_eject >= 1.5
    assert "node is offline" in j["Result"], j["Result"]
    assert not os.path.isdir(os.path.join(h.root, "sys/devices/system/node/node2"))


def test_eject_never_completes_times_out(rt):
    """The ejected memory never goes away (RemoveTimeoutSec=2): a cancel meanwhile is refused; the job fails with
    Timeout, says how many blocks are still there; they stay offline (never onlined again after an eject) and
    the node stays quarantined."""
    h = rt(spec=default_retire_spec(), retire={"RemoveTimeoutSec": "2"})
    h.control("eject", "never")
    path = h.retire(2)
    # Once ejected there is nothing to take back: a cancel is refused and the job goes on.
    h.wait_log(lambda e: e["kind"] == "journal" and e["args"][1] == "phase=verify", "the journal of the eject")
    p = h.ctl("cancel", path.rsplit("/", 1)[1])
    assert p.returncode != 0, "cancel after the eject succeeded: %s" % p.stdout
    assert h.job(path)["State"] == "running"
    j = h.wait_job(path, timeout=30)
    assert j["State"] == "failed", j
    assert j["Error"] == ERROR + "Timeout", j
    assert "8 memory blocks were still present" in j["Result"], j["Result"]
    states = block_states(h.root)
    assert all(states[b][0] == "offline" for b in range(32, 40)), states
    assert not [w for w in h.writes() if w[1].startswith("online")], "blocks onlined after the eject"
    assert h.quarantine() == [2] and h.journals() == []
    # The kernel finishes the eject late: the model follows, the job stays as it ended.
    h.control("eject", None)
    h.sync(ejects=True)
    h.wait_converged()
    assert h.job(path)["State"] == "failed"
