"""The pieces of the status report: certificate expiry from DER, Caddyfile host names, backup age,
container states, disk folding."""

import datetime
import json
import os
import pathlib
import ssl

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _status

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc)


def make_cert(cn, not_after, issuer_cn="Caddy Local Authority - ECC Intermediate", not_before=None):
    """(DER bytes, PEM text) of a certificate for ``cn`` signed by a throwaway key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "owlat"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or (not_after - datetime.timedelta(days=90)))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    "not_after",
    [
        datetime.datetime(2027, 2, 24, 1, 2, 3, tzinfo=datetime.timezone.utc),  # UTCTime
        datetime.datetime(2051, 7, 1, 0, 0, 0, tzinfo=datetime.timezone.utc),  # GeneralizedTime (>= 2050)
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc),  # UTCTime, 19xx
    ],
)
def test_der_parser_agrees_with_python_own_decoder(tmp_path, not_after):
    der, pem = make_cert("app.example.com", not_after, not_before=datetime.datetime(1990, 1, 1, tzinfo=datetime.timezone.utc))
    parsed = _status.parse_certificate(der)
    assert parsed["not_after"] == not_after
    assert parsed["subject"] == "app.example.com"
    assert parsed["issuer"] == "Caddy Local Authority - ECC Intermediate"
    # Cross-check with CPython's private decoder (the one ssl.getpeercert() uses for verified peers).
    path = tmp_path / "c.pem"
    path.write_text(pem)
    decoded = ssl._ssl._test_decode_cert(str(path))  # pylint: disable=protected-access
    assert parsed["not_after"] == datetime.datetime.fromtimestamp(
        ssl.cert_time_to_seconds(decoded["notAfter"]), tz=datetime.timezone.utc)


def test_garbage_is_a_clear_error_not_a_crash():
    with pytest.raises(_status.DERError):
        _status.parse_certificate(b"\x30\x82\xff\xff\x00")
    with pytest.raises(_status.DERError):
        _status.parse_certificate(b"not a certificate at all")


def test_days_left_rounds_down_and_goes_negative():
    def fetch_for(not_after):
        der, _pem = make_cert("app.example.com", not_after)
        return lambda *args: der

    soon = _status.certificate_status("app.example.com", "127.0.0.1", 443, 1, NOW,
                                      fetch_for(NOW + datetime.timedelta(days=13, hours=23)))
    assert soon["days_left"] == 13 and soon["not_after"] == "2026-12-10T11:00:00Z"
    gone = _status.certificate_status("app.example.com", "127.0.0.1", 443, 1, NOW,
                                      fetch_for(NOW - datetime.timedelta(hours=2)))
    assert gone["days_left"] == -1


def test_short_lived_certificates_are_judged_by_their_lifetime():
    def status(lifetime, left):
        der, _pem = make_cert("app.example.com", NOW + left, not_before=NOW + left - lifetime)
        return _status.certificate_status("app.example.com", "127.0.0.1", 443, 1, NOW, lambda *a: der)

    # Caddy's internal CA: 12-hour certificates, renewed with 4 hours left.
    fresh = status(datetime.timedelta(hours=12), datetime.timedelta(hours=10))
    assert fresh["days_left"] == 0 and fresh["hours_left"] == 10.0 and fresh["lifetime_hours"] == 12.0
    assert fresh["hours_left"] >= _status.expiry_threshold_hours(fresh, 14)  # not a problem
    assert _status.describe_tls([fresh]) == "10h"
    stale = status(datetime.timedelta(hours=12), datetime.timedelta(hours=1, minutes=30))
    assert stale["hours_left"] < _status.expiry_threshold_hours(stale, 14)  # renewal is overdue
    # ACME: 90 days; 14 days is the limit.
    acme = status(datetime.timedelta(days=90), datetime.timedelta(days=20))
    assert _status.expiry_threshold_hours(acme, 14) == 14 * 24
    assert _status.describe_tls([acme, fresh]) == "10h"
    assert _status.describe_tls([acme]) == "20d"


def test_unreachable_https_is_reported_per_host_name(closed_port):
    cert = _status.certificate_status("api.example.com", "127.0.0.1", closed_port, 1, NOW)
    assert cert == {"hostname": "api.example.com", "days_left": None, "error": "connection refused"}


CADDYFILE = """# Ansible managed - stack acme
{
\tlocal_certs
\tadmin localhost:2019
}

app.acme.example {
\tencode gzip
\treverse_proxy web:3000
}

# Convex API and its websocket (/api/sync): no read timeout, stream immediately.
api.acme.example {
\treverse_proxy convex:3210 {
\t\tflush_interval -1
\t}
}

actions.acme.example, https://alias.acme.example:8443 {
\treverse_proxy convex:3211
}
"""


def test_caddyfile_site_addresses_are_the_host_names():
    assert _status.caddy_hostnames(CADDYFILE) == [
        "app.acme.example", "api.acme.example", "actions.acme.example", "alias.acme.example"]
    assert _status.caddy_hostnames("") == []


def write_backup(tmp_path, name, **data):
    (tmp_path / ("%s.json" % name)).write_text(json.dumps(data))


def test_backup_never_fresh_old_failed_and_unreadable(tmp_path):
    now = 1_800_000_000
    never = _status.backup_status(str(tmp_path), "acme", now, 26)
    assert never["state"] == "never" and not never["ok"]
    assert _status.describe_backup(never) == "never"

    write_backup(tmp_path, "acme", stack="acme", result="success", last_run=now - 3 * 3600,
                 last_success=now - 3 * 3600, snapshot_id="4f1c2a", size_bytes=1234, mode="cold")
    fresh = _status.backup_status(str(tmp_path), "acme", now, 26)
    assert fresh["ok"] and fresh["age_hours"] == 3.0 and fresh["snapshot_id"] == "4f1c2a"
    assert _status.describe_backup(fresh) == "3h"

    write_backup(tmp_path, "acme", result="success", last_run=now - 30 * 3600, last_success=now - 30 * 3600)
    old = _status.backup_status(str(tmp_path), "acme", now, 26)
    assert not old["ok"] and _status.describe_backup(old) == "30h OLD"

    write_backup(tmp_path, "acme", result="failed", last_run=now - 60, last_success=now - 72 * 3600,
                 message="repository locked")
    failed = _status.backup_status(str(tmp_path), "acme", now, 26)
    assert failed["state"] == "failed" and not failed["ok"] and failed["message"] == "repository locked"
    assert _status.describe_backup(failed) == "FAILED (last ok 3d)"

    write_backup(tmp_path, "acme", result="failed", last_run=now - 60, last_success=None)
    assert _status.describe_backup(_status.backup_status(str(tmp_path), "acme", now, 26)) == "FAILED"

    (tmp_path / "acme.json").write_text("{half")
    broken = _status.backup_status(str(tmp_path), "acme", now, 26)
    assert broken["state"] == "unreadable" and not broken["ok"]


def inspect(status="running", health=None, image="reg/x:1", restarting=False, exit_code=0, restarts=0):
    state = {"Status": status, "Restarting": restarting, "ExitCode": exit_code, "StartedAt": "2026-11-26T01:00:00Z"}
    if health:
        state["Health"] = {"Status": health}
    return {"State": state, "Config": {"Image": image}, "RestartCount": restarts}


def test_service_states():
    svc = _status.service_state
    assert svc("web", inspect())["ok"] is True  # running, no health check
    assert svc("convex", inspect(health="healthy"))["ok"] is True
    starting = svc("convex", inspect(health="starting"))
    assert not starting["ok"] and _status.describe_service(starting) == "starting"
    unhealthy = svc("redis", inspect(health="unhealthy"))
    assert not unhealthy["ok"] and _status.describe_service(unhealthy) == "unhealthy"
    exited = svc("mta", inspect(status="exited", exit_code=137))
    assert not exited["ok"] and _status.describe_service(exited) == "exited(137)"
    flapping = svc("mta", inspect(restarting=True, restarts=7))
    assert not flapping["ok"] and flapping["state"] == "restarting" and flapping["restarts"] == 7
    missing = svc("caddy", None)
    assert not missing["ok"] and _status.describe_service(missing) == "missing"


def test_stack_services_lists_core_first_and_skips_the_deploy_job():
    containers = {
        "acme-convex": inspect(health="healthy"),
        "acme-web": inspect(),
        "acme-redis": inspect(health="healthy"),
        "acme-caddy": inspect(),
        "acme-clamav": inspect(health="starting"),
        "acme-convex-dashboard": inspect(),
        "acme-convex-deploy": inspect(status="exited"),
        "acme-web-next": inspect(),
    }
    rows = _status.stack_services("acme", containers)
    assert [r["name"] for r in rows] == [
        "convex", "web", "mta", "redis", "caddy", "clamav", "convex-dashboard", "web-next"]
    assert [r["name"] for r in rows if not r["ok"]] == ["mta", "clamav"]


def test_the_recorded_description_decides_what_status_requires():
    """A stack whose record describes one more required service (a worker): status requires it too, and an
    unlabelled <stack>-worker counts as the stack's; without a description, records keep the old shape."""
    services = dict(_status.RECORDLESS_SERVICES, worker={"image": "worker", "required": True})
    containers = {"acme-" + key: inspect() for key in ("convex", "web", "mta", "redis", "caddy")}
    rows = _status.stack_services("acme", containers, services)
    assert [r["name"] for r in rows] == ["convex", "web", "mta", "redis", "caddy", "worker"]
    assert [r["name"] for r in rows if not r["ok"]] == ["worker"]
    # As the deploy record holds it: a list in the description's order (the record's JSON has sorted keys).
    recorded = json.loads(json.dumps({"services": [{"name": k, "spec": v} for k, v in services.items()]},
                                     sort_keys=True))
    assert list(_status.services_of(recorded)) == list(services)
    rows = _status.stack_services("acme", containers, _status.services_of(recorded))
    assert [r["name"] for r in rows] == ["convex", "web", "mta", "redis", "caddy", "worker"]
    assert _status.services_of({"release": "0.4.4"}) is _status.RECORDLESS_SERVICES


def test_the_fallback_description_is_the_stack_roles():
    """Records written before they carried `services` are read with the description the stack role writes today (the
    parts status reads: image, required, job, data; ports and health checks are the monitoring's)."""
    import yaml

    root = pathlib.Path(__file__).resolve().parents[4]
    described = yaml.safe_load((root / "roles/stack/vars/main.yml").read_text())["owlat_stack_services"]

    def norm(services):
        return {key: {k: v for k, v in (svc or {}).items() if v and k in ("image", "required", "job", "data", "data_live")}
                for key, svc in services.items()}

    assert list(described) == list(_status.RECORDLESS_SERVICES)
    assert norm(described) == norm(_status.RECORDLESS_SERVICES)


def test_https_port_comes_from_caddy_published_port():
    caddy = {"HostConfig": {"PortBindings": {"443/tcp": [{"HostIp": "", "HostPort": "8443"}]}}}
    assert _status.https_port({"acme-caddy": caddy}, "acme") == 8443
    assert _status.https_port({}, "acme", default=443) == 443


def test_disks_on_one_file_system_are_folded(tmp_path):
    sub = tmp_path / "docker"
    sub.mkdir()
    # The file system is shared with whatever else runs (the lab, in make test): free space is read before and
    # after, and the module's figure must lie between them.
    before = os.statvfs(str(tmp_path))
    entries = _status.disks([("/x", str(tmp_path)), ("docker", str(sub)), ("gone", str(tmp_path / "missing"))])
    after = os.statvfs(str(tmp_path))
    assert len(entries) == 2
    assert entries[0]["also"] == [str(sub)]
    assert 0 <= entries[0]["used_percent"] <= 100 and entries[0]["size_bytes"] > 0
    low, high = sorted(st.f_bavail * st.f_frsize for st in (before, after))
    assert low <= entries[0]["free_bytes"] <= high
    assert entries[1]["label"] == "gone" and "error" in entries[1]
    assert _status.describe_disks(entries) == "/x %.0f%% gone ?" % entries[0]["used_percent"]


def test_discover_stacks_reads_only_owlat_records(tmp_path):
    for name in ("owlat_acme.fact", "owlat_beta-2.fact", "other.fact", "owlat_Bad_Name.fact"):
        (tmp_path / name).write_text("{}")
    assert _status.discover_stacks(str(tmp_path)) == ["acme", "beta-2"]
