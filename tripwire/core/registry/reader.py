"""Read-only view of a registry directory: models, versions, aliases, references.

Standard library only, so the stream worker can poll aliases cheaply. Layout (see
docs/ARCHITECTURE.md)::

    ROOT/NAME/<version>/manifest.json   a published version (never modified)
    ROOT/NAME/aliases/<alias>.json      {"version", "history", "moves", ...} (aliases.py)
    ROOT/NAME/.tmp-<uuid>/              an in-flight or abandoned publish; ignored
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.core.errors import RegistryError
from tripwire.core.registry.aliases import ALIAS_LIMIT, ALIASES_DIR, alias_record
from tripwire.core.registry.confined import RefusedEntry, closing, open_dir, open_root, read_file
from tripwire.core.registry.integrity import check_version, parse_json, read_manifest
from tripwire.core.registry.manifest import (
    LATEST,
    MANIFEST_FILE,
    is_alias_name,
    is_model_name,
    is_version,
)
from tripwire.core.untrusted import escaped

log = logging.getLogger(__name__)

#: The alias a bare ``NAME`` reference means.
DEFAULT_ALIAS = "production"
TMP_PREFIX = ".tmp-"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME@latest``.

    Returns ``(name, selector)``; ``selector`` is ``None`` for a bare name, a
    canonical version string (``"007"`` -> ``"7"``) for digits, else the alias.

    >>> parse_ref("demo@3")
    ('demo', '3')
    >>> parse_ref("demo")
    ('demo', None)
    """
    name, at, selector = ref.partition("@")
    usage = (
        f"bad model reference {escaped(ref, 100)}: "
        "expected NAME, NAME@VERSION, NAME@ALIAS or NAME@latest"
    )
    if not is_model_name(name) or (at and not selector):
        raise RegistryError(usage)
    if not at:
        return name, None
    if selector.isdigit() and selector.isascii():
        if int(selector) < 1:
            raise RegistryError(f"{usage} (versions start at 1)")
        return name, str(int(selector))
    if selector != LATEST and not is_alias_name(selector):
        raise RegistryError(usage)
    return name, selector


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


@dataclass(frozen=True)
class OpenedVersion:
    """A resolved version and its directory, opened without following any symlink."""

    name: str
    version: str
    fd: int


class RegistryReader:
    """Read models, versions, manifests and aliases under ``root``.

    Readers never lock and never see a partial version: versions appear by atomic
    rename and alias files are replaced atomically. Every read opens the root once
    and everything below it through :mod:`tripwire.core.registry.confined`: no
    symlink below the root is followed (the root itself may be one).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------

    def model_dir(self, name: str) -> Path:
        if not is_model_name(name):
            raise RegistryError(
                f"invalid model name {escaped(name, 64)} (letters, digits, '_', '.', '-')"
            )
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        if not is_version(version):
            raise RegistryError(f"invalid version {escaped(version, 32)} (a positive integer)")
        return self.model_dir(name) / version

    def alias_path(self, name: str, alias: str) -> Path:
        if not is_alias_name(alias):
            raise RegistryError(
                f"invalid alias {escaped(alias, 64)} (starts with a letter; '{LATEST}' and "
                "digits are reserved for versions)"
            )
        return self.model_dir(name) / ALIASES_DIR / f"{alias}.json"

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @contextmanager
    def _opened_root(self) -> Iterator[int]:
        with closing(open_root(self.root)) as fd:
            yield fd

    # -- listing -------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of the models in the registry (real directories only), sorted."""
        with self._opened_root() as fd, os.scandir(fd) as it:
            return sorted(
                e.name for e in it if is_model_name(e.name) and e.is_dir(follow_symlinks=False)
            )

    def versions(self, name: str) -> list[str]:
        """Published versions of ``name`` in numeric order; temp dirs are ignored.

        A version-named symlink is listed (so that it is refused by name when loaded
        or verified, instead of silently skipped).
        """
        with self._opened_root() as fd:
            return self._versions(fd, name)

    def _versions(self, root_fd: int, name: str) -> list[str]:
        rel = self._rel(self.model_dir(name))
        try:
            model_fd = open_dir(root_fd, rel, str(self.root))
        except (FileNotFoundError, NotADirectoryError):
            raise RegistryError(
                f"no model {name!r} in registry {self.root} (models: {_listing(self.models())})"
            ) from None
        with closing(model_fd), os.scandir(model_fd) as it:
            found = [
                e.name for e in it
                if is_version(e.name) and (e.is_dir(follow_symlinks=False) or e.is_symlink())
            ]  # fmt: skip
        return sorted(found, key=int)

    def temp_dirs(self, name: str) -> list[Path]:
        """In-flight or abandoned publishes of ``name`` (``.tmp-*`` dirs, never symlinks)."""
        if not self.root.is_dir():
            return []
        try:
            with self._opened_root() as root_fd:
                model_fd = open_dir(root_fd, self._rel(self.model_dir(name)), str(self.root))
        except FileNotFoundError:
            return []
        with closing(model_fd), os.scandir(model_fd) as it:
            found = [e.name for e in it if e.name.startswith(TMP_PREFIX) and not e.is_symlink()]
        return sorted(self.model_dir(name) / n for n in found)

    def manifest_bytes(self, name: str, version: str) -> bytes:
        """The raw ``manifest.json`` of one version (what its sha256 digest is taken of)."""
        with self._opened_root() as fd:
            if version not in self._versions(fd, name):
                raise self._no_version(name, version)
            with closing(self._open_version_dir(fd, name, version)) as vfd:
                _, raw, problems = read_manifest(vfd, str(self.version_dir(name, version)))
        if raw is None:
            file, problem = problems[0]
            raise RegistryError(f"{self.version_dir(name, version) / file}: {problem}")
        return raw

    def manifest(self, name: str, version: str) -> dict[str, Any]:
        """The parsed ``manifest.json`` of one version (not validated)."""
        path = self.version_dir(name, version) / MANIFEST_FILE
        try:
            doc = parse_json(self.manifest_bytes(name, version))
        except ValueError as e:
            raise RegistryError(f"{path} cannot be read as JSON: {escaped(e)}") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{path} does not hold a JSON object")
        return doc

    def manifest_sha256(self, name: str, version: str) -> str:
        """Hex sha256 of a version's ``manifest.json``: names its exact contents."""
        return hashlib.sha256(self.manifest_bytes(name, version)).hexdigest()

    def check(self, name: str, version: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
        """``check_version`` of ``NAME/VERSION/``: the manifest if intact, and the problems."""
        with self._opened_root() as fd:
            try:
                vfd = self._open_version_dir(fd, name, version)
            except FileNotFoundError:
                return None, [("", "version directory is missing")]
            except RefusedEntry as e:
                here = e.path == self._rel(self.version_dir(name, version))
                return None, [("", e.problem if here else str(e))]
            with closing(vfd):
                return check_version(vfd, name, version)

    def _open_version_dir(self, root_fd: int, name: str, version: str) -> int:
        return open_dir(root_fd, self._rel(self.version_dir(name, version)))

    @contextmanager
    def open_version(self, ref: str) -> Iterator[OpenedVersion]:
        """Resolve ``ref`` and open its version directory, both under one open root.

        Raises ``RegistryError`` (including :class:`RefusedEntry` for a symlinked or
        special model or version directory) and ``OSError``.
        """
        with self._opened_root() as fd:
            name, version = self._resolve(fd, ref)
            try:
                vfd = self._open_version_dir(fd, name, version)
            except FileNotFoundError:
                raise RegistryError(f"{name}/{version}/ vanished while being opened") from None
        with closing(vfd):
            yield OpenedVersion(name, version, vfd)

    # -- aliases -------------------------------------------------------------

    def alias_record(self, name: str, alias: str) -> dict[str, Any] | None:
        """The parsed alias file (``version``, ``history``, ``moves``...), ``None`` if unset."""
        with self._opened_root() as fd:
            return self._alias_record(fd, name, alias)

    def _alias_record(self, root_fd: int, name: str, alias: str) -> dict[str, Any] | None:
        path = self.alias_path(name, alias)
        try:
            raw = read_file(root_fd, self._rel(path), ALIAS_LIMIT, str(self.root))
        except FileNotFoundError:
            return None
        except RefusedEntry as e:
            raise RegistryError(f"alias file refused: {e}") from None
        try:
            doc = parse_json(raw)
        except ValueError as e:
            raise RegistryError(f"alias file {path} cannot be read: {escaped(e)}") from None
        return alias_record(doc, str(path))

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or ``None`` if the alias (or model) is unset.

        One small file read: cheap enough to poll every few seconds.
        """
        record = self.alias_record(name, alias)
        return None if record is None else str(record["version"])

    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` for every readable alias of ``name``, sorted by alias."""
        with self._opened_root() as fd:
            try:
                alias_fd = open_dir(fd, self._rel(self.model_dir(name) / ALIASES_DIR))
            except FileNotFoundError:
                return {}
            with closing(alias_fd), os.scandir(alias_fd) as it:
                stems = sorted(e.name[:-5] for e in it if e.name.endswith(".json"))
            found = {}
            for stem in (s for s in stems if is_alias_name(s)):
                try:
                    record = self._alias_record(fd, name, stem)
                except RegistryError as e:
                    log.warning("skipping alias: %s", escaped(e, 500))
                    continue
                if record is not None:
                    found[stem] = str(record["version"])
            return found

    # -- references ----------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, str]:
        """``(name, version)`` for ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``, ``NAME@latest``.

        A bare ``NAME`` means ``NAME@production``. Raises ``RegistryError`` that lists
        what does exist when the reference matches nothing.
        """
        with self._opened_root() as fd:
            return self._resolve(fd, ref)

    def _resolve(self, root_fd: int, ref: str) -> tuple[str, str]:
        name, selector = parse_ref(ref)
        versions = self._versions(root_fd, name)
        if selector == LATEST:
            if not versions:
                raise RegistryError(f"model {name!r} has no published versions")
            return name, versions[-1]
        if selector is not None and is_version(selector):
            if selector not in versions:
                raise self._no_version(name, selector, versions)
            return name, selector
        alias = selector or DEFAULT_ALIAS
        record = self._alias_record(root_fd, name, alias)
        version = None if record is None else str(record["version"])
        if version is None:
            aliases = _listing(list(self.aliases(name)))
            if selector is None:
                raise RegistryError(
                    f"model {name!r} has no {DEFAULT_ALIAS!r} alias; name one explicitly: "
                    f"{name}@{LATEST}, {name}@<version> (versions: {_listing(versions)}) "
                    f"or {name}@<alias> (aliases: {aliases})"
                )
            raise RegistryError(f"model {name!r} has no alias {alias!r} (aliases: {aliases})")
        if version not in versions:
            raise RegistryError(
                f"alias {name}@{alias} points at version {version}, which does not exist "
                f"(versions: {_listing(versions)})"
            )
        return name, version

    def _no_version(
        self, name: str, version: str, versions: list[str] | None = None
    ) -> RegistryError:
        versions = self.versions(name) if versions is None else versions
        return RegistryError(
            f"model {name!r} has no version {version} (versions: {_listing(versions)})"
        )
