# SPDX-License-Identifier: LGPL-2.1-or-later
"""conftest.py — the retire harness of tests/integration (private network namespace, real uevents, private
bus with dbusmock's polkitd, the fake kernel), through tests/integration/hostile/conftest.py, with hotplugd
started under valgrind by the test."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


hostile = _load("hotplugd_hostile_conftest", os.path.join(INTEGRATION, "hostile", "conftest.py"))
events, retire, rawbus = hostile.events, hostile.retire, hostile.rawbus

pytest_runtest_makereport = events.pytest_runtest_makereport    # skips are failures
rt = retire.rt
