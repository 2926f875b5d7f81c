"""The `stagegate.release.at_least_retries` filter restore.yml verifies with."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.filter.checks import FilterModule

at_least_retries = FilterModule().filters()["at_least_retries"]


def test_raises_to_the_minimum_and_keeps_higher_values() -> None:
    checks = [
        {"name": "a", "type": "http"},
        {"name": "b", "type": "http", "retries": 10, "delay": 2},
        {"name": "c", "type": "http", "retries": "1"},
    ]
    assert at_least_retries(checks, 3) == [
        {"name": "a", "type": "http", "retries": 3},
        {"name": "b", "type": "http", "retries": 10, "delay": 2},
        {"name": "c", "type": "http", "retries": 3},
    ]
    assert checks[0] == {"name": "a", "type": "http"}  # the catalog itself is not changed
    assert at_least_retries(None, 2) == []


@pytest.mark.parametrize("bad", [-1, True, "3"])
def test_a_bad_minimum_is_named(bad: object) -> None:
    with pytest.raises(AnsibleFilterError, match="expected a whole number"):
        at_least_retries([], bad)
