"""The shipped alert rules (extensions/prometheus): valid for Prometheus, and each one unit-tested with promtool."""

import pathlib
import shutil
import subprocess

import pytest
import yaml

RULES_DIR = pathlib.Path(__file__).resolve().parents[2] / "extensions/prometheus"
RULES = RULES_DIR / "owlat-alerts.yml"
TESTS = RULES_DIR / "tests/owlat-alerts.test.yml"


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    # Not a skip: a missing promtool must not turn these tests green (Debian: `prometheus` on 12, `promtool` on 13).
    assert path, "promtool not found: install Debian's prometheus (Debian 12) or promtool (Debian 13) package"
    return path


def run(*args):
    proc = subprocess.run(args, cwd=RULES_DIR, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_promtool_check_rules(promtool):
    rc, out = run(promtool, "check", "rules", str(RULES))
    assert rc == 0, out
    assert "SUCCESS" in out


def test_promtool_test_rules(promtool):
    rc, out = run(promtool, "test", "rules", str(TESTS))
    assert rc == 0, out


def test_every_alert_has_a_unit_test():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {case["alertname"] for t in yaml.safe_load(TESTS.read_text())["tests"] for case in t.get("alert_rule_test", [])}
    assert alerts - tested == set()
    # and each alert has a case where it must fire
    firing = {case["alertname"] for t in yaml.safe_load(TESTS.read_text())["tests"]
              for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts - firing == set()


def test_a_broken_expectation_fails(promtool, tmp_path):
    """The runner notices a failing unit test (guards against a test file promtool silently ignores)."""
    broken = yaml.safe_load(TESTS.read_text())
    broken["rule_files"] = [str(RULES)]
    broken["tests"] = [t for t in broken["tests"] if t["name"].startswith("a stopped")]
    broken["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(broken))
    rc, out = run(promtool, "test", "rules", str(path))
    assert rc != 0, out
