# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: converged_lines
short_description: site.yml's fast path, a line per host
version_added: 0.5.0
extends_documentation_fragment: [owlat.selfhost.hostvars_filter]
description:
  - "For each host, from its C(_owlat_converged) result (M(owlat.selfhost.owlat_converged)): C(<host>: as its run of
    <time> left it, nothing to do), or C(<host>: full run: <reasons>) (the check's message when it failed)."
"""

EXAMPLES = r"""
msg: "{{ hostvars | owlat.selfhost.converged_lines(ansible_play_hosts) | join('\n') }}"
"""

RETURN = r"""
_value:
  description: One line per host, in the order of the hosts.
  type: list
  elements: str
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

converged_lines = deferred("_reports", "converged_lines")


class FilterModule:
    def filters(self):
        return {"converged_lines": converged_lines}
