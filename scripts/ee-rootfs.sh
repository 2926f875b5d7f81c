#!/usr/bin/env bash
# Makes a Debian bookworm image offline from debootstrap (no container registry), the way
# scripts/setup.sh makes stagegate/base:bookworm, for the execution environment's base image
# and the test deploy host:
#   bash scripts/ee-rootfs.sh IMAGE PACKAGES [docker-import --change ...]...
# PACKAGES is debootstrap's comma-separated --include list. The image is labelled with it and
# left alone when the label already matches (a second run prints nothing and changes nothing).
# The mirror is the one apt already uses (STAGEGATE_DEBIAN_MIRROR overrides it).
set -euo pipefail
image="$1" packages="$2"
shift 2
log_dir="${STAGEGATE_STATE_DIR:-/var/tmp/stagegate}"
mkdir -p "$log_dir"

label="$(docker image inspect -f '{{ index .Config.Labels "stagegate.packages" }}' "$image" 2>/dev/null || true)"
[ "$label" = "$packages" ] && exit 0

# The mirror apt already uses: scripts/setup.sh's apt_mirror, read from there (one place).
eval "$(sed -n '/^apt_mirror() {/,/^}/p' "$(dirname "${BASH_SOURCE[0]}")/setup.sh")"
mirror="${STAGEGATE_DEBIAN_MIRROR:-$(apt_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

start=$(date +%s)
printf 'ee-rootfs: %s (debootstrap %s) ...' "$image" "$packages"
dir="$(mktemp -d /var/tmp/stagegate-rootfs.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase --include="$packages" bookworm "$dir" "$mirror" \
  >"$log_dir/debootstrap-$(echo "$image" | tr '/:' '__').log" 2>&1 \
  || { echo; echo "ee-rootfs: debootstrap failed, see $log_dir/debootstrap-*.log" >&2; exit 1; }
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
changes=(--change "LABEL stagegate.packages=$packages" --change 'ENV LANG=C.UTF-8'
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
tar -C "$dir" -c . | docker import "${changes[@]}" "$@" - "$image" >/dev/null
printf ' done (%s s)\n' "$(( $(date +%s) - start ))"
