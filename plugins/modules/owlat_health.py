#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_health
short_description: Wait until every service of an Owlat stack passes its real health check
version_added: 0.1.0
description:
  - Runs every check concurrently and retries each one until it passes or its O(checks[].timeout) has
    passed. Returns a per-service table; fails naming every service that did not become healthy, with
    its last answer.
  - Checks look at what the service answers, not only at an open port. V(http) compares the status,
    and optionally fields of a JSON body and a substring (the Owlat MTA answers C(/health) with HTTP 200
    even when degraded, so its body must be parsed). V(tcp_banner) reads the first line a server sends
    (an SMTP greeting). V(redis) sends C(AUTH) and C(PING) and expects C(+PONG). V(clamd) sends
    C(zPING) and expects C(PONG).
  - Changes nothing.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  checks:
    description: The checks to run.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Service name shown in the results.
        type: str
        required: true
      kind:
        description: What to probe.
        type: str
        choices: [http, tcp_banner, redis, clamd]
        default: http
      url:
        description: URL to request. Required for V(http).
        type: str
      method:
        description: HTTP method.
        type: str
        default: GET
      status:
        description: Status codes that count as healthy.
        type: list
        elements: int
        default: [200]
      json:
        description:
          - Expected values in a JSON body, by dotted path (C(worker.alive); list items by index,
            C(items.0.state)). Types count (C(true) is not C(1)).
        type: dict
      contains:
        description: A substring the body must contain.
        type: str
      headers:
        description: Request headers. Treated as secret (they may carry credentials).
        type: dict
      connect_to:
        description:
          - C(host:port) to dial instead of the URL's host and port (C([address]:port) for IPv6). The
            URL's host name is still sent as C(Host) and used for TLS SNI and certificate checks, so
            C(https://app.example.com) can be probed through the local reverse proxy before DNS exists.
        type: str
      ca_path:
        description: PEM file with the CA certificates to trust for https, instead of the system ones.
        type: path
      validate_certs:
        description: Verify the server's certificate and host name for https.
        type: bool
        default: true
      host:
        description: Address to connect to. Required for V(tcp_banner), V(redis) and V(clamd).
        type: str
      port:
        description: TCP port. Defaults to 25 for V(tcp_banner), 6379 for V(redis), 3310 for V(clamd).
        type: int
      expect:
        description:
          - For V(tcp_banner), a regular expression searched in the first line (for example C(^220 )).
            Without it, any non-empty first line passes.
        type: str
      password:
        description: For V(redis), the password sent with C(AUTH). Without it only C(PING) is sent.
        type: str
      timeout:
        description: Seconds to keep trying this check.
        type: float
        default: 120
      hint:
        description: Text appended to the failure message of this check (for example C(see docker logs mystack-mta)).
        type: str
  interval:
    description: Seconds to wait between two tries of one check.
    type: float
    default: 2
extends_documentation_fragment:
  - owlat.selfhost.attributes.read_only
notes:
  - HTTP proxy environment variables are ignored; redirects are not followed.
  - Each single try waits at most 10 seconds for an answer.
"""

EXAMPLES = r"""
- name: Wait for the stack
  owlat.selfhost.owlat_health:
    checks:
      - name: convex
        url: http://172.20.0.5:3210/version
      - name: mta
        url: http://172.20.0.7:3100/health
        json:
          redis: connected
          worker.alive: true
        hint: "see: docker logs mystack-mta"
      - name: smtp
        kind: tcp_banner
        host: 127.0.0.1
        port: 25
        expect: "^220 "
      - name: redis
        kind: redis
        host: 172.20.0.4
        password: "{{ stack_secrets.secrets.REDIS_PASSWORD }}"
        timeout: 60
      - name: clamav
        kind: clamd
        host: 172.20.0.8
        timeout: 900
      - name: app (through Caddy)
        url: https://app.example.com/api/instance-info
        connect_to: 127.0.0.1:443
        ca_path: /etc/owlat/mystack/lab-ca.pem
  register: health

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ health.table }}"
"""

RETURN = r"""
services:
  description: One entry per check, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      type: str
    healthy:
      description: Whether the check passed in time.
      type: bool
    seconds:
      description: Seconds from the start until it passed (or until it was given up).
      type: float
    last:
      description: The last answer, at most 300 characters (status and body excerpt, banner, or the connection error).
      type: str
  sample: [{"name": "convex", "healthy": true, "seconds": 0.4, "last": "HTTP 200: unknown"}]
table:
  description: The same as a text table.
  returned: always
  type: str
  sample: "SERVICE  HEALTHY  SECONDS  LAST ANSWER\nconvex   yes      0.4      HTTP 200: unknown\n"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._health import (
    check_problem,
    failure_message,
    render_table,
    run_checks,
)


class Health:
    def __init__(self, module):
        self.module = module
        self.checks = module.params["checks"]

    def run(self):
        problems = [p for p in (check_problem(c) for c in self.checks) if p]
        if problems:
            self.module.fail_json(msg="checks: " + "; ".join(problems))
        services = run_checks(self.checks, self.module.params["interval"])
        result = dict(changed=False, services=services, table=render_table(services))
        if not all(s["healthy"] for s in services):
            self.module.fail_json(msg=failure_message(services, self.checks), **result)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    kind=dict(type="str", choices=["http", "tcp_banner", "redis", "clamd"], default="http"),
                    url=dict(type="str"),
                    method=dict(type="str", default="GET"),
                    status=dict(type="list", elements="int", default=[200]),
                    json=dict(type="dict"),
                    contains=dict(type="str"),
                    headers=dict(type="dict", no_log=True),
                    connect_to=dict(type="str"),
                    ca_path=dict(type="path"),
                    validate_certs=dict(type="bool", default=True),
                    host=dict(type="str"),
                    port=dict(type="int"),
                    expect=dict(type="str"),
                    password=dict(type="str", no_log=True),
                    timeout=dict(type="float", default=120),
                    hint=dict(type="str"),
                ),
                required_if=[
                    ("kind", "http", ["url"]),
                    ("kind", "tcp_banner", ["host"]),
                    ("kind", "redis", ["host"]),
                    ("kind", "clamd", ["host"]),
                ],
            ),
            interval=dict(type="float", default=2),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Health(module).run())


if __name__ == "__main__":
    main()
