"""The records of a stack, as upstream asks for them (docs/upstream-deliverability.md)."""

from ansible_collections.owlat.selfhost.plugins.filter.dns_records import dns_records

STACK = {
    "stack": "acme", "app_hostname": "App.acme.example", "api_hostname": "api.acme.example",
    "actions_hostname": "actions.acme.example.", "web_address": "203.0.113.10", "email_domain": "acme.example",
    "ehlo_hostname": "mail.acme.example", "return_path_domain": "bounces.acme.example",
    "sending_addresses": ["203.0.113.11", "203.0.113.12", "203.0.113.11"],
}


def lines(stack):
    return [r["line"] for r in dns_records(stack)]


def test_every_record_of_a_stack_in_zone_file_syntax():
    assert lines(STACK) == [
        "app.acme.example. 3600 IN A 203.0.113.10",
        "api.acme.example. 3600 IN A 203.0.113.10",
        "actions.acme.example. 3600 IN A 203.0.113.10",
        "mail.acme.example. 3600 IN A 203.0.113.11",
        "mail.acme.example. 3600 IN A 203.0.113.12",
        "11.113.0.203.in-addr.arpa. 3600 IN PTR mail.acme.example.",
        "12.113.0.203.in-addr.arpa. 3600 IN PTR mail.acme.example.",
        "bounces.acme.example. 3600 IN MX 10 mail.acme.example.",
        'bounces.acme.example. 3600 IN TXT "v=spf1 ip4:203.0.113.11 ip4:203.0.113.12 ~all"',
        'acme.example. 3600 IN TXT "v=spf1 ip4:203.0.113.11 ip4:203.0.113.12 -all"',
        '_dmarc.acme.example. 3600 IN TXT "v=DMARC1; p=none"',
        "; <selector>._domainkey.acme.example. 3600 IN TXT  (DKIM: the app makes the key when the domain is added "
        "(selector s<epoch-ms>); copy the record it shows)",
    ]


def test_each_record_says_where_upstream_asks_for_it():
    codes = [r["code"] for r in dns_records(STACK)]
    assert codes == ["A1"] * 3 + ["A2"] * 2 + ["P1"] * 2 + ["M1", "S2", "S1", "Q1", "K1"]
    dkim = dns_records(STACK)[-1]
    assert dkim["value"] is None and dkim["type"] == "TXT"


def test_ipv6_sending_address_qualifier_and_dmarc_reports():
    stack = dict(STACK, sending_addresses=["2001:db8::25"], web_address="2001:db8::80", spf_qualifier="-all",
                 dmarc_rua="mailto:dmarc@acme.example")
    records = {(r["code"], r["type"]): r["value"] for r in dns_records(stack)}
    assert records["A1", "AAAA"] == "2001:db8::80"
    assert records["A2", "AAAA"] == "2001:db8::25"
    assert records["P1", "PTR"] == "mail.acme.example."
    assert records["S2", "TXT"] == "v=spf1 ip6:2001:db8::25 -all"
    assert records["Q1", "TXT"] == "v=DMARC1; p=none; rua=mailto:dmarc@acme.example"
    ptr = [r for r in dns_records(stack) if r["type"] == "PTR"][0]
    assert ptr["name"].endswith(".8.b.d.0.1.0.0.2.ip6.arpa.")


def test_an_unknown_web_address_is_a_record_to_fill_in():
    record = dns_records(dict(STACK, web_address=""))[0]
    assert record["value"] is None and record["line"].startswith("; app.acme.example. 3600 IN A ")


def test_a_sending_address_with_its_own_ehlo_name_gets_its_own_a_and_ptr():
    stack = dict(STACK, ehlo_hostnames={"203.0.113.12": "Mail2.acme.example"})
    found = [r["line"] for r in dns_records(stack) if r["code"] in ("A2", "P1", "M1")]
    assert found == [
        "mail.acme.example. 3600 IN A 203.0.113.11",
        "mail2.acme.example. 3600 IN A 203.0.113.12",
        "11.113.0.203.in-addr.arpa. 3600 IN PTR mail.acme.example.",
        "12.113.0.203.in-addr.arpa. 3600 IN PTR mail2.acme.example.",
        "bounces.acme.example. 3600 IN MX 10 mail.acme.example.",
    ]


def test_the_bounce_mx_names_the_first_sending_addresses_ehlo_name():
    stack = dict(STACK, ehlo_hostnames={"203.0.113.11": "mx1.acme.example"})
    mx = [r["value"] for r in dns_records(stack) if r["code"] == "M1"]
    assert mx == ["10 mx1.acme.example."]
