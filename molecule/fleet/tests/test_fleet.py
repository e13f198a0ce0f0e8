"""A fleet of two stacks: each answers on its own domains, named after its own stack; the dashboard only
where asked for and only behind authentication; a mixed Debian 12/13 fleet; check mode changes nothing."""

import base64
import json
import pathlib
import re
import socket
import ssl
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
from converge_run import run_converge  # noqa: E402

STACKS = {"owlat-mol-fleet2": "acme"}
DASHBOARD = {"owlat-mol-fleet1": "dashboard.owlat-mol-fleet1.owlat.test"}
DEBIAN = {"owlat-mol-fleet1": "13", "owlat-mol-fleet2": "12"}


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def stack(name):
    return STACKS.get(name, "owlat")


@pytest.fixture(scope="module")
def address(name):
    return subprocess.check_output(
        ["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "owlat-lab").IPAddress}}', name], text=True
    ).strip()


@pytest.fixture(scope="module")
def tls(host, stack):
    ca = f"/var/lib/docker/volumes/{stack}-caddy-data/_data/caddy/pki/authorities/local/root.crt"
    return ssl.create_default_context(cadata=host.file(ca).content_string)


def https(address, ctx, hostname, path, headers=""):
    with socket.create_connection((address, 443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\n{headers}Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    return int(data.split()[1]), data.decode(errors="replace")


def test_debian_release_as_planned(host, name):
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith(DEBIAN[name])


def test_app_on_its_own_domain(address, tls, name):
    status, body = https(address, tls, f"app.{name}.owlat.test", "/api/instance-info")
    assert status == 200
    assert f'"siteUrl": "https://app.{name}.owlat.test"' in body


def test_smtp_banner(address, name):
    with socket.create_connection((address, 25), timeout=10) as s:
        assert s.recv(256).decode().startswith(f"220 mail.{name}.owlat.test ")


def test_everything_named_after_the_stack(host, stack):
    names = set(host.check_output("docker ps --format '{{.Names}}'").split())
    assert {f"{stack}-{svc}" for svc in ("convex", "redis", "web", "mta", "caddy")} <= names
    assert all(n.startswith(f"{stack}-") for n in names), names
    volumes = set(host.check_output("docker volume ls --format '{{.Name}}'").split())
    assert {f"{stack}-convex-data", f"{stack}-redis-data", f"{stack}-caddy-data"} <= volumes
    assert host.file(f"/etc/owlat/{stack}/secrets.env").mode == 0o600
    assert f"{stack}-net" in host.check_output("docker network ls --format '{{.Name}}'").split()


def test_dashboard_only_where_enabled_and_never_open(host, address, tls, name, stack):
    ports = host.check_output(f"docker ps --filter name={stack}-convex-dashboard --format '{{{{.Ports}}}}'")
    if name not in DASHBOARD:
        assert ports == ""
        return
    # On the host's loopback only ...
    assert "127.0.0.1:6791->6791/tcp" in ports and "0.0.0.0" not in ports
    # ... and through Caddy only with the password.
    status, _ = https(address, tls, DASHBOARD[name], "/")
    assert status == 401
    auth = base64.b64encode(b"admin:lab-dashboard-pass").decode()
    status, body = https(address, tls, DASHBOARD[name], "/", f"Authorization: Basic {auth}\r\n")
    assert status == 200
    assert f"https://api.{name}.owlat.test" in body  # the deployment URL the browser uses


def test_check_mode_on_the_converged_fleet_changes_nothing():
    rc, out = run_converge("--check")
    assert rc == 0, out[-3000:]
    recaps = dict(re.findall(r"(owlat-mol-fleet\d)\s+: ok=\d+\s+changed=(\d+)", out))
    assert recaps == {"owlat-mol-fleet1": "0", "owlat-mol-fleet2": "0"}, out[-3000:]


def test_deploy_record(host, stack):
    record = json.loads(host.file(f"/etc/ansible/facts.d/owlat_{stack}.fact").content_string)
    assert record["stack"] == stack and record["release"] == "0.4.4"
