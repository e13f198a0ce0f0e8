"""Several stacks on one host: each answers on its own hostnames through the host's one Caddy and on port 25 of
its own address; adding, changing or removing one leaves the others' containers as they were; bad lists of
stacks are refused before anything changes anywhere. A one-stack host beside them keeps its own Caddy."""

import json
import pathlib
import re
import secrets
import ssl
import subprocess
import sys
import time

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
import lab_convex  # noqa: E402
from converge_run import recap, run_converge, run_playbook  # noqa: E402
from lab_http import https_get, lab_address, smtp_banner, started  # noqa: E402

MULTI, SOLO = "owlat-mol-stacks1", "owlat-mol-stacks2"
S = {}  # what earlier tests saw, for the later ones
ADDRESS = {"north": "172.29.0.241", "south": "172.29.0.242", "east": "172.29.0.243", "west": "172.29.0.244"}
SERVICES = ("convex", "web", "mta", "redis")
RELEASE = {"north": "0.4.3"}  # host_vars: north starts a release behind (the last test upgrades it); others 0.4.4
HOST_CA = "/var/lib/docker/volumes/owlat-proxy-data/_data/caddy/pki/authorities/local/root.crt"
SOLO_CA = "/var/lib/docker/volumes/solo-caddy-data/_data/caddy/pki/authorities/local/root.crt"


@pytest.fixture(scope="module", autouse=True)
def fresh_neighbours():
    """This machine may still map the stacks' addresses to the MAC of an earlier lab host (a previous run's, or
    another tool's): forget them, so that the first connection asks who has them now."""
    for address in ADDRESS.values():
        subprocess.run(["ip", "neigh", "flush", "to", address], check=False, capture_output=True)


@pytest.fixture(scope="module")
def multi():
    return testinfra.get_host(f"docker://{MULTI}")


@pytest.fixture(scope="module")
def solo():
    return testinfra.get_host(f"docker://{SOLO}")


def tls_of(host, ca):
    return ssl.create_default_context(cadata=host.file(ca).content_string)


def stack_containers(host, stack):
    out = host.check_output("docker ps -a --filter label=owlat.stack=%s --format '{{.Names}}'" % stack)
    return set(out.split())


def converge(*stacks, changes=None, extra=()):
    """The scenario's converge with these stacks on owlat-mol-stacks1 (and changes per stack)."""
    variables = {"lab_stacks": list(stacks), "lab_stack_changes": changes or {}}
    return run_converge("-e", json.dumps(variables), *extra)


def assert_stack_answers(host, stack):
    tls = tls_of(host, HOST_CA)
    status, body = https_get(lab_address(MULTI), tls, f"app.{stack}.owlat.test", "/api/instance-info")
    assert status == 200, (stack, body)
    assert json.loads(body)["siteUrl"] == f"https://app.{stack}.owlat.test"
    status, _ = https_get(lab_address(MULTI), tls, f"api.{stack}.owlat.test", "/version")
    assert status == 200, stack
    status, body = https_get(lab_address(MULTI), tls, f"actions.{stack}.owlat.test", "/api/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok", (stack, body)


@pytest.mark.parametrize("stack", ["north", "south", "east"])
def test_each_stack_answers_over_https_through_the_hosts_caddy(multi, stack):
    assert_stack_answers(multi, stack)


@pytest.mark.parametrize("stack", ["north", "south", "east"])
def test_each_stack_answers_smtp_on_its_own_address(stack):
    assert smtp_banner(ADDRESS[stack]).startswith(f"220 mail.{stack}.owlat.test ")


def test_the_one_stack_host_keeps_its_own_caddy_and_smtp_on_every_address(solo):
    address = lab_address(SOLO)
    status, body = https_get(address, tls_of(solo, SOLO_CA), f"app.{SOLO}.owlat.test", "/api/instance-info")
    assert status == 200 and json.loads(body)["siteUrl"] == f"https://app.{SOLO}.owlat.test"
    assert smtp_banner(address).startswith(f"220 mail.{SOLO}.owlat.test ")
    assert "owlat-proxy" not in started(solo)


def test_only_the_hosts_caddy_and_each_mta_are_published(multi):
    published = set()
    for line in multi.check_output("docker ps --format '{{.Names}} {{.Ports}}'").splitlines():
        name, _, ports = line.partition(" ")
        for bind, port in re.findall(r"([0-9.:\[\]]+):(\d+)->", ports):
            published.add((name, bind, port))
    assert {(n, p) for n, _, p in published} == {("owlat-proxy", "80"), ("owlat-proxy", "443"),
                                                 ("north-mta", "25"), ("south-mta", "25"), ("east-mta", "25")}
    assert {(n, b) for n, b, p in published if p == "25"} == {(f"{s}-mta", ADDRESS[s]) for s in ("north", "south", "east")}


def test_containers_volumes_and_networks_carry_their_stacks_label(multi):
    for stack in ("north", "south", "east"):
        assert stack_containers(multi, stack) >= {f"{stack}-{s}" for s in SERVICES}
        assert multi.check_output("docker network inspect -f '{{index .Labels \"owlat.stack\"}}' %s-net" % stack) == stack
        volumes = set(multi.check_output("docker volume ls -q --filter label=owlat.stack=%s" % stack).split())
        assert volumes == {f"{stack}-convex-data", f"{stack}-redis-data"}, volumes
    assert "owlat-proxy" in multi.check_output("docker ps --filter label=owlat.proxy=host --format '{{.Names}}'")


def test_adding_a_fourth_stack_leaves_the_others_untouched(multi, solo):
    before, solo_before = started(multi), started(solo)
    rc, out = converge("north", "south", "east", "west")
    assert rc == 0, out[-3000:]
    assert_stack_answers(multi, "west")
    assert smtp_banner(ADDRESS["west"]).startswith("220 mail.west.owlat.test ")
    after = started(multi)
    untouched = {n: t for n, t in before.items() if n != "owlat-proxy"}
    assert {n: after.get(n) for n in untouched} == untouched
    assert started(solo) == solo_before
    # The summary has a row per stack.
    for stack in ("north", "south", "east", "west"):
        release = re.escape(RELEASE.get(stack, "0.4.4"))
        assert re.search(rf"^\s*{stack}@{MULTI}\s+{stack}\s+{release}\s+https://app\.{stack}\.owlat\.test\s+convex", out, re.M), stack


def test_changing_one_stack_recreates_only_what_changed(multi):
    before = started(multi)
    rc, out = converge("north", "south", "east", "west", changes={"south": {"owlat_app_web_extra_env": {"LAB_MARK": "1"}}})
    assert rc == 0, out[-3000:]
    after = started(multi)
    assert after["south-web"] != before["south-web"]
    assert {n: t for n, t in after.items() if n != "south-web"} == {n: t for n, t in before.items() if n != "south-web"}
    assert "LAB_MARK=1" in multi.check_output("docker inspect -f '{{json .Config.Env}}' south-web")
    assert_stack_answers(multi, "south")


REMOVED = {"south": {"owlat_app_web_extra_env": {"LAB_MARK": "1"}}, "east": {"owlat_stack_present": False}}


def test_removing_one_stack_keeps_its_data_and_leaves_the_others_untouched(multi):
    before = started(multi)
    secrets = multi.file("/etc/owlat/east/secrets.env").sha256sum
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0, out[-3000:]
    assert stack_containers(multi, "east") == set()
    assert multi.run("docker network inspect east-net").rc != 0
    assert not multi.file("/etc/owlat/_proxy/sites/east.caddy").exists
    assert "east-convex-data" in multi.check_output("docker volume ls --format '{{.Name}}'")
    assert multi.file("/etc/owlat/east/secrets.env").sha256sum == secrets
    after = started(multi)
    kept = {n: t for n, t in before.items() if not n.startswith("east-")}
    assert {n: after.get(n) for n in kept} == kept
    assert re.search(rf"^\s*east@{MULTI}\s+east\s+.*removed \(volumes and secrets kept\)", out, re.M)
    for stack in ("north", "south", "west"):
        assert_stack_answers(multi, stack)


RECORD = "/var/lib/owlat/converged.json"


def module_runs(out):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+runs=(\d+)\s+changed=", out, re.M)}


def test_a_second_run_changes_nothing(multi, solo):
    """The fast path: each host read once against the record of the run that applied all its stacks. Then the full
    path, as after upgrading the collection (the records gone): it too finds nothing to change."""
    before, solo_before = started(multi), started(solo)
    t0 = time.monotonic()
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0, out[-3000:]
    stats = recap(out)
    assert stats and all(s["changed"] == 0 for s in stats.values()), stats
    print(f"no-op of 3 present stacks + 1 removed + 1 one-stack host, fast path: {time.monotonic() - t0:.1f} s")
    runs = module_runs(out)
    assert runs == {MULTI: 1, SOLO: 1}, runs
    for host in (MULTI, SOLO):
        assert re.search(rf"{host}: as its run of \S+ left it, nothing to do", re.sub(r"\s+", " ", out)), out[-3000:]
    for stack in ("north", "south", "west"):
        assert re.search(rf"^\s*{stack}@{MULTI}\s+{stack}\s+0\.4\.\d\s+https://\S+\s+as the run of", out, re.M), out[-3000:]

    multi.check_output(f"rm {RECORD}")
    solo.check_output(f"rm {RECORD}")
    t0 = time.monotonic()
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0, out[-3000:]
    stats = recap(out)
    assert stats and all(s["changed"] == 0 for s in stats.values()), stats
    assert started(multi) == before and started(solo) == solo_before
    print(f"the same, full path: {time.monotonic() - t0:.1f} s")
    runs = module_runs(out)
    print(runs)
    # Host-side module runs of the full path: each present stack its probe (and facts); the host with several stacks
    # the fast path's check, its facts, Caddy's container, the one health call for all of them and the new record;
    # the removed one its facts and one read.
    assert all(runs[f"{s}@{MULTI}"] <= 2 for s in ("north", "south", "west", "east")), runs
    assert runs[MULTI] <= 5 and runs[SOLO] <= 5, runs
    assert multi.file(RECORD).mode == 0o600 and solo.file(RECORD).exists, "the full path wrote no record"


def test_drift_by_hand_on_a_host_with_several_stacks_takes_the_full_path_and_is_repaired(multi):
    """A stopped container of one stack: the fast path sees it, the full run starts it and touches nothing else."""
    before = started(multi)
    multi.check_output("docker stop south-mta")
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0, out[-3000:]
    assert f"{MULTI}: full run: container south-mta is exited" in re.sub(r"\s+", " ", out), out[-3000:]
    assert multi.check_output("docker inspect -f '{{.State.Status}}' south-mta") == "running"
    after = started(multi)
    assert {n: t for n, t in after.items() if n != "south-mta"} == {n: t for n, t in before.items() if n != "south-mta"}
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]
    assert module_runs(out)[MULTI] == 1, out[-3000:]


def test_a_reload_of_the_hosts_caddy_not_known_to_have_worked_is_done_again(multi):
    """The host's Caddy remembers what it was last reloaded with, successfully (/etc/owlat/_proxy/served). When that
    is not what its files say - a reload that failed, a run stopped between a write and the reload - the next plain
    run reloads it (and touches nothing else); the run after changes nothing."""
    served = multi.file("/etc/owlat/_proxy/served")
    assert served.exists, "site.yml wrote no record of what the host's Caddy serves"
    lines = served.content_string.split()
    assert [line.split("=")[0] for line in lines] == ["Caddyfile", "north.caddy", "south.caddy", "west.caddy"], lines
    multi.check_output("echo 'Caddyfile=reload-that-failed' > /etc/owlat/_proxy/served")
    before = started(multi)
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0, out[-3000:]
    stats = recap(out)
    assert stats[MULTI]["changed"] == 2, stats  # the reload, and the record of it
    assert all(s["changed"] == 0 for host, s in stats.items() if host != MULTI), stats
    reload = out.split("Proxy | Host | Apply changed sites]", 1)[1].split("TASK [", 1)[0]
    assert f"changed: [{MULTI}]" in reload, reload
    assert served.content_string.split() == lines
    assert started(multi) == before  # a reload, not a restart
    rc, out = converge("north", "south", "east", "west", changes=REMOVED)
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]


def test_a_limit_selects_a_host_with_its_stacks_or_is_refused(multi, solo):
    before, solo_before = started(multi), started(solo)
    rc, out = converge("north", "south", "east", "west", changes=REMOVED, extra=("-l", MULTI))
    assert rc != 0
    assert re.search(rf"host {MULTI} runs several stacks \(owlat_stacks\), and the limit selects none of them.*"
                     rf"--limit '{MULTI},\*@{MULTI}'", re.sub(r"\s+", " ", out)), out[-3000:]
    assert all(s["changed"] == 0 for s in recap(out).values())
    multi.check_output(f"rm -f {RECORD}")  # the full path, so that the stacks the limit selects do run
    rc, out = converge("north", "south", "east", "west", changes=REMOVED, extra=("-l", f"{MULTI},*@{MULTI}"))
    assert rc == 0, out[-3000:]
    stats = recap(out)
    assert set(stats) == {MULTI} | {f"{s}@{MULTI}" for s in ("north", "south", "east", "west")}, stats
    assert all(s["changed"] == 0 for s in stats.values()), stats
    # A group of the host selects its stacks too.
    multi.check_output(f"rm -f {RECORD}")
    rc, out = converge("north", "south", "east", "west", changes=REMOVED, extra=("-l", "owlat_hosts"))
    assert rc == 0 and {f"{s}@{MULTI}" for s in ("north", "south", "west")} <= set(recap(out)), out[-3000:]
    assert started(multi) == before and started(solo) == solo_before


@pytest.mark.parametrize("changes, message", [
    ({"west": {"owlat_app_mta_smtp_address": ADDRESS["north"]}},
     r"stack west: owlat_stacks\[3\]: its MTA would listen on 172\.29\.0\.241:25, as host owlat-mol-stacks1, stack north"),
    ({"west": {"owlat_stack_app_hostname": f"app.{SOLO}.owlat.test"}},
     rf"hostname app\.{SOLO}\.owlat\.test is claimed by stack solo on {SOLO} and stack west on {MULTI}"),
    # (A sending address not on the host: test_deliverability.py.)
    ({"west": {"owlat_app_mta_smtp_address": "172.29.0.249"}},
     rf"app of stack west on {MULTI}: owlat_app_mta_smtp_address 172\.29\.0\.249 is not an address of the host"),
    ({"north": {"owlat_proxy_https_port": 8443}},
     r"stack north: owlat_stacks\[0\]: owlat_proxy_https_port is a setting of the whole host"),
    ({"north": {"owlat_backup_password": "lab-backup-north", "owlat_backup_include_caddy": True}},
     rf"backup of stack north on {MULTI}: owlat_backup_include_caddy is true, but this stack shares the host's Caddy"),
], ids=["same-smtp-address", "hostname-claimed-on-another-host", "address-not-on-host", "host-setting-in-entry",
        "caddy-data-in-a-stacks-backup"])
def test_a_bad_list_of_stacks_is_refused_with_no_change_anywhere(multi, solo, changes, message):
    before, solo_before = started(multi), started(solo)
    rc, out = converge("north", "south", "east", "west", changes={**REMOVED, **changes})
    assert rc != 0
    assert re.search(message, re.sub(r"\s+", " ", out)), out[-3000:]
    stats = recap(out)
    assert all(s["changed"] == 0 for s in stats.values()), stats
    assert started(multi) == before and started(solo) == solo_before


# Backups per stack: north cold, south hot, each its own repository (/var/backups/owlat/<stack>); west has none.
BACKUPS = {**REMOVED, "north": {"owlat_backup_password": "lab-backup-north"},
           "south": {**REMOVED["south"], "owlat_backup_password": "lab-backup-south", "owlat_backup_mode": "hot"}}


def notes(host, stack):
    return lab_convex.query(host, stack, "lab:list", {"table": "notes"})


def snapshot_paths(host, stack, password):
    out = host.check_output(f"RESTIC_PASSWORD={password} restic -r /var/backups/owlat/{stack} ls latest")
    return [line for line in out.splitlines() if line.startswith("/")]


def test_each_stack_of_a_host_with_several_is_backed_up_on_its_own(multi, solo):
    before, solo_before = started(multi), started(solo)
    rc, out = converge("north", "south", "east", "west", changes=BACKUPS)
    assert rc == 0, out[-3000:]
    assert started(multi) == before  # scheduling backups touches no container
    for stack in ("north", "south"):
        assert multi.service(f"owlat-backup@{stack}.timer").is_enabled, stack
        assert multi.service(f"owlat-backup-check@{stack}.timer").is_enabled, stack
    assert not multi.file("/etc/systemd/system/owlat-backup@west.timer").exists
    rc, out = converge("north", "south", "east", "west", changes=BACKUPS)
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]

    for i in range(20):
        lab_convex.query(multi, "north", "lab:put", {"table": "notes", "doc": {"n": i, "text": secrets.token_hex(32)}})
    S["north_notes"] = notes(multi, "north")
    t0 = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.backup", "-e", json.dumps({"lab_stacks": ["north", "south", "east", "west"],
                                                                      "lab_stack_changes": BACKUPS}))
    assert rc == 0, out[-3000:]
    print(f"backup.yml: {time.monotonic() - t0:.1f} s")
    print("\n".join(line for line in out.splitlines() if re.search(r"^\s*(HOST|\S+@\S+|owlat-mol-\S+)\s+\S+\s", line)))
    table = re.sub(r"[ \t]+", " ", out)
    assert re.search(rf"north@{MULTI} north cold [0-9a-f]{{8}} .* success", table), out[-3000:]
    assert re.search(rf"south@{MULTI} south hot [0-9a-f]{{8}} .* success", table), out[-3000:]
    assert re.search(rf"west@{MULTI} west .* not configured \(no owlat_backup_password\)", table), out[-3000:]
    assert re.search(rf"{SOLO} solo .* not configured", table), out[-3000:]
    # Cold: only north's Convex and Redis were stopped and started again; hot: nothing. The neighbours untouched.
    after = started(multi)
    assert {n for n in before if after.get(n) != before[n]} == {"north-convex", "north-redis"}, (before, after)
    assert started(solo) == solo_before
    assert_stack_answers(multi, "north")
    # Each repository holds its own stack's data and nothing of a neighbour's.
    north = snapshot_paths(multi, "north", "lab-backup-north")
    assert any("/volumes/north-convex-data/_data/" in p for p in north), north[:20]
    assert any("/volumes/north-redis-data/_data/" in p for p in north), north[:20]
    assert any(p.startswith("/etc/owlat/north/") for p in north), north[:20]
    south = snapshot_paths(multi, "south", "lab-backup-south")
    assert any(p.endswith("/convex-export.zip") for p in south) and any(p.endswith("/redis/dump.rdb") for p in south), south
    for stack, paths, others in (("north", north, ("south", "west", "east")), ("south", south, ("north", "west", "east"))):
        assert not [p for p in paths if any(f"/{o}-" in p or f"/owlat/{o}/" in p for o in others)], stack


def test_one_stack_of_a_host_with_several_is_restored_and_the_others_untouched(multi, solo):
    variables = json.dumps({"lab_stacks": ["north", "south", "east", "west"], "lab_stack_changes": BACKUPS})
    lab_convex.query(multi, "north", "lab:put", {"table": "notes", "doc": {"n": 999, "text": "written after the backup"}})
    assert len(notes(multi, "north")) == len(S["north_notes"]) + 1
    north_secrets = multi.file("/etc/owlat/north/secrets.env").sha256sum
    before, solo_before = started(multi), started(solo)
    # The host alone names no stack; without the confirmation north's data is not replaced. Nothing changes.
    rc, out = run_playbook("owlat.selfhost.restore", "-e", variables, "-e", f"owlat_restore_host={MULTI}")
    assert rc != 0 and f"-e owlat_restore_host=<stack>@{MULTI} (north@{MULTI}, south@{MULTI}" in re.sub(r"\s+", " ", out), out[-3000:]
    rc, out = run_playbook("owlat.selfhost.restore", "-e", variables, "-e", f"owlat_restore_host=north@{MULTI}")
    assert rc != 0 and "Confirm with -e owlat_backup_restore_confirm=true" in out, out[-3000:]
    assert started(multi) == before

    t0 = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.restore", "-e", variables, "-e", f"owlat_restore_host=north@{MULTI}",
                           "-e", "owlat_backup_restore_confirm=true")
    assert rc == 0, out[-4000:]
    print(f"restore.yml of north: {time.monotonic() - t0:.1f} s")
    assert re.search(r"stack north restored from snapshot \w{8}", out), out[-3000:]
    assert notes(multi, "north") == S["north_notes"]  # the documents of the backup, byte for byte
    assert multi.file("/etc/owlat/north/secrets.env").sha256sum == north_secrets
    after = started(multi)
    restarted = {n for n in before if after.get(n) != before[n]}
    assert restarted and all(n.startswith("north-") for n in restarted), restarted
    assert started(solo) == solo_before
    for stack in ("north", "south", "west"):
        assert_stack_answers(multi, stack)
    rc, out = converge("north", "south", "east", "west", changes=BACKUPS)
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]


def deployed_release(host, stack):
    return json.loads(host.file(f"/etc/ansible/facts.d/owlat_{stack}.fact").content_string)["release"]


def test_one_stack_of_a_host_with_several_is_upgraded_and_the_others_untouched(multi, solo, tmp_path):
    """north runs 0.4.3 beside stacks on 0.4.4: upgrade.yml moves it alone (pre-upgrade backup, web handed over through
    the host's Caddy), with its data; the neighbours, the host's Caddy and the one-stack host keep their containers."""
    variables = json.dumps({"lab_stacks": ["north", "south", "east", "west"], "lab_stack_changes": BACKUPS})
    assert deployed_release(multi, "north") == "0.4.3" and deployed_release(multi, "south") == "0.4.4"
    north_notes, north_secrets = notes(multi, "north"), multi.file("/etc/owlat/north/secrets.env").sha256sum
    before, solo_before = started(multi), started(solo)
    report = tmp_path / "report.json"
    t0 = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.upgrade", "-e", variables, "-e", "owlat_upgrade_release=0.4.4",
                           "-e", f"owlat_upgrade_report_file={report}")
    assert rc == 0, out[-4000:]
    print(f"upgrade.yml, north 0.4.3 -> 0.4.4 beside three stacks: {time.monotonic() - t0:.1f} s")
    rows = json.loads(report.read_text())
    print(json.dumps(rows, indent=1))
    assert rows[f"north@{MULTI}"]["result"] == "upgraded", rows
    assert (rows[f"north@{MULTI}"]["from"], rows[f"north@{MULTI}"]["to"]) == ("0.4.3", "0.4.4")
    assert rows[f"north@{MULTI}"]["snapshot"], rows  # the pre-upgrade backup, in north's own repository
    assert rows[f"south@{MULTI}"]["result"] == rows[f"west@{MULTI}"]["result"] == rows[SOLO]["result"] == "unchanged"
    assert rows[f"east@{MULTI}"]["result"].startswith("removed stack"), rows
    assert deployed_release(multi, "north") == "0.4.4"
    images = {c: multi.check_output("docker inspect -f '{{.Config.Image}}' %s" % c) for c in ("north-web", "north-mta")}
    assert images["north-web"].endswith("/wolvesdotink/web:0.4.4") and images["north-mta"].endswith("/wolvesdotink/mta:0.4.4")
    assert "north-web-next" not in stack_containers(multi, "north")
    assert notes(multi, "north") == north_notes  # the data, byte for byte
    assert multi.file("/etc/owlat/north/secrets.env").sha256sum == north_secrets
    after = started(multi)
    restarted = {n for n in before if after.get(n) != before[n]}
    assert restarted and all(n.startswith("north-") for n in restarted), restarted  # not owlat-proxy, no neighbour
    assert started(solo) == solo_before
    for stack in ("north", "south", "west"):
        assert_stack_answers(multi, stack)
    # The same target again: nothing to do anywhere.
    rc, out = run_playbook("owlat.selfhost.upgrade", "-e", variables, "-e", "owlat_upgrade_release=0.4.4")
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]
    assert started(multi) == after


def blackbox(host, module, target):
    """What the host's blackbox exporter answers for one probe (its metrics text)."""
    url = f"http://127.0.0.1:9115/probe?module={module}&target={target}"
    return host.check_output("python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], "
                             "timeout=30).read().decode())' '%s'" % url)


def test_monitoring_watches_every_stack_of_a_host_with_several(multi):
    """One agent for the host: each present stack's three hostnames over HTTPS through the host's Caddy and its MTA's
    banner on its own address, labelled with the stack; no host-wide stack label; the removed stack not probed."""
    variables = {"lab_stacks": ["north", "south", "east", "west"], "lab_stack_changes": BACKUPS,
                 "owlat_monitoring_remote_write_url": "http://127.0.0.1:9/api/v1/write", "owlat_monitoring_tenant": "lab",
                 "owlat_monitoring_convex_metrics": False, "owlat_monitoring_probe_ca_path": HOST_CA}
    before = started(multi)
    t0 = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.monitoring", "-l", MULTI, "-e", json.dumps(variables))
    assert rc == 0, out[-4000:]
    print(f"monitoring.yml on the host with three stacks: {time.monotonic() - t0:.1f} s")
    for stack in ("north", "south", "west"):
        for name, path in (("app", "/api/instance-info"), ("api", "/version"), ("actions", "/api/v1/health")):
            metrics = blackbox(multi, f"https_{stack}_{name}", f"https://127.0.0.1{path}")
            assert re.search(r"^probe_success 1$", metrics, re.M), (stack, name, metrics[-800:])
        metrics = blackbox(multi, "smtp_banner", f"{ADDRESS[stack]}:25")
        assert re.search(r"^probe_success 1$", metrics, re.M), (stack, metrics[-800:])
    config = multi.file("/etc/prometheus/prometheus.yml").content_string
    for stack in ("north", "south", "west"):
        assert f'stack: "{stack}", probe: app, hostname: "app.{stack}.owlat.test"' in config, config
        assert f'- targets: ["{ADDRESS[stack]}:25"]\n        labels: {{stack: "{stack}"}}' in config, config
    assert "east.owlat.test" not in config and ADDRESS["east"] not in config
    external = config.split("external_labels:")[1].split("remote_write:")[0]
    assert "host: owlat-mol-stacks1" in external and "stack:" not in external, external
    for stack in ("north", "south", "west"):  # the stack exporter's targets, one file per stack (every 15 s)
        for _ in range(30):
            if multi.file(f"/var/lib/owlat/monitoring/targets/{stack}.json").exists:
                break
            time.sleep(1)
        targets = json.loads(multi.file(f"/var/lib/owlat/monitoring/targets/{stack}.json").content_string)
        assert {t["labels"]["service"] for t in targets} >= {"convex", "web", "mta", "redis"}, targets
        assert {t["labels"]["stack"] for t in targets} == {stack}, targets
    assert started(multi) == before
    rc, out = run_playbook("owlat.selfhost.monitoring", "-l", MULTI, "-e", json.dumps(variables))
    assert rc == 0 and recap(out)[MULTI]["changed"] == 0, out[-3000:]


def test_a_stack_taken_off_its_host_stops_its_backups_and_leaves_the_others(multi, solo):
    """south (backed up, hot) taken off its host: its containers go and its backup timers stop and are disabled, so no
    nightly backup of a stack that is gone runs and fails; its volumes, secrets and repository settings stay (for
    restore.yml); north's timers and every other container are untouched. The next run changes nothing."""
    changes = {**BACKUPS, "north": {**BACKUPS["north"], "owlat_stack_release": "0.4.4"},  # upgraded above
               "south": {**BACKUPS["south"], "owlat_stack_present": False}}
    before, solo_before = started(multi), started(solo)
    rc, out = converge("north", "south", "east", "west", changes=changes)
    assert rc == 0, out[-3000:]
    after = started(multi)
    assert not [n for n in after if n.startswith("south-")], after
    assert after == {n: t for n, t in before.items() if not n.startswith("south-")}
    assert started(solo) == solo_before
    for timer in ("owlat-backup@south.timer", "owlat-backup-check@south.timer"):
        assert not multi.service(timer).is_enabled and not multi.service(timer).is_running, timer
    for timer in ("owlat-backup@north.timer", "owlat-backup-check@north.timer"):
        assert multi.service(timer).is_enabled and multi.service(timer).is_running, timer
    assert multi.file("/etc/owlat/south/secrets.env").exists and multi.file("/etc/owlat-backup/south.json").exists
    assert {"south-convex-data", "south-redis-data"} <= set(multi.check_output("docker volume ls -q").split())
    rc, out = converge("north", "south", "east", "west", changes=changes)
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]


def test_a_stack_is_retired_for_good_after_a_final_backup_and_the_others_untouched(multi, solo):
    """remove.yml: refused without the stack's name as confirmation (no change); then a final backup read back from the
    repository, and everything of north on the host goes - containers, volumes, secrets, backup timers and settings,
    proxy site, deploy record - while west and south's kept data, the host's Caddy and the other host stay. The
    repository keeps the final backup. A second run changes nothing."""
    changes = {**BACKUPS, "north": {**BACKUPS["north"], "owlat_stack_release": "0.4.4"},
               "south": {**BACKUPS["south"], "owlat_stack_present": False}}
    variables = json.dumps({"lab_stacks": ["north", "south", "east", "west"], "lab_stack_changes": changes})
    before, solo_before = started(multi), started(solo)
    rc, out = run_playbook("owlat.selfhost.remove", "-e", variables, "-e", f"owlat_remove_stack=north@{MULTI}")
    assert rc != 0 and "confirm with -e owlat_remove_confirm=north" in re.sub(r"\s+", " ", out), out[-3000:]
    assert started(multi) == before and multi.file("/etc/owlat/north/secrets.env").exists

    t0 = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.remove", "-e", variables, "-e", f"owlat_remove_stack=north@{MULTI}",
                           "-e", "owlat_remove_confirm=north")
    assert rc == 0, out[-4000:]
    print(f"remove.yml, north with a final cold backup: {time.monotonic() - t0:.1f} s")
    assert re.search(rf"north@{MULTI}\s+north\s+[0-9a-f]{{8}} \(cold\)\s+[1-9]\d*\s+retired", out), out[-3000:]
    after = started(multi)
    assert after == {n: t for n, t in before.items() if not n.startswith("north-")}, (before, after)
    assert started(solo) == solo_before
    volumes = multi.check_output("docker volume ls -q").split()
    assert not [v for v in volumes if v.startswith("north-")], volumes
    assert {"south-convex-data", "west-convex-data"} <= set(volumes)
    for path in ("/etc/owlat/north", "/etc/owlat/_proxy/sites/north.caddy", "/etc/ansible/facts.d/owlat_north.fact",
                 "/etc/owlat-backup/north.json", "/etc/systemd/system/owlat-backup@north.timer",
                 "/var/lib/owlat/backup/north.json"):
        assert not multi.file(path).exists, path
    assert "north.caddy=" not in multi.file("/etc/owlat/_proxy/served").content_string
    final = json.loads(multi.check_output(
        "RESTIC_PASSWORD=lab-backup-north restic -r /var/backups/owlat/north snapshots --tag final --json"))
    assert len(final) == 1, final
    assert_stack_answers(multi, "west")

    rc, out = run_playbook("owlat.selfhost.remove", "-e", variables, "-e", f"owlat_remove_stack=north@{MULTI}",
                           "-e", "owlat_remove_confirm=north")
    assert rc == 0 and all(s["changed"] == 0 for s in recap(out).values()), out[-3000:]
    assert re.search(rf"north@{MULTI}\s+north\s+none \(nothing deployed\)\s+0\s+nothing left to remove", out), out[-3000:]
    assert started(multi) == after
