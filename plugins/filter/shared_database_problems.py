# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: shared_database_problems
short_description: Stacks of the fleet that would share one Convex database
version_added: 0.3.0
description:
  - Upstream's backends hold a lease on their database; of two on one database the newer takes over and the older
    stops. One sentence per database claimed by more than one stack, naming the stacks and the fix.
options:
  _input:
    description: One claim per stack - C(database) (as P(owlat.selfhost.convex_database#filter) returns it; empty is
      ignored) and C(where) (C(stack X on host Y)).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
problems: "{{ [{'database': 'postgres://pg:5432/acme', 'where': 'stack acme on mail1'}] | owlat.selfhost.shared_database_problems }}"
"""

RETURN = r"""
_value:
  description: One sentence per shared database; empty when every database has one stack.
  type: list
  elements: str
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

shared_database_problems = deferred("_storage", "shared_database_problems")


class FilterModule:
    def filters(self):
        return {"shared_database_problems": shared_database_problems}
