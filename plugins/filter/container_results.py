# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: container_results
short_description: What one docker_container loop did per container, without its inspect data
version_added: 0.1.0
description:
  - From the registered result of a M(community.docker.docker_container) loop over container keys, per key
    whether it C(changed) or was C(skipped) and its address on the stack network (from the run, or from the
    probe for a container left alone). The inspect data is dropped because it holds the container's environment.
options:
  _input:
    description: The registered loop result (its C(results), each with C(item) the container key).
    type: dict
    required: true
  probe:
    description: The stack state read (M(owlat.selfhost.owlat_stack_state)), for the address of a skipped container.
    type: dict
    required: true
  field:
    description: Return only this field, for the keys that have a value (C(ip) gives key to address).
    type: str
"""

EXAMPLES = r"""
owlat_stack_container_ips: "{{ _run | owlat.selfhost.container_results(owlat_stack_probe, 'ip') }}"
"""

RETURN = r"""
_value:
  description: Container key to C(changed), C(skipped) and C(ip), or key to the one O(field).
  type: dict
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

results = deferred("_container_defs", "results")


class FilterModule:
    def filters(self):
        return {"container_results": results}
