"""Reading a published version's drift reference, verified like every artifact.

:func:`load_reference` checks the whole version directory (manifest schema and
every sha256, :func:`tripwire.core.registry.integrity.check_version`) while
copying the artifacts to a private directory, and parses the reference from
that copy: the bytes parsed are the bytes whose hash matched. A version
published before drift references existed yields ``None`` and the reason, and
monitoring stays off for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from tripwire.core.drift.reference import MANIFEST_KEY, DriftReference, read_reference
from tripwire.core.errors import RegistryError
from tripwire.core.registry.integrity import check_version
from tripwire.core.registry.reader import RegistryReader

log = logging.getLogger(__name__)


def load_reference(
    root: str | os.PathLike[str], ref: str
) -> tuple[DriftReference | None, str, tuple[str, ...]]:
    """The drift reference of the version ``ref`` names.

    Returns
    -------
    reference : DriftReference or None
        ``None`` when the version has no reference (published before them).
    label : str
        ``NAME@VERSION`` of the resolved version.
    feature_names : tuple of str
        The manifest's feature names.

    Raises
    ------
    RegistryError
        The version is not intact, or its reference is unreadable or inconsistent
        with the manifest (threshold, feature count).
    """
    reader = RegistryReader(root)
    with reader.open_version(ref) as opened, tempfile.TemporaryDirectory() as private:
        label = f"{opened.name}@{opened.version}"
        manifest, problems = check_version(
            opened.fd, opened.name, opened.version, copy_to=Path(private)
        )
        if manifest is None:
            detail = "; ".join(f"{f}: {p}" if f else p for f, p in problems)
            raise RegistryError(f"{label} is not intact: {detail}")
        names = tuple(manifest["features"]["names"])
        section = manifest.get(MANIFEST_KEY)
        if section is None:
            log.info(
                "%s has no drift reference (published before them): drift monitoring off", label
            )
            return None, label, names
        reference = read_reference(Path(private) / section["artifact"], len(names))
    if reference.threshold != float(manifest["threshold"]["value"]):
        raise RegistryError(f"{label}: the drift reference was built for another threshold")
    return reference, label, names


__all__ = ["load_reference"]
