"""Detectors by kind: ``ensemble`` (the default), ``knn``, ``ae``, ``vae`` and ``pyod:<Name>``.

``make_detector(spec, **params)`` builds an unfitted detector from its CLI name;
``detector_class(kind)`` (:mod:`tripwire.core.kinds`) finds the class that loads a
saved one. Importing this package registers the kinds of ``_BUILTIN`` there; to add
a detector, write its module here and add one line to ``_BUILTIN``. Implementations
(and with them torch or PyOD) are imported only when a kind is looked up, so
importing this package stays cheap.

>>> make_detector("ae", seed=1, epochs=5).get_params()["epochs"]
5
>>> detector_class("vae").kind
'vae'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from tripwire.core import kinds
from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.core.kinds import detector_class

__all__ = ["Detector", "DetectorError", "KINDS", "detector_class", "make_detector"]

#: Built-in kinds -> (module, class). ``pyod:<Name>`` is resolved separately.
_BUILTIN = {
    "ensemble": ("tripwire.training.detectors.ensemble", "KNNEnsemble"),
    "knn": ("tripwire.training.detectors.knn", "KNN"),
    "ae": ("tripwire.training.detectors.ae", "AutoEncoder"),
    "vae": ("tripwire.training.detectors.vae", "VAE"),
}
#: Every kind the CLI accepts, for help texts.
KINDS = (*_BUILTIN, "pyod:<Name>")


def _pyod_class(name: str) -> type[Detector]:
    from tripwire.training.detectors.pyod import pyod_class

    return pyod_class(name)


# Importing this package registers the built-in kinds with tripwire.core.kinds (it is
# the `builtin` entry point of the `tripwire.detectors` group, so the registry reader
# finds them without importing training).
kinds.register_family("pyod:", "pyod:<Name>", _pyod_class)
for _kind, (_module, _name) in _BUILTIN.items():
    kinds.register(_kind, _module, _name)


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
        if klass.__module__ == "tripwire.training.detectors.pyod":
            return None  # the PyOD wrapper checks against the PyOD model itself
    return names - {"self", "seed"}
