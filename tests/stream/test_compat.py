"""The compatibility module: version check and bulk histogram updates."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from prometheus_client import CollectorRegistry, Histogram

from tripwire.stream import compat
from tripwire.stream.compat import UnverifiedVersions, check_versions, observe_many

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_versions_are_the_verified_ones() -> None:
    check_versions()


def test_another_version_is_refused_naming_both() -> None:
    installed = {**compat.VERIFIED, "aiokafka": "0.15.0"}
    with pytest.raises(UnverifiedVersions) as e:
        check_versions(installed.__getitem__)
    assert "aiokafka 0.15.0" in str(e.value) and "aiokafka==0.14.0" in str(e.value)
    assert "faust-streaming==0.15.3" in str(e.value)


def test_a_missing_library_is_refused() -> None:
    def installed(name: str) -> str:
        if name == "mode-streaming":
            raise compat.metadata.PackageNotFoundError(name)
        return compat.VERIFIED[name]

    with pytest.raises(UnverifiedVersions, match="mode-streaming not installed"):
        check_versions(installed)


def test_pyproject_pins_exactly_the_verified_versions() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    pins = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.name in compat.VERIFIED:
            (spec,) = req.specifier
            pins[req.name] = (spec.operator, spec.version)
    assert pins == {name: ("==", v) for name, v in compat.VERIFIED.items()}


def test_observe_many_equals_observing_one_by_one() -> None:
    reg = CollectorRegistry()
    buckets = (0.1, 0.5, 1.0, 2.0)
    bulk = Histogram("bulk", "h", buckets=buckets, registry=reg)
    loop = Histogram("loop", "h", buckets=buckets, registry=reg)
    values = np.array([0.0, 0.1, 0.1000001, 0.5, 0.7, 1.0, 2.0, 2.5, 100.0, -1.0, np.nan, np.inf])
    observe_many(bulk, values)
    for v in values[np.isfinite(values)]:
        loop.observe(v)
    for le in ("0.1", "0.5", "1.0", "2.0", "+Inf"):
        a = reg.get_sample_value("bulk_bucket", {"le": le})
        assert a == reg.get_sample_value("loop_bucket", {"le": le}), le
    assert reg.get_sample_value("bulk_sum") == pytest.approx(reg.get_sample_value("loop_sum"))
    assert reg.get_sample_value("bulk_count") == 10
