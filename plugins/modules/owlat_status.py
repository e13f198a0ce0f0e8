#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_status
short_description: Read the status of the Owlat stacks on a host in one run
version_added: 0.1.0
description:
  - Reads, in a single module run and without changing anything, what an operator wants to see for each
    Owlat stack on the host, for the fleet status report (C(playbooks/status.yml)).
  - The deploy record C(<facts_dir>/owlat_<stack>.fact) written by the stack role (release, images, and the
    stack's service description C(services)).
  - The state and Docker health of every container of the stack, through the Docker Engine API on its unix
    socket. The services the record describes as required (V(convex), V(web), V(mta), V(redis), V(caddy) today)
    are listed even when their container is missing; the others (V(clamav), V(convex-dashboard)) and any other
    container of the stack when present; one-shot jobs never. A record without a description is read with the
    one the stack role writes today. A service is ok when its container runs and its Docker health check, if it has one,
    says healthy. A container not running the image of the deploy record is reported as a problem.
  - The last backup from the backup role's status file C(<backup_status_dir>/<stack>.json);
    V(never) when there is none.
  - Disk use of O(disk_paths) and of Docker's data root, one entry per file system.
  - Days left on the TLS certificate served for each public host name, by connecting to
    O(tls_address) on Caddy's published HTTPS port with the host name as SNI. The certificate is read,
    not checked against a CA (Caddy's internal CA is not trusted by the host).
  - Never fails because a stack is unhealthy; every finding is listed in RV(problems) instead.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  stacks:
    description:
      - Stack names (the stack role's C(owlat_stack_name)). Default is every stack that has a
        deploy record in O(facts_dir).
    type: list
    elements: str
    default: []
  hostnames:
    description:
      - Public host names whose certificates are checked, by stack name. Default is the deploy record's
        C(hostnames) when it has them, else the site addresses of the stack's Caddyfile
        (C(<config_root>/<stack>/caddy/Caddyfile)).
    type: dict
    default: {}
  tls:
    description: Check the TLS certificates.
    type: bool
    default: true
  tls_address:
    description: Address that serves the stacks' HTTPS (Caddy's published port on the host).
    type: str
    default: 127.0.0.1
  https_port:
    description: Port used when the Caddy container does not publish 443/tcp (for example, it is missing).
    type: int
    default: 443
  facts_dir:
    description: Directory of the deploy records.
    type: path
    default: /etc/ansible/facts.d
  config_root:
    description: Parent of the stacks' configuration directories.
    type: path
    default: /etc/owlat
  backup_status_dir:
    description: Directory of the backup status files.
    type: path
    default: /var/lib/owlat/backup
  docker_host:
    description: The Docker Engine API socket, as a C(unix://) URL.
    type: str
    default: unix:///var/run/docker.sock
  disk_paths:
    description: Paths whose file systems are reported, besides Docker's data root.
    type: list
    elements: path
    default: [/]
  backup_max_age_hours:
    description: A last successful backup older than this is a problem.
    type: float
    default: 26
  tls_min_days:
    description:
      - A certificate with fewer days left is a problem. For a certificate whose whole lifetime is short
        (Caddy's internal CA issues 12-hour certificates and renews them when a third is left), a sixth of its
        lifetime is the limit instead, when that is shorter.
    type: int
    default: 14
  disk_max_percent:
    description: A file system more used than this is a problem.
    type: float
    default: 85
  timeout:
    description: Seconds to wait for each answer (Docker API, TLS handshake).
    type: float
    default: 5
extends_documentation_fragment:
  - owlat.selfhost.attributes.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Debian hosts with Docker Engine; only the Python standard library is needed on the host.
notes:
  - Talks to the Docker Engine API directly (standard library HTTP over the unix socket), so it needs no
    Python package on the host and costs one module run for the whole report.
  - Disk use is computed like C(df) does, used / (used + available to unprivileged users).
seealso:
  - module: owlat.selfhost.owlat_health
"""

EXAMPLES = r"""
- name: Status of every stack on the host
  owlat.selfhost.owlat_status:
  register: status

- name: One stack, its certificates by explicit host names
  owlat.selfhost.owlat_status:
    stacks: [acme]
    hostnames:
      acme: [app.acme.example, api.acme.example, actions.acme.example]
    backup_max_age_hours: 50
  register: status

- name: Fail a scheduled job when something needs attention
  ansible.builtin.assert:
    that: status.problems | length == 0
    fail_msg: "{{ inventory_hostname }}: {{ status.problems | join('; ') }}"
"""

RETURN = r"""
stacks:
  description: One entry per stack.
  returned: always
  type: list
  elements: dict
  contains:
    stack:
      description: Stack name.
      type: str
    deployed:
      description: Whether the stack has a deploy record.
      type: bool
    release:
      description: Owlat release from the deploy record (null without one).
      type: str
    functions_release:
      description: Release of the deployed Convex functions, from the deploy record.
      type: str
    services:
      description:
        - Per service, C(name), C(state) (C(running), C(exited), C(restarting), C(missing), ...), C(health)
          (Docker health status or null), C(ok), C(image), C(restarts), C(started_at), and C(exit_code) for an
          exited one, C(image_drift) (the recorded image) when it runs another image.
      type: list
      elements: dict
    services_ok:
      description: Every service is ok.
      type: bool
    backup:
      description:
        - C(state) (C(success), C(failed), C(never), C(unreadable)), C(ok) (succeeded within
          O(backup_max_age_hours)), C(age_hours) since the last success, C(last_success) and C(last_run)
          (epoch seconds), and from the status file when present C(snapshot_id), C(size_bytes),
          C(duration_seconds), C(downtime_seconds), C(mode), C(message).
      type: dict
    tls:
      description:
        - Per host name, C(hostname), C(days_left) (whole days, negative once expired), C(hours_left),
          C(lifetime_hours) (notBefore to notAfter), C(not_after) (UTC), C(issuer), C(subject) (common names);
          or C(error).
      type: list
      elements: dict
    tls_min_days:
      description: Fewest days left over the stack's certificates (null when none could be read).
      type: int
  sample:
    - stack: owlat
      deployed: true
      release: 0.4.4
      functions_release: 0.4.4
      services_ok: true
      services: [{name: convex, state: running, health: healthy, ok: true, restarts: 0,
                  image: "registry.example:5000/get-convex/convex-backend:f9962e6", started_at: "2026-11-26T01:02:03Z"}]
      backup: {state: success, ok: true, age_hours: 3.5, last_success: 1795000000, last_run: 1795000000}
      tls: [{hostname: app.example.com, days_left: 89, hours_left: 2138.5, lifetime_hours: 2160.0,
             not_after: "2027-02-24T01:02:03Z", issuer: "R11", subject: app.example.com}]
      tls_min_days: 89
disks:
  description:
    - One entry per file system, C(label) (the path, or C(docker) for Docker's data root), C(path),
      C(size_bytes), C(used_bytes), C(free_bytes), C(used_percent), C(also) (other paths on it); or C(error).
  returned: always
  type: list
  elements: dict
  sample: [{label: /, path: /, size_bytes: 41943040000, used_bytes: 17196646400, free_bytes: 24746393600,
            used_percent: 41.0, also: [/var/lib/docker]}]
docker:
  description: C(reachable), and C(version), C(root_dir) of the engine, or C(error).
  returned: always
  type: dict
  sample: {reachable: true, version: "26.1.5+dfsg1", root_dir: /var/lib/docker}
rows:
  description: Text cells per stack for a fleet table (C(stack), C(release), C(services), C(backup), C(disk), C(tls)).
  returned: always
  type: list
  elements: dict
  sample: [{stack: owlat, release: 0.4.4, services: "convex ok, web ok, mta ok, redis ok, caddy ok",
            backup: "3h", disk: "/ 41%", tls: "89d"}]
problems:
  description: Everything that needs attention, one sentence each (empty when all is well).
  returned: always
  type: list
  elements: str
  sample: ["owlat: backup never", "owlat: mta exited(1)"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._status import (
    STACK_NAME_RE,
    DockerError,
    HostStatus,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stacks=dict(type="list", elements="str", default=[]),
            hostnames=dict(type="dict", default={}),
            tls=dict(type="bool", default=True),
            tls_address=dict(type="str", default="127.0.0.1"),
            https_port=dict(type="int", default=443),
            facts_dir=dict(type="path", default="/etc/ansible/facts.d"),
            config_root=dict(type="path", default="/etc/owlat"),
            backup_status_dir=dict(type="path", default="/var/lib/owlat/backup"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            disk_paths=dict(type="list", elements="path", default=["/"]),
            backup_max_age_hours=dict(type="float", default=26),
            tls_min_days=dict(type="int", default=14),
            disk_max_percent=dict(type="float", default=85),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    bad = [s for s in module.params["stacks"] if not STACK_NAME_RE.match(s)]
    if bad:
        module.fail_json(msg="stacks: invalid stack names %s (lowercase letters, digits and dashes)" % ", ".join(bad))
    for stack, names in module.params["hostnames"].items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            module.fail_json(msg="hostnames: %s must map to a list of host names" % stack)
    try:
        result = HostStatus(module.params).collect()
    except DockerError as exc:  # only a bad docker_host reaches here; an unreachable engine is a problem row
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
