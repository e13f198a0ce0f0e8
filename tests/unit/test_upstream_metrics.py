"""Alerts and monitoring tests use only metric names the upstream services export.

Names of Owlat's MTA (mta_*) and of the Convex backend (convex_local_backend_*) must be in the doubles' exported
lists (tests/doubles/*/metrics.json), which cite upstream's source; an alert on an absent series never fires.
The other families come from real components of the lab (node/blackbox exporters, Docker, Prometheus' `up`)
or the collection's own stack exporter (owlat_*).
"""

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
UPSTREAM_PREFIXES = ("mta_", "convex_")
USERS = [ROOT / "extensions/prometheus/owlat-alerts.yml", ROOT / "extensions/prometheus/tests/owlat-alerts.test.yml",
         ROOT / "molecule/monitoring/tests/test_monitoring.py", ROOT / "roles/monitoring/templates/prometheus.yml.j2"]


def exported():
    names = set()
    for path in (ROOT / "tests/doubles").glob("*/metrics.json"):
        data = json.loads(path.read_text())
        assert data["source"], path
        names |= {m["name"] for m in data["metrics"]}
    return names


def used(text):
    """Names in the upstream services' namespaces; owlat_mta_* / owlat_convex_* too (the collection's own exporter
    has neither: such a name can only be an invented upstream one)."""
    return {m for m in re.findall(r"\b((?:owlat_)?(?:mta|convex)_[a-z0-9_]+)\b", text)}


def test_every_upstream_metric_used_is_exported_by_upstream():
    names = exported()
    assert "mta_emails_sent_total" in names and "convex_local_backend_convex_binary_versions_total" in names
    missing = {}
    for path in USERS:
        # Family prefixes in the tests (convex_local_backend_, mta_) are not metric names.
        bad = {n for n in used(path.read_text()) if n not in names and not any(x.startswith(n) for x in names)}
        if bad:
            missing[str(path.relative_to(ROOT))] = sorted(bad)
    assert not missing, missing


def test_the_check_can_fail():
    assert used('expr: owlat_mta_redis_connected == 0 or convex_functions_deployed') == {"owlat_mta_redis_connected",
                                                                                        "convex_functions_deployed"}
    assert "convex_functions_deployed" not in exported()
