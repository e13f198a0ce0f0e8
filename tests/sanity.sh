#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/owlat/selfhost (a real path, not a link):
# run it on a copy of the files git tracks (plus new untracked ones), as a built collection would hold them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${TMPDIR:-/tmp}/owlat-sanity/ansible_collections/owlat/selfhost"
rm -rf "$work" && mkdir -p "$work"
cd "$root"
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$work/" 2>/dev/null || true
cd "$work"
git init -q . && git add -A >/dev/null
export PATH="$root/.venv/bin:$PATH"
pipver=$(python -c 'from ansible_test._internal.python_requirements import PIP_VERSION as v; print(v)' 2>/dev/null || echo 24.2)
cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
mkdir -p "$(dirname "$cache")" && cp "$root/tests/sanity/get_pip.py" "$cache"
ansible-test sanity --python 3.11 --requirements --color no "$@" plugins/
