# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""The DNS records an Owlat stack needs, as upstream documents them at v0.4.4 (docs/upstream-deliverability.md has
each with its citation; the codes A1, A2, P1, M1, S1, S2, Q1, K1 are that file's), and their zone-file lines."""

from __future__ import annotations

import ipaddress

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
    email_domain, ehlo_hostname, return_path_domain, sending_addresses (public), spf_qualifier (default ~all, upstream's
    SPF_QUALIFIER default), dmarc_rua (optional).
    """
    ehlo = fqdn(stack["ehlo_hostname"])
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
        add(ehlo, "AAAA" if ":" in address else "A", address, "A2", "EHLO name to sending address %s" % address)
    for address in sending:
        add(reverse_name(address), "PTR", ehlo, "P1",
            "reverse of sending address %s: exactly the EHLO name, else the MTA quarantines it (set at the address's provider)"
            % address)
    add(return_path, "MX", "10 " + ehlo, "M1", "bounces come back to the MTA on port 25")
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
