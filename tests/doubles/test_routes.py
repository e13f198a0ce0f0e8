"""The backend double serves exactly the routes upstream has at the revision it is built for.

tests/doubles/convex-backend/versions.json holds, per convex-backend revision, the routes read from upstream's
router at that commit. For every revision the double is started as that revision and every route of every
revision is asked for: a route of this revision must reach a handler (not upstream's router 404/405, not the
double's own "no route"), a route of another revision only must get the router's answer. A route added to the
table that the double does not implement fails here, and so does one the double answers but the table lacks.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

import pytest

from test_doubles import Backend, free_port  # noqa: F401  (fixtures below come from test_doubles)
from test_doubles import procs, start  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "convex-backend", "versions.json")
REVISIONS = json.load(open(TABLE, encoding="utf-8"))["revisions"]
ALL_ROUTES = sorted({r for rev in REVISIONS.values() for r in rev["routes"]})
SAMPLE = {"{id}": "1796188855105254886", "{client_version}": "1.43.0", "{*rest}": "api/v1/health"}


def concrete(path: str) -> str:
    for placeholder, value in SAMPLE.items():
        path = path.replace(placeholder, value)
    return path


def ask(url: str, method: str):
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def routing_failure(status: int, body: bytes) -> bool:
    """Upstream's axum router (no fallback): 404/405 with an empty body; or the double's own 'no route'."""
    if status in (404, 405) and body == b"":
        return True
    return status == 404 and b"No route for" in body


@pytest.mark.parametrize("revision", sorted(REVISIONS))
def test_double_serves_exactly_its_revisions_routes(start, tmp_path, revision):  # noqa: F811
    b = Backend(start, tmp_path / "d", DOUBLE_VERSION=revision, DISABLE_METRICS_ENDPOINT="false")
    have = set(REVISIONS[revision]["routes"])
    wrong = []
    for route in ALL_ROUTES:
        method, path = route.split(" ", 1)
        method = "GET" if method == "ANY" else method
        status, body = ask(b.url + concrete(path), method)  # /sync without an upgrade: 400 from its handler
        failed = routing_failure(status, body)
        if route in have and failed:
            wrong.append(f"{route}: upstream has it at {revision[:12]}, the double answers {status} {body[:60]!r}")
        if route not in have and not failed:
            wrong.append(f"{route}: upstream lacks it at {revision[:12]}, the double answers {status}")
    assert not wrong, "\n".join(wrong)
    # Anything else is the router's empty 404.
    assert ask(b.url + "/api/no_such_route", "GET") == (404, b"")


def test_every_route_cites_its_revision():
    for revision, rev in REVISIONS.items():
        assert re.fullmatch(r"[0-9a-f]{40}", revision)
        assert rev["source"]["repository"] == "get-convex/convex-backend"
        assert "crates/local_backend/src/router.rs" in rev["source"]["files"]
        for route in rev["routes"]:
            assert re.fullmatch(r"(GET|POST|PUT|ANY) /[a-z0-9_/{}*.]*", route), route


def test_catalog_releases_have_route_tables():
    import yaml

    catalog = yaml.safe_load(open(os.path.join(HERE, "..", "..", "roles/stack/vars/main.yml")))
    for version, release in catalog["owlat_stack_release_catalog"].items():
        sha = release["images"]["convex_backend"].rsplit(":", 1)[1]
        assert sha == release["convex_commit"] and sha in REVISIONS, (version, sha)
        assert REVISIONS[sha]["date"] == release["convex_date"], version
