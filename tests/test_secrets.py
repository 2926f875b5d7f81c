"""No secret value in any output: stdout at -vvv, every report, the ledger, the state dir, and
ansible-runner's job events (issue #13, items 1-4).

Marker secrets are planted in every channel a secret reaches stagegate by: the release's own
`.env` (interpolated by Compose), a vaulted variable (the database password, so also the
compose environment, the DSNs and the checks' passwords), a request header, a URL query, a DSN,
a command's argv and the compose environment (`stagegate_compose_env`). Then a real promotion
runs through `ansible_runner.run` at -vvv (the AWX way, job events kept) and a `--check -vvv`
run with `ansible-playbook` walks the plan of every phase (compose config, backup, dry-run, the
checks in check mode). The markers must appear nowhere.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml
from conftest import REPO_ROOT, unique_name
from sandbox_fixtures import (
    INVENTORY,
    VENV_BIN,
    SandboxStack,
    isolated_stack,
    playbook_env,
)

from stagegate.gatekeeper import GateRequest, run_gate

MARKERS = {
    "dotenv": "sgtmark-dotenv-4c81e07a",
    "dotenv_dsn": "sgtmark-dsnpw-93b2d6f1",
    "vault": "sgtmark-vault-2a7f5c90",
    "header": "sgtmark-header-6e19b3d4",
    "query": "sgtmark-query-b84c2f61",
    "argv": "sgtmark-argv-0d5a7e38",
    "compose_env": "sgtmark-composeenv-71f0c9e2",
}
RELEASE = "v1-secrets"


def hits(text: str) -> list[str]:
    return [name for name, marker in MARKERS.items() if marker in text]


def where(text: str) -> str:
    """The text around the first marker found (for the failure message)."""
    found = [text.find(marker) for marker in MARKERS.values() if marker in text]
    return text[max(0, min(found) - 300) : min(found) + 100] if found else ""


def files_with_markers(root: Path, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or rel.startswith(skip):
            continue
        names = hits(path.read_bytes().decode("utf-8", errors="replace"))
        if names:
            found[rel] = names
    return found


# ---- compose_config alone (fast) ---------------------------------------------------------------

COMPOSE = """\
services:
  app:
    image: stagegate/busybox:latest
    command: ["sh", "-c", "sleep 1", "--password", "${APP_PASSWORD}"]
    environment:
      UPSTREAM_DSN: ${UPSTREAM_DSN}
      PLAIN_SETTING: ${PLAIN_SETTING}
      DEPLOY_TOKEN: ${DEPLOY_TOKEN}
    healthcheck:
      test: ["CMD", "wget", "-q", "http://x/?access_token=${DEPLOY_TOKEN}"]
"""


def test_compose_config_returns_no_environment_value(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE)
    (project / ".env").write_text(
        f"UPSTREAM_DSN=postgresql://app:{MARKERS['dotenv_dsn']}@db:5432/app\n"
        f"PLAIN_SETTING={MARKERS['dotenv']}\n"
        f"APP_PASSWORD={MARKERS['argv']}\n"
    )
    args = {
        "project_src": str(project),
        "project_name": unique_name("sgtsec"),
        "env": {"DEPLOY_TOKEN": MARKERS["compose_env"]},
    }
    proc = _adhoc("stagegate.release.compose_config", args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert hits(proc.stdout + proc.stderr) == []
    result = json.loads(proc.stdout[proc.stdout.index("{") :].rsplit("}", 1)[0] + "}")
    app = result["config"]["services"]["app"]
    assert app["environment"] == {
        "UPSTREAM_DSN": "***",
        "PLAIN_SETTING": "***",
        "DEPLOY_TOKEN": "***",
    }
    assert app["command"][-2:] == ["--password", "***"]
    assert len(result["config_sha256"]) == 64  # computed over the real configuration


def _adhoc(module: str, args: dict[str, Any], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`ansible localhost -m <module> -a <args> -vvv`, as a user would run it."""
    return subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-vvv",
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
         "-m", module, "-a", json.dumps(args)],
        cwd=cwd, env=playbook_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.docker
def test_compose_build_masks_secret_build_args(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    name = unique_name("sgtsec")
    (project / "Dockerfile").write_text("FROM stagegate/busybox:latest\nARG NPM_TOKEN\n")
    (project / "compose.yaml").write_text(
        f"services:\n  app:\n    build: {{context: .}}\n    image: {name}/app:latest\n"
    )
    args = {
        "project_src": str(project),
        "project_name": name,
        "build_args": {"NPM_TOKEN": MARKERS["compose_env"]},
    }
    try:
        proc = _adhoc("stagegate.release.compose_build", args, tmp_path)
    finally:
        subprocess.run(
            ["docker", "image", "rm", f"{name}/app:latest"], capture_output=True, check=False
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--build-arg" in proc.stdout  # the command is shown, its secret value is not
    assert hits(proc.stdout + proc.stderr) == []


def test_the_webhook_gets_the_redacted_report(tmp_path: Path) -> None:
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    message = (
        f"GET http://api/x?access_token={MARKERS['query']}: status 500;"
        f" connected with {MARKERS['vault']}"
    )
    try:
        outcome = run_gate(
            GateRequest(
                release="v2",
                report_dir=str(tmp_path),
                checks=[
                    {
                        "name": "api",
                        "group": "g",
                        "type": "http",
                        "status": "FAIL",
                        "message": message,
                    }
                ],
                secrets=[MARKERS["vault"]],
                webhook={"url": f"http://127.0.0.1:{server.server_port}/hook"},
            )
        )
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.notify_errors == []
    assert len(received) == 1
    body = received[0].decode()
    assert "access_token=***" in body  # the blocker is there, masked
    assert hits(body) == []
    assert files_with_markers(tmp_path) == {}


# ---- a whole promotion -------------------------------------------------------------------------


def _planted_repo(sandbox_repo: Path, dest: Path) -> Path:
    """The sandbox repository plus tag v1-secrets: v1 whose `.env` and compose file carry
    marker secrets into the services' environment."""
    work = dest / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@stagegate.invalid"]
    subprocess.run(["git", "clone", "--quiet", str(sandbox_repo), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "--quiet", "v1"], check=True)
    env_file = work / ".env"
    text = env_file.read_text().replace("SANDBOX_RELEASE=v1", f"SANDBOX_RELEASE={RELEASE}")
    env_file.write_text(
        text
        + f"SANDBOX_UPSTREAM_DSN=postgresql://app:{MARKERS['dotenv_dsn']}@db.invalid:5432/app\n"
        + f"SANDBOX_API_TOKEN={MARKERS['dotenv']}\n"
    )
    compose = work / "compose.yaml"
    compose.write_text(
        compose.read_text().replace(
            "    REDIS_HOST: redis\n",
            "    REDIS_HOST: redis\n"
            "    SANDBOX_UPSTREAM_DSN: ${SANDBOX_UPSTREAM_DSN:-}\n"
            "    SANDBOX_API_TOKEN: ${SANDBOX_API_TOKEN:-}\n"
            "    SANDBOX_DEPLOY_TOKEN: ${SANDBOX_DEPLOY_TOKEN:-}\n",
            1,
        )
    )
    subprocess.run([*git, "-C", str(work), "commit", "--quiet", "-am", "secrets"], check=True)
    subprocess.run([*git, "-C", str(work), "tag", RELEASE], check=True)
    bare = dest / "repo.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(bare)], check=True)
    return bare


def _vault(dest: Path) -> tuple[Path, Path]:
    """A vault password file and an extra-vars file with the database password vaulted."""
    password_file = dest / "vault-pass"
    password_file.write_text("stagegate-test-vault-password\n")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt_string", "--vault-password-file",
         str(password_file), MARKERS["vault"], "--name", "sandbox_db_password"],
        env=playbook_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    vars_file = dest / "vaulted.yml"
    vars_file.write_text(proc.stdout)
    return password_file, vars_file


def _extra_vars(stack: SandboxStack) -> dict[str, Any]:
    inventory_env = yaml.safe_load(
        (INVENTORY / "group_vars" / "all" / "stagegate.yml").read_text()
    )["stagegate_compose_env"]
    base = "{{ sandbox_base_url }}"
    planted_checks = [
        {
            "name": "secret_header",
            "type": "http",
            "group": "secrets",
            "severity": "info",
            "options": {"url": f"{base}/health/live", "headers": {"X-Api-Key": MARKERS["header"]}},
        },
        {
            "name": "secret_query",
            "type": "http",
            "group": "secrets",
            "severity": "info",
            "options": {"url": f"{base}/health/live?access_token={MARKERS['query']}"},
        },
        {
            "name": "secret_dsn",
            "type": "postgres",
            "group": "secrets",
            "severity": "info",
            "options": {
                "dsn": "postgresql://app:{{ sandbox_db_password }}@127.0.0.1:"
                "{{ sandbox_pg_port }}/app",
                "tables": ["items"],
            },
        },
        {
            "name": "secret_argv",
            "type": "command",
            "group": "secrets",
            "severity": "info",
            "run_on": "host",
            "read_only": True,
            "options": {
                "cmd": [
                    "sh",
                    "-c",
                    'echo "connecting with $2"',
                    "sh",
                    "--password",
                    MARKERS["argv"],
                ],
            },
        },
    ]
    return stack.extra_vars(
        stagegate_release=RELEASE,
        sandbox_latency_bands={"p95": {"pass": "<= 60s"}},  # tests never assert timings
        stagegate_compose_env={**inventory_env, "SANDBOX_DEPLOY_TOKEN": MARKERS["compose_env"]},
        secrets_test_checks=planted_checks,
        stagegate_checks="{{ sandbox_checks + sandbox_release_checks.v1 + secrets_test_checks }}",
    )


def _why(stack: SandboxStack, stdout: str) -> str:
    """What failed: the failed checks' messages from the last report, else stdout's tail."""
    ledger = stack.state_dir / "ledger.jsonl"
    if ledger.exists():
        record = json.loads(ledger.read_text().splitlines()[-1])
        report = json.loads(Path(record["reports"]["report.json"]).read_text())
        failed = [c for c in report["checks"] if c["status"] in ("FAIL", "ERROR")]
        return json.dumps([report["stopped"], *failed], indent=1)[-5000:]
    return stdout[-5000:]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, sandbox_repo: Path) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("secrets")
    repo = _planted_repo(sandbox_repo, root)
    with isolated_stack(repo, "secrets") as stack:
        yield root, stack


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_no_planted_secret_reaches_any_output(planted: tuple[Path, SandboxStack]) -> None:
    root, stack = planted
    password_file, vars_file = _vault(root)
    variables = _extra_vars(stack)

    # 1. The real promotion, as AWX runs it, at -vvv: stdout and every job event.
    runner_dir = root / "runner"
    runner_dir.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(runner_dir),
        project_dir=str(REPO_ROOT),
        playbook=str(REPO_ROOT / "playbooks" / "staging.yml"),
        inventory=str(INVENTORY),
        extravars=variables,
        cmdline=f"--vault-password-file {password_file} -e @{vars_file}",
        envvars={k: playbook_env()[k] for k in ("ANSIBLE_CONFIG", "PATH")},
        verbosity=3,
        quiet=True,
    )
    stdout = result.stdout.read()
    assert result.rc == 0, _why(stack, stdout)
    events = [json.dumps(event) for event in result.events]
    assert len(events) > 50

    # 2. --check -vvv of the same release, now that it runs: every phase plans for real.
    check = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(REPO_ROOT / "playbooks" / "staging.yml"),
         "-i", str(INVENTORY), "-e", json.dumps(variables), "-e", f"@{vars_file}",
         "--vault-password-file", str(password_file), "--check", "-vvv"],
        cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "TASK [stagegate.release.runtime_compose : Ask Compose what starting" in check.stdout

    # The markers were really planted and used.
    assert MARKERS["dotenv"] in (stack.project_dir / ".env").read_text()
    assert "TASK [stagegate.release.validate : Run the selected checks" in stdout
    ledger = [
        json.loads(line) for line in (stack.state_dir / "ledger.jsonl").read_text().splitlines()
    ]
    report = json.loads(Path(ledger[0]["reports"]["report.json"]).read_text())
    planted_checks = {c["name"]: c for c in report["checks"] if c["group"] == "secrets"}
    assert set(planted_checks) == {"secret_header", "secret_query", "secret_dsn", "secret_argv"}
    assert planted_checks["secret_query"]["status"] == "PASS", planted_checks["secret_query"]
    assert planted_checks["secret_dsn"]["status"] == "PASS", planted_checks["secret_dsn"]
    assert planted_checks["secret_argv"]["details"]["cmd"][-2:] == ["--password", "***"]

    # Zero hits anywhere.
    assert hits(stdout) == [], f"runner stdout (-vvv): {where(stdout)}"
    leaking_events = [e[:400] for e in events if hits(e)]
    assert leaking_events == [], "ansible-runner job events"
    assert files_with_markers(runner_dir / "artifacts") == {}, "runner artifacts"
    check_output = check.stdout + check.stderr
    assert hits(check_output) == [], f"ansible-playbook --check -vvv: {where(check_output)}"
    assert files_with_markers(stack.report_dir) == {}, "reports"
    # The state dir: ledger, manifests, backups, lock (the checkout is the user's own source).
    assert files_with_markers(stack.state_dir, skip=("checkout", "reports")) == {}, "state dir"
