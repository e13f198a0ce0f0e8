#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_converged
short_description: Is the host as the last complete site.yml run left it? One module run
version_added: 0.5.0
description:
  - The fast path of C(site.yml). With O(state=record), after a run that applied every stack of the host, records
    the host's actual state - its stacks' containers (id, image, running, health), labelled networks and volumes,
    every file the roles manage (kind, mode, owner, SHA-256), the owlat systemd timers and C(docker.service)
    (active, enabled), the host's addresses, and the digest of each Convex deployment's managed environment - with
    the digest of the run's inputs.
  - With O(state=check), reads the host the same way and compares. The host is converged when the inputs are the
    recorded ones and nothing reads differently; C(site.yml) then skips it. Anything else is named in RV(reasons)
    and the host takes the full path, which repairs the drift and records again.
  - The inputs digest is computed on the controller by this module's action plugin (every C(owlat_*) variable of
    the host, templated, and the collection's own files); O(inputs) is that digest.
  - The record holds digests, never a secret value. Writing it is bookkeeping of the run, not a change to anything
    the operator manages, and is not reported as a change.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  state:
    description: C(check) compares the host with its record; C(record) writes the record.
    type: str
    choices: [check, record]
    default: check
  inputs:
    description:
      - Digest of the run's inputs. With O(state=check) the action plugin computes it (a value given is
        replaced); with O(state=record) pass RV(inputs) of the check made at the start of the same run.
    type: str
  path:
    description: The record (root-only, 0600).
    type: path
    default: /var/lib/owlat/converged.json
  stacks:
    description:
      - O(state=record) only. The host's stacks as the run applied them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Stack name.
        type: str
        required: true
      network:
        description: The stack's network (default C(<name>-net)).
        type: str
      containers:
        description: The stack's container names (C(<name>-<key>)), also those made before the roles labelled them.
        type: list
        elements: str
        default: []
      paths:
        description: The files and directories the roles manage for the stack (directories three levels down).
        type: list
        elements: path
        default: []
      convex:
        description: Where the stack's Convex deployment answers and what the roles manage in its environment.
        type: dict
        suboptions:
          service:
            description: The backend's service key.
            type: str
            default: convex
          port:
            description: The backend's API port on the stack network.
            type: int
            default: 3210
          key_path:
            description: The env file with the admin key.
            type: path
            required: true
          state_path:
            description: The names the roles set (M(owlat.selfhost.convex_env)'s state file).
            type: path
            required: true
      row:
        description: What the run's table shows for the stack while it stays converged (release, url), and what the
          fleet-wide preflight rules read of it (hostnames, database).
        type: dict
        default: {}
extends_documentation_fragment:
  - owlat.selfhost.docker_api
attributes:
  check_mode:
    support: full
    description: O(state=check) reads only; O(state=record) in check mode writes nothing.
  diff_mode:
    support: none
    description: Nothing to show; RV(reasons) says what differs.
  idempotent:
    support: full
    description: Reads, or rewrites its own record; never changes a service.
  platform:
    support: full
    platforms: posix
    description: Debian hosts with Docker Engine; only the Python standard library is needed on the host.
notes:
  - Host-wide paths read besides the stacks' own ones are the docker role's C(/etc/docker) files, the backup role's
    C(/etc/owlat-backup), C(/usr/local/sbin/owlat-backup) and units, the deploy records in
    C(/etc/ansible/facts.d), and C(/usr/lib/os-release).
  - IPv6 link-local addresses are left out of the host's addresses (a container's restart gives its veth a new one).
seealso:
  - module: owlat.selfhost.owlat_stack_state
"""

EXAMPLES = r"""
- name: Is this host as the last run left it?
  owlat.selfhost.owlat_converged:
  register: converged

- name: Record the host after a complete run
  owlat.selfhost.owlat_converged:
    state: record
    stacks:
      - name: acme
        containers: [acme-convex, acme-web, acme-mta, acme-redis, acme-clamav, acme-caddy]
        paths: [/etc/owlat/acme]
        convex: {key_path: /etc/owlat/acme/convex-admin-key.env, state_path: /etc/owlat/acme/convex-env-names.json}
        row: {release: 0.4.4, url: https://app.acme.example}
"""

RETURN = r"""
converged:
  description: The inputs are the recorded ones and the host reads as recorded (O(state=check)).
  returned: success
  type: bool
reasons:
  description: Why the host is not converged, at most eight plus a count.
  returned: success
  type: list
  elements: str
  sample: [container acme-web is exited (was running), file /etc/owlat/acme/caddy/Caddyfile changed]
recorded_at:
  description: When the record was written (UTC, ISO 8601), if there is one.
  returned: success
  type: str
stacks:
  description: Stack name to its recorded row (release, url, hostnames, database) and how many of its containers run now
    (running).
  returned: success
  type: dict
inputs:
  description: The digest of the run's inputs the module compared with (O(state=check)) or recorded; null when a
    setting could not be evaluated.
  returned: always
  type: str
record_written:
  description: The record was (or in check mode would be) written (O(state=record)).
  returned: success
  type: bool
"""

import datetime
import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._converged import RECORD_VERSION, check, fingerprint, write_record
from ansible_collections.owlat.selfhost.plugins.module_utils._files import read_text
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DOCKER_API_ARGS, STACK_NAME_RE, DockerAPI, DockerError


def read_record(path):
    try:
        record = json.loads(read_text(path) or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def spec_of(stacks):
    return dict(stacks=[dict(name=s["name"], network=s.get("network") or s["name"] + "-net", convex=s.get("convex"),
                             containers=s["containers"], paths=s["paths"]) for s in stacks])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["check", "record"], default="check"),
            inputs=dict(type="str"),
            path=dict(type="path", default="/var/lib/owlat/converged.json"),
            stacks=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                network=dict(type="str"),
                containers=dict(type="list", elements="str", default=[]),
                paths=dict(type="list", elements="path", default=[]),
                convex=dict(type="dict", options=dict(
                    service=dict(type="str", default="convex"),
                    port=dict(type="int", default=3210),
                    key_path=dict(type="path", required=True, no_log=False),
                    state_path=dict(type="path", required=True),
                )),
                row=dict(type="dict", default={}),
            )),
            **DOCKER_API_ARGS,
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["inputs"]:
        module.fail_json(msg="inputs: missing (state=check: the action plugin computes it, call the module as "
                             "owlat.selfhost.owlat_converged; state=record: pass the check's inputs)")
    bad = [s["name"] for s in params["stacks"] if not STACK_NAME_RE.match(s["name"])]
    if bad:
        module.fail_json(msg="stacks: invalid stack names %s (lowercase letters, digits and dashes)" % ", ".join(bad))
    try:
        api = DockerAPI(params["docker_host"], params["timeout"])
    except DockerError as exc:
        module.fail_json(msg=str(exc))

    if params["state"] == "check":
        record = read_record(params["path"])
        converged, reasons, counts = check(api, record, params["inputs"], module.run_command)
        rows = (record or {}).get("rows") or {}
        stacks = dict((name, dict(rows.get(name) or {}, **counts.get(name, {}))) for name in sorted(rows))
        module.exit_json(changed=False, converged=converged, reasons=reasons,
                         recorded_at=(record or {}).get("recorded_at"), stacks=stacks)

    spec = spec_of(params["stacks"])
    record = dict(version=RECORD_VERSION, inputs=params["inputs"],
                  recorded_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  spec=spec, state=fingerprint(api, spec, module.run_command),
                  rows=dict((s["name"], s["row"]) for s in params["stacks"]))
    if not record["state"].get("engine", True):
        module.fail_json(msg="record: the Docker Engine did not answer (%s)" % record["state"].get("engine_error"))
    if not module.check_mode:
        write_record(params["path"], record)
    module.exit_json(changed=False, converged=True, reasons=[], recorded_at=record["recorded_at"],
                     stacks=record["rows"], record_written=True)


if __name__ == "__main__":
    main()
