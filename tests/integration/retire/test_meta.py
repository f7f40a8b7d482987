# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every test case in this directory, and every kill point of killpoints.py, is registered as its own meson
test in meson.build (and nothing registered is missing): an unregistered case would silently never run."""

import ast
import glob
import os
import re

from killpoints import IDS

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_case_is_registered():
    defined = set()
    for path in glob.glob(os.path.join(HERE, "test_*.py")):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        defined |= {(os.path.basename(path), n.name) for n in tree.body
                    if isinstance(n, ast.FunctionDef) and n.name.startswith("test_") and n.name != "test_crash"}
    with open(os.path.join(HERE, "meson.build")) as f:
        text = f.read()
    registered = set()
    for file, cases in re.findall(r"'(test_\w+\.py)'\s*:\s*\[([^\]]*)\]", text):
        registered |= {(file, c) for c in re.findall(r"'(test_\w+)'", cases)}
    assert defined - registered == set(), "cases not registered in meson.build: %s" % sorted(defined - registered)
    assert registered - defined == set(), "meson.build registers missing cases: %s" % sorted(registered - defined)
    kps = re.search(r"retire_kill_points = \[(.*?)\]", text, re.S).group(1)
    assert re.findall(r"'([\w-]+)'", kps) == IDS, "retire_kill_points in meson.build differs from killpoints.IDS"
