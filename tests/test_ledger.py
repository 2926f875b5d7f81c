"""The release ledger: locked appends from concurrent writers, the module, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stagegate import ledger
from stagegate.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
PER_WRITER = 300


def _writer(path: str, writer: int) -> None:
    payload = "x" * 2000  # longer than PIPE_BUF: interleaving would show without the lock
    for i in range(PER_WRITER):
        ledger.append(path, {"release": f"w{writer}-{i}", "verdict": "GO", "pad": payload})


def test_two_processes_appending_never_interleave(tmp_path: Path) -> None:
    path = str(ledger.ledger_path(tmp_path))
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(path, n)) for n in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    records = ledger.read(path)  # raises on any torn line
    assert len(records) == 2 * PER_WRITER
    for n in (1, 2):
        mine = [r["release"] for r in records if r["release"].startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(PER_WRITER)]  # each writer's order kept


def test_last_good_skips_no_go_and_the_release_in_flight(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    for release, verdict in (("v1", "GO"), ("v2", "GO_WITH_WARNINGS"), ("v3", "NO_GO")):
        ledger.append(
            path, {"release": release, "verdict": verdict, "metrics": {"lat": {"p95_ms": 40}}}
        )
    records = ledger.read(path)
    assert ledger.last_good(records)["release"] == "v2"  # type: ignore[index]
    assert ledger.last_good(records, before_release="v2")["release"] == "v1"  # type: ignore[index]
    assert ledger.baseline_metrics(ledger.last_good(records)) == {"lat": {"p95_ms": 40.0}}


def test_bad_records_and_lines_are_named(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    with pytest.raises(ledger.LedgerError, match=r"record\.verdict: missing"):
        ledger.append(path, {"release": "v1"})
    path.write_text('{"release": "v1", "verdict": "GO"}\n{torn\n')
    with pytest.raises(ledger.LedgerError, match="line 2"):
        ledger.read(path)


def test_cli_lists_and_finds_the_last_good_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ledger.ledger_path(tmp_path)
    ledger.append(path, {"release": "v1", "verdict": "GO", "score": 97.5, "run_by": "alice"})
    ledger.append(path, {"release": "v2", "verdict": "NO_GO", "score": 41.0, "run_by": "bob"})
    assert cli_main(["ledger", "list", "--state-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:4] == ["finished", "release", "previous", "verdict"]
    assert "NO_GO" in listing[2]
    assert cli_main(["ledger", "last-good", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "v1"
    assert cli_main(["ledger", "last-good", "--ledger", str(path), "--exclude-release", "v1"]) == 1
    # the installed entry point, as an operator runs it
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "stagegate"),
            "ledger",
            "list",
            "--json",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["release"] for r in json.loads(proc.stdout)] == ["v1", "v2"]


PLAYBOOK = """
- name: Ledger module, check mode then for real
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Append in check mode
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        state: present
        record: {release: v1, verdict: GO, score: 99.0, run_id: r1}
      check_mode: true
      diff: true
      register: check_append
    - name: Read after check mode
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
      register: check_read
    - name: Append
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        state: present
        record: {release: v1, verdict: GO, score: 99.0, run_id: r1}
      register: real_append
    - name: Append the same run again (a retried recording step)
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        state: present
        record: {release: v1, verdict: GO, score: 99.0, run_id: r1}
      register: again
    - name: Read
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        exclude_release: v2
      register: real_read
    - name: Record the results
      ansible.builtin.copy:
        content: "{{ {'check_append': check_append, 'check_read': check_read,
                      'real_append': real_append, 'again': again,
                      'real_read': real_read} | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


@pytest.mark.slow
def test_ledger_module_check_mode_then_append_once_per_run(tmp_path: Path) -> None:
    playbook = tmp_path / "ledger.yml"
    playbook.write_text(PLAYBOOK)
    state_dir, result_file = tmp_path / "state", tmp_path / "result.json"
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        f"state_dir={state_dir} result_file={result_file}",
        str(playbook),
    ]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(result_file.read_text())
    assert result["check_append"]["changed"] is True
    assert '"release":"v1"' in result["check_append"]["diff"]["after"]  # the line it would add
    assert result["check_read"]["records"] == []  # check mode wrote nothing
    assert result["real_append"]["changed"] is True
    assert result["real_read"]["last_good"]["release"] == "v1"
    assert result["again"]["changed"] is False  # one record per run (idempotent)
    assert len(result["real_read"]["records"]) == 1
    assert ledger.read(state_dir / "ledger.jsonl")[0]["score"] == 99.0
