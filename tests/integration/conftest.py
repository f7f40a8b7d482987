# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the `tree` fixture: a temporary fake root, kept for inspection when the test fails."""

import pytest

from common import Tree


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def tree(request):
    t = Tree(request.node.name)
    yield t
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("\nkept the tree of the failed test: %s" % t.root)
    else:
        t.cleanup()
