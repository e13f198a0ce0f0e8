"""The same ansible-core compatibility the matrix loads with -p compat_pytest (2.17/2.18 hooks, 2.21's invocation
on request), so a plain `pytest tests/unit` behaves as the matrix run on any leg. (The collection is made
importable by tests/conftest.py.)"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests/matrix"))
import compat_pytest  # noqa: E402,F401
