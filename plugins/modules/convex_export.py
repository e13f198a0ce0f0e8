#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: convex_export
short_description: Take (or load back) a consistent snapshot export of a self-hosted Convex deployment
version_added: 0.1.0
description:
  - With O(state=exported), asks the backend for a snapshot export
    (C(POST /api/export/request/zip)), waits until it is completed (polling
    C(_system/cli/exports:getLatest)) and streams the zip into O(path) (mode C(0600)). The backend keeps
    serving while it exports, which makes this the hot backup of the Convex data.
  - An export that someone else started is waited for first, so the file is always at least as new as
    the call.
  - With O(state=imported), replaces every table with the documents of the zip at O(path), like
    C(convex import --replace-all).
  - An export holds the tables and, with O(include_storage), the file storage. It does NOT hold the
    deployed functions, the deployment environment variables or pending scheduled functions; back those
    up alongside (the backup role does).
author:
  - owlat.selfhost maintainers (@owlat)
options:
  url:
    description: Base URL of the backend API (port 3210), for example C(http://172.20.0.5:3210).
    type: str
    required: true
  admin_key:
    description: The deployment's admin key. One of O(admin_key) and O(admin_key_file) is required.
    type: str
  admin_key_file:
    description:
      - File on the managed host holding C(CONVEX_SELF_HOSTED_ADMIN_KEY=<key>) (written by
        M(owlat.selfhost.convex_admin_key)); the key then never travels through Ansible.
    type: path
  path:
    description: Where the zip is written (O(state=exported)) or read from (O(state=imported)).
    type: path
    required: true
  state:
    description: V(exported) takes a new export; V(imported) replaces all tables with the zip's content.
    type: str
    choices: [exported, imported]
    default: exported
  include_storage:
    description: Include the file storage in the export.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the export (or the import) to complete.
    type: int
    default: 600
attributes:
  check_mode:
    support: full
    description: Nothing is requested, written or imported; the module reports that it would (a missing file or
      directory is not an error then - an earlier task of the run may be what makes it).
  diff_mode:
    support: none
    description: A snapshot has no meaningful text diff.
  idempotent:
    support: none
    description: Every run takes a new export (or imports again); it always reports a change.
  platform:
    support: full
    platforms: posix
    description: Talks HTTP to the backend from the managed host; the zip is written there.
"""

EXAMPLES = r"""
- name: Hot backup of the Convex data
  owlat.selfhost.convex_export:
    url: http://172.20.0.5:3210
    admin_key_file: /etc/owlat/mystack/convex-admin-key.env
    path: /var/lib/owlat/backup/mystack/staging/convex-export.zip

- name: Load an export back (replaces every table)
  owlat.selfhost.convex_export:
    url: http://172.20.0.5:3210
    admin_key_file: /etc/owlat/mystack/convex-admin-key.env
    path: /var/lib/owlat/restore/convex-export.zip
    state: imported
"""

RETURN = r"""
start_ts:
  description: The export's timestamp (nanoseconds, as text), as in the backend's export list.
  returned: state=exported, not in check mode
  type: str
  sample: "1764120000000000000"
size:
  description: Size of the zip in bytes.
  returned: state=exported, not in check mode
  type: int
  sample: 52331
sha256:
  description: SHA-256 of the zip.
  returned: state=exported, not in check mode
  type: str
seconds:
  description: How long the export and the download took.
  returned: state=exported, not in check mode
  type: float
documents:
  description: Documents written by the import.
  returned: state=imported, not in check mode
  type: int
contents:
  description:
    - What the zip holds as a user sees it - the tables (system tables left out), their documents, the stored files -
      and one digest of all of it. An export taken after importing a zip has the same digest (documents keep their
      C(_id) and C(_creationTime), files their storage id), which is how a move checks its data.
  returned: state=exported, not in check mode
  type: dict
  sample: {tables: 3, documents: 1520, files: 12, sha256: 9f2c...}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ADMIN_KEY_RE, ConvexError
from ansible_collections.owlat.selfhost.plugins.module_utils._convex_export import export_contents, export_snapshot, import_snapshot
from ansible_collections.owlat.selfhost.plugins.module_utils._files import EnvFile, EnvFileError, read_text


class ConvexExport:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def admin_key(self):
        if self.params["admin_key"]:
            return self.params["admin_key"]
        path = self.params["admin_key_file"]
        try:
            key = EnvFile(read_text(path)).get("CONVEX_SELF_HOSTED_ADMIN_KEY")
        except EnvFileError as exc:
            self.module.fail_json(msg="%s: %s" % (path, exc))
        if not key or not ADMIN_KEY_RE.match(key):
            self.module.fail_json(msg="%s holds no CONVEX_SELF_HOSTED_ADMIN_KEY=<instance>|<hex> line" % path)
        return key

    def run(self):
        key = self.admin_key()
        path = self.params["path"]
        # In check mode the file or its directory may be what an earlier task of the same run would make.
        if self.module.check_mode:
            return dict(changed=True)
        if self.params["state"] == "imported" and not os.path.isfile(path):
            self.module.fail_json(msg="%s does not exist: nothing to import" % path)
        if self.params["state"] == "exported" and not os.path.isdir(os.path.dirname(path) or "."):
            self.module.fail_json(msg="directory of %s does not exist" % path)
        try:
            if self.params["state"] == "imported":
                return dict(changed=True, documents=import_snapshot(self.params["url"], key, path, self.params["timeout"]))
            result = export_snapshot(self.params["url"], key, path, self.params["include_storage"], self.params["timeout"])
            result["contents"] = export_contents(path)
        except ConvexError as exc:
            self.module.fail_json(msg=str(exc))
        return dict(changed=True, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            admin_key=dict(type="str", no_log=True),
            admin_key_file=dict(type="path"),
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["exported", "imported"], default="exported"),
            include_storage=dict(type="bool", default=True),
            timeout=dict(type="int", default=600),
        ),
        required_one_of=[("admin_key", "admin_key_file")],
        mutually_exclusive=[("admin_key", "admin_key_file")],
        supports_check_mode=True,
    )
    module.exit_json(**ConvexExport(module).run())


if __name__ == "__main__":
    main()
