# SPDX-License-Identifier: LGPL-2.1-or-later
"""The files hotplugd trusts: hotplugd.conf and its drop-ins are honoured only when owned by root and not
writable by group or others (otherwise a clear error naming the file: the daemon refuses to start, a reload
keeps the old configuration); the journal and the quarantine list are private (0600 in a 0700
StateDirectory) and never followed through a symlink; the shipped bus policy lets only root own the name;
every changing method is put to polkit under an action that the shipped polkit policy defines, never
allowed without authentication."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

from conftest import BUS, MGR, PATH, SOURCE_DIR, Inotify, busfixture, gentree, rawbus, tree_snapshot, snapshot_diff

REFUSAL = "must be owned by root and not writable by group or others"


def hotplugd():
    return busfixture.binary("daemon", "hotplugd")


def fresh_root():
    tmp = tempfile.mkdtemp(prefix="hotplugd-trust-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    root = os.path.join(tmp, "root")
    gentree.generate(root, busfixture.DEFAULT_SPEC)
    os.makedirs(os.path.join(root, "etc/hotplugd"), exist_ok=True)
    write(os.path.join(root, "etc/hotplugd/hotplugd.conf"), "[Online]\nPolicy=offline\n")
    return tmp, root


def write(path, text, mode=0o644, uid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    os.chown(path, uid, 0)


def run_daemon(tmp, root, *extra, dump=False):
    """hotplugd --root ROOT (a private network namespace, a bus address that does not exist: should it
    ever get past the configuration, it stops at the bus) or --dump-model."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS")}
    env.update(DBUS_SYSTEM_BUS_ADDRESS="unix:path=%s/no-bus-here" % tmp, STATE_DIRECTORY=os.path.join(tmp, "state"),
               RUNTIME_DIRECTORY=os.path.join(tmp, "run"))
    cmd = ["unshare", "--net", "--", hotplugd(), "--root", root, *extra] + (["--dump-model"] if dump else [])
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def untrusted_cases(uid):
    """(name, the path the error must name, how to make the tree untrusted)."""
    main = "etc/hotplugd/hotplugd.conf"
    return [
        ("main-group-writable", main, lambda r: os.chmod(os.path.join(r, main), 0o664)),
        ("main-other-writable", main, lambda r: os.chmod(os.path.join(r, main), 0o646)),
        ("main-not-root", main, lambda r: os.chown(os.path.join(r, main), uid, 0)),
        ("dropin-etc-group-writable", "etc/hotplugd/hotplugd.conf.d/50-a.conf",
         lambda r: write(os.path.join(r, "etc/hotplugd/hotplugd.conf.d/50-a.conf"), "[Online]\nPolicy=online\n", 0o660)),
        ("dropin-run-not-root", "run/hotplugd/hotplugd.conf.d/50-a.conf",
         lambda r: write(os.path.join(r, "run/hotplugd/hotplugd.conf.d/50-a.conf"), "[Online]\nPolicy=online\n", 0o644, uid)),
        ("dropin-usr-other-writable", "usr/lib/hotplugd/hotplugd.conf.d/50-a.conf",
         lambda r: write(os.path.join(r, "usr/lib/hotplugd/hotplugd.conf.d/50-a.conf"), "[Online]\nPolicy=online\n", 0o666)),
        ("dropin-symlink-to-writable", "etc/hotplugd/hotplugd.conf.d/60-link.conf", _link_to_writable),
        ("dropin-dir-writable", "etc/hotplugd/hotplugd.conf.d",
         lambda r: (os.makedirs(os.path.join(r, "etc/hotplugd/hotplugd.conf.d")),
                    os.chmod(os.path.join(r, "etc/hotplugd/hotplugd.conf.d"), 0o777))),
        ("dropin-dir-not-root", "run/hotplugd/hotplugd.conf.d",
         lambda r: (os.makedirs(os.path.join(r, "run/hotplugd/hotplugd.conf.d")),
                    os.chown(os.path.join(r, "run/hotplugd/hotplugd.conf.d"), uid, 0))),
        ("etc-dir-writable", "etc/hotplugd", lambda r: os.chmod(os.path.join(r, "etc/hotplugd"), 0o775)),
    ]


def _link_to_writable(r):
    target = os.path.join(r, "etc/hotplugd/shared.conf")
    write(target, "[Online]\nPolicy=online\n", 0o666)
    d = os.path.join(r, "etc/hotplugd/hotplugd.conf.d")
    os.makedirs(d, exist_ok=True)
    os.symlink("../shared.conf", os.path.join(d, "60-link.conf"))


def test_untrusted_config_refuses_start():
    """Every way a configuration file or directory can be writable by someone else: the daemon refuses to
    start and --dump-model refuses to run, each naming the file and the rule; nothing is written."""
    uid = busfixture.ensure_test_user().pw_uid
    results = []
    for name, rel, make in untrusted_cases(uid):
        tmp, root = fresh_root()
        try:
            make(root)
            snap = tree_snapshot(root)
            for dump in (False, True):
                t = time.monotonic()
                p = run_daemon(tmp, root, dump=dump)
                what = "%s (%s)" % (name, "--dump-model" if dump else "daemon")
                assert p.returncode != 0, "%s: hotplugd ran with an untrusted configuration:\n%s" % (what, p.stderr)
                assert os.path.join(root, rel) in p.stderr and REFUSAL in p.stderr, "%s: unclear error:\n%s" % (
                    what, p.stderr)
                assert ("Refusing to start with an invalid configuration" if not dump else "Invalid configuration") \
                    in p.stderr, p.stderr
                assert "Tracking" not in p.stderr, "%s: it scanned before refusing:\n%s" % (what, p.stderr)
                results.append((what, time.monotonic() - t))
            assert snapshot_diff(snap, tree_snapshot(root)) == []
            assert not os.path.exists(os.path.join(tmp, "state")), "a refused start created the StateDirectory"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    line = [l for l in p.stderr.splitlines() if REFUSAL in l][0]
    print("\n[trust] %d untrusted configurations refused (daemon and --dump-model), e.g.:\n  %s" % (len(results), line))


def test_trusted_config_accepted():
    """The controls: root-owned files 0644 and 0600, a drop-in masked with a symlink to /dev/null (a
    world-writable character device, which reads as empty), a drop-in symlinked to a trusted file, and
    --config naming a file elsewhere: all accepted, and the drop-ins do take effect."""
    tmp, root = fresh_root()
    try:
        write(os.path.join(root, "usr/lib/hotplugd/hotplugd.conf.d/50-a.conf"), "[Online]\nPolicy=online\n", 0o644)
        write(os.path.join(root, "etc/hotplugd/hotplugd.conf.d/40-private.conf"), "[Online]\nMovableRatio=200\n", 0o600)
        os.makedirs(os.path.join(root, "run/hotplugd/hotplugd.conf.d"))
        os.symlink("/dev/null", os.path.join(root, "run/hotplugd/hotplugd.conf.d/50-a.conf"))   # masks usr/lib's
        write(os.path.join(root, "etc/hotplugd/trusted.conf"), "[Online]\nPolicy=online_kernel\n", 0o644)
        os.symlink("../trusted.conf", os.path.join(root, "etc/hotplugd/hotplugd.conf.d/60-link.conf"))
        p = run_daemon(tmp, root, dump=True)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["policy"] == "online_kernel", p.stdout[:300]
        other = os.path.join(tmp, "elsewhere.conf")
        write(other, "[Online]\nPolicy=offline\n", 0o644)
        p = run_daemon(tmp, root, "--config", other, dump=True)
        assert p.returncode == 0, p.stderr
        os.chmod(other, 0o666)
        p = run_daemon(tmp, root, "--config", other, dump=True)
        assert p.returncode != 0 and other in p.stderr and REFUSAL in p.stderr, p.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_reload_keeps_config_when_untrusted(stack):
    """A running daemon: Reload (D-Bus) and SIGHUP with a configuration that became writable by others, or a
    drop-in that belongs to someone else, are refused with the file named; the old configuration stays in
    force; once the file is fixed, the reload takes."""
    import dbus
    conf = os.path.join(stack.root, "etc/hotplugd/hotplugd.conf")
    mgr = dbus.Interface(stack.bus.get_object(BUS, PATH), MGR)

    def policy():
        return str(stack.props(PATH, MGR)["Policy"])

    assert policy() == "offline"
    write(conf, "[Online]\nPolicy=online_movable\n", 0o666)
    try:
        mgr.Reload()
        raise AssertionError("Reload accepted a world-writable configuration")
    except dbus.DBusException as e:
        assert e.get_dbus_name() == "org.hotplugd.Hotplug1.Error.InvalidConfig", e
        msg = e.get_dbus_message()
        assert msg.startswith("The configuration is invalid, the old one stays: ") and conf in msg and REFUSAL in msg, msg
    assert policy() == "offline"
    mark = len(stack.log())
    stack.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "keeping the old one" not in stack.log()[mark:]:
        assert time.monotonic() < deadline, stack.log()[-2000:]
        time.sleep(0.05)
    line = [l for l in stack.log()[mark:].splitlines() if "keeping the old one" in l][0]
    assert conf in line and REFUSAL in line, line
    assert policy() == "offline"

    os.chmod(conf, 0o644)
    mgr.Reload()
    assert policy() == "online_movable"

    uid = busfixture.ensure_test_user().pw_uid
    dropin = os.path.join(stack.root, "etc/hotplugd/hotplugd.conf.d/90-user.conf")
    write(dropin, "[Online]\nPolicy=online\n", 0o644, uid)
    try:
        mgr.Reload()
        raise AssertionError("Reload accepted a drop-in owned by uid %d" % uid)
    except dbus.DBusException as e:
        assert dropin in e.get_dbus_message() and REFUSAL in e.get_dbus_message(), e
    assert policy() == "online_movable"
    os.chown(dropin, 0, 0)
    mgr.Reload()
    assert policy() == "online"
    print("\n[trust] reload refused: %s\n[trust] SIGHUP refused: %s" % (msg, line))


def test_state_files_private_and_not_followed(rt):
    """During a retire the journal is 0600 root in the StateDirectory; the quarantine list it leaves is 0600
    root. A quarantine list or journal planted as a symlink to a file outside, or with a loose mode, is not
    used on restart (logged), and the file outside is never opened or written (inotify); quarantining
    afterwards replaces the symlink instead of writing through it."""
    from conftest import events
    import conftest
    h = rt(spec=conftest.retire.default_retire_spec())
    h.control("memory39.block", "offline\n")
    path = h.retire(2)
    h.wait_blocked(39)
    sd = h.state_dir
    [jn] = h.journals()
    st = os.lstat(os.path.join(sd, jn))
    modes = {jn: oct(st.st_mode)}
    assert st.st_mode == 0o100600 and st.st_uid == 0, "journal %s: mode %o uid %d" % (jn, st.st_mode, st.st_uid)
    h.control("memory39.block", None)
    j = h.wait_job(path)
    assert j["State"] == "completed", j
    st = os.lstat(os.path.join(sd, "quarantine"))
    modes["quarantine"] = oct(st.st_mode)
    assert st.st_mode == 0o100600 and st.st_uid == 0, "quarantine: mode %o uid %d" % (st.st_mode, st.st_uid)
    assert h.quarantine() == [2]
    # The StateDirectory the daemon makes itself is private too.
    tmp = tempfile.mkdtemp(dir=h.tmp)
    made = os.path.join(tmp, "a/b/state")
    env = dict(os.environ, STATE_DIRECTORY=made, RUNTIME_DIRECTORY=os.path.join(tmp, "run"),
               DBUS_SYSTEM_BUS_ADDRESS="unix:path=%s/no-bus" % tmp)
    subprocess.run(["unshare", "--net", "--", h.hotplugd, "--root", h.root], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    modes["StateDirectory"] = oct(os.stat(made).st_mode)
    assert os.stat(made).st_mode == 0o40700, oct(os.stat(made).st_mode)

    # Planted files: symlinks out of the StateDirectory, a world-readable list, a loose journal.
    h.term()
    outside = os.path.join(h.tmp, "outside")
    os.makedirs(outside)
    write(os.path.join(outside, "quarantine"), "0-3\n", 0o600)
    write(os.path.join(outside, "job-7.journal"), "hotplugd-job-journal 1\n", 0o600)
    os.unlink(os.path.join(sd, "quarantine"))
    os.symlink(os.path.join(outside, "quarantine"), os.path.join(sd, "quarantine"))
    os.symlink(os.path.join(outside, "job-7.journal"), os.path.join(sd, "job-7.journal"))
    write(os.path.join(sd, "job-8.journal"), open(os.path.join(outside, "job-7.journal")).read(), 0o644)
    h.reactor.stop()          # it reads the tree from this process; inotify must see only the daemon
    watch = Inotify([outside])
    try:
        h.restart()
        log = h.all_stderr()
        assert re.search(r"Ignoring the persisted quarantine list: Too many levels of symbolic links", log), h.logs(30)
        assert "job-7.journal" in log and "job-8.journal" in log, h.logs(30)
        # Nothing quarantined from the planted list; quarantining now writes a new file in place of the link.
        jobs = h.jobs()
        assert jobs == [] or all(j["state"] in ("failed", "completed", "cancelled") for j in jobs), jobs
        p = h.ctl("quarantine", "0")
        assert p.returncode == 0, p.stderr
        st = os.lstat(os.path.join(sd, "quarantine"))
        assert st.st_mode == 0o100600 and not os.path.islink(os.path.join(sd, "quarantine"))
        seen = watch.events()
    finally:
        watch.close()
    assert seen == [], "files outside the StateDirectory were touched: %s" % seen
    assert open(os.path.join(outside, "quarantine")).read() == "0-3\n"
    refusals = sorted(set(l for l in log.splitlines() if "journal" in l.lower() and ("refus" in l.lower() or
                                                                                     "0600" in l or "symbolic" in l)))
    print("\n[trust] modes: %s\n[trust] planted state files: %s" % (modes, refusals[:4]))
    h.ctl("unquarantine", "0")


def _defines(header, prefix):
    text = open(os.path.join(SOURCE_DIR, "dbus", header)).read()
    return dict(re.findall(r'#define (%s\w+) "([^"]+)"' % prefix, text))


def test_bus_policy_and_polkit_actions(stack):
    """The shipped bus policy: only root may own org.hotplugd.Hotplug1, everyone may call it. The shipped
    polkit policy: exactly the actions the daemon asks for, none allowed without authentication. On the
    live daemon: every method that changes anything (from the introspection XML; Job.Cancel and CancelJob on
    a live job included) is refused for the unprivileged user with AccessDenied naming its action."""
    import dbus
    conf = ET.parse(os.path.join(SOURCE_DIR, "dbus/org.hotplugd.Hotplug1.conf")).getroot()
    owners = [(p.attrib, a.attrib) for p in conf.findall("policy") for a in p.findall("allow") if "own" in a.attrib]
    assert owners == [({"user": "root"}, {"own": BUS})], owners
    assert not [d for p in conf.findall("policy") for d in p.findall("deny")], "deny rules would hide methods"
    default = [p for p in conf.findall("policy") if p.get("context") == "default"]
    assert default and {"send_destination": BUS} in [a.attrib for a in default[0].findall("allow")]

    actions = set(_defines("hotplug-bus.h", "HOTPLUG_ACTION_").values())
    pol = ET.parse(os.path.join(SOURCE_DIR, "systemd/org.hotplugd.hotplug1.policy")).getroot()
    declared = {a.get("id"): {d.tag: d.text for d in a.find("defaults")} for a in pol.findall("action")}
    assert set(declared) == actions, (sorted(declared), sorted(actions))
    for a, d in declared.items():
        assert set(d) == {"allow_any", "allow_inactive", "allow_active"}, (a, d)
        assert all(v in ("auth_admin", "auth_admin_keep", "no") for v in d.values()), (a, d)

    # A live job to cancel: a retire held in a pre-drain hook (nothing is drained while it sleeps).
    hooks = os.path.join(stack.root, "etc/hotplugd/hooks.d")
    os.makedirs(hooks)
    write(os.path.join(hooks, "10-wait"), "#!/bin/sh\n[ \"$HOTPLUGD_PHASE\" = pre-drain ] && sleep 30\nexit 0\n", 0o755)
    before = tree_snapshot(stack.root)
    mgr = dbus.Interface(stack.bus.get_object(BUS, PATH), MGR)
    job = str(mgr.RetireNode(dbus.UInt32(2), dbus.UInt64(0)))
    job_id = int(job.rsplit("/", 1)[1])
    for _ in range(100):
        if str(stack.props(job, "org.hotplugd.Hotplug1.Job")["State"]) == "running":
            break
        time.sleep(0.05)

    from test_bus import READ_METHODS, interfaces
    calls = []
    good = {"at": [44], "u": 1, "t": 0, "s": "online", "i": -1}
    special = {"CancelJob": [job_id], "RetireNode": [2, 1], "OnlineBlocks": [[44], "movable"]}
    for iface, methods in interfaces().items():
        if not iface.startswith("org.hotplugd."):
            continue
        for member, args in methods.items():
            if member in READ_METHODS:
                continue
            sig = "".join(t for _, t in args)
            path = job if iface.endswith(".Job") else PATH
            calls.append({"id": len(calls), "path": path, "iface": iface, "member": member, "sig": sig,
                          "args": special.get(member, [good[t] for _, t in args])})
    res = stack.run_as_user({"calls": calls})["results"]
    asked = {}
    for c, r in zip(calls, res):
        assert r["outcome"] == "org.freedesktop.DBus.Error.AccessDenied", (c, r)
        m = re.search(r"\((org\.hotplugd\.hotplug1\.[a-z-]+)\)", r["message"])
        assert m and m.group(1) in declared, (c, r)
        asked[c["member"]] = m.group(1)
    assert set(asked) >= {"OnlineBlocks", "OfflineBlocks", "SetNodePolicy", "QuarantineNode", "UnquarantineNode",
                          "RetireNode", "CancelJob", "Reload", "Cancel"}, asked
    assert set(asked.values()) == actions, "actions never asked for: %s" % (actions - set(asked.values()))
    assert str(stack.props(job, "org.hotplugd.Hotplug1.Job")["State"]) == "running"
    mgr.CancelJob(dbus.UInt32(job_id))                      # root may
    for _ in range(200):
        if str(stack.props(job, "org.hotplugd.Hotplug1.Job")["State"]) != "running":
            break
        time.sleep(0.05)
    assert str(stack.props(job, "org.hotplugd.Hotplug1.Job")["State"]) == "cancelled"
    assert snapshot_diff(before, tree_snapshot(stack.root)) == []
    print("\n[trust] every changing method refused for the unprivileged user, with its action: %s" % asked)
