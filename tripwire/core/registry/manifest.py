"""The ``manifest.json`` of a model version: schema, validation, hashing, environment.

:mod:`tripwire.core.registry.integrity` reads, validates and hash-checks a whole
version directory with it: what ``load_scorer`` runs before any deserialisation.

Import-light on purpose (standard library only): the stream worker reads manifests.
See docs/ARCHITECTURE.md, "manifest.json", for the schema.
"""

from __future__ import annotations

import hashlib
import math
import platform
import re
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

#: The manifest schema this code writes and the newest it can read.
SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
#: Keys ``Registry.publish`` fills in; the caller supplies the rest.
FILLED_KEYS = ("schema_version", "name", "version", "created_at", "artifacts", "environment")
ENVIRONMENT_PACKAGES = ("torch", "numpy", "pyod", "tripwire")

MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ALIAS_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
VERSION_RE = re.compile(r"[1-9][0-9]{0,17}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: ``NAME@latest`` always means the highest version, so no alias may take the name.
LATEST = "latest"


def is_model_name(name: str) -> bool:
    return MODEL_NAME_RE.fullmatch(name) is not None


def is_alias_name(alias: str) -> bool:
    return ALIAS_NAME_RE.fullmatch(alias) is not None and alias != LATEST


def is_version(text: str) -> bool:
    return VERSION_RE.fullmatch(text) is not None


def utc_now() -> str:
    """The current UTC time as ``2026-11-28T10:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment_info() -> dict[str, str | None]:
    """Python and key package versions, read from installed metadata (imports nothing)."""
    env: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ENVIRONMENT_PACKAGES:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    return env


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def artifact_name_problem(name: object) -> str | None:
    """Why ``name`` is not a safe artifact path inside a version dir, or ``None``.

    Artifacts are relative POSIX paths without ``..``, hidden parts or backslashes,
    so a manifest can never point a loader outside its version directory.
    """
    if not isinstance(name, str) or not name:
        return f"artifact name {name!r} is not a non-empty string"
    path = PurePosixPath(name)
    bad_part = any(p in ("", ".", "..") or p.startswith(".") for p in name.split("/"))
    if path.is_absolute() or "\\" in name or bad_part:
        return f"artifact name {name!r} is not a plain relative path"
    if name == MANIFEST_FILE:
        return f"artifact name {name!r} is reserved"
    return None


def _section(m: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any] | None:
    value = m.get(key)
    if not isinstance(value, dict):
        problems.append(f"'{key}' must be an object, got {type(value).__name__}")
        return None
    return value


def schema_problem(m: dict[str, Any]) -> str | None:
    """Why this code cannot read the manifest's schema version, or ``None``."""
    sv = m.get("schema_version")
    if not isinstance(sv, int) or isinstance(sv, bool) or sv < 1:
        return f"unknown schema_version {sv!r}"
    if sv > SCHEMA_VERSION:
        return (
            f"manifest schema_version {sv} was written by a newer Tripwire "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade tripwire to load it"
        )
    return None


def validate_manifest(m: object) -> list[str]:
    """Every way ``m`` breaks the manifest schema; empty when it is valid.

    A manifest from a newer schema yields only that one problem: its other keys may
    legitimately differ.
    """
    if not isinstance(m, dict):
        return [f"manifest must be a JSON object, got {type(m).__name__}"]
    problem = schema_problem(m)
    if problem:
        return [problem]
    problems: list[str] = []
    for key in ("name", "version", "created_at"):
        if not isinstance(m.get(key), str) or not m[key]:
            problems.append(f"'{key}' must be a non-empty string")
    checks = {
        "detector": _check_detector,
        "features": _check_features,
        "threshold": _check_threshold,
        "artifacts": _check_artifacts,
        "environment": None,
    }
    for key, check in checks.items():
        section = _section(m, key, problems)
        if section is not None and check is not None:
            check(section, problems)
    for key in ("metrics", "training_data"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            problems.append(f"'{key}' must be an object or null")
    if m.get("drift_reference") is not None:
        _check_drift_reference(m["drift_reference"], m.get("artifacts"), problems)
    return problems


def _check_drift_reference(d: object, artifacts: object, problems: list[str]) -> None:
    """Optional (versions published before drift monitoring lack it): names an artifact."""
    name = d.get("artifact") if isinstance(d, dict) else None
    if not isinstance(name, str) or not isinstance(artifacts, dict) or name not in artifacts:
        problems.append("'drift_reference.artifact' must name one of the manifest's artifacts")


def _check_detector(d: dict[str, Any], problems: list[str]) -> None:
    if not isinstance(d.get("kind"), str) or not d["kind"]:
        problems.append("'detector.kind' must be a non-empty string")
    for key in ("params", "state"):
        if not isinstance(d.get(key), dict):
            problems.append(f"'detector.{key}' must be an object")


def _check_features(f: dict[str, Any], problems: list[str]) -> None:
    count, names = f.get("count"), f.get("names")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        problems.append(f"'features.count' must be a positive integer, got {count!r}")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append("'features.names' must be a list of strings")
        return
    if isinstance(count, int) and len(names) != count:
        problems.append(
            f"feature count mismatch: 'features.count' is {count} "
            f"but 'features.names' has {len(names)} names"
        )
    if len(set(names)) != len(names):
        problems.append("'features.names' has duplicate names")


def _check_threshold(t: dict[str, Any], problems: list[str]) -> None:
    if not isinstance(t.get("method"), str) or not t["method"]:
        problems.append("'threshold.method' must be a non-empty string")
    if not isinstance(t.get("params"), dict):
        problems.append("'threshold.params' must be an object")
    value = t.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        problems.append(f"'threshold.value' must be a finite number, got {value!r}")


def _check_artifacts(a: dict[str, Any], problems: list[str]) -> None:
    for name, digest in a.items():
        problem = artifact_name_problem(name)
        if problem:
            problems.append(problem)
        elif not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
            problems.append(f"artifact {name!r}: {digest!r} is not a hex sha256")
