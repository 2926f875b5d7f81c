# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of stagegate.release.validate_config (documented in plugins/modules/)."""

import base64
import os
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

# Phases only their own playbook runs (rollback.yml, restore.yml), never demanded by default.
OWN_PLAYBOOK_PHASES = ("rollback", "restore")
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    is_secret_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._run_identity import run_identity

try:
    from stagegate.catalog import CatalogError, load_catalog
    from stagegate.config import (
        PHASES,
        PREFIX,
        ArgumentSpecError,
        ConfigError,
        Schema,
        SecretRule,
        check_secret,
        parse_dotenv,
    )
    from stagegate.plugins import get_hooks
    from stagegate.redact import Redactor
    from stagegate.strategies import StrategyError, resolve
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None

COLLECTION_ROLES = Path(__file__).resolve().parents[2] / "roles"

ARGUMENT_SPEC = {
    "scope": {"type": "str", "choices": ["config", "secrets"], "default": "config"},
    "phases": {
        "type": "list",
        "elements": "str",
        "default": [p for p in PHASES if p not in OWN_PLAYBOOK_PHASES]
        if STAGEGATE_IMPORT_ERROR is None
        else [],
    },
    "not_extra_vars": {"type": "list", "elements": "str", "default": []},
    "unknown_keys": {"type": "str", "choices": ["error", "warn"], "default": "error"},
    "secrets": {"type": "list", "elements": "dict", "default": []},
    "roles_dir": {"type": "path"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        require_stagegate("validate_config", STAGEGATE_IMPORT_ERROR)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["scope"] == "secrets":
            result.update(self._check_secrets(args["secrets"], task_vars))
        else:
            result.update(self._check_config(args, task_vars))
        return result

    # --- configuration -------------------------------------------------------------------

    def _check_config(self, args, task_vars):
        values, errors = self._templated_values(task_vars)
        phases = self._phases(args["phases"], task_vars)
        roles_dir = Path(args["roles_dir"]) if args["roles_dir"] else COLLECTION_ROLES
        try:
            schema = Schema.load(roles_dir)
        except ArgumentSpecError as exc:
            return {"failed": True, "changed": False, "errors": [str(exc)], "msg": str(exc)}
        strategy, strategy_errors = _strategy(values)
        found, warned = schema.validate(
            values,
            phases,
            unknown_keys_fatal=args["unknown_keys"] == "error",
            compose=strategy is None or strategy["compose"],
        )
        errors.extend(found)
        errors.extend(self._extra_vars_refused(args["not_extra_vars"]))
        if not any(e.key.startswith("stagegate_checks") for e in errors):
            errors.extend(_catalog_errors(values.get("stagegate_checks")))
        if not any(e.key.startswith("stagegate_deploy_strategy") for e in errors):
            errors.extend(strategy_errors)
        outcome = {
            "changed": False,
            "phases": sorted(phases, key=PHASES.index),
            "errors": [str(e) for e in errors],
            "ansible_facts": self._run_identity(task_vars),
        }
        if warned:
            outcome["warnings"] = [str(w) for w in warned]
        if errors:
            outcome["failed"] = True
            outcome["msg"] = _summary("configuration is invalid", errors)
        else:
            outcome["msg"] = f"configuration valid for phases: {', '.join(outcome['phases'])}"
        return outcome

    def _templated_values(self, task_vars):
        """Every stagegate_* variable, templated; a template that fails is itself an error."""
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        values, errors = {}, []
        for key in sorted(k for k in task_vars if k.startswith(PREFIX)):
            try:
                values[key] = templar.template(task_vars[key])
            except AnsibleError as exc:
                first_line = to_text(exc).splitlines()[0]
                if "is undefined" in first_line:  # rollback.yml asks for no stagegate_release
                    first_line += " (define it in the inventory, or default it in the template)"
                errors.append(ConfigError(key, f"cannot be templated: {first_line}"))
        return values, errors

    def _extra_vars_refused(self, keys):
        """The keys of `keys` given as extra vars (-e), which outrank what the playbook sets."""
        if not keys:
            return []
        given = load_extra_vars(self._loader)
        return [
            ConfigError(
                key,
                f"given as an extra var (-e {key}="
                f"{'<secret, not shown>' if is_secret_name(key) else given[key]}), which "
                "outranks the value this playbook sets itself for the checks, the report and the "
                "ledger; drop it from -e (the inventory's value is fine)",
            )
            for key in keys
            if key in given
        ]

    @staticmethod
    def _phases(requested, task_vars):
        run_tags = set(task_vars.get("ansible_run_tags") or ["all"])
        skip_tags = set(task_vars.get("ansible_skip_tags") or [])
        phases = {p for p in requested if p in PHASES}
        if "all" not in run_tags and run_tags & set(PHASES):
            phases &= run_tags
        return phases - skip_tags

    @staticmethod
    def _run_identity(task_vars):
        """The run id and owner, the same for every host of one ansible-playbook process."""
        facts = {k: v for k, v in run_identity(task_vars).items() if not task_vars.get(k)}
        # Reports go to the job's artifact dir under ansible-runner / AWX (runner exports it
        # as AWX_ISOLATED_DATA_DIR), which comes back with the job; else playbook_dir/artifacts.
        artifact_dir = os.environ.get("AWX_ISOLATED_DATA_DIR")
        if artifact_dir and not task_vars.get("stagegate_report_root"):
            facts["stagegate_report_root"] = os.path.join(artifact_dir, "stagegate")
        return facts

    # --- secrets -------------------------------------------------------------------------

    def _check_secrets(self, items, task_vars):
        errors, report, dotenv_files = [], [], {}
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        for index, item in enumerate(items):
            if not item.get("name"):
                errors.append(ConfigError(f"stagegate_required_secrets[{index}]", "has no name"))
                continue
            rule = SecretRule.from_item(item)
            try:
                value = self._secret_value(rule, task_vars, templar, dotenv_files)
            except AnsibleError as exc:
                errors.append(ConfigError(f"{rule.name} ({rule.source})", to_text(exc)))
                report.append({"name": rule.name, "source": rule.source, "ok": False})
                continue
            problems = check_secret(rule, value)
            errors.extend(problems)
            report.append({"name": rule.name, "source": rule.source, "ok": not problems})
        outcome = {"changed": False, "secrets": report, "errors": [str(e) for e in errors]}
        if errors:
            outcome["failed"] = True
            outcome["msg"] = _summary("required secrets are missing or malformed", errors)
        else:
            outcome["msg"] = f"{len(report)} required secret(s) present and well formed"
        return outcome

    def _secret_value(self, rule, task_vars, templar, dotenv_files):
        if rule.var:
            raw = task_vars.get(rule.var)
            return None if raw is None else to_text(templar.template(raw))
        if rule.file:
            if rule.file not in dotenv_files:
                dotenv_files[rule.file] = self._read_dotenv(rule.file, task_vars)
            return dotenv_files[rule.file].get(rule.name)
        return os.environ.get(rule.name)

    def _read_dotenv(self, path, task_vars):
        read = self._execute_module(
            module_name="ansible.builtin.slurp",
            module_args={"src": path},
            task_vars=task_vars,
        )
        if read.get("failed"):
            raise AnsibleError(f"cannot read the file on the deploy host: {read.get('msg', '')}")
        return parse_dotenv(to_text(base64.b64decode(read["content"])))


def _catalog_errors(catalog):
    """Each check's own options, validated by its type (the checks action's own validation,
    run here so that a bad check stops the run before the lock, not in the validate phase)."""
    if not catalog:
        return []
    try:
        types = get_hooks().check_types()
    except Exception as exc:  # a broken third-party plugin: say which, not a traceback
        return [ConfigError("stagegate_checks", f"loading stagegate plugins failed: {exc}")]
    try:
        load_catalog(catalog, types)
    except CatalogError as exc:
        redactor = Redactor().learn(catalog)
        return [ConfigError("stagegate_checks", redactor.text(error)) for error in exc.errors]
    return []


def _strategy(values):
    """(the resolved strategy or None, errors): `stagegate_deploy_strategy` names a registered
    strategy and its options fit its schema (docs/deploy.md "Deploy strategies"), before the
    lock rather than at the deploy step. None without errors: the default, compose."""
    name = values.get("stagegate_deploy_strategy")
    options = values.get("stagegate_deploy_strategy_options")
    if name in (None, "") and not options:
        return None, []
    try:
        return resolve(name or "compose", options, get_hooks().deploy_strategies()), []
    except StrategyError as exc:
        return None, [ConfigError("stagegate_deploy_strategy", str(exc))]
    except Exception as exc:  # a broken third-party plugin: say which, not a traceback
        return None, [
            ConfigError("stagegate_deploy_strategy", f"loading stagegate plugins failed: {exc}")
        ]


def _summary(headline, errors):
    lines = "\n".join(f"  - {e}" for e in errors)
    return f"{headline} ({len(errors)} problem(s)):\n{lines}"
