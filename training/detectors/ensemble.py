"""Ensemble of kNN detectors over several feature scalings (kind ``ensemble``).

Tripwire's default detector. Each member is a :class:`~tripwire.training.detectors.knn.KNN`
(mean distance to the 5 nearest normal rows) measuring distance in its own
space: by default one in the data's own units (``none``: features that share a
unit, like pixels or embeddings, keep their relative weight) and one with every
feature standardised (``standard``: features in unrelated units count equally).
Neither space is right for every dataset; averaging both is rarely far from the
better one and often above it.

Combination: every member's raw score is mapped to *surprise*, ``-log`` of its
upper-tail p-value among the member's leave-one-out scores of the reference
rows, or of held-out training rows with ``reference="sparse"``
(:class:`~tripwire.training.detectors.surprise.Surprise`), i.e. calibrated on
normal rows only; the ensemble score is the mean surprise over members, higher = more
anomalous. No label and no anomaly is used for weighting or selection.

Why only kNN members: on the quality benchmark (``tripwire bench quality``,
15 ADBench datasets, see ``docs/quality.md``), adding an isolation forest, an
autoencoder, ECOD tails or a Mahalanobis member to the two kNN members, each
normalised the same way, lowered both mean ROC-AUC and mean PR-AUC.

Reference: at most 2,000 training rows (``max_reference``), drawn density-biased
(``reference="sparse"``: sparse rows kept more often, calibration on held-out
rows, :mod:`~tripwire.training.detectors.reference`), each member averaging
proportionally fewer neighbours (``scale_k``). That is what makes the default fast
enough for the stream (issue 12: >= 100,000 vectors/s at batch 256 on one thread
with 10,000 training rows; scoring costs one distance per reference row). It
costs a little quality: on the quality benchmark, against 10,000 uniform rows,
0.0007 of mean ROC-AUC and 0.0006 of PR-AUC (uniform sampling at 2,000 rows:
0.0010 / 0.0038), see ``docs/performance.md``, "A smaller reference". Models
saved before these defaults (no ``reference``/``scale_k`` in their params) load as
they were fitted: uniform, unscaled ``k``.

Contributions are those of the ``standard`` member (squared standardised
differences to the row's nearest normal rows, per feature), or of the first
member when no member standardises.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(300, 4)).astype("float32")
>>> det = KNNEnsemble().fit(X)
>>> bool(det.score(np.array([[8.0, 0, 0, 0]], "float32"))[0] > det.score(X[:1])[0])
True
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from safetensors.numpy import save_file

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.training.detectors.knn import (
    KNN,
    SCALINGS,
    build,
    read_arrays,
    training_rows,
    transform,
)
from tripwire.training.detectors.reference import select
from tripwire.training.detectors.surprise import Surprise

ENSEMBLE_FILE = "ensemble.safetensors"
#: What a model saved before ``reference`` and ``scale_k`` existed was fitted with.
LEGACY_PARAMS = {"reference": "uniform", "scale_k": False}


def parse_scalings(value: Any) -> tuple[str, ...]:
    """``"none,standard"`` or a sequence of names -> a tuple of distinct scalings."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if not names or len(set(names)) != len(names) or not set(names) <= set(SCALINGS):
        raise DetectorError(
            f"ensemble: scalings must be distinct names from {', '.join(SCALINGS)}, got {value!r}"
        )
    return names


class KNNEnsemble(Detector):
    """Mean surprise of kNN members in different feature spaces; higher = more anomalous.

    Parameters
    ----------
    seed : int
        Seeds the choice of reference rows (shared by all members).
    k : int
        Neighbours each member averages over.
    scalings : str or sequence of str
        One member per scaling, from ``none`` and ``standard``.
    max_reference : int
        Most training rows kept as neighbours (a seeded sample beyond that).
    reference : {"uniform", "sparse"}
        How that sample is drawn (:mod:`~tripwire.training.detectors.reference`);
        ``sparse`` measures sparsity in every member's space, so the members still
        share their rows.
    scale_k : bool
        Each member averages ``max(1, round(k * m / n))`` neighbours of a reduced
        reference of m of n rows (see :class:`~tripwire.training.detectors.knn.KNN`).
    """

    kind: ClassVar[str] = "ensemble"
    fitted_attribute: ClassVar[str] = "members_"

    def __init__(
        self,
        seed: int = 0,
        k: int = 5,
        scalings: str | list[str] | tuple[str, ...] = ("none", "standard"),
        max_reference: int = 2_000,
        reference: str = "sparse",
        scale_k: bool = True,
    ) -> None:
        self.seed = int(seed)
        self.k = int(k)
        self.scalings = parse_scalings(scalings)
        self.max_reference = int(max_reference)
        self.reference = str(reference)
        self.scale_k = scale_k
        self._members()  # validates k, max_reference, reference and scale_k

    def _members(self) -> list[KNN]:
        return [
            KNN(self.seed, self.k, s, self.max_reference, self.reference, self.scale_k)
            for s in self.scalings
        ]

    def fit(self, X: np.ndarray) -> Self:
        """Fit every member on ``X`` (n_samples, n_features), assumed normal, and
        learn each member's surprise map from its scores of unseen normal rows
        (leave-one-out reference scores, or held-out rows with ``sparse``).
        """
        X = training_rows(X, self.kind)
        members = self._members()
        scalers = [m.fit_scaler(X) for m in members]
        spaces = [partial(transform, scaler=s) for s in scalers]
        chosen = select(X, self.max_reference, self.seed, self.reference, spaces, self.k)
        for member, scaler in zip(members, scalers, strict=True):
            member.fit_selection(X, scaler, chosen)
        self.members_ = members
        self.surprise_ = [Surprise().fit(m.reference_scores_) for m in members]
        return self

    def _explainer(self) -> int:
        return self.scalings.index("standard") if "standard" in self.scalings else 0

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean surprise (n,) float64, higher = more anomalous, and contributions (n, d).

        Rows holding NaN or inf get NaN.
        """
        self._check_fitted()
        total: np.ndarray | None = None
        contrib: np.ndarray | None = None
        for i, (member, surprise) in enumerate(zip(self.members_, self.surprise_, strict=True)):
            raw, c = member.score_and_explain(X)
            value = surprise.transform(raw)
            total = value if total is None else total + value
            contrib = c if i == self._explainer() else contrib
        assert total is not None
        return total / len(self.members_), contrib

    def held_out_scores(self) -> np.ndarray | None:
        """Mean surprise of the members' scores of unseen normal rows (leave-one-out
        scores of the reference rows, or of the held-out rows with ``sparse``).

        The members share their reference (and held-out) rows, so the scores line
        up row by row.
        """
        loo = [m.held_out_scores() for m in getattr(self, "members_", [])]
        if not loo or any(s is None for s in loo):
            return None
        surprise = [s.transform(r) for s, r in zip(self.surprise_, loo, strict=True)]
        return np.mean(surprise, axis=0)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        states = [m.get_state() for m in self.members_]
        return {
            "n_features": states[0]["n_features"],
            "n_reference": states[0]["n_reference"],
            "k": states[0]["k"],
            "scalers": [s["scaler"] for s in states],
        }

    def save(self, directory: Path) -> list[str]:
        """Write reference rows and surprise maps to ``ensemble.safetensors`` (no pickle)."""
        self._check_fitted()
        reference = self.members_[0].reference_
        if any(not np.array_equal(m.reference_, reference) for m in self.members_):
            raise DetectorError(f"{self.kind}: members do not share their reference rows")
        arrays = {"reference": reference}
        for i, surprise in enumerate(self.surprise_):
            arrays.update(surprise.to_arrays(f"member{i}."))
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(arrays, str(directory / ENSEMBLE_FILE))
        return [ENSEMBLE_FILE]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Rebuild from ``ensemble.safetensors`` and the manifest's params/state."""
        det = build(cls, {**LEGACY_PARAMS, **params})
        arrays = read_arrays(Path(directory) / ENSEMBLE_FILE, cls.kind)
        try:
            scalers = list(state["scalers"])
            common = {"n_features": state["n_features"], "n_reference": state["n_reference"]}
            if "k" in state:  # older manifests: no "k"
                common["k"] = state["k"]
        except (KeyError, TypeError) as exc:
            raise DetectorError(f"{cls.kind}: invalid detector state: {exc!r}") from exc
        members = det._members()
        if len(scalers) != len(members):
            raise DetectorError(f"{cls.kind}: state has {len(scalers)} scalers, not {len(members)}")
        for member, scaler in zip(members, scalers, strict=True):
            member.restore(arrays.get("reference"), {**common, "scaler": scaler})
        det.members_ = members
        det.surprise_ = [Surprise.from_arrays(arrays, f"member{i}.") for i in range(len(members))]
        return det
