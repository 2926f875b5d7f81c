#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback_plan
short_description: Compute the rollback plan from the ledger, the release manifests and git
version_added: 0.1.0
description:
  - Reads, on the deploy host, the release ledger (C(<state_dir>/ledger.jsonl)), the release
    manifests (C(<state_dir>/releases/<release>/manifest.json)) and the git checkout, and says
    what a rollback would do. It changes nothing, in check mode or not.
  - The current release is the tag checked out in O(project_dir) (else the newest manifest).
    The target is O(target) when set, else the newest release with a C(GO) or
    C(GO_WITH_WARNINGS) verdict, or adopted (a ledger record of kind C(adopt), see
    C(playbooks/adopt.yml)), that is not the current one, was not rolled back from since, and
    has a manifest on this host. RV(plan.considered) lists every release of the ledger with what
    the choice made of it.
  - When nothing is to be done (the target runs already, or a finished rollback is re-run),
    the plan says why the current release runs (C(why) in RV(plan.current), e.g. since an
    automatic rollback from a failed promotion) and gives in RV(plan.further_back) the release
    one good step further back and the exact command that rolls back to it.
  - The plan names both releases and their commits, the files that differ (C(git diff --stat)),
    the target's images per service and whether each still exists locally (else it is rebuilt
    from the target tag), what happens to the database (restore of the backup the bad
    release's manifest references when that release applied migrations, or nothing), and the
    estimated time from the durations the ledger measured (RV(plan.estimate)).
  - When C(<state_dir>/rollback.json) holds a rollback in progress (a run killed half-way), the
    plan stored there is returned with RV(resumed=true), so the next run finishes that rollback
    instead of planning a new one from a half-rolled-back host. When it records a finished
    rollback to the release that runs now, RV(plan.nothing_to_do) is true.
  - The action plugin of the same name adds the controller's identity, and the run id of the
    interrupted run when that run's controller process is gone, so the re-run can adopt its
    deploy lock.
options:
  state_dir:
    description: The environment's state directory on the deploy host (C(stagegate_state_dir)).
    type: path
    required: true
  project_dir:
    description: The git checkout of the deployed release (C(stagegate_project_dir)).
    type: path
    required: true
  source_repo:
    description:
      - The release repository (C(stagegate_source_repo)); git queries fall back to it when the
        checkout lacks a tag and it is a local path.
    type: str
  target:
    description:
      - Release to roll back to (C(stagegate_rollback_to)); default the previous good release.
    type: str
  database:
    description:
      - V(auto) restores the backup when the bad release applied migrations, else leaves the
        database alone; V(restore) always restores; V(none) never touches the database.
      - V(downgrade) reverts the migrations the bad release applied with its down scripts
        (the files of the same names in O(down_dir)) instead of restoring, so data written
        since the deploy is kept; planning fails, naming them, when a down script is missing.
    type: str
    choices: [auto, restore, downgrade, none]
    default: auto
  down_dir:
    description:
      - The bad release's down scripts, for O(database=downgrade). Default
        C(<migrations_dir>/down), read before the target is checked out.
    type: path
  migrations_dir:
    description:
      - The bad release's SQL migration files (C(stagegate_migrations_dir)), whose C(down/) holds
        the down scripts unless O(down_dir) is set. Default C(<project_dir>/migrations).
    type: path
  app_services:
    description: The app tier stopped first (C(stagegate_app_services)), named in RV(summary).
    type: list
    elements: str
    default: []
  environment:
    description: The environment's name (C(stagegate_environment)), recorded in the plan.
    type: str
    default: staging
  inventory:
    description:
      - The inventory the playbook runs with, named in the command RV(plan.further_back) gives
        (default C(<inventory>)).
    type: str
  tracking_table:
    description: The table that records applied migrations (C(stagegate_dryrun_tracking_table)).
    type: str
    default: public.stagegate_schema_migrations
notes:
  - O(db) is read only when the release being rolled back from did not finish its deploy (its
    manifest is still marked in progress - the run failed or was killed), to plan with the
    migrations the database records as applied (O(tracking_table) and its C(_progress) table)
    rather than those the deploy was about to apply - a deploy that stopped before its
    migrations needs no restore, and a restore would discard what was written since the
    backup. Without O(db), or when the database cannot be read (a warning says why), the
    manifest's migrations count as applied.
extends_documentation_fragment:
  - stagegate.release.pg.db
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same plan.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Never changes anything.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.rollback_state
  - module: stagegate.release.ledger
  - module: stagegate.release.deploy_lock
"""

EXAMPLES = r"""
- name: Plan the rollback (previous good release, or stagegate_rollback_to)
  stagegate.release.rollback_plan:
    state_dir: "{{ stagegate_state_dir }}"
    project_dir: "{{ stagegate_project_dir }}"
    source_repo: "{{ stagegate_source_repo }}"
    target: "{{ stagegate_rollback_to | default(omit) }}"
  register: rollback
"""

RETURN = r"""
plan:
  description:
    - The plan. When it cannot be made (the task fails), a dict whose one key C(not made) says
      why, which a promotion's report shows in its rollback plan section.
  returned: always
  type: dict
  contains:
    nothing_to_do:
      description: True when the target release already runs (a re-run after success).
      type: bool
    current:
      description:
        - C(release), C(ref) (commit), C(found_by), C(manifest) of the running release; with
          RV(plan.nothing_to_do), C(why) it runs.
      type: dict
    considered:
      description:
        - The ledger's releases, newest first, each with C(release), C(kind), C(verdict), C(at)
          and C(status) (V(candidate), V(running now), V(rolled back from since), ...).
      type: list
      elements: dict
    further_back:
      description:
        - With RV(plan.nothing_to_do), C(release), C(reason) and C(command) of one good release
          further back, or null when the ledger has none.
      type: dict
    target:
      description:
        - C(release), C(ref), C(reason) (why this release), C(manifest), and C(link)
          (C(current), C(target), C(release)) when its deploy switched a release link (the
          C(symlink) strategy), else null.
      type: dict
    files_changed:
      description: Files that differ between the two commits.
      type: list
      elements: str
    diff_stat:
      description: C(git diff --stat) between the target and the current commit.
      type: str
    images:
      description: Per service C(id), C(ref) and C(action) (V(present), V(retag), V(rebuild)).
      type: dict
    rebuild:
      description: Services whose target image is gone and is rebuilt from the target tag.
      type: list
      elements: str
    database:
      description:
        - C(action) (V(restore), V(downgrade), V(none)), C(reason), C(backup) (archive path),
          C(backup_manifest), C(migrations_reverted), and C(down_dir) for a downgrade.
      type: dict
    steps:
      description: The rollback's steps in order.
      type: list
      elements: str
    estimate:
      description:
        - The rollback's estimated time from the durations the ledger measured (rollbacks' wall
          time less their database step, else promotions' deploy and validate phases; the
          database step by snapshot or dump; image rebuilds by the target's build phase).
        - C(seconds) (null when nothing was measured), C(text), C(parts) (name to C(seconds)
          and C(basis)) and C(unmeasured) (the parts no measurement covers).
      type: dict
    ledger_warnings:
      description: Ledger lines skipped while choosing the target (a torn final line, a corrupt
        line, with the line number); they never stop a rollback.
      type: list
      elements: str
  sample:
    current: {release: v2, ref: 3f2a..., found_by: tag checked out in the project directory}
    target: {release: v1, ref: 9c1e..., reason: last good release in the ledger (GO)}
    files_changed: [.env, app/sandbox_app/reporting.py, migrations/006_composite_indexes.sql]
    database: {action: restore, backup: /var/lib/stagegate/staging/backups/app-v2.dump,
               migrations_reverted: [006_composite_indexes.sql, 007_reporting_views.sql]}
summary:
  description: The plan as lines of text, as a runbook's rollback dry-run shows it.
  returned: always
  type: list
  elements: str
  sample: ["Current release:  v2 (3f2a1b2c4d5e), tag checked out in the project directory"]
resumed:
  description: True when the plan comes from a rollback in progress in C(rollback.json).
  returned: always
  type: bool
state:
  description: The rollback state record (C(status), C(run_id), C(steps_done), ...), or empty.
  returned: always
  type: dict
controller:
  description: C(host), C(pid) and C(pid_start) of the controller's C(ansible-playbook) process
    (added by the action plugin).
  returned: always
  type: dict
lock:
  description: The deploy lock record (C(lock.json)) on the deploy host, empty when it is free.
  returned: always
  type: dict
resume_run_id:
  description: The run id of the interrupted rollback that this run adopts, and so its deploy
    lock; empty otherwise (added by the action plugin). Decided by the run state on the deploy
    host, whichever controller or AWX pod ran it, C(rollback.json) holds a resumable rollback
    whose run id owns the deploy lock (or the lock is free), unless that run's
    C(ansible-playbook) process is known to be alive on this very controller.
  returned: always
  type: str
run_id:
  description: This rollback's run id (added by the action plugin) - C(resume_run_id) when it
    adopts an interrupted rollback, else the run's id (C(stagegate_run_id), C(awx-<job id>), or
    the C(ansible-playbook) process's own id, as preflight names a promotion).
  returned: always
  type: str
run_owner:
  description: Who runs this rollback (added by the action plugin) - C(stagegate_run_owner), else
    C(<user>@<controller host>), with C( (AWX job <id>)) under AWX.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    DockerException,
    docker_client,
    image_facts,
)
from ansible_collections.stagegate.release.plugins.module_utils._ledger import LedgerError
from ansible_collections.stagegate.release.plugins.module_utils._lock import DeployLock
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    DB_ARGUMENT_SPEC,
    HAS_PSYCOPG,
    PgError,
    PgTarget,
    psycopg,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_migrations import (
    Progress,
    applied_versions,
    version_applied,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    RESUMABLE,
    PlanInputs,
    RollbackError,
    RollbackState,
    build_plan,
    summary_lines,
)


class RollbackPlanManager:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.inputs = PlanInputs(
            state_dir=params["state_dir"],
            project_dir=params["project_dir"],
            source_repo=params["source_repo"],
            target=params["target"] or None,
            database=params["database"],
            environment=params["environment"],
            down_dir=params["down_dir"],
            migrations_dir=params["migrations_dir"],
            inventory=params["inventory"],
        )
        self.state = RollbackState(params["state_dir"])

    def run(self):
        try:
            record = self.state.read() or {}
            resumed = record.get("status") in RESUMABLE and (
                not self.inputs.target or self.inputs.target == record.get("to")
            )
            plan = (
                record["plan"]
                if resumed
                else build_plan(
                    self.inputs,
                    self.inspect,
                    state=record,
                    applied_in_database=self.applied_in_database,
                )
            )
        except (RollbackError, LedgerError) as exc:
            # A promotion's report shows why it has no plan (staging.yml does not stop for it).
            details = {"plan": {"not made": str(exc)}, **getattr(exc, "details", {})}
            self.module.fail_json(msg=str(exc), **details)
        except DockerException as exc:
            self.module.fail_json(msg=f"cannot inspect the target's images: {exc}")
        summary = summary_lines(plan, self.module.params["app_services"])
        if resumed:
            summary.insert(
                0, f"Resuming the rollback {record.get('run_id')} started {record.get('started')}"
            )
        lock = DeployLock(self.inputs.state_dir).read() or {}
        self.module.exit_json(
            changed=False, plan=plan, summary=summary, resumed=resumed, state=record, lock=lock
        )

    def applied_in_database(self, names):
        """The migrations of `names` (file names) the tracking table records, or that a
        no-transaction file committed part of (`<table>_progress`), or None when the database
        cannot be read (the plan then takes them all as applied)."""
        params = self.module.params
        if not params["db"]:
            return None
        table = params["tracking_table"]
        if not HAS_PSYCOPG:
            self.module.warn(
                f"psycopg is missing: {table} not read, every planned migration taken as applied"
            )
            return None
        try:
            with PgTarget.from_module_params({"db": params["db"]}).connect() as conn:
                applied = {**applied_versions(conn, table), **Progress(table).load(conn).rows}
        except (PgError, psycopg.Error) as exc:
            self.module.warn(f"{table} not read ({exc}): every planned migration taken as applied")
            return None
        return {n for n in names if version_applied(os.path.splitext(n)[0], applied)}

    def inspect(self, ref):
        if not hasattr(self, "_client"):
            self._client = docker_client()
        return image_facts(self._client, ref)


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "project_dir": {"type": "path", "required": True},
            "source_repo": {"type": "str"},
            "target": {"type": "str"},
            "database": {
                "type": "str",
                "choices": ["auto", "restore", "downgrade", "none"],
                "default": "auto",
            },
            "down_dir": {"type": "path"},
            "migrations_dir": {"type": "path"},
            "environment": {"type": "str", "default": "staging"},
            "app_services": {"type": "list", "elements": "str", "default": []},
            "inventory": {"type": "str"},
            "db": DB_ARGUMENT_SPEC["db"],
            "tracking_table": {"type": "str", "default": "public.stagegate_schema_migrations"},
        },
        supports_check_mode=True,
    )
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_SDK_IMPORT_ERROR)
    RollbackPlanManager(module).run()


if __name__ == "__main__":
    main()
