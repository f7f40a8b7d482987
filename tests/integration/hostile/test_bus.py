# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile D-Bus callers: every method of every interface (read from the committed introspection XML) with
wrong signatures, out-of-range, empty, huge, non-UTF-8 and path-like arguments, from the unprivileged user
and from root; a flood from 64 connections; hang-ups in the middle of calls and while polkit thinks;
polkit dying. Afterwards the daemon must be alive, answer, have changed nothing (every byte and mode of
the tree, the StateDirectory, every property) and hold no more fds and not much more memory."""

import itertools
import os
import struct
import time
import xml.etree.ElementTree as ET

from conftest import BUS, MGR, PATH, SOURCE_DIR, HostileStack as HostileStackCalls, count_outcomes, fd_count, \
    fd_targets, rawbus, rss_kib, snapshot_diff

NODE_PATH = PATH + "/node/%s"
JOB_PATH = PATH + "/job/%s"
NODE_IFACE = "org.hotplugd.Hotplug1.Node"
JOB_IFACE = "org.hotplugd.Hotplug1.Job"
PROPS = "org.freedesktop.DBus.Properties"
ACTIONS = ["online-blocks", "offline-blocks", "set-policy", "quarantine", "retire-node", "cancel-job", "reload"]

# busfixture.DEFAULT_SPEC: which blocks exist, which are offline, which can be offlined.
EXISTING = set(range(0, 8)) | set(range(32, 48)) | set(range(64, 84))
OFFLINE = set(range(44, 48)) | set(range(80, 84))
NODES = {0, 1, 2}
READ_METHODS = {"ListNodes", "ListBlocks", "ListBlockRanges", "ListBlockRuns", "PlanRetire", "ListJobs", "Get", "GetAll",
                "Introspect", "Ping", "GetMachineId"}
VALID_ZONES = {"movable", "kernel", "auto"}
VALID_POLICIES = {"offline", "online", "online_kernel", "online_movable", "auto-movable", "auto", "inherit"}

MIB = 1 << 20
HUGE = 10 ** 6


def interfaces():
    """{interface: {method: [(arg name, type), ...in-args]}} from dbus/*.xml (what the vtables export)."""
    out = {}
    for name in ("Manager", "Node", "Job"):
        root = ET.parse(os.path.join(SOURCE_DIR, "dbus", "org.hotplugd.Hotplug1.%s.xml" % name)).getroot()
        for iface in root.findall("interface"):
            out[iface.get("name")] = {m.get("name"): [(a.get("name"), a.get("type")) for a in m.findall("arg")
                                                      if a.get("direction", "in") == "in"]
                                      for m in iface.findall("method")}
    return out


# ---- hostile values, per argument --------------------------------------------------------------------

U32 = [0, 1, 2, 3, 1023, 1024, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]
I32 = [-1, -2, -2 ** 31, 2 ** 31 - 1, 0, 2, 3, 1024]
FLAGS = [0, 1, 2, 4, 7, 8, 2 ** 63, 2 ** 64 - 1]
JOB_IDS = [0, 1, 2 ** 31, 2 ** 32 - 1]
BLOCKS = [[], [0], [44], [40], [2 ** 64 - 1], [2 ** 63], [44, 2 ** 64 - 1], [999999], list(range(0, 8)),
          {"repeat": [44, HUGE]}, {"repeat": [40, HUGE]}, {"u64s": [0, HUGE, 1]}, {"repeat": [2 ** 64 - 1, HUGE]}]
STRINGS = ["", "movable", "kernel", "auto", "offline", "online", "inherit", "online_movable", "MOVABLE", "movable\n",
           " movable", "movable ", "dma", "Normal", "online_movable\x01", "../../../../etc/passwd",
           "/sys/devices/system/memory/memory44/state", "memory44/state", "%s%n%s%n%x", "movable\u200b",
           "\u00f3nline", {"str": ["x", 65536]}, {"str": ["y", 4 * MIB]}]
IFACES = ["", MGR, NODE_IFACE, JOB_IFACE, "org.hotplugd.Hotplug1.Nope", "../../x", {"str": ["i", 65536]}]
PROP_NAMES = ["", "Policy", "NBlocks", "Id", "Quarantined", "Nope", "../Policy", {"str": ["p", 65536]}]
VARIANTS = [{"variant": ["s", "online"]}, {"variant": ["u", 1]}, {"variant": ["ay", {"bytes": "fffe"}]},
            {"variant": ["at", {"repeat": [1, 1000]}]}]

WRONG_SIGS = ["", "s", "u", "i", "t", "b", "d", "o", "g", "y", "x", "at", "au", "ai", "as", "ay", "v", "(ut)",
              "a{sv}", "uu", "ss", "tt", "ats", "atsu", "sat", "us", "su", "ut", "tu", "aat", "(ats)"]
DEFAULT = {"u": 1, "i": 1, "t": 44, "s": "movable", "b": 1, "d": 1.5, "o": "/x", "g": "s", "y": 255, "x": -1,
           "at": [44], "au": [44], "ai": [44], "as": ["movable"], "ay": {"bytes": "fffe6d6f7661626c65"},
           "v": {"variant": ["s", "x"]}, "(ut)": [1, 0], "a{sv}": {}, "aat": [[44]], "(ats)": [[44], "movable"]}


def values(member, name, t):
    if t == "u" and name == "node":
        return U32
    if t == "u" and name == "id":
        return JOB_IDS
    if t == "i":
        return I32
    if t == "t":
        return FLAGS
    if t == "at":
        return BLOCKS
    if t == "s" and name in ("zone", "policy"):
        return STRINGS
    if t == "s" and name == "interface_name":
        return IFACES
    if t == "s" and name == "property_name":
        return PROP_NAMES
    if t == "v":
        return VARIANTS
    raise AssertionError("%s(%s %s): no hostile values for this argument: extend test_bus.py" % (member, t, name))


def is_huge(v):
    return isinstance(v, dict) and ("repeat" in v or "u64s" in v or ("str" in v and v["str"][1] >= MIB))


def block_set(v):
    if isinstance(v, list):
        return set(v)
    if "repeat" in v:
        return {v["repeat"][0]}
    start, count, step = v["u64s"]
    return set(range(start, start + count * step, step))


def s_value(v):
    return v if isinstance(v, str) else None


def root_safe(member, args):
    """Whether a call from root (authorized without polkit) is certain to change nothing: the argument
    checks refuse it, or it asks for what already is."""
    if member in READ_METHODS or member in ("Set", "CancelJob", "Cancel", "Reload", "UnquarantineNode"):
        return True
    if member == "OnlineBlocks":
        b = block_set(args[0])
        return not b or not b <= EXISTING or s_value(args[1]) not in VALID_ZONES or not (b & OFFLINE)
    if member == "OfflineBlocks":
        b = block_set(args[0])
        return not b <= EXISTING or b <= OFFLINE | {0}
    if member == "SetNodePolicy":
        return args[0] not in NODES or s_value(args[1]) not in VALID_POLICIES
    if member == "QuarantineNode":
        return args[0] not in NODES
    if member == "RetireNode":
        return args[0] not in NODES or args[1] & ~7 != 0
    raise AssertionError("root_safe: unknown method %s" % member)


def valid_request(member, args):
    """A mutating call whose arguments pass every check: only polkit stands in the way."""
    if member in READ_METHODS or member in ("Set", "CancelJob", "Cancel"):
        return False
    if member == "OnlineBlocks":
        b = block_set(args[0])
        return bool(b) and b <= EXISTING and s_value(args[1]) in VALID_ZONES
    if member == "OfflineBlocks":
        return bool(block_set(args[0])) and block_set(args[0]) <= EXISTING
    if member == "SetNodePolicy":
        return args[0] in NODES and (s_value(args[1]) in VALID_POLICIES or args[1] == "")
    if member in ("QuarantineNode", "UnquarantineNode"):
        return args[0] in NODES
    if member == "RetireNode":
        return args[0] in NODES and args[1] & ~7 == 0
    return member == "Reload"


def targets(iface):
    if iface == MGR:
        return [PATH]
    if iface == NODE_IFACE:
        return [NODE_PATH % 1, NODE_PATH % 4294967295, NODE_PATH % "00001"]
    return [JOB_PATH % 1, JOB_PATH % 4294967295, JOB_PATH % 18446744073709551617]


def matrix(for_root):
    """Every hostile call, as rawbus plan entries (root: only those certain to change nothing)."""
    calls = []
    std = {"org.freedesktop.DBus.Properties": {"Get": [("interface_name", "s"), ("property_name", "s")],
                                               "GetAll": [("interface_name", "s")],
                                               "Set": [("interface_name", "s"), ("property_name", "s"), ("value", "v")]}}
    ifs = interfaces()
    for iface, methods in ifs.items():
        if not iface.startswith("org.hotplugd."):
            continue
        methods = {m: a for m, a in methods.items() if m not in ("Get", "GetAll", "Set", "Introspect", "Ping",
                                                                 "GetMachineId")}
        for path in targets(iface):
            for member, args in list(methods.items()) + [(m, a) for i in std.values() for m, a in i.items()] + \
                    [("Introspect", []), ("Ping", []), ("GetMachineId", [])]:
                call_iface = PROPS if member in ("Get", "GetAll", "Set") else \
                    ("org.freedesktop.DBus.Introspectable" if member == "Introspect" else
                     "org.freedesktop.DBus.Peer" if member in ("Ping", "GetMachineId") else iface)
                if member in ("Ping", "GetMachineId", "Introspect"):
                    combos = [()]
                else:
                    combos = list(itertools.product(*[values(member, n, t) for n, t in args]))
                    # A huge argument is sent with a few partners, not with all of them.
                    combos = [c for c in combos if sum(map(is_huge, c)) <= 1 and
                              (not any(map(is_huge, c)) or all(not isinstance(x, str) or x in ("movable", "", "dma")
                                                               for x in c))]
                if member in ("Get", "GetAll", "Set") and path != targets(iface)[0]:
                    combos = combos[:12]
                sig = "".join(t for _, t in args)
                for c in combos:
                    if for_root and not root_safe(member, c):
                        continue
                    calls.append({"path": path, "iface": call_iface, "member": member, "sig": sig, "args": list(c),
                                  "valid": (not for_root) and path == PATH and valid_request(member, c)})
                if member in ("Get", "GetAll", "Set", "Introspect", "Ping", "GetMachineId") or path != targets(iface)[0]:
                    continue
                # Wrong signatures: the daemon must refuse before it looks at anything.
                for w in WRONG_SIGS:
                    if w == sig:
                        continue
                    wargs = [DEFAULT[t] for t in rawbus.split_types(w)]
                    calls.append({"path": path, "iface": call_iface, "member": member, "sig": w, "args": wargs})
                # Non-UTF-8 in a string argument: only a raw message can carry it; the bus itself refuses.
                if "s" in sig:
                    parts = []
                    for n, t in args:
                        parts.append((t, {"at": [44], "u": 1, "t": 0, "s": "movable", "i": -1}[t]))
                    body = bytearray(rawbus.marshal("".join(t for t, _ in parts), [v for _, v in parts]))
                    k = body.index(b"movable")
                    body[k:k + 7] = b"mo\xff\xfeble"
                    calls.append({"path": path, "iface": call_iface, "member": member, "sig": sig,
                                  "body": bytes(body).hex(), "bus_reject": True})
                # Asking for interactive authorization, and for no reply at all.
                if not for_root and args:
                    good = [{"at": [44], "u": 1, "t": 1, "s": "movable", "i": -1}[t] for _, t in args]
                    calls.append({"path": path, "iface": call_iface, "member": member, "sig": sig, "args": good,
                                  "flags": rawbus.ALLOW_INTERACTIVE_AUTHORIZATION})
                    calls.append({"path": path, "iface": call_iface, "member": member, "sig": sig, "args": good,
                                  "flags": rawbus.NO_REPLY_EXPECTED})
    # Messages that are not D-Bus at all: the bus drops the connection, hotplugd never sees them.
    for sig, body in [("at", b"\x02\x00"),                                  # body shorter than the signature
                      ("at", struct.pack("<I", 64 * MIB) + b"\0" * 4),      # array length beyond the body
                      ("a" * 40 + "t", b"\0" * 8),                          # nesting deeper than 32
                      ("s", struct.pack("<I", 3) + b"abc"),                 # string without its NUL
                      ("o", struct.pack("<I", 6) + b"//x/..\0"),            # invalid object path
                      ("h", struct.pack("<I", 0))]:                         # an fd that was not passed
        calls.append({"path": PATH, "iface": MGR, "member": "OfflineBlocks", "sig": sig, "body": body.hex(),
                      "bus_reject": True})
    for i, c in enumerate(calls):
        c["id"] = i
    return calls


FINE_ERRORS = {"org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.DBus.Error.AccessDenied",
               "org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownObject",
               "org.freedesktop.DBus.Error.UnknownInterface", "org.freedesktop.DBus.Error.UnknownProperty",
               "org.freedesktop.DBus.Error.PropertyReadOnly",
               "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"}


def check_results(calls, results, unprivileged):
    """Every reply is one we expect: no timeouts, no internal errors, unprivileged never succeeds in a change,
    and a well-formed change from the unprivileged user is refused by polkit, naming the action."""
    by_id = {c["id"]: c for c in calls}
    problems = []
    for r in results:
        c, o = by_id[r["id"]], r["outcome"]
        what = "%s %s.%s(%s) %s" % (c["path"], c["iface"], c["member"], c["sig"], str(c.get("args", c.get("body")))[:80])
        if o == "disconnected-by-bus":
            if not c.get("bus_reject"):
                problems.append("%s: the bus dropped the connection: %s" % (what, r.get("message")))
            continue
        if c.get("bus_reject"):
            # If the bus let it through, hotplugd must have refused it as malformed.
            if o not in ("org.freedesktop.DBus.Error.InvalidArgs",):
                problems.append("%s: malformed message answered %s" % (what, o))
            continue
        if o == "no-reply-requested":
            continue
        if o == "timeout" or o.startswith("System.Error.") or o in ("org.freedesktop.DBus.Error.NoReply",
                                                                    "org.freedesktop.DBus.Error.Failed"):
            problems.append("%s: %s %s" % (what, o, r.get("message", "")))
            continue
        if o != "ok" and o not in FINE_ERRORS and not o.startswith("org.hotplugd.Hotplug1.Error."):
            problems.append("%s: unexpected error %s %s" % (what, o, r.get("message", "")))
        if unprivileged and o == "ok" and c["member"] not in READ_METHODS:
            problems.append("%s: the unprivileged user succeeded" % what)
        if unprivileged and c.get("valid") and c.get("flags", 0) == 0:
            if o != "org.freedesktop.DBus.Error.AccessDenied" or "org.hotplugd.hotplug1." not in r.get("message", ""):
                problems.append("%s: expected AccessDenied naming the polkit action, got %s %s"
                                % (what, o, r.get("message", "")))
    assert not problems, "%d unexpected outcomes:\n  %s" % (len(problems), "\n  ".join(problems[:40]))


def assert_unchanged(stack, before, view_before):
    after = stack.everything()
    diff = snapshot_diff(before, after)
    assert not diff, "hostile callers changed the tree or the StateDirectory:\n  %s" % "\n  ".join(diff)
    view = stack.bus_view()
    assert view == view_before, "what the daemon reports changed:\n%s\n%s" % (
        [k for k in view if view[k] != view_before.get(k)], view)


def report(title, n, outcomes, extra=""):
    print("\n[hostile] %s: %d calls; outcomes %s%s" % (title, n, outcomes, extra))


def test_every_method_hostile_unprivileged(stack):
    """The whole matrix from the unprivileged user, polkit saying no to everything."""
    before, view = stack.everything(), stack.bus_view()
    calls = matrix(for_root=False)
    assert len({c["member"] for c in calls}) >= 19
    t = time.monotonic()
    res = stack.run_as_user({"calls": calls})["results"]
    secs = time.monotonic() - t
    assert len(res) == len(calls)
    report("every method, unprivileged", len(res), count_outcomes(res), "; %.1f s" % secs)
    check_results(calls, res, unprivileged=True)
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)
    # Every well-formed change was put to polkit and refused; none reached the worker.
    assert "requested by" not in stack.log(), stack.log()[-3000:]


def test_every_method_hostile_root(stack):
    """The matrix from root (authorized without polkit), where it is certain to change nothing: the checks
    after authorization (blocks, zones, nodes, flags, no-op requests) must hold on their own."""
    before, view = stack.everything(), stack.bus_view()
    calls = matrix(for_root=True)
    t = time.monotonic()
    res = stack.run_as_root({"calls": calls})["results"]
    secs = time.monotonic() - t
    report("every method, root", len(res), count_outcomes(res), "; %.1f s" % secs)
    check_results(calls, res, unprivileged=False)
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)


FLOOD_CALLS = [
    (BUS, PATH, MGR, "ListNodes", "", []),
    (BUS, PATH, MGR, "ListBlocks", "i", [-1]),
    (BUS, PATH, MGR, "ListBlocks", "i", [1]),
    (BUS, PATH, MGR, "ListBlockRanges", "i", [-1]),
    (BUS, PATH, PROPS, "GetAll", "s", [MGR]),
    (BUS, PATH, PROPS, "Get", "ss", [MGR, "NBlocks"]),
    (BUS, NODE_PATH % 1, PROPS, "GetAll", "s", [NODE_IFACE]),
    (BUS, PATH, MGR, "PlanRetire", "u", [2]),
    (BUS, PATH, MGR, "PlanRetire", "u", [2 ** 32 - 1]),
    (BUS, PATH, MGR, "ListJobs", "", []),
    (BUS, PATH, "org.freedesktop.DBus.Introspectable", "Introspect", "", []),
    (BUS, PATH, "org.freedesktop.DBus.Peer", "Ping", "", []),
    (BUS, PATH, MGR, "OnlineBlocks", "ats", [[999999], "movable"]),
    (BUS, PATH, MGR, "OfflineBlocks", "at", [[]]),
    (BUS, PATH, MGR, "SetNodePolicy", "us", [7, "online"]),
    (BUS, PATH, MGR, "RetireNode", "ut", [1, 1 << 40]),
    (BUS, PATH, MGR, "CancelJob", "u", [5]),
    (BUS, PATH, MGR, "OnlineBlocks", "s", ["movable"]),
    (BUS, PATH, PROPS, "Get", "ss", ["org.hotplugd.Hotplug1.Nope", "X"]),
    (BUS, PATH, MGR, "QuarantineNode", "u", [1]),          # asks polkit: 1 call in 20
]


def test_flood_rss_and_fds_flat(stack):
    """64 connections x 1000 calls from the unprivileged user (reads, refusals, polkit questions), after a
    warm-up, between two runs of the hostile matrix: fds equal, RSS within a small bound, and reads still
    fast."""
    before, view = stack.everything(), stack.bus_view()
    warm = stack.run_as_user({"calls": matrix(for_root=False),
                              "flood": {"connections": 8, "repeat": 10, "calls": FLOOD_CALLS}})
    time.sleep(0.5)
    rss0, fds0, fdl0 = rss_kib(stack.pid), fd_count(stack.pid), fd_targets(stack.pid)

    t = time.monotonic()
    out = stack.run_as_user({"flood": {"connections": 64, "repeat": 50, "calls": FLOOD_CALLS, "window": 32}},
                            timeout=300)
    flood = out["flood"]
    secs = time.monotonic() - t
    assert flood["calls"] == 64 * 1000, flood
    report("flood 64 connections x 1000", flood["calls"], flood["counts"],
           "; %.1f s (%.0f calls/s)" % (flood["seconds"], flood["calls"] / flood["seconds"]))
    assert secs < 180, "the flood took %.0f s" % secs
    assert "timeout" not in flood["counts"]
    assert flood["counts"].get("ok", 0) == 64 * 50 * 11, flood["counts"]
    assert flood["counts"].get("org.freedesktop.DBus.Error.AccessDenied", 0) == 64 * 50, flood["counts"]

    again = stack.run_as_user({"calls": matrix(for_root=False)})
    check_results(matrix(for_root=False), again["results"], unprivileged=True)
    time.sleep(0.5)
    rss1, fds1, fdl1 = rss_kib(stack.pid), fd_count(stack.pid), fd_targets(stack.pid)
    latency = stack.alive_and_answering()
    n = len(warm["results"]) + warm["flood"]["calls"] + flood["calls"] + len(again["results"])
    print("[hostile] flood run: %d calls in all; RSS %d KiB after warm-up -> %d KiB after (%+d KiB); "
          "fds %d -> %d; ListNodes round trip afterwards %.1f ms" % (n, rss0, rss1, rss1 - rss0, fds0, fds1, latency * 1e3))
    assert fds1 == fds0, "fds leaked:\nbefore %s\nafter %s" % (fdl0, fdl1)
    assert rss1 - rss0 <= 8 * 1024, "RSS grew by %d KiB" % (rss1 - rss0)
    assert_unchanged(stack, before, view)


def test_hangup_mid_call(stack):
    """Callers that vanish with calls in flight (a 10^6-entry array being read, a polkit question, a write
    request), half-sent messages, and bytes that are not D-Bus: nothing changes, nothing leaks."""
    before, view = stack.everything(), stack.bus_view()
    fds0 = fd_count(stack.pid)
    calls = []
    for i in range(40):
        # Hung up right after sending: while the bus or hotplugd still reads a 10^6-entry array, while a
        # polkit question is out, or before a reply could be sent; and some answered calls in between.
        calls += [{"path": PATH, "iface": MGR, "member": "OfflineBlocks", "sig": "at", "args": [{"repeat": [40, HUGE]}],
                   "hangup": True},
                  {"path": PATH, "iface": MGR, "member": "ListBlocks", "sig": "i", "args": [-1]},
                  {"path": PATH, "iface": MGR, "member": "OnlineBlocks", "sig": "ats", "args": [[44], "movable"],
                   "hangup": True},
                  {"path": PATH, "iface": MGR, "member": "RetireNode", "sig": "ut", "args": [2, 0], "hangup": True},
                  {"path": PATH, "iface": MGR, "member": "ListBlocks", "sig": "i", "args": [-1], "hangup": True},
                  {"path": PATH, "iface": MGR, "member": "SetNodePolicy", "sig": "us", "args": [1, "online"]},
                  {"path": PATH, "iface": MGR, "member": "OfflineBlocks", "sig": "at", "args": [[40, 41]],
                   "hangup": True}]
    res = stack.run_as_user({"calls": calls})["results"]
    n = len(res)
    # Root hangs up too, on calls that change nothing.
    rc = []
    for i in range(20):
        rc += [{"path": PATH, "iface": MGR, "member": "OfflineBlocks", "sig": "at", "args": [{"repeat": [44, HUGE]}]},
               {"path": PATH, "iface": MGR, "member": "OnlineBlocks", "sig": "ats", "args": [list(range(0, 8)), "auto"],
                "hangup": True}]
    n += len(stack.run_as_root({"calls": rc})["results"])
    # Half a message, then gone; garbage after the handshake; a hang-up during the handshake.
    for cut in (1, 15, 16, 40, 200, 4000):
        c = rawbus.Conn(stack.address)
        _, data = c.message(BUS, PATH, MGR, "OfflineBlocks", "at", [[40] * 1000])
        c.send_raw(data[:cut])
        c.close()
        n += 1
    for junk in (b"\0" * 64, b"GET / HTTP/1.1\r\n\r\n", os.urandom(4096)):
        c = rawbus.Conn(stack.address)
        try:
            c.send_raw(junk)
        except rawbus.Closed:
            pass
        c.close()
        n += 1
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(stack.address.split("path=")[1].split(",")[0])
    s.sendall(b"\0AUTH EXTERNAL 30\r\n")
    s.close()
    report("hang-ups and half messages", n, count_outcomes(res))
    time.sleep(1.0)
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)
    assert fd_count(stack.pid) == fds0


def _held_calls():
    return [(BUS, PATH, MGR, "OfflineBlocks", "at", [[40, 41]]),
            (BUS, PATH, MGR, "OnlineBlocks", "ats", [[44, 45], "movable"]),
            (BUS, PATH, MGR, "SetNodePolicy", "us", [1, "online_movable"]),
            (BUS, PATH, MGR, "QuarantineNode", "u", [2]),
            (BUS, PATH, MGR, "RetireNode", "ut", [2, 0]),
            (BUS, PATH, MGR, "Reload", "", []),
            (BUS, PATH, MGR, "OfflineBlocks", "at", [{"repeat": [64, 100000]}], rawbus.ALLOW_INTERACTIVE_AUTHORIZATION)]


def _wait_polkit_has_calls(stack, timeout=30):
    deadline = time.monotonic() + timeout
    while not stack.polkit_mock("HaveHangingCalls"):
        assert time.monotonic() < deadline, "polkit (mock) never received the calls"
        time.sleep(0.05)
    time.sleep(1.0)   # the rest of the burst


def test_hangup_while_polkit_pending(stack):
    """Unprivileged callers ask for changes; polkit hangs; the daemon keeps answering others; the callers
    hang up; then polkit says YES to every one of those questions. Nothing may happen: the questions of
    callers that are gone are dropped. RSS comes back down and no fd stays behind."""
    before, view = stack.everything(), stack.bus_view()
    rss0, fds0 = rss_kib(stack.pid), fd_count(stack.pid)
    stack.polkit_mock("SimulateHang", True)
    p, sent = stack.start_as_user({"held": {"connections": 32, "calls": _held_calls(), "then": "hangup"}})
    try:
        _wait_polkit_has_calls(stack)
        rss_pending = rss_kib(stack.pid)
        # The daemon is not blocked by polkit: reads answer at once.
        lat = max(stack.alive_and_answering() for _ in range(20))
        assert lat < 1.0, "ListNodes took %.2f s while polkit was pending" % lat
    finally:
        held = stack.finish_held(p)
    time.sleep(1.0)
    stack.polkit_mock("SetAllowed", ["org.hotplugd.hotplug1." + a for a in ACTIONS])
    stack.polkit_mock("AllowUnknown", True)
    stack.polkit_mock("ReleaseHangingCalls")
    time.sleep(2.0)
    stack.polkit_mock("SimulateHang", False)
    stack.polkit_mock("AllowUnknown", False)
    stack.polkit_mock("SetAllowed", [])
    rss1, fds1 = rss_kib(stack.pid), fd_count(stack.pid)
    report("hang-up while polkit pending", sent, held["counts"],
           "; RSS %d KiB before, %d KiB with %d questions pending, %d KiB after; fds %d -> %d"
           % (rss0, rss_pending, sent, rss1, fds0, fds1))
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)
    assert "requested by" not in stack.log() and "set by" not in stack.log() and "quarantined by" not in stack.log(), \
        stack.log()[-3000:]
    assert fds1 == fds0
    assert rss1 - rss0 <= 8 * 1024, "RSS grew by %d KiB" % (rss1 - rss0)


def test_pending_calls_bounded_per_caller(stack):
    """One caller with 300 changes in flight while polkit hangs: the bus bounds what one connection may
    have pending (max_replies_per_connection); the rest are refused by the bus, not queued in hotplugd.
    Then polkit says no to all of them: every caller gets an answer."""
    before, view = stack.everything(), stack.bus_view()
    stack.polkit_mock("SimulateHang", True)
    calls = [(BUS, PATH, MGR, "QuarantineNode", "u", [2])] * 300
    p, sent = stack.start_as_user({"held": {"connections": 1, "calls": calls, "then": "collect", "timeout": 60}})
    try:
        _wait_polkit_has_calls(stack)
        stack.polkit_mock("SimulateHang", False)
        stack.polkit_mock("ReleaseHangingCalls")
    finally:
        held = stack.finish_held(p)
    report("300 pending changes on one connection", sent, held["counts"], "; %s" % held["messages"][:3])
    assert sum(held["counts"].values()) == 300
    assert set(held["counts"]) <= {"org.freedesktop.DBus.Error.AccessDenied",
                                   "org.freedesktop.DBus.Error.LimitsExceeded"}, held
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)


def test_polkit_dies_while_pending(stack):
    """polkit crashes with questions pending: every waiting caller is refused (never allowed by default),
    and later changes are refused while polkit is gone; reads go on."""
    before, view = stack.everything(), stack.bus_view()
    stack.polkit_mock("SimulateHang", True)
    p, sent = stack.start_as_user({"held": {"connections": 8, "calls": _held_calls(), "then": "collect"}})
    try:
        _wait_polkit_has_calls(stack)
        mock = [x for x in stack.procs if "dbusmock" in " ".join(map(str, x.args))][0]
        mock.kill()
        mock.wait()
    finally:
        held = stack.finish_held(p)
    report("polkit killed with questions pending", sent, held["counts"], "; %s" % held["messages"][:2])
    assert held["counts"] == {"org.freedesktop.DBus.Error.AccessDenied": sent}, held
    assert any("could not be checked" in m for m in held["messages"]), held["messages"]
    res = stack.run_as_user({"calls": [{"id": 0, "path": PATH, "iface": MGR, "member": "QuarantineNode", "sig": "u",
                                        "args": [1]},
                                       {"id": 1, "path": PATH, "iface": MGR, "member": "ListNodes", "sig": ""}]})
    assert [r["outcome"] for r in res["results"]] == ["org.freedesktop.DBus.Error.AccessDenied", "ok"], res
    stack.alive_and_answering()
    assert_unchanged(stack, before, view)


def test_polkit_answer_for_a_vanished_block(rt, monkeypatch):
    """128 OfflineBlocks calls (64 KiB each) from the unprivileged user wait for polkit (the bus lets hotplugd
    have 128 calls pending at most: any more are refused, AccessDenied, never queued); meanwhile the block is
    hot-removed (uevent); then polkit says yes to all. Each call, dispatched again with the answer, must be
    refused (NoSuchBlock) and its polkit question freed: three rounds after a warm-up, RSS flat. A first round
    sends 2,000 at once: hotplugd must stay on the bus. Before the fix each round
    kept 8 MiB (the answered questions held their messages forever); before that, so many questions took
    hotplugd off the bus (one match rule per question, 512 allowed)."""
    import dbus
    from conftest import asan_small_quarantine, busfixture, events
    monkeypatch.setenv("ASAN_OPTIONS", asan_small_quarantine())    # RSS is measured (conftest.py)
    h = rt(spec=events.default_spec())
    os.chmod(h.tmp, 0o755)                      # the unprivileged caller must reach the bus socket
    user = busfixture.ensure_test_user()
    bus = dbus.bus.BusConnection(h.bus_address)
    mock = bus.get_object("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")

    def pk(method, *args):
        return getattr(mock, method)(*args, dbus_interface="org.freedesktop.DBus.Mock")

    shim = type("S", (), {"user": user, "address": h.bus_address})()
    h.wait_converged()
    big = (BUS, PATH, MGR, "OfflineBlocks", "at", [{"repeat": [5, 8000]}])
    small = (BUS, PATH, MGR, "OfflineBlocks", "at", [[5]])
    rss, counts = [], {}
    # Round 0: 2,000 questions at once (what took hotplugd off the bus); rounds 1-4: RSS.
    for rnd in range(5):
        rss.append(rss_kib(h.proc.pid))
        pk("SimulateHang", True)
        plan = {"connections": 20, "calls": [small] * 100} if rnd == 0 else {"connections": 4, "calls": [big] * 40}
        p, sent = HostileStackCalls.start_as_user(shim, {"held": dict(plan, then="collect")})
        try:
            deadline = time.monotonic() + 60
            while not pk("HaveHangingCalls"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)
            h.tree.remove_block(h.root, 5)
            h.inject("remove", "/devices/system/memory/memory5", "memory")
            h.wait_model(lambda m: [b for b in m["blocks"] if b["index"] == 5], "block 5 gone")
            pk("SimulateHang", False)
            pk("ReleaseHangingCalls")
        finally:
            held = HostileStackCalls.finish_held(shim, p)
        for k, v in held["counts"].items():
            counts[k] = counts.get(k, 0) + v
        assert set(held["counts"]) <= {"org.hotplugd.Hotplug1.Error.NoSuchBlock",
                                       "org.freedesktop.DBus.Error.AccessDenied"}, held
        assert held["counts"].get("org.hotplugd.Hotplug1.Error.NoSuchBlock", 0) >= 100, held
        assert "Transport endpoint is not connected" not in h.all_stderr(), "hotplugd fell off the bus"
        mgr = dbus.Interface(bus.get_object(BUS, PATH), MGR)
        mgr.ListNodes()
        h.tree.add_block(h.root, 5, node=0, state="online", zone="Normal")
        h.inject("add", "/devices/system/memory/memory5", "memory")
        h.wait_converged()
        time.sleep(0.3)
        h.assert_alive()
    rss.append(rss_kib(h.proc.pid))
    print("\n[hostile] polkit answered for a vanished block: 2000 + 4 x %d calls, outcomes %s; RSS by round %s KiB" % (
        sent, counts, rss))
    assert rss[-1] - rss[2] <= 4 * 1024, "RSS grew by %d KiB: answered polkit questions were kept" % (rss[-1] - rss[2])
