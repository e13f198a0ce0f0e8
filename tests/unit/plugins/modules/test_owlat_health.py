import json
import re
import time

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import owlat_health

import conftest

REDIS_PASSWORD = "Rp" * 16
MTA_OK = {"status": "ok", "redis": "connected", "worker": {"alive": True, "jobs": 0}, "dns": "ok"}
MTA_DEGRADED = {"status": "degraded", "redis": "disconnected", "worker": {"alive": True}, "dns": "ok"}


@pytest.fixture
def mta(fake_http):
    state = {"health": MTA_OK}
    server = fake_http(lambda handler, method, path: (200, state["health"], None))
    server.state = state
    return server


def http_check(name, url, **extra):
    check = dict(name=name, url=url, timeout=1)
    check.update(extra)
    return check


def test_every_kind_passes_and_the_table_lists_them(run_module, fake_convex, mta, fake_tcp):
    smtp = fake_tcp(lambda conn: conn.sendall(b"220 mx.example.com Owlat MTA Bounce Processor\r\n"))
    redis = fake_tcp(conftest.fake_redis_handler(REDIS_PASSWORD))
    clamd = fake_tcp(conftest.fake_clamd_handler())
    checks = [
        http_check("convex", fake_convex.url + "/version"),
        http_check("mta", mta.url + "/health", json={"redis": "connected", "worker.alive": True}, contains='"status": "ok"'),
        dict(name="smtp", kind="tcp_banner", host="127.0.0.1", port=smtp.port, expect="^220 ", timeout=1),
        dict(name="redis", kind="redis", host="127.0.0.1", port=redis.port, password=REDIS_PASSWORD, timeout=1),
        dict(name="clamav", kind="clamd", host="127.0.0.1", port=clamd.port, timeout=1),
    ]
    res = run_module(owlat_health, dict(checks=checks, interval=0.1))
    assert res["failed"] is False, res
    assert res["changed"] is False
    assert [s["name"] for s in res["services"]] == ["convex", "mta", "smtp", "redis", "clamav"]
    assert all(s["healthy"] for s in res["services"])
    by_name = {s["name"]: s for s in res["services"]}
    assert by_name["convex"]["last"] == "HTTP 200: unknown"
    assert by_name["smtp"]["last"] == "banner: 220 mx.example.com Owlat MTA Bounce Processor"
    assert by_name["redis"]["last"] == "PONG" and by_name["clamav"]["last"] == "PONG"
    lines = res["table"].splitlines()
    assert lines[0].split() == ["SERVICE", "HEALTHY", "SECONDS", "LAST", "ANSWER"]
    assert lines[1].startswith("convex") and " yes " in lines[1]
    assert REDIS_PASSWORD not in json.dumps(res)


def test_degraded_mta_fails_with_its_last_answer_and_hint(run_module, mta):
    mta.state["health"] = MTA_DEGRADED
    checks = [
        dict(
            http_check("mta", mta.url + "/health", json={"redis": "connected", "worker.alive": True}),
            timeout=0.5,
            hint="see: docker logs mystack-mta",
        )
    ]
    res = run_module(owlat_health, dict(checks=checks, interval=0.1))
    assert res["failed"] is True
    # It waited out its timeout; how far past it depends on the machine's load, so only the floor is pinned.
    assert re.match(r"unhealthy: mta \(after \d+(\.\d)?s; last answer: ", res["msg"]), res["msg"]
    assert res["services"][0]["seconds"] >= 0.5
    assert '; last answer: HTTP 200 (redis="disconnected", want "connected"): {"status": "degraded"' in res["msg"]
    assert res["msg"].endswith(") see: docker logs mystack-mta")
    assert res["services"][0]["healthy"] is False
    assert len(res["services"][0]["last"]) <= 300
    assert " NO " in res["table"]


def test_waits_until_a_service_comes_up(run_module, fake_http):
    calls = []

    def route(handler, method, path):
        calls.append(path)
        return (503, "starting", None) if len(calls) < 3 else (200, "ok", None)

    server = fake_http(route)
    res = run_module(owlat_health, dict(checks=[http_check("web", server.url + "/api/instance-info", timeout=5)], interval=0.1))
    assert res["failed"] is False
    assert len(calls) == 3
    assert res["services"][0]["seconds"] >= 0.2


def test_checks_run_concurrently_and_each_failure_is_named(run_module, closed_port, fake_tcp):
    silent = fake_tcp(lambda conn: time.sleep(3))
    checks = [
        http_check("a", "http://127.0.0.1:%d/" % closed_port, timeout=2),
        http_check("b", "http://127.0.0.1:%d/" % closed_port, timeout=2),
        dict(name="c", kind="tcp_banner", host="127.0.0.1", port=silent.port, timeout=2),
    ]
    started = time.monotonic()
    res = run_module(owlat_health, dict(checks=checks, interval=0.2))
    elapsed = time.monotonic() - started
    assert res["failed"] is True
    # Sequential would be >= 6 s; the margin is wide because the matrix runs legs side by side on 2 cores.
    assert elapsed < 4.5
    assert re.search(r"unhealthy: a \(after \d", res["msg"]) and "last answer: connection refused)" in res["msg"]
    assert "unhealthy: b (after" in res["msg"]
    assert "unhealthy: c (after" in res["msg"] and "timed out" in res["msg"]


def test_wrong_redis_password_is_reported_without_it(run_module, fake_tcp):
    redis = fake_tcp(conftest.fake_redis_handler(REDIS_PASSWORD))
    wrong = "Wrong" * 6
    res = run_module(
        owlat_health,
        dict(checks=[dict(name="redis", kind="redis", host="127.0.0.1", port=redis.port, password=wrong, timeout=1.5)], interval=0.1),
    )
    assert res["failed"] is True
    assert "last answer: AUTH: -WRONGPASS invalid username-password pair" in res["msg"]
    assert wrong not in json.dumps(res)


def test_redis_without_password_gets_noauth(run_module, fake_tcp):
    redis = fake_tcp(conftest.fake_redis_handler(REDIS_PASSWORD))
    res = run_module(
        owlat_health, dict(checks=[dict(name="redis", kind="redis", host="127.0.0.1", port=redis.port, timeout=1.5)], interval=0.1)
    )
    assert res["failed"] is True and "PING: -NOAUTH Authentication required." in res["msg"]


def test_banner_mismatch_and_clamd_garbage(run_module, fake_tcp):
    smtp = fake_tcp(lambda conn: conn.sendall(b"554 go away\r\n"))
    clamd = fake_tcp(conftest.fake_clamd_handler(b"UNKNOWN COMMAND\0"))
    res = run_module(
        owlat_health,
        dict(
            checks=[
                dict(name="smtp", kind="tcp_banner", host="127.0.0.1", port=smtp.port, expect="^220 ", timeout=1.5),
                dict(name="clamav", kind="clamd", host="127.0.0.1", port=clamd.port, timeout=1.5),
            ],
            interval=0.1,
        ),
    )
    assert res["failed"] is True
    assert 'banner "554 go away" does not match "^220 "' in res["msg"]
    assert "last answer: PING: UNKNOWN COMMAND" in res["msg"]


def test_https_through_connect_to_with_own_ca(run_module, fake_http, tls_pair):
    ca_path, context, seen_sni = tls_pair
    hosts = []

    def route(handler, method, path):
        hosts.append(handler.headers.get("Host"))
        return 200, {"name": "Owlat", "deploymentMode": "selfhost"}, None

    server = fake_http(route, tls_context=context)
    check = http_check(
        "app",
        "https://app.example.com/api/instance-info",
        connect_to="127.0.0.1:%d" % server.port,
        ca_path=ca_path,
        json={"deploymentMode": "selfhost"},
    )
    res = run_module(owlat_health, dict(checks=[check], interval=0.1))
    assert res["failed"] is False, res
    assert hosts == ["app.example.com"]
    assert seen_sni[-1] == "app.example.com"

    # Without the CA the system trust store refuses the certificate ...
    res = run_module(owlat_health, dict(checks=[dict(check, ca_path=None, timeout=1.5)], interval=0.1))
    assert res["failed"] is True and "certificate verification failed" in res["msg"]
    # ... unless verification is switched off.
    res = run_module(owlat_health, dict(checks=[dict(check, ca_path=None, validate_certs=False)], interval=0.1))
    assert res["failed"] is False
    # A name the certificate does not cover is refused even with the right CA.
    other = dict(check, url="https://other.example.com/api/instance-info", timeout=1.5)
    res = run_module(owlat_health, dict(checks=[other], interval=0.1))
    assert res["failed"] is True and "certificate verification failed" in res["msg"]
    assert "other.example.com" in res["msg"]


def test_check_mode_runs_the_checks(run_module, fake_convex):
    res = run_module(owlat_health, dict(checks=[http_check("convex", fake_convex.url + "/version")]), check_mode=True)
    assert res["failed"] is False and res["changed"] is False
    assert res["services"][0]["healthy"] is True
    assert [r["path"] for r in fake_convex.requests] == ["/version"]


def test_invalid_check_definitions_fail_before_probing(run_module):
    res = run_module(owlat_health, dict(checks=[dict(name="x")]))
    assert res["failed"] is True and "url" in res["msg"]
    res = run_module(owlat_health, dict(checks=[dict(name="x", kind="redis")]))
    assert res["failed"] is True and "host" in res["msg"]
    res = run_module(owlat_health, dict(checks=[dict(name="x", url="ftp://example.com/")]))
    assert res["failed"] is True and res["msg"] == "checks: x: 'ftp://example.com/' is not an http:// or https:// URL"
    res = run_module(owlat_health, dict(checks=[dict(name="x", url="https://a.example/", connect_to="127.0.0.1:notaport")]))
    assert res["failed"] is True and "invalid port" in res["msg"]
    res = run_module(owlat_health, dict(checks=[dict(name="x", kind="tcp_banner", host="h", expect="(")]))
    assert res["failed"] is True and "expect is not a valid regular expression" in res["msg"]
