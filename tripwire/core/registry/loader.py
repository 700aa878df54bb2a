"""``load_scorer``: resolve a model reference, verify it, and build a ``Scorer``.

Every sha256 is checked before any file is deserialised, so a tampered or torn
version is refused before its bytes reach a loader. Nothing is read through a
symlink below the registry root, and the detector loads a private copy of the
bytes that were hashed (made while hashing them), never the registry's files: a
file replaced after the check cannot reach it. Heavy imports (numpy via the
scorer, torch via the detectors) happen only when a model is actually loaded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripwire.core.errors import ModelLoadError, RegistryError
from tripwire.core.registry.integrity import check_version
from tripwire.core.registry.reader import RegistryReader
from tripwire.core.untrusted import escaped

if TYPE_CHECKING:
    from tripwire.core.detector import Detector
    from tripwire.core.scorer import Scorer

DetectorLookup = Callable[[str], "type[Detector]"]


def _default_detector_class(kind: str) -> type[Detector]:
    """``tripwire.core.kinds.detector_class``, imported only when a model is loaded."""
    from tripwire.core.kinds import detector_class

    return detector_class(kind)


def load_scorer(
    root: str | os.PathLike[str],
    ref: str,
    *,
    detector_class: DetectorLookup | None = None,
) -> Scorer:
    """Load the model version ``ref`` names and return its scorer.

    Parameters
    ----------
    root : path
        Registry directory.
    ref : str
        ``NAME`` (= ``NAME@production``), ``NAME@VERSION``, ``NAME@ALIAS`` or
        ``NAME@latest``. To follow an alias without racing its moves, read
        ``Registry.alias_version`` and load ``NAME@<that version>``.
    detector_class : callable, optional
        ``kind -> Detector subclass``; defaults to ``tripwire.core.kinds.detector_class``.

    Raises
    ------
    ModelLoadError
        With a precise ``problem``: unknown model/version/alias, half-written
        version, sha256 mismatch (naming the file), invalid or newer-schema
        manifest, unknown detector kind, detector files that fail to load, or a
        detector that does not accept the manifest's feature count.
    """
    reader = RegistryReader(root)
    label = ref
    try:
        with reader.open_version(ref) as opened, _private_dir() as private:
            name, version = opened.name, opened.version
            label = ref if ref == f"{name}@{version}" else f"{ref} (= {name}@{version})"
            manifest, problems = check_version(opened.fd, name, version, copy_to=private)
            if manifest is None:
                detail = "; ".join(f"{f}: {p}" if f else p for f, p in problems)
                raise ModelLoadError(label, f"{name}/{version}/ is not intact: {detail}")
            # the detector reads the private copy: exactly the bytes that were hashed
            detector = _build_detector(private, manifest["detector"], detector_class, label)
    except ModelLoadError:
        raise
    except RegistryError as e:
        raise ModelLoadError(label, str(e)) from None
    except OSError as e:  # permissions, I/O errors: the caller keeps its current model
        raise ModelLoadError(label, f"cannot load from registry {reader.root}: {e}") from e

    from tripwire.core.scorer import Scorer

    names = tuple(manifest["features"]["names"])
    _probe(detector, len(names), label)
    return Scorer(name, version, detector, float(manifest["threshold"]["value"]), names, manifest)


@contextmanager
def _private_dir() -> Iterator[Path]:
    """A fresh 0700 directory under ``$TMPDIR`` for the verified copies, removed after."""
    with tempfile.TemporaryDirectory(prefix="tripwire-load-") as path:
        yield Path(path)


def _build_detector(
    version_dir: Path, spec: dict[str, Any], lookup: DetectorLookup | None, label: str
) -> Detector:
    """Find the class for ``spec["kind"]`` and load the verified files with it."""
    kind = spec["kind"]
    try:
        cls = (lookup or _default_detector_class)(kind)
    except Exception as e:  # the lookup is pluggable; any failure means "unknown kind"
        why = f"unknown detector kind '{escaped(kind, 64)}': {escaped(str(e))}"
        raise ModelLoadError(label, why) from e
    try:
        return cls.load(version_dir, spec["params"], spec["state"])
    except Exception as e:  # a boundary: the worker must survive any broken model
        why = f"detector '{escaped(kind, 64)}' failed to load: {escaped(str(e))}"
        raise ModelLoadError(label, why) from e


def _probe(detector: Any, n_features: int, label: str) -> None:
    """Score one row of zeros: catches weights that disagree with the manifest's features."""
    import numpy as np

    try:
        scores, contributions = detector.score_and_explain(np.zeros((1, n_features), np.float32))
        shape = np.shape(scores)
        c_shape = None if contributions is None else np.shape(contributions)
    except Exception as e:  # a boundary: report, don't crash the caller
        raise ModelLoadError(
            label,
            f"detector cannot score rows of the manifest's {n_features} features "
            f"(feature count mismatch?): {escaped(str(e))}",
        ) from e
    if shape != (1,) or c_shape not in (None, (1, n_features)):
        raise ModelLoadError(
            label,
            f"feature count mismatch: manifest has {n_features} features but the detector "
            f"returned scores of shape {shape} and contributions of shape {c_shape}",
        )
