# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: convex_database
short_description: The database a stack's Convex backend uses
version_added: 0.3.0
description:
  - Upstream's rule - on a Postgres or MySQL server the database is the instance name with C(-) replaced by C(_);
    the instance name defaults to C(convex-self-hosted).
  - Returns C(postgres://host:port/database) or C(mysql://host:port/database), never the credentials of the URL;
    an empty string when the backend keeps SQLite in its volume.
options:
  _input:
    description: O(owlat_convex_postgres_url) (empty when none).
    type: str
    required: true
  mysql_url:
    description: O(owlat_convex_mysql_url) (empty when none).
    type: str
    default: ""
  instance_name:
    description: The backend's instance name; empty means upstream's default.
    type: str
    default: ""
"""

EXAMPLES = r"""
database: "{{ owlat_convex_postgres_url | owlat.selfhost.convex_database(owlat_convex_mysql_url, owlat_convex_instance_name) }}"
"""

RETURN = r"""
_value:
  description: The server and database, or an empty string for SQLite.
  type: str
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

database_of = deferred("_storage", "database_of")


class FilterModule:
    def filters(self):
        return {"convex_database": database_of}
