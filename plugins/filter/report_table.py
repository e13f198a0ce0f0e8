# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: report_table
short_description: Text lines of a fleet table from its rows
version_added: 0.3.0
description:
  - Renders rows (dicts) with a printf-style format, one C(%s) per column, for the playbooks' reports (the
    collection's tables are built by filters, not Jinja loops).
  - Each column is C([title, key, default]). A missing, null or empty value is the default; a fourth element C(or)
    replaces any false value (0 included) by it; a C(:N) suffix on the key keeps the first N characters.
options:
  _input:
    description: The rows.
    type: list
    elements: dict
    required: true
  fmt:
    description: The printf format of a line.
    type: str
    required: true
  columns:
    description: The columns, each C([title, key, default]) or C([title, key, default, 'or']).
    type: list
    elements: list
    required: true
  header:
    description: Print the titles as the first line.
    type: bool
    default: true
"""

EXAMPLES = r"""
lines: "{{ rows | owlat.selfhost.report_table('%-24s %s', [['HOST', 'host', '-'], ['RESULT', 'result', 'FAILED']]) }}"
"""

RETURN = r"""
_value:
  description: The lines, the titles first.
  type: list
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

report_table = deferred("_reports", "report_table")


class FilterModule:
    def filters(self):
        return {"report_table": report_table}
