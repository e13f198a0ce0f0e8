"""Contract tests for the test doubles, run as local processes (no Docker needed).

    .venv/bin/pytest -q tests/doubles

Each server starts on free ports (OWLAT_DOUBLE_PORTS) with a temporary data dir (OWLAT_DOUBLE_DATA).
The Redis-backed MTA checks also run against a real `redis-server` when one is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "common"))

import adminkey  # noqa: E402

BACKEND = os.path.join(HERE, "convex-backend", "server.py")
GEN_KEY = os.path.join(HERE, "convex-backend", "generate_admin_key.sh")
DASHBOARD = os.path.join(HERE, "convex-dashboard", "server.py")
WEB = os.path.join(HERE, "web", "server.py")
MTA = os.path.join(HERE, "mta", "server.py")
CLI = os.path.join(HERE, "convex-deploy", "convex.py")
SECRET = "ab" * 32
PW_HASH = "0123456789abcdef" * 2 + ":" + "fedcba9876543210" * 8


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def http(method: str, url: str, body=None, headers=None, timeout=10):
    """(status, headers, body) without raising on HTTP errors; dict/list bodies are sent as JSON."""
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
    elif isinstance(body, str):
        data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, (dict, list)):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def jget(url, headers=None):
    status, _, raw = http("GET", url, headers=headers)
    return status, json.loads(raw) if raw.strip() else None


def jpost(url, body, headers=None):
    status, _, raw = http("POST", url, body, headers)
    return status, json.loads(raw) if raw.strip() else None


class Proc:
    def __init__(self, script, env, tmp, name, ports=()):
        self.log_path = os.path.join(str(tmp), f"{name}-{time.time_ns()}.log")
        self.log_file = open(self.log_path, "wb")
        self.p = subprocess.Popen([sys.executable, script], env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.ports = ports

    def wait_port(self, port, timeout=8.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"process exited {self.p.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.03)
        raise AssertionError(f"port {port} never opened:\n{self.log()}")

    def log(self) -> str:
        self.log_file.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def signal(self, sig):
        self.p.send_signal(sig)

    def wait(self, timeout=8.0) -> int:
        return self.p.wait(timeout)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)
        self.log_file.close()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture
def start(procs, tmp_path):
    def _start(script, env, name, ports):
        p = Proc(script, env, tmp_path, name, ports)
        procs.append(p)
        for port in ports:
            p.wait_port(port)
        return p

    return _start


class Backend:
    def __init__(self, start, data, **env):
        self.api, self.site = free_port(), free_port()
        self.data = str(data)
        self.env = base_env(OWLAT_DOUBLE_PORTS=f"{self.api},{self.site}", OWLAT_DOUBLE_DATA=self.data, **env)
        self.proc = start(BACKEND, self.env, "backend", (self.api, self.site))
        self.url = f"http://127.0.0.1:{self.api}"
        self.site_url = f"http://127.0.0.1:{self.site}"

    def mint(self, **env) -> str:
        out = subprocess.run(["sh", GEN_KEY], env=base_env(OWLAT_DOUBLE_DATA=self.data, **env),
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        assert out.stderr.strip() == "Admin key:"
        return out.stdout.strip()

    def auth(self, key):
        return {"Authorization": f"Convex {key}"}

    def stop(self):
        self.proc.signal(signal.SIGINT)
        assert self.proc.wait() == 0, self.proc.log()


def cli(*args, url=None, key=None, **env):
    e = base_env(CONVEX_SELF_HOSTED_URL=url, CONVEX_SELF_HOSTED_ADMIN_KEY=key, **env)
    return subprocess.run([sys.executable, CLI, *args], env=e, capture_output=True, text=True, timeout=30)


# ---------------------------------------------------------------------------------------------------
# convex-backend
# ---------------------------------------------------------------------------------------------------
def test_backend_basic_endpoints_and_traps(start, tmp_path):
    b = Backend(start, tmp_path / "d", DISABLE_BEACON="false", REDACT_LOGS_TO_CLIENT="false",
                DO_NOT_REQUIRE_SSL="false", PORT="1")
    status, headers, body = http("GET", b.url + "/version")
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and body == b"unknown"
    assert http("GET", b.url + "/instance_name")[2] == b"convex-self-hosted"
    assert http("GET", b.url + "/")[0] == 200
    status, body = jget(b.url + "/metrics")
    assert status == 404 and body["code"] == "MetricsDisabled"
    log = b.proc.log()
    assert "beacon disabled" in log and "redacting logs to client" in log and "SSL not required" in log
    assert re.search(r"db metadata version up to date at \d+", log)

    m = Backend(start, tmp_path / "m", DISABLE_METRICS_ENDPOINT="false")
    status, headers, body = http("GET", m.url + "/metrics")
    assert status == 200 and b'convex_local_backend_convex_binary_versions_total{binary="backend",version="unknown"} 1' in body
    assert "beacon enabled" in m.proc.log()
    for value in ("true", "1"):
        x = Backend(start, tmp_path / f"x{value}", DISABLE_METRICS_ENDPOINT=value)
        assert jget(x.url + "/metrics")[0] == 404


def test_sync_websocket_handshake(start, tmp_path):
    import base64
    import hashlib

    b = Backend(start, tmp_path / "d")
    key = base64.b64encode(b"0123456789abcdef").decode()
    with socket.create_connection(("127.0.0.1", b.api), timeout=5) as s:
        s.sendall((f"GET /api/sync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = s.recv(4096).decode(errors="replace")
    expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert head.startswith("HTTP/1.1 101")
    assert f"Sec-WebSocket-Accept: {expected.decode()}" in head
    status, _, _ = http("GET", b.url + "/api/sync")
    assert status == 400


def test_credentials_generated_written_back_and_reused(start, tmp_path):
    data = tmp_path / "d"
    b = Backend(start, data)
    secret = (data / "credentials" / "instance_secret").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert (data / "credentials" / "instance_name").read_text() == "convex-self-hosted"
    key = b.mint()
    assert key.startswith("convex-self-hosted|")
    b.stop()
    b2 = Backend(start, data)  # secret from the file: the old key still works
    assert (data / "credentials" / "instance_secret").read_text() == secret
    assert jget(b2.url + "/api/check_admin_key", b2.auth(key))[0] == 200
    b2.stop()
    b3 = Backend(start, data, INSTANCE_SECRET=SECRET, INSTANCE_NAME="lab-one")  # env wins, written back
    assert (data / "credentials" / "instance_secret").read_text() == SECRET
    assert (data / "credentials" / "instance_name").read_text() == "lab-one"
    assert jget(b3.url + "/api/check_admin_key", b3.auth(key))[0] == 401


def test_admin_keys(start, tmp_path):
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    k1, k2 = b.mint(INSTANCE_SECRET=SECRET), b.mint()  # env or credentials file: same secret
    assert k1 != k2 and re.fullmatch(r"convex-self-hosted\|01[0-9a-f]{88}", k1)
    for key in (k1, k2):
        assert jget(b.url + "/api/check_admin_key", b.auth(key)) == (
            200, {"success": True, "allowedOps": [], "isReadOnly": False})
    status, body = jget(b.url + "/api/check_admin_key")
    assert status == 403 and body["code"] == "BadDeployKey" and "message" in body
    tampered = k1[:-1] + ("0" if k1[-1] != "0" else "1")
    other_instance = adminkey.mint("other-instance", SECRET)
    for bad in (tampered, other_instance, "garbage", "convex-self-hosted|zz"):
        status, body = jget(b.url + "/api/check_admin_key", b.auth(bad))
        assert status == 401 and body["code"] == "BadAdminKey", bad
    assert adminkey.verify(k1, "convex-self-hosted", SECRET)["member_id"] == 0
    b.stop()
    new_secret = "cd" * 32
    b2 = Backend(start, tmp_path / "d", INSTANCE_SECRET=new_secret)  # a new secret invalidates every key
    for key in (k1, k2):
        assert jget(b2.url + "/api/check_admin_key", b2.auth(key))[0] == 401
    assert jget(b2.url + "/api/check_admin_key", b2.auth(b2.mint()))[0] == 200


@pytest.mark.parametrize("bad", ["abc", "ab" * 31 + "zz", "ab" * 33])
def test_backend_refuses_bad_instance_secret(tmp_path, bad):
    out = subprocess.run([sys.executable, BACKEND], capture_output=True, text=True, timeout=10,
                         env=base_env(INSTANCE_SECRET=bad, OWLAT_DOUBLE_DATA=str(tmp_path),
                                      OWLAT_DOUBLE_PORTS=f"{free_port()},{free_port()}"))
    assert out.returncode != 0 and "INSTANCE_SECRET must be exactly 64 hex characters" in out.stderr


def test_env_vars(start, tmp_path):
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    h = b.auth(b.mint())
    upd, lst = b.url + "/api/update_environment_variables", b.url + "/api/list_environment_variables"
    assert jpost(upd, {"changes": [{"name": "A", "value": "1"}]})[0] == 403
    assert jpost(upd, {"changes": [{"name": "A", "value": "1"}]}, {"Authorization": "Convex x|00"})[0] == 401
    status, _, raw = http("POST", upd, {"changes": [{"name": "A", "value": "1"}, {"name": "_b9", "value": "x"},
                                                    {"name": "C", "value": "y"}]}, h)
    assert status == 200 and raw == b""
    assert jget(lst, h) == (200, {"environmentVariables": {"A": "1", "_b9": "x", "C": "y"}})
    # null deletes, absent value deletes, deleting a missing name is a no-op; /api/v1 works too
    status, _, raw = http("POST", b.url + "/api/v1/update_environment_variables",
                          {"changes": [{"name": "A", "value": None}, {"name": "_b9"}, {"name": "NOPE", "value": None}]}, h)
    assert status == 200 and raw == b""
    assert jget(b.url + "/api/v1/list_environment_variables", h)[1] == {"environmentVariables": {"C": "y"}}
    cases = [
        ("1A", "v", "EnvironmentVariableNameInvalid"), ("A-B", "v", "EnvironmentVariableNameInvalid"),
        ("", "v", "EnvironmentVariableNameInvalid"), ("A" * 257, "v", "EnvironmentVariableNameTooLong"),
        ("BIG", "x" * 8193, "EnvironmentVariableValueTooLarge"),
        ("CONVEX_SITE_URL", "http://x", "EnvVarNameForbidden"), ("CONVEX_CLOUD_URL", "http://x", "EnvVarNameForbidden"),
    ]
    for name, value, code in cases:
        status, body = jpost(upd, {"changes": [{"name": "OK1", "value": "v"}, {"name": name, "value": value}]}, h)
        assert status == 400 and body["code"] == code and body["message"], (name, body)
    assert jget(lst, h)[1] == {"environmentVariables": {"C": "y"}}  # all-or-nothing
    # Deleting a built-in only parses the name (upstream): a no-op, not EnvVarNameForbidden.
    assert http("POST", upd, {"changes": [{"name": "CONVEX_SITE_URL", "value": None}]}, h)[0] == 200
    assert http("POST", upd, {"changes": [{"name": "A" * 256, "value": "x" * 8192}]}, h)[0] == 200
    many = [{"name": f"V{i}", "value": "v"} for i in range(510)]  # 2 present + 510 = 512
    assert http("POST", upd, {"changes": many}, h)[0] == 200
    status, body = jpost(upd, {"changes": [{"name": "ONE_TOO_MANY", "value": "v"}]}, h)
    assert status == 400 and body["code"] == "EnvVarLimitMet"
    assert jpost(upd, {"nope": 1}, h)[0] == 400


def test_signals_sigterm_ignored_sigint_graceful(start, tmp_path):
    b = Backend(start, tmp_path / "d")
    b.proc.signal(signal.SIGTERM)
    # the log line is the proof the signal arrived; on a loaded CI machine it can take a while
    deadline = time.time() + 10
    while "SIGTERM: ignored" not in b.proc.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "SIGTERM: ignored" in b.proc.log()
    time.sleep(0.3)
    assert b.proc.p.poll() is None and http("GET", b.url + "/version")[0] == 200
    t0 = time.time()
    b.proc.signal(signal.SIGINT)
    assert b.proc.wait(5) == 0 and time.time() - t0 < 3
    assert "database closed" in b.proc.log()


def test_second_sigint_exits_at_once(start, tmp_path):
    b = Backend(start, tmp_path / "d")
    with socket.create_connection(("127.0.0.1", b.api)) as stalled:  # an in-flight request keeps it draining
        stalled.sendall(b"GET /version HTTP/1.1\r\n")
        time.sleep(0.2)
        b.proc.signal(signal.SIGINT)
        deadline = time.time() + 10
        while "draining requests" not in b.proc.log() and time.time() < deadline:
            time.sleep(0.1)
        assert b.proc.p.poll() is None and "draining requests" in b.proc.log()
        b.proc.signal(signal.SIGINT)
        assert b.proc.wait(3) != 0 and "second SIGINT" in b.proc.log()


def test_deploy_http_actions_and_seed_admin(start, tmp_path):
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    key = b.mint()
    h = b.auth(key)
    # before any deploy: no HTTP actions, no public functions
    for url in (b.site_url + "/api/v1/health", b.url + "/http/api/v1/health", b.site_url + "/seed/admin"):
        status, body = jget(url)
        assert status == 404 and body["code"] == "NoHttpActions", url
    status, body = jpost(b.url + "/api/query", {"path": "lab:list", "args": {"table": "notes"}, "format": "json"})
    assert status == 200 and body["status"] == "error" and "Could not find public function" in body["errorMessage"]
    assert jpost(b.url + "/api/query", {"path": "_system/cli/exports:getLatest", "args": {}})[0] == 403
    assert jpost(b.url + "/api/query", {"path": "_system/cli/exports:getLatest", "args": {}}, h)[1]["value"] is None

    # convex-deploy double: failures first
    bad = cli("deploy", url=b.url, key=adminkey.mint("convex-self-hosted", "ef" * 32))
    assert bad.returncode != 0 and "rejected the admin key (401 BadAdminKey" in bad.stderr
    missing = cli("deploy", url=b.url)
    assert missing.returncode != 0 and "CONVEX_SELF_HOSTED_ADMIN_KEY" in missing.stderr
    down = cli("deploy", url=f"http://127.0.0.1:{free_port()}", key=key)
    assert down.returncode != 0 and "could not reach the Convex backend" in down.stderr
    failing = cli("deploy", url=b.url, key=key, DOUBLE_FAIL_HEALTH="true")
    assert failing.returncode != 0
    assert jget(b.site_url + "/api/v1/health")[0] == 404
    ok = cli("deploy", "--url", b.url, "--admin-key", key)
    assert ok.returncode == 0, ok.stderr
    assert "Deployed Convex functions 0.4.4" in ok.stderr
    assert jpost(b.url + "/api/get_config_hashes", {}, h)[1]["functionsVersion"] == "0.4.4"

    # after: HTTP actions on 3211 and on 3210 under /http
    for url in (b.site_url + "/api/v1/health", b.url + "/http/api/v1/health"):
        status, body = jget(url)
        assert status == 200 and body["status"] == "ok"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["timestamp"])
    assert http("GET", b.site_url + "/nope")[0] == 404
    # data API
    status, body = jpost(b.url + "/api/mutation", {"path": "lab:put", "args": {"table": "notes", "doc": {"t": "hi"}}})
    assert status == 200 and body["status"] == "success" and isinstance(body["value"], str)
    doc_id = body["value"]
    body = jpost(b.url + "/api/query", {"path": "lab:list", "args": {"table": "notes"}})[1]
    assert body["status"] == "success" and [d["_id"] for d in body["value"]] == [doc_id]
    assert body["value"][0]["t"] == "hi"
    assert jpost(b.url + "/api/query", {"path": "users:count", "args": {}})[1]["value"] == 0

    # seed admin: the secret is compared with the *deployment* env, which is still empty
    seed = b.site_url + "/seed/admin"
    good = {"email": "admin@example.org", "name": "Admin", "passwordHash": PW_HASH}
    assert jpost(seed, good, {"X-Instance-Secret": SECRET})[0] == 401
    r = cli("env", "set", "--", "INSTANCE_SECRET", SECRET, url=b.url, key=key)
    assert r.returncode == 0, r.stderr
    assert f"INSTANCE_SECRET={SECRET}" in cli("env", "list", url=b.url, key=key).stdout
    assert jpost(seed, good)[0] == 401
    assert jpost(seed, good, {"X-Instance-Secret": "cd" * 32})[0] == 401
    for body in ({"email": "admin@example.org", "name": "Admin"},
                 dict(good, passwordHash=PW_HASH.upper()),
                 dict(good, passwordHash=PW_HASH[:-2]),
                 dict(good, email="not-an-email"),
                 dict(good, name="")):
        assert jpost(seed, body, {"X-Instance-Secret": SECRET})[0] == 400, body
    assert http("POST", seed, "{not json", {"X-Instance-Secret": SECRET})[0] == 400
    status, body = jpost(seed, good, {"X-Instance-Secret": SECRET})
    assert status == 201 and body["success"] is True and body["userId"]
    status, body = jpost(seed, good, {"X-Instance-Secret": SECRET})
    assert status == 409
    assert jpost(b.url + "/api/query", {"path": "users:count", "args": {}})[1]["value"] == 1

    # state survives a restart; a later functions version replaces the earlier one
    b.stop()
    b2 = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    assert jget(b2.site_url + "/api/v1/health")[0] == 200
    assert jpost(b2.url + "/api/query", {"path": "users:count", "args": {}})[1]["value"] == 1
    r = cli("deploy", url=b2.url, key=key, DOUBLE_VERSION="0.4.5")
    assert r.returncode == 0, r.stderr
    assert jpost(b2.url + "/api/get_config_hashes", {}, b2.auth(key))[1]["functionsVersion"] == "0.4.5"


def test_deploy_steps_out_of_order(start, tmp_path):
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    h = b.auth(b.mint())
    config = {"functionsVersion": "9.9.9", "modules": [{"path": "http.js", "source": "x"}]}
    assert jpost(b.url + "/api/deploy2/start_push", config)[0] == 403
    push = jpost(b.url + "/api/deploy2/start_push", config, h)[1]["pushId"]
    status, body = jpost(b.url + "/api/deploy2/finish_push", {"pushId": push}, h)
    assert status == 400 and body["code"] == "SchemaNotReady"
    assert jpost(b.url + "/api/deploy2/evaluate_push", {"modules": []}, h)[0] == 400


def test_export_import_roundtrip(start, tmp_path):
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET)
    key = b.mint()
    h = b.auth(key)
    assert cli("deploy", url=b.url, key=key).returncode == 0
    jpost(b.url + "/api/mutation", {"path": "lab:put", "args": {"table": "notes", "doc": {"n": 1}}})
    assert http("POST", b.url + "/api/export/request/zip?includeStorage=true", b"", h)[0] == 200
    latest = None
    for _ in range(50):
        latest = jpost(b.url + "/api/query", {"path": "_system/cli/exports:getLatest", "args": {}}, h)[1]["value"]
        if latest["state"] == "completed":
            break
        time.sleep(0.1)
    assert latest["state"] == "completed" and latest["start_ts"].isdigit()
    status, headers, data = http("GET", b.url + f"/api/export/zip/{latest['start_ts']}", headers=h)
    assert status == 200 and f"snapshot_convex-self-hosted_{latest['start_ts']}.zip" in headers["Content-Disposition"]
    assert jget(b.url + "/api/export/zip/123", h)[1]["code"] == "ExportNotFound"
    jpost(b.url + "/api/mutation", {"path": "lab:put", "args": {"table": "notes", "doc": {"n": 2}}})
    status, _, raw = http("POST", b.url + "/api/import?format=zip&mode=replaceAll", data,
                          dict(h, **{"Content-Type": "application/octet-stream"}))
    assert status == 200 and json.loads(raw) == {"numWritten": 1}
    docs = jpost(b.url + "/api/query", {"path": "lab:list", "args": {"table": "notes"}})[1]["value"]
    assert [d["n"] for d in docs] == [1]


OLD_REV, NEW_REV = "f9962e609c19c6a112da7af7749f78d5a25ca2e9", "c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef"


def test_lease_and_migrations(start, tmp_path):
    data = tmp_path / "d"
    old = Backend(start, data, DOUBLE_VERSION=NEW_REV)
    new = Backend(start, data, DOUBLE_VERSION=NEW_REV)
    assert old.proc.wait(6) == 1 and "lease lost" in old.proc.log()
    new.stop()
    # DATABASE_VERSION per revision as upstream: 116 at f9962e6, 128 at c51b14b; migrations one at a time.
    data2 = tmp_path / "d2"
    Backend(start, data2, DOUBLE_VERSION=OLD_REV).stop()
    up = Backend(start, data2, DOUBLE_VERSION=NEW_REV)
    log = up.proc.log()
    assert "Executing Migration 117/128. Wait for log line 'Migrated 117'" in log
    assert "Migrated 128" in log and "db metadata version up to date at 128" in log
    up.stop()
    # An older backend on a migrated database warns and keeps serving: upstream refuses nothing there.
    back = Backend(start, data2, DOUBLE_VERSION=OLD_REV)
    assert "persisted db metadata version is ahead at 128, this binary is at 116" in back.proc.log()
    assert http("GET", back.url + "/version")[0] == 200
    back.stop()
    out = subprocess.run([sys.executable, BACKEND], capture_output=True, text=True, timeout=10,
                         env=dict(up.env, DOUBLE_VERSION="0" * 40))
    assert out.returncode != 0 and "no route table for revision" in out.stderr


def test_backend_fail_health(start, tmp_path):
    b = Backend(start, tmp_path / "d", DOUBLE_FAIL_HEALTH="true")
    assert http("GET", b.url + "/version")[0] == 503


# ---------------------------------------------------------------------------------------------------
# convex-dashboard
# ---------------------------------------------------------------------------------------------------
def test_dashboard(start, tmp_path):
    port = free_port()
    d = start(DASHBOARD, base_env(OWLAT_DOUBLE_PORTS=str(port), NEXT_PUBLIC_DEPLOYMENT_URL="https://api.lab.test"),
              "dash", (port,))
    status, headers, body = http("GET", f"http://127.0.0.1:{port}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"https://api.lab.test" in body
    assert "NEXT_PUBLIC_ADMIN_KEY" not in d.log()
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    port2 = free_port()
    d2 = start(DASHBOARD, base_env(OWLAT_DOUBLE_PORTS=str(port2), NEXT_PUBLIC_ADMIN_KEY="convex-self-hosted|01ab"),
               "dash2", (port2,))
    assert "!!! NEXT_PUBLIC_ADMIN_KEY is set" in d2.log()
    assert b"convex-self-hosted|01ab" in http("GET", f"http://127.0.0.1:{port2}/")[2]


# ---------------------------------------------------------------------------------------------------
# web
# ---------------------------------------------------------------------------------------------------
def test_web(start, tmp_path):
    port = free_port()
    env = base_env(PORT=str(port), HOST="127.0.0.1", INSTANCE_SECRET=SECRET,
                   NUXT_PUBLIC_CONVEX_URL="https://api.lab.test", NUXT_PUBLIC_CONVEX_SITE_URL="https://site.lab.test",
                   NUXT_PUBLIC_SITE_URL="https://app.lab.test", OWLAT_DEPLOYMENT_MODE="selfhost",
                   NUXT_CONVEX_SITE_URL_INTERNAL="http://convex:3211")
    w = start(WEB, env, "web", (port,))  # PORT honoured (no OWLAT_DOUBLE_PORTS here)
    url = f"http://127.0.0.1:{port}"
    status, body = jget(url + "/api/instance-info")
    assert status == 200 and body == {"name": "Owlat", "convexUrl": "https://api.lab.test",
                                      "convexSiteUrl": "https://site.lab.test", "siteUrl": "https://app.lab.test",
                                      "deploymentMode": "selfhost"}
    status, headers, page = http("GET", url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"0.4.4" in page
    assert jget(url + "/api/internal/status")[0] == 401
    assert jget(url + "/api/internal/status", {"X-Instance-Secret": "nope"})[0] == 401
    assert jget(url + "/api/internal/status", {"X-Instance-Secret": SECRET})[0] == 200
    # graceful: an in-flight request finishes after SIGTERM, then exit 0
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", http("GET", url + "/api/_double/slow?ms=1200")))
    t.start()
    time.sleep(0.3)
    w.signal(signal.SIGTERM)
    t.join(5)
    assert result["r"][0] == 200
    assert w.wait() == 0

    port2 = free_port()
    start(WEB, base_env(OWLAT_DOUBLE_PORTS=str(port2), DOUBLE_FAIL_HEALTH="true", DOUBLE_VERSION="0.4.5"),
          "web2", (port2,))
    assert jget(f"http://127.0.0.1:{port2}/api/instance-info")[0] == 503
    assert b"0.4.5" in http("GET", f"http://127.0.0.1:{port2}/")[2]
    assert jget(f"http://127.0.0.1:{port2}/api/internal/status", {"X-Instance-Secret": ""})[0] == 401


# ---------------------------------------------------------------------------------------------------
# mta
# ---------------------------------------------------------------------------------------------------
def mta_env(**over):
    env = {
        "MTA_API_KEY": "mta_" + "k" * 40, "RETURN_PATH_DOMAIN": "bounces.lab.test",
        "CONVEX_SITE_URL": "http://convex:3211", "MTA_WEBHOOK_SECRET": "whsec_" + "w" * 40,
        "MTA_SECRET": "ab" * 32, "BOUNCE_VERP_KEY": "Vq3r8LmN2pX7sT4wY9zB1cD6fG5hJ0kQ2mR8nS3t",
        "EHLO_HOSTNAME": "mail.lab.test", "IP_POOLS_TRANSACTIONAL": "192.0.2.10, 2001:db8::1",
        "IP_POOLS_CAMPAIGN": "192.0.2.11", "MTA_IPV6_ENABLED": "true", "EHLO_HOSTNAMES": '{"192.0.2.11": "mail2.lab.test"}',
        "FBL_DEDUP_PROTOCOL": "owned-v2", "FBL_DEDUP_CUTOVER_ACK": "fresh-install",
        "REDIS_URL": f"redis://:pw@127.0.0.1:{free_port()}",
    }
    env.update(over)
    return base_env(**{k: v for k, v in env.items()})


MTA_BAD = [
    ("MTA_API_KEY", ""), ("RETURN_PATH_DOMAIN", ""), ("CONVEX_SITE_URL", ""), ("MTA_WEBHOOK_SECRET", ""),
    ("MTA_SECRET", "x" * 31), ("BOUNCE_VERP_KEY", "short"), ("BOUNCE_VERP_KEY", "change-me-change-me-change-me-change-me"),
    ("EHLO_HOSTNAME", "localhost"), ("EHLO_HOSTNAME", "mail"), ("EHLO_HOSTNAME", "192.0.2.1"),
    ("EHLO_HOSTNAME", "bad_host.example.org"), ("EHLO_HOSTNAME", ""),
    ("IP_POOLS_TRANSACTIONAL", "192.0.2.1,not-an-ip"), ("IP_POOLS_CAMPAIGN", "192.0.2.300"),
    ("IP_POOLS_CAMPAIGN", "2001:db8::1"), ("EHLO_HOSTNAMES", "{not json"), ("EHLO_HOSTNAMES", '["x"]'),
    ("EHLO_HOSTNAMES", '{"mail.example.org": "mail.example.org"}'), ("EHLO_HOSTNAMES", '{"192.0.2.1": "localhost"}'),
    ("FBL_DEDUP_PROTOCOL", "owned-v1"), ("FBL_DEDUP_PROTOCOL", ""), ("FBL_DEDUP_CUTOVER_ACK", "yes"),
    ("REDIS_URL", ""), ("REDIS_URL", "http://redis:6379"),
]


@pytest.mark.parametrize("name,value", MTA_BAD, ids=[f"{n}={v[:12]}" for n, v in MTA_BAD])
def test_mta_refuses_bad_env(name, value):
    env = mta_env(**{name: value}, OWLAT_DOUBLE_PORTS=f"{free_port()},{free_port()}")
    if value == "":
        env.pop(name)
    out = subprocess.run([sys.executable, MTA], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert re.search(rf"FATAL.*- {name} ", out.stderr), out.stderr


def test_mta_refuses_ipv6_pools_unless_enabled():
    env = mta_env(OWLAT_DOUBLE_PORTS=f"{free_port()},{free_port()}")
    env.pop("MTA_IPV6_ENABLED")
    out = subprocess.run([sys.executable, MTA], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert "IP_POOLS_TRANSACTIONAL holds IPv6, but MTA_IPV6_ENABLED is false" in out.stderr, out.stderr


def smtp_session(port, lines):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        replies = [f.readline().decode().rstrip("\r\n")]
        for line in lines:
            s.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                replies.append(reply)
                if len(reply) < 4 or reply[3] != "-":
                    break
        return replies


def test_mta_without_redis(start):
    http_port, smtp_port = free_port(), free_port()
    m = start(MTA, mta_env(PORT=str(http_port), BOUNCE_PORT=str(smtp_port)), "mta", (http_port, smtp_port))
    url = f"http://127.0.0.1:{http_port}"
    status, body = jget(url + "/health")
    assert status == 200 and body["status"] == "degraded" and body["redis"] == "disconnected"
    assert body["worker"]["alive"] is True and isinstance(body["dns"], dict)
    assert jget(url + "/") == (200, {"service": "owlat-mta", "version": "0.4.4"})
    # Exactly upstream's metric names (metrics.json), nothing invented.
    text = http("GET", url + "/metrics")[2].decode()
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    with open(os.path.join(HERE, "mta", "metrics.json"), encoding="utf-8") as fh:
        assert served == {m["name"] for m in json.load(fh)["metrics"]}
    assert re.search(r"^mta_unattributed_bounces_total 0$", text, re.M)
    assert jpost(url + "/send", {"to": "a@b.c"})[0] == 401
    assert jpost(url + "/send", {"to": "a@b.c"}, {"Authorization": "Bearer wrong"})[0] == 401
    assert jpost(url + "/send/batch", {"to": "a@b.c"}, {"Authorization": "Bearer mta_" + "k" * 40})[0] == 503
    replies = smtp_session(smtp_port, ["EHLO client.example", "NOOP", "RSET", "VRFY x", "QUIT"])
    assert replies[0] == "220 mail.lab.test Owlat MTA Bounce Processor"
    assert replies[1] == "250-mail.lab.test greets client.example"
    assert replies[replies.index("250 SIZE 10485760") - 1].startswith("250-")
    tail = replies[replies.index("250 SIZE 10485760") + 1:]
    assert [r[:3] for r in tail] == ["250", "250", "502", "221"]
    m.signal(signal.SIGTERM)
    assert m.wait() == 0


def test_mta_idle_worker_per_release(start):
    """Before 0.4.4 the worker beat only after a job: an idle MTA says worker.alive=false (upstream health.ts)."""
    for version, alive in (("0.4.3", False), ("0.4.4", True)):
        http_port, smtp_port = free_port(), free_port()
        start(MTA, mta_env(PORT=str(http_port), BOUNCE_PORT=str(smtp_port), DOUBLE_VERSION=version), "mta",
              (http_port, smtp_port))
        status, body = jget(f"http://127.0.0.1:{http_port}/health")
        assert status == 200 and body["worker"]["alive"] is alive, (version, body)


def test_mta_fail_health_reports_unhealthy(start):
    hp, sp = free_port(), free_port()
    start(MTA, mta_env(OWLAT_DOUBLE_PORTS=f"{hp},{sp}", DOUBLE_FAIL_HEALTH="true"), "mta", (hp, sp))
    status, body = jget(f"http://127.0.0.1:{hp}/health")
    assert status == 200 and body["status"] == "degraded" and body["worker"]["alive"] is False


def redis_cmd(port, *args, password="pw"):
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        f = s.makefile("rb")
        out = None
        for cmd in (("AUTH", password), args):
            s.sendall(b"".join([f"*{len(cmd)}\r\n".encode()] + [b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                                                                  for a in cmd]))
            line = f.readline()
            if line[:1] == b"*":
                out = [f.readline() and f.readline().rstrip(b"\r\n").decode() for _ in range(int(line[1:]))]
            else:
                out = line.decode().strip()
        return out


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_mta_with_redis(start, procs, tmp_path):
    rport, hp, sp = free_port(), free_port(), free_port()
    redis_args = ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--requirepass", "pw", "--save", "",
                  "--appendonly", "no", "--dir", str(tmp_path)]
    redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 5
        while True:
            try:
                if redis_cmd(rport, "PING") == "+PONG":
                    break
            except OSError:
                pass
            assert time.time() < deadline, "redis-server did not start"
            time.sleep(0.05)
        m = start(MTA, mta_env(OWLAT_DOUBLE_PORTS=f"{hp},{sp}", REDIS_URL=f"redis://:pw@127.0.0.1:{rport}",
                               OWLAT_DOUBLE_REDIS_PING_SECONDS="0.5"),
                  "mta", (hp, sp))
        url = f"http://127.0.0.1:{hp}"

        def wait_redis(state, timeout=6.0):
            deadline = time.time() + timeout
            while time.time() < deadline:
                body = jget(url + "/health")[1]
                if body["redis"] == state:
                    return body
                time.sleep(0.1)
            raise AssertionError(f"redis never {state}:\n{m.log()}")

        body = wait_redis("connected")
        assert body["status"] == "ok"
        status, body = jpost(url + "/send", {"to": "a@b.c", "subject": "hi"}, {"Authorization": "Bearer mta_" + "k" * 40})
        assert status == 202
        queued = redis_cmd(rport, "LRANGE", "owlat:mta:queue:send", "0", "-1")
        assert len(queued) == 1 and json.loads(queued[0]) == {"to": "a@b.c", "subject": "hi"}
        redis.terminate()
        redis.wait(5)
        wait_redis("disconnected")
        redis = subprocess.Popen(redis_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_redis("connected")
        # a wrong password never connects
        hp2, sp2 = free_port(), free_port()
        m2 = start(MTA, mta_env(OWLAT_DOUBLE_PORTS=f"{hp2},{sp2}", REDIS_URL=f"redis://:wrong@127.0.0.1:{rport}"),
                   "mta2", (hp2, sp2))
        time.sleep(0.3)
        assert jget(f"http://127.0.0.1:{hp2}/health")[1]["redis"] == "disconnected"
        assert "WRONGPASS" in m2.log() or "invalid password" in m2.log()
    finally:
        redis.terminate()
        redis.wait(5)
