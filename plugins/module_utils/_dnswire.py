# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""A tiny DNS stub resolver on the standard library, for modules that run on the managed host (no dnspython there).

It asks one question of the recursive servers in resolv.conf (or given ones) over UDP with EDNS0, retries over TCP when
the reply is truncated, and returns the records of the asked type in presentation format. The first server that
answers wins, whatever its rcode; the rest are only asked when one is silent or unreachable.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import collections
import ipaddress
import secrets
import socket
import struct
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
# The EDNS0 payload size of DNS flag day 2020: fits common path MTUs without IP fragmentation.
PAYLOAD = 1232

# rcode: a name of RCODES, 'TIMEOUT' (no server answered) or 'ERROR' (unusable name, socket or parse error);
# records: presentation strings of the asked type from the answer section; error: '' or a short human text.
Answer = collections.namedtuple("Answer", "rcode records error")


class Malformed(ValueError):
    """A reply that does not parse."""


def encode_name(name):
    """Wire form of an ASCII name, with or without its trailing dot."""
    name = name[:-1] if name.endswith(".") else name
    out = b""
    for label in name.split(".") if name else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError("bad label %r in %r" % (label, name))
        out += bytes([len(raw)]) + raw
    if len(out) > 254:
        raise ValueError("name too long: %r" % name)
    return out + b"\0"


def _label_text(raw):
    # Bytes that would be ambiguous in presentation format (dot, backslash, space, non-ASCII) become \DDD.
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b not in (0x2E, 0x5C) else "\\%03d" % b for b in raw.lower())


def read_name(msg, offset):
    """(name in lower case with its trailing dot, offset after it in msg), following compression pointers."""
    labels, end, start, size = [], None, offset, 0
    while True:
        if offset >= len(msg):
            raise Malformed("name runs past the end of the message")
        length = msg[offset]
        if length >= 0xC0:
            if offset + 1 >= len(msg):
                raise Malformed("name runs past the end of the message")
            target = (length & 0x3F) << 8 | msg[offset + 1]
            # Only pointers before where this run of labels started: every jump goes back, so no loop is possible.
            if target >= start:
                raise Malformed("bad compression pointer")
            end = offset + 2 if end is None else end
            offset = start = target
        elif length >= 0x40:
            raise Malformed("unknown label type 0x%02x" % length)
        elif length == 0:
            break
        else:
            if offset + 1 + length > len(msg):
                raise Malformed("name runs past the end of the message")
            size += length + 1
            if size > 254:
                raise Malformed("name longer than 255 bytes")
            labels.append(_label_text(msg[offset + 1:offset + 1 + length]))
            offset += 1 + length
    return ".".join(labels) + ".", offset + 1 if end is None else end


def build_query(qid, name, qtype):
    # RD=1 (the servers are recursive), one question, one OPT record advertising PAYLOAD (RFC 6891).
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    opt = b"\0" + struct.pack("!HHIH", 41, PAYLOAD, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1) + opt


def _rdata_text(msg, start, end, rtype):
    rdata = msg[start:end]
    if rtype == 1 and len(rdata) == 4:
        return str(ipaddress.IPv4Address(rdata))
    if rtype == 28 and len(rdata) == 16:
        return str(ipaddress.IPv6Address(rdata))
    if rtype in (2, 5, 12):
        text, stop = read_name(msg, start)
    elif rtype == 15:
        exchange, stop = read_name(msg, start + 2)
        text = "%d %s" % (struct.unpack_from("!H", msg, start)[0], exchange)
    elif rtype == 16:
        # SPF/DMARC evaluators join a record's character-strings with nothing between them (RFC 7208 3.3).
        parts, stop = [], start
        while stop < end:
            parts.append(msg[stop + 1:stop + 1 + msg[stop]])
            stop += 1 + msg[stop]
        text = b"".join(parts).decode("utf-8", "replace")
    elif rtype == 6:
        mname, stop = read_name(msg, start)
        rname, stop = read_name(msg, stop)
        text = "%s %s %d %d %d %d %d" % ((mname, rname) + struct.unpack_from("!5I", msg, stop))
        stop += 20
    else:
        raise Malformed("bad %d-byte rdata for type %d" % (len(rdata), rtype))
    if stop != end:
        raise Malformed("rdata of type %d does not match its length" % rtype)
    return text


def parse_reply(msg, query, qtype):
    """(rcode name, truncated, records) of the reply to ``query``, or None when msg is not that reply (another id or
    question: ignored, as a spoofed or late datagram would be). Raises Malformed when the answer section is broken."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount, ancount = struct.unpack_from("!HHHH", msg)
    if qid != struct.unpack_from("!H", query)[0] or not flags & 0x8000:
        return None
    rcode = RCODES.get(flags & 0xF, "RCODE%d" % (flags & 0xF))
    offset = 12
    if qdcount == 0 and rcode != "NOERROR":
        # Some servers drop the question from error replies.
        return rcode, False, []
    try:
        name, offset = read_name(msg, offset)
    except Malformed:
        return None
    if qdcount != 1 or name != read_name(query, 12)[0] or msg[offset:offset + 4] != struct.pack("!HH", qtype, 1):
        return None
    offset += 4
    if flags & 0x0200:
        return rcode, True, None
    records = []
    try:
        for dummy in range(ancount):
            offset = read_name(msg, offset)[1]
            rtype, rclass, dummy, length = struct.unpack_from("!HHIH", msg, offset)
            offset += 10
            if offset + length > len(msg):
                raise Malformed("record runs past the end of the message")
            if rtype == qtype and rclass == 1:
                records.append(_rdata_text(msg, offset, offset + length, rtype))
            offset += length
    except (struct.error, IndexError) as exc:
        raise Malformed("truncated record: %s" % exc) from exc
    return rcode, False, records


def parse_nameserver(entry, port=53):
    """(host, port) of 'ip', 'ip:port' or '[v6]:port'; a bare IPv6 address keeps the default port."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("bad nameserver %r" % entry)
        return host, int(rest[1:]) if rest else port
    if entry.count(":") == 1:
        host, dummy, number = entry.partition(":")
        return host, int(number)
    return entry, port


def resolv_conf_nameservers(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    return [words[1] for words in (line.split() for line in lines) if len(words) > 1 and words[0] == "nameserver"]


def _recv_exact(sock, size, deadline):
    data = b""
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise Malformed("connection closed after %d of %d bytes" % (len(data), size))
        data += chunk
    return data


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


class Resolver(object):
    """``nameservers``: list of 'ip', 'ip:port' or '[v6]:port' (None or empty: resolv.conf's, else 127.0.0.1);
    ``timeout``: seconds per server (and again for the TCP retry). ``self.nameservers``: [(host, port)]."""

    def __init__(self, nameservers=None, timeout=2.0, port=53, resolv_conf="/etc/resolv.conf"):
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        entries = list(nameservers or []) or resolv_conf_nameservers(resolv_conf) or ["127.0.0.1"]
        self.nameservers = [parse_nameserver(entry, port) for entry in entries]
        self.timeout = float(timeout)

    def query(self, name, rtype):
        qtype = TYPES[rtype.upper()]
        try:
            query = build_query(secrets.randbits(16), name, qtype)
        except (ValueError, UnicodeError) as exc:
            return Answer("ERROR", [], "cannot ask for %r: %s" % (name, exc))
        failures, timeouts = [], 0
        for host, port in self.nameservers:
            where = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
            try:
                rcode, records = self._ask(host, port, query, qtype)
            except socket.timeout:
                timeouts += 1
                failures.append("no answer from %s in %s s" % (where, self.timeout))
            except (OSError, Malformed) as exc:
                failures.append("%s: %s" % (where, exc))
            else:
                return Answer(rcode, records, "")
        return Answer("TIMEOUT" if timeouts == len(failures) else "ERROR", [], "; ".join(failures))

    def _ask(self, host, port, query, qtype):
        # AI_NUMERICHOST: nameservers are addresses; resolving a name here would need the DNS we are replacing.
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0]
        family, address = info[0], info[4]
        deadline = time.monotonic() + self.timeout
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(address)  # a connected socket only gets datagrams from this server
            sock.send(query)
            reply = None
            while reply is None:
                sock.settimeout(_remaining(deadline))
                reply = parse_reply(sock.recv(65535), query, qtype)
        if not reply[1]:
            return reply[0], reply[2]
        deadline = time.monotonic() + self.timeout
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(address)
            sock.sendall(struct.pack("!H", len(query)) + query)
            size = struct.unpack("!H", _recv_exact(sock, 2, deadline))[0]
            reply = parse_reply(_recv_exact(sock, size, deadline), query, qtype)
        if reply is None or reply[1]:
            raise Malformed("the TCP reply does not answer the query")
        return reply[0], reply[2]
