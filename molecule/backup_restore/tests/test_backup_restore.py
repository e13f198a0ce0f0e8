"""Backups proven by restores: seed real data, back up, destroy, restore, compare; take the stack over on a
second host from the repository alone; refuse what must be refused without changing anything.

The tests run in file order and build on each other (one stack's life).
"""

import hashlib
import json
import pathlib
import re
import secrets
import ssl
import sys
import threading
import time

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
import lab_convex  # noqa: E402
from converge_run import recap, run_converge, run_playbook  # noqa: E402
from lab_convex import sh  # noqa: E402
from lab_http import https_get, lab_address, started  # noqa: E402

testinfra_hosts = ["docker://owlat-mol-br1"]
STACK = "owlat"
CONF = f"/etc/owlat/{STACK}"
STATUS = f"/var/lib/owlat/backup/{STACK}.json"
BR1, BR2 = "owlat-mol-br1", "owlat-mol-br2"
S = {}  # what earlier tests measured, for the later ones


def dr_host():
    return testinfra.get_host(f"docker://{BR2}")


def admin_key(host):
    return lab_convex.admin_key(host, STACK)


def convex(host, path, body=None, key=None):
    return lab_convex.convex(host, STACK, path, body, key)


def query(host, path, args):
    return lab_convex.query(host, STACK, path, args)


def redis(host, *args):
    password = dict(l.split("=", 1) for l in host.file(f"{CONF}/secrets.env").content_string.splitlines() if "=" in l)["REDIS_PASSWORD"]
    return sh(host, f"docker exec -e REDISCLI_AUTH={password} {STACK}-redis redis-cli --no-auth-warning " + " ".join(args)).strip()


def data_checksums(host):
    """Checksums of what users care about: the Convex documents (notes, users) and the Redis keys."""
    docs = {t: query(host, "lab:list", {"table": t}) for t in ("notes", "users")}
    keys = sorted(redis(host, "--scan", "--pattern", "'lab:*'").split())
    values = [redis(host, "GET", k) for k in keys]
    return {
        "notes": len(docs["notes"]),
        "convex": hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest(),
        "redis": hashlib.sha256(json.dumps(dict(zip(keys, values)), sort_keys=True).encode()).hexdigest(),
        "redis_keys": len(keys),
    }


def secrets_sum(host):
    return sh(host, f"sha256sum {CONF}/secrets.env").split()[0]


def started_at(host, container):
    return sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {container}").strip()


def backup(*extra):
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.backup", "-e", f"owlat_target={BR1}", *extra)
    return rc, out, time.monotonic() - start


# ------------------------------------------------------------------------------------------------ tests
def test_seed_real_data(host):
    before = data_checksums(host)
    for i in range(40):
        query(host, "lab:put", {"table": "notes", "doc": {"n": i, "text": secrets.token_hex(64)}})
    for i in range(25):
        redis(host, "SET", f"lab:dkim:{i}", secrets.token_hex(32))
    S["seeded"] = data_checksums(host)
    S["secrets"] = secrets_sum(host)
    S["admin_key"] = admin_key(host)
    assert S["seeded"]["notes"] == before["notes"] + 40 and S["seeded"]["redis_keys"] == 25


def test_schedule_is_in_place(host):
    timers = sh(host, "systemctl list-timers --all --no-legend 'owlat-backup*'")
    assert f"owlat-backup@{STACK}.timer" in timers and f"owlat-backup-check@{STACK}.timer" in timers
    timer = host.file(f"/etc/systemd/system/owlat-backup@{STACK}.timer").content_string
    assert "RandomizedDelaySec=1h" in timer and "Persistent=true" in timer
    settings = host.file(f"/etc/owlat-backup/{STACK}.json")
    assert settings.mode == 0o600 and settings.user == "root"


def test_cold_backup(host):
    rc, out, seconds = backup("-e", '{"owlat_backup_run_tags": ["seeded"]}')
    assert rc == 0, out[-3000:]
    status = json.loads(host.file(STATUS).content_string)
    assert status["result"] == "success" and status["mode"] == "cold"
    assert "seeded" in status["tags"] and "release=0.4.4" in status["tags"]
    assert status["snapshot_id"][:8] in out  # the table names it
    assert 0 < status["downtime_seconds"] < status["duration_seconds"] + 1
    S["cold"] = dict(status, playbook_seconds=round(seconds, 1))
    prom = host.file(f"/var/lib/prometheus/node-exporter/owlat_backup_{STACK}.prom").content_string
    assert f'owlat_backup_last_run_success{{stack="{STACK}"}} 1' in prom
    assert f'owlat_backup_last_success_timestamp_seconds{{stack="{STACK}"}} {status["last_success"]}' in prom
    # the stack is back: same data, answering
    assert data_checksums(host) == S["seeded"]
    print(f"\ncold backup: {status['duration_seconds']} s (playbook {seconds:.1f} s), Convex down {status['downtime_seconds']} s, "
          f"{status['size_bytes']} bytes processed, {status.get('added_bytes')} bytes added")


def test_no_secret_in_backup_output(host):
    rc, out = run_playbook("owlat.selfhost.backup", "-e", f"owlat_target={BR1}", "-e", '{"owlat_backup_run_tags": ["vvv"]}', "-vvv")
    assert rc == 0, out[-2000:]
    values = [l.split("=", 1)[1] for l in host.file(f"{CONF}/secrets.env").content_string.splitlines() if "=" in l]
    for value in values + ["lab-backup-password-1", admin_key(host)]:
        assert value not in out


def test_restore_refused_over_a_live_stack_without_confirmation(host):
    before = started_at(host, f"{STACK}-convex")
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={BR1}")
    assert rc != 0
    assert "Confirm with -e owlat_backup_restore_confirm=true" in out and "nothing was changed" in out
    assert started_at(host, f"{STACK}-convex") == before


@pytest.mark.parametrize("case,extra,expected", [
    ("unknown snapshot", ["-e", "owlat_backup_restore_snapshot=deadbeef"], "snapshot deadbeef of stack owlat does not exist"),
    ("wrong password", ["-e", "owlat_backup_password=not-the-password"], "wrong repository password"),
    ("missing repository", ["-e", "owlat_backup_repository=sftp:restic@owlat-mol-brrepo:/srv/restic/nothing-here"],
     "no restic repository at sftp:restic@owlat-mol-brrepo:/srv/restic/nothing-here"),
    ("damaged repository", ["-e", "owlat_backup_repository=sftp:restic@owlat-mol-brrepo:/srv/restic/damaged"], "looks damaged"),
])
def test_bad_restores_fail_clearly_and_change_nothing(host, case, extra, expected):
    repo = testinfra.get_host("docker://owlat-mol-brrepo")
    if case == "damaged repository":
        sh(repo, "rm -rf /srv/restic/damaged && cp -a /srv/restic/owlat-mol-br1-owlat /srv/restic/damaged && "
                 "chmod u+w /srv/restic/damaged/config && head -c 300 /dev/urandom > /srv/restic/damaged/config && "
                 "chown -R restic /srv/restic/damaged")
    settings = sh(host, f"sha256sum /etc/owlat-backup/{STACK}.json")
    before = {c: started_at(host, f"{STACK}-{c}") for c in ("convex", "redis", "web")}
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={BR1}", "-e", "owlat_backup_restore_confirm=true", *extra)
    assert rc != 0, out[-2000:]
    assert expected in out, out[-3000:]
    assert "Nothing was changed" in out or "nothing was changed" in out
    assert sh(host, f"sha256sum /etc/owlat-backup/{STACK}.json") == settings
    assert {c: started_at(host, f"{STACK}-{c}") for c in ("convex", "redis", "web")} == before
    assert not repo.file("/srv/restic/nothing-here").exists  # a restore never creates a repository
    assert data_checksums(host) == S["seeded"]


def test_destroy_then_restore(host):
    # A lost stack: containers and volumes gone (config and secrets stay on the host).
    sh(host, f"docker rm -f $(docker ps -aq --filter name=^{STACK}-) && "
             f"docker volume rm {STACK}-convex-data {STACK}-redis-data")
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={BR1}")
    S["restore_seconds"] = round(time.monotonic() - start, 1)
    assert rc == 0, out[-4000:]
    assert re.search(r"restored from snapshot \w{8}", out)
    assert data_checksums(host) == S["seeded"]
    assert secrets_sum(host) == S["secrets"]
    assert sh(host, "cat /root/secrets.first.sha256").split()[0] == S["secrets"]
    # the admin key minted before the backup is still valid (same INSTANCE_SECRET, same instance)
    status, body = convex(host, "/api/check_admin_key", key=S["admin_key"])
    assert status == 200, body
    assert admin_key(host) == S["admin_key"]
    assert not host.file("/var/lib/owlat/restore-aside").exists or sh(host, "ls -A /var/lib/owlat/restore-aside") == ""
    print(f"\nrestore onto the same host (destroyed volumes): {S['restore_seconds']} s")


def test_idempotent_after_restore(host):
    rc, out = run_converge()
    assert rc == 0, out[-3000:]
    assert recap(out)[BR1]["changed"] == 0, out[-3000:]


def test_every_service_healthy_over_https(host):
    for name in ("app", "api", "actions"):
        code = sh(host, f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve {name}.{BR1}.owlat.test:443:127.0.0.1 "
                        f"https://{name}.{BR1}.owlat.test/" + ("api/instance-info" if name == "app" else "version" if name == "api" else "api/v1/health"))
        assert code == "200", name


def test_disaster_recovery_onto_a_new_host(host):
    dr = dr_host()
    assert not dr.file(CONF).exists  # a brand-new host: no stack, no secrets
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={BR2}")
    S["dr_seconds"] = round(time.monotonic() - start, 1)
    assert rc == 0, out[-4000:]
    assert f"taken on {BR1}" in out
    assert data_checksums(dr) == S["seeded"]
    assert secrets_sum(dr) == S["secrets"]
    status, body = convex(dr, "/api/check_admin_key", key=S["admin_key"])
    assert status == 200, body
    code = sh(dr, f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve app.{BR2}.owlat.test:443:127.0.0.1 "
                  f"https://app.{BR2}.owlat.test/api/instance-info")
    assert code == "200"
    print(f"\ndisaster recovery onto {BR2} (Docker present, fresh stack): {S['dr_seconds']} s")


def test_dr_host_converged(host):
    rc, out = run_playbook("owlat.selfhost.site", "-e", f"owlat_target={BR2}")
    assert rc == 0, out[-3000:]
    assert recap(out)[BR2]["changed"] == 0, out[-3000:]


def test_hot_backup_has_no_downtime_and_restores(host):
    before = {c: started_at(host, f"{STACK}-{c}") for c in ("convex", "redis")}
    rc, out, seconds = backup("-e", '{"owlat_backup_run_mode": "hot", "owlat_backup_run_tags": ["hot-test"]}')
    assert rc == 0, out[-3000:]
    status = json.loads(host.file(STATUS).content_string)
    assert status["result"] == "success" and status["mode"] == "hot" and status["downtime_seconds"] == 0
    assert {c: started_at(host, f"{STACK}-{c}") for c in ("convex", "redis")} == before
    S["hot"] = dict(status, playbook_seconds=round(seconds, 1))
    # Restore the hot snapshot over the DR host's stack (confirmed): documents from the export, Redis from BGSAVE.
    dr = dr_host()
    query(dr, "lab:put", {"table": "notes", "doc": {"n": 999, "text": "written on the DR host after the restore"}})
    redis(dr, "SET", "lab:written-after", "x")
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={BR2}", "-e", "owlat_backup_restore_confirm=true",
                           "-e", f"owlat_backup_restore_snapshot={status['snapshot_id'][:12]}")
    assert rc == 0, out[-4000:]
    assert data_checksums(dr) == S["seeded"]
    print(f"\nhot backup: {status['duration_seconds']} s, no downtime, {status['size_bytes']} bytes processed")


def test_local_repository_and_scheduled_run(host):
    dr = dr_host()
    rc, out = run_playbook("owlat.selfhost.backup", "-e", f"owlat_target={BR2}", "-e", "owlat_backup_repository=/var/backups/owlat/local",
                           "-e", '{"owlat_backup_run_tags": ["local"]}')
    assert rc == 0, out[-3000:]
    snaps = json.loads(sh(dr, "RESTIC_PASSWORD=lab-backup-password-1 restic -r /var/backups/owlat/local snapshots --json"))
    assert len(snaps) == 1 and "local" in snaps[0]["tags"]
    # the timer's service, run now: a scheduled-tagged snapshot and a fresh status
    sh(dr, f"systemctl start owlat-backup@{STACK}.service")
    status = json.loads(dr.file(STATUS).content_string)
    assert status["result"] == "success" and "scheduled" in status["tags"]


# ------------------------------------------------------------------------------------------------ move.yml
# The stack moves from owlat-mol-br1 to owlat-mol-br2 over the repository both use (the lab's SFTP server). In the
# lab each host's stack answers on names under its own host name, so the probes ask each host for its own.


def move(*extra):
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.move", "-e", f"owlat_move_stack={BR2}", "-e", f"owlat_move_from={BR1}", *extra)
    return rc, out, round(time.monotonic() - start, 1)


class Probe(threading.Thread):
    """GETs one URL of one host every 0.25 s (2 s at most per request) from outside, through its Caddy; keeps (time,
    answered 200)."""

    def __init__(self, lab_host, name, path):
        super().__init__(daemon=True)
        self.address, self.hostname, self.path = lab_address(lab_host), f"{name}.{lab_host}.owlat.test", path
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE
        self.seen, self.done = [], threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                # 2 s, not 10: one request stalled on a host coming up would otherwise blur the gap by 10 s.
                ok = https_get(self.address, self.ctx, self.hostname, self.path, timeout=2)[0] == 200
            except (OSError, ValueError, IndexError):
                ok = False
            self.seen.append((time.monotonic(), ok))
            self.done.wait(0.25)


def gap(source, target):
    """Seconds from the source's last answer to the target's first one after it (None: no such pair)."""
    last = max((t for t, ok in source.seen if ok), default=None)
    first = min((t for t, ok in target.seen if ok and last is not None and t > last), default=None)
    return round(first - last, 1) if last is not None and first is not None else None


def running(host, stack=STACK):
    return set(host.check_output(f"docker ps -q --filter label=owlat.stack={stack}").split())


def answers(host, lab_host):
    """The stack's web app answers through the host's Caddy."""
    return sh(host, f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve app.{lab_host}.owlat.test:443:127.0.0.1 "
                    f"https://app.{lab_host}.owlat.test/api/instance-info") == "200"


@pytest.mark.parametrize("case,extra,expected", [
    ("to the same host", ("-e", f"owlat_move_stack={BR1}"), f"owlat_move_from: {BR1} is also the target"),
    ("onto a host running the stack", (), f"{BR2} already runs stack {STACK}"),
    ("a grace period that is no number", ("-e", "owlat_move_keep_days=soon"), 'owlat_move_keep_days: "soon" is not a number'),
])
def test_bad_moves_are_refused_and_change_nothing(host, case, extra, expected):
    dr = dr_host()
    before = {h: started(h) for h in (host, dr)}
    rc, out, _ = move(*extra)
    assert rc != 0, out[-3000:]
    assert expected in out and "Nothing was changed." in out, (case, out[-3000:])
    assert {h: started(h) for h in (host, dr)} == before, case
    assert all(s["changed"] == 0 for s in recap(out).values()), (case, recap(out))


def test_a_dry_run_of_a_move_changes_nothing(host):
    dr = dr_host()
    # The target must not run the stack: the DR copy there is retired (no final backup: it is br1's data).
    rc, out = run_playbook("owlat.selfhost.remove", "-e", f"owlat_target={BR2}", "-e", f"owlat_remove_stack={BR2}",
                           "-e", f"owlat_remove_confirm={STACK}", "-e", "owlat_remove_backup=false")
    assert rc == 0, out[-3000:]
    assert not dr.file(CONF).exists
    before = started(host)
    rc, out, seconds = move("--check")
    assert rc == 0, out[-3000:]
    assert re.search(rf"^\s*{BR2}\s+{STACK}\s+{BR1}\s+-\s+-\s+would be moved \(check mode\)", out, re.M), out[-2000:]
    assert started(host) == before and answers(host, BR1)
    assert not dr.file(CONF).exists and not dr.file(f"/etc/owlat-backup/{STACK}.json").exists and running(dr) == set()
    print(f"\nmove --check: {seconds} s")


# The doubles answer within a second: every gate that can see the broken web (the app's health, the proxy's HTTPS check
# of the app's hostname: 2 min by default) gives up within a minute.
BROKEN_WEB = json.dumps({"owlat_stack_release_catalog_extra": {"0.4.4": {"images": {"web": "ghcr.io/wolvesdotink/web:0.4.4-broken"}}},
                         "owlat_app_health_timeout": 20, "owlat_proxy_health_timeout": 60})


def test_a_move_whose_target_fails_starts_the_source_again(host):
    dr = dr_host()
    before, secrets_before = data_checksums(host), secrets_sum(host)
    # Lab only: the target's web image fails its health check (lab/lab.py pushes web:0.4.4-broken).
    rc, out, seconds = move("-e", BROKEN_WEB)
    assert rc != 0, out[-3000:]
    assert f"Stack {STACK} was started again on {BR1} and serves from there as before" in " ".join(out.split()), out[-3000:]
    assert answers(host, BR1) and data_checksums(host) == before and secrets_sum(host) == secrets_before
    assert json.loads(host.file(f"/etc/ansible/facts.d/owlat_{STACK}.fact").content_string)["moved"]["phase"] == "failed"
    assert host.run(f"systemctl is-enabled owlat-backup@{STACK}.timer").stdout.strip() == "enabled"
    # Nothing of the stack runs on the target (its MTA would work the same queue), nor backs up from there.
    assert running(dr) == set()
    assert dr.run(f"systemctl is-enabled owlat-backup@{STACK}.timer").stdout.strip() != "enabled"
    print(f"\nmove with a failing target: {seconds} s, the source serves again")


def test_move_a_stack_to_another_host(host):
    dr = dr_host()
    before, secrets_before, key = data_checksums(host), secrets_sum(host), admin_key(host)
    probes = {(h, n): Probe(h, n, p) for h in (BR1, BR2) for n, p in (("api", "/version"), ("app", "/api/instance-info"))}
    for p in probes.values():
        p.start()
    rc, out, seconds = move()
    time.sleep(2)
    for p in probes.values():
        p.done.set()
        p.join()
    assert rc == 0, out[-5000:]
    # The data, the secrets and the admin key are the source's.
    assert data_checksums(dr) == before
    assert secrets_sum(dr) == secrets_before
    status, body = convex(dr, "/api/check_admin_key", key=key)
    assert status == 200, body
    # The source keeps a stopped copy (data and secrets), its record says where the stack went, no backup runs there.
    assert running(host) == set() and host.check_output(f"docker ps -aq --filter label=owlat.stack={STACK}")
    assert secrets_sum(host) == secrets_before
    moved = json.loads(host.file(f"/etc/ansible/facts.d/owlat_{STACK}.fact").content_string)["moved"]
    assert moved["to"] == BR2 and moved["phase"] == "moved"
    assert host.run(f"systemctl is-enabled owlat-backup@{STACK}.timer").stdout.strip() != "enabled"
    row = re.search(rf"^\s*{BR2}\s+{STACK}\s+{BR1}\s+{moved['snapshot'][:8]}\s+(\d+) s\s+moved; the copy on {BR1} is kept", out, re.M)
    assert row, out[-2000:]
    # The records to publish for the stack on its new host (dns.yml's), its hostnames to the new host's address.
    for name in ("app", "api", "actions"):
        assert f"{name}.{BR2}.owlat.test. 3600 IN A {lab_address(BR2)}" in out, out[-3000:]
    assert f"mail.{BR2}.owlat.test. 3600 IN A {lab_address(BR2)}" in out, out[-3000:]
    api, web = gap(probes[BR1, "api"], probes[BR2, "api"]), gap(probes[BR1, "app"], probes[BR2, "app"])
    S["move"] = dict(seconds=seconds, down=int(row[1]), api_gap=api, web_gap=web, changed=recap(out))
    print(f"\nmove {BR1} -> {BR2}: playbook {seconds} s, DOWN {row[1]} s; API gap {api} s, web refused for {web} s; {recap(out)}")
    # The users' gap is the one the playbook reports (its DOWN: source stopped to target answering; the probes ask
    # every 0.25 s), and it is bounded: 51 s idle in the lab, about 1.4 x that on a loaded CI machine.
    assert api is not None and api <= int(row[1]) + 5 and api < 120, S["move"]


def test_a_second_move_run_changes_nothing(host):
    rc, out, seconds = move()
    assert rc == 0, out[-3000:]
    assert all(s["changed"] == 0 for s in recap(out).values()), recap(out)
    assert f"moved earlier; the copy on {BR1} is kept stopped" in out
    runs = dict(re.findall(r"^(\S+)\s+runs=(\d+)\s+changed=", out, re.M))
    print(f"\nsecond move run: {seconds} s, nothing changed; module runs per host {runs}")


def test_site_refuses_to_start_the_copy_left_on_the_source(host):
    rc, out = run_playbook("owlat.selfhost.site", "-e", f"owlat_target={BR1}")
    assert rc != 0, out[-3000:]
    assert f"the stack was moved to {BR2}" in out, out[-3000:]
    assert running(host) == set()


def test_the_kept_copy_goes_after_the_grace_period(host):
    dr = dr_host()
    before = data_checksums(dr)
    rc, out, seconds = move("-e", "owlat_move_keep_days=0")
    assert rc == 0, out[-3000:]
    assert f"moved earlier; removed from {BR1} after the grace period" in out
    assert host.check_output(f"docker ps -aq --filter label=owlat.stack={STACK}") == ""
    assert host.check_output(f"docker volume ls -q --filter label=owlat.stack={STACK}") == ""
    assert not host.file(CONF).exists and not host.file(f"/etc/ansible/facts.d/owlat_{STACK}.fact").exists
    assert not host.file(f"/etc/owlat-backup/{STACK}.json").exists
    # The repository keeps the final backup; the stack serves from the target as before.
    assert data_checksums(dr) == before
    rc, out, _ = move()
    assert rc == 0 and f"moved earlier; nothing left on {BR1}" in out, out[-3000:]
    assert all(s["changed"] == 0 for s in recap(out).values()), recap(out)
