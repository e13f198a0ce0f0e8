# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Deliverability checks of Owlat stacks against the DNS and port 25 as the world sees them (module
owlat_mail_check): each record dns.yml lists is present, missing or different; each sending address's PTR
forward-confirms to its EHLO name as upstream's MTA requires (docs/upstream-deliverability.md §2); the SPF records
cover every sending address within the 10-lookup limit; DMARC is there; the MTA answers on port 25 with a banner
and STARTTLS; outbound port 25 is open. Nothing here changes anything."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

from ansible_collections.owlat.selfhost.plugins.module_utils import _spf
from ansible_collections.owlat.selfhost.plugins.module_utils._dns import fqdn, reverse_name

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
# What upstream's FCrDNS gate calls each failure (packages/shared/src/fcrdns.ts @ c2b6921).
NO_PTR, PTR_NOT_FQDN, FORWARD_MISMATCH, EHLO_MISMATCH, LOOKUP_ERROR = (
    "no-ptr", "ptr-not-fqdn", "forward-mismatch", "ehlo-mismatch", "lookup-error")


def _result(status, code, check, name, found, fix="", expected=""):
    return dict(status=status, code=code, check=check, name=name, expected=expected, found=found,
                fix=fix if status != OK else "")


def _lookup_failed(answer):
    return answer.rcode not in ("NOERROR", "NXDOMAIN")


def _answers(answer):
    if answer.rcode == "NXDOMAIN":
        return "no such name (NXDOMAIN)"
    if _lookup_failed(answer):
        return "lookup failed: %s %s" % (answer.rcode, answer.error or "")
    return ", ".join(answer.records) or "no record"


def check_addresses(resolver, code, name, rtype, expected):
    """A/AAAA records of one name: every expected address is answered; others are a warning."""
    answer = resolver.query(name, rtype)
    found = set(answer.records)
    want = "%s %s %s" % (name, rtype, " ".join(sorted(expected)))
    fix = "publish %s" % "; ".join("%s %s %s" % (name, rtype, a) for a in sorted(expected))
    if _lookup_failed(answer):
        return _result(WARN, code, rtype, name, _answers(answer), "the resolver failed; check again", want)
    missing = set(expected) - found
    if missing:
        what = "missing" if not found else "different: answers %s" % ", ".join(sorted(found))
        return _result(FAIL, code, rtype, name, what, fix, want)
    extra = found - set(expected)
    if extra:
        return _result(WARN, code, rtype, name, "also answers %s" % ", ".join(sorted(extra)),
                       "remove %s unless it serves this stack too" % ", ".join(sorted(extra)), want)
    return _result(OK, code, rtype, name, ", ".join(sorted(found)), expected=want)


def check_fcrdns(resolver, address, ehlo):
    """Upstream's readiness rule for a sending address: PTR exists, is an FQDN, its name's A/AAAA holds the address,
    and it is the EHLO name (case-insensitive, trailing dot ignored). A failure quarantines the address."""
    name = reverse_name(address)
    want = "%s PTR %s (and %s %s %s)" % (name, ehlo, ehlo, "AAAA" if ":" in address else "A", address)
    fix = "set the PTR of %s to exactly %s at the address's provider, and publish %s %s %s" % (
        address, ehlo, ehlo, "AAAA" if ":" in address else "A", address)
    answer = resolver.query(name, "PTR")
    if _lookup_failed(answer):
        return _result(WARN, "P1", "PTR", name, "%s: %s" % (LOOKUP_ERROR, _answers(answer)), "check again", want)
    if not answer.records:
        return _result(FAIL, "P1", "PTR", name, "%s: missing (the MTA quarantines %s)" % (NO_PTR, address), fix, want)
    ptrs = [fqdn(p) for p in answer.records]
    if any(p.count(".") < 2 for p in ptrs):
        return _result(FAIL, "P1", "PTR", name, "%s: %s" % (PTR_NOT_FQDN, ", ".join(ptrs)), fix, want)
    confirmed = []
    for ptr in ptrs:
        forward = resolver.query(ptr, "AAAA" if ":" in address else "A")
        if _lookup_failed(forward):
            return _result(WARN, "P1", "PTR", name, "%s: %s of %s" % (LOOKUP_ERROR, _answers(forward), ptr),
                           "check again", want)
        if address in forward.records:
            confirmed.append(ptr)
    if not confirmed:
        return _result(FAIL, "P1", "PTR", name, "%s: PTR %s does not resolve back to %s (the MTA quarantines it)"
                       % (FORWARD_MISMATCH, ", ".join(ptrs), address), fix, want)
    if fqdn(ehlo) not in confirmed:
        return _result(FAIL, "P1", "PTR", name, "%s: PTR %s, but the MTA says EHLO %s (the MTA quarantines %s)"
                       % (EHLO_MISMATCH, ", ".join(confirmed), fqdn(ehlo), address), fix, want)
    return _result(OK, "P1", "PTR", name, "%s, forward-confirmed" % fqdn(ehlo), expected=want)


def check_mx(resolver, name, expected):
    answer = resolver.query(name, "MX")
    want = "%s MX %s" % (name, expected)
    target = fqdn(expected.split()[-1])
    fix = "publish %s MX %s" % (name, expected)
    if _lookup_failed(answer):
        return _result(WARN, "M1", "MX", name, _answers(answer), "check again", want)
    hosts = [fqdn(r.split()[-1]) for r in answer.records]
    if not hosts:
        return _result(FAIL, "M1", "MX", name, "missing: bounces to %s cannot come back" % name, fix, want)
    if target not in hosts:
        return _result(FAIL, "M1", "MX", name, "different: answers %s, so bounces go elsewhere"
                       % ", ".join(answer.records), fix, want)
    return _result(OK, "M1", "MX", name, ", ".join(answer.records), expected=want)


def check_spf(resolver, code, name, addresses, expected):
    result = _spf.check(resolver, name.rstrip("."), addresses)
    want = "%s TXT %s" % (name, expected)
    fix = 'publish %s TXT "%s"' % (name, expected)
    if result["record"] is None:
        return _result(FAIL, code, "SPF", name, "missing" if not result["problems"] else "; ".join(result["problems"]),
                       fix, want)
    uncovered = [a for a, ok in result["covered"].items() if not ok]
    # A permerror, the lookup limit or an address not passed fails at receivers; the rest (a term not evaluated here,
    # a failed lookup, +all) is worth a look.
    failing = [p for p in result["problems"] if "permerror" in p or "loops back" in p]
    if uncovered:
        failing.insert(0, "does not pass %s" % ", ".join(uncovered))
    if failing:
        return _result(FAIL, code, "SPF", name, "different: %s (%s)" % ("; ".join(failing), result["record"]),
                       fix, want)
    if result["problems"]:
        return _result(WARN, code, "SPF", name, "%s (%s)" % ("; ".join(result["problems"]), result["record"]),
                       "check the record", want)
    return _result(OK, code, "SPF", name, "%s (%d lookups)" % (result["record"], result["lookups"]), expected=want)


def check_dmarc(resolver, name, expected):
    answer = resolver.query(name, "TXT")
    want = "%s TXT %s" % (name, expected)
    fix = 'publish %s TXT "%s"' % (name, expected)
    if _lookup_failed(answer):
        return _result(WARN, "Q1", "DMARC", name, _answers(answer), "check again", want)
    records = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    if not records:
        return _result(FAIL, "Q1", "DMARC", name, "missing", fix, want)
    if len(records) > 1:
        return _result(FAIL, "Q1", "DMARC", name, "different: %d DMARC records (receivers ignore them all)"
                       % len(records), "keep one: " + fix, want)
    tags = dict(t.strip().partition("=")[::2] for t in records[0].split(";") if "=" in t)
    policy = tags.get("p", "").strip().lower()
    if policy not in ("none", "quarantine", "reject"):
        return _result(FAIL, "Q1", "DMARC", name, "different: no valid p= policy (%s)" % records[0], fix, want)
    return _result(OK, "Q1", "DMARC", name, records[0], expected=want)


def check_record(resolver, record, sending):
    """One record of dns_records (grouped per name and type for A/AAAA)."""
    code, rtype, name, value = record["code"], record["type"], record["name"], record["value"]
    if value is None:
        return _result(SKIP, code, rtype, name, "not checked: " + record["why"])
    if code == "M1":
        return check_mx(resolver, name, value)
    if code in ("S1", "S2"):
        return check_spf(resolver, code, name, sending, value)
    if code == "Q1":
        return check_dmarc(resolver, name, value)
    return _result(SKIP, code, rtype, name, "no check for this record")


def check_stack_dns(resolver, stack):
    """Every record of one stack (dns_records' list) against DNS, in publishing order."""
    records = stack["records"]
    sending = list(dict.fromkeys(r["value"] for r in records if r["code"] == "A2"))
    out = []
    grouped = {}
    for record in records:
        if record["type"] in ("A", "AAAA") and record["value"] is not None:
            key = (record["code"], record["name"], record["type"])
            if key not in grouped:
                grouped[key] = []
                out.append(key)
            grouped[key].append(record["value"])
        elif record["type"] == "PTR":
            address = next(r["value"] for r in records if r["code"] == "A2" and reverse_name(r["value"]) == record["name"])
            out.append(check_fcrdns(resolver, address, record["value"]))
        else:
            out.append(check_record(resolver, record, sending))
    return [check_addresses(resolver, item[0], item[1], item[2], grouped[item]) if isinstance(item, tuple) else item
            for item in out]


def smtp_probe(resolver, domain, ehlo, timeout, source=None, code="smtp-in", check="SMTP in"):
    """A sender's view of the stack's bounce path: the MX of the return-path domain, its addresses, port 25: a 220
    banner, EHLO, STARTTLS and a TLS handshake. One result per address."""
    mx = resolver.query(domain, "MX")
    hosts = sorted((int(r.split()[0]), fqdn(r.split()[-1])) for r in mx.records) if not _lookup_failed(mx) else []
    if not hosts:
        return [_result(FAIL, code, check, domain, "no MX to connect to (%s)" % _answers(mx),
                        "publish the MX of %s first" % domain)]
    out = []
    for host in [h for dummy, h in hosts[:2]]:
        addresses = resolver.query(host, "A").records + resolver.query(host, "AAAA").records
        if not addresses:
            out.append(_result(FAIL, code, check, host, "MX target has no address", "publish %s A" % host))
        for address in addresses:
            out.append(_smtp_session(address, 25, host, ehlo, timeout, source, code, check))
    return out


def _smtp_session(address, port, host, ehlo, timeout, source, code, check):
    name = "%s:%d (%s)" % (address, port, host.rstrip("."))
    started = time.time()
    try:
        client = smtplib.SMTP(timeout=timeout, source_address=(source, 0) if source else None)
        status, banner = client.connect(address, port)
    except (OSError, smtplib.SMTPException) as exc:
        return _result(FAIL, code, check, name, "no connection: %s" % (exc.strerror or exc),
                       "open TCP port 25 to the MTA (firewall, NAT forwarding, provider)")
    try:
        banner = banner.decode("utf-8", "replace")
        if status != 220:
            return _result(FAIL, code, check, name, "banner %d %s" % (status, banner), "see the MTA's logs")
        client.ehlo("owlat-check.invalid")
        if not client.has_extn("starttls"):
            return _result(WARN, code, check, name, "220 %s; no STARTTLS offered" % banner,
                           "bounces arrive in clear text: give the MTA a certificate (BOUNCE_TLS_CERT, BOUNCE_TLS_KEY)")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.starttls(context=context)
        banner_name = banner.split()[0] if banner.split() else ""
        if ehlo and fqdn(banner_name) != fqdn(ehlo):
            return _result(WARN, code, check, name, "220 %s; STARTTLS ok" % banner,
                           "the MTA greets as %s, its EHLO name is %s" % (banner_name, ehlo))
        return _result(OK, code, check, name, "220 %s; STARTTLS ok (%.1f s)" % (banner, time.time() - started))
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        return _result(FAIL, code, check, name, "session failed: %s" % exc, "see the MTA's logs")
    finally:
        try:
            client.close()
        except OSError:
            pass


def outbound_probe(resolver, target, timeout, source=None):
    """Outbound TCP port 25, as upstream's advisory probe does (a connection to a mailbox provider's MX); from the
    sending address when it is one of the host's."""
    host, dummy, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "25")
    if host.startswith("mx:"):
        answer = resolver.query(host[3:], "MX")
        records = sorted(answer.records, key=lambda r: int(r.split()[0])) if not _lookup_failed(answer) else []
        if not records:
            return _result(WARN, "smtp-out", "port 25 out", target, "no MX for %s: %s" % (host[3:], _answers(answer)),
                           "set owlat_mail_check_outbound_target to a reachable mail server")
        host = fqdn(records[0].split()[-1])
    name = "%s:%s" % (host.rstrip("."), port or 25)
    try:
        with socket.create_connection((host.rstrip("."), int(port or 25)), timeout=timeout,
                                      source_address=(source, 0) if source else None) as sock:
            sock.settimeout(timeout)
            first = sock.recv(512).decode("utf-8", "replace").strip()
    except OSError as exc:
        return _result(FAIL, "smtp-out", "port 25 out", name, "no connection%s: %s" % (
            " from " + source if source else "", exc.strerror or exc),
            "outbound port 25 is blocked: ask the provider to open it, or relay (docs/deliverability.md)")
    if not first.startswith("220"):
        return _result(WARN, "smtp-out", "port 25 out", name, "connected, but no 220 banner (%s)" % first[:60],
                       "check the target")
    return _result(OK, "smtp-out", "port 25 out", name, "connected%s: %s" % (" from " + source if source else "", first[:60]))


def rows(results):
    """The results as the table and JSON show them: by host and stack (in check order), each with C(detail) (what was
    found, then the fix) and C(summary) (one line naming stack, host, check and record)."""
    order = sorted(range(len(results)), key=lambda i: (results[i].get("host", ""), results[i].get("stack", ""), i))
    out = []
    for i in order:
        row = dict(results[i])
        row["detail"] = row["found"] + (" -> " + row["fix"] if row.get("fix") else "")
        row["summary"] = "stack %s on %s: %s %s %s (%s)" % (
            row.get("stack"), row.get("host"), row["code"], row["check"], row["name"], row["found"])
        out.append(row)
    return out
