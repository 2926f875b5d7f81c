"""One contract for the `stagegate_*` variables (#14): docs/configuration.md, the core fields of
`stagegate.config`, every role's meta/argument_specs.yml and defaults/main.yml agree.

Fails on drift: a documented key that nothing declares, a core key the docs leave out, a role
default its argument spec does not promise (or promises with another value), the same key with
two defaults or two types in two roles, a documented default the roles do not use, a run-wide
key documented nowhere. Role knobs (`stagegate_<role>_*`) are documented in their role's spec.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagegate.config import CORE_FIELDS, ROLE_OPTION_MINIMUMS, RUNTIME_FACTS, Schema

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta").is_dir())
CONFIGURATION = (REPO / "docs" / "configuration.md").read_text()
ROW = re.compile(r"^\| `(stagegate_[a-z0-9_]+)` \| [^|]* \| ([^|]*) \|", re.MULTILINE)
# The docs' words for "no default": required, or a default computed at run time / elsewhere.
NO_LITERAL = re.compile(r"^\(|^see |<|^the job")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def role_options(role: str) -> dict[str, list[dict[str, Any]]]:
    """Each option of the role's argument specs, with its spec in every entry point."""
    specs = _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    options: dict[str, list[dict[str, Any]]] = {}
    for body in specs.values():
        for name, option in (body.get("options") or {}).items():
            options.setdefault(name, []).append(option)
    return options


def role_defaults(role: str) -> dict[str, Any]:
    return _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}


OPTIONS = {role: role_options(role) for role in ROLES}
DECLARED = {name for options in OPTIONS.values() for name in options}
CORE = {f.name for f in CORE_FIELDS}
PLAYBOOK_TEXT = "\n".join(
    p.read_text() for folder in ("playbooks", "roles") for p in (REPO / folder).glob("**/*.yml")
)
CORE_TABLE = dict(ROW.findall(CONFIGURATION.split("## The migration tracking table")[0]))


def test_every_documented_core_key_is_declared_and_every_core_key_documented() -> None:
    assert CORE_TABLE, "docs/configuration.md has no core table"
    undeclared = sorted(set(CORE_TABLE) - CORE - DECLARED)
    assert not undeclared, f"documented in docs/configuration.md, declared nowhere: {undeclared}"
    undocumented = sorted(CORE - set(CORE_TABLE))
    assert not undocumented, f"core fields missing from docs/configuration.md: {undocumented}"


def test_every_run_wide_switch_is_declared_and_documented() -> None:
    knobs = CONFIGURATION.split("## Phase knobs")[1]
    named = set(re.findall(r"`(stagegate_[a-z0-9_]+)`", knobs))
    assert named
    assert not sorted(named - CORE - DECLARED), "named in the run-wide switches, declared nowhere"
    docs = "\n".join(p.read_text() for p in (REPO / "docs").glob("**/*.md"))
    patterns = re.findall(r"`(stagegate_[a-z0-9_]+)\*`", CONFIGURATION)
    undocumented = sorted(
        name
        for name in DECLARED - RUNTIME_FACTS
        if f"`{name}`" not in docs
        and not name.startswith(tuple(patterns))
        and not any(name.startswith(f"stagegate_{role}_") for role in ROLES)
        # an entry point's own parameters, passed from role to role, not set by users
        and not any(name.startswith(f"{role}_") for role in ROLES)
    )
    assert not undocumented, f"declared in a role, documented nowhere in docs/: {undocumented}"


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_exactly_what_its_spec_promises(role: str) -> None:
    options, defaults = OPTIONS[role], role_defaults(role)
    assert not sorted(set(defaults) - set(options)), f"{role}: defaults its spec does not declare"
    for name, specs in options.items():
        for spec in specs:
            assert spec.get("description"), f"{role}: {name} has no description"
            if "default" in spec:
                assert name in defaults, f"{role}: {name} has no default in defaults/main.yml"
                assert defaults[name] == spec["default"], f"{role}: {name} differs"
            else:
                assert name not in defaults, f"{role}: {name} defaulted, the spec says no default"


def test_a_key_has_one_type_and_one_default_in_every_role() -> None:
    seen: dict[str, dict[str, Any]] = {}
    for role in ROLES:
        for name, specs in OPTIONS[role].items():
            for spec in specs:
                form = {k: spec.get(k) for k in ("type", "elements", "default")}
                if "default" not in spec:
                    form.pop("default")
                first = seen.setdefault(name, {**form, "role": role})
                for key in ("type", "elements"):
                    assert form[key] == first[key], f"{name}: {key} {role} vs {first['role']}"
                if "default" in form and "default" in first:
                    assert form["default"] == first["default"], (
                        f"{name}: default in {role} differs from {first['role']}"
                    )


@pytest.mark.parametrize("name", sorted(CORE_TABLE))
def test_the_documented_default_is_the_roles_default(name: str) -> None:
    documented = CORE_TABLE[name].strip()
    defaults = {role: role_defaults(role)[name] for role in ROLES if name in role_defaults(role)}
    required = [
        role
        for role in ROLES
        for spec in OPTIONS[role].get(name, [])
        if spec.get("required") and "default" not in spec
    ]
    if NO_LITERAL.search(documented):
        return
    literal = documented.strip("`")
    value = literal if literal.startswith("{{") else yaml.safe_load(literal)
    if not defaults:  # a playbook-level switch: every use defaults it to the documented value
        uses = re.findall(rf"{name} \| default\(([^)]*)\)", PLAYBOOK_TEXT)
        assert uses, f"{name}: documented default {documented}, nothing defaults it"
        assert {yaml.safe_load(u) for u in uses} == {value}, f"{name}: defaulted to {uses}"
    for role, default in defaults.items():
        assert default == value, f"{name}: documented {documented}, {role} defaults {default!r}"
    assert not required, f"{name}: documented default {documented}, required by {required}"


@pytest.mark.parametrize("name", sorted(ROLE_OPTION_MINIMUMS))
def test_a_role_option_below_its_minimum_is_refused_by_the_preflight_schema(name: str) -> None:
    """A new user's `stagegate_backup_snapshot_max: 0` passed preflight and stopped the app tier
    before the snapshot module refused it; the schema now names the key, the value and the
    range. Each bounded option is one that a role declares, with the bound in its description."""
    assert any(name in role_options(role) for role in ROLES), name
    low = ROLE_OPTION_MINIMUMS[name]
    errors, _ = Schema.load(REPO / "roles").validate({name: low - 1}, phases=[])
    assert [str(e) for e in errors] == [
        f"{name}: got {low - 1} (integer), expected an integer in {low}..inf"
    ]
    assert Schema.load(REPO / "roles").validate({name: low}, phases=[]) == ([], [])
