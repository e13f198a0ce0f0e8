"""The fast path's record and check (owlat_converged): what counts as drift, in the operator's words."""

import json

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _converged
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DockerError


class FakeAPI:
    """The Docker Engine API paths the fast path reads, answered from plain data."""

    def __init__(self, containers, networks=None, volumes=None, images=None, fail=False):
        self.containers, self.networks, self.volumes = containers, networks or [], volumes or []
        self.images = images or {}
        self.fail = fail

    def get(self, path):
        if self.fail:
            raise DockerError("Docker API /run/docker.sock: connection refused")
        if path.startswith("/containers/json"):
            return self.containers
        if path.startswith("/networks"):
            return self.networks
        if path.startswith("/volumes"):
            return {"Volumes": self.volumes}
        if path.startswith("/images/"):
            ref = path[len("/images/"):-len("/json")]
            if ref not in self.images:
                raise DockerError("HTTP 404")
            return {"Id": self.images[ref]}
        if path.startswith("/containers/"):
            raise DockerError("HTTP 404")
        raise AssertionError(path)


def container(name, cid="c1", state="running", status="Up 2 minutes (healthy)", labels=None, image="web:1"):
    return {"Id": cid, "Names": ["/" + name], "Image": image, "ImageID": "sha256:" + image, "State": state,
            "Status": status, "Labels": {"owlat.stack": "acme"} if labels is None else labels}


def no_systemd(args):
    return 0, "", ""


@pytest.fixture
def host(tmp_path):
    conf = tmp_path / "acme"
    conf.mkdir()
    (conf / "Caddyfile").write_text("app.acme.test { }\n")
    spec = {"stacks": [{"name": "acme", "containers": ["acme-web", "acme-old"], "paths": [str(conf)]}]}
    return conf, spec


def read(api, spec):
    return _converged.fingerprint(api, spec, run=no_systemd)


def test_a_host_as_recorded_is_converged(host):
    conf, spec = host
    api = FakeAPI([container("acme-web"), container("unrelated", cid="x", labels={})], images={"web:1": "sha256:web:1"})
    record = {"version": 1, "inputs": "i1", "spec": spec, "state": read(api, spec), "recorded_at": "T"}
    assert "unrelated" not in record["state"]["containers"]
    converged, reasons, counts = _converged.check(api, record, "i1", run=no_systemd)
    assert (converged, reasons, counts) == (True, [], {"acme": {"running": 1}})


@pytest.mark.parametrize("drift, reason", [
    (lambda api, conf: api.containers[0].update(State="exited", Status="Exited (0)"), "container acme-web is exited (was running healthy)"),
    (lambda api, conf: api.containers[0].update(Id="c2"), "container acme-web was recreated"),
    (lambda api, conf: api.containers.clear(), "container acme-web is gone"),
    (lambda api, conf: api.containers[0].update(Status="Up 3 hours (unhealthy)"), "container acme-web is running unhealthy (was running healthy)"),
    (lambda api, conf: api.images.update({"web:1": "sha256:new"}), "container acme-web: its image reference now names another image"),
    (lambda api, conf: api.containers.append(container("acme-old", cid="o", labels={})), "container acme-old is new"),
    (lambda api, conf: (conf / "Caddyfile").write_text("edited\n"), "file {conf}/Caddyfile changed"),
    (lambda api, conf: (conf / "Caddyfile").chmod(0o666), "file {conf}/Caddyfile changed"),
    (lambda api, conf: (conf / "new.env").write_text("A=1\n"), "file {conf}/new.env changed"),
    (lambda api, conf: api.volumes.append({"Name": "acme-extra"}), "the stacks' volumes changed"),
])
def test_drift_made_by_hand_is_named(host, drift, reason):
    conf, spec = host
    api = FakeAPI([container("acme-web")], images={"web:1": "sha256:web:1"})
    record = {"version": 1, "inputs": "i1", "spec": spec, "state": read(api, spec)}
    drift(api, conf)
    converged, reasons, _ = _converged.check(api, record, "i1", run=no_systemd)
    assert not converged
    assert reasons == [reason.format(conf=conf)]


def test_changed_inputs_missing_or_old_records_and_a_silent_engine_mean_the_full_path(host):
    conf, spec = host
    api = FakeAPI([container("acme-web")])
    record = {"version": 1, "inputs": "i1", "spec": spec, "state": read(api, spec), "recorded_at": "T"}
    assert _converged.check(api, record, "i2", run=no_systemd)[:2] == (
        False, ["the settings or the collection changed since the run of T"])
    assert _converged.check(api, None, "i1", run=no_systemd)[:2] == (False, ["no record of a converged run"])
    assert _converged.check(api, dict(record, version=0), "i1", run=no_systemd)[0] is False
    reasons = _converged.check(FakeAPI([], fail=True), record, "i1", run=no_systemd)[1]
    assert reasons == ["the Docker Engine did not answer (Docker API /run/docker.sock: connection refused)"]


def test_units_and_addresses_are_parsed_from_systemctl_and_ip(monkeypatch, tmp_path):
    calls = []

    def fake(cmd):
        calls.append(cmd)
        if cmd[0] == "systemctl":
            out = "Id=docker.service\nActiveState=active\nUnitFileState=enabled\n\nId=owlat-backup@acme.timer\n" \
                  "ActiveState=inactive\nUnitFileState=disabled\n"
        else:
            out = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.0.0.5/24 brd x\n2: eth0    inet6 fe80::1/64 scope link\n"
        return 0, out, ""

    assert _converged.units(run=fake) == {"docker.service": ["active", "enabled"],
                                          "owlat-backup@acme.timer": ["inactive", "disabled"]}
    assert _converged.addresses(run=fake) == ["10.0.0.5/24", "127.0.0.1/8"]  # not a veth's link-local one
    assert _converged.units(run=lambda cmd: (1, "", "Failed to connect to bus")) == {
        "systemctl": ["unreadable", "Failed to connect to bus"]}


def test_many_differences_are_cut_with_a_count():
    recorded = {"files": dict(("/f%d" % i, ["file"]) for i in range(12))}
    reasons = _converged.differences(recorded, {"files": {}})
    assert len(reasons) == 9 and reasons[-1] == "and 4 more"


def test_a_record_holds_digests_not_secret_values(host):
    conf, spec = host
    (conf / "secrets.env").write_text("REDIS_PASSWORD=0123456789abcdef0123456789abcdef\n")
    state = read(FakeAPI([container("acme-web")]), spec)
    assert "0123456789abcdef0123456789abcdef" not in json.dumps(state)


def test_the_record_is_root_only_and_its_new_directory_stays_readable_for_the_monitoring_agent(tmp_path):
    path = tmp_path / "var/lib/owlat/converged.json"
    _converged.write_record(str(path), {"version": 1, "inputs": "i"})
    assert json.loads(path.read_text()) == {"version": 1, "inputs": "i"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o755  # the agent reads /var/lib/owlat/monitoring/targets
