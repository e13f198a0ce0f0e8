"""What a user of a lab stack sees from outside its host: HTTPS with SNI through Caddy, the SMTP banner."""

import json
import socket
import subprocess


def https_get(address, ctx, hostname, path, timeout=10):
    """GET path on address:443 as hostname (SNI and Host); returns (status, body), chunked bodies decoded."""
    with socket.create_connection((address, 443), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return status, body.decode()


def smtp_banner(address, port=25):
    with socket.create_connection((address, port), timeout=10) as s:
        return s.recv(512).decode()


def lab_address(name):
    """A lab host's address on the lab network (the controller reaches it there)."""
    return subprocess.check_output(
        ["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "owlat-lab").IPAddress}}', name], text=True
    ).strip()


def started(host):
    """Container name -> StartedAt, for every container of a testinfra host."""
    names = host.check_output("docker ps -aq").split()
    rows = json.loads(host.check_output("docker inspect " + " ".join(names))) if names else []
    return {row["Name"].lstrip("/"): row["State"]["StartedAt"] for row in rows}
