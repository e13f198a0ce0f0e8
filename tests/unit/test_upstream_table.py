"""docs/upstream.md stays true: each row's double route exists for that upstream revision, each test file exists.

Convex rows name a route of the backend double (`METHOD /path`): it must be in the route table of the revision
the row cites (tests/doubles/convex-backend/versions.json). Owlat rows and lab-image rows name a string the
double or lab image must contain. The runtime env names the convex role pushes must be upstream's.
"""

import json
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/upstream.md"
REVISIONS = json.loads((ROOT / "tests/doubles/convex-backend/versions.json").read_text())["revisions"]
DOUBLE_FILES = {"convex-backend": ROOT / "tests/doubles/convex-backend/server.py",
                "web": ROOT / "tests/doubles/web/server.py", "mta": ROOT / "tests/doubles/mta/server.py"}


def rows():
    out = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("contract", "---") and not set(cells[0]) <= {"-"}:
            out.append(cells)
    return out


def test_table_has_rows():
    assert len(rows()) >= 20


def test_every_row_is_backed():
    problems = []
    for contract, upstream, _collection, double, test in rows():
        m = re.fullmatch(r"(get-convex/convex-backend|wolvesdotink/owlat) (\S+) @ ([0-9a-f]{40})", upstream)
        if not m:
            problems.append(f"{contract}: upstream cell is not 'repo path @ commit': {upstream}")
            continue
        repo, _path, commit = m.groups()
        route = re.fullmatch(r"(convex-backend|web|mta|lab image (\w+)) `([^`]+)`", double)
        if not route:
            problems.append(f"{contract}: double cell not understood: {double}")
            continue
        who, image, what = route.groups()
        verb = re.fullmatch(r"(GET|POST|PUT|ANY) (/\S*)", what)
        if who == "convex-backend" and verb and repo == "get-convex/convex-backend":
            if commit not in REVISIONS:
                problems.append(f"{contract}: no route table for {commit}")
            elif what not in REVISIONS[commit]["routes"]:
                problems.append(f"{contract}: {what} is not served by upstream at {commit[:12]}")
        elif image:
            text = "".join(p.read_text() for p in (ROOT / "lab/images" / image).iterdir() if p.is_file())
            if what not in text:
                problems.append(f"{contract}: lab image {image} lacks {what}")
        else:
            path = what.split(" ", 1)[-1]
            if path not in DOUBLE_FILES[who].read_text():
                problems.append(f"{contract}: the {who} double never serves {path}")
        if not (ROOT / test).exists():
            problems.append(f"{contract}: test {test} does not exist")
    assert not problems, "\n".join(problems)


def test_a_wrong_route_is_caught(tmp_path, monkeypatch):
    bad = DOC.read_text().replace("convex-backend `GET /api/check_admin_key`", "convex-backend `GET /api/v1/check_admin_key`")
    fake = tmp_path / "upstream.md"
    fake.write_text(bad)
    monkeypatch.setattr(__import__(__name__), "DOC", fake)
    try:
        test_every_row_is_backed()
    except AssertionError as exc:
        assert "/api/v1/check_admin_key is not served by upstream" in str(exc)
    else:
        raise AssertionError("a route upstream lacks was not caught")


def test_pushed_runtime_env_names_are_upstreams():
    """Every name owlat_convex_deployment_env sets is in upstream's CONVEX_RUNTIME_ENV_KEYS."""
    stack_vars = yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())
    keys = set(stack_vars["owlat_stack_runtime_env_keys"]["0.4"])
    text = (ROOT / "roles/convex/vars/main.yml").read_text()
    block = text[text.index("owlat_convex_deployment_env:"):text.index("owlat_convex_mta_ip_pools:")]
    pushed = set(re.findall(r"'([A-Z][A-Z0-9_]+)':", block))
    assert {"MTA_IP_POOLS", "RATE_LIMIT_TRUSTED_PROXY", "OWLAT_VERSION"} <= pushed
    assert pushed - keys == set()
    assert "CONVEX_SITE_URL" not in pushed
