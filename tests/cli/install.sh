#!/usr/bin/env bash
# Upstream's own client for the tests: the `convex` CLI from the npm registry, at the version Owlat's
# convex-deploy image pins (docker/convex-deploy.Dockerfile, CONVEX_CLI_VERSION=1.43.0, owlat@c2b6921) and at
# the newest release. 1.49 needs Node >= 22 (its package.json engines); Debian 12 has Node 20, so Node 22
# comes from the npm registry's node-linux-<arch> package. Installs into .tools/ (cached, idempotent).
#   tests/cli/install.sh            -> prints nothing; .tools/convex-cli/<version>/run is the entry point
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$root/.tools"
versions_file="$root/tests/cli/versions"
node22_version=22.23.5
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "unsupported arch $(uname -m)" >&2; exit 1 ;; esac
command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
mkdir -p "$tools"
node22="$tools/node-$node22_version/node_modules/node-linux-$arch/bin/node"
if [ ! -x "$node22" ]; then
  mkdir -p "$tools/node-$node22_version"
  (cd "$tools/node-$node22_version" && npm init -y >/dev/null && npm install -q --no-audit --no-fund \
     "node-linux-$arch@$node22_version" >/dev/null)
fi
while read -r version _; do
  case "$version" in ''|\#*) continue ;; esac
  dir="$tools/convex-cli/$version"
  if [ ! -f "$dir/node_modules/convex/package.json" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm init -y >/dev/null && npm install -q --no-audit --no-fund "convex@$version" >/dev/null)
  fi
  node=node
  need=$(sed -n 's/.*"node": *">=\([0-9]*\).*/\1/p' "$dir/node_modules/convex/package.json" | head -1)
  have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ -n "$need" ] && [ "$have" -lt "$need" ] && node="$node22"
  printf '#!/bin/sh\nexec "%s" "%s/node_modules/convex/bin/main.js" "$@"\n' "$node" "$dir" > "$dir/run"
  chmod +x "$dir/run"
done < "$versions_file"
