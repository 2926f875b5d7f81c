#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_clone
short_description: Scratch copy of a database through CREATE DATABASE .. TEMPLATE
description:
  - O(state=present) creates O(name) as a copy of the O(db) database with
    C(CREATE DATABASE <name> TEMPLATE <source> [STRATEGY ..]); O(state=absent) drops it
    (C(WITH (FORCE))).
  - PostgreSQL refuses a template that other sessions use ("source database is being
    accessed by other users"). O(when_busy) decides. V(wait) retries until O(busy_timeout),
    V(terminate) ends the source's other sessions (refused unless O(environment) is in
    O(terminate_environments)), V(dump_restore) copies through C(pg_dump | pg_restore).
  - O(drop_prefix) also drops databases whose name starts with it (leftovers of earlier,
    interrupted runs), except O(name).
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  name:
    description: Name of the copy.
    type: str
    required: true
  state:
    description: Whether the copy exists.
    type: str
    choices: [present, absent]
    default: present
  strategy:
    description:
      - C(CREATE DATABASE .. STRATEGY) (PostgreSQL 15+; ignored before).
      - Default is the server's (C(wal_log)).
    type: str
    choices: [wal_log, file_copy]
  when_busy:
    description: What to do when other sessions use the source.
    type: str
    choices: [wait, terminate, dump_restore]
    default: wait
  busy_timeout:
    description: Seconds to keep retrying while the source is busy.
    type: float
    default: 30
  environment:
    description: The environment the source belongs to (C(stagegate_environment)).
    type: str
    default: staging
  terminate_environments:
    description: Environments where O(when_busy=terminate) may end other sessions (any case).
    type: list
    elements: str
    default: [staging]
  drop_prefix:
    description: Also drop databases whose name starts with this prefix (never O(name)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports the copy it would make and the busy policy it would apply; creates nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description:
      - A copy that exists already is left alone (present); a missing one is not dropped
        again (absent).
seealso:
  - name: CREATE DATABASE
    description: TEMPLATE and STRATEGY.
    link: https://www.postgresql.org/docs/15/sql-createdatabase.html
  - module: stagegate.release.pg_migrate_dryrun
"""

EXAMPLES = r"""
- name: Copy staging for an experiment
  stagegate.release.pg_clone:
    db: "{{ stagegate_db }}"
    name: stagegate_scratch_manual
    when_busy: terminate
    environment: "{{ stagegate_environment }}"

- name: Drop it again
  stagegate.release.pg_clone:
    db: "{{ stagegate_db }}"
    name: stagegate_scratch_manual
    state: absent
"""

RETURN = r"""
clone:
  description:
    - How the copy was made (method C(template) or C(dump_restore), strategy, retries,
      sessions terminated, seconds).
  returned: when a copy was made
  type: dict
leftovers:
  description: Databases dropped (or to drop, in check mode) by O(drop_prefix).
  returned: always
  type: list
  elements: str
dsn:
  description: The source connection, without its password.
  returned: always
  type: str
"""

from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    database_exists,
    drop_database,
    drop_leftovers,
    find_leftovers,
    pg_module,
    run_manager,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_clone import (
    clone_argument_spec,
    clone_with_params,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    **clone_argument_spec(),
    "drop_prefix": {"type": "str"},
}


class CloneManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.target = self.source = PgTarget.from_module_params(module.params)
        self.result: dict[str, Any] = {
            "changed": False,
            "dsn": self.source.redacted_dsn,
            "leftovers": [],
        }

    def run(self) -> dict[str, Any]:
        if self.params["name"] == self.source.dbname:
            raise PgError(f"name {self.params['name']!r} is the source database itself")
        with self.source.for_database("postgres").connect() as admin:
            self._leftovers(admin)
            exists = database_exists(admin, self.params["name"])
            wanted = self.params["state"] == "present"
            if exists == wanted:
                return self.result
            self.result["changed"] = True
            if self.module.check_mode:
                return self.result
            if wanted:
                self.result["clone"] = clone_with_params(
                    admin, self.source, self.params["name"], self.params
                )
            else:
                drop_database(admin, self.params["name"])
        return self.result

    def _leftovers(self, admin: Any) -> None:
        prefix = self.params["drop_prefix"]
        if not prefix:
            return
        if self.module.check_mode:
            self.result["leftovers"] = find_leftovers(admin, prefix, keep=self.params["name"])
        else:
            self.result["leftovers"] = drop_leftovers(admin, prefix, keep=self.params["name"])
        self.result["changed"] = bool(self.result["leftovers"])


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, CloneManager(module))


if __name__ == "__main__":
    main()
