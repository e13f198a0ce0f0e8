# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: stack_entries
short_description: The stacks of hosts with several (owlat_stacks) as hosts of the run
version_added: 0.3.0
extends_documentation_fragment: [owlat.selfhost.hostvars_filter]
description:
  - For each host of the run with C(owlat_stacks), one C(ansible.builtin.add_host) argument per entry - name
    C(<stack>@<host>), the host's connection variables (C(ansible_host) defaulting to the host's name), the host's own
    C(owlat_*) settings, then the entry's on top, C(owlat_stack_machine) (the host) and the groups C(_owlat_stacks)
    plus each of O(limit_groups) that the host is in (so that a C(--limit) by group selects the entry too).
  - Read before any role ran on the host (playbooks/preflight.yml's first play), so no fact of a role is copied.
    The result holds the host's settings, secrets included - never print it.
options:
  groups:
    description: The inventory's C(groups).
    type: dict
    required: true
  limit_groups:
    description: The patterns of C(--limit) (entries join those that are groups of their host).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
entries: "{{ hostvars | owlat.selfhost.stack_entries(ansible_play_hosts_all, groups, ['eu']) }}"
"""

RETURN = r"""
_value:
  description: One dict per entry, the arguments of C(ansible.builtin.add_host).
  type: list
  elements: dict
"""

CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection", "ansible_password", "ansible_ssh_pass",
                   "ansible_ssh_private_key_file", "ansible_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args",
                   "ansible_python_interpreter", "ansible_become", "ansible_become_method", "ansible_become_user",
                   "ansible_become_password", "ansible_become_pass", "ansible_docker_extra_args", "ansible_remote_tmp")


def stack_entries(hostvars, hosts, groups, limit_groups=None):
    out = []
    for host in hosts:
        hv = hostvars[host]
        if "owlat_stacks" not in hv:
            continue
        machine = {key: hv[key] for key in hv if key.startswith("owlat_") and key != "owlat_stacks"}
        machine.update({key: hv[key] for key in CONNECTION_VARS if key in hv})
        machine.setdefault("ansible_host", host)
        joined = [g for g in (limit_groups or []) if g in groups and host in groups[g]]
        for entry in hv["owlat_stacks"]:
            item = dict(machine)
            item.update(entry)
            item.update(name="%s@%s" % (entry["owlat_stack_name"], host), groups=["_owlat_stacks"] + joined,
                        owlat_stack_machine=host)
            out.append(item)
    return out


class FilterModule:
    def filters(self):
        return {"stack_entries": stack_entries}
