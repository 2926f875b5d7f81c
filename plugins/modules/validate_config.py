#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done by the action plugin plugins/action/validate_config.py
# on the controller.

DOCUMENTATION = r"""
---
module: validate_config
short_description: Validate all stagegate_* variables, or the required secrets, up front
version_added: 0.1.0
description:
  - Runs on the controller. With O(scope=config), reads every C(stagegate_*) variable visible to
    the host, templates it, and holds it against the variable contract in C(stagegate.config)
    (docs/configuration.md) plus the options each role declares in its C(meta/argument_specs.yml).
  - Reports every problem at once, each naming the key, the value (never for a secret) and the
    expected form. An unknown C(stagegate_*) key (a typo) is an error with a did-you-mean
    suggestion.
  - The check catalog C(stagegate_checks) is also validated entry by entry by its check types
    (each type's own options, as the C(stagegate.release.checks) action does before it runs
    anything, plugin types included), so a bad check stops the run here, before the deploy lock,
    with the check, the key, the value and the expected form.
  - Keys required only by some phases are checked for the phases this run performs (O(phases),
    narrowed by C(--tags)/C(--skip-tags) when the run is limited to phase tags).
  - Also returns the run identity as facts (C(stagegate_run_id), C(stagegate_run_owner)) unless
    they are already set; every host of one C(ansible-playbook) run gets the same run id.
  - With O(scope=secrets), checks each rule of O(secrets) (present, minimum length, forbidden
    substrings, pattern) reading a C(.env) file on the deploy host, an Ansible variable, or the
    controller environment (where AWX injects credentials). Values are never returned.
options:
  scope:
    description: What to validate.
    type: str
    choices: [config, secrets]
    default: config
  phases:
    description:
      - Phases this run performs; keys required by other phases are not demanded.
      - When the run is limited with C(--tags), only the phases named as tags remain.
    type: list
    elements: str
    default: [preflight, source, backup, migration_dryrun, build, deploy, validate, gate_report]
  not_extra_vars:
    description:
      - Keys the playbook sets itself, which an extra var (C(-e)) would outrank (Ansible's
        extra vars win over every fact and role var); given with C(-e), the run stops here,
        naming the key, the value and why. The fleet's C(rollback.yml) names
        C(stagegate_release) (it sets the target for the checks and the report).
    type: list
    elements: str
    default: []
  unknown_keys:
    description: Whether an unknown C(stagegate_*) variable fails the run or only warns.
    type: str
    choices: [error, warn]
    default: error
  secrets:
    description:
      - Rules for O(scope=secrets). Each has C(name), and optionally C(file) (a .env file on the
        deploy host) or C(var) (an Ansible variable), C(min_length), C(must_not_contain) (list),
        C(pattern) (regular expression).
    type: list
    elements: dict
    default: []
  roles_dir:
    description: Where roles' C(meta/argument_specs.yml) are read (default the collection's roles).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Reads only, so every run gives the same answer for the same variables.
notes:
  - Run the O(scope=secrets) task with C(no_log) as defence in depth; no value is ever returned.
seealso:
  - name: The stagegate_* variable contract
    description: docs/configuration.md in the collection.
    link: https://example.invalid/stagegate/docs/configuration.md
author:
  - stagegate developers (@stagegate)
"""

EXAMPLES = r"""
- name: Validate the whole configuration
  stagegate.release.validate_config:
    phases: [preflight, backup]

- name: Check the required secrets
  stagegate.release.validate_config:
    scope: secrets
    secrets:
      - name: JWT_SECRET
        file: /srv/app/.env
        min_length: 32
      - name: CORS_ORIGINS
        file: /srv/app/.env
        must_not_contain: [localhost, 127.0.0.1]
  no_log: true
  register: secret_check
"""

RETURN = r"""
errors:
  description: Every problem found, each as C(<key>) then its message.
  returned: always
  type: list
  elements: str
  sample: ["stagegate_db.port: got 'abc' (str), expected an integer in 1..65535"]
phases:
  description: The phases whose required keys were checked.
  returned: scope=config
  type: list
  elements: str
secrets:
  description: Each rule checked, with its source and whether it passed; never the value.
  returned: scope=secrets
  type: list
  elements: dict
  sample: [{name: JWT_SECRET, source: /srv/app/.env, ok: true}]
ansible_facts:
  description: C(stagegate_run_id) and C(stagegate_run_owner), when not already set.
  returned: scope=config
  type: dict
"""
