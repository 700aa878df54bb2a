"""Manifest schema validation, artifact names, hashing and environment info."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripwire.core.registry import RegistryReader
from tripwire.core.registry.manifest import (
    SCHEMA_VERSION,
    artifact_name_problem,
    environment_info,
    sha256_file,
    validate_manifest,
)


def valid() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": "demo",
        "version": "1",
        "created_at": "2026-11-28T10:00:00Z",
        "detector": {"kind": "ae", "params": {}, "state": {}},
        "features": {"count": 2, "names": ["a", "b"]},
        "threshold": {"method": "fpr", "params": {"rate": 0.01}, "value": 1.5},
        "metrics": None,
        "artifacts": {"w.bin": "a" * 64},
        "environment": {"python": "3.11.7"},
    }


def test_a_valid_manifest_has_no_problems() -> None:
    assert validate_manifest(valid()) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("schema_version",), 0, "unknown schema_version 0"),
        (("schema_version",), True, "unknown schema_version True"),
        (("version",), "", "'version' must be a non-empty string"),
        (("detector", "kind"), "", "'detector.kind' must be a non-empty string"),
        (("detector", "state"), [], "'detector.state' must be an object"),
        (("features", "names"), ["a", "a"], "duplicate names"),
        (("features", "count"), 0, "'features.count' must be a positive integer"),
        (("threshold", "value"), "1.5", "'threshold.value' must be a finite number"),
        (("threshold", "value"), float("inf"), "'threshold.value' must be a finite number"),
        (("artifacts", "w.bin"), "A" * 64, "is not a hex sha256"),
        (("metrics",), [1], "'metrics' must be an object or null"),
        (("environment",), None, "'environment' must be an object"),
        (("detector",), {}, "'detector.kind' must be a non-empty string"),
        (("features",), {}, "'features.count' must be a positive integer"),
        (("threshold",), {}, "'threshold.value' must be a finite number"),
    ],
)
def test_each_schema_violation_is_named(path: tuple[str, ...], value: Any, problem: str) -> None:
    m = valid()
    target = m
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(problem in p for p in validate_manifest(m)), validate_manifest(m)


def test_a_newer_schema_is_reported_alone() -> None:
    assert validate_manifest({"schema_version": SCHEMA_VERSION + 1}) == [
        f"manifest schema_version {SCHEMA_VERSION + 1} was written by a newer Tripwire "
        f"(this one reads up to {SCHEMA_VERSION}); upgrade tripwire to load it"
    ]


@pytest.mark.parametrize("name", ["w.bin", "sub/w.bin", "a-b_c.safetensors"])
def test_plain_artifact_names(name: str) -> None:
    assert artifact_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", ".hidden", "a\\b", 3]
)
def test_artifact_names_that_could_escape_or_hide(name: object) -> None:
    assert artifact_name_problem(name) is not None


def test_sha256_file(tmp_path: Path) -> None:
    data = b"x" * (3 * 1024 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_environment_info_reads_installed_versions() -> None:
    import numpy
    import torch

    env = environment_info()
    assert env["numpy"] == numpy.__version__
    assert env["torch"] == torch.__version__.split("+")[0] or env["torch"] == torch.__version__
    assert env["tripwire"] and env["python"].count(".") == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(valid())), json_values, max_size=10))
def test_validation_never_crashes_on_arbitrary_json(overrides: dict[str, Any]) -> None:
    m = {**valid(), **overrides}
    problems = validate_manifest(m)
    assert all(isinstance(p, str) for p in problems)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_check_version_never_crashes_on_arbitrary_manifest_bytes(
    tmp_path: Path, raw: bytes
) -> None:
    """What the worker relies on: any manifest bytes give problems, never an exception."""
    vdir = tmp_path / "demo" / "1"
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "manifest.json").write_bytes(raw)
    manifest, problems = RegistryReader(tmp_path).check("demo", "1")
    assert manifest is None and problems
