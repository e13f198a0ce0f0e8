import json
import os
import stat

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import convex_env

ENV = {
    "SITE_URL": "https://app.example.com",
    "EMAIL_PROVIDER": "mta",
    "INSTANCE_SECRET": "ab" * 32,
    "MTA_API_KEY": "mta_" + "K" * 40,
}


@pytest.fixture
def convex(fake_convex):
    fake_convex.key = fake_convex.mint()
    return fake_convex


def params(convex, tmp_path, env, **extra):
    return dict(url=convex.url, admin_key=convex.key, env=env, state_path=str(tmp_path / "st" / "managed.json"), timeout=5, **extra)


def state(tmp_path):
    return json.loads((tmp_path / "st" / "managed.json").read_text())


def updates(convex):
    return [json.loads(r["body"])["changes"] for r in convex.posts()]


def test_first_run_adds_everything_in_one_post_then_is_idempotent(run_module, convex, tmp_path, visible_text):
    res = run_module(convex_env, params(convex, tmp_path, ENV), diff=True)
    assert res["failed"] is False, res
    assert res["changed"] is True
    assert res["added"] == sorted(ENV) and res["updated"] == [] and res["removed"] == []
    assert convex.env == ENV
    assert len(convex.posts()) == 1
    assert state(tmp_path) == sorted(ENV)
    assert stat.S_IMODE(os.stat(tmp_path / "st" / "managed.json").st_mode) == 0o600
    for value in ENV.values():
        assert value not in visible_text(res)
    assert convex.key not in visible_text(res)

    again = run_module(convex_env, params(convex, tmp_path, ENV))
    assert again["changed"] is False
    assert again["added"] == again["updated"] == again["removed"] == []
    assert len(convex.posts()) == 1


def test_changed_value_is_sent_alone(run_module, convex, tmp_path):
    run_module(convex_env, params(convex, tmp_path, ENV))
    res = run_module(convex_env, params(convex, tmp_path, dict(ENV, SITE_URL="https://mail.example.com")), diff=True)
    assert res["changed"] is True and res["updated"] == ["SITE_URL"] and res["added"] == []
    assert updates(convex)[-1] == [{"name": "SITE_URL", "value": "https://mail.example.com"}]
    assert "SITE_URL (value changed)" in res["diff"]["after"]
    assert "mail.example.com" not in json.dumps(res["diff"])


def test_prune_removes_dropped_managed_names_but_never_foreign_ones(run_module, convex, tmp_path):
    convex.env["SET_BY_HAND"] = "dashboard"
    run_module(convex_env, params(convex, tmp_path, ENV))
    smaller = {k: v for k, v in ENV.items() if k != "EMAIL_PROVIDER"}
    res = run_module(convex_env, params(convex, tmp_path, smaller))
    assert res["removed"] == ["EMAIL_PROVIDER"]
    assert updates(convex)[-1] == [{"name": "EMAIL_PROVIDER", "value": None}]
    assert "EMAIL_PROVIDER" not in convex.env and convex.env["SET_BY_HAND"] == "dashboard"
    assert state(tmp_path) == sorted(smaller)


def test_without_prune_dropped_names_stay_and_stay_managed(run_module, convex, tmp_path):
    run_module(convex_env, params(convex, tmp_path, ENV))
    smaller = {k: v for k, v in ENV.items() if k != "EMAIL_PROVIDER"}
    res = run_module(convex_env, params(convex, tmp_path, smaller, prune=False))
    assert res["changed"] is False and res["removed"] == []
    assert convex.env["EMAIL_PROVIDER"] == "mta"
    assert "EMAIL_PROVIDER" in state(tmp_path)
    # A later pruning run still knows the name.
    res = run_module(convex_env, params(convex, tmp_path, smaller))
    assert res["removed"] == ["EMAIL_PROVIDER"]


def test_null_value_removes_even_an_unmanaged_name(run_module, convex, tmp_path):
    convex.env["OLD_THING"] = "x"
    res = run_module(convex_env, params(convex, tmp_path, {"OLD_THING": None, "A": "1"}))
    assert res["removed"] == ["OLD_THING"] and res["added"] == ["A"]
    assert convex.env == {"A": "1"}
    assert state(tmp_path) == ["A"]


def test_booleans_and_numbers_become_strings(run_module, convex, tmp_path):
    run_module(convex_env, params(convex, tmp_path, {"FLAG": True, "OFF": False, "COUNT": 16}))
    assert convex.env == {"FLAG": "true", "OFF": "false", "COUNT": "16"}
    again = run_module(convex_env, params(convex, tmp_path, {"FLAG": True, "OFF": False, "COUNT": 16}))
    assert again["changed"] is False


@pytest.mark.parametrize(
    "name, message",
    [
        ("CONVEX_SITE_URL", "CONVEX_SITE_URL is built into Convex and cannot be set"),
        ("CONVEX_CLOUD_URL", "CONVEX_CLOUD_URL is built into Convex and cannot be set"),
        ("1ABC", "'1ABC' is not a valid name"),
        ("WITH-DASH", "'WITH-DASH' is not a valid name"),
        ("A" * 257, "is longer than 256 characters"),
    ],
)
def test_refused_names_fail_before_any_request(run_module, convex, tmp_path, name, message):
    res = run_module(convex_env, params(convex, tmp_path, {name: "https://app.example.com", "OK": "https://x.example"}))
    assert res["failed"] is True
    assert message in res["msg"]
    assert convex.requests == []


def test_too_long_value_fails_before_any_request(run_module, convex, tmp_path):
    res = run_module(convex_env, params(convex, tmp_path, {"BIG": "x" * 8193}))
    assert res["failed"] is True and "BIG: the value is longer than 8192 bytes" in res["msg"]
    assert convex.requests == []


def test_check_mode_sends_no_update_and_writes_no_state(run_module, convex, tmp_path):
    res = run_module(convex_env, params(convex, tmp_path, ENV), check_mode=True)
    assert res["changed"] is True and res["added"] == sorted(ENV)
    assert convex.posts() == [] and convex.env == {}
    assert not (tmp_path / "st").exists()
    run_module(convex_env, params(convex, tmp_path, ENV))
    res = run_module(convex_env, params(convex, tmp_path, ENV), check_mode=True)
    assert res["changed"] is False


def test_adopting_equal_variables_writes_state_without_an_update(run_module, convex, tmp_path):
    convex.env.update(ENV)
    res = run_module(convex_env, params(convex, tmp_path, ENV))
    assert res["changed"] is True and res["added"] == res["updated"] == []
    assert convex.posts() == []
    assert state(tmp_path) == sorted(ENV)


def test_refused_admin_key_fails_without_showing_it(run_module, convex, tmp_path):
    convex.valid_keys.clear()
    res = run_module(convex_env, params(convex, tmp_path, ENV))
    assert res["failed"] is True
    assert "HTTP 401 BadAdminKey" in res["msg"] and "convex_admin_key" in res["msg"]
    assert convex.key not in res["msg"]


def test_unreachable_backend_fails(run_module, convex, tmp_path, closed_port):
    url = "http://127.0.0.1:%d" % closed_port
    res = run_module(convex_env, dict(params(convex, tmp_path, ENV), url=url))
    assert res["failed"] is True
    assert res["msg"] == "Convex backend at %s is unreachable: connection refused" % url


def test_broken_state_file_fails(run_module, convex, tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "managed.json").write_text('{"not": "a list"}')
    res = run_module(convex_env, params(convex, tmp_path, ENV))
    assert res["failed"] is True and "must hold a JSON list of variable names" in res["msg"]
    assert convex.posts() == []
