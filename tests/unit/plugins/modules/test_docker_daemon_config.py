import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.owlat.selfhost.plugins.modules import docker_daemon_config


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
        docker_daemon_config.main()
    return result


SETTINGS = {"log-driver": "json-file", "log-opts": {"max-size": "10m"}, "live-restore": True}


def test_creates_file_then_is_idempotent(monkeypatch, tmp_path):
    path = tmp_path / "etc" / "daemon.json"
    first = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS})
    assert first["changed"] is True
    assert json.loads(path.read_text()) == SETTINGS
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    second = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS})
    assert second["changed"] is False
    assert second["changed_keys"] == []


def test_keeps_operator_keys_and_formatting_when_nothing_changes(monkeypatch, tmp_path):
    path = tmp_path / "daemon.json"
    original = '{"labels": ["x"],\n "log-driver": "json-file", "log-opts": {"max-size": "10m"}, "live-restore": true}'
    path.write_text(original)
    res = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS})
    assert res["changed"] is False
    assert path.read_text() == original


def test_merge_reports_changed_keys_and_diff(monkeypatch, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"labels": ["x"], "log-opts": {"labels": "owner"}}')
    res = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS}, diff=True)
    assert res["changed"] is True
    assert res["changed_keys"] == ["live-restore", "log-driver", "log-opts"]
    written = json.loads(path.read_text())
    assert written["labels"] == ["x"]
    assert written["log-opts"] == {"labels": "owner", "max-size": "10m"}
    assert '"labels": "owner"' in res["diff"]["before"] and '"max-size": "10m"' in res["diff"]["after"]


def test_check_mode_writes_nothing(monkeypatch, tmp_path):
    path = tmp_path / "daemon.json"
    res = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS}, check_mode=True)
    assert res["changed"] is True
    assert not path.exists()


def test_broken_json_is_not_overwritten(monkeypatch, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{not json")
    res = run_module(monkeypatch, {"path": str(path), "settings": SETTINGS})
    assert res["failed"] is True
    assert "not valid JSON" in res["msg"]
    assert path.read_text() == "{not json"


def test_remove_drops_a_key(monkeypatch, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"registry-mirrors": ["https://m"], "debug": true}')
    res = run_module(monkeypatch, {"path": str(path), "settings": {}, "remove": ["registry-mirrors"]})
    assert res["changed"] is True
    assert json.loads(path.read_text()) == {"debug": True}
