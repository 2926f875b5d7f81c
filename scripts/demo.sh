#!/usr/bin/env bash
# `make demo`: promote the sandbox from v1 to v2 with playbooks/staging.yml on the default
# inventory (inventory/sandbox: the API on 127.0.0.1:18080), and say where the report is.
# When no good release is deployed yet, v1 is promoted first, so the demo shows a real upgrade
# (backup, migration dry-run, migrations 006/007, the v2 endpoint). Extra arguments go to the
# v2 run (e.g. `bash scripts/demo.sh -e sandbox_faults=api:no_security_headers`).
# `make demo-faulty` (scripts/demo-faulty.sh) shows the NO_GO path with automatic rollback;
# `bash scripts/sandbox-down.sh` removes the demo stack.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
# The demo stack's names, URL and state dir as the inventory sets them (no secret is read).
eval "$(python scripts/sandbox-settings.py)"

staging() { ansible-playbook playbooks/staging.yml -i inventory/sandbox "$@"; }

# Where the newest run's reports are, from the ledger on the deploy host.
last_report() {
  stagegate ledger list --state-dir "$state_dir" --json --limit 1 \
    | python -c 'import json, sys; r = json.load(sys.stdin)[-1]; print(r["verdict"], r["reports"].get("report.md", r["report_dir"]))'
}

if ! stagegate ledger last-good --state-dir "$state_dir" >/dev/null 2>&1; then
  echo "demo: no good release deployed yet in $state_dir: promoting v1 first"
  if ! staging -e stagegate_release=v1; then
    echo "demo: promoting v1 failed; see the output above and $(last_report)" >&2
    exit 1
  fi
fi

echo "demo: promoting v2"
staging -e stagegate_release=v2 "$@"
rc=$?

echo
docker compose --project-name "$project" ps
read -r verdict report < <(last_report)
echo "demo: verdict $verdict; report: $report (report.json, report.html, junit.xml beside it)"
if [ "$rc" = 0 ]; then
  echo "demo: v2 is up: $base_url/health/ready, $base_url/api/v1/reports/summary, $base_url/metrics"
else
  echo "demo: staging.yml failed (exit $rc); the report says where and why" >&2
fi
echo "demo: next: make demo-faulty (NO_GO and automatic rollback); remove with bash scripts/sandbox-down.sh"
exit "$rc"
