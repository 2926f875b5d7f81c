#!/usr/bin/env bash
# The execution environment's cost: build time and image sizes, measured by building it again.
#   bash bench/ee_build.sh [--base]
# Rebuilds the EE with the input-hash cache bypassed (STAGEGATE_EE_FORCE=1 scripts/ee.sh), and
# with --base also its debootstrap base image first (removed, then made again). Prints the
# seconds of each build, the sizes of the base and the EE image, and the EE's container start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="stagegate/ee-base:bookworm"
REPO="${STAGEGATE_EE_IMAGE:-stagegate/ee}"

mb() { echo $(( $(docker image inspect -f '{{.Size}}' "$1") / 1000000 )); }

if [ "${1:-}" = "--base" ]; then
  docker image rm "$BASE" >/dev/null 2>&1 || true
fi
start=$(date +%s.%N)
STAGEGATE_EE_FORCE=1 bash "$ROOT/scripts/ee.sh"
total=$(echo "$(date +%s.%N) - $start" | bc)
run_start=$(date +%s.%N)
docker run --rm "$REPO:latest" true
run=$(echo "$(date +%s.%N) - $run_start" | bc)
printf 'ee bench: make ee (cache bypassed%s) %.1f s; base %s MB; EE %s MB; container start %.2f s\n' \
  "${1:+, base rebuilt}" "$total" "$(mb "$BASE")" "$(mb "$REPO:latest")" "$run"
