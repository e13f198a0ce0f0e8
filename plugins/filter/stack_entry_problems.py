# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: stack_entry_problems
short_description: What is wrong with a host's list of stacks (owlat_stacks)
version_added: 0.3.0
description:
  - Checks the shape of C(owlat_stacks), the list of stacks one host runs, before any entry becomes a stack of
    the run. Each entry is a dict of the stack's own settings (C(owlat_stack_*), C(owlat_convex_*), C(owlat_app_*),
    the per-site C(owlat_proxy_*)); the host's other settings apply to every entry.
  - One sentence per problem, naming the host, the entry, the setting, the bad value and what to do. Values are
    printed only for the settings checked here (names, C(owlat_stack_present), SMTP and sending addresses, ports), never
    for another key, which may hold a secret.
  - Rules. Every entry is a dict with a unique C(owlat_stack_name) of 2-32 lowercase letters, digits and dashes.
    Keys are C(owlat_*) settings and not host-wide ones (Docker, the host's Caddy ports, TLS mode and ACME e-mail,
    C(owlat_stacks) itself); upgrade and monitoring settings are refused because those playbooks do not yet run
    on a host with several stacks. Backup and restore settings (C(owlat_backup_*)) are the stack's own.
    C(owlat_stack_present) is a boolean. No two present stacks listen on
    the same SMTP address and port; the empty address (every address of the host) collides with any other
    stack on that port. No two present stacks send from the same address (two that leave
    C(owlat_stack_sending_addresses) unset both send from the host's default address).
options:
  _input:
    description: The host's C(owlat_stacks).
    type: raw
    required: true
  host:
    description: The inventory name of the host, for the messages.
    type: str
    required: true
  smtp_port:
    description: The host's C(owlat_app_mta_smtp_port), used for an entry that does not set its own.
    type: int
    default: 25
"""

EXAMPLES = r"""
problems: "{{ owlat_stacks | owlat.selfhost.stack_entry_problems(inventory_hostname, owlat_app_mta_smtp_port | default(25)) }}"
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the list is fine.
  type: list
  elements: str
"""

import re

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
HOST_LEVEL = ("owlat_stacks", "owlat_stack_machine", "owlat_target", "owlat_proxy_http_port", "owlat_proxy_https_port",
              "owlat_proxy_tls", "owlat_proxy_acme_email")
HOST_LEVEL_PREFIXES = ("owlat_docker_",)
NOT_YET_PREFIXES = ("owlat_upgrade_", "owlat_monitoring_")
DEFAULT_SENDING = "the host's default address (owlat_stack_sending_addresses unset)"


def _key_problem(where, key):
    if not isinstance(key, str) or not key.startswith("owlat_"):
        return "%s: %r is not an Owlat setting; an entry holds owlat_* settings of one stack only." % (where, key)
    if key in HOST_LEVEL or key.startswith(HOST_LEVEL_PREFIXES):
        return ("%s: %s is a setting of the whole host (one Docker and one Caddy serve every stack): set it in the "
                "host's variables, not in the entry." % (where, key))
    if key.startswith(NOT_YET_PREFIXES):
        return ("%s: %s is not supported on a host with several stacks yet (upgrade.yml and monitoring.yml refuse "
                "such hosts): remove it from the entry." % (where, key))
    return None


def stack_entry_problems(stacks, host, smtp_port=25):
    where_host = "host %s: owlat_stacks" % host
    if not isinstance(stacks, list):
        return ["%s must be a list of stacks, each a dict of its settings (got a %s)." % (where_host, type(stacks).__name__)]
    if not stacks:
        return ["%s is empty: list at least one stack, or remove owlat_stacks to run one stack from the host's "
                "owlat_stack_* settings." % where_host]
    out = []
    names = {}
    listeners = []
    senders = []
    for index, entry in enumerate(stacks):
        where = "%s[%d]" % (where_host, index)
        if not isinstance(entry, dict):
            out.append("%s must be a dict of the stack's settings (got a %s)." % (where, type(entry).__name__))
            continue
        name = entry.get("owlat_stack_name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            out.append("%s: owlat_stack_name is required, 2-32 lowercase letters, digits and dashes (got %r)."
                       % (where, name))
        else:
            where = "host %s, stack %s: owlat_stacks[%d]" % (host, name, index)
            if name in names:
                out.append("%s: the name is also used by owlat_stacks[%d]; every stack of a host needs its own name "
                           "(it names its containers, volumes and /etc/owlat/<name>)." % (where, names[name]))
            else:
                names[name] = index
        out.extend(filter(None, (_key_problem(where, key) for key in entry)))
        present = entry.get("owlat_stack_present", True)
        if not isinstance(present, bool):
            out.append("%s: owlat_stack_present is true or false (got %r); false removes the stack's containers "
                       "and keeps its volumes and secrets." % (where, present))
            continue
        if not present:
            continue
        address = entry.get("owlat_app_mta_smtp_address", "")
        port = entry.get("owlat_app_mta_smtp_port", smtp_port)
        try:
            port = int(port)
        except (TypeError, ValueError):
            continue  # the app preflight names a bad port
        for other_where, other_address, other_port in listeners:
            if port == other_port and (address == other_address or "" in (address, other_address)):
                shown = "%s:%d" % (address or "every address", port)
                out.append("%s: its MTA would listen on %s, as %s does: give each stack its own address with "
                           "owlat_app_mta_smtp_address (mail reputation is per address)." % (where, shown, other_where))
                break
        listeners.append((where, address, port))
        sending = entry.get("owlat_stack_sending_addresses")
        sending = set(sending) if isinstance(sending, list) else {DEFAULT_SENDING}
        for other_where, other_sending in senders:
            shared = sending & other_sending
            if shared:
                out.append("%s: it would send from %s, as %s does: give each stack its own owlat_stack_sending_addresses "
                           "(mail reputation is per address)." % (where, ", ".join(sorted(shared)), other_where))
                break
        senders.append((where, sending))
    return out


class FilterModule:
    def filters(self):
        return {"stack_entry_problems": stack_entry_problems}
