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
    description: Services the project must define (for example every service of the tiers).
    type: list
    elements: str
    default: []
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
    required_services: "{{ stagegate_tiers | flatten }}"
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
cmd:
  description: The command line run.
  returned: always
  type: list
  elements: str
"""

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


class ConfigManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.project = ComposeProject.from_params(module.params)
        self.required: list[str] = module.params["required_services"]

    def run(self) -> dict[str, Any]:
        config = self.project.config()
        self.project.require_services(self.required, "required_services")
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
            "cmd": self.project.argv("config", "--format", "json"),
        }


def main() -> None:
    module = compose_module(
        {
            "required_services": {"type": "list", "elements": "str", "default": []},
        },
        needs_docker_sdk=False,
    )
    try:
        module.exit_json(**ConfigManager(module).run())
    except ComposeError as exc:
        module.fail_json(**exc.fail_kwargs())


if __name__ == "__main__":
    main()
