# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollback plan and the rollback state file, computed on the deploy host.

Standard library only. The plan answers, from the ledger, the release manifests and git, the
questions an on-call engineer asks before touching anything: which release is running, which
one comes back (and why that one), which files differ, which images start (and whether they
still exist), which backup is restored and why. `<state_dir>/rollback.json` records the plan
and the steps done, so a run killed half-way is resumed by the next one with the same plan
(not a new plan computed from a half-rolled-back host).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._ledger import (
    ADOPT,
    GOOD_VERDICTS,
    RESTORE,
    ledger_path,
    moves_no_release,
    scan,
)
from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    RELEASE_MARKER,
    UnsafeNameError,
    read_marker,
    release_manifest_path,
    releases_dir,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback_time import (
    rollback_estimate,
)
from ansible_collections.stagegate.release.plugins.module_utils._source import git_dir
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    utc_now,
    write_json_atomic,
)

STATE_FILE = "rollback.json"
IN_PROGRESS = "in_progress"
DONE = "done"
FAILED = "failed"
# A rollback in these states is finished by the next run with the plan it recorded.
RESUMABLE = (IN_PROGRESS, FAILED)
# The steps of a rollback, in order; the role has one task file (and tag) per step.
# The database goes back before the checkout: a downgrade runs the bad release's down scripts.
STEPS = ("stop", "database", "source", "images", "start", "verify", "record")


class RollbackError(Exception):
    """The plan cannot be made; the message says what is missing and how to choose."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


# --- release manifests (written by the deploy phase) -------------------------------------


def manifest_path(state_dir, release):
    try:
        return release_manifest_path(state_dir, release)
    except UnsafeNameError as exc:  # a release read from the ledger or the release marker
        raise RollbackError(f"{exc}; it cannot name a release manifest") from exc


def read_manifest(state_dir, release):
    """The release manifest as a dict, or None when the release was never deployed here."""
    path = manifest_path(state_dir, release)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RollbackError(f"release manifest {path} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict):
        raise RollbackError(f"release manifest {path}: expected a JSON object")
    return manifest


def manifest_images(manifest):
    """{service: {"id": image id, "ref": repository:tag or ""}} from a manifest's `images`."""
    images = {}
    for service, value in sorted((manifest or {}).get("images", {}).items()):
        if isinstance(value, dict):
            ref = value.get("ref") or value.get("image") or value.get("tag") or ""
            images[service] = {"id": value.get("id") or value.get("image_id") or "", "ref": ref}
        else:
            images[service] = {"id": str(value), "ref": ""}
    return images


def manifest_migrations(manifest):
    """Names of the migrations the release applied (an empty list when it changed no schema)."""
    applied = (manifest or {}).get("migrations_applied", (manifest or {}).get("migrations", []))
    names = []
    for item in applied or []:
        if isinstance(item, dict):
            names.append(str(item.get("filename") or item.get("version") or item.get("name")))
        else:
            names.append(str(item))
    return names


def manifest_alembic(manifest):
    """The Alembic revisions the release applied, as the deploy recorded them: {"from": the
    revision before (None: none), "revisions": [oldest first]}, or None when it applied none."""
    alembic = (manifest or {}).get("alembic")
    if not isinstance(alembic, dict) or not alembic.get("revisions"):
        return None
    revisions = [str(rev) for rev in alembic["revisions"]]
    return {"from": alembic.get("from") or None, "revisions": revisions}


def manifest_backup(manifest):
    """(archive path, backup manifest path) of the backup taken before the release, or Nones."""
    backup = (manifest or {}).get("backup")
    if not backup:
        return None, None
    if isinstance(backup, str):
        return backup, None
    return backup.get("path") or backup.get("archive"), backup.get("manifest_path")


def manifest_snapshot(manifest):
    """The record of the snapshot taken before the release (pg_snapshot), or None."""
    backup = (manifest or {}).get("backup")
    snapshot = backup.get("snapshot") if isinstance(backup, dict) else None
    return snapshot if isinstance(snapshot, dict) and snapshot.get("name") else None


# --- choosing the releases ---------------------------------------------------------------


ADOPT_KIND = ADOPT
# An adoption records the release that ran before stagegate with this verdict: not graded, but
# a release to come back to (rollback), never a baseline for comparisons (last_good).
ADOPTED = "ADOPTED"


def is_good(record):
    """A release to roll back to: a good promotion or rollback, or an adoption."""
    return record.get("verdict") in GOOD_VERDICTS or (
        record.get("kind") == ADOPT_KIND and record.get("verdict") == ADOPTED
    )


def rolled_back_releases(records):
    """Releases a later rollback moved away from (newer than their last good record: a
    promotion, or a rollback that brought the release back and verified it)."""
    bad = set()
    for record in records:
        if record.get("kind") == "rollback" and record.get("rolled_back_from"):
            bad.add(record["rolled_back_from"])
        if is_good(record) and not moves_no_release(record):
            bad.discard(record.get("release"))
    return bad


def good_runs(records, release):
    """The ledger's runs of `release` that passed (GO, GO_WITH_WARNINGS, adopted), restores
    left out: what makes a release somewhere a rollback may go back to."""
    return [
        r
        for r in records
        if r.get("release") == release and is_good(r) and r.get("kind") != RESTORE
    ]


def record_time(record):
    return record.get("finished") or record.get("end") or record.get("started") or ""


def considered_releases(records, current, state_dir, has_manifest=None):
    """Each release of the ledger, newest first, with what the choice made of it:
    [{"release", "verdict", "kind", "at", "status"}]; status is `candidate` for the ones a
    rollback may go to, else why not. `has_manifest(release)` says whether the release can be
    started again (default: its manifest in `state_dir` on this host)."""
    if has_manifest is None:

        def has_manifest(release):
            return read_manifest(state_dir, release) is not None

    rolled_back = rolled_back_releases(records)
    seen, out = set(), []
    for record in reversed(records):
        release = record.get("release")
        if not release or release in seen or moves_no_release(record):
            continue
        good = good_runs(records, release)
        if release == current:
            status = "running now"
        elif release in rolled_back:
            status = "rolled back from since"
        elif not good:
            status = f"never good ({record.get('verdict')})"
        elif not has_manifest(release):
            status = "no release manifest on this host"
        else:
            status = "candidate"
        last = good[-1] if good else record
        seen.add(release)
        out.append(
            {
                "release": release,
                "verdict": last.get("verdict"),
                "kind": last.get("kind") or "promote",
                "at": record_time(last),
                "status": status,
            }
        )
    return out


def choose_target(
    records: list[dict[str, Any]],
    current: str,
    state_dir: str,
    has_manifest: Callable[[str], bool] | None = None,
) -> tuple[str, str]:
    """The newest good (or adopted) release in the ledger that is not `current`, not rolled back
    from since, and has a manifest on this host (or `has_manifest(release)`); returns (release,
    reason)."""
    considered = considered_releases(records, current, state_dir, has_manifest)
    for item in considered:
        if item["status"] == "candidate":
            what = "adopted release" if item["kind"] == ADOPT_KIND else "last good release"
            when = " ".join(str(v) for v in (item["verdict"], item["at"]) if v)
            return item["release"], f"{what} in the ledger ({when})"
    looked = "; ".join(f"{c['release']}: {c['status']}" for c in considered) or "it is empty"
    raise RollbackError(
        f"no previous good release to roll back to from {current or 'the current release'} in "
        f"{ledger_path(state_dir)} (considered: {looked}); name one with "
        "stagegate_rollback_to=<release>, or adopt a release that ran before stagegate "
        "(docs/adopt.md)",
        considered=considered,
    )


def placed_by(records, current):
    """The newest ledger record that put `current` in place (a good promotion, a rollback to it,
    its adoption), or None."""
    for record in reversed(records):
        if record.get("release") != current or moves_no_release(record):
            continue
        if record.get("kind") in ("rollback", ADOPT_KIND) or is_good(record):
            return record
    return None


def why_running(records, current):
    """Since when and why `current` runs, from the newest ledger record that put it there."""
    promotions = {r.get("run_id") for r in records if not r.get("kind") and r.get("run_id")}
    record = placed_by(records, current)
    if record is None:
        return f"{current} runs (no ledger record put it there)"
    at = record_time(record)
    if record.get("kind") == "rollback":
        auto = "automatic " if record.get("run_id") in promotions else ""
        source = record.get("rolled_back_from")
        return f"{current} runs since the {auto}rollback from {source} at {at}"
    if record.get("kind") == ADOPT_KIND:
        return f"{current} runs since it was adopted at {at}"
    return f"{current} runs since its promotion at {at} ({record.get('verdict')})"


def further_back(records, current, state_dir, inventory):
    """The release one good step further back and the exact command that goes there."""
    try:
        release, reason = choose_target(records, current, state_dir)
    except RollbackError:
        return None
    command = (
        f"ansible-playbook playbooks/rollback.yml -i {inventory or '<inventory>'} "
        f"-e stagegate_rollback_to={release}"
    )
    return {"release": release, "reason": reason, "command": command}


# --- git on the deploy host --------------------------------------------------------------


class Git:
    """Read-only git queries against the checkout, falling back to a local source repository."""

    def __init__(self, checkout, source_repo=None, runner=subprocess.run):
        self.checkout = checkout
        self.source_repo = source_repo
        self.runner = runner

    def _run(self, args):
        places = []
        if os.path.isdir(os.path.join(self.checkout, ".git")):
            places.append(["git", "-C", self.checkout])
        if self.source_repo and os.path.isdir(self.source_repo):
            places.append(["git", "--git-dir", git_dir(self.source_repo)])
        for prefix in places:
            proc = self.runner(prefix + args, capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return proc.stdout
        return None

    def commit_of(self, ref):
        out = self._run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"])
        return out.strip() if out else None

    def head_release(self):
        """The tag checked out in the checkout (None when HEAD is not exactly at a tag)."""
        if not os.path.isdir(os.path.join(self.checkout, ".git")):
            return None
        proc = self.runner(
            ["git", "-C", self.checkout, "describe", "--tags", "--exact-match", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def diff(self, old, new):
        """(changed file names, `git diff --stat` text) between two commits."""
        names = self._run(["diff", "--name-only", old, new]) or ""
        stat = self._run(["diff", "--stat", old, new]) or ""
        return [n for n in names.splitlines() if n], stat.rstrip()


# --- images -------------------------------------------------------------------------------


def image_action(image, inspect):
    """`present`, `retag` (the image ID exists, its tag points elsewhere) or `rebuild` (gone).

    `inspect(ref)` returns {"id": ..} or None, e.g. through the Docker SDK.
    """
    by_ref = inspect(image["ref"]) if image["ref"] else None
    if not image["id"]:
        return "present" if by_ref else "rebuild"
    by_id = inspect(image["id"])
    if by_id is None:
        return "rebuild"
    if image["ref"] and (by_ref is None or by_ref["id"] != by_id["id"]):
        return "retag"
    return "present"


def _image_step(images):
    """Step 4 of the plan in words: what happens to the target's images."""
    parts = [
        f"{verb} {', '.join(sorted(s for s, i in images.items() if i['action'] == action))}"
        for action, verb in (("rebuild", "rebuild"), ("retag", "tag back to the recorded ID"))
        if any(i["action"] == action for i in images.values())
    ]
    return "; ".join(parts) or "all present"


def image_actions(wanted, inspect):
    return {
        service: dict(image, action=image_action(image, inspect))
        for service, image in wanted.items()
    }


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInputs:
    """What the plan needs besides the host's files: the options of the rollback_plan module."""

    state_dir: str
    project_dir: str
    source_repo: str | None = None
    target: str | None = None
    database: str = "auto"
    environment: str = "staging"
    down_dir: str | None = None
    inventory: str | None = None
    migrations_dir: str | None = None  # the release's SQL files; default <project_dir>/migrations


def current_release(inputs, git, recorded_releases):
    """What runs now: the checkout's release marker (written by the source role), else the tag
    checked out, else the newest manifest written on this host; returns (release, how found)."""
    marked = read_marker(inputs.project_dir)
    if marked:
        return marked, f"{RELEASE_MARKER} in the project directory"
    release = git.head_release()
    if release:
        return release, "tag checked out in the project directory"
    paths = [manifest_path(inputs.state_dir, name) for name in recorded_releases]
    paths = [p for p in paths if os.path.exists(p)]
    if paths:
        newest = max(paths, key=os.path.getmtime)
        return os.path.basename(os.path.dirname(newest)), "newest release manifest on the host"
    raise RollbackError(
        f"cannot tell which release runs: {inputs.project_dir} has no {RELEASE_MARKER}, is not a "
        f"git checkout at a tag, and {releases_dir(inputs.state_dir)} holds no manifest"
    )


def applied_before_stop(bad_manifest, migrations, applied_in_database):
    """The migrations an unfinished deploy (its manifest still marked in progress: it failed or
    was killed) had applied, as the database records them: its manifest lists what it was
    about to apply. `applied_in_database(names)` returns the names the database records, or
    None when it cannot tell. Returns (migrations, note); a finished deploy's are its own."""
    if not (bad_manifest or {}).get(IN_PROGRESS) or not migrations:
        return migrations, ""
    applied = applied_in_database(migrations)
    if applied is None:
        return migrations, ""
    done = [m for m in migrations if m in applied]
    if len(done) == len(migrations):
        return migrations, ""
    missing = ", ".join(m for m in migrations if m not in applied)
    return done, f"its deploy stopped before it applied {missing} (not in the database)"


def database_plan(inputs, bad_manifest, bad_release, applied_in_database=None):
    """What happens to the database: restore the backup taken before the bad release, revert
    its migrations with their down scripts, or nothing (the bad release changed no schema, or
    the operator said so). `applied_in_database` (see `applied_before_stop`) tells which
    migrations a deploy that did not finish had applied."""
    migrations, stopped_note = manifest_migrations(bad_manifest), ""
    if inputs.database != "none":  # none: the database is not touched, nor read
        migrations, stopped_note = applied_before_stop(
            bad_manifest, migrations, applied_in_database or (lambda _: None)
        )
    alembic = manifest_alembic(bad_manifest)
    changes = len(migrations) + len(alembic["revisions"] if alembic else [])
    archive, backup_manifest = manifest_backup(bad_manifest)
    plan = {
        "action": "none",
        "migrations_reverted": migrations,
        # Alembic revisions it applied (newest first) and the revision a downgrade goes to
        "alembic": {
            "revisions": alembic["revisions"][::-1],
            "downgrade_to": alembic["from"] or "base",
        }
        if alembic
        else None,
        "backup": archive,
        "backup_manifest": backup_manifest,
        # the TEMPLATE snapshot taken right before it migrated (pg_snapshot), if any
        "snapshot": manifest_snapshot(bad_manifest),
    }
    if inputs.database == "none" or (inputs.database in ("auto", "downgrade") and not changes):
        plan["reason"] = (
            "disabled (stagegate_rollback_database=none)"
            if inputs.database == "none"
            else f"{bad_release} applied no migrations"
            + (f": {stopped_note}" if stopped_note else "")
        )
        if inputs.database != "none":
            plan.update(migrations_reverted=[], alembic=None)
        return plan
    if inputs.database == "downgrade":
        migrations_dir = inputs.migrations_dir or os.path.join(inputs.project_dir, "migrations")
        down_dir = inputs.down_dir or os.path.join(migrations_dir, "down")
        missing = [m for m in migrations if not os.path.isfile(os.path.join(down_dir, m))]
        if missing:
            raise RollbackError(
                f"stagegate_rollback_database=downgrade: {down_dir} has no down script for "
                f"{', '.join(missing)}; restore the backup instead (auto or restore)"
            )
        plan.update(
            action="downgrade",
            reason=(
                f"down scripts revert the {len(migrations)} migration(s) {bad_release} applied"
                if not alembic
                else f"alembic downgrade {plan['alembic']['downgrade_to']}"
                + (f" and down scripts revert {len(migrations)} migration(s)" if migrations else "")
                + f": {changes} change(s) {bad_release} applied"
            ),
            down_dir=down_dir,
        )
        return plan
    if not archive:
        raise RollbackError(
            f"{bad_release} applied migrations ({', '.join(migrations + _revisions(alembic))}) "
            "but its manifest "
            f"{manifest_path(inputs.state_dir, bad_release)} names no backup to restore; set "
            "stagegate_rollback_database=none to keep the database as it is"
        )
    if not os.path.exists(archive):
        raise RollbackError(
            f"the backup {archive} taken before {bad_release} is missing on the deploy host"
        )
    plan.update(
        action="restore",
        reason=(
            f"{bad_release} applied {changes} migration(s)"
            + (f"; {stopped_note}" if stopped_note else "")
            if changes
            else "forced (stagegate_rollback_database=restore)"
        ),
    )
    return plan


def _written_since(database, bad_release):
    """What a restore does to the rows written since the backup (docs/rollback.md)."""
    if database.get("snapshot"):
        return (
            f"  data written since {bad_release} migrated is not in the snapshot: the database "
            "it replaces is kept as <db>_stagegate_failed_<run id>"
        )
    return (
        "  data written since the backup is lost (the dump holds the database as it was before "
        f"{bad_release}); take a backup first (playbooks/backup.yml), or revert with down "
        "scripts instead (stagegate_rollback_database=downgrade)"
    )


def _revisions(alembic):
    return [f"alembic {rev}" for rev in alembic["revisions"]] if alembic else []


def nothing_to_do(release, reason, records=(), inputs=None):
    """Nothing to roll back: what runs and why, what the ledger offered, one step further."""
    records = list(records)
    state_dir = inputs.state_dir if inputs else ""
    return {
        "nothing_to_do": True,
        "current": {"release": release, "why": why_running(records, release)},
        "target": {"release": release, "reason": reason},
        "considered": considered_releases(records, release, state_dir) if inputs else [],
        "further_back": further_back(records, release, state_dir, inputs.inventory)
        if inputs
        else None,
    }


def refuse_named_target(records, target, current, state_dir):
    """stagegate_rollback_to names where a rollback goes back to: a release that ran here
    (its manifest on this host or its runs in the ledger) and passed (GO, GO_WITH_WARNINGS, or
    adopted). Raises RollbackError naming the release, what this host knows of it and the
    releases a rollback can go to."""
    considered = considered_releases(records, current, state_dir)
    ran = any(c["release"] == target for c in considered)
    candidates = ", ".join(c["release"] for c in considered if c["status"] == "candidate")
    offer = (
        f"; a rollback can go to: {candidates}"
        if candidates
        else "; no release in the ledger is a rollback target now"
    )
    if not ran and read_manifest(state_dir, target) is None:
        raise RollbackError(
            f"stagegate_rollback_to: {target!r} never ran here: no release manifest "
            f"{manifest_path(state_dir, target)} and no run of it in {ledger_path(state_dir)}. "
            f"A rollback goes back to a release that ran; to run {target}, promote it "
            f"(staging.yml -e stagegate_release={target}){offer}"
        )
    # whatever else its status says (a NO_GO release rolled back from is "rolled back from since")
    if ran and not good_runs(records, target):
        verdicts = ", ".join(
            f"{r.get('verdict')} at {record_time(r)}" for r in records if r.get("release") == target
        )
        raise RollbackError(
            f"stagegate_rollback_to: {target!r} never passed here (its runs: {verdicts}); a "
            f"rollback goes back to a release that ran GO or GO_WITH_WARNINGS, or was "
            f"adopted{offer}"
        )


def build_plan(inputs, inspect_image, git=None, state=None, applied_in_database=None):
    """The whole plan as a dict (see the rollback_plan module's RETURN). `applied_in_database`:
    see `applied_before_stop`."""
    git = git or Git(inputs.project_dir, inputs.source_repo)
    directory = releases_dir(inputs.state_dir)
    known = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    # A torn or corrupt ledger line never stops a rollback: it is skipped and shown in the plan.
    records, ledger_warnings = scan(ledger_path(inputs.state_dir))

    current, current_reason = current_release(inputs, git, known)
    # A finished rollback to the release that runs, unless the release was promoted again since
    # (the ledger's newest record that put it there is then that promotion, not the rollback).
    placed = placed_by(records, current)
    finished = (
        state
        and state.get("status") == DONE
        and state.get("to") == current
        and (placed is None or placed.get("kind") == "rollback")
    )
    if finished and inputs.target in (None, current):
        return nothing_to_do(
            current, f"already rolled back from {state.get('from')}", records, inputs
        )
    if inputs.target:
        target, reason = inputs.target, "named by stagegate_rollback_to"
    else:
        target, reason = choose_target(records, current, inputs.state_dir)
    if target == current:
        return nothing_to_do(current, f"{target} is already running", records, inputs)

    target_manifest = read_manifest(inputs.state_dir, target)
    bad_manifest = read_manifest(inputs.state_dir, current)
    current_ref, target_ref = git.commit_of(current), git.commit_of(target)
    if not target_ref:
        raise RollbackError(
            f"stagegate_rollback_to: release {target!r} is not a tag of {inputs.project_dir}"
            + (f" nor of {inputs.source_repo}" if inputs.source_repo else "")
        )
    if inputs.target:
        refuse_named_target(records, target, current, inputs.state_dir)
    files, stat = git.diff(target_ref, current_ref) if current_ref else ([], "")
    images = image_actions(manifest_images(target_manifest), inspect_image)
    rebuild = sorted(s for s, i in images.items() if i["action"] == "rebuild")
    database = database_plan(inputs, bad_manifest, current, applied_in_database)
    # a strategy without images (symlink): the link its deploy recorded
    link = ((target_manifest or {}).get("extra") or {}).get("link")
    return {
        "nothing_to_do": False,
        "environment": inputs.environment,
        "current": {
            "release": current,
            "ref": current_ref,
            "found_by": current_reason,
            "manifest": manifest_path(inputs.state_dir, current) if bad_manifest else None,
        },
        "target": {
            "release": target,
            "ref": target_ref,
            "reason": reason,
            "manifest": manifest_path(inputs.state_dir, target) if target_manifest else None,
            "link": link,
        },
        "files_changed": files,
        "diff_stat": stat,
        "images": images,
        "rebuild": rebuild,
        "database": database,
        "considered": considered_releases(records, current, inputs.state_dir),
        "steps": list(STEPS),
        # from the durations the ledger measured (rollbacks, promotions' phases, the dump)
        "estimate": rollback_estimate(
            records, database=database, rebuild=rebuild, target=target, images=not link
        ),
        "ledger_warnings": ledger_warnings,
    }


# --- the state file ------------------------------------------------------------------------


class RollbackState:
    """`<state_dir>/rollback.json`: the plan being carried out and the steps done so far."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, STATE_FILE)

    def read(self) -> dict[str, Any] | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RollbackError(f"rollback state {self.path} cannot be read: {exc}") from exc

    def write(self, record):
        """Atomic (a kill never leaves half a state file); raises StateFileError naming why."""
        write_json_atomic(self.path, record, "the rollback state")

    @staticmethod
    def resumed(record):
        """What the report says about the interrupted rollback a run resumes."""
        done = record.get("steps_done") or {}
        return {
            "run_id": record.get("run_id"),
            "started": record.get("started"),
            "status": record.get("status"),
            "steps_done": [step for step in STEPS if step in done],
        }

    @staticmethod
    def begin(plan, run_id, controller):
        return {
            "status": IN_PROGRESS,
            "run_id": run_id,
            "controller": controller or {},
            "from": plan["current"]["release"],
            "to": plan["target"]["release"],
            "plan": plan,
            "steps_done": {},
            "started": utc_now(),
        }


def adoptable_run_id(resumed, state, lock, controller_alive):
    """The run id a re-run adopts (and so the deploy lock), decided by the run state on the deploy
    host, not by which controller ran it: an AWX job runs in a new pod, so the killed run's host
    and pid say nothing there.

    Adopted when rollback.json holds a resumable rollback (`resumed`) whose run id also owns the
    deploy lock (or the lock is free), unless its controller process is known to be alive
    (`controller_alive`: same controller host, same process). "" otherwise: the lock rules apply.
    """
    run_id = (state or {}).get("run_id") or ""
    if not resumed or not run_id or controller_alive:
        return ""
    holder = (lock or {}).get("run_id")
    return run_id if holder in (None, run_id) else ""


# --- the plan as an on-call engineer reads it -----------------------------------------------


def _short(ref):
    return (ref or "?")[:12]


def _considered_lines(plan):
    considered = plan.get("considered") or []
    if not considered:
        return []
    return ["Ledger releases considered (newest first):"] + [
        f"  {c['release']:<20} {c['kind']} {c['verdict']} {c['at']}: {c['status']}"
        for c in considered
    ]


def _estimate_lines(estimate):
    if not estimate:  # a plan recorded by an older version (a resumed rollback)
        return []
    lines = [f"Estimated time:   {estimate['text']}"]
    lines += [
        f"  {name}: ~{part['seconds']:g} s ({part['basis']})"
        for name, part in estimate["parts"].items()
    ]
    return lines


def _image_lines(images):
    if not images:
        return ["  (none recorded in the target's manifest: the target tag's compose file)"]
    return [
        f"  {service:<12} {_short(image['id'].split(':')[-1])}  "
        + ("rebuild from the target tag" if image["action"] == "rebuild" else image["action"])
        for service, image in sorted(images.items())
    ]


def summary_lines(plan, app_services):
    """The plan as text, in the shape of a runbook's rollback dry-run."""
    current, target = plan["current"], plan["target"]
    if plan.get("nothing_to_do"):
        lines = [f"Nothing to roll back: {target['release']} runs ({target['reason']})."]
        if current.get("why"):
            lines.append(f"Why:              {current['why']}")
        lines += _considered_lines(plan)
        further = plan.get("further_back")
        if further:
            lines += [
                f"One good release further back: {further['release']} ({further['reason']}):",
                f"  {further['command']}",
            ]
        elif "further_back" in plan:
            lines.append("No good release further back in the ledger.")
        return lines
    database = plan["database"]
    lines = [
        f"Current release:  {current['release']} ({_short(current['ref'])}), {current['found_by']}",
        f"Rollback target:  {target['release']} ({_short(target['ref'])}), {target['reason']}",
        f"Files affected:   {len(plan['files_changed'])}",
    ]
    lines += [f"  {name}" for name in plan["files_changed"]]
    link = target.get("link")
    if link:
        lines.append(f"Release link:     {link['current']} -> {link['target']}")
        release_steps = [
            f"  4. switch {link['current']} to {link['target']}",
            f"  5. start the programs of {target['release']} from the link, tier by tier",
        ]
    else:
        lines += ["Images:", *_image_lines(plan["images"])]
        release_steps = [
            f"  4. images: {_image_step(plan['images'])}",
            f"  5. start in tiers with the images of {target['release']}",
        ]
    lines.append(f"Database:         {database['action']} ({database['reason']})")
    if database["action"] == "restore":
        lines.append(f"  backup: {database['backup']}")
        lines.append(_written_since(database, current["release"]))
    if database["action"] == "downgrade":
        lines.append(f"  down scripts: {database['down_dir']}")
    if database["migrations_reverted"]:
        lines.append(f"  migrations reverted: {', '.join(database['migrations_reverted'])}")
    alembic = database.get("alembic")
    if alembic:
        how = (
            f"alembic downgrade {alembic['downgrade_to']}"
            if database["action"] == "downgrade"
            else f"alembic_version back at {alembic['downgrade_to']}"
        )
        lines.append(f"  alembic revisions reverted: {', '.join(alembic['revisions'])} ({how})")
    lines += _considered_lines(plan)
    lines += _estimate_lines(plan.get("estimate"))
    lines += [f"Ledger warning:   {warning}" for warning in plan.get("ledger_warnings", [])]
    services = ", ".join(app_services) or "the app tier"
    lines += [
        "Steps:",
        f"  1. stop {services} of {current['release']} (the database keeps running)",
        f"  2. database: {database['action']}",
        f"  3. check out {target['release']} ({_short(target['ref'])})",
        *release_steps,
        "  6. verify with the release checks, report",
        "  7. record the rollback in the ledger, release the lock",
    ]
    return lines
