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

# Deploy hosts run the modules with their own Python, 3.9 at the oldest (README "Deploy hosts").
# ansible-test cannot fetch a 3.9 here, so the equivalent of its compile + import tests runs in the
# Debian 11 image `make setup` builds: every plugin file compiled, every module and module_utils
# file imported with nothing but the standard library, ansible-core's module_utils (what a
# module's payload carries) and this collection on the path.
py39_image="${STAGEGATE_PY39_IMAGE:-stagegate/python39:bullseye}"
if docker image inspect "$py39_image" >/dev/null 2>&1; then
  mkdir -p "$work/host/ansible"
  cp -r "$(python -c 'import ansible.module_utils, os; print(os.path.dirname(ansible.module_utils.__file__))')" \
    "$work/host/ansible/module_utils"
  touch "$work/host/ansible/__init__.py"
  docker run --rm --network none -v "$work/ansible_collections:/c/ansible_collections:ro" \
    -v "$work/host:/a:ro" -v "$ROOT/scripts/deploy_host_import_check.py:/check.py:ro" \
    "$py39_image" python3 -I -B /check.py /c /a
else
  echo "sanity: $py39_image is missing (make setup builds it): the Python 3.9 import test cannot run" >&2
  exit 1
fi

cd "$dest"
git init -q . && git add -A && git -c user.email=ci@stagegate -c user.name=ci commit -qm sanity
args=()
for t in "${TESTS[@]}"; do args+=(--test "$t"); done
ansible-test sanity --local --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --color no "${args[@]}" 2>&1 | grep -v 'locale "C.UTF-8"'
exit "${PIPESTATUS[0]}"
