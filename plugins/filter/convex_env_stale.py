# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: convex_env_stale
short_description: Whether M(owlat.selfhost.convex_env) would change something, from a state read earlier
version_added: 0.2.0
description:
  - Plans the deployment environment exactly as M(owlat.selfhost.convex_env) does (the same code), against the
    environment and managed names M(owlat.selfhost.owlat_stack_state) read, so that the module runs only when a
    variable must be set or removed or its record of managed names must be written.
  - Stale when the state could not be read (no environment, no managed names).
options:
  _input:
    description: The desired environment, name to value (None to make sure a name is absent).
    type: dict
    required: true
  state:
    description: RV(owlat.selfhost.owlat_stack_state#module:convex).
    type: dict
    required: true
  prune:
    description: As M(owlat.selfhost.convex_env)'s O(owlat.selfhost.convex_env#module:prune).
    type: bool
    default: true
"""

EXAMPLES = r"""
when: owlat_convex_deployment_env | owlat.selfhost.convex_env_stale(state.convex)
"""

RETURN = r"""
_value:
  description: True when convex_env must run.
  type: bool
"""


def convex_env_stale(desired, state, prune=True):
    # Imported when called (module_utils/_deferred.py says why).
    from ansible_collections.owlat.selfhost.plugins.module_utils._convex import normalize_value, plan_env
    state = state or {}
    current, managed = state.get("env"), state.get("managed")
    if not isinstance(current, dict) or managed is None:
        return True
    try:
        wanted = dict((name, normalize_value(value)) for name, value in (desired or {}).items())
    except TypeError:
        return True  # the module says what is wrong with the value
    plan = plan_env(current, wanted, managed, prune)
    return bool(plan.needed) or sorted(set(managed)) != plan.managed


class FilterModule:
    def filters(self):
        return {"convex_env_stale": convex_env_stale}
