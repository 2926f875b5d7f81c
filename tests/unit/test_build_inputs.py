"""The build (plugins/modules/compose_build.py). Its build-input hash (`build_inputs_sha256`)
over a real git checkout whose root is the build context (`build: context: ..`, a new user's
layout): what stagegate's own checkout changes on every run (git's files, the release marker)
is not a build input; the commit checked out and the files are. Its one-line summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    build_inputs_sha256,
)
from ansible_collections.stagegate.release.plugins.modules.compose_build import summary

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@stagegate.invalid"]


def git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True)


def inputs(context: Path) -> str | None:
    return build_inputs_sha256({"context": str(context)}, {}, lambda ref: "sha256:base")


def test_the_checkout_s_own_files_are_not_build_inputs_the_commit_is(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY app.py /app.py\n")
    (repo / "app.py").write_text("print('v1')\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "v1")  # detached at the tag, as stagegate checks a release out
    first = inputs(repo)

    # A re-run of the same release: stagegate writes its marker, git its index and logs.
    (repo / ".stagegate-release").write_text("v1\n")
    git(repo, "checkout", "-q", "--detach", "v1")
    git(repo, "status", "--porcelain")
    assert inputs(repo) == first

    # Another commit with the same files is another checkout (a build may read it)...
    git(repo, "commit", "-q", "--allow-empty", "-m", "v1.0.1")
    assert inputs(repo) != first
    # ...and a changed file is a changed input, as before.
    git(repo, "checkout", "-q", "v1")
    (repo / "app.py").write_text("print('v2')\n")
    assert inputs(repo) != first

    # A .dockerignore that leaves .git out: Docker never sees it, nor does the hash.
    (repo / "app.py").write_text("print('v1')\n")
    (repo / ".dockerignore").write_text(".git\n")
    ignored = inputs(repo)
    git(repo, "commit", "-q", "--allow-empty", "-m", "later")
    assert inputs(repo) == ignored


def test_the_build_summary_names_what_was_built_tagged_and_not_built_yet() -> None:
    images = {
        "api": {"id": "sha256:" + "a" * 64, "size": 150 * 1048576, "size_grade": "PASS",
                "built": True},
        "postgres": {"id": "sha256:" + "b" * 64, "size": 400 * 1048576, "size_grade": None,
                     "built": False},
    }  # fmt: skip
    assert summary(images, ["api", "postgres"], "v2", check_mode=False) == (
        "Built api; tagged postgres with v2 (image unchanged); "
        "api aaaaaaaaaaaa 150.0 MB PASS; postgres bbbbbbbbbbbb 400.0 MB"
    )
    first = {"api": {"id": None, "size": None, "size_grade": None, "built": True}}
    assert summary(first, ["api"], "v1", check_mode=True) == (
        "Would build api; api not built yet"  # not "0.0 MB" (a trial's first --check)
    )
