"""Module keep_reports through real `ansible-playbook` on the local connection: check mode
writes nothing, the copy keeps names and modes, a re-run keeps the first copy, bad input is
named before anything is written."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from sandbox_fixtures import PlaybookRun, local_inventory, run_playbook

PLAY = """\
- hosts: deploy
  gather_facts: false
  tasks:
    - name: Keep the reports
      stagegate.release.keep_reports:
        src: "{{ src }}"
        dest: "{{ dest }}"
        ledger_state_dir: "{{ ledger_state_dir | default(omit) }}"
        ledger_record: "{{ ledger_record | default(omit) }}"
      register: kept

    - name: Save the result
      ansible.builtin.copy:
        content: "{{ kept | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
"""


def keep(
    tmp_path: Path, src: Path, dest: Path, *options: str, **ledger: Any
) -> tuple[PlaybookRun, dict[str, Any]]:
    playbook = tmp_path / "keep.yml"
    playbook.write_text(PLAY)
    inventory = local_inventory(tmp_path)
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    variables = {"src": str(src), "dest": str(dest), "result_file": str(result_file), **ledger}
    run = run_playbook(str(playbook), variables, inventory=inventory, options=options)
    return run, json.loads(result_file.read_text()) if result_file.exists() else {}


def report_dir(path: Path) -> Path:
    (path / "results").mkdir(parents=True)
    (path / "report.md").write_text("# report\n")
    (path / "report.json").write_text('{"verdict": "GO"}\n')
    (path / "results" / "junit.xml").write_text("<testsuite tests='1'/>\n")
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_check_then_copy_then_rerun_keeps_the_first_copy(tmp_path: Path) -> None:
    src = report_dir(tmp_path / "controller" / "v2-run1")
    dest = tmp_path / "state" / "runs" / "run1"

    run, result = keep(tmp_path, src, dest, "--check", "-vvv")
    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert not result["kept_before"]
    assert sorted(result["files"]) == ["report.json", "report.md", "results/junit.xml"]
    assert result["files"][-1] == "report.json"  # written last: a whole copy has it
    assert not dest.exists()
    assert "H4sI" not in run.output  # the packed archive (base64 of gzip) is not printed at -vvv

    old_umask = os.umask(0o077)  # modes are the module's, not the umask's
    try:
        run, result = keep(tmp_path, src, dest)
    finally:
        os.umask(old_umask)
    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert (dest / "results" / "junit.xml").read_text() == "<testsuite tests='1'/>\n"
    assert (dest / "report.json").read_text() == '{"verdict": "GO"}\n'
    assert (mode(dest), mode(dest / "results")) == (0o750, 0o750)
    assert {mode(dest / n) for n in ("report.md", "report.json", "results/junit.xml")} == {0o640}

    (src / "report.md").write_text("# changed on the controller\n")
    run, result = keep(tmp_path, src, dest)
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["kept_before"]) == (False, True)
    assert (dest / "report.md").read_text() == "# report\n"


def test_an_interrupted_copy_is_made_again(tmp_path: Path) -> None:
    src = report_dir(tmp_path / "controller")
    dest = tmp_path / "kept"
    dest.mkdir()
    (dest / "report.md").write_text("half")  # no report.json: the copy never finished
    run, result = keep(tmp_path, src, dest)
    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert (dest / "report.md").read_text() == "# report\n"


def test_bad_input_is_named_before_anything_is_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    dest = tmp_path / "kept"
    run, _ = keep(tmp_path, empty, dest)
    assert run.rc != 0
    assert f"src: '{empty}' holds no report.json" in run.output, run.output[-3000:]
    assert not dest.exists()

    src = report_dir(tmp_path / "linked")
    (src / "escape").symlink_to("/etc/passwd")
    run, _ = keep(tmp_path, src, dest)
    assert run.rc != 0
    assert "entry './escape' is neither a file nor a directory" in run.output, run.output[-3000:]
    assert not dest.exists()


def test_the_ledger_record_is_appended_by_the_same_run_once(tmp_path: Path) -> None:
    src = report_dir(tmp_path / "controller")
    state = tmp_path / "state"
    dest = state / "runs" / "run1"
    ledger = state / "ledger.jsonl"
    record = {"release": "v2", "verdict": "GO", "run_id": "run1", "report": str(dest)}
    options = {"ledger_state_dir": str(state), "ledger_record": record}

    run, result = keep(tmp_path, src, dest, "--check", **options)
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["ledger"]["appended"]) == (True, True)
    assert not ledger.exists()
    assert not dest.exists()

    run, result = keep(tmp_path, src, dest, "--diff", **options)
    assert run.rc == 0, run.output[-3000:]
    assert result["ledger"] == {"path": str(ledger), "record": record, "appended": True}
    assert [json.loads(line) for line in ledger.read_text().splitlines()] == [record]
    assert f"{ledger} (appended)" in run.output  # the diff names the ledger
    assert (dest / "report.json").is_file()

    run, result = keep(tmp_path, src, dest, **options)  # the same run again: nothing changes
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["kept_before"], result["ledger"]["appended"]) == (
        False,
        True,
        False,
    )
    assert len(ledger.read_text().splitlines()) == 1

    other = tmp_path / "kept-other"
    run, _ = keep(tmp_path, src, other, **{**options, "ledger_record": {"release": "v3"}})
    assert run.rc != 0
    assert "ledger_record.verdict: missing" in run.output, run.output[-3000:]
    assert not other.exists()  # named before the copy
    assert len(ledger.read_text().splitlines()) == 1


def test_a_resumed_run_that_ends_with_another_verdict_replaces_its_copy_and_records_it(
    tmp_path: Path,
) -> None:
    """A rollback that failed (NO_GO) is resumed under the same run id; when it finishes GO, its
    reports replace the NO_GO copy and its GO is recorded beside the NO_GO record."""
    src = report_dir(tmp_path / "controller")
    (src / "report.json").write_text('{"verdict": "NO_GO"}\n')
    state = tmp_path / "state"
    dest = state / "runs" / "run1" / "rollback"
    ledger = state / "ledger.jsonl"
    failed = {"release": "v1", "kind": "rollback", "verdict": "NO_GO", "run_id": "run1"}
    run, result = keep(tmp_path, src, dest, ledger_state_dir=str(state), ledger_record=failed)
    assert run.rc == 0, run.output[-3000:]
    assert result["ledger"]["appended"] is True

    (src / "report.json").write_text('{"verdict": "GO"}\n')
    (src / "report.md").write_text("# resumed, GO\n")
    finished = dict(failed, verdict="GO")
    options = {"ledger_state_dir": str(state), "ledger_record": finished}
    run, result = keep(tmp_path, src, dest, "--check", **options)
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["ledger"]["appended"]) == (True, True)
    assert "would replace the earlier verdict's reports" in result["msg"]
    assert (dest / "report.md").read_text() == "# report\n"  # check mode wrote nothing

    run, result = keep(tmp_path, src, dest, **options)
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["kept_before"], result["ledger"]["appended"]) == (
        True,
        True,
        True,
    )
    assert (dest / "report.md").read_text() == "# resumed, GO\n"
    assert [json.loads(line)["verdict"] for line in ledger.read_text().splitlines()] == [
        "NO_GO",
        "GO",
    ]

    run, result = keep(tmp_path, src, dest, **options)  # finished: a re-run changes nothing
    assert run.rc == 0, run.output[-3000:]
    assert (result["changed"], result["ledger"]["appended"]) == (False, False)
    assert len(ledger.read_text().splitlines()) == 2


def test_a_ledger_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    src = report_dir(tmp_path / "controller")
    state = tmp_path / "state"
    (state / "ledger.jsonl").mkdir(parents=True)  # not a file: the append fails
    record = {"release": "v2", "verdict": "GO", "run_id": "run1"}
    run, _ = keep(
        tmp_path, src, state / "runs" / "run1", ledger_state_dir=str(state), ledger_record=record
    )
    assert run.rc != 0
    assert str(state / "ledger.jsonl") in run.output, run.output[-3000:]
    assert "Traceback" not in run.output
