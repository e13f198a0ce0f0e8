# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""SPF evaluation for the deliverability check (a subset of RFC 7208): does the policy at a domain give 'pass' for each
sending address, and what would make receivers distrust it.

Not evaluated (treated as no match, with a note): macros, exists, ptr. The DNS-lookup terms of the whole tree are
counted once against the 10-lookup limit, including those a receiver would never reach because an earlier term matched
(the limit must hold for every sender); terms after 'all' are never reached by anyone and are not counted.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import ipaddress
import re

LOOKUP_LIMIT = 10
# Includes and redirects nested deeper than this are not followed (a permerror, as receivers would get one anyway).
MAX_DEPTH = 10
# A runaway tree is already a permerror; stop asking DNS for more of it past this many lookups.
MAX_WALK = 3 * LOOKUP_LIMIT

_LOOKUPS = ("include", "a", "mx", "ptr", "exists")
_RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_ERRORS = ("permerror", "temperror")
_ANSWERED = ("NOERROR", "NXDOMAIN")
_MODIFIER = re.compile(r"([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_MECHANISM = re.compile(r"([a-z0-9]+)(.*)$", re.I)
_DOMAIN_CIDRS = re.compile(r"(?::([^/]+))?(?:/(\d+))?(?://(\d+))?$")


def is_spf(text):
    text = text.lower()
    return text == "v=spf1" or text.startswith("v=spf1 ")


class _Policy(object):
    """One SPF record. ``terms``: [(qualifier, mechanism, value, counts_a_lookup)]; ``redirect``: the _Policy (or
    None: no record) redirect= leads to, when used; ``error``: the result receivers get instead of evaluating it."""

    def __init__(self, domain, text=None, error=None):
        self.domain, self.text, self.error = domain, text, error
        self.terms, self.all, self.redirect, self.redirects = [], None, None, False


def _name(domain):
    return domain.rstrip(".").lower()


class _Check(object):
    def __init__(self, resolver):
        self.resolver, self.cache, self.problems, self.lookups = resolver, {}, [], 0

    def note(self, text):
        if text not in self.problems:
            self.problems.append(text)

    def dns(self, name, rtype):
        key = (_name(name), rtype)
        if key not in self.cache:
            answer = self.resolver.query(key[0], rtype)
            if answer.rcode not in _ANSWERED:
                self.note("%s lookup for %s failed: %s" % (rtype, key[0], answer.error or answer.rcode))
            self.cache[key] = answer
        return self.cache[key]

    def load(self, domain, chain, via):
        """The policy at domain, or None when it has none; ``chain``: the domains leading here; ``via``: how (for
        problem texts), e.g. 'include:x.example'."""
        if domain in chain:
            self.note("%s loops back (%s): a permerror" % (via, " -> ".join(chain + [domain])))
            return _Policy(domain, error="permerror")
        if len(chain) > MAX_DEPTH or self.lookups > MAX_WALK:
            self.note("%s is nested too deep or too far (not followed): a permerror" % via)
            return _Policy(domain, error="permerror")
        answer = self.dns(domain, "TXT")
        if answer.rcode not in _ANSWERED:
            return _Policy(domain, error="temperror")
        found = [text for text in answer.records if is_spf(text)]
        if len(found) > 1:
            count = {2: "two", 3: "three"}.get(len(found), str(len(found)))
            self.note("%s SPF records at %s (a permerror)" % (count, domain))
            return _Policy(domain, found[0], "permerror")
        if not found:
            if via:
                self.note("%s has no SPF record (a permerror)" % via)
            return None
        return self.parse(domain, found[0], chain + [domain])

    def parse(self, domain, text, chain):
        policy, redirect = _Policy(domain, text), None
        for term in text.split()[1:]:
            modifier = _MODIFIER.match(term)
            if modifier:
                # exp= and unknown modifiers do not change the result (RFC 7208 6).
                if modifier.group(1).lower() == "redirect":
                    redirect = modifier.group(2)
                continue
            qualifier = term[0] if term[0] in _RESULTS else "+"
            parsed = _MECHANISM.match(term[1:] if qualifier == term[0] else term)
            name, rest = (parsed.group(1).lower(), parsed.group(2)) if parsed else (term, "")
            macro = "%" in rest and name in _LOOKUPS
            value = None if macro else self.value(domain, name, rest)
            if value is ValueError:
                # Any syntax error makes the whole record a permerror (RFC 7208 4.6), even after 'all'.
                known = name in _LOOKUPS + ("all", "ip4", "ip6")
                self.note('%s "%s" at %s (a permerror)' % ("bad term" if known else "unknown mechanism", term, domain))
                policy.error = "permerror"
                continue
            if policy.all:
                continue  # never reached: 'all' always matches
            counts = name in _LOOKUPS
            self.lookups += counts
            if macro:
                self.note('"%s" at %s uses a macro, not expanded here (treated as no match)' % (term, domain))
                name = "macro"
            elif name == "include":
                value = self.load(value, chain, "include:" + value)
            elif name == "ptr":
                self.note("ptr at %s is deprecated (RFC 7208 5.5); not evaluated here" % domain)
            elif name == "exists":
                self.note('"%s" at %s is not evaluated here (treated as no match)' % (term, domain))
            elif name == "all":
                policy.all = qualifier + "all"
            policy.terms.append((qualifier, name, value, counts))
        if redirect and not policy.all and not policy.error:
            self.lookups += 1
            if "%" in redirect:
                self.note('"redirect=%s" at %s uses a macro, not expanded here (treated as neutral)'
                          % (redirect, domain))
            else:
                policy.redirects = True
                policy.redirect = self.load(_name(redirect), chain, "redirect=" + _name(redirect))
        return policy

    @staticmethod
    def value(domain, name, rest):
        """The parsed argument of one mechanism, or ValueError when the term is malformed or unknown."""
        try:
            if name == "all" and not rest:
                return None
            if name in ("ip4", "ip6") and rest.startswith(":"):
                network = ipaddress.ip_network(rest[1:], strict=False)
                return network if network.version == int(name[2]) else ValueError
            if name in ("include", "exists") and rest.startswith(":") and len(rest) > 1:
                return _name(rest[1:])
            if name == "ptr" and (not rest or rest.startswith(":")):
                return _name(rest[1:] or domain)
            if name in ("a", "mx"):
                target, cidr4, cidr6 = _DOMAIN_CIDRS.match(rest).groups()
                cidr4, cidr6 = int(cidr4 or 32), int(cidr6 or 128)
                return (_name(target or domain), cidr4, cidr6) if cidr4 <= 32 and cidr6 <= 128 else ValueError
        except (ValueError, AttributeError):
            pass
        return ValueError

    def evaluate(self, policy, ip, count):
        """check_host() for one address: pass, fail, softfail, neutral, none, permerror or temperror. ``count``: [the
        lookups on this address's path], which a receiver stops at."""
        if policy is None or policy.error:
            return policy.error if policy else "none"
        for qualifier, name, value, counts in policy.terms:
            count[0] += counts
            if count[0] > LOOKUP_LIMIT:
                return "permerror"
            matched = self.match(name, value, ip, count)
            if matched in _ERRORS:
                return matched
            if matched:
                return _RESULTS[qualifier]
        if not policy.redirects:
            return "neutral"
        count[0] += 1
        result = "permerror" if count[0] > LOOKUP_LIMIT else self.evaluate(policy.redirect, ip, count)
        return "permerror" if result == "none" else result

    def match(self, name, value, ip, count):
        """True, False, or an error result."""
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return ip.version == value.version and ip in value
        if name == "include":
            # RFC 7208 5.2: only the included policy's pass is a match; its having no record is a permerror.
            result = self.evaluate(value, ip, count)
            if result == "none":
                return "permerror"
            return result if result in _ERRORS else result == "pass"
        if name == "a":
            return self.addresses_match([value[0]], value, ip)
        if name == "mx":
            answer = self.dns(value[0], "MX")
            if answer.rcode not in _ANSWERED:
                return "temperror"
            # RFC 7208 4.6.4: at most 10 MX names; the null MX ('0 .') names no host.
            hosts = [record.split()[-1] for record in answer.records if record.split()[-1] != "."]
            return self.addresses_match(hosts[:10], value, ip)
        return False  # ptr, exists and macros are not evaluated here

    def addresses_match(self, hosts, value, ip):
        cidr = value[1] if ip.version == 4 else value[2]
        for host in hosts:
            answer = self.dns(host, "A" if ip.version == 4 else "AAAA")
            if answer.rcode not in _ANSWERED:
                return "temperror"
            if any(ip in ipaddress.ip_network("%s/%d" % (address, cidr), strict=False) for address in answer.records):
                return True
        return False


def check(resolver, domain, addresses):
    """The SPF policy at ``domain`` for the given sending ``addresses``; ``resolver``: anything with
    ``query(name, rtype)`` returning an _dnswire.Answer.

    Returns {'record': the v=spf1 text at domain or None, 'problems': [human texts], 'lookups': DNS-lookup terms in
    the whole tree, 'covered': {address: whether the policy passes it}, 'all': e.g. '-all' of the top record or None}.
    """
    run = _Check(resolver)
    domain = _name(domain)
    top = run.load(domain, [], "")
    if top is None:
        run.note("no SPF record at %s" % domain)
    if run.lookups > LOOKUP_LIMIT:
        run.note("more than %d DNS lookups (%d): receivers treat this as a permerror" % (LOOKUP_LIMIT, run.lookups))
    if top is not None and top.all == "+all":
        run.note("the SPF record at %s ends in +all: it passes mail from any address" % domain)
    covered = {}
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            run.note("%r is not an IP address" % (address,))
            covered[address] = False
            continue
        covered[address] = run.evaluate(top, ip, [0]) == "pass"
    return {"record": top.text if top else None, "problems": run.problems, "lookups": run.lookups,
            "covered": covered, "all": top.all if top else None}
