"""The variable contract in stagegate.config: types, nested keys, phases, typos, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.stagegate.release.plugins.doc_fragments.pg import ModuleDocFragment
from sandbox_fixtures import (
    PlaybookRun,
    SandboxStack,
    isolated_stack,
    local_inventory,
    run_playbook,
)

from stagegate.config import (
    CORE_FIELDS,
    ArgumentSpecError,
    Schema,
    SecretRule,
    check_secret,
    parse_dotenv,
)

ROLES = Path(__file__).resolve().parent.parent / "roles"

VALID = {
    "stagegate_environment": "staging",
    "stagegate_state_dir": "/var/lib/stagegate/staging",
    "stagegate_release": "v2",
    "stagegate_source_repo": "/srv/repo.git",
    "stagegate_compose_project": "shop",
    "stagegate_compose_files": ["compose.yaml"],
    "stagegate_tiers": [["postgres", "redis"], ["api", "worker"]],
    "stagegate_app_services": ["api", "worker"],
    "stagegate_db": {
        "host": "127.0.0.1",
        "port": 5432,
        "name": "shop",
        "user": "shop",
        "password": "correct horse battery staple",
    },
}
ALL_PHASES = ["preflight", "source", "backup", "migration_dryrun", "build", "deploy"]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema.load(ROLES)


def messages(schema: Schema, values: dict[str, object], phases: list[str] = ALL_PHASES) -> str:
    errors, _ = schema.validate(values, phases)
    return "\n".join(str(e) for e in errors)


def test_a_complete_configuration_is_valid(schema: Schema) -> None:
    assert schema.validate(VALID, ALL_PHASES) == ([], [])


def test_unknown_key_is_named_with_a_suggestion(schema: Schema) -> None:
    text = messages(schema, {**VALID, "stagegate_relase": "v2"})
    assert "stagegate_relase: unknown stagegate_ variable" in text
    assert "did you mean stagegate_release?" in text


def test_unknown_keys_can_be_warnings(schema: Schema) -> None:
    errors, warnings = schema.validate(
        {**VALID, "stagegate_relase": "v2"}, ALL_PHASES, unknown_keys_fatal=False
    )
    assert errors == []
    assert [w.key for w in warnings] == ["stagegate_relase"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("stagegate_compose_files", "compose.yaml", "got 'compose.yaml' (string), expected a list"),
        ("stagegate_tiers", ["postgres"], "stagegate_tiers[0]: got 'postgres' (string)"),
        ("stagegate_app_services", {"api": 1}, "expected a list of strings"),
        ("stagegate_compose_env", ["A=1"], "expected a mapping"),
        ("stagegate_release", ["v2"], "got ['v2'] (list), expected a string"),
    ],
)
def test_wrong_type_names_key_value_and_form(
    schema: Schema, key: str, value: object, expected: str
) -> None:
    text = messages(schema, {**VALID, key: value})
    assert key in text
    assert expected in text


def test_nested_database_keys_are_checked(schema: Schema) -> None:
    db = {"host": "db", "port": "abc", "name": "shop", "pasword": "x"}
    text = messages(schema, {**VALID, "stagegate_db": db})
    assert "stagegate_db.port: got 'abc' (string), expected an integer in 1..65535" in text
    assert "stagegate_db.pasword: unknown key; did you mean password?" in text
    assert "stagegate_db.user: is required but not set" in text


def test_every_database_option_of_the_pg_modules_is_a_stagegate_db_key(schema: Schema) -> None:
    """`stagegate_db` is handed whole to the pg_* modules (`db:`), so each of their `db`
    suboptions (socket_dir, container_port, connect_timeout, ...) must pass preflight too."""
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    suboptions = fragment["options"]["db"]["suboptions"]
    assert {"socket_dir", "container_port"} <= set(suboptions)
    samples = {"str": "/tmp", "int": 5432, "path": "/tmp"}
    db = dict(VALID["stagegate_db"])  # type: ignore[call-overload]
    db.update({key: samples[spec["type"]] for key, spec in suboptions.items() if key not in db})
    assert messages(schema, {**VALID, "stagegate_db": db}) == ""
    text = messages(schema, {**VALID, "stagegate_db": {**db, "container_port": "abc"}})
    assert "stagegate_db.container_port: got 'abc' (string), expected an integer" in text


def test_role_argument_specs_take_every_database_option_of_the_pg_modules() -> None:
    """A role whose argument spec lists `stagegate_db`'s options would refuse the ones it
    leaves out at role entry ("stagegate_db.socket_dir. Supported parameters include: ...")."""
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    wanted = set(fragment["options"]["db"]["suboptions"])
    checked = []
    for path in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        for entry, spec in yaml.safe_load(path.read_text())["argument_specs"].items():
            db = spec.get("options", {}).get("stagegate_db", {})
            if "options" in db:
                checked.append(f"{path.parent.parent.name}:{entry}")
                assert wanted <= set(db["options"]), (path, entry, wanted - set(db["options"]))
    assert checked, "no role spells out stagegate_db's options any more: drop this test"


def test_scalars_given_as_strings_convert_like_ansible(schema: Schema) -> None:
    db = {**VALID["stagegate_db"], "port": "5433"}  # type: ignore[dict-item]
    assert messages(schema, {**VALID, "stagegate_db": db}) == ""
    assert "65535" in messages(schema, {**VALID, "stagegate_db": {**db, "port": 70000}})


def test_secret_values_are_never_shown(schema: Schema) -> None:
    db = {**VALID["stagegate_db"], "password": ["hunter2-but-in-a-list"]}  # type: ignore[dict-item]
    text = messages(schema, {**VALID, "stagegate_db": db})
    assert "stagegate_db.password: got <secret, not shown> (list)" in text
    assert "hunter2" not in text


def test_required_keys_depend_on_the_phases(schema: Schema) -> None:
    partial = {k: v for k, v in VALID.items() if k not in ("stagegate_tiers", "stagegate_db")}
    text = messages(schema, partial)
    assert "stagegate_tiers: is required for phase(s) deploy but is not set" in text
    assert "stagegate_db: is required for phase(s) backup, deploy, migration_dryrun" in text
    assert messages(schema, partial, ["preflight", "source", "build"]) == ""


def test_a_strategy_without_compose_needs_no_compose_project(schema: Schema) -> None:
    """A symlink deployment has no compose project: the key Compose needs is not required."""
    partial = {k: v for k, v in VALID.items() if k != "stagegate_compose_project"}
    assert "stagegate_compose_project: is required for phase(s) build, deploy" in messages(
        schema, partial
    )
    errors, _ = schema.validate(partial, ALL_PHASES, compose=False)
    assert errors == []


def test_exactly_one_source(schema: Schema) -> None:
    neither = {k: v for k, v in VALID.items() if k != "stagegate_source_repo"}
    assert "one of stagegate_source_repo, stagegate_source_dir is required" in messages(
        schema, neither
    )
    both = {**VALID, "stagegate_source_dir": "/src"}
    assert "exclude each other" in messages(schema, both)
    assert messages(schema, neither, ["backup"]).count("stagegate_source") == 0


def test_role_argument_specs_extend_the_contract(schema: Schema) -> None:
    # preflight's own knobs come from its meta/argument_specs.yml, with their types and choices
    assert "stagegate_lock_ttl" in schema.fields
    assert "expected an integer" in messages(schema, {**VALID, "stagegate_lock_ttl": "soon"})
    assert "one of 'error', 'warn'" in messages(
        schema, {**VALID, "stagegate_preflight_unknown_keys": "ignore"}
    )
    bad_phase = messages(schema, {**VALID, "stagegate_preflight_phases": ["deploy", "deplyo"]})
    assert "stagegate_preflight_phases[1]: got 'deplyo'" in bad_phase
    bad_rule = messages(schema, {**VALID, "stagegate_required_secrets": [{"file": "/x/.env"}]})
    assert "stagegate_required_secrets[0].name: is required but not set" in bad_rule


def test_core_fields_come_first(schema: Schema) -> None:
    # a role restating a core variable (with a looser type) does not override the contract
    for field in CORE_FIELDS:
        assert schema.fields[field.name] is field


def test_runtime_facts_are_not_typos(schema: Schema) -> None:
    values = {**VALID, "stagegate_run_id": "r1", "stagegate_previous_release": "v1"}
    assert messages(schema, values) == ""


@pytest.mark.parametrize(
    "key", ["stagegate_release", "stagegate_adopt_release", "stagegate_run_id"]
)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("../x", "contains a path separator"),
        ("v1/../../etc", "contains a path separator"),
        ("/srv/v1", "is an absolute path"),
        ("..", "is a relative directory reference"),
        (".v1", "starts with '.'"),
    ],
)
def test_names_that_become_paths_must_be_one_file_name(
    schema: Schema, key: str, value: str, problem: str
) -> None:
    # releases/<release>/, <db>-<release>-<run id>.dump, runs/<run id>/, <release>-<run id>/
    text = messages(schema, {**VALID, key: value})
    assert text.startswith(f"{key}: got {value!r}, which {problem}"), text
    assert "expected one file name" in text


@pytest.mark.parametrize(
    ("rule", "value", "problem"),
    [
        (SecretRule("JWT_SECRET", min_length=32), "s3cr3t-v4lue", "is shorter than 32 characters"),
        (SecretRule("JWT_SECRET"), None, "is missing or empty"),
        (
            SecretRule("CORS_ORIGINS", must_not_contain=("localhost",)),
            "https://a.example,http://LOCALHOST:3000",
            "must not contain 'localhost'",
        ),
        (SecretRule("API_KEY", pattern=r"^sk_[a-z0-9]+$"), "pk_123", "does not match the pattern"),
    ],
)
def test_secret_rules_describe_problems_without_the_value(
    rule: SecretRule, value: str | None, problem: str
) -> None:
    errors = check_secret(rule, value)
    assert [problem in str(e) for e in errors] == [True]
    assert value is None or value not in str(errors[0])


def test_a_well_formed_secret_passes() -> None:
    rule = SecretRule("JWT_SECRET", min_length=32, must_not_contain=("changeme",))
    assert check_secret(rule, "x" * 40) == []


def test_dotenv_parsing_follows_compose() -> None:
    text = (
        "# comment\n"
        "export JWT_SECRET='a b#c'\n"
        'CORS_ORIGINS="https://a.example"\n'
        "PLAIN=value # trailing comment\n"
        "EMPTY=\n"
        "not a line\n"
    )
    assert parse_dotenv(text) == {
        "JWT_SECRET": "a b#c",
        "CORS_ORIGINS": "https://a.example",
        "PLAIN": "value",
        "EMPTY": "",
    }


def test_a_broken_role_argument_spec_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "deploy" / "meta" / "argument_specs.yml"
    spec.parent.mkdir(parents=True)
    spec.write_text("argument_specs:\n  main:\n    description: C({a: b, c: d})\n      x: y\n")
    with pytest.raises(ArgumentSpecError, match=r"cannot read .*deploy/meta/argument_specs.yml"):
        Schema.load(tmp_path)


def assert_stopped_by_config_validation(run: PlaybookRun, stack: SandboxStack) -> None:
    """staging.yml failed in preflight's configuration check, before anything: no lock, no
    checkout, no ledger record, no report."""
    assert run.rc != 0
    assert "TASK [stagegate.release.preflight : Validate every stagegate_* variable" in run.stdout
    assert "Take the deploy lock" not in run.stdout
    assert not stack.state_dir.exists() or not list(stack.state_dir.iterdir())


@pytest.mark.slow
@pytest.mark.docker
def test_a_bad_check_option_stops_staging_before_the_lock(sandbox_repo: Path) -> None:
    """#12.2: a check's own options are validated in preflight, not in the validate phase."""
    with isolated_stack(sandbox_repo, "badcheck") as stack:
        bad = {
            "name": "api_status",
            "type": "http",
            "options": {
                "url": "http://127.0.0.1:1/?access_token=tok-never-shown",
                "status": "two hundred",
            },
        }
        # the sandbox's own catalog (valid, and named by its gates) plus the bad check
        catalog = "{{ sandbox_checks + sandbox_release_checks.v1 + bad_checks }}"
        variables = stack.extra_vars(
            stagegate_release="v1", bad_checks=[bad], stagegate_checks=catalog
        )
        run = run_playbook("staging.yml", variables)
        assert_stopped_by_config_validation(run, stack)
        assert (
            "stagegate_checks: check 'api_status' (type http): option 'status' = 'two hundred':"
            " expected an integer or a list of integers"
        ) in run.stdout, run.stdout[-3000:]
        assert "tok-never-shown" not in run.output


@pytest.mark.slow
def test_a_release_that_is_a_path_stops_staging_in_preflight(sandbox_repo: Path) -> None:
    """A release becomes `releases/<release>/`, an archive and a report directory name: `../x`
    is refused with the key named before the lock, not by the first module that makes a path."""
    with isolated_stack(sandbox_repo, "pathrelease") as stack:
        # and, in the same run, a role option below its bound: a new user's snapshot_max 0
        # passed here and stopped the app tier before the snapshot module refused it
        variables = stack.extra_vars(stagegate_release="../x", stagegate_backup_snapshot_max=0)
        run = run_playbook("staging.yml", variables)
        assert_stopped_by_config_validation(run, stack)
        assert (
            "stagegate_release: got '../x', which contains a path separator or a control "
            "character; expected one file name"
        ) in run.stdout, run.stdout[-3000:]
        assert (
            "stagegate_backup_snapshot_max: got 0 (integer), expected an integer in 1..inf"
        ) in run.stdout


NOT_EXTRA_VARS_PLAY = """\
- hosts: deploy
  gather_facts: false
  tasks:
    - name: Validate as the fleet's rollback.yml does
      stagegate.release.validate_config:
        phases: []
        not_extra_vars: [stagegate_release]
        unknown_keys: warn
"""


def test_a_key_the_playbook_sets_itself_is_refused_as_an_extra_var(tmp_path: Path) -> None:
    """A fleet rollback names its target stagegate_release for the checks and the report;
    `-e stagegate_release=v2` outranked it (a trial's fleet ran v1, its ledger said v2)."""
    playbook = tmp_path / "validate.yml"
    playbook.write_text(NOT_EXTRA_VARS_PLAY)
    inventory = local_inventory(tmp_path)
    run = run_playbook(str(playbook), {"stagegate_release": "v2"}, inventory=inventory)
    assert run.rc != 0
    assert "stagegate_release: given as an extra var (-e stagegate_release=v2)" in run.stdout

    inventory.write_text(inventory.read_text().rstrip() + " stagegate_release=v2\n")
    run = run_playbook(str(playbook), {}, inventory=inventory)  # the inventory's: fine
    assert run.rc == 0, run.stdout[-3000:]
