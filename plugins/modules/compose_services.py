#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_services
short_description: Stop, start or restart named compose services, leaving the others alone
description:
  - Stops, starts or restarts only the named services of a compose project (C(--no-deps));
    the app tier goes down for a migration while the database keeps running.
  - Reads the services' containers through the Docker SDK first and acts only on those not
    already in the wanted state, so O(state=stopped) and O(state=started) are idempotent.
  - O(state=started) starts existing containers and creates missing ones, but never recreates
    a container (use M(stagegate.release.compose_up_tiers) to roll out new images).
version_added: "0.1.0"
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.compose
options:
  services:
    description: The services to act on. Other services of the project are not touched.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(stopped) stops running containers of the services (C(docker compose stop)).
      - C(started) starts stopped ones and creates missing ones (C(docker compose up -d
        --no-deps --no-recreate)).
      - C(restarted) restarts them (always a change).
    type: str
    choices: [started, stopped, restarted]
    required: true
  stop_timeout:
    description: Seconds to wait for a container to stop before it is killed (C(--timeout)).
    type: int
attributes:
  check_mode:
    description: Reads the containers' state and reports the actions it would take.
    support: full
  diff_mode:
    description: Reports each service's container states before and after.
    support: full
  idempotent:
    description:
      - C(stopped) and C(started) change nothing when the services already are so.
      - C(restarted) always restarts.
    support: partial
seealso:
  - module: stagegate.release.compose_up_tiers
  - name: docker compose stop
    description: The Compose CLI commands this module runs (stop, restart, up --no-recreate).
    link: https://docs.docker.com/reference/cli/docker/compose/stop/
"""

EXAMPLES = r"""
- name: Stop the app tier, the database keeps running
  stagegate.release.compose_services:
    project_src: "{{ stagegate_project_dir }}"
    project_name: "{{ stagegate_compose_project }}"
    files: "{{ stagegate_compose_files }}"
    env: "{{ stagegate_compose_env }}"
    services: "{{ stagegate_app_services }}"
    state: stopped
"""

RETURN = r"""
actions:
  description: Per service, what was (check mode, would be) done.
  returned: always
  type: list
  elements: dict
  sample: [{service: api, action: stop}]
services:
  description: Per service, its containers' states after the run (check mode, now).
  returned: always
  type: dict
  sample: {api: [{container: proj-api-1, status: exited, health: null, restart_count: 0}]}
commands:
  description: The C(docker compose) command lines run.
  returned: always
  type: list
  elements: list
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    compose_module,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    ContainerState,
    DockerException,
    docker_client,
    service_containers,
)

_UP = ("up", "--detach", "--no-deps", "--no-recreate", "--no-build", "--pull", "never")
# Statuses in which a container still runs, or will again on its own.
_ACTIVE = frozenset({"running", "restarting", "paused"})


class ServicesManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.project = ComposeProject.from_params(module.params)
        self.names: list[str] = module.params["services"]
        self.state: str = module.params["state"]
        stop_timeout = module.params["stop_timeout"]
        self.timeout_args = () if stop_timeout is None else ("--timeout", str(stop_timeout))
        self.client = docker_client()
        self.commands: list[list[str]] = []

    def states(self) -> dict[str, list[ContainerState]]:
        found: dict[str, list[ContainerState]] = {name: [] for name in self.names}
        for container in service_containers(self.client, self.project.name, self.names):
            state = ContainerState.of(container)
            found[state.service].append(state)
        return found

    def plan(self, states: dict[str, list[ContainerState]]) -> list[dict[str, str]]:
        actions = []
        for name in self.names:
            containers = states[name]
            active = [c for c in containers if c.status in _ACTIVE]
            if self.state == "stopped" and active:
                actions.append({"service": name, "action": "stop"})
            elif self.state == "started" and (not containers or len(active) < len(containers)):
                actions.append({"service": name, "action": "start" if containers else "create"})
            elif self.state == "restarted":
                actions.append({"service": name, "action": "restart" if containers else "create"})
        return actions

    def apply(self, actions: list[dict[str, str]]) -> None:
        by_action: dict[str, list[str]] = {}
        for action in actions:
            by_action.setdefault(action["action"], []).append(action["service"])
        if "stop" in by_action:
            self._run("stop", *self.timeout_args, *by_action["stop"])
        if "restart" in by_action:
            self._run("restart", "--no-deps", *self.timeout_args, *by_action["restart"])
        starting = by_action.get("start", []) + by_action.get("create", [])
        if starting:
            self._run(*_UP, *starting)

    def _run(self, *args: str) -> None:
        self.commands.append(self.project.run(*args).cmd)

    def run(self) -> dict[str, Any]:
        self.project.require_services(self.names, "services")
        before = self.states()
        actions = self.plan(before)
        if actions and not self.module.check_mode:
            self.apply(actions)
        after = before if self.module.check_mode else self.states()
        result: dict[str, Any] = {
            "changed": bool(actions),
            "actions": actions,
            "services": {n: [c.summary() for c in cs] for n, cs in after.items()},
            "commands": self.commands,
        }
        if self.module._diff:
            predicted = "exited" if self.state == "stopped" else "running"
            result["diff"] = {
                "before": {n: [c.status for c in cs] for n, cs in before.items()},
                "after": {
                    n: [predicted] * max(1, len(cs))
                    if any(a["service"] == n for a in actions)
                    else [c.status for c in cs]
                    for n, cs in before.items()
                },
            }
        return result


def main() -> None:
    module = compose_module(
        {
            "services": {"type": "list", "elements": "str", "required": True},
            "state": {
                "type": "str",
                "required": True,
                "choices": ["started", "stopped", "restarted"],
            },
            "stop_timeout": {"type": "int"},
        }
    )
    try:
        module.exit_json(**ServicesManager(module).run())
    except ComposeError as exc:
        module.fail_json(**exc.fail_kwargs())
    except DockerException as exc:
        module.fail_json(msg=f"Docker engine error: {exc}")


if __name__ == "__main__":
    main()
