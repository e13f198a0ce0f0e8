"""dns.yml on an inventory of two hosts (reached locally): one with one stack, one with two stacks on their own
addresses. The records come from the settings the roles deploy with (the role defaults included)."""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
  children:
    owlat_hosts:
      hosts:
        web1:
          owlat_stack_name: solo
          owlat_stack_app_hostname: app.solo.example
          owlat_stack_api_hostname: api.solo.example
          owlat_stack_actions_hostname: actions.solo.example
          owlat_stack_email_domain: solo.example
          owlat_stack_public_address: 198.51.100.7
          owlat_stack_sending_addresses: [198.51.100.7]
        web2:
          owlat_stack_public_address: 203.0.113.10
          owlat_stacks:
            - owlat_stack_name: north
              owlat_stack_app_hostname: app.north.example
              owlat_stack_api_hostname: api.north.example
              owlat_stack_actions_hostname: actions.north.example
              owlat_stack_email_domain: north.example
              owlat_stack_sending_addresses: [203.0.113.11]
              owlat_app_mta_smtp_address: 203.0.113.11
            - owlat_stack_name: south
              owlat_stack_app_hostname: app.south.example
              owlat_stack_api_hostname: api.south.example
              owlat_stack_actions_hostname: actions.south.example
              owlat_stack_email_domain: south.example
              owlat_stack_ehlo_hostname: mx.south.example
              owlat_stack_sending_addresses: [203.0.113.12]
              owlat_app_mta_smtp_address: 203.0.113.12
"""


def test_dns_yml_prints_and_writes_every_stacks_records(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY.format(python=sys.executable))
    out_json = tmp_path / "records.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="False")
    playbook = pathlib.Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run([str(playbook), "-i", str(inventory), "-e", f"owlat_dns_json={out_json}", "owlat.selfhost.dns"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stacks = {(s["stack"], s["host"]): {(r["code"], r["name"]): r["value"] for r in s["records"]}
              for s in json.loads(out_json.read_text())}
    assert sorted(stacks) == [("north", "web2"), ("solo", "web1"), ("south", "web2")]
    north, south = stacks["north", "web2"], stacks["south", "web2"]
    # The host's public address for the hostnames; each stack's own sending address, EHLO name and return path.
    assert north["A1", "app.north.example."] == "203.0.113.10"
    assert north["P1", "11.113.0.203.in-addr.arpa."] == "mail.north.example."
    assert north["M1", "bounces.north.example."] == "10 mail.north.example."
    assert south["A2", "mx.south.example."] == "203.0.113.12"
    assert south["S2", "bounces.south.example."] == "v=spf1 ip4:203.0.113.12 ~all"
    assert stacks["solo", "web1"]["S1", "solo.example."] == "v=spf1 ip4:198.51.100.7 -all"
    # The printed zone lines, per stack.
    assert "; stack south on web2" in done.stdout
    # (the callback prints the message as a block, or as one JSON string with its quotes escaped)
    assert re.search(r'bounces\.south\.example\. 3600 IN TXT \\?"v=spf1 ip4:203\.0\.113\.12 ~all\\?"', done.stdout), done.stdout
