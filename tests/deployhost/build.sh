#!/usr/bin/env bash
# Builds the test deploy host image offline and prints its name:
#   bash tests/deployhost/build.sh [IMAGE]     (default stagegate/deployhost:test)
# The Debian part comes from debootstrap (scripts/ee-rootfs.sh, cached by its package list);
# the Docker CLI and the Compose v2 plugin are this machine's static binaries.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="${1:-stagegate/deployhost:test}"
base="stagegate/deployhost-base:bookworm"
packages="python3,python3-psycopg,python3-docker,python3-jmespath,openssh-server,git,ca-certificates,procps"
state="${STAGEGATE_STATE_DIR:-/var/tmp/stagegate}"
mkdir -p "$state"
exec 9>"$state/deployhost.lock"
flock 9
bash "$root/scripts/ee-rootfs.sh" "$base" "$packages" >&2
ctx="$(mktemp -d /var/tmp/stagegate-deployhost.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/sshd.conf" "$ctx/"
cp "$(readlink -f "$(command -v docker)")" "$ctx/docker"
compose="$(docker info --format '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}')"
cp "$(readlink -f "$compose")" "$ctx/docker-compose"
out="$(docker build -q --build-arg "BASE_IMAGE=$base" -t "$image" "$ctx" 2>&1)" || { echo "$out" >&2; exit 1; }
echo "$image"
