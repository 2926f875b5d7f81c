#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_config
short_description: Validate a Compose v2 project with docker compose config
description:
  - Runs C(docker compose config --format json) on the project and fails with the error
    Compose gives (unknown keys, bad interpolation, missing required variables, missing files).
  - Returns the resolved configuration, the services with their images, and hashes of the
    compose files and of the resolved configuration for the release manifest.
  - The returned configuration never holds a secret; values come interpolated from the
    project's own C(.env) and from O(env), so every value of a service's C(environment) and
    C(build.args) is replaced by C(***), and the values of secret-looking names (passwords,
    tokens, DSNs), the value after a secret flag in a C(command), and credentials inside URLs
    are masked wherever else they appear (the rules of docs/checks.md "Secrets"). The hashes
    are computed over the real configuration.
  - Read-only; a preflight step.
version_added: "0.1.0"
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.compose
options:
  required_services:
    description:
      - Services the project must define, by the setting that names them - each key a setting
        (C(stagegate_tiers), C(stagegate_app_services)), each value the list of services it
        names. Each unknown one fails naming its setting and the nearest defined name, with
        every service the project defines; every setting is checked before the module fails.
    type: dict
    default: {}
  release_repo:
    description:
      - Read the compose project of O(release) from this repository (C(stagegate_source_repo))
        instead of the files in O(project_src); O(files) are then relative to the release's
        tree. The tree is a C(git clone) into a temporary directory, removed before the module
        returns; when the release tracks no C(.env) beside its first compose file, the one
        beside it in O(project_src) (the deploy checkout's untracked secrets) is copied there,
        as a checkout of the release keeps it. O(project_src) need not exist (a first deploy).
      - Preflight uses it to validate the release's services before the deploy lock, when the
        deploy checkout still holds the release that runs.
    type: str
  release:
    description: The tag, branch or commit of O(release_repo) to read; required with it.
    type: str
attributes:
  check_mode:
    description: Runs the same read-only validation.
    support: full
  diff_mode:
    description: Nothing to diff; never changes anything.
    support: none
  idempotent:
    description: Never changes anything.
    support: full
seealso:
  - module: stagegate.release.compose_build
  - name: docker compose config
    description: The Compose CLI command this module runs.
    link: https://docs.docker.com/reference/cli/docker/compose/config/
"""

EXAMPLES = r"""
- name: Validate the compose project before touching anything
  stagegate.release.compose_config:
    project_src: "{{ stagegate_project_dir }}"
    project_name: "{{ stagegate_compose_project }}"
    files: "{{ stagegate_compose_files }}"
    env: "{{ stagegate_compose_env }}"
    required_services:
      stagegate_tiers: "{{ stagegate_tiers | flatten }}"
      stagegate_app_services: "{{ stagegate_app_services }}"

- name: Validate the services the tiers name against the release about to be promoted
  stagegate.release.compose_config:
    project_src: "{{ stagegate_project_dir }}"
    project_name: "{{ stagegate_compose_project }}"
    files: "{{ stagegate_compose_files }}"
    env: "{{ stagegate_compose_env }}"
    release_repo: "{{ stagegate_source_repo }}"
    release: "{{ stagegate_release }}"
    required_services:
      stagegate_tiers: "{{ stagegate_tiers | flatten }}"
      stagegate_app_services: "{{ stagegate_app_services }}"
"""

RETURN = r"""
services:
  description: Service name to the image it runs and whether it is built locally.
  returned: success
  type: dict
  sample: {api: {image: sandbox/api:v2, build: true, healthcheck: true}}
files_sha256:
  description: sha256 over the compose files' names and contents, in order.
  returned: success
  type: str
config_sha256:
  description: sha256 of the resolved configuration (after environment interpolation).
  returned: success
  type: str
config:
  description:
    - The resolved configuration as C(docker compose config --format json) prints it, with
      environment values, build args and secrets masked (C(***)).
  returned: success
  type: dict
release_services:
  description: The services the project defines, sorted (C(docker compose config --services)).
  returned: success
  type: list
  elements: str
  sample: [api, postgres, redis, worker]
cmd:
  description: The command line run.
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import subprocess
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    MASK,
    Redactor,
    is_secret_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    compose_dir,
    compose_module,
)


def _all_masked(values: Any) -> Any:
    """`environment` / `build.args` as Compose prints them (mapping or KEY=VALUE list)."""
    if isinstance(values, dict):
        return {k: v if v in (None, "") else MASK for k, v in values.items()}
    if isinstance(values, list):
        return [str(item).partition("=")[0] + f"={MASK}" for item in values]
    return values


def masked_config(config: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """(the configuration with secrets masked, the secret values found in it)."""
    redactor = Redactor(v for k, v in env.items() if is_secret_name(k)).learn(config)
    services = {}
    for name, original in (config.get("services") or {}).items():
        spec = dict(original)
        if "environment" in spec:
            spec["environment"] = _all_masked(spec["environment"])
        if isinstance(spec.get("build"), dict) and "args" in spec["build"]:
            spec["build"] = {**spec["build"], "args": _all_masked(spec["build"]["args"])}
        services[name] = spec
    masked = redactor.data({**config, "services": services} if services else config)
    return masked, redactor.known()


def export_release(repo: str, release: str, project_src: str, files: list[str], into: str) -> str:
    """The tree of `release` from `repo` in `into`/release (the deploy checkout untouched), with
    `project_src`'s untracked `.env` beside the first compose file when the release tracks
    none."""
    tree = os.path.join(into, "release")
    for argv in (
        ["git", "clone", "--quiet", "--no-checkout", repo, tree],
        ["git", "-C", tree, "checkout", "--quiet", release],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ComposeError(
                f"release: cannot read {release!r} from {repo}: {proc.stderr.strip()}",
                cmd=argv, rc=proc.returncode, stderr=proc.stderr,
            )  # fmt: skip
    dotenv = os.path.join(compose_dir(project_src, files), ".env")
    exported = os.path.join(compose_dir(tree, files), ".env")
    if os.path.isfile(dotenv) and not os.path.exists(exported):
        shutil.copy(dotenv, exported)
    return tree


class ConfigManager:
    def __init__(self, module: AnsibleModule, project_src: str | None = None) -> None:
        self.module = module
        params = dict(module.params, project_src=project_src or module.params["project_src"])
        self.project = ComposeProject.from_params(params)
        self.required: dict[str, list[str]] = {
            str(setting): [str(name) for name in names or []]
            for setting, names in module.params["required_services"].items()
        }
        release = module.params["release"]
        self.whose = f"(release {release})" if project_src and release else ""

    def run(self) -> dict[str, Any]:
        config = self.project.config()
        self.project.require_services_of(self.required, self.whose)
        services = {
            name: {
                "image": self.project.image_ref(name),
                "build": bool(spec.get("build")),
                "healthcheck": bool(spec.get("healthcheck"))
                and not spec["healthcheck"].get("disable", False),
            }
            for name, spec in self.project.services.items()
        }
        shown, secrets = masked_config(config, self.project.env)
        self.module.no_log_values.update(secrets)  # also out of any text Ansible prints
        return {
            "changed": False,
            "services": services,
            "files_sha256": self.project.files_sha256(),
            "config_sha256": self.project.config_sha256(),
            "config": shown,
            "release_services": sorted(services),
            "cmd": self.project.argv("config", "--format", "json"),
        }


def main() -> None:
    module = compose_module(
        {
            "required_services": {"type": "dict", "default": {}},
            "release_repo": {"type": "str"},
            "release": {"type": "str"},
        },
        needs_docker_sdk=False,
        required_together=[("release_repo", "release")],
    )
    params = module.params
    work = tempfile.mkdtemp(prefix="stagegate-release-") if params["release_repo"] else ""
    try:
        tree = work and export_release(
            params["release_repo"], params["release"], params["project_src"], params["files"], work
        )
        module.exit_json(**ConfigManager(module, tree or None).run())
    except ComposeError as exc:
        module.fail_json(**exc.fail_kwargs())
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
