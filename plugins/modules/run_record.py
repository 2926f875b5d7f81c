#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done by the action plugin plugins/action/run_record.py on the
# controller.

DOCUMENTATION = r"""
---
module: run_record
short_description: The run record kept by code (phases, their time and status, where it stopped)
version_added: 0.2.0
description:
  - Runs on the controller. Returns, for the host it runs for, the run record that the callback
    C(stagegate.release.progress) keeps as the play goes (see its documentation for how a task's
    phase is known), namely the phases that ended (or failed) since the last
    C(stagegate.release.gate) report, where and why the run stopped, and whether that was before
    anything changed.
  - C(playbooks/staging.yml) calls it once at the start (so a run whose record would be missing
    stops before anything changes) and in its rescue section (to know the failed phase).
  - Fails, naming the setting, when the callback is not enabled (C(callbacks_enabled) in
    ansible.cfg); with O(required=false) it returns an empty record instead.
  - With O(skip_phase) it says instead why the phase of the task does not apply (the build phase
    of a deploy strategy without images, say) and returns only that; the callback counts the
    phase as skipped, prints the reason and keeps it as the phase's C(note) in the report.
options:
  required:
    description: Fail when no run record is kept.
    type: bool
    default: true
  skip_phase:
    description:
      - Why the phase this task belongs to does not apply on this host. Returned as
        RV(phase_skipped); nothing else is read or returned.
    type: str
    default: ""
  hosts:
    description:
      - A fleet (docs/fleet.md) - the record over these hosts instead of the host it runs for,
        with each phase once, in the order it first ran (the time of a phase that ran once per
        rollout batch is added up), C(failed) when it failed on any of them, C(ok) when it ran
        on any, else C(skipped); RV(stopped) is the first failure on any of them no gate
        reported, its reason naming the host.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Changes nothing.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.gate
"""

EXAMPLES = r"""
- name: Read where the run stopped
  stagegate.release.run_record:
  register: run

- name: Stop a run refused before it changed anything
  ansible.builtin.fail:
    msg: "Refused: {{ run.stopped.reason }}"
  when: run.refused

- name: Read where a fleet promotion stopped, over every host
  stagegate.release.run_record:
    hosts: "{{ stagegate_fleet.app + stagegate_fleet.db }}"
  register: fleet_run
  run_once: true

- name: Say why the build phase does not apply
  stagegate.release.run_record:
    skip_phase: the deploy strategy symlink builds no images
  tags: [build]
"""

RETURN = r"""
started:
  description: When the run started (ISO 8601, UTC).
  returned: unless O(skip_phase) is set
  type: str
phases:
  description: The phases that ended or failed since the last gate report,
    C({name, status, seconds}) and C(note) (why a phase was skipped, when a task said so);
    status is C(ok), C(skipped) (every task skipped) or C(failed).
  returned: unless O(skip_phase) is set
  type: list
  elements: dict
stopped:
  description: Where and why the run stopped, C({phase, reason}) (the phase, else the task's name);
    null when no task failed since the last gate report.
  returned: unless O(skip_phase) is set
  type: dict
phase_skipped:
  description: The reason given in O(skip_phase) (and nothing else is returned then).
  returned: when O(skip_phase) is set
  type: str
refused:
  description: The run stopped before its preflight phase ended (a failure outside any phase,
    or in preflight, whose last step takes the deploy lock), so nothing changed.
  returned: unless O(skip_phase) is set
  type: bool
before_deploy:
  description: The run stopped before its deploy phase (also when it was refused), so the
    release that ran still runs, untouched; the report says there is nothing to roll back.
  returned: unless O(skip_phase) is set
  type: bool
"""
