#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ledger
short_description: Append to or read the release ledger on the deploy host
version_added: 0.1.0
description:
  - The release ledger is C(<state_dir>/ledger.jsonl), one JSON record per run (release, previous
    release, verdict, score, start and end, who ran it or the AWX job id, report location,
    key metrics), append-only.
  - I(state=present) appends one record under an exclusive C(flock), so two concurrent runs never
    interleave or lose a record; a run already recorded (same C(run_id), C(release), C(kind)) is
    not appended again. I(state=read) returns all records and the last good one (verdict
    C(GO) or C(GO_WITH_WARNINGS)), which baseline comparison and rollback use.
  - A torn final line (a run killed while appending) or an unparseable line elsewhere never
    fails the task; it is skipped, named in a warning and in RV(ledger_warnings). An append
    first repairs a torn final line under the lock (cut off, or newline-terminated when it is a
    whole record), so the new record never lands on the end of a broken one.
options:
  state_dir:
    description: The deploy host's stagegate state directory (C(stagegate_state_dir)).
    type: path
    required: true
  state:
    description: C(present) appends I(record); C(read) only reads.
    type: str
    choices: [present, read]
    default: read
  record:
    description:
      - The record to append (required with I(state=present)); needs at least C(release) and
        C(verdict). The C(stagegate.release.gate) action returns one as C(ledger_record).
    type: dict
  exclude_release:
    description: With I(state=read), the last good record is never this release (the one being
      promoted), so a re-run is compared with the release before it.
    type: str
attributes:
  check_mode:
    support: full
    description: In check mode the record is validated and returned, nothing is written.
  diff_mode:
    support: full
    description: The diff shows the line appended to the ledger.
  idempotent:
    support: full
    description:
      - A record whose C(run_id) is set is appended once per run (same C(run_id), C(release),
        C(kind) and C(verdict)), so re-running the recording step does not duplicate it. A
        rollback resumed under its run id that ends with another verdict is recorded again.
        Records without C(run_id) are always appended.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.gate
"""

EXAMPLES = r"""
- name: Read the last good release
  stagegate.release.ledger:
    state_dir: /var/lib/stagegate/staging
    exclude_release: v2
  register: ledger

- name: Append this run's record
  stagegate.release.ledger:
    state_dir: /var/lib/stagegate/staging
    state: present
    record: "{{ gate.ledger_record }}"
"""

RETURN = r"""
path:
  description: The ledger file.
  returned: always
  type: str
  sample: /var/lib/stagegate/staging/ledger.jsonl
record:
  description: The record appended (or that would be, in check mode).
  returned: state=present
  type: dict
records:
  description: All records, oldest first.
  returned: state=read
  type: list
  elements: dict
last_good:
  description: The newest record with verdict GO or GO_WITH_WARNINGS, or null.
  returned: state=read
  type: dict
ledger_warnings:
  description: Lines skipped (torn final line, unparseable line, with the line number) and
    repairs made before appending; each is also a task warning. Empty for a healthy ledger.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/stagegate/staging/ledger.jsonl line 7: torn final line skipped (41 bytes,
           not a whole record: a run was killed while writing it); the next append removes it"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils import _ledger


class LedgerManager:
    def __init__(self, module):
        self.module = module
        self.path = _ledger.ledger_path(module.params["state_dir"])
        self.state = module.params["state"]
        self.record = module.params["record"]
        self.exclude_release = module.params["exclude_release"]

    def run(self):
        if self.state == "present":
            return self.append()
        return self.read()

    def append(self):
        if self.record is None:
            self.module.fail_json(
                msg="record: required with state=present (a dict with at "
                "least release and verdict)",
                path=self.path,
            )
        try:
            result, warnings = _ledger.append_as_module(
                self.path, self.record, self.module.check_mode
            )
        except _ledger.LedgerError as exc:
            self.module.fail_json(msg=str(exc), path=self.path)
        return dict(result, path=self.path, ledger_warnings=self.warn(warnings))

    def read(self):
        try:
            records, warnings = _ledger.scan(self.path)
        except OSError as exc:  # StateFileError: names the file, the operation and the cause
            self.module.fail_json(msg=str(exc), path=self.path)
        return {
            "changed": False,
            "path": self.path,
            "records": records,
            "last_good": _ledger.last_good(records, self.exclude_release),
            "ledger_warnings": self.warn(warnings),
        }

    def warn(self, warnings):
        for warning in warnings:
            self.module.warn(warning)
        return warnings


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "read"], "default": "read"},
            "record": {"type": "dict"},
            "exclude_release": {"type": "str"},
        },
        required_if=[("state", "present", ("record",))],
        supports_check_mode=True,
    )
    module.exit_json(**LedgerManager(module).run())


if __name__ == "__main__":
    main()
