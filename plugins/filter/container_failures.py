# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: container_failures
short_description: Which container failed and why, with every secret value removed
version_added: 0.1.0
description:
  - The container task hides its result (C(no_log), the environment holds secrets), so Ansible alone would only
    say it was censored. This filter turns the failed result into one sentence per failed container - its name,
    the error with every secret value replaced by C(<redacted>), and where to look next.
  - Removed are the stack's secrets and the values of environment variables whose names say they are secret
    (C(SECRET), C(PASSWORD), C(TOKEN), C(KEY), C(CREDENTIAL), or ending in C(_URL)).
options:
  _input:
    description: C(ansible_failed_result) of the container loop.
    type: dict
    required: true
  definitions:
    description: Container key to its rendered docker_container options.
    type: dict
    required: true
  secrets:
    description: The stack's secrets (C(owlat_stack_secret)).
    type: dict
    required: true
"""

EXAMPLES = r"""
msg: "{{ ansible_failed_result | owlat.selfhost.container_failures(owlat_stack_container_definitions, owlat_stack_secret) }}"
"""

RETURN = r"""
_value:
  description: One sentence per failed container.
  type: str
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

failures = deferred("_container_defs", "failures")


class FilterModule:
    def filters(self):
        return {"container_failures": failures}
