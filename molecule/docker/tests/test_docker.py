"""Verify the docker role as an operator would: the engine runs, its config is in effect, the registry works."""

import json

import pytest

REGISTRY_IMAGE = "registry.owlat.lab:5000/lab/busybox:1"


def test_engine_active_and_enabled(host):
    svc = host.service("docker")
    assert svc.is_running
    assert svc.is_enabled


def test_operator_keys_kept_and_role_keys_added(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # The operator's own keys survive the merge, nested ones included ...
    assert cfg["labels"] == ["owner=operator"]
    assert cfg["log-opts"]["labels"] == "owner"
    # ... and the role's keys are there.
    assert cfg["log-driver"] == "json-file"
    assert cfg["log-opts"]["max-size"] == "10m"
    assert cfg["log-opts"]["max-file"] == "3"
    assert cfg["live-restore"] is True


def test_daemon_runs_with_that_config(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert "owner=operator" in info["Labels"]


def test_container_from_lab_registry_runs_with_log_rotation(host):
    # Pulls through TLS (lab CA trusted by the role) with the role's registry login.
    host.run("docker rm -f owlat-verify")
    out = host.check_output(f"docker run --name owlat-verify {REGISTRY_IMAGE} echo hello-from-registry")
    assert out.strip() == "hello-from-registry"
    log_cfg = json.loads(host.check_output("docker inspect -f '{{json .HostConfig.LogConfig}}' owlat-verify"))
    host.run("docker rm -f owlat-verify")
    assert log_cfg["Type"] == "json-file"
    assert log_cfg["Config"]["max-size"] == "10m"
    assert log_cfg["Config"]["max-file"] == "3"


def test_registry_refuses_anonymous_pulls(host):
    # Proves the pull above went through the login, not an open registry.
    res = host.run(f"DOCKER_CONFIG=/nonexistent docker pull {REGISTRY_IMAGE}")
    assert res.rc != 0
    assert "no basic auth credentials" in res.stderr or "unauthorized" in res.stderr


def test_new_networks_come_from_the_configured_pool(host):
    host.run("docker network rm owlat-verify-net")
    host.check_output("docker network create owlat-verify-net")
    subnet = host.check_output("docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' owlat-verify-net")
    host.run("docker network rm owlat-verify-net")
    first, second = (int(x) for x in subnet.split(".")[:2])
    assert first == 172 and 20 <= second <= 23, subnet


@pytest.mark.parametrize("path", ["/root/.docker/config.json"])
def test_registry_credentials_are_private(host, path):
    f = host.file(path)
    assert f.exists
    assert f.mode & 0o077 == 0
