# TEST DOUBLE of ghcr.io/get-convex/convex-backend: follows contracts.md; not the real product.
"""Stand-in for the self-hosted Convex backend, written from /work/shared/design/contracts.md.

Port 3210: admin API, env vars, query/mutation, deploy, export/import. Port 3211: every request <path>
is served as 3210 /http<path> (HTTP actions; Owlat's routes exist only after a functions deploy).
Python standard library only, except psycopg2, imported only when POSTGRES_URL / DATABASE_URL is set.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import queue
import re
import secrets
import signal
import sqlite3
import sys
import threading
import time
import uuid
import zipfile
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))

import adminkey  # noqa: E402
from s3lite import S3Client  # noqa: E402
from doublelib import (  # noqa: E402
    JsonHandler,
    WebSocket,
    Stopper,
    ThreadingServer,
    data_dir,
    double_ports,
    env_flag,
    fail,
    iso_now,
    log,
    serve,
    shutdown_all,
)

C = "convex-backend"
REVISION = os.environ.get("DOUBLE_VERSION") or "c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef"
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "versions.json"), encoding="utf-8") as _fh:
    REVISIONS = json.load(_fh)["revisions"]
# What upstream has at this revision (versions.json, read at that commit): routes, limits, DATABASE_VERSION.
UPSTREAM = REVISIONS.get(REVISION)
DATABASE_VERSION = UPSTREAM["database_version"] if UPSTREAM else 0
OLDEST_MIGRATABLE = 116  # a migration *to* 1..=116 panics "Transition too old!" (crates/model/src/migrations.rs)
VERSION_TEXT = "unknown"  # SERVER_VERSION_STR of the stock image (crates/metrics/src/lib.rs)
ENV_NAME_RE = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")


def _route_re(pattern: str) -> re.Pattern:
    """`/api/export/zip/{id}` and `/http/{*rest}` (axum syntax) as a regular expression."""
    out = re.sub(r"\\\{\\\*[a-z_]+\\\}", "(?:.*)", re.escape(pattern))
    out = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", out)
    return re.compile("^" + out + "$")


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.json"), encoding="utf-8") as _fh:
    METRIC_NAMES = {m["name"] for m in json.load(_fh)["metrics"]}
ROUTES = [(r.split(" ", 1)[0], _route_re(r.split(" ", 1)[1])) for r in (UPSTREAM or {}).get("routes", [])]


def route_allowed(method: str, path: str) -> int:
    """200 when upstream has the route at this revision, 405 for a known path with another method, else 404."""
    known_path = False
    for verb, rx in ROUTES:
        if rx.match(path):
            known_path = True
            if verb == "ANY" or verb == method or (method == "HEAD" and verb == "GET"):
                return 200
    return 405 if known_path else 404


TABLE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,63}$")
PASSWORD_HASH_RE = re.compile(r"^[0-9a-f]{32}:[0-9a-f]{128}$")
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(32))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FunctionError(Exception):
    """An error inside a Convex function: HTTP 200 with status "error"."""


# ---------------------------------------------------------------------------------------------------
# configuration from the container environment
# ---------------------------------------------------------------------------------------------------
class Config:
    def __init__(self):
        self.data = data_dir("/convex/data")
        self.cred_dir = os.path.join(self.data, "credentials")
        self.ports = double_ports([3210, 3211])  # PORT is ignored, as upstream
        self.fail_health = env_flag("DOUBLE_FAIL_HEALTH")
        self.revision = os.environ.get("DOUBLE_VERSION") or "unknown"
        # Traps: any non-empty value switches these ON ("false" included).
        self.disable_beacon = bool(os.environ.get("DISABLE_BEACON"))
        self.redact_logs = bool(os.environ.get("REDACT_LOGS_TO_CLIENT"))
        self.no_ssl = bool(os.environ.get("DO_NOT_REQUIRE_SSL"))
        raw_metrics = os.environ.get("DISABLE_METRICS_ENDPOINT")
        self.metrics_raw = raw_metrics
        self.metrics_enabled = raw_metrics == "false"
        self.cloud_origin = os.environ.get("CONVEX_CLOUD_ORIGIN") or f"http://127.0.0.1:{self.ports[0]}"
        self.site_origin = os.environ.get("CONVEX_SITE_ORIGIN") or f"http://127.0.0.1:{self.ports[1]}"
        self.ints = {}
        for name, default in (
            ("DOCUMENT_RETENTION_DELAY", 14 * 24 * 3600),
            ("APPLICATION_MAX_CONCURRENT_QUERIES", 64),
            ("APPLICATION_MAX_CONCURRENT_MUTATIONS", 64),
            ("APPLICATION_MAX_CONCURRENT_V8_ACTIONS", 64),
            ("APPLICATION_MAX_CONCURRENT_NODE_ACTIONS", 64),
        ):
            raw = os.environ.get(name)
            if raw is None or raw == "":
                self.ints[name] = default
                continue
            if not re.fullmatch(r"[0-9]+", raw):
                fail(C, f"{name}={raw!r} is not a non-negative integer")
            self.ints[name] = int(raw)

    def report(self):
        log(C, f"revision {self.revision} (test double); data directory {self.data}")
        b = os.environ.get("DISABLE_BEACON")
        log(C, f"beacon disabled (DISABLE_BEACON={b!r} is non-empty)" if self.disable_beacon
            else "beacon enabled: would send anonymous usage data (the double sends nothing)")
        if self.redact_logs:
            log(C, f"redacting logs to client (REDACT_LOGS_TO_CLIENT={os.environ['REDACT_LOGS_TO_CLIENT']!r} is non-empty)")
        if self.no_ssl:
            log(C, f"SSL not required for database connections (DO_NOT_REQUIRE_SSL={os.environ['DO_NOT_REQUIRE_SSL']!r} is non-empty)")
        if self.metrics_raw not in (None, "true", "false"):
            log(C, f"DISABLE_METRICS_ENDPOINT={self.metrics_raw!r} is not true/false: metrics endpoint stays disabled", "WARN")
        log(C, "metrics endpoint enabled on /metrics" if self.metrics_enabled else "metrics endpoint disabled")
        log(C, f"cloud origin {self.cloud_origin}, site origin {self.site_origin}")
        log(C, "document retention delay %ss; concurrency queries=%s mutations=%s v8_actions=%s node_actions=%s" % (
            self.ints["DOCUMENT_RETENTION_DELAY"], self.ints["APPLICATION_MAX_CONCURRENT_QUERIES"],
            self.ints["APPLICATION_MAX_CONCURRENT_MUTATIONS"], self.ints["APPLICATION_MAX_CONCURRENT_V8_ACTIONS"],
            self.ints["APPLICATION_MAX_CONCURRENT_NODE_ACTIONS"]))


def load_credentials(cfg: Config) -> tuple[str, str]:
    """INSTANCE_NAME / INSTANCE_SECRET: env, else credential files, else generated; written back."""
    name, secret, name_src, secret_src = adminkey.read_credentials(cfg.cred_dir)
    if name is None:
        name, name_src = adminkey.DEFAULT_INSTANCE_NAME, "default"
    if secret is None:
        secret, secret_src = secrets.token_hex(32), "generated"
    try:
        adminkey.check_name(name)
        adminkey.check_secret(secret)
    except adminkey.CredentialError as exc:
        where = "the environment" if secret_src == "env" else os.path.join(cfg.cred_dir, "instance_secret")
        fail(C, f"{exc} (from {where}); refusing to start")
    os.makedirs(cfg.cred_dir, exist_ok=True)
    for fname, value in (("instance_name", name), ("instance_secret", secret)):
        path = os.path.join(cfg.cred_dir, fname)
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
            fh.write(value)
        os.replace(tmp, path)
    log(C, f"instance name {name!r} ({name_src}); instance secret from {secret_src}; "
           f"credentials written to {cfg.cred_dir}")
    return name, secret


# ---------------------------------------------------------------------------------------------------
# documents: one connection (SQLite, or Postgres with POSTGRES_URL), serialised by a lock
# ---------------------------------------------------------------------------------------------------
SCHEMA = """
    CREATE TABLE IF NOT EXISTS persistence_globals (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS documents (
        id TEXT PRIMARY KEY, table_name TEXT NOT NULL, creation_time DOUBLE PRECISION NOT NULL, json TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS documents_by_table ON documents (table_name, creation_time);
    CREATE TABLE IF NOT EXISTS environment_variables (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# The same SQL runs on SQLite (>= 3.24 for ON CONFLICT) and Postgres; only the placeholder differs.
UPSERT_DOC = ("INSERT INTO documents (id, table_name, creation_time, json) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
              "DO UPDATE SET table_name=excluded.table_name, creation_time=excluded.creation_time, json=excluded.json")


class Store:
    """The double's schema (not upstream's): globals, documents, deployment env vars. Every write runs in tx()."""

    kind = "SQLite"
    placeholder = "?"

    def __init__(self, path: str):
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)

    def close(self):
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    def _exec(self, sql: str, args=()):
        cur = self.conn.cursor()
        cur.execute(sql.replace("?", self.placeholder), args)
        return cur

    def rows(self, sql: str, args=()) -> list[tuple]:
        with self.lock:
            return self._exec(sql, args).fetchall()

    def begin(self) -> None:
        self._exec("BEGIN IMMEDIATE")

    @contextlib.contextmanager
    def tx(self):
        """One write transaction; yields a function running one statement (returns its rowcount)."""
        with self.lock:
            self.begin()
            try:
                yield lambda sql, args=(): self._exec(sql, args).rowcount
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise

    # globals
    def get(self, key: str, default=None):
        rows = self.rows("SELECT value FROM persistence_globals WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def put(self, key: str, value) -> None:
        with self.tx() as run:
            run("INSERT INTO persistence_globals (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value", (key, json.dumps(value)))

    # documents
    def insert(self, table: str, doc: dict, doc_id: str | None = None, ctime: float | None = None) -> str:
        doc_id = doc_id or new_id()
        ctime = ctime if ctime is not None else time.time() * 1000.0
        body = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
        with self.tx() as run:
            run("INSERT INTO documents (id, table_name, creation_time, json) VALUES (?, ?, ?, ?)",
                (doc_id, table, ctime, json.dumps(body)))
        return doc_id

    def list(self, table: str) -> list[dict]:
        rows = self.rows("SELECT id, creation_time, json FROM documents WHERE table_name=? ORDER BY creation_time, id",
                         (table,))
        return [dict(json.loads(j), _id=i, _creationTime=t) for i, t, j in rows]

    def get_doc(self, doc_id: str) -> dict | None:
        rows = self.rows("SELECT id, creation_time, json FROM documents WHERE id=?", (doc_id,))
        return dict(json.loads(rows[0][2]), _id=rows[0][0], _creationTime=rows[0][1]) if rows else None

    def delete_doc(self, doc_id: str) -> bool:
        with self.tx() as run:
            return run("DELETE FROM documents WHERE id=?", (doc_id,)) > 0

    def count(self, table: str | None = None) -> int:
        if table is None:
            return self.rows("SELECT COUNT(*) FROM documents")[0][0]
        return self.rows("SELECT COUNT(*) FROM documents WHERE table_name=?", (table,))[0][0]

    def tables(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT DISTINCT table_name FROM documents ORDER BY 1")]

    # deployment environment variables
    def env(self) -> dict:
        return dict(self.rows("SELECT name, value FROM environment_variables ORDER BY name"))

    def apply_env(self, changes: list[tuple[str, str | None]]) -> None:
        with self.tx() as run:
            for name, value in changes:
                if value is None:
                    run("DELETE FROM environment_variables WHERE name=?", (name,))
                else:
                    run("INSERT INTO environment_variables (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value=excluded.value", (name, value))

    def replace_tables(self, tables: dict[str, list[dict]], mode: str) -> int:
        written = 0
        with self.tx() as run:
            if mode == "replaceAll":
                run("DELETE FROM documents")
            for table, docs in tables.items():
                if mode == "replace":
                    run("DELETE FROM documents WHERE table_name=?", (table,))
                for doc in docs:
                    body = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
                    run(UPSERT_DOC, (doc.get("_id") or new_id(), table,
                                     float(doc.get("_creationTime") or time.time() * 1000), json.dumps(body)))
                    written += 1
        return written


class PgStore(Store):
    """The same schema in the Postgres database named after the instance, plus upstream's lease: the newest
    backend holds it; an older one finds it gone at its next write and exits (crates/postgres/src/lib.rs
    `struct Lease`, 1738-1888 at c51b14b; docs/upstream-external-storage.md §5)."""

    kind = "Postgres"
    placeholder = "%s"

    def __init__(self, conn):  # pylint: disable=super-init-not-called (no SQLite file)
        self.lock = threading.RLock()
        self.conn = conn
        self.conn.autocommit = True  # transactions are explicit: BEGIN ... COMMIT in tx()
        self._exec(SCHEMA)
        self._exec("CREATE TABLE IF NOT EXISTS leases (id BIGINT PRIMARY KEY, ts BIGINT NOT NULL)")
        self._exec("INSERT INTO leases (id, ts) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
        # Acquire: a nanosecond timestamp, written only if larger than the stored one
        # (crates/postgres/src/sql.rs:767 `UPDATE ... leases SET ts=$1 WHERE ... AND ts<$1` at c51b14b).
        log(C, "attempting to acquire lease")  # crates/postgres/src/lib.rs:1778 at c51b14b
        self.lease_ts = time.time_ns()
        if self._exec("UPDATE leases SET ts=? WHERE id=1 AND ts<?", (self.lease_ts, self.lease_ts)).rowcount != 1:
            fail(C, "failed to acquire lease: Already acquired with higher timestamp")  # lib.rs:1790-1793
        log(C, f"lease acquired with ts {self.lease_ts}")  # lib.rs:1794

    def close(self):
        with self.lock:
            self.conn.close()

    def begin(self) -> None:
        # Every write checks the lease first (sql.rs:742 `... FOR SHARE`, :755 at c51b14b). Upstream only
        # notices a lost lease here, at the next write, never on its own.
        self._exec("BEGIN")
        if not self._exec("SELECT 1 FROM leases WHERE id=1 AND ts=? FOR SHARE", (self.lease_ts,)).fetchall():
            self._exec("ROLLBACK")
            # #[error("Lease Lost")] (crates/common/src/errors.rs:827-828), then the local backend exits at once
            # (crates/local_backend/src/main.rs:196-200 at c51b14b).
            log(C, "Lease Lost", "ERROR")
            log(C, "Received a fatal error. Shutting down immediately")
            os._exit(1)


def connect_postgres(url: str, instance_name: str, require_ssl: bool) -> PgStore:
    """POSTGRES_URL as upstream reads it (crates/clusters/src/lib.rs:28-62 at c51b14b): a username, no database
    name; the database is the instance name with '-' -> '_'; sslmode=require unless DO_NOT_REQUIRE_SSL, and
    target_session_attrs=read-write (require_leader, crates/db_connection/src/lib.rs:75)."""
    parts = urlsplit(url)
    if not parts.username:
        fail(C, "cluster url username must be set")  # never the URL: it may carry a password (lib.rs:35-39)
    if parts.path not in ("", "/"):
        fail(C, f"cluster url already contains db name: {parts.path}")  # lib.rs:56-59
    db_name = instance_name.replace("-", "_")  # lib.rs:55
    query = [q for q in parts.query.split("&") if q]
    if require_ssl:
        query.append("sslmode=require")
    query.append("target_session_attrs=read-write")
    dsn = f"{parts.scheme}://{parts.netloc}/{db_name}?{'&'.join(query)}"
    try:
        import psycopg2  # lazy: the SQLite path stays standard-library only (Debian: python3-psycopg2)
    except ImportError:
        fail(C, "POSTGRES_URL is set but the double's Postgres client (psycopg2, Debian python3-psycopg2) "
                "is not installed")
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        # Upstream has no check of its own: the server's error is the message (docs §2).
        fail(C, str(exc).strip())
    store = PgStore(conn)
    log(C, f"Connected to Postgres database: {instance_name}")  # crates/db_connection/src/lib.rs:159 at c51b14b
    return store


# ---------------------------------------------------------------------------------------------------
# files, exports, modules, snapshot imports: a local directory per use case, or S3 buckets
# ---------------------------------------------------------------------------------------------------
# StorageUseCase and its Display (crates/storage/src/lib.rs:1214-1223 at c51b14b); the bucket variable is
# S3_STORAGE_<USE CASE>_BUCKET (crates/aws_s3/src/storage.rs:861-866). The double keeps nothing for search.
USE_CASES = ("exports", "snapshot_imports", "modules", "files", "search")
# Upstream's virtual table of file storage metadata (an export's _storage/ folder).
STORAGE_TABLE = "_storage"
S3_VARS = ("AWS_REGION",) + tuple(f"S3_STORAGE_{u.upper()}_BUCKET" for u in USE_CASES)  # run_backend.sh:36-41 order


class LocalBlobs:
    def __init__(self, root: str, use_case: str):
        self.dir = os.path.join(root, use_case)
        os.makedirs(self.dir, exist_ok=True)

    def put(self, key: str, data: bytes) -> None:
        path = os.path.join(self.dir, key)
        with open(path + ".tmp", "wb") as fh:
            fh.write(data)
        os.replace(path + ".tmp", path)

    def get(self, key: str) -> bytes | None:
        try:
            with open(os.path.join(self.dir, key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None


class S3Blobs:
    """Objects under the database's s3 prefix, as upstream prefixes every key (crates/aws_s3/src/storage.rs:191
    `self.key_prefix.clone() + &key` at c51b14b). The keys after the prefix are the double's."""

    def __init__(self, client: S3Client, bucket: str, prefix: str):
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, self.prefix + key, data)

    def get(self, key: str) -> bytes | None:
        return self.client.get_object(self.bucket, self.prefix + key)


def storage_tag_from_env() -> str:
    """The Docker image's choice (self-hosted/docker-build/run_backend.sh:34-51 at c51b14b): S3 only when
    AWS_REGION and all five bucket variables are set; with some missing it warns and falls back to local storage
    (it does not refuse). Echoed to stdout, as the script does."""
    missing = [v for v in S3_VARS if not os.environ.get(v)]
    if not missing:
        return "S3"
    if len(missing) < len(S3_VARS):
        print("Warning: Some AWS/S3 environment variables are missing. Falling back to local storage.", flush=True)
        print("Missing variables: " + " ".join(missing), flush=True)
    return "Local"


def _storage_debug(st: dict) -> str:
    """StorageType's derived Debug (crates/model/src/database_globals/types.rs:51-55 at c51b14b)."""
    if st["tag"] == "s3":
        return f"S3 {{ s3_prefix: {json.dumps(st['s3Prefix'])} }}"
    return f"Local {{ dir: {json.dumps(st['dir'])} }}"


def init_storage(store: Store, instance_name: str, tag: str, local_dir: str) -> dict:
    """Record the storage type at initialisation and refuse a later start with the other type, as upstream
    (crates/model/src/database_globals/mod.rs:100-157 at c51b14b). Kept as upstream serialises it
    (types.rs:57-65: {"tag": "s3", "s3Prefix"} / {"tag": "local", "dir"}). Returns the blob store per use case."""
    stored = store.get("storage_type")
    if stored is None:  # a new database: an S3 prefix is `<instance name>-<uuid4>/` (mod.rs:136-146)
        stored = ({"tag": "s3", "s3Prefix": f"{instance_name}-{uuid.uuid4()}/"} if tag == "S3"
                  else {"tag": "local", "dir": local_dir})
        store.put("storage_type", stored)
    elif tag == "Local" and stored["tag"] == "local" and stored["dir"] != local_dir:
        log(C, f"Switching storage tag from local dir {stored['dir']} to {local_dir}")  # mod.rs:116-120
        stored = {"tag": "local", "dir": local_dir}
        store.put("storage_type", stored)
    elif tag == "S3" and stored["tag"] == "s3":
        if not stored["s3Prefix"].startswith(f"{instance_name}-"):
            fail(C, f"Cannot use s3 storage path {stored['s3Prefix']} with {instance_name}")  # mod.rs:129-132
    elif tag.lower() != stored["tag"]:
        started = "S3" if tag == "S3" else f"Local {{ dir: {json.dumps(local_dir)} }}"
        fail(C, f"Database was initialized with Some({_storage_debug(stored)}), "
                f"but backend started up with {started}.")  # mod.rs:151-154
    if stored["tag"] == "local":
        log(C, f"storage: local directory {local_dir}")
        return {u: LocalBlobs(local_dir, u) for u in USE_CASES}
    # Credentials: upstream uses the AWS default chain (crates/aws_utils/src/lib.rs:78-83); the double reads
    # only the environment. AWS_S3_FORCE_PATH_STYLE is Rust's bool parse: exactly "true" (lib.rs:25-30).
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        fail(C, "S3 storage: the double reads credentials only from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    client = S3Client(os.environ.get("S3_ENDPOINT_URL"), os.environ["AWS_REGION"], access, secret,
                      path_style=os.environ.get("AWS_S3_FORCE_PATH_STYLE") == "true",
                      session_token=os.environ.get("AWS_SESSION_TOKEN"))
    log(C, f"storage: S3 at {client.endpoint} ({'path' if client.path_style else 'virtual-hosted'} style), "
           f"key prefix {stored['s3Prefix']}")
    return {u: S3Blobs(client, os.environ[f"S3_STORAGE_{u.upper()}_BUCKET"], stored["s3Prefix"]) for u in USE_CASES}


def migrate(store: Store) -> None:
    """Upstream's migration worker (crates/model/src/migrations.rs, crates/migrations_model/src/lib.rs): a new
    database starts at DATABASE_VERSION; an older one is migrated one version at a time; one newer than this
    binary is only warned about (the older backend keeps serving: upstream refuses nothing here)."""
    current = store.get("db_metadata_version")
    if current is None:
        log(C, "initialising a new database")
        store.put("db_metadata_version", DATABASE_VERSION)
    elif current > DATABASE_VERSION:
        log(C, f"persisted db metadata version is ahead at {current}, this binary is at {DATABASE_VERSION}", "WARN")
        return
    elif current < OLDEST_MIGRATABLE:
        fail(C, f"Transition too old! (database metadata version {current}; migrations to 1..=116 are gone)")
    else:
        for version in range(current + 1, DATABASE_VERSION + 1):
            log(C, f"Executing Migration {version}/{DATABASE_VERSION}. Wait for log line 'Migrated {version}'", "WARN")
            store.put("db_metadata_version", version)
            log(C, f"Migrated {version}")
    log(C, f"db metadata version up to date at {DATABASE_VERSION}")


# ---------------------------------------------------------------------------------------------------
# application
# ---------------------------------------------------------------------------------------------------
class Backend:
    def __init__(self, cfg: Config, name: str, secret: str, store: Store, stopper: Stopper, blobs: dict):
        self.cfg, self.name, self.secret, self.store, self.stopper = cfg, name, secret, store, stopper
        self.blobs = blobs  # use case -> LocalBlobs | S3Blobs
        self.started = time.time()
        self.pushes: dict[str, dict] = {}
        self.push_lock = threading.Lock()
        self.export_lock = threading.Lock()
        self.imports: dict[str, dict] = {}
        self.uploads: dict[str, dict] = {}
        self.websockets = 0
        self.lease = secrets.token_hex(16)
        self.fatal: str | None = None
        if store.kind == "SQLite":  # the double's own lease for one data dir (Postgres: PgStore's)
            store.put("lease_owner", self.lease)

    # -- lease: two backends on one database -> the older one shuts down -----------------------------
    def watch_lease(self):
        while not self.stopper.event.wait(1.0):
            try:
                owner = self.store.get("lease_owner")
            except sqlite3.Error:
                continue
            if owner != self.lease:
                self.fatal = "lease lost: another backend took over this database; shutting down"
                log(C, self.fatal, "ERROR")
                self.stopper.stop("lease lost")
                return

    @property
    def deployed(self) -> dict | None:
        return self.store.get("functions")

    # -- admin authentication ---------------------------------------------------------------------
    def check_admin(self, header: str | None) -> None:
        if not header:
            raise ApiError(403, "BadDeployKey", "Missing admin key: send 'Authorization: Convex <admin key>'")
        scheme, _, key = header.strip().partition(" ")
        if scheme != "Convex" or adminkey.verify(key.strip(), self.name, self.secret) is None:
            raise ApiError(401, "BadAdminKey", "The provided admin key was invalid for this instance")


class Handler(JsonHandler):
    component = C
    quiet_paths = ("/version",)
    http_actions_only = False  # the 3211 listener sets this

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if self.http_actions_only:
            path = "/http" + path
        allowed = route_allowed(method, path)
        if allowed != 200:  # upstream's axum router: no fallback handler, an empty body
            self.read_body()
            return self.send_empty(allowed)
        try:
            if path == "/http" or path.startswith("/http/"):
                return self.http_action(method, path[len("/http"):] or "/")
            return self.api(method, path, query)
        except ApiError as exc:
            self.send_json(exc.status, {"code": exc.code, "message": exc.message})

    # -------------------------------------------------------------------------------------------
    def websocket_sync(self) -> None:
        """The sync websocket (/api/sync): the part of the Convex sync protocol the `convex` CLI needs for
        `env list/get`, `export`, `import` and `data` (admin-authenticated query subscriptions)."""
        ws = WebSocket.accept(self)
        if ws is None:
            raise ApiError(400, "BadWebSocketRequest", "/api/sync expects a websocket upgrade")
        self.app.websockets += 1
        try:
            SyncSession(self.app, ws).run()
        finally:
            self.app.websockets -= 1

    def need(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {urlsplit(self.path).path}")

    def admin(self) -> None:
        self.app.check_admin(self.headers.get("Authorization"))

    def body_json(self) -> dict:
        try:
            body = self.read_json()
        except ValueError as exc:
            raise ApiError(400, "BadJsonBody", f"Failed to parse the request body: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "BadJsonBody", "The request body must be a JSON object")
        return body

    def api(self, method: str, path: str, query: dict) -> None:
        app: Backend = self.app
        if path == "/version":
            self.need(method, "GET", "HEAD")
            if app.cfg.fail_health:
                return self.send_text(503, "unhealthy (DOUBLE_FAIL_HEALTH)\n")
            return self.send_text(200, VERSION_TEXT)
        if path == "/api/sync" or re.fullmatch(r"/api/[0-9][0-9.a-z-]*/sync", path):  # /api/<client version>/sync
            self.need(method, "GET")
            return self.websocket_sync()
        if path == "/instance_name":
            self.need(method, "GET", "HEAD")
            return self.send_text(200, app.name)
        if path == "/instance_version":
            self.need(method, "GET", "HEAD")
            return self.send_text(200, VERSION_TEXT)
        if path == "/":
            self.need(method, "GET", "HEAD")
            return self.send_text(200, "This Convex deployment is running. See https://docs.convex.dev/.\n")
        if path == "/metrics":
            self.need(method, "GET", "HEAD")
            if not app.cfg.metrics_enabled and UPSTREAM["metrics_endpoint_can_be_disabled"]:
                raise ApiError(404, "MetricsDisabled", "The metrics endpoint is disabled (DISABLE_METRICS_ENDPOINT)")
            return self.send_text(200, self.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/api/check_admin_key":
            self.need(method, "GET", "HEAD")
            self.admin()
            return self.send_json(200, {"success": True, "allowedOps": [], "isReadOnly": False})
        if path in ("/api/update_environment_variables", "/api/v1/update_environment_variables"):
            self.need(method, "POST")
            self.admin()
            return self.update_env()
        if path in ("/api/list_environment_variables", "/api/v1/list_environment_variables"):
            self.need(method, "GET")
            self.admin()
            return self.send_json(200, {"environmentVariables": app.store.env()})
        if path in ("/api/query", "/api/mutation", "/api/action", "/api/function"):
            self.need(method, "POST")
            return self.run_function(path.rsplit("/", 1)[1])
        if path == "/api/get_config_hashes" or path.startswith("/api/deploy2/"):
            self.need(method, "POST")
            self.admin()
            return self.deploy_step(path)
        if path == "/api/export/request/zip":
            self.need(method, "POST")
            self.admin()
            return self.request_export(query)
        if path.startswith("/api/export/zip/"):
            self.need(method, "GET")
            self.admin()
            return self.download_export(path.rsplit("/", 1)[1])
        if path.startswith("/api/import") or path == "/api/perform_import":
            self.need(method, "POST")
            self.admin()
            return self.import_step(path, query)
        raise ApiError(404, "NotFound", f"No route for {method} {path}")

    # -- metrics -------------------------------------------------------------------------------------
    def metrics(self) -> str:
        """A few of upstream's series (crates/metrics/src/lib.rs, crates/common/src/http/mod.rs,
        crates/local_backend/src/subs/metrics.rs), with the registry prefix of the docker binary
        (SERVICE_NAME convex-local-backend -> convex_local_backend_). Upstream prints a series only once it has
        been recorded; these three always have been."""
        app: Backend = self.app
        p = "convex_local_backend_"
        return "\n".join([
            f"# HELP {p}convex_binary_versions_total Binary version info",
            f"# TYPE {p}convex_binary_versions_total gauge",
            f'{p}convex_binary_versions_total{{binary="backend",version="{VERSION_TEXT}"}} 1',
            f"# HELP {p}backend_http_service_concurrent_requests In-flight HTTP requests",
            f"# TYPE {p}backend_http_service_concurrent_requests gauge",
            f"{p}backend_http_service_concurrent_requests 1",
            f"# HELP {p}sync_protocol_websockets_total Connected sync websockets",
            f"# TYPE {p}sync_protocol_websockets_total gauge",
            f'{p}sync_protocol_websockets_total{{partition_id="0"}} {app.websockets}',
        ]) + "\n"

    # -- deployment environment ----------------------------------------------------------------------
    def update_env(self) -> None:
        """Validation and error codes as upstream at this revision (crates/common/src/types/environment_variables.rs,
        crates/model/src/environment_variables/mod.rs, crates/application/src/lib.rs, knobs ENV_VAR_LIMIT and
        ENV_VAR_TOTAL_SIZE_LIMIT)."""
        app: Backend = self.app
        limits = UPSTREAM["env"]
        body = self.body_json()
        changes = body.get("changes")
        if not isinstance(changes, list):
            raise ApiError(400, "BadJsonBody", "Expected {\"changes\": [{\"name\": ..., \"value\": ...}]}")
        seen, parsed = set(), []
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("name"), str):
                raise ApiError(400, "BadJsonBody", "Each change needs a string \"name\"")
            name, value = change["name"], change.get("value")
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "BadJsonBody", f"Value of {name} must be a string or null")
            if not ENV_NAME_RE.match(name):
                raise ApiError(400, "EnvironmentVariableNameInvalid",
                               f"Environment variable name {name!r} must begin with a letter and only contain "
                               "letters, numbers, and underscores")
            if len(name) > limits["name_max"]:
                raise ApiError(400, "EnvironmentVariableNameTooLong",
                               f"Environment variable name {name[:40]}... exceeds {limits['name_max']} characters")
            if value is not None and name in limits["builtins"]:  # a delete only parses the name
                raise ApiError(400, "EnvVarNameForbidden",
                               f'Environment variable with name "{name}" is built-in and cannot be overridden')
            if value is not None and len(value.encode()) > limits["value_max"]:
                raise ApiError(400, "EnvironmentVariableValueTooLarge",
                               f"Value of {name} is {len(value.encode())} bytes; the limit is {limits['value_max']}")
            if name in seen:
                raise ApiError(400, "EnvVarNameNotUnique", f"Environment variable {name} appears twice")
            seen.add(name)
            parsed.append((name, value))
        after = dict(app.store.env())
        for name, value in parsed:
            if value is None:
                after.pop(name, None)
            else:
                after[name] = value
        if len(after) > limits["max_vars"]:
            raise ApiError(400, "EnvVarLimitMet",
                           f"The environment variable limit ({limits['max_vars']}) has been met.")
        total = sum(len(n.encode()) + len(v.encode()) for n, v in after.items())
        if limits.get("max_total_bytes") and total > limits["max_total_bytes"]:
            raise ApiError(400, "EnvVarTotalSizeLimitMet",
                           f"The total size of environment variables ({total} bytes) exceeds "
                           f"{limits['max_total_bytes']} bytes.")
        app.store.apply_env(parsed)
        log(C, "environment variables updated: " + ", ".join(
            f"{'-' if v is None else '+'}{n}" for n, v in parsed) if parsed else "environment variables: no changes")
        self.send_empty(200)

    # -- functions (query / mutation) ----------------------------------------------------------------
    def run_function(self, kind: str) -> None:
        body = self.body_json()
        path = body.get("path")
        args = body.get("args", {})
        if isinstance(args, list):  # the wire format also allows [args]
            args = args[0] if args else {}
        if not isinstance(path, str) or not isinstance(args, dict):
            raise ApiError(400, "BadJsonBody", "Expected {\"path\": string, \"args\": object}")
        norm = path.replace(".js:", ":")
        if norm.startswith("_system/"):
            self.admin()
        try:
            value = Functions(self.app).call(kind, norm, args)
        except FunctionError as exc:
            return self.send_json(200, {"status": "error", "errorMessage": str(exc), "errorData": None, "logLines": []})
        self.send_json(200, {"status": "success", "value": value, "logLines": []})

    # -- functions deploy ----------------------------------------------------------------------------
    def deploy_step(self, path: str) -> None:
        app: Backend = self.app
        body = self.body_json()
        step = path.rsplit("/", 1)[1]
        if step == "get_config_hashes":
            fn = app.deployed or {}
            return self.send_json(200, {"functionsVersion": fn.get("version"), "configHash": fn.get("hash"),
                                        "moduleHashes": fn.get("modules", []), "deployedAt": fn.get("deployedAt")})
        if step in ("evaluate_push", "start_push"):
            version, modules = body.get("functionsVersion"), body.get("modules")
            if not isinstance(version, str) or not version or len(version) > 64:
                raise ApiError(400, "InvalidPush", "functionsVersion must be a non-empty string (at most 64 chars)")
            if not isinstance(modules, list) or not modules or not all(
                    isinstance(m, dict) and isinstance(m.get("path"), str) and isinstance(m.get("source"), str)
                    for m in modules):
                raise ApiError(400, "InvalidModules", "modules must be a non-empty list of {path, source}")
            mod_hashes = sorted(({"path": m["path"], "sha256": hashlib.sha256(m["source"].encode()).hexdigest()}
                                 for m in modules), key=lambda m: m["path"])
            config_hash = hashlib.sha256(json.dumps([version, mod_hashes]).encode()).hexdigest()
            if step == "evaluate_push":
                return self.send_json(200, {"configHash": config_hash, "modules": len(mod_hashes),
                                            "schemaChanged": False})
            if body.get("configHash") not in (None, config_hash):
                raise ApiError(400, "ConfigHashMismatch", "configHash does not match the pushed modules")
            push_id = secrets.token_hex(8)
            with app.push_lock:
                app.pushes[push_id] = {"version": version, "hash": config_hash, "modules": mod_hashes,
                                       "state": "started", "dryRun": bool(body.get("dryRun")),
                                       "sources": [{"path": m["path"], "source": m["source"]} for m in modules]}
            log(C, f"push {push_id} started: functions version {version} ({len(mod_hashes)} modules)")
            return self.send_json(200, {"pushId": push_id, "schemaChange": {"state": "pending"}})
        push_id = body.get("pushId")
        with app.push_lock:
            push = app.pushes.get(push_id) if isinstance(push_id, str) else None
            if push is None:
                raise ApiError(404, "PushNotFound", f"No push in progress with id {push_id!r}")
            if step == "wait_for_schema":
                if push["state"] not in ("started", "schema_ready"):
                    raise ApiError(400, "PushOutOfOrder", f"wait_for_schema after {push['state']}")
                push["state"] = "schema_ready"
                return self.send_json(200, {"type": "complete"})
            if step == "finish_push":
                if push["state"] != "schema_ready":
                    raise ApiError(400, "SchemaNotReady", "Call wait_for_schema before finish_push")
                previous = app.deployed
                changed = not previous or previous.get("hash") != push["hash"]
                if not push["dryRun"]:
                    # The module sources go to modules storage (the object's name and format are the double's).
                    app.blobs["modules"].put(f"{push['hash']}.json", json.dumps(push["sources"]).encode())
                    app.store.put("functions", {"version": push["version"], "hash": push["hash"],
                                                "modules": push["modules"], "deployedAt": iso_now()})
                    app.store.put("deploy_count", (app.store.get("deploy_count") or 0) + 1)
                push["state"] = "finished"
                log(C, f"push {push_id} finished: functions version {push['version']} hash {push['hash'][:12]} "
                       f"({'changed' if changed else 'unchanged'}{', dry run' if push['dryRun'] else ''})")
                return self.send_json(200, {"functionsVersion": push["version"], "configHash": push["hash"],
                                            "changed": changed})
            if step == "report_push_completed":
                if push["state"] != "finished":
                    raise ApiError(400, "PushOutOfOrder", "report_push_completed before finish_push")
                del app.pushes[push_id]
                log(C, f"push {push_id} reported completed")
                return self.send_json(200, {})
        raise ApiError(404, "NotFound", f"No route for POST {path}")

    # -- snapshot export -----------------------------------------------------------------------------
    def request_export(self, query: dict) -> None:
        app: Backend = self.app
        include_storage = (query.get("includeStorage") or ["false"])[0] == "true"
        with app.export_lock:
            latest = app.store.get("latest_export")
            if latest and latest["state"] in ("requested", "in_progress"):
                raise ApiError(400, "ExportInProgress", "An export is already in progress")
            start_ts = str(time.time_ns())
            latest = {"_id": new_id(), "_creationTime": time.time() * 1000, "state": "requested",
                      "start_ts": start_ts, "format": {"format": "zip", "include_storage": include_storage}}
            app.store.put("latest_export", latest)
        threading.Thread(target=self._export, args=(latest,), daemon=True).start()
        log(C, f"export {start_ts} requested (includeStorage={include_storage})")
        self.send_empty(200)

    def _export(self, doc: dict) -> None:
        app: Backend = self.app
        time.sleep(0.2)
        doc["state"] = "in_progress"
        app.store.put("latest_export", doc)
        try:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("README.md", "# Convex snapshot export (test double)\nOne folder per table, "
                                         "documents in documents.jsonl. Code and environment variables are not included.\n")
                tables = [t for t in app.store.tables() if t != STORAGE_TABLE]
                zf.writestr("_tables/documents.jsonl",
                            "".join(json.dumps({"name": t, "id": i + 10001}) + "\n" for i, t in enumerate(tables)))
                for table in tables:
                    zf.writestr(f"{table}/documents.jsonl",
                                "".join(json.dumps(d) + "\n" for d in app.store.list(table)))
                if doc["format"]["include_storage"]:
                    # Upstream (crates/exports/src/export_storage.rs:94-236 at c51b14b): the metadata in
                    # _storage/documents.jsonl, each file as _storage/<id> (plus an extension guessed from its type).
                    files = app.store.list(STORAGE_TABLE)
                    zf.writestr(f"{STORAGE_TABLE}/documents.jsonl", "".join(json.dumps(f) + "\n" for f in files))
                    for f in files:
                        zf.writestr(f"{STORAGE_TABLE}/{f['_id']}", app.blobs["files"].get(f["internalId"]) or b"")
            time.sleep(0.2)
            app.blobs["exports"].put(f"{doc['start_ts']}.zip", buf.getvalue())
            doc["state"] = "completed"
            doc["complete_ts"] = str(time.time_ns())
            log(C, f"export {doc['start_ts']} completed ({len(buf.getvalue())} bytes)")
        except Exception as exc:
            doc["state"] = "failed"
            doc["failure_reason"] = str(exc)
            log(C, f"export {doc['start_ts']} failed: {exc}", "ERROR")
        app.store.put("latest_export", doc)

    def download_export(self, ts: str) -> None:
        app: Backend = self.app
        latest = app.store.get("latest_export")
        data = app.blobs["exports"].get(f"{ts}.zip") if re.fullmatch(r"[0-9]+", ts) else None
        if data is not None:
            return self.send_bytes(200, data, "application/zip", {
                # Unquoted, as upstream (crates/local_backend/src/custom_headers.rs): the CLI slices it off verbatim.
                "Content-Disposition": f"attachment; filename=snapshot_{app.name}_{ts}.zip"})
        if latest and latest["start_ts"] == ts:
            raise ApiError(400, "ExportNotComplete", f"Export {ts} is {latest['state']}")
        raise ApiError(404, "ExportNotFound", f"No export with timestamp {ts}")

    # -- snapshot import -----------------------------------------------------------------------------
    @staticmethod
    def _parse_zip(data: bytes) -> dict[str, list[dict]]:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise ApiError(400, "InvalidImport", f"Not a zip file: {exc}") from exc
        tables: dict[str, list[dict]] = {}
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[1] == "documents.jsonl" and not parts[0].startswith("_"):
                if not TABLE_RE.match(parts[0]):
                    raise ApiError(400, "InvalidImport", f"Invalid table name {parts[0]!r}")
                lines = zf.read(name).decode().splitlines()
                tables[parts[0]] = [json.loads(line) for line in lines if line.strip()]
        return tables

    @staticmethod
    def _parse_storage(data: bytes) -> list[tuple[dict, bytes]]:
        """(metadata, content) of each file in _storage/ (upstream's STORAGE_FILE_PATTERN: _storage/<id>[.ext],
        crates/application/src/snapshot_import/parse.rs:111-114 at c51b14b)."""
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()
        if f"{STORAGE_TABLE}/documents.jsonl" not in names:
            return []
        contents = {}
        for name in names:
            m = re.fullmatch(r"(?:.*/)?_storage/([^/.]+)(?:\.[^/]+)?", name)
            if m:
                contents[m.group(1)] = zf.read(name)
        out = []
        for line in zf.read(f"{STORAGE_TABLE}/documents.jsonl").decode().splitlines():
            if line.strip():
                meta = json.loads(line)
                if meta["_id"] not in contents:
                    raise ApiError(400, "InvalidImport", f"File {meta['_id']} of _storage/documents.jsonl is missing")
                out.append((meta, contents[meta["_id"]]))
        return out

    def _apply_import(self, data: bytes, fmt: str, mode: str) -> int:
        app: Backend = self.app
        if fmt != "zip":
            raise ApiError(400, "InvalidImport", "The double imports only format=zip")
        if mode not in ("replaceAll", "replace", "append", "requireEmpty"):
            raise ApiError(400, "InvalidImport", f"Unknown import mode {mode!r}")
        tables = self._parse_zip(data)
        files = self._parse_storage(data)
        if mode == "requireEmpty" and any(app.store.count(t) for t in tables):
            raise ApiError(400, "ImportTableNotEmpty", "Tables are not empty (use --replace or --replace-all)")
        for meta, blob in files:
            app.blobs["files"].put(meta["_id"], blob)
        if files:
            tables[STORAGE_TABLE] = [dict(m, internalId=m["_id"]) for m, _ in files]
        written = app.store.replace_tables(tables, mode)
        log(C, f"import ({mode}) wrote {written} documents in {len(tables)} tables")
        return written

    def import_step(self, path: str, query: dict) -> None:
        app: Backend = self.app
        q = {k: v[0] for k, v in query.items()}
        if path == "/api/import":
            key = f"{new_id()}.zip"  # through snapshot imports storage, as the upload flow below
            app.blobs["snapshot_imports"].put(key, self.read_body())
            written = self._apply_import(app.blobs["snapshot_imports"].get(key), q.get("format", "zip"),
                                         q.get("mode", "requireEmpty"))
            return self.send_json(200, {"numWritten": written})
        if path == "/api/import/start_upload":
            self.read_body()
            token = secrets.token_hex(12)
            app.uploads[token] = {}
            return self.send_json(200, {"uploadToken": token})
        if path == "/api/import/upload_part":
            upload = app.uploads.get(q.get("uploadToken", ""))
            if upload is None or not q.get("partNumber", "").isdigit():
                raise ApiError(400, "InvalidUpload", "Unknown uploadToken or bad partNumber")
            part_token = secrets.token_hex(8)
            upload[part_token] = (int(q["partNumber"]), self.read_body())
            return self.send_json(200, part_token)
        if path == "/api/import/finish_upload":
            body = self.body_json()
            upload = app.uploads.pop(body.get("uploadToken", ""), None)
            parts = body.get("partTokens")
            if upload is None or not isinstance(parts, list) or any(p not in upload for p in parts):
                raise ApiError(400, "InvalidUpload", "Unknown uploadToken or partTokens")
            spec = body.get("import") or {}
            data = b"".join(upload[p][1] for p in sorted(parts, key=lambda p: upload[p][0]))
            tables = self._parse_zip(data)
            import_id = new_id()
            app.blobs["snapshot_imports"].put(f"{import_id}.zip", data)
            app.imports[import_id] = {"object": f"{import_id}.zip", "format": spec.get("format", "zip"),
                                      "mode": spec.get("mode", "requireEmpty"),
                                      "state": {"state": "waiting_for_confirmation",
                                                "message_to_confirm": f"Import {sum(map(len, tables.values()))} "
                                                                      f"documents into {len(tables)} tables",
                                                "require_manual_confirmation": True}}
            return self.send_json(200, {"importId": import_id})
        if path == "/api/perform_import":
            body = self.body_json()
            imp = app.imports.get(body.get("importId", ""))
            if imp is None:
                raise ApiError(404, "ImportNotFound", "No such import")
            if imp["state"]["state"] != "waiting_for_confirmation":
                raise ApiError(400, "ImportNotWaiting", f"Import is {imp['state']['state']}")
            imp["state"] = {"state": "in_progress", "progress_message": "importing", "checkpoint_messages": []}
            try:
                data = app.blobs["snapshot_imports"].get(imp["object"]) or b""
                written = self._apply_import(data, imp["format"], imp["mode"])
                imp["state"] = {"state": "completed", "num_rows_written": str(written)}
            except ApiError as exc:
                imp["state"] = {"state": "failed", "error_message": exc.message}
            return self.send_json(200, {})
        raise ApiError(404, "NotFound", f"No route for POST {path}")

    # -- HTTP actions (3211 <path> == 3210 /http<path>) ----------------------------------------------
    def http_action(self, method: str, sub: str) -> None:
        app: Backend = self.app
        if not app.deployed:
            raise ApiError(404, "NoHttpActions",
                           "This deployment has no HTTP actions: deploy functions that define convex/http.js first")
        if sub == "/api/v1/health" and method in ("GET", "HEAD"):
            return self.send_json(200, {"status": "ok", "timestamp": iso_now()})
        if sub == "/seed/admin" and method == "POST":
            return self.seed_admin()
        self.send_text(404, "No matching routes found\n")

    def seed_admin(self) -> None:
        app: Backend = self.app
        expected = app.store.env().get("INSTANCE_SECRET")
        given = self.headers.get("X-Instance-Secret") or ""
        if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
            self.read_body()
            reason = "INSTANCE_SECRET is not set in the deployment environment" if not expected else "bad instance secret"
            log(C, f"seed/admin refused: {reason}", "WARN")
            return self.send_json(401, {"error": "Unauthorized"})  # bodies as apps/api/convex/seedAdmin.ts
        try:
            body = self.read_json()
        except ValueError:
            return self.send_json(400, {"error": "Invalid JSON body"})
        if not isinstance(body, dict):
            return self.send_json(400, {"error": "Invalid JSON body"})
        email, name, pw = body.get("email"), body.get("name"), body.get("passwordHash")
        problems = []
        if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) or len(email) > 254:
            problems.append("email must be an email address")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            problems.append("name must be a non-empty string")
        if not isinstance(pw, str) or not PASSWORD_HASH_RE.match(pw):
            problems.append("passwordHash must be <32 hex salt>:<128 hex key>")
        if problems:
            # Upstream checks presence only ("Missing required fields"); the double also names malformed values.
            return self.send_json(400, {"error": "Missing required fields: email, name, passwordHash (" + "; ".join(problems) + ")"})
        with app.store.lock:
            if app.store.count("users") > 0:
                return self.send_json(409, {"error": "Users already exist. Seed endpoint is one-shot only."})
            user_id = app.store.insert("users", {"email": email.lower(), "name": name, "passwordHash": pw,
                                                 "role": "admin", "emailVerified": True})
        log(C, f"seeded admin user {user_id}")
        self.send_json(201, {"success": True, "userId": user_id})


def u64(value: int) -> str:
    """A u64 as the sync protocol carries it: base64 of 8 little-endian bytes."""
    return base64.b64encode(int(value).to_bytes(8, "little")).decode()


# int64 fields of the system documents: strings in the HTTP "json" format, {"$integer"} in Convex JSON.
INT64_FIELDS = ("start_ts", "complete_ts", "num_rows_written", "expiration_ts")


def convex_json(value):
    """Convex's JSON encoding of a value the double keeps with int64 fields as decimal strings."""
    if isinstance(value, dict):
        return {k: ({"$integer": base64.b64encode(int(v).to_bytes(8, "little", signed=True)).decode()}
                    if k in INT64_FIELDS and isinstance(v, str) and v.lstrip("-").isdigit() else convex_json(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [convex_json(v) for v in value]
    return value


class SyncSession:
    """One client on /api/sync. Keeps the client's version triple (query set, identity, timestamp), answers
    ModifyQuerySet and Authenticate with a Transition, re-runs the subscribed queries every half second and
    sends a new Transition when a result changed (how `convex export` sees its export complete)."""

    def __init__(self, app: "Backend", ws: WebSocket):
        self.app, self.ws = app, ws
        self.inbox: "queue.Queue[str | None]" = queue.Queue()
        self.queries: dict[int, tuple[str, dict]] = {}
        self.results: dict[int, tuple] = {}
        self.version = {"querySet": 0, "identity": 0, "ts": 0}
        self.admin = False

    def _reader(self) -> None:
        while True:
            msg = self.ws.recv()
            self.inbox.put(msg)
            if msg is None:
                return

    def run(self) -> None:
        threading.Thread(target=self._reader, daemon=True).start()
        idle = 0.0
        while not self.ws.closed and not self.app.stopper.event.is_set():
            try:
                first = self.inbox.get(timeout=0.5)
            except queue.Empty:
                idle += 0.5
                self.refresh()
                if idle >= 15:
                    self.ws.send(json.dumps({"type": "Ping"}))
                    idle = 0.0
                continue
            idle = 0.0
            batch = [first]
            # The client sends ModifyQuerySet and Authenticate back to back: answer them in one Transition.
            while True:
                try:
                    batch.append(self.inbox.get(timeout=0.05))
                except queue.Empty:
                    break
            if any(m is None for m in batch):
                return
            self.handle([json.loads(m) for m in batch])
        self.ws.close()

    def handle(self, messages: list[dict]) -> None:
        start = dict(self.version)
        touched: set[int] = set()
        removed: list[int] = []
        for msg in messages:
            kind = msg.get("type")
            if kind == "ModifyQuerySet":
                if msg.get("baseVersion") != self.version["querySet"]:
                    return self.fatal(f"ModifyQuerySet from version {msg.get('baseVersion')}, "
                                      f"server is at {self.version['querySet']}")
                for mod in msg.get("modifications", []):
                    if mod.get("type") == "Add":
                        args = (mod.get("args") or [{}])[0]
                        self.queries[mod["queryId"]] = (mod["udfPath"], args if isinstance(args, dict) else {})
                        touched.add(mod["queryId"])
                    elif mod.get("type") == "Remove":
                        self.queries.pop(mod["queryId"], None)
                        self.results.pop(mod["queryId"], None)
                        removed.append(mod["queryId"])
                self.version["querySet"] = msg.get("newVersion", self.version["querySet"] + 1)
            elif kind == "Authenticate":
                if msg.get("baseVersion") != self.version["identity"]:
                    return self.fatal(f"Authenticate from identity version {msg.get('baseVersion')}, "
                                      f"server is at {self.version['identity']}")
                token_type = msg.get("tokenType")
                if token_type == "Admin":
                    try:
                        self.app.check_admin("Convex " + str(msg.get("value") or ""))
                    except ApiError as exc:
                        self.ws.send(json.dumps({"type": "AuthError", "error": exc.message,
                                                 "baseVersion": msg.get("baseVersion"),
                                                 "authUpdateAttempted": True}))
                        return
                    self.admin = True
                elif token_type == "None":
                    self.admin = False
                else:
                    self.ws.send(json.dumps({"type": "AuthError", "baseVersion": msg.get("baseVersion"),
                                             "error": "The double accepts only admin keys on the sync socket",
                                             "authUpdateAttempted": True}))
                    return
                self.version["identity"] += 1
                touched.update(self.queries)  # results may depend on the identity
            elif kind in ("Mutation", "Action"):
                reply = "MutationResponse" if kind == "Mutation" else "ActionResponse"
                self.ws.send(json.dumps({"type": reply, "requestId": msg.get("requestId"), "success": False,
                                         "result": f"The double runs no {kind.lower()}s over the sync socket",
                                         "logLines": []}))
        if self.version != start:
            self.transition(start, touched, removed)

    def fatal(self, error: str) -> None:
        log(C, f"sync: {error}", "WARN")
        self.ws.send(json.dumps({"type": "FatalError", "error": error}))
        self.ws.close(1011, "FatalError")

    def evaluate(self, query_id: int) -> tuple:
        path, args = self.queries[query_id]
        norm = path.replace(".js:", ":")
        if norm.endswith(":default"):
            norm = norm[: -len(":default")]
        if norm.startswith("_system/") and not self.admin:
            return ("QueryFailed", "Unauthorized: system queries need an admin key")
        try:
            return ("QueryUpdated", convex_json(Functions(self.app).call("query", norm, args)))
        except FunctionError as exc:
            return ("QueryFailed", str(exc))

    def transition(self, start: dict, touched, removed=()) -> None:
        self.version["ts"] = max(time.time_ns(), start["ts"] + 1)
        mods = [{"type": "QueryRemoved", "queryId": q} for q in removed]
        for query_id in sorted(touched):
            if query_id not in self.queries:
                continue
            result = self.evaluate(query_id)
            self.results[query_id] = result
            if result[0] == "QueryUpdated":
                mods.append({"type": "QueryUpdated", "queryId": query_id, "value": result[1], "logLines": []})
            else:
                mods.append({"type": "QueryFailed", "queryId": query_id, "errorMessage": result[1],
                             "logLines": [], "errorData": None})
        self.ws.send(json.dumps({
            "type": "Transition",
            "startVersion": dict(start, ts=u64(start["ts"])),
            "endVersion": dict(self.version, ts=u64(self.version["ts"])),
            "modifications": mods,
        }))

    def refresh(self) -> None:
        changed = {q for q in self.queries if self.evaluate(q) != self.results.get(q)}
        if changed:
            self.transition(dict(self.version), changed)


class HttpActionsHandler(Handler):
    http_actions_only = True


class Functions:
    """The Convex functions the double knows, available only after a deploy (except _system ones)."""

    QUERIES = {"lab:list", "lab:get", "lab:count", "users:count", "lab:getFile"}
    MUTATIONS = {"lab:put", "lab:delete", "lab:storeFile"}

    def __init__(self, app: Backend):
        self.app = app

    def system(self, path: str, args: dict):
        """The built-in `_system/cli/*` queries the CLI reads (admin only; checked by the caller)."""
        store = self.app.store
        if path == "_system/cli/exports:getLatest":
            return store.get("latest_export")
        if path == "_system/cli/queryImport":
            imp = self.app.imports.get(args.get("importId", ""))
            return None if imp is None else {"_id": args["importId"], "state": imp["state"]}
        if path == "_system/cli/queryImport:list":
            return [{"_id": i, "state": imp["state"]} for i, imp in self.app.imports.items()]
        if path == "_system/cli/queryEnvironmentVariables":
            return [{"name": n, "value": v} for n, v in store.env().items()]
        if path == "_system/cli/queryEnvironmentVariables:get":
            value = store.env().get(args.get("name"))
            return None if value is None else {"name": args.get("name"), "value": value}
        if path in ("_system/cli/tables", "_system/cli/tableData"):
            if path == "_system/cli/tables":
                rows = [{"name": t} for t in store.tables()]
            else:
                table = args.get("table")
                if not isinstance(table, str) or not TABLE_RE.match(table):
                    raise FunctionError(f"ArgumentValidationError: invalid table name {table!r}")
                rows = store.list(table)
                if args.get("order", "desc") == "desc":
                    rows.reverse()
            opts = args.get("paginationOpts") or {}
            start = int(opts.get("cursor") or 0)
            count = int(opts.get("numItems") or 100)
            page = rows[start:start + count]
            done = start + count >= len(rows)
            return {"page": page, "isDone": done, "continueCursor": str(start + len(page))}
        raise FunctionError(f"Could not find system function '{path}'")

    def call(self, kind: str, path: str, args: dict):
        if path.startswith("_system/"):
            return self.system(path, args)
        known = path in self.QUERIES or path in self.MUTATIONS
        if not self.app.deployed or not known:
            raise FunctionError(f"Could not find public function for '{path}'. Did you forget to run "
                                "`npx convex dev` or `npx convex deploy`?")
        fkind = "query" if path in self.QUERIES else "mutation"
        if kind in ("query", "mutation") and kind != fkind:
            raise FunctionError(f"Trying to execute {path} as {kind.capitalize()}, but it is defined as "
                                f"{fkind.capitalize()}.")
        store = self.app.store
        if path == "users:count":
            return store.count("users")
        if path == "lab:storeFile":  # file storage: base64 in, a storage id (a UUID) out
            try:
                data = base64.b64decode(args.get("data", ""), validate=True)
            except (TypeError, ValueError) as exc:
                raise FunctionError("ArgumentValidationError: data must be base64") from exc
            storage_id = str(uuid.uuid4())
            self.app.blobs["files"].put(storage_id, data)
            # The file's metadata as upstream's _storage table exports it (FileStorageZipMetadata, below).
            store.insert(STORAGE_TABLE, {"sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
                                         "size": len(data), "contentType": "application/octet-stream",
                                         "internalId": storage_id}, doc_id=storage_id)
            return storage_id
        if path == "lab:getFile":
            storage_id = args.get("storageId")
            if not isinstance(storage_id, str) or not re.fullmatch(r"[0-9a-f-]{36}", storage_id):
                raise FunctionError("ArgumentValidationError: storageId must be a storage id")
            data = self.app.blobs["files"].get(storage_id)
            return None if data is None else base64.b64encode(data).decode()
        if path in ("lab:get", "lab:delete"):
            doc_id = args.get("id")
            if not isinstance(doc_id, str):
                raise FunctionError("ArgumentValidationError: id must be a string")
            return store.get_doc(doc_id) if path == "lab:get" else store.delete_doc(doc_id)
        table = args.get("table")
        if not isinstance(table, str) or not TABLE_RE.match(table):
            raise FunctionError(f"ArgumentValidationError: invalid table name {table!r}")
        if path == "lab:list":
            return store.list(table)
        if path == "lab:count":
            return store.count(table)
        doc = args.get("doc", {})
        if not isinstance(doc, dict) or any(k.startswith("_") for k in doc):
            raise FunctionError("ArgumentValidationError: doc must be an object without system (_) fields")
        return store.insert(table, doc)


# ---------------------------------------------------------------------------------------------------
def open_database(cfg: Config, instance_name: str) -> Store:
    """The database as the Docker image picks it (self-hosted/docker-build/run_backend.sh:17-32 at c51b14b):
    POSTGRES_URL, else MYSQL_URL, else DATABASE_URL (deprecated, Postgres), else SQLite in the data dir."""
    if os.environ.get("POSTGRES_URL"):
        return connect_postgres(os.environ["POSTGRES_URL"], instance_name, not cfg.no_ssl)
    if os.environ.get("MYSQL_URL"):
        fail(C, "MYSQL_URL is set, but this test double does not implement MySQL persistence: refusing to start")
    if os.environ.get("DATABASE_URL"):
        print("Warning: DATABASE_URL is deprecated. Please use POSTGRES_URL for PostgreSQL or MYSQL_URL for "
              "MySQL connections instead.", flush=True)  # run_backend.sh:25
        return connect_postgres(os.environ["DATABASE_URL"], instance_name, not cfg.no_ssl)
    path = os.path.join(cfg.data, "db.sqlite3")
    store = Store(path)
    log(C, f"Connected to SQLite at {path}")  # crates/db_connection/src/lib.rs:148 at c51b14b
    return store


def main() -> int:
    # PID 1: SIGTERM ignored; first SIGINT drains, second exits at once.
    stopper = Stopper(C, graceful=(signal.SIGINT,), ignored=(signal.SIGTERM,))
    cfg = Config()
    if UPSTREAM is None:
        fail(C, f"no route table for revision {REVISION!r} in versions.json: read upstream at that commit and add it")
    cfg.report()
    os.makedirs(cfg.data, exist_ok=True)
    name, secret = load_credentials(cfg)
    store = open_database(cfg, name)
    migrate(store)
    blobs = init_storage(store, name, storage_tag_from_env(), os.path.join(cfg.data, "storage"))
    app = Backend(cfg, name, secret, store, stopper, blobs)
    fn = app.deployed
    log(C, f"deployed functions: {fn['version']} ({fn['hash'][:12]})" if fn else "no functions deployed yet")
    servers = [ThreadingServer("0.0.0.0", cfg.ports[0], Handler, app),
               ThreadingServer("0.0.0.0", cfg.ports[1], HttpActionsHandler, app)]
    serve(servers)
    if store.kind == "SQLite":  # Postgres: upstream's lease, checked at each write (PgStore.begin)
        threading.Thread(target=app.watch_lease, daemon=True).start()
    log(C, f"listening on 0.0.0.0:{cfg.ports[0]} (API) and 0.0.0.0:{cfg.ports[1]} (HTTP actions)")
    stopper.wait()
    log(C, "draining requests")
    shutdown_all(servers)
    try:
        store.close()
        log(C, "database closed")
    except Exception as exc:  # sqlite3.Error or psycopg2.Error
        log(C, f"closing the database failed: {exc}", "ERROR")
    if app.fatal:
        log(C, f"exiting: {app.fatal}", "ERROR")
        return 1
    log(C, "shut down cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
