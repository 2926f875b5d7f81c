# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the checks action and the host_checks module."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  concurrency:
    description:
      - How many checks run at once (on the controller and on the host alike).
      - Each check still has its own timeout, retries and delay (see docs/checks.md).
    type: int
    default: 16
notes:
  - Check types and their options are listed in docs/checks.md; the catalog format (name,
    type, group, severity, tags, run_on, timeout, retries, delay, read_only, options) is
    the same for both plugins.
  - Secret values (passwords, DSNs, Authorization headers, captured tokens, env values)
    are masked in every result and message.
"""
