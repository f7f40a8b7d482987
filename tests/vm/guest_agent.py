#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guest_agent.py — the command server inside the VM test bed's guest (stdlib only).

Started by the guest's systemd (hotplugd-vm-agent.service, shipped by testbed.py). It serves the
virtio-serial port named "hotplugd.cmd": every frame is a 4-byte big-endian length followed by
that many bytes of UTF-8 JSON.

  request  {"id": n, "cmd": "shell text", "timeout": seconds, "stdin": "text" | null}
  response {"id": n, "rc": int, "stdout": str, "stderr": str, "timed_out": bool, "duration": s}

On start (and whenever the port is reopened) it sends {"id": 0, "hello": true, "pid": …}. A
request {"id": n, "ping": true} is answered with {"id": n, "pong": true}. Commands run one at a
time in /bin/sh, in their own session, with LANG=C so that error texts are stable; a command
that outruns its timeout has its whole process group killed and gets rc 124.
"""

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time

PORT_NAME = "hotplugd.cmd"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C",
    "LC_ALL": "C",
    "HOME": "/root",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


def find_port():
    for name_file in glob.glob("/sys/class/virtio-ports/*/name"):
        try:
            with open(name_file) as f:
                if f.read().strip() == PORT_NAME:
                    return "/dev/" + os.path.basename(os.path.dirname(name_file))
        except OSError:
            pass
    return None


def read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:          # host side not connected: wait for it
            time.sleep(0.05)
            continue
        buf += chunk
    return buf


def send(fd, obj):
    data = json.dumps(obj).encode()
    frame = struct.pack(">I", len(data)) + data
    view = memoryview(frame)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def run(req):
    start = time.monotonic()
    timeout = float(req.get("timeout") or 60)
    stdin = req.get("stdin")
    proc = subprocess.Popen(["/bin/sh", "-c", req["cmd"]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                            cwd="/", start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(stdin.encode() if stdin is not None else b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    return {"id": req["id"], "rc": 124 if timed_out else proc.returncode,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"),
            "timed_out": timed_out, "duration": time.monotonic() - start}


def main():
    port = None
    for _ in range(600):
        port = find_port()
        if port and os.path.exists(port):
            break
        time.sleep(0.1)
    else:
        print(f"no virtio port named {PORT_NAME}", file=sys.stderr)
        return 1
    fd = os.open(port, os.O_RDWR)
    send(fd, {"id": 0, "hello": True, "pid": os.getpid()})
    while True:
        (length,) = struct.unpack(">I", read_exact(fd, 4))
        try:
            req = json.loads(read_exact(fd, length))
        except ValueError as e:
            send(fd, {"id": -1, "error": f"bad request: {e}"})
            continue
        if req.get("ping"):
            send(fd, {"id": req.get("id"), "pong": True})
            continue
        try:
            resp = run(req)
        except Exception as e:  # report, never die on a bad request
            resp = {"id": req.get("id"), "rc": 125, "stdout": "", "stderr": f"agent: {e!r}",
                    "timed_out": False, "duration": 0}
        send(fd, resp)


if __name__ == "__main__":
    sys.exit(main())
