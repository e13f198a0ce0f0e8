import os
import stat

import pytest
from ansible.module_utils import basic

from ansible_collections.owlat.selfhost.plugins.modules import convex_admin_key


class FakeDocker:
    """Stands in for `docker exec <container> ./generate_admin_key.sh` via AnsibleModule.run_command."""

    def __init__(self, monkeypatch, convex):
        self.calls = []
        self.convex = convex
        self.answer = None  # (rc, stdout, stderr) to return instead of a real mint
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
        fake = self

        def run_command(module, args, **kwargs):
            fake.calls.append(list(args))
            if fake.answer is not None:
                return fake.answer
            return 0, fake.convex.mint() + "\n", "Admin key:\n"

        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)


@pytest.fixture
def docker(monkeypatch, fake_convex):
    return FakeDocker(monkeypatch, fake_convex)


def params(convex, path, **extra):
    return dict(container="mystack-convex", url=convex.url, path=str(path), timeout=5, **extra)


def stored_key(path):
    text = path.read_text()
    assert text.count("\n") == 1 and text.startswith("CONVEX_SELF_HOSTED_ADMIN_KEY=")
    return text.strip().split("=", 1)[1]


def test_mints_when_missing_then_keeps_the_valid_key(run_module, fake_convex, docker, tmp_path, visible_text):
    path = tmp_path / "keys" / "admin-key.env"
    first = run_module(convex_admin_key, params(fake_convex, path))
    assert first["failed"] is False, first
    assert first["changed"] is True and first["minted"] is True
    assert docker.calls == [["/usr/bin/docker", "exec", "mystack-convex", "./generate_admin_key.sh"]]
    assert "no key stored" in first["reason"]
    key = stored_key(path)
    assert first["key"] == key and key in fake_convex.valid_keys
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert key not in visible_text(first)

    second = run_module(convex_admin_key, params(fake_convex, path))
    assert second["changed"] is False and second["minted"] is False
    assert second["key"] == key and second["reason"] == "stored key is valid"
    assert len(docker.calls) == 1
    check = [r for r in fake_convex.requests if r["path"] == "/api/check_admin_key"][-1]
    assert check["headers"]["Authorization"] == "Convex " + key


def test_refused_key_is_reminted(run_module, fake_convex, docker, tmp_path):
    path = tmp_path / "admin-key.env"
    run_module(convex_admin_key, params(fake_convex, path))
    old = stored_key(path)
    fake_convex.valid_keys.clear()  # INSTANCE_SECRET changed: every earlier key is refused (401)
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["changed"] is True and res["minted"] is True
    assert "refused the stored key" in res["reason"]
    assert stored_key(path) != old and stored_key(path) in fake_convex.valid_keys


def test_malformed_file_is_replaced_by_a_minted_key(run_module, fake_convex, docker, tmp_path):
    path = tmp_path / "admin-key.env"
    path.write_text("garbage\n")
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["minted"] is True and "does not hold" in res["reason"]
    assert stored_key(path) in fake_convex.valid_keys


def test_last_nonempty_stdout_line_is_the_key(run_module, fake_convex, docker, tmp_path):
    key = fake_convex.mint()
    docker.answer = (0, "some banner\n%s\n\n" % key, "Admin key:\n")
    path = tmp_path / "admin-key.env"
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["key"] == key and stored_key(path) == key


def test_check_mode_never_mints_or_writes(run_module, fake_convex, docker, tmp_path):
    path = tmp_path / "admin-key.env"
    res = run_module(convex_admin_key, params(fake_convex, path), check_mode=True)
    assert res["changed"] is True and res["minted"] is False and "key" not in res
    assert docker.calls == [] and not path.exists()

    run_module(convex_admin_key, params(fake_convex, path))
    before = path.read_text()
    res = run_module(convex_admin_key, params(fake_convex, path), check_mode=True)
    assert res["changed"] is False and res["key"] == stored_key(path)

    fake_convex.valid_keys.clear()
    res = run_module(convex_admin_key, params(fake_convex, path), check_mode=True)
    assert res["changed"] is True and "would be minted" in res["reason"]
    assert len(docker.calls) == 1 and path.read_text() == before


def test_check_mode_with_backend_down_warns_instead_of_failing(run_module, fake_convex, docker, tmp_path, closed_port):
    path = tmp_path / "admin-key.env"
    path.write_text("CONVEX_SELF_HOSTED_ADMIN_KEY=convex-self-hosted|0123abcd\n")
    res = run_module(
        convex_admin_key, dict(params(fake_convex, path), url="http://127.0.0.1:%d" % closed_port), check_mode=True
    )
    assert res["failed"] is False and res["changed"] is False
    assert "could not be checked" in res["reason"]
    assert any("not reachable" in w for w in res["warnings"])
    assert "0123abcd" not in str(res["warnings"])


def test_unreachable_backend_fails_clearly(run_module, fake_convex, docker, tmp_path, closed_port):
    path = tmp_path / "admin-key.env"
    url = "http://127.0.0.1:%d" % closed_port
    res = run_module(convex_admin_key, dict(params(fake_convex, path), url=url))
    assert res["failed"] is True
    assert res["msg"] == "Convex backend at %s is unreachable: connection refused" % url
    assert not path.exists()


def test_docker_exec_failure_is_reported_without_the_key(run_module, fake_convex, docker, tmp_path):
    docker.answer = (1, "", "Error response from daemon: container mystack-convex is not running\n")
    path = tmp_path / "admin-key.env"
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["failed"] is True
    assert "failed (rc=1)" in res["msg"] and "is not running" in res["msg"]
    assert not path.exists()
    docker.answer = (2, "", "oops convex-self-hosted|0123456789abcdef0123 leaked\n")
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert "0123456789abcdef0123" not in res["msg"] and "<admin key>" in res["msg"]


def test_output_without_a_key_fails(run_module, fake_convex, docker, tmp_path):
    docker.answer = (0, "not a key at all\n", "")
    path = tmp_path / "admin-key.env"
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["failed"] is True and "printed no admin key" in res["msg"]
    assert "not a key at all" not in res["msg"]
    assert not path.exists()


def test_minted_key_refused_by_the_backend_is_not_stored(run_module, fake_convex, docker, tmp_path):
    docker.answer = (0, "convex-self-hosted|0badc0ffee\n", "Admin key:\n")  # not known to this backend
    path = tmp_path / "admin-key.env"
    res = run_module(convex_admin_key, params(fake_convex, path))
    assert res["failed"] is True
    assert "refused the key just minted in container mystack-convex" in res["msg"]
    assert "0badc0ffee" not in res["msg"]
    assert not path.exists()
