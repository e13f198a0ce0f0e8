# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Health probes for the services of an Owlat stack, and waiting for them concurrently.

A check is a dict (the ``owlat_health`` module's suboptions): ``name``, ``kind`` (``http``,
``tcp_banner``, ``redis``, ``clamd``) and the kind's settings. Every probe answers
``(ok, last)``: whether it passed, and a short description of what it saw. Descriptions never contain
passwords or request headers.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

from ansible_collections.owlat.selfhost.plugins.module_utils._http import (
    HttpError,
    describe_error,
    parse_host_port,
    request,
    shorten,
    split_url,
)

KINDS = ("http", "tcp_banner", "redis", "clamd")
DEFAULT_PORTS = {"tcp_banner": 25, "redis": 6379, "clamd": 3310}
ATTEMPT_TIMEOUT = 10.0
LAST_MAX = 300
_MISSING = object()


# ---------------------------------------------------------------- checking the check definitions


def check_problem(check):
    """Why a check definition cannot run, or None. Called before any probe starts."""
    kind = check.get("kind") or "http"
    name = check.get("name")
    if kind not in KINDS:
        return "%s: unknown kind %r" % (name, kind)
    if kind == "http":
        if not check.get("url"):
            return "%s: url is required for kind http" % name
        try:
            split_url(check["url"])
            if check.get("connect_to"):
                parse_host_port(check["connect_to"], default_port=None)
        except ValueError as exc:
            return "%s: %s" % (name, exc)
        if not check.get("status", [200]):
            return "%s: status must list at least one code" % name
        return None
    if not check.get("host"):
        return "%s: host is required for kind %s" % (name, kind)
    if kind == "tcp_banner" and check.get("expect"):
        try:
            re.compile(check["expect"])
        except re.error as exc:
            return "%s: expect is not a valid regular expression (%s)" % (name, exc)
    return None


# ---------------------------------------------------------------- http


def json_lookup(data, path):
    """Follow a dotted path (``worker.alive``; list items by index, ``items.0``). Returns _MISSING if absent."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _same(got, want):
    # JSON true must not pass for an expected 1 (and the reverse): Python says True == 1.
    return got == want and isinstance(got, bool) == isinstance(want, bool)


def evaluate_http(status, body, expect_status=(200,), expect_json=None, contains=None):
    """Judge one HTTP answer. Returns (ok, last)."""
    problems = []
    if status not in expect_status:
        problems.append("want status %s" % "/".join(str(s) for s in expect_status))
    if contains and contains not in body:
        problems.append("body lacks %s" % json.dumps(contains))
    if expect_json:
        try:
            data = json.loads(body)
        except ValueError:
            data = _MISSING
            problems.append("body is not JSON")
        if data is not _MISSING:
            for path in sorted(expect_json):
                want = expect_json[path]
                got = json_lookup(data, path)
                if got is _MISSING:
                    problems.append("%s missing" % path)
                elif not _same(got, want):
                    problems.append("%s=%s, want %s" % (path, json.dumps(got), json.dumps(want)))
    last = "HTTP %d" % status
    if problems:
        last += " (%s)" % "; ".join(problems)
    excerpt = shorten(body, LAST_MAX)
    if excerpt:
        last += ": " + excerpt
    return not problems, shorten(last, LAST_MAX)


def probe_http(check, timeout):
    try:
        response = request(
            check["url"],
            method=check.get("method") or "GET",
            headers=check.get("headers"),
            timeout=timeout,
            validate_certs=check.get("validate_certs", True) is not False,
            ca_path=check.get("ca_path"),
            connect_to=check.get("connect_to"),
        )
    except HttpError as exc:
        return False, shorten(str(exc), LAST_MAX)
    return evaluate_http(
        response.status,
        response.text(),
        expect_status=check.get("status") or [200],
        expect_json=check.get("json"),
        contains=check.get("contains"),
    )


# ---------------------------------------------------------------- plain TCP protocols


def _read_until(sock, terminators, limit=4096):
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(limit - len(data))
        except (socket.timeout, TimeoutError):
            if data:
                break
            raise
        if not chunk:
            break
        data += chunk
        if any(t in data for t in terminators):
            break
    return data


def _first_line(data):
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")


def _address(check, kind):
    return check["host"], int(check.get("port") or DEFAULT_PORTS[kind])


def probe_tcp_banner(check, timeout):
    with socket.create_connection(_address(check, "tcp_banner"), timeout=timeout) as sock:
        line = _first_line(_read_until(sock, (b"\n",)))
    if not line:
        return False, "connected, but no banner line came"
    expect = check.get("expect")
    if expect and not re.search(expect, line):
        return False, shorten("banner %s does not match %s" % (json.dumps(line), json.dumps(expect)), LAST_MAX)
    return True, shorten("banner: %s" % line, LAST_MAX)


def _resp_command(*words):
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        raw = word.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def probe_redis(check, timeout):
    with socket.create_connection(_address(check, "redis"), timeout=timeout) as sock:
        if check.get("password"):
            sock.sendall(_resp_command("AUTH", check["password"]))
            answer = _first_line(_read_until(sock, (b"\n",)))
            if answer != "+OK":
                return False, shorten("AUTH: %s" % (answer or "connection closed"), LAST_MAX)
        sock.sendall(_resp_command("PING"))
        answer = _first_line(_read_until(sock, (b"\n",)))
    if answer == "+PONG":
        return True, "PONG"
    return False, shorten("PING: %s" % (answer or "connection closed"), LAST_MAX)


def probe_clamd(check, timeout):
    with socket.create_connection(_address(check, "clamd"), timeout=timeout) as sock:
        sock.sendall(b"zPING\0")
        answer = _read_until(sock, (b"\0",)).rstrip(b"\0\r\n").decode("utf-8", errors="replace")
    if answer == "PONG":
        return True, "PONG"
    return False, shorten("PING: %s" % (answer or "connection closed"), LAST_MAX)


PROBES = {"http": probe_http, "tcp_banner": probe_tcp_banner, "redis": probe_redis, "clamd": probe_clamd}


def probe(check, timeout):
    """One attempt; never raises."""
    try:
        return PROBES[check.get("kind") or "http"](check, timeout)
    except Exception as exc:  # pylint: disable=broad-except
        return False, shorten(describe_error(exc), LAST_MAX)


# ---------------------------------------------------------------- waiting


def wait_for(check, interval, start=None, clock=time.monotonic, sleep=time.sleep):
    """Probe until the check passes or its ``timeout`` (seconds since ``start``) has passed."""
    start = clock() if start is None else start
    deadline = start + float(check.get("timeout") or 0)
    while True:
        remaining = deadline - clock()
        ok, last = probe(check, max(0.5, min(ATTEMPT_TIMEOUT, remaining)))
        now = clock()
        if ok or now >= deadline:
            return dict(name=check["name"], healthy=ok, seconds=round(now - start, 1), last=last)
        sleep(max(0.0, min(interval, deadline - now)))


def run_checks(checks, interval):
    """Run every check in its own thread; results in the order of ``checks``."""
    start = time.monotonic()
    results = [None] * len(checks)

    def worker(index, check):
        results[index] = wait_for(check, interval, start)

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(checks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def render_table(services, last_width=100):
    rows = [("SERVICE", "HEALTHY", "SECONDS", "LAST ANSWER")]
    for svc in services:
        rows.append((svc["name"], "yes" if svc["healthy"] else "NO", "%.1f" % svc["seconds"], shorten(svc["last"], last_width)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        lines.append("  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3])
    return "\n".join(line.rstrip() for line in lines) + "\n"


def failure_message(services, checks):
    """``unhealthy: <name> (after <n>s; last answer: <last>) <hint>`` for each failed check, joined by "; "."""
    parts = []
    for svc, check in zip(services, checks):
        if svc["healthy"]:
            continue
        text = "unhealthy: %s (after %ss; last answer: %s)" % (svc["name"], _seconds(svc["seconds"]), svc["last"])
        hint = check.get("hint")
        if hint:
            text += " " + hint
        parts.append(text)
    return "; ".join(parts)


def _seconds(value):
    return ("%.1f" % value).rstrip("0").rstrip(".")
