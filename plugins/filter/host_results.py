# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: host_results
short_description: One fact of each host as the rows of a table
version_added: 0.3.0
extends_documentation_fragment: [owlat.selfhost.hostvars_filter]
description:
  - For each host in order, its fact (a dict; an empty one where the host has none, such as a failed host), with
    the host's name under C(host).
options:
  fact:
    description: The name of the fact.
    type: str
    required: true
  with_host:
    description: Add the host's name to each row under C(host).
    type: bool
    default: true
"""

EXAMPLES = r"""
rows: "{{ hostvars | owlat.selfhost.host_results(ansible_play_hosts_all, 'owlat_backup_last') }}"
"""

RETURN = r"""
_value:
  description: One dict per host.
  type: list
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

host_results = deferred("_reports", "host_results")


class FilterModule:
    def filters(self):
        return {"host_results": host_results}
