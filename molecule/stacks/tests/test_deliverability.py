"""Mail that can arrive, on a fleet of three stacks on one host (each its own address; south with its own EHLO name)
and one stack behind a NAT on another: dns.yml's records are published in the lab's real DNS (Knot behind unbound,
lab.py dns-publish), deliverability.yml finds every check passing; then records are broken, one per stack at a time,
and exactly those checks fail, by name, with nothing changed anywhere. (Runs before test_stacks.py changes the
stacks.)"""

import json
import pathlib
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
from converge_run import recap, run_converge, run_playbook  # noqa: E402
from lab_http import lab_address  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
LAB = [sys.executable, str(ROOT / "lab" / "lab.py")]
MULTI, SOLO = "owlat-mol-stacks1", "owlat-mol-stacks2"
NAT_PUBLIC = "172.29.0.250"  # host_vars of owlat-mol-stacks2: solo sits behind this address
SOLO_DOMAIN = SOLO + ".owlat.test"  # shared group_vars: the classic stack's names are under the host's name
HOST_OF = {"north": MULTI, "south": MULTI, "east": MULTI, "solo": SOLO}
# Where the figures of the closing note are kept (the tables as the operator sees them, and the timings).
REPORT = pathlib.Path("/tmp/owlat-deliverability")
# Outbound port 25 from each stack's sending address to the stack behind the NAT (through the lab's router).
OUTBOUND = ("-e", f"owlat_mail_check_outbound_target=mail.{SOLO_DOMAIN}:25",
            # The lab shares 2 cores with the other lane and the controller matrix: give each DNS answer and connection time.
            "-e", "owlat_mail_check_timeout=15")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """dns.yml's records of the fleet (JSON) and its printed zone lines; the lab's router forwards the NAT address."""
    subprocess.run(LAB + ["nat", "--public", NAT_PUBLIC, "--to", lab_address(SOLO)], check=True)
    path = tmp_path_factory.mktemp("dns") / "records.json"
    rc, out = run_playbook("owlat.selfhost.dns", "-e", f"owlat_dns_json={path}")
    assert rc == 0, out[-3000:]
    REPORT.mkdir(exist_ok=True)
    (REPORT / "records.txt").write_text(out)
    yield json.loads(path.read_text())
    subprocess.run(LAB + ["nat", "--clear"], check=False)


def publish(records, tmp_path, drop=(), change=None, extra=()):
    """Publish the records in the lab DNS, without the (stack, name, type) in drop, with change {(stack, name, type):
    value} and extra records [(name, type, value)]."""
    change = change or {}
    stacks = json.loads(json.dumps(records))
    for stack in stacks:
        kept = []
        for record in stack["records"]:
            key = (stack["stack"], record["name"], record["type"])
            if key in drop:
                continue
            if key in change:
                record["value"] = change[key]
            kept.append(record)
        stack["records"] = kept
    if extra:
        stacks.append({"stack": "extra", "host": "-", "records": [
            {"name": n, "type": t, "value": v, "ttl": 3600} for n, t, v in extra]})
    path = tmp_path / "published.json"
    path.write_text(json.dumps(stacks))
    subprocess.run(LAB + ["dns-publish", str(path)], check=True, capture_output=True)


def check(tmp_path, *extra, playbook="owlat.selfhost.deliverability"):
    path = tmp_path / "checks.json"
    path.unlink(missing_ok=True)
    started = time.monotonic()
    rc, out = run_playbook(playbook, "-e", f"owlat_mail_check_json={path}", *OUTBOUND, *extra)
    return rc, out, json.loads(path.read_text()) if path.exists() else [], time.monotonic() - started


def test_records_come_from_each_stacks_own_settings(records):
    found = {(s["stack"], r["code"], r["name"]): r["value"] for s in records for r in s["records"]}
    # Behind the NAT: the public address everywhere, never the host's private one.
    assert found["solo", "A1", f"app.{SOLO_DOMAIN}."] == NAT_PUBLIC
    assert found["solo", "P1", "250.0.29.172.in-addr.arpa."] == f"mail.{SOLO_DOMAIN}."
    assert found["solo", "S2", f"bounces.{SOLO_DOMAIN}."] == f"v=spf1 ip4:{NAT_PUBLIC} ~all"
    # south's address has its own EHLO name: its A, PTR and the bounce MX follow it.
    assert found["south", "A2", "mx.south.owlat.test."] == "172.29.0.242"
    assert found["south", "P1", "242.0.29.172.in-addr.arpa."] == "mx.south.owlat.test."
    assert found["south", "M1", "bounces.south.owlat.test."] == "10 mx.south.owlat.test."
    assert found["north", "A1", "app.north.owlat.test."] == lab_address(MULTI)


def test_published_records_pass_every_check_for_the_fleet(records, tmp_path):
    publish(records, tmp_path)
    rc, out, rows, seconds = check(tmp_path, "-e", "owlat_mail_check_fail=true")
    (REPORT / "checks.txt").write_text(out)
    (REPORT / "checks-seconds.txt").write_text("%.1f\n" % seconds)
    assert rc == 0, out[-4000:]
    assert recap(out)[MULTI]["changed"] == 0 and recap(out)[SOLO]["changed"] == 0
    assert sorted({r["stack"] for r in rows}) == ["east", "north", "solo", "south"]
    for row in rows:
        assert row["host"] == HOST_OF[row["stack"]]
        if row["code"] == "K1":
            assert row["status"] == "SKIP"
        elif row["code"] == "smtp-in":
            # Seen from the other host; upstream's MTA offers STARTTLS only with BOUNCE_TLS_CERT/KEY, unset here.
            assert row["from"] != row["host"], row
            assert row["status"] == "WARN" and "no STARTTLS offered" in row["found"], row
            assert row["found"].startswith("220 "), row
        else:
            assert row["status"] == "OK", row
    codes = {(r["stack"], r["code"]) for r in rows}
    for stack in HOST_OF:
        for code in ("A1", "A2", "P1", "M1", "S1", "S2", "Q1", "K1", "smtp-in", "smtp-out"):
            assert (stack, code) in codes, (stack, code)
    # solo's port 25 answered through the NAT's public address, from the other host.
    solo_in = [r for r in rows if r["stack"] == "solo" and r["code"] == "smtp-in"]
    assert solo_in[0]["name"].startswith(NAT_PUBLIC + ":25") and solo_in[0]["from"] == MULTI
    assert "Checks, per stack" in out and re.search(r"STACK +HOST +FROM +CHECK +NAME +FOUND", out)


ROUNDS = [
    # One broken record per stack; what must fail (stack, code, name), beyond nothing else.
    dict(drop={("north", "241.0.29.172.in-addr.arpa.", "PTR"), ("south", "bounces.south.owlat.test.", "MX"),
               ("solo", f"_dmarc.{SOLO_DOMAIN}.", "TXT")},
         change={("east", "bounces.east.owlat.test.", "TXT"): "v=spf1 ip4:172.29.0.99 ~all"},
         fail={("north", "P1", "241.0.29.172.in-addr.arpa."), ("south", "M1", "bounces.south.owlat.test."),
               ("south", "smtp-in", "bounces.south.owlat.test"), ("east", "S2", "bounces.east.owlat.test."),
               ("solo", "Q1", f"_dmarc.{SOLO_DOMAIN}.")},
         says={"north": "no-ptr", "east": "does not pass 172.29.0.243"}),
    dict(drop={("north", "north.owlat.test.", "TXT"), ("east", "mail.east.owlat.test.", "A")},
         change={("south", "api.south.owlat.test.", "A"): "172.29.0.99",
                 ("solo", "250.0.29.172.in-addr.arpa.", "PTR"): "host250.owlat.test."},
         extra=[("host250.owlat.test.", "A", NAT_PUBLIC)],
         fail={("north", "S1", "north.owlat.test."), ("south", "A1", "api.south.owlat.test."),
               ("east", "A2", "mail.east.owlat.test."), ("east", "P1", "243.0.29.172.in-addr.arpa."),
               ("east", "smtp-in", "mail.east.owlat.test."), ("solo", "P1", "250.0.29.172.in-addr.arpa.")},
         says={"south": "different: answers 172.29.0.99", "solo": "ehlo-mismatch"}),
]


@pytest.mark.parametrize("broken", ROUNDS, ids=["ptr-mx-spf-dmarc", "spf-a-ehlo-ptr"])
def test_each_broken_record_fails_by_name_and_nothing_changes(records, tmp_path, broken):
    publish(records, tmp_path, drop=broken["drop"], change=broken["change"], extra=broken.get("extra", ()))
    # The second round runs the checks as part of the fleet run (site.yml -e owlat_mail_check=true).
    rc, out, rows, _ = check(tmp_path, "-e", "owlat_mail_check_fail=true", *(
        ("-e", "owlat_mail_check=true") if broken is ROUNDS[1] else ()),
        playbook="owlat.selfhost.site" if broken is ROUNDS[1] else "owlat.selfhost.deliverability")
    failed = {(r["stack"], r["code"], r["name"].split(":")[0] if r["code"] == "smtp-in" and r["name"][0].isdigit()
               else r["name"]) for r in rows if r["status"] == "FAIL"}
    assert rows, out[-4000:]
    assert failed == broken["fail"], json.dumps([r for r in rows if r["status"] != "OK"], indent=1)
    assert rc != 0 and "deliverability check(s) failed" in out
    for stack, text in broken["says"].items():
        assert any(text in r["found"] for r in rows if r["stack"] == stack and r["status"] == "FAIL"), (stack, text)
    assert recap(out)[MULTI]["changed"] == 0 and recap(out)[SOLO]["changed"] == 0
    # Without the option the same run reports and succeeds.
    if broken is ROUNDS[0]:
        rc, out, rows, _ = check(tmp_path)
        assert rc == 0 and any(r["status"] == "FAIL" for r in rows), out[-3000:]
    publish(records, tmp_path)


def test_a_sending_address_not_on_the_host_without_a_declared_nat_is_refused_with_no_change():
    rc, out = run_converge("-e", "owlat_stack_behind_nat=false")
    assert rc != 0
    assert f"stack solo on {SOLO}: owlat_stack_sending_addresses: {NAT_PUBLIC} is not an address of the host" in out, out[-3000:]
    assert "owlat_stack_behind_nat: true" in out
    assert all(stats["changed"] == 0 for stats in recap(out).values()), out[-2000:]
