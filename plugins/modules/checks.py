#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The stagegate.release.checks action plugin (plugins/action/checks.py) does the work;
# this file carries its documentation, as ansible.builtin's action modules do.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: checks
short_description: Run the stagegate check catalog and return graded results
version_added: "0.1.0"
description:
  - Validates the whole check catalog (C(stagegate_checks)) before any check runs; an
    unknown type, a missing field or a bad value fails naming the check, the key, the value
    and what was expected.
  - Runs the selected checks concurrently on the controller through the C(stagegate)
    engine (hooks, plugins), each with its own timeout, retries and delay; checks with
    C(run_on=host) run at the same time on the target through
    M(stagegate.release.host_checks), with the same check implementations.
  - Grades every result (PASS, WARN, FAIL, SKIP, ERROR) through the
    C(stagegate_grade_result) hook; a FAIL of a C(warning) or C(info) check grades WARN.
  - Does not fail on failed checks unless O(fail_on) says so; gates decide the verdict.
  - Secret values (passwords, tokens, Authorization headers, captured values, env values)
    are masked in every result.
options:
  checks:
    description:
      - The catalog. Defaults to the variable C(stagegate_checks). See docs/checks.md.
    type: list
    elements: dict
  names:
    description: Run only the checks with these names.
    type: list
    elements: str
    default: []
  groups:
    description: Run only the checks of these groups.
    type: list
    elements: str
    default: []
  tags:
    description: Run only the checks that carry one of these tags.
    type: list
    elements: str
    default: []
  max_failures:
    description:
      - A failure budget for controller checks. Once this many C(critical) checks graded
        FAIL or ERROR, the checks not started yet are reported SKIP instead of run.
      - Unset runs every check.
    type: int
  fail_on:
    description:
      - Fail the task when a check's grade is one of these.
      - The message names each such check, what it found and the bands it was held against.
    type: list
    elements: str
    choices: [WARN, FAIL, ERROR, SKIP]
    default: []
extends_documentation_fragment:
  - stagegate.release.checks
attributes:
  check_mode:
    description: Read-only checks (see docs/checks.md) run for real in check mode; the others
      are reported as SKIP.
    support: full
  diff_mode:
    description: Checks observe; there is nothing to diff.
    support: none
  idempotent:
    description: Checks observe and never change anything; C(changed) is always false.
    support: full
requirements:
  - the stagegate Python package on the controller
author: stagegate contributors (@stagegate)
seealso:
  - module: stagegate.release.host_checks
"""

EXAMPLES = r"""
- name: Validate the staging deployment
  stagegate.release.checks:
    groups: [infrastructure, functionality]
  register: validation

- name: Run two checks given inline
  stagegate.release.checks:
    checks:
      - name: api-health
        type: http
        group: functionality
        retries: 10
        delay: 2
        options:
          url: http://127.0.0.1:8000/health
          json: ["checks.database.status == 'healthy'"]
      - name: disk
        type: disk
        run_on: host
        options: {path: /, free: {pass: ">= 5gb", warn: ">= 1gb"}}
"""

RETURN = r"""
results:
  description: Graded results in catalog order (report.json C(checks[])).
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Check name., type: str}
    group: {description: Check group., type: str}
    type: {description: Check type., type: str}
    status: {description: "PASS, WARN, FAIL, SKIP or ERROR.", type: str}
    severity: {description: "critical, warning or info.", type: str}
    message: {description: "What was found, secrets masked.", type: str}
    value: {description: The measured value., type: raw}
    threshold: {description: The bands or expectation held against., type: str}
    duration_ms: {description: Time taken., type: float}
    attempts: {description: Attempts made., type: int}
    metrics: {description: Named figures., type: dict}
    details: {description: Anything else a report may show., type: dict}
summary:
  description: Count of results per status.
  returned: success
  type: dict
  sample: {PASS: 10, WARN: 1, FAIL: 0, SKIP: 0, ERROR: 0}
errors:
  description: Every catalog problem, when the catalog is invalid.
  returned: failure
  type: list
  elements: str
"""
