# TEST DOUBLE support code shared by the owlat.selfhost contract doubles (tests/doubles): not a real product.
"""Small helpers for the doubles: logging, ports, JSON HTTP handlers, signal-driven shutdown.

Standard library only; must run on Python 3.11 (controller) and 3.13 (images).
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from datetime import datetime, timezone

_LOG_LOCK = threading.Lock()


def log(component: str, msg: str, level: str = "INFO") -> None:
    """One line on stderr, flushed (the container log)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with _LOG_LOCK:
        sys.stderr.write(f"{stamp} {level:5} {component}: {msg}\n")
        sys.stderr.flush()


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def env_flag(name: str, default: bool = False) -> bool:
    """Double-only build/run flags (DOUBLE_FAIL_HEALTH): 'true' (any case), '1', 'yes' are on."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


def double_ports(defaults: list[int]) -> list[int]:
    """OWLAT_DOUBLE_PORTS (double-only, comma-separated) overrides the listening ports, in order."""
    raw = os.environ.get("OWLAT_DOUBLE_PORTS", "").strip()
    if not raw:
        return list(defaults)
    ports = [int(p) for p in raw.split(",") if p.strip()]
    if len(ports) < len(defaults):
        ports += defaults[len(ports):]
    return ports


def data_dir(default: str) -> str:
    """OWLAT_DOUBLE_DATA (double-only) overrides the data directory."""
    return os.environ.get("OWLAT_DOUBLE_DATA") or default


def is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """HTTP server with one thread per request; server_close() waits for in-flight requests."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, handler, app=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.address_family = family
        self.app = app
        super().__init__((host, port), handler)


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """Base handler: one request per connection, JSON/text helpers, logging through log()."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle or stalled client cannot hold a graceful shutdown for longer than this
    server_version = "owlat-double"
    sys_version = ""
    component = "http"
    quiet_paths: tuple[str, ...] = ()

    # -- plumbing -------------------------------------------------------------
    @property
    def app(self):
        return self.server.app

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        if getattr(self, "path", "").split("?", 1)[0] in self.quiet_paths:
            return
        log(self.component, "%s %s" % (self.address_string(), format % args))

    def read_body(self, limit: int = 32 * 1024 * 1024) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def read_json(self):
        """Parsed JSON body, or raises ValueError."""
        raw = self.read_body()
        if not raw.strip():
            raise ValueError("empty body")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc}") from exc

    def send_bytes(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    def send_text(self, status: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_bytes(status, text.encode(), ctype)

    def send_empty(self, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    # Every method goes through dispatch(method) so subclasses write one router.
    def dispatch(self, method: str) -> None:  # pragma: no cover - overridden
        self.send_json(404, {"code": "NotFound", "message": "not found"})

    def _run(self, method: str) -> None:
        try:
            self.dispatch(method)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a double must never hang a client
            log(self.component, f"internal error on {method} {self.path}: {exc!r}", "ERROR")
            try:
                self.send_json(500, {"code": "InternalServerError", "message": str(exc)})
            except Exception:
                pass

    def do_GET(self):
        self._run("GET")

    def do_HEAD(self):
        self._run("HEAD")

    def do_POST(self):
        self._run("POST")

    def do_PUT(self):
        self._run("PUT")

    def do_DELETE(self):
        self._run("DELETE")

    def do_PATCH(self):
        self._run("PATCH")

    def do_OPTIONS(self):
        self._run("OPTIONS")


def serve(servers: list[ThreadingServer]) -> list[threading.Thread]:
    threads = []
    for srv in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)
    return threads


def shutdown_all(servers) -> None:
    """Stop every server's accept loop in parallel, then wait for in-flight requests (server_close)."""
    threads = [threading.Thread(target=srv.shutdown) for srv in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for srv in servers:
        srv.server_close()


class Stopper:
    """Main-thread wait loop driven by signals.

    graceful: the signals that start a graceful stop; ignored: signals logged and ignored.
    A second graceful signal while stopping exits at once (force_code).
    """

    def __init__(self, component: str, graceful=(signal.SIGINT, signal.SIGTERM), ignored=(), force_code: int = 130):
        self.component = component
        self.event = threading.Event()
        self.signal_name = None
        self.force_code = force_code
        for sig in graceful:
            signal.signal(sig, self._graceful)
        for sig in ignored:
            signal.signal(sig, self._ignored)

    def _graceful(self, signum, _frame):
        name = signal.Signals(signum).name
        if self.event.is_set():
            log(self.component, f"received second {name}: exiting immediately", "WARN")
            os._exit(self.force_code)
        self.signal_name = name
        log(self.component, f"received {name}: shutting down gracefully")
        self.event.set()

    def _ignored(self, signum, _frame):
        log(self.component, f"received {signal.Signals(signum).name}: ignored (only SIGINT stops this process)", "WARN")

    def stop(self, why: str) -> None:
        """Programmatic stop (e.g. a fatal condition in a worker thread)."""
        if not self.event.is_set():
            self.signal_name = why
            self.event.set()

    def wait(self) -> None:
        while not self.event.wait(0.5):
            pass


def watchdog(component: str, seconds: float, code: int = 1) -> None:
    """Force an exit if a graceful shutdown takes longer than `seconds`."""

    def _fire():
        time.sleep(seconds)
        log(component, f"shutdown watchdog fired after {seconds:.0f} s: forcing exit", "ERROR")
        os._exit(code)

    threading.Thread(target=_fire, daemon=True).start()


def fail(component: str, msg: str, code: int = 1) -> None:
    log(component, msg, "FATAL")
    sys.exit(code)


class WebSocket:
    """A server-side RFC 6455 websocket on an accepted HTTP request (text frames, ping/pong, close).
    Enough for the doubles' sync protocols; no extensions, no compression."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, handler: http.server.BaseHTTPRequestHandler):
        self.rfile, self.wfile = handler.rfile, handler.wfile
        self.lock = threading.Lock()
        self.closed = False

    @classmethod
    def accept(cls, handler) -> "WebSocket | None":
        """Answer the upgrade (101); None when the request is no websocket upgrade."""
        import base64
        import hashlib

        key = handler.headers.get("Sec-WebSocket-Key", "")
        if (handler.headers.get("Upgrade", "").lower() != "websocket"
                or "upgrade" not in handler.headers.get("Connection", "").lower() or not key):
            return None
        accept = base64.b64encode(hashlib.sha1((key + cls.GUID).encode()).digest()).decode()
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept)
        handler.end_headers()
        handler.wfile.flush()
        handler.close_connection = True
        return cls(handler)

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise ConnectionError("websocket peer went away")
            data += chunk
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read_exact(2)
        length = b2 & 0x7F
        if length == 126:
            length = int.from_bytes(self._read_exact(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read_exact(8), "big")
        mask = self._read_exact(4) if b2 & 0x80 else b"\0\0\0\0"
        payload = bytearray(self._read_exact(length))
        for i in range(length):
            payload[i] ^= mask[i % 4]
        return bool(b1 & 0x80), b1 & 0x0F, bytes(payload)

    def recv(self) -> str | None:
        """The next text (or binary) message; None once the peer closed."""
        parts, opcode = [], None
        while True:
            try:
                fin, op, payload = self._frame()
            except (ConnectionError, OSError, ValueError):
                self.closed = True
                return None
            if op == 0x8:  # close: answer it
                self._send(0x8, payload[:2])
                self.closed = True
                return None
            if op == 0x9:  # ping
                self._send(0xA, payload)
                continue
            if op == 0xA:
                continue
            if op in (0x1, 0x2):
                opcode, parts = op, [payload]
            elif op == 0x0 and opcode is not None:
                parts.append(payload)
            if fin and opcode is not None:
                return b"".join(parts).decode("utf-8", "replace")

    def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | opcode, n])
        elif n < 1 << 16:
            head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
        with self.lock:
            try:
                self.wfile.write(head + payload)
                self.wfile.flush()
            except OSError:
                self.closed = True

    def send(self, text: str) -> None:
        self._send(0x1, text.encode())

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self._send(0x8, code.to_bytes(2, "big") + reason.encode()[:120])
            self.closed = True
