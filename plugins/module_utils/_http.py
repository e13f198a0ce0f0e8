# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""A small HTTP(S) client on the standard library, for modules that run on the managed host.

It does what the modules need and ``ansible.module_utils.urls`` makes awkward:

* ``connect_to``: dial one address (``127.0.0.1:443``) while the URL's host name is still used for
  TLS SNI, certificate verification and the ``Host`` header — probing ``https://app.example.com``
  through the local reverse proxy before DNS points at the host;
* a CA file of its own (``ca_path``) or no verification at all (``validate_certs=False``);
* any status code is an answer (4xx/5xx are returned, not raised); only failing to get an answer
  (refused, timed out, TLS error, name not resolved) raises :class:`HttpError`.

Proxy environment variables are ignored on purpose: every URL these modules call is the host itself
or its own container network. Redirects are not followed.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit

DEFAULT_MAX_BODY = 1024 * 1024


class HttpError(Exception):
    """No HTTP answer was received (connection, TLS, timeout or protocol failure)."""


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.text())

    def excerpt(self, limit=200):
        """The body on one line, cut to ``limit`` characters."""
        return shorten(self.text(), limit)


def shorten(text, limit):
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 3)] + "..."


def parse_host_port(value, default_port=None):
    """Split ``host:port`` (``[v6]:port`` for IPv6). The port may be omitted when a default is given."""
    value = (value or "").strip()
    if not value:
        raise ValueError("empty address")
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("%r: expected [address]:port" % value)
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, None
    if not port:
        if default_port is None:
            raise ValueError("%r: no port (expected host:port)" % value)
        return host, int(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%r: invalid port" % value)
    return host, int(port)


def split_url(url):
    """Return (scheme, host, port, path) of an http(s) URL; path includes the query string."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("%r is not an http:// or https:// URL" % url)
    if not parts.hostname:
        raise ValueError("%r has no host" % url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("%r has an invalid port" % url)
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname, port, path


def make_ssl_context(validate_certs=True, ca_path=None):
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_path or None)


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS connection that dials (host, port) but presents ``server_hostname`` for SNI/verification."""

    def __init__(self, host, port, server_hostname, context, timeout):
        super().__init__(host, port, timeout=timeout, context=context)
        self._owlat_context = context
        self._owlat_server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._owlat_context.wrap_socket(self.sock, server_hostname=self._owlat_server_hostname)


def _host_header(host, port, scheme):
    if ":" in host:
        host = "[%s]" % host
    if (scheme, port) in (("http", 80), ("https", 443)):
        return host
    return "%s:%d" % (host, port)


def describe_error(exc):
    """A short, secret-free description of a connection-level failure."""
    if isinstance(exc, HttpError):
        return str(exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve host name (%s)" % (exc.strerror or exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed: %s" % (exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % (exc.reason or exc)
    if isinstance(exc, http.client.HTTPException):
        return "invalid HTTP answer: %s" % (str(exc) or exc.__class__.__name__)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or exc.__class__.__name__


def request(
    url,
    method="GET",
    headers=None,
    body=None,
    json_body=None,
    timeout=10,
    validate_certs=True,
    ca_path=None,
    connect_to=None,
    max_body=DEFAULT_MAX_BODY,
):
    """Send one request and return a :class:`Response`; raise :class:`HttpError` when no answer came.

    ``connect_to`` is ``host:port`` to dial instead of the URL's host and port; the URL's host is still
    sent as ``Host`` and, for https, used for SNI and certificate verification.
    Raises ValueError for a malformed URL or ``connect_to``.
    """
    scheme, host, port, path = split_url(url)
    dial_host, dial_port = host, port
    if connect_to:
        dial_host, dial_port = parse_host_port(connect_to, default_port=port)
    send_headers = {"Host": _host_header(host, port, scheme), "User-Agent": "owlat.selfhost", "Accept": "*/*"}
    for key, value in (headers or {}).items():
        for existing in [k for k in send_headers if k.lower() == str(key).lower()]:
            del send_headers[existing]
        send_headers[str(key)] = str(value)
    if json_body is not None:
        body = json.dumps(json_body).encode("utf-8")
        send_headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    if scheme == "https":
        conn = _HTTPSConnection(dial_host, dial_port, host, make_ssl_context(validate_certs, ca_path), timeout)
    else:
        conn = http.client.HTTPConnection(dial_host, dial_port, timeout=timeout)
    try:
        try:
            conn.request(method.upper(), path, body=body, headers=send_headers)
            resp = conn.getresponse()
            data = resp.read(max_body)
            return Response(resp.status, resp.reason, dict(resp.getheaders()), data)
        except (OSError, http.client.HTTPException) as exc:
            raise HttpError(describe_error(exc)) from exc
    finally:
        conn.close()
