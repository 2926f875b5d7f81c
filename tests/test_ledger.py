"""The release ledger: locked appends from concurrent writers, the module, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.stagegate.release.plugins.module_utils import _rollback

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


def test_a_restore_record_moves_no_release(tmp_path: Path) -> None:
    """restore.yml records its restore (kind restore, with the verification's verdict): it is
    never the baseline a promotion compares with, never a rollback target's evidence, and
    never why a release runs."""
    path = ledger.ledger_path(tmp_path)
    for record in (
        {"release": "v1", "verdict": "GO", "finished": "2026-12-01T01:00:00Z"},
        {"release": "v2", "verdict": "NO_GO", "finished": "2026-12-01T02:00:00Z"},
        {"release": "v2", "verdict": "GO", "kind": "restore", "restore": {"path": "/d.dump"}},
    ):
        ledger.append(path, record)
    records = ledger.read(path)
    assert ledger.last_good(records)["release"] == "v1"  # type: ignore[index]
    considered = _rollback.considered_releases(records, "v1", str(tmp_path), lambda _: True)
    assert [(c["release"], c["status"]) for c in considered] == [
        ("v2", "never good (NO_GO)"), ("v1", "running now"),
    ]  # fmt: skip
    assert _rollback.why_running(records, "v2") == "v2 runs (no ledger record put it there)"
    assert _rollback.rolled_back_releases(
        [
            {"release": "v2", "kind": "rollback", "rolled_back_from": "v3"},
            records[-1] | {"release": "v3"},
        ]
    ) == {"v3"}


def test_a_bad_record_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    with pytest.raises(ledger.LedgerError, match=r"record\.verdict: missing"):
        ledger.append(path, {"release": "v1"})
    assert not path.exists() or path.read_bytes() == b""


def _torn(record: dict[str, object]) -> bytes:
    """What a writer killed in the middle of its single write leaves: a prefix of the line."""
    line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return line[: len(line) // 2]


def test_a_torn_final_line_is_skipped_with_a_warning_and_the_next_append_cuts_it_off(
    tmp_path: Path,
) -> None:
    path = ledger.ledger_path(tmp_path)
    ledger.append(path, {"release": "v1", "verdict": "GO"})
    with path.open("ab") as handle:  # killed while appending v2's record
        handle.write(_torn({"release": "v2", "verdict": "NO_GO", "pad": "é" * 40}))

    records, warnings = ledger.scan(path)
    assert [r["release"] for r in records] == ["v1"]
    assert len(warnings) == 1
    assert "line 2: torn final line skipped" in warnings[0]
    assert ledger.read(path) == records  # every reader agrees, none raises

    repaired = ledger.append(path, {"release": "v3", "verdict": "GO"})
    assert len(repaired) == 1
    assert "removed a torn final line" in repaired[0]
    assert [r["release"] for r in ledger.read(path)] == ["v1", "v3"]
    assert ledger.scan(path)[1] == []  # healthy again
    assert path.read_bytes().endswith(b"\n")


def test_a_whole_record_without_its_newline_is_kept_and_terminated(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    path.write_text('{"release": "v1", "verdict": "GO"}')  # the newline never made it
    assert ledger.scan(path) == ([{"release": "v1", "verdict": "GO"}], [])
    repaired = ledger.append(path, {"release": "v2", "verdict": "GO"})
    assert "lost its newline" in repaired[0]
    assert [r["release"] for r in ledger.read(path)] == ["v1", "v2"]


def test_a_corrupt_line_in_the_middle_is_named_never_fatal(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path)
    path.write_text(
        '{"release": "v1", "verdict": "GO"}\n{torn\n[1, 2]\n{"release": "v2", "verdict": "GO"}\n'
    )
    records, warnings = ledger.scan(path)
    assert [r["release"] for r in records] == ["v1", "v2"]
    assert [w.split(": ", 1)[0] for w in warnings] == [f"{path} line 2", f"{path} line 3"]
    assert all("not a JSON record, skipped" in w for w in warnings)
    assert ledger.last_good(records)["release"] == "v2"  # type: ignore[index]
    assert ledger.append(path, {"release": "v3", "verdict": "GO"}) == []  # nothing to repair


def test_cli_reads_a_torn_ledger_and_warns_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ledger.ledger_path(tmp_path)
    ledger.append(path, {"release": "v1", "verdict": "GO"})
    with path.open("ab") as handle:
        handle.write(_torn({"release": "v2", "verdict": "GO"}))
    assert cli_main(["ledger", "last-good", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "v1"
    assert "warning: " in out.err
    assert "line 2: torn final line skipped" in out.err


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


def _play(text: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run a playbook on localhost with `state_dir` and `result_file` (real ansible-playbook)."""
    playbook = tmp_path / "ledger.yml"
    playbook.write_text(text)
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
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    return proc, result_file


@pytest.mark.slow
def test_ledger_module_check_mode_then_append_once_per_run(tmp_path: Path) -> None:
    proc, result_file = _play(PLAYBOOK, tmp_path)
    state_dir = tmp_path / "state"
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


TORN_PLAYBOOK = """
- name: Ledger module on a ledger whose last write was cut short
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the last good release (as the gate's baseline read does)
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        exclude_release: v3
      register: torn_read
    - name: Append this run's record
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        state: present
        record: {release: v3, verdict: GO, run_id: r3}
      register: repaired_append
    - name: Record the results
      ansible.builtin.copy:
        content: "{{ {'read': torn_read, 'append': repaired_append} | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


@pytest.mark.slow
def test_ledger_module_reads_past_a_torn_line_and_repairs_it_on_append(tmp_path: Path) -> None:
    path = ledger.ledger_path(tmp_path / "state")
    ledger.append(path, {"release": "v1", "verdict": "GO", "run_id": "r1"})
    with path.open("ab") as handle:
        handle.write(_torn({"release": "v2", "verdict": "GO", "run_id": "r2"}))
    proc, result_file = _play(TORN_PLAYBOOK, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(result_file.read_text())
    assert result["read"]["last_good"]["release"] == "v1"
    assert "line 2: torn final line skipped" in result["read"]["ledger_warnings"][0]
    assert "torn final line skipped" in proc.stdout + proc.stderr  # a [WARNING] the operator sees
    assert result["append"]["changed"] is True
    assert "removed a torn final line" in result["append"]["ledger_warnings"][0]
    assert [r["release"] for r in ledger.read(path)] == ["v1", "v3"]
    assert ledger.scan(path)[1] == []
