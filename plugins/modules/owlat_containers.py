#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_containers
short_description: Read the containers of one Owlat stack in one run, to skip what is already converged
version_added: 0.1.0
description:
  - Reads, in one module run and through the Docker Engine API on its unix socket, whether the stack's network
    exists and, for every container named C(<stack>-<service>), its state, Docker health, address on the stack
    network, and whether it runs the image its image reference names today.
  - The roles compare this with the definitions they applied last (kept in the deploy record) and run
    M(community.docker.docker_container) only for a container that differs, is not running, or runs an image its
    tag no longer points to. This is the compare-then-act pattern of kolla-ansible; it makes a no-op re-run cost one
    module run instead of one per container.
  - Never changes anything. When the Docker Engine does not answer (a fresh host in check mode), it says so in
    RV(engine) and returns no containers, so that every container is treated as to be created.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  stack:
    description: Stack name (the stack role's C(owlat_stack_name)).
    type: str
    required: true
  network:
    description: The stack's network, whose addresses are returned. Default C(<stack>-net).
    type: str
extends_documentation_fragment:
  - owlat.selfhost.docker_api
  - owlat.selfhost.attributes.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Debian hosts with Docker Engine; only the Python standard library is needed on the host.
notes:
  - Talks to the Docker Engine API directly (standard library HTTP over the unix socket), so it needs no Python
    package on the host and no import of the Docker SDK.
seealso:
  - module: community.docker.docker_container
  - module: owlat.selfhost.owlat_status
"""

EXAMPLES = r"""
- name: What runs of stack acme
  owlat.selfhost.owlat_containers:
    stack: acme
  register: probe

- name: Recreate the web container only when it is not settled
  community.docker.docker_container:
    name: acme-web
    image: ghcr.io/wolvesdotink/web:0.4.4
    state: started
  when: not (probe.containers.web.settled | default(false))
"""

RETURN = r"""
engine:
  description: Whether the Docker Engine answered.
  returned: always
  type: bool
  sample: true
engine_error:
  description: Why the Docker Engine did not answer.
  returned: when RV(engine) is false
  type: str
network_exists:
  description: Whether the stack's network exists.
  returned: always
  type: bool
volumes:
  description: Names of the volumes named C(<stack>-...) (the roles create a missing one, labelled C(owlat.stack)).
  returned: always
  type: list
  elements: str
containers:
  description: One entry per container of the stack, by service name (the container name without C(<stack>-)).
  returned: always
  type: dict
  sample:
    convex:
      state: running
      health: healthy
      running: true
      healthy: true
      image: ghcr.io/get-convex/convex-backend:f9962e609c19c6a112da7af7749f78d5a25ca2e9
      image_current: true
      ip: 172.18.0.2
      settled: true
      labelled: true
  contains:
    state:
      description: Docker's state (running, exited, created, ...).
      type: str
    health:
      description: Docker health (healthy, unhealthy, starting), null without a health check.
      type: str
    running:
      description: Running and not restarting.
      type: bool
    healthy:
      description: Running, and healthy when it has a health check.
      type: bool
    image:
      description: The image reference the container was created from.
      type: str
    image_current:
      description: Whether the container runs the image that reference names on the host today.
      type: bool
    ip:
      description: Address on the stack network, null when not attached.
      type: str
    settled:
      description: Running, on its reference's current image, attached to the stack network.
      type: bool
    labelled:
      description: Carries the C(owlat.stack) label (containers made before the roles labelled them do not).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._status import (
    DOCKER_API_ARGS,
    STACK_NAME_RE,
    DockerAPI,
    DockerError,
    probe_stack,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stack=dict(type="str", required=True),
            network=dict(type="str"),
            **DOCKER_API_ARGS,
        ),
        supports_check_mode=True,
    )
    stack = module.params["stack"]
    if not STACK_NAME_RE.match(stack):
        module.fail_json(msg="stack: invalid name %r (lowercase letters, digits and dashes)" % stack)
    if not module.params["docker_host"].startswith("unix://"):
        module.fail_json(msg="docker_host: only unix:// sockets are supported (got %s)" % module.params["docker_host"])
    api = DockerAPI(module.params["docker_host"], module.params["timeout"])
    try:
        result = probe_stack(api, stack, module.params["network"] or stack + "-net")
    except DockerError as exc:
        module.exit_json(changed=False, engine=False, engine_error=str(exc), network_exists=False, volumes=[], containers={})
    module.exit_json(changed=False, engine=True, **result)


if __name__ == "__main__":
    main()
