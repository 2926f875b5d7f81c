"""The `stagegate_*` variable contract, and its validation before anything changes.

`CORE_FIELDS` is the single source of truth for the variables every phase shares
(docs/configuration.md). Role-specific knobs are declared once, in each role's
`meta/argument_specs.yml`; `fields_from_argument_specs` reads them into the same
`Field` form so one validator covers the whole configuration and an unknown key
(a typo) is reported with a did-you-mean suggestion.

Errors name the key, show the value (never for a secret) and say what was expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.stagegate.release.plugins.module_utils._checks_common import coerce
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    is_secret_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    EXPECTED_NAME,
    UnsafeNameError,
    safe_component,
)

PREFIX = "stagegate_"

PHASES = (
    "preflight",
    "source",
    "backup",
    "migration_dryrun",
    "build",
    "deploy",
    "validate",
    "gate_report",
    "rollback",
    "restore",  # playbooks/restore.yml: the database alone (docs/restore.md)
)
# The phases before the deploy: a run that stops in one of them leaves the release that ran
# running, untouched (nothing to roll back).
BEFORE_DEPLOY = PHASES[: PHASES.index("deploy")]

# Facts the roles set during a run: allowed in the variable space, never user input.
RUNTIME_FACTS = frozenset(
    {
        "stagegate_run_id",
        "stagegate_run_owner",
        "stagegate_previous_release",
        "stagegate_source_before",
        "stagegate_source_after",
        "stagegate_fleet",  # the fleet shape (docs/fleet.md)
        "stagegate_fleet_host_error",  # why an app host reported nothing
    }
)

# Values that name one file or directory on the deploy host or the controller:
# `releases/<release>/`, the archive `<db>-<release>-<run id>`, `runs/<run id>/`, the report
# directory `<release>-<run id>`. A user-given run id (`-e stagegate_run_id=...`) is checked too.
PATH_COMPONENTS = frozenset({"stagegate_release", "stagegate_adopt_release", "stagegate_run_id"})


@dataclass(frozen=True)
class Spec:
    """The expected form of one value: an Ansible argument-spec type and its constraints."""

    type: str = "raw"  # str, path, int, float, bool, list, dict, raw
    elements: Spec | None = None  # for lists
    options: Mapping[str, Field] | None = None  # for dicts with known keys
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False


@dataclass(frozen=True)
class Field:
    """One variable (or one key of a dict variable) and the phases that require it."""

    name: str
    spec: Spec
    description: str = ""
    required_for: frozenset[str] = field(default_factory=frozenset)
    required: bool = False  # inside a dict: the key must be present
    # Required only when the deploy strategy runs a Compose project (its `compose` capability:
    # docs/deploy.md "Deploy strategies"); a symlink deployment has no compose project.
    compose_only: bool = False


class ArgumentSpecError(ValueError):
    """A role's meta/argument_specs.yml cannot be read: named, so the author can fix it."""


@dataclass(frozen=True)
class ConfigError:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def _spec(type_: str, **kwargs: Any) -> Spec:
    return Spec(type=type_, **kwargs)


STR = _spec("str")
PATH = _spec("path")
LIST_OF_STR = _spec("list", elements=STR)

DB_FIELDS = {
    f.name: f
    for f in (
        Field("host", STR, "database host name or address", required=True),
        Field("port", _spec("int", minimum=1, maximum=65535), "database TCP port"),
        Field("name", STR, "database name", required=True),
        Field("user", STR, "database role to connect as", required=True),
        Field("password", _spec("str", secret=True), "password (secret, never printed)"),
        Field("container", STR, "compose service for `docker exec` (database in a container)"),
        Field("socket_dir", STR, "with container: the server's socket directory inside it"),
        Field(
            "container_port",
            _spec("int", minimum=1, maximum=65535),
            "with container: the port the server listens on inside it",
        ),
        Field("connect_timeout", _spec("int", minimum=1), "seconds to wait for a connection"),
    )
}

_DB_PHASES = frozenset({"backup", "migration_dryrun", "deploy", "rollback", "restore"})
_COMPOSE_PHASES = frozenset({"build", "deploy", "rollback"})

CORE_FIELDS: tuple[Field, ...] = (
    Field(
        "stagegate_environment",
        STR,
        "environment name; one in stagegate_production_environments (any case) turns on guards",
    ),
    Field(
        "stagegate_production_environments",
        LIST_OF_STR,
        "environment names that count as production, case-insensitive (production, prod, live)",
    ),
    Field("stagegate_state_dir", PATH, "deploy-host state (checkout, manifests, ledger, lock)"),
    Field("stagegate_project_dir", PATH, "compose project directory of the deployed release"),
    Field(
        "stagegate_source_repo",
        STR,
        "git repository (path or URL) whose tags are releases",
    ),
    Field(
        "stagegate_release",
        STR,
        "the release (git tag) to promote",
        required_for=frozenset({"source", "build", "deploy"}),
    ),
    Field(
        "stagegate_compose_project",
        STR,
        "compose project name",
        required_for=_COMPOSE_PHASES,
        compose_only=True,
    ),
    Field("stagegate_compose_files", LIST_OF_STR, "compose files, relative to the project dir"),
    Field("stagegate_compose_env", _spec("dict"), "extra environment for `docker compose`"),
    Field(
        "stagegate_tiers",
        _spec("list", elements=LIST_OF_STR),
        "services started tier by tier, e.g. [[postgres, redis], [api, worker]]",
        required_for=frozenset({"deploy", "rollback"}),
    ),
    Field(
        "stagegate_app_services",
        LIST_OF_STR,
        "the app tier, stopped during deploy",
        required_for=frozenset({"deploy", "rollback"}),
    ),
    Field(
        "stagegate_db",
        _spec("dict", options=DB_FIELDS),
        "database connection: host, port, name, user, password, container, socket_dir, ..",
        required_for=_DB_PHASES,
    ),
    Field("stagegate_migrations_dir", PATH, "SQL migration files"),
    Field("stagegate_report_dir", PATH, "where the reports are written"),
    Field("stagegate_checks", _spec("list", elements=_spec("dict")), "the check catalog"),
    Field("stagegate_gates", _spec("dict"), "gate rules"),
    Field(
        "stagegate_fleet_image_copy",
        _spec("str", choices=("save_load", "none")),
        "a fleet: how app hosts get the build's images (save_load: docker save | docker load "
        "over SSH, only what a host lacks; none: a host without them stops the run)",
    ),
    Field(
        "stagegate_auto_rollback",
        _spec("bool"),
        "staging.yml: on NO_GO, run the rollback role after the report (still exits non-zero)",
    ),
    Field(
        "stagegate_serial",
        _spec("raw"),
        "a fleet's rollout batches (Ansible's serial): 2, '34%' or [1, '50%']; extra vars only",
    ),
    Field(
        "stagegate_max_fail_percentage",
        _spec("float", minimum=0, maximum=100),
        "a fleet rollout: the share of a batch's app hosts that may fail, 0-100",
    ),
)

# Keys of which at least one must be set for a phase, and which exclude each other.
ONE_OF: Mapping[str, tuple[str, ...]] = {
    "source": ("stagegate_source_repo", "stagegate_source_dir")
}


# --- reading role argument specs ---------------------------------------------------------

# Lower bounds of role options, which a role's argument spec cannot carry (ansible-lint's
# schema allows no `minimum` key); checked in preflight, before anything changes. Without
# this a `stagegate_backup_snapshot_max: 0` passed preflight and failed in the deploy phase,
# after the app tier had been stopped.
ROLE_OPTION_MINIMUMS: Mapping[str, int] = {
    "stagegate_backup_snapshot_max": 1,
    "stagegate_build_prune_keep_good": 1,
}


def _spec_from_argument(option: Mapping[str, Any]) -> Spec:
    type_ = str(option.get("type", "str"))
    nested = option.get("options")
    choices = tuple(option["choices"]) if option.get("choices") else None
    if type_ == "list":
        # As in Ansible's argument spec, a list's choices constrain its elements.
        element = {"type": option.get("elements", "raw"), "options": nested, "choices": choices}
        return Spec(type="list", elements=_spec_from_argument(element))
    return Spec(
        type=type_,
        options=_fields_from_options(nested) if type_ == "dict" and nested else None,
        choices=choices,
        secret=bool(option.get("no_log", False)),
    )


def _text(description: Any) -> str:
    if isinstance(description, list):
        return " ".join(str(line) for line in description)
    return str(description or "")


def _fields_from_options(options: Mapping[str, Any]) -> dict[str, Field]:
    """Keys of a dict option: `required` means the key must be present."""
    return {
        name: Field(
            name=name,
            spec=_spec_from_argument(option),
            description=_text(option.get("description")),
            required=bool(option.get("required", False)),
        )
        for name, option in options.items()
    }


def fields_from_argument_specs(roles_dir: Path) -> list[Field]:
    """The `stagegate_*` options declared in every role's `meta/argument_specs.yml`.

    A role's name is its phase: an option its `main` entry point requires is required
    for that phase. Other entry points (e.g. `tasks_from: release_lock`) only make
    their options known.
    """
    found: list[Field] = []
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        phase = spec_file.parent.parent.name
        try:
            data = yaml.safe_load(spec_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ArgumentSpecError(f"cannot read {spec_file}: {exc}") from exc
        for entry_name, entry in (data.get("argument_specs") or {}).items():
            for name, option in (entry.get("options") or {}).items():
                if not name.startswith(PREFIX):
                    continue
                required = entry_name == "main" and bool(option.get("required", False))
                spec = _spec_from_argument(option)
                if name in ROLE_OPTION_MINIMUMS:
                    spec = replace(spec, minimum=ROLE_OPTION_MINIMUMS[name])
                found.append(
                    Field(
                        name=name,
                        spec=spec,
                        description=_text(option.get("description")),
                        required_for=frozenset({phase}) if required else frozenset(),
                    )
                )
    return found


class Schema:
    """All known variables: the core contract first, then the roles' own knobs."""

    def __init__(self, fields: Iterable[Field]) -> None:
        self.fields: dict[str, Field] = {}
        for item in fields:
            self.fields.setdefault(item.name, item)

    @classmethod
    def load(cls, roles_dir: Path | None = None) -> Schema:
        extra = fields_from_argument_specs(roles_dir) if roles_dir else []
        return cls([*CORE_FIELDS, *extra])

    def validate(
        self,
        values: Mapping[str, Any],
        phases: Iterable[str],
        unknown_keys_fatal: bool = True,
        compose: bool = True,
    ) -> tuple[list[ConfigError], list[ConfigError]]:
        """Return (errors, warnings) for the `stagegate_*` entries of `values`. `compose`: the
        deploy strategy runs a Compose project (the keys only Compose needs are required)."""
        phases = set(phases)
        errors: list[ConfigError] = []
        unknown: list[ConfigError] = []
        for key in sorted(k for k in values if k.startswith(PREFIX)):
            known = self.fields.get(key)
            if known is None and key not in RUNTIME_FACTS:
                unknown.append(_unknown(key, [*self.fields, *RUNTIME_FACTS]))
            elif not _is_unset(values[key]):
                found = check_value(key, values[key], known.spec) if known else []
                errors.extend(found or check_component(key, values[key]))
        errors.extend(self._missing(values, phases, compose))
        if unknown_keys_fatal:
            return errors + unknown, []
        return errors, unknown

    def _missing(
        self, values: Mapping[str, Any], phases: set[str], compose: bool
    ) -> list[ConfigError]:
        errors = []
        for item in self.fields.values():
            if item.compose_only and not compose:
                continue
            needed_by = sorted(item.required_for & phases)
            if needed_by and _is_unset(values.get(item.name)):
                errors.append(
                    ConfigError(
                        item.name,
                        f"is required for phase(s) {', '.join(needed_by)} but is not set"
                        f" (expected {describe(item.spec)}: {item.description})",
                    )
                )
        for phase, keys in ONE_OF.items():
            if phase in phases:
                errors.extend(_one_of(values, keys, phase))
        return errors


def _one_of(values: Mapping[str, Any], keys: tuple[str, ...], phase: str) -> list[ConfigError]:
    present = [key for key in keys if not _is_unset(values.get(key))]
    if len(present) == 1:
        return []
    if not present:
        message = f"one of {', '.join(keys)} is required for the {phase} phase; none is set"
    else:
        message = f"{' and '.join(present)} exclude each other; set only one"
    return [ConfigError(" / ".join(keys), message)]


def _is_unset(value: Any) -> bool:
    return value is None or value == ""


def _unknown(key: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(key, f"unknown stagegate_ variable (a typo?){hint}")


# --- checking one value -------------------------------------------------------------------


_WORDS = {
    "str": ("a string", "strings"),
    "path": ("a path", "paths"),
    "int": ("an integer", "integers"),
    "float": ("a number", "numbers"),
    "bool": ("a boolean (true/false)", "booleans"),
    "dict": ("a mapping", "mappings"),
    "list": ("a list", "lists"),
    "raw": ("any value", "values"),
}


def describe(spec: Spec, plural: bool = False) -> str:
    """The expected form of a value, in words a user reads in an error."""
    if spec.choices:
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    singular, many = _WORDS.get(spec.type, (spec.type, spec.type))
    text = many if plural else singular
    if spec.type == "list" and spec.elements:
        text += " of " + describe(spec.elements, plural=True)
    elif spec.type == "dict" and spec.options:
        text += " with keys " + ", ".join(spec.options)
    if spec.minimum is not None or spec.maximum is not None:
        low = spec.minimum if spec.minimum is not None else "-inf"
        high = spec.maximum if spec.maximum is not None else "inf"
        text += f" in {low}..{high}"
    return text


def shown(key: str, value: Any, spec: Spec) -> str:
    """How a value appears in an error: never the value of a secret."""
    if spec.secret or is_secret_name(key.rsplit(".", 1)[-1]):
        return "<secret, not shown>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_value(key: str, value: Any, spec: Spec) -> list[ConfigError]:
    """Errors for `value` held against `spec`; an empty list when it conforms."""
    converted, ok = _convert(value, spec.type)
    if not ok:
        return [_expected(key, value, spec)]
    if spec.choices is not None and converted not in spec.choices:
        return [_expected(key, value, spec)]
    if (spec.minimum is not None and converted < spec.minimum) or (
        spec.maximum is not None and converted > spec.maximum
    ):
        return [_expected(key, value, spec)]
    if spec.type == "list" and spec.elements is not None:
        element = spec.elements
        return [
            e for i, item in enumerate(converted) for e in check_value(f"{key}[{i}]", item, element)
        ]
    if spec.type == "dict" and spec.options is not None:
        return _check_dict(key, converted, spec.options)
    return []


def _check_dict(
    key: str, value: Mapping[str, Any], options: Mapping[str, Field]
) -> list[ConfigError]:
    errors = []
    for name, item in value.items():
        if name not in options:
            close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            errors.append(
                ConfigError(
                    f"{key}.{name}", f"unknown key; {hint}expected keys: {', '.join(options)}"
                )
            )
        elif not _is_unset(item):
            errors.extend(check_value(f"{key}.{name}", item, options[name].spec))
    for name, item in options.items():
        if item.required and _is_unset(value.get(name)):
            errors.append(
                ConfigError(
                    f"{key}.{name}",
                    f"is required but not set (expected {describe(item.spec)}: {item.description})",
                )
            )
    return errors


def check_component(key: str, value: Any) -> list[ConfigError]:
    """A value that becomes one path component (PATH_COMPONENTS) must be one file name: the
    rule of `module_utils/_paths.safe_component`, which the modules apply again."""
    if key not in PATH_COMPONENTS:
        return []
    try:
        safe_component(value, key)
    except UnsafeNameError as exc:
        return [
            ConfigError(
                key, f"got {shown(key, value, STR)}, which {exc.problem}; expected {EXPECTED_NAME}"
            )
        ]
    return []


def _expected(key: str, value: Any, spec: Spec) -> ConfigError:
    return ConfigError(
        key,
        f"got {shown(key, value, spec)} ({_yaml_type(value)}), expected {describe(spec)}",
    )


def _yaml_type(value: Any) -> str:
    """The YAML word for a value's type (templated values are tagged subclasses)."""
    for kind, word in ((bool, "boolean"), (str, "string"), (int, "integer"), (float, "number")):
        if isinstance(value, kind):
            return word
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return "null" if value is None else type(value).__name__


def _convert(value: Any, type_: str) -> tuple[Any, bool]:
    """Convert like Ansible's argument spec for scalars (`-e` passes strings); strict for
    containers, so `stagegate_compose_files: compose.yaml` is an error, not a 1-item list."""
    converters = {
        "str": _to_str,
        "path": _to_str,
        "list": _to_list,
        "dict": _to_dict,
    }
    convert = converters.get(type_)
    if convert is not None:
        return convert(value)
    return coerce(value, type_)  # int, float, bool: the rule every check option follows


def _to_list(value: Any) -> tuple[Any, bool]:
    return value, isinstance(value, list)


def _to_dict(value: Any) -> tuple[Any, bool]:
    return value, isinstance(value, Mapping)


def _to_str(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        return value, True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value), True
    return value, False


# --- secrets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRule:
    """A secret that must be present and well formed; its value is never kept or shown."""

    name: str
    file: str | None = None  # a .env file on the deploy host; None: the controller environment
    var: str | None = None  # or an Ansible variable (e.g. a vaulted one)
    min_length: int = 1
    must_not_contain: tuple[str, ...] = ()
    pattern: str | None = None

    @property
    def source(self) -> str:
        if self.var:
            return f"variable {self.var}"
        if self.file:
            return self.file
        return "the controller environment"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SecretRule:
        return cls(
            name=str(item["name"]),
            file=item.get("file") or None,
            var=item.get("var") or None,
            min_length=int(item.get("min_length", 1)),
            must_not_contain=tuple(str(x) for x in item.get("must_not_contain") or ()),
            pattern=item.get("pattern") or None,
        )


def check_secret(rule: SecretRule, value: str | None) -> list[ConfigError]:
    """Problems with one secret, described without its value."""
    key = f"{rule.name} ({rule.source})"
    if value is None or value == "":
        return [ConfigError(key, "is missing or empty")]
    errors = []
    if len(value) < rule.min_length:
        errors.append(ConfigError(key, f"is shorter than {rule.min_length} characters"))
    lowered = value.lower()
    errors.extend(
        ConfigError(key, f"must not contain {term!r}")
        for term in rule.must_not_contain
        if term.lower() in lowered
    )
    if rule.pattern and not re.search(rule.pattern, value):
        errors.append(ConfigError(key, f"does not match the pattern {rule.pattern!r}"))
    return errors


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them (comments, `export`, quotes)."""
    found = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if not match:
            continue
        name, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        else:
            raw = re.sub(r"\s+#.*$", "", raw)
        found[name] = raw
    return found
