"""owlat_storage_check against a fake PostgreSQL that speaks the wire protocol (the server side of SCRAM-SHA-256 as
RFC 5802 has it, written here independently of the client), and the protocol's published test vectors."""

import base64
import hashlib
import hmac
import json
import struct
from datetime import datetime, timezone

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _pgwire, _s3
from ansible_collections.owlat.selfhost.plugins.modules import owlat_storage_check

PASSWORD = "s3cret-Pg-password"


def test_scram_sha_256_matches_rfc_7677():
    # RFC 7677 section 3: user "user", password "pencil".
    first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    proof, server_signature = _pgwire.scram_client_proof("pencil", first_bare, server_first, without_proof)
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_sigv4_signing_key_matches_the_aws_example():
    # docs.aws.amazon.com, "Create a signed AWS API request", example signing key.
    key = _s3.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_sigv4_request_names_the_key_and_signs_the_payload(monkeypatch):
    seen = {}

    def request(url, method, headers, body, timeout, ca_path):
        seen.update(url=url, method=method, headers=headers, body=body)
        return type("Response", (), {"status": 200, "body": b""})()

    monkeypatch.setattr(_s3, "request", request)
    client = _s3.S3("http://s3.lab:7480", "us-east-1", "AKIDEXAMPLE", "secret", path_style=True)
    assert client.request("PUT", "bucket", "a b.txt", b"data", now=datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)) == (200, b"")
    assert seen["url"] == "http://s3.lab:7480/bucket/a%20b.txt" and seen["method"] == "PUT" and seen["body"] == b"data"
    auth = seen["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/us-east-1/s3/aws4_request, "
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=")
    assert seen["headers"]["host"] == "s3.lab:7480"
    assert seen["headers"]["x-amz-content-sha256"] == hashlib.sha256(b"data").hexdigest()
    assert "secret" not in json.dumps(seen, default=str)


# -- a fake PostgreSQL --------------------------------------------------------------------------------------------
def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def error(code, text):
    return message(b"E", b"SFATAL\0C" + code.encode() + b"\0M" + text.encode() + b"\0\0")


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def fake_postgres(state):
    """Plain TCP only (answers N to SSLRequest); SCRAM-SHA-256; databases in state["databases"]; CREATE DATABASE."""
    salt, iterations = b"0123456789abcdef", 4096
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def read_message(conn):
        kind = read_exact(conn, 1)
        (length,) = struct.unpack("!I", read_exact(conn, 4))
        return kind, read_exact(conn, length - 4)

    def handler(conn):
        try:
            serve(conn)
        except EOFError:  # the client gave up (a TLS attempt before the plain one)
            pass

    def serve(conn):
        (length,) = struct.unpack("!I", read_exact(conn, 4))
        body = read_exact(conn, length - 4)
        if struct.unpack("!I", body[:4])[0] == _pgwire.SSL_REQUEST_CODE:
            conn.sendall(b"N")
            (length,) = struct.unpack("!I", read_exact(conn, 4))
            body = read_exact(conn, length - 4)
        fields = body[4:].split(b"\0")
        params = dict(zip(fields[0::2], fields[1::2]))
        database = params[b"database"].decode()
        conn.sendall(message(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
        _, payload = read_message(conn)
        first = payload[len(b"SCRAM-SHA-256\0") + 4:].decode()
        first_bare = first[3:]
        nonce = dict(p.split("=", 1) for p in first_bare.split(","))["r"] + "SERVER"
        server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), iterations)
        conn.sendall(message(b"R", struct.pack("!I", 11) + server_first.encode()))
        _, final = read_message(conn)
        without_proof, _, proof = final.decode().rpartition(",p=")
        auth = ",".join([first_bare, server_first, without_proof]).encode()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), hmac.new(stored_key, auth, hashlib.sha256).digest()))
        if hashlib.sha256(client_key).digest() != stored_key:
            conn.sendall(error("28P01", 'password authentication failed for user "owlat"'))
            return
        signature = base64.b64encode(hmac.new(server_key, auth, hashlib.sha256).digest()).decode()
        conn.sendall(message(b"R", struct.pack("!I", 12) + ("v=" + signature).encode()))
        if database not in state["databases"]:
            conn.sendall(error("3D000", 'database "%s" does not exist' % database))
            return
        conn.sendall(message(b"R", struct.pack("!I", 0)) + message(b"Z", b"I"))
        while True:
            kind, payload = read_message(conn)
            if kind == b"X":
                return
            sql = payload.rstrip(b"\0").decode()
            state.setdefault("queries", []).append(sql)
            if sql.startswith("CREATE DATABASE"):
                state["databases"].append(sql.split('"')[1])
                conn.sendall(message(b"C", b"CREATE DATABASE\0") + message(b"Z", b"I"))
            elif sql.startswith("ALTER DATABASE"):
                old, new = sql.split('"')[1], sql.split('"')[3]
                if old not in state["databases"]:
                    conn.sendall(error("3D000", 'database "%s" does not exist' % old) + message(b"Z", b"I"))
                elif old in state.get("in_use", ()):
                    conn.sendall(error("55006", 'database "%s" is being accessed by other users' % old)
                                 + message(b"Z", b"I"))
                else:
                    state["databases"][state["databases"].index(old)] = new
                    conn.sendall(message(b"C", b"ALTER DATABASE\0") + message(b"Z", b"I"))
            elif sql in ("SELECT to_regclass('documents') IS NOT NULL", "SELECT EXISTS (SELECT 1 FROM documents)"):
                # The table is there once a backend ran (with_table), with rows once it wrote (with_rows).
                tables = state.get("with_table", []) + state.get("with_rows", [])
                if "EXISTS" in sql and database not in tables:
                    conn.sendall(error("42P01", 'relation "documents" does not exist') + message(b"Z", b"I"))
                    continue
                yes = database in (tables if "to_regclass" in sql else state.get("with_rows", []))
                row = struct.pack("!H", 1) + struct.pack("!i", 1) + (b"t" if yes else b"f")
                conn.sendall(message(b"D", row) + message(b"C", b"SELECT 1\0") + message(b"Z", b"I"))
            else:
                values = [b"PostgreSQL 17.6 on x86_64", b"public", state.get("may_create", b"t")]
                row = struct.pack("!H", 3) + b"".join(struct.pack("!i", len(v)) + v for v in values)
                conn.sendall(message(b"D", row) + message(b"C", b"SELECT 1\0") + message(b"Z", b"I"))

    return handler


@pytest.fixture
def postgres(fake_tcp):
    state = {"databases": ["postgres"]}
    server = fake_tcp(fake_postgres(state))
    server.state = state
    return server


def url(server, password=PASSWORD, user="owlat"):
    return "postgresql://%s:%s@127.0.0.1:%d" % (user, password, server.port)


def test_a_server_without_tls_is_refused_as_the_backend_would(run_module, postgres, visible_text):
    postgres.state["databases"].append("acme_eu")
    result = run_module(owlat_storage_check, dict(postgres_url=url(postgres), instance_name="acme-eu"))
    assert result["failed"] and "does not offer TLS" in result["msg"] and "owlat_convex_do_not_require_ssl" in result["msg"]
    assert PASSWORD not in visible_text(result)


def test_without_the_requirement_plain_is_used_and_the_database_checked(run_module, postgres):
    postgres.state["databases"].append("acme_eu")
    result = run_module(owlat_storage_check, dict(postgres_url=url(postgres), instance_name="acme-eu", require_tls=False))
    assert not result["failed"] and not result["changed"], result
    assert result["postgres"] == {"server": "127.0.0.1:%d" % postgres.port, "database": "acme_eu", "user": "owlat",
                                  "tls": False, "created": False, "version": "PostgreSQL 17.6", "schema": "public"}


def test_a_missing_database_is_named_with_the_fix(run_module, postgres):
    result = run_module(owlat_storage_check, dict(postgres_url=url(postgres), require_tls=False))
    assert result["failed"]
    assert 'has no database convex_self_hosted' in result["msg"]
    assert 'CREATE DATABASE "convex_self_hosted" OWNER "owlat"' in result["msg"]


def test_a_missing_database_is_created_with_the_admin_url_once(run_module, postgres):
    params = dict(postgres_url=url(postgres), admin_url=url(postgres) + "/postgres", instance_name="acme",
                  require_tls=False)
    result = run_module(owlat_storage_check, params, check_mode=True)
    assert not result["failed"] and not result["changed"] and result["postgres"]["created"] == "in a real run"
    assert "acme" not in postgres.state["databases"]
    result = run_module(owlat_storage_check, params)
    assert result["changed"] and result["postgres"]["created"] is True
    assert 'CREATE DATABASE "acme" OWNER "owlat"' in postgres.state["queries"]
    assert not run_module(owlat_storage_check, params)["changed"]


def test_a_wrong_password_and_a_user_without_create_are_told(run_module, postgres, visible_text):
    postgres.state["databases"].append("acme")
    result = run_module(owlat_storage_check, dict(postgres_url=url(postgres, "wrong"), instance_name="acme",
                                                  require_tls=False))
    assert result["failed"] and "refused the password of user owlat (owlat_convex_postgres_url)" in result["msg"]
    postgres.state["may_create"] = b"f"
    result = run_module(owlat_storage_check, dict(postgres_url=url(postgres), instance_name="acme", require_tls=False))
    assert result["failed"] and 'may not create tables in schema public' in result["msg"]
    assert PASSWORD not in visible_text(result)


def test_a_rollback_sets_the_migrated_database_aside_and_gets_an_empty_one(run_module, postgres, visible_text):
    postgres.state["databases"].append("acme")
    params = dict(postgres_url=url(postgres), admin_url=url(postgres) + "/postgres", instance_name="acme",
                  require_tls=False, set_aside="_pre_rollback_1")
    result = run_module(owlat_storage_check, params, check_mode=True)
    assert not result["failed"] and not result["changed"], result
    assert result["fresh_database"] == {"database": "acme", "aside": "in a real run", "created": "in a real run"}
    assert postgres.state["databases"] == ["postgres", "acme"]
    result = run_module(owlat_storage_check, params)
    assert not result["failed"] and result["changed"], result
    assert result["fresh_database"] == {"database": "acme", "aside": "acme_pre_rollback_1", "created": True}
    # The migrated one kept under the new name, an empty one of the stack's name, which the check then looked at.
    assert postgres.state["databases"] == ["postgres", "acme_pre_rollback_1", "acme"]
    assert result["postgres"]["database"] == "acme" and result["postgres"]["created"] is False
    assert PASSWORD not in visible_text(result)


def test_a_rollback_without_a_database_makes_one_and_without_admin_url_or_in_use_says_why(run_module, postgres):
    params = dict(postgres_url=url(postgres), admin_url=url(postgres) + "/postgres", instance_name="acme",
                  require_tls=False, set_aside="_pre_rollback_2")
    result = run_module(owlat_storage_check, params)
    assert not result["failed"] and result["changed"], result
    assert result["fresh_database"] == {"database": "acme", "aside": "", "created": True}
    result = run_module(owlat_storage_check, dict(params, admin_url=""))
    assert result["failed"] and "needs owlat_convex_postgres_admin_url" in result["msg"]
    assert "acme_pre_rollback_2" not in postgres.state["databases"]
    postgres.state["in_use"] = ["acme"]
    result = run_module(owlat_storage_check, params)
    assert result["failed"] and "database acme is still in use" in result["msg"], result["msg"]
    assert postgres.state["databases"] == ["postgres", "acme"]


def test_a_move_needs_an_empty_database_and_says_how_to_free_it(run_module, postgres):
    """require_empty (a move of the stack's storage): a database where a backend has run is never imported into."""
    postgres.state["databases"].append("acme")
    params = dict(postgres_url=url(postgres), instance_name="acme", require_tls=False, require_empty=True)
    result = run_module(owlat_storage_check, params)
    assert not result["failed"], result
    assert any(q.startswith("SELECT to_regclass('documents')") for q in postgres.state["queries"])
    postgres.state["with_table"] = ["acme"]  # tables made, nothing written: still empty
    assert not run_module(owlat_storage_check, params)["failed"]
    postgres.state["with_rows"] = ["acme"]
    result = run_module(owlat_storage_check, params)
    assert result["failed"] and "database acme already holds a Convex deployment's data" in result["msg"], result
    assert 'DROP DATABASE "acme";' in result["msg"]
    # Without the requirement a database in use is what a running stack has: no question asked.
    postgres.state["queries"] = []
    assert not run_module(owlat_storage_check, dict(params, require_empty=False))["failed"]
    assert not any(q.startswith("SELECT to_regclass") for q in postgres.state["queries"])
