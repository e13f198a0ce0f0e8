import json

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils._http import (
    HttpError,
    parse_host_port,
    request,
    shorten,
    split_url,
)


@pytest.mark.parametrize(
    "value, default, expected",
    [
        ("127.0.0.1:443", None, ("127.0.0.1", 443)),
        ("localhost", 80, ("localhost", 80)),
        ("[::1]:8443", None, ("::1", 8443)),
        ("[::1]", 443, ("::1", 443)),
        ("::1", 443, ("::1", 443)),
    ],
)
def test_parse_host_port(value, default, expected):
    assert parse_host_port(value, default) == expected


@pytest.mark.parametrize("value", ["", "host:", "host:0", "host:70000", "host:x", "[::1", "[::1]x", "localhost"])
def test_parse_host_port_errors(value):
    with pytest.raises(ValueError):
        parse_host_port(value, None)


def test_split_url():
    assert split_url("https://app.example.com/api/x?y=1") == ("https", "app.example.com", 443, "/api/x?y=1")
    assert split_url("http://10.0.0.1:3210") == ("http", "10.0.0.1", 3210, "/")
    for bad in ("ftp://x/", "http:///path", "http://x:99999/"):
        with pytest.raises(ValueError):
            split_url(bad)


def test_json_request_headers_and_error_status_are_answers(fake_http):
    def route(handler, method, path):
        return 418, {"echo": json.loads(handler.body), "auth": handler.headers.get("Authorization")}, None

    server = fake_http(route)
    resp = request(server.url + "/x", method="POST", headers={"Authorization": "Convex k"}, json_body={"a": 1})
    assert resp.status == 418
    assert resp.json() == {"echo": {"a": 1}, "auth": "Convex k"}
    sent = server.requests[0]
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Host"] == "127.0.0.1:%d" % server.port


def test_connect_to_keeps_the_url_host_in_the_host_header(fake_http):
    server = fake_http(lambda handler, method, path: (200, handler.headers.get("Host"), None))
    resp = request("http://app.example.com/", connect_to="127.0.0.1:%d" % server.port)
    assert resp.text() == "app.example.com"
    resp = request("http://app.example.com:8080/", connect_to="127.0.0.1:%d" % server.port)
    assert resp.text() == "app.example.com:8080"

    counting = fake_http(lambda handler, method, path: (200, "|".join(handler.headers.get_all("Host")), None))
    assert request(counting.url, headers={"host": "override.example"}).text() == "override.example"


def test_body_is_capped(fake_http):
    server = fake_http(lambda handler, method, path: (200, "x" * 5000, None))
    assert len(request(server.url, max_body=100).body) == 100


def test_connection_failures_raise_short_messages(closed_port):
    with pytest.raises(HttpError, match="^connection refused$"):
        request("http://127.0.0.1:%d/" % closed_port, timeout=2)
    with pytest.raises(HttpError, match="cannot resolve host name"):
        request("http://name.invalid/", timeout=2)


def test_timeout(fake_tcp):
    import time

    server = fake_tcp(lambda conn: time.sleep(1.5))
    with pytest.raises(HttpError, match="^timed out$"):
        request("http://127.0.0.1:%d/" % server.port, timeout=0.3)


def test_shorten():
    assert shorten("a\n  b\tc", 10) == "a b c"
    assert shorten("x" * 20, 10) == "x" * 7 + "..."
