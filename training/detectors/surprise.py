"""Put a detector's raw scores on a common scale learnt from normal rows only.

:class:`Surprise` maps a raw score ``s`` to ``-log p(s)``, where ``p(s)`` is the
empirical upper-tail probability of ``s`` among scores of normal rows the
detector has not fitted on (a conformal p-value: ``(1 + #{ref >= s}) / (n + 1)``,
interpolated linearly between the observed reference scores so the map is
continuous and strictly increasing). Beyond the largest reference score the
p-value cannot shrink further, so the map goes on as a straight line whose slope
is one unit of surprise per ``q99 - median`` of the reference scores: rows far
outside everything normal keep their order instead of tying.

Two detectors with scores in unrelated units (a distance, a log-likelihood) end
up in the same unit — nats of surprise under the normal data — and can be
averaged. The map is monotone, so each detector's ranking of rows is unchanged.

>>> import numpy as np
>>> s = Surprise().fit(np.arange(1.0, 100.0))
>>> [round(float(v), 3) for v in s.transform(np.array([0.0, 50.0, 99.0, 197.0]))]
[0.0, 0.673, 3.912, 5.953]
"""

from __future__ import annotations

from typing import Self

import numpy as np

from tripwire.core.errors import DetectorError


class Surprise:
    """Monotone map from raw scores to ``-log`` tail p-values among normal scores.

    Attributes
    ----------
    values_ : ndarray of shape (u,), float64
        Distinct reference scores, ascending.
    at_least_ : ndarray of shape (u,), float64
        ``at_least_[i]`` = number of reference scores ``>= values_[i]``.
    n_ : int
        Number of reference scores.
    tail_scale_ : float
        Raw-score distance that adds one unit of surprise beyond the largest
        reference score: ``q99 - median``, else ``max - median``, else
        ``max(|max|, 1)`` when the reference scores do not spread.
    """

    def fit(self, reference_scores: np.ndarray) -> Self:
        """Learn the map from scores (n,) of held-out (or leave-one-out) normal rows."""
        ref = np.asarray(reference_scores, dtype=np.float64).ravel()
        if ref.size == 0 or not np.all(np.isfinite(ref)):
            raise DetectorError("surprise: need at least one finite reference score")
        values, counts = np.unique(ref, return_counts=True)
        self.values_ = values
        self.at_least_ = np.cumsum(counts[::-1])[::-1].astype(np.float64)
        self.n_ = int(ref.size)
        median, q99 = np.quantile(ref, [0.5, 0.99])
        top = values[-1]
        spreads = (q99 - median, top - median, max(abs(top), 1.0))
        self.tail_scale_ = float(next(s for s in spreads if s > 0))
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Surprise (n,) float64 of raw scores (n,): 0 at or below every reference
        score, ``log(n + 1)`` at the largest (if unique), growing linearly beyond.
        NaN stays NaN.
        """
        s = np.asarray(scores, dtype=np.float64)
        count = np.interp(s, self.values_, self.at_least_)
        out = np.log((self.n_ + 1) / (count + 1))
        beyond = s > self.values_[-1]
        out[beyond] += (s[beyond] - self.values_[-1]) / self.tail_scale_
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The fitted map as named float64 arrays (for a safetensors file)."""
        return {
            f"{prefix}values": self.values_,
            f"{prefix}at_least": self.at_least_,
            f"{prefix}params": np.array([self.n_, self.tail_scale_], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Self:
        """Rebuild from :meth:`to_arrays` output; DetectorError when inconsistent."""
        try:
            values = np.asarray(arrays[f"{prefix}values"], dtype=np.float64)
            at_least = np.asarray(arrays[f"{prefix}at_least"], dtype=np.float64)
            n, scale = (float(v) for v in arrays[f"{prefix}params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"surprise: invalid saved map {prefix!r}: {exc!r}") from exc
        ok = (
            values.ndim == 1
            and values.size >= 1
            and values.shape == at_least.shape
            and np.all(np.isfinite(values))
            and np.all(np.diff(values) > 0)
            and np.all(np.diff(at_least) < 0)
            and at_least[0] == n
            and at_least[-1] >= 1
            and np.isfinite(scale)
            and scale > 0
        )
        if not ok:
            raise DetectorError(f"surprise: saved map {prefix!r} is inconsistent")
        out = cls()
        out.values_, out.at_least_, out.n_, out.tail_scale_ = values, at_least, int(n), scale
        return out
