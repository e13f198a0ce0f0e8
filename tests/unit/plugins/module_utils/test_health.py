import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _health as health


def test_json_lookup():
    data = {"worker": {"alive": True}, "items": [{"s": "ok"}], "n": None}
    assert health.json_lookup(data, "worker.alive") is True
    assert health.json_lookup(data, "items.0.s") == "ok"
    assert health.json_lookup(data, "n") is None
    assert health.json_lookup(data, "worker.dead") is health._MISSING
    assert health.json_lookup(data, "items.5") is health._MISSING
    assert health.json_lookup(data, "worker.alive.x") is health._MISSING


def test_evaluate_http_checks_status_body_and_json_types():
    ok, last = health.evaluate_http(200, '{"redis": "connected", "worker": {"alive": true}}', [200], {"redis": "connected", "worker.alive": True})
    assert ok and last.startswith("HTTP 200: {")
    ok, last = health.evaluate_http(200, '{"count": 1}', [200], {"count": True})
    assert not ok and "count=1, want true" in last
    ok, last = health.evaluate_http(200, '{"flag": true}', [200], {"flag": 1})
    assert not ok
    ok, last = health.evaluate_http(200, "<html>", [200], {"a": 1})
    assert not ok and "body is not JSON" in last
    ok, last = health.evaluate_http(200, "{}", [200], {"a.b": 1})
    assert not ok and "a.b missing" in last
    ok, last = health.evaluate_http(503, "starting", [200, 204])
    assert not ok and last == "HTTP 503 (want status 200/204): starting"
    ok, last = health.evaluate_http(200, "hello world", [200], contains="bye")
    assert not ok and 'body lacks "bye"' in last
    ok, last = health.evaluate_http(200, "x" * 1000, [200])
    assert ok and len(last) == 300
    assert health.evaluate_http(204, "", [204]) == (True, "HTTP 204")


def test_check_problem():
    assert health.check_problem({"name": "a", "kind": "http", "url": "http://x/"}) is None
    assert "url is required" in health.check_problem({"name": "a", "kind": "http"})
    assert "host is required" in health.check_problem({"name": "a", "kind": "clamd"})
    assert "unknown kind" in health.check_problem({"name": "a", "kind": "smtp"})
    assert "status must list" in health.check_problem({"name": "a", "url": "http://x/", "status": []})
    assert health.check_problem({"name": "a", "kind": "redis", "host": "h"}) is None


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_retries_until_ok(monkeypatch):
    clock = FakeClock()
    answers = iter([(False, "HTTP 503"), (False, "HTTP 503"), (True, "HTTP 200")])
    monkeypatch.setattr(health, "probe", lambda check, timeout: next(answers))
    res = health.wait_for({"name": "x", "timeout": 10}, 2, clock=clock, sleep=clock.sleep)
    assert res == {"name": "x", "healthy": True, "seconds": 4.0, "last": "HTTP 200"}
    assert clock.sleeps == [2, 2]


def test_wait_for_gives_up_at_the_deadline_with_a_last_try(monkeypatch):
    clock = FakeClock()
    tries = []

    def probe(check, timeout):
        tries.append((clock.now, timeout))
        return False, "connection refused"

    monkeypatch.setattr(health, "probe", probe)
    res = health.wait_for({"name": "x", "timeout": 5}, 2, clock=clock, sleep=clock.sleep)
    assert res["healthy"] is False and res["seconds"] == 5.0 and res["last"] == "connection refused"
    assert [t for t, dummy in tries] == [100.0, 102.0, 104.0, 105.0]
    assert tries[0][1] == 5 and tries[-1][1] == 0.5


def test_probe_never_raises():
    ok, last = health.probe({"name": "x", "kind": "http", "url": "http://127.0.0.1:1/"}, 1)
    assert ok is False and last == "connection refused"


def test_table_and_failure_message():
    services = [
        {"name": "convex", "healthy": True, "seconds": 0.4, "last": "HTTP 200: unknown"},
        {"name": "mta", "healthy": False, "seconds": 120.04, "last": "HTTP 200 (redis=...)"},
    ]
    table = health.render_table(services)
    assert table == (
        "SERVICE  HEALTHY  SECONDS  LAST ANSWER\n"
        "convex   yes      0.4      HTTP 200: unknown\n"
        "mta      NO       120.0    HTTP 200 (redis=...)\n"
    )
    msg = health.failure_message(services, [{}, {"hint": "see: docker logs s-mta"}])
    assert msg == "unhealthy: mta (after 120s; last answer: HTTP 200 (redis=...)) see: docker logs s-mta"
