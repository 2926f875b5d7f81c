#!/usr/bin/env bash
# `ansible-test sanity`, offline. ansible-test wants the collection under a path ending in
# ansible_collections/<ns>/<name> and refuses a symlinked one, so the tracked files are copied
# to a temporary tree (removed afterwards). `--local` uses this venv's packages instead of
# bootstrapping fresh venvs from the internet (which fails here). The few tests that still make a
# venv of their own (pep8, yamllint, ...) get pip from scripts/get_pip_offline.py, put where
# ansible-test caches its get-pip download; their packages come from PyPI like ours.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS=(compile validate-modules ansible-doc action-plugin-docs pep8 shebang no-assert
       line-endings empty-init runtime-metadata use-argspec-type-path replace-urlopen
       no-smart-quotes no-get-exception use-compat-six no-illegal-filenames)
pip_version="$(python -c 'from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig())["pip"])' 2>/dev/null || echo 24.2)"
mkdir -p ~/.ansible/test/cache
cp "$ROOT/scripts/get_pip_offline.py" ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/stagegate/release"
mkdir -p "$dest"
(cd "$ROOT" && git ls-files -co --exclude-standard | grep -v '^collections/' \
  | while read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done | tar -cf - -T -) | tar -C "$dest" -xf -
cd "$dest"
git init -q . && git add -A && git -c user.email=ci@stagegate -c user.name=ci commit -qm sanity
args=()
for t in "${TESTS[@]}"; do args+=(--test "$t"); done
ansible-test sanity --local --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --color no "${args[@]}" 2>&1 | grep -v 'locale "C.UTF-8"'
exit "${PIPESTATUS[0]}"
