"""Checking one version directory before anything in it is deserialised.

:func:`check_version` reads the manifest, validates it and re-hashes every
artifact through descriptors opened by :mod:`tripwire.core.registry.confined` (no
symlink at any level, regular files with one link only), and lists every entry so
that no unlisted file, directory or symlink sits beside the artifacts. Given
``copy_to``, it copies each artifact's bytes there *while* hashing them: the loader
hands the detector that private copy, so the bytes a detector deserialises are the
bytes whose sha256 matched, whatever happens to the registry afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from tripwire.core.registry.confined import (
    RefusedEntry,
    closing,
    describe,
    open_file,
    read_file,
    walk,
)
from tripwire.core.registry.manifest import MANIFEST_FILE, validate_manifest
from tripwire.core.untrusted import escaped

#: A larger manifest.json is refused unread (manifests hold parameters, not data).
MANIFEST_LIMIT = 16 << 20
_CHUNK = 1 << 20

Problems = list[tuple[str, str]]


def parse_json(data: bytes) -> Any:
    """Strict JSON: ``ValueError`` for bad UTF-8, bad syntax, ``NaN``, absurd nesting."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_manifest(version_fd: int, where: str = "") -> tuple[Any, bytes | None, Problems]:
    """``(parsed manifest, its bytes, problems)``; bytes ``None`` when unreadable."""
    try:
        raw = read_file(version_fd, MANIFEST_FILE, MANIFEST_LIMIT, where)
    except FileNotFoundError:
        return None, None, [(MANIFEST_FILE, "missing: half-written or not published by tripwire")]
    except RefusedEntry as e:
        return None, None, [(MANIFEST_FILE, e.problem)]
    try:
        return parse_json(raw), raw, []
    except ValueError as e:
        return None, raw, [(MANIFEST_FILE, f"not valid JSON: {escaped(e)}")]


def check_version(
    version_fd: int, name: str, version: str, *, copy_to: Path | None = None
) -> tuple[dict[str, Any] | None, Problems]:
    """Read, validate and hash-check one version directory, deserialising nothing.

    Parameters
    ----------
    version_fd : int
        The version directory, opened with ``confined.open_dir``.
    name, version : str
        Where it lives: the manifest must say the same.
    copy_to : Path, optional
        An empty private directory: every artifact is copied there as it is hashed.

    Returns
    -------
    manifest : dict or None
        The parsed manifest, or ``None`` when anything is wrong.
    problems : list of (file, problem)
        ``file`` is relative to the version directory, escaped for display; empty
        when the version is intact.
    """
    manifest, _, problems = read_manifest(version_fd)
    if problems:
        return None, problems
    invalid = validate_manifest(manifest)
    if invalid:
        return None, [(MANIFEST_FILE, p) for p in invalid]
    if (manifest["name"], manifest["version"]) != (name, version):
        where = f"{escaped(manifest['name'], 64)}@{escaped(manifest['version'], 32)}"
        return None, [(MANIFEST_FILE, f"describes {where} but lives in {name}/{version}/")]
    problems = artifact_problems(version_fd, manifest["artifacts"], copy_to)
    return (None if problems else manifest), problems


def artifact_problems(
    version_fd: int, artifacts: dict[str, str], copy_to: Path | None = None
) -> Problems:
    """Every artifact's sha256, and no other entry beside them and the manifest.

    Returns ``(file, problem)`` pairs; empty when the directory matches the manifest.
    """
    problems: Problems = []
    for name, expected in sorted(artifacts.items()):
        shown = str(escaped(name))
        try:
            with closing(open_file(version_fd, name)) as fd:
                actual = sha256_fd(fd, None if copy_to is None else copy_to / name)
        except FileNotFoundError:
            problems.append((shown, "listed in the manifest but missing"))
        except RefusedEntry as e:
            inside = "" if e.path == shown else f"{e.path} "
            problems.append((shown, inside + e.problem))
        else:
            if actual != expected:
                why = f"sha256 mismatch: manifest has {expected[:12]}…, file has {actual[:12]}…"
                problems.append((shown, why))
    problems.extend(unlisted_entries(version_fd, artifacts))
    return problems


def unlisted_entries(version_fd: int, artifacts: dict[str, str]) -> Problems:
    """Entries that are neither the manifest, an artifact, nor a directory holding one."""
    parents = [a.split("/")[:-1] for a in artifacts]
    needed_dirs = {"/".join(p[:i]) for p in parents for i in range(1, len(p) + 1)}
    problems: Problems = []
    try:
        for rel, st in walk(version_fd):
            if rel == MANIFEST_FILE or rel in artifacts:
                continue  # checked above
            if stat.S_ISDIR(st.st_mode) and rel in needed_dirs:
                continue
            what = "" if stat.S_ISREG(st.st_mode) else f" ({describe(version_fd, rel, st)})"
            why = f"file not listed in the manifest's artifacts{what}"
            problems.append((str(escaped(rel)), why))
    except RefusedEntry as e:
        problems.append((e.path, e.problem))
    return problems


def sha256_fd(fd: int, copy: Path | None = None) -> str:
    """Hex sha256 of an open file's bytes, copied to ``copy`` (a new 0600 file) if given."""
    h = hashlib.sha256()
    out = None
    if copy is not None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
            if out is not None:
                _write_all(out, chunk)
    finally:
        if out is not None:
            os.close(out)
    return h.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
