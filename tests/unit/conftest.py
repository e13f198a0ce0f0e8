"""Make `ansible_collections.owlat.selfhost` importable from this checkout."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
LINK = ROOT / ".collections"
if not (LINK / "ansible_collections/owlat/selfhost").exists():
    (LINK / "ansible_collections/owlat").mkdir(parents=True, exist_ok=True)
    (LINK / "ansible_collections/owlat/selfhost").symlink_to(ROOT)
sys.path.insert(0, str(LINK))

# The same ansible-core compatibility the matrix loads with -p compat_pytest (2.17/2.18 hooks, 2.21's
# invocation on request), so a plain `pytest tests/unit` behaves as the matrix run on any leg.
sys.path.insert(0, str(ROOT / "tests/matrix"))
import compat_pytest  # noqa: E402,F401
