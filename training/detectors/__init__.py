"""Detectors by kind: ``ensemble`` (the default), ``knn``, ``ae``, ``vae`` and ``pyod:<Name>``.

``make_detector(spec, **params)`` builds an unfitted detector from its CLI name;
``detector_class(kind)`` finds the class that loads a saved one. Implementations
(and with them torch or PyOD) are imported only when a kind is looked up, so
importing this package stays cheap.

>>> make_detector("ae", seed=1, epochs=5).get_params()["epochs"]
5
>>> detector_class("vae").kind
'vae'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from training.detectors.base import Detector
from training.errors import DetectorError

__all__ = ["Detector", "DetectorError", "KINDS", "detector_class", "make_detector"]

#: Built-in kinds -> (module, class). ``pyod:<Name>`` is resolved separately.
_BUILTIN = {
    "ensemble": ("training.detectors.ensemble", "KNNEnsemble"),
    "knn": ("training.detectors.knn", "KNN"),
    "ae": ("training.detectors.ae", "AutoEncoder"),
    "vae": ("training.detectors.vae", "VAE"),
}
#: Every kind the CLI accepts, for help texts.
KINDS = (*_BUILTIN, "pyod:<Name>")


def detector_class(kind: str) -> type[Detector]:
    """The class for ``kind`` (``"ae"``, ``"vae"``, ``"pyod:IForest"``, ...).

    Raises
    ------
    DetectorError
        For an unknown kind or an unknown/unimportable PyOD model.
    """
    kind = kind.strip()
    if kind.startswith("pyod:"):
        from training.detectors.pyod import pyod_class

        return pyod_class(kind.removeprefix("pyod:"))
    if kind not in _BUILTIN:
        raise DetectorError(f"unknown detector {kind!r}; choose one of {', '.join(KINDS)}")
    module, name = _BUILTIN[kind]
    cls: type[Detector] = getattr(importlib.import_module(module), name)
    return cls


def make_detector(spec: str, seed: int = 0, **params: Any) -> Detector:
    """An unfitted detector of kind ``spec`` with hyperparameters ``params``.

    Raises
    ------
    DetectorError
        For an unknown kind, unknown parameter names or invalid values.
    """
    cls = detector_class(spec)
    accepted = _accepted_params(cls)
    unknown = sorted(set(params) - accepted) if accepted is not None else []
    if unknown:
        raise DetectorError(
            f"{cls.kind}: unknown parameter(s) {unknown}; accepted: {sorted(accepted or ())}"
        )
    factory: Callable[..., Detector] = cls  # concrete classes all take ``seed``
    try:
        return factory(seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{cls.kind}: invalid parameters {params}: {exc}") from exc


def _accepted_params(cls: type[Detector]) -> set[str] | None:
    """Keyword names ``cls`` accepts, following ``**kwargs`` up the MRO; None = any."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self", "seed"}
        if klass.__module__ == "training.detectors.pyod":
            return None  # the PyOD wrapper checks against the PyOD model itself
    return names - {"self", "seed"}
