# TEST DOUBLE of ghcr.io/wolvesdotink/mta (Owlat MTA): follows contracts.md; not the real product.
"""Stand-in for the Owlat MTA.

HTTP API on PORT (default 3100), bounce SMTP on BOUNCE_PORT (default 25); OWLAT_DOUBLE_PORTS="http,smtp"
overrides both for tests. Refuses to start on a bad environment (every problem named). Redis state comes
from a real RESP connection (AUTH + PING every few seconds, reconnecting). SIGTERM / SIGINT: graceful.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))

from doublelib import (  # noqa: E402
    JsonHandler,
    Stopper,
    ThreadingServer,
    double_ports,
    env_flag,
    iso_now,
    is_loopback,
    log,
    serve,
    shutdown_all,
    watchdog,
)

C = "owlat-mta"
VERSION = os.environ.get("DOUBLE_VERSION") or "0.4.4"
# Upstream's metric list (metrics.json, cited there): the double serves these names and no others.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.json"), encoding="utf-8") as _fh:
    METRICS = json.load(_fh)["metrics"]
# The queue worker's heartbeat (apps/mta/src/routes/health.ts): key TTL 120 s. Before 0.4.4 it was written
# only after a job, so an idle MTA reported worker.alive=false for ever; 0.4.4 beats at start and every 30 s
# (owlat CHANGELOG.md 0.4.4 "Fixed: mta", c2b6921).
HEARTBEAT_TTL = 120.0
IDLE_HEARTBEAT = tuple(int(x) for x in re.findall(r"\d+", VERSION)[:3]) >= (0, 4, 4) if re.match(r"\d", VERSION) else True
MAX_SIZE = 10485760
TARPIT_SECONDS = 5.0
REDIS_PING_SECONDS = float(os.environ.get("OWLAT_DOUBLE_REDIS_PING_SECONDS") or 2.0)  # double-only knob for tests
SEND_QUEUE = "owlat:mta:queue:send"
BOUNCE_QUEUE = "owlat:mta:queue:bounces"
LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PLACEHOLDERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me", "placeholder",
                "your-secret", "your_secret", "example", "xxxxxxxx")


# ---------------------------------------------------------------------------------------------------
# boot validation
# ---------------------------------------------------------------------------------------------------
def fqdn_problem(host: str) -> str | None:
    if not host:
        return "is required (the public hostname this MTA says in EHLO, e.g. mail.example.com)"
    name = host[:-1] if host.endswith(".") else host
    try:
        ipaddress.ip_address(name.strip("[]"))
        return f"{host!r} is an IP address; it must be a fully-qualified domain name"
    except ValueError:
        pass
    lower = name.lower()
    if lower == "localhost" or lower.endswith(".localhost") or lower.startswith("localhost."):
        return f"{host!r} is localhost; it must be the public fully-qualified domain name"
    labels = name.split(".")
    if len(labels) < 2:
        return f"{host!r} is not a fully-qualified domain name (needs at least two labels, e.g. mail.example.com)"
    if len(name) > 253 or not all(LABEL_RE.match(label) for label in labels):
        return f"{host!r} is not a valid hostname"
    if labels[-1].isdigit():
        return f"{host!r} has a numeric top-level label"
    return None


def parse_redis_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("must look like redis://:password@host:6379")
    port = parts.port or 6379  # raises ValueError for a bad port
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} in the path is not a number")
    return {"host": parts.hostname, "port": port, "tls": parts.scheme == "rediss",
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None, "db": int(db)}


def validate(env) -> list[str]:
    errors = []

    def err(name, msg):
        errors.append(f"{name} {msg}")

    for name in ("MTA_API_KEY", "RETURN_PATH_DOMAIN", "CONVEX_SITE_URL", "MTA_WEBHOOK_SECRET"):
        if not env.get(name, "").strip():
            err(name, "is required and must not be empty")
    mta_secret = env.get("MTA_SECRET", "")
    if len(mta_secret.encode()) < 32:
        err("MTA_SECRET", f"must be at least 32 bytes (got {len(mta_secret.encode())})")
    verp = env.get("BOUNCE_VERP_KEY", "")
    if len(verp.encode()) < 32:
        err("BOUNCE_VERP_KEY", f"must be at least 32 bytes (got {len(verp.encode())})")
    elif any(p in verp.lower() for p in PLACEHOLDERS) or len(set(verp)) == 1:
        err("BOUNCE_VERP_KEY", "is a placeholder value (e.g. change-me): generate a random key")
    problem = fqdn_problem(env.get("EHLO_HOSTNAME", "").strip())
    if problem:
        err("EHLO_HOSTNAME", problem)
    # Pools and per-address EHLO names as upstream parses them at boot (owlat apps/mta/src/outboundIpConfig.ts:18-76,
    # packages/shared/src/outboundIdentity.ts:12-67 @ c2b6921): IPv6 only with MTA_IPV6_ENABLED=true and beside an IPv4.
    ipv6_enabled = env.get("MTA_IPV6_ENABLED", "false").strip() == "true"
    for name in ("IP_POOLS_TRANSACTIONAL", "IP_POOLS_CAMPAIGN"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        addresses = []
        for item in raw.split(","):
            try:
                addresses.append(ipaddress.ip_address(item.strip()))
            except ValueError:
                err(name, f"must be a comma-separated list of IP addresses; {item.strip()!r} is not one")
                break
        if any(a.version == 6 for a in addresses) and not ipv6_enabled:
            err(name, "holds IPv6, but MTA_IPV6_ENABLED is false; enable IPv6 explicitly first")
        elif addresses and all(a.version == 6 for a in addresses):
            err(name, "holds IPv6 only: outbound IPv6 requires an IPv4 fallback in that same pool")
    raw = env.get("EHLO_HOSTNAMES", "").strip()
    if raw:
        try:
            names = json.loads(raw)
        except ValueError:
            names = None
            err("EHLO_HOSTNAMES", "must be valid JSON mapping IP to hostname")
        if names is not None and not isinstance(names, dict):
            err("EHLO_HOSTNAMES", "must be a JSON object mapping IP to hostname")
        for key, value in (names.items() if isinstance(names, dict) else ()):
            try:
                ipaddress.ip_address(key)
            except ValueError:
                err("EHLO_HOSTNAMES", f"key {key} is not a valid bare IP address")
            problem = fqdn_problem(value.strip()) if isinstance(value, str) else "must be a string"
            if problem:
                err("EHLO_HOSTNAMES", f"value for {key} {problem}")
    if env.get("FBL_DEDUP_PROTOCOL") != "owned-v2":
        err("FBL_DEDUP_PROTOCOL", f"must be 'owned-v2' (got {env.get('FBL_DEDUP_PROTOCOL', '')!r})")
    ack = env.get("FBL_DEDUP_CUTOVER_ACK")
    if ack not in ("fresh-install", "quiesced-v1-intake"):
        err("FBL_DEDUP_CUTOVER_ACK", f"must be 'fresh-install' or 'quiesced-v1-intake' (got {ack or ''!r})")
    redis_url = env.get("REDIS_URL", "")
    if not redis_url:
        err("REDIS_URL", "is required (redis://:password@redis:6379)")
    else:
        try:
            parse_redis_url(redis_url)
        except ValueError as exc:
            err("REDIS_URL", str(exc))
    for name, default in (("PORT", "3100"), ("BOUNCE_PORT", "25")):
        raw = env.get(name) or default
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            err(name, f"must be a port number (got {raw!r})")
    return errors


# ---------------------------------------------------------------------------------------------------
# Redis (RESP2) client: one connection, AUTH then PING every few seconds, reconnect on failure
# ---------------------------------------------------------------------------------------------------
class RedisError(Exception):
    pass


class Redis:
    def __init__(self, url: str, stop: threading.Event):
        self.cfg = parse_redis_url(url)
        self.stop = stop
        self.lock = threading.Lock()
        self.sock = None
        self.reader = None
        self.connected = False
        self.last_error = None

    def _send(self, *args) -> None:
        out = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("connection closed by Redis")
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.reader.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply {line[:40]!r}")

    def command(self, *args):
        with self.lock:
            if self.sock is None:
                raise ConnectionError("not connected to Redis")
            try:
                self._send(*args)
                return self._read()
            except (OSError, ConnectionError, ValueError) as exc:
                self._drop(str(exc))
                raise ConnectionError(str(exc)) from exc

    def _drop(self, why: str) -> None:
        if self.connected:
            log(C, f"redis disconnected: {why}", "WARN")
        self.connected = False
        self.last_error = why
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.reader = None

    def _connect(self) -> None:
        cfg = self.cfg
        sock = socket.create_connection((cfg["host"], cfg["port"]), timeout=3)
        if cfg["tls"]:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=cfg["host"])
        with self.lock:
            self.sock, self.reader = sock, sock.makefile("rb")
            try:
                if cfg["password"] is not None:
                    if cfg["username"]:
                        self._send("AUTH", cfg["username"], cfg["password"])
                    else:
                        self._send("AUTH", cfg["password"])
                    self._read()
                if cfg["db"]:
                    self._send("SELECT", cfg["db"])
                    self._read()
                self._send("PING")
                if self._read() != "PONG":
                    raise RedisError("PING did not answer PONG")
            except (OSError, ConnectionError, RedisError, ValueError) as exc:
                self._drop(str(exc))
                raise
        if not self.connected:
            log(C, f"redis connected to {cfg['host']}:{cfg['port']}")
        self.connected = True
        self.last_error = None

    def monitor(self) -> None:
        logged = None
        while not self.stop.is_set():
            if self.sock is None:
                try:
                    self._connect()
                    logged = None
                except (OSError, ConnectionError, RedisError) as exc:
                    if str(exc) != logged:
                        log(C, f"redis unavailable at {self.cfg['host']}:{self.cfg['port']}: {exc}", "WARN")
                        logged = str(exc)
                    self.last_error = str(exc)
            else:
                try:
                    if self.command("PING") != "PONG":
                        self._drop("PING did not answer PONG")
                except (ConnectionError, RedisError) as exc:
                    with self.lock:
                        self._drop(str(exc))
            self.stop.wait(REDIS_PING_SECONDS)

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                try:
                    self._send("QUIT")
                except OSError:
                    pass
            self._drop("shutting down")


# ---------------------------------------------------------------------------------------------------
class Mta:
    def __init__(self, env, stop: threading.Event):
        self.env = env
        self.stop = stop
        self.redis = Redis(env["REDIS_URL"], stop)
        self.fail_health = env_flag("DOUBLE_FAIL_HEALTH")
        self.started = time.time()
        self.heartbeat = time.time() if IDLE_HEARTBEAT else None
        # Samples of the unlabelled upstream metrics the double can honestly move; labelled ones are declared
        # only (prom-client prints no sample before the first observation).
        self.counters = {m["name"]: 0 for m in METRICS if not m["labels"] and m["type"] != "histogram"}
        self.dns = {"ehloHostname": env["EHLO_HOSTNAME"], "resolves": None}

    def worker(self) -> None:
        while not self.stop.is_set():
            if IDLE_HEARTBEAT:
                self.heartbeat = time.time()
            self.stop.wait(HEARTBEAT_TTL / 4 if IDLE_HEARTBEAT else 1.0)

    def job_done(self) -> None:
        """A queue job was processed: every release beats here."""
        self.heartbeat = time.time()

    def worker_alive(self) -> bool:
        return not self.fail_health and self.heartbeat is not None and time.time() - self.heartbeat < HEARTBEAT_TTL

    def check_dns(self) -> None:
        try:
            socket.getaddrinfo(self.env["EHLO_HOSTNAME"], None)
            self.dns["resolves"] = True
        except OSError:
            self.dns["resolves"] = False

    def enqueue(self, queue: str, payload) -> None:
        self.redis.command("LPUSH", queue, json.dumps(payload))


class HttpHandler(JsonHandler):
    component = C
    quiet_paths = ("/health", "/metrics")

    def dispatch(self, method: str) -> None:
        mta: Mta = self.app
        path = self.path.split("?", 1)[0]
        if path == "/health" and method in ("GET", "HEAD"):
            redis_ok = mta.redis.connected
            alive = mta.worker_alive()
            return self.send_json(200, {
                "status": "ok" if redis_ok and alive else "degraded",
                "redis": "connected" if redis_ok else "disconnected",
                "worker": {"alive": alive} if mta.heartbeat is None else {
                    "alive": alive, "lastHeartbeat": int(mta.heartbeat * 1000),
                    "secondsSinceHeartbeat": int(time.time() - mta.heartbeat)},
                "dns": dict(mta.dns),
                "smtp": {"port": mta.env["_smtp_port"]},
                "version": VERSION,
                "uptimeSeconds": round(time.time() - mta.started, 1),
                "timestamp": iso_now(),
            })
        if path == "/" and method in ("GET", "HEAD"):
            return self.send_json(200, {"service": "owlat-mta", "version": VERSION})
        if path == "/metrics" and method in ("GET", "HEAD"):
            lines = []
            for metric in METRICS:
                lines += [f"# HELP {metric['name']} {metric['name'].replace('_', ' ')} (test double)",
                          f"# TYPE {metric['name']} {metric['type']}"]
                if metric["name"] in mta.counters:
                    lines.append(f"{metric['name']} {mta.counters[metric['name']]}")
            return self.send_text(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4; charset=utf-8")
        if path.startswith("/send"):
            auth = self.headers.get("Authorization", "")
            want = f"Bearer {mta.env['MTA_API_KEY']}"
            if not hmac.compare_digest(auth.encode(), want.encode()):
                self.read_body()
                return self.send_json(401, {"error": "Unauthorized"})
            if method != "POST":
                return self.send_json(405, {"error": "Method not allowed"})
            try:
                body = self.read_json()
            except ValueError as exc:
                return self.send_json(400, {"error": f"Invalid JSON body: {exc}"})
            if not isinstance(body, dict):
                return self.send_json(400, {"error": "Body must be a JSON object"})
            job_id = secrets.token_hex(8)
            try:
                mta.enqueue(SEND_QUEUE, body)  # the JSON body as received
            except (ConnectionError, RedisError) as exc:
                return self.send_json(503, {"error": f"queue unavailable: {exc}"})
            mta.job_done()
            return self.send_json(202, {"accepted": True, "id": job_id})
        self.send_json(404, {"error": "Not found"})


# ---------------------------------------------------------------------------------------------------
# SMTP bounce processor
# ---------------------------------------------------------------------------------------------------
class SmtpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, mta: Mta):
        self.mta = mta
        self.sessions: set = set()
        self.sessions_lock = threading.Lock()
        super().__init__(("0.0.0.0", port), SmtpHandler)


class SmtpHandler(socketserver.StreamRequestHandler):
    timeout = 300

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        srv: SmtpServer = self.server
        mta = srv.mta
        host = mta.env["EHLO_HOSTNAME"]
        peer = self.client_address[0]
        with srv.sessions_lock:
            srv.sessions.add(self.request)
        helo = None
        mail_from, rcpts = None, []
        try:
            self.reply(f"220 {host} Owlat MTA Bounce Processor")
            while True:
                try:
                    raw = self.rfile.readline(2048)
                except socket.timeout:
                    self.reply(f"421 4.4.2 {host} Error: timeout exceeded")
                    return
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb, arg = verb.upper(), arg.strip()
                if verb in ("EHLO", "HELO"):
                    if not arg:
                        self.reply(f"501 5.5.4 Syntax: {verb} hostname")
                        continue
                    if not is_loopback(peer):
                        time.sleep(TARPIT_SECONDS)  # tarpit for non-local peers
                    helo, mail_from, rcpts = arg, None, []
                    if verb == "HELO":
                        self.reply(f"250 {host} greets {arg}")
                    else:
                        self.reply(f"250-{host} greets {arg}\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                   f"250-ENHANCEDSTATUSCODES\r\n250 SIZE {MAX_SIZE}")
                elif verb == "NOOP":
                    self.reply("250 2.0.0 OK")
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    self.reply("250 2.0.0 OK")
                elif verb == "QUIT":
                    self.reply(f"221 2.0.0 {host} closing connection")
                    return
                elif verb == "MAIL" and arg.upper().startswith("FROM:"):
                    if helo is None:
                        self.reply("503 5.5.1 Error: send EHLO/HELO first")
                        continue
                    mail_from, rcpts = arg[5:].strip(), []
                    self.reply("250 2.1.0 OK")
                elif verb == "RCPT" and arg.upper().startswith("TO:"):
                    if mail_from is None:
                        self.reply("503 5.5.1 Error: need MAIL command")
                        continue
                    addr = arg[3:].strip().strip("<>").split(" ")[0]
                    domain = addr.rpartition("@")[2].lower()
                    rpd = mta.env["RETURN_PATH_DOMAIN"].lower()
                    if domain != rpd and not domain.endswith("." + rpd):
                        self.reply(f"550 5.1.1 <{addr}>: recipient not handled by this bounce processor")
                        continue
                    rcpts.append(addr)
                    self.reply("250 2.1.5 OK")
                elif verb == "DATA":
                    if not rcpts:
                        self.reply("503 5.5.1 Error: need RCPT command")
                        continue
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    size, chunks = 0, []
                    while True:
                        data = self.rfile.readline(65536)
                        if not data:
                            return
                        if data in (b".\r\n", b".\n"):
                            break
                        size += len(data)
                        if size <= 65536:
                            chunks.append(data[1:] if data.startswith(b"..") else data)
                    if size > MAX_SIZE:
                        self.reply("552 5.3.4 Error: message too large")
                    else:
                        qid = secrets.token_hex(6).upper()
                        try:
                            mta.enqueue(BOUNCE_QUEUE, {"id": qid, "from": mail_from, "to": rcpts, "size": size,
                                                       "receivedAt": iso_now(),
                                                       "head": b"".join(chunks).decode("utf-8", "replace")})
                            mta.counters["mta_unattributed_bounces_total"] += 1  # the double attributes none
                            self.reply(f"250 2.0.0 Ok: queued as {qid}")
                        except (ConnectionError, RedisError):
                            self.reply("451 4.3.0 Error: queue unavailable, try again later")
                    mail_from, rcpts = None, []
                else:
                    self.reply("502 5.5.2 Error: command not recognized")
        except OSError:
            return
        finally:
            with srv.sessions_lock:
                srv.sessions.discard(self.request)


def main() -> int:
    stopper = Stopper(C, graceful=(signal.SIGINT, signal.SIGTERM))
    env = dict(os.environ)
    errors = validate(env)
    if errors:
        log(C, "Invalid environment configuration; refusing to start:", "FATAL")
        for problem in errors:
            log(C, f"  - {problem}", "FATAL")
        return 1
    http_port, smtp_port = double_ports([int(env.get("PORT") or 3100), int(env.get("BOUNCE_PORT") or 25)])
    env["_smtp_port"] = smtp_port
    mta = Mta(env, stopper.event)
    try:
        http = ThreadingServer("0.0.0.0", http_port, HttpHandler, mta)
        smtp = SmtpServer(smtp_port, mta)
    except OSError as exc:
        log(C, f"cannot listen (HTTP {http_port}, SMTP {smtp_port}): {exc}", "FATAL")
        return 1
    threading.Thread(target=mta.redis.monitor, daemon=True).start()
    threading.Thread(target=mta.worker, daemon=True).start()
    threading.Thread(target=mta.check_dns, daemon=True).start()
    serve([http])
    threading.Thread(target=smtp.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log(C, f"Owlat MTA {VERSION} (test double): HTTP API on :{http_port}, bounce SMTP on :{smtp_port} "
           f"as {env['EHLO_HOSTNAME']}")
    stopper.wait()
    watchdog(C, 30)
    smtp.shutdown()
    smtp.server_close()
    with smtp.sessions_lock:
        for sock in list(smtp.sessions):
            try:
                sock.sendall(f"421 4.3.2 {env['EHLO_HOSTNAME']} shutting down\r\n".encode())
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    shutdown_all([http])
    mta.redis.close()
    log(C, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
