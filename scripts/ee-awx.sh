#!/usr/bin/env bash
# Installs the awx.awx collection (the AWX modules awx/configure.yml uses) without a Galaxy
# server: it ships inside the PyPI `ansible` package, so the wheel is downloaded (not
# installed) and only ansible_collections/awx/awx is unpacked into DEST:
#   bash scripts/ee-awx.sh [DEST]     (default: the checkout's .ansible/collections, the
#                                      project cache ansible-lint reads; gitignored)
# A second run prints nothing and changes nothing. An admin with Galaxy runs
# `ansible-galaxy collection install awx.awx` instead (docs/awx.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.ansible/collections}"
PY="${STAGEGATE_VENV:-$ROOT/.venv}/bin/python"
[ -f "$DEST/ansible_collections/awx/awx/MANIFEST.json" ] && exit 0
start=$(date +%s)
printf 'ee-awx: awx.awx from the PyPI ansible package into %s ...' "$DEST"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps -d "$tmp" 'ansible>=11,<13' >"$tmp/pip.log" 2>&1 \
  || { echo; cat "$tmp/pip.log" >&2; exit 1; }
"$PY" - "$tmp" "$DEST" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("ansible-*.whl"))
prefix = "ansible_collections/awx/awx/"
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(sys.argv[2], [n for n in archive.namelist() if n.startswith(prefix)])
PY
printf ' done (%s s)\n' "$(( $(date +%s) - start ))"
