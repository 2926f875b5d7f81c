#!/usr/bin/env bash
# The execution environment's package manager (execution-environment.yml
# options.package_manager_path): ansible-builder calls `$PKGMGR install -y PKG...` for the
# system packages bindep asks for and `$PKGMGR clean all`, the dnf way; this maps both onto
# apt-get for the Debian base image. bindep lists only what the base image lacks, so with
# scripts/ee.sh's base image nothing is installed and no mirror is needed.
set -euo pipefail
case "${1:-}" in
  install)
    shift
    packages=()
    for arg in "$@"; do [[ "$arg" == -* ]] || packages+=("$arg"); done
    [ "${#packages[@]}" -eq 0 ] && exit 0
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
    ;;
  clean) apt-get clean; rm -rf /var/lib/apt/lists/* ;;
  *) echo "ee-pkgmgr: unsupported command '$*' (expected install or clean)" >&2; exit 2 ;;
esac
