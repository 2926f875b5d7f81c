#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_build
short_description: Build the images of a Compose v2 project and tag them with the release
description:
  - Builds all or the named services of a compose project with one C(docker compose build)
    (Compose builds them in parallel), only those whose image is missing or whose build inputs
    changed; an image that is up to date is not built again, only tagged with the release when
    it lacks the tag. O(no_cache) and O(pull) build every service.
  - Tags every built image C(<repository>:<release>) as well; tags of earlier releases are
    kept, so rollback finds the previous images.
  - Grades each image's size against a budget (PASS, WARN, FAIL) and fails on FAIL unless
    O(fail_on_size_budget=false).
  - Reports C(changed) only when an image ID changed or a release tag moved. Each image is
    labelled with a hash of its build inputs (context files after C(.dockerignore),
    Dockerfile, build args, target, local base image IDs; for a C(.git) at the context's root
    the commit checked out, not git's own files, and without stagegate's C(.stagegate-release)
    marker), which is what check mode compares
    to tell whether a build would change the image, and what a real run compares to tell
    whether to build it.
version_added: "0.1.0"
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.compose
options:
  services:
    description:
      - Services to build. Default is every service of the project that has a C(build:) section.
    type: list
    elements: str
    default: []
  release:
    description:
      - Release version to tag each image with (C(<repository>:<release>)). No tag when omitted.
      - Inventory variable C(stagegate_release).
    type: str
  no_cache:
    description: Build without the layer cache (C(--no-cache)); every image ID changes.
    type: bool
    default: false
  pull:
    description: Try to pull newer base images before building (C(--pull)).
    type: bool
    default: false
  build_args:
    description:
      - Build arguments for every built service (C(--build-arg KEY=VALUE)).
      - Values of names that look secret (C(NPM_TOKEN), C(PIP_PASSWORD), ...) are masked in
        C(cmd), C(commands) and the invocation, as for O(env).
    type: dict
    default: {}
  size_budgets:
    description:
      - Image size budget per service, key C(*) for every service not named.
      - A size such as C(80MB) (PASS up to it, FAIL above) or a mapping with C(pass) and
        C(warn) sizes (PASS, WARN up to C(warn), FAIL above). 1 MB is 1024*1024 bytes.
      - The band grammar of checks and gates (docs/gates.md), with size units only
        (C(b), C(kb), C(mb), C(gb), C(tb), or C(kib)...); a bare number is bytes.
    type: dict
    default: {}
  fail_on_size_budget:
    description: Fail the task when an image's size grades FAIL.
    type: bool
    default: true
  timeout:
    description: Seconds the C(docker compose build) command may take.
    type: float
    default: 1800
attributes:
  check_mode:
    description: Computes the build inputs and reports which images would be built; builds nothing.
    support: full
  diff_mode:
    description: Not supported; the result lists image IDs before and after.
    support: none
  idempotent:
    description: A second build with unchanged inputs keeps every image ID and reports not changed.
    support: full
notes:
  - Compose prints a warning that Bake needs buildx where buildx is missing and builds with the
    engine's builder; the module ignores that warning.
seealso:
  - module: stagegate.release.compose_config
  - name: docker compose build
    description: The Compose CLI command this module runs.
    link: https://docs.docker.com/reference/cli/docker/compose/build/
"""

EXAMPLES = r"""
- name: Build the release and tag it
  stagegate.release.compose_build:
    project_src: "{{ stagegate_project_dir }}"
    project_name: "{{ stagegate_compose_project }}"
    files: "{{ stagegate_compose_files }}"
    env: "{{ stagegate_compose_env }}"
    release: "{{ stagegate_release }}"
    no_cache: true
    size_budgets:
      api: {pass: 300MB, warn: 400MB}
      "*": 500MB
  register: build
"""

RETURN = r"""
msg:
  description:
    - One line - what was built (check mode, would be), what was only tagged with the release,
      and each image's short ID, size and size grade (C(not built yet) in check mode before
      its first build).
  returned: success
  type: str
  sample: >-
    Built api; tagged postgres with v2 (image unchanged); api 5cc0e43a1f2b 142.3 MB PASS;
    postgres d5ec4175fc27 398.1 MB
images:
  description:
    - Per service, the image built (or, in check mode, that would be built).
    - C(build_seconds) is the time of the one build command for every service it built, 0
      for an image that was up to date; C(built) tells whether the service was built (check
      mode, would be).
  returned: always
  type: dict
  sample:
    api:
      image: sandbox/api:v2
      release_image: sandbox/api:v2
      id: "sha256:5cc0e43a..."
      previous_id: "sha256:1d2f4c..."
      size: 231000000
      size_budget: {pass: 314572800, warn: 419430400}
      size_grade: PASS
      build_seconds: 12.4
      built: true
      changed: true
      reason: build inputs changed
built:
  description: Services whose image ID changed or whose release tag moved (check mode, would).
  returned: always
  type: list
  elements: str
size_failures:
  description: Services whose image size graded FAIL.
  returned: always
  type: list
  elements: str
build_seconds:
  description: Wall time of all builds.
  returned: always
  type: float
commands:
  description: The C(docker compose build) command line run (none in check mode or when every
    image is up to date).
  returned: always
  type: list
  elements: list
"""

import os
import tempfile
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._bands import (
    BandError,
    Bands,
    convert,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    is_secret_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    BUILD_INPUTS_LABEL,
    ComposeError,
    ComposeProject,
    build_inputs_sha256,
    compose_module,
    split_image_ref,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DockerException,
    docker_client,
    image_facts,
)


class BuildManager:
    """Plans each service's build (inputs hash vs the image's label), then builds and tags."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.project = ComposeProject.from_params(params)
        self.requested: list[str] = params["services"]
        self.release: str | None = params["release"]
        self.no_cache: bool = params["no_cache"]
        self.pull: bool = params["pull"]
        self.build_args = {str(k): str(v) for k, v in params["build_args"].items()}
        self.budgets = self._parse_budgets(params["size_budgets"])
        self.timeout: float = params["timeout"]
        self.client = docker_client()
        self.commands: list[list[str]] = []
        self.plans: dict[str, dict[str, Any]] = {}

    def _parse_budgets(self, raw: dict[str, Any]) -> dict[str, Bands]:
        """Size budgets in the one band grammar (`_bands.py`), sizes only."""
        budgets = {}
        for service, spec in raw.items():
            try:
                budgets[service] = Bands.parse(spec, dimension="size")
            except BandError as exc:
                self.module.fail_json(
                    msg=f"size_budgets.{service}={spec!r}: {exc}; expected a size such as "
                    "'300MB' or {pass: '300MB', warn: '400MB'}"
                )
        return budgets

    def services(self) -> list[str]:
        buildable = [n for n, spec in self.project.services.items() if spec.get("build")]
        if not self.requested:
            return sorted(buildable)
        self.project.require_services(self.requested, "services")
        not_buildable = [s for s in self.requested if s not in buildable]
        if not_buildable:
            raise ComposeError(
                f"services: {', '.join(not_buildable)} have no build section "
                f"(buildable: {', '.join(sorted(buildable)) or 'none'})"
            )
        return list(self.requested)

    def _image_id(self, ref: str) -> str | None:
        facts = image_facts(self.client, ref)
        return facts["id"] if facts else None

    def plan(self, service: str) -> dict[str, Any]:
        ref = self.project.image_ref(service)
        repo, tag = split_image_ref(ref)
        release_ref = f"{repo}:{self.release}" if self.release else ref
        current = image_facts(self.client, ref)
        inputs = build_inputs_sha256(
            self.project.services[service]["build"], self.build_args, self._image_id
        )
        reason = None
        if current is None:
            reason = "no image yet"
        elif self.no_cache:
            reason = "no_cache"
        elif self.pull:
            reason = "pull"
        elif inputs is None or current["labels"].get(BUILD_INPUTS_LABEL) != inputs:
            reason = "build inputs changed"
        build = reason is not None
        release_id = self._image_id(release_ref)
        if not build and release_id != current["id"]:
            reason = f"release tag {release_ref} not on the current image"
        return {
            "build": build,
            "image": ref,
            "release_image": release_ref,
            "tag": tag,
            "inputs": inputs,
            "previous_id": current["id"] if current else None,
            "previous_release_id": release_id,
            "size": current["size"] if current else None,
            "reason": reason,
        }

    def build(self, services: list[str], labels_file: str) -> tuple[float, dict[str, Any]]:
        """One `docker compose build` of `services`: its seconds (0 when none needs a build) and
        the facts of each image it built."""
        if not services:
            return 0.0, {}
        args = ["build"]
        if self.no_cache:
            args.append("--no-cache")
        if self.pull:
            args.append("--pull")
        for key, value in sorted(self.build_args.items()):
            args += ["--build-arg", f"{key}={value}"]
        result = self.project.run(
            *args, *services, extra_files=(labels_file,), timeout=self.timeout
        )
        self.commands.append(result.cmd)
        built = {s: image_facts(self.client, self.plans[s]["image"]) for s in services}
        missing = [s for s, facts in built.items() if facts is None]
        if missing:
            raise ComposeError(
                f"docker compose build {' '.join(services)} succeeded but the image of "
                f"{', '.join(missing)} is missing",
                cmd=result.cmd,
                rc=result.rc,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        return result.seconds, built

    def tag(self, service: str, build_seconds: float, built: dict[str, Any]) -> dict[str, Any]:
        """Tag the service's image with the release; its facts after the build (`built`: the
        facts of the images the build made)."""
        plan = self.plans[service]
        image = built.get(service) or image_facts(self.client, plan["image"])
        if image is None:  # not built and gone since the plan
            raise ComposeError(f"image {plan['image']} of service {service} is missing")
        if self.release and plan["release_image"] != plan["image"]:
            repo, _ = split_image_ref(plan["image"])
            self.client.images.get(image["id"]).tag(repo, self.release)
        changed = image["id"] != plan["previous_id"] or image["id"] != plan["previous_release_id"]
        return {
            "id": image["id"],
            "size": image["size"],
            "build_seconds": build_seconds if plan["build"] else 0.0,
            "changed": changed,
        }

    def write_labels_file(self, directory: str, services_built: list[str]) -> str:
        """A compose override that labels each image built with its build-inputs hash."""
        services = {
            name: {"build": {"labels": {BUILD_INPUTS_LABEL: self.plans[name]["inputs"]}}}
            for name in services_built
            if self.plans[name]["inputs"]
        }
        path = os.path.join(directory, "stagegate-build-labels.json")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.module.jsonify({"services": services}))
        return path

    def run(self) -> dict[str, Any]:
        self.plans = {service: self.plan(service) for service in self.services()}
        started = time.monotonic()
        images: dict[str, dict[str, Any]] = {}
        to_build = [s for s, plan in self.plans.items() if plan["build"]]
        build_seconds, built_facts = 0.0, {}
        if not self.module.check_mode:
            with tempfile.TemporaryDirectory(prefix="stagegate-build-") as tmp:
                build_seconds, built_facts = self.build(
                    to_build, self.write_labels_file(tmp, to_build)
                )
        for service, plan in self.plans.items():
            entry = {
                "image": plan["image"],
                "release_image": plan["release_image"],
                "previous_id": plan["previous_id"],
                "reason": plan["reason"],
                "built": plan["build"],
            }
            if self.module.check_mode:
                entry.update(
                    id=plan["previous_id"],
                    size=plan["size"],
                    build_seconds=0.0,
                    changed=plan["reason"] is not None,
                )
            else:
                entry.update(self.tag(service, build_seconds, built_facts))
                if not entry["changed"]:
                    entry["reason"] = None
            images[service] = {**entry, **self.grade(service, entry["size"])}
        built = [s for s, e in images.items() if e["changed"]]
        return {
            "changed": bool(built),
            "msg": summary(images, built, self.release, self.module.check_mode),
            "images": images,
            "built": built,
            "size_failures": [s for s, e in images.items() if e["size_grade"] == "FAIL"],
            "build_seconds": round(time.monotonic() - started, 3),
            "commands": self.commands,
        }

    def grade(self, service: str, size: int | None) -> dict[str, Any]:
        budget = self.budgets.get(service) or self.budgets.get("*")
        shown = _budget_bytes(budget) if budget is not None else None
        if budget is None or size is None:
            return {"size_budget": shown, "size_grade": None}
        return {"size_budget": shown, "size_grade": budget.grade(size, "b")}


def summary(
    images: dict[str, dict[str, Any]], changed: list[str], release: str | None, check_mode: bool
) -> str:
    """One line: what was built, what was only tagged, and each image's ID, size and grade."""
    built = sorted(s for s in changed if images[s]["built"])
    tagged = sorted(set(changed) - set(built))
    line = f"{'Would build' if check_mode else 'Built'} {', '.join(built) or 'nothing (unchanged)'}"
    if tagged:
        verb = "would tag" if check_mode else "tagged"
        line += f"; {verb} {', '.join(tagged)} with {release} (image unchanged)"
    shown = []
    for service, image in images.items():
        if not image.get("id"):
            shown.append(f"{service} not built yet")
            continue
        size = f"{(image.get('size') or 0) / 1048576:.1f} MB"
        grade = f" {image['size_grade']}" if image.get("size_grade") else ""
        shown.append(f"{service} {image['id'].removeprefix('sha256:')[:12]} {size}{grade}")
    return "; ".join([line, *shown])


def _budget_bytes(budget: Bands) -> dict[str, int]:
    """`{pass: bytes, warn: bytes}` of a size budget, as RETURN shows it."""
    bands = {"pass": budget.pass_band, "warn": budget.warn_band}
    return {k: int(convert(b.number, b.unit or "b", "b")) for k, b in bands.items() if b}


def main() -> None:
    module = compose_module(
        {
            "services": {"type": "list", "elements": "str", "default": []},
            "release": {"type": "str"},
            "no_cache": {"type": "bool", "default": False},
            "pull": {"type": "bool", "default": False},
            "build_args": {"type": "dict", "default": {}},
            "size_budgets": {"type": "dict", "default": {}},
            "fail_on_size_budget": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 1800},
        }
    )
    for name, value in (module.params["build_args"] or {}).items():
        if is_secret_name(str(name)) and value not in (None, ""):
            module.no_log_values.add(str(value))  # the --build-arg in cmd, the invocation
    try:
        result = BuildManager(module).run()
    except ComposeError as exc:
        module.fail_json(**exc.fail_kwargs())
    except DockerException as exc:
        module.fail_json(msg=f"Docker engine error: {exc}")
    if result["size_failures"] and module.params["fail_on_size_budget"]:
        built = result.pop("msg")  # the failure's message leads, the summary follows
        module.fail_json(
            msg=f"image size over budget: {', '.join(result['size_failures'])} "
            f"(size_budgets; set fail_on_size_budget=false to only report); {built}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
