# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the long runs use the harnesses of tests/integration: `hp` (events: private network
namespace, real uevents) and `rt` (the same with the fake kernel and polkit), and the figures helpers of
tests/integration/hostile (RSS, fds, netlink drops, a small ASan quarantine so that RSS is the daemon's)."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


hostile = _load("hotplugd_hostile_conftest", os.path.join(os.path.dirname(HERE), "hostile", "conftest.py"))
events, retire = hostile.events, hostile.retire

pytest_runtest_makereport = events.pytest_runtest_makereport    # skips are failures
hp = events.hp
rt = retire.rt
rss_kib, fd_count, fd_targets, netlink_drops = hostile.rss_kib, hostile.fd_count, hostile.fd_targets, hostile.netlink_drops
asan_small_quarantine = hostile.asan_small_quarantine
