# SPDX-License-Identifier: LGPL-2.1-or-later
"""Retires that must not happen, and change nothing: the fake host's sys/ and proc/ are byte-identical
afterwards, the fake kernel saw no state write and no eject, no journal or quarantine is left. A node with
present CPUs, a node that does not exist, a second retire of a node being retired (Busy), a dry run, and
pre-drain hooks (a veto with a reason, a hook that others may write)."""

import os

from conftest import ERROR, default_retire_spec, tree_snapshot, snapshot_diff


def assert_nothing_changed(h, snap):
    h.sync()
    assert tree_snapshot(h.root) == snap, "the tree changed:\n  %s" % "\n  ".join(snapshot_diff(snap, tree_snapshot(h.root)))
    assert h.writes() == [], "the kernel saw state writes: %s" % h.writes()
    assert h.shim_log("eject") == []
    assert h.journals() == [] and h.quarantine() == []


def test_refuse_node_with_cpus(rt):
    """Node 2 has a present CPU (offline or not, it keeps the node online): NodeHasCPUs, nothing written."""
    h = rt(spec=default_retire_spec(cpus_on_node2=[2]))
    snap = tree_snapshot(h.root)
    p = h.ctl("retire-node", "2")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "CPU" in p.stderr, p.stderr
    [j] = h.jobs()
    jj = h.job(j["path"])
    assert jj["State"] == "failed" and jj["Error"] == ERROR + "NodeHasCPUs", jj
    assert "Nothing was changed" in jj["Result"], jj["Result"]
    assert_nothing_changed(h, snap)


def test_refuse_missing_node(rt):
    """Node 7 is not even possible, node 1 is possible but offline: NoSuchNode at once, no job."""
    h = rt(spec=default_retire_spec())
    snap = tree_snapshot(h.root)
    for node in (7, 1):
        p = h.ctl("--verbose", "retire-node", str(node))
        assert p.returncode == 1, (node, p.returncode, p.stdout, p.stderr)
        assert "NoSuchNode" in p.stderr or "not exist" in p.stderr or "No such" in p.stderr, p.stderr
    assert h.jobs() == []
    assert_nothing_changed(h, snap)


def test_refuse_second_retire_busy(rt):
    """While a retire of node 2 is held in the kernel (memory37's offline waits on a pinned page), a second
    retire of node 2 is refused with Busy and changes nothing; cancelling the first then rolls back 39 and 38,
    and the tree is byte-identical to before the first."""
    h = rt(spec=default_retire_spec())
    snap = tree_snapshot(h.root)
    h.control("memory37.block", "offline\n")
    path = h.retire(2)
    h.wait_blocked(37)
    h.sync()
    held = tree_snapshot(h.root)
    p = h.ctl("--verbose", "retire-node", "2")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "Busy" in p.stderr or "already working" in p.stderr, p.stderr
    assert len(h.jobs()) == 1, h.jobs()
    assert tree_snapshot(h.root) == held, "the refused retire changed the tree"
    assert h.job(path)["State"] == "running"

    p = h.ctl("cancel", path.rsplit("/", 1)[1])
    assert p.returncode == 0, p.stderr
    j = h.wait_job(path)
    assert j["State"] == "cancelled", j
    h.control("memory37.block", None)
    h.sync()
    assert tree_snapshot(h.root) == snap, "not rolled back byte for byte:\n  %s" % "\n  ".join(
        snapshot_diff(snap, tree_snapshot(h.root)))
    assert h.journals() == [] and h.quarantine() == []


def test_dry_run_changes_nothing(rt):
    """retire-node --dry-run: the preflight as a job; completed, says what it would move, writes nothing."""
    h = rt(spec=default_retire_spec())
    snap = tree_snapshot(h.root)
    p = h.ctl("retire-node", "--dry-run", "2")
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "Dry run" in p.stdout, p.stdout
    [j] = h.jobs()
    assert j["state"] == "completed", j
    assert_nothing_changed(h, snap)


def write_hook(h, name, text, mode):
    d = os.path.join(h.root, "etc/hotplugd/hooks.d")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def test_hook_veto(rt):
    """A pre-drain hook that exits 1 vetoes the retire; the first line it printed is the reason in the result.
    Hooks run in name order, so 10-ok runs first and 90-never not before the drain."""
    h = rt(spec=default_retire_spec())
    marker = os.path.join(h.tmp, "hook-ran")
    write_hook(h, "10-ok", "#!/bin/sh\necho \"$HOTPLUGD_PHASE $HOTPLUGD_NODE $HOTPLUGD_JOB\" >> %s\nexit 0\n" % marker,
               0o755)
    write_hook(h, "50-veto", "#!/bin/sh\necho \"database pinned to node $HOTPLUGD_NODE\"\necho more\nexit 1\n", 0o755)
    write_hook(h, "90-never", "#!/bin/sh\necho \"never $HOTPLUGD_PHASE\" >> %s\n" % marker, 0o755)
    snap = tree_snapshot(h.root)
    p = h.ctl("retire-node", "2")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    [j] = h.jobs()
    jj = h.job(j["path"])
    assert jj["State"] == "failed", jj
    assert "50-veto" in jj["Result"] and "database pinned to node 2" in jj["Result"], jj["Result"]
    assert "more" not in jj["Result"]
    # Before the drain: 10-ok, then the veto; 90-never not. (Afterwards the "failure" hooks inform.)
    with open(marker) as f:
        ran = f.read().split("\n")[:-1]
    assert ran[0] == "pre-drain 2 %s" % j["job"], ran
    assert "never pre-drain" not in ran and ran.count("pre-drain 2 %s" % j["job"]) == 1, ran
    assert_nothing_changed(h, snap)


def test_hook_writable_by_others_refused(rt):
    """A hook that others may write is not run: the retire fails with EPERM before anything is changed."""
    h = rt(spec=default_retire_spec())
    marker = os.path.join(h.tmp, "hook-ran")
    write_hook(h, "20-open", "#!/bin/sh\ntouch %s\nexit 0\n" % marker, 0o757)
    snap = tree_snapshot(h.root)
    p = h.ctl("retire-node", "2")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    [j] = h.jobs()
    jj = h.job(j["path"])
    assert jj["State"] == "failed", jj
    assert "20-open" in jj["Result"] and "Operation not permitted" in jj["Result"], jj["Result"]
    assert not os.path.exists(marker), "the untrusted hook ran"
    assert "Refusing to run hook" in h.all_stderr(), h.logs()
    assert_nothing_changed(h, snap)
