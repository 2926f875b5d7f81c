"""The `stagegate` command: run the playbooks, read the ledger, reports and gate configuration.

    stagegate promote -i inventory/staging [-e stagegate_release=v2] [--warn-exit] [--json]
    stagegate rollback -i inventory/staging [--check] [--json]
    stagegate validate -i inventory/staging [--json]
    stagegate status --state-dir /var/lib/stagegate/staging [--json]
    stagegate report show RUN_ID|last --state-dir DIR [--format md|json|path]
    stagegate ledger list --state-dir DIR [--json]
    stagegate ledger last-good --state-dir DIR [--exclude-release v2] [--json]
    stagegate gates validate gates.yml [--checks catalog.yml]
    stagegate --version

promote, rollback and validate run stagegate.release.staging / rollback / validate through
ansible-runner from the current directory (its ansible.cfg applies), print one progress line per
phase on stderr and the outcome on stdout.

Exit codes: 0 GO (and GO_WITH_WARNINGS unless --warn-exit), 1 nothing found (last-good,
report show), 2 configuration error or bad input (nothing changed), 3 GO_WITH_WARNINGS with
--warn-exit, 4 NO_GO, 5 execution error (the run failed without a verdict).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.stagegate.release.plugins.module_utils._lock import DeployLock
from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    UnsafeNameError,
    safe_component,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    DONE,
    RollbackError,
    RollbackState,
)

from stagegate import __version__, ledger, runs
from stagegate.gatekeeper import GateRequest, catalog_names_groups, validate_request
from stagegate.gates import GateConfigError

_COLUMNS = ("finished", "release", "previous", "verdict", "kind", "score", "run_by", "report_dir")
# A record without `kind` is a promotion (staging.yml); others say theirs (rollback, adopt, ...).
_DEFAULTS = {"kind": "promote"}


def _ledger_file(args: argparse.Namespace) -> Path:
    return Path(args.ledger) if args.ledger else ledger.ledger_path(args.state_dir)


def _read_ledger(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records; lines skipped (a torn final line, a corrupt one) are named on stderr."""
    records, warnings = ledger.scan(_ledger_file(args))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return records


def _table(records: list[dict[str, Any]]) -> str:
    rows = [
        [str(r[c] if r.get(c) is not None else _DEFAULTS.get(c, "-")) for c in _COLUMNS]
        for r in records
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_ledger_list(args: argparse.Namespace) -> int:
    records = _read_ledger(args)
    if args.limit:
        records = records[-args.limit :]
    if args.json:
        print(json.dumps(records, indent=2))
    elif records:
        print(_table(records))
    else:
        print(f"no record in {_ledger_file(args)}")
    return 0


def _cmd_ledger_last_good(args: argparse.Namespace) -> int:
    record = ledger.last_good(_read_ledger(args), args.exclude_release)
    if record is None:
        print(
            f"no GO or GO_WITH_WARNINGS release in {_ledger_file(args)} (validation-only and "
            "restore records never count: they move no release)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(record, indent=2) if args.json else record["release"])
    return 0


def _load_yaml(path: str, what: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GateConfigError(f"{what} {path}: {exc}") from exc


def _cmd_gates_validate(args: argparse.Namespace) -> int:
    gates = _load_yaml(args.gates, "gates file") or {}
    gates = gates.get("stagegate_gates", gates)
    catalog = None
    if args.checks:
        loaded = _load_yaml(args.checks, "checks file") or []
        catalog = loaded.get("stagegate_checks", []) if isinstance(loaded, dict) else loaded
        if isinstance(catalog, str):  # an inventory's Jinja expression, e.g. "{{ a + b }}"
            catalog = _render_catalog(Path(args.checks), catalog)
        if not isinstance(catalog, list) or not all(isinstance(c, dict) for c in catalog):
            raise GateConfigError(
                f"checks file {args.checks}: stagegate_checks must be a list of checks "
                f"(mappings with name and group), got {type(catalog).__name__}"
            )
    names, groups = catalog_names_groups(catalog)
    request = GateRequest(
        release="",
        report_dir="",
        gates=gates,
        catalog=names,
        groups=groups,
    )
    config = validate_request(request)
    print(f"{len(config.rules)} gate(s) valid: " + ", ".join(r.name for r in config.rules))
    return 0


def _render_catalog(path: Path, expression: str) -> Any:
    """Render an inventory's `stagegate_checks: "{{ ... }}"` with Ansible's templating and the
    variables of every YAML file beside it (its group_vars directory), as a play would."""
    from ansible.errors import AnsibleError  # noqa: PLC0415 - only for Jinja catalogs
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415
    from ansible.template import Templar, trust_as_template  # noqa: PLC0415

    def trusted(value: Any) -> Any:  # the files are the user's own inventory
        if isinstance(value, str):
            return trust_as_template(value)
        if isinstance(value, dict):
            return {k: trusted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [trusted(v) for v in value]
        return value

    variables: dict[str, Any] = {}
    for sibling in sorted({*path.parent.glob("*.yml"), *path.parent.glob("*.yaml"), path}):
        loaded = _load_yaml(str(sibling), "variables file")
        if isinstance(loaded, dict) and sibling != path:
            variables.update(loaded)
    variables.update(_load_yaml(str(path), "checks file"))
    try:
        return Templar(loader=DataLoader(), variables=trusted(variables)).template(
            trust_as_template(expression)
        )
    except AnsibleError as exc:
        raise GateConfigError(
            f"checks file {path}: stagegate_checks {expression!r} cannot be rendered from the "
            f"YAML files in {path.parent}: {exc.message}"
        ) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    extravars = runs.parse_extra_vars(args.extra_vars)
    cmdline = [*(["--check"] if args.check else []), *(["--diff"] if args.diff else [])]
    if args.tags:
        cmdline += ["--tags", args.tags]
    if args.limit:
        cmdline += ["--limit", args.limit]
    outcome = runs.run_playbook(
        args.command, args.inventory, extravars, cmdline, None if args.quiet else sys.stderr
    )
    code = runs.exit_code(outcome, warn_exit=args.warn_exit)
    print(runs.dumps(outcome, code) if args.json else runs.summary(outcome, code))
    return code


def _cmd_status(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    records = ledger.read(ledger.ledger_path(state))
    status: dict[str, Any] = {
        "state_dir": str(state),
        "last_run": records[-1] if records else None,
        "last_good": ledger.last_good(records),
        # the readers the modules use: a torn lock file is reported, not a traceback
        "lock": DeployLock(str(state)).read(),
        "rollback_in_progress": _unfinished(RollbackState(str(state)).read()),
    }
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    last, good, lock = status["last_run"], status["last_good"], status["lock"]
    print(f"state dir: {state}")
    print("last run: " + (_describe(last) if last else "none"))
    print("last good release: " + (str(good["release"]) if good else "none"))
    if lock and lock.get("corrupt"):
        print(f"deploy lock: unreadable ({lock['corrupt']}); break_lock removes it")
    elif lock:
        print(f"deploy lock: held by {lock.get('owner')} (run {lock.get('run_id')}) "
              f"until {lock.get('expires_at')}")  # fmt: skip
    else:
        print("deploy lock: free")
    rollback = status["rollback_in_progress"]
    if rollback:
        print(f"rollback in progress: run {rollback.get('run_id')}, to {rollback.get('to')}")
    return 0


def _unfinished(rollback: Any) -> Any:
    """The rollback state, while the rollback is not done (the file stays after it)."""
    return rollback if rollback and rollback.get("status") != DONE else None


def _describe(record: dict[str, Any]) -> str:
    fields = ("release", "verdict", "score", "run_id", "finished", "report_dir")
    return ", ".join(f"{k} {record.get(k)}" for k in fields if record.get(k) is not None)


def _cmd_report_show(args: argparse.Namespace) -> int:
    if args.run_id != "last":  # it becomes `runs/<run id>/`: one file name, never `../x`
        safe_component(args.run_id, "run id")
    state = Path(args.state_dir)
    records = [r for r in ledger.read(ledger.ledger_path(state)) if r.get("report_dir")]
    if args.run_id != "last":
        records = [r for r in records if str(r.get("run_id")) == args.run_id]
    candidates = [Path(str(r["report_dir"])) for r in records[-1:]]
    if args.run_id != "last":  # where gate_report keeps each run's copy (docs/reports.md)
        candidates.append(state / "runs" / args.run_id)
    found = next((d for d in candidates if (d / "report.json").is_file()), None)
    if found is None:
        where = ", ".join(str(d) for d in candidates) or f"the ledger in {state}"
        print(f"stagegate: no report for run {args.run_id} ({where})", file=sys.stderr)
        return runs.EXIT_NOT_FOUND
    if args.format == "path":
        print(found)
    else:
        name = "report.md" if args.format == "md" else "report.json"
        print((found / name).read_text(encoding="utf-8"), end="")
    return 0


def _add_run_commands(commands: Any) -> None:
    for name, help_text in (
        ("promote", "promote a release: stagegate.release.staging"),
        ("rollback", "roll back to the last good release: stagegate.release.rollback"),
        ("restore", "restore the database from a dump: stagegate.release.restore"),
        ("validate", "re-validate the release that runs: stagegate.release.validate"),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-i", "--inventory", help="inventory (default: ansible.cfg's)")
        sub.add_argument(
            "-e", "--extra-vars", action="append", default=[], metavar="VARS",
            help="key=value, JSON or @file, as ansible-playbook -e (repeatable)",
        )  # fmt: skip
        sub.add_argument("--check", action="store_true", help="check mode: change nothing")
        sub.add_argument("--diff", action="store_true", help="show diffs")
        sub.add_argument("--tags", help="run only these phases (comma-separated tags)")
        sub.add_argument("--limit", help="limit to these hosts")
        sub.add_argument(
            "--warn-exit", action="store_true",
            help=f"exit {runs.EXIT_WARNINGS} on GO_WITH_WARNINGS instead of 0",
        )  # fmt: skip
        sub.add_argument("--json", action="store_true", help="print the outcome as JSON")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        sub.set_defaults(func=_cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagegate",
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("Exit codes:", 1)[1].join(("Exit codes:", "")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stagegate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_commands(commands)

    status_cmd = commands.add_parser("status", help="last run, last good release, lock, rollback")
    status_cmd.add_argument("--state-dir", required=True, help="stagegate_state_dir")
    status_cmd.add_argument("--json", action="store_true", help="print JSON")
    status_cmd.set_defaults(func=_cmd_status)

    report_cmd = commands.add_parser("report", help="reports kept in the state dir")
    report_sub = report_cmd.add_subparsers(dest="action", required=True)
    show = report_sub.add_parser("show", help="print a past run's report")
    show.add_argument("run_id", help="the run id (ledger `run_id`), or `last`")
    show.add_argument("--state-dir", required=True, help="stagegate_state_dir")
    show.add_argument("--format", choices=("md", "json", "path"), default="md")
    show.set_defaults(func=_cmd_report_show)

    ledger_cmd = commands.add_parser("ledger", help="read the release ledger")
    ledger_sub = ledger_cmd.add_subparsers(dest="action", required=True)
    for name, func, help_text in (
        ("list", _cmd_ledger_list, "every run, oldest first"),
        ("last-good", _cmd_ledger_last_good, "the newest GO / GO_WITH_WARNINGS release"),
    ):
        sub = ledger_sub.add_parser(name, help=help_text)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--state-dir", help="stagegate_state_dir (holds ledger.jsonl)")
        where.add_argument("--ledger", help="path of a ledger.jsonl file")
        sub.add_argument("--json", action="store_true", help="print JSON records")
        sub.set_defaults(func=func)
        if name == "list":
            sub.add_argument("--limit", type=int, default=0, help="only the last N records")
        else:
            sub.add_argument("--exclude-release", help="never this release (the one in flight)")

    gates_cmd = commands.add_parser("gates", help="gate configuration")
    gates_sub = gates_cmd.add_subparsers(dest="action", required=True)
    validate = gates_sub.add_parser("validate", help="validate stagegate_gates from a YAML file")
    validate.add_argument("gates", help="YAML file with stagegate_gates (or its content)")
    validate.add_argument("--checks", help="YAML file with stagegate_checks, to cross-check names")
    validate.set_defaults(func=_cmd_gates_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (
        GateConfigError,
        ledger.LedgerError,
        OSError,
        runs.RunInputError,
        UnsafeNameError,
        RollbackError,
    ) as exc:
        print(f"stagegate: {exc}", file=sys.stderr)
        return runs.EXIT_CONFIG
    return code


if __name__ == "__main__":
    sys.exit(main())
