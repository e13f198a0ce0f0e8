"""Rolling upgrades between real Owlat releases (0.4.3 -> 0.4.4 and 0.4.2 -> 0.4.4), seen as users and operator see them.

One module fixture seeds data through each host's Convex API, starts probes that poll every host's web app and
API through Caddy every 100 ms, runs upgrade.yml, and stops the probes. owlat-mol-upgrade3 has a broken 0.4.4 web
image (lab only): it must be rolled back to 0.4.3 with its data, while the others end on 0.4.4 without one failed
web request.
The figures (durations, API gap, failed requests, rollback time) go to upgrade-figures.json in the scenario's
ephemeral directory and are printed with -s.
"""

import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))

B = "0.4.4"
HOSTS = ["owlat-mol-upgrade1", "owlat-mol-upgrade2", "owlat-mol-upgrade3"]
FROM = {"owlat-mol-upgrade1": "0.4.3", "owlat-mol-upgrade2": "0.4.2", "owlat-mol-upgrade3": "0.4.3"}
GOOD, BROKEN = HOSTS[:2], HOSTS[2]
# Convex backend commits of the catalog (roles/stack/vars/main.yml).
CONVEX = {"0.4.2": "9d2aa4c736bb978812315a0c4f691c668fcffc7e", "0.4.3": "fdf7a1c3eb396a148f4202b812fbbc72d9d05ad5",
          "0.4.4": "c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef"}
STACK = "owlat"
CA = f"/var/lib/docker/volumes/{STACK}-caddy-data/_data/caddy/pki/authorities/local/root.crt"
COLLECTION = pathlib.Path(__file__).resolve().parents[3]
ACK = json.dumps({"owlat_upgrade_acknowledge": [B]})  # harmless when the release lists no breaking change


def sh(name, *cmd):
    return subprocess.run(["docker", "exec", name, *cmd], capture_output=True, text=True, check=False)


def address(name):
    return subprocess.check_output(
        ["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "owlat-lab").IPAddress}}', name], text=True
    ).strip()


def tls(name):
    return ssl.create_default_context(cadata=sh(name, "cat", CA).stdout)


def request(addr, ctx, hostname, path, method="GET", body=None, timeout=5):
    """One HTTPS request through the host's Caddy (a new connection, as a fresh client): (status, body)."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    with socket.create_connection((addr, 443), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            s.sendall(head + payload)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1].decode(errors="replace")


def convex(name, kind, path, args):
    status, body = request(address(name), tls(name), f"api.{name}.owlat.test", f"/api/{kind}",
                           "POST", {"path": path, "args": args, "format": "json"})
    assert status == 200, body
    result = json.loads(body)
    assert result["status"] == "success", result
    return result["value"]


def playbook(*args, timeout=1800):
    """ansible-playbook on the scenario's inventory; (rc, uncoloured output)."""
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    return run.returncode, re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)


def recap(out):
    """{host: (changed, failed)} from the play recap."""
    return {h: (int(c), int(f)) for h, c, f in
            re.findall(r"^(owlat-mol-upgrade\d)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", out, re.M)}


def record(name):
    res = sh(name, "cat", f"/etc/ansible/facts.d/owlat_{STACK}.fact")
    return json.loads(res.stdout) if res.returncode == 0 else {}


def events(name, since, until):
    """What Docker did to containers on a host between two times: [[seconds after since, action, container], ...]."""
    out = sh(name, "docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container",
             "--format", "{{.TimeNano}}|{{.Actor.Attributes.name}}|{{.Action}}").stdout
    rows = (line.split("|", 2) for line in out.splitlines() if line.count("|") >= 2)
    # Health-check execs every few seconds are noise here: lifecycle and health changes only.
    return [[round(int(ns) / 1e9 - since, 2), action[:60], cname] for ns, cname, action in rows
            if not action.startswith("exec_")]


def running_images(name):
    out = sh(name, "docker", "ps", "--format", "{{.Names}} {{.Image}}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


class Probe(threading.Thread):
    """Polls one hostname through one host's Caddy every 100 ms; records (time, ok) per request."""

    def __init__(self, name, hostname, path):
        super().__init__(daemon=True)
        self.addr, self.ctx, self.hostname, self.path = address(name), tls(name), hostname, path
        self.samples, self.errors, self.stop = [], [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            t = time.time()
            try:
                status = request(self.addr, self.ctx, self.hostname, self.path, timeout=10)[0]
                ok, why = status == 200, f"HTTP {status}"
            except (OSError, ValueError, IndexError) as exc:  # refused, reset, timed out, or closed without an answer
                ok, why = False, type(exc).__name__
            self.samples.append((t, ok))
            if not ok:
                self.errors.append((t, why))
            self.stop.wait(max(0.0, 0.1 - (time.time() - t)))

    @property
    def failed(self):
        return sum(1 for _, ok in self.samples if not ok)

    @property
    def longest_gap(self):
        """Seconds from the last success before a run of failures to the first success after it."""
        gap, last_ok, in_gap = 0.0, None, False
        for t, ok in self.samples:
            if ok:
                if in_gap and last_ok is not None:
                    gap = max(gap, t - last_ok)
                last_ok, in_gap = t, False
            else:
                in_gap = True
        return round(gap, 2)


@pytest.fixture(scope="module")
def seeded():
    """A few documents in every stack, written through its public Convex API."""
    docs = {}
    for name in HOSTS:
        ids = [convex(name, "mutation", "lab:put", {"table": "contacts", "doc": {"email": f"c{i}@{name}.test"}})
               for i in range(3)]
        docs[name] = sorted(ids)
    return docs


@pytest.fixture(scope="module")
def upgrade(seeded):
    """Run upgrade.yml A -> B with the probes on; the figures."""
    probes = {}
    for name in HOSTS:
        probes[name] = {"web": Probe(name, f"app.{name}.owlat.test", "/api/instance-info"),
                        "api": Probe(name, f"api.{name}.owlat.test", "/version")}
        for p in probes[name].values():
            p.start()
    time.sleep(1)
    started = time.time()
    ephemeral = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"))
    report_file = ephemeral / "upgrade-report.json"
    report_file.unlink(missing_ok=True)
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"),
                       "-e", f"owlat_upgrade_release={B}", "-e", ACK, "-e", f"owlat_upgrade_report_file={report_file}",
                       "-e", "owlat_upgrade_batch=100%", "-e", "owlat_upgrade_max_fail_percentage=50")
    wall = round(time.time() - started, 1)
    time.sleep(1)
    for pair in probes.values():
        for p in pair.values():
            p.stop.set()
            p.join()
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    figures = {
        "playbook_seconds": wall, "rc": rc,
        "hosts": {name: {
            "web_requests": len(probes[name]["web"].samples), "web_failed": probes[name]["web"].failed,
            "api_requests": len(probes[name]["api"].samples), "api_failed": probes[name]["api"].failed,
            "api_gap_seconds": probes[name]["api"].longest_gap, "report": report.get(name, {}),
            # When and how each web request failed, beside what Docker did on the host meanwhile (the cause).
            "web_failures": [[round(t - started, 2), why] for t, why in probes[name]["web"].errors[:20]],
            "docker_events": events(name, started, started + wall) if probes[name]["web"].errors else [],
            # Both probes polled until the end of the playbook (a probe that died would hide failures).
            "probes_covered_run": all(p.samples and p.samples[-1][0] >= started + wall - 5
                                      for p in probes[name].values()),
        } for name in HOSTS},
    }
    (ephemeral / "upgrade-figures.json").write_text(json.dumps(figures, indent=1))
    # Also where it outlives the scenario's destroy (the closing note's figures).
    (pathlib.Path(tempfile.gettempdir()) / "owlat-upgrade-figures.json").write_text(json.dumps(figures, indent=1))
    (ephemeral / "upgrade-run.log").write_text(out)
    print(json.dumps(figures, indent=1))
    return {"rc": rc, "out": out, "figures": figures, "seeded": seeded}


def test_refused_without_acknowledging_breaking_changes():
    """Upstream lists no breaking change for 0.4.4; the acknowledgement gate is proven with a lab-only annotation
    of the target release (given on the command line, never in the catalog): nothing changes before the ack."""
    lab_note = json.dumps({"owlat_stack_release_catalog_extra": {B: {"breaking_changes": ["lab annotation: none upstream"]}}})
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"), "-e", f"owlat_upgrade_release={B}", "-e", lab_note,
                       "-l", GOOD[0])
    assert rc != 0
    flat = re.sub(r"\s+", " ", out)  # the yaml callback of ansible-core 2.17 folds long messages
    assert f"breaking changes between {FROM[GOOD[0]]} and {B} must be acknowledged" in flat, out[-3000:]
    assert "lab annotation: none upstream" in flat
    assert recap(out)[GOOD[0]][0] == 0
    assert record(GOOD[0])["release"] == FROM[GOOD[0]]


def test_refused_with_a_cold_pre_upgrade_backup_of_data_outside_the_host():
    """A stack on an external database: a cold backup copies only the empty convex-data volume, so the rollback
    would restore nothing. Refused before any change (the scheduled backups are hot, so only the upgrade's rule fires)."""
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"), "-e", f"owlat_upgrade_release={B}",
                       "-e", "owlat_upgrade_backup_mode=cold", "-e", "owlat_backup_mode=hot",
                       "-e", "owlat_convex_postgres_url=postgresql://convex@pg.example.net:5432", "-l", GOOD[0])
    assert rc != 0
    flat = re.sub(r"\s+", " ", out)
    assert (f"upgrade on {GOOD[0]}: owlat_upgrade_backup_mode is cold, but the stack keeps its data outside the host "
            "(owlat_convex_postgres_url)") in flat, out[-3000:]
    assert recap(out)[GOOD[0]][0] == 0
    assert record(GOOD[0])["release"] == FROM[GOOD[0]]


def test_good_hosts_end_on_b(upgrade):
    assert upgrade["rc"] == 2, upgrade["out"][-4000:]  # one host failed (and was rolled back)
    for name in GOOD:
        rec = record(name)
        assert rec["release"] == B and rec["functions_release"] == B, rec
        images = running_images(name)
        assert images[f"{STACK}-web"].endswith(f"/wolvesdotink/web:{B}")
        assert images[f"{STACK}-mta"].endswith(f"/wolvesdotink/mta:{B}")
        assert images[f"{STACK}-convex"].endswith(":" + CONVEX[B])
        assert f"{STACK}-web-next" not in images
        assert sh(name, "test", "-e", f"/etc/ansible/facts.d/owlat_{STACK}_upgrade.fact").returncode == 1
        # All three Convex commits are at DATABASE_VERSION 128 (crates/migrations_model/src/lib.rs): upstream runs
        # no migration here, and the double, built per revision, logs exactly that.
        logs = sh(name, "docker", "logs", f"{STACK}-convex").stderr + sh(name, "docker", "logs", f"{STACK}-convex").stdout
        assert "db metadata version up to date at 128" in logs and "Executing Migration" not in logs


def test_good_hosts_kept_their_data(upgrade):
    for name in GOOD:
        docs = convex(name, "query", "lab:list", {"table": "contacts"})
        assert sorted(d["_id"] for d in docs) == upgrade["seeded"][name]


def test_no_failed_web_request_on_upgraded_hosts(upgrade):
    for name in GOOD:
        fig = upgrade["figures"]["hosts"][name]
        assert fig["probes_covered_run"], fig
        assert fig["web_requests"] > 100, fig
        assert fig["web_failed"] == 0, fig


def test_api_gap_is_only_the_backend_restart(upgrade):
    for name in GOOD:
        fig = upgrade["figures"]["hosts"][name]
        assert 0 < fig["api_gap_seconds"] < 15, fig


def test_broken_host_rolled_back_to_a_with_its_data(upgrade):
    rec = record(BROKEN)
    assert rec["release"] == FROM[BROKEN], rec
    images = running_images(BROKEN)
    assert images[f"{STACK}-web"].endswith(f"/wolvesdotink/web:{FROM[BROKEN]}")
    assert images[f"{STACK}-convex"].endswith(":" + CONVEX[FROM[BROKEN]])
    assert f"{STACK}-web-next" not in images
    assert sh(BROKEN, "test", "-e", f"/etc/ansible/facts.d/owlat_{STACK}_upgrade.fact").returncode == 1
    docs = convex(BROKEN, "query", "lab:list", {"table": "contacts"})
    assert sorted(d["_id"] for d in docs) == upgrade["seeded"][BROKEN]
    status, body = request(address(BROKEN), tls(BROKEN), f"app.{BROKEN}.owlat.test", "/api/instance-info")
    assert status == 200 and f"https://app.{BROKEN}.owlat.test" in body


def test_report_names_each_result_and_the_reason(upgrade):
    fig = upgrade["figures"]["hosts"]
    for name in GOOD:
        row = fig[name]["report"]
        assert row["result"] == "upgraded" and (row["from"], row["to"]) == (FROM[name], B), row
        assert float(row["seconds"]) > 0 and float(row["api_gap"]) > 0, row
    row = fig[BROKEN]["report"]
    assert row["result"].startswith("rolled back (snapshot "), row
    assert float(row["rollback_seconds"]) > 0
    assert "web-next" in row["reason"] and "HTTP 503" in row["reason"], row  # the failed gate, named
    assert re.search(r"HOST\s+STACK\s+FROM\s+TO\s+SECONDS\s+API GAP\s+ROLLBACK\s+RESULT", upgrade["out"])


def test_pre_upgrade_backup_tagged_with_both_releases(upgrade):
    status = json.loads(sh(GOOD[0], "cat", f"/var/lib/owlat/backup/{STACK}.json").stdout)
    assert status["result"] == "success"
    assert {"pre-upgrade", f"from-{FROM[GOOD[0]]}", f"to-{B}"} <= set(status.get("tags", [])), status


def test_rerun_with_the_same_target_changes_nothing(upgrade):
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"), "-e", f"owlat_upgrade_release={B}", "-e", ACK,
                       "-l", ",".join(GOOD))
    assert rc == 0, out[-3000:]
    assert recap(out) == {name: (0, 0) for name in GOOD}, out[-3000:]


def test_site_runs_stay_idempotent_after_the_upgrade(upgrade):
    rc, out = playbook(str(COLLECTION / "playbooks/site.yml"), "-e", f"owlat_stack_release={B}", "-l", ",".join(GOOD))
    assert rc == 0, out[-3000:]
    assert recap(out) == {name: (0, 0) for name in GOOD}, out[-3000:]
    rc, out = playbook(str(COLLECTION / "playbooks/site.yml"), "-l", BROKEN)
    assert rc == 0, out[-3000:]
    assert recap(out) == {BROKEN: (0, 0)}, out[-3000:]


def test_site_refuses_to_downgrade_an_upgraded_host(upgrade):
    rc, out = playbook(str(COLLECTION / "playbooks/site.yml"), "-l", GOOD[0])
    assert rc != 0
    assert f"{FROM[GOOD[0]]} is older than the deployed {B}" in re.sub(r"\s+", " ", out), out[-3000:]
    assert recap(out)[GOOD[0]][0] == 0


def test_interrupted_upgrade_converges_when_run_again(upgrade):
    """The host is lost mid-way (the controller dies right after the backend moved): a re-run finishes."""
    fixed = json.dumps({"owlat_stack_release_catalog_extra": {}})  # this time with the good B web image
    args = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(COLLECTION / "playbooks/upgrade.yml"),
            "-e", f"owlat_upgrade_release={B}", "-e", ACK, "-e", fixed, "-l", BROKEN]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = f"/etc/ansible/facts.d/owlat_{STACK}_upgrade.fact"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if '"phase": "backend"' in sh(BROKEN, "cat", marker).stdout:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the upgrade ended before it could be interrupted"
    os.killpg(proc.pid, 9)
    proc.wait()
    assert record(BROKEN)["release"] == FROM[BROKEN]  # not finished
    killed_after = round(time.time() - (deadline - 600), 1)
    resumed = time.time()
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"), "-e", f"owlat_upgrade_release={B}", "-e", ACK,
                       "-e", fixed, "-l", BROKEN)
    ephemeral = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"))
    (pathlib.Path(tempfile.gettempdir()) / "owlat-upgrade-interrupted.json").write_text(json.dumps(
        {"killed_after_seconds": killed_after, "resume_seconds": round(time.time() - resumed, 1), "rc": rc}))
    (ephemeral / "upgrade-interrupted.json").write_text(json.dumps(
        {"killed_after_seconds": killed_after, "resume_seconds": round(time.time() - resumed, 1), "rc": rc}))
    (ephemeral / "upgrade-resume.log").write_text(out)
    assert rc == 0, out[-4000:]
    # Resumed from the marker: the first run's pre-upgrade snapshot is kept, no second backup.
    assert re.search(r"Pre-upgrade backup \(tagged with both releases\)\] \**\nskipping", out), out[-4000:]
    assert record(BROKEN)["release"] == B
    assert sh(BROKEN, "test", "-e", marker).returncode == 1
    assert f"{STACK}-web-next" not in running_images(BROKEN)
    docs = convex(BROKEN, "query", "lab:list", {"table": "contacts"})
    assert sorted(d["_id"] for d in docs) == upgrade["seeded"][BROKEN]
    rc, out = playbook(str(COLLECTION / "playbooks/upgrade.yml"), "-e", f"owlat_upgrade_release={B}", "-e", ACK,
                       "-e", fixed, "-l", BROKEN)
    assert rc == 0 and recap(out) == {BROKEN: (0, 0)}, out[-3000:]
