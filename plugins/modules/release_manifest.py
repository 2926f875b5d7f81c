#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_manifest
short_description: Read or write a release manifest on the deploy host
description:
  - Writes C(<state_dir>/releases/<release>/manifest.json) after a deploy with what rollback
    needs; the release, the release before it, the compose project with its files and their
    hash, the image ID per service, the backup taken before it, the migrations applied, times.
  - Writes atomically (temporary file in the same directory, fsync, rename), so a reader never
    sees half a manifest; writes only when the content differs (C(written_at) aside).
  - O(state=read) returns a release's manifest, or the latest one when O(release) is omitted,
    with the list of recorded releases, newest first. With O(checkout) it reads the release
    the checkout's marker names (C(.stagegate-release)) and that release's manifest, in one
    module run (the source role's first step).
version_added: "0.1.0"
author: stagegate developers (@stagegate)
options:
  state_dir:
    description: The deploy host's state directory (inventory variable C(stagegate_state_dir)).
    type: path
    required: true
  release:
    description:
      - The release (inventory variable C(stagegate_release)). Required with O(state=present).
      - With O(state=read), omitted means the latest recorded release.
    type: str
  checkout:
    description:
      - With O(state=read), the project directory whose release marker names the release to
        read (returned as RV(marker)); no marker (a first deploy, a checkout made by hand)
        reads no manifest. Not with O(release).
    type: path
  state:
    description:
      - C(present) writes the manifest, C(read) returns it, C(absent) removes it.
    type: str
    choices: [present, read, absent]
    default: present
  previous_release:
    description:
      - The release this one replaces. Default is the newest other release recorded in
        O(state_dir) (none for the first).
    type: str
  compose:
    description: The compose project (C(project), C(files), C(files_sha256), C(config_sha256)).
    type: dict
    default: {}
  images:
    description: Image ID (or image reference) per service.
    type: dict
    default: {}
  backup:
    description: Reference to the backup taken before this release (path, checksum, ...).
    type: raw
  migrations_applied:
    description: Migrations this release applied, in order.
    type: list
    elements: raw
    default: []
  alembic:
    description:
      - >-
        The Alembic revisions this release applied, C(revisions) (oldest first), and C(from),
        the revision the database was at before them (null for none). A rollback by downgrade
        runs C(alembic downgrade <from>) (C(base) when null). Kept out of the manifest when
        C(revisions) is empty.
      - With O(merge=true) the recorded C(from) is kept and new revisions are added after the
        recorded ones.
    type: dict
  started_at:
    description: When the deploy started (ISO 8601).
    type: str
  finished_at:
    description: When the deploy finished (ISO 8601).
    type: str
  extra:
    description: Further facts to keep with the release (must not hold secrets).
    type: dict
    default: {}
  merge:
    description:
      - With O(state=present), start from the manifest this host recorded for O(release), as a
        re-run of a deploy does; O(backup) replaces its backup only when given and this run
        has migrations to apply (O(migrations_applied), or O(alembic) revisions), since a
        re-run with nothing pending backs up the release's own schema, not what came before it;
        O(migrations_applied) are added after its own (each once), and its O(started_at) and
        O(finished_at) are kept unless O(deployed=true) (or it has none).
      - Without a recorded manifest it is the same as O(merge=false). So is a write with
        O(in_progress) whose O(previous_release) is given and another release, when the
        recorded manifest is not itself in progress - an earlier deploy of the release that was
        since replaced (rolled back from), whose migrations and backup are not this deploy's.
    type: bool
    default: false
  deployed:
    description:
      - With O(merge=true), whether this run changed the deployment (started, recreated or
        migrated something). A run that did not keeps the recorded times, so the manifest is
        not rewritten; one that did records O(started_at) and O(finished_at) (default now).
    type: bool
    default: true
  in_progress:
    description:
      - Marks the manifest as written by a deploy that is still changing the release that runs
        (C(run_id), C(step), C(started_at)). The deploy role writes it first when the release
        changes (step C(plan), before it starts anything) and again before it stops the app
        tier and migrates (the migrations it is about to apply), so a run that fails or is
        killed from there on leaves a manifest naming the backup this run took and the
        migrations it was applying, for a rollback or a re-run. The deploy's final write leaves
        it out.
      - A manifest read back with it set, whose run has no record in the ledger (it never
        reached its report), is an interrupted deploy; O(state=read) returns it as
        RV(interrupted).
    type: dict
attributes:
  check_mode:
    description: Computes the manifest and reports whether it would be written; writes nothing.
    support: full
  diff_mode:
    description: Returns the manifest before and after.
    support: full
  idempotent:
    description: The same content is not written again.
    support: full
seealso:
  - module: stagegate.release.compose_up_tiers
"""

EXAMPLES = r"""
- name: Record the release
  stagegate.release.release_manifest:
    state_dir: "{{ stagegate_state_dir }}"
    release: "{{ stagegate_release }}"
    compose:
      project: "{{ stagegate_compose_project }}"
      files: "{{ stagegate_compose_files }}"
      files_sha256: "{{ config.files_sha256 }}"
    images: "{{ startup.services | dict2items | items2dict(value_name='value') }}"
    migrations_applied: "{{ migrate.applied | default([]) }}"

- name: Record the deploy, keeping what an earlier run of the same release recorded
  stagegate.release.release_manifest:
    state_dir: "{{ stagegate_state_dir }}"
    release: "{{ stagegate_release }}"
    merge: true
    deployed: "{{ startup is changed or migrate is changed }}"
    images: "{{ startup.images }}"
    migrations_applied: "{{ pending.pending }}"
    started_at: "{{ deploy_started_at }}"

- name: Which release is live, and which one came before
  stagegate.release.release_manifest:
    state_dir: "{{ stagegate_state_dir }}"
    state: read
  register: current
"""

RETURN = r"""
manifest:
  description: The manifest written (check mode, that would be written) or read; null when none.
  returned: always
  type: dict
  sample:
    schema: 1
    release: v2
    previous_release: v1
    compose: {project: sandbox, files: [compose.yaml], files_sha256: "9f2c..."}
    images: {api: "sha256:5cc0e43a..."}
    backup: {path: /var/lib/stagegate/staging/backups/app-v1.dump}
    migrations_applied: [002_add_orders.sql]
    started_at: "2026-11-22T12:00:00Z"
    finished_at: "2026-11-22T12:01:10Z"
    written_at: "2026-11-22T12:01:10Z"
path:
  description: The manifest file.
  returned: when a release is known
  type: str
interrupted:
  description:
    - With O(state=read), when the manifest read was written by a deploy that never finished
      (O(in_progress) still set and no ledger record of its run, which was killed or lost),
      that run's C(run_id), C(step) and C(started_at), with the manifest's C(release),
      C(previous_release), C(backup) and the C(migrations) it had begun to apply. Null
      otherwise.
  returned: always
  type: dict
  sample:
    run_id: staging-20261130T1203-4f2a
    step: migrations
    started_at: "2026-11-30T12:03:41Z"
    release: v2
    previous_release: v1
    backup: {path: /var/lib/stagegate/staging/backups/app-v2-staging-20261130T1203-4f2a.dump}
    migrations: [006_composite_indexes.sql, 007_reporting_views.sql]
marker:
  description: With O(checkout), the release its marker names; null when it has none.
  returned: when O(checkout) is given
  type: str
  sample: v1
releases:
  description: Recorded releases, newest first (by C(written_at)).
  returned: always
  type: list
  elements: str
"""

import contextlib
import json
import os
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils import _ledger
from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    EXPECTED_NAME,
    UnsafeNameError,
    read_marker,
    release_manifest_path,
    releases_dir,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    StateFileError,
    ensure_dir,
    write_json_atomic,
)

SCHEMA_VERSION = 1
# Set by the module on every write: not part of what makes two manifests differ.
VOLATILE_KEYS = frozenset({"written_at"})


class ManifestManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.releases_dir = releases_dir(self.params["state_dir"])

    def path(self, release: str) -> str:
        try:
            return release_manifest_path(self.params["state_dir"], release)
        except UnsafeNameError as exc:
            self.module.fail_json(
                msg=f"release={release!r} {exc.problem}: expected a release name, not a path "
                f"({EXPECTED_NAME})"
            )
        return ""  # not reached: fail_json exits

    def load(self, release: str) -> dict[str, Any] | None:
        path = self.path(release)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                return dict(json.load(fh))
        except (OSError, ValueError) as exc:
            self.module.fail_json(msg=f"cannot read manifest {path}: {exc}")
        return None  # not reached: fail_json exits

    def recorded(self) -> list[dict[str, Any]]:
        """Every readable manifest, newest first."""
        if not os.path.isdir(self.releases_dir):
            return []
        found = []
        for name in os.listdir(self.releases_dir):
            if os.path.isfile(release_manifest_path(self.params["state_dir"], name)):
                manifest = self.load(name)
                if manifest:
                    found.append(manifest)
        return sorted(found, key=lambda m: str(m.get("written_at", "")), reverse=True)

    def desired(
        self, release: str, recorded: list[dict[str, Any]], before: dict[str, Any] | None
    ) -> dict[str, Any]:
        previous = self.params["previous_release"]
        if previous is None:
            previous = next((m["release"] for m in recorded if m.get("release") != release), None)
        fresh = self.fresh(release, previous)
        if not self.params["merge"]:
            return fresh
        if replaced_since(before, fresh, self.params["previous_release"]):
            before = None
        return merged(before, fresh, self.params["deployed"])

    def fresh(self, release: str, previous: str | None) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "release": release,
            "previous_release": previous,
            "compose": self.params["compose"],
            "images": self.params["images"],
            "backup": self.params["backup"],
            "migrations_applied": self.params["migrations_applied"],
            **_alembic_record(self.params["alembic"]),
            "started_at": self.params["started_at"],
            "finished_at": self.params["finished_at"],
            "extra": self.params["extra"],
            **({"in_progress": self.params["in_progress"]} if self.params["in_progress"] else {}),
        }

    def write(self, path: str, manifest: dict[str, Any]) -> None:
        """Atomic; a failure names the file, the operation and the cause (StateFileError)."""
        try:
            ensure_dir(os.path.dirname(path), "the release directory", mode=0o755)
            write_json_atomic(path, manifest, "the release manifest", mode=0o644)
        except StateFileError as exc:
            self.module.fail_json(msg=str(exc), path=path)

    def run(self) -> dict[str, Any]:
        state = self.params["state"]
        release = self.params["release"]
        recorded = self.recorded()
        releases = [str(m.get("release")) for m in recorded]
        if state == "read":
            checkout = self.params["checkout"]
            if checkout:
                release = read_marker(checkout)
                latest = None  # no marker: no release to read, not the newest recorded
            else:
                latest = recorded[0] if recorded else None
            manifest = self.load(release) if release else latest
            result = {
                "changed": False,
                "manifest": manifest,
                "releases": releases,
                "interrupted": interrupted(manifest, self.params["state_dir"]),
            }
            if manifest:
                result["path"] = self.path(str(manifest["release"]))
            if checkout:
                result["marker"] = release
            return result
        if not release:
            self.module.fail_json(msg=f"release is required with state={state}")
        path = self.path(release)
        before = self.load(release)
        if state == "absent":
            return self._remove(path, before, releases)
        after = self.desired(release, recorded, before)
        changed = before is None or _content(before) != _content(after)
        after["written_at"] = (
            datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if changed
            else before.get("written_at")  # type: ignore[union-attr]
        )
        if changed and not self.module.check_mode:
            self.write(path, after)
            releases = [str(m.get("release")) for m in self.recorded()]
        return {
            "changed": changed,
            "manifest": after,
            "path": path,
            "releases": releases,
            "diff": {"before": before or {}, "after": after},
        }

    def _remove(
        self, path: str, before: dict[str, Any] | None, releases: list[str]
    ) -> dict[str, Any]:
        if before is not None and not self.module.check_mode:
            os.unlink(path)
            with contextlib.suppress(OSError):  # keep a directory that holds more than this
                os.rmdir(os.path.dirname(path))
            releases = [r for r in releases if r != before.get("release")]
        return {
            "changed": before is not None,
            "manifest": None,
            "path": path,
            "releases": releases,
            "diff": {"before": before or {}, "after": {}},
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def merged(before: dict[str, Any] | None, fresh: dict[str, Any], deployed: bool) -> dict[str, Any]:
    """A re-run's manifest: what the host recorded for the release, updated by this run."""
    # A deploy still in progress (its first write, before it changes anything) has not finished.
    finished = None if fresh.get("in_progress") else fresh["finished_at"] or _now()
    if not before:
        return {**fresh, "finished_at": finished}
    applied = list(before.get("migrations_applied") or [])
    applied += [m for m in fresh["migrations_applied"] if m not in applied]
    out = {
        **fresh,
        **_merged_alembic(before.get("alembic"), fresh.get("alembic")),
        # the in-progress write knows no images yet: the recorded ones stay until the last write
        "images": fresh["images"] or before.get("images") or {},
        "backup": _merged_backup(before.get("backup"), fresh),
        "migrations_applied": applied,
    }
    if deployed:
        out["finished_at"] = finished
    else:
        out["started_at"] = before.get("started_at") or fresh["started_at"]
        out["finished_at"] = before.get("finished_at") or fresh["finished_at"] or _now()
    return out


def replaced_since(
    before: dict[str, Any] | None, fresh: dict[str, Any], running: str | None
) -> bool:
    """Whether `before` is an earlier deploy of the release that another release has since
    replaced, so this deploy (a write marked in progress, over `running`, the release that
    runs as the caller knows it; never guessed) starts its manifest over. Merged, its
    migrations and its backup (taken before that earlier deploy) would be what a rollback from
    this deploy reverts and restores: data lost since then (a re-promotion after a rollback)."""
    return bool(
        before
        and not before.get("in_progress")  # an interrupted deploy of the release is resumed
        and fresh.get("in_progress")
        and running
        and running != fresh["release"]
    )


def _merged_backup(recorded: Any, fresh: dict[str, Any]) -> Any:
    """A re-run's backup replaces the recorded one only when the re-run changes the database
    (migrations or Alembic revisions to apply). The recorded one was taken before the release
    first migrated it, and is what a rollback from this release restores; a re-run with
    nothing pending backs up the release's own schema (a trial's rollback restored such a dump
    and left the earlier release running on this one's tables)."""
    changes_database = bool(fresh["migrations_applied"]) or bool(
        (fresh.get("alembic") or {}).get("revisions")
    )
    if fresh["backup"] is None or (recorded and not changes_database):
        return recorded
    return fresh["backup"]


def _alembic_record(alembic: dict[str, Any] | None) -> dict[str, Any]:
    """{"alembic": {"from", "revisions"}} when revisions were applied, else nothing."""
    revisions = [str(r) for r in (alembic or {}).get("revisions") or []]
    if not revisions:
        return {}
    return {"alembic": {"from": (alembic or {}).get("from") or None, "revisions": revisions}}


def _merged_alembic(before: Any, fresh: Any) -> dict[str, Any]:
    """A re-run keeps the revision the database was at before the release's first run."""
    if not isinstance(before, dict) or not before.get("revisions"):
        return _alembic_record(fresh)
    revisions = list(before["revisions"])
    revisions += [r for r in (fresh or {}).get("revisions", []) if r not in revisions]
    return {"alembic": {"from": before.get("from"), "revisions": revisions}}


def interrupted(manifest: dict[str, Any] | None, state_dir: str) -> dict[str, Any] | None:
    """The deploy that wrote `manifest` and never finished, or None.

    Its `in_progress` mark is still there and its run never reached the ledger: a run that
    failed and reported (a NO_GO record) is over, one killed before its report is not.
    """
    mark = (manifest or {}).get("in_progress")
    if not isinstance(mark, dict) or manifest is None or not mark.get("run_id"):
        return None
    records, _ = _ledger.scan(_ledger.ledger_path(state_dir))
    if any(r.get("run_id") == mark["run_id"] for r in records):
        return None
    return {
        **mark,
        "release": manifest.get("release"),
        "previous_release": manifest.get("previous_release"),
        "backup": manifest.get("backup"),
        "migrations": manifest.get("migrations_applied") or [],
    }


def _content(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k not in VOLATILE_KEYS}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "release": {"type": "str"},
            "checkout": {"type": "path"},
            "state": {
                "type": "str",
                "default": "present",
                "choices": ["present", "read", "absent"],
            },
            "previous_release": {"type": "str"},
            "compose": {"type": "dict", "default": {}},
            "images": {"type": "dict", "default": {}},
            "backup": {"type": "raw"},
            "migrations_applied": {"type": "list", "elements": "raw", "default": []},
            "alembic": {"type": "dict"},
            "started_at": {"type": "str"},
            "finished_at": {"type": "str"},
            "extra": {"type": "dict", "default": {}},
            "merge": {"type": "bool", "default": False},
            "deployed": {"type": "bool", "default": True},
            "in_progress": {"type": "dict"},
        },
        mutually_exclusive=[("release", "checkout")],
        supports_check_mode=True,
    )
    module.exit_json(**ManifestManager(module).run())


if __name__ == "__main__":
    main()
