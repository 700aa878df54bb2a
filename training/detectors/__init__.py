"""Tripwire's detectors by kind; ``ensemble`` is the default.

``make_detector(spec, **params)`` builds an unfitted detector from its CLI name;
``detector_class(kind)`` (:mod:`tripwire.core.kinds`) finds the class that loads a
saved one. Importing this package registers the kinds of ``_BUILTIN`` (and the
``pyod:<Name>`` family) there; to add a detector, write its module here and add one
line to ``_BUILTIN``: help texts, the README check and the contract test follow the
registry. Implementations (and with them torch or PyOD) are imported only when a
kind is looked up, so importing this package stays cheap.

>>> kinds.kinds()
('ensemble', 'knn', 'ae', 'vae', 'pyod:<Name>')
>>> make_detector("ae", seed=1, epochs=5).get_params()["epochs"]
5
>>> detector_class("vae").kind
'vae'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tripwire.core import kinds
from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.core.kinds import detector_class

__all__ = ["Detector", "DetectorError", "detector_class", "make_detector"]

#: Built-in kinds -> (module, class). ``pyod:<Name>`` is resolved separately.
_BUILTIN = {
    "ensemble": ("tripwire.training.detectors.ensemble", "KNNEnsemble"),
    "knn": ("tripwire.training.detectors.knn", "KNN"),
    "ae": ("tripwire.training.detectors.ae", "AutoEncoder"),
    "vae": ("tripwire.training.detectors.vae", "VAE"),
}
#: PyOD models named in help texts and run by the detector contract test: two
#: rewritten to score rows alone (ECOD, COPOD) and three probed at fit time.
_PYOD_EXAMPLES = ("pyod:IForest", "pyod:ECOD", "pyod:COPOD", "pyod:KNN", "pyod:HBOS")


def _pyod_class(name: str) -> type[Detector]:
    from tripwire.training.detectors.pyod import pyod_class

    return pyod_class(name)


# Importing this package registers the built-in kinds with tripwire.core.kinds (it is
# the `builtin` entry point of the `tripwire.detectors` group, so the registry reader
# finds them without importing training).
kinds.register_family("pyod:", "pyod:<Name>", _pyod_class, _PYOD_EXAMPLES)
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
    names, open_ended = cls.param_names()
    accepted = set(names) - {"seed"}
    unknown = [] if open_ended else sorted(set(params) - accepted)  # a wrapper checks its own
    if unknown:
        raise DetectorError(
            f"{cls.kind}: unknown parameter(s) {unknown}; accepted: {sorted(accepted)}"
        )
    factory: Callable[..., Detector] = cls  # concrete classes all take ``seed``
    try:
        return factory(seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{cls.kind}: invalid parameters {params}: {exc}") from exc
