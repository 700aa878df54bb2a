"""Integrity checks of a whole registry, for ``tripwire registry verify``.

``verify_registry`` runs :func:`tripwire.core.registry.integrity.check_version` (what
``load_scorer`` runs before loading a version) on every version, and adds alias,
stray-entry, symlink and file-mode checks. It reads through the same confined
opens as the loader, so a version verify passes is one the worker would load.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Literal

from tripwire.core.errors import RegistryError
from tripwire.core.registry.aliases import ALIASES_DIR
from tripwire.core.registry.confined import (
    RefusedEntry,
    closing,
    describe,
    open_dir,
    open_root,
    walk,
)
from tripwire.core.registry.manifest import is_alias_name, is_model_name, is_version
from tripwire.core.registry.reader import TMP_PREFIX, RegistryReader
from tripwire.core.untrusted import escaped
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
    _, found = reader.check(name, version)
    base = f"{name}/{version}"
    problems = [Problem("error", f"{base}/{f}" if f else base, msg) for f, msg in found]
    if not found:
        problems.extend(_mode_problems(reader, f"{name}/{version}"))
    return problems


def _unreadable(rel: str, st: os.stat_result) -> str | None:
    """``"rel 0600"`` if other users cannot read (or enter) the entry, else ``None``."""
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
    if st.st_mode & needed == needed:
        return None
    return f"{rel or '.'} {stat.S_IMODE(st.st_mode):04o}"


def _mode_problems(reader: RegistryReader, rel: str) -> list[Problem]:
    """A warning if a published entry is not readable by other users (workers' UIDs)."""
    with closing(open_root(reader.root)) as root_fd, closing(open_dir(root_fd, rel)) as fd:
        found = [_unreadable("", os.fstat(fd))]
        found += [_unreadable(str(escaped(p)), st) for p, st in walk(fd)]
    bad = [f for f in found if f is not None]
    if not bad:
        return []
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return [
        Problem(
            "warning",
            rel,
            f"not readable by other users ({shown}): a worker under another UID cannot load "
            "it; `chmod -R a+rX` it (tripwire publishes files 0644, directories 0755)",
        )
    ]


def _alias_files(reader: RegistryReader, name: str) -> list[str]:
    """Names in ``NAME/aliases/`` (``[]`` if there is none); refuses a symlinked dir."""
    rel = f"{name}/{ALIASES_DIR}"
    with closing(open_root(reader.root)) as root_fd:
        try:
            alias_fd = open_dir(root_fd, rel)
        except FileNotFoundError:
            return []
    with closing(alias_fd), os.scandir(alias_fd) as it:
        return sorted(e.name for e in it)


def _alias_problems(reader: RegistryReader, name: str, versions: list[str]) -> list[Problem]:
    try:
        names = _alias_files(reader, name)
    except RefusedEntry as e:
        return [Problem("error", e.path, e.problem)]
    problems = []
    for file in names:
        rel = f"{name}/{ALIASES_DIR}/{escaped(file)}"
        if file.startswith("."):
            continue  # the lock file and in-flight temp files
        stem = file.removesuffix(".json")
        if not file.endswith(".json") or not is_alias_name(stem):
            problems.append(Problem("warning", rel, "not an alias file"))
            continue
        try:
            record = reader.alias_record(name, stem)
        except RegistryError as e:
            problems.append(Problem("error", rel, str(e)))
            continue
        if record is None:
            continue  # removed since the listing
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


def _model_entries(reader: RegistryReader, name: str) -> list[tuple[str, bool]]:
    """``(entry name, is a real directory)`` for every entry of a model dir."""
    with closing(open_root(reader.root)) as root_fd, closing(open_dir(root_fd, name)) as fd:
        with os.scandir(fd) as it:
            return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)


def _stray_problems(reader: RegistryReader, name: str, stale_after: float) -> list[Problem]:
    problems = []
    now = time.time()
    for entry, is_dir in _model_entries(reader, name):
        rel = f"{name}/{escaped(entry)}"
        if entry.startswith(TMP_PREFIX) and is_dir:
            path = reader.model_dir(name) / entry
            try:
                age = now - _fs.newest_mtime(path)
            except FileNotFoundError:
                continue  # a publish just finished or gc removed it
            if age > stale_after and not _fs.dir_in_use(path):
                problems.append(
                    Problem(
                        "warning",
                        rel,
                        f"abandoned publish ({age:.0f} s old); `tripwire registry gc` removes it",
                    )
                )
        elif entry == ALIASES_DIR or is_version(entry):
            continue  # checked (and refused if not a real directory) on their own
        else:
            problems.append(Problem("warning", rel, "not a version, alias dir or temp dir"))
    return problems


def _root_problems(reader: RegistryReader) -> list[Problem]:
    """Model-named entries of the root that are not real directories (no reader uses them)."""
    with closing(open_root(reader.root)) as root_fd, os.scandir(root_fd) as it:
        entries = sorted((e.name, e.stat(follow_symlinks=False)) for e in it)
        problems = []
        for name, st in entries:
            if not is_model_name(name) or stat.S_ISDIR(st.st_mode):
                continue
            link = stat.S_ISLNK(st.st_mode)
            why = f"is {describe(root_fd, name, st)}, not a model directory: readers refuse it"
            problems.append(Problem("error" if link else "warning", name, why))
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
    problems: list[Problem] = [] if name is not None else _root_problems(reader)
    for model in [name] if name is not None else reader.models():
        try:
            versions = reader.versions(model)
        except RefusedEntry as e:  # the model dir itself
            problems.append(Problem("error", model, e.problem))
            continue
        if version is not None:
            if version not in versions:
                reader.resolve(f"{model}@{version}")  # raises, listing the versions
            return _version_problems(reader, model, version)
        for v in versions:
            problems.extend(_version_problems(reader, model, v))
        problems.extend(_alias_problems(reader, model, versions))
        problems.extend(_stray_problems(reader, model, stale_after))
    return problems
