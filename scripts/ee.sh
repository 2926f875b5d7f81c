#!/usr/bin/env bash
# `make ee`: builds the stagegate execution environment offline (no container registry, no
# package index inside the build) from execution-environment.yml:
#   1. the base image stagegate/ee-base:bookworm by debootstrap (scripts/ee-rootfs.sh);
#   2. every wheel the build installs, downloaded or built on this machine (pip wheel) into
#      the build context: ansible-core, ansible-runner, the stagegate distribution and its
#      dependencies, the collection's requirements.txt, what ansible-builder's stages install;
#   3. the collection tarball (ansible-galaxy collection build);
#   4. ansible-builder build on a copy of execution-environment.yml beside them.
# The image is tagged stagegate/ee:<hash of the inputs> and stagegate/ee:latest; when an image
# with that hash exists nothing is rebuilt. Prints the image, the build time and the size.
# Env: STAGEGATE_EE_IMAGE (repository, default stagegate/ee), STAGEGATE_EE_FORCE=1 (rebuild).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STAGEGATE_VENV:-$ROOT/.venv}"
REPO="${STAGEGATE_EE_IMAGE:-stagegate/ee}"
BASE="stagegate/ee-base:bookworm"
# What bindep.txt asks for is already in the base image, so the build installs no system
# package (and needs no mirror): git, the PostgreSQL client, the Docker CLI (docker.io).
BASE_PACKAGES="python3,python3-pip,openssh-client,ca-certificates,git,postgresql-client,docker.io"
STATE="${STAGEGATE_STATE_DIR:-/var/tmp/stagegate}"
mkdir -p "$STATE"
PY="$VENV/bin/python"
[ -x "$VENV/bin/ansible-builder" ] || "$VENV/bin/pip" install -q 'ansible-builder>=3.1,<4'

# One build at a time on this machine (tests on two workers may ask at once).
exec 9>"$STATE/ee.lock"
flock 9

bash "$ROOT/scripts/ee-rootfs.sh" "$BASE" "$BASE_PACKAGES"

# The inputs: everything the image is made of. Docs and tests are not inputs.
inputs_hash() {
  {
    docker image inspect -f '{{.Id}}' "$BASE"
    cd "$ROOT"
    git ls-files -co --exclude-standard -- execution-environment.yml pyproject.toml galaxy.yml \
      requirements.txt bindep.txt meta src plugins roles playbooks scripts/ee.sh scripts/ee-pkgmgr.sh \
      | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
}
hash="$(inputs_hash)"
image="$REPO:$hash"
if [ -z "${STAGEGATE_EE_FORCE:-}" ] && docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" "$REPO:latest"
  echo "ee: $image is up to date"
  exit 0
fi

work="$(mktemp -d /var/tmp/stagegate-ee.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels" "$work/collections"
cp "$ROOT/execution-environment.yml" "$work/"
cp "$ROOT/scripts/ee-pkgmgr.sh" "$work/"

start=$(date +%s)
# 2. The wheels: the Python distribution built from this checkout, then everything it and
# the build need, resolved for this machine's CPython 3.11 (the base image's is 3.11 too).
echo "ee: wheels into the build context"
"$VENV/bin/pip" wheel -q --no-deps -w "$work/wheels" "$ROOT" >"$STATE/ee-pip.log" 2>&1 \
  || { echo "ee: building the stagegate wheel failed, see $STATE/ee-pip.log" >&2; exit 1; }
"$PY" - "$work/execution-environment.yml" "$work/reqs.txt" <<'PY'
import pathlib, sys, yaml
ee = yaml.safe_load(pathlib.Path(sys.argv[1]).read_text())
deps = ee["dependencies"]
wanted = [deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"]]
wanted += [p for p in deps.get("python", []) if isinstance(deps.get("python"), list)]
init = ee.get("options", {}).get("container_init", {}).get("package_pip", "dumb-init==1.2.5")
wanted += [init, "bindep", "pyyaml", "packaging"]  # what ansible-builder's own stages install
pathlib.Path(sys.argv[2]).write_text("\n".join(wanted) + "\n")
PY
[ -f "$ROOT/requirements.txt" ] && grep -v '^\s*#' "$ROOT/requirements.txt" >>"$work/reqs.txt"
# The distribution by its wheel file: the index has an unrelated project of the same name.
own_wheel="$(ls "$work"/wheels/*.whl)"
"$VENV/bin/pip" wheel -q -w "$work/wheels" "$own_wheel" -r "$work/reqs.txt" \
  >>"$STATE/ee-pip.log" 2>&1 \
  || { echo "ee: pip wheel failed, see $STATE/ee-pip.log" >&2; exit 1; }

# 3. The collection tarball, under the fixed name execution-environment.yml installs.
echo "ee: collection tarball"
(cd "$ROOT" && "$VENV/bin/ansible-galaxy" collection build --force --output-path "$work/collections" . >/dev/null)
mv "$work"/collections/stagegate-release-*.tar.gz "$work/collections/stagegate-release.tar.gz"

# 4. The build.
echo "ee: ansible-builder build (log: $STATE/ee-build.log)"
(cd "$work" && "$VENV/bin/ansible-builder" build --container-runtime docker \
  --file execution-environment.yml --context "$work/context" --tag "$image" --tag "$REPO:latest" \
  -v 3 >"$STATE/ee-build.log" 2>&1) \
  || { echo "ee: ansible-builder build failed, see $STATE/ee-build.log" >&2; exit 1; }
seconds=$(( $(date +%s) - start ))

# Earlier builds of this repository: only the current one is kept.
docker image ls --format '{{.Repository}}:{{.Tag}}' "$REPO" \
  | grep -vx -e "$image" -e "$REPO:latest" | xargs -r docker image rm >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$image")
wheels=$(du -sm "$work/wheels" | cut -f1)
echo "ee: built $image in ${seconds} s (wheels ${wheels} MB); image size $(( size / 1000000 )) MB"
