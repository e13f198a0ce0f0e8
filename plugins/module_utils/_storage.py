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

from urllib.parse import urlsplit

UPSTREAM_INSTANCE_NAME = "convex-self-hosted"
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}


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
    return "%s://%s:%s/%s" % (kind, host, port, (instance_name or UPSTREAM_INSTANCE_NAME).replace("-", "_"))


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
