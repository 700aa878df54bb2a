"""Read-only view of a registry directory: models, versions, aliases, references.

Standard library only, so the stream worker can poll aliases cheaply. Layout (see
docs/ARCHITECTURE.md)::

    ROOT/NAME/<version>/manifest.json   a published version (never modified)
    ROOT/NAME/aliases/<alias>.json      {"version", "history", "updated_at"}
    ROOT/NAME/.tmp-<uuid>/              an in-flight or abandoned publish; ignored
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from tripwire.core.errors import RegistryError
from tripwire.core.registry.manifest import (
    LATEST,
    MANIFEST_FILE,
    is_alias_name,
    is_model_name,
    is_version,
)

log = logging.getLogger(__name__)

#: The alias a bare ``NAME`` reference means.
DEFAULT_ALIAS = "production"
ALIASES_DIR = "aliases"
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
    usage = f"bad model reference {ref!r}: expected NAME, NAME@VERSION, NAME@ALIAS or NAME@latest"
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


def _alias_record(raw: Any, path: Path) -> dict[str, Any]:
    """Check an alias file's shape; raise ``RegistryError`` naming the file."""
    ok = (
        isinstance(raw, dict)
        and isinstance(raw.get("version"), str)
        and is_version(raw["version"])
        and isinstance(raw.get("history"), list)
        and all(isinstance(v, str) and is_version(v) for v in raw["history"])
    )
    if not ok:
        raise RegistryError(f"alias file {path} is malformed: expected version and history")
    return dict(raw)


class RegistryReader:
    """Read models, versions, manifests and aliases under ``root``.

    Readers never lock and never see a partial version: versions appear by atomic
    rename and alias files are replaced atomically.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------

    def model_dir(self, name: str) -> Path:
        if not is_model_name(name):
            raise RegistryError(f"invalid model name {name!r} (letters, digits, '_', '.', '-')")
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        if not is_version(version):
            raise RegistryError(f"invalid version {version!r} (a positive integer)")
        return self.model_dir(name) / version

    def alias_path(self, name: str, alias: str) -> Path:
        if not is_alias_name(alias):
            raise RegistryError(
                f"invalid alias {alias!r} (starts with a letter; '{LATEST}' and digits "
                "are reserved for versions)"
            )
        return self.model_dir(name) / ALIASES_DIR / f"{alias}.json"

    # -- listing -------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of the models in the registry, sorted."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            raise RegistryError(f"registry directory {self.root} does not exist") from None
        except NotADirectoryError:
            raise RegistryError(f"registry path {self.root} is not a directory") from None
        return sorted(e.name for e in entries if is_model_name(e.name) and e.is_dir())

    def versions(self, name: str) -> list[str]:
        """Published versions of ``name`` in numeric order; temp dirs are ignored."""
        model_dir = self.model_dir(name)
        try:
            entries = list(os.scandir(model_dir))
        except (FileNotFoundError, NotADirectoryError):
            models = self.models()
            raise RegistryError(
                f"no model {name!r} in registry {self.root} (models: {_listing(models)})"
            ) from None
        found = [e.name for e in entries if is_version(e.name) and e.is_dir()]
        return sorted(found, key=int)

    def temp_dirs(self, name: str) -> list[Path]:
        """In-flight or abandoned publishes of ``name`` (``.tmp-*`` dirs)."""
        try:
            entries = list(os.scandir(self.model_dir(name)))
        except FileNotFoundError:
            return []
        return sorted(Path(e.path) for e in entries if e.name.startswith(TMP_PREFIX))

    def manifest(self, name: str, version: str) -> dict[str, Any]:
        """The parsed ``manifest.json`` of one version (not validated)."""
        if version not in self.versions(name):
            raise self._no_version(name, version)
        path = self.version_dir(name, version) / MANIFEST_FILE
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise RegistryError(f"{path} is missing (half-written version?)") from None
        except (OSError, ValueError) as e:
            raise RegistryError(f"{path} cannot be read as JSON: {e}") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{path} does not hold a JSON object")
        return doc

    # -- aliases -------------------------------------------------------------

    def alias_record(self, name: str, alias: str) -> dict[str, Any] | None:
        """``{"version", "history", "updated_at"}`` of an alias, or ``None`` if unset."""
        path = self.alias_path(name, alias)
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise RegistryError(f"alias file {path} cannot be read: {e}") from None
        return _alias_record(raw, path)

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or ``None`` if the alias (or model) is unset.

        One small file read: cheap enough to poll every few seconds.
        """
        record = self.alias_record(name, alias)
        return None if record is None else str(record["version"])

    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` for every readable alias of ``name``, sorted by alias."""
        alias_dir = self.model_dir(name) / ALIASES_DIR
        try:
            files = sorted(p for p in alias_dir.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return {}
        found = {}
        for path in files:
            if not is_alias_name(path.stem):
                continue
            try:
                version = self.alias_version(name, path.stem)
            except RegistryError as e:
                log.warning("skipping alias: %s", e)
                continue
            if version is not None:
                found[path.stem] = version
        return found

    # -- references ----------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, str]:
        """``(name, version)`` for ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``, ``NAME@latest``.

        A bare ``NAME`` means ``NAME@production``. Raises ``RegistryError`` that lists
        what does exist when the reference matches nothing.
        """
        name, selector = parse_ref(ref)
        versions = self.versions(name)
        if selector == LATEST:
            if not versions:
                raise RegistryError(f"model {name!r} has no published versions")
            return name, versions[-1]
        if selector is not None and is_version(selector):
            if selector not in versions:
                raise self._no_version(name, selector, versions)
            return name, selector
        alias = selector or DEFAULT_ALIAS
        version = self.alias_version(name, alias)
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
