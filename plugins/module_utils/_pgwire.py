# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Just enough of PostgreSQL's frontend/backend protocol 3.0 to check a Convex backend's database from a managed host
without a driver there: TLS through SSLRequest, password authentication (SCRAM-SHA-256 as RFC 5802/7677, md5,
cleartext), simple queries with text results, and the server's errors with their SQLSTATE.

Protocol: https://www.postgresql.org/docs/17/protocol.html (message formats: protocol-message-formats.html).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct

SSL_REQUEST_CODE = 80877103
PROTOCOL_3 = 196608
# SQLSTATEs the storage check names (https://www.postgresql.org/docs/17/errcodes-appendix.html).
INVALID_CATALOG_NAME = "3D000"       # the database does not exist
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"      # pg_hba refused the connection (host, user, database or no TLS)
DUPLICATE_DATABASE = "42P04"
OBJECT_IN_USE = "55006"             # e.g. a database others are connected to cannot be renamed


class PgError(Exception):
    """An ErrorResponse of the server (``code`` its SQLSTATE) or a protocol/connection failure (``code`` empty)."""

    def __init__(self, message, code="", severity=""):
        super().__init__(message)
        self.code, self.severity = code, severity


class NoTls(PgError):
    """The server answered the SSLRequest with N: it does not offer TLS."""


def scram_client_proof(password, client_first_bare, server_first, client_final_without_proof):
    """(ClientProof, ServerSignature) of SCRAM-SHA-256 for these messages (RFC 5802 §3)."""
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = ",".join([client_first_bare, server_first, client_final_without_proof]).encode("utf-8")
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return proof, hmac.new(server_key, auth_message, hashlib.sha256).digest()


def _cstr(value):
    return value.encode("utf-8") + b"\0"


class Connection:
    """One session. ``sslmode``: ``disable``, ``require`` (encrypted, certificate unchecked: what the Convex backend itself
    asks for, get-convex/convex-backend crates/clusters/src/lib.rs:41-45 at c51b14b), ``verify-ca`` or ``verify-full``
    (with ``cafile``). ``tls`` tells whether the session is encrypted."""

    def __init__(self, host, port, user, password, database, sslmode="require", cafile=None, timeout=10.0):
        self.tls = False
        self._buf = b""
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError as exc:
            raise PgError("cannot connect to %s:%s: %s" % (host, port, exc.strerror or exc))
        try:
            if sslmode != "disable":
                self._start_tls(host, sslmode, cafile)
            self._startup(user, password, database)
        except BaseException:
            self._sock.close()
            raise

    # -- wire --------------------------------------------------------------------------------------------------
    def _send(self, kind, payload=b""):
        self._sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    def _read(self, n):
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(65536)
            except (OSError, ssl.SSLError) as exc:
                raise PgError("the server stopped answering: %s" % exc)
            if not chunk:
                raise PgError("the server closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _message(self):
        kind = self._read(1)
        (length,) = struct.unpack("!I", self._read(4))
        payload = self._read(length - 4)
        if kind == b"E":
            fields = {}
            for part in payload.split(b"\0"):
                if part:
                    fields[part[:1].decode()] = part[1:].decode("utf-8", "replace")
            raise PgError(fields.get("M", "error"), fields.get("C", ""), fields.get("S", ""))
        return kind, payload

    # -- session -----------------------------------------------------------------------------------------------
    def _start_tls(self, host, sslmode, cafile):
        self._sock.sendall(struct.pack("!II", 8, SSL_REQUEST_CODE))
        answer = self._sock.recv(1)
        if answer != b"S":
            raise NoTls("the server does not offer TLS (it answered the SSLRequest with %r)" % answer)
        if sslmode in ("verify-ca", "verify-full"):
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = sslmode == "verify-full"
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            self._sock = ctx.wrap_socket(self._sock, server_hostname=host)
        except (ssl.SSLError, OSError) as exc:
            raise PgError("TLS with the server failed: %s" % exc)
        self.tls = True

    def _startup(self, user, password, database):
        pairs = (("user", user), ("database", database), ("application_name", "owlat.selfhost"))
        params = b"".join(_cstr(k) + _cstr(v) for k, v in pairs)
        body = struct.pack("!I", PROTOCOL_3) + params + b"\0"
        self._sock.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, payload = self._message()
            if kind == b"R":
                self._authenticate(payload, user, password or "")
            elif kind == b"Z":
                return

    def _authenticate(self, payload, user, password):
        (code,) = struct.unpack("!I", payload[:4])
        if code == 0:
            return
        if code == 3:
            self._send(b"p", _cstr(password))
        elif code == 5:
            inner = hashlib.md5((password + user).encode("utf-8")).hexdigest()
            self._send(b"p", _cstr("md5" + hashlib.md5(inner.encode() + payload[4:8]).hexdigest()))
        elif code == 10:
            mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
            if "SCRAM-SHA-256" not in mechanisms:
                raise PgError("the server offers no password mechanism this check knows (%s)" % ", ".join(mechanisms))
            self._scram(password)
        else:
            raise PgError("the server asks for an authentication this check does not do (code %d)" % code)

    def _scram(self, password):
        nonce = base64.b64encode(os.urandom(18)).decode()
        # PostgreSQL takes the user of the startup message; the SCRAM user name stays empty (as libpq sends it).
        client_first_bare = "n=,r=" + nonce
        first = ("n,," + client_first_bare).encode()
        self._send(b"p", _cstr("SCRAM-SHA-256") + struct.pack("!I", len(first)) + first)
        kind, payload = self._message()
        if kind != b"R" or struct.unpack("!I", payload[:4])[0] != 11:
            raise PgError("unexpected answer to SCRAM's first message")
        server_first = payload[4:].decode()
        server_nonce = dict(part.split("=", 1) for part in server_first.split(","))["r"]
        if not server_nonce.startswith(nonce):
            raise PgError("the server's SCRAM nonce does not extend ours")
        without_proof = "c=biws,r=" + server_nonce
        proof, server_signature = scram_client_proof(password, client_first_bare, server_first, without_proof)
        self._send(b"p", (without_proof + ",p=" + base64.b64encode(proof).decode()).encode())
        kind, payload = self._message()
        if kind != b"R" or struct.unpack("!I", payload[:4])[0] != 12:
            raise PgError("unexpected answer to SCRAM's final message")
        final = dict(part.split("=", 1) for part in payload[4:].decode().split(","))
        if base64.b64decode(final.get("v", "")) != server_signature:
            raise PgError("the server's SCRAM signature is wrong: it does not know the password (not the server?)")

    def query(self, sql):
        """Rows of a simple query, every value text (or None)."""
        self._send(b"Q", _cstr(sql))
        rows, error = [], None
        while True:
            try:
                kind, payload = self._message()
            except PgError as exc:
                if not exc.code:
                    raise
                error = exc  # ReadyForQuery still follows
                continue
            if kind == b"D":
                (count,) = struct.unpack("!H", payload[:2])
                pos, row = 2, []
                for dummy in range(count):
                    (size,) = struct.unpack("!i", payload[pos:pos + 4])
                    pos += 4
                    row.append(None if size < 0 else payload[pos:pos + size].decode("utf-8", "replace"))
                    pos += max(size, 0)
                rows.append(row)
            elif kind == b"Z":
                if error:
                    raise error
                return rows

    def close(self):
        try:
            self._send(b"X")
        except OSError:
            pass
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'
