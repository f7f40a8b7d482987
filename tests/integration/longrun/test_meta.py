# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every test case in this directory is registered as its own meson test in meson.build, and nothing
registered is missing."""

import ast
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_case_is_registered():
    with open(os.path.join(HERE, "test_longrun.py")) as f:
        defined = {n.name for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    with open(os.path.join(HERE, "meson.build")) as f:
        registered = set(re.findall(r"'(test_\w+)'", re.search(r"longrun_cases = \[(.*?)\]", f.read(), re.S).group(1)))
    assert defined == registered, "test_longrun.py defines %s, meson.build registers %s" % (sorted(defined), sorted(registered))
