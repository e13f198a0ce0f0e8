# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mail_check_rows
short_description: The deliverability checks of a fleet, as rows for the table and the JSON
version_added: 0.3.0
description:
  - Orders the results of M(owlat.selfhost.owlat_mail_check) by host and stack (each stack's checks in their
    order) and adds to each C(detail) (what was found, then the fix) and C(summary) (one line naming the stack,
    its host, the check and the record).
options:
  _input:
    description: The C(checks) of every host's M(owlat.selfhost.owlat_mail_check) run.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
lines: "{{ checks | owlat.selfhost.mail_check_rows | owlat.selfhost.report_table('%-4s %s', [['', 'status', '-'], ['NAME', 'name', '-']]) }}"
"""

RETURN = r"""
_value:
  description: The results, ordered, each with C(detail) and C(summary) added.
  type: list
  elements: dict
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

rows = deferred("_mailcheck", "rows")


class FilterModule:
    def filters(self):
        return {"mail_check_rows": rows}
