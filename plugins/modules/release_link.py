#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_link
short_description: Switch a C(current) link between releases and run its programs under supervisord
description:
  - The steps of the C(symlink) deploy strategy (docs/deploy.md "Deploy strategies"). Each
    release is a directory C(<releases_dir>/<release>); the programs supervisord runs have
    C(directory=<current>), so a program started after the switch runs the new release.
  - O(state=switched) points O(current) at the release's directory atomically (a new link
    renamed over the old one), so a reader sees the old release or the new one, never none.
  - O(state=started) starts the programs and waits until each has kept the same process for
    O(stable_seconds) and answers its O(readiness) probe; a program running an older release
    (its working directory is another release's) is restarted. A program that exits, backs
    off or gets a new process while waited for is a crash, and the task fails at once with its
    state and last log lines.
  - O(state=stopped) stops the programs; O(state=status) only reads, and lists in
    RV(changed_services) the programs a start of O(release) (default the linked one) would
    start or restart.
  - supervisord is driven through C(supervisorctl), against O(supervisor_config) or
    O(server_url).
version_added: "0.2.0"
author: stagegate developers (@stagegate)
options:
  state:
    description: What to do (see the description).
    type: str
    choices: [status, switched, started, stopped]
    default: status
  releases_dir:
    description: The directory holding one directory per release.
    type: path
    required: true
  current:
    description: The symbolic link switched between release directories.
    type: path
    required: true
  release:
    description:
      - The release O(state=switched) points O(current) at (a directory name under
        O(releases_dir)). Required for O(state=switched); with O(state=status), the release
        RV(changed_services) compares the running programs with.
    type: str
  programs:
    description: The supervisord program names of the app tier.
    type: list
    elements: str
    default: []
  supervisor_config:
    description: The supervisord configuration C(supervisorctl -c) reads (its server URL).
    type: path
  server_url:
    description: C(supervisorctl -s), e.g. C(unix:///run/supervisor.sock); wins over the config's.
    type: str
  supervisorctl:
    description: The supervisorctl command.
    type: str
    default: supervisorctl
  timeout:
    description: Seconds the programs may take to become ready (O(state=started)).
    type: float
    default: 60
  stable_seconds:
    description: Seconds a program must keep the same process to count as started.
    type: float
    default: 2
  readiness:
    description:
      - "Extra probes per program, C({api: {http: URL, status: 200}}) or
        C({api: {tcp: 'host:port'}})."
    type: dict
    default: {}
  log_lines:
    description: Log lines of a failed program to return.
    type: int
    default: 40
attributes:
  check_mode:
    description: Reads the link and the programs' states and reports the actions it would take.
    support: full
  diff_mode:
    description: Reports the link's target before and after.
    support: full
  idempotent:
    description:
      - A switch to the release already linked, a start of programs already running that
        release and a stop of stopped programs change nothing.
    support: full
seealso:
  - name: supervisorctl
    description: The supervisord control program this module runs.
    link: https://supervisord.org/running.html#running-supervisorctl
"""

EXAMPLES = r"""
- name: Point current at v2
  stagegate.release.release_link:
    state: switched
    releases_dir: /srv/shop/releases
    current: /srv/shop/current
    release: v2

- name: Start the app tier from current, waiting for health
  stagegate.release.release_link:
    state: started
    releases_dir: /srv/shop/releases
    current: /srv/shop/current
    programs: [api, worker]
    supervisor_config: /etc/supervisor/supervisord.conf
    readiness:
      api: {http: "http://127.0.0.1:8000/health", status: 200}
"""

RETURN = r"""
link:
  description: The link after the task (C(current), C(target), C(release)).
  returned: always
  type: dict
previous:
  description: The link before the task.
  returned: always
  type: dict
programs:
  description: Each program's state (C(state), C(pid), C(uptime), C(release) it runs).
  returned: when O(programs) is given
  type: dict
changed_services:
  description:
    - Programs not running O(release) (or the linked release), which a start would start or restart.
  returned: when O(programs) is given
  type: list
  elements: str
actions:
  description:
    - What was done (or, in check mode, would be), e.g. C(switch current -> v2), C(restart api).
  returned: always
  type: list
  elements: str
failure:
  description: The program that did not start (C(program), C(reason), C(state), C(logs), C(probe)).
  returned: on a failed start
  type: dict
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._compose import parse_readiness
from ansible_collections.stagegate.release.plugins.module_utils._release_link import (
    LinkError,
    Supervisor,
    SupervisorError,
    process_release,
    read_link,
    release_dir,
    switch_link,
    wait_ready,
)


class ReleaseLinkManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.state: str = params["state"]
        self.releases_dir: str = params["releases_dir"]
        self.current: str = params["current"]
        self.release: str | None = params["release"]
        self.programs: list[str] = params["programs"]
        self.timeout: float = params["timeout"]
        self.stable_seconds: float = params["stable_seconds"]
        self.log_lines: int = params["log_lines"]
        try:
            self.readiness = parse_readiness(params["readiness"])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        unknown = sorted(set(self.readiness) - set(self.programs))
        if unknown:
            module.fail_json(
                msg=f"readiness names {unknown}, which are not in programs={self.programs}"
            )
        if self.state == "switched" and not self.release:
            module.fail_json(msg="release is required with state=switched")
        if self.state in ("started", "stopped") and not self.programs:
            module.fail_json(msg=f"programs is required with state={self.state}")
        self.supervisor = Supervisor(
            module.run_command,
            params["supervisorctl"],
            params["supervisor_config"],
            params["server_url"],
        )
        self.actions: list[str] = []
        self.changed = False

    def run(self) -> dict[str, Any]:
        previous = read_link(self.current)
        result: dict[str, Any] = {"previous": previous.as_dict()}
        if self.state == "switched":
            self._switch(previous.release)
        elif self.state == "stopped":
            self._stop()
        elif self.state == "started":
            failure = self._start()
            if failure is not None:
                result["failure"] = failure
        link = read_link(self.current)
        result.update(link=link.as_dict(), actions=self.actions, changed=self.changed)
        if self.programs:
            result["programs"] = self._programs()
            wanted = self.release if self.state == "status" and self.release else link.release
            result["changed_services"] = [
                name
                for name, info in result["programs"].items()
                if info["state"] != "RUNNING" or info["release"] != wanted
            ]
        if self.module._diff:
            result["diff"] = {"before": previous.as_dict(), "after": link.as_dict()}
        return result

    def _switch(self, linked: str | None) -> None:
        target = release_dir(self.releases_dir, str(self.release))
        if linked == self.release and os.path.realpath(self.current) == os.path.realpath(target):
            return
        self.actions.append(f"switch {self.current} -> {self.release} (was {linked or 'none'})")
        self.changed = True
        if not self.module.check_mode:
            switch_link(self.current, target)

    def _stop(self) -> None:
        states = self.supervisor.status(self.programs)
        running = [n for n, s in states.items() if s.state not in ("STOPPED", "EXITED", "FATAL")]
        missing = [n for n, s in states.items() if s.state == "MISSING"]
        if missing:
            self.module.fail_json(msg=f"programs={missing}: supervisord has no such program")
        if running:
            self.actions.append(f"stop {', '.join(running)}")
            self.changed = True
            if not self.module.check_mode:
                self.supervisor.stop(running)

    def _start(self) -> dict[str, Any] | None:
        linked = read_link(self.current).release
        if linked is None:
            self.module.fail_json(msg=f"current={self.current!r} links to no release yet")
        states = self.supervisor.status(self.programs)
        restart, start = [], []
        for name, state in states.items():
            if state.state == "MISSING":
                self.module.fail_json(msg=f"programs: supervisord has no program {name!r}")
            if state.state in ("RUNNING", "STARTING"):
                if process_release(state.pid, self.releases_dir) != linked:
                    restart.append(name)
            else:
                start.append(name)
        self.actions += [f"restart {n} (now {linked})" for n in restart]
        self.actions += [f"start {n} ({linked})" for n in start]
        if not (restart or start):
            return None
        self.changed = True
        if self.module.check_mode:
            return None
        if restart:
            self.supervisor.stop(restart)
        self.supervisor.start(restart + start)
        _, failure = wait_ready(
            self.supervisor,
            self.programs,
            self.timeout,
            self.stable_seconds,
            self.readiness,
            self.log_lines,
        )
        return failure.as_dict() if failure is not None else None

    def _programs(self) -> dict[str, Any]:
        programs = {}
        for name, state in self.supervisor.status(self.programs).items():
            info = state.as_dict()
            info["release"] = process_release(state.pid, self.releases_dir)
            programs[name] = info
        return programs


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "default": "status",
                "choices": ["status", "switched", "started", "stopped"],
            },
            "releases_dir": {"type": "path", "required": True},
            "current": {"type": "path", "required": True},
            "release": {"type": "str"},
            "programs": {"type": "list", "elements": "str", "default": []},
            "supervisor_config": {"type": "path"},
            "server_url": {"type": "str"},
            "supervisorctl": {"type": "str", "default": "supervisorctl"},
            "timeout": {"type": "float", "default": 60},
            "stable_seconds": {"type": "float", "default": 2},
            "readiness": {"type": "dict", "default": {}},
            "log_lines": {"type": "int", "default": 40},
        },
        supports_check_mode=True,
    )
    manager = ReleaseLinkManager(module)
    try:
        result = manager.run()
    except LinkError as exc:
        module.fail_json(msg=str(exc))
    except SupervisorError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    failure = result.get("failure")
    if failure:
        module.fail_json(
            msg=f"{failure['program']} did not start from release "
            f"{result['link']['release']}: {failure['reason']}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
