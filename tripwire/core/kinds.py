"""Detector kinds -> classes: how a saved model finds the class that loads it.

A kind is the name a detector is saved under (``"ae"``, ``"pyod:IForest"``).
Families of detectors register here, and the registry reader looks kinds up here,
without importing ``tripwire.training``: every module named in the
``tripwire.detectors`` entry-point group (pyproject.toml) is imported on the first
lookup, and registers its kinds when imported. Tripwire's own detectors are the
``builtin`` entry point, :mod:`tripwire.training.detectors`.

This registry is the one list of kinds: the CLI's help texts (:func:`described`),
the README's table (checked by ``tests/tripwire/test_docs.py``) and the detector
contract test (:func:`examples`) are all read from it.

>>> from tripwire.core.kinds import described, detector_class
>>> detector_class("vae").kind
'vae'
>>> described()
'ensemble, knn, ae, vae or pyod:<Name> (e.g. pyod:IForest)'
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib import metadata

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError

#: The detector ``tripwire train`` and ``tripwire demo`` fit unless told otherwise.
DEFAULT = "ensemble"
#: Entry-point group of the modules that register detector kinds.
ENTRY_POINT_GROUP = "tripwire.detectors"

#: kind -> (module, class name), imported when the kind is first looked up.
_KINDS: dict[str, tuple[str, str]] = {}
#: prefix (``"pyod:"``) -> (placeholder for help texts, resolver of the rest of the kind).
_FAMILIES: dict[str, tuple[str, Callable[[str], type[Detector]]]] = {}
#: prefix -> kinds of the family named as examples (help texts, the contract test).
_EXAMPLES: dict[str, tuple[str, ...]] = {}
_loaded = False
_lock = threading.RLock()


def register(kind: str, module: str, name: str) -> None:
    """Make ``kind`` load as class ``name`` of ``module`` (imported on first use)."""
    _KINDS[kind] = (module, name)


def register_family(
    prefix: str,
    placeholder: str,
    resolve: Callable[[str], type[Detector]],
    examples: tuple[str, ...] = (),
) -> None:
    """Kinds ``<prefix><rest>`` are ``resolve(rest)``; ``placeholder`` names them in help.

    ``examples`` are kinds of the family worth naming: the first in help texts, all
    of them where every kind is exercised (the detector contract test).
    """
    if not all(example.startswith(prefix) for example in examples):
        raise ValueError(f"examples of family {prefix!r} must start with it: {examples}")
    _FAMILIES[prefix] = (placeholder, resolve)
    _EXAMPLES[prefix] = examples


def kinds() -> tuple[str, ...]:
    """Every registered kind, families as their placeholder (``"pyod:<Name>"``)."""
    _load_entry_points()
    return (*_KINDS, *(placeholder for placeholder, _ in _FAMILIES.values()))


def examples() -> tuple[str, ...]:
    """Every registered kind, families as their examples (``"pyod:IForest"``, ...)."""
    _load_entry_points()
    return (*_KINDS, *(kind for members in _EXAMPLES.values() for kind in members))


def described() -> str:
    """The kinds for a help text: ``"ensemble, knn, ... or pyod:<Name> (e.g. pyod:IForest)"``."""
    *most, last = kinds()
    text = f"{', '.join(most)} or {last}" if most else last
    named = [members[0] for members in _EXAMPLES.values() if members]
    return f"{text} (e.g. {', '.join(named)})" if named else text


def detector_class(kind: str) -> type[Detector]:
    """The class for ``kind`` (``"ae"``, ``"vae"``, ``"pyod:IForest"``, ...).

    Raises
    ------
    DetectorError
        For an unknown kind, or one its family cannot resolve.
    """
    _load_entry_points()
    kind = kind.strip()
    for prefix, (_, resolve) in _FAMILIES.items():
        if kind.startswith(prefix):
            return resolve(kind.removeprefix(prefix))
    if kind not in _KINDS:
        raise DetectorError(f"unknown detector {kind!r}; choose one of {', '.join(kinds())}")
    module, name = _KINDS[kind]
    cls: type[Detector] = getattr(importlib.import_module(module), name)
    return cls


def _load_entry_points() -> None:
    """Import every module of the entry-point group, once per process."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            entry_point.load()
        _loaded = True
