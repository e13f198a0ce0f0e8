#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/owlat/selfhost (a real path, not a link):
# run it on a copy of the files git tracks (plus new untracked ones), as a built collection would hold them.
# OWLAT_SANITY_VENV: the venv whose ansible-test and Python run it (default .venv; the matrix passes each leg's);
# OWLAT_SANITY_WORK: the copy's parent (one per leg, so legs can run side by side).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${OWLAT_SANITY_VENV:-$root/.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
work="${OWLAT_SANITY_WORK:-${TMPDIR:-/tmp}/owlat-sanity}/ansible_collections/owlat/selfhost"
rm -rf "$work" && mkdir -p "$work"
cd "$root"
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$work/" 2>/dev/null || true
cd "$work"
git init -q . && git add -A >/dev/null
export PATH="$venv/bin:$PATH"
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
core=$("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(".".join(v.split(".")[:2]))')
echo "sanity: ansible-core $core, Python $pyver ($venv)"
[ -e "tests/sanity/ignore-$core.txt" ] || { echo "sanity: tests/sanity/ignore-$core.txt is missing" >&2; exit 1; }
# The pip version ansible-test bootstraps (get_venv_packages: pip='X.Y' in every ansible-core 2.17-2.21).
at=$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
pipver=$(grep -ho "pip='[0-9.]*'" "$at/_internal/python_requirements.py" | head -1 | tr -d "pi='")
[ -n "$pipver" ] || { echo "sanity: cannot tell which pip ansible-test bootstraps" >&2; exit 1; }
cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
mkdir -p "$(dirname "$cache")" && cp "$root/tests/sanity/get_pip.py" "$cache"
ansible-test sanity --python "$pyver" --requirements --color no "$@" plugins/
