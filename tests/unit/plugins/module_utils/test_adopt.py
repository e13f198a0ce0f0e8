"""An install made by upstream's quickstart, read for adoption, and its volumes' data handed over."""

import os

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _adopt
from ansible_collections.owlat.selfhost.plugins.module_utils import _secret_formats as formats

HEX = "ab" * 32


def test_env_file_as_setup_cli_writes_it():
    text = "\n".join([
        "# Owlat",
        "INSTANCE_SECRET=" + HEX,
        'EHLO_HOSTNAME="mail.example.com"',
        "SITE_NAME=\"My \\\"quoted\\\" site\"",
        "export OWLAT_VERSION=0.4.4",
        "REDIS_PASSWORD='abc$def'",
        "EMPTY=",
        "not a line",
        "COMMENTED=value # trailing",
    ])
    env = _adopt.parse_env(text)
    assert env == {"INSTANCE_SECRET": HEX, "EHLO_HOSTNAME": "mail.example.com", "SITE_NAME": 'My "quoted" site',
                   "OWLAT_VERSION": "0.4.4", "REDIS_PASSWORD": "abc$def", "EMPTY": "", "COMMENTED": "value"}


def test_secrets_missing_and_malformed_are_told_without_their_values():
    env = {"INSTANCE_SECRET": HEX, "MTA_SECRET": "not-hex-and-secret", "REDIS_PASSWORD": ""}
    values, missing, malformed = _adopt.read_secrets(
        env, {"INSTANCE_SECRET": "hex64", "MTA_SECRET": "hex64", "REDIS_PASSWORD": "alnum32", "BOUNCE_VERP_KEY": "alnum40"},
        formats.is_valid, formats.describe)
    assert values == {"INSTANCE_SECRET": HEX}
    assert missing == ["BOUNCE_VERP_KEY", "REDIS_PASSWORD"]
    assert malformed == [{"name": "MTA_SECRET", "format": formats.describe("hex64")}]
    assert "not-hex-and-secret" not in repr(malformed)


@pytest.mark.parametrize("env, image, release", [
    ({"OWLAT_VERSION": "0.4.4"}, "ghcr.io/wolvesdotink/web:0.4.3", "0.4.4"),
    ({"OWLAT_VERSION": "v0.4.3"}, "", "0.4.3"),
    ({}, "ghcr.io/wolvesdotink/web:0.4.2@sha256:" + "0" * 64, "0.4.2"),
    ({"OWLAT_VERSION": "dev"}, "ghcr.io/wolvesdotink/web:dev", None),
    ({}, "", None),
])
def test_the_release_is_owlat_version_else_the_web_image_tag(env, image, release):
    containers = [{"service": "web", "image": image}] if image else []
    assert _adopt.release_of(env, containers) == release


class FakeAPI:
    def __init__(self, containers, volumes, networks):
        self.answers = {"/containers/json": containers, "/volumes": {"Volumes": volumes}, "/networks": networks}

    def get(self, path):
        return self.answers[path.split("?")[0]]


def test_project_objects_by_label_and_volumes_restored_without_labels_by_name():
    label = {_adopt.COMPOSE_PROJECT: "owlat"}
    api = FakeAPI(
        [{"Id": "1", "Names": ["/owlat-convex-1"], "Image": "convex", "State": "running",
          "Labels": dict(label, **{_adopt.COMPOSE_SERVICE: "convex"})},
         {"Id": "2", "Names": ["/owlat-updater-1"], "Image": "updater", "State": "exited",
          "Labels": dict(label, **{_adopt.COMPOSE_SERVICE: "updater"})}],
        [{"Name": "owlat_convex-data", "Labels": dict(label, **{_adopt.COMPOSE_VOLUME: "convex-data"}), "Mountpoint": "/a"},
         {"Name": "owlat_redis-data", "Labels": None, "Mountpoint": "/b"},
         {"Name": "other-convex-data", "Labels": {"owlat.stack": "other"}, "Mountpoint": "/c"}],
        [{"Name": "owlat_default"}])
    containers, volumes, networks = _adopt.project_objects(api, "owlat")
    assert [(c["name"], c["service"], c["running"]) for c in containers] == [
        ("owlat-convex-1", "convex", True), ("owlat-updater-1", "updater", False)]
    assert [(v["name"], v["key"]) for v in volumes] == [("owlat_convex-data", "convex-data"), ("owlat_redis-data", "redis-data")]
    assert networks == ["owlat_default"]


def populate(root):
    os.makedirs(os.path.join(root, "sub", "deeper"))
    with open(os.path.join(root, "db.sqlite3"), "wb") as fh:
        fh.write(os.urandom(4096))
    with open(os.path.join(root, "sub", "deeper", "blob"), "wb") as fh:
        fh.write(b"blob")
    os.symlink("db.sqlite3", os.path.join(root, "link"))
    os.chmod(root, 0o750)


def test_hand_over_moves_everything_verified_and_a_second_time_changes_nothing(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    populate(str(src))
    before = _adopt.tree_digest(str(src), content=True)
    result = _adopt.hand_over(str(src), str(dest))
    assert result["changed"] and result["method"] == "rename" and result["entries"] == before["entries"] == 5
    assert _adopt.tree_digest(str(dest), content=True) == before
    assert os.listdir(src) == []
    assert oct(os.stat(dest).st_mode & 0o777) == "0o750"
    again = _adopt.hand_over(str(src), str(dest))
    assert not again["changed"] and again["digest"] == result["digest"]


def test_hand_over_in_check_mode_moves_nothing(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    populate(str(src))
    result = _adopt.hand_over(str(src), str(dest), check_mode=True)
    assert result["changed"] and sorted(os.listdir(src)) == ["db.sqlite3", "link", "sub"] and os.listdir(dest) == []


def test_hand_over_refuses_to_mix_data(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    populate(str(src))
    (dest / "theirs").write_text("x")
    with pytest.raises(ValueError, match="both"):
        _adopt.hand_over(str(src), str(dest))
    assert sorted(os.listdir(src)) == ["db.sqlite3", "link", "sub"]


def test_hand_over_across_filesystems_copies_compares_bytes_and_then_empties_the_source(tmp_path, monkeypatch):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    populate(str(src))
    before = _adopt.tree_digest(str(src), content=True)
    real_rename = os.rename

    def cross_device(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(_adopt.os, "rename", cross_device)
    monkeypatch.setattr(_adopt, "same_filesystem", lambda a, b: False)
    result = _adopt.hand_over(str(src), str(dest))
    monkeypatch.setattr(_adopt.os, "rename", real_rename)
    assert result["method"] == "copy" and result["digest"] == before["digest"]
    assert os.listdir(src) == []
