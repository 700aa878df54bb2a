"""k-nearest-neighbour distance detector (kind ``knn``).

The score of a row is its mean Euclidean distance to its ``k`` nearest rows of a
*reference set*: the training rows, or a seeded uniform sample of at most
``max_reference`` of them so that scoring a micro-batch stays fast however much
data the model was trained on. Distances are taken after an affine transform
fitted on all training rows: ``scaling="standard"`` standardises every feature
(:class:`~tripwire.training.detectors.scaling.Standardizer`), ``scaling="none"`` only
centres the data (distances in the original units).

Exact and batch-independent: candidates are found with a k-d tree (few
features) or one matrix product per chunk of rows (whose rounding depends on
the chunk's shape), and the distances of the ``k + CANDIDATE_MARGIN`` best
candidates are then recomputed from the coordinate differences of each row on
its own, so a row's score and contributions never depend on the rest of its
batch.

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
from tripwire.training.detectors.scaling import Standardizer

REFERENCE_FILE = "reference.safetensors"
SCALINGS = ("standard", "none")
#: Extra candidates whose distances are recomputed exactly (see the module docstring).
CANDIDATE_MARGIN = 8
#: Upper bound on float64 values held per chunk in the exact recomputation.
_CHUNK_VALUES = 1 << 22
#: Up to this many features neighbours are searched with a k-d tree.
KD_TREE_MAX_FEATURES = 12

D = TypeVar("D", bound=Detector)


class NeighbourIndex:
    """Finds candidate neighbours among reference rows ``R`` (m, d), float64.

    A k-d tree (``sklearn.neighbors.KDTree``) for up to ``KD_TREE_MAX_FEATURES``
    features, where it beats brute force; one matrix product per chunk of rows
    above that. Either way each row's candidates are found on their own.
    """

    def __init__(self, R: np.ndarray) -> None:
        self.R = R
        self.tree: Any = None
        if R.shape[1] <= KD_TREE_MAX_FEATURES:
            from sklearn.neighbors import KDTree

            self.tree = KDTree(R)
        else:
            self.neg2_rt = np.ascontiguousarray(-2.0 * R.T)
            self.r_sq = np.einsum("ij,ij->i", R, R)

    def candidates(self, q: np.ndarray, n_cand: int) -> np.ndarray:
        """Indices (b, n_cand), ascending per row, of rows of ``R`` near each row of ``q``."""
        m = len(self.R)
        if n_cand >= m:
            return np.broadcast_to(np.arange(m), (len(q), m))
        if self.tree is not None:
            idx = self.tree.query(q, k=n_cand, return_distance=False)
        else:
            approx = q @ self.neg2_rt
            approx += self.r_sq
            idx = np.argpartition(approx, n_cand - 1, axis=1)[:, :n_cand]
        return np.sort(idx, axis=1)


def nearest(
    Q: np.ndarray, index: NeighbourIndex, k: int, skip_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances to the ``k`` nearest reference rows and mean squared differences.

    Parameters
    ----------
    Q : ndarray of shape (n, d), float64
        Query rows (finite).
    index : NeighbourIndex
        Over the reference rows R (m, d).
    k : int
        Neighbours per row, ``1 <= k <= m`` (``<= m - 1`` with ``skip_self``).
    skip_self : bool
        ``Q`` is R: drop each row's closest match, itself (leave-one-out).

    Returns
    -------
    dist : ndarray of shape (n, k)
        Distances to the nearest rows, ascending.
    sq_diff : ndarray of shape (n, d)
        Per feature, the squared difference to the ``k`` neighbours, averaged.
    """
    drop = int(skip_self)
    R = index.R
    m, d = R.shape
    n_cand = min(m, k + drop + CANDIDATE_MARGIN)
    step = max(1, min(256, _CHUNK_VALUES // max(n_cand * d, m)))
    dist = np.empty((len(Q), k))
    sq_diff = np.empty(Q.shape)
    for start in range(0, len(Q), step):
        q = Q[start : start + step]
        diff = q[:, None, :] - R[index.candidates(q, n_cand)]  # (b, n_cand, d)
        sq = diff * diff
        d2 = sq.sum(axis=2)
        # ties keep candidate (= row-number) order, so they break the same in any batch
        order = np.argsort(d2, axis=1, kind="stable")[:, drop : drop + k]
        rows = np.arange(len(q))[:, None]
        dist[start : start + len(q)] = np.sqrt(d2[rows, order])
        sq_diff[start : start + len(q)] = sq[rows, order].mean(axis=1)
    return dist, sq_diff


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

    def get_params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "k": self.k,
            "scaling": self.scaling,
            "max_reference": self.max_reference,
        }

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
        if not hasattr(self, "reference_z_"):
            raise DetectorError(f"{self.kind}: detector is not fitted")
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

    def get_state(self) -> dict[str, Any]:
        if not hasattr(self, "reference_z_"):
            raise DetectorError(f"{self.kind}: detector is not fitted")
        return {
            "n_features": self.n_features_,
            "n_reference": len(self.reference_),
            "scaler": self.scaler_.to_dict(),
        }

    def save(self, directory: Path) -> list[str]:
        """Write the reference rows to ``reference.safetensors`` (no pickle)."""
        self.get_state()
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
