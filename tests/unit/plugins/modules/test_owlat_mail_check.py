"""owlat_mail_check: the checks of this host's stacks and the probes of another host's, each result saying which stack,
which host it runs on and where it was checked from."""

import socket
import threading

from ansible_collections.owlat.selfhost.plugins.module_utils._dns import records
from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Answer
from ansible_collections.owlat.selfhost.plugins.modules.owlat_mail_check import run

STACK = {"stack": "north", "app_hostname": "app.north.test", "api_hostname": "api.north.test",
         "actions_hostname": "actions.north.test", "web_address": "192.0.2.10", "email_domain": "north.test",
         "ehlo_hostname": "mail.north.test", "return_path_domain": "bounces.north.test", "sending_addresses": ["127.0.0.1"]}


class Zone:
    def __init__(self, zone):
        self.zone = zone

    def query(self, name, rtype):
        values = self.zone.get((name.rstrip(".").lower() + ".", rtype))
        return Answer("NOERROR" if values else "NXDOMAIN", list(values or []), "")


def listener():
    """A port-25-like listener on 127.0.0.1 that greets every connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"220 mail.north.test ESMTP\r\n")
                reader = conn.makefile("rb")
                for line in reader:
                    if line.upper().startswith(b"EHLO"):
                        conn.sendall(b"250 mail.north.test\r\n")
                    elif line.upper().startswith(b"QUIT"):
                        conn.sendall(b"221 bye\r\n")
                        break

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_own_stacks_and_probes_of_another_host():
    server = listener()
    port = server.getsockname()[1]
    zone = {}
    for record in records(STACK):
        if record["value"] is not None:
            zone.setdefault((record["name"], record["type"]), []).append(record["value"])
    params = dict(stacks=[{"stack": "north", "host": "mx1", "records": records(STACK), "source": None}],
                  probes=[{"stack": "south", "host": "mx2", "domain": "bounces.north.test", "ehlo": "mail.north.test"}],
                  outbound_target="127.0.0.1:%d" % port, timeout=3, checker="mx2")
    found = run(params, Zone(zone))
    server.close()
    assert {(r["stack"], r["host"], r["from"]) for r in found} == {("north", "mx1", "mx2"), ("south", "mx2", "mx2")}
    north = [r for r in found if r["stack"] == "north"]
    assert [r["code"] for r in north] == ["A1", "A1", "A1", "A2", "P1", "M1", "S2", "S1", "Q1", "K1", "smtp-out"]
    assert all(r["status"] == "OK" for r in north if r["code"] != "K1"), north
    assert "connected: 220 mail.north.test" in north[-1]["found"]
    # The probe connects to port 25 of the MX's address: nobody listens there on this machine (or something else does).
    south = [r for r in found if r["stack"] == "south"]
    assert len(south) == 1 and south[0]["code"] == "smtp-in" and south[0]["name"].startswith("127.0.0.1:25 ")
