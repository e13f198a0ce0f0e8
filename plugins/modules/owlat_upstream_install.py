#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_upstream_install
short_description: Read an Owlat install made the way upstream documents it, and hand its data over to a stack
version_added: 0.6.0
description:
  - An install made by upstream's C(install.sh) / quickstart is a docker compose project in a directory
    (C(/opt/owlat)) whose C(.env) holds the secrets; the project is named after the directory, its volumes are
    C(<project>_<key>) (wolvesdotink/owlat C(docker-compose.yml) and C(install.sh) at v0.4.4, commit c2b6921).
  - With O(state=inspected), reads that C(.env) (the secrets named in O(secrets), C(OWLAT_VERSION), the admin key
    C(CONVEX_ADMIN_KEY)) and the project's containers, volumes and networks, by their compose labels. Changes
    nothing. A missing directory or C(.env) is reported (RV(found)), not a failure.
  - With O(state=handed_over), moves the data of each volume in O(handover) into the stack's volume named there
    (which must exist and be empty) - renamed where both are on one filesystem (nothing is copied), copied and then
    removed otherwise; verified by a digest of every entry (with the files' bytes when copied). A source that is
    already empty is left alone, so a second run changes nothing. The project's containers must be stopped.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  project_dir:
    description: The install directory (upstream's C(OWLAT_INSTALL_DIR)).
    type: path
    default: /opt/owlat
  project:
    description: The compose project name. Default, as compose names it, the directory's name.
    type: str
  stack:
    description: The stack the install is to become; its volumes already on the host (by the C(owlat.stack) label, or
      named in O(stack_volumes)) are listed in RV(stack_volumes) (a stack cannot take over data where data is already).
    type: str
  stack_volumes:
    description: Names of the stack's volumes to look for besides the labelled ones.
    type: list
    elements: str
    default: []
  secrets:
    description: The secrets to read from C(.env), name -> format (C(owlat_stack_secret_formats)); one absent or in
      another format is listed in RV(missing) or RV(malformed).
    type: dict
    default: {}
  state:
    description: V(inspected) reads; V(handed_over) moves the volumes' data.
    type: str
    choices: [inspected, handed_over]
    default: inspected
  handover:
    description: For O(state=handed_over), the moves to make.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: The install's volume.
        type: str
        required: true
      dest:
        description: The stack's volume (created beforehand, labelled with its stack).
        type: str
        required: true
extends_documentation_fragment:
  - owlat.selfhost.docker_api
attributes:
  check_mode:
    support: full
    description: O(state=handed_over) reports what it would move and how, and moves nothing.
  diff_mode:
    support: none
    description: RV(handed_over) says what moved.
  idempotent:
    support: full
    description: A volume already handed over (its source empty) is not moved again.
  platform:
    support: full
    platforms: posix
    description: Debian hosts with Docker Engine, run as root (volumes live under C(/var/lib/docker)).
notes:
  - The result holds the secrets. Run the task with C(no_log) and report C(msg) or the other keys yourself.
seealso:
  - module: owlat.selfhost.owlat_stack_state
"""

EXAMPLES = r"""
- name: The install upstream's quickstart made
  owlat.selfhost.owlat_upstream_install:
    secrets: {INSTANCE_SECRET: hex64, MTA_SECRET: hex64}
  register: install
  no_log: true

- name: Its Convex and Redis data into stack owlat's volumes
  owlat.selfhost.owlat_upstream_install:
    state: handed_over
    handover:
      - {source: owlat_convex-data, dest: owlat-convex-data}
      - {source: owlat_redis-data, dest: owlat-redis-data}
"""

RETURN = r"""
found:
  description: The directory holds a C(.env), or containers or volumes of the project exist.
  returned: always
  type: bool
project:
  description: The compose project name.
  returned: always
  type: str
env_file:
  description: The C(.env) read.
  returned: always
  type: str
release:
  description: The install's Owlat release (C(OWLAT_VERSION), else the web image's tag); null when unknown.
  returned: state=inspected
  type: str
secrets:
  description: The secrets found in the right format, name -> value.
  returned: state=inspected
  type: dict
missing:
  description: Secrets of O(secrets) absent from C(.env) (or empty).
  returned: state=inspected
  type: list
  elements: str
malformed:
  description: Secrets of O(secrets) in another format, with the format expected (never the value).
  returned: state=inspected
  type: list
  elements: dict
admin_key:
  description: C(CONVEX_ADMIN_KEY) of C(.env), when it looks like an admin key (holds a C(|)); empty otherwise.
  returned: state=inspected
  type: str
containers:
  description: The project's containers (name, id, service, image, running).
  returned: always
  type: list
  elements: dict
volumes:
  description: The project's volumes (name, key, mountpoint).
  returned: always
  type: list
  elements: dict
networks:
  description: The project's networks.
  returned: always
  type: list
  elements: str
stack_volumes:
  description: Volumes of O(stack) already on the host (by the C(owlat.stack) label, or named in O(stack_volumes)).
  returned: state=inspected
  type: list
  elements: str
handed_over:
  description: Per move (source, dest), whether it moved data, how (V(rename), V(copy), V(none)), and the entries,
    bytes and digest of the data now in the stack's volume.
  returned: state=handed_over
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils import _adopt
from ansible_collections.owlat.selfhost.plugins.module_utils import _secret_formats as formats
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DOCKER_API_ARGS, STACK_LABEL, DockerAPI, DockerError


def inspect(module, api, project_dir, project):
    env_file = os.path.join(project_dir, ".env")
    env = {}
    if os.path.isfile(env_file):
        with open(env_file) as fh:
            env = _adopt.parse_env(fh.read())
    unknown = [name for name, fmt in module.params["secrets"].items() if not formats.is_known(fmt)]
    if unknown:
        module.fail_json(msg="secrets: unknown format for %s" % ", ".join(sorted(unknown)))
    all_volumes = _adopt.host_volumes(api)
    containers, volumes, networks = _adopt.project_objects(api, project, all_volumes)
    values, missing, malformed = _adopt.read_secrets(env, module.params["secrets"], formats.is_valid, formats.describe)
    key = env.get("CONVEX_ADMIN_KEY", "")
    stack = module.params["stack"]
    stack_volumes = sorted(v["Name"] for v in all_volumes
                           if (stack and (v.get("Labels") or {}).get(STACK_LABEL) == stack) or v["Name"] in module.params["stack_volumes"])
    return dict(stack_volumes=stack_volumes, found=bool(env or containers or volumes), env_file=env_file, release=_adopt.release_of(env, containers),
                secrets=values, missing=missing, malformed=malformed, admin_key=key if "|" in key else "",
                containers=containers, volumes=volumes, networks=networks)


def hand_over(module, api, project):
    containers, volumes, networks = _adopt.project_objects(api, project)
    running = [c["name"] for c in containers if c["running"]]
    if running and not module.check_mode:
        module.fail_json(msg="the install's containers still run (%s): stop them first" % ", ".join(running))
    moved = []
    for item in module.params["handover"]:
        try:
            source = api.get("/volumes/%s" % item["source"])["Mountpoint"]
        except DockerError:
            moved.append(dict(item, changed=False, method="none", entries=0, bytes=0, digest=""))
            continue
        try:
            dest = api.get("/volumes/%s" % item["dest"])["Mountpoint"]
        except DockerError:
            if not module.check_mode:
                raise
            # Check mode: the stack's volume is not created either; the data would move into it.
            moved.append(dict(item, changed=True, method="into a new volume", **_adopt.tree_digest(source)))
            continue
        try:
            moved.append(dict(item, **_adopt.hand_over(source, dest, module.check_mode)))
        except (OSError, ValueError) as exc:
            module.fail_json(msg="volume %s into %s: %s (moved so far: %s)" % (
                item["source"], item["dest"], exc, ", ".join(m["source"] for m in moved if m["changed"]) or "none"))
    return dict(changed=any(m["changed"] for m in moved), handed_over=moved, containers=containers, volumes=volumes,
                networks=networks)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", default="/opt/owlat"),
            project=dict(type="str"),
            stack=dict(type="str"),
            stack_volumes=dict(type="list", elements="str", default=[]),
            secrets=dict(type="dict", default={}, no_log=False),
            state=dict(type="str", choices=["inspected", "handed_over"], default="inspected"),
            handover=dict(type="list", elements="dict", default=[], options=dict(
                source=dict(type="str", required=True),
                dest=dict(type="str", required=True),
            )),
            **DOCKER_API_ARGS,
        ),
        supports_check_mode=True,
    )
    project_dir = module.params["project_dir"].rstrip("/") or "/"
    project = module.params["project"] or os.path.basename(project_dir)
    result = dict(changed=False, project=project, env_file=os.path.join(project_dir, ".env"))
    try:
        api = DockerAPI(module.params["docker_host"], module.params["timeout"])
        if module.params["state"] == "inspected":
            result.update(inspect(module, api, project_dir, project))
        else:
            result.update(hand_over(module, api, project))
            result["found"] = bool(result["containers"] or result["volumes"])
    except DockerError as exc:
        module.fail_json(msg="install %s in %s: %s" % (project, project_dir, exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
