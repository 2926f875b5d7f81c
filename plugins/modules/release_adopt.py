#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_adopt
short_description: Find a release stagegate did not deploy, and baseline its migrations
version_added: 0.2.0
description:
  - O(step=inspect) (read-only) tells apart a C(managed) deployment (the checkout in
    O(project_dir) has a C(.stagegate-release) marker), a C(fresh) one (no container of
    O(compose_project) runs and the database is absent or holds no table) and an C(unmanaged)
    one (something runs, no marker), and fails for C(unmanaged) unless O(adopt_release) names
    the release to adopt, with a message that says what runs and the exact command that
    adopts it.
  - O(step=baseline) decides which migration files of O(migrations_dir) (the adopted release's)
    count as applied. An O(tracking_table) that exists and holds rows (for instance a
    C(schema_migrations) table with a C(version) column) is read and never written. Otherwise
    each file is checked against the schema (the tables, indexes, views, sequences and columns
    it creates must all exist for V(applied), none for V(pending), and some fails the step naming
    them), and the applied files are recorded in O(tracking_table) (created when missing).
    Alembic's C(alembic_version) is read and returned, never written.
options:
  step:
    description: V(inspect) or V(baseline).
    type: str
    choices: [inspect, baseline]
    default: inspect
  project_dir:
    description: The checkout of the deployed release (C(stagegate_project_dir)).
    type: path
  inventory:
    description: The inventory named in the refusal's command.
    type: str
    default: <inventory>
  adopt_release:
    description:
      - With O(step=inspect), the release the operator adopts (C(stagegate_adopt_release)).
      - Empty, an C(unmanaged) deployment fails the step with what runs and the exact command
        that adopts it. Set, the step fails when nothing runs (a first deploy needs no
        adoption) or when stagegate deployed another release here already; RV(adopt) is true
        for an C(unmanaged) deployment.
    type: str
    default: ""
  migrations_dir:
    description: With O(step=baseline), the adopted release's migration files.
    type: path
  pattern:
    description: Glob of the migration files.
    type: str
    default: "*.sql"
  tracking_table:
    description: The migration tracking table (C(stagegate_dryrun_tracking_table)).
    type: str
    default: public.stagegate_schema_migrations
extends_documentation_fragment:
  - stagegate.release.pg
attributes:
  check_mode:
    support: full
    description: O(step=baseline) decides the same baseline and writes no row.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: A second baseline reads the rows the first wrote and changes nothing.
notes:
  - With O(step=inspect) a database that does not answer counts as absent, and
    O(compose_project) (C(stagegate_compose_project), required there) names the project whose
    running containers count.
  - Needs the Docker SDK for Python (O(step=inspect)) and psycopg 3.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.pg_migrate
  - module: stagegate.release.release_manifest
"""

EXAMPLES = r"""
- name: Look for a release stagegate did not deploy
  stagegate.release.release_adopt:
    step: inspect
    project_dir: "{{ stagegate_project_dir }}"
    compose_project: "{{ stagegate_compose_project }}"
    db: "{{ stagegate_db }}"
  register: deployment

- name: Baseline the migrations of the adopted release
  stagegate.release.release_adopt:
    step: baseline
    migrations_dir: /tmp/adopt-v1/migrations
    db: "{{ stagegate_db }}"
"""

RETURN = r"""
status:
  description: With O(step=inspect), V(managed), V(fresh) or V(unmanaged).
  returned: step=inspect
  type: str
marker:
  description: The release the C(.stagegate-release) marker names, or null.
  returned: step=inspect
  type: str
release_guess:
  description: C(git describe --tags) of a checkout made by hand, or null.
  returned: step=inspect
  type: str
containers:
  description: Running containers of the project (C(service), C(name), C(image), C(image_id)).
  returned: step=inspect
  type: list
  elements: dict
images:
  description: Per service C(id) and C(ref) of the running image, for the release manifest.
  returned: step=inspect
  type: dict
database:
  description: C(reachable), C(tables) (schema-qualified) and C(error) when it did not answer.
  returned: step=inspect
  type: dict
adopt:
  description: True when this run adopts the release that runs (O(adopt_release), unmanaged).
  returned: step=inspect
  type: bool
first_deploy:
  description: True when nothing runs (V(fresh)).
  returned: step=inspect
  type: bool
summary:
  description: What runs, in one line.
  returned: step=inspect
  type: str
migrations:
  description: Per file C(filename), C(status) (V(applied), V(pending)) and C(evidence).
  returned: step=baseline
  type: list
  elements: dict
applied:
  description: Files that count as applied.
  returned: step=baseline
  type: list
  elements: str
pending:
  description: Files the next promotion applies.
  returned: step=baseline
  type: list
  elements: str
source:
  description: How the baseline was decided (existing tracking table, or schema check).
  returned: step=baseline
  type: str
alembic_version:
  description: The revision in Alembic's C(alembic_version), or null.
  returned: step=baseline
  type: str
"""

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils._adopt import (
    AdoptError,
    baseline,
    classify,
    database_facts,
    decide,
    describe_checkout,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    DockerException,
    docker_client,
    service_containers,
)
from ansible_collections.stagegate.release.plugins.module_utils._paths import read_marker
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    pg_module,
    run_manager,
)


class AdoptManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.target = PgTarget.from_module_params(module.params)
        self.result = {"changed": False}

    def run(self):
        if self.params["step"] == "baseline":
            return self.baseline()
        return self.inspect()

    def inspect(self):
        params = self.params
        if not params["project_dir"]:
            raise PgError("project_dir: required with step=inspect")
        if not HAS_DOCKER_SDK:
            self.module.fail_json(
                msg=missing_required_lib("docker"), exception=DOCKER_SDK_IMPORT_ERROR
            )
        try:
            running = (
                [
                    c
                    for c in service_containers(docker_client(), params["compose_project"])
                    if c.status == "running"
                ]
                if params["compose_project"]
                else []
            )
        except DockerException as exc:
            raise PgError(
                f"cannot list the containers of {params['compose_project']}: {exc}"
            ) from exc
        containers = sorted(
            (
                {
                    "service": c.labels.get("com.docker.compose.service", ""),
                    "name": c.name,
                    "image": str(c.attrs.get("Config", {}).get("Image", "")),
                    "image_id": str(c.attrs.get("Image", "")),
                }
                for c in running
            ),
            key=lambda c: c["name"],
        )
        database = database_facts(self.target)
        marker = read_marker(params["project_dir"])
        facts = {
            "project_dir": params["project_dir"],
            "compose_project": params["compose_project"],
            "database_name": self.target.dbname,
            "marker": marker,
            "release_guess": None if marker else describe_checkout(params["project_dir"]),
            "containers": containers,
            "images": {c["service"]: {"id": c["image_id"], "ref": c["image"]} for c in containers},
            "database": database,
        }
        facts["status"] = classify(marker, containers, database)
        self.result.update(facts)
        try:
            self.result.update(decide(facts, params["adopt_release"], params["inventory"]))
        except AdoptError as exc:
            self.module.fail_json(msg=str(exc), **self.result)
        return self.result

    def baseline(self):
        if not self.params["migrations_dir"]:
            raise PgError("migrations_dir: required with step=baseline")
        with self.target.connect() as conn:
            outcome = baseline(
                conn,
                self.params["migrations_dir"],
                self.params["pattern"],
                self.params["tracking_table"],
                self.module.check_mode,
            )
        self.result.update(outcome)
        return self.result


def main():
    module = pg_module(
        {
            "step": {"type": "str", "choices": ["inspect", "baseline"], "default": "inspect"},
            "project_dir": {"type": "path"},
            "inventory": {"type": "str", "default": "<inventory>"},
            "adopt_release": {"type": "str", "default": ""},
            "migrations_dir": {"type": "path"},
            "pattern": {"type": "str", "default": "*.sql"},
            "tracking_table": {
                "type": "str",
                "default": "public.stagegate_schema_migrations",
            },
        },
        supports_check_mode=True,
    )
    run_manager(module, AdoptManager(module))


if __name__ == "__main__":
    main()
