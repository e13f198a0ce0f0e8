#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_storage_check
short_description: Check a Convex backend's external storage from the host that will run it
version_added: 0.1.0
description:
  - Before a stack's Convex backend is started on external storage, checks from the managed host what the backend
    will need, and says what is wrong in terms of the stack's settings (never a password or key).
  - B(PostgreSQL) (O(postgres_url), the backend's C(POSTGRES_URL)) - the server answers; TLS is offered (the backend
    asks for C(sslmode=require) unless C(DO_NOT_REQUIRE_SSL) is set); the password is accepted; the stack's database
    (the instance name with C(-) as C(_)) exists, or is created with O(admin_url) when that is given; and the stack's
    user may create tables in the database's current schema (the backend creates its tables there on its first start).
  - B(S3) (O(s3)) - each of the five buckets exists and an object can be written to it and removed.
  - A MySQL URL is not checked (the backend reports its own errors at start).
  - Upstream facts (get-convex/convex-backend c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef) are cited in the
    collection's docs/upstream-external-storage.md.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  postgres_url:
    description:
      - The backend's C(POSTGRES_URL) - C(postgres[ql]://user:password@host[:port]), without a database.
      - Empty - no PostgreSQL check.
    type: str
    default: ""
  instance_name:
    description: The backend's instance name; empty is upstream's C(convex-self-hosted). Names the database.
    type: str
    default: ""
  require_tls:
    description:
      - Refuse a server that does not offer TLS (the backend's own default). V(false) (C(DO_NOT_REQUIRE_SSL)) - TLS
        when offered, plain otherwise, as the backend then does.
    type: bool
    default: true
  admin_url:
    description:
      - C(postgres[ql]://user:password@host[:port][/database]) of a user that may create databases (default database
        C(postgres)). When the stack's database is missing it is created, owned by the user of O(postgres_url).
    type: str
    default: ""
  s3:
    description:
      - The backend's S3 settings; empty - no S3 check.
    type: dict
    default: {}
    suboptions:
      region:
        description: C(AWS_REGION).
        type: str
      endpoint_url:
        description: C(S3_ENDPOINT_URL); empty - AWS itself.
        type: str
        default: ""
      access_key_id:
        description: C(AWS_ACCESS_KEY_ID).
        type: str
      secret_access_key:
        description: C(AWS_SECRET_ACCESS_KEY).
        type: str
      session_token:
        description: C(AWS_SESSION_TOKEN).
        type: str
        default: ""
      force_path_style:
        description: C(AWS_S3_FORCE_PATH_STYLE) - bucket in the path, not in the host name.
        type: bool
        default: false
      buckets:
        description: Bucket per use - C(exports), C(snapshot_imports), C(modules), C(files), C(search).
        type: dict
  set_aside:
    description:
      - A rollback's fresh database - before the check, the stack's database is renamed to its name with this suffix
        (kept, never dropped) and an empty one of the stack's name is created, owned by the user of O(postgres_url),
        both with O(admin_url) (required then). The older backend of a rollback then starts on the empty one and the
        snapshot is imported into it. Nothing to rename - only the empty one is created.
      - Empty - nothing renamed.
    type: str
    default: ""
  require_empty:
    description:
      - The stack's data is about to be imported into the database (a move of its storage) - a database in which a
        Convex backend has already run (its C(documents) table has rows) is a problem, never overwritten.
    type: bool
    default: false
  ca_file:
    description: A CA bundle on the host that verifies the S3 endpoint's certificate, instead of the system's.
    type: path
  timeout:
    description: Seconds for each connection.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Checks as usual; a missing database is reported as to be created, not created; O(set_aside) renames
      and creates nothing.
  diff_mode:
    support: none
    description: Nothing to show.
  idempotent:
    support: partial
    description: Creates the database once; the check objects written to the buckets are removed again. O(set_aside)
      is not idempotent - each run with it sets the database aside again (use a new suffix each time).
"""

EXAMPLES = r"""
- name: External storage answers as the backend needs it
  owlat.selfhost.owlat_storage_check:
    postgres_url: "{{ owlat_convex_postgres_url }}"
    instance_name: acme
    admin_url: "{{ vault_postgres_admin_url | default('') }}"
    s3: "{{ owlat_convex_s3 }}"
  no_log: true
"""

RETURN = r"""
postgres:
  description: What the PostgreSQL check found (no credentials).
  returned: when O(postgres_url) is set
  type: dict
  sample: {server: "pg.example.com:5432", database: acme, tls: true, version: "PostgreSQL 17.6", created: false,
           schema: public}
s3:
  description: The buckets checked per use (no credentials).
  returned: when O(s3) is set
  type: dict
  sample: {endpoint: "https://s3.example.com", buckets: {files: acme-files, exports: acme-exports}}
fresh_database:
  description: What O(set_aside) did - the stack's database, the name it was set aside as (empty - there was none),
    whether the empty one was created (V(in a real run) in check mode).
  returned: when O(set_aside) is set
  type: dict
  sample: {database: acme, aside: acme_pre_rollback_20261207181500, created: true}
problems:
  description: One sentence per problem; the module fails when there is one.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._storage import check_storage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            postgres_url=dict(type="str", default="", no_log=True),
            instance_name=dict(type="str", default=""),
            require_tls=dict(type="bool", default=True),
            admin_url=dict(type="str", default="", no_log=True),
            s3=dict(type="dict", default={}, options=dict(
                region=dict(type="str"),
                endpoint_url=dict(type="str", default=""),
                access_key_id=dict(type="str", no_log=True),
                secret_access_key=dict(type="str", no_log=True),
                session_token=dict(type="str", default="", no_log=True),
                force_path_style=dict(type="bool", default=False),
                buckets=dict(type="dict"),
            )),
            set_aside=dict(type="str", default=""),
            require_empty=dict(type="bool", default=False),
            ca_file=dict(type="path"),
            timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    result = check_storage(module.params, create=not module.check_mode, nonce=os.urandom(6).hex())
    if result["problems"]:
        module.fail_json(msg="external storage: " + " ".join(result["problems"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
