#!/usr/bin/env python3
"""A private set of lab hosts for the benchmark and the ansible-runner test.

  fleet.py up -n N --name PREFIX --state DIR   hosts PREFIX1..PREFIXN + DIR/inventory.yml
  fleet.py down --name PREFIX                  remove them (and their Docker volumes)

`lab/lab.py up` manages one fleet per machine (owlat-lab-host1..N at fixed addresses, and it removes
lab hosts it did not ask for), so the benchmark and the runner test start their own hosts under another
name and label, at fixed addresses high in the lab network (lab.py uses .11 and up, Molecule's hosts
get the low addresses Docker hands out first). They reuse what lab.py builds and
keeps in its state (images, the registry with the stack images, the SSH key, the lab CA and registry
password), and never touch the hosts of `make demo`, Molecule or another prefix.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))
import lab  # noqa: E402  (lab/lab.py: images, registry, secrets, run flags)

LABEL = "owlat-fleet"


def docker(*args, capture=True, check=True):
    res = subprocess.run(["docker", *args], check=False, text=True,
                         stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE)
    if check and res.returncode != 0:
        sys.exit("fleet: docker %s failed: %s" % (" ".join(args[:3]), res.stderr.strip()))
    return res.stdout.strip() if capture else ""


def hosts_of(prefix):
    out = docker("ps", "-a", "--filter", "label=%s=%s" % (LABEL, prefix), "--format", "{{.Names}}")
    return sorted(out.split(), key=lambda n: int(n[len(prefix):]) if n[len(prefix):].isdigit() else 0)


def address(name):
    fmt = '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % lab.NETWORK
    return docker("inspect", "-f", fmt, name)


def up(n, prefix, state, suite="trixie", flavour="host-docker", ip_base=200):
    built = lab.images()
    lab.registry(built=built)
    sec = lab.lab_secrets()
    image = built["%s:%s" % (flavour, suite)]
    wanted = ["%s%d" % (prefix, i) for i in range(1, n + 1)]
    for name in hosts_of(prefix):
        if name not in wanted:
            docker("rm", "-f", "-v", name)
    for name in wanted:
        ip = "%s.%d" % (lab.SUBNET.rsplit(".", 1)[0], ip_base + int(name[len(prefix):]))
        running = docker("inspect", "-f", "{{.Config.Image}} {{.State.Running}}", name, check=False)
        if running == "%s true" % image and address(name) == ip:
            continue
        docker("rm", "-f", "-v", name, check=False)
        lab.log("starting %s (%s:%s)" % (name, flavour, suite))
        docker("run", "-d", "--name", name, "--hostname", name, "--network", lab.NETWORK, "--ip", ip,
               "--label", "%s=%s" % (LABEL, prefix), *lab.HOST_RUN_FLAGS,
               "-v", "%s.pub:/root/.ssh/authorized_keys:ro" % sec["key"], "-v", "/var/lib/docker", image)
    addresses = {name: address(name) for name in wanted}
    state = pathlib.Path(state)
    state.mkdir(parents=True, exist_ok=True)
    inventory = state / "inventory.yml"
    inventory.write_text(render_inventory(addresses, sec))
    wait_ssh(addresses, sec["key"])
    lab.log("%d host(s) up; inventory: %s" % (len(wanted), inventory))
    return inventory


def render_inventory(addresses, sec):
    """The same wiring as lab.py's inventory (registry login and CA, per-host names, internal TLS)."""
    password_file = lab.STATE / "registry-password"
    lines = [
        "# Written by bench/fleet.py; do not edit.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        "    ansible_ssh_private_key_file: %s" % sec["key"],
        "    ansible_ssh_common_args: >-",
        "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "    ansible_python_interpreter: /usr/bin/python3",
        "    owlat_lab_registry: %s" % lab.REGISTRY_ADDR,
        "    owlat_docker_registries:",
        '      - registry: "{{ owlat_lab_registry }}"',
        "        username: %s" % lab.REGISTRY_USER,
        "        password: \"{{ lookup('ansible.builtin.file', '%s') }}\"" % password_file,
        "        ca_cert: \"{{ lookup('ansible.builtin.file', '%s') }}\"" % sec["ca"],
        "    owlat_stack_registry_mirror: %s" % lab.REGISTRY_ADDR,
        "    owlat_stack_registry_mirror_keep_digests: false",
        "    owlat_stack_app_hostname: app.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_api_hostname: api.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_actions_hostname: actions.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_email_domain: \"{{ inventory_hostname }}.owlat.test\"",
        "    owlat_proxy_tls: internal",
        "  children:",
        "    owlat_hosts:",
        "      hosts:",
    ]
    for name, ip in addresses.items():
        lines += ["        %s:" % name, "          ansible_host: %s" % ip]
    return "\n".join(lines) + "\n"


def wait_ssh(addresses, key, timeout=120):
    pending = dict(addresses)
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for name, ip in list(pending.items()):
            res = subprocess.run(
                ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@" + ip,
                 "systemctl is-system-running --wait >/dev/null; true"],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if res.returncode == 0:
                del pending[name]
        if pending:
            time.sleep(1)
    if pending:
        sys.exit("fleet: no SSH on %s after %d s" % (", ".join(pending), timeout))


def down(prefix):
    for name in hosts_of(prefix):
        docker("rm", "-f", "-v", name)
        lab.log("removed %s" % name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("-n", type=int, default=3)
    u.add_argument("--name", default="owlat-bench-host", help="host name prefix (one fleet per prefix)")
    u.add_argument("--state", default=str(HERE / ".state"), help="directory for the inventory")
    u.add_argument("--ip-base", type=int, default=200, help="host i gets 172.29.0.<ip-base + i>")
    u.add_argument("--suite", default="trixie", choices=sorted(lab.SUITES))
    u.add_argument("--flavour", default="host-docker", choices=["host", "host-docker"],
                   help="host-docker has docker.io preinstalled (the docker role then only configures it)")
    d = sub.add_parser("down")
    d.add_argument("--name", default="owlat-bench-host")
    args = p.parse_args()
    if args.cmd == "up":
        print(json.dumps({"inventory": str(up(args.n, args.name, args.state, args.suite, args.flavour, args.ip_base))}))
    else:
        down(args.name)


if __name__ == "__main__":
    main()
