# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: files_stale
short_description: Whether M(owlat.selfhost.owlat_files) would change something, from a state read earlier
version_added: 0.2.0
description:
  - Compares the O(_input) that a task would pass to M(owlat.selfhost.owlat_files) with the files as
    M(owlat.selfhost.owlat_stack_state) read them, so that the task runs only when something differs (a no-op costs
    no module run for the files).
  - Stale when a directory or file is missing or of another kind, its mode differs, its owner or group differs
    (when the spec names one), a file's content differs (SHA-256), a file is given by C(src) (only the host can
    compare it), or a path was not read at all.
options:
  _input:
    description: The options of M(owlat.selfhost.owlat_files), C(directories) and C(files).
    type: dict
    required: true
  state:
    description: RV(owlat.selfhost.owlat_stack_state#module:files).
    type: dict
    required: true
"""

EXAMPLES = r"""
when: "{'files': [{'path': '/etc/owlat/acme/redis.conf', 'content': conf, 'mode': '0600'}]} | owlat.selfhost.files_stale(state.files)"
"""

RETURN = r"""
_value:
  description: True when owlat_files must run.
  type: bool
"""

import hashlib


def _ids_differ(item, seen):
    for key, ident in (("owner", "uid"), ("group", "gid")):
        want = item.get(key)
        if want is None:
            continue
        want = str(want)
        if want.isdigit():
            if int(want) != seen.get(ident):
                return True
        elif want != seen.get(key):
            return True
    return False


def _mode_differs(item, seen, default):
    return int(str(item.get("mode") or default), 8) != int(seen.get("mode") or "0", 8)


def files_stale(spec, state):
    state = state or {}
    for item in spec.get("directories") or []:
        seen = state.get(item["path"])
        if not seen or seen.get("kind") != "directory" or _mode_differs(item, seen, "0755") or _ids_differ(item, seen):
            return True
    for item in spec.get("files") or []:
        seen = state.get(item["path"])
        if not seen or seen.get("kind") != "file" or _mode_differs(item, seen, "0644") or _ids_differ(item, seen):
            return True
        text = item.get("content")
        if text is None:
            text = item.get("secret_content")
        if text is None:  # src: only the host can compare it
            return True
        if hashlib.sha256(str(text).encode("utf-8")).hexdigest() != seen.get("sha256"):
            return True
    return False


class FilterModule:
    def filters(self):
        return {"files_stale": files_stale}
