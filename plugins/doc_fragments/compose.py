# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the modules that drive a Compose v2 project."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  project_src:
    description:
      - The release's checkout on the deploy host; O(files) are relative to it.
      - Compose's own project directory (C(--project-directory)) is the directory of the first
        of O(files), as for C(docker compose -f <file>) run by hand, so a project whose
        C(deploy/compose.yaml) reads C(deploy/.env) and builds from the context C(..) works
        unchanged.
      - Inventory variable C(stagegate_project_dir).
    type: path
    required: true
  project_name:
    description:
      - The compose project name (C(--project-name)).
      - Inventory variable C(stagegate_compose_project).
    type: str
    required: true
  files:
    description:
      - Compose files, relative to O(project_src), in override order.
      - Inventory variable C(stagegate_compose_files).
    type: list
    elements: str
    default: [compose.yaml]
  env:
    description:
      - Extra environment for every C(docker compose) call (interpolated into the compose
        files), for example release tags, published ports and fault switches.
      - Values of names that look secret (C(PASSWORD), C(SECRET), C(TOKEN), C(API_KEY), ...)
        are masked wherever they would appear in the result, container logs included.
      - Inventory variable C(stagegate_compose_env).
    type: dict
    default: {}
  docker_cli:
    description:
      - The docker client that has the Compose v2 plugin (C(docker compose version)).
    type: path
    default: docker
requirements:
  - Docker Compose v2 (the C(docker compose) CLI plugin)
  - docker (Python SDK) >= 7.0 on the deploy host
"""
