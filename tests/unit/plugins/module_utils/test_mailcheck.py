"""The deliverability checks against a fake DNS: all published -> every check OK; each record missing or wrong, one at
a time -> exactly that check fails, naming the record."""

import socket
import threading

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _mailcheck
from ansible_collections.owlat.selfhost.plugins.module_utils._dns import records
from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Answer

STACK = {
    "stack": "north", "app_hostname": "app.north.test", "api_hostname": "api.north.test",
    "actions_hostname": "actions.north.test", "web_address": "192.0.2.10", "email_domain": "north.test",
    "ehlo_hostname": "mail.north.test", "return_path_domain": "bounces.north.test",
    "sending_addresses": ["192.0.2.11", "192.0.2.12"], "ehlo_hostnames": {"192.0.2.12": "mail2.north.test"},
}


class FakeDNS:
    """A zone as a dict {(name, type): [values]}; a (name, type) mapped to an rcode string fails that way."""

    def __init__(self, zone):
        self.zone = zone

    def query(self, name, rtype):
        name = name.rstrip(".").lower() + "."
        value = self.zone.get((name, rtype))
        if isinstance(value, str):
            return Answer(value, [], "fake " + value)
        if value is None and not any(n == name for n, _ in self.zone):
            return Answer("NXDOMAIN", [], "")
        return Answer("NOERROR", list(value or []), "")


def published(stack=STACK):
    zone = {}
    for record in records(stack):
        if record["value"] is not None:
            zone.setdefault((record["name"], record["type"]), []).append(record["value"])
    return zone


def statuses(zone, stack=STACK):
    return [(r["status"], r["code"], r["name"]) for r in _mailcheck.check_stack_dns(FakeDNS(zone), {"records": records(stack)})]


def test_everything_published_is_ok_and_dkim_is_left_to_the_app():
    found = statuses(published())
    assert [s for s in found if s[0] != "OK"] == [("SKIP", "K1", "<selector>._domainkey.north.test.")]
    assert [s[1] for s in found] == ["A1", "A1", "A1", "A2", "A2", "P1", "P1", "M1", "S2", "S1", "Q1", "K1"]


def drop(name, rtype):
    zone = published()
    del zone[name, rtype]
    return zone


def change(name, rtype, values):
    zone = published()
    zone[name, rtype] = values
    return zone


BROKEN = [
    # (why, zone, the one check that must fail, what its text says)
    ("app A missing", drop("app.north.test.", "A"), ("A1", "app.north.test."), "missing"),
    ("api A wrong", change("api.north.test.", "A", ["192.0.2.99"]), ("A1", "api.north.test."), "different: answers 192.0.2.99"),
    # The EHLO name's A record is also the forward half of the PTR's confirmation: both fail, the A record first.
    ("EHLO A missing", drop("mail.north.test.", "A"), ("A2", "mail.north.test."), "missing"),
    ("second EHLO A wrong", change("mail2.north.test.", "A", ["192.0.2.11"]), ("A2", "mail2.north.test."), "different: answers 192.0.2.11"),
    ("PTR missing", drop("11.2.0.192.in-addr.arpa.", "PTR"), ("P1", "11.2.0.192.in-addr.arpa."), "no-ptr"),
    ("PTR to a name that resolves back, but is not the EHLO name",
     dict(list(change("12.2.0.192.in-addr.arpa.", "PTR", ["host12.north.test."]).items()) + [(("host12.north.test.", "A"), ["192.0.2.12"])]),
     ("P1", "12.2.0.192.in-addr.arpa."), "ehlo-mismatch"),
    ("PTR to a name that does not resolve back", change("12.2.0.192.in-addr.arpa.", "PTR", ["mail.north.test."]),
     ("P1", "12.2.0.192.in-addr.arpa."), "forward-mismatch"),
    ("PTR not a FQDN", change("11.2.0.192.in-addr.arpa.", "PTR", ["localhost."]), ("P1", "11.2.0.192.in-addr.arpa."), "ptr-not-fqdn"),
    ("MX missing", drop("bounces.north.test.", "MX"), ("M1", "bounces.north.test."), "missing"),
    ("MX elsewhere", change("bounces.north.test.", "MX", ["10 mx.other.test."]), ("M1", "bounces.north.test."), "different"),
    ("return-path SPF missing", change("bounces.north.test.", "TXT", []), ("S2", "bounces.north.test."), "no SPF record"),
    ("return-path SPF without an address", change("bounces.north.test.", "TXT", ["v=spf1 ip4:192.0.2.11 ~all"]),
     ("S2", "bounces.north.test."), "does not pass 192.0.2.12"),
    ("domain SPF twice", change("north.test.", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all", "v=spf1 -all"]), ("S1", "north.test."), "two"),
    ("DMARC missing", drop("_dmarc.north.test.", "TXT"), ("Q1", "_dmarc.north.test."), "missing"),
    ("DMARC without policy", change("_dmarc.north.test.", "TXT", ["v=DMARC1; rua=mailto:x@north.test"]), ("Q1", "_dmarc.north.test."),
     "no valid p= policy"),
]


@pytest.mark.parametrize("why,zone,failing,text", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_record_fails_exactly_its_check(why, zone, failing, text):
    results = _mailcheck.check_stack_dns(FakeDNS(zone), {"records": records(STACK)})
    failed = [r for r in results if r["status"] == "FAIL"]
    if failing[0] == "A2":
        assert failed[1]["code"] == "P1" and "forward-mismatch" in failed[1]["found"]
        failed = failed[:1]
    assert [(r["code"], r["name"]) for r in failed] == [failing], why
    assert text in failed[0]["found"], failed[0]
    assert failed[0]["fix"]
    assert all(r["status"] in ("OK", "SKIP") for r in results if r["status"] != "FAIL")


def test_spf_covering_by_a_wider_policy_is_ok_and_an_extra_address_warns():
    zone = change("north.test.", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    zone["app.north.test.", "A"] = ["192.0.2.10", "192.0.2.77"]
    results = {(r["code"], r["name"]): r for r in _mailcheck.check_stack_dns(FakeDNS(zone), {"records": records(STACK)})}
    assert results["S1", "north.test."]["status"] == "OK"
    assert results["A1", "app.north.test."]["status"] == "WARN"
    assert "also answers 192.0.2.77" in results["A1", "app.north.test."]["found"]


def test_a_failing_resolver_is_a_warning_not_a_verdict():
    zone = change("11.2.0.192.in-addr.arpa.", "PTR", "SERVFAIL")
    results = {(r["code"], r["name"]): r for r in _mailcheck.check_stack_dns(FakeDNS(zone), {"records": records(STACK)})}
    assert results["P1", "11.2.0.192.in-addr.arpa."]["status"] == "WARN"
    assert "lookup-error" in results["P1", "11.2.0.192.in-addr.arpa."]["found"]


def smtp_server(lines):
    """A one-connection SMTP server that answers with the given replies, in order, one per command."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(lines[0].encode() + b"\r\n")
            reader = conn.makefile("rb")
            for reply in lines[1:]:
                if not reader.readline():
                    return
                conn.sendall(reply.encode() + b"\r\n")
            reader.readline()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_smtp_banner_without_starttls_warns_with_the_fix():
    port = smtp_server(["220 mail.north.test ESMTP", "250-mail.north.test\r\n250 SIZE 1000", "221 bye"])
    result = _mailcheck._smtp_session("127.0.0.1", port, "mail.north.test.", "mail.north.test", 3, None, "smtp-in", "SMTP in")
    assert result["status"] == "WARN" and "no STARTTLS offered" in result["found"] and "BOUNCE_TLS_CERT" in result["fix"]


def test_smtp_nobody_listening_fails():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = _mailcheck._smtp_session("127.0.0.1", port, "mail.north.test.", "mail.north.test", 1, None, "smtp-in", "SMTP in")
    assert result["status"] == "FAIL" and "no connection" in result["found"]


def test_outbound_port_25_to_a_listener_and_to_nobody():
    port = smtp_server(["220 mx.example.org ESMTP"])
    assert _mailcheck.outbound_probe(FakeDNS({}), "127.0.0.1:%d" % port, 3)["status"] == "OK"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = sock.getsockname()[1]
    sock.close()
    result = _mailcheck.outbound_probe(FakeDNS({}), "127.0.0.1:%d" % closed, 1)
    assert result["status"] == "FAIL" and "outbound port 25 is blocked" in result["fix"]


def test_rows_order_by_host_and_stack_and_say_the_fix():
    results = [dict(status="FAIL", code="M1", check="MX", name="b.", found="missing", fix="publish b. MX 10 m.", host="h2", stack="s"),
               dict(status="OK", code="A1", check="A", name="a.", found="1.2.3.4", fix="", host="h1", stack="t")]
    out = _mailcheck.rows(results)
    assert [r["host"] for r in out] == ["h1", "h2"]
    assert out[1]["detail"] == "missing -> publish b. MX 10 m."
    assert out[1]["summary"] == "stack s on h2: M1 MX b. (missing)"
