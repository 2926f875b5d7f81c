#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_up_tiers
short_description: Start a Compose v2 project tier by tier, each waited for health
description:
  - Starts the services of O(tiers) one tier at a time with C(docker compose up --detach
    --no-deps); a tier starts only after every service of the tier before it is ready.
  - A service is ready when its container healthcheck reports C(healthy), when its
    O(readiness) probe (HTTP URL or TCP port) answers, and, for a service with neither, when
    it has kept running for O(stable_seconds). Waiting polls the engine (never a fixed sleep).
  - A container that exits, restarts (restart count rising, status C(restarting)) or turns
    C(unhealthy) fails the tier at once instead of waiting out its timeout. The failure
    names the service and carries its last log lines and health-check output.
  - C(changed) when Compose created, recreated or started a container; a project already up
    with the same configuration and images reports not changed.
version_added: "0.1.0"
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.compose
options:
  tiers:
    description:
      - Tiers in start order. Each tier is a list of services, or a mapping with C(services)
        and its own C(timeout) in seconds.
      - Inventory variable C(stagegate_tiers).
    type: list
    elements: raw
    required: true
  timeout:
    description: Seconds each tier may take to become ready (unless the tier sets its own).
    type: float
    default: 120
  readiness:
    description:
      - Extra readiness probes per service, checked after the container is running (and
        healthy, when it has a healthcheck).
      - C(http) a URL that must answer with a status in C(status) (default 200);
        C(tcp) a C(host:port) that must accept a connection.
    type: dict
    default: {}
  stable_seconds:
    description:
      - How long a service without healthcheck or probe must keep running to count as ready.
    type: float
    default: 1.0
  unhealthy_grace:
    description:
      - Seconds a container may stay C(unhealthy) before its tier fails. Docker keeps running
        the healthcheck and a container on an overloaded host may flap back to C(healthy).
      - C(0) fails at once, as C(docker compose up --wait) does.
    type: float
    default: 0
  recreate:
    description:
      - C(auto) recreates containers whose configuration or image changed (Compose's default),
        C(always) recreates every container of the tiers, C(never) keeps existing containers.
    type: str
    choices: [auto, always, never]
    default: auto
  log_lines:
    description: How many of a failed service's last log lines to return.
    type: int
    default: 40
  poll_interval:
    description: Seconds between two looks at the containers' state.
    type: float
    default: 0.25
attributes:
  check_mode:
    description:
      - Runs Compose's own dry run for every tier; reports what it would create, recreate, start.
    support: full
  diff_mode:
    description: Not supported; RV(tiers) lists what was done per tier.
    support: none
  idempotent:
    description:
      - A project already up with the same configuration and images is left alone.
    support: full
seealso:
  - module: stagegate.release.compose_services
  - module: stagegate.release.compose_build
  - name: docker compose up
    description: The Compose CLI command this module runs per tier.
    link: https://docs.docker.com/reference/cli/docker/compose/up/
"""

EXAMPLES = r"""
- name: Start infrastructure, then the apps
  stagegate.release.compose_up_tiers:
    project_src: "{{ stagegate_project_dir }}"
    project_name: "{{ stagegate_compose_project }}"
    files: "{{ stagegate_compose_files }}"
    env: "{{ stagegate_compose_env }}"
    tiers:
      - [postgres, redis]
      - services: [api, worker]
        timeout: 60
    readiness:
      api: {http: "http://127.0.0.1:8080/health"}
      redis: {tcp: "127.0.0.1:6379"}
  register: startup
"""

RETURN = r"""
tiers:
  description:
    - Per tier, its services, outcome (ready, failed, planned, not started), seconds,
      when it finished (C(finished_at), timezone.utc) and Compose's actions.
  returned: always
  type: list
  elements: dict
  sample:
    - services: [postgres, redis]
      status: ready
      timeout: 120
      seconds: 3.2
      actions: [{kind: Container, name: proj-postgres-1, verb: Started}]
services:
  description: Per service, its container's state at the end (image ID for the release manifest).
  returned: always
  type: dict
  sample:
    api:
      container: proj-api-1
      status: running
      health: healthy
      restart_count: 0
      image_id: "sha256:..."
failure:
  description:
    - The service that stopped the startup, why, its last log lines and health-check output.
  returned: failed
  type: dict
  sample:
    service: api
    reason: "crash loop: restarted 2 time(s), last exit code 3"
    logs: ["FATAL missing setting DATABASE_URL"]
    health_output: []
    probe: null
    container: {container: proj-api-1, status: restarting, exit_code: 3}
changed_services:
  description: Services whose containers were (check mode, would be) created, recreated or started.
  returned: always
  type: list
  elements: str
images:
  description: Per service, the image its container runs (C(id)) and its reference (C(ref)).
  returned: always
  type: dict
  sample: {api: {id: "sha256:5cc0e43a...", ref: "sandbox/api:v2"}}
failed_service:
  description: Name of the service in RV(failure).
  returned: failed
  type: str
commands:
  description: The C(docker compose up) command lines run.
  returned: always
  type: list
  elements: list
files_sha256:
  description:
    - sha256 over the compose files' names and contents, in order, for the release manifest
      (as M(stagegate.release.compose_config) returns it).
  returned: always
  type: str
config_sha256:
  description:
    - sha256 of the resolved configuration (after environment interpolation), for the release
      manifest.
  returned: always
  type: str
"""

from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    ProgressEvent,
    Readiness,
    Tier,
    TieredStartup,
    compose_module,
    parse_readiness,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DockerException,
    docker_client,
)


class TiersManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.project = ComposeProject.from_params(params)
        self.tiers = self._parse_tiers(params["tiers"], params["timeout"])
        self.startup = TieredStartup(
            self.project,
            docker_client(),
            readiness=self._parse_readiness(params["readiness"]),
            stable_seconds=params["stable_seconds"],
            unhealthy_grace=params["unhealthy_grace"],
            recreate=params["recreate"],
            log_lines=params["log_lines"],
            poll_interval=params["poll_interval"],
        )

    def _parse_tiers(self, raw: list[Any], default_timeout: float) -> list[Tier]:
        tiers = []
        for index, item in enumerate(raw):
            spec = item if isinstance(item, dict) else {"services": item}
            services = spec.get("services")
            if (
                not isinstance(services, list)
                or not services
                or not all(isinstance(s, str) for s in services)
                or set(spec) - {"services", "timeout"}
            ):
                self.module.fail_json(
                    msg=f"tiers[{index}]={item!r}: expected a list of service names or "
                    "{services: [names], timeout: seconds}"
                )
            tiers.append(Tier(list(services), float(spec.get("timeout") or default_timeout)))
        return tiers

    def _parse_readiness(self, raw: dict[str, Any]) -> dict[str, Readiness]:
        try:
            return parse_readiness(raw)
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
            raise  # unreachable: fail_json exits

    def run(self) -> dict[str, Any]:
        all_services = [s for tier in self.tiers for s in tier.services]
        self.project.require_services(all_services, "tiers")
        self.project.require_services(list(self.startup.readiness), "readiness")
        report: list[dict[str, Any]] = [
            {"services": t.services, "timeout": t.timeout, "status": "not started"}
            for t in self.tiers
        ]
        changed = False
        failure = None
        for tier, entry in zip(self.tiers, report):
            if self.module.check_mode:
                events = self.startup.plan(tier)
                entry.update(status="planned", seconds=0.0)
            else:
                events, failure, seconds = self.startup.start(tier)
                entry.update(
                    status="failed" if failure else "ready",
                    seconds=round(seconds, 3),
                    finished_at=datetime.now(timezone.utc).isoformat(),
                )
            entry["actions"] = [e.as_dict() for e in events]
            entry["changed_services"] = self._changed_services(events)
            changed = changed or any(e.changes for e in events)
            if failure:
                break
        states = self.startup.states(all_services)
        result: dict[str, Any] = {
            "changed": changed,
            "changed_services": sorted({s for t in report for s in t.get("changed_services", [])}),
            "tiers": report,
            "services": {n: s[0].summary() if s else None for n, s in states.items()},
            "images": {n: {"id": s[0].image_id, "ref": s[0].image} for n, s in states.items() if s},
            "commands": self.startup.commands,
            "files_sha256": self.project.files_sha256(),
            "config_sha256": self.project.config_sha256(),
        }
        if failure:
            result.update(failure=failure.as_dict(), failed_service=failure.service)
        return result

    def _changed_services(self, events: list[ProgressEvent]) -> list[str]:
        """Services whose containers Compose created, recreated or started (or would)."""
        names = {
            self.project.service_of_container(e.name)
            for e in events
            if e.kind == "Container" and e.changes
        }
        return sorted(n for n in names if n)


def main() -> None:
    module = compose_module(
        {
            "tiers": {"type": "list", "elements": "raw", "required": True},
            "timeout": {"type": "float", "default": 120},
            "readiness": {"type": "dict", "default": {}},
            "stable_seconds": {"type": "float", "default": 1.0},
            "unhealthy_grace": {"type": "float", "default": 0.0},
            "recreate": {"type": "str", "default": "auto", "choices": ["auto", "always", "never"]},
            "log_lines": {"type": "int", "default": 40},
            "poll_interval": {"type": "float", "default": 0.25},
        }
    )
    try:
        result = TiersManager(module).run()
    except ComposeError as exc:
        module.fail_json(**exc.fail_kwargs())
    except DockerException as exc:
        module.fail_json(msg=f"Docker engine error: {exc}")
    failure = result.get("failure")
    if failure:
        tail = " | ".join(failure["logs"][-3:])
        module.fail_json(
            msg=f"service {failure['service']}: {failure['reason']}; last log lines: {tail}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
