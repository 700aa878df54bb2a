"""k-nearest-neighbour distance detector (kind ``knn``).

The score of a row is its mean Euclidean distance to its ``k`` nearest rows of a
*reference set*: the training rows, or a seeded uniform sample of at most
``max_reference`` of them so that scoring a micro-batch stays fast however much
data the model was trained on. Distances are taken after an affine transform
fitted on all training rows: ``scaling="standard"`` standardises every feature
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
reference rows (each against the other reference rows), ``reference_scores_``:
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

from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.training.detectors.neighbours import NeighbourIndex, nearest
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

    Contributions of feature j: the squared difference (in the scaled space)
    between the row and its ``k`` neighbours in that feature, averaged over the
    neighbours; non-negative, they sum to the mean squared neighbour distance.
    """

    kind: ClassVar[str] = "knn"
    fitted_attribute: ClassVar[str] = "reference_z_"

    def __init__(
        self, seed: int = 0, k: int = 5, scaling: str = "standard", max_reference: int = 10_000
    ) -> None:
        self.seed = int(seed)
        self.k = int(k)
        self.scaling = str(scaling)
        self.max_reference = int(max_reference)
        if self.k < 1 or self.max_reference < 2:
            raise DetectorError(f"{self.kind}: k must be >= 1 and max_reference >= 2")
        if self.scaling not in SCALINGS:
            raise DetectorError(f"{self.kind}: scaling must be one of {', '.join(SCALINGS)}")

    def fit(self, X: np.ndarray) -> Self:
        """Keep (a sample of) the rows ``X`` (n_samples, n_features), assumed normal."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise DetectorError(f"{self.kind}: need at least 2 rows of features, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise DetectorError(f"{self.kind}: training data contains NaN or inf")
        scaler = Standardizer().fit(X)
        if self.scaling == "none":
            scaler.scale_ = np.ones_like(scaler.scale_)
        self._set_reference(reference_sample(X, self.max_reference, self.seed), scaler)
        self.reference_scores_ = self._scores(self.reference_z_, skip_self=True)[0]
        return self

    def _set_reference(self, reference: np.ndarray, scaler: Standardizer) -> None:
        self.scaler_ = scaler
        self.reference_ = reference
        self.reference_z_ = self._transform(reference)
        self.index_ = NeighbourIndex(self.reference_z_)
        self.k_ = min(self.k, len(reference) - 1)
        self.n_features_ = reference.shape[1]

    def _transform(self, X: np.ndarray) -> np.ndarray:
        mean = self.scaler_.mean_.astype(np.float64)
        return (np.asarray(X, dtype=np.float64) - mean) / self.scaler_.scale_.astype(np.float64)

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
        scores = np.full(len(Z), np.nan)
        contrib = np.full(Z.shape, np.nan)
        if ok.any():
            scores[ok], contrib[ok] = self._scores(Z[ok])
        return scores, contrib

    def held_out_scores(self) -> np.ndarray | None:
        """The leave-one-out scores of the reference rows (``reference_scores_``)."""
        return getattr(self, "reference_scores_", None)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "n_features": self.n_features_,
            "n_reference": len(self.reference_),
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
        self._set_reference(reference, scaler)


def reference_sample(X: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """``X`` itself, or ``max_rows`` of its rows drawn without replacement (in row order)."""
    if len(X) <= max_rows:
        return np.ascontiguousarray(X)
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
    return np.ascontiguousarray(X[rows])


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
