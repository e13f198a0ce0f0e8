"""owlat_status against a fake Docker Engine API (unix socket) and a TLS server that answers per SNI,
with deploy records, a Caddyfile and backup status files in a temporary directory."""

import datetime
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import owlat_status

REG = "registry.owlat.lab:5000"
IMAGES = {
    "convex_backend": REG + "/get-convex/convex-backend:f9962e6",
    "web": REG + "/wolvesdotink/web:0.4.4",
    "mta": REG + "/wolvesdotink/mta:0.4.4",
    "redis": REG + "/library/redis:7.4-alpine",
    "caddy": REG + "/library/caddy:2.8-alpine",
}
IMAGE_OF = {"convex": "convex_backend", "web": "web", "mta": "mta", "redis": "redis", "caddy": "caddy"}


# ------------------------------------------------------------------------------------ fake Docker API


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDocker:
    """GET /info, /containers/json (name filter), /containers/<id>/json; like the Engine API answers them."""

    def __init__(self, path):
        self.containers = {}
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append(self.path)
                status, body = fake.route(self.path)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = _UnixHTTPServer(path, Handler)
        self.url = "unix://" + path
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, name, status="running", health=None, image=None, https_port=None, exit_code=0, labels=None):
        state = {"Status": status, "Running": status == "running", "Restarting": False, "ExitCode": exit_code,
                 "StartedAt": "2026-11-26T01:00:00Z"}
        if health:
            state["Health"] = {"Status": health, "FailingStreak": 0}
        host_config = {"PortBindings": {"443/tcp": [{"HostIp": "", "HostPort": str(https_port)}]}} if https_port else {}
        cid = "%064x" % (len(self.containers) + 1)
        self.containers[name] = {"Id": cid, "Name": "/" + name, "State": state, "RestartCount": 0,
                                 "Config": {"Image": image or "x", "Labels": labels or {}},
                                 "HostConfig": host_config}

    def route(self, path):
        parts = urllib.parse.urlsplit(path)
        if parts.path == "/info":
            return 200, {"ServerVersion": "26.1.5", "DockerRootDir": "/var/lib/docker"}
        if parts.path == "/containers/json":
            query = urllib.parse.parse_qs(parts.query)
            assert query.get("all") == ["1"]
            filters = json.loads(query["filters"][0])
            patterns, labels = filters.get("name") or [], filters.get("label") or []

            def wanted(c):
                have = c["Config"].get("Labels") or {}
                return (any(re.search(p, c["Name"]) for p in patterns)
                        or any(have.get(lbl.split("=", 1)[0]) == lbl.split("=", 1)[1] for lbl in labels))

            listed = [{"Id": c["Id"], "Names": [c["Name"]], "State": c["State"]["Status"],
                       "Labels": c["Config"].get("Labels") or {}}
                      for c in self.containers.values() if wanted(c)]
            return 200, listed
        for c in self.containers.values():
            if parts.path == "/containers/%s/json" % c["Id"]:
                return 200, c
        return 404, {"message": "page not found"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def docker(tmp_path):
    fake = FakeDocker(str(tmp_path / "docker.sock"))
    yield fake
    fake.close()


# ------------------------------------------------------------------------------------ TLS per SNI


def cert_context(directory, cn, days):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Caddy Local Authority")]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        # A 90-day certificate, as ACME issues them.
        .not_valid_before(now + datetime.timedelta(days=days - 89, hours=1))
        .not_valid_after(now + datetime.timedelta(days=days, hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / (cn + ".pem")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(path))
    return context


class SNIServer:
    """Accepts TLS connections and serves the certificate of the requested name (days left per name)."""

    def __init__(self, directory, days_by_name):
        self.contexts = {name: cert_context(directory, name, days) for name, days in days_by_name.items()}
        self.seen = []
        default = cert_context(directory, "default.invalid", 365)

        def pick(sock, name, _ctx):
            self.seen.append(name)
            if name in self.contexts:
                sock.context = self.contexts[name]

        default.sni_callback = pick
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.default = default
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            try:
                with self.default.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------------------------ a host


class FakeDisk:
    """statvfs of the test's directory at a set fill, so a full disk on the machine running the tests
    is not a finding of the test."""

    def __init__(self, root, percent=41):
        self.root, self.percent, self._real = str(root), percent, os.statvfs

    def __call__(self, path):
        if not str(path).startswith(self.root):
            return self._real(path)
        blocks = 1000
        used = blocks * self.percent // 100
        return os.statvfs_result((4096, 4096, blocks, blocks - used, blocks - used, 0, 0, 0, 0, 255))


@pytest.fixture
def host(tmp_path, docker, monkeypatch):
    disk = FakeDisk(tmp_path)
    monkeypatch.setattr(os, "statvfs", disk)
    facts = tmp_path / "facts.d"
    facts.mkdir()
    config = tmp_path / "owlat"
    backups = tmp_path / "backup"
    backups.mkdir()
    tls = SNIServer(tmp_path, {"app.acme.example": 80, "api.acme.example": 80, "actions.acme.example": 5})

    def deploy(stack="acme", release="0.4.4", hostnames=("app", "api", "actions")):
        (facts / ("owlat_%s.fact" % stack)).write_text(json.dumps(
            {"stack": stack, "release": release, "functions_release": release, "images": IMAGES}))
        (config / stack / "caddy").mkdir(parents=True)
        (config / stack / "caddy" / "Caddyfile").write_text(
            "{\n\tlocal_certs\n}\n\n" + "".join("%s.%s.example {\n\treverse_proxy web:3000\n}\n\n" % (h, stack)
                                                 for h in hostnames))
        for svc in ("convex", "web", "mta", "redis", "caddy"):
            docker.add("%s-%s" % (stack, svc), image=IMAGES[IMAGE_OF[svc]],
                       health="healthy" if svc in ("convex", "redis") else None,
                       https_port=tls.port if svc == "caddy" else None)

    def backup(stack="acme", hours_ago=2.0, result="success"):
        now = time.time()
        (backups / ("%s.json" % stack)).write_text(json.dumps(
            {"stack": stack, "result": result, "last_run": now - hours_ago * 3600,
             "last_success": now - hours_ago * 3600, "snapshot_id": "4f1c2a9b", "size_bytes": 52428800}))

    params = dict(facts_dir=str(facts), config_root=str(config), backup_status_dir=str(backups),
                  docker_host=docker.url, disk_paths=[str(tmp_path)], timeout=2)
    yield type("Host", (), dict(deploy=staticmethod(deploy), backup=staticmethod(backup), params=params,
                                docker=docker, tls=tls, disk=disk))
    tls.close()


def test_a_healthy_stack_reads_as_one_row(run_module, host):
    host.deploy()
    host.backup(hours_ago=2.5)
    res = run_module(owlat_status, host.params)
    assert res["failed"] is False and res["changed"] is False, res
    (stack,) = res["stacks"]
    assert stack["stack"] == "acme" and stack["release"] == "0.4.4" and stack["deployed"] is True
    assert stack["services_ok"] is True
    assert [s["name"] for s in stack["services"]] == ["convex", "web", "mta", "redis", "caddy"]
    assert stack["backup"]["state"] == "success" and stack["backup"]["age_hours"] == 2.5
    # Every host name was asked for by SNI on Caddy's published port, and its own certificate read.
    assert sorted(host.tls.seen) == ["actions.acme.example", "api.acme.example", "app.acme.example"]
    days = {c["hostname"]: c["days_left"] for c in stack["tls"]}
    assert days == {"app.acme.example": 80, "api.acme.example": 80, "actions.acme.example": 5}
    assert stack["tls_min_days"] == 5
    assert res["rows"] == [{
        "stack": "acme", "release": "0.4.4",
        "services": "convex ok, web ok, mta ok, redis ok, caddy ok",
        "backup": "2h", "tls": "5d", "disk": res["rows"][0]["disk"],
    }]
    assert res["rows"][0]["disk"] == host.params["disk_paths"][0] + " 41%"
    # The only finding: the actions certificate expires within the 14 days.
    assert res["problems"] == ["acme: TLS actions.acme.example expires in 5d"]
    assert res["docker"] == {"reachable": True, "version": "26.1.5", "root_dir": "/var/lib/docker"}


def test_check_mode_reads_the_same(run_module, host):
    host.deploy()
    normal = run_module(owlat_status, host.params)
    checked = run_module(owlat_status, host.params, check_mode=True)
    assert checked["failed"] is False and checked["changed"] is False
    assert checked["rows"] == normal["rows"] and checked["problems"] == normal["problems"]


def test_broken_services_missing_backup_and_image_drift_are_problems(run_module, host):
    host.deploy()
    host.docker.containers["acme-mta"]["State"].update(Status="exited", Running=False, ExitCode=1)
    host.docker.containers["acme-redis"]["State"]["Health"]["Status"] = "unhealthy"
    host.docker.containers["acme-web"]["Config"]["Image"] = REG + "/wolvesdotink/web:0.4.3"
    del host.docker.containers["acme-caddy"]
    res = run_module(owlat_status, dict(host.params, tls=False))
    assert res["failed"] is False
    row = res["rows"][0]
    assert row["services"] == "convex ok, web ok, mta exited(1), redis unhealthy, caddy missing"
    assert row["backup"] == "never" and row["tls"] == "-"
    assert res["problems"] == [
        "acme: web runs %s/wolvesdotink/web:0.4.3, the deploy record says %s" % (REG, IMAGES["web"]),
        "acme: mta exited(1)",
        "acme: redis unhealthy",
        "acme: caddy missing",
        "acme: backup never",
    ]
    assert res["stacks"][0]["services_ok"] is False


def test_a_full_disk_is_a_problem(run_module, host):
    host.deploy()
    host.backup()
    host.disk.percent = 91
    res = run_module(owlat_status, dict(host.params, tls=False))
    path = host.params["disk_paths"][0]
    assert res["rows"][0]["disk"] == path + " 91%"
    assert "disk %s 91%% used (over 85%%)" % path in res["problems"]
    res = run_module(owlat_status, dict(host.params, tls=False, disk_max_percent=95))
    assert not [p for p in res["problems"] if p.startswith("disk ")]


def test_a_stack_moved_away_is_its_stopped_copy_not_a_failure(run_module, host, tmp_path):
    host.deploy("acme")
    host.deploy("beta")
    host.backup("beta")
    for svc in ("convex", "web", "mta", "redis", "caddy"):
        host.docker.containers["acme-%s" % svc]["State"].update(Status="exited", Running=False, ExitCode=0)
    record = tmp_path / "facts.d" / "owlat_acme.fact"
    data = json.loads(record.read_text())
    record.write_text(json.dumps(dict(data, moved={"to": "web9", "at": 1765000000, "phase": "moved"})))
    res = run_module(owlat_status, dict(host.params, tls=False))
    rows = {r["stack"]: r for r in res["rows"]}
    assert rows["acme"]["services"] == "moved to web9, copy kept stopped" and rows["acme"]["backup"] == "moved"
    assert rows["beta"]["services"].startswith("convex ok")
    assert not [p for p in res["problems"] if p.startswith("acme")], res["problems"]
    # A move stopped between the switch and the target is a finding.
    record.write_text(json.dumps(dict(data, moved={"to": "web9", "at": 1765000000, "phase": "switching"})))
    res = run_module(owlat_status, dict(host.params, tls=False))
    assert "acme: a move to web9 did not finish: run move.yml again" in res["problems"]
    # A move whose target failed: the stack runs here again, as any other.
    record.write_text(json.dumps(dict(data, moved={"to": "web9", "at": 1765000000, "phase": "failed"})))
    res = run_module(owlat_status, dict(host.params, tls=False))
    assert {r["stack"]: r for r in res["rows"]}["acme"]["services"].startswith("convex exited")


def test_every_recorded_stack_is_reported(run_module, host):
    host.deploy("acme")
    host.deploy("beta", release="0.4.3")
    host.backup("beta", hours_ago=40)
    res = run_module(owlat_status, dict(host.params, tls=False))
    assert [(r["stack"], r["release"], r["backup"]) for r in res["rows"]] == [
        ("acme", "0.4.4", "never"), ("beta", "0.4.3", "40h OLD")]
    # A named stack only; one that was never deployed says so.
    res = run_module(owlat_status, dict(host.params, tls=False, stacks=["gamma"]))
    assert res["rows"][0]["release"] == "-"
    assert "gamma: no deploy record (not deployed by site.yml yet)" in res["problems"]


def test_no_engine_no_stack_still_answers(run_module, host, tmp_path):
    res = run_module(owlat_status, dict(host.params, docker_host="unix://" + str(tmp_path / "nothing.sock")))
    assert res["failed"] is False
    assert res["docker"]["reachable"] is False
    assert res["problems"][0].startswith("docker: Docker API ")
    assert res["rows"][0]["services"] == "no Owlat stack on this host"


def test_invalid_input_fails_clearly(run_module, host):
    res = run_module(owlat_status, dict(host.params, stacks=["Bad Name"]))
    assert res["failed"] is True and "Bad Name" in res["msg"]
    res = run_module(owlat_status, dict(host.params, docker_host="tcp://10.0.0.1:2375"))
    assert res["failed"] is True and "unix://" in res["msg"]
