"""The one band grammar (plugins/module_utils/_bands.py), as checks, gates and budgets use it."""

from __future__ import annotations

import pytest
from ansible_collections.stagegate.release.plugins.module_utils import _bands

from stagegate.bands import Band, BandError, Bands
from stagegate.results import Status


def test_the_package_re_exports_the_module_utils_grammar() -> None:
    assert Band is _bands.Band
    assert BandError is _bands.BandError
    assert issubclass(Bands, _bands.Bands)
    assert Bands.parse({"pass": "<= 1.2s", "warn": "<= 2s"}).grade(1500, "ms") is Status.WARN
    assert _bands.Bands.parse("<= 1.2s").grade(1500, "ms") == "FAIL"  # strings on the host


def test_size_budgets_read_bare_sizes_in_binary_units() -> None:
    budget = Bands.parse({"pass": "300MB", "warn": "0.5 GiB"}, dimension="size")
    assert str(budget) == "PASS <= 300 mb, WARN <= 0.5 gib"
    assert budget.grade(300 * 1024**2, "b") is Status.PASS
    assert budget.grade(400 * 1024**2, "b") is Status.WARN
    assert budget.grade(600 * 1024**2, "b") is Status.FAIL
    assert Bands.parse(1024, dimension="size").grade(1024, "b") is Status.PASS  # bytes


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("80m", "unit 'm' is not a size unit"),  # minutes, not megabytes
        ("fast", "cannot parse band 'fast'"),
        ({"warn": "1GB"}, "expected a mapping with 'pass'"),
        (True, "cannot parse band True"),
    ],
)
def test_bad_bands_name_the_text_and_the_expected_form(spec: object, needle: str) -> None:
    with pytest.raises(BandError, match=needle.replace("(", r"\(")):
        Bands.parse(spec, dimension="size")
