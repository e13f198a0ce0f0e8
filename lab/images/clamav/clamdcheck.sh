#!/usr/bin/python3
# Health check as in the upstream image: clamd answers PING with PONG.
import socket
import sys

try:
    with socket.create_connection(("127.0.0.1", 3310), timeout=5) as s:
        s.sendall(b"zPING\0")
        sys.exit(0 if s.recv(16).startswith(b"PONG") else 1)
except OSError:
    sys.exit(1)
