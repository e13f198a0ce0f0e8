# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: dns_records
short_description: The DNS records an Owlat stack needs, each with its zone-file line
version_added: 0.3.0
description:
  - From one stack's settings, every record upstream Owlat (v0.4.4) asks for - A records of the app, API and actions
    hostnames; the EHLO name's A record and the PTR of each sending address (forward-confirmed, or the MTA
    quarantines the address); MX and SPF of the return-path domain; SPF and DMARC of the sending domain; the DKIM
    record, whose value the app gives when the domain is added.
  - docs/upstream-deliverability.md cites upstream for each; its code (A1, P1, ...) is in the record.
options:
  _input:
    description:
      - The stack - C(stack), C(app_hostname), C(api_hostname), C(actions_hostname), C(web_address) (the public
        address the host's Caddy answers on), C(email_domain), C(ehlo_hostname), C(return_path_domain),
        C(sending_addresses), C(spf_qualifier) (default C(~all)), C(dmarc_rua).
    type: dict
    required: true
"""

EXAMPLES = r"""
records: "{{ {'stack': 'acme', 'app_hostname': 'app.acme.example', 'api_hostname': 'api.acme.example',
              'actions_hostname': 'actions.acme.example', 'web_address': '203.0.113.10',
              'email_domain': 'acme.example', 'ehlo_hostname': 'mail.acme.example',
              'return_path_domain': 'bounces.acme.example', 'sending_addresses': ['203.0.113.11']}
            | owlat.selfhost.dns_records }}"
"""

RETURN = r"""
_value:
  description:
    - The records in publishing order, each C(name) (absolute), C(type), C(value) (null when the app gives it),
      C(ttl), C(code), C(why) and C(line) (zone-file syntax; a comment for a record the app gives).
  type: list
  elements: dict
"""


def dns_records(stack):
    # Imported when called (module_utils/_deferred.py says why).
    from ansible_collections.owlat.selfhost.plugins.module_utils._dns import records, zone_line
    return [dict(record, line=zone_line(record)) for record in records(stack)]


class FilterModule:
    def filters(self):
        return {"dns_records": dns_records}
