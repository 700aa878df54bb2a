"""Integrity checks of a whole registry, for ``tripwire registry verify``.

``verify_registry`` runs :func:`tripwire.core.registry.manifest.check_version` (what
``load_scorer`` runs before loading a version) on every version, and adds alias and
stray-entry checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from tripwire.core.errors import RegistryError
from tripwire.core.registry.manifest import (
    check_version,
    is_alias_name,
    is_version,
)
from tripwire.core.registry.reader import ALIASES_DIR, TMP_PREFIX, RegistryReader
from tripwire.training.registry import _fs

#: Age after which an unlocked ``.tmp-*`` dir counts as abandoned.
STALE_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a registry.

    ``severity`` is ``"error"`` (a version or alias cannot be trusted; ``verify``
    fails) or ``"warning"`` (worth cleaning up, nothing unsafe). ``path`` is relative
    to the registry root.
    """

    severity: Literal["error", "warning"]
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def _version_problems(reader: RegistryReader, name: str, version: str) -> list[Problem]:
    _, found = check_version(reader.version_dir(name, version), name, version)
    base = f"{name}/{version}"
    return [Problem("error", f"{base}/{f}" if f else base, msg) for f, msg in found]


def _alias_problems(reader: RegistryReader, name: str, versions: list[str]) -> list[Problem]:
    alias_dir = reader.model_dir(name) / ALIASES_DIR
    if not alias_dir.is_dir():
        return []
    problems = []
    for path in sorted(alias_dir.iterdir()):
        rel = f"{name}/{ALIASES_DIR}/{path.name}"
        if path.name.startswith("."):
            continue  # the lock file and in-flight temp files
        if path.suffix != ".json" or not is_alias_name(path.stem):
            problems.append(Problem("warning", rel, "not an alias file"))
            continue
        try:
            record = reader.alias_record(name, path.stem)
        except RegistryError as e:
            problems.append(Problem("error", rel, str(e)))
            continue
        assert record is not None  # the file exists: we just listed it
        if record["version"] not in versions:
            problems.append(
                Problem("error", rel, f"points at version {record['version']}, which is missing")
            )
        gone = [v for v in record["history"] if v not in versions]
        if gone:
            problems.append(
                Problem("warning", rel, f"history names missing versions {', '.join(gone)}")
            )
    return problems


def _stray_problems(reader: RegistryReader, name: str, stale_after: float) -> list[Problem]:
    problems = []
    now = time.time()
    for entry in sorted(reader.model_dir(name).iterdir()):
        rel = f"{name}/{entry.name}"
        if entry.name.startswith(TMP_PREFIX):
            try:
                age = now - _fs.newest_mtime(entry)
            except FileNotFoundError:
                continue  # a publish just finished or gc removed it
            if age > stale_after and not _fs.dir_in_use(entry):
                problems.append(
                    Problem(
                        "warning",
                        rel,
                        f"abandoned publish ({age:.0f} s old); `tripwire registry gc` removes it",
                    )
                )
        elif entry.name == ALIASES_DIR or (is_version(entry.name) and entry.is_dir()):
            continue
        else:
            problems.append(Problem("warning", rel, "not a version, alias dir or temp dir"))
    return problems


def verify_registry(
    reader: RegistryReader,
    name: str | None = None,
    version: str | None = None,
    stale_after: float = STALE_AFTER_SECONDS,
) -> list[Problem]:
    """Every problem in the registry, one model, or one version.

    Re-hashes every artifact of every version checked, validates manifests, and (for
    whole models) checks that aliases point at existing versions and reports stray
    entries and abandoned temp dirs.
    """
    if version is not None and name is None:
        raise RegistryError("verify: a version needs a model name")
    problems: list[Problem] = []
    for model in [name] if name is not None else reader.models():
        versions = reader.versions(model)
        if version is not None:
            if version not in versions:
                reader.resolve(f"{model}@{version}")  # raises, listing the versions
            return _version_problems(reader, model, version)
        for v in versions:
            problems.extend(_version_problems(reader, model, v))
        problems.extend(_alias_problems(reader, model, versions))
        problems.extend(_stray_problems(reader, model, stale_after))
    return problems
