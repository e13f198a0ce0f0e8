"""_spf.check against a dict-based fake resolver."""

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _spf as spf
from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Answer


class FakeResolver(object):
    """zone: {(name, rtype): [records] or an rcode string}; other types of a listed name are NOERROR with no
    records, unlisted names NXDOMAIN."""

    def __init__(self, zone):
        self.zone, self.asked = zone, []

    def query(self, name, rtype):
        self.asked.append((name, rtype))
        value = self.zone.get((name, rtype))
        if isinstance(value, str):
            return Answer(value, [], "no answer from 192.0.2.53:53 in 2.0 s" if value == "TIMEOUT" else "")
        if value is None:
            known = any(key[0] == name for key in self.zone)
            return Answer("NOERROR" if known else "NXDOMAIN", [], "")
        return Answer("NOERROR", list(value), "")


def run(zone, addresses, domain="example.com"):
    return spf.check(FakeResolver(zone), domain, addresses)


def txt(domain, *records):
    return {(domain, "TXT"): list(records)}


def test_ip4_with_and_without_cidr():
    result = run(txt("example.com", "v=spf1 ip4:192.0.2.1 ip4:198.51.100.0/24 -all", "google-site-verification=x"),
                 ["192.0.2.1", "192.0.2.2", "198.51.100.77", "203.0.113.1"])
    assert result == {
        "record": "v=spf1 ip4:192.0.2.1 ip4:198.51.100.0/24 -all",
        "problems": [],
        "lookups": 0,
        "covered": {"192.0.2.1": True, "192.0.2.2": False, "198.51.100.77": True, "203.0.113.1": False},
        "all": "-all",
    }


def test_ip6_and_families_do_not_mix():
    result = run(txt("example.com", "v=spf1 ip6:2001:db8:1::/48 ip4:0.0.0.0/0 ~all"),
                 ["2001:db8:1::25", "2001:db8:2::25", "192.0.2.1"])
    assert result["covered"] == {"2001:db8:1::25": True, "2001:db8:2::25": False, "192.0.2.1": True}
    assert result["all"] == "~all"


def test_a_with_domain_and_dual_cidr():
    zone = txt("example.com", "v=spf1 a a:out.example.net/24//64 -all")
    zone.update({("example.com", "A"): ["192.0.2.10"], ("out.example.net", "A"): ["198.51.100.1"],
                 ("out.example.net", "AAAA"): ["2001:db8:5::1"]})
    result = run(zone, ["192.0.2.10", "192.0.2.11", "198.51.100.200", "2001:db8:5::ff", "2001:db8:6::1"])
    assert result["covered"] == {"192.0.2.10": True, "192.0.2.11": False, "198.51.100.200": True,
                                 "2001:db8:5::ff": True, "2001:db8:6::1": False}
    assert result["lookups"] == 2 and result["problems"] == []


def test_mx():
    zone = txt("bounces.example.com", "v=spf1 mx -all")
    zone.update({("bounces.example.com", "MX"): ["10 mta.example.com.", "20 backup.example.com."],
                 ("mta.example.com", "A"): ["192.0.2.25"], ("backup.example.com", "A"): ["192.0.2.26"]})
    result = run(zone, ["192.0.2.25", "192.0.2.26", "192.0.2.27"], domain="Bounces.Example.com.")
    assert result["covered"] == {"192.0.2.25": True, "192.0.2.26": True, "192.0.2.27": False}
    assert result["lookups"] == 1 and result["record"] == "v=spf1 mx -all"


def test_include_chain():
    zone = txt("example.com", "v=spf1 include:_spf.example.net ~all")
    zone.update(txt("_spf.example.net", "v=spf1 include:_spf2.example.net -all"))
    zone.update(txt("_spf2.example.net", "v=spf1 ip4:203.0.113.0/28 ?all"))
    result = run(zone, ["203.0.113.5", "203.0.113.99"])
    # 203.0.113.99 hits _spf.example.net's -all: a fail there is no match for the including record.
    assert result["covered"] == {"203.0.113.5": True, "203.0.113.99": False}
    assert result["lookups"] == 2 and result["problems"] == [] and result["all"] == "~all"


def test_include_neutral_is_no_match_and_the_next_term_decides():
    zone = txt("example.com", "v=spf1 include:other.example ip4:192.0.2.1 -all")
    zone.update(txt("other.example", "v=spf1 ?all"))
    assert run(zone, ["192.0.2.1"])["covered"] == {"192.0.2.1": True}


def test_redirect():
    zone = txt("example.com", "v=spf1 ip4:192.0.2.1 redirect=_spf.example.net")
    zone.update(txt("_spf.example.net", "v=spf1 ip4:198.51.100.1 -all"))
    result = run(zone, ["192.0.2.1", "198.51.100.1", "203.0.113.1"])
    assert result["covered"] == {"192.0.2.1": True, "198.51.100.1": True, "203.0.113.1": False}
    assert result["lookups"] == 1 and result["all"] is None


def test_redirect_is_ignored_with_all():
    zone = txt("example.com", "v=spf1 ip4:192.0.2.1 redirect=_spf.example.net -all")
    zone.update(txt("_spf.example.net", "v=spf1 ip4:198.51.100.1 -all"))
    result = run(zone, ["198.51.100.1"])
    assert result["covered"] == {"198.51.100.1": False}
    assert result["lookups"] == 0 and result["all"] == "-all"


def test_redirect_to_no_record():
    result = run(txt("example.com", "v=spf1 redirect=gone.example"), ["192.0.2.1"])
    assert result["problems"] == ["redirect=gone.example has no SPF record (a permerror)"]
    assert result["covered"] == {"192.0.2.1": False}


@pytest.mark.parametrize("qualifier", ["-", "~", "?"])
def test_all_qualifiers_are_reported(qualifier):
    result = run(txt("example.com", "v=spf1 ip4:192.0.2.1 %sall" % qualifier), ["192.0.2.1", "192.0.2.2"])
    assert result["all"] == qualifier + "all"
    assert result["covered"] == {"192.0.2.1": True, "192.0.2.2": False}


def test_plus_all_passes_everything_and_is_a_problem():
    result = run(txt("example.com", "v=spf1 all"), ["192.0.2.2"])
    assert result["all"] == "+all" and result["covered"] == {"192.0.2.2": True}
    assert result["problems"] == ["the SPF record at example.com ends in +all: it passes mail from any address"]


def test_no_record():
    result = run(txt("bounces.example.com", "v=DMARC1; p=none", "v=spf10 nope", "spf1 x"), ["192.0.2.1"],
                 domain="bounces.example.com")
    assert result == {"record": None, "problems": ["no SPF record at bounces.example.com"], "lookups": 0,
                      "covered": {"192.0.2.1": False}, "all": None}
    assert run({}, [])["problems"] == ["no SPF record at example.com"]


def test_record_prefix_is_case_insensitive_and_bare_v_spf1_counts():
    assert run(txt("example.com", "V=SPF1 IP4:192.0.2.1 -ALL"), ["192.0.2.1"])["covered"] == {"192.0.2.1": True}
    result = run(txt("example.com", "v=spf1"), ["192.0.2.1"])
    assert result["record"] == "v=spf1" and result["covered"] == {"192.0.2.1": False} and result["problems"] == []


def test_two_records():
    zone = txt("example.com", "v=spf1 ip4:192.0.2.1 -all", "v=spf1 include:x.example -all")
    resolver = FakeResolver(zone)
    result = spf.check(resolver, "example.com", ["192.0.2.1"])
    assert result["problems"] == ["two SPF records at example.com (a permerror)"]
    assert result["covered"] == {"192.0.2.1": False} and result["lookups"] == 0
    assert resolver.asked == [("example.com", "TXT")]


def lookups_zone(count):
    """A record whose tree has ``count`` lookups: includes of records that each have one 'a'."""
    includes = (count + 1) // 2
    terms = " ".join("include:i%d.example" % n for n in range(includes))
    zone = txt("example.com", "v=spf1 %s ip4:192.0.2.1 -all" % terms)
    for n in range(includes):
        last = n == includes - 1 and count % 2
        zone.update(txt("i%d.example" % n, "v=spf1 ip4:198.51.100.%d %s-all" % (n, "" if last else "a ")))
        zone[("i%d.example" % n, "A")] = ["203.0.113.%d" % n]
    return zone


def test_ten_lookups_are_fine():
    result = run(lookups_zone(10), ["192.0.2.1", "203.0.113.4"])
    assert result["lookups"] == 10 and result["problems"] == []
    assert result["covered"] == {"192.0.2.1": True, "203.0.113.4": True}


def test_eleven_lookups_are_a_permerror():
    result = run(lookups_zone(11), ["192.0.2.1", "198.51.100.0"])
    assert result["lookups"] == 11
    assert result["problems"] == ["more than 10 DNS lookups (11): receivers treat this as a permerror"]
    # A receiver stops at the first match: the first include passes before the limit, ip4 after it is never reached.
    assert result["covered"] == {"192.0.2.1": False, "198.51.100.0": True}


def test_terms_after_all_are_not_counted_but_still_parsed():
    result = run(txt("example.com", "v=spf1 ip4:192.0.2.1 -all include:x.example a mx"), ["192.0.2.1"])
    assert result["lookups"] == 0 and result["problems"] == []
    result = run(txt("example.com", "v=spf1 ip4:192.0.2.1 -all bar"), ["192.0.2.1"])
    assert result["problems"] == ['unknown mechanism "bar" at example.com (a permerror)']
    assert result["covered"] == {"192.0.2.1": False}


def test_include_loop_is_guarded():
    zone = txt("example.com", "v=spf1 include:a.example ip4:192.0.2.1 -all")
    zone.update(txt("a.example", "v=spf1 include:b.example -all"))
    zone.update(txt("b.example", "v=spf1 include:a.example -all"))
    resolver = FakeResolver(zone)
    result = spf.check(resolver, "example.com", ["192.0.2.1"])
    assert result["problems"] == ["include:a.example loops back (example.com -> a.example -> b.example -> a.example): "
                                  "a permerror"]
    assert result["lookups"] == 3 and result["covered"] == {"192.0.2.1": False}
    assert len(resolver.asked) == 3


def test_deep_includes_are_cut():
    zone = {}
    for n in range(15):
        zone.update(txt("d%d.example" % n, "v=spf1 include:d%d.example -all" % (n + 1)))
    result = run(zone, ["192.0.2.1"], domain="d0.example")
    assert result["problems"] == ["include:d11.example is nested too deep or too far (not followed): a permerror",
                                  "more than 10 DNS lookups (11): receivers treat this as a permerror"]


def test_include_without_record():
    zone = txt("example.com", "v=spf1 include:foo.example ip4:192.0.2.1 -all")
    zone[("foo.example", "TXT")] = ["not spf"]
    result = run(zone, ["192.0.2.1"])
    assert result["problems"] == ["include:foo.example has no SPF record (a permerror)"]
    assert result["covered"] == {"192.0.2.1": False} and result["lookups"] == 1


def test_dns_failures_are_temperrors():
    zone = txt("example.com", "v=spf1 include:slow.example ip4:192.0.2.1 -all")
    zone[("slow.example", "TXT")] = "TIMEOUT"
    result = run(zone, ["192.0.2.1"])
    assert result["problems"] == ["TXT lookup for slow.example failed: no answer from 192.0.2.53:53 in 2.0 s"]
    assert result["covered"] == {"192.0.2.1": False}
    result = run({("example.com", "TXT"): "SERVFAIL"}, ["192.0.2.1"])
    assert result["problems"] == ["TXT lookup for example.com failed: SERVFAIL"] and result["record"] is None


def test_unevaluated_terms_are_noted_and_counted():
    zone = txt("example.com",
               "v=spf1 ptr exists:%{i}.x.example a:%{d}.example ip4:192.0.2.1 exp=explain.%{d} -all")
    result = run(zone, ["192.0.2.1", "192.0.2.2"])
    assert result["problems"] == [
        "ptr at example.com is deprecated (RFC 7208 5.5); not evaluated here",
        '"exists:%{i}.x.example" at example.com uses a macro, not expanded here (treated as no match)',
        '"a:%{d}.example" at example.com uses a macro, not expanded here (treated as no match)',
    ]
    assert result["lookups"] == 3 and result["covered"] == {"192.0.2.1": True, "192.0.2.2": False}
    result = run(txt("example.com", "v=spf1 exists:x.example -all"), [])
    assert result["problems"] == ['"exists:x.example" at example.com is not evaluated here (treated as no match)']


@pytest.mark.parametrize("term", ["ip4:192.0.2.300", "ip4:2001:db8::1", "ip6:192.0.2.1", "a/33", "mx//129", "include",
                                  "all:x", "ip4"])
def test_bad_terms(term):
    result = run(txt("example.com", "v=spf1 ip4:192.0.2.1 %s -all" % term), ["192.0.2.1"])
    assert result["problems"] == ['bad term "%s" at example.com (a permerror)' % term]
    assert result["covered"] == {"192.0.2.1": False}


def test_unknown_modifiers_are_ignored_and_bad_addresses_noted():
    result = run(txt("example.com", "v=spf1 foo=bar ip4:192.0.2.1 -all"), ["192.0.2.1", "mail.example.com"])
    assert result["covered"] == {"192.0.2.1": True, "mail.example.com": False}
    assert result["problems"] == ["'mail.example.com' is not an IP address"]
