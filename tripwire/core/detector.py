"""The detector contract every model in Tripwire implements.

A detector is one class: ``__init__`` stores hyperparameters only, ``fit(X)`` learns
from normal rows and returns ``self`` (fitted attributes end in ``_``), and
``score(X)`` returns one float per row, **higher = more anomalous**. The
anomaly/normal decision is not the detector's: a threshold object sits beside it
(see ``tripwire.training.thresholds``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from tripwire.core.errors import DetectorError


class Detector(ABC):
    """Base class for all detectors.

    Subclasses set ``kind`` (the registry/CLI name, e.g. ``"ae"``) and
    ``fitted_attribute``, and implement ``fit``, ``score_and_explain``, ``save`` and
    ``load``. The base class owns the rest, as scikit-learn's and PyOD's do:
    :meth:`get_params` reads the hyperparameters named by ``__init__`` back from the
    attributes ``__init__`` stores them in, and :meth:`_check_fitted` refuses an
    unfitted detector.

    >>> import numpy as np
    >>> class Mean(Detector):
    ...     kind, fitted_attribute = "mean", "mean_"
    ...     def __init__(self, seed: int = 0, scale: float = 1.0) -> None:
    ...         self.seed, self.scale = seed, scale
    ...     def fit(self, X): self.mean_ = X.mean(axis=0); return self
    ...     def score_and_explain(self, X):
    ...         self._check_fitted()
    ...         return self.scale * ((X - self.mean_) ** 2).sum(axis=1), None
    ...     def save(self, directory): return []
    ...     @classmethod
    ...     def load(cls, directory, params, state): return cls(**params)
    >>> Mean(scale=2.0).get_params()
    {'seed': 0, 'scale': 2.0}
    >>> Mean().score(np.zeros((1, 2)))
    Traceback (most recent call last):
    ...
    tripwire.core.errors.DetectorError: mean: detector is not fitted
    """

    kind: ClassVar[str] = ""
    #: The attribute ``fit`` sets (last) and ``load`` restores: absent = not fitted.
    fitted_attribute: ClassVar[str] = ""
    #: False for detectors whose score of a row depends on the other rows of the
    #: batch; the stream worker refuses those.
    batch_independent: ClassVar[bool] = True

    @classmethod
    def param_names(cls) -> tuple[tuple[str, ...], bool]:
        """The hyperparameters ``__init__`` names, and whether it takes any others.

        ``__init__`` is followed up the MRO while it passes ``**kwargs`` on (a
        subclass adding parameters to its base's), base classes' names first. The
        second item is True when the chain ends in ``**kwargs`` itself (a wrapper
        whose parameters are another library's).
        """
        chain: list[list[str]] = []
        open_ended = False
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if klass is object or init is None:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]  # not self
            chain.append([p.name for p in params if p.kind in _NAMED])
            open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
            if not open_ended:
                break
        names = dict.fromkeys(name for names in reversed(chain) for name in names)
        return tuple(names), open_ended

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as JSON-serialisable values (recorded in the manifest).

        Each parameter :meth:`param_names` lists, read from the attribute of the
        same name (tuples as lists, as JSON has them); ``load`` passes them back
        to ``__init__``. A detector taking parameters it does not name (``**kwargs``
        at the end of the chain) adds them by overriding this method.
        """
        names, _ = self.param_names()
        return {name: _json_value(getattr(self, name)) for name in names}

    def _check_fitted(self) -> None:
        """Raise :class:`DetectorError` unless ``fit`` (or ``load``) has run."""
        if not hasattr(self, self.fitted_attribute):
            raise DetectorError(f"{self.kind}: detector is not fitted")

    @abstractmethod
    def fit(self, X: np.ndarray) -> Self:
        """Learn normal behaviour from ``X`` of shape (n_samples, n_features)."""

    @abstractmethod
    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Score rows and say which features drove each score.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Anomaly scores; higher = more anomalous.
        contributions : ndarray of shape (n_samples, n_features) or None
            Non-negative per-feature contribution to each score, or ``None`` when
            the detector cannot attribute its score to features.
        """

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row, shape (n_samples,); higher = more anomalous."""
        scores, _ = self.score_and_explain(X)
        return scores

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the fitted state into ``directory``; return the file names written."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Rebuild a fitted detector from files in ``directory``.

        ``params`` are the hyperparameters from ``get_params``; ``state`` is the
        JSON-serialisable dict returned by ``get_state`` (recorded in the manifest).
        Loading must never execute code from the registry (no unverified pickle).
        """

    def get_state(self) -> dict[str, Any]:
        """Small fitted state that belongs in the manifest (e.g. feature count)."""
        return {}

    def held_out_scores(self) -> np.ndarray | None:
        """Scores (n,) of training rows, each computed without that row, or ``None``.

        Out-of-sample scores of normal rows (e.g. leave-one-out), exchangeable with
        the scores of new normal rows, that threshold calibration may pool with the
        held-out split. Only right after ``fit``; ``None`` when the detector has none.
        """
        return None


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _json_value(value: Any) -> Any:
    """``value`` as JSON will read it back: a tuple as a list, a list copied."""
    return list(value) if isinstance(value, (tuple, list)) else value
