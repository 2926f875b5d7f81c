#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_checks
short_description: Run stagegate checks on the target host
version_added: "0.1.0"
description:
  - Runs checks of the stagegate catalog that must run where the application runs
    (localhost-only endpoints, disk, memory, docker state, a C(.env) file), with the very
    same check implementations the controller uses (C(plugins/module_utils/_checks_*.py)).
  - Normally called by the M(stagegate.release.checks) action for checks with
    C(run_on=host); it may be used directly with already complete check entries.
  - Returns raw outcomes; PASS/WARN bands and severities are graded on the controller.
  - Only built-in check types run here; plugin types run on the controller.
options:
  checks:
    description:
      - Check entries as in C(stagegate_checks), each with C(name), C(type), C(timeout),
        C(retries), C(delay), C(read_only) and the type's C(options). See docs/checks.md.
    type: list
    elements: dict
    required: true
extends_documentation_fragment:
  - stagegate.release.checks
attributes:
  check_mode:
    description: Read-only checks run for real in check mode; the others are reported as SKIP.
    support: full
  diff_mode:
    description: Checks observe; there is nothing to diff.
    support: none
  idempotent:
    description: The module never changes the host; C(changed) is always false.
    support: full
requirements:
  - python >= 3.11 on the host
  - jmespath for JSON assertions, psycopg 3 for postgres checks, docker (SDK) for docker and
    logs checks
author: stagegate contributors (@stagegate)
seealso:
  - module: stagegate.release.checks
"""

EXAMPLES = r"""
- name: Check free disk and the local health endpoint on the deploy host
  stagegate.release.host_checks:
    checks:
      - name: disk
        type: disk
        timeout: 5
        options: {path: /var/lib/docker, free: {pass: ">= 5gb", warn: ">= 1gb"}}
      - name: local-health
        type: http
        timeout: 5
        retries: 10
        delay: 2
        options: {url: "http://127.0.0.1:8000/health", status: 200}
"""

RETURN = r"""
outcomes:
  description: One entry per check, in the given order; secret values are masked.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The check's name., type: str}
    status: {description: "PASS, FAIL, ERROR or SKIP of the check's own assertions.", type: str}
    message: {description: What was found., type: str}
    value: {description: The measured value., type: raw}
    metrics: {description: Named figures., type: dict}
    measurements:
      description: Figures with their bands, graded by the controller.
      type: list
      elements: dict
    details: {description: Anything else a report may show., type: dict}
    attempts: {description: Attempts made., type: int}
    duration_ms: {description: Time taken., type: float}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils import (
    _checks_docker,
    _checks_http,
    _checks_pg,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_builtin import (
    builtin_types,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    ENTRY_OPTIONS,
    validate_options,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import (
    redactor_for,
    run_checks_here,
)

# check type -> (library, import flag) that it needs on this host
_LIBRARIES = {
    "postgres": ("psycopg", _checks_pg.HAS_PSYCOPG),
    "docker": ("docker", _checks_docker.HAS_DOCKER),
    "logs": ("docker", _checks_docker.HAS_DOCKER),
}
# The keys of one entry besides its options (the controller's catalog sends them all).
_ENTRY_SCHEMA: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "required": True},
    **ENTRY_OPTIONS,
    "options": {"type": "dict", "default": {}},
    **{key: {"type": "raw"} for key in ("group", "severity", "tags", "run_on", "description")},
}


class HostChecksManager:
    """Validates the given checks once, then runs them concurrently."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.types = builtin_types()
        self.concurrency: int = module.params["concurrency"]
        self.checks = [
            self._validated(index, entry) for index, entry in enumerate(module.params["checks"])
        ]

    def _validated(self, index: int, entry: dict[str, Any]) -> dict[str, Any]:
        where = f"checks[{index}] ({entry.get('name', '?')})"
        common, errors = validate_options(where, entry, _ENTRY_SCHEMA)
        check_type = self.types.get(str(common["type"]))
        if check_type is None:
            self.module.fail_json(
                msg=f"{where}: 'type' = {entry.get('type')!r}: expected one of "
                f"{', '.join(sorted(self.types))} (plugin types run on the controller)"
            )
        library, present = _LIBRARIES.get(check_type.name, ("", True))
        needs_jmespath = bool(common["options"].get("json"))
        if not present or (needs_jmespath and not _checks_http.HAS_JMESPATH):
            self.module.fail_json(msg=f"{where}: " + missing_required_lib(library or "jmespath"))
        options, option_errors = validate_options(where, common["options"], check_type.options)
        option_errors = option_errors or check_type.option_errors(where, options)
        if errors or option_errors:
            self.module.fail_json(msg="; ".join(errors + option_errors))
        for value in redactor_for(check_type, options).known():
            self.module.no_log_values.add(value)  # masked in the returned invocation too
        return {**common, "options": options}

    def run(self) -> dict[str, Any]:
        outcomes = run_checks_here(
            self.checks, self.types, self.concurrency, self.module.check_mode
        )
        for check, outcome in zip(self.checks, outcomes):
            outcome["name"] = check["name"]
        return {"changed": False, "outcomes": outcomes}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "checks": {"type": "list", "elements": "dict", "required": True},
            "concurrency": {"type": "int", "default": 16},
        },
        supports_check_mode=True,
    )
    module.exit_json(**HostChecksManager(module).run())


if __name__ == "__main__":
    main()
