# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    # The options of the collection's filters that read the hosts of a run from hostvars.
    DOCUMENTATION = r"""
options:
  _input:
    description: C(hostvars).
    type: raw
    required: true
  hosts:
    description: The inventory names, in order.
    type: list
    elements: str
    required: true
"""
