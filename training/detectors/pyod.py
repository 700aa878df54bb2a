"""Any PyOD detector by class name (kind ``pyod:<Name>``, e.g. ``pyod:IForest``).

Score = the PyOD model's ``decision_function`` (higher = more anomalous), made
independent of the batch a row arrives in:

* ECOD and COPOD score a batch by concatenating it to the training data and
  computing empirical CDFs (and the skewness sign) over training + *whole batch*
  (``pyod/models/ecod.py``, ``copod.py``), so a row's score depends on its
  neighbours in the batch. For them, scoring is re-implemented vectorised as
  "each row against training + that row alone": exactly what PyOD returns when
  it is given the row on its own, at batch speed. Their per-feature tail terms
  (which sum to the score) are returned as contributions, as in PyOD's own
  ``explain_outlier``.
* Every other model is probed at fit time: a probe set is scored as one batch,
  row by row, and inside a larger batch. If all agree, batches are scored
  directly; if only the row-by-row scores are reproducible, rows are scored one
  at a time (slow but exact); if even that fails, the detector is marked
  ``batch_independent = False`` and the stream worker refuses it. The outcome, a
  :class:`ScoringMode`, is recorded as ``state["scoring"]``. (The flag lives on a
  per-model subclass, so ``type(det).batch_independent`` and ``det.batch_independent``
  agree.)

Trust boundary: PyOD models can only be persisted with pickle, so ``save`` writes
``model.pkl`` and ``load`` unpickles it, which can execute code. ``load`` must only
be given a directory whose files the registry has already checked against the
sha256 values in the manifest (``tripwire.core.registry.load_scorer`` does this before
calling ``load``); whoever can write the manifest can run code in the worker, so
the registry directory must be writable by trusted publishers only. Torch
detectors (``ae``, ``vae``) have no such boundary: they load safetensors.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import logging
import pickle
import random
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pkl"

#: Models scored by :class:`_EmpiricalTails` instead of their decision_function.
ECDF_MODELS = ("ECOD", "COPOD")


class ScoringMode(StrEnum):
    """How a fitted PyOD model is scored (``state["scoring"]`` in the manifest)."""

    #: ECOD/COPOD: each row against training + that row alone (:class:`_EmpiricalTails`).
    ECDF = "ecdf"
    #: ``decision_function`` of the whole batch: a row's score does not depend on it.
    BATCH = "batch"
    #: ``decision_function`` of one row at a time: only that is reproducible.
    ROWWISE = "rowwise"
    #: Not even one row at a time is reproducible: the stream worker refuses it.
    BATCH_DEPENDENT = "batch-dependent"


def find_pyod_model(name: str) -> type:
    """The PyOD detector class called ``name``, found without importing every module.

    Raises
    ------
    DetectorError
        If no module of ``pyod.models`` defines such a detector, or importing it
        fails (e.g. an optional dependency of that model is missing).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise DetectorError(f"invalid PyOD model name {name!r}")
    spec = importlib.util.find_spec("pyod.models")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError("PyOD is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(package.glob("*.py"), key=lambda p: (p.stem != name.lower(), p.stem))
    pattern = re.compile(rf"^class {name}\b", re.MULTILINE)
    module_name = next((p.stem for p in files if pattern.search(p.read_text("utf-8"))), None)
    if module_name is None:
        raise DetectorError(f"unknown PyOD model {name!r} (no such class in pyod.models)")
    try:
        model_cls = getattr(importlib.import_module(f"pyod.models.{module_name}"), name)
    except ImportError as exc:
        raise DetectorError(f"PyOD model {name!r} cannot be imported: {exc}") from exc
    from pyod.models.base import BaseDetector

    if not (isinstance(model_cls, type) and issubclass(model_cls, BaseDetector)):
        raise DetectorError(f"pyod.models.{module_name}.{name} is not a PyOD detector")
    if inspect.isabstract(model_cls):
        raise DetectorError(f"pyod.models.{module_name}.{name} is an abstract base class")
    return model_cls


@functools.cache
def pyod_class(name: str) -> type[PyODDetector]:
    """The detector class of kind ``pyod:<name>`` (one subclass per PyOD model)."""
    model_cls = find_pyod_model(name)
    attrs = {"kind": f"pyod:{name}", "model_name": name, "model_cls": model_cls}
    return type(f"PyOD_{name}", (PyODDetector,), attrs)


@functools.cache
def _batch_dependent_variant(cls: type[PyODDetector]) -> type[PyODDetector]:
    if not cls.batch_independent:
        return cls
    return type(f"{cls.__name__}_BatchDependent", (cls,), {"batch_independent": False})


class PyODDetector(Detector):
    """Wraps one PyOD model class; build it with :func:`pyod_class` or ``make_detector``.

    Parameters
    ----------
    seed : int
        Passed as ``random_state`` when the PyOD model takes one (and none is given).
    **params
        Keyword arguments of the PyOD model's constructor (JSON-serialisable).
    """

    fitted_attribute: ClassVar[str] = "model_"
    model_name: ClassVar[str] = ""
    model_cls: ClassVar[type]

    def __init__(self, seed: int = 0, **params: Any) -> None:
        if not self.model_name:
            raise DetectorError("use pyod_class(name) or make_detector('pyod:<Name>')")
        self.seed = int(seed)
        self.params = dict(params)
        accepted = _init_params(self.model_cls)
        unknown = sorted(set(params) - accepted) if accepted is not None else []
        if unknown:
            raise DetectorError(
                f"{self.kind}: unknown parameter(s) {unknown}; accepted: {sorted(accepted or ())}"
            )
        try:
            json.dumps(self.params)
        except TypeError as exc:
            raise DetectorError(f"{self.kind}: parameters must be JSON values: {exc}") from exc

    def get_params(self) -> dict[str, Any]:
        """``seed`` and the PyOD model's own parameters (``**params``)."""
        return {**super().get_params(), **self.params}

    def fit(self, X: np.ndarray) -> Self:
        """Fit the PyOD model on ``X`` (n_samples, n_features) and pick a scoring mode."""
        X = _as_float64(X, self.kind)
        if X.shape[0] < 2 or not np.all(np.isfinite(X)):
            raise DetectorError(f"{self.kind}: need >= 2 finite rows, got shape {X.shape}")
        kwargs = dict(self.params)
        accepted = _init_params(self.model_cls)
        if "random_state" not in kwargs and (accepted is None or "random_state" in accepted):
            kwargs["random_state"] = self.seed
        with _global_rngs_restored():
            try:
                model = self.model_cls(**kwargs)
                model.fit(X)
            except (ValueError, TypeError) as exc:
                raise DetectorError(f"{self.kind}: fit failed: {exc}") from exc
            self.model_ = model
            self.n_features_ = X.shape[1]
            if self.model_name in ECDF_MODELS:
                self._set_mode(ScoringMode.ECDF)
            else:
                self._set_mode(_probe_mode(model, X, self.seed))
        return self

    def _set_mode(self, mode: ScoringMode) -> None:
        self.scoring_ = mode = ScoringMode(mode)
        if mode is ScoringMode.ECDF:
            self.tails_ = _EmpiricalTails(np.asarray(self.model_.X_train, dtype=np.float64))
        if mode is ScoringMode.BATCH_DEPENDENT:
            # This fitted model only: switch to a subclass that says so, so both
            # ``det.batch_independent`` and ``type(det).batch_independent`` are False.
            self.__class__ = _batch_dependent_variant(type(self))
            logger.warning(
                "%s: a row's score depends on the rest of its batch and scoring a row alone "
                "is not reproducible; the stream worker will refuse this model",
                self.kind,
            )

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (n,) float64, higher = more anomalous; contributions for ECOD/COPOD only."""
        self._check_fitted()
        X = _as_float64(X, self.kind)
        if X.shape[1] != self.n_features_:
            raise DetectorError(
                f"{self.kind}: expected an array of shape (n, {self.n_features_}), got {X.shape}"
            )
        if len(X) == 0:
            return np.empty(0), None
        if self.scoring_ is ScoringMode.ECDF:
            terms = self.tails_.outlier_terms(X, self.model_name)
            return terms.sum(axis=1), terms
        if self.scoring_ is ScoringMode.ROWWISE:
            return _score_rowwise(self.model_, X), None
        return np.asarray(self.model_.decision_function(X), dtype=np.float64).ravel(), None

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"n_features": self.n_features_, "scoring": self.scoring_.value}

    def save(self, directory: Path) -> list[str]:
        """Pickle the PyOD model to ``model.pkl`` (see the module docstring on trust)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / MODEL_FILE, "wb") as f:
            pickle.dump(self.model_, f, protocol=pickle.HIGHEST_PROTOCOL)
        return [MODEL_FILE]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Unpickle ``model.pkl``; only call on files whose sha256 was verified."""
        try:
            det = cls(**params)
        except TypeError as exc:
            raise DetectorError(f"{cls.kind}: invalid parameters {params}: {exc}") from exc
        path = Path(directory) / MODEL_FILE
        try:
            with open(path, "rb") as f:
                model = pickle.load(f)  # noqa: S301 - hash-verified by the registry first
            n_features, mode = int(state["n_features"]), str(state["scoring"])
        except Exception as exc:  # unpickling can raise almost anything
            raise DetectorError(f"{cls.kind}: cannot load {path}: {exc!r}") from exc
        if not isinstance(model, cls.model_cls):
            raise DetectorError(f"{cls.kind}: {path} holds a {type(model).__name__}")
        try:
            scoring = ScoringMode(mode)
        except ValueError:
            raise DetectorError(f"{cls.kind}: unknown scoring mode {mode!r}") from None
        det.model_, det.n_features_ = model, n_features
        det._set_mode(scoring)
        return det


@contextmanager
def _global_rngs_restored() -> Iterator[None]:
    """Undo global seeding inside PyOD (its deep models call ``np.random.seed`` & co.)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")  # only PyOD models that use torch import it
    torch_state = torch.random.get_rng_state() if torch is not None else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None:
            torch.random.set_rng_state(torch_state)


def _init_params(model_cls: type) -> set[str] | None:
    """Constructor parameter names, or None when it takes ``**kwargs``."""
    params = inspect.signature(model_cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _as_float64(X: np.ndarray, kind: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DetectorError(f"{kind}: expected a 2-d array, got shape {X.shape}")
    return X


def _score_rowwise(model: Any, X: np.ndarray) -> np.ndarray:
    return np.array([float(np.ravel(model.decision_function(row[None]))[0]) for row in X])


def _probe_mode(model: Any, X: np.ndarray, seed: int) -> ScoringMode:
    """``BATCH``, ``ROWWISE`` or ``BATCH_DEPENDENT`` for a fitted model.

    Scores a probe set (training rows and the same rows pushed 3 standard
    deviations off in random directions) as a batch, row by row, and at the end
    of a larger batch of other rows; scores agreeing to 1e-6 relative count as
    equal.
    """
    rng = np.random.default_rng(seed)
    rows = X[rng.choice(len(X), size=min(8, len(X)), replace=False)]
    spread = X.std(axis=0)
    probe = np.vstack([rows, rows + 3 * spread * rng.standard_normal(rows.shape)])
    context = X[rng.choice(len(X), size=64)] + spread * rng.standard_normal((64, X.shape[1]))

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        # float32 models differ by rounding between batch shapes; that is not dependence
        return bool(np.allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(a).max())))

    def batch(Z: np.ndarray) -> np.ndarray:
        return np.asarray(model.decision_function(Z), dtype=np.float64).ravel()

    try:
        alone = _score_rowwise(model, probe)
        again = _score_rowwise(model, probe)
    except Exception as exc:  # a model that cannot score one row at a time
        logger.warning("scoring single rows failed: %r", exc)
        return ScoringMode.BATCH_DEPENDENT
    if same(alone, batch(probe)) and same(alone, batch(np.vstack([context, probe]))[-len(probe) :]):
        return ScoringMode.BATCH
    return ScoringMode.ROWWISE if same(alone, again) else ScoringMode.BATCH_DEPENDENT


class _EmpiricalTails:
    """ECOD/COPOD tail probabilities of each row against training + that row alone.

    For column j with training values v (n of them) and a row value x, PyOD's
    ECDF over the n+1 values is ``F(x) = (#{v <= x} + 1) / (n + 1)`` and the
    right tail ``(#{v >= x} + 1) / (n + 1)``; the skewness sign is that of the
    third central moment of the n+1 values, updated from the training moments.
    """

    def __init__(self, X_train: np.ndarray) -> None:
        self.sorted_ = np.sort(X_train, axis=0)
        self.n_ = len(X_train)
        self.mean_ = X_train.mean(axis=0)
        dev = X_train - self.mean_
        self.m2_ = np.sum(dev**2, axis=0)
        self.m3_ = np.sum(dev**3, axis=0)

    def _skew_sign(self, X: np.ndarray) -> np.ndarray:
        n, n1 = self.n_, self.n_ + 1
        delta = X - self.mean_
        m2 = self.m2_ + delta**2 * n / n1
        m3 = self.m3_ + delta**3 * n * (n - 1) / n1**2 - 3 * delta * self.m2_ / n1
        mean = self.mean_ + delta / n1
        # scipy.stats.skew returns NaN (PyOD: 0) for a numerically constant column.
        zero = m2 / n1 <= (np.finfo(np.float64).eps * mean) ** 2
        return np.where(zero, 0.0, np.sign(m3))

    def outlier_terms(self, X: np.ndarray, model_name: str) -> np.ndarray:
        """Per-feature outlier terms (n, d), non-negative; their row sums are the scores."""
        le = np.empty(X.shape)
        ge = np.empty(X.shape)
        for j in range(X.shape[1]):
            col = self.sorted_[:, j]
            le[:, j] = np.searchsorted(col, X[:, j], side="right")
            ge[:, j] = self.n_ - np.searchsorted(col, X[:, j], side="left")
        u_l = -np.log((le + 1) / (self.n_ + 1))
        u_r = -np.log((ge + 1) / (self.n_ + 1))
        sign = self._skew_sign(X)
        u_skew = u_l * -np.sign(sign - 1) + u_r * np.sign(sign + 1)
        if model_name == "ECOD":
            return np.maximum(np.maximum(u_l, u_r), u_skew)
        return np.maximum(u_skew, (u_l + u_r) / 2)
