# SPDX-License-Identifier: LGPL-2.1-or-later
"""gentree — importable name for tests/gen-tree.py (the fake-host tree generator); see its docstring."""
import importlib.util as _u, os as _os, sys as _sys

_spec = _u.spec_from_file_location("_gentree_impl", _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "gen-tree.py"))
_mod = _u.module_from_spec(_spec)
_sys.modules["_gentree_impl"] = _mod
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
