#!/usr/bin/env bash
# Build the execution environment's context (default) or image (--image NAME[:TAG]).
#   extensions/ee/build.sh                       -> extensions/ee/context/ (Containerfile + _build/)
#   extensions/ee/build.sh --image REG/owlat-ee:0.1.0 [--runtime docker|podman] [--push]
# The context needs only Python (ansible-core, ansible-builder); the image build needs a container engine
# and network access to quay.io, PyPI and Galaxy (or their mirrors); pushing needs a registry login.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="" runtime="${CONTAINER_RUNTIME:-podman}" push=false
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image="$2"; shift 2 ;;
    --runtime) runtime="$2"; shift 2 ;;
    --push) push=true; shift ;;
    *) echo "usage: $0 [--image NAME:TAG] [--runtime docker|podman] [--push]" >&2; exit 2 ;;
  esac
done
mkdir -p "$here/_collections"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The collection as a release would ship it (galaxy.yml build_ignore applies).
ansible-galaxy collection build --force --output-path "$tmp" "$root" >/dev/null
mv "$tmp"/owlat-selfhost-*.tar.gz "$here/_collections/owlat-selfhost.tar.gz"
cd "$here"
if [ -z "$image" ]; then
  ansible-builder create --file execution-environment.yml --context context --output-filename Containerfile -v 2
else
  ansible-builder build --file execution-environment.yml --context context --tag "$image" \
    --container-runtime "$runtime" -v 2
  if $push; then "$runtime" push "$image"; fi
fi
