"""The detectors a quality benchmark can run, behind one fit/score interface.

Two families share a run:

* **Tripwire** detectors, built with ``tripwire.training.detectors.make_detector(spec,
  seed=seed)`` from any spec it accepts (``ae``, ``vae``, ``pyod:IForest``, ...).
  They are fitted and scored on float32 rows, as ``tripwire.core.scorer.Scorer`` does.
* **PyOD baselines**, named by their PyOD class (``AutoEncoder``, ``VAE``,
  ``IForest``, ``ECOD``, ``KNN``, ``LOF``, ``HBOS``, ``COPOD``) and used directly
  with PyOD's default settings (only ``random_state`` and ``verbose`` set);
  score = ``decision_function`` on float64 rows. Their ``contamination`` is left at
  the default: the benchmark sets its own threshold.

A name is a baseline when it is one of ``BASELINES``; anything else goes to
``make_detector``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tripwire.core.errors import ConfigError


class BenchDetector(Protocol):
    """What the benchmark needs from a detector: ``fit``, then what ``tripwire train``'s
    calibration (``tripwire.training.pipeline.calibration_data``) calls."""

    def fit(self, X: np.ndarray) -> Any:
        """Learn from normal rows of shape (n, d)."""

    def score(self, X: np.ndarray) -> np.ndarray:
        """One score per row, shape (n,); higher = more anomalous."""

    def held_out_scores(self) -> np.ndarray | None:
        """Out-of-sample scores of the training rows (``Detector.held_out_scores``)."""


@dataclass(frozen=True)
class Baseline:
    """How to build one PyOD baseline.

    Attributes
    ----------
    module, cls : str
        ``pyod.models.<module>.<cls>``.
    seeded : bool
        The class takes ``random_state``.
    deep : bool
        A torch model (takes ``verbose``; PyOD prints progress bars otherwise).
    """

    module: str
    cls: str
    seeded: bool = False
    deep: bool = False


BASELINES: dict[str, Baseline] = {
    "AutoEncoder": Baseline("auto_encoder", "AutoEncoder", seeded=True, deep=True),
    "VAE": Baseline("vae", "VAE", seeded=True, deep=True),
    "IForest": Baseline("iforest", "IForest", seeded=True),
    "ECOD": Baseline("ecod", "ECOD"),
    "KNN": Baseline("knn", "KNN"),
    "LOF": Baseline("lof", "LOF"),
    "HBOS": Baseline("hbos", "HBOS"),
    "COPOD": Baseline("copod", "COPOD"),
}

#: What ``tripwire bench quality`` runs without ``--detectors``.
DEFAULT_DETECTORS: tuple[str, ...] = ("ensemble", "ae", "vae", *BASELINES)


class PyodBaseline:
    """A PyOD detector used as shipped; ``score`` is its ``decision_function``.

    Parameters
    ----------
    model : object
        An unfitted PyOD detector.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, X: np.ndarray) -> PyodBaseline:
        self.model.fit(np.asarray(X, dtype=np.float64))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """PyOD's raw outlier score per row, shape (n,); higher = more anomalous."""
        return np.asarray(self.model.decision_function(np.asarray(X, dtype=np.float64)))

    def held_out_scores(self) -> None:
        """None: PyOD's training-row scores are in-sample, so only the held-out split
        calibrates a baseline."""
        return None


class Float32Detector:
    """A Tripwire detector fed float32 rows, as ``tripwire train`` loads them and
    ``Scorer.score`` feeds them."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def fit(self, X: np.ndarray) -> Float32Detector:
        self.detector.fit(np.asarray(X, dtype=np.float32))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """The detector's score per row, shape (n,); higher = more anomalous."""
        return np.asarray(self.detector.score(np.asarray(X, dtype=np.float32)))

    def held_out_scores(self) -> np.ndarray | None:
        """The detector's own (e.g. the kNN's leave-one-out scores), or None."""
        held_out: np.ndarray | None = self.detector.held_out_scores()
        return held_out


def is_baseline(name: str) -> bool:
    return name in BASELINES


def default_model() -> str:
    """The detector ``tripwire train`` uses without ``--model``."""
    from tripwire.training.settings import TrainSettings

    return str(next(f.default for f in dataclasses.fields(TrainSettings) if f.name == "model"))


def label(name: str) -> str:
    """Table label: ``"VAE (PyOD)"``, ``"vae (Tripwire)"``, ``"ae (Tripwire, default)"``."""
    if is_baseline(name):
        return f"{name} (PyOD)"
    return f"{name} (Tripwire, default)" if name == default_model() else f"{name} (Tripwire)"


def _baseline(name: str, seed: int) -> BenchDetector:
    spec = BASELINES[name]
    cls = getattr(importlib.import_module(f"pyod.models.{spec.module}"), spec.cls)
    kwargs: dict[str, Any] = {}
    if spec.seeded:
        kwargs["random_state"] = seed
    if spec.deep:
        kwargs["verbose"] = 0
    return PyodBaseline(cls(**kwargs))


def _tripwire(name: str, seed: int) -> BenchDetector:
    try:
        from tripwire.training.detectors import make_detector
    except ImportError as e:
        raise ConfigError(
            f"detector {name!r}: tripwire.training.detectors.make_detector: {e}"
        ) from e
    return Float32Detector(make_detector(name, seed=seed))


def build(name: str, seed: int) -> BenchDetector:
    """An unfitted detector for a benchmark name.

    Raises
    ------
    ConfigError
        Tripwire cannot build ``name`` (unknown kind, ``make_detector`` missing).
    """
    return _baseline(name, seed) if is_baseline(name) else _tripwire(name, seed)


#: Factory signature, so tests and callers can inject detectors.
Factory = Callable[[str, int], BenchDetector]
