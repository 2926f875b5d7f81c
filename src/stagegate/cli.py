"""The `stagegate` command: read the release ledger, validate gate configuration.

    stagegate ledger list --state-dir /var/lib/stagegate/staging [--json]
    stagegate ledger last-good --state-dir DIR [--exclude-release v2] [--json]
    stagegate gates validate gates.yml [--checks catalog.yml]

Exit codes: 0 ok, 1 nothing found (last-good with no good release), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stagegate import ledger
from stagegate.gatekeeper import GateRequest, validate_request
from stagegate.gates import GateConfigError

_COLUMNS = ("finished", "release", "previous", "verdict", "score", "run_by", "report_dir")


def _ledger_file(args: argparse.Namespace) -> Path:
    return Path(args.ledger) if args.ledger else ledger.ledger_path(args.state_dir)


def _read_ledger(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records; lines skipped (a torn final line, a corrupt one) are named on stderr."""
    records, warnings = ledger.scan(_ledger_file(args))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return records


def _table(records: list[dict[str, Any]]) -> str:
    rows = [[str(r.get(c) if r.get(c) is not None else "-") for c in _COLUMNS] for r in records]
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
        print(f"no GO or GO_WITH_WARNINGS release in {_ledger_file(args)}", file=sys.stderr)
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
    request = GateRequest(
        release="",
        report_dir="",
        gates=gates,
        catalog=[str(c["name"]) for c in catalog] if catalog is not None else None,
        groups=[str(c.get("group", "default")) for c in catalog] if catalog is not None else None,
    )
    config = validate_request(request)
    print(f"{len(config.rules)} gate(s) valid: " + ", ".join(r.name for r in config.rules))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stagegate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

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
    except (GateConfigError, ledger.LedgerError, OSError) as exc:
        print(f"stagegate: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
