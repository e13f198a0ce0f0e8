import grp
import json
import os
import pwd

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.owlat.selfhost.plugins.modules import owlat_files


class Exit(Exception):
    pass


def run_module(monkeypatch, params, check_mode=False, diff=False):
    args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    result = {}

    def exit_json(self, **kw):
        result.update(kw, failed=False)
        raise Exit()

    def fail_json(self, **kw):
        result.update(kw, failed=True)
        raise Exit()

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with pytest.raises(Exit):
        owlat_files.main()
    return result


ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def mode(path):
    return oct(os.stat(path).st_mode & 0o7777)


def test_writes_then_changes_nothing(monkeypatch, tmp_path):
    params = {
        "directories": [{"path": str(tmp_path / "targets"), "mode": "0750"}],
        "files": [
            {"path": str(tmp_path / "prometheus.yml"), "content": "global: {}\n", "mode": "0640", "group": MY_GROUP},
            {"path": str(tmp_path / "password"), "secret_content": "s3cret", "mode": "0600", "owner": ME},
        ],
    }
    first = run_module(monkeypatch, params)
    assert first["changed"] is True
    assert sorted(first["changed_paths"]) == sorted([str(tmp_path / p) for p in ("targets", "prometheus.yml", "password")])
    assert (tmp_path / "prometheus.yml").read_text() == "global: {}\n"
    assert mode(tmp_path / "targets") == "0o750" and mode(tmp_path / "prometheus.yml") == "0o640"
    assert mode(tmp_path / "password") == "0o600"
    second = run_module(monkeypatch, params)
    assert second["changed"] is False and second["changed_paths"] == []


def test_only_the_changed_file_is_reported(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("one\n")
    b.write_text("two\n")
    os.chmod(a, 0o644)
    os.chmod(b, 0o600)
    res = run_module(monkeypatch, {"files": [{"path": str(a), "content": "one\n"},
                                             {"path": str(b), "content": "two\n", "mode": "0644"}]})
    assert res["changed_paths"] == [str(b)]
    assert mode(b) == "0o644" and b.read_text() == "two\n"


def test_check_mode_writes_nothing_and_diff_hides_secrets(monkeypatch, tmp_path):
    conf, secret = tmp_path / "conf", tmp_path / "secret"
    conf.write_text("old\n")
    os.chmod(conf, 0o644)
    res = run_module(monkeypatch, {"files": [{"path": str(conf), "content": "new\n"},
                                             {"path": str(secret), "secret_content": "hunter2"}]},
                     check_mode=True, diff=True)
    assert res["changed"] is True
    assert conf.read_text() == "old\n" and not secret.exists()
    diffs = {d["after_header"]: d for d in res["diff"]}
    assert diffs[str(conf)]["before"] == "old\n" and diffs[str(conf)]["after"] == "new\n"
    assert "hunter2" not in json.dumps(res)


def test_unknown_group_is_a_change_in_check_mode_and_an_error_otherwise(monkeypatch, tmp_path):
    params = {"files": [{"path": str(tmp_path / "f"), "content": "x", "group": "no-such-group-owlat"}]}
    check = run_module(monkeypatch, params, check_mode=True)
    assert check["failed"] is False and check["changed"] is True
    real = run_module(monkeypatch, params)
    assert real["failed"] is True and "group no-such-group-owlat does not exist" in real["msg"]
    assert not (tmp_path / "f").exists()


def test_copies_a_file_already_on_the_host(monkeypatch, tmp_path):
    src = tmp_path / "root.crt"
    src.write_text("-----BEGIN CERTIFICATE-----\n")
    dest = tmp_path / "ca.crt"
    res = run_module(monkeypatch, {"files": [{"path": str(dest), "src": str(src)}]})
    assert res["changed_paths"] == [str(dest)] and dest.read_text() == src.read_text()
    missing = run_module(monkeypatch, {"files": [{"path": str(dest), "src": str(tmp_path / "nope")}]})
    assert missing["failed"] is True and "does not exist" in missing["msg"]
    # In check mode the source may appear during the real run (a fresh host): a change, not an error.
    check = run_module(monkeypatch, {"files": [{"path": str(tmp_path / "new.crt"), "src": str(tmp_path / "nope")}]},
                       check_mode=True)
    assert check["failed"] is False and check["changed_paths"] == [str(tmp_path / "new.crt")]


def test_exactly_one_source_and_an_octal_mode(monkeypatch, tmp_path):
    both = run_module(monkeypatch, {"files": [{"path": str(tmp_path / "f"), "content": "a", "secret_content": "b"}]})
    assert both["failed"] is True and "exactly one of" in both["msg"]
    assert "b" not in both["msg"].split("(got")[0]
    bad = run_module(monkeypatch, {"files": [{"path": str(tmp_path / "f"), "content": "a", "mode": "rw"}]})
    assert bad["failed"] is True and "not an octal number" in bad["msg"]


def test_missing_parent_directory_fails_clearly(monkeypatch, tmp_path):
    res = run_module(monkeypatch, {"files": [{"path": str(tmp_path / "no" / "f"), "content": "a"}]})
    assert res["failed"] is True and "directory" in res["msg"]


def test_validate_refuses_bad_content_and_keeps_the_file(monkeypatch, tmp_path):
    conf = tmp_path / "conf"
    conf.write_text("good\n")
    os.chmod(conf, 0o644)
    bad = run_module(monkeypatch, {"files": [{"path": str(conf), "content": "bad\n", "validate": "grep -q good %s"}]})
    assert bad["failed"] is True and "validation failed" in bad["msg"]
    assert conf.read_text() == "good\n"
    assert sorted(os.listdir(tmp_path)) == ["conf"]  # no temporary copy left behind
    ok = run_module(monkeypatch, {"files": [{"path": str(conf), "content": "still good\n", "validate": "grep -q good %s"}]})
    assert ok["changed_paths"] == [str(conf)] and conf.read_text() == "still good\n"


def test_numeric_owner_and_group_need_no_name_on_the_host(monkeypatch, tmp_path):
    """Redis' config belongs to uid/gid 999 of its container, which has no name on the host."""
    uid, gid = str(os.getuid()), str(os.getgid())
    params = {"files": [{"path": str(tmp_path / "redis.conf"), "secret_content": "requirepass x\n", "mode": "0600",
                         "owner": uid, "group": gid}]}
    assert run_module(monkeypatch, params)["changed"] is True
    st = os.stat(tmp_path / "redis.conf")
    assert (st.st_uid, st.st_gid) == (int(uid), int(gid))
    assert run_module(monkeypatch, params)["changed"] is False


def test_returned_state_is_what_files_stale_compares_with(monkeypatch, tmp_path):
    # A play that writes the same file twice in one run (the upgrade's web handover) compares with this.
    from ansible_collections.owlat.selfhost.plugins.filter.files_stale import files_stale

    spec = {"directories": [{"path": str(tmp_path / "caddy"), "mode": "0755"}],
            "files": [{"path": str(tmp_path / "caddy" / "Caddyfile"), "content": "upstream web:3000\n", "mode": "0644"}]}
    assert files_stale(spec, {})
    written = run_module(monkeypatch, spec)
    assert written["changed"] is True
    assert written["state"][str(tmp_path / "caddy" / "Caddyfile")]["kind"] == "file"
    assert not files_stale(spec, written["state"])
    handover = {"files": [dict(spec["files"][0], content="upstream web-next:3000\n")]}
    assert files_stale(handover, written["state"])
    again = run_module(monkeypatch, handover)
    assert again["changed_paths"] == [str(tmp_path / "caddy" / "Caddyfile")]
    assert not files_stale(handover, again["state"]) and files_stale(spec, again["state"])
    # Check mode reports the file as it is, so the comparison stays honest: still stale.
    dry = run_module(monkeypatch, spec, check_mode=True)
    assert files_stale(spec, dry["state"])
    # No digest of a secret leaves the host.
    secret = {"files": [{"path": str(tmp_path / "password"), "secret_content": "s3cret", "mode": "0600"}]}
    assert "sha256" not in run_module(monkeypatch, secret)["state"][str(tmp_path / "password")]
