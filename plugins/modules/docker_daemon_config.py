#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into Docker's daemon.json, keeping everything else
version_added: 0.1.0
description:
  - Reads the daemon configuration file, merges the given settings into it and writes it back only
    when the result differs. Keys set by the operator or by other tools are kept.
  - Nested objects (for example C(log-opts)) merge key by key; other values, lists included, replace
    the current value. A null value removes the key.
  - An existing file that is not valid JSON is never overwritten; the module fails and says why.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  path:
    description: Path of the daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description: Keys to set. Values are written as given (strings, numbers, booleans, lists, objects).
    type: dict
    required: true
  remove:
    description: Top-level keys to remove if present.
    type: list
    elements: str
    default: []
  backup:
    description: Keep a timestamped copy of the previous file when it changes.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the file before and after the merge.
  idempotent:
    support: full
    description: The file is written only when the merged configuration differs from the current one.
notes:
  - The Docker daemon is not restarted; notify a handler on C(changed).
"""

EXAMPLES = r"""
- name: Log rotation and live-restore, keeping the operator's other keys
  owlat.selfhost.docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts:
        max-size: 10m
        max-file: "3"
      live-restore: true
  notify: Restart docker

- name: Drop a key this play used to manage
  owlat.selfhost.docker_daemon_config:
    settings: {}
    remove:
      - registry-mirrors
"""

RETURN = r"""
config:
  description: The effective configuration after the merge.
  returned: always
  type: dict
  sample: {"live-restore": true, "log-driver": "json-file"}
changed_keys:
  description: Top-level keys whose value was added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: ["live-restore"]
backup_file:
  description: Copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and backup requested
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._daemon_json import (
    DaemonJsonError,
    merge,
    parse,
    render,
)


class DaemonConfig:
    def __init__(self, module):
        self.module = module
        self.path = module.params["path"]

    def read(self):
        if not os.path.exists(self.path):
            return None
        with open(self.path, "r", encoding="utf-8") as fh:
            return fh.read()

    def run(self):
        before_text = self.read()
        try:
            before = parse(before_text)
        except DaemonJsonError as exc:
            self.module.fail_json(msg="%s %s" % (self.path, exc))
        after = merge(before, self.module.params["settings"], self.module.params["remove"])
        changed_keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        # Compared as data, not text: an operator's formatting is kept when nothing changes.
        changed = bool(changed_keys)
        result = dict(changed=changed, config=after, changed_keys=changed_keys)
        if self.module._diff:
            result["diff"] = dict(
                before=render(before) if before_text is not None else "",
                after=render(after),
                before_header=self.path,
                after_header=self.path,
            )
        if changed and not self.module.check_mode:
            if self.module.params["backup"] and before_text is not None:
                result["backup_file"] = self.module.backup_local(self.path)
            self.write(render(after))
        return result

    def write(self, text):
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        tmp = os.path.join(directory, ".daemon.json.%d.tmp" % os.getpid())
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        self.module.atomic_move(tmp, self.path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", required=True),
            remove=dict(type="list", elements="str", default=[]),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**DaemonConfig(module).run())


if __name__ == "__main__":
    main()
