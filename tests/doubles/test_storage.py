"""The backend double on external storage: the lab's real PostgreSQL 17 and radosgw S3 (`lab/lab.py storage`).

    OWLAT_LAB_STORAGE=1 OWLAT_LAB_STATE=/path/to/lab/.state .venv/bin/pytest -q -s tests/doubles/test_storage.py

Skipped only when OWLAT_LAB_STORAGE is unset. Needs psycopg2 in the venv (the double imports it with
POSTGRES_URL; these tests read the database with it). Each test makes its own database / buckets and removes them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "common"))

from s3lite import S3Client  # noqa: E402
from test_doubles import BACKEND, SECRET, Backend, base_env, cli, http, jpost, procs, start  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not os.environ.get("OWLAT_LAB_STORAGE"),
                                reason="needs the lab storage (lab/lab.py storage): set OWLAT_LAB_STORAGE=1")

STATE = os.environ.get("OWLAT_LAB_STATE") or os.path.join(os.path.dirname(os.path.dirname(HERE)), "lab", ".state")
PG_HOST, REGION = "172.29.0.252:5432", "us-east-1"
S3_HTTP, S3_HTTPS = "http://172.29.0.251:7480", "https://172.29.0.251:7443"
SSL_OF_DB = "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname=%s"
USE_CASES = ("exports", "snapshot_imports", "modules", "files", "search")


def state(*parts) -> str:
    with open(os.path.join(STATE, *parts), encoding="utf-8") as fh:
        return fh.read().strip()


def pg_url(db: str = "") -> str:
    password = quote(state("pg", "admin-password"), safe="")
    return f"postgresql://owlat_admin:{password}@{PG_HOST}" + (f"/{db}" if db else "")


def admin(db: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(pg_url(db) + f"?sslmode=verify-full&sslrootcert={os.path.join(STATE, 'pg', 'ca.crt')}")
    conn.autocommit = True
    return conn


def sql(db: str, query: str, args=()) -> list[tuple]:
    conn = admin(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def s3(endpoint: str = S3_HTTP) -> S3Client:
    return S3Client(endpoint, REGION, state("s3", "access-key"), state("s3", "secret-key"), path_style=True)


@pytest.fixture
def instance():
    """A fresh instance name whose database does NOT exist yet; dropped afterwards."""
    name = f"dbl-t{uuid.uuid4().hex[:10]}"
    yield name
    sql("postgres", f'DROP DATABASE IF EXISTS "{name.replace("-", "_")}" WITH (FORCE)')


def create_db(name: str) -> str:
    db = name.replace("-", "_")
    sql("postgres", f'CREATE DATABASE "{db}"')
    return db


@pytest.fixture
def buckets():
    """The six S3 variables (five buckets made for the test, removed afterwards) plus keys and endpoint."""
    client, tag = s3(), uuid.uuid4().hex[:8]
    names = {u: f"dbl-{tag}-{u.replace('_', '-')}" for u in USE_CASES}
    for b in names.values():
        client.create_bucket(b)
    env = {f"S3_STORAGE_{u.upper()}_BUCKET": b for u, b in names.items()}
    env.update(AWS_REGION=REGION, AWS_ACCESS_KEY_ID=state("s3", "access-key"),
               AWS_SECRET_ACCESS_KEY=state("s3", "secret-key"), AWS_S3_FORCE_PATH_STYLE="true",
               S3_ENDPOINT_URL=S3_HTTP)
    yield names, env
    for b in names.values():
        client.delete_bucket(b)


def run_refused(tmp_path, data=None, **env) -> str:
    """Start the double expecting it to refuse; its whole output."""
    out = subprocess.run([sys.executable, BACKEND], capture_output=True, text=True, timeout=30,
                         env=base_env(OWLAT_DOUBLE_DATA=str(data or tmp_path / "refused"), OWLAT_DOUBLE_PORTS="0,0",
                                      **env))
    assert out.returncode != 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def mutation(b, path, args):
    status, body = jpost(b.url + "/api/mutation", {"path": path, "args": args})
    assert status == 200 and body["status"] == "success", body
    return body["value"]


def query(b, path, args, headers=None):
    status, body = jpost(b.url + "/api/query", {"path": path, "args": args}, headers)
    assert status == 200 and body["status"] == "success", body
    return body["value"]


# ---------------------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------------------
def test_pg_missing_database_refused_with_the_servers_error(tmp_path, instance):
    out = run_refused(tmp_path, INSTANCE_NAME=instance, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url())
    db = instance.replace("-", "_")
    print(f"\nMEASURED missing database: {[l for l in out.splitlines() if 'FATAL' in l]}")
    assert f'database "{db}" does not exist' in out and "Connected to Postgres" not in out


@pytest.mark.parametrize("url, message", [
    ("DB", "cluster url already contains db name: /somedb"),
    ("NOUSER", "cluster url username must be set"),
])
def test_pg_url_refused_as_upstream(tmp_path, instance, url, message):
    url = pg_url("somedb") if url == "DB" else f"postgresql://{PG_HOST}"
    out = run_refused(tmp_path, INSTANCE_NAME=instance, INSTANCE_SECRET=SECRET, POSTGRES_URL=url)
    print(f"\nMEASURED {message!r}: {[l for l in out.splitlines() if 'FATAL' in l]}")
    assert message in out


def test_mysql_refused_honestly(tmp_path):
    out = run_refused(tmp_path, INSTANCE_SECRET=SECRET, MYSQL_URL="mysql://u:p@127.0.0.1:3306")
    assert "does not implement MySQL" in out


def test_pg_documents_live_in_postgres_over_tls_and_survive_a_restart(start, tmp_path, instance):
    db = create_db(instance)
    # PGSSLMODE=disable asks libpq for plain TCP: only the URL's sslmode=require (the default) can override it.
    env = dict(INSTANCE_NAME=instance, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url(), PGSSLMODE="disable")
    b = Backend(start, tmp_path / "d", **env)
    log = b.proc.log()
    assert f"Connected to Postgres database: {instance}" in log
    assert "attempting to acquire lease" in log and "lease acquired with ts " in log
    ssl = sql("postgres", SSL_OF_DB, (db,))
    print(f"\nMEASURED double's connection ssl (PGSSLMODE=disable, no DO_NOT_REQUIRE_SSL): {ssl}")
    assert ssl == [(True,)]
    key = b.mint()
    assert cli("deploy", url=b.url, key=key).returncode == 0
    doc_id = mutation(b, "lab:put", {"table": "notes", "doc": {"text": "in postgres"}})
    assert http("POST", b.url + "/api/update_environment_variables",
                {"changes": [{"name": "GREETING", "value": "hi"}]}, b.auth(key))[0] == 200
    rows = sql(db, "SELECT id, json FROM documents WHERE table_name='notes'")
    env_rows = sql(db, "SELECT name, value FROM environment_variables")
    globals_ = dict(sql(db, "SELECT key, value FROM persistence_globals"))
    lease = sql(db, "SELECT id, ts FROM leases")
    print(f"MEASURED documents {rows}, env {env_rows}, storage_type {globals_.get('storage_type')}, leases {lease}")
    assert rows == [(doc_id, json.dumps({"text": "in postgres"}))] and env_rows == [("GREETING", "hi")]
    assert json.loads(globals_["storage_type"]) == {"tag": "local", "dir": str(tmp_path / "d" / "storage")}
    assert "functions" in globals_ and lease[0][1] > 0
    b.stop()
    assert not os.path.exists(tmp_path / "d" / "db.sqlite3")
    again = Backend(start, tmp_path / "d", **env)
    assert "initialising a new database" not in again.proc.log()
    assert [d["text"] for d in query(again, "lab:list", {"table": "notes"})] == ["in postgres"]
    again.stop()
    # DO_NOT_REQUIRE_SSL (any non-empty value) drops sslmode=require: libpq's own choice applies (here: disable).
    plain = Backend(start, tmp_path / "d", DO_NOT_REQUIRE_SSL="1", **env)
    ssl = sql("postgres", SSL_OF_DB, (db,))
    print(f"MEASURED with DO_NOT_REQUIRE_SSL=1 and PGSSLMODE=disable: ssl {ssl}")
    assert ssl == [(False,)]
    plain.stop()


def test_pg_lease_newer_backend_takes_over_older_stops_at_next_write(start, tmp_path, instance):
    create_db(instance)
    env = dict(INSTANCE_NAME=instance, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url())
    old = Backend(start, tmp_path / "a", **env)
    assert cli("deploy", url=old.url, key=old.mint()).returncode == 0
    mutation(old, "lab:put", {"table": "notes", "doc": {"by": "old"}})
    new = Backend(start, tmp_path / "b", **env)
    time.sleep(1.5)
    assert old.proc.p.poll() is None, "upstream notices a lost lease only at the next write"
    try:
        http("POST", old.url + "/api/mutation", {"path": "lab:put", "args": {"table": "notes", "doc": {"by": "old2"}}})
    except OSError:
        pass  # the old backend exits in the middle of the request
    assert old.proc.wait(10) == 1
    log = old.proc.log()
    print("\nMEASURED old backend's last lines:\n" + "\n".join(log.splitlines()[-3:]))
    assert "Lease Lost" in log and "Received a fatal error. Shutting down immediately" in log
    mutation(new, "lab:put", {"table": "notes", "doc": {"by": "new"}})
    assert [d["by"] for d in query(new, "lab:list", {"table": "notes"})] == ["old", "new"]
    new.stop()


# ---------------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------------
def export_zip(b, h):
    """A snapshot export with file storage, waited for: (zip bytes, its start_ts)."""
    assert http("POST", b.url + "/api/export/request/zip?includeStorage=true", b"", h)[0] == 200
    for _ in range(100):
        latest = query(b, "_system/cli/exports:getLatest", {}, h)
        if latest["state"] == "completed":
            break
        time.sleep(0.1)
    status, _, data = http("GET", b.url + f"/api/export/zip/{latest['start_ts']}", headers=h)
    assert status == 200 and data[:2] == b"PK"
    return data, latest["start_ts"]


def test_s3_files_exports_modules_imports_in_their_buckets(start, tmp_path, buckets):
    names, env = buckets
    # HTTPS endpoint with the lab's CA (SSL_CERT_FILE: the double trusts the default store plus that file).
    env = dict(env, S3_ENDPOINT_URL=S3_HTTPS, SSL_CERT_FILE=os.path.join(STATE, "s3", "ca.crt"))
    b = Backend(start, tmp_path / "d", INSTANCE_SECRET=SECRET, **env)
    assert "Falling back to local storage" not in b.proc.log()
    key = b.mint()
    h = b.auth(key)
    assert cli("deploy", url=b.url, key=key).returncode == 0
    storage_id = mutation(b, "lab:storeFile", {"data": base64.b64encode(b"hello s3").decode()})
    assert base64.b64decode(query(b, "lab:getFile", {"storageId": storage_id})) == b"hello s3"
    data, start_ts = export_zip(b, h)
    status, _, raw = http("POST", b.url + "/api/import?format=zip&mode=replaceAll", data,
                          dict(h, **{"Content-Type": "application/octet-stream"}))
    assert status == 200, raw
    client = s3()
    listing = {u: client.list_keys(n) for u, n in names.items()}
    print(f"\nMEASURED bucket contents: {json.dumps(listing, indent=1)}")
    prefix = listing["files"][0].split("/", 1)[0] + "/"
    assert prefix.startswith("convex-self-hosted-")  # upstream: `<instance name>-<uuid4>/`
    assert listing["files"] == [prefix + storage_id]
    assert listing["exports"] == [f"{prefix}{start_ts}.zip"]
    assert len(listing["modules"]) == 1 and listing["modules"][0].endswith(".json")
    assert len(listing["snapshot_imports"]) == 1 and listing["search"] == []
    assert not os.path.exists(tmp_path / "d" / "storage")  # nothing local
    b.stop()


def test_s3_half_configured_warns_falls_back_and_type_is_kept(start, tmp_path, buckets):
    names, env = buckets
    half = {k: v for k, v in env.items() if k not in ("S3_STORAGE_SEARCH_BUCKET", "AWS_REGION")}
    # A database initialised with S3 ...
    b = Backend(start, tmp_path / "s3", INSTANCE_SECRET=SECRET, **env)
    b.stop()
    # ... refuses the Docker image's local fallback.
    out = run_refused(tmp_path, data=tmp_path / "s3", INSTANCE_SECRET=SECRET, **half)
    print(f"\nMEASURED S3 database, half set:\n" + "\n".join(
        l for l in out.splitlines() if "Warning" in l or "Missing" in l or "initialized" in l))
    assert "Warning: Some AWS/S3 environment variables are missing. Falling back to local storage." in out
    assert "Missing variables: AWS_REGION S3_STORAGE_SEARCH_BUCKET" in out
    local_dir = str(tmp_path / "s3" / "storage")
    assert ('Database was initialized with Some(S3 { s3_prefix: "convex-self-hosted-' in out
            and f'/" }}), but backend started up with Local {{ dir: "{local_dir}" }}.' in out)
    # A fresh database with half the set: warning, local storage (nothing in the bucket) ...
    loc = Backend(start, tmp_path / "loc", INSTANCE_SECRET=SECRET, **half)
    assert "Falling back to local storage" in loc.proc.log()
    assert cli("deploy", url=loc.url, key=loc.mint()).returncode == 0
    storage_id = mutation(loc, "lab:storeFile", {"data": base64.b64encode(b"local").decode()})
    assert os.path.exists(tmp_path / "loc" / "storage" / "files" / storage_id)
    assert s3().list_keys(names["files"]) == []
    loc.stop()
    # ... and then refuses S3.
    out = run_refused(tmp_path, data=tmp_path / "loc", INSTANCE_SECRET=SECRET, **env)
    print("MEASURED local database, all six set: " + next(l for l in out.splitlines() if "initialized" in l))
    assert (f'Database was initialized with Some(Local {{ dir: "{tmp_path / "loc" / "storage"}" }}), '
            "but backend started up with S3." in out)


def test_s3_with_postgres_type_recorded_in_postgres(start, tmp_path, instance, buckets):
    db = create_db(instance)
    _, env = buckets
    pg = dict(INSTANCE_NAME=instance, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url())
    b = Backend(start, tmp_path / "d", **pg, **env)
    b.stop()
    stored = json.loads(dict(sql(db, "SELECT key, value FROM persistence_globals"))["storage_type"])
    print(f"\nMEASURED storage_type in Postgres: {stored}")
    assert stored["tag"] == "s3" and stored["s3Prefix"].startswith(f"{instance}-")
    out = run_refused(tmp_path, data=tmp_path / "d", **pg)  # no S3 variables at all: local
    assert "Falling back" not in out and "Database was initialized with Some(S3 {" in out


# -- the collection's storage check (module owlat_storage_check) against the same real servers --------------------
def storage_check(**params):
    from ansible_collections.owlat.selfhost.plugins.module_utils._storage import check_storage

    base = dict(postgres_url="", instance_name="", require_tls=True, admin_url="", s3={}, ca_file=None, timeout=5)
    return check_storage(dict(base, **params), create=True, nonce=uuid.uuid4().hex[:8])


def test_storage_check_creates_the_missing_database_over_tls_then_finds_it(instance):
    first = storage_check(postgres_url=pg_url(), instance_name=instance)
    assert first["problems"] == [f'PostgreSQL {PG_HOST} has no database {instance.replace("-", "_")} (the backend does '
                                 f'not create it): create it (CREATE DATABASE "{instance.replace("-", "_")}" OWNER '
                                 '"owlat_admin";) or give owlat_convex_postgres_admin_url (from the vault) to have it '
                                 'created.']
    made = storage_check(postgres_url=pg_url(), instance_name=instance, admin_url=pg_url("postgres"))
    assert made["problems"] == [] and made["changed"] and made["postgres"]["tls"] is True
    assert made["postgres"]["version"] == "PostgreSQL 17.12" or made["postgres"]["version"].startswith("PostgreSQL 17")
    assert sql("postgres", "SELECT datname FROM pg_database WHERE datname = %s", (instance.replace("-", "_"),))
    again = storage_check(postgres_url=pg_url(), instance_name=instance)
    assert again["problems"] == [] and not again["changed"] and again["postgres"]["schema"] == "public"
    wrong = storage_check(postgres_url=pg_url().replace(quote(state("pg", "admin-password"), safe=""), "wrong"),
                          instance_name=instance)
    assert wrong["problems"] == [f"PostgreSQL {PG_HOST} refused the password of user owlat_admin "
                                 "(owlat_convex_postgres_url)."]
    assert state("pg", "admin-password") not in json.dumps([first, made, again, wrong])


@pytest.mark.parametrize("endpoint", [S3_HTTP, S3_HTTPS])
def test_storage_check_writes_to_each_bucket_and_leaves_nothing(buckets, endpoint):
    names, env = buckets
    settings = dict(region=REGION, endpoint_url=endpoint, access_key_id=env["AWS_ACCESS_KEY_ID"],
                    secret_access_key=env["AWS_SECRET_ACCESS_KEY"], session_token="", force_path_style=True,
                    buckets=dict(names))
    ok = storage_check(s3=settings, ca_file=os.path.join(STATE, "s3", "ca.crt"))
    assert ok["problems"] == [] and ok["s3"]["buckets"] == names
    assert all(not s3().list_keys(b) for b in names.values())
    missing = storage_check(s3=dict(settings, buckets=dict(names, files="dbl-no-such-bucket")),
                            ca_file=os.path.join(STATE, "s3", "ca.crt"))
    assert missing["problems"] == [f"S3 {endpoint}: cannot find bucket dbl-no-such-bucket (files): HTTP 404; create it."]
    bad_key = storage_check(s3=dict(settings, secret_access_key="wrong"), ca_file=os.path.join(STATE, "s3", "ca.crt"))
    assert len(bad_key["problems"]) == 5 and all("HTTP 403" in p and "keys" in p for p in bad_key["problems"])
    assert env["AWS_SECRET_ACCESS_KEY"] not in json.dumps([ok, missing, bad_key])


def test_export_with_storage_restores_documents_and_files_into_a_new_database_and_bucket(start, tmp_path, buckets):
    """Disaster recovery on external storage: a snapshot export with file storage (upstream's _storage/ folder) of a
    backend on PostgreSQL + S3, imported by a backend on another, empty database (another instance name: its own
    database and its own prefix in the buckets): the documents and the files come back byte for byte."""
    import zipfile
    import io

    names, env = buckets
    first, second = f"dbl-t{uuid.uuid4().hex[:10]}", f"dbl-t{uuid.uuid4().hex[:10]}"
    try:
        create_db(first), create_db(second)
        b = Backend(start, tmp_path / "a", INSTANCE_NAME=first, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url(), **env)
        key = b.mint()
        h = b.auth(key)
        assert cli("deploy", url=b.url, key=key).returncode == 0
        docs = [mutation(b, "lab:put", {"table": "notes", "doc": {"n": i}}) for i in range(5)]
        blobs = {mutation(b, "lab:storeFile", {"data": base64.b64encode(bytes([i]) * (1000 + i)).decode()}): i
                 for i in range(3)}
        data = export_zip(b, h)[0]
        members = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert "_storage/documents.jsonl" in members and all(f"_storage/{s}" in members for s in blobs)
        meta = [json.loads(line) for line in zipfile.ZipFile(io.BytesIO(data)).read("_storage/documents.jsonl").splitlines()]
        assert {m["_id"] for m in meta} == set(blobs) and all({"sha256", "size", "contentType"} <= set(m) for m in meta)
        b.stop()
        r = Backend(start, tmp_path / "b", INSTANCE_NAME=second, INSTANCE_SECRET=SECRET, POSTGRES_URL=pg_url(), **env)
        key = r.mint()
        assert cli("deploy", url=r.url, key=key).returncode == 0
        assert query(r, "lab:list", {"table": "notes"}) == [] and query(r, "lab:getFile", {"storageId": next(iter(blobs))}) is None
        status, _, raw = http("POST", r.url + "/api/import?format=zip&mode=replaceAll", data,
                              dict(r.auth(key), **{"Content-Type": "application/octet-stream"}))
        assert status == 200, raw
        assert [d["_id"] for d in query(r, "lab:list", {"table": "notes"})] == docs
        for storage_id, i in blobs.items():
            assert base64.b64decode(query(r, "lab:getFile", {"storageId": storage_id})) == bytes([i]) * (1000 + i)
        files = s3().list_keys(names["files"])
        assert sum(k.startswith(second + "-") for k in files) == 3, files
        r.stop()
    finally:
        for name in (first, second):
            sql("postgres", f'DROP DATABASE IF EXISTS "{name.replace("-", "_")}" WITH (FORCE)')
