#!/usr/bin/env bash
# Build the five TEST DOUBLE images (not the real products) from tests/doubles/.
#   tests/doubles/build.sh [PREFIX]        default PREFIX: owlat-double-dev
# Environment: BASE (default: newest local owlat-lab/base-rootfs image), OWLAT_VERSION (0.4.4),
# CONVEX_REVISION (c51b14b...), DOUBLE_FAIL_HEALTH (false), TAG_SUFFIX (appended to every tag).
set -euo pipefail
ctx="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-owlat-double-dev}"
base="${BASE:-$(docker images --format '{{.Repository}}:{{.Tag}}' 'owlat-lab/base-rootfs' | head -1)}"
[ -n "$base" ] || { echo "no BASE image (owlat-lab/base-rootfs not built yet)" >&2; exit 1; }
owlat="${OWLAT_VERSION:-0.4.4}"
convex="${CONVEX_REVISION:-c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef}"
fail="${DOUBLE_FAIL_HEALTH:-false}"
for name in convex-backend convex-dashboard web mta convex-deploy; do
  case "$name" in convex-*) version="$convex" ;; *) version="$owlat" ;; esac
  [ "$name" = convex-deploy ] && version="$owlat"
  tag="$prefix/$name:$version${TAG_SUFFIX:-}"
  echo "building $tag from $base" >&2
  docker build -q -f "$ctx/$name/Dockerfile" --build-arg BASE="$base" --build-arg DOUBLE_VERSION="$version" \
    --build-arg DOUBLE_FAIL_HEALTH="$fail" -t "$tag" "$ctx" >/dev/null
  echo "$tag"
done
