"""An install made the way upstream's install.sh / quickstart makes it is adopted: its data byte for byte, its
secrets and its admin key are the stack's, its updater and docker socket proxy are gone; an install that cannot be
adopted is refused with nothing changed."""

import json
import pathlib
import re
import sys

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
import lab_convex  # noqa: E402
from converge_run import recap, run_converge  # noqa: E402

HOST = "owlat-mol-adopt"
SECRETS = ("INSTANCE_SECRET", "MTA_SECRET", "BETTER_AUTH_SECRET", "UNSUBSCRIBE_SECRET", "MTA_API_KEY",
           "MTA_WEBHOOK_SECRET", "BOUNCE_VERP_KEY", "REDIS_PASSWORD")


@pytest.fixture(scope="module")
def host():
    return testinfra.get_host(f"docker://{HOST}")


def env_of(host, path):
    return dict(re.findall(r"(?m)^([A-Z_]+)=(.*)$", host.file(path).content_string))


def before(host):
    return json.loads(host.file("/root/adopt-before.json").content_string)


def test_the_data_came_over_byte_for_byte(host):
    was = before(host)
    assert len(was["notes"]) == 25 and len(was["users"]) == 1
    assert lab_convex.query(host, "owlat", "lab:list", {"table": "notes"}) == was["notes"]
    assert lab_convex.query(host, "owlat", "lab:list", {"table": "users"}) == was["users"]
    password = env_of(host, "/etc/owlat/owlat/secrets.env")["REDIS_PASSWORD"]
    value = lab_convex.sh(host, f"docker exec -e REDISCLI_AUTH={password} owlat-redis redis-cli GET lab:adopt").strip()
    assert value == was["redis"]


def test_the_secrets_and_the_admin_key_are_the_installs(host):
    dotenv, stack = env_of(host, "/opt/owlat/.env"), env_of(host, "/etc/owlat/owlat/secrets.env")
    assert {k: stack[k] for k in SECRETS} == {k: dotenv[k] for k in SECRETS}
    assert lab_convex.admin_key(host, "owlat") == dotenv["CONVEX_ADMIN_KEY"]
    status, _ = lab_convex.convex(host, "owlat", "/api/check_admin_key", key=dotenv["CONVEX_ADMIN_KEY"])
    assert status == 200
    assert host.file("/etc/owlat/owlat/secrets.env").mode == 0o600


def test_the_install_is_gone_and_the_stack_answers(host):
    names = host.check_output("docker ps -a --format '{{.Names}}'").split()
    assert not [n for n in names if n.startswith("owlat-") and n.endswith("-1")], names
    assert {"owlat-convex", "owlat-web", "owlat-mta", "owlat-redis", "owlat-caddy"} <= set(names)
    volumes = host.check_output("docker volume ls -q").split()
    assert "owlat_convex-data" not in volumes and "owlat_redis-data" not in volumes
    for volume in ("owlat-convex-data", "owlat-redis-data"):
        label = host.check_output("docker volume inspect -f '{{index .Labels \"owlat.stack\"}}' %s" % volume)
        assert label == "owlat"
    networks = host.check_output("docker network ls --format '{{.Name}}'").split()
    assert "owlat_default" not in networks and "owlat_docker-proxy" not in networks
    # The install directory stays as it was.
    assert host.file("/opt/owlat/docker-compose.yml").exists and host.file("/opt/owlat/.env").exists
    record = json.loads(host.file("/etc/owlat/owlat/adopted.json").content_string)
    assert record["release"] == "0.4.4" and record["project"] == "owlat"
    assert {m["method"] for m in record["handed_over"] if m["changed"]} == {"rename"}
    assert any(r.endswith("updater-1") for r in record["removed"])
    assert any(r.endswith("docker-socket-proxy-1") for r in record["removed"])


def test_the_install_was_backed_up_before_anything_moved(host):
    record = json.loads(host.file("/etc/owlat/owlat/adopted.json").content_string)
    out = host.check_output("RESTIC_PASSWORD=lab-adopt-backup restic -r /var/backups/owlat/owlat snapshots --json "
                            "--tag adopt")
    snaps = json.loads(out)
    assert [s["id"] for s in snaps] == [record["snapshot"]]
    assert "release=0.4.4" in snaps[0]["tags"]
    paths = host.check_output(f"RESTIC_PASSWORD=lab-adopt-backup restic -r /var/backups/owlat/owlat ls {record['snapshot']}")
    assert "/var/lib/docker/volumes/owlat_convex-data/_data/" in paths
    assert "/var/lib/docker/volumes/owlat_redis-data/_data/" in paths


def test_a_second_run_finds_it_adopted_and_changes_nothing(host):
    rc, out = run_converge()
    assert rc == 0, out[-3000:]
    assert all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]
    assert re.search(rf"{HOST}\s+owlat\s+.*already adopted", out), out[-3000:]


def spare_state(host):
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' spare-web-1")
    convex = host.check_output("cat /var/lib/docker/volumes/spare_convex-data/_data/marker")
    return started, convex, host.file("/etc/owlat/spare").exists


def adopt_spare(*extra):
    return run_converge("-e", json.dumps({"owlat_stack_name": "spare", "owlat_stack_adopt_dir": "/opt/spare"}), *extra)


@pytest.mark.parametrize("edit, extra, message", [
    ("sed -i '/^MTA_SECRET=/d' /opt/spare/.env", (), r"/opt/spare/\.env lacks MTA_SECRET"),
    ("sed -i 's/^OWLAT_VERSION=.*/OWLAT_VERSION=0.3.9/' /opt/spare/.env", (), r"runs release 0\.3\.9, which the catalog lacks"),
    ("sed -i 's/^OWLAT_VERSION=.*/OWLAT_VERSION=0.4.3/' /opt/spare/.env", (),
     r'owlat_stack_release is 0\.4\.4 but the install runs 0\.4\.3: set\s+owlat_stack_release: "0\.4\.3"'),
    ("sed -i 's/^BOUNCE_VERP_KEY=.*/BOUNCE_VERP_KEY=change-me/' /opt/spare/.env", (),
     r"BOUNCE_VERP_KEY in /opt/spare/\.env is not alnum40"),
    ("true", ("-e", "owlat_backup_password=''"), r"backups are not configured for this stack \(owlat_backup_password\)"),
], ids=["missing-secret", "release-not-in-catalog", "other-release", "malformed-secret", "no-backups"])
def test_an_install_that_cannot_be_adopted_is_refused_with_no_change(host, edit, extra, message):
    host.check_output("cp -p /opt/spare/.env /root/spare.env")
    try:
        host.check_output(edit)
        was = spare_state(host)
        rc, out = adopt_spare(*extra)
        assert rc != 0, out[-3000:]
        text = re.sub(r"\s+", " ", out)
        assert re.search(message, text), out[-3000:]
        assert "Nothing was changed." in text
        assert spare_state(host) == was
    finally:
        host.check_output("cp -p /root/spare.env /opt/spare/.env")


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(host):
    was = spare_state(host)
    rc, out = adopt_spare("--check")
    assert rc == 0, out[-3000:]
    text = re.sub(r"\s+", " ", out)
    assert re.search(r"adopt /opt/spare \(compose project spare, release 0\.4\.4\)", text), out[-3000:]
    assert "move spare_convex-data -> spare-convex-data, spare_redis-data -> spare-redis-data" in text, out[-3000:]
    assert re.search(rf"{HOST}\s+spare\s+.*would be adopted \(check mode\)", out), out[-3000:]
    assert spare_state(host) == was


def test_a_backup_that_cannot_be_taken_leaves_the_install_running(host):
    was = spare_state(host)
    rc, out = adopt_spare("-e", "owlat_backup_repository=/proc/owlat-cannot-be-here")
    assert rc != 0, out[-3000:]
    assert spare_state(host) == was
    assert host.check_output("docker inspect -f '{{.State.Running}}' spare-web-1") == "true"


def test_a_backup_that_fails_once_the_install_is_stopped_starts_it_again_and_moves_nothing(host):
    """The repository opens, but a backup of the stack is already running (the engine's lock is held): the backup
    itself fails after the install was stopped. Runs last: the install's secrets were written for the stack by then."""
    lock = "/var/lib/owlat/backup/spare/.lock"
    started = spare_state(host)[0]
    host.check_output(f"mkdir -p {lock.rsplit('/', 1)[0]} && (setsid flock {lock} sleep 287 >/dev/null 2>&1 &)")
    try:
        rc, out = adopt_spare()
    finally:
        host.run("pkill -f 'sleep 287'")
    assert rc != 0, out[-3000:]
    text = re.sub(r"\s+", " ", out)
    assert "another backup or restore of this stack is running" in text, out[-3000:]
    assert "The install was started again and nothing was moved" in text, out[-3000:]
    assert host.check_output("docker inspect -f '{{.State.Running}}' spare-web-1") == "true"
    assert spare_state(host)[0] != started  # it was stopped for the backup, and started again
    assert host.check_output("cat /var/lib/docker/volumes/spare_convex-data/_data/marker") == "spare-convex"
    volumes = host.check_output("docker volume ls -q").split()
    assert "spare-convex-data" not in volumes and "spare-redis-data" not in volumes
