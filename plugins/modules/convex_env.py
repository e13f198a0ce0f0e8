#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: convex_env
short_description: Make a self-hosted Convex deployment's environment variables equal to a desired set
version_added: 0.1.0
description:
  - Reads the deployment environment (the variables Convex functions see, not the container
    environment) with C(GET /api/v1/list_environment_variables), compares it with O(env) and sends one
    C(POST /api/v1/update_environment_variables) holding every change, only when something differs.
  - The names this module set are remembered in O(state_path). With O(prune=true), a name that an
    earlier run set and that is no longer in O(env) is removed. Names this module never set (for
    example added by hand in the dashboard) are never touched unless O(env) names them.
  - Invalid names and the built-in C(CONVEX_SITE_URL) and C(CONVEX_CLOUD_URL) are refused before any
    request is sent.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  url:
    description: Base URL of the backend API (port 3210), for example C(http://172.20.0.5:3210).
    type: str
    required: true
  admin_key:
    description: The deployment's admin key (see M(owlat.selfhost.convex_admin_key)).
    type: str
    required: true
  env:
    description:
      - Desired variables, name to value. Names match C(^[a-zA-Z_]+[a-zA-Z0-9_]*$) and have at most
        256 characters; values have at most 8 KiB.
      - Values are strings; booleans are sent as C(true)/C(false) and numbers as their text.
      - A null value makes sure the variable is absent (even one this module never set).
    type: dict
    required: true
  state_path:
    description:
      - File on the managed host remembering the names this module manages (a JSON list, mode C(0600)).
      - It is written after a successful update, or when the set of managed names changes.
    type: path
    required: true
  prune:
    description:
      - Remove variables that an earlier run set and that are no longer in O(env).
      - With V(false) such names are left in place and stay remembered as managed.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP answer from the backend.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Reads the current variables and reports what would change; sends no update and writes no state.
  diff_mode:
    support: full
    description:
      - Shows variable names before and after; names whose value changes are marked C((value changed)).
        Values are never shown.
  idempotent:
    support: full
    description: Nothing is sent when the deployment already has the desired variables.
notes:
  - O(env) is treated as secret as a whole, so Ansible masks every occurrence of any of its values in
    the module's output; a very short value (such as C(1)) can mask parts of messages.
"""

EXAMPLES = r"""
- name: Convex runtime environment of the stack
  owlat.selfhost.convex_env:
    url: http://172.20.0.5:3210
    admin_key: "{{ admin_key.key }}"
    state_path: /etc/owlat/mystack/convex-env.managed.json
    env:
      SITE_URL: https://app.example.com
      EMAIL_PROVIDER: mta
      MTA_API_URL: http://mta:3100
      INSTANCE_SECRET: "{{ stack_secrets.secrets.INSTANCE_SECRET }}"
  no_log: true
"""

RETURN = r"""
added:
  description: Names that were (or, in check mode, would be) created.
  returned: success
  type: list
  elements: str
  sample: ["SITE_URL"]
updated:
  description: Names whose value was (or would be) changed.
  returned: success
  type: list
  elements: str
  sample: ["ALLOWED_ORIGINS"]
removed:
  description: Names that were (or would be) removed.
  returned: success
  type: list
  elements: str
  sample: []
managed:
  description: Names this module manages after the run (the content of O(state_path)).
  returned: success
  type: list
  elements: str
  sample: ["ALLOWED_ORIGINS", "SITE_URL"]
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._convex import (
    ENV_MAX_VARS,
    ENV_VALUE_MAX,
    ConvexClient,
    ConvexError,
    env_name_problem,
    normalize_value,
    plan_env,
)
from ansible_collections.owlat.selfhost.plugins.module_utils._files import read_text, write_private


class ConvexEnv:
    def __init__(self, module):
        self.module = module
        self.state_path = module.params["state_path"]
        self.client = ConvexClient(module.params["url"], module.params["admin_key"], module.params["timeout"])

    def desired(self):
        desired, errors = {}, []
        for name, value in sorted(self.module.params["env"].items()):
            problem = env_name_problem(name)
            if problem:
                errors.append(problem)
                continue
            try:
                value = normalize_value(value)
            except TypeError as exc:
                errors.append("%s: a value must be a string, number or boolean, not %s" % (name, exc))
                continue
            if value is not None and len(value.encode("utf-8")) > ENV_VALUE_MAX:
                errors.append("%s: the value is longer than %d bytes" % (name, ENV_VALUE_MAX))
                continue
            desired[name] = value
        if errors:
            self.module.fail_json(msg="env: " + "; ".join(errors))
        return desired

    def managed(self):
        text = read_text(self.state_path)
        if text is None or not text.strip():
            return [], text
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.module.fail_json(msg="%s must hold a JSON list of variable names; fix or remove it" % self.state_path)
        return names, text

    def run(self):
        desired = self.desired()
        managed, state_text = self.managed()
        try:
            current = self.client.list_env()
        except ConvexError as exc:
            self.module.fail_json(msg=str(exc))
        plan = plan_env(current, desired, managed, self.module.params["prune"])
        after = dict(current)
        for change in plan.changes:
            if change["value"] is None:
                after.pop(change["name"], None)
            else:
                after[change["name"]] = change["value"]
        if len(after) > ENV_MAX_VARS:
            self.module.fail_json(
                msg="the deployment would have %d variables; Convex allows at most %d" % (len(after), ENV_MAX_VARS)
            )
        # Compared as data: a state file with the same names in another layout is left alone.
        state_changed = state_text is None or not state_text.strip() or sorted(set(managed)) != plan.managed
        result = dict(
            changed=plan.needed or state_changed,
            added=plan.added,
            updated=plan.updated,
            removed=plan.removed,
            managed=plan.managed,
        )
        if self.module._diff:
            result["diff"] = dict(
                before="".join("%s\n" % n for n in sorted(current)),
                after="".join(
                    "%s%s\n" % (n, " (value changed)" if n in plan.updated else "") for n in sorted(after)
                ),
                before_header="%s deployment env (names only)" % self.client.url,
                after_header="%s deployment env (names only)" % self.client.url,
            )
        if self.module.check_mode:
            return result
        if plan.needed:
            try:
                self.client.update_env(plan.changes)
            except ConvexError as exc:
                self.module.fail_json(msg=str(exc))
        if state_changed:
            write_private(self.state_path, json.dumps(plan.managed, indent=2) + "\n", 0o600)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            admin_key=dict(type="str", required=True, no_log=True),
            env=dict(type="dict", required=True, no_log=True),
            state_path=dict(type="path", required=True),
            prune=dict(type="bool", default=True),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**ConvexEnv(module).run())


if __name__ == "__main__":
    main()
