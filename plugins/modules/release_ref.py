#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_ref
short_description: Resolve a release name against the release repository (read-only)
version_added: 0.2.0
description:
  - Lists the tags and branches of O(repo) (C(git ls-remote), so a path or any URL git
    understands) and returns the commit that O(release) names (a tag, a branch, or in a local
    repository a commit).
  - A name the repository does not have fails with the nearest tags, before anything changes;
    C(staging.yml) and C(adopt.yml) run it in preflight, before the deploy lock.
options:
  repo:
    description: The release repository (C(stagegate_source_repo)).
    type: str
    required: true
  release:
    description:
      - The release to resolve (C(stagegate_release)); a number such as C(2) is read as the
        name V(2).
    type: raw
    required: true
attributes:
  check_mode:
    support: full
    description: Only reads; check mode returns the same answer.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Never changes anything.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: ansible.builtin.git
"""

EXAMPLES = r"""
- name: Resolve the release before the lock
  stagegate.release.release_ref:
    repo: "{{ stagegate_source_repo }}"
    release: "{{ stagegate_release }}"
  register: release_ref
"""

RETURN = r"""
release:
  description: The release name as resolved.
  returned: success
  type: str
  sample: v2
commit:
  description: The commit the release names.
  returned: success
  type: str
  sample: 3f2a1b2c4d5e6f708192a3b4c5d6e7f809112233
kind:
  description: C(tag), C(branch) or C(commit).
  returned: success
  type: str
tags:
  description: Every tag of the repository, sorted.
  returned: always
  type: list
  elements: str
nearest:
  description: On failure, the tags nearest to O(release).
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._source import RefError, resolve


def main():
    module = AnsibleModule(
        argument_spec={
            "repo": {"type": "str", "required": True},
            "release": {"type": "raw", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        result = resolve(module.params["repo"], module.params["release"])
    except RefError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
