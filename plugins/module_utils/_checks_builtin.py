# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every built-in check type, for the controller's plugins and the host module alike."""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import CheckType
from ansible_collections.stagegate.release.plugins.module_utils._checks_docker import DOCKER, LOGS
from ansible_collections.stagegate.release.plugins.module_utils._checks_host import (
    COMMAND,
    DISK,
    ENV,
    MEMORY,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import (
    FLOW,
    HTTP,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_load import (
    LOAD,
    LOAD_RESULT,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_net import TCP, TLS
from ansible_collections.stagegate.release.plugins.module_utils._checks_pg import POSTGRES
from ansible_collections.stagegate.release.plugins.module_utils._checks_prometheus import (
    PROMETHEUS,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_redis import REDIS
from ansible_collections.stagegate.release.plugins.module_utils._checks_suite import SUITE
from ansible_collections.stagegate.release.plugins.module_utils._checks_ws import WEBSOCKET

BUILTIN_TYPES: tuple[CheckType, ...] = (
    HTTP,
    FLOW,
    PROMETHEUS,
    TCP,
    TLS,
    POSTGRES,
    DOCKER,
    LOGS,
    REDIS,
    ENV,
    DISK,
    MEMORY,
    COMMAND,
    SUITE,
    LOAD,
    LOAD_RESULT,
    WEBSOCKET,
)


def builtin_types() -> dict[str, CheckType]:
    return {check_type.name: check_type for check_type in BUILTIN_TYPES}
