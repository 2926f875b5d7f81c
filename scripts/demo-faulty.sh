#!/usr/bin/env bash
# `make demo-faulty`: promote a faulty release of the sandbox (default v2-crashloop: its API
# crash-loops on start) with stagegate_auto_rollback=true. staging.yml grades it NO_GO, writes
# the report, rolls back to the last good release (the database restored if the faulty release
# migrated it), verifies that release with the same checks, and exits non-zero. This script
# exits 0 when exactly that happened: NO_GO, then a verified rollback.
#   bash scripts/demo-faulty.sh [release] [ansible-playbook arguments]
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
eval "$(python scripts/sandbox-settings.py)"
faulty="${1:-v2-crashloop}"
[ $# -gt 0 ] && shift

# A good release must run first for there to be something to roll back to.
if ! stagegate ledger last-good --state-dir "$state_dir" >/dev/null 2>&1; then
  echo "demo-faulty: no good release deployed yet: running the demo first"
  bash scripts/demo.sh || exit 1
fi

echo "demo-faulty: promoting $faulty with automatic rollback"
ansible-playbook playbooks/staging.yml -i inventory/sandbox \
  -e stagegate_release="$faulty" -e stagegate_auto_rollback=true "$@"
rc=$?

echo
docker compose --project-name "$project" ps
stagegate ledger list --state-dir "$state_dir" --limit 3
verdicts="$(stagegate ledger list --state-dir "$state_dir" --json --limit 2 | python -c '
import json, sys
promotion, rollback = json.load(sys.stdin)
print(promotion["verdict"], rollback.get("kind", ""), rollback["verdict"], rollback["release"],
      rollback["reports"].get("report.md", rollback["report_dir"]),
      promotion["reports"].get("report.md", promotion["report_dir"]))')"
read -r promoted kind rolled_back target rollback_report report <<<"$verdicts"
echo "demo-faulty: $faulty graded $promoted (exit $rc); report: $report"
if [ "$rc" != 0 ] && [ "$promoted" = NO_GO ] && [ "$kind" = rollback ] && [ "$rolled_back" != NO_GO ]; then
  echo "demo-faulty: rolled back to $target, verified $rolled_back: $base_url/health/ready; report: $rollback_report"
  exit 0
fi
echo "demo-faulty: expected NO_GO followed by a verified rollback; see the output above" >&2
exit 1
