"""The backup engine the backup role installs on hosts (roles/backup/files/owlat-backup), run in-process."""

import importlib.machinery
import importlib.util
import json
import os
import pathlib

import pytest

ENGINE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "backup" / "files" / "owlat-backup"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    loader = importlib.machinery.SourceFileLoader("owlat_backup_engine", str(ENGINE))
    spec = importlib.util.spec_from_loader("owlat_backup_engine", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    monkeypatch.setattr(mod, "STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(mod, "SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setattr(mod, "RECORD", str(tmp_path / "facts" / "owlat_%s.fact"))
    return mod


def write_record(engine, stack, services):
    engine.write_json(engine.RECORD % stack, {"stack": stack, "release": "0.4.4", "services": services})


def fake_docker_host(engine, monkeypatch):
    """Every volume exists and every container runs; Docker calls and health waits are recorded."""
    calls = []
    monkeypatch.setattr(engine, "mountpoint", lambda volume: "/vol/" + volume)
    monkeypatch.setattr(engine, "running", lambda c: True)
    monkeypatch.setattr(engine, "docker", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(engine, "container_ip", lambda c, n: "10.0.0.2")
    monkeypatch.setattr(engine, "wait_http", lambda url, timeout: calls.append(("wait", url)))
    return calls


CFG = {"env": {"RESTIC_REPOSITORY": "rest:https://user:s3cret@backup.example.com/owlat", "RESTIC_PASSWORD": "pw"}}


@pytest.mark.parametrize("stderr,rc,expected", [
    ("Fatal: wrong password or no key found\n", 12, "wrong repository password"),
    ("Fatal: wrong password or no key found\n", 1, "wrong repository password"),
    ("Fatal: unable to open config file: stat /x/config: no such file or directory\nIs there a repository at the following location?", 1,
     "no restic repository"),
    ("Fatal: repository does not exist: unable to open config file", 10, "no restic repository"),
    ("Fatal: config cannot be loaded: ciphertext verification failed", 1, "looks damaged"),
    ("Fatal: something else entirely", 3, "restic failed (exit 3)"),
])
def test_restic_errors_are_explained_without_credentials(engine, stderr, rc, expected):
    text = engine.explain_restic(CFG, stderr + " rest:https://user:s3cret@backup.example.com/owlat", rc)
    assert expected in text
    assert "s3cret" not in text and "pw" not in text.split()


def test_a_failed_run_says_why_and_leaves_a_failed_status_and_metrics(engine, tmp_path, monkeypatch):
    cfg = dict(CFG, config_dir=str(tmp_path / "conf"), textfile_dir=str(tmp_path / "textfile"))
    monkeypatch.setattr(engine, "mountpoint", lambda volume: None)
    previous = {"stack": "s1", "result": "success", "last_success": 1700000000, "snapshot_id": "abc"}
    engine.write_json(os.path.join(engine.STATE_DIR, "s1.json"), previous)
    args = type("A", (), {"mode": None, "tag": ["t1"], "no_forget": True})()
    with pytest.raises(engine.BackupError) as err:
        engine.cmd_run("s1", cfg, args)
    assert "volume s1-convex-data does not exist" in str(err.value)
    status = json.loads((tmp_path / "state" / "s1.json").read_text())
    assert status["result"] == "failed" and "s1-convex-data" in status["message"]
    assert status["last_success"] == 1700000000  # the last good backup is still known
    prom = (tmp_path / "textfile" / "owlat_backup_s1.prom").read_text()
    assert 'owlat_backup_last_run_success{stack="s1"} 0' in prom
    assert 'owlat_backup_last_success_timestamp_seconds{stack="s1"} 1700000000' in prom


def test_cold_run_stops_and_restarts_convex_and_redis_and_reports(engine, tmp_path, monkeypatch):
    cfg = dict(CFG, config_dir=str(tmp_path / "conf"), textfile_dir=str(tmp_path / "textfile"), host="h1")
    calls = fake_docker_host(engine, monkeypatch)

    def fake_restic(cfg, *args, capture=True):
        calls.append(("restic",) + args)
        if args[0] == "backup":
            return json.dumps({"message_type": "summary", "snapshot_id": "f00d" * 16, "total_bytes_processed": 1234, "data_added": 99})
        return ""

    monkeypatch.setattr(engine, "restic", fake_restic)
    args = type("A", (), {"mode": None, "tag": ["pre-upgrade"], "no_forget": False})()
    status = engine.cmd_run("s1", cfg, args)
    assert status["result"] == "success" and status["snapshot_id"] == "f00d" * 16 and status["size_bytes"] == 1234
    assert status["downtime_seconds"] is not None
    # Which kind of backup it was, in the status and as an info metric.
    assert status["mode"] == "cold" and status["contents"] == "volumes"
    prom = (tmp_path / "textfile" / "owlat_backup_s1.prom").read_text()
    assert 'owlat_backup_last_run_info{stack="s1",mode="cold",contents="volumes"} 1' in prom
    order = [c[:2] for c in calls]
    backup_at = next(i for i, c in enumerate(calls) if c[:2] == ("restic", "backup"))
    assert order.index(("stop", "s1-convex")) < backup_at and order.index(("stop", "s1-redis")) < backup_at
    # started again after the snapshot, Redis before Convex, and waited for
    assert backup_at < order.index(("start", "s1-redis")) < order.index(("start", "s1-convex"))
    assert ("wait", "http://10.0.0.2:3210/version") in calls
    backup = next(c for c in calls if c[:2] == ("restic", "backup"))
    assert "/vol/s1-convex-data" in backup and "/vol/s1-redis-data" in backup and cfg["config_dir"] in backup
    assert "stack=s1" in backup and "pre-upgrade" in backup and "mode=cold" in backup
    forget = next(c for c in calls if c[:2] == ("restic", "forget"))
    assert "--keep-daily" in forget and "stack=s1" in forget


def test_containers_are_started_again_when_restic_fails(engine, tmp_path, monkeypatch):
    cfg = dict(CFG, config_dir=str(tmp_path / "conf"), textfile_dir="")
    calls = fake_docker_host(engine, monkeypatch)

    def failing(cfg, *args, capture=True):
        raise engine.BackupError("wrong repository password for x")

    monkeypatch.setattr(engine, "restic", failing)
    with pytest.raises(engine.BackupError, match="wrong repository password"):
        engine.cmd_run("s1", cfg, type("A", (), {"mode": None, "tag": None, "no_forget": True})())
    assert ("start", "s1-convex") in calls and ("start", "s1-redis") in calls


def test_find_snapshot(engine, monkeypatch):
    snaps = [
        {"id": "aa" * 32, "short_id": "aaaaaaaa", "time": "2026-11-25T01:00:00Z", "hostname": "h1", "tags": ["stack=s1", "release=0.4.4", "mode=cold"]},
        {"id": "bb" * 32, "short_id": "bbbbbbbb", "time": "2026-11-26T01:00:00Z", "hostname": "h1", "tags": ["stack=s1", "release=0.4.4", "mode=hot"]},
    ]
    monkeypatch.setattr(engine, "restic", lambda cfg, *a, **k: json.dumps(snaps))
    assert engine.find_snapshot("s1", CFG, "latest", None)["id"] == "bb" * 32
    found = engine.find_snapshot("s1", CFG, "aaaaaaaa", None)
    assert found["release"] == "0.4.4" and found["mode"] == "cold"
    with pytest.raises(engine.BackupError, match="deadbeef .*does not exist.*aaaaaaaa"):
        engine.find_snapshot("s1", CFG, "deadbeef", None)
    monkeypatch.setattr(engine, "restic", lambda cfg, *a, **k: "[]")
    with pytest.raises(engine.BackupError, match="no snapshot of stack s1"):
        engine.find_snapshot("s1", CFG, "latest", None)


def test_snapshots_names_the_volumes_a_restore_fills(engine, monkeypatch):
    snaps = [{"id": "aa" * 32, "short_id": "aaaaaaaa", "time": "2026-11-25T01:00:00Z", "tags": ["stack=s1"]}]
    manifest = {"stack": "s1", "volumes": {"convex_data": "s1-convex-data", "worker_data": "s1-worker-data"}}
    dumps = []

    def fake_restic(cfg, *args, **k):
        if args[0] == "dump":
            dumps.append(args)
            return json.dumps(manifest)
        return json.dumps(snaps)

    monkeypatch.setattr(engine, "restic", fake_restic)
    args = type("A", (), {"snapshot": "latest", "tag": None})()
    assert engine.cmd_snapshots("s1", CFG, args)["volumes"] == ["s1-convex-data", "s1-worker-data"]
    assert dumps == [("dump", "aa" * 32, os.path.join(engine.STATE_DIR, "s1", "staging", "manifest.json"))]
    manifest = {"stack": "s1"}  # a snapshot taken before manifests named their volumes
    assert engine.cmd_snapshots("s1", CFG, args)["volumes"] == ["s1-convex-data", "s1-redis-data"]


def test_redis_dump_becomes_the_aof_base(engine, tmp_path):
    dest = tmp_path / "redis"
    dest.mkdir()
    (dest / "dump.rdb").write_bytes(b"REDIS0011...")
    engine.redis_from_dump(str(dest))
    assert (dest / "appendonlydir" / "appendonly.aof.1.base.rdb").read_bytes() == b"REDIS0011..."
    assert (dest / "appendonlydir" / "appendonly.aof.manifest").read_text() == "file appendonly.aof.1.base.rdb seq 1 type b\n"


def test_restore_sets_data_aside_and_put_back_undoes_it(engine, tmp_path, monkeypatch):
    stack = "s1"
    vol = {n: tmp_path / "vols" / n for n in ("s1-convex-data", "s1-redis-data")}
    for path in vol.values():
        path.mkdir(parents=True)
        (path / "live.txt").write_text("live " + path.name)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "secrets.env").write_text("INSTANCE_SECRET=live\n")
    monkeypatch.setattr(engine, "mountpoint", lambda v: str(vol[v]))
    snap = {"id": "cc" * 32, "short_id": "cccccccc", "time": "t", "hostname": "old", "tags": ["stack=s1", "release=0.4.4", "mode=cold"]}
    monkeypatch.setattr(engine, "find_snapshot", lambda *a: dict(snap, release="0.4.4", mode="cold"))
    old_paths = {"config": "/etc/owlat/s1", "staging": engine.STATE_DIR + "/s1/staging",
                 "convex_data": "/old/convex", "redis_data": "/old/redis"}

    def fake_restore(cfg, *args, capture=True):
        target = args[args.index("--target") + 1]
        for name, path in old_paths.items():
            os.makedirs(target + path, exist_ok=True)
        open(target + "/etc/owlat/s1/secrets.env", "w").write("INSTANCE_SECRET=backed-up\n")
        open(target + "/old/convex/db.sqlite3", "w").write("backed-up db")
        open(target + "/old/redis/dump.rdb", "w").write("backed-up redis")
        engine.write_json(target + old_paths["staging"] + "/manifest.json",
                          {"stack": "s1", "mode": "cold", "release": "0.4.4", "host": "old", "created": 1, "paths": old_paths})
        return ""

    monkeypatch.setattr(engine, "restic", fake_restore)
    aside = str(tmp_path / "aside")
    cfg = dict(CFG, config_dir=str(conf))
    result = engine.cmd_restore(stack, cfg, type("A", (), {"snapshot": "latest", "aside": aside})())
    assert (conf / "secrets.env").read_text() == "INSTANCE_SECRET=backed-up\n"
    assert (vol["s1-convex-data"] / "db.sqlite3").read_text() == "backed-up db"
    assert not (vol["s1-convex-data"] / "live.txt").exists()
    assert (pathlib.Path(aside) / "convex_data" / "live.txt").read_text() == "live s1-convex-data"
    assert result["manifest"]["host"] == "old" and result["aside"] == aside

    engine.cmd_put_back(stack, cfg, type("A", (), {"aside": aside})())
    assert (conf / "secrets.env").read_text() == "INSTANCE_SECRET=live\n"
    assert (vol["s1-convex-data"] / "live.txt").exists() and not (vol["s1-convex-data"] / "db.sqlite3").exists()
    assert not os.path.exists(aside)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files away")
def test_moving_across_filesystems_keeps_owners(engine, tmp_path, monkeypatch):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "appendonlydir").mkdir(parents=True)
    (src / "appendonlydir" / "appendonly.aof.manifest").write_text("m")
    (src / "dump.rdb").write_text("d")
    for path in (src / "appendonlydir", src / "appendonlydir" / "appendonly.aof.manifest", src / "dump.rdb"):
        os.chown(path, 999, 999)

    def cross_device(a, b):
        raise OSError(engine.errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(engine.os, "rename", cross_device)
    engine.move_contents(str(src), str(dest))
    for rel in ("appendonlydir", "appendonlydir/appendonly.aof.manifest", "dump.rdb"):
        assert os.stat(dest / rel).st_uid == 999, rel
    assert os.listdir(src) == []


def fake_cold_run(engine, tmp_path, monkeypatch, **more):
    cfg = dict(CFG, config_dir=str(tmp_path / "conf"), textfile_dir="", host="h1", **more)
    calls = fake_docker_host(engine, monkeypatch)

    def fake_restic(cfg, *args, capture=True):
        calls.append(("restic",) + args)
        return json.dumps({"message_type": "summary", "snapshot_id": "f00d" * 16}) if args[0] == "backup" else ""

    monkeypatch.setattr(engine, "restic", fake_restic)
    engine.cmd_run("s1", cfg, type("A", (), {"mode": "cold", "tag": [], "no_forget": True})())
    return calls, next(c for c in calls if c[:2] == ("restic", "backup"))


def test_the_data_to_back_up_is_the_stacks_description(engine, tmp_path, monkeypatch):
    """A service the description gives data (a worker, say) is stopped and read like Convex and Redis; a stack
    behind the host's Caddy has no Caddy in its description, so include_caddy adds nothing."""
    write_record(engine, "s1", [{"name": "convex", "spec": {"data": ["convex-data"]}}, {"name": "web", "spec": {}},
                                {"name": "redis", "spec": {"data": ["redis-data"]}},
                                {"name": "worker", "spec": {"data": ["worker-data", "worker-cache"]}}])
    calls, backup = fake_cold_run(engine, tmp_path, monkeypatch, include_caddy=True)
    stops = [c[1] for c in calls if c[0] == "stop"]
    starts = [c[1] for c in calls if c[0] == "start"]
    assert stops == ["s1-convex", "s1-redis", "s1-worker"] and starts == list(reversed(stops))
    assert {"/vol/s1-convex-data", "/vol/s1-redis-data", "/vol/s1-worker-data", "/vol/s1-worker-cache"} <= set(backup)
    assert not [a for a in backup if "caddy" in a or "s1-web" in a]
    assert engine.volumes("s1", {}) == {"convex_data": "s1-convex-data", "redis_data": "s1-redis-data",
                                        "worker_data": "s1-worker-data", "worker_cache": "s1-worker-cache"}


def test_after_a_cold_backup_convex_is_waited_for_where_the_description_says(engine, tmp_path, monkeypatch):
    write_record(engine, "s1", [{"name": "convex", "spec": {"data": ["convex-data"], "port": 3299,
                                                             "health": {"kind": "http", "path": "/ready"}}},
                                {"name": "redis", "spec": {"data": ["redis-data"]}}])
    calls, _ = fake_cold_run(engine, tmp_path, monkeypatch)
    assert ("wait", "http://10.0.0.2:3299/ready") in calls, calls


def test_a_record_without_the_description_of_data_backs_up_what_stacks_always_had(engine, tmp_path, monkeypatch):
    write_record(engine, "s1", [{"name": "convex", "spec": {"image": "convex_backend"}}])
    assert engine.volumes("s1", {}) == {"convex_data": "s1-convex-data", "redis_data": "s1-redis-data"}
    assert engine.volumes("s1", {"include_caddy": True})["caddy_data"] == "s1-caddy-data"
    calls, backup = fake_cold_run(engine, tmp_path, monkeypatch, include_caddy=True)
    assert [c[1] for c in calls if c[0] == "stop"] == ["s1-convex", "s1-redis"]  # Caddy is read while it runs
    assert "/vol/s1-caddy-data" in backup


def test_the_recordless_data_is_the_stack_roles_description(engine):
    """A record without `data` is read with what the stack role's description says of the services holding data."""
    import yaml

    described = yaml.safe_load((ENGINE.parents[2] / "stack" / "vars" / "main.yml").read_text())["owlat_stack_services"]
    holding = [{"name": name, "spec": {k: v for k, v in spec.items() if k in ("data", "data_live")}}
               for name, spec in described.items() if spec and spec.get("data")]
    assert engine.RECORDLESS_DATA == holding


def test_an_adopted_install_is_read_from_its_own_volumes_and_restores_into_the_stacks(engine, tmp_path, monkeypatch):
    """adopt.yml: --from reads a component from the install's volume; the manifest still names the stack's volume
    (where a restore puts it) and the release given, since the stack has no deploy record yet."""
    cfg = dict(CFG, config_dir=str(tmp_path / "conf"), textfile_dir="", host="h1")
    calls = fake_docker_host(engine, monkeypatch)
    monkeypatch.setattr(engine, "running", lambda c: False)
    manifests = []

    def fake_restic(cfg, *args, capture=True):
        calls.append(("restic",) + args)
        if args[0] == "backup":
            manifests.append(engine.read_json(os.path.join(engine.STATE_DIR, "s1", "staging", "manifest.json")))
            return json.dumps({"message_type": "summary", "snapshot_id": "f00d" * 16})
        return ""

    monkeypatch.setattr(engine, "restic", fake_restic)
    args = type("A", (), {"mode": "cold", "tag": ["adopt"], "no_forget": True, "release": "0.4.4",
                          "from_volume": ["convex_data=owlat_convex-data", "redis_data=owlat_redis-data"]})()
    status = engine.cmd_run("s1", cfg, args)
    backup = next(c for c in calls if c[:2] == ("restic", "backup"))
    assert {"/vol/owlat_convex-data", "/vol/owlat_redis-data"} <= set(backup)
    assert not [a for a in backup if "/vol/s1-" in a]
    assert manifests[0]["volumes"] == {"convex_data": "s1-convex-data", "redis_data": "s1-redis-data"}
    assert manifests[0]["release"] == "0.4.4" and "release=0.4.4" in status["tags"] and "adopt" in status["tags"]
    assert not [c for c in calls if c[0] in ("stop", "start")]
    args.from_volume = ["worker_data=x"]
    with pytest.raises(engine.BackupError, match="no such component"):
        engine.cmd_run("s1", cfg, args)
