#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done by the action plugin plugins/action/fleet_image_copy.py on
# the controller.

DOCUMENTATION = r"""
---
module: fleet_image_copy
short_description: Copy images from the build host to this app host (docker save | docker load)
version_added: 0.2.0
description:
  - Build once, run everywhere (docs/fleet.md). Runs on the controller for the app host of the
    task. C(docker save) of O(images) on the build host O(source) is streamed through the
    controller into C(docker load) on this host, each end over SSH as Ansible reaches the host
    (C(ansible_host), C(ansible_port), C(ansible_user), C(ansible_ssh_private_key_file),
    C(ansible_ssh_common_args), C(ansible_ssh_extra_args); C(ansible_connection=local) runs that
    end on the controller). Nothing is written to disk on the way; C(docker load) keeps each
    image's ID, so the host then holds the very build.
  - Afterwards it reads the IDs of O(images) on this host again (RV(ids)) for the comparison
    with the build (C(stagegate.release.fleet_images)).
  - The SSH user must be able to run C(docker) on both hosts (root, or the C(docker) group);
    SSH runs in batch mode (a key or agent, never a password prompt).
  - C(playbooks/tasks/fleet_images.yml) calls it for the hosts that lack images of the build,
    with only those images.
options:
  source:
    description: The build host, by its inventory name.
    type: str
    required: true
  images:
    description: The image references to copy (C(repository:tag)); empty copies nothing.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds the copy may take before both ends are stopped and the task fails.
    type: int
    default: 3600
attributes:
  check_mode:
    support: full
    description: Says which images would be copied from where to this host; copies nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: none
    description: >-
      Copies whatever it is given; the task file gives it only what the host lacks
      (C(stagegate.release.fleet_images)), so a second run copies nothing.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.compose_build
"""

EXAMPLES = r"""
- name: Copy the images this app host lacks from the build host
  stagegate.release.fleet_image_copy:
    source: "{{ groups['stagegate_app'][0] }}"
    images: "{{ stagegate_fleet_images.copies[inventory_hostname] }}"
  when: inventory_hostname in stagegate_fleet_images.copies
  register: fleet_images_copied
"""

RETURN = r"""
source:
  description: The build host the images came from.
  returned: always
  type: str
images:
  description: The image references copied (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
bytes:
  description: Bytes of the C(docker save) stream that crossed the controller.
  returned: when not in check mode
  type: int
seconds:
  description: Wall time of the copy (save, transfer and load).
  returned: when not in check mode
  type: float
ids:
  description: The ID of each image on this host after the load (an empty string for one it
    still lacks).
  returned: success, when not in check mode
  type: dict
msg:
  description: >-
    One line, for example C(app3: copied 2 image(s) from app1 (sb/api:v2, sb/worker:v2), 397.8 MB
    (417100800 bytes) in 116.0 s), or what would be copied in check mode.
  returned: always
  type: str
"""
