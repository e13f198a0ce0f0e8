"""Fleet-wide preflight battery, run by the docker scenario's prepare step on fresh hosts (no Docker yet).

Each invalid configuration goes to site.yml for both hosts. Every one must be refused with rc != 0, changed=0
on every host, and a message that names the setting; afterwards the hosts are still fresh (no Docker engine,
no /etc/owlat). Figures (seconds per refusal) go to $TMPDIR/owlat-preflight-battery.json.

    python3 preflight_battery.py   (env: MOLECULE_INVENTORY_FILE, the collection on ANSIBLE_COLLECTIONS_PATH)
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "..", "..", "playbooks", "site.yml")
HOSTS = ["owlat-mol-docker-deb13", "owlat-mol-docker-deb12"]
REG = "registry.owlat.lab:5000"

# (what is wrong, extra vars, text the refusal must contain)
BATTERY = [
    ("stack name with capitals", {"owlat_stack_name": "Acme"}, "owlat_stack_name"),
    ("unknown release", {"owlat_stack_release": "9.9.9"}, "Release 9.9.9 is not in the catalog"),
    ("malformed app hostname", {"owlat_stack_app_hostname": "app_acme"}, "owlat_stack_app_hostname"),
    ("the same hostname twice in one stack", {"owlat_stack_api_hostname": "same.example.net",
                                               "owlat_stack_actions_hostname": "same.example.net"}, "three different"),
    ("empty e-mail domain", {"owlat_stack_email_domain": ""}, "owlat_stack_email_domain is required"),
    ("bad EHLO name", {"owlat_stack_ehlo_hostname": "localhost"}, "owlat_stack_ehlo_hostname"),
    ("image override for an unknown service", {"owlat_stack_images": {"worker": "ghcr.io/x/y:1"}}, "owlat_stack_images"),
    ("unknown secret name", {"owlat_stack_secrets": {"NOPE": "x"}}, "owlat_stack_secrets"),
    ("registry mirror with a scheme", {"owlat_stack_registry_mirror": "https://reg.example.net"}, "owlat_stack_registry_mirror"),
    ("unknown TLS mode", {"owlat_proxy_tls": "letsencrypt"}, "owlat_proxy_tls is acme or internal"),
    ("bad ACME e-mail", {"owlat_proxy_acme_email": "not-an-address"}, "owlat_proxy_acme_email"),
    ("HTTP and HTTPS on one port", {"owlat_proxy_http_port": 8443, "owlat_proxy_https_port": 8443}, "owlat_proxy_http_port"),
    ("HTTPS port out of range", {"owlat_proxy_https_port": 70000}, "owlat_proxy_https_port"),
    ("SMTP port out of range", {"owlat_app_mta_smtp_port": 70000}, "owlat_app_mta_smtp_port"),
    ("dashboard hostname without password", {"owlat_stack_dashboard_enabled": True,
                                             "owlat_proxy_dashboard_hostname": "dash.example.net"}, "bcrypt"),
    ("malformed admin e-mail", {"owlat_app_admin_email": "admin-at-example"}, "owlat_app_admin_email"),
    ("unknown FBL ack", {"owlat_app_mta_fbl_cutover_ack": "yes"}, "owlat_app_mta_fbl_cutover_ack"),
    ("both Postgres and MySQL", {"owlat_convex_postgres_url": "postgres://u:p@db", "owlat_convex_mysql_url": "mysql://u:p@db"},
     "owlat_convex_postgres_url"),
    ("half an S3 setting", {"owlat_convex_s3": {"region": "eu"}}, "owlat_convex_s3 needs"),
    ("memory limit without unit", {"owlat_convex_memory_limit": "2048"}, "owlat_convex_memory_limit"),
    ("unknown rate-limit proxy mode", {"owlat_convex_rate_limit_trusted_proxy": "forwarded"}, "owlat_convex_rate_limit_trusted_proxy"),
    ("deployment variable Owlat does not read", {"owlat_convex_deployment_env_extra": {"TYPO_KEY": "x"}}, "TYPO_KEY"),
    ("unknown backup mode", {"owlat_backup_password": "lab-backup-pass", "owlat_backup_mode": "warm"}, "owlat_backup_mode"),
    ("backup repository with a bad scheme", {"owlat_backup_password": "lab-backup-pass",
                                             "owlat_backup_repository": "ftp://x/y"}, "owlat_backup_repository"),
    ("a Postgres URL without user name", {"owlat_convex_postgres_url": "postgresql://pg.example.net:5432"},
     "as a server URL with a user name and without database name"),
    ("an instance name that is no database name", {"owlat_convex_instance_name": "Acme_EU"},
     "owlat_convex_instance_name is empty or lower-case letters, digits and - (got Acme_EU)"),
    ("two stacks on one Postgres database", {"owlat_convex_postgres_url": "postgresql://convex@pg.example.net:5432"},
     "database postgres://pg.example.net:5432/convex_self_hosted would be used by stack owlat on owlat-mol-docker-deb12 "
     "and stack owlat on owlat-mol-docker-deb13"),
    ("cold backups of a stack whose documents are in Postgres", {"owlat_backup_password": "lab-backup-pass",
                                                               "owlat_convex_postgres_url": "postgresql://convex@pg.example.net:5432"},
     "owlat_backup_mode is cold, but the stack keeps its data outside the host (owlat_convex_postgres_url)"),
    ("registry entry without password", {"owlat_docker_registries": [{"registry": REG, "username": "lab"}]},
     REG + ": username without password"),
    ("registry entry with a scheme", {"owlat_docker_registries": [{"registry": "https://" + REG}]}, "registry must be host[:port]"),
    ("docker log size without unit", {"owlat_docker_log_max_size": "10"}, "owlat_docker_log_max_size"),
    ("the same public hostnames on both hosts", {"owlat_stack_app_hostname": "app.shared.example",
                                                 "owlat_stack_api_hostname": "api.shared.example",
                                                 "owlat_stack_actions_hostname": "actions.shared.example"},
     ["hostname app.shared.example is claimed by stack owlat on owlat-mol-docker-deb13 and stack owlat on owlat-mol-docker-deb12",
      "hostname app.shared.example is claimed by stack owlat on owlat-mol-docker-deb12 and stack owlat on owlat-mol-docker-deb13"]),
]


def refuse(case):
    what, extra, expect = case
    started = time.time()
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], SITE, "-e", json.dumps(extra)],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    out = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    recap = {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, re.M)}
    problems = []
    if run.returncode == 0:
        problems.append("not refused")
    if any(recap.get(h, 0) for h in HOSTS):
        problems.append(f"changed something: {recap}")
    flat = re.sub(r"\s+", " ", out)
    if not any(e in flat for e in ([expect] if isinstance(expect, str) else expect)):
        problems.append(f"message does not say {expect!r}")
    if "output has been hidden" in out:
        problems.append("a refusal hidden by no_log")
    return what, round(time.time() - started, 1), problems, out


def main() -> int:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(refuse, BATTERY))
    failed = [r for r in results if r[2]]
    for what, seconds, problems, _ in results:
        print(f"{'FAIL' if problems else 'ok  '} {seconds:6.1f} s  {what}{': ' + '; '.join(problems) if problems else ''}")
    # The hosts are as fresh as before: no Docker engine installed, no stack directory.
    for host in HOSTS:
        probe = subprocess.run(["docker", "exec", host, "sh", "-c", "command -v dockerd || test -e /etc/owlat"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            print(f"FAIL {host} is no longer fresh: {probe.stdout.strip() or '/etc/owlat exists'}")
            failed.append((host, 0, ["not fresh"], ""))
    report = os.path.join(tempfile.gettempdir(), "owlat-preflight-battery.json")
    with open(report, "w", encoding="utf-8") as fh:
        json.dump([{"case": w, "seconds": s, "problems": p} for w, s, p, _ in results], fh, indent=1)
    for what, _, problems, out in failed:
        if out:
            print(f"--- {what}: {'; '.join(problems)}\n{out[-2500:]}")
    print(f"preflight battery: {len(results) - len([f for f in failed if f[3]])} of {len(results)} refused cleanly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
