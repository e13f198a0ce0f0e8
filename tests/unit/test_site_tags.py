"""site.yml records a host for the fast path only after a run that skipped none of its tags: the list it checks
(_owlat_site_tags) must name every tag of the tasks site.yml runs."""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SITE_ROLES = ("docker", "stack", "convex", "app", "proxy", "backup")
SITE_PLAYBOOKS = ("site.yml", "preflight.yml", "stacks.yml", "docker.yml", "summary.yml")
NOT_PARTS = {"always", "never", "manual"}


def tags_in(node):
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                found.update([value] if isinstance(value, str) else value or [])
            else:
                found |= tags_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= tags_in(item)
    return found


def site_tags_checked():
    site = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    play = next(p for p in site if p.get("name") == "Hosts as this run leaves them")
    return set(play["tasks"][0]["vars"]["_owlat_site_tags"])


def test_the_record_checks_every_tag_site_yml_runs():
    used = set()
    for role in SITE_ROLES:
        for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            used |= tags_in(yaml.safe_load(path.read_text()))
    for name in SITE_PLAYBOOKS:
        used |= tags_in(yaml.safe_load((ROOT / "playbooks" / name).read_text()))
    used = {t for t in used if t not in NOT_PARTS and not re.search(r"[{}]", t)}
    assert "proxy" in used and "stack_secrets" in used  # the walk finds them at all
    assert used - site_tags_checked() == set()
