# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release ref resolved against the release repository, before anything changes.

Standard library only (runs on the deploy host inside the `release_ref` module). A release is a
tag (or a branch, or a commit of a local repository); a name the repository does not have is
refused with the tags nearest to it, so `-e stagegate_release=v9` (or `2`) stops in preflight,
before the lock, and says what exists.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
NEAREST = 5


class RefError(Exception):
    """The ref cannot be resolved; the message names the ref and the nearest tags."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def remote_refs(repo: str, runner: Runner = subprocess.run) -> dict[str, dict[str, str]]:
    """{"tags": {name: commit}, "heads": {name: commit}} of `repo` (`git ls-remote`)."""
    argv = ["git", "ls-remote", "--tags", "--heads", repo]
    proc = runner(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RefError(
            f"stagegate_source_repo: cannot list the refs of {repo!r}: "
            f"{(proc.stderr or proc.stdout).strip() or 'git ls-remote failed'}",
            cmd=argv,
            rc=proc.returncode,
            stderr=proc.stderr,
        )
    refs: dict[str, dict[str, str]] = {"tags": {}, "heads": {}}
    for line in proc.stdout.splitlines():
        commit, _, name = line.partition("\t")
        for kind, found in refs.items():
            prefix = f"refs/{kind}/"
            if name.startswith(prefix):
                short = name[len(prefix) :]
                if short.endswith("^{}"):  # an annotated tag, peeled: the commit it names
                    found[short[:-3]] = commit
                else:
                    found.setdefault(short, commit)
    return refs


def nearest(name: str, candidates: list[str], count: int = NEAREST) -> list[str]:
    """The `count` candidates most like `name` (then newest-looking first: v10 before v9)."""

    def score(candidate: str) -> tuple[float, list[Any]]:
        ratio = difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio()
        natural = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", candidate)]
        return ratio, natural

    return sorted(candidates, key=score, reverse=True)[:count]


def local_commit(repo: str, ref: str, runner: Runner = subprocess.run) -> str | None:
    """The commit `ref` names in a local repository (None when not local or not found)."""
    if not os.path.isdir(repo):
        return None
    proc = runner(
        [
            "git",
            "--git-dir",
            git_dir(repo),
            "rev-parse",
            "--verify",
            "--quiet",
            f"{ref}^{{commit}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_dir(repo: str) -> str:
    """The git directory of a local repository: its `.git`, or the repository itself (bare)."""
    dot_git = os.path.join(repo, ".git")
    return dot_git if os.path.isdir(dot_git) else repo


def resolve(repo: str, ref: Any, runner: Runner = subprocess.run) -> dict[str, Any]:
    """{"release", "commit", "kind" (tag, branch, commit), "tags"} or RefError naming the
    nearest tags."""
    release = str(ref if ref is not None else "").strip()
    refs = remote_refs(repo, runner)
    tags = sorted(refs["tags"])
    if not release:
        raise RefError(
            "stagegate_release: empty; name a release (a tag of the repository), e.g. "
            + ", ".join(nearest("", tags)),
            tags=tags,
        )
    for kind, found in (("tag", refs["tags"]), ("branch", refs["heads"])):
        if release in found:
            return {"release": release, "commit": found[release], "kind": kind, "tags": tags}
    if COMMIT_RE.match(release):
        commit = local_commit(repo, release, runner)
        if commit:
            return {"release": release, "commit": commit, "kind": "commit", "tags": tags}
    close = nearest(release, tags)
    raise RefError(
        f"stagegate_release: {release!r} is not a tag or branch of {repo}; "
        + (f"nearest tags: {', '.join(close)}" if close else "the repository has no tag")
        + f" ({len(tags)} tag(s) in all)",
        nearest=close,
        tags=tags,
    )
