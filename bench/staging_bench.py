"""The whole playbooks/staging.yml run on the sandbox, with its time per phase, against the same
procedure as raw commands, in one run.

    .venv/bin/python bench/staging_bench.py

On an isolated sandbox stack: v1 is promoted from nothing (not timed beyond its total), then
v2 (backup, migration dry-run, build, deploy with migrations 006/007, validation, gate). Prints
each phase's seconds from the v2 run's report.json, their sum, the wall time of the
ansible-playbook process, and the share of it spent outside the phases (validation of the
configuration, the gate and reports, Ansible's own start-up). Then the same wall time by kind of
task (bench/callback/task_times.py): Ansible's start-up before the first task, the tasks that
ran a module on the deploy host and all other tasks, with their count and median.

Before the timed v2 run, v2's images are built once under another image prefix (not timed, the
tags removed): the build cache is then as warm for staging.yml as it is for the raw commands
and the floor, which build v2 after it.

Then rollback.yml brings v1 back (not timed) and the same promotion runs as the raw commands an
engineer would type, timed step by step: `git checkout v2`; `pg_dump -Fc -Z1` in the database
container and `pg_restore --list` of it; the dry-run (`CREATE DATABASE .. TEMPLATE app` after
ending the app's sessions, the pending migrations with psql, `DROP DATABASE`); `docker compose
build`; `docker compose stop api worker`; the migrations with psql; `up --detach --wait` of the
infrastructure tier, then of the app tier; and the catalog's checks by curl, psql, redis-cli and
docker (health, login flow, 401, security headers, items, 20 requests 4 at a time for latency,
metrics, logs, schema, the release's own checks). Prints the ratio playbook/raw (bar: <= 2.0).

Last, v1 is put back by raw commands (not timed: stop, checkout, staging.yml's backup of v1
restored, up)
and bench/staging_floor.yml promotes v2 again: the same raw commands up to the tiered start in
one shell task, between staging.yml's own configuration check, validation, gate, reports and
ledger record. No playbook that validates, grades and records a promotion as staging.yml does
can be faster than this floor; the ratio floor/raw is printed beside the bar.
Everything is removed at the end. With STAGEGATE_BENCH_KEEP_TASKS=<file>, the v2 run's task
times (each task's name, action, seconds, whether a module ran) are kept in that JSON file.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from sandbox_fixtures import (  # noqa: E402 - the test helpers are the sandbox's API
    SandboxStack,
    make_sandbox_repo,
    remove_images,
    run_playbook,
    sandbox_secrets,
)

BAR = 2.0


def promote(
    stack: SandboxStack, release: str, task_times: Path | None = None
) -> tuple[float, dict[str, object]]:
    """staging.yml of `release`: its wall time and report.json; with `task_times`, the
    callback bench/callback/task_times.py writes each task's time there."""
    report_dir = stack.state_dir / "reports" / release
    container = f"{stack.project}-postgres-1"
    variables = stack.extra_vars(stagegate_release=release, stagegate_report_dir=str(report_dir))
    variables["stagegate_db"] = {
        "host": "127.0.0.1",
        "port": stack.pg_port,
        "name": "app",
        "user": "app",
        "password": stack.env()["POSTGRES_PASSWORD"],
        "container": container,
    }
    env = {}
    if task_times is not None:
        env = {
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "bench" / "callback"),
            "ANSIBLE_CALLBACKS_ENABLED": "stagegate.release.progress,task_times",
            "STAGEGATE_BENCH_TASK_TIMES": str(task_times),
        }
    start = time.perf_counter()
    run = run_playbook("staging.yml", variables, env=env)
    wall = time.perf_counter() - start
    if run.rc != 0:
        raise SystemExit(f"staging.yml {release} failed (rc {run.rc}):\n{run.output[-3000:]}")
    return wall, json.loads((report_dir / "report.json").read_text())


def db_vars(stack: SandboxStack) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": stack.pg_port,
        "name": "app",
        "user": "app",
        "password": stack.env()["POSTGRES_PASSWORD"],
        "container": f"{stack.project}-postgres-1",
    }


def rollback(stack: SandboxStack) -> None:
    variables = stack.extra_vars(
        stagegate_db=db_vars(stack),
        stagegate_report_dir=str(stack.state_dir / "reports" / "rollback"),
    )
    run = run_playbook("rollback.yml", variables)
    if run.rc != 0:
        raise SystemExit(f"rollback.yml failed (rc {run.rc}):\n{run.output[-3000:]}")


def raw_checks(stack: SandboxStack, release: str, since: str, release_checks: bool = True) -> str:
    """The catalog's checks (inventory/sandbox/group_vars/all/checks.yml) as one bash script;
    `release_checks`: also v2's own (group `tests`: version, reports summary, its schema), which
    a rollback does not run (stagegate_rollback_check_groups)."""
    secrets = sandbox_secrets()
    url = stack.base_url
    login = json.dumps(
        {"username": secrets["sandbox_admin_user"], "password": secrets["sandbox_admin_password"]}
    )
    pg = f"docker exec {stack.project}-postgres-1 psql -X -q -t -U postgres -d app -c"
    tables = "SELECT count(*) FROM pg_tables WHERE tablename IN "
    base_schema = tables + "('items', 'job_runs', 'api_users')"
    v2_schema = tables + "('item_events')"
    lines = [
        "set -xeu",  # no pipefail: `grep -q` ends a pipe early (curl then exits 23)
        f"until curl -sf {url}/health/ready | grep -q healthy; do sleep 0.2; done",
        f"docker compose --project-name {stack.project} ps --format json | grep -vq unhealthy",
        f"docker exec {stack.project}-redis-1 redis-cli ping | grep -q PONG",
        f"df -P {shlex.quote(str(stack.state_dir))} > /dev/null",
        f"token=$(curl -sf -X POST -H 'Content-Type: application/json' -d {shlex.quote(login)}"
        f" {url}/api/v1/auth/login | python3 -c 'import json,sys; print(json.load(sys.stdin)"
        '["access_token"])\')',
        f'curl -sf -H "Authorization: Bearer $token" {url}/api/v1/me | grep -q username',
        f"test $(curl -s -o /dev/null -w '%{{http_code}}' {url}/api/v1/me) = 401",
        f"curl -s -D - -o /dev/null {url}/health/live"
        " | grep -qi '^X-Content-Type-Options: nosniff'",
        f"grep -q '^SANDBOX_RELEASE=' {shlex.quote(str(stack.project_dir / '.env'))}",
        f"curl -sf {url}/api/v1/items | grep -q items",
        f"seq 20 | xargs -P4 -I{{}} curl -sf -o /dev/null -w '%{{time_total}}\\n'"
        f" {url}/health/ready > /dev/null",
        f"curl -sf {url}/metrics | grep -q http_requests_total",
        f"! docker compose --project-name {stack.project} logs --since {since} api worker 2>&1"
        " | grep -qE '\\b(ERROR|CRITICAL)\\b'",
        f"{pg} {shlex.quote(base_schema)} | grep -q 3",
    ]
    if release_checks:
        lines += [
            f"curl -sf {url}/version | grep -q '\"{release}\"'",
            f"curl -sf {url}/api/v1/reports/summary | grep -q summary",
            f"{pg} {shlex.quote(v2_schema)} | grep -q 1",
        ]
    return "\n".join(lines)


def raw_steps(stack: SandboxStack, release: str) -> list[tuple[str, list[str]]]:
    """The promotion as raw commands, from the release that runs, up to the tiered start."""
    project = stack.project_dir
    pending = subprocess.run(
        ["git", "-C", str(project), "diff", "--name-only", "HEAD", release, "--", "migrations"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    files = [f"/{p}" for p in sorted(pending) if p.endswith(".sql") and "/down/" not in p]
    container = f"{stack.project}-postgres-1"
    # As the app's role, as pg_migrate runs: it owns what the migrations make.
    psql = ["docker", "exec", container, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-U", "app"]  # fmt: skip
    apply = [arg for f in files for arg in ("-f", f)]
    compose = ["docker", "compose", "--project-name", stack.project]
    return [
        ("source: git checkout", ["git", "checkout", "--quiet", "--force", release]),
        ("backup: pg_dump", ["docker", "exec", container, "pg_dump", "-U", "postgres", "-Fc",
                             "-Z1", "-f", "/tmp/raw.dump", "app"]),
        ("backup: pg_restore --list", ["docker", "exec", container, "sh", "-c",
                                       "pg_restore --list /tmp/raw.dump > /dev/null"]),
        ("dry-run: TEMPLATE copy", [*psql, "-c", "SELECT pg_terminate_backend(pid) FROM "
                                    "pg_stat_activity WHERE datname = 'app' AND pid <> "
                                    "pg_backend_pid()", "-c",
                                    "CREATE DATABASE raw_dryrun TEMPLATE app"]),
        ("dry-run: migrations", [*psql, "-d", "raw_dryrun", *apply]),
        ("dry-run: drop", [*psql, "-c", "DROP DATABASE raw_dryrun"]),
        ("build", [*compose, "build", "--quiet"]),
        ("deploy: stop app tier", [*compose, "stop", "api", "worker"]),
        ("deploy: migrate", [*psql, "-d", "app", *apply]),
        ("deploy: up infra --wait", [*compose, "up", "--detach", "--wait", "postgres", "redis"]),
        ("deploy: up apps --wait", [*compose, "up", "--detach", "--wait", "api", "worker"]),
    ]  # fmt: skip


def run_steps(stack: SandboxStack, steps: list[tuple[str, list[str]]]) -> list[tuple[float, str]]:
    """Run each step in the checkout with the compose environment; the time of each."""
    env = {**os.environ, **stack.env()}
    timed: list[tuple[float, str]] = []
    for name, argv in steps:
        step_started = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=stack.project_dir, check=False
        )
        if done.returncode:
            raise SystemExit(f"{name}: exited {done.returncode}:\n{done.stderr[-2000:]}")
        timed.append((time.perf_counter() - step_started, name))
    return timed


def promote_raw(stack: SandboxStack, release: str) -> tuple[float, list[tuple[float, str]]]:
    """The promotion as raw commands, then the checks; (wall, time per step)."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # the logs check's window
    steps = [*raw_steps(stack, release),
             ("validate: checks", ["bash", "-c", raw_checks(stack, release, since)])]  # fmt: skip
    started = time.perf_counter()
    timed = run_steps(stack, steps)
    return time.perf_counter() - started, timed


def revert_raw(stack: SandboxStack, release: str, backup: Path) -> None:
    """Back to `release` after promote_raw: its checkout, `backup` restored, up."""
    container = f"{stack.project}-postgres-1"
    psql = ["docker", "exec", container, "psql", "-X", "-q", "-U", "postgres", "-c"]
    compose = ["docker", "compose", "--project-name", stack.project]
    run_steps(stack, [
        ("stop", [*compose, "stop", "api", "worker"]),
        ("checkout", ["git", "checkout", "--quiet", "--force", release]),
        ("copy", ["docker", "cp", str(backup), f"{container}:/tmp/revert.dump"]),
        ("drop", [*psql, "DROP DATABASE app WITH (FORCE)"]),
        ("create", [*psql, "CREATE DATABASE app OWNER app"]),
        ("restore", ["docker", "exec", container, "pg_restore", "-U", "postgres", "-d", "app",
                     "--exit-on-error", "/tmp/revert.dump"]),
        ("up", [*compose, "up", "--detach", "--wait"]),
    ])  # fmt: skip


def promote_floor(stack: SandboxStack, release: str, previous: str) -> float:
    """bench/staging_floor.yml: the raw promotion in one task, between staging.yml's own
    configuration check, validation, gate, reports and ledger record; its wall time."""
    script = "set -e\n" + "".join(f"{shlex.join(argv)}\n" for _, argv in raw_steps(stack, release))
    report_dir = stack.state_dir / "reports" / f"floor-{release}"
    variables = stack.extra_vars(
        stagegate_release=release,
        stagegate_report_dir=str(report_dir),
        stagegate_db=db_vars(stack),
        staging_floor_raw=script,
        staging_floor_previous=previous,
    )
    started = time.perf_counter()
    run = run_playbook("../bench/staging_floor.yml", variables)
    elapsed = time.perf_counter() - started
    if run.rc != 0:
        raise SystemExit(f"staging_floor.yml failed (rc {run.rc}):\n{run.output[-3000:]}")
    verdict = json.loads((report_dir / "report.json").read_text())["verdict"]
    if verdict == "NO_GO":
        raise SystemExit(f"staging_floor.yml graded NO_GO (report: {report_dir})")
    return elapsed


def warm_build_cache(stack: SandboxStack, release: str, workdir: Path) -> None:
    """Build `release`'s images once from its tree under another image prefix, then remove
    those tags: the layers stay in the build cache, as warm as the later builds find them."""
    tree = workdir / f"warm-{release}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(stack.repo), "archive", release], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    prefix = f"{stack.image_prefix}warm"
    env = {**os.environ, **stack.env(), "SANDBOX_IMAGE_PREFIX": prefix, "SANDBOX_RELEASE": release}
    try:
        subprocess.run(
            ["docker", "compose", "--project-name", f"{stack.project}warm", "build", "--quiet"],
            cwd=tree, env=env, capture_output=True, check=True,
        )  # fmt: skip
    finally:
        remove_images(f"{prefix}/*")


def print_task_times(times: dict[str, Any], before_first_task: float) -> None:
    """Where the v2 run's wall time goes by kind of task: those that ran a module on the deploy
    host (each pays Ansible's module start-up, bench/ansible_floor.py) and the others (set_fact,
    debug, assert, argument specs, includes, skipped tasks, controller-side actions)."""
    tasks = times["tasks"]
    modules = [t["seconds"] for t in tasks if t["module"]]
    others = [t["seconds"] for t in tasks if not t["module"]]
    print(f"  {'start-up':<17} {before_first_task:7.1f} s (Python, Ansible, playbook loaded)")
    for label, seconds in (("module runs", modules), ("other tasks", others)):
        print(
            f"  {len(seconds):>3} {label:<13}{sum(seconds):7.1f} s (median {median(seconds):.2f} s)"
        )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sgt-bench-staging-", dir="/var/tmp") as tmp:
        repo = Path(tmp) / "sandbox.git"
        make_sandbox_repo(repo)
        stack = SandboxStack(repo=repo, state_dir=Path(tmp) / "state")
        try:
            first, _ = promote(stack, "v1")
            warm_build_cache(stack, "v2", Path(tmp))
            started = time.time()
            wall, report = promote(stack, "v2", Path(tmp) / "task_times.json")
            tasks = json.loads((Path(tmp) / "task_times.json").read_text())
            if os.environ.get("STAGEGATE_BENCH_KEEP_TASKS"):
                Path(os.environ["STAGEGATE_BENCH_KEEP_TASKS"]).write_text(json.dumps(tasks))
            rollback(stack)
            raw_wall, raw_times = promote_raw(stack, "v2")
            # the backup of v1 that staging.yml took before promoting v2 (its manifest names it)
            manifest = json.loads((stack.state_dir / "releases/v2/manifest.json").read_text())
            revert_raw(stack, "v1", Path(manifest["backup"]["path"]))
            floor = promote_floor(stack, "v2", "v1")
        finally:
            stack.teardown()
    phases = report["phases"]
    assert isinstance(phases, list)
    print(f"v1 from nothing: {first:.1f} s wall")
    print(f"v2 (verdict {report['verdict']}):")
    for phase in phases:
        print(f"  {phase['name']:<17} {phase['seconds']:7.1f} s  {phase['status']}")
    total = sum(float(p["seconds"]) for p in phases)
    print(f"  {'phases':<17} {total:7.1f} s")
    outside = wall - total
    print(f"  {'ansible-playbook':<17} {wall:7.1f} s wall ({outside:.1f} s outside the phases)")
    print_task_times(tasks, tasks["first_task"] - started)
    print("v2 as raw commands (after rollback.yml brought v1 back):")
    for seconds, name in raw_times:
        print(f"  {name:<26} {seconds:7.1f} s")
    print(f"  {'raw':<26} {raw_wall:7.1f} s wall")
    print(f"floor (raw in one task; configuration, checks, gate, report, ledger): {floor:.1f} s")
    ratio = wall / raw_wall
    print(f"ratio staging.yml/raw: {ratio:.2f} (bar <= {BAR}) {'OK' if ratio <= BAR else 'OVER'}")
    print(f"ratio floor/raw:       {floor / raw_wall:.2f} (the least any such playbook reaches)")


if __name__ == "__main__":
    main()
