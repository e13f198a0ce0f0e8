"""Monitoring seen from the operator's side: what the central Prometheus receives from each stack host, with
which labels; a stopped container shows up there; nothing new is reachable from outside a host."""

import base64
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

CENTRAL = "owlat-mol-central"
# host -> (stack, tenant), as in inventory/owlat_hosts.yml and host_vars.
HOSTS = {"owlat-mol-mon1": ("owlat", "acme-hosting"), "owlat-mol-mon2": ("globex", "globex-ltd")}
JOBS = {"agent", "node", "docker", "convex", "mta", "health", "https", "smtp"}
HEALTH = {"convex", "web", "mta", "redis"}
LOOPBACK_PORTS = (9090, 9100, 9115, 9323)
# The whole inventory directory: scenario group vars come from an extra source there (inventory/owlat_hosts.yml).
INVENTORY = os.path.dirname(os.environ.get("MOLECULE_INVENTORY_FILE", ""))
LAB_STATE = pathlib.Path(os.environ.get("OWLAT_LAB_STATE", pathlib.Path(__file__).resolve().parents[3] / "lab/.state"))


def lab_address(name):
    return subprocess.check_output(
        ["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "owlat-lab").IPAddress}}', name], text=True
    ).strip()


class Central:
    """The central Prometheus's HTTP API (TLS from the lab CA, basic auth), as an operator queries it."""

    def __init__(self):
        self.base = "https://%s:9090" % lab_address(CENTRAL)
        self.ctx = ssl.create_default_context(cafile=str(LAB_STATE / "pki/ca.crt"))
        self.auth = "Basic " + base64.b64encode(b"owlat:lab-remote-write-pass").decode()

    def get(self, path, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, headers={"Authorization": self.auth})
        with urllib.request.urlopen(req, context=self.ctx, timeout=20) as resp:
            return json.load(resp)

    def query(self, promql):
        body = self.get("/api/v1/query", query=promql)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait(self, promql, predicate, timeout=180, what=""):
        """Poll until predicate(result) holds; the last result is in the failure message."""
        deadline = time.time() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.time() > deadline:
                pytest.fail("central: %s never held for %s; last result: %s" % (what or "condition", promql, result))
            time.sleep(5)


@pytest.fixture(scope="module")
def central():
    return Central()


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def stack_host(name):
    if name not in HOSTS:
        pytest.skip("the central Prometheus is not a stack host")
    return name


def by_host(result, label):
    out = {}
    for series in result:
        out.setdefault(series["metric"].get("host"), set()).add(series["metric"].get(label))
    return out


def test_every_job_up_for_each_host(central):
    def all_up(result):
        ok = {(s["metric"]["host"], s["metric"]["job"]) for s in result if s["value"][1] == "1"}
        return all((h, j) in ok for h in HOSTS for j in JOBS)

    result = central.wait("max by (host, job) (up)", all_up, what="every job up on every host")
    assert {s["metric"]["host"] for s in result} >= set(HOSTS)
    health = central.wait('probe_success{job="health"} == 1',
                          lambda r: all(by_host(r, "service").get(h, set()) >= HEALTH for h in HOSTS),
                          what="internal health probes succeed")
    assert all(by_host(health, "service")[h] >= HEALTH for h in HOSTS)


def test_labels_identify_host_stack_and_tenant(central):
    releases = central.wait("owlat_release_info", lambda r: {s["metric"]["host"] for s in r} >= set(HOSTS))
    for series in releases:
        m = series["metric"]
        if m["host"] in HOSTS:
            assert (m["stack"], m["tenant"], m["version"]) == HOSTS[m["host"]] + ("0.4.4",), m
    # External labels on host-wide series too (node-exporter has no stack of its own).
    load = central.query("node_load1")
    assert {(s["metric"]["host"], s["metric"]["stack"], s["metric"]["tenant"]) for s in load} >= {
        (h, st, t) for h, (st, t) in HOSTS.items()}
    # The stack's own labels on container and Convex/MTA series.
    # Upstream's names only (tests/doubles/*/metrics.json, cited there).
    convex = central.query('convex_local_backend_convex_binary_versions_total{job="convex"} == 1')
    assert {(s["metric"]["host"], s["metric"]["stack"]) for s in convex} >= {(h, st) for h, (st, _) in HOSTS.items()}
    mta = central.query('mta_unattributed_bounces_total{job="mta"} >= 0')
    assert {(s["metric"]["host"], s["metric"]["stack"]) for s in mta} >= {(h, st) for h, (st, _) in HOSTS.items()}


def test_certificate_expiry_and_docker_metrics_arrive(central):
    certs = central.query('probe_ssl_earliest_cert_expiry{job="https"} > time()')
    assert by_host(certs, "probe") == {h: {"app", "api", "actions"} for h in HOSTS} | {
        k: v for k, v in by_host(certs, "probe").items() if k not in HOSTS}
    engine = central.query('engine_daemon_container_states_containers{state="running"} > 0')
    assert {s["metric"]["host"] for s in engine} >= set(HOSTS)


@pytest.fixture(scope="module")
def backups_done():
    """The backup role applied and run once on the stack hosts (molecule/monitoring/backup.yml)."""
    started = time.time()
    run = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY,
         os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "backup.yml")],
        capture_output=True, text=True, timeout=1200, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return started


def test_backup_status_arrives_with_labels(host, stack_host, central, backups_done):
    """A real run of the backup role's engine; its textfile (owlat_backup_<stack>.prom) reaches the central side."""
    stack, tenant = HOSTS[stack_host]
    started = backups_done
    status = json.loads(host.file("/var/lib/owlat/backup/%s.json" % stack).content_string)
    assert status["result"] == "success" and status["last_success"] >= int(started), status
    got = central.wait('owlat_backup_last_success_timestamp_seconds{host="%s"}' % stack_host,
                       lambda r: any(float(s["value"][1]) == status["last_success"] for s in r),
                       what="the backup timestamp of this run")
    assert (got[0]["metric"]["stack"], got[0]["metric"]["tenant"]) == (stack, tenant)
    assert central.query('owlat_backup_last_run_success{host="%s",stack="%s"}' % (stack_host, stack))[0]["value"][1] == "1"
    size = central.query('owlat_backup_size_bytes{host="%s",stack="%s"}' % (stack_host, stack))
    assert float(size[0]["value"][1]) > 0


# mon1: web stopped -> the public app hostname fails (Caddy answers 502); mon2: MTA stopped -> SMTP banner fails.
STOP = {"owlat-mol-mon1": ("web", 'probe_success{job="https",probe="app",host="%s"}'),
        "owlat-mol-mon2": ("mta", 'probe_success{job="smtp",host="%s"}')}


def test_stopped_container_makes_its_probe_fail_centrally(host, stack_host, central):
    stack, _ = HOSTS[stack_host]
    service, probe = STOP[stack_host]
    probe = probe % stack_host
    probe_job = "https" if service == "web" else "smtp"
    central.wait(probe, lambda r: r and r[0]["value"][1] == "1", what="probe succeeds before the stop")
    host.run_expect([0], "docker stop %s-%s", stack, service)
    try:
        central.wait(probe, lambda r: r and r[0]["value"][1] == "0", what="probe fails after the stop")
        unhealthy = central.wait(
            'owlat_container_healthy{host="%s",service="%s"}' % (stack_host, service),
            lambda r: r and r[0]["value"][1] == "0", what="container reported not running")
        assert unhealthy[0]["metric"]["stack"] == stack
        # The shipped rules see it on the central side (pending until their `for` has passed).
        central.wait('ALERTS{host="%s",alertname=~"OwlatProbeFailing|OwlatServiceUnhealthy"}' % stack_host,
                     lambda r: {(a["metric"]["alertname"], a["metric"].get("service", probe_job)) for a in r}
                     >= {("OwlatProbeFailing", probe_job), ("OwlatServiceUnhealthy", service)},
                     what="both alerts pending or firing for %s" % service)
    finally:
        host.run_expect([0], "docker start %s-%s", stack, service)
    central.wait(probe, lambda r: r and r[0]["value"][1] == "1", what="probe succeeds again after the start")
    # Its scrape job finds the restarted container (new address) again.
    central.wait('up{host="%s",job="%s"} == 1' % (stack_host, "mta" if service == "mta" else "health"),
                 lambda r: bool(r), what="%s scraped again" % service)


def test_alert_rules_loaded_centrally(central):
    groups = central.get("/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 12 and all(r["health"] == "ok" for r in rules), rules


def test_convex_metrics_not_public(stack_host):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only the answer matters here, not the CA
    hostname = "api.%s.owlat.test" % stack_host
    with socket.create_connection((lab_address(stack_host), 443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            s.sendall(("GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % hostname).encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    assert b"convex_" not in data, data[:300]


def test_nothing_new_reachable_from_outside(host, stack_host):
    address = lab_address(stack_host)
    for port in LOOPBACK_PORTS + (3210, 3100):
        with socket.socket() as s:
            s.settimeout(3)
            assert s.connect_ex((address, port)) != 0, "port %d answers on %s" % (port, address)
    listeners = host.check_output("ss -ltnH")
    for port in LOOPBACK_PORTS:
        bound = re.findall(r"\s(\S+):%d\s" % port, listeners)
        assert bound and set(bound) <= {"127.0.0.1", "[::1]"}, (port, bound)


def test_credentials_only_for_the_agent(host, stack_host):
    secret = host.file("/etc/prometheus/owlat-remote-write-password")
    assert (secret.mode, secret.user, secret.group) == (0o640, "root", "prometheus")
    config = host.file("/etc/prometheus/prometheus.yml")
    assert config.mode == 0o640
    assert "lab-remote-write-pass" not in host.check_output("cat /etc/prometheus/prometheus.yml /etc/default/prometheus")
    # Agent mode: no local TSDB, no query API.
    assert "--enable-feature=agent" in host.check_output("ps -o args= -C prometheus")


def test_agent_memory_and_series(host, stack_host, central):
    rss_kib = int(host.check_output("ps -o rss= -C prometheus").split()[0])
    for family in ("node_", "engine_daemon_", "convex_local_backend_", "mta_", "probe_", "owlat_container_", "owlat_release_info"):
        central.wait('count({host="%s",__name__=~"%s.*"})' % (stack_host, family), lambda r: bool(r), what=family)
    # ALERTS* are the central server's own rule evaluations, not series the host sent.
    names = sorted({s["metric"]["__name__"] for s in central.query('{host="%s",__name__!~"ALERTS.*"}' % stack_host)})
    per_job = {r["metric"]["job"]: int(r["value"][1])
               for r in central.query('count by (job) ({host="%s",__name__!~"ALERTS.*"})' % stack_host)}
    # The figures of the closing note (series per host, agent memory), kept next to the scenario's other output.
    report = pathlib.Path(tempfile.gettempdir()) / "owlat-monitoring-series.json"
    data = json.loads(report.read_text()) if report.exists() else {}
    data[stack_host] = {"agent_rss_mib": round(rss_kib / 1024, 1), "series_per_job": per_job, "metric_names": names}
    report.write_text(json.dumps(data, indent=1))
    print("\n%s: agent RSS %.1f MiB, series per job %s" % (stack_host, rss_kib / 1024, per_job))
    assert rss_kib < 300 * 1024
    # Exporter runtime internals are dropped before sending (owlat_monitoring_drop_metrics).
    central.wait('count({host="%s",__name__=~"go_.*|promhttp_.*"})' % stack_host, lambda r: not r, timeout=420,
                 what="no go_/promhttp_ series from the host")


def test_no_secret_in_verbose_output_and_check_mode_changes_nothing():
    run = subprocess.run(
        ["ansible-playbook", "-vvv", "--check", "-i", INVENTORY, "owlat.selfhost.monitoring"],
        capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    out = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert run.returncode == 0, out[-3000:]
    assert "lab-remote-write-pass" not in out
    recaps = dict(re.findall(r"(owlat-mol-mon\d)\s+: ok=\d+\s+changed=(\d+)", out))
    assert recaps == {"owlat-mol-mon1": "0", "owlat-mol-mon2": "0"}, out[-3000:]
