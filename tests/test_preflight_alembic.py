"""Preflight's check of the release's files with Alembic, through real `ansible-playbook`
(the preflight role's release_files entry point, as staging.yml runs it after the source
phase): a wrong `stagegate_dryrun_alembic_config` stops there, naming the key and the path,
before the backup and the dry-run (a trial's wrong path was found by the dry-run, after the
backup, as "No such file or directory" of its directory); a project whose migrations are
only Alembic revisions (no SQL file) passes."""

from __future__ import annotations

from pathlib import Path

from sandbox_fixtures import PlaybookRun, local_inventory, run_playbook

PLAY = """\
- hosts: deploy
  gather_facts: false
  tasks:
    - name: Check the release's files
      ansible.builtin.import_role:
        name: stagegate.release.preflight
        tasks_from: release_files
"""


def release_files(tmp_path: Path, project: Path, alembic_config: str) -> PlaybookRun:
    playbook = tmp_path / "release_files.yml"
    playbook.write_text(PLAY)
    inventory = local_inventory(tmp_path)
    variables = {
        "stagegate_project_dir": str(project),
        "stagegate_compose_project": "sgt-preflight-alembic",
        "stagegate_dryrun_alembic_config": alembic_config,
    }
    return run_playbook(str(playbook), variables, inventory=inventory)


def test_the_alembic_config_is_checked_with_the_release_files(tmp_path: Path) -> None:
    project = tmp_path / "checkout"
    (project / "migrations").mkdir(parents=True)  # no SQL file: Alembic manages the schema
    (project / "compose.yaml").write_text("services:\n  api:\n    image: busybox\n")

    wrong = f"{project}/alembc.ini"
    run = release_files(tmp_path, project, wrong)
    assert run.rc != 0
    assert f"stagegate_dryrun_alembic_config: {wrong} is not a file on deploy" in run.output, (
        run.output[-3000:]
    )

    (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s\n")
    run = release_files(tmp_path, project, f"{project}/alembic.ini")
    assert run.rc == 0, run.output[-3000:]
    assert f"0 migration file(s) and Alembic ({project}/alembic.ini)" in run.output

    # A down script is not a migration: the dry-run and the deploy apply *.sql of the directory
    (project / "migrations" / "down").mkdir()
    (project / "migrations" / "down" / "002_x.sql").write_text("DROP TABLE x;\n")
    run = release_files(tmp_path, project, "")  # neither SQL files nor Alembic
    assert run.rc != 0
    assert "stagegate_migrations_dir: no file matching *.sql in" in run.output
    assert "stagegate_dryrun_alembic_config to its alembic.ini" in run.output
