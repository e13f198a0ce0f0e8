#!/bin/sh
# TEST DOUBLE of convex-backend's generate_admin_key.sh: follows contracts.md; not the real product.
# Prints "Admin key:" on stderr and the key alone on stdout. Reads INSTANCE_NAME / INSTANCE_SECRET from
# the environment, else from the credential files the backend writes (like the backend itself).
set -e
here=$(cd "$(dirname "$0")" && pwd)
py="$here/mint_admin_key.py"
[ -f "$py" ] || py=/opt/double/convex-backend/mint_admin_key.py
exec python3 "$py" "$@"
