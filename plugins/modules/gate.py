#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done by the action plugin plugins/action/gate.py on the
# controller.

DOCUMENTATION = r"""
---
module: gate
short_description: Grade check results, evaluate gates, decide GO / NO_GO, write the reports
version_added: 0.1.0
description:
  - Runs on the controller. Grades every check result (PASS/WARN/FAIL/SKIP/ERROR) from its
    severity and the PASS/WARN bands of C(gates.thresholds), evaluates the gates of O(gates)
    (pass rates, key checks, baseline comparison with the last good release, values pulled
    from result files with JMESPath, shipped profiles such as C(seed003_load_simulation), gate
    types from plugins), reaches the verdict and readiness score through the
    C(stagegate_adjust_verdict) hooks, and writes C(report.json), C(report.md), C(junit.xml) and
    C(report.html) to O(report_dir).
  - Also writes the reports for a run that stopped early (O(stopped)), with verdict C(NO_GO),
    naming the phase where it stopped and why.
  - Never writes a secret value into a report, the result or the notification; O(secrets)
    plus every string under a secret-named key of the C(stagegate_*) variables is masked.
  - With O(validate_only=true), only validates O(gates) and O(manual_checks) against the check
    catalog and returns; the preflight role calls it this way before anything changes.
  - Does not fail on C(NO_GO); the caller records the ledger entry and the AWX artifacts first
    (role C(stagegate.release.gate_report) fails the play afterwards).
options:
  release:
    description: The release being promoted. Required unless O(validate_only=true).
    type: str
  previous:
    description: The release it replaces.
    type: str
  checks:
    description:
      - Check results in the report.json C(checks[]) form, as C(stagegate.release.checks) returns
        them.
    type: list
    elements: dict
    default: []
  gates:
    description: The gate configuration (C(stagegate_gates)); see docs/gates.md.
    type: dict
    default: {}
  catalog:
    description: The check catalog (C(stagegate_checks)); gates naming a check not in it are
      rejected. Omit to skip that cross-check.
    type: list
    elements: dict
  manual_checks:
    description:
      - Checklist items no machine can check (C(name), C(description), C(category),
        C(blocking)); pending until confirmed in O(manual_confirmations).
      - C(survey_var) names a plain variable (an AWX survey answer, e.g.
        C(confirm_owasp_review)) whose value C(who@when) confirms the item.
    type: list
    elements: dict
    default: []
  manual_confirmations:
    description: Confirmations by item name, C({by, at}) or an AWX survey answer C(who@when).
    type: dict
    default: {}
  baseline:
    description: The last good ledger record (C(stagegate.release.ledger) C(last_good)), for
      C(baseline) gates.
    type: dict
  history:
    description:
      - Ledger records as the C(stagegate.release.ledger) module reads them (C(records)), for
        C(trend) gates, which read this release's runs among them (its newest promotion and
        the re-validations after it; C(stagegate.ledger.release_history)).
      - Empty (a promotion's first run) leaves C(trend) gates with one run, a SKIP.
    type: list
    elements: dict
    default: []
  phases:
    description:
      - Phases of this run, C({name, status, seconds}).
      - When empty, the phases of the run record (kept by the callback
        C(stagegate.release.progress), see C(stagegate.release.run_record)) that ended since the
        last gate report.
    type: list
    elements: dict
    default: []
  stopped:
    description:
      - Where and why the run stopped, C({phase, reason}); the verdict is then NO_GO.
      - When omitted, the run record's first failure for this host that no gate reported yet
        (the phase it failed in, the task and its message); none when the record has none or
        the callback C(stagegate.release.progress) is not enabled.
    type: dict
  rollback_plan:
    description: The rollback plan shown in the reports (target release, images, database action).
    type: dict
  report_dir:
    description: Where the four reports are written. Required unless O(validate_only=true).
    type: path
  environment:
    description: Environment name shown in the reports.
    type: str
    default: staging
  started:
    description: When the run started (ISO 8601); when omitted, the run record's start.
    type: str
  secrets:
    description: Extra secret values to mask in every output.
    type: list
    elements: str
    default: []
  strict:
    description: Strict policy, GO_WITH_WARNINGS becomes NO_GO.
    type: bool
    default: false
  webhook:
    description:
      - Webhook notifier C({url, headers, timeout}); the verdict summary is POSTed as JSON.
    type: dict
  kind:
    description:
      - What the run did, which the reports' title, first sentence and sign-off line name.
        V(promotion) (staging.yml), V(validation) (validate.yml, nothing promoted),
        V(rollback) (rollback.yml - the report of the release brought back, from
        O(previous)), V(restore) (restore.yml - a database restored under the release).
    type: str
    choices: [promotion, validation, rollback, restore]
    default: promotion
  auto_rollback:
    description:
      - Whether the play rolls back automatically on C(NO_GO) (C(stagegate_auto_rollback)).
        The reports then say that the rollback runs next, to which release (from
        O(rollback_plan)), and link its report; a run that stopped before the deploy phase
        is reported as not rolled back (nothing was deployed).
      - Omitted (a run that is not a promotion, such as the rollback's own verification),
        the reports say nothing about an automatic rollback.
    type: bool
  rollback_report_dir:
    description:
      - Where the automatic rollback writes its reports; the NO_GO report links its
        C(report.html) (relative when it is under O(report_dir)).
    type: path
  returned:
    description:
      - A fleet's stopped rollout (docs/fleet.md) - how each app host it moved came back
        (C(back on v2), or C(NOT returned (...))). The reports then say what was returned and
        that nothing is left to roll back, or name the hosts C(rollback.yml) should move,
        instead of advising a rollback of the whole fleet.
      - Omitted for any other run.
    type: dict
  hosts:
    description:
      - A fleet (docs/fleet.md) - the app hosts whose check results are folded into one result
        per check. Each host's results are read from its C(stagegate_gate_report_results) (what
        role C(stagegate.release.validate) sets), its release from its C(stagegate_release);
        O(checks) then holds the results of the checks that ran once for the fleet.
      - A host without results (unreachable, failed before its checks ran) is an ERROR on every
        check, with the reason in its C(stagegate_fleet_host_error) when the play recorded one.
      - The reports then list the results by host (report.json C(hosts)), and the verdict,
        score and ledger record are the fleet's. Empty (the default) - one host, O(checks) only.
    type: list
    elements: str
    default: []
  ledger_warnings:
    description:
      - What the run's ledger reads skipped (a torn final line, an unparseable line), as the
        M(stagegate.release.ledger) module returns them (its C(ledger_warnings)).
        The reports name each under "Ledger warnings" (C(ledger_warnings) in C(report.json)),
        together with those of O(rollback_plan), each once.
    type: list
    elements: str
    default: []
  resumed:
    description:
      - The interrupted deploy this run resumed, as M(stagegate.release.release_manifest) returns it
        in C(interrupted) (C(run_id), C(step), C(started_at), C(release), C(previous_release),
        C(backup), C(migrations)). The reports say so (C(resumed) in C(report.json), a
        "Resumed" line after the summary in report.md and report.html).
    type: dict
  validate_only:
    description: Only validate O(gates) and O(manual_checks); write nothing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Grading and reports are the output of a dry run too; written in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Writes the same reports for the same input; changes no managed state.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.ledger
  - module: stagegate.release.run_record
"""

EXAMPLES = r"""
- name: Validate the gates before anything changes
  stagegate.release.gate:
    validate_only: true
    gates: "{{ stagegate_gates }}"
    catalog: "{{ stagegate_checks }}"

- name: Decide
  stagegate.release.gate:
    release: v2
    previous: v1
    checks: "{{ checks.results }}"
    gates:
      key_checks: [api_health]
      profiles: [seed003_load_simulation]
      results_files:
        load_simulation: /var/tmp/staging_load_simulation.json
    baseline: "{{ ledger.last_good }}"
    report_dir: "{{ playbook_dir }}/artifacts/v2"
  register: gate
"""

RETURN = r"""
verdict:
  description: GO, GO_WITH_WARNINGS or NO_GO.
  returned: unless validate_only
  type: str
score:
  description: Readiness score in percent.
  returned: unless validate_only
  type: float
kind:
  description: What the run did (O(kind)); the progress callback names a rollback's verdict.
  returned: unless validate_only
  type: str
  sample: promotion
release:
  description: The release graded (O(release)).
  returned: unless validate_only
  type: str
  sample: v2
report_dir:
  description: The report directory.
  returned: unless validate_only
  type: str
report_paths:
  description: Path of each report file by name.
  returned: unless validate_only
  type: dict
failed_checks:
  description: Names of checks graded FAIL or ERROR.
  returned: unless validate_only
  type: list
  elements: str
stopped:
  description: Where and why the run stopped, C({phase, reason}), as the reports say it; null
    when it did not stop.
  returned: unless validate_only
  type: dict
gates:
  description: Gate outcomes (name, status, critical, message).
  returned: unless validate_only
  type: list
  elements: dict
checks:
  description: The graded checks as C({name, group, status}) for progress output.
  returned: unless validate_only
  type: list
  elements: dict
blockers:
  description: Why the verdict is NO_GO.
  returned: unless validate_only
  type: list
  elements: str
findings:
  description: What made the verdict GO_WITH_WARNINGS (warned checks and gates).
  returned: unless validate_only
  type: list
  elements: str
ledger_record:
  description: The record to append with C(stagegate.release.ledger).
  returned: unless validate_only
  type: dict
notify_errors:
  description: Notifier failures (they never change the verdict).
  returned: unless validate_only
  type: list
  elements: str
gate_names:
  description: The validated gate names.
  returned: validate_only
  type: list
  elements: str
"""
