# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_large.py — a host with 65,536 memory blocks (8 TiB of 128 MiB blocks): the latency of
hotplugctl status and list-blocks --json, measured and printed, not asserted."""

import json
import time

import pytest

from busfixture import Stack


@pytest.fixture
def big():
    s = Stack("large", big=65536)
    yield s
    s.cleanup()


def timed(stack, *args, runs=5):
    best = None
    for _ in range(runs):
        t = time.monotonic()
        p = stack.ctl("--json=short", *args[1:], echo=False) if args[0] == "--json" else stack.ctl(*args, echo=False)
        dt = time.monotonic() - t
        assert p.returncode == 0, p.err
        best = dt if best is None else min(best, dt)
    return best, p


def test_65536_blocks_latency(big, capsys):
    status, p = timed(big, "status", runs=5)
    assert "65536 blocks" in p.out
    ranges, p = timed(big, "--json", "list-blocks", runs=3)
    assert sum(r["blocks"] for r in json.loads(p.out)) == 65536
    every, p = timed(big, "--json", "list-blocks", "--all", runs=3)
    assert len(json.loads(p.out)) == 65536
    human, p = timed(big, "list-blocks", "--all", runs=3)
    report = ("\n65,536 blocks: tree generated in %.1f s, daemon ready in %.2f s\n"
              "  hotplugctl status                : %6.1f ms (best of 5)\n"
              "  hotplugctl list-blocks --json    : %6.1f ms (ranges, best of 3)\n"
              "  hotplugctl list-blocks --all --json: %6.1f ms (65,536 rows, best of 3)\n"
              "  hotplugctl list-blocks --all     : %6.1f ms (65,536 rows, best of 3)\n"
              % (big.generate_seconds, big.ready_seconds, status * 1000, ranges * 1000, every * 1000, human * 1000))
    with capsys.disabled():
        print(report)
