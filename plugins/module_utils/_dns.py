# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""The DNS records an Owlat stack needs, as upstream documents them at v0.4.4 (docs/upstream-deliverability.md has
each with its citation; the codes A1, A2, P1, M1, S1, S2, Q1, K1 are that file's), and their zone-file lines."""

from __future__ import annotations

import ipaddress
import re

# The app's checklist publishes its records with this TTL (docs/upstream-deliverability.md, §5).
TTL = 3600


def fqdn(name):
    return name.rstrip(".").lower() + "."


def reverse_name(address):
    return ipaddress.ip_address(address).reverse_pointer + "."


def _spf(addresses, qualifier):
    terms = ["ip6:" + a if ":" in a else "ip4:" + a for a in addresses]
    return " ".join(["v=spf1"] + terms + [qualifier])


def records(stack):
    """Every record of one stack, in publishing order: a list of dicts with name, type, value (None when the value
    comes from the running app), ttl, code (docs/upstream-deliverability.md), why.

    ``stack``: stack, app/api/actions hostnames, web_address (the public address the host's Caddy answers on),
    email_domain, ehlo_hostname, ehlo_hostnames (optional: sending address -> its own EHLO name, upstream's EHLO_HOSTNAMES),
    return_path_domain, sending_addresses (public), spf_qualifier (default ~all, upstream's SPF_QUALIFIER default),
    dmarc_rua (optional).
    """
    ehlo = fqdn(stack["ehlo_hostname"])
    ehlo_of = dict((address, fqdn(name)) for address, name in (stack.get("ehlo_hostnames") or {}).items())
    domain = fqdn(stack["email_domain"])
    return_path = fqdn(stack["return_path_domain"])
    sending = list(dict.fromkeys(stack.get("sending_addresses") or []))
    out = []

    def add(name, rtype, value, code, why):
        out.append(dict(name=name, type=rtype, value=value, ttl=TTL, code=code, why=why))

    web = stack.get("web_address") or ""
    for key in ("app_hostname", "api_hostname", "actions_hostname"):
        add(fqdn(stack[key]), "AAAA" if ":" in web else "A", web or None, "A1",
            "%s of stack %s, served by the host's Caddy" % (key.partition("_")[0], stack["stack"]))
    for address in sending:
        add(ehlo_of.get(address, ehlo), "AAAA" if ":" in address else "A", address, "A2",
            "EHLO name to sending address %s" % address)
    for address in sending:
        add(reverse_name(address), "PTR", ehlo_of.get(address, ehlo), "P1",
            "reverse of sending address %s: exactly the EHLO name, else the MTA quarantines it (set at the address's provider)"
            % address)
    # Upstream: MX 10 <EHLO_HOSTNAME>. With an EHLO name per address, the first sending address's name: it has an A record.
    add(return_path, "MX", "10 " + (ehlo_of.get(sending[0], ehlo) if sending else ehlo), "M1",
        "bounces come back to the MTA on port 25")
    add(return_path, "TXT", _spf(sending, stack.get("spf_qualifier") or "~all"), "S2",
        "SPF of the return-path domain (MAIL FROM): every sending address")
    add(domain, "TXT", _spf(sending, "-all"), "S1", "SPF of the sending domain, written by hand (no MTA_SPF_INCLUDE)")
    dmarc = "v=DMARC1; p=none" + ("; rua=" + stack["dmarc_rua"] if stack.get("dmarc_rua") else "")
    add("_dmarc." + domain, "TXT", dmarc, "Q1", "DMARC, starting at p=none as upstream does for a new domain")
    add("<selector>._domainkey." + domain, "TXT", None, "K1",
        "DKIM: the app makes the key when the domain is added (selector s<epoch-ms>); copy the record it shows")
    return out


def zone_line(record):
    """One record in zone-file syntax; a record whose value the app gives is a comment saying where to find it."""
    value = record["value"]
    if value is None:
        return "; %s %s IN %s  (%s)" % (record["name"], record["ttl"], record["type"], record["why"])
    if record["type"] == "TXT":
        value = '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    return "%s %s IN %s %s" % (record["name"], record["ttl"], record["type"], value)


def sending_problems(stack, host_addresses):
    """What is wrong with a stack's sending addresses, one sentence each (upstream's pool rules, docs/upstream-deliverability.md
    §2, and where the address must be). ``stack``: sending_addresses, behind_nat, public_address, ehlo_hostnames, fqdn_re
    (the collection's hostname pattern); ``host_addresses``: every address of the host."""
    sending = stack.get("sending_addresses") or []
    nat = stack.get("behind_nat")
    out = []
    parsed = []
    for value in sending:
        try:
            address = ipaddress.ip_address(str(value))
        except ValueError:
            out.append("owlat_stack_sending_addresses: %r is not an IP address (the MTA's pools take bare addresses)." % (value,))
            continue
        if address.is_unspecified or address.is_loopback or getattr(address, "ipv4_mapped", None):
            out.append("owlat_stack_sending_addresses: %s cannot send mail (no PTR can name it; the MTA quarantines it): "
                       "give the public address mail leaves from." % address)
            continue
        parsed.append(address)
    if not sending:
        out.append("owlat_stack_sending_addresses is empty: the MTA needs at least one address to send from.")
    elif parsed and all(a.version == 6 for a in parsed):
        out.append("owlat_stack_sending_addresses has only IPv6 addresses: upstream's MTA needs an IPv4 address in every pool "
                   "that holds IPv6.")
    local = set(str(a) for a in host_addresses)
    if nat:
        on_host = [str(a) for a in parsed if str(a) in local]
        if on_host:
            out.append("owlat_stack_behind_nat is true, but owlat_stack_sending_addresses has %s, an address of the host itself "
                       "(the private side of the NAT): give the public address the NAT sends from." % ", ".join(on_host))
        if stack.get("public_address") in local:
            out.append("owlat_stack_behind_nat is true, but owlat_stack_public_address is %s, an address of the host itself: "
                       "give the public address the NAT forwards to this host." % stack.get("public_address"))
    else:
        missing = [str(a) for a in parsed if str(a) not in local]
        if missing:
            out.append("owlat_stack_sending_addresses: %s is not an address of the host (it has %s): add it to an interface, "
                       "or set owlat_stack_behind_nat: true if the host sends through a NAT with that public address."
                       % (", ".join(missing), ", ".join(sorted(local)) or "none"))
    names = stack.get("ehlo_hostnames") or {}
    if not isinstance(names, dict):
        out.append("owlat_stack_ehlo_hostnames maps sending addresses to EHLO names (got a %s)." % type(names).__name__)
        names = {}
    for address, name in names.items():
        if address not in sending:
            out.append("owlat_stack_ehlo_hostnames names %s, which is not one of owlat_stack_sending_addresses (%s)."
                       % (address, ", ".join(str(a) for a in sending)))
        if not isinstance(name, str) or not re.match(stack.get("fqdn_re") or r".+\..+", name):
            out.append("owlat_stack_ehlo_hostnames: the EHLO name of %s must be a fully qualified name (got %r)." % (address, name))
    return out
