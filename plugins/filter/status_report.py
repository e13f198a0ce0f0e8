# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: status_report
short_description: status.yml's report from the hosts' owlat_status results
version_added: 0.3.0
extends_documentation_fragment: [owlat.selfhost.hostvars_filter]
description:
  - "The rows of every stack of every host (a host without a result gets one row saying so), the problems
    (C(<host>: <problem>)) and the per-host detail (stacks, disks, docker, problems)."
options:
  generated_at:
    description: The report's timestamp.
    type: str
    required: true
"""

EXAMPLES = r"""
report: "{{ hostvars | owlat.selfhost.status_report(ansible_play_hosts_all, now(utc=true).isoformat()) }}"
"""

RETURN = r"""
_value:
  description: C(generated_at), C(rows), C(problems), C(hosts).
  type: dict
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

status_report = deferred("_reports", "status_report")


class FilterModule:
    def filters(self):
        return {"status_report": status_report}
