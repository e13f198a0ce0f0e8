#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_mail_check
short_description: Check the DNS records and port 25 of Owlat stacks as the world sees them
version_added: 0.3.0
description:
  - For each stack in O(stacks), checks every record of its list (the filter P(owlat.selfhost.dns_records#filter))
    against DNS, through the host's resolver (the one its MTA uses) or O(nameservers). A and AAAA records are
    present, missing or different. For each sending address, checks the PTR and its forward confirmation to the
    EHLO name, as upstream's MTA does before it sends (it quarantines an address that fails). Also checks that
    the MX of the return-path domain names the MTA, that SPF of the sending and return-path domains passes every
    sending address within 10 DNS lookups, and that DMARC is present. The DKIM record, whose selector the app
    chooses, is listed as not checked.
  - Also checks outbound TCP port 25 to O(outbound_target), from the stack's sending address where it is one of
    the host's.
  - For each stack in O(probes), connects from this host, as a sender's server would, to the MX of the stack's
    return-path domain on port 25, and expects a 220 banner, EHLO, STARTTLS and a TLS handshake.
  - Changes nothing. One result per check, with V(OK), V(WARN), V(FAIL) or V(SKIP) and, when not V(OK), the fix.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  stacks:
    description: The stacks whose DNS and outbound port 25 are checked from this host.
    type: list
    elements: dict
    default: []
    suboptions:
      stack:
        description: The stack's name.
        type: str
        required: true
      host:
        description: The host the stack runs on (for the results).
        type: str
        required: true
      records:
        description: Its records, as the filter P(owlat.selfhost.dns_records#filter) gives them.
        type: list
        elements: dict
        required: true
      source:
        description: An address of this host to send the outbound probe from (the stack's sending address).
        type: str
  probes:
    description: The stacks whose port 25 is probed from this host (stacks of another host).
    type: list
    elements: dict
    default: []
    suboptions:
      stack:
        description: The stack's name.
        type: str
        required: true
      host:
        description: The host the stack runs on.
        type: str
        required: true
      domain:
        description: Its return-path domain, whose MX is connected to.
        type: str
        required: true
      ehlo:
        description: The name its MTA should greet with.
        type: str
  outbound_target:
    description:
      - Where the outbound port 25 probe connects, C(host[:port]), or C(mx:<domain>) for the first MX of a domain
        (upstream's MTA probes the MX of gmail.com). Empty skips the probe.
    type: str
    default: mx:gmail.com
  nameservers:
    description: Resolvers to ask (C(address) or C(address:port)). Default - those of C(/etc/resolv.conf).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each DNS answer and each TCP connection.
    type: float
    default: 5
  checker:
    description: The name of this host, for the results.
    type: str
    default: ""
extends_documentation_fragment:
  - owlat.selfhost.attributes.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Any host with Python; only the standard library is used (its own DNS stub resolver, smtplib, ssl).
"""

EXAMPLES = r"""
- name: Check a stack's records and port 25
  owlat.selfhost.owlat_mail_check:
    stacks:
      - stack: acme
        host: mx1
        records: "{{ owlat_stack_dns.records }}"
        source: 203.0.113.11
    probes:
      - stack: shop
        host: mx2
        domain: bounces.shop.example
        ehlo: mail.shop.example
  register: checks
"""

RETURN = r"""
checks:
  description:
    - One result per check - C(stack), C(host) (where the stack runs), C(from) (where the check ran), C(status)
      (V(OK), V(WARN), V(FAIL), V(SKIP)), C(code) (the record's code in docs/upstream-deliverability.md, or
      C(smtp-in), C(smtp-out)), C(check), C(name), C(expected), C(found) and C(fix).
  returned: always
  type: list
  elements: dict
seconds:
  description: How long the checks took.
  returned: always
  type: float
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils import _mailcheck
from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Resolver


def run(params, resolver):
    def stack_checks(stack):
        found = _mailcheck.check_stack_dns(resolver, stack)
        if params["outbound_target"]:
            found.append(_mailcheck.outbound_probe(resolver, params["outbound_target"], params["timeout"],
                                                   stack.get("source")))
        return [dict(item, stack=stack["stack"], host=stack["host"]) for item in found]

    def probe_checks(probe):
        found = _mailcheck.smtp_probe(resolver, probe["domain"], probe.get("ehlo"), params["timeout"])
        return [dict(item, stack=probe["stack"], host=probe["host"]) for item in found]

    jobs = [(stack_checks, s) for s in params["stacks"]] + [(probe_checks, p) for p in params["probes"]]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(jobs)))) as pool:
        results = list(pool.map(lambda job: job[0](job[1]), jobs))
    return [dict(item, **{"from": params["checker"]}) for items in results for item in items]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stacks=dict(type="list", elements="dict", default=[], options=dict(
                stack=dict(type="str", required=True),
                host=dict(type="str", required=True),
                records=dict(type="list", elements="dict", required=True),
                source=dict(type="str"),
            )),
            probes=dict(type="list", elements="dict", default=[], options=dict(
                stack=dict(type="str", required=True),
                host=dict(type="str", required=True),
                domain=dict(type="str", required=True),
                ehlo=dict(type="str"),
            )),
            outbound_target=dict(type="str", default="mx:gmail.com"),
            nameservers=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=5),
            checker=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    started = time.time()
    resolver = Resolver(module.params["nameservers"] or None, timeout=module.params["timeout"])
    checks = run(module.params, resolver)
    module.exit_json(changed=False, checks=checks, seconds=round(time.time() - started, 1))


if __name__ == "__main__":
    main()
