"""The source role through real `ansible-playbook` runs on a real git repository with release
tags, and on a local directory: checkout, previous release recorded, check mode truthful."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from preflight_fixtures import DeployHost, Run, tree

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def worktree(checkout: Path) -> dict[str, float]:
    return {name: mtime for name, mtime in tree(checkout).items() if not name.startswith(".git")}


@pytest.fixture
def release_repo(tmp_path: Path) -> Path:
    """A repository with tags v1 and v2 (v2 adds a migration)."""
    repo = tmp_path / "releases.git"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.invalid")
    git(repo, "config", "user.name", "ci")
    (repo / "VERSION").write_text("v1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    (repo / "VERSION").write_text("v2\n")
    (repo / "migrations").mkdir()
    (repo / "migrations" / "002_orders.sql").write_text("CREATE TABLE orders (id int);\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "v2")
    git(repo, "tag", "v2")
    return repo


def source_play(host: DeployHost, release: str, *args: str) -> tuple[Run, dict[str, Any]]:
    result_file = host.root / "source-result.json"
    result_file.unlink(missing_ok=True)
    run = host.play(
        "preflight_source.yml", *args, stagegate_release=release, result_file=str(result_file)
    )
    assert run.rc == 0, run.output
    return run, json.loads(result_file.read_text())


def test_git_release_ladder_and_previous_release(
    deploy_host: DeployHost, release_repo: Path
) -> None:
    deploy_host.vars["stagegate_source_repo"] = str(release_repo)
    checkout = deploy_host.project_dir

    run, facts = source_play(deploy_host, "v1", "--check")
    assert run.changed > 0
    assert not checkout.exists()  # check mode cloned nothing
    assert facts["previous"] == ""

    run, facts = source_play(deploy_host, "v1")
    assert run.changed > 0
    assert (checkout / "VERSION").read_text() == "v1\n"
    assert (checkout / ".stagegate-release").read_text() == "v1\n"
    assert facts["after"] == git(release_repo, "rev-parse", "v1")

    for args in (("--check",), ()):
        run, facts = source_play(deploy_host, "v1", *args)
        assert run.changed == 0
        assert facts["previous"] == "v1"

    before = worktree(checkout)
    run, facts = source_play(deploy_host, "v2", "--check")
    assert run.changed > 0
    # check mode switched nothing (git may still fetch into .git, as ansible.builtin.git does)
    assert worktree(checkout) == before
    assert git(checkout, "rev-parse", "HEAD") == git(release_repo, "rev-parse", "v1")
    assert facts["previous"] == "v1"

    run, facts = source_play(deploy_host, "v2")
    assert facts["previous"] == "v1"
    assert facts["before"] == git(release_repo, "rev-parse", "v1")
    assert facts["after"] == git(release_repo, "rev-parse", "v2")
    assert (checkout / "migrations" / "002_orders.sql").exists()
    assert git(checkout, "describe", "--tags") == "v2"


def test_previous_release_of_a_checkout_made_by_hand(
    deploy_host: DeployHost, release_repo: Path
) -> None:
    deploy_host.vars["stagegate_source_repo"] = str(release_repo)
    subprocess.run(
        ["git", "clone", "-q", "--branch", "v1", str(release_repo), str(deploy_host.project_dir)],
        check=True,
        capture_output=True,
    )
    _, facts = source_play(deploy_host, "v2")
    assert facts["previous"] == "v1"
    assert (deploy_host.project_dir / "VERSION").read_text() == "v2\n"


def test_local_directory_is_synced_with_stale_files_removed(deploy_host: DeployHost) -> None:
    source = deploy_host.root / "workdir"
    (source / "migrations").mkdir(parents=True)
    (source / "compose.yaml").write_text("services: {}\n")
    (source / "migrations" / "001_init.sql").write_text("CREATE TABLE t (i int);\n")
    deploy_host.vars["stagegate_source_dir"] = str(source)
    checkout = deploy_host.project_dir

    run, facts = source_play(deploy_host, "dev-1")
    assert run.changed > 0
    assert (checkout / "migrations" / "001_init.sql").exists()
    assert facts["previous"] == ""
    run, facts = source_play(deploy_host, "dev-1")
    assert run.changed == 0
    assert facts["previous"] == "dev-1"

    (source / "migrations" / "001_init.sql").unlink()
    (source / "migrations" / "002_next.sql").write_text("CREATE TABLE u (i int);\n")
    before = tree(checkout)
    run, facts = source_play(deploy_host, "dev-2", "--check")
    assert run.changed > 0
    assert tree(checkout) == before
    run, facts = source_play(deploy_host, "dev-2")
    assert facts["previous"] == "dev-1"
    files = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file())
    assert files == [".stagegate-release", "compose.yaml", "migrations/002_next.sql"]


def test_both_sources_set_is_refused(deploy_host: DeployHost, release_repo: Path) -> None:
    deploy_host.vars["stagegate_source_repo"] = str(release_repo)
    deploy_host.vars["stagegate_source_dir"] = str(deploy_host.root)
    run = deploy_host.play("preflight_source.yml", stagegate_release="v1")
    assert run.rc != 0
    assert "set exactly one" in run.output
    assert not deploy_host.project_dir.exists()


def test_release_ref_resolves_tags_and_names_the_nearest_for_an_unknown_one(
    release_repo: Path,
) -> None:
    # the module's logic on a real repository (git ls-remote), no playbook needed
    from ansible_collections.stagegate.release.plugins.module_utils._source import (  # noqa: PLC0415
        RefError,
        resolve,
    )

    git(release_repo, "tag", "-a", "-m", "annotated", "v10")
    found = resolve(str(release_repo), "v2")
    assert (found["kind"], found["commit"]) == ("tag", git(release_repo, "rev-parse", "v2"))
    # an annotated tag resolves to its commit, not the tag object
    assert resolve(str(release_repo), "v10")["commit"] == git(release_repo, "rev-parse", "v2")
    assert resolve(str(release_repo), "main")["kind"] == "branch"
    short = git(release_repo, "rev-parse", "--short", "v1")
    assert resolve(str(release_repo), short)["kind"] == "commit"

    with pytest.raises(
        RefError, match=r"'v9' is not a tag or branch of .*nearest tags: v2, v1"
    ) as err:
        resolve(str(release_repo), "v9")
    assert err.value.details["nearest"] == ["v2", "v1", "v10"]
    with pytest.raises(RefError, match=r"nearest tags: v2,") as err:
        resolve(str(release_repo), 2)
    with pytest.raises(RefError, match="stagegate_source_repo: cannot list the refs"):
        resolve(str(release_repo / "missing"), "v1")
