"""owlat_containers against a fake Docker Engine API: what the roles use to skip converged containers."""

import json
import urllib.parse

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import owlat_containers
from test_owlat_status import FakeDocker

WEB = "registry.owlat.lab:5000/wolvesdotink/web:0.4.4"
REDIS = "registry.owlat.lab:5000/library/redis:7.4-alpine"


class FakeEngine(FakeDocker):
    """Adds networks, image ids and container addresses to the status module's fake."""

    def __init__(self, path):
        super().__init__(path)
        self.networks = {"acme-net"}
        self.images = {}
        self.volumes = {}   # name -> labels

    def add(self, name, image, image_id, ip="172.18.0.5", **kwargs):
        super().add(name, image=image, **kwargs)
        c = self.containers[name]
        c["Image"] = image_id
        c["NetworkSettings"] = {"Networks": {"acme-net": {"IPAddress": ip}} if ip else {}}

    def route(self, path):
        parts = urllib.parse.urlsplit(path)
        if parts.path.startswith("/networks/"):
            name = urllib.parse.unquote(parts.path[len("/networks/"):])
            return (200, {"Name": name}) if name in self.networks else (404, {"message": "network not found"})
        if parts.path == "/volumes":
            # The Engine's name filter matches anywhere in the name.
            pattern = json.loads(urllib.parse.parse_qs(parts.query)["filters"][0])["name"][0]
            return 200, {"Volumes": [{"Name": n, "Labels": labels} for n, labels in self.volumes.items() if pattern in n]}
        if parts.path.startswith("/images/") and parts.path.endswith("/json"):
            ref = urllib.parse.unquote(parts.path[len("/images/"):-len("/json")])
            return (200, {"Id": self.images[ref]}) if ref in self.images else (404, {"message": "no such image"})
        return super().route(path)


@pytest.fixture
def engine(tmp_path):
    fake = FakeEngine(str(tmp_path / "docker.sock"))
    yield fake
    fake.close()


def probe(run_module, engine, **params):
    return run_module(owlat_containers, dict(dict(stack="acme", docker_host=engine.url), **params))


def test_settled_only_when_running_on_the_current_image_and_attached(run_module, engine):
    engine.images = {WEB: "sha256:new", REDIS: "sha256:r1"}
    engine.add("acme-web", WEB, "sha256:new", health="healthy")
    engine.add("acme-redis", REDIS, "sha256:r1", ip=None)           # not on the stack network
    engine.add("acme-mta", WEB, "sha256:old")                       # its tag now names another image
    engine.add("acme-caddy", REDIS, "sha256:r1", status="exited")
    engine.add("other-web", WEB, "sha256:new")                      # another stack: not listed

    result = probe(run_module, engine)

    assert not result["failed"] and not result["changed"] and result["engine"]
    assert result["network_exists"] is True
    c = result["containers"]
    assert sorted(c) == ["caddy", "mta", "redis", "web"]
    assert c["web"] == dict(state="running", health="healthy", running=True, healthy=True, image=WEB,
                            image_current=True, ip="172.18.0.5", settled=True, labelled=False)
    assert c["redis"]["settled"] is False and c["redis"]["ip"] is None
    assert c["mta"]["image_current"] is False and c["mta"]["settled"] is False
    assert c["caddy"]["running"] is False and c["caddy"]["settled"] is False


def test_unhealthy_is_settled_but_not_healthy(run_module, engine):
    engine.images = {WEB: "sha256:new"}
    engine.add("acme-web", WEB, "sha256:new", health="unhealthy")
    web = probe(run_module, engine)["containers"]["web"]
    assert web["settled"] is True and web["healthy"] is False


def test_missing_network_and_image(run_module, engine):
    engine.networks = set()
    engine.add("acme-web", WEB, "sha256:gone")
    result = probe(run_module, engine)
    assert result["network_exists"] is False
    assert result["containers"]["web"]["image_current"] is False


def test_no_engine_reads_as_nothing_there(run_module, tmp_path):
    result = run_module(owlat_containers, dict(stack="acme", docker_host="unix://%s" % (tmp_path / "none.sock")))
    assert not result["failed"]
    assert result["engine"] is False and result["containers"] == {} and result["network_exists"] is False
    assert "none.sock" in result["engine_error"]


def test_check_mode_and_bad_input(run_module, engine):
    checked = run_module(owlat_containers, dict(stack="acme", docker_host=engine.url), check_mode=True)
    assert checked["engine"] is True and not checked["changed"]
    bad = probe(run_module, engine, stack="Acme_1")
    assert bad["failed"] and "invalid name" in bad["msg"]
    bad = run_module(owlat_containers, dict(stack="acme", docker_host="tcp://10.0.0.1:2375"))
    assert bad["failed"] and "unix://" in bad["msg"]


def test_identity_is_the_label_or_an_exact_legacy_name_never_a_prefix(run_module, engine):
    engine.images = {WEB: "sha256:new"}
    engine.add("acme-web", WEB, "sha256:new")                                   # made before labels: exact name
    engine.add("acme-eu-web", WEB, "sha256:new")                                # stack acme-eu, unlabelled
    engine.add("acme-eu-mta", WEB, "sha256:new", labels={"owlat.stack": "acme-eu", "owlat.service": "mta"})
    engine.add("acme-worker", WEB, "sha256:new", labels={"owlat.stack": "acme", "owlat.service": "worker"})
    engine.add("acme-scratch", WEB, "sha256:new")                               # no label, no known service

    result = probe(run_module, engine)

    assert sorted(result["containers"]) == ["web", "worker"]
    # The roles add the identity label only where it costs no extra recreation: they need to know which carry it.
    assert result["containers"]["worker"]["labelled"] is True and result["containers"]["web"]["labelled"] is False


def test_volumes_named_after_the_stack_are_listed_for_the_exact_name_check(run_module, engine):
    engine.volumes = {"acme-convex-data": {"owlat.stack": "acme"}, "acme-redis-data": {}, "other-acme-data": {},
                      "eu-data": {"owlat.stack": "acme"}}
    result = probe(run_module, engine)
    # Existence by exact name only (the roles look up <stack>-<volume> in it), never a stack's identity.
    assert result["volumes"] == ["acme-convex-data", "acme-redis-data"]
    engine.volumes = {}
    assert probe(run_module, engine)["volumes"] == []
