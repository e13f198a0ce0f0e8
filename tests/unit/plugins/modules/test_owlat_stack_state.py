"""owlat_stack_state: secrets kept, and the stack read as it is, in one run (fake Docker Engine, fake Convex)."""

import json
import os
import stat
import urllib.parse

import pytest

from ansible_collections.owlat.selfhost.plugins.filter.convex_env_stale import convex_env_stale
from ansible_collections.owlat.selfhost.plugins.filter.files_stale import files_stale
from ansible_collections.owlat.selfhost.plugins.modules import owlat_stack_state
from test_owlat_containers import FakeEngine

BACKEND = "registry.owlat.lab:5000/get-convex/convex-backend:c51b14bac5d8"
FORMATS = {"INSTANCE_SECRET": "hex64", "REDIS_PASSWORD": "alnum32"}


@pytest.fixture
def engine(tmp_path):
    fake = FakeEngine(str(tmp_path / "docker.sock"))
    yield fake
    fake.close()


def params(engine, conf, convex_port=None, **extra):
    out = dict(stack="acme", docker_host=engine.url,
               secrets=dict(path=str(conf / "secrets.env"), secrets=FORMATS),
               files=[str(conf)])
    if convex_port:
        out["convex"] = dict(key_path=str(conf / "convex-admin-key.env"), state_path=str(conf / "names.json"),
                             port=convex_port, timeout=5)
    out.update(extra)
    return out


def test_fresh_host_generates_secrets_and_reports_what_is_missing(run_module, engine, tmp_path, fake_convex):
    conf = tmp_path / "etc" / "acme"
    port = int(urllib.parse.urlsplit(fake_convex.url).port)
    res = run_module(owlat_stack_state, params(engine, conf, port))
    assert not res["failed"], res
    assert res["changed"] and sorted(res["generated"]) == sorted(FORMATS)
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o700
    assert res["containers"] == {} and res["network_exists"] is True
    assert res["files"][str(conf / "secrets.env")]["mode"] == "0600"
    # No backend container yet: nothing asked of Convex, and it says why.
    assert res["convex"]["reachable"] is False and "not running" in res["convex"]["error"]

    again = run_module(owlat_stack_state, params(engine, conf, port))
    assert not again["changed"] and again["secrets"] == res["secrets"]


def test_converged_stack_reads_key_env_and_files(run_module, engine, tmp_path, fake_convex):
    conf = tmp_path / "acme"
    conf.mkdir(mode=0o700)
    (conf / "caddy").mkdir()
    (conf / "caddy" / "Caddyfile").write_text("app.example.com {}\n")
    key = fake_convex.mint()
    (conf / "convex-admin-key.env").write_text("CONVEX_SELF_HOSTED_ADMIN_KEY=%s\n" % key)
    (conf / "names.json").write_text(json.dumps(["SITE_URL"]))
    fake_convex.env = {"SITE_URL": "https://app.example.com"}
    engine.images = {BACKEND: "sha256:b"}
    engine.add("acme-convex", BACKEND, "sha256:b", ip="127.0.0.1", health="healthy")
    port = int(urllib.parse.urlsplit(fake_convex.url).port)

    res = run_module(owlat_stack_state, params(engine, conf, port))

    assert not res["failed"], res
    assert res["containers"]["convex"]["settled"] is True
    convex = res["convex"]
    assert convex["reachable"] and convex["key_valid"] and convex["key"] == key
    assert convex["env"] == fake_convex.env and convex["managed"] == ["SITE_URL"]
    caddyfile = res["files"][str(conf / "caddy" / "Caddyfile")]
    assert caddyfile["kind"] == "file" and caddyfile["mode"] == "0644"
    # What the roles decide from it (controller side).
    spec = {"directories": [{"path": str(conf / "caddy"), "mode": "0755"}],
            "files": [{"path": str(conf / "caddy" / "Caddyfile"), "content": "app.example.com {}\n", "mode": "0644"}]}
    assert files_stale(spec, res["files"]) is False
    spec["files"][0]["content"] = "app.example.org {}\n"
    assert files_stale(spec, res["files"]) is True
    assert convex_env_stale({"SITE_URL": "https://app.example.com"}, convex) is False
    assert convex_env_stale({"SITE_URL": "https://app.example.org"}, convex) is True


def test_a_refused_key_is_reported_not_a_failure(run_module, engine, tmp_path, fake_convex):
    conf = tmp_path / "acme"
    conf.mkdir(mode=0o700)
    (conf / "convex-admin-key.env").write_text("CONVEX_SELF_HOSTED_ADMIN_KEY=convex-self-hosted|01%s\n" % ("ab" * 40))
    engine.images = {BACKEND: "sha256:b"}
    engine.add("acme-convex", BACKEND, "sha256:b", ip="127.0.0.1")
    port = int(urllib.parse.urlsplit(fake_convex.url).port)
    res = run_module(owlat_stack_state, params(engine, conf, port))
    assert not res["failed"]
    assert res["convex"]["reachable"] and not res["convex"]["key_valid"] and res["convex"]["key"] is None
    assert convex_env_stale({}, res["convex"]) is True


def test_a_secrets_problem_fails_naming_the_secret_never_the_value(run_module, engine, tmp_path, visible_text):
    conf = tmp_path / "acme"
    conf.mkdir(mode=0o700)
    (conf / "secrets.env").write_text("INSTANCE_SECRET=%s\nREDIS_PASSWORD=%s\n" % ("ab" * 32, "Cd" * 16))
    res = run_module(owlat_stack_state, params(engine, conf, secrets=dict(
        path=str(conf / "secrets.env"), secrets=FORMATS, values={"REDIS_PASSWORD": "Ef" * 16})))
    assert res["failed"] and "REDIS_PASSWORD differs" in res["msg"]
    assert "Ef" * 16 not in visible_text(res) and "Cd" * 16 not in visible_text(res)


def test_no_engine_is_reported_and_every_file_still_read(run_module, tmp_path):
    conf = tmp_path / "acme"
    res = run_module(owlat_stack_state, dict(stack="acme", docker_host="unix://%s" % (tmp_path / "none.sock"),
                                             secrets=dict(path=str(conf / "secrets.env"), secrets=FORMATS),
                                             files=[str(conf), str(tmp_path / "absent")]))
    assert not res["failed"] and res["engine"] is False and res["containers"] == {}
    assert res["files"][str(tmp_path / "absent")] == {"kind": "absent"}


def test_files_stale_compares_kind_mode_owner_and_content():
    state = {"/c": {"kind": "directory", "mode": "0755", "uid": 0, "gid": 0, "owner": "root", "group": "root"},
             "/c/r.conf": {"kind": "file", "mode": "0600", "uid": 999, "gid": 1000, "owner": None, "group": None,
                           "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}
    ok = {"directories": [{"path": "/c", "mode": "0755"}],
          "files": [{"path": "/c/r.conf", "secret_content": "hello", "owner": "999", "group": "1000", "mode": "0600"}]}
    assert files_stale(ok, state) is False
    for change in ({"owner": "998"}, {"group": "root"}, {"mode": "0640"}, {"secret_content": "hello\n"}):
        spec = json.loads(json.dumps(ok))
        spec["files"][0].update(change)
        assert files_stale(spec, state) is True, change
    assert files_stale({"files": [{"path": "/c/other", "content": ""}]}, state) is True
    assert files_stale({"directories": [{"path": "/c/r.conf"}]}, state) is True
    assert files_stale({"files": [{"path": "/c/r.conf", "src": "/x", "mode": "0600"}]}, state) is True


def test_convex_env_stale_plans_as_the_module():
    state = {"env": {"A": "1", "B": "2", "OPERATOR": "x"}, "managed": ["A", "B"]}
    assert convex_env_stale({"A": "1", "B": "2"}, state) is False
    assert convex_env_stale({"A": 1, "B": "2"}, state) is False          # numbers are pushed as their text
    assert convex_env_stale({"A": "1"}, state) is True                   # B was ours: it would be removed
    assert convex_env_stale({"A": "1"}, state, prune=False) is False     # without prune B is kept, still ours
    assert convex_env_stale({"A": "1", "B": "2", "C": None}, state) is False
    assert convex_env_stale({"A": "1", "B": "2", "OPERATOR": None}, state) is True
    assert convex_env_stale({"A": "1"}, {"env": None, "managed": None}) is True


def test_an_unlabelled_container_is_the_stacks_under_a_described_name_only(run_module, engine, tmp_path):
    # A service the description gained (a worker, say) whose container has no owlat.stack label: the roles must
    # see it, or it would go through docker_container on every run; a name the description lacks is not the stack's.
    conf = tmp_path / "acme"
    conf.mkdir(mode=0o700)
    engine.images = {BACKEND: "sha256:b"}
    engine.add("acme-worker", BACKEND, "sha256:b")
    engine.add("acme-scratch", BACKEND, "sha256:b")
    engine.add("acme-eu-worker", BACKEND, "sha256:b")

    default = run_module(owlat_stack_state, params(engine, conf))
    described = run_module(owlat_stack_state, params(engine, conf, services=["convex", "worker"]))

    assert sorted(default["containers"]) == []
    assert sorted(described["containers"]) == ["worker"] and described["containers"]["worker"]["settled"] is True
