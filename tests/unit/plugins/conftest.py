"""Shared fixtures for module tests: running a module for real, and fake servers that follow
/work/shared/design/contracts.md (Convex admin API, Owlat HTTP actions, TLS, raw TCP services)."""

import datetime
import http.server
import json
import re
import secrets
import socket
import socketserver
import ssl
import threading

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.common.text.converters import to_bytes


# ------------------------------------------------------------------------------------ running modules


@pytest.fixture
def run_module(monkeypatch):
    """run(module, params, check_mode=False, diff=False) -> the result dict as the controller would get it
    (after AnsibleModule's no_log masking); ``failed`` is True when the module called fail_json."""

    def run(module, params, check_mode=False, diff=False):
        args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
        # Importing controller code (other tests do) flips this; modules run on the target, not the controller.
        monkeypatch.setattr(ansible_internal, "is_controller", False)
        ansible_warnings._global_warnings.clear()
        captured = {}

        def record(self, result):
            captured.update(json.loads(json.dumps(result, default=str)))

        monkeypatch.setattr(basic.AnsibleModule, "_record_module_result", record)
        with pytest.raises(SystemExit):
            module.main()
        captured.setdefault("failed", False)
        return captured

    return run


def text_of(result):
    """Everything a user could see of a result except the returned values, as one string."""
    visible = {k: v for k, v in result.items() if k in ("msg", "diff", "warnings", "reason", "table")}
    return json.dumps(visible)


@pytest.fixture
def visible_text():
    return text_of


# ------------------------------------------------------------------------------------ fake HTTP server


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class FakeHTTP:
    """A threaded HTTP server; ``route(handler, method, path)`` returns (status, body, content_type)."""

    def __init__(self, route, tls_context=None):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                fake.requests.append(
                    dict(method=self.command, path=self.path, headers=dict(self.headers), body=self.body)
                )
                status, body, ctype = route(self, self.command, self.path)
                if isinstance(body, (dict, list)):
                    body, ctype = json.dumps(body), "application/json"
                raw = body.encode("utf-8") if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype or "text/plain")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.requests = []
        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls_context else "http", self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def posts(self):
        return [r for r in self.requests if r["method"] == "POST"]


ENV_NAME_RE = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
PASSWORD_HASH_RE = re.compile(r"^[0-9a-f]{32}:[0-9a-f]{128}$")


class FakeConvex:
    """Convex backend (3210 paths) and Owlat's HTTP actions (3211 paths) on one port, per contracts.md."""

    def __init__(self):
        self.valid_keys = set()
        self.env = {}
        self.users = []
        self.deployed = True
        self.http = FakeHTTP(self.route)
        self.url = self.http.url
        self.requests = self.http.requests

    def mint(self):
        """What ./generate_admin_key.sh prints: a fresh, valid key."""
        key = "convex-self-hosted|01" + secrets.token_hex(40)
        self.valid_keys.add(key)
        return key

    def _admin(self, handler):
        auth = handler.headers.get("Authorization")
        if not auth:
            return 403, {"code": "BadDeployKey", "message": "Missing admin key"}, None
        if not auth.startswith("Convex ") or auth[len("Convex "):] not in self.valid_keys:
            return 401, {"code": "BadAdminKey", "message": "The provided admin key was invalid for this instance"}, None
        return None

    def route(self, handler, method, path):
        if path == "/version":
            return 200, "unknown", None
        if path == "/api/check_admin_key" and method == "GET":
            return self._admin(handler) or (200, {"success": True, "allowedOps": [], "isReadOnly": False}, None)
        if path == "/api/v1/list_environment_variables" and method == "GET":
            return self._admin(handler) or (200, {"environmentVariables": dict(self.env)}, None)
        if path == "/api/v1/update_environment_variables" and method == "POST":
            refused = self._admin(handler)
            if refused:
                return refused
            changes = json.loads(handler.body)["changes"]
            for change in changes:
                name = change["name"]
                if name in ("CONVEX_SITE_URL", "CONVEX_CLOUD_URL"):
                    return 400, {"code": "EnvVarNameForbidden", "message": "%s is built-in" % name}, None
                if not ENV_NAME_RE.match(name) or len(name) > 256:
                    return 400, {"code": "EnvVarNameInvalid", "message": "bad name"}, None
            for change in changes:
                if change.get("value") is None:
                    self.env.pop(change["name"], None)
                else:
                    self.env[change["name"]] = change["value"]
            return 200, "", None
        if path == "/seed/admin" and method == "POST":
            return self.seed(handler)
        if path == "/api/v1/health":
            if not self.deployed:
                return 404, {"code": "NoHttpActions", "message": "no HTTP actions"}, None
            return 200, {"status": "ok", "timestamp": "2026-01-01T00:00:00Z"}, None
        return 404, {"code": "NotFound", "message": "No route for %s %s" % (method, path)}, None

    def seed(self, handler):
        if not self.deployed:
            return 404, {"code": "NoHttpActions", "message": "This deployment has no HTTP actions"}, None
        expected = self.env.get("INSTANCE_SECRET")
        if not expected or handler.headers.get("X-Instance-Secret") != expected:
            return 401, {"success": False, "error": "Unauthorized"}, None
        body = json.loads(handler.body or b"null")
        if not isinstance(body, dict) or "@" not in str(body.get("email")):
            return 400, {"success": False, "error": "email must be an email address"}, None
        if not PASSWORD_HASH_RE.match(str(body.get("passwordHash"))):
            return 400, {"success": False, "error": "passwordHash must be <32 hex salt>:<128 hex key>"}, None
        if self.users:
            return 409, {"success": False, "error": "An admin user already exists"}, None
        self.users.append(body)
        return 201, {"success": True, "userId": "user%d" % len(self.users)}, None

    def posts(self):
        return self.http.posts()


@pytest.fixture
def fake_convex():
    server = FakeConvex()
    yield server
    server.http.close()


@pytest.fixture
def fake_http():
    """fake_http(route, tls_context=None) -> a started FakeHTTP (closed after the test)."""
    servers = []

    def start(route, tls_context=None):
        server = FakeHTTP(route, tls_context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def closed_port():
    return unused_port()


# ------------------------------------------------------------------------------------ fake TCP services


class FakeTCP:
    """Runs ``handler(conn)`` for every connection."""

    def __init__(self, handler):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    handler(self.request)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_tcp():
    servers = []

    def start(handler):
        server = FakeTCP(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def fake_redis_handler(password, state=None):
    """A Redis speaking just enough RESP: AUTH <password>, PING."""
    state = state if state is not None else {}

    def handler(conn):
        authed = password is None
        while True:
            header = read_line(conn)
            if not header:
                return
            count = int(header[1:])
            words = []
            for dummy in range(count):
                length = int(read_line(conn)[1:])
                words.append(conn.recv(length + 2)[:-2].decode())
            state.setdefault("commands", []).append(words[0])
            if words[0].upper() == "AUTH":
                if password is None:
                    conn.sendall(b"-ERR AUTH <password> called without any password configured for the default user.\r\n")
                elif words[-1] == password:
                    authed = True
                    conn.sendall(b"+OK\r\n")
                else:
                    conn.sendall(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
            elif words[0].upper() == "PING":
                if state.get("loading"):
                    conn.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")
                elif authed:
                    conn.sendall(b"+PONG\r\n")
                else:
                    conn.sendall(b"-NOAUTH Authentication required.\r\n")

    return handler


def fake_clamd_handler(answer=b"PONG\0"):
    def handler(conn):
        data = b""
        while not data.endswith(b"\0"):
            chunk = conn.recv(64)
            if not chunk:
                return
            data += chunk
        if data == b"zPING\0":
            conn.sendall(answer)

    return handler


# ------------------------------------------------------------------------------------ TLS material


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory):
    """A throwaway CA and a server certificate for app.example.com: (ca_path, server ssl.SSLContext, sni list)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "owlat test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("app.example.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "server.pem"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    seen_sni = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path))
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    return str(ca_path), context, seen_sni
