# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: daemon_json_stale
short_description: Whether M(owlat.selfhost.docker_daemon_config) would change daemon.json, from a state read earlier
version_added: 0.2.0
description:
  - Merges O(_input) into daemon.json as the docker role's local fact read it, with the module's own merge, and
    says whether that changes anything; so that a no-op run does not run the module.
  - Stale when the fact could not read the file (none, for a missing fact or an unreadable or invalid file; the module then
    says what is wrong).
options:
  _input:
    description: The settings the module would merge (a null value removes a key).
    type: dict
    required: true
  current:
    description: daemon.json as a mapping, as the local fact read it (an absent file is an empty mapping).
    type: dict
    required: true
"""

EXAMPLES = r"""
when: owlat_docker_daemon_settings | owlat.selfhost.daemon_json_stale(ansible_local['owlat-docker'].daemon_json)
"""

RETURN = r"""
_value:
  description: True when docker_daemon_config must run.
  type: bool
"""

import json


def _plain(value):
    # Templating may hand over its own mapping/string types: compare plain JSON data.
    return json.loads(json.dumps(value))


def daemon_json_stale(settings, current):
    # Imported when called (module_utils/_deferred.py says why).
    from ansible_collections.owlat.selfhost.plugins.module_utils._daemon_json import merge
    if not isinstance(current, dict):
        return True
    current = _plain(current)
    return merge(current, _plain(settings or {})) != current


class FilterModule:
    def filters(self):
        return {"daemon_json_stale": daemon_json_stale}
