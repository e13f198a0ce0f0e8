# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Where a stack's Convex backend keeps its documents, and which stacks would share a database.

Upstream facts (get-convex/convex-backend at c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef, docs/upstream-external-storage.md):
the database on a Postgres or MySQL server is the instance name with ``-`` replaced by ``_``
(crates/clusters/src/lib.rs:55, :78); the Docker image's instance name defaults to ``convex-self-hosted``
(self-hosted/docker-build/read_credentials.sh:22); two backends on one database fight over its lease and the older
one stops (crates/postgres/src/lib.rs:1738-1888).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ansible_collections.owlat.selfhost.plugins.module_utils import _pgwire as pg
from ansible_collections.owlat.selfhost.plugins.module_utils._s3 import S3

UPSTREAM_INSTANCE_NAME = "convex-self-hosted"
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}


def database_name(instance_name):
    """The backend's database on a Postgres/MySQL server: the instance name with ``-`` as ``_``."""
    return (instance_name or UPSTREAM_INSTANCE_NAME).replace("-", "_")


def database_of(postgres_url, mysql_url="", instance_name=""):
    """``postgres://host:port/db`` (never the credentials) of the backend's database; ``""`` for SQLite in the volume."""
    kind, url = ("postgres", postgres_url) if postgres_url else ("mysql", mysql_url)
    if not url:
        return ""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS[kind]
    except ValueError:  # not a port number: the convex preflight names it; here the server is the text as given
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
    host = (parts.hostname or "").lower()
    return "%s://%s:%s/%s" % (kind, host, port, database_name(instance_name))


def shared_database_problems(claims):
    """One sentence per database that more than one stack would use. ``claims``: dicts with ``database`` (as
    database_of returns it; empty ones are ignored) and ``where`` ("stack X on host Y")."""
    users = {}
    for claim in claims:
        if claim.get("database"):
            users.setdefault(claim["database"], []).append(claim["where"])
    return ["database %s would be used by %s: upstream's lease lets one backend use a database (the newer one takes "
            "it over, the older one stops). Give each of these stacks its own owlat_convex_instance_name (the database "
            "is that name with '-' as '_'; create it on the server first)." % (db, " and ".join(sorted(where)))
            for db, where in sorted(users.items()) if len(where) > 1]


# -- the storage check (module owlat_storage_check): from the host that will run the backend ------------------------
S3_USES = ("exports", "snapshot_imports", "modules", "files", "search")


def _server(url):
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or DEFAULT_PORTS["postgres"], unquote(parts.username or ""),
            unquote(parts.password or ""), unquote(parts.path.lstrip("/")))


def _connect(url, database, require_tls, timeout):
    host, port, user, password = _server(url)[:4]
    try:
        return pg.Connection(host, port, user, password, database, sslmode="require", timeout=timeout)
    except pg.NoTls:
        # Without the requirement the backend prefers TLS and falls back to plain (crates/local_backend/src/config.rs:
        # 103-105 at c51b14b: "It would still prefer SSL if available").
        if require_tls:
            raise
    return pg.Connection(host, port, user, password, database, sslmode="disable", timeout=timeout)


def _pg_problem(exc, server, user, database, setting="owlat_convex_postgres_url"):
    if exc.code == pg.INVALID_PASSWORD:
        return "PostgreSQL %s refused the password of user %s (%s)." % (server, user, setting)
    if exc.code == pg.INVALID_AUTHORIZATION:
        return ("PostgreSQL %s refused user %s on database %s: %s (the server's pg_hba.conf must allow this host, "
                "with TLS)." % (server, user, database, exc))
    if isinstance(exc, pg.NoTls):
        return ("PostgreSQL %s does not offer TLS, which the backend requires (sslmode=require): enable ssl on the "
                "server, or set owlat_convex_do_not_require_ssl: true where the network to it is private." % server)
    if not exc.code:
        return "PostgreSQL %s: %s (%s)." % (server, exc, setting)
    return "PostgreSQL %s, database %s: %s (SQLSTATE %s)." % (server, database, exc, exc.code)


def check_postgres(params, create):
    """(what was found, problems) for the backend's POSTGRES_URL."""
    url, timeout = params["postgres_url"], params["timeout"]
    host, port, user = _server(url)[:3]
    server, database = "%s:%s" % (host, port), database_name(params["instance_name"])
    found = dict(server=server, database=database, user=user, tls=None, created=False)
    try:
        conn = _connect(url, database, params["require_tls"], timeout)
    except pg.PgError as exc:
        if exc.code != pg.INVALID_CATALOG_NAME:
            return found, [_pg_problem(exc, server, user, database)]
        if not params["admin_url"]:
            # No code of the backend makes it (docs/upstream-external-storage.md §2: not found at c51b14b).
            return found, ["PostgreSQL %s has no database %s (the backend does not create it): create it "
                           "(CREATE DATABASE %s OWNER %s;) or give owlat_convex_postgres_admin_url (from the vault) to "
                           "have it created." % (server, database, pg.quote_ident(database), pg.quote_ident(user))]
        if not create:
            found["created"] = "in a real run"
            return found, []
        admin_host, admin_port, admin_user, dummy, admin_db = _server(params["admin_url"])
        admin_server = "%s:%s" % (admin_host, admin_port)
        try:
            with _connect(params["admin_url"], admin_db or "postgres", params["require_tls"], timeout) as admin:
                admin.query("CREATE DATABASE %s OWNER %s" % (pg.quote_ident(database), pg.quote_ident(user)))
        except pg.PgError as exc:
            if exc.code != pg.DUPLICATE_DATABASE:
                return found, [_pg_problem(exc, admin_server, admin_user, database, "owlat_convex_postgres_admin_url")]
        found["created"] = True
        try:
            conn = _connect(url, database, params["require_tls"], timeout)
        except pg.PgError as exc:
            return found, [_pg_problem(exc, server, user, database)]
    with conn:
        found["tls"] = conn.tls
        try:
            version, schema, may_create = conn.query(
                "SELECT version(), current_schema(), has_schema_privilege(current_schema(), 'CREATE')")[0]
        except pg.PgError as exc:
            return found, [_pg_problem(exc, server, user, database)]
        in_use = False
        if schema is not None and params.get("require_empty"):
            # A backend that ran here left rows in its documents table (crates/postgres/src/sql.rs:59).
            try:
                # Two statements: PostgreSQL resolves every table of a statement before it runs any of it.
                if conn.query("SELECT to_regclass('documents') IS NOT NULL")[0][0] == "t":
                    in_use = conn.query("SELECT EXISTS (SELECT 1 FROM documents)")[0][0] == "t"
            except pg.PgError as exc:
                return found, [_pg_problem(exc, server, user, database)]
    found.update(version=" ".join(version.split()[:2]), schema=schema)
    if in_use:
        return found, ["PostgreSQL %s, database %s already holds a Convex deployment's data (its documents table has "
                       "rows): the move imports the stack's data into an empty database. If an earlier move left it, "
                       "drop it (DROP DATABASE %s;) or rename it, then run again." % (server, database, pg.quote_ident(database))]
    # The backend creates its tables in the current schema on its first start (crates/postgres/src/lib.rs:287-320).
    if schema is None:
        return found, ["PostgreSQL %s, database %s: user %s has no current schema (search_path), where the backend "
                       "creates its tables." % (server, database, user)]
    if may_create != "t":
        return found, ["PostgreSQL %s, database %s: user %s may not create tables in schema %s, as the backend must "
                       "(GRANT CREATE ON SCHEMA %s TO %s; or make the user the database's owner)."
                       % (server, database, user, schema, pg.quote_ident(schema), pg.quote_ident(user))]
    return found, []


def _s3_code(body):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    start = text.find("<Code>")
    return text[start + 6:text.find("</Code>", start)] if start >= 0 else ""


def check_s3(params, nonce):
    """(what was found, problems) for the backend's S3 settings: every bucket there and writable."""
    s3 = params["s3"]
    buckets = s3.get("buckets") or {}
    client = S3(s3.get("endpoint_url"), s3.get("region") or "", s3.get("access_key_id") or "",
                s3.get("secret_access_key") or "", path_style=s3.get("force_path_style"),
                session_token=s3.get("session_token") or "", cafile=params.get("ca_file"), timeout=params["timeout"])
    found, problems = dict(endpoint=client.endpoint, buckets={}), []
    for use in S3_USES:
        bucket = buckets.get(use)
        if not bucket:
            # The image uses S3 only with all five (self-hosted/docker-build/run_backend.sh:34-51 at c51b14b).
            problems.append("owlat_convex_s3.buckets.%s is not set (the backend needs all five buckets)." % use)
            continue
        found["buckets"][use] = bucket
        key = "owlat-storage-check-%s" % nonce
        try:
            status, body = client.request("HEAD", bucket)
            if status == 200:
                status, body = client.request("PUT", bucket, key, b"owlat.selfhost storage check\n")
                what = "write an object to"
                if status == 200:
                    status, body = client.request("DELETE", bucket, key)
                    what = "remove an object from"
                    if status in (200, 204):
                        continue
            else:
                what = "find"
        except OSError as exc:
            problems.append("S3 %s does not answer: %s (owlat_convex_s3.endpoint_url)." % (client.endpoint, exc))
            break
        code = _s3_code(body)
        hint = {404: "create it", 403: "check owlat_convex_s3's keys and the user's rights on it",
                301: "check owlat_convex_s3.region and force_path_style"}.get(status, "see the S3 server's log")
        problems.append("S3 %s: cannot %s bucket %s (%s): HTTP %d%s; %s." % (
            client.endpoint, what, bucket, use, status, " " + code if code else "", hint))
    return found, problems


def set_aside_database(params, create):
    """Rename the stack's database to its name + params["set_aside"] and make an empty one of the stack's name (owned
    by the stack's user), both with the admin URL: where a rollback starts the older backend. Upstream runs migrations
    forward only and lets an older backend start on a newer database with a warning; its CLI says "the older backend
    may not be able to read data written by the newer one" (docs/upstream-external-storage.md §8). The migrated
    database is kept, renamed. (what was done, problems)."""
    user = _server(params["postgres_url"])[2]
    database = database_name(params["instance_name"])
    aside = database[:63 - len(params["set_aside"])] + params["set_aside"]  # PostgreSQL names: 63 bytes at most
    if not params["admin_url"]:
        return {}, ["a fresh database %s for the rollback needs owlat_convex_postgres_admin_url (the database stays as "
                    "the newer backend left it)." % database]
    if not create:
        return dict(database=database, aside="in a real run", created="in a real run"), []
    admin_host, admin_port, admin_user, dummy, admin_db = _server(params["admin_url"])
    admin_server = "%s:%s" % (admin_host, admin_port)
    done = dict(database=database, aside="", created=False)
    try:
        with _connect(params["admin_url"], admin_db or "postgres", params["require_tls"], params["timeout"]) as admin:
            try:
                admin.query("ALTER DATABASE %s RENAME TO %s" % (pg.quote_ident(database), pg.quote_ident(aside)))
                done["aside"] = aside
            except pg.PgError as exc:
                if exc.code != pg.INVALID_CATALOG_NAME:  # none to set aside: only the fresh one to make
                    raise
            admin.query("CREATE DATABASE %s OWNER %s" % (pg.quote_ident(database), pg.quote_ident(user)))
            done["created"] = True
    except pg.PgError as exc:
        if exc.code == pg.OBJECT_IN_USE:
            return done, ["PostgreSQL %s: database %s is still in use (%s): stop what uses it - a backend of the stack "
                          "on another host? - and run again." % (admin_server, database, exc)]
        return done, [_pg_problem(exc, admin_server, admin_user, database, "owlat_convex_postgres_admin_url")]
    return done, []


def check_storage(params, create, nonce):
    result = dict(changed=False, problems=[])
    if params.get("postgres_url") and params.get("set_aside"):
        result["fresh_database"], problems = set_aside_database(params, create)
        result["problems"] += problems
        result["changed"] = create and bool(result["fresh_database"].get("aside") or result["fresh_database"].get("created"))
        if problems:
            return result
    if params.get("postgres_url"):
        result["postgres"], problems = check_postgres(params, create)
        result["problems"] += problems
        result["changed"] = result["changed"] or result["postgres"]["created"] is True
    # The module fills in the suboptions' defaults: S3 is configured when any other value is set.
    if any(value for key, value in (params.get("s3") or {}).items() if key != "force_path_style"):
        result["s3"], problems = check_s3(params, nonce)
        result["problems"] += problems
    return result
