import os
import stat

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils._files import (
    EnvFile,
    EnvFileError,
    ensure_private_dir,
    fix_mode,
    read_text,
    write_private,
)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_env_file_round_trip_keeps_comments_order_and_raw_values():
    text = "# comment\n\nA=1\nB=with=equals and spaces \nC=\n"
    env = EnvFile(text)
    assert env.names() == ["A", "B", "C"]
    assert env.get("B") == "with=equals and spaces " and env.get("C") == ""
    assert env.render() == text
    env.set("A", "2")
    env.set("D", "new")
    assert env.render() == "# comment\n\nA=2\nB=with=equals and spaces \nC=\nD=new\n"


def test_env_file_errors_name_lines_not_values():
    with pytest.raises(EnvFileError, match="line 2 is not NAME=value"):
        EnvFile("A=1\nsecretvalue\n")
    with pytest.raises(EnvFileError, match="line 1 is not NAME=value"):
        EnvFile("1A=x\n")
    with pytest.raises(EnvFileError) as err:
        EnvFile("A=one\nA=two\n")
    assert str(err.value) == "A is set twice (line 2)"


def test_empty_env_file_renders_empty():
    assert EnvFile(None).render() == "" and EnvFile("").names() == []


def test_write_private_creates_dirs_0700_and_file_0600(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "a" / "b" / "f"
        write_private(str(path), "x\n")
    finally:
        os.umask(old)
    assert path.read_text() == "x\n"
    assert mode(path) == 0o600
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    write_private(str(path), "y\n")
    assert path.read_text() == "y\n" and sorted(os.listdir(path.parent)) == ["f"]


def test_write_private_replaces_a_world_readable_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(str(path), "new")
    assert mode(path) == 0o600


def test_existing_directories_are_left_alone(tmp_path):
    os.chmod(tmp_path, 0o755)
    ensure_private_dir(str(tmp_path))
    assert mode(tmp_path) == 0o755


def test_fix_mode_and_read_text(tmp_path):
    path = tmp_path / "f"
    assert read_text(str(path)) is None
    path.write_text("t")
    os.chmod(path, 0o640)
    assert fix_mode(str(path), 0o600, check_mode=True) is True and mode(path) == 0o640
    assert fix_mode(str(path), 0o600) is True and mode(path) == 0o600
    assert fix_mode(str(path), 0o600) is False
