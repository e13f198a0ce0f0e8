#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: convex_admin_key
short_description: Mint the Convex admin key once, verify a stored key, re-mint only when it is refused
version_added: 0.1.0
description:
  - Keeps the admin key of a self-hosted Convex backend in a root-only file on the managed host, as the
    single line C(CONVEX_SELF_HOSTED_ADMIN_KEY=<key>), so the file also serves as a Docker env file (for
    example for the one-shot functions deploy).
  - A stored key is checked with C(GET /api/check_admin_key). A valid key is kept (every minted key
    stays valid until the backend's C(INSTANCE_SECRET) changes, so minting again would only add keys).
  - When the file is missing, does not hold a key, or the backend refuses the stored key (HTTP 401,
    for example after C(INSTANCE_SECRET) changed), a new key is minted by running
    C(./generate_admin_key.sh) in the backend container with C(docker exec), checked against the
    backend, and only then written.
  - The Docker CLI is used (not the Docker SDK or the controller) so that the key travels from the
    container straight into the root-only file on the same host, without passing through the
    controller first and without extra Python dependencies.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  container:
    description: Name (or ID) of the running Convex backend container.
    type: str
    required: true
  url:
    description:
      - Base URL of the backend API (port 3210) as reachable from the managed host, for example
        C(http://172.20.0.5:3210).
    type: str
    required: true
  path:
    description: File holding the key (mode C(0600); missing parent directories are created C(0700)).
    type: path
    required: true
  timeout:
    description: Seconds to wait for each HTTP answer from the backend.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description:
      - Never mints and never writes. A stored key is still checked (a read-only request);
        RV(ignore:changed) is true when a real run would mint.
      - When the backend cannot be reached in check mode (it may not have been started yet), the module
        warns and reports no change instead of failing.
  diff_mode:
    support: none
    description: The key is a secret; no diff is shown.
  idempotent:
    support: full
    description: A stored key that the backend accepts is kept; nothing is minted or written.
requirements:
  - The C(docker) CLI on the managed host.
notes:
  - The module returns the key in RV(key). Run it with C(no_log) set on the task.
"""

EXAMPLES = r"""
- name: Admin key of the Convex backend
  owlat.selfhost.convex_admin_key:
    container: mystack-convex
    url: http://172.20.0.5:3210
    path: /etc/owlat/mystack/convex-admin-key.env
  register: admin_key
  no_log: true
"""

RETURN = r"""
key:
  description: The valid admin key (stored or freshly minted). Not returned in check mode when a mint would be needed.
  returned: when a valid key is known
  type: str
  sample: convex-self-hosted|01a2b3...
minted:
  description: Whether this run minted (and stored) a new key.
  returned: always
  type: bool
  sample: false
reason:
  description: Why the key was kept or minted (C(stored key is valid), C(no key stored in ...), ...).
  returned: always
  type: str
  sample: stored key is valid
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._convex import (
    ADMIN_KEY_RE,
    ConvexClient,
    ConvexError,
    admin_key_from_output,
    redact_admin_keys,
)
from ansible_collections.owlat.selfhost.plugins.module_utils._files import (
    EnvFile,
    EnvFileError,
    fix_mode,
    read_text,
    write_private,
)

VAR = "CONVEX_SELF_HOSTED_ADMIN_KEY"


class AdminKey:
    def __init__(self, module):
        self.module = module
        self.path = module.params["path"]
        self.container = module.params["container"]
        self.client = ConvexClient(module.params["url"], timeout=module.params["timeout"])

    def stored_key(self):
        """(key or None, reason when there is no usable key)."""
        text = read_text(self.path)
        if text is None:
            return None, "no key stored in %s" % self.path
        try:
            key = EnvFile(text).get(VAR)
        except EnvFileError:
            key = None
        if key is None or not ADMIN_KEY_RE.match(key.strip()):
            return None, "%s does not hold a %s=<admin key> line" % (self.path, VAR)
        return key.strip(), None

    def mint(self):
        docker = self.module.get_bin_path("docker", required=True)
        cmd = [docker, "exec", self.container, "./generate_admin_key.sh"]
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.module.fail_json(
                msg="docker exec %s ./generate_admin_key.sh failed (rc=%d): %s"
                % (self.container, rc, redact_admin_keys(err).strip()[-500:] or "no error output"),
                minted=False,
            )
        key = admin_key_from_output(out)
        if key is None:
            self.module.fail_json(
                msg="docker exec %s ./generate_admin_key.sh printed no admin key (expected <instance name>|<hex>"
                " as its last line of output)" % self.container,
                minted=False,
            )
        return key

    def check(self, key):
        try:
            return self.client.check_admin_key(key)
        except ConvexError as exc:
            if self.module.check_mode and exc.status is None:
                return None
            self.module.fail_json(msg=str(exc), minted=False)

    def run(self):
        key, reason = self.stored_key()
        if key is not None:
            valid = self.check(key)
            if valid is None:
                self.module.warn("check mode: the Convex backend at %s was not reachable; the stored key could not be checked" % self.client.url)
                return dict(changed=False, minted=False, reason="stored key could not be checked (backend unreachable in check mode)")
            if valid:
                changed = fix_mode(self.path, 0o600, self.module.check_mode)
                return dict(changed=changed, key=key, minted=False, reason="stored key is valid")
            reason = "the backend refused the stored key (did INSTANCE_SECRET change?)"
        if self.module.check_mode:
            return dict(changed=True, minted=False, reason="%s; a new key would be minted" % reason)

        new_key = self.mint()
        valid = self.check(new_key)
        if not valid:
            self.module.fail_json(
                msg="the backend at %s refused the key just minted in container %s; are the URL and the"
                " container the same backend?" % (self.client.url, self.container),
                minted=False,
            )
        write_private(self.path, "%s=%s\n" % (VAR, new_key), 0o600)
        return dict(changed=True, key=new_key, minted=True, reason="%s; minted a new key" % reason)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            container=dict(type="str", required=True),
            url=dict(type="str", required=True),
            path=dict(type="path", required=True),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**AdminKey(module).run())


if __name__ == "__main__":
    main()
