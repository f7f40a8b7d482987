# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the `stack` fixture (see busfixture.py); kept for inspection when a test fails."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from busfixture import Stack  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def stack(request):
    s = Stack(request.node.name[:40])
    yield s
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    if failed:
        print("daemon log:\n" + s.log())
    s.cleanup(keep=failed)
