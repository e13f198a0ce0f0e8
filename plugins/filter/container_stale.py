# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: container_stale
short_description: Whether a stack container must go through docker_container again (compare-then-act)
version_added: 0.1.0
description:
  - The roles run M(community.docker.docker_container) only for a container this filter calls stale, so that a
    no-op run costs one read of the stack (M(owlat.selfhost.owlat_containers)) instead of one module run per container.
  - Stale when O(force) is set; when the definition hash applied last (the deploy record's C(applied)) differs from
    O(definition_hash); when the container should run but is missing, stopped, on an image its tag no longer names,
    or off the stack network (not C(settled)); or when it should be absent but exists.
options:
  _input:
    description: The service name, the container name without C(<stack>-).
    type: str
    required: true
  definition_hash:
    description: Digest of the container's rendered definition and of the container task (M(owlat.selfhost.container_digests)).
    type: str
    required: true
  probe:
    description: The registered result of M(owlat.selfhost.owlat_containers).
    type: dict
    required: true
  applied:
    description: Service name to the definition hash applied last.
    type: dict
    required: true
  force:
    description: Always stale (C(owlat_stack_compare_containers)).
    type: bool
    default: false
  present:
    description: Whether the container should exist and run (false for a disabled service).
    type: bool
    default: true
"""

EXAMPLES = r"""
when: "'convex' | owlat.selfhost.container_stale(_owlat_stack_container_digests.convex, owlat_stack_probe, owlat_stack_applied)"
"""

RETURN = r"""
_value:
  description: True when docker_container must run for this container.
  type: bool
"""


def container_stale(name, definition_hash, probe, applied, force=False, present=True):
    if force or (applied or {}).get(name) != definition_hash:
        return True
    seen = ((probe or {}).get("containers") or {}).get(name)
    if present:
        return not (seen or {}).get("settled", False)
    return seen is not None


class FilterModule:
    def filters(self):
        return {"container_stale": container_stale}
