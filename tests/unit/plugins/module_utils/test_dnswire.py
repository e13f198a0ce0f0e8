"""_dnswire against an in-process DNS server (UDP and TCP on one 127.0.0.1 port) whose replies are built by hand
here, so the resolver's wire code is checked against independent bytes."""

import socket
import struct
import threading
import time

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _dnswire as dnswire
from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Answer, Resolver

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA = 1, 2, 5, 6, 12, 15, 16, 28


def wire(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".") if label) + b"\0"


def question_of(query):
    """(qname lower-case without dot, qtype, the question's bytes)."""
    offset, labels = 12, []
    while query[offset]:
        labels.append(query[offset + 1:offset + 1 + query[offset]].decode().lower())
        offset += 1 + query[offset]
    return ".".join(labels), struct.unpack_from("!H", query, offset + 1)[0], query[12:offset + 5]


def rr(owner, rtype, rdata, ttl=300):
    """One resource record; owner: wire bytes (a name or a compression pointer such as b'\\xc0\\x0c')."""
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def reply(query, answers=(), rcode=0, tc=False, qid=None, question=None):
    qid = struct.unpack_from("!H", query)[0] if qid is None else qid
    question = question_of(query)[2] if question is None else question
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + question + b"".join(answers)


HERE = b"\xc0\x0c"  # pointer to the question name, at offset 12 of every reply


def zone(query, transport):
    """The fixed records of the test server: a list of datagrams to send back (empty: stay silent)."""
    name, qtype, _ = question_of(query)
    if name == "a.example" and qtype == A:
        return [reply(query, [rr(HERE, A, bytes([192, 0, 2, 1])), rr(HERE, A, bytes([192, 0, 2, 2]))])]
    if name == "v6.example" and qtype == AAAA:
        return [reply(query, [rr(HERE, AAAA, bytes.fromhex("20010db8000000000000000000000001"))])]
    if name == "1.2.0.192.in-addr.arpa" and qtype == PTR:
        return [reply(query, [rr(HERE, PTR, wire("Mail.Example."))])]
    if name == "example" and qtype == MX:
        # Exchange names compressed: 'mail' + pointer to the question name 'example'.
        return [reply(query, [rr(HERE, MX, struct.pack("!H", 10) + b"\x04mail" + HERE),
                              rr(HERE, MX, struct.pack("!H", 20) + wire("backup.example"))])]
    if name == "txt.example" and qtype == TXT:
        return [reply(query, [rr(HERE, TXT, b"\x14v=spf1 ip4:192.0.2.1\x05 -all"),
                              rr(HERE, TXT, b"\x06caf\xc3\xa9\xff")])]
    if name == "www.example" and qtype == A:
        # A CNAME chain as a recursive server returns it; the A record's owner points into the CNAME's rdata.
        cname = rr(HERE, CNAME, wire("a.example"))
        # Its rdata follows the header and question (the query less its 11-byte OPT) and the CNAME's 12 fixed bytes.
        rdata_at = len(query) - 11 + 12
        return [reply(query, [cname, rr(struct.pack("!H", 0xC000 | rdata_at), A, bytes([192, 0, 2, 1]))])]
    if name == "alias.example" and qtype == CNAME:
        # A pointer to the middle of the question name ('example').
        return [reply(query, [rr(HERE, CNAME, b"\x06target" + struct.pack("!H", 0xC000 | 12 + 6))])]
    if name == "example" and qtype == NS:
        return [reply(query, [rr(HERE, NS, wire("ns1.example")), rr(HERE, NS, b"\x03ns2" + struct.pack("!H", 0xC00C))])]
    if name == "example" and qtype == SOA:
        serials = struct.pack("!5I", 2024010101, 7200, 900, 1209600, 300)
        rdata = wire("ns1.example") + wire("hostmaster.example") + serials
        return [reply(query, [rr(HERE, SOA, rdata)])]
    if name == "missing.example":
        return [reply(query, rcode=3)]
    if name == "broken.example":
        return [reply(query, rcode=2)]
    if name == "refused.example":
        # No question section, as some servers send errors.
        return [struct.pack("!HHHHHH", struct.unpack_from("!H", query)[0], 0x8185, 0, 0, 0, 0)]
    if name == "spoofed.example":
        # A wrong id and a wrong question first; both must be ignored.
        good = reply(query, [rr(HERE, A, bytes([192, 0, 2, 9]))])
        qid = struct.unpack_from("!H", query)[0] ^ 0x5555
        return [reply(query, [rr(HERE, A, bytes([6, 6, 6, 6]))], qid=qid),
                reply(query, [rr(HERE, A, bytes([6, 6, 6, 7]))],
                      question=wire("other.example") + struct.pack("!HH", A, 1)),
                good]
    if name == "onlyspoofed.example":
        return [reply(query, [rr(HERE, A, bytes([6, 6, 6, 6]))], qid=struct.unpack_from("!H", query)[0] ^ 1)]
    if name == "big.example" and qtype == TXT:
        if transport == "udp":
            return [reply(query, tc=True)]
        return [reply(query, [rr(HERE, TXT, bytes([200]) + b"x" * 200) for _ in range(10)])]
    if name == "loop.example":
        # A record owner pointing at itself: must be an error, not a hang.
        at = len(reply(query))
        return [reply(query, [rr(struct.pack("!H", 0xC000 | at), A, bytes(4))])]
    if name == "forward.example":
        # Two names pointing at each other (a forward pointer): also an error.
        at = len(reply(query))
        return [reply(query, [rr(b"\x01x" + struct.pack("!H", 0xC000 | at + 18), A, bytes(4)),
                              rr(struct.pack("!H", 0xC000 | at), A, bytes(4))])]
    if name == "labelloop.example":
        # A label, then a pointer back to that label: a loop through a valid-looking name.
        at = len(reply(query))
        return [reply(query, [rr(b"\x01x" + struct.pack("!H", 0xC000 | at), A, bytes(4))])]
    if name == "badlen.example" and qtype == A:
        return [reply(query, [rr(HERE, A, bytes(5))])]
    if name == "a.example":
        return [reply(query)]  # the name exists, without records of this type
    return [reply(query, rcode=3)]


class FakeDns(object):
    def __init__(self, handler=zone, host="127.0.0.1", family=socket.AF_INET):
        self.handler, self.queries, self.stop = handler, [], threading.Event()
        # UDP and TCP on one port: the TCP side of a free UDP port may be taken (other test processes run beside).
        for attempt in range(20):
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.udp.bind((host, 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(family, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                if attempt == 19:
                    raise
        self.tcp.listen(5)
        for sock in (self.udp, self.tcp):
            sock.settimeout(0.05)
        self.threads = [threading.Thread(target=loop, daemon=True) for loop in (self.serve_udp, self.serve_tcp)]
        for thread in self.threads:
            thread.start()

    def serve_udp(self):
        while not self.stop.is_set():
            try:
                query, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            self.queries.append(("udp", query))
            for datagram in self.handler(query, "udp"):
                self.udp.sendto(datagram, peer)

    def serve_tcp(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2)
                size = struct.unpack("!H", conn.recv(2))[0]
                query = b""
                while len(query) < size:
                    query += conn.recv(size - len(query))
                self.queries.append(("tcp", query))
                for message in self.handler(query, "tcp"):
                    conn.sendall(struct.pack("!H", len(message)) + message)

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def server():
    fake = FakeDns()
    yield fake
    fake.close()


@pytest.fixture
def resolver(server):
    return Resolver(["127.0.0.1:%d" % server.port], timeout=2)


@pytest.mark.parametrize("name, rtype, records", [
    ("a.example", "A", ["192.0.2.1", "192.0.2.2"]),
    ("a.example.", "a", ["192.0.2.1", "192.0.2.2"]),
    ("v6.example", "AAAA", ["2001:db8::1"]),
    ("1.2.0.192.in-addr.arpa.", "PTR", ["mail.example."]),
    ("example", "MX", ["10 mail.example.", "20 backup.example."]),
    ("txt.example", "TXT", ["v=spf1 ip4:192.0.2.1 -all", "caf\u00e9\ufffd"]),
    ("www.example", "A", ["192.0.2.1"]),
    ("alias.example", "CNAME", ["target.example."]),
    ("example", "NS", ["ns1.example.", "ns2.example."]),
    ("example", "SOA", ["ns1.example. hostmaster.example. 2024010101 7200 900 1209600 300"]),
    ("a.example", "TXT", []),
])
def test_records(resolver, name, rtype, records):
    assert resolver.query(name, rtype) == Answer("NOERROR", records, "")


@pytest.mark.parametrize("name, rcode", [
    ("missing.example", "NXDOMAIN"), ("broken.example", "SERVFAIL"), ("refused.example", "REFUSED"),
])
def test_error_rcodes(resolver, name, rcode):
    assert resolver.query(name, "A") == Answer(rcode, [], "")


def test_query_is_recursive_with_edns0(resolver, server):
    resolver.query("a.example", "A")
    (transport, query), = server.queries
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", query)
    assert (transport, flags, qd, an, ns, ar) == ("udp", 0x0100, 1, 0, 0, 1)
    assert query[12:] == wire("a.example") + struct.pack("!HH", A, 1) + b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    resolver.query("a.example", "A")
    ids = {struct.unpack_from("!H", q)[0] for _, q in server.queries}
    assert len(ids) == 2 or ids == {qid}  # random: two equal ids are possible, just unlikely


def test_mismatched_replies_are_ignored(resolver):
    assert resolver.query("spoofed.example", "A") == Answer("NOERROR", ["192.0.2.9"], "")


def test_only_mismatched_replies_time_out(server):
    answer = Resolver(["127.0.0.1:%d" % server.port], timeout=0.3).query("onlyspoofed.example", "A")
    assert answer == Answer("TIMEOUT", [], "no answer from 127.0.0.1:%d in 0.3 s" % server.port)


def test_truncated_reply_is_retried_over_tcp(resolver, server):
    answer = resolver.query("big.example", "TXT")
    assert answer == Answer("NOERROR", ["x" * 200] * 10, "")
    assert [transport for transport, _ in server.queries] == ["udp", "tcp"]


@pytest.mark.parametrize("name", ["loop.example", "labelloop.example", "forward.example", "badlen.example"])
def test_malformed_replies_are_errors(resolver, server, name):
    answer = resolver.query(name, "A")
    assert answer.rcode == "ERROR" and answer.records == []
    assert answer.error.startswith("127.0.0.1:%d: " % server.port)
    assert ("compression" in answer.error) == (name != "badlen.example")


def test_bad_names_are_errors():
    assert Resolver(["127.0.0.1:9"]).query("a..example", "A").rcode == "ERROR"
    assert Resolver(["127.0.0.1:9"]).query("x" * 64 + ".example", "A").rcode == "ERROR"
    assert Resolver(["127.0.0.1:9"]).query("caf\u00e9.example", "A").rcode == "ERROR"
    with pytest.raises(KeyError):
        Resolver(["127.0.0.1:9"]).query("a.example", "SRV")


@pytest.fixture
def silent():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_timeout(silent):
    started = time.monotonic()
    answer = Resolver(["127.0.0.1:%d" % silent], timeout=0.3).query("a.example", "A")
    assert answer == Answer("TIMEOUT", [], "no answer from 127.0.0.1:%d in 0.3 s" % silent)
    assert 0.25 < time.monotonic() - started < 1.5


def test_next_server_after_a_silent_one(silent, server):
    # The timeout is per server: 2 s so that a loaded machine (CI runs five legs at once) still hears the second one.
    resolver = Resolver(["127.0.0.1:%d" % silent, "127.0.0.1:%d" % server.port], timeout=2)
    assert resolver.query("a.example", "A") == Answer("NOERROR", ["192.0.2.1", "192.0.2.2"], "")


def test_first_answer_wins_whatever_its_rcode(server):
    other = FakeDns(lambda query, transport: [reply(query, [rr(HERE, A, bytes([198, 51, 100, 1]))])])
    try:
        resolver = Resolver(["127.0.0.1:%d" % server.port, "127.0.0.1:%d" % other.port])
        assert resolver.query("broken.example", "A") == Answer("SERVFAIL", [], "")
        assert other.queries == []
    finally:
        other.close()


def test_all_servers_failing_mixes_into_error(silent, server):
    # One server answers garbage, the other nothing: neither answered, and not only by silence. (A closed port's ICMP
    # refusal would do too, but another test process may take that port meanwhile.)
    answer = Resolver(["127.0.0.1:%d" % server.port, "127.0.0.1:%d" % silent], timeout=2.0).query("badlen.example", "A")
    assert answer.rcode == "ERROR"
    assert answer.error.startswith("127.0.0.1:%d: " % server.port)
    assert answer.error.endswith("; no answer from 127.0.0.1:%d in 2.0 s" % silent)


@pytest.mark.parametrize("entry, expected", [
    ("192.0.2.53", ("192.0.2.53", 53)),
    ("192.0.2.53:5353", ("192.0.2.53", 5353)),
    ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ("[2001:db8::53]", ("2001:db8::53", 53)),
    ("2001:db8::53", ("2001:db8::53", 53)),
])
def test_parse_nameserver(entry, expected):
    assert dnswire.parse_nameserver(entry) == expected


@pytest.mark.parametrize("entry", ["[::1", "[::1]x", "host:", "host:x"])
def test_parse_nameserver_errors(entry):
    with pytest.raises(ValueError):
        dnswire.parse_nameserver(entry)


def test_resolv_conf(tmp_path, server):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch example\n;nameserver 192.0.2.99\nnameserver 127.0.0.1  # local\n"
                    "options ndots:2\nnameserver ::1\n")
    resolver = Resolver(resolv_conf=str(conf), port=server.port, timeout=0.5)
    assert resolver.nameservers == [("127.0.0.1", server.port), ("::1", server.port)]
    assert resolver.query("a.example", "A").records == ["192.0.2.1", "192.0.2.2"]


def test_resolv_conf_fallbacks(tmp_path):
    assert Resolver(resolv_conf=str(tmp_path / "absent")).nameservers == [("127.0.0.1", 53)]
    (tmp_path / "empty").write_text("search example\n")
    assert Resolver([], resolv_conf=str(tmp_path / "empty")).nameservers == [("127.0.0.1", 53)]
    assert Resolver("192.0.2.53:5353", resolv_conf=str(tmp_path / "absent")).nameservers == [("192.0.2.53", 5353)]


def test_ipv6_server():
    try:
        fake = FakeDns(host="::1", family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        answer = Resolver(["[::1]:%d" % fake.port]).query("v6.example", "AAAA")
        assert answer == Answer("NOERROR", ["2001:db8::1"], "")
    finally:
        fake.close()
