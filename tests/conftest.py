"""Make `ansible_collections.owlat.selfhost` importable from this checkout (every test tree under tests/)."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = ROOT / ".collections"
if not (LINK / "ansible_collections/owlat/selfhost").exists():
    (LINK / "ansible_collections/owlat").mkdir(parents=True, exist_ok=True)
    (LINK / "ansible_collections/owlat/selfhost").symlink_to(ROOT)
sys.path.insert(0, str(LINK))
