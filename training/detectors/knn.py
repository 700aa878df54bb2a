"""k-nearest-neighbour distance detector (kind ``knn``).

The score of a row is its mean Euclidean distance to its ``k`` nearest rows of a
*reference set*: the training rows, or at most ``max_reference`` of them so that
scoring a micro-batch stays fast however much data the model was trained on: a
seeded uniform sample (``reference="uniform"``, the default) or a density-biased
one (``"sparse"``, see :mod:`~tripwire.training.detectors.reference`); with
``scale_k`` a reduced reference averages proportionally fewer neighbours.
Distances are taken after an affine transform fitted on all training rows:
``scaling="standard"`` standardises every feature
(:class:`~tripwire.training.detectors.scaling.Standardizer`), ``scaling="none"`` only
centres the data (distances in the original units).

Exact and batch-independent (:mod:`~tripwire.training.detectors.neighbours`):
candidates are proposed by one float32 matrix product per chunk of rows (bf16
where the CPU multiplies bf16 natively and it certifies the reference rows; its
rounding depends on the chunk's shape), their distances recomputed in float64
from the coordinate differences of each row on its own, and a rounding-error
bound certifies that no other reference row can be nearer (else the row is
searched exactly), so a row's score and contributions never depend on the rest
of its batch.

At fit time the detector also computes the leave-one-out scores of the
reference rows (each against the other reference rows), ``reference_scores_``
(with ``reference="sparse"``: the scores of held-out training rows instead):
scores of normal rows the search has not seen, exchangeable with those of new
normal rows, which :class:`~tripwire.training.detectors.ensemble.KNNEnsemble` uses to put
members on a common scale without holding data out.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(300, 4)).astype("float32")
>>> det = KNN(k=5).fit(X)
>>> bool(det.score(np.array([[8.0, 0, 0, 0]], "float32"))[0] > det.score(X[:1])[0])
True
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.training.detectors.neighbours import NeighbourIndex, nearest
from tripwire.training.detectors.reference import Selection, check_method, select
from tripwire.training.detectors.scaling import Standardizer

REFERENCE_FILE = "reference.safetensors"
SCALINGS = ("standard", "none")

D = TypeVar("D", bound=Detector)


class KNN(Detector):
    """Mean distance to the ``k`` nearest reference rows; higher = more anomalous.

    Parameters
    ----------
    seed : int
        Seeds the choice of reference rows when the data has more than
        ``max_reference`` rows.
    k : int
        Neighbours averaged (PyOD's ``KNN`` default is 5 too).
    scaling : {"standard", "none"}
        Standardise features before measuring distances, or only centre them.
    max_reference : int
        Largest reference set kept; scoring costs O(max_reference * d) per row.
    reference : {"uniform", "sparse"}
        How the reference rows are chosen from more than ``max_reference``
        (:mod:`~tripwire.training.detectors.reference`): a uniform sample
        (calibrated by its leave-one-out scores) or a density-biased one keeping
        sparse rows more often (calibrated on held-out training rows).
    scale_k : bool
        With a reduced reference (m of n training rows), average
        ``max(1, round(k * m / n))`` neighbours instead of ``k``: the same share
        of the data as ``k`` of all rows.

    Contributions of feature j: the squared difference (in the scaled space)
    between the row and its ``k`` neighbours in that feature, averaged over the
    neighbours; non-negative, they sum to the mean squared neighbour distance.
    """

    kind: ClassVar[str] = "knn"
    fitted_attribute: ClassVar[str] = "reference_z_"

    def __init__(
        self,
        seed: int = 0,
        k: int = 5,
        scaling: str = "standard",
        max_reference: int = 10_000,
        reference: str = "uniform",
        scale_k: bool = False,
    ) -> None:
        self.seed = int(seed)
        self.k = int(k)
        self.scaling = str(scaling)
        self.max_reference = int(max_reference)
        self.reference = check_method(str(reference), self.kind)
        if not isinstance(scale_k, bool):
            raise DetectorError(f"{self.kind}: scale_k must be true or false, got {scale_k!r}")
        self.scale_k = scale_k
        if self.k < 1 or self.max_reference < 2:
            raise DetectorError(f"{self.kind}: k must be >= 1 and max_reference >= 2")
        if self.scaling not in SCALINGS:
            raise DetectorError(f"{self.kind}: scaling must be one of {', '.join(SCALINGS)}")

    def fit(self, X: np.ndarray) -> Self:
        """Keep (a sample of) the rows ``X`` (n_samples, n_features), assumed normal."""
        X = training_rows(X, self.kind)
        scaler = self.fit_scaler(X)
        space = partial(transform, scaler=scaler)
        chosen = select(X, self.max_reference, self.seed, self.reference, [space], self.k)
        return self.fit_selection(X, scaler, chosen)

    def fit_scaler(self, X: np.ndarray) -> Standardizer:
        """The affine map of this member's space, fitted on all training rows."""
        scaler = Standardizer().fit(X)
        if self.scaling == "none":
            scaler.scale_ = np.ones_like(scaler.scale_)
        return scaler

    def fit_selection(self, X: np.ndarray, scaler: Standardizer, chosen: Selection) -> Self:
        """Keep the rows ``chosen.reference`` of ``X`` and score the calibration rows."""
        m = len(chosen.reference)
        k = min(self.k, m - 1)
        if self.scale_k and m < len(X):
            k = min(max(1, round(self.k * m / len(X))), k)
        self._set_reference(np.ascontiguousarray(X[chosen.reference]), scaler, k)
        if chosen.held_out is None:
            self.reference_scores_ = self._scores(self.reference_z_, skip_self=True)[0]
        else:
            self.reference_scores_ = self._scores(self._transform(X[chosen.held_out]))[0]
        return self

    def _set_reference(self, reference: np.ndarray, scaler: Standardizer, k: int) -> None:
        self.scaler_ = scaler
        self.reference_ = reference
        self.reference_z_ = self._transform(reference)
        self.index_ = NeighbourIndex(self.reference_z_)
        self.k_ = k
        self.n_features_ = reference.shape[1]

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return transform(X, self.scaler_)

    def _scores(self, Z: np.ndarray, skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        dist, sq_diff = nearest(Z, self.index_, self.k_, skip_self=skip_self)
        return dist.mean(axis=1), sq_diff

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (n,) float64, higher = more anomalous, and contributions (n, d).

        Rows holding NaN or inf get NaN scores and contributions.
        """
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise DetectorError(
                f"{self.kind}: expected an array of shape (n, {self.n_features_}), got {X.shape}"
            )
        Z = self._transform(X)
        ok = np.isfinite(Z).all(axis=1)
        if ok.all():  # the usual batch: no copies in and out of the finite rows
            return self._scores(Z)
        scores = np.full(len(Z), np.nan)
        contrib = np.full(Z.shape, np.nan)
        if ok.any():
            scores[ok], contrib[ok] = self._scores(Z[ok])
        return scores, contrib

    def held_out_scores(self) -> np.ndarray | None:
        """Scores of normal rows the search has not seen (``reference_scores_``): the
        leave-one-out scores of the reference rows, or (``reference="sparse"``) the
        scores of the held-out training rows."""
        return getattr(self, "reference_scores_", None)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "n_features": self.n_features_,
            "n_reference": len(self.reference_),
            "k": self.k_,
            "scaler": self.scaler_.to_dict(),
        }

    def save(self, directory: Path) -> list[str]:
        """Write the reference rows to ``reference.safetensors`` (no pickle)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"reference": self.reference_}, str(directory / REFERENCE_FILE))
        return [REFERENCE_FILE]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Rebuild from ``reference.safetensors`` and the manifest's params/state."""
        det = build(cls, params)
        arrays = read_arrays(Path(directory) / REFERENCE_FILE, cls.kind)
        det.restore(arrays["reference"] if "reference" in arrays else None, state)
        return det

    def restore(self, reference: np.ndarray | None, state: dict[str, Any]) -> None:
        """Set the fitted state from saved reference rows and ``get_state()`` output."""
        try:
            scaler = Standardizer.from_dict(state["scaler"])
            n_features, n_reference = int(state["n_features"]), int(state["n_reference"])
            k = int(state.get("k", min(self.k, n_reference - 1)))  # older manifests: no "k"
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"{self.kind}: invalid detector state: {exc!r}") from exc
        expected = (n_reference, n_features)
        if reference is None or reference.shape != expected or reference.dtype != np.float32:
            got = None if reference is None else (reference.shape, reference.dtype)
            raise DetectorError(f"{self.kind}: reference rows {got} != {expected} float32")
        if scaler.mean_.shape != (n_features,) or n_reference < 2:
            raise DetectorError(f"{self.kind}: state does not match {n_features} features")
        if not np.all(np.isfinite(reference)):
            raise DetectorError(f"{self.kind}: reference rows hold NaN or inf")
        if not 1 <= k <= min(self.k, n_reference - 1):
            raise DetectorError(f"{self.kind}: state k={k} not in 1..min(k, n_reference - 1)")
        self._set_reference(reference, scaler, k)


def training_rows(X: np.ndarray, kind: str) -> np.ndarray:
    """``X`` as float32 (n, d), or DetectorError unless it has >= 2 finite rows."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise DetectorError(f"{kind}: need at least 2 rows of features, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DetectorError(f"{kind}: training data contains NaN or inf")
    return X


def transform(X: np.ndarray, scaler: Standardizer) -> np.ndarray:
    """Rows of ``X`` in the space of ``scaler``, float64."""
    Z = np.subtract(X, scaler.mean_.astype(np.float64), dtype=np.float64)
    Z /= scaler.scale_.astype(np.float64)  # the same bits as (X - mean) / scale in float64
    return Z


def read_arrays(path: Path, kind: str) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file (never unpickles), or DetectorError."""
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for bad files
        raise DetectorError(f"{kind}: cannot load {path}: {exc}") from exc


def build(cls: type[D], params: dict[str, Any]) -> D:
    """``cls(**params)`` with bad parameters turned into DetectorError."""
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{cls.kind}: invalid parameters {params}: {exc}") from exc
