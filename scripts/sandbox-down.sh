#!/usr/bin/env bash
# Removes the demo sandbox stack: its containers and volumes (database included), its images
# (every release tag), and the sandbox environment's state dir (checkout, manifests, ledger).
# The names come from inventory/sandbox (scripts/sandbox-settings.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$ROOT/.venv/bin/python" "$ROOT/scripts/sandbox-settings.py")"
PROJECT="$project" IMAGE_PREFIX="$image_prefix" STATE_DIR="$state_dir"

# By project name alone: works whatever release (compose file) is checked out, or none.
(cd / && docker compose --project-name "$PROJECT" down --volumes --remove-orphans --timeout 5)
mapfile -t images < <(docker image ls --filter "reference=$IMAGE_PREFIX/*" --format '{{.Repository}}:{{.Tag}}')
if [ "${#images[@]}" -gt 0 ]; then
  docker image rm "${images[@]}" >/dev/null
  echo "sandbox-down: removed ${#images[@]} image tag(s) $IMAGE_PREFIX/*"
fi
rm -rf "$STATE_DIR"
echo "sandbox-down: removed $STATE_DIR"
