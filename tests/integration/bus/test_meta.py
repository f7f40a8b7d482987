# SPDX-License-Identifier: LGPL-2.1-or-later
"""test_meta.py — every test function here has its own meson test (tests/integration/bus/meson.build)."""

import ast
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_case_is_registered():
    with open(os.path.join(HERE, "meson.build")) as f:
        registered = set(re.findall(r"'(test_[a-z0-9_]+)'", f.read()))
    defined = set()
    for name in os.listdir(HERE):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(HERE, name)) as f:
                tree = ast.parse(f.read())
            defined |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    assert defined - registered == set(), "not registered in meson.build"
    assert registered - defined == set(), "registered but not defined"
