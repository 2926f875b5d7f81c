"""The check catalog: `stagegate_checks` as data, validated whole before any check runs.

Each entry::

    - name: api-health            # unique
      type: http                  # a registered check type
      group: functionality        # infrastructure, authentication, ... (GROUPS) or your own
      severity: critical          # critical | warning | info
      tags: [smoke]
      run_on: controller          # controller | host
      timeout: 10                 # seconds per attempt
      retries: 0                  # extra attempts while FAIL/ERROR (wait until healthy)
      delay: 1                    # seconds between attempts
      read_only: true             # override the type's default (check mode runs read-only ones)
      options: {url: ..., ...}    # the type's options (docs/checks.md)

Options may also be written inline beside the common keys; `options:` wins on conflict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    ENTRY_OPTIONS,
    typed_value,
    validate_options,
)

from stagegate.bands import Bands
from stagegate.checks import CheckType
from stagegate.results import Severity

GROUP_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
GROUPS = (
    "infrastructure",
    "authentication",
    "functionality",
    "performance",
    "security",
    "data",
    "tests",
    "observability",
    "configuration",
)
DEFAULT_GROUP = "functionality"
"""The group of a check without `group:` (the engine, the gate and the reports use this)."""
RUN_ON = ("controller", "host")
_COMMON_KEYS = {
    "name",
    "type",
    "group",
    "severity",
    "tags",
    "run_on",
    "timeout",
    "retries",
    "delay",
    "read_only",
    "options",
    "description",
}


class CatalogError(ValueError):
    """The catalog is invalid; `errors` lists every problem found, each naming the check."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid stagegate_checks:\n- " + "\n- ".join(errors))


@dataclass(frozen=True)
class CheckSpec:
    """One validated catalog entry."""

    name: str
    type: str
    group: str = DEFAULT_GROUP
    severity: Severity = Severity.CRITICAL
    tags: tuple[str, ...] = ()
    run_on: str = "controller"
    timeout: float = 10.0
    retries: int = 0
    delay: float = 1.0
    read_only: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "group": self.group,
            "severity": str(self.severity),
            "tags": list(self.tags),
            "run_on": self.run_on,
            "timeout": self.timeout,
            "retries": self.retries,
            "delay": self.delay,
            "read_only": self.read_only,
            "options": self.options,
        }


def _band_parser(value: Any) -> Any:
    return Bands.parse(value)


def _entry_value(where: str, entry: Mapping[str, Any], key: str, errors: list[str]) -> Any:
    """A typed common key (timeout, retries, delay, read_only), converted like every check
    option (`coerce`: "3" from a template is 3); its default when absent or wrong."""
    spec = ENTRY_OPTIONS[key]
    if entry.get(key) is None:
        return spec.get("default")
    value, expected = typed_value(entry[key], spec)
    if expected is not None:
        errors.append(f"{where}: '{key}' = {entry[key]!r}: expected {expected}")
        return spec.get("default")
    return value


def _common(where: str, entry: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    group = entry.get("group", DEFAULT_GROUP)
    if not isinstance(group, str) or not GROUP_RE.match(group):
        errors.append(
            f"{where}: 'group' = {group!r}: expected a lower-case name such as {', '.join(GROUPS)}"
        )
    severity = entry.get("severity", "critical")
    if severity not in {s.value for s in Severity}:
        errors.append(f"{where}: 'severity' = {severity!r}: expected critical, warning or info")
        severity = "critical"
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(f"{where}: 'tags' = {tags!r}: expected a list of strings")
        tags = []
    run_on = entry.get("run_on", "controller")
    if run_on not in RUN_ON:
        errors.append(f"{where}: 'run_on' = {run_on!r}: expected controller or host")
    return {
        "group": group,
        "severity": Severity(severity),
        "tags": tuple(tags),
        "run_on": run_on,
        "timeout": _entry_value(where, entry, "timeout", errors),
        "retries": _entry_value(where, entry, "retries", errors),
        "delay": _entry_value(where, entry, "delay", errors),
        "read_only": _entry_value(where, entry, "read_only", errors),
        "description": str(entry.get("description", "")),
    }


def _entry(
    index: int, entry: Any, types: Mapping[str, CheckType], errors: list[str]
) -> CheckSpec | None:
    if not isinstance(entry, Mapping):
        errors.append(f"check #{index + 1}: {entry!r}: expected a mapping with name and type")
        return None
    name = entry.get("name")
    where = f"check {name!r}" if isinstance(name, str) and name else f"check #{index + 1}"
    if not isinstance(name, str) or not name:
        errors.append(f"{where}: 'name' = {name!r}: expected a non-empty string")
    type_name = entry.get("type")
    check_type = types.get(type_name) if isinstance(type_name, str) else None
    if check_type is None:
        errors.append(
            f"{where}: 'type' = {type_name!r}: expected one of {', '.join(sorted(types))}"
        )
    common = _common(where, entry, errors)
    raw_options = {k: v for k, v in entry.items() if k not in _COMMON_KEYS}
    nested = entry.get("options", {})
    if not isinstance(nested, Mapping):
        errors.append(f"{where}: 'options' = {nested!r}: expected a mapping")
        nested = {}
    raw_options.update(nested)
    if check_type is None:
        return None
    options, option_errors = validate_options(
        f"{where} (type {type_name})", raw_options, check_type.options, _band_parser
    )
    errors.extend(option_errors or check_type.option_errors(f"{where} (type {type_name})", options))
    if common["run_on"] == "host" and not check_type.host_capable:
        errors.append(f"{where}: 'run_on' = 'host': type {type_name} runs on the controller only")
    read_only = common.pop("read_only")
    return CheckSpec(
        name=str(name),
        type=check_type.name,
        read_only=check_type.is_read_only(options, read_only),
        options=options,
        **common,
    )


def load_catalog(entries: Any, types: Mapping[str, CheckType]) -> list[CheckSpec]:
    """Validate every entry; raise `CatalogError` listing all problems, or return the specs."""
    if not isinstance(entries, list):
        raise CatalogError([f"stagegate_checks = {entries!r}: expected a list of checks"])
    errors: list[str] = []
    specs = [_entry(i, entry, types, errors) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for spec in specs:
        if spec is not None and spec.name in seen:
            errors.append(f"check {spec.name!r}: 'name' is used twice; expected unique names")
        if spec is not None:
            seen.add(spec.name)
    if errors:
        raise CatalogError(errors)
    return [spec for spec in specs if spec is not None]


def select(
    specs: Iterable[CheckSpec],
    *,
    names: Iterable[str] = (),
    groups: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> list[CheckSpec]:
    """The checks matching every given filter (a filter left empty matches all)."""
    names, groups, tags = set(names), set(groups), set(tags)
    return [
        spec
        for spec in specs
        if (not names or spec.name in names)
        and (not groups or spec.group in groups)
        and (not tags or tags & set(spec.tags))
    ]
