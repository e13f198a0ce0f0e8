# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: stack_members
short_description: The names of a stack's containers in a container list, by label
version_added: 0.2.0
description:
  - From the containers of M(community.docker.docker_host_info) (with O(community.docker.docker_host_info#module:verbose_output),
    so that each carries its C(Labels)), the names of those that belong to the stack.
  - Identity is the C(owlat.stack) label. A container without it (made before the roles labelled them) belongs to
    the stack only under the exact name C(<stack>-<key>) of a container the stack's description names, never by a
    name prefix, so stack C(acme) does not own C(acme-eu-web).
options:
  _input:
    description: RV(community.docker.docker_host_info#module:containers).
    type: list
    elements: dict
    required: true
  stack:
    description: The stack name.
    type: str
    required: true
  services:
    description: The container keys of the stack's description; default those every stack has had before the labels.
    type: list
    elements: str
"""

EXAMPLES = r"""
stopped: "{{ host_info.containers | owlat.selfhost.stack_members('acme') }}"
"""

RETURN = r"""
_value:
  description: Container names without the leading slash, sorted.
  type: list
  elements: str
"""


def stack_members(containers, stack, services=None):
    # Imported when called (module_utils/_deferred.py says why).
    from ansible_collections.owlat.selfhost.plugins.module_utils._status import stack_member
    return sorted(set(filter(None, (stack_member(item, stack, services) for item in containers or []))))


class FilterModule:
    def filters(self):
        return {"stack_members": stack_members}
