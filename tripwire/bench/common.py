"""What every benchmark records about its run."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each distribution, ``None`` where it is missing."""
    versions: dict[str, str | None] = {}
    for pkg in names:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions
