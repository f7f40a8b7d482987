# SPDX-License-Identifier: LGPL-2.1-or-later
"""uevent-inject itself: a real libudev monitor (udevadm monitor, systemd's own) accepts what it sends
in a private network namespace, the subsystem hash passes the kernel BPF filter libudev installs, and
the tool refuses the host's network namespace and bad specs."""

import os
import shutil
import subprocess

from conftest import check_prerequisites, inject_binary


def run_in_netns(script, timeout=30):
    return subprocess.run(["unshare", "--net", "--", "/bin/sh", "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_injector_udevadm_monitor():
    check_prerequisites()
    udevadm = shutil.which("udevadm") or "/usr/bin/udevadm"
    assert os.access(udevadm, os.X_OK), "udevadm (package udev) is needed to check the injector against libudev"
    inj = inject_binary()
    # -s memory makes udevadm install libudev's BPF filter: the node event must be dropped by it,
    # the memory events must pass it (right MurmurHash2 of "memory" in the header).
    script = """
        %(udevadm)s monitor --udev --property -s memory > "$OUT" 2>&1 &
        M=$!
        sleep 0.5
        %(inj)s -s 41 add /devices/system/memory/memory42 memory || exit 3
        %(inj)s -s 50 -e 'add /devices/system/node/node3 node' -e 'online /sys/devices/system/memory/memory42 memory FOO=bar'
        sleep 0.5
        kill $M
        cat "$OUT"
    """ % {"udevadm": udevadm, "inj": inj}
    out_file = "/dev/shm/uevent-inject-test-%d.out" % os.getpid()
    env = dict(os.environ, OUT=out_file)
    try:
        p = subprocess.run(["unshare", "--net", "--", "/bin/sh", "-c", script], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=env)
    finally:
        if os.path.exists(out_file):
            os.unlink(out_file)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, "injection failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace"))
    events = [blk for blk in out.split("\n\n") if "ACTION=" in blk]
    props = [dict(line.split("=", 1) for line in blk.splitlines() if "=" in line and not line.startswith("UDEV"))
             for blk in events]
    assert len(props) == 2, "udevadm monitor saw %d events, expected 2:\n%s" % (len(props), out)
    assert props[0]["ACTION"] == "add" and props[0]["DEVPATH"] == "/devices/system/memory/memory42" \
        and props[0]["SUBSYSTEM"] == "memory" and props[0]["SEQNUM"] == "41" and "USEC_INITIALIZED" in props[0], out
    assert props[1]["ACTION"] == "online" and props[1]["SEQNUM"] == "51" and props[1]["FOO"] == "bar", out
    assert "node3" not in out, "the node event passed a memory-only filter:\n%s" % out


def test_injector_refuses_host_netns():
    check_prerequisites()
    # In a user namespace without privileges over the host's network namespace: even if the guard
    # were broken, the kernel would refuse the multicast (EPERM), so nothing can leak to the host.
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--", inject_binary(), "add",
                        "/devices/system/memory/memory42", "memory"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, "uevent-inject ran in the host's network namespace"
    assert "refusing" in err, "uevent-inject failed in the host netns, but not by its guard: %s" % err


def test_injector_rejects_bad_specs():
    check_prerequisites()
    inj = inject_binary()
    for spec, msg in (("frobnicate /devices/system/memory/memory1 memory", "unknown action"),
                      ("add /devices/system/memory/memory1", "missing SUBSYSTEM"),
                      ("add devices/system/memory/memory1 memory", "must start with /"),
                      ("add /devices/system/memory/memory1 memory SEQNUM=0", "SEQNUM must be a number > 0"),
                      ("add /devices/system/memory/memory1 memory NOEQUALS", "is not KEY=VALUE"),
                      ("add /devices/system/memory/memory{5..2} memory", "range end below start")):
        p = run_in_netns("printf '%%s\\n' 'add /devices/system/memory/memory0 memory' '%s' | %s -v" % (spec, inj))
        err = p.stderr.decode(errors="replace")
        assert p.returncode != 0, "uevent-inject accepted %r" % spec
        assert msg in err, "uevent-inject's message for %r lacks %r: %s" % (spec, msg, err)
        # Nothing half-sent: the valid first line was not sent either (-v prints each sent event).
        assert "UDEV ACTION=" not in err, "uevent-inject sent events before rejecting %r: %s" % (spec, err)
