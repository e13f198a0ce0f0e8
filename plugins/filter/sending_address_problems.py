# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: sending_address_problems
short_description: What is wrong with a stack's sending addresses
version_added: 0.3.0
description:
  - Upstream's rules for the MTA's pool addresses (bare IP addresses, not loopback or unspecified, an IPv4 address
    in a pool that holds IPv6), and where they must be - on the host, or, behind a declared NAT, not on the host
    (there they are the private side, left at the default). The EHLO name per address must name a sending address
    and be a fully qualified name.
  - One sentence per problem, naming the setting, the bad value and what to do.
options:
  _input:
    description:
      - The stack - C(sending_addresses), C(behind_nat), C(public_address), C(ehlo_hostnames) (address to name),
        C(fqdn_re) (the hostname pattern).
    type: dict
    required: true
  host_addresses:
    description: Every address of the host (its IPv4 and IPv6 addresses).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
problems: "{{ {'sending_addresses': ['203.0.113.11'], 'behind_nat': false}
              | owlat.selfhost.sending_address_problems(ansible_facts.all_ipv4_addresses) }}"
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the addresses are fine.
  type: list
  elements: str
"""

from ansible_collections.owlat.selfhost.plugins.module_utils._deferred import deferred

sending_problems = deferred("_dns", "sending_problems")


class FilterModule:
    def filters(self):
        return {"sending_address_problems": sending_problems}
