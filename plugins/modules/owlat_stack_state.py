#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_stack_state
short_description: A stack's secrets and its actual state on the host, in one module run
version_added: 0.2.0
description:
  - The one host-side read of a stack on every run (compare-then-act). In one run it keeps the stack's secrets
    file (as M(owlat.selfhost.owlat_secrets) does, generated once in exact formats and never rotated silently) and reads
    what the later tasks would otherwise each ask the host for, so that a converged stack costs no further module
    run but the final health check.
  - Reads the stack's network and containers (as M(owlat.selfhost.owlat_containers)); kind, mode, owner and
    SHA-256 of the files in O(files); and, when O(convex) is given, whether the admin key stored on the host is
    accepted by the backend and the deployment's environment variables.
  - The comparison with the desired state happens on the controller (filters
    P(owlat.selfhost.container_stale#filter), P(owlat.selfhost.files_stale#filter) and
    P(owlat.selfhost.convex_env_stale#filter)), where that state is rendered.
  - Changes nothing but the secrets file (and the mode of it and of its directory). What cannot be read (no Docker
    Engine yet, no backend yet) is reported, never a failure; the later modules then run and fail with the whole
    story if something is really wrong.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  stack:
    description: Stack name (C(owlat_stack_name)).
    type: str
    required: true
  network:
    description: The stack's network, whose addresses are returned. Default C(<stack>-net).
    type: str
  secrets:
    description: The stack's secrets file, as the options of M(owlat.selfhost.owlat_secrets).
    type: dict
    required: true
    suboptions:
      path:
        description: The secrets file.
        type: path
        required: true
      secrets:
        description: Name to format of every secret the stack needs.
        type: dict
        required: true
      values:
        description: Operator-supplied values by name (empty values are ignored).
        type: dict
        default: {}
      allow_change:
        description: Allow a supplied value to replace a different stored one.
        type: bool
        default: false
  services:
    description:
      - The container keys the stack's description names (C(owlat_stack_services)). A container without the
        C(owlat.stack) label (made before the roles labelled them) belongs to the stack only under the exact name
        C(<stack>-<key>) of one of these; a labelled container by its label.
      - Default the services every stack has had since before the labels.
    type: list
    elements: str
  files:
    description: Paths whose kind, mode, owner and content digest are returned; a directory's entries are included,
      two levels down (the stack's configuration directory, i.e. every file the roles write there).
    type: list
    elements: path
    default: []
  convex:
    description: Ask the stack's Convex backend for its admin key's validity and its deployment environment.
    type: dict
    suboptions:
      service:
        description: The backend's service name (its container is C(<stack>-<service>)).
        type: str
        default: convex
      port:
        description: The backend's API port on the stack network.
        type: int
        default: 3210
      key_path:
        description: The env file holding C(CONVEX_SELF_HOSTED_ADMIN_KEY).
        type: path
        required: true
      state_path:
        description: The names an earlier run set (M(owlat.selfhost.convex_env)'s O(owlat.selfhost.convex_env#module:state_path)).
        type: path
      timeout:
        description: Seconds to wait for each answer of the backend.
        type: int
        default: 10
extends_documentation_fragment:
  - owlat.selfhost.docker_api
attributes:
  check_mode:
    support: full
    description: In check mode a missing secret is reported as generated but not written.
  diff_mode:
    support: full
    description: The secrets file's names (never values), marked generated, supplied or replaced.
  idempotent:
    support: full
    description: A second run finds every secret stored and changes nothing.
  platform:
    support: full
    platforms: posix
    description: Debian hosts with Docker Engine; only the Python standard library is needed on the host.
notes:
  - The result holds the secrets, the admin key and the deployment's environment; run it with C(no_log) and report
    the module's C(msg) yourself on failure (it names secrets and files, never values).
seealso:
  - module: owlat.selfhost.owlat_secrets
  - module: owlat.selfhost.owlat_containers
  - module: owlat.selfhost.convex_env
"""

EXAMPLES = r"""
- name: Stack acme as it is on the host
  owlat.selfhost.owlat_stack_state:
    stack: acme
    secrets:
      path: /etc/owlat/acme/secrets.env
      secrets: {INSTANCE_SECRET: hex32, REDIS_PASSWORD: hex32}
    files: [/etc/owlat/acme/redis.conf]
    convex:
      key_path: /etc/owlat/acme/convex-admin-key.env
      state_path: /etc/owlat/acme/convex-env-names.json
  register: state
  no_log: true
"""

RETURN = r"""
secrets:
  description: Every value in the secrets file after the run, by name.
  returned: success
  type: dict
checksum:
  description: SHA-256 of the secrets file's content after the run.
  returned: success
  type: str
generated:
  description: Names generated in this run.
  returned: success
  type: list
  elements: str
supplied:
  description: Names stored from O(secrets.values) in this run.
  returned: success
  type: list
  elements: str
replaced:
  description: Names whose stored value was replaced (O(secrets.allow_change)).
  returned: success
  type: list
  elements: str
engine:
  description: Whether the Docker Engine answered.
  returned: success
  type: bool
engine_error:
  description: Why the Docker Engine did not answer.
  returned: when RV(engine) is false
  type: str
network_exists:
  description: Whether the stack's network exists.
  returned: success
  type: bool
volumes:
  description: Names of the volumes named C(<stack>-...) (the roles create a missing one, labelled C(owlat.stack)).
  returned: success
  type: list
  elements: str
containers:
  description: One entry per container of the stack by service name, as RV(owlat.selfhost.owlat_containers#module:containers).
  returned: success
  type: dict
files:
  description:
    - Path to C(kind) (file, directory, absent, other), C(mode) (four octal digits), C(uid), C(gid),
      C(owner), C(group) and, for a file, C(sha256).
    - A file holding a secret (the Redis configuration) has its C(sha256) too, because a no-op run compares with
      it; the secrets in it are generated random values of 128 bits or more (hex32), which no digest gives away.
      M(owlat.selfhost.owlat_files) leaves that digest out of its own C(state) (nothing needs it there; a second
      write of such a file in one run only costs one more module run, which finds it as it should be).
  returned: success
  type: dict
  sample: {/etc/owlat/acme/redis.conf: {kind: file, mode: "0600", uid: 999, gid: 1000, owner: null, group: null,
           sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}}
convex:
  description: The deployment as its backend answered.
  returned: when O(convex) is given
  type: dict
  contains:
    reachable:
      description: The backend answered.
      type: bool
    key_valid:
      description: The stored admin key is accepted.
      type: bool
    key:
      description: The stored admin key, when valid.
      type: str
    env:
      description: The deployment's environment variables (name to value), when the key is valid.
      type: dict
    managed:
      description: The names an earlier run set (null without a readable state file).
      type: list
      elements: str
    error:
      description: What could not be read, when something could not.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import remove_values
from ansible_collections.owlat.selfhost.plugins.module_utils._secrets import StackSecrets
from ansible_collections.owlat.selfhost.plugins.module_utils._stack_state import read_stack
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DOCKER_API_ARGS, STACK_NAME_RE, DockerAPI


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stack=dict(type="str", required=True),
            network=dict(type="str"),
            secrets=dict(type="dict", required=True, no_log=False, options=dict(
                path=dict(type="path", required=True),
                secrets=dict(type="dict", required=True, no_log=False),
                values=dict(type="dict", default={}, no_log=True),
                allow_change=dict(type="bool", default=False),
            )),
            services=dict(type="list", elements="str"),
            files=dict(type="list", elements="path", default=[]),
            convex=dict(type="dict", options=dict(
                service=dict(type="str", default="convex"),
                port=dict(type="int", default=3210),
                key_path=dict(type="path", required=True, no_log=False),
                state_path=dict(type="path"),
                timeout=dict(type="int", default=10),
            )),
            **DOCKER_API_ARGS,
        ),
        supports_check_mode=True,
    )
    stack = module.params["stack"]
    if not STACK_NAME_RE.match(stack):
        module.fail_json(msg="stack: invalid name %r (lowercase letters, digits and dashes)" % stack)
    if not module.params["docker_host"].startswith("unix://"):
        module.fail_json(msg="docker_host: only unix:// sockets are supported (got %s)" % module.params["docker_host"])
    result = StackSecrets(module, module.params["secrets"]).run()
    api = DockerAPI(module.params["docker_host"], module.params["timeout"])
    result.update(read_stack(api, stack, module.params["network"] or stack + "-net", module.params["files"],
                             module.params["convex"], module.params["services"]))
    # The secrets are the point of the result (the task runs with no_log); mask only what the operator passed.
    result["invocation"] = dict(module_args=remove_values(module.params, module.no_log_values))
    module.no_log_values.difference_update(result["secrets"].values())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
