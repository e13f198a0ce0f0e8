#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_admin
short_description: Seed the first Owlat administrator, once
version_added: 0.1.0
description:
  - Calls Owlat's seed endpoint (C(POST /seed/admin) on the Convex HTTP actions port 3211) with the
    deployment's instance secret. The endpoint creates the first user only when there is no user yet,
    so the module is safe to repeat; an existing user means no change.
  - The password is hashed on the managed host exactly as Owlat expects (salt of 16 random bytes as 32
    lowercase hex characters; scrypt N=16384, r=16, p=1, 64-byte key over the NFKC-normalised password
    with the hex salt string as salt input; C(<saltHex>:<keyHex>)). A ready hash can be given instead.
  - Order matters. The Convex functions must be deployed and the deployment environment variable
    C(INSTANCE_SECRET) pushed (see M(owlat.selfhost.convex_env)) before the seed can succeed.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  url:
    description: Base URL of the Convex HTTP actions (port 3211), for example C(http://172.20.0.5:3211).
    type: str
    required: true
  instance_secret:
    description: The stack's C(INSTANCE_SECRET), sent as header C(X-Instance-Secret).
    type: str
    required: true
  email:
    description: E-mail address of the administrator.
    type: str
    required: true
  name:
    description: Display name of the administrator.
    type: str
    required: true
  password:
    description: The administrator's password; hashed on the managed host before it is sent.
    type: str
  password_hash:
    description: A ready hash in Owlat's format C(<32 hex salt>:<128 hex key>), instead of O(password).
    type: str
  timeout:
    description: Seconds to wait for the answer.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Sends nothing and reports no change; whether an administrator exists cannot be read without creating one.
  diff_mode:
    support: none
    description: Nothing to show.
  idempotent:
    support: full
    description: Once any user exists, the endpoint answers 409 and the module reports no change.
notes:
  - One of O(password) and O(password_hash) is required.
"""

EXAMPLES = r"""
- name: First administrator
  owlat.selfhost.owlat_admin:
    url: http://172.20.0.5:3211
    instance_secret: "{{ stack_secrets.secrets.INSTANCE_SECRET }}"
    email: admin@example.com
    name: Admin
    password: "{{ owlat_admin_password }}"
  no_log: true
"""

RETURN = r"""
created:
  description: Whether this run created the administrator.
  returned: always
  type: bool
  sample: true
user_id:
  description: ID of the created user.
  returned: when created
  type: str
  sample: k57d9a0v3a1x7r8y4m2n6p0q1s2t3u4v
status:
  description: HTTP status of the seed call.
  returned: when the call was made
  type: int
  sample: 201
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._http import HttpError, request, shorten
from ansible_collections.owlat.selfhost.plugins.module_utils._owlat import hash_password, is_password_hash


def server_message(response):
    """The message in an error body (JSON C(message)/C(error), or the text), on one line."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "errorMessage"):
            if isinstance(data.get(key), str) and data[key]:
                return shorten(data[key], 300)
    return response.excerpt(300) or "(empty body)"


class SeedAdmin:
    def __init__(self, module):
        self.module = module
        self.url = module.params["url"].rstrip("/") + "/seed/admin"

    def password_hash(self):
        given = self.module.params["password_hash"]
        if given is not None:
            if not is_password_hash(given):
                self.module.fail_json(
                    msg="password_hash is not in Owlat's format <32 lowercase hex salt>:<128 lowercase hex key>",
                    created=False,
                )
            return given
        if not self.module.params["password"]:
            self.module.fail_json(msg="one of password or password_hash must be set (and not empty)", created=False)
        return hash_password(self.module.params["password"])

    def run(self):
        password_hash = self.password_hash()
        if self.module.check_mode:
            return dict(changed=False, created=False, msg="check mode: the administrator seed was not attempted")
        body = dict(email=self.module.params["email"], name=self.module.params["name"], passwordHash=password_hash)
        try:
            response = request(
                self.url,
                method="POST",
                headers={"X-Instance-Secret": self.module.params["instance_secret"]},
                json_body=body,
                timeout=self.module.params["timeout"],
            )
        except (HttpError, ValueError) as exc:
            self.module.fail_json(msg="POST %s: %s" % (self.url, exc), created=False)
        status = response.status
        if status == 201:
            user_id = None
            try:
                data = response.json()
                user_id = data.get("userId") if isinstance(data, dict) else None
            except ValueError:
                pass
            return dict(changed=True, created=True, user_id=user_id, status=status)
        if status == 409:
            return dict(changed=False, created=False, status=status, msg="a user already exists; nothing seeded")
        if status == 401:
            msg = (
                "POST %s was refused (401): the deployment environment variable INSTANCE_SECRET is not set or"
                " does not match instance_secret; push the Convex environment (convex_env) with the stack's"
                " INSTANCE_SECRET first" % self.url
            )
        elif status == 400:
            msg = "POST %s was rejected (400): %s" % (self.url, server_message(response))
        elif status == 404:
            msg = "POST %s: 404 — HTTP actions not deployed yet (run the functions deploy first)" % self.url
        else:
            msg = "POST %s: unexpected HTTP %d: %s" % (self.url, status, server_message(response))
        self.module.fail_json(msg=msg, created=False, status=status)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            instance_secret=dict(type="str", required=True, no_log=True),
            email=dict(type="str", required=True),
            name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            password_hash=dict(type="str", no_log=True),
            timeout=dict(type="int", default=60),
        ),
        mutually_exclusive=[("password", "password_hash")],
        required_one_of=[("password", "password_hash")],
        supports_check_mode=True,
    )
    module.exit_json(**SeedAdmin(module).run())


if __name__ == "__main__":
    main()
