# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: container_digests
short_description: Digest of each rendered container definition (compare-then-act)
version_added: 0.1.0
description:
  - For each key of a stack's container definitions (rendered M(community.docker.docker_container) options), the
    sha256 of the container task's text and the definition as canonical JSON. The deploy record keeps the digest
    applied last; M(owlat.selfhost.container_stale) compares with it. Every option that renders differently
    changes the digest, so no list of inputs is kept by hand.
options:
  _input:
    description: Container key to its rendered docker_container options.
    type: dict
    required: true
  task_text:
    description: The text of the task file that applies the definitions (a change to it is a change too).
    type: str
    default: ""
"""

EXAMPLES = r"""
_owlat_stack_container_digests: >-
  {{ owlat_stack_container_definitions
     | owlat.selfhost.container_digests(lookup('ansible.builtin.file', role_path ~ '/tasks/containers.yml')) }}
"""

RETURN = r"""
_value:
  description: Container key to a 64-character hex digest.
  type: dict
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

digests = deferred("_container_defs", "digests")


class FilterModule:
    def filters(self):
        return {"container_digests": digests}
