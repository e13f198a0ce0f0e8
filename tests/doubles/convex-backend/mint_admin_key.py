# TEST DOUBLE of convex-backend's admin key generator: follows contracts.md; not the real product.
"""Mint an admin key the way the backend double verifies it: key alone on stdout, label on stderr."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))

import adminkey  # noqa: E402


def main() -> int:
    data = os.environ.get("OWLAT_DOUBLE_DATA") or "/convex/data"
    cred_dir = os.path.join(data, "credentials")
    name, secret, _, secret_src = adminkey.read_credentials(cred_dir)
    name = name or adminkey.DEFAULT_INSTANCE_NAME
    if not secret:
        sys.stderr.write(f"error: no INSTANCE_SECRET in the environment and no {cred_dir}/instance_secret: "
                         "start the backend once first\n")
        return 1
    try:
        adminkey.check_name(name)
        key = adminkey.mint(name, secret)
    except adminkey.CredentialError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stderr.write("Admin key:\n")
    sys.stderr.flush()
    sys.stdout.write(key + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
