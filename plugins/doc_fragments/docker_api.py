# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    # Modules that read the Docker Engine API themselves (owlat_containers, owlat_stack_state, owlat_converged);
    # their argument spec is module_utils._status.DOCKER_API_ARGS.
    DOCUMENTATION = r"""
options:
  docker_host:
    description: The Docker Engine API socket, as a C(unix://) URL.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds to wait for each answer of the Docker API.
    type: float
    default: 10
"""
