# SPDX-License-Identifier: LGPL-2.1-or-later
"""rawbus.py — a D-Bus client on a bare socket, for hostile callers.

libdbus and sd-bus refuse to send what a hostile caller sends (a body that lies about its signature,
invalid UTF-8, half a message, a hang-up in the middle of a call), so this speaks the wire protocol
itself: SASL EXTERNAL, Hello, method calls with any signature and any body bytes, many calls in flight
on many connections, and replies matched by serial. Little-endian only; no fd passing.

Run as a script (under setpriv, as the unprivileged test user) it executes a JSON plan of calls and
prints one JSON line of results: python3 rawbus.py ADDRESS < plan.json.
"""

import errno
import json
import os
import selectors
import socket
import struct
import sys
import time

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 0x1
ALLOW_INTERACTIVE_AUTHORIZATION = 0x4

_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "s": 4, "o": 4, "g": 1,
          "a": 4, "(": 8, "{": 8, "v": 1, "h": 4}
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d", "h": "I"}


def split_types(sig):
    """'a(us)ti' -> ['a(us)', 't', 'i']"""
    out, i = [], 0
    while i < len(sig):
        j = _end_of_type(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _end_of_type(sig, i):
    c = sig[i]
    if c == "a":
        return _end_of_type(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth, j = 0, i
        while True:
            if sig[j] in "({":
                depth += 1
            elif sig[j] in ")}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
    return i + 1


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        while len(self.buf) % n:
            self.buf.append(0)

    def put(self, t, v):
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            self.buf += struct.pack("<" + _FIXED[c], v)
        elif c in "so":
            b = v if isinstance(v, bytes) else v.encode()
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += struct.pack("<B", len(b)) + b + b"\0"
        elif c == "v":
            sig, inner = v
            self.put("g", sig)
            self.put(sig, inner)
        elif c == "a":
            elem = t[1:]
            if elem == "t" and isinstance(v, (bytes, bytearray)):      # pre-packed, for 10^6 entries
                self.pad(4)
                self.buf += struct.pack("<I", len(v))
                self.pad(8)
                self.buf += v
                return
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            items = v.items() if isinstance(v, dict) else v
            for item in items:
                self.put(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            for sub, val in zip(split_types(t[1:-1]), v):
                self.put(sub, val)
        else:
            raise ValueError("type %r" % t)


def marshal(sig, values):
    w = Writer()
    for t, v in zip(split_types(sig), values):
        w.put(t, v)
    return bytes(w.buf)


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def align(self, n):
        self.pos = (self.pos + n - 1) // n * n

    def get(self, t):
        c = t[0]
        self.align(_ALIGN[c])
        if c in _FIXED:
            fmt = "<" + _FIXED[c]
            v = struct.unpack_from(fmt, self.data, self.pos)[0]
            self.pos += struct.calcsize(fmt)
            return v
        if c in "so":
            n = struct.unpack_from("<I", self.data, self.pos)[0]
            v = bytes(self.data[self.pos + 4:self.pos + 4 + n]).decode(errors="replace")
            self.pos += 4 + n + 1
            return v
        if c == "g":
            n = self.data[self.pos]
            v = bytes(self.data[self.pos + 1:self.pos + 1 + n]).decode()
            self.pos += 1 + n + 1
            return v
        if c == "v":
            sig = self.get("g")
            return self.get(sig)
        if c == "a":
            n = struct.unpack_from("<I", self.data, self.pos)[0]
            self.pos += 4
            self.align(_ALIGN[t[1]])
            end, out = self.pos + n, []
            while self.pos < end:
                out.append(self.get(t[1:]))
            return out
        if c in "({":
            self.align(8)
            return tuple(self.get(s) for s in split_types(t[1:-1]))
        raise ValueError("type %r" % t)


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body", "sig")

    def args(self):
        r = Reader(self.body)
        return [r.get(t) for t in split_types(self.sig)]


def build(mtype, serial, fields, sig, body, flags=0):
    """A whole message; fields: {code: (type, value)}; sig may lie about body."""
    farr = []
    for code, (t, v) in sorted(fields.items()):
        farr.append((code, (t, v)))
    if sig is not None:
        farr.append((8, ("g", sig)))
    w = Writer()
    w.buf += struct.pack("<BBBBII", ord("l"), mtype, flags, 1, len(body), serial)
    w.put("a(yv)", farr)
    w.pad(8)
    return bytes(w.buf) + body


class Closed(Exception):
    pass


class Conn:
    """One connection; call() for one round trip, send()/pump() for many in flight."""

    def __init__(self, address, timeout=30.0):
        path = None
        for part in address.split(";")[0].split(":", 1)[1].split(","):
            k, _, v = part.partition("=")
            if k == "path":
                path = v
        assert path, "only unix:path= addresses: %r" % address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rbuf = bytearray()
        self.serial = 0
        self.replies = {}
        self.closed = False
        self._auth()
        self.unique_name = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "Hello").args()[0]

    def _auth(self):
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        line = self._line()
        assert line.startswith(b"OK "), "auth failed: %r" % line
        self.sock.sendall(b"BEGIN\r\n")

    def _line(self):
        while b"\r\n" not in self.rbuf:
            d = self.sock.recv(4096)
            if not d:
                raise Closed("closed during auth")
            self.rbuf += d
        line, _, rest = bytes(self.rbuf).partition(b"\r\n")
        self.rbuf = bytearray(rest)
        return line

    def next_serial(self):
        self.serial += 1
        return self.serial

    def message(self, dest, path, iface, member, sig="", args=(), body=None, flags=0, mtype=METHOD_CALL):
        """(serial, bytes) of a method call; body (bytes) overrides marshalling args with sig."""
        serial = self.next_serial()
        fields = {1: ("o", path), 3: ("s", member)}
        if iface:
            fields[2] = ("s", iface)
        if dest:
            fields[6] = ("s", dest)
        if body is None:
            body = marshal(sig, args)
        return serial, build(mtype, serial, fields, sig if sig else None, body, flags)

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.closed = True
            raise Closed(str(e))

    def send(self, *a, **kw):
        serial, data = self.message(*a, **kw)
        self.send_raw(data)
        return serial

    def call(self, *a, **kw):
        serial = self.send(*a, **kw)
        return self.wait(serial)

    def wait(self, serial, timeout=60.0):
        deadline = time.monotonic() + timeout
        while serial not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply to serial %d" % serial)
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not d:
                self.closed = True
                raise Closed("connection closed waiting for serial %d" % serial)
            self.feed(d)
        return self.replies.pop(serial)

    def feed(self, data):
        self.rbuf += data
        while True:
            m = self._parse_one()
            if m is None:
                return
            if m.type in (METHOD_RETURN, ERROR) and 5 in m.fields:
                self.replies[m.fields[5]] = m

    def _parse_one(self):
        b = self.rbuf
        if len(b) < 16:
            return None
        body_len, serial, farr_len = struct.unpack_from("<III", b, 4)
        hdr_end = 16 + farr_len
        hdr_end = (hdr_end + 7) // 8 * 8
        total = hdr_end + body_len
        if len(b) < total:
            return None
        m = Message()
        m.type, m.flags, m.serial = b[1], b[2], serial
        r = Reader(b, 12)
        m.fields = dict(r.get("a(yv)"))
        m.sig = m.fields.get(8, "")
        m.body = bytes(b[hdr_end:total])
        del b[:total]
        return m

    def close(self):
        try:
            self.sock.close()
        finally:
            self.closed = True


def outcome(m):
    """'ok' or the error name of a reply."""
    if m.type == ERROR:
        return m.fields.get(4, "?")
    return "ok"


def error_message(m):
    if m.type == ERROR and m.sig.startswith("s"):
        return m.args()[0]
    return ""


def flood(address, plans, window=32, timeout=300.0):
    """Many connections, each with a list of (dest, path, iface, member, sig, args) calls sent with at most
    `window` in flight. Returns ({outcome: count}, seconds, n_calls)."""
    sel = selectors.DefaultSelector()
    conns = []
    for plan in plans:
        c = Conn(address)
        c.sock.setblocking(False)
        c.todo = list(plan)
        c.inflight = set()
        c.pending_out = bytearray()
        conns.append(c)
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    counts = {}
    t0 = time.monotonic()
    n = 0
    live = len(conns)
    while live:
        assert time.monotonic() - t0 < timeout, "flood did not finish within %.0f s" % timeout
        for key, ev in sel.select(1.0):
            c = key.data
            if ev & selectors.EVENT_WRITE:
                while c.todo and len(c.inflight) < window and len(c.pending_out) < (1 << 20):
                    serial, data = c.message(*c.todo.pop())
                    c.inflight.add(serial)
                    c.pending_out += data
                if c.pending_out:
                    try:
                        k = c.sock.send(c.pending_out)
                        del c.pending_out[:k]
                    except BlockingIOError:
                        pass
            if ev & selectors.EVENT_READ:
                try:
                    d = c.sock.recv(1 << 20)
                except BlockingIOError:
                    d = None
                if d == b"":
                    raise Closed("the bus closed a flood connection")
                if d:
                    c.feed(d)
                    for s in list(c.replies):
                        m = c.replies.pop(s)
                        if s in c.inflight:
                            c.inflight.discard(s)
                            o = outcome(m)
                            counts[o] = counts.get(o, 0) + 1
                            n += 1
            if not c.todo and not c.inflight and not c.pending_out and not getattr(c, "done", False):
                c.done = True
                live -= 1
                sel.unregister(c.sock)
            elif not c.pending_out and (not c.todo or len(c.inflight) >= window):
                sel.modify(c.sock, selectors.EVENT_READ, c)
            else:
                sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    for c in conns:
        c.close()
    return counts, time.monotonic() - t0, n


# ---- script mode: run a plan (JSON on stdin) as whoever we are --------------------------------------

def _decode(v):
    """JSON can't carry bytes or huge arrays compactly: {"bytes": hex}, {"u64s": [start, count, step]},
    {"repeat": [value, count]}."""
    if isinstance(v, dict):
        if "bytes" in v:
            return bytes.fromhex(v["bytes"])
        if "u64s" in v:
            start, count, step = v["u64s"]
            return struct.pack("<%dQ" % count, *range(start, start + count * step, step))
        if "repeat" in v:
            x, count = v["repeat"]
            return struct.pack("<Q", x) * count
        if "str" in v:
            s, count = v["str"]
            return s * count
        if "variant" in v:
            return (v["variant"][0], _decode(v["variant"][1]))
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def run_plan(address, plan):
    """plan: {"calls": [{dest,path,iface,member,sig,args,body?,flags?,hangup?}], "flood": {...}}.
    Each call on its own round trip on one connection, reconnecting when the bus drops us."""
    results = []
    conn = None
    for call in plan.get("calls", []):
        if conn is None or conn.closed:
            conn = Conn(address)
        body = bytes.fromhex(call["body"]) if "body" in call else None
        args = [_decode(a) for a in call.get("args", [])]
        try:
            serial = conn.send(call.get("dest", "org.hotplugd.Hotplug1"), call["path"], call.get("iface"),
                               call["member"], call.get("sig", ""), args, body=body, flags=call.get("flags", 0))
            if call.get("flags", 0) & NO_REPLY_EXPECTED:
                results.append({"id": call.get("id"), "outcome": "no-reply-requested"})
                continue
            if call.get("hangup"):
                conn.close()
                results.append({"id": call.get("id"), "outcome": "hung-up"})
                continue
            m = conn.wait(serial, timeout=call.get("timeout", 60))
            results.append({"id": call.get("id"), "outcome": outcome(m), "message": error_message(m)[:300]})
        except Closed as e:
            results.append({"id": call.get("id"), "outcome": "disconnected-by-bus", "message": str(e)})
            conn = None
        except TimeoutError as e:
            results.append({"id": call.get("id"), "outcome": "timeout", "message": str(e)})
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    out = {"results": results}
    if "flood" in plan:
        f = plan["flood"]
        calls = [(x[0], x[1], x[2], x[3], x[4], [_decode(a) for a in x[5]]) for x in f["calls"]]
        plans = [calls * f["repeat"] for _ in range(f["connections"])]
        counts, secs, n = flood(address, plans, window=f.get("window", 32))
        out["flood"] = {"counts": counts, "seconds": secs, "calls": n}
    if "held" in plan:
        # Calls left in flight on many connections until the test says go on (a line on stdin); then
        # every connection hangs up ("hangup") or waits for its replies ("collect").
        h = plan["held"]
        conns, serials = [], []
        for _ in range(h["connections"]):
            c = Conn(address)
            conns.append(c)
            for x in h["calls"]:
                serials.append((c, c.send(x[0], x[1], x[2], x[3], x[4], [_decode(a) for a in x[5]],
                                          flags=x[6] if len(x) > 6 else 0)))
        sys.stdout.write(json.dumps({"held_sent": len(serials)}) + "\n")
        sys.stdout.flush()
        sys.stdin.readline()
        counts = {}
        messages = set()
        for c, serial in serials:
            if h["then"] == "hangup":
                if not c.closed:
                    c.close()
                o = "hung-up"
            else:
                try:
                    m = c.wait(serial, timeout=h.get("timeout", 60))
                    o = outcome(m)
                    messages.add(error_message(m)[:200])
                except (Closed, TimeoutError) as e:
                    o = type(e).__name__
            counts[o] = counts.get(o, 0) + 1
        for c in conns:
            c.close()
        out["held"] = {"sent": len(serials), "counts": counts, "messages": sorted(messages)[:20]}
    return out


if __name__ == "__main__":
    address = sys.argv[1]
    plan = json.loads(sys.stdin.readline())
    sys.stdout.write(json.dumps(run_plan(address, plan)) + "\n")
