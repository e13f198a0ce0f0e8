# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: stack_summary_rows
short_description: site.yml's summary, a row per stack of the run
version_added: 0.3.0
extends_documentation_fragment: [owlat.selfhost.hostvars_filter]
description:
  - One row per stack (a one-stack host, or C(<stack>@<host>) of a host with several) - host, stack, release,
    url, services - from what the roles measured (C(owlat_convex_health), C(owlat_app_health), C(owlat_proxy_health);
    for a stack of a host with several, its C(<stack>/) checks in the host's Caddy call). A stack without
    results is told as removed, check mode, or not deployed.
  - A stack of a host that site.yml's fast path found as its last complete run left it (C(_owlat_converged), see
    M(owlat.selfhost.owlat_converged)) shows the recorded release and URL and how many of its containers run.
"""

EXAMPLES = r"""
rows: "{{ hostvars | owlat.selfhost.stack_summary_rows(groups._owlat_stacks) }}"
"""

RETURN = r"""
_value:
  description: One dict per stack.
  type: list
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

stack_summary_rows = deferred("_reports", "stack_summary_rows")


class FilterModule:
    def filters(self):
        return {"stack_summary_rows": stack_summary_rows}
