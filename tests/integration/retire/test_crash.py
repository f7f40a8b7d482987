# SPDX-License-Identifier: LGPL-2.1-or-later
"""Crash consistency of a retire: hotplugd is frozen at a known point of retiring node 2 (killpoints.py), its
journal is checked against the fake host, it is killed with SIGKILL and restarted on the same tree and
StateDirectory, and the recovery must reconcile: OnCrash=rollback puts every block the journal says the
job offlined back online in its zone, OnCrash=resume ends with the node retired, an issued eject is never
taken back, a damaged journal is refused and kept as *.corrupt without acting. No block may end up offline
by accident: the tree is compared with the one before the retire. The recovered job's result must say that
it was interrupted.

With HOTPLUGD_CRASH_REPORT=FILE, each case appends a JSON line (kill point, outcome, blocks stranded)."""

import json
import os
import re
import time

import pytest

from conftest import block_states, default_retire_spec, events, mixed_zone_spec, tree_snapshot, snapshot_diff
from killpoints import KILL_POINTS

NODE_BLOCKS = list(range(32, 41))       # 40 was offline before the retire


def freeze(h, how):
    kind, arg = how
    if kind == "stop":
        h.wait_stopped()
    elif kind == "log":
        h.wait_log(lambda e: arg in e["line"] and e["pid"] == h.pid(), arg)
    else:
        h.wait_blocked(arg)


def check_journal_covers_tree(h, before, phase):
    """At the freeze: the journal must name every block that is offline now but was online before the retire
    (as offlining or offlined) — else a crash here would strand it — and be in the expected phase."""
    j = h.journal()
    assert j["node"] == "2", j
    if phase:
        assert j["phase"] == phase, "journal phase %s, expected %s: %s" % (j["phase"], phase, j)
    now = block_states(h.root)
    newly_offline = sorted(b for b in now if now[b][0] == "offline" and before.get(b, ("offline",))[0] != "offline")
    covered = sorted(b for b, (zone, st) in j["blocks"].items() if st in ("offlining", "offlined"))
    assert set(newly_offline) <= set(covered), \
        "offline blocks %s not in the journal %s (a crash now strands them)" % (newly_offline, j["blocks"])
    for b, (zone, st) in j["blocks"].items():
        assert zone == before[b][1].split()[0], "journal zone of block %d: %s, was %s" % (b, zone, before[b])
    return j


def corrupt(h, how):
    [name] = h.journals()
    p = os.path.join(h.state_dir, name)
    with open(p, "rb") as f:
        data = f.read()
    if how == "truncate":
        data = data[:len(data) // 2]
    elif how == "empty":
        data = b""
    else:
        k = data.index(b"block=") + 6
        data = data[:k] + bytes([data[k] ^ 0x01]) + data[k + 1:]
    with open(p, "wb") as f:
        f.write(data)
    return name


def stranded(before, after, retired):
    """Blocks online before the retire that are still there, offline, although the node was not retired."""
    if retired:
        return []
    return sorted(b for b, (st, vz) in after.items() if st == "offline" and before.get(b, ("offline",))[0] != "offline")


def report(kp, **kw):
    path = os.environ.get("HOTPLUGD_CRASH_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(dict(kill_point=kp["id"], **kw)) + "\n")


@pytest.mark.parametrize("kp", KILL_POINTS, ids=[k["id"] for k in KILL_POINTS])
def test_crash(rt, kp):
    conf = {"OnCrash": kp["on_crash"]}
    conf.update(kp["conf"])
    spec = mixed_zone_spec() if kp["spec"] == "mixed" else default_retire_spec(offline_dimm_block=True)
    h = rt(spec=spec, retire=conf, policy=kp["policy"])
    before = block_states(h.root)
    snap = tree_snapshot(h.root)
    for name, text in kp["arm"].items():
        h.control(name, text)
    if kp["freeze"][0] == "stop":
        h.control("stop", kp["freeze"][1] + "\n")
    h.retire(2)
    freeze(h, kp["freeze"])
    check_journal_covers_tree(h, before, kp["phase"])

    if kp["kill"] == "term":
        h.term()
    else:
        h.kill9()
    kills = 1
    h.control("stop", None)
    corrupted = None
    for action in kp["between"]:
        if action == "unhold":
            for n in os.listdir(os.path.join(h.root, ".fakekernel")):
                if n.endswith(".block"):
                    h.control(n, None)
        elif action == "release-ejects":
            h.control("eject", None)
            h.sync(ejects=True)
        elif action[0] == "control":
            h.control(action[1], action[2])
        elif action[0] == "corrupt":
            h.sync()
            at_kill = tree_snapshot(h.root)
            corrupted = corrupt(h, action[1])
        elif action[0] == "refreeze":
            h.sync()
            h.restart(wait_ready=False)
            if action[1][1] is None:
                h.wait_stopped()
            else:
                freeze(h, action[1])
            h.kill9()
            kills += 1
    h.sync()
    h.restart()
    for action in kp["after_restart"]:
        h.control(action[1], action[2])

    if kp["outcome"] == "refused":
        time.sleep(1.0)
        h.sync()
        assert h.jobs() == [], "a job was made from a damaged journal: %s" % h.jobs()
        assert corrupted + ".corrupt" in os.listdir(h.state_dir) and h.journals() == [], os.listdir(h.state_dir)
        assert "Refusing a damaged retire journal" in h.all_stderr(), h.logs()
        mine = [e for e in h.shim_log("write-start") if e["pid"] == h.pid()]
        assert mine == [], "the restarted daemon wrote despite the damaged journal: %s" % mine
        assert tree_snapshot(h.root) == at_kill, "the tree changed after the restart"
        after = block_states(h.root)
        left = stranded(before, after, False)
        report(kp, outcome="refused", kills=kills, left_offline_for_operator=left, stranded=0)
        return

    job = h.wait_recovered_job(missing_ok=True)
    h.sync(ejects=True)
    after = block_states(h.root)
    if job is None:
        lost = stranded(before, after, False)
        report(kp, outcome="no job", kills=kills, stranded=len(lost), stranded_blocks=lost, result=None)
        raise AssertionError("kill point %s: no job was recovered after the restart (StateDirectory: %s); blocks "
                             "stranded offline: %s\n%s\n%s" % (kp["id"], os.listdir(h.state_dir), lost, h.shim_log_text(12),
                                                              h.logs(12)))
    retired = kp["outcome"] == "retired" and job["State"] == "completed"
    lost = stranded(before, after, retired)
    report(kp, outcome=job["State"], kills=kills, stranded=len(lost), stranded_blocks=lost, result=job["Result"],
           quarantine=h.quarantine())
    problems = []
    if lost:
        problems.append("blocks stranded offline: %s" % lost)
    if not re.search(r"interrupt|restart|crash|recover", job["Result"], re.I):
        problems.append("the recovered job's result does not say it was interrupted: %r" % job["Result"])
    if h.journals():
        problems.append("journal left behind: %s" % h.journals())
    if kp["outcome"] == "restored":
        if job["State"] != "failed":
            problems.append("recovered job %s, expected failed (rolled back): %r" % (job["State"], job["Result"]))
        if after != before:
            problems.append("blocks not as before the retire: %s" % {
                b: (before.get(b), after.get(b)) for b in set(before) | set(after) if before.get(b) != after.get(b)})
        elif tree_snapshot(h.root) != snap:
            problems.append("tree differs from before the retire: %s" % snapshot_diff(snap, tree_snapshot(h.root)))
    else:
        if job["State"] != "completed":
            problems.append("recovered job %s, expected completed: %r" % (job["State"], job["Result"]))
        if set(after) & set(NODE_BLOCKS):
            problems.append("blocks of node 2 still present: %s" % {b: after[b] for b in set(after) & set(NODE_BLOCKS)})
        if os.path.isdir(os.path.join(h.root, "sys/devices/system/node/node2")):
            problems.append("node 2 still online")
        if h.quarantine() != [2]:
            problems.append("node 2 not quarantined: %s" % h.quarantine())
        live = h.live_model()
        if events.node_of(live, 2) is not None and events.node_of(live, 2)["online"]:
            problems.append("node 2 still online in the daemon's model")
    assert not problems, "kill point %s:\n  %s\n%s\n%s" % (kp["id"], "\n  ".join(problems), h.shim_log_text(25), h.logs(25))
