"""owlat-stack-exporter (roles/monitoring/files): what it reports for a stack's containers and records."""

import importlib.util
import json
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles/monitoring/files/owlat_stack_exporter.py"
spec = importlib.util.spec_from_file_location("owlat_stack_exporter", SCRIPT)
exporter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exporter)


def container(ident, name, running=True, health=None, ip="172.20.0.5", stack="owlat", memory=0, restarts=0,
              labels=None):
    state = {"Running": running}
    if health:
        state["Health"] = {"Status": health}
    return {
        "Id": ident, "Names": ["/" + name], "Labels": labels or {}, "State": state, "RestartCount": restarts,
        "HostConfig": {"Memory": memory},
        "NetworkSettings": {"Networks": {stack + "-net": {"IPAddress": ip if running else ""}}},
    }


class FakeDocker:
    def __init__(self, items, stats=None, fail=False):
        self.items = {c["Id"]: c for c in items}
        self.stats_by_id = stats or {}
        self.fail = fail

    def containers(self):
        if self.fail:
            raise exporter.DockerError("docker socket /var/run/docker.sock: connection refused")
        return [{"Id": c["Id"], "Names": c["Names"], "Labels": c["Labels"]} for c in self.items.values()]

    def inspect(self, ident):
        return self.items[ident]

    def stats(self, ident):
        return self.stats_by_id.get(ident, {"memory_stats": {}})


@pytest.fixture
def dirs(tmp_path):
    for sub in ("facts", "textfile", "targets"):
        (tmp_path / sub).mkdir()
    return tmp_path


def args_for(dirs, *extra):
    return exporter.parse_args([
        "--facts-dir", str(dirs / "facts"), "--textfile-dir", str(dirs / "textfile"),
        "--targets-dir", str(dirs / "targets"), *extra])


# The description the stack role writes into the deploy record (roles/stack/vars/main.yml owlat_stack_services).
SERVICES = [{"name": "convex", "spec": {"image": "convex_backend", "required": True, "port": 3210,
                                        "health": {"kind": "http", "path": "/version"}, "metrics": "/metrics"}},
            {"name": "web", "spec": {"image": "web", "required": True, "port": 3000,
                                     "health": {"kind": "http", "path": "/api/instance-info"}}},
            {"name": "mta", "spec": {"image": "mta", "required": True, "port": 3100, "health": {"kind": "mta", "path": "/health"},
                                     "metrics": "/metrics"}},
            {"name": "redis", "spec": {"image": "redis", "required": True, "port": 6379, "health": {"kind": "tcp"}}},
            {"name": "convex-deploy", "spec": {"image": "convex_deploy", "job": True}}]


def record(dirs, stack, release="0.4.4", services=SERVICES):
    (dirs / "facts" / ("owlat_%s.fact" % stack)).write_text(json.dumps(
        {"stack": stack, "release": release, "functions_release": release, "images": {}, "services": services}))


def labelled(stack, service):
    return {"owlat.stack": stack, "owlat.service": service}


def test_release_and_containers_of_a_stack(dirs):
    record(dirs, "owlat")
    docker = FakeDocker(
        [container("c1", "owlat-convex", health="healthy", memory=2 << 30),
         container("w1", "owlat-web", ip="172.20.0.6"),
         container("r1", "owlat-redis", health="unhealthy", ip="172.20.0.7", restarts=3),
         container("m1", "owlat-mta", running=False),
         container("d1", "owlat-convex-deploy", running=False),
         container("x1", "other-web", stack="other")],
        stats={"c1": {"memory_stats": {"usage": 700, "stats": {"inactive_file": 200}}}})
    assert exporter.run_once(args_for(dirs), docker, now=1000.0) == ["owlat"]
    text = (dirs / "textfile" / "owlat_stack_owlat.prom").read_text()
    assert 'owlat_release_info{stack="owlat",version="0.4.4",functions_release="0.4.4"} 1' in text
    assert 'owlat_container_running{stack="owlat",service="mta"} 0' in text
    assert 'owlat_container_healthy{stack="owlat",service="mta"} 0' in text
    assert 'owlat_container_healthy{stack="owlat",service="web"} 1' in text  # no healthcheck: running counts
    assert 'owlat_container_healthy{stack="owlat",service="redis"} 0' in text
    assert 'owlat_container_restart_count{stack="owlat",service="redis"} 3' in text
    assert 'owlat_container_memory_working_set_bytes{stack="owlat",service="convex"} 500' in text
    assert 'owlat_container_memory_limit_bytes{stack="owlat",service="convex"} 2147483648' in text
    assert 'service="web"} 0' not in text.split("owlat_container_memory_limit_bytes")[-1]  # no limit, no line
    assert "convex-deploy" not in text and "other" not in text
    targets = json.loads((dirs / "targets" / "owlat.json").read_text())
    assert targets == [
        {"labels": {"service": "convex", "stack": "owlat", "__health_module": "http_2xx",
                    "__health_target": "http://172.20.0.5:3210/version", "__metrics_address": "172.20.0.5:3210",
                    "__metrics_path": "/metrics"}, "targets": ["172.20.0.5"]},
        {"labels": {"service": "redis", "stack": "owlat", "__health_module": "tcp_connect",
                    "__health_target": "172.20.0.7:6379"}, "targets": ["172.20.0.7"]},
        {"labels": {"service": "web", "stack": "owlat", "__health_module": "http_2xx",
                    "__health_target": "http://172.20.0.6:3000/api/instance-info"}, "targets": ["172.20.0.6"]},
    ]


def test_a_record_from_before_ports_gives_plain_targets(dirs):
    record(dirs, "owlat", services=[{"name": s["name"], "spec": {"image": s["spec"]["image"]}} for s in SERVICES])
    exporter.run_once(args_for(dirs), FakeDocker([container("c1", "owlat-convex")]), now=1000.0)
    targets = json.loads((dirs / "targets" / "owlat.json").read_text())
    assert targets == [{"labels": {"service": "convex", "stack": "owlat"}, "targets": ["172.20.0.5"]}]


def test_every_health_check_of_the_stacks_description_has_a_blackbox_module():
    """The exporter names a module for each kind of check the stack role's description uses, and the monitoring
    role's blackbox configuration defines each of those modules."""
    import yaml

    root = SCRIPT.parents[3]
    described = yaml.safe_load((root / "roles/stack/vars/main.yml").read_text())["owlat_stack_services"]
    kinds = {spec["health"]["kind"] for spec in described.values() if spec.get("health")}
    assert kinds and kinds <= set(exporter.HEALTH_MODULES), kinds
    assert all(spec.get("port") for spec in described.values() if spec.get("health") or spec.get("metrics"))
    modules = yaml.safe_load((root / "roles/monitoring/vars/main.yml").read_text())["owlat_monitoring_blackbox_modules"]
    assert set(exporter.HEALTH_MODULES.values()) <= set(modules)
    blackbox = (root / "roles/monitoring/templates/blackbox.yml.j2").read_text()
    assert all("\n  %s:\n" % module in blackbox for module in exporter.HEALTH_MODULES.values())


def test_cgroup_v1_working_set():
    assert exporter.working_set({"memory_stats": {"usage": 1000, "stats": {"total_inactive_file": 300}}}) == 700
    assert exporter.working_set({"memory_stats": {}}) is None


def test_longest_stack_prefix_wins(dirs):
    docker = FakeDocker([container("a", "acme-eu-web", stack="acme-eu"), container("b", "acme-web", stack="acme")])
    found = exporter.collect(docker, ["acme", "acme-eu"])
    assert [s["service"] for s in found["acme-eu"]] == ["web"]
    assert [s["service"] for s in found["acme"]] == ["web"]


def test_stack_without_record_from_argument(dirs):
    docker = FakeDocker([container("w", "shop-web", stack="shop")])
    exporter.run_once(args_for(dirs, "--stack", "shop"), docker, now=1.0)
    text = (dirs / "textfile" / "owlat_stack_shop.prom").read_text()
    assert "owlat_release_info" not in text
    assert 'owlat_container_running{stack="shop",service="web"} 1' in text


def test_docker_down_keeps_release_and_targets(dirs):
    record(dirs, "owlat", release="0.5.0")
    (dirs / "targets" / "owlat.json").write_text("[]\n")
    exporter.run_once(args_for(dirs), FakeDocker([], fail=True), now=1.0)
    text = (dirs / "textfile" / "owlat_stack_owlat.prom").read_text()
    assert 'version="0.5.0"' in text
    assert 'owlat_stack_exporter_docker_up{stack="owlat"} 0' in text
    assert "owlat_container_running" not in text
    assert (dirs / "targets" / "owlat.json").read_text() == "[]\n"


def test_unchanged_targets_file_is_not_rewritten(dirs):
    record(dirs, "owlat")
    docker = FakeDocker([container("w", "owlat-web")])
    exporter.run_once(args_for(dirs), docker, now=1.0)
    path = dirs / "targets" / "owlat.json"
    before = path.stat().st_mtime_ns
    assert exporter.write_if_changed(str(path), path.read_text()) is False
    assert path.stat().st_mtime_ns == before


def test_label_values_are_escaped():
    text = exporter.render_metrics("owlat", {"release": 'a"b\\c'}, [], 1.0)
    assert 'version="a\\"b\\\\c"' in text


def test_bad_stack_name_refused():
    with pytest.raises(SystemExit):
        exporter.parse_args(["--stack", "Bad Name"])


def test_labels_are_the_identity(dirs):
    """A labelled container is its label's stack's, whatever its name: acme never claims acme-eu's containers,
    even when acme-eu is not watched here."""
    record(dirs, "acme")
    docker = FakeDocker([
        container("a", "acme-eu-web", stack="acme-eu", labels=labelled("acme-eu", "web")),
        container("b", "acme-web", stack="acme", labels=labelled("acme", "web")),
        container("c", "frontend", stack="acme", labels=labelled("acme", "redis")),  # renamed by hand: still redis
    ])
    exporter.run_once(args_for(dirs), docker, now=1.0)
    targets = json.loads((dirs / "targets" / "acme.json").read_text())
    assert [t["labels"]["service"] for t in targets] == ["redis", "web"]
    assert not (dirs / "targets" / "acme-eu.json").exists()


def test_unlabelled_containers_only_under_described_names_and_jobs_skipped(dirs):
    """Containers of an older deploy (no labels) count under the names of the record's description only; the
    description's one-shot job is skipped without an --ignore list."""
    record(dirs, "acme")
    docker = FakeDocker([
        container("w", "acme-web", stack="acme"),
        container("e", "acme-eu-web", stack="acme-eu"),  # not a described service of acme
        container("d", "acme-convex-deploy", stack="acme", running=False),
        container("j", "acme-convex-deploy-2", stack="acme", labels=labelled("acme", "convex-deploy")),
    ])
    exporter.run_once(args_for(dirs), docker, now=1.0)
    text = (dirs / "textfile" / "owlat_stack_acme.prom").read_text()
    assert 'owlat_container_running{stack="acme",service="web"} 1' in text
    assert "eu-web" not in text and "convex-deploy" not in text


def test_the_exporter_applies_the_collections_ownership_rule():
    """The exporter runs alone on the host (standard library only), so it carries its own copy of the rule and of
    the pre-description service list: both must stay those of the collection (module_utils/_status.py)."""
    from ansible_collections.owlat.selfhost.plugins.module_utils import _status

    assert {k: bool(v.get("job")) for k, v in exporter.RECORDLESS_SERVICES.items()} == {
        k: bool(v.get("job")) for k, v in _status.RECORDLESS_SERVICES.items()}
    cases = [("acme-web", None), ("acme-eu-web", None), ("acme-worker", None), ("acme-web", labelled("acme", "web")),
             ("frontend", labelled("acme", "redis")), ("acme-web", labelled("acme-eu", "web"))]
    for described in (None, ["web", "worker"]):
        for name, labels in cases:
            summary = {"Names": ["/" + name], "Labels": labels or {}}
            mine = exporter.owner(summary, ["acme"], {"acme": dict.fromkeys(described or exporter.RECORDLESS_SERVICES)})
            assert (mine is not None) == (_status.stack_member(summary, "acme", described) is not None), (name, labels)
