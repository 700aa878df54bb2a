"""``f1``: the cut-off maximising F1 on a labelled validation split."""

from __future__ import annotations

from typing import Any

import numpy as np

from tripwire.core.errors import ConfigError
from tripwire.training.thresholds.base import CalibrationData, Threshold, finite_scores


class F1Threshold(Threshold):
    """The threshold with the best F1 on labelled validation scores.

    Every cut between two adjacent distinct validation scores is a candidate; the
    value is the midpoint of that gap, so it lies strictly between the highest
    score left normal and the lowest score flagged. When classes separate
    perfectly, that is the midpoint between the highest normal and the lowest
    anomalous score. Ties in F1 go to the higher cut (fewer false positives).

    Examples
    --------
    >>> import numpy as np
    >>> data = CalibrationData(
    ...     np.zeros(1), np.zeros(1),
    ...     val_scores=np.array([1.0, 2.0, 3.0, 10.0, 12.0]),
    ...     val_labels=np.array([0, 0, 0, 1, 1]),
    ... )
    >>> F1Threshold().fit(data).value_
    6.5
    """

    method = "f1"

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def _fit(self, data: CalibrationData) -> float:
        if data.val_scores is None or data.val_labels is None:
            raise ConfigError(
                "threshold f1 needs labelled anomalies (a labelled validation split), and the "
                "data has none; use fpr:<rate> or pot:<q> for unlabelled data"
            )
        s = finite_scores(data.val_scores, "labelled validation scores", self.method)
        y = np.asarray(data.val_labels).reshape(-1).astype(np.int64)
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == y.size:
            raise ConfigError(
                "threshold f1 needs labelled anomalies and normal rows in the validation "
                f"split (got {n_pos} anomalies of {y.size}); use fpr:<rate> for unlabelled data"
            )
        return best_f1_cut(s, y)


def best_f1_cut(scores: np.ndarray, labels: np.ndarray) -> float:
    """Midpoint of the gap whose cut (flag scores above it) maximises F1."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    f1 = 2.0 * tp / (tp + fp + int(y.sum()))
    # A cut after position i flags s[:i+1]; only valid where s[i] > s[i+1].
    valid = np.append(s[:-1] > s[1:], True)
    f1 = np.where(valid, f1, -1.0)
    i = int(np.argmax(f1))  # first maximum = highest cut
    if i == s.size - 1:
        return float(np.nextafter(s[-1], -np.inf))  # flag everything
    hi, lo = float(s[i]), float(s[i + 1])
    mid = lo + (hi - lo) / 2.0
    return mid if mid < hi else lo  # adjacent floats: rounding must not unflag `hi`
